"""qsn.scheduler — task scheduling that fuses a quantum-inspired planner with spike-pattern features.

The pieces, each in its own module:

* model: :class:`Task`, :class:`Worker`, :class:`Workload`, :class:`Cluster` (``task``); service times (``service``);
* workloads: scenario generators, CSV and trace loaders, noise and fault injection (``workloads``);
* the discrete-event simulator (``simulator``) and metrics (``metrics``); online policies (``policy``), the
  preemptive SRPT and MLFQ (``preemptive``), online size predictors (``predictors``);
* the real executor: the same policies dispatching Python callables onto a Dask cluster (``executor``, needs
  ``qsn[dask]``);
* predictors: spike features of a QSN population (``features``), online optax readouts (``readout``),
  naive and learned size predictions (``predict``), their adaptive fusion (``fusion``);
* planners: the assignment planner (``planner``) on the generic QUBO solvers of :mod:`qsn.qubo` (``qubo``,
  ``anneal`` and ``qaoa`` here are aliases of its modules), classical baselines (``policies``), exact optima
  (``exact``);
* :func:`plan` / :func:`run` by policy name (``schedule``); statistics (``stats``); benchmark suites (``suites``).

Example:
    >>> from qsn.scheduler import workloads, run
    >>> wl, cl = workloads.batch(500, 8, seed=0)
    >>> run(wl, cl, "fusion")["latency_mean"]  # doctest: +SKIP
"""

from qsn.scheduler import workloads
from qsn.scheduler.metrics import SLO, metrics
from qsn.scheduler.schedule import POLICY_NAMES, plan, run
from qsn.scheduler.simulator import Plan, Schedule, check_plan, simulate
from qsn.scheduler.task import Cluster, Task, Worker, Workload

__all__ = [
    "Task", "Worker", "Workload", "Cluster", "Plan", "Schedule", "SLO",
    "simulate", "check_plan", "metrics", "plan", "run", "POLICY_NAMES", "workloads",
]
