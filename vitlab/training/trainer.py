"""The training engine: model-agnostic, like minGPT's trainer.

The loop knows nothing of the model beyond "images in, logits out", or, for
other objectives (masked autoencoding, distillation), beyond the `objective`
callable it is given: ``objective(model, x, y) -> (loss, logits or None)``.
It does the steps (forward, backward, the global gradient norm and clipping, the optimizer and the schedule),
validation and the `History` (per step and per epoch: loss, accuracy, learning rate, gradient norm). Everything
else is a callback (`vitlab.training.callbacks`): the checkpoint, the weight average, TensorBoard, the progress
bar, the line per epoch, the per-layer gradient statistics.

Determinism: everything random in epoch e (shuffling, augmentation, dropout)
is seeded from (seed, e). A run resumed from the checkpoint written at the end
of epoch e therefore continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import config_diff
from ..data import UNLABELLED, ImageSet
from . import distributed as dist
from .callbacks import Checkpoint, GradStats, OnEvent, Show, WeightAverage, keyword_callbacks
from .checkpoints import (CheckpointError, RunMismatch, data_identity, data_mismatch, load_weights, read_checkpoint,
                          save_checkpoint)
from .config import TrainConfig, resolve_device
from .history import History
from .inference import map_batches, predict_logits
from .objectives import CrossEntropy, Objective
from .optim import layer_of, lr_at, make_optimizer, param_groups  # noqa: F401  (lr_at, param_groups: public here too)

_UNSET = object()


class TrainingDiverged(ValueError):
    """The training loss became nan or infinite: the weights are no longer usable."""


class Trainer:
    """Train any classifier that maps (B, C, H, W) images to (B, classes) logits.

        trainer = Trainer(model, data.train, data.val, TrainConfig(epochs=5),
                          callbacks=[Checkpoint("runs/x/checkpoint.pt"), ProgressBar(), EpochLog()])
        trainer.add_callback("on_epoch_end", lambda tr: print(tr.history.last("val_acc")))
        history = trainer.fit()          # or fit(resume=True) after a crash

    `objective` replaces the default cross-entropy (see `Objective`); with one,
    validation reports the objective's own loss (and accuracy when it returns logits).

    Callbacks (`vitlab.training.callbacks`): objects with any of the methods in `EVENTS`, called with the trainer;
    `add_callback(event, fn)` adds a plain function. One may set `trainer.stop = True` to end training after the
    current step. The config's own run first: `GradStats` always, `WeightAverage` when `ema_decay` is set. The
    keyword arguments ask for the standard ones (`keyword_callbacks`): `checkpoint_path` and `extra`, `tensorboard_dir`,
    `progress`, `verbose`, `show`; progress and verbose are on unless `callbacks` (e.g. `run_callbacks`) was given.

    Any batch source: `train_set` may be an `ImageSet` or any object with ``__len__`` and
    ``batches(batch_size, shuffle=True, generator=..., augment=..., drop_last=True)`` yielding ``(x, y)`` tensors,
    x (B, C, H, W) and y (B,). Only the checkpoint's dataset fields (name, normalisation, classes, split) and
    `data_identity` (which a resume is checked against) need an ImageSet; for other sources they are left out
    (None), and a resume checks the model and the recipe only. `val_set` is an ImageSet (or None).
    """

    EVENTS = ("on_fit_start", "on_epoch_start", "on_backward_end", "on_step_end", "on_validate_start",
              "on_epoch_end", "on_train_end", "on_fit_end")

    def __init__(self, model: nn.Module, train_set: ImageSet, val_set: Optional[ImageSet] = None,
                 config: Optional[TrainConfig] = None, objective: Optional[Objective] = None, callbacks: Iterable = (),
                 *, checkpoint_path: Optional[str | os.PathLike] = None,
                 tensorboard_dir: Optional[str | os.PathLike] = None, progress: Optional[bool] = None,
                 verbose: Optional[bool] = None, extra: Optional[dict] = None, show: Optional[Show] = None):
        self.config = c = config or TrainConfig()
        self.custom_objective = objective is not None
        self.objective = objective if objective is not None else CrossEntropy(c.label_smoothing)
        self.device = dist.local_device(resolve_device(c.device))
        dist.init_from_env(self.device)  # under torchrun: join the process group (once)
        self.world, self.rank = dist.world_size(), dist.rank()
        if c.batch_size % self.world:
            raise ValueError(f"batch_size {c.batch_size} cannot be split evenly over {self.world} processes; "
                             f"use a multiple of {self.world}")
        self.model = model.to(self.device)
        self.train_set, self.val_set = train_set, val_set
        self.optimizer = make_optimizer(model, c.weight_decay, c.lr)
        self._make_schedule(len(train_set))
        self.history = History()
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.stop = False
        self.resumed_from: Optional[Path] = None  # the checkpoint fit(resume=True) continued from
        self._data_identity = _UNSET
        self._layer_names = [(name, layer_of(name)) for name, p in model.named_parameters() if p.requires_grad]
        self.layer_grad_sq: dict[str, float] = {}  # this step's squared gradient norm per layer (before clipping)
        self.named_grads: list = []  # this step's (name, parameter) pairs that have a gradient
        self.average = WeightAverage(c.ema_decay).track(self.model) if c.ema_decay else None
        self._extra = dict(extra or {})
        given = list(callbacks)
        own = [GradStats(c.grad_snapshot_every)] + ([self.average] if self.average is not None else [])
        # in the order they run: the config's, the keyword arguments', then the ones given
        self.callbacks: list = own + keyword_callbacks(given, checkpoint_path, self._extra, tensorboard_dir, progress,
                                                       verbose, show) + given
        # One training step as a module, so that DistributedDataParallel can wrap it whatever the objective reads of
        # the model (an MAE's masking, a DeiT's two heads): DDP all-reduces the gradients of every parameter used.
        self._step = _ObjectiveStep(self.model, self.objective)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self._step = DistributedDataParallel(self._step, device_ids=[self.device.index] if self.device.type == "cuda"
                                                 else None, find_unused_parameters=self.custom_objective)

    def _make_schedule(self, n_images: int) -> None:
        c = self.config
        n = n_images // c.batch_size  # full batches only: equal-sized steps
        if n == 0:
            raise ValueError(f"training set of {n_images} images is smaller than one batch ({c.batch_size})")
        if c.max_steps_per_epoch:
            n = min(n, c.max_steps_per_epoch)
        self.steps_per_epoch = n
        self.total_steps = n * c.epochs
        warmup = int(round(c.warmup_epochs * n))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_at(s, self.total_steps, warmup, c.lr, c.schedule, c.min_lr) / c.lr
        )

    def add_callback(self, event: str, fn: Callable) -> None:
        """Call `fn(trainer)` at `event` (one of `EVENTS`), after the callbacks already held."""
        if event not in self.EVENTS:
            raise ValueError(f"unknown event {event!r}; choose from {self.EVENTS}")
        self.callbacks.append(OnEvent(event, fn))

    def _fire(self, event: str) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(self)

    @property
    def checkpoint(self) -> Optional[Checkpoint]:
        """The `Checkpoint` callback, if the run has one."""
        return next((cb for cb in self.callbacks if isinstance(cb, Checkpoint)), None)

    @property
    def checkpoint_path(self) -> Optional[Path]:
        """Where the Checkpoint callback writes, and fit(resume=True) reads (None: no checkpoint)."""
        return self.checkpoint.path if self.checkpoint is not None else None

    @property
    def extra(self) -> dict:
        """What the checkpoint records besides the run itself (a named run's name, spec and setup)."""
        return self.checkpoint.extra if self.checkpoint is not None else self._extra

    # ---- checkpoints

    @contextmanager
    def averaged_weights(self):
        """Inside: the model holds the weight average (no-op without EMA); afterwards, the weights being trained."""
        if self.average is None:
            yield self.model
            return
        with self.average.swapped_in():
            yield self.model

    def save(self, path: Optional[str | os.PathLike] = None) -> None:
        """Write the checkpoint (the main process only, when several train together); by default to the
        Checkpoint callback's path."""
        if not dist.is_main():
            return
        path = path or self.checkpoint_path
        if path is None:
            raise ValueError("save() needs a path: pass one, or give the trainer a Checkpoint callback")
        averaging = self.average is not None and self.average.active
        train_weights = {k: t.clone() for k, t in self.model.state_dict().items()} if averaging else None
        with self.averaged_weights():  # the checkpoint's model is the average (when on); resuming reads train_weights
            save_checkpoint(path, self.model, optimizer=self.optimizer, scheduler=self.scheduler, epoch=self.epoch,
                            step=self.step, history=self.history.to_dict(), train_config=self.config.to_dict(),
                            extra=self.extra, train_weights=train_weights, data=self.data_identity,
                            **_dataset_fields(self.train_set))

    @property
    def data_identity(self) -> Optional[dict]:
        """Which images this run trains and validates on (`data_identity`): a resume must agree on it.
        None when the training batches do not come from an ImageSet."""
        if self._data_identity is _UNSET:
            sets = (self.train_set,) + ((self.val_set,) if self.val_set is not None else ())
            self._data_identity = data_identity(self.train_set, self.val_set) if all(
                isinstance(s, ImageSet) for s in sets) else None
        return self._data_identity

    def restore(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by `save` for the same model and recipe."""
        ckpt = read_checkpoint(path, map_location=self.device)
        load_weights(self.model, ckpt, path)
        diff = config_diff(ckpt.get("train_config", {}), self.config.to_dict(), keys=TrainConfig.run_fields(),
                           defaults=TrainConfig.defaults())
        if not diff and self.data_identity is not None:
            diff = data_mismatch(ckpt.get("data"), self.data_identity)
        if diff:
            raise RunMismatch(path, self.extra.get("run_name", Path(path).parent.name), diff, action="resume")
        if ckpt.get("optimizer") is None or ckpt.get("scheduler") is None:
            raise CheckpointError(f"{path}: holds no optimizer state, so the run cannot be resumed")
        # the checkpoint's model is the average (when on); the weights being trained are kept beside it
        if self.average is not None and self.average.active:
            if "train_weights" not in ckpt:
                raise CheckpointError(f"{path}: holds no training weights beside its average, so it cannot be resumed")
            self.average.restore(self.model, ckpt["train_weights"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.history = History.from_dict(ckpt["history"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]

    # ---- validation

    def _validate_objective(self) -> tuple[float, float]:
        """Mean objective loss (and accuracy, when it returns logits) over the validation set, in eval mode."""

        def batch_stats(model, x, y):  # (1, 3): loss summed over the batch, correct answers (nan: no logits), B
            loss, logits = self.objective(model, x, y)
            correct = (logits.argmax(1) == y).sum().float() if logits is not None else torch.tensor(float("nan"))
            return torch.stack([loss.detach() * len(y), correct.to(loss.device), torch.tensor(float(len(y)),
                                                                                               device=loss.device)])[None]

        # Objectives that draw (e.g. MAE masks) see the same draws every epoch; fork_rng puts the global generators
        # back afterwards, so validating does not change what training draws next.
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(self.config.seed + self.rank)
            sums = map_batches(self.model, self._val_shard(), batch_stats, self.config.eval_batch_size, self.device)
        loss_sum, correct, n = dist.all_sum(sums.sum(0).to(self.device)).tolist()
        return loss_sum / n, correct / n

    def _val_shard(self):
        """This process's share of the validation images (all of them for one process): no image counts twice."""
        return self.val_set if self.world == 1 else self.val_set.subset(dist.shard(len(self.val_set)))

    def _validate(self) -> tuple[float, float]:
        if self.custom_objective:
            return self._validate_objective()
        val = self._val_shard()
        logits = predict_logits(self.model, val, self.config.eval_batch_size, self.device)
        # sums over this process's shard, added up over the processes (a no-op for one): each image counts once
        sums = torch.tensor([float(F.cross_entropy(logits, val.labels, reduction="sum")),
                             float((logits.argmax(1) == val.labels).sum()), float(len(val))], device=self.device)
        loss_sum, correct, n = dist.all_sum(sums).tolist()
        return loss_sum / n, correct / n

    # ---- the loop

    def fit(self, resume: bool = False) -> History:
        """Train for the configured epochs; with resume=True continue from checkpoint_path if it exists."""
        path = self.checkpoint_path
        self.resumed_from = None
        if resume and path is not None and path.exists():
            self.restore(path)  # every process: all continue from the same state
            self.resumed_from = path
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        try:
            self._fire("on_fit_start")
            while self.epoch < self.config.epochs and not self.stop:
                self._train_epoch()
        finally:
            self._fire("on_fit_end")
        self._fire("on_train_end")  # the weight average first: what fit() returns is what the checkpoint holds
        return self.history

    def _train_epoch(self) -> None:
        c, e = self.config, self.epoch
        # Shuffling and augmentation: the same draws in every process, which all build the same global batch and
        # keep their own shard of it, so N processes train on exactly the batches one process would.
        gen = torch.Generator().manual_seed(c.seed * 1_000_003 + e)
        torch.manual_seed(c.seed * 1_000_003 + e + 7919 * self.rank)  # dropout, MAE masks: each process its own
        self.model.train()
        t0 = time.perf_counter()
        sums = _EpochSums()
        batches = self.train_set.batches(c.batch_size, shuffle=True, generator=gen, augment=c.augment, drop_last=True)
        self._fire("on_epoch_start")
        for i, (x, y) in enumerate(batches):
            if i >= self.steps_per_epoch:
                break
            self._train_step(x, y, sums)
            if self.stop:
                break
        self._fire("on_validate_start")
        self.epoch += 1
        self._record_epoch(sums, t0)
        self._fire("on_epoch_end")

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, sums: "_EpochSums") -> None:
        c = self.config
        b = c.batch_size // self.world  # this process's share of each global batch
        mine = slice(self.rank * b, (self.rank + 1) * b)
        x, y = x[mine].to(self.device, non_blocking=True), y[mine].to(self.device, non_blocking=True)  # (b, C, H, W)
        loss, logits = self._step(x, y)  # logits (b, classes), or None; several processes: through DDP
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # several processes: DDP averages the gradients over them here
        gnorm = self._grad_norm()
        self._fire("on_backward_end")
        if c.grad_clip > 0 and gnorm > c.grad_clip:
            torch._foreach_mul_([p.grad for p in self._params if p.grad is not None], c.grad_clip / (gnorm + 1e-6))
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        loss_v, acc_v = self._add_batch(loss, logits, y, sums)
        for k, v in (("step", self.step), ("epoch", self.epoch), ("loss", loss_v), ("acc", acc_v), ("lr", lr),
                     ("grad_norm", gnorm)):
            self.history.steps[k].append(v)
        self.step += 1
        self._fire("on_step_end")

    def _grad_norm(self) -> float:
        """The global gradient norm (before clipping), summed layer by layer. Leaves each layer's squared norm in
        `layer_grad_sq` and the parameters with gradients in `named_grads`, for GradStats: one pass over them."""
        named = [(n, layer, p) for (n, layer), p in zip(self._layer_names, self._params) if p.grad is not None]
        norms = torch._foreach_norm([p.grad for _, _, p in named]) if named else []
        values = torch.stack(norms).float().cpu().tolist() if named else []
        sq = defaultdict(float)
        for (_, layer, _), v in zip(named, values):
            sq[layer] += v * v
        self.layer_grad_sq = dict(sq)
        self.named_grads = [(n, p) for n, _, p in named]
        return math.sqrt(sum(sq.values()))

    def _add_batch(self, loss, logits, y, sums: "_EpochSums") -> tuple[float, float]:
        """Add this step's batch to the epoch's sums (over all processes); return its mean loss and accuracy."""
        labelled = y != UNLABELLED  # (b,) accuracy counts labelled images only (a transfer set has others)
        sums.got_logits = logits is not None
        hits = ((logits.argmax(1) == y) & labelled).sum() if sums.got_logits else torch.zeros((), device=self.device)
        # loss summed over the batch, right answers, labelled images, images: over all processes
        stats = torch.stack([loss.detach().float() * len(y), hits.float(), labelled.sum().float(),
                             torch.tensor(float(len(y)), device=self.device)])
        batch_loss, batch_hits, n_lab, n = dist.all_sum(stats).tolist()
        if not math.isfinite(batch_loss):  # nothing after this step could be trusted: stop, keep the last epoch
            raise TrainingDiverged(
                f"training diverged: the loss is {batch_loss} at step {self.step + 1} (epoch {self.epoch + 1}); "
                f"nothing of this epoch is saved. Lower the learning rate, keep warm-up and gradient clipping on")
        sums.loss += batch_loss
        sums.correct += int(batch_hits)
        sums.seen += int(n)
        sums.labelled += int(n_lab)
        return batch_loss / n, (batch_hits / n_lab if sums.got_logits and n_lab else float("nan"))

    def _record_epoch(self, sums: "_EpochSums", t0: float) -> None:
        """The epoch's row of `history.epochs`: training sums, validation (of the weight average, when on)."""
        ep = self.history.epochs
        ep["epoch"].append(self.epoch)
        ep["train_loss"].append(float(sums.loss) / max(sums.seen, 1))
        ep["train_acc"].append(float(sums.correct) / sums.labelled if sums.got_logits and sums.labelled
                               else float("nan"))
        if self.val_set is not None and len(self.val_set):
            with self.averaged_weights():
                vl, va = self._validate()
        else:
            vl = va = float("nan")
        ep["val_loss"].append(vl)
        ep["val_acc"].append(va)
        ep["lr"].append(self.optimizer.param_groups[0]["lr"])
        ep["seconds"].append(time.perf_counter() - t0)


@dataclass
class _EpochSums:
    """What an epoch's steps add up, over all processes: its training loss and accuracy."""

    loss: float = 0.0  # loss summed over the images
    correct: int = 0  # right answers among the labelled images
    seen: int = 0  # images
    labelled: int = 0  # labelled images
    got_logits: bool = False  # MAE-style objectives return none: no training accuracy then


def _dataset_fields(train_set) -> dict:
    """The checkpoint's record of the dataset (what `vitlab evaluate` rebuilds it from); none for a source that
    is not an ImageSet."""
    info = getattr(train_set, "info", None)
    if not isinstance(train_set, ImageSet) or info is None:
        return {}
    return {"dataset": info.name, "normalization": (info.mean, info.std), "classes": list(info.classes),
            "label_map": info.label_map, "data_split": train_set.split}


class _ObjectiveStep(nn.Module):
    """``objective(model, x, y)`` as a module: what DistributedDataParallel wraps. The objective may use any of the
    model's named methods; the model's parameters are this module's, the objective's (a frozen teacher) are not."""

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        return self.objective(self.model, x, y)
