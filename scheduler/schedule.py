"""One entry point for every policy: ``plan(workload, cluster, "fusion")`` and ``run(...)`` → metrics.

Policies by name (:data:`POLICY_NAMES`):

* classical baselines on the naive size prediction (:func:`~qsn.scheduler.predict.naive_work`):
  ``fifo``, ``sjf``, ``round_robin``, ``random``, ``least_loaded``, ``eft``, ``heft``;
* ``sa``: the annealer alone (random warm start, no refinement, naive predictions);
* ``anneal``: the planner (EFT warm start, annealing, refinement), naive predictions;
* ``fusion``: fused predictions (naive + spike-feature readout + raw readout, adaptive weights) → planner;
* ``fusion_eft``: fused predictions → EFT (isolates the planner's contribution).

Example:
    >>> from qsn.scheduler import schedule, workloads
    >>> wl, cl = workloads.batch(500, 8, seed=0)
    >>> schedule.run(wl, cl, "eft")["latency_mean"]
"""

from __future__ import annotations

import time
from typing import Any

from qsn.errors import ConfigurationError
from qsn.scheduler import policies
from qsn.scheduler.fusion import FusionConfig, fusion_policy
from qsn.scheduler.metrics import SLO, metrics
from qsn.scheduler.planner import PlannerConfig, annealing_plan
from qsn.scheduler.predict import naive_work
from qsn.scheduler.service import durations
from qsn.scheduler.simulator import Plan, repair_links, simulate
from qsn.scheduler.task import Cluster, Workload

__all__ = ["POLICY_NAMES", "plan", "run"]

POLICY_NAMES = (*policies.POLICIES, "sa", "anneal", "fusion", "fusion_eft")


def plan(workload: Workload, cluster: Cluster, policy: str, *, seed: int = 0,
         planner: PlannerConfig = PlannerConfig(), fusion: FusionConfig = FusionConfig()) -> tuple[Plan, dict[str, Any]]:
    """Plan ``workload`` on ``cluster`` with the named policy; returns the plan and info (``plan_s`` wall time)."""
    if policy not in POLICY_NAMES:
        raise ConfigurationError(f"Unknown policy {policy!r}; known: {', '.join(POLICY_NAMES)}")
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    if policy.startswith("fusion"):
        cfg = fusion._replace(planner="eft") if policy == "fusion_eft" else fusion
        p, result = fusion_policy(workload, cluster, seed=seed, config=cfg, planner=planner)
        info["fusion"] = result
    else:
        predicted = durations(workload, cluster, work=naive_work(workload))
        if policy == "sa":
            p = annealing_plan(workload, cluster, predicted, seed=seed, config=planner._replace(init="random", refine=False))
        elif policy == "anneal":
            p = annealing_plan(workload, cluster, predicted, seed=seed, config=planner)
        else:
            p = policies.POLICIES[policy](workload, cluster, predicted, seed=seed)
    # a policy that ignores quantum links gets its dependent quantum children moved next to their parents
    p = Plan(repair_links(workload, cluster, p.worker), p.priority)
    info["plan_s"] = time.perf_counter() - t0
    return p, info


def run(workload: Workload, cluster: Cluster, policy: str, *, seed: int = 0, slo: SLO = SLO(), faults: bool = True,
        planner: PlannerConfig = PlannerConfig(), fusion: FusionConfig = FusionConfig()) -> dict[str, float]:
    """Plan, simulate and measure: the metrics of :func:`~qsn.scheduler.metrics.metrics` plus ``plan_s``."""
    p, info = plan(workload, cluster, policy, seed=seed, planner=planner, fusion=fusion)
    sched = simulate(workload, cluster, p, faults=faults, seed=seed)
    out = metrics(workload, cluster, sched, slo)
    out["plan_s"] = float(info["plan_s"])
    return out


