"""Dataset loading: file discovery, ASYNCSNN_DATA, error messages, the builtin split."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pytest
import torch

from asyncsnn.data import (
    DATA_ENV,
    DATASETS,
    ImageDataset,
    dataset_status,
    load_dataset,
    read_idx,
    resolve_data_dir,
    write_idx,
)
from asyncsnn.errors import DataError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared_root() -> Path:
    if not (SHARED / "mnist").is_dir():
        pytest.skip(f"real data not available: {SHARED / 'mnist'} is missing")
    return SHARED


def write_split(folder: Path, split: str, n: int, gz: bool = True, seed: int = 0) -> np.ndarray:
    """Write a small fake split; returns its images."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if gz else ""
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n, dtype=np.uint8) % 10)
    return images


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)


@pytest.mark.parametrize("sub", ["mnist", "", "MNIST/raw"])
def test_finds_files(tmp_path: Path, sub: str) -> None:
    images = write_split(tmp_path / sub, "train", 7, gz=sub != "")
    ds = load_dataset("mnist", "train", tmp_path)
    assert isinstance(ds, ImageDataset) and len(ds) == 7
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert np.array_equal(ds.images.numpy(), images)
    assert torch.equal(ds.labels, torch.arange(7))
    assert ds.classes == tuple("0123456789") and ds.n_classes == 10


def test_named_subfolder_wins(tmp_path: Path) -> None:
    write_split(tmp_path, "test", 3, seed=1)
    inner = write_split(tmp_path / "fashion-mnist", "test", 4, seed=2)
    ds = load_dataset("fashion-mnist", "test", str(tmp_path))
    assert np.array_equal(ds.images.numpy(), inner)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_split(tmp_path / "mnist", "test", 5)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert len(load_dataset("mnist", "test")) == 5
    # The argument takes precedence over the variable.
    other = tmp_path / "other"
    write_split(other, "test", 2)
    assert resolve_data_dir(other) == other
    assert len(load_dataset("mnist", "test", other)) == 2


def test_missing_files_named(tmp_path: Path) -> None:
    write_split(tmp_path / "mnist", "test", 3)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train", tmp_path)
    msg = str(info.value)
    assert "train-images-idx3-ubyte(.gz)" in msg and "train-labels-idx1-ubyte(.gz)" in msg
    assert str(tmp_path / "mnist") in msg and DATA_ENV in msg and "--data-dir" in msg


def test_missing_labels_only(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 3)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"expected train-labels-idx1-ubyte\(\.gz\) in") as info:
        load_dataset("mnist", "train", tmp_path)
    assert "train-images" not in str(info.value)


def test_no_data_dir() -> None:
    with pytest.raises(DataError, match=f"--data-dir or set {DATA_ENV}.*builtin"):
        load_dataset("fashion-mnist", "train")


def test_mismatched_files(tmp_path: Path) -> None:
    write_split(tmp_path, "test", 4)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match="4 images but .* 5 labels"):
        load_dataset("mnist", "test", tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((5, 784), dtype=np.uint8))
    with pytest.raises(DataError, match=r"uint8 images \[N, H, W\]"):
        load_dataset("mnist", "test", tmp_path)


def test_truncated_dataset_file(tmp_path: Path) -> None:
    write_split(tmp_path, "test", 4, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*truncated"):
        load_dataset("mnist", "test", tmp_path)


def test_bad_name_or_split() -> None:
    with pytest.raises(ValueError, match="builtin, mnist, fashion-mnist"):
        load_dataset("cifar10", "train")
    with pytest.raises(ValueError, match="train, test"):
        load_dataset("builtin", "valid")


def test_image_dataset_validation() -> None:
    images = torch.zeros(3, 2, 2, dtype=torch.uint8)
    digits = tuple("0123456789")
    with pytest.raises(ValueError, match="empty dataset"):
        ImageDataset("x", "train", images[:0], torch.zeros(0, dtype=torch.int64), 10, digits)
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        ImageDataset("x", "train", images, torch.zeros(2, dtype=torch.int64), 10, digits)
    with pytest.raises(ValueError, match="labels span"):
        ImageDataset("x", "train", images, torch.tensor([0, 1, 10]), 10, digits)
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset("x", "train", images.float(), torch.zeros(3, dtype=torch.int64), 10, digits)


def test_builtin_split() -> None:
    folder = importlib.resources.files("asyncsnn.data") / "builtin"
    with importlib.resources.as_file(folder / "t10k-images-idx3-ubyte.gz") as p:
        all_images = read_idx(p)
    with importlib.resources.as_file(folder / "t10k-labels-idx1-ubyte.gz") as p:
        all_labels = read_idx(p)
    train, test = load_dataset("builtin", "train"), load_dataset("builtin", "test")
    assert train.images.shape == (8000, 28, 28) and test.images.shape == (2000, 28, 28)
    idx = np.arange(10000)
    assert np.array_equal(test.images.numpy(), all_images[idx % 5 == 4])
    assert np.array_equal(test.labels.numpy(), all_labels[idx % 5 == 4])
    assert np.array_equal(train.images.numpy(), all_images[idx % 5 != 4])
    assert np.array_equal(train.labels.numpy(), all_labels[idx % 5 != 4])
    # Disjoint: no test image appears (byte for byte) in the train split.
    train_keys = {row.tobytes() for row in train.images.numpy()}
    assert not any(row.tobytes() in train_keys for row in test.images.numpy())
    assert set(test.labels.tolist()) == set(range(10))


def test_builtin_cache_not_mutable() -> None:
    first = load_dataset("builtin", "test")
    first.images.zero_()
    assert int(load_dataset("builtin", "test").images.max()) == 255


def test_status_rows(tmp_path: Path) -> None:
    write_split(tmp_path / "mnist", "test", 2)
    rows = {(r["name"], r["split"]): r for r in dataset_status(tmp_path)}
    assert set(rows) == {(n, s) for n in DATASETS for s in ("train", "test")}
    assert rows["builtin", "train"]["available"] and rows["builtin", "test"]["available"]
    assert rows["mnist", "test"]["available"] and rows["mnist", "test"]["reason"] == ""
    assert rows["mnist", "test"]["path"] == str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz")
    missing = rows["mnist", "train"]
    assert not missing["available"] and "train-images-idx3-ubyte" in str(missing["reason"])
    assert str(tmp_path / "mnist") in str(missing["reason"])
    assert not any(r["available"] for r in dataset_status(None) if r["name"] != "builtin")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_datasets(name: str) -> None:
    root = shared_root()
    for split, n in (("train", 60000), ("test", 10000)):
        ds = load_dataset(name, split, root)
        assert ds.images.shape == (n, 28, 28) and ds.labels.shape == (n,)
        assert int(ds.labels.min()) == 0 and int(ds.labels.max()) == 9


def test_files_not_mixed_across_folders(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 3, seed=1)
    inner = write_split(tmp_path / "mnist", "train", 4, seed=2)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    # mnist/ lacks labels, so both files come from the top folder.
    ds = load_dataset("mnist", "train", tmp_path)
    assert len(ds) == 3 and not np.array_equal(ds.images.numpy()[:3], inner[:3])
