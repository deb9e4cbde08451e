"""Synaptic events/s of event-driven spike propagation: the CUDA kernel (qsn.kernels.propagation) beside the
JAX event path (EventProjection.deliver of qsn.networks.projection, jitted), on the same random spike masks. Needs a CUDA GPU
with CuPy and JAX's CUDA backend; elsewhere it prints one line and exits 2.

    python bench/bench_propagation.py                              # brunel(n=1e6, indegree=1000), 1% per step
    python bench/bench_propagation.py --n 200000 --fraction 0.005

Workload: the two projections (exc, inh) of ``models.brunel(n, indegree=...)``, built as a Network builds
them (float32, ELL rows, delay 1.5 ms = 15 steps, ring buffer (2, 16, n)). Each step, a random
``--fraction`` of the n neurons spikes; both projections deliver that step's spikes. A synaptic event is
one non-padding synapse of a spiking row. Brunel's default in-degree, 0.1 N_E, is 80 000 at n = 1e6
(1e11 synapses): far beyond one GPU, hence ``--indegree`` (C_E; C_I = C_E / 4).

Timings, median of ``--repeats`` passes over ``--steps`` steps, after a warm-up pass (NVRTC/XLA compile):

* ``kernel``: the propagation kernel alone on the precomputed spiking-row lists, ring buffer updated in
  place (qsn.kernels.propagation.propagate), timed with ``cupy.cuda.Event``: what a Network step on the
  CuPy backend would pay;
* ``kernel_deliver``: the public qsn.kernels.propagation.deliver on JAX arrays (row compaction with its
  host sync, a copy of the ring, DLPack exchange), wall clock;
* ``jax``: EventProjection.deliver jitted with the ring donated (in place, as inside Network.run's
  scan) and the capacity Network.run would choose (next power of two of 1.25x the most spikes in a
  step), wall clock with ``block_until_ready``.

Writes ``bench/results/propagation-gpu.json`` ({metadata, rows}) and prints a summary.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

# Leave room next to XLA's pool for CuPy's allocations and the NVRTC module (XLA takes 75% by default).
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.85")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_population  # noqa: E402  (metadata helpers)

from qsn.kernels import available  # noqa: E402
from qsn.kernels import propagation as kernel  # noqa: E402
from qsn.kernels.runner import Runner  # noqa: E402
from qsn.networks import models  # noqa: E402
from qsn.networks import projection as jax_projection  # noqa: E402

_MIN_ROWS = 64  # Network.run's smallest event-path capacity (qsn.networks.network._MIN_ROWS)


def build(n: int, indegree: int, seed: int) -> tuple[list, jax.Array]:
    """Brunel's projections as ``(spec, arrays, weights, m)`` per projection, and a zero ring buffer
    ``(receptors, D, n)`` float32 with ``D`` = longest delay + 1 (as ``Network.build``)."""
    net = models.brunel(n=n, indegree=indegree, monitor=False)
    key = jax.random.key(seed)
    built, depth = [], 1
    for i, proj in enumerate(net.projections.values()):
        receptor = list(proj.post.receptors).index(proj.receptor)
        spec, arrays, weights, m = jax_projection.build(proj, jax.random.fold_in(key, i), net.dt, jnp.float32, receptor)
        jax.block_until_ready(weights)
        depth = max(depth, int(jnp.max(arrays.delays)) + 1 if m else 1)
        built.append((spec, arrays, weights, m))
    receptors = len(net.groups["neurons"].receptors)
    return built, jnp.zeros((receptors, depth, n), jnp.float32)


def capacity(most: int, n_pre: int) -> int:
    """The event-path capacity ``Network.run`` settles on for a run whose busiest step had ``most`` spikes."""
    return min(n_pre, max(_MIN_ROWS, 2 ** math.ceil(math.log2(max(most, 1) * 1.25))))


def row_counts(arrays: jax_projection.ProjectionArrays, n_post: int) -> np.ndarray:
    """Synapses per ELL row ``(n_pre + 1,)`` int64, on the host."""
    return np.asarray(jnp.sum(arrays.targets < n_post, axis=1, dtype=jnp.int32)).astype(np.int64)


def median_seconds(run_pass: Callable[[], float], repeats: int) -> float:
    run_pass()  # warm-up: compile, first touch
    return statistics.median(run_pass() for _ in range(repeats))


def kernel_pass(runner: Runner, built: list, rows: list, ring: Any) -> Callable[[], float]:
    """One pass of the kernel alone over the steps (CuPy arrays, ring in place), timed by CUDA events."""
    import cupy

    operands = [(spec, runner.from_jax(a.targets), runner.from_jax(w), runner.from_jax(a.delays))
                for spec, a, w, _ in built]

    def run_pass() -> float:
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for t, step_rows in enumerate(rows):
            for spec, targets, weights, delays in operands:
                kernel.propagate(runner, spec, targets, weights, delays, step_rows, ring, t)
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) * 1e-3

    return run_pass


def deliver_pass(runner: Runner, built: list, masks: list, ring: jax.Array) -> Callable[[], float]:
    """One pass of the public kernel ``deliver`` on JAX arrays, wall clock."""
    import cupy

    def run_pass() -> float:
        out = ring
        cupy.cuda.Device().synchronize()
        start = time.perf_counter()
        for t, spikes in enumerate(masks):
            for spec, arrays, weights, _ in built:
                out = kernel.deliver(runner, spec, arrays, weights, spikes, out, t)
        jax.block_until_ready(out)
        cupy.cuda.Device().synchronize()
        return time.perf_counter() - start

    return run_pass


def jax_pass(built: list, masks: list, ring: jax.Array, most: int) -> Callable[[], float]:
    """One pass of the jitted JAX event path (all projections per step, ring donated), wall clock."""
    specs = tuple(spec._replace(block=capacity(most, spec.n_pre)) for spec, _, _, _ in built)
    arrays = [a for _, a, _, _ in built]
    weights = [w for _, _, w, _ in built]

    def step(ring, spikes, t, arrays, weights):
        for spec, a, w in zip(specs, arrays, weights, strict=True):
            ring = spec.deliver(a, w, spikes, ring, t)
        return ring

    step = jax.jit(step, donate_argnums=0)
    steps = [jnp.asarray(t, jnp.int32) for t in range(len(masks))]

    def run_pass() -> float:
        out = jnp.array(ring, copy=True)  # the donated buffer, fresh each pass
        jax.block_until_ready(out)
        start = time.perf_counter()
        for t, spikes in zip(steps, masks, strict=True):
            out = step(out, spikes, t, arrays, weights)
        jax.block_until_ready(out)
        return time.perf_counter() - start

    return run_pass


def check_agreement(runner: Runner, built: list, mask: jax.Array, ring: jax.Array, most: int) -> float:
    """Largest |difference| between the kernel's and the JAX path's ring after one step (float32 sums
    in another order); a sanity check that both measure the same work."""
    ours, ref = ring, ring
    t = jnp.asarray(0, jnp.int32)
    for spec, arrays, weights, _ in built:
        ours = kernel.deliver(runner, spec, arrays, weights, mask, ours, 0)
        ref = spec._replace(block=capacity(most, spec.n_pre)).deliver(arrays, weights, mask, ref, t)
    return float(jnp.max(jnp.abs(ours - ref)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="neurons of the Brunel network (default %(default)s)")
    parser.add_argument("--indegree", type=int, default=1000,
                        help="excitatory in-degree C_E (C_I = C_E/4); default %(default)s: ~1.25 n synapses x 1000")
    parser.add_argument("--fraction", type=float, default=0.01, help="fraction of neurons spiking per step")
    parser.add_argument("--steps", type=int, default=20, help="steps (distinct spike masks) per timed pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes after the warm-up; the median is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/propagation-gpu.json)")
    args = parser.parse_args(argv)

    if not available() or jax.default_backend() != "gpu":
        print("bench_propagation.py needs a CUDA GPU (CuPy and JAX with CUDA); nothing measured", file=sys.stderr)
        return 2
    import cupy

    from qsn.kernels.runner import CupyRunner

    runner = CupyRunner()
    device = jax.devices()[0]
    gpu_name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    gpu_name = gpu_name.decode() if isinstance(gpu_name, bytes) else str(gpu_name)

    t0 = time.perf_counter()
    try:
        built, ring = build(args.n, args.indegree, args.seed)
    except jax.errors.JaxRuntimeError as err:
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        print(f"building brunel(n={args.n}, indegree={args.indegree}) ran out of GPU memory: lower --n or --indegree",
              file=sys.stderr)
        return 1
    build_s = time.perf_counter() - t0
    keys = jax.random.split(jax.random.key(args.seed + 1), args.steps)
    masks = [jax.random.bernoulli(k, args.fraction, (args.n,)) for k in keys]
    host_masks = [np.asarray(m) for m in masks]
    counts = [row_counts(a, spec.n_post) for spec, a, _, _ in built]
    events = [int(sum(c[: len(m)][m].sum() for c in counts)) for m in host_masks]
    most = max(int(m.sum()) for m in host_masks)
    rows = [cupy.asarray(np.flatnonzero(m).astype(np.int32)) for m in host_masks]
    total_events = sum(events)
    widths = [int(a.targets.shape[1]) for _, a, _, _ in built]
    print(f"built n={args.n:,} ({sum(m for *_, m in built):,} synapses, K={widths}) "
          f"in {build_s:.0f} s; {total_events / args.steps:,.0f} synaptic events per step", flush=True)

    max_diff = check_agreement(runner, built, masks[0], ring, most)
    seconds = {
        "kernel": median_seconds(kernel_pass(runner, built, rows, cupy.zeros(ring.shape, cupy.float32)), args.repeats),
        "kernel_deliver": median_seconds(deliver_pass(runner, built, masks, ring), args.repeats),
        "jax": median_seconds(jax_pass(built, masks, ring, most), args.repeats),
    }
    rate = {name: total_events / s for name, s in seconds.items()}
    row = {
        "n": args.n,
        "indegree_exc": args.indegree,
        "synapses": {spec.name: m for spec, _, _, m in built},
        "K": {spec.name: int(a.targets.shape[1]) for spec, a, _, _ in built},
        "ring_shape": list(ring.shape),
        "fraction": args.fraction,
        "steps": args.steps,
        "repeats": args.repeats,
        "spiking_per_step": statistics.mean(int(m.sum()) for m in host_masks),
        "events_per_step": total_events / args.steps,
        "jax_capacity": {spec.name: capacity(most, spec.n_pre) for spec, _, _, _ in built},
        "seconds_per_step": {name: s / args.steps for name, s in seconds.items()},
        "events_per_s": rate,
        "ratio_kernel_vs_jax": rate["kernel"] / rate["jax"],
        "ratio_kernel_deliver_vs_jax": rate["kernel_deliver"] / rate["jax"],
        "max_abs_diff_one_step": max_diff,
        "build_seconds": build_s,
    }
    meta = {
        **bench_population.run_metadata("propagation", __file__, argv, device, cupy=cupy.__version__),
        "machine": gpu_name,
        "workload": f"models.brunel(n, indegree) exc+inh projections, float32, {args.fraction:g} of neurons "
                    f"spiking per step (Bernoulli), median of repeats after a warm-up",
    }
    out = bench_population.write_results(args.out, "propagation", device, meta, [row])
    for name, secs in seconds.items():
        print(f"{name:15s} {rate[name]:10.3g} synaptic events/s  ({secs / args.steps * 1e3:.3f} ms/step)")
    print(f"kernel vs JAX: x{row['ratio_kernel_vs_jax']:.1f} "
          f"(deliver on JAX arrays: x{row['ratio_kernel_deliver_vs_jax']:.1f}); "
          f"max |diff| after one step {max_diff:.2e}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
