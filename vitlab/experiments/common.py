"""Notebook 03's runs, which later notebooks load rather than train again, and what every seed spread shares.

- ``vit_default``: the default recipe (as `vitlab train` names it); FAST: 4,000 images for 10 epochs, because later
  notebooks reuse it (the drawing pad reads digits with it), where the other runs' FAST is `FAST_PLAN` (4,000 images,
  2 epochs);
- ``cnn_baseline``: the default recipe's training for a CNN, CNN_BASELINE_EPOCHS epochs;
- ``vit_no_smoothing``: the default ViT without label smoothing, NO_SMOOTHING_EPOCHS epochs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..models import CNNConfig
from ..training.recipes import RECIPES
from ..training.spec import Fast, RunSpec

SEEDS = (0, 1, 2)  # a seed seeds the model's initialisation, the shuffling and the augmentation
CNN_BASELINE_EPOCHS = 6
NO_SMOOTHING_EPOCHS = 3

FAST_PLAN = Fast(images=4000, epochs=2)  # what CI's quick check trains, unless a run says otherwise

VIT_DEFAULT = RunSpec("vit_default", RECIPES["default"].model, RECIPES["default"].train, fast=Fast(images=4000, epochs=10))
CNN_BASELINE = RunSpec("cnn_baseline", CNNConfig(),
                       dataclasses.replace(RECIPES["default"].train, epochs=CNN_BASELINE_EPOCHS), fast=FAST_PLAN)
# FAST: as many epochs as the smoothed ViT it is compared with (10), not fewer
VIT_NO_SMOOTHING = VIT_DEFAULT.derive("vit_no_smoothing", train=dataclasses.replace(
    RECIPES["default"].train, label_smoothing=0.0, epochs=NO_SMOOTHING_EPOCHS),
    fast=Fast(images=4000, epochs=10, train=(("epochs", 10),)))

SPECS = [VIT_DEFAULT, CNN_BASELINE, VIT_NO_SMOOTHING]


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
