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
from qsn.memory import Budget, largest_fit
from qsn.params import NeuronParams, is_concrete

__all__ = [
    "PureState", "MixedState", "State", "init_state", "check_state", "check_params", "state_bytes", "MODES", "mode_of",
    "resolve_dtype",
]

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


def check_params(params: Any, arg: str = "params") -> NeuronParams:
    """Return ``params`` if it is a :class:`NeuronParams`; raise naming ``arg`` otherwise.

    Raises:
        ConfigurationError: e.g. for a plain dict, with the fix (``qsn.NeuronParams(**d)``).

    Example:
        >>> check_params(NeuronParams(delta=0.3))
    """
    if isinstance(params, NeuronParams):
        return params
    if isinstance(params, dict):
        raise ConfigurationError(
            f"Argument `{arg}` must be a qsn.NeuronParams, but is a dict; build one with qsn.NeuronParams(**{arg})"
        )
    raise ConfigurationError(f"Argument `{arg}` must be a qsn.NeuronParams, but is {type(params).__name__}")


def resolve_dtype(dtype: Any) -> jnp.dtype:
    """Validate a real floating dtype, refusing float64 when JAX's x64 mode is off."""
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise ConfigurationError(f"Argument `dtype` must be float32 or float64, but is {dtype!r}") from None
    if dt not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ConfigurationError(f"Argument `dtype` must be float32 or float64, but is {dt}")
    if dt == jnp.float64 and not jax.config.jax_enable_x64:
        raise ConfigurationError(
            "Argument `dtype` is float64 but JAX's x64 mode is off: call "
            "jax.config.update('jax_enable_x64', True) before creating arrays"
        )
    return dt


def state_bytes(n: int, mode: str, dtype: Any) -> int:
    """Bytes of a population's state arrays: ``v`` and the qubit fields in ``dtype``, ``refractory`` int32.

    Example:
        >>> state_bytes(1000, "pure", jnp.float32)  # v, re0, im0, re1, im1 (4 B) + refractory (4 B)
        24000
    """
    return n * _neuron_bytes(mode, dtype)


def _neuron_bytes(mode: str, dtype: Any) -> int:
    return (1 + _Q_FIELDS[mode]) * jnp.dtype(dtype).itemsize + 4


_Q_FIELDS = {"pure": 4, "mixed": 3}


def _as_float(arg: str, value: Any, dtype: Any) -> jax.Array:
    try:
        return jnp.asarray(value, dtype)
    except (TypeError, ValueError):
        raise ConfigurationError(f"Argument `{arg}` must be numeric (a scalar or an array), but is {value!r}") from None


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

    Raises:
        ConfigurationError: a bad argument (``params`` not a :class:`NeuronParams`, ``n`` not an
            int >= 1, an unknown mode or dtype, ``v0``/``bloch0`` of the wrong shape).
        MemoryBudgetError: the state (``6 n`` or ``5 n`` arrays of 4 or 8 bytes, plus a per-neuron
            ``bloch0`` being converted) would not fit in the default device's memory (see
            :mod:`qsn.memory`); raised before anything is allocated, with the largest ``n`` that fits.

    Example:
        >>> s = init_state(NeuronParams(), n=1000, mode="mixed")
        >>> s.z.shape
        (1000,)
    """
    params = check_params(params)
    if mode not in MODES:
        raise ConfigurationError(f"Argument `mode` must be one of {MODES}, but is {mode!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigurationError(f"Argument `n` must be a positive int, but is {n!r}")
    n = int(n)
    dt = resolve_dtype(dtype)
    params.check_population(n)
    _preflight(n, mode, dt, v0, bloch0)
    v0_arr = _as_float("v0", params.v_rest if v0 is None else v0, dt)
    if v0_arr.ndim > 1 or (v0_arr.ndim == 1 and v0_arr.shape[0] not in (1, n)):
        raise ConfigurationError(f"Argument `v0` must be a scalar or have shape (n,) = ({n},), but has shape {v0_arr.shape}")
    v = jnp.broadcast_to(v0_arr, (n,))
    ref = jnp.zeros((n,), jnp.int32)
    t = jnp.zeros((), jnp.int32)
    r = _as_float("bloch0", [0.0, 0.0, 1.0] if bloch0 is None else bloch0, dt)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2 or r.shape[0] != 3 or r.shape[1] not in (1, n):
        raise ConfigurationError(f"Argument `bloch0` must have shape (3,) or (3, n), but has shape {r.shape}")
    if mode == "pure" and is_concrete(r):
        # A pure state is a point on the sphere; inside it there is no state vector to build.
        # (Mixed states inside the ball are checked by check_state below.)
        length = np.sqrt(np.sum(np.asarray(r, np.float64) ** 2, axis=0))
        bad = np.abs(length - 1.0) > (1e-6 if dt == jnp.float32 else 1e-12)
        if bad.any():
            i = int(np.argmax(bad))
            raise ConfigurationError(f"Argument `bloch0` must have unit length in pure mode, but |bloch0[:, {i}]| = {length[i]!r}")
    # the components are computed on (3, 1) or (3, n) and broadcast last: one Bloch vector for all
    # neurons costs no (n,) temporaries beyond the state itself
    full = lambda x: jnp.broadcast_to(x, (n,))  # noqa: E731
    if mode == "mixed":
        s: State = MixedState(v=v, refractory=ref, x=full(r[0]), y=full(r[1]), z=full(r[2]), t=t)
    else:
        re0, im0, re1, im1 = _amplitudes(r)
        s = PureState(v=v, refractory=ref, re0=full(re0), im0=full(im0), re1=full(re1), im1=full(im1), t=t)
    check_state(params, s)
    return s


def _preflight(n: int, mode: str, dtype: Any, v0: Any, bloch0: Any) -> None:
    """Refuse a state that would not fit, before allocating (see :mod:`qsn.memory`)."""
    per = _neuron_bytes(mode, dtype)
    extra = 0  # a per-neuron v0 / bloch0 converted to a device array of dtype beside the state
    item = jnp.dtype(dtype).itemsize
    if np.ndim(v0) == 1:
        extra += item
    if np.ndim(bloch0) == 2:
        extra += 3 * item
    arrays = 2 + _Q_FIELDS[mode]
    budget = Budget(f"init_state(n={n})")
    budget.add(
        f"{arrays} (n,) {jnp.dtype(dtype).name}/int32 arrays" + (" and the initial values" if extra else ""),
        n * (per + extra),
        hint=lambda free: f"at most n = {largest_fit(free, per + extra):,} fits",
    )
    budget.check()


@jax.jit
def _amplitudes(r: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(re0, im0, re1, im1)`` of the pure states with Bloch vectors ``r`` ``(3, k)``: ``psi = (cos(th/2),
    e^{i ph} sin(th/2))`` with ``z = cos th``, ``x + i y = sin th e^{i ph}`` (one fused pass)."""
    c0 = jnp.sqrt(jnp.clip((1.0 + r[2]) / 2.0, 0.0, 1.0))
    s1 = jnp.sqrt(jnp.clip((1.0 - r[2]) / 2.0, 0.0, 1.0))
    rho_xy = jnp.hypot(r[0], r[1])
    safe = jnp.where(rho_xy > 0, rho_xy, 1.0)
    cos_ph = jnp.where(rho_xy > 0, r[0] / safe, 1.0)
    sin_ph = jnp.where(rho_xy > 0, r[1] / safe, 0.0)
    return c0, jnp.zeros_like(c0), s1 * cos_ph, s1 * sin_ph


def check_state(params: NeuronParams, state: State, *, atol: float | None = None) -> int:
    """Validate shapes, dtypes and physics of a concrete state; return the population size ``n``.

    The value checks run over blocks of ``2**20`` neurons on the host, so checking a state of
    ``10**9`` neurons needs a few tens of MB of host memory beside the state, not gigabytes.

    Raises:
        ConfigurationError: ``params`` is not a :class:`NeuronParams` (e.g. a dict).
        InvalidStateError: naming the field (and neuron index) at fault: shape or dtype mismatch,
            non-finite values, ``|psi| != 1`` (pure) or ``|r| > 1`` (mixed), negative refractory count.

    Example:
        >>> check_state(NeuronParams(), init_state(NeuronParams(), 10))
        10
    """
    params = check_params(params)
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
        for start, (arr,) in _host_blocks((getattr(state, f),), n):
            bad = ~np.isfinite(arr)
            if bad.any():
                raise InvalidStateError(f"State field `{f}` has a non-finite value at neuron {start + int(np.argmax(bad))}")
    for _, (arr,) in _host_blocks((state.refractory,), n):
        if (arr < 0).any():
            raise InvalidStateError("State field `refractory` must be >= 0")
    if mode == "pure":
        what = "|psi|^2 = 1"
    else:
        what = "|r|^2 <= 1 (positive density matrix)"
    for start, parts in _host_blocks(tuple(getattr(state, f) for f in q_fields), n):
        norm = sum(np.asarray(x, np.float64) ** 2 for x in parts)
        bad = np.abs(norm - 1.0) > tol if mode == "pure" else norm > 1.0 + tol
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidStateError(f"State must satisfy {what}, but neuron {start + i} has {norm[i]!r}")
    return n


_BLOCK = 2**20


def _host_blocks(arrays: tuple, n: int):
    """Yield ``(start, host blocks)`` of the ``(n,)`` arrays, ``2**20`` neurons at a time: host and CPU
    arrays are viewed without a copy, device arrays are copied to the host one block at a time."""
    on_host = all(
        not isinstance(a, jax.Array) or all(d.platform == "cpu" for d in a.devices()) for a in arrays
    )
    if on_host:
        arrays = tuple(np.asarray(a) for a in arrays)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        yield start, tuple(np.asarray(a[start:stop]) for a in arrays)
