"""Rate and latency encoders, to_unit, and the Encoder factory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asyncsnn.data import (
    ENCODERS,
    Encoder,
    latency_encode,
    load_dataset,
    make_encoder,
    rate_encode,
    to_unit,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ramp() -> torch.Tensor:
    """uint8 [1, 16, 16] holding every grey level 0..255 once."""
    return torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)


def test_to_unit() -> None:
    u = to_unit(torch.tensor([[0, 51, 255]], dtype=torch.uint8))
    assert u.dtype == torch.float32 and torch.equal(u, torch.tensor([[0.0, 0.2, 1.0]]))
    assert torch.equal(to_unit(np.array([0.5], dtype=np.float64)), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="NaN"):
        to_unit(torch.tensor([0.1, math.nan]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_unit(torch.tensor([0.0, 1.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_unit(torch.tensor([-0.1]))
    with pytest.raises(ValueError, match="uint8 or floating"):
        to_unit(torch.tensor([1, 2], dtype=torch.int64))


def test_rate_deterministic_and_binary() -> None:
    images = load_dataset("builtin", "test").images[:8]
    a = rate_encode(images, 25, gen(3))
    b = rate_encode(images, 25, gen(3))
    c = rate_encode(images, 25, gen(4))
    assert a.shape == (25, 8, 1, 28, 28) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0}


def test_rate_matches_intensity() -> None:
    T = 4000
    spikes = rate_encode(ramp(), T, gen(1))
    rate = spikes.mean(dim=0)[0, 0]
    p = torch.arange(256, dtype=torch.float32).reshape(16, 16) / 255
    # 5 binomial standard deviations at worst-case p = 0.5.
    assert float((rate - p).abs().max()) < 5 * math.sqrt(0.25 / T)
    assert float(rate[0, 0]) == 0.0 and float(rate[-1, -1]) == 1.0


def test_rate_gain_saturates() -> None:
    spikes = rate_encode(ramp(), 500, gen(2), gain=2.0)
    rate = spikes.mean(dim=0).flatten()
    assert torch.all(rate[128:] == 1.0)  # 2 * x >= 1 from grey level 128 up
    assert abs(float(rate[64]) - 2 * 64 / 255) < 0.1


def test_latency_linear_exact() -> None:
    T = 11
    images = torch.tensor([[[0, 2, 3, 128, 255]]], dtype=torch.uint8)  # threshold 0.01 ~ 2.55
    spikes = latency_encode(images, T)
    assert spikes.shape == (T, 1, 1, 1, 5)
    counts = spikes.sum(dim=0).flatten()
    assert counts.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    times = spikes.argmax(dim=0).flatten()
    x = images.flatten().double() / 255
    assert times[2:].tolist() == torch.round((1 - x[2:]) * (T - 1)).long().tolist()
    assert times[4] == 0


@pytest.mark.parametrize("mode", ["linear", "log"])
def test_latency_one_spike_brighter_earlier(mode: str) -> None:
    T = 30
    spikes = latency_encode(ramp(), T, threshold=0.05, mode=mode)
    x = torch.arange(256) / 255
    counts = spikes.sum(dim=0).flatten()
    assert torch.equal(counts, (x > 0.05).float())
    times = spikes.argmax(dim=0).flatten()[x > 0.05]
    assert torch.all(times[1:] <= times[:-1])  # brighter never later
    assert int(times[-1]) == 0 and int(times.max()) <= T - 1
    assert int(times[0]) > T // 2  # the dimmest pixel above threshold fires late


def test_latency_log_tau() -> None:
    x = torch.tensor([[[1.0, 0.5, 0.2, 0.02]]])
    spikes = latency_encode(x, 50, threshold=0.01, mode="log", tau=100.0)
    times = spikes.argmax(dim=0).flatten().tolist()
    r = [math.log(v / (v - 0.01)) for v in (1.0, 0.5, 0.2, 0.02)]
    assert times == [min(49, round(100 * (ri - r[0]))) for ri in r]


def test_latency_log_default_normalisation() -> None:
    T, th = 40, 0.01
    x_lo = th + (1 - th) / 255  # mapped to the last step
    values = [1.0, 0.6, 0.1, 0.03, x_lo, 0.0105]
    spikes = latency_encode(torch.tensor([[values]]), T, threshold=th, mode="log")
    times = spikes.argmax(dim=0).flatten().tolist()
    r = [math.log(v / (v - th)) for v in values]
    tau = (T - 1) / (r[4] - r[0])
    expected = [min(T - 1, round(tau * (ri - r[0]))) for ri in r]
    assert times == expected and times[0] == 0 and times[4] == T - 1 and times[5] == T - 1
    assert 0 < times[2] < times[3] < T - 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: rate_encode(torch.zeros(2, 3, dtype=torch.uint8), 5), r"\[B, H, W\]"),
        (lambda: rate_encode(torch.zeros(1, 2, 3, 4, dtype=torch.uint8), 5), r"\[B, H, W\]"),
        (lambda: rate_encode(torch.zeros(0, 2, 3, dtype=torch.uint8), 5), r"\[B, H, W\]"),
        (lambda: rate_encode(torch.full((1, 2, 2), math.nan), 5), "NaN"),
        (lambda: rate_encode(torch.zeros(1, 2, 2), 0), "num_steps"),
        (lambda: rate_encode(torch.zeros(1, 2, 2), -3), "num_steps"),
        (lambda: rate_encode(torch.zeros(1, 2, 2), 2.5), "num_steps"),
        (lambda: rate_encode(torch.zeros(1, 2, 2), 5, gain=0.0), "gain"),
        (lambda: latency_encode(torch.zeros(1, 2, 2), 0), "num_steps"),
        (lambda: latency_encode(torch.zeros(1, 2, 2), 5, threshold=1.0), "threshold"),
        (lambda: latency_encode(torch.zeros(1, 2, 2), 5, threshold=math.nan), "threshold"),
        (lambda: latency_encode(torch.zeros(1, 2, 2), 5, mode="exp"), "linear, log"),
        (lambda: latency_encode(torch.zeros(1, 2, 2), 5, mode="log", tau=-1.0), "tau"),
        (lambda: latency_encode(torch.full((1, 2, 2), 2.0), 5), r"\[0, 1\]"),
    ],
)
def test_bad_arguments(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "name, shape", [("rate", (1, 28, 28)), ("latency", (1, 28, 28)), ("saccade", (2, 34, 34))]
)
def test_make_encoder(name: str, shape: tuple[int, int, int]) -> None:
    enc = make_encoder(name, 12)
    assert isinstance(enc, Encoder) and enc.name == name and enc.num_steps == 12
    assert enc.input_shape == shape
    images = load_dataset("builtin", "test").images[:3]
    out = enc(images, gen(5))
    assert out.shape == (12, 3, *shape) and out.dtype == torch.float32
    assert torch.equal(out, enc(images, gen(5)))
    assert float(out.sum()) > 0


def test_make_encoder_options() -> None:
    assert ENCODERS == ("rate", "latency", "saccade")
    enc = make_encoder("latency", 8, mode="log", threshold=0.1)
    images = load_dataset("builtin", "test").images[:2]
    assert torch.equal(enc(images), latency_encode(images, 8, threshold=0.1, mode="log"))
    assert make_encoder("rate", 4, image_size=(16, 16)).input_shape == (1, 16, 16)
    assert make_encoder("saccade", 4, image_size=(10, 12)).input_shape == (2, 16, 18)


@pytest.mark.parametrize(
    "name, steps, options, match",
    [
        ("poisson", 5, {}, "rate, latency, saccade"),
        ("rate", 0, {}, "num_steps"),
        ("rate", 5, {"gain": -1.0}, "gain"),
        ("rate", 5, {"threshold": 0.1}, "threshold.*allowed: gain"),
        ("latency", 5, {"mode": "cubic"}, "mode"),
        ("latency", 5, {"threshold": "high"}, "threshold"),
        ("saccade", 5, {"substeps": 0}, "substeps"),
        ("saccade", 5, {"contrast": 0.0}, "contrast"),
        ("saccade", 5, {"saccade_ms": math.inf}, "saccade_ms"),
        ("rate", 5, {"image_size": (0, 28)}, "image_size"),
    ],
)
def test_make_encoder_rejects(name: str, steps: int, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_encoder(name, steps, **options)


def test_encoder_checks_image_size() -> None:
    enc = make_encoder("rate", 3)
    with pytest.raises(ValueError, match=r"\[B, 28, 28\]"):
        enc(torch.zeros(2, 20, 20, dtype=torch.uint8))


def test_make_encoder_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_encoder("rate", 5, gain=0.5)
    assert torch.equal(torch.rand(3), expected)
