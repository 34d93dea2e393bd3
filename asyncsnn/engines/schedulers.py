"""Schedulers of the asynchronous engine: they rank pending events.

A scheduler gives every event a priority *key* when the event becomes pending (lower = delivered
earlier). Each micro-step the engine delivers, per sample, the ``group_size`` pending events with the lowest
keys; ties are broken by layer (input first, then lower layers), then by neuron index (flattened, C order).
Because keys are fixed at entry, selection is a "smallest F keys" query, which fast kernels can do without
re-sorting the network.

Built-in schedulers (DESIGN section 5):

- ``random``:   a uniform random key (seeded): every pending event is equally likely to go next;
- ``momentum``: highest membrane potential at the moment of firing first (key ``-u``; the random key breaks
  exact ties); input events rank by their count;
- ``fifo``:     oldest first: key = the micro-step counter at which the event became pending;
- ``layer``:    lowest layer first (with ``group_size`` >= the widest layer this is layer synchronization).

Add your own by subclassing :class:`Scheduler` and passing an instance (or registering a name with
:func:`register_scheduler`).
"""

from __future__ import annotations

import torch


class Scheduler:
    """Base class: :meth:`key` returns the priority of events becoming pending (lower goes first)."""

    name = "custom"

    def key(self, layer: int, membrane: torch.Tensor, step: torch.Tensor, rand: torch.Tensor) -> torch.Tensor:
        """Priority keys for new events.

        Args:
            layer: source layer of the events (``-1`` for input events, ``0`` for the first population).
            membrane: membrane potential at firing (before reset); for input events, the event count.
            step: the sample's micro-step counter (cumulative over frames) when they became pending.
            rand: uniform numbers in [0, 1), a hash of (seed, sample, micro-step, layer, neuron)
                (:mod:`asyncsnn.engines.keys`), identical in every implementation.

        All tensors have the same shape; return a float tensor of that shape.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RandomScheduler(Scheduler):
    name = "random"

    def key(self, layer, membrane, step, rand):
        return rand


class MomentumScheduler(Scheduler):
    name = "momentum"

    def key(self, layer, membrane, step, rand):
        # Ties of exactly equal membranes are broken by the random draw, at a scale far below any
        # difference of float32 membranes that matters.
        return -membrane.to(torch.float64) + rand.to(torch.float64) * 1e-12


class FifoScheduler(Scheduler):
    name = "fifo"

    def key(self, layer, membrane, step, rand):
        return step.to(torch.float64)


class LayerScheduler(Scheduler):
    name = "layer"

    def key(self, layer, membrane, step, rand):
        return torch.full_like(membrane, float(layer), dtype=torch.float64)


_REGISTRY: dict[str, type[Scheduler]] = {
    cls.name: cls for cls in (RandomScheduler, MomentumScheduler, FifoScheduler, LayerScheduler)
}
SCHEDULERS = tuple(_REGISTRY)


def register_scheduler(name: str, cls: type[Scheduler]) -> None:
    """Make ``cls`` available by ``name`` (in configs and on the command line)."""
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise ValueError(f"register_scheduler: {cls!r} is not a Scheduler subclass")
    _REGISTRY[name] = cls


def get_scheduler(spec: str | Scheduler) -> Scheduler:
    """A scheduler instance from a name or an instance."""
    if isinstance(spec, Scheduler):
        return spec
    if spec not in _REGISTRY:
        raise ValueError(f"scheduler: unknown name {spec!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[spec]()
