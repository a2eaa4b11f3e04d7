"""Seed spreads (notebooks 04, 05, 09, 10 and 13): one run trained with several seeds, each under its own name
(``<name>_s<seed>``, so an interrupted series pass resumes where it stopped), reported per seed and as
mean ± standard deviation over the seeds."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..training.runs import train_or_load

SEEDS = (0, 1, 2)  # the seed seeds the model's initialisation, the shuffling and the augmentation


def seed_runs(name: str, model_config, train_set, val_set, train_config, seeds=SEEDS, **kwargs) -> dict:
    """{seed: Run}: run ``<name>_s<seed>`` for each seed, the recipe otherwise unchanged; trained the first time it
    is asked for, loaded afterwards (`train_or_load`, which `kwargs` go to)."""
    return {s: train_or_load(f"{name}_s{s}", model_config, train_set, val_set,
                             dataclasses.replace(train_config, seed=s), **kwargs) for s in seeds}


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    v = np.asarray(list(values), dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def pm(values, scale: float = 1.0, digits: int = 2) -> str:
    """'mean ± std' of `values` times `scale` (100 for percentages), e.g. '98.91 ± 0.07'; one value as itself, and
    none (or a nan among them) as '—', so that a printed table never shows nan."""
    v = np.asarray(list(values), dtype=float) * scale
    if v.size == 0 or np.isnan(v).any():
        return "—"
    m, s = mean_std(v)
    return f"{m:.{digits}f}" if v.size == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"


def per_seed(values, scale: float = 1.0, digits: int = 2) -> str:
    """The values one by one, in seed order: '98.84 / 98.95 / 98.93'."""
    return " / ".join(f"{scale * float(v):.{digits}f}" for v in values)
