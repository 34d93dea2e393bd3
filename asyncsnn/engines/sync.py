"""Layer-synchronous engine (DESIGN section 4), the reference the asynchronous engine is tested against.

Every frame, each layer in order receives the currents of the previous layer's spikes, integrates them and
fires. Because a feed-forward network has no recurrence across layers, the same result is computed layer by
layer over all frames at once: the synapses of a layer run on ``[T * B, ...]`` in one call (large matrix
products), then the population's dynamics run as one fused scan over ``T``. ``fused=False`` runs the plain
frame-by-frame loop of :meth:`Network.forward` instead (the reference; tests check both agree).
"""

from __future__ import annotations

import torch

from asyncsnn.engines.records import Records, RunResult
from asyncsnn.network import Network
from asyncsnn.neurons.gamma import GammaState
from asyncsnn.validation import check_input


def run(
    network: Network,
    x: torch.Tensor,
    state: list | None = None,
    *,
    record_membrane: bool = False,
    fused: bool = True,
) -> RunResult:
    """Run ``network`` layer-synchronously on ``x`` ``[T, B, *input_shape]``.

    Returns a :class:`RunResult` with ``output`` ``[T, B, n_out]`` and per-sample :class:`Records`.
    ``state`` (a list with one entry per population) continues from a previous run.
    """
    check_input(network, x)
    T, B = x.shape[:2]
    spikes, membranes, state = population_outputs(network, x, state, fused=fused)
    records = _records(network, x, spikes)
    if record_membrane:
        records.membrane = [m.detach() for m in membranes]
    return RunResult(spikes[-1].reshape(T, B, -1), records, state)


def population_outputs(
    network: Network, x: torch.Tensor, state: list | None = None, *, fused: bool = True
) -> tuple[list[torch.Tensor], list[torch.Tensor], list]:
    """Every population's output ``[T, B, *shape]`` and pre-reset membrane, and the final state.

    For a SpikingGamma network: the spikes (the readout's value for the readout) and the net inputs ``x``.
    """
    if network.is_gamma:
        outs, _, drives, state = gamma_outputs(network, x, state)
        return outs, drives, state
    T, B = x.shape[:2]
    layers = network.layers
    state = list(state) if state is not None else [None] * len(layers)
    if fused:
        outs, membranes, h = [], [], x
        for i, layer in enumerate(layers):
            current = layer.synapse(h.reshape(T * B, *layer.in_shape)).reshape(T, B, *layer.shape)
            h, state[i], u = layer.population.scan(current, state[i])
            outs.append(h)
            membranes.append(u)
        return outs, membranes, state
    frames: list[list[torch.Tensor]] = [[] for _ in layers]
    us: list[list[torch.Tensor]] = [[] for _ in layers]
    for t in range(T):
        h = x[t]
        for i, layer in enumerate(layers):
            h, state[i], u = layer.population.step(layer.synapse(h), state[i])
            frames[i].append(h)
            us[i].append(u)
    return [torch.stack(f) for f in frames], [torch.stack(u) for u in us], state


def gamma_outputs(
    network: Network, x: torch.Tensor, state: list | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list]:
    """Run a SpikingGamma network over ``x`` ``[T, B, *input_shape]`` (DESIGN section 7).

    Layer by layer over all steps at once: the synapses read every presynaptic bucket in one call, the
    sigma-delta encoder and the bucket recursions then scan over ``T``. Returns, per population, its output
    (spikes ``[T, B, *shape]``, or the readout's value), its buckets ``[T, B, K, *shape]`` (None for the
    readout), its net input ``x`` ``[T, B, *shape]``, and the final state.
    """
    T, B = x.shape[:2]
    layers = network.layers
    state = list(state) if state is not None else [None] * len(layers)
    first = layers[0].population
    h = first.input_memory(x, state[0].inputs if state[0] is not None else None)
    inputs_last = h[-1]
    outs, buckets, drives = [], [], []
    for i, layer in enumerate(layers):
        pop = layer.population
        drive = pop.drive(layer.synapse, h.reshape(T * B, *h.shape[2:])).reshape(T, B, *layer.shape)
        if pop.spiking:
            out, h, st = pop.scan(drive, state[i])
            new = GammaState(st.buckets, inputs_last if i == 0 else None)
        else:
            out, h, new = drive, None, GammaState(None, inputs_last if i == 0 else None)
        outs.append(out)
        buckets.append(h)
        drives.append(drive.detach())
        state[i] = new
    return outs, buckets, drives, state


def _records(network: Network, x: torch.Tensor, spikes: list[torch.Tensor]) -> Records:
    """Spike counts and SynOps per sample, from the input and every population's spike train."""
    with torch.no_grad():
        presyn = [x] + spikes[:-1]
        synops = []
        for i, source in enumerate(presyn):
            counts = source.sum(0).flatten(1)  # [B, in_size] events sent by each presynaptic neuron
            synops.append(counts @ network.fan_out(i).to(counts))
        counts = [
            s.sum(0).flatten(1).sum(1) if layer.population.spiking else torch.zeros(s.shape[1]).to(s)
            for s, layer in zip(spikes, network.layers)
        ]
        return Records(x.sum(0).flatten(1).sum(1), counts, synops)
