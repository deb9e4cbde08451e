"""Coupled clusters: up to 12 QSNs whose qubits share one ``2^k`` state vector (opt-in "quantum synapse").

Each neuron keeps its LIF membrane and refractory counter (DESIGN §1 steps 1, 2, 5, 6, unchanged), but
the ``k`` qubits evolve together under (ħ = 1, energies in 1/ms, σz|0> = +|0>, qubit 0 = most significant
bit of the state index, as in :mod:`qsn.circuits`)::

    H = Σ_i (a_i σz_i + Δ_i σx_i) + Σ_{i<j} J_ij σz_i σz_j,      a_i = (V_i - v_rest_i)/(v_th_i - v_rest_i)

with ``V_i`` taken after the membrane step and ``H`` held constant over ``dt``. Two propagators:

* ``method="exact"``: ``psi <- exp(-i H dt) psi`` from ``eigh`` of the dense real-symmetric ``H``
  (``O(8^k)`` per step).
  Its gradient is not defined where ``H`` has degenerate eigenvalues (e.g. identical uncoupled neurons).
* ``method="trotter"``: Strang splitting of ``H = H_loc + H_zz`` into the one-qubit terms, applied as
  exact closed-form rotations (they commute with each other), and the diagonal ZZ term, applied as a
  phase vector: ``exp(-i H_zz h/2) exp(-i H_loc h) exp(-i H_zz h/2)`` with ``h = dt/substeps``.
  ``O(k 2^k)`` per substep. The error per
  step is ``O(dt^3/substeps^2)`` and comes only from the commutator ``[H_loc, H_zz]`` (∝ J Δ), so with
  ``J = 0`` the method is exact; over a run of fixed length the error is ``O(dt^2/substeps^2)``.

``method="auto"`` (default) is exact for ``k <= 6`` and Trotter above.

Spikes are threshold spikes only: the coupled mode has no decoherence and no quantum-jump spiking
(finite ``t1``/``t2`` or ``jump_rate > 0`` raise :class:`~qsn.errors.ConfigurationError`). A spike of
neuron ``i`` sets ``V_i = v_rest``, starts its refractory period and resets qubit ``i`` to |0>. **The
reset of an entangled register is a choice of this module**: qubit ``i`` is projected onto |1> (the
spike heralds activity, as DESIGN's "collapse to |1>"), the state renormalised and ``X_i`` applied; if
``P(1_i) <= tiny`` (1e-12 of the norm in float64, 1e-8 in float32) there is nothing to collapse and
qubit ``i`` is projected onto |0> instead. Neurons spiking in the same step are reset in index order.
For a product state (e.g. ``J = 0``) this is exactly the single-neuron reset, up to a global phase.

Example:
    >>> import numpy as np, qsn
    >>> from qsn.cluster import ClusterParams, init_cluster, simulate_cluster
    >>> J = 0.2 * (np.ones((3, 3)) - np.eye(3))                        # all-to-all ZZ coupling, 1/ms
    >>> p = ClusterParams(qsn.NeuronParams(delta=0.3), J)
    >>> s = init_cluster(p, v0=[-60.0, -65.0, -70.0])
    >>> r = simulate_cluster(p, s, 16.0, steps=1000, record=("spikes", "p1", "concurrence"))
    >>> r.p1.shape, r.concurrence.shape, r.pairs          # (1000, 3), (1000, 3), ((0, 1), (0, 2), (1, 2))
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import qsn.circuits as qc
from qsn.dynamics import rotation
from qsn.stepper import Stepper
from qsn.errors import ConfigurationError, InvalidInputError, InvalidStateError
from qsn.params import NeuronParams, is_concrete
from qsn.state import resolve_dtype

__all__ = [
    "MAX_NEURONS",
    "METHODS",
    "RECORDABLE",
    "ClusterParams",
    "ClusterResult",
    "ClusterState",
    "cluster_step",
    "init_cluster",
    "simulate_cluster",
]

MAX_NEURONS = 12  # 2^12 amplitudes; the exact method's dense H is (4096, 4096) there
METHODS = ("auto", "exact", "trotter")
AUTO_EXACT_MAX = 6  # "auto" is exact up to this k (eigh of a 64 x 64 matrix per step)
RECORDABLE = ("spikes", "v", "p1", "concurrence", "psi")
_TINY = {jnp.dtype(jnp.complex64): 1e-8, jnp.dtype(jnp.complex128): 1e-12}  # reset threshold on P(1_i)


def _as_coupling(x: Any) -> Any:
    if isinstance(x, jax.core.Tracer):
        return x
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigurationError(f"Argument `J` must be a real (k, k) matrix, but is {x!r}") from err


class ClusterParams(eqx.Module):
    """Parameters of a coupled cluster of ``k`` neurons.

    Args:
        neuron: :class:`~qsn.NeuronParams`, fields scalar or ``(k,)``; ``t1 = t2 = inf`` and
            ``jump_rate = 0`` (the coupled mode has no decoherence and no jump spiking).
        J: ``(k, k)`` symmetric ZZ coupling, 1/ms, zero diagonal, ``1 <= k <= 12``; ``H`` holds
            ``Σ_{i<j} J_ij σz_i σz_j``.

    Raises:
        ConfigurationError: naming ``J`` (shape, ``k``, symmetry, diagonal, finiteness) or the
            ``neuron`` field at fault.

    Example:
        >>> p = ClusterParams(NeuronParams(delta=0.3), J=[[0.0, 0.5], [0.5, 0.0]])
        >>> p.k
        2
    """

    neuron: NeuronParams
    J: Any = eqx.field(converter=_as_coupling)

    def __check_init__(self) -> None:
        if not isinstance(self.neuron, NeuronParams):
            raise ConfigurationError(f"Argument `neuron` must be a NeuronParams, but is {type(self.neuron).__name__}")
        shape = jnp.shape(self.J)
        if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 1:
            raise ConfigurationError(f"Argument `J` must be a square (k, k) matrix with k >= 1, but has shape {shape}")
        if shape[0] > MAX_NEURONS:
            raise ConfigurationError(
                f"Argument `J` must be at most ({MAX_NEURONS}, {MAX_NEURONS}) (k <= {MAX_NEURONS} neurons share one "
                f"2^k state vector), but has shape {shape} (k = {shape[0]})"
            )
        self.neuron.check_population(shape[0])
        if is_concrete(self.J):
            _check_coupling(self.J)
        for name, ok in (("t1", np.isinf), ("t2", np.isinf), ("jump_rate", lambda x: x == 0)):
            value = getattr(self.neuron, name)
            if is_concrete(value) and not np.all(ok(value)):
                want = "0" if name == "jump_rate" else "inf"
                raise ConfigurationError(
                    f"Argument `neuron.{name}` must be {want} in the coupled mode (no decoherence, no jump "
                    f"spiking), but is {np.asarray(value).tolist()!r}"
                )

    @property
    def k(self) -> int:
        """Number of neurons (qubits) in the cluster."""
        return int(jnp.shape(self.J)[0])


def _check_coupling(j: np.ndarray) -> None:
    if not np.isfinite(j).all():
        raise ConfigurationError(f"Argument `J` must be finite, but is {j.tolist()!r}")
    if np.any(np.diag(j) != 0):
        i = int(np.argmax(np.diag(j) != 0))
        raise ConfigurationError(f"Argument `J` must have a zero diagonal, but J[{i}, {i}] = {j[i, i]!r}")
    asym = np.abs(j - j.T) > 1e-12 * max(1.0, float(np.abs(j).max()))
    if asym.any():
        i, m = (int(x) for x in np.argwhere(asym)[0])
        raise ConfigurationError(f"Argument `J` must be symmetric, but J[{i}, {m}] = {j[i, m]!r} != {j[m, i]!r}")


class ClusterState(NamedTuple):
    """State of one cluster (vmap over a leading axis for batches of clusters)."""

    v: jax.Array  # (k,) float — membrane potentials, mV
    refractory: jax.Array  # (k,) int32 — refractory steps still to serve
    psi: jax.Array  # (2^k,) complex of v's precision — the shared register, qubit 0 = MSB
    t: jax.Array  # () int32 — index of the next step

    @property
    def p1(self) -> jax.Array:
        """``(k,)`` probability that qubit ``i`` reads |1> (the single-neuron ``p_excited``)."""
        k = self.v.shape[-1]
        return jnp.asarray(_bits_np(k), self.v.dtype).T @ qc.probabilities(self.psi)

    def concurrence(self, pairs: Sequence[tuple[int, int]] | None = None) -> jax.Array:
        """``(P,)`` Wootters concurrence of the reduced state of each pair ``(i, j)`` (default: all ``i < j``)."""
        return _concurrences(self.psi, _pairs(pairs, self.v.shape[-1]))


class ClusterResult(NamedTuple):
    """What :func:`simulate_cluster` returns: the final state and the recordings (None where not asked)."""

    state: ClusterState
    spike_count: jax.Array  # (k,) int32 — spikes per neuron over the run
    spikes: jax.Array | None  # (T, k) bool
    v: jax.Array | None  # (T, k) float — mV, after each step
    p1: jax.Array | None  # (T, k) float — P(qubit i = |1>) after each step
    concurrence: jax.Array | None  # (T, P) float — per pair in `pairs`, after each step
    psi: jax.Array | None  # (T, 2^k) complex — the register after each step
    pairs: tuple  # the (i, j) pairs of `concurrence`


@functools.cache
def _bits_np(k: int) -> np.ndarray:
    """``(2^k, k)`` bit ``b_i`` of each basis index (qubit 0 = MSB)."""
    return (np.arange(2**k)[:, None] >> np.arange(k - 1, -1, -1)[None, :]) & 1


def _pairs(pairs: Any, k: int) -> tuple[tuple[int, int], ...]:
    if pairs is None:
        return tuple(itertools.combinations(range(k), 2))
    try:
        out = tuple((int(i), int(j)) for i, j in pairs)
    except (TypeError, ValueError):
        out = ((0, 0),)
    if not all(0 <= i < k and 0 <= j < k and i != j for i, j in out):
        raise ConfigurationError(f"Argument `pairs` must hold pairs of distinct ints in [0, {k}), but is {pairs!r}")
    return out


def _concurrences(psi: jax.Array, pairs: tuple[tuple[int, int], ...]) -> jax.Array:
    if not pairs:
        return jnp.zeros((0,), jnp.real(psi).dtype)
    rhos = jnp.stack([qc.reduced_density_matrix(psi, pair) for pair in pairs])
    return jax.vmap(qc.concurrence)(rhos)


class _Constants(NamedTuple):
    lif: Stepper  # the neurons' own step, whose membrane and refractory pieces the cluster uses
    delta: jax.Array  # (k,) 1/ms
    zz: jax.Array  # (2^k,) Σ_{i<j} J_ij z_i z_j for each basis state, 1/ms
    z: jax.Array  # (2^k, k) z_i = ±1 of each basis state
    xfield: jax.Array | None  # (2^k, 2^k) Σ_i Δ_i σx_i (exact method only)


def _constants(params: ClusterParams, dtype: Any, method: str) -> _Constants:
    k = params.k
    xp = np if is_concrete(params.J) else jnp  # on the host in float64 when concrete
    z = xp.asarray(1 - 2 * _bits_np(k), params.J.dtype)
    zz = 0.5 * xp.einsum("bi,ij,bj->b", z, params.J, z)  # Σ_{i<j}: J is symmetric with a zero diagonal
    lif = Stepper.build(params.neuron, "pure", dtype)
    delta = jnp.broadcast_to(lif.constants.delta, (k,))
    xfield = None
    if method == "exact":
        rows = np.repeat(np.arange(2**k), k)
        cols = rows ^ np.tile(1 << np.arange(k - 1, -1, -1), 2**k)  # flip bit of qubit i
        xfield = jnp.zeros((2**k, 2**k), dtype).at[rows, cols].add(jnp.tile(delta, 2**k))
    return _Constants(lif=lif, delta=delta, zz=jnp.asarray(zz, dtype), z=jnp.asarray(z, dtype), xfield=xfield)


def _resolve_method(method: str, k: int, substeps: Any) -> str:
    if method not in METHODS:
        raise ConfigurationError(f"Argument `method` must be one of {METHODS}, but is {method!r}")
    if not isinstance(substeps, int | np.integer) or substeps < 1:
        raise ConfigurationError(f"Argument `substeps` must be a positive integer, but is {substeps!r}")
    if method == "auto":
        return "exact" if k <= AUTO_EXACT_MAX else "trotter"
    return method


def _evolve_exact(c: _Constants, psi: jax.Array, a: jax.Array) -> jax.Array:
    h = c.xfield + jnp.diag(c.z @ a + c.zz)
    w, vecs = jnp.linalg.eigh(h)
    vecs = vecs.astype(psi.dtype)
    phases = jnp.exp(-1j * (w * c.lif.constants.dt).astype(psi.dtype))
    return vecs @ (phases * (vecs.T @ psi))


def _evolve_trotter(c: _Constants, psi: jax.Array, a: jax.Array, substeps: int) -> jax.Array:
    k = a.shape[0]
    h = c.lif.constants.dt / substeps
    # exp(-i h (a σz + Δ σx)) = cos(w h) - i sin(w h)/w (a σz + Δ σx) per qubit: the single neuron's rotation
    cos, s = (x.astype(psi.dtype) for x in rotation(a, c.delta, h))
    sa, sd = s * a.astype(psi.dtype), s * c.delta.astype(psi.dtype)
    u = jnp.stack([jnp.stack([cos - 1j * sa, -1j * sd], -1), jnp.stack([-1j * sd, cos + 1j * sa], -1)], -2)
    half = jnp.exp(-0.5j * (c.zz * h).astype(psi.dtype))

    def local(psi: jax.Array) -> jax.Array:
        for i in range(k):
            psi = qc.apply(psi, u[i], i)
        return psi

    psi = half * psi
    psi = jax.lax.fori_loop(0, substeps - 1, lambda _, p: half * half * local(p), psi)
    return half * local(psi)


def _reset(psi: jax.Array, spikes: jax.Array) -> jax.Array:
    """Reset qubit ``i`` to |0> where ``spikes[i]``: collapse to |1>, renormalise, X (or project on |0>)."""
    k = spikes.shape[0]
    tiny = _TINY[jnp.dtype(psi.dtype)]
    for i in range(k):
        t = psi.reshape(2**i, 2, 2 ** (k - 1 - i))
        p = jnp.sum(jnp.real(t) ** 2 + jnp.imag(t) ** 2, axis=(0, 2))
        use1 = p[1] > tiny * (p[0] + p[1])
        src = jnp.where(use1, t[:, 1, :], t[:, 0, :])
        norm = jnp.sqrt(jnp.where(use1, p[1], p[0])).astype(psi.dtype)
        new = jnp.stack([src / norm, jnp.zeros_like(src)], axis=1).reshape(psi.shape)
        psi = jnp.where(spikes[i], new, psi)
    return psi


def _advance(c: _Constants, state: ClusterState, current: jax.Array, method: str, substeps: int):
    """One step on precomputed constants; the membrane is the neurons' :class:`qsn.Stepper` piece."""
    lif = c.lif.constants
    v, is_ref, ref = c.lif.membrane(state.v, state.refractory, current)
    a = jnp.broadcast_to((v - lif.v_rest) * lif.inv_range, state.v.shape)
    if method == "exact":
        psi = _evolve_exact(c, state.psi, a)
    else:
        psi = _evolve_trotter(c, state.psi, a, substeps)
    spikes = ~is_ref & (v >= lif.v_th)
    v = jnp.where(spikes, lif.v_reset, v)
    ref = c.lif.start_refractory(ref, spikes)
    psi = _reset(psi, spikes)
    return ClusterState(v=v, refractory=ref, psi=psi, t=state.t + 1), spikes


_advance_jit = jax.jit(_advance, static_argnames=("method", "substeps"))


def _check_state(params: ClusterParams, state: Any) -> None:
    if not isinstance(state, ClusterState):
        raise InvalidStateError(f"Argument `state` must be a ClusterState, but is {type(state).__name__}")
    k, dt = params.k, jnp.dtype(state.v.dtype)
    cdt = jnp.dtype(jnp.complex128 if dt == jnp.float64 else jnp.complex64)
    i32 = jnp.dtype(jnp.int32)
    want = {"v": ((k,), dt), "refractory": ((k,), i32), "psi": ((2**k,), cdt), "t": ((), i32)}
    for name, (shape, dtype) in want.items():
        arr = getattr(state, name)
        if jnp.shape(arr) != shape or jnp.dtype(arr.dtype) != dtype or dt not in (jnp.float32, jnp.float64):
            raise InvalidStateError(
                f"State field `{name}` must have shape {shape} and dtype {dtype} (v float32 or float64), "
                f"but has shape {jnp.shape(arr)} and dtype {arr.dtype}"
            )


def init_cluster(params: ClusterParams, dtype: Any = jnp.float32, *, v0: Any = None, psi0: Any = None) -> ClusterState:
    """Initial state: ``V = v0`` (default ``v_rest``), not refractory, register ``psi0`` (default |0...0>).

    Args:
        params: :class:`ClusterParams` of ``k`` neurons.
        dtype: float32 (default; register complex64) or float64 (complex128; needs ``jax_enable_x64``).
        v0: initial potentials, mV, scalar or ``(k,)``.
        psi0: initial register, ``(2^k,)``, normalised (e.g. from :mod:`qsn.circuits`).
    """
    k = params.k
    dt = resolve_dtype(dtype)
    cdt = jnp.complex128 if dt == jnp.float64 else jnp.complex64
    v0 = jnp.asarray(params.neuron.v_rest if v0 is None else v0, dt)
    if v0.ndim > 1 or (v0.ndim == 1 and v0.shape[0] not in (1, k)):
        raise ConfigurationError(f"Argument `v0` must be a scalar or have shape ({k},), but has shape {v0.shape}")
    psi = qc.zero_state(k, cdt) if psi0 is None else jnp.asarray(psi0, cdt)
    if psi.shape != (2**k,):
        raise ConfigurationError(f"Argument `psi0` must have shape (2^k,) = ({2**k},), but has shape {psi.shape}")
    if is_concrete(psi):
        norm = float(np.sum(np.abs(np.asarray(psi, np.complex128)) ** 2))
        if not abs(norm - 1.0) <= (1e-5 if dt == jnp.float32 else 1e-10):
            raise ConfigurationError(f"Argument `psi0` must be normalised, but has <psi|psi> = {norm!r}")
    v = jnp.broadcast_to(v0, (k,))
    return ClusterState(v=v, refractory=jnp.zeros((k,), jnp.int32), psi=psi, t=jnp.zeros((), jnp.int32))


def cluster_step(
    params: ClusterParams, state: ClusterState, current: Any, *, method: str = "auto", substeps: int = 1
) -> tuple[ClusterState, jax.Array]:
    """Advance a cluster by one step of ``dt``: membrane, joint qubit evolution, threshold spikes, resets.

    Args:
        params: :class:`ClusterParams` (``k`` neurons).
        state: :class:`ClusterState`; vmap this function for a batch of clusters.
        current: input this step, scalar or ``(k,)`` (``r_m * I`` in mV).
        method: ``"auto"``, ``"exact"`` or ``"trotter"`` (see the module docstring).
        substeps: Strang substeps per ``dt`` (Trotter only).

    Returns:
        ``(new_state, spikes)``, ``spikes`` a ``(k,)`` bool array.

    Example:
        >>> s, spikes = cluster_step(p, init_cluster(p), 20.0)
    """
    _check_state(params, state)
    method = _resolve_method(method, params.k, substeps)
    current = jnp.asarray(current)
    if current.ndim > 1 or (current.ndim == 1 and current.shape[0] not in (1, params.k)):
        raise InvalidInputError(f"Argument `current` must be a scalar or ({params.k},), but has shape {current.shape}")
    return _advance_jit(_constants(params, state.v.dtype, method), state, current, method, int(substeps))


@functools.partial(jax.jit, static_argnames=("method", "substeps", "record", "pairs"))
def _run(c, state, currents, method, substeps, record, pairs):
    def body(s, current):
        s, spikes = _advance(c, s, current, method, substeps)
        out = {"spikes": spikes}
        if "v" in record:
            out["v"] = s.v
        if "p1" in record:
            out["p1"] = s.p1
        if "concurrence" in record:
            out["concurrence"] = _concurrences(s.psi, pairs)
        if "psi" in record:
            out["psi"] = s.psi
        return s, out

    return jax.lax.scan(body, state, currents)


def simulate_cluster(
    params: ClusterParams,
    state: ClusterState,
    current: Any,
    steps: int | None = None,
    *,
    record: Sequence[str] = ("spikes", "p1"),
    pairs: Sequence[tuple[int, int]] | None = None,
    method: str = "auto",
    substeps: int = 1,
) -> ClusterResult:
    """Run a cluster for ``steps`` steps in one compiled ``lax.scan``, recording what is asked.

    Args:
        params: :class:`ClusterParams` (``k`` neurons).
        state: initial :class:`ClusterState` (from :func:`init_cluster`).
        current: ``r_m * I`` in mV: scalar, ``(k,)`` or ``(T, k)``.
        steps: number of steps ``T`` (optional for a ``(T, k)`` current).
        record: any of ``"spikes"`` ``(T, k)`` bool, ``"v"`` ``(T, k)`` mV, ``"p1"`` ``(T, k)``,
            ``"concurrence"`` ``(T, P)`` (Wootters, of each pair's reduced state) and ``"psi"``
            ``(T, 2^k)``, each after every step. Spike counts are always kept.
        pairs: the ``P`` pairs ``(i, j)`` for ``"concurrence"`` (default: all ``i < j``).
        method, substeps: the propagator (see :func:`cluster_step`).

    Returns:
        :class:`ClusterResult`.

    Example:
        >>> r = simulate_cluster(p, init_cluster(p), 14.0, steps=500, record=("concurrence",), pairs=[(0, 1)])
    """
    _check_state(params, state)
    k = params.k
    method = _resolve_method(method, k, substeps)
    record = tuple(record)
    unknown = [r for r in record if r not in RECORDABLE]
    if unknown:
        raise ConfigurationError(f"Argument `record` must hold names from {RECORDABLE}, but has {unknown}")
    pairs = _pairs(pairs, k)
    cur = jnp.asarray(current, state.v.dtype)
    if cur.ndim == 2 and cur.shape[1] in (1, k):
        if steps is not None and steps != cur.shape[0]:
            raise ConfigurationError(f"Argument `steps` must equal current.shape[0] = {cur.shape[0]}, but is {steps!r}")
        steps = cur.shape[0]
    elif cur.ndim > 1 or (cur.ndim == 1 and cur.shape[0] not in (1, k)):
        raise InvalidInputError(f"Argument `current` must be a scalar, ({k},) or (T, {k}), but has shape {cur.shape}")
    if not isinstance(steps, int | np.integer) or steps < 1:
        raise ConfigurationError(f"Argument `steps` must be a positive integer, but is {steps!r}")
    if is_concrete(cur) and not np.isfinite(np.asarray(cur)).all():
        at = tuple(int(i) for i in np.argwhere(~np.isfinite(np.asarray(cur)))[0])
        raise InvalidInputError(f"Argument `current` must be finite, but has a non-finite value at index {at}")
    currents = jnp.broadcast_to(cur, (int(steps), k))
    c = _constants(params, state.v.dtype, method)
    final, out = _run(c, state, currents, method, int(substeps), record, pairs)
    got = {name: out.get(name) for name in RECORDABLE}
    count = jnp.sum(out["spikes"], axis=0, dtype=jnp.int32)
    return ClusterResult(final, count, got["spikes"], got["v"], got["p1"], got["concurrence"], got["psi"], pairs)
