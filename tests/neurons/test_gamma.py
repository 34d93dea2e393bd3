"""SpikingGamma populations: the equations of DESIGN section 7, the identity gradient rule, network checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from asyncsnn import LIF, GammaReadout, Network, SpikingGamma
from asyncsnn.engines import async_, sync
from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.neurons import gamma_memory, linear_scan, sigma_delta
from asyncsnn.neurons.surrogate import Surrogate

TAU = (3.0, 5.0, 8.0)


def gamma_net(
    per_synapse: bool = False, hidden: int = 6, dt: float = 1.0, threshold: float = 0.02
) -> Network:
    torch.manual_seed(0)
    net = Network(
        nn.Linear(3, hidden, bias=False),
        SpikingGamma(tau=TAU, threshold=threshold, per_synapse=per_synapse, dt=dt),
        nn.Linear(hidden, 2, bias=False),
        GammaReadout(tau=TAU, dt=dt),
        input_shape=(3,),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


def loop_reference(net: Network, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The equations of DESIGN section 7 written out step by step (one hidden layer, per-neuron weights)."""
    hidden, readout = net.layers[0], net.layers[1]
    pop = hidden.population
    a = pop.decay
    K, (T, B) = len(a), x.shape[:2]
    w1, w2 = hidden.synapse[0].weight, readout.synapse[0].weight
    g_in = torch.zeros(B, K, 3)
    g = torch.zeros(B, K, w1.shape[0])
    spikes, outs = [], []
    for t in range(T):
        new_in = torch.empty_like(g_in)
        new_in[:, 0] = a[0] * g_in[:, 0] + x[t]
        for k in range(1, K):
            new_in[:, k] = a[k] * g_in[:, k] + (1 - a[k]) * g_in[:, k - 1]
        g_in = new_in
        xj = sum(pop.bucket_weight[k] * (g_in[:, k] @ w1.T) for k in range(K)) + pop.bias
        y = torch.relu(xj)
        s = (y - a[0] * g[:, 0] > pop.threshold).float()
        new = torch.empty_like(g)
        new[:, 0] = a[0] * g[:, 0] + 2 * pop.threshold * s
        for k in range(1, K):
            new[:, k] = a[k] * g[:, k] + (1 - a[k]) * g[:, k - 1]
        g = new
        r = readout.population
        outs.append(sum(r.bucket_weight[k] * (g[:, k] @ w2.T) for k in range(K)) + r.bias)
        spikes.append(s)
    return torch.stack(spikes), torch.stack(outs)


def test_engine_matches_the_written_out_equations():
    net = gamma_net()
    x = (torch.rand(40, 4, 3, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with torch.no_grad():
        outs, _, _, _ = sync.gamma_outputs(net, x)
        ref_spikes, ref_out = loop_reference(net, x)
    assert ref_spikes.sum() > 10  # the hidden layer is active
    assert torch.equal(outs[0], ref_spikes)
    torch.testing.assert_close(outs[-1], ref_out, rtol=1e-5, atol=1e-6)


def test_frame_by_frame_forward_equals_the_sequence_run():
    net = gamma_net()
    x = (torch.rand(30, 2, 3, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    state, frames = None, []
    with torch.no_grad():
        for t in range(30):
            out, state = net(x[t], state)
            frames.append(out)
        whole = sync.run(net, x)
    torch.testing.assert_close(torch.stack(frames), whole.output, rtol=0, atol=1e-6)


def test_run_records_spikes_and_synops():
    net = gamma_net()
    x = (torch.rand(30, 2, 3, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    with torch.no_grad():
        result = sync.run(net, x)
        spikes, _, _, _ = sync.gamma_outputs(net, x)
    assert torch.equal(result.records.spikes[0], spikes[0].sum((0, 2)))
    assert torch.equal(result.records.spikes[1], torch.zeros(2))  # the readout does not spike
    assert torch.equal(result.records.synops[0], x.sum((0, 2)) * 6)  # dense fan-out 6
    assert torch.equal(result.records.synops[1], spikes[0].sum((0, 2)) * 2)


@pytest.mark.parametrize("y_value", [0.1, 0.3, 0.5])
def test_sigma_delta_tracks_a_constant_signal_at_the_predicted_rate(y_value):
    theta, tau0, dt, T = 0.05, 10.0, 1.0, 4000
    a0 = torch.tensor(math.exp(-dt / tau0))
    y = torch.full((T, 1, 1), y_value)
    spikes, g0 = sigma_delta(y, torch.zeros(1, 1), a0, torch.tensor(theta), 0.0)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    settled = g0[200:]
    assert (settled - y_value).abs().max() <= theta + 1e-5  # the decoded estimate stays within theta
    # Exact balance: what leaks out of the decoded estimate is refilled by spikes worth 2 theta each.
    g = g0[199:, 0, 0].double()
    refill = 2 * theta * spikes[200:].sum().item()
    leak = (1 - float(a0)) * g[:-1].sum().item()
    assert refill == pytest.approx(leak + (g[-1] - g[0]).item(), rel=1e-4)
    # So the rate is y (1 - a0) / (2 theta) per step, up to the estimate's error of at most theta.
    rate = spikes[200:].mean().item()
    predicted = y_value * (1 - float(a0)) / (2 * theta)
    assert predicted < 0.5  # the regime of the docstring: well below one spike per step
    assert abs(rate - predicted) <= (1 - float(a0)) / 2 + 1e-3


def test_adaptive_threshold_spends_fewer_spikes_on_large_signals():
    a0 = torch.tensor(math.exp(-0.01))  # tau_0 = 100 steps
    y = torch.full((4000, 1, 1), 1.0)
    fixed, _ = sigma_delta(y, torch.zeros(1, 1), a0, torch.tensor(0.05), 0.0)
    adaptive, g0 = sigma_delta(y, torch.zeros(1, 1), a0, torch.tensor(0.05), 0.1)
    assert fixed.sum() < 0.2 * 4000  # in the regime
    assert adaptive.sum() < fixed.sum() / 2  # threshold ~ 0.05 + 0.1 * 1.0: about a third of the spikes
    assert (g0[1000:] - 1.0).abs().max() <= 0.05 + 0.1 * 1.2  # error bounded by the (larger) threshold


def test_identity_rule_gradient_and_no_surrogate(monkeypatch):
    """dg0/dy = 1 and dy/dx = ReLU'(x): the ReLU is the only nonlinearity; no surrogate is ever called."""

    def forbidden(*_args, **_kwargs):
        raise AssertionError("a surrogate function was called on the SpikingGamma path")

    monkeypatch.setattr(Surrogate, "derivative", forbidden)
    monkeypatch.setattr(Surrogate, "spike", forbidden)
    pop = SpikingGamma(tau=TAU, threshold=0.05)
    pop.check_shape((5,))
    x = torch.randn(20, 3, 5, requires_grad=True)
    spikes, buckets, _ = pop.scan(x)
    buckets[:, :, 0].sum().backward()  # bucket 0 only: each g0(t) depends on y(t) alone
    torch.testing.assert_close(x.grad, (x > 0).float(), rtol=0, atol=0)
    names = _graph_node_names(buckets.grad_fn)
    assert not any("Spike" in n or "Surrogate" in n for n in names), names


def _graph_node_names(fn) -> set[str]:
    names, visited, stack = set(), set(), [fn]
    while stack:
        node = stack.pop()
        if node in visited:
            continue
        visited.add(node)
        names.add(node.name())
        stack.extend(next_fn for next_fn, _ in node.next_functions if next_fn is not None)
    return names


def test_linear_scan_gradients():
    torch.manual_seed(0)
    inputs = torch.randn(7, 3, 4, dtype=torch.float64, requires_grad=True)
    decay = torch.rand(1, 4, dtype=torch.float64, requires_grad=True)
    init = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(linear_scan, (inputs, decay, init))


def test_gamma_memory_is_the_bucket_recursion_and_differentiable_in_decay():
    torch.manual_seed(0)
    g0 = torch.randn(9, 2, 3, dtype=torch.float64)
    decay = torch.tensor([0.5, 0.7, 0.9], dtype=torch.float64, requires_grad=True)
    previous = torch.randn(2, 3, 3, dtype=torch.float64)
    out = gamma_memory(g0, decay, previous)
    g = previous.clone()
    for t in range(9):
        new = torch.empty_like(g)
        new[:, 0] = g0[t]
        for k in (1, 2):
            new[:, k] = decay[k] * g[:, k] + (1 - decay[k]) * g[:, k - 1]
        g = new
        torch.testing.assert_close(out[t], g)
    assert torch.autograd.gradcheck(lambda d: gamma_memory(g0, d, previous), (decay,))


def test_buckets_are_defined_in_physical_time():
    """An input pulse seen at dt = 1 ms and dt = 0.1 ms gives the same bucket trajectories in ms, up to the
    discretisation error of order dt / tau."""
    traces = {}
    for dt in (1.0, 0.1):
        pop = GammaReadout(tau=(10.0, 10.0, 10.0), dt=dt)
        x = torch.zeros(round(100 / dt), 1, 1)
        x[0] = 1.0
        traces[dt] = pop.input_memory(x, None)[:, 0, :, 0]  # [T, K]
    coarse, fine = traces[1.0], traces[0.1][::10]  # the same physical times
    for k in range(3):
        assert (coarse[:, k] - fine[:, k]).abs().max() < 0.1 * coarse[:, k].max()
    # bucket k peaks near k * tau (the gamma kernel t^k exp(-t / tau)), plus one step per bucket
    peaks = traces[0.1].argmax(0).float() * 0.1
    assert peaks[1].item() == pytest.approx(10.0, abs=0.3)
    assert peaks[2].item() == pytest.approx(20.0, abs=0.4)


def test_set_dt_changes_the_step_but_not_the_time_constants():
    net = gamma_net(dt=1.0)
    decay_1 = net.layers[0].population.decay.clone()
    net.set_dt(0.1)
    assert net.dt == 0.1
    torch.testing.assert_close(net.layers[0].population.decay, decay_1**0.1)
    with pytest.raises(ValueError, match="dt"):
        net.set_dt(-1.0)


def test_per_synapse_bucket_weights_equal_per_neuron_when_they_agree():
    net_n = gamma_net(per_synapse=False)
    net_s = gamma_net(per_synapse=True)
    with torch.no_grad():
        net_s.layers[0].synapse[0].weight.copy_(net_n.layers[0].synapse[0].weight)
        net_s.layers[0].population.bias.copy_(net_n.layers[0].population.bias)
        v = net_n.layers[0].population.bucket_weight  # [K, N]
        net_s.layers[0].population.bucket_weight.copy_(v[:, :, None].expand(-1, -1, 3))
        for a, b in zip(net_s.layers[1].synapse.parameters(), net_n.layers[1].synapse.parameters()):
            a.copy_(b)
        for name in ("bucket_weight", "bias"):
            getattr(net_s.layers[1].population, name).copy_(getattr(net_n.layers[1].population, name))
    x = (torch.rand(25, 2, 3, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    with torch.no_grad():
        torch.testing.assert_close(sync.run(net_s, x).output, sync.run(net_n, x).output, rtol=1e-5, atol=1e-6)


def test_convolutional_gamma_network_runs_and_trains():
    torch.manual_seed(0)
    net = Network(
        nn.Conv2d(1, 4, 3, bias=False),
        SpikingGamma(tau=TAU, threshold=0.01),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3, bias=False),
        GammaReadout(tau=TAU),
        input_shape=(1, 6, 6),
    )
    x = (torch.rand(20, 2, 1, 6, 6, generator=torch.Generator().manual_seed(5)) < 0.3).float()
    result = sync.run(net, x)
    assert result.output.shape == (20, 2, 3)
    assert result.records.spikes[0].sum() > 0
    result.output.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize(
    ("modules", "match"),
    [
        ((nn.Linear(3, 4, bias=False), SpikingGamma(), nn.Linear(4, 2), LIF()), "cannot be mixed"),
        ((nn.Linear(3, 4), SpikingGamma(), nn.Linear(4, 2, bias=False), GammaReadout()), "bias=False"),
        (
            (
                nn.Linear(3, 4, bias=False),
                SpikingGamma(tau=(1, 2)),
                nn.Linear(4, 2, bias=False),
                GammaReadout(),
            ),
            "same number of buckets",
        ),
        ((nn.Linear(3, 4, bias=False), GammaReadout(), nn.Linear(4, 2, bias=False), GammaReadout()), "last"),
    ],
)
def test_network_rejects_invalid_gamma_descriptions(modules, match):
    with pytest.raises(ValueError, match=match):
        Network(*modules, input_shape=(3,))


def test_per_synapse_weights_need_a_dense_block():
    with pytest.raises(ValueError, match="dense"):
        Network(nn.Conv2d(1, 2, 3, bias=False), SpikingGamma(per_synapse=True), input_shape=(1, 5, 5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tau": ()}, "tau"),
        ({"tau": (1.0, -2.0)}, "tau"),
        ({"threshold": 0.0}, "threshold"),
        ({"adapt": -1}, "adapt"),
    ],
)
def test_population_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpikingGamma(**kwargs)


def test_asynchronous_engine_rejects_gamma_networks():
    net = gamma_net()
    with pytest.raises(ValueError, match="LIF"):
        async_.run(net, torch.zeros(5, 1, 3), AsyncConfig(), backend="reference")
