"""The figures of a run's report, the ones `vitlab train` and `vitlab evaluate` write beside a checkpoint. Made
here, saved by the caller (`vitlab.apps.report`), as every figure in viz."""

from __future__ import annotations

import matplotlib.figure

from .plots import plot_confusion_matrix, plot_history, plot_misclassified


def run_report_figures(name: str, history, result, test_set) -> dict[str, matplotlib.figure.Figure]:
    """{file stem: figure}: "loss_curves" (with a `history`), "confusion_matrix" of `result` on `test_set`, and
    "misclassified" (when `result` has errors). `name` (the run's) titles them."""
    classes = list(test_set.info.classes)
    figs = {}
    if history is not None:
        figs["loss_curves"] = plot_history(history, title=f"{name}: training history")
    figs["confusion_matrix"] = plot_confusion_matrix(result.confusion, classes,
                                                     title=f"{name}: {test_set.name} confusion matrix")
    if result.errors:
        figs["misclassified"] = plot_misclassified(result, test_set.images, classes)
    return figs
