"""Surrogate derivatives for the spike (Heaviside) function.

The forward pass is always the strict Heaviside ``H(x) = 1 if x > 0 else 0`` with ``x = v - threshold``.
The backward pass replaces ``dH/dx`` by a smooth function. Scalings follow snnTorch so that models and
hyper-parameters carry over:

- ``atan``:         ``alpha / 2 / (1 + (pi / 2 * alpha * x)^2)``        (snnTorch ``atan(alpha=2.0)``)
- ``fast_sigmoid``: ``1 / (slope * |x| + 1)^2``                          (snnTorch ``fast_sigmoid(slope=25)``)
- ``sigmoid``:      ``slope * exp(-slope x) / (1 + exp(-slope x))^2``    (snnTorch ``sigmoid(slope=25)``)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SURROGATES = ("atan", "fast_sigmoid", "sigmoid")
_DEFAULT_SCALE = {"atan": 2.0, "fast_sigmoid": 25.0, "sigmoid": 25.0}


@dataclass(frozen=True)
class Surrogate:
    """A surrogate derivative: ``name`` in :data:`SURROGATES` and its ``scale`` (alpha or slope)."""

    name: str = "atan"
    scale: float | None = None

    def __post_init__(self) -> None:
        if self.name not in SURROGATES:
            raise ValueError(f"surrogate: unknown name {self.name!r}; allowed: {', '.join(SURROGATES)}")
        if self.scale is None:
            object.__setattr__(self, "scale", _DEFAULT_SCALE[self.name])
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"surrogate scale must be a positive finite number, got {self.scale!r}")

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """The surrogate ``dH/dx`` evaluated at ``x = v - threshold``."""
        s = float(self.scale)
        if self.name == "atan":
            return (s / 2) / (1 + (math.pi / 2 * s * x) ** 2)
        if self.name == "fast_sigmoid":
            return 1.0 / (s * x.abs() + 1.0) ** 2
        sig = torch.sigmoid(s * x)
        return s * sig * (1 - sig)

    def spike(self, x: torch.Tensor) -> torch.Tensor:
        """Strict Heaviside of ``x`` with this surrogate in the backward pass."""
        return _SpikeFunction.apply(x, self)


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * ctx.surrogate.derivative(x), None


def as_surrogate(value: str | Surrogate) -> Surrogate:
    """Accept a name (``"atan"``) or a :class:`Surrogate`."""
    return value if isinstance(value, Surrogate) else Surrogate(value)
