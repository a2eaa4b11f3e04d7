"""What `vitlab train` and `vitlab evaluate` write beside a checkpoint: metrics.json and the report's figures
(made by `vitlab.viz.report`), as files."""

from __future__ import annotations

import json
from pathlib import Path

from ..viz.report import run_report_figures


def save_figures(figs: dict, out: Path, dpi: int = 110) -> list[Path]:
    """Save each figure of {file stem: figure} as ``out/<stem>.png`` and close it; the paths written, in order."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, fig in figs.items():
        written.append(out / f"{stem}.png")
        fig.savefig(written[-1], dpi=dpi)
        plt.close(fig)
    return written


def run_metrics(model, history, result, test_set) -> dict:
    """What metrics.json holds: the split's accuracy, loss and errors, the parameter count and, with a `history`,
    the epochs, the training seconds and the last validation accuracy."""
    metrics = {"split": test_set.name, "test_accuracy": result.accuracy, "test_loss": result.loss,
               "test_errors": result.errors, "test_images": len(result.labels),
               "parameters": sum(p.numel() for p in model.parameters())}
    if history is not None:
        metrics.update(epochs=len(history.epochs.get("epoch", [])),
                       train_seconds=float(sum(history.epochs.get("seconds", []))),
                       val_accuracy=history.last("val_acc"))
    return metrics


def write_run_report(out: Path, model, history, result, test_set) -> None:
    """metrics.json, loss_curves.png (with a history), confusion_matrix.png and misclassified.png (when there are
    errors) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(run_metrics(model, history, result, test_set), indent=2) + "\n")
    save_figures(run_report_figures(out.name, history, result, test_set), out)
