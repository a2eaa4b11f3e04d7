"""Digits as pen strokes: what the drawing pad records, and a pen that draws them into pixels.

A drawing is a list of strokes; a stroke is a list of (x, y) points in [0, 1] x [0, 1] of the canvas, y down,
in the order the pen moved. The same `render_strokes` turns a learner's drawing on the pad, a digit written
here as a path, or a random scribble into a grayscale image, which `images.to_mnist_style` then prepares
exactly as `vitlab predict` prepares a file.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

Point = tuple  # (x, y) in [0, 1], y pointing down
Strokes = Sequence[Sequence[Point]]

# Digits written as pen paths on a unit canvas (y down), one list per stroke: what a person draws with a mouse.
DIGIT_STROKES: dict = {
    0: [[(0.5, 0.12), (0.3, 0.22), (0.24, 0.5), (0.3, 0.78), (0.5, 0.88), (0.7, 0.78), (0.76, 0.5), (0.7, 0.22),
         (0.5, 0.12)]],
    1: [[(0.38, 0.25), (0.52, 0.12), (0.52, 0.88)]],
    2: [[(0.28, 0.28), (0.4, 0.14), (0.6, 0.14), (0.7, 0.3), (0.62, 0.5), (0.28, 0.86), (0.74, 0.86)]],
    3: [[(0.28, 0.18), (0.5, 0.12), (0.68, 0.22), (0.64, 0.42), (0.46, 0.5), (0.68, 0.6), (0.7, 0.8), (0.5, 0.88),
         (0.28, 0.82)]],
    4: [[(0.62, 0.88), (0.62, 0.12), (0.24, 0.64), (0.78, 0.64)]],
    5: [[(0.7, 0.13), (0.34, 0.13), (0.3, 0.46), (0.52, 0.42), (0.7, 0.55), (0.7, 0.77), (0.52, 0.88), (0.28, 0.82)]],
    6: [[(0.66, 0.14), (0.44, 0.26), (0.3, 0.52), (0.32, 0.78), (0.5, 0.88), (0.68, 0.78), (0.68, 0.6), (0.5, 0.5),
         (0.32, 0.6)]],
    7: [[(0.26, 0.14), (0.74, 0.14), (0.44, 0.88)]],
    8: [[(0.5, 0.5), (0.32, 0.36), (0.36, 0.16), (0.5, 0.12), (0.64, 0.16), (0.68, 0.36), (0.5, 0.5), (0.3, 0.66),
         (0.34, 0.84), (0.5, 0.88), (0.66, 0.84), (0.7, 0.66), (0.5, 0.5)]],
    9: [[(0.68, 0.36), (0.5, 0.48), (0.32, 0.38), (0.34, 0.18), (0.5, 0.12), (0.68, 0.2), (0.68, 0.36), (0.64, 0.88)]],
}


def check_strokes(strokes: Strokes) -> list:
    """Validate a drawing and return it as a list of lists of (x, y) float pairs; one clear error otherwise."""
    out = []
    for i, stroke in enumerate(strokes):
        pts = []
        for p in stroke:
            if len(p) != 2:
                raise ValueError(f"stroke {i}: a point must be (x, y), got {p!r}")
            x, y = float(p[0]), float(p[1])
            if not (np.isfinite(x) and np.isfinite(y)):
                raise ValueError(f"stroke {i}: point {p!r} is not finite")
            pts.append((x, y))
        if pts:
            out.append(pts)
    return out


def render_strokes(strokes: Strokes, size: int = 280, width: float = 0.06) -> np.ndarray:
    """Draw strokes with a round pen: -> (size, size) float32 in [0, 1], white ink on black.

    `width` is the pen's diameter as a fraction of the canvas (0.06 of a 280-pixel pad is about 17 pixels, a
    finger or mouse stroke; after `to_mnist_style` it is MNIST's 2 to 3 pixels).
    """
    from PIL import Image, ImageDraw

    strokes = check_strokes(strokes)
    scale = 4  # draw 4x larger, then downsample: anti-aliased edges like a scanned pen stroke
    big = size * scale
    im = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(im)
    w = max(1.0, width * big)
    for stroke in strokes:
        pts = [(x * big, y * big) for x, y in stroke]
        if len(pts) > 1:
            draw.line(pts, fill=255, width=int(round(w)), joint="curve")
        for x, y in pts:  # round caps and joints
            draw.ellipse([x - w / 2, y - w / 2, x + w / 2, y + w / 2], fill=255)
    return np.asarray(im.resize((size, size), Image.LANCZOS), dtype=np.float32) / 255


def jitter_strokes(strokes: Strokes, rng: np.random.Generator, amount: float = 0.03) -> list:
    """Each point moved by up to `amount` of the canvas (uniform): the same digit, drawn by another hand."""
    return [[(x + rng.uniform(-amount, amount), y + rng.uniform(-amount, amount)) for x, y in s]
            for s in check_strokes(strokes)]


def random_scribble(rng: np.random.Generator, strokes: Optional[int] = None, points: Optional[int] = None) -> list:
    """A random pen path that is no digit: 1-3 strokes of 2-6 points anywhere on the canvas."""
    n = int(rng.integers(1, 4)) if strokes is None else strokes
    return [[tuple(rng.uniform(0.1, 0.9, 2)) for _ in range(int(rng.integers(2, 7)) if points is None else points)]
            for _ in range(n)]
