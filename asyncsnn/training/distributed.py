"""Multi-process data-parallel training, launched by ``torchrun`` (one process per CPU share or per GPU).

With ``device="cuda"`` each process trains on ``cuda:LOCAL_RANK`` and the processes talk over nccl; on the CPU
over gloo (:func:`backend_for`). Every tensor a collective sees lives on the process's device.

Every process holds the whole network and runs the same epochs in the same shuffled order; each trains on its
contiguous slice of every global batch (:meth:`World.shard`). Just before every optimizer step the gradients
are summed over the processes, each weighted by its share of the batch (:func:`synced_gradients`), so every
process takes the step that one process would take on the whole global batch.

Gradients are reduced explicitly in an optimizer step hook rather than by ``DistributedDataParallel``: the
SpikingGamma trainer writes ``.grad`` itself (DDP's backward hooks would not see it) and, training online,
steps several times per batch; slices may differ in size or be empty. A hook on the optimizer covers every
path (both engines, the compiled asynchronous training path included) in one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: ``rank`` in ``0 .. size - 1``."""

    rank: int = 0
    size: int = 1
    #: the process group's backend (``"gloo"``, ``"nccl"``); empty when no group was initialised
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and metrics, logs and shows progress bars."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items; parts differ in size by at most one (may be empty)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (float64)."""
        if self.size == 1:
            return list(values)
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.tolist()

    @property
    def device(self) -> torch.device:
        """Where this rank's collective tensors live: its current GPU under nccl, else the CPU."""
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA tensors, ``gloo`` for CPU tensors."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_from_env(device: torch.device | None = None) -> World:
    """The :class:`World` that ``torchrun`` set up (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_*``).

    Initialises the default process group once (later calls reuse it), with :func:`backend_for` ``device``
    (default: CPU, gloo); for a CUDA ``device`` (see :func:`asyncsnn.training.device.resolve_device`, which
    gives ``cuda:LOCAL_RANK`` under torchrun) that GPU becomes the process's current one, as nccl needs.
    Without ``WORLD_SIZE`` or with ``WORLD_SIZE=1`` nothing is initialised and the run is an ordinary
    single-process run, except on CUDA under torchrun (``MASTER_ADDR`` set), where a one-process nccl group is
    made, so that ``torchrun --nproc_per_node=1`` exercises the same path as several GPUs.
    """
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()))
    device = device or torch.device("cpu")
    size = int(os.environ.get("WORLD_SIZE", "1"))
    one_gpu_under_torchrun = (
        size == 1 and device.type == "cuda" and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ
    )
    if size <= 1 and not one_gpu_under_torchrun:
        return World()
    if device.type == "cuda":
        torch.cuda.set_device(device if device.index is not None else int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend_for(device))
    return World(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()))


def shutdown() -> None:
    """Destroy the process group if :func:`init_from_env` created one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class GradientSync:
    """Optimizer step pre-hook: replaces every gradient by ``sum over ranks of weight_r * grad_r``.

    Set ``weight`` to this rank's share of the global batch (slice size / batch size) before the batch: each
    rank's loss is a mean over its slice, so the weighted sum is the mean over the global batch. A parameter
    keeps ``grad = None`` only if it has none on every rank (Adam skips those, as in one process).
    """

    def __init__(self) -> None:
        self.weight = 1.0

    def __call__(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        if not params:
            return
        # One float64 buffer for all gradients plus one presence flag per parameter: a single all_reduce.
        parts = [
            (
                p.grad.to(torch.float64) * self.weight
                if p.grad is not None
                else torch.zeros_like(p, dtype=torch.float64)
            ).reshape(-1)
            for p in params
        ]
        present = torch.tensor([float(p.grad is not None) for p in params], dtype=torch.float64)
        flat = torch.cat([*parts, present.to(parts[0].device)])
        dist.all_reduce(flat)
        offset = 0
        for p, seen in zip(params, flat[-len(params) :].tolist()):
            chunk = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
            p.grad = chunk.to(p.dtype) if seen > 0 else None


@contextmanager
def synced_gradients(optimizer: torch.optim.Optimizer, world: World) -> Iterator[GradientSync]:
    """Reduce gradients over ``world`` before every ``optimizer.step()`` inside the block (no-op alone)."""
    sync = GradientSync()
    if world.size == 1:
        yield sync
        return
    handle = optimizer.register_step_pre_hook(sync)
    try:
        yield sync
    finally:
        handle.remove()
