"""Figures for runs (needs the ``plot`` extra: ``pip install 'asyncsnn[plot]'``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_training(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Loss and accuracy per epoch (train and test), and test spikes per sample."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    axes[0].plot(epochs, [h["train"]["loss"] for h in history], "o-", label="train")
    axes[0].plot(epochs, [h["test"]["loss"] for h in history], "s-", label="test")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    axes[1].plot(epochs, [100 * h["train"]["accuracy"] for h in history], "o-", label="train")
    axes[1].plot(epochs, [100 * h["test"]["accuracy"] for h in history], "s-", label="test")
    axes[1].set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    mean = [h["test"]["spikes"] for h in history]
    std = [h["test"]["spikes_std"] for h in history]
    axes[2].errorbar(epochs, mean, yerr=std, fmt="o-", capsize=3)
    axes[2].set(xlabel="epoch", ylabel="spikes / sample", title="test spikes (mean ± std)")
    for ax in axes[:2]:
        ax.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _save(fig, path)


def plot_raster(spikes: list[torch.Tensor], path: str | Path, title: str = "") -> Path:
    """Spike raster of one sample: one panel per population, ``spikes[i]`` is ``[T, n_i]``."""
    plt = _pyplot()
    n = len(spikes)
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.2 + 1.6 * n), sharex=True, squeeze=False)
    for i, (ax, s) in enumerate(zip(axes[:, 0], spikes)):
        t, idx = torch.nonzero(s.reshape(s.shape[0], -1) > 0, as_tuple=True)
        ax.scatter(t.numpy(), idx.numpy(), s=12, marker="|", linewidths=1.0, color="k")
        role = "output" if i == n - 1 else "hidden"
        ax.set(ylabel=f"layer {i} ({role})\nneuron", ylim=(-0.5, s[0].numel() - 0.5))
    axes[-1, 0].set_xlabel("frame")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
