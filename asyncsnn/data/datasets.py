"""Image classification datasets: the bundled MNIST split, MNIST and Fashion-MNIST.

Files are found in a data directory given by argument or by the ``ASYNCSNN_DATA``
environment variable; nothing is downloaded. The "builtin" dataset ships with the
package (the real MNIST test split) and works offline.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from ..errors import DataError
from .idx import read_idx

DATA_ENV = "ASYNCSNN_DATA"
SPLITS = ("train", "test")
DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# Split -> (images file, labels file), without the optional ".gz".
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
Info = TypeVar("Info")  # a registry entry: DatasetInfo or NeuromorphicInfo
# Every 5th image of the bundled t10k file (i % 5 == 4) is the builtin test split.
BUILTIN_TEST_EVERY = 5


@dataclass(frozen=True)
class DatasetInfo:
    """Registry entry: display title, class names, where to download, folder aliases."""

    name: str
    title: str
    classes: tuple[str, ...]
    url: str
    # Extra subfolders tried after <data_dir>/<name>/ (torchvision's layout).
    aliases: tuple[str, ...] = ()


DATASETS: dict[str, DatasetInfo] = {
    "builtin": DatasetInfo(
        "builtin", "MNIST test split bundled with asyncsnn (8,000 train / 2,000 test)",
        DIGITS, "(bundled, no download needed)",
    ),
    "mnist": DatasetInfo(
        "mnist", "MNIST", DIGITS,
        "https://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)",
        ("MNIST/raw",),
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", "Fashion-MNIST", FASHION_CLASSES,
        "https://github.com/zalandoresearch/fashion-mnist",
        ("FashionMNIST/raw",),
    ),
}  # fmt: skip


@dataclass(frozen=True, eq=False)  # eq=False: tensor fields have no boolean ==
class ImageDataset:
    """Grey-level images with integer labels.

    images: uint8 [N, H, W] (0 = black, 255 = white); labels: int64 [N] in [0, n_classes).
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    n_classes: int
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 3:
            raise ValueError(
                f"images must be uint8 [N, H, W], got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(f"labels must be int64 [N], got {self.labels.dtype} {tuple(self.labels.shape)}")
        n = self.images.shape[0]
        if n == 0:
            raise ValueError(f"empty dataset: {self.name}/{self.split} has no images")
        if self.labels.shape[0] != n:
            raise ValueError(f"{n} images but {self.labels.shape[0]} labels")
        if len(self.classes) != self.n_classes:
            raise ValueError(f"{len(self.classes)} class names for n_classes={self.n_classes}")
        lo, hi = int(self.labels.min()), int(self.labels.max())
        if lo < 0 or hi >= self.n_classes:
            raise ValueError(f"labels span [{lo}, {hi}], allowed [0, {self.n_classes - 1}]")

    def __len__(self) -> int:
        return int(self.images.shape[0])


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """The data directory: the argument if given, else $ASYNCSNN_DATA, else None."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV, "")
    return Path(env).expanduser() if env else None


def _check_name_split(name: str, split: str, registry: Mapping[str, Info] = DATASETS) -> Info:
    """The registry entry of ``name``; ValueError for an unknown name or split."""
    if name not in registry:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(registry)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    return registry[name]


def _candidate_dirs(root: Path, info: DatasetInfo) -> list[Path]:
    return [root / info.name, *(root / a for a in info.aliases), root]


def _find_file(folder: Path, stem: str) -> Path | None:
    for fname in (stem, stem + ".gz"):
        if (folder / fname).is_file():
            return folder / fname
    return None


def _not_found(info: DatasetInfo, split: str, root: Path | None, missing: list[str]) -> DataError:
    names = ", ".join(f"{m}(.gz)" for m in missing)
    if root is None:
        where = (
            f"no data directory given. Pass --data-dir or set {DATA_ENV} to a folder "
            f"holding {info.name}/ with {names}"
        )
    else:
        dirs = " or ".join(str(d) for d in _candidate_dirs(root, info))
        where = f"expected {names} in {dirs}"
    return DataError(
        f"{info.title} {split} split not found: {where}. Download the files from "
        f"{info.url} and put them there, or pass --data-dir / set {DATA_ENV}. "
        f"The 'builtin' dataset works offline."
    )


def _search(info: DatasetInfo, split: str, root: Path) -> tuple[list[Path | None], list[str]]:
    """Images and labels files of a split, and the names still missing.

    Both files must come from the same folder, so that two half-filled folders are
    never mixed; if no folder has both, the first folder with either one is reported.
    """
    stems = _FILES[split]
    partial: list[Path | None] | None = None
    for folder in _candidate_dirs(root, info):
        found = [_find_file(folder, s) for s in stems]
        if all(found):
            return found, []
        if partial is None and any(found):
            partial = found
    found = partial or [None] * len(stems)
    return found, [s for s, f in zip(stems, found, strict=True) if f is None]


def _locate(info: DatasetInfo, split: str, root: Path | None) -> tuple[Path, Path]:
    """Paths of the images and labels files of a split, or DataError naming what is missing."""
    if root is None:
        raise _not_found(info, split, None, list(_FILES[split]))
    found, missing = _search(info, split, root)
    if missing:
        raise _not_found(info, split, root, missing)
    return found[0], found[1]  # type: ignore[return-value]


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path} should hold uint8 images [N, H, W], found {images.dtype} "
            f"{images.shape}; is it the right file?"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{labels_path} should hold uint8 labels [N], found {labels.dtype} {labels.shape}; "
            "is it the right file?"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels; one of them is from another dataset or damaged"
        )
    return images, labels


@functools.lru_cache(maxsize=1)
def _builtin_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded bundled t10k files; cached because gunzip + decode takes ~0.1 s."""
    folder = importlib.resources.files(__package__) / "builtin"
    stems = _FILES["test"]
    # as_file gives a real path even when the package is installed as a zip.
    with (
        importlib.resources.as_file(folder / f"{stems[0]}.gz") as ip,
        importlib.resources.as_file(folder / f"{stems[1]}.gz") as lp,
    ):
        images, labels = _read_pair(Path(ip), Path(lp))
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def builtin_split_mask(n: int, split: str) -> torch.Tensor:
    """Bool [n] mask of the builtin split: test = indices i with i % 5 == 4, train = the rest.

    The MNIST test file is ordered (its first 5,000 digits come from the cleaner
    Census-employee writers, the rest from students), so a contiguous cut would give
    train and test different writer populations; interleaving mixes both into each.
    """
    is_test = torch.arange(n) % BUILTIN_TEST_EVERY == BUILTIN_TEST_EVERY - 1
    return is_test if split == "test" else ~is_test


def load_dataset(name: str, split: str, data_dir: str | Path | None = None) -> ImageDataset:
    """Load a dataset split as uint8 images [N, H, W] and int64 labels [N].

    name: "builtin" (bundled, offline; 8,000 train / 2,000 test), "mnist" or
    "fashion-mnist" (read from ``<data_dir>/<name>/`` or ``<data_dir>/``, with data_dir
    from the argument or $ASYNCSNN_DATA). split: "train" or "test".
    """
    info = _check_name_split(name, split)
    if name == "builtin":
        all_images, all_labels = _builtin_arrays()
        mask = builtin_split_mask(all_images.shape[0], split)
        # Boolean indexing copies, so callers cannot mutate the cached tensors.
        images, labels = all_images[mask], all_labels[mask]
    else:
        images_path, labels_path = _locate(info, split, resolve_data_dir(data_dir))
        np_images, np_labels = _read_pair(images_path, labels_path)
        images = torch.from_numpy(np_images)
        labels = torch.from_numpy(np_labels.astype(np.int64))
        if int(labels.max()) >= len(info.classes):
            raise DataError(
                f"{labels_path} has label {int(labels.max())} but {info.title} has "
                f"{len(info.classes)} classes; is it the right file?"
            )
    return ImageDataset(name, split, images, labels, len(info.classes), info.classes)


def dataset_status(data_dir: str | Path | None = None) -> list[dict[str, object]]:
    """One row per (dataset, split) for ``asyncsnn data``: what is available and where.

    Keys: name, split, available (bool), path (str: the images file, or "" if missing),
    reason (str: "" if available, else what is missing and where it was looked for).
    Only checks that the files exist; it does not decode them.
    """
    root = resolve_data_dir(data_dir)
    rows: list[dict[str, object]] = []
    for name, info in DATASETS.items():
        for split in SPLITS:
            row: dict[str, object] = {"name": name, "split": split}
            if name == "builtin":
                n_test = 10_000 // BUILTIN_TEST_EVERY
                n = n_test if split == "test" else 10_000 - n_test
                where = f"(bundled with asyncsnn: {n} MNIST digits, works offline)"
                row.update(available=True, path=where, reason="")
            elif root is None:
                reason = f"no data directory: pass --data-dir or set {DATA_ENV}"
                row.update(available=False, path="", reason=reason)
            else:
                found, missing = _search(info, split, root)
                if missing:
                    dirs = " or ".join(str(d) for d in _candidate_dirs(root, info))
                    names = ", ".join(f"{m}(.gz)" for m in missing)
                    row.update(available=False, path="", reason=f"missing {names} in {dirs}")
                else:
                    row.update(available=True, path=str(found[0]), reason="")
            rows.append(row)
    return rows
