"""Bridges to other SNN tools (snnTorch import, NIR export/import; each needs its tool only when called).

The NeuroBench wrapper lives in :mod:`asyncsnn.interop.neurobench` (not imported here: importing it imports
neurobench when that is installed).
"""

from asyncsnn.interop.nir import export_nir, from_nir, to_nir
from asyncsnn.interop.snntorch import from_snntorch

__all__ = ["export_nir", "from_nir", "from_snntorch", "to_nir"]
