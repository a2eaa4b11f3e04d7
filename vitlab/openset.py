"""Open-set recognition: known classes plus "unknown", and how to measure it.

Two ways to say "unknown" (notebook 07): train an explicit unknown class on
some of the other digits, or train on the known classes only and threshold a
confidence score. The scores here follow the usual convention that *higher
means more likely known*:

- ``msp``: maximum softmax probability (Hendrycks & Gimpel 2017);
- ``max_logit``: the largest logit, before softmax (Vaze et al. 2022, "a good
  closed-set classifier is all you need");
- ``energy``: the negative free energy T * logsumexp(logits / T) (Liu et al. 2020).

Metrics: AUROC (known vs unknown), false-positive rate at 95% true-positive
rate, expected calibration error with its reliability bins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .data import ImageSet

SCORES = ("msp", "max_logit", "energy")


def known_score(logits: torch.Tensor, kind: str = "msp", temperature: float = 1.0) -> torch.Tensor:
    """(N, classes) logits -> (N,) score, higher = more confidently one of the known classes."""
    logits = logits.float()
    if kind == "msp":
        return logits.softmax(-1).amax(-1)
    if kind == "max_logit":
        return logits.amax(-1)
    if kind == "energy":
        return temperature * torch.logsumexp(logits / temperature, dim=-1)
    raise ValueError(f"score must be one of {SCORES}, got {kind!r}")


def auroc(known: torch.Tensor | np.ndarray, unknown: torch.Tensor | np.ndarray) -> float:
    """Area under the ROC curve for telling known (positive, higher score) from unknown inputs."""
    from sklearn.metrics import roc_auc_score

    k, u = np.asarray(known, dtype=float), np.asarray(unknown, dtype=float)
    if len(k) == 0 or len(u) == 0:
        raise ValueError("AUROC needs at least one known and one unknown score")
    y = np.r_[np.ones(len(k)), np.zeros(len(u))]
    return float(roc_auc_score(y, np.r_[k, u]))


def fpr_at_tpr(known, unknown, tpr: float = 0.95) -> float:
    """The share of unknowns accepted as known at the threshold that accepts `tpr` of the knowns."""
    k, u = np.asarray(known, dtype=float), np.asarray(unknown, dtype=float)
    threshold = np.quantile(k, 1 - tpr, method="lower")  # accept scores >= threshold: at least tpr of the knowns
    return float((u >= threshold).mean())


def threshold_at_tpr(known, tpr: float = 0.95) -> float:
    """The score threshold that keeps `tpr` of the known inputs."""
    return float(np.quantile(np.asarray(known, dtype=float), 1 - tpr, method="lower"))


@dataclass
class Calibration:
    ece: float  # expected calibration error: bin-weighted mean |accuracy - confidence|
    bin_edges: np.ndarray  # (bins + 1,)
    bin_confidence: np.ndarray  # (bins,) mean confidence per bin (nan where empty)
    bin_accuracy: np.ndarray  # (bins,) accuracy per bin (nan where empty)
    bin_counts: np.ndarray  # (bins,)


def calibration(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> Calibration:
    """ECE and reliability-diagram bins from (N, classes) probabilities and (N,) labels (equal-width bins)."""
    probs = torch.as_tensor(probs).float()
    conf, pred = probs.max(-1)
    correct = (pred == torch.as_tensor(labels)).float().numpy()
    conf = conf.numpy()
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=bins) / counts
        acc = np.bincount(idx, weights=correct, minlength=bins) / counts
    gaps = np.where(counts > 0, np.abs(acc - mean_conf), 0.0)
    ece = float((counts * gaps).sum() / max(counts.sum(), 1))
    return Calibration(ece, edges, mean_conf, acc, counts)


# --------------------------------------------------------------------------- splits


def known_unknown_split(data: ImageSet, known: Sequence[int], unknown_label: bool = False) -> tuple[ImageSet, ImageSet]:
    """Split `data` into (known, rest). Known labels are renumbered 0..K-1 in the order given; the rest keep
    their digit labels, or all become K when `unknown_label` (the explicit "unknown" class)."""
    known = list(known)
    if len(set(known)) != len(known) or not known:
        raise ValueError(f"known classes must be distinct and non-empty, got {known}")
    classes = len(data.info.classes)
    if not all(0 <= k < classes for k in known):
        raise ValueError(f"known classes must be in 0..{classes - 1}, got {known}")
    remap = torch.full((classes,), -1, dtype=torch.long)
    remap[torch.tensor(known)] = torch.arange(len(known))
    is_known = remap[data.labels] >= 0
    k = data.subset(torch.nonzero(is_known).flatten())
    k = ImageSet(k.images, remap[k.labels], k.info, k.name)
    rest = data.subset(torch.nonzero(~is_known).flatten())
    if unknown_label:
        rest = ImageSet(rest.images, torch.full_like(rest.labels, len(known)), rest.info, rest.name)
    return k, rest


def open_set_splits(num_known: int = 6, num_classes: int = 10, splits: int = 5, seed: int = 0) -> list[list[int]]:
    """The standard protocol's random known-class sets (e.g. 6 known / 4 unknown MNIST digits), seeded."""
    g = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < splits:
        s = sorted(torch.randperm(num_classes, generator=g)[:num_known].tolist())
        if s not in out:
            out.append(s)
    return out
