"""The demo behind ``qsn demo``: a large population with a spread of inputs, summarised and plotted."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qsn.compile_cache import phase
from qsn.observables import coherence, entropy, p_excited
from qsn.params import NeuronParams
from qsn.jax_backend import default_unroll
from qsn.result import SimulationResult
from qsn.simulate import simulate
from qsn.stepper import Stepper
from qsn.state import init_state

__all__ = ["DemoConfig", "run_demo", "plot_demo", "summary_table"]


@dataclass(frozen=True)
class DemoConfig:
    """What the demo simulates (the embedded default: 100k neurons, 1 s)."""

    neurons: int = 100_000
    duration_ms: float = 1000.0
    mode: str = "mixed"
    delta: float = 0.3  # 1/ms
    t2: float = 50.0  # ms
    t1: float = float("inf")  # ms
    i_min: float = 10.0  # r_m*I in mV; the threshold is crossed above v_th - v_rest = 15 mV
    i_max: float = 40.0
    watched: int = 200  # neurons recorded densely (raster, traces)
    seed: int = 0
    backend: str = "jax"  # a name from qsn.backends.names(): "native" runs the fused CPU kernel


def _currents(cfg: DemoConfig) -> np.ndarray:
    return np.linspace(cfg.i_min, cfg.i_max, cfg.neurons)


def run_demo(cfg: DemoConfig, progress: bool = True, phases: bool = False) -> tuple[SimulationResult, dict[str, Any]]:
    """Run the demo population; return the result and a summary dict (rates, observables, throughput).

    ``progress`` shows a bar during the timed run; ``phases`` writes one stderr line for the compile
    (the untimed one-chunk warm-up), saying whether it came from the persistent compile cache.
    """
    params = NeuronParams(delta=cfg.delta, t2=cfg.t2, t1=cfg.t1)
    state = init_state(params, cfg.neurons, mode=cfg.mode)
    current = jnp.asarray(_currents(cfg), jnp.float32)
    steps = int(round(cfg.duration_ms / float(params.dt)))
    watched = np.linspace(0, cfg.neurons - 1, min(cfg.watched, cfg.neurons)).astype(np.int64)
    # The key is only drawn from when the configuration is stochastic (pure mode with finite t1/t2).
    key = jax.random.key(cfg.seed)
    # Fix the chunk (~100 per run, for the progress bar) and the unroll the full run would pick, so that
    # a one-chunk warm-up compiles exactly the function the timed run uses.
    chunk = max(1, steps // 100)
    unroll = default_unroll(jax.devices()[0].platform, Stepper.build(params, cfg.mode, jnp.float32), cfg.neurons, steps)
    run = functools.partial(simulate, params, state, current, key=key, record=("spikes", "v", "p1", "coherence"),
                            neurons=watched, chunk_steps=chunk, unroll=unroll, backend=cfg.backend)
    with phase(f"compiling and running a first chunk of {chunk:,} steps", enabled=phases, compiles=True):
        jax.block_until_ready(run(steps=chunk).state)
    start = time.perf_counter()
    result = run(steps=steps, progress=progress)
    jax.block_until_ready(result.state)
    wall = time.perf_counter() - start
    rates = np.asarray(result.rates())
    final = result.state
    summary = {
        "neurons": cfg.neurons,
        "steps": steps,
        "dt_ms": float(params.dt),
        "mode": cfg.mode,
        "delta": cfg.delta,
        "t2_ms": cfg.t2,
        "wall_s": wall,
        "neuron_steps_per_s": cfg.neurons * steps / wall,
        "rate_mean_hz": float(rates.mean()),
        "rate_median_hz": float(np.median(rates)),
        "rate_max_hz": float(rates.max()),
        "fraction_active": float(np.mean(rates > 0)),
        "p_excited_mean": float(jnp.mean(p_excited(final))),
        "coherence_mean": float(jnp.mean(coherence(final))),
        "entropy_mean_bits": float(jnp.mean(entropy(final))),
        "device": str(jax.devices()[0]) if cfg.backend == "jax" else f"backend={cfg.backend!r}",
    }
    return result, summary


def summary_table(summary: dict[str, Any]) -> str:
    """The summary as an aligned two-column text table."""
    rows = [
        ("population", f"{summary['neurons']:,} neurons, {summary['mode']} mode, delta={summary['delta']}, t2={summary['t2_ms']} ms"),
        ("simulated", f"{summary['steps']:,} steps of {summary['dt_ms']} ms ({summary['steps'] * summary['dt_ms'] / 1000:g} s)"),
        ("firing rate", f"mean {summary['rate_mean_hz']:.2f} Hz, median {summary['rate_median_hz']:.2f} Hz, max {summary['rate_max_hz']:.1f} Hz"),
        ("active neurons", f"{100 * summary['fraction_active']:.1f} %"),
        ("<p_excited>", f"{summary['p_excited_mean']:.4f}"),
        ("<|rho01|>", f"{summary['coherence_mean']:.4f}"),
        ("<entropy>", f"{summary['entropy_mean_bits']:.4f} bits"),
        ("wall time", f"{summary['wall_s']:.2f} s on {summary['device']}"),
        ("throughput", f"{summary['neuron_steps_per_s']:.3g} neuron-steps/s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def plot_demo(result: SimulationResult, cfg: DemoConfig, path: str) -> None:
    """Save a 2x2 figure: raster, one V trace, p_excited/coherence traces, f-I curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    currents = _currents(cfg)
    watched = np.asarray(result.neurons)
    t = result.times
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    ax = axes[0, 0]
    steps_i, cols = np.nonzero(result.spikes)
    ax.scatter(t[steps_i], currents[watched][cols], s=1, c="k", marker="|")
    ax.set(xlabel="time (ms)", ylabel="input r_m*I (mV)", title=f"raster of {len(watched)} of {cfg.neurons:,} neurons")
    ax = axes[0, 1]
    j = int(np.searchsorted(currents[watched], 18.0))
    j = min(j, len(watched) - 1)
    ax.plot(t, result.v[:, j], lw=0.8)
    ax.set(xlabel="time (ms)", ylabel="V (mV)", title=f"membrane of neuron {watched[j]} (r_m*I = {currents[watched][j]:.1f} mV)")
    ax = axes[1, 0]
    ax.plot(t, result.p1[:, j], lw=0.8, label="p_excited = rho11")
    ax.plot(t, result.coherence[:, j], lw=0.8, label="coherence |rho01|")
    ax.set(xlabel="time (ms)", ylabel="probability / magnitude", title="qubit of the same neuron")
    ax.legend(loc="upper right")
    ax = axes[1, 1]
    rates = np.asarray(result.rates())
    bins = np.linspace(cfg.i_min, cfg.i_max, 61)
    which = np.clip(np.digitize(currents, bins) - 1, 0, len(bins) - 2)
    mean_rate = np.bincount(which, rates, len(bins) - 1) / np.maximum(np.bincount(which, None, len(bins) - 1), 1)
    ax.plot((bins[:-1] + bins[1:]) / 2, mean_rate, "o-", ms=3)
    ax.set(xlabel="input r_m*I (mV)", ylabel="rate (Hz)", title="f-I curve (all neurons, binned)")
    fig.suptitle(f"qsn demo: {cfg.mode} mode, delta = {cfg.delta} /ms, t2 = {cfg.t2} ms")
    fig.savefig(path, dpi=110)
    plt.close(fig)
