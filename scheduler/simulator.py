"""Discrete-event cluster simulator: runs an online policy (or a static :class:`Plan`) on a :class:`Cluster`.

Semantics (one event loop, all policies):

* The loop drives an :class:`~qsn.scheduler.policy.OnlinePolicy`: it reports readiness, completions with
  their measured runtimes, failures and repairs, and after every event asks ``next_dispatch`` what to
  start, checking each decision. The policy never sees a true size; the simulator alone uses them for
  service times.
* A task becomes *ready* when it has arrived and every task it depends on has finished.
* A static plan (:class:`~qsn.scheduler.policy.PlanPolicy`) gives every task a ``worker`` (fixed queue;
  ``-1`` = dispatched online from one global queue) and a ``priority`` (lower runs first; ties by index,
  i.e. arrival). When a slot frees, the worker starts the best ready task of its own queue that fits
  (head of line: a head that does not fit blocks the queue, no backfilling), then the global queue's head
  goes to the free eligible worker of highest effective speed, or waits.
* A worker runs up to ``slots`` tasks at once whose memory sums to at most its ``memory`` and CPU cores to at
  most its ``cpu``, and whose GPU demands it can place on its ``gpus`` (whole GPUs, or a share of one GPU,
  best fit: :mod:`qsn.scheduler.gpus`). A task runs to
  completion unless the policy preempts it (``next_preemption``, asked whenever ``next_dispatch`` has nothing
  more to start): preempt-resume, the task keeps the work it has done and later runs only the rest, on any
  worker, at that worker's speed; ``start`` stays the first start of the attempt.
* A policy may ask for a wake-up at a time (``View.wake_at``): an event with no change of state that calls
  ``on_timer`` and then asks the policy again (how MLFQ's quanta expire).
* Dependent quantum tasks (both with ``qubits > 0``) placed on different nodes need a link with
  ``cluster.fidelity >= cluster.min_fidelity``; a plan that breaks it is rejected before the run, and the
  online dispatcher never picks such a node.
* Faults: worker ``j`` fails after exponential times of rate ``failure_rate[j]``; its running tasks are
  lost (their work so far counts as busy, ``restarts`` is incremented) and go back to their queue; it
  comes back after ``repair_time[j]``.
* LLM requests produce their first token when prefill completes: ``start + prefill / speed`` (preempted ones
  when the work done first reaches the prefill's).

Speed: the loop is plain Python over events with ``heapq`` (a few microseconds per event, about 1 s
for 100,000 tasks); the service-time arithmetic is vectorised per task over workers.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple, Union

import numpy as np

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.scheduler.gpus import GpuPool
from qsn.scheduler.policy import OnlinePolicy, PlanPolicy, View, observe
from qsn.scheduler.service import prefill_seconds
from qsn.scheduler.task import Cluster, Workload

__all__ = ["Plan", "Schedule", "simulate", "check_plan", "repair_links"]

ONLINE = -1


class Plan(NamedTuple):
    """A policy's decision: ``worker`` (N,) int64 (``-1`` = online dispatch), ``priority`` (N,) float64 (lower first)."""

    worker: np.ndarray
    priority: np.ndarray


class Schedule(NamedTuple):
    """What happened. Times in s; per task (N,), per worker (W,)."""

    start: np.ndarray  # (N,) start of the attempt that finished
    finish: np.ndarray  # (N,)
    worker: np.ndarray  # (N,) int64, worker that finished the task
    first_token: np.ndarray  # (N,) time of the first output token (LLM workloads), else = finish
    restarts: np.ndarray  # (N,) int64, attempts lost to failures
    busy: np.ndarray  # (W,) slot-seconds of service, lost attempts included
    lost: np.ndarray  # (W,) slot-seconds lost to failures
    peak_running: np.ndarray  # (W,) int64, most tasks running at once
    peak_memory: np.ndarray  # (W,) GiB, most memory in use at once
    failures: np.ndarray  # (W,) int64, failures that happened during the run
    preemptions: np.ndarray | None = None  # (N,) int64, times each task was preempted (None: built without)


def check_plan(workload: Workload, cluster: Cluster, plan: Plan) -> Plan:
    """Validate ``plan`` against the workload and cluster; returns it with canonical dtypes.

    Raises :class:`~qsn.errors.ConfigurationError` naming the task when a task is placed on a worker that
    can never run it, has no eligible worker at all, or a dependent quantum pair sits on an unlinked pair.
    """
    return _check(workload, cluster, plan)[0]


def _check(workload: Workload, cluster: Cluster, plan: Plan) -> tuple[Plan, np.ndarray]:
    """:func:`check_plan`, also returning the (N, W) eligibility it computed (the event loop needs it too)."""
    n = workload.n
    worker = np.asarray(plan.worker)
    priority = np.asarray(plan.priority, np.float64)
    if worker.shape != (n,) or priority.shape != (n,):
        raise InvalidInputError(f"Plan arrays must have shape ({n},), but have {worker.shape} and {priority.shape}")
    if not np.issubdtype(worker.dtype, np.integer):
        raise InvalidInputError(f"Argument `plan.worker` must be integer, but has dtype {worker.dtype}")
    worker = worker.astype(np.int64)
    if np.any((worker < ONLINE) | (worker >= cluster.n)):
        i = int(np.flatnonzero((worker < ONLINE) | (worker >= cluster.n))[0])
        raise InvalidInputError(f"plan.worker[{i}] = {worker[i]} is not a worker in [0, {cluster.n}) or -1 (online)")
    if np.isnan(priority).any():
        raise InvalidInputError(f"plan.priority[{int(np.flatnonzero(np.isnan(priority))[0])}] is NaN")
    ok = cluster.eligible(workload)
    none = ~ok.any(axis=1)
    if none.any():
        i = int(np.flatnonzero(none)[0])
        raise ConfigurationError(
            f"Task {i} (memory {workload.memory[i]} GiB, qubits {workload.qubits[i]}) fits no worker: the largest "
            f"memory is {cluster.memory.max()} GiB and the most qubits {cluster.qubits.max()}"
        )
    fixed = worker >= 0
    bad = fixed & ~ok[np.arange(n), np.maximum(worker, 0)]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ConfigurationError(f"plan.worker[{i}] = {worker[i]} cannot run task {i} (memory, qubits or coherence)")
    for a, b in _quantum_links_broken(workload, cluster, worker):
        raise ConfigurationError(
            f"Dependent quantum tasks {a} -> {b} are on workers {worker[a]} and {worker[b]} whose link fidelity "
            f"{cluster.fidelity[worker[a], worker[b]]:.3f} < min_fidelity {cluster.min_fidelity}"
        )
    edges = _quantum_edges(workload, cluster)
    linked = _linked(cluster) if edges.size else None
    for a, b in edges:
        # wherever the parent may run, the child needs a linked node it fits (or the parent's own node)
        parents = [worker[a]] if worker[a] >= 0 else np.flatnonzero(ok[a])
        children = ok[b] if worker[b] < 0 else (np.arange(cluster.n) == worker[b])
        reach = linked[parents] & children
        if not reach.any(axis=1).all():
            j = int(np.asarray(parents)[~reach.any(axis=1)][0])
            raise ConfigurationError(
                f"Dependent quantum task {b} cannot run anywhere linked to worker {j}, where its parent {a} may run "
                f"(fidelity >= {cluster.min_fidelity} needed)"
            )
    return Plan(worker, priority), ok


def _quantum_edges(workload: Workload, cluster: Cluster) -> np.ndarray:
    if cluster.fidelity is None or not workload.edges.size:
        return np.zeros((0, 2), np.int64)
    a, b = workload.edges.T
    return workload.edges[(workload.qubits[a] > 0) & (workload.qubits[b] > 0)]


def _linked(cluster: Cluster) -> np.ndarray:
    """(W, W) bool: a quantum state may move from node i to node j (same node, or fidelity >= min_fidelity)."""
    return (cluster.fidelity >= cluster.min_fidelity) | np.eye(cluster.n, dtype=bool)


def repair_links(workload: Workload, cluster: Cluster, worker: np.ndarray) -> np.ndarray:
    """Move each quantum child whose link to a quantum parent is too weak to the first eligible node linked to
    all its quantum parents' nodes (parents first, in topological order; left alone when no node qualifies,
    so :func:`check_plan` then names the pair). Online (-1) entries are left alone. (N,) → (N,)."""
    worker = np.asarray(worker, np.int64).copy()
    edges = _quantum_edges(workload, cluster)
    if not edges.size:
        return worker
    rank = np.empty(workload.n, np.int64)
    rank[workload.topological_order()] = np.arange(workload.n)
    linked = _linked(cluster)
    ok = cluster.eligible(workload)
    parents: dict[int, list[int]] = {}
    for a, b in edges.tolist():
        parents.setdefault(b, []).append(a)
    for b in sorted(parents, key=lambda t: rank[t]):
        if worker[b] < 0 or any(worker[a] < 0 for a in parents[b]):
            continue
        allowed = ok[b].copy()
        for a in parents[b]:
            allowed &= linked[worker[a]]
        if not allowed[worker[b]]:
            cand = np.flatnonzero(allowed)
            if cand.size:
                worker[b] = int(cand[0])
    return worker


def _quantum_links_broken(workload: Workload, cluster: Cluster, worker: np.ndarray) -> list[tuple[int, int]]:
    edges = _quantum_edges(workload, cluster)
    if not edges.size:
        return []
    wa, wb = worker[edges[:, 0]], worker[edges[:, 1]]
    broken = (wa >= 0) & (wb >= 0) & ~_linked(cluster)[np.maximum(wa, 0), np.maximum(wb, 0)]
    return [(int(x), int(y)) for x, y in edges[broken]]


def simulate(workload: Workload, cluster: Cluster, policy: Union[Plan, OnlinePolicy], *, faults: bool = True,
             seed: int = 0) -> Schedule:
    """Run ``policy`` and return the :class:`Schedule` (every task served exactly once).

    Args:
        workload: N tasks; true sizes ``work`` set the service times (see :mod:`qsn.scheduler.service`) and
            reach the policy only as measured runtimes of finished tasks.
        cluster: W workers.
        policy: an :class:`~qsn.scheduler.policy.OnlinePolicy` (bound afresh for this run), or a static
            :class:`Plan` (checked by :func:`check_plan`, then run as a :class:`~qsn.scheduler.policy.PlanPolicy`).
        faults: inject worker failures at ``cluster.failure_rate`` (no effect where the rates are 0).
        seed: seeds the failure times (NumPy ``default_rng``).

    Raises :class:`~qsn.errors.ConfigurationError` when the policy starts a task that is not ready or on a worker
    that cannot take it at that moment, naming both.

    Example:
        >>> from qsn.scheduler import Task, Worker, Workload, Cluster
        >>> from qsn.scheduler.policy import Fifo
        >>> wl = Workload.from_tasks([Task(arrival=0.0, work=2.0), Task(arrival=0.5, work=1.0)])
        >>> simulate(wl, Cluster.from_workers([Worker()]), Fifo()).finish.tolist()
        [2.0, 3.0]
    """
    if isinstance(policy, Plan):
        plan, eligible = _check(workload, cluster, policy)
        policy = PlanPolicy(plan)
    elif isinstance(policy, OnlinePolicy):
        eligible = cluster.eligible(workload)
        none = ~eligible.any(axis=1)
        if none.any():
            _check(workload, cluster, Plan(np.full(workload.n, ONLINE), np.zeros(workload.n)))  # names the task
    else:
        raise ConfigurationError(f"Argument `policy` must be a Plan or an OnlinePolicy, but is {type(policy).__name__}")
    return _EventLoop(workload, cluster, policy, faults, seed, eligible).run()


_ARRIVE, _COMPLETE, _FAIL, _REPAIR, _WAKE = 0, 1, 2, 3, 4
_WAITING, _READY, _RUNNING, _DONE = 0, 1, 2, 3


class _EventLoop:
    def __init__(self, wl: Workload, cl: Cluster, policy: OnlinePolicy, faults: bool, seed: int,
                 eligible: np.ndarray):
        self.wl, self.cl = wl, cl
        self.ok = eligible
        self.linked = _linked(cl) if cl.fidelity is not None else None
        n, w = wl.n, cl.n
        self.policy = policy
        self.view = View(self)
        self.speed = cl.speed_table(int(wl.task_type.max()) + 1)  # (types, W)
        self.work = wl.work
        self.prefill = prefill_seconds(wl.prompt_tokens) if wl.llm else None
        self.deps_left = np.bincount(wl.edges[:, 1], minlength=n) if wl.edges.size else np.zeros(n, np.int64)
        self.children: list[list[int]] = [[] for _ in range(n)]
        self.parents: list[list[int]] = [[] for _ in range(n)]
        for a, b in wl.edges.tolist():
            self.children[a].append(b)
            self.parents[b].append(a)
        self.rng = np.random.default_rng(seed)
        self.faults = faults and bool(np.any(cl.failure_rate > 0))
        # worker state
        self.up = np.ones(w, bool)
        self.free = cl.slots.astype(np.int64).copy()
        self.mem = np.zeros(w)
        self.cpu = np.zeros(w)  # CPU cores held by running tasks
        self.gpus = GpuPool(cl.gpus) if np.any(wl.gpu > 0) else None
        self.held: dict[int, np.ndarray] = {}  # running task -> the GPUs it holds
        self.running: list[dict[int, float]] = [dict() for _ in range(w)]  # task -> start
        self.state = np.full(n, _WAITING, np.int8)
        self.attempt = np.zeros(n, np.int64)
        self.remaining = np.array(wl.work, np.float64)  # work units left of the current attempt
        self.attained = np.zeros(n)  # work units done in the current attempt before its running segment
        # results
        self.start = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.where = np.full(n, -1, np.int64)
        self.first = np.full(n, np.nan)
        self.restarts = np.zeros(n, np.int64)
        self.busy = np.zeros(w)
        self.lost = np.zeros(w)
        self.peak_running = np.zeros(w, np.int64)
        self.peak_memory = np.zeros(w)
        self.failures = np.zeros(w, np.int64)
        self.preemptions = np.zeros(n, np.int64)
        self.events: list = []
        self.seq = 0
        self.version = 0  # bumped whenever a worker's state changes (View.startable memoises on it)
        self.done = 0
        self.now = 0.0

    def push(self, time: float, kind: int, a: int, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (time, kind, self.seq, a, b))

    def duration(self, t: int, w) -> np.ndarray | float:
        return self.remaining[t] / self.speed[self.wl.task_type[t], w]

    def wake_at(self, time: float) -> None:
        if not time >= self.now:
            raise ConfigurationError(f"Policy {self.policy.name!r} asked to wake at t = {time!r} s, before now "
                                     f"(t = {self.now:g} s)")
        self.push(time, _WAKE, 0)

    def run(self) -> Schedule:
        wl, cl = self.wl, self.cl
        self.policy.bind(observe(wl, cl, self.ok), cl)
        if self.faults:
            for j in np.flatnonzero(cl.failure_rate > 0):
                self.push(self.rng.exponential(1.0 / cl.failure_rate[j]), _FAIL, int(j))
        arrivals = wl.arrival
        i, n = 0, wl.n
        while self.done < n:
            next_event = self.events[0][0] if self.events else np.inf
            if i < n and arrivals[i] <= next_event:
                self.now = float(arrivals[i])
                self.arrive(i)
                i += 1
            else:
                if not self.events:
                    waiting = np.flatnonzero(np.isnan(self.finish))
                    raise ConfigurationError(f"Tasks {waiting[:8].tolist()} can never start (deadlock in the plan, "
                                             f"or policy {self.policy.name!r} never dispatches them)")
                time, kind, _, a, b = heapq.heappop(self.events)
                self.now = time
                if kind == _COMPLETE:
                    if b != self.attempt[a]:
                        continue
                    self.complete(a)
                elif kind == _FAIL:
                    self.fail(a)
                elif kind == _REPAIR:
                    self.repair(a)
                elif kind == _WAKE:
                    self.policy.on_timer(self.now, self.view)
            self.dispatch()
        return Schedule(self.start, self.finish, self.where, self.first, self.restarts, self.busy, self.lost,
                        self.peak_running, self.peak_memory, self.failures, self.preemptions)

    # --- task flow ---------------------------------------------------------------------------------
    def arrive(self, t: int) -> None:
        if self.deps_left[t] == 0:
            self.ready(t)

    def ready(self, t: int) -> None:
        self.state[t] = _READY
        self.policy.on_arrival(t, self.now, self.view)

    def dispatch(self) -> None:
        policy, view = self.policy, self.view
        while True:
            decision = policy.next_dispatch(self.now, view)
            if decision is None:
                stop = policy.next_preemption(self.now, view)
                if stop is None:
                    return
                self.preempt(int(stop[0]), int(stop[1]))
                continue
            t, w = int(decision[0]), int(decision[1])
            if not 0 <= t < self.wl.n or not 0 <= w < self.cl.n:
                raise ConfigurationError(f"Policy {policy.name!r} dispatched task {t} to worker {w}: no such task "
                                         f"in [0, {self.wl.n}) or worker in [0, {self.cl.n})")
            if self.state[t] != _READY:
                raise ConfigurationError(f"Policy {policy.name!r} dispatched task {t} at t = {self.now:g} s, but it "
                                         f"is {('waiting for arrival or parents', '', 'running', 'finished')[self.state[t]]}")
            if not view.can_start(t, w):
                raise ConfigurationError(f"Policy {policy.name!r} dispatched task {t} to worker {w} at t = "
                                         f"{self.now:g} s, which cannot take it now (down, no free slot, memory, "
                                         "eligibility or quantum link)")
            self.begin(t, w)

    def preempt(self, t: int, w: int) -> None:
        if not (0 <= w < self.cl.n and 0 <= t < self.wl.n and t in self.running[w]):
            raise ConfigurationError(f"Policy {self.policy.name!r} preempted task {t} on worker {w} at t = "
                                     f"{self.now:g} s, but that task is not running there")
        self.version += 1
        started = self.running[w].pop(t)
        eff = float(self.speed[self.wl.task_type[t], w])
        before, done = self.attained[t], self.attained[t] + (self.now - started) * eff
        if self.prefill is not None and before < self.prefill[t] <= done:
            self.first[t] = started + (self.prefill[t] - before) / eff
        self.attained[t] = done
        self.remaining[t] = max(self.work[t] - done, 0.0)
        self.busy[w] += self.now - started
        self.release(t, w)
        self.attempt[t] += 1  # its completion event is void
        self.preemptions[t] += 1
        self.state[t] = _READY

    def begin(self, t: int, w: int) -> None:
        self.version += 1
        d = float(self.duration(t, w))
        self.state[t] = _RUNNING
        self.free[w] -= 1
        self.mem[w] += self.wl.memory[t]
        self.cpu[w] += self.wl.cpu[t]
        if self.gpus is not None and self.wl.gpu[t] > 0:
            self.held[t] = self.gpus.take(w, float(self.wl.gpu[t]))
        self.running[w][t] = self.now
        self.peak_running[w] = max(self.peak_running[w], len(self.running[w]))
        self.peak_memory[w] = max(self.peak_memory[w], self.mem[w])
        if np.isnan(self.start[t]):  # a resumed task keeps the first start of its attempt
            self.start[t] = self.now
        self.where[t] = w
        self.push(self.now + d, _COMPLETE, t, int(self.attempt[t]))

    def release(self, t: int, w: int) -> None:
        """Give back the slot, memory, CPU and GPUs that task ``t`` held on worker ``w``."""
        self.free[w] += 1
        self.mem[w] -= self.wl.memory[t]
        self.cpu[w] -= self.wl.cpu[t]
        if t in self.held:
            self.gpus.release(w, self.held.pop(t), float(self.wl.gpu[t]))

    def complete(self, t: int) -> None:
        self.version += 1
        w = self.where[t]
        started = self.running[w].pop(t)
        self.state[t] = _DONE
        self.release(t, w)
        self.busy[w] += self.now - started
        self.finish[t] = self.now
        eff = self.speed[self.wl.task_type[t], w]
        if self.prefill is None:
            self.first[t] = self.now
        elif self.attained[t] < self.prefill[t]:  # else a preempted segment already produced it
            self.first[t] = started + (self.prefill[t] - self.attained[t]) / eff
        self.done += 1
        self.policy.on_completion(t, int(w), self.now - started, self.now)
        for c in self.children[t]:
            self.deps_left[c] -= 1
            if self.deps_left[c] == 0 and self.wl.arrival[c] <= self.now:
                self.ready(c)

    # --- faults ------------------------------------------------------------------------------------
    def fail(self, w: int) -> None:
        self.version += 1
        self.failures[w] += 1
        self.up[w] = False
        self.policy.on_worker(w, False, self.now)
        for t, started in list(self.running[w].items()):
            self.busy[w] += self.now - started
            self.lost[w] += self.now - started
            self.restarts[t] += 1
            self.attempt[t] += 1
            self.running[w].pop(t)
            self.release(t, w)
            self.start[t] = np.nan
            self.where[t] = -1
            self.remaining[t], self.attained[t], self.first[t] = self.work[t], 0.0, np.nan
            self.state[t] = _READY
            self.policy.on_interrupt(t, w, self.now, self.view)
        self.push(self.now + self.cl.repair_time[w], _REPAIR, w)

    def repair(self, w: int) -> None:
        self.version += 1
        self.up[w] = True
        if self.done < self.wl.n:
            self.push(self.now + self.rng.exponential(1.0 / self.cl.failure_rate[w]), _FAIL, w)
        self.policy.on_worker(w, True, self.now)
