"""Helpers for the browser tests: drive a notebook in JupyterLab from Playwright, as a person would.

    from .lab import open_notebook, run_all, widget_outputs

    def test_something(page):                        # `page` comes from conftest.py (a tab on the test server)
        open_notebook(page, "06_attention.ipynb")    # open notebooks/06_attention.ipynb, wait for an idle kernel
        run_all(page)                                # Edit > Clear Outputs, Run > Run All Cells, wait for the end
        view = widget_outputs(page).last             # the last displayed ipywidgets view
        ...

    click_menu(page, "Kernel", "Interrupt Kernel")  # any menu entry
    kernel_state(page), prompts(page)                # what the server says of the kernel, each code cell's prompt
    wait_kernel_idle(page)
    before = image_digest(img)                       # what an <img> (an ipywidgets Image) shows now ...
    wait_for_new_image(img, before, "clicking X")    # ... and wait until it shows something else (the kernel answered)
    overflow_problems(view)                          # where a widget view sticks out of its cell's output area

These read only the DOM and the server's REST API (no window.jupyterapp), and never save the notebook.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

KERNEL_TIMEOUT = 120.0  # s: a kernel to start (it imports torch) and report idle
RUN_ALL_TIMEOUT = 900.0  # s: Run All in FAST mode; notebook 06 trains its model the first time (1-3 minutes here)

REACTION_TIMEOUT = 60.0  # s: a widget's round trip (browser -> kernel -> browser); well under a second, usually

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"  # CSS: the notebook shown


def _notebook_path(page) -> str:
    """The server path ("notebooks/06_attention.ipynb") of the notebook open in `page` (set by open_notebook)."""
    path = getattr(page, "notebook_path", None)
    if path is None:
        raise RuntimeError("no notebook is open in this page: call open_notebook(page, name) first")
    return path


def kernel_state(page) -> str | None:
    """The execution state ("starting", "idle", "busy", ...) of the open notebook's kernel, as the server sees it;
    None while the notebook has no session."""
    path = _notebook_path(page)
    response = page.request.get("/api/sessions")
    if not response.ok:
        return None
    for session in response.json():
        if session.get("path") == path and session.get("kernel"):
            return session["kernel"].get("execution_state")
    return None


def prompts(page) -> list[str]:
    """The execution prompt of each code cell of the open notebook: "[ ]:" (not run), "[*]:" (running or queued) or
    "[12]:". Every cell is in the DOM (windowingMode "none" in the test settings)."""
    return page.locator(f"{NOTEBOOK} .jp-CodeCell .jp-InputArea-prompt").evaluate_all(
        "els => els.map(e => e.textContent.trim())")


def wait_kernel_idle(page, timeout: float = KERNEL_TIMEOUT) -> None:
    """Wait until the open notebook's kernel is idle."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = kernel_state(page)
        if state == "idle":
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"the kernel of {_notebook_path(page)} was not idle after {timeout:.0f} s (state: {state})")


def open_notebook(page, name: str, timeout: float = KERNEL_TIMEOUT) -> None:
    """Open notebooks/<name> (e.g. "06_attention.ipynb") in JupyterLab and wait until its kernel is idle.

    The notebook then shows the outputs saved in the file; run_all(page) clears them and runs every cell."""
    if not (REPO / "notebooks" / name).is_file():
        raise FileNotFoundError(f"no notebook notebooks/{name}")
    page.notebook_path = f"notebooks/{name}"
    if hasattr(page, "opened_notebooks"):  # the `page` fixture checks afterwards that these were not written
        page.opened_notebooks.append(name)
    page.goto(f"/lab/tree/notebooks/{name}")
    page.locator(f"{NOTEBOOK} .jp-Cell").first.wait_for(state="visible", timeout=timeout * 1000)
    wait_kernel_idle(page, timeout)


def click_menu(page, menu: str, item: str) -> None:
    """Click an entry of JupyterLab's menu bar, as a person would: click_menu(page, "Run", "Run All Cells")."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-item:not(.lm-mod-disabled):not(.lm-mod-hidden)",
                 has_text=re.compile(rf"^{re.escape(item)}")).first.click()


def run_all(page, timeout: float = RUN_ALL_TIMEOUT) -> float:
    """Edit > Clear Outputs of All Cells, then Run > Run All Cells (the menus); wait until every code cell has run
    (an execution count in its prompt, none running or queued) and the kernel is idle. Returns the seconds it took.

    Fails, showing the last cell's output, when a cell raises (JupyterLab then drops the cells still queued), and when
    the run takes longer than `timeout` seconds. The cleared outputs make sure what the test then finds (a widget, an
    image) comes from this run, not from the file; nothing is saved."""
    wait_kernel_idle(page)
    click_menu(page, "Edit", "Clear Outputs of All Cells")
    start = time.monotonic()
    click_menu(page, "Run", "Run All Cells")
    deadline = start + timeout
    stalled_since = None
    shown: list[str] = []
    state = None
    while time.monotonic() < deadline:
        shown, state = prompts(page), kernel_state(page)
        if not any("*" in p for p in shown) and state == "idle":
            if shown and all(re.fullmatch(r"\[\d+\]:", p) for p in shown):
                return time.monotonic() - start
            # Idle with nothing queued, yet cells without a count: a cell raised and the rest were dropped
            # (a few seconds' grace for the moment between the click and the cells being queued).
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 5.0:
                raise AssertionError(f"Run All stopped before the end of {_notebook_path(page)}:\n"
                                     f"{_last_output(page, shown)}")
        else:
            stalled_since = None
        page.wait_for_timeout(500)
    raise AssertionError(f"Run All of {_notebook_path(page)} did not finish in {timeout:.0f} s "
                         f"(kernel {state}, prompts {shown})")


def _last_output(page, shown: list[str]) -> str:
    """The prompts, and the output text of the code cell that ran last (where an error shows)."""
    counts = {i: int(p[1:-2]) for i, p in enumerate(shown) if re.fullmatch(r"\[\d+\]:", p)}
    last = max(counts, key=counts.get) if counts else 0
    text = page.locator(f"{NOTEBOOK} .jp-CodeCell").nth(last).locator(".jp-OutputArea").inner_text()
    return f"prompts {shown}\ncode cell {last}'s output:\n{text[-4000:]}"


def widget_outputs(page):
    """A locator for the live ipywidgets views in the open notebook's outputs: the outermost widget of each displayed
    widget (e.g. a VBox's `.widget-vbox`). Narrow it with .filter(has=page.locator(".widget-image")) and the like."""
    return page.locator(f"{NOTEBOOK} .jp-OutputArea-output > .jupyter-widgets")


# The SHA-256 of the bytes an <img> shows (ipywidgets 8 gives an Image a blob: URL, a new one for each new value).
_IMAGE_DIGEST_JS = """async img => {
  if (!img.src || !img.complete || img.naturalWidth === 0) return null;
  const bytes = await (await fetch(img.src)).arrayBuffer();
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
}"""


def image_digest(img) -> str | None:
    """A digest (hex SHA-256) of the picture an <img> locator shows now, e.g. an ipywidgets Image
    (`view.locator("img.widget-image")`); None while it shows none."""
    return img.evaluate(_IMAGE_DIGEST_JS)


def wait_for_new_image(img, before: str | None, what: str, timeout: float = REACTION_TIMEOUT) -> str:
    """Wait until the <img> shows a picture other than `before` (an image_digest) and return its digest; fail, saying
    that nothing changed after `what` (e.g. "clicking patch (1, 2)"), when it does not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    now = image_digest(img)
    while now in (None, before) and time.monotonic() < deadline:
        img.page.wait_for_timeout(200)
        now = image_digest(img)
    assert now not in (None, before), f"the picture did not change within {timeout:.0f} s after {what}"
    return now


# Where a displayed widget does not fit its output area: every visible element of the view (the view included) must
# lie within the output area's left and right edges, and neither the view, the output area nor the notebook may
# scroll sideways. One message per kind of problem; the elements named by their class and title.
_OVERFLOW_JS = """(view, notebook) => {
  const out = view.closest('.jp-OutputArea-output');
  if (!out) return ['the widget view is not inside a cell output area'];
  const o = out.getBoundingClientRect();
  const classes = el => (typeof el.className === 'string' ? el.className.trim().split(/\\s+/).slice(0, 2) : []);
  const name = el => el.tagName.toLowerCase() + classes(el).map(c => c && '.' + c).join('')
      + (el.title ? `[title="${el.title}"]` : '');
  const problems = [];
  const outside = [];
  for (const el of [view, ...view.querySelectorAll('*')]) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === 'hidden') continue;
    if (r.left < o.left - 1 || r.right > o.right + 1)
      outside.push(`${name(el)} spans x ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  if (outside.length)
    problems.push(`${outside.length} elements outside the output area `
                  + `(x ${Math.round(o.left)}..${Math.round(o.right)}): ${outside.slice(0, 5).join('; ')}`);
  for (const [what, el] of [['the widget view', view], ['the output area', out], ['the notebook', notebook]])
    if (el.scrollWidth > el.clientWidth + 1)
      problems.push(`${what} scrolls sideways (${el.scrollWidth} px of content in ${el.clientWidth} px)`);
  return problems;
}"""


def overflow_problems(view) -> list[str]:
    """What sticks out of the cell output area that holds a widget view (a locator, e.g. from widget_outputs): its
    elements beyond the area's left or right edge, and sideways scrolling of the view, the area or the notebook.
    An empty list when the view fits the notebook's column."""
    notebook = view.page.locator(NOTEBOOK).element_handle()
    return view.evaluate(_OVERFLOW_JS, notebook)
