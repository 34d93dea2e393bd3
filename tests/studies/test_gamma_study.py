"""``asyncsnn reproduce gamma`` end to end on the tiny configuration and fake JapaneseVowels files."""

from __future__ import annotations

import json

import pytest

from asyncsnn.cli import main
from asyncsnn.errors import ConfigError, DataError
from asyncsnn.plots import matplotlib_available
from asyncsnn.studies import gamma, gamma_report, gamma_vowels
from asyncsnn.studies.report import read_csv

FIGURES = ("memory_vs_T", "dt_invariance", "delay_peaks", "delay_responses", "coincidence", "vowels_accuracy")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, write_fake_vowels):
    folder = tmp_path_factory.mktemp("data")
    write_fake_vowels(folder / "japanese-vowels")
    return folder


@pytest.fixture(scope="module")
def study(tmp_path_factory, data_dir):
    """One run of the tiny study: (output folder, returned report path)."""
    out = tmp_path_factory.mktemp("gamma") / "first"
    report = gamma.run("quick", data_dir=data_dir, out=out, progress=False, _overrides=gamma.TINY)
    return out, report


def test_the_study_writes_csv_report_provenance_measurements_and_figures(study):
    out, report = study
    assert report == out / "report.md"
    text = report.read_text()
    titles = ("Memory against sequence length T", "Time-step invariance", "Delay learning",
              "Coincidence detection", "JapaneseVowels accuracy")  # fmt: skip
    for number, title in enumerate(titles, 1):
        assert f"## {number}. {title}" in text
    assert text.count("**Verdict: ") == 5
    assert "This is the `quick` preset" in text and "## Provenance" in text

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["study"] == "gamma" and prov["preset"] == "quick" and prov["seeds"] == [0]
    assert set(prov["config"]) >= {"memory", "vowels", "tasks", "seeds"}
    assert prov["config"]["memory"]["steps"] == gamma.TINY["memory"]["steps"]
    resolved = prov["config"]["resolved"]  # every part's full configuration, defaults included
    assert resolved["vowels_gamma"]["gamma_tau"] == gamma_vowels.GAMMA["gamma_tau"]
    assert resolved["vowels_gamma"]["epochs"] == gamma.TINY["vowels"]["gamma"]["epochs"]
    assert resolved["tasks"]["delay"]["delays"] == list(gamma.TINY["tasks"]["delay"]["delays"])
    assert "commit" in prov["git"]

    measured = json.loads((out / "measurements.json").read_text())
    assert set(measured["wall_s"]) == set(gamma.PARTS) and measured["total_wall_s"] > 0

    if matplotlib_available():
        for name in FIGURES:
            assert (out / f"{name}.png").stat().st_size > 1000, name
            assert f"({name}.png)" in text
    else:
        assert "matplotlib is not installed" in text


def test_the_csv_holds_every_part_and_no_wall_clock_numbers(study):
    rows = read_csv(study[0] / "results.csv")
    assert list(rows[0]) == ["part", "model", "training", "setting", "seed", "metric", "value"]
    assert {r["part"] for r in rows} == set(gamma.PARTS)
    assert not [r for r in rows if "wall" in r["metric"] or "second" in r["metric"]]
    cells = gamma_report.Cells(rows)
    epochs = f"{gamma.TINY['vowels']['gamma']['epochs']} epochs"
    for model, training in (("SpikingGamma", "online"), ("SpikingGamma", "BPTT"), ("LIF", "BPTT")):
        (accuracy,) = cells.values("vowels", model, training, epochs, "accuracy")
        assert 0 <= accuracy <= 1
    # online training computes BPTT's gradient for this network: the same seed scores the same
    assert cells.values("vowels", "SpikingGamma", "online", epochs, "accuracy") == pytest.approx(
        cells.values("vowels", "SpikingGamma", "BPTT", epochs, "accuracy")
    )
    dt_settings = cells.settings("dt-invariance", "SpikingGamma", "online", "spike_rate_hz")
    assert [s.split(", ")[-1] for s in dt_settings] == ["dt=1 ms", "dt=0.1 ms"] * 2
    delays = gamma.TINY["tasks"]["delay"]["delays"]
    settings = cells.settings("delay", "SpikingGamma", "online", "peak_latency_ms")
    assert settings == [f"D={d:g} ms" for d in delays]
    for d in delays:  # the target peaks one step after D (outputs sampled at bin ends)
        assert cells.one("delay", "target", "-", f"D={d:g} ms", "peak_latency_ms") == pytest.approx(d + 1)


def test_online_memory_does_not_grow_with_T_while_bptt_does(study):
    cells = gamma_report.Cells(read_csv(study[0] / "results.csv"))
    peak = gamma_report.memory_by_T(cells)
    short, long = gamma.TINY["memory"]["steps"]
    buffer = cells.one("memory", "readout buffer", "-", "per step", "bytes")
    # online: only the readout buffer the call returns grows (exactly, bytes are deterministic)
    assert peak["gamma-online"][long] - peak["gamma-online"][short] == (long - short) * buffer
    for method in ("gamma-bptt", "lif-bptt"):  # about linear: at least half of T's ratio
        assert peak[method][long] / peak[method][short] > 0.5 * long / short, method
    saved = gamma_report.memory_by_T(cells, "saved_for_backward_bytes")
    assert saved["gamma-bptt"][long] > 2 * saved["gamma-bptt"][short] > 0
    # the same problem for every method at the same T: online and BPTT losses agree
    online = cells.one("memory", "SpikingGamma", "online", f"T={long}", "loss")
    assert online == pytest.approx(cells.one("memory", "SpikingGamma", "BPTT", f"T={long}", "loss"), rel=1e-5)


def test_the_cli_reproduces_the_csv_byte_for_byte(study, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(gamma.PRESETS, "quick", gamma.preset_config("quick", gamma.TINY))
    out = tmp_path / "again"
    args = ["reproduce", "gamma", "--preset", "quick", "--data-dir", str(data_dir), "--out", str(out)]
    assert main([*args, "--seeds", "1", "--no-progress"]) == 0
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    assert (out / "results.csv").read_bytes() == (study[0] / "results.csv").read_bytes()


def test_missing_japanese_vowels_fails_before_any_training(tmp_path, monkeypatch, capsys):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a part ran although the data is missing")

    monkeypatch.delenv("ASYNCSNN_DATA", raising=False)
    monkeypatch.setattr(gamma, "tensor_memory", must_not_run)
    monkeypatch.setattr(gamma_vowels, "train_config", must_not_run)
    out = tmp_path / "out"
    with pytest.raises(DataError, match="asyncsnn data --fetch japanese-vowels --data-dir"):
        gamma.run("quick", data_dir=tmp_path / "empty", out=out, progress=False, _overrides=gamma.TINY)
    assert not out.exists()
    # the command line prints it as one line, exit status 2
    assert main(["reproduce", "gamma", "--data-dir", str(tmp_path / "empty"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "JapaneseVowels" in err and "asyncsnn data --fetch japanese-vowels" in err
    assert "Traceback" not in err


def test_presets_and_seeds_are_validated():
    quick, full = gamma.preset_config("quick"), gamma.preset_config("full")
    assert full["seeds"] == 3 and full["memory"]["steps"] == [500, 1000, 2000, 5000]
    assert quick["seeds"] == 1 and quick["expected_minutes"] <= 15
    assert quick["vowels"]["gamma"]["epochs"] < gamma_vowels.GAMMA["epochs"]
    merged = gamma.preset_config("full", {"memory": {"steps": [10]}})
    assert merged["memory"]["steps"] == [10] and merged["memory"]["repeats"] == full["memory"]["repeats"]
    assert gamma.PRESETS["full"]["memory"]["steps"] == [500, 1000, 2000, 5000]  # overrides copy
    with pytest.raises(ConfigError, match="preset"):
        gamma.preset_config("medium")
    with pytest.raises(ConfigError, match="seeds"):
        gamma.run("quick", out="unused", seeds=0)
