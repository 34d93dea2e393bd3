"""NIR export/import: a network survives to_nir -> nir.write -> nir.read -> from_nir with the same spikes,
and a NIR consumer that discretises the graph as documented gets asyncsnn's dynamics."""

import io

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir", reason="NIR interop tests need the nir package (pip install asyncsnn[nir])")

from asyncsnn.engines import sync  # noqa: E402
from asyncsnn.interop import export_nir, from_nir, to_nir  # noqa: E402
from asyncsnn.network import Network  # noqa: E402
from asyncsnn.neurons import LI, LIF, GammaReadout, SpikingGamma  # noqa: E402


def dense_net(bias: bool = True, dt: float = 1.0) -> Network:
    torch.manual_seed(0)
    return Network(
        nn.Linear(12, 16, bias=bias),
        LIF(tau=torch.linspace(3.0, 40.0, 16), threshold=0.5, dt=dt),  # per-neuron tau
        nn.Linear(16, 8, bias=bias),
        LIF(tau=10.0, threshold=torch.linspace(0.2, 0.6, 8), dt=dt),  # per-neuron threshold
        nn.Linear(8, 4, bias=bias),
        LI(tau=torch.tensor([5.0, 6.0, 7.0, 8.0]), dt=dt),
        input_shape=(12,),
    )


def conv_net(bias: bool = True) -> Network:
    torch.manual_seed(1)
    return Network(
        nn.Conv2d(2, 4, 3, padding=1, bias=bias),
        LIF(tau=torch.tensor([4.0, 8.0, 16.0, 32.0]).reshape(4, 1, 1), threshold=0.3),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, dilation=1, bias=bias),
        LIF(tau=12.0, threshold=0.2),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 5, bias=bias),
        LIF(tau=9.0, threshold=0.2),
        input_shape=(2, 10, 10),
    )


def spikes_in(shape, T=30, B=3, density=0.4, seed=2):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, *shape, generator=g) < density).float()


def all_outputs(net, x):
    outs, membranes, _ = sync.population_outputs(net, x)
    return outs, membranes


def round_trip(net, tmp_path, **kw):
    path = tmp_path / "net.nir"
    nir.write(path, to_nir(net, **kw))
    return from_nir(path)


@pytest.mark.parametrize("method", ["exact", "euler"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_round_trip_gives_identical_spikes(kind, bias, method, tmp_path):
    net = dense_net(bias) if kind == "dense" else conv_net(bias)
    back = round_trip(net, tmp_path, method=method)
    assert back.dt == net.dt and back.input_shape == net.input_shape
    assert [type(m) for m in back.body] == [type(m) for m in net.body]
    for a, b in zip(net.layers, back.layers):
        torch.testing.assert_close(
            b.population.beta.expand(a.shape), a.population.beta.expand(a.shape), rtol=0, atol=0
        )
    x = spikes_in(net.input_shape)
    outs, mems = all_outputs(net, x)
    outs_back, mems_back = all_outputs(back, x)
    assert sum(o.sum() for o in outs[:-1]) > 0  # the comparison is not between silent networks
    for o, ob, m, mb in zip(outs, outs_back, mems, mems_back):
        assert torch.equal(o, ob)
        assert torch.equal(m, mb)


def test_graph_structure_validates_and_records_dt():
    net = conv_net()
    graph = to_nir(net, method="exact")
    types = [type(n).__name__ for n in graph.nodes.values()]
    assert types == [
        "Input",
        "Conv2d",
        "LIF",
        "AvgPool2d",
        "Conv2d",
        "LIF",
        "Flatten",
        "Affine",
        "LIF",
        "Output",
    ]
    names = list(graph.nodes)
    assert graph.edges == list(zip(names[:-1], names[1:]))
    assert graph.metadata["dt_ms"] == 1.0 and graph.metadata["dt"] == pytest.approx(1e-3)
    # nir's own structure check and shape inference agree with the network's shapes
    graph.validate_structure()
    graph.infer_types()
    assert graph.check_types()
    lifs = [n for n in graph.nodes.values() if isinstance(n, nir.LIF)]
    for node, layer in zip(lifs, net.layers):
        assert tuple(node.input_type["input"]) == layer.shape
        assert node.tau.shape == node.r.shape == node.v_threshold.shape == layer.shape
    np.testing.assert_array_equal(graph.nodes["output"].output_type["output"], [5])
    # physical tau in seconds (exact method), per channel of the first population
    np.testing.assert_allclose(lifs[0].tau[:, 0, 0], [0.004, 0.008, 0.016, 0.032])
    np.testing.assert_allclose(lifs[0].r, 1 / (1 - np.exp(-1e-3 / lifs[0].tau)))
    assert not np.any(lifs[0].v_leak) and not np.any(lifs[0].v_reset)
    flatten = graph.nodes["layer2_0_flatten"]
    assert (flatten.start_dim, flatten.end_dim) == (0, -1)  # NIR's dims leave out the batch


def nir_reference(graph, x, dt_ms, method):
    """A minimal NIR consumer in float64 numpy: Affine/Linear/LIF/LI chain, one step per frame of dt."""
    dt = dt_ms / 1000.0
    state = {}
    chain = [n for n in graph.nodes if n not in ("input", "output")]
    spikes_out = []
    for frame in x.double().numpy():
        h = frame
        for name in chain:
            node = graph.nodes[name]
            if isinstance(node, nir.Affine):
                h = h @ node.weight.T + node.bias
            elif isinstance(node, nir.Linear):
                h = h @ node.weight.T
            else:
                v = state.get(name, np.zeros_like(h))
                if method == "exact":  # zero-order hold of the input over the step
                    decay = np.exp(-dt / node.tau)
                    v = decay * v + (1 - decay) * (node.v_leak + node.r * h)
                else:  # forward Euler
                    v = v + dt / node.tau * (node.v_leak - v + node.r * h)
                if isinstance(node, nir.LIF):
                    s = (v > node.v_threshold).astype(np.float64)
                    v = np.where(s > 0, node.v_reset, v)
                    h = s
                else:
                    h = v
                state[name] = v
        spikes_out.append(h)
    return torch.from_numpy(np.stack(spikes_out))


@pytest.mark.parametrize("method", ["exact", "euler"])
def test_nir_consumer_with_same_dt_gets_our_dynamics(method):
    net = dense_net(dt=0.5)
    x = spikes_in((12,), T=25)
    graph = to_nir(net, method=method)
    reference = nir_reference(graph, x, 0.5, method)
    outs, _ = all_outputs(net, x)
    torch.testing.assert_close(reference.float(), outs[-1].reshape(reference.shape), rtol=1e-4, atol=1e-4)
    # and the hidden spikes: rebuild the graph cut after the second LIF
    names = list(graph.nodes)[:5]
    cut = nir.NIRGraph(
        nodes={**{k: graph.nodes[k] for k in names}, "output": nir.Output(output_type=np.array([8]))},
        edges=list(zip(names, names[1:] + ["output"])),
    )
    assert torch.equal(nir_reference(cut, x, 0.5, method).float(), outs[1])


def test_foreign_graph_gain_is_folded_into_weights():
    """A graph with r = 1 (as some tools write it): the input gain r * dt / tau is folded into the weights."""
    rng = np.random.default_rng(0)
    w1, b1 = rng.uniform(0, 1, (6, 4)).astype(np.float32), rng.uniform(0, 0.2, 6).astype(np.float32)
    w2 = rng.uniform(0, 1, (3, 6)).astype(np.float32)
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=w1, bias=b1),
        nir.LIF(tau=np.full(6, 0.004), r=np.ones(6), v_leak=np.zeros(6), v_threshold=np.full(6, 0.1)),
        nir.Linear(weight=w2),
        nir.LI(tau=np.array([0.002, 0.003, 0.005]), r=np.ones(3), v_leak=np.zeros(3)),
    )
    x = spikes_in((4,), T=20)
    for method in ("exact", "euler"):
        net = from_nir(graph, dt=1.0, method=method)
        out = sync.run(net, x).output
        reference = nir_reference(graph, x, 1.0, method)
        torch.testing.assert_close(out, reference.float(), rtol=1e-5, atol=1e-6)
        assert torch.equal(net.layers[0].population.tau, torch.tensor(4.0)) or method == "euler"


def test_export_nir_writes_a_readable_file_and_dt_can_be_overridden(tmp_path):
    net = dense_net()
    path = tmp_path / "dense.nir"
    export_nir(net, path)
    graph = nir.read(path)
    assert isinstance(graph.nodes["layer0_0_affine"], nir.Affine)
    back = from_nir(graph, dt=0.25)
    assert back.dt == 0.25
    torch.testing.assert_close(back.layers[0].population.tau, net.layers[0].population.tau, rtol=0, atol=0)
    graph.metadata = {}
    with pytest.raises(ValueError, match="pass dt"):
        from_nir(graph)


def test_sum_pooling_is_imported_as_a_depthwise_convolution():
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([2, 4, 4])),
        nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0),
        nir.LI(tau=np.full(8, 0.01), r=np.full(8, 1 / (1 - np.exp(-0.1))), v_leak=np.zeros(8)),
    )
    net = from_nir(graph, dt=1.0)
    x = torch.rand(1, 3, 2, 4, 4)
    expected = nn.functional.avg_pool2d(x[0], 2).flatten(1) * 4
    torch.testing.assert_close(sync.run(net, x).output[0], expected)
    again = to_nir(net)  # and it is exported as sum pooling again
    assert [type(n).__name__ for n in again.nodes.values()] == [
        "Input",
        "SumPool2d",
        "Flatten",
        "LI",
        "Output",
    ]
    again.infer_types()
    np.testing.assert_array_equal(again.nodes["layer0_0_sumpool2d"].output_type["output"], [2, 2, 2])


def test_unsupported_nodes_and_branches_are_refused():
    lif = nir.LIF(tau=np.full(3, 0.01), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    w = np.ones((3, 3), np.float32)
    cuba = nir.CubaLIF(
        tau_syn=np.full(3, 0.01),
        tau_mem=np.full(3, 0.01),
        r=np.ones(3),
        v_leak=np.zeros(3),
        v_threshold=np.ones(3),
    )
    with pytest.raises(ValueError, match="'cubalif' of type CubaLIF is not supported"):
        from_nir(nir.NIRGraph.from_list(nir.Linear(weight=w), cuba), dt=1.0)
    branching = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "a": nir.Linear(weight=w),
            "b": nir.Linear(weight=w),
            "lif": lif,
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "output")],
    )
    with pytest.raises(ValueError, match="only a chain"):
        from_nir(branching, dt=1.0)
    with pytest.raises(ValueError, match="must end with a neuron"):
        from_nir(nir.NIRGraph.from_list(nir.Linear(weight=w), lif, nir.Linear(weight=w)), dt=1.0)
    leaky_rest = nir.LIF(tau=np.full(3, 0.01), r=np.ones(3), v_leak=np.ones(3), v_threshold=np.ones(3))
    with pytest.raises(ValueError, match="v_leak must be 0"):
        from_nir(nir.NIRGraph.from_list(nir.Linear(weight=w), leaky_rest), dt=1.0)


def test_export_refuses_what_nir_cannot_express():
    net = Network(nn.Linear(3, 2), LIF(reset="subtract"), input_shape=(3,))
    with pytest.raises(ValueError, match="subtract"):
        to_nir(net)
    net = Network(
        nn.Linear(3, 2),
        LIF(),
        nn.Unflatten(1, (2, 1)),
        nn.Flatten(),
        nn.Linear(2, 2),
        LIF(),
        input_shape=(3,),
    )
    with pytest.raises(ValueError, match="Unflatten has no NIR counterpart"):
        to_nir(net)
    net = Network(nn.Conv2d(2, 4, 3, groups=2), LIF(), input_shape=(2, 5, 5))
    with pytest.raises(ValueError, match="groups=2"):
        to_nir(net)
    with pytest.raises(ValueError, match="method must be one of"):
        to_nir(dense_net(), method="rk4")
    gamma = Network(
        nn.Linear(2, 4, bias=False),
        SpikingGamma(tau=(5, 10)),
        nn.Linear(4, 3, bias=False),
        GammaReadout(tau=(5, 10)),
        input_shape=(2,),
    )
    with pytest.raises(ValueError, match="sigma-delta encode"):
        to_nir(gamma)


@pytest.mark.parametrize("per_synapse", [False, True])
def test_gamma_readout_exports_as_a_cascade_of_leaky_integrators(per_synapse):
    torch.manual_seed(3)
    tau = (2.0, 4.0, 8.0)
    net = Network(
        nn.Linear(3, 2, bias=False), GammaReadout(tau=tau, per_synapse=per_synapse), input_shape=(3,)
    )
    pop = net.layers[0].population
    with torch.no_grad():
        pop.bucket_weight.uniform_(-1, 1)
        pop.bias.uniform_(-1, 1)
    graph = to_nir(net)
    graph.validate_structure()
    graph.infer_types()
    assert graph.check_types()
    kinds = {k: type(n).__name__ for k, n in graph.nodes.items()}
    assert kinds == {
        "input": "Input",
        **{f"bucket{k}": "LI" for k in range(3)},
        "readout0": "Affine",
        "readout1": "Linear",
        "readout2": "Linear",
        "output": "Output",
    }
    for k, t in enumerate(tau):
        np.testing.assert_allclose(graph.nodes[f"bucket{k}"].tau, np.full(3, t / 1000))
    np.testing.assert_allclose(graph.nodes["bucket1"].r, 1.0)
    # a consumer stepping the cascade exactly, each input held from the previous step, gets the readout
    x = spikes_in((3,), T=40, B=2)
    graph = nir.read(_written(graph))
    buckets = [np.zeros((2, 3)) for _ in tau]
    reference = []
    for frame in x.double().numpy():
        inputs = [frame] + [b.copy() for b in buckets[:-1]]  # bucket 0 now, bucket k >= 1 from t - 1
        out = 0.0
        for k in range(3):
            node = graph.nodes[f"bucket{k}"]
            a = np.exp(-1e-3 / node.tau)
            buckets[k] = a * buckets[k] + (1 - a) * node.r * inputs[k]
            readout = graph.nodes[f"readout{k}"]
            out = out + buckets[k] @ readout.weight.T + getattr(readout, "bias", 0.0)
        reference.append(out)
    reference = torch.from_numpy(np.stack(reference)).float()
    torch.testing.assert_close(sync.run(net, x).output, reference, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="only a chain"):
        from_nir(graph)  # the cascade branches: not importable as a Network


def _written(graph):
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    buffer.seek(0)
    return buffer
