"""``backend="native"`` of :func:`qsn.qubo.anneal` and :func:`qsn.qubo.parallel_tempering`: the Metropolis sweep
compiled for this CPU (kernels/cpu/anneal.cpp, g++ -O3 -march=native -fopenmp), replicas vectorised and threaded.

It samples the same chain as the JAX path (single-spin Metropolis on the Ising form, flip iff
``beta dE_i < -log u``, the same ``-log u`` polynomial and default temperatures) with its own visiting order and
random stream, so the two backends agree in distribution, not sample by sample:

* **sparse** couplings: the JAX path's order, ``(l_i, colour_i)`` for a random label bit ``l_i`` per spin and
  sweep shared by all replicas, over the same greedy colouring (computed in C++, equal to ``_colouring``). Spins
  of one label and colour are uncoupled, so they update at once: replicas are the vector lanes (groups of
  ``G`` = 8 or 16 replicas with spin ``i`` of the group contiguous), or, below 8 replicas, the spins of a
  colour class are (neighbour spins gathered). Fields are summed from the neighbour lists at each visit.
* **dense** couplings: every sweep visits the spins in a random permutation (Fisher-Yates, shared by all
  replicas); each replica carries its local fields ``f = h + J s`` and a flip of spin ``i`` adds
  ``2 s_i J[i, :]`` to them (one vector pass over row ``i``, only when the spin flips). Replicas go in batches
  that take each spin in turn, so a row of ``J`` is read once per batch.

Random numbers: ``word(a, b, c) = fmix32(fmix32(c * 0x9E3779B9 + a) ^ b)`` (uint32 arithmetic, ``fmix32`` the
MurmurHash3 finaliser, as ``qsn.qubo.annealer._words``). The seed words ``(s0, s1)`` are
``jax.random.bits(key, (2,), uint32)``. Step ``tau`` (``tau = 0`` draws the initial state, ``tau = t + 1`` is
sweep ``t``) has key words ``a, b, c, d = word(s0, s1, 4 tau + 0..3)``; replica ``r`` has
``k_r = word(b, s1, r)``. Then, with ``i`` the original index of a spin,

* the uniform of spin ``i`` of replica ``r`` is from ``word(a, k_r, i)`` (its top 24 bits, as on the JAX path);
  at ``tau = 0`` its top bit is the initial spin (1: up) unless ``init`` is given;
* the label of spin ``i`` (sparse) is the top bit of ``word(c, s1, i)``;
* the dense order: from the identity, for ``m = n-1, ..., 1`` swap positions ``m`` and
  ``(word(c, s1, m) * (m + 1)) >> 32``;
* parallel tempering: the exchange of pair ``(k, k+1)`` of chain ``ch`` after sweep ``t`` uses the uniform of
  ``word(d, s1, k * chains + ch)``; exchanges swap the temperatures of two replicas (equivalent to swapping
  their states) and the outputs are returned in slot order, row ``k * chains + ch`` at ``betas[k]``.

Every random number is a function of (seed, sweep, replica, spin) alone, so a run does not depend on the
number of threads or on how replicas are grouped into lanes. Spins, fields and thresholds are float32 (the
carried energies float64); the reported energies are recomputed in float64 from the returned states with the
QUBO's own matrix, as ``energy(qubo, x, host=True)``.

The first run builds the library with g++ (a few seconds; cached in ``$QSN_KERNEL_CACHE`` or
``~/.cache/qsn/kernels``); nothing compiles at import. Without a compiler, :class:`Native` raises
:class:`qsn.errors.BackendUnavailableError`.

Example:
    >>> import jax, numpy as np
    >>> from qsn.qubo import Native, anneal, make_qubo
    >>> r = anneal(make_qubo(np.array([[1.0, -2.0], [-2.0, 1.0]])), jax.random.key(0), replicas=4, sweeps=50,
    ...            backend=Native(threads=1))
    >>> r.best_x.tolist(), float(r.best_energy)
    ([1, 1], -2.0)
"""

from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import BackendUnavailableError, ConfigurationError

__all__ = ["Native", "colouring", "exponential"]

# Sparse path when the largest row degree is at most this fraction of n (qsn.qubo.annealer.SPARSE_MAX_FILL).
_SPARSE_MAX_FILL = 0.1
_LANES = (1, 8, 16)  # replica lanes of the sparse kernel's instantiations
_DENSE_BATCH = 16  # replicas per batch of the dense kernel (at most 64)

_P = ctypes.c_void_p
_I = ctypes.c_int
_U = ctypes.c_uint
_LL = ctypes.c_longlong


@dataclass(frozen=True)
class Native:
    """The native backend and its options; ``backend="native"`` is ``Native()``.

    Attributes:
        threads: OpenMP threads (``None``: OpenMP's default, ``OMP_NUM_THREADS`` or every core). Results do not
            depend on it.
    """

    threads: int | None = None

    def __post_init__(self) -> None:
        t = self.threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1):
            raise ConfigurationError(f"Argument `threads` must be an integer >= 1 or None, but is {t!r}")

    @staticmethod
    def require() -> None:
        """Raise :class:`BackendUnavailableError` when the kernel is not built yet and no C++ compiler is found."""
        from qsn.kernels.compile import host_compiler

        if _library.cache_info().currsize == 0 and host_compiler() is None:
            raise BackendUnavailableError(
                "backend='native' of qsn.qubo compiles kernels/cpu/anneal.cpp on first use and needs a C++ "
                "compiler: install g++ (Debian/Ubuntu: apt install g++) or point $CXX at one; backend='jax' needs none"
            )

    @staticmethod
    def available() -> bool:
        """True when :meth:`require` passes."""
        try:
            Native.require()
        except BackendUnavailableError:
            return False
        return True

    def run(self, qubo: Any, key: jax.Array, *, replicas: int, schedule: np.ndarray, betas: np.ndarray,
            chains: int, swap_every: int, init: np.ndarray | None, layout: str, lanes: int | None = None) -> Any:
        """One run: ``replicas = len(betas) * chains`` replicas, replica ``r`` at ``schedule[t] * betas[k]`` in
        sweep ``t`` while it holds temperature ``k`` (``swap_every`` 0: no exchanges). ``init`` (R, n) in {0, 1}
        or None; ``layout`` "auto", "dense" or "sparse"; ``lanes`` forces the sparse lane count or dense batch
        (tests). Returns an :class:`~qsn.qubo.annealer.AnnealResult`."""
        from qsn.qubo.annealer import AnnealResult

        self.require()
        lib = _library()
        n = qubo.n
        q = np.ascontiguousarray(qubo.q, np.float64)
        sparse, flat = _layout(q, layout)
        problem = _sparse(q, flat) if sparse else _dense(q)
        if lanes is None:
            lanes = _sparse_lanes(replicas, self.threads) if sparse else _dense_batch(replicas, self.threads)
        elif lanes not in (_LANES if sparse else range(1, 65)):
            raise ConfigurationError(f"Argument `lanes` must be one of {_LANES} (sparse) or 1..64 (dense), but is {lanes!r}")
        seeds = np.asarray(jax.random.bits(key, (2,), jnp.uint32))
        sweeps = schedule.shape[0]
        x = np.empty((replicas, n), np.uint8)
        energies = np.empty(replicas, np.float64)
        best_x = np.empty(n, np.uint8)
        best_energy = np.empty(1, np.float64)
        trace = np.empty(sweeps, np.float64)
        spins = None if init is None else np.ascontiguousarray(2 * np.asarray(init, np.int8) - 1)
        keep = (np.ascontiguousarray(schedule, np.float32), np.ascontiguousarray(betas, np.float32), spins)
        status = lib.qsn_anneal(
            0 if sparse else 1, n, replicas, sweeps, betas.shape[0], chains, swap_every, lanes,
            int(self.threads or 0), int(seeds[0]), int(seeds[1]),
            _ptr(keep[0]), _ptr(keep[1]), _ptr(spins), _ptr(problem["h"]),
            problem.get("classes", 0), _ptr(problem.get("cls_start")), _ptr(problem.get("cls_deg")),
            _ptr(problem.get("cls_off")), _ptr(problem.get("nb")), _ptr(problem.get("w")), _ptr(problem.get("orig")),
            _ptr(problem.get("j")), _ptr(problem.get("q_ptr")), _ptr(problem.get("q_col")),
            _ptr(problem.get("q_val")), _ptr(None if sparse else q),
            _ptr(x), _ptr(energies), _ptr(best_x), _ptr(best_energy), _ptr(trace),
        )
        if status == 2:
            raise ConfigurationError(f"Argument `lanes` was refused by the kernel: {lanes!r}")
        if status != 0:
            raise MemoryError(f"backend='native': the state of {replicas} replicas x {n} spins did not fit in memory")
        offset = qubo.offset
        return AnnealResult(
            x=jnp.asarray(x),
            energies=jnp.asarray(energies + offset, jnp.float32),
            best_x=jnp.asarray(best_x),
            best_energy=jnp.asarray(best_energy[0] + offset, jnp.float32),
            trace=jnp.asarray(trace + (problem["ising_offset"] + offset), jnp.float32),
        )


# ---------------------------------------------------------------- the library


@functools.lru_cache(maxsize=1)
def _library() -> ctypes.CDLL:
    from qsn.kernels.compile import NATIVE, host_library

    lib, _ = host_library("anneal.cpp", (), False, NATIVE)
    lib.qsn_anneal.restype = _I
    lib.qsn_anneal.argtypes = (
        [_I] * 9 + [_U, _U] + [_P] * 4 + [_I] + [_P] * 6 + [_P] + [_P] * 4 + [_P] * 5
    )
    lib.qsn_anneal_colour.restype = None
    lib.qsn_anneal_colour.argtypes = [_I, _P, _P, _P, _P]
    lib.qsn_anneal_exponential.restype = None
    lib.qsn_anneal_exponential.argtypes = [_LL, _P, _P]
    return lib


def _ptr(a: np.ndarray | None) -> int | None:
    if a is None:
        return None
    if not a.flags.c_contiguous:
        raise ValueError("kernel arrays must be C-contiguous")
    return a.ctypes.data


def _threads(threads: int | None) -> int:
    if threads:
        return int(threads)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _sparse_lanes(replicas: int, threads: int | None) -> int:
    """Lanes of the sparse kernel: spins as lanes below 8 replicas, else the widest group that keeps every
    thread busy."""
    if replicas < 8:
        return 1
    per_thread = replicas / _threads(threads)
    return max(g for g in _LANES[1:] if g <= max(8, per_thread))


def _dense_batch(replicas: int, threads: int | None) -> int:
    return max(1, min(_DENSE_BATCH, -(-replicas // _threads(threads))))


def exponential(words: np.ndarray) -> np.ndarray:
    """The kernel's ``-log u`` of uint32 ``words`` (any shape), float32: for tests against NumPy's log."""
    Native.require()
    w = np.ascontiguousarray(words, np.uint32)
    out = np.empty(w.shape, np.float32)
    _library().qsn_anneal_exponential(w.size, _ptr(w), _ptr(out))
    return out


def colouring(j: np.ndarray) -> np.ndarray:
    """The kernel's greedy colouring (largest degree first, smallest free colour) of the graph of nonzero ``j``
    (n, n): (n,) int32 colours, adjacent spins differ (the same as ``qsn.qubo.annealer._colouring``)."""
    Native.require()
    j = np.asarray(j)
    n = j.shape[0]
    rows, cols = np.nonzero(j)
    return _colour(n, rows, cols)


def _colour(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Colours from the off-diagonal nonzeros (rows sorted, then columns)."""
    degree = np.bincount(rows, minlength=n)
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(degree, out=ptr[1:])
    col = np.ascontiguousarray(cols, np.int32)
    order = np.ascontiguousarray(np.argsort(-degree, kind="stable"), np.int32)
    colour = np.empty(n, np.int32)
    _library().qsn_anneal_colour(n, _ptr(ptr), _ptr(col), _ptr(order), _ptr(colour))
    return colour


# ---------------------------------------------------------------- problem layout (from the QUBO matrix)
# Ising form (qsn.qubo.model.to_ising) without n x n temporaries: h = rowsum(q) / 2, J = offdiag(q) / 2,
# offset = qubo.offset + sum(diag) / 2 + sum(offdiag) / 4 (the QUBO offset is added by the caller).


def _layout(q: np.ndarray, layout: str) -> tuple[bool, np.ndarray | None]:
    """Whether to take the sparse path, and the flat indices of the nonzeros of ``q`` when they were found."""
    n = q.shape[0]
    nonzero = q != 0
    if layout == "dense" or (layout == "auto" and np.count_nonzero(nonzero) > _SPARSE_MAX_FILL * n * n + n):
        return False, None  # (auto: the mean degree alone exceeds the sparse bound)
    flat = np.flatnonzero(nonzero)
    if layout == "auto":
        rows = flat // n
        degree = np.bincount(rows[rows != flat - rows * n], minlength=n)
        if int(degree.max(initial=0)) > _SPARSE_MAX_FILL * n:
            return False, None
    return True, flat


def _ising_offset(q: np.ndarray) -> float:
    diag = float(np.trace(q))
    return diag / 2.0 + (float(q.sum()) - diag) / 4.0


def _dense(q: np.ndarray) -> dict[str, Any]:
    j = (0.5 * q).astype(np.float32)
    np.fill_diagonal(j, 0.0)
    h = (0.5 * q.sum(axis=1)).astype(np.float32)
    return {"h": h, "j": j, "ising_offset": _ising_offset(q)}


def _sparse(q: np.ndarray, flat: np.ndarray) -> dict[str, Any]:
    """Spins relabelled by colour class; each class's neighbour lists padded to its own largest degree (a
    spin's own index with weight 0) and stored column by column, (deg_c, n_c); the QUBO's CSR (diagonal
    included) for the final energies."""
    n = q.shape[0]
    rows = flat // n  # flat: the nonzeros of q in row-major order
    cols = flat - rows * n
    vals = q.ravel()[flat]
    q_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=q_ptr[1:])
    off = rows != cols
    r_off, c_off, v_off = rows[off], cols[off], vals[off]
    h = (0.5 * np.bincount(rows, vals, minlength=n)).astype(np.float32)
    colour = _colour(n, r_off, c_off)

    order = np.argsort(colour, kind="stable").astype(np.int32)  # relabelled spin -> original index
    inverse = np.empty(n, np.int64)
    inverse[order] = np.arange(n)
    sizes = np.bincount(colour)
    cls_start = np.zeros(sizes.size + 1, np.int32)
    np.cumsum(sizes, out=cls_start[1:])
    cls = np.repeat(np.arange(sizes.size), sizes)  # class of relabelled spin
    rr, rc = inverse[r_off], inverse[c_off]
    sort = np.lexsort((rc, rr))
    rr, rc, w = rr[sort], rc[sort], 0.5 * v_off[sort]
    degree = np.bincount(rr, minlength=n)
    cls_deg = np.maximum(1, np.maximum.reduceat(degree, cls_start[:-1])).astype(np.int32)
    cls_off = np.zeros(sizes.size + 1, np.int64)
    np.cumsum(sizes * cls_deg, out=cls_off[1:])
    row_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(degree, out=row_ptr[1:])
    position = np.arange(rr.size) - row_ptr[rr]
    c_of = cls[rr]
    dest = cls_off[c_of] + position * sizes[c_of] + (rr - cls_start[c_of])  # (deg_c, n_c) per class
    nb = np.concatenate([np.tile(np.arange(cls_start[c], cls_start[c + 1], dtype=np.int32), cls_deg[c])
                         for c in range(sizes.size)])  # padding: the spin itself, weight 0
    weight = np.zeros(nb.size, np.float32)
    nb[dest] = rc
    weight[dest] = w
    return {
        "h": np.ascontiguousarray(h[order]), "classes": int(sizes.size), "cls_start": cls_start, "cls_deg": cls_deg,
        "cls_off": cls_off, "nb": nb, "w": weight, "orig": order,
        "q_ptr": q_ptr, "q_col": cols.astype(np.int32), "q_val": np.ascontiguousarray(vals),
        "ising_offset": float(vals[~off].sum()) / 2.0 + float(v_off.sum()) / 4.0,
    }
