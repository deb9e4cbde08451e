"""qsn.draws: slices of a population's random numbers, computed without the rest, equal to the same
entries of ``jax.random.uniform`` / ``jax.random.normal`` bit for bit (what lets a partitioned network's
stochastic neurons draw what they draw on one device)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as hs

from qsn.draws import Draws, normal_slice, uniform_slice


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("offset, size, n", [(0, 64, 64), (96, 32, 130), (7, 5, 1000), (4000, 96, 4096)])
@pytest.mark.parametrize("draw, whole", [(uniform_slice, jax.random.uniform), (normal_slice, jax.random.normal)])
def test_a_slice_is_the_slice_of_the_whole_draw(dtype, offset, size, n, draw, whole):
    with jax.enable_x64(dtype == jnp.float64):
        key = jax.random.fold_in(jax.random.key(5), 3)
        full = np.asarray(whole(key, (n,), dtype))
        part = np.asarray(jax.jit(draw, static_argnums=(2, 3))(key, offset, size, dtype))  # as inside a step
        assert part.dtype == full.dtype
        np.testing.assert_array_equal(part, full[offset : offset + size])


_normal_part = jax.jit(lambda key, lo, size: Draws(key, lo).normal((size,), jnp.float32), static_argnums=2)


@settings(max_examples=15, deadline=None)
@given(hs.integers(0, 2**31 - 1), hs.data())
def test_slices_tile_the_whole_draw(seed, data):
    """Any cut of [0, n) into consecutive slices (whole words of 32, as a partition's), drawn slice by
    slice with a traced offset, is the whole draw."""
    n = 320
    cuts = sorted(set(data.draw(hs.lists(hs.integers(1, n // 32 - 1), max_size=4))))
    key = jax.random.key(seed)
    edges = [0, *(32 * c for c in cuts), n]
    parts = [_normal_part(key, jnp.int32(lo), hi - lo) for lo, hi in zip(edges, edges[1:])]
    np.testing.assert_array_equal(np.concatenate([np.asarray(p) for p in parts]),
                                  np.asarray(Draws(key).normal((n,), jnp.float32)))


def test_without_an_offset_the_draws_are_jax_randoms():
    key = jax.random.key(1)
    np.testing.assert_array_equal(np.asarray(Draws(key).uniform((3, 4), jnp.float32)),
                                  np.asarray(jax.random.uniform(key, (3, 4), jnp.float32)))
    np.testing.assert_array_equal(np.asarray(Draws(key).normal((5,), jnp.float32)),
                                  np.asarray(jax.random.normal(key, (5,), jnp.float32)))
