"""What every study writes: provenance, a CSV of every number, a Markdown report and figures.

A study folder holds ``provenance.json`` (configuration, seeds, package version, git commit, machine),
``results.csv`` (one row per measured cell; floats written with ``repr`` so a rerun with the same seed gives a
byte-identical file on CPU), ``report.md`` and ``*.png`` figures. Wall-clock times never go into the CSV: they
are not reproducible, so they live in the provenance file.
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from asyncsnn import __version__
from asyncsnn.training.checkpoint import _atomic_write, write_json

PRESETS = ("quick", "full")


def git_commit(path: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding ``path``.

    ``path`` defaults to the installed package's folder: a source checkout reports its commit, an installed
    wheel reports None (its version identifies it).
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def provenance(study: str, preset: str, config: dict[str, Any], seeds: Sequence[int]) -> dict[str, Any]:
    """Everything needed to regenerate a study's numbers: its configuration, seeds, versions and machine."""
    return {
        "study": study,
        "preset": preset,
        "seeds": list(seeds),
        "config": config,
        "asyncsnn_version": __version__,
        "git": git_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["asyncsnn", *sys.argv[1:]]) if sys.argv else None,
    }


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if value is None:
        return ""
    return str(value)


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` (dicts) as CSV atomically; columns in first-seen order, NaN and None as empty cells."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    path = Path(path)
    _atomic_write(path, lambda fh: fh.write(buf.getvalue().encode()))
    return path


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV written by :func:`write_csv` (all values as strings)."""
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``"mean ± std"`` over seeds (population std), or just the value for one seed; ``-`` when empty."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return fmt.format(mean)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return f"{fmt.format(mean)} ± {fmt.format(std)}"


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` atomically."""
    path = Path(path)
    _atomic_write(path, lambda fh: fh.write(text.encode()))
    return path


def provenance_section(prov: dict[str, Any]) -> str:
    """The Markdown section that says how to regenerate a report's numbers."""
    git = prov.get("git") or {}
    commit = git.get("commit") or "unknown (not a git checkout)"
    if git.get("dirty"):
        commit += " (with uncommitted changes)"
    machine = prov.get("machine", {})
    return "\n".join(
        [
            "## Provenance",
            "",
            f"- command: `{prov.get('command')}`",
            f"- preset: `{prov['preset']}`, seeds: {prov['seeds']}",
            f"- asyncsnn {prov['asyncsnn_version']}, git commit {commit}",
            f"- Python {prov['python']}, PyTorch {prov['torch']} ({prov['torch_threads']} threads)",
            f"- machine: {machine.get('platform')}, {machine.get('cpu_count')} CPUs",
            f"- started {prov['started']}; the full configuration is in `provenance.json`",
            "",
        ]
    )


__all__ = [
    "PRESETS",
    "git_commit",
    "markdown_table",
    "mean_spread",
    "provenance",
    "provenance_section",
    "read_csv",
    "write_csv",
    "write_json",
    "write_text",
]
