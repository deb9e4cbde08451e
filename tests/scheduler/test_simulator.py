"""Tests of the discrete-event cluster simulator (qsn.scheduler.simulator).

* invariants on random instances (hypothesis, small sizes; plus fixed seeds at n = 2,000): every task served
  once with ``finish - start = work / effective speed``, ``start >= arrival``, eligibility, fixed tasks on
  their planned worker, no worker over its slots or memory at any instant (concurrency rebuilt from the
  (start, finish, worker) intervals and compared with ``peak_running`` / ``peak_memory``), precedence,
  conservation of work ``busy = sum of service + lost``, queues served in priority order (fixed queues and
  the global queue), slots=1 fixed workers never idle while a task of theirs is ready, online tasks never
  placed on a slower worker while a faster eligible one could take them;
* constructed cases: priority order on one worker, fastest-free dispatch (speed, affinity, memory);
* failures: restarts, lost work and completion; same seed, same schedule;
* analytic references: M/M/1 mean sojourn 1/(mu - lambda) and M/D/1 (Pollaczek-Khinchine) within 5%
  at n = 50,000, and the exact Lindley recursion of a FIFO single server at 1e-9;
* LLM requests: first token = start + prefill / speed, prefill from the DistServe fit (written out here);
* errors of ``check_plan``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.scheduler.service import llm_work
from qsn.scheduler.simulator import Plan, check_plan, simulate
from qsn.scheduler.task import Cluster, Worker, Workload

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- random instances --------------------------------------------------------------------------------------
def _instance(seed: int, n: int, w: int, *, dag: bool = True, memory: bool = True, online: float = 0.5,
              affinity: bool = True, failure_rate: float = 0.0):
    """A random workload, cluster and plan. Continuous random times, so simultaneous events have probability 0."""
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.exponential(1.0, n).cumsum() * rng.uniform(0.1, 1.0))
    work = rng.uniform(0.2, 5.0, n)
    n_types = 2
    task_type = rng.integers(0, n_types, n)
    worker_mem = np.where(rng.random(w) < 0.5, rng.uniform(4.0, 16.0, w), np.inf) if memory else np.full(w, np.inf)
    worker_mem[rng.integers(w)] = np.inf  # every task fits somewhere
    task_mem = rng.uniform(0.0, 12.0, n) if memory else np.zeros(n)
    edges = []
    if dag and n > 1:  # parents arrive earlier (arrival is sorted), so the graph is acyclic
        for b in range(1, n):
            for a in rng.choice(b, size=min(b, int(rng.integers(0, 3))), replace=False):
                edges.append((int(a), b))
    wl = Workload.from_arrays(arrival=arrival, work=work, memory=task_mem, task_type=task_type,
                              edges=np.array(edges, np.int64).reshape(-1, 2))
    kind = rng.integers(0, 2, w)
    cl = Cluster(speed=rng.uniform(0.5, 3.0, w), slots=rng.integers(1, 4, w), memory=worker_mem, qubits=0,
                 coherence=np.inf, failure_rate=failure_rate, repair_time=rng.uniform(0.5, 3.0, w), kind=kind,
                 power_busy=300.0, power_idle=60.0,
                 affinity=rng.uniform(0.5, 2.0, (n_types, 2)) if affinity else None)
    ok = cl.eligible(wl)
    fixed = np.array([rng.choice(np.flatnonzero(r)) for r in ok], np.int64)
    worker = np.where(rng.random(n) < online, -1, fixed)
    priority = rng.permutation(n).astype(np.float64)  # distinct priorities: the order is unambiguous
    return wl, cl, Plan(worker, priority)


def _effective_speed(wl: Workload, cl: Cluster, worker: np.ndarray) -> np.ndarray:
    """speed * affinity[type, kind] of the worker each task ran on, (N,) — written from the Cluster docstring."""
    mult = 1.0 if cl.affinity is None else cl.affinity[wl.task_type, cl.kind[worker]]
    return cl.speed[worker] * mult


def _ready_time(wl: Workload, finish: np.ndarray) -> np.ndarray:
    """max(arrival, parents' finish) per task, (N,)."""
    ready = wl.arrival.copy()
    if wl.edges.size:
        np.maximum.at(ready, wl.edges[:, 1], finish[wl.edges[:, 0]])
    return ready


def _peaks(start, finish, amount, mask) -> float:
    """Largest sum of ``amount`` over intervals [start, finish) alive at one instant (ends before starts at ties)."""
    s, f, a = start[mask], finish[mask], amount[mask]
    if s.size == 0:
        return 0.0
    times = np.concatenate([f, s])
    kinds = np.concatenate([np.zeros(f.size), np.ones(s.size)])  # 0 = end, sorted first at equal times
    delta = np.concatenate([-a, a])
    order = np.lexsort((kinds, times))
    return float(np.cumsum(delta[order]).max())


def _assert_priority_order(keys, ready, start, members):
    """Within one queue: a task ready before another one started, and started after it, has a larger key."""
    idx = np.flatnonzero(members)
    if idx.size < 2:
        return
    r, s, k = ready[idx], start[idx], keys[idx]
    # pair (t, j): j waited while t started (ready_j < start_t < start_j) => key_t < key_j
    waited = (r[None, :] < s[:, None]) & (s[None, :] > s[:, None])
    bad = waited & ~(k[:, None] < k[None, :])
    assert not bad.any(), f"queue order broken for tasks {idx[np.argwhere(bad)[0]].tolist()}"


def _assert_valid(wl: Workload, cl: Cluster, plan: Plan, s, *, faults: bool) -> None:
    n = wl.n
    t = np.arange(n)
    # served exactly once, with the service time of the worker it ran on
    assert np.isfinite(s.start).all() and np.isfinite(s.finish).all()
    assert ((s.worker >= 0) & (s.worker < cl.n)).all()
    np.testing.assert_allclose(s.finish - s.start, wl.work / _effective_speed(wl, cl, s.worker), rtol=1e-9, atol=1e-9)
    assert (s.start >= wl.arrival).all()
    assert cl.eligible(wl)[t, s.worker].all()
    fixed = plan.worker >= 0
    np.testing.assert_array_equal(s.worker[fixed], plan.worker[fixed])
    np.testing.assert_array_equal(s.first_token, s.finish)  # not an LLM workload
    # precedence
    if wl.edges.size:
        a, b = wl.edges.T
        assert (s.start[b] >= s.finish[a]).all()
    # capacity at every instant, rebuilt from the intervals
    for j in range(cl.n):
        on = s.worker == j
        count = _peaks(s.start, s.finish, np.ones(n), on)
        mem = _peaks(s.start, s.finish, wl.memory, on)
        assert count <= cl.slots[j]
        assert mem <= cl.memory[j] + 1e-9
        if faults:  # lost attempts also counted in the peaks
            assert count <= s.peak_running[j] and mem <= s.peak_memory[j] + 1e-9
        else:
            assert count == s.peak_running[j]
            np.testing.assert_allclose(mem, s.peak_memory[j], atol=1e-9)
    # conservation of work, per worker
    service = np.bincount(s.worker, weights=s.finish - s.start, minlength=cl.n)
    np.testing.assert_allclose(s.busy, service + s.lost, rtol=1e-9, atol=1e-9)
    assert (s.lost >= 0).all()
    if not faults:
        assert s.lost.sum() == 0 and s.restarts.sum() == 0 and s.failures.sum() == 0
        _assert_queue_rules(wl, cl, plan, s)


def _assert_queue_rules(wl: Workload, cl: Cluster, plan: Plan, s) -> None:
    """Queue order, non-idling of slots=1 fixed workers, fastest-free online dispatch (no faults)."""
    n = wl.n
    ready = _ready_time(wl, s.finish)
    keys = plan.priority + np.arange(n) / (10.0 * n)  # ties by index (priorities here are distinct integers)
    online = plan.worker < 0
    _assert_priority_order(keys, ready, s.start, online)
    for j in range(cl.n):
        _assert_priority_order(keys, ready, s.start, plan.worker == j)
        if cl.slots[j] == 1:
            # idle gaps of worker j must not overlap the wait of any task queued on j
            on = np.flatnonzero(s.worker == j)
            order = on[np.argsort(s.start[on])]
            gap_lo = np.concatenate([[-np.inf], s.finish[order]])
            gap_hi = np.concatenate([s.start[order], [np.inf]])
            mine = np.flatnonzero(plan.worker == j)
            overlap = (gap_lo[None, :] < s.start[mine, None]) & (gap_hi[None, :] > ready[mine, None]) \
                & (gap_hi[None, :] > gap_lo[None, :])
            assert not overlap.any(), f"worker {j} idle while task {mine[np.argwhere(overlap)[0, 0]]} waited"
    # online: no eligible worker strictly faster than the chosen one could take the task when it started
    mult = np.ones((n, cl.n)) if cl.affinity is None else cl.affinity[wl.task_type][:, cl.kind]
    speed = cl.speed * mult  # (N, W) effective speeds
    ok = cl.eligible(wl)
    for t in np.flatnonzero(online):
        alive = (s.start <= s.start[t]) & (s.start[t] < s.finish)  # running at that instant
        count = np.bincount(s.worker[alive], minlength=cl.n)
        mem = np.bincount(s.worker[alive], weights=wl.memory[alive], minlength=cl.n)
        could = ok[t] & (count < cl.slots) & (mem + wl.memory[t] <= cl.memory + 1e-9)
        faster = speed[t] > speed[t, s.worker[t]] * (1 + 1e-12)
        assert not (could & faster).any(), f"online task {t} ran on {s.worker[t]} while a faster worker was free"


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), w=st.integers(1, 4), dag=st.booleans(),
       memory=st.booleans(), online=st.sampled_from([0.0, 0.5, 1.0]))
def test_invariants_random(seed, n, w, dag, memory, online):
    wl, cl, plan = _instance(seed, n, w, dag=dag, memory=memory, online=online)
    _assert_valid(wl, cl, plan, simulate(wl, cl, plan), faults=False)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), w=st.integers(1, 3))
def test_invariants_random_with_failures(seed, n, w):
    wl, cl, plan = _instance(seed, n, w, failure_rate=0.2)
    s = simulate(wl, cl, plan, seed=seed)
    _assert_valid(wl, cl, plan, s, faults=True)
    assert (s.restarts >= 0).all() and (s.failures >= 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invariants_large(seed):
    wl, cl, plan = _instance(seed, 2000, 8, online=0.5)
    assert wl.edges.shape[0] > 1000  # the DAG is not trivial
    _assert_valid(wl, cl, plan, simulate(wl, cl, plan), faults=False)


def test_invariants_large_with_failures():
    wl, cl, plan = _instance(7, 2000, 8, failure_rate=0.02)
    s = simulate(wl, cl, plan, seed=3)
    assert s.failures.sum() > 0 and s.restarts.sum() > 0
    _assert_valid(wl, cl, plan, s, faults=True)


# --- constructed cases -------------------------------------------------------------------------------------
def test_one_worker_runs_ready_tasks_in_priority_order():
    # task 0 occupies the worker until t = 10; tasks 1..4 arrive meanwhile with priorities 3, 1, 4, 2
    wl = Workload.from_arrays(arrival=[0.0, 1.0, 2.0, 3.0, 4.0], work=[10.0, 1.0, 1.0, 1.0, 1.0])
    cl = Cluster.uniform(1)
    plan = Plan(np.zeros(5, np.int64), np.array([0.0, 3.0, 1.0, 4.0, 2.0]))
    s = simulate(wl, cl, plan)
    np.testing.assert_array_equal(np.argsort(s.start), [0, 2, 4, 1, 3])
    np.testing.assert_allclose(s.start, [0.0, 12.0, 10.0, 13.0, 11.0])


def test_a_task_not_yet_ready_does_not_jump_the_queue():
    # task 2 has the best priority but arrives after task 1 started: non-preemptive, it waits
    wl = Workload.from_arrays(arrival=[0.0, 0.5, 1.5], work=[1.0, 2.0, 1.0])
    plan = Plan(np.zeros(3, np.int64), np.array([5.0, 5.0, 0.0]))
    s = simulate(wl, Cluster.uniform(1), plan)
    np.testing.assert_allclose(s.start, [0.0, 1.0, 3.0])


def test_online_dispatch_picks_fastest_free_worker():
    wl = Workload.from_arrays(arrival=np.zeros(3), work=np.full(3, 6.0))
    cl = Cluster.from_workers([Worker(speed=1.0), Worker(speed=3.0), Worker(speed=2.0)])
    s = simulate(wl, cl, Plan(np.full(3, -1), np.arange(3.0)))
    np.testing.assert_array_equal(s.worker, [1, 2, 0])
    np.testing.assert_allclose(s.finish, [2.0, 3.0, 6.0])


def test_online_dispatch_uses_effective_speed_and_eligibility():
    # worker 0 is the fastest on paper, but type-1 tasks run at 0.1x there; worker 2 has too little memory
    wl = Workload.from_arrays(arrival=[0.0, 0.0], work=[4.0, 4.0], task_type=[1, 1], memory=[0.0, 8.0])
    cl = Cluster.from_workers([Worker(speed=4.0, kind=0), Worker(speed=1.0, kind=1),
                               Worker(speed=2.0, kind=1, memory=4.0)], affinity=[[1.0, 1.0], [0.1, 1.0]])
    s = simulate(wl, cl, Plan(np.full(2, -1), np.array([0.0, 1.0])))
    np.testing.assert_array_equal(s.worker, [2, 1])  # effective speeds 0.4, 1, 2; task 1 does not fit on 2
    np.testing.assert_allclose(s.finish, [2.0, 4.0])


def test_online_head_waits_for_the_fastest_only_when_none_is_free():
    # the head waits for a free worker (head of line), then takes the fastest free one
    wl = Workload.from_arrays(arrival=[0.0, 0.0, 0.1], work=[2.0, 2.0, 2.0])
    cl = Cluster.from_workers([Worker(speed=1.0), Worker(speed=2.0)])
    s = simulate(wl, cl, Plan(np.full(3, -1), np.arange(3.0)))
    np.testing.assert_array_equal(s.worker, [1, 0, 1])
    np.testing.assert_allclose(s.start, [0.0, 0.0, 1.0])


# --- failures and determinism -------------------------------------------------------------------------------
def _faulty(seed: int = 0):
    rng = np.random.default_rng(seed)
    n = 200
    wl = Workload.from_arrays(arrival=np.sort(rng.uniform(0, 100, n)), work=rng.exponential(10.0, n))
    cl = Cluster.uniform(4, failure_rate=0.01, repair_time=5.0, slots=2)
    plan = Plan(np.where(np.arange(n) % 2 == 0, -1, np.arange(n) % 4), wl.arrival.copy())
    return wl, cl, plan


def test_failures_restart_tasks_and_lose_work():
    wl, cl, plan = _faulty()
    s = simulate(wl, cl, plan, seed=1)
    assert s.failures.sum() > 0 and s.restarts.sum() > 0 and s.lost.sum() > 0
    _assert_valid(wl, cl, plan, s, faults=True)
    off = simulate(wl, cl, plan, faults=False, seed=1)
    assert off.failures.sum() == 0 and off.lost.sum() == 0
    _assert_valid(wl, cl, plan, off, faults=False)


def test_same_seed_same_schedule():
    wl, cl, plan = _faulty()
    a, b = simulate(wl, cl, plan, seed=5), simulate(wl, cl, plan, seed=5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = simulate(wl, cl, plan, seed=6)
    assert not np.array_equal(a.finish, c.finish)  # the seed matters where failures happen


def test_lost_online_task_restarts_on_a_free_worker_at_once():
    # Worker 0 (fast) fails while running the only task; worker 1 is idle and eligible, so the global queue's
    # head should go there at the failure instant, not wait for worker 0's repair (1,000 s later).
    wl = Workload.from_arrays(arrival=[0.0], work=[100.0])
    cl = Cluster.from_workers([Worker(speed=10.0, failure_rate=1.0, repair_time=1000.0), Worker(speed=1.0)])
    s = simulate(wl, cl, Plan(np.array([-1]), np.zeros(1)), seed=0)
    assert (s.worker[0], s.restarts[0]) == (1, 1), f"ran on {s.worker[0]} after {s.restarts[0]} restarts"
    failed_at = s.lost[0]  # the only lost attempt started at 0 on worker 0
    assert s.start[0] == pytest.approx(failed_at)
    assert s.finish[0] == pytest.approx(failed_at + 100.0)


# --- analytic references -----------------------------------------------------------------------------------
def _single_server(work_fn, lam: float, n: int, seed: int):
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / lam, n))
    work = work_fn(rng, n)
    wl = Workload.from_arrays(arrival=arrival, work=work)
    s = simulate(wl, Cluster.uniform(1), Plan(np.zeros(n, np.int64), wl.arrival.copy()))
    return wl, s


def _lindley(arrival, work):
    """FIFO single server: start_k = max(arrival_k, finish_{k-1})."""
    start = np.empty_like(arrival)
    free = -np.inf
    for k in range(arrival.size):
        start[k] = max(arrival[k], free)
        free = start[k] + work[k]
    return start


def test_mm1_mean_sojourn_time():
    lam, mu = 0.5, 1.0
    wl, s = _single_server(lambda rng, n: rng.exponential(1.0 / mu, n), lam, 50_000, seed=0)
    latency = (s.finish - wl.arrival).mean()
    assert latency == pytest.approx(1.0 / (mu - lam), rel=0.05)
    np.testing.assert_allclose(s.start[:2000], _lindley(wl.arrival[:2000], wl.work[:2000]), rtol=1e-9)


def test_md1_pollaczek_khinchine():
    lam, mu = 0.5, 1.0
    rho = lam / mu
    wl, s = _single_server(lambda rng, n: np.full(n, 1.0 / mu), lam, 50_000, seed=1)
    # P-K: W_q = lam E[S^2] / (2 (1 - rho)), E[S^2] = 1/mu^2 for deterministic service
    expected = 1.0 / mu + lam * (1.0 / mu**2) / (2.0 * (1.0 - rho))
    assert (s.finish - wl.arrival).mean() == pytest.approx(expected, rel=0.05)


def test_llm_first_token_after_prefill():
    rng = np.random.default_rng(0)
    n = 50
    prompt = rng.integers(1, 4000, n)
    output = rng.integers(1, 500, n)
    wl = Workload.from_arrays(arrival=np.sort(rng.uniform(0, 5, n)), work=llm_work(prompt, output),
                              prompt_tokens=prompt, output_tokens=output, llm=True)
    cl = Cluster.from_workers([Worker(speed=1.0, slots=2), Worker(speed=2.0)])
    s = simulate(wl, cl, Plan(np.full(n, -1), wl.arrival.copy()))
    # DistServe OPT-13B/A100 prefill fit, ms: 18.10 + 0.1019 l + 7.12e-6 l^2 (service.py docstring)
    l = wl.prompt_tokens.astype(np.float64)
    prefill = (18.10 + 0.1019 * l + 7.12e-6 * l**2) / 1e3
    np.testing.assert_allclose(s.first_token, s.start + prefill / cl.speed[s.worker], rtol=1e-12)
    assert (s.first_token < s.finish).all()


# --- errors ------------------------------------------------------------------------------------------------
def _small():
    wl = Workload.from_arrays(arrival=[0.0, 1.0, 2.0], memory=[1.0, 8.0, 1.0])
    cl = Cluster.from_workers([Worker(memory=4.0), Worker()])
    return wl, cl


def test_check_plan_accepts_and_canonicalises():
    wl, cl = _small()
    p = check_plan(wl, cl, Plan(np.array([0, 1, -1], np.int32), np.array([1, 2, 3])))
    assert p.worker.dtype == np.int64 and p.priority.dtype == np.float64


@pytest.mark.parametrize("worker, priority, error, match", [
    ([0, 0, 1], [0.0, 1.0, 2.0], ConfigurationError, r"plan.worker\[1\] = 0 cannot run task 1"),
    ([0, 2, 1], [0.0, 1.0, 2.0], InvalidInputError, r"plan.worker\[1\] = 2 is not a worker"),
    ([0, -2, 1], [0.0, 1.0, 2.0], InvalidInputError, r"plan.worker\[1\] = -2 is not a worker"),
    ([0, 1], [0.0, 1.0, 2.0], InvalidInputError, r"shape \(3,\)"),
    ([0, 1, 1], [0.0, 1.0], InvalidInputError, r"shape \(3,\)"),
    ([[0, 1, 1]], [0.0, 1.0, 2.0], InvalidInputError, r"shape \(3,\)"),
    ([0.0, 1.0, 1.0], [0.0, 1.0, 2.0], InvalidInputError, "must be integer"),
    ([0, 1, 1], [0.0, np.nan, 2.0], InvalidInputError, r"plan.priority\[1\] is NaN"),
])
def test_check_plan_errors(worker, priority, error, match):
    wl, cl = _small()
    plan = Plan(np.asarray(worker), np.asarray(priority))
    with pytest.raises(error, match=match):
        check_plan(wl, cl, plan)
    with pytest.raises(error, match=match):  # simulate validates the same way before running
        simulate(wl, cl, plan)


def test_check_plan_task_fitting_no_worker():
    wl = Workload.from_arrays(arrival=[0.0, 0.0], memory=[1.0, 100.0], qubits=[0, 0])
    cl = Cluster.from_workers([Worker(memory=4.0), Worker(memory=16.0)])
    with pytest.raises(ConfigurationError, match="Task 1 .* fits no worker"):
        check_plan(wl, cl, Plan(np.array([-1, -1]), np.zeros(2)))
    wl = Workload.from_arrays(arrival=[0.0], qubits=[5])
    cl = Cluster.from_workers([Worker(qubits=3), Worker(qubits=4)])
    with pytest.raises(ConfigurationError, match="Task 0 .* fits no worker"):
        check_plan(wl, cl, Plan(np.array([-1]), np.zeros(1)))


def _quantum():
    # two dependent quantum tasks; nodes 0-1 weakly linked, 0-2 and 1-2 well linked
    wl = Workload.from_arrays(arrival=[0.0, 0.0], qubits=[2, 2], edges=[(0, 1)])
    fidelity = np.array([[1.0, 0.5, 0.95], [0.5, 1.0, 0.95], [0.95, 0.95, 1.0]])
    cl = Cluster.from_workers([Worker(qubits=4)] * 3, fidelity=fidelity, min_fidelity=0.9)
    return wl, cl


def test_check_plan_broken_quantum_link():
    wl, cl = _quantum()
    with pytest.raises(ConfigurationError, match="Dependent quantum tasks 0 -> 1 are on workers 0 and 1"):
        check_plan(wl, cl, Plan(np.array([0, 1]), np.zeros(2)))
    for ok in ([0, 0], [0, 2], [2, 1], [-1, 2], [-1, -1], [0, -1]):  # same node, linked nodes, or online
        check_plan(wl, cl, Plan(np.array(ok), np.zeros(2)))
    # classical tasks ignore the links
    check_plan(wl.replace(qubits=np.array([0, 2])), cl, Plan(np.array([0, 1]), np.zeros(2)))


def test_check_plan_online_parent_that_may_land_on_an_unlinked_node():
    # the online parent may run on node 0, which is weakly linked to the child's node 1
    wl, cl = _quantum()
    with pytest.raises(ConfigurationError, match="task 1 cannot run anywhere linked to worker 0"):
        check_plan(wl, cl, Plan(np.array([-1, 1]), np.zeros(2)))
    # both online, but the child (6 qubits) fits only node 1, unreachable from node 0
    cl = cl.replace(qubits=np.array([4, 8, 4]))
    with pytest.raises(ConfigurationError, match="task 1 cannot run anywhere linked to worker 0"):
        check_plan(wl.replace(qubits=np.array([2, 6])), cl, Plan(np.array([-1, -1]), np.zeros(2)))


def test_online_dispatch_respects_quantum_links():
    # parent fixed on node 0; node 1 is the fastest but weakly linked to 0, so the child goes to node 2
    wl, cl = _quantum()
    cl = cl.replace(speed=np.array([1.0, 10.0, 2.0]))
    s = simulate(wl, cl, Plan(np.array([0, -1]), np.zeros(2)))
    assert s.worker[1] == 2
