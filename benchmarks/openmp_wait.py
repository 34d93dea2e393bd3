"""The compiled training step under libgomp's two wait policies, in alternating runs.

PyTorch's OpenMP workers wait for the next parallel operation by spinning (libgomp's default: about 300,000
spins) or by sleeping (``OMP_WAIT_POLICY=PASSIVE``, what asyncsnn picks when it is imported before torch and
nothing is set). Spinning workers hold cores the compiled engine's own threads need; the layer-synchronous
engine's training step (plain PyTorch) shows what passive waiting costs PyTorch code. This runs
``async_engine.py --only training`` in fresh processes, alternating the policies, and prints every median and
the median of the rounds (the virtual machines we measure on drift too much for one run of each).

    python benchmarks/openmp_wait.py [--rounds 3] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

POLICIES = {"spin (libgomp default)": {"GOMP_SPINCOUNT": "300000"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}
# "F = 1, compiled : 24.3 ms / batch" and "layer-synchronous engine, for comparison: 21.0 ms / batch"
LINE = re.compile(
    r"(F = \d+), compiled\s*: ([\d.]+) ms|(layer-synchronous) engine, for comparison: ([\d.]+) ms"
)
COLUMNS = ("F = 1", "F = 8", "layer-synchronous")


def step_times(env: dict[str, str], repeats: int) -> dict[str, float]:
    """Milliseconds per training step (asynchronous at F = 1 and F = 8, and layer-synchronous) from one
    benchmark process run under ``env``."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    script = Path(__file__).with_name("async_engine.py")
    done = subprocess.run(
        [sys.executable, str(script), "--only", "training", "--repeats", str(repeats)],
        env={**clean, **env}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {a or c: float(b or d) for a, b, c, d in LINE.findall(done.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    times: dict[str, list[dict[str, float]]] = {name: [] for name in POLICIES}
    for r in range(args.rounds):
        for name, env in POLICIES.items():
            times[name].append(step_times(env, args.repeats))
            line = ", ".join(f"{k}: {ms:.1f} ms" for k, ms in times[name][-1].items())
            print(f"round {r + 1}, {name}: {line}")
    print("\nmedian of the rounds, ms per training step (batch 32):")
    for name, runs in times.items():
        line = ", ".join(f"{k}: {statistics.median(run[k] for run in runs):.1f}" for k in COLUMNS)
        print(f"  {name:24s} {line}")


if __name__ == "__main__":
    main()
