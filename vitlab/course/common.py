"""What every notebook shares: the FAST (CI) sizes, where runs are kept, and notebook 03's two models,
which later notebooks load rather than train again."""

from __future__ import annotations

import dataclasses

from ..models import CNNConfig
from ..training.config import TrainConfig
from ..training.recipes import RECIPES
from ..training.runs import default_runs_dir, train_or_load

FAST_TRAIN_IMAGES = 4000  # FAST mode (CI): train on this many images ...
FAST_EPOCHS = 2  # ... for this many epochs
# ... except notebook 03's ViT, which later notebooks reuse (the drawing pad reads digits with it): the default
# recipe's model costs a third of the FLOPs an image of the previous one, so it gets 10 epochs for under twice the
# old FAST cost, and reads the pad's drawn digits right.
DEFAULT_FAST_EPOCHS = 10


def notebook_runs_dir(fast: bool):
    """Where the notebooks keep their runs: ``runs/``, or ``runs/fast/`` for FAST (CI) runs, so a quick
    check never replaces or reuses the real models."""
    return default_runs_dir() / "fast" if fast else default_runs_dir()


def shrink_for_fast(train_set, train_config: TrainConfig, fast: bool, epochs: int = FAST_EPOCHS):
    """The same code path on fewer images and epochs when `fast`; unchanged otherwise."""
    if not fast:
        return train_set, train_config
    return train_set.take(FAST_TRAIN_IMAGES), dataclasses.replace(train_config, epochs=min(epochs, train_config.epochs))


def default_vit_run(data, fast: bool = False, **kwargs):
    """Notebook 03's ViT: the default recipe, run name ``vit_default`` (as `vitlab train` names it). Trained the
    first time it is asked for (by notebook 03 or any later one), loaded afterwards."""
    r = RECIPES["default"]
    train_set, cfg = shrink_for_fast(data.train, r.train, fast, epochs=DEFAULT_FAST_EPOCHS)
    return train_or_load("vit_default", r.model, train_set, data.val, cfg, runs_dir=notebook_runs_dir(fast), **kwargs)


CNN_BASELINE_EPOCHS = 6  # notebook 03's CNN baseline trains this many epochs with the default recipe (FAST: 2)


def cnn_baseline_run(data, fast: bool = False, **kwargs):
    """Notebook 03's CNN baseline (run ``cnn_baseline``): the default recipe's training, CNN_BASELINE_EPOCHS epochs
    (2 in FAST)."""
    r = RECIPES["default"]
    train_set, cfg = shrink_for_fast(data.train, r.train, fast)
    cfg = dataclasses.replace(cfg, epochs=2 if fast else CNN_BASELINE_EPOCHS)
    return train_or_load("cnn_baseline", CNNConfig(), train_set, data.val, cfg, runs_dir=notebook_runs_dir(fast), **kwargs)
