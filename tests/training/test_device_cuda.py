"""Training with ``device="cuda"``: the CPU's weights, nccl under torchrun, checkpoints that move.

Skipped without a GPU. In float64 the only difference between the devices is the order of floating-point
sums (~1e-16 relative), so the weights after an epoch agree to a tight tolerance unless a membrane lands
within that of its threshold, which these sizes make very unlikely.
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from asyncsnn.config import TrainConfig
from asyncsnn.training.trainer import CHECKPOINT, METRICS, prepare, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

TINY = dict(
    dataset="builtin", encoder="rate", num_steps=6, architecture="16", epochs=1, batch_size=32, lr=5e-3,
    train_limit=96, test_limit=32, seed=5,
)  # fmt: skip
# The asynchronous engine's reference path, momentum scheduler, F = 2 events per sample per micro-step.
ASYNC = dict(engine="async", bias=False, scheduler="momentum", group_size=2)
TOLERANCE = dict(atol=1e-9, rtol=0.0)


class Float64:
    """Wraps an encoder so that its batches are float64 (encoded on the CPU as always, then cast)."""

    def __init__(self, encoder) -> None:
        self.encoder, self.input_shape = encoder, encoder.input_shape

    def __call__(self, images, generator=None):
        return self.encoder(images, generator).double()


def float64_experiment(config: TrainConfig):
    exp = prepare(config)
    exp.network.double()
    exp.encoder = Float64(exp.encoder)
    return exp


def train_float64(tmp_path, name: str, device: str, resume: bool = False, **overrides):
    config = TrainConfig(**{**TINY, **overrides, "device": device, "out": str(tmp_path / name)})
    exp = float64_experiment(config)
    return train(config, prepared=exp, resume=resume, progress=False, log=lambda _: None)


def assert_same_training(cpu, cuda) -> None:
    for name, value in cpu.network.state_dict().items():
        on_gpu = cuda.network.state_dict()[name]
        assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float64, name
        torch.testing.assert_close(on_gpu.cpu(), value, **TOLERANCE, msg=name)
    for h_cpu, h_cuda in zip(cpu.history, cuda.history, strict=True):
        assert h_cuda["train"] == pytest.approx(h_cpu["train"], abs=1e-9)
        assert h_cuda["test"] == pytest.approx(h_cpu["test"], abs=1e-9, nan_ok=True)


@pytest.fixture
def reference_engine(monkeypatch):
    """The asynchronous engine's plain-PyTorch path on the CPU too (numba, if installed, is not used)."""
    import asyncsnn.engines.kernels

    monkeypatch.setattr(asyncsnn.engines.kernels, "numba_available", lambda: False)


def test_sync_engine_trains_the_cpu_weights_on_cuda(tmp_path):
    cpu = train_float64(tmp_path, "cpu", "cpu")
    cuda = train_float64(tmp_path, "cuda", "cuda")
    assert_same_training(cpu, cuda)
    assert cpu.history[-1]["test"]["spikes"] > 0  # the network did something


def test_async_engine_trains_the_cpu_weights_on_cuda(tmp_path, reference_engine):
    cpu = train_float64(tmp_path, "cpu", "cpu", **ASYNC)
    cuda = train_float64(tmp_path, "cuda", "cuda", **ASYNC)
    assert_same_training(cpu, cuda)
    assert cpu.history[-1]["test"]["micro_steps"] > 0  # asynchronous records were taken


def test_async_engine_trains_on_cuda_through_the_compiled_kernel(tmp_path, monkeypatch):
    """With numba a CUDA run trains through the compiled kernel on host copies: the CPU's weights."""
    pytest.importorskip("numba")
    from asyncsnn.engines import async_

    devices = []  # the device of every compiled training call
    original = async_._run_numba_train

    def spy(network, *args, **kwargs):
        devices.append(next(network.parameters()).device.type)
        return original(network, *args, **kwargs)

    monkeypatch.setattr(async_, "_run_numba_train", spy)
    cpu = train_float64(tmp_path, "cpu", "cpu", **ASYNC)
    cuda = train_float64(tmp_path, "cuda", "cuda", **ASYNC)
    assert "cpu" in devices and "cuda" in devices
    assert_same_training(cpu, cuda)


def test_spiking_gamma_online_training_on_cuda_matches_the_cpu(tmp_path, write_fake_vowels):
    """The closed-form online path (gamma_fast) and the per-step loss work on the data's device."""
    write_fake_vowels(tmp_path / "data" / "japanese-vowels")
    gamma = dict(
        model="gamma", training="online", dataset="japanese-vowels", data_dir=str(tmp_path / "data"),
        architecture="16", series_step=3.0, loss_start=6.0, gamma_threshold=0.2, batch_size=16,
        train_limit=32, test_limit=16, lr=0.02, update_every=4,
    )  # fmt: skip
    cpu = train_float64(tmp_path, "cpu", "cpu", **gamma)
    cuda = train_float64(tmp_path, "cuda", "cuda", **gamma)
    assert_same_training(cpu, cuda)


def test_a_cuda_checkpoint_holds_cpu_tensors_and_resumes_on_the_cpu(tmp_path):
    full = train_float64(tmp_path, "full", "cpu", epochs=2)
    train_float64(tmp_path, "part", "cuda", epochs=1)
    raw = torch.load(tmp_path / "part" / CHECKPOINT, weights_only=False)  # no map_location: as saved
    assert raw["config"]["device"] == "cuda"
    assert all(t.device.type == "cpu" for t in raw["model"].values())
    state = raw["optimizer"]["state"].values()
    assert all(t.device.type == "cpu" for s in state for t in s.values() if isinstance(t, torch.Tensor))
    resumed = train_float64(tmp_path, "part", "cpu", resume=True, epochs=2)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    for name, value in full.network.state_dict().items():
        assert resumed.network.state_dict()[name].device.type == "cpu"
        torch.testing.assert_close(resumed.network.state_dict()[name], value, **TOLERANCE, msg=name)


def test_a_cpu_checkpoint_resumes_on_cuda(tmp_path):
    full = train_float64(tmp_path, "full", "cpu", epochs=2)
    train_float64(tmp_path, "part", "cpu", epochs=1)
    resumed = train_float64(tmp_path, "part", "cuda", resume=True, epochs=2)
    for name, value in full.network.state_dict().items():
        torch.testing.assert_close(resumed.network.state_dict()[name].cpu(), value, **TOLERANCE, msg=name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_with_device_cuda_uses_nccl(tmp_path):
    """``torchrun --nproc_per_node=1 -m asyncsnn train --device cuda``: one process, one GPU, a nccl group."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}", "-m", "asyncsnn", "train", *flags, "--device", "cuda",
        "--out", str(tmp_path / "run"), "--no-plots", "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr[-3000:]
    first = next(line for line in done.stdout.splitlines() if line.startswith("training 16 on builtin"))
    assert "(nccl)" in first and "on cuda:0" in first, done.stdout[-2000:]
    doc = json.loads((tmp_path / "run" / METRICS).read_text())
    assert doc["config"]["device"] == "cuda" and doc["epochs_completed"] == 1
    assert torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)["model"]["body.1.weight"].is_cpu
