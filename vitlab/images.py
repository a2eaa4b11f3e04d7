"""Turn a user's own picture of a digit into an MNIST-style 28 x 28 image.

MNIST's recipe (LeCun et al.): white digit on black, the digit's bounding box
scaled to fit 20 x 20 keeping its aspect ratio, then placed in a 28 x 28 frame
so that its centre of mass sits at the centre. A photo or scan of a dark digit
on light paper is inverted first.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


class ImageError(ValueError):
    """An image file cannot be read or holds no digit."""


def to_mnist_style(img: np.ndarray, box: int = 20, size: int = 28) -> np.ndarray:
    """(H, W) grayscale array (any range, any size) -> (size, size) float32 in [0, 1], MNIST style."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim != 2 or min(a.shape) < 1:
        raise ImageError(f"expected a 2-D grayscale image, got shape {a.shape}")
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < 1e-6:
        raise ImageError("the image is blank (a single colour): no digit to read")
    a = (a - lo) / (hi - lo)
    # The background is what dominates the border; MNIST wants it dark.
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if np.median(border) > 0.5:
        a, border = 1.0 - a, 1.0 - border
    bg = float(np.median(border))  # background level, now the dark side
    a = np.clip((a - bg) / max(1.0 - bg, 1e-6), 0, 1)
    if a.max() <= 0:
        raise ImageError("no digit found: the image has no foreground against its background")
    a = a / a.max()
    rows, cols = np.nonzero(a > 0.1)
    a = a[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]  # crop to the ink
    h, w = a.shape
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    from PIL import Image

    small = np.asarray(Image.fromarray((a * 255).astype(np.uint8)).resize((nw, nh), Image.LANCZOS), dtype=np.float32) / 255
    small = np.clip(small, 0, 1)
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = small
    # Shift so the centre of mass is at the centre (MNIST's last step).
    total = out.sum()
    ys, xs = np.indices(out.shape)
    cy, cx = (ys * out).sum() / total, (xs * out).sum() / total
    dy, dx = int(round((size - 1) / 2 - cy)), int(round((size - 1) / 2 - cx))
    dy = int(np.clip(dy, -top, size - (top + nh)))
    dx = int(np.clip(dx, -left, size - (left + nw)))
    return np.roll(np.roll(out, dy, axis=0), dx, axis=1)


def read_digit(path: str | os.PathLike, size: int = 28) -> torch.Tensor:
    """Read a PNG/JPEG/... file of any size as an MNIST-style (size, size) float tensor in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                # Transparent background: composite on white so the strokes stay the darker part.
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            gray = np.asarray(im.convert("L"), dtype=np.float32)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read image ({e})") from None
    try:
        return torch.from_numpy(to_mnist_style(gray, size=size, box=round(size * 20 / 28)))
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None
