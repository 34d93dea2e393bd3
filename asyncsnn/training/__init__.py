"""Training: network builder, losses, checkpoints and the train / evaluate loops."""

from asyncsnn.training.builder import build_network, parse_architecture
from asyncsnn.training.losses import classification_loss, membrane_loss, spike_count_loss
from asyncsnn.training.trainer import TrainResult, evaluate, network_from_checkpoint, train

__all__ = [
    "TrainResult",
    "build_network",
    "classification_loss",
    "evaluate",
    "membrane_loss",
    "network_from_checkpoint",
    "parse_architecture",
    "spike_count_loss",
    "train",
]
