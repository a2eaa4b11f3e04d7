"""Figures of gradient flow: per-layer gradient norms over training (one run or several on one scale), per-group
snapshots at chosen steps, and runs compared step by step. Like `plots`, each returns its figure and shows nothing."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from ..training.history import History
from .plots import _smooth


def _grad_flow_image(ax, history: History, layers=None, max_steps=None, vmin=None, vmax=None):
    """Draw the layer x step heatmap of log10 gradient norms on `ax`; returns the image."""
    norms = history.layer_grad_norms
    layers = list(layers or norms.keys())
    if not layers:
        raise ValueError("the history holds no per-layer gradient norms")
    n = min(len(norms[k]) for k in layers)
    n = min(n, max_steps) if max_steps else n
    m = np.log10(np.maximum(np.array([norms[k][:n] for k in layers], dtype=float), 1e-12))  # (layers, steps)
    im = ax.imshow(m, aspect="auto", cmap="magma", interpolation="nearest", vmin=vmin, vmax=vmax)
    ax.set_yticks(range(len(layers)), layers)
    ax.set(xlabel="optimizer step", ylabel="layer (input at the top)")
    return im


def plot_grad_flow(
    history: History, title: str = "Gradient flow: per-layer gradient norm", layers: Optional[Sequence[str]] = None,
    max_steps: Optional[int] = None, ax=None,
) -> matplotlib.figure.Figure:
    """Layer x step heatmap of log10 gradient norms from `history.layer_grad_norms`, input layers at the top."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(12, 0.35 * len(layers or history.layer_grad_norms) + 1.8))
    im = _grad_flow_image(ax, history, layers, max_steps)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="log10 gradient norm", pad=0.01)
    fig.tight_layout()
    return fig


def plot_grad_flows(histories: dict, title: str = "Gradient flow: per-layer gradient norm") -> matplotlib.figure.Figure:
    """Several runs' gradient-flow heatmaps ({label: History}) side by side on one colour scale (the range of all of
    them), with one colour bar, so that the same colour is the same norm in every panel."""
    logs = [np.log10(np.maximum(np.concatenate([np.asarray(v, dtype=float) for v in h.layer_grad_norms.values()]),
                                1e-12)) for h in histories.values()]
    rows = max(len(h.layer_grad_norms) for h in histories.values())
    fig, axes = plt.subplots(1, len(histories), figsize=(7 * len(histories) + 1, 0.3 * rows + 1.8), squeeze=False,
                             layout="constrained")
    for ax, (label, h) in zip(axes[0], histories.items()):
        im = _grad_flow_image(ax, h, vmin=min(v.min() for v in logs), vmax=max(v.max() for v in logs))
        ax.set_title(label)
    fig.colorbar(im, ax=axes[0], label="log10 gradient norm (one scale for all panels)", pad=0.01)
    fig.suptitle(title)
    return fig


def group_grad_snapshot(snapshot: dict, group=None) -> dict:
    """Collapse a per-parameter grad snapshot ({name: [mean|g|, max|g|]}) into groups by `group(name)`
    (default: the module, i.e. the name without '.weight'/'.bias'): {group: (mean |g|, max |g|)}."""
    group = group or (lambda name: name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name)
    out: dict = {}
    for name, (mean, mx) in snapshot["params"].items():
        g = group(name)
        m0, x0, c0 = out.get(g, (0.0, 0.0, 0))
        out[g] = (m0 + mean, max(x0, mx), c0 + 1)
    return {g: (s / c, mx) for g, (s, mx, c) in out.items()}


def plot_grad_snapshots(
    history: History, steps: Optional[Sequence[int]] = None, group=None, title: str = "Mean and max |gradient| per parameter group",
) -> matplotlib.figure.Figure:
    """Bar charts (log scale) of mean and max |grad| per parameter group, one bar colour per chosen step."""
    snaps = history.grad_snapshots
    if not snaps:
        raise ValueError("the history holds no gradient snapshots (TrainConfig.grad_snapshot_every)")
    have = [s["step"] for s in snaps]
    if steps is None:
        steps = sorted({have[0], have[len(have) // 2], have[-1]})
    chosen = []
    for st in steps:
        if st not in have:
            raise ValueError(f"no gradient snapshot at step {st}; snapshots exist at steps {have[:5]}...{have[-3:]}")
        chosen.append(snaps[have.index(st)])
    grouped = [group_grad_snapshot(s, group) for s in chosen]
    names = list(grouped[0].keys())
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.45 * len(names)), 7), sharex=True)
    width = 0.8 / len(chosen)
    x = np.arange(len(names))
    for k, (st, g) in enumerate(zip(steps, grouped)):
        for row, ax in enumerate(axes):
            ax.bar(x + k * width - 0.4 + width / 2, [g[n][row] for n in names], width, label=f"step {st}")
    for ax, what in zip(axes, ("mean |grad|", "max |grad|")):
        ax.set_yscale("log")
        ax.set(ylabel=what)
        ax.legend(fontsize=8)
    axes[0].set_title(title)
    axes[1].set_xticks(x, names, rotation=75, fontsize=8)
    axes[1].set_xlabel("parameter group")
    fig.tight_layout()
    return fig


def plot_run_comparison(
    histories: dict, keys: Sequence[str] = ("loss", "grad_norm"), smooth: int = 1, max_steps: Optional[int] = None,
    title: str = "", logy: Sequence[str] = ("grad_norm",), marks: Optional[dict] = None,
) -> matplotlib.figure.Figure:
    """Per-step curves of several runs ({label: History}) side by side, one panel per key. `marks` ({key: {label:
    steps}}) puts a dot on a run's curve at each of those steps (unsmoothed values), e.g. its spikes."""
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, h in histories.items():
            y = np.asarray(h.steps.get(key, []), dtype=float)[:max_steps]
            ys = _smooth(y, smooth)
            line, = ax.plot(np.arange(len(ys)) + (len(y) - len(ys)), ys, label=label, lw=1)
            at = [s for s in (marks or {}).get(key, {}).get(label, []) if s < len(y)]
            if at:
                ax.plot(at, y[at], "o", color=line.get_color(), ms=4)
        if key in logy:
            ax.set_yscale("log")
        ax.set(title=key.replace("_", " "), xlabel="optimizer step", ylabel=key.replace("_", " "))
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_layer_grad_profile(
    profiles: dict, title: str = "Gradient norm per block", ylabel: str = "mean gradient norm",
) -> matplotlib.figure.Figure:
    """Line plot of a value per block for several models ({label: sequence}), log scale."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, ys in profiles.items():
        ax.plot(range(len(ys)), ys, "o-", label=label)
    ax.set_yscale("log")
    ax.set(title=title, xlabel="block (0 = nearest the input)", ylabel=ylabel)
    ax.legend()
    fig.tight_layout()
    return fig
