"""Quadratic unconstrained binary optimisation (QUBO) problems and their Ising form.

A QUBO over ``x in {0, 1}^n`` has energy ``E(x) = x^T Q x + offset`` with ``Q`` symmetric (the diagonal
holds the linear terms, since ``x_i^2 = x_i``). Its Ising form over spins ``s = 2x - 1 in {-1, +1}^n`` is
``E(s) = h^T s + sum_{i<j} J_ij s_i s_j + c``. Both forms give the same energy on corresponding states.

Basis convention (shared with :mod:`qsn.circuits`): bitstring index ``k = sum_i x_i 2^(n-1-i)``, so
variable 0 is the most significant bit, as in ``np.kron`` ordering and QuTiP.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError

__all__ = ["QUBO", "Ising", "make_qubo", "to_ising", "energy", "all_energies", "bitstrings"]

MAX_ENUMERATED = 26  # 2^26 energies = 256 MiB in float32


class QUBO(NamedTuple):
    """A QUBO ``E(x) = x^T q x + offset``; ``q`` is symmetric, (n, n)."""

    q: np.ndarray  # (n, n) float64, symmetric
    offset: float

    @property
    def n(self) -> int:
        return int(self.q.shape[0])


class Ising(NamedTuple):
    """The Ising form ``E(s) = h^T s + sum_{i<j} j_ij s_i s_j + offset`` of a QUBO."""

    h: np.ndarray  # (n,) float64
    j: np.ndarray  # (n, n) float64, symmetric, zero diagonal; each pair counted once via i<j
    offset: float


def make_qubo(q: np.ndarray, offset: float = 0.0) -> QUBO:
    """Build a :class:`QUBO` from any square ``q`` (symmetrised: ``(q + q^T)/2`` has the same energy)."""
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] != q.shape[1]:
        raise ConfigurationError(f"Argument `q` must have shape (n, n), but has shape {q.shape}")
    if not np.all(np.isfinite(q)) or not np.isfinite(offset):
        bad = np.argwhere(~np.isfinite(q))
        raise ConfigurationError(f"Argument `q` must be finite; first bad entry at {tuple(bad[0]) if len(bad) else 'offset'}")
    return QUBO((q + q.T) / 2.0, float(offset))


def to_ising(qubo: QUBO) -> Ising:
    """Ising form of ``qubo`` under ``x = (1 + s)/2``."""
    q = qubo.q
    diag = np.diag(q)
    off = q - np.diag(diag)
    # x^T Q x = sum_i q_ii x_i + sum_{i != j} q_ij x_i x_j ; x_i x_j = (1 + s_i + s_j + s_i s_j)/4
    h = diag / 2.0 + off.sum(axis=1) / 2.0
    j = off / 2.0  # pair (i<j) appears twice in the off-diagonal sum: 2 * q_ij / 4
    offset = qubo.offset + diag.sum() / 2.0 + off.sum() / 4.0
    return Ising(h, j, float(offset))


def energy(qubo: QUBO, x, *, host: bool = False):
    """Energies of states ``x``: (..., n) in {0, 1} → (...,).

    ``host=True`` evaluates in float64 NumPy: the exact reference when large penalty terms cancel, which
    JAX's default float32 cannot resolve.
    """
    xp, dtype = (np, np.float64) if host else (jnp, jnp.result_type(float))
    x = xp.asarray(x, dtype=dtype)
    return xp.einsum("...i,ij,...j->...", x, xp.asarray(qubo.q, dtype=dtype), x) + qubo.offset


def bitstrings(n: int) -> np.ndarray:
    """All ``2^n`` states as rows of a (2^n, n) uint8 array, in the basis order of the module docstring."""
    if not 1 <= n <= MAX_ENUMERATED:
        raise ConfigurationError(f"Argument `n` must be in [1, {MAX_ENUMERATED}] to enumerate states, but is {n}")
    k = np.arange(2**n, dtype=np.int64)[:, None]
    return ((k >> np.arange(n - 1, -1, -1)) & 1).astype(np.uint8)


def all_energies(qubo: QUBO) -> jnp.ndarray:
    """The energy of every state, (2^n,), in the basis order of the module docstring (the QAOA cost diagonal)."""
    ising = to_ising(qubo)
    n = qubo.n
    s = 2.0 * jnp.asarray(bitstrings(n), dtype=jnp.result_type(float)) - 1.0
    h = jnp.asarray(ising.h, s.dtype)
    j = jnp.asarray(ising.j, s.dtype)
    return s @ h + 0.5 * jnp.einsum("ki,ij,kj->k", s, j, s) + ising.offset
