"""Notebook 06's attention explorer in a real JupyterLab: Run All, check that the explorer fits the notebook's column
(a 1400-pixel window with the file browser open, and a narrower one), then use its controls as a person would and
check that the picture the kernel sends back changes each time (the widget round trip: browser -> kernel -> browser)."""

from __future__ import annotations

import math
import re
import time

from .lab import image_digest, open_notebook, overflow_problems, run_all, wait_for_new_image, widget_outputs

NOTEBOOK_FILE = "06_attention.ipynb"
WIDTHS = (1400, 1000)  # px: the `page` fixture's window (JupyterLab's file browser open beside the notebook), narrower
LAYOUT_TIMEOUT = 5.0  # s: JupyterLab lays its panels out again after the window is resized


def _check_fits(page, view, width: int) -> None:
    """At a `width`-pixel window, nothing of the explorer sticks out of its output area or scrolls sideways, and every
    square of the query-patch grid is shown whole inside the output area."""
    page.set_viewport_size({"width": width, "height": 1000})
    deadline = time.monotonic() + LAYOUT_TIMEOUT
    problems = overflow_problems(view)
    while problems and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        problems = overflow_problems(view)
    assert not problems, f"at {width} px the explorer does not fit the notebook's column: {problems}"
    area = view.locator("xpath=ancestor::*[contains(@class, 'jp-OutputArea-output')][1]").bounding_box()
    squares = view.locator('button[title^="query patch"]')
    n = squares.count()
    assert n >= 4 and math.isqrt(n) ** 2 == n, f"the query-patch grid has {n} squares, not a square grid"
    for i in range(n):
        square = squares.nth(i)
        square.scroll_into_view_if_needed()
        box = square.bounding_box()
        assert square.is_visible() and box is not None, f"{square.get_attribute('title')} is not shown at {width} px"
        left, right = box["x"], box["x"] + box["width"]
        assert area["x"] - 1 <= left and right <= area["x"] + area["width"] + 1, (
            f"{square.get_attribute('title')} spans x {left:.0f}..{right:.0f}, outside the output area "
            f"(x {area['x']:.0f}..{area['x'] + area['width']:.0f}) at {width} px")


def test_attention_explorer_reacts_to_its_controls(page):
    t0 = time.monotonic()
    open_notebook(page, NOTEBOOK_FILE)
    run_seconds = run_all(page)

    # The explorer: the widget view with a mode toggle, an image and the patch grid.
    views = widget_outputs(page).filter(has=page.locator(".widget-toggle-buttons")).filter(
        has=page.locator("img.widget-image"))
    assert views.count() == 1, f"expected one attention explorer in {NOTEBOOK_FILE}'s outputs, found {views.count()}"
    view = views.first
    view.scroll_into_view_if_needed()
    image = view.locator("img.widget-image")
    status = view.locator(".widget-html").filter(has_text="strongest patch")
    image.wait_for(state="visible")
    shown = image_digest(image)
    assert shown is not None, "the explorer shows no picture after Run All"
    assert re.search(r"mode rollout", status.inner_text()), status.inner_text()  # the notebook opens it in rollout
    depth = int(re.search(r"layer (\d+)", status.inner_text()).group(1)) + 1  # it starts on the last layer
    assert depth >= 2, "the notebook's model needs two layers for the layer step"

    # 0. It fits the notebook's column, the query-patch grid included, in the 1400-pixel window and a narrower one.
    for width in WIDTHS:
        _check_fits(page, view, width)
    page.set_viewport_size({"width": WIDTHS[0], "height": 1000})
    view.scroll_into_view_if_needed()

    # 1. The mode: raw attention instead of rollout.
    view.locator(".widget-toggle-buttons button", has_text=re.compile(r"^raw$")).click()
    shown = wait_for_new_image(image, shown, "choosing mode 'raw'")
    assert "mode raw" in status.inner_text()

    # 2. The head: head 0 instead of the mean over heads.
    head = view.locator(".widget-dropdown", has=page.locator("label", has_text=re.compile(r"^head$"))).locator("select")
    head.select_option(label="0")
    shown = wait_for_new_image(image, shown, "choosing head 0")
    assert "head 0" in status.inner_text()

    # 3. The layer: one down, with the keyboard on the slider's handle.
    layer = view.locator(".widget-slider", has=page.locator("label", has_text=re.compile(r"^layer$")))
    layer.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowLeft")
    shown = wait_for_new_image(image, shown, f"moving the layer slider to {depth - 2}")
    assert f"layer {depth - 2}" in status.inner_text()

    # 4. The query: a click on the patch grid makes patch (1, 2) the query token.
    patch = view.locator('button[title="query patch (1, 2)"]')
    patch.click()
    shown = wait_for_new_image(image, shown, "clicking patch (1, 2)")
    assert "mod-info" in (patch.get_attribute("class") or ""), "the clicked patch is not highlighted"
    assert view.locator('button.mod-info[title^="query patch"]').count() == 1

    print(f"\n{NOTEBOOK_FILE}: Run All {run_seconds:.0f} s, the whole test {time.monotonic() - t0:.0f} s")
