"""Accuracy, loss, confusion matrix, classification report and the most confident mistakes of a classifier."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import ImageSet
from .inference import predict_logits


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

    logits = predict_logits(model, data, batch_size, device)
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
