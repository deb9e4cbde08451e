"""Preemptive online policies: shortest remaining (predicted) processing time first, and a multi-level feedback queue.

Both keep one priority queue of waiting tasks and compare its head with the running tasks: when nothing more can
start (``next_dispatch`` returns ``None``), the running task with the largest key on a worker the head could take
is preempted if its key is *strictly* larger than the head's (``next_preemption``; preempt-resume, see
:mod:`qsn.scheduler.simulator`). Lower keys run first; ties keep the running task and, among waiting tasks, the
one that entered the queue first. The head goes to the free eligible worker of highest effective speed.

* :class:`SRPT` — key = predicted *remaining* service on the task's fastest eligible worker,
  ``max(ŝ − done, 0) / max_j speed[task, j]``, with ``ŝ`` the predictor's work at readiness and ``done`` the
  work it has received (observable: the policy knows when it ran where); ``aging · r`` added (``r`` = the time
  it became ready). On the true sizes (:class:`~qsn.scheduler.predictors.Oracle`) this is exact SRPT — an
  ORACLE bound; on a causal predictor (estimates, binned means …) a policy. A task that outlives its
  prediction has key ``aging · r`` and is not preempted by fresh tasks until it finishes.
* :class:`MLFQ` — size-agnostic: a task enters level 0 and, after ``quantum · 2^k`` s of service at level
  ``k``, is demoted to ``k + 1`` (a wake-up at the expiry, :meth:`~qsn.scheduler.policy.View.wake_at`); the
  last level has no quantum. Key = ``quantum · (2^k − 1)`` (the service at which level ``k`` begins) ``+
  aging · r``: with ``aging = 0`` strict level priority, FIFO within a level by time of entry, a fresh task
  preempting any task at a lower level. ``skip_join`` (LLM requests, FastServe's rule): a request enters at
  the first level whose quantum covers its prefill on its fastest worker (known from the prompt length).

Aging works as in :class:`~qsn.scheduler.policy.ShortestFirst`: ``key + aging · r`` orders tasks as ``key −
aging · (now − r)`` does at any instant, so a task that has waited long enough overtakes fresher, shorter ones.

Example:
    >>> from qsn.scheduler import Task, Worker, Workload, Cluster, simulate
    >>> from qsn.scheduler.predictors import Oracle
    >>> wl = Workload.from_tasks([Task(arrival=0.0, work=10.0), Task(arrival=1.0, work=4.0),
    ...                           Task(arrival=2.0, work=1.0)])
    >>> simulate(wl, Cluster.from_workers([Worker()]), SRPT(Oracle(wl.work))).finish.tolist()
    [15.0, 6.0, 3.0]
"""

from __future__ import annotations

import abc
import heapq
import math
from typing import TYPE_CHECKING

import numpy as np

from qsn.errors import ConfigurationError
from qsn.scheduler.policy import Observed, OnlinePolicy, View, check_aging, fastest_startable
from qsn.scheduler.service import prefill_seconds
from qsn.scheduler.task import OBSERVED_FEATURES, Cluster

if TYPE_CHECKING:
    from qsn.scheduler.predictors import SizePredictor

__all__ = ["PreemptiveQueue", "SRPT", "MLFQ"]

_MEMORY = OBSERVED_FEATURES.index("memory")


class PreemptiveQueue(OnlinePolicy):
    """A waiting queue by :meth:`queued_key` and preemption of the running task of largest :meth:`running_key`
    (see the module docstring). Subclasses define the keys and may keep state in the callbacks (calling
    ``super()``)."""

    def __init__(self, *, aging: float = 0.0) -> None:
        self.aging = check_aging(aging)

    def bind(self, tasks: Observed, cluster: Cluster) -> None:
        super().bind(tasks, cluster)
        self._heap: list[tuple[float, int, int]] = []  # (key, entry sequence, task)
        self._seq = 0
        self._ready_at = np.full(tasks.n, np.nan)  # first readiness, s
        self._running: dict[int, tuple[int, float]] = {}  # task -> (worker, start of its running segment)
        self._fastest = np.max(np.where(tasks.eligible, tasks.speed, 0.0), axis=1)
        self._memory = tasks.features[:, _MEMORY]

    @abc.abstractmethod
    def queued_key(self, task: int, now: float) -> float:
        """Key of a waiting ``task`` (constant while it waits; lower runs first)."""

    @abc.abstractmethod
    def running_key(self, task: int, now: float) -> float:
        """Key of ``task`` running since ``self._running[task][1]`` (non-increasing while it runs, except at
        wake-ups the subclass asked for)."""

    def _enqueue(self, task: int, now: float) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (float(self.queued_key(task, now)), self._seq, task))

    def on_arrival(self, task: int, now: float, view: View) -> None:
        self._ready_at[task] = now
        self._enqueue(task, now)

    def on_completion(self, task: int, worker: int, runtime: float, now: float) -> None:
        del self._running[task]

    def on_interrupt(self, task: int, worker: int, now: float, view: View) -> None:
        del self._running[task]
        self._enqueue(task, now)

    def next_dispatch(self, now: float, view: View) -> tuple[int, int] | None:
        if not self._heap:
            return None
        task = self._heap[0][2]
        worker = fastest_startable(view, self.tasks, task)
        if worker is None:
            return None
        heapq.heappop(self._heap)
        self._running[task] = (worker, now)
        self.started(task, worker, now, view)
        return task, worker

    def started(self, task: int, worker: int, now: float, view: View) -> None:
        """``task`` (re)starts on ``worker`` at ``now``."""

    def stopped(self, task: int, worker: int, since: float, now: float) -> None:
        """The policy preempts ``task``, which ran on ``worker`` from ``since`` to ``now``."""

    def next_preemption(self, now: float, view: View) -> tuple[int, int] | None:
        if not self._heap or not self._running:
            return None
        head_key, _, head = self._heap[0]
        could = view.could_start(head)
        slack = self.cluster.memory + 1e-9 - view.memory_used  # (W,) GiB free beside what runs
        victim, worst = None, head_key
        for task, (worker, _) in self._running.items():
            # stopping `task` frees a slot on `worker`; the head must then fit there
            if could[worker] and self._memory[head] - self._memory[task] <= slack[worker]:
                k = self.running_key(task, now)
                if k > worst + 1e-12 * max(1.0, abs(worst)):
                    victim, worst = task, k
        if victim is None:
            return None
        worker, since = self._running.pop(victim)
        self.stopped(victim, worker, since, now)
        self._enqueue(victim, now)
        return victim, worker


class SRPT(PreemptiveQueue):
    """Shortest remaining predicted processing time first, preemptive (see the module docstring).

    Args:
        size: a :class:`~qsn.scheduler.predictors.SizePredictor` (log work at readiness; it learns each finished
            task's measured work, the sum over its segments of seconds × the worker's effective speed).
            :class:`~qsn.scheduler.predictors.Oracle` makes it the ORACLE SRPT bound.
        aging: seconds of key forgiven per second since readiness, >= 0.

    Example:
        >>> from qsn.scheduler import workloads, simulate
        >>> from qsn.scheduler.predictors import Estimate
        >>> wl, cl = workloads.batch(200, 4, seed=0)
        >>> int(simulate(wl, cl, SRPT(Estimate())).preemptions.sum()) > 0
        True
    """

    def __init__(self, size: "SizePredictor", *, aging: float = 0.0) -> None:
        super().__init__(aging=aging)
        self.size = size
        self.name = f"srpt[{size.name}]" + (f"+aging {self.aging:g}" if aging else "")

    def bind(self, tasks: Observed, cluster: Cluster) -> None:
        super().bind(tasks, cluster)
        self.size.bind(tasks)
        self._predicted = np.full(tasks.n, np.nan)  # work units, fixed at first readiness
        self._done = np.zeros(tasks.n)  # work units received in the current attempt, running segment excluded

    def on_arrival(self, task: int, now: float, view: View) -> None:
        self._predicted[task] = math.exp(self.size.predict(task, now))
        super().on_arrival(task, now, view)

    def queued_key(self, task: int, now: float) -> float:
        left = max(self._predicted[task] - self._done[task], 0.0)
        return left / self._fastest[task] + self.aging * self._ready_at[task]

    def running_key(self, task: int, now: float) -> float:
        worker, since = self._running[task]
        done = self._done[task] + (now - since) * self.tasks.speed[task, worker]
        return max(self._predicted[task] - done, 0.0) / self._fastest[task] + self.aging * self._ready_at[task]

    def stopped(self, task: int, worker: int, since: float, now: float) -> None:
        self._done[task] += (now - since) * self.tasks.speed[task, worker]

    def on_completion(self, task: int, worker: int, runtime: float, now: float) -> None:
        super().on_completion(task, worker, runtime, now)
        work = self._done[task] + runtime * float(self.tasks.speed[task, worker])
        self.size.learn(task, math.log(max(work, 1e-9)), now)

    def on_interrupt(self, task: int, worker: int, now: float, view: View) -> None:
        self._done[task] = 0.0  # a failure loses the attempt's work
        super().on_interrupt(task, worker, now, view)


class MLFQ(PreemptiveQueue):
    """Multi-level feedback queue, quanta doubling per level (see the module docstring).

    Args:
        quantum: s of service at level 0 (level ``k``: ``quantum · 2^k``), > 0.
        levels: number of levels, >= 1; the last one has no quantum.
        aging: seconds of key forgiven per second since readiness, >= 0.
        skip_join: LLM requests enter at the first level whose quantum covers their prefill (FastServe).

    Example:
        >>> from qsn.scheduler import Task, Worker, Workload, Cluster, simulate
        >>> wl = Workload.from_tasks([Task(arrival=0.0, work=10.0), Task(arrival=0.5, work=1.0)])
        >>> simulate(wl, Cluster.from_workers([Worker()]), MLFQ(quantum=1.0)).finish.tolist()  # A demoted at 1
        [11.0, 2.0]
    """

    def __init__(self, quantum: float = 0.5, *, levels: int = 8, aging: float = 0.0, skip_join: bool = False) -> None:
        if not (isinstance(quantum, (int, float, np.floating, np.integer)) and np.isfinite(quantum) and quantum > 0):
            raise ConfigurationError(f"Argument `quantum` must be a finite number > 0 (s), but is {quantum!r}")
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
            raise ConfigurationError(f"Argument `levels` must be an int >= 1, but is {levels!r}")
        super().__init__(aging=aging)
        self.quantum, self.levels, self.skip_join = float(quantum), int(levels), bool(skip_join)
        self.name = f"mlfq[{self.quantum:g} s x{self.levels}]" + (" skip-join" if skip_join else "") + \
            (f"+aging {self.aging:g}" if aging else "")

    def bind(self, tasks: Observed, cluster: Cluster) -> None:
        super().bind(tasks, cluster)
        self._level = np.zeros(tasks.n, np.int64)
        self._used = np.zeros(tasks.n)  # s of service at the current level, running segment excluded
        if self.skip_join and tasks.llm:
            first = prefill_seconds(tasks.prompt_tokens) / self._fastest
            k = np.ceil(np.log2(np.maximum(first / self.quantum, 1.0)))
            self._level = np.minimum(k, self.levels - 1).astype(np.int64)

    def slice(self, level: int) -> float:
        """Quantum of ``level``, s (inf for the last level)."""
        return self.quantum * 2.0 ** level if level < self.levels - 1 else math.inf

    def _key(self, task: int) -> float:
        return self.quantum * (2.0 ** self._level[task] - 1.0) + self.aging * self._ready_at[task]

    def queued_key(self, task: int, now: float) -> float:
        return self._key(task)

    def running_key(self, task: int, now: float) -> float:
        return self._key(task)

    def started(self, task: int, worker: int, now: float, view: View) -> None:
        left = self.slice(int(self._level[task])) - self._used[task]
        if math.isfinite(left):
            view.wake_at(now + left)

    def stopped(self, task: int, worker: int, since: float, now: float) -> None:
        self._used[task] += now - since

    def on_timer(self, now: float, view: View) -> None:
        for task, (worker, since) in list(self._running.items()):
            q = self.slice(int(self._level[task]))
            if self._used[task] + (now - since) >= q - 1e-9 * max(1.0, q):
                self._level[task] += 1
                self._used[task] = 0.0
                self._running[task] = (worker, now)
                self.started(task, worker, now, view)

    def on_interrupt(self, task: int, worker: int, now: float, view: View) -> None:
        self._used[task] = 0.0  # the attempt restarts at the level it had reached
        super().on_interrupt(task, worker, now, view)
