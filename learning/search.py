"""Annealing-guided hyperparameter search over discrete spaces (BOCS with a QUBO annealer), and random search.

A :class:`SearchSpace` lists ``K`` hyperparameters, each with an ordered list of ``n_k`` values. A configuration is
one-hot encoded as bits ``x in {0, 1}^D``, ``D = sum_k n_k``: block ``k`` (bits ``o_k .. o_k + n_k - 1``) has a
single 1 at the index of parameter ``k``'s value.

:func:`anneal_search` is BOCS (Baptista & Poloczek, "Bayesian Optimization of Combinatorial Structures", ICML 2018)
with a Gaussian prior in place of the horseshoe and simulated annealing as the acquisition optimiser:

1. evaluate ``initial`` configurations drawn uniformly without replacement (the same ones, in the same order, as
   :func:`random_search` with the same seed draws first, so the two are paired);
2. fit the quadratic pseudo-Boolean surrogate ``f(x) = c + sum_i h_i x_i + sum_{i<j} J_ij x_i x_j`` (pairs ``i, j``
   in different parameters only: ``x_i x_j = 0`` inside a block) by Bayesian linear regression on the losses
   (:func:`fit_model`), and draw one surrogate from the posterior (Thompson sampling: exploration where the
   trials say little, exploitation where they agree);
3. minimise it with :func:`qsn.qubo.anneal` as a QUBO over the annealer's bits ``z``
   (:func:`model_qubo`), map the replicas' final states back to the nearest valid configurations, and evaluate
   the lowest-surrogate one not evaluated before; if every replica repeats a trial, the lowest-surrogate unseen
   configuration one parameter away from a replica (``"local"``), else a uniformly random unseen one;
4. repeat 2-3 until ``budget`` evaluations, ``batch`` proposals (one posterior draw each) per fit.

Encodings for the annealer (:func:`make_encoding`), ``x = a z + b`` on valid states, ``g_i`` below the largest
change of ``f`` a flip of ``z_i`` can cause (``|linear_i| + sum_j |coupling_ij|`` of ``f`` written over ``z``):

* ``"one_hot"``: ``z = x``, penalty ``P sum_k (sum_{i in k} x_i - 1)^2``. From an invalid state, removing one of
  ``m >= 2`` ones of a block lowers the penalty by ``P (2m - 3) >= P``, setting a bit of an empty block by ``P``:
  with ``P > max_i g_i`` every invalid state has a strictly lower single-flip neighbour, so every local minimum, and
  the ground state, is valid. But moving a parameter to another value costs two flips through an invalid state
  (a barrier of about ``P``), and single-flip annealing freezes in a poor valid state.
* ``"unary"`` (default; thermometer or domain-wall code, Chancellor 2019): ``n_k - 1`` bits per parameter,
  ``z_t = [v >= t]``, so ``x_v = z_v - z_{v+1}`` (``z_0 = 1``, ``z_n = 0``); penalty ``P sum_t z_{t+1} (1 - z_t)``
  counts the "01" pairs. One flip moves a value to a neighbouring one without leaving the valid states. An invalid block with ``m`` "01" pairs becomes
  valid by clearing its ones after its first zero, at most ``n_k - 2 <= (n_max - 2) m`` flips that change ``f`` by
  at most ``max g`` each while the penalty drops by ``m P``: ``P > (n_max - 2) max_i g_i`` keeps the ground state
  valid (local minima such as ``0011`` may not be).

:func:`model_qubo` takes ``P`` 1.5 times the bound. Mapping back (``_repair``): block by block, the values whose
code is nearest in Hamming distance to the block's bits, and among them the one of lowest ``f`` given the blocks
already mapped (the others as they are); for one-hot this keeps one of several ones or sets one bit of none.

Losses: ``objective(config) -> loss`` (lower is better), timed with ``time.perf_counter``, or ``-> (loss, seconds)``
when the objective knows its own cost (e.g. a cached training run). A NaN or infinite loss (a diverged training) is
kept in the result but enters the fit as the worst finite loss seen. Wall time: ``elapsed`` is the running sum of
the objective's seconds and the searcher's own seconds (fit, sampling, annealing), charged before the evaluation
they propose.

Example:
    >>> space = SearchSpace({"lr": [1e-3, 1e-2, 1e-1], "hidden": [32, 64], "t2": [float("inf"), 50.0]})
    >>> def loss(c): return abs(np.log10(c["lr"]) + 2) + c["hidden"] / 64 + (c["t2"] < 100)
    >>> r = anneal_search(loss, space, budget=8, seed=0, initial=4)
    >>> r.best_config, r.best_loss, r.trace.shape
    ({'lr': 0.01, 'hidden': 32, 't2': inf}, 0.5, (8,))
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.learning.quadratic import Encoding, QuadraticModel, fit_model, make_encoding, model_qubo, sample_model
from qsn.learning.space import SearchSpace
from qsn.qubo.annealer import anneal

__all__ = ["SearchResult", "anneal_search", "random_search", "run_searches", "SEARCHERS"]


def _repair(space: SearchSpace, enc: Encoding, z: np.ndarray, f: QuadraticModel) -> np.ndarray:
    """Value indices (R, K) of the nearest valid states (module docstring) to annealer states ``z`` (R, B)."""
    starts = np.concatenate([[0], np.cumsum([cb.shape[1] for cb in enc.codebooks])])
    z = np.asarray(z, dtype=np.int64)
    dist = [np.abs(cb[None].astype(np.int64) - z[:, None, starts[k]:starts[k + 1]]).sum(axis=2)
            for k, cb in enumerate(enc.codebooks)]  # K arrays (R, n_k): Hamming distance to each value's bits
    out = np.stack([d.argmin(axis=1) for d in dist], axis=1)
    for r in np.flatnonzero(np.any(np.stack([d.min(axis=1) for d in dist], axis=1) > 0, axis=1)):
        x = enc.a @ z[r] + enc.b  # blocks not repaired yet stay as they are
        for k, (o, n) in enumerate(zip(space.offsets, space.sizes)):
            choices = np.flatnonzero(dist[k][r] == dist[k][r].min())
            trial = np.repeat(x[None], len(choices), axis=0)
            trial[:, o:o + n] = np.eye(n)[choices]
            out[r, k] = choices[int(np.argmin(f.value(trial)))]
            x[o:o + n] = np.eye(n)[out[r, k]]
    return out


def _best_unseen(space: SearchSpace, codes: np.ndarray, f: QuadraticModel, seen: set[int]) -> dict[str, Any] | None:
    """The configuration of lowest ``f`` among value indices ``codes`` (R, K) not in ``seen``, or None."""
    for c in codes[np.argsort(f.value(space.one_hot(codes)), kind="stable")]:
        if space._radix(c) not in seen:
            return space.from_codes(c)
    return None


def _neighbours(space: SearchSpace, codes: np.ndarray) -> np.ndarray:
    """Every configuration (M, K) that differs from a row of ``codes`` (R, K) in one parameter's value."""
    out = [np.where(np.arange(len(space.names)) == k, v, c) for c in codes for k, n in enumerate(space.sizes)
           for v in range(int(n)) if v != c[k]]
    return np.array(out, dtype=np.int64).reshape(-1, len(space.names))


class SearchResult(NamedTuple):
    """Evaluations of a search, in order; ``trace`` is the best loss so far after each evaluation."""

    configs: tuple[dict[str, Any], ...]  # (budget,) evaluated configurations
    losses: np.ndarray  # (budget,) float64, their losses (NaN/inf kept as returned)
    best_config: dict[str, Any]
    best_loss: float
    trace: np.ndarray  # (budget,) float64, best-so-far loss after each evaluation (NaN counts as inf)
    eval_seconds: np.ndarray  # (budget,) float64, s, the objective's cost (reported or timed)
    search_seconds: np.ndarray  # (budget,) float64, s, the searcher's own time spent proposing each evaluation
    sources: tuple[str, ...]  # (budget,) "initial" | "anneal" | "local" | "random": how each was chosen (below)

    @property
    def elapsed(self) -> np.ndarray:
        """(budget,) s, wall time at the end of each evaluation: cumulative objective + search seconds."""
        return np.cumsum(self.eval_seconds + self.search_seconds)

    def best_at(self, seconds: Any) -> np.ndarray:
        """Best loss found by wall times ``seconds`` (...,) → (...,); inf before the first evaluation ends."""
        k = np.searchsorted(self.elapsed, np.asarray(seconds, dtype=np.float64), side="right")
        return np.concatenate([[np.inf], self.trace])[k]


class _Log:
    """The bookkeeping shared by both searchers: evaluate, time, remember what was seen."""

    def __init__(self, objective: Callable, space: SearchSpace, budget: int, seed: int):
        if not callable(objective):
            raise ConfigurationError(f"Argument `objective` must be callable, but is {type(objective).__name__}")
        if not isinstance(space, SearchSpace):
            raise ConfigurationError(f"Argument `space` must be a SearchSpace, but is {type(space).__name__}")
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or not 1 <= budget <= space.size:
            raise ConfigurationError(f"Argument `budget` must be an integer in [1, space.size = {space.size}], "
                                     f"but is {budget!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigurationError(f"Argument `seed` must be an integer >= 0, but is {seed!r}")
        self.objective, self.space, self.budget = objective, space, int(budget)
        self.rng = np.random.default_rng(seed)
        self.seen: set[int] = set()
        self.configs, self.losses, self.eval_s, self.search_s, self.sources = [], [], [], [], []

    def unseen(self) -> dict[str, Any]:
        """A uniformly random configuration not evaluated yet (rejection, or the complement when mostly seen)."""
        space = self.space
        if 4 * (space.size - len(self.seen)) >= space.size:
            while True:
                codes = self.rng.integers(0, space.sizes)
                if space._radix(codes) not in self.seen:
                    return space.from_codes(codes)
        rest = sorted(set(range(space.size)) - self.seen)
        return space.config(rest[int(self.rng.integers(len(rest)))])

    def evaluate(self, config: dict[str, Any], source: str, search_seconds: float) -> None:
        start = time.perf_counter()
        out = self.objective(dict(config))
        seconds = time.perf_counter() - start
        if isinstance(out, tuple):
            if len(out) != 2 or not (math.isfinite(float(out[1])) and float(out[1]) >= 0):
                raise InvalidInputError(f"Argument `objective` must return loss or (loss, seconds >= 0), but "
                                        f"returned {out!r}")
            out, seconds = out[0], float(out[1])
        self.seen.add(self.space.index(config))
        self.configs.append(dict(config))
        self.losses.append(float(out))
        self.eval_s.append(seconds)
        self.search_s.append(search_seconds)
        self.sources.append(source)

    def result(self) -> SearchResult:
        losses = np.asarray(self.losses)
        trace = np.minimum.accumulate(np.where(np.isnan(losses), np.inf, losses))
        best = int(np.argmin(np.where(np.isnan(losses), np.inf, losses)))
        return SearchResult(tuple(self.configs), losses, self.configs[best], float(losses[best]), trace,
                            np.asarray(self.eval_s), np.asarray(self.search_s), tuple(self.sources))


def random_search(objective: Callable, space: SearchSpace, budget: int, *, seed: int = 0) -> SearchResult:
    """Evaluate ``budget`` configurations drawn uniformly without replacement.

    Example:
        >>> space = SearchSpace({"a": [0, 1, 2], "b": ["x", "y"]})
        >>> random_search(lambda c: c["a"], space, budget=6, seed=0).best_loss
        0.0
    """
    log = _Log(objective, space, budget, seed)
    while len(log.losses) < log.budget:
        start = time.perf_counter()
        config = log.unseen()
        log.evaluate(config, "random", time.perf_counter() - start)
    return log.result()


def anneal_search(objective: Callable, space: SearchSpace, budget: int, *, seed: int = 0, initial: int = 10,
                  batch: int = 1, replicas: int = 16, sweeps: int = 100, prior_var: float | None = None,
                  noise: float | None = None, encoding: str = "unary") -> SearchResult:
    """Annealing-guided search (BOCS with Thompson sampling and a QUBO annealer; module docstring).

    Args:
        objective: ``config dict -> loss`` or ``-> (loss, seconds)``; lower is better.
        space: the hyperparameters.
        budget: number of evaluations (distinct configurations), at most ``space.size``.
        seed: seeds the host RNG (initial draws, Thompson samples) and the annealer's JAX key.
        initial: random configurations evaluated before the first fit (clipped to ``budget``).
        batch: proposals per fit, one posterior draw and one anneal each.
        replicas, sweeps: passed to :func:`qsn.qubo.anneal` (default temperature range).
        prior_var, noise: passed to :func:`fit_model`.
        encoding: ``"unary"`` or ``"one_hot"``, the annealer's bits (:func:`make_encoding`).

    Returns:
        :class:`SearchResult` of ``budget`` evaluations.
    """
    for name, value in (("initial", initial), ("batch", batch), ("replicas", replicas), ("sweeps", sweeps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigurationError(f"Argument `{name}` must be an integer >= 1, but is {value!r}")
    log = _Log(objective, space, budget, seed)
    enc = make_encoding(space, encoding)
    key = jax.random.key(seed)
    for _ in range(min(initial, log.budget)):
        start = time.perf_counter()
        log.evaluate(log.unseen(), "initial", time.perf_counter() - start)
    while len(log.losses) < log.budget:
        start = time.perf_counter()
        y = np.asarray(log.losses)
        finite = np.isfinite(y)
        y = np.where(finite, y, y[finite].max() if finite.any() else 0.0)
        post = fit_model(space, np.stack([space.encode(c) for c in log.configs]), y, prior_var=prior_var,
                             noise=noise)
        for _ in range(min(batch, log.budget - len(log.losses))):
            f = sample_model(space, post, log.rng)
            key, sub = jax.random.split(key)
            r = anneal(model_qubo(space, f, encoding=enc), sub, replicas=replicas, sweeps=sweeps)
            codes = _repair(space, enc, np.concatenate([np.asarray(r.best_x)[None], np.asarray(r.x)]), f)
            config, source = _best_unseen(space, codes, f, log.seen), "anneal"
            if config is None:  # every replica repeats a trial: their one-parameter neighbours
                config, source = _best_unseen(space, _neighbours(space, np.unique(codes, axis=0)), f, log.seen), "local"
            if config is None:
                config, source = log.unseen(), "random"
            log.evaluate(config, source, time.perf_counter() - start)
            start = time.perf_counter()
    return log.result()


SEARCHERS: dict[str, Callable[..., SearchResult]] = {"anneal": anneal_search, "random": random_search}


def run_searches(objective: Callable, space: SearchSpace, budget: int, seeds: Sequence[int], *,
                 methods: Sequence[str] = ("anneal", "random"),
                 options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, list[SearchResult]]:
    """Run each searcher in ``methods`` (names in :data:`SEARCHERS`) once per seed with the same budget.

    ``options[method]`` holds extra keyword arguments of that searcher. Compare per evaluation with
    ``np.stack([r.trace for r in out["anneal"]])`` and per wall-second with ``r.best_at(seconds)``.
    """
    options = dict(options or {})
    unknown = [m for m in itertools.chain(methods, options) if m not in SEARCHERS]
    if unknown:
        raise ConfigurationError(f"Argument `methods` must name searchers in {list(SEARCHERS)}, but has {unknown}")
    return {m: [SEARCHERS[m](objective, space, budget, seed=int(s), **options.get(m, {})) for s in seeds]
            for m in methods}
