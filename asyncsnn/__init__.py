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

import os  # noqa: E402
import sys  # noqa: E402

# libgomp's default wait policy lets PyTorch's OpenMP workers spin for milliseconds after every parallel
# operation, on the cores the compiled asynchronous engine's threads need (its training step took up to 2x
# longer on 2 cores, see the README). Passive waiting costs PyTorch code little. libgomp reads the policy
# when torch loads it, so this works only if asyncsnn is imported first, and it never overrides a setting.
if "torch" not in sys.modules and not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys():
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from asyncsnn.network import Network  # noqa: E402
from asyncsnn.neurons import LI, LIF, GammaReadout, SpikingGamma, Surrogate  # noqa: E402

__all__ = ["LI", "LIF", "GammaReadout", "Network", "SpikingGamma", "Surrogate", "__version__"]
