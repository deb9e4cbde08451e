"""Adaptive fusion of size predictors, and the fusion policy that plans on the fused prediction.

**Fusion rule** (the seed paper's "EMA and synergy" rule, made explicit so it can be measured). For
sources ``k`` predicting log work ``ŷ_k``, after each task's true log work ``y`` is revealed:

    e_k   ← (1 − α) e_k + α (ŷ_k − y)²                (EMA of each source's squared error)
    w_k   ∝ e_k^(−γ)                                   (weights; a missing prediction gets weight 0)
    ŷ     = Σ_k w_k ŷ_k                                (the fused prediction, made *before* y is seen)
    e_f   ← (1 − α) e_f + α (ŷ − y)²
    s     = 1 − e_f / min_k e_k                        (synergy: > 0 when fusing beats the best source)
    γ     ← clip(γ · (1 − η s), 1, γ_max)              (no synergy → sharpen toward the best source)

``γ = 1`` is inverse-MSE weighting; large ``γ`` approaches picking the best source. ``adaptive=False``
freezes equal weights (the ablation). Initial state: every ``e_k = e_f = 1`` and ``γ = 1`` (log-work
units, so the first predictions are weighted equally). Weights are computed as a softmax of
``−γ log e_k`` so a near-perfect source cannot overflow them.

**Fusion policy** (:func:`fusion_policy`): fused predicted work → (N, W) service times → the
annealing planner (:func:`~qsn.scheduler.planner.annealing_plan`), EFT, or online dispatch from one
global queue ordered by the fused prediction (shortest first). ``planner="auto"`` anneals instances
that arrive as one batch (where the planner's energy is a makespan proxy and measurably beats greedy
EFT) and dispatches streams online (where our measurements show static plans — annealed or EFT —
losing to online dispatch, because they commit to workers on predicted sizes; see the benchmark
report). Every part can be switched off.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.scheduler.planner import PlannerConfig, annealing_plan, window_size
from qsn.scheduler.predict import learned_work, log_work_targets, naive_work
from qsn.scheduler.service import durations
from qsn.scheduler.simulator import Plan
from qsn.scheduler.task import Cluster, Workload

__all__ = ["FusionConfig", "FusionResult", "fuse", "fused_prediction", "fusion_policy"]


class FusionConfig(NamedTuple):
    """Which sources and which planner the fusion policy uses."""

    naive: bool = True  # the user's estimate / history mean
    spike: bool = True  # spike-feature readout
    raw: bool = True  # linear readout on raw features
    adaptive: bool = True  # EMA/synergy weights (False: equal weights)
    planner: str = "auto"  # "anneal", "eft", "online" (global queue, shortest fused prediction first) or "auto"
    alpha: float = 0.05  # EMA factor
    eta: float = 0.5  # synergy step
    gamma_max: float = 8.0
    hidden: int = 0  # readout hidden width (0 = linear)


class FusionResult(NamedTuple):
    """Per-task trace of the fusion (N rows, K sources)."""

    fused: np.ndarray  # (N,) fused log-work prediction
    weights: np.ndarray  # (N, K) weights used for each task
    errors: np.ndarray  # (N, K) EMA squared error of each source before each task
    fused_error: np.ndarray  # (N,) EMA squared error of the fused prediction before each task
    gamma: np.ndarray  # (N,)
    synergy: np.ndarray  # (N,)
    names: tuple[str, ...]
    predictions: np.ndarray  # (N, K) each source's log-work prediction (NaN = none), as fused


@partial(jax.jit, static_argnames=("adaptive",))
def _fuse_scan(preds, y, alpha, eta, gamma_max, adaptive: bool):
    k = preds.shape[1]

    def body(carry, xs):
        e, ef, gamma = carry
        p, t = xs
        present = jnp.isfinite(p)
        if adaptive:  # w ∝ e^(−γ) as a softmax of −γ log e: no overflow when an error average is tiny
            logits = jnp.where(present, -gamma * jnp.log(e + 1e-30), -jnp.inf)
            w = jax.nn.softmax(logits)
        else:
            w = present.astype(p.dtype) / present.sum().astype(p.dtype)
        fused = jnp.sum(w * jnp.where(present, p, 0.0))
        err = jnp.where(present, (p - t) ** 2, e)
        e_new = (1 - alpha) * e + alpha * err
        ef_new = (1 - alpha) * ef + alpha * (fused - t) ** 2
        synergy = 1.0 - ef_new / jnp.maximum(jnp.min(e_new), 1e-30)
        gamma_new = jnp.clip(gamma * (1.0 - eta * synergy), 1.0, gamma_max) if adaptive else gamma
        return (e_new, ef_new, gamma_new), (fused, w, e, ef, gamma, synergy)

    init = (jnp.ones(k, preds.dtype), jnp.ones((), preds.dtype), jnp.ones((), preds.dtype))
    _, out = jax.lax.scan(body, init, (preds, y))
    return out


def fuse(predictions: dict[str, np.ndarray], target: np.ndarray, *, alpha: float = 0.05, eta: float = 0.5,
         gamma_max: float = 8.0, adaptive: bool = True) -> FusionResult:
    """Fuse log-work predictions online (see the module docstring).

    Args:
        predictions: source name → (N,) predicted log work (NaN = this source has no prediction).
        target: (N,) true log work, revealed after each task's prediction.
    """
    if not predictions:
        raise ConfigurationError("Argument `predictions` must name at least one source, but is empty")
    names = tuple(predictions)
    preds = np.stack([np.asarray(predictions[k], np.float64) for k in names], axis=1)
    target = np.asarray(target, np.float64).reshape(-1)
    if preds.shape[0] != target.shape[0]:
        raise ConfigurationError(f"Predictions have {preds.shape[0]} rows but `target` has {target.shape[0]}")
    if not 0 < alpha <= 1:
        raise ConfigurationError(f"Argument `alpha` must be in (0, 1], but is {alpha}")
    if not np.isfinite(target).all():
        i = int(np.flatnonzero(~np.isfinite(target))[0])
        raise ConfigurationError(f"Argument `target` must be finite, but target[{i}] = {target[i]}")
    empty = ~np.isfinite(preds).any(axis=1)
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise ConfigurationError(f"Row {i} has no finite prediction from any source {list(names)}")
    fused, w, e, ef, g, s = _fuse_scan(jnp.asarray(preds, jnp.float32), jnp.asarray(target, jnp.float32),
                                       alpha, eta, gamma_max, adaptive)
    return FusionResult(np.asarray(fused, np.float64), np.asarray(w), np.asarray(e), np.asarray(ef), np.asarray(g),
                        np.asarray(s), names, preds)


PLANNERS = ("auto", "anneal", "eft", "online")


def fused_prediction(workload: Workload, *, seed: int = 0, config: FusionConfig = FusionConfig()) -> FusionResult:
    """The enabled sources' log-work predictions (naive, spike, raw), fused online; ``result.fused`` is (N,)."""
    sources: dict[str, np.ndarray] = {}
    if config.naive:
        naive = naive_work(workload)
        # only the user's own estimate counts as the naive source; the history mean is a fallback of it
        sources["naive"] = np.log(np.maximum(naive, 1e-9))
    if config.spike:
        sources["spike"] = np.log(learned_work(workload, inputs="spike", hidden=config.hidden, seed=seed))
    if config.raw:
        sources["raw"] = np.log(learned_work(workload, inputs="raw", hidden=config.hidden, seed=seed))
    if not sources:
        raise ConfigurationError("FusionConfig switches every source off; enable naive, spike or raw")
    return fuse(sources, log_work_targets(workload)[:, 0], alpha=config.alpha, eta=config.eta,
                gamma_max=config.gamma_max, adaptive=config.adaptive)


def fusion_policy(workload: Workload, cluster: Cluster, *, seed: int = 0, config: FusionConfig = FusionConfig(),
                  planner: PlannerConfig = PlannerConfig()) -> tuple[Plan, FusionResult]:
    """Plan with fused size predictions; returns the plan and the fusion trace."""
    if config.planner not in PLANNERS:
        raise ConfigurationError(f"FusionConfig.planner must be 'anneal', 'eft', 'online' or 'auto', but is {config.planner!r}")
    result = fused_prediction(workload, seed=seed, config=config)
    predicted = durations(workload, cluster, work=np.exp(result.fused))
    kind = config.planner
    if kind == "auto":
        eligible = cluster.eligible(workload)
        k = window_size(workload.arrival, np.where(eligible, predicted, np.inf), cluster.slots, planner)
        kind = "anneal" if k >= workload.n else "online"
    if kind == "anneal":
        plan = annealing_plan(workload, cluster, predicted, seed=seed, config=planner)
    elif kind == "online":
        plan = Plan(np.full(workload.n, -1, np.int64), np.exp(result.fused))
    else:
        from qsn.scheduler.policies import eft

        plan = eft(workload, cluster, predicted, seed=seed)
    return plan, result
