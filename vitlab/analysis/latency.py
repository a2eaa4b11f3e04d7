"""How long a forward pass takes: the median of many timed calls, which resists a shared machine's hiccups."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn


@torch.no_grad()
def measure_latency(model: nn.Module, image_size: int = 28, channels: int = 1, batch_size: int = 1,
                    repeats: int = 200, warmup: int = 20, threads: Optional[int] = None) -> dict:
    """CPU forward-pass timing on random input, in eval mode.

    Returns {"latency_ms": median ms per call at `batch_size`, "images_per_s": batch_size / median,
    "iqr_ms": interquartile range of the calls}. The median of many calls resists the hiccups of a shared
    machine; `threads` pins torch's intra-op threads for the measurement (restored afterwards).
    """
    import statistics
    import time

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    x = torch.randn(batch_size, channels, image_size, image_size, device=dev)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
    times.sort()
    med = statistics.median(times)
    q1, q3 = times[len(times) // 4], times[(3 * len(times)) // 4]
    return {"latency_ms": 1000 * med, "images_per_s": batch_size / med, "iqr_ms": 1000 * (q3 - q1)}


def cpu_model() -> str:
    """The CPU's model name ("Intel(R) Xeon(R) Processor"), which every reported time must carry."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
