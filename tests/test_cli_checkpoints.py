"""Every kind of checkpoint through `vitlab evaluate` and `vitlab predict`: a result, or one line that says why not."""

import re

import pytest
import torch
from test_cli import _digit_png, _one_line_error

from vitlab import CNNConfig, SmallCNN, TrainConfig, Trainer, ViT, save_checkpoint, vit_micro_mnist
from vitlab.cli import main
from vitlab.data.splits import known_unknown_sets
from vitlab.methods.openset import known_unknown_split
from vitlab.training import read_checkpoint


def _train(model, train_set, path, steps=3):
    """A real (short) training run, so the checkpoint holds what training writes: classes, split, label map."""
    cfg = TrainConfig(epochs=1, batch_size=64, max_steps_per_epoch=steps, augment=None, device="cpu")
    Trainer(model, train_set, None, cfg, checkpoint_path=path, progress=False, verbose=False).fit()
    return path


def _predict_lines(capsys, ckpt, paths):
    assert main(["predict", "--checkpoint", str(ckpt), *map(str, paths)]) == 0
    return capsys.readouterr().out.strip().splitlines()


@pytest.fixture(scope="module")
def digits(mnist, tmp_path_factory):
    d = tmp_path_factory.mktemp("digits")
    paths = [d / f"d{i}.png" for i in range(3)]
    for i, p in enumerate(paths):
        _digit_png(p, mnist.test.images[i])
    return paths


@pytest.mark.parametrize("kind", ["vit", "cnn", "deit"])
def test_classifiers_evaluate_and_predict(kind, mnist, tmp_path, capsys, digits):
    from vitlab.models import DeiT, deit_config

    torch.manual_seed(0)
    model = {"vit": lambda: ViT(vit_micro_mnist()), "cnn": lambda: SmallCNN(CNNConfig()),
             "deit": lambda: DeiT(deit_config(vit_micro_mnist()))}[kind]()
    ckpt = _train(model, mnist.train.take(500), tmp_path / "c.pt")
    saved = read_checkpoint(ckpt)
    assert saved["model_type"] == kind and saved["classes"] == [str(i) for i in range(10)]
    assert saved["data_split"] == mnist.train.split and saved["label_map"] is None
    for split, n in (("test", len(mnist.test)), ("val", len(mnist.val))):
        assert main(["evaluate", "--checkpoint", str(ckpt), "--split", split]) == 0
        out = capsys.readouterr().out
        assert re.search(rf"on mnist/{split}: accuracy [\d.]+% \(\d+/{n}\)", out), out
    lines = _predict_lines(capsys, ckpt, digits)
    flag = r"(  not like a digit\? \(score -?[\d.]+ < -?[\d.]+\))?"  # the digit check's column, when it flags
    assert len(lines) == 3 and all(re.fullmatch(rf"{re.escape(str(p))}: [0-9] \([\d.]+%\){flag}", ln)
                                   for ln, p in zip(lines, digits)), lines


def test_relabelled_three_class_run_uses_its_own_classes(mnist, tmp_path, capsys, digits):
    osd = known_unknown_sets(mnist, [3, 8], [0, 1, 2, 5])
    train = osd.with_unknown("train")
    assert train.info.classes == ("3", "8", "unknown")
    torch.manual_seed(0)
    ckpt = _train(ViT(vit_micro_mnist(num_classes=3)), train, tmp_path / "three.pt")
    saved = read_checkpoint(ckpt)
    assert saved["classes"] == ["3", "8", "unknown"]
    assert saved["label_map"] == [2, 2, 2, 0, -1, 2, -1, -1, 1, -1]  # digit -> class; 4, 6, 7, 9 never seen
    assert main(["evaluate", "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    n = int(sum((mnist.test.labels == d).sum() for d in (0, 1, 2, 3, 5, 8)))
    assert "classes 4, 6, 7, 9 are not among the model's training labels: left out" in out
    assert f"/{n}), " in out and re.search(r"^\s+unknown\s+[\d.]+", out, re.M), out
    lines = _predict_lines(capsys, ckpt, digits)
    assert all(re.search(r": (3|8|unknown) \(", ln) for ln in lines), lines

    known, _ = known_unknown_split(mnist.train.take(1000), [3, 8])  # two classes, threshold method
    ckpt2 = _train(ViT(vit_micro_mnist(num_classes=2)), known, tmp_path / "two.pt", steps=1)
    assert read_checkpoint(ckpt2)["classes"] == ["3", "8"]
    assert main(["evaluate", "--checkpoint", str(ckpt2), "--split", "val"]) == 0
    out = capsys.readouterr().out
    n = int(sum((mnist.val.labels == d).sum() for d in (3, 8)))
    assert f"/{n}), " in out and "classes 0, 1, 2, 4, 5, 6, 7, 9 are not among" in out


def test_mae_checkpoint_is_refused_with_what_to_do(tmp_path, capsys, digits, mnist):
    from vitlab.models import MAE, MAEConfig

    torch.manual_seed(0)
    path = tmp_path / "mae.pt"
    save_checkpoint(path, MAE(MAEConfig(encoder=vit_micro_mnist())), dataset="mnist")
    for argv in (["evaluate", "--checkpoint", str(path)], ["predict", "--checkpoint", str(path), str(digits[0])]):
        _one_line_error(capsys, argv, f"{path}: holds an MAE (a masked autoencoder")
    code = main(["evaluate", "--checkpoint", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and f"fine-tune its encoder into one: vitlab train --init {path}" in err
    # ... and that advice works: its encoder fine-tunes into a classifier.
    assert main(["train", "--init", str(path), "--train_only", "head", "--epochs", "1", "--max_steps_per_epoch", "2",
                 "--train_subset", "500", "--runs_dir", str(tmp_path / "runs"), "--name", "probe", "--no_progress",
                 "--no_tensorboard"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "runs" / "probe" / "checkpoint.pt")]) == 0


def test_checkpoints_from_older_and_newer_versions(mnist, tmp_path, capsys, digits):
    torch.manual_seed(0)
    ckpt = _train(ViT(vit_micro_mnist()), mnist.train.take(500), tmp_path / "new.pt")
    saved = read_checkpoint(ckpt)

    old = dict(saved)  # what vitlab wrote before it recorded classes, splits and norm_eps
    for k in ("classes", "label_map", "data_split", "normalization"):
        old.pop(k)
    old["model_config"] = {k: v for k, v in saved["model_config"].items() if k != "norm_eps"}
    torch.save(old, tmp_path / "old.pt")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "old.pt")]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert all(re.search(r": [0-9] \(", ln) for ln in _predict_lines(capsys, tmp_path / "old.pt", digits))
    _one_line_error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "old.pt"), "--split", "val"],
                    "records no validation split (written by an older vitlab)")

    for change, message in (({"version": 7}, "checkpoint version 7 is not supported"),
                            ({"model_type": "dino"}, "unknown model type 'dino' (written by a newer vitlab?)"),
                            ({"format": "something-else"}, "not a vitlab checkpoint"),
                            ({"classes": ["a", "b"]}, "records 2 class names for a model with 10 outputs")):
        torch.save({**saved, **change}, tmp_path / "x.pt")
        _one_line_error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "x.pt")], message)
    torch.save({**saved, "data_split": {**saved["data_split"], "pool": 12345}}, tmp_path / "x.pt")
    _one_line_error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "x.pt"), "--split", "val"],
                    "its validation split was drawn from 12345 training images")
    torch.save({**saved, "classes": list("abcdefghij")}, tmp_path / "x.pt")
    _one_line_error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "x.pt")],
                    "the model's classes ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'] are not mnist's")


def test_predict_reports_each_bad_file_and_goes_on(mnist, tmp_path, capsys, digits):
    torch.manual_seed(0)
    ckpt = _train(ViT(vit_micro_mnist()), mnist.train.take(500), tmp_path / "c.pt", steps=1)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    files = [digits[0], tmp_path / "empty.png", digits[1], tmp_path / "notes.txt", tmp_path / "missing.png"]
    code = main(["predict", "--checkpoint", str(ckpt), *map(str, files)])
    cap = capsys.readouterr()
    assert code == 1
    out, err = cap.out.strip().splitlines(), cap.err.strip().splitlines()
    assert err[0].startswith(f"vitlab: fitting the digit check for {ckpt}")  # once, at the first readable image
    err = err[1:]
    assert [ln.split(":")[0] for ln in out] == [str(digits[0]), str(digits[1])]
    assert len(err) == 4 and err[-1] == "vitlab: 3 of 5 images could not be read"
    assert "empty.png: not a readable image" in err[0] and "notes.txt: not a readable image" in err[1]
    assert "missing.png: file not found" in err[2] and "Traceback" not in cap.err


def test_a_checkpoint_of_the_full_data_evaluates_on_the_fallback_test_set(mnist, tmp_path, capsys, monkeypatch):
    """A model trained on the full MNIST, taken to a machine with only the offline fallback: `--split test` works
    (a test set is a test set), `--split val` is refused because its validation images are not there."""
    import vitlab.data.datasets as vdata

    torch.manual_seed(0)
    model = ViT(vit_micro_mnist())
    full_split = {"pool": 60000, "val_size": 5000, "seed": 0, "source": "full"}
    save_checkpoint(tmp_path / "c.pt", model, dataset="mnist", classes=[str(i) for i in range(10)],
                    data_split=full_split, normalization=(0.1307, 0.3081))
    monkeypatch.setenv("VITLAB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv(vdata.MIRROR_ENV, "http://127.0.0.1:9/")  # the discard port: nothing listens, no network
    monkeypatch.setattr(vdata, "_fallback_warned", True)  # quiet: the fallback is the point here
    assert main(["evaluate", "--checkpoint", str(tmp_path / "c.pt")]) == 0
    assert re.search(r"on mnist/test: accuracy [\d.]+% \(\d+/1000\)", capsys.readouterr().out)  # the fallback's
    _one_line_error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "c.pt"), "--split", "val"],
                    "its validation split was drawn from 60000 training images (full), but this machine has 4000")
