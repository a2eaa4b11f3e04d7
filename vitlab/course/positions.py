"""Notebook 05: the positional-embedding ablation. Notebook 03's model with learned, fixed 2-D sin-cos or no
position embeddings, each trained with every seed of SEEDS (runs ``05_<kind>_s<seed>``), all at one budget: the
default recipe shortened to ABLATION_EPOCHS epochs."""

from __future__ import annotations

import dataclasses

from ..analysis.positions import shuffled_accuracy
from ..training.inference import predict_logits
from ..training.recipes import RECIPES
from .common import notebook_runs_dir, shrink_for_fast
from .seeds import SEEDS, seed_runs

KINDS = ("learned", "sincos", "none")  # ViTConfig.pos_embed
# The default recipe's 53 epochs cut to 18 (1 epoch of warm-up, cosine decay over the 18), the same for every
# variant and seed: 9 runs of about 2.5 minutes on the project's 2-core CPU instead of 9 of 7. FAST: FAST_EPOCHS.
ABLATION_EPOCHS = 18


def ablation_runs(data, fast: bool = False, seeds=SEEDS) -> dict:
    """{kind: {seed: Run}} for every kind of KINDS; trained the first time, loaded afterwards."""
    r = RECIPES["default"]
    train_set, cfg = shrink_for_fast(data.train, dataclasses.replace(r.train, epochs=ABLATION_EPOCHS), fast)
    return {kind: seed_runs(f"05_{kind}", dataclasses.replace(r.model, pos_embed=kind), train_set, data.val, cfg,
                            seeds, runs_dir=notebook_runs_dir(fast), tensorboard=False, progress=False, verbose=False)
            for kind in KINDS}


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
