"""A small class-conditional variational autoencoder (Kingma et al. 2014, "M2"-style conditioning): a generator of
labelled digits that can be trained on a handful of real ones.

The encoder reads an image and its one-hot class and gives a Gaussian over a small latent code; the decoder maps
(code, class) back to pixels. Sampling a code from N(0, I) with a chosen class draws a new digit of that class.
MLPs throughout: at 28 x 28 and a few hundred training images nothing more is needed, and it trains on a CPU
while the notebook waits.

Shapes: B batch, P = H * W pixels, Z latent size, K classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import DictConfig


@dataclass
class CVAEConfig(DictConfig):
    image_size: int = 28  # images are image_size x image_size, one channel
    num_classes: int = 10  # classes the generator is conditioned on
    hidden: int = 256  # width of the encoder's and decoder's hidden layers
    latent: int = 8  # size Z of the latent code (small: a few hundred images cannot fill a large one)
    beta: float = 1.0  # weight of the KL term in the loss (1: the ELBO)


class CVAE(nn.Module):
    """x (B, 1, H, W) in [0, 1], y (B,) -> Bernoulli pixel logits (B, 1, H, W), mean and log-variance (B, Z)."""

    def __init__(self, cfg: CVAEConfig):
        super().__init__()
        self.cfg = cfg
        P, K, Hd, Z = cfg.image_size ** 2, cfg.num_classes, cfg.hidden, cfg.latent
        self.encoder = nn.Sequential(nn.Linear(P + K, Hd), nn.GELU(), nn.Linear(Hd, Hd), nn.GELU(), nn.Linear(Hd, 2 * Z))
        self.decoder = nn.Sequential(nn.Linear(Z + K, Hd), nn.GELU(), nn.Linear(Hd, Hd), nn.GELU(), nn.Linear(Hd, P))

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        h = torch.cat([x.flatten(1), F.one_hot(y, self.cfg.num_classes).float()], 1)  # (B, P + K)
        mu, logvar = self.encoder(h).chunk(2, dim=1)  # (B, Z) each
        return mu, logvar.clamp(-10, 10)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = self.cfg.image_size
        h = torch.cat([z, F.one_hot(y, self.cfg.num_classes).float()], 1)  # (B, Z + K)
        return self.decoder(h).view(-1, 1, s, s)  # (B, 1, H, W) pixel logits

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        mu, logvar = self.encode(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # the reparameterisation trick: (B, Z)
        return self.decode(z, y), mu, logvar

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The negative ELBO per image (beta-weighted KL), in nats: Bernoulli reconstruction + KL to N(0, I)."""
        logits, mu, logvar = self(x, y)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
        return rec + self.cfg.beta * kl

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, temperature: float = 1.0,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """New digits of the classes `labels` (B,): codes from N(0, temperature^2 I) -> (B, H, W) in [0, 1]."""
        dev = next(self.parameters()).device
        z = torch.randn(len(labels), self.cfg.latent, generator=generator).to(dev) * temperature  # (B, Z)
        return torch.sigmoid(self.decode(z, labels.to(dev)))[:, 0].cpu()
