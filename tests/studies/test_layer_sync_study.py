"""The layer-synchronization study end to end on a tiny preset (built-in data, seconds)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from asyncsnn.cli import main
from asyncsnn.errors import DataError
from asyncsnn.studies import layer_sync
from asyncsnn.studies.layer_sync import SYNC_CANDIDATES, tiny_preset
from asyncsnn.studies.layer_sync_report import verdict
from asyncsnn.studies.report import read_csv

NETWORKS = ("fc-saccade", "cnn-saccade", "fc-rate")


def run_tiny(out: Path, lines: list[str] | None = None) -> Path:
    log = (lambda s: lines.append(s)) if lines is not None else (lambda s: None)
    return layer_sync.run(tiny_preset(), out=out, progress=False, log=log)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layer-sync")
    run_tiny(out)
    return out


def test_writes_csv_report_provenance_and_figures(study: Path) -> None:
    for name in ("results.csv", "report.md", "provenance.json"):
        assert (study / name).is_file(), name
    for name in ("accuracy_vs_F.png", "spikes_vs_F.png", "decision_steps.png", "accuracy_vs_stop_rule.png"):
        assert (study / name).stat().st_size > 1000, name
    report = (study / "report.md").read_text()
    assert "## Headline" in report and "Verdict:" in report and "## Provenance" in report
    for net in NETWORKS:
        assert f"## {net}:" in report


def test_csv_holds_every_cell(study: Path) -> None:
    rows = read_csv(study / "results.csv")
    # per network: 1 layer-synchronous run + 2 schedulers x 2 F x 3 stop rules x (layer, layer + n, unlayered)
    assert len(rows) == 3 * (1 + 2 * 2 * 3 * 3)
    by_net = defaultdict(list)
    for r in rows:
        by_net[r["network"]].append(r)
    assert sorted(by_net) == sorted(NETWORKS)
    for net_rows in by_net.values():
        unlayered = [r for r in net_rows if r["training"] == "unlayered"]
        # an unlayered model always runs with the scheduler and F it was trained with
        assert unlayered
        assert all(r["train_scheduler"] == r["scheduler"] and r["train_F"] == r["F"] for r in unlayered)
        rules = {r["stop_rule"] for r in net_rows if r["engine"] == "async"}
        assert rules == {"quiescent", "first-output", "k-after"}
        thresholds = {r["sync_threshold"] for r in net_rows if r["training"] == "layer-sync"}
        assert thresholds - {"0"}, "no cells with the synchronization threshold"
        for r in net_rows:
            assert int(r["samples"]) == 32
            assert 0.0 <= float(r["accuracy"]) <= 1.0


def test_stopped_runs_are_prefixes_of_the_quiescent_run(study: Path) -> None:
    """Stopping at (or k steps after) the first output spike only cuts work: spikes and micro-steps shrink."""
    rows = read_csv(study / "results.csv")
    cells = defaultdict(dict)
    for r in rows:
        if r["engine"] == "async":
            key = (r["network"], r["training"], r["scheduler"], r["F"], r["sync_threshold"])
            cells[key][r["stop_rule"]] = r
    assert cells
    for rules in cells.values():
        first, k_after, quiescent = rules["first-output"], rules["k-after"], rules["quiescent"]
        for metric in ("spikes", "synops", "micro_steps"):
            assert float(first[metric]) <= float(k_after[metric]) <= float(quiescent[metric]), metric
        # decision at quiescence is the end of the run
        assert float(quiescent["micro_steps_to_decision"]) == pytest.approx(float(quiescent["micro_steps"]))


def test_rerun_resumes_from_saved_models_and_cells(study: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    removed = sorted((copy / "cells").glob("fc-rate-layer-s0--momentum-F8-*.pt"))
    assert removed
    for p in removed:
        p.unlink()
    (copy / "results.csv").unlink()
    lines: list[str] = []
    run_tiny(copy, lines)
    assert "preset tiny (seconds)" in lines[0], "the study states its expected time first"
    assert not any("training" in line for line in lines), "finished models must not be retrained"
    evaluated = [line for line in lines if "] layer-sync ->" in line or "] unlayered" in line]
    assert len(evaluated) == len(removed)
    assert (copy / "results.csv").read_bytes() == (study / "results.csv").read_bytes()


def test_provenance_records_configuration_seeds_version_and_calibration(study: Path) -> None:
    import json

    prov = json.loads((study / "provenance.json").read_text())
    assert prov["study"] == "layer-sync" and prov["preset"] == "tiny" and prov["seeds"] == [0]
    assert prov["asyncsnn_version"] and "commit" in prov["git"]
    assert [n["name"] for n in prov["config"]["networks"]] == list(NETWORKS)
    for net in NETWORKS:
        cal = prov["sync_threshold_calibration"][f"{net}-s0"]
        n, scores = cal["sync_threshold"], cal["accuracy_by_n"]
        assert n in SYNC_CANDIDATES and str(n) in scores
        # calibration stops at the first n that meets the target, so n is the last value tried or the best
        tried = [int(k) for k in scores]
        assert n == tried[-1] or scores[str(n)] == max(scores.values())


def test_missing_data_fails_before_any_work(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ASYNCSNN_DATA", raising=False)
    with pytest.raises(DataError, match="train-images-idx3-ubyte|t10k"):
        layer_sync.run("quick", data_dir=str(tmp_path / "nothing"), out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_reproduces_the_csv_exactly_with_the_same_seed(study: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setitem(layer_sync.PRESETS, "quick", tiny_preset())
    out = tmp_path / "cli"
    assert main(["reproduce", "layer-sync", "--out", str(out), "--no-progress"]) == 0
    assert str(out / "report.md") in capsys.readouterr().out
    assert (out / "results.csv").read_bytes() == (study / "results.csv").read_bytes()
    assert main(["reproduce", "layer-sync", "--seeds", "0", "--out", str(out)]) == 2
    assert "seeds" in capsys.readouterr().err


def test_verdict_says_plainly_whether_the_claims_hold() -> None:
    good = dict(network="a", fewer_spikes_pct=30.0, sooner_x=1.6, acc_layer=90.0, acc_unlayered=92.0)
    bad = dict(network="b", fewer_spikes_pct=-10.0, sooner_x=0.9, acc_layer=90.0, acc_unlayered=85.0)
    assert "reproduced for every network" in verdict([good]) and "NOT" not in verdict([good])
    assert "30 % fewer" in verdict([good]) and "+2.00" in verdict([good])
    mixed = verdict([good, bad])
    assert "NOT all reproduced (they hold for 1 of 2 networks)" in mixed and "10 % more" in mixed
    assert "**b**" in mixed and "The claims are NOT reproduced." in mixed
