"""Checkpoints: one file with weights, configs, optimizer, epoch, history and dataset.

Written atomically (a temporary file in the same directory, then a rename), so
a crash mid-write never destroys the previous checkpoint. Read with
``torch.load(weights_only=True)``: only tensors and plain Python data are
accepted, so a checkpoint cannot run code when loaded.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn

from ..config import config_diff
from ..data import DATASETS
from ..models.registry import ABOUT, CLASSIFIERS, MODEL_TYPES, build_model, model_type_of

FORMAT = "vitlab-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, unsafe, or does not fit the model."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Optional[Any] = None,
    epoch: int = 0,
    step: int = 0,
    history: Optional[dict] = None,
    train_config: Optional[dict] = None,
    dataset: Optional[str] = None,
    normalization: Optional[tuple[float, float]] = None,
    classes: Optional[list] = None,
    label_map: Optional[list] = None,
    data_split: Optional[dict] = None,
    extra: Optional[dict] = None,
    train_weights: Optional[dict] = None,
) -> None:
    """Save everything needed to rebuild, evaluate or resume a model.

    `model` holds the weights to use; a run that averages its weights (EMA) also passes the weights it is training,
    `train_weights`, which only resuming needs."""
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "model_type": model_type_of(model),
        "model_config": model.cfg.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "step": int(step),
        "history": history or {},
        "train_config": train_config or {},
        "dataset": dataset,
        "normalization": list(normalization) if normalization is not None else None,
        "classes": list(classes) if classes is not None else None,
        "label_map": list(label_map) if label_map is not None else None,  # dataset class -> model class (-1: none)
        "data_split": dict(data_split) if data_split is not None else None,  # pool, val_size, seed, source
        "extra": extra or {},
    }
    if train_weights is not None:
        ckpt["train_weights"] = train_weights
    atomic_save(ckpt, path)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate a checkpoint file; never unpickles arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):  # torch.save always writes a zip archive
        raise CheckpointError(f"{path}: not a readable checkpoint (not a torch.save zip archive)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        why = [ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln]
        raise CheckpointError(
            f"{path}: refused to load: it holds pickled objects beyond tensors and plain data"
            + (f" ({why[0]})" if why else "")
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vitlab checkpoint (no '{FORMAT}' marker)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')} is not supported (expected {VERSION})")
    missing = [k for k in ("model_type", "model_config", "model") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: incomplete vitlab checkpoint (no {', '.join(missing)})")
    return ckpt


def config_mismatch(saved: dict, current: dict, model_type: Optional[str] = None) -> str:
    """'dim: checkpoint 64, model 128; depth: ...' for the fields that differ ('' if none).

    With `model_type`, fields a checkpoint predates (added to the config later) count as their defaults.
    """
    if model_type in MODEL_TYPES:
        # Rebuilt through its config class, the saved config gets every default, nested ones (an MAE's encoder) too.
        try:
            saved = MODEL_TYPES[model_type][0].from_dict(saved).to_dict()
        except (TypeError, ValueError):  # not a valid config of that kind: compare as written
            defaults = MODEL_TYPES[model_type][0].defaults()
            return config_diff(saved, current, defaults=defaults, label="model")
    return config_diff(saved, current, label="model")


def load_weights(model: nn.Module, ckpt: dict, path: str | os.PathLike = "checkpoint") -> None:
    """Load a checkpoint's weights into `model`, refusing one saved for another config."""
    mtype = model_type_of(model)
    if ckpt["model_type"] != mtype:
        raise CheckpointError(f"{path}: checkpoint holds a {ckpt['model_type']!r} model, not a {mtype!r}")
    diff = config_mismatch(ckpt["model_config"], model.cfg.to_dict(), mtype)
    if diff:
        raise CheckpointError(f"{path}: checkpoint is from another model config ({diff})")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model ({str(e).splitlines()[0]})") from None


def model_from_checkpoint(ckpt: dict, path: str | os.PathLike = "checkpoint",
                          map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model a loaded checkpoint dict was saved from, with its weights, in eval mode."""
    if ckpt["model_type"] not in MODEL_TYPES:
        raise CheckpointError(f"{path}: unknown model type {ckpt['model_type']!r} (written by a newer vitlab?); "
                              f"known: {sorted(MODEL_TYPES)}")
    try:
        model = build_model(ckpt["model_type"], ckpt["model_config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid model config in checkpoint ({e})") from None
    load_weights(model, ckpt, path)
    return model.to(map_location).eval()


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint was saved from and load its weights: (model in eval mode, ckpt)."""
    ckpt = read_checkpoint(path, map_location)
    return model_from_checkpoint(ckpt, path, map_location), ckpt


def model_or_checkpoint(source, cls: type, kind: str, what: str, caller: str) -> nn.Module:
    """`source`, a `cls` model or the path of a checkpoint holding one, as that model; one clear error otherwise.

    `kind` and `what` name it in the errors ("an 'mae'" / "an MAE"), `caller` is the function that asked for it.
    """
    if isinstance(source, (str, os.PathLike)):
        model, ckpt = load_model(source)
        if not isinstance(model, cls):
            raise CheckpointError(f"{source}: holds a {ckpt['model_type']!r} model, not {kind} one")
        return model
    if isinstance(source, cls):
        return source
    raise TypeError(f"{caller} takes {what} or the path of {what} checkpoint, got {type(source).__name__}")


def load_classifier(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """`load_model` for a checkpoint that must hold a classifier: anything else is refused in one line.

    The checkpoint's `classes` are checked against the model's outputs; one written before they were
    recorded gets the dataset's class names when they fit, else "0".."K-1".
    """
    ckpt = read_checkpoint(path, map_location)
    kind = ckpt["model_type"]
    model = model_from_checkpoint(ckpt, path, map_location)  # refuses an unknown kind
    if kind not in CLASSIFIERS:
        hint = (f"; fine-tune its encoder into one: vitlab train --init {path}" if kind == "mae" else "")
        raise CheckpointError(f"{path}: holds {ABOUT[kind]}, not a classifier{hint}")
    k = model.cfg.num_classes
    classes = ckpt.get("classes")
    if classes is not None and len(classes) != k:
        raise CheckpointError(f"{path}: records {len(classes)} class names for a model with {k} outputs")
    if classes is None:
        names = DATASETS[ckpt["dataset"]].classes if ckpt.get("dataset") in DATASETS else ()
        ckpt["classes"] = list(names) if len(names) == k else [str(i) for i in range(k)]
    return model, ckpt
