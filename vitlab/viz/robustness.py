"""Robustness curves: accuracy against corruption severity, one panel per corruption, models compared."""

from __future__ import annotations

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np

UNITS = {"rotation": "degrees", "shear": "shear factor", "scale": "scale factor", "shift": "pixels (right and down)",
         "thickness": "stroke change, pixels", "noise": "noise std", "blur": "blur sigma, pixels",
         "occlusion": "square side, pixels", "inversion": "blend to negative"}


def plot_robustness(curves: dict, title: str = "Accuracy under corruption", cols: int = 3) -> matplotlib.figure.Figure:
    """`robustness_curves` output -> a grid of panels sharing the 0-100% accuracy axis."""
    kinds = list(curves)
    rows = int(np.ceil(len(kinds) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), sharey=True, squeeze=False, layout="constrained")
    for ax, kind in zip(axes.flat, kinds):
        row = curves[kind]
        for name, accs in row.items():
            if name != "levels":
                ax.plot(row["levels"], 100 * np.asarray(accs), marker="o", label=name)
        ax.set_title(kind)
        ax.set_xlabel(UNITS.get(kind, "level"))
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    for ax in axes.flat[len(kinds):]:
        ax.set_visible(False)
    axes.flat[0].legend()
    fig.suptitle(title)
    return fig
