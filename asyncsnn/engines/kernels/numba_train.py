"""Compiled training path of the asynchronous engine (dense and sparse, e.g. conv, blocks), with numba.

The forward pass runs the schedule like :mod:`.numba_cpu` and writes a compact *tape* per sample: one entry
per leak and per delivery (which events, which silent evaluations rode along, which targets were held, which
evaluations followed), one per evaluation (neuron, membrane, kind: fired, silent or gradient-only). The
backward pass replays the tape in reverse with per-neuron adjoints, applying the gradient rules R1-R4 of
:mod:`asyncsnn.engines.async_` (the reference; tests check that the gradients agree). Memory is the tape,
O(evaluations + delivered events), never a dense tensor per micro-step.

Tape of sample ``b`` (arrays ``[B, capacity, ...]``, filled up to ``lengths[b]``):

- ``ops[b, o]``: ``OP_LEAK`` (frame start) or ``OP_DELIVER`` with its source ``s`` and the ranges of its
  items, held flags and evaluations (columns ``OP_*``);
- ``ev_i[b, e]`` (neuron, kind, next spike of the same pending event or -1) and ``ev_u[b, e]`` (membrane);
- ``it_i[b, i]`` (source gid, first evaluation id of the spikes making up the event, -1 for an input event)
  and ``it_amp[b, i]`` (amplitude; 0 for a silent ride-along);
- ``held[b, h]`` (the target was refractory and held its current) and ``held_t[b, h]`` (its neuron; sparse
  blocks only: dense blocks list the whole target layer in order, or nothing when no target holds);
- ``outs[b, q]``: (frame, output neuron, evaluation id) of each frame output value (R4).

A dense input block's weight gradient is gathered: an input delivery with many events (prioritized input
delivers a frame's events at once) keeps its adjoint row, and :func:`add_gathered` sums, per input channel,
the rows of the deliveries that carried it (one write per gradient row instead of a read-modify-write of a
random row per event; the sum is in tape order whatever the thread count).

The chunk functions run one thread's share of the samples in one call (no Python per sample; they release
the GIL). A tape never grows inside the kernel (reallocating arrays in the hot loop would cost reference
counting on every delivery): a sample whose tape is full stops and reports it, and the caller reruns it with
more room.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from asyncsnn.engines.kernels.numba_cpu import (
    DECISION,
    DELIVERED,
    DROPPED,
    EMITTED,
    FIRST_COR,
    FIRST_OUT,
    HIDDEN,
    N_PEND,
    SPK_COR,
    SPK_OUT,
    STEP,
    _finish,
    _hash,
    _key,
    _new_state,
    _select_lowest,
    add_rows,
)
from asyncsnn.engines.keys import MODULUS, SALT_DROPOUT

OP_LEAK, OP_DELIVER = 0, 1
# columns of ``ops``: kind, source, items [from, to), held flags [from, to), evaluations [from, to)
OP_KIND, OP_SRC, OP_IT0, OP_IT1, OP_H0, OP_H1, OP_EV0, OP_EV1 = range(8)
EV_NEURON, EV_KIND, EV_NEXT = range(3)  # columns of ``ev_i``
IT_GID, IT_HEAD = range(2)  # columns of ``it_i``
OUT_T, OUT_K, OUT_ID = range(3)  # columns of ``outs``
N_LENGTHS = 5  # ``lengths[b]``: ops, evaluations, items, held flags, outputs
FIRED, SILENT, GRAD_ONLY = 0, 1, 2
# per-neuron flags of the forward pass, bits of one byte (one load per neuron): refractory, evaluated this
# frame, latest evaluation silent, in the silent list, reached by this delivery, ... by real events in it,
# output neuron fired this frame
F_REFR, F_EVALUATED, F_SILENT, F_LISTED, F_TOUCHED, F_REAL, F_OUT_FIRED = 1, 2, 4, 8, 16, 32, 64
SURROGATE_IDS = {"atan": 0, "fast_sigmoid": 1, "sigmoid": 2}


def new_tape(batch: int, capacity, dtype=np.float64) -> tuple[np.ndarray, ...]:
    """Empty tapes for ``batch`` samples with room for ``capacity`` = (ops, evaluations, items, held flags,
    outputs) entries each: ``(ops, ev_i, ev_u, it_i, it_amp, held, held_t, outs)``. Membranes and amplitudes
    are kept in ``dtype``, the network's precision (exactly the values the forward pass computed)."""
    n_op, n_ev, n_it, n_held, n_out = (int(c) for c in capacity)
    return (
        np.empty((batch, n_op, 8), dtype=np.int64),
        np.empty((batch, n_ev, 3), dtype=np.int32),
        np.empty((batch, n_ev), dtype=dtype),
        np.empty((batch, n_it, 2), dtype=np.int32),
        np.empty((batch, n_it), dtype=dtype),
        np.empty((batch, n_held), dtype=np.bool_),
        np.empty((batch, n_held), dtype=np.int32),
        np.empty((batch, n_out, 3), dtype=np.int32),
    )


@intrinsic
def claim(typingctx, counter):
    """Atomically add 1 to ``counter[0]`` (an int64 array shared by threads) and return its old value: the
    next sample for the calling thread. Threads take samples as they finish the previous one, so a core that
    runs slower for a while (a busy neighbour on a VM) does fewer, instead of holding up the whole batch as a
    fixed split of the samples would. A sample's forward pass writes only its own outputs and tape, so the
    results do not depend on which thread ran it."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        first = cgutils.get_item_pointer(context, builder, array_type, array, [zero])
        return builder.atomic_rmw("add", first, context.get_constant(types.int64, 1), "seq_cst")

    return types.int64(counter), codegen


@njit(cache=True, inline="always")
def _surrogate(kind, scale, x):
    if kind == 0:
        return (scale / 2) / (1 + (math.pi / 2 * scale * x) ** 2)
    if kind == 1:
        return 1.0 / (scale * abs(x) + 1.0) ** 2
    sig = 1.0 / (1.0 + math.exp(-scale * x))
    return scale * sig * (1 - sig)


@njit(cache=True, inline="always")
def _lucky(seed, sample_id, step, layer, neuron, dropout):
    """Refractory dropout: whether a refractory neuron may fire anyway at this evaluation."""
    return _hash(seed, sample_id, step, layer, neuron, SALT_DROPOUT) / MODULUS < dropout


@njit(cache=True, nogil=True, _nrt=False)
def _evaluate_dense(
    v, current, flags, thr, ev_i, ev_u, silent_id, silent_list, fired_j, fired_e,
    base, n, n_ev, listed, refractory, holding, synced, ending, rides, dropout, seed, sample_id, step, s,
):  # fmt: skip
    """A delivery to a dense block (neurons ``base .. base + n - 1``, layer ``s``): integrate every neuron's
    current (a refractory one discards it when ``holding``), then evaluate, in order:

    - after real events, the neurons that may fire (not refractory, or let through by refractory dropout;
      none unless ``synced``: the layer got the synchronization threshold's events);
    - at frame end (``ending``, R3), gradient-only evaluations: every neuron if the source layer's silent
      evaluations rode along (``rides > 0``), else those not evaluated in this frame.

    Each evaluation goes on the tape from ``n_ev`` on; one that does not fire becomes its neuron's latest
    silent evaluation and joins the silent list (its free places from ``listed`` on); the spikes are listed
    in ``fired_j`` (neuron) and ``fired_e`` (evaluation id) for the caller. Returns ``(n_ev, number of spikes,
    neurons evaluated for the first time this frame, listed)``. The rules of the general loop of
    :func:`forward_sample`, in a small function: the per-neuron loop keeps its values in registers, and
    ``_nrt=False`` avoids reference counting."""
    ub, un = np.uint64(base), np.uint64(n)
    if refractory and holding:
        for q in range(un):
            x = current[ub + q]
            current[ub + q] = 0.0
            v[ub + q] = v[ub + q] if flags[ub + q] & F_REFR else v[ub + q] + x
    else:
        for q in range(un):
            v[ub + q] += current[ub + q]
            current[ub + q] = 0.0
    n_fired = 0
    n_new = 0
    if not (synced or ending):
        return n_ev, n_fired, n_new, listed
    for q in range(un):
        j = ub + q
        f = flags[j]
        if ending:
            if rides == 0 and f & F_EVALUATED:
                continue
            kind = GRAD_ONLY
        else:
            if refractory and f & F_REFR:  # (the neuron index as a signed int: it enters the hash)
                if dropout <= 0.0 or not _lucky(seed, sample_id, step, s, np.int64(q), dropout):
                    continue
            kind = FIRED if v[j] > thr[j] else SILENT
        ev_i[n_ev, EV_NEURON] = j
        ev_i[n_ev, EV_KIND] = kind
        ev_i[n_ev, EV_NEXT] = -1
        ev_u[n_ev] = v[j]
        n_new += (f & F_EVALUATED) == 0
        f |= F_EVALUATED
        if kind == FIRED:
            fired_j[n_fired] = j
            fired_e[n_fired] = n_ev
            n_fired += 1
            flags[j] = f
        else:
            silent_id[j] = n_ev
            if not f & F_LISTED:
                silent_list[listed] = j
                listed += 1
            flags[j] = f | F_SILENT | F_LISTED
        n_ev += 1
    return n_ev, n_fired, n_new, listed


@njit(cache=True, nogil=True)
def forward_sample(
    b, T, n_layers, neu_off, src_off,
    beta, thr, bias, reset_zero,
    csr_ptr, csr_tgt, csr_w, fan_out, dense_src,
    ev_ptr, ev_idx, ev_amp,
    labels, group_size, sched_kind, seed, sample_offset, prioritized, refractory, hold, sync_threshold,
    max_steps, stop_after, carry_over, dropout,
    out, v_final, spikes, synops, input_events, rec,
    ops, ev_i, ev_u, it_i, it_amp, held, held_t, outs, lengths,
):  # fmt: skip
    """One sample; writes its outputs, records and tape (this sample's rows ``ops[b]`` etc., see the module
    docstring) and the tape's ``lengths``. Returns False, with the sample's outputs unfinished, when the tape
    has no room left: rerun it with a larger one."""
    N = neu_off[n_layers]
    n_src = src_off[n_layers]
    out_layer = n_layers - 1
    cap_op, cap_ev, cap_it = ops.shape[0], ev_u.shape[0], it_amp.shape[0]
    cap_held, cap_out = held.shape[0], outs.shape[0]
    out[:, b, :] = 0.0  # a rerun starts from scratch
    sample_id = sample_offset + b  # the sample's id in the random keys
    # this sample's counters, written to the shared record arrays at the end: neighbouring samples run in
    # other threads, and updating a shared cache line at every event would make the threads wait on each other
    n_spikes = np.zeros(n_layers)
    n_synops = np.zeros(n_layers)
    n_input = 0.0
    v = np.zeros(N, dtype=csr_w.dtype)  # the network's precision
    flags = np.zeros(N, dtype=np.uint8)  # F_* bits
    silent_id = np.full(N, -1, dtype=np.int64)
    silent_list = np.empty(N, dtype=np.int64)  # per layer (from neu_off[l]): neurons that turned silent
    n_silent = np.zeros(n_layers, dtype=np.int64)
    touched = np.empty(N, dtype=np.int64)  # sparse blocks: targets reached in this delivery
    fired_j = np.empty(N, dtype=np.int64)  # dense blocks: the spikes of a delivery (neuron, evaluation id)
    fired_e = np.empty(N, dtype=np.int64)
    counts = np.zeros(N)  # events received this frame (sparse blocks)
    n_evaluated = np.zeros(n_layers, dtype=np.int64)
    n_refr = np.zeros(n_layers, dtype=np.int64)  # neurons that fired this frame, per layer
    layer_count = np.zeros(n_layers)
    current = np.zeros(N, dtype=csr_w.dtype)
    p_gid = np.empty(n_src, dtype=np.int64)
    p_key = np.empty(n_src)
    p_amp = np.empty(n_src, dtype=csr_w.dtype)
    p_head = np.empty(n_src, dtype=np.int64)  # first evaluation id of the spikes making up the event
    slot_of = np.full(n_src, -1, dtype=np.int64)
    chosen = np.empty(n_src, dtype=np.int64)  # slots, for the selection
    sel_gid = np.empty(n_src, dtype=np.int64)
    sel_amp = np.empty(n_src, dtype=csr_w.dtype)
    sel_head = np.empty(n_src, dtype=np.int64)
    n_op = 0
    n_ev = 0
    n_it = 0
    n_held = 0
    n_out = 0
    st = _new_state()
    active = True
    label = labels[b]
    for t in range(T):
        if not active:
            break
        for n in range(N):
            v[n] = beta[n] * v[n] + bias[n]
        if n_op + 1 > cap_op:
            return False
        ops[n_op, OP_KIND] = OP_LEAK
        n_op += 1
        flags[:] = 0  # (F_TOUCHED and F_REAL are cleared after every delivery anyway)
        n_evaluated[:] = 0
        n_refr[:] = 0
        counts[:] = 0.0
        n_silent[:] = 0
        layer_count[:] = 0.0
        steps_in_frame = 0
        rnd = -1
        ending = False
        while True:
            rnd += 1
            n_sel = 0
            if rnd == 0:
                e0, e1 = ev_ptr[b * T + t], ev_ptr[b * T + t + 1]
                if prioritized:
                    for e in range(e0, e1):
                        sel_gid[n_sel] = ev_idx[e]
                        sel_amp[n_sel] = ev_amp[e]
                        sel_head[n_sel] = -1
                        n_input += ev_amp[e]
                        n_synops[0] += ev_amp[e] * fan_out[ev_idx[e]]
                        n_sel += 1
                else:
                    for e in range(e0, e1):
                        i = ev_idx[e]
                        st[EMITTED] += ev_amp[e]
                        if slot_of[i] >= 0:
                            p_amp[slot_of[i]] += ev_amp[e]
                        else:
                            q = int(st[N_PEND])
                            slot_of[i] = q
                            p_gid[q] = i
                            p_amp[q] = ev_amp[e]
                            p_head[q] = -1
                            p_key[q] = _key(sched_kind, seed, sample_id, int(st[STEP]), -1, i, ev_amp[e])
                            st[N_PEND] = q + 1
            else:
                n_pend = int(st[N_PEND])
                if not active or n_pend == 0 or (max_steps >= 0 and steps_in_frame >= max_steps):
                    if not active or not carry_over:
                        for q in range(n_pend):
                            st[DROPPED] += p_amp[q]
                            slot_of[p_gid[q]] = -1
                        st[N_PEND] = 0
                    ending = True
                else:
                    n_sel = _select_lowest(p_key, p_gid, n_pend, group_size, chosen)
                    for c in range(n_sel):
                        g, a, h = p_gid[chosen[c]], p_amp[chosen[c]], p_head[chosen[c]]
                        d = c - 1
                        while d >= 0 and sel_gid[d] > g:
                            sel_gid[d + 1] = sel_gid[d]
                            sel_amp[d + 1] = sel_amp[d]
                            sel_head[d + 1] = sel_head[d]
                            d -= 1
                        sel_gid[d + 1] = g
                        sel_amp[d + 1] = a
                        sel_head[d + 1] = h
                    for c in range(n_sel):
                        q = slot_of[sel_gid[c]]
                        last = int(st[N_PEND]) - 1
                        if q != last:
                            p_gid[q], p_key[q] = p_gid[last], p_key[last]
                            p_amp[q], p_head[q] = p_amp[last], p_head[last]
                            slot_of[p_gid[q]] = q
                        slot_of[sel_gid[c]] = -1
                        st[N_PEND] = last
                    st[STEP] += 1.0
                    steps_in_frame += 1
            # ---- deliveries: real events (and, R1, silent ride-alongs), or at frame end rides only (R3) ----
            c = 0
            grp = 0
            while True:
                if ending:
                    if grp >= n_layers:
                        break
                    s, c0, c1 = grp, c, c  # R3: layer s - 1's remaining silent evaluations ride into layer s
                elif rnd == 0 and prioritized and n_sel == 0:
                    if grp > 0:
                        break
                    s, c0, c1 = 0, 0, 0  # an empty input frame still gives gradient-only evaluations (R2)
                else:
                    if c >= n_sel:
                        break
                    s = 0
                    while src_off[s + 1] <= sel_gid[c]:
                        s += 1
                    c0 = c
                    while c < n_sel and sel_gid[c] < src_off[s + 1]:
                        c += 1
                    c1 = c
                grp += 1
                base = neu_off[s]
                n = neu_off[s + 1] - base
                has_real = c1 > c0
                item0 = n_it
                extra = c1 - c0 + (neu_off[s] - neu_off[s - 1] if s > 0 else 0)  # events + possible rides
                if (  # no room on the tape for this delivery: give up, the caller reruns with more
                    n_it + extra > cap_it
                    or n_held + n > cap_held
                    or n_op + 1 > cap_op
                    or n_ev + n > cap_ev
                    or n_out + n > cap_out
                ):
                    return False
                dense = dense_src[s]
                n_touch = 0

                for e in range(c0, c1):
                    it_i[n_it, IT_GID] = sel_gid[e]
                    it_i[n_it, IT_HEAD] = sel_head[e]
                    it_amp[n_it] = sel_amp[e]
                    n_it += 1
                    a = sel_amp[e]
                    if rnd > 0:
                        st[DELIVERED] += a
                        n_synops[s] += a * fan_out[sel_gid[e]]
                        if s == 0:
                            n_input += a
                    if dense:
                        layer_count[s] += a
                    else:
                        for k in range(csr_ptr[sel_gid[e]], csr_ptr[sel_gid[e] + 1]):
                            j = base + csr_tgt[k]
                            current[j] += csr_w[k] * a
                            counts[j] += a
                            if not flags[j] & F_TOUCHED:
                                touched[n_touch] = j
                                n_touch += 1
                            flags[j] |= F_TOUCHED | F_REAL
                if dense:
                    add_rows(current, base, n, csr_ptr, csr_w, sel_gid, sel_amp, c0, c1)
                rides = 0
                if s > 0 and (has_real or ending):  # R1 / R3: the source layer's silent evaluations ride
                    lo = neu_off[s - 1]
                    for q in range(lo, lo + n_silent[s - 1]):
                        m = silent_list[q]
                        f = flags[m]
                        flags[m] = f & ~(F_LISTED | F_SILENT)
                        if f & F_SILENT:  # still silent (it may have fired since it was listed)
                            g = src_off[s] + (m - lo)
                            it_i[n_it, IT_GID] = g
                            it_i[n_it, IT_HEAD] = silent_id[m]
                            it_amp[n_it] = 0.0
                            n_it += 1
                            rides += 1
                            if not dense:  # where the ride-along reaches (R2)
                                for k in range(csr_ptr[g], csr_ptr[g + 1]):
                                    j = base + csr_tgt[k]
                                    if not flags[j] & F_TOUCHED:
                                        flags[j] |= F_TOUCHED
                                        touched[n_touch] = j
                                        n_touch += 1
                    n_silent[s - 1] = 0
                if ending and rides == 0 and n_evaluated[s] == n:
                    continue  # R3 has nothing to do for this layer
                held0 = n_held
                holding = refractory and hold and not ending  # refractory targets discard the current
                if dense:
                    if holding and n_refr[s] > 0:  # else no target holds: the flags are left out
                        for j in range(n):
                            held[held0 + j] = (flags[base + j] & F_REFR) != 0
                        n_held += n
                else:
                    for q in range(n_touch):
                        j = touched[q]
                        held_t[n_held] = j
                        held[n_held] = holding and (flags[j] & F_REFR) != 0
                        n_held += 1
                o = n_op
                ops[o, OP_KIND] = OP_DELIVER
                ops[o, OP_SRC] = s
                ops[o, OP_IT0] = item0
                ops[o, OP_IT1] = n_it
                ops[o, OP_H0] = held0
                ops[o, OP_H1] = n_held
                ops[o, OP_EV0] = n_ev
                n_op += 1
                # integrate, then evaluate: dense blocks reach the whole layer; sparse ones the touched
                # targets, except at frame end and frame start, where every neuron of the layer is checked.
                # A dense block (most deliveries) takes a compiled helper that lists the spikes; the loop
                # below then handles only those.
                fast = dense and (has_real or ending)
                if fast:
                    n_ev, n_loop, n_new, listed = _evaluate_dense(
                        v, current, flags, thr, ev_i, ev_u, silent_id, silent_list, fired_j, fired_e,
                        base, n, n_ev, neu_off[s] + n_silent[s], refractory, holding,
                        layer_count[s] >= sync_threshold, ending, rides, dropout, seed, sample_id,
                        int(st[STEP]), s,
                    )  # fmt: skip
                    n_evaluated[s] += n_new
                    n_silent[s] = listed - neu_off[s]
                whole = dense or ending or rnd == 0
                if not fast:
                    n_loop = n if whole else n_touch
                for q in range(n_loop):
                    if fast:
                        j, eid = fired_j[q], fired_e[q]
                        f = flags[j]
                    else:
                        j = base + q if whole else touched[q]
                        f = flags[j]
                        refractory_j = refractory and (f & F_REFR) != 0
                        if not (holding and refractory_j):
                            v[j] += current[j]
                        current[j] = 0.0
                        if dense:  # only an empty input frame (R2): _evaluate_dense takes the others
                            reached = False
                            real = False
                        else:
                            reached = (f & F_TOUCHED) != 0
                            real = (f & F_REAL) != 0
                            f &= ~(F_TOUCHED | F_REAL)
                            flags[j] = f
                        if ending:  # (sparse blocks only)
                            kind = GRAD_ONLY if (reached or not f & F_EVALUATED) else -1
                        elif real:
                            free = not refractory_j
                            if not free and dropout > 0:
                                free = _lucky(seed, sample_id, int(st[STEP]), s, j - base, dropout)
                            received = layer_count[s] if dense else counts[j]
                            if not free or received < sync_threshold:
                                kind = -1
                            else:
                                kind = FIRED if v[j] > thr[j] else SILENT
                        else:  # R2: reached only by ride-alongs, or not by the prioritized input frame
                            kind = GRAD_ONLY if not refractory_j else -1
                        if kind < 0:
                            continue
                        eid = n_ev
                        ev_i[eid, EV_NEURON] = j
                        ev_i[eid, EV_KIND] = kind
                        ev_i[eid, EV_NEXT] = -1
                        ev_u[eid] = v[j]
                        n_ev += 1
                        if not f & F_EVALUATED:
                            f |= F_EVALUATED
                            n_evaluated[s] += 1
                        if kind != FIRED:
                            silent_id[j] = eid
                            if not f & F_LISTED:  # at most once between rides: the list never overflows
                                silent_list[neu_off[s] + n_silent[s]] = j
                                n_silent[s] += 1
                            flags[j] = f | F_SILENT | F_LISTED
                            continue
                    flags[j] = (f | F_REFR) & ~F_SILENT
                    n_refr[s] += 1
                    u = v[j]
                    v[j] = 0.0 if reset_zero[s] else u - thr[j]
                    n_spikes[s] += 1.0
                    jj = j - base
                    if s == out_layer:
                        out[t, b, jj] += 1.0
                        flags[j] |= F_OUT_FIRED
                        outs[n_out, OUT_T], outs[n_out, OUT_K], outs[n_out, OUT_ID] = t, jj, eid
                        n_out += 1
                        if np.isnan(st[FIRST_OUT]):
                            st[FIRST_OUT] = st[STEP]
                            st[SPK_OUT] = st[HIDDEN]
                        if jj == label and np.isnan(st[FIRST_COR]):
                            st[FIRST_COR] = st[STEP]
                            st[SPK_COR] = st[HIDDEN]
                    else:
                        st[HIDDEN] += 1.0
                        gid = src_off[s + 1] + jj
                        st[EMITTED] += 1.0
                        q = slot_of[gid]
                        if q >= 0:  # joins its pending event: chain the spike's id
                            p_amp[q] += 1.0
                            ev_i[eid, EV_NEXT] = p_head[q]
                            p_head[q] = eid
                        else:
                            q = int(st[N_PEND])
                            slot_of[gid] = q
                            p_gid[q] = gid
                            p_amp[q] = 1.0
                            p_head[q] = eid
                            p_key[q] = _key(sched_kind, seed, sample_id, int(st[STEP]), s, jj, u)
                            st[N_PEND] = q + 1
                ops[o, OP_EV1] = n_ev
            if ending:
                n_last = N - neu_off[out_layer]
                if n_out + n_last > cap_out:
                    return False
                for j in range(neu_off[out_layer], N):  # R4
                    if flags[j] & (F_SILENT | F_OUT_FIRED) == F_SILENT:
                        outs[n_out, OUT_T] = t
                        outs[n_out, OUT_K] = j - neu_off[out_layer]
                        outs[n_out, OUT_ID] = silent_id[j]
                        n_out += 1
                break
            if stop_after >= 0 and not np.isnan(st[FIRST_OUT]) and st[STEP] >= st[FIRST_OUT] + stop_after:
                if active:
                    st[DECISION] = st[STEP]
                active = False
    v_final[b] = v
    spikes[b] = n_spikes
    synops[b] = n_synops
    input_events[b] = n_input
    _finish(b, st, p_amp, rec)
    lengths[0], lengths[1], lengths[2], lengths[3], lengths[4] = n_op, n_ev, n_it, n_held, n_out
    return True


@njit(cache=True, nogil=True)
def forward_chunk(
    samples, counter, T, n_layers, neu_off, src_off,
    beta, thr, bias, reset_zero,
    csr_ptr, csr_tgt, csr_w, fan_out, dense_src,
    ev_ptr, ev_idx, ev_amp,
    labels, group_size, sched_kind, seed, sample_offset, prioritized, refractory, hold, sync_threshold,
    max_steps, stop_after, carry_over, dropout,
    out, v_final, spikes, synops, input_events, rec,
    ops, ev_i, ev_u, it_i, it_amp, held, held_t, outs, lengths, ok,
):  # fmt: skip
    """:func:`forward_sample` for the ``samples`` this thread claims (:func:`claim` on the
    threads' shared ``counter``: one at a time, as it finishes the previous one); ``ok[b]`` says whether
    sample ``b``'s tape fit."""
    while True:
        i = claim(counter)
        if i >= samples.shape[0]:
            break
        b = samples[i]
        ok[b] = forward_sample(
            b, T, n_layers, neu_off, src_off,
            beta, thr, bias, reset_zero,
            csr_ptr, csr_tgt, csr_w, fan_out, dense_src,
            ev_ptr, ev_idx, ev_amp,
            labels, group_size, sched_kind, seed, sample_offset, prioritized, refractory, hold,
            sync_threshold, max_steps, stop_after, carry_over, dropout,
            out, v_final, spikes, synops, input_events, rec,
            ops[b], ev_i[b], ev_u[b], it_i[b], it_amp[b], held[b], held_t[b], outs[b], lengths[b],
        )  # fmt: skip


# The weight gradient of a dense input block, gathered. Adding ``amplitude x adjoint row`` to the weight row
# of every input event (what the replay does for other blocks) reads and writes a random row of the gradient
# per event; with many events per delivery (prioritized input: a frame's events in one delivery) it is
# cheaper to keep each delivery's adjoint row once and sum, per input channel, the rows of the deliveries
# that carried it: each gradient row is written once, and the sum does not depend on the thread count.
@njit(cache=True, nogil=True, inline="always")
def _gathered(op, o, g_min):
    """Whether tape op ``o`` is a gathered delivery: from the input, with at least ``g_min`` items."""
    return op[o, OP_KIND] == OP_DELIVER and op[o, OP_SRC] == 0 and op[o, OP_IT1] - op[o, OP_IT0] >= g_min


# Row helpers of the backward pass: slices keep the row loops contiguous and vectorised. They are compiled
# without reference counting (``_nrt=False``): inlined into the replay loop every view would update the
# array's count, and a called function updates the counts of its arguments (atomically, on a cache line all
# threads share for the weights).
@njit(cache=True, nogil=True, fastmath=True, _nrt=False)
def _add_scaled(y, k0, x, n, a):
    """``y[k0 : k0 + n] += a * x[:n]``."""
    row = y[k0 : k0 + n]
    for j in range(n):
        row[j] += a * x[j]


@njit(cache=True, nogil=True, fastmath=True, _nrt=False)
def _unheld(y, x, x0, held, h0, h1, n):
    """``y[:n] = x[x0 : x0 + n]``, zero where ``held[h0 : h1]`` (no flags: nothing held)."""
    src = x[x0 : x0 + n]
    if h1 == h0:
        for j in range(n):
            y[j] = src[j]
        return
    flags = held[h0:h1]
    for j in range(n):
        y[j] = 0.0 if flags[j] else src[j]


@njit(cache=True, nogil=True, fastmath=True, _nrt=False)
def _dot(w, k0, x, n):
    """``w[k0 : k0 + n] . x[:n]``."""
    row = w[k0 : k0 + n]
    dot = 0.0
    for j in range(n):
        dot += row[j] * x[j]
    return dot


@njit(cache=True, nogil=True, fastmath=True)  # lets the sparse blocks' dot products vectorise
def backward_sample(
    b, ops, ev_i, ev_u, it_i, it_amp, held, held_t, outs, lengths, g_out, neu_off, beta, thr, reset_zero,
    detach_reset, sg_kind, sg_scale, csr_ptr, csr_tgt, csr_w, dense_src, g_w, g_bias, gather, slot_end, g_min,
):  # fmt: skip
    """Replay one sample's tape (this sample's rows, see the module docstring) in reverse; adds its weight and
    bias gradients to ``g_w`` and ``g_bias``. Input deliveries with at least ``g_min`` events (see
    :func:`gather_count`) leave their weight gradient to :func:`add_gathered`: they store the adjoint of the
    targets' current in ``gather``, rows ``slot_end - 1``, ``slot_end - 2``, ... (the replay runs
    backwards)."""
    N = beta.shape[0]
    slot = slot_end
    g_v = np.zeros(N)
    g_val = np.zeros(lengths[1])
    for q in range(lengths[4]):  # R4: frame outputs are spike (or latest silent) values
        g_val[outs[q, OUT_ID]] += g_out[outs[q, OUT_T], b, outs[q, OUT_K]]
    g_in = np.zeros(N)
    g_full = np.zeros(N)  # sparse blocks: adjoint of the current of each touched target
    for o in range(lengths[0] - 1, -1, -1):
        if ops[o, OP_KIND] == OP_LEAK:  # leak and bias at a frame start
            for n in range(N):
                g_bias[n] += g_v[n]
                g_v[n] *= beta[n]
            continue
        s = ops[o, OP_SRC]
        # the evaluations that followed the delivery (of distinct neurons of layer s), last first
        kind, scale, zero, detach = sg_kind[s], sg_scale[s], reset_zero[s], detach_reset[s]
        for e in range(ops[o, OP_EV1] - 1, ops[o, OP_EV0] - 1, -1):
            fired = ev_i[e, EV_KIND] == FIRED
            if g_val[e] == 0.0 and not fired:
                continue  # g_v = 0 * sg + g_v * 1: a silent evaluation without gradient changes nothing
            j = ev_i[e, EV_NEURON]
            u = ev_u[e]
            sg = _surrogate(kind, scale, u - thr[j])
            dvdu = 1.0
            if fired:
                if zero:
                    dvdu = 0.0 if detach else -u * sg
                elif not detach:
                    dvdu = 1.0 - thr[j] * sg
            g_v[j] = g_val[e] * sg + g_v[j] * dvdu
        base = neu_off[s]
        if not dense_src[s]:
            for q in range(ops[o, OP_H0], ops[o, OP_H1]):
                j = held_t[q]
                g_full[j] = 0.0 if held[q] else g_v[j]
            for it in range(ops[o, OP_IT0], ops[o, OP_IT1]):
                g = it_i[it, IT_GID]
                a = it_amp[it]
                e = it_i[it, IT_HEAD]
                dot = 0.0
                for k in range(csr_ptr[g], csr_ptr[g + 1]):
                    gj = g_full[base + csr_tgt[k]]
                    dot += csr_w[k] * gj
                    if a != 0.0:
                        g_w[k] += a * gj
                while e >= 0:
                    g_val[e] += dot
                    e = ev_i[e, EV_NEXT]
            for q in range(ops[o, OP_H0], ops[o, OP_H1]):
                g_full[held_t[q]] = 0.0
            continue
        n = neu_off[s + 1] - base
        _unheld(g_in, g_v, base, held, ops[o, OP_H0], ops[o, OP_H1], n)
        if _gathered(ops, o, g_min):  # (the input's events carry no gradient further back)
            slot -= 1
            gather[slot, :n] = g_in[:n]
            continue
        for it in range(ops[o, OP_IT0], ops[o, OP_IT1]):
            k0 = csr_ptr[it_i[it, IT_GID]]
            a = it_amp[it]
            if a != 0.0:
                _add_scaled(g_w, k0, g_in, n, a)
            e = it_i[it, IT_HEAD]
            if e < 0:  # an input event: its value is a constant, no gradient to send back
                continue
            dot = _dot(csr_w, k0, g_in, n)
            while e >= 0:
                g_val[e] += dot
                e = ev_i[e, EV_NEXT]


@njit(cache=True, nogil=True, fastmath=True)
def backward_chunk(
    first, step, ops, ev_i, ev_u, it_i, it_amp, held, held_t, outs, lengths, g_out, neu_off, beta, thr,
    reset_zero, detach_reset, sg_kind, sg_scale, csr_ptr, csr_tgt, csr_w, dense_src, g_w, g_bias,
    gather, slot_off, g_min,
):  # fmt: skip
    """:func:`backward_sample` for samples ``first, first + step, ...`` (one thread's share, in one call),
    into this thread's gradients ``g_w`` and ``g_bias``, which it clears first (in parallel, not before)."""
    g_w[:] = 0.0
    g_bias[:] = 0.0
    for b in range(first, lengths.shape[0], step):
        backward_sample(
            b, ops[b], ev_i[b], ev_u[b], it_i[b], it_amp[b], held[b], held_t[b], outs[b], lengths[b],
            g_out, neu_off, beta, thr, reset_zero, detach_reset, sg_kind, sg_scale, csr_ptr, csr_tgt,
            csr_w, dense_src, g_w, g_bias, gather, slot_off[b + 1], g_min,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def gather_count(b0, b1, ops, it_i, lengths, g_min, n_slots, counts):
    """Samples ``b0 .. b1 - 1``: their numbers of gathered deliveries (``n_slots[b]``) and the events those
    carry per input channel (``counts[c]``, this range's row)."""
    for b in range(b0, b1):
        op, items = ops[b], it_i[b]
        n = 0
        for o in range(lengths[b, 0]):
            if _gathered(op, o, g_min):
                n += 1
                for it in range(op[o, OP_IT0], op[o, OP_IT1]):
                    counts[items[it, IT_GID]] += 1
        n_slots[b] = n


@njit(cache=True, nogil=True)
def gather_fill(b0, b1, ops, it_i, it_amp, lengths, g_min, slot_off, fill, cslot, camp):
    """Samples ``b0 .. b1 - 1``: list each event of their gathered deliveries under its channel ``c``, from
    ``fill[c]`` on (this range's first free place), with the delivery's row of the gather buffer (``cslot``)
    and its amplitude (``camp``). Ranges in sample order make the lists tape-ordered, whatever the split."""
    for b in range(b0, b1):
        op, items, amps = ops[b], it_i[b], it_amp[b]
        slot = slot_off[b]
        for o in range(lengths[b, 0]):
            if _gathered(op, o, g_min):
                for it in range(op[o, OP_IT0], op[o, OP_IT1]):
                    c = items[it, IT_GID]
                    cslot[fill[c]] = slot
                    camp[fill[c]] = amps[it]
                    fill[c] += 1
                slot += 1


@njit(cache=True, nogil=True, fastmath=True)
def add_gathered(first, step, cptr, cslot, camp, gather, csr_ptr, g_w):
    """Channels ``c`` of the ``first``-th of ``step`` equal ranges: ``g_w[row of c] += sum of camp x gather
    row`` over the gathered events of ``c``, in tape order."""
    n_channels = cptr.shape[0] - 1
    n = gather.shape[1]
    acc = np.empty(n, dtype=gather.dtype)  # the network's precision, like the rest of the weight gradient
    for c in range(first * n_channels // step, (first + 1) * n_channels // step):
        if cptr[c] == cptr[c + 1]:
            continue
        acc[:] = 0.0
        for e in range(cptr[c], cptr[c + 1]):
            row = gather[cslot[e]]
            a = camp[e]
            for j in range(n):
                acc[j] += a * row[j]
        _add_scaled(g_w, csr_ptr[c], acc, n, 1.0)
