"""I-JEPA: self-supervised pre-training by predicting the REPRESENTATIONS of hidden regions, for vitlab's ViT.

Assran et al. (2023), "Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture", in the
style of the official code (facebookresearch/ijepa):

1. masks: per image, M target groups of L patches each and one context set of K patches that shares none of them
   (`block_masks`: rectangles as in the paper; `scattered_masks`: the same numbers of patches at random places);
2. the CONTEXT ENCODER, an ordinary vitlab `ViT`, runs on CLS + the K context patches only: (B, 1 + K, D);
3. the TARGET ENCODER, a copy of it that no optimizer touches (an exponential moving average of the context encoder,
   read under no_grad: the stop-gradient), runs on the WHOLE image; its patch tokens, layer-normalised, at the
   target positions are what must be predicted: (B * M, L, D);
4. a narrow PREDICTOR (its own width Dp) gets the context tokens and, for each target group, one learned mask token per
   target patch plus that patch's (fixed 2-D sin-cos) position, and predicts the target tokens: (B * M, L, D);
5. the loss is the mean squared error between the two. No pixels are ever reconstructed, and no augmentation is used.

Without the EMA and the stop-gradient (`teacher="none"`: the targets come from the context encoder itself, gradient
and all) the cheapest way to a zero loss is to map every image to the same vector: the representation collapses.

Both encoders are used only through their named methods (`embed_patches`, `cls_tokens`, `forward_tokens`,
`forward_features`), so each is an ordinary classifier ViT afterwards (`vitlab.methods.jepa.encoder_from_jepa`).

Shapes: B batch, N patches (g x g grid), K context patches, M target groups of L patches, D encoder width,
Dp predictor width.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from ..config import DictConfig
from .configs import ViTConfig, vit_tiny_mnist
from .predictor import PredictorNames, TokenPredictor, check_predictor_shape, predictor_config
from .vit import ViT

MASKINGS = ("block", "scattered")
TEACHERS = ("ema", "none")


def _default_encoder() -> ViTConfig:
    # Notebook 09's MAE encoder (7x7 patches, D=128, 3 blocks, fixed sin-cos positions): the same ViT, so the two
    # pre-training methods are compared on one architecture and fine-tune with one recipe.
    return vit_tiny_mnist(pos_embed="sincos")


@dataclass
class JEPAConfig(DictConfig):
    encoder: ViTConfig = field(default_factory=_default_encoder)  # the ViT that is pre-trained (and later fine-tuned)
    predictor_dim: int = 64  # predictor token width Dp; narrower than the encoder (the paper's "narrow predictor")
    predictor_depth: int = 3  # predictor Transformer blocks
    predictor_heads: int = 4  # predictor attention heads; must divide predictor_dim
    predictor_mlp_ratio: float = 2.0  # predictor MLP hidden width as a multiple of predictor_dim
    masking: str = "block"  # "block" (the paper's rectangles) or "scattered" (the same counts at random patches)
    num_targets: int = 4  # M target groups per image, each predicted separately
    target_scale: tuple = (0.15, 0.2)  # a target group covers this fraction of the image (drawn once per batch)
    target_aspect: tuple = (0.75, 1.5)  # height / width of a target block (block masking)
    context_scale: tuple = (0.85, 1.0)  # the context block's fraction of the image, before the targets are removed
    min_context: int = 2  # fewest context patches an image may keep (masks are redrawn until it has them)
    teacher: str = "ema"  # "ema": EMA target encoder under stop-gradient; "none": the context encoder (collapses)
    ema_momentum: tuple = (0.996, 1.0)  # the target encoder's momentum, rising linearly over training (I-JEPA)

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = ViTConfig.from_dict(self.encoder)
        if not isinstance(self.encoder, ViTConfig):
            raise TypeError(f"encoder must be a ViTConfig (or its dict), got {type(self.encoder).__name__}")
        self.target_scale, self.target_aspect, self.context_scale, self.ema_momentum = (
            tuple(self.target_scale), tuple(self.target_aspect), tuple(self.context_scale), tuple(self.ema_momentum))
        if self.masking not in MASKINGS:
            raise ValueError(f"masking must be one of {MASKINGS}, got {self.masking!r}")
        if self.teacher not in TEACHERS:
            raise ValueError(f"teacher must be one of {TEACHERS}, got {self.teacher!r}")
        for name in ("target_scale", "context_scale"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high <= 1, got {getattr(self, name)}")
        if not 0 < self.target_aspect[0] <= self.target_aspect[1]:
            raise ValueError(f"target_aspect must be (low, high) with 0 < low <= high, got {self.target_aspect}")
        if not 0 <= self.ema_momentum[0] <= self.ema_momentum[1] <= 1:
            raise ValueError(f"ema_momentum must be (start, end) with 0 <= start <= end <= 1, got {self.ema_momentum}")
        if self.num_targets < 1 or self.min_context < 1:
            raise ValueError(f"num_targets and min_context must be >= 1, got {self.num_targets}, {self.min_context}")
        N = self.encoder.num_patches
        most = self.num_targets * target_size(N, self.target_scale[1])
        if self.masking == "scattered" and most + self.min_context > N:
            raise ValueError(f"{self.num_targets} targets of up to {target_size(N, self.target_scale[1])} patches "
                             f"and {self.min_context} context patches do not fit in {N} patches")
        check_predictor_shape("predictor", self.predictor_dim, self.predictor_depth, self.predictor_heads, self.encoder,
                              "JEPA")

    def predictor_vit_config(self) -> ViTConfig:
        """The ViTConfig the predictor's blocks are built from (its width, heads and MLP; no dropout)."""
        return predictor_config(self.encoder, self.predictor_dim, self.predictor_depth, self.predictor_heads,
                                self.predictor_mlp_ratio)


class Masks(NamedTuple):
    context: torch.Tensor  # (B, K) patch indices the context encoder sees, ascending
    targets: torch.Tensor  # (B, M, L) patch indices of each target group, ascending within a group


def target_size(num_patches: int, scale: float) -> int:
    """Patches in a target group covering `scale` of the image: round(N * scale), at least one."""
    return max(1, int(round(num_patches * scale)))


def _uniform(lo: float, hi: float, generator) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def _block_shape(grid: int, scale: float, aspect: float) -> tuple[int, int]:
    """(height, width) in patches of a rectangle covering about `scale` of a grid x grid image, height / width ~ aspect.
    """
    n = scale * grid * grid
    h = min(grid, max(1, int(round(math.sqrt(n * aspect)))))
    w = min(grid, max(1, int(round(math.sqrt(n / aspect)))))
    return h, w


def _rectangles(B: int, M: int, grid: int, h: int, w: int, generator) -> torch.Tensor:
    """M random h x w rectangles per image as patch masks: (B, M, N) bool, N = grid * grid, row-major."""
    top = torch.randint(0, grid - h + 1, (B, M, 1), generator=generator)
    left = torch.randint(0, grid - w + 1, (B, M, 1), generator=generator)
    r = torch.arange(grid)
    rows = (r >= top) & (r < top + h)  # (B, M, g)
    cols = (r >= left) & (r < left + w)  # (B, M, g)
    return (rows.unsqueeze(-1) & cols.unsqueeze(-2)).flatten(2)  # (B, M, g*g)


def _pick(allowed: torch.Tensor, k: int, generator) -> torch.Tensor:
    """k random indices among the True entries of each row of `allowed` (B, N), ascending: (B, k)."""
    noise = torch.rand(allowed.shape, generator=generator) + (~allowed).float() * 2  # allowed ones sort first
    return noise.argsort(dim=1)[:, :k].sort(dim=1).values


def block_masks(batch_size: int, grid: int, cfg: JEPAConfig, generator: Optional[torch.Generator] = None) -> Masks:
    """I-JEPA's multi-block masks: M target rectangles of one shape (drawn once per batch, at random places per image)
    and a context rectangle of `context_scale`, minus every target patch. All images keep K = the fewest context
    patches any of them has (a random subset of each image's), so the batch is one tensor, as in the official collator.
    Images with fewer than `min_context` context patches get new masks."""
    B, M = batch_size, cfg.num_targets
    h, w = _block_shape(grid, _uniform(*cfg.target_scale, generator), _uniform(*cfg.target_aspect, generator))
    hc, wc = _block_shape(grid, _uniform(*cfg.context_scale, generator), 1.0)
    targets = _rectangles(B, M, grid, h, w, generator)  # (B, M, N)
    context = _rectangles(B, 1, grid, hc, wc, generator)[:, 0] & ~targets.any(1)  # (B, N)
    for _ in range(100):  # redraw the images whose targets left too little context
        bad = context.sum(1) < cfg.min_context
        if not bad.any():
            break
        nb = int(bad.sum())
        targets[bad] = _rectangles(nb, M, grid, h, w, generator)
        context[bad] = _rectangles(nb, 1, grid, hc, wc, generator)[:, 0] & ~targets[bad].any(1)
    else:
        raise RuntimeError(f"could not draw {M} targets of {h}x{w} patches leaving {cfg.min_context} context patches "
                           f"on a {grid}x{grid} grid")
    K = int(context.sum(1).min())
    L = h * w
    tgt = targets.float().argsort(dim=2, descending=True, stable=True)[..., :L].sort(dim=2).values  # (B, M, L)
    return Masks(_pick(context, K, generator), tgt)


def scattered_masks(batch_size: int, grid: int, cfg: JEPAConfig, generator: Optional[torch.Generator] = None) -> Masks:
    """Scattered random masking: M disjoint target groups of L random patches each (L drawn once per batch from
    `target_scale`, as the blocks' size), the context = every other patch. The same counts as `block_masks`, with
    the spatial structure removed."""
    B, M, N = batch_size, cfg.num_targets, grid * grid
    L = target_size(N, _uniform(*cfg.target_scale, generator))
    order = torch.rand(B, N, generator=generator).argsort(dim=1)  # (B, N) a random permutation per image
    tgt = order[:, : M * L].reshape(B, M, L).sort(dim=2).values  # (B, M, L)
    return Masks(order[:, M * L:].sort(dim=1).values, tgt)  # context (B, N - M*L)


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), idx (B, ...) patch indices -> (B, ..., D)."""
    B, D = x.shape[0], x.shape[-1]
    flat = idx.reshape(B, -1)
    return torch.gather(x, 1, flat.unsqueeze(-1).expand(-1, -1, D)).reshape(*idx.shape, D)


class JEPA(TokenPredictor):
    """I-JEPA with vitlab ViT encoders; its predictor is a `TokenPredictor` (models/predictor.py).

        jepa = JEPA(JEPAConfig())
        loss = jepa(images)                       # images (B, 1, 28, 28), normalised; masks drawn inside
        masks = jepa.sample_masks(B)              # or draw them yourself: Masks(context (B, K), targets (B, M, L))
        loss, pred, target = jepa(images, masks, return_all=True)   # pred, target (B * M, L, D)
        jepa.update_target(0.996)                 # after each optimizer step: target <- m * target + (1 - m) * context
    """

    # the predictor's layers, under the names every JEPA checkpoint has (see models/predictor.py)
    PREDICTOR = PredictorNames(embed="predictor_embed", pos_embed="predictor_pos_embed", blocks="predictor_blocks",
                               norm="predictor_norm", proj="predictor_proj")

    def __init__(self, cfg: JEPAConfig):
        super().__init__()
        self.cfg = cfg
        e = cfg.encoder
        self.encoder = ViT(e)  # the context encoder: the one the optimizer trains
        if cfg.teacher == "ema":
            self.target_encoder = copy.deepcopy(self.encoder)  # starts equal; moves only by `update_target`
            self.target_encoder.requires_grad_(False)  # not trainable, so the Trainer leaves it out of the optimizer
        else:
            self.target_encoder = None
        # Fixed 2-D sin-cos positions (1, N, Dp), no CLS row; the output goes back to the encoder width the targets
        # live in.
        self.build_predictor(e.dim, cfg.predictor_vit_config(), e.dim, e.grid_size)

    # ---- bookkeeping

    @property
    def grid_size(self) -> int:
        return self.cfg.encoder.grid_size

    def no_weight_decay(self) -> set:
        """Full parameter names AdamW should not decay (tokens and positions; see `train.param_groups`)."""
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()} | {"mask_token"}

    def teacher(self) -> ViT:
        """The encoder the targets come from: the EMA copy, or the context encoder itself when there is none."""
        return self.target_encoder if self.target_encoder is not None else self.encoder

    def sample_masks(self, batch_size: int, generator: Optional[torch.Generator] = None,
                     masking: Optional[str] = None) -> Masks:
        """Masks for a batch, by the config's masking (or `masking`), on the CPU."""
        masking = masking or self.cfg.masking
        if masking not in MASKINGS:
            raise ValueError(f"masking must be one of {MASKINGS}, got {masking!r}")
        fn = block_masks if masking == "block" else scattered_masks
        return fn(batch_size, self.grid_size, self.cfg, generator)

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """target <- momentum * target + (1 - momentum) * context, tensor by tensor (no-op without an EMA teacher)."""
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if self.target_encoder is None:
            return
        tgt = list(self.target_encoder.parameters())
        torch._foreach_lerp_(tgt, [p.detach() for p in self.encoder.parameters()], 1.0 - momentum)

    # ---- the three parts

    def forward_context(self, imgs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The context encoder on CLS + the context patches: imgs (B, C, H, W), context (B, K) -> (B, K, D) patches."""
        x = self.encoder.embed_patches(imgs)  # (B, N, D), positions added before masking, checks the image shape
        x = gather_tokens(x, context)  # (B, K, D)
        x = torch.cat([self.encoder.cls_tokens(x.shape[0]), x], dim=1)  # (B, 1 + K, D)
        return self.encoder.forward_tokens(x)[:, 1:]  # blocks + final norm, CLS dropped: (B, K, D)

    def forward_target(self, imgs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The teacher on the WHOLE image, layer-normalised patch tokens at the targets: (B, M, L) -> (B * M, L, D).

        With the EMA teacher this runs under no_grad: the stop-gradient. Without one it is the context encoder with
        its gradient, which is what lets the representation collapse."""
        teacher = self.teacher()
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.target_encoder is None):
            h = teacher.forward_features(imgs)[:, teacher.num_prefix_tokens:]  # (B, N, D)
            h = F.layer_norm(h, h.shape[-1:])  # per token zero mean, unit variance: the paper's target normalisation
            t = gather_tokens(h, targets)  # (B, M, L, D)
        return t.flatten(0, 1)  # (B * M, L, D)

    def forward_predictor(self, ctx: torch.Tensor, masks: Masks) -> torch.Tensor:
        """ctx (B, K, D) context tokens -> predicted target tokens (B * M, L, D), one predictor pass per group."""
        B, M, L = masks.targets.shape
        pos = self.predictor_positions().expand(B, -1, -1)  # (B, N, Dp)
        x = self.predictor_in(ctx) + gather_tokens(pos, masks.context)  # (B, K, Dp)
        x = x.repeat_interleave(M, dim=0)  # (B * M, K, Dp): each group sees the whole context
        q = self.mask_token + gather_tokens(pos, masks.targets).flatten(0, 1)  # (B * M, L, Dp): where to predict
        x = torch.cat([x, q], dim=1)  # (B * M, K + L, Dp)
        return self.run_predictor(x, last=L)  # the mask tokens' outputs: (B * M, L, D)

    def forward(self, imgs: torch.Tensor, masks: Optional[Masks] = None, return_all: bool = False,
                generator: Optional[torch.Generator] = None):
        """imgs (B, C, H, W) normalised -> loss (and, with return_all, pred and target (B * M, L, D))."""
        if masks is None:
            masks = self.sample_masks(imgs.shape[0], generator)
        masks = Masks(masks.context.to(imgs.device), masks.targets.to(imgs.device))
        if masks.context.shape[0] != imgs.shape[0] or masks.targets.shape[0] != imgs.shape[0]:
            raise ValueError(f"masks are for {masks.context.shape[0]} images, the batch has {imgs.shape[0]}")
        target = self.forward_target(imgs, masks.targets)  # (B * M, L, D)
        pred = self.forward_predictor(self.forward_context(imgs, masks.context), masks)  # (B * M, L, D)
        loss = F.mse_loss(pred, target)
        return (loss, pred, target) if return_all else loss
