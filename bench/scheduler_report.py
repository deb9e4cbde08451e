"""The scheduler's benchmark report: every suite of ``qsn.scheduler.suites``, statistics, plots, markdown.

Writes ``bench/results/scheduler-<platform>.json`` ({metadata, suites}), a markdown report
``bench/results/scheduler-report.md`` with tables (means, differences with BCa 95% CIs, Welch p with
Holm correction, Cohen's d, power) and PNG figures under ``bench/results/scheduler/``. Fusion is compared
with FIFO and least-loaded whatever the sign of the difference; rows where it loses are reported as such.

    python bench/scheduler_report.py                 # full size (about 30-40 min on a 2-core CPU)
    python bench/scheduler_report.py --quick         # small sizes (about 3 min), used by the notebook test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_population  # noqa: E402  (metadata helpers)

from qsn.scheduler import stats, suites  # noqa: E402

METRICS = ("latency_mean", "latency_p99", "makespan", "slo_attainment", "energy_j")


def _group(rows, key, value, **where):
    out: dict = {}
    for r in rows:
        if all(r[k] == v for k, v in where.items()):
            out.setdefault(r[key], []).append(r[value])
    return out


def _comparisons(rows, metric, baselines, **where) -> dict:
    """Each policy against each baseline: paired by seed (the design: every policy runs the same instances),
    with the Welch test of the same samples beside it."""
    ordered = sorted(rows, key=lambda r: r["seed"])
    samples = _group(ordered, "policy", metric, **where)
    out = {}
    for base in baselines:
        if base not in samples or len(samples) < 2:
            continue
        others = {k: v for k, v in samples.items() if k == base or np.ptp(np.subtract(v, samples[base])) > 0}
        if len(others) < 2:
            continue  # every policy equals the baseline on every seed: nothing to test
        table = stats.compare(others, base, "holm", n_resamples=1999, paired=True)
        welch = {c.policy: c for c in stats.compare(others, base, "holm", n_resamples=1999)}
        out[base] = [{**c._asdict(), "pvalue_welch": welch[c.policy].pvalue,
                      "pvalue_welch_adjusted": welch[c.policy].pvalue_adjusted} for c in table]
    groups = [np.asarray(v, float) for v in samples.values()]
    try:
        a = stats.anova(*groups)
        out["anova"] = {"statistic": float(a.statistic), "pvalue": float(a.pvalue)}
    except Exception as err:  # constant groups: report why instead of a number
        out["anova"] = {"error": str(err)}
    return out


def _md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(x, digits=3):
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}g}"


def analyse(res: dict) -> None:
    """Statistics derived from the rows (kept apart from the runs so they can be re-derived: --from-json)."""
    eff = res["suites"].get("efficiency")
    if eff:
        eff["stats"] = {s: {m: _comparisons(eff["rows"], m, ("fifo", "least_loaded"), scenario=s)
                            for m in ("latency_mean", "makespan")}
                        for s in sorted({r["scenario"] for r in eff["rows"]})}
    sca = res["suites"].get("scalability")
    if sca:
        sca["fits"] = {}
        for p in dict.fromkeys(r["policy"] for r in sca["rows"]):
            rs = [r for r in sca["rows"] if r["policy"] == p and r["n"] >= 100]
            sca["fits"][p] = suites.power_law([r["n"] for r in rs], [max(r["plan_s"], 1e-7) for r in rs])


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plots(result: dict, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    eff = result["suites"].get("efficiency")
    if eff:
        scen = sorted({r["scenario"] for r in eff["rows"]})
        pols = list(dict.fromkeys(r["policy"] for r in eff["rows"]))
        fig, axes = plt.subplots(1, len(scen), figsize=(3.2 * len(scen), 3.6), squeeze=False)
        for ax, s in zip(axes[0], scen):
            base = np.mean(_group(eff["rows"], "policy", "latency_mean", scenario=s)["fifo"])
            vals = _group(eff["rows"], "policy", "latency_mean", scenario=s)
            means = [np.mean(vals[p]) / base for p in pols]
            errs = [1.96 * np.std(vals[p], ddof=1) / np.sqrt(len(vals[p])) / base for p in pols]
            ax.barh(pols, means, xerr=errs, color=["C3" if p.startswith("fusion") else "C0" for p in pols])
            ax.axvline(1.0, color="k", lw=0.8)
            ax.set_title(s, fontsize=9)
            ax.set_xlabel("mean latency / FIFO")
        made.append(_save(fig, folder / "efficiency.png"))
    sca = result["suites"].get("scalability")
    if sca:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        for p in dict.fromkeys(r["policy"] for r in sca["rows"]):
            rs = [r for r in sca["rows"] if r["policy"] == p]
            ax.loglog([r["n"] for r in rs], [r["plan_s"] for r in rs], "o-", label=p)
        ax.axhline(0.05, ls=":", c="gray")
        ax.axhline(10.0, ls=":", c="gray")
        ax.set_xlabel("tasks")
        ax.set_ylabel("planning wall time, s")
        ax.legend(fontsize=7)
        made.append(_save(fig, folder / "scalability.png"))
    conv = result["suites"].get("convergence")
    if conv:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for k, v in conv["rolling_mse"].items():
            axes[0].plot(v, label=k)
        axes[0].set_yscale("log")
        axes[0].set_xlabel(f"task (x{conv['window'] // 5})")
        axes[0].set_ylabel("rolling MSE of log work")
        axes[0].legend(fontsize=7)
        w = np.asarray(conv["weights"])
        for i, name in enumerate(conv["names"]):
            axes[1].plot(w[:, i], label=name)
        axes[1].set_ylabel("fusion weight")
        axes[1].legend(fontsize=7)
        made.append(_save(fig, folder / "convergence.png"))
    return made


def report_markdown(result: dict, figures: list[str]) -> str:
    meta = result["metadata"]
    out = ["# Scheduler benchmark report\n",
           f"Command: `{meta['command']}` · {meta['date']} · {meta['cpu']} ({meta['cpu_count']} cores) · "
           f"jax {meta['versions']['jax']} · commit {meta['git_commit']}\n",
           "Every number below comes from this run. Every policy runs the same instances (one per seed), so the "
           "comparisons are paired: differences are policy − baseline per seed; CIs are BCa bootstrap 95% intervals "
           "of the mean difference; p-values are the paired t-test's, Holm-corrected over the rows of each table, "
           "with Welch's unpaired test (also Holm-corrected) beside them; d_z is Cohen's d of the paired differences; "
           "power is the observed-effect power (it restates p). Lower is better for latency, makespan and energy.\n"]
    for f in figures:
        out.append(f"![{f}](scheduler/{f})\n")
    eff = result["suites"].get("efficiency")
    if eff:
        out.append("## Efficiency\n")
        out.append(f"{eff['config']}\n")
        scen = sorted({r["scenario"] for r in eff["rows"]})
        pols = list(dict.fromkeys(r["policy"] for r in eff["rows"]))
        for metric in ("latency_mean", "makespan"):
            rows = []
            for p in pols:
                rows.append([p] + [_fmt(np.mean(_group(eff["rows"], "policy", metric, scenario=s)[p]), 4) for s in scen])
            out.append(f"### Mean {metric} (s) by scenario\n")
            out.append(_md_table(["policy", *scen], rows) + "\n")
        for s in scen:
            for metric in ("latency_mean", "makespan"):
                cmp = eff["stats"][s][metric]
                for base in ("fifo", "least_loaded"):
                    if base not in cmp:
                        continue
                    rows = [[c["policy"], _fmt(c["mean"], 4), _fmt(c["diff"], 3), f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]",
                             _fmt(c["pvalue_adjusted"], 2), _fmt(c["pvalue_welch_adjusted"], 2), _fmt(c["cohens_d"], 2),
                             _fmt(c["power"], 2)]
                            for c in cmp[base] if c["policy"] in ("fusion", "fusion_eft", "anneal", "sa", "eft", "sjf")]
                    out.append(f"#### {s}: {metric} vs {base} (baseline mean {_fmt(cmp[base][0]['mean_baseline'], 4)})\n")
                    out.append(_md_table(["policy", "mean", "diff", "95% CI", "p paired (Holm)", "p Welch (Holm)", "d_z",
                                          "power"], rows) + "\n")
                an = cmp.get("anova", {})
                if "pvalue" in an:
                    out.append(f"One-way ANOVA over all policies ({s}, {metric}): F = {an['statistic']:.3g}, "
                               f"p = {an['pvalue']:.2g}\n")
    sca = result["suites"].get("scalability")
    if sca:
        out.append("## Scalability (planning wall time, warm, best of repeats)\n")
        sizes = sorted({r["n"] for r in sca["rows"]})
        pols = list(dict.fromkeys(r["policy"] for r in sca["rows"]))
        rows = [[p] + [_fmt(next(r["plan_s"] for r in sca["rows"] if r["policy"] == p and r["n"] == n)) for n in sizes]
                + [_fmt(sca["fits"][p]["exponent"], 2)] for p in pols]
        out.append(_md_table(["policy", *[f"n={n}" for n in sizes], "fitted exponent (n ≥ 100)"], rows) + "\n")
    conv = result["suites"].get("convergence")
    if conv:
        out.append("## Convergence of the fusion\n")
        rows = [[k, _fmt(v, 3)] for k, v in conv["mse_last_half"].items()]
        out.append(_md_table(["predictor", "MSE of log work, last half"], rows) + "\n")
        out.append(f"Mean synergy over the last window: {conv['synergy_last']:.3g} (> 0: fusing beats the best single source).\n")
    rob = result["suites"].get("robustness")
    if rob:
        out.append("## Robustness (mean latency, s; ratio to the clean run of the same policy)\n")
        conds = list(dict.fromkeys(r["condition"] for r in rob["rows"]))
        pols = list(dict.fromkeys(r["policy"] for r in rob["rows"]))
        rows = []
        for p in pols:
            clean = np.mean([r["latency_mean"] for r in rob["rows"] if r["policy"] == p and r["condition"] == "clean"])
            rows.append([p] + [f"{np.mean([r['latency_mean'] for r in rob['rows'] if r['policy'] == p and r['condition'] == c]):.3g}"
                               f" ({np.mean([r['latency_mean'] for r in rob['rows'] if r['policy'] == p and r['condition'] == c]) / clean:.2f}×)"
                               for c in conds])
        out.append(_md_table(["policy", *conds], rows) + "\n")
    ex = result["suites"].get("exact")
    if ex:
        out.append("## Against CP-SAT (makespan / CP-SAT's best schedule, batch instances)\n")
        out.append("CP-SAT's schedule is optimal where proved (within its time limit); elsewhere it is the best found, "
                   "and `CP-SAT / bound` says how far it can be from the optimum at most. A ratio below 1 means the "
                   "policy beat CP-SAT's unproved incumbent.\n")
        pols = [k for k in ex["rows"][0] if k not in ("n", "workers", "seed", "optimum", "proved", "lower_bound", "cpsat_s")]
        sizes = list(dict.fromkeys((r["n"], r["workers"]) for r in ex["rows"]))
        rows = []
        for n, w in sizes:
            rs = [r for r in ex["rows"] if r["n"] == n and r["workers"] == w]
            rows.append([f"{n}×{w}", f"{sum(r['proved'] for r in rs)}/{len(rs)}", _fmt(np.mean([r["cpsat_s"] for r in rs]), 2),
                         f"{np.max([r['optimum'] / r['lower_bound'] for r in rs]):.4f}"]
                        + [f"{np.mean([r[p] for r in rs]):.3f} (max {np.max([r[p] for r in rs]):.3f})" for p in pols])
        out.append(_md_table(["tasks×workers", "proved optimal", "CP-SAT s", "CP-SAT / bound (max)", *pols], rows) + "\n")
    tr = result["suites"].get("traces")
    if tr:
        out.append("## Real traces (mean latency, s; p99 in parentheses; ratio to FIFO)\n")
        out.append(f"{tr['config']}\n")
        traces = list(dict.fromkeys(r["trace"] for r in tr["rows"]))
        pols = list(dict.fromkeys(r["policy"] for r in tr["rows"]))
        rows = []
        for p in pols:
            cells = []
            for t in traces:
                mine = [r for r in tr["rows"] if r["trace"] == t and r["policy"] == p]
                fifo = np.mean([r["latency_mean"] for r in tr["rows"] if r["trace"] == t and r["policy"] == "fifo"])
                lat = np.mean([r["latency_mean"] for r in mine])
                cells.append(f"{lat:.4g} ({np.mean([r['latency_p99'] for r in mine]):.4g}; {lat / fifo:.2f}×)")
            rows.append([p, *cells])
        loads = [f"{t}: {np.mean([r['offered_load'] for r in tr['rows'] if r['trace'] == t]):.2f}" for t in traces]
        out.append(_md_table(["policy", *traces], rows) + "\n")
        out.append("Offered load: " + ", ".join(loads) + "\n")
    qa = result["suites"].get("qaoa")
    if qa:
        out.append("## QAOA vs simulated annealing on tiny assignment QUBOs\n")
        sizes = list(dict.fromkeys((r["tasks"], r["workers"], r["qubits"]) for r in qa["rows"]))
        rows = []
        for k, w, q in sizes:
            rs = [r for r in qa["rows"] if r["tasks"] == k and r["workers"] == w]
            rows.append([f"{k}×{w}", q, _fmt(np.mean([r["uniform_p_opt"] for r in rs])),
                         _fmt(np.nanmean([r["qaoa_p_opt"] for r in rs])),
                         f"{np.mean([r['qaoa_p_feasible'] for r in rs]):.3g} (uniform {np.mean([r['uniform_p_feasible'] for r in rs]):.3g})",
                         _fmt(np.mean([r["qaoa_p_opt"] / r["qaoa_p_feasible"] * r["feasible_states"] for r in rs]), 2),
                         f"{sum(r['qaoa_best_optimal'] for r in rs)}/{len(rs)}",
                         _fmt(np.mean([r["sa_p_opt"] for r in rs])), f"{sum(r['sa_best_optimal'] for r in rs)}/{len(rs)}",
                         _fmt(np.mean([r["qaoa_s"] for r in rs]), 2), _fmt(np.mean([r["sa_s"] for r in rs]), 2)])
        out.append(_md_table(["tasks×workers", "qubits", "P(opt) uniform", "P(opt) QAOA", "P(valid) QAOA",
                              "QAOA P(opt given valid) × #valid", "QAOA best optimal",
                              "P(opt) SA sample", "SA best optimal", "QAOA s", "SA s"], rows) + "\n")
        out.append("`P(opt given valid) × #valid` is 1 when QAOA, restricted to valid one-hot assignments, is no better than "
                   "a uniform pick among them; above 1 it favours the optimum among valid assignments. SA samples "
                   "are the final states of `shots` replicas after 100 sweeps.\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI, notebook)")
    ap.add_argument("--suites", nargs="+", default=["efficiency", "scalability", "convergence", "robustness", "exact", "traces", "qaoa"])
    ap.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 10, quick 3)")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/scheduler-<platform>.json)")
    ap.add_argument("--md", default=None, help="markdown path (default bench/results/scheduler-report.md)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--from-json", default=None, metavar="FILE",
                    help="re-derive the statistics, figures and markdown from a results JSON without re-running")
    args = ap.parse_args(argv)
    if args.from_json:
        res = json.loads(Path(args.from_json).read_text())
        analyse(res)
        md = Path(args.md) if args.md else Path(args.from_json).parent / "scheduler-report.md"
        Path(args.from_json).write_text(json.dumps(res, indent=1, default=float) + "\n")
        md.write_text(report_markdown(res, plots(res, md.parent / "scheduler")))
        print(f"re-wrote {args.from_json} and {md}")
        return 0
    q = args.quick
    seeds = range(args.seeds or (3 if q else 10))
    prog = not args.no_progress
    res: dict = {"suites": {}}
    device = jax.devices()[0]
    # taken before the runs: the commit recorded is the one whose code runs, and the date is when it started
    meta = bench_population.run_metadata("scheduler", __file__, argv, device)
    t_start = time.perf_counter()
    if "efficiency" in args.suites:
        n, w = (200, 4) if q else (1000, 8)
        pols = ("fifo", "least_loaded", "eft", "anneal", "fusion") if q else suites.SUITE_POLICIES
        rows = suites.efficiency(n=n, workers=w, seeds=seeds, policies=pols, progress=prog)
        res["suites"]["efficiency"] = {"config": f"n = {n} tasks, {w} workers, load 0.8, {len(seeds)} seeds per cell, "
                                       "faults as each scenario sets them; on `dag` the `eft` row runs HEFT", "rows": rows}
    if "scalability" in args.suites:
        sizes = (10, 100, 1000) if q else (10, 100, 1000, 10_000, 100_000)
        rows = suites.scalability(sizes, workers=8 if q else 32, repeats=2 if q else 3, progress=prog)
        res["suites"]["scalability"] = {"rows": rows}
    if "convergence" in args.suites:
        res["suites"]["convergence"] = suites.convergence(n=1000 if q else 5000, window=100 if q else 250)
    if "robustness" in args.suites:
        rows = suites.robustness(n=200 if q else 1000, workers=4 if q else 8, seeds=seeds, progress=prog)
        res["suites"]["robustness"] = {"rows": rows}
    if "exact" in args.suites:
        inst = ((8, 3), (12, 4)) if q else ((8, 3), (12, 4), (20, 4), (50, 8), (100, 8))
        rows = suites.exact_gap(inst, seeds=range(3 if q else 5), time_limit_s=5.0 if q else 30.0, progress=prog)
        res["suites"]["exact"] = {"rows": rows}
    if "traces" in args.suites:
        limit = 500 if q else 2000
        rows = suites.trace_runs(limit=limit, seeds=range(2 if q else 3), progress=prog)
        res["suites"]["traces"] = {"rows": rows, "config": (
            f"First {limit} requests of each Azure trace at real arrival times on 24 LLM replicas (half A100-like, "
            f"half H100-like); the first {limit} finished Alibaba GPU pods on 64 real nodes, arrivals compressed to "
            "offered load 0.8. Seeds draw the cluster.")}
    if "qaoa" in args.suites:
        sizes = ((2, 2), (3, 2)) if q else ((2, 2), (3, 2), (2, 3), (4, 3))
        rows = suites.qaoa_vs_annealing(sizes, seeds=range(2 if q else 5), progress=prog)
        res["suites"]["qaoa"] = {"rows": rows}
    analyse(res)
    res["metadata"] = {**meta, "wall_s": time.perf_counter() - t_start}
    results = Path(__file__).parent / "results"
    out = Path(args.out) if args.out else results / f"scheduler-{device.platform}{'-quick' if q else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float) + "\n")
    md = Path(args.md) if args.md else results / f"scheduler-report{'-quick' if q else ''}.md"
    figs = plots(res, md.parent / "scheduler")
    md.write_text(report_markdown(res, figs))
    print(f"wrote {out} and {md} ({res['metadata']['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
