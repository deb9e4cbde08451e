"""Metrics of a :class:`~qsn.scheduler.simulator.Schedule`: latency, TTFT, makespan, SLOs, goodput, utilisation, energy.

Definitions (LLM ones as in vLLM ``benchmarks/serve.py`` and DistServe):

* latency = finish − arrival; TTFT = first token − arrival; TPOT = (finish − first token)/(output − 1),
  over requests with more than one output token (the prefill emits the first token, as in the service
  model, so TPOT is the mean decode step); normalised latency = latency / output tokens;
* each distribution is reported as mean, p50, p90, p95 and p99 (``latency_*``; LLM: ``ttft_*``, ``tpot_*``),
  plus output-token throughput (tokens per second of makespan);
* makespan = last finish − first arrival;
* SLO attainment = fraction of tasks that meet every SLO that applies: their own ``deadline``, and for
  LLM requests the ``ttft`` and ``tpot`` limits given to :func:`metrics`;
* goodput = tasks meeting their SLOs per second of makespan (the rate-sweep form, the highest request
  rate at which ≥ 90% meet them, is :func:`qsn.scheduler.suites.goodput_rate`);
* utilisation = busy slot-seconds / (slots × makespan); per resource (slots, GPUs, CPU cores, memory), the
  measured :func:`resource_utilisation` = held resource-seconds / available resource-seconds over a window;
* energy proxy = Σ_workers power_busy × busy + power_idle × (makespan − busy/slots), joules.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qsn.errors import InvalidInputError
from qsn.scheduler.simulator import Schedule
from qsn.scheduler.task import Cluster, Workload

__all__ = ["SLO", "metrics", "slo_met", "tpot", "resource_utilisation", "PERCENTILES"]

PERCENTILES = (50, 90, 95, 99)  # of every reported distribution, beside its mean


class SLO(NamedTuple):
    """Service-level objectives in seconds (inf = none). Task deadlines always apply."""

    latency: float = np.inf
    ttft: float = np.inf
    tpot: float = np.inf


def slo_met(workload: Workload, schedule: Schedule, slo: SLO = SLO()) -> np.ndarray:
    """Which tasks meet every SLO that applies to them, (N,) bool."""
    latency = schedule.finish - workload.arrival
    ok = (schedule.finish <= workload.deadline) & (latency <= slo.latency)
    if workload.llm:
        ttft = schedule.first_token - workload.arrival
        per_token = tpot(workload, schedule)  # a one-token output has no TPOT and meets any limit
        ok &= (ttft <= slo.ttft) & ~(per_token > slo.tpot)
    return ok


def tpot(workload: Workload, schedule: Schedule) -> np.ndarray:
    """Time per output token after the first, ``(finish − first token)/(output − 1)``, (N,) s; NaN where a request
    has at most one output token.

    Example:
        >>> from qsn.scheduler.simulator import Schedule
        >>> wl = Workload.from_arrays(arrival=[0.0, 0.0], output_tokens=[5, 1], llm=True)
        >>> z = np.zeros(2)
        >>> tpot(wl, Schedule(z, np.array([3.0, 1.0]), z, np.array([1.0, 1.0]), z, z, z, z, z, z)).tolist()
        [0.5, nan]
    """
    steps = workload.output_tokens - 1
    return np.where(steps > 0, (schedule.finish - schedule.first_token) / np.maximum(steps, 1), np.nan)


def _distribution(name: str, values: np.ndarray) -> dict[str, float]:
    """``{name}_mean`` and ``{name}_p{q}`` for q in :data:`PERCENTILES`, over the finite values (NaN if none)."""
    v = values[np.isfinite(values)]
    if not v.size:
        return {f"{name}_mean": float("nan"), **{f"{name}_p{q}": float("nan") for q in PERCENTILES}}
    return {f"{name}_mean": float(v.mean()), **{f"{name}_p{q}": float(np.percentile(v, q)) for q in PERCENTILES}}


def metrics(workload: Workload, cluster: Cluster, schedule: Schedule, slo: SLO = SLO()) -> dict[str, float]:
    """A flat dict of metrics (seconds, fractions, joules) for reports and ``--json``."""
    if np.isnan(schedule.finish).any():
        i = int(np.flatnonzero(np.isnan(schedule.finish))[0])
        raise InvalidInputError(f"The schedule did not finish task {i}; metrics need a complete schedule")
    latency = schedule.finish - workload.arrival
    wait = schedule.start - workload.arrival
    makespan = float(schedule.finish.max() - workload.arrival.min())
    if not makespan > 0:
        raise InvalidInputError("The schedule's makespan is 0 (every task has zero work): rates and utilisation "
                                "are undefined")
    met = slo_met(workload, schedule, slo)
    capacity = cluster.slots * makespan
    idle = np.maximum(makespan - schedule.busy / cluster.slots, 0.0)
    out = {
        "tasks": float(workload.n),
        **_distribution("latency", latency),
        "wait_mean": float(wait.mean()),
        "makespan": makespan,
        "slo_attainment": float(met.mean()),
        "goodput": float(met.sum() / makespan),
        "throughput": float(workload.n / makespan),
        "utilisation": float(schedule.busy.sum() / capacity.sum()),
        "energy_j": float((cluster.power_busy * schedule.busy + cluster.power_idle * idle).sum()),
        "restarts": float(schedule.restarts.sum()),
        "lost_s": float(schedule.lost.sum()),
    }
    if workload.llm:
        out.update(_distribution("ttft", schedule.first_token - workload.arrival))
        out.update(_distribution("tpot", tpot(workload, schedule)))
        out["normalised_latency_mean"] = float(np.mean(latency / np.maximum(workload.output_tokens, 1)))
        out["token_throughput"] = float(workload.output_tokens.sum() / makespan)
    return out


def resource_utilisation(workload: Workload, cluster: Cluster, schedule: Schedule,
                         window: tuple[float, float] | None = None) -> dict[str, float]:
    """Measured utilisation of each resource: resource-seconds held by running tasks / resource-seconds available.

    ``held = Σ_tasks demand × |[start, finish] ∩ window|`` and ``available = Σ_workers capacity × (t1 − t0)``,
    for ``slots`` (demand 1), ``gpu`` (``Workload.gpu`` on ``Cluster.gpus``), ``cpu`` (cores) and ``memory``
    (GiB); a resource is left out where the cluster has none of it or an unlimited amount. Exact for runs
    without preemptions or failures (a task is taken to hold its demand from its first start to its finish).

    Args:
        window: ``(t0, t1)`` in s; default the run, first arrival to last finish. The arrival window (first
            to last arrival) measures the load while tasks arrive, without the drain at the end.

    Example:
        >>> from qsn.scheduler import Cluster, Worker, Workload, simulate
        >>> from qsn.scheduler.policy import Fifo
        >>> wl = Workload.from_arrays(arrival=[0.0, 0.0], work=[2.0, 4.0], gpu=[0.5, 1.0])
        >>> cl = Cluster.from_workers([Worker(slots=2, gpus=2)])
        >>> resource_utilisation(wl, cl, simulate(wl, cl, Fifo()))     # GPU: (0.5·2 + 1·4) / (2·4)
        {'slots': 0.75, 'gpu': 0.625}
    """
    t0, t1 = (float(workload.arrival.min()), float(schedule.finish.max())) if window is None else map(float, window)
    if not t1 > t0:
        raise InvalidInputError(f"Argument `window` must have t1 > t0, but is ({t0}, {t1})")
    held = np.clip(np.minimum(schedule.finish, t1) - np.maximum(schedule.start, t0), 0.0, None)  # (N,) s
    out = {}
    for name, demand, capacity in (("slots", np.ones(workload.n), cluster.slots), ("gpu", workload.gpu, cluster.gpus),
                                   ("cpu", workload.cpu, cluster.cpu), ("memory", workload.memory, cluster.memory)):
        total = float(np.sum(capacity))
        if total > 0 and np.isfinite(total):
            out[name] = float(np.sum(demand * held) / (total * (t1 - t0)))
    return out
