"""asyncsnn: spiking neural networks without layer synchronization.

Quick start::

    import torch
    from torch import nn
    from asyncsnn import LIF, Network
    from asyncsnn.engines import sync

    net = Network(nn.Flatten(), nn.Linear(784, 128), LIF(tau=10.0), nn.Linear(128, 10), LIF(tau=10.0),
                  input_shape=(1, 28, 28))
    result = sync.run(net, torch.rand(25, 8, 1, 28, 28).bernoulli())   # [T, B, ...] time-first
    result.output.shape            # [25, 8, 10] output spikes
    result.records.total_spikes    # [8] spikes per sample
"""

__version__ = "0.1.0"

from asyncsnn.network import Network  # noqa: E402
from asyncsnn.neurons import LI, LIF, GammaReadout, SpikingGamma, Surrogate  # noqa: E402

__all__ = ["LI", "LIF", "GammaReadout", "Network", "SpikingGamma", "Surrogate", "__version__"]
