"""What training costs, in units that do not depend on the machine: FLOPs counted by PyTorch, and the machine's
own matrix-multiply rate to compare an achieved rate with."""

from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def training_flops_per_image(model: nn.Module, image_size: int = 28, channels: int = 1, batch_size: int = 64) -> float:
    """FLOPs of one training image: forward and backward of cross-entropy, counted by `torch.utils.flop_counter`.

    The counter sees matrix multiplies, convolutions and attention (what dominates); element-wise work (norms,
    GELU, the optimizer) is not counted, as in every published FLOP figure. The count is per image, so a recipe
    costs this x images per epoch x epochs. The model's gradients are left as they were.
    """
    from torch.utils.flop_counter import FlopCounterMode

    dev = next(model.parameters()).device
    x = torch.randn(batch_size, channels, image_size, image_size, device=dev)
    was_training = model.training
    saved = [(p, p.grad) for p in model.parameters()]
    model.train()
    try:
        with FlopCounterMode(display=False) as counter:
            logits = model(x)
            F.cross_entropy(logits, torch.zeros(batch_size, dtype=torch.long, device=dev)).backward()
    finally:
        for p, g in saved:
            p.grad = g
        model.train(was_training)
    return counter.get_total_flops() / batch_size


def sgemm_rate(n: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 matrix-multiply rate, FLOP/s, on an n x n product (the best of `repeats`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: threads, caches
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best
