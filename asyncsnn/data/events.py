"""Event-camera (DVS) event arrays and their conversion to frames.

Events are numpy structured arrays with Tonic's field names: x, y (pixel column and
row), t (timestamp in microseconds) and p (polarity: 0 = OFF, brightness fell;
1 = ON, brightness rose).
"""

from __future__ import annotations

import numpy as np
import torch

from ._common import check_num_steps

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])
NMNIST_SENSOR_SIZE = (34, 34, 2)  # (width, height, polarities), Tonic's order
NMNIST_DURATION_US = 300_000  # three 100 ms saccades


def time_bins(t_us: np.ndarray, num_steps: int, duration_us: int) -> np.ndarray:
    """Frame index of each timestamp: floor(t * num_steps / duration), in integers.

    Integer arithmetic so that every caller (saccade_frames, events_to_frames) bins a
    timestamp identically. Timestamps must lie in [0, duration_us).
    """
    return (np.asarray(t_us, dtype=np.int64) * num_steps) // duration_us


def events_to_frames(
    events: np.ndarray,
    num_steps: int,
    sensor_size: tuple[int, int, int] = NMNIST_SENSOR_SIZE,
    duration_us: int | None = None,
) -> torch.Tensor:
    """Count events into ``num_steps`` equal time bins: float32 [T, P, H, W].

    sensor_size is (W, H, P) as in Tonic. Bin i covers [i, i + 1) * duration_us / T
    microseconds from t = 0. duration_us=None means the nominal N-MNIST length of
    300 ms, stretched to last timestamp + 1 if events run later, so none is dropped.
    ValueError for events outside the sensor, negative or too late timestamps.
    """
    T = check_num_steps(num_steps)
    names = events.dtype.names if isinstance(events, np.ndarray) else None
    if names is None or not {"x", "y", "t", "p"} <= set(names):
        raise ValueError("events must be a structured array with fields x, y, t, p")
    if events.ndim != 1:
        raise ValueError(f"events must be 1-D, got shape {events.shape}")
    if len(sensor_size) != 3 or min(sensor_size) < 1:
        raise ValueError(f"sensor_size must be (width, height, polarities) >= 1, got {sensor_size}")
    W, H, P = (int(s) for s in sensor_size)
    x, y, p = (events[f].astype(np.int64) for f in ("x", "y", "p"))
    t = events["t"].astype(np.int64)
    for name, v, size in (("x", x, W), ("y", y, H), ("p", p, P)):
        if v.size and (v.min() < 0 or v.max() >= size):
            raise ValueError(
                f"event {name} spans [{v.min()}, {v.max()}], outside the sensor's [0, {size - 1}]; "
                f"check sensor_size={sensor_size} (width, height, polarities)"
            )
    if t.size and t.min() < 0:
        raise ValueError(f"event timestamps must be >= 0 us, got {t.min()}")
    t_end = int(t.max()) + 1 if t.size else 0
    if duration_us is None:
        duration = max(NMNIST_DURATION_US, t_end)
    else:
        duration = int(duration_us)
        if duration < 1 or duration != duration_us:
            raise ValueError(f"duration_us must be a positive integer, got {duration_us!r}")
        if t_end > duration:
            raise ValueError(
                f"events run to t = {t_end - 1} us, beyond duration_us = {duration}; "
                "pass a larger duration_us or crop the events"
            )
    flat = ((time_bins(t, T, duration) * P + p) * H + y) * W + x
    counts = np.bincount(flat, minlength=T * P * H * W)
    return torch.from_numpy(counts.astype(np.float32)).reshape(T, P, H, W)
