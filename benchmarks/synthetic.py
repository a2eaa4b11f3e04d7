"""Synthetic digits (notebook 13): zero real labels, few real labels with and without synthetic data, robustness.

Every run is a spec of `vitlab.experiments.synthetic` (the notebook's run names), so the notebook loads what this trains.

1. design (validation split only): generators (fonts / strokes / both, short zero-label runs) and the mix
   (synthetic share, with or without the conditional VAE) at 10 labels per class, seed 0;
2. zero real labels: the default ViT on the synthetic pool, seeds 0-2, real MNIST test accuracy;
3. 1 / 10 / 100 real labels per class, seeds 0-2: real only, real + synthetic, synthetic pre-training then
   fine-tuning, all at FEW_STEPS steps of FEW_BATCH; which use of synthetic data ("mix" or "pre") the last line
   reports is chosen on the validation split (mean over the seeds at 10 labels per class);
4. full data (seed 0 only: the with-synthetic run took 33 minutes, one thread on the shared 2-core machine):
   notebook 03's real-only ``vit_tiny_mnist`` against ``13_full_mix`` at the same step count; clean test accuracy
   and the mean accuracy over the corruption sweeps (on ROBUST_N seeded random test digits), and the same for the
   100-labels-per-class models.

    python benchmarks/synthetic.py [--part design|small|full|all]

`--part full` trains only the full-data run (the benchmark's longest; it can run beside `--part small`).
Last line: `zero-real-label accuracy <a>; 10 labels/class: real <b> -> with synthetic <c>`.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from vitlab.analysis.latency import cpu_model
from vitlab.analysis.robustness import mean_corrupted_accuracy, robustness_curves
from vitlab.experiments import synthetic as S
from vitlab.data import load_dataset
from vitlab.training.evaluation import evaluate

ROBUST_N = 2000  # test digits the corruption sweeps run on (each sweep point is a full pass)




def pm(xs) -> str:
    xs = 100 * np.asarray(xs)
    return f"{xs.mean():.2f} ± {xs.std(ddof=1) if len(xs) > 1 else 0.0:.2f}"


def design(data) -> None:
    print("1. design choices, on the validation split (seed 0; generators: 20,000 digits, 2 epochs)")
    for name, run in S.design_runs(data).items():
        print(f"   {name:<40} val acc {100 * evaluate(run.model, data.val).accuracy:.2f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="all", choices=("design", "small", "full", "all"))
    a = ap.parse_args()
    t0 = time.time()
    data = load_dataset("mnist")
    pool = S.synthetic_pool(data)
    print(f"synthetic pool: {len(pool)} digits (fonts + strokes), {len(pool.fonts)} fonts: {', '.join(pool.fonts)}")
    if a.part == "full":
        S.full_data_runs(data)
        print(f"full-data runs done in {time.time() - t0:.0f} s")
        return
    if a.part in ("design", "all"):
        design(data)
        if a.part == "design":
            return

    print(f"2. zero real labels: the default ViT ({S.ZERO_EPOCHS} epochs over the pool), real MNIST test set")
    zero = [evaluate(S.zero_label_run(data, s).model, data.test).accuracy for s in S.SEEDS]
    print(f"   test acc {pm(zero)}% (seeds {S.SEEDS}: {', '.join(f'{100 * z:.2f}' for z in zero)})")

    print(f"3. few real labels: {S.FEW_STEPS} steps of {S.FEW_BATCH} per arm, synthetic share {S.MIX_SHARE} "
          f"({S.CVAE_SHARE:.2f} of it from the VAE); test acc, mean ± std over seeds {S.SEEDS}")
    few = {}
    for k in S.LABELS_PER_CLASS:
        for arm in S.ARMS:
            few[k, arm] = [evaluate(S.few_label_run(data, k, arm, s).model, data.test).accuracy
                           for s in S.SEEDS]
        print(f"   {k:>3} labels/class: " + "; ".join(f"{arm} {pm(few[k, arm])}%" for arm in S.ARMS))
    val10 = {arm: [evaluate(S.few_label_run(data, 10, arm, s).model, data.val).accuracy for s in S.SEEDS]
             for arm in ("mix", "pre")}
    best = max(val10, key=lambda arm: np.mean(val10[arm]))  # which use of synthetic data: chosen on validation
    print(f"   10 labels/class, validation: mix {pm(val10['mix'])}%, pre {pm(val10['pre'])}% -> '{best}' reported "
          f"as 'with synthetic' below (test: +{100 * (np.mean(few[10, best]) - np.mean(few[10, 'real'])):.2f} points)")

    if a.part == "all":
        print("4. full data (seed 0) and robustness: mean accuracy over the corruption sweeps, on "
              f"{ROBUST_N} seeded random test digits")
        full = S.full_data_runs(data)
        clean = {arm: evaluate(r.model, data.test).accuracy for arm, r in full.items()}
        models = {f"full {arm}": r.model for arm, r in full.items()}
        for arm in ("real", "mix"):
            for s in S.SEEDS:
                models[f"100/class {arm} s{s}"] = S.few_label_run(data, 100, arm, s).model
        curves = robustness_curves(models, data.test.take(ROBUST_N, seed=0))
        mca = {name: mean_corrupted_accuracy(curves, name) for name in models}
        for arm in ("real", "mix"):
            print(f"   full data, {arm:<4}: clean test acc {100 * clean[arm]:.2f}%, mean corrupted acc "
                  f"{100 * mca[f'full {arm}']:.2f}%")
        for arm in ("real", "mix"):
            print(f"   100 labels/class, {arm:<4}: mean corrupted acc "
                  f"{pm([mca[f'100/class {arm} s{s}'] for s in S.SEEDS])}%")
        print(f"   full data: clean accuracy change with synthetic {100 * (clean['mix'] - clean['real']):+.2f} points; "
              f"mean corrupted accuracy change {100 * (mca['full mix'] - mca['full real']):+.2f} points")

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')};"
          f" {time.time() - t0:.0f} s (runs found on disk are loaded; missing ones are trained)")
    print(f"zero-real-label accuracy {pm(zero)}%; 10 labels/class: real {pm(few[10, 'real'])}% -> "
          f"with synthetic {pm(few[10, best])}%")


if __name__ == "__main__":
    main()
