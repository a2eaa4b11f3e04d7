"""A run as a value: `RunSpec` holds everything that decides a run's weights, and has a stable content key.

    spec = RunSpec("vit_default", vit_mini_mnist(), RECIPES["default"].train)
    spec.key                   # 'b3f1c0...': the same settings give the same key, in any process, on any machine
    spec.derive(train=dataclasses.replace(spec.train, seed=1), name="vit_default_s1")

What a spec holds:
- `model`: the config of any registered model type (ViTConfig, MAEConfig, ...); the type follows from it;
- `train`: the `TrainConfig` (its bookkeeping fields, such as the device, do not count);
- `data`: which images it trains and validates on (`DataSpec`: named steps applied to the dataset's splits);
- `objective`, `callbacks`: named parts a higher layer builds (an objective other than cross-entropy; callbacks
  that change the weights, such as JEPA's moving-average target);
- `init`: the run it starts from (`Init`: another spec, and which of its weights to take); `train_only`: the
  parameter-name prefixes that learn, the rest frozen;
- `stop_after`: end after that many epochs of the schedule (a run judged worse on validation gives its time back).

The `name` is the folder the run lives in and what people call it; `fast` says how CI's quick check shrinks the
run. Neither counts towards the key. This module holds values only: building the parts and training is the job of
the run store (`training.runs`) and of the layer that names the runs (`vitlab.experiments`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ..models.registry import model_type_for_config
from .config import TrainConfig


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def _plain(v: Any) -> Any:
    """A JSON-ready form of a spec's value: specs by their key, tuples as lists, dataclasses (configs, parts) by the
    fields that differ from their defaults, so that a field added later with a default that keeps the old behaviour
    leaves every key as it was."""
    if isinstance(v, RunSpec):
        return {"run": v.key}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)
                if getattr(v, f.name) != _default(f)}
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"a run spec can only hold plain values, configs and other specs, not {type(v).__name__}")


@dataclass(frozen=True)
class Part:
    """A named piece that a higher layer knows how to build: a data step ("take", n=4000), an objective ("mae"), a
    callback ("jepa_target"). `args` are (name, value) pairs in name order, so equal parts are equal values."""

    kind: str
    args: tuple = ()

    @classmethod
    def of(cls, kind: str, /, **args) -> "Part":
        return cls(kind, tuple(sorted(args.items())))

    @property
    def kwargs(self) -> dict:
        return dict(self.args)


@dataclass(frozen=True)
class DataSpec:
    """Which images a run sees: the dataset, then steps applied in order to its training and validation splits
    (e.g. `(Part.of("take", n=5000),)`: a seeded subset). `val=None`: no validation during training."""

    dataset: str = "mnist"
    train: tuple = ()
    val: Optional[tuple] = ()

    def then(self, train: tuple = (), val: tuple = ()) -> "DataSpec":
        """These steps after the existing ones."""
        return dataclasses.replace(self, train=self.train + tuple(train),
                                   val=None if self.val is None else self.val + tuple(val))


@dataclass(frozen=True)
class Init:
    """Start from another run's weights: `take` names what of it ("model": the whole model, every tensor whose name
    and shape match; "encoder": the ViT inside an MAE, JEPA or classifier, with a fresh `num_classes`-way head,
    drawn from `seed` when given). `hub`: instead of a run, published weights by their timm name (needs internet)."""

    run: Optional["RunSpec"] = None
    take: str = "model"
    seed: Optional[int] = None
    hub: Optional[str] = None
    num_classes: int = 10  # the head of the encoder or the hub model


@dataclass(frozen=True)
class Fast:
    """How CI's quick check shrinks a run: at most `images` training images (and `val_images` validation ones), at
    most `epochs` epochs (None: as the full run), other `train` settings as (field, value) pairs; `data` replaces the data outright where a
    subset is not the same run in small (a task with its own sizes); `callbacks` replaces the callbacks (a
    monitor on fewer images)."""

    images: Optional[int] = None
    epochs: Optional[int] = None
    val_images: Optional[int] = None
    train: tuple = ()
    data: Optional[DataSpec] = None
    callbacks: Optional[tuple] = None


@dataclass(frozen=True)
class RunSpec:
    name: str
    model: Any
    train: TrainConfig
    data: DataSpec = DataSpec()
    objective: Optional[Part] = None
    callbacks: tuple = ()
    init: Optional[Init] = None
    train_only: tuple = ()
    stop_after: Optional[int] = None
    shrunk_: bool = field(default=False, compare=False, repr=False)  # already CI's quick version (`shrunk`)
    fast: Optional[Fast] = field(default=None, compare=False)  # None: the quick check trains it as it is

    def __post_init__(self):
        object.__setattr__(self, "train_only", tuple(self.train_only))
        object.__setattr__(self, "callbacks", tuple(self.callbacks))

    @property
    def model_type(self) -> str:
        return model_type_for_config(self.model)

    def to_dict(self) -> dict:
        """What decides the weights, as plain data (each config by its fields that differ from their defaults): what
        a checkpoint records and the key is a digest of."""
        train = _plain(self.train)
        return {"model_type": self.model_type, "model": _plain(self.model),
                "train": {k: v for k, v in train.items() if k in TrainConfig.run_fields()}, "data": _plain(self.data),
                "objective": _plain(self.objective), "callbacks": _plain(self.callbacks), "init": _plain(self.init),
                "train_only": list(self.train_only), "stop_after": self.stop_after}

    @property
    def key(self) -> str:
        """A 16-hex-digit digest of `to_dict()`: equal for equal settings, whatever the name."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def derive(self, name: Optional[str] = None, **changes) -> "RunSpec":
        """This spec with some fields changed (`dataclasses.replace`), under `name` if given."""
        return dataclasses.replace(self, **({"name": name} if name else {}), **changes)

    def seeded(self, seed: int) -> "RunSpec":
        """The same run with another seed, named ``<name>_s<seed>``: a seed spread's member."""
        return self.derive(f"{self.name}_s{seed}", train=dataclasses.replace(self.train, seed=seed))

    def shrunk(self) -> "RunSpec":
        """CI's quick version of this run (`fast`), marked as shrunk: shrinking twice is once."""
        if self.shrunk_:
            return self
        f = self.fast or Fast()
        data = f.data
        if data is None:
            take = lambda n: (Part.of("take", n=n),) if n else ()  # noqa: E731
            data = self.data.then(train=take(f.images), val=take(f.val_images))
        epochs = self.train.epochs if f.epochs is None else min(self.train.epochs, f.epochs)
        train = dataclasses.replace(self.train, **{"epochs": epochs, **dict(f.train)})
        init = self.init if self.init is None or self.init.run is None else \
            dataclasses.replace(self.init, run=self.init.run.shrunk())
        callbacks = self.callbacks if f.callbacks is None else tuple(f.callbacks)
        # runs named inside parts (a distillation teacher, the VAE a mix samples from) shrink with it
        data = dataclasses.replace(data, train=_shrink_parts(data.train),
                                   val=None if data.val is None else _shrink_parts(data.val))
        return dataclasses.replace(self, data=data, train=train, init=init, callbacks=_shrink_parts(callbacks),
                                   objective=None if self.objective is None else _shrink_parts((self.objective,))[0],
                                   fast=None, shrunk_=True)


def _shrink_parts(parts: tuple) -> tuple:
    """`parts` with every run spec among their arguments replaced by its quick version."""
    return tuple(dataclasses.replace(p, args=tuple((k, v.shrunk() if isinstance(v, RunSpec) else v) for k, v in p.args))
                 if isinstance(p, Part) else p for p in parts)


def spec_diff(saved: dict, now: dict) -> str:
    """'train.lr: checkpoint 0.002, now 0.001; ...' for the fields of two `to_dict()`s that differ ('' if none)."""

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v and "run" not in v:
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(saved), flat(now)
    shown = lambda d, k: repr(d[k]) if k in d else "the default"  # noqa: E731  (to_dict leaves defaults out)
    return "; ".join(f"{k}: checkpoint {shown(a, k)}, now {shown(b, k)}" for k in sorted(set(a) | set(b))
                     if a.get(k) != b.get(k))
