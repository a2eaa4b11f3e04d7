"""How to train: `TrainConfig`, the device, and seeding."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar, Optional

from ..config import DictConfig, check_number
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
        for name in ("epochs", "batch_size", "eval_batch_size"):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("lr", self.lr, low=0, low_open=True)
        for name in ("min_lr", "weight_decay", "warmup_epochs", "grad_clip"):
            check_number(name, getattr(self, name), low=0)
        check_number("ema_decay", self.ema_decay, 0, 1, high_open=True)
        check_number("label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        check_number("grad_snapshot_every", self.grad_snapshot_every, low=0, integer=True)
        if self.max_steps_per_epoch is not None:
            check_number("max_steps_per_epoch", self.max_steps_per_epoch, low=1, integer=True)
        if self.schedule not in ("cosine", "onecycle", "constant"):
            raise ValueError(f"schedule must be 'cosine', 'onecycle' or 'constant', got {self.schedule!r}")


# torch and numpy are imported inside the two functions below, so that a TrainConfig (and the recipes, and
# `vitlab --help`) loads without them.


DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")  # what `device` may name


def resolve_device(device: str = "auto") -> "torch.device":
    """"auto" -> CUDA when available, then Apple's MPS, else the CPU; a named device is checked to exist."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    kind, _, index = str(device).partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise ValueError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device {device!r} requested but CUDA is not available; use cpu or auto")
        if index and int(index) >= n:
            raise ValueError(f"device {device!r} requested but there {'is' if n == 1 else 'are'} only {n} CUDA "
                             f"device{'s' if n > 1 else ''} (cuda:0{f'..cuda:{n - 1}' if n > 1 else ''})")
    if kind == "mps" and not has_mps:
        raise ValueError(f"device {device!r} requested but Apple's MPS is not available; use cpu or auto")
    return torch.device(device)


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (model init, dropout)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
