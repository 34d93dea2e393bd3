"""NeuroBench wrapper: its own behaviour (no neurobench needed), then NeuroBench's metrics on asyncsnn
networks compared with asyncsnn's own SynOps and spike counts (skipped when neurobench is missing)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from asyncsnn.data import to_batch_first
from asyncsnn.engines import async_, sync
from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.interop.neurobench import AsyncSNNModel, PopulationProbe
from asyncsnn.metrics import predict
from asyncsnn.network import Network
from asyncsnn.neurons import LI, LIF, GammaReadout, SpikingGamma

T, B = 12, 6


def dense_net(readout: str = "lif") -> Network:
    torch.manual_seed(0)
    last = LIF(tau=8.0, threshold=0.3) if readout == "lif" else LI(tau=5.0)
    return Network(
        nn.Linear(10, 16),
        LIF(tau=10.0, threshold=0.4),
        nn.Linear(16, 4),
        last,
        input_shape=(10,),
    )


def conv_net(pool: bool = False) -> Network:
    torch.manual_seed(1)
    head = [nn.Conv2d(2, 3, 3, padding=1)] + ([nn.AvgPool2d(2)] if pool else [])
    side = 3 if pool else 6
    return Network(
        *head,
        LIF(tau=6.0, threshold=0.2),
        nn.Flatten(),
        nn.Linear(3 * side * side, 5),
        LIF(tau=9.0, threshold=0.2),
        input_shape=(2, 6, 6),
    )


def spikes_in(shape, density=0.4, seed=2) -> torch.Tensor:
    """Time-first binary input ``[T, B, *shape]``."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, *shape, generator=g) < density).float()


# ----- the wrapper alone -------------------------------------------------------------------------------
@pytest.mark.parametrize("readout", ["lif", "li"])
def test_predictions_equal_asyncsnn_predict_on_batch_first_data(readout):
    net = dense_net(readout)
    x = spikes_in((10,))
    model = AsyncSNNModel(net)
    preds = model(to_batch_first(x).contiguous())
    reference = sync.run(net, x)
    assert preds.shape == (B,)
    assert torch.equal(model.last_output, reference.output)
    mode = "membrane" if readout == "li" else "spikes"
    assert torch.equal(preds, predict(reference.output, mode))
    assert [p.shape for p in model.last_populations] == [(T, B, 16), (T, B, 4)]


def test_time_first_input_with_batch_first_false():
    net = dense_net()
    x = spikes_in((10,))
    batch_first = AsyncSNNModel(net)(to_batch_first(x))
    time_first = AsyncSNNModel(net, batch_first=False)(x)
    assert torch.equal(batch_first, time_first)


def test_batch_first_is_converted_not_reinterpreted():
    """A [B, T, ...] batch with B != T: reading it as time-first would run B frames of T samples."""
    net = dense_net()
    x = spikes_in((10,))  # T=12, B=6
    model = AsyncSNNModel(net)
    assert model(to_batch_first(x)).shape == (B,)
    assert model.last_output.shape == (T, B, 4)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        model(torch.ones(10))


def test_async_engine_predictions():
    net = dense_net()
    x = spikes_in((10,))
    cfg = AsyncConfig(scheduler="layer", group_size=16)
    model = AsyncSNNModel(net, engine="async", async_config=cfg)
    preds = model(to_batch_first(x))
    reference = async_.run(net, x, cfg)
    assert torch.equal(model.last_result.output, reference.output)
    assert torch.equal(preds, predict(reference.output))
    assert torch.equal(model.last_result.records.total_synops, reference.records.total_synops)


def test_connection_and_activation_layers():
    net = conv_net()
    model = AsyncSNNModel(net)
    assert model.__net__() is net
    conns = model.connection_layers()
    real = [m for m in net.body if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert [type(c) for c in conns] == [type(m) for m in real]
    for probe, m in zip(conns, real):  # the probes hold the synapses' own tensors (no copy)
        assert probe is not m and probe.weight is m.weight and probe.bias is m.bias
    acts = model.activation_layers()
    assert [a["layer_name"] for a in acts] == ["population0", "population1"]
    assert all(isinstance(a["layer"], PopulationProbe) for a in acts)
    # a non-spiking readout is not an activation layer
    assert len(AsyncSNNModel(dense_net("li")).activation_layers()) == 1
    model.reset()  # a no-op: every call starts from rest


def test_rejected_arguments():
    net = dense_net()
    with pytest.raises(ValueError, match="engine"):
        AsyncSNNModel(net, engine="fast")
    with pytest.raises(ValueError, match="async_config"):
        AsyncSNNModel(net, async_config=AsyncConfig())
    with pytest.raises(TypeError):
        AsyncSNNModel(nn.Linear(2, 2))
    gamma = Network(
        nn.Linear(4, 3, bias=False),
        SpikingGamma(),
        nn.Linear(3, 2, bias=False),
        GammaReadout(),
        input_shape=(4,),
    )
    with pytest.raises(ValueError, match="SpikingGamma"):
        AsyncSNNModel(gamma)


# ----- with NeuroBench -----------------------------------------------------------------------------------
REASON = (
    "NeuroBench metric tests need neurobench (not in asyncsnn[test]: neurobench 2.3 requires torchaudio, "
    "which pins an older torch; install it with pip install --no-deps neurobench, see README)"
)


@pytest.fixture
def nb():
    return pytest.importorskip("neurobench", reason=REASON)


def run_benchmark(model, x, labels, workload, static=(), batch_size=4):
    from neurobench.benchmarks import Benchmark

    loader = DataLoader(TensorDataset(to_batch_first(x).contiguous(), labels), batch_size=batch_size)
    bench = Benchmark(model, loader, [], [], [list(static), list(workload)])
    try:
        return bench.run(quiet=True)
    finally:
        model.cleanup_hooks()


def asyncsnn_totals(net, x):
    """asyncsnn's SynOps per block, spikes and neuron-frames of spiking populations, summed over samples."""
    result = sync.run(net, x)
    synops = [float(s.sum()) for s in result.records.synops]
    spikes = float(result.records.total_spikes.sum())
    neuron_frames = T * x.shape[1] * sum(layer.size for layer in net.layers if layer.population.spiking)
    return result, synops, spikes, neuron_frames


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_neurobench_synops_and_sparsity_equal_asyncsnn(nb, kind):
    """Binary input, no zero weight, one Linear / Conv2d per block: NeuroBench's effective ACs are asyncsnn's
    SynOps (events x fan-out, per sample) and its activation sparsity is 1 - asyncsnn's spike density."""
    from neurobench.metrics.static import ConnectionSparsity, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, SynapticOperations

    net = dense_net() if kind == "dense" else conv_net()
    x = spikes_in(net.input_shape)
    labels = torch.arange(B) % net.output_size
    result, synops, spikes, neuron_frames = asyncsnn_totals(net, x)
    assert spikes > 0 and all(
        p.weight.count_nonzero() == p.weight.numel() for p in AsyncSNNModel(net).connection_layers()
    )

    model = AsyncSNNModel(net)
    out = run_benchmark(
        model,
        x,
        labels,
        [ClassificationAccuracy, SynapticOperations, ActivationSparsity],
        [ParameterCount, ConnectionSparsity],
    )
    ops = out["SynapticOperations"]
    assert ops["Effective_MACs"] == 0  # every synapse sees 0/1 values: accumulates only
    assert ops["Effective_ACs"] == pytest.approx(sum(synops) / B, rel=1e-12)
    assert out["ActivationSparsity"] == pytest.approx(1 - spikes / neuron_frames, rel=1e-12)
    accuracy = (predict(result.output) == labels).double().mean()
    assert out["ClassificationAccuracy"] == pytest.approx(float(accuracy))
    assert out["ParameterCount"] == sum(p.numel() for p in net.parameters())
    assert out["ConnectionSparsity"] == 0
    # Dense: every weight used at every frame, per sample
    dense = sum(T * p.weight.numel() for p in model.connection_layers() if isinstance(p, nn.Linear))
    if kind == "dense":
        assert ops["Dense"] == dense
    assert model.activation_hooks == [] and model.connection_hooks == []  # cleaned up


def test_neurobench_counts_where_definitions_differ(nb):
    """Three documented differences from asyncsnn's SynOps."""
    from neurobench.metrics.workload import SynapticOperations

    labels = torch.zeros(B, dtype=torch.long)

    # 1. A pool after the conv in one block: NeuroBench counts the conv's operations (before pooling);
    #    asyncsnn counts an event once per *distinct* postsynaptic neuron it reaches (after pooling).
    net = conv_net(pool=True)
    x = spikes_in(net.input_shape)
    _, synops, _, _ = asyncsnn_totals(net, x)
    ops = run_benchmark(AsyncSNNModel(net), x, labels, [SynapticOperations])["SynapticOperations"]
    conv = net.body[0]
    with torch.no_grad():
        ones = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        nn.init.ones_(ones.weight)
        conv_ops = float(ones(x.reshape(T * B, *net.input_shape)).sum())
    assert isinstance(conv, nn.Conv2d) and synops[0] < conv_ops
    assert ops["Effective_ACs"] == pytest.approx((conv_ops + synops[1]) / B)

    # 2. Zero weights: NeuroBench skips them, asyncsnn counts the structural connection.
    net = dense_net()
    with torch.no_grad():
        net.body[0].weight[:, :5] = 0.0
    x = spikes_in(net.input_shape)
    _, synops, _, _ = asyncsnn_totals(net, x)
    ops = run_benchmark(AsyncSNNModel(net), x, labels, [SynapticOperations])["SynapticOperations"]
    block0 = float(x[..., 5:].sum()) * 16  # events of the inputs whose weights are not all zero
    assert synops[0] == float(x.sum()) * 16
    assert ops["Effective_ACs"] == pytest.approx((block0 + synops[1]) / B)

    # 3. Count input (values > 1): NeuroBench counts each nonzero input once, as a MAC (not an AC);
    #    asyncsnn counts every event (value x fan-out).
    net = dense_net()
    x = spikes_in(net.input_shape) * 2.0
    _, synops, _, _ = asyncsnn_totals(net, x)
    ops = run_benchmark(AsyncSNNModel(net), x, labels, [SynapticOperations])["SynapticOperations"]
    assert ops["Effective_MACs"] == pytest.approx(synops[0] / 2 / B)
    assert ops["Effective_ACs"] == pytest.approx(synops[1] / B)


def test_neurobench_async_engine(nb):
    """Accuracy on the asynchronous engine equals asyncsnn's; hooks record nothing when not registered."""
    from neurobench.metrics.workload import ClassificationAccuracy

    net = dense_net()
    x = spikes_in(net.input_shape)
    labels = torch.arange(B) % 4
    cfg = AsyncConfig(scheduler="layer", group_size=16)
    model = AsyncSNNModel(net, "async", cfg)
    out = run_benchmark(model, x, labels, [ClassificationAccuracy])
    expected = (predict(async_.run(net, x, cfg).output) == labels).double().mean()
    assert out["ClassificationAccuracy"] == pytest.approx(float(expected))
    assert model.last_result.spike_trains is None  # no hook-based metric: no spike trains recorded


@pytest.mark.parametrize(
    "kind, cfg",
    [
        ("dense", AsyncConfig(scheduler="layer", group_size=16)),
        ("dense", AsyncConfig(scheduler="random", group_size=1)),
        ("dense", AsyncConfig(scheduler="momentum", group_size=3, input_mode="scheduled")),
        ("conv", AsyncConfig(scheduler="random", group_size=4)),
    ],
    ids=["dense-layer", "dense-random", "dense-momentum-scheduled", "conv-random"],
)
def test_neurobench_hook_metrics_on_the_async_engine_equal_its_records(nb, kind, cfg):
    """Every emitted event is delivered (no stop rule): NeuroBench's effective ACs are the async engine's own
    SynOps and its activation sparsity is 1 - the spikes it emitted / (neurons x frames x samples)."""
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations

    net = dense_net() if kind == "dense" else conv_net()
    x = spikes_in(net.input_shape)
    labels = torch.arange(B) % net.output_size
    with torch.no_grad():
        result = async_.run(net, x, cfg, record_spikes=True)
    synops = float(result.records.total_synops.sum())
    spikes = float(result.records.total_spikes.sum())
    neuron_frames = T * B * sum(layer.size for layer in net.layers)
    assert spikes > 0 and float(result.records.dropped_events.sum()) == 0

    model = AsyncSNNModel(net, "async", cfg)
    out = run_benchmark(model, x, labels, [SynapticOperations, ActivationSparsity], batch_size=B)
    ops = out["SynapticOperations"]
    assert ops["Effective_MACs"] == 0
    assert ops["Effective_ACs"] == pytest.approx(synops / B, rel=1e-12)
    assert out["ActivationSparsity"] == pytest.approx(1 - spikes / neuron_frames, rel=1e-12)
    for a, b in zip(model.last_populations, result.spike_trains):  # what the probes were fed
        assert torch.equal(a, b)
    assert model.activation_hooks == [] and model.connection_hooks == []


def test_neurobench_counts_events_the_async_engine_dropped(nb):
    """NeuroBench reruns each block on every spike emitted, the engine counts only delivered events: spikes
    dropped at ``max_steps`` cost their fan-out in NeuroBench's count only."""
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations

    net = dense_net()
    x = spikes_in(net.input_shape)
    cfg = AsyncConfig(scheduler="fifo", group_size=1, max_steps=2)
    with torch.no_grad():
        result = async_.run(net, x, cfg)
    dropped = float(result.records.dropped_events.sum())
    assert dropped > 0  # hidden spikes (fan-out 4 each); the prioritized input is always delivered
    out = run_benchmark(
        AsyncSNNModel(net, "async", cfg),
        x,
        torch.zeros(B, dtype=torch.long),
        [SynapticOperations, ActivationSparsity],
    )
    synops = float(result.records.total_synops.sum())
    assert out["SynapticOperations"]["Effective_ACs"] == pytest.approx((synops + 4 * dropped) / B, rel=1e-12)
    spikes = float(result.records.total_spikes.sum())  # sparsity counts emitted spikes, dropped or not
    assert out["ActivationSparsity"] == pytest.approx(1 - spikes / (T * B * 20), rel=1e-12)


def test_neurobench_metrics_helper(nb):
    from asyncsnn.interop.neurobench import neurobench_metrics

    net = dense_net()
    x = spikes_in(net.input_shape)
    labels = torch.arange(B) % 4
    loader = DataLoader(TensorDataset(to_batch_first(x).contiguous(), labels), batch_size=4)
    out = neurobench_metrics(net, loader)
    _, synops, spikes, neuron_frames = asyncsnn_totals(net, x)
    assert set(out) == {
        "ParameterCount",
        "ClassificationAccuracy",
        "SynapticOperations",
        "ActivationSparsity",
    }
    assert out["SynapticOperations"]["Effective_ACs"] == pytest.approx(sum(synops) / B)
    assert out["ActivationSparsity"] == pytest.approx(1 - spikes / neuron_frames)
