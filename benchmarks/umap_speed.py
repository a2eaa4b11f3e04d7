"""UMAP wall time on the 10,000-image MNIST test set (issue target: under one minute on this 2-core CPU).

Maps notebook 03's ViT features (D=128) and the raw pixels (D=784) to 2-D with umap-learn, as notebook 08
does (n_neighbors=15, min_dist=0.1, seeded). The first UMAP call in a process compiles numba code; it is
timed on its own and kept out of the figures.

    python benchmarks/umap_speed.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vitlab import load_dataset
from vitlab.analysis.embedding import cluster_metrics, umap_2d
from vitlab.analysis.features import extract_features, pixel_features
from vitlab.experiments import VIT_DEFAULT, trained


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="fits per feature set (the median is reported)")
    a = ap.parse_args()
    if a.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {a.repeats}")
    data = load_dataset("mnist")
    t0 = time.perf_counter()
    umap_2d(np.random.default_rng(0).normal(size=(500, 16)).astype(np.float32))
    print(f"numba compilation (first UMAP call, 500 points): {time.perf_counter() - t0:.1f} s")
    vit = trained(VIT_DEFAULT, data).model
    for name, f in (("ViT CLS features", extract_features(vit, data.test)), ("raw pixels", pixel_features(data.test))):
        times = []
        for i in range(a.repeats):
            emb = umap_2d(f, seed=i)
            times.append(emb.seconds)
        trust = cluster_metrics(f, data.test.labels.numpy(), emb.coords)["trustworthiness"]
        print(f"{name:18s} {f.shape[0]:,} x {f.shape[1]}: UMAP fit median {np.median(times):.1f} s "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)}), trustworthiness {trust:.3f}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
