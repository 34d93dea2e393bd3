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


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    _atomic_write(Path(path), lambda fh: torch.save(obj, fh))


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()
    _atomic_write(Path(path), lambda fh: fh.write(data))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; clear errors for missing or corrupt files."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise AsyncSNNError(f"checkpoint {path} does not exist; pass the file or the run's output folder")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for a damaged file
        raise AsyncSNNError(
            f"checkpoint {path} could not be read (corrupt or not a checkpoint): {err}"
        ) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise AsyncSNNError(f"checkpoint {path} is not an asyncsnn checkpoint (no model/config)")
    return ckpt
