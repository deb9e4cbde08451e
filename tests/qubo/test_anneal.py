"""Tests of the batched Metropolis samplers (qsn.qubo.annealer) against independent references.

* optimisation: on random QUBOs with n <= 16, SA and PT reach the brute-force minimum of ``all_energies``;
* sampling: at a fixed beta, the final states of many independent replicas follow the exact Boltzmann weights
  ``exp(-beta E_k) / Z`` of a 4-variable QUBO (G-test, scipy.stats), for SA and for every PT temperature;
  the same samples fail the test against the sign-flipped weights ``exp(+beta E_k)``, against beta x 1.3 and
  against the other PT temperatures, which is what a wrong acceptance or exchange rule would produce (checked
  while writing: flipping the sign in ``_flip`` or in ``exchange_step`` makes these tests fail);
* bookkeeping: returned energies equal ``energy(qubo, x)``; one sweep of the dense and of the sparse kernel equals
  a sequential NumPy Metropolis loop over the same visiting order and thresholds (integer couplings: exactly);
  a second call with the same shapes does not re-trace;
* visiting order: a ferromagnetic ring started with domain walls reaches its ground state at low temperature,
  which a fixed order never does; the random words and exponential variates against NumPy;
* the replica-exchange rule, against a loop written from the formula ``min(1, exp((b_i - b_j)(E_i - E_j)))``.

Every sampling and bookkeeping test runs on both backends (``backend="jax"`` and ``"native"``, the latter
where a C++ compiler exists; tests/qubo/test_qubo_native.py checks the native sweep sample by sample).

Statistical thresholds: p > 1e-3 for the correct distribution and p < 1e-8 for the wrong ones. At the fixed
keys the outcome is deterministic and the margins are wide: against the right weights p = 0.99 (dense), 0.61
(sparse) and 0.16, 0.45, 0.07 (PT) on JAX, 0.08, 0.28 and 0.85, 0.40, 0.33 native; below 1e-200 against every
wrong one.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.qubo import annealer as anneal_module
from qsn.qubo.annealer import (
    anneal,
    default_beta_range,
    exchange_step,
    neighbour_lists,
    parallel_tempering,
)
from qsn.qubo.model import all_energies, bitstrings, energy, make_qubo, to_ising
from qsn.qubo.native import Native

KEY = jax.random.key(20240611)
# Every sampling and bookkeeping test runs on both backends (the native one where a C++ compiler exists).
BACKENDS = ["jax", pytest.param("native", marks=pytest.mark.skipif(not Native.available(), reason="no C++ compiler"))]


def _random_qubo(n: int, seed: int, offset: float = 0.0):
    return make_qubo(np.random.default_rng(seed).normal(size=(n, n)), offset)


def _index(x: np.ndarray) -> np.ndarray:
    """Basis index of states (R, n) in the convention of qsn.qubo.model (variable 0 most significant)."""
    n = x.shape[1]
    return np.asarray(x, np.int64) @ (1 << np.arange(n - 1, -1, -1))


def _g_test(x: np.ndarray, energies: np.ndarray, beta: float) -> float:
    """p-value of the G-test of the states ``x`` (R, n) against Boltzmann weights ``exp(-beta E)``."""
    counts = np.bincount(_index(x), minlength=energies.size)
    logw = -beta * (energies - energies.min())
    expected = np.exp(logw) / np.exp(logw).sum() * counts.sum()
    return float(scipy.stats.power_divergence(counts, expected, lambda_="log-likelihood").pvalue)


# ---------------------------------------------------------------------------------------------
# Optimisation against brute force
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sa_and_pt_find_brute_force_minimum(seed, backend):
    q = _random_qubo(16, seed, offset=3.0)
    exact = np.asarray(all_energies(q))
    target = exact.min()
    sa = anneal(q, jax.random.fold_in(KEY, seed), replicas=16, sweeps=300, backend=backend)
    np.testing.assert_allclose(float(sa.best_energy), target, rtol=1e-5)
    assert np.argmin(exact) == _index(np.asarray(sa.best_x)[None])[0]
    b0, b1 = default_beta_range(q)
    pt = parallel_tempering(q, jax.random.fold_in(KEY, seed), betas=np.geomspace(b0, b1, 8), replicas_per_beta=2,
                            sweeps=300, backend=backend)
    np.testing.assert_allclose(float(pt.best_energy), target, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Energies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_returned_energies_match_qubo_energy(backend):
    q = _random_qubo(12, 7, offset=-2.5)
    for result in (
        anneal(q, KEY, replicas=8, sweeps=40, backend=backend),
        parallel_tempering(q, KEY, betas=[0.1, 0.4, 1.6], replicas_per_beta=3, sweeps=40, backend=backend),
    ):
        x = np.asarray(result.x)
        np.testing.assert_allclose(np.asarray(result.energies), np.asarray(energy(q, x)), rtol=1e-5)
        np.testing.assert_allclose(float(result.best_energy), float(energy(q, result.best_x)), rtol=1e-5)
        trace = np.asarray(result.trace)
        assert np.all(np.diff(trace) <= 0)  # best so far never increases
        np.testing.assert_allclose(trace[-1], float(result.best_energy), rtol=1e-5)
        assert float(result.best_energy) <= np.asarray(result.energies).min() + 1e-5 * abs(float(result.best_energy))


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    q=st.lists(st.integers(-4, 4), min_size=36, max_size=36).map(lambda v: np.reshape(np.array(v, float), (6, 6))),
    offset=st.floats(-10, 10),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_energies_are_exact_for_any_qubo(backend, q, offset, seed):
    qubo = make_qubo(q, offset)
    r = anneal(qubo, jax.random.key(seed), replicas=4, sweeps=5, layout="dense", backend=backend)
    np.testing.assert_allclose(np.asarray(r.energies), np.asarray(energy(qubo, r.x)), rtol=1e-5, atol=1e-5)
    assert float(r.best_energy) >= float(np.asarray(all_energies(qubo)).min()) - 1e-5


# ---------------------------------------------------------------------------------------------
# Sampling: infinite temperature and Boltzmann
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_beta_zero_accepts_every_flip(backend):
    # At beta = 0 the Metropolis probability is min(1, exp(0)) = 1: every sweep flips every spin, so an odd
    # number of sweeps from all-zeros ends at all-ones.
    # (Shapes shared with the property test above, so nothing new is compiled.)
    q = _random_qubo(6, 3)
    r = anneal(q, KEY, replicas=4, sweeps=5, beta=np.zeros(5), init=np.zeros(6, np.uint8), layout="dense",
               backend=backend)
    assert np.all(np.asarray(r.x) == 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_beta_marginals_are_uniform(backend):
    q = _random_qubo(8, 4)
    replicas = 8000
    r = anneal(q, KEY, replicas=replicas, sweeps=9, beta=np.full(9, 1e-6), backend=backend)
    x = np.asarray(r.x)
    for i in range(8):  # each spin up with probability 1/2 (binomial test)
        assert scipy.stats.binomtest(int(x[:, i].sum()), replicas, 0.5).pvalue > 1e-3
    counts = np.bincount(_index(x), minlength=256)  # and the joint law is uniform over the 256 states
    assert scipy.stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_fixed_beta_samples_boltzmann(layout, backend):
    q = make_qubo(np.array([[0.5, -1.0, 0.3, 0.0], [-1.0, 1.0, 0.8, -0.6], [0.3, 0.8, -1.2, 0.4],
                            [0.0, -0.6, 0.4, 0.2]]))
    exact = np.asarray(all_energies(q), np.float64)
    beta, sweeps = 1.2, 24
    r = anneal(q, KEY, replicas=20000, sweeps=sweeps, beta=np.full(sweeps, beta), layout=layout, backend=backend)
    x = np.asarray(r.x)
    assert _g_test(x, exact, beta) > 1e-3
    # The same samples reject what a wrong acceptance rule would give: exp(+beta E) (sign flip), beta off by 30%.
    assert _g_test(x, exact, -beta) < 1e-8
    assert _g_test(x, exact, 1.3 * beta) < 1e-8


@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_tempering_samples_boltzmann_at_every_temperature(backend):
    q = make_qubo(np.array([[0.5, -1.0, 0.3, 0.0], [-1.0, 1.0, 0.8, -0.6], [0.3, 0.8, -1.2, 0.4],
                            [0.0, -0.6, 0.4, 0.2]]))
    exact = np.asarray(all_energies(q), np.float64)
    betas = np.array([0.2, 0.8, 2.0])
    m = 12000
    # The run ends with an exchange round (sweeps a multiple of swap_every), so a wrong exchange rule shows.
    r = parallel_tempering(q, KEY, betas=betas, replicas_per_beta=m, sweeps=20, swap_every=2, backend=backend)
    x = np.asarray(r.x).reshape(3, m, 4)
    for k, beta in enumerate(betas):
        assert _g_test(x[k], exact, beta) > 1e-3
        for other in np.delete(betas, k):  # states left at the wrong temperature would show
            assert _g_test(x[k], exact, other) < 1e-8


# ---------------------------------------------------------------------------------------------
# Replica exchange rule
# ---------------------------------------------------------------------------------------------


def _exchange_reference(betas, energies, u, parity):
    k_max, m = energies.shape
    src = np.tile(np.arange(k_max)[:, None], (1, m))
    for k in range(parity, k_max - 1, 2):
        for c in range(m):
            p = min(1.0, math.exp((betas[k] - betas[k + 1]) * (energies[k, c] - energies[k + 1, c])))
            if u[k, c] < p:
                src[k, c], src[k + 1, c] = k + 1, k
    return src


@pytest.mark.parametrize("parity", [0, 1])
def test_exchange_step_matches_formula(parity):
    rng = np.random.default_rng(parity)
    betas = np.sort(rng.uniform(0.1, 3.0, 6))
    energies = rng.normal(size=(6, 50))
    u = rng.uniform(size=(6, 50))
    got = exchange_step(jnp.asarray(betas), jnp.asarray(energies), jnp.asarray(u), jnp.asarray(parity, jnp.int32))
    np.testing.assert_array_equal(np.asarray(got), _exchange_reference(betas, energies, u, parity))


def test_exchange_step_edge_cases():
    energies = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # slot 0 (cold, beta 2), slot 1 (hot, beta 1); two chains
    # Equal temperatures: probability 1, every pair swaps.
    assert exchange_step(jnp.array([1.0, 1.0]), energies, jnp.full((2, 2), 0.999), 0).tolist() == [[1, 1], [0, 0]]
    # Chain 0: the cold slot holds the higher energy, exp((2 - 1)(1 - 0)) > 1, always swaps. Chain 1: the swap
    # would raise the cold slot's energy, probability exp((2 - 1)(0 - 1)) = 0.3679: u = 0.37 refuses, 0.36 swaps.
    betas = jnp.array([2.0, 1.0])
    assert exchange_step(betas, energies, jnp.array([[0.99, 0.37], [0.0, 0.0]]), 0).tolist() == [[1, 0], [0, 1]]
    assert exchange_step(betas, energies, jnp.array([[0.99, 0.36], [0.0, 0.0]]), 0).tolist() == [[1, 1], [0, 0]]
    # Odd parity with two temperatures pairs nobody.
    assert exchange_step(jnp.array([1.0, 1.0]), energies, jnp.zeros((2, 2)), 1).tolist() == [[0, 0], [1, 1]]


# ---------------------------------------------------------------------------------------------
# Layouts, schedules, initial states, recompilation
# ---------------------------------------------------------------------------------------------


def _integer_sparse_qubo(n: int, seed: int):
    rng = np.random.default_rng(seed)
    q = np.zeros((n, n))
    for _ in range(2):  # two random perfect matchings plus a ring: degree <= 4
        p = rng.permutation(n)
        q[p[::2], p[1::2]] = rng.choice([-2.0, -1.0, 1.0, 2.0], n // 2)
    q[np.arange(n), (np.arange(n) + 1) % n] = rng.choice([-1.0, 1.0], n)
    q = q + q.T + np.diag(rng.integers(-3, 4, n).astype(float))
    return make_qubo(q, offset=1.0)


def _metropolis_loop(j, h, s, threshold, beta, order):
    """Reference: one sequential Metropolis sweep in NumPy, visiting spins in ``order``; flip iff
    ``beta dE < threshold`` with ``dE = -2 s_i (h_i + sum_j J_ij s_j)``. ``s`` (n, R) is changed in place."""
    for i in order:
        de = -2.0 * s[i] * (h[i] + j[i] @ s)
        s[i] = np.where(de * beta < threshold[i], -s[i], s[i])
    return s


def test_sparse_sweep_equals_sequential_loop_in_label_colour_order():
    # The colour-class kernel updates a whole class at once; a sequential loop in the order (label, colour)
    # must give the same spins, and the returned energy change must be the exact difference.
    q = _integer_sparse_qubo(60, 5)
    ising = to_ising(q)
    c = anneal_module._sparse(ising.j, jnp.float64)
    order = np.asarray(c.order)
    j, h = ising.j[np.ix_(order, order)], ising.h[order]
    colour = np.concatenate([np.full(i.shape[0], k) for k, i in enumerate(c.index)])
    assert not np.any((j != 0) & (colour[:, None] == colour[None, :]))  # a proper colouring
    rng = np.random.default_rng(3)
    s = rng.choice([-1.0, 1.0], (60, 5))
    threshold, beta = rng.exponential(size=(60, 5)), rng.uniform(0.2, 2.0, 5)
    label = rng.integers(0, 2, 60).astype(bool)
    got, change = anneal_module._sweep_sparse(c, jnp.asarray(h), jnp.asarray(s), jnp.asarray(threshold),
                                              jnp.asarray(label), jnp.asarray(beta))
    ref = _metropolis_loop(j, h, s.copy(), threshold, beta, np.lexsort((np.arange(60), colour, label)))
    np.testing.assert_array_equal(np.asarray(got), ref)
    e = lambda x: x.T @ h + 0.5 * np.einsum("ir,ij,jr->r", x, j, x)  # noqa: E731
    np.testing.assert_allclose(np.asarray(change), e(ref) - e(s), atol=1e-9)
    assert np.any(ref != s) and np.any(ref == s)  # the instance flips some spins and keeps others


def test_dense_sweep_equals_sequential_loop_in_its_random_order():
    q = _random_qubo(70, 8)  # two blocks of 35
    ising = to_ising(q)
    c = anneal_module._dense(ising.j, jnp.float64)
    blocks, b, n = c.j.shape
    assert (blocks, b, n) == (2, 35, 70)
    rng = np.random.default_rng(4)
    s = rng.choice([-1.0, 1.0], (70, 6))
    threshold, beta = rng.exponential(size=(70, 6)), rng.uniform(0.2, 2.0, 6)
    block_order = np.array([1, 0], np.int32)
    within = np.stack([rng.permutation(b) for _ in range(blocks)]).astype(np.int32)
    field = ising.h[:, None] + ising.j @ s
    got, got_field = anneal_module._sweep_dense(c, jnp.asarray(s), jnp.asarray(field), jnp.asarray(threshold),
                                                jnp.asarray(beta), jnp.asarray(block_order), jnp.asarray(within))
    order = np.concatenate([k * b + within[k] for k in block_order])
    ref = _metropolis_loop(ising.j, ising.h, s.copy(), threshold, beta, order)
    np.testing.assert_array_equal(np.asarray(got), ref)
    np.testing.assert_allclose(np.asarray(got_field), ising.h[:, None] + ising.j @ ref, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_random_order_anneals_domain_walls_away_on_a_ring(layout, backend):
    # A ferromagnetic +-1 ring (E = -sum s_i s_{i+1}, ground -n) started from eight domains of 8 spins, at a low
    # fixed temperature (a wall step costs 0, any new wall pair 4: accepted with probability exp(-12) = 6e-6).
    # The order 0..n-1 kept for the whole run carries every wall along with the sweep and keeps all of them (the
    # sampler before random orders ended all 8 replicas at -52, both layouts), and so does a random order kept for
    # the whole run, for most keys (walls then move deterministically); a random order per sweep (JAX) or per 64
    # sweeps (native) lets walls meet and annihilate. At beta = 3 the Boltzmann weight of the one-wall-pair states
    # is C(64, 2) exp(-12) = 1.2% of the ground state's, so a few replicas may hold a fresh pair at the end.
    n = 64
    j = np.zeros((n, n))
    j[np.arange(n), (np.arange(n) + 1) % n] = -1.0
    j = j + j.T
    q = make_qubo(2.0 * j - 2.0 * np.diag(j.sum(axis=1)), j.sum() / 2.0)
    start = (np.arange(n) // 8) % 2
    np.testing.assert_allclose(float(energy(q, start)), -n + 2 * 8)
    r = anneal(q, KEY, replicas=64, sweeps=2000, beta=np.full(2000, 3.0), init=start, layout=layout, backend=backend)
    e = np.asarray(r.energies)
    assert np.all(e <= -n + 4)  # at most one wall pair left (two: probability ~3e-5 per replica)
    assert np.sum(e == -n) >= 56  # expected 63.2 of 64 in equilibrium


def test_exponential_variates_match_minus_log():
    # -log u from the exponent and a polynomial, against NumPy's log on a strided sample of all 2^24 values.
    words = (np.arange(0, 2**24, 7, dtype=np.uint32) << np.uint32(8)) | np.uint32(0xAB)
    got = np.asarray(anneal_module._exponential(jnp.asarray(words), jnp.float32), np.float64)
    u = ((words >> 8).astype(np.float64) + 0.5) * 2.0**-24
    np.testing.assert_allclose(got, -np.log(u), rtol=2e-7, atol=3e-7)
    assert got.min() > 0  # a zero-cost flip is always accepted


def test_random_words_are_uniform_and_uncorrelated():
    # 2^20 words from consecutive counters: bytes uniform (chi-square over 256 bins), and consecutive pairs of
    # top nibbles uniform over 16 x 16 (what a weak counter hash fails first).
    w = np.asarray(anneal_module._words(jnp.uint32(12345), jnp.uint32(678), jnp.arange(2**20, dtype=jnp.uint32)))
    assert scipy.stats.chisquare(np.bincount(w & 0xFF, minlength=256)).pvalue > 1e-3
    top = w >> 28
    assert scipy.stats.chisquare(np.bincount(top[:-1] * 16 + top[1:], minlength=256)).pvalue > 1e-3


def test_layout_selection_and_neighbour_lists():
    j = np.zeros((50, 50))
    j[np.arange(49), np.arange(1, 50)] = j[np.arange(1, 50), np.arange(49)] = 1.0  # a chain: degree 2
    assert anneal_module._layout(j, "auto") == "sparse"
    assert anneal_module._layout(np.ones((50, 50)) - np.eye(50), "auto") == "dense"
    index, weight = neighbour_lists(j)
    assert index.shape == weight.shape == (50, 2)
    rebuilt = np.zeros_like(j)
    np.add.at(rebuilt, (np.repeat(np.arange(50), 2), index.ravel()), weight.ravel())
    np.testing.assert_array_equal(rebuilt, j)
    assert all(len(set(row)) == 2 for row in index.tolist())


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_beta_range_rule(backend):
    # +-1 ring (Ising h = 0, |J| = 1, two neighbours): hot ln2 / (2 * 2), cold ln(100 n) / (2 * 1).
    n = 10
    j = np.zeros((n, n))
    j[np.arange(n), (np.arange(n) + 1) % n] = 1.0
    j = j + j.T
    q = make_qubo(j - np.diag(j.sum(axis=1)))  # Ising J = q_offdiag / 2 = 0.5, h = 0
    b0, b1 = default_beta_range(q)
    assert b0 == pytest.approx(math.log(2) / (2 * 2 * 0.5))
    assert b1 == pytest.approx(math.log(100 * n) / (2 * 0.5))
    r_default = anneal(q, KEY, replicas=3, sweeps=10, backend=backend)
    r_pair = anneal(q, KEY, replicas=3, sweeps=10, beta=(b0, b1), backend=backend)
    r_array = anneal(q, KEY, replicas=3, sweeps=10, beta=b0 * (b1 / b0) ** (np.arange(10) / 9), backend=backend)
    for a, b in ((r_default, r_pair), (r_pair, r_array)):
        np.testing.assert_array_equal(np.asarray(a.x), np.asarray(b.x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_init_is_kept_at_zero_temperature_from_the_ground_state(backend):
    q = _random_qubo(12, 11)  # shapes as in test_returned_energies_match_qubo_energy: no new compilation
    ground = bitstrings(12)[int(np.argmin(np.asarray(all_energies(q))))]
    r = anneal(q, KEY, replicas=8, sweeps=40, beta=np.full(40, 1e6), init=ground, backend=backend)
    assert np.all(np.asarray(r.x) == ground[None, :])
    np.testing.assert_array_equal(np.asarray(r.best_x), ground)


def test_same_shapes_do_not_retrace():
    traces = lambda: eqx.debug.get_num_traces(anneal_module._run)  # noqa: E731
    q1, q2 = _random_qubo(9, 1, offset=1.0), _random_qubo(9, 2, offset=-4.0)
    start = traces()
    anneal(q1, jax.random.key(1), replicas=5, sweeps=13, beta=(0.1, 2.0), backend="jax")
    after_first = traces()
    assert after_first - start <= 1
    anneal(q2, jax.random.key(2), replicas=5, sweeps=13, beta=np.linspace(0.0, 3.0, 13), init=np.ones(9, np.uint8),
           backend="jax")
    parallel_tempering(q1, jax.random.key(3), betas=[0.1, 1.0], replicas_per_beta=3, sweeps=13, backend="jax")
    after_pt = traces()
    parallel_tempering(q2, jax.random.key(4), betas=[0.5, 2.0], replicas_per_beta=3, sweeps=13, swap_every=3,
                       backend="jax")
    assert traces() == after_pt and after_pt - after_first <= 1


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"replicas": 0}, ConfigurationError, "`replicas` must be an integer >= 1"),
        ({"replicas": 2.5}, ConfigurationError, "`replicas`"),
        ({"sweeps": 0}, ConfigurationError, "`sweeps` must be an integer >= 1"),
        ({"sweeps": 3, "beta": np.ones(4)}, ConfigurationError, r"`beta` must have shape \(3,\), but has shape \(4,\)"),
        ({"sweeps": 2, "beta": [1.0, -1.0]}, ConfigurationError, "`beta` must be finite and >= 0"),
        ({"sweeps": 2, "beta": [1.0, np.nan]}, ConfigurationError, "`beta` must be finite"),
        ({"beta": (0.0, 1.0)}, ConfigurationError, "`beta` must be a pair of finite values > 0"),
        ({"beta": (0.1, 1.0, 2.0)}, ConfigurationError, "`beta` must be a pair"),
        ({"replicas": 2, "init": np.zeros((3, 4))}, InvalidInputError, r"`init` must have shape \(4,\) or \(2, 4\)"),
        ({"init": np.full(4, 2)}, InvalidInputError, "`init` must hold only 0 and 1"),
        ({"layout": "csr"}, ConfigurationError, "`layout` must be one of"),
        ({"dtype": jnp.int32}, ConfigurationError, "`dtype` must be a floating dtype"),
    ],
)
def test_anneal_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        anneal(_random_qubo(4, 0), KEY, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"betas": np.ones((2, 2))}, r"`betas` must have shape \(K,\)"),
        ({"betas": []}, r"`betas` must have shape \(K,\)"),
        ({"betas": [1.0, -0.5]}, "`betas` must be finite and >= 0, but entry 1 is -0.5"),
        ({"betas": [1.0], "replicas_per_beta": 0}, "`replicas_per_beta` must be an integer >= 1"),
        ({"betas": [1.0], "swap_every": 0}, "`swap_every` must be an integer >= 1"),
    ],
)
def test_parallel_tempering_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        parallel_tempering(_random_qubo(4, 0), KEY, **kwargs)


def test_rejects_bad_qubo_and_key():
    with pytest.raises(ConfigurationError, match="`qubo` must be a qsn.qubo.QUBO"):
        anneal(np.eye(3), KEY)
    with pytest.raises(ConfigurationError, match="`key` must be a single PRNG key"):
        anneal(_random_qubo(3, 0), jax.random.split(KEY, 2))
    with pytest.raises(ValueError):  # the errors are ValueErrors too
        anneal(_random_qubo(3, 0), KEY, replicas=-1)
