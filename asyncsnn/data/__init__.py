"""Datasets (MNIST, Fashion-MNIST, a bundled MNIST split), file formats and spike encoders.

Tensors are time-first: encoders return [T, B, C, H, W].
"""

from __future__ import annotations

from ._common import to_unit
from .datasets import (
    DATA_ENV,
    DATASETS,
    SPLITS,
    DatasetInfo,
    ImageDataset,
    dataset_status,
    load_dataset,
    resolve_data_dir,
)
from .encoders import (
    ENCODERS,
    LATENCY_MODES,
    Encoder,
    latency_encode,
    make_encoder,
    rate_encode,
)
from .events import EVENT_DTYPE, NMNIST_DURATION_US, NMNIST_SENSOR_SIZE, events_to_frames
from .idx import read_idx, write_idx
from .nmnist import read_nmnist, write_nmnist
from .saccade import saccade_events, saccade_frames, step_timestamps

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "ENCODERS",
    "EVENT_DTYPE",
    "LATENCY_MODES",
    "NMNIST_DURATION_US",
    "NMNIST_SENSOR_SIZE",
    "SPLITS",
    "DatasetInfo",
    "Encoder",
    "ImageDataset",
    "dataset_status",
    "events_to_frames",
    "latency_encode",
    "load_dataset",
    "make_encoder",
    "rate_encode",
    "read_idx",
    "read_nmnist",
    "resolve_data_dir",
    "saccade_events",
    "saccade_frames",
    "step_timestamps",
    "to_unit",
    "write_idx",
    "write_nmnist",
]
