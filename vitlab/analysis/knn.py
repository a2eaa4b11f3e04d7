"""How close an input's features come to a bank of known features: the deep nearest-neighbour score.

Sun et al. (2022), "Out-of-distribution detection with deep nearest neighbors": L2-normalise the features, and score
an input by its cosine similarity to the k-th nearest feature of the known (training) images; higher = more like
them. Nothing is trained, and an input far from every known image scores low even when the classifier is sure of
its (wrong) class. The one implementation of it: the open-set scores (`vitlab.methods.openset`) and the digit check
of `vitlab predict` and the drawing pad (`vitlab.apps.digitcheck`) both score with it.

    knn = NearestNeighbourScore(k=5).fit(extract_features(model, known_train, layer="pooled"))  # bank (N, D)
    score = knn(extract_features(model, test_images, layer="pooled"))                           # (M,)
"""

from __future__ import annotations

from functools import cached_property
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


def normalise_features(features) -> torch.Tensor:
    """(N, D) features (a tensor or an array) -> (N, D) float32 on the CPU, each row of unit length."""
    if isinstance(features, torch.Tensor):
        f = features.detach().to("cpu", torch.float32)
    else:
        f = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    if f.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(f.shape)}")
    return F.normalize(f, dim=1)


class NearestNeighbourScore:
    """Known-ness from features: cosine similarity to the k-th nearest known feature (higher = known).

    `fit` keeps the known features normalised, as the bank; `dtype=torch.float16` halves the memory of a bank that is
    cached on disk (the digit check's). Scores are always computed in float32, `batch_size` inputs at a time.
    """

    def __init__(self, k: int = 1, batch_size: int = 1000):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k, self.batch_size = k, batch_size
        self.bank: Optional[torch.Tensor] = None  # (N, D) normalised known features, in the dtype `fit` was given

    def fit(self, known_features, dtype: torch.dtype = torch.float32) -> "NearestNeighbourScore":
        """Bank the known features (N, D), L2-normalised and kept in `dtype`."""
        return self.use_bank(normalise_features(known_features).to(dtype))

    def use_bank(self, bank: torch.Tensor) -> "NearestNeighbourScore":
        """Score against an already normalised bank (N, D), as `fit` made it (e.g. one read back from a cache)."""
        if bank.ndim != 2:
            raise ValueError(f"the bank must be (N, D), got shape {tuple(bank.shape)}")
        if len(bank) < self.k:
            raise ValueError(f"need at least k={self.k} known features, got {len(bank)}")
        self.bank = bank
        self.__dict__.pop("_bank32", None)
        return self

    @cached_property
    def _bank32(self) -> torch.Tensor:
        """The bank in float32, converted once: the drawing pad scores every stroke against all of it."""
        return self.bank.float()

    def __call__(self, features) -> np.ndarray:
        """(M, D) features -> (M,) cosine similarity to the k-th nearest banked feature."""
        if self.bank is None:
            raise RuntimeError("call fit(known_features) first")
        f = normalise_features(features)
        if f.shape[1] != self.bank.shape[1]:
            raise ValueError(f"features have D={f.shape[1]}, the known features D={self.bank.shape[1]}")
        bank = self._bank32
        out = []
        for chunk in f.split(self.batch_size):  # (b, N) similarities at a time, not (M, N)
            sim = chunk @ bank.T
            out.append(sim.amax(dim=1) if self.k == 1 else sim.topk(self.k, dim=1).values[:, -1])
        return torch.cat(out).numpy()  # (M,)
