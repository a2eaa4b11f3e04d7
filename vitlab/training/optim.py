"""The optimizer and the learning-rate schedule: AdamW groups (what is decayed), the fused AdamW, the schedule as a
pure function of the step (so resuming is exact), and how parameters are grouped into layers for the gradient plots."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def lr_at(step: int, total: int, warmup: int, peak: float, schedule: str, floor: float) -> float:
    """The learning rate at `step` (0-based) of `total` steps; a pure function, so resuming is exact."""
    if schedule == "onecycle":
        # Like torch's OneCycleLR: cosine from peak/25 up to peak over the warm-up, then cosine to the floor.
        up = max(warmup, 1)
        if step < up:
            return peak / 25 + (peak - peak / 25) * 0.5 * (1 - math.cos(math.pi * step / up))
        t = (step - up) / max(total - up, 1)
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    t = (step - warmup) / max(total - warmup, 1)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def layer_of(param_name: str) -> str:
    """Group parameters by layer: 'blocks.3.attn.qkv.weight' -> 'blocks.3', 'head.bias' -> 'head'."""
    parts = param_name.split(".")
    if len(parts) > 1 and parts[1].isdigit():
        return ".".join(parts[:2])
    return parts[0]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay matrices and conv kernels; not biases, norm scales, CLS or position tokens."""
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, weight_decay: float, lr: float) -> torch.optim.Optimizer:
    """AdamW over `param_groups`, fused into one kernel per step where PyTorch has one for the model's device (the
    CPU and CUDA do): the per-parameter loop of the plain AdamW costs about a tenth of a small ViT's training step."""
    groups = param_groups(model, weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
