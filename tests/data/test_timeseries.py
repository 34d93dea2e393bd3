"""The .ts reader, JapaneseVowels loading (data_dir, env var, aeon) and fetching from a wheel."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import asyncsnn.data.timeseries as ts
from asyncsnn.data import (
    DATA_ENV,
    JAPANESE_VOWELS_FILES,
    SeriesDataset,
    fetch_japanese_vowels,
    load_japanese_vowels,
    pad_series,
    read_ts,
)
from asyncsnn.errors import DataError

# Sibling of the checkout, found relative to this file (never an absolute machine path).
CI_CACHE = Path(__file__).resolve().parents[2].parent / "ci-data-cache"

EQUAL = """\
# a comment
% another comment
@problemName Toy
@timeStamps false
@MISSING false
@univariate false
@dimensions 2
@equalLength true
@seriesLength 3
@classLabel true up down

@data
1,2,3:-1.5,0,2.5e-1:up
4.25,5,6:7,8,9:down
"""

UNEQUAL = """\
@problemName Uneq
@univariate true
@equalLength false
@classLabel True a b c
@data
1,2:c
3,4,5,6:a
7:b
"""

HEADER = "@dimensions 2\n@classLabel true x y\n@data\n"


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)


@pytest.fixture
def no_aeon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ts, "_aeon_data_dir", lambda: None)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def jv_text(n: int, seed: int, channels: int = 12, classes: int = 9) -> str:
    """A small file in the JapaneseVowels layout: n series of length 7..10."""
    rng = np.random.default_rng(seed)
    names = " ".join(str(c + 1) for c in range(classes))
    lines = [f"@problemName JapaneseVowels\n@dimensions {channels}\n@classLabel true {names}\n@data"]
    for i in range(n):
        x = np.round(rng.normal(size=(channels, 7 + i % 4)), 3)
        lines.append(":".join(",".join(repr(float(v)) for v in row) for row in x) + f":{i % classes + 1}")
    return "\n".join(lines) + "\n"


def fake_wheel(path: Path, train_n: int = 270, test_n: int = 370, members: bool = True) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("aeon/__init__.py", "")
        if members:
            for split, n in (("TRAIN", train_n), ("TEST", test_n)):
                member = f"aeon/datasets/data/JapaneseVowels/JapaneseVowels_{split}.ts"
                zf.writestr(member, jv_text(n, seed=len(split)))
    return path


def write_jv(folder: Path, splits: tuple[str, ...] = ("train", "test")) -> None:
    for split in splits:
        fname, n = JAPANESE_VOWELS_FILES[split]
        write(folder / fname, jv_text(n, seed=len(split)))


# --- read_ts ---------------------------------------------------------------------------------


def test_read_equal_multivariate(tmp_path: Path) -> None:
    values, labels, classes = read_ts(write(tmp_path / "a.ts", EQUAL))
    assert classes == ("up", "down") and labels == ["up", "down"]
    assert [v.dtype for v in values] == [np.float32, np.float32]
    np.testing.assert_array_equal(values[0], np.array([[1, -1.5], [2, 0], [3, 0.25]], np.float32))
    np.testing.assert_array_equal(values[1], np.array([[4.25, 7], [5, 8], [6, 9]], np.float32))


def test_read_unequal_univariate(tmp_path: Path) -> None:
    values, labels, classes = read_ts(write(tmp_path / "u.ts", UNEQUAL))
    assert classes == ("a", "b", "c") and labels == ["c", "a", "b"]
    assert [v.shape for v in values] == [(2, 1), (4, 1), (1, 1)]
    np.testing.assert_array_equal(values[1][:, 0], [3, 4, 5, 6])
    padded, lengths = pad_series(values)
    assert padded.shape == (3, 4, 1) and padded.dtype == torch.float32
    assert torch.equal(lengths, torch.tensor([2, 4, 1]))
    assert torch.equal(padded[0, :, 0], torch.tensor([1.0, 2.0, 0.0, 0.0]))


def test_channels_inferred_without_dimensions(tmp_path: Path) -> None:
    values, _, _ = read_ts(write(tmp_path / "i.ts", "@classLabel true x\n@data\n1,2:3,4:5,6:x\n"))
    assert values[0].shape == (2, 3)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("@classLabel true x\n", "no @data line"),
        ("@classLabel true x\n@data\n", "no series after @data"),
        ("1,2:x\n@data\n", "line 1: data before @data"),
        ("@dimensions two\n@classLabel true x\n@data\n", "line 1: bad header: @dimensions"),
        ("@univariate maybe\n", "bad header: @univariate takes true or false"),
        ("@colour blue\n", "unknown key @colour"),
        ("@\n", "line 1: bad header: '@' must be followed by a key"),
        ("@classLabel false\n@data\n", "classification files only"),
        ("@classLabel true x x\n@data\n", "repeated class label"),
        ("@dimensions 1\n@data\n1:x\n", "no '@classLabel true"),
        ("@targetLabel true\n", "regression"),
        ("@timeStamps true\n@classLabel true x\n@data\n", "timestamped"),
        ("@univariate true\n@dimensions 3\n@classLabel true x\n@data\n", "@univariate true but"),
        ("@data extra\n", "@data takes no value"),
        (HEADER + "1,2,3:x\n", "line 4: expected 2 channel"),
        (HEADER + "1,2:3,4:5,6:x\n", "expected 2 channel"),
        ("@classLabel true x\n@data\n1,2:3,4:x\n4:x\n", "line 4: expected 2 channel"),
        (HEADER + "1,2:3,abc:x\n", "line 4: channel 1 has a non-numeric value 'abc'"),
        (HEADER + "1,?:3,4:x\n", "channel 0 has a missing value '\\?'"),
        (HEADER + "1,nan:3,4:x\n", "NaN or infinite"),
        (HEADER + "1,2:3,4:z\n", "label 'z' is not in @classLabel x y"),
        (HEADER + "1,2:3:x\n", "channels have different lengths"),
        ("@equalLength true\n" + HEADER + "1,2:3,4:x\n1:2:y\n", "@equalLength true but lengths range"),
        ("@equalLength true\n@seriesLength 3\n" + HEADER + "1,2:3,4:x\n", "@seriesLength 3"),
    ],
)
def test_read_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        read_ts(write(tmp_path / "bad.ts", text))


def test_read_missing_and_binary_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="time-series file not found"):
        read_ts(tmp_path / "nope.ts")
    (tmp_path / "bin.ts").write_bytes(b"\xff\xfe\x00@data")
    with pytest.raises(DataError, match="not a UTF-8 text"):
        read_ts(tmp_path / "bin.ts")


# --- SeriesDataset ---------------------------------------------------------------------------


def test_series_dataset_checks() -> None:
    v, lengths, labels = torch.zeros(2, 3, 1), torch.tensor([1, 3]), torch.tensor([0, 1])
    ds = SeriesDataset("toy", "train", v, lengths, labels, ("a", "b"))
    assert len(ds) == 2 and ds.n_classes == 2 and ds.channels == 1
    with pytest.raises(ValueError, match="values must be float32"):
        SeriesDataset("toy", "train", v.double(), lengths, labels, ("a", "b"))
    with pytest.raises(ValueError, match="lengths must lie in"):
        SeriesDataset("toy", "train", v, torch.tensor([0, 3]), labels, ("a", "b"))
    with pytest.raises(ValueError, match="labels must lie in"):
        SeriesDataset("toy", "train", v, lengths, labels, ("a",))
    with pytest.raises(ValueError, match="labels must be int64"):
        SeriesDataset("toy", "train", v, lengths, labels[:1], ("a", "b"))


# --- load_japanese_vowels --------------------------------------------------------------------


@pytest.mark.usefixtures("no_aeon")
@pytest.mark.parametrize("sub", ["japanese-vowels", "JapaneseVowels"])
def test_load_by_data_dir(tmp_path: Path, sub: str) -> None:
    write_jv(tmp_path / sub)
    ds = load_japanese_vowels("test", tmp_path)
    assert isinstance(ds, SeriesDataset) and (ds.name, ds.split) == ("japanese-vowels", "test")
    assert ds.values.shape == (370, 10, 12) and ds.values.dtype == torch.float32
    assert torch.equal(ds.lengths, 7 + torch.arange(370) % 4)
    assert torch.equal(ds.labels, torch.arange(370) % 9)
    assert ds.class_names == tuple("123456789")
    series, _, _ = read_ts(tmp_path / sub / "JapaneseVowels_TEST.ts")
    assert torch.equal(ds.values[5, :8], torch.from_numpy(series[5]))
    assert not ds.values[5, 8:].any()  # zero padding


@pytest.mark.usefixtures("no_aeon")
def test_load_by_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jv(tmp_path / "japanese-vowels", ("train",))
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert len(load_japanese_vowels("train")) == 270


def test_load_from_installed_aeon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "aeon"
    write(package / "__init__.py", "raise ImportError('aeon must not be imported')\n")
    write_jv(package / "datasets" / "data" / "JapaneseVowels", ("train",))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert len(load_japanese_vowels("train", tmp_path / "empty")) == 270


@pytest.mark.usefixtures("no_aeon")
def test_load_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"no data directory given \\(pass data_dir or set {DATA_ENV}\\)"):
        load_japanese_vowels("train")
    with pytest.raises(DataError, match="JapaneseVowels_TRAIN.ts is missing; looked in .*japanese-vowels"):
        load_japanese_vowels("train", tmp_path)
    with pytest.raises(DataError, match="fetch_japanese_vowels"):
        load_japanese_vowels("train", tmp_path)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_japanese_vowels("val", tmp_path)


@pytest.mark.usefixtures("no_aeon")
def test_load_wrong_file(tmp_path: Path) -> None:
    write(tmp_path / "japanese-vowels" / "JapaneseVowels_TRAIN.ts", jv_text(30, seed=0))
    with pytest.raises(DataError, match="holds 30 series.* has 270 series.*force=True"):
        load_japanese_vowels("train", tmp_path)


# --- fetch_japanese_vowels -------------------------------------------------------------------


@pytest.mark.usefixtures("no_aeon")
def test_fetch_from_local_wheel(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "aeon-1.6.0-py3-none-any.whl")
    folder = fetch_japanese_vowels(tmp_path / "data", wheel=wheel)
    assert folder == tmp_path / "data" / "japanese-vowels"
    assert sorted(p.name for p in folder.iterdir()) == ["JapaneseVowels_TEST.ts", "JapaneseVowels_TRAIN.ts"]
    with zipfile.ZipFile(wheel) as zf:
        member = "aeon/datasets/data/JapaneseVowels/JapaneseVowels_TRAIN.ts"
        assert (folder / "JapaneseVowels_TRAIN.ts").read_bytes() == zf.read(member)
    assert len(load_japanese_vowels("train", tmp_path / "data")) == 270
    # Already there and valid: no wheel needed; force=True insists on one.
    assert fetch_japanese_vowels(tmp_path / "data", wheel=tmp_path / "gone.whl") == folder
    with pytest.raises(DataError, match="aeon wheel not found"):
        fetch_japanese_vowels(tmp_path / "data", wheel=tmp_path / "gone.whl", force=True)


def test_fetch_rejects_bad_wheels(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with pytest.raises(DataError, match="holds 20 series.* has 270 series.*Nothing was written"):
        fetch_japanese_vowels(data, wheel=fake_wheel(tmp_path / "short.whl", train_n=20))
    with pytest.raises(DataError, match="has no aeon/datasets/data/JapaneseVowels/JapaneseVowels_"):
        fetch_japanese_vowels(data, wheel=fake_wheel(tmp_path / "empty.whl", members=False))
    write(tmp_path / "junk.whl", "not a zip")
    with pytest.raises(DataError, match="not a valid wheel"):
        fetch_japanese_vowels(data, wheel=tmp_path / "junk.whl")
    assert list((data / "japanese-vowels").iterdir()) == []  # no partial or temporary files left
    with pytest.raises(DataError, match=f"no data directory given: pass data_dir or set {DATA_ENV}"):
        fetch_japanese_vowels(wheel=tmp_path / "short.whl")


def test_fetch_downloads_with_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        fake_wheel(Path(cmd[cmd.index("-d") + 1]) / "aeon-1.6.0-py3-none-any.whl")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(ts.subprocess, "run", fake_run)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert fetch_japanese_vowels() == tmp_path / "japanese-vowels"
    assert calls[0][1:6] == ["-m", "pip", "download", "aeon==1.6.0", "--no-deps"]

    def failing_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: network is unreachable")

    monkeypatch.setattr(ts.subprocess, "run", failing_run)
    with pytest.raises(DataError, match="(?s)network is unreachable.*wheel=<path>"):
        fetch_japanese_vowels(tmp_path / "other")


# --- the real files, when a developer machine has them --------------------------------------


def test_real_japanese_vowels() -> None:
    if not (CI_CACHE / "japanese-vowels" / "JapaneseVowels_TEST.ts").is_file():
        pytest.skip(f"real JapaneseVowels files not available: {CI_CACHE / 'japanese-vowels'} is missing")
    train, test = load_japanese_vowels("train", CI_CACHE), load_japanese_vowels("test", CI_CACHE)
    assert (len(train), len(test)) == (270, 370)
    assert train.channels == test.channels == 12 and train.n_classes == test.n_classes == 9
    assert torch.equal(torch.bincount(train.labels), torch.full((9,), 30))
    assert int(torch.cat([train.lengths, test.lengths]).min()) == 7
    assert int(torch.cat([train.lengths, test.lengths]).max()) == 29
