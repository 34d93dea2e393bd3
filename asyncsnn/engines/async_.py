"""Asynchronous event-driven engine (DESIGN section 5): reference implementation in plain PyTorch.

Semantics, per sample and per frame ``x_t``:

1. **Leak** once at the start of the frame (``v <- beta * v``), plus each synapse block's bias as a constant
   current (no evaluation). Refractory flags and per-target event counts are cleared.
2. **Input**: ``prioritized`` delivers the whole input frame to the first population at once (this takes no
   micro-step); ``scheduled`` puts every nonzero input channel in the queue as an event (amplitude = count).
3. **Micro-steps**: the scheduler picks up to ``group_size`` pending events (lowest keys; ties by layer, then
   neuron index). They are delivered through the synapses, without bias, to their fan-out. A neuron that
   receives current integrates it and, if eligible, is *evaluated*: it fires when ``u > threshold``, is reset
   and, unless it is an output neuron, joins the queue (a neuron that fires again before delivery adds to its
   pending event's amplitude and keeps its place). Output spikes are read out at once and never queued.
   A neuron is eligible when it is not refractory (at most one spike per frame; ``refractory_dropout`` lets a
   refractory neuron fire again in training) and has received ``sync_threshold`` events this frame.
   Refractory neurons discard current (``refractory_current="hold"``) or integrate it without firing.
4. **Stop**: a frame ends when the queue is empty, or after ``max_steps`` micro-steps (undelivered events
   dropped or carried to the next frame); a sample's whole run ends ``stop_after_output`` micro-steps after
   its first output spike (events still pending then are reported as dropped). Each sample stops on its own.

Gradient ("unlayered backprop"): the scheduler's choices are constants; spikes use the population's surrogate.
Evaluations that do not fire carry gradient by the following rule, which reproduces layer-synchronous BPTT
exactly when the ``layer`` scheduler delivers whole layers (``group_size`` >= widest layer, prioritized
input):

- R1: a neuron's latest non-firing evaluation (its *silent* evaluation, value 0) rides along, at value 0, with
  the next micro-step that delivers real events from its layer;
- R2: a neuron that receives only ride-along (zero) current at a micro-step gets a *gradient-only* evaluation
  (forward value exactly 0, surrogate gradient); it becomes its latest silent evaluation. With prioritized
  input, every first-layer neuron that the input frame does not reach gets one at the start of the frame;
- R3: at the end of a frame, layer by layer: undelivered silent evaluations ride to the next layer (R2 applies
  to their receivers), and every neuron not evaluated in the frame gets a gradient-only evaluation;
- R4: an output neuron's frame output is its spikes plus, if it did not fire, its latest silent evaluation.

Ride-alongs and gradient-only evaluations change no forward value, count no SynOps and are not events.

This implementation evaluates dense tensors at every micro-step: it is the oracle that fast kernels are tested
against, not the fast path.
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.engines.events import SparseFrames
from asyncsnn.engines.keys import MODULUS, SALT_DROPOUT, SALT_KEY, hash_int
from asyncsnn.engines.records import Records, RunResult
from asyncsnn.network import Network, apply_synapse
from asyncsnn.neurons.lif import LIF, LIFState
from asyncsnn.validation import check_input

NEVER = float("nan")  # latency fields of samples whose event never happened


@dataclass
class AsyncRecords(Records):
    """:class:`Records` plus what only the asynchronous engine knows (all ``[B]``, per sample).

    ``micro_steps_to_first_output`` / ``..._to_first_correct`` / ``spikes_before_first_*`` are NaN for samples
    without such a spike. Event conservation: ``emitted_events == delivered_events + dropped_events +
    pending_at_end`` (input events count as emitted when they enter the queue in ``scheduled`` mode).
    """

    micro_steps: torch.Tensor | None = None
    micro_steps_to_first_output: torch.Tensor | None = None
    micro_steps_to_first_correct: torch.Tensor | None = None
    micro_steps_to_decision: torch.Tensor | None = None
    spikes_before_first_output: torch.Tensor | None = None
    spikes_before_first_correct: torch.Tensor | None = None
    emitted_events: torch.Tensor | None = None
    delivered_events: torch.Tensor | None = None
    dropped_events: torch.Tensor | None = None
    pending_at_end: torch.Tensor | None = None
    queue_trace: list[torch.Tensor] | None = field(default=None, repr=False)


class _Source:
    """Pending events of one source (the input, or a non-output population), per sample, flattened."""

    def __init__(self, B: int, n: int, like: torch.Tensor) -> None:
        self.amp = like.new_zeros(B, n)  # amplitude with graph (sum of undelivered spike values)
        self.pending = torch.zeros(B, n, dtype=torch.bool, device=like.device)
        self.key = torch.full((B, n), float("inf"), dtype=torch.float64, device=like.device)


def select_lowest(keys: torch.Tensor, pending: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per row, mark the ``group_size`` pending entries with the lowest keys (ties: lower column first).

    ``keys``, ``pending``: ``[B, N]``; columns are ordered input, then layer 0, 1, ... (neuron index within).
    """
    masked = torch.where(pending, keys, torch.inf)
    order = torch.sort(masked, dim=1, stable=True).indices[:, :group_size]
    chosen = torch.zeros_like(pending)
    chosen.scatter_(1, order, torch.gather(pending, 1, order))
    return chosen


def run(
    network: Network,
    x: torch.Tensor,
    config: AsyncConfig | None = None,
    state: list | None = None,
    *,
    labels: torch.Tensor | None = None,
    record_queue: bool = False,
    record_spikes: bool = False,
    backend: str = "auto",
    sample_offset: int = 0,
) -> RunResult:
    """Run ``network`` asynchronously on ``x``: counts ``[T, B, *input_shape]`` or :class:`SparseFrames`.

    Returns ``output`` ``[T, B, n_out]`` (output spikes per frame, with gradient) and :class:`AsyncRecords`.
    ``labels`` ``[B]`` enables the "first correct output spike" records. ``state`` (one :class:`LIFState` per
    population, from either engine) sets the initial membranes; events pending at the end are not carried.

    ``record_spikes``: also return, in :attr:`RunResult.spike_trains`, the spikes every population emitted
    in each frame: per population ``[T, B, *shape]`` counts (the run's dtype, no gradient). The output
    population's train equals ``output``; a hidden population's, summed over frames and neurons, equals
    ``records.spikes``. Recorded by the reference and the numba inference kernel only.

    ``backend``: ``"reference"`` (this module, differentiable), ``"numba"`` (compiled CPU kernels; a CUDA
    network trains through them on host copies), ``"triton"`` (CUDA kernel, inference only) or ``"auto"``:
    on CPU numba when it is installed, on CUDA Triton when the run needs no gradient and numba when it does;
    either only with a built-in scheduler, no queue trace and (Triton, or numba with a gradient) no spike
    trains; the reference otherwise.

    ``sample_offset`` (a non-negative int): sample ``b`` of the batch draws its random numbers (``random``
    scheduler keys, the ``momentum`` tie-break noise, refractory dropout) as sample ``sample_offset + b``. A
    sample's result depends only on its id, not on the rest of the batch: running ``x[:, a:b]`` with
    ``sample_offset=a`` reproduces samples ``a .. b - 1`` of the whole batch (multi-process training passes
    each rank's slice start).
    """
    if (
        isinstance(sample_offset, bool)
        or not isinstance(sample_offset, numbers.Integral)
        or sample_offset < 0
    ):
        raise ValueError(f"sample_offset must be a non-negative int, got {sample_offset!r}")
    sample_offset = int(sample_offset)
    config = config or AsyncConfig()
    if isinstance(x, SparseFrames):
        if x.frame_shape != network.input_shape:
            raise ValueError(
                f"events have frame shape {x.frame_shape}, the network expects {network.input_shape}"
            )
        like = torch.empty(0, dtype=x.dtype, device=_device_of(network))
        chosen = _choose_backend(network, like, config, record_queue, backend, state, record_spikes)
        if chosen == "triton":
            return _run_triton(network, x, config, state, labels, sample_offset)
        if chosen == "numba-train":
            return _run_numba_train(network, x, config, labels, sample_offset)
        if chosen == "numba":
            return _run_numba(network, x, config, state, labels, sample_offset, record_spikes=record_spikes)
        x = x.to_dense()
    check_input(network, x)
    chosen = _choose_backend(network, x, config, record_queue, backend, state, record_spikes)
    if chosen in ("numba", "numba-train"):  # the kernels take event lists; converting checks the counts
        try:
            events = SparseFrames.from_dense(x)
        except ValueError as err:
            raise ValueError(f"asynchronous input must be non-negative event counts ({err})") from None
        if chosen == "numba-train":
            return _run_numba_train(network, events, config, labels, sample_offset)
        return _run_numba(network, events, config, state, labels, sample_offset, record_spikes=record_spikes)
    if chosen == "triton":
        if (x < 0).any():
            raise ValueError("asynchronous input must be non-negative event counts")
        return _run_triton(network, x, config, state, labels, sample_offset)
    return _Runner(network, x, config, labels, record_queue, sample_offset, record_spikes).run(state)


BACKENDS = ("auto", "reference", "numba", "triton")


def _device_of(network: Network) -> torch.device:
    param = next(network.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _choose_backend(network, x, config, record_queue, backend, state=None, record_spikes=False) -> str:
    from asyncsnn.engines.kernels import numba_available, numba_trainable, scheduler_id, triton_blockers

    if backend not in BACKENDS:
        raise ValueError(f"backend: {backend!r} is not allowed; choose one of {BACKENDS}")
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in network.parameters())
    )
    dropout = network.training and config.refractory and config.refractory_dropout > 0
    training = needs_grad or dropout
    if (x.device.type == "cuda" and not training) or backend == "triton":
        reasons = [
            (x.device.type != "cuda", "the Triton kernel runs on CUDA tensors"),
            (training, "the Triton kernel is inference only (training takes backend 'numba' or 'reference')"),
            (record_queue, "record_queue is only recorded by the reference"),
            (record_spikes, "record_spikes is only recorded by the reference and the numba inference kernel"),
            (scheduler_id(config.scheduler_instance) is None, "custom schedulers run on the reference"),
            (not all(isinstance(layer.population, LIF) for layer in network.layers), "LIF populations only"),
        ]
        blocked = [why for cond, why in reasons if cond]
        if not blocked:
            blocked = triton_blockers(network, config, x.dtype)
        if backend in ("numba", "triton") and (blocked or backend == "numba"):
            needs = "CPU tensors (on CUDA it only trains)" if backend == "numba" else "; ".join(blocked)
            raise ValueError(f"backend={backend!r} cannot run this: {needs}")
        return "reference" if (backend == "reference" or blocked) else "triton"
    reasons = [
        (not numba_available(), "numba is not installed (pip install 'asyncsnn[fast]')"),
        (record_queue, "record_queue is only recorded by the reference"),
        (scheduler_id(config.scheduler_instance) is None, "custom schedulers run on the reference"),
        # CUDA tensors train through host copies (the compiled training path runs on the CPU)
        (x.device.type not in ("cpu", "cuda"), "the numba kernels take CPU (or, to train, CUDA) tensors"),
        (not all(isinstance(layer.population, LIF) for layer in network.layers), "LIF populations only"),
    ]
    if training:  # the compiled training path, from rest
        reasons.append(
            (
                not all(isinstance(layer.population, LIF) for layer in network.layers)
                or not numba_trainable(network),
                "training needs dense (nn.Linear) blocks on numba",
            )
        )
        reasons.append((x.requires_grad, "gradients with respect to the input need the reference"))
        reasons.append((state is not None, "training from a given state needs the reference"))
        reasons.append(
            (record_spikes, "record_spikes is not recorded by the compiled training path (only inference)")
        )
    else:
        reasons.append((dropout, "refractory dropout is a training feature"))
    blocked = [why for cond, why in reasons if cond]
    if backend == "numba" and blocked:
        raise ValueError("backend='numba' cannot run this: " + "; ".join(blocked))
    if backend == "reference" or blocked:
        return "reference"
    return "numba-train" if training else "numba"


def _run_numba_train(network, x, config, labels, sample_offset=0) -> RunResult:
    from asyncsnn.engines.kernels import run_numba_train

    out, job = run_numba_train(network, x, config, labels, sample_offset=sample_offset)
    dtype, B = out.dtype, out.shape[1]
    records = _records_from_kernel(job.spikes, job.synops, job.input_events, job.rec, dtype, out.device)
    v = torch.from_numpy(job.v_final).to(device=out.device, dtype=dtype)
    offsets = [0]
    for layer in network.layers:
        offsets.append(offsets[-1] + layer.size)
    state = [  # final membranes as values (the gradient flows through the output only)
        LIFState(v[:, offsets[i] : offsets[i + 1]].reshape(B, *layer.shape))
        for i, layer in enumerate(network.layers)
    ]
    return RunResult(out, records, state)


def _records_from_kernel(spikes, synops, input_events, rec, dtype, device=None) -> AsyncRecords:
    """Records from a kernel's per-sample arrays (``spikes``, ``synops`` ``[B, L]``, ``rec`` ``[B, 10]``, see
    :func:`~asyncsnn.engines.kernels.numba_cpu.run_batch`; numpy arrays or tensors), on ``device`` (default:
    where the arrays are). Every field is a row of one block assembled on the host: a call makes a handful of
    tensors, not one or more per field (each costs microseconds; an inference call, a few milliseconds)."""
    if device is None:
        device = rec.device if isinstance(rec, torch.Tensor) else torch.device("cpu")
    spikes, synops, input_events, rec = (
        a.cpu().numpy() if isinstance(a, torch.Tensor) else a for a in (spikes, synops, input_events, rec)
    )
    L = spikes.shape[1]
    # rows: input events, spikes and SynOps per layer, micro-steps and the event counts, in the run's dtype
    # (float32 cast by numpy: one operation less; others from float64), and the five latency records (float64,
    # NaN where never)
    counts = np.concatenate(
        [input_events[None], spikes.T, synops.T, rec.T[[0, 6, 7, 8, 9]]],
        dtype=np.float32 if dtype == torch.float32 else np.float64,
    )
    counts = torch.from_numpy(counts).to(device=device, dtype=dtype).unbind(0)
    latencies = torch.from_numpy(np.ascontiguousarray(rec.T[1:6])).to(device).unbind(0)
    return AsyncRecords(
        input_events=counts[0],
        spikes=list(counts[1 : L + 1]),
        synops=list(counts[L + 1 : 2 * L + 1]),
        micro_steps=counts[2 * L + 1],
        micro_steps_to_first_output=latencies[0],
        micro_steps_to_first_correct=latencies[1],
        micro_steps_to_decision=latencies[2],
        spikes_before_first_output=latencies[3],
        spikes_before_first_correct=latencies[4],
        emitted_events=counts[2 * L + 2],
        delivered_events=counts[2 * L + 3],
        dropped_events=counts[2 * L + 4],
        pending_at_end=counts[2 * L + 5],
    )


def _run_numba(
    network, x, config, state, labels, sample_offset=0, kernel=None, record_spikes=False
) -> RunResult:
    from asyncsnn.engines.kernels import run_numba

    kernel = kernel or functools.partial(run_numba, record_spikes=record_spikes)
    out, spikes, synops, input_events, rec, v_list, trains = kernel(
        network, x, config, state, labels, sample_offset
    )
    dtype, T, B = x.dtype, *((x.num_steps, x.batch_size) if isinstance(x, SparseFrames) else x.shape[:2])
    records = _records_from_kernel(spikes, synops, input_events, rec, dtype)
    state = [LIFState(v.reshape(B, *layer.shape)) for v, layer in zip(v_list, network.layers)]
    if trains is not None:
        trains = [f.reshape(T, B, *layer.shape).to(dtype) for f, layer in zip(trains, network.layers)]
    return RunResult(out.to(dtype), records, state, trains)


def _run_triton(network, x, config, state, labels, sample_offset=0) -> RunResult:
    from asyncsnn.engines.kernels import run_triton

    return _run_numba(network, x, config, state, labels, sample_offset, kernel=run_triton)


class _Runner:
    def __init__(
        self,
        network,
        x,
        cfg: AsyncConfig,
        labels,
        record_queue: bool,
        sample_offset: int = 0,
        record_spikes: bool = False,
    ) -> None:
        for layer in network.layers:
            if not isinstance(layer.population, LIF):
                raise ValueError(
                    "the asynchronous engine runs spiking (LIF) populations only; "
                    f"layer {layer.index} is {type(layer.population).__name__}"
                )
        if (x < 0).any():
            raise ValueError("asynchronous input must be non-negative event counts")
        self.net, self.x, self.cfg = network, x, cfg
        self.T, self.B = x.shape[:2]
        self.layers = network.layers
        self.L = len(self.layers)
        self.labels = labels
        self.record_queue = record_queue
        self.record_spikes = record_spikes
        self.sched = cfg.scheduler_instance
        dev = x.device
        self.sample_index = torch.arange(self.B, device=dev).unsqueeze(1) + sample_offset  # ids in the keys
        self.params = [layer.population.parameters_() for layer in self.layers]
        self.fan_out = [network.fan_out(i).to(dev, x.dtype) for i in range(self.L)]
        self.connect_t = []  # per block: sparse [n_out, n_in] 0/1 connectivity (transposed), for event counts
        for i, layer in enumerate(self.layers):
            ptr, targets = network.connectivity(i)
            sources = torch.repeat_interleave(torch.arange(layer.in_size), ptr[1:] - ptr[:-1])
            idx = torch.stack([targets, sources]).to(dev)
            ones = torch.ones(targets.numel(), dtype=x.dtype, device=dev)
            self.connect_t.append(
                torch.sparse_coo_tensor(
                    idx, ones, (layer.size, layer.in_size), check_invariants=True
                ).coalesce()
            )
        self.training = network.training

    # ----- helpers -------------------------------------------------------------------------------------
    def _uniform(self, layer: int, n: int, salt: int) -> torch.Tensor:
        """``[B, n]`` counter-based uniform draws for the neurons of ``layer`` at the current micro-step."""
        neuron = torch.arange(n, device=self.x.device).unsqueeze(0)
        h = hash_int(self.cfg.seed, self.sample_index, self.steps.unsqueeze(1), layer, neuron, salt)
        return h.to(torch.float64) / MODULUS

    def _deliver(self, i: int, d: torch.Tensor) -> torch.Tensor:
        """Current ``[B, n_i]`` into population ``i`` from flattened source values ``d`` (no bias)."""
        layer = self.layers[i]
        out = apply_synapse(layer.synapse, d.reshape(self.B, *layer.in_shape), bias=False)
        return out.reshape(self.B, -1)

    def _reach(self, i: int, amount: torch.Tensor) -> torch.Tensor:
        """Events reaching each neuron of population ``i`` (amplitude-weighted; an event counts once per
        connected target): ``[B, n_i]`` from per-source amounts ``[B, in_size]``."""
        with torch.no_grad():
            return torch.sparse.mm(self.connect_t[i], amount.detach().t()).t()

    def _flat(self, t: torch.Tensor, i: int) -> torch.Tensor:
        """A scalar or per-neuron parameter as ``[1, n_i]``."""
        return torch.broadcast_to(t, self.layers[i].shape).reshape(1, -1)

    # ----- main loop -----------------------------------------------------------------------------------
    def run(self, state: list | None) -> RunResult:
        B, L, dev, dtype = self.B, self.L, self.x.device, self.x.dtype
        sizes = [layer.size for layer in self.layers]
        zeros = torch.zeros(B, dtype=dtype, device=dev)
        self.v = [
            torch.zeros(B, n, dtype=dtype, device=dev) if st is None else st.v.reshape(B, n)
            for n, st in zip(sizes, state if state is not None else [None] * L)
        ]
        in_size = self.layers[0].in_size
        # Sources: index 0 = input, index i + 1 = population i (the output population is never a source).
        self.sources = [_Source(B, in_size, self.x)] + [_Source(B, n, self.x) for n in sizes[:-1]]
        self.steps = torch.zeros(B, dtype=torch.int64, device=dev)
        self.active = torch.ones(B, dtype=torch.bool, device=dev)
        self.first_output = torch.full((B,), NEVER, dtype=torch.float64, device=dev)
        self.first_correct = torch.full((B,), NEVER, dtype=torch.float64, device=dev)
        self.spk_before_out = torch.full((B,), NEVER, dtype=torch.float64, device=dev)
        self.spk_before_correct = torch.full((B,), NEVER, dtype=torch.float64, device=dev)
        self.hidden_spikes = torch.zeros(B, dtype=torch.float64, device=dev)
        self.spikes = [zeros.clone() for _ in range(L)]
        self.synops = [zeros.clone() for _ in range(L)]
        self.input_events = zeros.clone()
        self.emitted, self.delivered, self.dropped = zeros.clone(), zeros.clone(), zeros.clone()
        self.decision = torch.full((B,), NEVER, dtype=torch.float64, device=dev)
        self.queue_trace: list[torch.Tensor] = []
        self.trains: list[list[torch.Tensor]] = [[] for _ in range(L)]  # per population, per frame: [B, n]
        outputs = []
        for t in range(self.T):
            outputs.append(self._frame(self.x[t].reshape(B, -1)))
        pending_at_end = sum((s.amp.detach() * s.pending).sum(1) for s in self.sources)
        done = torch.isnan(self.decision)
        self.decision = torch.where(done, self.steps.to(torch.float64), self.decision)
        records = AsyncRecords(
            input_events=self.input_events,
            spikes=self.spikes,
            synops=self.synops,
            micro_steps=self.steps.to(dtype),
            micro_steps_to_first_output=self.first_output,
            micro_steps_to_first_correct=self.first_correct,
            micro_steps_to_decision=self.decision,
            spikes_before_first_output=self.spk_before_out,
            spikes_before_first_correct=self.spk_before_correct,
            emitted_events=self.emitted,
            delivered_events=self.delivered,
            dropped_events=self.dropped,
            pending_at_end=pending_at_end if torch.is_tensor(pending_at_end) else zeros.clone(),
            queue_trace=self.queue_trace if self.record_queue else None,
        )
        state = [LIFState(v.reshape(B, *layer.shape)) for v, layer in zip(self.v, self.layers)]
        trains = None
        if self.record_spikes:
            trains = [
                torch.stack(frames).reshape(self.T, B, *layer.shape)
                for frames, layer in zip(self.trains, self.layers)
            ]
        return RunResult(torch.stack(outputs), records, state, trains)

    def _frame(self, x_t: torch.Tensor) -> torch.Tensor:
        B, cfg = self.B, self.cfg
        dev = x_t.device
        running = self.active.clone()  # samples whose frame is still going
        self.refractory = [torch.zeros(B, layer.size, dtype=torch.bool, device=dev) for layer in self.layers]
        self.evaluated = [torch.zeros_like(r) for r in self.refractory]
        self.silent = [torch.zeros_like(r) for r in self.refractory]
        self.silent_val = [torch.zeros_like(v) for v in self.v]
        self.counts = [torch.zeros_like(v) for v in self.v]
        self.out_frame = torch.zeros_like(self.v[-1])
        self.out_fired = torch.zeros_like(self.refractory[-1])
        self.frame_spikes = [torch.zeros_like(v) for v in self.v]
        act = running.unsqueeze(1).to(x_t.dtype)
        for i, layer in enumerate(self.layers):  # leak + bias, only for running samples
            zero = torch.zeros(1, *layer.in_shape, dtype=x_t.dtype, device=dev)
            bias = apply_synapse(layer.synapse, zero).reshape(1, -1)  # a linear map of 0 is its bias
            beta = self._flat(self.params[i].beta, i)
            self.v[i] = torch.where(running.unsqueeze(1), beta * self.v[i] + bias, self.v[i])
        x_t = x_t * act
        if cfg.input_mode == "prioritized":
            sel = x_t > 0
            self._count_delivery(0, sel, x_t)
            # R2 at frame start: first-layer neurons the input does not reach get a gradient-only evaluation
            self._deliver_and_evaluate(0, x_t, sel, running.unsqueeze(1).expand_as(self.refractory[0]))
        else:
            self._enqueue(0, x_t > 0, x_t, membrane=x_t)
        self._check_stops(running)
        steps_in_frame = torch.zeros(B, dtype=torch.int64, device=dev)
        while True:
            stopped = running & ~self.active
            if stopped.any():
                self._end_frame(stopped, final=True)
                running = running & ~stopped
            has_pending = torch.stack([s.pending.any(1) for s in self.sources]).any(0)
            ending = running & ~has_pending
            if cfg.max_steps is not None:
                ending |= running & (steps_in_frame >= cfg.max_steps)
            if ending.any():
                self._end_frame(ending)
                running = running & ~ending
            if not running.any():
                break
            self._micro_step(running)
            steps_in_frame += running.long()
            if self.record_queue:
                self.queue_trace.append(sum(s.pending.sum(1) for s in self.sources))
            self._check_stops(running)
        if self.record_spikes:
            for i, frame in enumerate(self.frame_spikes):
                self.trains[i].append(frame)
        return self.out_frame + torch.where(self.silent[-1] & ~self.out_fired, self.silent_val[-1], 0.0)

    # ----- queue ---------------------------------------------------------------------------------------
    def _enqueue(self, s: int, fired: torch.Tensor, value: torch.Tensor, membrane: torch.Tensor) -> None:
        """Add events ``fired`` of source ``s`` with amplitude ``value``; new ones get scheduler keys."""
        src = self.sources[s]
        new = fired & ~src.pending
        if new.any():
            rand = self._uniform(s - 1, new.shape[1], SALT_KEY)
            step = self.steps.unsqueeze(1).expand_as(new)
            key = self.sched.key(s - 1, membrane.detach().to(torch.float64), step, rand)
            src.key = torch.where(new, key.to(torch.float64), src.key)
        src.pending = src.pending | fired
        src.amp = src.amp + torch.where(fired, value, 0.0)
        self.emitted += (value.detach() * fired).sum(1)

    def _select(self, running: torch.Tensor) -> list[torch.Tensor]:
        """Per source, the bool mask of events delivered this micro-step (<= group_size per sample)."""
        keys = torch.cat([s.key for s in self.sources], 1)
        pending = torch.cat([s.pending for s in self.sources], 1) & running.unsqueeze(1)
        chosen = select_lowest(keys, pending, self.cfg.group_size)
        return list(torch.split(chosen, [s.pending.shape[1] for s in self.sources], 1))

    def _count_delivery(self, s: int, sel: torch.Tensor, amp: torch.Tensor) -> None:
        delivered = (amp.detach() * sel).sum(1)
        self.delivered += delivered if s > 0 or self.cfg.input_mode == "scheduled" else 0.0
        if s == 0:
            self.input_events += delivered
        self.synops[s] += (amp.detach() * sel) @ self.fan_out[s]

    def _micro_step(self, running: torch.Tensor) -> None:
        chosen = self._select(running)
        self.steps += running.long()
        # The selected events leave the queue now: a neuron that fires again during this micro-step (before
        # its source's turn) starts a new pending event instead of joining the one being delivered.
        taken = []
        for s, sel in enumerate(chosen):
            src = self.sources[s]
            amp = src.amp if s > 0 else src.amp.detach()
            taken.append(amp * sel)
            src.amp = torch.where(sel, 0.0, src.amp)
            src.pending = src.pending & ~sel
            src.key = torch.where(sel, torch.inf, src.key)
        for s, sel in enumerate(chosen):  # input first, then populations in order (R1: layer by layer)
            if not sel.any():
                continue
            d = taken[s]
            self._count_delivery(s, sel, d)
            if s > 0:  # R1: silent evaluations of this layer ride along with its real events
                ride = self.silent[s - 1] & sel.any(1, keepdim=True)
                d = d + torch.where(ride, self.silent_val[s - 1], 0.0)
                self.silent[s - 1] = self.silent[s - 1] & ~ride
                ride_reach = self._reach(s, ride.to(d.dtype)) > 0
            else:
                ride_reach = torch.zeros_like(self.refractory[0])
            self._deliver_and_evaluate(s, d, sel, ride_reach)

    def _deliver_and_evaluate(
        self, i: int, d: torch.Tensor, sel: torch.Tensor, ride_reach: torch.Tensor | None = None
    ) -> None:
        """Deliver source values ``d`` into population ``i``, integrate and evaluate (R2)."""
        cfg = self.cfg
        current = self._deliver(i, d)
        reach = self._reach(i, sel.to(d.dtype) * d.detach())  # amplitude-weighted event counts
        real = reach > 0  # received real current (amplitudes are positive)
        self.counts[i] = self.counts[i] + reach
        refr = self.refractory[i]
        if cfg.refractory and cfg.refractory_current == "hold":
            current = torch.where(refr, 0.0, current)
        self.v[i] = self.v[i] + current
        free = ~refr if cfg.refractory else torch.ones_like(refr)
        if cfg.refractory and cfg.refractory_dropout > 0 and self.training:
            lucky = self._uniform(i, refr.shape[1], SALT_DROPOUT) < cfg.refractory_dropout
            free = free | lucky
        eligible = real & free & (self.counts[i] >= cfg.sync_threshold)
        grad_only = (ride_reach if ride_reach is not None else torch.zeros_like(real)) & ~real & free
        self._evaluate(i, eligible, grad_only)

    def _evaluate(self, i: int, eligible: torch.Tensor, grad_only: torch.Tensor) -> None:
        p = self.params[i]
        thr = self._flat(p.threshold, i)
        u = self.v[i]
        s = p.surrogate.spike(u - thr)
        fired = eligible & (s.detach() > 0)
        s_fired = torch.where(fired, s, 0.0)
        silent_now = (eligible & ~fired) | grad_only
        g = s - s.detach()  # forward exactly 0, surrogate gradient
        value = torch.where(eligible, s, g)
        self.silent_val[i] = torch.where(silent_now, value, self.silent_val[i])
        self.silent[i] = (self.silent[i] | silent_now) & ~fired
        self.evaluated[i] = self.evaluated[i] | eligible | grad_only
        if fired.any():
            r = s_fired.detach() if p.detach_reset else s_fired
            self.v[i] = u * (1 - r) if p.reset == "zero" else u - thr * r
            self.refractory[i] = self.refractory[i] | fired
            self.spikes[i] += fired.sum(1).to(self.spikes[i].dtype)
            self.frame_spikes[i] += fired.to(self.frame_spikes[i].dtype)
            if i == self.L - 1:
                self._output_spikes(fired, s_fired)
            else:
                self.hidden_spikes += fired.sum(1).to(torch.float64)
                self._enqueue(i + 1, fired, s_fired, membrane=u)

    def _output_spikes(self, fired: torch.Tensor, s_fired: torch.Tensor) -> None:
        self.out_frame = self.out_frame + s_fired
        self.out_fired = self.out_fired | fired
        step = self.steps.to(torch.float64)
        first = fired.any(1) & torch.isnan(self.first_output)
        self.first_output = torch.where(first, step, self.first_output)
        self.spk_before_out = torch.where(first, self.hidden_spikes, self.spk_before_out)
        if self.labels is not None:
            hit = fired.gather(1, self.labels.view(-1, 1)).squeeze(1) & torch.isnan(self.first_correct)
            self.first_correct = torch.where(hit, step, self.first_correct)
            self.spk_before_correct = torch.where(hit, self.hidden_spikes, self.spk_before_correct)

    def _check_stops(self, running: torch.Tensor) -> None:
        k = self.cfg.stop_after_output
        if k is None:
            return
        done = running & ~torch.isnan(self.first_output) & (self.steps >= self.first_output + k)
        first_stop = done & torch.isnan(self.decision)
        self.decision = torch.where(first_stop, self.steps.to(torch.float64), self.decision)
        self.active = self.active & ~done

    def _end_frame(self, ending: torch.Tensor, final: bool = False) -> None:
        """Frame end for samples ``ending``: drop or carry pending events, then the gradient pass R3."""
        rows = ending.unsqueeze(1)
        for src in self.sources:
            leftover = src.pending & rows
            if final or not self.cfg.carry_over:
                self.dropped += (src.amp.detach() * leftover).sum(1)
                src.amp = torch.where(leftover, 0.0, src.amp)
                src.pending = src.pending & ~leftover
                src.key = torch.where(leftover, torch.inf, src.key)
        for i in range(self.L):
            grad_reach = torch.zeros_like(self.refractory[i])
            if i > 0:  # R3: undelivered silent evaluations of layer i-1 ride to layer i
                ride = self.silent[i - 1] & rows
                if ride.any():
                    self.v[i] = self.v[i] + self._deliver(i, torch.where(ride, self.silent_val[i - 1], 0.0))
                    grad_reach = self._reach(i, ride.to(self.v[i].dtype)) > 0
                    self.silent[i - 1] = self.silent[i - 1] & ~ride
            never = ~self.evaluated[i] & rows
            self._evaluate(i, torch.zeros_like(never), (grad_reach | never) & rows)
