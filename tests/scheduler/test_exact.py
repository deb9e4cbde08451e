"""qsn.scheduler.exact against brute force, against each other (CP-SAT vs MILP), and against bounds.

The brute force enumerates every assignment and every global start order of a tiny instance
(N <= 6, W <= 3) and times each with earliest starts; the minimum over them is the optimum, since
some semi-active schedule is optimal and it is reproduced by its own start order. Every schedule
returned is checked for feasibility. Durations are integers unless stated, so the CP-SAT grid is exact.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsn.errors import BackendUnavailableError, ConfigurationError
from qsn.scheduler.exact import ExactResult, exact_makespan

TOL = 1e-9


# ---------------------------------------------------------------------------------------------- references
def brute_force(p: np.ndarray, release=None, precedence=()) -> float:
    """Optimal makespan by enumeration: all W^N assignments x all N! start orders (vectorised over assignments)."""
    n, w = p.shape
    r = np.zeros(n) if release is None else np.asarray(release, float)
    preds = [[i for i, k in precedence if k == t] for t in range(n)]
    assign = np.array(list(itertools.product(range(w), repeat=n)))  # (W^N, N)
    rows = np.arange(len(assign))
    best = np.inf
    for order in itertools.permutations(range(n)):
        pos = np.empty(n, int)
        pos[list(order)] = np.arange(n)
        if any(pos[i] > pos[k] for i, k in precedence):
            continue  # this order starts a task before its predecessor
        free = np.zeros((len(assign), w))
        finish = np.zeros((len(assign), n))
        for t in order:
            ready = np.maximum(r[t], finish[:, preds[t]].max(axis=1)) if preds[t] else np.full(len(assign), r[t])
            wt = assign[:, t]
            begin = np.maximum(free[rows, wt], ready)
            finish[:, t] = begin + p[t, wt]  # inf where the pair is not allowed
            free[rows, wt] = finish[:, t]
        best = min(best, finish.max(axis=1).min())
    return float(best)


def lpt(p: np.ndarray) -> float:
    """Longest-processing-time list schedule for independent tasks: longest (by fastest worker) first,
    each to the worker where it finishes earliest."""
    load = np.zeros(p.shape[1])
    for i in np.argsort(-p.min(axis=1), kind="stable"):
        j = int(np.argmin(load + p[i]))
        load[j] += p[i, j]
    return float(load.max())


def assert_feasible(res: ExactResult, p: np.ndarray, release=None, precedence=(), tol: float = TOL) -> None:
    n, w = p.shape
    assert res.assignment.shape == (n,) and res.start.shape == (n,)
    dur = p[np.arange(n), res.assignment]
    assert np.all(np.isfinite(dur)), "a task runs on a worker it may not use"
    finish = res.start + dur
    if release is not None:
        assert np.all(res.start >= np.asarray(release) - tol), "a task starts before its release time"
    assert np.all(res.start >= -tol)
    for i, k in precedence:
        assert res.start[k] >= finish[i] - tol, f"task {k} starts before its predecessor {i} finishes"
    for j in range(w):
        on = np.flatnonzero(res.assignment == j)
        on = on[np.lexsort((finish[on], res.start[on]))]
        assert np.all(res.start[on[1:]] >= finish[on[:-1]] - tol), f"worker {j} runs two tasks at once"
    assert res.makespan == pytest.approx(finish.max(), abs=tol)
    assert res.lower_bound <= res.makespan + tol


def random_instance(seed: int, n: int, w: int, *, release: bool, precedence: bool, forbid: bool):
    rng = np.random.default_rng(seed)
    p = rng.integers(1, 10, (n, w)).astype(float)
    if forbid:  # some pairs not allowed, every task keeps at least one worker
        mask = rng.random((n, w)) < 0.3
        mask[np.arange(n), rng.integers(0, w, n)] = False
        p[mask] = np.inf
    r = rng.integers(0, 6, n).astype(float) if release else None
    edges = []
    if precedence:
        label = rng.permutation(n)  # a random DAG whose edges do not follow index order
        edges = [(int(label[i]), int(label[k])) for i in range(n) for k in range(i + 1, n) if rng.random() < 0.3]
    return p, r, edges


CASES = [  # (seed, N, W, release, precedence, forbid)
    (0, 3, 2, False, False, False), (1, 5, 2, False, False, True), (2, 6, 3, False, False, False),
    (3, 5, 3, True, False, False), (4, 6, 2, True, False, True), (5, 4, 3, False, True, False),
    (6, 6, 2, False, True, True), (7, 5, 3, True, True, False), (8, 6, 3, True, True, True),
    (9, 6, 1, True, True, False), (10, 6, 3, True, True, False), (11, 5, 2, True, True, True),
]


# ---------------------------------------------------------------------------------------------- optimality
@pytest.mark.parametrize("seed, n, w, release, precedence, forbid", CASES)
def test_cpsat_optimum_equals_brute_force(seed, n, w, release, precedence, forbid):
    p, r, edges = random_instance(seed, n, w, release=release, precedence=precedence, forbid=forbid)
    res = exact_makespan(p, release=r, precedence=edges, solver="cpsat", workers=1)
    assert res.optimal and res.solver == "cpsat"
    assert res.makespan == pytest.approx(brute_force(p, r, edges), abs=TOL)
    assert res.lower_bound == pytest.approx(res.makespan, abs=TOL)  # integer data: the grid is exact
    assert_feasible(res, p, r, edges)


@pytest.mark.parametrize("seed", range(4))
def test_cpsat_on_real_valued_durations_is_within_the_grid_error(seed):
    rng = np.random.default_rng(100 + seed)
    n, w = 6, 3
    p = rng.uniform(0.1, 3.0, (n, w))
    r = rng.uniform(0.0, 2.0, n)
    edges = [(0, 3), (1, 4)] if seed % 2 else []
    opt = brute_force(p, r, edges)
    res = exact_makespan(p, release=r, precedence=edges, solver="cpsat")
    err = 3.0 / 10_000 / 2  # default grid: the largest time / 10 000, rounded to the nearest step
    assert res.optimal
    assert res.lower_bound - TOL <= opt <= res.makespan + TOL
    assert res.makespan <= opt + 2 * (n + 1) * err
    assert_feasible(res, p, r, edges)


@pytest.mark.parametrize("seed", range(6))
def test_milp_equals_cpsat_and_brute_force_on_independent_tasks(seed):
    p, _, _ = random_instance(200 + seed, 6, 3, release=False, precedence=False, forbid=seed % 2 == 1)
    milp = exact_makespan(p, solver="milp")
    cpsat = exact_makespan(p, solver="cpsat")
    assert milp.optimal and cpsat.optimal and milp.solver == "milp"
    assert milp.makespan == pytest.approx(cpsat.makespan, abs=1e-6)
    assert milp.makespan == pytest.approx(brute_force(p), abs=1e-6)
    assert milp.lower_bound == pytest.approx(milp.makespan, abs=1e-6)
    assert_feasible(milp, p)


def test_milp_equals_cpsat_on_a_larger_independent_instance():
    rng = np.random.default_rng(7)
    p = rng.integers(1, 30, 14)[:, None] / np.array([1.0, 2.0, 4.0])[None, :] * 4  # integer, speed-heterogeneous
    milp, cpsat = exact_makespan(p, solver="milp"), exact_makespan(p, solver="cpsat")
    assert milp.optimal and cpsat.optimal
    assert milp.makespan == pytest.approx(cpsat.makespan, abs=1e-6)
    assert_feasible(milp, p)
    assert_feasible(cpsat, p)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 7), w=st.integers(1, 3),
    data=st.data(),
)
def test_lpt_is_never_better_than_the_optimum(n, w, data):
    p = np.array(data.draw(st.lists(st.lists(st.integers(1, 20), min_size=w, max_size=w), min_size=n, max_size=n)),
                 dtype=float)
    res = exact_makespan(p, solver="cpsat", workers=1)
    assert res.optimal
    assert lpt(p) >= res.makespan - TOL
    assert_feasible(res, p)


@settings(max_examples=25, deadline=None)
@given(p=st.lists(st.integers(1, 30), min_size=2, max_size=9), w=st.integers(1, 4))
def test_identical_workers_respect_the_classic_bounds(p, w):
    times = np.asarray(p, dtype=float)
    d = np.repeat(times[:, None], w, axis=1)
    res = exact_makespan(d, solver="auto", workers=1)
    assert res.optimal
    assert res.makespan >= max(times.sum() / w, times.max()) - TOL
    # Graham (1969): LPT on identical machines is within 4/3 - 1/(3W) of the optimum
    assert lpt(d) <= (4 / 3 - 1 / (3 * w)) * res.makespan + TOL
    assert_feasible(res, d)


def test_zero_length_tasks_and_precedence_chains():
    p = np.array([[0.0, 0.0], [2.0, 3.0], [0.0, 1.0], [4.0, 4.0], [1.0, 1.0]])
    edges = [(0, 1), (1, 2), (2, 3), (0, 4)]
    res = exact_makespan(p, precedence=edges, release=[0.0, 0.0, 0.0, 0.0, 5.0], solver="cpsat")
    assert res.optimal
    assert res.makespan == pytest.approx(brute_force(p, [0.0, 0.0, 0.0, 0.0, 5.0], edges), abs=TOL) == 6.0
    assert_feasible(res, p, [0.0, 0.0, 0.0, 0.0, 5.0], edges)


def test_eligible_mask_is_respected():
    p = np.ones((4, 2))
    eligible = np.array([[True, False], [True, False], [True, False], [True, True]])
    res = exact_makespan(p, eligible=eligible)
    assert np.all(res.assignment[:3] == 0) and res.makespan == 3.0
    assert_feasible(res, np.where(eligible, p, np.inf))


def test_time_limit_returns_a_feasible_schedule_and_a_valid_bound():
    rng = np.random.default_rng(3)
    p = rng.uniform(1.0, 10.0, 60)[:, None] / rng.uniform(1.0, 4.0, 8)[None, :]
    res = exact_makespan(p, solver="cpsat", time_limit_s=0.05)
    assert res.lower_bound <= res.makespan
    assert res.lower_bound >= p.min(axis=1).sum() / 8 - TOL  # at least the trivial load bound
    assert_feasible(res, p)


# ---------------------------------------------------------------------------------------------- errors
P = np.ones((3, 2))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(durations=np.ones(3)), r"`durations` must have shape \(N, W\)"),
        (dict(durations=[[1.0, np.nan], [1.0, 1.0]]), r"durations\[0, 1\] is nan"),
        (dict(durations=[[1.0, -2.0], [1.0, 1.0]]), r"must be >= 0 .* durations\[0, 1\] is -2.0"),
        (dict(durations=[[1.0, 1.0], [np.inf, np.inf]]), "Task 1 has no eligible worker"),
        (dict(durations=P, eligible=np.array([[True, True], [False, False], [True, True]])), "Task 1 has no eligible"),
        (dict(durations=P, eligible=np.ones((2, 2), bool)), r"`eligible` must have shape \(3, 2\)"),
        (dict(durations=P, release=[0.0, 1.0]), r"`release` must have shape \(3,\)"),
        (dict(durations=P, release=[0.0, -1.0, 0.0]), r"release\[1\] is -1.0"),
        (dict(durations=P, precedence=[(0, 1), (1, 2), (2, 0)]), "has a cycle: 0 -> 1 -> 2 -> 0"),
        (dict(durations=P, precedence=[(1, 1)]), "has a cycle: 1 -> 1"),
        (dict(durations=P, precedence=[(0, 3)]), r"must index tasks in \[0, 3\), but pair 0 is \(0, 3\)"),
        (dict(durations=P, precedence=[(0.5, 1)]), "must be integer pairs"),
        (dict(durations=P, precedence=[(0, 1)], solver="milp"), "solver='milp' handles independent tasks"),
        (dict(durations=P, release=[0.0, 1.0, 0.0], solver="milp"), "solver='milp' handles independent tasks"),
        (dict(durations=P, solver="gurobi"), "`solver` must be one of"),
        (dict(durations=P, workers=0), "`workers` must be an integer >= 1"),
        (dict(durations=P, time_limit_s=0.0), "`time_limit_s` must be finite and > 0"),
        (dict(durations=P, resolution=-1.0), "`resolution` must be finite and > 0"),
    ],
)
def test_errors_name_the_argument(kwargs, match):
    durations = kwargs.pop("durations")
    with pytest.raises(ConfigurationError, match=match):
        exact_makespan(durations, **kwargs)


def test_missing_ortools_gives_an_install_hint_and_auto_falls_back_to_milp(monkeypatch):
    monkeypatch.setitem(sys.modules, "ortools.sat.python", None)  # makes the import inside fail
    with pytest.raises(BackendUnavailableError, match="pip install ortools") as info:
        exact_makespan(P, solver="cpsat")
    assert isinstance(info.value, ImportError)
    assert exact_makespan(P, solver="auto").solver == "milp"
    with pytest.raises(BackendUnavailableError, match="pip install ortools"):
        exact_makespan(P, solver="auto", precedence=[(0, 1)])


def test_module_imports_without_ortools():
    code = ("import sys; sys.modules['ortools'] = None; import qsn.scheduler.exact as e; "
            "print(e.exact_makespan([[1.0, 2.0], [2.0, 1.0]]).solver)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "milp"
