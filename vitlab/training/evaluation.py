"""Accuracy, loss, confusion matrix, classification report and the most confident mistakes of a classifier."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import DATASETS, DataError, ImageSet, load_dataset
from .inference import check_finite, predict_logits


@dataclass
class EvalResult:
    accuracy: float  # fraction correct
    loss: float  # mean cross-entropy (no label smoothing)
    confusion: np.ndarray  # (classes, classes): rows = true, columns = predicted
    report: str  # scikit-learn classification report
    report_dict: dict  # the same, as a dict
    probs: torch.Tensor  # (N, classes) softmax probabilities
    preds: torch.Tensor  # (N,) predicted class
    labels: torch.Tensor  # (N,) true class
    misclassified: torch.Tensor  # indices into the evaluated set, most confident mistakes first

    @property
    def errors(self) -> int:
        return int(len(self.misclassified))

    def summary(self) -> str:
        n = len(self.labels)
        return f"accuracy {100 * self.accuracy:.2f}% ({n - self.errors}/{n}), {self.errors} errors, loss {self.loss:.4f}"


def evaluate(model: nn.Module, data: ImageSet, batch_size: int = 1000, device=None) -> EvalResult:
    """Accuracy, loss, confusion matrix, classification report and the misclassified examples."""
    from sklearn.metrics import classification_report, confusion_matrix

    logits = check_finite(predict_logits(model, data, batch_size, device))
    labels = data.labels
    probs = logits.softmax(dim=1)
    conf, preds = probs.max(dim=1)
    wrong = torch.nonzero(preds != labels).flatten()
    wrong = wrong[conf[wrong].argsort(descending=True)]
    classes = list(range(logits.shape[1]))
    names = list(data.info.classes) if len(data.info.classes) == len(classes) else [str(c) for c in classes]
    kw = dict(labels=classes, target_names=names, digits=4, zero_division=0)
    return EvalResult(
        accuracy=float((preds == labels).float().mean()),
        loss=float(F.cross_entropy(logits, labels)),
        confusion=confusion_matrix(labels.numpy(), preds.numpy(), labels=classes),
        report=classification_report(labels.numpy(), preds.numpy(), **kw),
        report_dict=classification_report(labels.numpy(), preds.numpy(), output_dict=True, **kw),
        probs=probs,
        preds=preds,
        labels=labels,
        misclassified=wrong,
    )


def evaluation_split(ckpt: dict, path, split_name: str = "test") -> tuple[ImageSet, list]:
    """The split a checkpoint is judged on (or trained on: `split_name="train"`): its recorded dataset, validation
    split and classes, relabelled as it was trained; or a one-line `DataError` when this machine's data does not
    match them. Returns the split and the dataset's class names the model never had (left out)."""
    dataset = ckpt.get("dataset") or "mnist"
    if dataset not in DATASETS:
        raise DataError(f"{path}: trained on an unknown dataset {dataset!r}")
    rec = ckpt.get("data_split") or {}
    data = load_dataset(dataset)  # the test set is the same whatever the split; the validation set is not:
    if split_name not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split_name!r}")
    if split_name in ("train", "val"):
        if not rec:
            raise DataError(f"{path}: records no validation split (written by an older vitlab), so its validation "
                            f"images are unknown; use --split test")
        pool = len(data.train) + len(data.val)
        if rec.get("pool") != pool:
            raise DataError(f"{path}: its validation split was drawn from {rec.get('pool')} training images "
                            f"({rec.get('source')}), but this machine has {pool} ({data.source}); use --split test")
        data = load_dataset(dataset, val_size=rec["val_size"], seed=rec["seed"])  # the model's own split
    eval_set = {"train": data.train, "val": data.val, "test": data.test}[split_name]
    classes, label_map, left_out = list(ckpt["classes"]), ckpt.get("label_map"), []
    if label_map is not None:
        left_out = [data.info.classes[c] for c, m in enumerate(label_map) if m < 0]
        eval_set = eval_set.relabel({c: m for c, m in enumerate(label_map) if m >= 0}, classes)
    elif classes != list(data.info.classes):
        raise DataError(f"{path}: the model's classes {classes} are not {dataset}'s {list(data.info.classes)}, "
                        f"and the checkpoint records no mapping between them")
    return eval_set, left_out
