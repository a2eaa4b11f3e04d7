"""Self-supervised pre-training on MNIST at one budget: I-JEPA (notebook 12) against notebook 09's MAE, one process.

1. Budget: seconds per pre-training step of the MAE and of the JEPA, measured here on the same batches with the real
   Trainer loop, taking turns; the JEPA's epochs (`JEPA_PRETRAIN_EPOCHS`) are the MAE's 30 scaled by their ratio.
   The runs' recorded training seconds are printed too (they also carry the load of this shared machine).
2. Pre-training runs through the run store (`vitlab.experiments.trained`) (trained the first time, loaded afterwards; the notebooks load them):
   the MAE (``09_mae``) and the JEPA with block and with scattered masking (``12_jepa_block``, ``12_jepa_scattered``).
3. Choices on VALIDATION only (images held out of training): which masking, by the collapse monitor's 5-NN accuracy
   of 2,000 validation images (the block run was stopped after 3 of its 15 epochs, when it had fallen behind, to give
   the machine to the scattered run), and which JEPA encoder (the context encoder or its moving average), by the
   linear probe on flattened patch tokens of the 5,000 validation images.
4. Test (10,000 images): 5-NN and linear probe on frozen features (mean-pooled patch tokens, CLS + mean, every patch
   token flattened; raw pixels as the floor), and fine-tuning with 100 and 1,000 labels (notebook 09's recipe and
   images) from the JEPA encoder, from the MAE encoder and from scratch. One seed each: no spread.

    python benchmarks/self_supervised.py

Last line: `jepa linear <a>% knn <b>% 1k-label <c>%; mae linear <d>% knn <e>% 1k-label <f>%` (linear probe and 5-NN on
flattened patch tokens, test accuracy after fine-tuning on 1,000 labels).
"""

from __future__ import annotations

import os
import time  # noqa: E402

import torch  # noqa: E402

from vitlab.analysis.embedding import knn_accuracy
from vitlab.analysis.features import pixel_features
from vitlab.analysis.latency import cpu_model
from vitlab.analysis.probes import linear_probe
from vitlab.data import load_dataset
from vitlab.experiments import trained
from vitlab.experiments.jepa import (
    BLOCK_STOPPED_AT,
    JEPA_PRETRAIN_EPOCHS,
    JEPA_PRETRAIN,
    cached_frozen_eval,
    jepa_finetune_spec,
    pretrain_step_seconds,
)
from vitlab.experiments.mae import MAE_PRETRAIN, MAE_PRETRAIN_EPOCHS, mae_finetune_spec
from vitlab.training.evaluation import evaluate


def main() -> None:
    t_start = time.time()
    data = load_dataset("mnist")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")

    print("1. budget: seconds per pre-training step, measured in this process (batch 256, median of 3 turns)")
    step = pretrain_step_seconds(data)
    for k, s in step.items():
        print(f"   {k:>9}: {1000 * s:.0f} ms/step")
    for m in ("block", "scattered"):
        print(f"   JEPA ({m}) at the MAE's {MAE_PRETRAIN_EPOCHS} epochs' time: "
              f"{MAE_PRETRAIN_EPOCHS * step['mae'] / step[m]:.1f} epochs (runs use {JEPA_PRETRAIN_EPOCHS})")

    print("2. pre-training runs (loaded when they exist)")
    mae_run = trained(MAE_PRETRAIN, data)
    jepa_runs = {m: trained(spec, data) for m, spec in JEPA_PRETRAIN.items()}
    for name, r in [("MAE", mae_run)] + [(f"JEPA {m}", r) for m, r in jepa_runs.items()]:
        ep = r.history.epochs
        print(f"   {name:<15} {ep['epoch'][-1]:>3} epochs, {sum(ep['seconds']):>5.0f} s recorded, "
              f"{'trained now' if r.trained_now else 'loaded'}")
    for m, r in jepa_runs.items():
        ep = r.history.epochs
        print(f"   JEPA {m:<9} collapse monitor, epoch 1 -> {ep['epoch'][-1]}: embedding std {ep['emb_std'][0]:.3f} -> "
              f"{ep['emb_std'][-1]:.3f}, 5-NN (2,000 val among 5,000 train) {100 * ep['knn_acc'][0]:.1f}% -> "
              f"{100 * ep['knn_acc'][-1]:.1f}%")

    print(f"3. choices on validation. Masking: the monitor's 5-NN (2,000 val images) after epoch {BLOCK_STOPPED_AT}, "
          f"where the block run was stopped")
    e = BLOCK_STOPPED_AT - 1
    knn = {m: r.history.epochs["knn_acc"][e] for m, r in jepa_runs.items()}
    masking = max(knn, key=knn.get)
    print("   " + ", ".join(f"{m} {100 * v:.1f}%" for m, v in knn.items()) + f": {masking} masking")
    val = {w: cached_frozen_eval(jepa_runs[masking], w, data.train, data.val, "val")["patches"]
           for w in ("context", "target")}
    for w, v in val.items():
        print(f"   {masking} run, {w:>7} encoder, flattened patch tokens: linear {100 * v['linear']:.2f}%  "
              f"5-NN {100 * v['knn']:.2f}%")
    which = max(val, key=lambda w: val[w]["linear"])
    print(f"   chosen: {masking} masking, {which} encoder (linear probe on validation)")

    print("4. test: frozen features (5-NN / linear probe)")
    table = {"JEPA": cached_frozen_eval(jepa_runs[masking], which, data.train, data.test, "test"),
             "MAE": cached_frozen_eval(mae_run, "encoder", data.train, data.test, "test")}
    ptr, pte = pixel_features(data.train), pixel_features(data.test)
    ytr, yte = data.train.labels.numpy(), data.test.labels.numpy()
    pixels = {"knn": knn_accuracy(ptr, ytr, pte, yte, k=5), "linear": linear_probe(ptr, ytr, pte, yte)["test_acc"]}
    for name, t in table.items():
        for layer, v in t.items():
            print(f"   {name:<5} {layer:>9}: 5-NN {100 * v['knn']:.2f}%  linear {100 * v['linear']:.2f}%")
    print(f"   raw pixels     : 5-NN {100 * pixels['knn']:.2f}%  linear {100 * pixels['linear']:.2f}%")

    print("5. test: fine-tuning every weight on few labels")
    ft = {}
    for n in (100, 1000):
        ft[("JEPA", n)] = trained(jepa_finetune_spec(n, masking), data)
        ft[("MAE", n)] = trained(mae_finetune_spec(n, pretrained=True), data)
        ft[("scratch", n)] = trained(mae_finetune_spec(n, pretrained=False), data)
    acc = {k: evaluate(r.model, data.test).accuracy for k, r in ft.items()}
    for n in (100, 1000):
        print(f"   {n:>5} labels: scratch {100 * acc[('scratch', n)]:.2f}%  MAE {100 * acc[('MAE', n)]:.2f}%  "
              f"JEPA {100 * acc[('JEPA', n)]:.2f}%")
    print(f"total {time.time() - t_start:.0f} s")
    j, a = table["JEPA"]["patches"], table["MAE"]["patches"]
    print(f"jepa linear {100 * j['linear']:.2f}% knn {100 * j['knn']:.2f}% 1k-label {100 * acc[('JEPA', 1000)]:.2f}%; "
          f"mae linear {100 * a['linear']:.2f}% knn {100 * a['knn']:.2f}% 1k-label {100 * acc[('MAE', 1000)]:.2f}%")


if __name__ == "__main__":
    main()
