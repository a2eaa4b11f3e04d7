"""What a training step minimises: the `Objective` interface and classification cross-entropy.

Other objectives (masked autoencoding, distillation, outlier exposure) live with their methods in
`vitlab.methods` and plug into the same `Trainer`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import UNLABELLED


class Objective:
    """What a training step minimises: ``objective(model, x, y) -> (loss, logits or None)``.

    The default is classification cross-entropy. Subclasses (e.g. masked
    autoencoding, distillation) return logits only when accuracy means
    something. `to_dict()` describes the objective; runs record it, so a run
    cannot be resumed or reloaded under another objective.
    """

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"name": type(self).__name__}


def labelled_cross_entropy(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0,
                           over: str = "labelled") -> torch.Tensor:
    """Cross-entropy of the labelled images of a batch: (B, K), (B,) -> scalar.

    Images labelled `UNLABELLED` are skipped (cross-entropy's ignore_index). `over` is what the sum is divided by:
    "labelled", the number of labelled images (their mean; a batch without any label gives 0 rather than
    F.cross_entropy's nan, so a mixed transfer set can draw such a batch safely), or "batch", the batch size B (an
    unlabelled image adds 0 to the mean; what a loss needs that also has a term for every image, such as
    distillation, so that a few labelled images in a batch do not outweigh the rest).
    """
    if over not in ("labelled", "batch"):
        raise ValueError(f"over must be 'labelled' or 'batch', got {over!r}")
    n = int((y != UNLABELLED).sum())
    if n == len(y):
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    total = F.cross_entropy(logits, y, label_smoothing=label_smoothing, ignore_index=UNLABELLED, reduction="sum")
    return total / (max(n, 1) if over == "labelled" else len(y))


class CrossEntropy(Objective):
    """Cross-entropy on the model's logits, with label smoothing; unlabelled images are skipped."""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def __call__(self, model, x, y):
        logits = model(x)  # (B, classes)
        return labelled_cross_entropy(logits, y, self.label_smoothing), logits

    def to_dict(self) -> dict:
        return {"name": "CrossEntropy", "label_smoothing": self.label_smoothing}
