import matplotlib
import pytest

matplotlib.use("Agg")
import numpy as np
import torch

from vitlab.data import DATASETS
from vitlab.training import EvalResult, History
from vitlab.viz.plots import image_grid, plot_confusion_matrix, plot_history, plot_misclassified


def _history():
    h = History()
    for s in range(40):
        for k, v in (("step", s), ("epoch", s // 20), ("loss", 2.0 / (s + 1)), ("acc", s / 40), ("lr", 1e-3), ("grad_norm", 1.0)):
            h.steps[k].append(v)
    for e in (1, 2):
        for k, v in (("epoch", e), ("train_loss", 1 / e), ("train_acc", 0.5 * e), ("val_loss", 1 / e), ("val_acc", 0.4 * e), ("lr", 1e-3), ("seconds", 1.0)):
            h.epochs[k].append(v)
    return h


def test_history_plot_has_titled_labelled_axes():
    fig = plot_history(_history())
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(fig.axes[0].lines) == 3


def test_confusion_plot_has_colorbar():
    cm = np.array([[5, 1], [2, 7]])
    fig = plot_confusion_matrix(cm, ["a", "b"])
    assert len(fig.axes) == 2  # heatmap + colour bar
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["5", "1", "2", "7"]


def test_grid_and_misclassified():
    imgs = torch.rand(6, 28, 28)
    fig = image_grid(imgs, [str(i) for i in range(6)], ncols=4, title="t")
    assert sum(1 for ax in fig.axes if ax.images) == 6
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    r = EvalResult(accuracy=1 / 3, loss=1.0, confusion=np.eye(2), report="", report_dict={}, probs=probs,
                   preds=torch.tensor([0, 1, 0]), labels=torch.tensor([1, 1, 1]), misclassified=torch.tensor([0, 2]))
    fig = plot_misclassified(r, imgs[:3], DATASETS["mnist"].classes)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["1→0 (90%)", "1→0 (60%)"]


def test_grid_on_one_shared_scale():
    imgs = torch.stack([torch.full((28, 28), 0.2), torch.full((28, 28), 0.8)])
    own = [ax.images[0].get_clim() for ax in image_grid(imgs).axes if ax.images]
    shared = [ax.images[0].get_clim() for ax in image_grid(imgs, vmin=0, vmax=1).axes if ax.images]
    assert own[0] != own[1] and shared == [(0, 1), (0, 1)]


def _grad_history():
    h = _history()
    for layer in ("patch_embed", "blocks.0", "blocks.1", "head"):
        h.layer_grad_norms[layer] = [0.1 * (i + 1) for i in range(40)]
    for s in (0, 20, 39):
        h.grad_snapshots.append({"step": s, "params": {"blocks.0.attn.qkv.weight": [1e-3, 1e-2],
                                                      "blocks.0.attn.qkv.bias": [2e-3, 3e-2], "head.weight": [1e-2, 1e-1]}})
    return h


def test_gradient_flow_figures():
    from vitlab.viz.gradients import group_grad_snapshot, plot_grad_flow, plot_grad_snapshots, plot_run_comparison

    h = _grad_history()
    fig = plot_grad_flow(h)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and len(fig.axes) == 2  # heatmap + colour bar
    assert [t.get_text() for t in ax.get_yticklabels()] == ["patch_embed", "blocks.0", "blocks.1", "head"]
    assert ax.images[0].get_array().shape == (4, 40)
    g = group_grad_snapshot(h.grad_snapshots[0])
    assert g["blocks.0.attn.qkv"] == (pytest.approx(1.5e-3), 3e-2) and g["head"] == (1e-2, 1e-1)
    fig = plot_grad_snapshots(h, steps=[0, 39])
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 2 * 2  # 2 groups x 2 steps
    with pytest.raises(ValueError, match="no gradient snapshot at step 7"):
        plot_grad_snapshots(h, steps=[7])
    fig = plot_run_comparison({"a": h, "b": h}, keys=("loss", "grad_norm"))
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    fig = plot_run_comparison({"a": h, "b": h}, keys=("loss", "grad_norm"), marks={"grad_norm": {"b": [3, 7]}})
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 3  # b's two spikes: one more line, two dots
    assert list(fig.axes[1].lines[-1].get_xdata()) == [3, 7]


def test_gradient_flows_share_one_colour_scale():
    from vitlab.viz.gradients import plot_grad_flows

    small, large = _grad_history(), _grad_history()
    for k in large.layer_grad_norms:
        large.layer_grad_norms[k] = [100 * v for v in large.layer_grad_norms[k]]
    fig = plot_grad_flows({"small": small, "large": large}, title="two runs")
    panels = [ax for ax in fig.axes if ax.images]
    bars = [ax for ax in fig.axes if not ax.images]
    assert [ax.get_title() for ax in panels] == ["small", "large"] and len(bars) == 1 and bars[0].get_ylabel()
    for ax in panels:  # one scale, both runs' range: 0.1 (small's least) to 400 (large's most)
        assert ax.images[0].get_clim() == (pytest.approx(np.log10(0.1)), pytest.approx(np.log10(400.0)))


def test_position_and_attention_figures():
    from vitlab.viz.plots import plot_attention_distance, plot_cls_attention, plot_position_similarity

    sim = torch.rand(3, 3, 3, 3)
    fig = plot_position_similarity(sim)
    assert len(fig.axes) == 9 + 1  # the grid plus a colour bar
    a, b = 0.1 * torch.rand(3, 3, 3, 3), -0.5 * torch.rand(3, 3, 3, 3)
    fig = plot_position_similarity({"a": a, "b": b}, label="cosine")
    assert len(fig.axes) == 2 * 9 + 1 and fig.axes[-1].get_ylabel() == "cosine"
    off = torch.cat([s.reshape(9, 9)[~torch.eye(9, dtype=torch.bool)] for s in (a, b)]).abs().max()
    assert {ax.images[0].get_clim() for ax in fig.axes[:-1]} == {(-float(off), float(off))}  # shared, centred at 0
    assert [sf._suptitle.get_text() for sf in fig.subfigs[:2]] == ["a", "b"]
    fig = plot_cls_attention(torch.rand(28, 28), torch.rand(2, 3, 28, 28))
    assert len(fig.axes) == 6 + 1
    fig = plot_attention_distance(torch.rand(3, 4) * 10)
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and len(ax.collections) == 4


def test_open_set_figures():
    from vitlab.methods.openset import calibration
    from vitlab.viz.plots import plot_reliability, plot_score_histograms

    fig = plot_score_histograms({"known": np.random.rand(50), "unknown": np.random.rand(30) - 0.5}, threshold=0.1)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and len(ax.get_legend().get_texts()) == 3
    probs = torch.softmax(torch.randn(100, 3), -1)
    fig = plot_reliability(calibration(probs, torch.randint(0, 3, (100,)), bins=10))
    assert "ECE" in fig.axes[0].get_title()


def test_grouped_bars_share_colours_and_scale():
    import matplotlib.pyplot as plt

    from vitlab.viz.plots import plot_grouped_bars

    values = {"msp": {"leaky": 0.99, "clean": 0.8}, "knn": {"leaky": 0.995, "clean": 0.9}}
    fig = plot_grouped_bars(values, title="t")
    ax = fig.axes[0]
    bars = [p for p in ax.patches]
    assert len(bars) == 4 and ax.get_title() == "t" and ax.get_ylabel() == "AUROC"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["leaky", "clean"]
    assert bars[0].get_facecolor() == bars[1].get_facecolor() != bars[2].get_facecolor()  # one colour per series
    assert ax.get_ylim()[0] <= 0.8 and ax.get_ylim()[1] > 1  # every bar and its label fit
    fig2 = plot_grouped_bars(values, ylim=(0.5, 1.05))
    assert fig2.axes[0].get_ylim() == (0.5, 1.05)
    cuts = lambda f: [line for line in f.axes[0].lines if line.get_gid() == "axis-cut"]
    assert len(cuts(fig2)) == 2  # the axis starts at 0.5: the break mark says so
    assert cuts(plot_grouped_bars(values, ylim=(0, 1.05))) == []  # from 0: nothing to mark
    plt.close("all")


def test_embedding_map_names_each_group():
    from vitlab.viz.plots import plot_embedding

    coords = np.random.rand(60, 2)
    fig = plot_embedding(coords, np.arange(60) % 3, ["a", "b", "c"], title="map")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_title() == "map" and texts == ["a (20)", "b (20)", "c (20)"] and len(ax.collections) == 3
