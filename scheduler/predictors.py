"""Online size predictors: a task's log work predicted when it becomes ready, learned from completions only.

A :class:`SizePredictor` is bound to the :class:`~qsn.scheduler.policy.Observed` tasks of a run, asked
``predict(task, now)`` (natural log of the work, in work units = seconds on a speed-1 worker; NaN = no
prediction yet) when the task becomes ready, and told ``learn(task, log_work, now)`` when the task
*finishes*, with its measured work (runtime × the worker's effective speed). Nothing else reaches it: the
true size of a task that has not finished is never seen, which ``tests/scheduler/test_policy.py`` checks
by perturbing those sizes and comparing every decision.

* :class:`Estimate` — the user's estimate, else the mean measured work of finished tasks (a prior before any);
* :class:`PromptLength` — LLM requests: the service of the prompt with a fixed, assumed output length
  (orders requests by prompt length; the output length is unknown at arrival);
* :class:`Readout` — an :class:`~qsn.scheduler.readout.OnlineReadout` on spike or raw features, one optimizer
  step per ``batch`` completions; no prediction before its first step;
* :class:`BinnedMean` — nonlinear and classical: the mean measured work of finished tasks in the same quantile
  bin of one observed feature (prompt length for LLM requests), bins refitted every ``refit`` completions;
* :class:`Boosted` — scikit-learn's ``HistGradientBoostingRegressor`` (Poisson loss: a conditional mean) on all
  observed features of the finished tasks, refitted every ``refit`` completions (needs ``qsn[learn]``);
* :class:`Fused` — several predictors fused by the EMA/synergy rule of :mod:`qsn.scheduler.fusion`, the
  errors updated at each completion with the predictions made at that task's arrival;
* :class:`Oracle` — the TRUE sizes, given explicitly: a bound for comparison, not a policy.

Example:
    >>> from qsn.scheduler import workloads
    >>> from qsn.scheduler.policy import observe
    >>> wl, cl = workloads.llm_inference(100, 4, seed=0)
    >>> est = Estimate(); est.bind(observe(wl, cl))
    >>> float(np.exp(est.predict(0, 0.0)))          # no estimate, nothing finished: the prior
    1.0
    >>> est.learn(0, np.log(4.0), 1.0); float(np.exp(est.predict(1, 1.0)))
    4.0
"""

from __future__ import annotations

import abc
import math
from typing import Mapping

import numpy as np

from qsn.errors import BackendUnavailableError, ConfigurationError, InvalidInputError
from qsn.scheduler.fusion import FusionResult, fused_value, fusion_init, fusion_update, fusion_weights
from qsn.scheduler.policy import Observed
from qsn.scheduler.predict import PRIOR_WORK, estimate_or, readout_inputs
from qsn.scheduler.service import llm_work
from qsn.scheduler.task import OBSERVED_FEATURES

__all__ = ["SizePredictor", "Estimate", "PromptLength", "BinnedMean", "Boosted", "Readout", "Fused", "Oracle",
           "TYPICAL_OUTPUT_TOKENS"]

# Median GeneratedTokens of the Azure LLM conversation trace 2023 (docs/scheduler.md, Workloads and traces): the output length
# PromptLength assumes for every request. A fixed constant, not learned: any constant gives the same order.
TYPICAL_OUTPUT_TOKENS = 129


def _log(work) -> np.ndarray:
    return np.log(np.maximum(work, 1e-9))


class SizePredictor(abc.ABC):
    """Predicts log work at readiness; learns only from finished tasks' measured work (see the module docstring)."""

    name: str = "size"

    def bind(self, tasks: Observed) -> None:
        """Reset for a run on ``tasks``. Subclasses that override it call ``super().bind``."""
        self.tasks = tasks

    @abc.abstractmethod
    def predict(self, task: int, now: float) -> float:
        """Log work of ``task`` (ready at ``now``); NaN = no prediction."""

    def learn(self, task: int, log_work: float, now: float) -> None:
        """``task`` finished at ``now`` with measured log work ``log_work``."""


class _MeanWork:
    """Running mean of measured work (work units), ``prior`` before the first."""

    def __init__(self, prior: float) -> None:
        self.total, self.count, self.prior = 0.0, 0, prior

    def add(self, log_work: float) -> None:
        self.total += math.exp(log_work)
        self.count += 1

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else self.prior


class Estimate(SizePredictor):
    """The user's estimate where given, else the mean measured work of the tasks finished so far (``prior``
    work units before any); :func:`~qsn.scheduler.predict.prior_work` is its value before the first completion."""

    name = "estimate"

    def __init__(self, prior: float = PRIOR_WORK) -> None:
        if not (np.isfinite(prior) and prior > 0):
            raise ConfigurationError(f"Argument `prior` must be a finite number > 0, but is {prior!r}")
        self.prior = float(prior)

    def bind(self, tasks: Observed) -> None:
        super().bind(tasks)
        self._mean = _MeanWork(self.prior)
        self._given = np.isfinite(tasks.estimate)
        self._log_estimate = _log(estimate_or(tasks.estimate, self.prior))

    def predict(self, task: int, now: float) -> float:
        if self._given[task]:
            return float(self._log_estimate[task])
        return math.log(max(self._mean.value, 1e-9))

    def learn(self, task: int, log_work: float, now: float) -> None:
        self._mean.add(log_work)


class PromptLength(SizePredictor):
    """LLM requests: ``llm_work(prompt_tokens, output_tokens)`` with every output ``output_tokens`` long (default
    :data:`TYPICAL_OUTPUT_TOKENS`, assumed): increasing in the prompt, so it orders requests by prompt length."""

    def __init__(self, output_tokens: int = TYPICAL_OUTPUT_TOKENS) -> None:
        if isinstance(output_tokens, bool) or not isinstance(output_tokens, (int, np.integer)) or output_tokens < 1:
            raise ConfigurationError(f"Argument `output_tokens` must be an int >= 1, but is {output_tokens!r}")
        self.output_tokens = int(output_tokens)
        self.name = "prompt"

    def bind(self, tasks: Observed) -> None:
        if not tasks.llm:
            raise ConfigurationError("PromptLength needs LLM requests (Workload.llm with prompt_tokens), but the "
                                     "workload is not an LLM workload")
        super().bind(tasks)
        self._log = _log(llm_work(tasks.prompt_tokens, self.output_tokens))

    def predict(self, task: int, now: float) -> float:
        return float(self._log[task])


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigurationError(f"Argument `{name}` must be an int >= {low}, but is {value!r}")
    return int(value)


class BinnedMean(SizePredictor):
    """Mean measured work of the finished tasks whose ``feature`` falls in the same bin: a nonlinear classical
    baseline (a step function of the feature), causal by construction.

    Every ``refit`` completions the bins are refitted on the tasks finished so far: ``bins`` quantile bins of
    their feature values (equal edges merged; NaN values form one more bin), each bin's value the mean of its
    tasks' measured work shrunk toward the mean of all of them, ``(Σ_bin work + shrink · mean) / (n_bin +
    shrink)``. A task is predicted with the bins of the last refit before its readiness; before the first,
    the mean measured work of the tasks finished so far (``prior`` work units before any).

    Args:
        feature: a column of :data:`~qsn.scheduler.task.OBSERVED_FEATURES`; default ``"prompt_tokens"`` for LLM
            requests, else ``"estimate"``.
        bins: quantile bins, >= 1. refit: completions between refits, >= 1. shrink: pseudo-count, >= 0.
        prior: work units predicted before any task has finished, > 0.

    Example:
        >>> from qsn.scheduler.policy import observe
        >>> from qsn.scheduler import Workload, Cluster
        >>> wl = Workload.from_arrays(arrival=[0.0, 1, 2, 3, 4], prompt_tokens=[10, 20, 1000, 2000, 15], llm=True)
        >>> b = BinnedMean(bins=2, refit=4, shrink=0); b.bind(observe(wl, Cluster.uniform(1)))
        >>> for t, work in enumerate([1.0, 3.0, 10.0, 30.0]): b.learn(t, np.log(work), t + 0.5)
        >>> round(float(np.exp(b.predict(4, 4.0))), 6)        # prompt 15: the short bin's mean of 1 and 3
        2.0
    """

    def __init__(self, feature: str | None = None, *, bins: int = 16, refit: int = 64, shrink: float = 2.0,
                 prior: float = PRIOR_WORK) -> None:
        if feature is not None and feature not in OBSERVED_FEATURES:
            raise ConfigurationError(f"Argument `feature` must be one of {OBSERVED_FEATURES}, but is {feature!r}")
        if not (np.isfinite(shrink) and shrink >= 0):
            raise ConfigurationError(f"Argument `shrink` must be a finite number >= 0, but is {shrink!r}")
        if not (np.isfinite(prior) and prior > 0):
            raise ConfigurationError(f"Argument `prior` must be a finite number > 0, but is {prior!r}")
        self.feature, self.bins, self.refit = feature, _check_int("bins", bins, 1), _check_int("refit", refit, 1)
        self.shrink, self.prior = float(shrink), float(prior)
        self.name = "binned" if feature is None else f"binned[{feature}]"

    def bind(self, tasks: Observed) -> None:
        super().bind(tasks)
        column = self.feature or ("prompt_tokens" if tasks.llm else "estimate")
        self._x = tasks.features[:, OBSERVED_FEATURES.index(column)]
        self._mean = _MeanWork(self.prior)
        self._rows: list[int] = []
        self._work: list[float] = []
        self._edges: np.ndarray | None = None  # inner bin edges of the last refit
        self._values = np.zeros(0)  # (len(edges) + 2,) work units: the bins, then the NaN bin

    def _bin(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), len(self._edges) + 1, np.searchsorted(self._edges, x, side="right"))

    def _fit(self) -> None:
        x, work = self._x[self._rows], np.asarray(self._work)
        finite = x[np.isfinite(x)]
        q = np.quantile(finite, np.linspace(0, 1, self.bins + 1)[1:-1]) if finite.size else np.zeros(0)
        self._edges = np.unique(q)
        k = self._bin(x)
        size = len(self._edges) + 2
        mean, count = work.mean(), np.bincount(k, minlength=size)
        total = np.bincount(k, weights=work, minlength=size) + self.shrink * mean
        # an empty bin (the NaN bin, or merged edges) gets the overall mean
        self._values = np.where(count > 0, total / np.maximum(count + self.shrink, 1e-300), mean)

    def predict(self, task: int, now: float) -> float:
        if self._edges is None:
            return math.log(max(self._mean.value, 1e-9))
        return math.log(max(float(self._values[self._bin(self._x[task:task + 1])[0]]), 1e-9))

    def learn(self, task: int, log_work: float, now: float) -> None:
        self._mean.add(log_work)
        self._rows.append(task)
        self._work.append(math.exp(log_work))
        if len(self._rows) % self.refit == 0:
            self._fit()


class Boosted(SizePredictor):
    """scikit-learn's ``HistGradientBoostingRegressor`` on every observed feature (NaN = missing, handled by the
    trees), Poisson loss (so it estimates the conditional *mean* work, as :class:`BinnedMean` does), trained
    only on finished tasks' measured work and refitted from scratch every ``refit`` completions; before the first
    fit, the mean measured work (``prior`` before any). Deterministic for a ``seed`` (no early stopping).

    Args:
        refit: completions between refits, >= 1. max_iter: boosting iterations per fit, >= 1.
        seed: the trees' ``random_state``. prior: work units before any task has finished, > 0.

    Raises :class:`~qsn.errors.BackendUnavailableError` at ``bind`` without scikit-learn.
    """

    _CHUNK = 256  # rows predicted per call with one model (a prediction depends only on the model and its row)

    def __init__(self, *, refit: int = 256, max_iter: int = 100, seed: int = 0, prior: float = PRIOR_WORK) -> None:
        if not (np.isfinite(prior) and prior > 0):
            raise ConfigurationError(f"Argument `prior` must be a finite number > 0, but is {prior!r}")
        self.refit, self.max_iter = _check_int("refit", refit, 1), _check_int("max_iter", max_iter, 1)
        self.seed, self.prior = int(seed), float(prior)
        self.name = "boosted"

    def bind(self, tasks: Observed) -> None:
        try:
            from sklearn.ensemble import HistGradientBoostingRegressor
            from threadpoolctl import threadpool_limits
        except ImportError as err:
            raise BackendUnavailableError("Boosted needs scikit-learn: pip install 'qsn[learn]'") from err
        super().bind(tasks)
        # one OpenMP thread: fits of a few hundred rows are ~0.1 s on one, but several seconds each with the
        # library's default thread pool on a machine whose cores are busy (measured on the project's 2 cores)
        self._threads = lambda: threadpool_limits(1, user_api="openmp")
        self._make = lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=self.max_iter,
                                                           early_stopping=False, random_state=self.seed)
        self._mean = _MeanWork(self.prior)
        self._rows: list[int] = []
        self._work: list[float] = []
        self._model = None
        self._fits = 0
        self._cached = (-1, 0, 0)  # (fit, first row, end row) of the cached predictions
        self._cache = np.zeros(0)

    def predict(self, task: int, now: float) -> float:
        if self._model is None:
            return math.log(max(self._mean.value, 1e-9))
        fit, lo, hi = self._cached
        if fit != self._fits or not lo <= task < hi:
            lo, hi = task, min(task + self._CHUNK, self.tasks.n)
            with self._threads():
                self._cache = self._model.predict(self.tasks.features[lo:hi][:, self._columns])
            self._cached = (self._fits, lo, hi)
        return math.log(max(float(self._cache[task - lo]), 1e-9))

    def learn(self, task: int, log_work: float, now: float) -> None:
        self._mean.add(log_work)
        self._rows.append(task)
        self._work.append(math.exp(log_work))
        if len(self._rows) % self.refit == 0:
            x = self.tasks.features[self._rows]
            self._columns = np.flatnonzero(np.isfinite(x).any(axis=0))  # a feature never given carries nothing
            with self._threads():
                self._model = self._make().fit(x[:, self._columns], np.asarray(self._work))
            self._fits += 1


class Oracle(SizePredictor):
    """ORACLE — the true work (N,), passed in explicitly. Not a policy: a bound on what perfect sizes buy."""

    name = "ORACLE"

    def __init__(self, work) -> None:
        self.work = np.asarray(work, np.float64)

    def bind(self, tasks: Observed) -> None:
        if self.work.shape != (tasks.n,):
            raise InvalidInputError(f"Argument `work` must have shape ({tasks.n},), but has shape {self.work.shape}")
        super().bind(tasks)

    def predict(self, task: int, now: float) -> float:
        return float(_log(self.work[task]))


class Readout(SizePredictor):
    """An online readout (:func:`~qsn.scheduler.predict.readout_inputs`) of the observed features, trained on
    finished tasks only: one optimizer step per ``batch`` completions (in completion order), predictions made
    with the latest state. NaN until the first step (the fusion then gives it no weight).

    Args:
        inputs: ``"spike"`` or ``"raw"``; hidden, seed, learning_rate, steps, mode: of :func:`readout_inputs`.
        batch: completions per optimizer step.
    """

    _CHUNK = 256  # rows predicted per call with one state (predictions of later rows are dropped unused)

    def __init__(self, inputs: str = "spike", *, hidden: int = 0, seed: int = 0, learning_rate: float = 3e-2,
                 batch: int = 64, steps: int = 32, mode: str = "pure") -> None:
        if inputs not in ("spike", "raw"):
            raise ConfigurationError(f"Argument `inputs` must be 'spike' or 'raw', but is {inputs!r}")
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ConfigurationError(f"Argument `batch` must be an int >= 1, but is {batch!r}")
        self.inputs, self.batch = inputs, int(batch)
        self._options = dict(hidden=hidden, seed=seed, learning_rate=learning_rate, steps=steps, mode=mode)
        self.name = inputs

    def bind(self, tasks: Observed) -> None:
        super().bind(tasks)
        self._z, self._readout = readout_inputs(tasks.features, inputs=self.inputs, **self._options)
        self._state = self._readout.init()
        self._steps = 0
        self._rows: list[int] = []
        self._targets: list[float] = []
        self._cached = (-1, 0, 0)  # (state step, first row, end row) of the cached predictions
        self._cache = np.zeros(0)

    def predict(self, task: int, now: float) -> float:
        if self._steps == 0:
            return float("nan")
        step, lo, hi = self._cached
        if step != self._steps or not lo <= task < hi:
            # a prediction is a function of (state, own row) only: predicting the next rows with the same state
            # and using each when its task becomes ready is the same as predicting one row at a time
            lo, hi = task, min(task + self._CHUNK, self.tasks.n)
            self._cache = np.asarray(self._readout.predict(self._state, self._z[lo:hi]))[:, 0]
            self._cached = (self._steps, lo, hi)
        return float(np.clip(self._cache[task - lo], -30.0, 30.0))

    def learn(self, task: int, log_work: float, now: float) -> None:
        self._rows.append(task)
        self._targets.append(log_work)
        if len(self._rows) == self.batch:
            y = np.asarray(self._targets)[:, None]
            self._state, _ = self._readout.update(self._state, self._z[self._rows], y)
            self._steps += 1
            self._rows, self._targets = [], []


class Fused(SizePredictor):
    """Predictors fused online by the EMA/synergy rule (:func:`~qsn.scheduler.fusion.fusion_update`).

    At readiness each source predicts and the current weights fuse them; at completion every source learns and
    the rule updates its errors with the predictions made at that task's readiness. With no source predicting,
    the fused value is the mean measured work (``prior`` before any) and the rule is not updated.

    Args:
        sources: name → predictor (default: ``naive`` :class:`Estimate`, ``spike`` and ``raw`` :class:`Readout`).
        alpha, eta, gamma_max, adaptive: of the rule (:class:`~qsn.scheduler.fusion.FusionConfig`).
        seed, hidden: of the default readouts.
    """

    name = "fused"

    def __init__(self, sources: Mapping[str, SizePredictor] | None = None, *, alpha: float = 0.05,
                 eta: float = 0.5, gamma_max: float = 8.0, adaptive: bool = True, seed: int = 0, hidden: int = 0,
                 prior: float = PRIOR_WORK) -> None:
        if sources is None:
            sources = {"naive": Estimate(prior), "spike": Readout("spike", hidden=hidden, seed=seed),
                       "raw": Readout("raw", hidden=hidden, seed=seed)}
        if not sources:
            raise ConfigurationError("Argument `sources` must name at least one predictor, but is empty")
        if not 0 < alpha <= 1:
            raise ConfigurationError(f"Argument `alpha` must be in (0, 1], but is {alpha}")
        self.sources = dict(sources)
        self.rule = dict(alpha=float(alpha), eta=float(eta), gamma_max=float(gamma_max), adaptive=bool(adaptive))
        self.prior = float(prior)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.sources)

    def bind(self, tasks: Observed) -> None:
        super().bind(tasks)
        for s in self.sources.values():
            s.bind(tasks)
        n, k = tasks.n, len(self.sources)
        self._state = fusion_init(k)
        self._mean = _MeanWork(self.prior)
        self._p = np.full((n, k), np.nan)
        self._fused = np.full(n, np.nan)
        self._w = np.full((n, k), np.nan)
        self._e = np.full((n, k), np.nan)
        self._ef = np.full(n, np.nan)
        self._gamma = np.full(n, np.nan)
        self._synergy = np.full(n, np.nan)

    def predict(self, task: int, now: float) -> float:
        p = np.array([s.predict(task, now) for s in self.sources.values()])
        self._p[task] = p
        st = self._state
        self._e[task], self._ef[task], self._gamma[task] = st.e, st.ef, st.gamma
        if np.isfinite(p).any():
            w = fusion_weights(st, p, self.rule["adaptive"])
            self._w[task], self._fused[task] = w, fused_value(w, p)
        else:
            self._w[task], self._fused[task] = 0.0, float(_log(self._mean.value))
        return float(self._fused[task])

    def learn(self, task: int, log_work: float, now: float) -> None:
        for s in self.sources.values():
            s.learn(task, log_work, now)
        self._mean.add(log_work)
        p = self._p[task]
        if np.isfinite(p).any():
            self._state, self._synergy[task] = fusion_update(self._state, p, self._fused[task], log_work, **self.rule)

    def trace(self) -> FusionResult:
        """Per task, as used at its readiness: fused prediction, weights, errors before it, γ; and the synergy of
        the update at its completion (NaN for tasks never ready or finished)."""
        return FusionResult(self._fused.copy(), self._w.copy(), self._e.copy(), self._ef.copy(), self._gamma.copy(),
                            self._synergy.copy(), self.names, self._p.copy())
