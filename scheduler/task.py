"""Tasks and workers, one at a time (:class:`Task`, :class:`Worker`) or as arrays (:class:`Workload`, :class:`Cluster`).

Units: seconds for times, GiB for memory, work units for sizes (one work unit takes one second on a
worker of speed 1), qubits for quantum demand, GPUs and CPU cores for the resources a task holds while it
runs (a GPU demand below 1 is a share of one GPU, as in Alibaba's GPU-sharing pods). A :class:`Workload` holds N tasks as (N,) arrays and a
:class:`Cluster` holds W workers as (W,) arrays; the simulator, planners and baselines work on these.

What a scheduler may look at is :meth:`Workload.observed`: the arrival, the user's size *estimate*
(which may be noisy or missing), the token counts, demands and priority. The true size (`work`,
`output_tokens`) is only for the simulator.

Example:
    >>> from qsn.scheduler import Task, Worker, Workload, Cluster
    >>> wl = Workload.from_tasks([Task(arrival=0.0, work=2.0), Task(arrival=0.5, work=1.0, deps=(0,))])
    >>> cl = Cluster.from_workers([Worker(speed=1.0), Worker(speed=2.0)])
    >>> wl.n, cl.n
    (2, 2)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from qsn.errors import ConfigurationError, InvalidInputError

__all__ = ["Task", "Worker", "Workload", "Cluster", "OBSERVED_FEATURES"]

# Columns of Workload.observed(), in order: what a scheduler may use at arrival time.
OBSERVED_FEATURES = ("estimate", "prompt_tokens", "memory", "qubits", "priority", "task_type")


@dataclass(frozen=True)
class Task:
    """One task. ``deps`` are indices of tasks that must finish before this one starts."""

    arrival: float = 0.0  # s
    work: float = 1.0  # work units (seconds on a speed-1 worker); LLM requests: derived from tokens
    estimate: float = np.nan  # the user's estimate of `work` (NaN = unknown)
    priority: int = 0  # larger = more important (used by priority-aware policies)
    memory: float = 0.0  # GiB held while running
    qubits: int = 0  # qubits needed on a quantum node (0 = classical)
    deadline: float = np.inf  # s, absolute; SLO: finish by then
    prompt_tokens: int = 0  # LLM requests: prefill length
    output_tokens: int = 0  # LLM requests: decode length (unknown to the scheduler)
    task_type: int = 0  # category (e.g. model or job class), used by worker affinity
    deps: tuple[int, ...] = ()
    gpu: float = 0.0  # GPUs held while running: 0 none, in (0, 1) a share of one GPU, else a whole number of GPUs
    cpu: float = 0.0  # CPU cores held while running


@dataclass(frozen=True)
class Worker:
    """One worker (a GPU replica, a machine, a quantum node)."""

    speed: float = 1.0  # work units per second per slot
    slots: int = 1  # tasks run concurrently
    memory: float = np.inf  # GiB capacity shared by its running tasks
    qubits: int = 0  # quantum nodes: qubit capacity
    coherence: float = np.inf  # s: a quantum task longer than this cannot run here
    failure_rate: float = 0.0  # failures per second (exponential)
    repair_time: float = 60.0  # s down after a failure
    kind: int = 0  # hardware class (affinity with task_type)
    power_busy: float = 300.0  # W per busy slot (energy proxy)
    power_idle: float = 60.0  # W when idle
    gpus: int = 0  # GPUs on the node (each shareable by tasks with gpu < 1)
    cpu: float = np.inf  # CPU cores shared by its running tasks


def _column(name: str, values, n: int, dtype, *, finite: bool = False, nonneg: bool = False, allow_nan=False) -> np.ndarray:
    a = np.asarray(values, dtype=dtype)
    if a.ndim == 0:
        a = np.full(n, a, dtype=dtype)
    if a.shape != (n,):
        raise InvalidInputError(f"Argument `{name}` must have shape ({n},), but has shape {a.shape}")
    if np.issubdtype(a.dtype, np.floating):
        bad = np.isnan(a) if not allow_nan else np.zeros(n, bool)
        if finite:
            bad |= ~np.isfinite(a) & ~(np.isnan(a) & allow_nan)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(f"Argument `{name}` must be finite, but {name}[{i}] = {a[i]}")
    if nonneg and np.any(a < 0):
        i = int(np.flatnonzero(a < 0)[0])
        raise InvalidInputError(f"Argument `{name}` must be >= 0, but {name}[{i}] = {a[i]}")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Workload:
    """N tasks as arrays (fields as in :class:`Task`); ``edges`` (E, 2): task ``edges[k,1]`` waits for ``edges[k,0]``.

    Tasks are stored sorted by arrival (stable); constructors sort and remap dependencies.
    """

    arrival: np.ndarray  # (N,) float64, s, non-decreasing
    work: np.ndarray  # (N,) float64, work units (true size)
    estimate: np.ndarray  # (N,) float64, user's estimate of work, NaN = missing
    priority: np.ndarray  # (N,) int64
    memory: np.ndarray  # (N,) float64, GiB
    qubits: np.ndarray  # (N,) int64
    deadline: np.ndarray  # (N,) float64, s (inf = none)
    prompt_tokens: np.ndarray  # (N,) int64
    output_tokens: np.ndarray  # (N,) int64
    task_type: np.ndarray  # (N,) int64
    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # (E, 2) int64
    name: str = "workload"
    llm: bool = False  # service times from the LLM prefill/decode model (qsn.scheduler.service)
    gpu: np.ndarray | None = None  # (N,) float64, GPUs held (< 1: a share of one GPU; >= 1: whole GPUs); None = 0
    cpu: np.ndarray | None = None  # (N,) float64, CPU cores held; None = 0

    def __post_init__(self):
        n = np.asarray(self.arrival).shape[0] if np.ndim(self.arrival) else 1
        if n < 1:
            raise InvalidInputError("A workload needs at least one task, but has 0")
        for name in ("gpu", "cpu"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(n))
        spec = dict(
            arrival=(np.float64, True, True, False), work=(np.float64, True, True, False),
            estimate=(np.float64, True, True, True), priority=(np.int64, False, False, False),
            memory=(np.float64, True, True, False), qubits=(np.int64, False, True, False),
            deadline=(np.float64, False, False, False), prompt_tokens=(np.int64, False, True, False),
            output_tokens=(np.int64, False, True, False), task_type=(np.int64, False, True, False),
            gpu=(np.float64, True, True, False), cpu=(np.float64, True, True, False),
        )
        for name, (dtype, finite, nonneg, allow_nan) in spec.items():
            a = _column(name, getattr(self, name), n, dtype, finite=finite, nonneg=nonneg, allow_nan=allow_nan)
            object.__setattr__(self, name, a)
        whole = (self.gpu >= 1) & (self.gpu != np.round(self.gpu))
        if whole.any():
            i = int(np.flatnonzero(whole)[0])
            raise InvalidInputError(f"Argument `gpu` must be below 1 (a share of one GPU) or a whole number of GPUs, "
                                    f"but gpu[{i}] = {self.gpu[i]}")
        if np.any(np.diff(self.arrival) < 0):
            i = int(np.flatnonzero(np.diff(self.arrival) < 0)[0]) + 1
            raise InvalidInputError(f"Argument `arrival` must be sorted; use Workload.from_arrays, arrival[{i}] decreases")
        edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        if edges.size and (edges.min() < 0 or edges.max() >= n):
            raise InvalidInputError(f"Argument `edges` must index tasks in [0, {n}), but holds {edges.min()}..{edges.max()}")
        if edges.size and np.any(edges[:, 0] == edges[:, 1]):
            raise InvalidInputError(f"Argument `edges` has a self-dependency at task {edges[edges[:, 0] == edges[:, 1]][0, 0]}")
        edges.setflags(write=False)
        object.__setattr__(self, "edges", edges)
        if edges.size:
            _topological_order(n, edges)  # raises on a cycle

    @property
    def n(self) -> int:
        return int(self.arrival.shape[0])

    @classmethod
    def from_arrays(cls, *, arrival, edges=None, **columns) -> "Workload":
        """Build from (N,) columns in any order: sorts by arrival (stable) and remaps ``edges``."""
        arrival = np.asarray(arrival, dtype=np.float64)
        if arrival.ndim != 1:
            raise InvalidInputError(f"Argument `arrival` must have shape (N,), but has shape {arrival.shape}")
        n = arrival.shape[0]
        if np.isnan(arrival).any():
            raise InvalidInputError(f"Argument `arrival` must be finite, but arrival[{int(np.flatnonzero(np.isnan(arrival))[0])}] is NaN")
        order = np.argsort(arrival, kind="stable")
        defaults = dict(work=1.0, estimate=np.nan, priority=0, memory=0.0, qubits=0, deadline=np.inf,
                        prompt_tokens=0, output_tokens=0, task_type=0, gpu=0.0, cpu=0.0)
        meta = {k: columns.pop(k) for k in ("name", "llm") if k in columns}
        unknown = set(columns) - set(defaults)
        if unknown:
            raise ConfigurationError(f"Unknown workload column(s) {sorted(unknown)}; known: {sorted(defaults)}")
        cols = {}
        for k, d in defaults.items():
            v = np.asarray(columns.get(k, d))
            cols[k] = np.broadcast_to(v, (n,))[order] if v.ndim else np.full(n, v)
        if edges is not None and len(edges):
            inverse = np.empty(n, np.int64)
            inverse[order] = np.arange(n)
            e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
            if e.min() < 0 or e.max() >= n:
                raise InvalidInputError(f"Argument `edges` must index tasks in [0, {n}), but holds {e.min()}..{e.max()}")
            edges = inverse[e]
        else:
            edges = np.zeros((0, 2), np.int64)
        return cls(arrival=arrival[order], edges=edges, **cols, **meta)

    @classmethod
    def from_tasks(cls, tasks: Sequence[Task], name: str = "workload", llm: bool = False) -> "Workload":
        """Build from :class:`Task` objects; ``deps`` refer to positions in ``tasks``."""
        if not tasks:
            raise InvalidInputError("A workload needs at least one task, but `tasks` is empty")
        names = [f.name for f in dataclasses.fields(Task) if f.name != "deps"]
        cols = {k: np.array([getattr(t, k) for t in tasks]) for k in names}
        edges = [(d, j) for j, t in enumerate(tasks) for d in t.deps]
        return cls.from_arrays(edges=np.array(edges, np.int64).reshape(-1, 2), name=name, llm=llm, **cols)

    def replace(self, **changes) -> "Workload":
        """A copy with some columns replaced (e.g. noisy ``estimate``)."""
        return dataclasses.replace(self, **changes)

    def subset(self, index) -> "Workload":
        """The tasks ``index`` (sorted), keeping only edges inside the subset."""
        index = np.unique(np.asarray(index, dtype=np.int64))
        remap = np.full(self.n, -1, np.int64)
        remap[index] = np.arange(index.size)
        e = remap[self.edges] if self.edges.size else self.edges
        e = e[(e >= 0).all(axis=1)] if e.size else np.zeros((0, 2), np.int64)
        cols = {f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)
                if f.name not in ("edges", "name", "llm")}
        return Workload(**cols, edges=e, name=self.name, llm=self.llm)

    def observed(self) -> np.ndarray:
        """What a scheduler sees at arrival: (N, F) float64 with columns :data:`OBSERVED_FEATURES` (NaN = missing)."""
        return np.stack([self.estimate, self.prompt_tokens, self.memory, self.qubits, self.priority,
                         self.task_type], axis=1).astype(np.float64)

    def topological_order(self) -> np.ndarray:
        """Task indices in an order that respects ``edges`` (arrival order breaks ties)."""
        return _topological_order(self.n, self.edges)


def _topological_order(n: int, edges: np.ndarray) -> np.ndarray:
    """Kahn's algorithm, the smallest ready index first; raises on a cycle."""
    import heapq

    if not edges.size or np.all(edges[:, 0] < edges[:, 1]):
        # every edge points forward: index order is topological (and is what the heap would give), no cycle
        return np.arange(n, dtype=np.int64)

    indeg = np.bincount(edges[:, 1], minlength=n) if edges.size else np.zeros(n, np.int64)
    children = [[] for _ in range(n)]
    for a, b in edges.tolist():
        children[a].append(b)
    ready = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(ready)
    order = []
    indeg = indeg.copy()
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for c in children[i]:
            indeg[c] -= 1
            if indeg[c] == 0:
                heapq.heappush(ready, c)
    if len(order) != n:
        stuck = np.flatnonzero(indeg > 0)
        raise InvalidInputError(f"Argument `edges` has a dependency cycle through tasks {stuck[:8].tolist()}")
    return np.asarray(order, np.int64)


@dataclass(frozen=True, eq=False)
class Cluster:
    """W workers as arrays (fields as in :class:`Worker`); ``fidelity`` (W, W) link fidelities of quantum nodes."""

    speed: np.ndarray  # (W,) float64 > 0
    slots: np.ndarray  # (W,) int64 >= 1
    memory: np.ndarray  # (W,) float64, GiB (inf = unlimited)
    qubits: np.ndarray  # (W,) int64
    coherence: np.ndarray  # (W,) float64, s
    failure_rate: np.ndarray  # (W,) float64, 1/s
    repair_time: np.ndarray  # (W,) float64, s
    kind: np.ndarray  # (W,) int64
    power_busy: np.ndarray  # (W,) float64, W per busy slot
    power_idle: np.ndarray  # (W,) float64, W
    fidelity: np.ndarray | None = None  # (W, W) float64 in [0, 1], 1 on the diagonal
    affinity: np.ndarray | None = None  # (task types, worker kinds) speed multipliers (None = all 1)
    min_fidelity: float = 0.0  # dependent quantum tasks on different nodes need fidelity[a, b] >= this
    name: str = "cluster"
    gpus: np.ndarray | None = None  # (W,) int64, GPUs per node; None = 0
    cpu: np.ndarray | None = None  # (W,) float64, CPU cores per node (inf = unlimited); None = inf

    def __post_init__(self):
        w = np.asarray(self.speed).shape[0] if np.ndim(self.speed) else 1
        for name, default in (("gpus", 0), ("cpu", np.inf)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.full(w, default))
        spec = dict(speed=np.float64, slots=np.int64, memory=np.float64, qubits=np.int64, coherence=np.float64,
                    failure_rate=np.float64, repair_time=np.float64, kind=np.int64, power_busy=np.float64,
                    power_idle=np.float64, gpus=np.int64, cpu=np.float64)
        for name, dtype in spec.items():
            finite = name in ("speed", "failure_rate", "repair_time", "power_busy", "power_idle")
            object.__setattr__(self, name, _column(name, getattr(self, name), w, dtype, finite=finite, nonneg=True))
        if np.any(self.speed <= 0):
            raise InvalidInputError(f"Argument `speed` must be > 0, but speed[{int(np.argmin(self.speed))}] = {self.speed.min()}")
        if np.any(self.slots < 1):
            raise InvalidInputError(f"Argument `slots` must be >= 1, but slots[{int(np.argmin(self.slots))}] = {self.slots.min()}")
        if self.fidelity is not None:
            f = np.asarray(self.fidelity, np.float64)
            if f.shape != (w, w) or np.any(~np.isfinite(f)) or np.any((f < 0) | (f > 1)):
                raise InvalidInputError(f"Argument `fidelity` must be a ({w}, {w}) array in [0, 1], but has shape {f.shape}")
            object.__setattr__(self, "fidelity", f)
        if self.affinity is not None:
            a = np.asarray(self.affinity, np.float64)
            if a.ndim != 2 or a.shape[1] <= self.kind.max() or np.any(~(a > 0)) or np.any(~np.isfinite(a)):
                raise InvalidInputError(f"Argument `affinity` must be a positive (types, >{self.kind.max()}) array, but has shape {a.shape}")
            object.__setattr__(self, "affinity", a)

    @property
    def n(self) -> int:
        return int(self.speed.shape[0])

    def speed_table(self, n_types: int) -> np.ndarray:
        """Effective speed of each worker for each task type, (n_types, W): ``speed * affinity[type, kind]``."""
        if self.affinity is None:
            return np.broadcast_to(self.speed, (n_types, self.n))
        types = np.minimum(np.arange(n_types), self.affinity.shape[0] - 1)
        return self.speed * self.affinity[types][:, self.kind]

    def eligible(self, workload: "Workload", index=None) -> np.ndarray:
        """Which workers can ever run which tasks, (N, W) bool (or (W,) for one ``index``).

        A task fits a worker when its memory fits the worker's memory, its qubits fit the node's qubits,
        a quantum task's service time fits the node's coherence time, its CPU cores fit the node's, and its
        GPUs fit the node's: a whole number ``g >= 1`` needs ``g <= gpus``, a share ``0 < g < 1`` one GPU.
        """
        i = slice(None) if index is None else index
        mem = np.asarray(workload.memory[i], np.float64)[..., None]
        q = np.asarray(workload.qubits[i])[..., None]
        gpu = np.asarray(workload.gpu[i], np.float64)[..., None]
        ok = (mem <= self.memory) & ((q == 0) | (q <= self.qubits))
        ok &= (np.asarray(workload.cpu[i], np.float64)[..., None] <= self.cpu) & (np.ceil(gpu) <= self.gpus)
        if np.any(q > 0) and np.isfinite(self.coherence).any():
            types = np.asarray(workload.task_type[i])
            dur = np.asarray(workload.work[i])[..., None] / self.speed_table(int(workload.task_type.max()) + 1)[types]
            ok &= (q == 0) | (dur <= self.coherence)
        return ok

    @classmethod
    def from_workers(cls, workers: Sequence[Worker], **kwargs) -> "Cluster":
        if not workers:
            raise InvalidInputError("A cluster needs at least one worker, but `workers` is empty")
        cols = {f.name: np.array([getattr(w, f.name) for w in workers]) for f in dataclasses.fields(Worker)}
        return cls(**cols, **kwargs)

    @classmethod
    def uniform(cls, n: int, **worker) -> "Cluster":
        """``n`` identical workers (keyword arguments as in :class:`Worker`)."""
        if n < 1:
            raise ConfigurationError(f"Argument `n` must be >= 1, but is {n}")
        return cls.from_workers([Worker(**worker)] * n)

    def replace(self, **changes) -> "Cluster":
        return dataclasses.replace(self, **changes)

    def subset(self, index, name: str | None = None) -> "Cluster":
        """The workers ``index`` (in the given order), with their fidelity block; affinity and min_fidelity kept."""
        index = np.asarray(index, dtype=np.int64)
        per_worker = {f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)
                      if f.name not in ("fidelity", "affinity", "min_fidelity", "name")}
        fidelity = None if self.fidelity is None else self.fidelity[np.ix_(index, index)]
        return Cluster(**per_worker, fidelity=fidelity, affinity=self.affinity, min_fidelity=self.min_fidelity,
                       name=self.name if name is None else name)
