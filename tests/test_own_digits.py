"""Notebook 11's pieces: MNIST-style preprocessing steps, strokes, fonts, corruptions, the digit check, the one
reading path (predict, --explain, the drawing pad's Python side)."""

import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from vitlab import CNNConfig, SmallCNN, TrainConfig, Trainer, ViT, vit_micro_mnist
from vitlab.cli import main
from vitlab.data.corruptions import CORRUPTIONS, SWEEPS, corrupt, corrupt_set
from vitlab.data.fonts import FontError, bundled_fonts, render_char, render_chars
from vitlab.images import PREPROCESS_STEPS, ImageError, restyle, to_mnist_style
from vitlab.apps.digitcheck import CACHE_SUFFIX, for_checkpoint
from vitlab.apps.reading import DigitReader
from vitlab.strokes import DIGIT_STROKES, check_strokes, random_scribble, render_strokes

# --------------------------------------------------------------------------- preprocessing, strokes, fonts


def _photo(digit: torch.Tensor) -> np.ndarray:
    """A 28x28 MNIST digit as dark ink on light paper, enlarged 3x, in the top-left of a 120x150 sheet."""
    big = np.asarray(Image.fromarray(digit.numpy()).resize((84, 84), Image.BILINEAR), dtype=np.float32)
    sheet = np.full((120, 150), 230.0, dtype=np.float32)
    sheet[5:89, 8:92] = 230.0 - 0.85 * big
    return sheet


def test_each_preprocessing_step_can_be_skipped_and_matters(mnist):
    # A photo comes back as (nearly) the MNIST digit. Not exactly: MNIST's own box fit and anti-aliasing differ by a
    # pixel here and there, which costs a thin digit (a 1, a slanted 7) more correlation than a round one.
    corr = [np.corrcoef(to_mnist_style(_photo(d)).ravel(), d.numpy().ravel())[0, 1] for d in mnist.test.images[:16]]
    assert np.median(corr) > 0.95 and min(corr) > 0.7, np.round(corr, 3)
    x = mnist.test.images[0]
    photo = _photo(x)
    full = to_mnist_style(photo)
    assert full.shape == (28, 28) and 0 <= full.min() and full.max() <= 1
    ref = x.numpy() / 255.0
    outs = {s: to_mnist_style(photo, skip=[s]) for s in PREPROCESS_STEPS}
    assert (outs["invert"] > 0.5).sum() > 2 * (full > 0.5).sum()  # a bright sheet: the background was not turned dark
    assert (outs["crop"] > 0.1).sum() < (full > 0.1).sum() / 2  # the whole sheet fitted in the box: a tiny digit
    rows = np.nonzero((outs["fit_box"] > 0.1).any(1))[0]
    assert rows.max() - rows.min() >= 25  # stretched to the frame, not in a 20x20 box
    ys, xs = np.indices(full.shape)
    com = lambda a: ((ys * a).sum() / a.sum(), (xs * a).sum() / a.sum())  # noqa: E731
    assert np.allclose(com(full), 14.0, atol=0.5)  # where MNIST's own digits have their centre of mass
    assert not np.array_equal(outs["centre_of_mass"], full)
    grainy = photo + np.random.default_rng(0).normal(0, 8, photo.shape)  # paper grain: no crop over the sheet
    g = to_mnist_style(grainy)  # up to a 1-pixel shift (MNIST's own centring rounds to whole pixels)
    assert max(np.corrcoef(np.roll(g, (dy, dx), (0, 1)).ravel(), ref.ravel())[0, 1]
               for dy in (-1, 0, 1) for dx in (-1, 0, 1)) > 0.9
    noise = to_mnist_style(np.random.default_rng(1).uniform(0, 1, (64, 64)))  # no digit, yet something to judge
    assert noise.shape == (28, 28) and (noise > 0.1).mean() > 0.1
    with pytest.raises(ValueError, match="unknown preprocessing step"):
        to_mnist_style(photo, skip=["deskew"])
    with pytest.raises(ImageError, match="blank"):
        to_mnist_style(np.ones((30, 30)))
    batch = restyle(np.stack([photo, photo]))
    assert batch.shape == (2, 28, 28) and torch.allclose(batch[0], torch.from_numpy(full))


def test_strokes_render_and_validate():
    img = render_strokes(DIGIT_STROKES[1], size=100)
    assert img.shape == (100, 100) and img.dtype == np.float32 and img.max() == pytest.approx(1.0, abs=0.01)
    assert img[:, :30].max() < 0.05 and img[50, 45:60].max() > 0.9  # a vertical stroke near x = 0.52
    assert render_strokes([], size=50).max() == 0
    dot = render_strokes([[(0.5, 0.5)]], size=50)  # a single point is a round dot
    assert dot[25, 25] > 0.9 and dot[0, 0] == 0
    with pytest.raises(ValueError, match="a point must be"):
        check_strokes([[(0.1, 0.2, 0.3)]])
    with pytest.raises(ValueError, match="not finite"):
        check_strokes([[(float("nan"), 0.2)]])
    s = random_scribble(np.random.default_rng(0))
    assert 1 <= len(s) <= 3 and all(2 <= len(p) <= 6 for p in s)


def test_fonts_render_digits_and_name_what_they_cannot(tmp_path):
    fonts = bundled_fonts()
    assert len(fonts) >= 10 and all(f.suffix == ".ttf" for f in fonts)
    a = render_char("7", fonts[0])
    assert a.ndim == 2 and a.max() > 0.5
    d = to_mnist_style(a)
    assert d.shape == (28, 28)
    with pytest.raises(FontError, match="cannot render"):
        render_char("\u4e2d", [f for f in fonts if f.name == "DejaVuSans.ttf"][0])  # no CJK glyph in DejaVu
    bad = tmp_path / "broken.ttf"
    bad.write_bytes(b"not a font")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        images, meta = render_chars("7\u4e2d", [bad, fonts[0]])
    msgs = [str(x.message) for x in w]
    assert any("broken.ttf" in m and "cannot read font" in m for m in msgs), msgs
    assert any(fonts[0].name in m and "cannot render" in m for m in msgs), msgs
    assert meta == [("7", fonts[0].name)] and len(images) == 1
    with pytest.raises(FontError, match="no fonts given"):
        render_chars("7", [])


# --------------------------------------------------------------------------- corruptions


def test_corruptions_keep_shape_and_dtype_and_do_what_they_say(mnist):
    x = mnist.test.images[:8]
    for kind, levels in SWEEPS.items():
        for level in levels:
            y = corrupt(x, kind, level)
            assert y.shape == x.shape and y.dtype == torch.uint8, kind
    for kind in ("rotation", "shear", "shift", "noise", "blur", "occlusion", "inversion", "thickness"):
        assert torch.equal(corrupt(x, kind, 0), x), kind  # level 0 is the clean digit
    assert torch.equal(corrupt(x, "scale", 1.0), x)
    assert corrupt(x, "thickness", 1).float().mean() > x.float().mean() > corrupt(x, "thickness", -1).float().mean()
    assert torch.equal(corrupt(x, "inversion", 1.0), 255 - x)
    f = x.float() / 255
    r = corrupt(f, "rotation", 90)  # a quarter turn, exact up to interpolation
    assert torch.allclose(r, torch.rot90(f, 1, dims=(1, 2)), atol=0.02)
    s = corrupt(f, "shift", 3)
    assert torch.allclose(s[:, 3:, 3:], f[:, :-3, :-3], atol=1e-4)
    assert torch.equal(corrupt(x, "noise", 0.3, seed=1), corrupt(x, "noise", 0.3, seed=1))
    o = corrupt(torch.full((4, 28, 28), 255, dtype=torch.uint8), "occlusion", 6)
    assert ((o == 0).sum(dim=(1, 2)) == 36).all()
    with pytest.raises(ValueError, match="unknown corruption 'smudge'"):
        corrupt(x, "smudge", 1)
    with pytest.raises(ValueError, match=r"expected \(N, H, W\)"):
        corrupt(x[0], "blur", 1)
    cs = corrupt_set(mnist.test.take(16), "blur", 1.0)
    assert len(cs) == 16 and "blur=1.0" in cs.name and set(CORRUPTIONS) == set(SWEEPS)


# --------------------------------------------------------------------------- the digit check and the reading path


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory):
    """A micro ViT trained for real on 3,000 digits (1 epoch), as a checkpoint; and a CNN trained 3 steps."""
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=1, batch_size=64, augment=None, device="cpu", max_steps_per_epoch=60)
    Trainer(ViT(vit_micro_mnist()), mnist.train.take(3000), None, cfg, checkpoint_path=d / "vit.pt",
            progress=False, verbose=False).fit()
    cfg = TrainConfig(epochs=1, batch_size=64, augment=None, device="cpu", max_steps_per_epoch=3)
    Trainer(SmallCNN(CNNConfig()), mnist.train.take(500), None, cfg, checkpoint_path=d / "cnn.pt",
            progress=False, verbose=False).fit()
    return d


def test_digit_check_threshold_holds_on_test_digits_and_flags_noise(mnist, trained):
    from vitlab.training.checkpoints import load_classifier

    path = trained / "vit.pt"
    model, ckpt = load_classifier(path)
    before = path.read_bytes()
    check = for_checkpoint(model, ckpt, path)
    cache = path.with_name(path.name + CACHE_SUFFIX)
    assert cache.is_file() and path.read_bytes() == before  # cached beside it; the checkpoint is never touched
    assert len(check.val_scores) == len(mnist.val) and check.bank.shape[0] == len(mnist.train)
    assert check.digit_like(check.val_scores).mean() >= 0.95
    test_flagged = 1 - check.digit_like(check.scores_of(model, mnist.test.take(2000))).mean()
    assert 0.01 < test_flagged < 0.12  # about 5% of unseen real digits, as on validation
    # Uniform noise is flagged (the CNN's pooled features; a 60-step micro ViT's pre-logits still take noise for a
    # digit, the default ViT flags 92%: benchmarks/digitcheck.py).
    from vitlab.experiments.own_digits import flag_rates

    cnn, cnn_ckpt = load_classifier(trained / "cnn.pt")
    cnn_check = for_checkpoint(cnn, cnn_ckpt, trained / "cnn.pt")
    assert cnn_check.layer == "pooled"
    noise = np.random.default_rng(0).uniform(0, 255, (200, 28, 28))
    assert flag_rates(cnn, cnn_check, {"noise": noise}, mnist.val)["noise"] > 0.9

    stamp = cache.stat().st_mtime_ns
    again = for_checkpoint(model, ckpt, path)
    assert cache.stat().st_mtime_ns == stamp and again.threshold == check.threshold  # read from the cache
    cache.write_bytes(b"garbage")
    assert for_checkpoint(model, ckpt, path).threshold == pytest.approx(check.threshold)  # a bad cache is refitted
    torch.load(cache, weights_only=True)  # and replaced by a good one


def _png(path, array01, dark_on_light=True):
    a = (255 * (1 - array01 if dark_on_light else array01)).round().astype(np.uint8)
    Image.fromarray(a).save(path)
    return path


def test_predict_flags_and_explains(trained, tmp_path, capsys):
    files = [_png(tmp_path / f"draw{d}.png", render_strokes(DIGIT_STROKES[d])) for d in (1, 7)]
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)).save(noise)
    files.append(noise)
    out = tmp_path / "explain"
    assert main(["predict", "--checkpoint", str(trained / "vit.pt"), *map(str, files), "--explain", str(out)]) == 0
    cap = capsys.readouterr()
    lines = cap.out.strip().splitlines()
    assert len(lines) == 3, cap
    for ln in lines:
        m = re.fullmatch(r"(\S+): +(\d) \(([\d.]+)%\)(  not like a digit\? \(score ([\d.-]+) < ([\d.-]+)\))?", ln)
        assert m, ln
        if m.group(4):
            assert float(m.group(5)) < float(m.group(6))
    assert main(["predict", "--checkpoint", str(trained / "cnn.pt"), str(noise)]) == 0
    assert "not like a digit? (score" in capsys.readouterr().out  # uniform noise, flagged and still classified
    pngs = sorted(p.name for p in out.iterdir())
    assert pngs == ["draw1.explain.png", "draw7.explain.png", "noise.explain.png"]
    assert Image.open(out / "draw7.explain.png").size[0] > 600
    # --no-check: no column, nothing fitted
    cnn = tmp_path / "cnn.pt"
    cnn.write_bytes((trained / "cnn.pt").read_bytes())
    assert main(["predict", "--checkpoint", str(cnn), "--no-check", str(noise)]) == 0
    assert "digit" not in capsys.readouterr().out and not cnn.with_name("cnn.pt" + CACHE_SUFFIX).exists()
    # --explain on a CNN: no attention panel, still a picture
    assert main(["predict", "--checkpoint", str(cnn), str(files[1]), "--explain", str(tmp_path / "cnnx")]) == 0
    assert (tmp_path / "cnnx" / "draw7.explain.png").is_file()
    capsys.readouterr()
    (tmp_path / "afile").write_text("x")
    code = main(["predict", "--checkpoint", str(cnn), str(files[0]), "--explain", str(tmp_path / "afile")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"vitlab: error: --explain {tmp_path / 'afile'}: {tmp_path / 'afile'} is a file, not a folder"


def test_digit_pad_reads_draws_undoes_and_saves(trained, tmp_path):
    from vitlab import DigitPad

    pad = DigitPad(trained / "vit.pt", save_dir=tmp_path)
    assert pad.result == {"n": 0, "empty": True} and pad.reading is None
    r = pad.draw(DIGIT_STROKES[7])
    assert r is pad.reading and pad.result["n"] == 1 and pad.result["predicted"] == r.predicted
    assert len(pad.result["digit"]) == 784 and len(pad.result["attention"]) == 784
    assert pad.result["probs"] == pytest.approx(r.probs.tolist(), abs=1e-4) and abs(sum(pad.result["probs"]) - 1) < 1e-3
    assert isinstance(pad.result["digit_like"], bool) and pad.result["threshold"] == pad.reader.check.threshold
    reader_direct = DigitReader.from_checkpoint(trained / "vit.pt").read(render_strokes(DIGIT_STROKES[7]))
    assert np.allclose(reader_direct.probs, r.probs, atol=1e-6)  # the pad and predict share one path
    pad.strokes = pad.strokes + [[[0.1, 0.9], [0.2, 0.95]]]
    assert pad.result["n"] == 2
    pad.undo()
    assert pad.result["n"] == 1
    first, second = pad.save(), pad.save()
    assert (first.name, second.name) == ("digit_001.png", "digit_002.png")  # never over an earlier save
    back = np.asarray(Image.open(first), dtype=np.float32) / 255
    assert back.shape == (280, 280) and back.mean() > 0.8  # black ink on white, as drawn
    bundle = pad._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n" and "application/vnd.jupyter.widget-view+json" in data
    pad._on_msg(pad, {"event": "save"}, [])
    assert pad.status == f"saved {tmp_path / 'digit_003.png'}"
    pad.clear()
    assert pad.result == {"n": 0, "empty": True}
    pad._on_msg(pad, {"event": "save"}, [])
    assert pad.status == "not saved: nothing to save: the pad is empty"
    with pytest.raises(ValueError, match="a point must be"):
        pad.strokes = [[[0.1]]]
    with pytest.raises(ValueError, match="pen must be"):
        DigitPad(pad.reader, pen=2)

    cnn_pad = DigitPad(trained / "cnn.pt", check=False)
    cnn_pad.draw(DIGIT_STROKES[1])
    assert cnn_pad.result["attention"] is None and cnn_pad.result["digit_like"] is None


def test_pad_and_check_with_a_three_class_model(mnist, tmp_path):
    """A relabelled checkpoint (notebook 07's 3 / 8 / unknown): the pad shows its own class names, and the check is
    fitted on the relabelled training and validation splits the checkpoint records."""
    from vitlab import DigitPad
    from vitlab.data.splits import known_unknown_sets

    osd = known_unknown_sets(mnist, [3, 8], [0, 1, 2, 5])
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=1, batch_size=64, augment=None, device="cpu", max_steps_per_epoch=3)
    Trainer(ViT(vit_micro_mnist(num_classes=3)), osd.with_unknown("train"), None, cfg,
            checkpoint_path=tmp_path / "three.pt", progress=False, verbose=False).fit()
    pad = DigitPad(tmp_path / "three.pt")
    pad.draw(DIGIT_STROKES[3])
    assert pad.result["classes"] == ["3", "8", "unknown"] and len(pad.result["probs"]) == 3
    n_known = int(sum((mnist.val.labels == d).sum() for d in (0, 1, 2, 3, 5, 8)))
    assert len(pad.reader.check.val_scores) == n_known  # digits 4, 6, 7, 9 were never the model's: left out


def test_mean_corrupted_accuracy_leaves_out_each_sweeps_clean_level():
    from vitlab.analysis.robustness import mean_corrupted_accuracy

    curves = {"thickness": {"levels": [-1, 0, 1, 2], "A": [0.4, 1.0, 0.9, 0.6]},  # clean is the second level here
              "rotation": {"levels": [0, 15], "A": [1.0, 0.8]}, "scale": {"levels": [1.0, 0.5], "A": [1.0, 0.2]}}
    assert mean_corrupted_accuracy(curves, "A") == pytest.approx((0.4 + 0.9 + 0.6 + 0.8 + 0.2) / 5)
    assert mean_corrupted_accuracy(curves, "A", skip_clean=False) == pytest.approx(np.mean([0.4, 1, .9, .6, 1, .8, 1, .2]))
