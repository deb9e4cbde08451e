"""Population throughput (neuron-steps/s) of qsn.simulate beside two baselines measured in the same run.

    python bench/bench_population.py                       # CPU defaults: n in 1, 1e3, 1e5, 1e6
    python bench/bench_population.py --sizes 1e6 1e7 1e8   # on a GPU

For each mode (pure, mixed) and size n, float32, constant per-neuron current spread over 10..40 mV
(so neurons both idle and spike), no recording: warm-up (compile), then the best of --repeats timed runs
with ``block_until_ready``, for each scan unroll factor in --unroll; the best factor is reported (and is
what qsn.simulate's per-device default should be). Baselines: a sequential per-neuron loop calling
``scipy.linalg.expm`` each step, and vectorised NumPy (bench/baselines.py). Writes
``bench/results/population-<device>.json`` ({metadata, rows}) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baselines  # noqa: E402

import qsn  # noqa: E402

# Published peak memory bandwidths (vendor datasheets), bytes/s, by substring of the device kind.
PEAK_BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}
# Bytes of state a step reads and writes per neuron when XLA does not fuse steps (float32):
# pure: v, refractory, 4 amplitudes = 24 B read + 24 B written; mixed: v, refractory, 3 Bloch = 20 + 20.
STATE_BYTES = {"pure": 48, "mixed": 40}


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: compile and first touch
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _qsn_run(mode: str, n: int, steps: int, unroll: int):
    params = qsn.NeuronParams(delta=0.3, t2=50.0 if mode == "mixed" else float("inf"))
    state = qsn.init_state(params, n, mode=mode)
    current = jnp.linspace(10.0, 40.0, n, dtype=jnp.float32)

    def run():
        r = qsn.simulate(params, state, current, steps=steps, unroll=unroll)
        jax.block_until_ready(r.state)
        return r

    return run


def _steps_for(n: int, work: float, min_steps: int, max_steps: int) -> int:
    return int(min(max_steps, max(min_steps, work // n)))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_metadata(benchmark: str, script: str, argv: list[str] | None, device, **versions) -> dict:
    """The fields every bench JSON's metadata carries (what, when, which command and commit, on what), plus the
    versions of qsn, jax, numpy and Python and any ``versions`` given; each script adds its own fields."""
    return {
        "benchmark": benchmark,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join([os.path.relpath(script)] + (argv if argv is not None else sys.argv[1:])),
        "git_commit": _git_commit(),
        "device": str(device),
        "platform": device.platform,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "versions": {"qsn": qsn.__version__, "jax": jax.__version__, "numpy": np.__version__,
                     "python": platform.python_version(), **versions},
    }


def write_results(out: str | None, benchmark: str, device, metadata: dict, rows: list, **sections) -> Path:
    """Write ``{metadata, rows, **sections}`` (e.g. ``summary=``) to ``out`` or
    ``bench/results/<benchmark>-<platform>.json``; returns the path."""
    path = Path(out) if out else Path(__file__).parent / "results" / f"{benchmark}-{device.platform}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"metadata": metadata, "rows": rows, **sections}, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=float, default=[1, 1e3, 1e5, 1e6])
    parser.add_argument("--modes", nargs="+", default=["pure", "mixed"], choices=["pure", "mixed"])
    parser.add_argument("--unroll", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--work", type=float, default=2e8, help="neuron-steps per timed run (default %(default)g)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-neurons", type=int, default=4, help="neurons in the sequential-loop baseline")
    parser.add_argument("--baseline-steps", type=int, default=300)
    parser.add_argument("--numpy-work", type=float, default=2e6, help="neuron-steps of the vectorised NumPy baseline")
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/population-<device>.json)")
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    kind = getattr(device, "device_kind", device.platform)
    peak_bw = next((bw for name, bw in PEAK_BANDWIDTH.items() if name in kind), None)
    rows = []
    current_rng = np.random.default_rng(0)
    for mode in args.modes:
        mixed = mode == "mixed"
        model = baselines.Model(delta=0.3, t2=50.0 if mixed else float("inf"))
        seq_current = current_rng.uniform(10.0, 40.0, args.baseline_neurons)
        seq_s = _time(lambda: baselines.sequential_loop(model, seq_current, args.baseline_steps, mixed), 1)
        seq_rate = args.baseline_neurons * args.baseline_steps / seq_s
        for n_f in args.sizes:
            n = int(n_f)
            steps = _steps_for(n, args.work, 100, 200_000)
            per_unroll = {}
            for unroll in args.unroll:
                secs = _time(_qsn_run(mode, n, steps, unroll), args.repeats)
                per_unroll[unroll] = n * steps / secs
            best_unroll = max(per_unroll, key=per_unroll.get)
            rate = per_unroll[best_unroll]
            np_steps = _steps_for(n, args.numpy_work / (20 if mixed else 1), 2, 2000)
            np_current = np.linspace(10.0, 40.0, n)
            np_s = _time(lambda: baselines.vectorized_numpy(model, np_current, np_steps, mixed), 1)
            np_rate = n * np_steps / np_s
            row = {
                "mode": mode,
                "n": n,
                "steps": steps,
                "dtype": "float32",
                "neuron_steps_per_s": rate,
                "best_unroll": best_unroll,
                "by_unroll": {str(k): v for k, v in per_unroll.items()},
                "sequential_expm_neuron_steps_per_s": seq_rate,
                "numpy_neuron_steps_per_s": np_rate,
                "speedup_vs_sequential": rate / seq_rate,
                "speedup_vs_numpy": rate / np_rate,
            }
            if device.platform == "gpu":
                row["bytes_per_neuron_step_unfused"] = STATE_BYTES[mode] + 4
                row["effective_bandwidth_bytes_per_s"] = rate * (STATE_BYTES[mode] + 4) / best_unroll
                if peak_bw:
                    row["fraction_of_peak_bandwidth"] = row["effective_bandwidth_bytes_per_s"] / peak_bw
            rows.append(row)
            print(f"{mode:5s} n={n:>10,d} {rate:10.3g} neuron-steps/s (unroll {best_unroll})  "
                  f"x{rate / seq_rate:,.0f} vs sequential expm, x{rate / np_rate:,.1f} vs NumPy", flush=True)

    meta = {
        **run_metadata("population", __file__, argv, device, scipy=scipy.__version__),
        "device_kind": kind,
        "peak_bandwidth_bytes_per_s": peak_bw,
        "workload": "constant per-neuron current linspace(10, 40) mV, delta=0.3, t2=50 (mixed) / inf (pure), "
                    "no recording, float32; best of repeats after a warm-up",
    }
    out = write_results(args.out, "population", device, meta, rows)
    print()
    print("| mode | n | neuron-steps/s | unroll | vs sequential expm | vs NumPy |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['n']:,} | {r['neuron_steps_per_s']:.3g} | {r['best_unroll']} | "
              f"{r['speedup_vs_sequential']:,.0f}x | {r['speedup_vs_numpy']:.1f}x |")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
