"""Training benchmarks (issue 6): BPTT speed and memory, digits accuracy per neuron variant, hyperparameter search.

Parts (``--part``; each writes ``bench/results/training-<part>-<platform>.json`` and prints a markdown table):

* ``bptt``: one jitted ``value_and_grad`` of a loss over :func:`qsn.simulate` with a surrogate, for ``n`` hidden
  neurons × ``T`` steps, with and without checkpointing: neuron-steps/s of the forward pass and of forward +
  backward, and the compiled temporary memory XLA reports (best of ``--repeats`` after a warm-up).
* ``accuracy``: :func:`qsn.learning.train.train` on the digits for each variant of
  :data:`qsn.learning.train.VARIANTS` (Δ = 0 LIF; Δ > 0 with p1 read out; Δ > 0 with jump spiking) over
  ``--seeds`` seeds: test accuracy, mean and 95% t-interval, and paired t-tests of each variant against LIF.
* ``search``: annealing-guided search (:func:`qsn.learning.search.anneal_search`) against random search at the same
  number of evaluations, and against plain Adam on the default configuration given the same number of epochs;
  each search's best configuration is retrained in full and tested. Per seed: best validation error per
  evaluation, wall time, test accuracy; paired comparisons across seeds.

Example:
    python bench/bench_training.py --part accuracy --seeds 5
    python bench/bench_training.py --part search --seeds 5 --budget 16
    python bench/bench_training.py --part bptt --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the search's SVDs contend with XLA's threads otherwise

import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import bench_population  # noqa: E402  (metadata helpers: git commit, CPU model)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import qsn  # noqa: E402
from qsn.errors import NumericalInstabilityError  # noqa: E402
from qsn.learning.data import load_digits  # noqa: E402
from qsn.learning.train import VARIANTS, TrainConfig, train  # noqa: E402
from qsn.surrogate import fast_sigmoid  # noqa: E402

SEARCH_SPACE = {
    "lr": [1e-3, 3e-3, 1e-2, 3e-2],
    "hidden": [32, 64, 128, 256],
    "delta": [0.0, 0.1, 0.3, 1.0],
    "slope": [2.0, 5.0, 10.0, 25.0],
    "tau_m": [5.0, 10.0, 20.0],
}


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval of ``x`` (the interval collapses when every value is equal)."""
    x = np.asarray(x, np.float64)
    mean = float(x.mean())
    if len(x) < 2 or x.std() == 0:
        return mean, mean, mean
    low, high = scipy.stats.t.interval(0.95, len(x) - 1, loc=mean, scale=scipy.stats.sem(x))
    return mean, float(low), float(high)


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired comparison ``a - b`` over seeds: mean difference, its 95% t-interval and the paired t-test's p."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    mean, low, high = t_interval(diff)
    p = float(scipy.stats.ttest_rel(a, b).pvalue) if len(diff) > 1 and diff.std() > 0 else float("nan")
    return {"mean_diff": mean, "ci95": [low, high], "p": p}


# ----------------------------------------------------------------------------------------------------- bptt
def bench_bptt(args) -> tuple[list, list]:
    sizes = [128, 1024] if args.quick else [128, 1024, 8192]
    lengths = [100, 1000] if args.quick else [100, 1000, 4000]
    rows = []
    for n in sizes:
        for steps in lengths:
            for checkpoint in (None, True):
                s0 = qsn.init_state(qsn.NeuronParams(), n)
                x = jnp.linspace(0.5, 1.5, n, dtype=jnp.float32)

                def loss(w, checkpoint=checkpoint, steps=steps, s0=s0, x=x):
                    r = qsn.simulate(qsn.NeuronParams(delta=0.3, dt=0.5), s0, 15.0 * w * x, steps=steps,
                                     surrogate=fast_sigmoid(10.0), checkpoint=checkpoint, record=("p1",),
                                     neurons=slice(0, 8))
                    return jnp.sum(r.spike_count) + jnp.sum(r.p1)

                w = jnp.ones((n,), jnp.float32)
                forward = jax.jit(loss)
                both = jax.jit(jax.value_and_grad(loss))
                memory = both.lower(w).compile().memory_analysis()
                times = {}
                for name, fn in (("forward", forward), ("forward_backward", both)):
                    jax.block_until_ready(fn(w))  # warm-up and compile
                    best = np.inf
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        jax.block_until_ready(fn(w))
                        best = min(best, time.perf_counter() - t0)
                    times[name] = best
                row = {"neurons": n, "steps": steps, "checkpoint": bool(checkpoint),
                       "forward_s": times["forward"], "forward_backward_s": times["forward_backward"],
                       "forward_neuron_steps_per_s": n * steps / times["forward"],
                       "bptt_neuron_steps_per_s": n * steps / times["forward_backward"],
                       "backward_over_forward": times["forward_backward"] / times["forward"],
                       "temp_bytes": None if memory is None else int(memory.temp_size_in_bytes)}
                rows.append(row)
                print(row, flush=True)
    table = ["| n | T | checkpoint | forward (neuron-steps/s) | BPTT (neuron-steps/s) | BPTT/forward time | temp memory (MiB) |",
             "|---:|---:|:---:|---:|---:|---:|---:|"]
    for r in rows:
        mem = "-" if r["temp_bytes"] is None else f"{r['temp_bytes'] / 2**20:.1f}"
        table.append(f"| {r['neurons']} | {r['steps']} | {'yes' if r['checkpoint'] else 'no'} | "
                     f"{r['forward_neuron_steps_per_s']:.3g} | {r['bptt_neuron_steps_per_s']:.3g} | "
                     f"{r['backward_over_forward']:.1f} | {mem} |")
    return rows, table


# ------------------------------------------------------------------------------------------------- accuracy
def bench_accuracy(args) -> tuple[list, list]:
    base = TrainConfig(epochs=args.epochs) if args.epochs else TrainConfig()
    rows = []
    for seed in range(args.seeds):
        data = load_digits(seed)
        for name in VARIANTS:
            result = train(base.variant(name), data, seed=seed)
            rows.append({"variant": name, "seed": seed, "test_accuracy": result.test_accuracy,
                         "val_accuracy": result.val_accuracy, "seconds": result.seconds,
                         "history": result.history})
            print(name, seed, result.test_accuracy, f"{result.seconds:.1f} s", flush=True)
    acc = {name: np.array([r["test_accuracy"] for r in rows if r["variant"] == name]) for name in VARIANTS}
    sec = {name: np.array([r["seconds"] for r in rows if r["variant"] == name]) for name in VARIANTS}
    table = ["| variant | test accuracy, mean [95% CI] | min | time per run (s) | vs LIF: difference [95% CI], paired p |",
             "|---|---|---:|---:|---|"]
    summary = {}
    for name in VARIANTS:
        mean, low, high = t_interval(acc[name])
        cmp = paired(acc[name], acc["lif"]) if name != "lif" else None
        summary[name] = {"mean": mean, "ci95": [low, high], "min": float(acc[name].min()),
                         "seconds_mean": float(sec[name].mean()), "vs_lif": cmp}
        vs = "-" if cmp is None else f"{cmp['mean_diff']:+.4f} [{cmp['ci95'][0]:+.4f}, {cmp['ci95'][1]:+.4f}], p = {cmp['p']:.2f}"
        table.append(f"| {name} | {mean:.4f} [{low:.4f}, {high:.4f}] | {acc[name].min():.4f} | {sec[name].mean():.1f} | {vs} |")
    rows.append({"summary": summary})
    return rows, table


# --------------------------------------------------------------------------------------------------- search
def _config_of(params: dict, epochs: int) -> TrainConfig:
    model = dataclasses.replace(TrainConfig().model, **{**VARIANTS["qsn"], "hidden": int(params["hidden"]),
                                "delta": float(params["delta"]), "tau_m": float(params["tau_m"]),
                                "surrogate": fast_sigmoid(float(params["slope"]))})
    return TrainConfig(model=model, epochs=epochs, lr=float(params["lr"]))


def bench_search(args) -> tuple[list, list]:
    from qsn.learning.search import SearchSpace, anneal_search, random_search

    space = SearchSpace(SEARCH_SPACE)
    default = {"lr": 1e-2, "hidden": 128, "delta": 0.3, "slope": 10.0, "tau_m": 10.0}
    full = TrainConfig().epochs
    rows = []
    for seed in range(args.seeds):
        data = load_digits(seed)

        def objective(params, seed=seed, data=data):
            try:
                return 1.0 - train(_config_of(params, args.short_epochs), data, seed=seed).val_accuracy
            except NumericalInstabilityError:  # a diverged run: the search records it as the worst loss
                return float("nan")
            finally:
                # every configuration compiles its own executables; without this a 5-seed run exhausts
                # the process's memory maps ("LLVM compilation error: Cannot allocate memory")
                jax.clear_caches()

        row = {"seed": seed}
        for method, search in (("anneal", anneal_search), ("random", random_search)):
            kwargs = {"initial": args.initial} if method == "anneal" else {}
            t0 = time.perf_counter()
            res = search(objective, space, args.budget, seed=seed, **kwargs)
            searched = time.perf_counter() - t0
            final = train(_config_of(res.best_config, full), data, seed=seed)
            row[method] = {"best_config": res.best_config, "best_val_error": res.best_loss,
                           "trace": res.trace.tolist(), "search_seconds": searched,
                           "search_overhead_seconds": float(np.sum(res.search_seconds)),
                           "sources": list(res.sources), "test_accuracy": final.test_accuracy,
                           "val_accuracy": final.val_accuracy,
                           "total_seconds": searched + final.seconds}
            print(seed, method, res.best_config, f"val err {res.best_loss:.4f}", f"test {final.test_accuracy:.4f}",
                  f"{searched + final.seconds:.0f} s", flush=True)
        # plain Adam: the default configuration, trained for as many epochs as a search plus its final run
        epochs = args.budget * args.short_epochs + full
        t0 = time.perf_counter()
        plain = train(_config_of(default, epochs), data, seed=seed)
        best_epoch = int(np.argmax(plain.history["val_accuracy"]))
        reached = [s for s, v in zip(plain.history["seconds"], plain.history["val_accuracy"]) if v >= args.target]
        row["adam"] = {"config": default, "epochs": epochs, "test_accuracy_last": plain.test_accuracy,
                       "test_accuracy_at_best_val": plain.history["test_accuracy"][best_epoch],
                       "best_val_accuracy": plain.history["val_accuracy"][best_epoch],
                       "seconds_to_target_val": reached[0] if reached else None,
                       "total_seconds": time.perf_counter() - t0}
        print(seed, "adam", f"test {plain.history['test_accuracy'][best_epoch]:.4f}", flush=True)
        rows.append(row)
        if args.partial:  # keep finished seeds if a later one fails
            Path(args.partial).write_text(json.dumps(rows, indent=1, default=str))
    a = np.array([r["anneal"]["test_accuracy"] for r in rows])
    rnd = np.array([r["random"]["test_accuracy"] for r in rows])
    adam = np.array([r["adam"]["test_accuracy_at_best_val"] for r in rows])
    va = np.array([r["anneal"]["best_val_error"] for r in rows])
    vr = np.array([r["random"]["best_val_error"] for r in rows])
    ta = np.array([r["anneal"]["total_seconds"] for r in rows])
    tr = np.array([r["random"]["total_seconds"] for r in rows])
    tad = np.array([r["adam"]["total_seconds"] for r in rows])
    summary = {
        "test_accuracy": {k: t_interval(v) for k, v in (("anneal", a), ("random", rnd), ("adam", adam))},
        "anneal_minus_random_test": paired(a, rnd),
        "anneal_minus_adam_test": paired(a, adam),
        "anneal_minus_random_best_val_error": paired(va, vr),
        "seconds": {"anneal": t_interval(ta), "random": t_interval(tr), "adam": t_interval(tad)},
    }
    rows.append({"summary": summary})
    table = ["| method | test accuracy, mean [95% CI] | best val error (search) | wall time (s) |", "|---|---|---:|---:|"]
    for name, acc, val, sec in (("annealing-guided search", a, va, ta), ("random search", rnd, vr, tr),
                                ("plain Adam, default config", adam, None, tad)):
        m, lo, hi = t_interval(acc)
        v = "-" if val is None else f"{val.mean():.4f}"
        table.append(f"| {name} | {m:.4f} [{lo:.4f}, {hi:.4f}] | {v} | {sec.mean():.0f} |")
    for label, key in (("anneal − random, test accuracy", "anneal_minus_random_test"),
                       ("anneal − Adam, test accuracy", "anneal_minus_adam_test"),
                       ("anneal − random, best val error", "anneal_minus_random_best_val_error")):
        c = summary[key]
        table.append(f"| {label} | {c['mean_diff']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}], p = {c['p']:.2f} | | |")
    return rows, table


PARTS = {"bptt": bench_bptt, "accuracy": bench_accuracy, "search": bench_search}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=tuple(PARTS), required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="accuracy: epochs per run (default: TrainConfig's)")
    parser.add_argument("--budget", type=int, default=16, help="search: evaluations per search")
    parser.add_argument("--initial", type=int, default=6, help="search: random trials before the first fit")
    parser.add_argument("--short-epochs", type=int, default=10, help="search: epochs per evaluation")
    parser.add_argument("--target", type=float, default=0.95, help="search: validation accuracy target for Adam")
    parser.add_argument("--partial", default=None, help="search: write finished seeds' rows to this JSON as they finish")
    parser.add_argument("--repeats", type=int, default=3, help="bptt: timed repeats (best is kept)")
    parser.add_argument("--quick", action="store_true", help="bptt: small sizes only")
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/training-<part>-<platform>.json)")
    args = parser.parse_args(argv)
    device = jax.devices()[0]
    meta = bench_population.run_metadata(f"training-{args.part}", __file__, argv, device,
                                         optax=__import__("optax").__version__,
                                         equinox=__import__("equinox").__version__)
    meta["arguments"] = vars(args)
    t0 = time.perf_counter()
    rows, table = PARTS[args.part](args)
    meta["wall_seconds"] = time.perf_counter() - t0
    meta["table"] = table
    out = bench_population.write_results(args.out, f"training-{args.part}", device, meta, rows)
    print("\n".join(table))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
