"""A Vision Transformer for MNIST, written from scratch in plain PyTorch.

The structure follows Dosovitskiy et al. (2021), "An Image is Worth 16x16 Words":
the image is cut into non-overlapping patches, each patch is linearly embedded,
a learnable CLS token is prepended, positions are added, and a stack of
pre-norm Transformer blocks mixes the tokens. The head reads the CLS token
(or the mean of the patch tokens) and predicts the class.

Shapes use B = batch, C = channels, H = W = image size, P = patch size,
N = number of patches (H/P)^2, T = N + 1 tokens (with CLS), D = width,
h = heads, d = D / h per-head width.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .configs import ViTConfig


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, P*P*C), patches in row-major order, pixels (p, q, c) inside.

    The same layout as the official MAE code, so a patch's pixels can be
    reconstructed, compared or drawn without knowing about convolutions.
    """
    B, C, H, W = imgs.shape
    p = patch_size
    if H % p or W % p:
        raise ValueError(f"image of size {H}x{W} is not divisible by patch_size {p}")
    h, w = H // p, W // p
    x = imgs.reshape(B, C, h, p, w, p)
    x = torch.einsum("nchpwq->nhwpqc", x)  # (B, h, w, p, p, C)
    return x.reshape(B, h * w, p * p * C)


def unpatchify(x: torch.Tensor, patch_size: int, channels: int = 1) -> torch.Tensor:
    """(B, N, P*P*C) -> (B, C, H, W); the inverse of `patchify` for square images."""
    B, N, L = x.shape
    p = patch_size
    h = w = int(math.isqrt(N))
    if h * w != N or L != p * p * channels:
        raise ValueError(f"cannot unpatchify {tuple(x.shape)} with patch_size {p} and {channels} channel(s)")
    x = x.reshape(B, h, w, p, p, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(B, channels, h * p, w * p)


def sincos_pos_embed_2d(dim: int, grid_size: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine embedding (MAE / MoCo v3): (grid_size**2, dim).

    Half of the channels encode the row, half the column; each half is the
    1-D Transformer encoding with frequencies 1 / 10000^(k / (dim/4)).
    """
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))  # (D/4,)
    coords = torch.arange(grid_size, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")  # (g, g) each

    def enc(pos):  # (g*g,) -> (g*g, D/2)
        out = pos.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([out.sin(), out.cos()], dim=1)

    return torch.cat([enc(rows), enc(cols)], dim=1).float()  # (N, D)


class PatchEmbed(nn.Module):
    """Cut the image into P x P patches and project each to D channels.

    A convolution with kernel = stride = P is exactly "flatten each patch and
    apply one shared linear layer". With `patch_overlap` o > 0 the kernel grows
    to P + 2o (stride still P, zero padding o): each token is still one patch of
    the P x P grid, but its embedding also sees o pixels of its neighbours, so a
    stroke cut by a patch border is seen whole by both tokens.

    With `conv_stem` c > 0, two 3x3 convolutions (c channels, stride 1, each followed by a per-image GroupNorm and
    GELU) run on the full-resolution image first, and the patches are cut from their (B, c, H, W) output: the
    "early convolutions" of Xiao et al. 2021, at the same token count. No batch statistics, so it suits outlier
    exposure's mixed batches.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.patch_size, self.overlap = cfg.patch_size, cfg.patch_overlap
        c = cfg.conv_stem
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, c, 3, padding=1), nn.GroupNorm(1, c), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(1, c), nn.GELU(),
        ) if c else None
        self.proj = nn.Conv2d(c or cfg.in_channels, cfg.dim, kernel_size=cfg.patch_size + 2 * cfg.patch_overlap,
                              stride=cfg.patch_size, padding=cfg.patch_overlap)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem is not None:
            x = self.stem(x)  # (B, C, H, W) -> (B, c, H, W)
        if self.overlap:
            return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, H/P, W/P) -> (B, N, D)
        # Computed as that linear layer: the patches as rows, times the kernel as a (D, C*P*P) matrix. The same
        # numbers as self.proj(x), but one plain matrix multiply forward and backward: a CPU runs that better than a
        # strided convolution and its backward, and the patch embedding runs at every step.
        B, C, H, W = x.shape
        p = self.patch_size
        x = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P)
        x = x.reshape(B, (H // p) * (W // p), C * p * p)  # (B, N, C*P*P), in the kernel's (c, p, q) order
        return F.linear(x, self.proj.weight.reshape(self.proj.out_channels, -1), self.proj.bias)  # (B, N, D)


class Attention(nn.Module):
    """Multi-head self-attention.

    The fast path calls `F.scaled_dot_product_attention` (fused kernels, never
    materialises the T x T matrix on GPU). When the caller asks for the weights,
    the explicit softmax(QK^T / sqrt(d)) V path runs instead; both give the same
    output (tested to 1e-5).
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.heads = cfg.heads
        self.head_dim = cfg.dim // cfg.heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=cfg.qkv_bias)
        self.attn_drop = cfg.attn_dropout
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.proj_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, T, d)
        p = self.attn_drop if self.training else 0.0
        if return_attn:
            attn = (q @ k.transpose(-2, -1)) * self.scale  # (B, h, T, T)
            attn = attn.softmax(dim=-1)
            weights = attn  # report the weights before dropout: they are what the model "looks at"
            if p > 0:
                attn = F.dropout(attn, p)
            out = attn @ v  # (B, h, T, d)
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, h, T, d)
        out = out.transpose(1, 2).reshape(B, T, D)  # (B, T, D): heads side by side again
        return self.proj_drop(self.proj(out)), weights


class MLP(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        hidden = int(cfg.dim * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))  # (B, T, D)


class Block(nn.Module):
    """One Transformer block: attention then MLP, each with a residual connection.

    Pre-norm (ViT): x + f(LN(x)); the residual stream is never normalised, so
    gradients reach early layers undiminished. Post-norm (Vaswani et al. 2017):
    LN(x + f(x)); kept to compare where the gradient goes.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.prenorm = cfg.prenorm
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        if self.prenorm:
            a, w = self.attn(self.norm1(x), return_attn)
            x = x + a
            x = x + self.mlp(self.norm2(x))
        else:
            a, w = self.attn(x, return_attn)
            x = self.norm1(x + a)
            x = self.norm2(x + self.mlp(x))
        return x, w  # (B, T, D), (B, h, T, T) or None


class ViT(nn.Module):
    """Vision Transformer classifier.

    forward(x)                         -> logits (B, num_classes)
    forward_features(x)                -> tokens (B, T, D), final-normed
    forward_features(x, return_attn=True) -> (tokens, [per-layer (B, h, T, T)])
    forward_pool(tokens)               -> the pooled token (B, D): CLS, or the patch mean
    forward_head(tokens, pre_logits=True) -> pooled features (B, D)
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        N = cfg.num_patches
        if cfg.pos_embed == "learned":
            # Covers CLS too, as in the ViT paper.
            self.pos_embed = nn.Parameter(torch.zeros(1, N + 1, cfg.dim))
        elif cfg.pos_embed == "sincos":
            pe = torch.cat([torch.zeros(1, cfg.dim), sincos_pos_embed_2d(cfg.dim, cfg.grid_size)])
            self.register_buffer("pos_embed", pe.unsqueeze(0), persistent=False)  # fixed: not saved
        else:
            self.pos_embed = None
        self.pos_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        # Pre-norm leaves the residual stream un-normalised, so it needs a final LayerNorm;
        # post-norm blocks already end in one.
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps) if cfg.prenorm else nn.Identity()
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        self.apply(self._init_weights)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if isinstance(self.pos_embed, nn.Parameter):
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.patch_embed.stem is not None:  # convolutions keep PyTorch's (fan-in) init, not the projections' 0.02
            for m in self.patch_embed.stem:
                if isinstance(m, nn.Conv2d):
                    m.reset_parameters()

    @staticmethod
    def _init_weights(m: nn.Module):
        # timm's ViT init: small truncated normal for projections, zero bias.
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def reset_classifier(self, num_classes: int) -> None:
        """A freshly initialised head of `num_classes` outputs, as timm's `reset_classifier`; every other weight is
        kept. The config follows, so a checkpoint of the model rebuilds it."""
        self.cfg = dataclasses.replace(self.cfg, num_classes=num_classes)
        old = self.head
        self.head = nn.Linear(self.cfg.dim, num_classes).to(old.weight.device, old.weight.dtype)
        self._init_weights(self.head)

    def no_weight_decay(self) -> set:
        """Parameters that AdamW should not decay (timm's convention)."""
        return {"cls_token", "pos_embed"}

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the expected and the actual input shape."""
        c, s = self.cfg.in_channels, self.cfg.image_size
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor of shape (B, {c}, {s}, {s}), got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != c or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(f"expected input of shape (B, {c}, {s}, {s}), got {tuple(x.shape)}")

    num_prefix_tokens = 1  # tokens before the patches (CLS); subclasses with more (DeiT's distillation token) say so

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with their positions, no CLS: (B, C, H, W) -> (B, N, D).

        MAE drops some of these before the blocks; `embed` puts CLS in front of all of them.
        """
        self.check_input(x)
        x = self.patch_embed(x)  # (B, N, D)
        if self.pos_embed is not None:
            x = x + self.pos_embed[:, 1:]
        return x

    def cls_tokens(self, batch_size: int) -> torch.Tensor:
        """The CLS token with its position, once per image: (B, 1, D)."""
        cls = self.cls_token if self.pos_embed is None else self.cls_token + self.pos_embed[:, :1]
        return cls.expand(batch_size, -1, -1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Image to the token sequence that enters the first block: (B, C, H, W) -> (B, T, D)."""
        patches = self.embed_patches(x)  # (B, N, D)
        return self.pos_drop(torch.cat([self.cls_tokens(patches.shape[0]), patches], dim=1))  # (B, T, D)

    def forward_features(self, x: torch.Tensor, return_attn: bool = False):
        return self.forward_tokens(self.embed(x), return_attn)

    def forward_tokens(self, x: torch.Tensor, return_attn: bool = False):
        """Run any token sequence (B, T', D) through the blocks and the final norm: (B, T', D).

        `forward_features` calls it on every token; MAE's encoder on CLS plus the visible patches only.
        """
        attns = []
        for blk in self.blocks:
            x, w = blk(x, return_attn)
            if return_attn:
                attns.append(w)
        x = self.norm(x)  # (B, T, D)
        return (x, attns) if return_attn else x

    def forward_pool(self, x: torch.Tensor) -> torch.Tensor:
        """The token the head reads: CLS, or the mean of the patch tokens. (B, T, D) -> (B, D)."""
        return x[:, 0] if self.cfg.pool == "cls" else x[:, self.num_prefix_tokens:].mean(dim=1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.forward_pool(x)  # (B, D); the ViT has no layer between pool and head, so pre-logits = pooled
        return x if pre_logits else self.head(x)  # (B, D) or (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
