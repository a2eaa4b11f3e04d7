"""Ctrl-C and SIGKILL against real `vitlab` processes: what was saved stays loadable, and resuming is exact."""

import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

from vitlab.training import load_model, read_checkpoint, save_checkpoint

EPOCHS = 4
TRAIN = ["train", "--preset", "vit_micro_mnist", "--epochs", str(EPOCHS), "--batch_size", "64", "--train_subset", "3000",
         "--max_steps_per_epoch", "40", "--no_progress", "--no_tensorboard", "--seed", "2"]


def _restore_sigint():
    # A job started in the background by a non-interactive shell (CI scripts, `make test &`) inherits SIGINT ignored,
    # and Python then never installs its Ctrl-C handler: give the child the default disposition a terminal gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _vitlab(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "vitlab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_restore_sigint, **kw)


def _wait_for(path, proc, timeout=300.0):
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_keeps_the_last_epoch_and_the_resumed_run_is_exact(tmp_path):
    runs = tmp_path / "runs"
    proc = _vitlab(*TRAIN, "--runs_dir", str(runs), "--name", "cut")
    ckpt = runs / "cut" / "checkpoint.pt"
    _wait_for(ckpt, proc)  # epoch 1 is saved; stop it during epoch 2
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    saved = read_checkpoint(ckpt)  # the last finished epoch's checkpoint is whole
    assert 1 <= saved["epoch"] < EPOCHS, "the run finished before the signal; make its epochs longer"
    hint = [ln for ln in err.splitlines() if "--resume" in ln]
    assert len(hint) == 1 and f"keeps epoch {saved['epoch']}" in hint[0], err
    cmd = shlex.split(hint[0].split("continue with: ", 1)[1])
    assert cmd[0] == "vitlab" and cmd[-1] == "--resume"

    r = subprocess.run([sys.executable, "-m", "vitlab", *cmd[1:]], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"resuming from {ckpt} at epoch {saved['epoch']}/{EPOCHS}" in r.stdout
    r = subprocess.run([sys.executable, "-m", "vitlab", *TRAIN, "--runs_dir", str(runs), "--name", "whole"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    resumed, _ = load_model(ckpt)
    whole, _ = load_model(runs / "whole" / "checkpoint.pt")
    a, b = resumed.state_dict(), whole.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "a resumed run must end with the uninterrupted run's weights"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    from vitlab import ViT, vit_micro_mnist

    path = tmp_path / "checkpoint.pt"
    torch.manual_seed(0)
    model = ViT(vit_micro_mnist())
    save_checkpoint(path, model, epoch=3)
    before = path.read_bytes()
    # Another process overwrites it with a checkpoint of ~400 MB, and is killed while writing.
    script = ("import sys, torch; from vitlab.training.checkpoints import atomic_save; "
              "atomic_save({'big': torch.ones(100_000_000)}, sys.argv[1])")
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)])
    t0 = time.monotonic()
    while not [p for p in tmp_path.glob(".checkpoint.pt.*.tmp") if p.stat().st_size > 1_000_000]:
        assert proc.poll() is None, "the writer finished before it could be killed"
        assert time.monotonic() - t0 < 120
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    loaded, ckpt = load_model(path)
    assert ckpt["epoch"] == 3 and torch.equal(loaded.head.weight, model.head.weight)
