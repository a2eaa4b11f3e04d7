"""One reading as a picture: the digit the model saw, where it looked, what it answered and whether the input
looked like a digit at all. `vitlab predict --explain` saves it; the drawing pad shows it where widgets cannot
render (GitHub, a static export)."""

from __future__ import annotations

from typing import Optional, Protocol, Sequence

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np

from .plots import overlay


class Reading(Protocol):
    """What these figures read of a reading: `vitlab.apps.reading.Reading` has it (viz imports nothing from the
    apps layer above it, so the figure is typed by the fields it uses)."""

    digit: np.ndarray  # (28, 28) in [0, 1]: what the model saw
    probs: np.ndarray  # (classes,)
    classes: Sequence[str]
    score: Optional[float]  # digit-check score (None: no check)
    threshold: Optional[float]
    attention: Optional[np.ndarray]  # (28, 28), or None for a CNN
    predicted: str
    confidence: float
    digit_like: Optional[bool]


def verdict(reading: Reading) -> str:
    """"like a digit", "not like a digit?" or "" when there is no check: the words `predict` and the pad use."""
    if reading.digit_like is None:
        return ""
    return "like a digit" if reading.digit_like else "not like a digit?"


def plot_reading(reading: Reading, title: Optional[str] = None, picture: Optional[np.ndarray] = None) -> matplotlib.figure.Figure:
    """[the picture as given] | the 28 x 28 digit | attention rollout over it (a transformer) | probabilities."""
    panels = (picture is not None) + 1 + (reading.attention is not None) + 1
    fig = plt.figure(figsize=(2.6 * panels + 0.6, 2.9), layout="constrained")
    axes = list(fig.subplots(1, panels))
    if picture is not None:
        ax = axes.pop(0)
        ax.imshow(picture, cmap="gray", interpolation="nearest")
        ax.set_title("your picture", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    overlay(axes.pop(0), reading.digit, title="what the model sees (28×28)")
    if reading.attention is not None:
        im = overlay(axes.pop(0), reading.digit, reading.attention, title="attention rollout (CLS)")
        fig.colorbar(im, ax=im.axes, fraction=0.046, pad=0.04, label="share of attention")
    ax = axes.pop(0)
    y = np.arange(len(reading.classes))
    colours = ["#d62728" if i == reading.probs.argmax() else "#7f7f7f" for i in y]
    ax.barh(y, reading.probs, color=colours)
    ax.set_yticks(y, reading.classes, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_title("class probabilities", fontsize=9)
    check = verdict(reading)
    head = f"{reading.predicted} ({reading.confidence:.1%})" + (f" · {check} (score {reading.score:.3f}, "
                                                               f"threshold {reading.threshold:.3f})" if check else "")
    fig.suptitle(f"{title}: {head}" if title else head, fontsize=10)
    return fig
