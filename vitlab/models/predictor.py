"""The narrow transformer that predicts tokens from tokens: MAE's decoder and I-JEPA's predictor, one implementation.

Both are built the same way (He et al. 2022, Assran et al. 2023): embed the encoder's tokens to a narrower width Dp,
let one learned mask token stand in for every token to predict, add fixed 2-D sin-cos positions (a mask token is
told only WHERE it is), run a few Transformer blocks, normalise, and project to what is predicted (a patch's pixels
for the MAE, a target token at the encoder's width for I-JEPA). The models differ only in how they arrange the
tokens around the blocks, which each keeps in its own `forward_*`.

A model gets the predictor by subclassing `TokenPredictor` and calling `build_predictor` once. The layers are then
the model's own attributes, under the names of its `PREDICTOR` table (``decoder_*`` in the MAE, ``predictor_*`` in
I-JEPA), not a submodule's: every checkpoint already written keeps its keys, and the parameters keep their order,
which a saved optimizer state is matched by when a run resumes.

Shapes: B batch, T tokens, D encoder width, Dp predictor width, O output width.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import torch
import torch.nn as nn

from .configs import ViTConfig
from .vit import Block, ViT, sincos_pos_embed_2d


class PredictorNames(NamedTuple):
    """Where a model keeps its predictor's layers (its attribute names, hence its checkpoint keys)."""

    embed: str  # nn.Linear(D, Dp)
    pos_embed: str  # the fixed positions, a buffer (1, T, Dp) that checkpoints leave out
    blocks: str  # nn.ModuleList of Blocks at width Dp
    norm: str  # the final nn.LayerNorm(Dp)
    proj: str  # nn.Linear(Dp, O)


def predictor_config(encoder: ViTConfig, dim: int, depth: int, heads: int, mlp_ratio: float) -> ViTConfig:
    """The ViTConfig a predictor's blocks are built from: the encoder's, at the predictor's own width, depth, heads
    and MLP, without dropout or positions of its own."""
    return dataclasses.replace(encoder, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio, dropout=0.0,
                               attn_dropout=0.0, pos_embed="none")


def check_predictor_shape(what: str, dim: int, depth: int, heads: int, encoder=None, model: str = "") -> None:
    """One-line ValueErrors for a predictor the blocks or the 2-D sin-cos positions cannot be built for, and (given
    the `encoder` config) for an encoder `model` cannot read: both take its pre-norm tokens."""
    if encoder is not None and not encoder.prenorm:
        raise ValueError(f"{model} needs a pre-norm encoder (prenorm=True)")
    if depth < 1:
        raise ValueError(f"{what}_depth must be >= 1, got {depth}")
    if dim % heads:
        raise ValueError(f"{what}_dim {dim} is not divisible by {what}_heads {heads}")
    if dim % 4:
        raise ValueError(f"the {what}'s 2-D sin-cos positions need {what}_dim divisible by 4, got {dim}")


class TokenPredictor(nn.Module):
    """Base class of a model with a narrow token predictor; subclasses name its layers in `PREDICTOR`.

        class MAE(TokenPredictor):
            PREDICTOR = PredictorNames("decoder_embed", "decoder_pos_embed", "decoder_blocks", "decoder_norm",
                                       "decoder_pred")
            def __init__(self, cfg):
                super().__init__()
                self.encoder = ViT(cfg.encoder)
                self.build_predictor(D, predictor_cfg, O, grid, cls_row=True)

        x = self.predictor_in(tokens) + self.predictor_positions()   # (B, T, D) -> (B, T, Dp), with mask tokens
        out = self.run_predictor(x)                                   # (B, T, O)
    """

    PREDICTOR: PredictorNames

    def build_predictor(self, in_dim: int, cfg: ViTConfig, out_dim: int, grid: int, cls_row: bool = False) -> None:
        """Create and initialise the predictor's layers, in this order (it fixes which random numbers each weight
        gets for a seed): embedding, mask token, positions, blocks, norm, projection; then timm's ViT init of the
        layers and a truncated normal for the mask token. `cls_row`: the positions start with a zero row for a CLS
        token (the MAE decoder keeps the encoder's CLS token; I-JEPA's predictor has none)."""
        n, Dp = self.PREDICTOR, cfg.dim
        setattr(self, n.embed, nn.Linear(in_dim, Dp))  # encoder width -> predictor width
        self.mask_token = nn.Parameter(torch.zeros(1, 1, Dp))  # one learned token for every token to predict
        pe = sincos_pos_embed_2d(Dp, grid)  # (N, Dp)
        if cls_row:
            pe = torch.cat([torch.zeros(1, Dp), pe])  # (1 + N, Dp)
        self.register_buffer(n.pos_embed, pe.unsqueeze(0), persistent=False)
        setattr(self, n.blocks, nn.ModuleList([Block(cfg) for _ in range(cfg.depth)]))
        setattr(self, n.norm, nn.LayerNorm(Dp, eps=cfg.norm_eps))
        setattr(self, n.proj, nn.Linear(Dp, out_dim))
        for name in (n.embed, n.blocks, n.norm, n.proj):
            getattr(self, name).apply(ViT._init_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def predictor_in(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder tokens (B, T, D) -> predictor tokens (B, T, Dp)."""
        return getattr(self, self.PREDICTOR.embed)(x)

    def predictor_positions(self) -> torch.Tensor:
        """The fixed positions (1, T, Dp), in patch order (after a zero CLS row, with `cls_row`)."""
        return getattr(self, self.PREDICTOR.pos_embed)

    def run_predictor(self, x: torch.Tensor, last: Optional[int] = None) -> torch.Tensor:
        """The blocks over predictor tokens (B, T, Dp), then the norm and projection: (B, T, O), or of the `last`
        tokens only (B, last, O), the ones that are predicted."""
        n = self.PREDICTOR
        for blk in getattr(self, n.blocks):
            x, _ = blk(x)
        if last is not None:
            x = x[:, -last:]
        return getattr(self, n.proj)(getattr(self, n.norm)(x))
