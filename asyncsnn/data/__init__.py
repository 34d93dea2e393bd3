"""Datasets (MNIST, Fashion-MNIST, a bundled MNIST split, JapaneseVowels, N-MNIST, SHD, DVS Gesture), file
formats, spike encoders and synthetic timing tasks.

Tensors are time-first: encoders return [T, B, C, H, W], temporal data [T, B, C]; time in ms.
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
from .neuromorphic import (
    NEUROMORPHIC,
    EventDataset,
    frame_events,
    load_dvsgesture,
    load_events,
    load_nmnist,
    load_shd,
    neuromorphic_status,
    to_batch_first,
    to_time_first,
)
from .nmnist import read_nmnist, write_nmnist
from .saccade import saccade_events, saccade_frames, step_timestamps
from .temporal import (
    FINE_STEP_MS,
    channel_stats,
    coincidence_task,
    delay_task,
    pulse_response_peak,
    series_to_spikes,
)
from .timeseries import (
    JAPANESE_VOWELS_FILES,
    SeriesDataset,
    fetch_japanese_vowels,
    load_japanese_vowels,
    pad_series,
    read_ts,
)

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "DatasetInfo",
    "ENCODERS",
    "EVENT_DTYPE",
    "Encoder",
    "EventDataset",
    "FINE_STEP_MS",
    "ImageDataset",
    "JAPANESE_VOWELS_FILES",
    "LATENCY_MODES",
    "NEUROMORPHIC",
    "NMNIST_DURATION_US",
    "NMNIST_SENSOR_SIZE",
    "SPLITS",
    "SeriesDataset",
    "channel_stats",
    "coincidence_task",
    "dataset_status",
    "delay_task",
    "events_to_frames",
    "fetch_japanese_vowels",
    "frame_events",
    "latency_encode",
    "load_dataset",
    "load_dvsgesture",
    "load_events",
    "load_japanese_vowels",
    "load_nmnist",
    "load_shd",
    "make_encoder",
    "neuromorphic_status",
    "pad_series",
    "pulse_response_peak",
    "rate_encode",
    "read_idx",
    "read_nmnist",
    "read_ts",
    "resolve_data_dir",
    "saccade_events",
    "saccade_frames",
    "series_to_spikes",
    "step_timestamps",
    "to_batch_first",
    "to_time_first",
    "to_unit",
    "write_idx",
    "write_nmnist",
]
