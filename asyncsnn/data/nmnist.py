"""Reader and writer for the N-MNIST binary event format (Orchard et al. 2015).

Each event is 5 bytes: byte 0 = x, byte 1 = y, byte 2 bit 7 = polarity (1 = ON),
bits 6..0 of byte 2 followed by bytes 3 and 4 = a 23-bit big-endian timestamp in
microseconds. As in the dataset authors' own reader, an entry with y == 240 is not an
event but a timestamp-overflow marker that adds 2**13 us to all later timestamps;
N-MNIST's 34 x 34 recordings never contain one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .events import EVENT_DTYPE

_OVERFLOW_Y = 240
_OVERFLOW_US = 2**13
_MAX_T = 2**23 - 1


def read_nmnist(path: str | Path) -> np.ndarray:
    """Decode an N-MNIST .bin file into events, dtype EVENT_DTYPE (x, y, t in us, p).

    Events keep the file's order. DataError if the file is missing or its length
    is not a multiple of 5 bytes (truncated or not an N-MNIST file).
    """
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path} not found") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if raw.size % 5:
        raise DataError(
            f"{path} is truncated or corrupt: {raw.size} bytes is not a multiple of the "
            "5-byte N-MNIST event size; delete it and download it again"
        )
    rec = raw.reshape(-1, 5).astype(np.int64)
    t = ((rec[:, 2] & 0x7F) << 16) | (rec[:, 3] << 8) | rec[:, 4]
    is_marker = rec[:, 1] == _OVERFLOW_Y
    if is_marker.any():
        t = t + np.cumsum(is_marker) * _OVERFLOW_US
    keep = ~is_marker
    events = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
    events["x"] = rec[keep, 0]
    events["y"] = rec[keep, 1]
    events["t"] = t[keep]
    events["p"] = rec[keep, 2] >> 7
    return events


def write_nmnist(path: str | Path, events: np.ndarray) -> None:
    """Write events (fields x, y, t, p) in the N-MNIST format.

    ValueError unless 0 <= x <= 255, 0 <= y <= 255 and y != 240 (the overflow marker),
    0 <= t < 2**23 us and p in {0, 1}.
    """
    names = events.dtype.names if isinstance(events, np.ndarray) else None
    if names is None or not {"x", "y", "t", "p"} <= set(names) or events.ndim != 1:
        raise ValueError("events must be a 1-D structured array with fields x, y, t, p")
    x, y, t, p = (events[f].astype(np.int64) for f in ("x", "y", "t", "p"))
    limits = (("x", x, 0, 255), ("y", y, 0, 255), ("t", t, 0, _MAX_T), ("p", p, 0, 1))
    for name, v, lo, hi in limits:
        if v.size and (v.min() < lo or v.max() > hi):
            raise ValueError(f"event {name} spans [{v.min()}, {v.max()}]; allowed [{lo}, {hi}]")
    if (y == _OVERFLOW_Y).any():
        raise ValueError("y = 240 is reserved for timestamp-overflow markers in this format")
    rec = np.empty((x.size, 5), dtype=np.uint8)
    rec[:, 0] = x
    rec[:, 1] = y
    rec[:, 2] = (p << 7) | (t >> 16)
    rec[:, 3] = (t >> 8) & 0xFF
    rec[:, 4] = t & 0xFF
    Path(path).write_bytes(rec.tobytes())
