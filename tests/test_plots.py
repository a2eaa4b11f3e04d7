import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch

from vitlab.data import DATASETS
from vitlab.plots import image_grid, plot_confusion_matrix, plot_history, plot_misclassified
from vitlab.train import EvalResult, History


def _history():
    h = History()
    for s in range(40):
        for k, v in (("step", s), ("epoch", s // 20), ("loss", 2.0 / (s + 1)), ("acc", s / 40), ("lr", 1e-3), ("grad_norm", 1.0)):
            h.steps[k].append(v)
    for e in (1, 2):
        for k, v in (("epoch", e), ("train_loss", 1 / e), ("train_acc", 0.5 * e), ("val_loss", 1 / e), ("val_acc", 0.4 * e), ("lr", 1e-3), ("seconds", 1.0)):
            h.epochs[k].append(v)
    return h


def test_history_plot_has_titled_labelled_axes():
    fig = plot_history(_history())
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(fig.axes[0].lines) == 3


def test_confusion_plot_has_colorbar():
    cm = np.array([[5, 1], [2, 7]])
    fig = plot_confusion_matrix(cm, ["a", "b"])
    assert len(fig.axes) == 2  # heatmap + colour bar
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["5", "1", "2", "7"]


def test_grid_and_misclassified():
    imgs = torch.rand(6, 28, 28)
    fig = image_grid(imgs, [str(i) for i in range(6)], ncols=4, title="t")
    assert sum(1 for ax in fig.axes if ax.images) == 6
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    r = EvalResult(accuracy=1 / 3, loss=1.0, confusion=np.eye(2), report="", report_dict={}, probs=probs,
                   preds=torch.tensor([0, 1, 0]), labels=torch.tensor([1, 1, 1]), misclassified=torch.tensor([0, 2]))
    fig = plot_misclassified(r, imgs[:3], DATASETS["mnist"].classes)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["1→0 (90%)", "1→0 (60%)"]
