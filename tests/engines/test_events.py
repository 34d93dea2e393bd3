"""Dense frames to event lists: the compiled conversion gives PyTorch's arrays, and bad counts are refused."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncsnn.engines import async_
from asyncsnn.engines.events import SparseFrames
from asyncsnn.network import Network
from asyncsnn.neurons import LIF

pytest.importorskip("numba")


def same_events(a: SparseFrames, b: SparseFrames) -> bool:
    fields = ("ptr", "channel", "count")
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in fields) and (
        a.num_steps,
        a.batch_size,
        a.frame_shape,
        a.dtype,
        a.count.dtype,
        a.channel.dtype,
    ) == (b.num_steps, b.batch_size, b.frame_shape, b.dtype, b.count.dtype, b.channel.dtype)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    T=st.integers(1, 6),
    B=st.integers(1, 5),
    frame=st.sampled_from([(1,), (7,), (33,), (2, 3, 5)]),
    density=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    graded=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_the_compiled_conversion_gives_pytorchs_arrays(T, B, frame, density, dtype, graded, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, *frame, generator=g) < density).to(dtype)
    if graded:  # counts need not be whole numbers
        x = x * torch.rand(x.shape, generator=g, dtype=dtype).add(0.25)
    fast, plain = SparseFrames.from_dense(x, compiled=True), SparseFrames.from_dense(x, compiled=False)
    assert same_events(fast, plain)
    assert torch.equal(fast.to_dense(), x)
    assert fast.count.size == int((x != 0).sum())


def test_a_non_contiguous_input_converts_like_its_copy():
    x = (torch.rand(4, 6, 9, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    view = x.transpose(0, 1)  # [6, 4, 9], not contiguous
    copy = SparseFrames.from_dense(view.contiguous(), compiled=False)
    assert same_events(SparseFrames.from_dense(view, compiled=True), copy)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_negative_or_non_finite_counts_are_refused(compiled, bad):
    x = torch.zeros(3, 2, 5)
    x[1, 1, 2] = bad
    with pytest.raises(ValueError, match="positive and finite"):
        SparseFrames.from_dense(x, compiled=compiled)


def test_the_compiled_conversion_names_what_it_takes():
    with pytest.raises(ValueError, match="float32/float64 CPU"):
        SparseFrames.from_dense(torch.ones(2, 1, 3, dtype=torch.float16), compiled=True)
    # the default falls back to PyTorch for other dtypes
    assert SparseFrames.from_dense(torch.ones(2, 1, 3, dtype=torch.float16)).count.size == 6


def test_the_engine_refuses_negative_dense_input_before_running():
    net = Network(torch.nn.Linear(3, 2), LIF(tau=5.0), input_shape=(3,))
    x = torch.ones(4, 2, 3)
    x[2, 1, 0] = -2.0
    for backend in ("numba", "reference"):
        with torch.no_grad(), pytest.raises(ValueError, match="non-negative"):
            async_.run(net, x, backend=backend)


@pytest.mark.parametrize("shape", [(0, 3, 4), (3, 0, 4), (2, 3, 0)])
def test_empty_frames_convert_both_ways(shape):
    x = torch.zeros(shape)
    fast = SparseFrames.from_dense(x, compiled=True)
    assert same_events(fast, SparseFrames.from_dense(x, compiled=False))
    assert fast.to_dense().shape == x.shape
