"""The SpikingGamma study (``asyncsnn reproduce gamma``): the evidence for the README's SpikingGamma claims.

Five parts, all on CPU with one torch thread:

1. ``memory``: memory of one training step against the sequence length T, online vs BPTT vs LIF-BPTT
   (:mod:`asyncsnn.studies.gamma_memory`);
2. ``dt-invariance``: the JapaneseVowels online model trained at dt = 1 ms, run at 0.1 ms (inside the
   sigma-delta regime), and a fast-firing model outside it (:mod:`asyncsnn.studies.gamma_vowels`);
3. ``delay``: delay learning, SpikingGamma online vs LIF-BPTT (:mod:`asyncsnn.studies.gamma_tasks`);
4. ``coincidence``: coincidence detection, the same two models;
5. ``vowels``: JapaneseVowels accuracy, SpikingGamma online (every seed) vs BPTT (first seed) vs LIF (every
   seed).

Outputs in ``out``: ``results.csv`` (one row per number: part, model, training, setting, seed, metric,
value; only deterministic numbers, so the same seeds give a byte-identical file), ``measurements.json``
(wall-clock times and resident-set sizes: not reproducible), ``provenance.json``, ``report.md``, PNG
figures and the trained JapaneseVowels runs under ``runs/`` (checkpoints for ``asyncsnn eval``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from asyncsnn.errors import ConfigError, DataError
from asyncsnn.studies import gamma_tasks, gamma_vowels
from asyncsnn.studies.gamma_memory import DEFAULTS as MEMORY_NETWORK
from asyncsnn.studies.gamma_memory import METHODS, measure_both, tensor_memory
from asyncsnn.studies.gamma_report import DTS, METHOD_CELL, MIB, draw_figures, render_report
from asyncsnn.studies.report import provenance, write_csv, write_json, write_text

STUDY = "gamma"
PARTS = ("memory", "dt-invariance", "delay", "coincidence", "vowels")

#: What each preset runs. ``memory.network`` and ``tasks.<group>`` override the defaults of
#: :mod:`gamma_memory` and :mod:`gamma_tasks`; ``vowels.gamma`` / ``vowels.lif`` override
#: :data:`gamma_vowels.GAMMA` / :data:`gamma_vowels.LIF` (``TrainConfig`` keys).
PRESETS: dict[str, dict[str, Any]] = {
    "full": {
        "description": "the README's numbers: every T, 3 seeds for JapaneseVowels, the scripts' epochs",
        "expected_minutes": 30,
        "seeds": 3,
        "memory": {
            "steps": [500, 1000, 2000, 5000],
            "network": {},
            "workers": True,
            "repeats": 3,
            "mmap_threshold": 2**20,
        },
        "vowels": {"gamma": {}, "lif": {}, "outside": True, "epoch_time_repeats": 3},
        "tasks": {},
    },
    "quick": {
        "description": (
            "a shortened run: T = 500 and 5,000 only, one seed, 8 instead of 12 JapaneseVowels epochs, about "
            "half the delay and coincidence training and no LIF hyperparameter grid (the grid's usual "
            "winner, tau 5 ms and lr 0.03); numbers are weaker than the full preset's"
        ),
        "expected_minutes": 10,
        "seeds": 1,
        "memory": {
            "steps": [500, 5000],
            "network": {},
            "workers": True,
            "repeats": 1,
            "mmap_threshold": 2**20,
        },
        "vowels": {"gamma": {"epochs": 8}, "lif": {"epochs": 8}, "outside": True, "epoch_time_repeats": 1},
        "tasks": {
            "gamma_delay": {"sequences": 30},
            "lif_delay": {"taus": (5.0,), "lrs": (0.03,), "iterations": 250},
            "gamma_coincidence": {"epochs": 3},
            "lif_coincidence": {"taus": (5.0,), "lrs": (0.03,), "epochs": 10},
        },
    },
}

_TINY_VOWELS = {
    "architecture": "16",
    "series_step": 3.0,
    "loss_start": 6.0,
    "epochs": 1,
    "train_limit": 64,
    "test_limit": 45,
}
#: A seconds-long configuration for tests (``run(..., _overrides=TINY)``; not a CLI preset).
TINY: dict[str, Any] = {
    "description": "tiny test configuration: every part runs, the numbers mean nothing",
    "expected_minutes": 1,
    "seeds": 1,
    "memory": {
        "steps": [64, 256],
        "network": {"batch": 2, "hidden": 8, "warmup_steps": 4, "density": 0.3},
        "workers": False,
    },
    "vowels": {"gamma": _TINY_VOWELS, "lif": _TINY_VOWELS, "outside": True, "epoch_time_repeats": 0},
    "tasks": gamma_tasks.SMOKE,
}


def preset_config(preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The configuration of ``preset`` (``quick`` or ``full``), updated (recursively) by ``overrides``."""
    if preset not in PRESETS:
        raise ConfigError(
            f"preset: {preset!r} is not a preset of the gamma study; allowed: {sorted(PRESETS)}"
        )
    return _merge(PRESETS[preset], overrides or {})


def run(
    preset: str = "quick",
    *,
    data_dir: str | Path | None = None,
    out: str | Path,
    seeds: int | None = None,
    progress: bool = True,
    _overrides: dict[str, Any] | None = None,
) -> Path:
    """Run the study and write its files into ``out``; returns the path of ``report.md``.

    ``seeds=None``: the preset's number of seeds; ``seeds=N``: seeds 0..N-1 (JapaneseVowels online and LIF
    run every seed; BPTT, time-step invariance and the timing tasks the first). JapaneseVowels is read from
    ``data_dir`` (or ``ASYNCSNN_DATA``); a missing copy is a :class:`DataError` before anything runs.
    """
    cfg = preset_config(preset, _overrides)
    n_seeds = cfg["seeds"] if seeds is None else seeds
    if n_seeds < 1:
        raise ConfigError(f"seeds: {n_seeds} is not a number of seeds; pass 1 or more")
    seed_list = list(range(n_seeds))
    data_dir = None if data_dir is None else str(data_dir)
    check_vowels_data(data_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(STUDY, preset, _jsonable({**cfg, "resolved": resolved_config(cfg)}), seed_list)
    log = _Log()
    log(f"SpikingGamma study, preset '{preset}' ({cfg['description']}); seeds {seed_list}")
    log(f"expected time: about {cfg['expected_minutes']} min on 2 CPU cores; output: {out}")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: threads cost more than they give; and bit-exact reruns
    try:
        rows, measured, curves = _run_parts(cfg, seed_list, data_dir, out, progress, log)
    finally:
        torch.set_num_threads(threads)
    measured["total_wall_s"] = log.elapsed()

    write_csv(rows, out / "results.csv")
    write_json(prov, out / "provenance.json")
    write_json(measured, out / "measurements.json")
    figure_files = draw_figures(rows, measured, curves, cfg, out)
    text = render_report(rows, measured, cfg, preset, prov, figure_files, modified=bool(_overrides))
    report = write_text(text, out / "report.md")
    log(f"done in {log.elapsed() / 60:.1f} min: {out / 'results.csv'}, {report}")
    return report


def resolved_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Every part's full configuration (the defaults with the preset's overrides applied)."""
    return {
        "memory_network": {**MEMORY_NETWORK, **cfg["memory"]["network"]},
        "vowels_gamma": {**gamma_vowels.GAMMA, **cfg["vowels"]["gamma"]},
        "vowels_lif": {**gamma_vowels.LIF, **cfg["vowels"]["lif"]},
        "vowels_outside_regime": gamma_vowels.OUTSIDE,
        "tasks": gamma_tasks.configs(cfg["tasks"]),
        "tasks_dt_ms": gamma_tasks.DT,
    }


def check_vowels_data(data_dir: str | None) -> None:
    """Raise a :class:`DataError` naming the fetch command when JapaneseVowels is not readable."""
    from asyncsnn.data import load_japanese_vowels

    try:
        for split in ("train", "test"):
            load_japanese_vowels(split, data_dir)
    except DataError as err:
        where = data_dir or "DIR"
        raise DataError(
            f"the SpikingGamma study needs JapaneseVowels: {err}. Get it with: asyncsnn data --fetch "
            f"japanese-vowels --data-dir {where} (then pass --data-dir {where} or set ASYNCSNN_DATA)"
        ) from None


# ----- running the parts ------------------------------------------------------------------------------------


class _Log:
    """Prints a line with the elapsed time since the study started."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, line: str) -> None:
        minutes, seconds = divmod(int(self.elapsed()), 60)
        print(f"[{minutes:3d}:{seconds:02d}] {line}", flush=True)


def _run_parts(
    cfg: dict, seeds: list[int], data_dir: str | None, out: Path, progress: bool, log: _Log
) -> tuple[list[dict], dict, dict]:
    """Run every part; returns (CSV rows in report order, wall-clock measurements, curves for figures)."""
    rows: dict[str, list[dict]] = {}
    measured: dict[str, Any] = {"wall_s": {}}
    curves: dict[str, Any] = {}

    def part(name: str, fn: Callable[[], list[dict]], note: str = "") -> None:
        log(f"part {PARTS.index(name) + 1}/{len(PARTS)}: {name}{note}")
        t0 = time.perf_counter()
        rows[name] = fn()
        measured["wall_s"][name] = time.perf_counter() - t0
        log(f"part {name} done in {measured['wall_s'][name]:.0f} s")

    part("memory", lambda: memory_part(cfg["memory"], measured, log))
    vowels: dict[str, Any] = {}
    part(
        "vowels",
        lambda: vowels_part(cfg["vowels"], seeds, data_dir, out, progress, measured, vowels, log),
        " (runs before part 2, which reuses its first online model)",
    )
    part("dt-invariance", lambda: dt_part(cfg["vowels"], seeds[0], data_dir, out, progress, vowels, log))
    tasks = gamma_tasks.configs(cfg["tasks"])
    part("delay", lambda: delay_part(tasks, seeds[0], progress, measured, curves, log))
    part("coincidence", lambda: coincidence_part(tasks, seeds[0], progress, measured, log))
    return [r for name in PARTS for r in rows[name]], measured, curves


def _cell(part: str, model: str, training: str, setting: str, seed: int, metric: str, value: Any) -> dict:
    """One row of ``results.csv``."""
    return {
        "part": part,
        "model": model,
        "training": training,
        "setting": setting,
        "seed": seed,
        "metric": metric,
        "value": value,
    }


def memory_part(cfg: dict, measured: dict, log: Callable[[str], None]) -> list[dict]:
    """Part 1: deterministic tensor memory per (method, T); resident set and time from worker processes."""
    network = {**MEMORY_NETWORK, **cfg["network"]}
    rows = []
    for method in METHODS:
        model, training = METHOD_CELL[method]
        for T in cfg["steps"]:
            r = tensor_memory(method, T, network)
            log(f"  {method} T={T}: peak tensor memory {r['peak_tensor_bytes'] / MIB:.1f} MiB")
            for metric in ("peak_tensor_bytes", "saved_for_backward_bytes", "loss"):
                rows.append(_cell("memory", model, training, f"T={T}", network["seed"], metric, r[metric]))
    rows.append(
        _cell(
            "memory",
            "readout buffer",
            "-",
            "per step",
            network["seed"],
            "bytes",
            4 * network["batch"] * network["outputs"],
        )
    )
    workers = []
    if cfg.get("workers"):
        for method in METHODS:
            for T in cfg["steps"]:
                r = measure_both(
                    method, T, network, repeats=cfg["repeats"], mmap_threshold=cfg["mmap_threshold"]
                )
                log(
                    f"  {method} T={T}: RSS increase {r['training_memory_mib']:.1f} MiB, "
                    f"{1e3 * r['seconds_per_training_step']:.0f} ms per training step"
                )
                workers.append(r)
    measured["memory"] = {"network": network, "workers": workers}
    return rows


def vowels_part(
    cfg: dict,
    seeds: list[int],
    data_dir: str | None,
    out: Path,
    progress: bool,
    measured: dict,
    trained: dict,
    log: Callable[[str], None],
) -> list[dict]:
    """Part 5 (run first: part 2 uses its model): JapaneseVowels online (every seed), BPTT, LIF (every seed).

    Fills ``trained["online"]`` with the first seed's online network."""
    gamma, lif = {**gamma_vowels.GAMMA, **cfg["gamma"]}, {**gamma_vowels.LIF, **cfg["lif"]}
    runs = [
        ("SpikingGamma", "online", {**gamma, "training": "online"}, seeds),
        ("SpikingGamma", "BPTT", {**gamma, "training": "bptt"}, seeds[:1]),
        ("LIF", "BPTT", lif, seeds),
    ]
    rows, seconds = [], {}
    for model, training, values, run_seeds in runs:
        for seed in run_seeds:
            name = f"{model.lower()}_{training.lower()}_{seed}"
            log(f"  JapaneseVowels: {model}, {training}, seed {seed}")
            r = gamma_vowels.train_config(
                {**values, "seed": seed}, out / "runs" / name, data_dir, progress=progress, log=log
            )
            seconds[name] = r["seconds_per_epoch"]
            if (model, training, seed) == ("SpikingGamma", "online", seeds[0]):
                trained["online"] = r["network"]
            setting = f"{values['epochs']} epochs"
            for metric in ("accuracy", "spike_rate_hz", "spikes", "loss"):
                rows.append(_cell("vowels", model, training, setting, seed, metric, r["test"][metric]))
    measured["vowels"] = {"seconds_per_epoch": seconds}
    if cfg["epoch_time_repeats"] > 0:
        log("  wall time per epoch, online vs BPTT (interleaved)")
        measured["vowels"]["epoch_time"] = gamma_vowels.epoch_time_ratio(
            {**gamma, "seed": seeds[0]}, data_dir, repeats=cfg["epoch_time_repeats"]
        )
    return rows


def dt_part(
    cfg: dict,
    seed: int,
    data_dir: str | None,
    out: Path,
    progress: bool,
    trained: dict,
    log: Callable[[str], None],
) -> list[dict]:
    """Part 2: the online model trained at dt = 1 ms run at 1 and 0.1 ms; the same for a model trained far
    outside the sigma-delta regime (when ``cfg["outside"]``)."""
    gamma = {**gamma_vowels.GAMMA, **cfg["gamma"], "training": "online", "seed": seed}
    models = [("inside", gamma, trained["online"])]
    if cfg["outside"]:
        outside = {**gamma, **gamma_vowels.OUTSIDE}
        log("  training the fast-firing model (theta = 0.05, tau_0 = 5 ms) at dt = 1 ms")
        r = gamma_vowels.train_config(
            outside,
            out / "runs" / f"spikinggamma_online_outside_{seed}",
            data_dir,
            progress=progress,
            log=log,
        )
        models.append(("outside", outside, r["network"]))
    rows = []
    for regime, values, network in models:
        setting = f"{regime} regime (theta {values['gamma_threshold']:g}, tau_0 {_tau0(values):g} ms)"
        for dt in DTS:
            metrics = gamma_vowels.at_dt(network, values, data_dir, dt, progress=progress)
            log(
                f"  {regime} regime, dt = {dt:g} ms: accuracy {100 * metrics['accuracy']:.2f} %, "
                f"{metrics['spike_rate_hz']:.1f} spikes/neuron/s"
            )
            for metric in ("accuracy", "spike_rate_hz"):
                rows.append(
                    _cell(
                        "dt-invariance",
                        "SpikingGamma",
                        "online",
                        f"{setting}, dt={dt:g} ms",
                        seed,
                        metric,
                        metrics[metric],
                    )
                )
    return rows


def delay_part(
    tasks: dict, seed: int, progress: bool, measured: dict, curves: dict, log: Callable[[str], None]
) -> list[dict]:
    """Part 3: delay learning for every D; pulse responses and example outputs go to ``curves``."""
    results = gamma_tasks.run_delay(
        tasks["delay"], tasks["gamma_delay"], tasks["lif_delay"], seed, progress=progress, log=log
    )
    rows, walls = [], {}
    for d, r in results.items():
        setting = f"D={d} ms"
        rows.append(
            _cell("delay", "target", "-", setting, seed, "peak_latency_ms", r["target_peak_latency_ms"])
        )
        for key, model, training in (("gamma", "SpikingGamma", "online"), ("lif", "LIF", "BPTT")):
            m = r[key]
            for metric in (
                "normalised_error",
                "peak_latency_ms",
                "latency_error_ms",
                "spikes_per_neuron_per_s",
            ):
                rows.append(_cell("delay", model, training, setting, seed, metric, m[metric]))
            walls[f"{key} D={d}"] = m["wall_s"]
        rows += _lif_grid("delay", setting, seed, r["lif"], "val_normalised_error")
    measured["delay_wall_s"] = walls
    curves["delay"] = results
    curves["delay_config"] = tasks["delay"]
    return rows


def coincidence_part(
    tasks: dict, seed: int, progress: bool, measured: dict, log: Callable[[str], None]
) -> list[dict]:
    """Part 4: coincidence detection, SpikingGamma online vs LIF-BPTT."""
    r = gamma_tasks.run_coincidence(
        tasks["coincidence"],
        tasks["gamma_coincidence"],
        tasks["lif_coincidence"],
        seed,
        progress=progress,
        log=log,
    )
    setting = f"shifts {', '.join(f'{d:g}' for d in tasks['coincidence']['delays'])} ms"
    rows = [_cell("coincidence", "chance", "-", setting, seed, "accuracy", r["chance"])]
    for key, model, training in (("gamma", "SpikingGamma", "online"), ("lif", "LIF", "BPTT")):
        for metric in ("accuracy", "spikes_per_neuron_per_s"):
            rows.append(_cell("coincidence", model, training, setting, seed, metric, r[key][metric]))
    rows += _lif_grid("coincidence", setting, seed, r["lif"], "val_accuracy")
    measured["coincidence_wall_s"] = {"gamma": r["gamma"]["wall_s"], "lif": r["lif"]["wall_s"]}
    return rows


def _lif_grid(part: str, setting: str, seed: int, lif: dict, metric: str) -> list[dict]:
    """Rows of the LIF baseline's hyperparameter grid (validation score per point) and its choice."""
    rows = [
        _cell(part, "LIF", "BPTT", f"{setting}, tau={g['tau']:g} ms, lr={g['lr']:g}", seed, metric, g[metric])
        for g in lif["grid"]
    ]
    rows.append(_cell(part, "LIF", "BPTT", setting, seed, "selected_tau_ms", lif["tau"]))
    rows.append(_cell(part, "LIF", "BPTT", setting, seed, "selected_lr", lif["lr"]))
    return rows


# ----- helpers ----------------------------------------------------------------------------------------------


def _tau0(values: dict) -> float:
    return float(str(values["gamma_tau"]).split(",")[0])


def _merge(base: dict, overrides: dict) -> dict:
    """A deep copy of ``base`` with ``overrides`` merged in (nested dicts merged, other values replaced)."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists (JSON has no tuples)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
