"""Tests of the classical scheduling policies (qsn.scheduler.policies).

* every policy in ``POLICIES`` returns a plan that ``check_plan`` accepts (and ``simulate`` completes) on
  instances with ineligible (memory) pairs, with and without a DAG;
* ``list_schedule`` ('eft' and 'least_loaded') equals a plain-Python greedy list scheduler written here from
  the docstring, on random small instances with slots, ineligible pairs and DAGs (hypothesis; integer
  times, so float32 inside the scan is exact and ties are compared too);
* a constructed case where least_loaded and eft choose differently;
* HEFT: ``upward_rank`` against a hand-computed rank, its order is topological, and the list schedule in
  that order starts children after their parents' predicted finish;
* random uses eligible workers only (and the seed); round-robin cycles; FIFO/SJF priorities;
* planning 1,000 tasks twice gives identical plans.

JAX settings: ``list_schedule`` runs under ``tests/conftest.py``'s strict settings (x64, strict promotion).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qsn.errors import ConfigurationError
from qsn.scheduler import policies
from qsn.scheduler.policies import POLICIES, list_schedule, upward_rank
from qsn.scheduler.service import durations
from qsn.scheduler.simulator import check_plan, simulate
from qsn.scheduler.task import Cluster, Worker, Workload

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.function_scoped_fixture])


@pytest.fixture
def standard_promotion():
    yield  # list_schedule now runs under the suite's strict settings; kept so the tests read the same


def _instance(seed: int, n: int, w: int, *, dag: bool, integer: bool = False, max_slots: int = 3):
    """Random workload and cluster with memory-ineligible pairs; edges go from earlier to later arrivals."""
    rng = np.random.default_rng(seed)
    if integer:
        arrival = np.sort(rng.integers(0, 10, n)).astype(np.float64)
        work = rng.integers(1, 10, n).astype(np.float64)
        speed = np.ones(w)
    else:
        arrival = np.sort(rng.uniform(0.0, 10.0, n))
        work = rng.uniform(0.5, 5.0, n)
        speed = rng.uniform(0.5, 2.0, w)
    worker_mem = np.where(rng.random(w) < 0.5, 4.0, np.inf)
    worker_mem[rng.integers(w)] = np.inf
    task_mem = np.where(rng.random(n) < 0.3, 8.0, 1.0)
    edges = [(int(a), b) for b in range(1, n) for a in range(b) if dag and rng.random() < 2.0 / n]
    wl = Workload.from_arrays(arrival=arrival, work=work, memory=task_mem,
                              edges=np.array(edges, np.int64).reshape(-1, 2))
    cl = Cluster(speed=speed, slots=rng.integers(1, max_slots + 1, w), memory=worker_mem, qubits=0,
                 coherence=np.inf, failure_rate=0.0, repair_time=1.0, kind=0, power_busy=1.0, power_idle=0.0)
    return wl, cl


# --- every policy ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dag", [False, True])
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_gives_a_valid_plan(name, dag, standard_promotion):
    wl, cl = _instance(3, 120, 5, dag=dag)
    ok = cl.eligible(wl)
    assert not ok.all() and ok.any(axis=1).all()  # there are ineligible pairs, every task fits somewhere
    predicted = durations(wl, cl)
    plan = check_plan(wl, cl, POLICIES[name](wl, cl, predicted, seed=1))
    if name in ("fifo", "sjf"):
        assert (plan.worker == -1).all()
    else:
        assert (plan.worker >= 0).all()
        assert ok[np.arange(wl.n), plan.worker].all()
    s = simulate(wl, cl, plan)
    assert np.isfinite(s.finish).all()


@pytest.mark.parametrize("name", ["eft", "least_loaded"])
def test_list_policies_with_edges_against_arrival_order(name, standard_promotion):
    # task 0 (arrives first) depends on task 2; task 0 needs 8 GiB, worker 0 has 4 GiB
    wl = Workload.from_arrays(arrival=[0.0, 0.0, 0.0, 0.0], memory=[8.0, 0.0, 0.0, 0.0], edges=[(2, 0)])
    cl = Cluster.from_workers([Worker(memory=4.0), Worker(), Worker()])
    predicted = durations(wl, cl)
    ls = list_schedule(wl, cl, predicted)
    assert np.isfinite(ls.finish).all()
    assert ls.start[0] >= ls.finish[2] and ls.worker[0] != 0  # after its parent, on a worker it fits
    check_plan(wl, cl, POLICIES[name](wl, cl, predicted))


# --- list scheduling against a plain reference ---------------------------------------------------------------
def _greedy_reference(arrival, p, eligible, slots, edges, order, rule):
    """Greedy list scheduling, written from the docstring: each worker is ``slots`` servers with free times;
    a task is ready at max(arrival, parents' predicted finish); on each eligible worker it would use the slot
    that frees first (lowest index on ties), starting at max(that free time, ready); ``eft`` picks the worker
    with the earliest finish, ``least_loaded`` the earliest start; ties go to the lowest worker index."""
    n, w = len(p), len(p[0])
    free = [[0.0] * int(slots[j]) for j in range(w)]
    parents = [[] for _ in range(n)]
    for a, b in edges:
        parents[b].append(a)
    worker, start, finish = [-1] * n, [0.0] * n, [0.0] * n
    for t in order:
        ready = max([arrival[t]] + [finish[a] for a in parents[t]])
        best = None
        for j in range(w):
            if not eligible[t][j]:
                continue
            k = min(range(len(free[j])), key=lambda s: free[j][s])
            avail = max(free[j][k], ready)
            end = avail + p[t][j]
            score = end if rule == "eft" else avail
            if best is None or score < best[0]:
                best = (score, j, k, avail, end)
        _, j, k, avail, end = best
        free[j][k] = end
        worker[t], start[t], finish[t] = j, avail, end
    return np.array(worker), np.array(start), np.array(finish)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 24), w=st.integers(1, 3), dag=st.booleans(),
       rule=st.sampled_from(["eft", "least_loaded"]))
def test_list_schedule_matches_reference(seed, n, w, dag, rule, standard_promotion):
    wl, cl = _instance(seed, n, w, dag=dag, integer=True)
    rng = np.random.default_rng(seed + 1)
    p = rng.integers(1, 10, (n, w)).astype(np.float64)  # believed times need not follow speed
    eligible = wl.memory[:, None] <= cl.memory[None, :]
    order = np.arange(n)
    ls = list_schedule(wl, cl, p, rule=rule)
    ref = _greedy_reference(wl.arrival.tolist(), p.tolist(), eligible.tolist(), cl.slots.tolist(),
                            wl.edges.tolist(), order.tolist(), rule)
    np.testing.assert_array_equal(ls.worker, ref[0])
    np.testing.assert_array_equal(ls.start, ref[1])
    np.testing.assert_array_equal(ls.finish, ref[2])


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 24), w=st.integers(1, 3))
def test_list_schedule_matches_reference_in_a_given_order(seed, n, w, standard_promotion):
    # any topological order (here: a random one drawn by repeatedly taking a random ready task)
    wl, cl = _instance(seed, n, w, dag=True, integer=True)
    rng = np.random.default_rng(seed)
    indeg = np.bincount(wl.edges[:, 1], minlength=n) if wl.edges.size else np.zeros(n, np.int64)
    order = []
    while len(order) < n:
        t = int(rng.choice(np.flatnonzero(indeg == 0)))
        order.append(t)
        indeg[t] = -1
        indeg[wl.edges[wl.edges[:, 0] == t, 1]] -= 1
    p = rng.integers(1, 10, (n, w)).astype(np.float64)
    eligible = wl.memory[:, None] <= cl.memory[None, :]
    ls = list_schedule(wl, cl, p, order=np.array(order))
    ref = _greedy_reference(wl.arrival.tolist(), p.tolist(), eligible.tolist(), cl.slots.tolist(),
                            wl.edges.tolist(), order, "eft")
    np.testing.assert_array_equal(ls.worker, ref[0])
    np.testing.assert_array_equal(ls.finish, ref[2])


@pytest.mark.parametrize("rule", ["eft", "least_loaded"])
def test_list_schedule_under_test_suite_jax_settings(rule):
    # real-valued times from ``durations`` (speeds, memory-ineligible pairs, slots, a DAG) under the suite's
    # strict settings; the scan runs in float32, the reference in float64
    wl, cl = _instance(0, 40, 3, dag=True)
    assert wl.edges.size and (cl.slots > 1).any() and not cl.eligible(wl).all()
    p = durations(wl, cl)
    eligible = wl.memory[:, None] <= cl.memory[None, :]
    ls = list_schedule(wl, cl, p, rule=rule)
    ref = _greedy_reference(wl.arrival.tolist(), p.tolist(), eligible.tolist(), cl.slots.tolist(),
                            wl.edges.tolist(), list(range(wl.n)), rule)
    np.testing.assert_array_equal(ls.worker, ref[0])
    np.testing.assert_allclose(ls.start, ref[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ls.finish, ref[2], rtol=1e-5, atol=1e-5)


def test_least_loaded_and_eft_differ_only_in_the_rule(standard_promotion):
    # t0 takes worker 0 (tie). For t1, worker 1 frees first (least_loaded) but worker 0 finishes first (eft).
    wl = Workload.from_arrays(arrival=[0.0, 0.0])
    cl = Cluster.uniform(2)
    p = np.array([[1.0, 1.0], [1.0, 100.0]])
    ll, ef = list_schedule(wl, cl, p, rule="least_loaded"), list_schedule(wl, cl, p, rule="eft")
    np.testing.assert_array_equal(ll.worker, [0, 1])
    np.testing.assert_array_equal(ef.worker, [0, 0])
    np.testing.assert_allclose(ll.finish, [1.0, 100.0])
    np.testing.assert_allclose(ef.finish, [1.0, 2.0])
    np.testing.assert_array_equal(policies.least_loaded(wl, cl, p).worker, [0, 1])
    np.testing.assert_array_equal(policies.eft(wl, cl, p).worker, [0, 0])


def test_list_schedule_rejects_bad_arguments():
    wl, cl = _instance(0, 5, 2, dag=False)
    with pytest.raises(ConfigurationError, match="`rule`"):
        list_schedule(wl, cl, durations(wl, cl), rule="fastest")
    with pytest.raises(ConfigurationError, match=r"`predicted` must have shape \(5, 2\)"):
        list_schedule(wl, cl, np.ones((5, 3)))


# --- HEFT --------------------------------------------------------------------------------------------------
def _diamond():
    # 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3; mean predicted times 2, 3, 5, 1
    wl = Workload.from_arrays(arrival=np.zeros(4), edges=[(0, 1), (0, 2), (1, 3), (2, 3)])
    p = np.array([[1.0, 3.0], [2.0, 4.0], [4.0, 6.0], [0.5, 1.5]])
    return wl, p


def test_upward_rank_by_hand():
    wl, p = _diamond()
    # rank(3) = 1; rank(2) = 5 + 1; rank(1) = 3 + 1; rank(0) = 2 + max(4, 6)
    np.testing.assert_allclose(upward_rank(wl, p), [8.0, 4.0, 6.0, 1.0])
    # without edges the rank is the mean time
    np.testing.assert_allclose(upward_rank(wl.replace(edges=np.zeros((0, 2), np.int64)), p), p.mean(axis=1))


def test_heft_by_hand(standard_promotion):
    wl, p = _diamond()
    plan = policies.heft(wl, Cluster.uniform(2), p)
    np.testing.assert_allclose(plan.priority, [-8.0, -4.0, -6.0, -1.0])
    # order 0, 2, 1, 3: t0 on w0 [0, 1]; t2: w0 ends 5, w1 ends 7 -> w0 [1, 5]; t1: w0 ends 7, w1 [1, 5] -> w1;
    # t3 ready at 5: w0 ends 5.5, w1 ends 6.5 -> w0
    np.testing.assert_array_equal(plan.worker, [0, 1, 0, 0])


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 30))
def test_heft_order_is_topological(seed, n, standard_promotion):
    wl, cl = _instance(seed, n, 3, dag=True)
    predicted = durations(wl, cl)
    plan = policies.heft(wl, cl, predicted)
    if wl.edges.size:
        a, b = wl.edges.T
        assert (plan.priority[a] < plan.priority[b]).all()  # decreasing rank = parents first
        order = np.lexsort((np.arange(n), plan.priority))
        ls = list_schedule(wl, cl, predicted, order=order)
        assert (ls.start[b] >= ls.finish[a] - 1e-4).all()  # float32 scan
        np.testing.assert_array_equal(ls.worker, plan.worker)


# --- the simple ones ---------------------------------------------------------------------------------------
def test_random_uses_eligible_workers_and_its_seed():
    wl, cl = _instance(1, 500, 4, dag=False)
    ok = cl.eligible(wl)
    predicted = durations(wl, cl)
    a = policies.random(wl, cl, predicted, seed=0)
    assert ok[np.arange(wl.n), a.worker].all()
    np.testing.assert_array_equal(a.worker, policies.random(wl, cl, predicted, seed=0).worker)
    assert not np.array_equal(a.worker, policies.random(wl, cl, predicted, seed=1).worker)
    # it spreads over all eligible workers: each worker eligible for a task gets some of them
    counts = np.bincount(a.worker, minlength=cl.n)
    assert (counts[ok.any(axis=0)] > 0).all()


def test_round_robin_cycles_over_eligible_workers():
    wl = Workload.from_arrays(arrival=np.arange(6.0))
    cl = Cluster.uniform(3)
    np.testing.assert_array_equal(policies.round_robin(wl, cl, durations(wl, cl)).worker, [0, 1, 2, 0, 1, 2])
    # task 1 does not fit worker 1: it goes to the next eligible one (2), and the cycle resumes after it
    wl = Workload.from_arrays(arrival=np.arange(4.0), memory=[0.0, 8.0, 0.0, 0.0])
    cl = Cluster.from_workers([Worker(), Worker(memory=4.0), Worker()])
    np.testing.assert_array_equal(policies.round_robin(wl, cl, durations(wl, cl)).worker, [0, 2, 0, 1])


def test_fifo_and_sjf_priorities():
    wl, cl = _instance(2, 50, 3, dag=False)
    predicted = durations(wl, cl)
    f = policies.fifo(wl, cl, predicted)
    assert (f.worker == -1).all()
    np.testing.assert_array_equal(f.priority, wl.arrival)
    s = policies.sjf(wl, cl, predicted)
    assert (s.worker == -1).all()
    np.testing.assert_array_equal(s.priority, predicted.min(axis=1))
    # SJF runs shorter jobs first on one worker
    wl1 = Workload.from_arrays(arrival=[0.0, 0.1, 0.2, 0.3], work=[5.0, 3.0, 1.0, 2.0])
    cl1 = Cluster.uniform(1)
    sched = simulate(wl1, cl1, policies.sjf(wl1, cl1, durations(wl1, cl1)))
    np.testing.assert_array_equal(np.argsort(sched.start), [0, 2, 3, 1])


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_planning_1000_tasks_is_deterministic(name, standard_promotion):
    wl, cl = _instance(11, 1000, 8, dag=True)
    predicted = durations(wl, cl)
    a = POLICIES[name](wl, cl, predicted, seed=4)
    b = POLICIES[name](wl, cl, predicted, seed=4)
    np.testing.assert_array_equal(a.worker, b.worker)
    np.testing.assert_array_equal(a.priority, b.priority)
    check_plan(wl, cl, a)
