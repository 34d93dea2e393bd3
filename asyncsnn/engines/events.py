"""Sparse event input for the asynchronous engine: per (sample, frame) lists of (channel, count).

Event data should reach the engine as event lists, not as dense frames that are scanned again at every call.
:class:`SparseFrames` holds them in CSR form; the dense and sparse forms are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SparseFrames:
    """Input events of ``batch_size`` samples over ``num_steps`` frames.

    Events of sample ``b`` in frame ``t`` are ``channel[ptr[b*T + t] : ptr[b*T + t + 1]]`` (flat input index,
    ascending) with event counts ``count[...]`` (> 0). ``frame_shape`` is the shape of one dense frame.
    """

    ptr: np.ndarray
    channel: np.ndarray
    count: np.ndarray
    num_steps: int
    batch_size: int
    frame_shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        if self.ptr.shape != (self.num_steps * self.batch_size + 1,):
            raise ValueError(f"ptr must have T * B + 1 = {self.num_steps * self.batch_size + 1} entries")
        if self.channel.shape != self.count.shape or self.ptr[-1] != len(self.channel):
            raise ValueError("channel and count must both hold ptr[-1] events")
        n_in = int(np.prod(self.frame_shape))
        if len(self.channel) and (self.channel.min() < 0 or self.channel.max() >= n_in):
            raise ValueError(f"event channels must lie in [0, {n_in})")
        if len(self.count) and (not np.isfinite(self.count).all() or (self.count <= 0).any()):
            raise ValueError("event counts must be positive and finite")

    @classmethod
    def from_dense(cls, x: torch.Tensor, *, compiled: bool | None = None) -> SparseFrames:
        """From dense non-negative event counts ``[T, B, *frame_shape]``.

        ``compiled``: use the numba kernel (:mod:`asyncsnn.engines.kernels.numba_events`; float32/float64 CPU
        tensors) or PyTorch's ``nonzero``; ``None`` (default) takes the kernel whenever numba is installed and
        it applies. Both give the same arrays."""
        from asyncsnn.engines.kernels import numba_available

        T, B = x.shape[:2]
        frame_shape = tuple(x.shape[2:])
        n_in = int(np.prod(frame_shape))
        applies = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
        if compiled is None:
            compiled = applies and numba_available()
        if compiled:
            if not applies:
                where = f"{x.dtype} on {x.device}"
                raise ValueError(f"the compiled conversion takes float32/float64 CPU tensors, not {where}")
            from asyncsnn.engines.kernels.numba_events import dense_to_events

            frames = x.detach().reshape(T, B, n_in).contiguous().numpy()
            return cls(*dense_to_events(frames), T, B, frame_shape, x.dtype)
        flat = x.detach().reshape(T, B, n_in).transpose(0, 1)  # [B, T, n_in]
        b, t, i = flat.nonzero(as_tuple=True)  # lexicographic: sample, frame, channel
        counts = torch.bincount(b * T + t, minlength=B * T)
        ptr = np.zeros(B * T + 1, dtype=np.int64)
        ptr[1:] = counts.cumsum(0).cpu().numpy()
        value = flat[b, t, i].cpu().numpy()
        return cls(ptr, i.cpu().numpy(), value, T, B, frame_shape, x.dtype)

    def to_dense(self) -> torch.Tensor:
        """Dense counts ``[T, B, *frame_shape]``."""
        T, B = self.num_steps, self.batch_size
        n_in = int(np.prod(self.frame_shape))
        dense = torch.zeros(B * T, n_in, dtype=self.dtype)
        rows = torch.repeat_interleave(torch.arange(B * T), torch.from_numpy(np.diff(self.ptr)))
        dense[rows, torch.from_numpy(self.channel)] = torch.from_numpy(self.count).to(self.dtype)
        return dense.reshape(B, T, *self.frame_shape).transpose(0, 1).contiguous()
