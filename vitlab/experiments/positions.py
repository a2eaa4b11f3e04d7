"""Notebook 05: the positional-embedding ablation. Notebook 03's model with learned, fixed 2-D sin-cos or no
position embeddings, each trained with every seed of SEEDS (runs ``05_<kind>_s<seed>``), all at one budget: the
default recipe shortened to ABLATION_EPOCHS epochs."""

from __future__ import annotations

import dataclasses

from ..analysis.positions import shuffled_accuracy
from ..training.inference import predict_logits
from ..training.recipes import RECIPES
from ..training.spec import RunSpec
from .common import FAST_PLAN

POSITION_KINDS = ("learned", "sincos", "none")  # ViTConfig.pos_embed
# The default recipe cut to 18 epochs (1 epoch of warm-up, cosine decay over the 18), the same for every variant
# and seed, so that nine runs cost about three of the full recipe.
ABLATION_EPOCHS = 18

ABLATION_RUNS = {kind: RunSpec(f"05_{kind}", dataclasses.replace(RECIPES["default"].model, pos_embed=kind),
                               dataclasses.replace(RECIPES["default"].train, epochs=ABLATION_EPOCHS), fast=FAST_PLAN)
                 for kind in POSITION_KINDS}


def ablation_scores(runs: dict, data, shuffle_seed: int = 0) -> dict:
    """{kind: {seed: {"val": last-epoch validation accuracy, "test": test accuracy, "shuffled": test accuracy with
    the patches of every image shuffled (the same permutations for every model), "seconds": training time}}}."""
    out = {}
    for kind, by_seed in runs.items():
        out[kind] = {}
        for s, run in by_seed.items():
            test = float((predict_logits(run.model, data.test).argmax(1) == data.test.labels).float().mean())
            out[kind][s] = {"val": run.history.last("val_acc"), "test": test,
                            "shuffled": shuffled_accuracy(run.model, data.test, run.model.cfg.patch_size, seed=shuffle_seed),
                            "seconds": sum(run.history.epochs["seconds"])}
    return out
