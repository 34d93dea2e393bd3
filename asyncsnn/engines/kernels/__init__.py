"""Fast paths of the asynchronous engine. They implement the same step as the reference
(:mod:`asyncsnn.engines.async_`); tests check they agree.

- :mod:`.numba_cpu`: compiled event-by-event CPU kernel for inference (needs the ``fast`` extra: numba).
- :mod:`.numba_train`: the compiled training path (forward with a compact record, replayed backward).
- :mod:`.numba_events`: dense frames to event lists (``SparseFrames.from_dense``).
- :mod:`.triton_cuda`: the CUDA kernel for inference (needs Triton, which CUDA builds of PyTorch include).
"""

from __future__ import annotations

import functools
import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from asyncsnn.engines.schedulers import FifoScheduler, LayerScheduler, MomentumScheduler, RandomScheduler
from asyncsnn.network import Network, apply_synapse

_SCHED_IDS = {RandomScheduler: 0, MomentumScheduler: 1, FifoScheduler: 2, LayerScheduler: 3}


@functools.cache
def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


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
    stamp = tuple((id(p), p._version, p.dtype, p.device) for p in params)
    cache = network.__dict__.setdefault("_csr_cache", {})
    hit = cache.get(index)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    ptr, targets = network.connectivity(index)
    dense = int(ptr[-1]) == layer.in_size * layer.size  # rows are sorted: full rows are 0..n-1
    with torch.no_grad():
        linear = _linear_of(layer)
        weights = (
            linear.weight.t().reshape(-1).clone() if linear is not None else _csr_weights(network, index)
        )
    result = (ptr, targets, weights, dense)
    cache[index] = (stamp, result)
    return result


def _cached(network: Network, key, tensors, dtype: torch.dtype, build):
    """``build()``, cached on the network until one of ``tensors`` changes (or ``dtype`` differs)."""
    stamp = (dtype, tuple((id(t), t._version, t.device) for t in tensors))
    cache = network.__dict__.setdefault("_kernel_cache", {})
    hit = cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    value = build()
    cache[key] = (stamp, value)
    return value


def _structure_arrays(network: Network) -> dict:
    """Layer sizes, offsets and fan-out lists of the whole network (the wiring never changes)."""

    def build() -> dict:
        layers = network.layers
        L = len(layers)
        sizes = np.array([layer.size for layer in layers], dtype=np.int64)
        neu_off = np.zeros(L + 1, dtype=np.int64)
        neu_off[1:] = np.cumsum(sizes)
        src_off = np.zeros(L + 1, dtype=np.int64)
        src_off[1:] = np.cumsum([layers[0].in_size] + [int(n) for n in sizes[:-1]])
        ptrs, tgts, fans = [], [], []
        dense_src = np.zeros(L, dtype=np.bool_)
        nnz = 0
        for i, layer in enumerate(layers):
            ptr, tgt = network.connectivity(i)
            dense_src[i] = int(ptr[-1]) == layer.in_size * layer.size  # rows are sorted: full rows are 0..n-1
            ptrs.append((ptr[:-1] if i < L - 1 else ptr) + nnz)
            nnz += int(ptr[-1])
            tgts.append(tgt)
            fans.append(network.fan_out(i).double())
        return dict(
            L=L, sizes=sizes, size_list=[int(n) for n in sizes], neu_off=neu_off, src_off=src_off,
            dense_src=dense_src,
            ptr=torch.cat(ptrs).numpy(), tgt=torch.cat(tgts).numpy(), fan=torch.cat(fans).numpy(),
        )  # fmt: skip

    return _cached(network, "structure", (), None, build)


def _neuron_tensors(network: Network, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron decay and threshold of the whole network, layer-major, on the network's device."""
    beta, thr = [], []
    with torch.no_grad():
        for layer in network.layers:
            p = layer.population.parameters_()
            beta.append(torch.broadcast_to(p.beta, layer.shape).reshape(-1))
            thr.append(torch.broadcast_to(p.threshold, layer.shape).reshape(-1))
    return torch.cat(beta).to(dtype), torch.cat(thr).to(dtype)


def _synapse_tensors(network: Network, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron bias currents and the CSR weights of all blocks, on the network's device."""
    bias, w = [], []
    with torch.no_grad():
        for i, layer in enumerate(network.layers):
            param = next(layer.synapse.parameters(), None)
            param = next(network.parameters()) if param is None else param  # pooling: the network's
            zero = torch.zeros(1, *layer.in_shape, dtype=param.dtype, device=param.device)
            bias.append(apply_synapse(layer.synapse, zero).reshape(-1))
            w.append(synapse_csr(network, i)[2])
    return torch.cat(bias).to(dtype), torch.cat(w).to(dtype)


def _tensors_of(modules) -> list[torch.Tensor]:
    """The parameters and buffers of ``modules`` and their children, for the caches' stamps. A plain walk of
    the modules' dictionaries: ``Module.parameters()`` would cost more than the rest of a cache lookup."""
    found, stack = [], list(modules)
    while stack:
        module = stack.pop()
        found += [t for t in (*module._parameters.values(), *module._buffers.values()) if t is not None]
        stack += module._modules.values()
    return found


def _population_tensors(network: Network) -> list[torch.Tensor]:
    return _tensors_of(layer.population for layer in network.layers)


def _synapse_block_tensors(network: Network) -> list[torch.Tensor]:
    return _tensors_of(layer.synapse for layer in network.layers)


def _reset_zero(network: Network) -> np.ndarray:
    return np.array(
        [layer.population.parameters_().reset == "zero" for layer in network.layers], dtype=np.bool_
    )


def _neuron_arrays(network: Network, dtype: torch.dtype) -> dict:
    """Per-neuron decay and threshold (in ``dtype`` and in float64) and per-layer reset modes; cached until
    a population's tensor changes."""

    def build() -> dict:
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        beta, thr = (t.cpu().numpy().astype(np_dtype) for t in _neuron_tensors(network, dtype))
        return dict(
            np_dtype=np_dtype, beta=beta, thr=thr,
            beta64=beta.astype(np.float64), thr64=thr.astype(np.float64),
            reset_zero=_reset_zero(network),
        )  # fmt: skip

    return _cached(network, ("neurons", dtype), _population_tensors(network), dtype, build)


def _synapse_arrays(network: Network, dtype: torch.dtype) -> dict:
    """CSR weights and per-neuron bias currents of all blocks; cached until a synapse's tensor changes."""

    def build() -> dict:
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        bias, w = (t.cpu().numpy().astype(np_dtype) for t in _synapse_tensors(network, dtype))
        return {"bias": bias, "w": w}

    return _cached(network, ("synapses", dtype), _synapse_block_tensors(network), dtype, build)


def _network_arrays(network: Network, dtype: torch.dtype) -> dict:
    """Everything the inference kernel needs to know about the network, as numpy arrays; each part is cached
    until a tensor it depends on changes (so repeated inference calls pay nothing here)."""
    return {**_structure_arrays(network), **_neuron_arrays(network, dtype), **_synapse_arrays(network, dtype)}


@functools.cache
def _numba_cpu():
    """The inference kernel's module, imported on first use (numba is optional); cached, since an import
    statement in :func:`run_numba` costs tens of microseconds after a kernel call has cooled the caches."""
    from asyncsnn.engines.kernels import numba_cpu

    return numba_cpu


def run_numba(
    network: Network, x, cfg, state, labels, sample_offset: int = 0, *, record_spikes: bool = False
):
    """Inference through the compiled kernel; ``x`` is a dense ``[T, B, ...]`` tensor or
    :class:`~asyncsnn.engines.events.SparseFrames`; sample ``b`` draws its random keys as sample
    ``sample_offset + b``. Returns ``(out, spikes, synops, input_events, rec, v_list, trains)``: the outputs
    and records, the final membranes per population ``[B, n]``, and with ``record_spikes`` the spikes each
    population emitted per frame ``[T, B, n]`` (None otherwise)."""
    from asyncsnn.engines.events import SparseFrames

    events = x if isinstance(x, SparseFrames) else SparseFrames.from_dense(x)
    T, B, dtype = events.num_steps, events.batch_size, events.dtype
    a = _network_arrays(network, dtype)
    np_dtype, L = a["np_dtype"], a["L"]
    n_total = int(a["neu_off"][-1])
    if state is None:
        v_init = np.zeros((B, n_total), dtype=np_dtype)
    else:
        v_init = torch.cat([s.v.reshape(B, -1) for s in state], 1).detach().to(dtype).numpy().copy()
    lab = np.full(B, -1, dtype=np.int64) if labels is None else labels.to(torch.int64).numpy()
    out = np.zeros((T, B, int(a["sizes"][-1])), dtype=np_dtype)
    v_final = np.zeros_like(v_init)
    spikes = np.zeros((B, L), dtype=np.float64)
    synops = np.zeros((B, L), dtype=np.float64)
    input_events = np.zeros(B, dtype=np.float64)
    rec = np.zeros((B, 10), dtype=np.float64)
    spike_train = np.zeros((T, B, n_total) if record_spikes else (0, 0, 0), dtype=np_dtype)
    _numba_cpu().run_batch(
        T, B, L, a["neu_off"], a["src_off"], a["dense_src"],
        a["beta"], a["thr"], a["bias"], a["reset_zero"],
        a["ptr"], a["tgt"], a["w"], a["fan"],
        events.ptr, events.channel, events.count.astype(np_dtype, copy=False),
        v_init, lab,
        cfg.group_size, scheduler_id(cfg.scheduler_instance), cfg.seed, int(sample_offset),
        cfg.input_mode == "prioritized", cfg.refractory, cfg.refractory_current == "hold",
        float(cfg.sync_threshold),
        -1 if cfg.max_steps is None else cfg.max_steps,
        -1 if cfg.stop_after_output is None else cfg.stop_after_output, cfg.carry_over,
        out, v_final, spikes, synops, input_events, rec, spike_train,
    )  # fmt: skip
    sizes = a["size_list"]
    v_list = torch.from_numpy(v_final).split(sizes, 1)
    trains = torch.from_numpy(spike_train).split(sizes, 2) if record_spikes else None
    return torch.from_numpy(out), spikes, synops, input_events, rec, v_list, trains


def numba_trainable(network: Network) -> bool:
    """The compiled training path handles every network of LIF populations (dense and sparse blocks)."""
    return True


class _AsyncTrain(torch.autograd.Function):
    """Forward through the compiled schedule with a tape; backward replays the tape (gradient rules R1-R4).

    Inputs: the job, then per layer its weights and bias (see :func:`run_numba_train`). The kernels run on
    the CPU: parameters on another device (CUDA) are copied to the host, and the output and the gradients
    copied back to their device."""

    @staticmethod
    def forward(ctx, job, *params):  # type: ignore[override]
        ctx.job = job
        ctx.params = [(p.shape, p.dtype, p.device) if p is not None else None for p in params]
        weights, bias = job.flat_parameters(params)
        out = job.forward(weights, bias).to(torch.from_numpy(weights).dtype)
        return out.to(params[0].device)

    @staticmethod
    def backward(ctx, g_out):  # type: ignore[override]
        g_w, g_b = ctx.job.backward(g_out.detach().double().cpu().contiguous().numpy())
        return None, *ctx.job.parameter_gradients(g_w, g_b, ctx.params, ctx.needs_input_grad[1:])


class _TrainJob:
    """Holds the arrays and the samples' tapes between the forward and the backward pass.

    ``threads`` threads run each pass, one compiled call each. In the forward pass they claim the samples one
    by one as they go (a slower core does fewer); in the backward pass thread ``k`` replays samples ``k,
    k + threads, ...`` into its own gradient rows, summed in thread order afterwards, so results do not depend
    on how the threads are scheduled."""

    def __init__(self, network: Network, events, cfg, labels, threads: int, sample_offset: int = 0) -> None:
        from asyncsnn.engines.kernels.numba_train import SURROGATE_IDS

        self.network, self.events, self.cfg = network, events, cfg
        self.sample_offset = int(sample_offset)  # sample b draws its random numbers as sample_offset + b
        dtype = next(network.parameters()).dtype
        # the weights and bias currents are not taken from here: they come through autograd
        self.a = {**_structure_arrays(network), **_neuron_arrays(network, dtype)}
        L = self.a["L"]
        pops = [layer.population for layer in network.layers]
        self.detach_reset = np.array([p.detach_reset for p in pops])
        self.sg_kind = np.array([SURROGATE_IDS[p.surrogate.name] for p in pops], dtype=np.int64)
        self.sg_scale = np.array([float(p.surrogate.scale) for p in pops])
        B = events.batch_size
        self.n_chunks = max(1, min(threads, B))
        self.labels = (labels if labels is not None else torch.full((B,), -1)).to(torch.int64).cpu().numpy()
        self.spikes = np.zeros((B, L))
        self.synops = np.zeros((B, L))
        self.input_events = np.zeros(B)
        self.rec = np.zeros((B, 10))
        self.dropout = cfg.refractory_dropout if (network.training and cfg.refractory) else 0.0
        self.linear = [_linear_of(layer) is not None for layer in network.layers]

    def flat_parameters(self, params) -> tuple[np.ndarray, np.ndarray]:
        """The kernel's CSR weights and bias currents from the layers' ``(weights, bias)`` inputs, in the
        weights' common precision."""
        a = self.a
        host = [None if p is None else p.detach().cpu().numpy() for p in params]  # one copy each, if on a GPU
        dtype = np.result_type(*[host[2 * i].dtype for i in range(a["L"])])
        w = np.empty(int(a["ptr"][-1]), dtype=dtype)
        bias = np.zeros(int(a["neu_off"][-1]), dtype=dtype)
        for i, (lo, hi, b0, b1) in enumerate(self._segments()):
            weights, b = host[2 * i], host[2 * i + 1]
            if self.linear[i]:  # the CSR rows are the weight's columns
                w[lo:hi].reshape(weights.shape[1], weights.shape[0])[...] = weights.T
            else:
                w[lo:hi] = weights
            if b is not None:
                bias[b0:b1] = b
        return w, bias

    def parameter_gradients(self, g_w, g_b, params, needed) -> list:
        """The gradients of the inputs of :meth:`flat_parameters`, from the chunks' gradients of the CSR
        weights and bias currents (:meth:`backward`), on the parameters' devices."""
        grads: list = []
        for i, (lo, hi, b0, b1) in enumerate(self._segments()):
            (w_shape, w_dtype, w_device), bias = params[2 * i], params[2 * i + 1]
            g = None
            if needed[2 * i]:
                g = _sum_rows(g_w[:, lo:hi])
                if self.linear[i]:  # back to the weight's layout
                    g = np.ascontiguousarray(g.reshape(w_shape[1], w_shape[0]).T)
                g = torch.from_numpy(g).to(device=w_device, dtype=w_dtype)
            grads.append(g)
            g = None
            if needed[2 * i + 1]:
                g = torch.from_numpy(_sum_rows(g_b[:, b0:b1])).to(device=bias[2], dtype=bias[1])
            grads.append(g)
        return grads

    def _segments(self):
        """Per layer: its block's range in the CSR weights and its neurons' range in the biases."""
        a = self.a
        for i in range(a["L"]):
            lo, hi = a["ptr"][a["src_off"][i]], a["ptr"][a["src_off"][i + 1]]
            yield int(lo), int(hi), int(a["neu_off"][i]), int(a["neu_off"][i + 1])

    def forward(self, weights: np.ndarray, bias: np.ndarray) -> torch.Tensor:
        """Run every sample through the schedule, recording its tape; returns the outputs ``[T, B, n]``."""
        from asyncsnn.engines.kernels.numba_train import N_LENGTHS, forward_chunk, new_tape

        a, ev, cfg = self.a, self.events, self.cfg
        self.w = weights
        T, B = ev.num_steps, ev.batch_size
        out = np.zeros((T, B, int(a["sizes"][-1])))
        self.v_final = np.zeros((B, int(a["neu_off"][-1])))
        self.lengths = np.zeros((B, N_LENGTHS), dtype=np.int64)
        ok = np.zeros(B, dtype=np.bool_)
        args = (
            T, a["L"], a["neu_off"], a["src_off"], a["beta"], a["thr"], bias, a["reset_zero"],
            a["ptr"], a["tgt"], weights, a["fan"], a["dense_src"],
            ev.ptr, ev.channel, ev.count.astype(weights.dtype),
            self.labels, cfg.group_size, scheduler_id(cfg.scheduler_instance), cfg.seed, self.sample_offset,
            cfg.input_mode == "prioritized", cfg.refractory, cfg.refractory_current == "hold",
            float(cfg.sync_threshold), -1 if cfg.max_steps is None else cfg.max_steps,
            -1 if cfg.stop_after_output is None else cfg.stop_after_output, cfg.carry_over,
            self.dropout, out, self.v_final, self.spikes, self.synops, self.input_events, self.rec,
        )  # fmt: skip
        # start with the largest tape sizes of earlier steps (plus a margin): most steps fit at the first try
        sizes = capacity = self.network.__dict__.get(TAPE_SIZES, np.full(N_LENGTHS, 1024, dtype=np.int64))
        self.tape = new_tape(B, capacity, weights.dtype)
        samples = np.arange(B)
        while samples.size:
            n = min(self.n_chunks, samples.size)
            tail = (*self.tape, self.lengths, ok)
            counter = np.zeros(1, dtype=np.int64)  # the threads claim the samples one by one
            _in_threads(lambda k, s=samples, c=counter, tail=tail: forward_chunk(s, c, *args, *tail), n)
            samples = np.flatnonzero(~ok)
            if samples.size:  # some tapes were full: rerun those samples with room for more
                capacity = 4 * np.asarray(capacity)
                self.tape = _grown(self.tape, new_tape(B, capacity, weights.dtype))
        if B:  # sizes never shrink: no reruns when steps alternate between smaller and larger workloads
            need = (1.2 * self.lengths.max(0)).astype(np.int64) + 1024
            self.network.__dict__[TAPE_SIZES] = np.maximum(need, sizes)
        return torch.from_numpy(out)

    def backward(self, g_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Replay the tapes: the gradients of the CSR weights and of the bias currents, one row per chunk."""
        from asyncsnn.engines.kernels.numba_train import add_gathered, backward_chunk

        a, n = self.a, self.n_chunks
        g_w = np.empty((n, self.w.shape[0]), dtype=self.w.dtype)  # cleared by the threads
        g_b = np.empty((n, int(a["neu_off"][-1])))
        g_min, slot_off, cptr, cslot, camp = self._gather_plan()
        gather = np.empty((int(slot_off[-1]), int(a["neu_off"][1])), dtype=self.w.dtype)
        args = (
            *self.tape, self.lengths, g_out, a["neu_off"], a["beta64"], a["thr64"], a["reset_zero"],
            self.detach_reset, self.sg_kind, self.sg_scale, a["ptr"], a["tgt"], self.w, a["dense_src"],
        )  # fmt: skip
        _in_threads(lambda k: backward_chunk(k, n, *args, g_w[k], g_b[k], gather, slot_off, g_min), n)
        if cslot.size:
            _in_threads(lambda k: add_gathered(k, n, cptr, cslot, camp, gather, a["ptr"], g_w[0]), n)
        return g_w, g_b

    def _gather_plan(self):
        """The input deliveries whose weight gradient is gathered (see :mod:`.numba_train`): ``g_min`` (their
        least number of events; ``NEVER`` if none is), ``slot_off`` (sample ``b``'s rows of the gather buffer
        are ``slot_off[b] : slot_off[b + 1]``) and their events by input channel in tape order, ``cptr`` (CSR
        over channels), ``cslot`` (the delivery's row) and ``camp`` (the event's amplitude). Built by
        ``n_chunks`` threads over contiguous sample ranges, so it does not depend on their number."""
        from asyncsnn.engines.kernels.numba_train import gather_count, gather_fill

        ops, _, _, it_i, it_amp = self.tape[:5]
        B, n = self.lengths.shape[0], self.n_chunks
        cuts = [B * k // n for k in range(n + 1)]
        n_slots = np.zeros(B, dtype=np.int64)
        counts = np.zeros((n, int(self.a["src_off"][1])), dtype=np.int64)
        lengths, n_first = self.lengths, int(self.a["neu_off"][1])
        g_min = GATHER_MIN_EVENTS if self.a["dense_src"][0] else NEVER
        if g_min < NEVER:
            head = (ops, it_i, lengths, g_min, n_slots)
            _in_threads(lambda k: gather_count(cuts[k], cuts[k + 1], *head, counts[k]), n)
            if n_slots.sum() * n_first * self.w.itemsize > GATHER_MAX_BYTES:  # too many rows: plain replay
                g_min, n_slots[:], counts[:] = NEVER, 0, 0
        slot_off = np.concatenate(([0], np.cumsum(n_slots)))
        per_channel = counts.sum(0)
        cptr = np.concatenate(([0], np.cumsum(per_channel)))
        fill = cptr[:-1] + np.cumsum(counts, 0) - counts  # where each range's events of a channel start
        cslot = np.empty(int(cptr[-1]), dtype=np.int64)
        camp = np.empty(int(cptr[-1]), dtype=it_amp.dtype)
        if cslot.size:
            args = (ops, it_i, it_amp, lengths, g_min, slot_off)
            _in_threads(lambda k: gather_fill(cuts[k], cuts[k + 1], *args, fill[k], cslot, camp), n)
        return g_min, slot_off, cptr, cslot, camp


TAPE_SIZES = "_tape_sizes"  # network attribute: tape sizes for the next training step
# input deliveries with at least this many events have their weight gradient gathered (see numba_train)
GATHER_MIN_EVENTS = 4
GATHER_MAX_BYTES = 256 * 2**20  # at most this much memory for the gathered adjoint rows
NEVER = 2**62
_pool: ThreadPoolExecutor | None = None  # worker threads, kept: starting threads at every pass costs time
_pool_size = 0


def _in_threads(fn, n: int) -> None:
    """``fn(k)`` for ``k = 0 .. n - 1``: ``k = 0`` in this thread, the others in worker threads (the kernels
    release the GIL). numba's own thread pool (``prange``) is avoided on purpose: its OpenMP workers keep
    spinning after a kernel and slow down the PyTorch operations between the kernels."""
    global _pool, _pool_size
    if n > 1 and _pool_size < n - 1:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool, _pool_size = ThreadPoolExecutor(n - 1, thread_name_prefix="asyncsnn-kernel"), n - 1
    futures = [_pool.submit(fn, k) for k in range(1, n)] if n > 1 else []
    fn(0)
    for f in futures:
        f.result()


def _grown(old: tuple[np.ndarray, ...], new: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """``new`` (larger tapes) holding the entries of ``old``."""
    for o, n in zip(old, new):
        n[:, : o.shape[1]] = o
    return new


def _sum_rows(parts: np.ndarray) -> np.ndarray:
    """``parts[0] + parts[1] + ...``, C-contiguous, added in this order (the order fixes the rounding)."""
    total = np.empty(parts.shape[1:], dtype=parts.dtype)
    if len(parts) == 1:
        total[...] = parts[0]
    else:
        np.add(parts[0], parts[1], out=total)
    for part in parts[2:]:
        total += part
    return total


def _linear_of(layer) -> torch.nn.Linear | None:
    """The block's ``nn.Linear`` if the block is one (and reshapes): its CSR rows are the weight's columns."""
    linear = [m for m in layer.synapse if isinstance(m, torch.nn.Linear)]
    reshapes = (torch.nn.Flatten, torch.nn.Unflatten, torch.nn.Identity, torch.nn.Linear)
    if len(linear) == 1 and all(isinstance(m, reshapes) for m in layer.synapse):
        return linear[0]
    return None


def _csr_weights(network: Network, index: int) -> torch.Tensor:
    """The CSR weights of a block that is not a single ``nn.Linear``, as a differentiable function of its
    parameters (read off the Jacobian columns at the wired targets)."""
    layer = network.layers[index]
    ptr, targets = network.connectivity(index)
    # a parameter-free block (pooling) takes the network's dtype and device
    param = next(layer.synapse.parameters(), None)
    param = next(network.parameters()) if param is None else param
    parts = []
    for start in range(0, layer.in_size, 256):
        stop = min(start + 256, layer.in_size)
        basis = torch.zeros(stop - start, layer.in_size, dtype=param.dtype, device=param.device)
        basis[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        jac = apply_synapse(layer.synapse, basis.reshape(-1, *layer.in_shape), bias=False).flatten(1)
        fan = ptr[start + 1 : stop + 1] - ptr[start:stop]
        rows = torch.repeat_interleave(torch.arange(stop - start), fan)
        parts.append(jac[rows.to(jac.device), targets[ptr[start] : ptr[stop]].to(jac.device)])
    return torch.cat(parts)


def run_numba_train(network: Network, x, cfg, labels, threads: int | None = None, sample_offset: int = 0):
    """Differentiable run through the compiled training path (sample ``b`` draws its random numbers as
    sample ``sample_offset + b``). Returns the output (with a gradient to the parameters) and the job holding
    the records. A network on CUDA trains through host copies: the kernels run on the CPU, the output and the
    gradients come back to the network's device."""
    from asyncsnn.engines.events import SparseFrames

    events = x if isinstance(x, SparseFrames) else SparseFrames.from_dense(x)
    job = _TrainJob(network, events, cfg, labels, threads or torch.get_num_threads(), sample_offset)
    params = []  # per layer: weights and bias (None: no bias), each with a gradient
    for i, layer in enumerate(network.layers):
        linear = _linear_of(layer)
        if linear is not None:  # passed as they are: no PyTorch copies (and no thread team) per step
            params += [linear.weight, linear.bias]
        else:  # CSR weights and bias currents computed by PyTorch (differentiable)
            # a parameter-free block (pooling) takes the network's dtype and device, as in _csr_weights
            param = next(layer.synapse.parameters(), None)
            param = next(network.parameters()) if param is None else param
            zero = torch.zeros(1, *layer.in_shape, dtype=param.dtype, device=param.device)
            params += [_csr_weights(network, i), apply_synapse(layer.synapse, zero).reshape(-1)]
    out = _AsyncTrain.apply(job, *params)
    return out, job


# ----- CUDA (Triton) ----------------------------------------------------------------------------------------


def _pow2(n: int, least: int = 1) -> int:
    return max(least, 1 << max(0, int(n) - 1).bit_length())


def triton_blockers(network: Network, cfg, dtype: torch.dtype) -> list[str]:
    """Why the CUDA kernel cannot run this (empty: it can)."""
    from asyncsnn.engines.kernels.triton_cuda import MAX_LAYER, MAX_QUEUE

    a = _structure_arrays(network)
    n_queue = int(a["src_off"][-1]) - (int(a["src_off"][1]) if cfg.input_mode == "prioritized" else 0)
    reasons = [
        (not triton_available(), "Triton is not installed"),
        (dtype not in (torch.float32, torch.float64), f"float32 and float64 only, not {dtype}"),
        (max(int(n) for n in a["sizes"]) > MAX_LAYER, f"populations of at most {MAX_LAYER} neurons"),
        (n_queue > MAX_QUEUE, f"queues of at most {MAX_QUEUE} sources"),
    ]
    return [why for cond, why in reasons if cond]


def _device_structure(network: Network, device: torch.device) -> dict:
    """:func:`_structure_arrays` as tensors on ``device``, and the largest fan-out."""

    def build() -> dict:
        a = _structure_arrays(network)
        put = lambda v, dt: torch.as_tensor(np.asarray(v), dtype=dt, device=device)  # noqa: E731
        fan_per_src = np.diff(a["ptr"])
        return dict(
            neu_off=put(a["neu_off"], torch.int64), src_off=put(a["src_off"], torch.int64),
            dense_src=put(a["dense_src"], torch.int8),
            reset_zero=put(_reset_zero(network), torch.int8),
            ptr=put(a["ptr"], torch.int64), tgt=put(a["tgt"], torch.int64), fan=put(a["fan"], torch.float64),
            max_fan=int(fan_per_src.max()) if len(fan_per_src) else 1,
        )  # fmt: skip

    return _cached(network, ("structure", str(device)), (), None, build)


def _device_events(x, device: torch.device):
    """Input events as CSR tensors on ``device``: ``(ptr, channel, count)`` (see :class:`SparseFrames`)."""
    from asyncsnn.engines.events import SparseFrames

    if isinstance(x, SparseFrames):
        put = lambda v, dt: torch.as_tensor(v, dtype=dt).to(device)  # noqa: E731
        return put(x.ptr, torch.int64), put(x.channel, torch.int64), put(x.count, x.dtype)
    T, B = x.shape[:2]
    flat = x.detach().reshape(T, B, -1).transpose(0, 1)  # [B, T, n_in]
    b, t, i = flat.nonzero(as_tuple=True)  # lexicographic: sample, frame, channel
    ptr = torch.zeros(B * T + 1, dtype=torch.int64, device=device)
    ptr[1:] = torch.bincount(b * T + t, minlength=B * T).cumsum(0)
    return ptr, i.to(torch.int64), flat[b, t, i]


def run_triton(network: Network, x, cfg, state, labels, sample_offset: int = 0):
    """Inference through the CUDA kernel; ``x`` is a dense ``[T, B, ...]`` CUDA tensor or
    :class:`~asyncsnn.engines.events.SparseFrames`. Returns what :func:`run_numba` returns, as tensors on the
    network's device (no spike trains: the CUDA kernel does not record them)."""
    from asyncsnn.engines.events import SparseFrames
    from asyncsnn.engines.kernels import triton_cuda as tk

    sparse = isinstance(x, SparseFrames)
    T, B = (x.num_steps, x.batch_size) if sparse else x.shape[:2]
    dtype = x.dtype
    device = next(network.parameters()).device
    s = _device_structure(network, device)
    a = _structure_arrays(network)
    beta, thr = _cached(network, ("neurons", dtype, "dev"), _population_tensors(network), dtype,
                        lambda: _neuron_tensors(network, dtype))  # fmt: skip
    bias, w = _cached(network, ("synapses", dtype, "dev"), _synapse_block_tensors(network), dtype,
                      lambda: _synapse_tensors(network, dtype))  # fmt: skip
    ev_ptr, ev_idx, ev_amp = _device_events(x, device)
    L, N = int(a["L"]), int(a["neu_off"][-1])
    n_src, n_in, n_out = int(a["src_off"][-1]), int(a["src_off"][1]), int(a["sizes"][-1])
    q_lo = n_in if cfg.input_mode == "prioritized" else 0
    n_queue = n_src - q_lo
    block_n = _pow2(max(int(n) for n in a["sizes"]), 16)
    block_f = _pow2(min(cfg.group_size, max(n_queue, 1)), 2)
    if state is None:
        v = torch.zeros(B, N, dtype=dtype, device=device)
    else:
        v = (
            torch.cat([st.v.reshape(B, -1) for st in state], 1)
            .detach()
            .to(device=device, dtype=dtype)
            .clone()
        )
    lab = (labels if labels is not None else torch.full((B,), -1)).to(device=device, dtype=torch.int64)
    out = torch.zeros(T, B, n_out, dtype=dtype, device=device)
    spikes = torch.zeros(B, L, dtype=torch.float64, device=device)
    synops = torch.zeros(B, L, dtype=torch.float64, device=device)
    input_events = torch.zeros(B, dtype=torch.float64, device=device)
    rec = torch.zeros(B, tk.N_REC, dtype=torch.float64, device=device)
    scratch = dict(
        refr=torch.zeros(B, N, dtype=torch.int8, device=device),
        cnt=torch.zeros(B, N, dtype=dtype, device=device),
        cur=torch.zeros(B, N, dtype=dtype, device=device),
        hit=torch.zeros(B, N, dtype=torch.int8, device=device),
        pamp=torch.zeros(B, max(n_src, 1), dtype=dtype, device=device),
        pkey=torch.zeros(B, max(n_src, 1), dtype=torch.float64, device=device),
        selg=torch.zeros(B, block_f, dtype=torch.int64, device=device),
        sela=torch.zeros(B, block_f, dtype=dtype, device=device),
    )  # fmt: skip
    consts = torch.tensor([1e-12], dtype=torch.float64, device=device)
    tk.async_kernel[(B,)](
        s["neu_off"], s["src_off"], s["dense_src"], s["reset_zero"], beta, thr, bias,
        s["ptr"], s["tgt"], w, s["fan"], consts,
        ev_ptr, ev_idx, ev_amp.to(dtype), lab,
        out, v, spikes, synops, input_events, rec,
        scratch["refr"], scratch["cnt"], scratch["cur"], scratch["hit"], scratch["pamp"], scratch["pkey"],
        scratch["selg"], scratch["sela"],
        T, B, L, N, n_src, q_lo, n_out, cfg.group_size, cfg.seed, int(sample_offset),
        int(cfg.input_mode == "prioritized"), int(cfg.refractory), int(cfg.refractory_current == "hold"),
        float(cfg.sync_threshold), -1 if cfg.max_steps is None else cfg.max_steps,
        -1 if cfg.stop_after_output is None else cfg.stop_after_output, int(cfg.carry_over),
        SCHED=scheduler_id(cfg.scheduler_instance), BLOCK_N=block_n, BLOCK_Q=_pow2(n_queue, 16),
        BLOCK_F=block_f, BLOCK_L=_pow2(L, 2), EV_CHUNK=max(1, min(32, 8192 // block_n)),
        FAN_BLOCK=_pow2(s["max_fan"], 16), num_warps=tk.NUM_WARPS or (8 if block_n >= 1024 else 4),
    )  # fmt: skip
    rec[:, 1:6] = torch.where(rec[:, 1:6] < 0, torch.full_like(rec[:, 1:6], float("nan")), rec[:, 1:6])
    v_list = [v[:, int(a["neu_off"][i]) : int(a["neu_off"][i + 1])] for i in range(L)]
    return out, spikes, synops, input_events, rec, v_list, None
