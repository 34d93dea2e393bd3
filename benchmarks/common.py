"""Shared by the benchmark scripts (run them as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import statistics
import time


def timed(fn, repeats: int, warmup: int = 2, cuda: bool = False) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` calls; ``cuda``: wait
    for the GPU to finish each call (kernels are launched asynchronously)."""
    if cuda:
        import torch

        inner = fn

        def fn() -> None:
            inner()
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
