"""``qsn train digits``: train a QSN classifier on scikit-learn's digits and print its accuracy.

Examples::

    qsn train digits                                  # Δ = 0.3, p1 read out beside the spikes, seed 0
    qsn train digits --variant lif --seeds 5 --json   # classical LIF, five seeds, mean and 95% CI
    qsn train digits --variant jump --coding latency --epochs 80 --hidden 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json

__all__ = ["add_parser", "run"]


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand on an ``argparse`` subparsers object."""
    from qsn.learning.data import CODINGS
    from qsn.learning.train import VARIANTS, TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a quantum spiking network on a dataset (digits) with surrogate gradients and optax",
        description="Train an input -> QSN hidden layer -> linear readout classifier with BPTT through the "
        "engine's step (surrogate gradients, Adam) and report train loss and validation/test accuracy. "
        "Variants: lif (delta = 0, classical), qsn (delta > 0, p_excited read out beside the spikes), "
        "jump (delta > 0 with quantum-jump spiking).",
    )
    p.add_argument("dataset", choices=("digits",), help="scikit-learn's 8x8 digits (1,797 images, bundled)")
    p.add_argument("--variant", choices=tuple(VARIANTS), default="qsn", help="neuron variant (default %(default)s)")
    p.add_argument("--coding", choices=CODINGS, default=d.coding, help="input coding (default %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training set (default %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="time steps per example (default %(default)s)")
    p.add_argument("--hidden", type=int, default=d.model.hidden, help="hidden neurons (default %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default %(default)s)")
    p.add_argument("--batch", type=int, default=d.batch, help="mini-batch size (default %(default)s)")
    p.add_argument("--delta", type=float, default=None, help="override the variant's delta, 1/ms")
    p.add_argument("--seeds", type=int, default=1, help="train seeds 0..N-1 and report mean and 95%% CI (default 1)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def run(args: argparse.Namespace) -> int:
    """Execute ``qsn train``; returns the exit code."""
    import numpy as np
    import scipy.stats

    from qsn.errors import ConfigurationError
    from qsn.learning.train import TrainConfig, train
    from qsn.runtime import json_safe

    if args.seeds < 1:
        raise ConfigurationError(f"Argument `--seeds` must be >= 1, but is {args.seeds}")
    overrides = {"hidden": args.hidden} | ({} if args.delta is None else {"delta": args.delta})
    base = TrainConfig(coding=args.coding, epochs=args.epochs, steps=args.steps, lr=args.lr, batch=args.batch)
    config = base.variant(args.variant, **overrides)
    runs = []
    for seed in range(args.seeds):
        result = train(config, seed=seed, progress=not args.no_progress)
        runs.append({"seed": seed, "test_accuracy": result.test_accuracy, "val_accuracy": result.val_accuracy,
                     "seconds": result.seconds, "final_loss": result.history["loss"][-1]})
    acc = np.array([r["test_accuracy"] for r in runs])
    mean = float(acc.mean())
    if len(acc) > 1 and acc.std() > 0:
        low, high = scipy.stats.t.interval(0.95, len(acc) - 1, loc=mean, scale=scipy.stats.sem(acc))
    else:
        low = high = None
    summary = {
        "dataset": args.dataset,
        "variant": args.variant,
        "config": {**dataclasses.asdict(config), "model": {**dataclasses.asdict(config.model),
                                                            "surrogate": dataclasses.asdict(config.model.surrogate)}},
        "test_accuracy_mean": mean,
        "test_accuracy_ci95": [low, high],
        "runs": runs,
    }
    if args.json:
        print(json.dumps(json_safe(summary), indent=2))
        return 0
    print(f"{args.dataset}, variant {args.variant}: {config.model.hidden} hidden QSNs, {config.steps} steps, "
          f"{args.coding} coding, {config.epochs} epochs")
    print(f"{'seed':>4}{'test acc':>10}{'val acc':>9}{'loss':>8}{'time (s)':>10}")
    for r in runs:
        print(f"{r['seed']:>4}{r['test_accuracy']:>10.4f}{r['val_accuracy']:>9.4f}{r['final_loss']:>8.3f}{r['seconds']:>10.1f}")
    ci = "" if low is None else f"  (95% CI {low:.4f} - {high:.4f})"
    print(f"mean test accuracy {mean:.4f}{ci}")
    return 0
