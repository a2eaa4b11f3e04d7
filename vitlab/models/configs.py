"""The models' configurations and the named presets: plain dataclasses, importable without torch.

Kept apart from the modules so that a config can be read, compared and written into a checkpoint, and the
command line can list the presets, without building (or importing) a network.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DictConfig, check_number


@dataclass
class ViTConfig(DictConfig):
    image_size: int = 28  # side of the (square) input image, pixels
    patch_size: int = 4  # side of a square patch; must divide image_size
    patch_overlap: int = 0  # pixels each patch's embedding also sees of its neighbours, on every side (0: ViT's)
    conv_stem: int = 0  # channels of a convolutional stem (two 3x3 convolutions) before the patch projection (0: none)
    in_channels: int = 1  # 1 for grayscale MNIST
    num_classes: int = 10  # size of the classification head
    dim: int = 64  # token width D
    depth: int = 6  # number of Transformer blocks
    heads: int = 4  # attention heads per block; must divide dim
    mlp_ratio: float = 2.0  # hidden width of the MLP as a multiple of dim
    dropout: float = 0.0  # dropout after the embedding, in the MLP and after attention
    attn_dropout: float = 0.0  # dropout on the attention weights
    pos_embed: str = "learned"  # "learned", "sincos" (fixed 2-D sin-cos) or "none"
    pool: str = "cls"  # "cls": read the CLS token; "mean": average the patch tokens
    prenorm: bool = True  # LayerNorm before each sub-layer (ViT); False gives the original post-norm Transformer
    qkv_bias: bool = True  # bias on the query/key/value projection
    norm_eps: float = 1e-5  # LayerNorm epsilon (PyTorch's default; timm's ViTs use 1e-6)

    def __post_init__(self):
        for name in ("image_size", "patch_size", "in_channels", "num_classes", "dim", "depth", "heads"):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("mlp_ratio", self.mlp_ratio, low=0, low_open=True)
        check_number("dropout", self.dropout, 0, 1, high_open=True)
        check_number("attn_dropout", self.attn_dropout, 0, 1, high_open=True)
        check_number("norm_eps", self.norm_eps, low=0, low_open=True)
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}"
            )
        if not 0 <= self.patch_overlap < self.patch_size:
            raise ValueError(f"patch_overlap must be in [0, patch_size), got {self.patch_overlap}")
        if self.conv_stem < 0:
            raise ValueError(f"conv_stem must be >= 0 (0: no stem), got {self.conv_stem}")
        if self.dim % self.heads != 0:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.pos_embed not in ("learned", "sincos", "none"):
            raise ValueError(f"pos_embed must be 'learned', 'sincos' or 'none', got {self.pos_embed!r}")
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {self.pool!r}")
        if self.pos_embed == "sincos" and self.dim % 4 != 0:
            raise ValueError(f"sincos positional embedding needs dim divisible by 4, got {self.dim}")

    @property
    def grid_size(self) -> int:
        """Patches along one side of the image."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2


@dataclass
class CNNConfig(DictConfig):
    image_size: int = 28  # side of the square input image
    in_channels: int = 1  # 1 for grayscale
    num_classes: int = 10  # size of the classification head
    width: int = 32  # channels of the first conv stage; the second has twice as many
    hidden: int = 128  # width of the fully connected layer before the head
    dropout: float = 0.1  # dropout before the head

    def __post_init__(self):
        for name in ("image_size", "in_channels", "num_classes", "width", "hidden"):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("dropout", self.dropout, 0, 1, high_open=True)


def vit_mini_mnist(**overrides) -> ViTConfig:
    """The default recipe's model: 7x7 patches (16 tokens), 4 blocks, D=64. At a fixed training budget it beats
    the wider vit_tiny_mnist, a third of its FLOPs an image buying three times the epochs."""
    return ViTConfig(**{**dict(patch_size=7, dim=64, depth=4, heads=4, mlp_ratio=2.0), **overrides})


def vit_tiny_mnist(**overrides) -> ViTConfig:
    """7x7 patches (16 tokens), 3 blocks, D=128: the default recipe's model until the recipe of 53 epochs."""
    return ViTConfig(**{**dict(patch_size=7, dim=128, depth=3, heads=4, mlp_ratio=2.0), **overrides})


def vit_small_mnist(**overrides) -> ViTConfig:
    """The longer recipe's model: 4x4 patches (49 tokens), 6 blocks, D=64."""
    return ViTConfig(**{**dict(patch_size=4, dim=64, depth=6, heads=4, mlp_ratio=2.0), **overrides})


def vit_micro_mnist(**overrides) -> ViTConfig:
    """A very small model for tests and quick classroom demos."""
    return ViTConfig(**{**dict(patch_size=7, dim=32, depth=2, heads=2, mlp_ratio=2.0), **overrides})


PRESETS = {f.__name__: f for f in (vit_mini_mnist, vit_tiny_mnist, vit_small_mnist, vit_micro_mnist)}


def preset_name(cfg: ViTConfig) -> str | None:
    """The name of the preset `cfg` equals (``vit_mini_mnist`` for the default recipe's model), or None: so what
    prints a model's name derives it from its config."""
    return next((name for name, f in PRESETS.items() if f() == cfg), None)
