"""The online policy interface the simulator runs: a policy sees tasks arrive and finish, and says what to start.

A policy is an :class:`OnlinePolicy`. The simulator (:func:`~qsn.scheduler.simulator.simulate`) calls, in
event order:

* ``bind(tasks, cluster)`` once, with :class:`Observed` — what may be known of the tasks (arrival, the
  observed feature columns, the user's estimate, prompt tokens, eligibility and effective speeds), never
  their true sizes;
* ``on_arrival(task, now, view)`` when a task becomes ready (it has arrived and its parents have finished);
* ``on_completion(task, worker, runtime, now)`` when it finishes, with its *measured* runtime (seconds of
  the attempt that finished): the only way a size reaches a policy, and so its predictors;
* ``on_interrupt(task, worker, now, view)`` when a worker failure sends a running task back;
* ``on_worker(worker, up, now)`` when a worker fails (``up=False``) or is repaired;
* ``on_timer(now, view)`` at a time the policy asked for with :meth:`View.wake_at` (quantum expiries);
* ``next_dispatch(now, view)`` after every event, repeatedly until it returns ``None``: a ``(task,
  worker)`` to start now. The simulator checks each decision (the task ready, the worker able to take it
  now: :meth:`View.can_start`) and raises :class:`~qsn.errors.ConfigurationError` naming the task and
  worker otherwise;
* ``next_preemption(now, view)`` when ``next_dispatch`` has nothing more: a running ``(task, worker)`` to
  stop now (preempt-resume: the task keeps the work it has done and is ready again; no callback follows,
  the policy made the decision), then ``next_dispatch`` again; until it returns ``None``. Policies that never
  preempt keep the default (``None``); :mod:`qsn.scheduler.preemptive` has SRPT and MLFQ.

The :class:`View` is what is observable at that instant: free slots, memory in use, which workers are up,
which tasks are running or finished. Policies here:

* :class:`GlobalQueue` — one queue, lowest key first, the head to the free eligible worker of highest
  effective speed (ties: lowest index); :class:`Fifo` keys by arrival, :class:`ShortestFirst` by a
  :class:`~qsn.scheduler.predictors.SizePredictor`'s size with optional linear aging;
* :class:`PlanPolicy` — a static :class:`~qsn.scheduler.simulator.Plan` from a batch planner (annealer,
  QAOA, CP-SAT, list scheduling) behind the same interface: fixed per-worker queues (head of line, no
  backfilling) and the plan's online tasks in a :class:`GlobalQueue` ordered by the plan's priority.

Example:
    >>> from qsn.scheduler import simulate, workloads
    >>> from qsn.scheduler.policy import ShortestFirst
    >>> from qsn.scheduler.predictors import Estimate
    >>> wl, cl = workloads.interactive(200, 4, seed=0)
    >>> sched = simulate(wl, cl, ShortestFirst(Estimate(), aging=0.5))
    >>> bool((sched.finish >= wl.arrival).all())
    True
"""

from __future__ import annotations

import abc
import heapq
import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from qsn.errors import ConfigurationError
from qsn.scheduler.service import speed_matrix
from qsn.scheduler.task import Cluster, Workload

if TYPE_CHECKING:
    from qsn.scheduler.predictors import SizePredictor
    from qsn.scheduler.simulator import Plan

__all__ = ["Observed", "observe", "View", "OnlinePolicy", "GlobalQueue", "Fifo", "ShortestFirst", "PlanPolicy"]


class Observed(NamedTuple):
    """What a policy may know of N tasks on W workers; no true size (``work``, ``output_tokens``) is here."""

    arrival: np.ndarray  # (N,) float64, s
    features: np.ndarray  # (N, F) float64, Workload.observed() (columns OBSERVED_FEATURES, NaN = missing)
    estimate: np.ndarray  # (N,) float64, the user's estimate of the work (NaN = none)
    prompt_tokens: np.ndarray  # (N,) int64
    speed: np.ndarray  # (N, W) float64, effective speed of each worker for each task (speed · affinity)
    eligible: np.ndarray  # (N, W) bool, workers that can ever run each task (memory, qubits, coherence)
    llm: bool  # LLM requests (service from the prefill/decode model)

    @property
    def n(self) -> int:
        return int(self.arrival.shape[0])


def observe(workload: Workload, cluster: Cluster, eligible: np.ndarray | None = None) -> Observed:
    """The :class:`Observed` view of ``workload`` on ``cluster`` (``eligible`` (N, W) if already computed).

    Eligibility includes the coherence limit of quantum tasks, which compares the task's duration with the
    node's coherence time: it stands for the circuit depth a user declares at submission.
    """
    ok = cluster.eligible(workload) if eligible is None else eligible
    return Observed(workload.arrival, workload.observed(), workload.estimate, workload.prompt_tokens,
                    speed_matrix(workload, cluster), ok, workload.llm)


class View:
    """The cluster as observable during a run (read-only arrays; valid only inside the callback that got it)."""

    def __init__(self, loop) -> None:
        self._loop = loop
        self._memo: tuple[int, int, np.ndarray | None] = (-1, -1, None)  # (loop.version, task, startable)

    @property
    def free(self) -> np.ndarray:
        """(W,) int64 free slots (of workers that are up or down)."""
        return self._loop.free

    @property
    def up(self) -> np.ndarray:
        """(W,) bool, workers not failed."""
        return self._loop.up

    @property
    def memory_used(self) -> np.ndarray:
        """(W,) float64 GiB held by running tasks."""
        return self._loop.mem

    @property
    def cpu_used(self) -> np.ndarray:
        """(W,) float64 CPU cores held by running tasks."""
        return self._loop.cpu

    @property
    def running(self) -> list[dict[int, float]]:
        """Per worker, running task → start time (s)."""
        return self._loop.running

    @property
    def finished(self) -> int:
        """Tasks finished so far."""
        return self._loop.done

    def startable(self, task: int) -> np.ndarray:
        """(W,) bool: workers that can start ``task`` now — up, a free slot, its memory, CPU cores and GPUs fit
        beside what runs, eligible, and linked (fidelity) to the nodes of its finished quantum parents."""
        lp = self._loop
        version, t, ok = self._memo
        if version == lp.version and t == task:  # the simulator checks the decision the policy just computed
            return ok
        ok = lp.up & (lp.free > 0) & (lp.mem + lp.wl.memory[task] <= lp.cl.memory + 1e-9) & lp.ok[task]
        if lp.wl.cpu[task] > 0:
            ok &= lp.cpu + lp.wl.cpu[task] <= lp.cl.cpu + 1e-9
        if lp.gpus is not None and lp.wl.gpu[task] > 0:
            ok &= lp.gpus.fits(float(lp.wl.gpu[task]))
        if lp.linked is not None and lp.wl.qubits[task] > 0:
            for p in lp.parents[task]:
                if lp.wl.qubits[p] > 0:
                    ok &= lp.linked[lp.where[p]]
        self._memo = (lp.version, task, ok)
        return ok

    def could_start(self, task: int) -> np.ndarray:
        """(W,) bool: workers that could start ``task`` now if they had a free slot and room for its memory — up,
        eligible, and linked to its finished quantum parents' nodes (what a preemption must keep)."""
        lp = self._loop
        ok = lp.up & lp.ok[task]
        if lp.linked is not None and lp.wl.qubits[task] > 0:
            for p in lp.parents[task]:
                if lp.wl.qubits[p] > 0:
                    ok = ok & lp.linked[lp.where[p]]
        return ok

    def can_start(self, task: int, worker: int) -> bool:
        """Whether ``worker`` can start ``task`` now (:meth:`startable` at one worker)."""
        return bool(self.startable(task)[worker])

    def wake_at(self, time: float) -> None:
        """Ask for an ``on_timer`` call at ``time`` (s, >= now); the policy then decides again."""
        self._loop.wake_at(float(time))


class OnlinePolicy(abc.ABC):
    """A scheduling policy run event by event (see the module docstring). One object serves one run at a time:
    :meth:`bind` resets it."""

    name: str = "policy"

    def bind(self, tasks: Observed, cluster: Cluster) -> None:
        """Called once before the run. Subclasses that override it call ``super().bind``."""
        self.tasks, self.cluster = tasks, cluster

    @abc.abstractmethod
    def on_arrival(self, task: int, now: float, view: View) -> None:
        """``task`` is ready to run (arrived, every parent finished)."""

    def on_completion(self, task: int, worker: int, runtime: float, now: float) -> None:
        """``task`` finished on ``worker`` after ``runtime`` s of service (measured)."""

    def on_interrupt(self, task: int, worker: int, now: float, view: View) -> None:
        """``worker`` failed while running ``task``; the task is ready again (default: as a new arrival)."""
        self.on_arrival(task, now, view)

    def on_worker(self, worker: int, up: bool, now: float) -> None:
        """``worker`` failed (``up=False``) or came back."""

    def on_timer(self, now: float, view: View) -> None:
        """A time asked for with :meth:`View.wake_at` has come."""

    @abc.abstractmethod
    def next_dispatch(self, now: float, view: View) -> tuple[int, int] | None:
        """A ``(task, worker)`` to start now, or ``None``; called until it returns ``None``."""

    def next_preemption(self, now: float, view: View) -> tuple[int, int] | None:
        """A running ``(task, worker)`` to stop now (preempt-resume), or ``None`` (the default: never preempt)."""
        return None

    @property
    def preemptive(self) -> bool:
        """Whether this policy may preempt (it overrides :meth:`next_preemption`)."""
        return type(self).next_preemption is not OnlinePolicy.next_preemption


def check_aging(aging: float) -> float:
    """``aging`` as a float, or :class:`~qsn.errors.ConfigurationError` naming it unless finite and >= 0 (s/s)."""
    if isinstance(aging, bool) or not (isinstance(aging, (int, float, np.floating, np.integer)) and np.isfinite(aging)
                                       and aging >= 0):
        raise ConfigurationError(f"Argument `aging` must be a finite number >= 0, but is {aging!r}")
    return float(aging)


def fastest_startable(view: View, tasks: Observed, task: int) -> int | None:
    """The worker that can start ``task`` now with the highest effective speed (lowest index on ties), or None."""
    ok = view.startable(task)
    if not ok.any():
        return None
    cand = np.flatnonzero(ok)
    return int(cand[np.argmax(tasks.speed[task, cand])])


class GlobalQueue(OnlinePolicy):
    """One global queue: lowest :meth:`key` first (ties by task index); the head goes to the free eligible
    worker of highest effective speed, or waits (head of line). A task sent back by a failure keeps its key."""

    name = "global_queue"

    def bind(self, tasks: Observed, cluster: Cluster) -> None:
        super().bind(tasks, cluster)
        self._heap: list[tuple[float, int]] = []
        self._key = np.full(tasks.n, np.nan)

    @abc.abstractmethod
    def key(self, task: int, now: float) -> float:
        """The queue key of ``task``, fixed when it becomes ready at ``now`` (lower runs first)."""

    def on_arrival(self, task: int, now: float, view: View) -> None:
        self._key[task] = k = float(self.key(task, now))
        heapq.heappush(self._heap, (k, task))

    def on_interrupt(self, task: int, worker: int, now: float, view: View) -> None:
        heapq.heappush(self._heap, (float(self._key[task]), task))

    def next_dispatch(self, now: float, view: View) -> tuple[int, int] | None:
        if not self._heap:
            return None
        task = self._heap[0][1]
        worker = fastest_startable(view, self.tasks, task)
        if worker is None:
            return None
        heapq.heappop(self._heap)
        return task, worker


class Fifo(GlobalQueue):
    """First come, first served: the key is the arrival time."""

    name = "fifo"

    def key(self, task: int, now: float) -> float:
        return float(self.tasks.arrival[task])


class ShortestFirst(GlobalQueue):
    """Shortest predicted job first, with linear aging against starvation.

    The key of a task ready at ``r`` is its predicted service time on its fastest eligible worker, ``ŝ =
    exp(size.predict(task, r)) / max_j speed[task, j]``, less ``aging · (now − r)`` for the time it has waited:
    ordering by ``ŝ − aging (now − r)`` at any instant equals ordering by the fixed ``ŝ + aging · r``, which
    is the key. ``aging = 0`` is pure SJF; as ``aging → ∞`` the order tends to FIFO. The predictor learns
    from each completion's measured runtime × the worker's effective speed (measured work).

    Args:
        size: a :class:`~qsn.scheduler.predictors.SizePredictor` (log work, predicted at readiness).
        aging: seconds of predicted service forgiven per second waited, >= 0.
    """

    def __init__(self, size: "SizePredictor", *, aging: float = 0.0) -> None:
        self.size, self.aging = size, check_aging(aging)
        self.name = f"sjf[{size.name}]" + (f"+aging {self.aging:g}" if self.aging else "")

    def bind(self, tasks: Observed, cluster: Cluster) -> None:
        super().bind(tasks, cluster)
        self.size.bind(tasks)
        self._fastest = np.max(np.where(tasks.eligible, tasks.speed, 0.0), axis=1)

    def key(self, task: int, now: float) -> float:
        return math.exp(self.size.predict(task, now)) / self._fastest[task] + self.aging * now

    def on_completion(self, task: int, worker: int, runtime: float, now: float) -> None:
        work = runtime * float(self.tasks.speed[task, worker])
        self.size.learn(task, math.log(max(work, 1e-9)), now)


class PlanPolicy(OnlinePolicy):
    """A static :class:`~qsn.scheduler.simulator.Plan` run online: each fixed task waits in its worker's queue
    (lowest priority first, ties by index; a head that cannot start blocks the queue), each ``-1`` task in one
    global queue by priority, served after the fixed queues. The plan is checked by
    :func:`~qsn.scheduler.simulator.check_plan` before the run."""

    name = "plan"

    def __init__(self, plan: "Plan") -> None:
        self.plan = plan
        self._global = _Keyed(plan.priority)

    def bind(self, tasks: Observed, cluster: Cluster) -> None:
        super().bind(tasks, cluster)
        self._global.bind(tasks, cluster)
        self._queues: list[list[tuple[float, int]]] = [[] for _ in range(cluster.n)]
        self._touched: list[int] = []

    def _push(self, task: int) -> None:
        w = int(self.plan.worker[task])
        heapq.heappush(self._queues[w], (float(self.plan.priority[task]), task))
        self._touched.append(w)

    def on_arrival(self, task: int, now: float, view: View) -> None:
        if self.plan.worker[task] >= 0:
            self._push(task)
        else:
            self._global.on_arrival(task, now, view)

    def on_interrupt(self, task: int, worker: int, now: float, view: View) -> None:
        if self.plan.worker[task] >= 0:
            self._push(task)
        else:
            self._global.on_interrupt(task, worker, now, view)

    def on_completion(self, task: int, worker: int, runtime: float, now: float) -> None:
        self._touched.append(worker)

    def on_worker(self, worker: int, up: bool, now: float) -> None:
        if up:
            self._touched.append(worker)

    def next_dispatch(self, now: float, view: View) -> tuple[int, int] | None:
        while self._touched:
            w = self._touched[-1]
            q = self._queues[w]
            if q and view.can_start(q[0][1], w):
                return heapq.heappop(q)[1], w
            self._touched.pop()
        return self._global.next_dispatch(now, view)


class _Keyed(GlobalQueue):
    """The global queue of a plan's online tasks: the plan's priority is the key."""

    def __init__(self, priority: np.ndarray) -> None:
        self.priority = priority

    def key(self, task: int, now: float) -> float:
        return float(self.priority[task])
