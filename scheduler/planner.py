"""The quantum-inspired planner: assignment as a QUBO, solved at scale by batched annealing, then refined.

**Energy.** Tasks ``t`` of a planning window go to workers ``j``; ``p[t, j]`` is the predicted service time
(s), ``a[t, j] = p[t, j] / slots_j`` the drain time it adds to ``j``, ``b_j`` the backlog already
queued on ``j`` (s). An assignment ``w`` has energy

    E(w) = cost · Σ_t p[t, w_t]  +  balance · Σ_j ω_j (b_j + Σ_{t: w_t = j} a[t, j])²

the first term is the total busy time (it prefers each task's fast workers), the second spreads the
drain times: with ``ω_j = slots_j · speed_j`` (the rate at which ``j`` clears work) its minimum for a
given amount of work is at equal drain times, a smooth proxy of the makespan. (Unweighted, ``Σ_j L_j²``
would load workers in proportion to their speed, not equally.) Times are divided by the
mean of ``min_j p[t, j]`` so one temperature schedule serves every instance.

**QUBO form** (:func:`assignment_qubo`, for QAOA and exact checks on small instances): binary
``x[t, j]`` for eligible pairs only (ineligible ones — memory, qubits, coherence — are removed, the hard
capacity constraints), plus ``penalty · Σ_t (Σ_j x[t, j] − 1)²`` (one-hot), an optional per-worker time
budget ``Σ_t a[t, j] x[t, j] ≤ budget_j`` as an equality with binary slack variables, and a
``penalty`` for each dependent quantum pair placed on two nodes whose link fidelity is below
``cluster.min_fidelity``. On one-hot states without violations it equals ``E(w)`` (tested).

**Annealing at scale** (:func:`anneal_assignment`): the one-hot constraint is kept by construction (a
Potts variable per task; what D-Wave calls a discrete quadratic model). Each iteration picks a random
fraction of a window's tasks and redraws each one's worker from its heat-bath distribution
``∝ exp(−β ΔE)`` computed against the current loads — moves drawn together see each other's loads one
iteration late, which the small fraction keeps rare; the best energy seen is kept exactly. Replicas run
in parallel (a leading axis), and so do windows of ``window`` tasks in arrival order: each window's
backlog is read from the EFT warm start's predicted schedule, which decouples them (an approximation:
moves in one window do not update the next one's backlog). One jitted program: GPU-ready.

**Refinement** (:func:`refine_makespan`): classical local search that moves or swaps tasks off the
worker that finishes last while the predicted makespan falls.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.qubo.model import QUBO, make_qubo
from qsn.scheduler.policies import list_schedule, upward_rank
from qsn.scheduler.simulator import Plan, repair_links
from qsn.scheduler.task import Cluster, Workload

__all__ = ["PlannerConfig", "AssignmentQUBO", "assignment_energy", "assignment_qubo", "decode", "balance_weights",
           "anneal_assignment", "window_backlogs", "refine_makespan", "annealing_plan"]


class PlannerConfig(NamedTuple):
    """Knobs of :func:`annealing_plan` (each part can be switched off)."""

    window: int | None = None  # tasks per planning window (arrival order); None: auto (see window_size)
    iterations: int = 32  # annealing iterations per window
    replicas: int = 1  # parallel replicas per window (the best is kept); 1 keeps 1,000 tasks under 50 ms on a CPU
    fraction: float = 0.1  # fraction of a window's tasks redrawn per iteration
    beta: tuple[float, float] = (0.3, 30.0)  # inverse temperature, geometric from first to last iteration
    cost: float = 0.1  # weight of Σ p[t, w_t] (total busy time)
    balance: float = 1.0  # weight of Σ (b + L)²
    init: str = "eft"  # "eft" (greedy warm start), "random"
    refine: bool = True  # makespan local search on batch windows (all arrivals in one window)
    order: str = "arrival"  # queue order within a worker: "arrival" or "spt" (shortest predicted first)


def assignment_energy(assign, p, backlog, slots, omega, *, cost: float = 1.0, balance: float = 1.0):
    """``E(w)`` of the module docstring. ``assign`` (..., K) int, ``p`` (K, W) s, ``backlog``, ``slots``, ``omega`` (W,)."""
    p = jnp.asarray(p)
    a = p / jnp.asarray(slots)[None, :]
    k = jnp.arange(p.shape[0])
    load = jax.vmap(lambda w: jax.ops.segment_sum(a[k, w], w, num_segments=p.shape[1]))(
        jnp.reshape(assign, (-1, p.shape[0])))
    load = load.reshape(*jnp.shape(assign)[:-1], -1)
    b = jnp.broadcast_to(jnp.asarray(backlog, load.dtype), load.shape)
    om = jnp.broadcast_to(jnp.asarray(omega, load.dtype), load.shape)
    return cost * p[k, assign].sum(-1) + balance * jnp.sum(om * (b + load) ** 2, -1)


class AssignmentQUBO(NamedTuple):
    """A QUBO for assignment and how to read it: variable ``v`` is ``x[task[v], worker[v]]`` (slack bits: -1)."""

    qubo: QUBO
    task: np.ndarray  # (V,) int64
    worker: np.ndarray  # (V,) int64


def assignment_qubo(p: np.ndarray, eligible: np.ndarray, slots, omega, backlog=None, *, cost: float = 1.0,
                    balance: float = 1.0, penalty: float | None = None, budget=None, slack_bits: int = 3,
                    links: tuple[np.ndarray, np.ndarray, float] | None = None) -> AssignmentQUBO:
    """The assignment QUBO of the module docstring for K tasks on W workers.

    Args:
        p: (K, W) predicted service times, s.
        eligible: (K, W) bool; ineligible pairs get no variable.
        slots: (W,) concurrent slots.
        omega: (W,) balance weights ``slots * speed`` (see :func:`balance_weights`).
        backlog: (W,) s already queued (default 0).
        penalty: weight of the one-hot, budget and link penalties (default: larger than any energy a
            single task can change, so a violation never pays).
        budget: (W,) optional time budget per worker, s, as ``penalty·(load + slack − budget)²`` with
            ``slack_bits`` binary slack variables on a grid of ``budget/(2^bits − 1)``. A *soft* budget: a
            load over the budget by less than a grid step can cost less than a feasible load that falls
            between grid points, so it is exact only when loads land on the grid (tested both ways).
        links: ``(pairs (E, 2) task indices, fidelity (W, W), min_fidelity)``: dependent quantum pairs.
    """
    p = np.asarray(p, np.float64)
    k, w = p.shape
    eligible = np.asarray(eligible, bool)
    if eligible.shape != (k, w):
        raise ConfigurationError(f"Argument `eligible` must have shape ({k}, {w}), but has shape {eligible.shape}")
    slots = np.broadcast_to(np.asarray(slots, np.float64), (w,))
    omega = np.broadcast_to(np.asarray(omega, np.float64), (w,))
    b = np.zeros(w) if backlog is None else np.asarray(backlog, np.float64)
    a = p / slots
    tasks, workers = np.nonzero(eligible)
    nv = tasks.size
    if penalty is None:
        penalty = 2.0 * (cost * p[eligible].max() + balance * omega.max() * ((b.max() + a[eligible].sum()) ** 2)) + 1.0
    n_slack = slack_bits * w if budget is not None else 0
    q = np.zeros((nv + n_slack, nv + n_slack))
    av = a[tasks, workers]
    ov = omega[workers]
    same_worker = workers[:, None] == workers[None, :]
    # balance: ω_j (b_j + Σ a x)^2 ; pairs on the same worker off the diagonal, x_i^2 = x_i on it
    q[:nv, :nv] += balance * np.where(same_worker, ov[:, None] * av[:, None] * av[None, :], 0.0)
    idx = np.arange(nv)
    q[idx, idx] += 2.0 * balance * ov * b[workers] * av + cost * p[tasks, workers]
    offset = balance * float((omega * b**2).sum())
    # one-hot: penalty (Σ_j x_tj - 1)^2 = penalty (1 - Σ x + Σ_{j != k} x_j x_k)
    same_task = tasks[:, None] == tasks[None, :]
    q[:nv, :nv] += penalty * np.where(same_task & ~np.eye(nv, dtype=bool), 1.0, 0.0)
    q[idx, idx] -= penalty
    offset += penalty * k
    if budget is not None:
        budget = np.broadcast_to(np.asarray(budget, np.float64), (w,))
        step = budget / (2**slack_bits - 1)
        for j in range(w):
            # penalty (Σ_t a x + Σ_k step 2^k s_k - budget_j)^2 with linear coefficients c
            coef = np.concatenate([np.where(workers == j, av, 0.0), np.zeros(n_slack)])
            coef[nv + slack_bits * j: nv + slack_bits * (j + 1)] = step[j] * 2.0 ** np.arange(slack_bits)
            q += penalty * np.outer(coef, coef)
            q[np.arange(q.shape[0]), np.arange(q.shape[0])] -= 2.0 * penalty * budget[j] * coef
            offset += penalty * budget[j] ** 2
    if links is not None:
        pairs, fidelity, fmin = links
        for t, u in np.asarray(pairs, np.int64).reshape(-1, 2):
            for vi in np.flatnonzero(tasks == t):
                for vj in np.flatnonzero(tasks == u):
                    ja, jb = workers[vi], workers[vj]
                    if ja != jb and fidelity[ja, jb] < fmin:
                        q[vi, vj] += penalty / 2.0
                        q[vj, vi] += penalty / 2.0
    var_task = np.concatenate([tasks, np.full(n_slack, -1)])
    var_worker = np.concatenate([workers, np.full(n_slack, -1)])
    return AssignmentQUBO(make_qubo(q, offset), var_task, var_worker)


def decode(aq: AssignmentQUBO, x: np.ndarray, k: int) -> np.ndarray:
    """Assignment (K,) from a QUBO state ``x`` (V,): the chosen worker per task, -1 where one-hot fails."""
    x = np.asarray(x).astype(bool)
    out = np.full(k, -1, np.int64)
    for t in range(k):
        chosen = np.flatnonzero(x & (aq.task == t))
        if chosen.size == 1:
            out[t] = aq.worker[chosen[0]]
    return out


@partial(jax.jit, static_argnames=("iterations", "replicas"))
def _anneal_windows(key, p, elig, valid, backlog, init, slots, omega, betas, fraction, cost, balance, *, iterations,
                    replicas):
    n_win, k, w = p.shape
    rows = jnp.arange(k)

    def loads(assign, a_win, valid_win):  # (R, K) -> (R, W)
        contrib = jnp.where(valid_win[None, :], a_win[rows, assign], 0.0)
        return jax.vmap(lambda x, c: jax.ops.segment_sum(c, x, num_segments=w))(assign, contrib)

    def energy(assign, p_win, a_win, valid_win, b):
        c = jnp.where(valid_win[None, :], p_win[rows, assign], 0.0).sum(-1)
        return cost * c + balance * jnp.sum(omega[None, :] * (b[None, :] + loads(assign, a_win, valid_win)) ** 2, -1)

    def window(key_w, p_win, elig_win, valid_win, b, init_win):
        a_win = jnp.where(elig_win, p_win / slots[None, :], 0.0)
        assign0 = jnp.broadcast_to(init_win, (replicas, k))
        e0 = energy(assign0, p_win, a_win, valid_win, b)

        def it(carry, xs_i):
            assign, best, best_e = carry
            key_i, beta = xs_i
            k_mask, k_draw = jax.random.split(key_i)
            load = loads(assign, a_win, valid_win)  # (R, W)
            mine = a_win[rows, assign]  # (R, K) own drain time
            own = jax.nn.one_hot(assign, w, dtype=p.dtype)  # (R, K, W)
            base = b[None, None, :] + load[:, None, :] - own * mine[..., None]  # load of j without task t
            new = base + a_win[None]
            de = cost * p_win[None] + balance * omega[None, None, :] * (new**2 - base**2)  # (R, K, W)
            logits = jnp.where(elig_win[None], -beta * de, -jnp.inf)
            draw = jax.random.categorical(k_draw, logits, axis=-1).astype(assign.dtype)
            move = jax.random.bernoulli(k_mask, fraction, (replicas, k)) & valid_win[None, :]
            assign = jnp.where(move, draw, assign)
            e = energy(assign, p_win, a_win, valid_win, b)
            better = e < best_e
            best = jnp.where(better[:, None], assign, best)
            best_e = jnp.minimum(e, best_e)
            return (assign, best, best_e), None

        keys = jax.random.split(key_w, iterations)
        (_, best, best_e), _ = jax.lax.scan(it, (assign0, assign0, e0), (keys, betas))
        r = jnp.argmin(best_e)
        return best[r], best_e[r], e0[0]

    # Windows are independent given their backlogs, so they anneal side by side (vmap), not in sequence.
    keys = jax.random.split(key, n_win)
    return jax.vmap(window)(keys, p, elig, valid, backlog, init)


class AnnealOutcome(NamedTuple):
    assign: np.ndarray  # (N,) worker per task
    energy: np.ndarray  # (windows,) best energy per window (normalised units)
    initial_energy: np.ndarray  # (windows,) energy of the initial assignment
    window: int  # tasks per window (the whole instance when it is one window)


def window_size(arrival: np.ndarray, p: np.ndarray, slots: np.ndarray, config: PlannerConfig) -> int:
    """Tasks per window: ``config.window``, or automatically

    * the whole instance (up to 4,096 tasks) when it arrives as a batch (arrival span < mean service time);
    * otherwise ``2 · Σ slots`` tasks (clamped to [16, 512]): about as many tasks as the cluster serves at
      once, because the window energy treats a window as one batch and ignores arrival times inside it.
    """
    if config.window is not None:
        if config.window < 1:
            raise ConfigurationError(f"PlannerConfig.window must be >= 1, but is {config.window}")
        return int(config.window)
    n = len(arrival)
    span = float(arrival[-1] - arrival[0]) if n else 0.0
    if span < float(np.mean(np.min(p, axis=1))):
        return min(n, 4096)
    return int(np.clip(2 * int(np.sum(slots)), 16, 512))


def balance_weights(cluster: Cluster) -> np.ndarray:
    """``ω_j = slots_j · speed_j / mean``: the balance weights of the energy, (W,)."""
    omega = cluster.slots * cluster.speed
    return omega / omega.mean()


def window_backlogs(arrival, finish, assign, slots, starts_idx: np.ndarray, w: int) -> np.ndarray:
    """Backlog (s) of each worker when each window opens, from a predicted schedule, (windows, W).

    ``b_j = max(0, latest predicted finish on j among earlier tasks − the window's first arrival) / slots_j``
    for multi-slot workers approximated by the latest finish spread over the slots.
    """
    arrival = np.asarray(arrival, np.float64)
    n = arrival.size
    last = np.full((n + 1, w), -np.inf)
    rows = np.full((n, w), -np.inf)
    rows[np.arange(n), np.asarray(assign)] = np.asarray(finish, np.float64)
    last[1:] = np.maximum.accumulate(rows, axis=0)
    t0 = arrival[np.minimum(starts_idx, n - 1)]
    b = np.maximum(last[starts_idx] - t0[:, None], 0.0)
    return b / np.maximum(np.asarray(slots, np.float64), 1.0)


def anneal_assignment(arrival, p, eligible, slots, omega, init, key,
                      config: PlannerConfig = PlannerConfig(), finish=None) -> AnnealOutcome:
    """Anneal the assignment of N tasks (arrival order) in windows. ``p``/``eligible`` (N, W), ``init`` (N,).

    ``finish`` (N,): predicted finish times of ``init`` (e.g. from EFT); each window's backlog is read
    from it (:func:`window_backlogs`), which decouples the windows so they anneal in parallel. Without it
    the backlog is zero (a batch instance). Earlier windows' annealed moves do not update later backlogs.
    """
    p = np.asarray(p, np.float64)
    n, w = p.shape
    if not 0.0 < config.fraction <= 1.0:
        raise ConfigurationError(f"PlannerConfig.fraction must be in (0, 1], but is {config.fraction}")
    scale = float(np.mean(np.min(np.where(eligible, p, np.inf), axis=1)))
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    k = min(window_size(np.asarray(arrival), np.where(eligible, p, np.inf), np.asarray(slots), config), n)
    n_win = -(-n // k)
    m = n_win * k
    pad = m - n
    pp = np.concatenate([p / scale, np.zeros((pad, w))]).reshape(n_win, k, w).astype(np.float32)
    el = np.concatenate([eligible, np.ones((pad, w), bool)]).reshape(n_win, k, w)
    valid = (np.arange(m) < n).reshape(n_win, k)
    starts = np.arange(n_win) * k
    if finish is None:
        backlog = np.zeros((n_win, w))
    else:
        backlog = window_backlogs(arrival, finish, init, slots, starts, w)
    init = np.concatenate([np.asarray(init, np.int64), np.zeros(pad, np.int64)]).reshape(n_win, k)
    betas = np.geomspace(config.beta[0], config.beta[1], config.iterations).astype(np.float32)
    assign, e_best, e_init = _anneal_windows(
        key, jnp.asarray(pp), jnp.asarray(el), jnp.asarray(valid), jnp.asarray(backlog / scale, jnp.float32),
        jnp.asarray(init, jnp.int32), jnp.asarray(np.asarray(slots, np.float32)),
        jnp.asarray(np.asarray(omega, np.float32)), jnp.asarray(betas), jnp.float32(config.fraction),
        jnp.float32(config.cost), jnp.float32(config.balance), iterations=config.iterations, replicas=config.replicas)
    return AnnealOutcome(np.asarray(assign).reshape(-1)[:n].astype(np.int64), np.asarray(e_best), np.asarray(e_init), k)


def refine_makespan(assign, p, eligible, slots, *, max_moves: int = 10_000) -> np.ndarray:
    """Move or swap tasks off the worker with the largest predicted drain time while the maximum falls.

    ``assign`` (K,), ``p``/``eligible`` (K, W); returns a new (K,) assignment whose predicted makespan
    ``max_j Σ_{w_t = j} p[t, j] / slots_j`` is never larger (tasks treated as all present at once).
    """
    assign = np.asarray(assign, np.int64).copy()
    p = np.asarray(p, np.float64)
    a = np.where(eligible, p / np.asarray(slots, np.float64), np.inf)
    k, w = p.shape
    load = np.bincount(assign, weights=a[np.arange(k), assign], minlength=w)
    for _ in range(max_moves):
        j = int(np.argmax(load))
        top = load[j]
        mine = np.flatnonzero(assign == j)
        if mine.size == 0:
            break
        # moves: task t from j to i
        new_i = load[None, :] + a[mine]  # (m, W)
        new_j = top - a[mine, j]  # (m,)
        others = np.delete(np.arange(w), j)
        rest = np.max(np.where(np.arange(w)[None, :] == j, -np.inf, load[None, :]), axis=1) if w > 1 else np.zeros(1)
        cand = np.maximum(np.maximum(new_i, new_j[:, None]), rest[0])
        cand[:, j] = np.inf
        # the third-largest load also bounds the result when i is the second largest; recompute exactly below
        t_idx, i_idx = np.unravel_index(np.argmin(cand), cand.shape)
        t, i = int(mine[t_idx]), int(i_idx)
        if np.isfinite(cand[t_idx, i_idx]):
            trial = load.copy()
            trial[j] -= a[t, j]
            trial[i] += a[t, i]
            if trial.max() < top - 1e-12:
                assign[t], load = i, trial
                continue
        # swaps: t on j with u on i (first improving one)
        improved = False
        for i in others[np.argsort(load[others])]:
            theirs = np.flatnonzero(assign == i)
            if theirs.size == 0:
                continue
            dj = -a[mine, j][:, None] + a[theirs, j][None, :]
            di = -a[theirs, i][None, :] + a[mine, i][:, None]
            m = np.maximum(top + dj, load[i] + di)
            ti, ui = np.unravel_index(np.argmin(m), m.shape)
            if m[ti, ui] < top - 1e-12:
                trial = load.copy()
                trial[j] += dj[ti, ui]
                trial[i] += di[ti, ui]
                if trial.max() < top - 1e-12:
                    assign[mine[ti]], assign[theirs[ui]] = i, j
                    load, improved = trial, True
                    break
        if not improved:
            break
    return assign


def annealing_plan(workload: Workload, cluster: Cluster, predicted: np.ndarray, *, seed: int = 0,
                   config: PlannerConfig = PlannerConfig()) -> Plan:
    """Plan with the annealer: EFT (or random) warm start, windowed annealing, makespan refinement.

    Args:
        predicted: (N, W) believed service times, s.
        seed: seeds the annealer (``jax.random.key(seed)``) and a random warm start.
    """
    predicted = np.asarray(predicted, np.float64)
    eligible = cluster.eligible(workload)
    if config.init not in ("eft", "random"):
        raise ConfigurationError(f"PlannerConfig.init must be 'eft' or 'random', but is {config.init!r}")
    # The EFT schedule gives the warm start and, for streams, each window's backlog.
    greedy = list_schedule(workload, cluster, predicted, rule="eft")
    init = greedy.worker
    if config.init == "random":
        rng = np.random.default_rng(seed)
        init = np.argmax(np.where(eligible, rng.random(eligible.shape), -1.0), axis=1)
    out = anneal_assignment(workload.arrival, predicted, eligible, cluster.slots, balance_weights(cluster), init,
                            jax.random.key(seed), config, finish=greedy.finish if config.init == "eft" else None)
    assign = out.assign
    if config.refine and out.window >= workload.n:  # one window: a batch, where makespan is the objective
        assign = refine_makespan(assign, predicted, eligible, cluster.slots)
    if workload.edges.size:
        priority = -upward_rank(workload, predicted)  # precedence-aware queue order
    elif config.order == "spt":
        priority = predicted[np.arange(workload.n), assign]
    else:
        priority = workload.arrival.astype(np.float64)
    assign = repair_links(workload, cluster, assign)
    return Plan(assign, priority)
