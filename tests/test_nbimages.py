"""tools/nbimages.py: the notebooks' figures re-encoded in a 256-colour palette, smaller and (to the eye) the same."""

import base64
import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import nbimages  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")).astype(int)


def test_a_scatter_with_many_colours_shrinks_and_looks_the_same():
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(*rng.normal(size=(2, 5000)), c=rng.integers(0, 10, 5000), cmap="tab10", s=2, alpha=0.6)
    ax.set(title="a UMAP-like scatter", xlabel="x", ylabel="y")
    raw = _png(fig)
    new = nbimages.compact_png(raw)
    assert len(new) < 0.6 * len(raw)
    a, b = _pixels(raw), _pixels(new)
    assert a.shape == b.shape
    assert len(np.unique(a.reshape(-1, 4), axis=0)) > 256  # so this is the quantised case
    assert np.abs(a - b).mean() < 1.0  # of 255: invisible


def test_few_colours_keep_every_pixel():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.imshow(np.arange(12).reshape(3, 4), cmap="viridis", interpolation="nearest")
    ax.axis("off")
    raw = _png(fig)
    assert len(Image.open(io.BytesIO(raw)).getcolors(256)) <= 256
    new = nbimages.compact_png(raw)
    assert len(new) < len(raw) and np.array_equal(_pixels(raw), _pixels(new))


def test_see_through_and_palette_images_are_left_alone():
    buf = io.BytesIO()
    Image.new("RGBA", (20, 20), (255, 0, 0, 128)).save(buf, format="PNG")
    assert nbimages.compact_png(buf.getvalue()) == buf.getvalue()
    buf = io.BytesIO()
    Image.new("P", (20, 20)).save(buf, format="PNG")
    assert nbimages.compact_png(buf.getvalue()) == buf.getvalue()


def test_the_command_rewrites_only_the_png_outputs(tmp_path, capsys):
    fig, ax = plt.subplots()
    ax.scatter(*np.random.default_rng(1).normal(size=(2, 3000)), s=3, alpha=0.5)
    png = base64.b64encode(_png(fig)).decode("ascii")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plot()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="99.36%\n"),
                    nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})]
    nb.cells = [cell]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert nbimages.main([str(path)]) == 0
    assert "n.ipynb: images" in capsys.readouterr().out
    out = nbformat.read(path, as_version=4).cells[0].outputs
    assert out[0].text == "99.36%\n" and out[1].data["text/plain"] == "<Figure>"
    assert len(out[1].data["image/png"]) < len(png)
    assert nbimages.main([str(tmp_path / "missing.ipynb")]) == 1
    assert "cannot read" in capsys.readouterr().err
