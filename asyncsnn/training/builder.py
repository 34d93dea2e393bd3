"""Build a :class:`~asyncsnn.network.Network` from a compact architecture string."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from torch import nn

from asyncsnn.errors import ConfigError
from asyncsnn.network import Network
from asyncsnn.neurons import LI, LIF, GammaReadout, SpikingGamma

_DENSE = re.compile(r"^(\d+)$")
_CONV = re.compile(r"^(\d+)c(\d+)$")
_POOL = re.compile(r"^ap(\d+)$")


def parse_architecture(spec: str) -> list[tuple[str, int, int]]:
    """Parse ``"12c5-ap2-256"`` into ``[("conv", 12, 5), ("pool", 2, 0), ("dense", 256, 0)]``."""
    if not isinstance(spec, str):
        raise ConfigError(f"architecture: must be a string like '256' or '12c5-ap2-32c5-ap2', got {spec!r}")
    tokens = []
    seen_dense = False
    for token in filter(None, spec.strip().lower().split("-")):
        if m := _DENSE.match(token):
            tokens.append(("dense", int(m[1]), 0))
            seen_dense = True
        elif m := _CONV.match(token):
            if seen_dense:
                raise ConfigError(f"architecture: convolution {token!r} after a dense layer is not supported")
            tokens.append(("conv", int(m[1]), int(m[2])))
        elif m := _POOL.match(token):
            if seen_dense:
                raise ConfigError(f"architecture: pooling {token!r} after a dense layer is not supported")
            tokens.append(("pool", int(m[1]), 0))
        else:
            raise ConfigError(
                f"architecture: cannot read {token!r} in {spec!r}; use N (dense layer of N neurons), "
                "NcK (conv, N channels, KxK kernel) or apK (KxK average pooling), joined by '-'"
            )
        if tokens[-1][1] < 1:
            raise ConfigError(f"architecture: sizes must be positive, got {token!r}")
    return tokens


def build_network(
    architecture: str,
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    tau: float = 10.0,
    threshold: float = 1.0,
    reset: str = "zero",
    surrogate: str = "atan",
    dt: float = 1.0,
    readout: str = "spikes",
    bias: bool = True,
) -> Network:
    """A feed-forward LIF network for ``input_shape`` frames with ``n_outputs`` output neurons.

    ``readout="spikes"`` ends in a LIF population (classify by spike count); ``"membrane"`` ends in a
    non-spiking LI population (classify by membrane). ``bias=False`` builds bias-free synapses (the
    asynchronous engine treats a bias as a constant current added at the start of every frame).
    """

    def lif() -> LIF:
        return LIF(tau=tau, threshold=threshold, reset=reset, surrogate=surrogate, dt=dt)

    last = LI(tau=tau, dt=dt) if readout == "membrane" else lif()
    return _assemble(architecture, input_shape, n_outputs, lambda dense: lif(), last, bias)


def build_gamma_network(
    architecture: str,
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    tau: Sequence[float] = (5.0, 5.0, 10.0, 20.0),
    threshold: float = 0.05,
    adapt: float = 0.0,
    per_synapse: bool = False,
    trainable_tau: bool = False,
    dt: float = 1.0,
) -> Network:
    """A SpikingGamma network for ``input_shape`` inputs ending in a :class:`GammaReadout` of ``n_outputs``.

    Same architecture strings as :func:`build_network`; synapses are bias-free (the populations hold the
    bias); per-synapse bucket weights apply to dense layers only (convolutions keep per-neuron weights).
    """

    def hidden(dense: bool) -> SpikingGamma:
        return SpikingGamma(
            tau, threshold, adapt=adapt, per_synapse=per_synapse and dense, trainable_tau=trainable_tau, dt=dt
        )

    readout = GammaReadout(tau, per_synapse=per_synapse, dt=dt)
    return _assemble(architecture, input_shape, n_outputs, hidden, readout, bias=False)


def _assemble(
    architecture: str,
    input_shape: Sequence[int],
    n_outputs: int,
    hidden: Callable[[bool], nn.Module],
    readout: nn.Module,
    bias: bool,
) -> Network:
    """Walk the architecture string: ``hidden(dense)`` makes each hidden population, ``readout`` ends it."""
    modules: list[nn.Module] = []
    channels = input_shape[0] if len(input_shape) == 3 else None
    flat = len(input_shape) == 1
    size = 1
    for d in input_shape:
        size *= d
    pending: list[nn.Module] = []
    for kind, n, k in parse_architecture(architecture):
        if kind == "conv":
            if channels is None or flat:
                raise ConfigError("architecture: convolutions need image input [C, H, W]")
            modules += pending + [nn.Conv2d(channels, n, k, bias=bias), hidden(False)]
            channels, pending = n, []
        elif kind == "pool":
            pending.append(nn.AvgPool2d(n))
        else:
            if not flat:
                pending.append(nn.Flatten())
                size = _flat_size(modules + pending, input_shape)
                flat = True
            modules += pending + [nn.Linear(size, n, bias=bias), hidden(True)]
            size, pending = n, []
    if not flat:
        pending.append(nn.Flatten())
        size = _flat_size(modules + pending, input_shape)
    modules += pending + [nn.Linear(size, n_outputs, bias=bias), readout]
    return Network(*modules, input_shape=input_shape)


def _flat_size(modules: list[nn.Module], input_shape: Sequence[int]) -> int:
    import torch

    x = torch.zeros(1, *input_shape)
    try:
        with torch.no_grad():
            for m in modules:
                x = m(x)
                x = x[0] if isinstance(x, tuple) else x
    except RuntimeError:
        x = torch.zeros(1, 0)
    if x.numel() == 0:
        raise ConfigError(f"architecture: the layers shrink the {tuple(input_shape)} input to nothing")
    return x[0].numel()
