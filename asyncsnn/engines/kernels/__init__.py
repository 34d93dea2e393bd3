"""Fast paths of the asynchronous engine. They implement the same step as the reference
(:mod:`asyncsnn.engines.async_`); tests check they agree.

- :mod:`.numba_cpu`: compiled event-by-event CPU kernel for inference (needs the ``fast`` extra: numba).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

from asyncsnn.engines.schedulers import FifoScheduler, LayerScheduler, MomentumScheduler, RandomScheduler
from asyncsnn.network import Network, apply_synapse

_SCHED_IDS = {RandomScheduler: 0, MomentumScheduler: 1, FifoScheduler: 2, LayerScheduler: 3}


def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def scheduler_id(scheduler) -> int | None:
    """Kernel id of a built-in scheduler, or None for a user-defined one (reference path only)."""
    return _SCHED_IDS.get(type(scheduler))


def synapse_csr(network: Network, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """Fan-out lists of the synapse block of layer ``index`` (bias-free): ``(ptr, targets, weights, dense)``.

    Presynaptic neuron ``i`` reaches ``targets[ptr[i]:ptr[i+1]]`` (flat index in the layer) with
    ``weights[ptr[i]:ptr[i+1]]``; ``dense`` says every row is the whole layer in order (an ``nn.Linear``).
    Cached until a weight of the block changes.
    """
    layer = network.layers[index]
    params = tuple(layer.synapse.parameters())
    stamp = tuple((id(p), p._version, p.dtype) for p in params)
    cache = network.__dict__.setdefault("_csr_cache", {})
    hit = cache.get(index)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    ptr, targets = network.connectivity(index)
    with torch.no_grad():
        linear = [m for m in layer.synapse if isinstance(m, torch.nn.Linear)]
        dense = int(ptr[-1]) == layer.in_size * layer.size  # rows are sorted: full rows are 0..n-1
        reshapes = (torch.nn.Flatten, torch.nn.Unflatten, torch.nn.Identity, torch.nn.Linear)
        if len(linear) == 1 and all(isinstance(m, reshapes) for m in layer.synapse):
            weights = linear[0].weight.t().reshape(-1).clone()  # rows of W^T: targets 0..n-1 in order
        else:  # read the weights off the Jacobian columns: the block is linear (bias left out)
            parts = []
            for start in range(0, layer.in_size, 256):
                stop = min(start + 256, layer.in_size)
                basis = torch.zeros(stop - start, layer.in_size, dtype=params[0].dtype)
                basis[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
                jac = apply_synapse(layer.synapse, basis.reshape(-1, *layer.in_shape), bias=False).flatten(1)
                fan = ptr[start + 1 : stop + 1] - ptr[start:stop]
                rows = torch.repeat_interleave(torch.arange(stop - start), fan)
                parts.append(jac[rows, targets[ptr[start] : ptr[stop]]])
            weights = torch.cat(parts)
    result = (ptr, targets, weights, dense)
    cache[index] = (stamp, result)
    return result


def _network_arrays(network: Network, dtype: torch.dtype) -> dict:
    """Everything the kernel needs to know about the network, as numpy arrays; cached until a parameter or
    buffer changes (so repeated inference calls pay nothing here)."""
    tensors = list(network.parameters()) + list(network.buffers())
    stamp = (dtype, tuple((id(t), t._version) for t in tensors))
    cached = network.__dict__.get("_kernel_arrays")
    if cached is not None and cached[0] == stamp:
        return cached[1]
    layers = network.layers
    L = len(layers)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    sizes = np.array([layer.size for layer in layers], dtype=np.int64)
    neu_off = np.zeros(L + 1, dtype=np.int64)
    neu_off[1:] = np.cumsum(sizes)
    src_off = np.zeros(L + 1, dtype=np.int64)
    src_off[1:] = np.cumsum([layers[0].in_size] + [int(n) for n in sizes[:-1]])
    parts: dict[str, list] = {k: [] for k in ("beta", "thr", "bias", "ptr", "tgt", "w", "fan")}
    dense_src = np.zeros(L, dtype=np.bool_)
    reset_zero = np.zeros(L, dtype=np.bool_)
    nnz = 0
    with torch.no_grad():
        for i, layer in enumerate(layers):
            p = layer.population.parameters_()
            parts["beta"].append(torch.broadcast_to(p.beta, layer.shape).reshape(-1))
            parts["thr"].append(torch.broadcast_to(p.threshold, layer.shape).reshape(-1))
            zero = torch.zeros(1, *layer.in_shape, dtype=dtype)
            parts["bias"].append(apply_synapse(layer.synapse, zero).reshape(-1))
            reset_zero[i] = p.reset == "zero"
            ptr, tgt, w, dense_src[i] = synapse_csr(network, i)
            parts["ptr"].append((ptr[:-1] if i < L - 1 else ptr) + nnz)
            nnz += int(ptr[-1])
            parts["tgt"].append(tgt)
            parts["w"].append(w)
            parts["fan"].append(network.fan_out(i).double())
    real = {k: torch.cat(parts[k]).to(dtype).numpy().astype(np_dtype) for k in ("beta", "thr", "bias", "w")}
    arrays = dict(
        L=L, sizes=sizes, neu_off=neu_off, src_off=src_off, dense_src=dense_src, reset_zero=reset_zero,
        ptr=torch.cat(parts["ptr"]).numpy(), tgt=torch.cat(parts["tgt"]).numpy(),
        fan=torch.cat(parts["fan"]).numpy(), np_dtype=np_dtype, **real,
    )  # fmt: skip
    network.__dict__["_kernel_arrays"] = (stamp, arrays)
    return arrays


def run_numba(network: Network, x, cfg, state, labels):
    """Inference through the compiled kernel; ``x`` is a dense ``[T, B, ...]`` tensor or
    :class:`~asyncsnn.engines.events.SparseFrames`. Returns numpy outputs and records."""
    from asyncsnn.engines.events import SparseFrames
    from asyncsnn.engines.kernels.numba_cpu import run_batch

    events = x if isinstance(x, SparseFrames) else SparseFrames.from_dense(x)
    T, B, dtype = events.num_steps, events.batch_size, events.dtype
    a = _network_arrays(network, dtype)
    np_dtype, L = a["np_dtype"], a["L"]
    n_total = int(a["neu_off"][-1])
    if state is None:
        v_init = np.zeros((B, n_total), dtype=np_dtype)
    else:
        v_init = torch.cat([s.v.reshape(B, -1) for s in state], 1).detach().to(dtype).numpy().copy()
    lab = (labels if labels is not None else torch.full((B,), -1)).to(torch.int64).numpy()
    out = np.zeros((T, B, int(a["sizes"][-1])), dtype=np_dtype)
    v_final = np.zeros_like(v_init)
    spikes = np.zeros((B, L), dtype=np.float64)
    synops = np.zeros((B, L), dtype=np.float64)
    input_events = np.zeros(B, dtype=np.float64)
    rec = np.zeros((B, 10), dtype=np.float64)
    run_batch(
        T, B, L, a["neu_off"], a["src_off"], a["dense_src"],
        a["beta"], a["thr"], a["bias"], a["reset_zero"],
        a["ptr"], a["tgt"], a["w"], a["fan"],
        events.ptr, events.channel, events.count.astype(np_dtype, copy=False),
        v_init, lab,
        cfg.group_size, scheduler_id(cfg.scheduler_instance), cfg.seed,
        cfg.input_mode == "prioritized", cfg.refractory, cfg.refractory_current == "hold",
        float(cfg.sync_threshold),
        -1 if cfg.max_steps is None else cfg.max_steps,
        -1 if cfg.stop_after_output is None else cfg.stop_after_output, cfg.carry_over,
        out, v_final, spikes, synops, input_events, rec,
    )  # fmt: skip
    vt = torch.from_numpy(v_final)
    v_list = [vt[:, a["neu_off"][i] : a["neu_off"][i + 1]] for i in range(L)]
    return torch.from_numpy(out), spikes, synops, input_events, rec, v_list
