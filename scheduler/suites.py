"""The benchmark suites of the scheduler (the seed paper's five, plus exact optima and QAOA).

Each suite returns plain rows (lists of dicts) that ``bench/scheduler_report.py`` writes to JSON and
turns into tables; the statistics come from :mod:`qsn.scheduler.stats`. Sizes are arguments so the
same code runs at full size in the report and at small size in tests and the notebook.

* :func:`efficiency`: every policy on every scenario over seeds (latency, makespan, SLOs, energy).
* :func:`scalability`: planning wall time from 10 to 100,000 tasks, with a fitted power law.
* :func:`convergence`: the fusion's per-source errors, weights and γ as tasks arrive.
* :func:`robustness`: noisy estimates, missing estimates, worker failures, and all three.
* :func:`exact_gap`: makespan against the CP-SAT optimum on small batch instances.
* :func:`qaoa_vs_annealing`: QAOA, simulated annealing and brute force on tiny assignment QUBOs.
* :func:`goodput_rate`: the highest load at which ≥ 90% of tasks meet their SLOs.
* :func:`trace_runs`: the real Azure LLM traces (request-rate sweeps) and Alibaba GPU pods (GPU, GPU-share and
  CPU resources, measured utilisation), once per policy, with per-task latencies for window bootstraps.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from qsn.runtime import progress_bar
from qsn.scheduler import schedule, workloads
from qsn.scheduler.metrics import SLO
from qsn.scheduler.task import Cluster, Workload

__all__ = ["SUITE_POLICIES", "AZURE_SLO", "RATE_SCALES", "efficiency", "scalability", "convergence", "robustness", "exact_gap",
           "qaoa_vs_annealing", "goodput_rate", "power_law", "trace_runs"]

SUITE_POLICIES = ("fifo", "sjf", "round_robin", "random", "least_loaded", "eft", "sa", "anneal", "fusion_eft", "fusion")


def _runs(cells: Sequence[tuple], fn: Callable, desc: str, progress: bool) -> list[dict]:
    rows = []
    with progress_bar(len(cells), desc, progress, unit="run") as bar:
        for cell in cells:
            rows.append(fn(*cell))
            bar.update(1)
    return rows


def efficiency(scenarios: Iterable[str] = ("batch", "llm_inference", "interactive", "dag", "quantum_nodes"), *,
               n: int = 1000, workers: int = 8, seeds: Iterable[int] = range(10),
               policies: Iterable[str] = SUITE_POLICIES, load: float = 0.8, slo: SLO = SLO(),
               progress: bool = False) -> list[dict]:
    """Metrics of each policy on each scenario and seed: rows ``{scenario, policy, seed, **metrics}``."""
    cells = [(s, p, seed) for s in scenarios for seed in seeds for p in policies]
    cache: dict = {}

    def one(s, p, seed):
        if (s, seed) not in cache:
            cache.clear()
            cache[(s, seed)] = workloads.SCENARIOS[s](n, workers, seed=seed, load=load)
        wl, cl = cache[(s, seed)]
        policy = "heft" if (p == "eft" and wl.edges.size) else p
        m = schedule.run(wl, cl, policy, seed=seed, slo=slo)
        return {"scenario": s, "policy": p, "seed": seed, **m}

    return _runs(cells, one, "efficiency", progress)


def power_law(n: Sequence[float], t: Sequence[float]) -> dict[str, float]:
    """Fit ``t = c · n^k`` by least squares in log-log (scipy.stats.linregress): exponent, its stderr, r²."""
    from scipy.stats import linregress

    fit = linregress(np.log(np.asarray(n, float)), np.log(np.asarray(t, float)))
    return {"exponent": float(fit.slope), "stderr": float(fit.stderr), "c": float(np.exp(fit.intercept)),
            "r2": float(fit.rvalue**2)}


def scalability(sizes: Iterable[int] = (10, 100, 1000, 10_000, 100_000), *, workers: int = 32,
                policies: Iterable[str] = ("fifo", "least_loaded", "eft", "anneal", "fusion"), repeats: int = 3,
                scenario: str = "batch", progress: bool = False) -> list[dict]:
    """Planning wall time (best of ``repeats`` after one warm-up call that compiles) per policy and size."""
    cells = [(n, p) for n in sizes for p in policies]

    def one(n, p):
        wl, cl = workloads.SCENARIOS[scenario](n, workers, seed=0)
        schedule.plan(wl, cl, p)  # compile
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            schedule.plan(wl, cl, p)
            best = min(best, time.perf_counter() - t0)
        return {"n": n, "policy": p, "workers": workers, "plan_s": best}

    return _runs(cells, one, "scalability", progress)


def convergence(n: int = 5000, workers: int = 8, *, scenario: str = "batch", seed: int = 0,
                window: int = 250) -> dict:
    """The fusion's trace on one run: rolling MSE of each source and of the fused prediction, weights, γ."""
    from qsn.scheduler.fusion import fused_prediction
    from qsn.scheduler.predict import log_work_targets

    wl, _ = workloads.SCENARIOS[scenario](n, workers, seed=seed)
    res = fused_prediction(wl, seed=seed)
    y = log_work_targets(wl)[:, 0]
    preds = {**{k: res.predictions[:, i] for i, k in enumerate(res.names)}, "fused": res.fused}
    kernel = np.ones(window) / window
    rolling = {k: np.convolve((v - y) ** 2, kernel, mode="valid")[::window // 5].tolist() for k, v in preds.items()}
    return {"scenario": scenario, "n": n, "window": window, "rolling_mse": rolling,
            "weights": res.weights[:: max(1, n // 200)].tolist(), "names": list(res.names),
            "gamma": res.gamma[:: max(1, n // 200)].tolist(), "synergy_last": float(res.synergy[-window:].mean()),
            "mse_last_half": {k: float(np.mean((v[n // 2:] - y[n // 2:]) ** 2)) for k, v in preds.items()}}


def robustness(scenario: str = "batch", *, n: int = 1000, workers: int = 8, seeds: Iterable[int] = range(10),
               policies: Iterable[str] = ("fifo", "least_loaded", "eft", "anneal", "fusion"), noise: float = 0.2,
               missing: float = 0.1, down: float = 0.05, progress: bool = False) -> list[dict]:
    """Each policy under: clean; ``noise`` (relative size-estimate error); ``missing`` estimates; workers down a
    ``down`` fraction of the time; and all three. Rows ``{condition, policy, seed, **metrics}``."""
    conditions = ("clean", "noise", "missing", "failures", "all")
    cells = [(c, p, seed) for seed in seeds for c in conditions for p in policies]

    def one(c, p, seed):
        wl, cl = workloads.SCENARIOS[scenario](n, workers, seed=seed)
        if c in ("noise", "all"):
            wl = workloads.with_noise(wl, noise, seed=seed)
        if c in ("missing", "all"):
            wl = workloads.with_missing(wl, missing, seed=seed)
        if c in ("failures", "all"):
            cl = workloads.with_failures(cl, down, seed=seed)
        m = schedule.run(wl, cl, p, seed=seed)
        return {"condition": c, "policy": p, "seed": seed, **m}

    return _runs(cells, one, "robustness", progress)


def exact_gap(instances: Iterable[tuple[int, int]] = ((8, 3), (12, 4), (20, 4), (50, 8), (100, 8)), *,
              seeds: Iterable[int] = range(5), policies: Iterable[str] = ("fifo", "least_loaded", "eft", "sa", "anneal"),
              time_limit_s: float = 10.0, progress: bool = False) -> list[dict]:
    """Makespan / CP-SAT optimum on batch instances (all tasks at t = 0, exact sizes known, no faults)."""
    from qsn.scheduler.exact import exact_makespan
    from qsn.scheduler.service import durations
    from qsn.scheduler.simulator import simulate

    cells = [(n, w, seed) for n, w in instances for seed in seeds]

    def one(n, w, seed):
        rng = np.random.default_rng(seed)
        work = rng.lognormal(0.0, 1.0, n)
        wl = Workload.from_arrays(arrival=np.zeros(n), work=work, estimate=work)
        cl = Cluster.uniform(w).replace(speed=rng.uniform(0.5, 2.0, w))
        ex = exact_makespan(durations(wl, cl), time_limit_s=time_limit_s)
        row = {"n": n, "workers": w, "seed": seed, "optimum": ex.makespan, "proved": bool(ex.optimal),
               "lower_bound": ex.lower_bound, "cpsat_s": ex.wall_s}
        for p in policies:
            plan, _ = schedule.plan(wl, cl, p, seed=seed)
            row[p] = float(simulate(wl, cl, plan, faults=False).finish.max()) / ex.makespan
        return row

    return _runs(cells, one, "exact", progress)


def qaoa_vs_annealing(sizes: Iterable[tuple[int, int]] = ((2, 2), (3, 2), (2, 3), (4, 3)), *,
                      seeds: Iterable[int] = range(5), p: int = 3, shots: int = 256, progress: bool = False) -> list[dict]:
    """Tiny assignment QUBOs (K tasks × W workers ≤ 12 qubits): probability that QAOA (p layers) and SA
    sample the brute-force optimum, and whether each method's best sample is optimal."""
    import jax

    from qsn.qubo.annealer import anneal
    from qsn.qubo.model import all_energies, bitstrings, energy
    from qsn.qubo.qaoa import qaoa_state, solve
    from qsn.scheduler.planner import assignment_qubo, decode

    cells = [(k, w, seed) for k, w in sizes for seed in seeds]

    def one(k, w, seed):
        rng = np.random.default_rng(seed)
        pmat = rng.lognormal(0.0, 0.5, (k, 1)) / rng.uniform(0.5, 2.0, (1, w))
        aq = assignment_qubo(pmat, np.ones((k, w), bool), np.ones(w), np.ones(w))
        q = aq.qubo
        states = bitstrings(q.n)
        e = energy(q, states, host=True)  # float64: the penalty terms cancel, which float32 cannot resolve
        best = float(e.min())
        t0 = time.perf_counter()
        x_q, _, res = solve(aq.qubo, jax.random.key(seed), p=p, shots=shots)
        t_q = time.perf_counter() - t0
        e_q = float(energy(q, x_q, host=True))
        # how much of the QAOA state lies on valid (one-hot) assignments: the penalty dominates the cost's
        # spread, so angles tuned on <C> learn the constraint first
        probs = np.abs(np.asarray(qaoa_state(all_energies(q), res.gammas, res.betas))) ** 2
        feasible = np.array([(decode(aq, x, k) >= 0).all() for x in states])
        t0 = time.perf_counter()
        sa = anneal(aq.qubo, jax.random.key(seed), replicas=shots, sweeps=100)
        t_sa = time.perf_counter() - t0
        sa_e = energy(q, sa.x, host=True)
        tol = 1e-9 * max(1.0, abs(best))
        return {"tasks": k, "workers": w, "qubits": aq.qubo.n, "seed": seed, "p": p,
                "qaoa_best_optimal": bool(e_q <= best + tol), "qaoa_p_opt": float(res.p_optimum),
                "qaoa_p_feasible": float(probs[feasible].sum()), "uniform_p_feasible": float(feasible.mean()),
                "feasible_states": int(feasible.sum()),
                "sa_best_optimal": bool(sa_e.min() <= best + tol),
                "sa_p_opt": float(np.mean(sa_e <= best + tol)), "uniform_p_opt": float(np.mean(e <= best + tol)),
                "qaoa_s": t_q, "sa_s": t_sa}

    return _runs(cells, one, "qaoa", progress)


def goodput_rate(scenario: str, policy: str, *, n: int = 1000, workers: int = 8,
                 loads: Sequence[float] = (0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.2), slo: SLO = SLO(),
                 target: float = 0.9, seed: int = 0) -> dict:
    """Goodput in the DistServe sense: the highest offered load (and its request rate) at which at least
    ``target`` of the tasks meet their SLOs; rows for every load tried."""
    rows = []
    for load in loads:
        wl, cl = workloads.SCENARIOS[scenario](n, workers, seed=seed, load=load)
        m = schedule.run(wl, cl, policy, seed=seed, slo=slo)
        rate = wl.n / max(float(wl.arrival[-1] - wl.arrival[0]), 1e-12)
        rows.append({"load": load, "rate": rate, "slo_attainment": m["slo_attainment"]})
    ok = [r for r in rows if r["slo_attainment"] >= target]
    best = max(ok, key=lambda r: r["load"]) if ok else None
    return {"scenario": scenario, "policy": policy, "target": target, "rows": rows,
            "goodput_load": best["load"] if best else 0.0, "goodput_rate": best["rate"] if best else 0.0}


AZURE_SLO = SLO(ttft=1.0, tpot=0.1)  # s: our choice for a chat service (as bench/bench_serving.py), not a published one
# Multiples of each Azure trace's own mean request rate (5.53/s conv, 2.57/s code): on 24 replicas the real conv
# trace offers 0.69 of the capacity and the code trace 0.06, so the code sweep reaches further.
RATE_SCALES = {"azure_llm_conv_2023": (1.0, 1.2, 1.4), "azure_llm_code_2023": (1.0, 8.0, 12.0, 15.0)}


def _alibaba_subset(nodes: Cluster, count: int | None) -> Cluster:
    """``count`` nodes evenly spaced through the node list (file order, so the GPU models keep their mix); all if None."""
    if count is None or count >= nodes.n:
        return nodes
    idx = np.unique(np.linspace(0, nodes.n - 1, count).round().astype(np.int64))
    return nodes.subset(idx, name=f"{nodes.name}[{idx.size} of {nodes.n}]")


def trace_runs(*, policies: Iterable[str] = ("fifo", "least_loaded", "eft", "anneal", "fusion"),
               limit: int | None = None, llm_workers: int = 24,
               rate_scales: Mapping[str, Sequence[float]] = RATE_SCALES,
               alibaba_nodes: int | None = 64, compressions: Sequence[float] = (200.0, 400.0, 600.0, 800.0),
               slo: SLO = AZURE_SLO, progress: bool = False) -> list[dict]:
    """Real traces, each run once per policy and condition (no seeds: the clusters are fixed); skipped when absent.

    * Azure LLM conv and code 2023: the whole trace (or its first ``limit`` requests) on ``llm_workers``
      replicas of the :func:`~qsn.scheduler.workloads.llm_inference` cluster (the first half A100-like, the
      rest H100-like), re-timed to each of ``rate_scales[trace]`` × the trace's own mean request rate (1 = the real
      arrival times; gaps keep their pattern), SLOs ``slo`` (TTFT, TPOT) for attainment and goodput.
    * Alibaba GPU 2023: the finished pods (GPU count, GPU share and CPU cores as resources) at their real
      creation times on all 1,213 real nodes (``scale`` 1), then on ``alibaba_nodes`` nodes evenly spaced
      through the node list with creation times divided by each of ``compressions`` (``scale`` = the factor).
      No load is set: each row gives the measured utilisation per resource while pods arrive
      (:func:`~qsn.scheduler.metrics.resource_utilisation` over the arrival window) and over the whole run.

    Returns rows ``{trace, policy, scale, rate, tasks, workers, offered_load, util_<resource>,
    util_run_<resource>, **metrics}`` (mean and p50/p90/p95/p99 of latency; LLM: also TTFT and TPOT), each with
    ``latency`` and ``arrival``: (N,) NumPy arrays per task (s) for :func:`~qsn.scheduler.stats.window_bootstrap`
    (not JSON; a report keeps what it derives from them).
    """
    from qsn.scheduler.metrics import resource_utilisation
    from qsn.scheduler.serving import at_rate, request_rate

    cases = []  # (trace, scale, workload, cluster, slo)
    for name in ("azure_llm_conv_2023.csv", "azure_llm_code_2023.csv"):
        path = workloads.shared_trace(name)
        if path is None:
            continue
        wl = workloads.azure_llm(path, limit=limit)
        cl = workloads.llm_inference(16, llm_workers)[1]  # the cluster of llm_inference: no random draw in it
        real = request_rate(wl)
        trace = name.removesuffix(".csv")
        cases += [(trace, float(k), at_rate(wl, real * k), cl, slo) for k in rate_scales.get(trace, (1.0,))]
    pods, nodes = (workloads.shared_trace(f) for f in workloads.TRACES["alibaba"])
    if pods is not None and nodes is not None:
        wl, every = workloads.alibaba_pods(pods, limit=limit), workloads.alibaba_nodes(nodes)
        cases.append((f"alibaba_gpu2023 ({every.n} nodes)", 1.0, wl, every, SLO()))
        cl = _alibaba_subset(every, alibaba_nodes)
        fits = wl.subset(np.flatnonzero(cl.eligible(wl).any(axis=1)))
        for c in compressions:
            squeezed = fits.replace(arrival=fits.arrival / float(c))
            cases.append((f"alibaba_gpu2023 ({cl.n} nodes)", float(c), squeezed, cl, SLO()))
    cells = [(case, p) for case in cases for p in policies]

    def one(case, p):
        trace, scale, wl, cl, objectives = case
        m, sched = schedule.run_schedule(wl, cl, p, slo=objectives)
        arrivals = (float(wl.arrival[0]), float(wl.arrival[-1]))
        util = {f"util_{k}": v for k, v in resource_utilisation(wl, cl, sched, arrivals).items()}
        util_run = {f"util_run_{k}": v for k, v in resource_utilisation(wl, cl, sched).items()}
        return {"trace": trace, "policy": p, "scale": scale, "rate": (wl.n - 1) / (arrivals[1] - arrivals[0]),
                "tasks": wl.n, "workers": cl.n, "offered_load": workloads.offered_load(wl, cl), **util, **util_run,
                **m, "latency": sched.finish - wl.arrival, "arrival": np.asarray(wl.arrival)}

    return _runs(cells, one, "traces", progress)
