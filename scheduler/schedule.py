"""One entry point for every policy: ``plan(workload, cluster, "fusion")`` and ``run(...)`` → metrics.

Policies by name (:data:`POLICY_NAMES`):

* online (:mod:`qsn.scheduler.policy`; predictors learn from completed tasks only): ``fifo``; ``sjf``
  (shortest first on the user's estimate, else the mean measured size); ``sjf_prompt`` (LLM: shortest
  prompt first); ``sjf_binned`` (the mean measured size of finished tasks in the same quantile bin of the
  prompt length, else of the estimate); ``sjf_boosted`` (gradient-boosted trees on every observed feature,
  needs scikit-learn); ``sjf_oracle`` (ORACLE: the true sizes — a bound, not a policy);
* online and preemptive (:mod:`qsn.scheduler.preemptive`): ``srpt`` (shortest remaining predicted time, on the
  ``sjf`` predictor), ``srpt_binned`` (on the ``sjf_binned`` one), ``srpt_oracle`` (ORACLE: exact SRPT, a bound),
  ``mlfq`` (quanta 0.5 s doubling over 8 levels, skip-join on the prefill for LLM requests);
* static plans, made before the run on the sizes known then (:func:`~qsn.scheduler.predict.prior_work`:
  the estimate, else a prior): ``round_robin``, ``random``, ``least_loaded``, ``eft``, ``heft``;
  ``sa`` (the annealer alone: random warm start, no refinement); ``anneal`` (EFT warm start, annealing,
  refinement);
* ``fusion``: the online fused predictor (naive + spike-feature readout + raw readout, adaptive weights)
  driving shortest-first dispatch on streams, the planner on batch instances;
  ``fusion_eft``: the same predictions → EFT (isolates the planner's contribution).

``aging`` (>= 0) applies linear aging to every shortest-first policy (``sjf*``, ``srpt*``, ``mlfq``, online
``fusion``): see :class:`~qsn.scheduler.policy.ShortestFirst`.

Example:
    >>> from qsn.scheduler import schedule, workloads
    >>> wl, cl = workloads.batch(500, 8, seed=0)
    >>> schedule.run(wl, cl, "eft")["latency_mean"]
"""

from __future__ import annotations

import time
from typing import Any, Callable, Union

from qsn.errors import ConfigurationError
from qsn.scheduler import policies
from qsn.scheduler.fusion import FusionConfig, fusion_policy
from qsn.scheduler.metrics import SLO, metrics
from qsn.scheduler.planner import PlannerConfig, annealing_plan
from qsn.scheduler.policy import Fifo, OnlinePolicy, ShortestFirst
from qsn.scheduler.predict import prior_work
from qsn.scheduler.preemptive import MLFQ, SRPT
from qsn.scheduler.predictors import BinnedMean, Boosted, Estimate, Oracle, PromptLength
from qsn.scheduler.service import durations
from qsn.scheduler.simulator import Plan, Schedule, repair_links, simulate
from qsn.scheduler.task import Cluster, Workload

__all__ = ["POLICY_NAMES", "ONLINE_POLICIES", "ORACLE_POLICIES", "plan", "run", "run_schedule"]

# name -> (workload, aging) -> a fresh online policy
ONLINE_POLICIES: dict[str, Callable[[Workload, float], OnlinePolicy]] = {
    "fifo": lambda wl, aging: Fifo(),
    "sjf": lambda wl, aging: ShortestFirst(Estimate(), aging=aging),
    "sjf_prompt": lambda wl, aging: ShortestFirst(PromptLength(), aging=aging),
    "sjf_binned": lambda wl, aging: ShortestFirst(BinnedMean(), aging=aging),
    "sjf_boosted": lambda wl, aging: ShortestFirst(Boosted(), aging=aging),
    "sjf_oracle": lambda wl, aging: ShortestFirst(Oracle(wl.work), aging=aging),
    "srpt": lambda wl, aging: SRPT(Estimate(), aging=aging),
    "srpt_binned": lambda wl, aging: SRPT(BinnedMean(), aging=aging),
    "srpt_oracle": lambda wl, aging: SRPT(Oracle(wl.work), aging=aging),
    "mlfq": lambda wl, aging: MLFQ(0.5, levels=8, aging=aging, skip_join=True),
}
ORACLE_POLICIES = ("sjf_oracle", "srpt_oracle")  # read true sizes: bounds for comparison, never policies
POLICY_NAMES = (*ONLINE_POLICIES, *(p for p in policies.POLICIES if p not in ONLINE_POLICIES), "sa", "anneal",
                "fusion", "fusion_eft")


def plan(workload: Workload, cluster: Cluster, policy: str, *, seed: int = 0,
         planner: PlannerConfig = PlannerConfig(), fusion: FusionConfig = FusionConfig(),
         aging: float = 0.0) -> tuple[Union[Plan, OnlinePolicy], dict[str, Any]]:
    """The named policy for ``workload`` on ``cluster``: an :class:`~qsn.scheduler.policy.OnlinePolicy` or a
    static :class:`Plan`, and info (``plan_s`` wall time; ``fusion``: the fused predictor, whose ``trace()``
    is filled by the run). ``aging``: of the shortest-first policies.

    Example:
        >>> from qsn.scheduler import workloads
        >>> wl, cl = workloads.interactive(100, 2, seed=0)
        >>> type(plan(wl, cl, "sjf")[0]).__name__, type(plan(wl, cl, "eft")[0]).__name__
        ('ShortestFirst', 'Plan')
    """
    if policy not in POLICY_NAMES:
        raise ConfigurationError(f"Unknown policy {policy!r}; known: {', '.join(POLICY_NAMES)}")
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    if policy in ONLINE_POLICIES:
        p = ONLINE_POLICIES[policy](workload, aging)
    elif policy.startswith("fusion"):
        cfg = fusion._replace(planner="eft") if policy == "fusion_eft" else fusion
        p, info["fusion"] = fusion_policy(workload, cluster, seed=seed, config=cfg, planner=planner, aging=aging)
    else:
        predicted = durations(workload, cluster, work=prior_work(workload))
        if policy == "sa":
            p = annealing_plan(workload, cluster, predicted, seed=seed, config=planner._replace(init="random", refine=False))
        elif policy == "anneal":
            p = annealing_plan(workload, cluster, predicted, seed=seed, config=planner)
        else:
            p = policies.POLICIES[policy](workload, cluster, predicted, seed=seed)
    if isinstance(p, Plan):
        # a policy that ignores quantum links gets its dependent quantum children moved next to their parents
        p = Plan(repair_links(workload, cluster, p.worker), p.priority)
    info["plan_s"] = time.perf_counter() - t0
    return p, info


def run(workload: Workload, cluster: Cluster, policy: str, *, seed: int = 0, slo: SLO = SLO(), faults: bool = True,
        planner: PlannerConfig = PlannerConfig(), fusion: FusionConfig = FusionConfig(),
        aging: float = 0.0) -> dict[str, float]:
    """Plan, simulate and measure: the metrics of :func:`~qsn.scheduler.metrics.metrics` plus ``plan_s`` and
    ``run_s`` (wall time of the simulation, which includes an online policy's own work)."""
    return run_schedule(workload, cluster, policy, seed=seed, slo=slo, faults=faults, planner=planner, fusion=fusion,
                        aging=aging)[0]


def run_schedule(workload: Workload, cluster: Cluster, policy: str, *, seed: int = 0, slo: SLO = SLO(),
                 faults: bool = True, planner: PlannerConfig = PlannerConfig(), fusion: FusionConfig = FusionConfig(),
                 aging: float = 0.0) -> tuple[dict[str, float], Schedule]:
    """:func:`run`, also returning the :class:`~qsn.scheduler.simulator.Schedule` (per-task start, finish, worker)."""
    p, info = plan(workload, cluster, policy, seed=seed, planner=planner, fusion=fusion, aging=aging)
    t0 = time.perf_counter()
    sched = simulate(workload, cluster, p, faults=faults, seed=seed)
    run_s = time.perf_counter() - t0
    out = metrics(workload, cluster, sched, slo)
    out["plan_s"] = float(info["plan_s"])
    out["run_s"] = run_s
    return out, sched


