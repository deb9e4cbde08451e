"""Simulated annealing and parallel tempering for QUBOs, with replicas batched for CPU and GPU.

Both samplers run single-spin-flip Metropolis on the Ising form of the QUBO (:func:`~qsn.qubo.model.to_ising`),
``E(s) = h^T s + sum_{i<j} J_ij s_i s_j + c`` with ``s = 2x - 1``. A *sweep* visits the spins in order
``0, 1, ..., n-1``; spin ``i`` flips with the Metropolis probability ``min(1, exp(-beta dE_i))``, where
``dE_i = -2 s_i f_i`` and ``f = h + J s`` is the local field. All replicas advance together: each spin update is
one vector operation over the replica axis (a ``lax.scan`` over spins inside a ``lax.scan`` over sweeps), so the
work maps onto SIMD lanes on a CPU and onto threads on a GPU.

Dense couplings: the local fields ``f`` (R, n) are carried along and kept up to date incrementally, an accepted
flip of spin ``i`` changing them by ``-2 s_i J_i`` (``O(n)``), so a sweep costs ``O(n^2)`` per replica. The
updates are deferred within blocks of ``b`` spins (flips inside a block see each other through the (b, b)
diagonal block), so that the ``O(n^2 R)`` part of a sweep runs as (n, b) x (b, R) matrix products. Sparse
couplings (largest row degree ``d`` at most ``SPARSE_MAX_FILL * n``): neighbour lists padded to ``d``, and each
visit reads ``f_i`` from its ``d`` neighbours, ``O(n d)`` per sweep and replica. Both layouts give bit-identical
trajectories whenever the sums involved are exact (e.g. integer or half-integer couplings).

Sequential order has a known weak spot, shared with dwave-samplers in its default order: a flip that costs
exactly zero energy is always accepted, so on chains and rings a cold sweep can carry every domain wall along
with it and never anneal it away (a 40-spin antiferromagnetic +-1 ring, ground energy -40, ends at -12 at best
over 8 replicas of 200 sweeps, here and with dwave-samplers; its ``randomize_order=True`` reaches -40).

Random numbers: one uniform per (spin, replica) per sweep, drawn in a single call from that sweep's key and
turned into acceptance thresholds ``-log(u)/beta`` before the sweep starts, so the inner loop is a compare.
(On a CPU, drawing them with JAX's threefry costs about as much as a sparse sweep at a few hundred replicas.)

Default temperature range (``beta=None``), from the instance's coupling scale (after D-Wave's ``neal``):
with ``g_i = |h_i| + sum_j |J_ij|`` the largest local field spin ``i`` can see and ``m`` the smallest nonzero
``|h_i|`` or ``|J_ij|`` after dropping the smallest 1% (the minimum itself when there are at most 100 of them,
as for +-1 couplings; continuous couplings have arbitrarily small ones that set no relevant energy gap:
``neal``'s plain minimum puts the cold end near 1e8 on a 1000-spin Gaussian instance, and half the sweeps at
zero temperature),

* hot ``beta0 = ln 2 / (2 max_i g_i)``: at the start every flip is accepted with probability at least 1/2;
* cold ``beta1 = ln(100 n) / (2 m)``: at the end the expected number of excitations of size ``2 m`` in a sweep
  from a local minimum is at most 0.01;

and a geometric schedule from ``beta0`` to ``beta1``. Inverse temperatures are in 1/(QUBO energy unit).

Energies are reported in the QUBO's own units, in ``dtype`` (float32 by default: relative error ~1e-6):
``AnnealResult.energies`` and ``best_energy`` are recomputed from the returned states at the end, so drift in
the carried fields never reaches them; ``trace`` is the best energy seen at the end of each sweep (from the
carried fields on the dense path, from scratch on the sparse path).

Example:
    >>> import jax, numpy as np
    >>> from qsn.qubo import make_qubo
    >>> from qsn.qubo import anneal
    >>> q = make_qubo(np.array([[1.0, -2.0], [-2.0, 1.0]]))
    >>> r = anneal(q, jax.random.key(0), replicas=4, sweeps=50)
    >>> r.best_x.tolist(), float(r.best_energy)
    ([1, 1], -2.0)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.qubo.model import QUBO, to_ising

__all__ = [
    "AnnealResult",
    "anneal",
    "parallel_tempering",
    "default_beta_range",
    "neighbour_lists",
    "exchange_step",
    "SPARSE_MAX_FILL",
]

# Sparse path when the largest row degree d is at most this fraction of n. Measured on CPU at n = 1000 with
# 256 replicas, a sparse sweep costs about as much as a dense one at d ~ 100 (d = 80: 4 ms vs 7 ms, d = 150:
# 13 ms vs 7 ms); with fewer replicas the crossover moves higher, so 0.1 n errs on the dense side.
SPARSE_MAX_FILL = 0.1
# Spins per block of the dense sweep: the sequential part costs O(n b R) per sweep and the matrix products
# O(n^2 R); 40-100 measured alike on CPU (bench/bench_anneal.py), larger blocks suit a GPU's matrix units.
_BLOCK = 64


class AnnealResult(NamedTuple):
    """What :func:`anneal` and :func:`parallel_tempering` return (energies in the QUBO's units)."""

    x: jax.Array  # (replicas, n) uint8, final state of each replica
    energies: jax.Array  # (replicas,) float, energy of each final state
    best_x: jax.Array  # (n,) uint8, lowest-energy state seen at the end of any sweep by any replica
    best_energy: jax.Array  # () float, its energy
    trace: jax.Array  # (sweeps,) float, best energy seen so far, after each sweep


# ---------------------------------------------------------------- layout


def neighbour_lists(j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour lists of a symmetric coupling matrix, padded to the largest degree.

    Args:
        j: (n, n) couplings with zero diagonal.

    Returns:
        ``(index, weight)``, both (n, d) with ``d = max(1, max_i #{j : J_ij != 0})``: row ``i`` holds the
        neighbours of spin ``i`` in increasing order, then distinct non-neighbours with weight 0 (so the indices
        in a row are unique and padding adds nothing).

    Example:
        >>> neighbour_lists(np.array([[0.0, 2.0, 0.0], [2.0, 0.0, -1.0], [0.0, -1.0, 0.0]]))[0].tolist()
        [[1, 0], [0, 2], [1, 0]]
    """
    j = np.asarray(j)
    d = max(1, int((j != 0).sum(axis=1).max(initial=0)))
    # A stable sort on "is zero" puts each row's nonzero columns first, in order, then the zero columns.
    index = np.argsort(j == 0, axis=1, kind="stable")[:, :d]
    weight = np.take_along_axis(j, index, axis=1)
    return index.astype(np.int32), weight


def _layout(j: np.ndarray, layout: str) -> str:
    if layout not in ("auto", "dense", "sparse"):
        raise ConfigurationError(f"Argument `layout` must be one of 'auto', 'dense', 'sparse', but is {layout!r}")
    if layout != "auto":
        return layout
    n = j.shape[0]
    d = int((j != 0).sum(axis=1).max(initial=0))
    return "sparse" if d <= SPARSE_MAX_FILL * n else "dense"


def default_beta_range(qubo: QUBO) -> tuple[float, float]:
    """The default ``(beta0, beta1)`` for ``qubo`` (rule in the module docstring), in 1/(energy unit).

    Example:
        >>> from qsn.qubo import make_qubo
        >>> b0, b1 = default_beta_range(make_qubo(np.array([[1.0, -2.0], [-2.0, 1.0]])))
        >>> round(b0, 4), round(b1, 4)
        (0.231, 5.2983)
    """
    ising = to_ising(qubo)
    h, j = np.abs(ising.h), np.abs(ising.j)
    field = h + j.sum(axis=1)
    coefficients = np.concatenate([h, j[np.triu_indices(qubo.n, 1)]])
    nonzero = coefficients[coefficients > 0]
    if nonzero.size == 0:  # constant energy: any temperature samples it, keep a finite range
        return 0.1, 1.0
    beta0 = math.log(2.0) / (2.0 * float(field.max()))
    smallest = float(np.quantile(nonzero, 0.01, method="lower"))
    beta1 = math.log(100.0 * qubo.n) / (2.0 * smallest)
    return beta0, max(beta0, beta1)


# ---------------------------------------------------------------- kernels (internal layout: spins first)
# Inside the kernels states and fields are (n, R): the row of spin i is contiguous over replicas. Every loop
# carries a single array, updated with one dynamic-update-slice per step: XLA then updates it in place, where a
# tuple carry, an extra per-step output or a scatter into a field array made it copy the whole (n, R) array
# at every step (100x slower on CPU, measured while writing bench/bench_anneal.py).


class _Dense(NamedTuple):
    """Dense couplings in row blocks of b spins (n padded to nb * b with uncoupled spins that never flip)."""

    j: jax.Array  # (nb, b, nb * b) float, j[k, l] = row k*b + l of J


class _Sparse(NamedTuple):
    """Sparse couplings as neighbour lists (:func:`neighbour_lists`)."""

    index: jax.Array  # (n, d) int32
    weight: jax.Array  # (n, d) float, energy units


def _dense(j: np.ndarray, dtype: Any) -> _Dense:
    n = j.shape[0]
    blocks = -(-n // _BLOCK)
    b = -(-n // blocks)
    padded = np.zeros((blocks * b, blocks * b))
    padded[:n, :n] = j
    return _Dense(jnp.asarray(padded.reshape(blocks, b, blocks * b), dtype))


def _field(couplings: _Dense | _Sparse, h: jax.Array, s: jax.Array) -> jax.Array:
    """Local fields ``f = h + J s``, (n, R) (n padded for dense), from scratch."""
    if isinstance(couplings, _Dense):
        return h[:, None] + couplings.j.reshape(-1, s.shape[0]) @ s
    return h[:, None] + jnp.einsum("nd,ndr->nr", couplings.weight, s[couplings.index])


def _ising_energy(h: jax.Array, s: jax.Array, field: jax.Array) -> jax.Array:
    """``h^T s + s^T J s / 2`` per replica, (R,), from ``f = h + J s`` (the Ising offset left out)."""
    return 0.5 * jnp.sum(s * (h[:, None] + field), axis=0)


def _flip(s_i: jax.Array, field_i: jax.Array, threshold_i: jax.Array) -> jax.Array:
    """Metropolis decision for one spin over replicas: the new ``s_i``, (R,). Flip iff ``dE < -log(u)/beta``."""
    return jnp.where(-2.0 * s_i * field_i < threshold_i, -s_i, s_i)


def _sweep_sparse(c: _Sparse, h: jax.Array, s: jax.Array, threshold: jax.Array) -> jax.Array:
    """One sweep, pulling each spin's field from its d neighbours: ``O(d R)`` per spin."""

    def visit(s, xs):
        i, index, weight, h_i, threshold_i = xs
        neighbours = s.at[index].get(mode="promise_in_bounds", unique_indices=True)  # (d, R)
        field_i = h_i + jnp.sum(weight[:, None] * neighbours, axis=0)
        s_i = jax.lax.dynamic_index_in_dim(s, i, keepdims=False)
        return jax.lax.dynamic_update_index_in_dim(s, _flip(s_i, field_i, threshold_i), i, 0), None

    spins = jnp.arange(s.shape[0], dtype=jnp.int32)
    return jax.lax.scan(visit, s, (spins, c.index, c.weight, h, threshold))[0]


def _sweep_dense(c: _Dense, s: jax.Array, field: jax.Array, threshold: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One sweep in blocks of b spins: sequential flips inside a block see the block's own changes through the
    (b, b) diagonal block; the rest of the fields catch up after the block with one (n, b) x (b, R) product, so
    the ``O(n^2 R)`` work of a sweep is matrix-matrix products and the sequential part is ``O(n b R)``."""
    blocks, b, _ = c.j.shape
    replicas = s.shape[1]

    def block(carry, xs):
        s, field = carry
        k, rows, threshold_b = xs  # rows (b, n): J[k-block, :]
        diagonal = jax.lax.dynamic_slice_in_dim(rows, k * b, b, axis=1)  # (b, b)
        s_b = jax.lax.dynamic_slice_in_dim(s, k * b, b)
        field_b = jax.lax.dynamic_slice_in_dim(field, k * b, b)

        def visit(change, ys):
            l, coupling, s_l, field_l, threshold_l = ys
            new = _flip(s_l, field_l + coupling @ change, threshold_l)
            return jax.lax.dynamic_update_index_in_dim(change, new - s_l, l, 0), None

        ys = (jnp.arange(b, dtype=jnp.int32), diagonal, s_b, field_b, threshold_b)
        change = jax.lax.scan(visit, jnp.zeros((b, replicas), s.dtype), ys)[0]  # (b, R), new - old
        s = jax.lax.dynamic_update_slice_in_dim(s, s_b + change, k * b, 0)
        return (s, field + rows.T @ change), None

    xs = (jnp.arange(blocks, dtype=jnp.int32), c.j, threshold.reshape(blocks, b, replicas))
    return jax.lax.scan(block, (s, field), xs)[0]


def exchange_step(betas: jax.Array, energies: jax.Array, u: jax.Array, parity: jax.Array) -> jax.Array:
    """Replica-exchange moves between neighbouring temperatures.

    Pairs ``(k, k+1)`` with ``k = parity, parity + 2, ...`` swap their states when
    ``u[k] < min(1, exp((beta_k - beta_{k+1}) (E_k - E_{k+1})))``; alternating the parity between rounds lets
    every neighbour pair exchange.

    Args:
        betas: (K,) inverse temperatures.
        energies: (K, m) energy of the state at each temperature, in each of m independent chains (any constant
            offset cancels).
        u: (K, m) uniforms in [0, 1); row ``k`` decides the pair ``(k, k+1)``.
        parity: () int, 0 or 1.

    Returns:
        (K, m) int32: the temperature slot whose state moves to slot ``k`` (identity where nothing swaps).

    Example:
        >>> exchange_step(jnp.array([1.0, 2.0]), jnp.array([[0.0], [5.0]]), jnp.array([[0.5], [0.5]]), 0).tolist()
        [[1], [0]]
    """
    k = jnp.arange(betas.shape[0], dtype=jnp.int32)
    lower = ((k - parity) % 2 == 0) & (k + 1 < betas.shape[0])  # slot k is the lower end of a pair this round
    log_ratio = (betas - jnp.roll(betas, -1))[:, None] * (energies - jnp.roll(energies, -1, axis=0))
    accept = lower[:, None] & (jnp.log(u) < log_ratio)
    from_above = accept.astype(jnp.int32)
    from_below = jnp.roll(accept, 1, axis=0).astype(jnp.int32)  # row 0 gets row K-1, never a lower end
    return k[:, None] + from_above - from_below


class _Carry(NamedTuple):
    s: jax.Array  # (n, R) float, spins in {-1, +1} (n padded to the dense block grid)
    field: jax.Array | None  # (n, R) float, local fields h + J s in energy units; None on the sparse path
    best_e: jax.Array  # (R,) float, lowest Ising energy (offset left out) seen by each replica slot
    best_s: jax.Array  # (n, R) float, the state that had it


@jax.jit
@eqx.debug.assert_max_traces(max_traces=None)  # traces counted for the recompilation test
def _run(
    couplings: _Dense | _Sparse,
    h: jax.Array,
    offset: jax.Array,
    s0: jax.Array,
    schedule: jax.Array,
    slot_betas: jax.Array,
    key: jax.Array,
    exchange_betas: jax.Array | None,
    swap_every: jax.Array,
) -> AnnealResult:
    """The annealing loop over sweeps. Replica slot r runs sweep t at ``schedule[t] * slot_betas[r]`` (one of the
    two is all ones, so the product is exact); ``exchange_betas`` (K,) turns on replica exchange; ``h`` (n,),
    ``s0`` (n, R) unpadded."""
    n, replicas = s0.shape
    dense = isinstance(couplings, _Dense)
    pad = couplings.j.shape[2] - n if dense else 0
    h = jnp.pad(h, (0, pad))
    s0 = jnp.pad(s0, ((0, pad), (0, 0)), constant_values=1)  # padding spins: uncoupled, never flip
    field0 = _field(couplings, h, s0)

    def sweep(carry: _Carry, xs):
        t, key_t, beta_t = xs
        beta = beta_t * slot_betas  # (R,)
        key_flip, key_swap = jax.random.split(key_t)
        u = jax.random.uniform(key_flip, (n, replicas), s0.dtype)
        threshold = -jnp.log(u) / beta[None, :]  # flip iff dE < threshold: probability min(1, exp(-beta dE))
        if dense:
            threshold = jnp.pad(threshold, ((0, pad), (0, 0)), constant_values=-jnp.inf)
            s, field = _sweep_dense(couplings, carry.s, carry.field, threshold)
            e = _ising_energy(h, s, field)
        else:
            s, field = _sweep_sparse(couplings, h, carry.s, threshold), None
            e = _ising_energy(h, s, _field(couplings, h, s))
        better = e < carry.best_e
        best_e = jnp.where(better, e, carry.best_e)
        best_s = jnp.where(better[None, :], s, carry.best_s)
        if exchange_betas is not None:
            temps = exchange_betas.shape[0]
            chains = replicas // temps
            due = (t + 1) % swap_every == 0
            parity = ((t + 1) // swap_every) % 2
            u_swap = jax.random.uniform(key_swap, (temps, chains), s0.dtype)
            src = exchange_step(exchange_betas, e.reshape(temps, chains), u_swap, parity)
            src = jnp.where(due, src, jnp.arange(temps, dtype=jnp.int32)[:, None])
            # Replica r = k * chains + c takes the state of replica src[k, c] * chains + c.
            gather = (src * chains + jnp.arange(chains, dtype=jnp.int32)[None, :]).reshape(replicas)
            s = s[:, gather]
            field = None if field is None else field[:, gather]
        return _Carry(s, field, best_e, best_s), jnp.min(best_e)

    start = _Carry(s0, field0 if dense else None, _ising_energy(h, s0, field0), s0)
    xs = (jnp.arange(schedule.shape[0], dtype=jnp.int32), jax.random.split(key, schedule.shape[0]), schedule)
    carry, trace = jax.lax.scan(sweep, start, xs)

    # Energies from scratch on the returned states, so drift in the incremental fields never reaches them.
    energies = _ising_energy(h, carry.s, _field(couplings, h, carry.s)) + offset
    best_each = _ising_energy(h, carry.best_s, _field(couplings, h, carry.best_s)) + offset
    best = jnp.argmin(best_each)
    return AnnealResult(
        x=(carry.s[:n].T > 0).astype(jnp.uint8),
        energies=energies,
        best_x=(carry.best_s[:n, best] > 0).astype(jnp.uint8),
        best_energy=best_each[best],
        trace=trace + offset,
    )


# ---------------------------------------------------------------- public API


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigurationError(f"Argument `{name}` must be an integer >= {minimum}, but is {value!r}")
    return int(value)


def _check_betas(name: str, betas: Any, shape: tuple[int, ...] | None) -> np.ndarray:
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or (shape is not None and betas.shape != shape) or betas.size == 0:
        expected = f"shape {shape}" if shape is not None else "shape (K,) with K >= 1"
        raise ConfigurationError(f"Argument `{name}` must have {expected}, but has shape {betas.shape}")
    if not np.all(np.isfinite(betas)) or np.any(betas < 0):
        bad = int(np.argmax(~np.isfinite(betas) | (betas < 0)))
        raise ConfigurationError(f"Argument `{name}` must be finite and >= 0, but entry {bad} is {betas[bad]}")
    return betas


def _schedule(qubo: QUBO, beta: Any, sweeps: int) -> np.ndarray:
    """Inverse temperatures per sweep, (sweeps,)."""
    if beta is None:
        beta = default_beta_range(qubo)
    if isinstance(beta, tuple):  # a tuple is a range; any other sequence is a per-sweep schedule
        if len(beta) != 2:
            raise ConfigurationError(f"Argument `beta` must be a pair (beta0, beta1), but has {len(beta)} entries")
        b0, b1 = (float(b) for b in beta)
        if not (math.isfinite(b0) and math.isfinite(b1) and b0 > 0 and b1 > 0):
            raise ConfigurationError(f"Argument `beta` must be a pair of finite values > 0, but is ({b0}, {b1})")
        return b0 * (b1 / b0) ** (np.arange(sweeps) / max(sweeps - 1, 1))
    return _check_betas("beta", beta, (sweeps,))


def _initial_spins(init: Any, key: jax.Array, replicas: int, n: int, dtype: Any) -> jax.Array:
    """Starting spins (n, R) in {-1, +1}: uniform at random, or from ``init`` (n,) or (R, n) in {0, 1}."""
    if init is None:
        return jax.random.rademacher(key, (n, replicas), dtype)
    x = np.asarray(init)
    if x.shape not in ((n,), (replicas, n)):
        raise InvalidInputError(f"Argument `init` must have shape ({n},) or ({replicas}, {n}), but has shape {x.shape}")
    if not np.all((x == 0) | (x == 1)):
        raise InvalidInputError(f"Argument `init` must hold only 0 and 1, but holds {np.unique(x)[:5].tolist()}")
    x = np.broadcast_to(x, (replicas, n))
    return jnp.asarray(2.0 * x.T - 1.0, dtype)


def _prepare(qubo: QUBO, key: Any, layout: str, dtype: Any) -> tuple[_Dense | _Sparse, jax.Array, jax.Array, jax.Array]:
    """Validate the shared arguments; returns (couplings, h, offset, key) on device."""
    if not isinstance(qubo, QUBO):
        raise ConfigurationError(f"Argument `qubo` must be a qsn.qubo.QUBO, but is {type(qubo).__name__}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ConfigurationError(f"Argument `dtype` must be a floating dtype, but is {dtype}")
    key = jnp.asarray(key)
    if not (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()) and not (
        key.dtype == jnp.uint32 and key.shape == (2,)
    ):
        raise ConfigurationError(
            f"Argument `key` must be a single PRNG key, but has dtype {key.dtype} and shape {key.shape}"
        )
    ising = to_ising(qubo)
    if _layout(ising.j, layout) == "dense":
        couplings = _dense(ising.j, dtype)
    else:
        index, weight = neighbour_lists(ising.j)
        couplings = _Sparse(jnp.asarray(index), jnp.asarray(weight, dtype))
    return couplings, jnp.asarray(ising.h, dtype), jnp.asarray(ising.offset, dtype), key


def anneal(
    qubo: QUBO,
    key: jax.Array,
    *,
    replicas: int = 32,
    sweeps: int = 1000,
    beta: tuple[float, float] | Any = None,
    init: Any = None,
    layout: str = "auto",
    dtype: Any = jnp.float32,
) -> AnnealResult:
    """Simulated annealing of ``qubo`` with ``replicas`` independent Metropolis chains.

    Args:
        qubo: the problem, ``E(x) = x^T q x + offset`` over ``x in {0, 1}^n``.
        key: PRNG key; the same key gives the same result.
        replicas: R, independent chains run in parallel.
        sweeps: number of sweeps (n flip attempts each, per replica).
        beta: inverse temperature schedule, 1/(energy unit): ``None`` for the default range (module docstring),
            a pair ``(beta0, beta1)`` (both > 0) for a geometric schedule, or an explicit (sweeps,) array (>= 0;
            ``beta = 0`` is infinite temperature). A constant array samples the Boltzmann distribution.
        init: starting states, (n,) or (R, n) in {0, 1}; ``None`` draws them uniformly from ``key``.
        layout: ``"auto"`` (sparse when the largest degree is at most ``SPARSE_MAX_FILL * n``), ``"dense"`` or
            ``"sparse"``.
        dtype: floating dtype of the spins, fields and energies.

    Returns:
        :class:`AnnealResult`: final states (R, n), their energies (R,), the best state (n,) and energy seen at
        the end of any sweep, and the best-so-far trace (sweeps,).

    Example:
        >>> import numpy as np
        >>> from qsn.qubo import make_qubo
        >>> r = anneal(make_qubo(-np.eye(3)), jax.random.key(1), replicas=2, sweeps=20)
        >>> r.x.shape, float(r.best_energy)
        ((2, 3), -3.0)
    """
    replicas = _check_int("replicas", replicas, 1)
    sweeps = _check_int("sweeps", sweeps, 1)
    couplings, h, offset, key = _prepare(qubo, key, layout, dtype)
    schedule = jnp.asarray(_schedule(qubo, beta, sweeps), dtype)
    key_init, key_run = jax.random.split(key)
    s0 = _initial_spins(init, key_init, replicas, qubo.n, dtype)
    ones = jnp.ones(replicas, dtype)
    return _run(couplings, h, offset, s0, schedule, ones, key_run, None, jnp.asarray(1, jnp.int32))


def parallel_tempering(
    qubo: QUBO,
    key: jax.Array,
    *,
    betas: Any,
    replicas_per_beta: int = 1,
    sweeps: int = 1000,
    swap_every: int = 1,
    init: Any = None,
    layout: str = "auto",
    dtype: Any = jnp.float32,
) -> AnnealResult:
    """Parallel tempering (replica exchange) of ``qubo`` at fixed inverse temperatures.

    Each temperature holds ``replicas_per_beta`` independent chains. After every ``swap_every``-th sweep,
    neighbouring temperatures ``(k, k+1)`` of the same chain exchange states with probability
    ``min(1, exp((beta_k - beta_{k+1}) (E_k - E_{k+1})))`` (:func:`exchange_step`), even pairs and odd pairs on
    alternate rounds. The chain at each temperature then samples that temperature's Boltzmann distribution.

    Args:
        qubo: the problem.
        key: PRNG key.
        betas: (K,) inverse temperatures >= 0, 1/(energy unit), usually sorted.
        replicas_per_beta: m, independent chains per temperature.
        sweeps: number of sweeps.
        swap_every: sweeps between exchange rounds.
        init: starting states, (n,) or (K m, n) in {0, 1}; ``None`` draws them uniformly.
        layout: as in :func:`anneal`.
        dtype: as in :func:`anneal`.

    Returns:
        :class:`AnnealResult` over ``R = K m`` replicas; row ``k m + c`` is chain ``c`` at ``betas[k]``.

    Example:
        >>> import numpy as np
        >>> from qsn.qubo import make_qubo
        >>> r = parallel_tempering(make_qubo(-np.eye(3)), jax.random.key(1), betas=[0.1, 1.0, 5.0], sweeps=20)
        >>> r.x.shape, float(r.best_energy)
        ((3, 3), -3.0)
    """
    replicas_per_beta = _check_int("replicas_per_beta", replicas_per_beta, 1)
    sweeps = _check_int("sweeps", sweeps, 1)
    swap_every = _check_int("swap_every", swap_every, 1)
    temps = _check_betas("betas", betas, None)
    couplings, h, offset, key = _prepare(qubo, key, layout, dtype)
    replicas = temps.size * replicas_per_beta
    key_init, key_run = jax.random.split(key)
    s0 = _initial_spins(init, key_init, replicas, qubo.n, dtype)
    temps = jnp.asarray(temps, dtype)
    slots = jnp.repeat(temps, replicas_per_beta)
    ones = jnp.ones(sweeps, dtype)
    return _run(couplings, h, offset, s0, ones, slots, key_run, temps, jnp.asarray(swap_every, jnp.int32))
