"""Data-parallel training throughput: 1 process against 2 processes (torchrun, gloo, DistributedDataParallel).

    python benchmarks/ddp.py [--preset vit_tiny_mnist] [--batch_size 256] [--steps 30] [--warmup 5]

Measures training images/s (forward, backward, gradient all-reduce, optimizer step; no validation, no checkpoints)
for: one process with 1 thread, one process with 2 threads, two processes with 1 thread each, and, where CUDA is
available, one GPU (NCCL when several). The global batch is the same in every case, so each of the two processes
computes half of it. Prints the machine, a table, the scaling efficiency
    (images/s with 2 processes) / (2 x images/s of 1 process at 1 thread),
and a last line `ddp: ...`. On a 2-core machine this shows the mechanism and its cost, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitlab.analysis.latency import cpu_model  # noqa: E402  (after the path: runs from a checkout)


def worker(a) -> None:
    """One training process (of one or several): times `steps` optimizer steps after `warmup` and prints a RESULT."""
    import torch

    torch.set_num_threads(a.threads)
    from vitlab import PRESETS, TrainConfig, Trainer, ViT, load_dataset
    from vitlab.training import distributed as dist

    data = load_dataset("mnist", download=False)
    torch.manual_seed(0)
    model = ViT(PRESETS[a.preset]())
    cfg = TrainConfig(epochs=1, batch_size=a.batch_size, max_steps_per_epoch=a.warmup + a.steps, augment=None,
                      device=a.device, grad_snapshot_every=0)
    trainer = Trainer(model, data.train, None, cfg, progress=False, verbose=False)
    times = []

    def tick(tr):
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())

    trainer.add_callback("on_step_end", tick)
    trainer.fit()
    seconds = times[-1] - times[a.warmup - 1]  # from the end of the warm-up steps to the end of the last step
    if dist.is_main():
        print("RESULT " + json.dumps({"processes": dist.world_size(), "threads": a.threads, "device": str(trainer.device),
                                      "images_per_s": a.batch_size * a.steps / seconds}), flush=True)
    dist.finish()


def launch(a, processes: int, threads: int, device: str = "cpu") -> dict:
    args = [str(Path(__file__).resolve()), "--worker", "--threads", str(threads), "--preset", a.preset,
            "--batch_size", str(a.batch_size), "--steps", str(a.steps), "--warmup", str(a.warmup), "--device", device]
    if processes > 1:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}", "--rdzv-backend=c10d",
               f"--rdzv-endpoint=127.0.0.1:{port}", *args]
    else:
        cmd = [sys.executable, *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        sys.exit(f"benchmark run failed ({processes} processes x {threads} threads): {r.stderr.strip()[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="vit_tiny_mnist")
    p.add_argument("--batch_size", type=int, default=256, help="the global batch (split over the processes)")
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a)
    import torch

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}; "
          f"{a.preset}, global batch {a.batch_size}, {a.steps} timed steps after {a.warmup}")
    rows = [("1 process x 1 thread", launch(a, 1, 1)), ("1 process x 2 threads", launch(a, 1, 2)),
            ("2 processes x 1 thread (gloo)", launch(a, 2, 1))]
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        rows.append((f"{n} GPU{'s' if n > 1 else ''} ({torch.cuda.get_device_name(0)}{', NCCL' if n > 1 else ''})",
                     launch(a, n, 1, "cuda")))
    base = rows[0][1]["images_per_s"]
    print(f"{'setting':38s} {'images/s':>10s} {'vs 1x1':>7s}")
    for name, r in rows:
        print(f"{name:38s} {r['images_per_s']:>10,.0f} {r['images_per_s'] / base:>6.2f}x")
    two, one2 = rows[2][1]["images_per_s"], rows[1][1]["images_per_s"]
    eff = two / (2 * base)
    print(f"ddp: 2 processes x 1 thread {two:,.0f} images/s, 1 process x 2 threads {one2:,.0f} images/s, "
          f"1 process x 1 thread {base:,.0f} images/s, scaling efficiency {eff:.2f} on {cpu_model()}")


if __name__ == "__main__":
    main()
