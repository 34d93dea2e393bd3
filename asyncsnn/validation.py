"""Input checks shared by the engines: one clear ValueError instead of a shape error deep inside."""

from __future__ import annotations

import torch


def check_input(network, x: torch.Tensor) -> None:
    """Check that ``x`` is a finite float tensor ``[T, B, *network.input_shape]`` with ``T, B >= 1``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"input must be a torch.Tensor [T, B, ...], got {type(x).__name__}")
    expected = "[T, B, " + ", ".join(str(d) for d in network.input_shape) + "]"
    if x.dim() != 2 + len(network.input_shape) or tuple(x.shape[2:]) != network.input_shape:
        raise ValueError(
            f"input has shape {list(x.shape)}, expected {expected} (time-first; for batch-first data "
            "use x.transpose(0, 1))"
        )
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"input has shape {list(x.shape)}: need at least one frame and one sample")
    if not x.is_floating_point():
        raise ValueError(f"input must be a floating-point tensor, got {x.dtype}; use x.float()")
    # A sum is NaN/inf whenever an element is: one cheap reduction instead of a full elementwise check.
    if not torch.isfinite(x.sum()):
        raise ValueError("input contains NaN or infinite values")
