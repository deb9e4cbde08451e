"""Network construction: ``Network.build`` wall time and peak memory against the number of synapses.

    python bench/bench_build.py                                  # every model, 3 repeats, cache off and warm
    python bench/bench_build.py --models cuba brunel_1e5 --repeats 5 --states off

Every run is a fresh process (``python bench/bench_build.py --child MODEL``) that imports qsn, makes the
model, then times ``net.build(jax.random.key(0))`` alone and reads its own peak resident memory
(``ru_maxrss``, the whole process: Python, JAX and the build), its resident memory just before the
build and the build's CPU time (user + system, all threads: less sensitive to other processes' load
than the wall time, which on a shared VM also carries the host's page faults for fresh memory). Compile-cache states (see :mod:`qsn.compile_cache`): ``off`` (``QSN_COMPILE_CACHE=0``, every
build kernel compiled in the process: a first build on a new machine) and ``warm`` (a cache directory
filled by one untimed priming run). Runs are interleaved (for each repeat, each model, each state) so
that load from other processes falls on every row alike; the summary gives the best and the median.

Models (``qsn.networks.models``): ``cuba`` (4,000 neurons, p = 0.02, 3.2e5 synapses), ``brunel_1e4`` and
``brunel_1e5`` (``brunel(n, indegree=1000)``: 1.25e7 and 1.25e8 synapses), ``micro_0.1`` and
``micro_1`` (the Potjans-Diesmann microcircuit at scale 0.1 and 1: 3.0e7 and 3.0e8 synapses). A model
whose expected peak (24 B per synapse + 1 GiB) exceeds the available memory is skipped and recorded
as such. Targets (issue 18): the full microcircuit in <= 60 s with <= 16 B per synapse at peak,
``brunel_1e5`` in <= 10 s, on a 2-core CPU.

The bound: each child also times writing 512 MiB of freshly allocated memory (``first_touch_bytes_per_s``:
every page faulted in; on a VM that reports free pages back to its host, each fresh page comes from the
host) and writing it again (resident). ``first_touch_floor_s`` is the build's resident growth (peak less
before) at that rate: what the fresh memory alone costs if none of it is reused within the build.

Writes ``bench/results/build-<platform>.json`` ({metadata, rows, summary}) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_population  # noqa: E402  (metadata helpers)

MODELS = {
    "cuba": ("models.cuba()", 321_023),
    "brunel_1e4": ("models.brunel(10_000, indegree=1000)", 12_500_000),
    "brunel_1e5": ("models.brunel(100_000, indegree=1000)", 125_000_000),
    "micro_0.1": ("models.microcircuit(0.1)", 29_888_098),
    "micro_1": ("models.microcircuit(1.0)", 298_880_970),
}
STATES = ("off", "warm")
TARGETS = {"micro_1": {"build_s": 60.0, "peak_bytes_per_synapse": 16.0}, "brunel_1e5": {"build_s": 10.0}}


def _rss_now() -> int:
    """Resident bytes of this process now (Linux ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child(model: str) -> int:
    """One build in this process; prints its measurements as JSON."""
    from qsn.networks import models

    net = eval(MODELS[model][0], {"models": models})  # a fixed expression of this file
    before = _rss_now()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    net.build(jax.random.key(0))
    build_s = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    synapses = sum(net.synapse_count.values())
    kept = sum(a.nbytes for arr in net._arrays.values() for a in (arr.targets, arr.delays) if a is not None)
    kept += sum(w.nbytes for w in net.state.weights.values())
    fresh_s, resident_s = _first_touch(FIRST_TOUCH_BYTES)
    print(json.dumps({"build_s": build_s, "build_cpu_s": cpu_s, "synapses": synapses, "peak_rss_bytes": peak,
                      "rss_before_build_bytes": before, "rss_after_build_bytes": _rss_now(), "kept_bytes": kept,
                      "first_touch_bytes_per_s": FIRST_TOUCH_BYTES / fresh_s,
                      "resident_write_bytes_per_s": FIRST_TOUCH_BYTES / resident_s}))
    return 0


FIRST_TOUCH_BYTES = 512 * 2**20


def _first_touch(nbytes: int) -> tuple[float, float]:
    """Seconds to write ``nbytes`` of freshly allocated memory (every page faulted in: on a VM that hands
    memory back to its host, each fresh page is the host's to provide) and to write them again (resident).
    Measured after the build, so that the build's memory is not this one's."""
    import numpy as np

    a = np.empty(nbytes // 8, np.int64)
    start = time.perf_counter()
    a.fill(1)
    fresh = time.perf_counter() - start
    start = time.perf_counter()
    a.fill(2)
    return fresh, time.perf_counter() - start


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _run(model: str, state: str, xdg: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "QSN_COMPILE_CACHE")}
    env["XDG_CACHE_HOME"] = str(xdg)
    if state == "off":
        env["QSN_COMPILE_CACHE"] = "0"
    proc = subprocess.run([sys.executable, __file__, "--child", model], env=env, capture_output=True, text=True,
                          timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{model} ({state}) failed:\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row.update(model=model, state=state, load_average=list(os.getloadavg()))
    row["peak_bytes_per_synapse"] = row["peak_rss_bytes"] / row["synapses"]
    row["build_bytes_per_synapse"] = (row["peak_rss_bytes"] - row["rss_before_build_bytes"]) / row["synapses"]
    # what the build's resident growth costs at this machine's first-touch rate: a floor of the wall time
    # if every page the build holds at its peak is fresh (pages freed and reused within the build are not)
    row["first_touch_floor_s"] = (row["peak_rss_bytes"] - row["rss_before_build_bytes"]) / row["first_touch_bytes_per_s"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--states", nargs="+", default=list(STATES), choices=list(STATES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/build-<platform>.json)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)

    device = jax.devices()[0]
    metadata = bench_population.run_metadata("build", __file__, argv, device)
    metadata.update(repeats=args.repeats, states={"off": "QSN_COMPILE_CACHE=0", "warm": "cache filled by a priming run"},
                    models={m: MODELS[m][0] for m in args.models}, targets=TARGETS,
                    memory_available_bytes=_available_bytes(), load_average_start=list(os.getloadavg()))
    skipped = {}
    models = []
    for m in args.models:
        need = 24 * MODELS[m][1] + 2**30
        if need > _available_bytes():
            skipped[m] = f"expected peak ~{need / 2**30:.1f} GiB > {_available_bytes() / 2**30:.1f} GiB available"
        else:
            models.append(m)
    rows = []
    xdg = Path(tempfile.mkdtemp(prefix="qsn-bench-build-"))
    try:
        if "warm" in args.states:
            for m in models:
                _run(m, "warm", xdg)  # priming run, untimed
        for rep in range(args.repeats):
            for m in models:
                for state in args.states:
                    row = _run(m, state, xdg)
                    row["repeat"] = rep
                    rows.append(row)
                    print(f"{m:11s} {state:4s} {row['build_s']:7.2f} s  peak {row['peak_rss_bytes'] / 2**20:7.0f} MiB "
                          f"({row['peak_bytes_per_synapse']:5.1f} B/synapse)", file=sys.stderr)
    finally:
        shutil.rmtree(xdg, ignore_errors=True)
    metadata.update(load_average_end=list(os.getloadavg()), skipped=skipped)
    summary = []
    for m in models:
        for state in args.states:
            sel = [r for r in rows if r["model"] == m and r["state"] == state]
            best = min(sel, key=lambda r: r["build_s"])
            summary.append(dict(model=m, state=state, synapses=best["synapses"],
                                build_s_min=best["build_s"], build_s_median=statistics.median(r["build_s"] for r in sel),
                                build_cpu_s_min=min(r["build_cpu_s"] for r in sel),
                                peak_rss_bytes_min=min(r["peak_rss_bytes"] for r in sel),
                                peak_bytes_per_synapse_min=min(r["peak_bytes_per_synapse"] for r in sel),
                                build_bytes_per_synapse_min=min(r["build_bytes_per_synapse"] for r in sel),
                                kept_bytes_per_synapse=best["kept_bytes"] / best["synapses"],
                                first_touch_mib_per_s_median=statistics.median(r["first_touch_bytes_per_s"] for r in sel) / 2**20,
                                first_touch_floor_s_median=statistics.median(r["first_touch_floor_s"] for r in sel)))
    path = bench_population.write_results(args.out, "build", device, metadata, rows, summary=summary)
    print("| model | cache | synapses | build s (best / median) | CPU s | peak RSS MiB | peak B/synapse | kept B/synapse "
          "| first touch MiB/s | first-touch floor s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['model']} | {s['state']} | {s['synapses']:,} | {s['build_s_min']:.2f} / {s['build_s_median']:.2f} | {s['build_cpu_s_min']:.2f} | "
              f"{s['peak_rss_bytes_min'] / 2**20:.0f} | {s['peak_bytes_per_synapse_min']:.1f} | {s['kept_bytes_per_synapse']:.1f} "
              f"| {s['first_touch_mib_per_s_median']:.0f} | {s['first_touch_floor_s_median']:.1f} |")
    for m, why in skipped.items():
        print(f"skipped {m}: {why}")
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
