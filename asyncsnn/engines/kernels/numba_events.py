"""Dense frames to event lists (:meth:`~asyncsnn.engines.events.SparseFrames.from_dense`), with numba.

Two passes over the frames, samples in parallel: count each (sample, frame)'s nonzero entries (a vectorised
loop), then, once the offsets are known, write their channels and values, skipping all-zero chunks. The frames
are read twice but never copied; PyTorch's ``nonzero`` on the transposed frames (the reference path) copies
them and is a few times slower.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def count_events(rows, B, counts):
    """``counts[b * T + t]`` = nonzero entries of frame ``t`` of sample ``b``; ``rows`` is ``[T * B, n]``
    (row ``t * B + b``)."""
    TB, n = rows.shape
    T = TB // B
    un = np.uint64(n)
    for b in prange(B):
        for t in range(T):
            r = np.uint64(t * B + b)
            c = 0
            for i in range(un):
                c += rows[r, i] != 0
            counts[b * T + t] = c


CHUNK = 16  # entries tested at once for any nonzero (2 % density: most chunks of 16 are all zero)


@njit(cache=True, parallel=True)
def fill_events(rows, bits, mask, B, ptr, channel, count):
    """Channels and values of the nonzero entries, sample-major then frame then channel (``ptr`` from the
    counts of :func:`count_events`). ``bits`` is ``rows`` viewed as unsigned integers and ``mask`` clears
    their sign bit: a chunk of entries is all zero (or minus zero) when the OR of its masked bits is 0, an
    integer reduction that vectorises; only the other chunks are scanned entry by entry."""
    TB, n = rows.shape
    T = TB // B
    n_full = n // CHUNK * CHUNK
    for b in prange(B):
        for t in range(T):
            r = np.uint64(t * B + b)
            k = ptr[b * T + t]
            for i0 in range(0, n_full, CHUNK):
                acc = bits[r, np.uint64(i0)] & mask
                for j in range(1, CHUNK):
                    acc |= bits[r, np.uint64(i0 + j)] & mask
                if acc:
                    for i in range(i0, i0 + CHUNK):
                        if rows[r, np.uint64(i)] != 0:
                            channel[k] = i
                            count[k] = rows[r, np.uint64(i)]
                            k += 1
            for i in range(n_full, n):  # the last, partial chunk
                if rows[r, np.uint64(i)] != 0:
                    channel[k] = i
                    count[k] = rows[r, np.uint64(i)]
                    k += 1


def dense_to_events(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ptr, channel, count)`` of C-contiguous float32 or float64 ``[T, B, n]`` frames (see
    :class:`SparseFrames`)."""
    T, B, n = frames.shape
    rows = frames.reshape(T * B, n)
    counts = np.zeros(B * T, dtype=np.int64)
    if B > 0:  # (no frames, no samples: nothing to count)
        count_events(rows, B, counts)
    ptr = np.zeros(B * T + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    channel = np.empty(int(ptr[-1]), dtype=np.int64)
    count = np.empty(int(ptr[-1]), dtype=frames.dtype)
    unsigned = np.uint32 if frames.dtype == np.float32 else np.uint64
    mask = unsigned(np.iinfo(unsigned).max >> 1)  # all bits but the sign
    if ptr[-1]:
        fill_events(rows, rows.view(unsigned), mask, B, ptr, channel, count)
    return ptr, channel, count
