"""Float32 pure-state norm drift and the cost of keeping the norm, in one run.

    python bench/bench_norm.py                  # drift to 1e6 steps; speed at n = 1e5 and 1e6
    python bench/bench_norm.py --quick          # drift to 1e5 steps; speed at n = 1e5

Two variants of the same pure step, side by side in one process: ``renormalised`` (the engine's step:
the unitary scaled by the Newton factor ``(3 - |psi|^2)/2`` of the incoming state,
``qsn.dynamics.norm_correction``) and ``plain`` (the same step with that factor replaced by 1, i.e.
the step before the change). Drift: the issue's case (``NeuronParams(v_rest=-65,
v_th=-50, tau_m=10, r_m=40, delta=0.5)``, 50 neurons, current ``linspace(0, 0.37, 50)``), max
``| |psi|^2 - 1 |`` over the neurons after 3e3, 3e4, 1e5 and 1e6 steps. Speed: neuron-steps/s of
``qsn.simulate`` (no recording, the default unroll), the two variants interleaved A B A B ... for
``--rounds`` rounds (the machine is shared: the ratio of per-round best times is what is reported).
Writes ``bench/results/norm-<platform>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_population import run_metadata, write_results  # noqa: E402

import qsn  # noqa: E402
import qsn.dynamics  # noqa: E402

DRIFT_PARAMS = dict(v_rest=-65.0, v_th=-50.0, tau_m=10.0, r_m=40.0, delta=0.5)
_CORRECTION = qsn.dynamics.norm_correction


def _variant(name: str) -> None:
    """Switch the pure step's renormalisation on (the engine's step) or off (the step before it)."""
    qsn.dynamics.norm_correction = _CORRECTION if name == "renormalised" else (lambda q: 1.0)
    jax.clear_caches()  # the compiled chunk holds the step it was traced with


def drift(checkpoints: list[int]) -> dict[int, float]:
    p = qsn.NeuronParams(**DRIFT_PARAMS)
    n = 50
    state = qsn.init_state(p, n)
    current = np.linspace(0.0, 0.37, n)
    out = {}

    def watch(done: int, s) -> None:  # one run (a drifted state would not pass check_state to continue)
        if done in checkpoints:
            norm2 = sum(np.asarray(x, np.float64) ** 2 for x in s.amplitudes)
            out[done] = float(np.max(np.abs(norm2 - 1.0)))

    qsn.simulate(p, state, current, steps=max(checkpoints), chunk_steps=1_000, on_chunk=watch)
    return out


def speed(n: int, steps: int, rounds: int) -> dict[str, float]:
    p = qsn.NeuronParams(delta=0.3)
    state = qsn.init_state(p, n)
    current = jnp.linspace(10.0, 40.0, n, dtype=jnp.float32)
    best = {}
    for _ in range(rounds):
        for name in ("plain", "renormalised"):
            _variant(name)
            jax.block_until_ready(qsn.simulate(p, state, current, steps=steps).state)  # compile
            start = time.perf_counter()
            jax.block_until_ready(qsn.simulate(p, state, current, steps=steps).state)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    _variant("renormalised")
    return {name: n * steps / t for name, t in best.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="drift to 1e5 steps, speed at n = 1e5 only")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per size (default %(default)s)")
    ap.add_argument("--out", default=None, help="output JSON (default bench/results/norm-<platform>.json)")
    args = ap.parse_args(argv)
    checkpoints = [3_000, 30_000, 100_000] + ([] if args.quick else [1_000_000])
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    device = jax.devices()[0]
    metadata = run_metadata("norm", __file__, argv, device)
    rows = []
    for name in ("plain", "renormalised"):
        _variant(name)
        for steps, err in drift(checkpoints).items():
            rows.append({"part": "drift", "variant": name, "steps": steps, "max_norm_error": err})
    for n in sizes:
        steps = max(200, int(1e9 // n))  # 1e9 neuron-steps: the work at which simulate uses its tuned unroll
        rates = speed(n, steps, args.rounds)
        for name, rate in rates.items():
            rows.append({"part": "speed", "variant": name, "n": n, "steps": steps, "neuron_steps_per_s": rate,
                         "relative_to_plain": rate / rates["plain"]})
    path = write_results(args.out, "norm", device, metadata, rows)
    print("| part | variant | size | value |\n|---|---|---|---|")
    for r in rows:
        if r["part"] == "drift":
            print(f"| drift | {r['variant']} | {r['steps']:.0e} steps | max abs(norm^2 - 1) = {r['max_norm_error']:.2e} |")
        else:
            print(f"| speed | {r['variant']} | n = {r['n']:.0e} | {r['neuron_steps_per_s']:.3g} neuron-steps/s "
                  f"({r['relative_to_plain']:.3f} x plain) |")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
