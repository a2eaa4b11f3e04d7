"""Notebook 09: the masked-autoencoder pre-training run, and few-label fine-tuning from it and from scratch.

Runs: ``09_mae`` (``09_mae_r<percent>`` for another mask ratio, ``..._e<epochs>`` for another length);
``09_ft<n>_mae`` / ``09_ft<n>_scratch`` (``..._s<seed>`` for seeds other than 0)."""

from __future__ import annotations

from typing import Optional

from ..data.augment import Augment
from ..models import MAEConfig
from ..training.config import TrainConfig
from ..training.spec import DataSpec, Fast, Init, Part, RunSpec

MAE_PRETRAIN_EPOCHS = 30  # the encoder sees 5 of 17 tokens, so an epoch costs far less than a classifier's


def mae_pretrain_config(epochs: Optional[int] = None) -> TrainConfig:
    """MAE pre-training recipe: AdamW, cosine after a 2-epoch warm-up, the default recipe's light augmentation."""
    return TrainConfig(epochs=epochs or MAE_PRETRAIN_EPOCHS, batch_size=256, lr=1.5e-3, weight_decay=0.05,
                       warmup_epochs=2.0, schedule="cosine", label_smoothing=0.0, grad_clip=1.0,
                       augment=Augment(rotation=5.0, scale=0.05, translate=1.0))


PRETRAIN_FAST = Fast(images=4000, epochs=2, train=(("warmup_epochs", 1.0),))  # FAST: 4,000 images, 2 epochs, 1 of warm-up


def mae_pretrain_spec(mask_ratio: float = 0.75, epochs: Optional[int] = None) -> RunSpec:
    """Notebook 09's MAE (vitlab.models.MAE, default MAEConfig) pre-trained on the training images WITHOUT labels."""
    name = "09_mae" + ("" if mask_ratio == 0.75 else f"_r{round(100 * mask_ratio)}") + ("" if epochs is None else f"_e{epochs}")
    return RunSpec(name, MAEConfig(mask_ratio=mask_ratio), mae_pretrain_config(epochs), objective=Part.of("mae"),
                   fast=PRETRAIN_FAST)


MAE_PRETRAIN = mae_pretrain_spec()


def mae_finetune_config(n_labels: int, seed: int = 0) -> TrainConfig:
    """Few-label recipe (the same for pre-trained and from-scratch models): about 400-500 steps with augmentation;
    `seed` draws the order and the augmentation."""
    batch = min(100, n_labels // 2)
    steps_per_epoch = n_labels // batch
    epochs = max(1, round((500 if n_labels >= 1000 else 400) / steps_per_epoch))
    return TrainConfig(epochs=epochs, batch_size=batch, lr=1e-3, weight_decay=0.05,
                       warmup_epochs=max(0.1 * epochs, 1.0), schedule="cosine", label_smoothing=0.1, grad_clip=1.0,
                       augment=Augment(rotation=10.0, scale=0.1, translate=2.0), seed=seed)


FINETUNE_FAST = Fast(images=None, epochs=2, train=(("warmup_epochs", 0.5),))  # FAST: the same images, 2 epochs


def few_labels(n_labels: int, seed: int = 0) -> DataSpec:
    """`n_labels` labelled training images, as many of each class, drawn by `seed`; no validation."""
    return DataSpec(train=(Part.of("balanced", n=n_labels, seed=seed),), val=None)


def mae_finetune_spec(n_labels: int, pretrained: bool = True, seed: int = 0,
                      mae: RunSpec = MAE_PRETRAIN) -> RunSpec:
    """Fine-tune the whole ViT on `n_labels` labelled training images: from the MAE encoder (`pretrained`) or from
    scratch (same model, recipe and images).

    `seed` draws everything of one repetition: which labelled images, the weights that are not copied from the MAE
    (the fresh head; every weight from scratch), the order and the augmentation. The MAE is the one pre-trained run.
    """
    name = f"09_ft{n_labels}_{'mae' if pretrained else 'scratch'}" + (f"_s{seed}" if seed else "")
    return RunSpec(name, MAEConfig().encoder, mae_finetune_config(n_labels, seed), few_labels(n_labels, seed),
                   init=Init(mae, take="encoder", seed=seed) if pretrained else None, fast=FINETUNE_FAST)
