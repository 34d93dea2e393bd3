"""Reproducible studies (``asyncsnn reproduce ...``): each writes a CSV, a Markdown report and figures.

A study is a function ``run(preset, *, data_dir, out, seeds, progress) -> Path`` (the report it wrote).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def _layer_sync() -> Callable[..., Path]:
    from asyncsnn.studies.layer_sync import run

    return run


def _gamma() -> Callable[..., Path]:
    from asyncsnn.studies.gamma import run

    return run


#: study name -> loader of its ``run`` function (imported lazily: the CLI starts fast)
STUDIES: dict[str, Callable[[], Callable[..., Path]]] = {"layer-sync": _layer_sync, "gamma": _gamma}
