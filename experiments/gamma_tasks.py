"""SpikingGamma on two synthetic timing tasks, next to a LIF network of the same size trained with BPTT.

Delay learning (target: the input pulse train smoothed and delayed by D = 5, 20, 50 ms) and coincidence
detection (the relative delay between two channels, from timing alone), with the hidden spike rates.

The models, training and metrics live in :mod:`asyncsnn.studies.gamma_tasks` (its docstring explains the
hyperparameters); ``asyncsnn reproduce gamma`` runs the same tasks as part of the SpikingGamma study. This
script runs them alone:

    python experiments/gamma_tasks.py            # ~6 min on 2 busy CPU cores
    python experiments/gamma_tasks.py --quick    # smoke run, < 1 min; results are meaningless

Writes ``experiments/results/gamma_tasks.json`` and, with matplotlib, ``experiments/results/gamma_delay.png``
(targets vs outputs and pulse responses per delay); ``--quick`` writes ``gamma_tasks_quick.json`` and
``gamma_delay_quick.png`` under ``runs/gamma_tasks_quick/`` instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from asyncsnn.studies.gamma_tasks import DT, SMOKE, configs, plot_delay, run_coincidence, run_delay

RESULTS = Path(__file__).resolve().parent / "results"


def log(line: str) -> None:
    print(line, flush=True)


# ----- report -----------------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(delay: dict, coincidence: dict) -> str:
    rows = []
    for d, r in delay.items():
        g, lif = r["gamma"], r["lif"]
        rows.append([
            d, f"{r['target_peak_latency_ms']:g}", f"{g['peak_latency_ms']:g}", f"{g['latency_error_ms']:g}",
            f"{g['normalised_error']:.3f}", f"{lif['normalised_error']:.3f}", f"{lif['peak_latency_ms']:g}",
            f"{g['spikes_per_neuron_per_s']:.1f}", f"{lif['spikes_per_neuron_per_s']:.1f}",
            f"{g['wall_s']:.0f}", f"{lif['wall_s']:.0f}",
        ])  # fmt: skip
    header = [
        "D (ms)", "target peak", "gamma peak", "|gamma-D|", "gamma err", "LIF err", "LIF peak",
        "gamma sp/n/s", "LIF sp/n/s", "gamma s", "LIF s",
    ]  # fmt: skip
    text = "Delay learning (latencies in ms after a pulse at 10 ms; err = test MSE / target variance)\n"
    text += table(header, rows)
    g, lif = coincidence["gamma"], coincidence["lif"]
    text += f"\n\nCoincidence detection ({coincidence['T']} ms trials, chance {coincidence['chance']:.2f})\n"
    rows = [
        [name, f"{r['accuracy']:.3f}", f"{r['spikes_per_neuron_per_s']:.1f}", f"{r['wall_s']:.0f}"]
        for name, r in (("SpikingGamma online", g), ("LIF BPTT", lif))
    ]
    text += table(["model", "test accuracy", "spikes/neuron/s", "wall s"], rows)
    return text


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (< 1 min); numbers meaningless")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None,
        help="results folder (default experiments/results; runs/gamma_tasks_quick with --quick)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small models: threads cost more than they give, and timings stay comparable
    cfg = configs(SMOKE if args.quick else None)
    t_start = time.perf_counter()
    delay = run_delay(cfg["delay"], cfg["gamma_delay"], cfg["lif_delay"], args.seed, log=log)
    coincidence = run_coincidence(
        cfg["coincidence"], cfg["gamma_coincidence"], cfg["lif_coincidence"], args.seed, log=log
    )
    text = report(delay, coincidence)
    wall = time.perf_counter() - t_start
    print("\n" + text + f"\n\ntotal wall time {wall:.0f} s")
    out_dir = args.out or (Path("runs/gamma_tasks_quick") if args.quick else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    doc = {
        "command": "python experiments/gamma_tasks.py"
        + (" --quick" if args.quick else "")
        + (f" --seed {args.seed}" if args.seed else ""),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "wall_s": wall,
        "dt_ms": DT,
        "configs": cfg,
        "delay": delay,
        "coincidence": coincidence,
        "tables": text,
    }
    path = out_dir / f"gamma_tasks{suffix}.json"
    path.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    print(f"results: {path}")
    png = out_dir / f"gamma_delay{suffix}.png"
    if plot_delay(delay, cfg["delay"], png):
        print(f"plot: {png}")
    return doc


if __name__ == "__main__":
    main()
