"""Training SpikingGamma networks: BPTT (reference) and online (memory independent of the sequence length).

Both minimise the same loss, a sum of per-step losses ``L = sum_t L(t)`` on the readout.

**BPTT** runs the whole sequence, keeps the autograd graph of every step and differentiates ``L`` once.
Memory grows linearly with ``T``.

**Online** runs one step at a time and differentiates ``L(t)`` as soon as it is known; nothing of earlier
steps is kept except the network state and, for the top hidden layer, eligibility traces. Precisely:

- The readout's parameters get the exact gradient (the readout is a linear function of the top layer's buckets
  at the same step).
- The top hidden layer (the SpikingGamma population the readout reads; dense synapses) gets the exact gradient
  through *eligibility traces*: with the identity rule ``dg_0(t)/dy(t) = 1``, bucket ``k >= 1`` is a linear
  recursion over past ``g_0``, so its sensitivity to a parameter ``p`` obeys the bucket recursion itself:
  ``e_0(t) = dy(t)/dp`` (the instantaneous derivative, ``ReLU'(x) * dx/dp``) and
  ``e_k(t) = a_k e_k(t-1) + (1 - a_k) e_(k-1)(t-1)``; the gradient of ``L(t)`` is
  ``sum_k dL(t)/dg_k(t) * e_k(t)``.
  Memory: ``K x batch x (parameters of the layer)``, independent of ``T``. Accumulated over a sequence (with
  ``update_every=None``) this equals the BPTT gradient (tested to 1e-5).
- Every other parameter (lower hidden layers, convolutional top layers, trainable ``tau``) gets *time-local
  credit*: the gradient of ``L(t)`` through step ``t`` only, with the state of step ``t - 1`` held constant
  (one-step truncated BPTT). This is an approximation; it is exact for a parameter only where its effect on
  ``L(t)`` passes through step ``t`` alone.

With ``update_every=n`` the optimizer steps every ``n`` steps while the sequence streams; the traces then mix
gradients taken at slightly different parameters, as in any online (RTRL-style) learner.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from asyncsnn.engines.sync import gamma_outputs
from asyncsnn.network import Network
from asyncsnn.neurons.gamma import GammaState
from asyncsnn.training import gamma_fast

StepLoss = Callable[[int, torch.Tensor], "torch.Tensor | None"]


class StepCrossEntropy:
    """Cross-entropy of the readout at every step ``t >= start``, each weighted ``1 / steps``.

    Callable as a per-step loss (``loss(t, out)``), with a closed-form gradient for the fast online path.
    """

    def __init__(self, labels: torch.Tensor, start: int, steps: int) -> None:
        self.labels, self.start, self.scale = labels, start, 1.0 / steps

    def __call__(self, t: int, out: torch.Tensor) -> torch.Tensor | None:
        if t < self.start:
            return None
        return torch.nn.functional.cross_entropy(out, self.labels) * self.scale

    def value_and_grad(self, t: int, out: torch.Tensor) -> tuple[float, torch.Tensor] | None:
        """``(loss, dloss/dout)`` without autograd: ``(softmax(out) - onehot) / (B * steps)``."""
        if t < self.start:
            return None
        loss, grad = self.chunk_value_and_grad(t, out[None])
        return loss, grad[0]

    def chunk_value_and_grad(self, first: int, out: torch.Tensor) -> tuple[float, torch.Tensor]:
        """The same for the steps ``first, first + 1, ...`` of ``out`` ``[C, B, n]`` at once (zero before
        ``start``)."""
        C, B = out.shape[:2]
        steps = torch.arange(first, first + C, device=out.device)
        counted = (steps >= self.start).to(out.dtype)[:, None, None]
        log_p = torch.log_softmax(out, 2)
        picked = log_p.gather(2, self.labels[None, :, None].expand(C, B, 1))
        loss = -(picked * counted).sum() * (self.scale / B)
        grad = log_p.exp_()
        minus_one = -torch.ones(C, B, 1, dtype=out.dtype, device=out.device)
        grad.scatter_add_(2, self.labels[None, :, None].expand(C, B, 1), minus_one)
        return float(loss), grad.mul_(counted * (self.scale / B))


def check_gamma_trainable(network: Network) -> None:
    """Raise unless ``network`` is a SpikingGamma network ending in a :class:`GammaReadout`."""
    if not network.is_gamma:
        raise ValueError(
            "gamma training needs a network of SpikingGamma populations ending in a GammaReadout"
        )
    if network.layers[-1].population.spiking:
        raise ValueError(
            "gamma training needs a non-spiking GammaReadout as the last population (the loss reads it)"
        )


def bptt_sequence(network: Network, x: torch.Tensor, step_loss: StepLoss) -> tuple[torch.Tensor, float]:
    """Run ``x`` ``[T, B, ...]`` and backpropagate ``sum_t step_loss(t, out[t])`` through time.

    Gradients are accumulated into ``.grad``. Returns ``(readout [T, B, n_out] detached, loss)``.
    """
    check_gamma_trainable(network)
    outs, _, _, _ = gamma_outputs(network, x)
    out = outs[-1].reshape(x.shape[0], x.shape[1], -1)
    # unbind: one backward node for all steps (indexing out[t] would make every step's backward a full-size
    # zero tensor, O(T^2) work)
    steps = out.unbind(0)
    losses = [loss for t in range(x.shape[0]) if (loss := step_loss(t, steps[t])) is not None]
    total = torch.stack(losses).sum() if losses else out.sum() * 0
    if total.requires_grad:
        total.backward()
    return out.detach(), float(total.detach())


class _Traces:
    """Eligibility traces of the top hidden layer's parameters (dense synapse, weights ``w``, ``v``, ``b``).

    ``e[name]`` has shape ``[B, K, *param.shape]``: entry ``k`` is ``d g_k(t) / d param`` for each neuron
    (the parameter's neuron axis is where the bucket's neuron sits).
    """

    def __init__(self, network: Network, index: int) -> None:
        layer = network.layers[index]
        self.pop = layer.population
        linear = [m for m in layer.synapse if isinstance(m, nn.Linear)]
        self.weight = linear[0].weight
        self.traces: dict[str, torch.Tensor] = {}

    @staticmethod
    def supported(network: Network, index: int) -> bool:
        layer = network.layers[index]
        allowed = (nn.Linear, nn.Flatten, nn.Identity)
        linear = [m for m in layer.synapse if isinstance(m, nn.Linear)]
        return (
            layer.population.spiking
            and len(linear) == 1
            and all(isinstance(m, allowed) for m in layer.synapse)
            and isinstance(layer.synapse[-1], nn.Linear)
        )

    def _instant(self, presyn: torch.Tensor, drive: torch.Tensor) -> dict[str, torch.Tensor]:
        """``dy(t)/dp`` per parameter, ``[B, *param.shape]``, from the presynaptic buckets ``[B, K, M]``
        and the net input ``x`` ``[B, N]``."""
        r = (drive > 0).to(drive.dtype)  # ReLU'
        w, v = self.weight.detach(), self.pop.bucket_weight.detach()
        if self.pop.per_synapse:  # v [K, N, M]
            dw = r[:, :, None] * torch.einsum("kji,bki->bji", v, presyn)
            dv = r[:, None, :, None] * w[None, None] * presyn[:, :, None, :]
        else:  # v [K, N]
            dw = r[:, :, None] * torch.einsum("kj,bki->bji", v, presyn)
            dv = r[:, None, :] * torch.einsum("ji,bki->bkj", w, presyn)
        return {"weight": dw, "bucket_weight": dv, "bias": r}

    def advance(self, presyn: torch.Tensor, drive: torch.Tensor) -> None:
        """Move the traces to step ``t``: recurse buckets ``k >= 1`` from ``t - 1``, then set ``e_0(t)``."""
        decay = self.pop.decay.detach()
        instant = self._instant(presyn, drive)
        for name, e0 in instant.items():
            old = self.traces.get(name)
            K = decay.shape[0]
            new = e0.new_empty(e0.shape[0], K, *e0.shape[1:])
            new[:, 0] = e0
            if old is None:
                new[:, 1:] = 0
            else:
                a = decay[1:].reshape(1, K - 1, *([1] * (e0.dim() - 1)))
                new[:, 1:] = a * old[:, 1:] + (1 - a) * old[:, :-1]
            self.traces[name] = new

    def accumulate(self, delta: torch.Tensor) -> None:
        """Add ``sum_(k >= 1) delta_k * e_k`` to the gradients; ``delta`` ``[B, K, N]`` is ``dL(t)/dg(t)``."""
        params = {"weight": self.weight, "bucket_weight": self.pop.bucket_weight, "bias": self.pop.bias}
        d = delta[:, 1:]
        for name, e in self.traces.items():
            e = e[:, 1:]
            if name == "weight":
                g = torch.einsum("bkj,bkji->ji", d, e)
            elif name == "bias":
                g = torch.einsum("bkj,bkj->j", d, e)
            elif self.pop.per_synapse:
                g = torch.einsum("bkj,bkqji->qji", d, e)
            else:
                g = torch.einsum("bkj,bkqj->qj", d, e)
            p = params[name]
            p.grad = g if p.grad is None else p.grad + g


def online_sequence(
    network: Network,
    x: torch.Tensor,
    step_loss: StepLoss,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    update_every: int | None = None,
    exact: bool = True,
    reference: bool = False,
) -> tuple[torch.Tensor, float]:
    """Run ``x`` ``[T, B, ...]`` one step at a time, accumulating the gradient of every ``step_loss(t, out)``.

    See the module docstring for which gradient each parameter gets. ``exact=False`` drops the traces
    (time-local credit everywhere). With ``optimizer`` and ``update_every=n`` the parameters are updated every
    ``n`` steps (and gradients zeroed); otherwise gradients accumulate over the sequence.
    Networks of one dense hidden layer plus the readout take a closed-form fast path
    (:mod:`asyncsnn.training.gamma_fast`) with the same results; ``reference=True`` forces the general one.
    Returns ``(readout [T, B, n_out] detached, total loss)``.
    """
    check_gamma_trainable(network)
    if update_every is not None and (optimizer is None or update_every < 1):
        raise ValueError("update_every needs an optimizer and a positive number of steps")
    if exact and not reference and gamma_fast.supported(network):
        return gamma_fast.online_two_layer(
            network, x, step_loss, optimizer=optimizer, update_every=update_every
        )
    T, B = x.shape[:2]
    layers = network.layers
    top = len(layers) - 2
    traces = _Traces(network, top) if exact and top >= 0 and _Traces.supported(network, top) else None
    state: list | None = None
    outputs, total = None, 0.0
    for t in range(T):
        state = _detach_state(state)
        kept: dict[str, torch.Tensor] = {}
        out = _step(network, x[t : t + 1], state, top, kept)
        state = kept.pop("state")
        if traces is not None:
            traces.advance(kept["presyn"], kept["drive"])
        loss = step_loss(t, out)
        if loss is not None and loss.requires_grad:
            loss.backward()
            total += float(loss.detach())
            if traces is not None and kept["buckets"].grad is not None:
                traces.accumulate(kept["buckets"].grad)
        elif loss is not None:
            total += float(loss.detach())
        if outputs is None:  # one buffer for the whole run (see gamma_fast)
            outputs = out.new_empty(T, *out.shape)
        outputs[t] = out.detach()
        if update_every is not None and (t + 1) % update_every == 0:
            optimizer.step()
            optimizer.zero_grad()
    return outputs, total


def _step(network: Network, frame: torch.Tensor, state: list | None, top: int, kept: dict) -> torch.Tensor:
    """One step of :func:`gamma_outputs`, keeping what the top layer's traces need in ``kept``."""
    layers = network.layers
    state = list(state) if state is not None else [None] * len(layers)
    first = layers[0].population
    h = first.input_memory(frame, state[0].inputs if state[0] is not None else None)
    inputs_last = h[-1]
    out = None
    for i, layer in enumerate(layers):
        pop = layer.population
        flat = h[0]  # [B, K, *in_shape]
        drive = pop.drive(layer.synapse, flat)
        if i == top:
            kept["presyn"] = flat.detach().flatten(2)
            kept["drive"] = drive.detach()
        if pop.spiking:
            _, h, st = pop.scan(drive[None], state[i])
            if i == top and h.requires_grad:
                h.retain_grad()
                kept["buckets"] = h
            state[i] = GammaState(st.buckets, inputs_last if i == 0 else None)
        else:
            out = drive
            state[i] = GammaState(None, inputs_last if i == 0 else None)
    if "buckets" in kept:
        kept["buckets"] = _BucketGrad(kept["buckets"])
    kept["state"] = state
    return out.flatten(1)


class _BucketGrad:
    """Reads ``dL(t)/dg(t)`` of the top layer ``[B, K, N]`` after the backward pass."""

    def __init__(self, h: torch.Tensor) -> None:
        self.h = h

    @property
    def grad(self) -> torch.Tensor | None:
        g = self.h.grad
        return None if g is None else g[0].flatten(2)


def _detach_state(state: list | None) -> list | None:
    if state is None:
        return None
    return [
        GammaState(
            s.buckets.detach() if s.buckets is not None else None,
            s.inputs.detach() if s.inputs is not None else None,
        )
        for s in state
    ]
