"""Service-size predictions as arrays: the offline references, and what a static plan may know.

Every function returns the predicted *work* of each task (N,) (seconds on a speed-1 worker); a
policy turns it into (N, W) service times with :func:`qsn.scheduler.service.durations`.

* :func:`prior_work`: what is known before any task has finished — the user's estimate, else a prior.
  Static plans (list scheduling, the annealer, CP-SAT) are made before the run, so this is all they get.
* :func:`naive_work` and :func:`learned_work` are **offline references** for measuring predictors, not
  inputs to scheduling: they reveal each task's true size as soon as it *arrives* (the history mean;
  readouts trained prequentially in batches of arrivals), which no dispatcher can do — a size is known
  only when its task finishes. Scheduling policies predict online from completions instead
  (:mod:`qsn.scheduler.predictors`, run by the simulator through :mod:`qsn.scheduler.policy`).

:func:`readout_inputs` builds the input matrix and the readout that both the offline reference and the
online :class:`~qsn.scheduler.predictors.Readout` use.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import numpy as np
import optax

from qsn.errors import ConfigurationError
from qsn.scheduler.task import Workload

__all__ = ["history_mean", "estimate_or", "prior_work", "naive_work", "learned_work", "log_work_targets",
           "readout_inputs", "PRIOR_WORK"]

PRIOR_WORK = 1.0  # work units assumed for a task with no estimate before any task has finished
WARMUP = 256  # tasks used to fit the spike encoder's scaler (the only non-online step; see learned_work)


@lru_cache(maxsize=16)
def _adam(learning_rate: float):
    # one optimizer object per rate: the readout's jit cache keys on it, so a fresh one would recompile
    return optax.adam(learning_rate)


def history_mean(y: np.ndarray, prior: float = 1.0) -> np.ndarray:
    """Mean of ``y[:i]`` for each ``i`` (``prior`` at ``i = 0``), (N,) → (N,)."""
    y = np.asarray(y, np.float64)
    c = np.concatenate([[0.0], np.cumsum(y)[:-1]])
    k = np.arange(y.size, dtype=np.float64)
    return np.where(k > 0, c / np.maximum(k, 1), prior)


def log_work_targets(workload: Workload) -> np.ndarray:
    """Regression target of the learned predictors: log of the true work, (N, 1)."""
    return np.log(np.maximum(workload.work, 1e-9))[:, None]


def estimate_or(estimate, fallback) -> np.ndarray:
    """The user's estimate where it is finite, else ``fallback`` (broadcast); the one rule every naive predictor uses.

    Example:
        >>> estimate_or(np.array([2.0, np.nan]), 5.0).tolist()
        [2.0, 5.0]
    """
    estimate = np.asarray(estimate, np.float64)
    return np.where(np.isfinite(estimate), estimate, fallback)


def prior_work(workload: Workload, prior: float = PRIOR_WORK) -> np.ndarray:
    """What a plan made before any task finishes can know: the estimate, else ``prior`` work units, (N,).

    Example:
        >>> from qsn.scheduler import Task, Workload
        >>> prior_work(Workload.from_tasks([Task(work=3.0, estimate=2.5), Task(work=9.0)])).tolist()
        [2.5, 1.0]
    """
    return estimate_or(workload.estimate, prior)


def naive_work(workload: Workload) -> np.ndarray:
    """Offline reference: the estimate where present, else the mean true work of earlier *arrivals* (1.0 for the
    first task), (N,). It reads sizes of tasks that have not finished: never a scheduling input."""
    return estimate_or(workload.estimate, history_mean(workload.work, prior=PRIOR_WORK))


def readout_inputs(features: np.ndarray, *, inputs: str = "spike", hidden: int = 0, seed: int = 0,
                   learning_rate: float = 3e-2, steps: int = 32, mode: str = "pure"):
    """The input matrix ``z`` (N, K) and an untrained readout for observed ``features`` (N, F).

    ``inputs="spike"``: spike features of the columns (the encoder's robust scaler fitted on the first
    ``WARMUP`` rows' *features*, a warm-up window on inputs, never on sizes); ``"raw"``: the columns
    themselves (:func:`~qsn.scheduler.readout.LinearBaseline` when ``hidden = 0``).
    Returns ``(z, readout)``.
    """
    from qsn.scheduler.features import fit_scaler, spike_features
    from qsn.scheduler.readout import LinearBaseline, OnlineReadout

    x = np.asarray(features, np.float64)
    key = jax.random.key(seed)
    opt = _adam(float(learning_rate))
    if inputs == "spike":
        scaler = fit_scaler(x[: min(WARMUP, x.shape[0])])
        z = np.asarray(spike_features(x, scale=scaler, steps=steps, mode=mode, key=key).matrix)
        return z, OnlineReadout(z.shape[1], 1, hidden=hidden, optimizer=opt, key=key)
    if inputs == "raw":
        return x, (LinearBaseline(x.shape[1], 1, optimizer=opt, key=key) if hidden == 0 else
                   OnlineReadout(x.shape[1], 1, hidden=hidden, optimizer=opt, missing_indicators=True, key=key))
    raise ConfigurationError(f"Argument `inputs` must be 'spike' or 'raw', but is {inputs!r}")


def learned_work(workload: Workload, *, inputs: str = "spike", hidden: int = 0, seed: int = 0,
                 learning_rate: float = 3e-2, batch: int = 64, steps: int = 32, mode: str = "pure") -> np.ndarray:
    """Offline reference: prequential prediction of each task's work from its observed features, (N,).

    Labels are revealed in arrival order (row ``i`` is predicted from rows ``< batch * (i // batch)``), so a
    prediction may use sizes of tasks that had not finished: use it to measure a predictor, not to schedule.

    Args:
        inputs, hidden, learning_rate, steps, mode: as in :func:`readout_inputs`.
        batch: rows per online step.
    """
    from qsn.scheduler.readout import prequential

    z, readout = readout_inputs(workload.observed(), inputs=inputs, hidden=hidden, seed=seed,
                                learning_rate=learning_rate, steps=steps, mode=mode)
    pred = np.asarray(prequential(readout, z, log_work_targets(workload), batch=batch))[:, 0]
    # the first batch is predicted by an untrained model: fall back to the history mean there
    first = np.arange(workload.n) < batch
    pred = np.where(first | ~np.isfinite(pred), np.log(np.maximum(history_mean(workload.work), 1e-9)), pred)
    return np.exp(np.clip(pred, -30.0, 30.0))
