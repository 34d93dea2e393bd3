"""Counter-based random numbers for the asynchronous engine.

A random draw is a pure function of ``(seed, sample, micro-step, layer, neuron, salt)``, so every
implementation (the PyTorch reference, compiled kernels) draws the same numbers in whatever order it visits
events, and a sample's draws do not depend on what other samples do. The same code runs on Python ints,
int64 torch tensors and inside numba kernels: every intermediate stays below 2**62.
"""

from __future__ import annotations

MODULUS = 2_147_483_647  # 2**31 - 1
_MULTIPLIER = 1_103_515_245
_INCREMENT = 12_345

SALT_KEY = 0  # scheduler keys
SALT_DROPOUT = 1  # refractory dropout


def hash_int(seed, sample, step, layer, neuron, salt):
    """An integer in [0, 2**31 - 1) determined by the arguments (non-negative ints or int64 tensors;
    ``layer >= -1``). Divide by :data:`MODULUS` for a uniform number in [0, 1)."""
    x = salt + 1
    # An LCG step after xor-ing in each argument; two extra rounds to mix the last one.
    for value in (seed % MODULUS, sample % MODULUS, step % MODULUS, layer + 2, neuron % MODULUS, 1, 1):
        x = (x ^ value) * _MULTIPLIER + _INCREMENT  # < 2**62
        # x % MODULUS without a division: 2**31 = 1 (mod 2**31 - 1), so fold the high bits onto the low ones
        # twice (leaves x <= MODULUS + 1), then subtract MODULUS once if needed
        x = (x & MODULUS) + (x >> 31)
        x = (x & MODULUS) + (x >> 31)
        x = x - MODULUS * (x >= MODULUS)
    return x


def unit_hash(seed, sample, step, layer, neuron, salt):
    """:func:`hash_int` scaled to [0, 1) (Python ints; for tensors divide ``hash_int(...).double()``)."""
    return hash_int(seed, sample, step, layer, neuron, salt) / MODULUS
