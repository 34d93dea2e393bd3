"""The compiled training step under libgomp's two wait policies, in alternating runs.

PyTorch's OpenMP workers wait for the next parallel operation by spinning (libgomp's default: about 300,000
spins) or by sleeping (``OMP_WAIT_POLICY=PASSIVE``, what asyncsnn picks when it is imported before torch and
nothing is set). Spinning workers hold cores the compiled engine's own threads need. This runs
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
LINE = re.compile(r"F = (\d+), compiled\s*: ([\d.]+) ms")


def step_times(env: dict[str, str], repeats: int) -> dict[int, float]:
    """Milliseconds per training step at F = 1 and F = 8 from one benchmark process run under ``env``."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    script = Path(__file__).with_name("async_engine.py")
    done = subprocess.run(
        [sys.executable, str(script), "--only", "training", "--repeats", str(repeats)],
        env={**clean, **env}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {int(f): float(ms) for f, ms in LINE.findall(done.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    times: dict[str, list[dict[int, float]]] = {name: [] for name in POLICIES}
    for r in range(args.rounds):
        for name, env in POLICIES.items():
            times[name].append(step_times(env, args.repeats))
            print(
                f"round {r + 1}, {name}: "
                + ", ".join(f"F = {f}: {ms:.1f} ms" for f, ms in times[name][-1].items())
            )
    print("\nmedian of the rounds, ms per training step (batch 32):")
    for name, runs in times.items():
        print(
            f"  {name:24s} "
            + ", ".join(f"F = {f}: {statistics.median(r[f] for r in runs):.1f}" for f in (1, 8))
        )


if __name__ == "__main__":
    main()
