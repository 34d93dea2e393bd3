"""The timing tasks of the SpikingGamma study (asyncsnn.studies.gamma_tasks): losses, training paths and
configuration."""

from __future__ import annotations

import pytest
import torch

from asyncsnn.studies.gamma_tasks import (
    DELAY,
    GROUPS,
    SMOKE,
    StepMSE,
    configs,
    delay_task,
    gamma_network,
    online_sequence,
)


def test_step_mse_chunk_gradient_matches_autograd():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(12, 3, 2, generator=g, dtype=torch.float64)
    out = torch.randn(5, 3, 2, generator=g, dtype=torch.float64)
    loss = StepMSE(target, start=4)
    value, grad = loss.chunk_value_and_grad(2, out)  # steps 2..6: 2 and 3 do not count
    leaf = out.clone().requires_grad_()
    total = sum(v for t in range(5) if (v := loss(2 + t, leaf[t])) is not None)
    total.backward()
    assert value == pytest.approx(float(total.detach()))
    torch.testing.assert_close(grad, leaf.grad)
    assert grad[:2].abs().max() == 0


def test_online_training_with_step_mse_matches_the_reference_path():
    # The fast path (closed-form chunk gradient) and the general per-step path train the same parameters.
    x, y = delay_task(3, dt=1.0, duration_ms=40.0, delay_ms=5.0, rate_hz=80.0, smooth_tau_ms=2.0, seed=1)
    nets = [gamma_network(1, 4, 1, (2.0, 1.0, 1.0), 0.25, seed=0, positive_input=True).double() for _ in "ab"]
    for net, reference in zip(nets, (False, True)):
        online_sequence(net, x.double(), StepMSE(y.double()), reference=reference)
    for (name, p), (_, q) in zip(nets[0].named_parameters(), nets[1].named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-9, msg=name)


def test_configs_apply_overrides_to_copies():
    cfg = configs(SMOKE)
    assert list(cfg) == list(GROUPS)
    assert cfg["delay"]["delays"] == SMOKE["delay"]["delays"]
    assert cfg["delay"]["rate_hz"] == DELAY["rate_hz"]  # not overridden: the default
    cfg["delay"]["rate_hz"] = 1.0
    assert DELAY["rate_hz"] != 1.0
    with pytest.raises(ValueError, match="unknown"):
        configs({"delays": {}})
