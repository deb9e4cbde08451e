"""Random weights and delays: a value per synapse from a scalar, an array or a distribution.

Distributions are drawn on the device from the projection's key, one value per synapse in the
``(pre, post)`` order of :mod:`qsn.networks.connectivity`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError

__all__ = ["Distribution", "normal", "lognormal", "uniform", "sample", "as_values", "upper_bound"]


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


@functools.partial(jax.jit, static_argnums=(2, 3))
def _draw(spec: Distribution, key: jax.Array, size: int, dtype: Any) -> jax.Array:
    # jitted whole: op by op, each new size would compile every primitive of the draw separately
    return spec.draw(key, size, dtype)


def sample(owner: str, spec: Any, key: jax.Array, size: int, m: int, order: jax.Array | None, dtype: Any) -> jax.Array:
    """``(size,)`` per-synapse values of ``spec`` in the sorted synapse order, the first ``m`` valid
    (the rest padding). ``spec``: a scalar, an ``(m,)`` array in the user's synapse order, or a
    :class:`Distribution`; ``order`` maps sorted positions to the user's."""
    if isinstance(spec, Distribution):
        return _draw(spec, key, size, jnp.dtype(dtype))
    arr = as_values(owner, spec)
    if arr.ndim == 0:
        if not np.isfinite(float(arr)):
            raise ConfigurationError(f"{owner} must be finite, but is {float(arr)!r}")
        return jnp.full((size,), float(arr), dtype)
    if arr.shape != (m,):
        raise ConfigurationError(f"{owner} as an array must have one value per synapse, shape ({m},), but has shape {arr.shape}")
    if not bool(jnp.all(jnp.isfinite(arr))):
        bad = int(np.flatnonzero(~np.isfinite(np.asarray(arr)))[0])
        raise ConfigurationError(f"{owner}[{bad}] must be finite, but is {float(np.asarray(arr)[bad])}")
    if order is None:
        raise ConfigurationError(f"{owner} as an array needs explicit connectivity (explicit(pre, post)) to fix its order")
    arr = jnp.concatenate([jnp.asarray(arr, dtype), jnp.zeros((size - m,), dtype)])
    return arr[order]


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
