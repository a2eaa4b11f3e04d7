"""Checkpoints: one file with weights, configs, optimizer, epoch, history and dataset.

Written atomically (a temporary file in the same directory, then a rename), so
a crash mid-write never destroys the previous checkpoint. Read with
``torch.load(weights_only=True)``: only tensors and plain Python data are
accepted, so a checkpoint cannot run code when loaded.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn

from ..config import check_number, config_diff
from ..data import DATASETS
from ..models.registry import ABOUT, CLASSIFIERS, MODEL_TYPES, build_model, model_type_of

FORMAT = "vitlab-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, unsafe, or does not fit the model."""


class RunMismatch(CheckpointError):
    """A stored run was trained with another setup (model, recipe, data) than the one asked for.

    `what` lists the fields that differ with both values; the message's hint names the library's way to start
    afresh, and the command line words its own (`--overwrite`)."""

    def __init__(self, path, name: str, what: str, action: str = "resume or load"):
        self.path, self.name, self.what, self.action = Path(path), name, what, action
        super().__init__(f"{path}: cannot {action} run {name!r}: it was trained with a different setup ({what}); "
                         f"use another name, or retrain=True to start it afresh")


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of earlier writes of `path` whose writer is gone (killed mid-write): their names
    carry the writer's process id, so a write still under way in another process is left alone."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        parts = tmp.name[len(path.name) + 2:].split(".")
        pid = int(parts[0]) if parts and parts[0].isdigit() else None
        if pid is None or (pid != os.getpid() and not _alive(pid)):
            tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over it.

    The file gets the permissions of any file the user creates (0666 less the umask), not the 0600 of a temporary
    file; temporaries that a killed writer left behind are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
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
    data: Optional[dict] = None,
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
        "data": dict(data) if data is not None else None,  # data_identity: which images it trained and validated on
        "extra": extra or {},
    }
    if train_weights is not None:
        ckpt["train_weights"] = train_weights
    atomic_save(ckpt, path)


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.blake2b(digest_size=8)
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def data_identity(train_set, val_set=None) -> dict:
    """Which images a run trains and validates on, as plain data a checkpoint keeps: the dataset, the source and
    train / validation split it was drawn from, the number of images, and a digest of the images and labels
    themselves (so a subset, a relabelling or another split of the same size differ too)."""
    info, split = train_set.info, train_set.split or {}
    return {"dataset": info.name, "source": split.get("source"), "pool": split.get("pool"),
            "val_size": split.get("val_size"), "split_seed": split.get("seed"),
            "train_images": len(train_set), "train_digest": _digest(train_set.images, train_set.labels),
            "val_images": len(val_set) if val_set is not None else 0,
            "val_digest": _digest(val_set.images, val_set.labels) if val_set is not None else None}


def data_mismatch(saved: Optional[dict], now: dict, validation: bool = True) -> str:
    """'dataset: checkpoint 'mnist', now 'fashion-mnist'; ...' for what differs ('' if nothing, or if the checkpoint
    predates the record). The digests are compared only when everything readable agrees, so the message names the
    field a user changed (a dataset, a subset size) rather than the digest that follows from it.

    Without `validation`, only what decides the weights is compared (the training images and the split they were
    drawn by): loading a finished run does not care which validation images it is later read with; resuming does,
    since the rest of its history is measured on them."""
    if not saved:
        return ""
    now = {k: v for k, v in now.items() if validation or not k.startswith("val_") or k == "val_size"}
    readable = [k for k in now if not k.endswith("_digest")]
    return config_diff(saved, now, keys=readable) or config_diff(saved, now, keys=[k for k in now if k not in readable])


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
    norm = ckpt.get("normalization")
    if norm is not None:  # every image is divided by the std: a zero or nan would make every answer nan
        try:
            if not isinstance(norm, (list, tuple)) or len(norm) != 2:
                raise ValueError(norm)
            check_number("mean", norm[0])
            check_number("std", norm[1], low=0, low_open=True)
        except ValueError:
            raise CheckpointError(f"{path}: invalid normalisation {norm!r} (expected a finite mean and a std > 0)") \
                from None
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
        with torch.device("meta"):  # the config's shapes, with no memory spent: a crafted config cannot exhaust it
            shapes = {k: tuple(t.shape) for k, t in build_model(ckpt["model_type"], ckpt["model_config"])
                      .state_dict().items()}
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid model config in checkpoint ({e})") from None
    stored = ckpt["model"] if isinstance(ckpt["model"], dict) else {}
    stored = {k: tuple(t.shape) for k, t in stored.items() if isinstance(t, torch.Tensor)}
    if stored != shapes:
        n_cfg, n_stored = sum(math.prod(s) for s in shapes.values()), sum(math.prod(s) for s in stored.values())
        raise CheckpointError(f"{path}: its model config describes {n_cfg:,} values in {len(shapes)} tensors, but it "
                              f"stores {n_stored:,} in {len(stored)}: not building it")
    model = build_model(ckpt["model_type"], ckpt["model_config"])
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
