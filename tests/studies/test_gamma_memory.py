"""The memory measurement of the SpikingGamma study: sane numbers, like compared with like, deterministic
bytes (no timing thresholds)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from asyncsnn.studies import gamma_memory


def small_config() -> dict:
    return {**gamma_memory.DEFAULTS, "batch": 2, "hidden": 8, "warmup_steps": 4, "density": 0.3}


@pytest.mark.parametrize("method", gamma_memory.METHODS)
def test_measure_returns_sane_numbers(method):
    r = gamma_memory.measure(method, 10, small_config())
    assert r["method"] == method and r["T"] == 10
    assert math.isfinite(r["loss"]) and r["loss"] > 0
    assert r["rss_peak_mib"] >= r["rss_baseline_mib"] >= r["rss_before_warmup_mib"] > 0
    assert r["training_memory_mib"] == r["rss_peak_mib"] - r["rss_baseline_mib"]
    assert r["seconds_per_training_step"] > 0
    assert r["time_steps_per_s"] == pytest.approx(10 / r["seconds_per_training_step"])


def test_online_and_bptt_train_the_same_network_on_the_same_loss():
    # Same seed, same data: the warm-up step's loss (before any update) must agree, and with one hidden layer
    # the online gradient is exact, so the parameters after the warm-up Adam step agree too.
    cfg = small_config()
    online = gamma_memory.measure("gamma-online", 10, cfg)
    bptt = gamma_memory.measure("gamma-bptt", 10, cfg)
    assert online["warmup_loss"] == pytest.approx(bptt["warmup_loss"], rel=1e-6)
    assert online["loss"] == pytest.approx(bptt["loss"], rel=1e-4)
    assert online["parameters"] == bptt["parameters"]


def test_tensor_bytes_count_what_an_op_allocates_until_it_is_freed():
    x = torch.ones(1000)  # exists before: never counted
    with gamma_memory.TensorBytes() as counter:
        y = x * 2  # 4000 bytes
        view = y[:10]  # a view allocates nothing
        z = torch.zeros(500, dtype=torch.float64)  # 4000 bytes
        del y, view
        w = torch.ones(10)  # after y was freed: live 4040, the peak stays 8000
    assert counter.peak == 8000 and counter.live == 4040
    assert z.numel() + w.numel() == 510


def test_saved_bytes_count_what_autograd_keeps_for_backward():
    a = torch.randn(100, requires_grad=True)  # a leaf: exists before, not counted when saved
    with gamma_memory.TensorBytes() as counter:
        b = a.exp()  # saves its result (400 bytes)
        loss = (b * b).sum()  # saves b (already counted)
        assert counter.saved == 400
        loss.backward()
    assert counter.saved == 0 and counter.saved_peak == 400


def test_tensor_memory_is_deterministic_and_online_is_flat_in_T():
    cfg = small_config()
    first = gamma_memory.tensor_memory("gamma-online", 64, cfg)
    assert gamma_memory.tensor_memory("gamma-online", 64, cfg) == first
    longer = gamma_memory.tensor_memory("gamma-online", 192, cfg)
    readout_buffer = 4 * cfg["batch"] * cfg["outputs"]  # float32 readout [T, B, outputs] the call returns
    assert longer["peak_tensor_bytes"] - first["peak_tensor_bytes"] == 128 * readout_buffer
    bptt = [gamma_memory.tensor_memory("gamma-bptt", T, cfg) for T in (64, 192)]
    assert bptt[1]["saved_for_backward_bytes"] > 2 * bptt[0]["saved_for_backward_bytes"]


def test_a_worker_process_measures_one_case_from_its_own_baseline():
    ballast = torch.ones(512 * 2**20 // 4)  # a large parent: the worker must not count its peak
    ballast += 1
    parent_peak = gamma_memory.max_rss_mib()
    r = gamma_memory.run_worker("gamma-online", 8, small_config(), mmap_threshold=2**20)
    assert r["method"] == "gamma-online" and r["T"] == 8 and r["online_path"] == "fast"
    assert r["threads"] == 1 and r["rss_peak_mib"] >= r["rss_baseline_mib"] > 0
    if Path("/proc/self/status").exists():  # Linux: the peak of the worker's own address space
        assert r["rss_before_warmup_mib"] < parent_peak - 256
