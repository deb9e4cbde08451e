"""Simulated-annealing throughput (spin-flip attempts/s) and quality of qsn.qubo.annealer beside dwave-samplers.

    python bench/bench_anneal.py                          # CPU defaults: n = 1000, 1000 sweeps, ~4-5 minutes
    python bench/bench_anneal.py --backends native --native-threads 1 0
    python bench/bench_anneal.py --backends jax --replicas 1024 8192     # on a GPU
    python bench/bench_anneal.py --xla-threads 0          # let XLA use every core (default: one, like the baseline)

Two 1000-variable QUBO instances: ``sparse``, the +-1 Ising spin glass on a random 3-regular graph
(``E = sum_edges J_ij s_i s_j``, ``J_ij = +-1``, no fields) written as a QUBO, and ``dense``, every ``q_ij``
standard normal (symmetrised). Every sampler runs the same geometric schedule
(``qsn.qubo.annealer.default_beta_range`` of the instance) for the same number of sweeps, single-spin Metropolis
(qsn: a random visiting order per sweep; dwave-samplers: sequential order, its default). Flip attempts =
replicas (reads) x sweeps x n. qsn: ``anneal`` with replicas in --replicas on each backend of --backends
(``jax``: XLA on --xla-threads threads; ``native``: the compiled sweep of qsn.qubo.native on each thread count
of --native-threads, 0 meaning every core), timed as a whole call (host preparation included) after a warm-up
call that compiles, with ``block_until_ready``. Baseline: ``dwave.samplers.SimulatedAnnealingSampler`` (one CPU
thread) with num_reads in --dwave-reads, reported both as wall time of ``sample`` (which includes building its
own problem representation, slow for dense problems) and as its own ``sampling_ns`` timing. Every repeat runs
every configuration once (interleaved, so load changes hit all samplers alike); the best of --repeats is kept.
Energies are evaluated in float64 by dimod (and checked against ``AnnealResult.energies`` and
``qsn.qubo.model.energy``); quality is the best energy seen and the mean (with its standard error) of the final
energies of the replicas. ``ratios`` in the JSON: native over dwave-samplers' wall-time flips/s, at equal
replicas and reads (1 and 32), and at qsn's most replicas over dwave-samplers' best.
Writes ``bench/results/anneal-<platform>.json`` ({metadata, ratios, rows}) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_population  # noqa: E402  (metadata helpers: git commit, CPU model)

SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def regular_graph_edges(n: int, degree: int, rng: np.random.Generator) -> np.ndarray:
    """Edges (m, 2) of a uniformly random simple ``degree``-regular graph (configuration model with rejection)."""
    if n * degree % 2:
        raise ValueError(f"n * degree must be even, but is {n} * {degree}")
    for _ in range(1000):
        stubs = rng.permutation(np.repeat(np.arange(n), degree)).reshape(-1, 2)
        edges = np.sort(stubs, axis=1)
        if np.all(edges[:, 0] != edges[:, 1]) and len(np.unique(edges, axis=0)) == len(edges):
            return edges
    raise RuntimeError("no simple regular graph found in 1000 tries")


def instances(n: int, degree: int, seed: int) -> dict[str, tuple[np.ndarray, float]]:
    """The two benchmark QUBOs as (q (n, n) symmetric, offset)."""
    rng = np.random.default_rng(seed)
    edges = regular_graph_edges(n, degree, rng)
    j = np.zeros((n, n))
    j[edges[:, 0], edges[:, 1]] = rng.choice([-1.0, 1.0], len(edges))
    j = j + j.T
    # sum_{i<j} J_ij s_i s_j with s = 2x - 1 is x^T q x + c, q = 2 J - 2 diag(sum_j J_ij), c = sum_{i<j} J_ij.
    sparse = (2.0 * j - 2.0 * np.diag(j.sum(axis=1)), j.sum() / 2.0)
    dense = rng.normal(size=(n, n))
    return {"sparse": sparse, "dense": ((dense + dense.T) / 2.0, 0.0)}


def to_bqm(qubo):
    """The same problem as a dimod BinaryQuadraticModel (linear a_i x_i, quadratic b_ij x_i x_j over i < j)."""
    import dimod

    q = qubo.q
    bqm = dimod.BinaryQuadraticModel(np.triu(q, 1) * 2.0 + np.diag(np.diag(q)), "BINARY")  # x^T q x: b_ij = 2 q_ij
    bqm.offset = qubo.offset
    return bqm


def _energies(bqm, qubo, x: np.ndarray, reported: np.ndarray) -> np.ndarray:
    """Energies of states x (R, n) in float64 by dimod, checked against qsn's (float32) at 1e-5 relative."""
    from qsn.qubo.model import energy

    exact = np.asarray(bqm.energies((x, np.arange(qubo.n))), np.float64)
    scale = 1e-5 * max(1.0, np.abs(exact).max())
    for other in (reported, np.asarray(energy(qubo, x))):
        if not np.allclose(other, exact, rtol=0, atol=scale):
            raise RuntimeError("dimod's energies differ from qsn's: the problem was not translated faithfully")
    return exact


def run_qsn(qubo, bqm, replicas: int, sweeps: int, beta: tuple[float, float], seed: int, backend: str,
            threads: int | None, warm: bool) -> dict:
    """One timed call of ``anneal`` (after a compiling warm-up call when ``warm`` is False)."""
    import jax

    from qsn.qubo.annealer import _layout, anneal
    from qsn.qubo.model import to_ising
    from qsn.qubo.native import Native

    key = jax.random.key(seed)
    which = Native(threads=threads) if backend == "native" else "jax"

    def call():
        return jax.block_until_ready(anneal(qubo, key, replicas=replicas, sweeps=sweeps, beta=beta, backend=which))

    first = None
    if not warm:
        start = time.perf_counter()
        call()  # warm-up: compiles (XLA, or g++ on a cold kernel cache); same key, so the same result
        first = time.perf_counter() - start
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    final = _energies(bqm, qubo, np.asarray(result.x), np.asarray(result.energies))
    best = _energies(bqm, qubo, np.asarray(result.best_x)[None], np.asarray(result.best_energy)[None])[0]
    return {
        "sampler": "qsn",
        "backend": backend,
        "threads": threads if backend == "native" else None,
        "layout": _layout(to_ising(qubo).j, "auto"),
        "replicas": replicas,
        "sweeps": sweeps,
        "seconds": seconds,
        "first_call_seconds": first,
        "flips_per_s": replicas * sweeps * qubo.n / seconds,
        "best_energy": float(best),
        "best_final_energy": float(final.min()),
        "mean_final_energy": float(final.mean()),
        "sem_final_energy": float(final.std(ddof=1) / np.sqrt(final.size)) if final.size > 1 else None,
    }


def run_dwave(qubo, bqm, reads: int, sweeps: int, beta: tuple[float, float], seed: int) -> dict:
    from dwave.samplers import SimulatedAnnealingSampler

    sampler = SimulatedAnnealingSampler()
    start = time.perf_counter()
    sampleset = sampler.sample(bqm, num_reads=reads, num_sweeps=sweeps, beta_range=list(beta),
                               beta_schedule_type="geometric", seed=seed)
    wall = time.perf_counter() - start
    sampling = sampleset.info["timing"]["sampling_ns"] * 1e-9
    x = np.empty(sampleset.record.sample.shape, np.uint8)
    x[:, np.asarray(list(sampleset.variables))] = sampleset.record.sample  # column k holds variable variables[k]
    ours = _energies(bqm, qubo, x, sampleset.record.energy)
    return {
        "sampler": "dwave-samplers",
        "backend": None,
        "threads": 1,
        "layout": "sequential, one thread",
        "replicas": reads,
        "sweeps": sweeps,
        "seconds": wall,
        "sampling_seconds": sampling,
        "flips_per_s": reads * sweeps * qubo.n / wall,
        "sampling_flips_per_s": reads * sweeps * qubo.n / sampling,
        "best_energy": float(ours.min()),
        "best_final_energy": float(ours.min()),
        "mean_final_energy": float(ours.mean()),
        "sem_final_energy": float(ours.std(ddof=1) / np.sqrt(ours.size)) if ours.size > 1 else None,
    }


def ratios(rows: list[dict]) -> list[dict]:
    """Native flips/s over dwave-samplers' (wall time of ``sample``): at equal replicas and reads, and at the
    native backend's most replicas over dwave-samplers' best, per instance and native thread count."""
    out = []
    for instance in dict.fromkeys(r["instance"] for r in rows):
        here = [r for r in rows if r["instance"] == instance]
        dwave = {r["replicas"]: r for r in here if r["sampler"] == "dwave-samplers"}
        if not dwave:
            continue
        best_dwave = max(dwave.values(), key=lambda r: r["flips_per_s"])
        for threads in dict.fromkeys(r["threads"] for r in here if r["backend"] == "native"):
            native = {r["replicas"]: r for r in here if r["backend"] == "native" and r["threads"] == threads}
            pairs = [(native[k], dwave[k], "equal replicas") for k in sorted(native) if k in dwave]
            most = native[max(native)]
            pairs.append((most, best_dwave, "most replicas vs dwave-samplers' best"))
            for ours, theirs, how in pairs:
                out.append({"instance": instance, "native_threads": threads, "comparison": how,
                            "replicas": ours["replicas"], "dwave_reads": theirs["replicas"],
                            "ratio": ours["flips_per_s"] / theirs["flips_per_s"],
                            "ratio_vs_sampling_only": ours["flips_per_s"] / theirs["sampling_flips_per_s"]})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="variables per instance (default %(default)s)")
    parser.add_argument("--degree", type=int, default=3, help="degree of the sparse instance's regular graph")
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--replicas", nargs="+", type=int, default=[1, 32, 256])
    parser.add_argument("--dwave-reads", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--instances", nargs="+", default=["sparse", "dense"], choices=["sparse", "dense"])
    parser.add_argument("--backends", nargs="+", default=["jax", "native"], choices=["jax", "native"])
    parser.add_argument("--native-threads", nargs="+", type=int, default=[1, 0],
                        help="OpenMP threads of the native backend, 0: every core (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after the warm-up; the best is kept")
    parser.add_argument("--xla-threads", type=int, default=1, choices=[0, 1],
                        help="1: XLA on one CPU thread, like the baseline; 0: XLA's default (all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/anneal-<platform>.json)")
    args = parser.parse_args(argv)

    if args.xla_threads == 1:  # read when JAX starts its CPU backend, so set before the first JAX call
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_XLA_FLAGS).strip()
    import dwave.samplers
    import jax

    from qsn.qubo.annealer import default_beta_range
    from qsn.qubo.model import make_qubo
    from qsn.qubo.native import Native

    device = jax.devices()[0]
    configs = [("jax", None)] if "jax" in args.backends else []
    configs += [("native", t or None) for t in args.native_threads] if "native" in args.backends else []
    native_flags = Native.flags() if "native" in args.backends else None
    rows = []
    load_at_start = list(os.getloadavg())
    for name, (q, offset) in instances(args.n, args.degree, args.seed).items():
        if name not in args.instances:
            continue
        qubo = make_qubo(q, offset)
        bqm = to_bqm(qubo)
        beta = default_beta_range(qubo)
        meta_row = {"instance": name, "n": args.n, "couplings": int((q[np.triu_indices(args.n, 1)] != 0).sum()),
                    "beta_range": list(beta)}
        # Interleaved: each repeat runs every configuration once, so load changes hit all samplers alike.
        best: dict[tuple, dict] = {}
        for repeat in range(args.repeats):
            runs = [((backend, threads, r), lambda b=backend, t=threads, r=r: run_qsn(
                        qubo, bqm, r, args.sweeps, beta, args.seed, b, t, warm=repeat > 0))
                    for backend, threads in configs for r in args.replicas]
            runs += [(("dwave", 1, r), lambda r=r: run_dwave(qubo, bqm, r, args.sweeps, beta, args.seed))
                     for r in args.dwave_reads]
            for label, fn in runs:
                row = meta_row | fn()
                if label in best and "first_call_seconds" in row:
                    row["first_call_seconds"] = best[label]["first_call_seconds"]  # measured in the first repeat
                if label not in best or row["seconds"] < best[label]["seconds"]:
                    best[label] = row
        for (sampler, threads, replicas), row in best.items():
            rows.append(row)
            extra = f" ({row['sampling_flips_per_s']:.3g} sampling only)" if sampler == "dwave" else ""
            print(f"{name:6s} {sampler:6s} threads={threads} R={replicas:5d} {row['flips_per_s']:9.3g} flips/s"
                  f"{extra}  best {row['best_energy']:.2f}", file=sys.stderr, flush=True)

    meta = {
        **bench_population.run_metadata("anneal", __file__, argv, device,
                                        **{"dwave-samplers": dwave.samplers.__version__}),
        "device_kind": getattr(device, "device_kind", device.platform),
        "load_average_1_5_15_min": {"start": load_at_start, "end": list(os.getloadavg())},
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "native_build_flags": native_flags,
        "workload": f"QUBO n={args.n}: sparse = +-1 Ising spin glass on a random {args.degree}-regular graph "
                    "(no fields) written as a QUBO; dense = standard normal q_ij; every sampler: the same geometric "
                    "beta schedule (default_beta_range), "
                    f"{args.sweeps} sweeps, single-spin Metropolis (qsn: random order per sweep, dwave-samplers: "
                    "sequential); flips = replicas x sweeps x n; "
                    "qsn timed per whole call after a compiling warm-up, best of interleaved repeats",
    }
    table = ratios(rows)
    out = bench_population.write_results(args.out, "anneal", device, meta, rows)
    written = json.loads(out.read_text())
    out.write_text(json.dumps({"metadata": written["metadata"], "ratios": table, "rows": rows}, indent=2) + "\n")
    print("| instance | sampler | backend | threads | replicas | layout | flip attempts/s | (sampling only) | "
          "best energy | mean final (± s.e.) |")
    print("|---|---|---|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        sampling = f"{r['sampling_flips_per_s']:.3g}" if "sampling_flips_per_s" in r else ""
        sem = f" ± {r['sem_final_energy']:.2f}" if r["sem_final_energy"] is not None else ""
        threads = "all" if r["backend"] == "native" and r["threads"] is None else (r["threads"] or "")
        print(f"| {r['instance']} | {r['sampler']} | {r['backend'] or ''} | {threads} | {r['replicas']} | "
              f"{r['layout']} | {r['flips_per_s']:.3g} | {sampling} | {r['best_energy']:.2f} | "
              f"{r['mean_final_energy']:.2f}{sem} |")
    print("\n| instance | native threads | comparison | replicas | dwave reads | ratio (wall) | vs sampling only |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in table:
        threads = r["native_threads"] or "all"
        print(f"| {r['instance']} | {threads} | {r['comparison']} | {r['replicas']} | {r['dwave_reads']} | "
              f"{r['ratio']:.1f}x | {r['ratio_vs_sampling_only']:.1f}x |")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
