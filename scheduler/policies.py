"""Classical scheduling policies (the baselines): FIFO, SJF, round-robin, random, least-loaded, EFT, HEFT.

Every policy is a function ``policy(workload, cluster, predicted, *, seed=0) -> Plan`` where
``predicted`` (N, W) is the service time the policy *believes* (estimates, never the truth; see
:mod:`qsn.scheduler.predict`). Online policies (FIFO, SJF) leave ``worker = -1`` and let the simulator's
global queue dispatch to the free worker that finishes first; the others fix a worker per task.

The list-scheduling policies share one jitted scan (:func:`list_schedule`) over tasks in a given order,
each worker modelled as ``slots`` parallel servers whose predicted free times are carried:

* ``least_loaded``: the eligible worker whose earliest slot frees first (ignores the task's speed there);
* ``eft``: the eligible worker that would finish the task first (greedy earliest finish time);
* ``heft``: EFT in decreasing upward rank (Topcuoglu et al., 2002), for DAGs; a task becomes ready when
  its parents' predicted finishes have passed.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.scheduler.simulator import ONLINE, Plan
from qsn.scheduler.task import Cluster, Workload

__all__ = [
    "ListSchedule", "list_schedule", "upward_rank", "parents_matrix",
    "fifo", "sjf", "round_robin", "random", "least_loaded", "eft", "heft", "POLICIES",
]


class ListSchedule(NamedTuple):
    """Predicted outcome of a list schedule: worker (N,) int, start (N,) and finish (N,) s."""

    worker: np.ndarray
    start: np.ndarray
    finish: np.ndarray


def parents_matrix(workload: Workload) -> np.ndarray:
    """Parents of each task, padded with -1: (N, max in-degree) int32 (at least one column)."""
    n = workload.n
    if not workload.edges.size:
        return np.full((n, 1), -1, np.int32)
    indeg = np.bincount(workload.edges[:, 1], minlength=n)
    out = np.full((n, max(int(indeg.max()), 1)), -1, np.int32)
    order = np.argsort(workload.edges[:, 1], kind="stable")
    e = workload.edges[order]
    first = np.concatenate([[0], np.cumsum(indeg)[:-1]])
    col = np.arange(e.shape[0]) - first[e[:, 1]]
    out[e[:, 1], col] = e[:, 0]
    return out


def _bucket(n: int) -> int:
    # Pad task counts to a few sizes so repeated planning reuses compiled scans.
    return max(64, 1 << int(np.ceil(np.log2(n))))


@partial(jax.jit, static_argnames=("rule", "max_slots", "dag"))
def _scan(order, ready, predicted, eligible, slots, parents, *, rule: str, max_slots: int, dag: bool):
    n, w = predicted.shape
    slot_ids = jnp.arange(max_slots, dtype=slots.dtype)
    free0 = jnp.where(slot_ids[None, :] < slots[:, None], 0.0, jnp.inf)  # (W, S): unusable slots never free

    def body(carry, t):
        free, finish = carry
        r = ready[t]
        if dag:  # carrying (N,) finish times costs a copy per step on XLA:CPU, so only DAGs pay for it
            par = parents[t]
            r = jnp.maximum(r, jnp.max(jnp.where(par >= 0, finish[jnp.maximum(par, 0)], -jnp.inf)))
        slot = jnp.argmin(free, axis=1)  # (W,)
        avail = jnp.maximum(free[jnp.arange(w), slot], r)
        end = avail + predicted[t]
        score = avail if rule == "least_loaded" else end
        score = jnp.where(eligible[t], score, jnp.inf)
        j = jnp.argmin(score)
        free = free.at[j, slot[j]].set(end[j])
        if dag:
            finish = finish.at[t].set(end[j])
        return (free, finish), (j, avail[j], end[j])

    finish0 = jnp.full((n if dag else 1,), jnp.inf, predicted.dtype)
    _, (j, start, end) = jax.lax.scan(body, (free0.astype(predicted.dtype), finish0), order)
    return j, start, end


def list_schedule(workload: Workload, cluster: Cluster, predicted: np.ndarray, order=None, *,
                  rule: str = "eft") -> ListSchedule:
    """Greedy list scheduling of tasks in ``order`` (default: arrival) by ``rule`` = ``"eft"`` | ``"least_loaded"``.

    Args:
        predicted: (N, W) believed service times, s.
        order: (N,) a permutation of tasks; parents must come before children (default: arrival order,
            made topological where an edge runs against it).
    Returns:
        :class:`ListSchedule` indexed by task (not by position in ``order``).
    """
    if rule not in ("eft", "least_loaded"):
        raise ConfigurationError(f"Argument `rule` must be 'eft' or 'least_loaded', but is {rule!r}")
    n, w = workload.n, cluster.n
    predicted = np.asarray(predicted, np.float64)
    if predicted.shape != (n, w):
        raise ConfigurationError(f"Argument `predicted` must have shape ({n}, {w}), but has shape {predicted.shape}")
    order = workload.topological_order() if order is None else np.asarray(order, np.int64)
    eligible = cluster.eligible(workload)
    m = _bucket(n)
    pad = m - n
    # Padded tasks: zero duration, ready at t = 0, placed on worker 0 at time 0 without occupying it.
    pred = np.concatenate([predicted, np.zeros((pad, w))]).astype(np.float32)
    elig = np.concatenate([eligible, np.ones((pad, w), bool)])
    ready = np.concatenate([workload.arrival, np.full(pad, -np.inf)]).astype(np.float32)
    par = parents_matrix(workload)
    par = np.concatenate([par, np.full((pad, par.shape[1]), -1, np.int32)])
    full_order = np.concatenate([order, np.arange(n, m)])
    j, s, e = _scan(jnp.asarray(full_order, jnp.int32), jnp.asarray(ready), jnp.asarray(pred), jnp.asarray(elig),
                    jnp.asarray(cluster.slots, jnp.int32), jnp.asarray(par), rule=rule,
                    max_slots=int(cluster.slots.max()), dag=bool(workload.edges.size))
    pos = np.empty(m, np.int64)
    pos[full_order] = np.arange(m)
    take = pos[:n]
    return ListSchedule(np.asarray(j)[take].astype(np.int64), np.asarray(s, np.float64)[take],
                        np.asarray(e, np.float64)[take])


def upward_rank(workload: Workload, predicted: np.ndarray) -> np.ndarray:
    """HEFT upward rank: mean predicted time + the longest rank among children, (N,) s."""
    mean = np.asarray(predicted, np.float64).mean(axis=1)
    rank = mean.copy()
    children = [[] for _ in range(workload.n)]
    for a, b in workload.edges.tolist():
        children[a].append(b)
    for t in workload.topological_order()[::-1]:
        if children[t]:
            rank[t] = mean[t] + max(rank[c] for c in children[t])
    return rank


def fifo(workload: Workload, cluster: Cluster, predicted: np.ndarray, *, seed: int = 0) -> Plan:
    """One global queue in arrival order; the free worker that finishes the head first takes it."""
    return Plan(np.full(workload.n, ONLINE, np.int64), workload.arrival.astype(np.float64))


def sjf(workload: Workload, cluster: Cluster, predicted: np.ndarray, *, seed: int = 0) -> Plan:
    """One global queue, shortest predicted job (on its fastest eligible worker) first."""
    eligible = cluster.eligible(workload)
    fastest = np.min(np.where(eligible, predicted, np.inf), axis=1)
    return Plan(np.full(workload.n, ONLINE, np.int64), fastest.astype(np.float64))


def round_robin(workload: Workload, cluster: Cluster, predicted: np.ndarray, *, seed: int = 0) -> Plan:
    """Task k goes to the next eligible worker in a fixed cycle."""
    eligible = cluster.eligible(workload)
    if eligible.all():
        return Plan(np.arange(workload.n, dtype=np.int64) % cluster.n, workload.arrival.astype(np.float64))
    worker = np.empty(workload.n, np.int64)
    nxt = 0
    for t in range(workload.n):
        cand = np.flatnonzero(np.roll(eligible[t], -nxt))
        worker[t] = (cand[0] + nxt) % cluster.n
        nxt = (worker[t] + 1) % cluster.n
    return Plan(worker, workload.arrival.astype(np.float64))


def random(workload: Workload, cluster: Cluster, predicted: np.ndarray, *, seed: int = 0) -> Plan:
    """A uniformly random eligible worker per task."""
    eligible = cluster.eligible(workload)
    rng = np.random.default_rng(seed)
    u = rng.random(eligible.shape)
    worker = np.argmax(np.where(eligible, u, -1.0), axis=1)
    return Plan(worker.astype(np.int64), workload.arrival.astype(np.float64))


def least_loaded(workload: Workload, cluster: Cluster, predicted: np.ndarray, *, seed: int = 0) -> Plan:
    """Each task (arrival order) to the eligible worker with the earliest predicted free slot."""
    ls = list_schedule(workload, cluster, predicted, rule="least_loaded")
    return Plan(ls.worker, workload.arrival.astype(np.float64))


def eft(workload: Workload, cluster: Cluster, predicted: np.ndarray, *, seed: int = 0) -> Plan:
    """Each task (arrival order) to the eligible worker with the earliest predicted finish."""
    ls = list_schedule(workload, cluster, predicted, rule="eft")
    return Plan(ls.worker, workload.arrival.astype(np.float64))


def heft(workload: Workload, cluster: Cluster, predicted: np.ndarray, *, seed: int = 0) -> Plan:
    """HEFT: tasks by decreasing upward rank, each to its earliest-finish worker; queue priority = −rank."""
    rank = upward_rank(workload, predicted)
    # Decreasing rank is a topological order when every predicted time is > 0; ties broken by arrival.
    order = np.lexsort((np.arange(workload.n), -rank))
    ls = list_schedule(workload, cluster, predicted, order=order, rule="eft")
    return Plan(ls.worker, -rank)


POLICIES: dict[str, Callable[..., Plan]] = {
    "fifo": fifo, "sjf": sjf, "round_robin": round_robin, "random": random,
    "least_loaded": least_loaded, "eft": eft, "heft": heft,
}
