"""DeiT's distilled ViT (Touvron et al. 2021): a second learned token beside CLS, with its own head.

The CLS head learns from the labels, the distillation head from a teacher (see `vitlab.methods.distillation`);
both tokens attend to the same patches through the same blocks. At inference the two heads' logits are averaged.

Shapes: B = batch, K = classes, D = width, N = patches; its tokens are (B, 2 + N, D): [CLS, DIST, patches].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .configs import ViTConfig
from .vit import ViT


@dataclass
class DeiTConfig(ViTConfig):
    """A ViTConfig for `DeiT`; the same fields, its own type so checkpoints know which model to build."""

    def __post_init__(self):
        super().__post_init__()
        if self.pool != "cls":
            # The two heads read their own tokens; mean pooling would give both heads the same input.
            raise ValueError(f"DeiT reads the CLS and distillation tokens, so pool must be 'cls', got {self.pool!r}")


class DeiT(ViT):
    """DeiT's ViT with a distillation token (Touvron et al. 2021, section 4).

    Tokens entering the blocks: [CLS, DIST, patch_1 .. patch_N] + positions, (B, 2 + N, D).
    `forward_heads(tokens)` -> (cls_logits, dist_logits), each (B, K): the CLS head is trained on the
    labels, the distillation head on the teacher. `forward(x)` averages them, which is how DeiT predicts.
    """

    num_prefix_tokens = 2  # CLS and DIST before the patches

    def __init__(self, cfg: DeiTConfig):
        if not isinstance(cfg, DeiTConfig):
            cfg = DeiTConfig(**cfg.to_dict())
        super().__init__(cfg)
        self.dist_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))  # (1, 1, D)
        # Its own position, next to the base class's (1, 1 + N, D) table, which stays untouched so that the
        # inherited `embed_patches` and `cls_tokens` keep working. Fixed sin-cos tables give CLS a zero
        # position; the distillation token gets none either.
        self.dist_pos_embed = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.pos_embed == "learned" else None
        self.head_dist = nn.Linear(cfg.dim, cfg.num_classes)
        nn.init.trunc_normal_(self.dist_token, std=0.02)
        if self.dist_pos_embed is not None:
            nn.init.trunc_normal_(self.dist_pos_embed, std=0.02)
        self._init_weights(self.head_dist)

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh CLS and distillation heads of `num_classes` outputs; every other weight is kept."""
        super().reset_classifier(num_classes)
        old = self.head_dist
        self.head_dist = nn.Linear(self.cfg.dim, num_classes).to(old.weight.device, old.weight.dtype)
        self._init_weights(self.head_dist)

    def no_weight_decay(self) -> set:
        return super().no_weight_decay() | {"dist_token", "dist_pos_embed"}

    def dist_tokens(self, batch_size: int) -> torch.Tensor:
        """The distillation token with its position, once per image: (B, 1, D)."""
        tok = self.dist_token if self.dist_pos_embed is None else self.dist_token + self.dist_pos_embed
        return tok.expand(batch_size, -1, -1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 2 + N, D): [CLS, DIST, patches], each with its position."""
        patches = self.embed_patches(x)  # (B, N, D)
        B = patches.shape[0]
        return self.pos_drop(torch.cat([self.cls_tokens(B), self.dist_tokens(B), patches], dim=1))

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final-normed tokens (B, 2 + N, D) -> (CLS head logits, distillation head logits), each (B, K)."""
        return self.head(x[:, 0]), self.head_dist(x[:, 1])

    def forward_pool(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of the CLS and distillation tokens, as timm does: (B, 2 + N, D) -> (B, D)."""
        return (x[:, 0] + x[:, 1]) / 2

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The mean of the two heads' logits (B, K); with pre_logits, the pooled tokens (B, D)."""
        if pre_logits:
            return self.forward_pool(x)
        cls_logits, dist_logits = self.forward_heads(x)
        return (cls_logits + dist_logits) / 2


def deit_config(cfg: ViTConfig) -> DeiTConfig:
    """The DeiT twin of a ViT config: same fields, DeiTConfig type."""
    return DeiTConfig(**cfg.to_dict())
