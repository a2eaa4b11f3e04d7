"""Learned features and how well they cluster: extraction, UMAP maps, and the numbers behind them (notebook 08).

Any model with `forward_features` and `forward_head(pre_logits=True)` (every
vitlab ViT, the CNN, a fine-tuned model from any checkpoint) gives its
pre-logit features; raw pixels are the baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .data import ImageSet


FEATURE_LAYERS = ("pre_logits", "pooled")


@torch.no_grad()
def extract_features(model, data: ImageSet, batch_size: int = 1000, layer: str = "pre_logits") -> np.ndarray:
    """(N, D) features of every image.

    layer "pre_logits": what the classifier reads, `forward_head(..., pre_logits=True)` (for a ViT the CLS token after
    the final LayerNorm; for the CNN the output of its hidden fully connected layer). "pooled": `forward_pool`, the
    pooled output of the backbone before any head layer (the same as pre_logits for a ViT; for the CNN its
    globally average-pooled convolutional features).
    """
    if not hasattr(model, "forward_features") or not hasattr(model, "forward_head"):
        raise TypeError("extract_features needs a model with forward_features and forward_head(pre_logits=...)")
    if layer not in FEATURE_LAYERS:
        raise ValueError(f"layer must be one of {FEATURE_LAYERS}, got {layer!r}")
    if layer == "pooled" and not callable(getattr(model, "forward_pool", None)):
        raise TypeError(f"layer 'pooled' needs a model with forward_pool; {type(model).__name__} has none")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for x, _ in data.batches(batch_size):
        f = model.forward_features(x.to(device))
        f = model.forward_pool(f) if layer == "pooled" else model.forward_head(f, pre_logits=True)  # (B, D)
        out.append(f.float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def pixel_features(data: ImageSet) -> np.ndarray:
    """(N, H*W) raw pixels scaled to [0, 1]: the baseline every learned feature should beat."""
    return (data.images.reshape(len(data), -1).float() / 255.0).numpy()


@dataclass
class Embedding:
    coords: np.ndarray  # (N, 2) UMAP map
    seconds: float  # wall time of the UMAP fit (the first call in a process also compiles numba code)


def umap_2d(features: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> Embedding:
    """A 2-D UMAP map of (N, D) features (umap-learn), seeded so the picture is reproducible."""
    import umap

    t0 = time.perf_counter()
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed)
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


# --------------------------------------------------------------------------- comparing feature sources (notebook 08)


def feature_model(source) -> torch.nn.Module:
    """The feature extractor behind `source`: a model with forward_features/forward_head, a model that wraps one as
    `.encoder` (vitlab's MAE), or the path of any vitlab checkpoint holding either."""
    import os

    if isinstance(source, (str, os.PathLike)):
        from .checkpoint import load_model

        source, _ = load_model(source)
    if not (hasattr(source, "forward_features") and hasattr(source, "forward_head")):
        encoder = getattr(source, "encoder", None)
        if encoder is None or not hasattr(encoder, "forward_features"):
            raise TypeError(f"{type(source).__name__} has no forward_features/forward_head and no ViT encoder")
        source = encoder
    return source.eval()


def features_of(source, data: ImageSet) -> np.ndarray:
    """(N, D) features of `data` from `source`: "pixels", a model, an MAE, or a checkpoint path (see feature_model)."""
    if isinstance(source, str) and source == "pixels":
        return pixel_features(data)
    return extract_features(feature_model(source), data)


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
