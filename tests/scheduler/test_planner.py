"""Tests of the quantum-inspired planner (qsn.scheduler.planner) against brute force.

* ``assignment_qubo``: on every one-hot assignment of tiny instances (K = 3 tasks, W = 2-3 workers, backlog,
  ineligible pairs) its energy (``all_energies``, all 2^V states) equals ``assignment_energy`` and the energy
  written out here from the module docstring; every non-one-hot state lies above the best one-hot state;
  with a time budget whose slack grid represents every load exactly, the minimum over all states is the best
  assignment within the budget; with quantum links, the minimum never splits a dependent quantum pair over a
  weak link (while without the links it would); ``decode`` inverts the one-hot encoding;
* ``anneal_assignment``: never returns a window energy above its initial one, recomputed here in float64;
  eligible workers only; on batch instances (K <= 8, W <= 3) it reaches the brute-force minimum;
* ``refine_makespan``: never increases the predicted makespan (hypothesis), keeps eligibility, and reaches the
  optimum on a case that needs a swap;
* ``annealing_plan``: its plans pass ``check_plan`` with ineligible pairs, a DAG and quantum links.

JAX settings: the planner runs under ``tests/conftest.py``'s strict settings (x64, strict dtype promotion,
rank-promotion errors); ``float32_jax`` runs some tests on its default float32 path instead.
"""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qsn.errors import ConfigurationError
from qsn.scheduler.planner import (
    PlannerConfig,
    anneal_assignment,
    annealing_plan,
    assignment_energy,
    assignment_qubo,
    balance_weights,
    decode,
    refine_makespan,
)
from qsn.scheduler.qubo import all_energies, bitstrings, energy
from qsn.scheduler.service import durations
from qsn.scheduler.simulator import check_plan, simulate
from qsn.scheduler.task import Cluster, Worker, Workload

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.function_scoped_fixture])


@pytest.fixture
def rank_allow():
    yield  # the planner now runs under the suite's strict settings (x64 on, rank promotion raises)


@pytest.fixture
def float32_jax():
    with jax.enable_x64(False):  # the planner's default float32 path
        yield


# --- references written from the module docstring -----------------------------------------------------------
def _energy_ref(assign, p, backlog, slots, omega, cost, balance):
    """E(w) = cost * sum_t p[t, w_t] + balance * sum_j omega_j (b_j + sum_{t: w_t = j} p[t, j] / slots_j)^2.

    ``assign`` (M, K) int -> (M,) float64."""
    assign = np.atleast_2d(assign)
    k = np.arange(p.shape[0])
    busy = p[k, assign].sum(axis=1)
    load = np.stack([np.where(assign == j, p[k, assign] / slots[j], 0.0).sum(axis=1) for j in range(p.shape[1])], 1)
    return cost * busy + balance * ((backlog + load) ** 2 * omega).sum(axis=1)


def _assignments(eligible):
    """Every assignment using eligible workers only, (M, K) int64."""
    return np.array(list(itertools.product(*[np.flatnonzero(r) for r in eligible])), np.int64)


def _state_index(aq, assign, n_vars):
    """Basis index (variable 0 most significant) of the one-hot state of ``assign``; slack bits 0."""
    x = np.zeros(n_vars, np.int64)
    for t, j in enumerate(assign):
        x[np.flatnonzero((aq.task == t) & (aq.worker == j))] = 1
    return int((x << np.arange(n_vars - 1, -1, -1)).sum()), x


def _tiny(seed: int, k: int, w: int):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.5, 3.0, (k, w))
    eligible = rng.random((k, w)) < 0.7
    eligible[np.arange(k), rng.integers(0, w, k)] = True
    eligible[0, :] = True
    eligible[0, rng.integers(w)] = False  # at least one ineligible pair
    slots = rng.integers(1, 3, w).astype(np.float64)
    omega = rng.uniform(0.5, 2.0, w)
    backlog = rng.uniform(0.0, 2.0, w)
    return p, eligible, slots, omega, backlog


# --- the QUBO ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("w", [2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_qubo_equals_energy_on_one_hot_states(seed, w, rank_allow):
    p, eligible, slots, omega, backlog = _tiny(seed, 3, w)
    cost, balance = 0.3, 1.7
    aq = assignment_qubo(p, eligible, slots, omega, backlog, cost=cost, balance=balance)
    nv = aq.qubo.n
    assert nv == eligible.sum()  # no variable for an ineligible pair
    e_all = np.asarray(all_energies(aq.qubo))
    assign = _assignments(eligible)
    idx = [_state_index(aq, a, nv)[0] for a in assign]
    ref = _energy_ref(assign, p, backlog, slots, omega, cost, balance)
    np.testing.assert_allclose(e_all[idx], ref, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(assignment_energy(assign, p, backlog, slots, omega, cost=cost,
                                                            balance=balance)), ref, rtol=1e-10)
    # the (2^V,) energies follow the basis order of qsn.scheduler.qubo
    x = _state_index(aq, assign[0], nv)[1]
    np.testing.assert_allclose(float(energy(aq.qubo, x)), ref[0], rtol=1e-10)
    # every state that is not one-hot lies above the best one-hot state
    x_all = bitstrings(nv)
    counts = np.stack([x_all[:, aq.task == t].sum(axis=1) for t in range(3)], axis=1)
    one_hot = (counts == 1).all(axis=1)
    assert one_hot.sum() == len(assign)
    assert e_all[~one_hot].min() > e_all[one_hot].min()
    best = decode(aq, x_all[np.argmin(e_all)], 3)
    assert _energy_ref(best, p, backlog, slots, omega, cost, balance)[0] == pytest.approx(ref.min(), rel=1e-12)


def test_decode_round_trips():
    p, eligible, slots, omega, backlog = _tiny(5, 3, 3)
    aq = assignment_qubo(p, eligible, slots, omega, backlog, budget=np.full(3, 4.0), slack_bits=2)
    nv = aq.qubo.n
    assert nv == eligible.sum() + 2 * 3 and (aq.task[-6:] == -1).all() and (aq.worker[-6:] == -1).all()
    for a in _assignments(eligible):
        _, x = _state_index(aq, a, nv)
        np.testing.assert_array_equal(decode(aq, x, 3), a)
        x[-6:] = 1  # slack bits do not change the assignment
        np.testing.assert_array_equal(decode(aq, x, 3), a)
        x[aq.task == 1] = 0  # task 1 chosen nowhere
        np.testing.assert_array_equal(decode(aq, x, 3), np.where(np.arange(3) == 1, -1, a))
        x[aq.task == 2] = 1  # task 2 chosen on every eligible worker
        assert decode(aq, x, 3)[2] == (a[2] if eligible[2].sum() == 1 else -1)


def _within_budget(assign, p, slots, budget):
    k = np.arange(p.shape[0])
    load = np.stack([np.where(assign == j, p[k, assign] / slots[j], 0.0).sum(axis=1) for j in range(p.shape[1])], 1)
    return (load <= budget + 1e-12).all(axis=1)


@pytest.mark.parametrize("seed", range(8))
def test_budget_on_an_exact_slack_grid(seed):
    # integer drain times and budget 3 with 2 slack bits (steps of 1): every feasible load is represented exactly,
    # so the minimum over all states must be the best assignment within the budget
    rng = np.random.default_rng(seed)
    w = 2 + seed % 2
    slots, omega, backlog = np.ones(w), rng.uniform(0.5, 2.0, w), rng.integers(0, 3, w).astype(np.float64)
    budget = np.full(w, 3.0)
    eligible = np.ones((3, w), bool)
    assign = _assignments(eligible)
    while True:  # draw until the budget binds: some assignments fit it and some do not
        p = rng.integers(1, 4, (3, w)).astype(np.float64)
        feasible = _within_budget(assign, p, slots, budget)
        if feasible.any() and not feasible.all():
            break
    aq = assignment_qubo(p, eligible, slots, omega, backlog, cost=0.3, budget=budget, slack_bits=2)
    e_all = np.asarray(all_energies(aq.qubo))
    best = decode(aq, bitstrings(aq.qubo.n)[np.argmin(e_all)], 3)
    assert (best >= 0).all() and _within_budget(best[None], p, slots, budget)[0]
    ref = _energy_ref(assign[feasible], p, backlog, slots, omega, 0.3, 1.0)
    assert _energy_ref(best, p, backlog, slots, omega, 0.3, 1.0)[0] == pytest.approx(ref.min(), rel=1e-12)
    assert e_all.min() == pytest.approx(ref.min(), rel=1e-9)  # feasible states pay no penalty


@pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason=(
        "documented limitation (assignment_qubo docstring: a *soft* budget): the equality with discrete slack "
        "penalises only the squared residual, so a load 0.01 over budget (residual 1e-4) beats a feasible load whose "
        "slack is off the grid (residual 0.067^2)."
    ),
)
def test_budget_respected_when_a_feasible_assignment_exists():
    # one task, two identical workers; worker 0's budget 0.99 < the task's 1.0, worker 1's 1.6 fits it
    p = np.array([[1.0, 1.0]])
    budget = np.array([0.99, 1.6])
    aq = assignment_qubo(p, np.ones((1, 2), bool), [1.0, 1.0], [1.0, 1.0], budget=budget, slack_bits=2)
    e_all = np.asarray(all_energies(aq.qubo))
    best = decode(aq, bitstrings(aq.qubo.n)[np.argmin(e_all)], 1)
    np.testing.assert_array_equal(best, [1])


def _linked(seed: int):
    # t0 -> t1 dependent quantum pair; t0 is fast on worker 0 only, t1 on worker 1 only; link 0-1 is weak
    rng = np.random.default_rng(seed)
    p = np.array([[1.0, 6.0, 6.0], [6.0, 1.0, 6.0], rng.uniform(0.5, 3.0, 3)])
    fidelity = np.array([[1.0, 0.5, 0.95], [0.5, 1.0, 0.95], [0.95, 0.95, 1.0]])
    return p, np.ones((3, 3), bool), np.ones(3), np.ones(3), rng.uniform(0.0, 1.0, 3), fidelity


@pytest.mark.parametrize("seed", range(3))
def test_links_penalty_keeps_dependent_quantum_pairs_linked(seed):
    p, eligible, slots, omega, backlog, fidelity = _linked(seed)
    pairs = np.array([[0, 1]])

    def optimum(links):
        aq = assignment_qubo(p, eligible, slots, omega, backlog, links=links)
        e_all = np.asarray(all_energies(aq.qubo))
        return decode(aq, bitstrings(aq.qubo.n)[np.argmin(e_all)], 3), e_all.min()

    free, _ = optimum(None)
    assert fidelity[free[0], free[1]] < 0.9  # without the penalty the optimum splits the pair
    best, e_min = optimum((pairs, fidelity, 0.9))
    assert (best >= 0).all()
    assert best[0] == best[1] or fidelity[best[0], best[1]] >= 0.9
    # and it is the best linked assignment (links add nothing on such states)
    assign = _assignments(eligible)
    linked = (assign[:, 0] == assign[:, 1]) | (fidelity[assign[:, 0], assign[:, 1]] >= 0.9)
    ref = _energy_ref(assign[linked], p, backlog, slots, omega, 1.0, 1.0)
    assert e_min == pytest.approx(ref.min(), rel=1e-9)


def test_qubo_rejects_bad_eligible():
    with pytest.raises(ConfigurationError, match=r"`eligible` must have shape \(3, 2\)"):
        assignment_qubo(np.ones((3, 2)), np.ones((2, 3), bool), 1, 1)


# --- annealing -------------------------------------------------------------------------------------------
def _scale(p, eligible):
    return float(np.mean(np.min(np.where(eligible, p, np.inf), axis=1)))  # the docstring's normalisation


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([8, 24]), w=st.just(3), batch=st.booleans())
def test_anneal_never_worse_than_its_start(seed, n, w, batch, float32_jax):
    # few distinct shapes (each one compiles the annealer once)
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.5, 5.0, (n, w))
    eligible = rng.random((n, w)) < 0.7
    eligible[np.arange(n), rng.integers(0, w, n)] = True
    slots = rng.integers(1, 3, w)
    omega = rng.uniform(0.5, 2.0, w)
    arrival = np.zeros(n) if batch else np.sort(rng.uniform(0.0, 5.0 * n / w, n))
    init = np.array([rng.choice(np.flatnonzero(r)) for r in eligible])
    config = PlannerConfig(iterations=16, window=None if batch else 8)
    out = anneal_assignment(arrival, p, eligible, slots, omega, init, jax.random.key(seed % 1000), config)
    assert out.assign.shape == (n,) and eligible[np.arange(n), out.assign].all()
    assert (out.energy <= out.initial_energy * (1 + 1e-6)).all()
    # recompute every window in float64 from the docstring's energy (no ``finish`` given: zero backlogs)
    k = n if batch else 8
    ps = p / _scale(p, eligible)
    assert out.energy.shape == (-(-n // k),)
    for i, lo in enumerate(range(0, n, k)):
        win = slice(lo, min(lo + k, n))
        e_new = _energy_ref(out.assign[win], ps[win], 0.0, slots, omega, config.cost, config.balance)[0]
        e_old = _energy_ref(init[win], ps[win], 0.0, slots, omega, config.cost, config.balance)[0]
        assert e_new <= e_old * (1 + 1e-5)
        assert out.energy[i] == pytest.approx(e_new, rel=1e-4)
        assert out.initial_energy[i] == pytest.approx(e_old, rel=1e-4)


@pytest.mark.parametrize("k, w, seed", [(8, 2, 1), (8, 3, 2), (8, 2, 4), (8, 3, 5)])
def test_anneal_reaches_brute_force_minimum_on_batches(k, w, seed, float32_jax):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.5, 5.0, (k, w))
    eligible = rng.random((k, w)) < 0.8
    eligible[np.arange(k), rng.integers(0, w, k)] = True
    slots = rng.integers(1, 3, w)
    omega = rng.uniform(0.5, 2.0, w)
    init = np.array([np.flatnonzero(r)[0] for r in eligible])  # a poor start: first eligible worker
    config = PlannerConfig(iterations=256, replicas=4, fraction=0.3)
    out = anneal_assignment(np.zeros(k), p, eligible, slots, omega, init, jax.random.key(seed), config)
    ps = p / _scale(p, eligible)
    assign = _assignments(eligible)
    e_min = _energy_ref(assign, ps, 0.0, slots, omega, config.cost, config.balance).min()
    e_got = _energy_ref(out.assign, ps, 0.0, slots, omega, config.cost, config.balance)[0]
    assert _energy_ref(init, ps, 0.0, slots, omega, config.cost, config.balance)[0] > 1.5 * e_min  # work to do
    assert e_got == pytest.approx(e_min, rel=1e-9)
    assert out.energy.shape == (1,)  # a batch is one window


# --- refinement -------------------------------------------------------------------------------------------
def _makespan(assign, p, slots):
    load = np.bincount(assign, weights=p[np.arange(len(assign)), assign] / slots[assign], minlength=p.shape[1])
    return load.max()


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 14), w=st.integers(1, 4))
def test_refine_never_increases_makespan(seed, k, w):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.5, 5.0, (k, w))
    eligible = rng.random((k, w)) < 0.7
    eligible[np.arange(k), rng.integers(0, w, k)] = True
    slots = rng.integers(1, 3, w).astype(np.float64)
    assign = np.array([rng.choice(np.flatnonzero(r)) for r in eligible])
    out = refine_makespan(assign, p, eligible, slots)
    assert out.shape == (k,) and eligible[np.arange(k), out].all()
    assert _makespan(out, p, slots) <= _makespan(assign, p, slots) + 1e-12


def test_refine_swaps_to_the_optimum():
    # loads 6 and 4; no single move helps (7/3), the swap 3 <-> 2 gives 5/5, the optimum
    p = np.array([[3.0, 3.0], [3.0, 3.0], [2.0, 2.0], [2.0, 2.0]])
    eligible = np.ones((4, 2), bool)
    out = refine_makespan(np.array([0, 0, 1, 1]), p, eligible, np.ones(2))
    assert _makespan(out, p, np.ones(2)) == 5.0
    # brute force agrees that 5 is optimal
    assert min(_makespan(a, p, np.ones(2)) for a in _assignments(eligible)) == 5.0


def test_refine_moves_to_the_optimum_on_unrelated_machines():
    # all on worker 0 (load 9); worker 1 is 2x slower; moves 9/0 -> 7/4 -> 6/6, the optimum ({0, 2} | {1, 3})
    p = np.array([[4.0, 8.0], [1.0, 2.0], [2.0, 4.0], [2.0, 4.0]])
    slots = np.ones(2)
    eligible = np.ones((4, 2), bool)
    out = refine_makespan(np.zeros(4, np.int64), p, eligible, slots)
    assert min(_makespan(a, p, slots) for a in _assignments(eligible)) == 6.0
    assert _makespan(out, p, slots) == 6.0


# --- the whole planner ------------------------------------------------------------------------------------
def _plan_and_check(wl, cl, seed=0, config=None):
    plan = annealing_plan(wl, cl, durations(wl, cl), seed=seed, config=config or PlannerConfig())
    check_plan(wl, cl, plan)
    assert (plan.worker >= 0).all() and cl.eligible(wl)[np.arange(wl.n), plan.worker].all()
    assert np.isfinite(simulate(wl, cl, plan).finish).all()
    return plan


@pytest.mark.parametrize("init", ["eft", "random"])
def test_annealing_plan_is_valid_with_ineligible_pairs(init, float32_jax):
    rng = np.random.default_rng(0)
    n = 64
    wl = Workload.from_arrays(arrival=np.sort(rng.uniform(0, 20, n)), work=rng.uniform(0.5, 5.0, n),
                              memory=np.where(rng.random(n) < 0.3, 8.0, 1.0))
    cl = Cluster.from_workers([Worker(memory=4.0, speed=2.0), Worker(slots=2), Worker(memory=4.0), Worker()])
    assert not cl.eligible(wl).all()
    _plan_and_check(wl, cl, config=PlannerConfig(init=init))
    # a batch (one window, refinement on)
    _plan_and_check(wl.replace(arrival=np.zeros(n)), cl, config=PlannerConfig(init=init))


def test_annealing_plan_is_valid_with_a_dag(float32_jax):
    rng = np.random.default_rng(1)
    n = 200
    edges = [(a, b) for b in range(1, n) for a in range(b) if rng.random() < 1.5 / b]
    wl = Workload.from_arrays(arrival=np.zeros(n), work=rng.uniform(0.5, 5.0, n), edges=edges,
                              memory=np.where(rng.random(n) < 0.3, 8.0, 1.0))
    cl = Cluster.from_workers([Worker(memory=4.0), Worker(speed=2.0), Worker()])
    assert wl.edges.shape[0] > 50
    plan = _plan_and_check(wl, cl)
    a, b = wl.edges.T
    assert (plan.priority[a] < plan.priority[b]).all()  # -upward rank: parents queue first


@pytest.mark.parametrize("seed", range(3))
def test_annealing_plan_respects_quantum_links(seed, float32_jax):
    # chains of quantum tasks (each child has one quantum parent) on nodes whose links are partly weak
    rng = np.random.default_rng(seed)
    n = 60
    qubits = rng.integers(1, 4, n)
    edges = [(b - 1, b) for b in range(1, n) if b % 5]  # chains of 5
    wl = Workload.from_arrays(arrival=np.zeros(n), work=rng.uniform(0.5, 3.0, n), qubits=qubits, edges=edges)
    fidelity = rng.uniform(0.5, 1.0, (4, 4))
    fidelity = np.minimum(fidelity, fidelity.T)
    np.fill_diagonal(fidelity, 1.0)
    cl = Cluster.from_workers([Worker(qubits=4, speed=s) for s in (1.0, 2.0, 1.5, 1.0)], fidelity=fidelity,
                              min_fidelity=0.8)
    assert (fidelity < 0.8).any()
    _plan_and_check(wl, cl, seed=seed)


def test_annealing_plan_child_with_two_quantum_parents(float32_jax):
    wl = Workload.from_arrays(arrival=np.zeros(3), work=[10.0, 10.0, 1.0], qubits=[1, 1, 1], edges=[(0, 2), (1, 2)])
    fidelity = np.array([[1.0, 0.5, 0.99], [0.5, 1.0, 0.99], [0.99, 0.99, 1.0]])
    cl = Cluster.from_workers([Worker(qubits=2), Worker(qubits=2), Worker(qubits=2, speed=0.01)],
                              fidelity=fidelity, min_fidelity=0.9)
    _plan_and_check(wl, cl)


# --- JAX settings of the test suite (see the module docstring) -----------------------------------------------
# Regressions of two planner bugs (a rank-promotion error, and an int64 draw in an int32 scan carry under x64):
# under tests/conftest.py's settings (x64 on, strict dtype promotion, rank promotion raises), with nothing
# relaxed here, the planner runs *and* gives the answer of the float64 references above.
def test_assignment_energy_under_suite_settings():
    p, eligible, slots, omega, backlog = _tiny(7, 3, 2)
    assign = _assignments(np.ones_like(eligible))  # all 8 assignments, (8, 3)
    ref = _energy_ref(assign, p, backlog, slots, omega, 0.4, 1.3)
    assert np.ptp(ref) > 0.1  # the assignments differ, so a constant or misindexed energy fails
    got = assignment_energy(assign, p, backlog, slots, omega, cost=0.4, balance=1.3)
    assert got.shape == (8,) and got.dtype == np.float64
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12)
    # leading batch dimensions (..., K) -> (...)
    both = np.asarray(assignment_energy(np.stack([assign, assign[::-1]]), p, backlog, slots, omega, cost=0.4,
                                        balance=1.3))
    np.testing.assert_allclose(both, np.stack([ref, ref[::-1]]), rtol=1e-12)


def test_anneal_assignment_under_suite_settings():
    # a batch of 6 tasks on 2 workers (one pair ineligible) from the worst start: the brute-force minimum
    rng = np.random.default_rng(3)
    p = rng.uniform(0.5, 5.0, (6, 2))
    eligible = np.ones((6, 2), bool)
    eligible[0, 1] = False
    slots, omega = np.array([1, 2]), np.array([0.7, 1.3])
    ps = p / _scale(p, eligible)
    config = PlannerConfig(iterations=128, replicas=4, fraction=0.3)
    assign = _assignments(eligible)
    energies = _energy_ref(assign, ps, 0.0, slots, omega, config.cost, config.balance)
    init = assign[np.argmax(energies)]
    out = anneal_assignment(np.zeros(6), p, eligible, slots, omega, init, jax.random.key(0), config)
    assert out.assign.dtype == np.int64 and eligible[np.arange(6), out.assign].all()
    assert energies.max() > 1.5 * energies.min()  # work to do
    e_got = _energy_ref(out.assign, ps, 0.0, slots, omega, config.cost, config.balance)[0]
    assert e_got == pytest.approx(energies.min(), rel=1e-9)
    assert out.energy.shape == (1,) and out.energy[0] == pytest.approx(e_got, rel=1e-5)


def test_anneal_assignment_windows_under_suite_settings():
    # 10 tasks in windows of 4 (the last one padded): each window's energy recomputed in float64, never above
    # its start, and every window improves on a start that puts every task on its slowest worker
    rng = np.random.default_rng(4)
    n, w = 10, 3
    p = rng.uniform(0.5, 5.0, (n, w))
    eligible = np.ones((n, w), bool)
    slots, omega = np.array([1, 1, 2]), np.array([0.5, 1.0, 1.5])
    init = np.argmax(p, axis=1)
    arrival = np.sort(rng.uniform(0.0, 20.0, n))
    config = PlannerConfig(window=4, iterations=64, replicas=2, fraction=0.3)
    out = anneal_assignment(arrival, p, eligible, slots, omega, init, jax.random.key(1), config)
    assert out.window == 4 and out.assign.shape == (n,) and out.energy.shape == (3,)
    ps = p / _scale(p, eligible)
    for i, lo in enumerate(range(0, n, 4)):
        win = slice(lo, min(lo + 4, n))
        e_new = _energy_ref(out.assign[win], ps[win], 0.0, slots, omega, config.cost, config.balance)[0]
        e_old = _energy_ref(init[win], ps[win], 0.0, slots, omega, config.cost, config.balance)[0]
        assert e_new < e_old
        assert out.energy[i] == pytest.approx(e_new, rel=1e-5)
        assert out.initial_energy[i] == pytest.approx(e_old, rel=1e-5)


def test_balance_weights():
    cl = Cluster.from_workers([Worker(speed=1.0, slots=1), Worker(speed=2.0, slots=3)])
    np.testing.assert_allclose(balance_weights(cl), np.array([1.0, 6.0]) / 3.5)
