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

The rule is written once (:func:`fusion_weights`, :func:`fused_value`, :func:`fusion_update`, NumPy or JAX):
:func:`fuse` scans it over rows whose labels are revealed in row order; the online
:class:`~qsn.scheduler.predictors.Fused` applies it at each *completion*, to the predictions made at that
task's arrival — the only order in which a dispatcher learns sizes.

**Fusion policy** (:func:`fusion_policy`): online dispatch from one global queue ordered by the online
fused prediction (shortest first, optional aging), or, for a batch, fused predicted work → (N, W)
service times → the annealing planner (:func:`~qsn.scheduler.planner.annealing_plan`) or EFT.
``planner="auto"`` anneals instances
that arrive as one batch (where the planner's energy is a makespan proxy and measurably beats greedy
EFT) and dispatches streams online (where our measurements show static plans — annealed or EFT —
losing to online dispatch, because they commit to workers on predicted sizes; see the benchmark
report). Every part can be switched off.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.scheduler.planner import PlannerConfig, annealing_plan, window_size
from qsn.scheduler.predict import learned_work, log_work_targets, naive_work
from qsn.scheduler.service import durations
from qsn.scheduler.task import Cluster, Workload

__all__ = ["FusionConfig", "FusionResult", "FusionState", "fuse", "fusion_init", "fusion_weights", "fused_value",
           "fusion_update", "fused_prediction", "fused_predictor", "fusion_policy"]


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


class FusionState(NamedTuple):
    """The fusion rule's state: per-source EMA squared errors, the fused prediction's, and γ."""

    e: Any  # (K,) EMA squared error of each source (log-work units²)
    ef: Any  # () EMA squared error of the fused prediction
    gamma: Any  # () sharpening exponent


def fusion_init(k: int, xp: Any = np) -> FusionState:
    """The initial state: every error 1, γ = 1 (equal weights at first)."""
    return FusionState(xp.ones(k), xp.ones(()), xp.ones(()))


def fusion_weights(state: FusionState, p: Any, adaptive: bool, xp: Any = np) -> Any:
    """Weights (K,) for source predictions ``p`` (K,) (NaN = none, weight 0): ``∝ e^(−γ)`` as a softmax of
    ``−γ log e`` (no overflow when an error average is tiny), or equal when not ``adaptive``."""
    present = xp.isfinite(p)
    if adaptive:
        logits = xp.where(present, -state.gamma * xp.log(state.e + 1e-30), -xp.inf)
        z = xp.exp(logits - xp.max(logits))
        return z / xp.sum(z)
    return present.astype(p.dtype) / present.sum().astype(p.dtype)


def fused_value(w: Any, p: Any, xp: Any = np) -> Any:
    """The fused log-work prediction ``Σ_k w_k p_k`` (missing sources carry weight 0)."""
    return xp.sum(w * xp.where(xp.isfinite(p), p, 0.0))


def fusion_update(state: FusionState, p: Any, fused: Any, target: Any, *, alpha: float, eta: float,
                  gamma_max: float, adaptive: bool, xp: Any = np) -> tuple[FusionState, Any]:
    """One step of the rule once ``target`` (the true log work) is revealed, for the predictions ``p`` (K,) and
    ``fused`` made before it; returns the new state and the synergy. NumPy or JAX (``xp``): the batch
    :func:`fuse` scans it, the online :class:`~qsn.scheduler.predictors.Fused` calls it per completion."""
    present = xp.isfinite(p)
    err = xp.where(present, (p - target) ** 2, state.e)
    e_new = (1 - alpha) * state.e + alpha * err
    ef_new = (1 - alpha) * state.ef + alpha * (fused - target) ** 2
    synergy = 1.0 - ef_new / xp.maximum(xp.min(e_new), 1e-30)
    gamma_new = xp.clip(state.gamma * (1.0 - eta * synergy), 1.0, gamma_max) if adaptive else state.gamma
    return FusionState(e_new, ef_new, gamma_new), synergy


@partial(jax.jit, static_argnames=("adaptive",))
def _fuse_scan(preds, y, alpha, eta, gamma_max, adaptive: bool):
    def body(state, xs):
        p, t = xs
        w = fusion_weights(state, p, adaptive, jnp)
        fused = fused_value(w, p, jnp)
        new, synergy = fusion_update(state, p, fused, t, alpha=alpha, eta=eta, gamma_max=gamma_max,
                                     adaptive=adaptive, xp=jnp)
        return new, (fused, w, state.e, state.ef, state.gamma, synergy)

    k = preds.shape[1]
    init = FusionState(jnp.ones(k, preds.dtype), jnp.ones((), preds.dtype), jnp.ones((), preds.dtype))
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
    """Offline reference: the enabled sources' offline predictions (:func:`~qsn.scheduler.predict.naive_work`,
    :func:`~qsn.scheduler.predict.learned_work`) fused with labels revealed in arrival order; ``result.fused`` is
    (N,). It reads sizes of unfinished tasks, so it measures predictors and never schedules: the fusion policy
    uses :func:`fused_predictor`, which learns from completions only."""
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


def fused_predictor(config: FusionConfig = FusionConfig(), *, seed: int = 0):
    """The online :class:`~qsn.scheduler.predictors.Fused` predictor of the enabled sources (naive, spike, raw)."""
    from qsn.scheduler.predictors import Estimate, Fused, Readout

    sources = {}
    if config.naive:
        sources["naive"] = Estimate()
    if config.spike:
        sources["spike"] = Readout("spike", hidden=config.hidden, seed=seed)
    if config.raw:
        sources["raw"] = Readout("raw", hidden=config.hidden, seed=seed)
    if not sources:
        raise ConfigurationError("FusionConfig switches every source off; enable naive, spike or raw")
    return Fused(sources, alpha=config.alpha, eta=config.eta, gamma_max=config.gamma_max, adaptive=config.adaptive)


def fusion_policy(workload: Workload, cluster: Cluster, *, seed: int = 0, config: FusionConfig = FusionConfig(),
                  planner: PlannerConfig = PlannerConfig(), aging: float = 0.0):
    """The fusion policy on ``workload``: returns ``(policy, predictor)``.

    ``policy`` is a :class:`~qsn.scheduler.policy.ShortestFirst` on the online fused predictor (``planner``
    ``"online"``, or ``"auto"`` on a stream), or a static :class:`Plan` (``"anneal"``, ``"eft"``, or ``"auto"``
    on an instance that arrives as one batch) made on the fused predictions available before any task has
    finished — with no completion yet the readouts have no prediction, so these are the estimates (or the
    prior). ``predictor`` is the :class:`~qsn.scheduler.predictors.Fused` object; after the run its
    ``trace()`` is the per-task :class:`FusionResult`. ``aging``: of the online queue (see ShortestFirst).
    """
    from qsn.scheduler.policy import ShortestFirst, observe
    from qsn.scheduler.predict import prior_work

    if config.planner not in PLANNERS:
        raise ConfigurationError(f"FusionConfig.planner must be 'anneal', 'eft', 'online' or 'auto', but is {config.planner!r}")
    predictor = fused_predictor(config, seed=seed)
    kind = config.planner
    if kind == "auto":  # decided on the sizes known before the run
        eligible = cluster.eligible(workload)
        known = durations(workload, cluster, work=prior_work(workload))
        k = window_size(workload.arrival, np.where(eligible, known, np.inf), cluster.slots, planner)
        kind = "anneal" if k >= workload.n else "online"
    if kind == "online":
        return ShortestFirst(predictor, aging=aging), predictor
    predictor.bind(observe(workload, cluster))
    work = np.exp([predictor.predict(t, float(workload.arrival[t])) for t in range(workload.n)])
    predicted = durations(workload, cluster, work=work)
    if kind == "anneal":
        return annealing_plan(workload, cluster, predicted, seed=seed, config=planner), predictor
    from qsn.scheduler.policies import eft

    return eft(workload, cluster, predicted, seed=seed), predictor
