"""Philox4x32-10, the counter-based random number generator of Salmon et al. (SC'11, "Random123").

A counter-based generator is a pure function ``(counter, key) -> 4 random words``: any draw can be
computed on its own, in any order, by any thread. That is what lets the fused CUDA kernels
(:mod:`qsn.kernels`) make their random input inside the kernel, one counter per (neuron, step),
while the JAX path computes *the same numbers* from the same counters. The CUDA twin of this
module is ``kernels/cuda/common.cuh``; the known-answer vectors of Random123 test both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["philox4x32", "seed_words", "uniform24"]

# Philox4x32 multipliers and Weyl key increments (Salmon et al. 2011, table 2).
_M0, _M1 = np.uint32(0xD2511F53), np.uint32(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
ROUNDS = 10


def _mulhilo(m: np.uint32, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """High and low 32-bit words of the 64-bit product ``m * x`` (uint32 lanes only, so it runs on GPUs
    without x64)."""
    lo = m * x  # wraps mod 2^32
    return _mulhi(m, x), lo


def _mulhi(m: np.uint32, x: jax.Array) -> jax.Array:
    """High word of ``m * x`` from 16-bit halves (exact in uint32 arithmetic)."""
    m_lo, m_hi = np.uint32(int(m) & 0xFFFF), np.uint32(int(m) >> 16)
    x_lo, x_hi = x & np.uint32(0xFFFF), x >> np.uint32(16)
    ll = m_lo * x_lo
    lh = m_lo * x_hi
    hl = m_hi * x_lo
    hh = m_hi * x_hi
    mid = (ll >> np.uint32(16)) + (lh & np.uint32(0xFFFF)) + (hl & np.uint32(0xFFFF))
    return hh + (lh >> np.uint32(16)) + (hl >> np.uint32(16)) + (mid >> np.uint32(16))


def philox4x32(counter: tuple, key: tuple) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Philox4x32-10 of a counter ``(c0, c1, c2, c3)`` under a key ``(k0, k1)``, elementwise.

    Args:
        counter: four uint32 arrays (or ints), broadcast together.
        key: two uint32 scalars or arrays.

    Returns:
        Four uint32 arrays of the broadcast shape: independent, uniformly distributed 32-bit words.

    Example:
        >>> [hex(int(w)) for w in philox4x32((0, 0, 0, 0), (0, 0))]
        ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    c0, c1, c2, c3 = jnp.broadcast_arrays(*(jnp.asarray(c, jnp.uint32) for c in counter))
    k0, k1 = (jnp.asarray(k, jnp.uint32) for k in key)
    for r in range(ROUNDS):
        if r:
            k0, k1 = k0 + _W0, k1 + _W1
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def uniform24(word: jax.Array, dtype=jnp.float32) -> jax.Array:
    """``[0, 1)`` uniform from the top 24 bits of a uint32 word: exact in float32, the same on every
    device (the CUDA kernels use the same formula)."""
    return (jnp.asarray(word, jnp.uint32) >> np.uint32(8)).astype(dtype) * np.asarray(2.0**-24, dtype)


def seed_words(key: jax.Array) -> tuple[int, int]:
    """Two uint32 key words for :func:`philox4x32` drawn from a ``jax.random`` key (host ints)."""
    bits = np.asarray(jax.random.bits(key, (2,), jnp.uint32))
    return int(bits[0]), int(bits[1])
