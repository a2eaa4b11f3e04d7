"""Figures shared by the notebooks and the command line.

Every function draws into a new (or given) matplotlib figure and returns it;
nothing is shown or saved here, so callers decide (notebooks display, the CLI
saves PNGs).
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import torch

from .train import EvalResult, History


def _smooth(y: Sequence[float], k: int) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if k <= 1 or len(y) < k:
        return y
    return np.convolve(y, np.ones(k) / k, mode="valid")


def plot_history(history: History, title: str = "Training history", smooth: int = 25) -> matplotlib.figure.Figure:
    """Loss and accuracy per step (smoothed) and per epoch (train vs validation), with the LR under them."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    s, e = history.steps, history.epochs
    steps_per_epoch = max(len(s.get("step", [])) / max(len(e.get("epoch", [])), 1), 1)
    ax = axes[0]
    if s.get("loss"):
        x = np.asarray(s["step"][smooth - 1 :] if len(s["loss"]) >= smooth > 1 else s["step"]) / steps_per_epoch
        ax.plot(x, _smooth(s["loss"], smooth), label=f"train (step, {smooth}-step mean)", alpha=0.7)
    ax.plot(e.get("epoch", []), e.get("train_loss", []), "o-", label="train (epoch mean)")
    ax.plot(e.get("epoch", []), e.get("val_loss", []), "s-", label="validation")
    ax.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    ax.legend()
    ax = axes[1]
    ax.plot(e.get("epoch", []), 100 * np.asarray(e.get("train_acc", [])), "o-", label="train (augmented)")
    ax.plot(e.get("epoch", []), 100 * np.asarray(e.get("val_acc", [])), "s-", label="validation")
    ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    ax.legend()
    ax = axes[2]
    ax.plot(np.asarray(s.get("step", [])) / steps_per_epoch, s.get("lr", []))
    ax.set(title="Learning rate", xlabel="epoch", ylabel="learning rate")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    confusion: np.ndarray, classes: Sequence[str], title: str = "Confusion matrix", ax=None
) -> matplotlib.figure.Figure:
    """Counts, with the diagonal masked in the colour scale so the errors stand out."""
    import seaborn as sns

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 6))
    off = confusion.astype(float).copy()
    np.fill_diagonal(off, np.nan)  # colour by the mistakes; the diagonal dwarfs them otherwise
    sns.heatmap(off, cmap="Reds", cbar=True, ax=ax, xticklabels=classes, yticklabels=classes,
                cbar_kws={"label": "misclassified count"})
    vmax = np.nanmax(off) if np.isfinite(off).any() else 0
    for i in range(len(classes)):
        ax.add_patch(matplotlib.patches.Rectangle((i, i), 1, 1, fill=True, color="#dfe9f5", zorder=0))
        for j in range(len(classes)):
            dark = i != j and vmax > 0 and confusion[i, j] > 0.6 * vmax
            ax.text(j + 0.5, i + 0.5, str(int(confusion[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if dark else "black", fontweight="bold" if i == j else "normal")
    ax.set(title=title, xlabel="predicted", ylabel="true")
    fig.tight_layout()
    return fig


def image_grid(
    images: torch.Tensor,
    titles: Optional[Sequence[str]] = None,
    ncols: int = 10,
    title: str = "",
    cmap: str = "gray_r",
    size: float = 1.3,
) -> matplotlib.figure.Figure:
    """A grid of (N, H, W) or (N, 1, H, W) images with optional per-image titles."""
    images = torch.as_tensor(images).detach().cpu()
    if images.ndim == 4:
        images = images[:, 0]
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].float().numpy(), cmap=cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_misclassified(
    result: EvalResult, images: torch.Tensor, classes: Sequence[str], n: int = 30, ncols: int = 10,
    title: Optional[str] = None,
) -> matplotlib.figure.Figure:
    """The most confident mistakes: each titled 'true → predicted (confidence)'."""
    idx = result.misclassified[:n]
    conf = result.probs[idx, result.preds[idx]]
    titles = [f"{classes[result.labels[i]]}→{classes[result.preds[i]]} ({c:.0%})" for i, c in zip(idx.tolist(), conf.tolist())]
    title = title or f"{len(idx)} most confident of {result.errors} misclassified test images (true→predicted)"
    return image_grid(images[idx], titles, ncols=ncols, title=title)
