"""The counter-based hash: the same numbers from Python ints, int64 tensors and the compiled kernels, and the
numbers of the plain modulo formula (the division-free reduction must not change any draw)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncsnn.engines import keys

M, A, C = keys.MODULUS, keys._MULTIPLIER, keys._INCREMENT


def plain_hash(seed, sample, step, layer, neuron, salt):
    x = salt + 1
    for value in (seed % M, sample % M, step % M, layer + 2, neuron % M, 1, 1):
        x = ((x ^ value) * A + C) % M
    return x


arguments = st.tuples(
    st.integers(0, 2**63 - 1),  # seed
    st.integers(0, 2**50),  # sample (offset + index)
    st.integers(0, 2**40),  # micro-step
    st.integers(-1, 64),  # layer (-1: input)
    st.one_of(st.integers(0, 2**20), st.sampled_from([M - 1, M, M + 1, 2 * M])),  # neuron
    st.sampled_from([keys.SALT_KEY, keys.SALT_DROPOUT]),
)


@settings(max_examples=300, deadline=None)
@given(args=arguments)
def test_hash_equals_the_plain_modulo_formula(args):
    h = keys.hash_int(*args)
    assert h == plain_hash(*args)
    assert 0 <= h < M


def test_the_reduction_is_exact_at_the_edges():
    # inputs to one round whose product lands on a multiple of M, just below or above one
    for x in (0, 1, M - 1, M, M + 1, 2 * M - 1, 2 * M, 2**62 - 1, (2**31 - 1) * (2**31 - 1)):
        y = (x & M) + (x >> 31)
        y = (y & M) + (y >> 31)
        assert y - M * (y >= M) == x % M, x


@given(args=st.lists(arguments, min_size=1, max_size=50))
@settings(max_examples=30, deadline=None)
def test_tensors_draw_the_same_numbers(args):
    cols = [torch.tensor([a[i] for a in args], dtype=torch.int64) for i in range(5)]
    h = keys.hash_int(*cols, args[0][5])  # the salt is a constant per call
    assert h.tolist() == [plain_hash(*a[:5], args[0][5]) for a in args]


def test_the_compiled_hash_draws_the_same_numbers():
    pytest.importorskip("numba")
    from asyncsnn.engines.kernels.numba_cpu import _hash

    cases = [(0, 0, 0, -1, 0, 0), (2**62, 2**45 + 3, 123456789, 7, M + 1, 1), (5, 9, 2**40, 64, 2**20, 0)]
    for args in cases:
        assert _hash(*args) == plain_hash(*args), args
