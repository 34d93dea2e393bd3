"""Shared test fixtures."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def load_script() -> Callable[[str], ModuleType]:
    """Import a script of the repository (``benchmarks/...``, ``experiments/...``) as a module."""

    def load(relative: str) -> ModuleType:
        path = ROOT / relative
        spec = importlib.util.spec_from_file_location(path.stem + "_script", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def _write_fake_vowels(folder: Path, seed: int = 0) -> None:
    """JapaneseVowels-shaped files (270 / 370 series, 12 channels, 9 classes) whose class sets one channel."""
    import numpy as np

    from asyncsnn.data.timeseries import JAPANESE_VOWELS_FILES

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for fname, n in JAPANESE_VOWELS_FILES.values():
        lines = [
            "@problemName JapaneseVowels",
            "@dimensions 12",
            "@classLabel true 1 2 3 4 5 6 7 8 9",
            "@data",
        ]
        for i in range(n):
            label = i % 9
            x = rng.normal(scale=0.3, size=(12, 4 + i % 3))
            x[label] += 2.0
            lines.append(":".join(",".join(f"{v:.3f}" for v in row) for row in x) + f":{label + 1}")
        (folder / fname).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def write_fake_vowels() -> Callable[..., None]:
    """``write_fake_vowels(folder, seed=0)``: JapaneseVowels-shaped files in ``folder`` (see above)."""
    return _write_fake_vowels
