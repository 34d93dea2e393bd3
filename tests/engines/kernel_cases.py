"""Networks, inputs and engine settings on which every implementation of the asynchronous engine must agree,
and a check of the Triton kernel that runs without a GPU.

``python tests/engines/kernel_cases.py`` (with ``TRITON_INTERPRET=1``) runs the CUDA kernel's code in
Triton's interpreter on CPU tensors and compares it with the reference; ``test_triton_interpreter.py`` runs it
in CI, ``test_cuda.py`` runs the same cases on a GPU.
"""

from __future__ import annotations

import torch
from torch import nn

from asyncsnn.engines import async_
from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.network import Network
from asyncsnn.neurons import LIF

CONFIGS = [
    AsyncConfig(group_size=1, scheduler="random"),
    AsyncConfig(group_size=3, scheduler="momentum"),
    AsyncConfig(group_size=2, scheduler="fifo", input_mode="scheduled"),
    AsyncConfig(group_size=64, scheduler="layer"),
    AsyncConfig(group_size=2, scheduler="random", sync_threshold=2, max_steps=3, stop_after_output=5),
    AsyncConfig(group_size=1, scheduler="momentum", refractory=False, input_mode="scheduled", max_steps=4,
                carry_over=True),
    AsyncConfig(group_size=4, scheduler="random", refractory_current="integrate", stop_after_output=0,
                seed=7),
]  # fmt: skip


def deep_net() -> Network:
    """Three dense blocks (one with a bias), both reset modes."""
    torch.manual_seed(0)
    mods = [nn.Linear(40, 24, bias=False), LIF(tau=20.0, threshold=0.4)]
    mods += [nn.Linear(24, 16), LIF(tau=20.0, threshold=0.4, reset="subtract")]
    mods += [nn.Linear(16, 5, bias=False), LIF(tau=20.0, threshold=0.4)]
    return Network(*mods, input_shape=(40,)).double()


def conv_net() -> Network:
    """Sparse blocks (a convolution, a pooling layer) before a dense readout."""
    torch.manual_seed(0)
    mods = [nn.Conv2d(2, 4, 3, bias=False), LIF(tau=20.0, threshold=0.3), nn.AvgPool2d(2), LIF(threshold=0.2)]
    mods += [nn.Flatten(), nn.Linear(4 * 2 * 2, 5), LIF(tau=20.0, threshold=0.3)]
    return Network(*mods, input_shape=(2, 6, 6)).double()


def counts(shape: tuple[int, ...], seed: int, steps: int = 12, batch: int = 3) -> torch.Tensor:
    """Event counts of 1 or 2 at 30 % of the (frame, sample, channel) positions."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(steps, batch, *shape, generator=g) < 0.3).double()
    x[x > 0] = torch.randint(1, 3, (int((x > 0).sum()),), generator=g).double()
    return x


def assert_same_run(a, b) -> None:
    """Same output spikes and records; membranes equal up to float rounding."""
    assert torch.equal(a.output.detach().cpu(), b.output.detach().cpu())
    for field in a.records.__dataclass_fields__:
        va, vb = getattr(a.records, field), getattr(b.records, field)
        if va is None:
            continue
        for p, q in zip(va if isinstance(va, list) else [va], vb if isinstance(vb, list) else [vb]):
            torch.testing.assert_close(p.double().cpu(), q.double().cpu(), equal_nan=True, msg=field)
    for p, q in zip(a.state, b.state):
        torch.testing.assert_close(p.v.cpu(), q.v.cpu(), rtol=1e-12, atol=1e-12)


def main() -> None:
    """Compare the Triton kernel (run by Triton's interpreter on CPU) with the reference on every case."""
    from asyncsnn.engines.kernels import run_triton

    labels = torch.tensor([0, 3, 1])
    for make, shape in ((deep_net, (40,)), (conv_net, (2, 6, 6))):
        net, x = make(), counts(shape, 1)
        for i, cfg in enumerate(CONFIGS):
            with torch.no_grad():
                a = async_.run(net, x, cfg, labels=labels, backend="reference")
                b = async_._run_numba(net, x, cfg, None, labels, 0, kernel=run_triton)
            assert_same_run(a, b)
            print(
                f"{make.__name__} case {i}: same ({float(a.records.total_spikes.sum()):.0f} spikes)",
                flush=True,
            )
    print("all cases agree")


if __name__ == "__main__":
    main()
