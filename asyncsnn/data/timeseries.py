"""UCR/UEA time-series classification files (``.ts``) and the JapaneseVowels dataset.

A ``.ts`` file (the sktime/aeon text format) has ``@`` header lines, then ``@data`` and one
series per line: channels separated by ``:``, values by ``,``, the class label last.
Series are returned as float32 arrays [length, channels]; lengths may differ.

JapaneseVowels (UCI; Kudo, Toyama & Shimbo 1999): 9 speakers, 12 LPC cepstrum channels,
series of 7 to 29 frames, 270 train / 370 test. Files are looked for in
``<data_dir>/japanese-vowels/`` and then in an installed ``aeon`` package;
:func:`fetch_japanese_vowels` copies them out of the aeon wheel without installing it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .datasets import DATA_ENV, SPLITS, resolve_data_dir

JAPANESE_VOWELS_DIR = "japanese-vowels"
# Split -> (file name, number of series); 12 channels, 9 classes "1".."9" in both splits.
JAPANESE_VOWELS_FILES = {
    "train": ("JapaneseVowels_TRAIN.ts", 270),
    "test": ("JapaneseVowels_TEST.ts", 370),
}
JAPANESE_VOWELS_CHANNELS = 12
JAPANESE_VOWELS_CLASSES = 9
AEON_VERSION = "1.6.0"
# Where the files lie inside the aeon package (and, under "aeon/", inside its wheel).
_AEON_SUBDIR = ("datasets", "data", "JapaneseVowels")
_REFETCH = "Is it the right, complete file? Fetch it again: fetch_japanese_vowels(data_dir, force=True)"
_BOOL_KEYS = ("timestamps", "missing", "univariate", "equallength")


def _fail(path: Path, line_no: int, what: str) -> DataError:
    return DataError(f"{path}, line {line_no}: {what}")


def _parse_bool(path: Path, line_no: int, key: str, words: list[str]) -> bool:
    if len(words) != 1 or words[0].lower() not in ("true", "false"):
        raise _fail(path, line_no, f"bad header: @{key} takes true or false, got {' '.join(words)!r}")
    return words[0].lower() == "true"


def _parse_int(path: Path, line_no: int, key: str, words: list[str]) -> int:
    if len(words) != 1 or not words[0].isdigit() or int(words[0]) < 1:
        raise _fail(path, line_no, f"bad header: @{key} takes an integer >= 1, got {' '.join(words)!r}")
    return int(words[0])


def _parse_channel(path: Path, line_no: int, channel: int, text: str) -> np.ndarray:
    words = text.split(",")
    try:
        x = np.array([float(w) for w in words], dtype=np.float64)
    except ValueError:
        bad = next(w for w in words if not _is_float(w))
        if bad.strip() == "?":
            raise _fail(
                path,
                line_no,
                f"channel {channel} has a missing value '?'; read_ts does not impute, "
                "fill or drop the series first (e.g. with aeon's imputers)",
            ) from None
        raise _fail(path, line_no, f"channel {channel} has a non-numeric value {bad.strip()!r}") from None
    if not np.isfinite(x).all():
        raise _fail(path, line_no, f"channel {channel} has a NaN or infinite value")
    return x


def _is_float(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str], tuple[str, ...]]:
    """Read a UCR/UEA ``.ts`` classification file.

    Returns (values, labels, class_names): values[i] is float32 [length_i, channels],
    labels[i] the class label string of series i, class_names the labels declared by
    ``@classLabel true c1 c2 ...`` in that order. Header keys are case-insensitive;
    ``#`` and ``%`` lines are comments. Unequal lengths are allowed unless the header says
    ``@equalLength true``. DataError (naming the file and line) for a missing file, a bad
    or missing header, a wrong channel count, missing (``?``) or non-numeric values and
    labels not declared in the header. Timestamped and regression files are rejected.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"time-series file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a UTF-8 text .ts file ({exc}); is it the right file?") from None

    header: dict[str, object] = {}
    class_names: tuple[str, ...] | None = None
    in_data = False
    values: list[np.ndarray] = []
    labels: list[str] = []
    channels: int | None = None
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#%":
            continue
        if not in_data:
            if line[0] != "@":
                raise _fail(path, line_no, "data before @data; the header must end with an @data line")
            if len(line) == 1 or line[1].isspace():
                raise _fail(path, line_no, "bad header: '@' must be followed by a key, e.g. @data")
            key, *words = line[1:].split()
            key = key.lower()
            if key == "data":
                if words:
                    raise _fail(path, line_no, "bad header: @data takes no value")
                if class_names is None:
                    raise _fail(
                        path, line_no, "no '@classLabel true ...' line before @data; need class labels"
                    )
                if header.get("timestamps"):
                    raise _fail(path, line_no, "timestamped series (@timeStamps true) are not supported")
                if header.get("univariate"):
                    if header.get("dimensions", 1) != 1:
                        raise _fail(path, line_no, "bad header: @univariate true but @dimensions > 1")
                    channels = 1
                else:
                    channels = header.get("dimensions")  # type: ignore[assignment]
                in_data = True
            elif key == "problemname":
                header[key] = " ".join(words)
            elif key in _BOOL_KEYS:
                header[key] = _parse_bool(path, line_no, key, words)
            elif key in ("dimensions", "dimension", "serieslength"):
                header["dimensions" if key.startswith("dimension") else key] = _parse_int(
                    path, line_no, key, words
                )
            elif key == "classlabel":
                if not words or words[0].lower() not in ("true", "false"):
                    raise _fail(path, line_no, "bad header: expected '@classLabel true c1 c2 ...'")
                if words[0].lower() == "false" or len(words) == 1:
                    raise _fail(
                        path, line_no, "no class labels declared; read_ts reads classification files only"
                    )
                if len(set(words[1:])) != len(words) - 1:
                    raise _fail(path, line_no, f"bad header: repeated class label in {' '.join(words[1:])}")
                class_names = tuple(words[1:])
            elif key == "targetlabel":
                raise _fail(path, line_no, "regression files (@targetLabel) are not supported")
            else:
                raise _fail(path, line_no, f"bad header: unknown key @{key}")
            continue

        *parts, label = line.split(":")
        if channels is not None and len(parts) != channels:
            raise _fail(
                path, line_no, f"expected {channels} channel(s) and a label, found {len(parts)} channel(s)"
            )
        if not parts:
            raise _fail(path, line_no, "expected channels separated by ':' followed by the class label")
        channels = len(parts)
        label = label.strip()
        assert class_names is not None
        if label not in class_names:
            raise _fail(path, line_no, f"label {label!r} is not in @classLabel {' '.join(class_names)}")
        series = [_parse_channel(path, line_no, c, p) for c, p in enumerate(parts)]
        lengths = {len(s) for s in series}
        if len(lengths) != 1:
            raise _fail(path, line_no, f"channels have different lengths {sorted(lengths)}")
        values.append(np.stack(series, axis=1).astype(np.float32))
        labels.append(label)

    if not in_data:
        raise DataError(f"{path}: no @data line; is it a .ts file?")
    if not values:
        raise DataError(f"{path}: no series after @data")
    found_lengths = sorted({v.shape[0] for v in values})
    if header.get("equallength") and len(found_lengths) > 1:
        raise DataError(
            f"{path}: @equalLength true but lengths range from {found_lengths[0]} to {found_lengths[-1]}"
        )
    if header.get("equallength") and "serieslength" in header and found_lengths[0] != header["serieslength"]:
        raise DataError(f"{path}: @seriesLength {header['serieslength']} but series have {found_lengths[0]}")
    assert class_names is not None
    return values, labels, class_names


def pad_series(series: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack series [length_i, C] into zero-padded float32 [N, T_max, C] and int64 lengths [N]."""
    if not series:
        raise ValueError("pad_series needs at least one series")
    channels = {s.shape[1] for s in series}
    if len(channels) != 1 or any(s.ndim != 2 for s in series):
        raise ValueError(f"series must all be [length, C] with one C, got C in {sorted(channels)}")
    lengths = torch.tensor([s.shape[0] for s in series], dtype=torch.int64)
    values = torch.zeros(len(series), int(lengths.max()), channels.pop(), dtype=torch.float32)
    for i, s in enumerate(series):
        values[i, : s.shape[0]] = torch.from_numpy(np.asarray(s, dtype=np.float32))
    return values, lengths


@dataclass(frozen=True, eq=False)  # eq=False: tensor fields have no boolean ==
class SeriesDataset:
    """Labelled multichannel series of unequal length, zero-padded.

    values: float32 [N, T_max, C] (steps t >= lengths[i] are 0); lengths: int64 [N] in
    [1, T_max]; labels: int64 [N] indexing class_names.
    """

    name: str
    split: str
    values: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        v, n = self.values, self.values.shape[0] if self.values.dim() == 3 else -1
        if v.dtype != torch.float32 or v.dim() != 3 or min(v.shape) == 0:
            raise ValueError(
                f"values must be float32 [N, T, C] with sizes >= 1, got {v.dtype} {tuple(v.shape)}"
            )
        for field, t in (("lengths", self.lengths), ("labels", self.labels)):
            if t.dtype != torch.int64 or tuple(t.shape) != (n,):
                raise ValueError(f"{field} must be int64 [{n}], got {t.dtype} {tuple(t.shape)}")
        if int(self.lengths.min()) < 1 or int(self.lengths.max()) > v.shape[1]:
            raise ValueError(f"lengths must lie in [1, {v.shape[1]}]")
        if int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_names):
            raise ValueError(f"labels must lie in [0, {len(self.class_names) - 1}]")

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.values.shape[2])


def _aeon_data_dir() -> Path | None:
    """aeon's JapaneseVowels folder if aeon is installed; found without importing aeon."""
    try:
        spec = importlib.util.find_spec("aeon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location).joinpath(*_AEON_SUBDIR)
        if folder.is_dir():
            return folder
    return None


def _candidate_dirs(root: Path | None) -> list[Path]:
    dirs = [] if root is None else [root / JAPANESE_VOWELS_DIR, root / "JapaneseVowels"]
    aeon = _aeon_data_dir()
    return dirs + ([aeon] if aeon is not None else [])


def _check_japanese_vowels(
    source: str, split: str, values: list[np.ndarray], class_names: tuple[str, ...], fix: str
) -> None:
    expected = JAPANESE_VOWELS_FILES[split][1]
    channels = {v.shape[1] for v in values}
    if (
        len(values) != expected
        or channels != {JAPANESE_VOWELS_CHANNELS}
        or len(class_names) != JAPANESE_VOWELS_CLASSES
    ):
        raise DataError(
            f"{source} holds {len(values)} series, {sorted(channels)} channel(s), {len(class_names)} "
            f"classes; JapaneseVowels {split} has {expected} series, {JAPANESE_VOWELS_CHANNELS} channels, "
            f"{JAPANESE_VOWELS_CLASSES} classes. {fix}"
        )


def load_japanese_vowels(split: str, data_dir: str | Path | None = None) -> SeriesDataset:
    """JapaneseVowels split as a SeriesDataset: values [N, 29, 12], lengths 7..29, 9 classes.

    split: "train" (270 series) or "test" (370). Looks in ``<data_dir>/japanese-vowels/``
    (data_dir from the argument or $ASYNCSNN_DATA), then in an installed aeon package.
    Labels "1".."9" (the speaker) become 0..8. One time step is one 12-channel frame of
    LPC cepstrum coefficients; the values are not standardised (see channel_stats).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    fname = JAPANESE_VOWELS_FILES[split][0]
    root = resolve_data_dir(data_dir)
    dirs = _candidate_dirs(root)
    path = next((d / fname for d in dirs if (d / fname).is_file()), None)
    if path is None:
        where = (
            f"looked in {' and '.join(str(d) for d in dirs)}"
            if dirs
            else f"no data directory given (pass data_dir or set {DATA_ENV}) and aeon is not installed"
        )
        raise DataError(
            f"JapaneseVowels {split} split not found: {fname} is missing; {where}. "
            f"Run asyncsnn.data.fetch_japanese_vowels(data_dir) (downloads the aeon=={AEON_VERSION} wheel "
            f"with pip, or pass wheel=<local .whl>) to put it in <data_dir>/{JAPANESE_VOWELS_DIR}/, "
            "or install aeon"
        )
    series, label_names, class_names = read_ts(path)
    _check_japanese_vowels(str(path), split, series, class_names, _REFETCH)
    values, lengths = pad_series(series)
    index = {c: i for i, c in enumerate(class_names)}
    labels = torch.tensor([index[c] for c in label_names], dtype=torch.int64)
    return SeriesDataset("japanese-vowels", split, values, lengths, labels, class_names)


def _download_wheel(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", f"aeon=={AEON_VERSION}", "--no-deps"]
    cmd += ["--only-binary=:all:", "-d", str(folder)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"could not run {' '.join(cmd)}: {exc}") from None
    wheels = sorted(folder.glob("aeon-*.whl"))
    if done.returncode != 0 or not wheels:
        tail = (done.stderr or done.stdout or "").strip()[-800:]
        raise DataError(
            f"downloading the aeon=={AEON_VERSION} wheel failed ({' '.join(cmd)}):\n{tail}\n"
            "Without network access, download aeon-*.whl elsewhere and pass it as wheel=<path>"
        )
    return wheels[0]


def fetch_japanese_vowels(
    data_dir: str | Path | None = None, *, wheel: str | Path | None = None, force: bool = False
) -> Path:
    """Put JapaneseVowels_TRAIN.ts and _TEST.ts into ``<data_dir>/japanese-vowels/``; return that folder.

    The files are extracted from the aeon wheel (a zip) without installing aeon: ``wheel``
    names a local ``aeon-*.whl``; without it ``pip download aeon==1.6.0 --no-deps`` fetches
    one into a temporary folder (needs network). Both files are parsed and checked
    (270 / 370 series, 12 channels, 9 classes) before being moved into place atomically.
    If both files are already there and valid, nothing is done unless force=True.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        raise DataError(f"no data directory given: pass data_dir or set {DATA_ENV}")
    folder = root / JAPANESE_VOWELS_DIR
    targets = {split: folder / fname for split, (fname, _) in JAPANESE_VOWELS_FILES.items()}
    if not force and all(p.is_file() for p in targets.values()):
        for split, path in targets.items():
            series, _, class_names = read_ts(path)
            _check_japanese_vowels(str(path), split, series, class_names, _REFETCH)
        return folder

    folder.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    with tempfile.TemporaryDirectory() as tmp:
        wheel_path = Path(wheel) if wheel is not None else _download_wheel(Path(tmp))
        if not wheel_path.is_file():
            raise DataError(f"aeon wheel not found: {wheel_path}")
        staged: dict[str, Path] = {}
        try:
            try:
                with zipfile.ZipFile(wheel_path) as zf:
                    for split, target in targets.items():
                        member = "/".join(("aeon", *_AEON_SUBDIR, target.name))
                        try:
                            data = zf.read(member)
                        except KeyError:
                            raise DataError(
                                f"{wheel_path} has no {member}; is it an aeon wheel "
                                f"(aeon=={AEON_VERSION} is known to work)?"
                            ) from None
                        # Same folder as the target, so os.replace is an atomic rename.
                        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
                        staged[split] = Path(name)
                        with os.fdopen(fd, "wb") as f:
                            f.write(data)
                        os.chmod(name, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode
            except zipfile.BadZipFile:
                raise DataError(f"{wheel_path} is not a valid wheel (zip) file") from None
            for split, path in staged.items():
                try:
                    series, _, class_names = read_ts(path)
                except DataError as exc:
                    raise DataError(f"{targets[split].name} in {wheel_path} is not readable: {exc}") from None
                source = f"{targets[split].name} in {wheel_path}"
                fix = f"Nothing was written; use an aeon wheel (aeon=={AEON_VERSION} is known to work)"
                _check_japanese_vowels(source, split, series, class_names, fix)
            for split, path in staged.items():
                os.replace(path, targets[split])
        finally:
            for path in staged.values():
                path.unlink(missing_ok=True)
    return folder
