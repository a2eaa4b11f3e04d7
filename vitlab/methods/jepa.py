"""I-JEPA pre-training as a method: the Trainer objective, the EMA update and the collapse monitor (two Trainer
callbacks, so the Trainer stays model-agnostic), and an encoder taken out as a classifier ViT. The model itself is
`vitlab.models.jepa.JEPA`."""

from __future__ import annotations

import copy
from typing import Optional

import torch

from ..analysis.embedding import knn_accuracy
from ..analysis.features import extract_features
from ..data import ImageSet
from ..models import ViT
from ..models.jepa import JEPA
from ..training.checkpoints import model_or_checkpoint
from ..training.inference import map_batches
from ..training.objectives import Objective

ENCODERS = ("context", "target")


class JEPAObjective(Objective):
    """Pre-train a `JEPA` with the ordinary Trainer: loss = the predictor's error on the target representations, no
    logits (labels unused). Masks are drawn from the global RNG, which the Trainer seeds per epoch."""

    def __call__(self, model, x, y):
        if not isinstance(model, JEPA):
            raise TypeError(f"JEPAObjective trains a JEPA, got a {type(model).__name__}")
        return model(x), None

    def to_dict(self) -> dict:
        return {"name": "JEPAObjective"}


def ema_momentum(step: int, total_steps: int, start: float = 0.996, end: float = 1.0) -> float:
    """I-JEPA's schedule: the target encoder's momentum rises linearly from `start` to `end` over training."""
    return start + (end - start) * min(step, total_steps) / max(total_steps, 1)


class EMAUpdate:
    """Trainer callback (on_step_end): after every optimizer step, move the target encoder towards the context
    encoder with the scheduled momentum. A pure function of the step, so a resumed run continues exactly."""

    def __init__(self, start: float = 0.996, end: float = 1.0):
        if not 0 <= start <= end <= 1:
            raise ValueError(f"EMA momentum must rise within [0, 1]: start {start}, end {end}")
        self.start, self.end = start, end

    def __call__(self, trainer) -> None:
        trainer.model.update_target(ema_momentum(trainer.step, trainer.total_steps, self.start, self.end))


class CollapseMonitor:
    """Trainer callback (on_epoch_end): is the representation still alive?

    Features = the context encoder's mean patch token of whole images. Logged in the History every epoch:
    ``emb_std`` (the per-dimension standard deviation over the `probe` images, averaged over dimensions: 0 when every
    image maps to the same vector), ``emb_std_min`` (the least varying dimension) and ``knn_acc`` (k-NN accuracy of the
    probe images among the `reference` images; labels are read here only, never by the training). The checkpoint is
    written again afterwards, so the saved History holds them too.
    """

    def __init__(self, reference: ImageSet, probe: ImageSet, k: int = 5):
        self.reference, self.probe, self.k = reference, probe, k

    def measure(self, model: JEPA) -> dict:
        ref = extract_features(model.encoder, self.reference, layer="mean")  # (R, D)
        probe = extract_features(model.encoder, self.probe, layer="mean")  # (P, D)
        std = probe.std(axis=0)  # (D,)
        knn = knn_accuracy(ref, self.reference.labels.numpy(), probe, self.probe.labels.numpy(), k=self.k)
        return {"emb_std": float(std.mean()), "emb_std_min": float(std.min()), "knn_acc": knn}

    def __call__(self, trainer) -> None:
        for key, value in self.measure(trainer.model).items():
            trainer.history.epochs[key].append(value)
        if trainer.checkpoint_path is not None:
            trainer.save()


def jepa_callbacks(reference: ImageSet, probe: ImageSet, ema: tuple = (0.996, 1.0)) -> dict:
    """The callbacks a JEPA run needs, for `train_or_load(callbacks=...)`: the EMA update and the collapse monitor."""
    return {"on_step_end": [EMAUpdate(*ema)], "on_epoch_end": [CollapseMonitor(reference, probe)]}


def encoder_from_jepa(source, num_classes: Optional[int] = None, which: str = "context") -> ViT:
    """One of the JEPA's encoders as a stand-alone classifier `ViT` (eval mode), ready for `train_or_load(init=...)`
    and for `extract_features`.

    `source` is a `JEPA` or the path of a JEPA checkpoint. `which`: "context" (the encoder the optimizer trained) or
    "target" (its moving average; the context encoder when the run had no EMA teacher). The head is freshly
    initialised when `num_classes` is given (JEPA never trains it).
    """
    if which not in ENCODERS:
        raise ValueError(f"which must be one of {ENCODERS}, got {which!r}")
    model = model_or_checkpoint(source, JEPA, "a 'jepa'", "a JEPA", "encoder_from_jepa")
    vit = copy.deepcopy(model.encoder if which == "context" else model.teacher()).eval()
    vit.requires_grad_(True)  # the target encoder was frozen for pre-training; a classifier trains every weight
    if num_classes is not None:
        vit.reset_classifier(num_classes)
    return vit


def prediction_loss(jepa: JEPA, data: ImageSet, masking: Optional[str] = None, batch_size: int = 500,
                    seed: int = 0) -> float:
    """Mean JEPA loss of `jepa` on `data` (an ImageSet) with seeded masks of `masking` (default: the model's own)."""
    g = torch.Generator().manual_seed(seed)

    def batch_loss(model, x, y):  # (1, 2): the batch's mean loss and its size, to weigh the batches
        loss = model(x, model.sample_masks(len(x), g, masking))
        return torch.stack([loss * len(x), torch.tensor(float(len(x)), device=x.device)])[None]

    sums = map_batches(jepa, data, batch_loss, batch_size).sum(0)  # (2,)
    return float(sums[0] / sums[1])
