"""Float32 pure-state norm drift and the cost of keeping the norm, in one run.

    python bench/bench_norm.py                  # drift to 1e6 steps; speed at n = 1e5 and 1e6
    python bench/bench_norm.py --quick          # drift to 1e5 steps; speed at n = 1e5

Three variants of the same pure step, side by side in one process:

* ``every 4th`` (the engine's step): on absolute steps ``t % 4 == 3`` the unitary is scaled by the
  Newton factor ``(3 - |psi|^2)/2`` of the incoming state (``qsn.dynamics.norm_correction``,
  ``qsn.dynamics.RENORM_PERIOD = 4``); the JAX backend's scan lays its steps out so that the other
  three steps compile without the correction;
* ``every step``: the same factor on every step (``RENORM_PERIOD = 1``: the cadence before);
* ``plain``: no correction (the factor replaced by 1, i.e. the step before the correction).

Drift: the issue's case (``NeuronParams(v_rest=-65, v_th=-50, tau_m=10, r_m=40, delta=0.5)``, 50
neurons, current ``linspace(0, 0.37, 50)``, scan unroll 4: the phase layout), the largest
``| |psi|^2 - 1 |`` over the neurons and over the chunk ends so far (chunks of 1001 steps, so that
they end on every phase of the correction) at 3e3, 3e4, 1e5 and 1e6 steps. Speed: neuron-steps/s of
the compiled chunk ``qsn.simulate`` runs for a pure float32 population of n neurons (one chunk of
``--work / n`` steps, no recording, the tuned CPU unroll 4, ``state.t = 0``), each variant compiled
once, then the variants interleaved A B C A B C ... for ``--rounds`` rounds (the machine is shared):
``relative_to_plain`` is the median over rounds of the round's plain time over the variant's (wall
clock), ``relative_to_plain_cpu_time`` the same in process CPU time, ``relative_to_plain_best`` the
ratio of the best wall times.
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
from qsn.current import as_current  # noqa: E402
from qsn.jax_backend import DEFAULT_UNROLL, _chunk_jit  # noqa: E402

DRIFT_PARAMS = dict(v_rest=-65.0, v_th=-50.0, tau_m=10.0, r_m=40.0, delta=0.5)
VARIANTS = ("plain", "every 4th", "every step")
_CORRECTION, _PERIOD = qsn.dynamics.norm_correction, qsn.dynamics.RENORM_PERIOD


def _variant(name: str) -> None:
    """Switch the pure step's norm correction: the engine's cadence, every step, or none."""
    qsn.dynamics.norm_correction = (lambda q: 1.0) if name == "plain" else _CORRECTION
    qsn.dynamics.RENORM_PERIOD = 1 if name == "every step" else _PERIOD
    jax.clear_caches()  # the compiled chunk holds the step it was traced with


def drift(checkpoints: list[int]) -> dict[int, float]:
    p = qsn.NeuronParams(**DRIFT_PARAMS)
    n = 50
    state = qsn.init_state(p, n)
    current = np.linspace(0.0, 0.37, n)
    ends: list[tuple[int, float]] = []

    def watch(done: int, s) -> None:  # one run (a drifted state would not pass check_state to continue)
        norm2 = sum(np.asarray(x, np.float64) ** 2 for x in s.amplitudes)
        ends.append((done, float(np.max(np.abs(norm2 - 1.0)))))

    qsn.simulate(p, state, current, steps=max(checkpoints), chunk_steps=1_001, unroll=4, on_chunk=watch)
    return {c: max(err for done, err in ends if done <= c) for c in checkpoints}


def speed(n: int, steps: int, rounds: int) -> dict[str, dict]:
    """Each variant's chunk compiled once (what ``qsn.simulate`` runs for this population: one chunk, no
    recording, the tuned unroll), then timed in interleaved rounds: on a shared machine, runs of about a
    second next to each other see the same load, which a round's ratio cancels."""
    p = qsn.NeuronParams(delta=0.3)
    state = qsn.init_state(p, n)
    current = as_current(jnp.linspace(10.0, 40.0, n, dtype=jnp.float32), n, jnp.float32)
    count = jnp.zeros((n,), jnp.int32)
    unroll = DEFAULT_UNROLL[("cpu", "pure")]
    args = dict(length=steps, every=steps, names=(), events=False, track_norm=False, unroll=unroll, phase=0)
    chunks = {}
    for name in VARIANTS:
        _variant(name)
        stepper = qsn.Stepper.build(p, "pure", jnp.float32)
        chunks[name] = (stepper, _chunk_jit.lower(stepper, state, count, current, None, None, **args).compile())
    _variant("every 4th")
    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for r in range(rounds + 1):  # round 0 warms up
        for name in VARIANTS:
            stepper, compiled = chunks[name]
            w, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(compiled(stepper, state, count, current, None, None))
            if r:
                wall[name].append(time.perf_counter() - w)
                cpu[name].append(time.process_time() - c)
    out = {}
    for name in VARIANTS:
        ratio = lambda t: np.asarray(t["plain"]) / np.asarray(t[name])  # noqa: E731  (per round)
        out[name] = {"neuron_steps_per_s": n * steps / min(wall[name]),
                     "relative_to_plain": float(np.median(ratio(wall))),
                     "relative_to_plain_cpu_time": float(np.median(ratio(cpu))),
                     "relative_to_plain_best": float(min(wall["plain"]) / min(wall[name])),
                     "seconds": [round(x, 4) for x in wall[name]]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="drift to 1e5 steps, speed at n = 1e5 only")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds per size (default %(default)s)")
    ap.add_argument("--work", type=float, default=2e8, help="neuron-steps per timed run (default %(default)g)")
    ap.add_argument("--out", default=None, help="output JSON (default bench/results/norm-<platform>.json)")
    args = ap.parse_args(argv)
    checkpoints = [3_000, 30_000, 100_000] + ([] if args.quick else [1_000_000])
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    device = jax.devices()[0]
    metadata = run_metadata("norm", __file__, argv, device)
    rows = []
    for name in VARIANTS:
        _variant(name)
        for steps, err in drift(checkpoints).items():
            rows.append({"part": "drift", "variant": name, "steps": steps, "max_norm_error": err})
    _variant("every 4th")
    for n in sizes:
        steps = max(100, int(args.work // n))
        for name, row in speed(n, steps, args.rounds).items():
            rows.append({"part": "speed", "variant": name, "n": n, "steps": steps, **row})
    path = write_results(args.out, "norm", device, metadata, rows)
    print("| part | variant | size | value |\n|---|---|---|---|")
    for r in rows:
        if r["part"] == "drift":
            print(f"| drift | {r['variant']} | {r['steps']:.0e} steps | max abs(norm^2 - 1) = {r['max_norm_error']:.2e} |")
        else:
            print(f"| speed | {r['variant']} | n = {r['n']:.0e} | {r['neuron_steps_per_s']:.3g} neuron-steps/s "
                  f"({r['relative_to_plain']:.3f} x plain: median of {args.rounds} rounds; "
                  f"CPU time {r['relative_to_plain_cpu_time']:.3f}; best times {r['relative_to_plain_best']:.3f}) |")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
