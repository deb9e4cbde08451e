"""The random draws of a step as functions of the neuron's index: any slice of a population's draw,
computed without the rest.

JAX's Threefry-2x32 (with ``jax_threefry_partitionable``, JAX's default) makes entry ``i`` of
``jax.random.uniform(key, (n,))`` a function of the key and ``i`` alone: counter ``(0, i)``. So a device
that steps neurons ``[offset, offset + size)`` of a group can draw exactly their numbers, and a
partitioned network's stochastic neurons (dephasing, relaxation, quantum jumps) see the numbers they
see on one device (``tests/test_draws.py`` checks the slices against ``jax.random`` bit for bit).

Example:
    >>> key = jax.random.key(0)
    >>> part = uniform_slice(key, 3, 4, jnp.float32)  # == jax.random.uniform(key, (10,))[3:7]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["uniform_slice", "normal_slice", "Draws"]


def uniform_slice(key: jax.Array, offset: Any, size: int, dtype: Any) -> jax.Array:
    """Entries ``[offset, offset + size)`` of ``jax.random.uniform(key, (N,), dtype)`` for any ``N`` past them.

    Args:
        key: a ``jax.random`` key (Threefry-2x32).
        offset: first entry (int or traced int32 scalar).
        size: number of entries (static).
        dtype: float32 or float64.

    Returns:
        ``(size,)`` uniform numbers in ``[0, 1)``, JAX's own for those entries.
    """
    from jax.extend.random import threefry2x32_p

    k = jax.random.key_data(key)
    lo = jnp.asarray(offset).astype(jnp.uint32) + jnp.arange(size, dtype=jnp.uint32)
    hi = jnp.zeros_like(lo)
    b1, b2 = threefry2x32_p.bind(jnp.broadcast_to(k[0], lo.shape), jnp.broadcast_to(k[1], lo.shape), hi, lo)
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64:
        bits = (b1.astype(jnp.uint64) << jnp.uint64(32)) | b2.astype(jnp.uint64)
        one, shift, uint = np.float64(1.0).view(np.uint64), 64 - 52, jnp.uint64
    else:
        bits = b1 ^ b2
        one, shift, uint = np.float32(1.0).view(np.uint32), 32 - 23, jnp.uint32
    f = jax.lax.bitcast_convert_type((bits >> uint(shift)) | uint(one), dtype) - jnp.asarray(1.0, dtype)
    return jnp.maximum(jnp.asarray(0.0, dtype), f)


def normal_slice(key: jax.Array, offset: Any, size: int, dtype: Any) -> jax.Array:
    """Entries ``[offset, offset + size)`` of ``jax.random.normal(key, (N,), dtype)``: as JAX computes a
    standard normal, ``sqrt(2) erfinv(u)`` with ``u`` uniform on ``(-1, 1)`` from the same bits."""
    dtype = jnp.dtype(dtype)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    hi = np.array(1.0, dtype)
    u = jax.lax.max(jnp.asarray(lo), uniform_slice(key, offset, size, dtype) * (hi - lo) + lo)
    return jnp.asarray(np.sqrt(2), dtype) * jax.lax.erf_inv(u)


class Draws(NamedTuple):
    """One stream of a step's random numbers for ``(n,)`` neurons: ``jax.random`` under ``key`` itself,
    or (``offset`` given) entries ``[offset, offset + n)`` of the draw of the whole population."""

    key: jax.Array
    offset: Any = None

    def uniform(self, shape: tuple[int, ...], dtype: Any) -> jax.Array:
        """Uniform on ``[0, 1)``, ``shape`` (1-D when ``offset`` is given)."""
        if self.offset is None:
            return jax.random.uniform(self.key, shape, dtype)
        (size,) = shape
        return uniform_slice(self.key, self.offset, size, dtype)

    def normal(self, shape: tuple[int, ...], dtype: Any) -> jax.Array:
        """Standard normal, ``shape`` (1-D when ``offset`` is given)."""
        if self.offset is None:
            return jax.random.normal(self.key, shape, dtype)
        (size,) = shape
        return normal_slice(self.key, self.offset, size, dtype)
