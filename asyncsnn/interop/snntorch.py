"""Import an snnTorch ``nn.Sequential`` (synapses + ``snntorch.Leaky``) as an asyncsnn :class:`Network`.

Units: ``dt`` in ms. snnTorch has no time unit; its ``beta`` is the per-step leak factor, so each ``Leaky``
becomes a :class:`~asyncsnn.neurons.lif.LIF` with ``tau = -dt / ln(beta)`` (per-neuron ``beta`` gives a
per-neuron ``tau``), the same ``threshold``, reset mechanism and surrogate. ``tau`` is chosen, among the
float32 numbers next to ``-dt / ln(beta)``, so that asyncsnn's ``exp(-dt / tau)`` gives back snnTorch's
float32 ``beta`` bit for bit. That is possible for every ``beta`` above about 0.48; below, some ``beta`` have
no such ``tau``: the closest is taken (one float32 step off) and a warning says so.

What is equal (float32 on CPU; tested in ``tests/interop/test_snntorch.py``): with ``x`` ``[T, B, ...]``, the
spikes of every population at every step are those of the snnTorch model stepped frame by frame from reset
state (``snntorch.utils.reset(model)``, then ``model(x[t])`` for each ``t``), for

- ``reset_mechanism="zero"``, with ``reset_delay=True`` (snnTorch's default) or ``False``. With
  ``reset_delay=True`` snnTorch zeroes the membrane at the start of the next step, before the leak; that is
  the same as asyncsnn's reset in the frame of the spike, because ``beta * 0 = 0``. What differs is the
  membrane snnTorch *returns*: the pre-reset membrane (asyncsnn's ``u``, recorded by
  ``sync.run(..., record_membrane=True)``) with ``reset_delay=True``, the post-reset one (asyncsnn's state
  ``v``) with ``reset_delay=False``;
- ``reset_mechanism="subtract"`` with ``reset_delay=False``, as long as no membrane exceeds twice its
  threshold (``u <= 2 * threshold`` whenever a neuron fires). Otherwise the membrane is still above
  threshold after the subtraction, and snnTorch 1.0.0 subtracts the threshold once more at the start of the
  next step, before deciding whether to fire; asyncsnn subtracts once per spike.

The membranes are equal bit for bit to those of the frame-by-frame engine (``sync.run(..., fused=False)``).
The fused scan of ``sync.run`` (the default) computes ``beta * v + current`` with one rounding (``addcmul``)
where snnTorch rounds twice, so its membranes may differ in the last bit (its spikes differ only if a
membrane lands within that last bit of the threshold; never in the tests). This also assumes the synapses
give the same float32 currents for a batch of ``T * B`` frames as for ``B`` (true of PyTorch's CPU kernels
in the tests).

The converted network runs on the asynchronous engine unchanged: the ``layer`` scheduler with
``group_size`` >= the widest layer gives the same spikes (tested with and without bias; that engine adds the
bias at the start of the frame, ``(beta * v + bias) + events``, which could round differently from
``beta * v + (events + bias)``: bias-free synapses leave no room for that).

Not importable (ValueError): ``reset_mechanism="subtract"`` with ``reset_delay=True`` (snnTorch subtracts the
threshold one step later, *after* the leak, so the membrane loses ``threshold`` instead of ``beta *
threshold``: a different model; build the snnTorch model with ``reset_delay=False`` or ``reset_mechanism=
"zero"``), ``reset_mechanism="none"``, ``beta`` outside (0, 1) (``beta = 0`` or 1 has no finite positive
``tau``), ``inhibition=True``, ``state_quant``, ``graded_spikes_factor != 1``, and any other module than
``nn.Linear``, ``nn.Conv2d``, ``nn.AvgPool2d``, ``nn.Flatten``, ``nn.Unflatten``, ``nn.Identity`` (nested
``nn.Sequential`` is flattened) and ``snntorch.Leaky``.

Gradients: snnTorch detaches the reset when ``reset_delay=True`` and not when ``reset_delay=False``, so the
populations get ``detach_reset=reset_delay``; the surrogates ``atan``, ``fast_sigmoid`` and ``sigmoid`` of
``snntorch.surrogate`` are recognised with their scale (anything else, or ``surrogate_disable=True``, gives
``atan`` with a warning). Gradients then agree up to floating-point rounding, not bit for bit.

The returned network owns copies of the weights (it shares no parameter with the snnTorch model); learnable
``beta`` / ``threshold`` become fixed buffers (``tau``, ``threshold``) with the current values.

Example::

    >>> import snntorch as snn
    >>> lif = snn.Leaky(beta=0.9, reset_mechanism="zero", init_hidden=True)
    >>> model = nn.Sequential(nn.Linear(100, 10), lif)
    >>> net = from_snntorch(model, input_shape=(100,))
    >>> out = sync.run(net, x).output    # x [T, B, 100] -> [T, B, 10], the spikes snnTorch gives
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from asyncsnn.network import SYNAPSE_TYPES, Network
from asyncsnn.neurons.lif import LIF
from asyncsnn.neurons.surrogate import Surrogate

#: Synapse modules copied as they are: the ones a Network accepts (linear maps of their input plus a bias).
SUPPORTED_SYNAPSES: tuple[type[nn.Module], ...] = SYNAPSE_TYPES

# snntorch.surrogate factory name -> (asyncsnn surrogate name, name of the factory's scale argument)
_SURROGATES = {
    "atan": ("atan", "alpha"),
    "fast_sigmoid": ("fast_sigmoid", "slope"),
    "sigmoid": ("sigmoid", "slope"),
}

_HINTS = {
    nn.MaxPool2d: "max pooling is not a linear map of its input, so it cannot be delivered as weighted "
    "events; use nn.AvgPool2d (and retrain)",
    nn.BatchNorm2d: "fold the batch norm into the preceding convolution first",
    nn.BatchNorm1d: "fold the batch norm into the preceding linear layer first",
    nn.Dropout: "dropout is the identity at inference; remove it (or replace it by nn.Identity)",
}


def from_snntorch(model: nn.Sequential, input_shape: Sequence[int], *, dt: float = 1.0) -> Network:
    """Convert an snnTorch ``nn.Sequential`` into a :class:`Network` (see the module docstring).

    Args:
        model: synapses (``nn.Linear``, ``nn.Conv2d``, ``nn.AvgPool2d``, ``nn.Flatten``, ``nn.Unflatten``,
            ``nn.Identity``) and ``snntorch.Leaky`` neurons, ending with a ``Leaky``.
        input_shape: shape of one input frame without batch, e.g. ``(2, 34, 34)``.
        dt: frame length in ms that one snnTorch step stands for; ``tau = -dt / ln(beta)`` in ms.

    Returns:
        A :class:`Network` with copied weights and one :class:`LIF` per ``Leaky``.
    """
    try:
        import snntorch
    except ImportError:
        raise ImportError("from_snntorch needs snnTorch: pip install snntorch") from None
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be an nn.Sequential, got {type(model).__name__}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of milliseconds, got {dt!r}")
    modules = []
    for name, m in _flatten(model):
        if isinstance(m, snntorch.Leaky):
            modules.append(_leaky_to_lif(m, name, float(dt)))
        elif isinstance(m, SUPPORTED_SYNAPSES):
            modules.append(copy.deepcopy(m))
        else:
            modules.append(_unsupported(m, name))
    if not modules:
        raise ValueError("model is empty")
    return Network(*modules, input_shape=input_shape)


def _flatten(model: nn.Sequential, prefix: str = "") -> list[tuple[str, nn.Module]]:
    out = []
    for name, m in model.named_children():
        full = f"{prefix}{name}"
        out += _flatten(m, full + ".") if isinstance(m, nn.Sequential) else [(full, m)]
    return out


def _unsupported(m: nn.Module, name: str) -> nn.Module:
    allowed = ", ".join(f"nn.{t.__name__}" for t in SUPPORTED_SYNAPSES) + ", snntorch.Leaky"
    hint = next((h for t, h in _HINTS.items() if isinstance(m, t)), None)
    raise ValueError(
        f"module {name!r} ({type(m).__name__}) is not supported"
        + (f": {hint}" if hint else "")
        + f"; supported: {allowed}"
    )


def _leaky_to_lif(m: nn.Module, name: str, dt: float) -> LIF:
    where = f"snntorch.Leaky {name!r}"
    mechanism = m.reset_mechanism
    if mechanism not in ("zero", "subtract"):
        raise ValueError(
            f"{where}: reset_mechanism={mechanism!r} is not supported; asyncsnn neurons reset, "
            "use 'zero' or 'subtract'"
        )
    if mechanism == "subtract" and m.reset_delay:
        raise ValueError(
            f"{where}: reset_mechanism='subtract' with reset_delay=True (snnTorch's default) subtracts the "
            "threshold one step late, after the leak, which asyncsnn's LIF cannot express (it resets in the "
            "frame of the spike). Build the snnTorch model with reset_delay=False, or reset_mechanism='zero' "
            "(exactly equivalent with either reset_delay)"
        )
    if m.inhibition:
        raise ValueError(f"{where}: inhibition=True is not supported")
    if m.state_quant:
        raise ValueError(f"{where}: state_quant is not supported (asyncsnn membranes are not quantized)")
    graded = torch.as_tensor(m.graded_spikes_factor).detach()
    if not bool((graded == 1).all()):
        raise ValueError(f"{where}: graded_spikes_factor must be 1 (binary spikes), got {graded.tolist()}")
    beta = torch.as_tensor(m.beta).detach().to(torch.float32)
    if not bool(torch.isfinite(beta).all()) or bool(((beta <= 0) | (beta >= 1)).any()):
        raise ValueError(
            f"{where}: beta must lie strictly between 0 and 1 (tau = -dt / ln(beta) must be finite and "
            f"positive; beta = 0 means no memory and cannot be expressed), got {_short(beta)}"
        )
    threshold = torch.as_tensor(m.threshold).detach().to(torch.float32).clone()
    if not bool(torch.isfinite(threshold).all()) or bool((threshold <= 0).any()):
        raise ValueError(f"{where}: threshold must be positive and finite, got {_short(threshold)}")
    tau = _tau_for_beta(beta, dt, where)
    lif = LIF(
        tau=tau,
        threshold=threshold,
        reset=mechanism,
        surrogate=_surrogate(m, where),
        detach_reset=bool(m.reset_delay),  # snnTorch detaches only its delayed reset
        dt=dt,
    )
    return lif


def _tau_for_beta(beta: torch.Tensor, dt: float, where: str) -> torch.Tensor:
    """float32 ``tau`` with ``exp(-dt / tau) == beta`` bit for bit where possible (else the closest)."""
    tau = (-dt / torch.log(beta.double())).float()
    best, best_err = tau, _beta_error(tau, beta, dt)
    up, down = tau, tau
    for _ in range(64):  # a few float32 steps around the rounded value always suffice in practice
        if bool((best_err == 0).all()):
            break
        up = torch.nextafter(up, torch.full_like(up, math.inf))
        down = torch.nextafter(down, torch.zeros_like(down))
        for candidate in (up, down):
            err = _beta_error(candidate, beta, dt)
            better = err < best_err
            best, best_err = torch.where(better, candidate, best), torch.where(better, err, best_err)
    if bool((best_err != 0).any()):
        warnings.warn(
            f"{where}: no float32 tau reproduces beta exactly for {int((best_err != 0).sum())} neuron(s) "
            f"(largest difference {best_err.max().item():.3g}); spikes may differ from snnTorch's",
            stacklevel=3,
        )
    return best


def _beta_error(tau: torch.Tensor, beta: torch.Tensor, dt: float) -> torch.Tensor:
    # The very expression LIF.beta evaluates (a float divided by a tensor), so the check is bit-exact.
    return (torch.exp(-dt / tau) - beta).abs()


def _surrogate(m: nn.Module, where: str) -> Surrogate:
    fn = m.spike_grad
    factory = getattr(fn, "__qualname__", "").removesuffix(".<locals>.inner")
    if (
        not m.surrogate_disable
        and getattr(fn, "__module__", "") == "snntorch.surrogate"
        and factory in _SURROGATES
    ):
        ours, scale_name = _SURROGATES[factory]
        scale = inspect.getclosurevars(fn).nonlocals.get(scale_name)
        if isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0:
            return Surrogate(ours, float(scale))
    reason = "surrogate_disable=True" if m.surrogate_disable else f"spike_grad {fn!r} is not recognised"
    warnings.warn(
        f"{where}: {reason}; using the atan surrogate (alpha=2) for the backward pass "
        "(the forward pass is the same Heaviside)",
        stacklevel=4,
    )
    return Surrogate("atan")


def _short(t: torch.Tensor) -> str:
    return (
        f"{t.item():g}" if t.numel() == 1 else f"a tensor with range [{t.min().item():g}, {t.max().item():g}]"
    )
