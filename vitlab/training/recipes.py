"""Named training recipes: a model preset plus a TrainConfig. `default` is what `vitlab train` runs with no flags;
`long` is the slower recipe for the best accuracy."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.augment import Augment
from ..models.configs import ViTConfig, vit_mini_mnist, vit_small_mnist
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
        vit_mini_mnist(),
        # A fixed training budget of 40 TFLOP (FLOPs an image, `analysis.cost`, x images x epochs), so that a CPU
        # trains it in one sitting; the epochs are as many as the budget allows this small model, because on
        # validation the budget did more as epochs than as width, overlapping patches, a weight average or other
        # batch sizes (the README has the comparison and its figures).
        TrainConfig(epochs=53, batch_size=256, lr=2e-3, weight_decay=0.05, warmup_epochs=1.0, schedule="cosine",
                    label_smoothing=0.1, grad_clip=1.0, augment=Augment(rotation=10.0, scale=0.1, translate=2.0)),
        "vit_mini_mnist (7x7 patches, 17 tokens, D=64, 4 blocks), 53 epochs, a 40 TFLOP budget: the quick CPU recipe",
    ),
    "long": Recipe(
        "long",
        vit_small_mnist(),
        TrainConfig(epochs=80, batch_size=256, lr=2e-3, weight_decay=0.05, warmup_epochs=2.0, schedule="cosine",
                    label_smoothing=0.1, grad_clip=1.0, augment=Augment(elastic_alpha=1.0)),
        "vit_small_mnist (4x4 patches, 50 tokens), 80 epochs, elastic distortion: the accuracy recipe (hours on a CPU; "
        "--resume carries it across interruptions)",
    ),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}") from None
