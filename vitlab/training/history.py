"""What happened during training, per step and per epoch: the record the notebooks plot."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np


@dataclass
class History:
    """What happened during training, per step and per epoch.

    steps:   step, epoch, loss, acc, lr, grad_norm (global, before clipping)
    layer_grad_norms: layer name -> one gradient norm per step
    epochs:  epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds
    grad_snapshots: [{"step": s, "params": {name: [mean |g|, max |g|]}}]
    """

    steps: dict = field(default_factory=lambda: defaultdict(list))
    layer_grad_norms: dict = field(default_factory=lambda: defaultdict(list))
    epochs: dict = field(default_factory=lambda: defaultdict(list))
    grad_snapshots: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "steps": dict(self.steps),
            "layer_grad_norms": dict(self.layer_grad_norms),
            "epochs": dict(self.epochs),
            "grad_snapshots": list(self.grad_snapshots),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        h = cls()
        h.steps.update({k: list(v) for k, v in d.get("steps", {}).items()})
        h.layer_grad_norms.update({k: list(v) for k, v in d.get("layer_grad_norms", {}).items()})
        h.epochs.update({k: list(v) for k, v in d.get("epochs", {}).items()})
        h.grad_snapshots.extend(d.get("grad_snapshots", []))
        return h

    @property
    def num_steps(self) -> int:
        return len(self.steps.get("step", []))

    def last(self, key: str):
        """The latest per-epoch value of `key` (e.g. 'val_acc'), or None."""
        v = self.epochs.get(key, [])
        return v[-1] if v else None

    def spikes(self, key: str = "loss", window: int = 20, factor: float = 1.5) -> list:
        """Steps where per-step `key` jumps above `factor` x the median of the `window` steps before it."""
        y = np.asarray(self.steps.get(key, []), dtype=float)
        return [int(self.steps["step"][i]) for i in range(window, len(y))
                if y[i] > factor * np.median(y[i - window : i])]
