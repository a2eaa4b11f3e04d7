"""Models over sets of per-digit embeddings: the sum of a sequence of digits, and "does the anchor's digit occur".

Every model reads items (B, L, E), one embedding per image (from any image encoder), and a key-padding mask
(B, L), True where an item is real. Padded items are ignored everywhere (attention, pooling, the sum
convolution), so appending padding changes nothing; nothing depends on the order of the items except the fully
connected baseline, which reads the padded concatenation as the published baseline did.

    SumSetModel(SetConfig(kind="deepsets", head="digits"))(items, mask) -> SetOutput(pred, ...)
    AnchorSetModel(SetConfig(kind="cross"))(anchor, items, mask) -> (logit (B,), attention (B, L) or None)
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import DictConfig

NEG = -1e4  # "log 0" that stays finite, so no gradient becomes NaN
TINY = 1e-30  # a sum this much less likely than the likeliest one reads as impossible (log-probability NEG)


@dataclass
class SetConfig(DictConfig):
    embed_dim: int = 128  # E, the width of the per-digit embeddings the encoder gives
    dim: int = 128  # D, the width inside the set model
    kind: str = "deepsets"  # sum: "fc", "deepsets", "transformer"; anchor: "fc", "cross", "self"
    pool: str = "sum"  # how a set of tokens becomes one vector: "sum", "mean" or "cls" (transformer only)
    head: str = "digits"  # sum task: "regress" (MSE), "class" (0..9*max_len), "digits" (convolve per-digit distributions)
    max_len: int = 10  # longest sequence accepted; the "class" head covers sums 0..9*max_len
    depth: int = 2  # transformer blocks ("transformer", "self")
    heads: int = 4  # attention heads; must divide dim
    mlp_ratio: float = 2.0  # hidden width of MLPs as a multiple of dim
    use_mask: bool = True  # False reproduces the published model: every slot (padding included) attended and pooled
    dropout: float = 0.0  # dropout inside the MLPs

    def __post_init__(self):
        kinds = ("fc", "deepsets", "transformer", "cross", "self")
        if self.kind not in kinds:
            raise ValueError(f"kind must be one of {kinds}, got {self.kind!r}")
        if self.pool not in ("sum", "mean", "cls"):
            raise ValueError(f"pool must be 'sum', 'mean' or 'cls', got {self.pool!r}")
        if self.head not in ("regress", "class", "digits"):
            raise ValueError(f"head must be 'regress', 'class' or 'digits', got {self.head!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {self.max_len}")


def check_set(items: torch.Tensor, mask: torch.Tensor, max_len: int, embed_dim: Optional[int] = None) -> None:
    """Raise a one-line ValueError for a batch that is not a valid set: wrong shapes, an empty sequence, one longer
    than `max_len`, a mask that is not boolean or does not match the items."""
    if not isinstance(items, torch.Tensor) or items.ndim != 3:
        got = tuple(items.shape) if isinstance(items, torch.Tensor) else type(items).__name__
        raise ValueError(f"items must be (B, L, E), got {got}")
    if embed_dim is not None and items.shape[2] != embed_dim:
        raise ValueError(f"items have embeddings of width {items.shape[2]}, the model expects {embed_dim}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = real item), got {getattr(mask, 'dtype', type(mask))}")
    if tuple(mask.shape) != tuple(items.shape[:2]):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match items of shape {tuple(items.shape)}")
    n = mask.sum(1)  # (B,) lengths
    if (n == 0).any():
        raise ValueError(f"sequence {int(torch.nonzero(n == 0)[0])} has length 0; every sequence needs 1 item or more")
    if (n > max_len).any():
        i = int(torch.nonzero(n > max_len)[0])
        raise ValueError(f"sequence {i} has length {int(n[i])}, over the maximum of {max_len}")


def mlp(d_in: int, d_hidden: int, d_out: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out))


class MaskedBlock(nn.Module):
    """A pre-norm transformer block whose attention skips padded keys (no positional embedding anywhere)."""

    def __init__(self, cfg: SetConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attn = nn.MultiheadAttention(cfg.dim, cfg.heads, batch_first=True)
        self.mlp = mlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio), cfg.dim, cfg.dropout)

    def forward(self, x: torch.Tensor, pad: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.norm1(x)  # (B, T, D)
        x = x + self.attn(h, h, h, key_padding_mask=pad, need_weights=False)[0]  # pad (B, T): True = ignore
        return x + self.mlp(self.norm2(x))


def pool_tokens(x: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, L, D) tokens with a (B, L) mask -> (B, D): the sum or mean over the real tokens only."""
    s = (x * mask[..., None]).sum(1)  # (B, D)
    return s if how == "sum" else s / mask.sum(1, keepdim=True)


def sum_distribution(digit_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-distribution of the sum of independent digits: (B, L, 10) logits, (B, L) mask -> (B, 9 L + 1).

    The distribution of a sum is the convolution of the digits' distributions, done one item at a time (a grouped
    conv1d, one group per sequence). After each step the distribution is divided by its largest entry and the
    log of that factor kept aside, so nothing underflows however long the sequence. A padded item is the digit 0
    with certainty, so it leaves the distribution as it is. Sums less likely than TINY times the likeliest read NEG.
    """
    B, L, K = digit_logits.shape
    p = F.softmax(digit_logits.float(), -1)  # (B, L, K)
    zero = torch.zeros_like(p)
    zero[..., 0] = 1.0
    p = torch.where(mask[..., None], p, zero)
    S = (K - 1) * L + 1
    dist = F.pad(p.new_ones(B, 1), (0, S - 1))  # (B, S): the empty sum is 0
    log_scale = p.new_zeros(B, 1)
    for i in range(L):
        w = p[:, i].flip(-1)[:, None]  # (B, 1, K): conv1d correlates, so flip to convolve
        dist = F.conv1d(dist[None], w, padding=K - 1, groups=B)[0, :, :S]  # (B, S): sum_k p_k dist[s - k]
        top = dist.amax(1, keepdim=True)  # (B, 1), > 0: the distribution keeps its mass
        dist, log_scale = dist / top, log_scale + top.log()
    return (dist.clamp_min(TINY).log() + log_scale).masked_fill(dist < TINY, NEG)  # (B, S)


@dataclass
class SetOutput:
    pred: torch.Tensor  # (B,) the predicted sum (rounded for regression, argmax otherwise), long
    out: torch.Tensor  # what the loss reads: (B,) regression value, or (B, S) logits / log-probabilities of the sum
    digit_logits: Optional[torch.Tensor] = None  # (B, L, 10) per-item digit logits ("digits" head)


class SumSetModel(nn.Module):
    """The sum of a sequence of digit embeddings: a fully connected baseline, Deep Sets, or a masked transformer,
    with a regression, classification or per-digit-distribution head."""

    KINDS = ("fc", "deepsets", "transformer")  # the config kinds it builds

    def __init__(self, cfg: SetConfig):
        super().__init__()
        if cfg.kind not in self.KINDS:
            raise ValueError(f"a sum model's kind is 'fc', 'deepsets' or 'transformer', got {cfg.kind!r}")
        if cfg.kind == "fc" and cfg.head == "digits":
            raise ValueError("the fully connected baseline has no per-item outputs, so no 'digits' head")
        if cfg.pool == "cls" and cfg.kind != "transformer":
            raise ValueError("pool 'cls' needs kind 'transformer'")
        self.cfg = cfg
        D, H = cfg.dim, int(cfg.dim * cfg.mlp_ratio)
        if cfg.kind == "fc":
            self.body = mlp(cfg.max_len * cfg.embed_dim, H, D, cfg.dropout)  # the padded concatenation
        else:
            self.phi = mlp(cfg.embed_dim, H, D, cfg.dropout)  # per item
        if cfg.kind == "transformer":
            self.cls_token = nn.Parameter(torch.randn(1, 1, D) * 0.02)
            self.blocks = nn.ModuleList([MaskedBlock(cfg) for _ in range(cfg.depth)])
            self.norm = nn.LayerNorm(D)
        if cfg.head == "digits":
            self.digit_head = nn.Linear(D, 10)  # per item
        else:
            self.rho = mlp(D, H, 1 if cfg.head == "regress" else 9 * cfg.max_len + 1, cfg.dropout)

    def tokens(self, items: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Per-item tokens (B, L, D) and the CLS token (B, D) (transformer only, else None)."""
        x = self.phi(items)  # (B, L, D)
        if self.cfg.kind != "transformer":
            return x, None
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1)  # (B, 1 + L, D)
        keep = torch.cat([mask.new_ones(len(x), 1), mask], 1)
        pad = ~keep if self.cfg.use_mask else None
        for blk in self.blocks:
            x = blk(x, pad)
        x = self.norm(x)
        return x[:, 1:], x[:, 0]

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> SetOutput:
        check_set(items, mask, self.cfg.max_len, self.cfg.embed_dim)
        c = self.cfg
        if c.kind == "fc":
            if items.shape[1] > c.max_len:
                raise ValueError(f"the fully connected baseline reads at most {c.max_len} slots, got {items.shape[1]}")
            x = items * mask[..., None] if c.use_mask else items
            pooled = self.body(F.pad(x, (0, 0, 0, c.max_len - x.shape[1])).flatten(1))  # (B, D)
        else:
            tok, cls = self.tokens(items, mask)  # (B, L, D), (B, D) or None
            if c.head == "digits":
                digit_logits = self.digit_head(tok)  # (B, L, 10)
                dist = sum_distribution(digit_logits, mask if c.use_mask else torch.ones_like(mask))  # (B, 9 L + 1)
                dist = F.pad(dist, (0, 9 * c.max_len + 1 - dist.shape[1]), value=NEG)  # (B, 9 max_len + 1)
                return SetOutput(dist.argmax(1), dist, digit_logits)
            keep = mask if c.use_mask else torch.ones_like(mask)
            pooled = cls if c.pool == "cls" else pool_tokens(tok, keep, c.pool)  # (B, D)
        out = self.rho(pooled)
        if c.head == "regress":
            v = out[:, 0]  # (B,)
            return SetOutput(v.round().clamp_min(0).long(), v)
        return SetOutput(out.argmax(1), out)  # (B, S) logits


class AnchorSetModel(nn.Module):
    """Does the anchor's digit occur in the sequence? Cross-attention with the anchor as the query ("cross"), a
    transformer that sees the anchor as one more token ("self"), or the fully connected baseline ("fc").

    forward(anchor (B, E), items (B, L, E), mask (B, L)) -> (logit (B,), attention over the items (B, L) or None)
    """

    KINDS = ("fc", "cross", "self")  # the config kinds it builds

    def __init__(self, cfg: SetConfig):
        super().__init__()
        if cfg.kind not in self.KINDS:
            raise ValueError(f"an anchor model's kind is 'fc', 'cross' or 'self', got {cfg.kind!r}")
        self.cfg = cfg
        D, H = cfg.dim, int(cfg.dim * cfg.mlp_ratio)
        if cfg.kind == "fc":
            self.body = mlp((cfg.max_len + 1) * cfg.embed_dim, H, D, cfg.dropout)
        else:
            self.phi = mlp(cfg.embed_dim, H, D, cfg.dropout)  # shared by the anchor and the items
        if cfg.kind == "cross":
            self.attn = nn.MultiheadAttention(D, cfg.heads, batch_first=True)
            self.norm = nn.LayerNorm(D)
        if cfg.kind == "self":
            self.cls_token = nn.Parameter(torch.randn(1, 1, D) * 0.02)
            self.type_embed = nn.Parameter(torch.randn(2, D) * 0.02)  # anchor, item: the only thing telling them apart
            self.blocks = nn.ModuleList([MaskedBlock(cfg) for _ in range(cfg.depth)])
            self.norm = nn.LayerNorm(D)
        self.out = mlp(3 * D if cfg.kind == "cross" else D, H, 1, cfg.dropout)

    def forward(self, anchor: torch.Tensor, items: torch.Tensor, mask: torch.Tensor):
        check_set(items, mask, self.cfg.max_len, self.cfg.embed_dim)
        if anchor.ndim != 2 or anchor.shape != (items.shape[0], items.shape[2]):
            raise ValueError(f"anchor must be (B, E) = {(items.shape[0], items.shape[2])}, got {tuple(anchor.shape)}")
        c = self.cfg
        if c.kind == "fc":
            x = F.pad(items * mask[..., None], (0, 0, 0, c.max_len - items.shape[1]))  # (B, max_len, E)
            return self.out(self.body(torch.cat([anchor, x.flatten(1)], 1)))[:, 0], None
        a, x = self.phi(anchor), self.phi(items)  # (B, D), (B, L, D)
        if c.kind == "cross":
            q = self.norm(a)[:, None]  # (B, 1, D): the anchor asks ...
            kv = self.norm(x)  # ... every item in the sequence
            o, w = self.attn(q, kv, kv, key_padding_mask=~mask, need_weights=True)  # (B, 1, D), (B, 1, L)
            o = o[:, 0]
            return self.out(torch.cat([a, o, a * o], 1))[:, 0], w[:, 0]
        t = torch.cat([self.cls_token.expand(len(x), -1, -1), (a + self.type_embed[0])[:, None],
                       x + self.type_embed[1]], 1)  # (B, 2 + L, D)
        pad = torch.cat([mask.new_zeros(len(x), 2), ~mask], 1)
        for blk in self.blocks:
            t = blk(t, pad)
        return self.out(self.norm(t[:, 0]))[:, 0], None


def log_ceiling(p: float, lengths) -> float:
    """The exact-sum accuracy of perfectly combined digits read with accuracy `p`, averaged over `lengths`: p^L."""
    return sum(math.pow(p, n) for n in lengths) / len(lengths)


def allow_length(model: nn.Module, max_len: int) -> nn.Module:
    """The same model (weights shared) accepting sequences up to `max_len`, for length extrapolation. Only heads
    whose size does not depend on the length extrapolate: not the fully connected baseline, not the "class" head."""
    if model.cfg.kind == "fc" or (isinstance(model, SumSetModel) and model.cfg.head == "class"):
        raise ValueError(f"a {model.cfg.kind!r} model with a {model.cfg.head!r} head has a fixed maximum length "
                         f"of {model.cfg.max_len}")
    m = copy.copy(model)  # shares the parameters; only the config differs
    m.cfg = dataclasses.replace(model.cfg, max_len=max_len)
    return m
