"""The run store: a `RunSpec` maps to its folder, and asking for it trains, resumes or loads it.

A run lives in ``<runs_dir>/<spec.name>/``: ``checkpoint.pt`` (written every epoch; it records the spec, its key,
and which images the run saw), TensorBoard events in ``tb/``. Asking for a run that has finished loads it; one that
was interrupted resumes from its last epoch; one that does not exist is trained. A stored run whose spec differs
from the one asked for is refused (`RunMismatch`, naming each difference) rather than silently overwritten;
`retrain=True` starts it afresh.
"""

from __future__ import annotations

import math
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch.nn as nn

from ..config import config_diff
from ..data import ImageSet
from ..models.registry import build_model
from ..paths import project_dir, shown
from .callbacks import Show, run_callbacks
from .checkpoints import RunMismatch, config_mismatch, data_identity, data_mismatch, load_weights, read_checkpoint
from .config import TrainConfig, set_seed
from .distributed import is_main
from .history import History
from .lock import RunLock
from .objectives import Objective
from .spec import RunSpec, spec_diff
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
    spec: Optional[RunSpec] = None  # what it is

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"


def train_or_load(spec: RunSpec, train_set: ImageSet, val_set: Optional[ImageSet], *,
                  objective: Optional[Objective] = None, init: Optional[nn.Module] = None,
                  callbacks: Optional[dict] = None, show: Optional[Show] = None,
                  runs_dir: Optional[str | os.PathLike] = None, retrain: bool = False) -> Run:
    """Load run `spec` if it finished with these settings and training images; otherwise train (or resume) it.

    The images come from the caller (`vitlab.experiments` builds them from `spec.data`); the checkpoint records a
    digest of them, so a run is never loaded for images it did not see. `objective` and `init` are the built forms
    of `spec.objective` and `spec.init` (an objective to use instead of cross-entropy; a model whose weights are
    copied in first: every tensor whose name and shape match). `callbacks` maps a Trainer event to callables added
    while it trains (not when it loads). `show`: progress bar, TensorBoard, one line per epoch (all on by default).
    """
    show = show if show is not None else Show()
    path = Path(runs_dir or default_runs_dir()) / check_run_name(spec.name)
    model = _fresh_model(spec)
    setup = _setup(spec, init, objective)
    if (path / "checkpoint.pt").exists() and not retrain:
        ckpt = read_checkpoint(path / "checkpoint.pt")
        finished = _check_stored(ckpt, spec, model, setup, train_set, val_set, path)
        if finished:
            load_weights(model, ckpt, path / "checkpoint.pt")
            if show.verbose and is_main():
                print(_loaded_line(spec.name, ckpt, path))
            return Run(model.eval(), History.from_dict(ckpt["history"]), path, trained_now=False, spec=spec)
    with RunLock(path, spec.name) if is_main() else nullcontext():  # one writer per run, for as long as it trains
        if retrain and is_main():
            (path / "checkpoint.pt").unlink(missing_ok=True)
        if init is not None:
            _copy_weights(init, model, spec)
        extra = {"run_name": spec.name, **setup, "spec": spec.to_dict(), "spec_key": spec.key}
        trainer = Trainer(model, train_set, val_set, spec.train, objective=objective,
                          callbacks=run_callbacks(path, show, extra))
        for event, fns in (callbacks or {}).items():
            for fn in fns:
                trainer.add_callback(event, fn)
        if spec.stop_after is not None:
            trainer.add_callback("on_epoch_end", _stop_after(spec.stop_after))
        history = trainer.fit(resume=not retrain)  # not retrain: never the old run another process has not deleted yet
    return Run(trainer.model.eval(), history, path, trained_now=True, spec=spec)


def _fresh_model(spec: RunSpec) -> nn.Module:
    """The spec's model, initialised from its seed, with the parameters outside `train_only` frozen (before loading
    too, so that a loaded run has the same parameters frozen as when it trained)."""
    set_seed(spec.train.seed)
    model = build_model(spec.model_type, spec.model)
    if spec.train_only:
        names = [n for n, _ in model.named_parameters()]
        unknown = [t for t in spec.train_only if not any(n.startswith(t) for n in names)]
        if unknown:
            raise ValueError(f"train_only names no parameters: {unknown}")
        for n, p in model.named_parameters():
            p.requires_grad_(any(n.startswith(t) for t in spec.train_only))
    return model


def _setup(spec: RunSpec, init, objective) -> dict:
    """How the run starts and what it optimises, as checkpoints have recorded it from the first version on."""
    return {"init": type(init).__name__ if init is not None else None,
            "train_only": sorted(spec.train_only) if spec.train_only else None,
            "objective": objective.to_dict() if objective is not None else None}


def _check_stored(ckpt: dict, spec: RunSpec, model, setup: dict, train_set, val_set, path: Path) -> bool:
    """Whether the stored run has finished; `RunMismatch` when it is another run than `spec`."""
    mtype = spec.model_type
    if ckpt["model_type"] != mtype:
        what = f"model type: checkpoint {ckpt['model_type']!r}, now {mtype!r}"
    else:
        what = config_mismatch(ckpt["model_config"], model.cfg.to_dict(), mtype)
    what = what or config_diff(ckpt.get("train_config", {}), spec.train.to_dict(), keys=TrainConfig.run_fields(),
                               defaults=TrainConfig.defaults())
    extra = ckpt.get("extra", {})
    what = what or config_diff({k: extra.get(k) for k in setup}, setup)
    finished = ckpt["epoch"] >= min(spec.train.epochs, spec.stop_after or spec.train.epochs)
    # loading a run needs the same training images; resuming one, the same validation images too
    what = what or data_mismatch(ckpt.get("data"), data_identity(train_set, val_set), validation=not finished)
    if not what and "spec" in extra:  # the rest of the spec: model and recipe compared above, with older defaults
        saved, now = ({k: v for k, v in d.items() if k not in ("model", "train")} for d in (extra["spec"], spec.to_dict()))
        what = spec_diff(saved, now)
    if what:
        raise RunMismatch(path / "checkpoint.pt", spec.name, what)
    return finished


def _loaded_line(name: str, ckpt: dict, path: Path) -> str:
    va = History.from_dict(ckpt["history"]).last("val_acc")
    has_acc = va is not None and not math.isnan(va)  # objectives without logits (MAE) have none
    return (f"loaded finished run {name!r} from {shown(path / 'checkpoint.pt')} ({ckpt['epoch']} epochs"
            + (f", val acc {100 * va:.2f}%)" if has_acc else ")"))


def _copy_weights(init: nn.Module, model: nn.Module, spec: RunSpec) -> None:
    mine = model.state_dict()
    copy = {k: v for k, v in init.state_dict().items() if k in mine and mine[k].shape == v.shape}
    if not copy:
        raise ValueError(f"run {spec.name!r}: the init model shares no weights with {spec.model}")
    model.load_state_dict(copy, strict=False)


def _stop_after(epochs: int):
    def stop(trainer):
        trainer.stop = trainer.stop or trainer.epoch >= epochs

    return stop
