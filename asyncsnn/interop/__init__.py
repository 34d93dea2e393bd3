"""Bridges to other SNN tools (snnTorch import; needs the tool itself only when called)."""

from asyncsnn.interop.snntorch import from_snntorch

__all__ = ["from_snntorch"]
