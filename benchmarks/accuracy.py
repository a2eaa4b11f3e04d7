"""Accuracy per FLOP of a named recipe: its training FLOPs, test accuracy over several seeds, and wall time.

Each seed trains from scratch (never loads an earlier run) on 55,000 training images with 5,000 held out for
validation, and its final model (the last epoch's; no early stopping) is evaluated once on the 10,000 test images.
FLOPs are counted with torch.utils.flop_counter on one batch (forward and backward) and multiplied by the images
the recipe trains on. Wall time covers loading the data, training and every validation pass.

    python benchmarks/accuracy.py [--recipe default|long] [--seeds 3] [--first-seed 0] [--out DIR]
                                  [--epochs N] [--preset P] [--dim D]     (overrides, for exploring)

With --out DIR, each seed's run is kept in DIR/<recipe>_s<seed>/ and an interrupted benchmark resumes there.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import torch

from vitlab import PRESETS, ViT, evaluate, load_dataset, train_or_load
from vitlab.training import RunSpec, Show
from vitlab.analysis.cost import sgemm_rate, training_flops_per_image
from vitlab.analysis.latency import cpu_model
from vitlab.training import RECIPES


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="default", choices=sorted(RECIPES))
    ap.add_argument("--seeds", type=int, default=3, help="how many seeds to train (default: %(default)s)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)  # the old spelling: one run with this seed
    ap.add_argument("--epochs", type=int, help="override the recipe's epochs (for exploring)")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="override the recipe's model (for exploring)")
    ap.add_argument("--dim", type=int, help="override the model width (for exploring)")
    ap.add_argument("--out", help="keep the runs here, and resume them (default: a temporary directory)")
    a = ap.parse_args()
    if a.seeds < 1:
        ap.error("--seeds must be at least 1")
    seeds = [a.seed] if a.seed is not None else list(range(a.first_seed, a.first_seed + a.seeds))
    r = RECIPES[a.recipe]
    model = PRESETS[a.preset]() if a.preset else r.model
    if a.dim:
        model = dataclasses.replace(model, dim=a.dim)
    tc = dataclasses.replace(r.train, **({"epochs": a.epochs} if a.epochs else {}))
    cpu, threads = cpu_model(), torch.get_num_threads()
    print(f"recipe {a.recipe}: {model}")
    print(f"train: {tc}")
    print(f"torch {torch.__version__}, {threads} threads, {cpu}")
    data = load_dataset("mnist")
    steps = len(data.train) // tc.batch_size
    if tc.max_steps_per_epoch:
        steps = min(steps, tc.max_steps_per_epoch)
    per_image = training_flops_per_image(ViT(model))
    total = per_image * steps * tc.batch_size * tc.epochs
    print(f"training FLOPs: {per_image / 1e6:.1f} MFLOP per image x {steps * tc.batch_size:,} images x {tc.epochs} epochs"
          f" = {total / 1e12:.1f} TFLOP")
    accs, walls, train_secs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            t0 = time.perf_counter()
            spec = RunSpec(f"{a.recipe}_s{seed}", model, dataclasses.replace(tc, seed=seed))
            run = train_or_load(spec, data.train, data.val, runs_dir=a.out or tmp, retrain=not a.out,
                                show=Show(progress=False, tensorboard=False))
            train_secs.append(sum(run.history.epochs["seconds"]))
            # A run finished or begun earlier (with --out) counts at least the seconds all its epochs took.
            walls.append(max(time.perf_counter() - t0, train_secs[-1]))
            result = evaluate(run.model, data.test)
            accs.append(100 * result.accuracy)
            print(f"seed {seed}: validation {100 * run.history.last('val_acc'):.2f}%, test {accs[-1]:.2f}%"
                  f" ({result.errors} errors), {walls[-1]:.0f} s wall, {train_secs[-1]:.0f} s in epochs", flush=True)
    sgemm = sgemm_rate()
    rate = total / statistics.median(train_secs)
    print(f"achieved training rate: {rate / 1e9:.1f} GFLOP/s = {rate / sgemm:.2f} of this machine's sgemm"
          f" ({sgemm / 1e9:.0f} GFLOP/s)")
    std = statistics.stdev(accs) if len(accs) > 1 else 0.0
    wall = statistics.median(walls)
    print(f"{a.recipe}: {statistics.mean(accs):.2f}% ± {std:.2f} over {len(accs)} seeds, {total / 1e12:.1f} TFLOP,"
          f" {wall:.0f} s on {cpu} ({threads} threads)")


if __name__ == "__main__":
    main()
