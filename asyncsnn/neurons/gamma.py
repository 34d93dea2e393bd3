"""SpikingGamma populations: gamma-memory ("bucket") neurons with sigma-delta spike coding (DESIGN section 7).

Units: ``dt`` and ``tau`` in milliseconds. Every neuron ``i`` keeps ``K`` buckets, the gamma memory of its
own output::

    a_k       = exp(-dt / tau_k)
    g_0(t)    = a_0 * g_0(t-1) + 2 * theta(t) * s(t)            # bucket 0: decoded estimate of the signal
    g_k(t)    = a_k * g_k(t-1) + (1 - a_k) * g_(k-1)(t-1)        # k >= 1: smoothed, delayed copies

so bucket ``k`` holds the signal delayed by about ``tau_0 + ... + tau_k`` ms whatever ``dt`` is. A neuron
``j`` of the next layer reads every bucket of its presynaptic neurons through the synapse weights ``w`` and
its own bucket weights ``v``::

    x_j(t) = sum_i w_ij * sum_k v_j^k * g_k,i(t) + b_j          # per-neuron bucket weights (default)
    x_j(t) = sum_k sum_i w_ij * v_ij^k * g_k,i(t) + b_j         # per-synapse bucket weights (dense only)
    y_j(t) = ReLU(x_j(t))
    s_j(t) = 1  if  y_j(t) - a_0 * g_0,j(t-1) > theta_j(t)  else 0

The spike is binary; its value ``2 * theta`` is known to the receiver. With ``adapt > 0`` the threshold
follows the signal, ``theta(t) = theta + adapt * a_0 * g_0(t-1)``, so precision is relative, not absolute.
Input spikes (the dataset's) feed bucket 0 of the input memory directly, with value 1 per spike; the input
memory uses the time constants of the first population.

Gradient: the encoder/decoder pair is the identity, ``dg_0(t)/dy(t) = 1`` and nothing else flows through
``g_0`` (straight-through), so the ReLU is the only nonlinearity and no surrogate is used anywhere. Every
other bucket is a linear recursion and is differentiated exactly (also in ``tau`` when it is trainable).

Firing regime: a neuron whose decoded signal is ``y`` fires about ``y / (2 * theta * tau_0)`` times per ms;
the code does not depend on ``dt`` while that is well below one spike per step (``2 * theta * tau_0 > y * dt``
by a good margin). Outside it, a neuron saturates at one spike per step and ``g_0`` lags ``y``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from asyncsnn.neurons.lif import _positive_buffer
from asyncsnn.neurons.scan import linear_scan


class GammaState(NamedTuple):
    """Buckets after the last step, ``[B, K, *shape]`` (None for a readout); ``inputs`` is the input memory
    (first population only)."""

    buckets: torch.Tensor | None
    inputs: torch.Tensor | None = None


def gamma_memory(g0: torch.Tensor, decay: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """All buckets ``[T, B, K, ...]`` from bucket 0's sequence ``g0`` ``[T, B, ...]``.

    ``decay`` ``[K]`` holds ``a_k``; ``previous`` ``[B, K, ...]`` is the buckets before the first step.
    Bucket ``k >= 1`` integrates bucket ``k - 1`` of the previous step:
    ``g_k(t) = a_k g_k(t-1) + (1 - a_k) g_(k-1)(t-1)``.
    """
    extra = g0.dim() - 2  # population dims
    buckets = [g0]
    for k in range(1, decay.shape[0]):
        a = decay[k].reshape((1,) * (1 + extra)) if extra else decay[k]
        lower = torch.cat([previous[None, :, k - 1], buckets[k - 1][:-1]])  # g_(k-1)(t-1)
        buckets.append(linear_scan((1 - a) * lower, a, previous[:, k]))
    return torch.stack(buckets, 2)


def sigma_delta(
    y: torch.Tensor, previous_g0: torch.Tensor, a0: torch.Tensor, threshold: torch.Tensor, adapt: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigma-delta encode ``y`` ``[T, B, ...]``: ``(spikes, g0)`` with ``g0`` the decoded estimate.

    Forward: the exact spike code. Backward: ``dg0/dy = 1`` (the identity rule), no other path.
    """
    with torch.no_grad():
        spikes = torch.empty_like(y)
        g0 = torch.empty_like(y)
        prev = previous_g0.detach()
        target = y.detach()
        for t in range(y.shape[0]):
            predicted = a0 * prev
            theta = threshold + adapt * predicted if adapt else threshold
            s = (target[t] - predicted > theta).to(y.dtype)
            prev = predicted + 2 * theta * s
            spikes[t] = s
            g0[t] = prev
    return spikes, y + (g0 - y).detach()


class _GammaPopulation(nn.Module):
    """Bucket weights, bias and time constants shared by :class:`SpikingGamma` and :class:`GammaReadout`."""

    spiking: bool = True
    bucketed = True  # the synapses before it read the presynaptic buckets

    def __init__(
        self,
        tau: Sequence[float],
        *,
        per_synapse: bool,
        trainable_tau: bool,
        dt: float,
    ) -> None:
        super().__init__()
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of milliseconds, got {dt!r}")
        tau_t = _positive_buffer("tau", list(tau) if not isinstance(tau, torch.Tensor) else tau)
        if tau_t.dim() != 1 or tau_t.numel() < 1:
            raise ValueError(
                f"tau must be a non-empty sequence of K bucket time constants in ms, got {tau!r}"
            )
        self.dt = float(dt)
        self.per_synapse = bool(per_synapse)
        self.trainable_tau = bool(trainable_tau)
        if self.trainable_tau:
            self.log_tau = nn.Parameter(tau_t.log())
        else:
            self.register_buffer("log_tau", tau_t.log())
        self.bucket_weight: nn.Parameter | None = None  # shaped once the population's shape is known
        self.bias: nn.Parameter | None = None

    @property
    def buckets(self) -> int:
        """Number of buckets ``K``."""
        return self.log_tau.shape[0]

    @property
    def tau(self) -> torch.Tensor:
        """Bucket time constants ``[K]`` in ms."""
        return self.log_tau.exp()

    @property
    def decay(self) -> torch.Tensor:
        """Per-step bucket factors ``a_k = exp(-dt / tau_k)``, ``[K]``."""
        return torch.exp(-self.dt / self.tau)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Create the bucket weights and bias for a population of ``shape`` (called by the network)."""
        if self.bucket_weight is not None:
            return
        K = self.buckets
        device = self.log_tau.device
        # Start on the most recent bucket: a neuron first passes its input through, then learns delays.
        v = torch.zeros(K, *shape, device=device)
        v[0] = 1.0
        self.bucket_weight = nn.Parameter(v)
        self.bias = nn.Parameter(torch.zeros(shape, device=device))

    def check_synapse(
        self, synapse: nn.Sequential, in_shape: tuple[int, ...], shape: tuple[int, ...]
    ) -> None:
        """Raise if the synapse block cannot drive this population; shape per-synapse bucket weights."""
        for m in synapse:
            if getattr(m, "bias", None) is not None:
                raise ValueError(
                    f"{type(self).__name__} takes its bias from the population; build the synapse "
                    f"{type(m).__name__} with bias=False"
                )
        if self.per_synapse:
            linear = [m for m in synapse if isinstance(m, nn.Linear)]
            rest = [m for m in synapse if not isinstance(m, (nn.Linear, nn.Flatten, nn.Identity))]
            if len(linear) != 1 or rest or not isinstance(synapse[-1], nn.Linear):
                raise ValueError(
                    "per-synapse bucket weights need a dense synapse block (optionally nn.Flatten, then one "
                    "nn.Linear); use per_synapse=False for convolutions"
                )
            w = linear[0].weight
            if self.bucket_weight is None or self.bucket_weight.shape[1:] != w.shape:
                v = torch.zeros(self.buckets, *w.shape, device=w.device)
                v[0] = 1.0
                self.bucket_weight = nn.Parameter(v)

    def drive(self, synapse: nn.Sequential, presyn: torch.Tensor) -> torch.Tensor:
        """Net input ``x`` ``[N, *shape]`` (before the ReLU) from the buckets ``[N, K, *in_shape]``."""
        n, K = presyn.shape[:2]
        if self.per_synapse:
            flat = presyn.reshape(n, K, -1)
            weight = synapse[-1].weight * self.bucket_weight  # [K, out, in]
            x = torch.einsum("nki,koi->no", flat, weight)
        else:
            current = synapse(presyn.reshape(n * K, *presyn.shape[2:]))
            current = current.reshape(n, K, *current.shape[1:])
            x = (current * self.bucket_weight).sum(1)
        return x + self.bias

    def input_memory(self, spikes: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """Buckets ``[T, B, K, ...]`` of the input spikes ``[T, B, ...]`` (each spike adds 1 to bucket 0)."""
        decay = self.decay
        if previous is None:
            previous = spikes.new_zeros(spikes.shape[1], self.buckets, *spikes.shape[2:])
        g0 = linear_scan(spikes, decay[0], previous[:, 0])
        return gamma_memory(g0, decay, previous)

    def initial_buckets(self, like: torch.Tensor) -> torch.Tensor:
        """Zero buckets ``[B, K, *shape]`` for a net input ``like`` ``[T, B, *shape]``."""
        return like.new_zeros(like.shape[1], self.buckets, *like.shape[2:])

    def _repr_common(self) -> str:
        taus = ", ".join(f"{t:g}" for t in self.tau.tolist())
        weights = "per-synapse" if self.per_synapse else "per-neuron"
        trainable = ", trainable tau" if self.trainable_tau else ""
        return f"tau=({taus})ms, {weights} bucket weights{trainable}, dt={self.dt:g}ms"


class SpikingGamma(_GammaPopulation):
    """A population of SpikingGamma neurons (see module docstring).

    Args:
        tau: the ``K`` bucket time constants in ms, e.g. ``(5, 5, 10, 20)``.
        threshold: sigma-delta threshold ``theta`` (scalar or per-neuron); each spike is worth ``2 * theta``.
        adapt: adaptive-threshold strength (0 = fixed threshold).
        per_synapse: bucket weights per synapse ``v_ij^k`` instead of per neuron ``v_j^k`` (dense only).
        trainable_tau: learn the bucket time constants too.
        dt: step length in ms.

    Example::

        >>> net = Network(nn.Linear(2, 16, bias=False), SpikingGamma(tau=(5, 10, 20)),
        ...               nn.Linear(16, 3, bias=False), GammaReadout(tau=(5, 10, 20)), input_shape=(2,))
    """

    def __init__(
        self,
        tau: Sequence[float] = (5.0, 5.0, 10.0, 20.0),
        threshold: float | torch.Tensor = 0.05,
        *,
        adapt: float = 0.0,
        per_synapse: bool = False,
        trainable_tau: bool = False,
        dt: float = 1.0,
    ) -> None:
        super().__init__(tau, per_synapse=per_synapse, trainable_tau=trainable_tau, dt=dt)
        self.register_buffer("threshold", _positive_buffer("threshold", threshold))
        if not (math.isfinite(adapt) and adapt >= 0):
            raise ValueError(f"adapt must be a finite number >= 0, got {adapt!r}")
        self.adapt = float(adapt)

    def scan(
        self, x: torch.Tensor, state: GammaState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, GammaState]:
        """From net inputs ``x`` ``[T, B, *shape]``: ``(spikes, buckets [T, B, K, *shape], state)``."""
        previous = state.buckets if state is not None else self.initial_buckets(x)
        decay = self.decay
        y = torch.relu(x)
        spikes, g0 = sigma_delta(y, previous[:, 0], decay[0].detach(), self.threshold, self.adapt)
        buckets = gamma_memory(g0, decay, previous)
        return spikes, buckets, GammaState(buckets[-1], state.inputs if state is not None else None)

    def extra_repr(self) -> str:
        thr = f"{self.threshold.item():g}" if self.threshold.dim() == 0 else "per-neuron"
        adapt = f", adapt={self.adapt:g}" if self.adapt else ""
        return f"threshold={thr}{adapt}, {self._repr_common()}"


class GammaReadout(_GammaPopulation):
    """Non-spiking linear readout of the last layer's buckets: ``out_j(t) = x_j(t)`` (no ReLU, no spikes).

    For classification (cross-entropy on ``out``) and regression. ``tau`` sets the input memory when the
    readout is the first population; otherwise only its length ``K`` must match the previous population.
    """

    spiking = False

    def __init__(
        self,
        tau: Sequence[float] = (5.0, 5.0, 10.0, 20.0),
        *,
        per_synapse: bool = False,
        dt: float = 1.0,
    ) -> None:
        super().__init__(tau, per_synapse=per_synapse, trainable_tau=False, dt=dt)

    def extra_repr(self) -> str:
        return self._repr_common()
