"""Simulated annealing and parallel tempering for QUBOs, with replicas batched for CPU and GPU.

Both samplers run single-spin-flip Metropolis on the Ising form of the QUBO (:func:`~qsn.qubo.model.to_ising`),
``E(s) = h^T s + sum_{i<j} J_ij s_i s_j + c`` with ``s = 2x - 1``. A *sweep* visits every spin once; spin ``i``
flips with the Metropolis probability ``min(1, exp(-beta dE_i))``, where ``dE_i = -2 s_i f_i`` and
``f = h + J s`` is the local field. Every single-spin update leaves the Boltzmann distribution invariant,
whatever the order of the visits, so the order can be drawn afresh for each sweep. All replicas advance
together (one vector operation over the replica axis per update) and share the sweep's order.

Visiting order, drawn at random for every sweep. A fixed order has a known weak spot (shared with
dwave-samplers' default): a flip that costs exactly zero energy is always accepted, so on chains and rings a
cold sweep carries every domain wall along with it and never anneals it away (a 40-spin antiferromagnetic +-1
ring ends at -12 at best instead of -40). A random order makes each wall random-walk until walls meet. (This
is the JAX path; the native path visits the spins in one random permutation per run, which moves walls by
position-dependent amounts so that they meet too, and reaches lower energies on spin glasses: qsn.qubo.native.)

* Sparse couplings (largest row degree ``d`` at most ``SPARSE_MAX_FILL * n``): the spins are coloured on the
  host (greedy, largest degree first) so that no two spins of one colour class are coupled. In each sweep
  every spin draws a random label bit ``l_i``, and the spins are visited in the order of ``(l_i, colour_i)``.
  Spins with the same label and colour are not coupled, so updating them all at once gives exactly what
  visiting them one after another (in any order) would: a sweep is ``2 C`` vector updates for ``C`` colours,
  each pulling its spins' fields from their neighbour lists, ``O(n d R)``. (Colour classes alone, without the
  labels, would be a fixed checkerboard: walls next to spins of one class then all move in lockstep and
  domains of even length never shrink.)
* Dense couplings: the spins are cut into blocks of ``b``; a sweep visits the blocks in a random order and the
  spins of each block in a random order. The local fields ``f`` (n, R) are carried along: flips inside a
  block see each other through the (b, b) diagonal block, and the rest of the fields catch up after the block
  with one (n, b) x (b, R) matrix product, so the ``O(n^2 R)`` work of a sweep is matrix products and the
  sequential part is ``O(n b R)``.

Random numbers: one 32-bit word per (spin, replica) per sweep from a counter-based hash, the MurmurHash3
finaliser applied twice with two key words in between, ``w = fmix32(fmix32(k * 0x9E3779B9 + k0) ^ k1)`` for
counter ``k``; the key words of each sweep come from ``jax.random.bits`` of the caller's key. Its top 24 bits
give ``u = (m + 1/2) 2^-24`` in (0, 1), and spin ``i`` flips iff ``beta dE_i < -log u``, which happens with
probability ``min(1, exp(-beta dE_i))`` (to the 2^-24 resolution of ``u``). ``-log u`` is evaluated from the
exponent and mantissa of ``u`` with a degree-8 polynomial for ``log(1 + m)`` (error below 3e-7 + 2e-7 relative,
tested). On a CPU JAX's threefry took about 5 ns per number, the whole budget of a sparse update several
times over; the hash and the polynomial take well under 1 ns.

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
carried quantities never reaches them; ``trace`` is the best energy seen at the end of each sweep (from the
carried fields on the dense path, from the sum of accepted ``dE`` on the sparse path).

Backends (``backend=`` of :func:`anneal` and :func:`parallel_tempering`): ``"jax"`` runs the sweeps described
here, jit-compiled by XLA on JAX's default device (the reference, and the path for GPUs, for ``jit``/``vmap``
callers and for float64); ``"native"`` (:mod:`qsn.qubo.native`) runs a Metropolis sweep compiled for this CPU
with g++, replicas as vector lanes and OpenMP threads over groups of them, one random visiting order per run
and its own counter-hash stream (the two backends agree in distribution, not sample by sample). The default
``"auto"`` takes the native sweep when JAX's default device is the CPU, ``dtype`` is float32, the call is not
traced and a C++ compiler is found, and JAX otherwise. On the bench's 1000-spin instances, at 32 and 256
replicas, the native sweep makes 12x (sparse) and 14-15x (dense) dwave-samplers' flip attempts per second on
one thread, 19-25x on two (bench/results/anneal-cpu.json; one chain alone: 3x sparse, 13x dense).

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
from qsn.qubo.native import Native

__all__ = [
    "AnnealResult",
    "anneal",
    "parallel_tempering",
    "default_beta_range",
    "neighbour_lists",
    "exchange_step",
    "SPARSE_MAX_FILL",
]

# Sparse path when the largest row degree d is at most this fraction of n: a sparse sweep gathers 2 n d rows of
# R values, a dense one multiplies n^2 R; 0.1 n errs on the dense side.
SPARSE_MAX_FILL = 0.1
# Spins per block of the dense sweep: the sequential part costs O(n b R) per sweep and the matrix products
# O(n^2 R); larger blocks suit a GPU's matrix units.
_BLOCK = 64
# log(1 + m) on [0, 1), Chebyshev least squares of degree 8, coefficients of m^0 .. m^8 (float32 error < 2e-7),
# the constant term set to 0 so that log(1 + 0) is exact.
_LOG1P = (0.0, 0.9999942779541016, -0.49983856081962585, 0.33154863119125366,
          -0.23982615768909454, 0.16582275927066803, -0.0932520404458046, 0.03484971448779106,
          -0.006151470821350813)
_LN2 = 0.6931471805599453
_U32 = jnp.uint32


class AnnealResult(NamedTuple):
    """What :func:`anneal` and :func:`parallel_tempering` return (energies in the QUBO's units)."""

    x: jax.Array  # (replicas, n) uint8, final state of each replica
    energies: jax.Array  # (replicas,) float, energy of each final state
    best_x: jax.Array  # (n,) uint8, lowest-energy state seen at the end of any sweep by any replica
    best_energy: jax.Array  # () float, its energy
    trace: jax.Array  # (sweeps,) float, best energy seen so far, after each sweep


# ---------------------------------------------------------------- random numbers


def _fmix32(x: jax.Array) -> jax.Array:
    """The MurmurHash3 finaliser: a bijection of uint32 with full avalanche."""
    x = x ^ (x >> _U32(16))
    x = x * _U32(0x85EBCA6B)
    x = x ^ (x >> _U32(13))
    x = x * _U32(0xC2B2AE35)
    return x ^ (x >> _U32(16))


def _words(k0: jax.Array, k1: jax.Array, counter: jax.Array) -> jax.Array:
    """32 random bits per entry of ``counter`` (uint32, any shape) under key words ``k0, k1`` (uint32 scalars)."""
    return _fmix32(_fmix32(counter * _U32(0x9E3779B9) + k0) ^ k1)


def _exponential(words: jax.Array, dtype: Any) -> jax.Array:
    """``-log u`` for ``u = (words >> 8 + 1/2) 2^-24`` in (0, 1): exponential variates, > 0, in ``dtype``."""
    u = ((words >> _U32(8)).astype(jnp.float32) + 0.5) * np.float32(2.0**-24)  # exact in float32
    bits = jax.lax.bitcast_convert_type(u, _U32)
    exponent = (bits >> _U32(23)).astype(jnp.float32) - 127.0  # u = 2^exponent (1 + m), u normal
    m = jax.lax.bitcast_convert_type((bits & _U32(0x7FFFFF)) | _U32(0x3F800000), jnp.float32) - 1.0
    log1p = jnp.float32(_LOG1P[-1])
    for a in _LOG1P[-2::-1]:
        log1p = log1p * m + np.float32(a)
    # -log u >= -log(1 - 2^-25) = 2.98e-8: the floor keeps rounding from turning a zero-cost flip into a refusal
    return jnp.maximum(-(exponent * np.float32(_LN2) + log1p), np.float32(2.98e-8)).astype(dtype)


def _uniform(words: jax.Array, dtype: Any) -> jax.Array:
    """``(words >> 8 + 1/2) 2^-24`` in (0, 1)."""
    return (((words >> _U32(8)).astype(jnp.float32) + 0.5) * np.float32(2.0**-24)).astype(dtype)


def _iota(*shape: int) -> jax.Array:
    """Counters 0, 1, ... in row-major order, uint32 of ``shape``."""
    return jax.lax.iota(_U32, math.prod(shape)).reshape(shape)


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


def _colouring(j: np.ndarray) -> np.ndarray:
    """Greedy colouring (largest degree first) of the graph of nonzero ``j``: (n,) int colours, adjacent differ."""
    n = j.shape[0]
    neighbours = [np.flatnonzero(row) for row in j]
    colour = np.full(n, -1, dtype=np.int64)
    for i in np.argsort([-len(a) for a in neighbours], kind="stable"):
        taken = np.zeros(len(neighbours[i]) + 1, dtype=bool)
        used = colour[neighbours[i]]
        taken[used[(used >= 0) & (used <= len(neighbours[i]))]] = True
        colour[i] = int(np.argmin(taken))  # the smallest colour no neighbour has
    return colour


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
# Inside the kernels states and fields are (n, R): the row of spin i is contiguous over replicas, and every
# update is a vector operation over that row.


class _Dense(NamedTuple):
    """Dense couplings in row blocks of b spins (n padded to nb * b with uncoupled spins that never flip)."""

    j: jax.Array  # (nb, b, nb * b) float, j[k, l] = row k*b + l of J


class _Sparse(NamedTuple):
    """Sparse couplings by colour class; spins relabelled so that each class is a contiguous range, in order."""

    order: jax.Array  # (n,) int32, original index of relabelled spin i (classes in order)
    index: tuple[jax.Array, ...]  # C arrays (n_c, d_c) int32, relabelled neighbours of the class's spins
    weight: tuple[jax.Array, ...]  # C arrays (n_c, d_c) float, their couplings J (0 on padding), energy units


def _dense(j: np.ndarray, dtype: Any) -> _Dense:
    n = j.shape[0]
    blocks = -(-n // _BLOCK)
    b = -(-n // blocks)
    padded = np.zeros((blocks * b, blocks * b))
    padded[:n, :n] = j
    return _Dense(jnp.asarray(padded.reshape(blocks, b, blocks * b), dtype))


def _sparse(j: np.ndarray, dtype: Any) -> _Sparse:
    colour = _colouring(j)
    order = np.argsort(colour, kind="stable")
    relabelled = j[np.ix_(order, order)]
    index, weight = neighbour_lists(relabelled)
    ends = np.cumsum(np.bincount(colour))
    starts = np.concatenate([[0], ends[:-1]])
    idx, w = [], []
    for start, end in zip(starts, ends):
        d = max(1, int((weight[start:end] != 0).sum(axis=1).max(initial=0)))  # this class's largest degree
        idx.append(jnp.asarray(index[start:end, :d]))
        w.append(jnp.asarray(weight[start:end, :d], dtype))
    return _Sparse(jnp.asarray(order, jnp.int32), tuple(idx), tuple(w))


def _neighbour_sum(s: jax.Array, index: jax.Array, weight: jax.Array) -> jax.Array:
    """``sum_k weight[:, k] s[index[:, k]]``, (n_c, R): the coupling part of the fields of one class."""
    total = jnp.zeros((index.shape[0], s.shape[1]), s.dtype)
    for k in range(index.shape[1]):
        total = total + weight[:, k, None] * s.at[index[:, k]].get(mode="promise_in_bounds")
    return total


def _field(couplings: _Dense | _Sparse, h: jax.Array, s: jax.Array) -> jax.Array:
    """Local fields ``f = h + J s``, (n, R) (n padded for dense, relabelled for sparse), from scratch."""
    if isinstance(couplings, _Dense):
        return h[:, None] + couplings.j.reshape(-1, s.shape[0]) @ s
    parts = [_neighbour_sum(s, i, w) for i, w in zip(couplings.index, couplings.weight)]
    return h[:, None] + jnp.concatenate(parts, axis=0)


def _ising_energy(h: jax.Array, s: jax.Array, field: jax.Array) -> jax.Array:
    """``h^T s + s^T J s / 2`` per replica, (R,), from ``f = h + J s`` (the Ising offset left out)."""
    return 0.5 * jnp.sum(s * (h[:, None] + field), axis=0)


def _sweep_sparse(
    c: _Sparse, h: jax.Array, s: jax.Array, threshold: jax.Array, label: jax.Array, beta: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One sweep in the order of (label, colour); returns the new spins (n, R) and the energy change (R,).

    ``s`` (n, R) relabelled spins, ``threshold`` (n, R) the exponential variates ``-log u``, ``label`` (n,) bool,
    ``beta`` (R,). Spin i flips iff ``beta dE_i < threshold_i``.
    """
    change = jnp.zeros(s.shape[1], s.dtype)
    for phase in (False, True):
        start = 0
        for index, weight in zip(c.index, c.weight):
            rows = slice(start, start + index.shape[0])
            s_c = s[rows]
            de = -2.0 * s_c * (h[rows, None] + _neighbour_sum(s, index, weight))
            flip = (de * beta[None, :] < threshold[rows]) & (label[rows, None] == phase)
            s = jax.lax.dynamic_update_slice_in_dim(s, jnp.where(flip, -s_c, s_c), start, 0)
            change = change + jnp.sum(jnp.where(flip, de, 0.0), axis=0)
            start += index.shape[0]
    return s, change


def _sweep_dense(
    c: _Dense, s: jax.Array, field: jax.Array, threshold: jax.Array, beta: jax.Array, blocks: jax.Array,
    within: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """One sweep: blocks in the order ``blocks`` (nb,), the spins of each block in the order ``within`` (nb, b)
    (a permutation of 0..b-1 per block row of ``c.j``). Sequential flips inside a block see the block's own
    changes through the (b, b) diagonal block; the fields catch up after the block with one matrix product."""
    _, b, _ = c.j.shape
    replicas = s.shape[1]

    def block(carry, xs):
        s, field = carry
        k = xs
        sigma = within[k]  # visiting order inside block k
        rows = c.j[k]  # (b, n): J[k-block, :]
        start = k * b
        diagonal = jax.lax.dynamic_slice_in_dim(rows, start, b, axis=1)[sigma][:, sigma]
        s_b = jax.lax.dynamic_slice_in_dim(s, start, b, 0)
        field_b = jax.lax.dynamic_slice_in_dim(field, start, b, 0)
        threshold_b = jax.lax.dynamic_slice_in_dim(threshold, start, b, 0)

        def visit(change, ys):
            l, coupling, s_l, field_l, threshold_l = ys
            de = -2.0 * s_l * (field_l + coupling @ change)
            new = jnp.where(de * beta < threshold_l, -s_l, s_l)
            return jax.lax.dynamic_update_index_in_dim(change, new - s_l, l, 0), None

        ys = (jnp.arange(b, dtype=jnp.int32), diagonal, s_b[sigma], field_b[sigma], threshold_b[sigma])
        change = jax.lax.scan(visit, jnp.zeros((b, replicas), s.dtype), ys)[0]  # (b, R), visiting order
        change = jnp.zeros_like(change).at[sigma].set(change, unique_indices=True)  # back to block order
        s = jax.lax.dynamic_update_slice_in_dim(s, s_b + change, start, 0)
        return (s, field + rows.T @ change), None

    return jax.lax.scan(block, (s, field), blocks)[0]


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
    s: jax.Array  # (n, R) float, spins in {-1, +1} (n padded for dense, relabelled for sparse)
    field: jax.Array | None  # (n, R) float, local fields h + J s in energy units; None on the sparse path
    e: jax.Array  # (R,) float, Ising energy (offset left out) of s; carried on the sparse path
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
    ``s0`` (n, R) in the original spin order, unpadded."""
    n, replicas = s0.shape
    dense = isinstance(couplings, _Dense)
    if dense:
        blocks, b, padded = couplings.j.shape
        h = jnp.pad(h, (0, padded - n))
        s0 = jnp.pad(s0, ((0, padded - n), (0, 0)), constant_values=1)  # padding spins: uncoupled, never flip
    else:
        h, s0 = h[couplings.order], s0[couplings.order]
    field0 = _field(couplings, h, s0)
    e0 = _ising_energy(h, s0, field0)
    words = jax.random.bits(key, (schedule.shape[0], 4), jnp.uint32)  # key words of each sweep

    def sweep(carry: _Carry, xs):
        t, k, beta_t = xs
        beta = beta_t * slot_betas  # (R,)
        threshold = _exponential(_words(k[0], k[1], _iota(n, replicas)), s0.dtype)
        if dense:
            threshold = jnp.pad(threshold, ((0, s0.shape[0] - n), (0, 0)), constant_values=-jnp.inf)
            order = jnp.argsort(_words(k[2], k[1], _iota(blocks))).astype(jnp.int32)
            within = jnp.argsort(_words(k[3], k[1], _iota(blocks, b)), axis=1).astype(jnp.int32)
            s, field = _sweep_dense(couplings, carry.s, carry.field, threshold, beta, order, within)
            e = _ising_energy(h, s, field)
        else:
            label = (_words(k[2], k[1], _iota(n)) >> _U32(31)) == 1
            s, change = _sweep_sparse(couplings, h, carry.s, threshold, label, beta)
            field, e = None, carry.e + change
        better = e < carry.best_e
        best_e = jnp.where(better, e, carry.best_e)
        best_s = jnp.where(better[None, :], s, carry.best_s)
        if exchange_betas is not None:
            temps = exchange_betas.shape[0]
            chains = replicas // temps
            due = (t + 1) % swap_every == 0
            parity = ((t + 1) // swap_every) % 2
            u_swap = _uniform(_words(k[3], k[0], _iota(temps, chains)), s0.dtype)
            src = exchange_step(exchange_betas, e.reshape(temps, chains), u_swap, parity)
            src = jnp.where(due, src, jnp.arange(temps, dtype=jnp.int32)[:, None])
            # Replica r = k * chains + c takes the state of replica src[k, c] * chains + c.
            gather = (src * chains + jnp.arange(chains, dtype=jnp.int32)[None, :]).reshape(replicas)
            s, e = s[:, gather], e[gather]
            field = None if field is None else field[:, gather]
        return _Carry(s, field, e, best_e, best_s), jnp.min(best_e)

    start = _Carry(s0, field0 if dense else None, e0, e0, s0)
    xs = (jnp.arange(schedule.shape[0], dtype=jnp.int32), words, schedule)
    carry, trace = jax.lax.scan(sweep, start, xs)

    # Energies from scratch on the returned states, so drift in the carried quantities never reaches them.
    energies = _ising_energy(h, carry.s, _field(couplings, h, carry.s)) + offset
    best_each = _ising_energy(h, carry.best_s, _field(couplings, h, carry.best_s)) + offset
    best = jnp.argmin(best_each)
    s, best_s = carry.s, carry.best_s
    if not dense:  # back to the original spin order
        inverse = jnp.zeros(n, jnp.int32).at[couplings.order].set(jnp.arange(n, dtype=jnp.int32))
        s, best_s = s[inverse], best_s[inverse]
    return AnnealResult(
        x=(s[:n].T > 0).astype(jnp.uint8),
        energies=energies,
        best_x=(best_s[:n, best] > 0).astype(jnp.uint8),
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


def _check_init(init: Any, replicas: int, n: int) -> np.ndarray | None:
    """``init`` (n,) or (R, n) in {0, 1} as a (R, n) uint8 array, or None."""
    if init is None:
        return None
    x = np.asarray(init)
    if x.shape not in ((n,), (replicas, n)):
        raise InvalidInputError(f"Argument `init` must have shape ({n},) or ({replicas}, {n}), but has shape {x.shape}")
    if not np.all((x == 0) | (x == 1)):
        raise InvalidInputError(f"Argument `init` must hold only 0 and 1, but holds {np.unique(x)[:5].tolist()}")
    return np.broadcast_to(x.astype(np.uint8), (replicas, n))


def _initial_spins(init: np.ndarray | None, key: jax.Array, replicas: int, n: int, dtype: Any) -> jax.Array:
    """Starting spins (n, R) in {-1, +1}: uniform at random, or from ``init`` (R, n) in {0, 1}."""
    if init is None:
        return jax.random.rademacher(key, (n, replicas), dtype)
    return jnp.asarray(2.0 * init.T - 1.0, dtype)


def _check(qubo: QUBO, key: Any, layout: str, dtype: Any) -> jax.Array:
    """Validate the shared arguments; returns the key as an array."""
    if not isinstance(qubo, QUBO):
        raise ConfigurationError(f"Argument `qubo` must be a qsn.qubo.QUBO, but is {type(qubo).__name__}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ConfigurationError(f"Argument `dtype` must be a floating dtype, but is {dtype}")
    if layout not in ("auto", "dense", "sparse"):
        raise ConfigurationError(f"Argument `layout` must be one of 'auto', 'dense', 'sparse', but is {layout!r}")
    key = jnp.asarray(key)
    if not (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()) and not (
        key.dtype == jnp.uint32 and key.shape == (2,)
    ):
        raise ConfigurationError(
            f"Argument `key` must be a single PRNG key, but has dtype {key.dtype} and shape {key.shape}"
        )
    return key


def _couplings(qubo: QUBO, layout: str, dtype: Any) -> tuple[_Dense | _Sparse, jax.Array, jax.Array]:
    """The JAX path's couplings, fields (n,) and Ising offset, on device."""
    ising = to_ising(qubo)
    couplings = _dense(ising.j, dtype) if _layout(ising.j, layout) == "dense" else _sparse(ising.j, dtype)
    return couplings, jnp.asarray(ising.h, dtype), jnp.asarray(ising.offset, dtype)


def _backend(backend: Any, key: jax.Array, dtype: Any) -> Native | None:
    """The native backend to run, or None for the JAX path (rule in :func:`anneal`)."""
    if isinstance(backend, Native):
        native = backend
    elif backend == "jax":
        return None
    elif backend == "native":
        native = Native()
    elif backend == "auto":
        usable = (jax.default_backend() == "cpu" and jnp.dtype(dtype) == jnp.float32
                  and not isinstance(key, jax.core.Tracer) and Native.available())
        return Native() if usable else None
    else:
        raise ConfigurationError(
            f"Argument `backend` must be 'auto', 'jax', 'native' or a qsn.qubo.Native, but is {backend!r}"
        )
    if jnp.dtype(dtype) != jnp.float32:
        raise ConfigurationError(f"Argument `dtype` must be float32 with backend='native', but is {jnp.dtype(dtype)}")
    if isinstance(key, jax.core.Tracer):
        raise ConfigurationError(
            "backend='native' runs on the host and cannot be traced (jit, vmap): use backend='jax'")
    native.require()
    return native


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
    backend: str | Native = "auto",
) -> AnnealResult:
    """Simulated annealing of ``qubo`` with ``replicas`` independent Metropolis chains.

    Args:
        qubo: the problem, ``E(x) = x^T q x + offset`` over ``x in {0, 1}^n``.
        key: PRNG key; the same key gives the same result (on the same backend).
        replicas: R, independent chains run in parallel.
        sweeps: number of sweeps (n flip attempts each, per replica).
        beta: inverse temperature schedule, 1/(energy unit): ``None`` for the default range (module docstring),
            a pair ``(beta0, beta1)`` (both > 0) for a geometric schedule, or an explicit (sweeps,) array (>= 0;
            ``beta = 0`` is infinite temperature). A constant array samples the Boltzmann distribution.
        init: starting states, (n,) or (R, n) in {0, 1}; ``None`` draws them uniformly from ``key``.
        layout: ``"auto"`` (sparse when the largest degree is at most ``SPARSE_MAX_FILL * n``), ``"dense"`` or
            ``"sparse"``.
        dtype: floating dtype of the spins, fields and energies (the native backend: float32 only).
        backend: ``"jax"`` (this module's sweeps, jit-compiled by XLA, on JAX's default device), ``"native"``
            (the sweep compiled for this CPU, :mod:`qsn.qubo.native`; ``qsn.qubo.Native(threads=...)`` sets its
            threads), or ``"auto"``: native when JAX's default device is the CPU, ``dtype`` is float32, the call
            is not traced and a C++ compiler is found, else JAX. Both sample the same chain; their random
            streams differ.

    Returns:
        :class:`AnnealResult`: final states (R, n), their energies (R,), the best state (n,) and energy seen at
        the end of any sweep, and the best-so-far trace (sweeps,).

    Raises:
        BackendUnavailableError: ``backend="native"`` without a C++ compiler.

    Example:
        >>> import numpy as np
        >>> from qsn.qubo import make_qubo
        >>> r = anneal(make_qubo(-np.eye(3)), jax.random.key(1), replicas=2, sweeps=20)
        >>> r.x.shape, float(r.best_energy)
        ((2, 3), -3.0)
    """
    replicas = _check_int("replicas", replicas, 1)
    sweeps = _check_int("sweeps", sweeps, 1)
    key = _check(qubo, key, layout, dtype)
    native = _backend(backend, key, dtype)
    schedule = _schedule(qubo, beta, sweeps)
    init = _check_init(init, replicas, qubo.n)
    if native is not None:
        return native.run(qubo, key, replicas=replicas, schedule=schedule, betas=np.ones(1), chains=replicas,
                          swap_every=0, init=init, layout=layout)
    couplings, h, offset = _couplings(qubo, layout, dtype)
    key_init, key_run = jax.random.split(key)
    s0 = _initial_spins(init, key_init, replicas, qubo.n, dtype)
    ones = jnp.ones(replicas, dtype)
    return _run(couplings, h, offset, s0, jnp.asarray(schedule, dtype), ones, key_run, None,
                jnp.asarray(1, jnp.int32))


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
    backend: str | Native = "auto",
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
        backend: as in :func:`anneal` (the native backend swaps the temperatures of two replicas instead of
            their states, the same move).

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
    key = _check(qubo, key, layout, dtype)
    native = _backend(backend, key, dtype)
    replicas = temps.size * replicas_per_beta
    init = _check_init(init, replicas, qubo.n)
    if native is not None:
        return native.run(qubo, key, replicas=replicas, schedule=np.ones(sweeps), betas=temps,
                          chains=replicas_per_beta, swap_every=swap_every, init=init, layout=layout)
    couplings, h, offset = _couplings(qubo, layout, dtype)
    key_init, key_run = jax.random.split(key)
    s0 = _initial_spins(init, key_init, replicas, qubo.n, dtype)
    temps = jnp.asarray(temps, dtype)
    slots = jnp.repeat(temps, replicas_per_beta)
    ones = jnp.ones(sweeps, dtype)
    return _run(couplings, h, offset, s0, ones, slots, key_run, temps, jnp.asarray(swap_every, jnp.int32))
