"""Digit-safe augmentation on whole batches: rotation, zoom, shift and elastic distortion, one grid_sample."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import torch


@dataclass
class Augment:
    """Digit-safe augmentation, applied per batch on tensors with one grid_sample.

    Small rotations, scalings and shifts keep a digit the same digit; a
    horizontal flip does not (a mirrored 2 is not a 2), so there is none.
    Elastic distortion (Simard et al. 2003) is optional: it helps long runs.
    """

    rotation: float = 10.0  # max rotation, degrees, either way
    scale: float = 0.1  # max relative zoom in or out
    translate: float = 2.0  # max shift, pixels, along each axis
    elastic_alpha: float = 0.0  # elastic displacement strength, pixels (0 = off)
    elastic_sigma: float = 4.0  # smoothness of the elastic field, pixels

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        # torch is imported here, not at the top, so that configs holding an Augment (the recipes, and with them
        # `vitlab --help`) load without it.
        import torch
        import torch.nn.functional as F

        B, C, H, W = x.shape
        g = generator

        def u(*shape):  # uniform in [-1, 1]
            return torch.rand(*shape, generator=g) * 2 - 1

        angle = u(B) * math.radians(self.rotation)
        zoom = 1 + u(B) * self.scale
        shift = u(B, 2) * torch.tensor([2 * self.translate / W, 2 * self.translate / H])  # grid units
        # affine_grid maps output to input coordinates, so the inverse transform goes here.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, (B, C, H, W), align_corners=False)  # (B, H, W, 2)
        if self.elastic_alpha > 0:
            field = u(B, 2, H, W)
            k = int(2 * round(3 * self.elastic_sigma) + 1)
            t = torch.arange(k, dtype=torch.float32) - k // 2
            kern = torch.exp(-(t**2) / (2 * self.elastic_sigma**2))
            kern = kern / kern.sum()
            # Separable Gaussian blur of both displacement channels.
            field = F.conv2d(field.reshape(B * 2, 1, H, W), kern.view(1, 1, 1, k), padding=(0, k // 2))
            field = F.conv2d(field, kern.view(1, 1, k, 1), padding=(k // 2, 0)).reshape(B, 2, H, W)
            field = field / field.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-8)
            scale = torch.tensor([2 * self.elastic_alpha / W, 2 * self.elastic_alpha / H]).view(1, 2, 1, 1)
            grid = grid + (field * scale).permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
