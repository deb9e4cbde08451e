"""The native sweep (qsn.qubo.native, kernels/cpu/anneal.cpp) against references written here.

* sample by sample: annealing runs of a sparse and a dense instance with integer couplings equal a NumPy
  Metropolis loop that draws the same random words from the documented hash (qsn.qubo.native's docstring),
  visits the spins in the documented order and computes every field from scratch in float64 (integer
  couplings: the kernel's float32 arithmetic is exact, so the match is exact); the thresholds come from the JAX
  path's ``_exponential``, a second implementation of the kernel's polynomial;
* the kernel's ``-log u`` against NumPy's log; its visiting order is a permutation that changes with the key;
* bookkeeping: reported energies equal ``energy(qubo, x, host=True)``, the trace is the running minimum;
* invariances: the same key gives the same run; the thread count and the grouping of replicas into vector
  lanes (spins as lanes below 8 replicas, 8 or 16 replicas as lanes; dense batches) change nothing, for
  annealing and for parallel tempering, on Gaussian couplings;
* errors: a missing compiler is a BackendUnavailableError naming it (and ``backend="auto"`` then runs JAX),
  bad options are ConfigurationErrors.

The sampling tests (Boltzmann statistics, brute-force minima) run on both backends in tests/qubo/test_anneal.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsn.errors import BackendUnavailableError, ConfigurationError
from qsn.qubo import annealer as anneal_module
from qsn.qubo import native
from qsn.qubo.annealer import anneal, parallel_tempering
from qsn.qubo.model import all_energies, bitstrings, energy, make_qubo, to_ising
from qsn.qubo.native import Native

pytestmark = pytest.mark.skipif(not Native.available(), reason="the native backend needs a C++ compiler")

KEY = jax.random.key(777)
M32 = np.uint64(0xFFFFFFFF)


# ---------------------------------------------------------------------------------------------
# The documented random stream, in NumPy (uint64 arithmetic reduced mod 2^32)
# ---------------------------------------------------------------------------------------------


def _fmix32(x):
    x = np.asarray(x, np.uint64) & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & M32
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & M32
    return x ^ (x >> np.uint64(16))


def _word(a, b, c):
    """word(a, b, c) = fmix32(fmix32(c * 0x9E3779B9 + a) ^ b), elementwise over arrays."""
    c = np.asarray(c, np.uint64)
    return _fmix32(_fmix32((c * np.uint64(0x9E3779B9) + np.uint64(a)) & M32) ^ np.asarray(b, np.uint64))


def _shuffle(items, words):
    """Fisher-Yates: for m = len-1, ..., 1 swap positions m and (words[m] (m + 1)) >> 32."""
    items = items.copy()
    for m in range(len(items) - 1, 0, -1):
        pick = int((int(words[m]) * (m + 1)) >> 32)
        items[m], items[pick] = items[pick], items[m]
    return items


class _Stream:
    """Key words of step tau and the per-replica, per-spin draws of qsn.qubo.native's docstring."""

    def __init__(self, key):
        d0, d1 = (int(v) for v in np.asarray(jax.random.key_data(key)))  # a threefry key: two words
        self.s0, self.s1 = int(_word(d0, d1, 0)), int(_word(d1, d0, 1))

    def keys(self, tau):
        return [int(_word(self.s0, self.s1, 4 * tau + j)) for j in range(4)]

    def spin_words(self, tau, r, n):
        a, b, _, _ = self.keys(tau)
        return _word(a, _word(b, self.s1, r), np.arange(n)).astype(np.uint32)

    def order(self, n, sweep, every, dense=False):
        """The visiting order of ``sweep``, drawn with key word c of the first sweep of its block of ``every``:
        a permutation (sparse), or blocks of 64 consecutive spins in a random order, each in a random order."""
        c = self.keys(sweep // every * every + 1)[2]
        if not dense:
            return _shuffle(np.arange(n), _word(c, self.s1, np.arange(n)))
        starts = 64 * _shuffle(np.arange(-(-n // 64)), _word(c, self.s0, np.arange(-(-n // 64))))
        return np.concatenate([_shuffle(np.arange(b, min(b + 64, n)), _word(c, self.s1, np.arange(b, b + 64)))
                               for b in starts])


def _reference(qubo, key, replicas, schedule, every=native.ORDER_EVERY, dense=False):
    """Annealing in NumPy: per replica, sequential Metropolis in the documented order, fields from scratch
    (float64), flip iff float32(beta) * float32(dE) < threshold. Returns (x (R, n), best each (R,) energy and
    state, trace of the running minimum of the Ising energy without offset)."""
    ising = to_ising(qubo)
    h, j, n = ising.h, ising.j, qubo.n
    stream = _Stream(key)
    exponential = lambda w: np.asarray(anneal_module._exponential(jnp.asarray(w), jnp.float32))  # noqa: E731
    s = np.stack([np.where(stream.spin_words(0, r, n) >> 31, 1.0, -1.0) for r in range(replicas)])
    e_of = lambda x: float(h @ x + 0.5 * x @ j @ x)  # noqa: E731
    best = [e_of(s[r]) for r in range(replicas)]
    best_s = s.copy()
    trace = []
    for t, beta_t in enumerate(schedule):
        tau = t + 1
        beta = np.float32(beta_t)
        order = stream.order(n, t, every, dense)
        for r in range(replicas):
            threshold = exponential(stream.spin_words(tau, r, n))
            for i in order:
                de = np.float32(-2.0 * s[r, i] * (h[i] + j[i] @ s[r]))
                if beta * de < threshold[i]:
                    s[r, i] = -s[r, i]
            if e_of(s[r]) < best[r]:
                best[r], best_s[r] = e_of(s[r]), s[r].copy()
        trace.append(min(best))
    return (s > 0).astype(np.uint8), np.array(best), (best_s > 0).astype(np.uint8), np.array(trace)


def _integer_qubo(n, seed, dense, ring=False):
    rng = np.random.default_rng(seed)
    if dense:
        q = rng.integers(-3, 4, (n, n)).astype(float)
    elif ring:  # every spin with two neighbours (the kernel's unrolled path)
        q = np.zeros((n, n))
        q[np.arange(n), (np.arange(n) + 1) % n] = rng.choice([-2.0, -1.0, 1.0, 2.0], n)
    else:
        q = np.zeros((n, n))
        for _ in range(2):  # two random matchings and a ring: degree <= 4
            p = rng.permutation(n)
            q[p[::2], p[1::2]] = rng.choice([-2.0, -1.0, 1.0, 2.0], n // 2)
        q[np.arange(n), (np.arange(n) + 1) % n] = rng.choice([-1.0, 1.0], n)
    q = q + q.T + np.diag(rng.integers(-3, 4, n).astype(float))  # even off-diagonal: integer Ising couplings
    return make_qubo(q, offset=1.5)


@pytest.mark.parametrize("layout, replicas, lanes", [
    ("sparse", 3, 1), ("sparse", 11, 8), ("sparse", 19, 16), ("ring", 3, 1), ("ring", 9, 8), ("dense", 3, 1),
    ("dense", 11, 4),
])
def test_kernel_equals_numpy_metropolis_loop(layout, replicas, lanes):
    # dense: 150 spins, two full blocks of 64 and a partial one
    qubo = _integer_qubo(150 if layout == "dense" else 40, 5, dense=layout == "dense", ring=layout == "ring")
    layout = "sparse" if layout == "ring" else layout
    schedule = np.geomspace(0.2, 3.0, 7)
    # A new visiting order every 3 sweeps, so that the run crosses two redraws (the default is every 64).
    r = Native(threads=2).run(qubo, KEY, replicas=replicas, schedule=schedule, betas=np.ones(1), chains=replicas,
                              swap_every=0, init=None, layout=layout, lanes=lanes, order_every=3)
    x, best, best_x, trace = _reference(qubo, KEY, replicas, schedule, every=3, dense=layout == "dense")
    assert np.any(x != x[:1]) and np.any(x == 1) and np.any(x == 0)  # the replicas went different ways
    np.testing.assert_array_equal(np.asarray(r.x), x)
    ising_offset = to_ising(qubo).offset
    np.testing.assert_allclose(np.asarray(r.trace), trace + ising_offset, rtol=1e-6)
    np.testing.assert_allclose(float(r.best_energy), best.min() + ising_offset, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(r.best_x), best_x[np.argmin(best)])


def test_public_call_runs_the_kernel_with_the_callers_schedule():
    qubo = _integer_qubo(40, 6, dense=False)
    r = anneal(qubo, KEY, replicas=3, sweeps=5, beta=(0.2, 3.0), backend="native")
    x, _, _, _ = _reference(qubo, KEY, 3, 0.2 * 15.0 ** (np.arange(5) / 4))
    np.testing.assert_array_equal(np.asarray(r.x), x)


def test_exponential_matches_minus_log():
    words = (np.arange(0, 2**24, 7, dtype=np.uint32) << np.uint32(8)) | np.uint32(0x5C)
    got = native.exponential(words).astype(np.float64)
    u = ((words >> 8).astype(np.float64) + 0.5) * 2.0**-24
    np.testing.assert_allclose(got, -np.log(u), rtol=2e-7, atol=3e-7)
    assert got.min() > 0


@pytest.mark.parametrize("dense", [False, True])
def test_visiting_order_is_a_permutation_drawn_afresh_every_64_sweeps(dense):
    a = native.visiting_order(500, KEY, dense=dense)
    np.testing.assert_array_equal(np.sort(a), np.arange(500))
    np.testing.assert_array_equal(a, _Stream(KEY).order(500, 0, 64, dense))
    np.testing.assert_array_equal(native.visiting_order(500, KEY, sweep=63, dense=dense), a)
    for other in (native.visiting_order(500, KEY, sweep=64, dense=dense),
                  native.visiting_order(500, jax.random.key(778), dense=dense), np.arange(500)):
        assert np.mean(a != other) > 0.9
    if dense:  # the 8 blocks of 64 consecutive spins (the last one of 52) one after another, not in index order
        block = a // 64
        assert np.count_nonzero(np.diff(block)) == 7
        assert not np.all(np.diff(block[np.r_[0, np.flatnonzero(np.diff(block)) + 1]]) > 0)


# ---------------------------------------------------------------------------------------------
# Bookkeeping and invariances
# ---------------------------------------------------------------------------------------------


def _gaussian(n, seed, fill=1.0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, n)) * (rng.random((n, n)) < fill)
    return make_qubo(q, offset=-2.25)


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_energies_and_trace(layout):
    qubo = _gaussian(50, 1, fill=0.05 if layout == "sparse" else 1.0)
    for r in (anneal(qubo, KEY, replicas=20, sweeps=60, layout=layout, backend="native"),
              parallel_tempering(qubo, KEY, betas=[0.2, 0.7, 2.0], replicas_per_beta=4, sweeps=60, layout=layout,
                                 backend="native")):
        x = np.asarray(r.x)
        np.testing.assert_allclose(np.asarray(r.energies), energy(qubo, x, host=True), rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(float(r.best_energy), energy(qubo, np.asarray(r.best_x), host=True), rtol=1e-6)
        trace = np.asarray(r.trace)
        assert np.all(np.diff(trace) <= 0)
        np.testing.assert_allclose(trace[-1], float(r.best_energy), rtol=1e-5)
        assert float(r.best_energy) <= np.asarray(r.energies).min() + 1e-5


def _same(a, b):
    return all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(a, b))


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_same_key_same_run_and_other_keys_differ(layout):
    qubo = _gaussian(40, 2, fill=0.06 if layout == "sparse" else 1.0)
    call = lambda key: anneal(qubo, key, replicas=24, sweeps=30, layout=layout, backend="native")  # noqa: E731
    assert _same(call(KEY), call(KEY))
    assert not np.array_equal(np.asarray(call(KEY).x), np.asarray(call(jax.random.key(778)).x))


@pytest.mark.parametrize("layout, lanes", [("sparse", (1, 8, 16)), ("ring", (1, 8, 16)), ("dense", (1, 5, 16))])
def test_threads_and_lanes_change_nothing(layout, lanes):
    if layout == "ring":  # Gaussian couplings on a ring: every spin with two neighbours
        rng = np.random.default_rng(3)
        q = np.zeros((60, 60))
        q[np.arange(60), (np.arange(60) + 1) % 60] = rng.normal(size=60)
        qubo, layout = make_qubo(q + np.diag(rng.normal(size=60)), 0.5), "sparse"
    else:
        qubo = _gaussian(60, 3, fill=0.05 if layout == "sparse" else 1.0)
    schedule = np.geomspace(0.1, 4.0, 40)
    runs = [Native(threads=t).run(qubo, KEY, replicas=37, schedule=schedule, betas=np.ones(1), chains=37, swap_every=0,
                                  init=None, layout=layout, lanes=g) for t in (1, 3) for g in lanes]
    assert all(_same(runs[0], other) for other in runs[1:])
    pt = [Native(threads=t).run(qubo, KEY, replicas=24, schedule=np.ones(30), betas=np.array([0.3, 0.8, 1.5, 3.0]),
                                chains=6, swap_every=2, init=None, layout=layout, lanes=g)
          for t in (1, 2) for g in lanes]
    assert all(_same(pt[0], other) for other in pt[1:])


def test_init_is_kept_at_zero_temperature_from_the_ground_state():
    qubo = _gaussian(12, 4)
    ground = bitstrings(12)[int(np.argmin(np.asarray(all_energies(qubo))))]
    r = anneal(qubo, KEY, replicas=5, sweeps=10, beta=np.full(10, 1e6), init=ground, backend="native")
    assert np.all(np.asarray(r.x) == ground[None, :])
    pt = parallel_tempering(qubo, KEY, betas=[1e5, 1e6], replicas_per_beta=3, sweeps=7, init=ground, backend="native")
    assert np.all(np.asarray(pt.x) == ground[None, :])


# ---------------------------------------------------------------------------------------------
# Backend selection and errors
# ---------------------------------------------------------------------------------------------


def test_missing_compiler_is_a_backend_unavailable_error(monkeypatch):
    qubo = _gaussian(6, 5)
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    native._library.cache_clear()  # as in a process that has not built the kernel yet
    with pytest.raises(BackendUnavailableError, match=r"needs a C\+\+ compiler: install g\+\+"):
        anneal(qubo, KEY, replicas=2, sweeps=3, backend="native")
    with pytest.raises(ImportError):  # also an ImportError, as for the other optional backends
        parallel_tempering(qubo, KEY, betas=[1.0], sweeps=3, backend=Native(threads=1))
    auto = anneal(qubo, KEY, replicas=2, sweeps=3, backend="auto")  # falls back to the JAX path
    assert _same(auto, anneal(qubo, KEY, replicas=2, sweeps=3, backend="jax"))


def test_auto_picks_native_on_cpu_and_jax_when_traced():
    qubo = _gaussian(8, 6)
    assert _same(anneal(qubo, KEY, replicas=4, sweeps=9), anneal(qubo, KEY, replicas=4, sweeps=9, backend="native"))
    assert _same(anneal(qubo, KEY, replicas=4, sweeps=9, dtype=jnp.float64),
                 anneal(qubo, KEY, replicas=4, sweeps=9, dtype=jnp.float64, backend="jax"))
    traced = jax.jit(lambda k: anneal(qubo, k, replicas=4, sweeps=9).best_energy)(KEY)
    np.testing.assert_allclose(float(traced), float(anneal(qubo, KEY, replicas=4, sweeps=9, backend="jax").best_energy))


@pytest.mark.parametrize("kwargs, match", [
    ({"backend": "gpu"}, "`backend` must be 'auto', 'jax', 'native' or a qsn.qubo.Native, but is 'gpu'"),
    ({"backend": "native", "dtype": jnp.float64}, "`dtype` must be float32 with backend='native', but is float64"),
])
def test_bad_backend_arguments(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        anneal(_gaussian(4, 0), KEY, replicas=2, sweeps=2, **kwargs)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_threads(threads):
    with pytest.raises(ConfigurationError, match="`threads` must be an integer >= 1 or None"):
        Native(threads=threads)


def test_native_cannot_be_traced():
    with pytest.raises(ConfigurationError, match="cannot be traced"):
        jax.jit(lambda k: anneal(_gaussian(4, 0), k, replicas=2, sweeps=2, backend="native").best_energy)(KEY)
