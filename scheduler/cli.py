"""``qsn schedule``: plan a workload with a policy, simulate it, print the metrics (``--json`` for machines).

Examples::

    qsn schedule --scenario batch --tasks 2000 --workers 8 --policy fusion --json
    qsn schedule --workload my_trace.csv --workers 16 --policy eft
    qsn schedule --trace azure-code --workers 16 --policy sjf_binned --json
    qsn schedule --trace alibaba --trace-dir ../shared/traces --policy least_loaded
    qsn schedule --workload trace.csv --map arrived_at=arrival --map num_prefill_tokens=prompt_tokens ...
    qsn schedule --workload azure_llm_conv_2023.csv --workers 16 --policy sjf --aging 0.5

CSV columns are those of :func:`qsn.scheduler.workloads.load_csv` (``arrival`` and ``work``, or
``prompt_tokens`` and ``output_tokens``; optional ``estimate``, ``priority``, ``memory``, ``qubits``,
``deadline``, ``task_type``, ``deps``); ``arrival`` may hold timestamps (read as seconds since the earliest); the Azure trace's ``TIMESTAMP``,
``ContextTokens``, ``GeneratedTokens`` are read without ``--map`` (``workloads.TRACE_COLUMNS``).
With ``--workload``, ``--trace azure-conv`` or ``--trace azure-code`` the cluster is ``--workers`` identical
workers of ``--speed`` and ``--slots``; ``--trace alibaba`` runs the trace's finished pods on its own GPU nodes
(``workloads.alibaba_pods``, ``workloads.alibaba_nodes``). ``--trace`` reads ``--trace-dir`` or the shared
folders (``workloads.trace_files``) and exits 1 naming a missing file.
"""

from __future__ import annotations

import argparse
import json
import math

__all__ = ["add_parser", "run"]


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``schedule`` subcommand on an ``argparse`` subparsers object."""
    from qsn.scheduler.schedule import POLICY_NAMES
    from qsn.scheduler.workloads import SCENARIOS, TRACES

    p = sub.add_parser(
        "schedule",
        help="plan a workload (CSV or built-in scenario) with a policy, simulate it, print metrics",
        description="Plan tasks onto workers with a policy (classical baselines, the annealing planner, or the "
        "fusion of spike-feature predictions with the planner), run the discrete-event simulator and print "
        "latency, makespan, SLO attainment, utilisation and energy.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workload", metavar="FILE.csv", help="a task CSV (see `qsn.scheduler.workloads.load_csv`)")
    src.add_argument("--scenario", choices=sorted(SCENARIOS), help="a built-in workload generator")
    src.add_argument("--trace", choices=sorted(TRACES),
                     help="a shared real trace at its real arrival times: azure-conv/azure-code on --workers "
                     "identical workers, alibaba (finished pods) on the trace's own GPU nodes")
    p.add_argument("--trace-dir", metavar="PATH", default=None,
                   help="folder of the --trace files (default: $QSN_TRACES, ../shared/traces, /work/shared/traces)")
    p.add_argument("--limit", type=int, default=None, help="keep the first N requests/pods of --trace (default all)")
    p.add_argument("--tasks", type=int, default=1000, help="tasks for --scenario (default %(default)s)")
    p.add_argument("--workers", type=int, default=8, help="workers (default %(default)s)")
    p.add_argument("--speed", type=float, default=1.0, help="worker speed for --workload (default %(default)s)")
    p.add_argument("--slots", type=int, default=1, help="concurrent tasks per worker for --workload (default %(default)s)")
    p.add_argument("--load", type=float, default=0.8, help="offered load of --scenario (default %(default)s)")
    p.add_argument("--policy", choices=POLICY_NAMES, default="fusion", help="policy (default %(default)s)")
    p.add_argument("--aging", type=float, default=0.0,
                   help="linear aging of the shortest-first policies (sjf*, online fusion), s per s waited "
                   "(default %(default)s = none)")
    p.add_argument("--map", action="append", default=[], metavar="THEIRS=OURS",
                   help="rename a CSV column (repeatable), e.g. --map arrived_at=arrival")
    p.add_argument("--slo-latency", type=float, default=math.inf, help="latency SLO, s (default none)")
    p.add_argument("--slo-ttft", type=float, default=math.inf, help="time-to-first-token SLO, s (LLM; default none)")
    p.add_argument("--no-faults", action="store_true", help="do not inject worker failures")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenario, planner and faults (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr (also off with --json)")
    return p


def run(args: argparse.Namespace) -> int:
    """Execute ``qsn schedule``; returns the exit code."""
    from qsn.compile_cache import phase
    from qsn.errors import ConfigurationError
    from qsn.runtime import json_safe
    from qsn.scheduler import workloads
    from qsn.scheduler.metrics import SLO
    from qsn.scheduler.schedule import run as run_policy
    from qsn.scheduler.task import Cluster

    if args.workers < 1:
        raise ConfigurationError(f"Argument `--workers` must be >= 1, but is {args.workers}")
    if not (math.isfinite(args.aging) and args.aging >= 0):
        raise ConfigurationError(f"Argument `--aging` must be a finite number >= 0, but is {args.aging}")
    if args.scenario:
        if args.tasks < 1:
            raise ConfigurationError(f"Argument `--tasks` must be >= 1, but is {args.tasks}")
        wl, cl = workloads.SCENARIOS[args.scenario](args.tasks, args.workers, seed=args.seed, load=args.load)
    elif args.trace:
        if args.limit is not None and args.limit < 1:
            raise ConfigurationError(f"Argument `--limit` must be >= 1, but is {args.limit}")
        files = workloads.trace_files(args.trace, args.trace_dir)
        if args.trace == "alibaba":
            wl = workloads.alibaba_pods(files[0], limit=args.limit)
            cl = workloads.alibaba_nodes(files[1])
        else:
            wl = workloads.azure_llm(files[0], limit=args.limit)
            cl = Cluster.uniform(args.workers, speed=args.speed, slots=args.slots)
    else:
        mapping = {}
        for item in args.map:
            theirs, sep, ours = item.partition("=")
            if not sep or not theirs or not ours:
                raise ConfigurationError(f"Argument `--map` must look like THEIRS=OURS, but is {item!r}")
            mapping[theirs] = ours
        wl = workloads.load_csv(args.workload, columns=mapping or None)
        cl = Cluster.uniform(args.workers, speed=args.speed, slots=args.slots)
    # The planners jit-compile on their first call in a process (the persistent compile cache keeps
    # those compiles for the next process); the line says how long planning and simulating took.
    label = (f"planning and simulating {wl.n:,} task{'s' * (wl.n != 1)} on {cl.n} worker{'s' * (cl.n != 1)} "
             f"with {args.policy}")
    with phase(label, enabled=not (args.json or args.no_progress), compiles=True):
        m = run_policy(wl, cl, args.policy, seed=args.seed, slo=SLO(latency=args.slo_latency, ttft=args.slo_ttft),
                       faults=not args.no_faults, aging=args.aging)
    m = {"policy": args.policy, "workload": args.workload or args.scenario or args.trace, "workers": cl.n, **m}
    if args.json:
        print(json.dumps(json_safe(m), indent=2))
    else:
        width = max(len(k) for k in m)
        for k, v in m.items():
            print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    return 0
