"""Per-sample metrics (DESIGN section 6), accumulated over batches and reported as mean and spread.

Accuracy by spike count: the predicted class is the output neuron with the most spikes; a sample whose
maximum count is shared by several neurons (including "no output spike at all") is undecided and counts
as wrong, so silent networks do not score chance accuracy. With a membrane readout the prediction is the
arg-max of the time-averaged membrane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from asyncsnn.engines.records import RunResult

UNDECIDED = -1
#: Per-sample records of the asynchronous engine that are summarised when present. Latency fields are NaN
#: for samples without such a spike: their mean is over samples that have one, and ``<name>_missing``
#: gives the fraction without.
ASYNC_FIELDS = (
    "micro_steps",
    "micro_steps_to_first_output",
    "micro_steps_to_first_correct",
    "micro_steps_to_decision",
    "spikes_before_first_output",
    "spikes_before_first_correct",
    "dropped_events",
)


def predict(output: torch.Tensor, readout: str = "spikes") -> torch.Tensor:
    """Predicted class per sample from ``output`` ``[T, B, n]``; :data:`UNDECIDED` (-1) on a tie."""
    if readout == "membrane":
        return output.mean(0).argmax(1)
    counts = output.sum(0)
    best = counts.max(1)
    tied = (counts == best.values.unsqueeze(1)).sum(1) > 1
    return torch.where(tied, torch.full_like(best.indices, UNDECIDED), best.indices)


def first_spike_frame(output: torch.Tensor) -> torch.Tensor:
    """``[B]`` index of the first frame with any output spike (``T`` when there is none)."""
    any_spike = output.flatten(2).sum(2) > 0  # [T, B]
    T = output.shape[0]
    frames = torch.arange(T, device=output.device).unsqueeze(1).expand_as(any_spike)
    return torch.where(any_spike, frames, torch.full_like(frames, T)).min(0).values


@dataclass
class MetricAccumulator:
    """Collects per-sample values over batches; :meth:`summary` gives means, standard deviations."""

    readout: str = "spikes"
    values: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    #: first frame of the prediction window (a SpikingGamma readout is judged from ``loss_start`` on)
    predict_from: int = 0

    def _add(self, name: str, value: torch.Tensor) -> None:
        self.values.setdefault(name, []).append(value.detach().double().cpu())

    def add(self, result: RunResult, labels: torch.Tensor, network=None) -> None:
        """Add one batch: its engine result and its labels ``[B]``."""
        rec = result.records
        correct = (predict(result.output[self.predict_from :], self.readout) == labels).double()
        self._add("accuracy", correct)
        self._add("spikes", rec.total_spikes)
        self._add("synops", rec.total_synops)
        self._add("input_events", rec.input_events)
        for i, s in enumerate(rec.spikes):
            self._add(f"spikes_layer{i}", s)
        for i, s in enumerate(rec.synops):
            self._add(f"synops_layer{i}", s)
        if network is not None:
            n_neurons = sum(layer.size for layer in network.layers if layer.population.spiking)
            T = result.output.shape[0]
            density = rec.total_spikes / max(1, n_neurons * T)
            self._add("spike_density", density)
            self._add("spike_rate_hz", density * 1000.0 / network.dt)  # per spiking neuron per second
        if self.readout == "spikes":
            self._add("frames_to_first_output", first_spike_frame(result.output).double())
        for name in ASYNC_FIELDS:  # only the asynchronous engine records these
            value = getattr(rec, name, None)
            if value is not None:
                self._add(name, value)

    @property
    def count(self) -> int:
        return sum(v.numel() for v in self.values.get("accuracy", []))

    def summary(self) -> dict[str, float]:
        """``{name: mean, name + "_std": standard deviation}`` over all samples, plus ``samples``."""
        out: dict[str, float] = {"samples": float(self.count)}
        for name, chunks in self.values.items():
            v = torch.cat(chunks)
            missing = torch.isnan(v)
            if missing.any():
                out[f"{name}_missing"] = float(missing.double().mean())
                v = v[~missing]
            out[name] = float(v.mean()) if v.numel() else math.nan
            out[f"{name}_std"] = float(v.std(unbiased=False)) if v.numel() > 1 else 0.0
        return out


def format_table(columns: list[tuple[str, dict[str, float]]], keys: list[str]) -> str:
    """A plain-text table: one row per metric in ``keys``, one column ``mean ± std`` per (label, summary)."""
    header = ["metric (per sample)", *[label for label, _ in columns]]
    body = []
    for k in keys:
        row = [k]
        for _, s in columns:
            if k not in s:
                row.append("-")
                continue
            mean, std = s[k], s.get(f"{k}_std", math.nan)
            if k == "accuracy":  # a proportion: the spread of 0/1 values says nothing more
                row.append(f"{100 * mean:.2f} %")
            else:
                fmt = "{:.4f}" if abs(mean) < 1 else "{:.1f}" if abs(mean) < 1e5 else "{:.4g}"
                row.append(fmt.format(mean) + ("" if math.isnan(std) else " ± " + fmt.format(std)))
        body.append(row)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
