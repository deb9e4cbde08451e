"""Exact minimum-makespan schedules for small instances: the optimum the heuristics are measured against.

The problem: N tasks, W workers (unrelated parallel machines, ``R | r_j, prec | C_max``). Task i takes
``durations[i, j]`` seconds on worker j (``np.inf`` where it may not run), may not start before
``release[i]``, and a precedence pair ``(i, k)`` makes k start after i finishes. Each worker runs one
task at a time, without preemption. Minimise the makespan ``C_max = max_i (start_i + duration_i)``.

Two solvers:

* ``"cpsat"`` — OR-Tools CP-SAT on an integer time grid. Every duration and release time is rounded
  to the nearest multiple of ``resolution`` seconds (by default 1 s when all of them are integers, else
  the largest of them / 10 000). A boolean ``x_ij`` per allowed (task, worker) pair, exactly one per
  task, and the load bound ``C >= min(r) + sum_i p_ij x_ij`` per worker; that is the whole model for
  independent tasks. With release times or precedence each ``x_ij`` also makes an optional interval
  present; a worker's intervals do not overlap (``AddNoOverlap``), all of them together use at most W
  workers at a time (a redundant ``AddCumulative``), ``start_k >= end_i`` for each pair, and
  ``C = max_i end_i``. The greedy list schedule is the first solution (hint).
  The schedule it returns (assignment and order per worker) is re-timed with the real durations, so
  ``makespan`` is exact for that schedule; ``optimal`` means optimal *for the rounded instance*. With
  ``err`` the largest rounding error (0 on integer data with the default resolution) the true optimum
  ``OPT`` satisfies ``lower_bound <= OPT <= makespan <= OPT + 2 (N + 1) err`` when ``optimal``.
  ``lower_bound`` is the best of CP-SAT's bound less ``(N + 1) err``, the LP relaxation of the
  assignment (load balance over the workers) and the critical path, all valid for the real instance.
* ``"milp"`` — SciPy's HiGHS MILP for independent tasks without release times (no rounding):
  ``min C  s.t.  sum_j x_ij = 1,  sum_i p_ij x_ij <= C,  x_ij in {0, 1}``.

``"auto"`` takes CP-SAT when OR-Tools imports and MILP otherwise.

Example:
    >>> import numpy as np
    >>> from qsn.scheduler.exact import exact_makespan
    >>> work, speed = np.array([4.0, 3.0, 3.0, 2.0, 2.0]), np.array([1.0, 2.0])
    >>> r = exact_makespan(work[:, None] / speed[None, :])
    >>> r.makespan, r.optimal
    (5.0, True)
"""

from __future__ import annotations

import graphlib
import heapq
import math
import time
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import scipy.optimize
import scipy.sparse

from qsn.errors import BackendUnavailableError, ConfigurationError

__all__ = ["ExactResult", "exact_makespan"]

SOLVERS = ("auto", "cpsat", "milp")
DEFAULT_TICKS = 10_000  # grid steps across the largest duration / release time when they are not integers
MAX_INTEGER_TIME = 2**40  # integer data up to this size runs on a 1 s grid (CP-SAT works in int64)


class ExactResult(NamedTuple):
    """Result of :func:`exact_makespan`; times in the unit of ``durations`` (seconds)."""

    assignment: np.ndarray  # (N,) int64, the worker of each task
    start: np.ndarray  # (N,) float64, s, start of each task (earliest for this assignment and order)
    makespan: float  # s, max_i start_i + durations[i, assignment_i], from the real durations
    optimal: bool  # proven optimal (CP-SAT: on the rounded grid; MILP: within HiGHS tolerances)
    lower_bound: float  # s, a valid lower bound on the optimum of the real (unrounded) instance
    solver: str  # "cpsat" or "milp": the solver that ran
    wall_s: float  # s, wall-clock time of the call


class _Instance(NamedTuple):
    p: np.ndarray  # (N, W) float64, s; inf where task i may not run on worker j
    r: np.ndarray  # (N,) float64, s
    allowed: np.ndarray  # (N, W) bool
    edges: list[tuple[int, int]]  # precedence (i, k): k starts after i finishes
    preds: list[list[int]]  # (N,) predecessors of each task
    rank: np.ndarray  # (N,) int64, position of each task in one topological order


# ------------------------------------------------------------------------------------------------ validation
def _instance(durations, release, precedence, eligible) -> _Instance:
    p = np.array(durations, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ConfigurationError(f"Argument `durations` must have shape (N, W) with N, W >= 1, but has shape {p.shape}")
    n, w = p.shape
    if np.isnan(p).any():
        i, j = np.argwhere(np.isnan(p))[0]
        raise ConfigurationError(f"Argument `durations` must not be NaN, but durations[{i}, {j}] is nan")
    if (p < 0).any():
        i, j = np.argwhere(p < 0)[0]
        raise ConfigurationError(f"Argument `durations` must be >= 0 (np.inf = not allowed), but durations[{i}, {j}] is {p[i, j]}")
    allowed = np.isfinite(p)
    if eligible is not None:
        e = np.asarray(eligible)
        if e.shape != (n, w):
            raise ConfigurationError(f"Argument `eligible` must have shape ({n}, {w}), but has shape {e.shape}")
        if e.dtype != np.bool_:
            raise ConfigurationError(f"Argument `eligible` must be a bool array, but has dtype {e.dtype}")
        allowed &= e
    none = np.flatnonzero(~allowed.any(axis=1))
    if none.size:
        raise ConfigurationError(f"Task {none[0]} has no eligible worker (every duration is inf or `eligible` is False)")
    p = np.where(allowed, p, np.inf)

    r = np.zeros(n) if release is None else np.array(release, dtype=np.float64)
    if r.shape != (n,):
        raise ConfigurationError(f"Argument `release` must have shape ({n},), but has shape {r.shape}")
    bad = np.flatnonzero(~(np.isfinite(r) & (r >= 0)))
    if bad.size:
        raise ConfigurationError(f"Argument `release` must be finite and >= 0, but release[{bad[0]}] is {r[bad[0]]}")

    edges = _edges(precedence, n)
    preds: list[list[int]] = [[] for _ in range(n)]
    for i, k in edges:
        preds[k].append(i)
    sorter = graphlib.TopologicalSorter({k: preds[k] for k in range(n)})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as err:
        cycle = list(err.args[1])
        if (cycle[0], cycle[1]) not in set(edges):  # report it in the direction of the pairs
            cycle.reverse()
        raise ConfigurationError(f"Argument `precedence` has a cycle: {' -> '.join(map(str, cycle))}") from None
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return _Instance(p, r, allowed, edges, preds, rank)


def _edges(precedence, n: int) -> list[tuple[int, int]]:
    if precedence is None:
        return []
    pairs = np.asarray(list(precedence) if not isinstance(precedence, np.ndarray) else precedence)
    if pairs.size == 0:
        return []
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise ConfigurationError(f"Argument `precedence` must be integer pairs of shape (E, 2), but has shape {pairs.shape} "
                                 f"and dtype {pairs.dtype}")
    bad = np.flatnonzero(((pairs < 0) | (pairs >= n)).any(axis=1))
    if bad.size:
        raise ConfigurationError(f"Argument `precedence` must index tasks in [0, {n}), but pair {bad[0]} is "
                                 f"{tuple(int(v) for v in pairs[bad[0]])}")
    return sorted({(int(i), int(k)) for i, k in pairs})


# ------------------------------------------------------------------------------------------------ schedules
def _list_schedule(inst: _Instance, p: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A greedy schedule (CP-SAT's first solution, and the answer if none is found): among tasks whose
    predecessors are placed, the longest (by its fastest worker) goes first, to the worker where it
    finishes earliest. Returns ``(assignment (N,), start (N,))``."""
    n = p.shape[0]
    succs: list[list[int]] = [[] for _ in range(n)]
    for i, k in inst.edges:
        succs[i].append(k)
    waiting = [len(inst.preds[k]) for k in range(n)]
    longest = np.min(p, axis=1)
    heap = [(-longest[i], i) for i in range(n) if waiting[i] == 0]
    heapq.heapify(heap)
    free = np.zeros(p.shape[1])
    assignment, start, finish = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    while heap:
        _, i = heapq.heappop(heap)
        ready = max([r[i]] + [finish[k] for k in inst.preds[i]])
        begin = np.maximum(free, ready)
        j = int(np.argmin(begin + p[i]))  # inf where not allowed
        assignment[i], start[i], finish[i] = j, begin[j], begin[j] + p[i, j]
        free[j] = finish[i]
        for k in succs[i]:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(heap, (-longest[k], k))
    return assignment, start


def _retime(inst: _Instance, assignment: np.ndarray, order: Iterable[int]) -> tuple[np.ndarray, float]:
    """Earliest start times (real durations) for ``assignment`` with tasks started in ``order`` (a
    linear extension of the precedence and of each worker's sequence). Returns ``(start, makespan)``."""
    n, w = inst.p.shape
    free = np.zeros(w)
    start, finish = np.zeros(n), np.zeros(n)
    for i in order:
        j = assignment[i]
        start[i] = max([inst.r[i], free[j]] + [finish[k] for k in inst.preds[i]])
        finish[i] = free[j] = start[i] + inst.p[i, j]
    return start, float(finish.max())


def _trivial_bound(inst: _Instance) -> float:
    """``max(critical path with each task on its fastest worker, min release + total fastest work / W)``;
    :func:`_lp_bound` adds the load balance across unrelated workers."""
    fastest = np.min(inst.p, axis=1)
    finish = np.zeros(len(fastest))
    for i in np.argsort(inst.rank):
        finish[i] = max([inst.r[i]] + [finish[k] for k in inst.preds[i]]) + fastest[i]
    return float(max(finish.max(), inst.r.min() + fastest.sum() / inst.p.shape[1]))


# ------------------------------------------------------------------------------------------------ solvers
def _resolution(inst: _Instance, resolution: float | None) -> float:
    if resolution is not None:
        if not (math.isfinite(resolution) and resolution > 0):
            raise ConfigurationError(f"Argument `resolution` must be finite and > 0, but is {resolution!r}")
        return float(resolution)
    times = np.concatenate([inst.p[inst.allowed], inst.r])
    top = float(times.max())
    if np.all(times == np.round(times)) and top <= MAX_INTEGER_TIME:
        return 1.0
    return top / DEFAULT_TICKS if top > 0 else 1.0


def _import_cp_model():
    try:
        from ortools.sat.python import cp_model  # imported here: qsn.scheduler works without OR-Tools
    except ImportError as err:
        raise BackendUnavailableError("solver='cpsat' needs OR-Tools: pip install ortools") from err
    return cp_model


def _cpsat(inst: _Instance, time_limit_s: float, workers: int, resolution: float | None):
    cp_model = _import_cp_model()
    tick = _resolution(inst, resolution)
    n, w = inst.p.shape
    pt = np.where(inst.allowed, np.rint(np.where(inst.allowed, inst.p, 0.0) / tick), 0).astype(np.int64)
    rt = np.rint(inst.r / tick).astype(np.int64)
    err = max(float(np.abs(pt * tick - np.where(inst.allowed, inst.p, 0.0)).max()), float(np.abs(rt * tick - inst.r).max()))
    p_grid = np.where(inst.allowed, pt.astype(np.float64), np.inf)
    hint_a, hint_s = _list_schedule(inst, p_grid, rt.astype(np.float64))
    horizon = int(max((hint_s + p_grid[np.arange(n), hint_a]).max(), 1))

    m = cp_model.CpModel()
    chosen = {(i, int(j)): m.new_bool_var(f"x{i}_{j}") for i, j in zip(*np.nonzero(inst.allowed))}
    for i in range(n):
        m.add_exactly_one(chosen[i, int(j)] for j in np.flatnonzero(inst.allowed[i]))
    makespan = m.new_int_var(0, horizon, "makespan")
    m.minimize(makespan)
    for j in range(w):  # load bound; the whole model for independent tasks, a strong LP cut otherwise
        m.add(makespan >= int(rt.min()) + sum(int(pt[i, j]) * chosen[i, j] for i in np.flatnonzero(inst.allowed[:, j])))
    for (i, j), x in chosen.items():
        m.add_hint(x, int(j == hint_a[i]))
    sequenced = bool(inst.edges) or bool((rt > 0).any())
    if sequenced:  # release times or precedence: the order on each worker matters
        start = [m.new_int_var(int(rt[i]), horizon, f"s{i}") for i in range(n)]
        end = [m.new_int_var(int(rt[i]), horizon, f"e{i}") for i in range(n)]
        by_worker: list[list] = [[] for _ in range(w)]
        for (i, j), x in chosen.items():
            by_worker[j].append(m.new_optional_fixed_size_interval_var(start[i], int(pt[i, j]), x, f"t{i}w{j}"))
        for i in range(n):
            m.add(end[i] == start[i] + sum(int(pt[i, j]) * chosen[i, int(j)] for j in np.flatnonzero(inst.allowed[i])))
            m.add_hint(start[i], int(hint_s[i]))
        for intervals in by_worker:
            m.add_no_overlap(intervals)
        every = [iv for intervals in by_worker for iv in intervals]
        m.add_cumulative(every, [1] * len(every), w)  # redundant: at most W tasks run at once
        for i, k in inst.edges:
            m.add(start[k] >= end[i])
        m.add_max_equality(makespan, end)

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = int(workers)  # the former `num_search_workers`
    status = solver.solve(m)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        assignment = np.array([next(j for j in range(w) if inst.allowed[i, j] and solver.value(chosen[i, j]))
                               for i in range(n)], dtype=np.int64)
        if sequenced:
            s_grid = np.array([solver.value(v) for v in start])
            e_grid = np.array([solver.value(v) for v in end])
            order = np.lexsort((inst.rank, e_grid, s_grid))  # ties on the grid: zero-length tasks, by precedence
        else:
            order = np.arange(n)  # independent tasks: any order per worker gives the same loads
        bound = solver.best_objective_bound * tick - (n + 1) * err
        return assignment, order, status == cp_model.OPTIMAL, bound
    if status == cp_model.UNKNOWN:  # no solution within the time limit: the greedy schedule
        return hint_a, np.lexsort((inst.rank, hint_s)), False, -math.inf
    raise RuntimeError(f"CP-SAT returned status {solver.status_name(status)} on a feasible model: {m.validate()}")


def _assignment_program(inst: _Instance, integral: bool, time_limit_s: float):
    """The assignment program ``min C  s.t.  sum_j x_ij = 1,  min(r) + sum_i p_ij x_ij <= C`` over the
    allowed pairs, solved by HiGHS with ``x_ij`` binary (``integral``, the MILP solver) or in [0, 1]
    (its LP relaxation, a lower bound on any schedule). Returns ``(scipy result, task, worker)`` with
    ``task``, ``worker`` (K,) the allowed pairs, in the order of ``result.x[:K]``."""
    n, w = inst.p.shape
    ti, wj = np.nonzero(inst.allowed)  # one variable per allowed (task, worker) pair, then C
    k = ti.size
    cost = np.zeros(k + 1)
    cost[-1] = 1.0
    one_each = scipy.sparse.csr_array((np.ones(k), (ti, np.arange(k))), shape=(n, k + 1))
    load = scipy.sparse.hstack([scipy.sparse.csr_array((inst.p[ti, wj], (wj, np.arange(k))), shape=(w, k)),
                                -np.ones((w, 1))])
    res = scipy.optimize.milp(
        cost,
        integrality=np.r_[np.full(k, 1.0 if integral else 0.0), 0.0],
        bounds=scipy.optimize.Bounds(np.zeros(k + 1), np.r_[np.ones(k), np.inf]),
        constraints=[scipy.optimize.LinearConstraint(one_each, 1.0, 1.0),
                     scipy.optimize.LinearConstraint(load, -np.inf, -inst.r.min())],
        options={"time_limit": float(time_limit_s), "mip_rel_gap": 0.0},
    )
    return res, ti, wj


def _lp_bound(inst: _Instance) -> float:
    res, _, _ = _assignment_program(inst, integral=False, time_limit_s=60.0)
    return float(res.fun) if res.status == 0 else -math.inf


def _milp(inst: _Instance, time_limit_s: float):
    res, ti, wj = _assignment_program(inst, integral=True, time_limit_s=time_limit_s)
    bound = getattr(res, "mip_dual_bound", None)
    bound = -math.inf if bound is None or not np.isfinite(bound) else float(bound)
    if res.x is None:  # nothing found within the time limit: the greedy schedule
        a, s = _list_schedule(inst, inst.p, inst.r)
        return a, np.argsort(s, kind="stable"), False, bound
    x = np.zeros(inst.p.shape)
    x[ti, wj] = res.x[:ti.size]
    return np.argmax(x, axis=1).astype(np.int64), np.arange(inst.p.shape[0]), res.status == 0, bound


def exact_makespan(
    durations,
    *,
    release=None,
    precedence=None,
    eligible=None,
    time_limit_s: float = 10.0,
    solver: str = "auto",
    workers: int = 2,
    resolution: float | None = None,
) -> ExactResult:
    """Minimum-makespan schedule of N tasks on W unrelated workers (see the module docstring).

    Args:
        durations: (N, W) float, s: time of task i on worker j; ``np.inf`` = may not run there.
        release: (N,) float >= 0, s: earliest start of each task (default 0).
        precedence: pairs ``(i, k)`` (list or (E, 2) int array): task k starts after task i finishes.
        eligible: (N, W) bool, optional extra mask of allowed (task, worker) pairs.
        time_limit_s: solver time limit, s; past it the best schedule found is returned with
            ``optimal=False``.
        solver: ``"cpsat"``, ``"milp"`` (independent tasks, no release times) or ``"auto"``.
        workers: CP-SAT search threads (``num_workers``); HiGHS ignores it.
        resolution: CP-SAT grid step, s (default: 1 for integer data, else max time / 10 000).

    Returns:
        :class:`ExactResult` ``(assignment, start, makespan, optimal, lower_bound, solver, wall_s)``.

    Raises:
        ConfigurationError: bad shapes, NaN or negative durations, a task with no eligible worker,
            precedence indices out of range or in a cycle (the cycle is named), ``"milp"`` with
            release times or precedence.
        BackendUnavailableError: (an ``ImportError``) CP-SAT needed but OR-Tools not installed.

    Example:
        >>> r = exact_makespan([[2.0, 4.0], [2.0, 4.0], [3.0, 3.0]], precedence=[(0, 1)])
        >>> r.makespan, r.assignment.tolist()
        (4.0, [0, 0, 1])
    """
    t0 = time.perf_counter()
    if solver not in SOLVERS:
        raise ConfigurationError(f"Argument `solver` must be one of {list(SOLVERS)}, but is {solver!r}")
    if not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise ConfigurationError(f"Argument `time_limit_s` must be finite and > 0, but is {time_limit_s!r}")
    if int(workers) != workers or workers < 1:
        raise ConfigurationError(f"Argument `workers` must be an integer >= 1, but is {workers!r}")
    inst = _instance(durations, release, precedence, eligible)
    constrained = bool(inst.edges) or bool((inst.r > 0).any())
    if solver == "milp" and constrained:
        raise ConfigurationError("solver='milp' handles independent tasks without release times; "
                                 "use solver='cpsat' for `precedence` or `release`")
    if solver == "auto":
        try:
            _import_cp_model()
            solver = "cpsat"
        except BackendUnavailableError as err:
            if constrained:
                raise BackendUnavailableError("`precedence` / `release` need CP-SAT: pip install ortools") from err
            solver = "milp"
    if solver == "cpsat":
        assignment, order, optimal, bound = _cpsat(inst, time_limit_s, workers, resolution)
    else:
        assignment, order, optimal, bound = _milp(inst, time_limit_s)
    start, makespan = _retime(inst, assignment, order)
    lower = min(makespan, max(_trivial_bound(inst), _lp_bound(inst), bound))
    return ExactResult(assignment, start, makespan, bool(optimal), float(lower), solver, time.perf_counter() - t0)
