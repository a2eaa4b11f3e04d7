"""Notebook 11 (your own digits): digits photographed on paper, inputs that are no digit, and the comparisons the
notebook and benchmarks/digitcheck.py report."""

from __future__ import annotations

import string
import warnings
from dataclasses import replace

import numpy as np
import torch

from ..data import ImageSet
from ..data.fonts import bundled_fonts, render_chars
from ..images import restyle
from ..methods.openset import known_score, threshold_at_tpr
from ..strokes import random_scribble, render_strokes
from ..training.evaluation import evaluate
from ..training.inference import predict_logits

VARIANTS = {  # name -> the preprocessing steps left out
    "all steps": (), "no inversion": ("invert",), "no crop to the ink": ("crop",),
    "no 20x20 box (stretched to 28x28)": ("fit_box",), "no centring by mass (box centred)": ("centre_of_mass",),
    "none but inversion (whole photo resized)": ("crop", "fit_box", "centre_of_mass"),
}


def photos_of_digits(images: torch.Tensor, seed: int = 0, height: int = 150, width: int = 200) -> np.ndarray:
    """(N, 28, 28) MNIST digits -> (N, height, width) float "photos": dark ink on grey-white paper, each digit
    enlarged 2-4.5x (nearest neighbour, so no detail is added), placed off-centre, with paper grain. What a
    learner's phone photo or scan looks like before `to_mnist_style`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = np.empty((len(images), height, width), dtype=np.float32)
    for i, img in enumerate(np.asarray(images, dtype=np.uint8)):
        s = int(28 * rng.uniform(2.0, 4.5))
        big = np.asarray(Image.fromarray(img).resize((s, s), Image.BILINEAR), dtype=np.float32) / 255
        top, left = rng.integers(0, height - s + 1), rng.integers(0, width - s + 1)
        paper = rng.uniform(0.75, 0.95) + 0.03 * rng.standard_normal((height, width))
        ink = np.zeros((height, width), dtype=np.float32)
        ink[top : top + s, left : left + s] = big
        out[i] = np.clip(paper * (1 - 0.9 * ink), 0, 1)
    return out


def as_imageset(digits, like: ImageSet, name: str = "") -> ImageSet:
    """(N, 28, 28) prepared digits in [0, 1] (and `like`'s labels) -> an ImageSet that evaluate() takes."""
    x = torch.as_tensor(np.asarray(digits), dtype=torch.float32)
    return replace(like, images=(x * 255).round().to(torch.uint8), name=name or like.name)


def preprocessing_ablation(models: dict, photos: np.ndarray, labelled: ImageSet) -> dict:
    """{variant: {model name: accuracy}}: each `VARIANTS` entry of `to_mnist_style` on the same photos."""
    table = {}
    for variant, skip in VARIANTS.items():
        data = as_imageset(restyle(photos, skip=skip), labelled, variant)
        table[variant] = {name: evaluate(m, data).accuracy for name, m in models.items()}
    return table


def non_digits(n: int, fashion: ImageSet | None, seed: int = 0, fonts=None) -> dict:
    """Pictures that are no digit, as a user could hand them to `predict`: {kind: (M, H, W) float array}.

    fashion: Fashion-MNIST images (left out when None: offline, with no copy in data/); noise: uniform pixel noise;
    scribbles: 1-3 random pen strokes of 2-6 points; letters: a-z and A-Z printed in matplotlib's bundled fonts
    (or `fonts`).
    """
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fonts without Latin letters are skipped; the count shows in the result
        letters, _ = render_chars(string.ascii_letters, bundled_fonts() if fonts is None else fonts)
    pick = rng.permutation(len(letters))[:n]
    out = {} if fashion is None else {"Fashion-MNIST": fashion.images[:n].numpy().astype(np.float32) / 255}
    return out | {
        "uniform noise": rng.uniform(0, 1, (n, 28, 28)).astype(np.float32),
        "scribbles": np.stack([render_strokes(random_scribble(rng), size=112) for _ in range(n)]),
        "letters": np.stack([letters[i] for i in pick]),
    }


def score_comparison(model, check, digits: ImageSet, others: dict, tpr: float = 0.95) -> dict:
    """For each score (max softmax, max logit, energy, the check's nearest neighbour): the share of each kind of
    non-digit flagged at the threshold that keeps `tpr` of `digits`. Every input is prepared as predict does.

    Returns {score: {kind: flagged share}}; choose on validation digits, report on test digits.
    """
    sets = {"digits": as_imageset(restyle(digits.images), digits)}
    for kind, pics in others.items():
        prepared = restyle(pics)
        sets[kind] = as_imageset(prepared, replace(digits, labels=torch.zeros(len(prepared), dtype=torch.long)))
    logits = {k: predict_logits(model, s) for k, s in sets.items()}
    table = {}
    for score in ("msp", "max_logit", "energy"):
        s = {k: known_score(v, score).numpy() for k, v in logits.items()}
        thr = threshold_at_tpr(s["digits"], tpr)
        table[score] = {k: float((v < thr).mean()) for k, v in s.items()}
    s = {k: check.scores_of(model, v, restyled=False) for k, v in sets.items()}
    thr = threshold_at_tpr(s["digits"], tpr)
    table["nearest neighbour"] = {k: float((v < thr).mean()) for k, v in s.items()}
    return table


def picture_scores(model, check, pictures: dict, like: ImageSet) -> dict:
    """{kind: (M,) digit-check scores}. `pictures` maps a kind to (M, H, W) pictures, each prepared as predict
    prepares a file; `like` lends the dataset's normalisation."""
    out = {}
    for kind, pics in pictures.items():
        prepared = restyle(pics)
        data = as_imageset(prepared, replace(like, labels=torch.zeros(len(prepared), dtype=torch.long)), kind)
        out[kind] = check.scores_of(model, data, restyled=False)
    return out


def flag_rates(model, check, pictures: dict, like: ImageSet) -> dict:
    """{kind: share flagged "not like a digit?"} at the check's own validation threshold (see picture_scores)."""
    return {k: float((~check.digit_like(s)).mean()) for k, s in picture_scores(model, check, pictures, like).items()}
