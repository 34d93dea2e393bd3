"""IDX reader/writer: round trips, gzip detection, damaged files, the real MNIST files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from asyncsnn.data import read_idx, write_idx
from asyncsnn.errors import DataError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared_dir(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"real data not available: {path} is missing")
    return path


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_round_trip(tmp_path: Path, suffix: str, dtype: str) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 4, 5)
    assert np.array_equal(back, array)
    assert back.flags.writeable


def test_header_is_big_endian_idx(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    write_idx(path, np.array([1, 2, 3], dtype=np.int16))
    assert path.read_bytes() == bytes([0, 0, 0x0B, 1, 0, 0, 0, 3, 0, 1, 0, 2, 0, 3])


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.gz", array)
    (tmp_path / "x-no-suffix").write_bytes((tmp_path / "x.gz").read_bytes())
    write_idx(tmp_path / "raw", array)
    (tmp_path / "raw.gz").write_bytes((tmp_path / "raw").read_bytes())
    assert np.array_equal(read_idx(tmp_path / "x-no-suffix"), array)
    assert np.array_equal(read_idx(tmp_path / "raw.gz"), array)


def test_truncated_raw_file(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((4, 5, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    rng = np.random.default_rng(1)
    write_idx(path, rng.integers(0, 256, (20, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*truncated or corrupt"):
        read_idx(path)


def test_gzip_of_truncated_payload(tmp_path: Path) -> None:
    # A complete gzip stream whose IDX payload is short: caught by the size check.
    path = tmp_path / "short.gz"
    write_idx(tmp_path / "full", np.zeros((2, 3), dtype=np.int32))
    path.write_bytes(gzip.compress((tmp_path / "full").read_bytes()[:-1]))
    with pytest.raises(DataError, match="short.gz.*truncated"):
        read_idx(path)


def test_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "long"
    write_idx(path, np.zeros(5, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize(
    "header", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"\x00\x00"]
)
def test_bad_magic(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "bad-magic"
    path.write_bytes(header + b"\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="bad-magic"):
        read_idx(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing-here.*not found"):
        read_idx(tmp_path / "nothing-here")


def test_write_rejects_unsupported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "x", np.array(3, dtype=np.uint8))


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_files(name: str) -> None:
    folder = shared_dir(name)
    for split, n in (("train", 60000), ("t10k", 10000)):
        images = read_idx(folder / f"{split}-images-idx3-ubyte.gz")
        labels = read_idx(folder / f"{split}-labels-idx1-ubyte.gz")
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.uint8
        assert set(np.unique(labels)) == set(range(10))
        assert images.max() == 255 and images.min() == 0
