"""Named training runs on disk, and the train-or-load helper the notebooks use.

A run lives in ``<runs_dir>/<name>/``: ``checkpoint.pt`` (written every
epoch), TensorBoard events in ``tb/``. Asking for a run that has finished
loads it; one that was interrupted resumes from its last epoch; one that does
not exist is trained. Asking for a finished run with a different model or
recipe is an error rather than a silent overwrite.
"""

from __future__ import annotations

import math
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch.nn as nn

from ..config import config_diff
from ..data import ImageSet
from ..models.registry import build_model, model_type_for_config
from ..paths import project_dir, shown
from .checkpoints import RunMismatch, config_mismatch, data_identity, data_mismatch, load_weights, read_checkpoint
from .config import TrainConfig, set_seed
from .distributed import is_main
from .history import History
from .lock import RunLock
from .objectives import Objective
from .trainer import Trainer


def check_run_name(name: str) -> str:
    """A run name is a folder name inside the runs folder, never a path: no separators, not '.' or '..'."""
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if not isinstance(name, str) or not name.strip() or name in (".", "..") or "\0" in name \
            or any(c in name for c in seps):
        raise ValueError(f"run name {name!r} is not a plain name: it may not be empty, '.' or '..', or hold a "
                         f"path separator")
    return name


def default_runs_dir() -> Path:
    """``$VITLAB_RUNS``, else ``runs/`` of the checkout the package lives in, else ``./runs``."""
    return project_dir("VITLAB_RUNS", "runs")


@dataclass
class Run:
    model: nn.Module  # the trained model, in eval mode
    history: History  # what happened during training
    path: Path  # the run's directory
    trained_now: bool  # False when it was loaded from an earlier run

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"


def train_or_load(
    name: str,
    model_config,
    train_set: ImageSet,
    val_set: Optional[ImageSet],
    train_config: TrainConfig,
    runs_dir: Optional[str | os.PathLike] = None,
    retrain: bool = False,
    tensorboard: bool = True,
    progress: bool = True,
    verbose: bool = True,
    init: Optional[nn.Module] = None,
    train_only: Optional[Sequence[str]] = None,
    objective: Optional[Objective] = None,
    callbacks: Optional[dict] = None,
) -> Run:
    """Load run `name` if it finished with this model config and recipe; otherwise (re)train it.

    `model_config` is the config of any registered model type (ViTConfig, CNNConfig, MAEConfig, ...);
    the model type follows from it.
    The model is initialised with `train_config.seed`, so a run is reproducible.

    Fine-tuning: `init` is a model whose weights are copied in first (every tensor
    whose name and shape match, e.g. all but a resized head); `train_only` lists
    parameter-name prefixes to train (["head"] = a linear probe), the rest frozen.
    Both are recorded in the checkpoint, and asking for a finished run with other
    settings is an error.

    `objective` replaces the trainer's cross-entropy (see `vitlab.training.objectives.Objective`); its
    `to_dict()` is recorded like `init` and `train_only`. `callbacks` maps a Trainer event to the callables
    added for it (e.g. JEPA's EMA update after each step); they run only while training, not when a run loads.
    """
    check_run_name(name)
    model_type = model_type_for_config(model_config)
    path = Path(runs_dir or default_runs_dir()) / name
    ckpt_path = path / "checkpoint.pt"
    set_seed(train_config.seed)
    model = build_model(model_type, model_config)
    if train_only:  # before loading too, so a loaded run has the same parameters frozen as when it trained
        names = [n for n, _ in model.named_parameters()]
        unknown = [t for t in train_only if not any(n.startswith(t) for n in names)]
        if unknown:
            raise ValueError(f"train_only names no parameters: {unknown}")
        for n, p in model.named_parameters():
            p.requires_grad_(any(n.startswith(t) for t in train_only))
    setup = {"init": type(init).__name__ if init is not None else None,
             "train_only": sorted(train_only) if train_only else None,
             "objective": objective.to_dict() if objective is not None else None}
    if ckpt_path.exists() and not retrain:
        ckpt = read_checkpoint(ckpt_path)
        if ckpt["model_type"] != model_type:
            what = f"model type: checkpoint {ckpt['model_type']!r}, now {model_type!r}"
        else:
            what = config_mismatch(ckpt["model_config"], model.cfg.to_dict(), model_type)
        what = what or config_diff(ckpt.get("train_config", {}), train_config.to_dict(), keys=TrainConfig.run_fields(),
                                   defaults=TrainConfig.defaults())
        what = what or config_diff({k: ckpt.get("extra", {}).get(k) for k in setup}, setup)
        finished = ckpt["epoch"] >= train_config.epochs  # loading it needs the same training data; resuming, all
        what = what or data_mismatch(ckpt.get("data"), data_identity(train_set, val_set), validation=not finished)
        if what:
            raise RunMismatch(ckpt_path, name, what)
        if finished:
            load_weights(model, ckpt, ckpt_path)
            if verbose and is_main():
                h = History.from_dict(ckpt["history"])
                va = h.last("val_acc")
                has_acc = va is not None and not math.isnan(va)  # objectives without logits (MAE) have none
                print(f"loaded finished run {name!r} from {shown(ckpt_path)} ({ckpt['epoch']} epochs"
                      + (f", val acc {100 * va:.2f}%)" if has_acc else ")"))
            return Run(model.eval(), History.from_dict(ckpt["history"]), path, trained_now=False)
    with RunLock(path, name) if is_main() else nullcontext():  # one writer per run, for as long as it trains
        if retrain and is_main():
            ckpt_path.unlink(missing_ok=True)
        if init is not None:
            mine = model.state_dict()
            copy = {k: v for k, v in init.state_dict().items() if k in mine and mine[k].shape == v.shape}
            if not copy:
                raise ValueError(f"run {name!r}: the init model shares no weights with {model_config}")
            model.load_state_dict(copy, strict=False)
        trainer = Trainer(
            model,
            train_set,
            val_set,
            train_config,
            checkpoint_path=ckpt_path,
            tensorboard_dir=path / "tb" if tensorboard else None,
            progress=progress,
            verbose=verbose,
            extra={"run_name": name, **setup},
            objective=objective,
        )
        for event, fns in (callbacks or {}).items():
            for fn in fns:
                trainer.add_callback(event, fn)
        history = trainer.fit(resume=not retrain)  # not retrain: never the old run another process has not deleted yet
    return Run(trainer.model.eval(), history, path, trained_now=True)
