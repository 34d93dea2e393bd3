"""benchmarks/gamma.py on tiny sequences: the measurement runs and compares like with like (no timings)."""

from __future__ import annotations

import math

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/gamma.py")


def small_config(bench) -> dict:
    cfg = dict(bench.DEFAULTS)
    cfg.update(batch=2, hidden=8, warmup_steps=4, density=0.3)
    return cfg


@pytest.mark.parametrize("method", ["gamma-online", "gamma-bptt", "lif-bptt"])
def test_measure_returns_sane_numbers(bench, method):
    r = bench.measure(method, 10, small_config(bench))
    assert r["method"] == method and r["T"] == 10
    assert math.isfinite(r["loss"]) and r["loss"] > 0
    assert r["rss_peak_mib"] >= r["rss_baseline_mib"] >= r["rss_before_warmup_mib"] > 0
    assert r["training_memory_mib"] == r["rss_peak_mib"] - r["rss_baseline_mib"]
    assert r["seconds_per_training_step"] > 0
    assert r["time_steps_per_s"] == pytest.approx(10 / r["seconds_per_training_step"])


def test_online_and_bptt_train_the_same_network_on_the_same_loss(bench):
    # Same seed, same data: the warm-up step's loss (before any update) must agree, and with one hidden layer
    # the online gradient is exact, so the parameters after the warm-up Adam step agree too.
    cfg = small_config(bench)
    online = bench.measure("gamma-online", 10, cfg)
    bptt = bench.measure("gamma-bptt", 10, cfg)
    assert online["warmup_loss"] == pytest.approx(bptt["warmup_loss"], rel=1e-6)
    assert online["loss"] == pytest.approx(bptt["loss"], rel=1e-4)
    assert online["parameters"] == bptt["parameters"]
