"""Per-step state of a population: membrane, refractory counter and the two-level quantum state.

Layout is structure-of-arrays with the neuron axis *last*, so every component is one contiguous
``(n,)`` row that XLA (and the CUDA kernels) stream through with unit stride:

* pure mode:  ``re0, im0, re1, im1`` — real and imaginary parts of the amplitudes of |0> and |1>;
* mixed mode: ``x, y, z`` — the Bloch vector, ``rho = (1 + x sx + y sy + z sz)/2``, which holds a
  qubit density matrix exactly in three reals (|0> is ``z = +1``).

Separate ``(n,)`` fields (rather than stacked ``(2, n)`` arrays) matter for speed: with an unrolled
scan XLA fuses consecutive steps into one loop, and stacking/unstacking between steps made it
duplicate work (measured 30x slower on CPU at unroll 8).

Observables convert to the user-facing ``(n, 2, 2)`` density matrix (see :mod:`qsn.observables`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError, InvalidStateError
from qsn.params import NeuronParams, is_concrete

__all__ = ["PureState", "MixedState", "State", "init_state", "check_state", "MODES", "mode_of", "resolve_dtype"]

MODES = ("pure", "mixed")


class PureState(NamedTuple):
    """State of a population whose qubits are pure (state vectors)."""

    v: jax.Array  # (n,) float — membrane potential, mV
    refractory: jax.Array  # (n,) int32 — refractory steps still to serve
    re0: jax.Array  # (n,) float — Re <0|psi>
    im0: jax.Array  # (n,) float — Im <0|psi>
    re1: jax.Array  # (n,) float — Re <1|psi>
    im1: jax.Array  # (n,) float — Im <1|psi>
    t: jax.Array  # () int32 — index of the next step (drives callable currents and per-step keys)

    @property
    def amplitudes(self) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """``(re0, im0, re1, im1)``."""
        return (self.re0, self.im0, self.re1, self.im1)

    @property
    def psi(self) -> jax.Array:
        """``(n, 2)`` complex state vectors."""
        return jnp.stack([jax.lax.complex(self.re0, self.im0), jax.lax.complex(self.re1, self.im1)], axis=-1)


class MixedState(NamedTuple):
    """State of a population whose qubits are mixed (density matrices, in Bloch form)."""

    v: jax.Array  # (n,) float — membrane potential, mV
    refractory: jax.Array  # (n,) int32 — refractory steps still to serve
    x: jax.Array  # (n,) float — Bloch vector component <sx>
    y: jax.Array  # (n,) float — <sy>
    z: jax.Array  # (n,) float — <sz> (+1 in |0>), |r| <= 1
    t: jax.Array  # () int32 — index of the next step

    @property
    def bloch(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(x, y, z)``."""
        return (self.x, self.y, self.z)


State = Union[PureState, MixedState]


def mode_of(state: State) -> str:
    """``"pure"`` or ``"mixed"``, read from the state's type."""
    if isinstance(state, PureState):
        return "pure"
    if isinstance(state, MixedState):
        return "mixed"
    raise InvalidStateError(f"Argument `state` must be a qsn PureState or MixedState, but is {type(state).__name__}")


def resolve_dtype(dtype: Any) -> jnp.dtype:
    """Validate a real floating dtype, refusing float64 when JAX's x64 mode is off."""
    dt = jnp.dtype(dtype)
    if dt not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ConfigurationError(f"Argument `dtype` must be float32 or float64, but is {dt}")
    if dt == jnp.float64 and not jax.config.jax_enable_x64:
        raise ConfigurationError(
            "Argument `dtype` is float64 but JAX's x64 mode is off: call "
            "jax.config.update('jax_enable_x64', True) before creating arrays"
        )
    return dt


def init_state(
    params: NeuronParams,
    n: int,
    mode: str = "pure",
    dtype: Any = jnp.float32,
    *,
    v0: Any = None,
    bloch0: Any = None,
) -> State:
    """Initial state of ``n`` neurons: ``V = v0`` (default ``v_rest``), not refractory, qubit in |0>.

    Args:
        params: the population's parameters (fields broadcastable to ``(n,)``).
        n: number of neurons.
        mode: ``"pure"`` (state vectors) or ``"mixed"`` (density matrices).
        dtype: float32 (default) or float64 (needs ``jax_enable_x64``).
        v0: initial potential, mV, scalar or ``(n,)``.
        bloch0: initial Bloch vector ``(3,)`` or ``(3, n)``; in pure mode it must have unit length
            (the state vector is ``cos(theta/2)|0> + e^{i phi} sin(theta/2)|1>``).

    Returns:
        :class:`PureState` or :class:`MixedState` with arrays of ``dtype``.

    Example:
        >>> s = init_state(NeuronParams(), n=1000, mode="mixed")
        >>> s.z.shape
        (1000,)
    """
    if mode not in MODES:
        raise ConfigurationError(f"Argument `mode` must be one of {MODES}, but is {mode!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigurationError(f"Argument `n` must be a positive int, but is {n!r}")
    n = int(n)
    dt = resolve_dtype(dtype)
    params.check_population(n)
    v0_arr = jnp.asarray(params.v_rest if v0 is None else v0, dt)
    if v0_arr.ndim > 1 or (v0_arr.ndim == 1 and v0_arr.shape[0] not in (1, n)):
        raise ConfigurationError(f"Argument `v0` must be a scalar or have shape (n,) = ({n},), but has shape {v0_arr.shape}")
    v = jnp.broadcast_to(v0_arr, (n,))
    ref = jnp.zeros((n,), jnp.int32)
    t = jnp.zeros((), jnp.int32)
    r = jnp.asarray([0.0, 0.0, 1.0] if bloch0 is None else bloch0, dt)
    if r.ndim == 1:
        r = r[:, None]
    try:
        r = jnp.broadcast_to(r, (3, n))
    except ValueError as err:
        raise ConfigurationError(f"Argument `bloch0` must have shape (3,) or (3, n), but has shape {r.shape}") from err
    if mode == "pure" and is_concrete(r):
        # A pure state is a point on the sphere; inside it there is no state vector to build.
        # (Mixed states inside the ball are checked by check_state below.)
        length = np.sqrt(np.sum(np.asarray(r, np.float64) ** 2, axis=0))
        bad = np.abs(length - 1.0) > (1e-6 if dt == jnp.float32 else 1e-12)
        if bad.any():
            i = int(np.argmax(bad))
            raise ConfigurationError(f"Argument `bloch0` must have unit length in pure mode, but |bloch0[:, {i}]| = {length[i]!r}")
    if mode == "mixed":
        s: State = MixedState(v=v, refractory=ref, x=r[0], y=r[1], z=r[2], t=t)
    else:
        # psi = (cos(th/2), e^{i ph} sin(th/2)) with z = cos th, x + i y = sin th e^{i ph}
        c0 = jnp.sqrt(jnp.clip((1.0 + r[2]) / 2.0, 0.0, 1.0))
        s1 = jnp.sqrt(jnp.clip((1.0 - r[2]) / 2.0, 0.0, 1.0))
        rho_xy = jnp.hypot(r[0], r[1])
        safe = jnp.where(rho_xy > 0, rho_xy, 1.0)
        cos_ph = jnp.where(rho_xy > 0, r[0] / safe, 1.0)
        sin_ph = jnp.where(rho_xy > 0, r[1] / safe, 0.0)
        s = PureState(v=v, refractory=ref, re0=c0, im0=jnp.zeros_like(c0), re1=s1 * cos_ph, im1=s1 * sin_ph, t=t)
    check_state(params, s)
    return s


def check_state(params: NeuronParams, state: State, *, atol: float | None = None) -> int:
    """Validate shapes, dtypes and physics of a concrete state; return the population size ``n``.

    Raises:
        InvalidStateError: naming the field (and neuron index) at fault: shape or dtype mismatch,
            non-finite values, ``|psi| != 1`` (pure) or ``|r| > 1`` (mixed), negative refractory count.
    """
    mode = mode_of(state)
    v = state.v
    if getattr(v, "ndim", None) != 1:
        raise InvalidStateError(f"State field `v` must have shape (n,), but has shape {jnp.shape(v)}")
    n = v.shape[0]
    dt = jnp.dtype(v.dtype)
    q_fields = ("re0", "im0", "re1", "im1") if mode == "pure" else ("x", "y", "z")
    expected = {"refractory": ((n,), jnp.dtype(jnp.int32)), "t": ((), jnp.dtype(jnp.int32))}
    for f in q_fields:
        expected[f] = ((n,), dt)
    for f, (shape, dtype) in expected.items():
        arr = getattr(state, f)
        if jnp.shape(arr) != shape or jnp.dtype(arr.dtype) != dtype:
            raise InvalidStateError(
                f"State field `{f}` must have shape {shape} and dtype {dtype}, "
                f"but has shape {jnp.shape(arr)} and dtype {arr.dtype}"
            )
    params.check_population(n)
    if not is_concrete(state):
        return n
    tol = atol if atol is not None else (1e-4 if dt == jnp.float32 else 1e-10)
    for f in ("v",) + q_fields:
        arr = np.asarray(getattr(state, f))
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = np.argwhere(bad)[0]
            raise InvalidStateError(f"State field `{f}` has a non-finite value at neuron {int(idx[0])}")
    if (np.asarray(state.refractory) < 0).any():
        raise InvalidStateError("State field `refractory` must be >= 0")
    norm = sum(np.asarray(getattr(state, f), np.float64) ** 2 for f in q_fields)
    if mode == "pure":
        bad = np.abs(norm - 1.0) > tol
        what = "|psi|^2 = 1"
    else:
        bad = norm > 1.0 + tol
        what = "|r|^2 <= 1 (positive density matrix)"
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidStateError(f"State must satisfy {what}, but neuron {i} has {norm[i]!r}")
    return n
