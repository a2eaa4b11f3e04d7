"""How to train: `TrainConfig`, the device, and seeding."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar, Optional

from ..config import DictConfig
from ..data.augment import Augment

if TYPE_CHECKING:
    import torch


@dataclass
class TrainConfig(DictConfig):
    epochs: int = 10  # passes over the training set
    batch_size: int = 256  # images per optimizer step
    lr: float = 2e-3  # peak learning rate (after warm-up)
    weight_decay: float = 0.05  # AdamW decoupled weight decay; not applied to biases, norms, tokens
    warmup_epochs: float = 1.0  # linear warm-up from 0 to lr over this many epochs
    schedule: str = "cosine"  # "cosine", "onecycle" (cosine up, cosine down) or "constant" after warm-up
    min_lr: float = 1e-5  # floor of the cosine decay
    label_smoothing: float = 0.1  # cross-entropy label smoothing
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 turns clipping off
    ema_decay: float = 0.0  # per-step decay of an average of the weights (0 = off); if on, validation and the saved model use it
    augment: Optional[Augment] = field(default_factory=Augment)  # per-batch digit-safe augmentation; None = off
    seed: int = 0  # seeds shuffling, augmentation and dropout (and model init, where the caller builds it)
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    max_steps_per_epoch: Optional[int] = None  # cut epochs short (quick runs and tests)
    eval_batch_size: int = 1000  # batch size for validation
    grad_snapshot_every: int = 100  # record per-parameter mean/max |grad| every this many steps (0 = never)

    # Fields that do not change what a run computes (where it runs, how validation is batched, what is recorded).
    # Every other field, one added later included, must agree for a run to be resumed or reloaded.
    BOOKKEEPING: ClassVar[tuple] = ("device", "eval_batch_size", "grad_snapshot_every")

    @classmethod
    def run_fields(cls) -> tuple:
        """The fields a resumed or reloaded run must agree on."""
        return tuple(f.name for f in fields(cls) if f.name not in cls.BOOKKEEPING)

    def __post_init__(self):
        if isinstance(self.augment, dict):
            self.augment = Augment(**self.augment)
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")
        if self.schedule not in ("cosine", "onecycle", "constant"):
            raise ValueError(f"schedule must be 'cosine', 'onecycle' or 'constant', got {self.schedule!r}")
        if self.grad_clip < 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("grad_clip, weight_decay and warmup_epochs must be >= 0")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


# torch and numpy are imported inside the two functions below, so that a TrainConfig (and the recipes, and
# `vitlab --help`) loads without them.


def resolve_device(device: str = "auto") -> "torch.device":
    """"auto" -> CUDA when available, else the CPU; a named device is checked to exist."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (model init, dropout)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
