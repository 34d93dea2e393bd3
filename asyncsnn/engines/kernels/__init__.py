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


def dense_to_events(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input frames ``[T, B, ...]`` -> per (sample, frame) event lists ``(ptr [B*T+1], channel, count)``."""
    T, B = x.shape[:2]
    flat = x.reshape(T, B, -1).transpose(0, 1)  # [B, T, n_in]
    b, t, i = flat.nonzero(as_tuple=True)  # lexicographic: sample, frame, channel
    counts = torch.bincount(b * T + t, minlength=B * T)
    ptr = torch.zeros(B * T + 1, dtype=torch.int64)
    ptr[1:] = counts.cumsum(0)
    return ptr.numpy(), i.numpy(), flat[b, t, i].double().numpy()


def run_numba(network: Network, x: torch.Tensor, cfg, state, labels):
    """Inference through the compiled kernel; returns ``(output, records fields dict, final v list)``."""
    from asyncsnn.engines.kernels.numba_cpu import run_batch

    T, B = x.shape[:2]
    layers = network.layers
    L = len(layers)
    dtype = x.dtype
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    sizes = np.array([layer.size for layer in layers], dtype=np.int64)
    dense_src = np.zeros(L, dtype=np.bool_)
    neu_off = np.zeros(L + 1, dtype=np.int64)
    neu_off[1:] = np.cumsum(sizes)
    src_sizes = [layers[0].in_size] + [int(s) for s in sizes[:-1]]
    src_off = np.zeros(L + 1, dtype=np.int64)
    src_off[1:] = np.cumsum(src_sizes)
    beta, thr, bias, reset_zero = [], [], [], []
    ptrs, tgts, ws, fan = [], [], [], []
    nnz = 0
    with torch.no_grad():
        for i, layer in enumerate(layers):
            p = layer.population.parameters_()
            beta.append(torch.broadcast_to(p.beta, layer.shape).reshape(-1))
            thr.append(torch.broadcast_to(p.threshold, layer.shape).reshape(-1))
            zero = torch.zeros(1, *layer.in_shape, dtype=dtype)
            bias.append(apply_synapse(layer.synapse, zero).reshape(-1))
            reset_zero.append(p.reset == "zero")
            ptr, tgt, w, dense_src[i] = synapse_csr(network, i)
            ptrs.append((ptr[:-1] if i < L - 1 else ptr) + nnz)
            nnz += int(ptr[-1])
            tgts.append(tgt)
            ws.append(w)
            fan.append(network.fan_out(i).to(dtype))
    as_np = lambda parts: torch.cat(parts).to(dtype).numpy().astype(np_dtype)  # noqa: E731
    ev_ptr, ev_idx, ev_amp = dense_to_events(x)
    v_init = (
        np.zeros((B, int(neu_off[-1])), dtype=np_dtype)
        if state is None
        else torch.cat([s.v.reshape(B, -1) for s in state], 1).detach().to(dtype).numpy().copy()
    )
    lab = (labels if labels is not None else torch.full((B,), -1)).to(torch.int64).numpy()
    out = np.zeros((T, B, int(sizes[-1])), dtype=np_dtype)
    v_final = np.zeros_like(v_init)
    spikes = np.zeros((B, L), dtype=np.float64)
    synops = np.zeros((B, L), dtype=np.float64)
    input_events = np.zeros(B, dtype=np.float64)
    rec = np.zeros((B, 10), dtype=np.float64)
    run_batch(
        T, B, L, neu_off, src_off, dense_src,
        as_np(beta), as_np(thr), as_np(bias), np.array(reset_zero),
        torch.cat(ptrs).numpy(), torch.cat(tgts).numpy(), as_np(ws), torch.cat(fan).double().numpy(),
        ev_ptr, ev_idx, ev_amp.astype(np_dtype),
        v_init, lab,
        cfg.group_size, scheduler_id(cfg.scheduler_instance), cfg.seed,
        cfg.input_mode == "prioritized", cfg.refractory, cfg.refractory_current == "hold",
        float(cfg.sync_threshold),
        -1 if cfg.max_steps is None else cfg.max_steps,
        -1 if cfg.stop_after_output is None else cfg.stop_after_output, cfg.carry_over,
        out, v_final, spikes, synops, input_events, rec,
    )  # fmt: skip
    vt = torch.from_numpy(v_final)
    v_list = [vt[:, neu_off[i] : neu_off[i + 1]] for i in range(L)]
    return torch.from_numpy(out), spikes, synops, input_events, rec, v_list
