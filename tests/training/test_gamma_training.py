"""Online training of SpikingGamma networks against BPTT of the same loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asyncsnn import GammaReadout, Network, SpikingGamma
from asyncsnn.training.gamma import bptt_sequence, online_sequence

TAU = (3.0, 5.0, 8.0)


def make_net(hidden_layers: int = 1, per_synapse: bool = False, conv: bool = False) -> Network:
    torch.manual_seed(0)
    if conv:
        modules = [nn.Conv2d(1, 3, 2, bias=False), SpikingGamma(tau=TAU, threshold=0.02), nn.Flatten()]
        width = 3 * 2 * 2
        shape = (1, 3, 3)
    else:
        modules, width, shape = [], 3, (3,)
    for size in (7, 5)[:hidden_layers]:
        modules += [
            nn.Linear(width, size, bias=False),
            SpikingGamma(tau=TAU, threshold=0.02, per_synapse=per_synapse),
        ]
        width = size
    modules += [nn.Linear(width, 2, bias=False), GammaReadout(tau=TAU)]
    net = Network(*modules, input_shape=shape).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


def gradients(net: Network, fn) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    net.zero_grad(set_to_none=True)
    out, _ = fn()
    return out, {n: p.grad.clone() for n, p in net.named_parameters()}


def data(shape=(3,), T=60, B=4):
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(T, B, *shape, generator=g) < 0.3).double()
    labels = torch.randint(0, 2, (B,), generator=g)
    return x, labels


def classification_loss(labels, start=10):
    return lambda t, out: nn.functional.cross_entropy(out, labels) if t >= start else None


@pytest.mark.parametrize("per_synapse", [False, True])
def test_online_gradient_equals_bptt_for_one_hidden_layer(per_synapse):
    net = make_net(per_synapse=per_synapse)
    x, labels = data()
    loss = classification_loss(labels)
    out_b, g_bptt = gradients(net, lambda: bptt_sequence(net, x, loss))
    out_o, g_online = gradients(net, lambda: online_sequence(net, x, loss))
    torch.testing.assert_close(out_o, out_b, rtol=0, atol=1e-12)
    for name, g in g_bptt.items():
        assert g.abs().max() > 0, name
        torch.testing.assert_close(g_online[name], g, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_fast_path_equals_bptt_across_chunk_boundaries(chunk):
    from asyncsnn.training import gamma_fast
    from asyncsnn.training.gamma import StepCrossEntropy

    net = make_net()
    assert gamma_fast.supported(net)
    x, labels = data()
    closed_form = StepCrossEntropy(labels, start=10, steps=50)
    plain = classification_loss(labels)  # no closed form: autograd every step
    out_b, g_bptt = gradients(net, lambda: bptt_sequence(net, x, plain))
    for loss in (closed_form, plain):
        out_f, g_fast = gradients(
            net,
            lambda loss=loss: gamma_fast.online_two_layer(
                net, x, loss, optimizer=None, update_every=None, chunk=chunk
            ),
        )
        torch.testing.assert_close(out_f, out_b, rtol=0, atol=1e-12)
        scale = 50.0 if loss is closed_form else 1.0  # StepCrossEntropy averages over the 50 steps
        for name, g in g_bptt.items():
            torch.testing.assert_close(g_fast[name] * scale, g, rtol=1e-5, atol=1e-5, msg=name)


def test_reference_and_fast_online_paths_agree_with_streaming_updates():
    x, labels = data()
    results = []
    for reference in (True, False):
        net = make_net()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
        online_sequence(
            net, x, classification_loss(labels), optimizer=optimizer, update_every=15, reference=reference
        )
        results.append([p.detach().clone() for p in net.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_online_regression_loss_at_every_step_equals_bptt():
    net = make_net()
    x, _ = data()
    target = torch.sin(torch.arange(60, dtype=torch.float64) / 5)[:, None, None].expand(60, 4, 2)
    loss = lambda t, out: ((out - target[t]) ** 2).mean()  # noqa: E731
    _, g_bptt = gradients(net, lambda: bptt_sequence(net, x, loss))
    _, g_online = gradients(net, lambda: online_sequence(net, x, loss))
    for name, g in g_bptt.items():
        torch.testing.assert_close(g_online[name], g, rtol=1e-5, atol=1e-5, msg=name)


def test_deeper_networks_top_layer_and_readout_are_exact_lower_layers_time_local():
    net = make_net(hidden_layers=2)
    x, labels = data()
    loss = classification_loss(labels)
    _, g_bptt = gradients(net, lambda: bptt_sequence(net, x, loss))
    _, g_online = gradients(net, lambda: online_sequence(net, x, loss))
    exact = ["body.2.weight", "body.3.bucket_weight", "body.3.bias", "body.4.weight", "body.5.bucket_weight"]
    for name in exact:
        torch.testing.assert_close(g_online[name], g_bptt[name], rtol=1e-5, atol=1e-5, msg=name)
    # the lowest layer gets time-local credit only: a different (truncated) gradient
    assert not torch.allclose(g_online["body.0.weight"], g_bptt["body.0.weight"], rtol=1e-3, atol=1e-6)


def test_without_traces_only_the_readout_is_exact():
    net = make_net()
    x, labels = data()
    loss = classification_loss(labels)
    _, g_bptt = gradients(net, lambda: bptt_sequence(net, x, loss))
    _, g_local = gradients(net, lambda: online_sequence(net, x, loss, exact=False))
    torch.testing.assert_close(g_local["body.2.weight"], g_bptt["body.2.weight"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(g_local["body.0.weight"], g_bptt["body.0.weight"], rtol=1e-3, atol=1e-6)


def test_convolutional_top_layer_falls_back_to_time_local_credit():
    net = make_net(hidden_layers=0, conv=True)
    x, labels = data(shape=(1, 3, 3))
    loss = classification_loss(labels)
    _, g_bptt = gradients(net, lambda: bptt_sequence(net, x, loss))
    _, g_online = gradients(net, lambda: online_sequence(net, x, loss))
    torch.testing.assert_close(g_online["body.3.weight"], g_bptt["body.3.weight"], rtol=1e-5, atol=1e-5)
    assert all(torch.isfinite(g).all() for g in g_online.values())


def test_update_every_steps_the_optimizer_while_the_sequence_streams():
    net = make_net()
    x, labels = data()
    before = net.layers[0].synapse[0].weight.detach().clone()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    seen = []
    original = optimizer.step

    def counting_step(*args, **kwargs):
        seen.append(net.layers[0].synapse[0].weight.detach().clone())
        return original(*args, **kwargs)

    optimizer.step = counting_step
    online_sequence(net, x, classification_loss(labels), optimizer=optimizer, update_every=20)
    assert len(seen) == 3  # steps 20, 40, 60
    assert not torch.equal(net.layers[0].synapse[0].weight, before)
    with pytest.raises(ValueError, match="optimizer"):
        online_sequence(net, x, classification_loss(labels), update_every=5)


def test_training_needs_a_gamma_readout():
    net = Network(nn.Linear(3, 4, bias=False), SpikingGamma(tau=TAU), input_shape=(3,))
    x, labels = data()
    with pytest.raises(ValueError, match="GammaReadout"):
        online_sequence(net, x.float(), classification_loss(labels))
