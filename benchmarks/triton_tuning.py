"""Warps per program of the CUDA kernel: time the benchmark workload (benchmarks/async_engine.py) at each.

One program runs one sample's whole event loop, so the kernel is bound by the latency of each micro-step's
chain of reductions and barriers, which fewer warps shorten, while wider blocks need more threads.

    python benchmarks/triton_tuning.py [--batch 256] [--repeats 10]
"""

from __future__ import annotations

import argparse

import torch
from async_engine import workload  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from common import timed  # noqa: E402

from asyncsnn.engines import async_
from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.engines.kernels import triton_cuda


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    net = workload().cuda()
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(50, args.batch, 2312, generator=g) < 0.02).float().cuda()
    print(f"{torch.cuda.get_device_name()}, batch {args.batch}: ms / batch")
    print(
        f"{'warps':>5} " + " ".join(f"{f'F={F} {s[:3]}':>10}" for F in (1, 8) for s in ("random", "momentum"))
    )
    for warps in (1, 2, 4, 8):
        triton_cuda.NUM_WARPS = warps
        row = []
        for F in (1, 8):
            for scheduler in ("random", "momentum"):
                cfg = AsyncConfig(group_size=F, scheduler=scheduler)
                with torch.no_grad():
                    t = timed(
                        lambda cfg=cfg: async_.run(net, x, cfg, backend="triton"), args.repeats, cuda=True
                    )
                row.append(f"{1e3 * t:>10.2f}")
        print(f"{warps:>5} " + " ".join(row), flush=True)
    triton_cuda.NUM_WARPS = None


if __name__ == "__main__":
    main()
