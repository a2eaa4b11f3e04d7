"""The "is this like a digit?" check of `vitlab predict` and the drawing pad: which score, and how often it flags.

1. Choice of score, on validation only: for each score, the threshold that keeps 95% of the checkpoint's 5,000
   validation digits, and the share it flags of non-digits drawn for selection: Fashion-MNIST *training*
   images, noise and scribbles from seed 0, letters in every other bundled font.
2. Report, with the check as `predict` fits it (threshold on all validation digits): the share flagged of
   MNIST *test* digits, Fashion-MNIST *test* images, noise and scribbles from seed 1, and letters in the other
   half of the fonts. Every picture is prepared exactly as `predict` prepares a file.

    python benchmarks/digitcheck.py [--checkpoint runs/vit_default/checkpoint.pt] [--n 1000]

Last line: `flagged: mnist test <a>%, fashion <b>%, noise <c>%, scribbles <d>%, letters <e>%`.
"""

from __future__ import annotations

import argparse
import time

import torch

from vitlab.analysis.latency import cpu_model
from vitlab.experiments.own_digits import flag_rates, non_digits, score_comparison
from vitlab.data import load_dataset
from vitlab.data.fonts import bundled_fonts
from vitlab.apps.digitcheck import for_checkpoint
from vitlab.training.checkpoints import load_classifier
from vitlab.training.evaluation import evaluation_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/vit_default/checkpoint.pt")
    ap.add_argument("--n", type=int, default=1000, help="images of each kind of non-digit (default 1000)")
    a = ap.parse_args()
    t0 = time.time()
    model, ckpt = load_classifier(a.checkpoint)
    fashion = load_dataset("fashion-mnist")
    fonts = bundled_fonts()

    val, _ = evaluation_split(ckpt, a.checkpoint, "val")
    check = for_checkpoint(model, ckpt, a.checkpoint)  # its bank of training features; fitted once, then cached
    sel = non_digits(a.n, fashion.train, seed=0, fonts=fonts[::2])
    print(f"1. choosing the score on validation ({a.checkpoint}): flagged at 95% of validation digits kept")
    table = score_comparison(model, check, val, sel)
    kinds = list(next(iter(table.values())))
    print(f"   {'score':<18}" + "".join(f"{k:>15}" for k in kinds))
    for score, row in table.items():
        print(f"   {score:<18}" + "".join(f"{100 * row[k]:>14.1f}%" for k in kinds))

    report = {"mnist test": load_dataset(ckpt.get("dataset") or "mnist").test.images.numpy().astype("float32") / 255}
    report.update(non_digits(a.n, fashion.test, seed=1, fonts=fonts[1::2]))
    rates = flag_rates(model, check, report, val)
    print(f"2. flagged by the check as predict fits it (threshold {check.threshold:.4f} keeps "
          f"{100 * check.tpr:.0f}% of {len(check.val_scores)} validation digits):")
    for k, r in rates.items():
        print(f"   {k:<15} {100 * r:5.1f}%")
    print(f"{time.time() - t0:.0f} s on {cpu_model()}, {torch.get_num_threads()} threads")
    short = {"Fashion-MNIST": "fashion", "uniform noise": "noise"}
    print("flagged: " + ", ".join(f"{short.get(k, k)} {100 * r:.1f}%" for k, r in rates.items()))


if __name__ == "__main__":
    main()
