"""Named training recipes: a model preset plus a TrainConfig. `default` is what `vitlab train` runs with no flags;
`long` is the slower recipe for the best accuracy."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.augment import Augment
from ..models.configs import ViTConfig, vit_small_mnist, vit_tiny_mnist
from .config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str  # what `--recipe` takes
    model: ViTConfig  # the model to train
    train: TrainConfig  # how to train it
    about: str = ""  # one line for `vitlab train --help`


RECIPES = {
    "default": Recipe(
        "default",
        vit_tiny_mnist(),
        TrainConfig(epochs=18, batch_size=256, lr=2e-3, weight_decay=0.05, warmup_epochs=1.0, schedule="cosine",
                    label_smoothing=0.1, grad_clip=1.0,
                    augment=Augment(rotation=5.0, scale=0.05, translate=1.0)),
        "vit_tiny_mnist (7x7 patches, 17 tokens), 18 epochs, light augmentation: the quick CPU recipe",
    ),
    "long": Recipe(
        "long",
        vit_small_mnist(),
        TrainConfig(epochs=40, batch_size=256, lr=2e-3, weight_decay=0.05, warmup_epochs=2.0, schedule="cosine",
                    label_smoothing=0.1, grad_clip=1.0, augment=Augment(elastic_alpha=1.0)),
        "vit_small_mnist (4x4 patches, 50 tokens), 40 epochs, stronger augmentation with elastic distortion",
    ),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}") from None
