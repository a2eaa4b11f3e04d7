"""Drive the attention explorer through its widgets and check that what it shows follows."""

import pytest
import torch

from vitlab import ViT, vit_micro_mnist
from vitlab.data import DATASETS, ImageSet
from vitlab.viz.explorer import AttentionExplorer, explore_attention


@pytest.fixture
def explorer():
    torch.manual_seed(0)
    model = ViT(vit_micro_mnist()).eval()
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(12, 28, 28, generator=g) * 255).to(torch.uint8)
    data = ImageSet(images, torch.arange(12) % 10, DATASETS["mnist"], "test")
    return explore_attention(model, data)


def _shown(ex):
    return ex.current_map.clone(), ex.w_image.value


def test_every_control_changes_what_is_shown(explorer):
    ex = explorer
    assert ex.state.mode == "raw" and ex.state.query is None and ex.state.layer == 1
    assert ex.current_map.shape == (4, 4) and ex.w_image.value[:4] == b"\x89PNG"
    steps = [
        (ex.w_index, 5, "index", 5),
        (ex.w_layer, 0, "layer", 0),
        (ex.w_head, 1, "head", 1),
        (ex.w_mode, "rollout", "mode", "rollout"),
        (ex.w_discard, 0.5, "discard_ratio", 0.5),
        (ex.w_head, "max", "head", "max"),
        (ex.w_mode, "gradient", "mode", "gradient"),
        (ex.w_target, 7, "target", 7),
    ]
    for widget, value, field, expected in steps:
        before_map, before_png = _shown(ex)
        widget.value = value
        assert getattr(ex.state, field) == expected, field
        after_map, after_png = _shown(ex)
        assert not torch.allclose(before_map, after_map), f"map unchanged after setting {field}"
        assert after_png != before_png, f"image unchanged after setting {field}"
    assert ex.w_discard.disabled and not ex.w_target.disabled  # only the current mode's controls are live
    ex.w_target.value = -1  # back to "predicted"
    assert ex.state.target is None and ex.w_target.label == "predicted"


def test_query_by_sliders_and_by_clicking_the_patch_grid(explorer):
    ex = explorer
    cls_map = ex.current_map.clone()
    ex.w_cls.value = False  # query becomes the patch under the sliders, (0, 0)
    assert ex.state.query == (0, 0) and not ex.w_row.disabled
    ex.w_row.value, ex.w_col.value = 2, 3
    assert ex.state.query == (2, 3) and ex.query_token == 1 + 2 * 4 + 3
    assert not torch.allclose(cls_map, ex.current_map)
    ex.w_patches[1][2].click()  # a click on the grid moves the query and the sliders
    assert ex.state.query == (1, 2) and (ex.w_row.value, ex.w_col.value) == (1, 2)
    assert ex.w_patches[1][2].button_style == "info" and ex.w_patches[2][3].button_style == ""
    # The raw map is exactly that patch token's attention row over the patches.
    from vitlab.analysis.attention import attention_maps

    x, _ = ex.data.tensors([ex.state.index])
    attn = attention_maps(ex.model, x).attn
    expected = attn[0, ex.state.layer].mean(0)[1 + 1 * 4 + 2, 1:].reshape(4, 4)
    assert torch.allclose(ex.current_map, expected, atol=1e-6)
    assert "CLS token" in ex.w_status.value
    ex.w_cls.value = True
    assert ex.state.query is None and ex.w_row.disabled


def test_misclassified_only(explorer):
    ex = explorer
    assert ex.misclassified  # an untrained model gets most of these wrong
    ex.w_misclassified.value = True
    assert not ex.w_wrong.disabled and ex.w_index.disabled
    target = ex.misclassified[-1]
    ex.w_wrong.value = target
    assert ex.state.index == target
    assert int(ex.current_probs.argmax()) != int(ex.data.labels[target])


def test_static_fallback_bundle_and_programmatic_set(explorer):
    ex = explorer
    bundle = ex._repr_mimebundle_()
    assert bundle["image/png"] and "text/plain" in bundle
    ex.set(mode="rollout", query=(3, 3), layer=0)
    assert ex.w_mode.value == "rollout" and (ex.w_row.value, ex.w_col.value) == (3, 3) and ex.w_layer.value == 0
    with pytest.raises(ValueError, match="unknown explorer setting"):
        ex.set(colour="red")
    static = AttentionExplorer(ex.model, ex.data, widgets=False)
    assert static.widget is None and "application/vnd.jupyter.widget-view+json" not in static._repr_mimebundle_()
    fig = static.figure()
    assert len(fig.axes) >= 3 and all(ax.get_title() for ax in fig.axes[:2])


def test_bad_arguments(explorer):
    with pytest.raises(ValueError, match="outside"):
        AttentionExplorer(explorer.model, explorer.data, index=99, widgets=False)
    with pytest.raises(ValueError, match="mode"):
        AttentionExplorer(explorer.model, explorer.data, mode="heat", widgets=False)
    with pytest.raises(ValueError, match="layer 5 does not exist"):
        explorer.set(layer=5)
    assert explorer.state.layer == 1  # the bad value was not kept


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two matplotlib colours."""
    import matplotlib.colors as mcolors

    def lum(c):
        lin = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in mcolors.to_rgb(c)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_patch_grid_numbers_read_on_every_cell_of_the_colour_map(explorer):
    import matplotlib

    from vitlab.viz.explorer import CMAP, text_colour

    cmap = matplotlib.colormaps[CMAP]
    worst = min(_contrast(text_colour(v), cmap(v)) for v in torch.linspace(0, 1, 201).tolist())
    assert worst >= 4.5  # WCAG AA for text, on the darkest purple and the palest yellow alike
    assert text_colour(0.0) == "white" and text_colour(1.0) == "black"
    ex = explorer
    ex.set(mode="rollout", discard_ratio=0.9, query=(1, 2))  # a map with both dark and light cells
    fig = ex.figure()
    numbers = list(fig.axes[1].texts)
    assert len(numbers) == ex.grid ** 2
    m, vmax = ex.current_map.flatten(), float(ex.current_map.max())
    assert [t.get_color() for t in numbers] == [text_colour(float(v) / vmax) for v in m]
    assert {"black", "white"} == {t.get_color() for t in numbers}


def test_the_widget_wraps_and_shrinks_to_its_column(explorer):
    import ipywidgets as W

    ex = explorer
    assert ex.w_image.layout.max_width == "100%" and ex.w_image.layout.height == "auto"
    boxes, todo = [], [ex.widget]
    while todo:
        w = todo.pop()
        if isinstance(w, W.Box):
            boxes.append(w)
            todo.extend(w.children)
    rows = [b for b in boxes if type(b) is W.HBox]
    assert rows and all(b.layout.flex_flow == "row wrap" for b in rows)  # rows wrap instead of overflowing
    assert all(w.layout.max_width == "100%" for w in (ex.w_layer, ex.w_discard, ex.w_row, ex.w_col))
