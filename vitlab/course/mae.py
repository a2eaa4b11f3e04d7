"""Notebook 09: the masked-autoencoder pre-training run, and few-label fine-tuning from it and from scratch."""

from __future__ import annotations

import torch

from ..data.augment import Augment
from ..methods.mae import MAEObjective, encoder_from_mae
from ..models import MAEConfig
from ..training.config import TrainConfig
from ..training.runs import train_or_load
from .common import FAST_EPOCHS, FAST_TRAIN_IMAGES, notebook_runs_dir

MAE_PRETRAIN_EPOCHS = 30  # full mode; about 7 minutes on the project's 2-core CPU (the encoder sees 5 of 17 tokens)


def mae_pretrain_config(fast: bool = False, epochs: "int | None" = None) -> TrainConfig:
    """MAE pre-training recipe: AdamW, cosine after a 2-epoch warm-up, the default recipe's light augmentation."""
    return TrainConfig(epochs=epochs or (FAST_EPOCHS if fast else MAE_PRETRAIN_EPOCHS), batch_size=256, lr=1.5e-3,
                       weight_decay=0.05, warmup_epochs=1.0 if fast else 2.0, schedule="cosine", label_smoothing=0.0,
                       grad_clip=1.0, augment=Augment(rotation=5.0, scale=0.05, translate=1.0))


def mae_pretrain_run(data, fast: bool = False, mask_ratio: float = 0.75, epochs: "int | None" = None, **kw):
    """Notebook 09's MAE (vitlab.models.MAE, default MAEConfig) pre-trained on the training images WITHOUT labels.

    Run ``09_mae`` (``09_mae_r<percent>`` for another mask ratio, ``..._e<epochs>`` for another length); trained
    the first time, loaded afterwards. FAST: 4,000 images, 2 epochs.
    """
    cfg = MAEConfig(mask_ratio=mask_ratio)
    tc = mae_pretrain_config(fast, epochs)
    train_set = data.train.take(FAST_TRAIN_IMAGES) if fast else data.train
    name = "09_mae" + ("" if mask_ratio == 0.75 else f"_r{round(100 * mask_ratio)}") + ("" if epochs is None else f"_e{epochs}")
    for k, v in (("tensorboard", False), ("progress", False)):
        kw.setdefault(k, v)
    return train_or_load(name, cfg, train_set, data.val, tc, runs_dir=notebook_runs_dir(fast), objective=MAEObjective(), **kw)


def labelled_subset(train_set, n: int, seed: int = 0):
    """A class-balanced, seeded subset of `n` labelled images (n // classes per class)."""
    classes = len(train_set.info.classes)
    if n % classes:
        raise ValueError(f"n must be a multiple of the {classes} classes, got {n}")
    g = torch.Generator().manual_seed(seed)
    idx = [torch.nonzero(train_set.labels == c).flatten() for c in range(classes)]
    idx = torch.cat([i[torch.randperm(len(i), generator=g)[: n // classes]] for i in idx])
    return train_set.subset(idx.sort().values)


def mae_finetune_config(n_labels: int, fast: bool = False, seed: int = 0) -> TrainConfig:
    """Few-label recipe (the same for pre-trained and from-scratch models): about 400-500 steps with augmentation;
    `seed` draws the order and the augmentation."""
    batch = min(100, n_labels // 2)
    steps_per_epoch = n_labels // batch
    epochs = max(1, round((500 if n_labels >= 1000 else 400) / steps_per_epoch))
    return TrainConfig(epochs=2 if fast else epochs, batch_size=batch, lr=1e-3, weight_decay=0.05,
                       warmup_epochs=max(0.1 * epochs, 1.0) if not fast else 0.5, schedule="cosine",
                       label_smoothing=0.1, grad_clip=1.0, augment=Augment(rotation=10.0, scale=0.1, translate=2.0),
                       seed=seed)


def mae_finetune_run(data, n_labels: int, pretrained: bool = True, fast: bool = False, mae=None, seed: int = 0, **kw):
    """Fine-tune the whole ViT on `n_labels` labelled training images: from the MAE encoder (`pretrained`) or from
    scratch (same model, recipe and images). Run ``09_ft<n>_mae`` / ``09_ft<n>_scratch``.

    `seed` (run name suffix ``_s<seed>`` for seeds other than 0) draws everything of one repetition: which labelled
    images (`labelled_subset`), the weights that are not copied from the MAE (the fresh head; every weight from
    scratch), the order and the augmentation. The MAE itself is the one pre-trained run (`mae`).
    """
    init = None
    if pretrained:
        mae = mae if mae is not None else mae_pretrain_run(data, fast, verbose=False).model
        with torch.random.fork_rng():  # the fresh head from the seed, without moving the caller's generator
            torch.manual_seed(seed)
            init = encoder_from_mae(mae, num_classes=10)
    cfg = MAEConfig().encoder
    for k, v in (("tensorboard", False), ("progress", False), ("verbose", False)):
        kw.setdefault(k, v)
    name = f"09_ft{n_labels}_{'mae' if pretrained else 'scratch'}" + (f"_s{seed}" if seed else "")
    return train_or_load(name, cfg, labelled_subset(data.train, n_labels, seed=seed), None,
                         mae_finetune_config(n_labels, fast, seed=seed), runs_dir=notebook_runs_dir(fast), init=init, **kw)
