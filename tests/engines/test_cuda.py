"""CUDA runs give the CPU results (up to float summation order). Skipped cleanly without a GPU."""

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from asyncsnn.engines import async_, sync
from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.network import Network
from asyncsnn.neurons import LIF

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def net():
    torch.manual_seed(0)
    mods = [nn.Linear(40, 24, bias=False), LIF(tau=20.0, threshold=0.4)]
    mods += [nn.Linear(24, 5, bias=False), LIF(tau=20.0, threshold=0.4)]
    return Network(*mods, input_shape=(40,)).double()


@pytest.mark.parametrize("scheduler", ["random", "momentum", "fifo", "layer"])
def test_async_reference_on_cuda_equals_cpu(scheduler):
    cpu = net()
    gpu = net().cuda()
    x = (torch.rand(20, 4, 40, generator=torch.Generator().manual_seed(1)) < 0.2).double()
    cfg = AsyncConfig(group_size=3, scheduler=scheduler)
    a = async_.run(cpu, x, cfg)
    b = async_.run(gpu, x.cuda(), cfg, backend="reference")
    assert torch.equal(a.output.detach(), b.output.detach().cpu())
    w = torch.randn(a.output.shape, dtype=torch.float64)
    ga = torch.autograd.grad((a.output * w).sum(), list(cpu.parameters()))
    gb = torch.autograd.grad((b.output * w.cuda()).sum(), list(gpu.parameters()))
    for x1, x2 in zip(ga, gb):
        torch.testing.assert_close(x1, x2.cpu(), rtol=1e-9, atol=1e-12)


def test_sync_engine_on_cuda_equals_cpu():
    cpu, gpu = net(), net().cuda()
    x = (torch.rand(30, 4, 40, generator=torch.Generator().manual_seed(2)) < 0.2).double()
    assert torch.equal(sync.run(cpu, x).output, sync.run(gpu, x.cuda()).output.cpu())


# ----- the CUDA kernel (Triton) -----------------------------------------------------------------------------

_spec = importlib.util.spec_from_file_location("kernel_cases", Path(__file__).with_name("kernel_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)


@pytest.mark.parametrize(
    "make, shape", [(cases.deep_net, (40,)), (cases.conv_net, (2, 6, 6))], ids=["dense", "conv"]
)
@pytest.mark.parametrize("cfg", cases.CONFIGS, ids=range(len(cases.CONFIGS)))
def test_triton_kernel_on_cuda_equals_reference_on_cpu(make, shape, cfg):
    cpu, gpu = make(), make().cuda()
    x, labels = cases.counts(shape, 1), torch.tensor([0, 3, 1])
    with torch.no_grad():
        a = async_.run(cpu, x, cfg, labels=labels, backend="reference")
        b = async_.run(gpu, x.cuda(), cfg, labels=labels.cuda(), backend="triton")
    assert b.output.is_cuda
    cases.assert_same_run(a, b)


def test_auto_backend_picks_triton_on_cuda_and_the_compiled_training_path_for_gradients():
    gpu = cases.deep_net().cuda()
    x = cases.counts((40,), 3).cuda()
    cfg = AsyncConfig(group_size=2, scheduler="momentum")
    with torch.no_grad():
        assert async_._choose_backend(gpu, x, cfg, False, "auto") == "triton"
        fast = async_.run(gpu, x, cfg)
    trains_on = "numba-train" if importlib.util.find_spec("numba") else "reference"
    assert async_._choose_backend(gpu, x, cfg, False, "auto") == trains_on  # parameters need a gradient
    slow = async_.run(gpu, x, cfg, backend="reference")
    cases.assert_same_run(slow, fast)
    with torch.no_grad(), pytest.raises(ValueError, match="on CUDA it only trains"):
        async_.run(gpu, x, cfg, backend="numba")


@pytest.mark.parametrize(
    "make, shape", [(cases.deep_net, (40,)), (cases.conv_net, (2, 6, 6))], ids=["dense", "conv"]
)
@pytest.mark.parametrize("cfg", cases.CONFIGS[:5], ids=range(5))
def test_training_on_cuda_runs_the_compiled_kernel_on_host_copies(make, shape, cfg):
    """A CUDA network trains through the numba training kernel (parameters copied to the host, output and
    gradients copied back): the CPU's results, and the reference's gradients on the GPU."""
    pytest.importorskip("numba")
    cpu, gpu = make(), make().cuda()
    x, labels = cases.counts(shape, 1), torch.tensor([0, 3, 1])
    a = async_.run(cpu, x, cfg, labels=labels, backend="numba")
    b = async_.run(gpu, x.cuda(), cfg, labels=labels.cuda())  # auto: the compiled training path
    ref = async_.run(gpu, x.cuda(), cfg, labels=labels.cuda(), backend="reference")
    assert b.output.is_cuda and b.output.requires_grad
    assert b.records.micro_steps.is_cuda and b.state[0].v.is_cuda
    cases.assert_same_run(a, b)
    cases.assert_same_run(ref, b)
    w = torch.randn(a.output.shape, dtype=a.output.dtype, generator=torch.Generator().manual_seed(4))
    g_cpu = torch.autograd.grad((a.output * w).sum(), list(cpu.parameters()))
    g_gpu = torch.autograd.grad((b.output * w.cuda()).sum(), list(gpu.parameters()))
    g_ref = torch.autograd.grad((ref.output * w.cuda()).sum(), list(gpu.parameters()))
    assert any(g.abs().max() > 0 for g in g_cpu)
    for p, q, r in zip(g_cpu, g_gpu, g_ref):
        assert q.is_cuda and q.dtype == p.dtype
        torch.testing.assert_close(q.cpu(), p, rtol=1e-12, atol=1e-12)  # the same kernel on the same numbers
        torch.testing.assert_close(q, r, rtol=1e-9, atol=1e-12)


def test_spike_trains_on_cuda_run_on_the_reference_and_the_triton_kernel_refuses_them():
    gpu = cases.deep_net().cuda()
    x = cases.counts((40,), 3)
    cfg = AsyncConfig(group_size=2, scheduler="momentum")
    with torch.no_grad():
        assert async_._choose_backend(gpu, x.cuda(), cfg, False, "auto", None, True) == "reference"
        a = async_.run(cases.deep_net(), x, cfg, backend="reference", record_spikes=True)
        b = async_.run(gpu, x.cuda(), cfg, record_spikes=True)
        with pytest.raises(ValueError, match="record_spikes"):
            async_.run(gpu, x.cuda(), cfg, backend="triton", record_spikes=True)
        assert async_.run(gpu, x.cuda(), cfg, backend="triton").spike_trains is None
    for p, q in zip(a.spike_trains, b.spike_trains):
        assert q.is_cuda and torch.equal(p, q.cpu())


def test_triton_kernel_takes_event_lists_a_start_state_and_a_sample_offset():
    from asyncsnn.engines.events import SparseFrames

    gpu = cases.deep_net().cuda()
    x = cases.counts((40,), 4)
    cfg = AsyncConfig(group_size=3, scheduler="random", seed=3)
    with torch.no_grad():
        first = async_.run(gpu, x.cuda(), cfg, backend="reference")
        a = async_.run(gpu, x.cuda(), cfg, state=first.state, backend="reference", sample_offset=5)
        b = async_.run(gpu, SparseFrames.from_dense(x), cfg, state=first.state, sample_offset=5)
    assert b.output.is_cuda  # event lists go to the network's device, through the kernel
    cases.assert_same_run(a, b)


def test_triton_kernel_float32_matches_numba():
    pytest.importorskip("numba")
    cpu, gpu = cases.deep_net().float(), cases.deep_net().float().cuda()
    x = cases.counts((40,), 5).float()
    cfg = AsyncConfig(group_size=1, scheduler="random")
    with torch.no_grad():
        a = async_.run(cpu, x, cfg, backend="numba")
        b = async_.run(gpu, x.cuda(), cfg, backend="triton")
    # float32: an input frame's rows are summed in another order, so a rare spike may move
    diff = (a.output - b.output.cpu()).abs().sum() / a.output.sum().clamp(min=1)
    assert diff < 0.02
