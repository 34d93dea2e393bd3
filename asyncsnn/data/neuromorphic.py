"""Neuromorphic datasets (N-MNIST, SHD, DVS Gesture) read from a local copy in Tonic's on-disk layout.

Nothing is downloaded. Under the data directory (argument or ``$ASYNCSNN_DATA``) each dataset sits in the
folder that ``tonic.datasets.<Class>(save_to=DIR)`` uses, so a copy made by Tonic is found as it is:

- N-MNIST: ``DIR/NMNIST/Train/<digit>/*.bin`` and ``DIR/NMNIST/Test/<digit>/*.bin`` (the unpacked
  ``Train.zip`` / ``Test.zip``; 40-bit binary events, see :mod:`asyncsnn.data.nmnist`).
- SHD: ``DIR/SHD/shd_train.h5`` and ``DIR/SHD/shd_test.h5`` (HDF5: ragged ``/spikes/times`` in seconds,
  ragged ``/spikes/units`` in 0..699, ``/labels``; optional ``/extra/keys`` class names). Needs ``h5py``.
- DVS Gesture: ``DIR/DVSGesture/ibmGestureTrain/<user>_<lighting>/<label>.npy`` and ``.../ibmGestureTest/...``
  (Tonic's preprocessed release: one ``[n, 4]`` array of columns x, y, p, t in ms per gesture).

Events are numpy structured arrays with :data:`~asyncsnn.data.events.EVENT_DTYPE` (x, y, t in µs, p); SHD
events use x = channel, y = 0, p = 0. :func:`frame_events` counts them into a fixed number of equal time bins
over a fixed duration, so every sample has the same ``T``; the result is sample-first ``[N, T, *frame]``
(:class:`~asyncsnn.data.packed.PackedFrames`). Engines take time-first ``[T, B, ...]``: convert batches with
the explicit adapters :func:`to_time_first` / :func:`to_batch_first` (never guessed from shapes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DataError
from ._common import check_num_steps
from .datasets import DATA_ENV, DIGITS, SPLITS, _check_name_split, resolve_data_dir
from .events import EVENT_DTYPE, NMNIST_SENSOR_SIZE, time_bins
from .nmnist import read_nmnist

if TYPE_CHECKING:
    from .packed import PackedFrames

SHD_CLASSES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "null", "eins", "zwei", "drei", "vier", "fuenf", "sechs", "sieben", "acht", "neun",
)  # fmt: skip
DVSGESTURE_CLASSES = (
    "hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
    "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
    "arm_roll", "air_drums", "air_guitar", "other_gestures",
)  # fmt: skip
MAX_COUNT = 255  # PackedFrames stores uint8 counts


@dataclass(frozen=True)
class NeuromorphicInfo:
    """Registry entry of a neuromorphic dataset.

    sensor_size is (width, height, polarities) as in Tonic; frame_shape the shape of one frame of counts;
    duration_us the fixed window framed from t = 0 (later events are dropped).
    """

    name: str
    title: str
    folder: str  # Tonic's folder under save_to: the dataset class name
    sensor_size: tuple[int, int, int]
    frame_shape: tuple[int, ...]
    duration_us: int
    classes: tuple[str, ...]
    url: str
    layout: str  # what a split looks like, "{split}" -> Train/Test or train/test


NEUROMORPHIC: dict[str, NeuromorphicInfo] = {
    "nmnist": NeuromorphicInfo(
        "nmnist", "N-MNIST", "NMNIST", NMNIST_SENSOR_SIZE, (2, 34, 34),
        # Three 100 ms saccades; recordings run a little past 300 ms (the real sample ends at 311 ms).
        320_000, DIGITS, "https://www.garrickorchard.com/datasets/n-mnist (Train.zip, Test.zip)",
        "NMNIST/{Split}/<digit 0-9>/*.bin",
    ),
    "shd": NeuromorphicInfo(
        "shd", "SHD (Spiking Heidelberg Digits)", "SHD", (700, 1, 1), (700,),
        # Digits last up to about 1.4 s.
        1_400_000, SHD_CLASSES, "https://zenkelab.org/datasets/ (shd_train.h5.zip, shd_test.h5.zip; unzip)",
        "SHD/shd_{split}.h5",
    ),
    "dvsgesture": NeuromorphicInfo(
        "dvsgesture", "DVS Gesture", "DVSGesture", (128, 128, 2), (2, 128, 128),
        # Gestures are recorded for about 6 s.
        6_000_000, DVSGESTURE_CLASSES,
        "https://www.neuromorphic-vision.com/public/downloads/ (ibmGestureTrain.tar.gz, ibmGestureTest.tar.gz"
        ")",
        "DVSGesture/ibmGesture{Split}/<user>_<lighting>/<label>.npy",
    ),
}  # fmt: skip


@dataclass(frozen=True, eq=False)  # eq=False: array fields have no boolean ==
class EventDataset:
    """One split of a neuromorphic dataset: a list of event arrays (EVENT_DTYPE) and int64 labels [N]."""

    name: str
    split: str
    events: list[np.ndarray]
    labels: torch.Tensor
    classes: tuple[str, ...]
    sources: list[Path]  # the file each sample came from (SHD: the one .h5 file, once per sample)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def info(self) -> NeuromorphicInfo:
        return NEUROMORPHIC[self.name]

    def __len__(self) -> int:
        return len(self.events)

    def frames(
        self, num_steps: int, duration_us: int | None = None, *, progress: bool = False
    ) -> PackedFrames:
        """Event counts ``[N, T, *frame_shape]``: ``num_steps`` bins over ``duration_us`` (default: the
        dataset's fixed duration). See :func:`frame_events`."""
        info = self.info
        return frame_events(
            self.events, info.sensor_size, num_steps, duration_us or info.duration_us, info.frame_shape,
            progress=progress,
        )  # fmt: skip


# ----- adapters ---------------------------------------------------------------------------------------


def to_time_first(x: torch.Tensor) -> torch.Tensor:
    """Batch-first ``[B, T, ...]`` (Tonic / NeuroBench loaders) -> time-first ``[T, B, ...]``; a view."""
    return _swap_leading(x, "[B, T, ...]")


def to_batch_first(x: torch.Tensor) -> torch.Tensor:
    """Time-first ``[T, B, ...]`` (asyncsnn engines) -> batch-first ``[B, T, ...]``; a view."""
    return _swap_leading(x, "[T, B, ...]")


def _swap_leading(x: torch.Tensor, expected: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a tensor {expected} with at least 2 dimensions, got {shape}")
    return x.transpose(0, 1)


# ----- framing ----------------------------------------------------------------------------------------


def frame_events(
    samples: Sequence[np.ndarray],
    sensor_size: tuple[int, int, int],
    num_steps: int,
    duration_us: int,
    frame_shape: Sequence[int] | None = None,
    *,
    progress: bool = False,
) -> PackedFrames:
    """Count each sample's events into ``num_steps`` equal bins of ``[0, duration_us)``: ``[N, T, *frame]``.

    Bin i covers ``[i, i + 1) * duration_us / T`` µs (integer binning shared with
    :func:`~asyncsnn.data.events.events_to_frames`, which gives the same counts per sample). Every sample
    gets the same ``T`` and bin width; events at ``t >= duration_us`` are dropped. A frame is ``(P, H, W)``
    of sensor_size ``(W, H, P)``, or ``frame_shape`` with the same number of elements in that order (SHD:
    ``(700,)``). Counts above 255 in one bin saturate at 255 (PackedFrames keeps uint8 counts).
    ValueError for events outside the sensor or negative timestamps.
    """
    from tqdm.auto import tqdm

    from .packed import PackedFrames

    T = check_num_steps(num_steps)
    W, H, P = (int(s) for s in sensor_size)
    shape = tuple(int(s) for s in frame_shape) if frame_shape is not None else (P, H, W)
    if int(np.prod(shape)) != W * H * P:
        raise ValueError(
            f"frame_shape {shape} does not hold the {W * H * P} pixels of sensor_size {sensor_size}"
        )
    if int(duration_us) != duration_us or duration_us < 1:
        raise ValueError(f"duration_us must be a positive integer, got {duration_us!r}")
    if len(samples) == 0:
        raise ValueError("frame_events: no samples")
    offsets, positions, counts = [0], [], []
    for events in tqdm(samples, desc="framing", leave=False, disable=None if progress else True):
        x, y, t, p = (events[f].astype(np.int64) for f in ("x", "y", "t", "p"))
        for name, v, size in (("x", x, W), ("y", y, H), ("p", p, P)):
            if v.size and (v.min() < 0 or v.max() >= size):
                raise ValueError(
                    f"event {name} spans [{v.min()}, {v.max()}], outside the sensor's [0, {size - 1}]"
                )
        if t.size and t.min() < 0:
            raise ValueError(f"event timestamps must be >= 0 us, got {t.min()}")
        keep = t < duration_us
        flat = ((time_bins(t[keep], T, int(duration_us)) * P + p[keep]) * H + y[keep]) * W + x[keep]
        # np.unique sorts: positions ascend frame-major within a sample, as PackedFrames.events expects.
        pos, cnt = np.unique(flat, return_counts=True)
        offsets.append(offsets[-1] + pos.size)
        positions.append(pos.astype(np.int32))
        counts.append(np.minimum(cnt, MAX_COUNT).astype(np.uint8))
    return PackedFrames(
        torch.tensor(offsets, dtype=torch.int64),
        torch.from_numpy(np.concatenate(positions)),
        torch.from_numpy(np.concatenate(counts)),
        (T, *shape),
    )


# ----- readers ----------------------------------------------------------------------------------------


def _check(name: str, split: str) -> NeuromorphicInfo:
    return _check_name_split(name, split, NEUROMORPHIC)


def _layout(info: NeuromorphicInfo, split: str) -> str:
    return info.layout.format(split=split, Split=split.capitalize())


def _missing(info: NeuromorphicInfo, split: str, root: Path | None, what: str) -> DataError:
    expected = _layout(info, split)
    where = (
        f"no data directory given; pass --data-dir or set {DATA_ENV} to a folder holding {expected}"
        if root is None
        else f"{what}; expected {root / expected}"
    )
    return DataError(
        f"{info.title} {split} split not found: {where}. Get the files from {info.url} and unpack them into "
        f"DIR/{info.folder}/ (the layout tonic.datasets.{info.folder}(save_to=DIR) uses), then pass "
        f"--data-dir DIR or set {DATA_ENV}."
    )


def _split_dir(info: NeuromorphicInfo, split: str, root: Path | None) -> Path:
    """The folder of a split (N-MNIST, DVS Gesture), or DataError."""
    if root is None:
        raise _missing(info, split, None, "")
    sub = {"nmnist": split.capitalize(), "dvsgesture": f"ibmGesture{split.capitalize()}"}[info.name]
    folder = root / info.folder / sub
    if not folder.is_dir():
        raise _missing(info, split, root, f"{folder} does not exist")
    return folder


def _nmnist_files(split: str, root: Path | None) -> list[tuple[Path, int]]:
    info = NEUROMORPHIC["nmnist"]
    folder = _split_dir(info, split, root)
    files = [(f, int(d)) for d in DIGITS for f in sorted((folder / d).glob("*.bin"))]
    if not files:
        raise _missing(info, split, root, f"{folder} has no <digit>/*.bin files")
    return files


def _dvsgesture_files(split: str, root: Path | None) -> list[tuple[Path, int]]:
    info = NEUROMORPHIC["dvsgesture"]
    folder = _split_dir(info, split, root)
    files = sorted(folder.glob("*/*.npy"))
    if not files:
        raise _missing(info, split, root, f"{folder} has no <recording>/<label>.npy files")
    labelled = []
    for f in files:
        if not f.stem.isdigit() or int(f.stem) >= len(info.classes):
            raise DataError(
                f"{f}: DVS Gesture files are named <label>.npy with label 0-10; is it the right file?"
            )
        labelled.append((f, int(f.stem)))
    return labelled


def _shd_file(split: str, root: Path | None) -> Path:
    info = NEUROMORPHIC["shd"]
    if root is None:
        raise _missing(info, split, None, "")
    path = root / _layout(info, split)
    if not path.is_file():
        raise _missing(info, split, root, f"{path} does not exist")
    return path


def _read_files(name: str, split: str, files: list[tuple[Path, int]], read: Callable) -> EventDataset:
    info = NEUROMORPHIC[name]
    events = [read(f) for f, _ in files]
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return EventDataset(name, split, events, labels, info.classes, [f for f, _ in files])


def load_nmnist(split: str, data_dir: str | Path | None = None) -> EventDataset:
    """N-MNIST events from ``DIR/NMNIST/{Train,Test}/<digit>/*.bin``; label = the digit folder.

    Samples are ordered by digit, then file name. DataError naming the expected layout if missing.
    """
    _check("nmnist", split)
    return _read_files("nmnist", split, _nmnist_files(split, resolve_data_dir(data_dir)), read_nmnist)


def read_dvsgesture(path: str | Path) -> np.ndarray:
    """One DVS Gesture sample (Tonic release): ``[n, 4]`` columns x, y, p, t in ms -> EVENT_DTYPE, t in µs."""
    path = Path(path)
    try:
        raw = np.load(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if raw.ndim != 2 or raw.shape[1] != 4:
        raise DataError(f"{path} should hold an [n, 4] array (x, y, p, t), found shape {raw.shape}")
    events = np.empty(raw.shape[0], dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"] = raw[:, 0], raw[:, 1], raw[:, 2]
    # Tonic multiplies t by 1000 (ms -> µs); rounding keeps float files exact to the µs.
    events["t"] = np.rint(raw[:, 3].astype(np.float64) * 1000)
    return events


def load_dvsgesture(split: str, data_dir: str | Path | None = None) -> EventDataset:
    """DVS Gesture events from ``DIR/DVSGesture/ibmGesture{Train,Test}/<recording>/<label>.npy``.

    Samples are ordered by recording folder, then label. DataError naming the expected layout if missing.
    """
    _check("dvsgesture", split)
    return _read_files(
        "dvsgesture", split, _dvsgesture_files(split, resolve_data_dir(data_dir)), read_dvsgesture
    )


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise DataError(
            "reading SHD needs h5py: pip install 'asyncsnn[neuromorphic]' (or pip install h5py)"
        ) from None
    return h5py


def load_shd(split: str, data_dir: str | Path | None = None) -> EventDataset:
    """SHD spikes from ``DIR/SHD/shd_{train,test}.h5`` as events x = channel (0..699), t in µs, y = p = 0.

    Spike times (seconds) are rounded to whole microseconds. Class names come from ``/extra/keys`` when the
    file has them. DataError naming the expected file if missing or not in the SHD layout.
    """
    info = _check("shd", split)
    path = _shd_file(split, resolve_data_dir(data_dir))
    h5py = _import_h5py()
    try:
        with h5py.File(path, "r") as f:
            times, units, labels = f["spikes/times"][:], f["spikes/units"][:], f["labels"][:]
            keys = (
                [k.decode() if isinstance(k, bytes) else str(k) for k in f["extra/keys"][:]]
                if "extra/keys" in f
                else []
            )
    except KeyError as exc:
        raise DataError(
            f"{path} lacks {exc}; an SHD file has /spikes/times, /spikes/units and /labels"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read {path} as HDF5 ({exc}); delete it and unpack it again") from exc
    if not len(times) == len(units) == len(labels):
        raise DataError(
            f"{path}: {len(times)} spike-time, {len(units)} unit and {len(labels)} label rows differ"
        )
    events = []
    for t_s, unit in zip(times, units, strict=True):
        e = np.zeros(len(t_s), dtype=EVENT_DTYPE)
        e["x"] = unit
        e["t"] = np.rint(np.asarray(t_s, dtype=np.float64) * 1e6)
        events.append(e)
    classes = tuple(keys) if len(keys) == len(info.classes) else info.classes
    return EventDataset(
        "shd", split, events, torch.from_numpy(labels.astype(np.int64)), classes, [path] * len(events)
    )


LOADERS: dict[str, Callable[[str, str | Path | None], EventDataset]] = {
    "nmnist": load_nmnist,
    "shd": load_shd,
    "dvsgesture": load_dvsgesture,
}


def load_events(name: str, split: str, data_dir: str | Path | None = None) -> EventDataset:
    """One split of ``name`` ("nmnist", "shd" or "dvsgesture") as events and labels."""
    _check(name, split)
    return LOADERS[name](split, data_dir)


def neuromorphic_status(data_dir: str | Path | None = None) -> list[dict[str, object]]:
    """Rows as in :func:`~asyncsnn.data.datasets.dataset_status` for ``asyncsnn data`` (files not decoded)."""
    root = resolve_data_dir(data_dir)
    rows: list[dict[str, object]] = []
    for name in NEUROMORPHIC:
        for split in SPLITS:
            row: dict[str, object] = {"name": name, "split": split}
            try:
                if name == "shd":
                    where = str(_shd_file(split, root))
                else:
                    files = (_nmnist_files if name == "nmnist" else _dvsgesture_files)(split, root)
                    where = f"{len(files)} files in {files[0][0].parents[1]}"
                row.update(available=True, path=where, reason="")
            except DataError as err:
                row.update(available=False, path="", reason=str(err).split(". Get the files")[0])
            rows.append(row)
    return rows
