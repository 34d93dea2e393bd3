"""Neuron populations: pure step functions plus thin ``nn.Module`` wrappers."""

from asyncsnn.neurons.gamma import (
    GammaReadout,
    GammaState,
    SpikingGamma,
    gamma_memory,
    sigma_delta,
)
from asyncsnn.neurons.lif import LI, LIF, RESETS, LIFParameters, LIFState, lif_scan, lif_step
from asyncsnn.neurons.scan import linear_scan
from asyncsnn.neurons.surrogate import SURROGATES, Surrogate

__all__ = [
    "GammaReadout",
    "GammaState",
    "SpikingGamma",
    "gamma_memory",
    "linear_scan",
    "sigma_delta",
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
