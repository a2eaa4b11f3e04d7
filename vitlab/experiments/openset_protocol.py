"""The standard open-set protocol on MNIST, and the candidate ways to train for it.

The protocol (Neal et al. 2018): random splits of 6 known and 4 unknown digits; a model per split is trained on the
known digits only, then scores tell its known test digits from the unknown digits' test images (AUROC, mean over the
splits). No unknown digit is seen in training, in any form.

A `Candidate` is one way to train the per-split model: the default recipe, longer training without label
smoothing, outlier exposure (spliced known digits, printed letters, Fashion-MNIST: never an unknown digit), a
convolutional stem, or notebook 03's CNN as the reference. Each is read with every score it supports
(`Candidate.scores`). Choices are made on the validation split, known validation digits against the unknown
digits' validation images (`split_sets(..., eval_set="val")`); the test set only reports the chosen one
(benchmarks/openset.py does both).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..data import ImageSet
from ..data.splits import KnownUnknown, known_unknown_sets
from ..models import CNNConfig
from ..training.recipes import RECIPES
from ..methods.openset import SCORES, OutlierExposure, as_unknown
from ..training.callbacks import QUIET
from ..training.runs import default_runs_dir, train_or_load
from ..training.spec import DataSpec, Part, RunSpec
from .runner import objective

OUTLIERS = ("splice", "letters", "fashion")  # what outlier exposure trains on
# Letters that do not look like a digit (no O, o, I, l, S, s, Z, z, B, b, G, g, q, ...): outliers, not digits in disguise.
LETTERS = "ACEFHJKLMNPRTUVWXYacdefhkmnprtuvwxy"
QUICK_IMAGES, QUICK_EVAL_IMAGES = 1000, 500  # --quick: known training images per split, evaluation images per side


@dataclass(frozen=True)
class Candidate:
    name: str  # what --candidates takes
    about: str  # one line for the table
    model: str = "vit"  # "vit": the default recipe's model; "cnn": notebook 03's CNN baseline
    epochs: Optional[int] = None  # None: the recipe's (the ViT) or the caller's CNN epochs
    label_smoothing: Optional[float] = None  # None: the recipe's
    outliers: Optional[str] = None  # outlier exposure on OUTLIERS[...]; None: plain cross-entropy
    conv_stem: int = 0  # channels of a convolutional stem before the patch projection (ViT only; 0: none)

    def __post_init__(self):
        if self.model not in ("vit", "cnn"):
            raise ValueError(f"model must be 'vit' or 'cnn', got {self.model!r}")
        if self.outliers is not None and self.outliers not in OUTLIERS:
            raise ValueError(f"outliers must be one of {OUTLIERS}, got {self.outliers!r}")
        if self.model == "cnn" and (self.outliers or self.conv_stem):
            # Outliers in the batches would enter the CNN's batch-norm statistics, which then describe neither the
            # digits nor the outliers; the stem is a ViT part.
            raise ValueError("outlier exposure and the conv stem are ViT options")

    @property
    def scores(self) -> tuple:
        """The scores this model supports: the logit scores, kNN on the pre-logit features, and kNN on every patch
        token (a ViT) or on the pooled convolutional features (the CNN)."""
        return (*SCORES, "knn", "knn_patches" if self.model == "vit" else "knn_pooled")

    def train_config(self, cnn_epochs: int, quick: bool = False):
        """The TrainConfig: the default recipe with this candidate's epochs and smoothing (quick: 1 epoch)."""
        r = RECIPES["default"].train
        epochs = self.epochs or (r.epochs if self.model == "vit" else cnn_epochs)
        ls = r.label_smoothing if self.label_smoothing is None else self.label_smoothing
        return dataclasses.replace(r, epochs=1 if quick else epochs, label_smoothing=ls)

    def model_config(self, num_classes: int):
        if self.model == "cnn":
            return CNNConfig(num_classes=num_classes)
        return dataclasses.replace(RECIPES["default"].model, num_classes=num_classes, conv_stem=self.conv_stem)

    def runs_name(self, cnn_epochs: int) -> str:
        """Where its per-split runs live: ``openset_<model>_<objective>_ls<smoothing>_e<epochs>[_stem<c>]``, the
        names benchmarks/openset.py has always used (``oe`` is outlier exposure on spliced digits), so kept runs load."""
        tc = self.train_config(cnn_epochs)
        objective = "ce" if self.outliers is None else "oe" if self.outliers == "splice" else f"oe-{self.outliers}"
        stem = f"_stem{self.conv_stem}" if self.conv_stem else ""
        return f"openset_{self.model}_{objective}_ls{tc.label_smoothing:g}_e{tc.epochs}{stem}"


CANDIDATES = {c.name: c for c in (
    Candidate("default", "the default recipe (vit_mini_mnist, 53 epochs, label smoothing 0.1)"),
    Candidate("no-ls-long", "no label smoothing, 80 epochs", epochs=80, label_smoothing=0.0),
    Candidate("oe-splice", "outlier exposure on spliced known digits", outliers="splice"),
    Candidate("oe-letters", "outlier exposure on printed letters", outliers="letters"),
    Candidate("oe-fashion", "outlier exposure on Fashion-MNIST training images", outliers="fashion"),
    Candidate("conv-stem", "a conv stem (two 3x3 convolutions, 8 channels) before the patches", conv_stem=8),
    Candidate("cnn", "notebook 03's CNN baseline (the reference)", model="cnn"),
)}


def letter_images(n: int, like: ImageSet, seed: int = 0, letters: str = LETTERS, fonts: Optional[Sequence] = None,
                  px: int = 48) -> ImageSet:
    """`n` printed letters, MNIST-style (20 x 20 box, centred by mass) and randomised like the synthetic digits
    (stroke thickness, elastic distortion, wobble, ink noise): synthetic non-digits, normalised like `like`.
    Fonts default to matplotlib's own (always installed)."""
    from ..data.fonts import FontError, bundled_fonts, render_char
    from ..data.synthetic import Randomise, finish
    from ..images import to_mnist_style

    glyphs = []
    for f in (bundled_fonts() if fonts is None else fonts):
        for c in letters:
            try:
                glyphs.append(to_mnist_style(render_char(c, f, px)))
            except FontError:
                continue  # a font without the glyph, or one that cannot be read: the others draw it
    if not glyphs:
        raise FontError("no font could draw any of the letters")
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(glyphs), (n,), generator=g)
    x = finish(torch.from_numpy(np.stack(glyphs))[pick], Randomise(), seed)[:, 0]  # (n, 28, 28) in [0, 1]
    images = (x * 255).round().to(torch.uint8)
    return as_unknown(ImageSet(images, torch.zeros(n, dtype=torch.long), like.info, "letters"), like, "letters")


def outlier_pool(kind: Optional[str], like: ImageSet, n: int = 20000, seed: int = 0,
                 fashion: Optional[ImageSet] = None) -> Optional[ImageSet]:
    """The images outlier exposure draws from: None for "splice" (made from each batch) or no outliers; `n` printed
    letters; or `n` Fashion-MNIST training images (`fashion`, the dataset's training split), normalised like `like`."""
    if kind in (None, "splice"):
        return None
    if kind == "letters":
        return letter_images(n, like, seed)
    if kind == "fashion":
        if fashion is None:
            raise ValueError("outliers 'fashion' needs the Fashion-MNIST training images")
        return as_unknown(fashion.take(n, seed), like, "fashion-mnist-train")
    raise ValueError(f"outliers must be one of {OUTLIERS}, got {kind!r}")


def split_sets(data, known: Sequence[int], eval_set: str = "val", quick: bool = False) -> KnownUnknown:
    """One split's images (`data.splits.KnownUnknown`, every other digit unknown): known training/validation images,
    and the evaluated split's known and unknown images (`eval_set` "val": the validation split, for choosing; "test":
    for reporting). `quick`: QUICK_IMAGES training images and QUICK_EVAL_IMAGES evaluated images of each side, to
    check the code path."""
    sets = known_unknown_sets(data, known, eval_split=eval_set)
    if quick:
        sets = dataclasses.replace(sets, train=sets.train.take(QUICK_IMAGES), val=sets.val.take(QUICK_EVAL_IMAGES),
                                   eval_known=sets.eval_known.take(QUICK_EVAL_IMAGES),
                                   eval_unknown=sets.eval_unknown.take(QUICK_EVAL_IMAGES))
    return sets


def candidate_run(c: Candidate, sets: KnownUnknown, index: int, cnn_epochs: int, runs: Optional[str] = None,
                  quick: bool = False, pool: Optional[ImageSet] = None):
    """Train (or load) candidate `c` on one split: run ``split<index>_<known digits>`` under `runs` (default
    ``runs/<c.runs_name>``, or ``runs/openset_quick/<c.runs_name>`` when `quick`). `pool`: the outlier images of
    `outlier_pool(c.outliers, ...)` (None for spliced digits)."""
    if c.outliers not in (None, "splice") and pool is None:
        raise ValueError(f"candidate {c.name!r} needs its outlier pool (outlier_pool({c.outliers!r}, ...))")
    tc = c.train_config(cnn_epochs, quick)
    if runs is None:
        runs = default_runs_dir() / ("openset_quick" if quick else "") / c.runs_name(cnn_epochs)
    # Plain cross-entropy is the trainer's own (with the recipe's smoothing), so runs kept by earlier versions load.
    objective = None if c.outliers is None else OutlierExposure(label_smoothing=tc.label_smoothing, outliers=pool)
    keep = (Part.of("digits", keep=tuple(sets.known)),)
    quick_steps = lambda n: (Part.of("take", n=n),) if quick else ()  # noqa: E731  (split_sets' quick subsets)
    data = DataSpec(train=keep + quick_steps(QUICK_IMAGES), val=keep + quick_steps(QUICK_EVAL_IMAGES))
    spec = RunSpec(f"split{index}_{''.join(map(str, sets.known))}", c.model_config(len(sets.known)), tc, data,
                   objective=None if c.outliers is None else Part.of("outlier_exposure", outliers=c.outliers,
                                                                      label_smoothing=tc.label_smoothing))
    return train_or_load(spec, sets.train, sets.val, objective=objective, runs_dir=Path(runs), show=QUIET)


def summarise(rows: Sequence[dict], scores: Sequence[str]) -> dict:
    """{score: (AUROC mean, AUROC std, FPR@95%TPR mean)} over the splits' rows ({score: {"auroc", "fpr95"}})."""
    out = {}
    for s in scores:
        a = np.array([r[s]["auroc"] for r in rows])
        out[s] = (float(a.mean()), float(a.std()), float(np.mean([r[s]["fpr95"] for r in rows])))
    return out


def pick_winner(table: dict, model: str = "vit") -> tuple:
    """(candidate name, score) with the highest mean AUROC in `table` ({candidate name: summarise(...)}), among the
    candidates of `model`."""
    best = max(((name, s, v[0]) for name, summary in table.items() if CANDIDATES[name].model == model
                for s, v in summary.items()), key=lambda t: t[2], default=None)
    if best is None:
        raise ValueError(f"no {model} candidate in the table")
    return best[0], best[1]


@objective("outlier_exposure")
def _outlier_exposure(ctx, outliers: str, label_smoothing: float) -> OutlierExposure:
    """A candidate's objective when its spec is run by `trained`: outlier exposure on its pool."""
    fashion = None
    if outliers == "fashion":
        from ..data import load_dataset

        fashion = load_dataset("fashion-mnist").train
    return OutlierExposure(label_smoothing=label_smoothing, outliers=outlier_pool(outliers, ctx.data.train,
                                                                                  fashion=fashion))
