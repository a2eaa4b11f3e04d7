"""Sequence tasks of notebook 14 on test-set sequences: exact-sum accuracy over lengths 1..10 and the anchor task.

Uses notebook 14's named runs (``runs/14_sequences/``): loads them when the notebook has run, trains them otherwise
(notebook 03's ViT too, on first use). Reports beside the targets: 20 and 50 digits, the FC baselines, the reproduced
published setting, and the per-digit accuracy that bounds an exact sum.

    python benchmarks/sequences.py [--fast]

Last line: ``sum exact accuracy <a> (L=1..10), anchor accuracy <b>``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from vitlab import load_dataset
from vitlab.experiments.sequences import LONG, SequenceLab
from vitlab.methods.sequences import SeqTrainConfig
from vitlab.models.sets import SetConfig, log_ceiling


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="the notebook's FAST (CI) sizes: a smoke test, not a result")
    a = ap.parse_args()
    if a.fast:  # FAST is the environment's, as in the notebooks: the quick sizes, the quick ViT, runs/fast/
        os.environ["CI"] = "1"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    t0 = time.perf_counter()
    data = load_dataset("mnist")
    lab = SequenceLab(data)
    s = lab.sizes
    ds = SetConfig(kind="deepsets", head="digits")
    enc = {"frozen ViT": lab.sum_run("ds_digits", ds)[0],
           "fine-tuned ViT": lab.sum_run("vit_ft_ds_digits", ds, encoder="vit_ft")[0],
           "CNN end to end": lab.sum_run("cnn_ds_digits", ds, encoder="cnn")[0]}
    val = {k: lab.sum_eval(m, lab.val, "val")["exact"] for k, m in enc.items()}
    best = max(val, key=val.get)  # chosen on validation sequences, as in the notebook
    fc, _ = lab.sum_run("fc_regress", SetConfig(kind="fc", head="regress"))
    pub, _ = lab.sum_run("pub", SetConfig(kind="transformer", pool="mean", head="regress", use_mask=False),
                         tcfg=SeqTrainConfig(epochs=s.epochs, published=True), windows=True)
    for k, m in enc.items():
        r = lab.sum_eval(m, lab.test, "test")
        p = lab.digit_accuracy(m, lab.test, "test")
        print(f"sum, Deep Sets + digits head, {k}{' (chosen on validation)' if k == best else ''}: val exact "
              f"{val[k]:.4f}, test exact {r['exact']:.4f} (L=1..10), MSE {r['mse']:.3f}")
        print("  by length: " + ", ".join(f"{n}: {v:.3f}" for n, v in r["by_length"].items()))
        print(f"  per-digit accuracy p {p:.4f}: ceiling mean p^L over L=1..10 {log_ceiling(p, range(1, 11)):.4f}")
        print("  " + "; ".join(f"L={n}: exact {lab.sum_eval(m, lab.test_long[n], 'test')['exact']:.4f} (ceiling p^L "
                               f"{p ** n:.4f})" for n in LONG) + " (Deep Sets paper: about 0.93 at 20)")
        if k == best:
            head = r
    r = lab.sum_eval(fc, lab.test, "test")
    print(f"sum, FC baseline (regress, frozen ViT): test exact {r['exact']:.4f}, MSE {r['mse']:.3f}")
    r = lab.sum_eval(pub, lab.test, "test", published=True)
    print(f"sum, published setting reproduced (frozen ViT): test exact {r['exact']:.4f}, MSE {r['mse']:.3f}")
    anchor = {k: lab.anchor_run(f"anchor_vit_{k}", SetConfig(kind=k))[0] for k in ("fc", "cross", "self")}
    aval = {k: lab.anchor_eval(m, lab.a_val, "val")["acc"] for k, m in anchor.items()}
    abest = max(aval, key=aval.get)
    an = lab.anchor_eval(anchor[abest], lab.a_test, "test")
    print(f"anchor on frozen ViT features, test: {abest} (chosen on validation) {an['acc']:.4f}; " + ", ".join(
        f"{k} {lab.anchor_eval(m, lab.a_test, 'test')['acc']:.4f}" for k, m in anchor.items() if k != abest)
        + f"; majority {an['majority']:.4f}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    print(f"sum exact accuracy {head['exact']:.4f} (L=1..10), anchor accuracy {an['acc']:.4f}")


if __name__ == "__main__":
    main()
