import pytest
import torch
from torch import nn

from asyncsnn.engines import sync
from asyncsnn.network import Network
from asyncsnn.neurons import LI, LIF


def conv_net(readout: bool = False) -> Network:
    torch.manual_seed(0)
    last = LI(tau=20.0) if readout else LIF(tau=20.0, threshold=0.5)
    net = Network(
        nn.Conv2d(2, 4, 3, padding=1),
        LIF(tau=20.0, threshold=0.5, reset="subtract"),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 10),
        last,
        input_shape=(2, 8, 8),
    )
    return net.double()


@pytest.mark.parametrize("readout", [False, True])
def test_fused_engine_equals_frame_by_frame_reference(readout):
    net = conv_net(readout)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(40, 3, 2, 8, 8, generator=g) < 0.3).double()
    w = torch.randn(40, 3, 10, generator=g, dtype=torch.float64)
    grads = []
    results = []
    for fused in (True, False):
        net.zero_grad()
        r = sync.run(net, x, fused=fused, record_membrane=True)
        (r.output * w).sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
        results.append(r)
    a, b = results
    assert a.records.spikes[0].sum() > 0
    assert torch.equal(a.output, b.output) if not readout else torch.allclose(a.output, b.output)
    for ga, gb in zip(*grads):
        torch.testing.assert_close(ga, gb, rtol=1e-9, atol=1e-12)
    for ma, mb in zip(a.records.membrane, b.records.membrane):
        torch.testing.assert_close(ma, mb, rtol=1e-9, atol=1e-12)


def test_records_count_spikes_and_synops():
    net = Network(
        nn.Linear(3, 2, bias=False),
        LIF(threshold=0.5),
        nn.Linear(2, 4, bias=False),
        LIF(),
        input_shape=(3,),
    )
    with torch.no_grad():
        net.layers[0].synapse[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 0, 0]]))
        net.layers[1].synapse[0].weight.zero_()
    x = torch.zeros(5, 2, 3)
    x[:, 0, 0] = 1.0  # sample 0: one input event per frame on channel 0 -> neuron 0 fires every frame
    x[2, 1, 1] = 2.0  # sample 1: two events in one frame on channel 1 -> nothing fires
    r = sync.run(net, x)
    assert r.records.input_events.tolist() == [5.0, 2.0]
    assert r.records.spikes[0].tolist() == [5.0, 0.0]
    assert r.records.synops[0].tolist() == [10.0, 4.0]  # events x fan-out (2)
    assert r.records.synops[1].tolist() == [20.0, 0.0]  # 5 spikes x fan-out 4
    assert r.output.shape == (5, 2, 4)


def test_state_carries_over_between_runs():
    net = conv_net()
    x = (torch.rand(20, 2, 2, 8, 8) < 0.3).double()
    whole = sync.run(net, x)
    first = sync.run(net, x[:10])
    second = sync.run(net, x[10:], first.state)
    assert torch.equal(whole.output, torch.cat([first.output, second.output]))


@pytest.mark.parametrize(
    "x,match",
    [
        (torch.zeros(5, 2, 7), "expected \\[T, B, 2, 8, 8\\]"),
        (torch.zeros(2, 8, 8), "expected"),
        (torch.full((3, 1, 2, 8, 8), float("nan")), "NaN"),
        (torch.zeros(0, 1, 2, 8, 8), "at least one frame"),
        (torch.zeros(3, 1, 2, 8, 8, dtype=torch.int64), "floating-point"),
    ],
)
def test_bad_input_raises_value_error(x, match):
    with pytest.raises(ValueError, match=match):
        sync.run(conv_net().float(), x)
