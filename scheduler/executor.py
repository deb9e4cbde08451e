"""A real executor: the simulator's online policies dispatch Python callables onto a Dask ``distributed`` cluster.

:func:`execute` runs N :class:`Job` objects (a callable, its arguments and what is observable of it: the user's
estimate, prompt tokens, memory, priority, type, release time) under an
:class:`~qsn.scheduler.policy.OnlinePolicy` — the same objects :func:`~qsn.scheduler.simulator.simulate` runs,
with the same callbacks:

* the executor keeps every released job that has not started in the policy's queues and submits one only when
  the policy's ``next_dispatch`` starts it on a worker with a free thread, pinned there (``workers=[address],
  allow_other_workers=False``), so each Dask worker runs exactly the policy's order, never its own;
* each task runs inside a wrapper on the worker that measures its wall time (``time.perf_counter`` around the
  call, seconds) and its start and end (``time.time``); on completion the measured runtime goes back through
  ``on_completion`` — the only way a size reaches the policy and its predictors, as in the simulator;
* a task that raises stops the run: the other tasks are cancelled and :class:`~qsn.errors.TaskFailedError`
  names the task and the worker, with the task's own exception as its ``__cause__``;
* a Dask worker is a :class:`~qsn.scheduler.task.Worker` with one slot per thread, speed 1 (or ``speed=``) and no
  memory limit; the policy sees the cluster as a :class:`~qsn.scheduler.task.Cluster` of them.

Results come back in submission order with a :class:`TaskRecord` per job, and the metrics the simulator reports
(:func:`~qsn.scheduler.metrics.metrics`: latency mean and percentiles, makespan, utilisation …) of the run's
:class:`~qsn.scheduler.simulator.Schedule` in real seconds. Preemptive policies (SRPT, MLFQ) are refused: a
running Python callable cannot be paused and resumed elsewhere.

Times are seconds since the run began: arrivals, submissions and the driver's view of completions on the
driver's clock; each task's start and end on its worker's wall clock, less the driver's wall clock at the run's
start — exact on a :class:`distributed.LocalCluster`, offset by any clock difference between machines on a
remote cluster (the measured runtime is not affected). Workers must be able to import ``qsn`` (the wrapper
lives here), as Dask requires of any library code its tasks call.

Dask is an optional dependency: ``pip install 'qsn[dask]'``; without it :func:`execute` raises
:class:`~qsn.errors.BackendUnavailableError` with that hint.

Example:
    >>> import time
    >>> from distributed import Client, LocalCluster                      # doctest: +SKIP
    >>> from qsn.scheduler.policy import ShortestFirst
    >>> from qsn.scheduler.predictors import Estimate
    >>> with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
    ...                   dashboard_address=None) as lc, Client(lc) as client:  # doctest: +SKIP
    ...     jobs = [Job(time.sleep, (0.2,), estimate=0.2), Job(pow, (2, 10), estimate=0.01)]
    ...     run = execute(jobs, ShortestFirst(Estimate()), client)
    ...     run.results, run.metrics["latency_mean"] < 1.0
    ([None, 1024], True)
"""

from __future__ import annotations

import heapq
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from qsn.errors import BackendUnavailableError, ConfigurationError, TaskFailedError
from qsn.scheduler.metrics import metrics as schedule_metrics
from qsn.scheduler.policy import OnlinePolicy, View, observe
from qsn.scheduler.simulator import Schedule
from qsn.scheduler.task import Cluster, Worker, Workload

__all__ = ["Job", "TaskRecord", "Execution", "execute", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'qsn[dask]'"


def _distributed():
    """The ``distributed`` module, or :class:`~qsn.errors.BackendUnavailableError` with the install hint."""
    try:
        import distributed
    except ImportError as err:
        raise BackendUnavailableError(f"qsn.scheduler.executor needs Dask distributed: {INSTALL_HINT}") from err
    return distributed


@dataclass(frozen=True)
class Job:
    """One task for :func:`execute`: ``fn(*args, **kwargs)`` and what a scheduler may observe of it.

    Example:
        >>> Job(pow, (2, 10), estimate=0.01, name="power").name
        'power'
    """

    fn: Callable[..., Any]  # run on a worker
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    arrival: float = 0.0  # s after the run starts at which the job is released to the policy
    estimate: float = math.nan  # the user's estimate of its runtime on a speed-1 worker, s (NaN = none)
    prompt_tokens: int = 0  # an observable size feature (e.g. an LLM prompt's length)
    memory: float = 0.0  # GiB (a feature only: Dask workers are given no memory limit here)
    priority: int = 0
    task_type: int = 0
    name: str | None = None  # for records and error messages (default: the callable's name)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigurationError(f"Job field `fn` must be callable, but is {type(self.fn).__name__}")
        if not isinstance(self.args, tuple):
            raise ConfigurationError(f"Job field `args` must be a tuple, but is {type(self.args).__name__}")
        if not isinstance(self.kwargs, Mapping):
            raise ConfigurationError(f"Job field `kwargs` must be a mapping, but is {type(self.kwargs).__name__}")
        if not (math.isfinite(self.arrival) and self.arrival >= 0):
            raise ConfigurationError(f"Job field `arrival` must be a finite number >= 0 (s), but is {self.arrival!r}")
        if not (math.isnan(self.estimate) or (math.isfinite(self.estimate) and self.estimate > 0)):
            raise ConfigurationError(f"Job field `estimate` must be > 0 (s) or NaN, but is {self.estimate!r}")
        if self.name is None:
            object.__setattr__(self, "name", getattr(self.fn, "__name__", type(self.fn).__name__))


class TaskRecord(NamedTuple):
    """What happened to one job; times in s since the run began (see the module docstring for the clocks)."""

    job: int  # index in the submitted sequence
    name: str
    worker: int  # index into Execution.addresses
    address: str  # the Dask worker's address
    released: float  # driver clock: when the policy was told of it (its arrival)
    submit: float  # driver clock: when the executor submitted it to its worker
    start: float  # worker clock: when the call began
    end: float  # worker clock: when it returned
    done: float  # driver clock: when the executor saw it finish
    runtime: float  # s, measured on the worker around the call (what the policy learns)


class Execution(NamedTuple):
    """A finished run. ``workload`` and ``schedule`` rows are the jobs sorted by arrival (stable): row ``i`` is
    job ``order[i]`` (the identity when all jobs arrive at 0, the default)."""

    results: list  # (N,) return values, in submission order
    records: list  # (N,) TaskRecord, in submission order
    metrics: dict  # qsn.scheduler.metrics.metrics of the schedule, seconds
    schedule: Schedule
    workload: Workload  # the observable columns (``work`` is the measured runtime × speed)
    cluster: Cluster
    addresses: tuple  # (W,) Dask worker addresses, index = worker
    order: np.ndarray  # (N,) int64


def _timed(fn, args, kwargs):
    """Runs on the worker: ``fn(*args, **kwargs)``, its wall-clock start and end (s since the epoch) and its
    runtime (s, ``perf_counter``)."""
    start, t0 = time.time(), time.perf_counter()
    value = fn(*args, **kwargs)
    runtime = time.perf_counter() - t0
    return value, start, time.time(), runtime


class _Run:
    """The executor's event loop; exposes what :class:`~qsn.scheduler.policy.View` reads."""

    def __init__(self, jobs: list[Job], policy: OnlinePolicy, client, addresses: list[str], slots: np.ndarray,
                 speed: np.ndarray) -> None:
        self.jobs, self.policy, self.client, self.addresses = jobs, policy, client, addresses
        arrival = np.array([j.arrival for j in jobs], np.float64)
        self.order = np.argsort(arrival, kind="stable")
        cols = dict(estimate=[j.estimate for j in jobs], prompt_tokens=[j.prompt_tokens for j in jobs],
                    memory=[j.memory for j in jobs], priority=[j.priority for j in jobs],
                    task_type=[j.task_type for j in jobs])
        self.wl = Workload.from_arrays(arrival=arrival, **cols, name="executor")  # work: unknown, never read
        self.cl = Cluster.from_workers([Worker(speed=float(v), slots=int(k)) for v, k in zip(speed, slots)])
        self.ok = self.cl.eligible(self.wl)
        self.linked = None
        n, w = self.wl.n, self.cl.n
        self.parents: list[list[int]] = [[] for _ in range(n)]
        self.up = np.ones(w, bool)
        self.free = self.cl.slots.astype(np.int64).copy()
        self.mem = np.zeros(w)
        self.cpu = np.zeros(w)  # jobs declare no CPU or GPU demand (View.startable reads these)
        self.gpus = None
        self.running: list[dict[int, float]] = [dict() for _ in range(w)]
        self.where = np.full(n, -1, np.int64)
        self.version = 0
        self.done = 0
        self.state = np.zeros(n, np.int8)  # 0 waiting, 1 ready, 2 running, 3 done
        self.wakes: list[float] = []
        self.view = View(self)
        self.peak_running = np.zeros(w, np.int64)
        self.peak_memory = np.zeros(w)
        self.records: list[TaskRecord | None] = [None] * n
        self.results: list[Any] = [None] * n
        self.released = np.full(n, np.nan)
        self.submitted = np.full(n, np.nan)
        self.futures: dict[str, tuple[Any, int]] = {}  # key -> (future, row)
        self.run_id = uuid.uuid4().hex[:12]

    def wake_at(self, at: float) -> None:
        heapq.heappush(self.wakes, float(at))

    def clock(self) -> float:
        return time.perf_counter() - self.t0

    def job_of(self, row: int) -> int:
        return int(self.order[row])

    def describe(self, row: int) -> str:
        j = self.job_of(row)
        return f"task {j} ({self.jobs[j].name!r})"

    def submit(self, row: int, w: int, now: float) -> None:
        job = self.jobs[self.job_of(row)]
        key = f"qsn-{self.run_id}-{self.job_of(row)}"
        fut = self.client.submit(_timed, job.fn, job.args, dict(job.kwargs), key=key, workers=[self.addresses[w]],
                                 allow_other_workers=False, pure=False)
        self.futures[key] = (fut, row)
        self.version += 1
        self.state[row] = 2
        self.free[w] -= 1
        self.mem[w] += self.wl.memory[row]
        self.running[w][row] = now
        self.where[row] = w
        self.submitted[row] = now
        self.peak_running[w] = max(self.peak_running[w], len(self.running[w]))
        self.peak_memory[w] = max(self.peak_memory[w], self.mem[w])

    def dispatch(self, now: float) -> None:
        policy, view = self.policy, self.view
        while (decision := policy.next_dispatch(now, view)) is not None:
            t, w = int(decision[0]), int(decision[1])
            if not 0 <= t < self.wl.n or not 0 <= w < self.cl.n:
                raise ConfigurationError(f"Policy {policy.name!r} dispatched task {t} to worker {w}: no such task "
                                         f"in [0, {self.wl.n}) or worker in [0, {self.cl.n})")
            if self.state[t] != 1:
                raise ConfigurationError(f"Policy {policy.name!r} dispatched {self.describe(t)} at t = {now:.3f} s, "
                                         f"but it is {('not released yet', '', 'running', 'finished')[self.state[t]]}")
            if not view.can_start(t, w):
                raise ConfigurationError(f"Policy {policy.name!r} dispatched {self.describe(t)} to worker {w} "
                                         f"({self.addresses[w]}), which has no free thread")
            self.submit(t, w, now)

    def finish(self, key: str, now: float) -> None:
        fut, row = self.futures.pop(key)
        w = int(self.where[row])
        if fut.status == "error":
            exc = fut.exception()
            self.cancel()
            raise TaskFailedError(f"{self.describe(row)} failed on worker {w} ({self.addresses[w]}): "
                                  f"{type(exc).__name__}: {exc}") from exc
        if fut.status != "finished":
            self.cancel()
            raise TaskFailedError(f"{self.describe(row)} on worker {w} ({self.addresses[w]}) ended as "
                                  f"{fut.status!r}, not finished (was the worker lost?)")
        value, start, end, runtime = fut.result()
        j = self.job_of(row)
        self.results[j] = value
        self.records[j] = TaskRecord(j, self.jobs[j].name, w, self.addresses[w], float(self.released[row]),
                                     float(self.submitted[row]), start - self.t0_wall, end - self.t0_wall, now,
                                     float(runtime))
        self.version += 1
        self.running[w].pop(row)
        self.state[row] = 3
        self.free[w] += 1
        self.mem[w] -= self.wl.memory[row]
        self.done += 1
        self.policy.on_completion(row, w, float(runtime), now)

    def cancel(self) -> None:
        if self.futures:
            self.client.cancel([f for f, _ in self.futures.values()])
            self.futures.clear()

    def run(self, timeout: float | None) -> None:
        distributed = _distributed()
        self.policy.bind(observe(self.wl, self.cl, self.ok), self.cl)
        self.t0_wall, self.t0 = time.time(), time.perf_counter()
        arrival, n, i = self.wl.arrival, self.wl.n, 0
        try:
            while self.done < n:
                now = self.clock()
                if timeout is not None and now > timeout:
                    late = [self.describe(r) for _, r in self.futures.values()][:8]
                    raise TaskFailedError(f"The run did not finish within timeout = {timeout:g} s; still running: "
                                          f"{', '.join(late) or 'none'} ({n - self.done} tasks unfinished)")
                while i < n and arrival[i] <= now:
                    self.state[i], self.released[i] = 1, now
                    self.policy.on_arrival(i, now, self.view)
                    i += 1
                while self.wakes and self.wakes[0] <= now:
                    heapq.heappop(self.wakes)
                    self.policy.on_timer(now, self.view)
                self.dispatch(now)
                # wait for a completion, the next release or wake-up, whichever comes first
                nxt = min(arrival[i] if i < n else math.inf, self.wakes[0] if self.wakes else math.inf)
                if timeout is not None:
                    nxt = min(nxt, timeout + 1e-3)
                if not self.futures:
                    if not math.isfinite(nxt):
                        waiting = [self.describe(r) for r in np.flatnonzero(self.state == 1)[:8]]
                        raise ConfigurationError(f"Policy {self.policy.name!r} never dispatches {', '.join(waiting)}"
                                                 " although every worker is idle")
                    time.sleep(max(nxt - self.clock(), 0.0))
                    continue
                wait_s = None if not math.isfinite(nxt) else max(nxt - self.clock(), 0.0)
                try:
                    finished = distributed.wait([f for f, _ in self.futures.values()], timeout=wait_s,
                                                return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    continue
                now = self.clock()
                for fut in sorted(finished, key=lambda f: self.futures[f.key][1]):
                    self.finish(fut.key, now)
        except BaseException:
            self.cancel()
            raise

    def execution(self) -> Execution:
        recs = [self.records[self.job_of(r)] for r in range(self.wl.n)]
        start = np.array([r.start for r in recs])
        end = np.array([r.end for r in recs])
        runtime = np.array([r.runtime for r in recs])
        worker = np.array([r.worker for r in recs], np.int64)
        # a task cannot end before it was released; clamp the worker clock's offset so metrics stay defined
        end = np.maximum(end, self.wl.arrival)
        start = np.clip(start, self.wl.arrival, end)
        w = self.cl.n
        busy = np.bincount(worker, weights=runtime, minlength=w)
        zw, zn = np.zeros(w), np.zeros(self.wl.n, np.int64)
        sched = Schedule(start, end, worker, end.copy(), zn, busy, zw, self.peak_running, self.peak_memory,
                         np.zeros(w, np.int64), zn.copy())
        wl = self.wl.replace(work=np.maximum(runtime * self.cl.speed[worker], 1e-12))
        return Execution(self.results, [self.records[j] for j in range(self.wl.n)],
                         schedule_metrics(wl, self.cl, sched), sched, wl, self.cl, tuple(self.addresses), self.order)


def execute(jobs: Sequence[Job | Callable[[], Any]], policy: OnlinePolicy, client, *,
            workers: Sequence[str] | None = None, speed: Sequence[float] | None = None,
            timeout: float | None = None) -> Execution:
    """Run ``jobs`` on a Dask cluster under ``policy`` and return their results, records and metrics.

    Args:
        jobs: N :class:`Job` objects (a bare callable is ``Job(fn)``); released at their ``arrival`` (s after the
            start), all at once by default.
        policy: a non-preemptive :class:`~qsn.scheduler.policy.OnlinePolicy`, bound afresh for this run (its
            predictors learn only from this run's completions).
        client: a ``distributed.Client``, or the address of a Dask scheduler (a client is opened and closed).
        workers: Dask worker addresses to use (default: every worker of the cluster, sorted); W of them.
        speed: (W,) effective speed of each, work units per second (default 1: estimates are in seconds).
        timeout: s for the whole run; past it the running tasks are cancelled and
            :class:`~qsn.errors.TaskFailedError` names them. ``None``: no limit.

    Returns:
        An :class:`Execution`: ``results`` and ``records`` in submission order, ``metrics`` as the simulator's.

    Raises:
        BackendUnavailableError: Dask ``distributed`` is not installed (the message gives ``pip install``).
        TaskFailedError: a task raised (its exception is the ``__cause__``), or the run exceeded ``timeout``.
        ConfigurationError: a bad argument (named), a preemptive policy, or an illegal decision of the policy.

    Example:
        >>> from distributed import LocalCluster, Client                          # doctest: +SKIP
        >>> from qsn.scheduler.policy import Fifo
        >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as lc, \\
        ...         Client(lc) as c:                                              # doctest: +SKIP
        ...     execute([Job(sum, ([1, 2, 3],)), Job(max, (4, 5))], Fifo(), c).results
        [6, 5]
    """
    distributed = _distributed()
    if not isinstance(policy, OnlinePolicy):
        raise ConfigurationError(f"Argument `policy` must be an OnlinePolicy, but is {type(policy).__name__}")
    if policy.preemptive:
        raise ConfigurationError(f"Argument `policy` ({policy.name!r}) preempts running tasks, but a running Python "
                                 "callable cannot be paused and resumed: use a non-preemptive policy (Fifo, "
                                 "ShortestFirst, PlanPolicy)")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ConfigurationError(f"Argument `timeout` must be a number > 0 (s) or None, but is {timeout!r}")
    jobs = [j if isinstance(j, Job) else Job(j) for j in jobs]
    if not jobs:
        raise ConfigurationError("Argument `jobs` must hold at least one job, but is empty")
    own = isinstance(client, str)
    if own:
        client = distributed.Client(client)
    try:
        nthreads = dict(client.nthreads())
        if workers is None:
            workers = sorted(nthreads)
        workers = list(workers)
        missing = [a for a in workers if a not in nthreads]
        if not workers or missing:
            raise ConfigurationError(f"Argument `workers` must name workers of the cluster ({sorted(nthreads)}), but "
                                     f"{'is empty' if not workers else f'holds {missing}'}")
        slots = np.array([nthreads[a] for a in workers], np.int64)
        speeds = np.ones(len(workers)) if speed is None else np.asarray(speed, np.float64)
        if speeds.shape != (len(workers),) or not (np.isfinite(speeds).all() and (speeds > 0).all()):
            raise ConfigurationError(f"Argument `speed` must be ({len(workers)},) finite numbers > 0, but is {speed!r}")
        loop = _Run(jobs, policy, client, workers, slots, speeds)
        loop.run(timeout)
        return loop.execution()
    finally:
        if own:
            client.close()
