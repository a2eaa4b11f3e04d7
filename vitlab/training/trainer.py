"""The training engine: model-agnostic, like minGPT's trainer.

The loop knows nothing of the model beyond "images in, logits out", or, for
other objectives (masked autoencoding, distillation), beyond the `objective`
callable it is given: ``objective(model, x, y) -> (loss, logits or None)``.
What the notebooks show comes from the returned `History` (per step and per epoch:
loss, accuracy, learning rate, per-layer gradient norms) or from callbacks.

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
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import config_diff
from ..data import UNLABELLED, ImageSet
from ..paths import shown
from . import distributed as dist
from .checkpoints import (CheckpointError, RunMismatch, data_identity, data_mismatch, load_weights, read_checkpoint,
                          save_checkpoint)
from .config import TrainConfig, resolve_device
from .history import History
from .inference import map_batches, predict_logits
from .objectives import CrossEntropy, Objective
from .optim import layer_of, lr_at, make_optimizer, param_groups  # noqa: F401  (lr_at, param_groups: public here too)


class TrainingDiverged(ValueError):
    """The training loss became nan or infinite: the weights are no longer usable."""


class Trainer:
    """Train any classifier that maps (B, C, H, W) images to (B, classes) logits.

        trainer = Trainer(model, data.train, data.val, TrainConfig(epochs=5),
                          checkpoint_path="runs/x/checkpoint.pt")
        trainer.add_callback("on_epoch_end", lambda tr: print(tr.history.last("val_acc")))
        history = trainer.fit()          # or fit(resume=True) after a crash

    `objective` replaces the default cross-entropy (see `Objective`); with one,
    validation reports the objective's own loss (and accuracy when it returns logits).

    Callbacks receive the trainer; events: on_step_end, on_epoch_end, on_train_end.
    A callback may set `trainer.stop = True` to end training after the current step.
    """

    EVENTS = ("on_step_end", "on_epoch_end", "on_train_end")

    def __init__(
        self,
        model: nn.Module,
        train_set: ImageSet,
        val_set: Optional[ImageSet] = None,
        config: Optional[TrainConfig] = None,
        checkpoint_path: Optional[str | os.PathLike] = None,
        tensorboard_dir: Optional[str | os.PathLike] = None,
        progress: bool = True,
        verbose: bool = True,
        extra: Optional[dict] = None,
        objective: Optional[Objective] = None,
    ):
        self.config = config or TrainConfig()
        self.custom_objective = objective is not None
        self.objective = objective if objective is not None else CrossEntropy(self.config.label_smoothing)
        self.device = dist.local_device(resolve_device(self.config.device))
        dist.init_from_env(self.device)  # under torchrun: join the process group (once)
        self.world, self.rank = dist.world_size(), dist.rank()
        if self.config.batch_size % self.world:
            raise ValueError(f"batch_size {self.config.batch_size} cannot be split evenly over {self.world} processes; "
                             f"use a multiple of {self.world}")
        self.model = model.to(self.device)
        self.train_set, self.val_set = train_set, val_set
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.tensorboard_dir = tensorboard_dir
        self.progress, self.verbose = progress, verbose
        self.extra = extra or {}
        self.callbacks: dict[str, list[Callable]] = defaultdict(list)
        self.optimizer = make_optimizer(model, self.config.weight_decay, self.config.lr)
        n = len(train_set) // self.config.batch_size  # full batches only: equal-sized steps
        if n == 0:
            raise ValueError(f"training set of {len(train_set)} images is smaller than one batch ({self.config.batch_size})")
        if self.config.max_steps_per_epoch:
            n = min(n, self.config.max_steps_per_epoch)
        self.steps_per_epoch = n
        self.total_steps = n * self.config.epochs
        warmup = int(round(self.config.warmup_epochs * n))
        c = self.config
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_at(s, self.total_steps, warmup, c.lr, c.schedule, c.min_lr) / c.lr
        )
        self.history = History()
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.stop = False
        self._data_identity: Optional[dict] = None
        self._layer_names = [(name, layer_of(name)) for name, p in model.named_parameters() if p.requires_grad]
        # The weight average (EMA), when on: a copy of every floating-point tensor of the state dict, updated after
        # each step. Validation, the checkpoint's model and the model after fit() use it; the optimizer never sees it.
        self._live = {k: t for k, t in self.model.state_dict().items() if t.is_floating_point()} if c.ema_decay else {}
        self._ema = {k: t.detach().clone() for k, t in self._live.items()}
        # One training step as a module, so that DistributedDataParallel can wrap it whatever the objective reads of
        # the model (an MAE's masking, a DeiT's two heads): DDP all-reduces the gradients of every parameter used.
        self._step = _ObjectiveStep(self.model, self.objective)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self._step = DistributedDataParallel(self._step, device_ids=[self.device.index] if self.device.type == "cuda"
                                                 else None, find_unused_parameters=self.custom_objective)

    def add_callback(self, event: str, fn: Callable) -> None:
        if event not in self.EVENTS:
            raise ValueError(f"unknown event {event!r}; choose from {self.EVENTS}")
        self.callbacks[event].append(fn)

    def _fire(self, event: str) -> None:
        for fn in self.callbacks[event]:
            fn(self)

    # ---- checkpoints

    def _update_ema(self) -> None:
        # Warm-up of the decay (as TensorFlow's ExponentialMovingAverage with num_updates): early on the average
        # follows the weights closely, so it does not remember the random initialisation.
        d = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        torch._foreach_lerp_(list(self._ema.values()), list(self._live.values()), 1 - d)

    @contextmanager
    def averaged_weights(self):
        """Inside: the model holds the weight average (no-op without EMA); afterwards, the weights being trained."""
        if not self._ema:
            yield self.model
            return
        backup = {k: t.clone() for k, t in self._live.items()}
        try:
            with torch.no_grad():
                torch._foreach_copy_(list(self._live.values()), list(self._ema.values()))
            yield self.model
        finally:
            with torch.no_grad():
                torch._foreach_copy_(list(self._live.values()), list(backup.values()))

    def save(self, path: Optional[str | os.PathLike] = None) -> None:
        """Write the checkpoint (the main process only, when several train together)."""
        if not dist.is_main():
            return
        train_weights = {k: t.clone() for k, t in self.model.state_dict().items()} if self._ema else None
        info = self.train_set.info
        with self.averaged_weights():  # the checkpoint's model is the average (when on); resuming reads train_weights
            save_checkpoint(
                path or self.checkpoint_path,
                self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                epoch=self.epoch,
                step=self.step,
                history=self.history.to_dict(),
                train_config=self.config.to_dict(),
                dataset=info.name,
                normalization=(info.mean, info.std),
                classes=list(info.classes),
                label_map=info.label_map,
                data_split=self.train_set.split,
                extra=self.extra,
                train_weights=train_weights,
                data=self.data_identity,
            )

    @property
    def data_identity(self) -> dict:
        """Which images this run trains and validates on (`data_identity`): a resume must agree on it."""
        if self._data_identity is None:
            self._data_identity = data_identity(self.train_set, self.val_set)
        return self._data_identity

    def restore(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by `save` for the same model and recipe."""
        ckpt = read_checkpoint(path, map_location=self.device)
        load_weights(self.model, ckpt, path)
        diff = config_diff(ckpt.get("train_config", {}), self.config.to_dict(), keys=TrainConfig.run_fields(),
                           defaults=TrainConfig.defaults())
        diff = diff or data_mismatch(ckpt.get("data"), self.data_identity)
        if diff:
            raise RunMismatch(path, self.extra.get("run_name", Path(path).parent.name), diff, action="resume")
        if ckpt.get("optimizer") is None or ckpt.get("scheduler") is None:
            raise CheckpointError(f"{path}: holds no optimizer state, so the run cannot be resumed")
        if self._ema:  # the checkpoint's model is the average; the weights being trained are kept beside it
            if "train_weights" not in ckpt:
                raise CheckpointError(f"{path}: holds no training weights beside its average, so it cannot be resumed")
            with torch.no_grad():
                torch._foreach_copy_(list(self._ema.values()), list(self._live.values()))
            self.model.load_state_dict(ckpt["train_weights"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.history = History.from_dict(ckpt["history"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]

    # ---- the loop

    def _grad_norms(self) -> float:
        """Record per-layer gradient norms; return the global norm (before clipping)."""
        named = [(n, layer, p) for (n, layer), p in zip(self._layer_names, self._params) if p.grad is not None]
        norms = torch._foreach_norm([p.grad for _, _, p in named]) if named else []
        sq = defaultdict(float)
        values = torch.stack(norms).float().cpu().tolist() if named else []
        for (_, layer, _), v in zip(named, values):
            sq[layer] += v * v
        for layer, s in sq.items():
            self.history.layer_grad_norms[layer].append(math.sqrt(s))
        snap = self.config.grad_snapshot_every
        if snap and self.step % snap == 0:
            stats = {n: [float(p.grad.abs().mean()), float(p.grad.abs().max())] for n, _, p in named}
            self.history.grad_snapshots.append({"step": self.step, "params": stats})
        return math.sqrt(sum(sq.values()))

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

    def fit(self, resume: bool = False) -> History:
        """Train for the configured epochs; with resume=True continue from checkpoint_path if it exists."""
        c = self.config
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.restore(self.checkpoint_path)  # every process: all continue from the same state
            if self.verbose and self.epoch < c.epochs and dist.is_main():
                print(f"resuming from {shown(self.checkpoint_path)} at epoch {self.epoch}/{c.epochs}")
        writer = None
        if self.tensorboard_dir is not None and dist.is_main():
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.tensorboard_dir), purge_step=self.step or None)
        from tqdm.auto import tqdm

        self._params = [p for p in self.model.parameters() if p.requires_grad]
        try:
            while self.epoch < c.epochs and not self.stop:
                self._train_epoch(tqdm, writer)
        finally:
            if writer is not None:
                writer.close()
        if self._ema:  # what fit() returns is what the checkpoint holds: the average
            with torch.no_grad():
                torch._foreach_copy_(list(self._live.values()), list(self._ema.values()))
            self._ema, self._live = {}, {}
        self._fire("on_train_end")
        return self.history

    def _train_epoch(self, tqdm, writer) -> None:
        c, e = self.config, self.epoch
        # Shuffling and augmentation: the same draws in every process, which all build the same global batch and
        # keep their own shard of it, so N processes train on exactly the batches one process would.
        gen = torch.Generator().manual_seed(c.seed * 1_000_003 + e)
        torch.manual_seed(c.seed * 1_000_003 + e + 7919 * self.rank)  # dropout, MAE masks: each process its own
        b = c.batch_size // self.world  # this process's share of each global batch
        mine = slice(self.rank * b, (self.rank + 1) * b)
        self.model.train()
        t0 = time.perf_counter()
        loss_sum, correct, seen, seen_labelled = 0.0, 0, 0, 0
        got_logits = False  # MAE-style objectives return none: no training accuracy then
        batches = self.train_set.batches(c.batch_size, shuffle=True, generator=gen, augment=c.augment, drop_last=True)
        # Pass `disable` only to switch bars off. TQDM_DISABLE=1 is read here as well: tqdm's notebook bars (which
        # tqdm.auto picks in Jupyter) ignore it, and the series pass sets it to keep bars out of committed notebooks.
        env_off = os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")
        off = {} if self.progress and dist.is_main() and not env_off else {"disable": True}
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {e + 1}/{c.epochs}", leave=False, **off)
        for i, (x, y) in enumerate(batches):
            if i >= self.steps_per_epoch:
                break
            x, y = x[mine].to(self.device, non_blocking=True), y[mine].to(self.device, non_blocking=True)  # (b, C, H, W)
            loss, logits = self._step(x, y)  # logits (b, classes), or None; several processes: through DDP
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # several processes: DDP averages the gradients over them here
            gnorm = self._grad_norms()
            if c.grad_clip > 0 and gnorm > c.grad_clip:
                torch._foreach_mul_([p.grad for p in self._params if p.grad is not None], c.grad_clip / (gnorm + 1e-6))
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.scheduler.step()
            if self._ema:
                self._update_ema()
            labelled = y != UNLABELLED  # (b,) accuracy counts labelled images only (a transfer set has others)
            got_logits = logits is not None
            hits = ((logits.argmax(1) == y) & labelled).sum() if got_logits else torch.zeros((), device=self.device)
            # loss summed over the batch, right answers, labelled images, images: over all processes
            stats = torch.stack([loss.detach().float() * len(y), hits.float(), labelled.sum().float(),
                                 torch.tensor(float(len(y)), device=self.device)])
            batch_loss, batch_hits, n_lab, n = dist.all_sum(stats).tolist()
            if not math.isfinite(batch_loss):  # nothing after this step could be trusted: stop, keep the last epoch
                raise TrainingDiverged(
                    f"training diverged: the loss is {batch_loss} at step {self.step + 1} (epoch {e + 1}); nothing of "
                    f"this epoch is saved. Lower the learning rate, keep warm-up and gradient clipping on")
            loss_sum += batch_loss
            correct += int(batch_hits)
            seen += int(n)
            seen_labelled += int(n_lab)
            loss_v, acc_v = batch_loss / n, (batch_hits / n_lab if got_logits and n_lab else float("nan"))
            for k, v in (("step", self.step), ("epoch", e), ("loss", loss_v), ("acc", acc_v), ("lr", lr), ("grad_norm", gnorm)):
                self.history.steps[k].append(v)
            if writer is not None:
                writer.add_scalar("train/loss", loss_v, self.step)
                writer.add_scalar("train/lr", lr, self.step)
                writer.add_scalar("train/grad_norm", gnorm, self.step)
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_v:.3f}", lr=f"{lr:.2e}", refresh=False)
            self._fire("on_step_end")
            if self.stop:
                break
        bar.close()
        self.epoch += 1
        ep = self.history.epochs
        ep["epoch"].append(self.epoch)
        ep["train_loss"].append(float(loss_sum) / max(seen, 1))
        ep["train_acc"].append(float(correct) / seen_labelled if got_logits and seen_labelled else float("nan"))
        if self.val_set is not None and len(self.val_set):
            with self.averaged_weights():
                vl, va = self._validate()
        else:
            vl = va = float("nan")
        ep["val_loss"].append(vl)
        ep["val_acc"].append(va)
        ep["lr"].append(self.optimizer.param_groups[0]["lr"])
        ep["seconds"].append(time.perf_counter() - t0)
        if writer is not None:
            for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
                writer.add_scalar(f"epoch/{k}", ep[k][-1], self.epoch)
        if self.verbose and dist.is_main():
            def acc(a):  # objectives without logits (MAE) have no accuracy: say nothing rather than "nan%"
                return "" if math.isnan(a) else f" acc {100 * a:.2f}%"

            val = "" if math.isnan(vl) else f"  val loss {vl:.4f}{acc(va)}"
            print(f"epoch {self.epoch:>3}/{c.epochs}  train loss {ep['train_loss'][-1]:.4f}{acc(ep['train_acc'][-1])}"
                  f"{val}  {ep['seconds'][-1]:.1f}s", flush=True)
        if self.checkpoint_path is not None:
            self.save()
        self._fire("on_epoch_end")


class _ObjectiveStep(nn.Module):
    """``objective(model, x, y)`` as a module: what DistributedDataParallel wraps. The objective may use any of the
    model's named methods; the model's parameters are this module's, the objective's (a frozen teacher) are not."""

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        return self.objective(self.model, x, y)
