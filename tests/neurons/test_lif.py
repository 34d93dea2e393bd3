import math

import pytest
import torch
from torch import nn

from asyncsnn.neurons import LI, LIF, LIFParameters, Surrogate, lif_step


@pytest.mark.parametrize(
    "name,scale,formula",
    [
        ("atan", 2.0, lambda x, a: a / 2 / (1 + (math.pi / 2 * a * x) ** 2)),
        ("fast_sigmoid", 25.0, lambda x, k: 1 / (k * x.abs() + 1) ** 2),
        ("sigmoid", 25.0, lambda x, k: k * torch.exp(-k * x) / (torch.exp(-k * x) + 1) ** 2),
    ],
)
def test_surrogate_backward_matches_formula(name, scale, formula):
    x = torch.linspace(-0.5, 0.5, 101, dtype=torch.float64, requires_grad=True)
    s = Surrogate(name)
    assert s.scale == scale  # snnTorch defaults
    y = s.spike(x)
    assert torch.equal(y, (x > 0).double())  # strict Heaviside forward: x == 0 does not fire
    y.sum().backward()
    torch.testing.assert_close(x.grad, formula(x.detach(), scale), rtol=1e-12, atol=1e-12)


def test_surrogate_rejects_bad_config():
    with pytest.raises(ValueError, match="unknown name"):
        Surrogate("relu")
    with pytest.raises(ValueError, match="positive"):
        Surrogate("atan", -1.0)


def test_lif_step_semantics_strict_threshold_and_resets():
    p = LIFParameters(torch.tensor(0.5), torch.tensor(1.0), "zero")
    s, st, u = lif_step(torch.tensor([1.0, 1.5, 0.2]), None, p)
    assert s.tolist() == [0.0, 1.0, 0.0]  # exactly at threshold does not fire
    torch.testing.assert_close(st.v, torch.tensor([1.0, 0.0, 0.2]))
    s, st, u = lif_step(torch.zeros(3), st, p)  # leak: v <- beta * v
    torch.testing.assert_close(st.v, torch.tensor([0.5, 0.0, 0.1]))
    p_sub = p._replace(reset="subtract")
    s, st, _ = lif_step(torch.tensor([1.5]), None, p_sub)
    assert st.v.tolist() == [0.5]


def test_beta_from_tau_and_dt():
    lif = LIF(tau=20.0, dt=2.0)
    torch.testing.assert_close(lif.beta, torch.tensor(math.exp(-0.1)))


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid", "sigmoid"])
def test_fused_scan_equals_stepwise_loop(reset, detach, surrogate):
    torch.manual_seed(0)
    T, B, N = 30, 3, 7
    tau = torch.rand(N, dtype=torch.float64) * 20 + 2  # per-neuron parameters
    thr = torch.rand(N, dtype=torch.float64) + 0.5
    lif = LIF(tau=tau, threshold=thr, reset=reset, surrogate=surrogate, detach_reset=detach)
    lif = lif.double()
    currents = torch.randn(T, B, N, dtype=torch.float64) * 0.8
    v0 = torch.randn(B, N, dtype=torch.float64) * 0.3
    weights = torch.randn(T, B, N, dtype=torch.float64)

    def loss_of(spikes, v):
        return (spikes * weights).sum() + (v**2).sum()

    c1, v1 = currents.clone().requires_grad_(), v0.clone().requires_grad_()
    s1, st1, u1 = lif.scan(c1, type(st := lif.step(c1[0], None)[1])(v1))
    loss_of(s1, st1.v).backward()

    c2, v2 = currents.clone().requires_grad_(), v0.clone().requires_grad_()
    state, outs = type(st)(v2), []
    for t in range(T):
        s, state, _ = lif.step(c2[t], state)
        outs.append(s)
    s2 = torch.stack(outs)
    loss_of(s2, state.v).backward()

    assert s1.sum() > 0 and s1.sum() < s1.numel()  # the test exercises firing and not firing
    assert torch.equal(s1, s2)
    torch.testing.assert_close(st1.v, state.v, rtol=0, atol=1e-12)
    torch.testing.assert_close(c1.grad, c2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(v1.grad, v2.grad, rtol=1e-10, atol=1e-12)


def test_li_scan_equals_stepwise_and_gradient():
    torch.manual_seed(1)
    li = LI(tau=5.0).double()
    x = torch.randn(12, 2, 4, dtype=torch.float64, requires_grad=True)
    out, _, _ = li.scan(x)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    g1 = x.grad.clone()
    x.grad = None
    state, outs = None, []
    for t in range(12):
        u, state = li(x[t], state)
        outs.append(u)
    out2 = torch.stack(outs)
    (out2 * w).sum().backward()
    torch.testing.assert_close(out, out2, rtol=0, atol=1e-12)
    torch.testing.assert_close(x.grad, g1, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tau": -1.0}, "tau"),
        ({"tau": float("nan")}, "tau"),
        ({"threshold": 0.0}, "threshold"),
        ({"reset": "bounce"}, "reset"),
        ({"dt": -0.5}, "dt"),
    ],
)
def test_lif_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LIF(**kwargs)


def test_per_neuron_parameter_shape_is_checked_against_population():
    from asyncsnn.network import Network

    with pytest.raises(ValueError, match="population shape"):
        Network(nn.Linear(4, 3), LIF(tau=torch.ones(5) * 10), input_shape=(4,))
