"""Workloads for the scheduler: synthetic scenarios, real-trace loaders, and noise / fault injection.

Units as in :mod:`qsn.scheduler.task`: seconds, GiB, work units (one unit = one second on a speed-1
worker), qubits. Every generator takes ``n`` tasks, ``workers``, a NumPy ``default_rng`` ``seed`` and an
offered ``load``, and returns ``(Workload, Cluster)``; all are vectorised (100,000 tasks in a fraction of
a second). The arrival rate is set from the drawn sizes so that

    offered load = Σ work / (span of arrivals × Σ_workers speed · slots) ≈ load

(:func:`offered_load`; the capacity ignores affinity, which only reshuffles speed between task types).

* :func:`llm_inference` — LLM requests, token lengths fitted to the Azure conversation trace 2023;
* :func:`batch` — lognormal jobs, task types × worker kinds with an affinity matrix, memory limits;
* :func:`interactive` — short jobs, many high-priority, deadlines a few times their size;
* :func:`dag` — layered random workflows with dependencies;
* :func:`quantum_nodes` — circuit jobs on a network of quantum processors (qubits, coherence, links).

Trace loaders read files where they lie (nothing is copied into the repository): :func:`load_csv` (the
generic format, written by :func:`to_csv`), :func:`azure_llm`, :func:`alibaba_pods`, :func:`alibaba_nodes`;
:func:`shared_trace` finds the shared copies. The robustness suite perturbs workloads with
:func:`with_noise`, :func:`with_missing` and :func:`with_failures`.

Example:
    >>> from qsn.scheduler import workloads
    >>> wl, cl = workloads.batch(1000, 8, seed=0, load=0.8)
    >>> wl.n, cl.n, round(workloads.offered_load(wl, cl), 1)
    (1000, 8, 0.8)
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from pathlib import Path
from statistics import NormalDist
from typing import Callable, Mapping, NamedTuple

import numpy as np

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.scheduler.service import llm_work
from qsn.scheduler.task import Cluster, Worker, Workload

__all__ = [
    "LogNormal", "AZURE_CONV_PROMPT", "AZURE_CONV_OUTPUT", "ALIBABA_GPU_SPEEDS", "CSV_COLUMNS", "TRACE_COLUMNS",
    "llm_inference", "batch", "interactive", "dag", "quantum_nodes", "SCENARIOS", "offered_load",
    "load_csv", "to_csv", "azure_llm", "alibaba_pods", "alibaba_nodes", "shared_trace", "TRACES", "trace_files",
    "with_noise", "with_missing", "with_failures",
]


class LogNormal(NamedTuple):
    """``X = exp(mu + sigma Z)``, Z standard normal: median ``exp(mu)`` (scipy: ``lognorm(sigma, scale=exp(mu))``)."""

    mu: float
    sigma: float

    @classmethod
    def from_quantiles(cls, p50: float, p90: float) -> "LogNormal":
        """The lognormal with the given median and 90th percentile."""
        return cls(math.log(p50), math.log(p90 / p50) / NormalDist().inv_cdf(0.9))


# Fitted to the Azure LLM inference trace 2023, conversation service (docs/scheduler.md, Workloads and traces; summary
# statistics): ContextTokens p50 1020, p90 2734 -> mu 6.928, sigma 0.769; GeneratedTokens p50 129, p90 424
# -> mu 4.860, sigma 0.928. Median and p90 are matched exactly; the lognormal then overstates the prompt
# mean (1371 vs 1155 tokens) and understates the output mean (199 vs 211). (A maximum-likelihood fit on
# the raw file gives mu 6.633 / 5.019, sigma 0.985 / 0.859: the real log-lengths are left-skewed.)
AZURE_CONV_PROMPT = LogNormal.from_quantiles(1020.0, 2734.0)
AZURE_CONV_OUTPUT = LogNormal.from_quantiles(129.0, 424.0)

# Relative speeds of the Alibaba GPU models: ASSUMED, not measured. Ratio of each model's FP32 peak to the
# V100's in NVIDIA's datasheets (V100 15.7, P100 9.3, T4 8.1, A10 31.2 TFLOPS), rounded; the trace does
# not disclose G2 and G3, which are set to 1.0. Pass `speeds=` to alibaba_nodes to use others.
ALIBABA_GPU_SPEEDS = {"P100": 0.6, "T4": 0.5, "V100M16": 1.0, "V100M32": 1.0, "A10": 2.0, "G2": 1.0, "G3": 1.0}

ALIBABA_QOS = ("LS", "BE", "Burstable", "Guaranteed")  # task_type codes 0..3 of alibaba_pods


# --- shared helpers ------------------------------------------------------------------------------------
def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigurationError(f"Argument `{name}` must be an integer >= {minimum}, but is {value!r}")
    return int(value)


def _real(name: str, value, lo: float = 0.0, hi: float = math.inf, *, open_lo=False, open_hi=False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if open_lo else value >= lo) and (value < hi if open_hi else value <= hi)
    if not ok:
        left, right = "(" if open_lo else "[", ")" if open_hi else "]"
        raise ConfigurationError(f"Argument `{name}` must be a finite number in {left}{lo}, {hi}{right}, but is {value!r}")
    return float(value)


def _scenario_args(n, workers, load) -> tuple[int, int, float]:
    return _positive_int("n", n), _positive_int("workers", workers), _real("load", load, open_lo=True)


def _lognormal(rng: np.random.Generator, dist: LogNormal, size) -> np.ndarray:
    return np.exp(dist.mu + dist.sigma * rng.standard_normal(size))


def _noisy(rng: np.random.Generator, work: np.ndarray, sigma: float) -> np.ndarray:
    """``work · exp(sigma Z)``: a median-unbiased estimate whose log error is N(0, sigma²)."""
    return work * np.exp(sigma * rng.standard_normal(work.shape))


def _arrivals(rng: np.random.Generator, n: int, rate: float, burstiness: float = 1.0) -> np.ndarray:
    """``n`` arrival times from 0 with gamma gaps of mean ``1/rate`` and CV ``1/sqrt(burstiness)`` (1 = Poisson)."""
    gaps = rng.gamma(burstiness, 1.0 / (rate * burstiness), size=n - 1)
    return np.concatenate([[0.0], np.cumsum(gaps)])


def _rate(load: float, cluster: Cluster, total_work: float, count: int) -> float:
    """Arrivals per second of ``count`` units carrying ``total_work`` so that work / capacity = ``load``."""
    if total_work <= 0:
        raise ConfigurationError("The drawn tasks carry no work, so no arrival rate gives the requested load")
    return load * _capacity(cluster) * count / total_work


def _capacity(cluster: Cluster) -> float:
    return float(np.sum(cluster.speed * cluster.slots))


def _cluster(w: int, name: str, **columns) -> Cluster:
    """A cluster of ``w`` workers: per-worker columns (scalars broadcast) default to :class:`Worker`'s."""
    defaults = {f.name: f.default for f in dataclasses.fields(Worker)}
    cols = {k: np.broadcast_to(np.asarray(columns.pop(k, d)), (w,)).copy() for k, d in defaults.items()}
    return Cluster(**cols, name=name, **columns)


def offered_load(workload: Workload, cluster: Cluster) -> float:
    """Offered load ``Σ work / ((last − first arrival) × Σ speed · slots)``, dimensionless.

    Raises :class:`~qsn.errors.InvalidInputError` when every task arrives at once (the load is unbounded).
    """
    span = float(workload.arrival[-1] - workload.arrival[0])
    if span <= 0:
        raise InvalidInputError(f"Offered load needs arrivals spread over time, but all {workload.n} arrive at {workload.arrival[0]}")
    return float(workload.work.sum()) / (span * _capacity(cluster))


# --- scenarios -----------------------------------------------------------------------------------------
def llm_inference(n: int, workers: int, *, seed: int = 0, load: float = 0.8, burstiness: float = 1.0,
                  h100_fraction: float = 0.5, slots: int = 1, prompt: LogNormal = AZURE_CONV_PROMPT,
                  output: LogNormal = AZURE_CONV_OUTPUT, max_prompt_tokens: int = 16384,
                  max_output_tokens: int = 1000) -> tuple[Workload, Cluster]:
    """LLM inference requests on A100- and H100-like replicas (``llm=True``).

    * arrivals: gamma inter-arrival times with shape ``burstiness`` (CV = 1/sqrt(burstiness); 1 = Poisson),
      as vLLM's benchmark client;
    * prompt / output tokens: independent lognormals (defaults :data:`AZURE_CONV_PROMPT`,
      :data:`AZURE_CONV_OUTPUT`, fitted to the Azure conversation trace 2023), rounded, at least 1 and
      capped at ``max_prompt_tokens`` (a context window) and ``max_output_tokens`` (the trace's maximum
      1000: a generation limit; about 1.4% of draws hit it);
    * ``work`` = :func:`~qsn.scheduler.service.llm_work` (OPT-13B on an A100, s); ``estimate`` = NaN (the
      output length is unknown at arrival), ``memory`` = 0 (KV cache not modelled), no deadlines (TTFT and
      latency SLOs are given to :func:`~qsn.scheduler.metrics.metrics`);
    * workers: the last ``round(h100_fraction · workers)`` are H100-like (kind 1, speed 2.0, 700 W), the
      others A100-like (kind 0, speed 1.0, 400 W); ``slots`` concurrent requests each, 80 GiB.

    Example:
        >>> wl, cl = llm_inference(200, 4, seed=1, burstiness=0.5)
        >>> bool(wl.llm), bool(np.isnan(wl.estimate).all()), cl.speed.tolist()
        (True, True, [1.0, 1.0, 2.0, 2.0])
    """
    n, w, load = _scenario_args(n, workers, load)
    burstiness = _real("burstiness", burstiness, open_lo=True)
    h100 = round(_real("h100_fraction", h100_fraction, 0.0, 1.0) * w)
    slots = _positive_int("slots", slots)
    rng = np.random.default_rng(seed)
    p = np.clip(np.rint(_lognormal(rng, prompt, n)), 1, _positive_int("max_prompt_tokens", max_prompt_tokens))
    o = np.clip(np.rint(_lognormal(rng, output, n)), 1, _positive_int("max_output_tokens", max_output_tokens))
    work = llm_work(p, o)
    kind = (np.arange(w) >= w - h100).astype(np.int64)
    cl = _cluster(w, "llm_replicas", speed=np.where(kind == 1, 2.0, 1.0), slots=slots, memory=80.0, kind=kind,
                  power_busy=np.where(kind == 1, 700.0, 400.0) / slots, power_idle=np.where(kind == 1, 70.0, 60.0))
    arrival = _arrivals(rng, n, _rate(load, cl, work.sum(), n), burstiness)
    wl = Workload.from_arrays(arrival=arrival, work=work, prompt_tokens=p.astype(np.int64),
                              output_tokens=o.astype(np.int64), name="llm_inference", llm=True)
    return wl, cl


def batch(n: int, workers: int, *, seed: int = 0, load: float = 0.8, types: int = 3, kinds: int = 3,
          median_work: float = 10.0, work_sigma: float = 1.0, estimate_sigma: float = 0.3,
          memory_median: float = 8.0, memory_sigma: float = 1.0, priority_fraction: float = 0.2,
          slots: int = 1) -> tuple[Workload, Cluster]:
    """Batch jobs of a few types on a few worker kinds with type × kind affinity and memory limits.

    * type ``t`` uniform in ``[0, types)``; ``work`` lognormal with median ``median_work · 2^(t − (types−1)/2)``
      and log-sd ``work_sigma`` (s on a speed-1 worker);
    * ``estimate = work · exp(estimate_sigma Z)`` (the user's guess; log error N(0, σ²));
    * ``memory`` lognormal, median ``memory_median`` GiB, log-sd ``memory_sigma``, log-correlated 0.5 with
      ``work`` (bigger jobs tend to need more memory), capped at the largest worker's memory;
    * ``priority`` 1 with probability ``priority_fraction``, else 0; Poisson arrivals;
    * worker ``j`` has kind ``j % kinds``, speed ``1 + 0.5·kind``, memory ``16 · 4^kind`` GiB (16, 64, 256,
      …): tasks above 16 GiB fit only kind ≥ 1, above 64 GiB only kind ≥ 2;
    * affinity (types, kinds): speed multipliers log-uniform in [0.5, 2].

    Example:
        >>> wl, cl = batch(300, 6, seed=0)
        >>> cl.affinity.shape, int(cl.eligible(wl).any(axis=1).sum())
        ((3, 3), 300)
    """
    n, w, load = _scenario_args(n, workers, load)
    types, kinds, slots = _positive_int("types", types), _positive_int("kinds", kinds), _positive_int("slots", slots)
    rng = np.random.default_rng(seed)
    kind = np.arange(w) % kinds
    wmem = 16.0 * 4.0 ** kind
    affinity = np.exp(rng.uniform(math.log(0.5), math.log(2.0), size=(types, kinds)))
    cl = _cluster(w, "batch_cluster", speed=1.0 + 0.5 * kind, slots=slots, memory=wmem, kind=kind, affinity=affinity)
    task_type = rng.integers(0, types, size=n)
    z = rng.standard_normal(n)
    work = np.exp(math.log(_real("median_work", median_work, open_lo=True)) + math.log(2.0) * (task_type - (types - 1) / 2)
                  + _real("work_sigma", work_sigma) * z)
    zm = 0.5 * z + math.sqrt(0.75) * rng.standard_normal(n)
    memory = np.minimum(np.exp(math.log(_real("memory_median", memory_median, open_lo=True))
                               + _real("memory_sigma", memory_sigma) * zm), wmem.max())
    estimate = _noisy(rng, work, _real("estimate_sigma", estimate_sigma))
    priority = (rng.random(n) < _real("priority_fraction", priority_fraction, 0.0, 1.0)).astype(np.int64)
    arrival = _arrivals(rng, n, _rate(load, cl, work.sum(), n))
    wl = Workload.from_arrays(arrival=arrival, work=work, estimate=estimate, priority=priority, memory=memory,
                              task_type=task_type, name="batch")
    return wl, cl


def interactive(n: int, workers: int, *, seed: int = 0, load: float = 0.8, median_work: float = 0.2,
                work_sigma: float = 0.5, estimate_sigma: float = 0.3, priority_fraction: float = 0.5,
                deadline_factor: float = 3.0, slots: int = 1) -> tuple[Workload, Cluster]:
    """Short interactive requests with tight deadlines on identical workers.

    * ``work`` lognormal, median ``median_work`` s (default 0.2 s), log-sd ``work_sigma``; Poisson arrivals;
    * ``priority`` 1 with probability ``priority_fraction`` (default half), else 0;
    * ``deadline = arrival + deadline_factor · work`` (absolute s): with the default 3, a task may wait at
      most twice its own service time on a speed-1 worker;
    * ``estimate = work · exp(estimate_sigma Z)``; workers: speed 1, ``slots`` each.

    Example:
        >>> wl, cl = interactive(100, 2, seed=0)
        >>> bool(np.allclose(wl.deadline - wl.arrival, 3.0 * wl.work))
        True
    """
    n, w, load = _scenario_args(n, workers, load)
    rng = np.random.default_rng(seed)
    cl = _cluster(w, "interactive_cluster", slots=_positive_int("slots", slots))
    work = _lognormal(rng, LogNormal(math.log(_real("median_work", median_work, open_lo=True)),
                                     _real("work_sigma", work_sigma)), n)
    estimate = _noisy(rng, work, _real("estimate_sigma", estimate_sigma))
    priority = (rng.random(n) < _real("priority_fraction", priority_fraction, 0.0, 1.0)).astype(np.int64)
    arrival = _arrivals(rng, n, _rate(load, cl, work.sum(), n))
    deadline = arrival + _real("deadline_factor", deadline_factor, open_lo=True) * work
    wl = Workload.from_arrays(arrival=arrival, work=work, estimate=estimate, priority=priority, deadline=deadline,
                              name="interactive")
    return wl, cl


def dag(n: int, workers: int, *, seed: int = 0, load: float = 0.8, depth: tuple[int, int] = (2, 6),
        width: tuple[int, int] = (1, 4), extra_edge_p: float = 0.3, median_work: float = 5.0,
        work_sigma: float = 0.8, estimate_sigma: float = 0.3, speeds: tuple[float, ...] = (1.0, 2.0)
        ) -> tuple[Workload, Cluster]:
    """Independent layered workflows (DAGs) arriving over time; all tasks of a workflow arrive together.

    * each workflow has a depth uniform in ``depth`` (inclusive) and each layer a width uniform in
      ``width``; workflows are drawn until there are ``n`` tasks (the last one is cut at ``n``);
    * every task below a workflow's first layer depends on one uniform task of the layer above, and with
      probability ``extra_edge_p`` also on one uniform task of any earlier layer of its workflow
      (duplicates merged). Tasks are numbered in layer order, so every edge ``(a, b)`` has ``a < b``;
    * ``work`` lognormal (median ``median_work`` s, log-sd ``work_sigma``), ``estimate`` noisy as in
      :func:`batch`; workflows arrive as a Poisson process;
    * workers: speeds cycle through ``speeds`` (kind = position in ``speeds``), one slot each.

    Example:
        >>> wl, cl = dag(100, 4, seed=0)
        >>> wl.n, bool((wl.edges[:, 0] < wl.edges[:, 1]).all())
        (100, True)
    """
    n, w, load = _scenario_args(n, workers, load)
    d_lo, d_hi = _positive_int("depth[0]", depth[0]), _positive_int("depth[1]", depth[1], depth[0])
    w_lo, w_hi = _positive_int("width[0]", width[0]), _positive_int("width[1]", width[1], width[0])
    p_extra = _real("extra_edge_p", extra_edge_p, 0.0, 1.0)
    speeds = np.asarray([_real("speeds", s, open_lo=True) for s in speeds], np.float64)
    if speeds.size == 0:
        raise ConfigurationError("Argument `speeds` must hold at least one speed, but is empty")
    rng = np.random.default_rng(seed)
    n_wf = n // (((d_lo + d_hi) * (w_lo + w_hi)) // 4 or 1) + 2  # expected count, doubled below if short
    while True:
        depths = rng.integers(d_lo, d_hi + 1, size=n_wf)
        widths = rng.integers(w_lo, w_hi + 1, size=int(depths.sum()))
        if widths.sum() >= n:
            break
        n_wf *= 2
    layer_wf = np.repeat(np.arange(n_wf), depths)  # (L,) workflow of each layer
    first_layer = np.concatenate([[0], np.cumsum(depths)[:-1]])  # (n_wf,) index of each workflow's first layer
    layer_start = np.concatenate([[0], np.cumsum(widths)[:-1]])  # (L,) first task of each layer
    layer = np.repeat(np.arange(widths.size), widths)[:n]  # (n,) layer of each task
    wf = layer_wf[layer]
    inner = np.flatnonzero(layer != first_layer[wf])  # tasks with a layer above them
    up = layer[inner] - 1
    parent = layer_start[up] + (rng.random(inner.size) * widths[up]).astype(np.int64)
    extra = inner[rng.random(inner.size) < p_extra]
    wf_start = layer_start[first_layer[wf[extra]]]
    extra_parent = wf_start + (rng.random(extra.size) * (layer_start[layer[extra]] - wf_start)).astype(np.int64)
    key = np.unique(np.concatenate([parent * n + inner, extra_parent * n + extra]))  # merges duplicate edges
    edges = np.stack([key // n, key % n], 1)
    work = _lognormal(rng, LogNormal(math.log(_real("median_work", median_work, open_lo=True)),
                                     _real("work_sigma", work_sigma)), n)
    estimate = _noisy(rng, work, _real("estimate_sigma", estimate_sigma))
    kind = np.arange(w) % speeds.size
    cl = _cluster(w, "dag_cluster", speed=speeds[kind], kind=kind)
    used = int(wf[-1]) + 1
    wf_arrival = _arrivals(rng, used, _rate(load, cl, work.sum(), used))
    wl = Workload.from_arrays(arrival=wf_arrival[wf], work=work, estimate=estimate, edges=edges, name="dag")
    return wl, cl


def quantum_nodes(n: int, workers: int, *, seed: int = 0, load: float = 0.8, qubits: tuple[int, int] = (2, 20),
                  node_qubits: tuple[int, int] = (8, 27), coherence: tuple[float, float] = (30.0, 300.0),
                  speeds: tuple[float, float] = (0.5, 2.0), median_work: float = 10.0, work_sigma: float = 0.8,
                  estimate_sigma: float = 0.2, dep_fraction: float = 0.2, link_length: float = 3.0,
                  min_fidelity: float = 0.9) -> tuple[Workload, Cluster]:
    """Circuit jobs on a network of quantum processors (one job at a time per node).

    * nodes: qubit capacity uniform in ``node_qubits`` (inclusive), coherence limit uniform in ``coherence``
      s (a job running longer than this on the node cannot run there), speed uniform in ``speeds``;
      positions uniform in the unit square and link fidelity ``exp(−distance / link_length)`` (symmetric,
      1 on the diagonal; with the defaults about a quarter of the pairs reach ``min_fidelity`` 0.9), set on
      the cluster with ``min_fidelity``;
    * jobs: qubits uniform in ``qubits`` (inclusive), capped at the largest node; ``work`` lognormal
      (median ``median_work`` s, log-sd ``work_sigma``) capped at ``coherence · speed`` of the best node
      with enough qubits, so every job fits some node; ``estimate`` noisy (log-sd ``estimate_sigma``:
      circuit depth and shot count are known, queueing on the device is not); Poisson arrivals;
    * dependencies: a fraction ``dep_fraction`` of jobs depend on one of the five jobs before them (e.g. a
      circuit consuming another's entangled output); pairs are kept only when, wherever the parent runs,
      some node linked to it with fidelity ≥ ``min_fidelity`` can run the child (so no plan deadlocks).

    Example:
        >>> wl, cl = quantum_nodes(200, 5, seed=0)
        >>> bool(cl.eligible(wl).any(axis=1).all()), bool(np.allclose(np.diag(cl.fidelity), 1.0))
        (True, True)
    """
    n, w, load = _scenario_args(n, workers, load)
    q_lo, q_hi = _positive_int("qubits[0]", qubits[0]), _positive_int("qubits[1]", qubits[1], qubits[0])
    c_lo = _positive_int("node_qubits[0]", node_qubits[0])
    c_hi = _positive_int("node_qubits[1]", node_qubits[1], node_qubits[0])
    coh_lo = _real("coherence[0]", coherence[0], open_lo=True)
    coh_hi = _real("coherence[1]", coherence[1], coh_lo)
    s_lo = _real("speeds[0]", speeds[0], open_lo=True)
    s_hi = _real("speeds[1]", speeds[1], s_lo)
    rng = np.random.default_rng(seed)
    pos = rng.random((w, 2))
    dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    fidelity = np.exp(-dist / _real("link_length", link_length, open_lo=True))
    cl = _cluster(w, "quantum_network", speed=rng.uniform(s_lo, s_hi, w), qubits=rng.integers(c_lo, c_hi + 1, w),
                  coherence=rng.uniform(coh_lo, coh_hi, w), fidelity=fidelity,
                  min_fidelity=_real("min_fidelity", min_fidelity, 0.0, 1.0))
    q = np.minimum(rng.integers(q_lo, q_hi + 1, size=n), cl.qubits.max())
    longest = np.where(q[:, None] <= cl.qubits, cl.coherence * cl.speed, 0.0).max(axis=1)  # (n,) s of work
    work = np.minimum(_lognormal(rng, LogNormal(math.log(_real("median_work", median_work, open_lo=True)),
                                                _real("work_sigma", work_sigma)), n), longest)
    estimate = _noisy(rng, work, _real("estimate_sigma", estimate_sigma))
    arrival = _arrivals(rng, n, _rate(load, cl, work.sum(), n))
    wl = Workload.from_arrays(arrival=arrival, work=work, estimate=estimate, qubits=q, name="quantum_nodes")
    child = np.flatnonzero(rng.random(n) < _real("dep_fraction", dep_fraction, 0.0, 1.0))
    child = child[child > 0]
    parent = child - rng.integers(1, np.minimum(child, 5) + 1)
    ok = cl.eligible(wl)  # (n, W)
    linked = cl.fidelity >= cl.min_fidelity  # (W, W), diagonal True
    # reach[c, a]: some node linked to node a can run task c
    reach = (ok[child].astype(np.int64) @ linked.T.astype(np.int64)) > 0
    feasible = np.all(~ok[parent] | reach, axis=1)
    return wl.replace(edges=np.stack([parent[feasible], child[feasible]], 1)), cl


SCENARIOS: dict[str, Callable[..., tuple[Workload, Cluster]]] = {
    "llm_inference": llm_inference, "batch": batch, "interactive": interactive, "dag": dag,
    "quantum_nodes": quantum_nodes,
}


# --- CSV reading ---------------------------------------------------------------------------------------
class _Col(NamedTuple):
    integer: bool
    default: float | None  # value of an empty cell; None = the cell is required
    minimum: float | None  # None = any sign
    nan_ok: bool = False  # "nan" means missing (estimate)
    inf_ok: bool = False


# The columns of load_csv / to_csv: our name -> parsing rule (deps is parsed separately).
CSV_COLUMNS: dict[str, _Col] = {
    "arrival": _Col(False, None, 0.0),
    "work": _Col(False, None, 0.0),
    "prompt_tokens": _Col(True, None, 0.0),
    "output_tokens": _Col(True, None, 0.0),
    "estimate": _Col(False, np.nan, 0.0, nan_ok=True),
    "priority": _Col(True, 0.0, None),
    "memory": _Col(False, 0.0, 0.0),
    "qubits": _Col(True, 0.0, 0.0),
    "deadline": _Col(False, np.inf, None, inf_ok=True),
    "task_type": _Col(True, 0.0, 0.0),
    "deps": _Col(True, None, 0.0),
}

# Column names of the public traces read without a mapping: the Azure LLM inference trace 2023 and
# vidur's re-timed copy of it (docs/scheduler.md, Workloads and traces). An explicit ``columns`` entry wins.
TRACE_COLUMNS: dict[str, str] = {
    "TIMESTAMP": "arrival", "ContextTokens": "prompt_tokens", "GeneratedTokens": "output_tokens",
    "arrived_at": "arrival", "num_prefill_tokens": "prompt_tokens", "num_decode_tokens": "output_tokens",
}


def _read_table(path) -> tuple[list[str], list[list[str]], np.ndarray]:
    """Header (stripped), data rows (blank lines skipped) and each row's 1-based line in the file.

    Read as UTF-8; a leading byte-order mark (Excel's "CSV UTF-8") is dropped, not read into the first name.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"Argument `path` must be an existing file, but {str(path)!r} is not")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not header or not any(header):
            raise InvalidInputError(f"{path}: the file is empty; expected a header row")
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise InvalidInputError(f"{path}: duplicate column(s) {dup} in the header")
        rows, lines = [], []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):  # blank line
                continue
            if len(row) != len(header):
                raise InvalidInputError(f"{path}, line {reader.line_num}: {len(row)} fields, but the header has {len(header)}")
            rows.append(row)
            lines.append(reader.line_num)
    if not rows:
        raise InvalidInputError(f"{path}: no data rows after the header")
    return header, rows, np.asarray(lines)


def _bad(path, lines, i: int, column: str, expected: str, raw: str) -> InvalidInputError:
    return InvalidInputError(f"{path}, line {lines[i]}, column `{column}` must be {expected}, but is {raw!r}")


def _numbers(path, lines, column: str, values, rule: _Col) -> np.ndarray:
    """Parse one column of strings by ``rule``; errors name the file line and column."""
    s = np.char.strip(np.asarray(values, dtype=str))
    kind = "an integer" if rule.integer else "a number"
    expected = kind + ("" if rule.minimum is None else f" >= {rule.minimum:g}")
    empty = s == ""
    if rule.default is None and empty.any():
        raise _bad(path, lines, int(np.flatnonzero(empty)[0]), column, expected, "")
    out = np.full(s.shape, np.nan if rule.default is None else rule.default, np.float64)
    try:
        out[~empty] = s[~empty].astype(np.float64)
    except ValueError:
        for i in np.flatnonzero(~empty):
            try:
                float(s[i])
            except ValueError:
                raise _bad(path, lines, int(i), column, expected, str(s[i])) from None
    filled = ~empty
    bad = filled & np.isnan(out) if not rule.nan_ok else np.zeros(s.shape, bool)
    bad |= filled & np.isinf(out) & (not rule.inf_ok)
    if rule.minimum is not None:
        bad |= filled & (out < rule.minimum)
    if rule.integer:
        bad |= filled & np.isfinite(out) & (out != np.round(out))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _bad(path, lines, i, column, expected, str(s[i]))
    return out.astype(np.int64) if rule.integer else out


_TIMESTAMP = "a number (s) or a time like 2023-11-16 18:15:46.6805900"


def _timestamps(path, lines, column: str, values) -> np.ndarray:
    """Times like ``2023-11-16 18:15:46.6805900`` (ISO 8601, no time zone, to 1 ns) as seconds since the earliest."""
    s = np.char.strip(np.asarray(values, dtype=str))
    try:
        t = s.astype("datetime64[ns]")
    except ValueError:
        for i, cell in enumerate(s):
            try:
                np.datetime64(cell, "ns")
            except ValueError:
                raise _bad(path, lines, i, column, _TIMESTAMP, str(cell)) from None
        raise
    if np.isnat(t).any():
        i = int(np.flatnonzero(np.isnat(t))[0])
        raise _bad(path, lines, i, column, _TIMESTAMP, str(s[i]))
    return (t - t.min()) / np.timedelta64(1, "s")


def _arrival(path, lines, column: str, values) -> np.ndarray:
    """The arrival column: numbers (s), or timestamps when its first cell is not a number (then seconds since
    the earliest); a column mixing both is refused at the first cell of the other kind."""
    first = str(values[0]).strip()
    try:
        float(first)
    except ValueError:
        return _timestamps(path, lines, column, values)
    return _numbers(path, lines, column, values, CSV_COLUMNS["arrival"])


def _deps(path, lines, column: str, values) -> np.ndarray:
    """Edges (E, 2) from semicolon-separated 0-based row indices."""
    n = len(values)
    edges = []
    for j, cell in enumerate(values):
        cell = cell.strip()
        if not cell:
            continue
        for item in cell.split(";"):
            try:
                d = int(item)
            except ValueError:
                raise _bad(path, lines, j, column, "semicolon-separated row indices", cell) from None
            if not 0 <= d < n or d == j:
                raise _bad(path, lines, j, column, f"row indices in [0, {n}) other than its own ({j})", cell)
            edges.append((d, j))
    return np.asarray(edges, np.int64).reshape(-1, 2)


def load_csv(path, *, columns: Mapping[str, str] | None = None, ignore_unknown: bool = False,
             llm: bool | None = None) -> Workload:
    """Read tasks from a CSV file with a header row (one task per row).

    Columns (our names; ``columns`` maps the file's names to them, e.g. ``{"arrived_at": "arrival"}``):

    ==================  ===========  =================================================================
    ``arrival``         required     s, finite, >= 0; or timestamps (``2023-11-16 18:15:46.68``, ISO
                                     8601, no zone), read as seconds since the earliest
    ``work``            required*    s on a speed-1 worker, >= 0 (*or both token columns)
    ``prompt_tokens``   with output  integer >= 0; with ``output_tokens`` and no ``work``, ``work`` =
    ``output_tokens``                :func:`~qsn.scheduler.service.llm_work` (a ``work`` column wins)
    ``estimate``        optional     >= 0; empty or ``nan`` = missing
    ``priority``        optional     integer, any sign, larger = more important; empty = 0
    ``memory``          optional     GiB >= 0; empty = 0
    ``qubits``          optional     integer >= 0; empty = 0
    ``deadline``        optional     absolute s; empty or ``inf`` = none
    ``task_type``       optional     integer >= 0; empty = 0
    ``deps``            optional     semicolon-separated 0-based indices of the data rows this task
                                     waits for, e.g. ``0;3`` (row 0 is the first row after the header)
    ==================  ===========  =================================================================

    The public traces' own names (:data:`TRACE_COLUMNS`: the Azure trace's ``TIMESTAMP``, ``ContextTokens``,
    ``GeneratedTokens``; vidur's ``arrived_at``, ``num_prefill_tokens``, ``num_decode_tokens``) are read as
    ours without a mapping. Rows may come in any order (they are sorted by arrival, and ``deps`` remapped). ``llm`` (default: both
    token columns present) marks the workload as LLM requests.

    Raises:
        ConfigurationError: a column outside this table (unless mapped or ``ignore_unknown``), a
            required column missing, or ``columns`` naming a column the file lacks.
        InvalidInputError: a bad cell (not a number, negative, NaN arrival, fractional integer, a dep
            out of range), naming the file line (1-based, the header is line 1) and the column.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
        >>> _ = open(p, "w").write("t,work,deps\\n0.5,2,\\n0.0,1,0\\n")
        >>> wl = load_csv(p, columns={"t": "arrival"})
        >>> wl.arrival.tolist(), wl.edges.tolist()
        ([0.0, 0.5], [[1, 0]])
    """
    header, rows, lines = _read_table(path)
    mapping = dict(columns or {})
    missing_src = sorted(set(mapping) - set(header))
    if missing_src:
        raise ConfigurationError(f"Argument `columns` maps {missing_src}, which {path} lacks; its columns are {header}")
    bad_dst = sorted(set(mapping.values()) - set(CSV_COLUMNS))
    if bad_dst:
        raise ConfigurationError(f"Argument `columns` maps to unknown name(s) {bad_dst}; known: {list(CSV_COLUMNS)}")
    ours = [mapping.get(h, h if h in CSV_COLUMNS else TRACE_COLUMNS.get(h, h)) for h in header]
    unknown = [h for h, o in zip(header, ours) if o not in CSV_COLUMNS]
    if unknown and not ignore_unknown:
        raise ConfigurationError(f"{path} has unknown column(s) {unknown}; known: {list(CSV_COLUMNS)} "
                                 "(rename with `columns=`, or pass `ignore_unknown=True`)")
    dup = sorted({o for o in ours if o in CSV_COLUMNS and ours.count(o) > 1})
    if dup:
        raise ConfigurationError(f"{path}: more than one column maps to {dup}")
    where = {o: i for i, o in enumerate(ours) if o in CSV_COLUMNS}
    tokens = "prompt_tokens" in where and "output_tokens" in where
    need = ["arrival"] + ([] if tokens else ["work"])
    lacking = [c for c in need if c not in where]
    if lacking:
        raise ConfigurationError(f"{path} lacks required column(s) {lacking} (or both prompt_tokens and "
                                 f"output_tokens instead of work); its columns are {header}")
    cells = list(zip(*rows))
    out = {o: _numbers(path, lines, header[i], cells[i], CSV_COLUMNS[o]) for o, i in where.items()
           if o not in ("deps", "arrival")}
    out["arrival"] = _arrival(path, lines, header[where["arrival"]], cells[where["arrival"]])
    if "work" not in out:
        out["work"] = llm_work(out["prompt_tokens"], out["output_tokens"])
    edges = _deps(path, lines, header[where["deps"]], cells[where["deps"]]) if "deps" in where else None
    return Workload.from_arrays(edges=edges, name=Path(path).stem, llm=tokens if llm is None else bool(llm), **out)


def to_csv(workload: Workload, path) -> Path:
    """Write ``workload`` in :func:`load_csv`'s format (floats exact, NaN estimate and inf deadline empty).

    Token columns are written for LLM workloads or when any count is non-zero; :func:`load_csv` infers
    ``llm`` from them, so read a non-LLM workload with token counts back with ``llm=False``. The name is
    not stored (the loader names the workload after the file). Returns the path.

    Example:
        >>> import tempfile, os
        >>> wl, _ = batch(50, 2, seed=0)
        >>> back = load_csv(to_csv(wl, os.path.join(tempfile.mkdtemp(), "b.csv")))
        >>> bool(np.array_equal(back.work, wl.work))
        True
    """
    names = ["arrival", "work", "estimate", "priority", "memory", "qubits", "deadline", "task_type"]
    if workload.llm or workload.prompt_tokens.any() or workload.output_tokens.any():
        names += ["prompt_tokens", "output_tokens"]

    def text(a: np.ndarray) -> list[str]:
        s = a.astype(str)  # NumPy prints the shortest string that reads back to the same float
        if a.dtype.kind == "f":
            s[np.isnan(a) | (a == np.inf)] = ""
        return s.tolist()

    cols = [text(getattr(workload, k)) for k in names]
    deps: list[list[str]] = [[] for _ in range(workload.n)]
    for a, b in workload.edges.tolist():
        deps[b].append(str(a))
    cols.append([";".join(d) for d in deps])
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(names + ["deps"])
        writer.writerows(zip(*cols))
    return path


def _require(path, header: list[str], needed: tuple[str, ...]) -> dict[str, int]:
    lacking = [c for c in needed if c not in header]
    if lacking:
        raise ConfigurationError(f"{path} lacks column(s) {lacking}; its columns are {header}")
    return {c: header.index(c) for c in needed}


def _limit(name: str, limit) -> int | None:
    return None if limit is None else _positive_int(name, limit)


# --- real traces ---------------------------------------------------------------------------------------
def azure_llm(path, *, limit: int | None = None) -> Workload:
    """The Azure LLM inference trace 2023 (``TIMESTAMP, ContextTokens, GeneratedTokens``) as LLM requests.

    ``arrival`` = seconds since the first request (timestamps at 100 ns resolution, no time zone; parsed as
    ``datetime64[ns]``), ``prompt_tokens`` = ContextTokens, ``output_tokens`` = GeneratedTokens, ``work`` =
    :func:`~qsn.scheduler.service.llm_work`, ``estimate`` NaN, ``llm=True``. ``limit`` keeps the first
    ``limit`` requests in time. Other columns are ignored.

    Example:
        >>> p = shared_trace("azure_llm_conv_2023.csv")
        >>> azure_llm(p, limit=100).n if p else 100
        100
    """
    header, rows, lines = _read_table(path)
    at = _require(path, header, ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))
    cells = list(zip(*rows))
    t = _timestamps(path, lines, "TIMESTAMP", cells[at["TIMESTAMP"]])
    rule = CSV_COLUMNS["prompt_tokens"]
    p = _numbers(path, lines, "ContextTokens", cells[at["ContextTokens"]], rule)
    o = _numbers(path, lines, "GeneratedTokens", cells[at["GeneratedTokens"]], rule)
    order = np.argsort(t, kind="stable")[:_limit("limit", limit)]
    arrival = t[order] - t[order[0]]
    return Workload.from_arrays(arrival=arrival, work=llm_work(p[order], o[order]), prompt_tokens=p[order],
                                output_tokens=o[order], name=Path(path).stem, llm=True)


def alibaba_pods(path, *, last_days: float | None = None, limit: int | None = None,
                 censored: str = "drop") -> Workload:
    """Pods of the Alibaba cluster-trace-gpu-v2023 (``openb_pod_list_*.csv``) as batch tasks.

    * ``arrival`` = ``creation_time`` − the earliest kept creation time (s);
    * ``work`` = ``deletion_time − scheduled_time`` (s), the observed runtime, taken as work on a speed-1
      worker (the GPU the pod ran on is not recorded);
    * ``memory`` = ``memory_mib`` / 1024 GiB; ``task_type`` = index of ``qos`` in :data:`ALIBABA_QOS`
      (LS 0, BE 1, Burstable 2, Guaranteed 3); ``estimate`` NaN; ``priority`` 0;
    * ``gpu`` = ``gpu_milli`` / 1000 when ``num_gpu`` is 1 (a share of one GPU, GPU sharing; 1 for a whole
      GPU), else ``num_gpu`` whole GPUs (0 for CPU-only pods); ``cpu`` = ``cpu_milli`` / 1000 cores. The
      simulator packs them on the nodes' GPUs and CPUs (:mod:`qsn.scheduler.gpus`).

    Which pods are kept: ``last_days`` keeps those created within ``last_days`` days of the last creation
    (the trace's pods cluster at its end: 2,209 of 8,152 in the final 7 days). Pods never scheduled
    (``Pending``, empty ``scheduled_time``) are always dropped: no runtime was observed. Pods still
    ``Running`` at trace end have a censored runtime (deletion = trace end): ``censored="drop"`` (default)
    keeps only finished pods (``Succeeded``/``Failed``; 2,062 in the default list) — note that this
    favours short pods — and ``censored="lower_bound"`` keeps running pods with their runtime so far.
    ``limit`` then keeps the first ``limit`` pods in time.
    """
    if censored not in ("drop", "lower_bound"):
        raise ConfigurationError(f"Argument `censored` must be 'drop' or 'lower_bound', but is {censored!r}")
    header, rows, lines = _read_table(path)
    at = _require(path, header, ("memory_mib", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time",
                                 "num_gpu", "gpu_milli", "cpu_milli"))
    cells = list(zip(*rows))
    num = _Col(False, np.nan, 0.0)  # empty = NaN, checked by phase below
    created = _numbers(path, lines, "creation_time", cells[at["creation_time"]], CSV_COLUMNS["arrival"])
    scheduled = _numbers(path, lines, "scheduled_time", cells[at["scheduled_time"]], num)
    deleted = _numbers(path, lines, "deletion_time", cells[at["deletion_time"]], num)
    memory = _numbers(path, lines, "memory_mib", cells[at["memory_mib"]], CSV_COLUMNS["memory"]) / 1024.0
    count = _Col(True, None, 0.0)
    num_gpu = _numbers(path, lines, "num_gpu", cells[at["num_gpu"]], count)
    milli = _numbers(path, lines, "gpu_milli", cells[at["gpu_milli"]], count)
    cpu = _numbers(path, lines, "cpu_milli", cells[at["cpu_milli"]], count) / 1000.0
    over = np.flatnonzero(milli > 1000)
    if over.size:
        raise _bad(path, lines, int(over[0]), "gpu_milli", "at most 1000 (a share of one GPU)", cells[at["gpu_milli"]][over[0]])
    gpu = np.where(num_gpu == 1, milli / 1000.0, num_gpu)
    qos = np.char.strip(np.asarray(cells[at["qos"]], dtype=str))
    phase = np.char.strip(np.asarray(cells[at["pod_phase"]], dtype=str))
    unknown = ~np.isin(qos, ALIBABA_QOS)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise _bad(path, lines, i, "qos", f"one of {ALIBABA_QOS}", str(qos[i]))
    keep = ~np.isnan(scheduled) & np.isin(phase, ("Succeeded", "Failed", "Running"))
    if censored == "drop":
        keep &= phase != "Running"
    if last_days is not None:
        keep &= created >= created.max() - _real("last_days", last_days, open_lo=True) * 86400.0
    work = deleted - scheduled
    broken = keep & ~(work >= 0)
    if broken.any():
        i = int(np.flatnonzero(broken)[0])
        raise _bad(path, lines, i, "deletion_time", f"a time >= scheduled_time {scheduled[i]:g}", cells[at["deletion_time"]][i])
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise InvalidInputError(f"{path}: no pods left after the filters (last_days={last_days}, censored={censored!r})")
    idx = idx[np.argsort(created[idx], kind="stable")][:_limit("limit", limit)]
    return Workload.from_arrays(arrival=created[idx] - created[idx].min(), work=work[idx], memory=memory[idx],
                                task_type=_codes(qos[idx], ALIBABA_QOS), gpu=gpu[idx], cpu=cpu[idx],
                                name=Path(path).stem)


def _codes(values: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Index of each value in ``names``, (N,) int64 (values already checked to be in ``names``)."""
    lookup = {k: i for i, k in enumerate(names)}
    return np.fromiter((lookup[v] for v in values.tolist()), np.int64, count=values.size)


def alibaba_nodes(path, *, speeds: Mapping[str, float] | None = None) -> Cluster:
    """GPU nodes of the Alibaba cluster-trace-gpu-v2023 (``openb_node_list_gpu_node.csv``) as a cluster.

    One worker per node: ``gpus`` = ``gpu`` (GPU count, >= 1), ``cpu`` = ``cpu_milli`` / 1000 cores,
    ``memory`` = ``memory_mib`` / 1024 GiB, ``slots`` = the node's whole cores (at least 1): the node runs as
    many pods at once as its GPUs, cores and memory hold (every pod of the trace asks for >= 3.15 cores, so
    the slots never bind first; planners that reason in slots see that many). ``speed`` from ``speeds`` by
    ``model`` (default :data:`ALIBABA_GPU_SPEEDS`: ASSUMED relative speeds, FP32 peak relative to a V100,
    undisclosed G2/G3 = 1.0), ``kind`` = the model's position in ``speeds``.

    Example:
        >>> p = shared_trace("alibaba_gpu2023_nodes_gpu.csv")
        >>> int(alibaba_nodes(p).gpus.sum()) if p else 6212
        6212
    """
    table = dict(ALIBABA_GPU_SPEEDS if speeds is None else speeds)
    for k, v in table.items():
        _real(f"speeds[{k!r}]", v, open_lo=True)
    header, rows, lines = _read_table(path)
    at = _require(path, header, ("memory_mib", "gpu", "model", "cpu_milli"))
    cells = list(zip(*rows))
    model = np.char.strip(np.asarray(cells[at["model"]], dtype=str))
    unknown = sorted(set(model.tolist()) - set(table))
    if unknown:
        raise ConfigurationError(f"GPU model(s) {unknown} in {path} have no speed; pass `speeds=` with them "
                                 f"(known: {list(table)})")
    gpus = _numbers(path, lines, "gpu", cells[at["gpu"]], _Col(True, None, 1.0))
    memory = _numbers(path, lines, "memory_mib", cells[at["memory_mib"]], _Col(False, None, 0.0)) / 1024.0
    cpu = _numbers(path, lines, "cpu_milli", cells[at["cpu_milli"]], _Col(False, None, 0.0)) / 1000.0
    kind = _codes(model, tuple(table))
    return _cluster(len(rows), Path(path).stem, speed=np.asarray(list(table.values()), np.float64)[kind],
                    slots=np.maximum(np.floor(cpu), 1).astype(np.int64), memory=memory, kind=kind,
                    gpus=gpus.astype(np.int64), cpu=cpu)


# The named traces of ``qsn schedule --trace``: name -> the shared files it reads (docs/scheduler.md, Workloads and traces).
TRACES: dict[str, tuple[str, ...]] = {
    "azure-conv": ("azure_llm_conv_2023.csv",),
    "azure-code": ("azure_llm_code_2023.csv",),
    "alibaba": ("alibaba_gpu2023_pods_default.csv", "alibaba_gpu2023_nodes_gpu.csv"),
}


def _trace_dirs() -> list[Path]:
    """Where the shared traces are looked for, in order: ``$QSN_TRACES`` (if set), ``<repo>/../shared/traces``,
    ``/work/shared/traces``."""
    root = Path(__file__).resolve().parents[1]
    dirs = [Path(os.environ["QSN_TRACES"])] if os.environ.get("QSN_TRACES") else []
    return dirs + [root.parent / "shared" / "traces", Path("/work/shared/traces")]


def shared_trace(name: str) -> Path | None:
    """The path of a shared trace file, or None when it is not on this machine.

    Looks in ``$QSN_TRACES`` (if set), then ``<repo>/../shared/traces`` and ``/work/shared/traces``.

    Example:
        >>> shared_trace("no_such_trace.csv") is None
        True
    """
    for d in _trace_dirs():
        if (d / name).is_file():
            return d / name
    return None


def trace_files(trace: str, directory=None) -> tuple[Path, ...]:
    """The files of the named trace (:data:`TRACES`), from ``directory`` or else the shared folders.

    Args:
        trace: ``"azure-conv"``, ``"azure-code"`` or ``"alibaba"`` (pods, then nodes).
        directory: a folder holding the files; None = the first of :func:`shared_trace`'s folders that has them.

    Raises:
        ConfigurationError: an unknown ``trace``, or a file that is in none of the folders (named with them).

    Example:
        >>> try:
        ...     trace_files("azure-conv", "/no/such/dir")
        ... except ConfigurationError as e:
        ...     print(str(e)[:62])
        Trace 'azure-conv' needs azure_llm_conv_2023.csv, which is not
    """
    if trace not in TRACES:
        raise ConfigurationError(f"Argument `trace` must be one of {sorted(TRACES)}, but is {trace!r}")
    dirs = [Path(directory)] if directory is not None else _trace_dirs()
    out = []
    for name in TRACES[trace]:
        found = next((d / name for d in dirs if (d / name).is_file()), None)
        if found is None:
            where = ", ".join(str(d) for d in dirs)
            raise ConfigurationError(f"Trace {trace!r} needs {name}, which is not in {where} "
                                     "(pass the folder with --trace-dir or set $QSN_TRACES)")
        out.append(found)
    return tuple(out)


# --- noise and faults ----------------------------------------------------------------------------------
def with_noise(workload: Workload, sigma: float, seed: int = 0) -> Workload:
    """Multiply each ``estimate`` by ``exp(sigma Z)`` (log error N(0, σ²)); the true ``work`` is unchanged.

    A missing (NaN) estimate is first set to the true work, so every task ends with a noisy estimate.

    Example:
        >>> wl, _ = llm_inference(100, 2, seed=0)
        >>> bool(np.isfinite(with_noise(wl, 0.2).estimate).all())
        True
    """
    sigma = _real("sigma", sigma)
    base = np.where(np.isnan(workload.estimate), workload.work, workload.estimate)
    return workload.replace(estimate=_noisy(np.random.default_rng(seed), base, sigma))


def with_missing(workload: Workload, fraction: float, seed: int = 0) -> Workload:
    """Blank (NaN) the ``estimate`` of ``round(fraction · n)`` tasks chosen uniformly without replacement.

    Only ``estimate`` can be missing: the other observed columns (tokens, memory, qubits, priority,
    task_type) decide where a task can run or how it is served, so a workload always carries them.

    Example:
        >>> wl, _ = batch(100, 2, seed=0)
        >>> int(np.isnan(with_missing(wl, 0.25).estimate).sum())
        25
    """
    k = round(_real("fraction", fraction, 0.0, 1.0) * workload.n)
    estimate = workload.estimate.copy()
    estimate[np.random.default_rng(seed).choice(workload.n, size=k, replace=False)] = np.nan
    return workload.replace(estimate=estimate)


def with_failures(cluster: Cluster, down: float | None = None, *, rate: float | None = None,
                  repair_time: float | None = None, affected: float = 1.0, seed: int = 0) -> Cluster:
    """Make workers fail: exponential up-times, then ``repair_time`` s down (the simulator's fault model).

    Give either ``down``, the long-run fraction of time a worker is down, or ``rate``, failures per
    second of up-time. For an alternating up (mean ``1/rate``) / down (``repair_time``) process
    ``down = repair_time / (1/rate + repair_time)``, so ``rate = down / (repair_time (1 − down))``.
    ``repair_time`` (s) defaults to the cluster's; ``affected`` is the fraction of workers that fail
    (chosen with ``seed``; the others keep failure rate 0).

    Example:
        >>> cl = with_failures(Cluster.uniform(4), 0.05, repair_time=60.0)
        >>> round(float(cl.failure_rate[0]) * 60.0 * 0.95, 6)
        0.05
    """
    if (down is None) == (rate is None):
        raise ConfigurationError(f"Give exactly one of `down` and `rate`, but got down={down!r}, rate={rate!r}")
    repair = cluster.repair_time if repair_time is None else np.full(cluster.n, _real("repair_time", repair_time, open_lo=True))
    if rate is None:
        down = _real("down", down, 0.0, 1.0, open_hi=True)
        if np.any(repair <= 0) and down > 0:
            raise ConfigurationError(f"Argument `repair_time` must be > 0 to reach down={down}, but is {repair.min()}")
        failure_rate = down / (np.where(repair > 0, repair, 1.0) * (1.0 - down))
    else:
        failure_rate = np.full(cluster.n, _real("rate", rate))
    k = round(_real("affected", affected, 0.0, 1.0) * cluster.n)
    hit = np.zeros(cluster.n, bool)
    hit[np.random.default_rng(seed).choice(cluster.n, size=k, replace=False)] = True
    return cluster.replace(failure_rate=np.where(hit, failure_rate, 0.0), repair_time=repair)
