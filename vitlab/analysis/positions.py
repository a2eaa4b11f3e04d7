"""Positional embeddings: what they look like, and what a model takes from them.

The embedding is read through the model's `pos_embed`
attribute (a learned parameter or the fixed sin-cos buffer), CLS excluded.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ImageSet
from ..models import patchify, unpatchify
from ..training.inference import map_batches


def patch_position_embeddings(model) -> Optional[torch.Tensor]:
    """The position embeddings of the patch tokens, (N, D); None for a model without any."""
    pe = getattr(model, "pos_embed", None)
    if pe is None:
        return None
    return pe.detach()[0, 1:].float().cpu()  # drop CLS's position: (N, D)


def position_similarity(pos: torch.Tensor, centre: bool = False) -> torch.Tensor:
    """Cosine similarity of every position's embedding with every other's: (N, D) -> (g, g, g, g).

    Entry [r, c] is the g x g map of how similar position (r, c) is to each
    position: the picture of Dosovitskiy et al. (2021), figure 7.
    `centre`: subtract the mean embedding over the positions first. What all positions share says nothing about
    where a patch is, and it can dominate the cosine (2-D sin-cos: its low frequencies barely change over a few
    positions, so every raw cosine is near 1).
    """
    N = pos.shape[0]
    g = int(round(N**0.5))
    if g * g != N:
        raise ValueError(f"expected a square number of positions, got {N}")
    pos = pos.float() - pos.float().mean(0) if centre else pos.float()
    unit = F.normalize(pos, dim=-1)
    return (unit @ unit.T).reshape(g, g, g, g)


def neighbour_similarity(sim: torch.Tensor) -> dict:
    """Summary numbers for a (g, g, g, g) similarity: mean cosine to the 4-neighbours, to positions in the
    same row or column (not neighbours), and to all other positions."""
    g = sim.shape[0]
    near, line, other = [], [], []
    for r in range(g):
        for c in range(g):
            for r2 in range(g):
                for c2 in range(g):
                    if (r, c) == (r2, c2):
                        continue
                    v = float(sim[r, c, r2, c2])
                    if abs(r - r2) + abs(c - c2) == 1:
                        near.append(v)
                    elif r == r2 or c == c2:
                        line.append(v)
                    else:
                        other.append(v)
    mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    return {"neighbours": mean(near), "same_row_or_column": mean(line), "elsewhere": mean(other)}


def pca_2d(pos: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, D) embeddings onto their first two principal components: ((N, 2), explained ratio (2,))."""
    x = pos.float() - pos.float().mean(0, keepdim=True)
    U, S, V = torch.linalg.svd(x, full_matrices=False)
    var = S**2
    return (x @ V[:2].T).numpy(), (var[:2] / var.sum()).numpy()


def shuffle_patches(imgs: torch.Tensor, patch_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Permute the patches of each image independently: (B, C, H, W) -> (B, C, H, W).

    The pixels inside each patch are untouched, so a model that ignores position
    sees exactly the same set of tokens as before.
    """
    B, C = imgs.shape[:2]
    p = patchify(imgs, patch_size)  # (B, N, P*P*C)
    perm = torch.argsort(torch.rand(B, p.shape[1], generator=generator), dim=1)  # (B, N): one permutation per image
    p = p.gather(1, perm[:, :, None].expand_as(p).to(p.device))
    return unpatchify(p, patch_size, C)


def shuffled_accuracy(model, data: ImageSet, patch_size: int, seed: int = 0, batch_size: int = 1000) -> float:
    """Accuracy on `data` with the patches of every image permuted (seeded); the model's mode is kept."""
    gen = torch.Generator().manual_seed(seed)
    preds = map_batches(model, data, lambda m, x, y: m(shuffle_patches(x.cpu(), patch_size, gen).to(x.device)).argmax(1),
                        batch_size)  # (N,)
    return float((preds.long() == data.labels).float().mean())
