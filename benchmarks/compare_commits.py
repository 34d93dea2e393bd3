"""Time the asynchronous engine at an earlier commit against the working tree, alternating calls in one
process.

On a machine whose speed drifts from minute to minute, timings from separate runs cannot show a 10 % change;
alternating the two versions call by call lets both see the same machine state. The earlier commit's
``asyncsnn`` package is extracted (``git archive``) under a temporary name and imported beside the working
tree's. Workload: the benchmark of ``benchmarks/async_engine.py`` (2312-200-10 LIF, batch 32, T = 50, 2 %
input density, random scheduler, F = 1 and 8). Prints per version the median ms per call and the median of
the paired ratios (working tree / commit), and first whether both versions give bit-identical results:
outputs, final membranes and records for every built-in scheduler, both input modes and F = 1, 8, 64, and the
gradients of a training step. The commit's kernels are compiled afresh (a minute or two).

    python benchmarks/compare_commits.py e068218 [--what inference|training] [--rounds 60]
"""

from __future__ import annotations

# isort: off
import asyncsnn  # before torch, as in the CLI: it picks passive OpenMP waiting

# isort: on
import argparse
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from async_engine import workload  # benchmarks/ is on sys.path when run as a script
from torch import nn

OLD = "asyncsnn_at_commit"


def extract(commit: str, root: Path) -> None:
    """The package at ``commit`` as ``root / OLD``, its absolute imports renamed."""
    repo = Path(__file__).resolve().parent.parent
    tar = subprocess.run(["git", "archive", commit, "asyncsnn"], cwd=repo, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.11.4
        archive.extractall(root, **safe)
    (root / "asyncsnn").rename(root / OLD)
    for path in (root / OLD).rglob("*.py"):
        text = re.sub(r"\basyncsnn(?=[.\s])", OLD, path.read_text())
        path.write_text(text)


def identity_sweep(old_pkg, x: torch.Tensor, labels: torch.Tensor) -> list[str]:
    """The configurations where the two versions differ at all: output, final membranes or any record, for
    every built-in scheduler, both input modes and F = 1, 8, 64; and the weight gradients of one training
    step (F = 1, random)."""
    results = {}
    for pkg in (old_pkg, asyncsnn):
        engine = importlib.import_module(pkg.__name__ + ".engines.async_")
        config = importlib.import_module(pkg.__name__ + ".engines.async_config")
        net = workload(pkg=pkg)
        for F in (1, 8, 64):
            for scheduler in ("random", "momentum", "fifo", "layer"):
                for mode in ("prioritized", "scheduled"):
                    cfg = config.AsyncConfig(group_size=F, scheduler=scheduler, input_mode=mode)
                    with torch.no_grad():
                        r = engine.run(net, x, cfg, labels=labels)
                    records = [v for v in vars(r.records).values() if torch.is_tensor(v)]
                    records += r.records.spikes + r.records.synops
                    results[pkg, F, scheduler, mode] = [r.output, *(s.v for s in r.state), *records]
        out = engine.run(net, x, config.AsyncConfig(group_size=1)).output
        nn.functional.cross_entropy(out.sum(0), labels).backward()
        results[pkg, "gradients"] = [p.grad for p in net.parameters()]
    same = lambda a, b: torch.equal(a.nan_to_num(-1.0), b.nan_to_num(-1.0))  # noqa: E731  (NaN: never)
    return [
        str(key[1:])
        for key in results
        if key[0] is old_pkg
        and not all(same(a, b) for a, b in zip(results[key], results[(asyncsnn, *key[1:])], strict=True))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("commit")
    parser.add_argument("--what", choices=["inference", "training"], default="inference")
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(50, 32, 2312, generator=g) < 0.02).float()
    labels = torch.randint(0, 10, (32,), generator=g)
    with tempfile.TemporaryDirectory() as tmp:
        extract(args.commit, Path(tmp))
        sys.path.insert(0, tmp)
        calls, outputs = {}, {}
        for name, pkg in ((args.commit, importlib.import_module(OLD)), ("working tree", asyncsnn)):
            engine = importlib.import_module(pkg.__name__ + ".engines.async_")
            config = importlib.import_module(pkg.__name__ + ".engines.async_config")
            events = importlib.import_module(pkg.__name__ + ".engines.events").SparseFrames.from_dense(x)
            net = workload(pkg=pkg)
            opt = torch.optim.Adam(net.parameters(), lr=1e-4)
            for F in (1, 8):
                cfg = config.AsyncConfig(group_size=F, scheduler="random")

                def call(net=net, events=events, cfg=cfg, engine=engine, opt=opt):
                    if args.what == "inference":
                        with torch.no_grad():
                            return engine.run(net, events, cfg).output
                    out = engine.run(net, events, cfg).output
                    opt.zero_grad()
                    nn.functional.cross_entropy(out.sum(0), labels).backward()
                    opt.step()
                    return out.detach()

                outputs[name, F] = call()  # (training: before any step, so both start from the same weights)
                calls[name, F] = call
        mismatches = identity_sweep(importlib.import_module(OLD), x, labels)
        for fn in calls.values():  # warm-up (and compilation)
            fn()
        times: dict = {key: [] for key in calls}
        for _ in range(args.rounds):
            for key, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
    print(f"{args.what}, {args.rounds} rounds, torch threads {torch.get_num_threads()}")
    print(f"identical outputs, membranes, records (4 schedulers x 2 input modes x F = 1, 8, 64) and training "
          f"gradients: {'yes' if not mismatches else 'no, in ' + ', '.join(mismatches)}")  # fmt: skip
    for F in (1, 8):
        old, new = (1e3 * np.array(times[name, F]) for name in (args.commit, "working tree"))
        same = torch.equal(outputs[args.commit, F], outputs["working tree", F])
        print(f"F = {F}: {args.commit} {np.median(old):.2f} ms, working tree {np.median(new):.2f} ms, "
              f"paired ratio {np.median(new / old):.3f}; identical outputs: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
