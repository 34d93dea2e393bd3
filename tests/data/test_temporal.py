"""Series -> sigma-delta spikes and the timing tasks: shapes, rates, dt invariance, exact oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncsnn.data import (
    FINE_STEP_MS,
    channel_stats,
    coincidence_task,
    delay_task,
    pulse_response_peak,
    series_to_spikes,
)


def coarsen(spikes: torch.Tensor, factor: int) -> torch.Tensor:
    """Sum groups of `factor` bins [T, ...] -> [ceil(T / factor), ...] (zero-padding the end)."""
    T = spikes.shape[0]
    pad = -T % factor
    padded = torch.cat([spikes, spikes.new_zeros(pad, *spikes.shape[1:])])
    return padded.reshape(-1, factor, *spikes.shape[1:]).sum(1)


def random_series(n: int = 5, t0: int = 9, c: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, t0 + 1, (n,), generator=g)
    lengths[0] = t0
    values = 1.5 * torch.randn(n, t0, c, generator=g) + 0.3
    values *= (torch.arange(t0) < lengths[:, None])[..., None]
    return values, lengths


# --- channel_stats / series_to_spikes --------------------------------------------------------


def test_channel_stats_ignore_padding() -> None:
    values, lengths = random_series()
    values[1, lengths[1] :] = 100.0  # garbage in the padding must not count
    values[:, :, 2] = 4.0  # constant channel -> std 1
    valid = np.concatenate([values[i, : lengths[i]].numpy() for i in range(len(lengths))])
    mean, std = channel_stats(values, lengths)
    torch.testing.assert_close(mean, torch.from_numpy(valid.mean(0)), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(std[:2], torch.from_numpy(valid.std(0)[:2]), rtol=1e-6, atol=1e-6)
    assert std[2] == 1.0


def test_shapes_and_mask() -> None:
    values, lengths = random_series()
    spikes, mask = series_to_spikes(values, lengths, dt=0.5, step_ms=1.5, theta=0.1, tau=5.0)
    T = math.ceil(9 * 1.5 / 0.5)
    assert spikes.shape == (T, 5, 6) and spikes.dtype == torch.float32
    assert mask.shape == (T, 5) and mask.dtype == torch.bool
    assert torch.equal(mask.sum(0), torch.ceil(lengths * 1.5 / 0.5).long())
    assert not spikes[~mask].any()  # silent after each series ends
    unsigned, _ = series_to_spikes(values, lengths, dt=0.5, step_ms=1.5, theta=0.1, tau=5.0, signed=False)
    assert unsigned.shape == (T, 5, 3)
    assert torch.equal(unsigned, spikes[:, :, :3])


def test_on_off_channels_mirror() -> None:
    values, lengths = random_series()
    kw = dict(dt=1.0, step_ms=2.0, theta=0.1, tau=4.0)
    plus, _ = series_to_spikes(values, lengths, **kw)
    minus, _ = series_to_spikes(-values, lengths, **kw)
    assert torch.equal(plus[..., :3], minus[..., 3:]) and torch.equal(plus[..., 3:], minus[..., :3])
    assert plus[..., :3].any() and plus[..., 3:].any()


def test_standardisation_is_applied_on_valid_steps() -> None:
    values, lengths = random_series()
    mean, std = channel_stats(values, lengths)
    kw = dict(dt=0.5, step_ms=1.0, theta=0.2, tau=3.0)
    spikes, _ = series_to_spikes(values, lengths, mean=mean, std=std, **kw)
    z = (values.double() - mean.double()) / std.double() * (torch.arange(9) < lengths[:, None])[..., None]
    expected, _ = series_to_spikes(z, lengths, **kw)
    assert torch.equal(spikes, expected)
    assert not torch.equal(spikes, series_to_spikes(values, lengths, **kw)[0])


def test_rate_of_constant_input() -> None:
    """After the onset burst, the rate is ~ y / (2 theta tau) per ms (exact: 1 / (tau ln((y+th)/(y-th))))."""
    theta, tau = 0.05, 10.0
    ys = torch.tensor([0.3, 0.5, 1.0, 2.0, -1.0])
    values = ys[:, None, None].expand(5, 100, 1).contiguous()
    spikes, _ = series_to_spikes(values, torch.full((5,), 100), dt=1.0, step_ms=2.0, theta=theta, tau=tau)
    late = spikes[100:].sum(0)  # 100 ms of steady state
    assert not late[:4, 1].any() and not late[4, 0].any()
    for y, count in zip(ys.abs().tolist(), late.sum(1).tolist()):
        exact = 100.0 / (tau * math.log((y + theta) / (y - theta)))
        approx = 100.0 * y / (2 * theta * tau)
        assert abs(count - exact) <= 1.0
        assert abs(count - approx) <= 1.0 + 0.01 * approx
    # Below threshold nothing is sent.
    quiet, _ = series_to_spikes(
        values * 0 + 0.04, torch.full((5,), 100), dt=1.0, step_ms=2.0, theta=theta, tau=tau
    )
    assert not quiet.any()


def test_encoder_matches_scalar_reference() -> None:
    """At dt = 0.05 ms every bin is one encoder step: compare with the documented recursion."""
    values, lengths = random_series(n=2, c=1, seed=4)
    theta, tau, step_ms = 0.1, 2.0, 0.5
    spikes, _ = series_to_spikes(values, lengths, dt=FINE_STEP_MS, step_ms=step_ms, theta=theta, tau=tau)
    a = math.exp(-FINE_STEP_MS / tau)
    steps_per_sample = round(step_ms / FINE_STEP_MS)
    for i in range(2):
        for channel, sign in ((0, 1.0), (1, -1.0)):  # ON, OFF
            g, expected = 0.0, []
            for k in range(spikes.shape[0]):
                j = k // steps_per_sample
                y = max(sign * float(values[i, j, 0]), 0.0) if j < lengths[i] else 0.0
                s = 1.0 if y - a * g > theta else 0.0
                g = a * g + 2 * theta * s
                expected.append(s)
            assert spikes[:, i, channel].tolist() == expected


@pytest.mark.parametrize(("fine", "factor"), [(0.1, 10), (0.05, 20), (0.25, 4)])
def test_series_spikes_are_dt_invariant(fine: float, factor: int) -> None:
    values, lengths = random_series()
    kw = dict(step_ms=1.5, theta=0.1, tau=5.0)
    coarse, coarse_mask = series_to_spikes(values, lengths, dt=fine * factor, **kw)
    fine_spikes, fine_mask = series_to_spikes(values, lengths, dt=fine, **kw)
    assert torch.equal(coarsen(fine_spikes, factor), coarse)
    assert torch.equal(coarsen(fine_mask.long(), factor) > 0, coarse_mask)
    if fine == FINE_STEP_MS:
        assert fine_spikes.max() == 1.0  # at most one spike per 0.05 ms


def test_series_errors() -> None:
    values, lengths = random_series()
    kw = dict(dt=1.0, step_ms=1.0, theta=0.1, tau=5.0)
    with pytest.raises(ValueError, match="values must be a float tensor \\[N, T, C\\]"):
        series_to_spikes(values[0], lengths, **kw)
    with pytest.raises(ValueError, match="lengths must lie in \\[1, 9\\]"):
        series_to_spikes(values, lengths + 1, **kw)
    with pytest.raises(ValueError, match="lengths must be an integer tensor \\[5\\]"):
        series_to_spikes(values, lengths.float(), **kw)
    with pytest.raises(ValueError, match="both mean and std"):
        series_to_spikes(values, lengths, mean=torch.zeros(3), **kw)
    with pytest.raises(ValueError, match="shape \\[3\\]"):
        series_to_spikes(values, lengths, mean=torch.zeros(2), std=torch.ones(2), **kw)
    with pytest.raises(ValueError, match="std must be > 0"):
        series_to_spikes(values, lengths, mean=torch.zeros(3), std=torch.zeros(3), **kw)
    with pytest.raises(ValueError, match="dt must be a finite number > 0"):
        series_to_spikes(values, lengths, **{**kw, "dt": 0.0})
    with pytest.raises(ValueError, match="NaN"):
        series_to_spikes(values * float("nan"), lengths, **kw)


# --- delay_task ------------------------------------------------------------------------------

DELAY = dict(duration_ms=200.0, delay_ms=10.0, rate_hz=40.0, smooth_tau_ms=5.0)


def test_delay_task_shapes_and_determinism() -> None:
    spikes, target = delay_task(16, dt=0.5, seed=3, **DELAY)
    assert spikes.shape == target.shape == (400, 16, 1)
    assert spikes.dtype == target.dtype == torch.float32
    again = delay_task(16, dt=0.5, seed=3, **DELAY)
    assert torch.equal(again[0], spikes) and torch.equal(again[1], target)
    assert not torch.equal(delay_task(16, dt=0.5, seed=4, **DELAY)[0], spikes)
    assert 16 * 8 * 0.7 < spikes.sum() < 16 * 8 * 1.3  # 40 Hz * 0.2 s = 8 pulses each


def test_delay_task_is_dt_invariant() -> None:
    coarse = delay_task(8, dt=1.0, seed=1, **DELAY)
    fine = delay_task(8, dt=0.1, seed=1, **DELAY)
    assert torch.equal(coarsen(fine[0], 10), coarse[0])
    # Targets are sampled at bin ends: every 10th fine sample is a coarse sample.
    torch.testing.assert_close(fine[1][9::10], coarse[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_delay_target_is_delayed_filtered_input(dt: float) -> None:
    """target[i] - a * target[i-1] is 0 unless a pulse arrived in bin i, where it is in (c a, c]."""
    spikes, target = delay_task(12, dt=dt, seed=2, **DELAY)
    a = math.exp(-dt / DELAY["smooth_tau_ms"])
    shift = round(DELAY["delay_ms"] / dt)
    arrived = torch.cat([torch.zeros(shift, 12, 1), spikes[:-shift]]).double()
    t = target.double()
    jump = t - a * torch.cat([torch.zeros(1, 12, 1, dtype=torch.float64), t[:-1]])
    quiet = arrived == 0
    assert jump[quiet].abs().max() < 1e-5
    assert (jump[~quiet] > arrived[~quiet] * a - 1e-5).all() and (
        jump[~quiet] <= arrived[~quiet] + 1e-5
    ).all()
    assert not target[:shift].any()


def test_pulse_response_peak() -> None:
    # A single pulse at 12.3 ms; the delayed target peaks delay_ms later, within one bin.
    spikes, target = delay_task(
        200, dt=0.5, seed=5, duration_ms=60.0, delay_ms=7.0, rate_hz=10.0, smooth_tau_ms=3.0
    )
    single = [i for i in range(200) if spikes[:, i].sum() == 1]
    assert single
    for i in single[:10]:
        bin_index = int(torch.nonzero(spikes[:, i, 0])[0])
        pulse_time = bin_index * 0.5  # the pulse lies in [pulse_time, pulse_time + 0.5)
        latency = pulse_response_peak(target[:, i, 0], 0.5, pulse_time)
        assert 7.0 < latency <= 7.0 + 2 * 0.5
    response = torch.tensor([0.0, 0.0, 1.0, 3.0, 3.0, 2.0])
    assert pulse_response_peak(response, 2.0, 1.0) == 4 * 2.0 - 1.0  # first maximum, bin end time
    assert math.isnan(pulse_response_peak(torch.zeros(6), 1.0, 0.0))
    with pytest.raises(ValueError, match="after the response ends"):
        pulse_response_peak(response, 1.0, 6.0)


def test_delay_task_errors() -> None:
    with pytest.raises(ValueError, match="delay_ms must be a finite number >= 0"):
        delay_task(2, dt=1.0, seed=0, **{**DELAY, "delay_ms": -1.0})
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        delay_task(0, dt=1.0, seed=0, **DELAY)
    with pytest.raises(ValueError, match="seed must be an integer"):
        delay_task(2, dt=1.0, seed=1.5, **DELAY)  # type: ignore[arg-type]


# --- coincidence_task ------------------------------------------------------------------------

COINCIDENCE = dict(duration_ms=60.0, n_pulses=3)


def oracle(spikes: torch.Tensor, dt: float, delays: tuple[float, ...]) -> torch.Tensor:
    """Class whose delay is nearest to mean(channel 1 times) - mean(channel 0 times), from bin centres."""
    centres = (torch.arange(spikes.shape[0], dtype=torch.float64) + 0.5) * dt
    s = spikes.double()
    mean_time = (s * centres[:, None, None]).sum(0) / s.sum(0)  # [n, 2]
    measured = mean_time[:, 1] - mean_time[:, 0]
    return (measured[:, None] - torch.tensor(delays)[None, :]).abs().argmin(1)


@pytest.mark.parametrize("dt", [0.1, 1.0, 2.0])
def test_coincidence_labels_recovered_exactly(dt: float) -> None:
    """Without jitter each pair is exactly delays[label] apart; binning moves a mean by < dt < 2 ms."""
    delays = (-8.0, -4.0, 0.0, 4.0, 8.0)
    spikes, labels = coincidence_task(50, dt=dt, delays_ms=delays, jitter_ms=0.0, seed=7, **COINCIDENCE)
    assert spikes.shape == (math.ceil(60 / dt), 50, 2) and labels.dtype == torch.int64
    assert torch.equal(torch.bincount(labels), torch.full((5,), 10))
    assert torch.equal(spikes.sum(0), torch.full((50, 2), 3.0))
    assert torch.equal(oracle(spikes, dt, delays), labels)


def test_coincidence_determinism_and_dt_invariance() -> None:
    coarse, labels = coincidence_task(20, dt=1.0, jitter_ms=1.0, seed=3, **COINCIDENCE)
    fine, fine_labels = coincidence_task(20, dt=0.1, jitter_ms=1.0, seed=3, **COINCIDENCE)
    assert torch.equal(labels, fine_labels) and torch.equal(coarsen(fine, 10), coarse)
    again, _ = coincidence_task(20, dt=1.0, jitter_ms=1.0, seed=3, **COINCIDENCE)
    assert torch.equal(again, coarse)
    assert torch.equal(coarse.sum(0), torch.full((20, 2), 3.0))  # same count in every class


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), factor=st.sampled_from([2, 4, 5, 10]), jitter=st.floats(0.0, 2.0))
def test_coincidence_binning_property(seed: int, factor: int, jitter: float) -> None:
    """Any seed: the fine tensor summed over groups of bins is the coarse one; counts are conserved."""
    kw = dict(delays_ms=(-3.0, 5.0), duration_ms=40.0, jitter_ms=jitter, n_pulses=2, seed=seed)
    coarse, labels = coincidence_task(6, dt=0.2 * factor, **kw)
    fine, fine_labels = coincidence_task(6, dt=0.2, **kw)
    assert torch.equal(labels, fine_labels) and torch.equal(coarsen(fine, factor), coarse)
    assert torch.equal(fine.sum(0), torch.full((6, 2), 2.0))


def test_coincidence_errors() -> None:
    with pytest.raises(ValueError, match="too short.*must exceed 24 ms"):
        coincidence_task(4, dt=1.0, duration_ms=20.0, jitter_ms=1.0, n_pulses=1, seed=0)
    with pytest.raises(ValueError, match="at least 2 distinct"):
        coincidence_task(4, dt=1.0, delays_ms=(1.0, 1.0), jitter_ms=0.0, seed=0, **COINCIDENCE)
    with pytest.raises(ValueError, match="jitter_ms must be"):
        coincidence_task(4, dt=1.0, jitter_ms=-1.0, seed=0, **COINCIDENCE)
