"""Fast path of online SpikingGamma training for the common network: one dense hidden layer plus the readout.

Same results as the reference :func:`asyncsnn.training.gamma.online_sequence` (which builds a small
autograd graph every step; tests check both against BPTT), computed in closed form. The sequence streams
through in chunks of at most ``chunk`` steps: the forward pass of a chunk runs vectorised over its steps (the
same code as every other forward pass, :func:`asyncsnn.engines.sync.gamma_outputs`, with the state carried
from the previous chunk), then the traces jump over the whole chunk at once (below). Memory is one chunk
plus the traces, so it does not grow with ``T``; gradients and parameter updates follow the stream with a
delay of at most one chunk. Shapes: batch ``B``, inputs ``M``, hidden ``N``, outputs ``O``, buckets ``K``.

Gradients (identity rule ``dg_0/dy = 1``), summed over the steps of the loss:

- readout: ``dL/dW2 = sum_k (dL/dout * u_k)^T g_k``, ``dL/du_k = sum_b dL/dout * (g_k W2^T)``;
- bucket credit ``delta_k = (dL/dout * u_k) W2`` (``[B, K, N]``);
- hidden: ``sum_k delta_k * e_k``. The drive of hidden neuron ``j`` is linear in ``w_j``, ``v_j`` and ``b_j``
  with the "input" ``phi_j = [z_j (M values), c_j (K values), 1]`` (``z_ji = sum_k v_j^k g_k,i``,
  ``c_jk = sum_i w_ji g_k,i``), so one trace buffer serves all three: ``e_0 = ReLU'(x_j) * phi_j`` and
  ``e_k(t) = a_k e_k(t-1) + (1 - a_k) e_(k-1)(t-1)``.

The trace recursion is linear, ``e(t) = A e(t-1) + u phi(t)`` (``A`` the ``K x K`` bucket matrix, ``u`` the
unit vector of bucket 0). Over a chunk of steps ``c = 0..C-1`` starting from ``e_prev``,
``sum_c delta(c) . e(c) = lambda . e_prev + sum_s delta~(s) phi(s)`` with ``lambda = sum_c delta(c) A^(c+1)``
and ``delta~(s) = sum_(c >= s) (delta(c) A^(c-s))_0``, and ``e(C-1) = A^C e_prev + sum_s A^(C-1-s) u phi(s)``:
a few contractions per chunk with powers of ``A`` instead of a loop over steps. Exactly the step-by-step
traces, re-associated.

A per-step loss object may offer ``value_and_grad(t, out) -> (loss, dloss/dout) | None`` in closed form, or
``chunk_value_and_grad(first, out [C, B, O])`` for a whole chunk (:class:`asyncsnn.training.gamma.
StepCrossEntropy` offers both); otherwise autograd differentiates it every step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from asyncsnn.engines.sync import gamma_outputs
from asyncsnn.network import Network

#: Floats one chunk of instantaneous derivatives may hold (64 MiB in float32).
CHUNK_BUDGET = 16 * 2**20


def supported(network: Network) -> bool:
    """True for [Flatten] -> Linear -> SpikingGamma (per-neuron weights, fixed tau) -> Linear -> readout."""
    layers = network.layers
    if len(layers) != 2 or not layers[0].population.spiking or layers[1].population.spiking:
        return False
    for layer in layers:
        pop = layer.population
        if pop.per_synapse or pop.trainable_tau or len(layer.synapse) == 0:
            return False
        if not isinstance(layer.synapse[-1], nn.Linear):
            return False
        if not all(isinstance(m, (nn.Flatten, nn.Identity)) for m in list(layer.synapse)[:-1]):
            return False
    return True


def online_two_layer(
    network: Network,
    x: torch.Tensor,
    step_loss: Callable[[int, torch.Tensor], torch.Tensor | None],
    *,
    optimizer: torch.optim.Optimizer | None,
    update_every: int | None,
    chunk: int = 64,
) -> tuple[torch.Tensor, float]:
    """Online training of a :func:`supported` network; same contract as ``online_sequence``."""
    hidden_layer, readout_layer = network.layers
    hidden, readout = hidden_layer.population, readout_layer.population
    w1, w2 = hidden_layer.synapse[-1].weight, readout_layer.synapse[-1].weight
    params = (w1, hidden.bucket_weight, hidden.bias, w2, readout.bucket_weight, readout.bias)
    T, B = x.shape[:2]
    N, M = w1.shape
    K = hidden.buckets
    P = M + K + 1
    chunk = max(1, min(chunk, CHUNK_BUDGET // max(1, B * N * P), update_every or chunk))
    jump = _ChunkJump(hidden.decay.detach(), chunk)
    traces = x.new_zeros(K, B, N, P)  # bucket first: the chunk jump is then a plain matrix product
    grad_hidden = x.new_zeros(N, P)
    grads = [torch.zeros_like(p) for p in params]
    value_and_grad = getattr(step_loss, "value_and_grad", None) or _autograd_value_and_grad(step_loss)
    # Detached views share storage with the parameters, so an optimizer step (in place) is seen here too.
    W1, V1, _, W2, U2, _ = (p.detach() for p in params)
    # The readout of every step goes into one buffer allocated up front (T x B x O floats, the product of the
    # run, not training state; growing a list instead fragments the heap in proportion to T).
    outputs = x.new_empty(T, B, w2.shape[0])
    phi_buffer = x.new_ones(chunk, B, N, P)  # e_0 of every step of a chunk; the last column stays 1 (bias)
    state, total = None, 0.0
    start = 0
    while start < T:
        stop = min(T, start + chunk)
        if update_every is not None:  # a chunk never straddles a parameter update
            stop = min(stop, (start // update_every + 1) * update_every)
        C = stop - start
        with torch.no_grad():
            g_in = hidden.input_memory(x[start:stop].flatten(2), state[0].inputs if state else None)
            outs, buckets, drives, state = gamma_outputs(network, x[start:stop], state)
            out, g = outs[-1].flatten(2), buckets[0]  # [C, B, O], [C, B, K, N]
            current = g_in @ W1.t()  # [C, B, K, N]
            phi = phi_buffer[:C]
            phi[..., :M] = torch.matmul(V1.t(), g_in)  # z_ji = sum_k v_j^k g_k,i
            phi[..., M : M + K] = current.transpose(2, 3)  # c_jk = sum_i w_ji g_k,i
            phi[..., M + K] = 1.0
            phi *= (drives[0] > 0).to(phi.dtype)[..., None]  # ReLU'(x_j)
        if hasattr(step_loss, "chunk_value_and_grad"):
            loss, d_out = step_loss.chunk_value_and_grad(start, out)
            total += loss
        else:
            d_out = torch.zeros_like(out)
            for c in range(C):
                step = value_and_grad(start + c, out[c])
                if step is not None:
                    total += step[0]
                    d_out[c] = step[1]
        d_read = d_out[:, :, None, :] * U2  # [C, B, K, O]
        grads[3].addmm_(d_read.reshape(-1, d_read.shape[-1]).t(), g.reshape(-1, N))
        grads[4] += (d_out[:, :, None, :] * (g @ W2.t())).sum((0, 1))
        grads[5] += d_out.sum((0, 1))
        delta = d_read @ W2  # [C, B, K, N]: dL/dg_k at every step
        grad_hidden += jump.gradient(delta, traces, phi)
        traces = jump.advance(traces, phi)
        outputs[start:stop] = out
        start = stop
        if update_every is not None and start % update_every == 0:
            _split_hidden(grad_hidden, grads, M, K)
            _flush(params, grads)
            optimizer.step()
            optimizer.zero_grad()
    _split_hidden(grad_hidden, grads, M, K)
    _flush(params, grads)
    return outputs, total


def _split_hidden(grad_hidden: torch.Tensor, grads: list[torch.Tensor], M: int, K: int) -> None:
    """Move the fused hidden gradient ``[N, M + K + 1]`` into the ``w``, ``v``, ``b`` accumulators."""
    grads[0] += grad_hidden[:, :M]
    grads[1] += grad_hidden[:, M : M + K].t()
    grads[2] += grad_hidden[:, M + K]
    grad_hidden.zero_()


def _autograd_value_and_grad(step_loss: Callable):
    """``(loss, dloss/dout)`` of a per-step loss through autograd (for losses without a closed form)."""

    def value_and_grad(t: int, out: torch.Tensor) -> tuple[float, torch.Tensor] | None:
        leaf = out.detach().requires_grad_()
        with torch.enable_grad():
            loss = step_loss(t, leaf)
        if loss is None:
            return None
        if not loss.requires_grad:
            return float(loss), torch.zeros_like(out)
        (d_out,) = torch.autograd.grad(loss, leaf)
        return float(loss.detach()), d_out

    return value_and_grad


class _ChunkJump:
    """Powers of the bucket matrix ``A`` for jumping the traces over a chunk of up to ``chunk`` steps."""

    def __init__(self, decay: torch.Tensor, chunk: int) -> None:
        K = decay.shape[0]
        A = torch.zeros(K, K, dtype=decay.dtype, device=decay.device)
        idx = torch.arange(1, K, device=decay.device)
        A[idx, idx] = decay[1:]
        A[idx, idx - 1] = 1 - decay[1:]
        powers = [torch.eye(K, dtype=decay.dtype, device=decay.device)]
        for _ in range(chunk):
            powers.append(A @ powers[-1])
        self.powers = torch.stack(powers)  # [chunk + 1, K, K]: A^0 .. A^chunk

    def gradient(self, delta: torch.Tensor, traces: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """``sum_c delta(c) . e(c)`` over a chunk, ``[N, P]``: ``delta`` ``[C, B, K, N]``, ``traces`` (before
        the chunk) ``[K, B, N, P]``, ``phi`` ``[C, B, N, P]``."""
        C, B, _, N = delta.shape
        powers = self.powers.to(delta)
        lam = torch.einsum("ckj,cbkn->jbn", powers[1 : C + 1], delta)
        # D[s, c] = column 0 of A^(c - s) for c >= s: how phi(s) reaches the buckets at step c
        steps = torch.arange(C, device=delta.device)
        lag = steps[None, :] - steps[:, None]  # c - s
        D = powers[lag.clamp(min=0), :, 0] * (lag >= 0)[..., None].to(delta)  # [C(s), C(c), K]
        delta_tilde = torch.einsum("sck,cbkn->nsb", D, delta).reshape(N, 1, C * B)
        within = torch.bmm(delta_tilde, phi.permute(2, 0, 1, 3).reshape(N, C * B, -1))[:, 0]
        return within + (lam[..., None] * traces).sum((0, 1))

    def advance(self, traces: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """The traces after the chunk: ``A^C e_prev + sum_s A^(C-1-s) u phi(s)``, ``[K, B, N, P]``."""
        C, K = phi.shape[0], traces.shape[0]
        powers = self.powers.to(phi)
        feed = powers[C - 1 - torch.arange(C, device=phi.device), :, 0]  # [C(s), K]
        jumped = powers[C] @ traces.reshape(K, -1) + feed.t() @ phi.reshape(C, -1)
        return jumped.reshape(traces.shape)


def _flush(params: tuple[torch.Tensor, ...], grads: list[torch.Tensor]) -> None:
    """Add the accumulated gradients to ``.grad`` and reset the accumulators."""
    for p, g in zip(params, grads):
        p.grad = g.clone() if p.grad is None else p.grad + g
        g.zero_()
