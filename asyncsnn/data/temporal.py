"""Temporal spike data in physical time: series -> sigma-delta spikes, and two timing tasks.

Spike times are fixed in milliseconds independently of the simulation step ``dt`` (ms) and only
then binned: bin i counts the spikes with time in [i*dt, (i+1)*dt). So dt=1 and dt=0.1 hold the
same spikes (summing ten 0.1 ms bins gives the 1 ms bin). Tensors are time-first float32 spike
counts [T, B, C]; a bin can hold more than one spike when dt is coarse. Analogue targets are
sampled at the end of each bin, t = (i+1)*dt, so they only depend on spikes already binned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ._common import check_positive

# Grid (ms) on which the sigma-delta encoder runs, whatever dt is: spike times are multiples of it.
FINE_STEP_MS = 0.05
# Times within 1e-9 bin of a bin edge count as on the edge (float rounding of k*h/dt).
_EDGE_EPS = 1e-9


def _num_bins(duration_ms: float, dt: float) -> int:
    return max(1, math.ceil(duration_ms / dt - _EDGE_EPS))


def _bins(times_ms: torch.Tensor, dt: float, num_bins: int) -> torch.Tensor:
    """int64 bin index floor(t / dt) of float64 times, clipped to [0, num_bins)."""
    return torch.floor(times_ms / dt + _EDGE_EPS).to(torch.int64).clamp_(0, num_bins - 1)


def _histogram(
    times_ms: torch.Tensor, rows: torch.Tensor, channels: torch.Tensor, shape: tuple[int, int, int], dt: float
) -> torch.Tensor:
    """float32 [T, B, C] spike counts of spikes (time, row, channel)."""
    T, B, C = shape
    flat = (_bins(times_ms, dt, T) * B + rows) * C + channels
    return torch.bincount(flat, minlength=T * B * C).reshape(T, B, C).to(torch.float32)


def _check_seed(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return torch.Generator().manual_seed(int(seed))


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_series(values: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    v, n = torch.as_tensor(values), torch.as_tensor(lengths)
    if v.dim() != 3 or min(v.shape) == 0 or not v.is_floating_point():
        raise ValueError(
            f"values must be a float tensor [N, T, C] with sizes >= 1, got {v.dtype} {tuple(v.shape)}"
        )
    if n.dtype not in (torch.int32, torch.int64) or tuple(n.shape) != (v.shape[0],):
        raise ValueError(f"lengths must be an integer tensor [{v.shape[0]}], got {n.dtype} {tuple(n.shape)}")
    if int(n.min()) < 1 or int(n.max()) > v.shape[1]:
        raise ValueError(f"lengths must lie in [1, {v.shape[1]}] (the padded length of values)")
    if not bool(torch.isfinite(v).all()):
        raise ValueError("values contain NaN or infinite entries")
    return v.to(torch.float64), n.to(torch.int64)


def _valid_steps(lengths: torch.Tensor, num_steps: int) -> torch.Tensor:
    """bool [N, num_steps]: True where step < lengths[i]."""
    return torch.arange(num_steps) < lengths[:, None]


def channel_stats(values: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over the valid steps (padding excluded).

    values: [N, T, C]; lengths: int [N]. Returns float32 (mean [C], std [C]); std is the
    population value (divide by the number of valid steps) and is replaced by 1 where a
    channel is constant, so (v - mean) / std is always finite. Compute them on the training
    split and pass them to series_to_spikes for every split.
    """
    v, n = _check_series(values, lengths)
    x = v[_valid_steps(n, v.shape[1])]  # [sum(lengths), C]
    mean = x.mean(0)
    std = x.std(0, correction=0)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return mean.to(torch.float32), std.to(torch.float32)


def series_to_spikes(
    values: torch.Tensor,
    lengths: torch.Tensor,
    *,
    dt: float,
    step_ms: float,
    theta: float,
    tau: float,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    signed: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigma-delta spikes of series: (spikes float32 [T, N, C'], mask bool [T, N]).

    values: [N, T0, C] zero-padded series, lengths: int [N]. Sample j of series i is held
    for step_ms ms, on [j*step_ms, (j+1)*step_ms); T = ceil(max(lengths) * step_ms / dt).
    With mean and std ([C], from channel_stats on the training split) the values are first
    standardised, v = (x - mean) / std; without them they are used as they are.
    signed=True: channel c gives ON channel c = relu(v) and OFF channel C + c = relu(-v)
    (C' = 2C); signed=False: one channel relu(v) per channel (C' = C, negative parts lost).

    Each channel y is encoded on a fixed grid h = FINE_STEP_MS = 0.05 ms, whatever dt is:
    decoded estimate g(t) = a * g(t-h) + 2 * theta * s(t), a = exp(-h / tau), and spike
    s(t) = 1 when y(t) - a * g(t-h) > theta (at most one spike per 0.05 ms). The spike counts
    are then binned into dt bins. For a constant y >> theta, g oscillates in about
    [y - theta, y + theta] and the rate is ~ y / (2 * theta * tau) spikes per ms (exactly
    1 / (tau * ln((y + theta) / (y - theta))) for y > theta, no spikes for y <= theta);
    keep it well below 1 / h = 20 per ms, where the one-spike-per-step limit saturates.
    g starts at 0, so a series onset (and any step up by d) first sends a burst of about
    d / (2 * theta) spikes, one per 0.05 ms; with dt > 0.05 a bin can then count several.
    Spike k of the fine grid has time k * 0.05 ms.
    After a series ends its input is 0 and it stays silent. mask[t, i] is True for the bins
    t < ceil(lengths[i] * step_ms / dt) that lie within series i.
    """
    v, n = _check_series(values, lengths)
    dt = check_positive("dt", dt)
    step_ms = check_positive("step_ms", step_ms)
    theta = check_positive("theta", theta)
    tau = check_positive("tau", tau)
    N, T0, C = v.shape
    if (mean is None) != (std is None):
        raise ValueError("pass both mean and std (from channel_stats) or neither")
    if mean is not None and std is not None:
        mean64, std64 = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(std, dtype=torch.float64)
        if tuple(mean64.shape) != (C,) or tuple(std64.shape) != (C,):
            raise ValueError(
                f"mean and std must have shape [{C}] (one per channel), got "
                f"{tuple(mean64.shape)} and {tuple(std64.shape)}"
            )
        if not bool((std64 > 0).all()):
            raise ValueError("std must be > 0 in every channel; use channel_stats")
        v = (v - mean64) / std64
    v = v * _valid_steps(n, T0)[..., None]  # padding -> 0 after standardising
    y = torch.cat([v.clamp(min=0), (-v).clamp(min=0)], dim=2) if signed else v.clamp(min=0)
    y = y.transpose(0, 1).contiguous()  # [T0, N, C']

    duration_ms = int(n.max()) * step_ms
    T = _num_bins(duration_ms, dt)
    K = _num_bins(duration_ms, FINE_STEP_MS)
    fine_times = torch.arange(K, dtype=torch.float64) * FINE_STEP_MS
    sample = _bins(fine_times, step_ms, T0).tolist()
    out_bin = _bins(fine_times, dt, T).tolist()

    a = math.exp(-FINE_STEP_MS / tau)
    g = torch.zeros(y.shape[1:], dtype=torch.float64)
    counts = torch.zeros(T, *y.shape[1:], dtype=torch.float64)
    for k in range(K):
        predicted = a * g
        spike = (y[sample[k]] - predicted > theta).to(torch.float64)
        g = predicted + (2.0 * theta) * spike
        counts[out_bin[k]] += spike
    valid_bins = torch.ceil(n.to(torch.float64) * step_ms / dt - _EDGE_EPS)
    mask = torch.arange(T)[:, None] < valid_bins[None, :]
    return counts.to(torch.float32), mask


def delay_task(
    n: int,
    *,
    dt: float,
    duration_ms: float,
    delay_ms: float,
    rate_hz: float,
    smooth_tau_ms: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Delayed, smoothed copy of a Poisson pulse train: (spikes [T, n, 1], target [T, n, 1]).

    Pulse times are drawn in continuous time on [0, duration_ms) at rate_hz (pulses per
    second), then binned; T = ceil(duration_ms / dt). The target at the end of bin i,
    t = (i+1)*dt, is sum over pulses p of K(t - t_p - delay_ms) with K(u) = exp(-u /
    smooth_tau_ms) for u > 0, else 0: every pulse adds a kernel of peak 1 whatever dt is
    (sampled, so the first sample after a pulse lies in (exp(-dt / smooth_tau_ms), 1]).
    delay_ms >= 0. Both float32; the same seed gives the same pulse times at every dt.
    """
    n = _check_count("n", n)
    dt = check_positive("dt", dt)
    duration_ms = check_positive("duration_ms", duration_ms)
    rate_hz = check_positive("rate_hz", rate_hz)
    smooth_tau_ms = check_positive("smooth_tau_ms", smooth_tau_ms)
    delay_ms = float(delay_ms)
    if not (math.isfinite(delay_ms) and delay_ms >= 0):
        raise ValueError(f"delay_ms must be a finite number >= 0, got {delay_ms!r}")
    gen = _check_seed(seed)

    expected = torch.full((n,), rate_hz * duration_ms / 1000.0, dtype=torch.float64)
    counts = torch.poisson(expected, generator=gen).to(torch.int64)
    times = torch.rand(int(counts.sum()), generator=gen, dtype=torch.float64) * duration_ms
    rows = torch.repeat_interleave(torch.arange(n), counts)
    T = _num_bins(duration_ms, dt)
    spikes = _histogram(times, rows, torch.zeros_like(rows), (T, n, 1), dt)

    # Pulse p (arriving at s = t_p + delay) first counts in bin b = floor(s / dt), the first whose
    # end (b+1)*dt is > s, with exp(-((b+1)*dt - s) / tau); later bins decay by exp(-dt / tau) per bin.
    arrival = times + delay_ms
    first = torch.floor(arrival / dt).to(torch.int64)
    inside = first < T
    jump = torch.exp(-((first + 1).to(torch.float64) * dt - arrival) / smooth_tau_ms)
    target = torch.zeros(T, n, dtype=torch.float64)
    target.index_put_((first[inside], rows[inside]), jump[inside], accumulate=True)
    decay = math.exp(-dt / smooth_tau_ms)
    target_np = target.numpy()
    for i in range(1, T):  # linear filter; a loop of [n]-vector steps is fast enough
        target_np[i] += decay * target_np[i - 1]
    return spikes, target.to(torch.float32).unsqueeze(2)


def pulse_response_peak(response: torch.Tensor, dt: float, pulse_time_ms: float) -> float:
    """Latency (ms) from a pulse to the peak of a response [T] sampled at bin ends (i+1)*dt.

    Searches the bins that end after the pulse; the first maximum wins. Returns
    (i_peak + 1) * dt - pulse_time_ms, so a response peaking in the pulse's own bin has a
    latency in (0, dt]. NaN when the response is never > 0 after the pulse.
    """
    r = torch.as_tensor(response)
    if r.dim() != 1 or r.numel() == 0:
        raise ValueError(f"response must be a 1-D tensor [T], got shape {tuple(r.shape)}")
    dt = check_positive("dt", dt)
    t_end = torch.arange(1, r.numel() + 1, dtype=torch.float64) * dt
    after = torch.nonzero(t_end > float(pulse_time_ms)).flatten()
    if after.numel() == 0:
        raise ValueError(f"pulse_time_ms={pulse_time_ms} is after the response ends ({r.numel() * dt:g} ms)")
    window = r[after[0] :].to(torch.float64)
    if float(window.max()) <= 0:
        return float("nan")
    i_peak = int(after[0]) + int(torch.argmax(window))  # argmax returns the first maximum
    return (i_peak + 1) * dt - float(pulse_time_ms)


def coincidence_task(
    n: int,
    *,
    dt: float,
    delays_ms: Sequence[float] = (-8.0, -4.0, 0.0, 4.0, 8.0),
    duration_ms: float,
    jitter_ms: float,
    n_pulses: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classify the delay between two channels: (spikes [T, n, 2], labels int64 [n]).

    Class c has delay delays_ms[c]; labels are balanced (n // classes or one more each) in
    random order. Channel 0 fires n_pulses pulses at times b drawn uniformly in a window that
    keeps every class inside [0, duration_ms); channel 1 fires at b + delays_ms[label]. Each
    pulse gets independent Gaussian jitter (std jitter_ms). Every channel has n_pulses spikes
    in every class, so only relative timing carries the class (plus edge effects of size
    |delay| at the window ends). Jitter beyond the window margin of 4 * jitter_ms, rare, is
    clipped into the first or last bin. The same seed gives the same times at every dt.
    """
    n = _check_count("n", n)
    n_pulses = _check_count("n_pulses", n_pulses)
    dt = check_positive("dt", dt)
    duration_ms = check_positive("duration_ms", duration_ms)
    jitter_ms = float(jitter_ms)
    if not (math.isfinite(jitter_ms) and jitter_ms >= 0):
        raise ValueError(f"jitter_ms must be a finite number >= 0, got {jitter_ms!r}")
    delays = torch.as_tensor([float(d) for d in delays_ms], dtype=torch.float64)
    if (
        delays.numel() < 2
        or not bool(torch.isfinite(delays).all())
        or delays.unique().numel() != delays.numel()
    ):
        raise ValueError(f"delays_ms must hold at least 2 distinct finite delays, got {tuple(delays_ms)!r}")
    lo = max(0.0, -float(delays.min())) + 4 * jitter_ms
    hi = duration_ms - max(0.0, float(delays.max())) - 4 * jitter_ms
    if hi <= lo:
        raise ValueError(
            f"duration_ms={duration_ms:g} is too short for delays {tuple(delays_ms)} and jitter "
            f"{jitter_ms:g} ms; it must exceed {lo + duration_ms - hi:g} ms (delay span + 8 * jitter)"
        )
    gen = _check_seed(seed)

    classes = delays.numel()
    labels = (torch.arange(n) % classes)[torch.randperm(n, generator=gen)]
    base = lo + torch.rand(n, n_pulses, generator=gen, dtype=torch.float64) * (hi - lo)
    jitter = torch.randn(2, n, n_pulses, generator=gen, dtype=torch.float64) * jitter_ms
    times = torch.stack([base, base + delays[labels][:, None]]) + jitter  # [2, n, n_pulses]
    channels = torch.arange(2)[:, None, None].expand_as(times)
    rows = torch.arange(n)[None, :, None].expand_as(times)
    T = _num_bins(duration_ms, dt)
    spikes = _histogram(times.flatten(), rows.flatten(), channels.flatten(), (T, n, 2), dt)
    return spikes, labels
