"""Neuromorphic datasets in Tonic's on-disk layout: readers, framing, adapters, missing files, training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from asyncsnn.cli import main
from asyncsnn.config import TrainConfig
from asyncsnn.data import (
    EVENT_DTYPE,
    events_to_frames,
    frame_events,
    load_dvsgesture,
    load_events,
    load_nmnist,
    load_shd,
    neuromorphic_status,
    read_nmnist,
    to_batch_first,
    to_time_first,
    write_nmnist,
)
from asyncsnn.errors import ConfigError, DataError

SAMPLE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nmnist-sample" / "sample_nmnist.bin"
)


def _events(rows: list[tuple[int, int, int, int]]) -> np.ndarray:
    return np.array(rows, dtype=EVENT_DTYPE)  # (x, y, t in us, p)


# Hand-made N-MNIST samples (digits 3 and 7) in each split; the real sample is added as a 5 where present.
HAND_3 = _events([(0, 0, 0, 0), (1, 0, 1_000, 1), (1, 0, 2_000, 1), (33, 33, 319_999, 1), (2, 2, 320_000, 0)])
HAND_7 = _events([(5, 6, 160_000, 0)])


@pytest.fixture
def nmnist_dir(tmp_path: Path) -> Path:
    """``DIR/NMNIST/{Train,Test}/<digit>/*.bin`` as Tonic unpacks N-MNIST, in the real binary format."""
    root = tmp_path / "data"
    for split in ("Train", "Test"):
        for digit, events in (("3", HAND_3), ("7", HAND_7)):
            folder = root / "NMNIST" / split / digit
            folder.mkdir(parents=True)
            write_nmnist(folder / "00002.bin", events)
            write_nmnist(folder / "00001.bin", events[:1])
        if SAMPLE.is_file():
            (root / "NMNIST" / split / "5").mkdir()
            shutil.copy(SAMPLE, root / "NMNIST" / split / "5" / "00001.bin")
    return root


def test_nmnist_reader_labels_and_order(nmnist_dir: Path) -> None:
    data = load_nmnist("train", nmnist_dir)
    real = SAMPLE.is_file()
    # Ordered by digit folder, then file name; the label is the folder's digit.
    assert data.labels.tolist() == [3, 3] + ([5] if real else []) + [7, 7]
    assert [p.name for p in data.sources[:2]] == ["00001.bin", "00002.bin"]
    assert np.array_equal(data.events[1], HAND_3) and np.array_equal(data.events[-1], HAND_7)
    assert data.n_classes == 10 and data.classes[3] == "3"
    if real:
        assert len(data.events[2]) == 4325 and np.array_equal(data.events[2], read_nmnist(SAMPLE))


def test_framing_counts_by_hand() -> None:
    # 4 frames of 80 ms over 320 ms: t = 0, 1 ms, 2 ms -> frame 0; 319.999 ms -> frame 3; 320 ms is dropped.
    packed = frame_events([HAND_3, HAND_7], (34, 34, 2), 4, 320_000)
    assert packed.shape == (2, 4, 2, 34, 34)
    x = packed[0:2]
    expected = torch.zeros(2, 4, 2, 34, 34)
    expected[0, 0, 0, 0, 0] = 1  # (x 0, y 0, OFF)
    expected[0, 0, 1, 0, 1] = 2  # two ON events at x 1, y 0
    expected[0, 3, 1, 33, 33] = 1
    expected[1, 2, 0, 6, 5] = 1  # t = 160 ms is the first instant of frame 2; [p, y, x]
    assert torch.equal(x, expected)
    # The same bins as events_to_frames for a single sample, and the SHD-style flat frame shape.
    assert torch.equal(packed[1], events_to_frames(HAND_7, 4, duration_us=320_000))
    flat = frame_events([_events([(699, 0, 999, 0), (2, 0, 1000, 0)])], (700, 1, 1), 2, 2000, (700,))
    assert flat.shape == (1, 2, 700)
    assert flat[0].nonzero().tolist() == [[0, 699], [1, 2]]


def test_framing_real_sample_keeps_every_event() -> None:
    if not SAMPLE.is_file():
        pytest.skip(f"real N-MNIST sample not available: {SAMPLE} is missing")
    events = read_nmnist(SAMPLE)  # ends at 311 ms, inside the 320 ms window
    packed = frame_events([events], (34, 34, 2), 10, 320_000)
    assert float(packed[0].sum()) == 4325
    assert torch.equal(packed[0], events_to_frames(events, 10, duration_us=320_000))


def test_framing_saturates_and_rejects_bad_events() -> None:
    many = _events([(0, 0, 5, 1)] * 300)
    assert float(frame_events([many], (1, 1, 2), 1, 10)[0].max()) == 255
    with pytest.raises(ValueError, match="x spans"):
        frame_events([_events([(34, 0, 0, 0)])], (34, 34, 2), 2, 100)
    with pytest.raises(ValueError, match=">= 0"):
        frame_events([_events([(0, 0, -1, 0)])], (34, 34, 2), 2, 100)
    with pytest.raises(ValueError, match="frame_shape"):
        frame_events([many], (1, 1, 2), 1, 10, (3,))


def test_adapters_are_explicit_inverses() -> None:
    batch_first = torch.arange(2 * 3 * 4).reshape(2, 3, 4)  # [B=2, T=3, N=4]
    time_first = to_time_first(batch_first)
    assert time_first.shape == (3, 2, 4)
    assert torch.equal(time_first[1, 0], batch_first[0, 1])
    assert torch.equal(to_batch_first(time_first), batch_first)
    with pytest.raises(ValueError, match=r"\[B, T, \.\.\.\]"):
        to_time_first(torch.zeros(5))


def test_missing_files_name_the_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNCSNN_DATA", raising=False)
    with pytest.raises(DataError) as err:
        load_nmnist("test", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "NMNIST" / "Test" / "<digit 0-9>" / "*.bin") in msg and "--data-dir" in msg
    with pytest.raises(DataError, match="shd_train.h5"):
        load_shd("train", tmp_path)
    with pytest.raises(DataError, match="ibmGestureTest"):
        load_dvsgesture("test", tmp_path)
    with pytest.raises(DataError, match="no data directory"):
        load_events("nmnist", "train", None)
    (tmp_path / "NMNIST" / "Train" / "4").mkdir(parents=True)  # folders but no files
    with pytest.raises(DataError, match="no <digit>/\\*.bin"):
        load_nmnist("train", tmp_path)


def _write_shd(path: Path, times: list[list[float]], units: list[list[int]], labels: list[int]) -> None:
    """An HDF5 file in the published SHD layout: ragged times (s) and uint16 units, labels, extra/keys."""
    h5py = pytest.importorskip("h5py", reason="SHD files are HDF5; install the 'neuromorphic' extra")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(np.float32))
        u = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (ti, ui) in enumerate(zip(times, units, strict=True)):
            t[i], u[i] = np.asarray(ti, np.float32), np.asarray(ui, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint16))
        f.create_dataset("extra/keys", data=[f"k{i}".encode() for i in range(20)])


def test_shd_reader_and_framing(tmp_path: Path) -> None:
    _write_shd(tmp_path / "SHD" / "shd_test.h5", [[0.0, 0.7, 0.7], [1.3999]], [[0, 699, 699], [12]], [19, 4])
    data = load_shd("test", tmp_path)
    assert data.labels.tolist() == [19, 4] and data.classes[19] == "k19"
    # float32 0.7 s is 0.699999988 s: rounded, not truncated, to whole microseconds.
    assert data.events[0]["t"].tolist() == [0, 700_000, 700_000]
    assert data.events[0]["x"].tolist() == [0, 699, 699] and data.events[1]["t"].tolist() == [1_399_900]
    frames = data.frames(2)  # two 700 ms frames over 1.4 s
    assert frames.shape == (2, 2, 700)
    assert frames[0].nonzero().tolist() == [[0, 0], [1, 699]] and float(frames[0][1, 699]) == 2
    assert frames[1].nonzero().tolist() == [[1, 12]]


def test_dvsgesture_reader(tmp_path: Path) -> None:
    folder = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_fluorescent"
    folder.mkdir(parents=True)
    np.save(folder / "10.npy", np.array([[127, 0, 1, 2.5], [3, 4, 0, 5999]]))  # x, y, p, t in ms
    np.save(folder / "2.npy", np.array([[1, 2, 0, 0]], dtype=np.int64))
    data = load_dvsgesture("train", tmp_path)
    assert data.labels.tolist() == [10, 2] and data.classes[10] == "other_gestures"
    assert data.events[0].tolist() == [(127, 0, 2500, 1), (3, 4, 5_999_000, 0)]
    frames = data.frames(3)  # 2 s frames over 6 s, [p, y, x]
    assert frames.shape == (2, 3, 2, 128, 128)
    assert frames[0].nonzero().tolist() == [[0, 1, 0, 127], [2, 0, 4, 3]]


def test_status_rows(nmnist_dir: Path) -> None:
    rows = {(r["name"], r["split"]): r for r in neuromorphic_status(nmnist_dir)}
    assert rows[("nmnist", "train")]["available"] and "NMNIST" in str(rows[("nmnist", "train")]["path"])
    assert not rows[("shd", "test")]["available"] and "shd_test.h5" in str(rows[("shd", "test")]["reason"])


def test_config_accepts_neuromorphic_datasets_on_the_sync_engine() -> None:
    assert TrainConfig(dataset="nmnist").dataset == "nmnist"
    with pytest.raises(ConfigError, match="sync"):
        TrainConfig(dataset="shd", engine="async")


def test_train_nmnist_end_to_end(nmnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    args = ["train", "--dataset", "nmnist", "--data-dir", str(nmnist_dir), "--num-steps", "4",
            "--architecture", "8", "--epochs", "1", "--batch-size", "2", "--no-progress", "--no-plots",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["config"]["dataset"] == "nmnist" and doc["config"]["num_steps"] == 4
    assert 0.0 <= doc["test"]["accuracy"] <= 1.0 and doc["test"]["spike_rate_hz"] >= 0
    assert main(["data", "--data-dir", str(nmnist_dir)]) == 0
    listing = capsys.readouterr().out
    assert "nmnist/train" in listing and "shd/test" in listing and "dvsgesture/train" in listing


def test_nmnist_reader_and_framing_match_tonic(nmnist_dir: Path) -> None:
    """Tonic's own N-MNIST decoder and ToFrame transform give the same events and frames as ours."""
    tonic = pytest.importorskip("tonic", reason="tonic not installed: pip install 'asyncsnn[tonic]'")
    from tonic.io import read_mnist_file

    files = sorted((nmnist_dir / "NMNIST" / "Train").glob("*/*.bin"))
    data = load_nmnist("train", nmnist_dir)
    assert [p.name for p in data.sources] == [p.name for p in files]
    for path, ours in zip(files, data.events):
        theirs = read_mnist_file(str(path), dtype=EVENT_DTYPE)
        assert np.array_equal(theirs, ours), path
    # ToFrame with a fixed time window: the bins of our framing over the same window (no events dropped
    # inside it; Tonic includes the last bin's right edge, so use events strictly inside the window)
    events = max(data.events, key=len)  # the real sample where it is present
    inside = events[events["t"] < 300_000]
    to_frame = tonic.transforms.ToFrame(
        sensor_size=(34, 34, 2), time_window=100_000, start_time=0, end_time=300_000
    )
    theirs = torch.from_numpy(np.asarray(to_frame(inside), dtype=np.float32))  # [T, P, H, W]
    ours = frame_events([inside], (34, 34, 2), 3, 300_000)[0]
    assert theirs.shape == ours.shape and torch.equal(theirs, ours)


def _write_dvsgesture_split(root: Path, split: str) -> None:
    folder = root / "DVSGesture" / split / "user02_led"
    folder.mkdir(parents=True)
    for label in (3, 7):
        t = np.linspace(0, 5999, 40)
        np.save(folder / f"{label}.npy", np.stack([t % 128, (t * 7) % 128, t % 2, t], 1).astype(np.int64))


@pytest.mark.parametrize("dataset", ["shd", "dvsgesture"])
def test_train_shd_and_dvsgesture_end_to_end(dataset: str, tmp_path: Path) -> None:
    """``asyncsnn train --dataset shd|dvsgesture`` runs from files in the published layouts."""
    data = tmp_path / "data"
    if dataset == "shd":
        for split in ("train", "test"):
            times = [[0.01 * k for k in range(20)], [0.5, 0.6]]
            _write_shd(data / "SHD" / f"shd_{split}.h5", times, [list(range(20)), [3, 4]], [2, 5])
    else:
        _write_dvsgesture_split(data, "ibmGestureTrain")
        _write_dvsgesture_split(data, "ibmGestureTest")
    out = tmp_path / "run"
    args = ["train", "--dataset", dataset, "--data-dir", str(data), "--num-steps", "4"]
    args += ["--architecture", "8", "--epochs", "1", "--batch-size", "2", "--no-progress", "--no-plots"]
    args += ["--out", str(out)]
    assert main(args) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["config"]["dataset"] == dataset and doc["epochs_completed"] == 1
    assert 0.0 <= doc["test"]["accuracy"] <= 1.0
    assert doc["test"]["spikes"] >= 0 and np.isfinite(doc["history"][0]["train"]["loss"])
