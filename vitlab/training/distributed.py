"""Data parallelism on torch.distributed: which process this is, joining the process group, sums across processes.

`torchrun --nproc_per_node=N -m vitlab train ...` starts N copies of the program with RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT in their environment. Each joins one process group (gloo on the CPU, NCCL on GPUs); the
`Trainer` then wraps its step in DistributedDataParallel, which all-reduces the gradients, so every process holds the
same weights after every step. A single process (no torchrun) needs none of this: every function here then says
"one process, rank 0" and sums nothing.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

TIMEOUT_ENV = "VITLAB_DIST_TIMEOUT"  # seconds a collective waits for the other processes before failing
DEFAULT_TIMEOUT_S = 300.0


def launched_distributed() -> bool:
    """True in a process that torchrun (or a launcher like it) started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """The process that writes: checkpoints, TensorBoard events, figures, progress bars, log lines."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process on a node takes its own GPU (LOCAL_RANK); the CPU is shared."""
    if device.type == "cuda" and launched_distributed() and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes, once: gloo on the CPU, NCCL on CUDA. True if distributed.

    Collectives fail after ``$VITLAB_DIST_TIMEOUT`` seconds (default 300) instead of hanging, e.g. when another
    process died.
    """
    if not launched_distributed():
        return False
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=timeout)
    return True


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` over every process, in place (a no-op for one process); returns it."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def shard(n: int) -> torch.Tensor:
    """This process's share of n items, every W-th from its rank: (ceil((n - rank) / W),). The shards of all
    processes cover each item exactly once, so sums over them count nothing twice."""
    return torch.arange(rank(), n, world_size())


def finish() -> None:
    """Leave the process group (at the end of a distributed run)."""
    if dist.is_available() and dist.is_initialized():
        import gc

        # DistributedDataParallel wrappers still alive (a finished Trainer held in a reference cycle) must go while
        # the group they talk through exists: one collected after it aborts the process at exit ("terminate called
        # without an active exception"), at random, whenever the garbage collector happens to run late.
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
