"""Figures of the SpikingGamma study (PNG, matplotlib; the ``plot`` extra).

The ``draw_*`` functions draw on a given matplotlib ``Axes`` (so that a script can combine them); the
``figure_*`` functions write one PNG each. All take plain numbers, never networks.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asyncsnn.plots import _pyplot

MIB = 2**20
#: (label, colour) per method of the memory part, in the order of ``gamma_memory.METHODS``.
METHOD_STYLE = {
    "gamma-online": ("SpikingGamma, online", "C0"),
    "gamma-bptt": ("SpikingGamma, BPTT", "C1"),
    "lif-bptt": ("LIF, BPTT", "C2"),
}


def draw_vowels_accuracy(ax: Any, groups: dict[str, Sequence[float]]) -> None:
    """Test accuracy (fractions) per model: a bar at the mean and a dot per seed."""
    for i, accs in enumerate(groups.values()):
        ax.scatter([i] * len(accs), [100 * a for a in accs], color="C0", zorder=3)
        ax.bar(i, 100 * statistics.mean(accs), color="C0", alpha=0.3)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_ylabel("test accuracy (%)")
    low = min(100 * a for accs in groups.values() for a in accs)
    ax.set_ylim(min(80.0, 5 * int(low // 5)), 100)
    ax.set_title("JapaneseVowels")


def draw_dt(ax: Any, rates: Sequence[float], accuracies: Sequence[float], labels: Sequence[str]) -> None:
    """Spikes per neuron per second of one model run at several time steps, accuracy under each bar."""
    ax.bar(range(len(rates)), rates, color=[f"C{i + 1}" for i in range(len(rates))])
    ax.set_xticks(range(len(rates)), [f"{lab}\n{100 * a:.1f} %" for lab, a in zip(labels, accuracies)])
    ax.set_ylabel("spikes / neuron / s")


def figure_memory(tensor_mib: dict[str, dict[int, float]], rss_mib: dict[str, dict[int, float]], path: Path):
    """Training memory against T per method: deterministic tensor bytes, and peak RSS when measured."""
    plt = _pyplot()
    panels = 2 if rss_mib else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
    for ax, data, title in zip(
        axes[0], (tensor_mib, rss_mib), ("tensor memory (deterministic)", "peak RSS increase (wall clock)")
    ):
        for method, by_T in data.items():
            label, colour = METHOD_STYLE[method]
            ax.plot(list(by_T), list(by_T.values()), "o-", color=colour, label=label)
        ax.set(xlabel="sequence length T (steps of 1 ms)", ylabel="MiB", title=title)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.suptitle("One training step: memory against sequence length")
    return _save(fig, path)


def figure_dt(regimes: dict[str, dict[str, dict[str, float]]], path: Path):
    """Accuracy and spike rate of models trained at dt = 1 ms, run at dt = 1 and 0.1 ms, per firing regime.

    ``regimes[name][dt_label] = {"accuracy": ..., "spike_rate_hz": ...}``.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(regimes), figsize=(4.2 * len(regimes), 3.6), squeeze=False)
    for ax, (name, by_dt) in zip(axes[0], regimes.items()):
        draw_dt(
            ax,
            [m["spike_rate_hz"] for m in by_dt.values()],
            [m["accuracy"] for m in by_dt.values()],
            list(by_dt),
        )
        ax.set_title(name, fontsize=10)
    fig.suptitle("Trained at dt = 1 ms, run at a finer step (accuracy under the bars)")
    return _save(fig, path)


def figure_delay_peaks(peaks: dict[str, dict[float, float]], tolerance_ms: float, path: Path):
    """Peak latency of the response to one pulse against the asked delay D, per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    delays = sorted({d for by_d in peaks.values() for d in by_d})
    ax.fill_between(
        delays,
        [d - tolerance_ms for d in delays],
        [d + tolerance_ms for d in delays],
        color="gray",
        alpha=0.2,
        label=f"D ± {tolerance_ms:g} ms",
    )
    for (name, by_d), style in zip(peaks.items(), ("k--", "C0o-", "C1s-")):
        ax.plot(list(by_d), list(by_d.values()), style, label=name)
    ax.set(xlabel="asked delay D (ms)", ylabel="peak latency after a pulse (ms)", title="Delay learning")
    ax.legend(fontsize=8)
    return _save(fig, path)


def figure_coincidence(results: dict[str, dict[str, float]], chance: float, path: Path):
    """Test accuracy and spike rate per model on the coincidence task."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    names = list(results)
    colours = [f"C{i}" for i in range(len(names))]
    axes[0].bar(names, [100 * r["accuracy"] for r in results.values()], color=colours)
    axes[0].axhline(100 * chance, color="gray", ls=":", label="chance")
    axes[0].set(ylabel="test accuracy (%)", ylim=(0, 100), title="Coincidence detection")
    axes[0].legend(fontsize=8)
    axes[1].bar(names, [r["spikes_per_neuron_per_s"] for r in results.values()], color=colours)
    axes[1].set(ylabel="spikes / neuron / s", title="Sparsity")
    return _save(fig, path)


def figure_vowels(groups: dict[str, Sequence[float]], path: Path):
    """JapaneseVowels test accuracy per model and training (one dot per seed)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    draw_vowels_accuracy(ax, groups)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path
