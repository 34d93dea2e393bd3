"""What an engine run records, per sample. Engines fill it; :mod:`asyncsnn.metrics` reads it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Records:
    """Per-sample records of one run over ``T`` frames (``B`` samples).

    Attributes:
        input_events: ``[B]`` input events delivered (sum of input event counts).
        spikes: per population, ``[B]`` spikes emitted (zeros for a non-spiking readout).
        synops: per synapse block, ``[B]`` synaptic operations = delivered events x fan-out; block 0
            delivers the input events, block ``i`` the spikes of population ``i - 1``.
        membrane: per population, ``[T, B, *shape]`` pre-reset membrane, when requested.
    """

    input_events: torch.Tensor
    spikes: list[torch.Tensor]
    synops: list[torch.Tensor]
    membrane: list[torch.Tensor] | None = field(default=None, repr=False)

    @property
    def total_spikes(self) -> torch.Tensor:
        """``[B]`` spikes over all populations."""
        return torch.stack(self.spikes).sum(0)

    @property
    def total_synops(self) -> torch.Tensor:
        """``[B]`` SynOps over all synapse blocks."""
        return torch.stack(self.synops).sum(0)


@dataclass
class RunResult:
    """Output of an engine run.

    Attributes:
        output: ``[T, B, n_out]`` output spikes per frame (or the membrane, for an LI readout).
        records: per-sample :class:`Records`.
        state: per population, its final state (continues a later run).
        spike_trains: per population, ``[T, B, *shape]`` spikes it emitted in each frame (counts per neuron,
            the run's dtype, no gradient), when requested (``async_.run(..., record_spikes=True)``); summed
            over frames and neurons, population ``i``'s train is ``records.spikes[i]``.
    """

    output: torch.Tensor
    records: Records
    state: list | None = None
    spike_trains: list[torch.Tensor] | None = field(default=None, repr=False)
