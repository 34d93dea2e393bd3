"""Compiled training path of the asynchronous engine (dense and sparse, e.g. conv, blocks), with numba.

The forward pass runs the schedule like :mod:`.numba_cpu` and writes a compact *tape* per sample: one entry
per leak, delivery (which events, which silent evaluations rode along, which targets were held) and
evaluation (neuron, membrane, kind: fired, silent or gradient-only). The backward pass replays the tape in
reverse with per-neuron adjoints, applying the gradient rules R1-R4 of :mod:`asyncsnn.engines.async_` (the
reference; tests check that the gradients agree). Memory is the tape, O(evaluations + delivered events),
never a dense tensor per micro-step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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
)
from asyncsnn.engines.keys import MODULUS, SALT_DROPOUT

OP_LEAK, OP_DELIVER, OP_EVAL = 0, 1, 2
FIRED, SILENT, GRAD_ONLY = 0, 1, 2
SURROGATE_IDS = {"atan": 0, "fast_sigmoid": 1, "sigmoid": 2}


@njit(cache=True, inline="always")
def _reserve(a, used, extra):
    """``a`` with room for ``extra`` more entries after ``used`` (grown geometrically)."""
    if used + extra <= a.shape[0]:
        return a
    b = np.empty(2 * (used + extra) + 16, dtype=a.dtype)
    b[:used] = a[:used]
    return b


@njit(cache=True)
def _grow_all(it_gid, it_amp, it_head, held, op_kind, op_a, op_b, op_c, op_d, ev_neuron, ev_u, ev_kind,
              ev_next, out_t, out_k, out_id, n_it, extra, n_held, n_op, n_ev, n_out, n):  # fmt: skip
    """Room on the tape for one more delivery: its items, held flags, and up to ``n`` evaluations."""
    return (
        _reserve(it_gid, n_it, extra), _reserve(it_amp, n_it, extra), _reserve(it_head, n_it, extra),
        _reserve(held, n_held, n), _reserve(op_kind, n_op, n + 1), _reserve(op_a, n_op, n + 1),
        _reserve(op_b, n_op, n + 1), _reserve(op_c, n_op, n + 1), _reserve(op_d, n_op, n + 1),
        _reserve(ev_neuron, n_ev, n), _reserve(ev_u, n_ev, n), _reserve(ev_kind, n_ev, n),
        _reserve(ev_next, n_ev, n), _reserve(out_t, n_out, n), _reserve(out_k, n_out, n),
        _reserve(out_id, n_out, n),
    )  # fmt: skip


@njit(cache=True, inline="always")
def _surrogate(kind, scale, x):
    if kind == 0:
        return (scale / 2) / (1 + (math.pi / 2 * scale * x) ** 2)
    if kind == 1:
        return 1.0 / (scale * abs(x) + 1.0) ** 2
    sig = 1.0 / (1.0 + math.exp(-scale * x))
    return scale * sig * (1 - sig)


@njit(cache=True, nogil=True)
def forward_sample(
    b, T, n_layers, neu_off, src_off,
    beta, thr, bias, reset_zero,
    csr_ptr, csr_tgt, csr_w, fan_out, dense_src,
    ev_ptr, ev_idx, ev_amp,
    labels, group_size, sched_kind, seed, prioritized, refractory, hold, sync_threshold,
    max_steps, stop_after, carry_over, dropout,
    out, v_final, spikes, synops, input_events, rec, capacity,
):  # fmt: skip
    """One sample; returns its tape ``(ops, evals, items, held targets, outs)`` as arrays.

    ``capacity``: initial tape sizes (ops, evaluations, items, held flags), e.g. the previous step's, so the
    tape rarely regrows."""
    N = neu_off[n_layers]
    n_src = src_off[n_layers]
    out_layer = n_layers - 1
    v = np.zeros(N, dtype=csr_w.dtype)  # the network's precision; the tape keeps membranes in float64
    refr = np.zeros(N, dtype=np.bool_)
    evaluated = np.zeros(N, dtype=np.bool_)
    silent = np.zeros(N, dtype=np.bool_)
    silent_id = np.full(N, -1, dtype=np.int64)
    silent_list = np.empty(N, dtype=np.int64)  # per layer (from neu_off[l]): neurons that turned silent
    n_silent = np.zeros(n_layers, dtype=np.int64)
    listed = np.zeros(N, dtype=np.bool_)
    touched_flag = np.zeros(N, dtype=np.bool_)  # sparse blocks: targets reached in this delivery
    real_flag = np.zeros(N, dtype=np.bool_)  # ... by real events (not only by ride-alongs)
    touched = np.empty(N, dtype=np.int64)
    counts = np.zeros(N)  # events received this frame (sparse blocks)
    n_evaluated = np.zeros(n_layers, dtype=np.int64)
    out_fired = np.zeros(N, dtype=np.bool_)
    layer_count = np.zeros(n_layers)
    current = np.zeros(N, dtype=csr_w.dtype)
    p_gid = np.empty(n_src, dtype=np.int64)
    p_key = np.empty(n_src)
    p_amp = np.empty(n_src, dtype=csr_w.dtype)
    p_head = np.empty(n_src, dtype=np.int64)  # first evaluation id of the spikes making up the event
    slot_of = np.full(n_src, -1, dtype=np.int64)
    chosen = np.empty(group_size, dtype=np.int64)
    sel_gid = np.empty(n_src, dtype=np.int64)
    sel_amp = np.empty(n_src, dtype=csr_w.dtype)
    sel_head = np.empty(n_src, dtype=np.int64)
    # tape
    op_kind = np.empty(capacity[0], dtype=np.int64)
    op_a = np.empty(capacity[0], dtype=np.int64)
    op_b = np.empty(capacity[0], dtype=np.int64)
    op_c = np.empty(capacity[0], dtype=np.int64)
    op_d = np.empty(capacity[0], dtype=np.int64)
    op_e = np.empty(capacity[0], dtype=np.int64)
    n_op = 0
    ev_neuron = np.empty(capacity[1], dtype=np.int64)
    ev_u = np.empty(capacity[1])
    ev_kind = np.empty(capacity[1], dtype=np.int64)
    ev_next = np.empty(capacity[1], dtype=np.int64)  # next spike of the same pending event (-1: last)
    n_ev = 0
    it_gid = np.empty(capacity[2], dtype=np.int64)
    it_amp = np.empty(capacity[2])
    it_head = np.empty(capacity[2], dtype=np.int64)  # value ids: chained through ev_next; -1: input event
    n_it = 0
    held = np.empty(capacity[3], dtype=np.bool_)
    held_t = np.empty(capacity[3], dtype=np.int64)  # the target of each held flag (sparse blocks)
    n_held = 0
    out_t = np.empty(64, dtype=np.int64)
    out_k = np.empty(64, dtype=np.int64)
    out_id = np.empty(64, dtype=np.int64)
    n_out = 0
    st = _new_state()
    active = True
    label = labels[b]
    for t in range(T):
        if not active:
            break
        for n in range(N):
            v[n] = beta[n] * v[n] + bias[n]
        op_kind = _reserve(op_kind, n_op, 1)
        op_a = _reserve(op_a, n_op, 1)
        op_b = _reserve(op_b, n_op, 1)
        op_c = _reserve(op_c, n_op, 1)
        op_d = _reserve(op_d, n_op, 1)
        op_e = _reserve(op_e, n_op, 1)
        op_kind[n_op] = OP_LEAK
        n_op += 1
        refr[:] = False
        evaluated[:] = False
        silent[:] = False
        n_evaluated[:] = 0
        counts[:] = 0.0
        n_silent[:] = 0
        listed[:] = False
        out_fired[:] = False
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
                        input_events[b] += ev_amp[e]
                        synops[b, 0] += ev_amp[e] * fan_out[ev_idx[e]]
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
                            p_key[q] = _key(sched_kind, seed, b, int(st[STEP]), -1, i, ev_amp[e])
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
                if (  # grow the tape only when needed: a call per array per delivery would cost more
                    n_it + extra > it_gid.shape[0]
                    or n_held + n > held.shape[0]
                    or n_op + n + 1 > op_kind.shape[0]
                    or n_ev + n > ev_u.shape[0]
                    or n_out + n > out_t.shape[0]
                ):
                    grown = _grow_all(it_gid, it_amp, it_head, held, op_kind, op_a, op_b, op_c, op_d,
                                      ev_neuron, ev_u, ev_kind, ev_next, out_t, out_k, out_id,
                                      n_it, extra, n_held, n_op, n_ev, n_out, n)  # fmt: skip
                    it_gid, it_amp, it_head, held, op_kind, op_a, op_b, op_c = grown[:8]
                    op_d, ev_neuron, ev_u, ev_kind, ev_next, out_t, out_k, out_id = grown[8:]
                    held_t = _reserve(held_t, n_held, n)
                    op_e = _reserve(op_e, n_op, n + 1)
                dense = dense_src[s]
                n_touch = 0

                cur = current[base : base + n]
                for e in range(c0, c1):
                    it_gid[n_it] = sel_gid[e]
                    it_amp[n_it] = sel_amp[e]
                    it_head[n_it] = sel_head[e]
                    n_it += 1
                    a = sel_amp[e]
                    if rnd > 0:
                        st[DELIVERED] += a
                        synops[b, s] += a * fan_out[sel_gid[e]]
                        if s == 0:
                            input_events[b] += a
                    k0 = csr_ptr[sel_gid[e]]
                    if dense:
                        row = csr_w[k0 : k0 + n]
                        for j in range(n):
                            cur[j] += row[j] * a
                        layer_count[s] += a
                    else:
                        for k in range(k0, csr_ptr[sel_gid[e] + 1]):
                            j = base + csr_tgt[k]
                            current[j] += csr_w[k] * a
                            counts[j] += a
                            real_flag[j] = True
                            if not touched_flag[j]:
                                touched_flag[j] = True
                                touched[n_touch] = j
                                n_touch += 1
                rides = 0
                if s > 0 and (has_real or ending):  # R1 / R3: the source layer's silent evaluations ride
                    lo = neu_off[s - 1]
                    for q in range(lo, lo + n_silent[s - 1]):
                        m = silent_list[q]
                        listed[m] = False
                        if silent[m]:  # still silent (it may have fired since it was listed)
                            silent[m] = False
                            g = src_off[s] + (m - lo)
                            it_gid[n_it] = g
                            it_amp[n_it] = 0.0
                            it_head[n_it] = silent_id[m]
                            n_it += 1
                            rides += 1
                            if not dense:  # where the ride-along reaches (R2)
                                for k in range(csr_ptr[g], csr_ptr[g + 1]):
                                    j = base + csr_tgt[k]
                                    if not touched_flag[j]:
                                        touched_flag[j] = True
                                        touched[n_touch] = j
                                        n_touch += 1
                    n_silent[s - 1] = 0
                if ending and rides == 0 and n_evaluated[s] == n:
                    continue  # R3 has nothing to do for this layer
                held0 = n_held
                if dense:
                    for j in range(n):
                        held[n_held] = refractory and hold and refr[base + j] and not ending
                        n_held += 1
                else:
                    for q in range(n_touch):
                        j = touched[q]
                        held_t[n_held] = j
                        held[n_held] = refractory and hold and refr[j] and not ending
                        n_held += 1
                op_kind[n_op] = OP_DELIVER
                op_a[n_op] = s
                op_b[n_op] = item0
                op_c[n_op] = n_it
                op_d[n_op] = held0
                op_e[n_op] = n_held
                n_op += 1
                # integrate, then evaluate: dense blocks reach the whole layer; sparse ones the touched
                # targets, except at frame end and frame start, where every neuron of the layer is checked
                whole = dense or ending or rnd == 0
                for q in range(n if whole else n_touch):
                    j = base + q if whole else touched[q]
                    if not (refractory and hold and refr[j]) or ending:
                        v[j] += current[j]
                    current[j] = 0.0
                    reached = touched_flag[j]
                    real = has_real if dense else real_flag[j]
                    touched_flag[j] = False
                    real_flag[j] = False
                    if ending:
                        kind = GRAD_ONLY if ((rides > 0 if dense else reached) or not evaluated[j]) else -1
                    elif real:
                        free = not (refractory and refr[j])
                        if not free and dropout > 0:
                            lucky = _hash(seed, b, int(st[STEP]), s, j - base, SALT_DROPOUT) / MODULUS
                            free = lucky < dropout
                        received = layer_count[s] if dense else counts[j]
                        if not free or received < sync_threshold:
                            kind = -1
                        else:
                            kind = FIRED if v[j] > thr[j] else SILENT
                    else:  # R2: reached only by ride-alongs, or not by the prioritized input frame
                        kind = GRAD_ONLY if not (refractory and refr[j]) else -1
                    if kind < 0:
                        continue
                    ev_neuron[n_ev] = j
                    ev_u[n_ev] = v[j]
                    ev_kind[n_ev] = kind
                    ev_next[n_ev] = -1
                    eid = n_ev
                    n_ev += 1
                    op_kind[n_op] = OP_EVAL
                    op_a[n_op] = eid
                    n_op += 1
                    if not evaluated[j]:
                        evaluated[j] = True
                        n_evaluated[s] += 1
                    if kind != FIRED:
                        silent[j] = True
                        silent_id[j] = eid
                        if not listed[j]:  # listed at most once between rides: the list never overflows
                            listed[j] = True
                            silent_list[neu_off[s] + n_silent[s]] = j
                            n_silent[s] += 1
                        continue
                    u = v[j]
                    v[j] = 0.0 if reset_zero[s] else u - thr[j]
                    refr[j] = True
                    silent[j] = False
                    spikes[b, s] += 1.0
                    jj = j - base
                    if s == out_layer:
                        out[t, b, jj] += 1.0
                        out_fired[j] = True
                        out_t[n_out], out_k[n_out], out_id[n_out] = t, jj, eid
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
                            ev_next[eid] = p_head[q]
                            p_head[q] = eid
                        else:
                            q = int(st[N_PEND])
                            slot_of[gid] = q
                            p_gid[q] = gid
                            p_amp[q] = 1.0
                            p_head[q] = eid
                            p_key[q] = _key(sched_kind, seed, b, int(st[STEP]), s, jj, u)
                            st[N_PEND] = q + 1
            if ending:
                n_last = N - neu_off[out_layer]
                out_t = _reserve(out_t, n_out, n_last)
                out_k = _reserve(out_k, n_out, n_last)
                out_id = _reserve(out_id, n_out, n_last)
                for j in range(neu_off[out_layer], N):  # R4
                    if silent[j] and not out_fired[j]:
                        out_t[n_out], out_k[n_out], out_id[n_out] = t, j - neu_off[out_layer], silent_id[j]
                        n_out += 1
                break
            if stop_after >= 0 and not np.isnan(st[FIRST_OUT]) and st[STEP] >= st[FIRST_OUT] + stop_after:
                if active:
                    st[DECISION] = st[STEP]
                active = False
    v_final[b] = v
    _finish(b, st, p_amp, rec)
    return (op_kind[:n_op], op_a[:n_op], op_b[:n_op], op_c[:n_op], op_d[:n_op], op_e[:n_op], held_t[:n_held],
            ev_neuron[:n_ev], ev_u[:n_ev],
            ev_kind[:n_ev], ev_next[:n_ev], it_gid[:n_it], it_amp[:n_it], it_head[:n_it], held[:n_held],
            out_t[:n_out], out_k[:n_out], out_id[:n_out])  # fmt: skip


@njit(cache=True, nogil=True, fastmath=True)  # lets the row dot products vectorise (reassociated sums)
def backward_sample(
    b, op_kind, op_a, op_b, op_c, op_d, op_e, held_t, ev_neuron, ev_u, ev_kind, ev_next, it_gid, it_amp,
    it_head, held, out_t, out_k, out_id, g_out, neu_off, layer_of, beta, thr, reset_zero, detach_reset,
    sg_kind, sg_scale, csr_ptr, csr_tgt, csr_w, dense_src, g_w, g_bias,
):  # fmt: skip
    """Replay one sample's tape in reverse; adds its weight and bias gradients to ``g_w`` and ``g_bias``."""
    N = beta.shape[0]
    g_v = np.zeros(N)
    g_val = np.zeros(ev_neuron.shape[0])
    for q in range(out_t.shape[0]):  # R4: frame outputs are spike (or latest silent) values
        g_val[out_id[q]] += g_out[out_t[q], b, out_k[q]]
    g_in = np.zeros(N)
    g_full = np.zeros(N)  # sparse blocks: adjoint of the current of each touched target
    for o in range(op_kind.shape[0] - 1, -1, -1):
        kind = op_kind[o]
        if kind == OP_EVAL:
            e = op_a[o]
            j = ev_neuron[e]
            layer = layer_of[j]
            u = ev_u[e]
            sg = _surrogate(sg_kind[layer], sg_scale[layer], u - thr[j])
            dvdu = 1.0
            if ev_kind[e] == FIRED:
                if reset_zero[layer]:
                    dvdu = 0.0 if detach_reset[layer] else -u * sg
                elif not detach_reset[layer]:
                    dvdu = 1.0 - thr[j] * sg
            g_v[j] = g_val[e] * sg + g_v[j] * dvdu
        elif kind == OP_DELIVER and not dense_src[op_a[o]]:
            s = op_a[o]
            base = neu_off[s]
            for q in range(op_d[o], op_e[o]):
                j = held_t[q]
                g_full[j] = 0.0 if held[q] else g_v[j]
            for it in range(op_b[o], op_c[o]):
                g = it_gid[it]
                a = it_amp[it]
                e = it_head[it]
                dot = 0.0
                for k in range(csr_ptr[g], csr_ptr[g + 1]):
                    gj = g_full[base + csr_tgt[k]]
                    dot += csr_w[k] * gj
                    if a != 0.0:
                        g_w[k] += a * gj
                while e >= 0:
                    g_val[e] += dot
                    e = ev_next[e]
            for q in range(op_d[o], op_e[o]):
                g_full[held_t[q]] = 0.0
        elif kind == OP_DELIVER:
            s = op_a[o]
            base = neu_off[s]
            n = neu_off[s + 1] - base
            h0 = op_d[o]
            gi = g_in[:n]
            for j in range(n):
                gi[j] = 0.0 if held[h0 + j] else g_v[base + j]
            for it in range(op_b[o], op_c[o]):  # slices keep the row loops contiguous and vectorised
                k0 = csr_ptr[it_gid[it]]
                a = it_amp[it]
                if a != 0.0:
                    grow = g_w[k0 : k0 + n]
                    for j in range(n):
                        grow[j] += a * gi[j]
                e = it_head[it]
                if e < 0:  # an input event: its value is a constant, no gradient to send back
                    continue
                row = csr_w[k0 : k0 + n]
                dot = 0.0
                for j in range(n):
                    dot += row[j] * gi[j]
                while e >= 0:
                    g_val[e] += dot
                    e = ev_next[e]
        else:  # leak and bias at a frame start
            for n in range(N):
                g_bias[n] += g_v[n]
                g_v[n] *= beta[n]
