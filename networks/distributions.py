"""Random weights and delays: a value per synapse from a scalar, an array or a distribution.

Distributions are drawn from the projection's key for every slot of its ELL rows (see
:mod:`qsn.networks.connectivity`), block by block in kernels of one shape; padding slots get 0.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.networks.connectivity import block_size, fold

__all__ = ["Distribution", "normal", "lognormal", "uniform", "per_synapse", "host_empty", "as_values", "upper_bound"]


class Distribution(eqx.Module):
    """A distribution of per-synapse values; build one with :func:`normal`, :func:`lognormal`, :func:`uniform`."""

    name: str = eqx.field(static=True)
    a: float  # traced when drawn, so distributions that differ only in a, b share one compilation
    b: float
    clip: str | None = eqx.field(static=True, default=None)

    def draw(self, key: jax.Array, m: int, dtype: Any) -> jax.Array:
        """``(m,)`` values in ``dtype``."""
        if self.name == "normal":
            x = self.a + self.b * jax.random.normal(key, (m,), dtype)
            if self.clip == "sign":
                # keep the sign of the mean (an excitatory weight never turns inhibitory): clip at 0
                x = jnp.where(self.a >= 0, jnp.maximum(x, 0), jnp.minimum(x, 0))
            return x
        if self.name == "lognormal":
            return jnp.exp(self.a + self.b * jax.random.normal(key, (m,), dtype)) * (-1.0 if self.clip == "negative" else 1.0)
        return jax.random.uniform(key, (m,), dtype, minval=self.a, maxval=self.b)


def _finite(name: str, **values: float) -> None:
    for k, v in values.items():
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{name}: {k} must be a real number, but is {v!r}") from None
        if not math.isfinite(v):
            raise ConfigurationError(f"{name}: {k} must be finite, but is {v!r}")


def normal(mean: float, std: float, *, clip_sign: bool = True) -> Distribution:
    """Normal ``N(mean, std^2)``; with ``clip_sign`` values of the wrong sign are clipped to 0 (an
    excitatory weight never turns inhibitory)."""
    _finite("normal", mean=mean, std=std)
    if std < 0:
        raise ConfigurationError(f"normal: std must be >= 0, but is {std!r}")
    return Distribution("normal", float(mean), float(std), "sign" if clip_sign else None)


def lognormal(mu: float, sigma: float, *, negative: bool = False) -> Distribution:
    """``exp(N(mu, sigma^2))`` (``mu``, ``sigma`` of the underlying normal, as NumPy/NEST); ``negative``
    flips the sign (inhibitory weights)."""
    _finite("lognormal", mu=mu, sigma=sigma)
    if sigma < 0:
        raise ConfigurationError(f"lognormal: sigma must be >= 0, but is {sigma!r}")
    return Distribution("lognormal", float(mu), float(sigma), "negative" if negative else None)


def uniform(low: float, high: float) -> Distribution:
    """Uniform on ``[low, high)``."""
    _finite("uniform", low=low, high=high)
    if not high >= low:
        raise ConfigurationError(f"uniform: high must be >= low, but got low={low!r}, high={high!r}")
    return Distribution("uniform", float(low), float(high))


def host_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised host array aligned to 64 bytes, which ``jax.device_put`` adopts without a copy
    on the CPU (the built projection's arrays are written here, then handed over)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _finish(x: jax.Array, valid: jax.Array, dt: jax.Array, dtype: Any, steps: bool):
    """Masked values (0 at padding) or, with ``steps``, whole steps ``rint(x / dt)`` int32; and the
    smallest and largest valid ``x``."""
    lo = jnp.min(jnp.where(valid, x, jnp.inf), initial=jnp.inf)
    hi = jnp.max(jnp.where(valid, x, -jnp.inf), initial=-jnp.inf)
    out = jnp.rint(x / dt).astype(jnp.int32) if steps else x
    return jnp.where(valid, out, jnp.zeros((), out.dtype)), lo, hi


# jitted whole, for one block shape: op by op, each new size would compile every primitive separately
@functools.partial(jax.jit, static_argnums=(5, 6))
def _drawn_block(spec: Distribution, key: jax.Array, targets: jax.Array, n_post: jax.Array, dt: jax.Array, dtype: Any,
                 steps: bool):
    return _finish(spec.draw(key, targets.shape[0], dtype), targets < n_post, dt, dtype, steps)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _given_block(values: jax.Array, targets: jax.Array, n_post: jax.Array, dt: jax.Array, dtype: Any, steps: bool):
    x = jnp.broadcast_to(values.astype(dtype), targets.shape)
    return _finish(x, targets < n_post, dt, dtype, steps)


def per_synapse(owner: str, spec: Any, key: jax.Array, targets: np.ndarray, n_post: int,
                slot: Callable[[], np.ndarray] | None, dtype: Any, *, dt: float | None = None,
                block: int) -> tuple[np.ndarray, float, float]:
    """The value of ``spec`` for every synapse of the ELL rows ``targets`` ``(rows, width)`` (padding
    ``n_post``), in ``dtype``, 0 at padding; with ``dt`` (ms) the whole steps ``rint(value / dt)``
    int32 instead. Also the smallest and largest valid value (``inf``, ``-inf`` when there is none).

    ``spec``: a scalar, a :class:`Distribution` (drawn per slot of the rows, block by block from
    ``key``) or a 1-D array in the order ``slot()`` maps to flat positions of ``targets``. ``block``:
    slots per kernel call (the kernels' one shape).
    """
    flat = targets.reshape(-1)
    out = host_empty(targets.shape, np.int32 if dt is not None else dtype)
    out_flat = out.reshape(-1)
    dtype, steps = jnp.dtype(dtype), dt is not None
    d = jnp.asarray(1.0 if dt is None else dt, dtype)
    npost = np.int32(n_post)
    given = None
    if not isinstance(spec, Distribution):
        arr = as_values(owner, spec)
        if arr.ndim == 0:
            given = _scalar(owner, arr, dtype)
        else:
            m = int(np.count_nonzero(flat < n_post))
            if arr.shape != (m,):
                raise ConfigurationError(f"{owner} as an array must have one value per synapse, shape ({m},), but has shape {arr.shape}")
            arr = np.asarray(arr)
            if not np.all(np.isfinite(arr)):
                bad = int(np.flatnonzero(~np.isfinite(arr))[0])
                raise ConfigurationError(f"{owner}[{bad}] must be finite, but is {float(arr[bad])}")
            if slot is None:
                raise _unordered(owner)
            where = slot()
            given = np.zeros(flat.size, dtype)
            given[where[where >= 0]] = arr[where >= 0]
    if given is not None and given.ndim == 0:  # one value (computed by the kernel), broadcast on the host
        value, any_valid = _one_value(given, d, dtype, steps), False
        for start in range(0, flat.size, block):
            valid = flat[start : start + block] < n_post
            out_flat[start : start + block] = np.where(valid, value, out.dtype.type(0))
            any_valid = any_valid or bool(valid.any())
        return out, float(given) if any_valid else math.inf, float(given) if any_valid else -math.inf
    lo, hi = math.inf, -math.inf
    for b, start in enumerate(range(0, flat.size, block)):
        stop = min(start + block, flat.size)
        tb = flat[start:stop]
        if tb.size < block:
            tb = np.concatenate([tb, np.full(block - tb.size, n_post, np.int32)])
        if isinstance(spec, Distribution):
            x, l, h = _drawn_block(spec, fold(key, b), tb, npost, d, dtype, steps)
        else:
            gb = given[start:stop]
            x, l, h = _given_block(np.concatenate([gb, np.zeros(block - gb.size, dtype)]), tb, npost, d, dtype, steps)
        out_flat[start:stop] = np.asarray(x)[: stop - start]
        lo, hi = min(lo, float(l)), max(hi, float(h))
    return out, lo, hi


def _scalar(owner: str, arr: np.ndarray, dtype: Any) -> jax.Array:
    if not np.isfinite(float(arr)):
        raise ConfigurationError(f"{owner} must be finite, but is {float(arr)!r}")
    return jnp.asarray(arr, dtype)


def _one_value(given: jax.Array, d: jax.Array, dtype: Any, steps: bool) -> np.ndarray:
    """A scalar value as every synapse gets it (the kernel's rounding to whole steps included)."""
    x, _, _ = _given_block(given, np.zeros(1, np.int32), np.int32(1), d, dtype, steps)
    return np.asarray(x)[0]


def _unordered(owner: str) -> ConfigurationError:
    return ConfigurationError(f"{owner} as an array needs explicit connectivity (explicit(pre, post)) to fix its order")


class TileValues:
    """A :attr:`~qsn.networks.connectivity.Rows.place` writer of ``spec``'s value for every placed synapse
    into ``out`` (rows of a rule drawn by target tiles): a scalar as it is; a :class:`Distribution` drawn
    for each whole tile, in its synapses' order, from ``fold_in(key, tile)`` (so the synapses onto a
    device's slice get the values the whole projection gives them); with ``dt`` (ms) whole steps
    ``rint(value / dt)`` (int32 ``out``). ``lo`` and ``hi`` are the smallest and largest value of the
    tiles written (``inf``, ``-inf`` without any): the projection's when every tile is placed. Call
    :meth:`finish` after the last tile.

    Example:
        >>> import numpy as np
        >>> out = np.zeros((2, 3))
        >>> TileValues("w", 0.5, None, out, np.float64)  # doctest: +ELLIPSIS
        <...TileValues object at ...>
    """

    def __init__(self, owner: str, spec: Any, key: jax.Array | None, out: np.ndarray, dtype: Any, *,
                 dt: float | None = None) -> None:
        self.spec, self.key, self.out, self.flat = spec, key, out, out.reshape(-1)
        self.dtype, self.steps = jnp.dtype(dtype), dt is not None
        self.d = jnp.asarray(1.0 if dt is None else dt, dtype)
        self.lo, self.hi, self.value = math.inf, -math.inf, None
        if not isinstance(spec, Distribution):
            arr = as_values(owner, spec)
            if arr.ndim != 0:
                raise _unordered(owner)
            given = _scalar(owner, arr, dtype)
            self.value, self.given = _one_value(given, self.d, self.dtype, self.steps), float(given)
        else:
            out[...] = 0  # padding; the placed synapses are written over it

    def finish(self, valid: Callable[[int, int], np.ndarray]) -> None:
        """Write a scalar's value once every tile is placed, rows ``[r0, r1)`` at a time where
        ``valid(r0, r1)`` (the synapses' slots; 0 elsewhere): one pass, no scatter."""
        if self.value is None:
            return
        step = max(1, (1 << 22) // max(1, self.out.shape[1]))
        zero = self.out.dtype.type(0)
        for r0 in range(0, self.out.shape[0], step):
            self.out[r0 : r0 + step] = np.where(valid(r0, r0 + step), self.value, zero)

    def __call__(self, placed: Any) -> None:
        if placed.drawn == 0:
            return
        if self.value is not None:
            self.lo, self.hi = min(self.lo, self.given), max(self.hi, self.given)
            return
        key, size = fold(self.key, placed.tile), block_size(placed.drawn)
        x = np.empty(placed.drawn, self.flat.dtype)
        valid = np.zeros(size, np.int32)
        for b, start in enumerate(range(0, placed.drawn, size)):
            stop = min(start + size, placed.drawn)
            valid[stop - start:] = 1  # entries past the tile's synapses: padding
            xb, lo, hi = _drawn_block(self.spec, fold(key, b), valid, np.int32(1), self.d, self.dtype, self.steps)
            x[start:stop] = np.asarray(xb)[: stop - start]
            self.lo, self.hi = min(self.lo, float(lo)), max(self.hi, float(hi))
        self.flat[placed.positions] = x if placed.sel is None else x[placed.sel]


def as_values(owner: str, spec: Any) -> Any:
    """A scalar or array ``spec`` as a float64 NumPy array (a JAX array as it is); raise naming ``owner``."""
    if isinstance(spec, jax.Array):
        if not jnp.issubdtype(spec.dtype, jnp.floating) and not jnp.issubdtype(spec.dtype, jnp.integer):
            raise ConfigurationError(f"{owner} must be real, but has dtype {spec.dtype}")
        return spec
    try:
        arr = np.asarray(spec, np.float64)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{owner} must be a number, an array or a distribution (normal, lognormal, uniform), but is {spec!r}"
        ) from None
    if spec is None or (arr.ndim == 0 and isinstance(spec, (str, bytes))):
        raise ConfigurationError(f"{owner} must be a number, an array or a distribution (normal, lognormal, uniform), but is {spec!r}")
    return arr


def upper_bound(owner: str, spec: Any) -> float | None:
    """The largest value ``spec`` can take (a scalar, an array, a :func:`uniform`), or None when it has no
    finite bound known before drawing (normal, lognormal, other distributions).

    Example:
        >>> upper_bound("delay", uniform(0.5, 2.0))
        2.0
    """
    if isinstance(spec, Distribution):
        return spec.b if spec.name == "uniform" and type(spec) is Distribution else None
    arr = np.asarray(as_values(owner, spec), np.float64)
    return float(np.max(arr)) if arr.size and np.all(np.isfinite(arr)) else None
