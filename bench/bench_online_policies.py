"""Online policies on the real Azure LLM conversation trace: mean and p99 beside each other.

    python bench/bench_online_policies.py                       # the default cells below
    python bench/bench_online_policies.py --cells fifo fusion fusion@0.2 --load 0.8

Workload: every request of ``azure_llm_conv_2023.csv`` (read from ``../shared/traces`` or ``$QSN_TRACES``;
the script exits with a message where the trace is absent), on ``workloads.llm_inference(16, 16, seed=0)``'s
16 replicas, its arrival times scaled so that the offered load is ``--load`` (default 0.9). A cell is
``policy`` or ``policy@aging``; every policy is causal (predictors learn only from finished requests),
except ``sjf_oracle`` and ``srpt_oracle``, which order by the true sizes and are bounds, not policies.
``srpt*`` and ``mlfq`` preempt (preempt-resume); ``preemptions`` counts them. One run per cell
(the simulator is deterministic for a seed); ``wall_s`` is the whole simulated run, predictors included.
Writes ``bench/results/online-policies-<platform>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_population import run_metadata, write_results  # noqa: E402
from qsn.scheduler import metrics, schedule, simulate, workloads  # noqa: E402

CELLS = ["fifo", "sjf", "sjf@0.5", "sjf_prompt", "sjf_prompt@0.5", "sjf_binned", "sjf_binned@0.5", "sjf_boosted",
         "sjf_boosted@0.5", "sjf_oracle", "sjf_oracle@0.5", "srpt", "srpt_binned", "srpt_binned@0.5", "srpt_oracle",
         "srpt_oracle@0.5", "mlfq", "mlfq@0.5", "fusion", "fusion@0.2", "fusion@0.5", "fusion@2"]
METRICS = ("latency_mean", "latency_p99", "ttft_mean", "ttft_p99", "tpot_mean")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=CELLS, help="policy or policy@aging (default: %(default)s)")
    parser.add_argument("--load", type=float, default=0.9, help="offered load the arrivals are scaled to")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    path = workloads.shared_trace("azure_llm_conv_2023.csv")
    if path is None:
        print("bench_online_policies: azure_llm_conv_2023.csv not found (set QSN_TRACES to its folder)", file=sys.stderr)
        return 2
    metadata = run_metadata("online-policies", __file__, argv, jax.devices()[0])
    wl = workloads.azure_llm(path)
    cluster = workloads.llm_inference(16, 16, seed=0)[1]
    wl = wl.replace(arrival=wl.arrival * (workloads.offered_load(wl, cluster) / args.load))
    metadata.update(trace=path.name, requests=int(wl.n), replicas=int(cluster.n),
                    offered_load=float(workloads.offered_load(wl, cluster)))
    rows = []
    for cell in args.cells:
        policy, _, aging = cell.partition("@")
        start = time.perf_counter()
        p, _ = schedule.plan(wl, cluster, policy, seed=0, aging=float(aging or 0))
        sched = simulate(wl, cluster, p, seed=0)
        m = metrics(wl, cluster, sched)
        row = {"cell": cell, "policy": policy, "aging": float(aging or 0), "bound": policy in schedule.ORACLE_POLICIES,
               **{k: float(m[k]) for k in METRICS}, "preemptions": int(sched.preemptions.sum()),
               "wall_s": time.perf_counter() - start}
        rows.append(row)
        print(f"{cell:16s} mean {row['latency_mean']:7.3f} s  p99 {row['latency_p99']:7.2f} s  "
              f"TTFT {row['ttft_mean']:6.3f} s  ({row['wall_s']:.1f} s)", flush=True)
    print(f"wrote {write_results(args.out, 'online-policies', jax.devices()[0], metadata, rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
