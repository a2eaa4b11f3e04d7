"""How well features cluster: UMAP maps, k-NN accuracy, silhouette and trustworthiness, side by side."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..data import ImageSet
from .features import features_of


@dataclass
class Embedding:
    coords: np.ndarray  # (N, 2) UMAP map
    seconds: float  # wall time of the UMAP fit (the first call in a process also compiles numba code)


def umap_2d(features: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> Embedding:
    """A 2-D UMAP map of (N, D) features (umap-learn), seeded so the picture is reproducible.

    A seed makes umap-learn run its layout on one thread; n_jobs=1 says so, rather than leaving UMAP to override
    its default of all cores with a warning.
    """
    import umap

    t0 = time.perf_counter()
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1)
    coords = reducer.fit_transform(np.asarray(features, dtype=np.float32))
    return Embedding(coords, time.perf_counter() - t0)


def knn_accuracy(train_features, train_labels, test_features, test_labels, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour classifier fitted on training features, on test features."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=k, n_jobs=-1).fit(train_features, np.asarray(train_labels))
    return float((clf.predict(test_features) == np.asarray(test_labels)).mean())


def cluster_metrics(features: np.ndarray, labels, coords: Optional[np.ndarray] = None, sample: int = 3000,
                    k_trust: int = 10, seed: int = 0) -> dict:
    """Silhouette score of the labelled groups in feature space (Euclidean), and, given the 2-D map `coords`, its
    trustworthiness (how many of each point's map neighbours are true neighbours; 1 = perfect). Both on a seeded
    sample of `sample` points, since they cost O(N^2)."""
    from sklearn.manifold import trustworthiness
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    n = len(labels)
    idx = np.random.default_rng(seed).permutation(n)[: min(sample, n)]
    out = {"silhouette": float(silhouette_score(features[idx], labels[idx]))}
    if coords is not None:
        out["trustworthiness"] = float(trustworthiness(features[idx], coords[idx], n_neighbors=k_trust))
    return out


@dataclass
class FeatureReport:
    name: str  # what the features come from
    dim: int  # feature width D
    knn_acc: float  # k-NN accuracy on the evaluated set, neighbours from the reference (training) features
    silhouette: float  # of the true classes in feature space (Euclidean), -1..1, higher = tighter, better separated
    trustworthiness: float  # of the 2-D UMAP map, 0.5..1, 1 = every map neighbour is a true neighbour
    umap_seconds: float  # wall time of the UMAP fit
    coords: np.ndarray  # (N, 2) the UMAP map
    features: np.ndarray  # (N, D) the evaluated set's features

    def row(self) -> str:
        return (f"{self.name:28s} {self.dim:>5d} {100 * self.knn_acc:>8.2f}% {self.silhouette:>10.3f} "
                f"{self.trustworthiness:>10.3f} {self.umap_seconds:>8.1f}")

    HEADER = f"{'features':28s} {'D':>5s} {'k-NN acc':>9s} {'silhouette':>10s} {'trust':>10s} {'UMAP s':>8s}"


def compare_features(sources: dict, data: ImageSet, reference: ImageSet, k: int = 5, seed: int = 0,
                     labels=None) -> list:
    """One FeatureReport per named source ({name: "pixels" | model | MAE | checkpoint path}).

    Features of `data` (e.g. the 10k test set) are mapped to 2-D with UMAP and scored; the k-NN classifier takes
    its neighbours from `reference` (e.g. training images). `labels` (default: data.labels) are the groups the
    silhouette score is computed for, and reference labels must be of the same kind.
    """
    labels = np.asarray(data.labels if labels is None else labels)
    out = []
    for name, source in sources.items():
        f_ref, f = features_of(source, reference), features_of(source, data)
        emb = umap_2d(f, seed=seed)
        m = cluster_metrics(f, labels, emb.coords, seed=seed)
        out.append(FeatureReport(name, f.shape[1], knn_accuracy(f_ref, reference.labels, f, data.labels, k=k),
                                 m["silhouette"], m["trustworthiness"], emb.seconds, emb.coords, f))
    return out
