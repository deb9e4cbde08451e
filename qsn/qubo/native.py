"""``backend="native"`` of :func:`qsn.qubo.anneal` and :func:`qsn.qubo.parallel_tempering`: the Metropolis sweep
compiled for this CPU (kernels/cpu/anneal.cpp, g++ -O3 -march=native -fopenmp), replicas vectorised and threaded.

It samples with single-spin Metropolis on the Ising form, as the JAX path does (flip iff ``beta dE_i < -log u``,
``dE_i = -2 s_i f_i``, the same ``-log u`` polynomial, the same default temperatures), with its own visiting order
and random stream: the two backends agree in distribution, not sample by sample.

Visiting order: a random permutation of the spins (for dense couplings one that visits whole blocks of 64
consecutive spins, below), shared by all replicas and kept for ``ORDER_EVERY`` = 64 sweeps, then drawn afresh. On the bench's 1000-spin +-1 spin glass (bench/bench_anneal.py, its schedule, 1000
sweeps; mean final energy, +- its standard error over 4 keys) this order reaches -1237.2 +- 0.7 (128
replicas), as dwave-samplers' fixed order 0..n-1 does (-1237.7 +- 0.4, 64 reads), where the JAX path's
(random label, colour) order per sweep reaches -1234.8 +- 0.4 and a fresh permutation every sweep
-1233.4 +- 0.5 (2 keys). An order kept for the whole run does as well on the spin glass but fails on rings:
at low temperature its zero-cost wall moves are deterministic and most runs keep their domain walls (the ring
test of tests/qubo/test_anneal.py); redrawing it lets walls meet.

Layout of the work, by the density of the couplings (the rule of ``layout="auto"``: sparse when no spin has more
than ``SPARSE_MAX_FILL * n`` neighbours):

* **sparse**: neighbour lists; each replica carries its local fields ``f = h + J s``, and a flip of spin ``i``
  adds ``J_ij (s_new - s_old)`` to the fields of its neighbours ``j``. From 8 replicas on, groups of ``G`` = 8
  or 16 replicas are the vector lanes (spin ``i`` of the group's replicas contiguous): after the sweep's
  thresholds (one pass), one visit decides every lane at once and updates the neighbours' rows (by zero in the
  lanes that keep their spin). Below 8 replicas each replica runs alone: the sweep's thresholds in one vector
  pass, then the visits one by one, without branches (a kept spin adds zeros).
* **dense**: the order visits whole blocks of 64 consecutive spins (the blocks in a random order, the spins of
  each block in a random order). Each replica carries its fields; within a block it corrects them by the
  block's flips so far (through the block's own couplings ``J[i, block]``), and after the block it adds
  ``2 s_i J[i, :]`` for each of its flips in one vector pass over its fields: one store per field per block
  instead of one per flip. Replicas go in batches of up to 16 that take each block in turn, so that the
  block's rows of ``J`` are read from memory once per batch.

OpenMP threads take whole groups (batches); parallel tempering runs the sweeps between exchange rounds as one
parallel segment, then exchanges on one thread.

Random numbers: ``word(a, b, c) = fmix32(fmix32(c * 0x9E3779B9 + a) ^ b)`` (uint32 arithmetic, ``fmix32`` the
MurmurHash3 finaliser, as ``qsn.qubo.annealer._words``). The seed words are ``s0 = word(d0, d1, 0)`` and
``s1 = word(d1, d0, 1)`` for the key's data ``jax.random.key_data(key)`` (the default threefry keys have two
words ``(d0, d1)``; longer keys fold their even and their odd words by XOR into ``d0`` and ``d1``). Step ``tau``
(``tau = 0`` draws the initial state, ``tau = t + 1`` is sweep ``t``) has the key words
``a, b, c, d = word(s0, s1, 4 tau + 0..3)``, and replica ``r`` the word ``k_r = word(b, s1, r)``. For spin ``i``:

* the uniform of spin ``i`` of replica ``r`` is from ``w = word(a, k_r, i)``: ``u = ((w >> 8) + 1/2) 2^-24``, as on
  the JAX path; at ``tau = 0`` the top bit of ``w`` is the initial spin (1: up) unless ``init`` is given;
* the visiting order of sweeps ``t0 .. t0 + 63`` (``t0`` a multiple of 64) is drawn with the key word ``c`` of
  step ``t0 + 1``, by Fisher-Yates shuffles ("for ``m = L-1, ..., 1`` swap positions ``m`` and
  ``(w_m (m + 1)) >> 32``"): sparse, the spins with ``w_m = word(c, s1, m)``; dense, the blocks
  (``w_k = word(c, s0, k)``), then the spins of each block from its first spin ``b`` (``w_m = word(c, s1, b + m)``);
* parallel tempering: after sweep ``t`` (``tau = t + 1``) the pair ``(k, k+1)`` of chain ``ch`` exchanges with the
  uniform of ``word(d, s1, k * chains + ch)``; an exchange swaps the temperatures of two replicas (equivalent
  to swapping their states), and results come in slot order, row ``k * chains + ch`` at ``betas[k]``.

Every random number is a function of (seed, sweep, replica, spin) alone and every replica's arithmetic is the
same in every grouping, so a run does not depend on the number of threads or on the lanes. Spins, fields and
thresholds are float32, the carried energies (best state, trace, exchanges) float64 sums of the float32 changes
(visit ``m`` of a sweep into accumulator ``m mod 2``, their sum added after the sweep); carried fields are never
recomputed (integer couplings stay exact; on the bench's 1000-spin Gaussian instance the carried best energy
after 1000 sweeps is within 1.2e-6 relative of the recomputed one, the float32 rounding of ``J`` included).
The reported energies are recomputed in float64 from the returned states with the QUBO's own matrix, as
``energy(qubo, x, host=True)``.

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

from qsn.errors import BackendUnavailableError, ConfigurationError, MemoryBudgetError

__all__ = ["Native", "ORDER_EVERY", "exponential", "seed_words", "visiting_order"]

_LANES = (1, 8, 16)  # replica lanes of the sparse kernel's instantiations
_DENSE_BATCH = 16  # replicas per batch of the dense kernel (at most 64)
ORDER_EVERY = 64  # sweeps that share one visiting order (module docstring)

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
    def flags() -> str:
        """The g++ flags the kernel was built with (the first variant of qsn.kernels.compile.NATIVE that compiled)."""
        from qsn.kernels.compile import NATIVE, host_library

        Native.require()
        return host_library("anneal.cpp", (), False, NATIVE)[1]

    @staticmethod
    def available() -> bool:
        """True when :meth:`require` passes."""
        try:
            Native.require()
        except BackendUnavailableError:
            return False
        return True

    def run(self, qubo: Any, key: jax.Array, *, replicas: int, schedule: np.ndarray, betas: np.ndarray,
            chains: int, swap_every: int, init: np.ndarray | None, layout: str, lanes: int | None = None,
            order_every: int = ORDER_EVERY) -> Any:
        """One run: ``replicas = len(betas) * chains`` replicas, replica ``r`` at ``schedule[t] * betas[k]`` in
        sweep ``t`` while it holds temperature ``k`` (``swap_every`` 0: no exchanges). ``init`` (R, n) in {0, 1}
        or None; ``layout`` "auto", "dense" or "sparse"; ``lanes`` forces the sparse lane count or dense batch,
        ``order_every`` the sweeps per visiting order (tests). Returns an :class:`~qsn.qubo.annealer.AnnealResult`."""
        from qsn.qubo.annealer import AnnealResult

        self.require()
        lib = _library()
        n = qubo.n
        q = np.ascontiguousarray(qubo.q, np.float64)
        seeds = seed_words(key)
        problem = _problem(q, layout)
        sparse = "nb" in problem
        if lanes is None:
            lanes = _sparse_lanes(replicas, self.threads) if sparse else _dense_batch(replicas, self.threads)
        elif lanes not in (_LANES if sparse else range(1, 65)):
            raise ConfigurationError(
                f"Argument `lanes` must be one of {_LANES} (sparse) or in 1..64 (dense), but is {lanes!r}")
        sweeps = schedule.shape[0]
        x = np.empty((replicas, n), np.uint8)
        energies = np.empty(replicas, np.float64)
        best_x = np.empty(n, np.uint8)
        best_energy = np.empty(1, np.float64)
        trace = np.empty(sweeps, np.float64)
        spins = None if init is None else np.ascontiguousarray(2 * np.asarray(init, np.int8) - 1)
        keep = (np.ascontiguousarray(schedule, np.float32), np.ascontiguousarray(betas, np.float32), spins)
        status = lib.qsn_anneal(
            0 if sparse else 1, n, replicas, sweeps, betas.shape[0], chains, swap_every, order_every, lanes,
            int(self.threads or 0), seeds[0], seeds[1],
            _ptr(keep[0]), _ptr(keep[1]), _ptr(spins), _ptr(problem["h"]),
            _ptr(problem.get("ptr")), _ptr(problem.get("nb")), _ptr(problem.get("w")), problem.get("degree", 0),
            _ptr(problem.get("j")), _ptr(problem.get("q_ptr")), _ptr(problem.get("q_col")),
            _ptr(problem.get("q_val")), _ptr(None if sparse else q),
            _ptr(x), _ptr(energies), _ptr(best_x), _ptr(best_energy), _ptr(trace),
        )
        if status == 2:
            raise ConfigurationError(f"Argument `lanes` or `order_every` was refused by the kernel: {lanes!r}, "
                                     f"{order_every!r}")
        if status != 0:
            need = 3 * 4 * (replicas + 15) * n + 24 * replicas + 8 * sweeps * replicas
            raise MemoryBudgetError(f"backend='native': the state of {replicas} replicas x {n} spins (about "
                                    f"{need / 2**20:.0f} MiB) could not be allocated")
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
    lib.qsn_anneal.argtypes = [_I] * 10 + [_U, _U] + [_P] * 7 + [_I] + [_P] * 10
    lib.qsn_anneal_order.restype = None
    lib.qsn_anneal_order.argtypes = [_I, _U, _U, _I, _I, _I, _P]
    lib.qsn_anneal_dense_layout.restype = None
    lib.qsn_anneal_dense_layout.argtypes = [_I, _P, _P, _P, _P]
    lib.qsn_anneal_sparse_layout.restype = _I
    lib.qsn_anneal_sparse_layout.argtypes = [_I, _P, _I] + [_P] * 9
    lib.qsn_anneal_exponential.restype = None
    lib.qsn_anneal_exponential.argtypes = [_LL, _P, _P]
    return lib


def _fmix32(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    return x ^ (x >> 16)


def _word(a: int, b: int, c: int) -> int:
    return _fmix32(_fmix32((c * 0x9E3779B9 + a) & 0xFFFFFFFF) ^ b)


def seed_words(key: jax.Array) -> tuple[int, int]:
    """The kernel's seed words ``(s0, s1)`` of a PRNG key (rule in the module docstring)."""
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    words = np.asarray(data, np.uint32).ravel()
    d0, d1 = (int(np.bitwise_xor.reduce(words[k::2])) if words[k::2].size else 0 for k in (0, 1))
    return _word(d0, d1, 0), _word(d1, d0, 1)


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
    """Replica lanes of the sparse kernel: one replica at a time below 8 replicas, else the widest group that
    keeps every thread busy."""
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


def visiting_order(n: int, key: jax.Array, sweep: int = 0, every: int = ORDER_EVERY, dense: bool = False) -> np.ndarray:
    """The kernel's visiting order in ``sweep`` of a run with ``key``, of the sparse or the dense path: (n,)
    int32, the spin visited m-th."""
    Native.require()
    order = np.empty(n, np.int32)
    _library().qsn_anneal_order(n, *seed_words(key), every, sweep, int(dense), _ptr(order))
    return order


# ---------------------------------------------------------------- problem layout (from the QUBO matrix)
# The kernel's layout functions read q once (qsn_anneal_dense_layout, qsn_anneal_sparse_layout); the Ising
# offset is sum(diag) / 2 + sum(offdiag) / 4 (the QUBO's own offset is added by the caller).


def _dense(q: np.ndarray) -> dict[str, Any]:
    n = q.shape[0]
    j, h, sums = np.empty((n, n), np.float32), np.empty(n, np.float32), np.empty(2)
    _library().qsn_anneal_dense_layout(n, _ptr(q), _ptr(j), _ptr(h), _ptr(sums))
    return {"h": h, "j": j, "ising_offset": sums[0] / 2.0 + sums[1] / 4.0}


def _sparse(q: np.ndarray, max_degree: int) -> dict[str, Any] | None:
    """The sparse layout, or None when a row of ``q`` has more than ``max_degree`` off-diagonal nonzeros."""
    n = q.shape[0]
    room, width = n * (max_degree + 1), n * max(1, max_degree)
    out = {
        "q_ptr": np.empty(n + 1, np.int64), "q_col": np.empty(room, np.int32), "q_val": np.empty(room),
        "h": np.empty(n, np.float32), "ptr": np.empty(n + 1, np.int64), "nb": np.empty(width, np.int32),
        "w": np.empty(width, np.float32),
    }
    stats, sums = np.empty(2, np.int64), np.empty(2)
    names = ("q_ptr", "q_col", "q_val", "h", "ptr", "nb", "w")
    if _library().qsn_anneal_sparse_layout(n, _ptr(q), max_degree, *(_ptr(out[k]) for k in names), _ptr(stats),
                                          _ptr(sums)) != 0:
        return None
    out["degree"] = int(stats[1])
    out["ising_offset"] = sums[0] / 2.0 + sums[1] / 4.0
    return out


def _problem(q: np.ndarray, layout: str) -> dict[str, Any]:
    """The kernel's problem for ``layout`` ("auto": sparse when no row has more than SPARSE_MAX_FILL n
    off-diagonal nonzeros, the rule of qsn.qubo.annealer)."""
    from qsn.qubo.annealer import SPARSE_MAX_FILL

    n = q.shape[0]
    problem = None
    if layout != "dense":
        problem = _sparse(q, n if layout == "sparse" else int(SPARSE_MAX_FILL * n))
    return problem if problem is not None else _dense(q)
