"""The LLM serving model on the real Azure LLM conversation trace: FCFS against prompt-length SJF, by request rate.

    python bench/bench_serving.py                                   # the defaults below
    python bench/bench_serving.py --rates 4 8 --orders fifo --limit 2000

Workload: every request of ``azure_llm_conv_2023.csv`` (read from ``../shared/traces`` or ``$QSN_TRACES``;
the script says so and exits 0 where the trace is absent), re-timed to each ``--rates`` request rate
(:func:`qsn.scheduler.serving.at_rate`: the trace's own gaps, scaled). Deployment: ``--replicas`` colocated
OPT-13B replicas on A100-80GB as :class:`qsn.scheduler.serving.ServingConfig` models them by default
(DistServe's fitted step times, 3,500 KV blocks of 16 tokens, a 2,048-token budget, at most 256 running
requests, chunked prefill, recompute preemption) behind a ``--router``. Each ``--orders`` entry orders every
replica's waiting queue (``fifo``: FCFS; ``sjf_prompt``: shortest prompt first).

For each order, :func:`qsn.scheduler.serving.goodput` runs every rate (a rate curve), then ``--bisections``
halvings between the last rate meeting the SLOs for >= 90 % of requests and the first that does not: the
goodput. The SLOs (``--ttft-slo``, ``--tpot-slo``) are our choice for a chat service, not a published
figure. One run per cell (the model is deterministic). Writes ``bench/results/serving-<platform>.json``
(``rows``: every run with all its metrics; ``summary``: goodput per order).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_population import run_metadata, write_results  # noqa: E402
from qsn.scheduler import workloads  # noqa: E402
from qsn.scheduler.serving import ServingConfig, goodput, request_rate  # noqa: E402

RATES = [4.0, 6.0, 7.0, 8.0, 9.0, 10.0]
SHOWN = ("ttft_mean", "ttft_p99", "tpot_mean", "tpot_p99", "e2e_mean", "e2e_p99")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", nargs="+", type=float, default=RATES, help="requests/s (default %(default)s)")
    parser.add_argument("--orders", nargs="+", default=["fifo", "sjf_prompt"], help="per-replica queue orders")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--router", default="round_robin")
    parser.add_argument("--ttft-slo", type=float, default=1.0, help="s (default %(default)s)")
    parser.add_argument("--tpot-slo", type=float, default=0.1, help="s (default %(default)s)")
    parser.add_argument("--bisections", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="only the first LIMIT requests of the trace")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    path = workloads.shared_trace("azure_llm_conv_2023.csv")
    if path is None:
        print("bench_serving: azure_llm_conv_2023.csv not found (set QSN_TRACES to its folder); skipped",
              file=sys.stderr)
        return 0
    wl = workloads.azure_llm(path, limit=args.limit)
    config = ServingConfig(replicas=args.replicas, router=args.router)
    metadata = run_metadata("serving", __file__, argv, jax.devices()[0])
    metadata.update(trace=path.name, requests=int(wl.n), trace_rate=request_rate(wl),
                    config={k: (v._asdict() if hasattr(v, "_asdict") else v)
                            for k, v in dataclasses.asdict(config).items()},
                    ttft_slo=args.ttft_slo, tpot_slo=args.tpot_slo, target=0.9)
    rows, summary = [], {}
    print(f"{'order':<11} {'rate':>6} {'TTFT mean':>9} {'p99':>8} {'TPOT mean':>9} {'p99':>8} {'E2E mean':>8} "
          f"{'p99':>8} {'tok/s':>7} {'KV':>5} {'preempt':>7} {'SLO':>5}", flush=True)
    for order in args.orders:
        start = time.perf_counter()
        out = goodput(wl, config, ttft_slo=args.ttft_slo, tpot_slo=args.tpot_slo, rates=args.rates,
                      bisections=args.bisections, full_sweep=True, order=order)
        wall = time.perf_counter() - start
        for k, row in enumerate(out["rows"]):
            rows.append({"order": order, "part": "sweep" if k < len(args.rates) else "bisection", **row})
            print(f"{order:<11} {row['rate']:6.2f} " + " ".join(f"{row[m]:{9 if 'mean' in m else 8}.3f}" for m in SHOWN)
                  + f" {row['output_throughput']:7.0f} {row['kv_utilisation']:5.2f} {row['preemptions']:7.0f}"
                  f" {row['slo_attainment']:5.3f}", flush=True)
        summary[order] = {"goodput": out["goodput"], "capped": out["capped"], "runs": len(out["rows"]), "wall_s": wall}
        print(f"{order}: goodput {out['goodput']:.3f} requests/s{' (capped)' if out['capped'] else ''}, "
              f"{len(out['rows'])} runs in {wall:.0f} s", flush=True)
    print(f"wrote {write_results(args.out, 'serving', jax.devices()[0], metadata, rows, summary=summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
