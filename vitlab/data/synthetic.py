"""Synthetic labelled digits, 28 x 28 and MNIST-style: rendered from fonts, or drawn as pen strokes.

Two generators, each randomised the way handwriting varies, each finishing with `images.to_mnist_style` (the
20 x 20 box, centred by mass: exactly what `vitlab predict` does to a user's picture):

- ``fonts``: every font that can draw the digit (matplotlib's own, plus the system's: on Debian the handwriting
  packages ``fonts-dkg-handwriting fonts-breip fonts-bwht``), at a random size, weight (grey dilation or erosion
  at the glyph's resolution), slant, rotation and aspect;
- ``strokes``: `strokes.DIGIT_STROKES` (plus a few other ways people write 1, 3, 4, 5, 7, 9) with extra random
  control points, jitter, corner rounding, slant and a random pen width.

Both then get an elastic distortion (Simard et al. 2003), a small affine wobble and ink noise on the 28 x 28 batch.
A third generator, a class-conditional VAE trained on a few real digits, needs a model: `vitlab.methods.cvae`.

    syn = synthetic_set(("fonts", "strokes"), 20000, like=data.train)   # an ImageSet, half of each
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..images import to_mnist_style
from ..strokes import DIGIT_STROKES, check_strokes, jitter_strokes, render_strokes
from .augment import Augment
from .fonts import FontError, find_fonts, render_char
from .imageset import ImageSet

GENERATORS = ("fonts", "strokes")  # what synthetic_set can make without a trained model


@dataclass
class Randomise:
    """How much each synthetic digit varies; the defaults were chosen on the validation split (notebook 13)."""

    sizes: tuple = (24, 32, 48)  # font sizes (pixels) a glyph is rendered at before MNIST-style resizing
    weight: tuple = (-0.03, 0.06)  # font weight: grey erosion (<0) / dilation (>0), a fraction of the size
    slant: float = 0.35  # max italic shear either way (x += slant * y)
    rotation: float = 12.0  # max rotation either way, degrees
    aspect: float = 0.25  # max relative squash of the width (or the height)
    pen: tuple = (0.05, 0.12)  # pen width of the stroke generator, a fraction of its canvas
    control: float = 0.05  # how far extra control points (and jitter) move, a fraction of the canvas
    thickness: float = 0.25  # chance of a 28 x 28 stroke-thickness change (+-1 pixel, dilation or erosion)
    elastic: float = 1.5  # elastic distortion strength on 28 x 28, pixels (0: none)
    wobble: float = 0.06  # a last small random zoom (and a 1-pixel shift) on 28 x 28, like MNIST's own spread
    ink_noise: float = 0.15  # relative noise on the ink's brightness (the background stays black, as in MNIST)
    contrast: float = 1.4  # ink gain after noise, clipped at white: saturated stroke cores like MNIST's


def _affine_matrix(rng: np.random.Generator, r: Randomise) -> np.ndarray:
    """A random slant x rotation x aspect (2, 2) matrix, about the centre."""
    a = np.radians(rng.uniform(-r.rotation, r.rotation))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    sx = 1 - rng.uniform(0, r.aspect) if rng.random() < 0.7 else 1.0  # mostly narrower, as handwriting is
    sy = 1 - rng.uniform(0, r.aspect) if sx == 1.0 else 1.0
    shear = np.array([[1.0, rng.uniform(-r.slant, r.slant)], [0.0, 1.0]])
    return shear @ rot @ np.diag([sx, sy])


def _warp(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(H, W) image through the (2, 2) matrix `m` about its centre (PIL, bilinear)."""
    from PIL import Image

    h, w = img.shape
    inv = np.linalg.inv(m)  # PIL maps output to input coordinates
    c = np.array([w / 2, h / 2])
    off = c - inv @ c
    im = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    out = im.transform((w, h), Image.AFFINE, (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1]),
                       resample=Image.BILINEAR)
    return np.asarray(out, dtype=np.float32) / 255


def _morph(img: np.ndarray, k: int) -> np.ndarray:
    """Grey dilation (k > 0) or erosion (k < 0) with a (2|k|+1)-square: thicker or thinner strokes."""
    if k == 0:
        return img
    from PIL import Image, ImageFilter

    im = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    f = ImageFilter.MaxFilter(2 * k + 1) if k > 0 else ImageFilter.MinFilter(-2 * k + 1)
    return np.asarray(im.filter(f), dtype=np.float32) / 255


class FontGlyphs:
    """The digits every font can draw, rendered once per size. A font without a glyph for some digit (a subset font
    such as DejaVuSansDisplay) is used for the others, or left out when it has none: an expected case, so no
    warning; `skipped` names each such font and what it lacks. A file that cannot be read as a font is left out with
    a warning (something is wrong with it) and named in `skipped` too."""

    def __init__(self, fonts: Optional[Sequence] = None, sizes: Sequence[int] = (24, 32, 48)):
        fonts = list(find_fonts() if fonts is None else fonts)
        if not fonts:
            raise FontError("no fonts given: pass at least one font file (see vitlab.data.fonts.find_fonts())")
        self.glyphs: dict = {d: [] for d in range(10)}  # digit -> [(font name, {size: (3s, 3s) image})]
        self.skipped: dict = {}  # font name -> why it draws fewer than ten digits ("no digits 0123456789", ...)
        for f in fonts:
            missing = []
            for d in range(10):
                try:
                    self.glyphs[d].append((Path(f).name, {s: render_char(str(d), f, s) for s in sizes}))
                except FontError as e:
                    if "cannot read font" in str(e):
                        warnings.warn(f"font {Path(f).name} skipped: {e}", stacklevel=2)
                        for g in self.glyphs.values():  # drop what it drew before failing
                            g[:] = [x for x in g if x[0] != Path(f).name]
                        self.skipped[Path(f).name] = "cannot be read as a font"
                        missing = []
                        break
                    missing.append(str(d))
            if missing:
                self.skipped[Path(f).name] = f"no glyph for digit(s) {''.join(missing)}"
        empty = [d for d, g in self.glyphs.items() if not g]
        if empty:
            raise FontError(f"no usable font can render digit(s) {empty}: fonts given: {[Path(f).name for f in fonts]}")

    @property
    def fonts(self) -> list:
        """The names of the fonts used (those that drew at least one digit)."""
        return sorted({name for g in self.glyphs.values() for name, _ in g})

    def draw(self, digit: int, rng: np.random.Generator, r: Randomise) -> tuple:
        """One randomised glyph of `digit` -> (28, 28) float image in [0, 1], font name."""
        name, sizes = self.glyphs[digit][rng.integers(len(self.glyphs[digit]))]
        s = int(rng.choice(list(sizes)))
        img = _morph(sizes[s], int(round(rng.uniform(*r.weight) * s)))  # weight: thicker or thinner strokes
        if img.max() < 0.5:  # a hairline font eroded away: keep its own weight
            img = sizes[s]
        img = _warp(img, _affine_matrix(rng, r))  # slant, rotation, aspect
        return to_mnist_style(img), name


# Other ways people write some digits (the pen paths of `DIGIT_STROKES` are one way each): unit canvas, y down.
STROKE_VARIANTS: dict = {
    1: [[[(0.5, 0.12), (0.5, 0.88)]],  # a plain bar
        [[(0.36, 0.26), (0.52, 0.12), (0.52, 0.88)], [(0.36, 0.88), (0.68, 0.88)]]],  # flag and foot
    3: [[[(0.3, 0.14), (0.7, 0.14), (0.48, 0.42), (0.68, 0.56), (0.7, 0.78), (0.5, 0.88), (0.28, 0.82)]]],  # flat top
    4: [[[(0.32, 0.12), (0.26, 0.6), (0.76, 0.6)], [(0.62, 0.3), (0.62, 0.88)]]],  # open top, two strokes
    5: [[[(0.34, 0.13), (0.3, 0.46), (0.52, 0.42), (0.7, 0.55), (0.7, 0.77), (0.52, 0.88), (0.28, 0.82)],
         [(0.34, 0.13), (0.72, 0.13)]]],  # the top bar as a second stroke
    7: [[[(0.26, 0.14), (0.74, 0.14), (0.44, 0.88)], [(0.36, 0.5), (0.66, 0.5)]]],  # crossed
    9: [[[(0.68, 0.36), (0.5, 0.48), (0.32, 0.38), (0.34, 0.18), (0.5, 0.12), (0.68, 0.2), (0.68, 0.36),
          (0.66, 0.7), (0.5, 0.88), (0.36, 0.82)]]],  # curled tail
    2: [[[(0.28, 0.28), (0.4, 0.14), (0.6, 0.14), (0.7, 0.3), (0.62, 0.5), (0.28, 0.86), (0.4, 0.78), (0.74, 0.86)]]],
}
ROUNDED = (0, 2, 3, 5, 6, 8, 9)  # digits whose corners a pen rounds (Chaikin's corner cutting)


def _add_control_points(stroke: list, rng: np.random.Generator, amount: float) -> list:
    """Insert a point, moved at random, into about half of the segments: the path bends where the template is
    straight."""
    out = [stroke[0]]
    for p, q in zip(stroke[:-1], stroke[1:]):
        if rng.random() < 0.5:
            out.append(((p[0] + q[0]) / 2 + rng.uniform(-amount, amount), (p[1] + q[1]) / 2 + rng.uniform(-amount, amount)))
        out.append(q)
    return out


def _chaikin(stroke: list, rounds: int = 2) -> list:
    """Chaikin's corner cutting: a smoother path through the same neighbourhood (the ends stay put)."""
    pts = np.asarray(stroke, dtype=np.float64)
    for _ in range(rounds):
        if len(pts) < 3:
            break
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        pts = np.vstack([pts[:1], np.stack([q, r], 1).reshape(-1, 2), pts[-1:]])
    return [tuple(p) for p in pts]


def stroke_paths(digit: int, rng: np.random.Generator, r: Randomise) -> list:
    """One random pen path for `digit`: a template (the base or a variant), extra control points, jitter, corner
    rounding, then slant / rotation / aspect about the centre."""
    templates = [DIGIT_STROKES[digit]] + STROKE_VARIANTS.get(digit, [])
    strokes = check_strokes(templates[rng.integers(len(templates))])
    strokes = [_add_control_points(s, rng, r.control) for s in strokes]
    strokes = jitter_strokes(strokes, rng, r.control * 0.6)
    if digit in ROUNDED or rng.random() < 0.3:
        strokes = [_chaikin(s) for s in strokes]
    m = _affine_matrix(rng, r)
    return [[tuple(m @ (np.asarray(p) - 0.5) + 0.5) for p in s] for s in strokes]


def stroke_digit(digit: int, rng: np.random.Generator, r: Randomise) -> np.ndarray:
    """One randomised pen-drawn `digit` -> (28, 28) float image in [0, 1], MNIST-style."""
    img = render_strokes(stroke_paths(digit, rng, r), size=64, width=rng.uniform(*r.pen))
    return to_mnist_style(img)


def finish(images: torch.Tensor, r: Randomise, seed: int = 0) -> torch.Tensor:
    """The 28 x 28 batch's last randomisation: stroke thickness (+-1 pixel on some digits), elastic distortion and
    a small zoom and shift (one `Augment` grid_sample), ink noise. (N, 28, 28) in [0, 1] -> the same."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    x = images[:, None].float()  # (N, 1, 28, 28)
    pick = torch.rand(len(x), generator=g)
    thick, thin = pick < r.thickness / 2, (pick >= r.thickness / 2) & (pick < r.thickness)
    x[thick] = F.max_pool2d(x[thick], 3, stride=1, padding=1)
    x[thin] = -F.max_pool2d(-x[thin], 2, stride=1, padding=1)[..., :28, :28] if thin.any() else x[thin]
    x = Augment(rotation=0.0, scale=r.wobble, translate=1.0, elastic_alpha=r.elastic, elastic_sigma=3.0)(x, g)
    noise = 1 + r.ink_noise * torch.randn(x.shape, generator=g)  # (N, 1, 28, 28): uneven ink
    x = (x * noise).clamp(0, 1)
    x = x / x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)  # the brightest ink is white ...
    return (x * r.contrast).clamp(0, 1)  # ... and so is a stroke's core, as in MNIST's scans


def generate(kind: str, n: int, seed: int = 0, fonts: Optional[Sequence] = None,
             randomise: Optional[Randomise] = None, glyphs: Optional[FontGlyphs] = None) -> tuple:
    """`n` digits from generator `kind` ("fonts" or "strokes"), classes balanced and shuffled:
    -> (images (n, 28, 28) uint8, labels (n,) int64, source names (n,) list: the font, or "strokes")."""
    if kind not in GENERATORS:
        raise ValueError(f"unknown generator {kind!r}: choose from {list(GENERATORS)} "
                         "(the conditional VAE is vitlab.methods.cvae.cvae_digits)")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    r = randomise or Randomise()
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    if kind == "fonts":
        glyphs = glyphs or FontGlyphs(fonts, r.sizes)
        drawn = [glyphs.draw(int(d), rng, r) for d in labels]
        imgs, names = [a for a, _ in drawn], [b for _, b in drawn]
    else:
        imgs, names = [stroke_digit(int(d), rng, r) for d in labels], ["strokes"] * n
    x = finish(torch.from_numpy(np.stack(imgs)), r, seed)[:, 0]  # (n, 28, 28)
    return (x * 255).round().to(torch.uint8), torch.from_numpy(labels).long(), names


def synthetic_set(kinds, n: int, like: ImageSet, seed: int = 0, fonts: Optional[Sequence] = None,
                  randomise: Optional[Randomise] = None) -> ImageSet:
    """An ImageSet of `n` synthetic digits split evenly over the generators `kinds` (a name or a list), with the
    dataset info (classes, normalisation) of the real set `like`. ``.sources`` names each image's font or
    "strokes"; ``.fonts`` lists the fonts used."""
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    if not kinds:
        raise ValueError(f"no generator given: choose from {list(GENERATORS)}")
    for k in kinds:
        if k not in GENERATORS:
            raise ValueError(f"unknown generator {k!r}: choose from {list(GENERATORS)}")
    parts = [generate(k, n // len(kinds) + (i < n % len(kinds)), seed + 1000 * i, fonts, randomise)
             for i, k in enumerate(kinds)]
    images = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts])
    out = replace(like, images=images, labels=labels, name="synthetic/" + "+".join(kinds), split=None)
    out.sources = [s for p in parts for s in p[2]]
    out.fonts = sorted({s for s in out.sources if s != "strokes"})
    return out
