"""Checkpoints and result files, written atomically so an interruption never leaves a broken file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from asyncsnn.errors import AsyncSNNError


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one, never half
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor inside (dicts, lists, tuples, nested) moved to the CPU.

    Containers are rebuilt only where a tensor moved, so an all-CPU object comes back as the very same object
    (a CPU run's checkpoint is written exactly as before), and a ``state_dict`` keeps its ``_metadata``.
    """
    if isinstance(obj, torch.Tensor):
        return obj.cpu()  # the same tensor when it is already there
    if isinstance(obj, dict):
        items = {k: to_cpu(v) for k, v in obj.items()}
        if all(items[k] is v for k, v in obj.items()):
            return obj
        out = type(obj)(items)
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        values = [to_cpu(v) for v in obj]
        if all(a is b for a, b in zip(values, obj)):
            return obj
        return type(obj)(*values) if hasattr(obj, "_fields") else type(obj)(values)
    return obj


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically, its tensors on the CPU (so a CUDA run's checkpoint loads
    on a machine without a GPU)."""
    obj = to_cpu(obj)
    _atomic_write(Path(path), lambda fh: torch.save(obj, fh))


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()
    _atomic_write(Path(path), lambda fh: fh.write(data))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; clear errors for missing or corrupt files.

    Its tensors land on ``map_location`` (default: the CPU, whatever device wrote them; ``load_state_dict``
    then copies them onto the device of the module or optimizer they are loaded into)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise AsyncSNNError(f"checkpoint {path} does not exist; pass the file or the run's output folder")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises several types for a damaged file
        raise AsyncSNNError(
            f"checkpoint {path} could not be read (corrupt or not a checkpoint): {err}"
        ) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise AsyncSNNError(f"checkpoint {path} is not an asyncsnn checkpoint (no model/config)")
    return ckpt
