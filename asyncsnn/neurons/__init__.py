"""Neuron populations: pure step functions plus thin ``nn.Module`` wrappers."""

from asyncsnn.neurons.lif import LI, LIF, RESETS, LIFParameters, LIFState, lif_scan, lif_step
from asyncsnn.neurons.surrogate import SURROGATES, Surrogate

__all__ = [
    "LI",
    "LIF",
    "RESETS",
    "SURROGATES",
    "LIFParameters",
    "LIFState",
    "Surrogate",
    "lif_scan",
    "lif_step",
]
