"""A small CNN baseline, trained with the same engine as the ViT.

It gives the ViT something honest to be compared with: on MNIST a few
convolutions, whose locality and weight sharing are built in, are hard to
beat; the ViT has to learn those priors from data.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from .configs import CNNConfig


class SmallCNN(nn.Module):
    """conv-conv-pool, conv-conv-pool, global average pool, MLP head.

    Same interface as the ViT and timm's CNNs: forward_features -> the (B, 2w, H/4, W/4) feature map,
    forward_pool -> (B, 2w) pooled features, forward_head(pre_logits=True) -> the (B, hidden) input of the
    classifier, forward_head -> (B, classes) logits.
    """

    def __init__(self, cfg: CNNConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width

        def stage(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.stage1 = stage(cfg.in_channels, w)  # (B, w, H/2, W/2)
        self.stage2 = stage(w, 2 * w)  # (B, 2w, H/4, W/4)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(2 * w, cfg.hidden), nn.ReLU(inplace=True))
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, cfg.num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """A freshly initialised head of `num_classes` outputs; every other weight is kept (timm's convention)."""
        self.cfg = dataclasses.replace(self.cfg, num_classes=num_classes)
        old = self.head
        self.head = nn.Linear(self.cfg.hidden, num_classes).to(old.weight.device, old.weight.dtype)

    def check_input(self, x: torch.Tensor) -> None:
        c, s = self.cfg.in_channels, self.cfg.image_size
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected input of shape (B, {c}, {s}, {s}), got {got}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.stage2(self.stage1(x))  # (B, 2w, H/4, W/4)

    def forward_pool(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pool of the feature map: (B, 2w, H/4, W/4) -> (B, 2w)."""
        return x.mean(dim=(2, 3))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.fc(self.forward_pool(x))  # (B, hidden); fc's Flatten is a no-op, kept so checkpoints keep their keys
        return x if pre_logits else self.head(self.drop(x))  # (B, hidden) or (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
