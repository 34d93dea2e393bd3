"""experiments/gamma_tasks.py: the --quick path runs end to end (no accuracy or timing thresholds). The task
code itself is tested in tests/studies/test_gamma_tasks.py."""

from __future__ import annotations

import json
import math

import pytest

from asyncsnn.studies.gamma_tasks import COINCIDENCE, DELAY, DT, SMOKE


@pytest.fixture(scope="module")
def tasks(load_script):
    return load_script("experiments/gamma_tasks.py")


def test_quick_run_writes_finite_metrics_of_the_right_shape(tasks, tmp_path):
    doc = tasks.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "gamma_tasks_quick.json").read_text())
    assert saved["tables"] == doc["tables"]
    delays = SMOKE["delay"]["delays"]
    assert list(saved["delay"]) == [f"{d:g}" for d in delays]
    pulse_steps = int(DELAY["pulse_len_ms"] / DT)
    for d, row in saved["delay"].items():
        assert row["target_peak_latency_ms"] == pytest.approx(float(d) + DT)  # pulse at a bin start
        for model in ("gamma", "lif"):
            r = row[model]
            for key in ("normalised_error", "spikes_per_neuron_per_s", "wall_s"):
                assert math.isfinite(r[key]) and r[key] >= 0, (d, model, key)
            assert len(r["pulse_response"]) == pulse_steps
            assert len(r["example_output"]) == len(row["example_target"])
    co = saved["coincidence"]
    assert co["chance"] == pytest.approx(1 / len(COINCIDENCE["delays"]))
    for model in ("gamma", "lif"):
        assert 0 <= co[model]["accuracy"] <= 1
        assert math.isfinite(co[model]["spikes_per_neuron_per_s"])
    assert "Delay learning" in doc["tables"] and "Coincidence detection" in doc["tables"]
