"""The scheduler's benchmark report: every suite of ``qsn.scheduler.suites``, statistics, plots, markdown.

Writes ``bench/results/scheduler-<platform>.json`` ({metadata, suites}), a markdown report
``bench/results/scheduler-report.md`` with tables (means, differences with BCa 95% CIs, Welch p with
Holm correction, Cohen's d, power) and PNG figures under ``bench/results/scheduler/``. Fusion is compared
with FIFO and least-loaded whatever the sign of the difference; rows where it loses are reported as such.

    python bench/scheduler_report.py                 # full size (about 30-40 min on a 2-core CPU)
    python bench/scheduler_report.py --quick         # small sizes (about 3 min), used by the notebook test
    python bench/scheduler_report.py --suites traces --into bench/results/scheduler-cpu.json   # re-run one suite

The real traces run once per policy and condition (no seeds); their intervals come from a block bootstrap
over 10 arrival-time windows (``stats.window_bootstrap``), paired across policies.
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


WINDOWS = 10  # arrival-time windows of a trace run: the resampling unit of its intervals


def trace_windows(rows: list[dict], *, windows: int = WINDOWS, n_resamples: int = 2000) -> list[dict]:
    """Window-bootstrap intervals (mean and p99 of latency) of each trace condition, each policy against FIFO.

    Consumes the per-task ``latency``/``arrival`` arrays of :func:`suites.trace_runs` rows (and drops them)."""
    out = []
    for key in dict.fromkeys((r["trace"], r["scale"]) for r in rows):
        group = [r for r in rows if (r["trace"], r["scale"]) == key]
        values = {r["policy"]: r["latency"] for r in group}
        if "fifo" not in values:
            continue
        for metric, q in (("latency_mean", None), ("latency_p99", 0.99)):
            for w in stats.window_bootstrap(values, group[0]["arrival"], "fifo", windows=windows, quantile=q,
                                            n_resamples=n_resamples, seed=0):
                out.append({"trace": key[0], "scale": key[1], "metric": metric, **w._asdict()})
    for r in rows:
        r.pop("latency", None)
        r.pop("arrival", None)
    return out


def analyse(res: dict) -> None:
    """Statistics derived from the rows (kept apart from the runs so they can be re-derived: --from-json)."""
    eff = res["suites"].get("efficiency")
    if eff:
        eff["stats"] = {s: {m: _comparisons(eff["rows"], m, ("fifo", "least_loaded"), scenario=s)
                            for m in ("latency_mean", "latency_p99", "makespan")}
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
    tr = result["suites"].get("traces")
    if tr and "scale" in tr["rows"][0]:
        traces = list(dict.fromkeys(r["trace"] for r in tr["rows"]))
        fig, axes = plt.subplots(1, len(traces), figsize=(3.4 * len(traces), 3.4), squeeze=False)
        for ax, t in zip(axes[0], traces):
            for p in dict.fromkeys(r["policy"] for r in tr["rows"]):
                rs = sorted((r for r in tr["rows"] if r["trace"] == t and r["policy"] == p), key=lambda r: r["scale"])
                if t.startswith("azure"):
                    ax.plot([r["rate"] for r in rs], [r["slo_attainment"] for r in rs], "o-", label=p)
                else:
                    ax.loglog([r["scale"] for r in rs], [r["latency_p99"] for r in rs], "o-", label=p)
            if t.startswith("azure"):
                ax.axhline(0.9, ls=":", c="gray")
                ax.set_xlabel("requests/s")
                ax.set_ylabel("SLO attainment (TTFT ≤ 1 s, TPOT ≤ 0.1 s)")
            else:
                ax.set_xlabel("arrival compression factor (utilisation: see the table)")
                ax.set_ylabel("p99 latency, s")
            ax.set_title(t, fontsize=8)
        axes[0][0].legend(fontsize=7)
        made.append(_save(fig, folder / "traces.png"))
    return made


def _ci(lo, hi, digits=3) -> str:
    return f"[{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def trace_markdown(tr: dict) -> str:
    """The real-trace section: per condition and policy, mean and p99 latency with their window-bootstrap CIs,
    the differences from FIFO, SLO attainment (Azure) or measured utilisation (Alibaba), and goodput."""
    out = ["## Real traces (one run per policy; 95% CIs from a block bootstrap over "
           f"{tr['windows'][0]['windows']} arrival-time windows, paired against FIFO)\n", f"{tr['config']}\n"]
    win = {(w["trace"], w["scale"], w["metric"], w["policy"]): w for w in tr["windows"]}
    for t in dict.fromkeys(r["trace"] for r in tr["rows"]):
        rs = [r for r in tr["rows"] if r["trace"] == t]
        azure = t.startswith("azure")
        out.append(f"### {t} ({int(rs[0]['tasks'])} tasks on {rs[0]['workers']} workers)\n")
        extra = ["SLO attained"] if azure else ["GPU / CPU / memory utilisation while pods arrive"]
        head = ["rate/s" if azure else "compression", "policy", "mean (s) [CI]", "Δ mean vs FIFO [CI]", "p99 (s) [CI]",
                "Δ p99 vs FIFO [CI]", "p50", "p90", *extra]
        lines = []
        for r in rs:
            m, q = win.get((t, r["scale"], "latency_mean", r["policy"])), win.get((t, r["scale"], "latency_p99", r["policy"]))
            if m is None:
                continue
            cond = f"{r['rate']:.3g} (×{r['scale']:g})" if azure else f"×{r['scale']:g} ({r['rate'] * 3600:.3g} pods/h)"
            tail = ([f"{r['slo_attainment']:.3f}"] if azure else
                    [" / ".join(_fmt(r.get(f"util_{k}"), 2) for k in ("gpu", "cpu", "memory"))])
            lines.append([cond, r["policy"], f"{_fmt(m['estimate'], 4)} {_ci(m['low'], m['high'])}",
                          f"{_fmt(m['diff'], 3)} {_ci(m['diff_low'], m['diff_high'])}",
                          f"{_fmt(q['estimate'], 4)} {_ci(q['low'], q['high'])}",
                          f"{_fmt(q['diff'], 3)} {_ci(q['diff_low'], q['diff_high'])}",
                          _fmt(r["latency_p50"], 4), _fmt(r["latency_p90"], 4), *tail])
        out.append(_md_table(head, lines) + "\n")
        if azure:
            good = []
            for p in dict.fromkeys(r["policy"] for r in rs):
                ok = [r["rate"] for r in rs if r["policy"] == p and r["slo_attainment"] >= 0.9]
                good.append(f"{p} {max(ok):.3g}/s" if ok else f"{p} below {min(r['rate'] for r in rs):.3g}/s")
            out.append("Goodput (highest swept rate with ≥ 90% of requests meeting both SLOs): " + ", ".join(good) + "\n")
        else:
            out.append("Utilisation is measured (held / available resource-seconds from the first to the last arrival), "
                       "not set; over the whole run, the drain of the longest pods included, GPU utilisation is "
                       f"{', '.join(f'×{r[0]:g}: {r[1]:.2g}' for r in dict.fromkeys((r['scale'], r.get('util_run_gpu', np.nan)) for r in rs if r['policy'] == 'fifo'))} (FIFO).\n")
    out.append("A Δ interval that excludes 0 marks a difference larger than the trace's own variation over time; "
               "the windows are contiguous blocks of equal task count, so queues carried across their edges make the "
               "blocks only nearly independent.\n")
    return "\n".join(out)


def report_markdown(result: dict, figures: list[str]) -> str:
    meta = result["metadata"]
    out = ["# Scheduler benchmark report\n",
           f"Command: `{meta['command']}` · {meta['date']} · {meta['cpu']} ({meta['cpu_count']} cores) · "
           f"jax {meta['versions']['jax']} · commit {meta['git_commit']}\n",
           "Every number below comes from the runs named here (each suite's own command, date and commit where "
           "suites were re-run apart). In the synthetic suites every policy runs the same instances (one per seed), so the "
           "comparisons are paired: differences are policy − baseline per seed; CIs are BCa bootstrap 95% intervals "
           "of the mean difference; p-values are the paired t-test's, Holm-corrected over the rows of each table, "
           "with Welch's unpaired test (also Holm-corrected) beside them; d_z is Cohen's d of the paired differences; "
           "power is the observed-effect power (it restates p). Lower is better for latency, makespan and energy.\n"]
    for name, suite in result["suites"].items():
        m = suite.get("metadata") if isinstance(suite, dict) else None
        if m:
            out.append(f"Suite `{name}`: `{m['command']}` · {m['date']} · commit {m['git_commit']}\n")
    for f in figures:
        out.append(f"![{f}](scheduler/{f})\n")
    eff = result["suites"].get("efficiency")
    if eff:
        out.append("## Efficiency\n")
        out.append(f"{eff['config']}\n")
        scen = sorted({r["scenario"] for r in eff["rows"]})
        pols = list(dict.fromkeys(r["policy"] for r in eff["rows"]))
        for metric in ("latency_mean", "latency_p99", "makespan"):
            rows = []
            for p in pols:
                rows.append([p] + [_fmt(np.mean(_group(eff["rows"], "policy", metric, scenario=s)[p]), 4) for s in scen])
            out.append(f"### {metric} (s) by scenario, mean over seeds\n")
            out.append(_md_table(["policy", *scen], rows) + "\n")
        for s in scen:
            for metric in ("latency_mean", "latency_p99", "makespan"):
                cmp = eff["stats"][s].get(metric, {})
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
        out.append("## Robustness (mean latency, s; ratio to the clean run of the same policy; p99 after the slash)\n")
        conds = list(dict.fromkeys(r["condition"] for r in rob["rows"]))
        pols = list(dict.fromkeys(r["policy"] for r in rob["rows"]))
        rows = []
        for p in pols:
            clean = np.mean([r["latency_mean"] for r in rob["rows"] if r["policy"] == p and r["condition"] == "clean"])
            rows.append([p] + [f"{np.mean([r['latency_mean'] for r in rob['rows'] if r['policy'] == p and r['condition'] == c]):.3g}"
                               f" ({np.mean([r['latency_mean'] for r in rob['rows'] if r['policy'] == p and r['condition'] == c]) / clean:.2f}×)"
                               f" / {np.mean([r['latency_p99'] for r in rob['rows'] if r['policy'] == p and r['condition'] == c]):.3g}"
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
    if tr and "windows" in tr:
        out.append(trace_markdown(tr))
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
    ap.add_argument("--into", default=None, metavar="FILE",
                    help="merge the suites run now into this results JSON (its other suites keep their own metadata) "
                         "and write the JSON and markdown there")
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
        limit = 500 if q else None
        scales = {k: v[:2] for k, v in suites.RATE_SCALES.items()} if q else suites.RATE_SCALES
        compressions = (400.0,) if q else (200.0, 400.0, 600.0, 800.0)
        rows = suites.trace_runs(limit=limit, rate_scales=scales, compressions=compressions, progress=prog)
        windows = trace_windows(rows, n_resamples=500 if q else 2000)
        res["suites"]["traces"] = {"rows": rows, "windows": windows, "config": (
            f"{'The first 500 requests' if q else 'Every request'} of each Azure LLM trace (2023) on 24 replicas of "
            "the llm_inference cluster (12 A100-like at speed 1, 12 H100-like at speed 2, one request per replica at "
            "a time), re-timed to multiples of the trace's own mean rate (×1 = the real arrival times), SLOs TTFT ≤ "
            "1 s and TPOT ≤ 0.1 s (our choice). Alibaba GPU 2023: the finished pods (2,062; running pods have "
            "censored runtimes and are left out, which favours short pods), GPU count, GPU share (gpu_milli) and CPU "
            "cores as resources packed per GPU (qsn.scheduler.gpus); at their real creation times on all 1,213 nodes, "
            "then on 64 nodes evenly spaced through the node list with creation times divided by the compression "
            "factor. Pods have no size estimate. Node speeds are ASSUMED (FP32 peak relative to a V100). Each row "
            "states the utilisation it measured; no load is set.")}
    if "qaoa" in args.suites:
        sizes = ((2, 2), (3, 2)) if q else ((2, 2), (3, 2), (2, 3), (4, 3))
        rows = suites.qaoa_vs_annealing(sizes, seeds=range(2 if q else 5), progress=prog)
        res["suites"]["qaoa"] = {"rows": rows}
    meta = {**meta, "wall_s": time.perf_counter() - t_start}
    if args.into:  # suites run now replace theirs; the others keep the metadata of the run that made them
        old = json.loads(Path(args.into).read_text())
        for name, suite in old["suites"].items():
            if name not in res["suites"]:
                suite.setdefault("metadata", old["metadata"])
                res["suites"][name] = suite
        for name in args.suites:
            res["suites"][name]["metadata"] = meta
        res["suites"] = {k: res["suites"][k] for k in (*old["suites"], *res["suites"]) if k in res["suites"]}
    analyse(res)
    res["metadata"] = meta
    results = Path(__file__).parent / "results"
    out = Path(args.into or args.out) if (args.into or args.out) else results / f"scheduler-{device.platform}{'-quick' if q else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float) + "\n")
    md = Path(args.md) if args.md else (out.parent if args.into else results) / f"scheduler-report{'-quick' if q else ''}.md"
    figs = plots(res, md.parent / "scheduler")
    md.write_text(report_markdown(res, figs))
    print(f"wrote {out} and {md} ({res['metadata']['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
