"""Named training runs on disk, and the train-or-load helper the notebooks use.

A run lives in ``<runs_dir>/<name>/``: ``checkpoint.pt`` (written every
epoch), TensorBoard events in ``tb/``. Asking for a run that has finished
loads it; one that was interrupted resumes from its last epoch; one that does
not exist is trained. Asking for a finished run with a different model or
recipe is an error rather than a silent overwrite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch.nn as nn

from .checkpoint import CheckpointError, build_model, config_mismatch, load_checkpoint, load_weights, model_type_of
from .data import ImageSet
from .paths import project_dir
from .train import History, TrainConfig, Trainer, _RUN_FIELDS, set_seed


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
    model_type: Optional[str] = None,
    retrain: bool = False,
    tensorboard: bool = True,
    progress: bool = True,
    verbose: bool = True,
    callbacks: Optional[dict] = None,
) -> Run:
    """Load run `name` if it finished with this model config and recipe; otherwise (re)train it.

    `model_config` is a ViTConfig or CNNConfig (the model type follows from it).
    The model is initialised with `train_config.seed`, so a run is reproducible.
    """
    if model_type is None:
        model_type = "cnn" if type(model_config).__name__ == "CNNConfig" else "vit"
    path = Path(runs_dir or default_runs_dir()) / name
    ckpt_path = path / "checkpoint.pt"
    set_seed(train_config.seed)
    model = build_model(model_type, model_config)
    if ckpt_path.exists() and not retrain:
        ckpt = load_checkpoint(ckpt_path)
        diff = config_mismatch(ckpt["model_config"], model.cfg.to_dict(), model_type) if ckpt["model_type"] == model_type else "type"
        saved, now = ckpt.get("train_config", {}), train_config.to_dict()
        recipe = [k for k in _RUN_FIELDS if saved.get(k) != now[k]]
        if diff or recipe:
            what = diff if diff else "recipe fields " + ", ".join(recipe)
            raise CheckpointError(
                f"{ckpt_path}: run {name!r} exists with a different setup ({what}); "
                f"use another name, or retrain=True to overwrite it"
            )
        if ckpt["epoch"] >= train_config.epochs:
            load_weights(model, ckpt, ckpt_path)
            if verbose:
                h = History.from_dict(ckpt["history"])
                va = h.last("val_acc")
                print(f"loaded finished run {name!r} from {ckpt_path} ({ckpt['epoch']} epochs"
                      + (f", val acc {100 * va:.2f}%)" if va is not None else ")"))
            return Run(model.eval(), History.from_dict(ckpt["history"]), path, trained_now=False)
    if retrain and ckpt_path.exists():
        ckpt_path.unlink()
    trainer = Trainer(
        model,
        train_set,
        val_set,
        train_config,
        checkpoint_path=ckpt_path,
        tensorboard_dir=path / "tb" if tensorboard else None,
        progress=progress,
        verbose=verbose,
        extra={"run_name": name},
    )
    for event, fns in (callbacks or {}).items():
        for fn in fns if isinstance(fns, (list, tuple)) else [fns]:
            trainer.add_callback(event, fn)
    history = trainer.fit(resume=True)
    return Run(trainer.model.eval(), history, path, trained_now=True)


def model_summary(model: nn.Module) -> str:
    """One line: type, config highlights and parameter count."""
    n = sum(p.numel() for p in model.parameters())
    return f"{model_type_of(model)} {model.cfg} — {n:,} parameters"
