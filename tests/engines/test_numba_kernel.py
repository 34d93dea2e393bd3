"""The compiled numba kernel gives exactly the reference's forward results."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

pytest.importorskip("numba")

from asyncsnn.engines import async_  # noqa: E402
from asyncsnn.engines.async_config import AsyncConfig  # noqa: E402
from asyncsnn.network import Network  # noqa: E402
from asyncsnn.neurons import LIF  # noqa: E402

RECORDS = (
    "input_events", "micro_steps", "micro_steps_to_first_output", "micro_steps_to_first_correct",
    "micro_steps_to_decision", "spikes_before_first_output", "spikes_before_first_correct",
    "emitted_events", "delivered_events", "dropped_events", "pending_at_end",
)  # fmt: skip


def dyadic(net: Network, seed: int) -> Network:
    """Weights and biases on a 1/32 grid: sums are exact in any order, so both paths agree bit for bit."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randint(-16, 24, p.shape, generator=g).double() / 32)
    return net


def build(kind: str, sizes, seed: int, reset: str, bias: bool) -> Network:
    lif = lambda: LIF(tau=20.0, threshold=0.75, reset=reset)  # noqa: E731
    if kind == "dense":
        mods = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Linear(a, b, bias=bias), lif()]
        return dyadic(Network(*mods, input_shape=(sizes[0],)).double(), seed)
    if kind == "pool":  # a parameter-free block: pooling into a population of its own
        net = Network(
            nn.Conv2d(2, 3, 3, padding=1, bias=bias), lif(), nn.AvgPool2d(2), LIF(threshold=0.2),
            nn.Flatten(), nn.Linear(3 * 3 * 3, 4, bias=bias), lif(), input_shape=(2, 6, 6),
        )  # fmt: skip
        return dyadic(net.double(), seed)
    net = Network(
        nn.Conv2d(2, 3, 3, padding=1, bias=bias), lif(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(3 * 3 * 3, 4, bias=bias), lif(), input_shape=(2, 6, 6),
    )  # fmt: skip
    return dyadic(net.double(), seed)


def assert_same(a, b):
    assert torch.equal(a.output, b.output)
    for x, y in zip(a.records.spikes + a.records.synops, b.records.spikes + b.records.synops):
        assert torch.equal(x, y)
    for name in RECORDS:
        x, y = getattr(a.records, name), getattr(b.records, name)
        assert torch.allclose(x.double(), y.double(), equal_nan=True, rtol=0, atol=0), name
    for sa, sb in zip(a.state, b.state):
        assert torch.equal(sa.v, sb.v)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["dense", "conv"]),
    sizes=st.lists(st.integers(1, 7), min_size=2, max_size=4),
    group_size=st.integers(1, 5),
    scheduler=st.sampled_from(["random", "momentum", "fifo", "layer"]),
    input_mode=st.sampled_from(["prioritized", "scheduled"]),
    max_steps=st.one_of(st.none(), st.integers(1, 4)),
    stop_after_output=st.one_of(st.none(), st.integers(0, 3)),
    carry_over=st.booleans(),
    refractory=st.booleans(),
    hold=st.booleans(),
    sync_threshold=st.integers(0, 2),
    reset=st.sampled_from(["zero", "subtract"]),
    bias=st.booleans(),
    seed=st.integers(0, 10_000),
    sample_offset=st.one_of(st.just(0), st.integers(1, 2**40)),
)
def test_numba_kernel_equals_reference(
    kind, sizes, group_size, scheduler, input_mode, max_steps, stop_after_output, carry_over, refractory,
    hold, sync_threshold, reset, bias, seed, sample_offset,
):  # fmt: skip
    net = build(kind, sizes, seed, reset, bias)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (6, 3, *net.input_shape), generator=g).double()
    x = x * (torch.rand(x.shape, generator=g) < 0.4)
    cfg = AsyncConfig(
        group_size=group_size, scheduler=scheduler, input_mode=input_mode, max_steps=max_steps,
        stop_after_output=stop_after_output, carry_over=carry_over, refractory=refractory,
        refractory_current="hold" if hold else "integrate", sync_threshold=sync_threshold, seed=seed,
    )  # fmt: skip
    labels = torch.randint(0, net.output_size, (3,), generator=g)
    with torch.no_grad():
        ref = async_.run(net, x, cfg, labels=labels, backend="reference", sample_offset=sample_offset)
        fast = async_.run(net, x, cfg, labels=labels, backend="numba", sample_offset=sample_offset)
    assert_same(ref, fast)


@pytest.mark.parametrize(
    "cfg",
    [
        AsyncConfig(group_size=1, scheduler="random", stop_after_output=2),
        AsyncConfig(group_size=2, scheduler="fifo", max_steps=2, carry_over=True),
        AsyncConfig(group_size=3, scheduler="layer", max_steps=1),
        AsyncConfig(group_size=1, scheduler="momentum", refractory=False, sync_threshold=3),
        AsyncConfig(group_size=2, scheduler="random", refractory_current="integrate", stop_after_output=0),
    ],
    ids=["stop", "carry", "ties-cut", "no-refractory", "integrate"],
)
def test_frame_tails_equal_the_reference(cfg):
    """Two dense layers and prioritized input: after each input frame every pending event drives the output
    layer, and the kernel runs the rest of the frame (its tail) in one go, without per-step selection.
    Step limits, stop rules, ties (layer, fifo) and all refractory modes cut and order it as the reference."""
    net = build("dense", [12, 9, 6], seed=3, reset="subtract", bias=True)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(10, 4, 12, generator=g) < 0.5).double() * torch.randint(1, 3, (10, 4, 12), generator=g)
    labels = torch.tensor([0, 2, 5, 1])
    with torch.no_grad():
        ref = async_.run(net, x, cfg, labels=labels, backend="reference")
        fast = async_.run(net, x, cfg, labels=labels, backend="numba")
    assert ref.records.delivered_events.min() >= 3 and ref.records.micro_steps.min() >= 2  # tails ran
    assert_same(ref, fast)


def test_float32_networks_agree_on_a_realistic_workload():
    torch.manual_seed(0)
    net = Network(nn.Linear(64, 32, bias=False), LIF(tau=20.0, threshold=0.3),
                  nn.Linear(32, 10, bias=False), LIF(tau=20.0, threshold=0.3), input_shape=(64,))  # fmt: skip
    x = (torch.rand(20, 4, 64) < 0.1).float()
    for scheduler in ("random", "momentum"):
        cfg = AsyncConfig(group_size=4, scheduler=scheduler)
        with torch.no_grad():
            ref = async_.run(net, x, cfg, backend="reference")
            fast = async_.run(net, x, cfg, backend="numba")
        assert ref.records.total_spikes.sum() > 50
        # float32 sums may round differently (dense matrix product vs event-by-event adds): compare closely
        assert (ref.output != fast.output).float().mean() < 0.01
        assert math.isclose(ref.records.total_spikes.sum(), fast.records.total_spikes.sum(), rel_tol=0.02)


def test_backend_choice_for_training():
    net = build("dense", [4, 3, 2], 0, "zero", False)
    x = torch.ones(2, 1, 4, dtype=torch.float64)
    assert async_.run(net, x).output.requires_grad  # compiled training path: differentiable
    with torch.no_grad():
        assert not async_.run(net, x).output.requires_grad
    with pytest.raises(ValueError, match="state"):
        async_.run(net, x, state=async_.run(net, x).state, backend="numba")


def test_the_cuda_kernel_is_refused_with_reasons_for_cpu_tensors_and_gradients():
    net = build("dense", [4, 3, 2], 0, "zero", False)
    x = torch.ones(2, 1, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="runs on CUDA tensors.*inference only"):
        async_.run(net, x, backend="triton")
    with torch.no_grad(), pytest.raises(ValueError, match="runs on CUDA tensors"):
        async_.run(net, x, backend="triton")
    with pytest.raises(ValueError, match="backend: 'cuda' is not allowed"):
        async_.run(net, x, backend="cuda")


@pytest.mark.parametrize("scheduler", ["random", "momentum", "fifo"])
@pytest.mark.parametrize("input_mode", ["prioritized", "scheduled"])
@pytest.mark.parametrize("kind", ["conv", "pool"])
def test_compiled_training_of_conv_networks_gives_the_reference_gradients(scheduler, input_mode, kind):
    net = build(kind, [1, 1], 7, "zero", True)
    g = torch.Generator().manual_seed(8)
    x = torch.randint(0, 3, (6, 3, *net.input_shape), generator=g).double()
    x = x * (torch.rand(x.shape, generator=g) < 0.3)
    # the deeper "pool" network needs more micro-steps per frame for its output layer to fire
    cfg = AsyncConfig(
        group_size=2, scheduler=scheduler, input_mode=input_mode, max_steps=6 if kind == "conv" else 20
    )
    ref = async_.run(net, x, cfg, backend="reference")
    fast = async_.run(net, x, cfg, backend="numba")
    assert torch.equal(ref.output.detach(), fast.output.detach())
    w = torch.randn(ref.output.shape, generator=g, dtype=torch.float64)
    params = list(net.parameters())
    ga = torch.autograd.grad((ref.output * w).sum(), params)
    gb = torch.autograd.grad((fast.output * w).sum(), params)
    assert all(x.abs().max() > 0 for x in ga)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_sparse_frames_round_trip_and_give_the_same_run():
    from asyncsnn.engines.events import SparseFrames

    net = build("conv", [1, 1], 3, "zero", True)
    x = (torch.rand(5, 2, *net.input_shape, generator=torch.Generator().manual_seed(4)) < 0.3).double() * 2
    events = SparseFrames.from_dense(x)
    assert torch.equal(events.to_dense(), x)
    cfg = AsyncConfig(group_size=3, scheduler="momentum")
    with torch.no_grad():
        for backend in ("reference", "numba"):
            assert_same(
                async_.run(net, x, cfg, backend=backend), async_.run(net, events, cfg, backend=backend)
            )
    with pytest.raises(ValueError, match="frame shape"):
        async_.run(build("dense", [3, 2], 0, "zero", False), events)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 7), min_size=2, max_size=4),
    group_size=st.integers(1, 5),
    scheduler=st.sampled_from(["random", "momentum", "fifo", "layer"]),
    input_mode=st.sampled_from(["prioritized", "scheduled"]),
    max_steps=st.one_of(st.none(), st.integers(1, 4)),
    stop_after_output=st.one_of(st.none(), st.integers(0, 3)),
    carry_over=st.booleans(),
    refractory=st.booleans(),
    hold=st.booleans(),
    dropout=st.sampled_from([0.0, 0.3]),
    sync_threshold=st.integers(0, 2),
    reset=st.sampled_from(["zero", "subtract"]),
    detach_reset=st.booleans(),
    surrogate=st.sampled_from(["atan", "fast_sigmoid", "sigmoid"]),
    bias=st.booleans(),
    seed=st.integers(0, 10_000),
    sample_offset=st.one_of(st.just(0), st.integers(1, 2**40)),
)
def test_compiled_training_path_gives_the_reference_gradients(
    sizes, group_size, scheduler, input_mode, max_steps, stop_after_output, carry_over, refractory, hold,
    dropout, sync_threshold, reset, detach_reset, surrogate, bias, seed, sample_offset,
):  # fmt: skip
    torch.manual_seed(seed)
    mods = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        lif = LIF(tau=20.0, threshold=0.5, reset=reset, detach_reset=detach_reset, surrogate=surrogate)
        mods += [nn.Linear(a, b, bias=bias), lif]
    net = Network(*mods, input_shape=(sizes[0],)).double()
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (6, 3, sizes[0]), generator=g).double()
    x = x * (torch.rand(x.shape, generator=g) < 0.5)
    cfg = AsyncConfig(
        group_size=group_size, scheduler=scheduler, input_mode=input_mode, max_steps=max_steps,
        stop_after_output=stop_after_output, carry_over=carry_over, refractory=refractory,
        refractory_dropout=dropout if refractory else 0.0, refractory_current="hold" if hold else "integrate",
        sync_threshold=sync_threshold, seed=seed,
    )  # fmt: skip
    labels = torch.randint(0, sizes[-1], (3,), generator=g)
    ref = async_.run(net, x, cfg, labels=labels, backend="reference", sample_offset=sample_offset)
    fast = async_.run(net, x, cfg, labels=labels, backend="numba", sample_offset=sample_offset)
    assert fast.output.requires_grad
    assert torch.equal(ref.output.detach(), fast.output.detach())
    for name in RECORDS:
        a, b = getattr(ref.records, name), getattr(fast.records, name)
        assert torch.allclose(a.double(), b.double(), equal_nan=True, rtol=0, atol=0), name
    w = torch.randn(ref.output.shape, generator=g, dtype=torch.float64)
    params = list(net.parameters())
    for ga, gb in zip(
        torch.autograd.grad((ref.output * w).sum(), params),
        torch.autograd.grad((fast.output * w).sum(), params),
    ):
        torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12)


def _training_net(seed: int) -> Network:
    torch.manual_seed(seed)
    lif = lambda: LIF(tau=20.0, threshold=0.5)  # noqa: E731
    return Network(nn.Linear(6, 5), lif(), nn.Linear(5, 3), lif(), input_shape=(6,)).double()


def _compiled_grads(net: Network, x: torch.Tensor, cfg: AsyncConfig, threads: int, w: torch.Tensor):
    from asyncsnn.engines.kernels import run_numba_train

    out, _ = run_numba_train(net, x, cfg, None, threads=threads)
    return out, torch.autograd.grad((out * w).sum(), list(net.parameters()))


def test_threads_claim_every_sample_exactly_once():
    """The forward pass's threads take samples from a shared atomic counter: each index goes to one thread."""
    from concurrent.futures import ThreadPoolExecutor

    from numba import njit

    from asyncsnn.engines.kernels.numba_train import claim

    @njit(nogil=True)
    def take(counter, n, taken):  # taken: this thread's row
        while True:
            i = claim(counter)
            if i >= n:
                return
            for _ in range(100):  # some work, so that the threads interleave
                taken[i] += 1

    n, threads = 20000, 4
    counter, taken = np.zeros(1, dtype=np.int64), np.zeros((threads, n), dtype=np.int64)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: take(counter, n, taken[k]), range(threads)))
    assert counter[0] == n + threads  # each thread's last claim is past the end
    assert ((taken > 0).sum(0) == 1).all()  # every index claimed by exactly one thread


@pytest.mark.parametrize("batch, threads", [(1, 1), (1, 4), (3, 4), (4, 3), (5, 2)])
def test_compiled_training_splits_any_batch_over_threads(batch, threads):
    """Threads claim the samples as they go (forward) or take every ``threads``-th one (backward); small
    batches leave threads idle; results are the reference's whatever the split."""
    net = _training_net(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 3, (8, batch, 6), generator=g).double()
    x = x * (torch.rand(x.shape, generator=g) < 0.5)
    cfg = AsyncConfig(group_size=2, scheduler="momentum")
    ref = async_.run(net, x, cfg, backend="reference")
    w = torch.randn(ref.output.shape, generator=g, dtype=torch.float64)
    out, grads = _compiled_grads(net, x, cfg, threads, w)
    assert torch.equal(ref.output.detach(), out.detach())
    for a, b in zip(torch.autograd.grad((ref.output * w).sum(), list(net.parameters())), grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_compiled_training_reruns_samples_whose_tape_is_full():
    """A sample whose tape runs out of room is run again with a larger one (the tapes that fit are kept):
    same outputs, records and gradients as with room enough from the start."""
    from asyncsnn.engines.kernels import TAPE_SIZES

    net = _training_net(2)
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 3, (10, 4, 6), generator=g).double()
    x = x * (torch.rand(x.shape, generator=g) < 0.6)
    x[:, 0] = 0.0  # a quiet sample: a short tape
    cfg = AsyncConfig(group_size=1, input_mode="scheduled")
    w = torch.randn(10, 4, 3, generator=g, dtype=torch.float64)
    roomy, roomy_grads = _compiled_grads(net, x, cfg, 2, w)
    for sizes in ([1] * 5, [40, 100, 60, 100, 40]):  # every tape overflows; only the quiet sample's fits
        net.__dict__[TAPE_SIZES] = np.array(sizes, dtype=np.int64)
        tight, tight_grads = _compiled_grads(net, x, cfg, 2, w)
        assert torch.equal(roomy.detach(), tight.detach())
        for a, b in zip(roomy_grads, tight_grads):
            assert torch.equal(a, b)
        assert (net.__dict__[TAPE_SIZES] > 100).all()  # the next step starts with room enough
    ref = async_.run(net, x, cfg, backend="reference")
    fast = async_.run(net, x, cfg, backend="numba")
    assert torch.equal(ref.output.detach(), fast.output.detach())
    for name in RECORDS:
        a, b = getattr(ref.records, name), getattr(fast.records, name)
        assert torch.allclose(a.double(), b.double(), equal_nan=True, rtol=0, atol=0), name


def assert_slice(part, whole, lo: int, hi: int):
    """``part`` (a run of samples ``lo .. hi - 1``) equals those samples of ``whole``: outputs, records,
    final membranes."""
    assert torch.equal(part.output.detach(), whole.output.detach()[:, lo:hi])
    for x, y in zip(part.records.spikes + part.records.synops, whole.records.spikes + whole.records.synops):
        assert torch.equal(x, y[lo:hi])
    for name in RECORDS:
        x, y = getattr(part.records, name), getattr(whole.records, name)[lo:hi]
        assert torch.allclose(x.double(), y.double(), equal_nan=True, rtol=0, atol=0), name
    for sa, sb in zip(part.state, whole.state):
        assert torch.equal(sa.v.detach(), sb.v.detach()[lo:hi])


def _differs(part, whole, lo: int, hi: int) -> bool:
    try:
        assert_slice(part, whole, lo, hi)
    except AssertionError:
        return True
    return False


def test_sample_offset_runs_a_slice_as_in_its_batch_in_the_inference_kernel():
    """Samples 2..4 of a batch of 6, run alone with ``sample_offset=2``, draw the random keys they drew in the
    batch: the kernel gives their results exactly (and without the offset it does not)."""
    net = build("dense", [8, 7, 6, 3], 1, "zero", True)
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 3, (8, 6, 8), generator=g).double()
    x = x * (torch.rand(x.shape, generator=g) < 0.5)
    labels = torch.arange(6) % 3
    cfg = AsyncConfig(group_size=2, scheduler="random", seed=3)
    with torch.no_grad():
        whole = async_.run(net, x, cfg, labels=labels, backend="numba")
        part = async_.run(net, x[:, 2:5], cfg, labels=labels[2:5], backend="numba", sample_offset=2)
        shifted = async_.run(net, x[:, 2:5], cfg, labels=labels[2:5], backend="numba")
    assert_slice(part, whole, 2, 5)
    assert _differs(shifted, whole, 2, 5)  # the test bites: the keys depend on the sample id


def test_sample_offset_runs_a_slice_as_in_its_batch_in_the_training_kernel():
    """The same for the compiled training path, with refractory dropout (also drawn per sample id): the
    slice's outputs and records, and the weights' gradients of a loss summed over the slice's samples."""
    net = _training_net(4).train()
    g = torch.Generator().manual_seed(6)
    x = torch.randint(0, 3, (8, 6, 6), generator=g).double()
    x = x * (torch.rand(x.shape, generator=g) < 0.6)
    cfg = AsyncConfig(group_size=1, scheduler="random", refractory_dropout=0.3, seed=2)
    whole = async_.run(net, x, cfg, backend="numba")
    part = async_.run(net, x[:, 2:5], cfg, backend="numba", sample_offset=2)
    assert part.output.requires_grad
    assert_slice(part, whole, 2, 5)
    assert _differs(async_.run(net, x[:, 2:5], cfg, backend="numba"), whole, 2, 5)
    w = torch.randn(whole.output.shape, generator=g, dtype=torch.float64)
    w_slice = torch.zeros_like(w)
    w_slice[:, 2:5] = w[:, 2:5]  # the loss counts the slice's samples only
    params = list(net.parameters())
    ga = torch.autograd.grad((whole.output * w_slice).sum(), params)
    gb = torch.autograd.grad((part.output * w[:, 2:5]).sum(), params)
    assert all(a.abs().max() > 0 for a in ga)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def _wide_input_case(input_mode: str):
    """A network with 24 inputs and about 12 input events per frame: input deliveries big enough to gather."""
    torch.manual_seed(7)
    lif = lambda: LIF(tau=20.0, threshold=0.5)  # noqa: E731
    net = Network(nn.Linear(24, 6), lif(), nn.Linear(6, 3), lif(), input_shape=(24,)).double()
    g = torch.Generator().manual_seed(8)
    x = torch.randint(1, 3, (7, 5, 24), generator=g).double()
    x = x * (torch.rand(x.shape, generator=g) < 0.5)
    cfg = AsyncConfig(group_size=8 if input_mode == "scheduled" else 1, input_mode=input_mode, seed=1)
    w = torch.randn(7, 5, 3, generator=g, dtype=torch.float64)
    return net, x, cfg, w


@pytest.fixture
def gathered_calls(monkeypatch):
    """Counts the calls of the gathered input-weight gradient (``numba_train.add_gathered``)."""
    from asyncsnn.engines.kernels import numba_train

    calls = []
    original = numba_train.add_gathered
    monkeypatch.setattr(numba_train, "add_gathered", lambda *a: calls.append(1) or original(*a))
    return calls


@pytest.mark.parametrize("input_mode", ["prioritized", "scheduled"])
def test_gathered_input_weight_gradient_equals_the_plain_replay_and_the_reference(
    input_mode, gathered_calls, monkeypatch
):
    """Input deliveries with many events have their weight gradient gathered per input channel: the gradients
    equal the reference's, and those of the plain replay (gathering switched off) and of the fallback taken
    when the gathered rows would need too much memory."""
    from asyncsnn.engines import kernels

    net, x, cfg, w = _wide_input_case(input_mode)
    ref = async_.run(net, x, cfg, backend="reference")
    expected = torch.autograd.grad((ref.output * w).sum(), list(net.parameters()))
    assert all(e.abs().max() > 0 for e in expected)
    runs = {}
    for name, setting in (
        ("gathered", {}),
        ("plain", {"GATHER_MIN_EVENTS": kernels.NEVER}),
        ("too big", {"GATHER_MAX_BYTES": 0}),
    ):
        with monkeypatch.context() as m:
            for key, value in setting.items():
                m.setattr(kernels, key, value)
            before = len(gathered_calls)
            runs[name] = (_compiled_grads(net, x, cfg, 2, w)[1], len(gathered_calls) - before)
    assert runs["gathered"][1] > 0 and runs["plain"][1] == 0 and runs["too big"][1] == 0
    for grads, _ in runs.values():
        for a, b in zip(expected, grads):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_gathered_input_weight_gradient_does_not_depend_on_the_thread_count(gathered_calls, monkeypatch):
    """With every input delivery gathered, the input weight's gradient is summed per channel in tape order,
    whatever the number of threads: the same bits with 1, 2 and 3 threads."""
    from asyncsnn.engines import kernels

    monkeypatch.setattr(kernels, "GATHER_MIN_EVENTS", 1)
    net, x, cfg, w = _wide_input_case("prioritized")
    first = [_compiled_grads(net, x, cfg, threads, w)[1][0] for threads in (1, 2, 3)]
    assert len(gathered_calls) == 1 + 2 + 3  # one call per thread and run
    assert torch.equal(first[0], first[1]) and torch.equal(first[0], first[2])
