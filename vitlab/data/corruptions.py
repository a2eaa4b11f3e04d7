"""MNIST-style corruptions at chosen severities, made locally with tensor code: what robustness is measured on.

Every corruption maps (N, H, W) images in [0, 1] (white ink on black) to images of the same shape, with a
`level` in the corruption's own unit (degrees, pixels, a factor, a standard deviation), so a sweep over
levels draws an accuracy curve with a meaningful x-axis. Random ones (noise, occlusion) take a seed, so the
same level gives the same images for every model compared.

    corrupt_set(data.test, "rotation", 30)   # an ImageSet of the test digits turned 30 degrees
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import torch
import torch.nn.functional as F

from .imageset import ImageSet


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(N, H, W) images warped by the (2, 3) matrix theta in grid_sample's normalised coordinates."""
    grid = F.affine_grid(theta.expand(len(x), 2, 3), (len(x), 1, *x.shape[-2:]), align_corners=False)
    return F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def rotation(x, degrees, seed=0):
    """Turn every digit by `degrees` about the image centre (positive: anticlockwise on screen)."""
    t = math.radians(degrees)
    return _affine(x, torch.tensor([[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0]]))


def shear(x, factor, seed=0):
    """Slant: x' = x + factor * y (0.3 is about 17 degrees of italic)."""
    return _affine(x, torch.tensor([[1.0, factor, 0.0], [0.0, 1.0, 0.0]]))


def scale(x, factor, seed=0):
    """Zoom about the centre: 0.5 halves the digit, 1.3 makes it 30% larger (cut at the frame)."""
    return _affine(x, torch.tensor([[1.0 / factor, 0.0, 0.0], [0.0, 1.0 / factor, 0.0]]))


def shift(x, pixels, seed=0):
    """Move every digit `pixels` right and `pixels` down (diagonally), off the centre MNIST always uses."""
    h, w = x.shape[-2:]
    return _affine(x, torch.tensor([[1.0, 0.0, -2.0 * pixels / w], [0.0, 1.0, -2.0 * pixels / h]]))


def thickness(x, pixels, seed=0):
    """Thicker strokes for positive `pixels` (grey dilation, a (2p+1)-square max filter), thinner for negative
    (erosion); 0 leaves the digit as it is."""
    p = int(round(pixels))
    if p == 0:
        return x.clone()
    k = 2 * abs(p) + 1
    y = x[:, None] if p > 0 else -x[:, None]
    y = F.max_pool2d(y, k, stride=1, padding=abs(p))
    return (y if p > 0 else -y)[:, 0]


def noise(x, std, seed=0):
    """Add Gaussian pixel noise of standard deviation `std`, clipped to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


def blur(x, sigma, seed=0):
    """Gaussian blur with standard deviation `sigma` pixels."""
    if sigma <= 0:
        return x.clone()
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    y = F.conv2d(x[:, None], k.view(1, 1, 1, -1), padding=(0, r))
    return F.conv2d(y, k.view(1, 1, -1, 1), padding=(r, 0))[:, 0]


def occlusion(x, size, seed=0):
    """Black out a `size` x `size` square at a random place in each image (the ink under it is lost)."""
    s = int(round(size))
    if s <= 0:
        return x.clone()
    n, h, w = x.shape
    g = torch.Generator().manual_seed(seed)
    top = torch.randint(0, h - s + 1, (n,), generator=g).view(n, 1, 1)
    left = torch.randint(0, w - s + 1, (n,), generator=g).view(n, 1, 1)
    yy, xx = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    hole = (yy >= top) & (yy < top + s) & (xx >= left) & (xx < left + s)
    return x.masked_fill(hole, 0.0)


def inversion(x, amount, seed=0):
    """Blend towards the negative: 0 is the digit, 1 is black ink on white (what a photo of paper looks like
    before `to_mnist_style` inverts it)."""
    return (1 - amount) * x + amount * (1 - x)


CORRUPTIONS: dict[str, Callable] = {
    "rotation": rotation, "shear": shear, "scale": scale, "shift": shift, "thickness": thickness,
    "noise": noise, "blur": blur, "occlusion": occlusion, "inversion": inversion,
}
# The level at which each corruption leaves the digit as it is.
CLEAN: dict[str, float] = {"rotation": 0, "shear": 0, "scale": 1.0, "shift": 0, "thickness": 0, "noise": 0, "blur": 0,
                           "occlusion": 0, "inversion": 0}
# Levels for a sweep, in increasing order of the corruption's unit (the clean level among them): what notebook 11
# plots and a robustness table averages over.
SWEEPS: dict[str, tuple] = {
    "rotation": (0, 15, 30, 45, 60), "shear": (0, 0.2, 0.4, 0.6), "scale": (1.0, 0.8, 0.6, 0.4),
    "shift": (0, 2, 4, 6), "thickness": (-1, 0, 1, 2), "noise": (0, 0.2, 0.4, 0.6), "blur": (0, 0.5, 1.0, 1.5, 2.0),
    "occlusion": (0, 6, 10, 14), "inversion": (0, 0.3, 0.6, 1.0),
}


def corrupt(images: torch.Tensor, kind: str, level: float, seed: int = 0) -> torch.Tensor:
    """(N, H, W) images, uint8 (0..255) or float in [0, 1] -> corrupted images of the same dtype and shape."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {sorted(CORRUPTIONS)}")
    images = torch.as_tensor(images)
    if images.ndim != 3:
        raise ValueError(f"expected (N, H, W) images, got shape {tuple(images.shape)}")
    is_uint8 = images.dtype == torch.uint8
    x = images.float() / 255 if is_uint8 else images.float()
    y = CORRUPTIONS[kind](x, level, seed=seed).clamp(0, 1)
    return (y * 255).round().to(torch.uint8) if is_uint8 else y


def corrupt_set(data: ImageSet, kind: str, level: float, seed: int = 0) -> ImageSet:
    """The same images and labels, corrupted: an ImageSet that `evaluate` and every model take as they are."""
    return replace(data, images=corrupt(data.images, kind, level, seed), name=f"{data.name} {kind}={level}")
