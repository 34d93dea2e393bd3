"""Export a :class:`Network` to NIR (the Neuromorphic Intermediate Representation) and import it back.

Units: asyncsnn's ``dt`` and ``tau`` are in ms; NIR is continuous-time with ``tau`` in **seconds**. NIR's
leaky neurons follow ``tau * dv/dt = (v_leak - v) + r * I``; asyncsnn's discrete LIF (DESIGN section 3) is
``v <- beta * v + I`` with ``beta = exp(-dt / tau)``, fire when ``v > threshold``, reset to zero.

Discretisation (``method``). A NIR consumer stepping the graph with step ``dt`` turns the ODE into
``v <- beta * v + gain * I``; the export picks ``tau`` and ``r`` so that it gets ``beta`` and ``gain = 1``:

- ``"exact"`` (default): the consumer integrates the ODE exactly over a step with the input held constant
  (zero-order hold): ``beta = exp(-dt / tau)``, ``gain = r * (1 - beta)``. The export writes the physical
  ``tau`` (ms / 1000) and ``r = 1 / (1 - beta)``.
- ``"euler"``: the consumer takes one forward-Euler step (as snnTorch, Norse and Sinabs do):
  ``beta = 1 - dt / tau``, ``gain = r * dt / tau``. The export writes ``tau = dt / (1 - beta)`` and
  ``r = tau / dt = 1 / (1 - beta)``.

Either way ``v_leak = 0``, ``v_threshold = threshold`` and ``v_reset = 0``. The graph's metadata records
``dt`` (seconds), ``dt_ms`` and ``discretisation``, so :func:`from_nir` reads the graph back with the same
convention and gives the same spikes (float32, tested through ``nir.write`` / ``nir.read``). For a graph from
another tool pass ``dt`` (ms) and ``method``; a ``gain`` other than one (within 1e-6, the rounding of a
float32 ``r``) is folded into the weights of the synapse before the neuron.

Node mapping (both ways): ``nn.Linear`` <-> ``nir.Affine`` (with bias) / ``nir.Linear`` (without),
``nn.Conv2d`` <-> ``nir.Conv2d`` (stride, padding, dilation; an all-zero bias is imported as no bias),
``nn.AvgPool2d`` <-> ``nir.AvgPool2d`` (no padding, ``ceil_mode=False``), ``nn.Flatten`` <->
``nir.Flatten`` (NIR's dims leave out the batch: ``start_dim - 1``), :class:`LIF` <-> ``nir.LIF``,
:class:`LI` <-> ``nir.LI``; ``nn.Identity`` is left out. ``nir.SumPool2d`` is imported as a depthwise
``nn.Conv2d`` of ones without bias (the same linear map), and such a convolution is exported as
``nir.SumPool2d`` again. Per-neuron ``tau`` / ``threshold`` are written at the population's full shape.
Refused with a clear error: subtractive reset (NIR's LIF resets to ``v_reset``), other grouped convolutions
(nir 1.0.8 types a Conv2d's input as ``weight.shape[1]`` channels, so they fail its type check),
``nn.Unflatten``, AvgPool padding / ``ceil_mode`` / ``divisor_override``. Imported graphs must be one chain
``Input -> ... -> Output`` of the nodes above.

SpikingGamma: a network of one dense :class:`GammaReadout` is exported exactly, its input gamma memory as a
cascade of ``nir.LI`` nodes (see :func:`_gamma_readout_to_nir`); hidden SpikingGamma layers are refused, as
NIR has no ReLU and no sigma-delta encoder. Gamma graphs branch, so :func:`from_nir` does not import them.

Example::

    >>> graph = to_nir(net)                      # or export_nir(net, "net.nir")
    >>> nir.write("net.nir", graph)
    >>> back = from_nir("net.nir")               # same spikes as net under sync.run
"""

from __future__ import annotations

import math
import pathlib
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from asyncsnn.network import Network
from asyncsnn.neurons.lif import LI, LIF

if TYPE_CHECKING:
    import nir as nir_types

METHODS = ("exact", "euler")
_GAIN_TOLERANCE = 1e-6


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise ImportError("NIR interoperability needs the nir package: pip install 'asyncsnn[nir]'") from None
    return nir


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _check_dt(dt: Any) -> float:
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of milliseconds, got {dt!r}")
    return float(dt)


# ----- export ------------------------------------------------------------------------------------------
def to_nir(network: Network, dt: float | None = None, *, method: str = "exact") -> nir_types.NIRGraph:
    """The NIR graph of ``network`` (a chain ``input -> synapses/neurons -> output``).

    Args:
        network: a network of LIF / LI populations and Linear, Conv2d, AvgPool2d, Flatten synapses.
        dt: step in ms the consumer will use (default ``network.dt``); ``tau`` is physical, so the graph run
            at ``dt`` behaves like ``network`` after ``network.set_dt(dt)``.
        method: ``"exact"`` or ``"euler"``, the consumer's discretisation (see the module docstring).
    """
    nir = _nir()
    _check_method(method)
    dt = _check_dt(network.dt if dt is None else dt)
    if network.is_gamma:
        return _gamma_readout_to_nir(nir, network, dt)
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(network.input_shape))}
    for layer in network.layers:
        shape = layer.in_shape
        for position, m in enumerate(layer.synapse):
            node = _synapse_to_nir(nir, m, shape)
            shape = tuple(m(torch.zeros(1, *shape)).shape[1:]) if not isinstance(m, nn.Identity) else shape
            if node is not None:
                nodes[f"layer{layer.index}_{position}_{type(node).__name__.lower()}"] = node
        name = "lif" if isinstance(layer.population, LIF) else "li"
        nodes[f"layer{layer.index}_{name}"] = _population_to_nir(
            nir, layer.population, layer.shape, dt, method
        )
    nodes["output"] = nir.Output(output_type=np.array(network.population_shapes[-1]))
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])), metadata=_metadata(dt, method))


def _metadata(dt: float, method: str) -> dict[str, Any]:
    """What :func:`from_nir` needs to read the graph back with the same discretisation."""
    return {"dt": dt / 1000.0, "dt_ms": dt, "discretisation": method, "producer": "asyncsnn"}


def export_nir(
    network: Network, path: str | pathlib.Path, dt: float | None = None, *, method: str = "exact"
) -> None:
    """Write ``network`` to a NIR (HDF5) file at ``path``; see :func:`to_nir`."""
    _nir().write(path, to_nir(network, dt, method=method))


def _array(
    t: torch.Tensor, shape: tuple[int, ...] | None = None, dtype: torch.dtype = torch.float32
) -> np.ndarray:
    a = t.detach().cpu().to(dtype).numpy()
    return np.ascontiguousarray(np.broadcast_to(a, shape)) if shape is not None else a.copy()


def _synapse_to_nir(nir: Any, m: nn.Module, in_shape: tuple[int, ...]) -> Any:
    if isinstance(m, nn.Identity):
        return None
    if isinstance(m, nn.Linear):
        if m.bias is None:
            return nir.Linear(weight=_array(m.weight))
        return nir.Affine(weight=_array(m.weight), bias=_array(m.bias))
    if isinstance(m, nn.Conv2d):
        if _is_sum_pool(m):
            return nir.SumPool2d(
                kernel_size=np.array(m.kernel_size), stride=np.array(m.stride), padding=np.array(m.padding)
            )
        if m.groups != 1:
            # nir 1.0.8 types a Conv2d's input as weight.shape[1] channels, so a grouped convolution fails
            # its type check (also in nir.read); expanding it to a dense one would add zero-weight connections
            raise ValueError(f"nn.Conv2d with groups={m.groups}: NIR's type check supports groups=1 only")
        if m.padding_mode != "zeros":
            raise ValueError(f"nn.Conv2d with padding_mode={m.padding_mode!r}: NIR pads with zeros only")
        bias = _array(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=np.float32)
        return nir.Conv2d(
            input_shape=tuple(in_shape[1:]),
            weight=_array(m.weight),
            stride=tuple(m.stride),
            padding=m.padding if isinstance(m.padding, str) else tuple(m.padding),
            dilation=tuple(m.dilation),
            groups=m.groups,
            bias=bias,
        )
    if isinstance(m, nn.AvgPool2d):
        kernel, stride, padding = (np.array(_pair(v)) for v in (m.kernel_size, m.stride, m.padding))
        if padding.any() or m.ceil_mode or m.divisor_override is not None:
            raise ValueError(
                "nn.AvgPool2d with padding, ceil_mode or divisor_override has no agreed NIR meaning; "
                "use padding=0, ceil_mode=False"
            )
        return nir.AvgPool2d(kernel_size=kernel, stride=stride, padding=padding)
    if isinstance(m, nn.Flatten):
        rank = len(in_shape) + 1  # with the batch dim
        start, end = m.start_dim % rank, m.end_dim % rank
        if start == 0:
            raise ValueError("nn.Flatten must not flatten the batch dim (start_dim >= 1)")
        end_nir = -1 if end == rank - 1 else end - 1
        return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=start - 1, end_dim=end_nir)
    raise ValueError(
        f"{type(m).__name__} has no NIR counterpart here; "
        "supported: Linear, Conv2d, AvgPool2d, Flatten, Identity"
    )


def _is_sum_pool(m: nn.Conv2d) -> bool:
    """A depthwise convolution of ones without bias (how :func:`from_nir` imports ``nir.SumPool2d``)."""
    return (
        m.groups == m.in_channels == m.out_channels
        and m.bias is None
        and tuple(m.dilation) == (1, 1)
        and not isinstance(m.padding, str)
        and m.padding_mode == "zeros"
        and bool((m.weight == 1).all())
    )


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _population_to_nir(nir: Any, pop: nn.Module, shape: tuple[int, ...], dt: float, method: str) -> Any:
    tau_ms = pop.tau.detach().double().cpu()
    one_minus_beta = -torch.expm1(-dt / tau_ms)  # 1 - beta, accurate when beta is close to 1
    tau_s = tau_ms / 1000.0 if method == "exact" else (dt / 1000.0) / one_minus_beta
    r = 1.0 / one_minus_beta  # gain = 1 in both methods (module docstring)
    # float64: a float32 tau in seconds would not give back the float32 tau in ms bit for bit
    common = {
        "tau": _array(tau_s, shape, torch.float64),
        "r": _array(r, shape, torch.float64),
        "v_leak": np.zeros(shape),
    }
    if isinstance(pop, LIF):
        if pop.reset_mode != "zero":
            raise ValueError("LIF with reset='subtract' cannot be exported: NIR's LIF resets to v_reset")
        return nir.LIF(**common, v_threshold=_array(pop.threshold, shape), v_reset=np.zeros(shape))
    if isinstance(pop, LI):
        return nir.LI(**common)
    raise ValueError(f"{type(pop).__name__} populations cannot be exported to NIR")


def _gamma_readout_to_nir(nir: Any, network: Network, dt: float) -> Any:
    """A gamma network of one dense :class:`GammaReadout`: input buckets as a cascade of ``nir.LI``.

    Bucket 0 integrates the input spikes (``tau_0``, ``r = 1 / (1 - a_0)``: gain one, as for LIF); bucket
    ``k >= 1`` is ``tau_k dg_k/dt = g_(k-1) - g_k`` (``r = 1``), whose exact step with the input held from the
    previous step is asyncsnn's ``g_k(t) = a_k g_k(t-1) + (1 - a_k) g_(k-1)(t-1)``. Each bucket reaches the
    output through ``w * v^k`` (an ``Affine`` carrying the bias for ``k = 0``); NIR sums the edges into the
    output. Hidden SpikingGamma layers are refused: NIR has no ReLU and no sigma-delta encoder.
    """
    layers = network.layers
    pop = layers[0].population
    linear = [m for m in layers[0].synapse if isinstance(m, nn.Linear)]
    if len(layers) != 1 or pop.spiking:
        raise ValueError(
            "only a SpikingGamma network made of a single GammaReadout can be exported: hidden SpikingGamma "
            "layers rectify (ReLU) and sigma-delta encode their signal, which NIR cannot express"
        )
    if len(linear) != 1 or not isinstance(layers[0].synapse[-1], nn.Linear) or len(layers[0].in_shape) != 1:
        raise ValueError(
            "a GammaReadout is exported with a dense synapse only (one nn.Linear on a flat input)"
        )
    shape = layers[0].in_shape
    tau_ms = pop.tau.detach().double().cpu()
    r0 = 1.0 / -torch.expm1(-dt / tau_ms[0])
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(shape))}
    edges: list[tuple[str, str]] = []
    weight = linear[0].weight.detach()
    for k in range(pop.buckets):
        r = r0 if k == 0 else torch.tensor(1.0, dtype=torch.float64)
        nodes[f"bucket{k}"] = nir.LI(
            tau=_array(tau_ms[k] / 1000.0, shape, torch.float64),
            r=_array(r, shape, torch.float64),
            v_leak=np.zeros(shape),
        )
        edges.append(("input" if k == 0 else f"bucket{k - 1}", f"bucket{k}"))
        v = pop.bucket_weight[k].detach()
        w_k = weight * (v if pop.per_synapse else v[:, None])
        nodes[f"readout{k}"] = (
            nir.Affine(weight=_array(w_k), bias=_array(pop.bias))
            if k == 0
            else nir.Linear(weight=_array(w_k))
        )
        edges += [(f"bucket{k}", f"readout{k}"), (f"readout{k}", "output")]
    nodes["output"] = nir.Output(output_type=np.array(layers[0].shape))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=_metadata(dt, "exact"))


# ----- import ------------------------------------------------------------------------------------------
def from_nir(
    graph_or_path: nir_types.NIRGraph | str | pathlib.Path,
    dt: float | None = None,
    *,
    method: str | None = None,
) -> Network:
    """A :class:`Network` from a NIR graph (or a NIR file): a chain ``Input -> ... -> Output``.

    Args:
        graph_or_path: a ``nir.NIRGraph`` or the path of a file written by ``nir.write``.
        dt: step in ms; default the ``dt_ms`` (or ``dt`` in seconds) recorded in the graph's metadata.
        method: ``"exact"`` or ``"euler"``; default the graph's ``discretisation`` metadata, else ``"exact"``.
    """
    nir = _nir()
    graph = nir.read(graph_or_path) if isinstance(graph_or_path, (str, pathlib.Path)) else graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"expected a nir.NIRGraph or a path, got {type(graph).__name__}")
    meta = dict(graph.metadata or {})
    dt = _graph_dt(meta) if dt is None else _check_dt(dt)
    method = _meta_str(meta.get("discretisation", "exact")) if method is None else method
    _check_method(method)
    chain = _chain(graph)
    input_shape = tuple(int(d) for d in np.asarray(graph.nodes[chain[0]].input_type["input"]))
    modules: list[nn.Module] = []
    pending: list[nn.Module] = []
    shape = input_shape
    for name in chain[1:-1]:
        node = graph.nodes[name]
        if isinstance(node, (nir.LIF, nir.LI)):
            pop, gain = _population_from_nir(nir, node, name, shape, dt, method)
            if not pending:
                pending.append(nn.Identity())  # a neuron right after the input: unit synapse
            _fold_gain(pending, gain, name)
            modules += pending + [pop]
            pending = []
        else:
            m = _synapse_from_nir(nir, node, name, shape)
            with torch.no_grad():
                shape = tuple(m(torch.zeros(1, *shape)).shape[1:])
            pending.append(m)
    if pending or not modules:
        raise ValueError("the NIR graph must end with a neuron node (LIF or LI) before its Output")
    return Network(*modules, input_shape=input_shape)


def _meta_str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _graph_dt(meta: dict[str, Any]) -> float:
    if "dt_ms" in meta:
        return _check_dt(float(meta["dt_ms"]))
    if "dt" in meta:
        return _check_dt(float(meta["dt"]) * 1000.0)
    raise ValueError("the NIR graph records no dt in its metadata; pass dt (ms), the step to discretise with")


_SUPPORTED = "Input, Output, Affine, Linear, Conv2d, AvgPool2d, SumPool2d, Flatten, LIF, LI"


def _chain(graph: Any) -> list[str]:
    """Node names from the Input to the Output; raise if the graph is not one unbranched chain."""
    nir = _nir()
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    pred: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
        pred[b].append(a)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise ValueError(f"node {name!r} is a nested NIRGraph; only flat chains are supported")
        if len(succ[name]) > 1 or len(pred[name]) > 1:
            raise ValueError(
                f"node {name!r} has {len(pred[name])} inputs and {len(succ[name])} outputs: only a chain "
                "Input -> ... -> Output (one edge in, one edge out per node) can be imported"
            )
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"the NIR graph must have exactly one Input node, found {len(inputs)}")
    chain = [inputs[0]]
    while succ[chain[-1]]:
        chain.append(succ[chain[-1]][0])
        if len(chain) > len(graph.nodes):
            raise ValueError("the NIR graph has a cycle; only a chain Input -> ... -> Output can be imported")
    if len(chain) != len(graph.nodes) or not isinstance(graph.nodes[chain[-1]], nir.Output):
        raise ValueError("the NIR graph must be a single chain Input -> ... -> Output covering every node")
    return chain


def _tensor(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float32).clone()


def _synapse_from_nir(nir: Any, node: Any, name: str, shape: tuple[int, ...]) -> nn.Module:
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = _tensor(node.weight)
        bias = _tensor(node.bias) if isinstance(node, nir.Affine) else None
        m = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            m.weight.copy_(weight)
            if bias is not None:
                m.bias.copy_(bias)
        return m
    if isinstance(node, nir.Conv2d):
        weight, bias = _tensor(node.weight), _tensor(node.bias)
        padding = node.padding if isinstance(node.padding, str) else _ints(node.padding)
        m = nn.Conv2d(
            weight.shape[1] * int(node.groups),
            weight.shape[0],
            tuple(weight.shape[2:]),
            stride=_ints(node.stride),
            padding=padding,
            dilation=_ints(node.dilation),
            groups=int(node.groups),
            bias=bool(bias.any()),  # NIR always stores a bias; an all-zero one is no bias
        )
        with torch.no_grad():
            m.weight.copy_(weight)
            if m.bias is not None:
                m.bias.copy_(bias)
        return m
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        kernel, stride, padding = _ints(node.kernel_size), _ints(node.stride), _ints(node.padding)
        if isinstance(node, nir.AvgPool2d):
            return nn.AvgPool2d(kernel, stride, padding)
        channels = shape[0]  # sum pooling = a depthwise convolution with all-one kernels
        m = nn.Conv2d(channels, channels, kernel, stride, padding, groups=channels, bias=False)
        nn.init.ones_(m.weight)
        return m
    if isinstance(node, nir.Flatten):
        end = int(node.end_dim)
        return nn.Flatten(int(node.start_dim) + 1, end + 1 if end >= 0 else end)
    raise ValueError(
        f"NIR node {name!r} of type {type(node).__name__} is not supported; supported: {_SUPPORTED}"
    )


def _ints(v: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in np.atleast_1d(np.asarray(v)))


def _population_from_nir(
    nir: Any, node: Any, name: str, shape: tuple[int, ...], dt: float, method: str
) -> tuple[nn.Module, torch.Tensor]:
    """The population for a LIF / LI node and the input gain ``r * (1 - beta)`` (or ``r * dt / tau``)."""
    where = f"NIR node {name!r} ({type(node).__name__})"
    tau_s = torch.as_tensor(np.asarray(node.tau), dtype=torch.float64)
    r = torch.as_tensor(np.asarray(node.r), dtype=torch.float64)
    if not bool(torch.isfinite(tau_s).all() & (tau_s > 0).all()):
        raise ValueError(f"{where}: tau must be positive and finite")
    if bool(np.any(np.asarray(node.v_leak) != 0)):
        raise ValueError(f"{where}: v_leak must be 0 (asyncsnn neurons leak towards 0)")
    dt_s = dt / 1000.0
    if method == "exact":
        tau_ms = tau_s * 1000.0
        gain = r * -torch.expm1(-dt_s / tau_s)
    else:
        step = dt_s / tau_s  # 1 - beta of forward Euler
        if bool((step >= 1).any()):
            raise ValueError(
                f"{where}: forward Euler needs dt < tau, got dt={dt} ms and min tau={tau_s.min():g} s"
            )
        tau_ms = -dt / torch.log1p(-step)
        gain = r * step
    tau = _compact(tau_ms.float())
    if isinstance(node, nir.LI):
        pop: nn.Module = LI(tau=tau, dt=dt)
    else:
        if bool(np.any(np.asarray(node.v_reset) != 0)):
            raise ValueError(f"{where}: v_reset must be 0 (asyncsnn's LIF resets to zero)")
        pop = LIF(tau=tau, threshold=_compact(_tensor(node.v_threshold)), reset="zero", dt=dt)
    if tuple(tau_s.shape) not in ((), (1,), tuple(shape)):
        raise ValueError(
            f"{where}: parameter shape {tuple(tau_s.shape)} does not match the input shape {shape}"
        )
    return pop, gain


def _compact(t: torch.Tensor) -> torch.Tensor:
    """A scalar when every neuron has the same value (NIR stores one value per neuron)."""
    flat = t.flatten()
    return flat[0].clone() if flat.numel() and bool((flat == flat[0]).all()) else t


def _fold_gain(synapse: list[nn.Module], gain: torch.Tensor, name: str) -> None:
    """Scale the last weighted synapse so that the neuron receives ``gain * I`` (no-op when gain is one)."""
    if bool(((gain - 1).abs() <= _GAIN_TOLERANCE).all()):
        return
    last = synapse[-1]
    uniform = bool((gain == gain.flatten()[0]).all())
    weighted = [m for m in synapse if isinstance(m, (nn.Linear, nn.Conv2d))]
    if uniform and weighted:
        target, g = weighted[-1], gain.flatten()[0]
    elif isinstance(last, nn.Linear):
        target, g = last, gain.reshape(-1, 1)
    else:
        raise ValueError(
            f"NIR node {name!r}: its input gain r * (1 - beta) is not one and cannot be folded into the "
            "synapse before it (needs a Linear / Conv2d; per-neuron gains need a Linear right before)"
        )
    with torch.no_grad():
        target.weight.copy_((target.weight.double() * g).float())
        if target.bias is not None:
            target.bias.copy_((target.bias.double() * g.flatten()).float())
