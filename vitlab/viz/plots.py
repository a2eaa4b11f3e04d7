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

from ..training.evaluation import EvalResult
from ..training.history import History


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
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
) -> matplotlib.figure.Figure:
    """A grid of (N, H, W) or (N, 1, H, W) images with optional per-image titles; each image scaled to its own
    range unless `vmin` / `vmax` set one scale for all (images to compare)."""
    images = torch.as_tensor(images).detach().cpu()
    if images.ndim == 4:
        images = images[:, 0]
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    row = size + (0.25 if titles is not None else 0)  # each row's images, and room for their titles above them
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, row * nrows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].float().numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
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




# --------------------------------------------------------------------------- positions


def plot_position_similarity(sims, title: str = "Position embedding similarity", label: str = "cosine similarity",
                             limit: Optional[float] = None) -> matplotlib.figure.Figure:
    """The ViT paper's figure: for each patch position (r, c), a small map of its similarity to every position.

    `sims` is one (g, g, g, g) similarity or {name: similarity}, drawn side by side on one diverging colour scale
    centred at 0, from -limit to +limit: by default the largest |similarity| between two different positions in any
    of them, so that their structure fills the scale (a position's similarity to itself, 1, may saturate)."""
    sims = {k: torch.as_tensor(v).float().cpu() for k, v in (sims if isinstance(sims, dict) else {"": sims}).items()}
    g = next(iter(sims.values())).shape[0]
    if limit is None:
        off = torch.cat([s.reshape(g * g, g * g)[~torch.eye(g * g, dtype=torch.bool)] for s in sims.values()])
        limit = float(off.abs().max()) if len(off) and float(off.abs().max()) > 0 else 1.0
    side = min(1.1 * g, 9)
    fig = plt.figure(figsize=(len(sims) * (side + 0.5) + 1.3, side + 0.9), layout="constrained")
    subs = fig.subfigures(1, len(sims) + 1, width_ratios=[side + 0.5] * len(sims) + [1.3])
    for sf, (name, sim) in zip(subs, sims.items()):
        axes = sf.subplots(g, g, squeeze=False)
        for (r, c), ax in np.ndenumerate(axes):
            im = ax.imshow(sim[r, c].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
            ax.set(xticks=[], yticks=[], ylabel=str(r + 1) if c == 0 else "", xlabel=str(c + 1) if r == g - 1 else "")
        sf.supxlabel("patch column", fontsize=9)
        sf.supylabel("patch row", fontsize=9)
        if name:
            sf.suptitle(name)
    fig.colorbar(im, cax=subs[-1].add_axes((0.1, 0.12, 0.25, 0.72)), label=label)
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- attention


def overlay(ax, image: torch.Tensor, heat: Optional[torch.Tensor] = None, title: str = "", alpha: float = 0.55,
            cmap: str = "inferno", vmax: Optional[float] = None, colorbar: bool = False):
    """Draw a digit (H, W) with a heat map (H, W) over it on `ax`; returns the heat map's image (or None)."""
    ax.imshow(torch.as_tensor(image).detach().float().cpu().numpy(), cmap="gray", interpolation="nearest")
    im = None
    if heat is not None:
        h = torch.as_tensor(heat).detach().float().cpu().numpy()
        im = ax.imshow(h, cmap=cmap, alpha=alpha, interpolation="nearest", vmin=0, vmax=vmax if vmax else h.max() or 1)
        if colorbar:
            ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def plot_cls_attention(image: torch.Tensor, cls_maps: torch.Tensor, title: str = "CLS attention per layer and head") -> matplotlib.figure.Figure:
    """A layer x head grid of CLS-token attention maps (L, h, H, W) over one digit (H, W), one shared colour bar."""
    L, h = cls_maps.shape[:2]
    vmax = float(cls_maps.max())
    fig, axes = plt.subplots(L, h, figsize=(1.9 * h + 1.2, 1.9 * L + 0.6), squeeze=False)
    im = None
    for i in range(L):
        for j in range(h):
            im = overlay(axes[i, j], image, cls_maps[i, j], vmax=vmax)
            if i == 0:
                axes[i, j].set_title(f"head {j}", fontsize=9)
            if j == 0:
                axes[i, j].set_ylabel(f"layer {i}", fontsize=9)
    fig.suptitle(title)
    fig.colorbar(im, ax=axes, label="attention weight", shrink=0.8)
    return fig


def plot_attention_distance(dist: torch.Tensor, title: str = "Mean attention distance per head",
                            image_size: int = 28) -> matplotlib.figure.Figure:
    """The ViT paper's scatter: each head's mean attention distance (pixels) against its depth. dist: (L, h)."""
    d = torch.as_tensor(dist).cpu().numpy()
    L, h = d.shape
    fig, ax = plt.subplots(figsize=(6, 4))
    for j in range(h):
        ax.scatter(np.arange(L), d[:, j], label=f"head {j}", s=40)
    ax.plot(np.arange(L), d.mean(1), "k--", lw=1, label="mean over heads")
    ax.set(title=title, xlabel="layer (network depth)", ylabel="mean attention distance (pixels)",
           xticks=np.arange(L), ylim=(0, image_size * 0.75))
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- open set


def plot_score_histograms(scores: dict, threshold: Optional[float] = None, title: str = "Known-class score",
                          xlabel: str = "score (higher = more likely known)", bins: int = 50, ax=None):
    """Overlaid density histograms of a score for several input groups ({label: 1-D array}), with the threshold."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 4))
    arrays = {k: np.asarray(v, dtype=float) for k, v in scores.items()}
    lo = min(a.min() for a in arrays.values())
    hi = max(a.max() for a in arrays.values())
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    for label, a in arrays.items():
        ax.hist(a, bins=edges, density=True, alpha=0.45, label=f"{label} (n={len(a):,})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label="threshold (95% of knowns kept)")
    ax.set(title=title, xlabel=xlabel, ylabel="density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_grouped_bars(values: dict, title: str = "", ylabel: str = "AUROC", ylim: Optional[tuple] = None, ax=None):
    """Grouped bars, {group: {series: value}} (e.g. {method: {"leaky": AUROC, "clean": AUROC}}): one colour per
    series, the same in every group, each bar labelled with its value. `ylim` (default: from the values up to 1)
    lets two panels share a scale."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 4))
    series = list(dict.fromkeys(k for v in values.values() for k in v))
    width = 0.8 / len(series)
    colors = plt.get_cmap("tab10").colors
    for j, name in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i, g in enumerate(values) if name in values[g]]
        ys = [values[g][name] for g in values if name in values[g]]
        bars = ax.bar(xs, ys, width=width * 0.95, color=colors[j % 10], label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1, rotation=90)
    lo = min(v for g in values.values() for v in g.values())
    ax.set(title=title, ylabel=ylabel, ylim=ylim or (max(0.0, np.floor(lo * 10) / 10 - 0.05), 1.06))
    mark_cut_axis(ax)
    ax.set_xticks(range(len(values)), list(values), rotation=20, ha="right", fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def mark_cut_axis(ax) -> bool:
    """Where a bar chart's y-axis starts above 0, draw the usual break mark (two short slashes) across the foot of
    the y-axis, so that nobody reads the bars' heights as ratios; True when it drew one."""
    bottom = ax.get_ylim()[0]
    if bottom <= 0:
        return False
    for dy in (-0.012, 0.012):  # axes coordinates: two parallel slashes just above the x-axis
        ax.plot([-0.015, 0.015], [0.06 + dy - 0.012, 0.06 + dy + 0.012], transform=ax.transAxes, color="k", lw=1,
                clip_on=False, gid="axis-cut")
    return True


def plot_reliability(cal, title: str = "Reliability diagram", ax=None):
    """Accuracy against confidence per bin (bars) with the diagonal of perfect calibration; ECE in the title."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.6, 4.4))
    centers = (cal.bin_edges[:-1] + cal.bin_edges[1:]) / 2
    width = np.diff(cal.bin_edges)
    ok = cal.bin_counts > 0
    ax.bar(centers[ok], cal.bin_accuracy[ok], width=width[ok] * 0.95, color="#4c72b0", edgecolor="k", lw=0.4,
           label="accuracy")
    ax.bar(centers[ok], (cal.bin_confidence - cal.bin_accuracy)[ok], bottom=cal.bin_accuracy[ok],
           width=width[ok] * 0.95, color="#dd8452", alpha=0.5, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(title=f"{title}\nECE = {100 * cal.ece:.2f}%", xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- feature maps


def plot_embedding(coords: np.ndarray, labels, names: Optional[Sequence[str]] = None, title: str = "UMAP",
                   ax=None, s: float = 2.0, colors: Optional[Sequence] = None, legend: bool = True):
    """A 2-D map (UMAP, PCA, ...) coloured by group, with a legend naming each group and its size."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 6))
    coords, labels = np.asarray(coords), np.asarray(labels)
    groups = np.unique(labels)
    palette = colors if colors is not None else plt.get_cmap("tab10" if len(groups) <= 10 else "tab20").colors
    for i, g in enumerate(groups):
        pts = coords[labels == g]
        name = names[int(g)] if names is not None else str(g)
        ax.scatter(pts[:, 0], pts[:, 1], s=s, color=palette[i % len(palette)], label=f"{name} ({len(pts):,})",
                   alpha=0.7, linewidths=0, rasterized=True)
    ax.set(title=title, xlabel="UMAP 1", ylabel="UMAP 2", xticks=[], yticks=[])
    if legend:
        ax.legend(markerscale=6 / max(s, 0.5) * 2, fontsize=7, loc="best", framealpha=0.8)
    return fig
