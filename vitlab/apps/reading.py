"""Reading one digit the way a learner's own drawing or file is read: preprocess, classify, check, explain.

`DigitReader` is the one path from a grayscale picture to an answer, shared by `vitlab predict`,
`vitlab predict --explain` and the drawing pad:

    picture (H, W) ──to_mnist_style──▶ digit (28, 28) in [0, 1] ──normalise──▶ (1, 1, 28, 28)
        ──model──▶ probabilities (classes,) · digit-check score · attention rollout (28, 28), for a transformer
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..analysis.attention import attention_maps, attention_rollout, token_map, upsample_map
from ..analysis.features import features_from_tokens
from ..images import to_mnist_style
from ..training.checkpoints import load_classifier
from ..training.inference import check_finite
from .digitcheck import DigitCheck, for_checkpoint


@dataclass
class Reading:
    digit: np.ndarray  # (28, 28) in [0, 1]: what the model saw
    probs: np.ndarray  # (classes,)
    classes: Sequence[str]
    score: Optional[float] = None  # digit-check score (None: no check)
    threshold: Optional[float] = None
    attention: Optional[np.ndarray] = None  # (28, 28) attention rollout from the CLS token; None for a CNN

    @property
    def predicted(self) -> str:
        return self.classes[int(self.probs.argmax())]

    @property
    def confidence(self) -> float:
        return float(self.probs.max())

    @property
    def digit_like(self) -> Optional[bool]:
        return None if self.score is None else bool(self.score >= self.threshold)

    def top(self, k: int = 1) -> list:
        order = np.argsort(-self.probs)[:k]
        return [(self.classes[i], float(self.probs[i])) for i in order]


class DigitReader:
    """A classifier checkpoint, ready to read pictures: its model, class names, normalisation and digit check."""

    def __init__(self, model, classes: Sequence[str], normalization=(0.0, 1.0), check: Optional[DigitCheck] = None):
        self.model = model.eval()
        self.classes = list(classes)
        self.mean, self.std = normalization
        self.check = check
        self.has_attention = hasattr(model, "num_prefix_tokens")  # transformers return their attention
        self.check_error: Optional[str] = None  # why there is no check, when fitting it failed
        self._source = None  # (checkpoint path, checkpoint) when loaded from one

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, check: bool = True, log=None) -> "DigitReader":
        """Load any lab classifier (ViT, CNN, DeiT, a relabelled one); with `check`, fit or load its digit check
        (`fit_check`)."""
        model, ckpt = load_classifier(path)
        mean, std = ckpt.get("normalization") or (0.0, 1.0)
        with torch.no_grad():  # a model with broken weights answers nan to anything: refuse it before any work
            check_finite(model(torch.full((1, model.cfg.in_channels, model.cfg.image_size, model.cfg.image_size),
                                          (0.0 - mean) / std)), "the model")
        reader = cls(model, ckpt["classes"], (mean, std))
        reader._source = (path, ckpt)
        if check:
            reader.fit_check(log)
        return reader

    def fit_check(self, log=None) -> Optional[DigitCheck]:
        """Fit (or load from its cache) the digit check of the checkpoint this reader came from. When this machine's
        data cannot rebuild the splits it needs, the reader goes on without one and `check_error` says why."""
        from ..data import DataError

        path, ckpt = self._source
        try:
            self.check = for_checkpoint(self.model, ckpt, path, log=log)
        except DataError as e:
            self.check_error = str(e).splitlines()[0].replace("; use --split test", "")
        return self.check

    def prepare(self, picture: np.ndarray, skip=()) -> np.ndarray:
        """Any (H, W) grayscale picture -> the (28, 28) MNIST-style digit the model reads."""
        size = self.model.cfg.image_size
        return to_mnist_style(picture, box=round(size * 20 / 28), size=size, skip=skip)

    def read(self, picture: np.ndarray, prepared: bool = False) -> Reading:
        """Classify one picture (or an already prepared digit, `prepared=True`)."""
        digit = np.asarray(picture, dtype=np.float32) if prepared else self.prepare(picture)
        x = (torch.from_numpy(digit)[None, None] - self.mean) / self.std  # (1, 1, H, W)
        attention, score, threshold = None, None, None
        with torch.no_grad():
            if self.has_attention:  # one pass: logits, final tokens and every layer's attention
                res = attention_maps(self.model, x)  # attn: (1, L, h, T, T), tokens: (1, T, D)
                logits, tokens = res.logits, res.tokens
                rollout = attention_rollout(res.attn)[:, 0]  # (1, T): what the CLS token draws on
                grid = self.model.cfg.image_size // self.model.cfg.patch_size
                m = token_map(rollout, grid, normalize=True, num_prefix_tokens=res.num_prefix_tokens)  # (1, g, g)
                attention = upsample_map(m, self.model.cfg.image_size)[0].numpy()  # (28, 28)
            else:
                tokens = self.model.forward_features(x)
                logits = self.model.forward_head(tokens)
            if self.check is not None:
                score = float(self.check.score(features_from_tokens(self.model, tokens, self.check.layer))[0])
                threshold = self.check.threshold
        probs = check_finite(logits, "the model").softmax(-1)[0].numpy()
        return Reading(digit, probs, self.classes, score, threshold, attention)
