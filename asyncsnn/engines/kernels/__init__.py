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
            param = next(layer.synapse.parameters(), None)
            zero = torch.zeros(1, *layer.in_shape, dtype=param.dtype if param is not None else dtype)
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


def numba_trainable(network: Network) -> bool:
    """The compiled training path handles every network of LIF populations (dense and sparse blocks)."""
    return True


class _AsyncTrain(torch.autograd.Function):
    """Forward through the compiled schedule with a tape; backward replays the tape (gradient rules R1-R4)."""

    @staticmethod
    def forward(ctx, weights, bias, job):  # type: ignore[override]
        out = job.forward(weights.detach().numpy(), bias.detach().numpy())
        ctx.job = job
        ctx.dtypes = (weights.dtype, bias.dtype)
        return out.to(weights.dtype)

    @staticmethod
    def backward(ctx, g_out):  # type: ignore[override]
        g_w, g_b = ctx.job.backward(g_out.detach().double().contiguous().numpy())
        return torch.from_numpy(g_w).to(ctx.dtypes[0]), torch.from_numpy(g_b).to(ctx.dtypes[1]), None


class _TrainJob:
    """Holds the arrays and per-sample tapes between the forward and the backward pass."""

    def __init__(self, network: Network, events, cfg, labels, threads: int) -> None:
        self.network, self.events, self.cfg, self.threads = network, events, cfg, threads
        dtype = next(network.parameters()).dtype
        a = _network_arrays(network, dtype)
        self.a = a
        L = a["L"]
        self.layer_of = np.repeat(np.arange(L), a["sizes"])
        pops = [layer.population for layer in network.layers]
        self.detach_reset = np.array([p.detach_reset for p in pops])
        from asyncsnn.engines.kernels.numba_train import SURROGATE_IDS

        self.sg_kind = np.array([SURROGATE_IDS[p.surrogate.name] for p in pops], dtype=np.int64)
        self.sg_scale = np.array([float(p.surrogate.scale) for p in pops])
        B = events.batch_size
        self.labels = (labels if labels is not None else torch.full((B,), -1)).to(torch.int64).numpy()
        self.spikes = np.zeros((B, L))
        self.synops = np.zeros((B, L))
        self.input_events = np.zeros(B)
        self.rec = np.zeros((B, 10))
        self.dropout = cfg.refractory_dropout if (network.training and cfg.refractory) else 0.0

    def _chunks(self):
        B = self.events.batch_size
        n = max(1, min(self.threads, B))
        return [range(k, B, n) for k in range(n)]

    def forward(self, weights: np.ndarray, bias: np.ndarray) -> torch.Tensor:
        from concurrent.futures import ThreadPoolExecutor

        from asyncsnn.engines.kernels.numba_train import forward_sample

        a, ev, cfg = self.a, self.events, self.cfg
        self.w = weights
        T, B = ev.num_steps, ev.batch_size
        out = np.zeros((T, B, int(a["sizes"][-1])))
        self.v_final = np.zeros((B, int(a["neu_off"][-1])))
        self.tapes: list = [None] * B
        count = ev.count.astype(weights.dtype)
        capacity = self.network.__dict__.get("_tape_capacity", np.full(4, 1024, dtype=np.int64))

        def work(samples):
            for b in samples:
                self.tapes[b] = forward_sample(
                    b, T, a["L"], a["neu_off"], a["src_off"],
                    a["beta"], a["thr"], bias, a["reset_zero"],
                    a["ptr"], a["tgt"], weights, a["fan"], a["dense_src"], ev.ptr, ev.channel, count,
                    self.labels, cfg.group_size, scheduler_id(cfg.scheduler_instance), cfg.seed,
                    cfg.input_mode == "prioritized", cfg.refractory, cfg.refractory_current == "hold",
                    float(cfg.sync_threshold), -1 if cfg.max_steps is None else cfg.max_steps,
                    -1 if cfg.stop_after_output is None else cfg.stop_after_output, cfg.carry_over,
                    self.dropout, out, self.v_final, self.spikes, self.synops, self.input_events, self.rec,
                    capacity,
                )  # fmt: skip

        with ThreadPoolExecutor(len(self._chunks())) as pool:
            list(pool.map(work, self._chunks()))
        # the next step starts with tapes about this large: they rarely need to grow
        sizes = [(len(tp[0]), len(tp[7]), len(tp[11]), len(tp[14])) for tp in self.tapes]
        self.network.__dict__["_tape_capacity"] = np.array([int(1.2 * max(c)) + 1024 for c in zip(*sizes)])
        return torch.from_numpy(out)

    def backward(self, g_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from concurrent.futures import ThreadPoolExecutor

        from asyncsnn.engines.kernels.numba_train import backward_sample

        a = self.a
        chunks = self._chunks()
        g_ws = [np.zeros_like(self.w) for _ in chunks]
        g_bs = [np.zeros(int(a["neu_off"][-1])) for _ in chunks]
        beta, thr = a["beta"].astype(np.float64), a["thr"].astype(np.float64)

        def work(k):
            for b in chunks[k]:
                backward_sample(
                    b, *self.tapes[b], g_out, a["neu_off"], self.layer_of, beta, thr, a["reset_zero"],
                    self.detach_reset, self.sg_kind, self.sg_scale, a["ptr"], a["tgt"], self.w,
                    a["dense_src"], g_ws[k], g_bs[k],
                )  # fmt: skip

        with ThreadPoolExecutor(len(chunks)) as pool:
            list(pool.map(work, range(len(chunks))))
        return sum(g_ws), sum(g_bs)


def _csr_weights(network: Network, index: int) -> torch.Tensor:
    """The CSR weights of block ``index`` as a differentiable function of its parameters."""
    layer = network.layers[index]
    ptr, targets = network.connectivity(index)
    linear = [m for m in layer.synapse if isinstance(m, torch.nn.Linear)]
    reshapes = (torch.nn.Flatten, torch.nn.Unflatten, torch.nn.Identity, torch.nn.Linear)
    if len(linear) == 1 and all(isinstance(m, reshapes) for m in layer.synapse):
        return linear[0].weight.t().reshape(-1)
    dtype = next(layer.synapse.parameters()).dtype
    parts = []
    for start in range(0, layer.in_size, 256):  # Jacobian columns, read at the wired targets
        stop = min(start + 256, layer.in_size)
        basis = torch.zeros(stop - start, layer.in_size, dtype=dtype)
        basis[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        jac = apply_synapse(layer.synapse, basis.reshape(-1, *layer.in_shape), bias=False).flatten(1)
        fan = ptr[start + 1 : stop + 1] - ptr[start:stop]
        rows = torch.repeat_interleave(torch.arange(stop - start), fan)
        parts.append(jac[rows, targets[ptr[start] : ptr[stop]]])
    return torch.cat(parts)


def run_numba_train(network: Network, x, cfg, labels, threads: int | None = None):
    """Differentiable run through the compiled training path (dense networks). Returns the output (with a
    gradient to the parameters) and the job holding the records."""
    from asyncsnn.engines.events import SparseFrames

    events = x if isinstance(x, SparseFrames) else SparseFrames.from_dense(x)
    job = _TrainJob(network, events, cfg, labels, threads or torch.get_num_threads())
    weights, bias = [], []
    for i, layer in enumerate(network.layers):
        weights.append(_csr_weights(network, i))  # differentiable: gradients reach the parameters
        param = next(layer.synapse.parameters())
        zero = torch.zeros(1, *layer.in_shape, dtype=param.dtype)
        bias.append(apply_synapse(layer.synapse, zero).reshape(-1))
    out = _AsyncTrain.apply(torch.cat(weights), torch.cat(bias), job)
    return out, job
