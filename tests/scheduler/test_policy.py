"""Tests of the online policy interface (qsn.scheduler.policy) and the online predictors (qsn.scheduler.predictors).

* **No size leaks** (the harness): run a policy, pick an instant ``tau``, multiply the true sizes of every task
  not finished by ``tau`` (up for those already running, either way for those not started; LLM requests
  through their output tokens), run again: every decision before ``tau`` — each start and each preemption,
  with its time, task and worker — must be the same. Every named policy except the oracles passes (the
  preemptive SRPT and MLFQ and the binned and boosted predictors included); the harness catches the ORACLE
  SJF and SRPT and a plan made on the offline history mean (which reads sizes at arrival), so it would fail
  if predictions used unfinished tasks' sizes;
* the online fusion equals a plain NumPy loop of the rule driven by the run's own events (predict at readiness
  with the current weights, update at each completion in completion order);
* hand-computed single-worker schedules: SJF on estimates, linear aging reversing the order, FIFO; the
  Estimate predictor's fallback is the mean measured work of tasks finished before the arrival;
* a policy's illegal decisions are refused, naming the task and worker.
"""

from __future__ import annotations

import numpy as np
import pytest

from qsn.errors import ConfigurationError
from qsn.scheduler import Cluster, Task, Worker, Workload, schedule, simulate, workloads
from qsn.scheduler.policy import Fifo, OnlinePolicy, PlanPolicy, ShortestFirst
from qsn.scheduler.predict import naive_work
from qsn.scheduler.predictors import Estimate
from qsn.scheduler.service import durations, llm_work
from qsn.scheduler.simulator import Plan, check_plan


def _instance(kind: str):
    if kind == "llm":  # no estimates: every size-aware decision must come from completions
        return workloads.llm_inference(400, 4, seed=3, load=0.9)
    return workloads.batch(400, 4, seed=3, load=0.9)


def _perturbed(wl: Workload, sched, tau: float, seed: int) -> Workload:
    """Sizes of tasks unfinished at ``tau`` changed: x[1, 6] if running at tau, x[1/6, 6] if not yet started."""
    rng = np.random.default_rng(seed)
    unfinished = sched.finish > tau
    started = sched.start < tau
    factor = np.where(started, rng.uniform(1.0, 6.0, wl.n), np.exp(rng.uniform(-np.log(6), np.log(6), wl.n)))
    factor = np.where(unfinished, factor, 1.0)
    if wl.llm:  # the true size of a request is its output length; more tokens never shorten it
        out = np.where(unfinished, np.maximum(1, np.rint(wl.output_tokens * factor)), wl.output_tokens)
        out = np.where(unfinished & started, np.maximum(out, wl.output_tokens), out).astype(np.int64)
        return wl.replace(output_tokens=out, work=llm_work(wl.prompt_tokens, out))
    return wl.replace(work=wl.work * factor)


class _Logged(OnlinePolicy):
    """Runs ``inner`` and logs every decision it makes: (time, "start" | "stop", task, worker)."""

    def __init__(self, inner: OnlinePolicy):
        self.inner, self.name, self.log = inner, inner.name, []

    def bind(self, tasks, cluster):
        self.inner.bind(tasks, cluster)

    def on_arrival(self, task, now, view):
        self.inner.on_arrival(task, now, view)

    def on_completion(self, task, worker, runtime, now):
        self.inner.on_completion(task, worker, runtime, now)

    def on_interrupt(self, task, worker, now, view):
        self.inner.on_interrupt(task, worker, now, view)

    def on_worker(self, worker, up, now):
        self.inner.on_worker(worker, up, now)

    def on_timer(self, now, view):
        self.inner.on_timer(now, view)

    def next_dispatch(self, now, view):
        d = self.inner.next_dispatch(now, view)
        if d is not None:
            self.log.append((now, "start", int(d[0]), int(d[1])))
        return d

    def next_preemption(self, now, view):
        d = self.inner.next_preemption(now, view)
        if d is not None:
            self.log.append((now, "stop", int(d[0]), int(d[1])))
        return d


def _logged(wl: Workload, cl: Cluster, policy):
    if isinstance(policy, Plan):
        policy = PlanPolicy(check_plan(wl, cl, policy))
    logged = _Logged(policy)
    return simulate(wl, cl, logged, faults=False), logged.log


def _leaks(wl: Workload, cl: Cluster, make, quantile: float = 0.8, seed: int = 0) -> list[int]:
    """Tasks whose decisions before tau (every start and preemption: time, task, worker) differ after perturbing
    unfinished sizes (empty = no leak)."""
    base, log = _logged(wl, cl, make(wl))
    tau = float(np.quantile(base.finish, quantile))
    other = _perturbed(wl, base, tau, seed)
    assert not np.array_equal(other.work, wl.work)
    moved, other_log = _logged(other, cl, make(other))
    early = {d for d in log if d[0] < tau}
    other_early = {d for d in other_log if d[0] < tau}
    return sorted({d[2] for d in early ^ other_early})


# the named policies as the simulator runs them: plan(..., aging) builds a fresh policy for the given workload
CAUSAL = [p for p in schedule.POLICY_NAMES if p not in schedule.ORACLE_POLICIES]


@pytest.mark.parametrize("kind", ["llm", "batch"])
@pytest.mark.parametrize("policy", CAUSAL)
def test_no_decision_depends_on_an_unfinished_size(kind, policy):
    wl, cl = _instance(kind)
    if policy == "sjf_prompt" and not wl.llm:
        pytest.skip("prompt-length SJF is for LLM requests")
    aging = 0.5 if policy.startswith(("sjf", "srpt", "mlfq")) or policy == "fusion" else 0.0
    assert _leaks(wl, cl, lambda w: schedule.plan(w, cl, policy, seed=0, aging=aging)[0]) == []


@pytest.mark.parametrize("kind", ["llm", "batch"])
def test_the_harness_catches_policies_that_read_sizes(kind):
    wl, cl = _instance(kind)
    assert _leaks(wl, cl, lambda w: schedule.plan(w, cl, "sjf_oracle")[0]) != []
    assert _leaks(wl, cl, lambda w: schedule.plan(w, cl, "srpt_oracle")[0]) != []
    if kind == "llm":  # the old naive prediction: the history mean of earlier *arrivals'* true sizes
        def leaky(w):
            return Plan(np.full(w.n, -1), np.min(durations(w, cl, work=naive_work(w)), axis=1))
        assert _leaks(wl, cl, leaky) != []


def test_online_fusion_equals_a_numpy_loop_of_the_rule_over_the_runs_events():
    wl, cl = _instance("llm")
    policy, info = schedule.plan(wl, cl, "fusion", seed=0)
    sched = simulate(wl, cl, policy, faults=False)
    tr = info["fusion"].trace()
    p = tr.predictions  # (N, K) each source's prediction at readiness, as the policy recorded it
    assert np.isfinite(p[:, 0]).all() and np.isnan(p[:64, 1:]).all()  # readouts: nothing before 64 completions
    assert np.isfinite(p[-50:, 1:]).all()
    y = np.log(wl.work)
    alpha, eta, gmax = 0.05, 0.5, 8.0
    e, ef, g = np.ones(p.shape[1]), 1.0, 1.0
    ref = np.full(wl.n, np.nan)
    # events in time; at one instant arrivals first, as the simulator orders them
    events = sorted([(wl.arrival[i], 0, i) for i in range(wl.n)] + [(sched.finish[j], 1, j) for j in range(wl.n)])
    for _, kind, i in events:
        if kind == 0:
            have = np.isfinite(p[i])
            w = np.zeros_like(e)
            w[have] = e[have] ** -g / np.sum(e[have] ** -g)
            ref[i] = np.sum(w[have] * p[i, have])
        else:
            have = np.isfinite(p[i])
            e = np.where(have, (1 - alpha) * e + alpha * (np.where(have, p[i], 0) - y[i]) ** 2, (1 - alpha) * e + alpha * e)
            ef = (1 - alpha) * ef + alpha * (ref[i] - y[i]) ** 2
            g = float(np.clip(g * (1 - eta * (1 - ef / e.min())), 1.0, gmax))
    np.testing.assert_allclose(tr.fused, ref, rtol=1e-9, atol=1e-9)


# --- hand-computed schedules on one worker --------------------------------------------------------------
def _one_worker(tasks):
    return Workload.from_tasks(tasks), Cluster.from_workers([Worker()])


def test_sjf_and_aging_hand_computed():
    # A (0-10) holds the worker; at t = 10, B (ready at 1, est 5) and C (ready at 9, est 1) wait
    wl, cl = _one_worker([Task(arrival=0.0, work=10.0, estimate=10.0), Task(arrival=1.0, work=5.0, estimate=5.0),
                          Task(arrival=9.0, work=1.0, estimate=1.0)])
    sjf = simulate(wl, cl, ShortestFirst(Estimate()))
    np.testing.assert_array_equal(sjf.start, [0.0, 11.0, 10.0])  # keys 5 vs 1: C first
    aged = simulate(wl, cl, ShortestFirst(Estimate(), aging=1.0))
    np.testing.assert_array_equal(aged.start, [0.0, 10.0, 15.0])  # keys 5 + 1 = 6 vs 1 + 9 = 10: B first
    fifo = simulate(wl, cl, Fifo())
    np.testing.assert_array_equal(fifo.start, [0.0, 10.0, 15.0])


def test_estimate_falls_back_to_the_mean_of_finished_tasks_only():
    # no estimates and nothing finished before t = 10: B and C are both predicted the prior 1.0 (ties by index)
    wl, cl = _one_worker([Task(arrival=0.0, work=10.0), Task(arrival=0.5, work=2.0), Task(arrival=1.0, work=3.0)])
    s = simulate(wl, cl, ShortestFirst(Estimate(prior=1.0)))
    np.testing.assert_array_equal(s.start, [0.0, 10.0, 12.0])  # both keys 1.0: ties by index
    wl2, _ = _one_worker([Task(arrival=0.0, work=10.0), Task(arrival=10.5, work=2.0), Task(arrival=11.0, work=0.5),
                          Task(arrival=11.5, work=3.0, estimate=3.0)])
    # at 10.5 B is predicted 10 (A's measured work) and starts at once; C at 11: 10; D at 11.5: its estimate 3
    s2 = simulate(wl2, cl, ShortestFirst(Estimate()))
    np.testing.assert_array_equal(s2.start, [0.0, 10.5, 15.5, 12.5])


class _Bad(OnlinePolicy):
    def __init__(self, decision):
        self.decision = decision

    def on_arrival(self, task, now, view):
        pass

    def next_dispatch(self, now, view):
        d, self.decision = self.decision, None
        return d


@pytest.mark.parametrize("decision, match", [((1, 0), "task 1 .* waiting"), ((0, 1), "no such task"),
                                              ((5, 0), "no such task")])
def test_illegal_decisions_are_refused(decision, match):
    wl, cl = _one_worker([Task(arrival=0.0, work=1.0), Task(arrival=5.0, work=1.0)])
    with pytest.raises(ConfigurationError, match=match):
        simulate(wl, cl, _Bad(decision))


def test_a_busy_worker_is_refused():
    wl, cl = _one_worker([Task(arrival=0.0, work=3.0), Task(arrival=1.0, work=1.0)])

    class Greedy(Fifo):
        def next_dispatch(self, now, view):
            return (self._heap.pop(0)[1], 0) if self._heap else None

    with pytest.raises(ConfigurationError, match="task 1 to worker 0 .* cannot take it"):
        simulate(wl, cl, Greedy())
