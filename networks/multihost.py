"""Multi-host runs: one process per host (or per GPU), the same program on every process.

JAX's multi-controller model: every process runs the same script, calls :func:`initialize` first,
then builds the network with ``shard=True`` — ``jax.devices()`` then lists the devices of *all*
processes, and each process places only the slices of its own devices
(:mod:`qsn.networks.partition`). What each process gets back:

* **monitors** — spike and rate monitors record the exchanged (whole-group) spikes, so every process
  holds the complete records; nothing to merge. Print or write them on process 0 (:func:`is_main`);
* **state, checkpoints** — ``Network.state`` gathers the state from every process (collective: every
  process must call it) and gives it whole, as one device holds it; ``Network.save`` writes it from
  process 0 only, and ``restore``/``load`` take it on any number of processes and devices.

A worked example on one machine, two processes of two CPU devices each (JAX's CPU collectives, gloo)::

    python -m qsn.networks.multihost --processes 2 --devices 2 brunel -n 2000 --ms 100

Each worker builds ``models.brunel(n)`` with ``shard=True`` over the four devices, runs it, and
process 0 prints the rate, the bytes exchanged per step and a digest of the spike trains; with
``--check`` it also runs the network unpartitioned and asserts the trains are equal.
On a cluster, start one process per host with ``QSN_COORDINATOR=host0:port QSN_NUM_PROCESSES=N
QSN_PROCESS_ID=i`` (or pass them to :func:`initialize`); on SLURM or Open MPI, ``initialize()`` with no
arguments lets ``jax.distributed`` detect them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
from typing import Sequence

from qsn.errors import ConfigurationError

__all__ = ["initialize", "is_main", "launch_local", "main"]


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None, *,
               local_devices: int | None = None) -> None:
    """Join a multi-process run: ``jax.distributed.initialize`` before any other JAX call.

    Args:
        coordinator: ``"host:port"`` of process 0 (default: ``$QSN_COORDINATOR``; None with the others
            None: ``jax.distributed`` detects SLURM / Open MPI / cloud TPU settings).
        num_processes: processes in the run (default ``$QSN_NUM_PROCESSES``).
        process_id: this process, ``0 .. num_processes - 1`` (default ``$QSN_PROCESS_ID``).
        local_devices: CPU devices this process exposes (a test or demo on one machine; default: JAX's).

    Raises:
        ConfigurationError: the settings are incomplete or JAX was already started (naming what).

    Example:
        >>> from qsn.networks import models, multihost          # doctest: +SKIP
        >>> multihost.initialize("10.0.0.1:4321", 2, process_id=int(os.environ["RANK"]))
        >>> net = models.brunel(n=100_000).build(jax.random.key(0), shard=True).run(1000.0)
    """
    import jax

    coordinator = coordinator or os.environ.get("QSN_COORDINATOR")
    env_n, env_id = os.environ.get("QSN_NUM_PROCESSES"), os.environ.get("QSN_PROCESS_ID")
    num_processes = num_processes if num_processes is not None else (int(env_n) if env_n else None)
    process_id = process_id if process_id is not None else (int(env_id) if env_id else None)
    given = [x is not None for x in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ConfigurationError("multihost.initialize: give coordinator, num_processes and process_id together "
                                 f"(or $QSN_COORDINATOR, $QSN_NUM_PROCESSES, $QSN_PROCESS_ID); got {coordinator=}, "
                                 f"{num_processes=}, {process_id=}")
    if local_devices is not None:
        jax.config.update("jax_num_cpu_devices", int(local_devices))
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except RuntimeError as err:
        raise ConfigurationError(f"multihost.initialize: jax.distributed could not start: {err}") from None


def is_main() -> bool:
    """True on process 0 (the one that prints and writes)."""
    import jax

    return jax.process_index() == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local(argv: Sequence[str], processes: int, devices: int, *, timeout: float = 600.0) -> list[str]:
    """Run ``python -m qsn.networks.multihost --worker <argv>`` as ``processes`` local processes of
    ``devices`` CPU devices each, joined through a coordinator on 127.0.0.1; returns their stdout.

    Raises:
        ConfigurationError: a worker failed (its exit status and the end of its output).
    """
    port = _free_port()
    procs = []
    for i in range(processes):
        env = dict(os.environ, QSN_COORDINATOR=f"127.0.0.1:{port}", QSN_NUM_PROCESSES=str(processes),
                   QSN_PROCESS_ID=str(i), QSN_LOCAL_DEVICES=str(devices), JAX_PLATFORMS="cpu")
        procs.append(subprocess.Popen([sys.executable, "-m", "qsn.networks.multihost", "--worker", *argv], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for i, p in enumerate(procs):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise ConfigurationError(f"multihost worker {i} did not finish within {timeout:.0f} s") from None
        if p.returncode != 0:
            for q in procs:
                q.kill()
            raise ConfigurationError(f"multihost worker {i} exited with {p.returncode}:\n{(out + err)[-3000:]}")
        outs.append(out)
    return outs


def _digest(monitors: list) -> str:
    h = hashlib.sha256()
    for m in monitors:
        h.update(m.step.tobytes())
        h.update(m.i.tobytes())
    return h.hexdigest()[:16]


def _worker(args: argparse.Namespace) -> dict:
    initialize(local_devices=int(os.environ["QSN_LOCAL_DEVICES"]) if os.environ.get("QSN_LOCAL_DEVICES") else None)
    import jax
    import numpy as np

    if args.float64:
        jax.config.update("jax_enable_x64", True)
    from qsn.networks import SpikeMonitor, models

    def build(shard):
        dtype = np.float64 if args.float64 else np.float32
        model = dict(brunel=lambda: models.brunel(n=args.n, indegree=args.indegree, dtype=dtype, monitor=False),
                     cuba=lambda: models.cuba(dtype=dtype, monitor=False))[args.model]
        net = model()
        mons = [net.add(SpikeMonitor(g)) for g in list(net.groups.values())]
        return net.build(jax.random.key(args.seed), shard=shard), mons

    import time

    import resource

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    net, mons = build(True)
    build_s = time.perf_counter() - start
    build_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # this process's peak after its build
    warm = min(args.ms, 10.0)
    net.run(warm)  # compiles the chunk of a short run; the timed run follows
    start = time.perf_counter()
    net.run(args.ms)
    run_s = time.perf_counter() - start
    spikes = int(sum(m.step.size for m in mons))
    out = dict(process=jax.process_index(), processes=jax.process_count(), devices=net.devices, build_s=build_s,
               run_s=run_s, ms=args.ms + warm,
               local_devices=jax.local_device_count(), spikes=spikes, rate_hz=spikes / sum(m.n for m in mons) / ((args.ms + warm) * 1e-3),
               exchange_bytes_per_step=net.exchange_bytes, digest=_digest(mons), peak_rss_before_build=rss_before,
               peak_rss_after_build=build_peak, synapses=int(sum(net.synapse_count.values())))
    if args.shards:  # a checkpoint per shard: each process writes its devices' parts, a fresh network reads its own
        from jax.experimental import multihost_utils

        net.save(args.shards, shards=True)
        multihost_utils.sync_global_devices("qsn-shards-saved")
        again, _ = build(True)
        again.load(args.shards)
        out["shards_equal"] = bool(all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
                                       zip(jax.tree_util.tree_leaves(again.state), jax.tree_util.tree_leaves(net.state))))
        out["shards_written"] = sorted(f for f in os.listdir(args.shards) if f.startswith("shard-"))
    if args.check:
        state = net.state  # collective: every process gathers
        one, ref = build(False)
        one.run(warm)
        one.run(args.ms)
        out["equal_to_one_device"] = _digest(ref) == out["digest"]
        out["state_equal"] = bool(all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
                                      zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(one.state))))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m qsn.networks.multihost [--processes P --devices D] MODEL [-n N] [--ms T] [--check]``."""
    ap = argparse.ArgumentParser(prog="python -m qsn.networks.multihost", description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--processes", type=int, default=2, help="local processes to launch (default 2)")
    ap.add_argument("--devices", type=int, default=2, help="CPU devices per process (default 2)")
    ap.add_argument("model", choices=("brunel", "cuba"))
    ap.add_argument("-n", type=int, default=2000, help="brunel: neurons (default 2000)")
    ap.add_argument("--indegree", type=int, default=None, help="brunel: excitatory in-degree C_E (default: 10%% of N_E)")
    ap.add_argument("--ms", type=float, default=100.0, help="biological time, ms (default 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--float64", action="store_true")
    ap.add_argument("--check", action="store_true", help="also run on one device and compare the spike trains")
    ap.add_argument("--shards", default=None, help="save a checkpoint per shard to this folder, load it into a fresh "
                                                   "network and compare the states")
    args = ap.parse_args(argv)
    if args.worker:
        print("QSN-WORKER " + json.dumps(_worker(args)), flush=True)
        return 0
    forwarded, drop = [], False  # the worker's arguments: all but --processes/--devices and their values
    for a in (argv if argv is not None else sys.argv[1:]):
        if drop:
            drop = False
            continue
        if a in ("--processes", "--devices"):
            drop = True
            continue
        forwarded.append(a)
    outs = launch_local(forwarded, args.processes, args.devices)
    results = [json.loads(line[len("QSN-WORKER "):]) for out in outs for line in out.splitlines() if line.startswith("QSN-WORKER ")]
    print(json.dumps(results, indent=1))
    return 0 if not args.check or all(r.get("equal_to_one_device") and r.get("state_equal") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
