"""Notebook 11's drawing pad in a real JupyterLab: Run All, then draw a "1" and a "7" with mouse strokes, as a
learner would, and check what the pad shows after each stroke: the predicted class, the 28x28 digit, the attention
map and the digit check. Undo, Clear and Save PNG are clicked too. The latency from the end of a stroke to the
updated picture is measured in the browser (the pad stamps it on its element) and printed."""

from __future__ import annotations

import re
import time

from .lab import REACTION_TIMEOUT, REPO, open_notebook, run_all

NOTEBOOK_FILE = "11_your_own_digits.ipynb"

# Pen paths in [0, 1] of the pad, as a hand draws them; the 7's wide top bar makes it a clear 7 even for the model
# FAST mode trains (10 epochs on 4,000 images), which reads the narrower 7 of DIGIT_STROKES as a 7 only narrowly.
ONE = [[(0.4, 0.25), (0.52, 0.12), (0.52, 0.88)]]
SEVEN = [[(0.15, 0.15), (0.85, 0.15), (0.45, 0.9)]]


def _draw(page, canvas, strokes, steps: int = 12) -> None:
    """Mouse strokes on the canvas: down at the first point, through every segment in `steps` moves, up."""
    box = canvas.bounding_box()
    at = lambda p: (box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"])  # noqa: E731
    for stroke in strokes:
        page.mouse.move(*at(stroke[0]))
        page.mouse.down()
        for a, b in zip(stroke, stroke[1:]):
            for i in range(1, steps + 1):
                t = i / steps
                page.mouse.move(*at((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))))
        page.mouse.up()


def _wait_update(pad, before: int, what: str) -> int:
    """Wait until the pad has shown a new result (its `data-updates` counter passed `before`); return the counter."""
    deadline = time.monotonic() + REACTION_TIMEOUT
    while time.monotonic() < deadline:
        n = int(pad.get_attribute("data-updates") or 0)
        if n > before:
            return n
        pad.page.wait_for_timeout(50)
    raise AssertionError(f"the pad showed no new result within {REACTION_TIMEOUT:.0f} s after {what}")


def _wait_text(locator, pattern: str, what: str) -> str:
    deadline = time.monotonic() + REACTION_TIMEOUT
    text = ""
    while time.monotonic() < deadline:
        text = locator.inner_text()
        if re.search(pattern, text):
            return text
        locator.page.wait_for_timeout(50)
    raise AssertionError(f"after {what}, expected {pattern!r}, the pad shows {text!r}")


def test_draw_a_one_and_a_seven(page):
    open_notebook(page, NOTEBOOK_FILE)
    run_seconds = run_all(page)
    pads = page.locator(".vitlab-digitpad")
    assert pads.count() == 1, f"expected one drawing pad in {NOTEBOOK_FILE}'s outputs, found {pads.count()}"
    pad = pads.first
    pad.scroll_into_view_if_needed()
    canvas, prediction = pad.locator("canvas.vdp-canvas"), pad.locator(".vdp-prediction")
    _wait_text(prediction, r"^7 ", "Run All (the notebook draws a 7 from code)")

    pad.locator("button.vdp-clear").click()
    _wait_text(prediction, "draw a digit", "Clear")
    latencies, updates = [], int(pad.get_attribute("data-updates") or 0)
    for digit, strokes in (("1", ONE), ("7", SEVEN)):
        pad.locator("button.vdp-clear").click()
        _wait_text(prediction, "draw a digit", "Clear")
        _draw(page, canvas, strokes)
        updates = _wait_update(pad, updates, f"drawing a {digit}")
        assert prediction.get_attribute("data-class") == digit, (
            f"drew a {digit}, the pad says {prediction.inner_text()!r}")
        latencies.append(float(pad.get_attribute("data-latency-ms")))
        assert re.search(r"(like a digit|not like a digit\?) \(score [\d.]+ (≥|<) [\d.]+\)",
                         pad.locator(".vdp-check").inner_text())
        assert pad.locator(".vdp-bar-row").count() == 10
        assert pad.locator("canvas.vdp-attention").is_visible()  # the ViT's attention over the digit
        ink = pad.locator("canvas.vdp-seen").evaluate(
            "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((v, i) => i % 4 == 0 && v > 128).length")
        assert ink > 100, "the 28x28 digit the model sees is empty"
        page.screenshot(path=str(REPO / "tests" / "browser" / "artifacts" / f"digitpad_{digit}.png"))

    # Undo: a stray stroke, then Undo, brings back the 7.
    _draw(page, canvas, [[(0.1, 0.9), (0.3, 0.95)]])
    updates = _wait_update(pad, updates, "a stray stroke")
    pad.locator("button.vdp-undo").click()
    _wait_text(prediction, r"^7 ", "Undo")

    # Save PNG writes the next free digit_NNN.png beside the notebook (removed again: the test leaves no file).
    pad.locator("button.vdp-save").click()
    status = _wait_text(pad.locator(".vdp-status"), r"^saved digit_\d{3}\.png$", "Save PNG")
    saved = REPO / "notebooks" / status.split()[-1]
    try:
        assert saved.is_file() and saved.stat().st_size > 500
    finally:
        saved.unlink(missing_ok=True)
    print(f"\n{NOTEBOOK_FILE}: Run All {run_seconds:.0f} s; stroke -> updated picture "
          + ", ".join(f"{ms:.0f} ms" for ms in latencies) + " (the 1, the 7)")
