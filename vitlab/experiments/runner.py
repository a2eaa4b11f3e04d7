"""The one runner the notebooks, the benchmarks and the series tool share: `trained(spec, data) -> Run`.

It applies FAST once, from the environment (`fast_mode()`: the variable ``CI`` set, as in every notebook's first
cell), builds what the spec names (its images from `spec.data`, its objective, its callbacks, the run it starts
from) and hands them to the run store (`vitlab.training.runs.train_or_load`). Runs live in ``runs/``, or in
``runs/fast/`` for FAST runs, so a quick check never replaces or reuses the real models.

The parts a spec may name are registered here by kind (`@data_step`, `@objective`, `@callback`); a notebook's module
registers what only it needs (the synthetic pool of notebook 13) in the same way.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Optional

import torch

from ..data import ImageSet
from ..training.callbacks import QUIET, Show
from ..training.runs import Run, default_runs_dir, train_or_load
from ..training.spec import DataSpec, Init, Part, RunSpec

DATA_STEPS: dict[str, Callable] = {}  # kind -> fn(images, ctx, **args) -> ImageSet
OBJECTIVES: dict[str, Callable] = {}  # kind -> fn(ctx, **args) -> Objective
CALLBACKS: dict[str, Callable] = {}  # kind -> fn(ctx, train_set, val_set, **args) -> {event: [fn]}
# Modules that register parts of their own, imported when a spec names a part not registered yet.
_PART_MODULES = ("vitlab.experiments.synthetic", "vitlab.experiments.openset_protocol")


def fast_mode() -> bool:
    """FAST (CI's quick check) is on when the environment variable CI is set, as in every notebook."""
    return bool(os.environ.get("CI"))


def runs_dir() -> Path:
    """Where the notebooks keep their runs: ``runs/``, or ``runs/fast/`` in FAST mode."""
    return default_runs_dir() / "fast" if fast_mode() else default_runs_dir()


def for_this_mode(spec: RunSpec) -> RunSpec:
    """The spec as this mode trains it: shrunk in FAST mode, unchanged otherwise."""
    return spec.shrunk() if fast_mode() else spec


def _register(table: dict, kind: str):
    def add(fn):
        table[kind] = fn
        return fn

    return add


def data_step(kind: str):
    return _register(DATA_STEPS, kind)


def objective(kind: str):
    return _register(OBJECTIVES, kind)


def callback(kind: str):
    return _register(CALLBACKS, kind)


def _lookup(table: dict, part: Part, what: str) -> Callable:
    if part.kind not in table:
        import importlib

        for name in _PART_MODULES:
            importlib.import_module(name)
    if part.kind not in table:
        raise ValueError(f"no {what} is called {part.kind!r}; known: {', '.join(sorted(table))}")
    return table[part.kind]


@dataclasses.dataclass
class Context:
    """What building a spec's parts may read: the dataset's splits, and the split being built."""

    data: object  # DataSplits
    split: str = "train"


def select(data, spec: DataSpec) -> tuple[ImageSet, Optional[ImageSet]]:
    """(training images, validation images or None) of `spec`, from `data` (the DataSplits of spec.dataset)."""
    if data.info.name != spec.dataset:
        raise ValueError(f"the run trains on {spec.dataset!r}, but the data given is {data.info.name!r}")

    def build(split: str, steps) -> ImageSet:
        s, ctx = getattr(data, split), Context(data, split)
        for step in steps:
            s = _lookup(DATA_STEPS, step, "data step")(s, ctx, **step.kwargs)
        return s

    return build("train", spec.train), None if spec.val is None else build("val", spec.val)


def build_init(init: Optional[Init], data) -> Optional[torch.nn.Module]:
    """The model whose weights a run starts from: another run's model, or the encoder inside it."""
    if init is None:
        return None
    from ..methods.pretrained import encoder_of, vit_from_timm_hub

    if init.take not in ("model", "encoder"):
        raise ValueError(f"Init.take must be 'model' or 'encoder', got {init.take!r}")
    if init.hub is not None:
        return vit_from_timm_hub(init.hub, num_classes=init.num_classes)
    source = trained(init.run, data)
    if init.take == "model":
        return source.model
    if init.seed is None:
        return encoder_of(source.model, num_classes=init.num_classes)
    with torch.random.fork_rng():  # the fresh head from the seed, without moving the caller's generator
        torch.manual_seed(init.seed)
        return encoder_of(source.model, num_classes=init.num_classes)


def trained(spec: RunSpec, data, show: Show = QUIET, retrain: bool = False) -> Run:
    """Train, resume or load `spec` (FAST-shrunk in FAST mode) on `data`, the DataSplits of its dataset."""
    spec = for_this_mode(spec)
    train_set, val_set = select(data, spec.data)
    ctx = Context(data)
    obj = None if spec.objective is None else _lookup(OBJECTIVES, spec.objective, "objective")(
        ctx, **spec.objective.kwargs)
    callbacks: dict = {}
    for part in spec.callbacks:
        for event, fns in _lookup(CALLBACKS, part, "callback")(ctx, train_set, val_set, **part.kwargs).items():
            callbacks.setdefault(event, []).extend(fns)
    return train_or_load(spec, train_set, val_set, objective=obj, init=build_init(spec.init, data),
                         callbacks=callbacks, show=show, runs_dir=runs_dir(), retrain=retrain)


def seed_runs(spec: RunSpec, data, seeds, show: Show = QUIET) -> dict:
    """{seed: Run}: `spec` trained once per seed, each under its own name ``<name>_s<seed>``."""
    return {s: trained(spec.seeded(s), data, show) for s in seeds}


from . import parts  # noqa: E402,F401  (registers the parts every spec may name)
