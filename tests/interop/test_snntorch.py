"""snnTorch import: the converted network gives snnTorch's spikes bit for bit, then runs asynchronously."""

import pytest
import torch
from torch import nn

snn = pytest.importorskip("snntorch")
from snntorch import surrogate, utils  # noqa: E402

from asyncsnn.engines import async_, sync  # noqa: E402
from asyncsnn.engines.async_config import AsyncConfig  # noqa: E402
from asyncsnn.interop import from_snntorch  # noqa: E402
from asyncsnn.neurons import LIF  # noqa: E402

GAIN = 1.0
RESETS = [("zero", True), ("zero", False), ("subtract", False)]  # (reset_mechanism, reset_delay)


def leaky(beta, reset, delay, threshold=1.0, **kw):
    return snn.Leaky(
        beta=beta, threshold=threshold, reset_mechanism=reset, reset_delay=delay, init_hidden=True, **kw
    )


def dense_model(reset, delay, bias=True):
    torch.manual_seed(0)
    n_hidden = 32
    return nn.Sequential(
        nn.Linear(20, n_hidden, bias=bias),
        leaky(torch.linspace(0.5, 0.97, n_hidden), reset, delay),  # per-neuron beta
        nn.Linear(n_hidden, 16, bias=bias),
        leaky(0.9, reset, delay, threshold=torch.linspace(0.4, 0.8, 16)),  # per-neuron threshold
        nn.Linear(16, 5, bias=bias),
        leaky(0.8, reset, delay, threshold=0.5, output=True),
    )


def conv_model(reset, delay, bias=True):
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=bias),
        leaky(torch.tensor([0.6, 0.7, 0.8, 0.95]).reshape(4, 1, 1), reset, delay, threshold=0.5),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, bias=bias),
        leaky(0.9, reset, delay, threshold=0.3),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 5, bias=bias),
        leaky(0.85, reset, delay, threshold=0.3, output=True),
    )


MODELS = {"dense": (dense_model, (20,)), "conv": (conv_model, (2, 10, 10))}


def moderate_currents(model, gain=GAIN):
    """Non-negative weights whose sum (plus bias) per neuron is ``gain`` times its threshold.

    Keeps every layer active while membranes stay below twice the threshold (checked in the test): the
    documented condition under which subtractive reset matches snnTorch's ``reset_delay=False`` exactly."""
    synapse = None
    with torch.no_grad():
        for m in model:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                synapse = m
            elif isinstance(m, snn.Leaky):
                n_out = synapse.weight.shape[0]
                thr = m.threshold.reshape(-1).expand(n_out) if m.threshold.numel() in (1, n_out) else None
                synapse.weight.abs_()
                total = synapse.weight.flatten(1).sum(1)
                if synapse.bias is not None:
                    synapse.bias.abs_()
                    total = total + synapse.bias
                scale = gain * thr / total
                synapse.weight.mul_(scale.reshape(-1, *[1] * (synapse.weight.dim() - 1)))
                if synapse.bias is not None:
                    synapse.bias.mul_(scale)
    return model


def spikes_in(shape, T=40, B=3, density=0.3, seed=2):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, *shape, generator=g) < density).float()


def run_snntorch(model, x):
    """The standard snnTorch loop for init_hidden=True neurons: reset, then one call per frame.

    Returns, per Leaky, its spikes and the membrane it holds after each step, both ``[T, B, ...]``."""
    leakies = [m for m in model if isinstance(m, snn.Leaky)]
    spikes, mems = [[] for _ in leakies], [[] for _ in leakies]

    def record(i):
        def hook(module, args, out):
            spikes[i].append((out[0] if isinstance(out, tuple) else out).detach().clone())
            mems[i].append(module.mem.detach().clone())

        return hook

    handles = [m.register_forward_hook(record(i)) for i, m in enumerate(leakies)]
    utils.reset(model)
    with torch.no_grad():
        for t in range(x.shape[0]):
            model(x[t])
    for h in handles:
        h.remove()
    return [torch.stack(s) for s in spikes], [torch.stack(m) for m in mems]


def post_reset(u, s, lif):
    return u * (1 - s) if lif.reset_mode == "zero" else u - lif.threshold * s


@pytest.mark.parametrize("reset,delay", RESETS)
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_same_spikes_and_membranes_as_snntorch(kind, reset, delay):
    make, shape = MODELS[kind]
    model = make(reset, delay)
    if reset == "subtract":
        moderate_currents(model)
    net = from_snntorch(model, shape)
    x = spikes_in(shape)
    ref_spikes, ref_mems = run_snntorch(model, x)
    T, B = x.shape[:2]
    with torch.no_grad():
        out = sync.run(net, x).output
        loop_spikes, loop_u, _ = sync.population_outputs(net, x, fused=False)
        fused_spikes, fused_u, _ = sync.population_outputs(net, x)
    assert torch.equal(out, ref_spikes[-1].reshape(T, B, -1))
    for layer, s_ref, m_ref, s_loop, u_loop, s_fused, u_fused in zip(
        net.layers, ref_spikes, ref_mems, loop_spikes, loop_u, fused_spikes, fused_u
    ):
        assert 0 < s_ref.mean() < 0.5  # every layer is active and not saturated: the test bites
        assert torch.equal(s_loop, s_ref)
        assert torch.equal(s_fused, s_ref)
        # snnTorch returns the pre-reset membrane when it delays the reset, the post-reset one otherwise
        u_ref = u_loop if delay else post_reset(u_loop, s_loop, layer.population)
        assert torch.equal(u_ref, m_ref)
        # the fused scan rounds beta * v + current once (addcmul): equal up to the last bit
        torch.testing.assert_close(u_fused, u_loop, rtol=1e-6, atol=1e-6)
        if reset == "subtract":  # the documented condition for exact subtractive equivalence holds here
            assert (u_loop[s_loop > 0] <= 2 * layer.population.threshold.expand_as(u_loop)[s_loop > 0]).all()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("reset,delay", RESETS)
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_converted_network_runs_asynchronously_unchanged(kind, reset, delay, bias):
    make, shape = MODELS[kind]
    # non-negative weights keep every layer active (bias: the async engine adds it at the start of the frame)
    model = moderate_currents(make(reset, delay, bias=bias))
    net = from_snntorch(model, shape)
    x = spikes_in(shape, density=0.5, seed=3)
    ref_spikes, _ = run_snntorch(model, x)
    T, B = x.shape[:2]
    with torch.no_grad():
        ref = sync.run(net, x)
        out = async_.run(
            net, x, AsyncConfig(scheduler="layer", group_size=max(net.population_sizes)), backend="reference"
        )
    assert all(s.sum() > 0 for s in ref_spikes)
    assert torch.equal(ref.output, ref_spikes[-1].reshape(T, B, -1))
    assert torch.equal(out.output, ref.output)
    for a, b in zip(ref.records.spikes, out.records.spikes):
        assert torch.equal(a, b)


@pytest.mark.parametrize("reset,delay", RESETS)
def test_gradients_agree_with_snntorch_bptt(reset, delay):
    model = moderate_currents(dense_model(reset, delay))
    net = from_snntorch(model, (20,))
    x = spikes_in((20,), T=25, density=0.5, seed=4)
    utils.reset(model)
    theirs = torch.stack([model(x[t])[0] for t in range(x.shape[0])])
    ours = sync.run(net, x).output
    assert torch.equal(ours, theirs.detach())
    w = torch.randn(ours.shape, generator=torch.Generator().manual_seed(5))
    g_theirs = torch.autograd.grad((theirs * w).sum(), list(model.parameters()))
    g_ours = torch.autograd.grad((ours * w).sum(), list(net.parameters()))
    for a, b in zip(g_ours, g_theirs):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_parameters_are_mapped_and_copied():
    model = nn.Sequential(
        nn.Linear(4, 3),
        snn.Leaky(
            beta=torch.tensor([0.6, 0.8, 0.99]),
            threshold=0.7,
            learn_beta=True,
            learn_threshold=True,
            reset_mechanism="zero",
            spike_grad=surrogate.fast_sigmoid(slope=10),
        ),
    )
    net = from_snntorch(model, (4,), dt=0.5)
    lif = net.layers[0].population
    assert isinstance(lif, LIF) and lif.dt == 0.5 and lif.reset_mode == "zero" and lif.detach_reset
    assert torch.equal(lif.beta, model[1].beta.detach())  # bit for bit, via the chosen float32 tau
    torch.testing.assert_close(lif.tau, -0.5 / torch.log(model[1].beta.detach()))
    assert torch.equal(lif.threshold, torch.tensor(0.7))
    assert (lif.surrogate.name, lif.surrogate.scale) == ("fast_sigmoid", 10.0)
    assert [n for n, _ in net.named_parameters()] == ["body.0.weight", "body.0.bias"]  # beta/threshold fixed
    w = net.body[0].weight
    assert torch.equal(w, model[0].weight) and w.data_ptr() != model[0].weight.data_ptr()
    with torch.no_grad():
        w.add_(1.0)
    assert not torch.equal(w, model[0].weight)  # no shared parameters


def test_atan_scale_and_no_reset_delay_mapping():
    model = nn.Sequential(
        nn.Linear(4, 3),
        snn.Leaky(
            beta=0.9, reset_mechanism="subtract", reset_delay=False, spike_grad=surrogate.atan(alpha=3.0)
        ),
    )
    lif = from_snntorch(model, (4,)).layers[0].population
    assert (lif.surrogate.name, lif.surrogate.scale) == ("atan", 3.0)
    assert lif.reset_mode == "subtract" and not lif.detach_reset  # snnTorch keeps this reset's gradient


def test_unknown_surrogate_warns_and_uses_atan():
    model = nn.Sequential(
        nn.Linear(4, 3), snn.Leaky(beta=0.9, spike_grad=surrogate.triangular(), reset_mechanism="zero")
    )
    with pytest.warns(UserWarning, match="atan"):
        lif = from_snntorch(model, (4,)).layers[0].population
    assert lif.surrogate.name == "atan"


@pytest.mark.parametrize(
    "module,match",
    [
        (nn.MaxPool2d(2), "not a linear map"),
        (nn.ReLU(), "ReLU.*supported: nn.Linear"),
        (snn.Synaptic(alpha=0.5, beta=0.9), "Synaptic"),
    ],
)
def test_unsupported_modules_are_named(module, match):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), module, nn.Flatten(), nn.Linear(8, 2), snn.Leaky(0.9))
    with pytest.raises(ValueError, match=match):
        from_snntorch(model, (1, 6, 6))


@pytest.mark.filterwarnings("ignore:Inhibition is an unstable feature")
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"beta": 0.9}, "reset_delay=True"),  # snnTorch's defaults: subtract with a delayed reset
        ({"beta": 0.9, "reset_mechanism": "none"}, "reset_mechanism='none'"),
        ({"beta": 0.0, "reset_mechanism": "zero"}, "beta must lie strictly between 0 and 1"),
        ({"beta": 1.0, "reset_mechanism": "zero"}, "beta must lie strictly between 0 and 1"),
        ({"beta": torch.tensor([0.5, 1.2]), "reset_mechanism": "zero"}, "range"),
        ({"beta": 0.9, "reset_mechanism": "zero", "inhibition": True}, "inhibition"),
        ({"beta": 0.9, "reset_mechanism": "zero", "graded_spikes_factor": 2.0}, "graded_spikes_factor"),
        ({"beta": 0.9, "reset_mechanism": "zero", "threshold": -1.0}, "threshold must be positive"),
    ],
)
def test_leaky_settings_without_an_exact_equivalent_are_refused(kwargs, match):
    model = nn.Sequential(nn.Linear(4, 2), snn.Leaky(**kwargs))
    with pytest.raises(ValueError, match=match):
        from_snntorch(model, (4,))


def test_nested_sequential_is_flattened():
    model = nn.Sequential(
        nn.Sequential(nn.Flatten(), nn.Linear(8, 3)), snn.Leaky(0.9, reset_mechanism="zero")
    )
    net = from_snntorch(model, (2, 4))
    assert net.population_shapes == [(3,)]


def test_warns_when_no_float32_tau_gives_beta_exactly():
    model = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.2, reset_mechanism="zero"))
    with pytest.warns(UserWarning, match="no float32 tau reproduces beta exactly"):
        lif = from_snntorch(model, (4,), dt=0.5).layers[0].population
    torch.testing.assert_close(lif.beta, torch.tensor(0.2), rtol=1e-7, atol=0)
