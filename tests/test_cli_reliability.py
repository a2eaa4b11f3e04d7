"""Faults on purpose, through the command line as a user meets them: nothing already saved is lost, nothing wrong is
done silently, and every refusal is one line that names the problem, given before any work starts."""

import os
import resource
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from test_cli import _digit_png, _one_line_error

from vitlab.cli import main
from vitlab.training import read_checkpoint
from vitlab.training.checkpoints import atomic_save

QUICK = ["--preset", "vit_micro_mnist", "--epochs", "2", "--batch_size", "64", "--train_subset", "512",
         "--max_steps_per_epoch", "2", "--no_progress", "--no_tensorboard"]


def _train(capsys, runs, name, *extra):
    assert main(["train", *QUICK, "--runs_dir", str(runs), "--name", name, *extra]) == 0, capsys.readouterr().err
    return capsys.readouterr()


def _interrupted(ckpt):
    """Make a finished 2-epoch run look as if it had stopped after epoch 1 (as after Ctrl-C)."""
    c = read_checkpoint(ckpt)
    c["epoch"] = 1
    atomic_save(c, ckpt)


def _vitlab(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "vitlab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory):
    """One finished quick run, for the tests that only read a checkpoint."""
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", *QUICK, "--runs_dir", str(runs), "--name", "base"]) == 0
    return runs / "base" / "checkpoint.pt"


# ----------------------------------------------------------------------------- 1. a resume continues the same run


@pytest.mark.parametrize("change,named", [
    (["--train_subset", "600"], "train_images: checkpoint 512, now 600"),
    (["--val_size", "300"], "val_size: checkpoint"),
    (["--no_augment"], "augment: checkpoint"),
])
def test_resume_on_other_data_is_refused(mnist, tmp_path, capsys, change, named):
    runs = tmp_path / "runs"
    _train(capsys, runs, "r")
    ckpt = runs / "r" / "checkpoint.pt"
    _interrupted(ckpt)
    before = ckpt.read_bytes()
    argv = ["train", *QUICK, "--runs_dir", str(runs), "--name", "r", "--resume", *change]  # the last flag wins
    _one_line_error(capsys, argv, named)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite starts it afresh" in err and "retrain=True" not in err
    assert ckpt.read_bytes() == before  # nothing saved is lost
    # the same command without the change continues the run
    assert main(["train", *QUICK, "--runs_dir", str(runs), "--name", "r", "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out and read_checkpoint(ckpt)["epoch"] == 2


def test_resume_on_another_dataset_is_refused(mnist, tmp_path, capsys):
    from vitlab.data import DataError, load_dataset

    try:
        load_dataset("fashion-mnist", download=False)
    except DataError:
        pytest.skip("needs Fashion-MNIST in data/ (`make data` links ../shared/data)")
    runs = tmp_path / "runs"
    _train(capsys, runs, "r")
    _interrupted(runs / "r" / "checkpoint.pt")
    _one_line_error(capsys, ["train", *QUICK, "--runs_dir", str(runs), "--name", "r", "--resume", "--dataset",
                             "fashion-mnist"], "dataset: checkpoint 'mnist', now 'fashion-mnist'")


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    _one_line_error(capsys, ["train", *QUICK, "--runs_dir", str(tmp_path), "--resume", "--overwrite"],
                    "--resume continues a run and --overwrite replaces it")


# ----------------------------------------------------------------------------- 2. one writer per run


def test_a_second_training_into_the_same_run_is_refused_naming_the_first(mnist, tmp_path):
    runs = tmp_path / "runs"
    args = ["train", *QUICK, "--runs_dir", str(runs), "--name", "conc"]
    first = _vitlab(*args)
    lock = runs / "conc" / ".lock"
    t0 = time.monotonic()
    while not (lock.exists() and lock.read_text().startswith(f"{first.pid} ")):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() - t0 < 300
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # holding its lock, mid-run, for as long as the second one takes
    try:
        # --overwrite is the dangerous case: it must not delete what the first one is writing
        second = subprocess.run([sys.executable, "-m", "vitlab", *args, "--overwrite"], capture_output=True,
                                text=True, timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=600)
    assert second.returncode == 2, second.stderr
    # (offline, the data fallback's warning comes first: it is said once per process, whatever the command)
    lines = [ln for ln in second.stderr.splitlines() if ln.startswith("vitlab: error:")]
    assert len(lines) == 1 and f"is being trained by process {first.pid}" in lines[0], second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, err
    assert read_checkpoint(runs / "conc" / "checkpoint.pt")["epoch"] == 2
    assert not lock.exists()  # an orderly end leaves no lock behind


def test_a_lock_left_by_a_dead_process_is_taken_over(mnist, tmp_path, capsys):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = tmp_path / "runs" / "stale"
    run.mkdir(parents=True)
    (run / ".lock").write_text(f"{gone.pid} 2026-01-01 00:00:00\n")
    out = _train(capsys, tmp_path / "runs", "stale").out
    assert f"took over the lock left by process {gone.pid}, which is no longer running" in out
    assert (run / "checkpoint.pt").is_file() and not (run / ".lock").exists()


# ----------------------------------------------------------------------------- 3. settings checked before any work


@pytest.mark.parametrize("argv,named", [
    (["--learning_rate", "inf"], "--learning_rate/--learning-rate: expected a finite number > 0, got inf"),
    (["--learning_rate", "nan"], "expected a finite number > 0, got nan"),
    (["--weight_decay", "inf"], "expected a finite number >= 0, got inf"),
    (["--mlp_ratio", "0"], "--mlp_ratio/--mlp-ratio: expected a finite number > 0, got 0"),
    (["--dropout", "1"], "--dropout: expected a number in [0, 1), got 1"),
    (["--label_smoothing", "1.5"], "expected a number in [0, 1), got 1.5"),
    (["--seed", "-3"], "--seed: expected an integer >= 0, got -3"),
    (["--device", "bogus"], "device 'bogus' is not one of auto, cpu, cuda, cuda:N, mps"),
    (["--device", "cuda:x"], "device 'cuda:x' is not one of"),
])
def test_bad_settings_are_one_line(tmp_path, capsys, argv, named):
    _one_line_error(capsys, ["train", *QUICK, "--runs_dir", str(tmp_path), *argv], named)
    assert not (tmp_path / "vit_micro_mnist" / "checkpoint.pt").exists()


def test_configs_refuse_what_cannot_train():
    from vitlab import TrainConfig, ViTConfig

    for bad, named in ((dict(mlp_ratio=0.0), "mlp_ratio must be a finite number > 0, got 0.0"),
                       (dict(dim=float("inf")), "dim must be a finite integer >= 1"),
                       (dict(dropout=float("nan")), "dropout must be a finite number in [0, 1)")):
        with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            ViTConfig(**bad)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got inf"):
        TrainConfig(lr=float("inf"))


def test_a_diverging_run_stops_and_keeps_its_last_epoch(mnist, tmp_path, capsys):
    from vitlab.training import TrainingDiverged

    runs = tmp_path / "runs"
    # An absurd learning rate with nothing to hold it back: the weights blow up within a few steps.
    argv = ["train", *QUICK, "--runs_dir", str(runs), "--name", "boom", "--learning_rate", "1e30", "--grad_clip", "0",
            "--warmup_epochs", "0", "--schedule", "constant"]
    _one_line_error(capsys, argv, "training diverged: the loss is")
    assert not (runs / "boom" / "checkpoint.pt").exists()  # nothing that diverged is saved
    assert issubclass(TrainingDiverged, ValueError)


# ----------------------------------------------------------------------------- 4. output places checked first


def test_an_unusable_runs_folder_is_found_before_training(mnist, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    for runs in (tmp_path / "afile", tmp_path / "afile" / "runs"):
        named = f"run folder {runs / 'x'}: {tmp_path / 'afile'} is a file, not a folder"
        _one_line_error(capsys, ["train", *QUICK, "--runs_dir", str(runs), "--name", "x"], named)
        assert "epoch" not in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_read_only_runs_folder_is_found_before_training(mnist, tmp_path, capsys):
    """A folder the user may not write into: read-only for a user; immutable (chattr +i) for root, who may write
    anywhere else."""
    runs = tmp_path / "runs"
    runs.mkdir()
    if os.geteuid() != 0:
        runs.chmod(0o555)
    elif subprocess.run(["chattr", "+i", str(runs)], capture_output=True).returncode != 0:
        pytest.skip("root, and this file system has no immutable flag (chattr +i) to make a folder unwritable")
    try:
        code = main(["train", *QUICK, "--runs_dir", str(runs), "--name", "x"])
        cap = capsys.readouterr()
        assert code == 2
        assert cap.err.strip().startswith(f"vitlab: error: run folder {runs / 'x'}: cannot write there ("), cap.err
        assert len(cap.err.strip().splitlines()) == 1 and "epoch" not in cap.out
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(runs)], check=True)
        runs.chmod(0o755)


def test_evaluate_out_and_predict_explain_are_checked_before_the_work(trained, tmp_path, capsys, mnist):
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "out"
    _one_line_error(capsys, ["evaluate", "--checkpoint", str(trained), "--out", str(bad)],
                    f"--out {bad}: {tmp_path / 'afile'} is a file, not a folder")
    assert capsys.readouterr().out == ""  # no result printed before the refusal
    _digit_png(tmp_path / "d.png", mnist.test.images[0])
    _one_line_error(capsys, ["predict", "--checkpoint", str(trained), str(tmp_path / "d.png"), "--explain", str(bad)],
                    f"--explain {bad}: {tmp_path / 'afile'} is a file, not a folder")
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------- 5. names are names


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", ".", ""])
def test_a_run_name_is_not_a_path(tmp_path, capsys, name):
    runs = tmp_path / "deep" / "runs"
    _one_line_error(capsys, ["train", *QUICK, "--runs_dir", str(runs), "--name", name], "is not a plain name")
    assert not (tmp_path / "escape").exists() and not runs.exists()


# ----------------------------------------------------------------------------- 6. checkpoints checked against themselves


def test_a_crafted_huge_config_is_refused_before_anything_is_allocated(trained, tmp_path):
    c = read_checkpoint(trained)
    c["model_config"] = {**c["model_config"], "dim": 4096, "depth": 512, "heads": 4}
    atomic_save(c, tmp_path / "huge.pt")

    def limit():  # on a build that allocated first, fail fast instead of taking the machine down
        resource.setrlimit(resource.RLIMIT_AS, (16 * 2**30, 16 * 2**30))

    r = subprocess.run([sys.executable, "-m", "vitlab", "evaluate", "--checkpoint", str(tmp_path / "huge.pt")],
                       capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "its model config describes" in lines[0] and "not building it" in lines[0], lines


def test_broken_normalisation_and_non_finite_weights_are_refused(trained, tmp_path, capsys, mnist):
    _digit_png(tmp_path / "d.png", mnist.test.images[0])
    c = read_checkpoint(trained)
    atomic_save({**c, "normalization": [0.13, 0.0]}, tmp_path / "std0.pt")
    for cmd in (["evaluate"], ["predict", str(tmp_path / "d.png")]):
        _one_line_error(capsys, [cmd[0], "--checkpoint", str(tmp_path / "std0.pt"), *cmd[1:]],
                        "invalid normalisation [0.13, 0.0]")
    weights = {k: v.clone() for k, v in c["model"].items()}
    weights["head.weight"][:] = float("nan")
    atomic_save({**c, "model": weights}, tmp_path / "nan.pt")
    for cmd in (["evaluate"], ["predict", str(tmp_path / "d.png")]):
        _one_line_error(capsys, [cmd[0], "--checkpoint", str(tmp_path / "nan.pt"), *cmd[1:]],
                        "gives non-finite outputs (nan or inf)")
        assert "nan%" not in capsys.readouterr().out


# ----------------------------------------------------------------------------- 7. pictures keep their grey levels


def test_a_16_bit_picture_reads_as_its_8_bit_twin(trained, tmp_path, capsys, mnist):
    from vitlab.images import read_picture

    a8 = (255 - mnist.test.images[3].numpy()).astype(np.uint8)
    a8 = np.asarray(Image.fromarray(a8).resize((84, 84), Image.BILINEAR))  # many grey levels on its strokes
    Image.fromarray(a8).save(tmp_path / "d8.png")
    Image.fromarray(a8.astype(np.uint16) * 257).save(tmp_path / "d16.png")
    with Image.open(tmp_path / "d16.png") as im:
        assert im.mode.startswith("I")
    assert np.abs(read_picture(tmp_path / "d16.png") - a8).max() < 1e-3
    f = tmp_path / "df.tif"
    Image.fromarray(a8.astype(np.float32) / 255).save(f)
    assert np.abs(read_picture(f) - a8).max() < 1e-3
    assert main(["predict", "--checkpoint", str(trained), "--no-check", "--top", "3", str(tmp_path / "d8.png"),
                 str(tmp_path / "d16.png")]) == 0
    l8, l16 = capsys.readouterr().out.strip().splitlines()
    assert l8.split(":", 1)[1].strip() == l16.split(":", 1)[1].strip(), (l8, l16)


# ----------------------------------------------------------------------------- 8. the smaller ones


def test_predict_names_what_a_path_is(trained, tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "folder").mkdir()
    assert main(["predict", "--checkpoint", str(trained), "--no-check", str(tmp_path / "folder"), str(fifo)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{tmp_path / 'folder'}: is a folder, not an image file" in err[0]
    assert f"{fifo}: is a FIFO, not an image file" in err[1]


def test_explain_writes_one_picture_per_image_even_when_names_clash(trained, tmp_path, capsys, mnist):
    (tmp_path / "b").mkdir()
    paths = [tmp_path / "seven.png", tmp_path / "seven.jpg", tmp_path / "b" / "seven.png", tmp_path / "one.png"]
    for i, p in enumerate(paths):
        _digit_png(p, mnist.test.images[i])
    assert main(["predict", "--checkpoint", str(trained), "--no-check", "--explain", str(tmp_path / "ex"),
                 *map(str, paths)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == [
        "one.explain.png", "seven.jpg.explain.png", "seven.png.1.explain.png", "seven.png.2.explain.png"]


def test_a_killed_writes_temporary_is_removed_and_checkpoints_follow_the_umask(mnist, tmp_path):
    runs = tmp_path / "runs"
    run = runs / "u"
    run.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = [run / f".checkpoint.pt.{gone.pid}.abc123.tmp", run / ".checkpoint.pt.oldstyle.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    for mask, mode in ((0o022, 0o644), (0o077, 0o600)):
        r = subprocess.run([sys.executable, "-m", "vitlab", "train", *QUICK, "--runs_dir", str(runs), "--name", "u",
                            "--overwrite"], capture_output=True, text=True, timeout=300,
                           preexec_fn=lambda m=mask: os.umask(m))
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE((run / "checkpoint.pt").stat().st_mode) == mode
    assert not any(p.exists() for p in stale)
    assert not list(run.glob(".checkpoint.pt.*.tmp"))
