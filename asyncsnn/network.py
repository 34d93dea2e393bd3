"""The network description shared by every engine.

A network is written like an ``nn.Sequential``: synapse modules (``nn.Linear``, ``nn.Conv2d``,
``nn.AvgPool2d``, ``nn.Flatten``, ...) followed by a neuron population, repeated. Each run of synapses
ending in a population is a :class:`Layer`. The description knows every population's shape and every
synapse block's fan-out, so the layer-synchronous and the asynchronous engines run the very same object
and weights.

Example::

    >>> net = Network(nn.Flatten(), nn.Linear(784, 256), LIF(), nn.Linear(256, 10), LIF(),
    ...               input_shape=(1, 28, 28))
    >>> net.population_shapes
    [(256,), (10,)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from asyncsnn.neurons.gamma import GammaReadout, SpikingGamma
from asyncsnn.neurons.lif import LI, LIF, LIFState

#: Stateless modules allowed between populations. All are linear maps of their input (plus a bias).
SYNAPSE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv2d,
    nn.AvgPool2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
)
POPULATION_TYPES: tuple[type[nn.Module], ...] = (LIF, LI, SpikingGamma, GammaReadout)


@dataclass(frozen=True)
class Layer:
    """A synapse block and the population it drives.

    ``in_shape`` is the shape of one frame arriving at the synapses (the input or the previous population),
    ``shape`` the population's shape (both without the batch dimension).
    """

    index: int
    synapse: nn.Sequential
    population: nn.Module
    in_shape: tuple[int, ...]
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of neurons in the population."""
        return int(torch.Size(self.shape).numel())

    @property
    def in_size(self) -> int:
        """Number of presynaptic neurons (or input channels) of the synapse block."""
        return int(torch.Size(self.in_shape).numel())


class Network(nn.Module):
    """A feed-forward SNN: synapse modules and neuron populations in order.

    Args:
        *modules: synapse modules (:data:`SYNAPSE_TYPES`) and populations (:data:`POPULATION_TYPES`);
            must end with a population, and every population must be preceded by at least one synapse.
        input_shape: shape of one input frame without batch, e.g. ``(2, 34, 34)``.
    """

    def __init__(self, *modules: nn.Module, input_shape: Sequence[int]) -> None:
        super().__init__()
        if not modules:
            raise ValueError("Network needs at least one synapse module and one population")
        input_shape = tuple(int(d) for d in input_shape)
        if not input_shape or any(d <= 0 for d in input_shape):
            raise ValueError(f"input_shape must be a non-empty tuple of positive sizes, got {input_shape}")
        self.input_shape = input_shape
        self.body = nn.ModuleList(modules)
        self._layers: list[Layer] = []
        pending: list[nn.Module] = []
        shape = input_shape
        for position, m in enumerate(modules):
            if isinstance(m, POPULATION_TYPES):
                if not pending:
                    raise ValueError(
                        f"module {position} ({type(m).__name__}) is a population with no synapse before it; "
                        "put an nn.Linear / nn.Conv2d (or nn.Identity) in front of it"
                    )
                if self._layers and not self._layers[-1].population.spiking:
                    raise ValueError(
                        "a non-spiking readout (LI, GammaReadout) can only be the last population"
                    )
                synapse = nn.Sequential(*pending)
                out_shape = _infer_shape(synapse, shape, position)
                m.check_shape(out_shape)
                if getattr(m, "bucketed", False):
                    m.check_synapse(synapse, shape, out_shape)
                self._layers.append(Layer(len(self._layers), synapse, m, shape, out_shape))
                shape, pending = out_shape, []
            elif isinstance(m, SYNAPSE_TYPES):
                pending.append(m)
            else:
                allowed = ", ".join(t.__name__ for t in SYNAPSE_TYPES + POPULATION_TYPES)
                raise ValueError(
                    f"module {position} ({type(m).__name__}) is not supported; allowed: {allowed}"
                )
        if pending:
            raise ValueError(
                "the network must end with a population (e.g. LIF, LI or GammaReadout), not with synapses"
            )
        dts = {layer.population.dt for layer in self._layers}
        if len(dts) != 1:
            raise ValueError(f"all populations must share one dt, got {sorted(dts)} ms")
        self.dt = dts.pop()
        self._check_gamma()

    def _check_gamma(self) -> None:
        bucketed = [getattr(layer.population, "bucketed", False) for layer in self._layers]
        if any(bucketed) and not all(bucketed):
            raise ValueError(
                "SpikingGamma / GammaReadout populations cannot be mixed with LIF / LI populations "
                "in one network"
            )
        if all(bucketed):
            counts = {layer.population.buckets for layer in self._layers}
            if len(counts) != 1:
                raise ValueError(
                    "every gamma population must have the same number of buckets K (len(tau)), "
                    f"got {sorted(counts)}"
                )

    @property
    def is_gamma(self) -> bool:
        """True for a network of SpikingGamma populations (run by the time-stepped engine only)."""
        return getattr(self._layers[0].population, "bucketed", False)

    def set_dt(self, dt: float) -> None:
        """Change the step length of every population to ``dt`` ms (parameters are in physical time)."""
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of milliseconds, got {dt!r}")
        for layer in self._layers:
            layer.population.dt = float(dt)
        self.dt = float(dt)

    # ----- description ---------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The layers in order (synapse block + population)."""
        return list(self._layers)

    @property
    def population_shapes(self) -> list[tuple[int, ...]]:
        return [layer.shape for layer in self._layers]

    @property
    def population_sizes(self) -> list[int]:
        return [layer.size for layer in self._layers]

    @property
    def output_size(self) -> int:
        return self._layers[-1].size

    @property
    def readout_is_membrane(self) -> bool:
        """True when the last population is a non-spiking LI readout."""
        return not self._layers[-1].population.spiking

    def fan_out(self, layer: int) -> torch.Tensor:
        """Per-presynaptic-neuron fan-out of the synapse block of ``layer``: int64 ``[in_size]``.

        The fan-out of a presynaptic neuron is the number of postsynaptic neurons its events reach
        (structural connections: a zero weight still counts, as hardware would still deliver to it).
        """
        ptr, _ = self.connectivity(layer)
        return ptr[1:] - ptr[:-1]

    def connectivity(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Structural fan-out lists of the synapse block of ``layer``: ``(ptr [in_size + 1], targets)``.

        Presynaptic neuron ``i`` is connected to the population's neurons ``targets[ptr[i]:ptr[i+1]]``
        (flat indices, ascending): those whose input depends on ``i`` for some weights, however many
        paths lead there. Computed once (the wiring never changes).
        """
        return self._connectivity[layer]

    @cached_property
    def _connectivity(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [_structural_connectivity(layer) for layer in self._layers]

    # ----- one frame (the stateful-module API) ------------------------------------------------------
    def forward(
        self, x: torch.Tensor, state: list[LIFState | None] | None = None
    ) -> tuple[torch.Tensor, list[LIFState]]:
        """One frame through all layers: ``x`` ``[B, *input_shape]`` -> ``(output [B, n_out], state)``."""
        if self.is_gamma:
            from asyncsnn.engines.sync import gamma_outputs

            spikes, _, _, new_state = gamma_outputs(self, x[None], state)
            return spikes[-1][0].flatten(1), new_state
        state = state if state is not None else [None] * len(self._layers)
        new_state = []
        h = x
        for layer, st in zip(self._layers, state):
            h, st = layer.population(layer.synapse(h), st)
            new_state.append(st)
        return h.flatten(1), new_state

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, populations={self.population_shapes}, dt={self.dt:g}ms"


def apply_synapse(synapse: nn.Sequential, x: torch.Tensor, *, bias: bool = True) -> torch.Tensor:
    """Run a synapse block on ``x`` ``[B, *in_shape]``; ``bias=False`` leaves out every bias term.

    The asynchronous engine delivers events without bias (the bias is a constant current per frame)."""
    if bias:
        return synapse(x)
    for m in synapse:
        if isinstance(m, nn.Linear):
            x = torch.nn.functional.linear(x, m.weight)
        elif isinstance(m, nn.Conv2d):
            x = m._conv_forward(x, m.weight, None)
        else:
            x = m(x)
    return x


def _infer_shape(synapse: nn.Sequential, in_shape: tuple[int, ...], position: int) -> tuple[int, ...]:
    try:
        with torch.no_grad():
            p = next(synapse.parameters(), None)
            probe = torch.zeros(1, *in_shape, device=p.device if p is not None else "cpu")
            return tuple(synapse(probe).shape[1:])
    except RuntimeError as err:
        raise ValueError(
            f"the synapses before module {position} do not accept frames of shape {in_shape}: {err}"
        ) from None


def _structural_connectivity(layer: Layer, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Probe the synapse block with one-hot inputs through a copy whose weights are all one (no bias)."""
    modules = list(layer.synapse)
    linear = [m for m in modules if isinstance(m, nn.Linear)]
    reshapes = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Linear)
    if len(linear) == 1 and all(isinstance(m, reshapes) for m in modules):
        n_in, n_out = layer.in_size, layer.size  # dense: everyone reaches every output
        return torch.arange(n_in + 1) * n_out, torch.arange(n_out).repeat(n_in)
    structural = nn.Sequential(*[_ones_like_module(m) for m in modules])
    ptr, targets, total = [torch.zeros(1, dtype=torch.int64)], [], 0
    with torch.no_grad():
        for start in range(0, layer.in_size, chunk):
            stop = min(start + chunk, layer.in_size)
            basis = torch.zeros(stop - start, layer.in_size)
            basis[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
            mask = structural(basis.reshape(-1, *layer.in_shape)).flatten(1) != 0
            counts = mask.sum(1)
            ptr.append(total + counts.cumsum(0))
            total += int(counts.sum())
            targets.append(mask.nonzero(as_tuple=True)[1])
    return torch.cat(ptr), torch.cat(targets)


def _ones_like_module(m: nn.Module) -> nn.Module:
    """A copy of a synapse with every weight set to one and no bias: its nonzero pattern is the wiring."""
    if isinstance(m, nn.Linear):
        out = nn.Linear(m.in_features, m.out_features, bias=False)
        nn.init.ones_(out.weight)
        return out
    if isinstance(m, nn.Conv2d):
        out = conv2d_like(m, bias=False)
        nn.init.ones_(out.weight)
        return out
    return m


def conv2d_like(m: nn.Conv2d, *, bias: bool, device: torch.device | str | None = None) -> nn.Conv2d:
    """A new ``nn.Conv2d`` with ``m``'s hyper-parameters (fresh weights; a bias only if ``bias``)."""
    return nn.Conv2d(
        m.in_channels,
        m.out_channels,
        m.kernel_size,
        m.stride,
        m.padding,
        m.dilation,
        m.groups,
        bias=bias,
        padding_mode=m.padding_mode,
        device=device,
    )
