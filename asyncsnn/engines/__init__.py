"""Engines run a :class:`~asyncsnn.network.Network`: ``sync`` (layer-synchronous reference)."""

from asyncsnn.engines import sync
from asyncsnn.engines.records import Records, RunResult

__all__ = ["Records", "RunResult", "sync"]
