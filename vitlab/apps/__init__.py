"""Layer 7, apps: the lab as an application, for a picture that is not in any dataset. The one path from a picture
to an answer (reading: `DigitReader`, `Reading`) that `vitlab predict`, `predict --explain` and the drawing pad
share; the "is this like a digit?" check it carries (digitcheck, cached beside the checkpoint); the JupyterLab
drawing pad (digitpad: anywidget, + .js, .css); and the files `vitlab train` and `evaluate` write beside a run
(report). Imports from vitlab.viz and below; nothing below imports it."""

from .._lazy import lazy_exports

_WHERE = {
    "DigitReader": ".reading", "Reading": ".reading", "DigitPad": ".digitpad", "write_run_report": ".report",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
