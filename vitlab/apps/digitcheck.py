"""Is this input like a digit? An out-of-distribution check for `vitlab predict` and the drawing pad.

The score is the nearest-neighbour one (`analysis.knn`, Sun et al. 2022): the cosine similarity of an image's
features to the closest feature of the model's own training images. The threshold is set on the model's
validation images, prepared exactly as `predict` prepares a file (`images.restyle`), so that 95% of real
digits pass (`tpr`); an image scoring below it is flagged "not like a digit?". The class is still reported:
the flag says how far to trust it.

Why nearest-neighbour: on validation, with 95% of real digits kept, it flagged more of every kind of non-digit
(Fashion-MNIST, noise, scribbles, letters) than max softmax, max logit or energy did for the default ViT
(notebook 11 shows the comparison); label smoothing squeezes the logits, which blunts the logit-based scores.

Fitting reads the training and validation splits the checkpoint records (a pass of the model over all of them),
so `for_checkpoint` caches the result beside the checkpoint (``checkpoint.pt.digitcheck``), tied to the
checkpoint's bytes, and never writes into the checkpoint itself.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..analysis.features import extract_features
from ..analysis.knn import NearestNeighbourScore
from ..data import ImageSet
from ..images import restyle
from ..methods.openset import threshold_at_tpr
from ..training.checkpoints import atomic_save
from ..training.evaluation import evaluation_split

CACHE_SUFFIX = ".digitcheck"
CACHE_VERSION = 2  # 2: to_mnist_style centres by mass at (14, 14), so validation scores moved


def feature_layer(model) -> str:
    """The features the check compares: a transformer's pre-logit features, a CNN's pooled convolutional ones
    (the layer Sun et al. use on ResNets, and the better one for the CNN in benchmarks/openset.py)."""
    return "pre_logits" if hasattr(model, "num_prefix_tokens") else "pooled"


@dataclass
class DigitCheck:
    layer: str  # which features are compared (see feature_layer)
    threshold: float  # a score below this is flagged "not like a digit?"
    tpr: float  # the share of validation digits the threshold keeps
    bank: torch.Tensor  # (N, F) L2-normalised training features, float16 to keep the cache small
    val_scores: np.ndarray  # (M,) the validation digits' scores, for histograms
    fingerprint: str = ""  # sha256 of the checkpoint it was fitted for

    def score(self, features: torch.Tensor) -> np.ndarray:
        """(B, F) features -> (B,) cosine similarity to the nearest training image (higher = more like a digit)."""
        return self._nearest(features)

    @cached_property
    def _nearest(self) -> NearestNeighbourScore:
        """The scorer over this check's bank, made once (it keeps the bank's float32 copy the pad scores against)."""
        return NearestNeighbourScore(k=1).use_bank(self.bank)

    def digit_like(self, scores) -> np.ndarray:
        return np.asarray(scores) >= self.threshold

    def scores_of(self, model, data: ImageSet, restyled: bool = True) -> np.ndarray:
        """Scores of a whole set; `restyled` first prepares every image as `predict` does, as the threshold was."""
        return self.score(extract_features(model, _restyled(data) if restyled else data, layer=self.layer))


def _restyled(data: ImageSet) -> ImageSet:
    x = restyle(data.images, size=data.images.shape[-1])  # (N, H, W) in [0, 1]
    return ImageSet((x * 255).round().to(torch.uint8), data.labels, data.info, data.name + " (restyled)", data.split)


def fit_digit_check(model, train: ImageSet, val: ImageSet, tpr: float = 0.95, layer: str | None = None) -> DigitCheck:
    """Bank the training features, then set the threshold that keeps `tpr` of the (restyled) validation digits."""
    if not 0 < tpr < 1:
        raise ValueError(f"tpr must be in (0, 1), got {tpr}")
    layer = layer or feature_layer(model)
    bank = NearestNeighbourScore().fit(extract_features(model, train, layer=layer), dtype=torch.float16).bank
    check = DigitCheck(layer, 0.0, tpr, bank, np.zeros(0))
    check.val_scores = check.scores_of(model, val)
    check.threshold = threshold_at_tpr(check.val_scores, tpr)
    return check


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def for_checkpoint(model, ckpt: dict, path: str | os.PathLike, tpr: float = 0.95, log=None) -> DigitCheck:
    """The check for a checkpoint: read from its cache when the cache matches the checkpoint's bytes, else fitted
    on its recorded training and validation splits and cached. Raises `DataError` (one line) when this machine's
    data cannot rebuild those splits."""
    path = Path(path)
    cache = path.with_name(path.name + CACHE_SUFFIX)
    fingerprint = _sha256(path)
    if cache.is_file():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            if saved.get("version") == CACHE_VERSION and saved.get("fingerprint") == fingerprint and saved["tpr"] == tpr:
                saved.pop("version")
                saved["val_scores"] = saved["val_scores"].numpy()
                return DigitCheck(**saved)
        except Exception:  # an unreadable cache is only a cache: fit again and replace it
            pass
    if log:
        log(f"fitting the digit check for {path} (once; cached in {cache.name})")
    train, _ = evaluation_split(ckpt, path, "train")
    val, _ = evaluation_split(ckpt, path, "val")
    check = fit_digit_check(model, train, val, tpr=tpr)
    check.fingerprint = fingerprint
    try:
        atomic_save({"version": CACHE_VERSION, **asdict(check), "val_scores": torch.from_numpy(check.val_scores)}, cache)
    except OSError as e:  # a read-only folder: the check still works, it is fitted again next time
        if log:
            log(f"could not cache the digit check ({e.strerror})")
    return check
