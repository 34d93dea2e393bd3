"""N-MNIST binary format: the real sample, round trips, damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asyncsnn.data import EVENT_DTYPE, events_to_frames, read_nmnist, write_nmnist
from asyncsnn.errors import DataError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def sample_path() -> Path:
    path = SHARED / "nmnist-sample" / "sample_nmnist.bin"
    if not path.is_file():
        pytest.skip(f"real N-MNIST sample not available: {path} is missing")
    return path


def test_real_sample(sample_path: Path) -> None:
    events = read_nmnist(sample_path)
    assert events.dtype == EVENT_DTYPE
    assert len(events) == 4325 == sample_path.stat().st_size // 5
    # First record on disk: 07 0f 80 02 8e -> x 7, y 15, ON, t = 0x00028e = 654 us.
    assert events[0].tolist() == (7, 15, 654, 1)
    assert events["x"].min() == 0 and events["x"].max() == 33
    assert events["y"].min() == 0 and events["y"].max() == 33
    assert set(np.unique(events["p"]).tolist()) == {0, 1}
    assert np.all(np.diff(events["t"]) >= 0)  # this sample is in time order
    assert events["t"][0] == 654 and events["t"][-1] == 311_175  # ~300 ms, 3 saccades
    frames = events_to_frames(events, 10)
    assert frames.shape == (10, 2, 34, 34) and float(frames.sum()) == 4325


def test_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 500
    events = np.empty(n, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, 256, n)
    events["y"] = rng.integers(0, 240, n)
    events["t"] = np.sort(rng.integers(0, 2**23, n))
    events["p"] = rng.integers(0, 2, n)
    path = tmp_path / "00001.bin"
    write_nmnist(path, events)
    assert path.stat().st_size == 5 * n
    assert np.array_equal(read_nmnist(path), events)


def test_byte_layout(tmp_path: Path) -> None:
    events = np.array([(33, 2, 0x12345, 1), (0, 33, 2**23 - 1, 0)], dtype=EVENT_DTYPE)
    write_nmnist(tmp_path / "e.bin", events)
    assert (tmp_path / "e.bin").read_bytes() == bytes([33, 2, 0x81, 0x23, 0x45, 0, 33, 0x7F, 0xFF, 0xFF])


def test_overflow_marker(tmp_path: Path) -> None:
    # A record with y == 240 adds 2**13 us to later timestamps and is not an event.
    raw = bytes([1, 1, 0, 0, 10, 0, 240, 0, 0, 0, 2, 2, 0x80, 0, 5])
    (tmp_path / "o.bin").write_bytes(raw)
    events = read_nmnist(tmp_path / "o.bin")
    assert events.tolist() == [(1, 1, 10, 0), (2, 2, 5 + 2**13, 1)]


def test_truncated(tmp_path: Path) -> None:
    path = tmp_path / "cut.bin"
    path.write_bytes(bytes(5 * 7 + 3))
    with pytest.raises(DataError, match=r"cut\.bin is truncated or corrupt.*38 bytes"):
        read_nmnist(path)
    with pytest.raises(DataError, match="not found"):
        read_nmnist(tmp_path / "absent.bin")


@pytest.mark.parametrize(
    "row, match",
    [((256, 0, 0, 0), "x spans"), ((0, 240, 0, 0), "240"), ((0, 0, 2**23, 0), "t spans"),
     ((0, 0, 0, 2), "p spans"), ((0, 0, -1, 0), "t spans")],
)  # fmt: skip
def test_write_rejects(tmp_path: Path, row: tuple[int, int, int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_nmnist(tmp_path / "x.bin", np.array([row], dtype=EVENT_DTYPE))
