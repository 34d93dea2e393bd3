"""Run an asyncsnn :class:`~asyncsnn.network.Network` under NeuroBench (``neurobench.benchmarks.Benchmark``).

:class:`AsyncSNNModel` is a ``neurobench.models.NeuroBenchModel`` (a plain class with the same methods when
neurobench is not installed, so the wrapper itself needs nothing extra):

- ``model(batch)`` takes NeuroBench's batch-first data ``[B, T, *input_shape]`` (``batch_first=False``:
  asyncsnn's time-first ``[T, B, ...]``), turns it time-first with :func:`asyncsnn.data.to_time_first`, runs
  an engine from rest and returns the predicted class per sample (:func:`asyncsnn.metrics.predict`: most
  output spikes, ``-1`` on a tie; arg-max of the mean membrane for an LI readout), which is what
  NeuroBench's ``ClassificationAccuracy`` compares with the targets.
- ``__net__()`` is the network itself, so the static metrics (``ParameterCount``, ``Footprint``,
  ``ConnectionSparsity``) read its real weights.
- ``connection_layers()`` gives one module per ``nn.Linear`` / ``nn.Conv2d`` synapse and
  ``activation_layers()`` one per spiking population (LIF), where NeuroBench's ``SynapticOperations`` and
  ``ActivationSparsity`` (and the other hook-based metrics) put their hooks.

Why not hook the network's own modules: the layer-synchronous engine runs a population as one fused scan
(``LIF.scan``, not ``LIF.__call__``, so a forward hook never fires), and the asynchronous engine calls the
synapse block on a zero frame to get its bias, which NeuroBench would count as operations. So the hooks go
on *probes*: an identity module per spiking population, and per synapse a module of the same type that
shares the synapse's weight and bias tensors (no copy). After the engine has run, the wrapper feeds them
what the real modules saw: each population's spike trains ``[T * B, *shape]``, and each synapse block
rerun (without gradient) on its presynaptic activity (the input for the first block, the previous
population's spikes for the others), through the probes.

Engines: both work with every NeuroBench metric. ``engine="sync"`` runs
:func:`asyncsnn.engines.sync.population_outputs` (the fused layer-synchronous computation).
``engine="async"`` runs :func:`asyncsnn.engines.async_.run` with ``async_config``; once NeuroBench has
registered hooks it runs with ``record_spikes=True`` and feeds the probes the spikes each population actually
emitted in each frame (:attr:`RunResult.spike_trains`, counts per neuron and frame). So, for the async engine:

- ``ActivationSparsity`` = 1 - (neuron-frames with a spike) / (neurons x frames x samples); with
  ``refractory=True`` (the default: at most one spike per neuron and frame) the numerator is the number of
  spikes emitted, ``records.spikes``.
- ``SynapticOperations`` reruns each block on its presynaptic activity of each frame (the input frame, the
  previous population's spike counts): the operations of delivering every event that was emitted. Where
  NeuroBench and the sync engine's SynOps agree (0/1 values, no zero weight, one Linear / Conv2d per block),
  its ``Effective_ACs`` equal the async engine's own SynOps (:attr:`AsyncSNNModel.last_result`, delivered
  events x fan-out) whenever the engine delivers every event it was given or emitted. They differ
  where the engine does not deliver what it was given or emitted: events dropped at a ``max_steps``
  limit or a ``stop_after_output`` stop, events carried over and still pending at the end, and the input
  frames of a sample that has stopped (``stop_after_output``) or that ``max_steps`` cut off
  (``input_mode="scheduled"``) are counted by NeuroBench, not by the engine. With ``refractory=False`` a
  neuron that fires k > 1 times in a frame is one nonzero value to NeuroBench (its block's operations then
  count as MACs, once per weight) and k events to the engine.

SpikingGamma networks are not supported (their synapses read bucket values, not spikes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from asyncsnn.data import to_time_first
from asyncsnn.engines import sync
from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.engines.records import RunResult
from asyncsnn.metrics import predict
from asyncsnn.network import Network, conv2d_like

ENGINES = ("sync", "async")


class _FallbackBase:
    """Stand-in for ``neurobench.models.NeuroBenchModel`` (no hooks can be registered without neurobench)."""

    def __init__(self) -> None:
        self.activation_modules: list[type] = []
        self.activation_hooks: list[Any] = []
        self.connection_hooks: list[Any] = []
        self.first_layer = None


try:
    from neurobench.models import NeuroBenchModel as _Base
except ImportError:  # neurobench (or its snntorch import) missing
    _Base = _FallbackBase  # type: ignore[misc,assignment]

NEUROBENCH_AVAILABLE = _Base is not _FallbackBase


class PopulationProbe(nn.Module):
    """Identity module standing for a spiking population: called with its spike trains after each run."""

    def __init__(self, index: int, shape: Sequence[int]) -> None:
        super().__init__()
        self.index = index
        self.shape = tuple(shape)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        return spikes

    def extra_repr(self) -> str:
        return f"population={self.index}, shape={self.shape}"


def _weight_sharing_probe(m: nn.Module) -> nn.Module:
    """A module of the same type and hyper-parameters as ``m`` holding ``m``'s own weight and bias tensors."""
    bias = m.bias is not None
    if isinstance(m, nn.Linear):
        probe: nn.Module = nn.Linear(m.in_features, m.out_features, bias=bias, device="meta")
    elif isinstance(m, nn.Conv2d):
        probe = conv2d_like(m, bias=bias, device="meta")
    else:  # pragma: no cover - the network only allows the two
        raise TypeError(f"no probe for {type(m).__name__}")
    probe.weight = m.weight
    probe.bias = m.bias
    return probe


class AsyncSNNModel(_Base):
    """NeuroBench model wrapping an asyncsnn :class:`Network` (see the module docstring).

    Args:
        network: a LIF / LI network (not SpikingGamma).
        engine: ``"sync"`` (layer-synchronous) or ``"async"`` (the asynchronous engine); both give every
            NeuroBench metric.
        async_config: :class:`AsyncConfig` for ``engine="async"`` (default ``AsyncConfig()``).
        batch_first: data arrive ``[B, T, ...]`` (NeuroBench's convention); False: ``[T, B, ...]``.
    """

    def __init__(
        self,
        network: Network,
        engine: str = "sync",
        async_config: AsyncConfig | None = None,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(network, Network):
            raise TypeError(f"network must be an asyncsnn Network, got {type(network).__name__}")
        if network.is_gamma:
            raise ValueError("SpikingGamma networks are not supported by the NeuroBench wrapper")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if async_config is not None and engine != "async":
            raise ValueError("async_config is only used with engine='async'")
        self.net = network
        self.net.eval()
        self.engine = engine
        self.async_config = async_config
        self.batch_first = bool(batch_first)
        self.readout = "membrane" if network.readout_is_membrane else "spikes"
        self._probes = [
            PopulationProbe(layer.index, layer.shape) for layer in network.layers if layer.population.spiking
        ]
        self._synapse_probes: dict[int, nn.Module] = {
            id(m): _weight_sharing_probe(m)
            for layer in network.layers
            for m in layer.synapse
            if isinstance(m, (nn.Linear, nn.Conv2d))
        }
        #: time-first output ``[T, B, n_out]`` of the last call
        self.last_output: torch.Tensor | None = None
        #: every population's output ``[T, B, *shape]`` of the last call (``engine="sync"``; with
        #: ``engine="async"`` its spike trains, recorded only while NeuroBench hooks are registered)
        self.last_populations: list[torch.Tensor] | None = None
        #: the asynchronous engine's :class:`RunResult` of the last call (``engine="async"`` only)
        self.last_result: RunResult | None = None

    # ----- NeuroBenchModel interface ---------------------------------------------------------------------
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Predicted class per sample ``[B]`` (``-1``: undecided) for ``batch`` ``[B, T, *input_shape]``."""
        x = to_time_first(batch) if self.batch_first else batch
        with torch.no_grad():
            if self.engine == "sync":
                populations, _, _ = sync.population_outputs(self.net, x)
                self.last_populations = populations
                self.last_output = populations[-1].reshape(x.shape[0], x.shape[1], -1)
                if self._hooked():
                    self._feed_probes(x, populations)
            else:
                from asyncsnn.engines import async_

                hooked = self._hooked()  # the probes need the per-frame spike trains
                self.last_result = async_.run(self.net, x, self.async_config, record_spikes=hooked)
                self.last_output = self.last_result.output
                self.last_populations = self.last_result.spike_trains
                if hooked:
                    self._feed_probes(x, self.last_populations)
        return predict(self.last_output, self.readout)

    def __net__(self) -> Network:
        """The wrapped network (read by NeuroBench's static metrics)."""
        return self.net

    def activation_layers(self) -> list[dict[str, Any]]:
        """One ``{"layer_name", "layer"}`` per spiking population (its probe), as NeuroBench lists them."""
        return [{"layer_name": f"population{p.index}", "layer": p} for p in self._probes]

    def connection_layers(self) -> list[nn.Module]:
        """One weight-sharing probe per ``nn.Linear`` / ``nn.Conv2d`` synapse, in network order."""
        return list(self._synapse_probes.values())

    def reset(self) -> None:
        """Nothing to reset: every call starts from rest (no state is carried between batches)."""

    # ----- internals ----------------------------------------------------------------------------------
    def _hooked(self) -> bool:
        return bool(getattr(self, "activation_hooks", None) or getattr(self, "connection_hooks", None))

    def _feed_probes(self, x: torch.Tensor, populations: list[torch.Tensor]) -> None:
        """Call the probes with what the engine's real modules saw (hooks fire; results are discarded)."""
        T, B = x.shape[:2]
        spiking = iter(self._probes)
        for layer, out in zip(self.net.layers, populations):
            if layer.population.spiking:
                next(spiking)(out.reshape(T * B, *layer.shape))
        presynaptic = [x, *populations[:-1]]
        for layer, source in zip(self.net.layers, presynaptic):
            h = source.reshape(T * B, *layer.in_shape)
            for m in layer.synapse:
                h = self._synapse_probes.get(id(m), m)(h)


def neurobench_metrics(
    network: Network,
    dataloader: Iterable,
    workload_metrics: Sequence[type] | None = None,
    static_metrics: Sequence[type] | None = None,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Run NeuroBench's ``Benchmark`` on ``network`` over ``dataloader`` (batch-first ``(data, targets)``).

    Defaults: ``ClassificationAccuracy``, ``SynapticOperations``, ``ActivationSparsity`` and
    ``ParameterCount``; ``model_kwargs`` go to :class:`AsyncSNNModel`. Needs neurobench.
    """
    if not NEUROBENCH_AVAILABLE:
        raise ImportError(
            "neurobench_metrics needs neurobench (pip install --no-deps neurobench; see README)"
        )
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, SynapticOperations

    if workload_metrics is None:
        workload_metrics = [ClassificationAccuracy, SynapticOperations, ActivationSparsity]
    if static_metrics is None:
        static_metrics = [ParameterCount]
    model = AsyncSNNModel(network, **model_kwargs)
    benchmark = Benchmark(model, dataloader, [], [], [list(static_metrics), list(workload_metrics)])
    try:
        return benchmark.run(quiet=True)
    finally:
        model.cleanup_hooks()
