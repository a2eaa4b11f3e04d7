"""A drawing pad for JupyterLab: draw a digit with the mouse, a finger or a pen, and watch the model read it.

Built on anywidget (a widget is a Python class plus one ES module; JupyterLab 4 runs it with no build step).
The browser records strokes; Python renders them with `strokes.render_strokes`, and a `DigitReader` does what
`vitlab predict` does to a file: MNIST-style preparation, class probabilities, the "is this like a digit?"
check and, for a transformer, the attention rollout. So the pad, the command line and notebook 11's
programmatic digits share one path:

    pad = DigitPad("runs/vit_default/checkpoint.pt")   # any lab classifier checkpoint
    pad                                                   # draw; Clear, Undo, Save PNG
    pad.draw(DIGIT_STROKES[7])                            # or draw from code
    pad.reading.predicted, pad.reading.probs

Where widgets cannot render (GitHub, a static export), the output carries a still picture of the pad's reading.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Optional

import anywidget
import numpy as np
import traitlets

from ..images import ImageError
from .reading import DigitReader, Reading
from ..strokes import check_strokes, render_strokes

_HERE = Path(__file__).parent


class DigitPad(anywidget.AnyWidget):
    _esm = _HERE / "digitpad.js"
    _css = _HERE / "digitpad.css"

    strokes = traitlets.List([]).tag(sync=True)  # [[[x, y], ...], ...] in [0, 1], y down: the drawing
    result = traitlets.Dict({}).tag(sync=True)  # what the model read (see _result)
    status = traitlets.Unicode("").tag(sync=True)  # one line under the buttons (saved files, errors)
    canvas_size = traitlets.Int(280).tag(sync=True)  # the pad's side, CSS pixels
    pen = traitlets.Float(0.06).tag(sync=True)  # the pen's diameter as a fraction of the pad

    def __init__(self, source, canvas_size: int = 280, pen: float = 0.06, save_dir: str | os.PathLike = ".",
                 check: bool = True, **kwargs):
        """`source`: a checkpoint path or a `DigitReader`. `save_dir`: where Save PNG writes digit_NNN.png."""
        if not 0 < pen < 0.5:
            raise ValueError(f"pen must be a fraction of the pad in (0, 0.5), got {pen}")
        if canvas_size < 56:
            raise ValueError(f"canvas_size must be at least 56 pixels, got {canvas_size}")
        self.reader = source if isinstance(source, DigitReader) else DigitReader.from_checkpoint(source, check=check)
        self.save_dir = Path(save_dir)
        self.reading: Optional[Reading] = None
        self.last_compute_ms: Optional[float] = None
        super().__init__(canvas_size=canvas_size, pen=pen, **kwargs)
        if getattr(self.reader, "check_error", None):
            self.status = f"no digit check: {self.reader.check_error}"
        self.on_msg(self._on_msg)
        self._update()

    # ------------------------------------------------------------------ the drawing
    @traitlets.validate("strokes")
    def _valid_strokes(self, proposal):
        return [[list(p) for p in s] for s in check_strokes(proposal["value"])]

    @traitlets.observe("strokes")
    def _on_strokes(self, change):
        self._update()

    def draw(self, strokes) -> Reading | None:
        """Replace the drawing with `strokes` (as the pad records them) and read it; returns the reading."""
        self.strokes = [[list(p) for p in s] for s in strokes]
        return self.reading

    def clear(self) -> None:
        self.strokes = []

    def undo(self) -> None:
        self.strokes = self.strokes[:-1]

    def picture(self, size: Optional[int] = None) -> np.ndarray:
        """The drawing as the pad shows it, black ink on white: (size, size) float32 in [0, 1]."""
        return 1.0 - render_strokes(self.strokes, size=size or self.canvas_size, width=self.pen)

    # ------------------------------------------------------------------ reading
    def _update(self) -> None:
        t0 = time.perf_counter()
        n = len(self.strokes)
        if n == 0:
            self.reading, self.result = None, {"n": 0, "empty": True}
            return
        try:
            # The ink as white on black, which to_mnist_style takes as it is (a file is inverted the same way).
            r = self.reader.read(render_strokes(self.strokes, size=self.canvas_size, width=self.pen))
        except ImageError as e:
            self.reading, self.result = None, {"n": n, "error": str(e)}
            return
        self.reading = r
        self.last_compute_ms = 1000 * (time.perf_counter() - t0)
        self.result = {
            "n": n, "size": int(r.digit.shape[-1]), "digit": np.round(r.digit.ravel(), 3).tolist(),
            "attention": None if r.attention is None else np.round(r.attention.ravel(), 5).tolist(),
            "classes": list(r.classes), "probs": np.round(r.probs, 5).tolist(), "predicted": r.predicted,
            "confidence": r.confidence, "digit_like": r.digit_like, "score": r.score, "threshold": r.threshold,
        }

    # ------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the drawing as a PNG (black on white, as drawn), readable by `vitlab predict`. With no `path`,
        the next free save_dir/digit_NNN.png: an earlier save is never overwritten."""
        from PIL import Image

        if not self.strokes:
            raise ValueError("nothing to save: the pad is empty")
        if path is None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            i = 1
            while (self.save_dir / f"digit_{i:03d}.png").exists():
                i += 1
            path = self.save_dir / f"digit_{i:03d}.png"
        path = Path(path)
        Image.fromarray((self.picture() * 255).round().astype(np.uint8)).save(path)
        return path

    def _on_msg(self, widget, content, buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "save":
            try:
                self.status = f"saved {self.save(None)}"
            except (ValueError, OSError) as e:
                self.status = f"not saved: {e}"

    # ------------------------------------------------------------------ a still picture for static viewers
    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if self.reading is not None and isinstance(data, dict):
            import matplotlib.pyplot as plt

            from ..viz.reading import plot_reading

            buf = io.BytesIO()
            fig = plot_reading(self.reading, title="drawing pad", picture=self.picture(140))
            fig.savefig(buf, format="png", dpi=80)
            plt.close(fig)  # the still picture goes in the bundle only, not again as a figure of the cell
            data["image/png"] = buf.getvalue()
            data["text/plain"] = f"DigitPad: {self.reading.predicted} ({self.reading.confidence:.1%})"
        return bundle
