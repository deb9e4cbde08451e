"""Checking the PRNG keys that users pass in, before any work starts."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError

__all__ = ["check_prng_key"]


def check_prng_key(key: Any, arg: str = "key", *, optional: bool = True) -> Any:
    """Return ``key`` when it is one JAX PRNG key (a typed ``jax.random.key`` or a legacy ``(2,)``
    uint32 ``jax.random.PRNGKey``), or None when ``optional``; raise otherwise.

    Raises:
        ConfigurationError: naming ``arg`` and what was passed, e.g. ``key=42`` (an int seed).

    Example:
        >>> check_prng_key(jax.random.key(0))
    """
    if key is None:
        if optional:
            return None
        raise ConfigurationError(f"Argument `{arg}` is required: pass {arg}=jax.random.key(0)")
    if isinstance(key, (jax.Array, np.ndarray)):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            if key.shape == ():
                return key
        elif key.dtype == np.uint32 and key.shape == (2,):
            return key
        what = f"an array of dtype {key.dtype} and shape {key.shape}"
    else:
        what = repr(key) if isinstance(key, (int, float, str, np.integer)) else f"a {type(key).__name__}"
    raise ConfigurationError(
        f"Argument `{arg}` must be one JAX PRNG key such as jax.random.key(42), but is {what}"
    )
