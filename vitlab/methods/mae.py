"""Masked-autoencoder pre-training as a method: the Trainer objective, the encoder taken out as a classifier,
and the reconstruction loss over a dataset. The model itself is `vitlab.models.mae.MAE`."""

from __future__ import annotations

import copy
from typing import Optional

import torch

from ..models import MAE, ViT
from ..models.mae import check_mask_ratio
from ..training.checkpoints import model_or_checkpoint
from ..training.inference import map_batches
from ..training.objectives import Objective


class MAEObjective(Objective):
    """Pre-train an `MAE` with the ordinary Trainer: loss = MAE reconstruction loss, no logits (labels unused).

    `mask_ratio=None` uses the model's own `cfg.mask_ratio`.
    """

    def __init__(self, mask_ratio: Optional[float] = None):
        if mask_ratio is not None:
            check_mask_ratio(mask_ratio)
        self.mask_ratio = mask_ratio

    def __call__(self, model, x, y):
        if not isinstance(model, MAE):
            raise TypeError(f"MAEObjective trains an MAE, got a {type(model).__name__}")
        loss, _, _ = model(x, self.mask_ratio)
        return loss, None

    def to_dict(self) -> dict:
        return {"name": "MAEObjective", "mask_ratio": self.mask_ratio}


def encoder_from_mae(source, num_classes: Optional[int] = None) -> ViT:
    """The MAE's encoder as a stand-alone classifier `ViT` (eval mode), ready for `train_or_load(init=...)`.

    `source` is an `MAE`, or the path of an MAE checkpoint (a run's ``checkpoint.pt``). Every encoder weight is
    copied; the classification head is freshly initialised when `num_classes` is given (MAE never trains it),
    otherwise copied as it is.
    """
    model = model_or_checkpoint(source, MAE, "an 'mae'", "an MAE", "encoder_from_mae")
    vit = copy.deepcopy(model.encoder).eval()  # a ViT already: the MAE runs it through its named methods
    if num_classes is not None:
        vit.reset_classifier(num_classes)
    return vit


def reconstruction_loss(mae: MAE, data, mask_ratio: float, batch_size: int = 1000, seed: int = 0) -> float:
    """Mean masked-patch MSE of `mae` on `data` (an ImageSet) at `mask_ratio`, with seeded masks."""
    g = torch.Generator().manual_seed(seed)
    cpu = next(mae.parameters()).device.type == "cpu"

    def batch_loss(model, x, y):  # (1, 2): the batch's mean loss and its size, to weigh the batches
        loss, _, _ = model(x, mask_ratio, generator=g if cpu else None)
        return torch.stack([loss * len(x), torch.tensor(float(len(x)), device=x.device)])[None]

    sums = map_batches(mae, data, batch_loss, batch_size).sum(0)  # (2,)
    return float(sums[0] / sums[1])
