"""Asynchronous engine: exact equivalences, a one-event-at-a-time oracle, conservation, schedulers."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from asyncsnn.engines import async_, sync
from asyncsnn.engines.async_ import select_lowest
from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.engines.schedulers import MomentumScheduler, Scheduler, get_scheduler, register_scheduler
from asyncsnn.metrics import ASYNC_FIELDS
from asyncsnn.network import Network
from asyncsnn.neurons import LIF


def dense_net(sizes, tau=50.0, threshold=0.5, seed=0, reset="zero"):
    torch.manual_seed(seed)
    mods = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        mods += [nn.Linear(a, b, bias=False), LIF(tau=tau, threshold=threshold, reset=reset)]
    return Network(*mods, input_shape=(sizes[0],)).double()


def conv_net():
    torch.manual_seed(1)
    return Network(
        nn.Conv2d(2, 3, 3, padding=1, bias=False), LIF(tau=50.0, threshold=0.4),
        nn.AvgPool2d(2), nn.Conv2d(3, 4, 3, bias=False), LIF(tau=50.0, threshold=0.3),
        nn.Flatten(), nn.Linear(16, 5, bias=False), LIF(tau=50.0, threshold=0.3),
        input_shape=(2, 8, 8),
    ).double()  # fmt: skip


def grads(net, output, w):
    return torch.autograd.grad((output * w).sum(), list(net.parameters()))


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_layer_scheduler_with_whole_layers_equals_sync_spikes_and_gradients(kind):
    net = dense_net([20, 16, 8, 4]) if kind == "dense" else conv_net()
    widest = max(net.population_sizes)
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(100, 3, *net.input_shape, generator=g) < 0.2).double()
    ref = sync.run(net, x)
    out = async_.run(net, x, AsyncConfig(group_size=widest, scheduler="layer"))
    assert all(s.sum() > 0 for s in ref.records.spikes)  # every layer is active: the test bites
    assert torch.equal(ref.output, out.output)
    for a, b in zip(ref.records.spikes, out.records.spikes):
        assert torch.equal(a, b)
    for a, b in zip(ref.records.synops, out.records.synops):
        assert torch.equal(a, b)
    w = torch.randn(ref.output.shape, generator=g, dtype=torch.float64)
    for ga, gb in zip(grads(net, ref.output, w), grads(net, out.output, w)):
        assert ga.abs().max() > 0
        torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-11)
    for sa, sb in zip(ref.state, out.state):  # membrane carry-over matches too
        torch.testing.assert_close(sa.v, sb.v, rtol=0, atol=1e-12)


class Oracle:
    """Plain one-event-at-a-time simulator of dense bias-free LIF layers (F = 1, fifo, prioritized input).

    ``weights[l]`` is a list of rows (out x in). :meth:`run` takes ``[T][n_in]`` event counts and returns
    per-frame output spikes, per-layer spike counts and the micro-step of the first output spike.
    """

    def __init__(self, weights, beta, thr):
        self.w, self.beta, self.thr, self.L = weights, beta, thr, len(weights)

    def evaluate(self, layer, targets):
        for j in targets:
            if not self.refractory[layer][j] and self.v[layer][j] > self.thr:
                self.v[layer][j] = 0.0
                self.refractory[layer][j] = True
                self.counts[layer] += 1
                if layer == self.L - 1:
                    self.out[j] = 1.0
                    self.first = self.step if self.first is None else self.first
                else:
                    self.queue.append((self.step, layer, j))

    def run(self, x):
        w = self.w
        self.v = [[0.0] * len(rows) for rows in w]
        self.step, self.first, self.counts, outputs = 0, None, [0] * self.L, []
        for frame in x:
            self.v = [[self.beta * u for u in layer] for layer in self.v]
            self.refractory = [[False] * len(rows) for rows in w]
            self.queue, self.out = [], [0.0] * len(w[-1])
            for j in range(len(w[0])):  # prioritized input, delivered whole
                self.v[0][j] += sum(w[0][j][i] * c for i, c in enumerate(frame) if c)
            if any(frame):  # dense synapses: any input event reaches every first-layer neuron
                self.evaluate(0, range(len(w[0])))
            while self.queue:
                self.queue.sort()  # (key = micro-step of entry, layer, neuron): fifo with documented ties
                _, layer, i = self.queue.pop(0)
                self.step += 1
                for j in range(len(w[layer + 1])):
                    if not self.refractory[layer + 1][j]:
                        self.v[layer + 1][j] += w[layer + 1][j][i]
                self.evaluate(layer + 1, range(len(w[layer + 1])))
            outputs.append(self.out)
        return outputs, self.counts, self.first


def test_group_size_one_fifo_equals_one_event_at_a_time_oracle():
    torch.manual_seed(5)
    net = dense_net([12, 9, 6, 3], tau=30.0, threshold=0.6)
    with torch.no_grad():  # weights on a 1/64 grid: every sum is exact, whatever the order
        for p in net.parameters():
            p.copy_(torch.round(p * 64 + 8) / 64)
    g = torch.Generator().manual_seed(6)
    x = (torch.rand(40, 1, 12, generator=g) < 0.3).double()
    res = async_.run(net, x, AsyncConfig(group_size=1, scheduler="fifo"))
    weights = [layer.synapse[0].weight.tolist() for layer in net.layers]
    beta = float(net.layers[0].population.beta)
    outs, counts, first = Oracle(weights, beta, 0.6).run(x[:, 0].tolist())
    assert sum(counts[:-1]) > 20 and counts[-1] > 0
    assert res.output[:, 0].tolist() == outs
    assert [int(s.item()) for s in res.records.spikes] == counts
    assert res.records.micro_steps_to_first_output.item() == first


def test_scheduled_input_competes_and_prioritized_takes_no_micro_step():
    net = dense_net([6, 4, 2], threshold=0.2)
    x = torch.ones(3, 2, 6, dtype=torch.float64)
    pri = async_.run(net, x, AsyncConfig(group_size=2, scheduler="fifo"))
    sch = async_.run(net, x, AsyncConfig(group_size=2, scheduler="fifo", input_mode="scheduled"))
    assert torch.equal(pri.records.input_events, sch.records.input_events)
    assert (sch.records.micro_steps >= pri.records.micro_steps + 3 * 3).all()  # 6 inputs, F=2: 3 steps/frame


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    group_size=st.integers(1, 4),
    scheduler=st.sampled_from(["random", "momentum", "fifo", "layer"]),
    input_mode=st.sampled_from(["prioritized", "scheduled"]),
    max_steps=st.one_of(st.none(), st.integers(1, 4)),
    stop_after_output=st.one_of(st.none(), st.integers(0, 3)),
    carry_over=st.booleans(),
    refractory=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_events_are_conserved(
    sizes, group_size, scheduler, input_mode, max_steps, stop_after_output, carry_over, refractory, seed
):
    net = dense_net(sizes, threshold=0.3, seed=seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (5, 2, sizes[0]), generator=g).double()
    cfg = AsyncConfig(
        group_size=group_size, scheduler=scheduler, input_mode=input_mode, max_steps=max_steps,
        stop_after_output=stop_after_output, carry_over=carry_over, refractory=refractory, seed=seed,
    )  # fmt: skip
    r = async_.run(net, x, cfg).records
    torch.testing.assert_close(r.emitted_events, r.delivered_events + r.dropped_events + r.pending_at_end)
    hidden = sum(r.spikes[:-1]) if len(r.spikes) > 1 else torch.zeros(2, dtype=torch.float64)
    queued_inputs = r.input_events + 0 if input_mode == "scheduled" else 0
    assert torch.all(r.emitted_events >= hidden)  # every hidden spike was emitted as (part of) an event
    if input_mode == "prioritized":
        torch.testing.assert_close(r.emitted_events, hidden)
    else:
        assert torch.all(r.emitted_events >= queued_inputs)
    if max_steps is None and stop_after_output is None:
        assert torch.all(r.dropped_events == 0) and torch.all(r.pending_at_end == 0)
    if refractory:
        for spikes, n in zip(r.spikes, sizes[1:]):
            assert torch.all(spikes <= n * x.shape[0])  # at most one spike per neuron per frame


def test_select_lowest_picks_at_most_f_pending_lowest_keys():
    keys = torch.tensor([[3.0, 1.0, 2.0, 1.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0]], dtype=torch.float64)
    pending = torch.tensor([[True, True, True, True, False], [False, False, True, False, False]])
    chosen = select_lowest(keys, pending, 2)
    assert chosen.tolist() == [[False, True, False, True, False], [False, False, True, False, False]]
    assert not (chosen & ~pending).any()
    assert (chosen.sum(1) <= 2).all()


def test_momentum_ranks_higher_membrane_first_and_schedulers_are_pluggable():
    u = torch.tensor([[0.2, 0.9, 0.5]], dtype=torch.float64)
    keys = MomentumScheduler().key(0, u, torch.zeros_like(u), torch.rand(u.shape, dtype=torch.float64))
    assert keys.argsort(1).tolist() == [[1, 2, 0]]

    class Reverse(Scheduler):  # highest neuron index first
        def key(self, layer, membrane, step, rand):
            idx = torch.arange(membrane.shape[1], dtype=torch.float64)
            return (-idx).expand_as(membrane)

    register_scheduler("reverse", Reverse)
    assert isinstance(get_scheduler("reverse"), Reverse)
    net = dense_net([4, 3, 2], threshold=0.1)
    r = async_.run(net, torch.ones(2, 1, 4, dtype=torch.float64), AsyncConfig(scheduler="reverse"))
    assert r.records.spikes[0].item() > 0
    with pytest.raises(ValueError, match="unknown name"):
        get_scheduler("lifo")


def test_random_scheduler_is_seeded():
    net = dense_net([10, 8, 8, 3], threshold=0.3)
    x = (torch.rand(10, 4, 10, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    a = async_.run(net, x, AsyncConfig(scheduler="random", seed=1))
    b = async_.run(net, x, AsyncConfig(scheduler="random", seed=1))
    assert torch.equal(a.output, b.output)
    assert torch.equal(a.records.micro_steps, b.records.micro_steps)


def test_samples_stop_on_their_own_and_batching_does_not_change_results():
    net = dense_net([8, 6, 3], threshold=0.25)
    x = (torch.rand(6, 3, 8, generator=torch.Generator().manual_seed(3)) < 0.4).double()
    cfg = AsyncConfig(group_size=2, scheduler="momentum", stop_after_output=1)
    batch = async_.run(net, x, cfg, labels=torch.tensor([0, 1, 2]))
    for b in range(3):
        alone = async_.run(net, x[:, b : b + 1], cfg, labels=torch.tensor([b]))
        assert torch.equal(alone.output[:, 0], batch.output[:, b])
        for name in (
            "micro_steps",
            "micro_steps_to_first_output",
            "micro_steps_to_decision",
            "dropped_events",
        ):
            a, c = getattr(alone.records, name)[0], getattr(batch.records, name)[b]
            assert (math.isnan(a) and math.isnan(c)) or a == c, name
    rec = batch.records
    stopped = ~torch.isnan(rec.micro_steps_to_first_output)
    assert stopped.any()
    assert torch.equal(rec.micro_steps_to_decision[stopped], rec.micro_steps_to_first_output[stopped] + 1)
    assert torch.equal(rec.micro_steps[stopped].double(), rec.micro_steps_to_decision[stopped])


def test_sample_offset_runs_a_slice_as_in_its_batch():
    """Samples 2..4 of a batch of 6, run alone with ``sample_offset=2``, draw the random keys they drew in the
    batch (multi-process training splits batches this way): same outputs, records and membranes."""
    net = dense_net([10, 8, 8, 3], threshold=0.3)
    x = (torch.rand(10, 6, 10, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    labels = torch.arange(6) % 3
    cfg = AsyncConfig(scheduler="random", group_size=1, seed=1)
    with torch.no_grad():
        whole = async_.run(net, x, cfg, labels=labels, backend="reference")
        part = async_.run(net, x[:, 2:5], cfg, labels=labels[2:5], backend="reference", sample_offset=2)
        shifted = async_.run(net, x[:, 2:5], cfg, labels=labels[2:5], backend="reference")
    assert torch.equal(part.output, whole.output[:, 2:5])
    for a, c in zip(part.records.spikes + part.records.synops, whole.records.spikes + whole.records.synops):
        assert torch.equal(a, c[2:5])
    for name in ("input_events", *ASYNC_FIELDS, "emitted_events", "delivered_events", "pending_at_end"):
        a, c = getattr(part.records, name), getattr(whole.records, name)[2:5]
        assert torch.allclose(a.double(), c.double(), equal_nan=True, rtol=0, atol=0), name
    for sa, sb in zip(part.state, whole.state):
        assert torch.equal(sa.v, sb.v[2:5])
    assert not torch.equal(shifted.output, whole.output[:, 2:5])  # the test bites: other ids, other keys


@pytest.mark.parametrize("offset", [-1, 1.5, True, "2"])
def test_invalid_sample_offset_is_rejected(offset):
    with pytest.raises(ValueError, match="sample_offset"):
        async_.run(dense_net([3, 2]), torch.ones(2, 1, 3, dtype=torch.float64), sample_offset=offset)


def test_max_steps_limits_micro_steps_per_frame_and_reports_dropped_events():
    net = dense_net([10, 10, 2], threshold=0.1)
    x = torch.ones(4, 1, 10, dtype=torch.float64)
    r = async_.run(net, x, AsyncConfig(group_size=1, scheduler="fifo", max_steps=2)).records
    assert r.micro_steps.item() <= 4 * 2
    assert r.dropped_events.item() > 0
    carried = async_.run(net, x, AsyncConfig(group_size=1, scheduler="fifo", max_steps=2, carry_over=True))
    assert carried.records.dropped_events.item() == 0 and carried.records.pending_at_end.item() > 0


def test_sync_threshold_delays_firing():
    net = dense_net([5, 3, 2], threshold=0.05)
    x = torch.zeros(1, 1, 5, dtype=torch.float64)
    x[0, 0, :2] = 1.0  # two input events per frame
    free = async_.run(net, x, AsyncConfig(input_mode="scheduled", scheduler="fifo")).records
    gated = async_.run(
        net, x, AsyncConfig(input_mode="scheduled", scheduler="fifo", sync_threshold=3)
    ).records
    assert free.spikes[0].item() > 0
    assert gated.spikes[0].item() == 0  # only two events reach each neuron: it may never fire


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"group_size": 0}, "group_size"),
        ({"scheduler": "nope"}, "scheduler"),
        ({"input_mode": "eager"}, "input_mode"),
        ({"refractory_dropout": 1.0}, "refractory_dropout"),
        ({"max_steps": 0}, "max_steps"),
        ({"stop_after_output": -1}, "stop_after_output"),
        ({"refractory_current": "leak"}, "refractory_current"),
    ],
)
def test_invalid_configuration_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AsyncConfig(**kwargs)


def test_negative_input_is_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        async_.run(dense_net([3, 2]), -torch.ones(2, 1, 3, dtype=torch.float64))
