"""Fused CUDA population kernel: what the code costs per neuron-step, and how fast it runs beside XLA.

    python bench/bench_kernels.py --part static       # any machine with nvcc: kernels-static.json
    python bench/bench_kernels.py --part gpu          # CUDA + CuPy: kernels-gpu.json
    python bench/bench_kernels.py --part drift        # CUDA + CuPy: kernels-drift-gpu.json

``static`` builds every variant of the population kernel with nvcc for sm_90 (the NVRTC flags of
``qsn.kernels.compile``) and reads, from the PTX of its time-step loop, the instructions, FP32
operations, FLOPs, SFU operations and memory accesses of one neuron-step (``qsn.kernels.ptx``; blocks
that run on some steps only are weighted by how often they run in this workload), the registers and
spills from ptxas, and the bound this mix allows on an H100 SXM (issue, FP32 and SFU limits).

``gpu`` measures neuron-steps/s for n in --sizes, T = --steps, float32, pure and mixed: the XLA path
(``qsn.simulate`` with scan unroll 1 and 8, best reported) and the fused kernel (fast and precise), with
constant, streamed ``(T, n)`` (where it fits --stream-bytes) and in-kernel Poisson input, all in the
same run; it reports the ratio to the best XLA path, the fraction of the static bound and, for
streamed input, of HBM bandwidth.

``drift`` runs 1e4 steps of a mixed population of 1e5 neurons both ways (fast intrinsics and
``precise=True``) and against the JAX path: spike mismatches, near-threshold ties and the largest
state differences; then 1e6 sub-threshold steps of 1e5 neurons per mode and build, for the largest
``| |psi|^2 - 1 |`` and ``|r|`` (DESIGN: float32 keeps the norm within 1e-6 over 1e6 steps).

Workload (all parts): ``delta = 0.3``; mixed mode with ``t2 = 50`` ms; constant per-neuron current
``linspace(10, 40)`` mV (neurons both idle and fire); Poisson input: 1000 sources at 10 Hz per neuron
(mean 1 input spike per step at dt = 0.1 ms) of 20 mV each.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# JAX takes 75% of GPU memory at start by default; CuPy allocates beside it here (state copies, outputs)
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_population import _time as wall_time  # noqa: E402
from bench_population import run_metadata, write_results  # noqa: E402

import qsn  # noqa: E402
from qsn.dynamics import step_config  # noqa: E402
from qsn.kernels import population, ptx  # noqa: E402

MODES = ("pure", "mixed")
INPUTS = ("const", "array", "poisson")
POISSON = dict(rate_hz=10.0, weight=20.0, sources=1000)
CURRENT_RANGE = (10.0, 40.0)
# The stochastic variant of each mode: quantum-jump spiking, and in pure mode T1/T2 unravelled (phase
# kicks, relaxation jumps); random words from one Philox block per step.
STOCHASTIC = dict(jump_rate=0.1, t1=100.0, t2=50.0)


def workload_params(mode: str, stochastic: bool = False) -> qsn.NeuronParams:
    extra = (STOCHASTIC if mode == "pure" else {"jump_rate": STOCHASTIC["jump_rate"]}) if stochastic else {}
    return qsn.NeuronParams(**{"delta": 0.3, **({"t2": 50.0} if mode == "mixed" else {}), **extra})


def poisson_input(n: int, seed: int = 0) -> qsn.PoissonCurrent:
    return qsn.PoissonCurrent(n, key=jax.random.key(seed), **POISSON)


def block_weights(mode: str, kind: str, params: qsn.NeuronParams) -> dict[str, float]:
    """Executions per step of the tagged blocks of the kernel (QSN_MARK) in this workload.

    ``series``/``sine``: the pure-mode ``sin(w dt)/w`` uses the series while ``theta = w dt < 0.25``;
    here ``a <= ~1.1`` (V stays below threshold but for the spiking step) so ``w <= sqrt(1.1^2 + 0.3^2)``
    and ``theta <= 0.12``: always the series. ``inversion``: the CDF
    search runs ``k + 1`` times for ``k`` input spikes, ``E[k] = lambda``. ``clamp``: mixed mode's
    scaling of ``r`` back onto the Bloch sphere, on a renormalising step whose ``|r|^2`` came out above 1;
    counted as if that happened every time (an upper bound: it is rare, and dephasing shrinks ``r``).
    """
    theta_max = float(np.sqrt(1.1**2 + float(params.delta) ** 2) * float(params.dt))
    assert theta_max < 0.25, "the series branch is not the common path of this workload"
    weights = {"series": 1.0, "sine": 0.0, "clamp": 1.0}
    if kind == "poisson":
        lam = POISSON["sources"] * POISSON["rate_hz"] * float(params.dt) / 1000.0
        weights.update(inversion=lam + 1.0)
    return weights


STEPS_PER_ITERATION = 4  # the main loops advance 4 steps per iteration (unrolled; Poisson: one Philox block)


def plan_for(mode: str, kind: str, stochastic: bool = False):
    """``(plan, small)``: the mixed-mode propagator plan and the small-angle flag the kernel compiles
    for this workload, from :func:`qsn.kernels.population.check_input` as ``population.run`` uses it."""
    params = workload_params(mode, stochastic)
    state = qsn.init_state(params, 2, mode=mode)
    current = {"const": jnp.asarray(CURRENT_RANGE, jnp.float32), "array": jnp.asarray([CURRENT_RANGE], jnp.float32),
               "poisson": poisson_input(2)}[kind]
    a_bound = population.check_input(params, state, current).a_bound
    return step_config(params, mode, jnp.float32, a_bound).plan, population.small_angle(params, a_bound)


def static_part(args) -> tuple[list, dict]:
    rows = []
    variants = [(mode, kind, False) for mode in MODES for kind in INPUTS] + [(mode, "const", True) for mode in MODES]
    for mode, kind, stochastic in variants:
        params = workload_params(mode, stochastic)
        plan, small = plan_for(mode, kind, stochastic)
        for precise in (False, True):
            defines = population.kernel_defines(mode, kind, plan, small=small, analysis=True, jumps=stochastic,
                                                dephasing=stochastic, relaxation=stochastic)
            stats = ptx.compile_stats("population", defines, precise, arch=args.arch)
            blocks = ptx.loop_blocks(stats["ptx"])
            mix = ptx.per_step(blocks, block_weights(mode, kind, params), STEPS_PER_ITERATION)
            limits = ptx.bound(mix)
            # bytes per neuron-step moved to or from HBM: only a streamed input row (float32); the state
            # is read and written once per launch (amortised over T steps)
            bytes_step = 4.0 if kind == "array" else 0.0
            row = {
                "mode": mode, "input": kind, "precise": precise, "small_angle": small,
                "stochastic": stochastic,
                "plan": None if plan is None else {"substeps": plan.substeps, "terms": plan.terms},
                "registers": stats["registers"], "spill_bytes": stats["spill_stores"] + stats["spill_loads"],
                "blocks": blocks, "per_step": mix, "hbm_bytes_per_step": bytes_step,
                "bound_neuron_steps_per_s": limits["bound"], "limited_by": limits["limited_by"],
                "limits": {k: limits[k] for k in ("issue", "fp32", "sfu")},
            }
            if bytes_step:
                row["limits"]["hbm"] = ptx.HOPPER_H100_SXM["hbm_bytes_per_s"] / bytes_step
                row["limited_by"] = min(row["limits"], key=row["limits"].get)
                row["bound_neuron_steps_per_s"] = row["limits"][row["limited_by"]]
            limits = {"bound": row["bound_neuron_steps_per_s"], "limited_by": row["limited_by"]}
            rows.append(row)
            print(f"{mode:5s} {kind + ('+rng' if stochastic else ''):11s} {'precise' if precise else 'fast':7s} {stats['registers']:3d} regs "
                  f"{mix['instructions']:6.1f} instr/step  fp32 {mix.get('fp32', 0):5.1f}  sfu {mix.get('sfu', 0):3.1f}  "
                  f"bound {limits['bound']:.3g} ({limits['limited_by']})", flush=True)
    meta = {
        "chip_model": ptx.HOPPER_H100_SXM,
        "chip_model_source": "CUDA C++ Programming Guide, arithmetic instruction throughput for compute capability 9.0 "
                             "(per SM per clock: 128 FP32 add/mul/FMA, 16 SFU, 4 warp schedulers); NVIDIA H100 SXM5 "
                             "datasheet (132 SMs, 1.98 GHz boost, 3.35 TB/s)",
        "counting": "PTX of the time-step loop (nvcc -arch=sm_90 with the NVRTC flags); mov/neg not counted "
                    "(ptxas folds them into operands); blocks tagged QSN_MARK weighted by executions per step "
                    "(see block_weights); the precise variant's sincosf slow path (huge arguments) is counted "
                    "as if it ran every step, so its bound is a lower bound",
        "nvcc": ptx.nvcc(),
    }
    return rows, meta


# ---------------------------------------------------------------------------------------------------
# GPU parts


def _cuda_timer(cupy):
    def timed(fn, repeats: int) -> float:
        fn()  # warm-up: compile, allocate
        best = float("inf")
        for _ in range(repeats):
            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            best = min(best, cupy.cuda.get_elapsed_time(start, stop) / 1e3)
        return best
    return timed


def _runner(args):
    """The runner of the gpu/drift parts and its timer: CuPy with CUDA events, or (``--runner native``:
    what gpu_suite.py's CPU dry run uses so that these parts cannot rot) the native CPU build, wall clock."""
    from qsn.kernels.runner import CupyRunner, NativeRunner

    if args.runner == "native":
        return NativeRunner(), wall_time
    runner = CupyRunner()
    return runner, _cuda_timer(runner.xp)


def gpu_part(args) -> tuple[list, dict]:
    runner, timed = _runner(args)
    static = ({(r["mode"], r["input"], r["stochastic"], r["precise"]): r for r in static_part(args)[0]}
              if ptx.nvcc() else {})
    key = jax.random.key(1)
    rows = []
    for mode in MODES:
        for n_f in args.sizes:
            n = int(n_f)
            steps = args.steps
            const = jnp.linspace(*CURRENT_RANGE, n, dtype=jnp.float32)
            inputs = [("const", False, const), ("poisson", False, poisson_input(n)), ("const", True, const)]
            if 4 * n * steps <= args.stream_bytes:
                inputs.append(("array", False, jax.random.uniform(key, (steps, n), jnp.float32, *CURRENT_RANGE)))
            for kind, stochastic, current in inputs:
                params = workload_params(mode, stochastic)
                state = qsn.init_state(params, n, mode=mode)
                xla = {}
                for unroll in (1, 8):
                    def run_xla(u=unroll):
                        r = qsn.simulate(params, state, current, steps=steps, key=key, unroll=u)
                        jax.block_until_ready(r.state)
                    xla[unroll] = n * steps / wall_time(run_xla, args.repeats)
                best_xla = max(xla.values())
                a_bound = population.check_input(params, state, current).a_bound  # checked once, as simulate does
                for precise in (False, True):
                    rate = n * steps / timed(
                        lambda: population.run(runner, params, state, current, steps, key, precise=precise,
                                               a_bound=a_bound), args.repeats)
                    row = {"mode": mode, "n": n, "steps": steps, "input": kind, "stochastic": stochastic,
                           "precise": precise, "fused_neuron_steps_per_s": rate, "xla_neuron_steps_per_s": xla,
                           "speedup_vs_best_xla": rate / best_xla}
                    bound = static.get((mode, kind, stochastic, precise))
                    if bound:
                        row["fraction_of_static_bound"] = rate / bound["bound_neuron_steps_per_s"]
                    if kind == "array":
                        row["hbm_bytes_per_s"] = rate * 4.0
                        row["fraction_of_hbm"] = rate * 4.0 / ptx.HOPPER_H100_SXM["hbm_bytes_per_s"]
                    rows.append(row)
                    print(f"{mode:5s} n={n:>11,d} {kind + ('+rng' if stochastic else ''):11s} "
                          f"{'precise' if precise else 'fast':7s} fused {rate:.3g}  "
                          f"best XLA {best_xla:.3g}  x{rate / best_xla:.2f}", flush=True)
    if args.runner == "native":
        return rows, {"runner": "native", "timing": "wall clock of population.run (native CPU build), best of repeats"}
    cupy = runner.xp
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    meta = {"gpu": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
            "sm_count": props["multiProcessorCount"], "clock_khz": props.get("clockRate"), "runner": "cupy",
            "timing": "fused: CUDA events around population.run with the run checked beforehand (state copies "
                      "included), best of repeats after a "
                      "warm-up; XLA: wall clock of qsn.simulate with block_until_ready"}
    return rows, meta


def drift_part(args) -> tuple[list, dict]:
    runner, _ = _runner(args)
    rows = []
    for mode in MODES:
        params = workload_params(mode)
        n = args.drift_neurons
        state = qsn.init_state(params, n, mode=mode)
        current = jnp.linspace(*CURRENT_RANGE, n, dtype=jnp.float32)
        ref = qsn.simulate(params, state, current, steps=args.drift_steps)
        outs = {p: population.run(runner, params, state, current, args.drift_steps, precise=p, ties=True)
                for p in (False, True)}
        row = {"mode": mode, "n": n, "steps": args.drift_steps}
        for name, (a, b) in {"fast_vs_precise": (outs[False], outs[True]),
                             "precise_vs_jax": (outs[True], None), "fast_vs_jax": (outs[False], None)}.items():
            sa = a["state"]
            sb = b["state"] if b is not None else ref.state
            ca = runner.to_host(a["count"])
            cb = runner.to_host(b["count"]) if b is not None else np.asarray(ref.spike_count)
            row[name] = {
                "neurons_with_different_spike_count": int(np.sum(ca != cb)),
                "max_abs_v_mV": float(np.max(np.abs(np.asarray(sa.v) - np.asarray(sb.v)))),
                "max_abs_qubit": max(float(np.max(np.abs(np.asarray(getattr(sa, f)) - np.asarray(getattr(sb, f)))))
                                     for f in sa._fields if f not in ("v", "refractory", "t")),
            }
        row["ties_fast"] = int(runner.to_host(outs[False]["ties"]).sum())
        row["ties_precise"] = int(runner.to_host(outs[True]["ties"]).sum())
        rows.append(row)
        print(mode, row, flush=True)
    rows += norm_rows(runner, args)
    return rows, {}


NORM_WORKLOAD = dict(v_rest=-65.0, v_th=-50.0, tau_m=10.0, r_m=40.0, delta=0.5)  # tests/kernels/test_kernel_step.py


def norm_rows(runner, args) -> list:
    """Largest ``| |psi|^2 - 1 |`` (pure) and ``|r|`` (mixed) over --norm-steps sub-threshold steps
    (current linspace(0, 0.37): drive <= 0.99, no spike resets), read at the end of launches of 100,003
    steps (each at another phase of the fast build's 4-step renormalisation), fast and precise builds."""
    params = qsn.NeuronParams(**NORM_WORKLOAD)
    n = args.drift_neurons
    current = np.linspace(0.0, 0.37, n).astype(np.float32)
    rows = []
    for mode in MODES:
        fields = ("re0", "im0", "re1", "im1") if mode == "pure" else ("x", "y", "z")
        for precise in (False, True):
            state, done, worst, top = qsn.init_state(params, n, mode=mode), 0, 0.0, 0.0
            while done < args.norm_steps:
                length = min(100_003, args.norm_steps - done)
                state = population.run(runner, params, state, current, length, precise=precise)["state"]
                done += length
                sq = sum(np.asarray(getattr(state, f), np.float64) ** 2 for f in fields)
                worst, top = max(worst, float(np.max(np.abs(sq - 1.0)))), max(top, float(np.sqrt(np.max(sq))))
            row = {"check": "norm", "mode": mode, "precise": precise, "n": n, "steps": args.norm_steps,
                   "max_abs_norm2_minus_1": worst, "max_bloch_length": top}
            rows.append(row)
            print(row, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["static", "gpu", "drift"], default="static")
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e5, 1e6, 1e7, 1e8])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream-bytes", type=float, default=8e9, help="largest streamed (T, n) input, bytes")
    parser.add_argument("--drift-neurons", type=int, default=100_000)
    parser.add_argument("--drift-steps", type=int, default=10_000)
    parser.add_argument("--norm-steps", type=int, default=1_000_000, help="steps of the drift part's norm check")
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--runner", choices=["cupy", "native"], default="cupy",
                        help="gpu/drift parts: the CUDA kernel (default) or the native CPU build (dry runs)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    if args.part == "static":
        if ptx.nvcc() is None:
            print("bench_kernels --part static needs the CUDA toolkit's nvcc", file=sys.stderr)
            return 2
        rows, extra = static_part(args)
        name, device = "kernels-static", jax.devices("cpu")[0]
    else:
        from qsn.kernels import available

        if args.runner == "cupy" and not available():
            print(f"bench_kernels --part {args.part} needs CuPy and a CUDA GPU (pip install 'qsn[cuda]')", file=sys.stderr)
            return 2
        rows, extra = gpu_part(args) if args.part == "gpu" else drift_part(args)
        name, device = ("kernels" if args.part == "gpu" else "kernels-drift"), jax.devices()[0]
    meta = {**run_metadata(name, __file__, argv, device), **extra,
            "workload": "delta=0.3; mixed t2=50 ms; constant current linspace(10, 40) mV; Poisson 1000 x 10 Hz x 20 mV"}
    out = args.out or (str(Path(__file__).parent / "results" / "kernels-static.json") if args.part == "static" else None)
    path = write_results(out, name, device, meta, rows)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
