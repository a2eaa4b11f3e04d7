"""Sequence tasks of notebook 14 on test-set sequences: exact-sum accuracy over lengths 1..10 and the anchor task.

Uses notebook 14's named runs (``runs/14_sequences/``): loads them when the notebook has run, trains them otherwise
(notebook 03's ViT too, on first use). Reports beside the targets: 20 and 50 digits, the FC baselines, the reproduced
published setting, and the per-digit accuracy that bounds an exact sum.

    python benchmarks/sequences.py [--fast]

Last line: ``sum exact accuracy <a> (L=1..10), anchor accuracy <b>``.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from vitlab import load_dataset
from vitlab.course.sequences import LONG, SequenceLab
from vitlab.methods.sequences import SeqTrainConfig
from vitlab.models.sets import SetConfig, log_ceiling


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="the notebook's FAST (CI) sizes: a smoke test, not a result")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    t0 = time.perf_counter()
    data = load_dataset("mnist")
    lab = SequenceLab(data, a.fast)
    s = lab.sizes
    ds = SetConfig(kind="deepsets", head="digits")
    cnn, _ = lab.sum_run("cnn_ds_digits", ds, encoder="cnn")
    fc, _ = lab.sum_run("fc_regress", SetConfig(kind="fc", head="regress"))
    pub, _ = lab.sum_run("pub", SetConfig(kind="transformer", pool="mean", head="regress", use_mask=False),
                         tcfg=SeqTrainConfig(epochs=s.epochs, published=True), windows=True)
    head = lab.sum_eval(cnn, lab.test, "test")
    p = lab.digit_accuracy(cnn, lab.test, "test")
    print(f"sum, Deep Sets + digits head, CNN end to end: test exact {head['exact']:.4f} (L=1..10), MSE {head['mse']:.3f}")
    print("  by length: " + ", ".join(f"{n}: {v:.3f}" for n, v in head["by_length"].items()))
    print(f"  per-digit accuracy p {p:.4f}: ceiling mean p^L over L=1..10 {log_ceiling(p, range(1, 11)):.4f}")
    for n in LONG:
        print(f"  L={n}: exact {lab.sum_eval(cnn, lab.test_long[n], 'test')['exact']:.4f} (ceiling p^L {p ** n:.4f};"
              f" Deep Sets paper about 0.93 at 20)")
    r = lab.sum_eval(fc, lab.test, "test")
    print(f"sum, FC baseline (regress, frozen ViT): test exact {r['exact']:.4f}, MSE {r['mse']:.3f}")
    r = lab.sum_eval(pub, lab.test, "test", published=True)
    print(f"sum, published setting reproduced (frozen ViT): test exact {r['exact']:.4f}, MSE {r['mse']:.3f}")
    lab.add_frozen("cnn_sum", cnn.embedder.encoder)
    cross, _ = lab.anchor_run("anchor_cnn_sum_cross", SetConfig(kind="cross"), encoder="cnn_sum")
    afc, _ = lab.anchor_run("anchor_cnn_sum_fc", SetConfig(kind="fc"), encoder="cnn_sum")
    an = lab.anchor_eval(cross, lab.a_test, "test")
    print(f"anchor, cross-attention on the sum-trained CNN's features: test {an['acc']:.4f}; "
          f"FC baseline {lab.anchor_eval(afc, lab.a_test, 'test')['acc']:.4f}; majority {an['majority']:.4f}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    print(f"sum exact accuracy {head['exact']:.4f} (L=1..10), anchor accuracy {an['acc']:.4f}")


if __name__ == "__main__":
    main()
