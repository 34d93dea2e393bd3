"""Classification losses on an engine's output ``[T, B, n_out]``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def spike_count_loss(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the output spike counts (summed over frames) as logits."""
    return F.cross_entropy(output.sum(0), labels)


def membrane_loss(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the time-averaged membrane of a non-spiking (LI) readout as logits."""
    return F.cross_entropy(output.mean(0), labels)


def per_step_loss(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the readout at every step, averaged over steps (the SpikingGamma training loss)."""
    T, B = output.shape[:2]
    return F.cross_entropy(output.reshape(T * B, -1), labels.repeat(T))


def classification_loss(output: torch.Tensor, labels: torch.Tensor, readout: str) -> torch.Tensor:
    """The loss that matches ``readout`` (``"spikes"`` or ``"membrane"``)."""
    return membrane_loss(output, labels) if readout == "membrane" else spike_count_loss(output, labels)
