"""An interactive attention explorer for JupyterLab, built with ipywidgets.

    from vitlab.viz.explorer import explore_attention
    explore_attention(model, data.test)          # one call; the last line of a cell shows it

Controls: the image (by position in the test set, or among the misclassified
only), the layer, the head (or mean / max / min over heads), the mode (raw
attention, rollout, gradient-weighted rollout for a class), the query token
(CLS, or any patch chosen by row and column or by clicking the patch grid) and,
for rollout, the discard ratio. The view shows the map over the digit, the map
on the patch grid, and the model's class probabilities; it is redrawn on every
change.

Where widgets cannot render (GitHub, nbviewer, a static HTML export, a plain
terminal) the explorer shows a static PNG of its current view instead: its
display bundle carries both the widget view and that image, and each frontend
picks what it can show.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from dataclasses import dataclass
from typing import Optional, Sequence

import matplotlib.patches as mpatches
import matplotlib.patheffects as patheffects
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..analysis.attention import (
    HEAD_FUSIONS,
    attention_maps,
    attention_rollout,
    fuse_heads,
    gradient_rollout,
    token_map,
)
from ..data import ImageSet
from ..training.inference import predict_logits

MODES = ("raw", "rollout", "gradient")
CMAP = "inferno"  # the maps' colours: black (no weight) through purple and orange to pale yellow (the most)
FIGSIZE = (10.0, 3.4)  # inches at 80 dpi: an 800-pixel picture, which the widget shrinks to its column when narrower


def text_colour(value: float, cmap: str = CMAP) -> str:
    """A colour for text on a cell of `cmap` at `value` (0..1): black on light cells, white on dark ones.

    Light or dark is the cell's relative luminance (WCAG's formula, on linear RGB); the text takes whichever of
    black and white has the larger contrast ratio with it, so every cell of the colour map stays readable."""
    import matplotlib

    rgb = matplotlib.colormaps[cmap](min(max(float(value), 0.0), 1.0))[:3]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    # Contrast with black is (lum + 0.05) / 0.05, with white 1.05 / (lum + 0.05); they are equal at lum ~ 0.179.
    return "black" if (lum + 0.05) ** 2 > 1.05 * 0.05 else "white"


@dataclass
class ExplorerState:
    """Everything that decides what the explorer shows."""

    index: int = 0  # position in the dataset
    mode: str = "raw"  # "raw" (one layer's attention), "rollout" (layers 0..layer combined), "gradient"
    layer: int = 0  # the layer shown (raw) or the last layer combined (rollout, gradient)
    head: object = "mean"  # "mean" / "max" / "min" over heads, or a head index
    query: Optional[tuple] = None  # None = the CLS token; (row, col) = that patch's token
    discard_ratio: float = 0.0  # rollout: share of the weakest weights dropped per layer
    target: Optional[int] = None  # gradient mode: the class explained; None = the predicted class


class AttentionExplorer:
    """Holds the model, the images and the widgets; `state` and `current_map` say what is shown."""

    def __init__(
        self,
        model,
        data: ImageSet,
        predictions: Optional[torch.Tensor] = None,
        classes: Optional[Sequence[str]] = None,
        index: int = 0,
        layer: Optional[int] = None,
        mode: str = "raw",
        widgets: bool = True,
    ):
        if not hasattr(model, "forward_features") or not hasattr(model, "cfg"):
            raise TypeError("explore_attention needs a vitlab ViT (forward_features with return_attn, and cfg)")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.model = model.eval()
        self.data = data
        self.cfg = model.cfg
        self.grid = self.cfg.grid_size
        self.prefix = getattr(model, "num_prefix_tokens", 1)  # CLS (and DeiT's distillation token) before the patches
        self.classes = list(classes or data.info.classes)
        self.device = next(model.parameters()).device
        if predictions is None:
            predictions = predict_logits(model, data).argmax(1)
        self.predictions = torch.as_tensor(predictions).cpu()
        if len(self.predictions) != len(data):
            raise ValueError(f"{len(self.predictions)} predictions for {len(data)} images")
        self.misclassified = torch.nonzero(self.predictions != data.labels).flatten().tolist()
        if not 0 <= index < len(data):
            raise ValueError(f"image index {index} is outside 0..{len(data) - 1}")
        L = self.cfg.depth
        self.state = ExplorerState(index=index, mode=mode, layer=L - 1 if layer is None else layer)
        self._cache: dict = {}
        self.current_map: Optional[torch.Tensor] = None  # (g, g): the map on the patch grid now shown
        self.current_probs: Optional[torch.Tensor] = None  # (classes,)
        self.widget = None
        self._updating = False
        self._compute()
        if widgets:
            self._build_widgets()
            self._render()

    # ---------------------------------------------------------------- computation

    def _result(self, index: int, target: Optional[int]):
        """Attention (and gradients for gradient mode) of one image; cached per (image, target)."""
        key = (index, target)
        if key not in self._cache:
            x, _ = self.data.tensors([index])  # (1, 1, H, W)
            self._cache[key] = attention_maps(self.model, x.to(self.device), with_grads=True, target=target)
        return self._cache[key]

    @property
    def query_token(self) -> int:
        q = self.state.query
        return 0 if q is None else self.prefix + q[0] * self.grid + q[1]

    def _compute(self) -> None:
        s = self.state
        if not 0 <= s.layer < self.cfg.depth:
            raise ValueError(f"layer {s.layer} does not exist; the model has layers 0..{self.cfg.depth - 1}")
        r = self._result(s.index, s.target if s.mode == "gradient" else None)
        attn = r.attn.float().cpu()  # (1, L, h, T, T)
        q = self.query_token
        if s.mode == "raw":
            rows = fuse_heads(attn[0, s.layer], s.head)[q]  # (T,)
            self.cls_share = float(rows[0]) if q != 0 else float("nan")
        elif s.mode == "rollout":
            rows = attention_rollout(attn, s.head, s.discard_ratio, upto=s.layer + 1)[0, q]
            self.cls_share = float(rows[0]) if q != 0 else float("nan")
        else:
            rows = gradient_rollout(attn, r.grads.float().cpu(), upto=s.layer + 1, head_fusion=s.head)[0, q]
            self.cls_share = float("nan")
        self.current_map = token_map(rows, self.grid, num_prefix_tokens=self.prefix)  # (g, g)
        self.current_probs = r.probs[0].float().cpu()
        self.explained = int(r.target[0]) if r.target is not None else int(self.current_probs.argmax())

    def set(self, **changes) -> None:
        """Change the state programmatically (the widgets follow): set(index=5, mode="rollout", query=(1, 2))."""
        old = dataclasses.replace(self.state)
        for k, v in changes.items():
            if not hasattr(self.state, k):
                raise ValueError(f"unknown explorer setting {k!r}")
            setattr(self.state, k, v)
        try:
            self._compute()
        except Exception:
            self.state = old  # a bad value leaves the view as it was
            self._compute()
            raise
        if self.widget is not None:
            self._sync_widgets()
            self._render()

    # ---------------------------------------------------------------- drawing

    def figure(self) -> Figure:
        """The current view as a matplotlib figure: overlay, patch-grid map, class probabilities."""
        s, g, P = self.state, self.grid, self.cfg.patch_size
        img = self.data.images[s.index].float() / 255.0  # (H, W)
        label = int(self.data.labels[s.index])
        pred = int(self.current_probs.argmax())
        m = self.current_map
        fig = Figure(figsize=FIGSIZE, dpi=80, layout="constrained")  # room for the titles and the colour bar
        FigureCanvasAgg(fig)
        ax0, ax1, ax2 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.1, 1, 1.3]})
        heat = m.repeat_interleave(P, 0).repeat_interleave(P, 1)  # (H, W): each patch's weight over its pixels
        vmax = float(m.max()) or 1.0
        ax0.imshow(img.numpy(), cmap="gray", interpolation="nearest")
        im = ax0.imshow(heat.numpy(), cmap=CMAP, alpha=0.55, vmin=0, vmax=vmax)
        fig.colorbar(im, ax=ax0, fraction=0.046, pad=0.04)
        who = "CLS" if s.query is None else f"patch ({s.query[0]}, {s.query[1]})"
        head = f"head {s.head}" if isinstance(s.head, int) else f"{s.head} of heads"
        span = f"layer {s.layer}" if s.mode == "raw" else f"layers 0–{s.layer}"
        what = {"raw": "attention", "rollout": "rollout", "gradient": f"grad×attn, class {self.classes[self.explained]}"}[s.mode]
        ax0.set_title(f"#{s.index}: {what}\nquery {who}\n{span}, {head}", fontsize=9)
        ax1.imshow(m.numpy(), cmap=CMAP, vmin=0, vmax=vmax)
        if g <= 7:  # each patch's weight, in a colour that reads on its cell
            for r in range(g):
                for c in range(g):
                    v = float(m[r, c])
                    ax1.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color=text_colour(v / vmax))
        if s.query is not None:
            r, c = s.query
            for ax, scale, off in ((ax0, P, -0.5), (ax1, 1, -0.5)):
                box = mpatches.Rectangle((c * scale + off, r * scale + off), scale, scale, fill=False,
                                         edgecolor="cyan", lw=2)
                box.set_path_effects([patheffects.withStroke(linewidth=4, foreground="black")])  # seen on any cell
                ax.add_patch(box)
        ax1.set_title("on the patch grid" + ("" if s.query is None else " (query boxed)"), fontsize=10)
        ax1.set(xlabel="patch column", ylabel="patch row", xticks=range(g), yticks=range(g))
        for ax in (ax0,):
            ax.set_xticks([])
            ax.set_yticks([])
        p = self.current_probs.numpy()
        colors = ["#bbbbbb"] * len(p)
        colors[pred] = "#d62728" if pred != label else "#2ca02c"
        ax2.bar(range(len(p)), p, color=colors)
        ax2.set(xticks=range(len(p)), ylim=(0, 1), xlabel="class", ylabel="probability")
        ax2.set_xticklabels(self.classes, fontsize=8)
        ax2.set_title(f"true {self.classes[label]}, predicted {self.classes[pred]} ({p[pred]:.1%})", fontsize=10)
        return fig

    def png(self) -> bytes:
        buf = io.BytesIO()
        self.figure().savefig(buf, format="png")
        return buf.getvalue()

    # ---------------------------------------------------------------- widgets

    def _build_widgets(self) -> None:
        import ipywidgets as W

        s, g, h = self.state, self.grid, self.cfg.heads
        # Compact controls whose rows wrap, so the whole explorer fits a notebook column (JupyterLab's, beside its
        # file browser, in a 1400-pixel window or narrower): labels as wide as their text, fixed control widths.
        style = {"description_width": "initial"}

        def L(width, margin="0 12px 0 0"):  # a control's layout: its width, or the column's when that is narrower
            return W.Layout(width=width, max_width="100%", flex="0 1 auto", margin=margin)

        def row(*ws):  # a row of controls that wraps onto the next line when the column is too narrow
            return W.HBox(list(ws), layout=W.Layout(flex_flow="row wrap", align_items="center"))

        self.w_misclassified = W.Checkbox(value=False, description=f"misclassified only ({len(self.misclassified)})",
                                          indent=False, layout=L("auto"))
        self.w_index = W.BoundedIntText(value=s.index, min=0, max=len(self.data) - 1, description="image #",
                                        style=style, layout=L("140px"))
        self.w_wrong = W.Dropdown(options=[(f"#{i}: {int(self.data.labels[i])}→{int(self.predictions[i])}", i)
                                           for i in self.misclassified] or [("none", -1)],
                                  description="mistake", disabled=True, style=style, layout=L("200px"))
        self.w_mode = W.ToggleButtons(options=[("raw", "raw"), ("rollout", "rollout"), ("gradient × attn", "gradient")],
                                      value=s.mode, description="mode", style=dict(style, button_width="auto"),
                                      layout=L("auto", "2px 0"))
        self.w_layer = W.IntSlider(value=s.layer, min=0, max=self.cfg.depth - 1, description="layer", style=style,
                                   continuous_update=False, layout=L("250px"))
        self.w_head = W.Dropdown(options=list(HEAD_FUSIONS) + list(range(h)), value=s.head, description="head",
                                 style=style, layout=L("150px"))
        self.w_discard = W.FloatSlider(value=s.discard_ratio, min=0.0, max=0.95, step=0.05, description="discard",
                                       continuous_update=False, disabled=s.mode != "rollout", style=style,
                                       layout=L("250px"))
        # -1 stands for "the predicted class": a Dropdown shows a None value as an empty box.
        self.w_target = W.Dropdown(options=[("predicted", -1)] + [(c, i) for i, c in enumerate(self.classes)],
                                   value=-1 if s.target is None else s.target, description="class",
                                   disabled=s.mode != "gradient", style=style, layout=L("150px"))
        self.w_cls = W.Checkbox(value=s.query is None, description="query = CLS token", indent=False, layout=L("auto"))
        self.w_row = W.IntSlider(value=0, min=0, max=g - 1, description="row", disabled=s.query is None,
                                 continuous_update=False, style=style, layout=L("190px"))
        self.w_col = W.IntSlider(value=0, min=0, max=g - 1, description="column", disabled=s.query is None,
                                 continuous_update=False, style=style, layout=L("210px"))
        pick = self._patch_picker(W)
        # The picture shrinks with the column (keeping its aspect ratio) instead of overflowing it.
        self.w_image = W.Image(format="png", layout=W.Layout(max_width="100%", height="auto"))
        self.w_status = W.HTML()
        for w in (self.w_index, self.w_wrong, self.w_mode, self.w_layer, self.w_head, self.w_discard, self.w_target,
                  self.w_cls, self.w_row, self.w_col, self.w_misclassified):
            w.observe(self._on_change, names="value")
        controls = W.VBox([
            row(self.w_index, self.w_misclassified, self.w_wrong),
            self.w_mode,
            row(self.w_layer, self.w_head),
            row(self.w_discard, self.w_target),
            row(self.w_cls, self.w_row, self.w_col),
        ], layout=W.Layout(flex="0 1 auto", min_width="0"))
        self.widget = W.VBox([row(controls, pick), self.w_image, self.w_status],
                             layout=W.Layout(max_width="100%"))
        self._sync_widgets()

    def _patch_picker(self, W):
        """The patch grid, one button per patch: a click makes that patch the query."""
        g = self.grid
        size = "28px" if g > 5 else "36px"
        self.w_patches = [[W.Button(description="", tooltip=f"query patch ({r}, {c})",
                                    layout=W.Layout(width=size, height=size, padding="0"))
                           for c in range(g)] for r in range(g)]
        for r in range(g):
            for c in range(g):
                self.w_patches[r][c].on_click(lambda _b, r=r, c=c: self._on_patch_click(r, c))
        grid = W.GridBox([b for line in self.w_patches for b in line], layout=W.Layout(
            grid_template_columns=f"repeat({g}, {size})", grid_gap="2px", width="max-content"))
        return W.VBox([W.HTML("<b>query patch</b> (click)"), grid],
                      layout=W.Layout(flex="0 0 auto", margin="0 0 0 8px"))

    def _on_patch_click(self, r: int, c: int) -> None:
        self.set(query=(r, c))

    def _on_change(self, change) -> None:
        if self._updating:
            return
        w = change["owner"]
        s = self.state
        if w is self.w_misclassified:
            self.w_wrong.disabled = not change["new"] or not self.misclassified
            self.w_index.disabled = change["new"] and bool(self.misclassified)
            if change["new"] and self.misclassified:
                self.set(index=self.w_wrong.value)
            return
        changes = {}
        if w is self.w_index:
            changes["index"] = int(change["new"])
        elif w is self.w_wrong and change["new"] >= 0:
            changes["index"] = int(change["new"])
        elif w is self.w_mode:
            changes["mode"] = change["new"]
        elif w is self.w_layer:
            changes["layer"] = int(change["new"])
        elif w is self.w_head:
            changes["head"] = change["new"]
        elif w is self.w_discard:
            changes["discard_ratio"] = float(change["new"])
        elif w is self.w_target:
            changes["target"] = None if change["new"] == -1 else int(change["new"])
        elif w is self.w_cls:
            changes["query"] = None if change["new"] else (self.w_row.value, self.w_col.value)
        elif w in (self.w_row, self.w_col) and s.query is not None:
            changes["query"] = (self.w_row.value, self.w_col.value)
        if changes:
            self.set(**changes)

    def _sync_widgets(self) -> None:
        """Make the widgets show `state` without triggering their own handlers."""
        s = self.state
        self._updating = True
        try:
            if not self.w_misclassified.value:
                self.w_index.value = s.index
            elif s.index in self.misclassified:
                self.w_wrong.value = s.index
            self.w_mode.value = s.mode
            self.w_layer.value = s.layer
            self.w_head.value = s.head
            self.w_discard.value = s.discard_ratio
            self.w_target.value = -1 if s.target is None else s.target
            self.w_discard.disabled = s.mode != "rollout"
            self.w_target.disabled = s.mode != "gradient"
            self.w_cls.value = s.query is None
            self.w_row.disabled = self.w_col.disabled = s.query is None
            if s.query is not None:
                self.w_row.value, self.w_col.value = s.query
            for r, row in enumerate(self.w_patches):
                for c, b in enumerate(row):
                    b.button_style = "info" if s.query == (r, c) else ""
        finally:
            self._updating = False

    def _render(self) -> None:
        self.w_image.value = self.png()
        s = self.state
        m = self.current_map
        peak = divmod(int(m.argmax()), self.grid)
        cls = "" if self.cls_share != self.cls_share else f"; {self.cls_share:.1%} of it goes to the CLS token"
        self.w_status.value = (f"image #{s.index}, mode <b>{s.mode}</b>, layer {s.layer}, head {s.head}: "
                               f"strongest patch ({peak[0]}, {peak[1]}) with {float(m.max()):.3f}{cls}")

    # ---------------------------------------------------------------- display

    def _repr_mimebundle_(self, include=None, exclude=None):
        png = base64.b64encode(self.png()).decode("ascii")
        data = {"text/plain": f"AttentionExplorer: image #{self.state.index}, mode {self.state.mode} "
                              "(interactive in JupyterLab; a static view elsewhere)",
                "image/png": png}
        if self.widget is not None:
            bundle = self.widget._repr_mimebundle_() or {}
            if "application/vnd.jupyter.widget-view+json" in bundle:
                data["application/vnd.jupyter.widget-view+json"] = bundle["application/vnd.jupyter.widget-view+json"]
        return data


def explore_attention(model, data: ImageSet, predictions=None, **kwargs) -> AttentionExplorer:
    """Build the interactive explorer for `model` on `data` (e.g. the test set). Shown when it ends a cell.

    Falls back to a static explorer (call `.set(...)` and display it again) when ipywidgets is missing.
    """
    try:
        import ipywidgets  # noqa: F401
    except ImportError:  # pragma: no cover - ipywidgets is a dependency; this is for trimmed installs
        import warnings

        warnings.warn("ipywidgets is not installed: showing a static attention view (pip install ipywidgets)")
        kwargs["widgets"] = False
    return AttentionExplorer(model, data, predictions=predictions, **kwargs)
