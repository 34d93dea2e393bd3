"""CUDA kernel of the asynchronous engine (inference), in Triton.

It implements the forward semantics of :mod:`asyncsnn.engines.async_` (the reference) and follows the compiled
CPU kernel (:mod:`.numba_cpu`) step for step; tests check all three agree. One Triton program runs one sample
from its first frame to its last, so a batch is ``B`` independent programs and nothing is synchronised
between samples.

Per sample, the program keeps in global scratch memory: membranes, refractory flags, per-frame event counts
and, for sparse blocks, the current being delivered; and the pending queue as two arrays indexed by source
(``pend_amp`` > 0 means pending, ``pend_key`` its scheduler key). The queue is a dense array rather than a
list because on a GPU one vectorised minimum over a few hundred sources costs about what one scalar step
costs. Only the queue's range is scanned: network sources (and input channels when the input is
``scheduled``).

A micro-step: pick the F pending sources with the lowest (key, source) (F arg-min passes), sort them by
source, take them out of the queue, and deliver them source block by source block: a dense block
(``nn.Linear``) adds the selected weight rows in registers; a sparse block (convolution, pooling) scatters
each event's fan-out list into scratch, one event after the other (no atomics, so results are deterministic).
After each block, the neurons it reached integrate and are evaluated; those that fire are queued with their
key. The selected sources are sorted, so each block's are a contiguous range of them.

Array layout: as in :mod:`.numba_cpu` (``neu_off``, ``src_off``, ``csr_ptr``/``csr_tgt``/``csr_w``,
``ev_ptr``/``ev_idx``/``ev_amp``).
"""

from __future__ import annotations

import triton
import triton.language as tl

SCHED_RANDOM, SCHED_MOMENTUM, SCHED_FIFO, SCHED_LAYER = 0, 1, 2, 3
MAX_LAYER = 4096  # largest population the kernel holds in one block
MAX_QUEUE = 16384  # largest queue range (sources) it scans in one block
N_REC = 10
#: warps per program (one sample); None: chosen from the largest population (``benchmarks/triton_tuning.py``)
NUM_WARPS: int | None = None


@triton.jit
def _hash(seed, sample, step, layer, neuron, salt):
    """:func:`asyncsnn.engines.keys.hash_int` on int64 values (``neuron`` may be a block)."""
    M = 2147483647
    x = (neuron * 0 + salt + 1).to(tl.int64)
    x = ((x ^ (seed % M)) * 1103515245 + 12345) % M
    x = ((x ^ (sample % M)) * 1103515245 + 12345) % M
    x = ((x ^ (step % M)) * 1103515245 + 12345) % M
    x = ((x ^ (layer + 2)) * 1103515245 + 12345) % M
    x = ((x ^ (neuron.to(tl.int64) % M)) * 1103515245 + 12345) % M
    x = ((x ^ 1) * 1103515245 + 12345) % M
    x = ((x ^ 1) * 1103515245 + 12345) % M
    return x


@triton.jit
def _key(SCHED: tl.constexpr, seed, sample, step, layer, neuron, membrane, noise):
    """Scheduler keys (float64) of ``neuron`` (a block) of ``layer`` queued at micro-step ``step``."""
    if SCHED == 2:  # fifo
        key = neuron.to(tl.float64) * 0 + step
    elif SCHED == 3:  # layer
        key = neuron.to(tl.float64) * 0 + layer
    else:
        rand = _hash(seed, sample, step, layer, neuron, 0).to(tl.float64) / 2147483647
        if SCHED == 0:
            key = rand
        else:  # momentum: highest membrane first, seeded noise breaks ties
            key = -membrane.to(tl.float64) + rand * noise
    return key


@triton.jit
def _dense_rows(
    gid_ptr, amp_ptr, lo, hi, csr_ptr, csr_w, fan_out, n, BLOCK_N: tl.constexpr, EV_CHUNK: tl.constexpr
):
    """Sum of the weight rows of events ``lo .. hi - 1`` (times their amplitudes), their total amplitude and
    their SynOps."""
    offs_n = tl.arange(0, BLOCK_N)
    offs_e = tl.arange(0, EV_CHUNK)
    cur = tl.zeros([BLOCK_N], dtype=csr_w.dtype.element_ty)
    total = tl.zeros([EV_CHUNK], dtype=tl.float64)
    ops = tl.zeros([EV_CHUNK], dtype=tl.float64)
    c = lo
    while c < hi:
        e = c + offs_e
        m = e < hi
        g = tl.load(gid_ptr + e, mask=m, other=0)
        a = tl.load(amp_ptr + e, mask=m, other=0)
        row = tl.load(csr_ptr + g, mask=m, other=0)
        w = tl.load(csr_w + row[:, None] + offs_n[None, :], mask=m[:, None] & (offs_n[None, :] < n), other=0)
        cur += tl.sum(w * a[:, None], axis=0)
        total += a.to(tl.float64)
        ops += a.to(tl.float64) * tl.load(fan_out + g, mask=m, other=0)
        c += EV_CHUNK
    return cur, tl.sum(total, axis=0), tl.sum(ops, axis=0)


@triton.jit
def _sparse_rows(
    gid_ptr,
    amp_ptr,
    lo,
    hi,
    csr_ptr,
    csr_tgt,
    csr_w,
    fan_out,
    cur_ptr,
    cnt_ptr,
    hit_ptr,
    FAN_BLOCK: tl.constexpr,
):
    """Scatter events ``lo .. hi - 1`` into the scratch current, counts and reached flags of their layer
    (pointers already at the layer's first neuron), one event after the other; their total amplitude and
    SynOps."""
    offs_k = tl.arange(0, FAN_BLOCK)
    total = tl.load(fan_out) * 0
    ops = total
    c = lo
    while c < hi:
        g = tl.load(gid_ptr + c)
        a = tl.load(amp_ptr + c)
        k0 = tl.load(csr_ptr + g)
        k1 = tl.load(csr_ptr + g + 1)
        k = k0
        while k < k1:
            kk = k + offs_k
            m = kk < k1
            j = tl.load(csr_tgt + kk, mask=m, other=0)
            w = tl.load(csr_w + kk, mask=m, other=0)
            tl.store(cur_ptr + j, tl.load(cur_ptr + j, mask=m, other=0) + w * a, mask=m)
            tl.store(cnt_ptr + j, tl.load(cnt_ptr + j, mask=m, other=0) + a, mask=m)
            tl.store(hit_ptr + j, 1, mask=m)
            k += FAN_BLOCK
        tl.debug_barrier()  # the next event may reach the same neurons through other threads
        total += a.to(tl.float64)
        ops += a.to(tl.float64) * tl.load(fan_out + g)
        c += 1
    return total, ops


@triton.jit
def async_kernel(
    neu_off, src_off, dense_src, reset_zero, beta, thr, bias,
    csr_ptr, csr_tgt, csr_w, fan_out, consts,
    ev_ptr, ev_idx, ev_amp, labels,
    out, v_all, spikes, synops, input_events, rec,
    refr_all, cnt_all, cur_all, hit_all, pamp_all, pkey_all, selg_all, sela_all,
    T, B, L, N, n_src, q_lo, n_out, F, seed, sample_offset,
    prioritized, refractory, hold, sync_threshold, max_steps, stop_after, carry_over,
    SCHED: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_F: tl.constexpr,
    BLOCK_L: tl.constexpr, EV_CHUNK: tl.constexpr, FAN_BLOCK: tl.constexpr,
):  # fmt: skip
    """Run sample ``program_id(0)``; writes ``out`` ``[T, B, n_out]``, the final membranes in ``v_all``
    ``[B, N]`` (which holds the initial ones on entry) and the records (as :func:`.numba_cpu.run_batch`).
    """
    b = tl.program_id(0)
    b64 = b.to(tl.int64)
    sample = b64 + sample_offset
    noise = tl.load(consts)  # the momentum tie-break scale, as float64
    v_ptr, refr_ptr = v_all + b64 * N, refr_all + b64 * N
    cnt_ptr, cur_ptr, hit_ptr = cnt_all + b64 * N, cur_all + b64 * N, hit_all + b64 * N
    pamp_ptr, pkey_ptr = pamp_all + b64 * n_src, pkey_all + b64 * n_src
    selg_ptr, sela_ptr = selg_all + b64 * BLOCK_F, sela_all + b64 * BLOCK_F
    offs_n = tl.arange(0, BLOCK_N)
    offs_q = tl.arange(0, BLOCK_Q)
    offs_f = tl.arange(0, BLOCK_F)
    offs_l = tl.arange(0, BLOCK_L)
    # the flags as blocks: a scalar flag or-ed with a block makes a mask Triton's interpreter refuses
    refractory_on = (offs_n * 0 + refractory) != 0
    hold_on = (offs_n * 0 + hold) != 0
    zero64 = b64.to(tl.float64) * 0
    label = tl.load(labels + b)
    out_layer = L - 1
    n_queue = n_src - q_lo
    # per-sample records, in registers
    step = b * 0
    first_out = step - 1
    first_cor = step - 1
    decision = step - 1
    spk_out = step - 1
    spk_cor = step - 1
    hidden = step
    active = step + 1
    emitted = zero64
    delivered = zero64
    dropped = zero64
    n_input = zero64
    spk_l = tl.zeros([BLOCK_L], dtype=tl.float64)
    ops_l = tl.zeros([BLOCK_L], dtype=tl.float64)
    t = b * 0
    while t < T:  # (Triton's interpreter cannot run range() over a runtime bound)
        if active != 0:
            n0 = 0
            while n0 < N:  # leak + bias at the start of the frame; refractoriness and counts reset
                o = n0 + offs_n
                m = o < N
                v = tl.load(v_ptr + o, mask=m, other=0)
                tl.store(
                    v_ptr + o,
                    tl.load(beta + o, mask=m, other=0) * v + tl.load(bias + o, mask=m, other=0),
                    mask=m,
                )
                tl.store(refr_ptr + o, 0, mask=m)
                tl.store(cnt_ptr + o, 0, mask=m)
                n0 += BLOCK_N
            tl.debug_barrier()
            e0 = tl.load(ev_ptr + b64 * T + t)
            e1 = tl.load(ev_ptr + b64 * T + t + 1)
            steps_in_frame = b * 0
            rnd = b * 0
            running = b * 0 + 1
            while running != 0:
                # ---- choose this round's events: (gid, amp) lists and their ranges per source ----
                n_sel = b * 0
                is_input_round = b * 0
                chosen = tl.full([BLOCK_F], 2147483647, tl.int32)
                fm = offs_f < 0
                if rnd == 0:
                    if prioritized != 0:
                        is_input_round = b * 0 + 1
                    else:  # scheduled input: queue the frame's events
                        c = e0
                        while c < e1:
                            e = c + offs_n
                            m = e < e1
                            ch = tl.load(ev_idx + e, mask=m, other=0)
                            a = tl.load(ev_amp + e, mask=m, other=0)
                            old = tl.load(pamp_ptr + ch, mask=m, other=0)
                            k = _key(SCHED, seed, sample, step, -1, ch, a, noise)
                            tl.store(pkey_ptr + ch, k, mask=m & (old == 0))
                            tl.store(pamp_ptr + ch, old + a, mask=m)
                            emitted += tl.sum(a.to(tl.float64), axis=0)
                            c += BLOCK_N
                        tl.debug_barrier()
                else:
                    qm = offs_q < n_queue
                    pa = tl.load(pamp_ptr + q_lo + offs_q, mask=qm, other=0)
                    pk = tl.load(pkey_ptr + q_lo + offs_q, mask=qm, other=0)
                    valid = qm & (pa > 0)
                    n_pend = tl.sum(valid.to(tl.int32), axis=0)
                    stop_now = (active == 0) | (n_pend == 0)
                    forced = (max_steps >= 0) & (steps_in_frame >= max_steps)
                    if stop_now | forced:
                        if (active == 0) | (forced & (carry_over == 0) & (n_pend > 0)):
                            dropped += tl.sum(tl.where(valid, pa, 0).to(tl.float64), axis=0)
                            tl.store(pamp_ptr + q_lo + offs_q, 0, mask=qm)
                            tl.debug_barrier()
                        running = b * 0
                    else:
                        keys = tl.where(valid, pk, float("inf"))
                        n_sel = tl.minimum(n_pend, F)
                        i = b * 0
                        while i < n_sel:
                            q = tl.argmin(keys, axis=0)  # ties: the lowest source
                            chosen = tl.where(offs_f == i, q_lo + q, chosen)
                            keys = tl.where(offs_q == q, float("inf"), keys)
                            i += 1
                        if BLOCK_F > 1:
                            chosen = tl.sort(chosen, dim=0)
                        fm = offs_f < n_sel
                        amps = tl.load(pamp_ptr + chosen, mask=fm, other=0)
                        tl.store(selg_ptr + offs_f, chosen, mask=fm)
                        tl.store(sela_ptr + offs_f, amps, mask=fm)
                        tl.store(pamp_ptr + chosen, 0, mask=fm)  # they leave the queue
                        tl.debug_barrier()
                        step += 1
                        steps_in_frame += 1
                        delivered += tl.sum(amps.to(tl.float64), axis=0)
                # ---- deliver them block by block; evaluate the neurons each block reached ----
                if (is_input_round != 0) | (n_sel > 0):
                    s = b * 0
                    while s < L:
                        if is_input_round != 0:
                            lo = (e0 * (s == 0)).to(tl.int64)
                            hi = (e1 * (s == 0)).to(tl.int64)
                            gid_ptr = ev_idx
                            amp_ptr = ev_amp
                        else:  # the selected sources of block s: a contiguous range of the sorted list
                            lo_g = tl.load(src_off + s)
                            hi_g = tl.load(src_off + s + 1)
                            lo = tl.sum(((chosen < lo_g) & fm).to(tl.int32), axis=0).to(tl.int64)
                            hi = tl.sum(((chosen < hi_g) & fm).to(tl.int32), axis=0).to(tl.int64)
                            gid_ptr = selg_ptr
                            amp_ptr = sela_ptr
                        if hi > lo:
                            base = tl.load(neu_off + s)
                            n = tl.load(neu_off + s + 1) - base
                            om = offs_n < n
                            if tl.load(dense_src + s) != 0:
                                cur, total, ops = _dense_rows(
                                    gid_ptr, amp_ptr, lo, hi, csr_ptr, csr_w, fan_out, n, BLOCK_N, EV_CHUNK
                                )
                                reached = om
                                cnt = tl.load(cnt_ptr + base + offs_n, mask=om, other=0)
                                cnt += total.to(cnt.dtype)
                            else:
                                total, ops = _sparse_rows(
                                    gid_ptr, amp_ptr, lo, hi, csr_ptr, csr_tgt, csr_w, fan_out,
                                    cur_ptr + base, cnt_ptr + base, hit_ptr + base, FAN_BLOCK,
                                )  # fmt: skip
                                cur = tl.load(cur_ptr + base + offs_n, mask=om, other=0)
                                reached = om & (tl.load(hit_ptr + base + offs_n, mask=om, other=0) != 0)
                                cnt = tl.load(cnt_ptr + base + offs_n, mask=om, other=0)
                                tl.store(cur_ptr + base + offs_n, 0, mask=om)
                                tl.store(hit_ptr + base + offs_n, 0, mask=om)
                            tl.store(cnt_ptr + base + offs_n, cnt, mask=om)
                            ops_l = tl.where(offs_l == s, ops_l + ops, ops_l)
                            if s == 0:
                                n_input += total
                            # integrate and evaluate (as in the reference)
                            v = tl.load(v_ptr + base + offs_n, mask=om, other=0)
                            refr = tl.load(refr_ptr + base + offs_n, mask=om, other=0) != 0
                            held = refractory_on & hold_on & refr
                            v = tl.where(reached & (held == 0), v + cur, v)
                            th = tl.load(thr + base + offs_n, mask=om, other=0)
                            fire = (
                                reached
                                & ((refractory_on == 0) | (refr == 0))
                                & (cnt >= sync_threshold)
                                & (v > th)
                            )
                            u = v
                            if tl.load(reset_zero + s) != 0:
                                v = tl.where(fire, 0, v)
                            else:
                                v = tl.where(fire, u - th, v)
                            tl.store(v_ptr + base + offs_n, v, mask=om)
                            tl.store(refr_ptr + base + offs_n, (refr | fire).to(tl.int8), mask=om)
                            n_fire = tl.sum(fire.to(tl.int32), axis=0)
                            spk_l = tl.where(offs_l == s, spk_l + n_fire, spk_l)
                            if s == out_layer:
                                o_ptr = out + (t * B + b64) * n_out + offs_n
                                tl.store(o_ptr, tl.load(o_ptr, mask=om, other=0) + fire.to(v.dtype), mask=om)
                                if (n_fire > 0) & (first_out < 0):
                                    first_out = step
                                    spk_out = hidden
                                hit_label = tl.sum((fire & (offs_n == label)).to(tl.int32), axis=0)
                                if (hit_label > 0) & (first_cor < 0):
                                    first_cor = step
                                    spk_cor = hidden
                            else:
                                hidden += n_fire
                                emitted += n_fire.to(tl.float64)
                                g0 = tl.load(src_off + s + 1)
                                old = tl.load(pamp_ptr + g0 + offs_n, mask=om, other=0)
                                k = _key(SCHED, seed, sample, step, s, offs_n, u, noise)
                                tl.store(pkey_ptr + g0 + offs_n, k, mask=fire & (old == 0))
                                tl.store(pamp_ptr + g0 + offs_n, old + fire.to(old.dtype), mask=fire)
                            tl.debug_barrier()
                        s += 1
                if (stop_after >= 0) & (first_out >= 0) & (step >= first_out + stop_after):
                    if active != 0:
                        decision = step
                    active = b * 0
                rnd += 1
        t += 1
    # ---- records ----
    qm = offs_q < n_queue
    pend_end = tl.sum(tl.load(pamp_ptr + q_lo + offs_q, mask=qm, other=0).to(tl.float64), axis=0)
    if decision < 0:
        decision = step
    r = rec + b64 * 10
    tl.store(r + 0, step.to(tl.float64))
    tl.store(r + 1, first_out.to(tl.float64))
    tl.store(r + 2, first_cor.to(tl.float64))
    tl.store(r + 3, decision.to(tl.float64))
    tl.store(r + 4, spk_out.to(tl.float64))
    tl.store(r + 5, spk_cor.to(tl.float64))
    tl.store(r + 6, emitted)
    tl.store(r + 7, delivered)
    tl.store(r + 8, dropped)
    tl.store(r + 9, pend_end)
    tl.store(spikes + b64 * L + offs_l, spk_l, mask=offs_l < L)
    tl.store(synops + b64 * L + offs_l, ops_l, mask=offs_l < L)
    tl.store(input_events + b, n_input)
