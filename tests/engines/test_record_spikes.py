"""``async_.run(..., record_spikes=True)``: the spikes every population emitted in each frame."""

import pytest
import torch
from torch import nn

from asyncsnn.engines import async_, sync
from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.engines.events import SparseFrames
from asyncsnn.engines.kernels import numba_available
from asyncsnn.network import Network
from asyncsnn.neurons import LIF

needs_numba = pytest.mark.skipif(not numba_available(), reason="the numba kernel needs numba")

CONFIGS = [
    AsyncConfig(group_size=1, scheduler="random"),
    AsyncConfig(group_size=3, scheduler="momentum", input_mode="scheduled"),
    AsyncConfig(group_size=5, scheduler="fifo", max_steps=5, stop_after_output=4),
    # counts > 1 (a neuron fires again in a frame), events carried over and pending at the end
    AsyncConfig(group_size=4, scheduler="random", refractory=False, input_mode="scheduled", max_steps=8,
                carry_over=True),
]  # fmt: skip


def dense_net(bias: bool = True) -> Network:
    torch.manual_seed(0)
    mods = [nn.Linear(20, 12, bias=False), LIF(tau=20.0, threshold=0.3)]
    mods += [nn.Linear(12, 8, bias=bias), LIF(tau=20.0, threshold=0.3, reset="subtract")]
    mods += [nn.Linear(8, 4, bias=False), LIF(tau=20.0, threshold=0.3)]
    return Network(*mods, input_shape=(20,)).double()


def conv_net() -> Network:
    torch.manual_seed(1)
    return Network(
        nn.Conv2d(2, 3, 3, padding=1, bias=False), LIF(tau=50.0, threshold=0.3),
        nn.AvgPool2d(2), nn.Conv2d(3, 4, 3, bias=False), LIF(tau=50.0, threshold=0.2),
        nn.Flatten(), nn.Linear(4, 5, bias=False), LIF(tau=50.0, threshold=0.2),
        input_shape=(2, 6, 6),
    ).double()  # fmt: skip


NETS = {"dense": dense_net, "conv": conv_net}


def counts(shape, seed: int, steps: int = 8, batch: int = 3) -> torch.Tensor:
    """Event counts of 1 or 2 at 30 % of the (frame, sample, channel) positions."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(steps, batch, *shape, generator=g) < 0.3).double()
    x[x > 0] = torch.randint(1, 3, (int((x > 0).sum()),), generator=g).double()
    return x


def assert_consistent(net: Network, result) -> None:
    """Shapes, dtype; the output population's train is the output; per-sample sums are the spike records."""
    T, B = result.output.shape[:2]
    trains = result.spike_trains
    assert [t.shape for t in trains] == [(T, B, *layer.shape) for layer in net.layers]
    assert all(t.dtype == result.output.dtype and not t.requires_grad for t in trains)
    assert torch.equal(trains[-1].reshape(T, B, -1), result.output.detach())
    for train, spikes in zip(trains, result.records.spikes):
        assert torch.equal(train.flatten(2).sum((0, 2)), spikes)


@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_reference_trains_are_consistent_with_output_and_records(kind, cfg):
    net = NETS[kind]()
    with torch.no_grad():
        result = async_.run(net, counts(net.input_shape, 1), cfg, backend="reference", record_spikes=True)
    assert all(t.sum() > 0 for t in result.spike_trains)  # every layer fires: the checks bite
    assert_consistent(net, result)


@needs_numba
@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_numba_kernel_records_the_reference_trains(kind, cfg):
    net = NETS[kind]()
    x, labels = counts(net.input_shape, 2), torch.tensor([0, 3, 1])
    with torch.no_grad():
        ref = async_.run(net, x, cfg, labels=labels, backend="reference", record_spikes=True)
        fast = async_.run(net, x, cfg, labels=labels, backend="numba", record_spikes=True)
        plain = async_.run(net, x, cfg, labels=labels, backend="numba")
    assert_consistent(net, fast)
    for a, b in zip(ref.spike_trains, fast.spike_trains):
        assert torch.equal(a, b)
    assert plain.spike_trains is None and torch.equal(plain.output, fast.output)  # recording changes nothing
    for a, b in zip(plain.records.spikes, fast.records.spikes):
        assert torch.equal(a, b)


@needs_numba
def test_numba_kernel_records_trains_from_event_lists_and_a_start_state():
    net = conv_net()
    x = counts(net.input_shape, 3)
    cfg = AsyncConfig(group_size=2, scheduler="random", seed=5)
    with torch.no_grad():
        first = async_.run(net, x, cfg, backend="reference")
        ref = async_.run(
            net, x, cfg, state=first.state, backend="reference", record_spikes=True, sample_offset=4
        )
        fast = async_.run(
            net, SparseFrames.from_dense(x), cfg, state=first.state, record_spikes=True, sample_offset=4
        )
    for a, b in zip(ref.spike_trains, fast.spike_trains):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", ["reference", pytest.param("numba", marks=needs_numba)])
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_layer_scheduler_with_whole_layers_records_the_sync_population_outputs(kind, backend):
    # bias-free: the async engine evaluates a neuron only when an event reaches it (a bias alone cannot)
    net = dense_net(bias=False) if kind == "dense" else conv_net()
    x = (torch.rand(20, 3, *net.input_shape, generator=torch.Generator().manual_seed(4)) < 0.3).double()
    cfg = AsyncConfig(group_size=max(net.population_sizes), scheduler="layer")
    with torch.no_grad():
        populations, _, _ = sync.population_outputs(net, x)
        result = async_.run(net, x, cfg, backend=backend, record_spikes=True)
    assert all(p.sum() > 0 for p in populations)
    for a, b in zip(populations, result.spike_trains):
        assert torch.equal(a, b)


def test_backends_that_cannot_record_are_refused_or_avoided():
    net = dense_net()
    x = counts(net.input_shape, 5)
    with pytest.raises(ValueError, match="record_spikes"):  # the CUDA kernel (also needs CUDA tensors)
        with torch.no_grad():
            async_.run(net, x, backend="triton", record_spikes=True)
    if numba_available():  # the compiled training path does not record: forcing it is refused
        with pytest.raises(ValueError, match="record_spikes is not recorded by the compiled training path"):
            async_.run(net, x, backend="numba", record_spikes=True)
        assert async_._choose_backend(net, x, AsyncConfig(), False, "auto", None, True) == "reference"
        with torch.no_grad():
            assert async_._choose_backend(net, x, AsyncConfig(), False, "auto", None, True) == "numba"
    # with a gradient, "auto" runs the reference: trains recorded, output differentiable
    result = async_.run(net, x, record_spikes=True)
    assert result.output.requires_grad
    assert_consistent(net, result)
    assert async_.run(net, x).spike_trains is None  # not requested: not recorded
