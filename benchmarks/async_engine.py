"""Asynchronous engine benchmark on the workload of the asynchronous-engine issue.

FC 2312 -> 200 LIF -> 10 LIF, no bias, xavier init, Bernoulli input (2 % density), T = 50 frames,
dt / tau = 10 (dt = 1 ms, tau = 0.1 ms), threshold 0.3, batch 32 (CPU). For F in 1, 8, 64 and the random and
momentum schedulers it prints milliseconds per batch (median), samples/s, micro-steps/s, spikes per sample
and peak memory of the call, and the ratio to our layer-synchronous engine run in the same process (and one
call with dense frames, converted to event lists inside the call, as a caller with dense tensors sees). The
table's six settings and the layer-synchronous engine take turns call by call (so do the training steps),
so that a slow second of a shared machine hits them alike. Then it doubles the hidden layer at a fixed spike
count (the extra neurons never fire) to show that the cost follows delivered events x fan-out, and times a
training step on the compiled path and on the reference engine.

    pip install -e '.[fast]'
    python benchmarks/async_engine.py [--batch 32] [--repeats 20] [--backend auto|numba|triton|reference]
                                      [--only inference|training]
    python benchmarks/async_engine.py --device cuda --batch 256      # the CUDA kernel (Triton)

On CUDA the input reaches the engine as dense frames on the GPU (turned into event lists there, inside the
timing), peak memory is what the call adds to the GPU memory in use (``torch.cuda.max_memory_allocated``), and
the training step runs the compiled training kernel on the host (numba; the CUDA kernel is inference only):
parameters are copied to the CPU and the output and gradients back, inside the timing.
"""

from __future__ import annotations

# isort: off
import asyncsnn  # before torch, as in the CLI: it picks passive OpenMP waiting (see the README)

# isort: on
import argparse
import functools
import os
import tracemalloc

import torch
from common import timed as timed_on  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from common import timed_together  # noqa: E402
from torch import nn

from asyncsnn import Network
from asyncsnn.engines import async_, sync
from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.engines.events import SparseFrames
from asyncsnn.training.trainer import make_optimizer


def workload(hidden: int = 200, silent_extra: int = 0, seed: int = 0, pkg=asyncsnn) -> Network:
    """The benchmark network; ``silent_extra`` hidden neurons that never fire make it bigger, same spikes.
    ``pkg``: the package whose ``Network`` and ``LIF`` build it (another version: ``compare_commits.py``)."""
    torch.manual_seed(seed)
    fc1 = nn.Linear(2312, hidden, bias=False)
    fc2 = nn.Linear(hidden, 10, bias=False)
    nn.init.xavier_uniform_(fc1.weight)
    nn.init.xavier_uniform_(fc2.weight)
    if silent_extra:
        big1 = nn.Linear(2312, hidden + silent_extra, bias=False)
        big2 = nn.Linear(hidden + silent_extra, 10, bias=False)
        with torch.no_grad():
            big1.weight[:hidden] = fc1.weight
            big2.weight.zero_()
            big2.weight[:, :hidden] = fc2.weight
        fc1, fc2 = big1, big2
    threshold = torch.full((hidden + silent_extra,), 0.3)
    threshold[hidden:] = 1e9
    return pkg.Network(
        fc1, pkg.LIF(tau=0.1, threshold=threshold), fc2, pkg.LIF(tau=0.1, threshold=0.3), input_shape=(2312,)
    )


def peak_python_mb(fn) -> float:
    """Peak of Python/numpy allocations during ``fn`` (tracemalloc; neither torch's allocator nor numba's
    scratch arrays inside the kernel are traced)."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backend", default="auto", choices=["auto", "numba", "triton", "reference"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--only", choices=["inference", "training"], help="one part (training: compiled steps, no reference)"
    )
    args = parser.parse_args()
    T, B = 50, args.batch
    cuda = args.device == "cuda"
    net = workload().to(args.device)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(T, B, 2312, generator=g) < 0.02).float()
    # event data reaches the engine as event lists, as from a sensor (on CUDA: dense frames on the GPU)
    events = x.cuda() if cuda else SparseFrames.from_dense(x)
    x = x.to(args.device)
    where = torch.cuda.get_device_name() if cuda else f"threads {torch.get_num_threads()}"
    policy = os.environ.get("OMP_WAIT_POLICY", "unset") + (
        f", GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}" if "GOMP_SPINCOUNT" in os.environ else ""
    )
    print(f"torch {torch.__version__}, {where}, batch {B}, T {T}, 2312-200-10, input density 2 %, "
          f"OMP_WAIT_POLICY={policy} (asyncsnn {asyncsnn.__version__})")  # fmt: skip

    def timed(fn, repeats):
        return timed_on(fn, repeats, cuda=cuda)

    def peak_memory_mb(fn) -> float:
        if not cuda:
            return peak_python_mb(fn)
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()  # the network and the input are not the call's
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20

    def inference() -> None:
        if not cuda:
            t_convert = timed(lambda: SparseFrames.from_dense(x), args.repeats)
            t_torch = timed(lambda: SparseFrames.from_dense(x, compiled=False), args.repeats)
            print(f"dense frames -> event lists (not in the timings below): {1e3 * t_convert:.2f} ms / batch "
                  f"(PyTorch's nonzero: {1e3 * t_torch:.2f} ms)")  # fmt: skip
        settings = [(F, scheduler) for F in (1, 8, 64) for scheduler in ("random", "momentum")]

        def engine_call(cfg=None):
            with torch.no_grad():
                if cfg is None:
                    return sync.run(net, x)
                return async_.run(net, events, cfg, backend=args.backend)

        calls = [engine_call] + [
            functools.partial(engine_call, AsyncConfig(group_size=F, scheduler=scheduler))
            for F, scheduler in settings
        ]
        # the layer-synchronous engine and the six settings take turns, call by call
        t_sync, *times = timed_together(calls, args.repeats, cuda=cuda)
        print(f"layer-synchronous engine: {1e3 * t_sync:.2f} ms / batch (calls alternate with the table's)")
        print()
        header = f"{'F':>3} {'scheduler':>9} {'ms/batch':>9} {'samples/s':>10} {'steps/s':>11} " \
                 f"{'spikes':>7} {'peak MB':>8} {'vs sync':>8}"  # fmt: skip
        print(header)
        for (F, scheduler), call, t in zip(settings, calls[1:], times):
            r = call()
            steps = float(r.records.micro_steps.sum())
            print(f"{F:>3} {scheduler:>9} {1e3 * t:>9.2f} {B / t:>10.0f} {steps / t:>11.0f} "
                  f"{float(r.records.total_spikes.mean()):>7.1f} {peak_memory_mb(call):>8.1f} "
                  f"{t_sync / t:>7.2f}x")  # fmt: skip

        if not cuda:  # what a caller with dense frames sees: the conversion to event lists inside the call
            cfg = AsyncConfig(group_size=1, scheduler="random")
            with torch.no_grad():
                t = timed(lambda cfg=cfg: async_.run(net, x, cfg, backend=args.backend), args.repeats)
            print(f"\nF = 1, random, dense frames in (converted inside the call): {1e3 * t:.2f} ms / batch")

        # numba's thread pool and PyTorch's share the cores: show how the kernel scales with numba's threads
        try:
            import numba

            if cuda:
                raise ImportError  # (no numba threads in a CUDA run)
            cfg = AsyncConfig(group_size=1, scheduler="random")
            default = numba.get_num_threads()
            line = []
            for n in sorted({1, default}):
                numba.set_num_threads(n)
                with torch.no_grad():
                    t = timed(
                        lambda cfg=cfg: async_.run(net, events, cfg, backend=args.backend), args.repeats
                    )
                line.append(f"{n} numba thread(s): {1e3 * t:.2f} ms")
            numba.set_num_threads(default)
            layer = numba.threading_layer()
            print(f"\nF = 1, random, torch threads {torch.get_num_threads()} ({layer} layer): "
                  + ", ".join(line))  # fmt: skip
        except ImportError:
            pass

        print("\ncost follows events x fan-out (F = 8, random): hidden layer doubled, extra neurons silent")
        cfg = AsyncConfig(group_size=8, scheduler="random")
        for extra in (0, 200):
            big = workload(200, extra).to(args.device)
            with torch.no_grad():
                r = async_.run(big, events, cfg, backend=args.backend)
                t = timed(lambda big=big: async_.run(big, events, cfg, backend=args.backend), args.repeats)
            synops = float(r.records.total_synops.sum())
            spikes = float(r.records.total_spikes.mean())
            print(f"  hidden {200 + extra}: {1e3 * t:.2f} ms, spikes/sample {spikes:.1f}, "
                  f"SynOps/batch {synops:.3g}, {1e9 * t / synops:.2f} ns per SynOp")  # fmt: skip

    if args.only != "training":
        inference()

    if args.only == "inference":
        return
    print("\ntraining step through the schedule (forward + backward + Adam), random scheduler:")
    if cuda:
        print("  (on CUDA the compiled training kernel runs on the host: parameters and gradients move)")
    opt = make_optimizer(net.parameters(), 1e-4)  # as asyncsnn train: fused Adam
    labels = torch.randint(0, 10, (B,), generator=g).to(args.device)
    trains_with = "auto" if args.backend == "triton" else args.backend  # the Triton kernel does not train

    def step(cfg=None, backend=trains_with):
        out = (sync.run(net, x) if cfg is None else async_.run(net, events, cfg, backend=backend)).output
        loss = nn.functional.cross_entropy(out.sum(0), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    # the compiled steps at F = 1 and 8 and the layer-synchronous step take turns, call by call
    t1, t8, t_sync = timed_together(
        [functools.partial(step, AsyncConfig(group_size=F, scheduler="random")) for F in (1, 8)] + [step],
        args.repeats,
        cuda=cuda,
    )
    print(f"  F = 1, compiled : {1e3 * t1:.1f} ms / batch")
    print(f"  F = 8, compiled : {1e3 * t8:.1f} ms / batch")
    if args.only != "training":
        t_ref = timed(functools.partial(step, AsyncConfig(group_size=1, scheduler="random"), "reference"), 1)
        print(f"  F = 1, reference: {1e3 * t_ref:.1f} ms / batch")
    print(f"  layer-synchronous engine, for comparison: {1e3 * t_sync:.1f} ms / batch")


if __name__ == "__main__":
    main()
