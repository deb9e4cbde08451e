"""Tests of the benchmark suites (qsn.scheduler.suites) at tiny sizes, and of ``bench/scheduler_report.py``.

* ``efficiency``, ``scalability``, ``robustness``: one row per cell, in the documented order, with the
  documented keys and finite metrics; ``efficiency`` rows equal ``schedule.run`` on the same cell;
* ``convergence``: per-source rolling MSE series, weights (samples, 3) on the simplex, MSE of the last half
  recomputed from the predictors;
* ``exact_gap``: every heuristic's makespan ≥ the proved CP-SAT optimum (ratios ≥ 1 − 1e-9) and ≥ the lower bound;
* ``qaoa_vs_annealing``: keys, probabilities in [0, 1], the uniform P(opt) equals the brute-force count / 2^q;
* ``goodput_rate``: the highest load whose attainment reaches the target, its rate = n / arrival span;
* ``power_law`` recovers k = 2, c = 3 from t = 3 n² exactly;
* ``trace_runs`` returns [] when no trace is found, and runs on the shared traces when they are there;
* ``bench/scheduler_report.py --quick --suites efficiency convergence`` writes JSON and markdown with the
  tables (slow: ~35 s on 2 cores).

JAX settings: ``tests/conftest.py`` turns on x64 with strict dtype promotion and rank-promotion errors,
under which ``list_schedule`` and the annealer currently fail (documented in ``test_policies.py`` and
``test_planner.py``); tests that plan with them use the ``relaxed_jax`` fixture. Drop it once fixed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from qsn.scheduler import schedule, suites, workloads

METRIC_KEYS = {"tasks", "latency_mean", "latency_p50", "latency_p90", "latency_p95", "latency_p99", "wait_mean",
               "makespan", "slo_attainment", "goodput", "throughput", "utilisation", "energy_j", "restarts", "lost_s",
               "plan_s", "run_s"}


@pytest.fixture
def relaxed_jax():
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


def _finite(row: dict, keys) -> bool:
    return all(np.isfinite(row[k]) for k in keys)


def test_efficiency(relaxed_jax):
    rows = suites.efficiency(("batch", "interactive"), n=60, workers=4, seeds=(0, 1), policies=("fifo", "eft"))
    assert [(r["scenario"], r["seed"], r["policy"]) for r in rows] == [
        (s, seed, p) for s in ("batch", "interactive") for seed in (0, 1) for p in ("fifo", "eft")]
    for r in rows:
        assert set(r) == METRIC_KEYS | {"scenario", "policy", "seed"}
        assert _finite(r, METRIC_KEYS) and r["tasks"] == 60
    wl, cl = workloads.interactive(60, 4, seed=1)
    again = schedule.run(wl, cl, "eft", seed=1)
    row = next(r for r in rows if (r["scenario"], r["seed"], r["policy"]) == ("interactive", 1, "eft"))
    assert all(row[k] == pytest.approx(again[k], rel=1e-12) for k in METRIC_KEYS - {"plan_s", "run_s"})


def test_scalability(relaxed_jax):
    rows = suites.scalability((10, 50), workers=4, policies=("fifo", "eft"), repeats=1)
    assert [(r["n"], r["policy"]) for r in rows] == [(10, "fifo"), (10, "eft"), (50, "fifo"), (50, "eft")]
    for r in rows:
        assert set(r) == {"n", "policy", "workers", "plan_s"} and r["workers"] == 4
        assert 0.0 < r["plan_s"] < 10.0


def test_convergence():
    out = suites.convergence(n=300, workers=4, window=50)
    assert {"scenario", "n", "window", "rolling_mse", "weights", "names", "gamma", "synergy_last",
            "mse_last_half"} <= set(out)
    assert out["names"] == ["naive", "spike", "raw"]
    sources = {"naive", "spike", "raw", "fused"}
    assert set(out["rolling_mse"]) == sources == set(out["mse_last_half"])
    # (300 - 50 + 1) valid windows, sampled every 50 // 5 = 10
    assert all(len(v) == 26 for v in out["rolling_mse"].values())
    w = np.asarray(out["weights"])
    assert w.shape == (300, 3) and np.allclose(w.sum(axis=1), 1.0, atol=1e-5) and np.all(w >= 0)
    assert all(np.isfinite(v) and v >= 0 for v in out["mse_last_half"].values())
    assert np.all(np.asarray(out["gamma"]) >= 1.0 - 1e-6)
    # the naive source is the user's estimate (log error sd 0.3 in `batch`): MSE near 0.09
    assert 0.03 < out["mse_last_half"]["naive"] < 0.2


def test_robustness(relaxed_jax):
    rows = suites.robustness(n=60, workers=4, seeds=(0,), policies=("fifo", "eft"))
    conditions = ("clean", "noise", "missing", "failures", "all")
    assert [(r["condition"], r["policy"]) for r in rows] == [(c, p) for c in conditions for p in ("fifo", "eft")]
    for r in rows:
        assert set(r) == METRIC_KEYS | {"condition", "policy", "seed"} and _finite(r, METRIC_KEYS)
    lat = {(r["condition"], r["policy"]): r["latency_mean"] for r in rows}
    # FIFO ignores size estimates: noise and missing estimates change nothing for it
    assert lat[("noise", "fifo")] == lat[("clean", "fifo")] == lat[("missing", "fifo")]
    assert lat[("noise", "eft")] != lat[("clean", "eft")]


def test_exact_gap(relaxed_jax):
    policies = ("fifo", "least_loaded", "eft", "sa", "anneal")
    (row,) = suites.exact_gap(((5, 2),), seeds=(0,), policies=policies)
    assert {"n", "workers", "seed", "optimum", "proved", "lower_bound", "cpsat_s", *policies} == set(row)
    assert row["proved"] and row["lower_bound"] <= row["optimum"] + 1e-12
    for p in policies:
        assert row[p] >= 1.0 - 1e-9, p  # nothing beats the optimum
        assert row[p] * row["optimum"] >= row["lower_bound"] - 1e-9, p


def test_qaoa_vs_annealing():
    (row,) = suites.qaoa_vs_annealing(((2, 2),), seeds=(0,))
    assert set(row) == {"tasks", "workers", "qubits", "seed", "p", "qaoa_best_optimal", "qaoa_p_opt",
                        "qaoa_p_feasible", "uniform_p_feasible", "feasible_states",
                        "sa_best_optimal", "sa_p_opt", "uniform_p_opt", "qaoa_s", "sa_s"}
    assert row["qubits"] == 4
    for k in ("qaoa_p_opt", "sa_p_opt", "uniform_p_opt", "qaoa_p_feasible"):
        assert 0.0 <= row[k] <= 1.0
    # 2 tasks x 2 workers: 4 one-hot assignments of 16 states; the optimum is one of them
    assert row["feasible_states"] == 4 and row["uniform_p_feasible"] == 0.25
    assert row["qaoa_p_opt"] <= row["qaoa_p_feasible"] + 1e-6
    assert row["qaoa_best_optimal"]  # 256 shots from a state with P(opt) well above 1/16
    assert row["uniform_p_opt"] * 2**4 == pytest.approx(round(row["uniform_p_opt"] * 2**4))  # optimal count / 16
    assert row["sa_best_optimal"]  # 4 qubits, 256 replicas


def test_goodput_rate():
    loads = (0.3, 0.9, 1.5)
    out = suites.goodput_rate("interactive", "fifo", n=60, workers=2, loads=loads)
    assert [r["load"] for r in out["rows"]] == list(loads)
    ok = [r["load"] for r in out["rows"] if r["slo_attainment"] >= out["target"]]
    assert out["goodput_load"] == (max(ok) if ok else 0.0)
    for r, load in zip(out["rows"], loads):
        wl, _ = workloads.interactive(60, 2, seed=0, load=load)
        assert r["rate"] == pytest.approx(wl.n / (wl.arrival[-1] - wl.arrival[0]))
    best = next(r for r in out["rows"] if r["load"] == out["goodput_load"])
    assert out["goodput_rate"] == best["rate"]
    # deadlines of 3x the size: the lightest load meets them, the overloaded one does not
    assert out["rows"][0]["slo_attainment"] >= 0.9 > out["rows"][-1]["slo_attainment"]


def test_power_law_recovers_the_exponent():
    n = np.array([10, 100, 1000, 10_000], float)
    fit = suites.power_law(n, 3.0 * n**2)
    assert fit["exponent"] == pytest.approx(2.0, abs=1e-12)
    assert fit["c"] == pytest.approx(3.0, rel=1e-10)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-12) and fit["stderr"] == pytest.approx(0.0, abs=1e-10)


def test_trace_runs_without_traces(monkeypatch):
    monkeypatch.setattr(workloads, "shared_trace", lambda name: None)
    assert suites.trace_runs(policies=("fifo",), limit=20) == []


@pytest.mark.skipif(workloads.shared_trace("azure_llm_conv_2023.csv") is None, reason="shared traces absent")
def test_trace_runs_on_the_shared_traces():
    rows = suites.trace_runs(policies=("fifo", "sjf"), limit=60, llm_workers=4, alibaba_nodes=8,
                             rate_scales={"azure_llm_conv_2023": (1.0, 2.0)}, compressions=(50.0,))
    conds = list(dict.fromkeys((r["trace"], r["scale"]) for r in rows))
    assert conds == [("azure_llm_conv_2023", 1.0), ("azure_llm_conv_2023", 2.0), ("azure_llm_code_2023", 1.0),
                     ("alibaba_gpu2023 (1213 nodes)", 1.0), ("alibaba_gpu2023 (8 nodes)", 50.0)]
    for r in rows:  # one run per policy and condition, no seeds
        assert [q["policy"] for q in rows if (q["trace"], q["scale"]) == (r["trace"], r["scale"])] == ["fifo", "sjf"]
        assert r["tasks"] <= 60 and _finite(r, METRIC_KEYS | {"offered_load", "util_slots"})
        assert r["latency"].shape == r["arrival"].shape == (int(r["tasks"]),)
        assert np.mean(r["latency"]) == pytest.approx(r["latency_mean"]) and "seed" not in r
    conv = [r for r in rows if r["trace"] == "azure_llm_conv_2023"]
    assert conv[2]["rate"] == pytest.approx(2 * conv[0]["rate"])  # the sweep scales the trace's own rate
    ali = [r for r in rows if r["trace"].startswith("alibaba")]
    assert all(0 < r["util_gpu"] < 1 and 0 < r["util_cpu"] < 1 for r in ali)  # measured, not set
    pods = workloads.alibaba_pods(workloads.shared_trace("alibaba_gpu2023_pods_default.csv"), limit=60)
    assert ali[0]["rate"] == pytest.approx((pods.n - 1) / (pods.arrival[-1] - pods.arrival[0]))  # real times on all nodes


@pytest.mark.slow
def test_scheduler_report_quick(tmp_path, monkeypatch, relaxed_jax):
    bench = Path(__file__).resolve().parents[2] / "bench"
    monkeypatch.syspath_prepend(str(bench))
    monkeypatch.delitem(sys.modules, "scheduler_report", raising=False)
    import scheduler_report

    out, md = tmp_path / "r.json", tmp_path / "r.md"
    code = scheduler_report.main(["--quick", "--suites", "efficiency", "convergence", "--out", str(out), "--md", str(md),
                                  "--no-progress"])
    assert code == 0
    res = json.loads(out.read_text())
    assert set(res) == {"suites", "metadata"} and set(res["suites"]) == {"efficiency", "convergence"}
    rows = res["suites"]["efficiency"]["rows"]
    assert len(rows) == 5 * 3 * 5  # scenarios x seeds x quick policies
    text = md.read_text()
    for heading in ("## Efficiency", "### latency_mean (s) by scenario, mean over seeds",
                    "### latency_p99 (s) by scenario, mean over seeds", "## Convergence of the fusion"):
        assert heading in text
    assert "| policy | batch | dag | interactive | llm_inference | quantum_nodes |" in text
    assert "| predictor | MSE of log work, last half |" in text
    assert (tmp_path / "scheduler" / "efficiency.png").is_file()


def _report(monkeypatch):
    bench = Path(__file__).resolve().parents[2] / "bench"
    monkeypatch.syspath_prepend(str(bench))
    monkeypatch.delitem(sys.modules, "scheduler_report", raising=False)
    import scheduler_report

    return scheduler_report


def test_report_trace_windows_and_table(monkeypatch):
    rep = _report(monkeypatch)
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 100, 200))
    lat = rng.exponential(1.0, 200)
    base = {"trace": "azure_llm_conv_2023", "scale": 1.0, "rate": 2.0, "tasks": 200.0, "workers": 4,
            "latency_p50": 1.0, "latency_p90": 2.0, "slo_attainment": 0.95, "arrival": t}
    rows = [{**base, "policy": "fifo", "latency": lat}, {**base, "policy": "fusion", "latency": lat + 0.5}]
    win = rep.trace_windows(rows, n_resamples=200)
    assert all("latency" not in r and "arrival" not in r for r in rows)  # the arrays are consumed
    fusion = {w["metric"]: w for w in win if w["policy"] == "fusion"}
    assert fusion["latency_mean"]["diff"] == pytest.approx(0.5)
    assert fusion["latency_mean"]["diff_low"] == pytest.approx(0.5) == fusion["latency_mean"]["diff_high"]
    assert fusion["latency_p99"]["estimate"] == pytest.approx(np.quantile(lat + 0.5, 0.99))
    text = rep.trace_markdown({"rows": rows, "windows": win, "config": "test"})
    assert "| rate/s | policy | mean (s) [CI] | Δ mean vs FIFO [CI] | p99 (s) [CI] | Δ p99 vs FIFO [CI] |" in text
    assert "Goodput (highest swept rate with ≥ 90% of requests meeting both SLOs): fifo 2/s, fusion 2/s" in text


@pytest.mark.slow
def test_report_into_keeps_the_other_suites_and_their_metadata(tmp_path, monkeypatch, relaxed_jax):
    rep = _report(monkeypatch)
    old = tmp_path / "r.json"
    old.write_text(json.dumps({"suites": {"other": {"rows": []}}, "metadata": {"command": "before", "date": "d",
                                                                               "git_commit": "c"}}))
    assert rep.main(["--quick", "--suites", "convergence", "--into", str(old), "--no-progress"]) == 0
    res = json.loads(old.read_text())
    assert list(res["suites"]) == ["other", "convergence"]
    assert res["suites"]["other"]["metadata"]["command"] == "before"
    assert res["suites"]["convergence"]["metadata"] == res["metadata"] and "--into" in res["metadata"]["command"]
    assert "Suite `other`: `before`" in (tmp_path / "scheduler-report-quick.md").read_text()
