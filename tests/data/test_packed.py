"""PackedFrames: compact storage of pre-encoded event counts, unpacked to dense frames or event lists."""

from __future__ import annotations

import pytest
import torch

from asyncsnn.data.packed import EventView, PackedFrames


def frames(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(5, 11, 2, 3, 4, generator=g) < 0.3
    return mask.float() * torch.randint(1, 6, (5, 11, 2, 3, 4), generator=g).float()  # [T, N, 2, 3, 4]


def pack(x: torch.Tensor, batch_size: int = 4) -> PackedFrames:
    return PackedFrames.encode(x.shape[1], lambda s: x[:, s], batch_size=batch_size, progress=False)


def test_round_trip_for_every_kind_of_index() -> None:
    x = frames()
    p = pack(x)
    assert len(p) == 11 and p.shape == (11, 5, 2, 3, 4)
    assert torch.equal(p[:], x.transpose(0, 1))
    assert torch.equal(p[3], x[:, 3])
    assert torch.equal(p[-1], x[:, -1])
    assert torch.equal(p[1:9:3], x[:, 1:9:3].transpose(0, 1))
    idx = torch.tensor([7, 0, 7, 10])
    assert torch.equal(p[idx], x[:, idx].transpose(0, 1))
    assert torch.equal(p.subset(idx)[:], x[:, idx].transpose(0, 1))
    assert p.nbytes < x.numel() * 4 / 2  # sparse storage is smaller than dense float32


def test_event_lists_equal_the_dense_frames() -> None:
    x = frames(1)
    p = pack(x, batch_size=3)
    idx = torch.tensor([2, 9, 4])
    events = p.events(idx)
    assert events.batch_size == 3 and events.num_steps == 5 and events.frame_shape == (2, 3, 4)
    assert torch.equal(events.to_dense(), x[:, idx])
    assert torch.equal(EventView(p)[0:11].to_dense(), x)


def test_empty_samples_and_errors() -> None:
    x = frames(2)
    x[:, 4] = 0
    p = pack(x)
    assert torch.equal(p[4], torch.zeros(5, 2, 3, 4))
    with pytest.raises(IndexError, match="out of range"):
        p[torch.tensor([11])]
    with pytest.raises(ValueError, match="integer event counts"):
        pack(x * 0.5 + 0.25)
    with pytest.raises(ValueError, match="integer event counts"):
        pack(x * 100)
