"""Metrics of a :class:`~qsn.scheduler.simulator.Schedule`: latency, TTFT, makespan, SLOs, goodput, utilisation, energy.

Definitions (LLM ones as in vLLM ``benchmarks/serve.py`` and DistServe):

* latency = finish − arrival; TTFT = first token − arrival; TPOT = (finish − first token)/(output − 1);
* makespan = last finish − first arrival;
* SLO attainment = fraction of tasks that meet every SLO that applies: their own ``deadline``, and for
  LLM requests the ``ttft`` and ``tpot`` limits given to :func:`metrics`;
* goodput = tasks meeting their SLOs per second of makespan (the rate-sweep form, the highest request
  rate at which ≥ 90% meet them, is :func:`qsn.scheduler.suites.goodput_rate`);
* utilisation = busy slot-seconds / (slots × makespan);
* energy proxy = Σ_workers power_busy × busy + power_idle × (makespan − busy/slots), joules.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qsn.errors import InvalidInputError
from qsn.scheduler.simulator import Schedule
from qsn.scheduler.task import Cluster, Workload

__all__ = ["SLO", "metrics", "slo_met"]


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
        # TPOT is defined over the tokens after the first; a one-token output has none and meets it
        steps = workload.output_tokens - 1
        tpot = np.where(steps > 0, (schedule.finish - schedule.first_token) / np.maximum(steps, 1), 0.0)
        ok &= (ttft <= slo.ttft) & (tpot <= slo.tpot)
    return ok


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
        "latency_mean": float(latency.mean()),
        "latency_p50": float(np.percentile(latency, 50)),
        "latency_p99": float(np.percentile(latency, 99)),
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
        ttft = schedule.first_token - workload.arrival
        out.update(ttft_mean=float(ttft.mean()), ttft_p50=float(np.percentile(ttft, 50)),
                   ttft_p99=float(np.percentile(ttft, 99)))
    return out
