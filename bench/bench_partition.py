"""Partitioned networks: weak and strong scaling over devices and processes (``Network.build(shard=...)``).

    python bench/bench_partition.py                       # 1, 2, 4, 8 devices + 2 processes x 2 devices
    python bench/bench_partition.py --devices 1 2 --ms 100 --repeats 2

Every point is a fresh process (``--child``): on a CPU machine it exposes ``P`` virtual devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=P``), on a GPU machine it uses the first ``P``
GPUs. It builds ``models.brunel(n, indegree=C_E)`` partitioned over the ``P`` devices, runs a short
warm-up (compiling the chunk), then times ``net.run(ms)`` ``repeats`` times (best and median) and
reports the synapse memory each device holds (its cut of every projection: targets, delays,
weights), the state bytes per device, the spike words each device receives per step, and the spikes.

* **weak scaling**: ``n = n_per_device x P`` neurons, in-degree fixed (the work per device is constant);
* **strong scaling**: ``n`` fixed, ``P`` grows;
* **2 processes x 2 devices**: ``qsn.networks.multihost`` on 127.0.0.1 (jax.distributed, gloo);
* **host memory** (``--memory-n N``): ``brunel(N)`` built once unpartitioned and once on 2 processes of
  one device each, with each process's peak resident memory before and after its build: every process
  draws the synapses onto its own devices only, so its build grows its memory by about half as much.

This machine has 2 CPU cores: 4 or 8 virtual devices share them, so **no speed-up can show here**;
the wall time measures the partitioned program's overhead (the exchange, the padding, the
replicated spike sources), and the memory per device is what the partition promises. The same
script on a machine with several GPUs is the weak-scaling measurement (``--devices`` up to the
GPU count).

Writes ``bench/results/partition-<platform>.json`` ({metadata, rows}) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def child(args: argparse.Namespace) -> int:
    import jax

    from qsn.networks import SpikeMonitor, models

    platform = jax.devices()[0].platform
    p = args.child
    net = models.brunel(n=args.n, indegree=args.indegree, monitor=False)
    mon = net.add(SpikeMonitor(next(iter(net.groups.values()))))
    rss_before = _peak_rss()
    start = time.perf_counter()
    net.build(jax.random.key(0), shard=p if p > 0 else False)  # 0: the unpartitioned network
    build_s = time.perf_counter() - start
    rss_after = _peak_rss()
    net.run(args.warm_ms)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        net.run(args.ms)
        times.append(time.perf_counter() - start)
    arrays = net._dev_consts["projections"] if p else net._arrays
    syn_bytes = sum(x.nbytes for x in jax.tree_util.tree_leaves((arrays, net._state.weights)))
    state_bytes = sum(x.nbytes for x in jax.tree_util.tree_leaves((net._state.neurons, net._state.syn, net._state.ring)))
    p = max(p, 1)
    out = dict(devices=p, processes=1, n=args.n, indegree=args.indegree, synapses=int(sum(net.synapse_count.values())),
               build_s=build_s, run_best_s=min(times), run_median_s=statistics.median(times), ms=args.ms,
               wall_per_bio_s=min(times) / (args.ms * 1e-3),
               synapse_bytes_per_device=syn_bytes // p, state_bytes_per_device=state_bytes // p,
               exchange_bytes_per_step=net.exchange_bytes, spikes=int(mon.step.size), partitioned=net._partition is not None,
               peak_rss_before_build=rss_before, peak_rss_after_build=rss_after,
               platform=platform, device_kind=getattr(jax.devices()[0], "device_kind", platform))
    print("BENCH " + json.dumps(out))
    return 0


def _peak_rss() -> int:
    """This process's peak resident memory so far, bytes (Linux ``ru_maxrss`` is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _point(p: int, n: int, args: argparse.Namespace, gpu: bool) -> dict:
    env = dict(os.environ)
    if not gpu:
        env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={max(p, 1)}", JAX_PLATFORMS="cpu")
    cmd = [sys.executable, __file__, "--child", str(p), "--n", str(n), "--indegree", str(args.indegree), "--ms",
           str(args.ms), "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if out.returncode != 0 or line is None:
        return dict(devices=p, n=n, error=(out.stdout + out.stderr)[-1500:])
    return json.loads(line[len("BENCH "):])


def _multihost(n: int, args: argparse.Namespace, devices: int = 2, ms: float | None = None) -> dict:
    from qsn.networks.multihost import launch_local

    ms = args.ms if ms is None else ms
    outs = launch_local(["brunel", "-n", str(n), "--indegree", str(args.indegree), "--ms", str(ms)], processes=2,
                        devices=devices, timeout=args.timeout)
    rows = [json.loads(x[len("QSN-WORKER "):]) for o in outs for x in o.splitlines() if x.startswith("QSN-WORKER ")]
    r = rows[0]
    return dict(devices=r["devices"], processes=2, n=n, indegree=args.indegree, build_s=max(x["build_s"] for x in rows),
                run_best_s=max(x["run_s"] for x in rows), ms=args.ms,
                wall_per_bio_s=max(x["run_s"] for x in rows) / (args.ms * 1e-3),
                exchange_bytes_per_step=r["exchange_bytes_per_step"], spikes=r["spikes"],
                digests_equal=len({x["digest"] for x in rows}) == 1, synapses=r["synapses"],
                peak_rss_after_build_per_process=[x["peak_rss_after_build"] for x in rows],
                build_rss_growth_per_process=[x["peak_rss_after_build"] - x["peak_rss_before_build"] for x in rows])


def _host_memory(n: int, args: argparse.Namespace) -> list[dict]:
    """Host memory of one build: unpartitioned in one process against 2 processes of one device each
    (every process draws the synapses onto its own devices only: its build memory is about half)."""
    one = _point(0, n, argparse.Namespace(**{**vars(args), "ms": 1.0, "repeats": 1}), False)
    one["build_rss_growth_per_process"] = [one["peak_rss_after_build"] - one["peak_rss_before_build"]] if "error" not in one else None
    two = _multihost(n, args, devices=1, ms=1.0)
    return [dict(scaling="host memory", **one), dict(scaling="host memory", **two)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--devices", nargs="*", type=int, default=[0, 1, 2, 4, 8], help="0: unpartitioned (none: no scaling rows)")
    ap.add_argument("--n-per-device", type=int, default=2500, help="weak scaling: neurons per device (default 2500)")
    ap.add_argument("--strong-n", type=int, default=10_000, help="strong scaling: neurons (default 10,000)")
    ap.add_argument("--indegree", type=int, default=250, help="excitatory in-degree C_E (default 250)")
    ap.add_argument("--ms", type=float, default=100.0, help="timed biological time per repeat, ms")
    ap.add_argument("--warm-ms", type=float, default=10.0, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-multihost", action="store_true")
    ap.add_argument("--memory-n", type=int, default=None,
                    help="also build brunel(N) once unpartitioned and once on 2 processes x 1 device, for host memory")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.child is not None:
        return child(args)

    import jax

    import bench_population

    device = jax.devices()[0]
    gpu = device.platform != "cpu"
    if gpu:
        args.devices = [p for p in args.devices if p <= len(jax.devices())]
    rows = []
    for p in args.devices:
        rows.append(dict(scaling="weak", **_point(p, args.n_per_device * max(p, 1), args, gpu)))
        rows.append(dict(scaling="strong", **_point(p, args.strong_n, args, gpu)))
        print(json.dumps(rows[-2:]), flush=True)
    if not args.no_multihost and not gpu:
        rows.append(dict(scaling="weak", **_multihost(args.n_per_device * 4, args)))
        rows.append(dict(scaling="strong", **_multihost(args.strong_n, args)))
    if args.memory_n and not gpu:
        rows += _host_memory(args.memory_n, args)
    meta = bench_population.run_metadata("partition", __file__, argv, device)
    meta["note"] = ("virtual CPU devices share this machine's cores: wall times show the partitioned program's "
                    "overhead, not a speed-up" if not gpu else "one process, the first P GPUs")
    path = bench_population.write_results(args.out, "partition", device, meta, rows)
    print("| scaling | devices x processes | neurons | synapses | run s per bio s | synapse MiB per device | "
          "exchange B per step |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['scaling']} | {r['devices']} | {r['n']} | error | | | |")
            continue
        mib = r.get("synapse_bytes_per_device")
        where = "1, unpartitioned" if r.get("partitioned") is False else f"{r['devices']} x {r.get('processes', 1)}"
        print(f"| {r['scaling']} | {where} | {r['n']:,} | {r.get('synapses', '')} | "
              f"{r['wall_per_bio_s']:.2f} | {'' if mib is None else f'{mib / 2**20:.1f}'} | {r['exchange_bytes_per_step']} |")
    for r in rows:
        if r["scaling"] == "host memory" and "error" not in r:
            growth = ", ".join(f"{x / 2**20:.0f}" for x in r["build_rss_growth_per_process"])
            print(f"host memory: {r['devices']} device(s) x {r.get('processes', 1)} process(es), {r['synapses']:,} synapses: "
                  f"build grew each process's peak by {growth} MiB")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
