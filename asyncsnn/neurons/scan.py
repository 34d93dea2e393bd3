"""Fused first-order linear recursion, shared by the LI readout and the SpikingGamma buckets."""

from __future__ import annotations

import torch


class _LinearScan(torch.autograd.Function):
    """``out[t] = decay * out[t-1] + inputs[t]`` over the first dimension, with ``out[-1] = init``.

    Gradients for ``inputs``, ``init`` and ``decay`` (the last summed to ``decay``'s shape).
    """

    @staticmethod
    def forward(ctx, inputs, decay, init):  # type: ignore[override]
        out = torch.empty_like(inputs)
        prev = init
        for t in range(inputs.shape[0]):
            prev = torch.addcmul(inputs[t], decay, prev)
            out[t] = prev
        # The outputs are only needed for the gradient in ``decay``; a fixed decay keeps memory at O(1).
        ctx.save_for_backward(out if ctx.needs_input_grad[1] else None, decay, init)
        return out

    @staticmethod
    def backward(ctx, g_out):  # type: ignore[override]
        out, decay, init = ctx.saved_tensors
        g_in = torch.empty_like(g_out)
        carry = torch.zeros_like(g_out[0])
        for t in range(g_out.shape[0] - 1, -1, -1):
            carry = torch.addcmul(g_out[t], decay, carry)
            g_in[t] = carry
        g_init = decay * carry
        g_decay = None
        if ctx.needs_input_grad[1]:
            previous = torch.cat([init.expand_as(out[:1]), out[:-1]])
            g_decay = _sum_to(g_in * previous, decay.shape)
        return g_in, g_decay, _sum_to(g_init, init.shape)


def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient back to ``shape`` (leading and size-1 dimensions)."""
    while t.dim() > len(shape):
        t = t.sum(0)
    for d, n in enumerate(shape):
        if n == 1 and t.shape[d] != 1:
            t = t.sum(d, keepdim=True)
    return t


def linear_scan(inputs: torch.Tensor, decay: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
    """First-order linear recursion over ``inputs`` ``[T, ...]``: ``out[t] = decay * out[t-1] + inputs[t]``.

    Fused: one autograd node for the whole sequence; gradients for ``inputs``, ``decay`` and ``init``."""
    return _LinearScan.apply(inputs, decay, init)
