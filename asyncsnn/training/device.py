"""Where training computes: the ``device`` setting (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``).

The spelling is checked when a :class:`~asyncsnn.config.TrainConfig` is built (:func:`check_device_name`); the
hardware only when a run starts (:func:`resolve_device`), so that a configuration saved by a CUDA run, in a
checkpoint say, still loads on a machine without a GPU.

Random generators (shuffling, input encoding) stay on the CPU whatever the device, so the same seed gives the
same batches everywhere; only the network, the batches and the engine work move.
"""

from __future__ import annotations

import os
import re

import torch

from asyncsnn.errors import ConfigError

DEVICES = ("cpu", "cuda", "cuda:N", "auto")
_PATTERN = re.compile(r"cpu|cuda|cuda:\d+|auto")


def check_device_name(name: object) -> None:
    """Raise :class:`ConfigError` unless ``name`` is one of ``cpu``, ``cuda``, ``cuda:N``, ``auto``."""
    if not isinstance(name, str) or not _PATTERN.fullmatch(name):
        raise ConfigError(
            f"device: {name!r} is not allowed; use 'cpu', 'cuda', 'cuda:N' (N: a GPU index such as "
            "cuda:0) or 'auto' (cuda if this machine has a GPU, else cpu)"
        )


def _torchrun_local_rank() -> int | None:
    """``LOCAL_RANK`` of a process that ``torchrun`` started (``None`` outside torchrun)."""
    if "WORLD_SIZE" not in os.environ or "LOCAL_RANK" not in os.environ:
        return None
    return int(os.environ["LOCAL_RANK"])


def resolve_device(name: str) -> torch.device:
    """The :class:`torch.device` to train on for the setting ``name``; a clear error if this machine lacks it.

    ``auto`` is ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``. Under ``torchrun`` ``cuda`` means
    ``cuda:LOCAL_RANK`` (one GPU per process); ``cuda:N`` is refused there when several processes run, as they
    would all share GPU N.
    """
    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device: {name!r} but torch.cuda.is_available() is False: install a CUDA build of PyTorch "
            f"(torch {torch.__version__} is installed) or use --device cpu"
        )
    count = torch.cuda.device_count()
    local_rank = _torchrun_local_rank()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if name == "cuda":
        if local_rank is None:
            return torch.device("cuda", torch.cuda.current_device())
        if local_rank >= count:
            raise ConfigError(
                f"device: 'cuda' under torchrun puts process LOCAL_RANK={local_rank} on cuda:{local_rank}, "
                f"but this machine has {count} CUDA device(s); start at most {count} process(es) per node "
                f"(torchrun --nproc_per_node={count})"
            )
        return torch.device("cuda", local_rank)
    index = int(name.split(":")[1])
    if index >= count:
        raise ConfigError(
            f"device: {name!r} but this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1}); "
            "use an index below that or --device cuda"
        )
    if local_rank is not None and world_size > 1:
        raise ConfigError(
            f"device: {name!r} would put all {world_size} torchrun processes on one GPU; use --device cuda "
            "(each process takes cuda:LOCAL_RANK)"
        )
    return torch.device("cuda", index)


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (or buffer); CPU for a module without tensors."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")
