"""The conditional VAE as a method: its Trainer objective, and labelled digits sampled from a trained one.

The model is `vitlab.models.cvae.CVAE`; training it is an ordinary `train_or_load` run with `CVAEObjective`
(the Trainer feeds normalised images; the VAE models pixels in [0, 1]). `cvae_digits` draws class-balanced
samples and prepares them MNIST-style with the same `images.restyle` that `vitlab predict` uses.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..data import ImageSet
from ..images import restyle
from ..models.cvae import CVAE
from ..training.objectives import Objective


class CVAEObjective(Objective):
    """Train a `CVAE` with the ordinary Trainer: loss = negative ELBO per image, no logits (nothing to score).

    `mean`, `std`: the dataset's normalisation (its `info.mean`, `info.std`), undone to get pixels in [0, 1].
    """

    def __init__(self, mean: float, std: float):
        self.mean, self.std = float(mean), float(std)

    def __call__(self, model, x, y):
        if not isinstance(model, CVAE):
            raise TypeError(f"CVAEObjective trains a CVAE, got a {type(model).__name__}")
        pixels = (x * self.std + self.mean).clamp(0, 1)  # (B, 1, H, W) back in [0, 1]
        return model.loss(pixels, y), None

    def to_dict(self) -> dict:
        return {"name": "CVAEObjective", "mean": round(self.mean, 6), "std": round(self.std, 6)}


def cvae_digits(model: CVAE, n: int, like: ImageSet, seed: int = 0, temperature: float = 1.0) -> ImageSet:
    """`n` class-balanced, shuffled samples of `model`, prepared MNIST-style, as an ImageSet with `like`'s info.

    Samples are Bernoulli means (the decoder's sigmoid), so they are smooth grey strokes: restyle stretches their
    contrast and centres them like every other digit here.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    k = model.cfg.num_classes
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=g)]
    samples = model.eval().sample(labels, temperature, generator=g)  # (n, H, W) in [0, 1]
    ink = samples.amax(dim=(1, 2)) > 0.05  # a sample with no ink at all has nothing to centre
    samples[~ink] = model.sample(labels[~ink], 0.0)  # the class's mean digit instead
    x = restyle(np.asarray(samples))  # (n, 28, 28), MNIST-style
    x = (x / x.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6) * 1.3).clamp(0, 1)  # saturated cores, as in MNIST
    out = replace(like, images=(x * 255).round().to(torch.uint8), labels=labels.long(), name="synthetic/cvae", split=None)
    out.sources = ["cvae"] * n
    return out
