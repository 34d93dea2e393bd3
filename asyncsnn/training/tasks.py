"""What a configuration trains on: the datasets, and the encoder that turns a batch into spikes.

Image datasets (MNIST, ...) are encoded batch by batch (rate coding draws new spikes every epoch). Time
series (``japanese-vowels``) are encoded once per split and step length, deterministically, with the
sigma-delta encoder of :func:`asyncsnn.data.series_to_spikes` in physical time, so the same series give the
same spike times at any ``dt``; the normalisation uses training-split statistics for both splits.
Neuromorphic datasets (``nmnist``, ``shd``, ``dvsgesture``) are read as events and counted once into
``num_steps`` frames over the dataset's fixed duration (:mod:`asyncsnn.data.neuromorphic`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from asyncsnn.config import TrainConfig
from asyncsnn.data import ImageDataset, load_dataset, make_encoder
from asyncsnn.data.neuromorphic import NEUROMORPHIC, to_time_first

NEUROMORPHIC_DATASETS = tuple(NEUROMORPHIC)
# Pre-encoded datasets: a SpikeDataset trained with the time-stepped engine.
TEMPORAL_DATASETS = ("japanese-vowels", *NEUROMORPHIC_DATASETS)


@dataclass(frozen=True, eq=False)  # eq=False: tensor fields have no boolean ==
class SpikeDataset:
    """Pre-encoded spike sequences: ``images`` ``[N, T, *input_shape]`` event counts (a float32 tensor, or
    :class:`~asyncsnn.data.packed.PackedFrames` that unpack a batch when indexed), ``labels``.

    The field is called ``images`` so that image and spike datasets are indexed alike by the training loop.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    n_classes: int
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class SpikeSequenceEncoder:
    """The encoder of a :class:`SpikeDataset`: batch ``[B, T, *shape]`` -> time-first ``[T, B, *shape]``."""

    num_steps: int
    input_shape: tuple[int, ...]
    name: str = "sigma-delta"

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return to_time_first(batch).to(torch.float32).contiguous()


def load_split(config: TrainConfig, split: str, data_dir: str | None = None) -> ImageDataset | SpikeDataset:
    """One split of the configured dataset (no limits applied)."""
    data_dir = data_dir if data_dir is not None else config.data_dir
    if config.dataset in NEUROMORPHIC_DATASETS:
        return _framed_events(config, split, data_dir)
    if config.dataset in TEMPORAL_DATASETS:
        return _encoded_series(config, split, data_dir)
    return load_dataset(config.dataset, split, data_dir)


def encoder_for(config: TrainConfig, dataset: ImageDataset | SpikeDataset):
    """The encoder of ``dataset`` under ``config`` (a spike dataset is already encoded)."""
    if isinstance(dataset, SpikeDataset):
        name = "events" if dataset.name in NEUROMORPHIC_DATASETS else "sigma-delta"
        return SpikeSequenceEncoder(dataset.images.shape[1], tuple(dataset.images.shape[2:]), name)
    options = {"gain": config.gain} if config.encoder == "rate" else {}
    return make_encoder(config.encoder, config.num_steps, **options)


def _encoded_series(config: TrainConfig, split: str, data_dir: str | None) -> SpikeDataset:
    from asyncsnn.data import channel_stats, load_japanese_vowels, series_to_spikes

    train = load_japanese_vowels("train", data_dir)
    data = train if split == "train" else load_japanese_vowels(split, data_dir)
    mean, std = channel_stats(train.values, train.lengths)
    spikes, _ = series_to_spikes(
        data.values,
        data.lengths,
        dt=config.dt,
        step_ms=config.series_step,
        theta=config.input_threshold,
        tau=config.input_tau,
        mean=mean,
        std=std,
    )
    # Both splits get the length of the longest series of either (silence after a series ends), so a
    # model sees sequences of one length in training and in evaluation.
    other = load_japanese_vowels("test" if split == "train" else "train", data_dir)
    longest = max(int(data.lengths.max()), int(other.lengths.max()))
    steps = math.ceil(longest * config.series_step / config.dt - 1e-9)
    spikes = torch.cat([spikes, spikes.new_zeros(max(0, steps - spikes.shape[0]), *spikes.shape[1:])])
    return SpikeDataset(data.name, split, spikes.transpose(0, 1).contiguous(), data.labels, data.n_classes,
                        data.class_names)  # fmt: skip


def _framed_events(config: TrainConfig, split: str, data_dir: str | None) -> SpikeDataset:
    """Events counted into ``num_steps`` frames over the dataset's fixed duration: ``[N, T, *frame]``."""
    from asyncsnn.data.neuromorphic import load_events

    data = load_events(config.dataset, split, data_dir)
    frames = data.frames(config.num_steps)
    return SpikeDataset(data.name, split, frames, data.labels, data.n_classes, data.classes)
