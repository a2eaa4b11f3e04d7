"""Synthetic digits: the font and stroke generators, the conditional VAE, and notebook 13's run helpers."""

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from vitlab.data.fonts import FontError, bundled_fonts
from vitlab.data.synthetic import GENERATORS, FontGlyphs, Randomise, generate, stroke_paths, synthetic_set


def _centre_of_mass(img: torch.Tensor) -> tuple:
    a = img.float()
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    return float((ys * a).sum() / a.sum()), float((xs * a).sum() / a.sum())


@pytest.mark.parametrize("kind", GENERATORS)
def test_generators_make_balanced_mnist_style_digits(kind):
    x, y, names = generate(kind, 40, seed=3, fonts=bundled_fonts()[:6])
    assert x.shape == (40, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [4] * 10  # classes balanced
    assert len(names) == 40 and (set(names) == {"strokes"} if kind == "strokes" else
                                 set(names) <= {f.name for f in bundled_fonts()[:6]})
    assert (x.amax(dim=(1, 2)) == 255).all()  # the brightest ink is white, as in MNIST
    border = torch.cat([x[:, :2].flatten(1), x[:, -2:].flatten(1)], 1)
    assert border.float().mean() < 5  # a black frame around the digit
    cy, cx = np.mean([_centre_of_mass(a) for a in x], axis=0)
    assert abs(cy - 14) < 1.0 and abs(cx - 14) < 1.0  # centred by mass (then a 1-pixel wobble at most)
    again = generate(kind, 40, seed=3, fonts=bundled_fonts()[:6])[0]
    assert torch.equal(x, again)  # seeded
    assert not torch.equal(x, generate(kind, 40, seed=4, fonts=bundled_fonts()[:6])[0])


def test_randomisation_settings_change_the_digits():
    fonts = bundled_fonts()[:3]
    plain = Randomise(weight=(0, 0), slant=0, rotation=0, aspect=0, thickness=0, elastic=0, wobble=0, ink_noise=0)
    a, _, _ = generate("fonts", 20, seed=0, fonts=fonts, randomise=plain)
    b, _, _ = generate("fonts", 20, seed=0, fonts=fonts, randomise=Randomise())
    assert not torch.equal(a, b)
    thick = dataclasses.replace(plain, weight=(0.08, 0.08))
    c, _, _ = generate("fonts", 20, seed=0, fonts=fonts, randomise=thick)
    assert (c > 128).sum() > (a > 128).sum()  # dilation: more ink


def test_stroke_paths_stay_on_the_canvas_and_vary():
    rng = np.random.default_rng(0)
    paths = [stroke_paths(d, rng, Randomise()) for d in range(10) for _ in range(5)]
    pts = np.array([p for strokes in paths for s in strokes for p in s])
    assert pts.min() > -0.2 and pts.max() < 1.2
    assert stroke_paths(8, np.random.default_rng(1), Randomise()) != stroke_paths(8, np.random.default_rng(2), Randomise())


def test_bad_input_unknown_generator_no_fonts_and_fonts_without_digits(tmp_path):
    with pytest.raises(ValueError, match="unknown generator 'gan'"):
        generate("gan", 10)
    with pytest.raises(ValueError, match="unknown generator 'gan'"):
        synthetic_set(["fonts", "gan"], 10, like=None)
    with pytest.raises(ValueError, match="no generator given"):
        synthetic_set([], 10, like=None)
    with pytest.raises(FontError, match="no fonts given"):
        generate("fonts", 10, fonts=[])
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    import matplotlib

    display = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSansDisplay.ttf"  # no digits in it
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        glyphs = FontGlyphs([broken, display, bundled_fonts()[0]], sizes=(24,))
    msgs = [str(x.message) for x in w]
    # An unreadable file is a problem worth a warning; a subset font without digits is expected: no warning, but
    # `skipped` says what was left out and why.
    assert len(msgs) == 1 and "broken.ttf" in msgs[0], msgs
    assert glyphs.skipped == {"broken.ttf": "cannot be read as a font",
                              "DejaVuSansDisplay.ttf": "no glyph for digit(s) 0123456789"}
    assert glyphs.fonts == [bundled_fonts()[0].name]
    with pytest.raises(FontError, match="no usable font"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FontGlyphs([broken], sizes=(24,))


def test_synthetic_set_is_an_imageset_like_the_real_one(mnist):
    s = synthetic_set(("fonts", "strokes"), 21, like=mnist.train, seed=0, fonts=bundled_fonts()[:4])
    assert len(s) == 21 and s.info == mnist.train.info and s.name == "synthetic/fonts+strokes"
    assert s.sources.count("strokes") == 10 and set(s.fonts) <= {f.name for f in bundled_fonts()[:4]}
    x, y = s.tensors()
    assert x.shape == (21, 1, 28, 28) and y.shape == (21,)
    both = s.concat(mnist.train.take(5))
    assert len(both) == 26 and torch.equal(both.images[21:], mnist.train.take(5).images)
    t = mnist.train.take(3).tile(8)
    assert len(t) == 8 and torch.equal(t.images[3], t.images[0])


def test_cvae_trains_with_the_trainer_saves_as_its_kind_and_samples_digits(mnist, tmp_path):
    from vitlab.data import Augment
    from vitlab.methods.cvae import CVAEObjective, cvae_digits
    from vitlab.models import MODEL_TYPES, CVAEConfig
    from vitlab.training.checkpoints import load_model
    from vitlab.training.config import TrainConfig
    from vitlab.training import QUIET, RunSpec
    from vitlab.training.runs import train_or_load

    assert "cvae" in MODEL_TYPES
    train = mnist.train.take(200)
    tc = TrainConfig(epochs=3, batch_size=20, lr=5e-3, warmup_epochs=0.0, grad_clip=0.0, label_smoothing=0.0,
                     augment=Augment())
    obj = CVAEObjective(mnist.info.mean, mnist.info.std)
    run = train_or_load(RunSpec("cvae", CVAEConfig(hidden=64), tc), train, None, runs_dir=tmp_path, objective=obj,
                        show=QUIET)
    model, ckpt = load_model(run.checkpoint)
    assert ckpt["model_type"] == "cvae" and type(model).__name__ == "CVAE"
    x, y = train.tensors(torch.arange(50))
    pixels = (x * mnist.info.std + mnist.info.mean).clamp(0, 1)
    untrained = MODEL_TYPES["cvae"][1](CVAEConfig(hidden=64))
    with torch.no_grad():
        torch.manual_seed(0)
        trained_loss = float(model.loss(pixels, y))
        torch.manual_seed(0)
        assert trained_loss < float(untrained.loss(pixels, y)) - 150  # it learned (nats per image)
    s = cvae_digits(model, 30, mnist.train, seed=1)
    assert s.images.shape == (30, 28, 28) and s.images.dtype == torch.uint8 and s.info == mnist.train.info
    assert torch.bincount(s.labels, minlength=10).tolist() == [3] * 10
    with pytest.raises(TypeError, match="trains a CVAE"):
        obj(torch.nn.Linear(2, 2), x, y)


def test_a_vit_takes_real_training_steps_on_synthetic_digits(mnist, tmp_path):
    from vitlab.models import vit_tiny_mnist
    from vitlab.training.config import TrainConfig
    from vitlab.training import QUIET, RunSpec
    from vitlab.training.runs import train_or_load

    s = synthetic_set(("fonts", "strokes"), 64, like=mnist.train, seed=0, fonts=bundled_fonts()[:4])
    run = train_or_load(RunSpec("syn", vit_tiny_mnist(), TrainConfig(epochs=1, batch_size=32)), s, mnist.val.take(100),
                        runs_dir=tmp_path, show=QUIET)
    assert run.trained_now and np.isfinite(run.history.last("val_acc"))


def test_few_label_run_rejects_an_unknown_arm(mnist):
    from vitlab.experiments.synthetic import few_label_spec

    with pytest.raises(ValueError, match="unknown arm 'both'"):
        few_label_spec(10, "both")
