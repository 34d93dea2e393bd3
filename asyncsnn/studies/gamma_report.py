"""The report of the SpikingGamma study: verdicts, Markdown tables and figures, read from the result rows.

Everything here works from the rows of ``results.csv`` (plus the wall-clock ``measurements``), so the report
says exactly what the CSV holds. :mod:`asyncsnn.studies.gamma` runs the parts, then calls
:func:`render_report` and :func:`draw_figures`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from asyncsnn.plots import matplotlib_available
from asyncsnn.studies import gamma_figures as figures
from asyncsnn.studies import gamma_tasks, gamma_vowels
from asyncsnn.studies.gamma_memory import DEFAULTS as MEMORY_NETWORK
from asyncsnn.studies.report import markdown_table, mean_spread, provenance_section

MIB = 2**20

#: The claims' thresholds (README, SpikingGamma results).
ONLINE_MEMORY_RATIO = 1.2  # online memory at the largest T within this factor of the smallest T
DT_ACCURACY_POINTS = 1.0  # accuracy change from dt = 1 to 0.1 ms, percentage points
DT_RATE_PERCENT = 10.0  # spike-rate change from dt = 1 to 0.1 ms
DELAY_TOLERANCE_MS = 2.0  # SpikingGamma's peak latency within this of D
EPOCH_TIME_RATIO = 2.0  # online training at most this much slower than BPTT per epoch

METHOD_CELL = {
    "gamma-online": ("SpikingGamma", "online"),
    "gamma-bptt": ("SpikingGamma", "BPTT"),
    "lif-bptt": ("LIF", "BPTT"),
}
DTS = (1.0, 0.1)


# ----- reading the rows back --------------------------------------------------------------------------------


class Cells:
    """Index of result rows: ``values(part, model, training, setting, metric)`` lists every seed's value."""

    def __init__(self, rows: Sequence[dict]) -> None:
        self._index: dict[tuple, dict[int, float]] = {}
        for r in rows:
            key = (r["part"], r["model"], r["training"], r["setting"], r["metric"])
            self._index.setdefault(key, {})[int(r["seed"])] = float(r["value"])

    def values(self, part: str, model: str, training: str, setting: str, metric: str) -> list[float]:
        return list(self._index.get((part, model, training, setting, metric), {}).values())

    def one(self, part: str, model: str, training: str, setting: str, metric: str) -> float:
        """The value of the first seed (NaN when missing)."""
        found = self.values(part, model, training, setting, metric)
        return found[0] if found else math.nan

    def settings(self, part: str, model: str, training: str, metric: str) -> list[str]:
        """The settings measured for a (part, model, training, metric), in row order."""
        return [k[3] for k in self._index if k[0] == part and k[1:3] == (model, training) and k[4] == metric]


def memory_by_T(cells: Cells, metric: str = "peak_tensor_bytes") -> dict[str, dict[int, float]]:
    """``{method: {T: bytes}}`` of the memory part."""
    result = {}
    for method, (model, training) in METHOD_CELL.items():
        settings = cells.settings("memory", model, training, metric)
        result[method] = {
            int(s.split("=")[1]): cells.one("memory", model, training, s, metric) for s in settings
        }
    return result


# ----- the report -------------------------------------------------------------------------------------------


def render_report(
    rows: Sequence[dict],
    measured: dict,
    cfg: dict,
    preset: str,
    prov: dict,
    figure_files: list[Path] | None,
    *,
    modified: bool = False,
) -> str:
    """``report.md``: one section per part (table, what it shows, verdict), wall-clock numbers, provenance.

    ``modified``: the preset's configuration was overridden (the report says so)."""
    cells = Cells(rows)
    sections = [
        _memory_section(cells, measured),
        _dt_section(cells),
        _delay_section(cells, cfg),
        _coincidence_section(cells),
        _vowels_section(cells, cfg),
    ]
    verdicts = [(title, verdict) for title, _, verdict in sections]
    lines = [f"# SpikingGamma study (preset `{preset}`)", ""]
    if preset != "full" or modified:
        lines += [
            f"**This is the `{preset}` preset**: {cfg['description']}. Verdicts below judge these numbers; "
            "a claim that fails here may still hold with `--preset full`.",
            "",
        ]
    seeds = ", ".join(map(str, prov["seeds"]))
    took = measured.get("total_wall_s", 0.0) / 60
    lines += [
        f"Seeds: {seeds}. Expected time of this preset: about {cfg['expected_minutes']} min on 2 CPU cores "
        f"(this run: {took:.1f} min). Every number is in `results.csv` (deterministic: the same seeds give "
        "the same file); wall-clock times and resident-set sizes are in `measurements.json`.",
        "",
        markdown_table(["part", "verdict"], verdicts),
        "",
    ]
    for number, (title, body, verdict) in enumerate(sections, 1):
        lines += [f"## {number}. {title}", "", body, "", f"**Verdict: {verdict}**", ""]
    lines += [_wall_clock_section(measured), ""]
    lines += _figures_section(figure_files)
    lines.append(provenance_section(prov))
    return "\n".join(lines)


def _agree(ok: bool) -> str:
    return "agrees with the claim" if ok else "does not agree with the claim"


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f} %"


def _memory_section(cells: Cells, measured: dict) -> tuple[str, str, str]:
    peak, saved = memory_by_T(cells), memory_by_T(cells, "saved_for_backward_bytes")
    steps = sorted(peak["gamma-online"])
    lo, hi = steps[0], steps[-1]
    header = [
        "method",
        *[f"T = {T:,}" for T in steps],
        f"T = {hi:,} / T = {lo:,}",
        "saved for backward, largest T",
    ]
    table_rows = []
    ratios = {}
    for method, (model, training) in METHOD_CELL.items():
        ratios[method] = peak[method][hi] / peak[method][lo]
        table_rows.append(
            [
                f"{model}, {training}",
                *[f"{peak[method][T] / MIB:.1f} MiB" for T in steps],
                f"**{ratios[method]:.2f}x**",
                f"{saved[method][hi] / MIB:.1f} MiB",
            ]
        )
    buffer = cells.one("memory", "readout buffer", "-", "per step", "bytes")
    growth = (peak["gamma-online"][hi] - peak["gamma-online"][lo]) / (hi - lo)
    linear = hi / lo
    bptt_linear = min(ratios["gamma-bptt"], ratios["lif-bptt"]) >= 0.5 * linear
    ok = ratios["gamma-online"] <= ONLINE_MEMORY_RATIO and bptt_linear
    body = "\n".join(
        [
            "Peak bytes of tensor storage one training step (forward, backward over the sequence, Adam "
            "step) allocates and holds at once, counted op by op (deterministic; the resident set, "
            f"noisier, is in the wall-clock section). Network {_net(measured)}.",
            "",
            markdown_table(header, table_rows),
            "",
            f"Claim: online memory at the largest T within {ONLINE_MEMORY_RATIO}x of the smallest, BPTT "
            f"growing about linearly ({linear:.0f}x). Measured: online {ratios['gamma-online']:.2f}x, "
            f"growing {growth:.0f} bytes per time step, which is the readout buffer the call returns "
            f"({buffer:.0f} bytes per step), not training state; SpikingGamma BPTT "
            f"{ratios['gamma-bptt']:.2f}x, LIF BPTT {ratios['lif-bptt']:.2f}x.",
        ]
    )
    return "Memory against sequence length T", body, _agree(ok)


def _net(measured: dict) -> str:
    n = measured.get("memory", {}).get("network") or MEMORY_NETWORK
    return f"{n['inputs']}-{n['hidden']}-{n['outputs']}, batch {n['batch']}, dt {n['dt']:g} ms"


def _dt_settings(cells: Cells) -> dict[str, dict[str, dict[str, float]]]:
    """``{regime setting: {"dt=1 ms": {"accuracy": .., "spike_rate_hz": ..}, ...}}``."""
    regimes: dict[str, dict[str, dict[str, float]]] = {}
    for setting in cells.settings("dt-invariance", "SpikingGamma", "online", "accuracy"):
        regime, dt = setting.rsplit(", ", 1)
        regimes.setdefault(regime, {})[dt] = {
            m: cells.one("dt-invariance", "SpikingGamma", "online", setting, m)
            for m in ("accuracy", "spike_rate_hz")
        }
    return regimes


def _dt_section(cells: Cells) -> tuple[str, str, str]:
    regimes = _dt_settings(cells)
    table_rows, changes = [], {}
    for regime, by_dt in regimes.items():
        coarse, fine = by_dt[f"dt={DTS[0]:g} ms"], by_dt[f"dt={DTS[1]:g} ms"]
        d_acc = 100 * (fine["accuracy"] - coarse["accuracy"])
        d_rate = (
            100 * (fine["spike_rate_hz"] / coarse["spike_rate_hz"] - 1)
            if coarse["spike_rate_hz"]
            else math.nan
        )
        changes[regime] = (d_acc, d_rate)
        table_rows.append(
            [
                regime,
                f"{_pct(coarse['accuracy'])} -> {_pct(fine['accuracy'])}",
                f"{d_acc:+.2f}",
                f"{coarse['spike_rate_hz']:.1f} -> {fine['spike_rate_hz']:.1f}",
                f"{d_rate:+.1f} %",
            ]
        )
    inside = next(k for k in regimes if k.startswith("inside"))
    d_acc, d_rate = changes[inside]
    ok = abs(d_acc) <= DT_ACCURACY_POINTS and abs(d_rate) <= DT_RATE_PERCENT
    lines = [
        "JapaneseVowels models trained online at dt = 1 ms (first seed), run at dt = 1 ms and 0.1 ms on the "
        "same spikes re-binned (the same physical time).",
        "",
        markdown_table(
            ["model", "test accuracy, 1 -> 0.1 ms", "change (points)", "spikes / neuron / s", "rate change"],
            table_rows,
        ),
        "",
        "Claim: inside the sigma-delta regime (a neuron fires well below once per step) the accuracy "
        f"changes by at most {DT_ACCURACY_POINTS:g} point and the spike rate by at most {DT_RATE_PERCENT:g} "
        f"%. Measured: {d_acc:+.2f} points, {d_rate:+.1f} %.",
    ]
    outside = [k for k in regimes if k.startswith("outside")]
    if outside:
        lines.append(
            f"Outside the regime the code is not expected to transfer: {changes[outside[0]][1]:+.1f} % "
            f"spikes, {changes[outside[0]][0]:+.2f} points (context, not a claim)."
        )
    return "Time-step invariance", "\n".join(lines), _agree(ok)


def _delay_section(cells: Cells, cfg: dict) -> tuple[str, str, str]:
    task = gamma_tasks.configs(cfg["tasks"])["delay"]
    table_rows, oks = [], []
    for setting in cells.settings("delay", "SpikingGamma", "online", "peak_latency_ms"):
        g = {
            m: cells.one("delay", "SpikingGamma", "online", setting, m)
            for m in ("peak_latency_ms", "latency_error_ms", "normalised_error", "spikes_per_neuron_per_s")
        }
        lif = {
            m: cells.one("delay", "LIF", "BPTT", setting, m)
            for m in ("peak_latency_ms", "normalised_error", "spikes_per_neuron_per_s", "selected_tau_ms")
        }
        target = cells.one("delay", "target", "-", setting, "peak_latency_ms")
        oks.append(
            g["latency_error_ms"] <= DELAY_TOLERANCE_MS and g["normalised_error"] < lif["normalised_error"]
        )
        table_rows.append(
            [
                setting.replace("D=", ""),
                f"{target:g} ms",
                f"{g['peak_latency_ms']:g} ms",
                f"{g['latency_error_ms']:g} ms",
                f"{g['normalised_error']:.3f}",
                f"{lif['normalised_error']:.3f}",
                f"{lif['peak_latency_ms']:g} ms",
                f"{g['spikes_per_neuron_per_s']:.1f} vs {lif['spikes_per_neuron_per_s']:.1f}",
            ]
        )
    header = [
        "D",
        "target peak",
        "SpikingGamma peak",
        "SpikingGamma \\|peak - D\\|",
        "SpikingGamma error",
        "LIF error",
        "LIF peak",
        "spikes / neuron / s, gamma vs LIF",
    ]
    body = "\n".join(
        [
            f"Target: a Poisson pulse train ({task['rate_hz']:g} Hz) smoothed ({task['smooth_tau']:g} ms) "
            "and delayed by D. Peak: latency of the output's peak after a single pulse, sampled at bin "
            "ends (the target itself peaks at D + 1 ms). Error: test MSE / target variance. SpikingGamma "
            "trained online, LIF (+ LI readout) with BPTT, best of its grid of (tau, lr) on validation.",
            "",
            markdown_table(header, table_rows),
            "",
            f"Claim: SpikingGamma's peak within {DELAY_TOLERANCE_MS:g} ms of D, and a lower error than LIF, "
            "at every D.",
        ]
    )
    return "Delay learning", body, _agree(bool(oks) and all(oks))


def _coincidence_section(cells: Cells) -> tuple[str, str, str]:
    setting = cells.settings("coincidence", "SpikingGamma", "online", "accuracy")[0]
    chance = cells.one("coincidence", "chance", "-", setting, "accuracy")
    acc = {
        m: cells.one("coincidence", m, t, setting, "accuracy")
        for m, t in (("SpikingGamma", "online"), ("LIF", "BPTT"))
    }
    rate = {
        m: cells.one("coincidence", m, t, setting, "spikes_per_neuron_per_s")
        for m, t in (("SpikingGamma", "online"), ("LIF", "BPTT"))
    }
    table_rows = [
        ["SpikingGamma, online", _pct(acc["SpikingGamma"]), f"{rate['SpikingGamma']:.1f}"],
        ["LIF, BPTT", _pct(acc["LIF"]), f"{rate['LIF']:.1f}"],
    ]
    body = "\n".join(
        [
            f"Two channels, the second shifted by {setting.replace('shifts ', '')} (the class); every class "
            "has the same spike counts, so only timing separates them.",
            "",
            markdown_table(
                ["model", f"test accuracy (chance {_pct(chance)})", "spikes / neuron / s"], table_rows
            ),
            "",
            "Claim: SpikingGamma (trained online) detects the relative timing better than a LIF network of "
            "the same size trained with BPTT.",
        ]
    )
    return "Coincidence detection", body, _agree(acc["SpikingGamma"] > acc["LIF"])


def _vowels_section(cells: Cells, cfg: dict) -> tuple[str, str, str]:
    g = {**gamma_vowels.GAMMA, **cfg["vowels"]["gamma"]}
    lif_cfg = {**gamma_vowels.LIF, **cfg["vowels"]["lif"]}
    groups = vowels_groups(cells)
    rates = {}
    table_rows = []
    for (model, training), (setting, accs) in groups.items():
        rates[model, training] = cells.values("vowels", model, training, setting, "spike_rate_hz")
        table_rows.append(
            [
                f"{model}, {training} ({len(accs)} seed{'s' * (len(accs) > 1)})",
                mean_spread([100 * a for a in accs]) + " %",
                mean_spread(rates[model, training], "{:.1f}"),
            ]
        )
    online, bptt, lif = (
        groups[k][1] for k in (("SpikingGamma", "online"), ("SpikingGamma", "BPTT"), ("LIF", "BPTT"))
    )
    same = abs(online[0] - bptt[0]) * 100
    mean = sum(online) / len(online)
    lif_mean = sum(lif) / len(lif)
    ok = same <= 0.5 and 100 * (mean - lif_mean) >= -1.0
    body = "\n".join(
        [
            f"JapaneseVowels (12 channels held {g['series_step']:g} ms per frame, sigma-delta encoded into "
            f"24 ON/OFF spike channels), 24-{g['architecture'].replace(',', '-')}-9, {g['epochs']} epochs. "
            f"SpikingGamma: tau {g['gamma_tau']} ms, theta {g['gamma_threshold']:g}, loss from "
            f"{g['loss_start']:g} ms on; LIF (tau {lif_cfg['tau']:g} ms) + LI readout, BPTT with a surrogate "
            "gradient.",
            "",
            markdown_table(["model, training", "test accuracy", "spikes / neuron / s"], table_rows),
            "",
            "Claim: online training computes BPTT's gradient for this network (the same seed gives the "
            "same accuracy, within 0.5 point for rounding) and SpikingGamma reaches the LIF network's "
            f"accuracy (within 1 point). Measured: online vs BPTT (seed 0) {same:.2f} points apart; online "
            f"mean {100 * mean:.2f} % vs LIF {100 * lif_mean:.2f} %.",
        ]
    )
    return "JapaneseVowels accuracy", body, _agree(ok)


def vowels_groups(cells: Cells) -> dict[tuple[str, str], tuple[str, list[float]]]:
    """``{(model, training): (setting, accuracies over seeds)}`` of the JapaneseVowels part."""
    groups = {}
    for model, training in (("SpikingGamma", "online"), ("SpikingGamma", "BPTT"), ("LIF", "BPTT")):
        setting = cells.settings("vowels", model, training, "accuracy")[0]
        groups[model, training] = (setting, cells.values("vowels", model, training, setting, "accuracy"))
    return groups


def _wall_clock_section(measured: dict) -> str:
    lines = [
        "## Wall-clock measurements (not reproducible)",
        "",
        "Machine load changes these; they are in `measurements.json`, not in `results.csv`.",
        "",
    ]
    workers = measured.get("memory", {}).get("workers") or []
    if workers:
        steps = sorted({w["T"] for w in workers})
        table_rows = []
        for method, (model, training) in METHOD_CELL.items():
            by_T = {w["T"]: w for w in workers if w["method"] == method}
            table_rows.append(
                [
                    f"{model}, {training}",
                    *[
                        f"{by_T[T]['training_memory_mib']:.1f} MiB, "
                        f"{1e3 * by_T[T]['seconds_per_training_step']:.0f} ms"
                        for T in steps
                    ],
                ]
            )
        lines += [
            "Peak resident set increase over a warm-up baseline and time per training step, each (method, "
            "T) in a fresh process (glibc mmap threshold pinned for the memory figure):",
            "",
            markdown_table(["method", *[f"T = {T:,}" for T in steps]], table_rows),
            "",
        ]
    timing = measured.get("vowels", {}).get("epoch_time")
    if timing:
        lines.append(
            f"- JapaneseVowels, wall time per training epoch, interleaved: online {timing['online_s']:.2f} "
            "s, "
            f"BPTT {timing['bptt_s']:.2f} s, **{timing['ratio']:.2f}x** (claim: at most "
            f"{EPOCH_TIME_RATIO:g}x: "
            f"{'agrees' if timing['ratio'] <= EPOCH_TIME_RATIO else 'does not agree'})."
        )
    walls = measured.get("wall_s", {})
    lines.append(
        "- wall time per part: "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items())
        + f"; total {measured.get('total_wall_s', sum(walls.values())) / 60:.1f} min."
    )
    return "\n".join(lines)


def _figures_section(figure_files: list[Path] | None) -> list[str]:
    if figure_files is None:
        return [
            "## Figures",
            "",
            "Not drawn: matplotlib is not installed (`pip install 'asyncsnn[plot]'`).",
            "",
        ]
    lines = ["## Figures", ""]
    lines += [f"![{path.stem}]({path.name})" for path in figure_files]
    return [*lines, ""]


# ----- figures ----------------------------------------------------------------------------------------------


def draw_figures(
    rows: Sequence[dict], measured: dict, curves: dict, cfg: dict, out: Path
) -> list[Path] | None:
    """Write the study's PNG figures into ``out``; None (and a message) without matplotlib."""
    if not matplotlib_available():
        print("figures not drawn: matplotlib is not installed (pip install 'asyncsnn[plot]')", flush=True)
        return None
    cells = Cells(rows)
    files = []
    tensor_mib = {m: {T: b / MIB for T, b in by_T.items()} for m, by_T in memory_by_T(cells).items()}
    rss = {}
    for w in measured.get("memory", {}).get("workers") or []:
        rss.setdefault(w["method"], {})[w["T"]] = w["training_memory_mib"]
    files.append(figures.figure_memory(tensor_mib, rss, out / "memory_vs_T.png"))
    files.append(figures.figure_dt(_dt_settings(cells), out / "dt_invariance.png"))
    peaks: dict[str, dict[float, float]] = {}
    for model, training in (("target", "-"), ("SpikingGamma", "online"), ("LIF", "BPTT")):
        for setting in cells.settings("delay", model, training, "peak_latency_ms"):
            d = float(setting.split("=")[1].split()[0])
            peaks.setdefault(model, {})[d] = cells.one("delay", model, training, setting, "peak_latency_ms")
    files.append(figures.figure_delay_peaks(peaks, DELAY_TOLERANCE_MS, out / "delay_peaks.png"))
    if gamma_tasks.plot_delay(curves["delay"], curves["delay_config"], out / "delay_responses.png"):
        files.append(out / "delay_responses.png")
    setting = cells.settings("coincidence", "SpikingGamma", "online", "accuracy")[0]
    coincidence = {
        f"{m}, {t}": {
            k: cells.one("coincidence", m, t, setting, k) for k in ("accuracy", "spikes_per_neuron_per_s")
        }
        for m, t in (("SpikingGamma", "online"), ("LIF", "BPTT"))
    }
    chance = cells.one("coincidence", "chance", "-", setting, "accuracy")
    files.append(figures.figure_coincidence(coincidence, chance, out / "coincidence.png"))
    groups = {f"{m}\n{t}": accs for (m, t), (_, accs) in vowels_groups(cells).items()}
    files.append(figures.figure_vowels(groups, out / "vowels_accuracy.png"))
    return files
