"""The ``qsn`` command (also ``python -m qsn``).

Subcommands: ``demo`` (the embedded default population, a summary table and a PNG), ``simulate``
(a population from command-line parameters; ``--json`` for machine-readable output), ``network`` (a
reference network of ``qsn.networks.models``: rates and ISI CV per population), ``schedule`` (plan and
simulate a workload: :mod:`qsn.scheduler.cli`), ``train`` (a QSN classifier on a dataset:
:mod:`qsn.learning.cli`), ``info`` (versions and devices).

Progress goes to stderr (a bar, and one line per slow phase: network build, first compile), stdout
holds only the result; ``--json`` keeps stdout machine-readable and the phase lines quiet. Exit codes:
0 ok, 2 bad arguments (argparse, one line), 1 a qsn error (any :class:`qsn.errors.QSNError`, out of
memory, a missing optional extra), each as one ``qsn: error: ...`` line on stderr.

Compiled code is kept between processes in JAX's persistent compilation cache (see
:mod:`qsn.compile_cache`; ``QSN_COMPILE_CACHE=0`` turns it off), so the second run of a command skips
most of its compile time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``qsn demo: error: ... (see 'qsn demo --help')``), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        number = float(text)  # accepts 1e5
        value = int(number)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value != number or value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


_BACKENDS = ("jax", "native", "cupy")  # qsn.backends' built-in names (listed here: the parser imports no backend)


def _add_neuron_args(p: argparse.ArgumentParser, defaults) -> None:
    p.add_argument("--neurons", "-n", type=_positive_int, default=defaults.neurons, help="population size (default %(default)s)")
    p.add_argument("--duration", type=float, default=defaults.duration_ms, help="biological time in ms (default %(default)s)")
    p.add_argument("--mode", choices=("pure", "mixed"), default=defaults.mode, help="qubit representation (default %(default)s)")
    p.add_argument("--delta", type=float, default=defaults.delta, help="transverse field delta, 1/ms (default %(default)s)")
    p.add_argument("--t2", type=float, default=defaults.t2, help="coherence time, ms; inf for none (default %(default)s)")
    p.add_argument("--t1", type=float, default=defaults.t1, help="relaxation time, ms; inf for none (default %(default)s)")
    p.add_argument("--i-min", type=float, default=defaults.i_min, help="smallest input r_m*I, mV (default %(default)s)")
    p.add_argument("--i-max", type=float, default=defaults.i_max, help="largest input r_m*I, mV (default %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="PRNG seed for stochastic parts (default %(default)s)")
    p.add_argument("--backend", choices=_BACKENDS, default="jax",
                   help="population backend: jax (XLA), native (fused CPU kernel, needs g++) or cupy (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``qsn`` (exposed for tests and docs)."""
    from qsn.demo import DemoConfig

    defaults = DemoConfig()
    parser = _Parser(
        prog="qsn",
        description=(
            "qsn simulates populations of quantum spiking neurons: leaky integrate-and-fire membranes whose "
            "potential drives a qubit (H = a*sz + delta*sx, a = (V - v_rest)/(v_th - v_rest)), with collapse to "
            "|0> on each spike, optional T1/T2 decoherence (mixed mode) and quantum-jump spiking. "
            "Neurons get a linear spread of constant input currents from --i-min to --i-max."
        ),
        epilog="Examples:  qsn demo   |   qsn demo -n 1e6 --mode pure --out big.png   |   qsn simulate -n 1000 --json",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="simulate the default population (100k neurons, 1 s), print a summary, write a PNG figure",
        description="Simulate the embedded default population, print a summary table and save a figure "
        "(raster of a subset, a V trace, p_excited/coherence traces, f-I curve).",
    )
    _add_neuron_args(demo, defaults)
    demo.add_argument("--out", default="qsn-demo.png", help="PNG figure path (default %(default)s)")
    simulate = sub.add_parser(
        "simulate",
        help="simulate a population from these parameters and print rates and observables",
        description="Simulate a population with the given parameters and print its summary (no figure).",
    )
    _add_neuron_args(simulate, defaults)
    network = sub.add_parser(
        "network",
        help="run a reference network (cuba, coba, brunel, microcircuit) and print rates per population",
        description="Build and run one of qsn.networks.models; print build/run wall time, synapse count, and "
        "the mean rate and ISI CV of each population.",
    )
    network.add_argument("model", choices=("cuba", "coba", "brunel", "microcircuit"))
    network.add_argument("--neurons", "-n", type=_positive_int, default=None, help="size (cuba/coba/brunel; model default)")
    network.add_argument("--scale", type=float, default=0.1, help="microcircuit scale (default %(default)s)")
    network.add_argument("--regime", choices=("SR", "AI", "SI_fast", "SI_slow"), default="AI", help="brunel regime (default %(default)s)")
    network.add_argument("--duration", type=float, default=1000.0, help="biological time in ms (default %(default)s)")
    network.add_argument("--delta", type=float, default=0.0, help="transverse field delta, 1/ms (0: classical LIF)")
    network.add_argument("--mode", choices=("pure", "mixed"), default="pure", help="qubit representation (default %(default)s)")
    network.add_argument("--seed", type=int, default=0, help="PRNG seed of connectivity and inputs (default %(default)s)")
    network.add_argument("--backend", choices=("jax", "native"), default="jax",
                         help="network backend: jax (XLA) or native (whole-network CPU kernel, needs g++; "
                              "default %(default)s)")
    network.add_argument("--json", action="store_true", help="print the summary as JSON on stdout instead of a table")
    network.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    from qsn.scheduler.cli import add_parser as add_schedule

    add_schedule(sub)
    from qsn.learning.cli import add_parser as add_train

    add_train(sub)
    sub.add_parser("info", help="print qsn, JAX and device information as JSON")
    return parser


def _check_duration(duration: float, dt: float) -> None:
    """``--duration`` must be a finite time covering at least one step of ``dt`` ms."""
    from qsn.errors import ConfigurationError

    if not math.isfinite(duration) or round(duration / dt) < 1:
        raise ConfigurationError(
            f"Argument `--duration` must be a finite time in ms of at least one step (dt = {dt:g} ms), but is {duration:g}"
        )


def _check_out(path: str) -> None:
    """``--out`` must name a file matplotlib can write, in an existing, writable directory."""
    from pathlib import Path

    from matplotlib.backend_bases import FigureCanvasBase

    from qsn.errors import ConfigurationError

    out = Path(path)
    folder = out.parent
    if out.is_dir():
        raise ConfigurationError(f"Argument `--out` must be a file path, but {path!r} is a directory")
    if not folder.is_dir():
        raise ConfigurationError(f"Argument `--out` must be in an existing directory, but {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigurationError(f"Argument `--out` must be a writable path, but {path!r} is not writable")
    formats = FigureCanvasBase.get_supported_filetypes()
    if out.suffix and out.suffix[1:].lower() not in formats:
        raise ConfigurationError(
            f"Argument `--out` must end in one of {', '.join('.' + f for f in sorted(formats))}, but is {path!r}"
        )


def _network(args: argparse.Namespace) -> int:
    import time

    import jax
    import numpy as np

    from qsn.compile_cache import phase
    from qsn.networks import NeuronGroup, models

    common = dict(delta=args.delta, mode=args.mode)
    sized = {} if args.neurons is None else {"n": args.neurons}
    if args.model == "brunel":
        g, eta = models.BRUNEL_REGIMES[args.regime]
        net = models.brunel(g=g, eta=eta, **sized, **common)
    elif args.model == "microcircuit":
        net = models.microcircuit(args.scale, **common)
    else:
        net = getattr(models, args.model)(**sized, **common)
    dt = net.dt
    _check_duration(args.duration, dt)
    steps = int(round(args.duration / dt))
    show = not (args.no_progress or args.json)
    neurons = sum(grp.n for grp in net.groups.values() if isinstance(grp, NeuronGroup))
    t0 = time.perf_counter()
    with phase(f"building {args.model}: {neurons:,} neurons", enabled=show) as line:
        net.build(jax.random.key(args.seed))
        line.note = f"{sum(net.synapse_count.values()):,} synapses"
    built = time.perf_counter()
    # The first chunk runs on its own so the compile shows as a line of its own; the rest reuses that
    # compiled chunk (same length): the one Network.run picks with a progress bar.
    chunk = net.chunk_length(steps, progress=True)
    first = min(chunk, steps)
    with phase(f"compiling and running the first {first:,} of {steps:,} steps", enabled=show, compiles=True):
        net.run(first * dt, chunk_steps=chunk, backend=args.backend)
    if steps > first:
        net.run((steps - first) * dt, chunk_steps=chunk, progress=not args.no_progress, backend=args.backend)
    ran = time.perf_counter()
    populations = {}
    for name, mon in net.monitors.items():
        cv = mon.cv_isi()
        populations[mon.group.name if name == "spikes" else name] = {
            "neurons": mon.n,
            "rate_hz": float(mon.count().mean() / (args.duration * 1e-3)),
            "cv_isi": float(np.mean(cv)) if cv.size else None,
        }
    summary = {
        "model": args.model,
        "duration_ms": args.duration,
        "synapses": int(sum(net.synapse_count.values())),
        "build_s": built - t0,
        "run_s (incl. compile)": ran - built,
        "populations": populations,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.model}: {summary['synapses']:,} synapses, build {summary['build_s']:.1f} s, "
              f"run {summary['run_s (incl. compile)']:.1f} s for {args.duration:g} ms")
        print(f"{'population':<12}{'neurons':>9}{'rate (Hz)':>11}{'CV ISI':>8}")
        for name, row in populations.items():
            cv = "-" if row["cv_isi"] is None else f"{row['cv_isi']:.2f}"
            print(f"{name:<12}{row['neurons']:>9}{row['rate_hz']:>11.2f}{cv:>8}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from qsn.compile_cache import phase
    from qsn.demo import DemoConfig, plot_demo, run_demo, summary_table
    from qsn.params import NeuronParams
    from qsn.runtime import json_safe

    _check_duration(args.duration, float(NeuronParams().dt))
    if args.command == "demo":
        _check_out(args.out)
    cfg = DemoConfig(
        neurons=args.neurons, duration_ms=args.duration, mode=args.mode, delta=args.delta, t2=args.t2, t1=args.t1,
        i_min=args.i_min, i_max=args.i_max, seed=args.seed, backend=args.backend,
    )
    result, summary = run_demo(cfg, progress=not args.no_progress, phases=not (args.no_progress or args.json))
    if args.command == "demo":
        with phase(f"writing {args.out}", enabled=not (args.no_progress or args.json)):
            plot_demo(result, cfg, args.out)
        summary["figure"] = args.out
    if args.json:
        print(json.dumps(json_safe(summary), indent=2))
    else:
        print(summary_table(summary))
        if "figure" in summary:
            print(f"figure  {summary['figure']}")
    return 0


def _info() -> int:
    import jax

    import qsn
    from qsn import backends, kernels

    print(json.dumps({
        "qsn": qsn.__version__,
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "cupy_backend": kernels.available(),
        "backends": backends.status(),  # name -> "available" | "unavailable: <what is missing>"
    }, indent=2))
    return 0


def _out_of_memory(err: BaseException) -> bool:
    """A MemoryError (qsn's MemoryBudgetError preflight, NumPy) or XLA's RESOURCE_EXHAUSTED."""
    return isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and str(err).startswith("RESOURCE_EXHAUSTED"))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``qsn``; returns the process exit code."""
    from qsn.errors import QSNError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return _info()
        from qsn import compile_cache

        try:
            compile_cache.enable()
        except OSError as err:  # e.g. a read-only home: run without the cache rather than not at all
            print(f"qsn: warning: compile cache off ({err})", file=sys.stderr)
        if args.command == "network":
            return _network(args)
        if args.command == "schedule":
            from qsn.scheduler.cli import run as schedule

            return schedule(args)
        if args.command == "train":
            from qsn.learning.cli import run as train

            return train(args)
        return _run(args)
    except QSNError as err:  # before the MemoryError test: MemoryBudgetError is both, and says what fits
        print(f"qsn: error: {err}", file=sys.stderr)
        return 1
    except ImportError as err:  # an optional extra is missing (e.g. scikit-learn for `qsn train`): say which
        print(f"qsn: error: {err}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"qsn: error: out of memory: {first}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
