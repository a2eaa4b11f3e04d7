"""Accuracy and wall time of a named recipe on the full MNIST training set.

Trains from scratch (never loads an earlier run), on 55,000 training images with
5,000 held out for validation, then evaluates once on the 10,000 test images.
Wall time covers loading the data, training and every validation pass.

    python benchmarks/accuracy.py [--recipe default|long] [--seed 0] [--epochs N] [--preset P]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time

import torch

from vitlab import PRESETS, evaluate, load_dataset, train_or_load
from vitlab.training import RECIPES


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="default", choices=sorted(RECIPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, help="override the recipe's epochs (for exploring)")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="override the recipe's model (for exploring)")
    ap.add_argument("--dim", type=int, help="override the model width (for exploring)")
    ap.add_argument("--out", help="keep the run here (default: a temporary directory)")
    a = ap.parse_args()
    r = RECIPES[a.recipe]
    model = PRESETS[a.preset]() if a.preset else r.model
    if a.dim:
        model = dataclasses.replace(model, dim=a.dim)
    tc = dataclasses.replace(r.train, seed=a.seed, **({"epochs": a.epochs} if a.epochs else {}))
    print(f"recipe {a.recipe}: {model}")
    print(f"train: {tc}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = load_dataset("mnist")
        run = train_or_load(f"bench-{a.recipe}", model, data.train, data.val, tc, runs_dir=a.out or tmp,
                            retrain=True, tensorboard=False, progress=False)
        wall = time.perf_counter() - t0
        result = evaluate(run.model, data.test)
    params = sum(p.numel() for p in run.model.parameters())
    print(f"parameters: {params:,}")
    print(f"wall time (data + training + validation): {wall:.0f} s ({wall / 60:.2f} min)")
    print(f"validation accuracy: {100 * run.history.last('val_acc'):.2f}%")
    print(f"test accuracy: {100 * result.accuracy:.2f}% ({result.errors} errors of {len(result.labels)})")


if __name__ == "__main__":
    main()
