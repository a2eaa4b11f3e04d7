"""Inference over a dataset, the one loop every reader of a model shares: evaluation, validation, features,
reconstruction losses. Eval mode and no gradients inside; the model's mode is restored afterwards."""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn

from ..data import ImageSet


@torch.no_grad()
def map_batches(model: nn.Module, data: ImageSet, fn: Optional[Callable] = None, batch_size: int = 1000,
                device=None) -> torch.Tensor:
    """``fn(model, x, y)`` on every batch of `data` in order, in eval mode, concatenated on the CPU: (N, ...).

    `fn` defaults to the forward pass (logits). x is a normalised (B, C, H, W) batch and y its (B,) labels, both on
    the model's device. When `fn` returns a tuple of tensors, so does this, each concatenated on its own.
    """
    device = next(model.parameters()).device if device is None else torch.device(device)
    fn = fn if fn is not None else (lambda m, x, y: m(x))
    was_training = model.training
    model.eval()
    try:
        out = [fn(model, x.to(device), y.to(device)) for x, y in data.batches(batch_size)]
    finally:
        model.train(was_training)
    if out and isinstance(out[0], tuple):
        return tuple(torch.cat([o[i].float().cpu() for o in out]) for i in range(len(out[0])))
    return torch.cat([o.float().cpu() for o in out])


def predict_logits(model: nn.Module, data: ImageSet, batch_size: int = 1000, device=None) -> torch.Tensor:
    """Logits for every image of `data`, in order: (N, classes)."""
    return map_batches(model, data, batch_size=batch_size, device=device)


class NonFiniteOutput(ValueError):
    """A model answered with nan or infinite values: its weights (or normalisation) are broken."""


def check_finite(values: torch.Tensor, what: str = "the model") -> torch.Tensor:
    """`values` unchanged when every entry is finite; else `NonFiniteOutput`, saying how many rows are not."""
    bad = ~torch.isfinite(values)
    if bad.any():
        rows = int(bad.reshape(len(values), -1).any(1).sum()) if values.ndim else 1
        raise NonFiniteOutput(f"{what} gives non-finite outputs (nan or inf) for {rows} of {max(len(values), 1)} "
                              f"images: its weights or normalisation are broken (a run that diverged?)")
    return values
