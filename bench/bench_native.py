"""The native CPU backend beside the JAX path and a Numba kernel, measured in one run with interleaved repeats.

    python bench/bench_native.py                                  # n = 1e4, 1e5, 1e6; T = 1000; pure and mixed
    python bench/bench_native.py --sizes 1e5 --repeats 9

For each mode and size n, float32, shared parameters (delta = 0.3; T2 = 50 ms in mixed mode) and a
constant per-neuron current spread over 10..40 mV (so neurons both idle and spike), no recording: each
implementation is warmed up (compile), then timed in rounds, one run of each per round in rotating
order (this machine is shared and noisy: the rounds see the same load). Implementations:
  * ``jax``    ``qsn.simulate(...)`` on XLA (the default backend), ``block_until_ready``;
  * ``native`` ``qsn.simulate(..., backend="native")`` (kernels/cpu/population.cpp);
  * ``numba``  bench/numba_baseline.py, the kernel a Numba user who cares about speed would write.
Each call is what a user times: the native and Numba runs include their copies of the state.

The compute bound. The native build of the bench's configuration is disassembled (objdump) and the
vector instructions of its two innermost loops (the sweep without and with the 4-step norm correction,
weighted 3:1) are classed by the pipes that execute them. With ``--fma-pipes`` multiply/FMA pipes and
``--add-pipes`` add pipes, each ``--pipe-bits`` wide (AMD Zen 4: 2 + 2 pipes of 256 bits; a 512-bit
instruction occupies a pipe for two cycles), a sweep iteration of L lanes needs at least
max(mul-class / fma-pipes, all FP / all pipes) x (vector bits / pipe bits) cycles, so the bound is
cores x clock x L / cycles per iteration. The clock is /proc/cpuinfo's (nominal; boost would raise it).

Writes ``bench/results/native-cpu.json`` ({metadata, rows}) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numba_baseline  # noqa: E402
from bench_population import run_metadata, write_results  # noqa: E402

import qsn  # noqa: E402
from qsn.kernels import population as fused  # noqa: E402
from qsn.kernels.compile import NATIVE, host_library  # noqa: E402
from qsn.stepper import Stepper  # noqa: E402

_MUL_CLASS = re.compile(r"^v(f(n)?m(add|sub)\d*[ps]s|mul[ps]s|div[ps]s|sqrt[ps]s|rcp|rsqrt)")
_ADD_CLASS = re.compile(r"^v(add|sub|min|max|and|or|xor|pand|por|pxor|padd|psub|round|cvt|blendm|pblendm|cmp|pcmp)")


def _params(mode: str):
    return qsn.NeuronParams(delta=0.3, t2=50.0 if mode == "mixed" else float("inf"))


def _inputs(mode: str, n: int):
    params = _params(mode)
    state = qsn.init_state(params, n, mode=mode, dtype=jnp.float32)
    current = jnp.linspace(10.0, 40.0, n, dtype=jnp.float32)
    return params, state, current


def _runners(mode: str, n: int, steps: int):
    params, state, current = _inputs(mode, n)

    def jax_run():
        r = qsn.simulate(params, state, current, steps=steps)
        jax.block_until_ready(r.state)
        return int(np.asarray(r.spike_count).sum())

    def native_run():
        return int(qsn.simulate(params, state, current, steps=steps, backend="native").spike_count.sum())

    stepper = Stepper.build(params, mode, jnp.float32, a_bound=fused.check_input(params, state, current).a_bound)
    consts = numba_baseline.constants(stepper)
    host_current = np.asarray(current, np.float32)
    fields = ("re0", "im0", "re1", "im1") if mode == "pure" else ("x", "y", "z")

    def numba_run():
        v = np.array(state.v, np.float32)
        ref = np.array(state.refractory, np.int32)
        q = [np.array(getattr(state, f), np.float32) for f in fields]
        if mode == "pure":
            count = numba_baseline.pure_kernel()(v, ref, *q, host_current, steps, 0, consts)
        else:
            plan = stepper.config.plan
            count = numba_baseline.mixed_kernel(plan.substeps, plan.terms)(v, ref, *q, host_current, steps, consts)
        return int(count.sum())

    return {"jax": jax_run, "native": native_run, "numba": numba_run}


# Other configurations of the native kernel beside the JAX path (n = --variant-size, pure unless named):
# what each costs relative to the plain constant-input run above.
VARIANTS = ("streamed", "poisson", "per-neuron", "jumps", "t1-t2", "precise")


def _variant(name: str, n: int, steps: int):
    """``(params, state, current, key, options)`` of a variant run."""
    f32 = jnp.float32
    mode = "mixed" if name == "t1-t2-mixed" else "pure"
    kwargs = {"delta": 0.3}
    if name == "per-neuron":
        kwargs.update(delta=jnp.linspace(0.2, 0.4, n, dtype=f32), v_th=jnp.linspace(-52.0, -48.0, n, dtype=f32),
                      tau_m=jnp.linspace(8.0, 12.0, n, dtype=f32))
    if name == "jumps":
        kwargs.update(jump_rate=0.05)
    if name == "t1-t2":
        kwargs.update(t1=100.0, t2=50.0)
    params = qsn.NeuronParams(**kwargs)
    state = qsn.init_state(params, n, mode=mode, dtype=f32)
    key = jax.random.key(0) if name in ("jumps", "t1-t2") else None
    current = jnp.linspace(10.0, 40.0, n, dtype=f32)
    if name == "streamed":
        current = jnp.broadcast_to(current, (steps, n)) + jnp.linspace(0.0, 1.0, steps, dtype=f32)[:, None]
    if name == "poisson":
        current = qsn.PoissonCurrent(n, rate_hz=10.0, weight=20.0, key=jax.random.key(1), sources=1000)
    options = {"precise": True} if name == "precise" else {}
    return params, state, current, key, options


def _variant_runners(name: str, n: int, steps: int):
    params, state, current, key, options = _variant(name, n, steps)

    def jax_run():
        r = qsn.simulate(params, state, current, steps=steps, key=key)
        jax.block_until_ready(r.state)
        return int(np.asarray(r.spike_count).sum())

    def native_run():
        r = qsn.simulate(params, state, current, steps=steps, key=key, backend="native", **options)
        return int(r.spike_count.sum())

    return {"jax": jax_run, "native": native_run}


def _defines(mode: str, n: int):
    """The -D configuration the native backend builds for the bench's runs (no outputs but counts)."""
    params, state, current = _inputs(mode, n)
    inp = fused.check_input(params, state, current)
    plan = Stepper.build(params, mode, jnp.float32, a_bound=inp.a_bound).config.plan
    return fused.kernel_defines(mode, inp.kind, plan, small=fused.small_angle(params, inp.a_bound))


def _inner_loops(library: str) -> list[Counter]:
    """Vector-instruction counts of the innermost loops of the library's OpenMP-outlined population
    function: backward jumps over short bodies with at least 10 multiply-class vector instructions, at
    the widest vector width found (the sweeps; setup and tail loops are narrower), smallest first."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", library], capture_output=True, text=True,
                          check=True).stdout
    body = re.search(r"<qsn_population\._omp_fn\.\d+>:\n(.*?)\n\n", text, re.S)
    rows = []
    for line in (body.group(1) if body else "").splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)", line)
        if m:
            rows.append((int(m.group(1), 16), m.group(2), m.group(3)))
    loops = {}
    for address, op, args in rows:
        target = re.match(r"([0-9a-f]+)", args)
        if op.startswith("j") and target and int(target.group(1), 16) < address:
            inside = [r for r in rows if int(target.group(1), 16) <= r[0] <= address]
            vector = Counter(r[1] for r in inside if re.search(r"%[xyz]mm", r[2]))
            arithmetic = sum(c for op, c in vector.items() if _MUL_CLASS.match(op))
            if len(inside) < 200 and arithmetic >= 10:
                loops[len(inside)] = (vector, _width(inside))
    widest = max((w for _, w in loops.values()), default=0)
    return [loops[k] for k in sorted(loops) if loops[k][1] == widest]


def _width(inside) -> int:
    if any("%zmm" in r[2] for r in inside):
        return 512
    return 256 if any("%ymm" in r[2] for r in inside) else 128


def compute_bound(mode: str, n: int, fma_pipes: int, add_pipes: int, pipe_bits: int) -> dict | None:
    """The model bound of the module docstring for the bench's configuration, or None without objdump."""
    lib, flags = host_library("population.cpp", _defines(mode, n), False, NATIVE)
    try:
        loops = _inner_loops(lib._name)
    except (OSError, subprocess.CalledProcessError):
        return None
    if len(loops) < 2:
        return None
    cycles, detail = [], []
    for counts, width in loops[:2]:  # the uniform sweeps: without, then with, the norm correction
        mul = sum(c for op, c in counts.items() if _MUL_CLASS.match(op))
        add = sum(c for op, c in counts.items() if _ADD_CLASS.match(op))
        pump = width / pipe_bits
        cycles.append(max(mul / fma_pipes, (mul + add) / (fma_pipes + add_pipes)) * pump)
        detail.append({"vector_bits": width, "mul_class": mul, "add_class": add,
                       "moves": sum(counts.values()) - mul - add})
    lanes = loops[0][1] // 32
    per_iteration = 0.75 * cycles[0] + 0.25 * cycles[1]
    clock = _clock_hz()
    cores = os.cpu_count() or 1
    return {
        "flags": flags, "lanes": lanes, "loops": detail, "cycles_per_iteration": per_iteration,
        "cycles_per_neuron_step": per_iteration / lanes, "clock_hz": clock, "cores": cores,
        "bound_neuron_steps_per_s": cores * clock * lanes / per_iteration if clock else None,
        "model": {"fma_pipes": fma_pipes, "add_pipes": add_pipes, "pipe_bits": pipe_bits},
    }


def _clock_hz() -> float | None:
    try:
        mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
    except OSError:
        return None
    return max(mhz) * 1e6 if mhz else None


def _interleaved(runners: dict, repeats: int) -> tuple[dict, dict]:
    """Warm every runner up (compile, first touch), then time ``repeats`` rounds, one call of each per
    round in rotating order; returns (spike totals of the warm-up, {name: [seconds]})."""
    spikes = {name: fn() for name, fn in runners.items()}
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
    return spikes, times


def _rates(times: dict, work: int) -> dict:
    return {name: {"best_s": min(ts), "median_s": statistics.median(ts), "times_s": ts,
                   "rate_best": work / min(ts), "rate_median": work / statistics.median(ts)}
            for name, ts in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--modes", nargs="+", default=["pure", "mixed"], choices=["pure", "mixed"])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default %(default)s)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["jax", "native", "numba"])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--variant-size", type=float, default=1e5)
    parser.add_argument("--fma-pipes", type=int, default=2)
    parser.add_argument("--add-pipes", type=int, default=2)
    parser.add_argument("--pipe-bits", type=int, default=256)
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/native-cpu.json)")
    args = parser.parse_args(argv)

    import numba

    rows = []
    for mode in args.modes:
        for n_f in args.sizes:
            n = int(n_f)
            runners = {k: f for k, f in _runners(mode, n, args.steps).items() if k not in args.skip}
            spikes, times = _interleaved(runners, args.repeats)
            bound = compute_bound(mode, n, args.fma_pipes, args.add_pipes, args.pipe_bits) if "native" in runners else None
            work = n * args.steps
            row = {"mode": mode, "n": n, "steps": args.steps, "spikes": spikes, "bound": bound, **_rates(times, work)}
            if "native" in runners:
                for other in ("numba", "jax"):
                    if other in runners:  # per round: the rounds share the machine's load
                        ratios = [b / a for a, b in zip(times["native"], times[other])]
                        row[f"native_vs_{other}"] = {"median": statistics.median(ratios), "min": min(ratios),
                                                     "max": max(ratios)}
                if bound and bound["bound_neuron_steps_per_s"]:
                    row["native_fraction_of_bound"] = row["native"]["rate_best"] / bound["bound_neuron_steps_per_s"]
            rows.append(row)
            print(f"{mode} n={n}: " + ", ".join(f"{k} {row[k]['rate_best']:.3g}/s" for k in times), flush=True)

    variants = []
    n = int(args.variant_size)
    for name in args.variants:
        spikes, times = _interleaved(_variant_runners(name, n, args.steps), args.repeats)
        row = {"variant": name, "n": n, "steps": args.steps, "spikes": spikes, **_rates(times, n * args.steps)}
        ratios = [b / a for a, b in zip(times["native"], times["jax"])]
        row["native_vs_jax"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
        variants.append(row)
        print(f"variant {name} n={n}: jax {row['jax']['rate_best']:.3g}/s, native {row['native']['rate_best']:.3g}/s",
              flush=True)

    device = jax.devices()[0]
    meta = run_metadata("native", __file__, argv, device, numba=numba.__version__)
    meta["native_flags"] = next((r["bound"]["flags"] for r in rows if r.get("bound")), None)
    meta["threads"] = os.environ.get("OMP_NUM_THREADS") or os.cpu_count()
    meta["variants"] = variants
    path = write_results(args.out or str(Path(__file__).parent / "results" / "native-cpu.json"), "native", device,
                         meta, rows)

    print("\n| mode | n | JAX /s | native /s | Numba /s | native / Numba | native / JAX | of bound |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        get = lambda k: f"{row[k]['rate_best']:.3g}" if k in row else "-"  # noqa: E731
        ratio = lambda k: f"{row[k]['median']:.2f}x" if k in row else "-"  # noqa: E731
        frac = f"{row['native_fraction_of_bound']:.0%}" if "native_fraction_of_bound" in row else "-"
        print(f"| {row['mode']} | {row['n']:.0e} | {get('jax')} | {get('native')} | {get('numba')} | "
              f"{ratio('native_vs_numba')} | {ratio('native_vs_jax')} | {frac} |")
    if variants:
        print(f"\n| variant (pure, n = {n:.0e}) | JAX /s | native /s | native / JAX |")
        print("|---|---|---|---|")
        for row in variants:
            print(f"| {row['variant']} | {row['jax']['rate_best']:.3g} | {row['native']['rate_best']:.3g} | "
                  f"{row['native_vs_jax']['median']:.1f}x |")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
