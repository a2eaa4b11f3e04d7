import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vitlab.cli import main
from vitlab.images import ImageError, read_digit, to_mnist_style


def _one_line_error(capsys, argv, pattern):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("vitlab: error:") and pattern in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv,pattern", [
    (["train", "--epochs", "-1"], "expected a positive integer"),
    (["train", "--learning-rate", "fast"], "expected a finite number > 0, got 'fast'"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--patch_size", "5", "--epochs", "1"], "not divisible by patch_size 5"),
    (["train", "--model", "cnn", "--patch_size", "7"], "applies to the ViT only"),
    (["train", "--patch_overlap", "7", "--epochs", "1"], "patch_overlap must be in [0, patch_size)"),
    (["train", "--ema_decay", "1.5", "--epochs", "1"], "expected a number in [0, 1), got 1.5"),
    (["train", "--device", "cuda:0"] if not torch.cuda.is_available() else ["train", "--device", "tpu"], "device"),
    (["evaluate", "--checkpoint", "no/such/file.pt"], "checkpoint not found"),
    (["predict", "--checkpoint", "no/such/file.pt", "x.png"], "checkpoint not found"),
    (["evaluate"], "the following arguments are required: --checkpoint"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, pattern):
    _one_line_error(capsys, argv, pattern)


def test_module_entry_point_exit_code():
    r = subprocess.run([sys.executable, "-m", "vitlab", "train", "--batch_size", "0"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["vitlab: error: argument --batch_size/--batch-size: expected a positive integer, got 0 (see `vitlab train --help`)"]


def _digit_png(path, digit_img, dark_on_light=True, size=(112, 112)):
    a = digit_img.numpy().astype(np.uint8)
    im = Image.fromarray(255 - a if dark_on_light else a).resize(size, Image.BILINEAR)
    canvas = Image.new("L", (size[0] + 60, size[1] + 40), 255 if dark_on_light else 0)
    canvas.paste(im, (45, 10))  # off centre, padded, non-square
    canvas.convert("RGB").save(path)


def test_to_mnist_style_recovers_a_digit(mnist, tmp_path):
    for i in range(5):
        x = mnist.test.images[i]
        _digit_png(tmp_path / f"d{i}.png", x, dark_on_light=(i % 2 == 0))
        y = read_digit(tmp_path / f"d{i}.png")
        assert y.shape == (28, 28) and 0 <= y.min() and y.max() <= 1
        # The same digit, re-centred: best overlap within a one-pixel shift.
        cos = max(torch.nn.functional.cosine_similarity(y.roll((dy, dx), (0, 1)).flatten(), x.float().flatten(), dim=0)
                  for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        assert cos > 0.8, (i, float(cos))


def test_image_errors(tmp_path):
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    with pytest.raises(ImageError, match="blank.png: the image is blank"):
        read_digit(tmp_path / "blank.png")
    (tmp_path / "fake.png").write_text("hello")
    with pytest.raises(ImageError, match="fake.png: not a readable image"):
        read_digit(tmp_path / "fake.png")
    with pytest.raises(ImageError, match="expected a 2-D grayscale image"):
        to_mnist_style(np.zeros((3, 4, 4)))


def test_train_evaluate_predict_end_to_end(mnist, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["train", "--preset", "vit_micro_mnist", "--epochs", "1", "--batch-size", "128", "--train_subset", "2000",
            "--max_steps_per_epoch", "10", "--runs_dir", str(runs), "--name", "e2e", "--no_progress", "--seed", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out
    run = runs / "e2e"
    for f in ("checkpoint.pt", "metrics.json", "loss_curves.png", "confusion_matrix.png", "misclassified.png"):
        assert (run / f).is_file(), f
    assert list((run / "tb").glob("events.out.tfevents.*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_images"] == len(mnist.test) and metrics["epochs"] == 1

    # A second train with the same name neither trains nor overwrites.
    before = (run / "checkpoint.pt").read_bytes()
    _one_line_error(capsys, argv, "already exists")
    assert (run / "checkpoint.pt").read_bytes() == before

    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert f"accuracy {100 * metrics['test_accuracy']:.2f}%" in out and "precision" in out
    assert (tmp_path / "ev" / "confusion_matrix.png").is_file()

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"digit{i}.png")
        _digit_png(paths[-1], mnist.test.images[i])
    assert main(["predict", "--checkpoint", str(run / "checkpoint.pt"), "--top", "2", *map(str, paths)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(l.startswith(str(p)) and "%" in l for l, p in zip(lines, paths))

    (tmp_path / "notes.txt").write_text("not an image")
    for bad, why in (("notes.txt", "not a readable image"), ("nope.png", "nope.png: file not found")):
        assert main(["predict", "--checkpoint", str(run / "checkpoint.pt"), str(tmp_path / bad)]) == 1
        cap = capsys.readouterr()
        assert cap.out == "" and why in cap.err.splitlines()[0] and "Traceback" not in cap.err
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    _one_line_error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "bad.pt")], "not a readable checkpoint")


def test_train_init_fine_tunes_a_lab_checkpoint(mnist, tmp_path, capsys):
    from vitlab import load_model

    runs = tmp_path / "runs"
    common = ["--epochs", "1", "--batch-size", "128", "--train_subset", "1000", "--max_steps_per_epoch", "4",
              "--runs_dir", str(runs), "--no_progress", "--no_tensorboard"]
    assert main(["train", "--preset", "vit_micro_mnist", "--name", "base", *common]) == 0
    base = runs / "base" / "checkpoint.pt"
    assert main(["train", "--init", str(base), "--train_only", "head", "--name", "probe", *common]) == 0
    capsys.readouterr()
    b, _ = load_model(base)
    p, ckpt = load_model(runs / "probe" / "checkpoint.pt")
    assert p.cfg == b.cfg and ckpt["extra"]["train_only"] == ["head"]
    sb, sp = b.state_dict(), p.state_dict()
    assert all(torch.equal(sb[k], sp[k]) for k in sb if not k.startswith("head."))  # frozen backbone
    assert not torch.equal(sb["head.weight"], sp["head.weight"])  # the head learned
    _one_line_error(capsys, ["train", "--train_only", "head", *common], "--train_only needs --init")
    _one_line_error(capsys, ["train", "--init", str(base), "--patch_size", "4", *common], "cannot be combined with --init")
    _one_line_error(capsys, ["train", "--init", str(tmp_path / "none.pt"), *common], "checkpoint not found")
    _one_line_error(capsys, ["train", "--init", str(base), "--train_only", "heads", "--name", "x", *common],
                    "train_only names no parameters")
