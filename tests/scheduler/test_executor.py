"""Tests of qsn.scheduler.executor: the online policies dispatching real callables on a Dask LocalCluster.

One in-process cluster for the module (2 workers × 1 thread, ``processes=False``: starts in well under a second);
skipped when Dask ``distributed`` is not installed, except the test of the missing-Dask error itself.

* results equal calling the functions directly, in submission order, with records and the simulator's metrics;
* the predictor learns only from completions: a recording predictor is told each task once, at the instant the
  executor saw it finish, with a measured runtime at least the task's sleep; each prediction is made at release;
* a short-first policy runs a short task before a long one queued for the same worker (FIFO does the opposite);
* a task that raises is reported naming the task and worker, its exception as the cause; a run past its timeout
  names what is still running; preemptive policies and bad jobs are refused naming the field.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import pytest

from qsn.errors import BackendUnavailableError, ConfigurationError, TaskFailedError
from qsn.scheduler.executor import Job, execute
from qsn.scheduler.policy import Fifo, ShortestFirst
from qsn.scheduler.preemptive import SRPT
from qsn.scheduler.predictors import Estimate, SizePredictor


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc, \
            distributed.Client(lc) as c:
        yield c


def test_missing_dask_raises_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(BackendUnavailableError, match=r"Dask distributed: pip install 'qsn\[dask\]'"):
        execute([Job(abs, (-1,))], Fifo(), "tcp://127.0.0.1:1")


def test_results_equal_direct_calls_in_submission_order(client):
    calls = [(math.factorial, (20,), {}), (sorted, ([3, 1, 2],), {"reverse": True}), (int, ("ff",), {"base": 16}),
             (np.linalg.det, (np.array([[2.0, 1.0], [1.0, 3.0]]),), {}), (str.upper, ("qsn",), {}),
             (round, (math.pi,), {"ndigits": 3})]
    jobs = [Job(f, a, k, arrival=0.02 * (len(calls) - i)) for i, (f, a, k) in enumerate(calls)]  # released in reverse
    run = execute(jobs, Fifo(), client)
    assert run.results == [f(*a, **k) for f, a, k in calls]
    assert [r.job for r in run.records] == list(range(len(calls)))
    assert [r.name for r in run.records] == ["factorial", "sorted", "int", "det", "upper", "round"]
    assert run.order.tolist() == list(range(len(calls)))[::-1]  # schedule rows: jobs by arrival
    for r in run.records:
        assert r.released <= r.submit <= r.done and r.start <= r.end and r.runtime >= 0
        assert r.address == run.addresses[r.worker]
    assert run.metrics["tasks"] == len(calls) and 0 < run.metrics["utilisation"] <= 1
    assert {"latency_mean", "latency_p99", "makespan", "wait_mean", "goodput"} <= set(run.metrics)
    assert execute([lambda: 7], Fifo(), client).results == [7]  # a bare callable is Job(fn)


class _Recording(SizePredictor):
    """Predicts a constant and records every call: (task, now) predictions and (task, log work, now) lessons."""

    name = "recording"

    def bind(self, tasks):
        super().bind(tasks)
        self.predicted, self.learned = [], []

    def predict(self, task, now):
        self.predicted.append((task, now))
        return 0.0

    def learn(self, task, log_work, now):
        self.learned.append((task, log_work, now))


def test_the_predictor_learns_only_from_completions_with_measured_runtimes(client):
    sleeps = [0.12, 0.05, 0.08, 0.03, 0.1]
    jobs = [Job(time.sleep, (s,), arrival=a) for s, a in zip(sleeps, [0.0, 0.0, 0.05, 0.05, 0.25])]
    size = _Recording()
    run = execute(jobs, ShortestFirst(size), client)
    tasks = [t for t, _, _ in size.learned]
    assert sorted(tasks) == list(range(len(jobs)))  # each task exactly once (rows = jobs: arrivals are sorted)
    for t, log_work, now in size.learned:
        rec = run.records[t]
        assert math.exp(log_work) == pytest.approx(rec.runtime, rel=1e-12)  # speed 1: work = measured runtime
        assert rec.runtime >= sleeps[t] - 1e-3
        assert now == rec.done  # told when the executor saw it finish, not before
    assert [t for t, _ in size.predicted] == list(range(len(jobs)))
    for t, now in size.predicted:
        assert now == run.records[t].released
        # nothing that had not finished by then had been learned
        assert {u for u, _, at in size.learned if at <= now} <= {u for u in range(len(jobs)) if run.records[u].done <= now}
    np.testing.assert_allclose(run.workload.work, [r.runtime for r in run.records])


def _queue_jobs():
    # two blockers take both workers (estimates smallest, so every order starts them first); b1 frees worker A
    # at ~0.2 s, b2 holds worker B to ~0.6 s; "long" (estimate 10) and "short" (estimate 1) wait for a thread
    return [Job(time.sleep, (0.2,), estimate=0.01, name="b1"), Job(time.sleep, (0.6,), estimate=0.01, name="b2"),
            Job(time.sleep, (0.25,), estimate=10.0, name="long"), Job(time.sleep, (0.05,), estimate=1.0, name="short")]


def test_shortest_first_runs_the_short_task_before_the_long_one_on_the_same_worker(client):
    run = execute(_queue_jobs(), ShortestFirst(Estimate()), client)
    b1, _, long, short = run.records
    assert short.worker == long.worker == b1.worker  # both ran on the worker b1 freed, short first
    assert b1.end <= short.start < short.end <= long.start
    fifo = execute(_queue_jobs(), Fifo(), client)
    b1, _, long, short = fifo.records
    assert long.worker == b1.worker and long.start < short.start  # arrival order: long first


def test_a_failing_task_is_reported_by_name_with_its_exception(client):
    def boom(x):
        raise ValueError(f"boom {x}")

    jobs = [Job(time.sleep, (0.05,)), Job(boom, (3,), name="bad"), Job(abs, (-2,))]
    with pytest.raises(TaskFailedError, match=r"task 1 \('bad'\) failed on worker \d \(.+\): ValueError: boom 3") as err:
        execute(jobs, Fifo(), client)
    assert isinstance(err.value.__cause__, ValueError)
    assert execute([Job(abs, (-2,))], Fifo(), client).results == [2]  # the client is still usable


def test_preemptive_policies_and_bad_jobs_are_refused(client):
    with pytest.raises(ConfigurationError, match="preempts running tasks"):
        execute([Job(abs, (1,))], SRPT(Estimate()), client)
    with pytest.raises(ConfigurationError, match="`fn` must be callable"):
        Job(3)
    with pytest.raises(ConfigurationError, match="`arrival`"):
        Job(abs, (1,), arrival=-1.0)
    with pytest.raises(ConfigurationError, match="`estimate`"):
        Job(abs, (1,), estimate=0.0)
    with pytest.raises(ConfigurationError, match="`workers`"):
        execute([Job(abs, (1,))], Fifo(), client, workers=["tcp://nowhere:1"])


def test_a_run_past_its_timeout_names_the_running_tasks(client):  # last: its sleep keeps one thread busy a while
    with pytest.raises(TaskFailedError, match=r"timeout = 0.3 s; still running: task 0 \('sleep'\)"):
        execute([Job(time.sleep, (0.8,)), Job(abs, (1,))], Fifo(), client, timeout=0.3)
