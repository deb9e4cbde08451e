"""Injected currents: one validated description of what :func:`qsn.simulate` feeds each step.

A current is a scalar, an ``(n,)`` array (held constant), a ``(T, n)`` array (one row per step), or
a function ``t_index -> (n,)`` of the absolute step index (``state.t``) that JAX can trace.
Units: ``r_m * I`` is in mV.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.params import is_concrete

__all__ = ["Current", "ConstantCurrent", "SampledCurrent", "CallableCurrent", "as_current", "require_steps",
           "check_finite_current"]


class Current(eqx.Module):
    """A validated current source: what each step of a run feeds the neurons (``r_m * I``, mV).

    Subclasses know how to give the current of step ``t`` (:meth:`at`), which rows a chunk of the
    run scans (:meth:`window`, :attr:`rows`), and the range of values when it is known on the host
    (:attr:`low`, :attr:`high`), which bounds the drive for the mixed-mode propagator plan. They are
    pytrees: pass them through ``jax.jit`` like arrays (a function is a static field).
    """

    low: float | None = None  # min value when known on the host
    high: float | None = None  # max value when known on the host

    steps: ClassVar[int | None] = None  # rows of a sampled current, else None
    checked: ClassVar[bool] = True  # False: values are only seen at run time (checked there for non-finite values)

    @property
    def rows(self) -> jax.Array | None:
        """``(L, n)`` rows that a scan over this current's steps takes as ``xs`` (None: no per-step rows)."""
        return None

    def window(self, start: int, length: int) -> "Current":
        """The current of steps ``start ... start + length - 1`` of the run (relative to its first step)."""
        return self

    def at(self, t: jax.Array, row: jax.Array | None) -> jax.Array:
        """The current of absolute step ``t`` (``row``: this step's row of :attr:`rows`)."""
        raise NotImplementedError


class ConstantCurrent(Current):
    """The same value every step: a scalar or ``(n,)`` (one per neuron)."""

    value: jax.Array = None  # () or (n,)

    def at(self, t: jax.Array, row: jax.Array | None) -> jax.Array:
        return self.value


class SampledCurrent(Current):
    """One row per step: ``(T, n)`` (or ``(T, 1)``), row ``s`` feeding the run's step ``s``."""

    value: jax.Array = None  # (T, n)

    @property
    def steps(self) -> int:  # type: ignore[override]
        return int(self.value.shape[0])

    @property
    def rows(self) -> jax.Array:
        return self.value

    def window(self, start: int, length: int) -> "SampledCurrent":
        return SampledCurrent(low=self.low, high=self.high, value=self.value[start : start + length])

    def at(self, t: jax.Array, row: jax.Array | None) -> jax.Array:
        return row


class CallableCurrent(Current):
    """A function ``t_index -> (n,)`` of the absolute step index (``state.t``) that JAX can trace,
    e.g. a :class:`qsn.PoissonCurrent` (whose range is known) or a user's ``lambda t: ...``."""

    fn: Callable = eqx.field(default=None, static=True)
    n: int | None = eqx.field(default=None, static=True)  # population size: a scalar result is broadcast to it
    checked: ClassVar[bool] = False

    def at(self, t: jax.Array, row: jax.Array | None) -> jax.Array:
        value = self.fn(t)
        return value if self.n is None else jnp.broadcast_to(value, (self.n,))


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
    if isinstance(current, Current):
        return current
    from qsn.poisson_current import PoissonCurrent

    if isinstance(current, PoissonCurrent):
        if current.n != n:
            raise InvalidInputError(f"Argument `current` is a PoissonCurrent of n={current.n}, but the population has {n} neurons")
        low, high = current.range
        return CallableCurrent(low=low, high=high, fn=current, n=n)
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
        return CallableCurrent(fn=current, n=n)
    try:
        arr = current if isinstance(current, jax.Array) else np.asarray(current)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"Argument `current` must be a number, an array or a function, got {type(current).__name__}") from err
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise InvalidInputError(f"Argument `current` must have a real dtype, but has dtype {arr.dtype}")
    if arr.ndim == 0 or (arr.ndim == 1 and arr.shape[0] in (1, n)):
        cls = ConstantCurrent
    elif arr.ndim == 2 and arr.shape[1] in (1, n):
        cls = SampledCurrent
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
    if cls is ConstantCurrent:
        # one value per neuron, even for a scalar: XLA then compiles the same step for every form of the
        # same current (a broadcast scalar let it contract multiply-adds differently, 1 ulp apart)
        value = jnp.broadcast_to(value, (n,))
    return cls(low=low, high=high, value=value)


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



def check_finite_current(current: Any, n: int) -> jax.Array:
    """``current`` (scalar or ``(n,)``) as an array, refusing non-finite values: on the host with the
    neuron's index, or inside ``jit`` through ``eqx.error_if`` (a reduction over the current and a
    runtime check per call, no host round trip).

    Raises:
        InvalidInputError: wrong shape, or a NaN/inf value.
    """
    current = jnp.asarray(current)
    if current.ndim > 1 or (current.ndim == 1 and current.shape[0] not in (1, n)):
        raise InvalidInputError(
            f"Argument `current` must be a scalar or have shape (n,) = ({n},), but has shape {current.shape}"
        )
    if is_concrete(current):
        _raise_if_not_finite(np.asarray(current))
        return current
    return eqx.error_if(current, ~jnp.all(jnp.isfinite(current)), "Argument `current` must be finite, but has a NaN or inf")
