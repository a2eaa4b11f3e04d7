"""Named training recipes: a model preset plus a TrainConfig, measured on this project's CPU.

`default` is what `vitlab train` runs with no flags and what notebook 03 trains;
`long` is the slower recipe for the best accuracy. Measured figures are in the README
(benchmarks/accuracy.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data import Augment
from .model import ViTConfig, vit_small_mnist, vit_tiny_mnist
from .train import TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str  # what `--recipe` takes
    model: ViTConfig  # the model to train
    train: TrainConfig  # how to train it
    about: str = ""  # one line for --help and the README


RECIPES = {
    "default": Recipe(
        "default",
        vit_tiny_mnist(),
        TrainConfig(epochs=18, batch_size=256, lr=2e-3, weight_decay=0.05, warmup_epochs=1.0, schedule="cosine",
                    label_smoothing=0.1, grad_clip=1.0,
                    augment=Augment(rotation=5.0, scale=0.05, translate=1.0)),
        "vit_tiny_mnist (7x7 patches, 17 tokens), 18 epochs, light augmentation: the 6-minute CPU recipe",
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


# --------------------------------------------------------------------------- the notebooks' shared runs

FAST_TRAIN_IMAGES = 4000  # FAST mode (CI): train on this many images ...
FAST_EPOCHS = 2  # ... for this many epochs


def notebook_runs_dir(fast: bool):
    """Where the notebooks keep their runs: ``runs/``, or ``runs/fast/`` for FAST (CI) runs, so a quick
    check never replaces or reuses the real models."""
    from .runs import default_runs_dir

    return default_runs_dir() / "fast" if fast else default_runs_dir()


def shrink_for_fast(train_set, train_config: TrainConfig, fast: bool, epochs: int = FAST_EPOCHS):
    """The same code path on fewer images and epochs when `fast`; unchanged otherwise."""
    import dataclasses

    if not fast:
        return train_set, train_config
    return train_set.take(FAST_TRAIN_IMAGES), dataclasses.replace(train_config, epochs=min(epochs, train_config.epochs))


def default_vit_run(data, fast: bool = False, **kwargs):
    """Notebook 03's ViT: the default recipe, run name ``vit_tiny_mnist``. Trained the first time it is asked
    for (by notebook 03 or any later one), loaded afterwards."""
    from .runs import train_or_load

    r = RECIPES["default"]
    train_set, cfg = shrink_for_fast(data.train, r.train, fast)
    return train_or_load("vit_tiny_mnist", r.model, train_set, data.val, cfg, runs_dir=notebook_runs_dir(fast), **kwargs)
