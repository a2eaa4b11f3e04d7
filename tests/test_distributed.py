"""Training on torch.distributed with real processes: torchrun, gloo on the CPU, a rendezvous on 127.0.0.1."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from vitlab import load_model

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or sys.platform == "win32",
                                reason="needs torch.distributed and POSIX signals")

TRAIN = ["train", "--preset", "vit_micro_mnist", "--batch_size", "128", "--train_subset", "2048",
         "--no_progress", "--seed", "3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(n: int = 2) -> list:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{free_port()}"]


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every process below it, as a machine that loses power would."""
    import psutil

    parent = psutil.Process(pid)
    for p in [parent, *parent.children(recursive=True)]:
        p.send_signal(signal.SIGKILL)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def max_weight_difference(a, b) -> float:
    (ma, _), (mb, _) = load_model(a), load_model(b)
    sa, sb = ma.state_dict(), mb.state_dict()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


def test_two_processes_train_the_weights_one_process_trains_and_only_rank_0_writes(tmp_path):
    steps = ["--epochs", "2", "--max_steps_per_epoch", "4"]
    one = run([sys.executable, "-m", "vitlab", *TRAIN, *steps, "--runs_dir", str(tmp_path), "--name", "one",
               "--no_tensorboard"])
    assert one.returncode == 0, one.stderr
    two = run([*torchrun(2), "-m", "vitlab", *TRAIN, *steps, "--runs_dir", str(tmp_path), "--name", "two"])
    assert two.returncode == 0, two.stderr[-3000:]
    # The same global batches, split over two processes whose gradients DDP averages: the same weights.
    assert max_weight_difference(tmp_path / "one" / "checkpoint.pt", tmp_path / "two" / "checkpoint.pt") < 1e-5
    # Only rank 0 wrote: one TensorBoard event file, one line per epoch, one report, no stray temporary files.
    assert len(list((tmp_path / "two" / "tb").glob("events.out.tfevents.*"))) == 1
    assert two.stdout.count("epoch   2/2") == 1 and two.stdout.count("test accuracy") == 1, two.stdout
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "checkpoint.pt", "confusion_matrix.png", "loss_curves.png", "metrics.json", "misclassified.png", "tb"]
    # Validation counted every validation image once: the epoch lines of both runs agree.
    v1 = [ln.split("val")[1].split()[:4] for ln in one.stdout.splitlines() if ln.startswith("epoch")]
    v2 = [ln.split("val")[1].split()[:4] for ln in two.stdout.splitlines() if ln.startswith("epoch")]
    assert v1 == v2, (v1, v2)


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_weights(tmp_path):
    steps = ["--epochs", "3", "--max_steps_per_epoch", "8", "--no_tensorboard", "--runs_dir", str(tmp_path)]
    whole = run([*torchrun(2), "-m", "vitlab", *TRAIN, *steps, "--name", "whole"])
    assert whole.returncode == 0, whole.stderr[-3000:]
    ckpt = tmp_path / "cut" / "checkpoint.pt"
    proc = subprocess.Popen([*torchrun(2), "-m", "vitlab", *TRAIN, *steps, "--name", "cut"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while not ckpt.exists():
        assert proc.poll() is None and time.monotonic() - t0 < 300, proc.communicate()
        time.sleep(0.02)
    kill_tree(proc.pid)  # the launcher and both workers (torchrun starts them in sessions of their own), at once
    proc.communicate()
    epoch = torch.load(ckpt, weights_only=True)["epoch"]
    assert 1 <= epoch < 3
    resumed = run([*torchrun(2), "-m", "vitlab", *TRAIN, *steps, "--name", "cut", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {ckpt} at epoch {epoch}/3" in resumed.stdout
    assert max_weight_difference(ckpt, tmp_path / "whole" / "checkpoint.pt") < 1e-6


def test_a_batch_that_does_not_split_over_the_processes_is_one_clear_line(tmp_path):
    t0 = time.monotonic()
    r = run([*torchrun(2), "-m", "vitlab", *TRAIN, "--batch_size", "129", "--epochs", "1", "--runs_dir", str(tmp_path)])
    assert r.returncode != 0 and time.monotonic() - t0 < 120
    ours = [ln for ln in r.stderr.splitlines() if ln.startswith("vitlab: error:")]
    assert ours == ["vitlab: error: batch_size 129 cannot be split evenly over 2 processes; use a multiple of 2"], r.stderr
    assert not (tmp_path / "vit_default").exists()


def test_a_process_that_dies_stops_the_other_with_one_line_not_a_hang(tmp_path):
    """Two processes started without torchrun's watchdog (as on two machines): kill one after its first epoch; the
    other's next collective fails within the timeout and says so in one line."""
    port = free_port()
    common = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
              "VITLAB_DIST_TIMEOUT": "20", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "vitlab", *TRAIN, "--epochs", "50", "--max_steps_per_epoch", "4", "--no_tensorboard",
            "--runs_dir", str(tmp_path), "--name", "lost"]
    procs = [subprocess.Popen(args, env={**common, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    t0 = time.monotonic()
    while not (tmp_path / "lost" / "checkpoint.pt").exists():
        assert all(p.poll() is None for p in procs) and time.monotonic() - t0 < 300, [p.communicate() for p in procs]
        time.sleep(0.02)
    procs[1].kill()
    t1 = time.monotonic()
    out, err = procs[0].communicate(timeout=120)
    assert procs[0].returncode == 2 and time.monotonic() - t1 < 60
    ours = [ln for ln in err.splitlines() if ln.startswith("vitlab: error:")]
    assert len(ours) == 1 and "process 0 of 2 stopped: training together failed" in ours[0], err
    procs[1].communicate()
    assert load_model(tmp_path / "lost" / "checkpoint.pt")[1]["epoch"] >= 1  # what was saved stays loadable


def test_mae_and_distillation_objectives_train_under_ddp(tmp_path):
    script = tmp_path / "objectives.py"
    script.write_text(textwrap.dedent("""
        import sys
        from pathlib import Path

        import torch
        from vitlab import TrainConfig, Trainer, ViT, load_dataset, vit_micro_mnist
        from vitlab.methods.distillation import TokenDistillation
        from vitlab.methods.mae import MAEObjective
        from vitlab.models import MAE, DeiT, MAEConfig, deit_config
        from vitlab.training import distributed as dist

        data = load_dataset("mnist", download=False)
        cfg = TrainConfig(epochs=1, batch_size=64, max_steps_per_epoch=3, augment=None)
        torch.manual_seed(0)
        teacher = ViT(vit_micro_mnist()).eval()
        totals = []
        for model, objective in ((MAE(MAEConfig(encoder=vit_micro_mnist(pos_embed="sincos"))), MAEObjective()),
                                 (DeiT(deit_config(vit_micro_mnist())), TokenDistillation(teacher))):
            torch.manual_seed(0)
            Trainer(model, data.train.take(512), data.val.take(100), cfg, progress=False, verbose=False,
                    objective=objective).fit()
            total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
            totals.append(f"{type(model).__name__} {total.item():.10f}")
        # one file per process: the two processes' prints could interleave on a shared pipe
        Path(sys.argv[1], f"rank{dist.rank()}.txt").write_text("\\n".join(totals))
        dist.finish()
    """))
    r = run([*torchrun(2), str(script), str(tmp_path)])
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [(tmp_path / f"rank{i}.txt").read_text().splitlines() for i in (0, 1)]
    # Both processes trained both models, and hold the same weights afterwards: DDP kept them in step.
    assert [ln.split()[0] for ln in ranks[0]] == ["MAE", "DeiT"] and ranks[0] == ranks[1], ranks
