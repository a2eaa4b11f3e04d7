"""What a training run does besides training, as Trainer callbacks (minGPT's style): the checkpoint written every
epoch, the weight average (EMA), TensorBoard, the progress bar, the line printed per epoch and the per-layer
gradient statistics. `Show` says which of the visible ones a run gets; `run_callbacks` builds a named run's list.

A callback is any object with some of these methods, each called with the trainer (see `Trainer.EVENTS`):

    on_fit_start     fit() begins, after a resume has restored the checkpoint
    on_epoch_start   an epoch begins (its draws already seeded)
    on_backward_end  this step's gradients are ready, before clipping; trainer.layer_grad_sq holds each layer's
                     squared gradient norm and trainer.named_grads the (name, parameter) pairs that have gradients
    on_step_end      the optimizer step is taken and recorded in trainer.history.steps; trainer.step counts it
    on_validate_start  the epoch's steps are done; validation (when there is a validation set) comes next
    on_epoch_end     the epoch is recorded in trainer.history.epochs; trainer.epoch counts it
    on_train_end     fit() finished every epoch (or was stopped); not called when training raised
    on_fit_end       fit() is leaving, whether it finished or raised: release what on_fit_start took

Callbacks run in the order the trainer holds them: the ones `TrainConfig` decides (GradStats, WeightAverage)
first, so a user's callback sees this step's average and gradient record.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..paths import shown
from . import distributed as dist


@dataclass(frozen=True)
class Show:
    """What a run shows while it trains: a progress bar, TensorBoard events, one printed line per epoch."""

    progress: bool = True
    tensorboard: bool = True
    verbose: bool = True


QUIET = Show(False, False, False)  # nothing printed, no bar, no tb/ folder: tests, sweeps, nested runs


def run_callbacks(run_dir: Path, show: Show, extra: dict) -> list:
    """The callbacks a named run in `run_dir` gets: its checkpoint (with `extra` recorded in it) and what `show` asks."""
    run_dir = Path(run_dir)
    return standard_callbacks(run_dir / "checkpoint.pt", extra, run_dir / "tb" if show.tensorboard else None,
                              show.progress, show.verbose)


def standard_callbacks(checkpoint_path=None, extra: Optional[dict] = None, tensorboard_dir=None,
                       progress: bool = False, verbose: bool = False) -> list:
    """The callbacks the Trainer's keyword arguments name (None / False: left out), in the order they run."""
    out = [Checkpoint(checkpoint_path, extra)] if checkpoint_path is not None else []
    out += [TensorBoard(tensorboard_dir)] if tensorboard_dir is not None else []
    out += [ProgressBar()] if progress else []
    return out + ([EpochLog()] if verbose else [])


def keyword_callbacks(given: list, checkpoint_path, extra: dict, tensorboard_dir, progress: Optional[bool],
                      verbose: Optional[bool], show: Optional[Show]) -> list:
    """The callbacks the Trainer's keyword arguments ask for, besides the ones `given`. Left out (None), progress
    and verbose follow `show`, else are on unless callbacks were given (they are then the whole presentation)."""
    for cb in given:
        if isinstance(cb, (GradStats, WeightAverage)):
            raise ValueError(f"{type(cb).__name__} is the trainer's own, decided by the TrainConfig "
                             f"(grad_snapshot_every, ema_decay): leave it out of callbacks")
    if checkpoint_path is not None and any(isinstance(cb, Checkpoint) for cb in given):
        raise ValueError("pass either checkpoint_path or a Checkpoint callback, not both")
    default = show if show is not None else (QUIET if given else Show())
    tensorboard_dir = tensorboard_dir if show is None or show.tensorboard else None
    asked = standard_callbacks(checkpoint_path, extra, tensorboard_dir,
                               default.progress if progress is None else progress,
                               default.verbose if verbose is None else verbose)
    return [cb for cb in asked if not any(type(g) is type(cb) for g in given)]  # asked twice: once is enough


class OnEvent:
    """A plain function as a callback for one event: what `Trainer.add_callback` adds."""

    def __init__(self, event: str, fn):
        self.event = event
        setattr(self, event, fn)


class Checkpoint:
    """Write the run's checkpoint (`Trainer.save`) at the end of every epoch; `fit(resume=True)` resumes from `path`.
    `extra` is recorded in it as is (a named run's name, spec and setup, which a resume is checked against)."""

    def __init__(self, path, extra: Optional[dict] = None):
        self.path = Path(path)
        self.extra = dict(extra or {})

    def on_epoch_end(self, trainer) -> None:
        trainer.save(self.path)


class WeightAverage:
    """An exponential moving average of the weights (EMA), updated after each optimizer step.

    It keeps a copy of every floating-point tensor of the model's state dict. Validation, the checkpoint's model
    and the model fit() leaves use the average (`swapped_in`); the optimizer never sees it. The Trainer adds one
    when `TrainConfig.ema_decay` is set, and tracks the model's weights from the moment it is built."""

    def __init__(self, decay: float):
        self.decay = decay
        self.live: dict = {}  # the model's own tensors: the weights being trained
        self.average: dict = {}

    def track(self, model: torch.nn.Module) -> "WeightAverage":
        """Start averaging `model`'s weights, from their present values."""
        self.live = {k: t for k, t in model.state_dict().items() if t.is_floating_point()}
        self.average = {k: t.detach().clone() for k, t in self.live.items()}
        return self

    @property
    def active(self) -> bool:
        return bool(self.average)

    def on_step_end(self, trainer) -> None:
        if not self.average:
            return
        s = trainer.step - 1  # the step just taken: trainer.step already counts it
        # Warm-up of the decay (as TensorFlow's ExponentialMovingAverage with num_updates): early on the average
        # follows the weights closely, so it does not remember the random initialisation.
        d = min(self.decay, (1 + s) / (10 + s))
        torch._foreach_lerp_(list(self.average.values()), list(self.live.values()), 1 - d)

    @contextmanager
    def swapped_in(self):
        """Inside: the model holds the average; afterwards, the weights being trained again."""
        if not self.average:
            yield
            return
        backup = {k: t.clone() for k, t in self.live.items()}
        try:
            with torch.no_grad():
                torch._foreach_copy_(list(self.live.values()), list(self.average.values()))
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(list(self.live.values()), list(backup.values()))

    def restore(self, model: torch.nn.Module, train_weights: dict) -> None:
        """After a checkpoint's model (the average) was loaded into `model`: keep it as the average and put the
        weights being trained (`train_weights`, saved beside it) back into the model."""
        with torch.no_grad():
            torch._foreach_copy_(list(self.average.values()), list(self.live.values()))
        model.load_state_dict(train_weights)

    def on_train_end(self, trainer) -> None:
        # What fit() returns is what the checkpoint holds: the average. Averaging stops here.
        if not self.average:
            return
        with torch.no_grad():
            torch._foreach_copy_(list(self.live.values()), list(self.average.values()))
        self.live, self.average = {}, {}


class GradStats:
    """Per-layer gradient norms every step (`history.layer_grad_norms`) and, every `snapshot_every` steps, each
    parameter's mean and max |gradient| (`history.grad_snapshots`); all before clipping. The layer norms come from
    the squared norms the trainer's loop computed for clipping, so the gradients are read once."""

    def __init__(self, snapshot_every: int = 0):
        self.snapshot_every = snapshot_every

    def on_backward_end(self, trainer) -> None:
        history = trainer.history
        for layer, s in trainer.layer_grad_sq.items():
            history.layer_grad_norms[layer].append(math.sqrt(s))
        snap = self.snapshot_every
        if snap and trainer.step % snap == 0:
            stats = {n: [float(p.grad.abs().mean()), float(p.grad.abs().max())] for n, p in trainer.named_grads}
            history.grad_snapshots.append({"step": trainer.step, "params": stats})


class TensorBoard:
    """TensorBoard events in `log_dir` (main process only): train loss, learning rate and gradient norm per step,
    train / validation loss and accuracy per epoch. A resumed run drops the events after the step it resumes at."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.writer = None

    def on_fit_start(self, trainer) -> None:
        if dist.is_main():
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir), purge_step=trainer.step or None)

    def on_step_end(self, trainer) -> None:
        if self.writer is None:
            return
        steps = trainer.history.steps  # the step just taken is the last row
        for tag, key in (("train/loss", "loss"), ("train/lr", "lr"), ("train/grad_norm", "grad_norm")):
            self.writer.add_scalar(tag, steps[key][-1], steps["step"][-1])

    def on_epoch_end(self, trainer) -> None:
        if self.writer is None:
            return
        for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
            self.writer.add_scalar(f"epoch/{k}", trainer.history.epochs[k][-1], trainer.epoch)

    def on_fit_end(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _tqdm_disabled() -> bool:
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")


class ProgressBar:
    """One tqdm bar per epoch (tqdm.auto: a widget in Jupyter), with the loss and learning rate; main process only."""

    def __init__(self):
        self.bar = None

    def on_epoch_start(self, trainer) -> None:
        from tqdm.auto import tqdm  # looked up now, so a replaced tqdm.auto.tqdm is the one used

        # Pass `disable` only to switch bars off. TQDM_DISABLE=1 is read here as well: tqdm's notebook bars (which
        # tqdm.auto picks in Jupyter) ignore it, and the series pass sets it to keep bars out of committed notebooks.
        off = {} if dist.is_main() and not _tqdm_disabled() else {"disable": True}
        self.bar = tqdm(total=trainer.steps_per_epoch, desc=f"epoch {trainer.epoch + 1}/{trainer.config.epochs}",
                        leave=False, **off)

    def on_step_end(self, trainer) -> None:
        steps = trainer.history.steps
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{steps['loss'][-1]:.3f}", lr=f"{steps['lr'][-1]:.2e}", refresh=False)

    def on_validate_start(self, trainer) -> None:
        self.on_fit_end(trainer)

    def on_fit_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochLog:
    """One printed line per epoch (train and validation loss and accuracy, seconds), and one when fit() resumes;
    main process only."""

    def on_fit_start(self, trainer) -> None:
        if trainer.resumed_from is not None and trainer.epoch < trainer.config.epochs and dist.is_main():
            print(f"resuming from {shown(trainer.resumed_from)} at epoch {trainer.epoch}/{trainer.config.epochs}")

    def on_epoch_end(self, trainer) -> None:
        if not dist.is_main():
            return
        ep = trainer.history.epochs

        def acc(a):  # objectives without logits (MAE) have no accuracy: say nothing rather than "nan%"
            return "" if math.isnan(a) else f" acc {100 * a:.2f}%"

        vl, va = ep["val_loss"][-1], ep["val_acc"][-1]
        val = "" if math.isnan(vl) else f"  val loss {vl:.4f}{acc(va)}"
        print(f"epoch {trainer.epoch:>3}/{trainer.config.epochs}  train loss {ep['train_loss'][-1]:.4f}"
              f"{acc(ep['train_acc'][-1])}{val}  {ep['seconds'][-1]:.1f}s", flush=True)
