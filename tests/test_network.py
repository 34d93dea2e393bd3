import pytest
import torch
from torch import nn

from asyncsnn.network import Network
from asyncsnn.neurons import LI, LIF


def test_shapes_and_dense_fan_out():
    net = Network(
        nn.Flatten(), nn.Linear(784, 256), LIF(), nn.Linear(256, 10), LIF(), input_shape=(1, 28, 28)
    )
    assert net.population_shapes == [(256,), (10,)]
    assert net.population_sizes == [256, 10]
    assert torch.equal(net.fan_out(0), torch.full((784,), 256))
    assert torch.equal(net.fan_out(1), torch.full((256,), 10))


def test_conv_fan_out_equals_brute_force_jacobian_count():
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    net = Network(
        conv,
        LIF(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 2 * 2, 5),
        LIF(),
        input_shape=(2, 7, 7),
    )
    for layer in net.layers:
        # brute force: which outputs change when one presynaptic neuron gets an event
        counts = []
        for i in range(layer.in_size):
            e = torch.zeros(1, layer.in_size)
            e[0, i] = 1.0
            with torch.no_grad():
                delta = layer.synapse(e.reshape(1, *layer.in_shape)) - layer.synapse(
                    torch.zeros(1, *layer.in_shape)
                )
            counts.append(int((delta.abs() > 0).sum()))
        assert net.fan_out(layer.index).tolist() == counts


@pytest.mark.parametrize(
    "modules,match",
    [
        ((nn.Linear(4, 3),), "must end with a population"),
        ((LIF(),), "no synapse before it"),
        ((nn.Linear(4, 3), nn.ReLU(), LIF()), "not supported"),
        ((nn.Linear(5, 3), LIF()), "do not accept frames"),
        ((nn.Linear(4, 3), LI(), nn.Linear(3, 2), LIF()), "last population"),
        ((nn.Linear(4, 3), LIF(dt=1.0), nn.Linear(3, 2), LIF(dt=0.5)), "share one dt"),
    ],
)
def test_invalid_networks_are_rejected(modules, match):
    with pytest.raises(ValueError, match=match):
        Network(*modules, input_shape=(4,))
