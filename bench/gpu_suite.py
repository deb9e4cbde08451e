"""Every GPU measurement of the project in one budgeted call, for a lent GPU machine (15 device-minutes in
all, one command of at most 10 minutes, a few result files back).

    PYTHONPATH=$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false python bench/gpu_suite.py --out "$OUT"
    python bench/gpu_suite.py --dry-run --out /tmp/suite        # CPU, tiny sizes, ~1 minute: what CI runs

Parts run in order of priority, each as its own process under its own time budget (the whole default
run fits 8 minutes), and each writes its JSON (and a log) into ``--out`` as soon as it finishes, so a
timeout or a crash keeps what was done; ``suite.json`` (rewritten after every part) records the
device, the driver and library versions, and per part its command, status, wall time and files:

1. ``parity``      the ``gpu``-marked tests (kernels against the JAX path, GPU against CPU), log kept;
2. ``kernels``     bench_kernels.py --part gpu: the fused kernel (fast and precise) beside the XLA path
                   (unroll 1 and 8), pure and mixed, constant / Poisson / streamed / stochastic input,
                   n = 1e6, 1e7, 1e8, T = 1000: neuron-steps/s, fractions of the static bound and of HBM;
3. ``drift``       bench_kernels.py --part drift: fast-math against precise and JAX after 1e4 steps, and
                   the float32 norm over 1e6 steps with the SFU cosine;
4. ``brunel``      bench_network.py: Brunel at 1e4, 1e5, 1e6 neurons (in-degree 1,000), on the JAX path
                   and on the CUDA network kernel (``backend="cupy"``);
5. ``microcircuit`` bench_network.py: the full-scale microcircuit, build time apart from simulation, on both;
6. ``propagation`` bench_propagation.py: synaptic events/s of the propagation kernel and the JAX event path;
7. ``training``    bench_training.py --part bptt: BPTT throughput and memory, with and without checkpoints.

``--dry-run`` runs the same parts on the CPU at tiny sizes (the fused-kernel parts on the native CPU
build, which shares the launcher): a part that needs a GPU and exits 2 saying so counts as skipped,
any other failure fails the run (exit 1), so the suite and the scripts it calls cannot rot unseen.
The dry run leaves out the microcircuit, whose first build takes over a minute even at scale 0.002 on
a 2-core CPU (the networks issue's construction work); bench_network.py's Brunel rows run its code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NEEDS_GPU = 2  # the exit code of a bench script that found no GPU


# A dry run's budget per part: the CPU sizes take seconds to a minute on a quiet 2-core machine, several
# times that on a loaded one; the budgets that matter are the GPU parts' below.
DRY_BUDGET_S = 420


def parts(out: Path, dry: bool) -> list[tuple[str, list[str], float]]:
    """``(name, argv, budget s)`` of every part, real or dry-run sizes."""
    py = [sys.executable]
    b = lambda name: str(HERE / f"{name}.py")  # noqa: E731
    o = lambda name: ["--out", str(out / name)]  # noqa: E731
    test_cmd = py + ["-m", "pytest", "-q", "-rA", "-m", "gpu", "tests/kernels", "tests/test_gpu.py", "-p", "no:cacheprovider"]
    if dry:
        return [
            ("parity", test_cmd, DRY_BUDGET_S),
            ("kernels", py + [b("bench_kernels"), "--part", "gpu", "--runner", "native", "--sizes", "1e3", "--steps", "20",
                              "--repeats", "1", "--stream-bytes", "1e6"] + o("kernels.json"), DRY_BUDGET_S),
            ("drift", py + [b("bench_kernels"), "--part", "drift", "--runner", "native", "--drift-neurons", "64",
                            "--drift-steps", "40", "--norm-steps", "100"] + o("kernels-drift.json"), DRY_BUDGET_S),
            ("brunel", py + [b("bench_network"), "--no-cuba", "--brian2", "--brunel-sizes", "400", "--brunel-indegree",
                             "20", "--duration", "5", "--chunk-ms", "5", "--repeats", "1"] + o("network-brunel.json"), DRY_BUDGET_S),
            ("propagation", py + [b("bench_propagation"), "--n", "2000", "--indegree", "20", "--steps", "2",
                                  "--repeats", "1"] + o("propagation.json"), DRY_BUDGET_S),
            ("training", py + [b("bench_training"), "--part", "bptt", "--quick", "--repeats", "1"] + o("training-bptt.json"),
             DRY_BUDGET_S),
        ]
    return [
        ("parity", test_cmd, 60),
        ("kernels", py + [b("bench_kernels"), "--part", "gpu", "--sizes", "1e6", "1e7", "1e8", "--steps", "1000",
                          "--repeats", "3"] + o("kernels.json"), 150),
        ("drift", py + [b("bench_kernels"), "--part", "drift"] + o("kernels-drift.json"), 30),
        ("brunel", py + [b("bench_network"), "--no-cuba", "--brian2", "--brunel-sizes", "1e4", "1e5", "1e6",
                         "--brunel-indegree", "1000", "--repeats", "1", "--no-shared-cpu", "--network-backends", "jax", "cupy"]
         + o("network-brunel.json"), 90),
        ("microcircuit", py + [b("bench_network"), "--no-cuba", "--brian2", "--brunel-sizes", "--microcircuit-scales",
                               "1.0", "--repeats", "1", "--no-shared-cpu", "--network-backends", "jax", "cupy"]
         + o("network-microcircuit.json"), 60),
        ("propagation", py + [b("bench_propagation")] + o("propagation.json"), 30),
        ("training", py + [b("bench_training"), "--part", "bptt", "--repeats", "3"] + o("training-bptt.json"), 60),
    ]


def environment() -> dict:
    """Device, driver and versions (what each part's own metadata does not say about the machine)."""
    env = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
           "host": platform.node(), "cpu_count": os.cpu_count()}
    if shutil.which("nvidia-smi"):
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        env["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
    probe = ("import json, jax; d = {'jax': jax.__version__, 'devices': [str(x) for x in jax.devices()]}\n"
             "try:\n import cupy; d['cupy'] = cupy.__version__; d['cuda_runtime'] = cupy.cuda.runtime.runtimeGetVersion()\n"
             "except Exception as e: d['cupy'] = repr(e)\nprint(json.dumps(d))")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    try:
        env.update(json.loads(p.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError):
        env["probe_error"] = p.stderr[-2000:]
    return env


def run_part(name: str, argv: list[str], budget: float, out: Path) -> dict:
    """Run one part under ``budget`` seconds, its output in ``<out>/<name>.log``; its status."""
    log = out / f"{name}.log"
    start = time.monotonic()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               XLA_PYTHON_CLIENT_PREALLOCATE="false")
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env, timeout=budget)
            code = proc.returncode
            status = "ok" if code == 0 else ("needs a GPU" if code == NEEDS_GPU else f"failed (exit {code})")
        except subprocess.TimeoutExpired:
            code, status = None, f"timed out after {budget:.0f} s"
    tail = log.read_text(errors="replace").splitlines()[-5:]
    if name == "parity" and code in (0, 5) and not any(" passed" in line for line in tail):
        status = "needs a GPU"  # every gpu test skipped (or none collected): nothing was compared
    return {"part": name, "command": " ".join(os.path.relpath(a, ROOT) if a.startswith(str(ROOT)) else a for a in argv),
            "budget_s": budget, "wall_s": round(time.monotonic() - start, 2), "status": status, "exit": code,
            "log": log.name, "tail": tail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT") or str(HERE / "results" / "gpu-suite"),
                        help="folder for every part's JSON and log (default $OUT, else bench/results/gpu-suite)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check that every part still runs")
    parser.add_argument("--only", nargs="*", default=None, help="run only these parts (names as listed above)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = [p for p in parts(out, args.dry_run) if args.only is None or p[0] in args.only]
    suite = {"dry_run": args.dry_run, "environment": environment(), "parts": []}
    summary = out / "suite.json"
    failed = False
    for name, cmd, budget in chosen:
        print(f"[gpu_suite] {name}: budget {budget:.0f} s", flush=True)
        row = run_part(name, cmd, budget, out)
        result = Path(cmd[cmd.index("--out") + 1]) if "--out" in cmd else None
        row["files"] = [row["log"]] + ([result.name] if result is not None and result.exists() else [])
        suite["parts"].append(row)
        summary.write_text(json.dumps(suite, indent=2) + "\n")  # after every part: a timeout keeps the rest
        print(f"[gpu_suite] {name}: {row['status']} in {row['wall_s']} s", flush=True)
        failed |= not (row["status"] == "ok" or row["status"] == "needs a GPU")
    print(f"[gpu_suite] wrote {summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
