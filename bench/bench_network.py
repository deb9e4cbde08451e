"""Network wall time: qsn.networks beside Brian2 on the same CUBA network, and qsn's Brunel network.

    python bench/bench_network.py                              # CPU defaults
    python bench/bench_network.py --repeats 5 --brunel-sizes 1e4 5e4

* **CUBA** (``models.cuba()``, Vogels & Abbott 2005, 4000 neurons, 1 s of biological time): qsn in
  float32 (the default) and float64, with its SpikeMonitor and, for float32, without. ``build_s`` is
  the first build in the process (connectivity drawn on the device, including the compilation of its
  kernels), ``build_warm_s`` an identical second build. A warm-up run of one chunk compiles the step;
  every timed run then restarts from the built state, so it excludes compilation and simulates the
  same second as Brian2; ``compile_s`` is the warm-up's time less its share of the best run. Brian2
  (float64) runs ``examples/CUBA.py`` on qsn's float64 connectivity and initial V
  (``tests/networks/brian2_reference.py``) with runtime code generation (numpy, cython; objects
  rebuilt for every run, after one warm-up run) and as a ``cpp_standalone`` C++ project (generated
  and compiled once, binary run ``--repeats`` times; ``run_s`` is the simulation loop as the binary
  reports it, ``binary_s`` the binary's whole wall time, which also loads the synapses and writes
  the spikes). Spike counts are in each row: qsn float64 and Brian2 simulate the same trajectory.
* **CUBA on the native backend** (``Network.run(..., backend="native")``, the whole-network CPU kernel,
  one thread, float32, with the SpikeMonitor): ``run_s`` is ``net.run`` (kernel calls, the state's
  conversion per chunk, the monitor's records), ``loop_s`` the kernel alone for the whole second in
  one call (the counterpart of Brian2 cpp_standalone's simulation loop); ``build_s`` includes the
  kernel's build (from the on-disk cache when warm). The float32 JAX row runs the same trajectory:
  the spike counts agree (``tests/kernels/test_kernel_native_network.py`` checks the trains bit for bit).
* **Head to head** (``--head-to-head ROUNDS``, default 7): the native kernel alone, its ``net.run`` and
  Brian2's cpp_standalone binary on the same CUBA second, interleaved round by round in one process;
  the row gives each side's best and the median of the per-round ratios (what the README quotes).
* **Whole process** (``--process``): ``python -c "import jax; from qsn.networks import models; ..."``
  building CUBA and running 1 s on ``native`` and on ``jax``, wall time of the process including the
  imports, warm (kernel and compilation caches filled by a first, untimed process), the two backends'
  processes alternating.
* **Brunel** (``models.brunel(n)``, AI regime, float32) for each n in ``--brunel-sizes``, and the
  **microcircuit** (``models.microcircuit(scale)``) for each scale in ``--microcircuit-scales``, built once
  and run on each of ``--network-backends`` (``jax``, ``native``, ``cupy``: the Poisson inputs draw the same
  numbers, so the spike counts agree; on ``cupy`` up to the order of atomic adds): wall time per biological second and synaptic events per second, events =
  sum over neurons of spikes x outgoing recurrent synapses (external Poisson input not counted).

Every time is the best of ``--repeats`` runs. Writes ``bench/results/network-<platform>.json``
({metadata, rows}) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "networks"))
import bench_population  # noqa: E402  (metadata helpers)

from qsn.networks import models  # noqa: E402

DT = 0.1  # ms, every model here


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """(best wall time, all times, last result) of ``repeats`` calls."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), times, out


def _x64(on: bool) -> None:
    jax.config.update("jax_enable_x64", on)


def _qsn_build(make: Callable[[], Any]) -> tuple[Any, float, float]:
    """Build the network from ``make()`` twice: (second network, first build s, second build s). The first
    build compiles the connectivity kernels; the second reuses them."""
    times = []
    for _ in range(2):
        net = None  # free the first network before the second is drawn
        start = time.perf_counter()
        net = make().build(jax.random.key(0))
        jax.block_until_ready(net.state)
        times.append(time.perf_counter() - start)
    return net, times[0], times[1]


def _qsn_timed(net: Any, duration: float, chunk_steps: int, repeats: int, backend: str = "jax",
               groups: tuple[str, ...] = ("neurons",)) -> dict:
    """Warm up one chunk (compiles it, or builds the native kernel), then ``repeats`` runs of ``duration`` ms,
    each from the initial state (which is restored after)."""
    s0 = net.state
    start = time.perf_counter()
    net.run(chunk_steps * DT, chunk_steps=chunk_steps, backend=backend)
    jax.block_until_ready(net.state)
    warm = time.perf_counter() - start
    counts = []

    def once() -> None:
        net.restore(s0)
        net.run(duration, chunk_steps=chunk_steps, backend=backend)
        jax.block_until_ready(net.state)
        counts.append({g: net.spike_count(g) for g in groups})

    best, times, _ = _best(once, repeats)
    spikes = counts[int(np.argmin(times))]
    net.restore(s0)
    return dict(run_s=best, run_s_all=times, compile_s=max(warm - best * chunk_steps * DT / duration, 0.0),
                spikes=int(sum(c.sum() for c in spikes.values())),
                per_neuron_spikes=spikes["neurons"] if groups == ("neurons",) else spikes)


def qsn_cuba(dtype: Any, monitor: bool, duration: float, chunk_steps: int, repeats: int) -> tuple[dict, dict | None]:
    """qsn CUBA row; for float64 also the (v0, exc, inh) that Brian2 reruns."""
    _x64(dtype == np.float64)
    try:
        net, build, build_warm = _qsn_build(lambda: models.cuba(dtype=dtype, monitor=monitor))
        export = None
        if dtype == np.float64:
            export = dict(v0=np.asarray(net.state.neurons["neurons"].v), exc=net.synapses("exc"), inh=net.synapses("inh"))
        timed = _qsn_timed(net, duration, chunk_steps, repeats)
    finally:
        _x64(False)
    timed.pop("per_neuron_spikes")
    row = dict(model="cuba", simulator="qsn", variant=f"{np.dtype(dtype).name}{'' if monitor else ', no monitor'}",
               n=4000, synapses=int(sum(net.synapse_count.values())), dtype=np.dtype(dtype).name, build_s=build,
               build_warm_s=build_warm, **timed)
    return row, export


def qsn_cuba_native(duration: float, chunk_steps: int, repeats: int) -> dict:
    """CUBA (float32, SpikeMonitor) on the native whole-network kernel: ``net.run`` and the kernel alone."""
    net, build, build_warm = _qsn_build(models.cuba)
    s0 = net.state
    start = time.perf_counter()
    net.run(chunk_steps * DT, chunk_steps=chunk_steps, backend="native")  # builds the kernel (or loads it)
    warm = time.perf_counter() - start
    counts = []

    def once() -> None:
        net.restore(s0)
        net.run(duration, chunk_steps=chunk_steps, backend="native")
        counts.append(int(net.spike_count("neurons").sum()))

    best, times, _ = _best(once, repeats)
    kernel = net._native_kernel()
    steps = int(round(duration / DT))
    loop, loops, _ = _best(lambda: kernel.chunk(s0, steps), repeats)
    return dict(model="cuba", simulator="qsn", variant="float32, native", n=4000,
                synapses=int(sum(net.synapse_count.values())), dtype="float32", build_s=build, build_warm_s=build_warm,
                run_s=best, run_s_all=times, loop_s=loop, loop_s_all=loops, kernel_build_s=warm,
                spikes=counts[int(np.argmin(times))], kernel_flags=kernel.flags)


_PROCESS = ("import jax; from qsn.networks import models; net = models.cuba().build(jax.random.key(0)); "
            "net.run({duration}, backend={backend!r}); print(int(net.spike_count('neurons').sum()))")


def qsn_process(duration: float, repeats: int) -> list[dict]:
    """Whole-process wall time (imports, build, run) of CUBA on ``native`` and ``jax``, warm, alternating."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times: dict[str, list[float]] = {"native": [], "jax": []}
    spikes = {}
    for i in range(repeats + 1):  # the first round fills the caches and is not timed
        for backend in times:
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _PROCESS.format(duration=duration, backend=backend)],
                                 capture_output=True, text=True, env=env, check=True)
            if i:
                times[backend].append(time.perf_counter() - start)
            spikes[backend] = int(out.stdout.split()[-1])
    return [dict(model="cuba", simulator="qsn", variant=f"float32, {backend}, whole process", n=4000, dtype="float32",
                 build_s=None, run_s=min(t), run_s_all=t, process_s=min(t), spikes=spikes[backend])
            for backend, t in times.items()]


def brian2_runtime(target: str, export: dict, duration: float, repeats: int) -> dict:
    """Brian2 CUBA with runtime code generation ``target``: build and run on fresh objects each repeat,
    after one warm-up (code generation caches, cython compilation)."""
    import brian2 as b2
    import brian2_reference as b2ref

    builds, spikes = [], []

    def once() -> float:
        b2.start_scope()
        start = time.perf_counter()
        net, mon = b2ref.cuba_network(export["v0"], export["exc"], export["inh"], dt=DT)
        builds.append(time.perf_counter() - start)
        start = time.perf_counter()
        b2ref.run(net, duration, target)
        spikes.append(int(mon.num_spikes))
        return time.perf_counter() - start

    start = time.perf_counter()
    once()
    warm = time.perf_counter() - start
    runs = [once() for _ in range(repeats)]
    best = min(runs)
    return dict(model="cuba", simulator="brian2", variant=target, n=4000,
                synapses=int(export["exc"]["pre"].size + export["inh"]["pre"].size), dtype="float64",
                build_s=min(builds[1:]), run_s=best, run_s_all=runs, warmup_s=warm, spikes=spikes[-1])


@contextlib.contextmanager
def _standalone_project(export: dict, duration: float):
    """Brian2 CUBA generated and compiled once as a cpp_standalone project; yields ``(run, info)``: ``run()``
    runs the binary and returns (simulation loop s as the binary reports it, the binary's wall s); ``info``
    has build_s, compile_s, synapses and, after a run, spikes."""
    import brian2 as b2
    import brian2_reference as b2ref

    workdir = tempfile.mkdtemp(prefix="qsn_bench_cuba_")
    try:
        b2.set_device("cpp_standalone", directory=workdir, build_on_run=False)
        b2.start_scope()
        start = time.perf_counter()
        net, mon = b2ref.cuba_network(export["v0"], export["exc"], export["inh"], dt=DT)
        net.run(duration * b2.ms, namespace={})
        info = dict(build_s=time.perf_counter() - start,
                    synapses=int(export["exc"]["pre"].size + export["inh"]["pre"].size))
        start = time.perf_counter()
        b2.device.build(directory=workdir, compile=True, run=False, with_output=False)
        info["compile_s"] = time.perf_counter() - start

        def run() -> tuple[float, float]:
            start = time.perf_counter()
            b2.device.run(workdir, with_output=False)
            wall = time.perf_counter() - start
            info["spikes"] = int(mon.num_spikes)
            return float(b2.device._last_run_time), wall

        yield run, info
    finally:
        b2.device.reinit()
        b2.set_device("runtime")
        shutil.rmtree(workdir, ignore_errors=True)


def brian2_standalone(export: dict, duration: float, repeats: int) -> dict:
    """Brian2 CUBA as a cpp_standalone project: generate and compile once, run the binary ``repeats`` times."""
    with _standalone_project(export, duration) as (run, info):
        loops, walls = zip(*(run() for _ in range(repeats)))
    return dict(model="cuba", simulator="brian2", variant="cpp_standalone", n=4000, synapses=info["synapses"],
                dtype="float64", build_s=info["build_s"], compile_s=info["compile_s"], run_s=min(loops),
                run_s_all=list(loops), binary_s=min(walls), spikes=info["spikes"])


def cuba_head_to_head(export: dict, duration: float, chunk_steps: int, rounds: int) -> dict:
    """The native kernel against Brian2's cpp_standalone binary on CUBA, **interleaved**: each round runs
    the qsn kernel alone for the whole ``duration`` in one call, then ``net.run`` of it, then the
    binary; the ratios are taken round by round (a drifting, shared machine moves both sides of a round
    alike) and their median reported beside each side's best."""
    net = models.cuba().build(jax.random.key(0))
    s0 = net.state
    net.run(chunk_steps * DT, chunk_steps=chunk_steps, backend="native")  # builds (or loads) the kernel
    kernel = net._native_kernel()
    steps = int(round(duration / DT))
    times: dict[str, list[float]] = {"kernel": [], "net_run": [], "standalone_loop": [], "standalone_binary": []}
    with _standalone_project(export, duration) as (run, info):
        run()  # warm: the binary's pages and the synapse files in the page cache
        for _ in range(rounds):
            start = time.perf_counter()
            kernel.chunk(s0, steps)
            times["kernel"].append(time.perf_counter() - start)
            net.restore(s0)
            start = time.perf_counter()
            net.run(duration, chunk_steps=chunk_steps, backend="native")
            times["net_run"].append(time.perf_counter() - start)
            loop, wall = run()
            times["standalone_loop"].append(loop)
            times["standalone_binary"].append(wall)
    ratio = lambda a, b: float(np.median(np.divide(times[a], times[b])))  # noqa: E731
    return dict(model="cuba", simulator="qsn vs brian2", variant="native vs cpp_standalone, interleaved", n=4000,
                synapses=info["synapses"], dtype="float32 vs float64", build_s=None, rounds=rounds,
                run_s=min(times["kernel"]), times_all=times, best={k: min(v) for k, v in times.items()},
                kernel_over_standalone_loop=ratio("kernel", "standalone_loop"),
                net_run_over_standalone_loop=ratio("net_run", "standalone_loop"),
                spikes=int(net.spike_count("neurons").sum()), standalone_spikes=info["spikes"],
                kernel_flags=kernel.flags)


def qsn_brunel(n: int, duration: float, chunk_steps: int, repeats: int, indegree: int | None = None,
               backends: tuple[str, ...] = ("jax",)) -> list[dict]:
    """qsn Brunel AI network of ``n`` neurons, float32, on each backend (one build): wall time and synaptic
    events per second."""
    net, build, build_warm = _qsn_build(lambda: models.brunel(n, indegree=indegree))
    out_degree = np.zeros(n, np.int64)
    for name in ("exc", "inh"):
        out_degree += np.bincount(net.synapses(name)["pre"], minlength=n)
    rows = []
    for backend in backends:
        timed = _qsn_timed(net, duration, chunk_steps, repeats, backend)
        events = int(np.sum(timed.pop("per_neuron_spikes").astype(np.int64) * out_degree))
        rows.append(dict(model="brunel", simulator="qsn",
                         variant=f"float32, C_E={net.synapse_count['exc'] // n}" + ("" if backend == "jax" else f", {backend}"),
                         n=n, synapses=int(out_degree.sum()), dtype="float32", build_s=build, build_warm_s=build_warm,
                         backend=backend, **timed, events=events, events_per_s=events / timed["run_s"]))
    return rows


def qsn_microcircuit(scale: float, duration: float, chunk_steps: int, repeats: int,
                     backends: tuple[str, ...] = ("jax",)) -> list[dict]:
    """qsn Potjans-Diesmann microcircuit at ``scale``, float32, on each backend (one build): real-time
    factor, synaptic events per second and rate per population."""
    net, build, build_warm = _qsn_build(lambda: models.microcircuit(scale))
    pops = tuple(models.PD14_RATES)
    n = sum(net[p].n for p in pops)
    out_degree = {p: np.zeros(net[p].n, np.int64) for p in pops}
    for name in net.projections:  # "pre->post"
        pre = name.split("->")[0]
        out_degree[pre] += np.bincount(net.synapses(name)["pre"], minlength=net[pre].n)
    rows = []
    for backend in backends:
        timed = _qsn_timed(net, duration, chunk_steps, repeats, backend, groups=pops)
        per = timed.pop("per_neuron_spikes")
        events = int(sum(np.sum(per[p].astype(np.int64) * out_degree[p]) for p in pops))
        rates = {p: float(per[p].mean() / (duration * 1e-3)) for p in pops}
        rows.append(dict(model="microcircuit", simulator="qsn",
                         variant=f"float32, scale {scale:g}" + ("" if backend == "jax" else f", {backend}"), n=n,
                         synapses=int(sum(net.synapse_count.values())), dtype="float32", build_s=build,
                         build_warm_s=build_warm, backend=backend, **timed, events=events,
                         events_per_s=events / timed["run_s"], rtf=timed["run_s"] / (duration * 1e-3), rates_hz=rates,
                         published_rates_hz=dict(models.PD14_RATES)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row; the best is reported")
    parser.add_argument("--duration", type=float, default=1000.0, help="biological time per run, ms")
    parser.add_argument("--chunk-ms", type=float, default=100.0, help="qsn steps per compiled chunk, as ms")
    parser.add_argument("--cuba", action=argparse.BooleanOptionalAction, default=True,
                        help="CUBA rows: qsn beside Brian2 (needs brian2; --no-cuba on machines without it)")
    parser.add_argument("--native", action=argparse.BooleanOptionalAction, default=True,
                        help="CUBA on the native whole-network kernel (needs a C++ compiler)")
    parser.add_argument("--head-to-head", type=int, default=7, metavar="ROUNDS",
                        help="interleaved rounds of the native kernel, its net.run and Brian2's cpp_standalone binary "
                             "on CUBA, with per-round ratios (0: skip)")
    parser.add_argument("--process", action=argparse.BooleanOptionalAction, default=True,
                        help="whole-process wall time of CUBA (imports, build, 1 s run) on native and jax")
    parser.add_argument("--brunel-sizes", nargs="*", type=float, default=[1e4])
    parser.add_argument("--brunel-indegree", type=int, default=None,
                        help="C_E of the Brunel networks (default: the model's 0.1 N_E; use 1000 for n >= 1e5)")
    parser.add_argument("--network-backends", nargs="+", default=["jax", "native"], choices=["jax", "native", "cupy"],
                        help="backends of the Brunel and microcircuit rows (one build each, run on every backend; "
                             "cupy: the CUDA network kernel, needs a GPU)")
    parser.add_argument("--microcircuit-scales", nargs="*", type=float, default=[],
                        help="Potjans-Diesmann scales to run (e.g. 0.1 1.0); real-time factor and rates per population")
    parser.add_argument("--brian2", nargs="*", default=["numpy", "cython", "cpp_standalone"],
                        choices=["numpy", "cython", "cpp_standalone"], help="Brian2 variants to run on CUBA")
    parser.add_argument("--shared-cpu", action=argparse.BooleanOptionalAction, default=True,
                        help="record that other jobs shared the CPU during the run (default: yes)")
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/network-<platform>.json)")
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    chunk = max(1, int(round(args.chunk_ms / DT)))
    rows = []

    def report(row: dict) -> None:
        rows.append(row)
        extra = f", {row['events_per_s']:.3g} events/s" if "events_per_s" in row else ""
        print(f"{row['model']:6s} n={row['n']:>7,d} {row['simulator']:6s} {row['variant']:20s} build {row['build_s'] or 0:7.2f} s  "
              f"run {row['run_s']:7.2f} s  spikes {row['spikes']:,}{extra}", flush=True)

    export = None
    for dtype, monitor in ((np.float32, True), (np.float32, False), (np.float64, True)) if args.cuba else ():
        row, exp = qsn_cuba(dtype, monitor, args.duration, chunk, args.repeats)
        export = exp or export
        report(row)
    if args.cuba and args.native:
        report(qsn_cuba_native(args.duration, chunk, args.repeats))
    for variant in args.brian2 if args.cuba else ():
        if variant == "cpp_standalone":
            report(brian2_standalone(export, args.duration, args.repeats))
        else:
            report(brian2_runtime(variant, export, args.duration, args.repeats))
    if args.cuba and args.native and "cpp_standalone" in args.brian2 and args.head_to_head:
        report(cuba_head_to_head(export, args.duration, chunk, args.head_to_head))
    if args.cuba and args.process:
        for row in qsn_process(args.duration, args.repeats):
            report(row)
    backends = tuple(args.network_backends)
    for n in args.brunel_sizes:
        for row in qsn_brunel(int(n), args.duration, chunk, args.repeats, args.brunel_indegree, backends):
            report(row)
    for scale in args.microcircuit_scales:
        for row in qsn_microcircuit(scale, args.duration, chunk, args.repeats, backends):
            report(row)
    for row in rows:  # (a whole process's time is not per biological second: it includes imports and the build)
        row["wall_s_per_bio_s"] = None if "process_s" in row else row["run_s"] / (args.duration * 1e-3)
        if "loop_s" in row:
            row["loop_s_per_bio_s"] = row["loop_s"] / (args.duration * 1e-3)

    try:
        import brian2

        brian2_version = brian2.__version__
    except ImportError:
        brian2_version = None
    meta = {
        **bench_population.run_metadata(
            "network", __file__, argv, device, brian2=brian2_version,
            cxx=shutil.which("g++") and os.popen("g++ -dumpfullversion").read().strip()),
        "cpu_shared": args.shared_cpu,
        "duration_ms": args.duration,
        "dt_ms": DT,
        "repeats": args.repeats,
        "qsn_chunk_steps": chunk,
        "workload": "CUBA: models.cuba() 4000 neurons, build key 0; Brian2 on qsn's float64 connectivity and initial V, "
                    "default single-threaded C++ (no OpenMP). Brunel: models.brunel(n), g=5, eta=2, float32. "
                    "qsn runs with a SpikeMonitor (unless 'no monitor'); after a one-chunk warm-up (compile) each timed "
                    "run restarts from the built state; times are best of repeats",
    }
    out = bench_population.write_results(args.out, "network", device, meta, rows)
    print()
    print("| model | n | simulator | variant | build s (first / warm) | compile s | run s per bio s | spikes | events/s |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        build = f"{r['build_s']:.2f} / {r['build_warm_s']:.2f}" if "build_warm_s" in r else (
            "-" if r["build_s"] is None else f"{r['build_s']:.2f}")
        comp = f"{r['compile_s']:.2f}" if "compile_s" in r else "-"
        ev = f"{r['events_per_s']:.3g}" if "events_per_s" in r else "-"
        per = f"{r['wall_s_per_bio_s']:.3g}" if r["wall_s_per_bio_s"] is not None else f"(process {r['process_s']:.2f} s)"
        print(f"| {r['model']} | {r['n']:,} | {r['simulator']} | {r['variant']} | {build} | {comp} | "
              f"{per} | {r['spikes']:,} | {ev} |")
    for r in rows:
        if "kernel_over_standalone_loop" in r:
            print(f"\nCUBA, interleaved ({r['rounds']} rounds): the native kernel {r['best']['kernel']:.4f} s, net.run "
                  f"{r['best']['net_run']:.4f} s, Brian2 cpp_standalone's loop {r['best']['standalone_loop']:.4f} s; "
                  f"median ratio kernel / loop {r['kernel_over_standalone_loop']:.2f}, "
                  f"net.run / loop {r['net_run_over_standalone_loop']:.2f}")
        if "loop_s" in r:
            print(f"\nqsn native: the kernel alone (one call for the whole run) took {r['loop_s']:.3f} s per biological s; "
                  f"net.run {r['run_s']:.3f} s")
        if "binary_s" in r:
            print(f"\nBrian2 cpp_standalone: the whole binary (loading {r['synapses']:,} synapses, writing spikes) took "
                  f"{r['binary_s']:.2f} s; the table's run time is its simulation loop.")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
