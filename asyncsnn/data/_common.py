"""Argument checks and intensity conversion shared by the encoders."""

from __future__ import annotations

import math

import numpy as np
import torch


def to_unit(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Grey levels as float32 intensities in [0, 1], same shape as the input.

    uint8 is divided by 255; floating-point input must already lie in [0, 1]
    (ValueError on NaN or values outside). Other dtypes are rejected.
    """
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        return x.to(torch.float32) / 255.0
    if not x.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point in [0, 1], got {x.dtype}")
    if x.numel() > 0:
        if bool(torch.isnan(x).any()):
            raise ValueError("images contain NaN; expected intensities in [0, 1]")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"float images must lie in [0, 1], got values in [{lo:g}, {hi:g}]; "
                "pass uint8 grey levels or divide by 255"
            )
    return x.to(torch.float32)


def check_batch(images: torch.Tensor | np.ndarray, what: str = "images") -> torch.Tensor:
    """to_unit() of a [B, H, W] batch with B, H, W >= 1; ValueError otherwise."""
    x = torch.as_tensor(images)
    if x.dim() != 3 or min(x.shape) == 0:
        raise ValueError(f"{what} must have shape [B, H, W] with every size >= 1, got {tuple(x.shape)}")
    return to_unit(x)


def check_num_steps(num_steps: int) -> int:
    """num_steps as a positive int (bool and non-integers rejected)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return int(num_steps)


def check_positive(name: str, value: float) -> float:
    """value as a finite float > 0, else ValueError naming the field."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}") from None
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v
