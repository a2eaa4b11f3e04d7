"""Reading a ViT's attention: per-layer maps, rollout, gradient-weighted maps, attention distance.

Everything here goes through the model's named methods (`forward_features(x,
return_attn=True)` and `forward_head`), never into its layers, so it works for
any model with that interface.

Shapes: B batch, L layers, h heads, T = N + 1 tokens (CLS first), g = grid side
(N = g * g patches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

HEAD_FUSIONS = ("mean", "max", "min")


@dataclass
class AttentionResult:
    logits: torch.Tensor  # (B, classes)
    attn: torch.Tensor  # (B, L, h, T, T): row q is where query token q looks
    grads: Optional[torch.Tensor] = None  # (B, L, h, T, T): d logit[target] / d attn, when asked for
    target: Optional[torch.Tensor] = None  # (B,) the class whose logit was differentiated
    num_prefix_tokens: int = 1  # tokens before the patches (CLS; DeiT adds its distillation token)
    tokens: Optional[torch.Tensor] = None  # (B, T, D) the final tokens, for features from the same pass

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.softmax(-1)


def attention_maps(model, x: torch.Tensor, with_grads: bool = False, target=None) -> AttentionResult:
    """Run `model` on images x (B, C, H, W) and collect every layer's attention weights.

    With `with_grads=True` also the gradient of the target class's logit (default:
    the predicted class) with respect to each attention matrix, for gradient-weighted maps.
    """
    was_training = model.training
    prefix = getattr(model, "num_prefix_tokens", 1)
    model.eval()
    try:
        if not with_grads:
            with torch.no_grad():
                tokens, attns = model.forward_features(x, return_attn=True)
                logits = model.forward_head(tokens)
            return AttentionResult(logits, torch.stack(attns, dim=1), num_prefix_tokens=prefix, tokens=tokens)
        with torch.enable_grad():
            tokens, attns = model.forward_features(x, return_attn=True)
            for a in attns:
                a.retain_grad()
            logits = model.forward_head(tokens)  # (B, classes)
            if target is None:
                tgt = logits.argmax(-1)
            else:
                tgt = torch.as_tensor(target, device=logits.device).expand(len(x)).long()
            model.zero_grad(set_to_none=True)
            # Images are independent, so one backward pass of the summed target logits gives every image's gradient.
            logits.gather(1, tgt[:, None]).sum().backward()
            grads = torch.stack([a.grad for a in attns], dim=1)
        model.zero_grad(set_to_none=True)
        return AttentionResult(logits.detach(), torch.stack([a.detach() for a in attns], dim=1), grads.detach(), tgt,
                               prefix)
    finally:
        model.train(was_training)


def fuse_heads(attn: torch.Tensor, head_fusion="mean") -> torch.Tensor:
    """(..., h, T, T) -> (..., T, T): mean, max or min over heads, or one head when given its index."""
    if isinstance(head_fusion, int) and not isinstance(head_fusion, bool):
        h = attn.shape[-3]
        if not 0 <= head_fusion < h:
            raise ValueError(f"head {head_fusion} does not exist; the model has heads 0..{h - 1}")
        return attn[..., head_fusion, :, :]
    if head_fusion == "mean":
        return attn.mean(dim=-3)
    if head_fusion == "max":
        return attn.amax(dim=-3)
    if head_fusion == "min":
        return attn.amin(dim=-3)
    raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS} or a head index, got {head_fusion!r}")


def attention_rollout(
    attn: torch.Tensor, head_fusion="mean", discard_ratio: float = 0.0, upto: Optional[int] = None
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each token's output draws on each input token.

    attn: (B, L, h, T, T). Per layer the heads are fused (mean / max / min, or one head
    by index), the weakest `discard_ratio`
    of the weights are zeroed (never those to the first token, CLS), the residual path is
    added as an identity, rows are renormalised, and the layers are multiplied:
    R = A_l ... A_1. `upto` keeps only the first `upto` layers. Returns (B, T, T).
    """
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    B, L, h, T, _ = attn.shape
    upto = L if upto is None else upto
    if not 1 <= upto <= L:
        raise ValueError(f"upto must be between 1 and {L}, got {upto}")
    eye = torch.eye(T, dtype=attn.dtype, device=attn.device)
    R = eye.expand(B, T, T)
    for layer in range(upto):
        a = fuse_heads(attn[:, layer], head_fusion)  # (B, T, T)
        if discard_ratio > 0:
            flat = a.reshape(B, -1).clone()
            k = int(flat.shape[1] * discard_ratio)
            if k:
                low = flat.topk(k, dim=1, largest=False).indices  # (B, k)
                keep_cls = (low % T) == 0  # a weight to the CLS key (column 0) is never discarded
                flat.scatter_(1, low, torch.where(keep_cls, flat.gather(1, low), torch.zeros_like(low, dtype=a.dtype)))
            a = flat.reshape(B, T, T)
        a = 0.5 * a + 0.5 * eye  # the residual connection carries half of each token forward unchanged
        a = a / a.sum(dim=-1, keepdim=True)
        R = a @ R  # (B, T, T)
    return R


def gradient_rollout(
    attn: torch.Tensor, grads: torch.Tensor, upto: Optional[int] = None, head_fusion="mean"
) -> torch.Tensor:
    """Gradient-weighted attention rollout (Chefer et al. 2021): relevance for the differentiated class.

    Per layer, the head-mean (or `head_fusion`) of max(grad * attn, 0) keeps only the
    attention that raised the target logit; these are accumulated through the residual stream, R += A_bar @ R,
    starting from the identity. attn, grads: (B, L, h, T, T) -> (B, T, T).
    """
    if grads is None or grads.shape != attn.shape:
        raise ValueError("gradient_rollout needs gradients of the same shape as the attention "
                         "(attention_maps(..., with_grads=True))")
    B, L, h, T, _ = attn.shape
    upto = L if upto is None else upto
    if not 1 <= upto <= L:
        raise ValueError(f"upto must be between 1 and {L}, got {upto}")
    R = torch.eye(T, dtype=attn.dtype, device=attn.device).expand(B, T, T).clone()
    for layer in range(upto):
        a = fuse_heads((grads[:, layer] * attn[:, layer]).clamp(min=0), head_fusion)  # (B, T, T)
        R = R + a @ R
    return R


def _patch_start(num_tokens: int, grid_size: int, num_prefix_tokens: int) -> int:
    """Where the g * g patch tokens start, after the model's prefix tokens (CLS, DeiT's distillation token)."""
    if num_tokens != num_prefix_tokens + grid_size * grid_size:
        raise ValueError(f"expected {num_prefix_tokens} prefix + {grid_size * grid_size} patch tokens, got {num_tokens}")
    return num_prefix_tokens


def token_map(rows: torch.Tensor, grid_size: int, normalize: bool = False, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Attention rows over all T tokens (..., T) -> the patch part as (..., g, g); the prefix tokens are dropped.

    With normalize=True the patch weights are rescaled to sum to 1 (so maps of
    different layers compare on the same footing). `num_prefix_tokens` is the model's (`AttentionResult` has it).
    """
    patches = rows[..., _patch_start(rows.shape[-1], grid_size, num_prefix_tokens):]
    if normalize:
        patches = patches / patches.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return patches.reshape(*patches.shape[:-1], grid_size, grid_size)


def upsample_map(m: torch.Tensor, image_size: int) -> torch.Tensor:
    """(..., g, g) -> (..., H, W), nearest-neighbour: each patch's weight covers its pixels."""
    g = m.shape[-1]
    if image_size % g:
        raise ValueError(f"image size {image_size} is not a multiple of the grid {g}")
    lead = m.shape[:-2]
    up = F.interpolate(m.reshape(-1, 1, g, g).float(), scale_factor=image_size // g, mode="nearest")
    return up.reshape(*lead, image_size, image_size)


def patch_distances(grid_size: int, patch_size: int) -> torch.Tensor:
    """(N, N) Euclidean distance in pixels between patch centres."""
    r, c = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    pos = torch.stack([r.flatten(), c.flatten()], dim=1).float() * patch_size  # (N, 2)
    return torch.cdist(pos, pos)


def mean_attention_distance(attn: torch.Tensor, grid_size: int, patch_size: int,
                            num_prefix_tokens: int = 1) -> torch.Tensor:
    """The ViT paper's "attention distance": per layer and head, the average pixel distance between a
    patch query and the patches it attends to, weighted by attention. (B, L, h, T, T) -> (L, h).

    Only patch-to-patch weights count (prefix tokens excluded), renormalised per query; averaged over
    queries and images. Small = local, like a convolution; large = global.
    """
    p = _patch_start(attn.shape[-1], grid_size, num_prefix_tokens)
    a = attn[..., p:, p:]  # (B, L, h, N, N)
    a = a / a.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    d = patch_distances(grid_size, patch_size).to(a)  # (N, N)
    return (a * d).sum(dim=-1).mean(dim=(0, 3))  # (L, h)


def cls_attention(attn: torch.Tensor, grid_size: int, num_prefix_tokens: int = 1) -> torch.Tensor:
    """What the CLS token looks at in each layer and head: (B, L, h, T, T) -> (B, L, h, g, g)."""
    return token_map(attn[..., 0, :], grid_size, num_prefix_tokens=num_prefix_tokens)
