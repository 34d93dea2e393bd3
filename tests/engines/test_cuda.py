"""CUDA runs give the CPU results (up to float summation order). Skipped cleanly without a GPU."""

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
    b = async_.run(gpu, x.cuda(), cfg)
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
