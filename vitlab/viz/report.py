"""What `vitlab train` and `vitlab evaluate` write beside a checkpoint: the figures and metrics.json of a run."""

from __future__ import annotations

import json
from pathlib import Path

from .plots import plot_confusion_matrix, plot_history, plot_misclassified


def write_run_report(out: Path, model, history, result, test_set) -> None:
    """metrics.json, loss_curves.png (with a history), confusion_matrix.png and misclassified.png in `out`."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    classes = list(test_set.info.classes)
    metrics = {"split": test_set.name, "test_accuracy": result.accuracy, "test_loss": result.loss,
               "test_errors": result.errors, "test_images": len(result.labels),
               "parameters": sum(p.numel() for p in model.parameters())}
    if history is not None:
        metrics.update(epochs=len(history.epochs.get("epoch", [])),
                       train_seconds=float(sum(history.epochs.get("seconds", []))),
                       val_accuracy=history.last("val_acc"))
        fig = plot_history(history, title=f"{out.name}: training history")
        fig.savefig(out / "loss_curves.png", dpi=110)
        plt.close(fig)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    fig = plot_confusion_matrix(result.confusion, classes, title=f"{out.name}: {test_set.name} confusion matrix")
    fig.savefig(out / "confusion_matrix.png", dpi=110)
    plt.close(fig)
    if result.errors:
        fig = plot_misclassified(result, test_set.images, classes)
        fig.savefig(out / "misclassified.png", dpi=110)
        plt.close(fig)
