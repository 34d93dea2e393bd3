"""SpikingGamma training: time and peak memory against the sequence length T, online vs BPTT.

Network 24 -> 128 -> 9, batch 16, dt = 1 ms, Bernoulli input spikes (2 % per step and channel, seeded),
random labels; the loss is the cross-entropy of the readout at every step, summed over the steps. Methods:

- ``gamma-online``: SpikingGamma(tau=(5, 5, 10, 20), threshold=0.05) + GammaReadout, ``online_sequence``
  (eligibility traces; its memory should not depend on T);
- ``gamma-bptt``: the same network and loss, ``bptt_sequence``;
- ``lif-bptt``: LIF(tau=20) + LI(tau=20) readout of the same size (with biases), BPTT through
  ``asyncsnn.engines.sync.run`` with the same per-step loss, built as ``bptt_sequence`` builds it (one call
  per step on the unbound output, stacked and summed), so both BPTT rows carry the same loss overhead.

``online_sequence`` may take a closed-form fast path for this network; the JSON records which (online_path).

One training step is forward + backward over the whole sequence + one Adam step. Every measurement runs in a
fresh Python process (``python -m asyncsnn.studies.gamma_memory``, one torch thread; the measurement code
lives in that module, shared with ``asyncsnn reproduce gamma``) that builds the model and the input, runs one
warm-up training step on the first ``warmup_steps`` = 20 steps of the input (so that the optimizer state,
gradients and torch's lazily allocated buffers exist), reads ``ru_maxrss`` (baseline), runs training steps at
full T and reads ``ru_maxrss`` after the first. "Training memory" is the increase of the
peak resident set over the baseline.

Memory is measured in its own process per (method, T), with glibc's mmap threshold fixed at
``--mmap-threshold`` bytes (``MALLOC_MMAP_THRESHOLD_``, default 1 MiB): every large tensor then gets its own
mapping that is returned to the system when freed, so the resident set follows the live tensors. With glibc's
default (a threshold that rises to 32 MiB after the first large free), tensors below 32 MiB live in the heap,
whose freed memory is kept and fragments: the resident set then overstates the live memory by up to 2x at
small T and by less at large T (where the tensors exceed 32 MiB), which bends the growth in T. Those default-
allocator figures come from the timing process and are reported too. ``ru_maxrss`` is a high-water mark, so
the increase is a lower bound of what the step really needed at its peak: memory the step reuses from below
the baseline peak (the warm-up step's own working set, small blocks kept by the allocator) is not counted. For
a method whose working set does not depend on T, this leaves mostly what does grow with T.

Time is measured in a second fresh process per (method, T) with the default allocator (a fixed low threshold
makes every large allocation fault in fresh pages and slows BPTT down 1.5-3x): the median over ``--repeats``
training steps at full T, the first included. ``--mmap-threshold 0`` measures both in one default process.

Prints, per method and T: milliseconds per training step, time steps processed per second (T / wall time),
training memory and its ratio to the same method at the smallest T, the absolute peak resident set, and the
training memory under the default allocator. Then the ratios of training memory at the largest and smallest
T (500 and 5,000 when both run), the growth in MiB per 1000 time steps, and the verdict for the claim "peak
training memory at T = 5,000 is within 1.2x of T = 500 for online training, while BPTT grows about linearly".
Writes everything to experiments/results/gamma_memory.json. Timings on a shared machine are noisy.

    python benchmarks/gamma.py [--steps 500 1000 2000 5000] [--batch 16] [--hidden 128] [--repeats 3]
    python benchmarks/gamma.py --quick          # T in (100, 400), batch 4: smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from asyncsnn.studies.gamma_memory import DEFAULTS, METHODS, measure_both

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results" / "gamma_memory.json"


def library_hashes() -> dict:
    """sha256 (first 16 hex digits) of the library files measured; the working tree may be uncommitted."""
    files = ("asyncsnn/training/gamma.py", "asyncsnn/training/gamma_fast.py", "asyncsnn/neurons/gamma.py")
    return {f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest()[:16] for f in files if (ROOT / f).exists()}


def git_head() -> str | None:
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    return git.stdout.strip() or None


def ratio(a: float, b: float) -> float | None:
    """``a / b``, or None when ``b`` is not positive (no memory increase measured at the reference T)."""
    return a / b if b > 0 else None


def fmt(r: float | None, width: int = 0) -> str:
    return f"{r:{width}.2f}" if r is not None else f"{'n/a':>{width}s}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 1000, 2000, 5000], help="values of T")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--batch", type=int, default=DEFAULTS["batch"])
    parser.add_argument("--inputs", type=int, default=DEFAULTS["inputs"])
    parser.add_argument("--hidden", type=int, default=DEFAULTS["hidden"])
    parser.add_argument("--outputs", type=int, default=DEFAULTS["outputs"])
    parser.add_argument("--density", type=float, default=DEFAULTS["density"])
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--repeats", type=int, default=3, help="timed training steps at full T (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the workers")
    parser.add_argument(
        "--mmap-threshold",
        type=int,
        default=2**20,
        help="glibc mmap threshold (bytes) of the memory process; 0: one default process for time and memory",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: T in (100, 400), batch 4")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args()

    cfg = dict(DEFAULTS)
    for key in ("batch", "inputs", "hidden", "outputs", "density", "seed"):
        cfg[key] = getattr(args, key)
    steps = sorted(set(args.steps))
    if args.quick:
        steps, cfg["batch"] = [100, 400], 4
    if any(T < 1 for T in steps):
        parser.error("--steps must be positive")

    allocator = f"mmap threshold {args.mmap_threshold} B" if args.mmap_threshold > 0 else "default allocator"
    print(
        f"torch {torch.__version__}, {args.threads} thread(s) per worker, network "
        f"{cfg['inputs']}-{cfg['hidden']}-{cfg['outputs']}, batch {cfg['batch']}, gamma tau {cfg['tau']} ms, "
        f"LIF tau {cfg['lif_tau']} ms, dt {cfg['dt']} ms, input density {cfg['density']}; "
        f"time: median of {args.repeats}, memory: {allocator}"
    )
    print(
        f"{'method':14s}{'T':>7s}{'ms/step':>11s}{'steps/s':>10s}{'train mem MiB':>15s}"
        f"{'x mem(T0)':>11s}{'peak RSS MiB':>14s}{'default malloc MiB':>20s}"
    )
    source = {"git_head": git_head(), "files": library_hashes()}
    results: list[dict] = []
    for method in args.methods:
        first = None
        for T in steps:
            r = measure_both(
                method, T, cfg, threads=args.threads, repeats=args.repeats, mmap_threshold=args.mmap_threshold
            )
            first = first or r
            r["memory_ratio_to_smallest_T"] = ratio(r["training_memory_mib"], first["training_memory_mib"])
            results.append(r)
            print(
                f"{method:14s}{T:7d}{1e3 * r['seconds_per_training_step']:11.1f}{r['time_steps_per_s']:10.0f}"
                f"{r['training_memory_mib']:15.1f}{fmt(r['memory_ratio_to_smallest_T'], 11)}"
                f"{r['rss_peak_mib']:14.1f}{r['default_malloc_training_memory_mib']:20.1f}",
                flush=True,
            )

    lo, hi = (500, 5000) if {500, 5000} <= set(steps) else (steps[0], steps[-1])
    verdict: dict = {"T_low": lo, "T_high": hi, "linear_ratio": hi / lo}
    mem_measured = {(r["method"], r["T"]): r["training_memory_mib"] for r in results}
    print(f"\ntraining memory at T={hi} / T={lo} (linear growth would be {hi / lo:.1f}x):")
    for key, label in (
        ("training_memory_mib", "measured"),
        ("default_malloc_training_memory_mib", "default malloc"),
    ):
        mem = {(r["method"], r["T"]): r[key] for r in results}
        ratios = {m: ratio(mem[m, hi], mem[m, lo]) for m in args.methods}
        verdict[key] = ratios
        print(f"  {label:15s}" + ", ".join(f"{m} {fmt(v)}x" for m, v in ratios.items()))
    slopes = {
        m: 1000 * (mem_measured[m, hi] - mem_measured[m, lo]) / (hi - lo) if hi > lo else None
        for m in args.methods
    }
    verdict["mib_per_1000_steps"] = slopes
    print("  growth, MiB per 1000 time steps: " + ", ".join(f"{m} {fmt(v)}" for m, v in slopes.items()))
    if "gamma-online" in args.methods:
        online = verdict["training_memory_mib"]["gamma-online"]
        verdict["online_within_1.2x"] = online is not None and online <= 1.2
        word = "PASS" if verdict["online_within_1.2x"] else "FAIL"
        print(f"claim 'online training memory at T={hi} within 1.2x of T={lo}': {word} ({fmt(online)}x)")

    source["changed_during_run"] = library_hashes() != source["files"]
    if source["changed_during_run"]:
        print("warning: the library sources changed during the run; the results may mix versions")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python " + shlex.join(sys.argv),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "threads_per_worker": args.threads,
        "repeats": args.repeats,
        "mmap_threshold": args.mmap_threshold,
        "config": cfg,
        "steps": steps,
        "source": source,
        "memory_note": (
            "training_memory_mib = ru_maxrss after the first full-T step minus ru_maxrss after a warm-up "
            "step at T=warmup_steps, in a fresh process per (method, T) with "
            "MALLOC_MMAP_THRESHOLD_=mmap_threshold (unset if 0); a lower bound of the step's true peak. "
            "default_malloc_* come from the timing process (glibc defaults). Times: median of seconds_all, "
            "default allocator."
        ),
        "results": results,
        "verdict": verdict,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
