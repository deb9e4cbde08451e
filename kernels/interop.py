"""Zero-copy exchange of arrays between JAX and CuPy through DLPack.

A JAX array on a GPU and the CuPy array made from it share one buffer; nothing is copied. Arrays on
another device (a CPU JAX array) are copied once to the current CUDA device.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

__all__ = ["to_cupy", "to_jax"]


def to_cupy(x: Any) -> Any:
    """A CuPy view of ``x`` (a JAX array on the GPU: zero-copy via DLPack), else a device copy."""
    from qsn.kernels.backend import require

    cupy = require()
    if isinstance(x, jax.Array) and all(d.platform == "gpu" for d in x.devices()):
        return cupy.from_dlpack(x)
    return cupy.asarray(np.asarray(x))


def to_jax(x: Any) -> jax.Array:
    """A JAX array sharing ``x``'s GPU buffer (DLPack), or, when JAX has no GPU backend (a CPU-only
    jaxlib beside CuPy), a host copy on JAX's default device."""
    if any(d.platform == "gpu" for d in jax.devices()):
        return jax.dlpack.from_dlpack(x)
    return jax.numpy.asarray(x.get())
