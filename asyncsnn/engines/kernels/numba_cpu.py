"""Compiled CPU kernel of the asynchronous engine (inference), with numba.

It implements the forward semantics of :mod:`asyncsnn.engines.async_` (the reference; tests check they agree)
event by event: a micro-step costs the selected events times their fan-out plus a scan of the sample's pending
list (tens of events), never the size of the network. Samples run in parallel (``prange``), each with its own
queue. A dense block (``nn.Linear``) delivers an event as one contiguous, vectorised row update.

Array layout (``N`` = all neurons, layer-major; *sources* = input channels, then every non-output neuron,
numbered by a global id ``gid``):

- ``csr_ptr[gid] .. csr_ptr[gid + 1]`` index ``csr_tgt`` (neuron index within the target layer) and ``csr_w``;
  source ``s`` (0 = input, ``l + 1`` = layer ``l``) drives layer ``s``; ``src_off[s]`` is its first gid;
- ``neu_off[l]``: first neuron of layer ``l`` in ``beta``, ``thr``, ``bias`` and the membranes;
- ``ev_ptr[b * T + t] .. ev_ptr[b * T + t + 1]`` index the input events (``ev_idx``, ``ev_amp``) of sample
  ``b`` in frame ``t``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from asyncsnn.engines.keys import MODULUS, SALT_KEY, hash_int

SCHED_RANDOM, SCHED_MOMENTUM, SCHED_FIFO, SCHED_LAYER = 0, 1, 2, 3

# Per-sample scalar state, kept in a float64 array so helpers can update it.
# N_DEEP: pending events whose source does not drive the output layer (none left: a frame's tail, see _run_sample)
STEP, FIRST_OUT, FIRST_COR, DECISION, SPK_OUT, SPK_COR, HIDDEN, EMITTED, DELIVERED, DROPPED = range(10)
N_PEND, N_DEEP = 10, 11
N_STATE = 12

_hash = njit(cache=True, inline="always")(hash_int)  # inlined: a call per spike costs more than the hash


@njit(cache=True, inline="always")
def _key(sched_kind, seed, sample, step, layer, neuron, membrane):
    if sched_kind == SCHED_FIFO:
        return float(step)
    if sched_kind == SCHED_LAYER:
        return float(layer)
    rand = _hash(seed, sample, step, layer, neuron, SALT_KEY) / MODULUS
    if sched_kind == SCHED_RANDOM:
        return rand
    return -membrane + rand * 1e-12


@njit(cache=True, inline="always")
def _enqueue(st, p_gid, p_key, p_amp, slot_of, gid, amp, key, tail_lo):
    """Add an event of amplitude ``amp``; a source already pending keeps its slot (and key). Sources below
    ``tail_lo`` do not drive the output layer (counted in ``st[N_DEEP]``)."""
    st[EMITTED] += amp
    q = slot_of[gid]
    if q >= 0:
        p_amp[q] += amp
        return
    st[N_DEEP] += gid < tail_lo
    n = int(st[N_PEND])
    slot_of[gid] = n
    p_gid[n] = gid
    p_amp[n] = amp
    p_key[n] = key
    st[N_PEND] = n + 1


@njit(cache=True, inline="always")
def _drop_all(st, p_gid, p_amp, slot_of):
    for q in range(int(st[N_PEND])):
        st[DROPPED] += p_amp[q]
        slot_of[p_gid[q]] = -1
    st[N_PEND] = 0
    st[N_DEEP] = 0


@njit(cache=True, _nrt=False)
def _take(p_gid, p_amp, slots, c0, c1, sel_gid, sel_amp):
    """The events of ``slots[c0:c1]`` into ``sel_gid[c0:c1]`` / ``sel_amp`` sorted by gid, the order a round
    delivers them in (sources in order, neurons in order). Insertion: they mostly come in that order."""
    for c in range(c0, c1):
        g, a = p_gid[slots[c]], p_amp[slots[c]]
        d = c - 1
        while d >= c0 and sel_gid[d] > g:
            sel_gid[d + 1] = sel_gid[d]
            sel_amp[d + 1] = sel_amp[d]
            d -= 1
        sel_gid[d + 1] = g
        sel_amp[d + 1] = a


@njit(cache=True, _nrt=False)
def _remove(st, p_gid, p_key, p_amp, slot_of, sel_gid, n_sel, tail_lo):
    """The pending events of sources ``sel_gid[:n_sel]`` leave the queue (each swapped with the last slot)."""
    if n_sel == int(st[N_PEND]):  # all of them
        for c in range(n_sel):
            slot_of[sel_gid[c]] = -1
        st[N_PEND] = 0
        st[N_DEEP] = 0
        return
    for c in range(n_sel):
        q = slot_of[sel_gid[c]]
        last = int(st[N_PEND]) - 1
        if q != last:
            p_gid[q], p_key[q], p_amp[q] = p_gid[last], p_key[last], p_amp[last]
            slot_of[p_gid[q]] = q
        slot_of[sel_gid[c]] = -1
        st[N_PEND] = last
        st[N_DEEP] -= sel_gid[c] < tail_lo


@njit(cache=True, inline="always")
def _select_lowest(p_key, p_gid, n_pend, group_size, chosen):
    """Slots of the up to ``group_size`` pending events with the lowest (key, gid), in ``chosen[:n_sel]``
    (``chosen`` holds ``n_pend`` entries); returns ``n_sel``. All of them when they fit, else a partial
    selection sort of the slots: the list is short."""
    if group_size == 1:  # one scan, nothing to keep in order
        best = 0
        for q in range(1, n_pend):
            if p_key[q] < p_key[best] or (p_key[q] == p_key[best] and p_gid[q] < p_gid[best]):
                best = q
        chosen[0] = best
        return min(n_pend, 1)
    for q in range(n_pend):
        chosen[q] = q
    if n_pend <= group_size:
        return n_pend
    for i in range(group_size):
        best = i
        key, gid = p_key[chosen[i]], p_gid[chosen[i]]
        for r in range(i + 1, n_pend):
            q = chosen[r]
            if p_key[q] < key or (p_key[q] == key and p_gid[q] < gid):
                best, key, gid = r, p_key[q], p_gid[q]
        chosen[i], chosen[best] = chosen[best], chosen[i]
    return group_size


@njit(cache=True, _nrt=False)
def _rank_all(p_key, p_gid, n_pend, order):
    """``order[:n_pend]``: every pending slot, by (key, gid). Each slot's rank is counted without branches:
    with random keys the branches of a comparison sort would mostly mispredict."""
    for q in range(n_pend):
        k, g = p_key[q], p_gid[q]
        rank = 0
        for r in range(n_pend):
            rank += (p_key[r] < k) | ((p_key[r] == k) & (p_gid[r] < g))
        order[rank] = q


@njit(cache=True)
def _new_state():
    """A sample's scalar state: counters at 0, "never happened" latencies as NaN."""
    st = np.zeros(N_STATE)
    for k in (FIRST_OUT, FIRST_COR, DECISION, SPK_OUT, SPK_COR):
        st[k] = np.nan
    return st


@njit(cache=True)
def _finish(b, st, p_amp, rec):
    """Write sample ``b``'s records (columns documented in :func:`run_batch`)."""
    pend_end = 0.0
    for q in range(int(st[N_PEND])):
        pend_end += p_amp[q]
    rec[b, 0] = st[STEP]
    rec[b, 1] = st[FIRST_OUT]
    rec[b, 2] = st[FIRST_COR]
    rec[b, 3] = st[DECISION] if not np.isnan(st[DECISION]) else st[STEP]
    rec[b, 4] = st[SPK_OUT]
    rec[b, 5] = st[SPK_COR]
    rec[b, 6] = st[EMITTED]
    rec[b, 7] = st[DELIVERED]
    rec[b, 8] = st[DROPPED]
    rec[b, 9] = pend_end


@njit(cache=True, _nrt=False)
def add_rows(current, base, n, csr_ptr, csr_w, sel_gid, sel_amp, c0, c1):
    """Add to ``current[base : base + n]`` the weight rows of events ``c0 .. c1 - 1`` of the round (sources
    ``sel_gid`` of a dense block, whose rows are the whole target layer) times their amplitudes ``sel_amp``.

    Rows are added four at a time (more independent memory streams) and each neuron still adds them in event
    order, so the rounding is that of one row after the other. Indices are unsigned, so no index needs the
    negative-index check and the loops vectorise. ``_nrt=False``: no reference counting, since every slice of
    the weights, or any call with them, would update their count atomically, on a cache line all threads use.
    """
    ub, un = np.uint64(base), np.uint64(n)
    e = c0
    while e + 4 <= c1:
        a0, a1, a2, a3 = sel_amp[e], sel_amp[e + 1], sel_amp[e + 2], sel_amp[e + 3]
        k0, k1 = np.uint64(csr_ptr[sel_gid[e]]), np.uint64(csr_ptr[sel_gid[e + 1]])
        k2, k3 = np.uint64(csr_ptr[sel_gid[e + 2]]), np.uint64(csr_ptr[sel_gid[e + 3]])
        if a0 == 1.0 and a1 == 1.0 and a2 == 1.0 and a3 == 1.0:  # single events: w * 1 is w exactly
            for j in range(un):
                x = current[ub + j]
                x += csr_w[k0 + j]
                x += csr_w[k1 + j]
                x += csr_w[k2 + j]
                x += csr_w[k3 + j]
                current[ub + j] = x
        else:
            for j in range(un):
                x = current[ub + j]
                x += csr_w[k0 + j] * a0
                x += csr_w[k1 + j] * a1
                x += csr_w[k2 + j] * a2
                x += csr_w[k3 + j] * a3
                current[ub + j] = x
        e += 4
    while e < c1:
        a0, k0 = sel_amp[e], np.uint64(csr_ptr[sel_gid[e]])
        for j in range(un):
            current[ub + j] += csr_w[k0 + j] * a0
        e += 1


@njit(cache=True, _nrt=False)
def _over_threshold(v, refr, thr, ub, un, refractory, can_fire, fired):
    """List in ``fired`` the neurons ``ub .. ub + un - 1`` that fire (over threshold, not refractory, and
    ``can_fire``); returns their number."""
    m = 0
    # without branches (``&``, not ``and``): each neuron is written at the end of the list, which grows if it fires
    if can_fire and refractory:
        for j in range(un):
            fired[m] = np.int64(ub + j)
            m += (v[ub + j] > thr[ub + j]) & (not refr[ub + j])
    elif can_fire:
        for j in range(un):
            fired[m] = np.int64(ub + j)
            m += v[ub + j] > thr[ub + j]
    return m


@njit(cache=True, _nrt=False)
def _deliver_dense(
    v, current, refr, thr, csr_ptr, csr_w, sel_gid, sel_amp, c0, c1, base, n, refractory, hold, can_fire, fired
):  # fmt: skip
    """Events ``c0 .. c1 - 1`` of the round, all from one source whose block is dense, reach the target layer
    (neurons ``base .. base + n - 1``): add their rows to the layer's current (:func:`add_rows`), integrate it
    (refractory neurons hold it, with ``hold``) and list in ``fired``, in order, the neurons that fire (over
    threshold, not refractory, and ``can_fire``: the layer got the synchronization threshold's events).
    Returns their number. Spikes change nothing later neurons read, so the caller handles them afterwards."""
    add_rows(current, base, n, csr_ptr, csr_w, sel_gid, sel_amp, c0, c1)
    ub, un = np.uint64(base), np.uint64(n)
    if refractory and hold:
        for j in range(un):
            x = current[ub + j]
            current[ub + j] = 0.0
            v[ub + j] = v[ub + j] if refr[ub + j] else v[ub + j] + x
    else:
        for j in range(un):
            v[ub + j] += current[ub + j]
            current[ub + j] = 0.0
    return _over_threshold(v, refr, thr, ub, un, refractory, can_fire, fired)


@njit(cache=True, _nrt=False)
def _deliver_row(v, current, refr, thr, csr_w, k, a, base, n, refractory, hold, can_fire, fired):
    """:func:`_deliver_dense` for one event (weight row at ``k``, amplitude ``a``), without the round trip
    through ``current`` (which would hold ``0 + w * a``: the sum keeps that ``0 +``, for the sign of a zero)."""
    ub, un, uk = np.uint64(base), np.uint64(n), np.uint64(k)
    zero = current[ub]  # 0 between deliveries
    if refractory and hold:
        for j in range(un):
            x = zero + csr_w[uk + j] * a
            v[ub + j] = v[ub + j] if refr[ub + j] else v[ub + j] + x
    else:
        for j in range(un):
            v[ub + j] += zero + csr_w[uk + j] * a
    hit = False  # a step seldom makes an output neuron fire: a vectorised test first, then the list if any
    if can_fire and refractory:
        for j in range(un):
            hit |= (v[ub + j] > thr[ub + j]) & (not refr[ub + j])
    elif can_fire:
        for j in range(un):
            hit |= v[ub + j] > thr[ub + j]
    return _over_threshold(v, refr, thr, ub, un, refractory, can_fire, fired) if hit else 0


@njit(cache=True)
def _run_sample(
    b, T, n_layers, neu_off, src_off, dense_src,
    beta, thr, bias, reset_zero,
    csr_ptr, csr_tgt, csr_w, fan_out,
    ev_ptr, ev_idx, ev_amp,
    v_init, labels,
    group_size, sched_kind, seed, sample_offset, prioritized, refractory, hold, sync_threshold,
    max_steps, stop_after, carry_over,
    out, v_final, spikes, synops, input_events, rec, spike_train,
):  # fmt: skip
    """One sample ``b`` (see :func:`run_batch`).

    Every frame runs *rounds*: round 0 delivers the whole input frame (prioritized) or queues its events
    (scheduled); every later round is a micro-step. A round's events are delivered in one block of code,
    source by source, each followed by the evaluation of the neurons it reached.

    A frame's *tail*: once every pending event drives the output layer (a dense block), nothing can join the
    queue before the frame ends (output spikes queue nothing). The remaining micro-steps then deliver the
    pending events in (key, gid) order, ``group_size`` at a time, so one ranking replaces the per-step
    selection and queue updates, and a step is the output layer's update alone; the sums are the same, in the
    same order. With two layers and prioritized input that is every micro-step.

    Helpers with array arguments stay out of the per-neuron loops and out of calls made once per frame: even
    inlined, such a call may update every array's reference count (atomically, on lines all threads share).
    """
    N = v_init.shape[1]
    record = spike_train.shape[0] > 0  # an empty array: spike trains not requested
    n_src = src_off[n_layers]
    out_layer = n_layers - 1
    sample_id = sample_offset + b  # the sample's id in the random keys
    v = v_init[b].copy()
    refr = np.zeros(N, dtype=np.bool_)
    counts = np.zeros(N, dtype=v.dtype)  # events received this frame, per neuron (sparse blocks)
    layer_count = np.zeros(n_layers, dtype=v.dtype)  # the same for dense blocks: one number per layer
    current = np.zeros(N, dtype=v.dtype)
    touched_flag = np.zeros(N, dtype=np.bool_)
    touched = np.empty(N, dtype=np.int64)
    fired = np.empty(N, dtype=np.int64)  # dense blocks: the neurons over threshold after a delivery
    p_gid = np.empty(n_src, dtype=np.int64)  # pending queue: slots of (source gid, key, amplitude)
    p_key = np.empty(n_src, dtype=np.float64)
    p_amp = np.empty(n_src, dtype=v.dtype)  # amplitudes are small whole numbers: exact in either precision
    slot_of = np.full(n_src, -1, dtype=np.int64)
    chosen = np.empty(n_src, dtype=np.int64)  # slots, for the selection
    sel_gid = np.empty(n_src, dtype=np.int64)  # the events of this round, sorted by gid
    sel_amp = np.empty(n_src, dtype=v.dtype)
    st = _new_state()
    active = True
    label = labels[b]
    tail_lo = src_off[out_layer]  # sources from here on drive the output layer
    tail_base, tail_n = neu_off[out_layer], neu_off[n_layers] - neu_off[out_layer]
    for t in range(T):
        if not active:
            break
        for n in range(N):  # leak + bias at the start of the frame
            v[n] = beta[n] * v[n] + bias[n]
        refr[:] = False
        counts[:] = 0.0
        layer_count[:] = 0.0
        steps_in_frame = 0
        step0 = st[STEP]
        rnd = -1
        while True:
            rnd += 1
            n_sel = 0
            if rnd == 0:
                e0, e1 = ev_ptr[b * T + t], ev_ptr[b * T + t + 1]
                if prioritized:  # the whole frame at once, from source 0; takes no micro-step
                    n_in, syn = 0.0, 0.0  # summed here: the shared record arrays are written once per frame
                    for e in range(e0, e1):
                        sel_gid[n_sel] = ev_idx[e]
                        sel_amp[n_sel] = ev_amp[e]
                        n_in += ev_amp[e]
                        syn += ev_amp[e] * fan_out[ev_idx[e]]
                        n_sel += 1
                    input_events[b] += n_in
                    synops[b, 0] += syn
                else:
                    for e in range(e0, e1):
                        key = _key(sched_kind, seed, sample_id, int(st[STEP]), -1, ev_idx[e], ev_amp[e])
                        _enqueue(st, p_gid, p_key, p_amp, slot_of, ev_idx[e], ev_amp[e], key, tail_lo)
            else:
                n_pend = int(st[N_PEND])
                if not active:
                    _drop_all(st, p_gid, p_amp, slot_of)
                    break
                if n_pend == 0:
                    break
                if max_steps >= 0 and steps_in_frame >= max_steps:
                    if not carry_over:
                        _drop_all(st, p_gid, p_amp, slot_of)
                    break
                if dense_src[out_layer] and st[N_DEEP] == 0:  # the frame's tail (see above), in one go
                    if n_pend <= group_size:  # one step takes them all
                        for q in range(n_pend):
                            chosen[q] = q
                    else:
                        _rank_all(p_key, p_gid, n_pend, chosen)
                    n_ev = n_pend if max_steps < 0 else min(n_pend, (max_steps - steps_in_frame) * group_size)
                    lc = layer_count[out_layer]
                    delivered, syn = 0.0, 0.0
                    e1 = 0
                    while e1 < n_ev:  # micro-steps
                        e0, e1 = e1, min(e1 + group_size, n_ev)
                        _take(p_gid, p_amp, chosen, e0, e1, sel_gid, sel_amp)
                        for c in range(e0, e1):
                            lc += sel_amp[c]
                            delivered += sel_amp[c]
                            syn += sel_amp[c] * fan_out[sel_gid[c]]
                        st[STEP] += 1.0
                        if e1 - e0 == 1:
                            m = _deliver_row(
                                v, current, refr, thr, csr_w, csr_ptr[sel_gid[e0]], sel_amp[e0], tail_base, tail_n,
                                refractory, hold, lc >= sync_threshold, fired,
                            )  # fmt: skip
                        else:
                            m = _deliver_dense(
                                v, current, refr, thr, csr_ptr, csr_w, sel_gid, sel_amp, e0, e1, tail_base, tail_n,
                                refractory, hold, lc >= sync_threshold, fired,
                            )  # fmt: skip
                        for q in range(m):  # output spikes (as below, for s = out_layer)
                            j = fired[q]
                            v[j] = 0.0 if reset_zero[out_layer] else v[j] - thr[j]
                            refr[j] = True
                            if record:
                                spike_train[t, b, j] += 1.0
                            out[t, b, j - tail_base] += 1.0
                            if np.isnan(st[FIRST_OUT]):
                                st[FIRST_OUT] = st[STEP]
                                st[SPK_OUT] = st[HIDDEN]
                            if j - tail_base == label and np.isnan(st[FIRST_COR]):
                                st[FIRST_COR] = st[STEP]
                                st[SPK_COR] = st[HIDDEN]
                        spikes[b, out_layer] += m
                        if stop_after >= 0 and st[STEP] >= st[FIRST_OUT] + stop_after:  # False while NaN
                            n_ev = e1  # the stop rule ends the sample here (below)
                    layer_count[out_layer] = lc
                    st[DELIVERED] += delivered
                    synops[b, out_layer] += syn
                    if out_layer == 0:
                        input_events[b] += delivered
                    _remove(st, p_gid, p_key, p_amp, slot_of, sel_gid, n_ev, tail_lo)
                    steps_in_frame = int(st[STEP] - step0)
                else:
                    n_sel = _select_lowest(p_key, p_gid, n_pend, group_size, chosen)
                    _take(p_gid, p_amp, chosen, 0, n_sel, sel_gid, sel_amp)
                    _remove(st, p_gid, p_key, p_amp, slot_of, sel_gid, n_sel, tail_lo)
                    st[STEP] += 1.0
                    steps_in_frame += 1
            # ---- deliver the round's events, one source after the other ----------------------------
            c = 0
            while c < n_sel:
                s = 0
                while src_off[s + 1] <= sel_gid[c]:
                    s += 1
                base = neu_off[s]
                n = neu_off[s + 1] - base
                c0 = c
                while c < n_sel and sel_gid[c] < src_off[s + 1]:
                    if rnd > 0:
                        st[DELIVERED] += sel_amp[c]
                        synops[b, s] += sel_amp[c] * fan_out[sel_gid[c]]
                        if s == 0:
                            input_events[b] += sel_amp[c]
                    c += 1
                dense = dense_src[s]
                if dense:  # every event reaches the whole layer in order: row updates, then the layer at once
                    for e in range(c0, c):
                        layer_count[s] += sel_amp[e]  # every neuron of the layer receives the same events
                    n_touch = _deliver_dense(
                        v, current, refr, thr, csr_ptr, csr_w, sel_gid, sel_amp, c0, c, base, n,
                        refractory, hold, layer_count[s] >= sync_threshold, fired,
                    )  # fmt: skip
                else:
                    n_touch = 0
                    for e in range(c0, c):
                        a = sel_amp[e]
                        for k in range(csr_ptr[sel_gid[e]], csr_ptr[sel_gid[e] + 1]):
                            j = base + csr_tgt[k]
                            current[j] += csr_w[k] * a
                            counts[j] += a
                            if not touched_flag[j]:
                                touched_flag[j] = True
                                touched[n_touch] = j
                                n_touch += 1
                for q in range(n_touch):  # integrate and evaluate every neuron reached (dense: the spikes)
                    if dense:
                        j = fired[q]
                    else:
                        j = touched[q]
                        touched_flag[j] = False
                        if not (refractory and hold and refr[j]):
                            v[j] += current[j]
                        current[j] = 0.0
                        if (refractory and refr[j]) or counts[j] < sync_threshold or not v[j] > thr[j]:
                            continue
                    u = v[j]  # fire: reset, then read out or queue
                    v[j] = 0.0 if reset_zero[s] else u - thr[j]
                    refr[j] = True
                    spikes[b, s] += 1.0
                    if record:
                        spike_train[t, b, j] += 1.0
                    jj = j - base
                    if s == out_layer:
                        out[t, b, jj] += 1.0
                        if np.isnan(st[FIRST_OUT]):
                            st[FIRST_OUT] = st[STEP]
                            st[SPK_OUT] = st[HIDDEN]
                        if jj == label and np.isnan(st[FIRST_COR]):
                            st[FIRST_COR] = st[STEP]
                            st[SPK_COR] = st[HIDDEN]
                    else:
                        st[HIDDEN] += 1.0
                        key = _key(sched_kind, seed, sample_id, int(st[STEP]), s, jj, u)
                        _enqueue(st, p_gid, p_key, p_amp, slot_of, src_off[s + 1] + jj, 1.0, key, tail_lo)
            if stop_after >= 0 and not np.isnan(st[FIRST_OUT]) and st[STEP] >= st[FIRST_OUT] + stop_after:
                if active:
                    st[DECISION] = st[STEP]
                active = False
    v_final[b] = v
    _finish(b, st, p_amp, rec)


@njit(cache=True, parallel=True)
def run_batch(
    T, B, n_layers, neu_off, src_off, dense_src,
    beta, thr, bias, reset_zero,
    csr_ptr, csr_tgt, csr_w, fan_out,
    ev_ptr, ev_idx, ev_amp,
    v_init, labels,
    group_size, sched_kind, seed, sample_offset, prioritized, refractory, hold, sync_threshold,
    max_steps, stop_after, carry_over,
    out, v_final, spikes, synops, input_events, rec, spike_train,
):  # fmt: skip
    """Run ``B`` samples; writes ``out`` ``[T, B, n_out]``, ``v_final`` ``[B, N]`` and the records.

    ``spike_train`` ``[T, B, N]`` (zeros on entry), when not empty: the spikes every neuron emitted in each
    frame. Pass a ``(0, 0, 0)`` array (same dtype as ``out``) to record nothing.

    ``rec[b]`` columns: micro_steps, first_output, first_correct, decision, spikes_before_output,
    spikes_before_correct, emitted, delivered, dropped, pending_at_end (NaN where never). Sample ``b`` draws
    its random keys as sample ``sample_offset + b``.
    """
    for b in prange(B):
        _run_sample(
            b, T, n_layers, neu_off, src_off, dense_src,
            beta, thr, bias, reset_zero,
            csr_ptr, csr_tgt, csr_w, fan_out,
            ev_ptr, ev_idx, ev_amp,
            v_init, labels,
            group_size, sched_kind, seed, sample_offset, prioritized, refractory, hold, sync_threshold,
            max_steps, stop_after, carry_over,
            out, v_final, spikes, synops, input_events, rec, spike_train,
        )  # fmt: skip
