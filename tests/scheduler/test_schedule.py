"""Tests of ``qsn.scheduler.run`` / ``plan`` (schedule) and of the metrics (qsn.scheduler.metrics).

* every policy in ``POLICY_NAMES`` runs on every scenario of ``workloads.SCENARIOS`` (150 tasks, 4 workers)
  and returns finite metrics with the documented keys (TTFT keys for LLM workloads), ``tasks`` = n,
  fractions in [0, 1];
* an unknown policy raises ``ConfigurationError`` naming it;
* metrics by hand: a 3-task, 2-worker schedule from ``simulate`` (start/finish checked first) — latency
  mean/p50/p99 (linear-interpolated percentile), wait, makespan, utilisation, energy proxy, throughput,
  goodput and SLO attainment with task deadlines and a latency SLO; a hand-built ``Schedule`` on a worker
  with 2 slots (utilisation and idle energy per slot); LLM TTFT and TPOT SLOs on hand-built first-token
  times, and the simulator's first token = start + prefill(l)/speed from the DistServe closed form;
* ``metrics`` raises ``InvalidInputError`` on a schedule with an unfinished task;
* property (hypothesis, FIFO on random fault-free instances): busy time = Σ work / speed, so utilisation =
  Σ work / (speed · Σ slots · makespan); the energy identity; latency ≥ wait + own service time.

JAX settings: ``tests/conftest.py`` turns on x64 with strict dtype promotion and rank-promotion errors,
under which ``list_schedule`` and the annealer currently fail (documented in ``test_policies.py`` and
``test_planner.py``); the policy sweep uses the ``relaxed_jax`` fixture. Drop it once they are fixed.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.scheduler import POLICY_NAMES, SLO, Cluster, Plan, Schedule, Workload, metrics, plan, run, simulate, workloads
from qsn.scheduler.metrics import slo_met

DIST = ("mean", "p50", "p90", "p95", "p99")
KEYS = {*(f"latency_{q}" for q in DIST), "tasks", "wait_mean", "makespan", "slo_attainment", "goodput",
        "throughput", "utilisation", "energy_j", "restarts", "lost_s"}
LLM_KEYS = {*(f"{m}_{q}" for m in ("ttft", "tpot") for q in DIST), "normalised_latency_mean", "token_throughput"}


@pytest.fixture
def relaxed_jax():
    yield  # the planners now run under the suite's strict JAX settings; kept so the tests read the same


@pytest.fixture(scope="module")
def instances():
    return {name: gen(150, 4, seed=0) for name, gen in workloads.SCENARIOS.items()}


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_policy_on_every_scenario(instances, policy, relaxed_jax):
    for name, (wl, cl) in instances.items():
        if policy == "sjf_prompt" and not wl.llm:  # prompt-length SJF needs prompts
            with pytest.raises(ConfigurationError, match="LLM requests"):
                run(wl, cl, policy, seed=0)
            continue
        m = run(wl, cl, policy, seed=0)
        assert set(m) == KEYS | {"plan_s", "run_s"} | (LLM_KEYS if wl.llm else set()), name
        bad = {k: v for k, v in m.items() if not np.isfinite(v)}
        assert not bad, (name, bad)
        assert m["tasks"] == wl.n
        assert 0.0 <= m["slo_attainment"] <= 1.0 and 0.0 < m["utilisation"] <= 1.0 + 1e-9, (name, m)
        assert m["latency_p50"] <= m["latency_p99"] and m["wait_mean"] <= m["latency_mean"]
        assert m["makespan"] >= wl.arrival[-1] - wl.arrival[0]


def test_unknown_policy_raises():
    wl, cl = workloads.batch(20, 2, seed=0)
    with pytest.raises(ConfigurationError, match="'shortest'"):
        run(wl, cl, "shortest")
    with pytest.raises(ConfigurationError, match="Unknown policy"):
        plan(wl, cl, "FIFO")


# --- metrics by hand ---------------------------------------------------------------------------------------
def _three_tasks():
    """w0 runs task 0 (0 -> 2) then task 2 (arrives 1.5, waits to 2, runs to 3); w1 runs task 1 (1 -> 4)."""
    wl = Workload.from_arrays(arrival=[0.0, 1.0, 1.5], work=[2.0, 3.0, 1.0], deadline=[3.0, 3.5, np.inf])
    cl = Cluster.uniform(2).replace(power_busy=np.array([300.0, 200.0]), power_idle=np.array([60.0, 50.0]))
    sched = simulate(wl, cl, Plan(np.array([0, 1, 0]), wl.arrival.copy()), faults=False)
    return wl, cl, sched


def test_simulated_three_task_schedule():
    _, _, s = _three_tasks()
    np.testing.assert_array_equal(s.start, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(s.finish, [2.0, 4.0, 3.0])
    np.testing.assert_array_equal(s.busy, [3.0, 3.0])


def test_metrics_by_hand():
    wl, cl, s = _three_tasks()
    m = metrics(wl, cl, s)
    latency = [2.0, 3.0, 1.5]  # finish - arrival
    assert m["tasks"] == 3.0
    assert m["latency_mean"] == pytest.approx(6.5 / 3)
    assert m["latency_p50"] == pytest.approx(2.0)
    assert m["latency_p99"] == pytest.approx(2.0 + 0.98 * (3.0 - 2.0))  # linear interpolation between ranks 1 and 2
    assert m["latency_p99"] == pytest.approx(np.percentile(latency, 99))
    assert m["wait_mean"] == pytest.approx(0.5 / 3)
    assert m["makespan"] == pytest.approx(4.0)
    assert m["throughput"] == pytest.approx(3 / 4)
    assert m["utilisation"] == pytest.approx(6.0 / (2 * 4.0))
    # w0: 300 W x 3 s busy + 60 W x 1 s idle; w1: 200 W x 3 s + 50 W x 1 s
    assert m["energy_j"] == pytest.approx(300 * 3 + 60 * 1 + 200 * 3 + 50 * 1)
    # deadlines: task 0 (2 <= 3) ok, task 1 (4 > 3.5) late, task 2 (no deadline) ok
    assert m["slo_attainment"] == pytest.approx(2 / 3)
    assert m["goodput"] == pytest.approx(2 / 4)
    assert m["restarts"] == 0.0 and m["lost_s"] == 0.0
    # a latency SLO of 1.8 s on top: only task 2 (1.5 s) meets everything
    tight = metrics(wl, cl, s, SLO(latency=1.8))
    assert tight["slo_attainment"] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(slo_met(wl, s, SLO(latency=1.8)), [False, False, True])
    assert metrics(wl, cl, s, SLO(latency=2.0))["slo_attainment"] == pytest.approx(2 / 3)  # the limit is inclusive


def _hand_schedule(n, w, *, start, finish, worker, busy, first_token=None):
    f = np.asarray(finish, float)
    return Schedule(start=np.asarray(start, float), finish=f, worker=np.asarray(worker, np.int64),
                    first_token=f if first_token is None else np.asarray(first_token, float),
                    restarts=np.zeros(n, np.int64), busy=np.asarray(busy, float), lost=np.zeros(w),
                    peak_running=np.ones(w, np.int64), peak_memory=np.zeros(w), failures=np.zeros(w, np.int64))


def test_metrics_with_slots():
    # one worker, 2 slots: tasks of 4 s and 2 s side by side from t = 1; the first arrives at 0
    wl = Workload.from_arrays(arrival=[0.0, 1.0], work=[4.0, 2.0])
    cl = Cluster.uniform(1, slots=2)
    s = _hand_schedule(2, 1, start=[1.0, 1.0], finish=[5.0, 3.0], worker=[0, 0], busy=[6.0])
    m = metrics(wl, cl, s)
    assert m["makespan"] == pytest.approx(5.0)
    assert m["utilisation"] == pytest.approx(6.0 / (2 * 5.0))
    # idle = makespan - busy / slots = 5 - 3 = 2 s
    assert m["energy_j"] == pytest.approx(cl.power_busy[0] * 6.0 + cl.power_idle[0] * 2.0)
    assert m["wait_mean"] == pytest.approx((1.0 + 0.0) / 2)


def test_llm_ttft_and_tpot_slos():
    wl = Workload.from_arrays(arrival=[0.0, 0.0, 1.0], prompt_tokens=[100, 200, 300], output_tokens=[11, 21, 1],
                              work=[1.0, 2.0, 0.5], llm=True)
    cl = Cluster.uniform(3)
    # TTFT = first - arrival: 0.2, 0.5, 0.3; TPOT = (finish - first) / (output - 1): 0.1, 0.05, and none for the
    # one-token output (no token after the first), which therefore meets any TPOT SLO
    s = _hand_schedule(3, 3, start=[0.0, 0.0, 1.0], finish=[1.2, 1.5, 1.5], worker=[0, 1, 2],
                       busy=[1.2, 1.5, 0.5], first_token=[0.2, 0.5, 1.3])
    m = metrics(wl, cl, s)
    assert m["ttft_mean"] == pytest.approx((0.2 + 0.5 + 0.3) / 3)
    assert m["ttft_p50"] == pytest.approx(0.3)
    assert m["ttft_p99"] == pytest.approx(0.3 + 0.98 * 0.2)
    assert m["slo_attainment"] == 1.0
    np.testing.assert_array_equal(slo_met(wl, s, SLO(ttft=0.35)), [True, False, True])
    np.testing.assert_array_equal(slo_met(wl, s, SLO(tpot=0.08)), [False, True, True])
    np.testing.assert_array_equal(slo_met(wl, s, SLO(ttft=0.35, tpot=0.15)), [True, False, True])
    assert metrics(wl, cl, s, SLO(ttft=0.35, tpot=0.15))["slo_attainment"] == pytest.approx(2 / 3)


def test_llm_first_token_from_the_simulator():
    # prefill(l) = (18.10 + 0.1019 l + 7.12e-6 l^2) ms (DistServe, OPT-13B on an A100); speed 2 halves it
    from qsn.scheduler.service import llm_work

    p, o = np.array([100, 1000]), np.array([5, 50])
    wl = Workload.from_arrays(arrival=[0.0, 0.5], prompt_tokens=p, output_tokens=o, work=llm_work(p, o), llm=True)
    cl = Cluster.uniform(2, speed=2.0)
    s = simulate(wl, cl, Plan(np.array([0, 1]), wl.arrival.copy()), faults=False)
    prefill = (18.10 + 0.1019 * p + 7.12e-6 * p**2) / 1e3
    np.testing.assert_allclose(s.first_token, wl.arrival + prefill / 2.0, rtol=1e-12)
    m = metrics(wl, cl, s)
    assert m["ttft_mean"] == pytest.approx(np.mean(prefill / 2.0))
    # vLLM's convention: the prefill emits token 1, then m - 1 decode steps; step k attends to l + k tokens and
    # takes (19.93 + 0.0385 + 6.27e-4 (l + k)) ms, so TPOT is the mean step (here / speed 2), written out by hand
    steps = [[(19.93 + 0.0385 + 6.27e-4 * (l + k)) / 1e3 / 2.0 for k in range(1, m)] for l, m in zip(p, o)]
    np.testing.assert_allclose(s.finish - s.start, prefill / 2.0 + [sum(x) for x in steps], rtol=1e-12)
    per_request = [np.mean(x) for x in steps]
    assert m["tpot_mean"] == pytest.approx(np.mean(per_request), rel=1e-12)
    assert m["tpot_p50"] == pytest.approx(np.median(per_request), rel=1e-12)
    assert m["token_throughput"] == pytest.approx(o.sum() / m["makespan"], rel=1e-12)
    assert m["normalised_latency_mean"] == pytest.approx(np.mean((s.finish - wl.arrival) / o), rel=1e-12)


def test_metrics_rejects_an_unfinished_schedule():
    wl, cl, s = _three_tasks()
    finish = s.finish.copy()
    finish[1] = np.nan
    with pytest.raises(InvalidInputError, match="task 1"):
        metrics(wl, cl, s._replace(finish=finish))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 25), st.integers(1, 3), st.integers(1, 2))
def test_fault_free_identities(seed, n, w, slots):
    rng = np.random.default_rng(seed)
    wl = Workload.from_arrays(arrival=rng.uniform(0.0, 5.0, n), work=rng.uniform(0.1, 3.0, n))
    cl = Cluster.uniform(w, speed=1.5, slots=slots)
    s = simulate(wl, cl, Plan(np.full(n, -1), wl.arrival.copy()), faults=False)
    m = metrics(wl, cl, s)
    service = wl.work / 1.5
    np.testing.assert_allclose(s.busy.sum(), service.sum(), rtol=1e-9)
    assert m["utilisation"] == pytest.approx(service.sum() / (w * slots * m["makespan"]), rel=1e-9)
    idle = m["makespan"] - s.busy / slots
    assert m["energy_j"] == pytest.approx(float(np.sum(300.0 * s.busy + 60.0 * idle)), rel=1e-9)
    assert np.all(idle >= -1e-9)
    latency = s.finish - wl.arrival
    assert np.all(latency >= (s.start - wl.arrival) + service - 1e-9)
    assert m["latency_mean"] >= m["wait_mean"] + service.mean() - 1e-9
