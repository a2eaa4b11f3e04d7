"""Notebook 06's attention explorer in a real JupyterLab: Run All, then use its controls as a person would and check
that the picture the kernel sends back changes each time (the widget round trip: browser -> kernel -> browser)."""

from __future__ import annotations

import re
import time

from .lab import image_digest, open_notebook, run_all, wait_for_new_image, widget_outputs

NOTEBOOK_FILE = "06_attention.ipynb"


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
