"""Shared by the benchmark scripts (run them as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import statistics
import time


def timed(fn, repeats: int, warmup: int = 2, cuda: bool = False) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` calls; ``cuda``: wait
    for the GPU to finish each call (kernels are launched asynchronously)."""
    return timed_together([fn], repeats, warmup, cuda)[0]


def timed_together(fns, repeats: int, warmup: int = 2, cuda: bool = False) -> list[float]:
    """Median wall time of each of ``fns`` in seconds, the functions called in turn ``repeats`` times (after
    ``warmup`` calls each): a slow second of a shared machine then hits all of them alike, instead of the few
    consecutive calls of one."""
    if cuda:
        import torch

        def synced(inner):
            def fn() -> None:
                inner()
                torch.cuda.synchronize()

            return fn

        fns = [synced(fn) for fn in fns]
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]
