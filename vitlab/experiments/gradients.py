"""Notebook 04: the high-learning-rate experiment (warm-up and gradient clipping switched off one at a time, over
SEEDS: runs ``04_<variant>_s<seed>``), the deep pre-norm / post-norm pair, and what a run's record of gradient norms
says about clipping and spikes."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..models.configs import vit_tiny_mnist
from ..training.recipes import RECIPES
from ..training.spec import RunSpec
from .common import FAST_PLAN

HIGH_LR = 1e-2  # five times the recipe's peak; at 4e-3 all four variants trained alike on validation, without spikes
HIGH_LR_EPOCHS = 2  # each run: 2 epochs, cosine decay over them
HIGH_LR_WARMUP = 0.5  # epochs of linear warm-up, where it is on
SPIKE_WINDOW, SPIKE_FACTOR = 20, 3.0  # a gradient spike: a norm above 3x the median of the 20 steps before it


def run_name(label: str) -> str:
    """'warm-up + clipping' -> '04_warmup_clipping' (the seed is appended: '_s0')."""
    return "04_" + label.replace(" + ", "_").replace(" ", "_").replace("-", "")


def high_lr_variants() -> dict:
    """{label: TrainConfig}: the default recipe at HIGH_LR for HIGH_LR_EPOCHS, with or without warm-up and clipping."""
    base = dataclasses.replace(RECIPES["default"].train, epochs=HIGH_LR_EPOCHS, lr=HIGH_LR, warmup_epochs=HIGH_LR_WARMUP)
    return {"warm-up + clipping": base,
            "no warm-up": dataclasses.replace(base, warmup_epochs=0.0),
            "no clipping": dataclasses.replace(base, grad_clip=0.0),
            "neither": dataclasses.replace(base, warmup_epochs=0.0, grad_clip=0.0)}


HIGH_LR_RUNS = {label: RunSpec(run_name(label), vit_tiny_mnist(), cfg, fast=FAST_PLAN)
                for label, cfg in high_lr_variants().items()}

# Twelve blocks, with the normalisation before each sublayer (pre-norm, as the ViT) or after it (the 2017
# Transformer's post-norm): the default recipe for 2 epochs with a short warm-up.
DEEP_TRAIN = dataclasses.replace(RECIPES["default"].train, epochs=2, warmup_epochs=0.2)
DEEP_RUNS = {"pre-norm": RunSpec("04_deep_prenorm", vit_tiny_mnist(dim=64, depth=12, prenorm=True), DEEP_TRAIN,
                                  fast=FAST_PLAN),
             "post-norm": RunSpec("04_deep_postnorm", vit_tiny_mnist(dim=64, depth=12, prenorm=False), DEEP_TRAIN,
                                  fast=FAST_PLAN)}


def per_epoch(history, key: str = "grad_norm", reduce=np.median) -> np.ndarray:
    """`reduce` of the per-step record `key` over each epoch's steps: (epochs,)."""
    y, e = np.asarray(history.steps[key], dtype=float), np.asarray(history.steps["epoch"])
    return np.array([reduce(y[e == i]) for i in np.unique(e)])


def clipped_share(history, clip: float = 1.0) -> np.ndarray:
    """Per epoch, the share of steps whose global gradient norm (recorded before clipping) was above `clip`: the
    steps that clipping at `clip` rescaled, or would have, in a run without it. (epochs,)"""
    return per_epoch(history, "grad_norm", lambda g: float(np.mean(g > clip)))


def grad_spikes(history, window: int = SPIKE_WINDOW, factor: float = SPIKE_FACTOR) -> list:
    """The steps where the global gradient norm, as recorded: *before* clipping, rose above `factor` x the median
    of the `window` steps before it (`History.spikes`)."""
    return history.spikes("grad_norm", window=window, factor=factor)


def spike_summary(history, clip: float = 1.0) -> dict:
    """What a run's spike count means: the run's median and largest gradient norm (before clipping), its share of
    steps above `clip`, and its gradient spikes split by the learning rate they came at: at least half the run's
    peak, or below half (late in the decay, where the weights barely move between steps)."""
    g, lr = np.asarray(history.steps["grad_norm"], dtype=float), np.asarray(history.steps["lr"], dtype=float)
    at = {s: i for i, s in enumerate(history.steps["step"])}
    rel = np.array([lr[at[s]] for s in grad_spikes(history)]) / lr.max()
    return {"median": float(np.median(g)), "max": float(g.max()), "over_clip": float(np.mean(g > clip)),
            "spikes": len(rel), "spikes_high_lr": int(np.sum(rel >= 0.5)), "spikes_low_lr": int(np.sum(rel < 0.5))}
