"""Injected currents: one validated description of what :func:`qsn.simulate` feeds each step.

A current is a scalar, an ``(n,)`` array (held constant), a ``(T, n)`` array (one row per step), or
a function ``t_index -> (n,)`` of the absolute step index (``state.t``) that JAX can trace.
Units: ``r_m * I`` is in mV.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.params import is_concrete

__all__ = ["Current", "as_current", "current_at", "require_steps"]


class Current(NamedTuple):
    """A normalised current source."""

    kind: str  # "const" (scalar or (n,)), "array" ((T, n)), "fn" (t_index -> (n,))
    value: Any  # the array (jax) for "const"/"array", the function for "fn"
    steps: int | None  # rows of an "array" current, else None
    low: float | None  # min I when known on the host (bounds the drive for the mixed-mode propagator plan)
    high: float | None  # max I when known on the host


def _raise_if_not_finite(arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    labels = {0: (), 1: ("neuron",), 2: ("step", "neuron")}[arr.ndim]
    where = ", ".join(f"{label} {i}" for label, i in zip(labels, idx))
    message = f"Argument `current` must be finite, but is {arr[idx].item()!r}"
    raise InvalidInputError(message + (f" at {where}" if where else ""))


def as_current(current: Any, n: int, dtype: Any) -> Current:
    """Validate and normalise ``current`` for a population of ``n`` neurons in ``dtype``.

    Raises:
        InvalidInputError: wrong shape or dtype, a non-finite value (with its step and neuron index),
            or a function that does not return ``(n,)`` for a scalar int32 step index.
    """
    if callable(current) and not isinstance(current, (jax.Array, np.ndarray)):
        try:
            out = jax.eval_shape(current, jax.ShapeDtypeStruct((), jnp.int32))
        except Exception as err:  # the user's function failed to trace: say which argument
            raise InvalidInputError(f"Argument `current` (a function of the step index) failed to trace: {err}") from err
        if not hasattr(out, "shape") or out.shape not in ((), (n,)):
            raise InvalidInputError(
                f"Argument `current`, a function of the step index, must return a scalar or shape (n,) = ({n},), "
                f"but returns {getattr(out, 'shape', type(out).__name__)}"
            )
        return Current("fn", current, None, None, None)
    try:
        arr = current if isinstance(current, jax.Array) else np.asarray(current)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"Argument `current` must be a number, an array or a function, got {type(current).__name__}") from err
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise InvalidInputError(f"Argument `current` must have a real dtype, but has dtype {arr.dtype}")
    if arr.ndim == 0 or (arr.ndim == 1 and arr.shape[0] in (1, n)):
        kind, steps = "const", None
    elif arr.ndim == 2 and arr.shape[1] in (1, n):
        kind, steps = "array", int(arr.shape[0])
    else:
        raise InvalidInputError(
            f"Argument `current` must be a scalar, shape (n,) = ({n},) or (T, n) = (T, {n}), but has shape {arr.shape}"
        )
    value = jnp.asarray(arr, dtype)
    low = high = None
    if is_concrete(arr) and arr.size:
        # Reduce on the device (a (T, n) current may be large and on a GPU), after the cast (1e300
        # overflows float32); the range is finite iff every value is. Only then locate the culprit.
        # (eagerly even while tracing: a concrete current closed over by a jitted function is still known)
        with jax.ensure_compile_time_eval():
            cast = value if is_concrete(value) else jnp.asarray(arr, dtype)  # cast once outside jit
            low, high = float(jnp.min(cast)), float(jnp.max(cast))
        if not (np.isfinite(low) and np.isfinite(high)):
            _raise_if_not_finite(np.asarray(cast))
    elif is_concrete(arr):
        low = high = 0.0
    return Current(kind, value, steps, low, high)


def current_at(current: Current, t: jax.Array, row: jax.Array | None) -> jax.Array:
    """The current of step ``t``: ``row`` for arrays (scanned), ``fn(t)`` or the constant."""
    if current.kind == "array":
        return row
    if current.kind == "fn":
        return current.value(t)
    return current.value


def require_steps(current: Current, steps: int | None) -> int:
    """Number of steps to run: ``steps``, or the rows of a ``(T, n)`` current."""
    if steps is None:
        if current.steps is None:
            raise ConfigurationError("Argument `steps` is required unless `current` has shape (T, n)")
        return current.steps
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ConfigurationError(f"Argument `steps` must be an int >= 0, but is {steps!r}")
    if current.steps is not None and int(steps) != current.steps:
        raise ConfigurationError(f"Argument `steps` is {steps} but `current` has {current.steps} rows (shape (T, n))")
    return int(steps)

