"""Leaky integrate-and-fire (LIF) and leaky-integrator (LI) populations.

Units: ``dt`` and ``tau`` in milliseconds. Per frame (DESIGN section 3)::

    beta = exp(-dt / tau)
    u    = beta * v + I              # leak once at the start of the frame, then integrate the current
    s    = H(u - threshold)          # strict: fires only when u > threshold
    v    = u * (1 - s)               # reset="zero"
    v    = u - threshold * s         # reset="subtract"

``H`` has a surrogate derivative in the backward pass (:mod:`asyncsnn.neurons.surrogate`). With
``detach_reset=True`` (default, as in snnTorch) the reset is treated as a constant in the backward pass.

The physics lives in the pure functions :func:`lif_step` (one frame) and :func:`lif_scan` (a whole sequence,
fused: same result, no per-frame autograd graph). The modules only hold parameters.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from asyncsnn.neurons.scan import linear_scan
from asyncsnn.neurons.surrogate import Surrogate, as_surrogate

RESETS = ("zero", "subtract")


class LIFParameters(NamedTuple):
    """Parameters of a LIF population; ``tau`` and ``threshold`` are scalars or per-neuron tensors."""

    beta: torch.Tensor
    threshold: torch.Tensor
    reset: str = "zero"
    surrogate: Surrogate = Surrogate()
    detach_reset: bool = True


class LIFState(NamedTuple):
    """Membrane potential after the last frame (post-reset), shape ``[B, *population_shape]``."""

    v: torch.Tensor


def lif_step(
    current: torch.Tensor, state: LIFState | None, p: LIFParameters
) -> tuple[torch.Tensor, LIFState, torch.Tensor]:
    """One frame of LIF dynamics: returns ``(spikes, new_state, u)`` where ``u`` is the pre-reset membrane."""
    v = torch.zeros_like(current) if state is None else state.v
    u = p.beta * v + current
    s = p.surrogate.spike(u - p.threshold)
    r = s.detach() if p.detach_reset else s
    v_new = u * (1 - r) if p.reset == "zero" else u - p.threshold * r
    return s, LIFState(v_new), u


class _LIFScan(torch.autograd.Function):
    """Fused LIF over ``T`` frames. Gradients w.r.t. the currents and the initial membrane only."""

    @staticmethod
    def forward(ctx, currents, v0, p: LIFParameters):  # type: ignore[override]
        spikes = torch.empty_like(currents)
        us = torch.empty_like(currents)
        v = v0
        zero_reset = p.reset == "zero"
        for t in range(currents.shape[0]):
            u = torch.addcmul(currents[t], p.beta, v)
            s = (u > p.threshold).to(u.dtype)
            v = u * (1 - s) if zero_reset else u - p.threshold * s
            us[t] = u
            spikes[t] = s
        ctx.save_for_backward(us, spikes)
        ctx.p = p
        ctx.v0_shape = v0.shape
        ctx.mark_non_differentiable(us)
        return spikes, v, us

    @staticmethod
    def backward(ctx, g_spikes, g_v, _g_us):  # type: ignore[override]
        us, spikes = ctx.saved_tensors
        p: LIFParameters = ctx.p
        # Everything that does not depend on the reverse-time recursion is computed for all frames at once.
        sg = p.surrogate.derivative(us - p.threshold)
        direct = torch.zeros_like(us) if g_spikes is None else g_spikes * sg
        if p.reset == "zero":
            dv_du = 1 - spikes if p.detach_reset else 1 - spikes - us * sg
        else:
            dv_du = torch.ones_like(us) if p.detach_reset else 1 - p.threshold * sg
        g_currents = torch.empty_like(us)
        gv = torch.zeros_like(us[0]) if g_v is None else g_v
        for t in range(us.shape[0] - 1, -1, -1):
            gu = torch.addcmul(direct[t], gv, dv_du[t])
            g_currents[t] = gu
            gv = p.beta * gu
        g_v0 = gv.expand(ctx.v0_shape) if gv.shape != ctx.v0_shape else gv
        return g_currents, g_v0, None


def lif_scan(
    currents: torch.Tensor, state: LIFState | None, p: LIFParameters
) -> tuple[torch.Tensor, LIFState, torch.Tensor]:
    """Run :func:`lif_step` over ``currents`` ``[T, B, ...]`` in one fused autograd node.

    Returns ``(spikes [T, B, ...], final_state, u [T, B, ...])``; ``u`` (the pre-reset membrane)
    carries no gradient.
    Gives the spikes and gradients of looping :func:`lif_step` (tested equal); the membrane update is one
    fused multiply-add, so it may differ from the loop in the last bit of ``u``.
    """
    v0 = torch.zeros_like(currents[0]) if state is None else state.v
    spikes, v, us = _LIFScan.apply(currents, v0, p)
    return spikes, LIFState(v), us


def _positive_buffer(name: str, value: float | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32).detach().clone()
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return t


class _Population(nn.Module):
    """Shared parameter handling of LIF and LI populations (``tau`` in ms, ``dt`` in ms)."""

    spiking: bool = True

    def __init__(self, tau: float | torch.Tensor, dt: float) -> None:
        super().__init__()
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of milliseconds, got {dt!r}")
        self.dt = float(dt)
        self.register_buffer("tau", _positive_buffer("tau", tau))

    def forward(self, x: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, LIFState]:
        """One frame: current ``[B, ...]`` -> ``(output [B, ...], state)`` (spikes, or membrane for LI)."""
        out, state, _ = self.step(x, state)
        return out, state

    @property
    def beta(self) -> torch.Tensor:
        """Per-frame leak factor ``exp(-dt / tau)``."""
        return torch.exp(-self.dt / self.tau)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise if a per-neuron parameter does not broadcast to the population ``shape``."""
        for name, buf in self.named_buffers(recurse=False):
            try:
                ok = torch.broadcast_shapes(buf.shape, shape) == tuple(shape)
            except RuntimeError:
                ok = False
            if not ok:
                raise ValueError(
                    f"{type(self).__name__}.{name} has shape {tuple(buf.shape)}, which does not match "
                    f"the population shape {tuple(shape)}"
                )


class LIF(_Population):
    """A population of LIF neurons (see module docstring).

    Args:
        tau: membrane time constant in ms (scalar or per-neuron tensor).
        threshold: firing threshold (scalar or per-neuron tensor); fires when ``u > threshold``.
        reset: ``"zero"`` or ``"subtract"``.
        surrogate: ``"atan"``, ``"fast_sigmoid"``, ``"sigmoid"`` or a :class:`Surrogate`.
        detach_reset: treat the reset as a constant in the backward pass.
        dt: frame length in ms.

    Example::

        >>> lif = LIF(tau=20.0, threshold=1.0)
        >>> spikes, state = lif(torch.ones(4, 10) * 2)   # one frame, batch of 4
    """

    def __init__(
        self,
        tau: float | torch.Tensor = 10.0,
        threshold: float | torch.Tensor = 1.0,
        reset: str = "zero",
        surrogate: str | Surrogate = "atan",
        detach_reset: bool = True,
        dt: float = 1.0,
    ) -> None:
        super().__init__(tau, dt)
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        self.register_buffer("threshold", _positive_buffer("threshold", threshold))
        self.reset_mode = reset
        self.surrogate = as_surrogate(surrogate)
        self.detach_reset = bool(detach_reset)

    def parameters_(self) -> LIFParameters:
        """The functional parameters (:class:`LIFParameters`) of this population."""
        return LIFParameters(self.beta, self.threshold, self.reset_mode, self.surrogate, self.detach_reset)

    def step(
        self, x: torch.Tensor, state: LIFState | None = None
    ) -> tuple[torch.Tensor, LIFState, torch.Tensor]:
        """One frame: ``x`` current ``[B, ...]`` -> ``(spikes, state, pre-reset membrane)``."""
        return lif_step(x, state, self.parameters_())

    def scan(
        self, currents: torch.Tensor, state: LIFState | None = None
    ) -> tuple[torch.Tensor, LIFState, torch.Tensor]:
        """All frames of ``currents`` ``[T, B, ...]``: ``(spikes, state, pre-reset membrane)``."""
        return lif_scan(currents, state, self.parameters_())

    def extra_repr(self) -> str:
        tau = f"{self.tau.item():g}" if self.tau.dim() == 0 else f"per-neuron{tuple(self.tau.shape)}"
        thr = (
            f"{self.threshold.item():g}"
            if self.threshold.dim() == 0
            else f"per-neuron{tuple(self.threshold.shape)}"
        )
        return (
            f"tau={tau}ms, threshold={thr}, reset={self.reset_mode}, "
            f"surrogate={self.surrogate.name}({self.surrogate.scale:g}), dt={self.dt:g}ms"
        )


class LI(_Population):
    """Non-spiking leaky-integrator readout: ``u = beta * u + I``; its output is the membrane ``u``.

    Use it as the last population to train with cross-entropy on the membrane instead of on spike counts.
    """

    spiking = False

    def __init__(self, tau: float | torch.Tensor = 10.0, dt: float = 1.0) -> None:
        super().__init__(tau, dt)

    def step(
        self, x: torch.Tensor, state: LIFState | None = None
    ) -> tuple[torch.Tensor, LIFState, torch.Tensor]:
        """One frame: returns ``(membrane, state, membrane)``."""
        v = torch.zeros_like(x) if state is None else state.v
        u = self.beta * v + x
        return u, LIFState(u), u

    def scan(
        self, currents: torch.Tensor, state: LIFState | None = None
    ) -> tuple[torch.Tensor, LIFState, torch.Tensor]:
        """All frames: ``(membrane [T, B, ...], state, membrane)``."""
        v0 = torch.zeros_like(currents[0]) if state is None else state.v
        out = linear_scan(currents, self.beta, v0)
        return out, LIFState(out[-1]), out.detach()

    def extra_repr(self) -> str:
        tau = f"{self.tau.item():g}" if self.tau.dim() == 0 else f"per-neuron{tuple(self.tau.shape)}"
        return f"tau={tau}ms, dt={self.dt:g}ms"
