"""Service-size predictors: what a policy believes before a task runs.

Every predictor returns the predicted *work* of each task (N,) (seconds on a speed-1 worker); a
policy turns it into (N, W) service times with :func:`qsn.scheduler.service.durations`. All are
online and leak-free in arrival order: a task's prediction uses only its own observed features
(:meth:`Workload.observed`) and the true sizes of tasks that arrived before it.

* :func:`naive_work`: the user's estimate where given; else the mean true size of earlier tasks.
* :func:`learned_work`: an :class:`~qsn.scheduler.readout.OnlineReadout` trained prequentially on
  log work, from spike features (:func:`~qsn.scheduler.features.spike_features`) or raw features.

Using the true sizes of earlier *arrivals* assumes their sizes are known by the time the next batch is
predicted; in a live system they are known when those tasks finish, a little later. The readouts train
in batches of 64 arrivals, which bounds the look-ahead; the naive history mean has the same caveat.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import numpy as np
import optax

from qsn.errors import ConfigurationError
from qsn.scheduler.task import Workload

__all__ = ["history_mean", "naive_work", "learned_work", "log_work_targets"]

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


def naive_work(workload: Workload) -> np.ndarray:
    """The estimate where present, else the mean true work of earlier tasks (1.0 for the first task), (N,)."""
    fallback = history_mean(workload.work, prior=1.0)  # task 0 with no estimate: one work unit
    return np.where(np.isfinite(workload.estimate), workload.estimate, fallback)


def learned_work(workload: Workload, *, inputs: str = "spike", hidden: int = 0, seed: int = 0,
                 learning_rate: float = 3e-2, batch: int = 64, steps: int = 32, mode: str = "pure") -> np.ndarray:
    """Prequential prediction of each task's work from its observed features, (N,).

    Args:
        inputs: ``"spike"`` (QSN spike features of the observed columns) or ``"raw"`` (the columns themselves,
            with missing indicators: :func:`~qsn.scheduler.readout.LinearBaseline` when ``hidden = 0``).
        hidden: 0 = linear readout, else the width of one hidden layer.
        steps, mode: of the encoding population (spike inputs only).

    The spike encoder standardises features with a scaler fitted on the first ``WARMUP`` tasks (a
    warm-up window, stated so it is not mistaken for online learning); the readout itself is online.
    """
    from qsn.scheduler.features import fit_scaler, spike_features
    from qsn.scheduler.readout import LinearBaseline, OnlineReadout, prequential

    x = workload.observed()
    y = log_work_targets(workload)
    key = jax.random.key(seed)
    opt = _adam(float(learning_rate))
    if inputs == "spike":
        scaler = fit_scaler(x[: min(WARMUP, workload.n)])
        z = np.asarray(spike_features(x, scale=scaler, steps=steps, mode=mode, key=key).matrix)
        readout = OnlineReadout(z.shape[1], 1, hidden=hidden, optimizer=opt, key=key)
    elif inputs == "raw":
        z = x
        readout = (LinearBaseline(x.shape[1], 1, optimizer=opt, key=key) if hidden == 0 else
                   OnlineReadout(x.shape[1], 1, hidden=hidden, optimizer=opt, missing_indicators=True, key=key))
    else:
        raise ConfigurationError(f"Argument `inputs` must be 'spike' or 'raw', but is {inputs!r}")
    pred = np.asarray(prequential(readout, z, y, batch=batch))[:, 0]
    # the first batch is predicted by an untrained model: fall back to the history mean there
    first = np.arange(workload.n) < batch
    pred = np.where(first | ~np.isfinite(pred), np.log(np.maximum(history_mean(workload.work), 1e-9)), pred)
    return np.exp(np.clip(pred, -30.0, 30.0))
