"""Accuracy under corruption: one model, one corruption, a sweep of severities -> a curve.

    curves = robustness_curves({"ViT": vit, "CNN": cnn}, data.test)   # {corruption: {model: [acc per level]}}

Every model is evaluated on the very same corrupted images (random corruptions are seeded per level).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from ..data import ImageSet
from ..data.corruptions import CLEAN, SWEEPS, corrupt_set
from ..training.evaluation import evaluate


def robustness_curves(models: Mapping, data: ImageSet, sweeps: Optional[Mapping[str, Sequence]] = None,
                      seed: int = 0, batch_size: int = 1000) -> dict:
    """{corruption: {"levels": [...], model name: [accuracy at each level]}} over `sweeps` (default: SWEEPS)."""
    sweeps = SWEEPS if sweeps is None else sweeps
    out = {}
    for kind, levels in sweeps.items():
        row = {"levels": list(levels)}
        for i, level in enumerate(levels):
            corrupted = corrupt_set(data, kind, level, seed=seed + i)
            for name, model in models.items():
                row.setdefault(name, []).append(evaluate(model, corrupted, batch_size=batch_size).accuracy)
        out[kind] = row
    return out


def mean_corrupted_accuracy(curves: dict, model: str, skip_clean: bool = True) -> float:
    """The mean accuracy over every corruption and level, the clean level of each sweep (`CLEAN`) left out."""
    accs = [a for kind, row in curves.items() for level, a in zip(row["levels"], row[model])
            if not (skip_clean and level == CLEAN.get(kind))]
    return float(np.mean(accs))
