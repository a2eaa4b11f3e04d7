"""The parts a run spec may name, by kind: how to select its images, its objective, its callbacks.

Each is a small function of the spec's arguments; the runner (`runner.trained`) calls them. A data step takes the
images so far (a split, or what the steps before made of it) and returns new ones."""

from __future__ import annotations

import torch

from ..data import ImageSet
from ..data.splits import known_unknown_split, of_classes, with_unknown
from .runner import Context, callback, data_step, objective, trained


@data_step("take")
def take(s: ImageSet, ctx: Context, n: int, seed: int = 0) -> ImageSet:
    """A seeded random subset of `n` images (all of them when there are fewer)."""
    return s.take(n, seed=seed)


@data_step("balanced")
def balanced(s: ImageSet, ctx: Context, n: int, seed: int = 0) -> ImageSet:
    """A class-balanced, seeded subset of `n` labelled images (n // classes per class)."""
    return s.balanced_subset(n, seed=seed)


@data_step("digits")
def digits(s: ImageSet, ctx: Context, keep: tuple) -> ImageSet:
    """Only the digits `keep`, relabelled 0..K-1 in that order."""
    return known_unknown_split(s, list(keep))[0]


@data_step("with_unknown")
def with_unknown_step(s: ImageSet, ctx: Context, known: tuple, unknown: tuple, seed: int = 1) -> ImageSet:
    """The known digits (labels 0..K-1) plus as many images of the `unknown` digits, all labelled K ("unknown"),
    from the same split."""
    k, rest = known_unknown_split(getattr(ctx.data, ctx.split), list(known))
    return with_unknown(k, of_classes(rest, unknown), known, unknown, seed)


@data_step("tile")
def tile(s: ImageSet, ctx: Context, n: int) -> ImageSet:
    """The images repeated to exactly `n` (each augmented differently when trained on): a fixed epoch length."""
    return s.tile(n)


@data_step("transfer")
def transfer(s: ImageSet, ctx: Context, labelled: int) -> ImageSet:
    """Every image, the first `labelled` of a seeded draw (`take`) moved to the front with their labels, every
    other one without its label (a distillation teacher labels those).

    The labelled images move to the front on purpose: at their original places they would be exactly the first
    ones of the trainer's epoch-0 shuffle, which is drawn from the same seed as `take`."""
    keep = s.take_indices(labelled)
    rest = torch.ones(len(s), dtype=torch.bool)
    rest[keep] = False
    order = torch.cat([keep, torch.nonzero(rest).flatten()])
    return s.subset(order).hide_labels(keep=torch.arange(len(keep)))


@objective("mae")
def mae_objective(ctx: Context, **args):
    from ..methods.mae import MAEObjective

    return MAEObjective(**args)


@objective("jepa")
def jepa_objective(ctx: Context):
    from ..methods.jepa import JEPAObjective

    return JEPAObjective()


@objective("cvae")
def cvae_objective(ctx: Context):
    from ..methods.cvae import CVAEObjective

    return CVAEObjective(ctx.data.info.mean, ctx.data.info.std)


@objective("distill")
def distill_objective(ctx: Context, teacher, **config):
    """Distillation from the run `teacher` (a RunSpec), with a `DistillConfig` of `config`; the teacher's outputs
    are cached, so later students of the same teacher do not pay for its forward passes again."""
    from ..methods.distillation import DistillConfig, distillation_objective
    from .runner import for_this_mode, runs_dir

    where = (str(runs_dir()), for_this_mode(teacher).key)  # one teacher object per run: its cached outputs are shared
    if where not in _TEACHERS:
        _TEACHERS[where] = trained(teacher, ctx.data).model
    return distillation_objective(_TEACHERS[where], DistillConfig(**config), cache_teacher=True)


_TEACHERS: dict = {}  # (runs folder, teacher key) -> the teacher model, loaded once per process


@callback("jepa")
def jepa_callbacks(ctx: Context, train_set, val_set, ema: tuple = (0.996, 1.0), reference: int = 5000,
                   probe: int = 2000) -> dict:
    """JEPA's moving-average target update after each step, and its collapse monitor (k-NN accuracy of `probe`
    validation images among `reference` training images)."""
    from ..methods.jepa import jepa_callbacks as callbacks

    return callbacks(ctx.data.train.take(reference), ctx.data.val.take(probe), ema=tuple(ema))

