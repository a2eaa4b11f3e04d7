"""Turn a user's own picture of a digit into an MNIST-style 28 x 28 image.

MNIST's recipe (LeCun et al.): white digit on black, the digit's bounding box
scaled to fit 20 x 20 keeping its aspect ratio, then placed in a 28 x 28 frame
so that its centre of mass sits at the centre. A photo or scan of a dark digit
on light paper is inverted first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch


class ImageError(ValueError):
    """An image file cannot be read or holds no digit."""


PREPROCESS_STEPS = ("invert", "crop", "fit_box", "centre_of_mass")  # MNIST's recipe, in order; see to_mnist_style


def to_mnist_style(img: np.ndarray, box: int = 20, size: int = 28, skip: Iterable[str] = ()) -> np.ndarray:
    """(H, W) grayscale array (any range, any size) -> (size, size) float32 in [0, 1], MNIST style.

    The steps, each of which `skip` can leave out (notebook 11 measures what each one is worth):

    - ``invert``: dark ink on light paper becomes light on dark (the background is what dominates the border);
    - ``crop``: cut away everything outside the ink's bounding box;
    - ``fit_box``: scale the ink to fit a `box` x `box` square, keeping its aspect ratio, inside the frame
      (skipped: stretch it to fill the whole frame);
    - ``centre_of_mass``: shift so the ink's centre of mass is at the frame's centre (skipped: the box is centred).
    """
    skip = _known_steps(skip)
    a = _stretched(img)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if "invert" not in skip and np.median(border) > 0.5:
        a, border = 1.0 - a, 1.0 - border
    a = _ink_only(a, border)
    if "crop" not in skip:
        a = _cropped_to_ink(a)
    nh, nw = (size, size) if "fit_box" in skip else _fitted_in_box(a.shape, box)
    out, top, left = _framed(a, nh, nw, size)
    if "centre_of_mass" in skip or out.sum() <= 0:
        return out
    return _centred_by_mass(out, top, left, nh, nw)


def _known_steps(skip: Iterable[str]) -> set:
    """`skip` as a set, every name in it one of PREPROCESS_STEPS."""
    skip = set(skip)
    unknown = skip - set(PREPROCESS_STEPS)
    if unknown:
        raise ValueError(f"unknown preprocessing step(s) {sorted(unknown)}; the steps are {PREPROCESS_STEPS}")
    return skip


def _stretched(img: np.ndarray) -> np.ndarray:
    """The image as float32 stretched to [0, 1]; an error for anything but a 2-D image of more than one colour."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim != 2 or min(a.shape) < 1:
        raise ImageError(f"expected a 2-D grayscale image, got shape {a.shape}")
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < 1e-6:
        raise ImageError("the image is blank (a single colour): no digit to read")
    return (a - lo) / (hi - lo)


def _ink_only(a: np.ndarray, border: np.ndarray) -> np.ndarray:
    """The ink alone, its brightest pixel 1: the background (what the `border` mostly shows) and its noise set to 0."""
    bg = float(np.median(border))  # background level (the dark side, unless inversion was skipped)
    # Paper grain and sensor noise: anything within 4 robust standard deviations of the background is background,
    # or a few noisy pixels far from the digit would stretch the crop over the whole sheet. A clean image (MNIST's
    # own, a drawing) has no spread in its border, so nothing changes for it. The floor is capped so that an image
    # that is all noise still yields its brightest quarter, for the classifier and the digit check to judge.
    noise = 1.4826 * float(np.median(np.abs(border - bg)))
    floor = bg + min(4 * noise, 0.25)
    ink = np.clip((a - floor) / max(1.0 - floor, 1e-6), 0, 1) if bg < 0.5 else a
    if ink.max() <= 0:
        raise ImageError("no digit found: the image has no foreground against its background")
    return ink / ink.max()


def _cropped_to_ink(a: np.ndarray) -> np.ndarray:
    """`a` cut to the bounding box of its ink (pixels above 0.1)."""
    rows, cols = np.nonzero(a > 0.1)
    return a[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _fitted_in_box(shape, box: int) -> tuple:
    """(height, width) of an image of `shape` scaled to fit a `box` x `box` square, keeping its aspect ratio."""
    h, w = shape
    scale = box / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _framed(a: np.ndarray, nh: int, nw: int, size: int):
    """`a` resized to (nh, nw) and placed in the middle of a black (size, size) frame: (frame, top, left)."""
    from PIL import Image

    small = np.asarray(Image.fromarray((a * 255).astype(np.uint8)).resize((nw, nh), Image.LANCZOS), dtype=np.float32) / 255
    small = np.clip(small, 0, 1)
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = small
    return out, top, left


def _centred_by_mass(out: np.ndarray, top: int, left: int, nh: int, nw: int) -> np.ndarray:
    """`out` shifted so its ink's centre of mass is at the frame's centre; the (nh, nw) box at (top, left) stays in."""
    # Shift so the centre of mass is at the centre (MNIST's last step), never pushing ink out of the frame. MNIST's
    # "centre" is pixel (14, 14) of 0..27, not 13.5: its training digits' mass centres average (14.00, 14.01) with
    # the spread of whole-pixel shifts (std 0.29), so the target is size / 2.
    size = out.shape[0]
    total = out.sum()
    ys, xs = np.indices(out.shape)
    cy, cx = (ys * out).sum() / total, (xs * out).sum() / total
    dy, dx = int(round(size / 2 - cy)), int(round(size / 2 - cx))
    dy = int(np.clip(dy, -top, size - (top + nh)))
    dx = int(np.clip(dx, -left, size - (left + nw)))
    return np.roll(np.roll(out, dy, axis=0), dx, axis=1)


def read_picture(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG/JPEG/... file as it is: (H, W) float32 grayscale in [0, 255]. A transparent background is
    composited on white, so the strokes stay the darker part."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        if not path.exists():
            raise ImageError(f"{path}: file not found")
        kind = ("a folder" if path.is_dir() else "a FIFO" if path.is_fifo() else "a device" if path.is_char_device()
                or path.is_block_device() else "a socket" if path.is_socket() else "not a regular file")
        raise ImageError(f"{path}: is {kind}, not an image file")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith(("I", "F")):  # 16-bit, 32-bit or float grey: PIL's "L" would clip it to 0/255
                return _deep_grey(np.asarray(im, dtype=np.float64), im.mode)
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            return np.asarray(im.convert("L"), dtype=np.float32)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image file") from None
    except (OSError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: cannot read image ({e})") from None


def _deep_grey(a: np.ndarray, mode: str) -> np.ndarray:
    """A grey image of more than 8 bits (PIL mode I;16, I or F) -> (H, W) float32 in [0, 255], every level kept:
    16-bit values over 65535, floats in [0, 1] over 1 when they lie there, anything else over its own range."""
    if a.ndim != 2:
        raise ImageError(f"expected a grey image, got shape {a.shape} in mode {mode}")
    if not np.isfinite(a).all():
        raise ImageError(f"the image holds non-finite values (mode {mode})")
    lo, hi = float(a.min()), float(a.max())
    if mode.startswith("F") and 0 <= lo and hi <= 1:
        scale, lo = 1.0, 0.0
    elif 0 <= lo and hi <= 65535 and not mode.startswith("F"):
        scale, lo = 65535.0, 0.0
    else:
        scale = max(hi - lo, 1e-12)
    return ((a - lo) * (255.0 / scale)).astype(np.float32)


def read_digit(path: str | os.PathLike, size: int = 28) -> torch.Tensor:
    """Read a PNG/JPEG/... file of any size as an MNIST-style (size, size) float tensor in [0, 1]."""
    gray = read_picture(path)
    try:
        return torch.from_numpy(to_mnist_style(gray, size=size, box=round(size * 20 / 28)))
    except ImageError as e:
        raise ImageError(f"{Path(path)}: {e}") from None


def restyle(images, skip: Iterable[str] = (), size: int = 28) -> torch.Tensor:
    """(N, H, W) images (uint8 or float, any range) -> (N, size, size) float in [0, 1], each through
    `to_mnist_style`: what `vitlab predict` and the drawing pad do to one image, done to many."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 3:
        raise ImageError(f"expected (N, H, W) images, got shape {arr.shape}")
    box = round(size * 20 / 28)
    return torch.from_numpy(np.stack([to_mnist_style(a, box=box, size=size, skip=skip) for a in arr]))
