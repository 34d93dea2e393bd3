"""experiments/gamma_tasks.py: the --quick path runs end to end and its pieces agree with the library (no
accuracy or timing thresholds)."""

from __future__ import annotations

import json
import math

import pytest
import torch


@pytest.fixture(scope="module")
def tasks(load_script):
    return load_script("experiments/gamma_tasks.py")


def test_step_mse_chunk_gradient_matches_autograd(tasks):
    g = torch.Generator().manual_seed(0)
    target = torch.randn(12, 3, 2, generator=g, dtype=torch.float64)
    out = torch.randn(5, 3, 2, generator=g, dtype=torch.float64)
    loss = tasks.StepMSE(target, start=4)
    value, grad = loss.chunk_value_and_grad(2, out)  # steps 2..6: 2 and 3 do not count
    leaf = out.clone().requires_grad_()
    total = sum(v for t in range(5) if (v := loss(2 + t, leaf[t])) is not None)
    total.backward()
    assert value == pytest.approx(float(total.detach()))
    torch.testing.assert_close(grad, leaf.grad)
    assert grad[:2].abs().max() == 0


def test_online_training_with_step_mse_matches_the_reference_path(tasks):
    # The fast path (closed-form chunk gradient) and the general per-step path train the same parameters.
    x, y = tasks.delay_task(
        3, dt=1.0, duration_ms=40.0, delay_ms=5.0, rate_hz=80.0, smooth_tau_ms=2.0, seed=1
    )
    nets = [
        tasks.gamma_network(1, 4, 1, (2.0, 1.0, 1.0), 0.25, seed=0, positive_input=True).double()
        for _ in "ab"
    ]
    for net, reference in zip(nets, (False, True)):
        tasks.online_sequence(net, x.double(), tasks.StepMSE(y.double()), reference=reference)
    for (name, p), (_, q) in zip(nets[0].named_parameters(), nets[1].named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-9, msg=name)


def test_quick_run_writes_finite_metrics_of_the_right_shape(tasks, tmp_path):
    doc = tasks.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "gamma_tasks_quick.json").read_text())
    assert saved["tables"] == doc["tables"]
    delays = tasks.QUICK["delay"]["delays"]
    assert list(saved["delay"]) == [f"{d:g}" for d in delays]
    pulse_steps = int(tasks.DELAY["pulse_len_ms"] / tasks.DT)
    for d, row in saved["delay"].items():
        assert row["target_peak_latency_ms"] == pytest.approx(float(d) + tasks.DT)  # pulse at a bin start
        for model in ("gamma", "lif"):
            r = row[model]
            for key in ("normalised_error", "spikes_per_neuron_per_s", "wall_s"):
                assert math.isfinite(r[key]) and r[key] >= 0, (d, model, key)
            assert len(r["pulse_response"]) == pulse_steps
            assert len(r["example_output"]) == len(row["example_target"])
    co = saved["coincidence"]
    assert co["chance"] == pytest.approx(1 / len(tasks.COINCIDENCE["delays"]))
    for model in ("gamma", "lif"):
        assert 0 <= co[model]["accuracy"] <= 1
        assert math.isfinite(co[model]["spikes_per_neuron_per_s"])
    assert "Delay learning" in doc["tables"] and "Coincidence detection" in doc["tables"]
