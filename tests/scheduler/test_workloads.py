"""qsn.scheduler.workloads: scenario generators, CSV and trace loaders, noise and fault injection.

References: scipy.stats (lognormal fits and quantiles), closed forms (offered load, gamma CV, the
alternating-renewal down fraction), brute-force loops for the DAG and quantum-link invariants, and the
summary statistics in shared/traces/README.md for the real traces (skipped when they are absent).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.scheduler import workloads as W
from qsn.scheduler.service import llm_work
from qsn.scheduler.simulator import Plan, simulate
from qsn.scheduler.task import Cluster, Workload

COLUMNS = ("arrival", "work", "estimate", "priority", "memory", "qubits", "deadline", "prompt_tokens",
           "output_tokens", "task_type")


def edge_set(wl: Workload) -> set[tuple[int, int]]:
    return set(map(tuple, wl.edges.tolist()))


def assert_same(a: Workload, b: Workload) -> None:
    for k in COLUMNS:
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    assert edge_set(a) == edge_set(b)
    assert a.llm == b.llm


# --- scenarios -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(W.SCENARIOS))
def test_scenario_shape_order_and_seed(name):
    f = W.SCENARIOS[name]
    wl, cl = f(777, 5, seed=3)
    assert isinstance(wl, Workload) and isinstance(cl, Cluster)
    assert wl.n == 777 and cl.n == 5
    assert np.all(np.diff(wl.arrival) >= 0) and wl.arrival[0] == 0.0
    assert np.all(wl.work > 0)
    again, _ = f(777, 5, seed=3)
    assert_same(wl, again)
    other, _ = f(777, 5, seed=4)
    assert not np.array_equal(other.work, wl.work)


@pytest.mark.parametrize("name", sorted(W.SCENARIOS))
@pytest.mark.parametrize("load", [0.5, 0.9])
def test_offered_load_matches(name, load):
    wl, cl = W.SCENARIOS[name](20_000, 8, seed=1, load=load)
    achieved = wl.work.sum() / ((wl.arrival.max() - wl.arrival.min()) * np.sum(cl.speed * cl.slots))
    assert achieved == pytest.approx(load, rel=0.10)
    assert W.offered_load(wl, cl) == pytest.approx(achieved, rel=1e-12)


@pytest.mark.parametrize("name", sorted(W.SCENARIOS))
def test_fifo_simulation_finishes_every_task(name):
    wl, cl = W.SCENARIOS[name](500, 8, seed=0)
    s = simulate(wl, cl, Plan(np.full(wl.n, -1), wl.arrival))
    assert not np.isnan(s.finish).any()
    assert np.all(s.finish >= wl.arrival + wl.work / (cl.speed_table(int(wl.task_type.max()) + 1).max() + 1e-12) - 1e-9)


@pytest.mark.parametrize("bad", [dict(n=0), dict(workers=0), dict(load=0.0), dict(load=-1.0), dict(load=np.inf),
                                 dict(n=2.5)])
@pytest.mark.parametrize("name", sorted(W.SCENARIOS))
def test_scenario_rejects_bad_arguments(name, bad):
    args = dict(n=10, workers=2, load=0.8) | bad
    with pytest.raises(ConfigurationError, match=next(iter(bad))):
        W.SCENARIOS[name](args.pop("n"), args.pop("workers"), **args)


def test_azure_constants_reproduce_readme_quantiles():
    # README (conv 2023): ContextTokens p50 1020, p90 2734; GeneratedTokens p50 129, p90 424.
    for dist, p50, p90 in ((W.AZURE_CONV_PROMPT, 1020, 2734), (W.AZURE_CONV_OUTPUT, 129, 424)):
        ln = scipy.stats.lognorm(dist.sigma, scale=math.exp(dist.mu))
        assert ln.ppf(0.5) == pytest.approx(p50, rel=1e-12)
        assert ln.ppf(0.9) == pytest.approx(p90, rel=1e-12)
    assert W.AZURE_CONV_PROMPT.sigma == pytest.approx(0.769, abs=5e-4)
    assert W.AZURE_CONV_OUTPUT.mu == pytest.approx(4.860, abs=5e-4)


def test_llm_tokens_lognormal_recovered():
    wl, cl = W.llm_inference(100_000, 8, seed=0)
    pr, out = W.AZURE_CONV_PROMPT, W.AZURE_CONV_OUTPUT
    sigma, _, scale = scipy.stats.lognorm.fit(wl.prompt_tokens, floc=0)
    assert sigma == pytest.approx(pr.sigma, rel=0.02)
    assert scale == pytest.approx(math.exp(pr.mu), rel=0.02)
    # outputs are capped at 1000: check the uncensored quantiles and the mass at the cap instead of a fit
    ref = scipy.stats.lognorm(out.sigma, scale=math.exp(out.mu))
    assert np.quantile(wl.output_tokens, [0.5, 0.9]) == pytest.approx(ref.ppf([0.5, 0.9]), rel=0.03)
    assert np.mean(wl.output_tokens == 1000) == pytest.approx(ref.sf(999.5), abs=0.002)
    assert wl.llm and np.isnan(wl.estimate).all() and np.all(wl.deadline == np.inf)
    np.testing.assert_allclose(wl.work, llm_work(wl.prompt_tokens, wl.output_tokens), rtol=1e-12)
    assert set(cl.speed.tolist()) == {1.0, 2.0} and set(cl.kind.tolist()) == {0, 1}


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_llm_arrival_cv(burstiness):
    wl, _ = W.llm_inference(50_000, 4, seed=2, burstiness=burstiness)
    gaps = np.diff(wl.arrival)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / math.sqrt(burstiness), rel=0.05)


def test_batch_sizes_memory_affinity():
    wl, cl = W.batch(60_000, 6, seed=0, work_sigma=0.7, median_work=10.0)
    for t in range(3):
        sigma, _, scale = scipy.stats.lognorm.fit(wl.work[wl.task_type == t], floc=0)
        assert sigma == pytest.approx(0.7, rel=0.03)
        assert scale == pytest.approx(10.0 * 2.0 ** (t - 1), rel=0.03)
    log_err = np.log(wl.estimate / wl.work)
    assert log_err.mean() == pytest.approx(0.0, abs=0.01) and log_err.std() == pytest.approx(0.3, rel=0.03)
    ok = cl.eligible(wl)
    assert ok.any(axis=1).all()
    only_large = ~ok[:, cl.kind == 0].any(axis=1)
    assert 0.05 < only_large.mean() < 0.5  # memory > 16 GiB: roughly a quarter
    assert (~ok[:, cl.kind <= 1].any(axis=1)).any()  # some need the 256 GiB kind
    assert np.all((cl.affinity >= 0.5) & (cl.affinity <= 2.0)) and cl.affinity.shape == (3, 3)
    assert np.mean(wl.priority) == pytest.approx(0.2, abs=0.01)


def test_interactive_deadlines_and_priorities():
    wl, _ = W.interactive(40_000, 4, seed=0, deadline_factor=2.5, priority_fraction=0.7)
    np.testing.assert_allclose(wl.deadline, wl.arrival + 2.5 * wl.work, rtol=1e-12)
    assert np.mean(wl.priority == 1) == pytest.approx(0.7, abs=0.01)
    assert np.median(wl.work) == pytest.approx(0.2, rel=0.03)


def test_dag_edges_forward_within_workflows_and_bounded_depth():
    wl, _ = W.dag(3000, 4, seed=5, depth=(2, 5), width=(1, 3))
    a, b = wl.edges.T
    assert wl.edges.size and np.all(a < b)  # forward in arrival order, hence acyclic
    assert np.all(wl.arrival[a] == wl.arrival[b])  # a workflow arrives at once; no edge crosses workflows
    level = np.zeros(wl.n, int)  # longest path ending at each task, by brute force over sorted edges
    for x, y in sorted(wl.edges.tolist(), key=lambda e: e[1]):
        level[y] = max(level[y], level[x] + 1)
    assert level.max() <= 4
    sizes = np.unique(wl.arrival, return_counts=True)[1]
    assert sizes.max() <= 5 * 3
    has_parent = np.zeros(wl.n, bool)
    has_parent[b] = True
    roots = ~has_parent
    # each workflow has 1-3 roots (its first layer), every other task a parent
    starts = np.flatnonzero(np.r_[True, np.diff(wl.arrival) > 0])
    roots_per_wf = np.add.reduceat(roots.astype(int), starts)
    assert roots_per_wf.min() >= 1 and roots_per_wf.max() <= 3
    wl.topological_order()  # Workload's own cycle check agrees


def test_quantum_nodes_invariants():
    wl, cl = W.quantum_nodes(2000, 6, seed=7, dep_fraction=0.4)
    f = cl.fidelity
    np.testing.assert_array_equal(f, f.T)
    np.testing.assert_array_equal(np.diag(f), 1.0)
    assert np.all((f >= 0) & (f <= 1)) and cl.min_fidelity == 0.9
    assert np.all((cl.qubits >= 8) & (cl.qubits <= 27))
    assert np.all((wl.qubits >= 2) & (wl.qubits <= min(20, cl.qubits.max())))
    # every job fits some node: qubits and coherence (duration on that node), checked by hand
    fits = (wl.qubits[:, None] <= cl.qubits) & (wl.work[:, None] / cl.speed <= cl.coherence)
    assert fits.any(axis=1).all()
    assert wl.edges.size and np.all(wl.edges[:, 0] < wl.edges[:, 1])
    linked = f >= cl.min_fidelity
    for p, c in wl.edges.tolist():  # wherever the parent runs, a linked node can run the child
        for a in np.flatnonzero(fits[p]):
            assert any(linked[a, b] and fits[c, b] for b in range(cl.n))


def test_offered_load_needs_a_span():
    with pytest.raises(InvalidInputError, match="arrive"):
        W.offered_load(Workload.from_arrays(arrival=[1.0, 1.0]), Cluster.uniform(1))


# --- CSV -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(W.SCENARIOS))
def test_csv_round_trip_scenarios(name, tmp_path):
    wl, _ = W.SCENARIOS[name](300, 3, seed=0)
    back = W.load_csv(W.to_csv(wl, tmp_path / "w.csv"))
    assert_same(wl, back)


finite = st.floats(0, 1e9, allow_nan=False, allow_infinity=False)


@st.composite
def workloads_st(draw):
    n = draw(st.integers(1, 12))
    col = lambda s: draw(st.lists(s, min_size=n, max_size=n))  # noqa: E731
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2 * n))
    edges = sorted({(min(p), max(p)) for p in pairs if p[0] != p[1]})
    llm = draw(st.booleans())
    return Workload.from_arrays(
        arrival=col(finite), work=col(finite), estimate=col(st.one_of(st.just(np.nan), finite)),
        priority=col(st.integers(-5, 5)), memory=col(finite), qubits=col(st.integers(0, 50)),
        deadline=col(st.one_of(st.just(np.inf), st.floats(-1e9, 1e9))), task_type=col(st.integers(0, 4)),
        prompt_tokens=col(st.integers(0, 10**6)), output_tokens=col(st.integers(0, 10**4)),
        edges=np.array(edges, np.int64).reshape(-1, 2), llm=llm)


@settings(max_examples=60, deadline=None)
@given(workloads_st())
def test_csv_round_trip_property(wl):
    with tempfile.TemporaryDirectory() as d:
        # the llm flag is inferred from the token columns unless given (to_csv's docstring)
        assert_same(wl, W.load_csv(W.to_csv(wl, Path(d) / "w.csv"), llm=wl.llm))


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "t.csv"
    p.write_text(text)
    return p


def test_load_csv_sorts_maps_and_remaps_deps(tmp_path):
    p = write(tmp_path, "arrived_at,work,deps,qubits\n3.0,1,1,\n1.0,2,,4\n2.0,3,1;0,\n")
    wl = W.load_csv(p, columns={"arrived_at": "arrival"})
    np.testing.assert_array_equal(wl.arrival, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(wl.work, [2.0, 3.0, 1.0])
    np.testing.assert_array_equal(wl.qubits, [4, 0, 0])
    # file rows 0,1,2 are tasks 2,0,1: row0 <- row1, row2 <- row1 and row0
    assert edge_set(wl) == {(0, 2), (0, 1), (2, 1)}
    assert np.isnan(wl.estimate).all() and not wl.llm and wl.name == "t"


def test_load_csv_tokens_make_llm(tmp_path):
    wl = W.load_csv(write(tmp_path, "arrival,prompt_tokens,output_tokens\n0,100,10\n1,2000,1\n"))
    assert wl.llm
    np.testing.assert_allclose(wl.work, llm_work([100, 2000], [10, 1]), rtol=1e-12)
    explicit = W.load_csv(write(tmp_path, "arrival,work,prompt_tokens,output_tokens\n0,7.5,100,10\n"), llm=False)
    assert not explicit.llm and explicit.work[0] == 7.5


@pytest.mark.parametrize("text, match", [
    ("arrival,work,colour\n0,1,red\n", r"unknown column.*'colour'"),
    ("work\n1\n", r"lacks required column.*'arrival'"),
    ("arrival,prompt_tokens\n0,5\n", r"lacks required column.*'work'"),
])
def test_load_csv_configuration_errors(tmp_path, text, match):
    with pytest.raises(ConfigurationError, match=match):
        W.load_csv(write(tmp_path, text))


def test_load_csv_ignore_unknown_and_bad_mapping(tmp_path):
    p = write(tmp_path, "arrival,work,colour\n0,1,red\n")
    assert W.load_csv(p, ignore_unknown=True).n == 1
    with pytest.raises(ConfigurationError, match="colour"):
        W.load_csv(p, columns={"color": "arrival"})
    with pytest.raises(ConfigurationError, match="hue"):
        W.load_csv(p, columns={"colour": "hue"})


@pytest.mark.parametrize("rows, line, column", [
    ("0,1\n1,abc\n2,1\n", 3, "work"),
    ("0,1\n1,1\n2,-1\n", 4, "work"),
    ("0,1\nnan,1\n", 3, "arrival"),
    ("0,1\n,1\n", 3, "arrival"),
    ("inf,1\n", 2, "arrival"),
    ("0,1\n1,\n", 3, "work"),
])
def test_load_csv_bad_values_name_line_and_column(tmp_path, rows, line, column):
    with pytest.raises(InvalidInputError, match=rf"line {line}, column `{column}`"):
        W.load_csv(write(tmp_path, "arrival,work\n" + rows))


@pytest.mark.parametrize("header, rows, line, column", [
    ("arrival,work,qubits", "0,1,2\n0,1,2.5\n", 3, "qubits"),
    ("arrival,work,deps", "0,1,\n0,1,5\n", 3, "deps"),
    ("arrival,work,deps", "0,1,0\n", 2, "deps"),
    ("arrival,work,deps", "0,1,\n0,1,x\n", 3, "deps"),
    ("arrival,work,estimate", "0,1,-2\n", 2, "estimate"),
    ("t,work", "0,1\n1,-1\n", 3, "work"),
])
def test_load_csv_bad_optional_values(tmp_path, header, rows, line, column):
    with pytest.raises(InvalidInputError, match=rf"line {line}, column `{column}`"):
        W.load_csv(write(tmp_path, header + "\n" + rows), columns={"t": "arrival"} if header.startswith("t,") else None)


def test_load_csv_structure_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="line 3: 3 fields"):
        W.load_csv(write(tmp_path, "arrival,work\n0,1\n1,2,3\n"))
    with pytest.raises(InvalidInputError, match="empty"):
        W.load_csv(write(tmp_path, ""))
    with pytest.raises(InvalidInputError, match="no data rows"):
        W.load_csv(write(tmp_path, "arrival,work\n"))
    with pytest.raises(InvalidInputError, match="cycle"):
        W.load_csv(write(tmp_path, "arrival,work,deps\n0,1,1\n0,1,0\n"))
    with pytest.raises(ConfigurationError, match="existing file"):
        W.load_csv(tmp_path / "missing.csv")


def test_load_csv_optional_defaults(tmp_path):
    wl = W.load_csv(write(tmp_path, "arrival,work,estimate,deadline,priority\n0,1,,,\n1,2,nan,inf,-3\n2,3,2.5,9,1\n"))
    np.testing.assert_array_equal(wl.estimate, [np.nan, np.nan, 2.5])
    np.testing.assert_array_equal(wl.deadline, [np.inf, np.inf, 9.0])
    np.testing.assert_array_equal(wl.priority, [0, -3, 1])


def test_load_csv_reads_excel_utf8_with_bom(tmp_path):
    # Excel's "CSV UTF-8": a byte-order mark before the first column name, CRLF line ends, UTF-8 names
    body = "arrival,work,deps,durée\r\n1.5,2,,x\r\n0.5,3,0,y\r\n"
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    assert excel.read_bytes()[:3] == b"\xef\xbb\xbf"
    wl = W.load_csv(excel, ignore_unknown=True)
    np.testing.assert_array_equal(wl.arrival, [0.5, 1.5])
    np.testing.assert_array_equal(wl.work, [3.0, 2.0])
    assert edge_set(wl) == {(1, 0)}  # file row 1 (task 0) waits for file row 0 (task 1)
    # the first column can be mapped by its visible name, and other errors name columns without the mark
    mapped = tmp_path / "mapped.csv"
    mapped.write_bytes(b"\xef\xbb\xbf" + body.replace("arrival", "t", 1).encode("utf-8"))
    np.testing.assert_array_equal(W.load_csv(mapped, columns={"t": "arrival"}, ignore_unknown=True).arrival,
                                  [0.5, 1.5])
    with pytest.raises(ConfigurationError, match=r"unknown column\(s\) \['durée'\]"):
        W.load_csv(excel)


# --- real traces (skipped when the shared copies are absent) ----------------------------------------------
def trace(name: str) -> Path:
    p = W.shared_trace(name)
    if p is None:
        pytest.skip(f"shared trace {name} not found")
    return p


@pytest.mark.parametrize("name, rows, mean_ctx, mean_gen, span", [
    ("azure_llm_conv_2023.csv", 19_366, 1154.7, 211.1, 3501.7),
    ("azure_llm_code_2023.csv", 8_819, 2047.8, 27.9, 3435.9),
])
def test_azure_llm_trace(name, rows, mean_ctx, mean_gen, span):
    wl = W.azure_llm(trace(name))
    assert wl.n == rows and wl.llm and wl.arrival[0] == 0.0
    assert wl.arrival[-1] == pytest.approx(span, abs=0.05)
    assert wl.prompt_tokens.mean() == pytest.approx(mean_ctx, abs=0.05)
    assert wl.output_tokens.mean() == pytest.approx(mean_gen, abs=0.05)
    np.testing.assert_allclose(wl.work, llm_work(wl.prompt_tokens, wl.output_tokens), rtol=1e-12)
    assert W.azure_llm(trace(name), limit=100).n == 100


def test_azure_conv_quantiles_are_the_fitted_ones():
    wl = W.azure_llm(trace("azure_llm_conv_2023.csv"))
    assert np.quantile(wl.prompt_tokens, [0.5, 0.9]) == pytest.approx([1020, 2734], abs=1)
    assert np.quantile(wl.output_tokens, [0.5, 0.9]) == pytest.approx([129, 424], abs=1)


def test_alibaba_pods_trace():
    p = trace("alibaba_gpu2023_pods_default.csv")
    wl = W.alibaba_pods(p)
    assert wl.n == 2062  # README: finished pods
    assert np.median(wl.work) == pytest.approx(235.5) and wl.work.max() == 1332357.0  # README p50 236, max
    assert wl.arrival[0] == 0.0 and set(wl.task_type.tolist()) <= {0, 1, 2, 3}
    assert W.alibaba_pods(p, censored="lower_bound").n == 8152 - 897  # every scheduled pod
    assert W.alibaba_pods(p, censored="lower_bound", last_days=7).n <= 2209
    assert W.alibaba_pods(p, limit=10).n == 10
    with pytest.raises(ConfigurationError, match="censored"):
        W.alibaba_pods(p, censored="keep")


def test_alibaba_nodes_trace_and_pods_run():
    cl = W.alibaba_nodes(trace("alibaba_gpu2023_nodes_gpu.csv"))
    assert cl.n == 1213 and cl.gpus.sum() == 6212
    models = list(W.ALIBABA_GPU_SPEEDS)
    gpus = {m: int(cl.gpus[cl.kind == models.index(m)].sum()) for m in models}
    assert gpus == {"A10": 2, "G2": 4392, "G3": 312, "P100": 265, "T4": 842, "V100M16": 195, "V100M32": 204}
    np.testing.assert_array_equal(cl.speed, np.array(list(W.ALIBABA_GPU_SPEEDS.values()))[cl.kind])
    wl = W.alibaba_pods(trace("alibaba_gpu2023_pods_default.csv"), limit=300)
    s = simulate(wl, cl, Plan(np.full(wl.n, -1), wl.arrival))
    assert not np.isnan(s.finish).any()
    with pytest.raises(ConfigurationError, match="no speed"):
        W.alibaba_nodes(trace("alibaba_gpu2023_nodes_gpu.csv"), speeds={"T4": 1.0})


def test_alibaba_loaders_on_small_files(tmp_path):
    pods = tmp_path / "pods.csv"
    pods.write_text("name,memory_mib,qos,pod_phase,creation_time,deletion_time,scheduled_time,num_gpu,gpu_milli,cpu_milli\n"
                    "a,2048,BE,Succeeded,100,200,110,2,1000,8000\nb,1024,LS,Running,50,300,60,1,500,4000\n"
                    "c,512,LS,Pending,70,300,,1,1000,1000\nd,1024,Burstable,Failed,80,90,85,1,300,6500\n")
    wl = W.alibaba_pods(pods)
    np.testing.assert_array_equal(wl.arrival, [0.0, 20.0])
    np.testing.assert_array_equal(wl.work, [5.0, 90.0])
    np.testing.assert_array_equal(wl.memory, [1.0, 2.0])
    np.testing.assert_array_equal(wl.task_type, [2, 1])
    np.testing.assert_array_equal(wl.gpu, [0.3, 2.0])  # a share of one GPU; two whole GPUs
    np.testing.assert_array_equal(wl.cpu, [6.5, 8.0])
    text = pods.read_text()
    pods.write_text(text.replace(",1,300,6500", ",1,1300,6500"))
    with pytest.raises(InvalidInputError, match="line 5, column `gpu_milli`"):
        W.alibaba_pods(pods)
    pods.write_text(text.replace("Burstable", "Gold"))
    with pytest.raises(InvalidInputError, match="line 5, column `qos`"):
        W.alibaba_pods(pods)
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,memory_mib,gpu,model,cpu_milli\nx,2048,2,T4,8000\ny,1024,0,P100,4000\n")
    with pytest.raises(InvalidInputError, match="line 3, column `gpu`"):
        W.alibaba_nodes(nodes)


def test_shared_trace_lookup(tmp_path, monkeypatch):
    assert W.shared_trace("surely_not_a_trace.csv") is None
    (tmp_path / "mine.csv").write_text("x\n")
    monkeypatch.setenv("QSN_TRACES", str(tmp_path))
    assert W.shared_trace("mine.csv") == tmp_path / "mine.csv"


# --- noise and faults ------------------------------------------------------------------------------------
def test_with_noise():
    wl, _ = W.batch(20_000, 4, seed=0)
    noisy = W.with_noise(wl, 0.5, seed=1)
    np.testing.assert_array_equal(noisy.work, wl.work)
    r = np.log(noisy.estimate / wl.estimate)
    assert r.mean() == pytest.approx(0.0, abs=0.01) and r.std() == pytest.approx(0.5, rel=0.02)
    llm, _ = W.llm_inference(20_000, 4, seed=0)
    from_work = W.with_noise(llm, 0.2, seed=1)
    assert np.log(from_work.estimate / llm.work).std() == pytest.approx(0.2, rel=0.03)
    np.testing.assert_array_equal(W.with_noise(llm, 0.0).estimate, llm.work)
    with pytest.raises(ConfigurationError, match="sigma"):
        W.with_noise(wl, -0.1)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1.0])
def test_with_missing(fraction):
    wl, _ = W.batch(1000, 4, seed=0)
    m = W.with_missing(wl, fraction, seed=2)
    gone = np.isnan(m.estimate)
    assert gone.sum() == round(fraction * 1000)
    np.testing.assert_array_equal(m.estimate[~gone], wl.estimate[~gone])
    for k in COLUMNS:
        if k != "estimate":
            np.testing.assert_array_equal(getattr(m, k), getattr(wl, k))


def test_with_failures_rates():
    cl = Cluster.uniform(10)
    f = W.with_failures(cl, 0.2, repair_time=10.0)
    # down fraction of an alternating renewal process: R / (1/rate + R)
    assert np.allclose(10.0 / (1 / f.failure_rate + 10.0), 0.2)
    assert np.all(f.repair_time == 10.0)
    assert np.all(W.with_failures(cl, rate=0.01).failure_rate == 0.01)
    half = W.with_failures(cl, 0.1, affected=0.5, seed=3)
    assert (half.failure_rate > 0).sum() == 5
    with pytest.raises(ConfigurationError, match="exactly one"):
        W.with_failures(cl)
    with pytest.raises(ConfigurationError, match="down"):
        W.with_failures(cl, 1.0)


def test_with_failures_in_the_simulator():
    # 4 workers, down 20% with 10 s repairs: failures every 1/rate + R = 50 s per worker on average
    cl = W.with_failures(Cluster.uniform(4), 0.2, repair_time=10.0)
    wl = Workload.from_arrays(arrival=np.linspace(0.0, 20_000.0, 2000), work=np.full(2000, 0.5))
    s = simulate(wl, cl, Plan(np.full(wl.n, -1), wl.arrival), seed=0)
    expected = 4 * s.finish.max() / 50.0
    assert s.failures.sum() == pytest.approx(expected, rel=0.1)


def test_trace_files(tmp_path, monkeypatch):
    with pytest.raises(ConfigurationError, match="Argument `trace` must be one of"):
        W.trace_files("azure")
    monkeypatch.setenv("QSN_TRACES", str(tmp_path))
    (tmp_path / "azure_llm_code_2023.csv").write_text("x")
    assert W.trace_files("azure-code") == (tmp_path / "azure_llm_code_2023.csv",)
    with pytest.raises(ConfigurationError, match="needs azure_llm_conv_2023.csv, which is not in /no/where"):
        W.trace_files("azure-conv", "/no/where")
