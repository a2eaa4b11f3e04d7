"""Open-set recognition: known classes plus "unknown", and how to measure it.

Two ways to say "unknown": train an explicit unknown class on
some of the other digits, or train on the known classes only and threshold a
confidence score. The scores here follow the usual convention that *higher
means more likely known*:

- ``msp``: maximum softmax probability (Hendrycks & Gimpel 2017);
- ``max_logit``: the largest logit, before softmax (Vaze et al. 2022, "a good
  closed-set classifier is all you need");
- ``energy``: the negative free energy logsumexp(logits) at T = 1 (Liu et al. 2020).

Two more tools for the harder case where the unknowns are other digits:

- ``NearestNeighbourScore`` (`vitlab.analysis.knn`): the cosine similarity of
  an input's features to its k-th nearest known training image (Sun et al.
  2022, "Out-of-distribution detection with deep nearest neighbors"), no
  retraining needed.
  Which features matters: for the CNN the pooled convolutional features
  (``extract_features(model, data, layer="pooled")``, the layer Sun et al.
  use on ResNets) separate unknown digits better than the hidden layer after
  them (benchmarks/openset.py, README);
- ``OutlierExposure``: a training objective that adds outliers and pushes the
  model's answer on them towards the uniform distribution (the outlier-exposure
  loss of Hendrycks et al. 2019): by default two known digits of different
  classes spliced into one image, made from the known classes themselves; or
  drawn from a pool of other images (printed letters, another dataset's images,
  `vitlab.experiments.openset_protocol`). Never an unknown digit.

`open_set_scores` puts any of these scores side by side for one model: AUROC and
FPR@95%TPR of known against unknown images, the kNN scores on a chosen feature
layer (``KNN_LAYERS``: the pre-logit features, the pooled features, every patch
token).

Metrics: AUROC (known vs unknown), false-positive rate at 95% true-positive
rate, expected calibration error with its reliability bins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..analysis.features import extract_features
from ..analysis.knn import NearestNeighbourScore
from ..data import ImageSet
from ..data.splits import known_unknown_split  # noqa: F401  (offered here too, beside the open-set scores)
from ..training.inference import predict_logits
from ..training.objectives import Objective, labelled_cross_entropy

SCORES = ("msp", "max_logit", "energy")
# kNN scores: score name -> the feature layer `extract_features` reads (a ViT's pre-logit and pooled features are
# both its CLS token; the CNN's pooled features come before its hidden layer; "patches" is every patch token).
KNN_LAYERS = {"knn": "pre_logits", "knn_pooled": "pooled", "knn_patches": "patches"}
ALL_SCORES = (*SCORES, *KNN_LAYERS)


def known_score(logits: torch.Tensor, kind: str = "msp") -> torch.Tensor:
    """(N, classes) logits -> (N,) score, higher = more confidently one of the known classes."""
    logits = logits.float()
    if kind == "msp":
        return logits.softmax(-1).amax(-1)
    if kind == "max_logit":
        return logits.amax(-1)
    if kind == "energy":
        return torch.logsumexp(logits, dim=-1)  # minus the free energy at T = 1 (Liu et al. 2020)
    raise ValueError(f"score must be one of {SCORES}, got {kind!r}")


def auroc(known: torch.Tensor | np.ndarray, unknown: torch.Tensor | np.ndarray) -> float:
    """Area under the ROC curve for telling known (positive, higher score) from unknown inputs."""
    from sklearn.metrics import roc_auc_score

    k, u = np.asarray(known, dtype=float), np.asarray(unknown, dtype=float)
    if len(k) == 0 or len(u) == 0:
        raise ValueError("AUROC needs at least one known and one unknown score")
    y = np.r_[np.ones(len(k)), np.zeros(len(u))]
    return float(roc_auc_score(y, np.r_[k, u]))


def fpr_at_tpr(known, unknown, tpr: float = 0.95) -> float:
    """The share of unknowns accepted as known at the threshold that accepts `tpr` of the knowns."""
    k, u = np.asarray(known, dtype=float), np.asarray(unknown, dtype=float)
    threshold = np.quantile(k, 1 - tpr, method="lower")  # accept scores >= threshold: at least tpr of the knowns
    return float((u >= threshold).mean())


def threshold_at_tpr(known, tpr: float = 0.95) -> float:
    """The score threshold that keeps `tpr` of the known inputs."""
    return float(np.quantile(np.asarray(known, dtype=float), 1 - tpr, method="lower"))


@dataclass
class Calibration:
    ece: float  # expected calibration error: bin-weighted mean |accuracy - confidence|
    bin_edges: np.ndarray  # (bins + 1,)
    bin_confidence: np.ndarray  # (bins,) mean confidence per bin (nan where empty)
    bin_accuracy: np.ndarray  # (bins,) accuracy per bin (nan where empty)
    bin_counts: np.ndarray  # (bins,)


def calibration(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> Calibration:
    """ECE and reliability-diagram bins from (N, classes) probabilities and (N,) labels (equal-width bins)."""
    probs = torch.as_tensor(probs).float()
    conf, pred = probs.max(-1)
    correct = (pred == torch.as_tensor(labels)).float().numpy()
    conf = conf.numpy()
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=bins) / counts
        acc = np.bincount(idx, weights=correct, minlength=bins) / counts
    gaps = np.where(counts > 0, np.abs(acc - mean_conf), 0.0)
    ece = float((counts * gaps).sum() / max(counts.sum(), 1))
    return Calibration(ece, edges, mean_conf, acc, counts)


def splice_digits(x: torch.Tensor, y: torch.Tensor, n: int, generator: Optional[torch.Generator] = None,
                  cut: tuple = (10, 18)) -> torch.Tensor:
    """Up to `n` synthetic outliers from a batch: the top (or left) of one digit joined to the bottom (or right) of
    a digit of another class, cut along a random row (or column) in `cut` (pixels).

    x: (B, C, H, W) images, y: (B,) labels -> (M, C, H, W), M <= n (pairs of the same class are dropped: half a 3
    on half a 3 is still a 3). They look like handwriting, stroke for stroke, but are none of the known digits.
    """
    B, _, H, W = x.shape
    a = torch.randint(0, B, (n,), generator=generator)
    b = torch.randint(0, B, (n,), generator=generator)
    at = torch.randint(cut[0], cut[1] + 1, (n,), generator=generator).view(-1, 1, 1, 1)  # the cut, (n, 1, 1, 1)
    rows = torch.rand(n, generator=generator).view(-1, 1, 1, 1) < 0.5  # cut along a row, else a column
    keep = y[a] != y[b]
    yy = torch.arange(H).view(1, 1, H, 1)
    xx = torch.arange(W).view(1, 1, 1, W)
    second = torch.where(rows, yy >= at, xx >= at).to(x.device)  # (n, 1, H, W): where b's pixels go
    out = torch.where(second, x[b.to(x.device)], x[a.to(x.device)])  # (n, C, H, W)
    return out[keep.to(x.device)]


class OutlierExposure(Objective):
    """Cross-entropy on the known digits plus `weight` x the outlier-exposure loss on outliers.

        L = CE(model(x), y) + weight * mean over outliers of  -1/K * sum_k log softmax(model(x_out))_k

    The second term is the cross-entropy to the uniform distribution (Hendrycks, Mazeika & Dietterich 2019): the
    model learns to be unsure of anything that is no known digit. `fraction` x B outliers join each batch: spliced
    from the batch's own digits (see `splice_digits`; made of known strokes, which is what an unknown digit looks
    like to the model), or, given `outliers` (an ImageSet normalised like the training data, e.g. printed letters or
    Fashion-MNIST through `as_unknown`), drawn from that pool. The draws use torch's global generator, which the
    Trainer seeds from (seed, epoch). In eval mode (validation) it is plain cross-entropy. Known images and outliers
    share one forward pass, which suits layer norm (the ViT); a batch-norm model (the CNN) would learn the outliers
    into its running statistics.
    """

    def __init__(self, weight: float = 0.5, fraction: float = 0.5, label_smoothing: float = 0.0,
                 outliers: Optional[ImageSet] = None):
        if weight < 0 or not 0 < fraction <= 1:
            raise ValueError(f"weight must be >= 0 and fraction in (0, 1], got {weight}, {fraction}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if outliers is not None and len(outliers) == 0:
            raise ValueError("the outlier pool is empty")
        self.weight, self.fraction, self.label_smoothing = weight, fraction, label_smoothing
        self.outliers = outliers

    def draw(self, x, y) -> torch.Tensor:
        """This batch's outliers: (M, C, H, W), normalised like `x`."""
        n = max(1, int(x.shape[0] * self.fraction))
        if self.outliers is None:
            return splice_digits(x, y, n)
        return self.outliers.tensors(torch.randint(len(self.outliers), (n,)))[0].to(x.device, x.dtype)

    def __call__(self, model, x, y):
        if not model.training:
            logits = model(x)
            return labelled_cross_entropy(logits, y), logits
        B = x.shape[0]
        outliers = self.draw(x, y)  # (M, C, H, W)
        logits_all = model(torch.cat([x, outliers]))  # one pass: (B + M, K)
        logits, out_logits = logits_all[:B], logits_all[B:]
        ce = labelled_cross_entropy(logits, y, self.label_smoothing)
        oe = -out_logits.log_softmax(1).mean(1).mean() if len(out_logits) else logits.sum() * 0
        return ce + self.weight * oe, logits

    def to_dict(self) -> dict:
        d = {"name": "OutlierExposure", "weight": self.weight, "fraction": self.fraction,
             "label_smoothing": self.label_smoothing}
        if self.outliers is not None:  # spliced digits (the default) add nothing, so runs kept before still load
            d.update(outliers=self.outliers.name, outlier_images=len(self.outliers))
        return d


def open_set_splits(num_known: int = 6, num_classes: int = 10, splits: int = 5, seed: int = 0) -> list[list[int]]:
    """The standard protocol's random known-class sets (e.g. 6 known / 4 unknown MNIST digits), seeded."""
    g = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < splits:
        s = sorted(torch.randperm(num_classes, generator=g)[:num_known].tolist())
        if s not in out:
            out.append(s)
    return out


@dataclass
class OpenSetReport:
    method: str  # "explicit" (a trained unknown class) or "threshold:<score>"
    known_acc: float  # known test images given their right known class (an "unknown" answer counts as wrong)
    unknown_recall: dict  # source -> share of its images answered "unknown"
    auroc: dict  # source -> AUROC of the known score, known test images vs that source
    fpr95: dict  # source -> share of that source accepted at the threshold keeping 95% of known images
    threshold: Optional[float]  # the score threshold (threshold method), set on validation knowns
    confusion: np.ndarray  # (K+1, K+1) on known test + the first unknown source; last row/column = unknown
    known_scores: np.ndarray  # (n_known,) the known score of each known test image
    unknown_scores: dict  # source -> (n,) known scores
    probs: torch.Tensor  # (n_known, K or K+1) class probabilities on the known test images


def evaluate_open_set(model, known_test: ImageSet, unknowns: dict, method: str = "explicit", score: str = "msp",
                      known_val: Optional[ImageSet] = None, tpr: float = 0.95) -> OpenSetReport:
    """Open-set figures of `model` on known test images (labels 0..K-1) and named unknown sets.

    method="explicit": the model has K+1 outputs, the last meaning unknown; the known score is 1 - p(unknown).
    method="threshold": the model has K outputs; an input is unknown when its `score` falls below the threshold
    that keeps `tpr` of the *validation* known images (`known_val`, required), so the test set never sets it.
    """
    if not unknowns:
        raise ValueError("give at least one unknown set")
    lk = predict_logits(model, known_test)
    K = lk.shape[1] - 1 if method == "explicit" else lk.shape[1]
    if method == "explicit":
        def score_of(logits):
            return 1 - logits.softmax(-1)[:, K]

        def answer(logits):
            return logits.argmax(-1)
        threshold = None
    elif method == "threshold":
        if known_val is None:
            raise ValueError("the threshold method needs known validation images to set its threshold")

        def score_of(logits):
            return known_score(logits, score)
        threshold = threshold_at_tpr(score_of(predict_logits(model, known_val)).numpy(), tpr)

        def answer(logits):
            pred = logits.argmax(-1)
            return torch.where(score_of(logits) >= threshold, pred, torch.full_like(pred, K))
    else:
        raise ValueError(f"method must be 'explicit' or 'threshold', got {method!r}")
    sk = score_of(lk).numpy()
    ak = answer(lk)
    report = OpenSetReport(
        method=method if method == "explicit" else f"threshold:{score}",
        known_acc=float((ak == known_test.labels).float().mean()),
        unknown_recall={}, auroc={}, fpr95={}, threshold=threshold,
        confusion=np.zeros((K + 1, K + 1), dtype=np.int64), known_scores=sk, unknown_scores={},
        probs=lk.softmax(-1),
    )
    for i, (name, data) in enumerate(unknowns.items()):
        lu = predict_logits(model, data)
        su = score_of(lu).numpy()
        au = answer(lu)
        report.unknown_scores[name] = su
        report.unknown_recall[name] = float((au == K).float().mean())
        report.auroc[name] = auroc(sk, su)
        report.fpr95[name] = fpr_at_tpr(sk, su, tpr)
        if i == 0:
            truth = torch.cat([known_test.labels, torch.full((len(data),), K)])
            answers = torch.cat([ak, au])
            np.add.at(report.confusion, (truth.numpy(), answers.numpy()), 1)
    return report


def noise_images(n: int, like: ImageSet, seed: int = 0) -> ImageSet:
    """`n` images of uniform random pixels, with `like`'s normalisation: the farthest-out inputs there are."""
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n, *like.images.shape[1:]), generator=g, dtype=torch.uint8)
    return ImageSet(imgs, torch.zeros(n, dtype=torch.long), like.info, "noise")


def as_unknown(data: ImageSet, like: ImageSet, name: str) -> ImageSet:
    """Another dataset's images (e.g. Fashion-MNIST) normalised as `like` (the model's data) for OOD tests."""
    return ImageSet(data.images, torch.zeros(len(data), dtype=torch.long), like.info, name)


def open_set_scores(model, known: ImageSet, unknown: ImageSet, scores: Sequence[str] = ALL_SCORES,
                    bank: Optional[ImageSet] = None, knn_k: int = 5, classes: Optional[Sequence[int]] = None,
                    tpr: float = 0.95) -> dict:
    """{score: {"auroc", "fpr95", "known", "unknown"}}: how well each score tells `known` images from `unknown`.

    Logit scores (`SCORES`) read the model's logits, only the columns `classes` when given (a ten-digit model read
    as a classifier of some of them). kNN scores (`KNN_LAYERS`) need `bank`, the known training images: the cosine
    of each image's features to the k-th nearest bank feature. "known"/"unknown" are the (n,) score arrays.
    """
    bad = [s for s in scores if s not in ALL_SCORES]
    if bad:
        raise ValueError(f"scores must be among {ALL_SCORES}, got {bad}")
    out = {}
    logit_scores = [s for s in scores if s in SCORES]
    if logit_scores:
        lk, lu = predict_logits(model, known), predict_logits(model, unknown)  # (n, classes), (m, classes)
        if classes is not None:
            lk, lu = lk[:, list(classes)], lu[:, list(classes)]
        for s in logit_scores:
            out[s] = (known_score(lk, s).numpy(), known_score(lu, s).numpy())
    layers = {KNN_LAYERS[s] for s in scores if s in KNN_LAYERS}
    if layers:
        if bank is None:
            raise ValueError("the kNN scores need `bank`, the known training images")
        layers = tuple(sorted(layers))
        fb, fk, fu = (extract_features(model, d, layer=layers) for d in (bank, known, unknown))  # {layer: (N, F)}
        for s in scores:
            if s in KNN_LAYERS:
                knn = NearestNeighbourScore(k=knn_k).fit(fb[KNN_LAYERS[s]])
                out[s] = (knn(fk[KNN_LAYERS[s]]), knn(fu[KNN_LAYERS[s]]))
    return {s: {"auroc": auroc(*out[s]), "fpr95": fpr_at_tpr(*out[s], tpr), "known": out[s][0], "unknown": out[s][1]}
            for s in scores}
