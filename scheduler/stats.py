"""Statistics for the scheduler's benchmark report: tests, effect sizes, intervals, power, a comparison table.

Every test and interval comes from SciPy or statsmodels; this module validates the samples (finite,
at least 2 values), fixes the conventions and assembles the report:

* :func:`welch` — Welch's unequal-variance t-test (``scipy.stats.ttest_ind(equal_var=False)``).
* :func:`anova` — one-way ANOVA (``scipy.stats.f_oneway``).
* :func:`correct` — Holm, Bonferroni or Benjamini–Hochberg adjusted p-values
  (``statsmodels.stats.multitest.multipletests``).
* :func:`cohens_d` — standardised mean difference with the pooled standard deviation, optionally
  with Hedges' small-sample correction.
* :func:`bootstrap_ci` — BCa (or percentile / basic) bootstrap interval of a statistic of one sample,
  or of the difference of a statistic between two independent samples (``scipy.stats.bootstrap``).
* :func:`window_bootstrap` — a block bootstrap over contiguous arrival-time windows of one trace run: each
  policy's mean (or quantile) of a per-task metric and its difference from a baseline, paired across policies
  (every policy saw the same trace), for runs that have no independent seeds.
* :func:`power`, :func:`sample_size` — two-sample t-test power (``statsmodels.stats.power.TTestIndPower``).
* :func:`paired` — the paired t-test (``scipy.stats.ttest_rel``) for runs matched by seed.
* :func:`compare` — each policy against a baseline: mean difference, its BCa interval, Welch p (or, with
  ``paired=True``, the paired t-test on per-seed differences, Cohen's d_z and one-sample power), corrected
  p, one :class:`Comparison` per policy; :func:`to_markdown` prints them.

Example:
    >>> import numpy as np
    >>> from qsn.scheduler import stats
    >>> rng = np.random.default_rng(0)
    >>> runs = {"fifo": rng.normal(10.0, 1.0, 30), "qubo": rng.normal(9.0, 1.0, 30)}
    >>> rows = stats.compare(runs, baseline="fifo")
    >>> print(stats.to_markdown(rows))           # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import scipy.special
import scipy.stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from qsn.errors import ConfigurationError

__all__ = [
    "Welch",
    "Anova",
    "Correction",
    "Interval",
    "Comparison",
    "welch",
    "paired",
    "anova",
    "correct",
    "cohens_d",
    "bootstrap_ci",
    "WindowInterval",
    "window_bootstrap",
    "power",
    "sample_size",
    "compare",
    "to_markdown",
]

CORRECTIONS = ("holm", "bonferroni", "fdr_bh")
BOOTSTRAP_METHODS = ("BCa", "percentile", "basic")
ALTERNATIVES = ("two-sided", "less", "greater")
# statsmodels spells the one-sided alternatives of its power classes differently from SciPy.
_POWER_ALTERNATIVE = {"two-sided": "two-sided", "less": "smaller", "greater": "larger"}


class Welch(NamedTuple):
    """Result of :func:`welch`."""

    statistic: float  # t = (mean(a) - mean(b)) / sqrt(var(a)/n_a + var(b)/n_b)
    df: float  # Welch–Satterthwaite degrees of freedom (not an integer in general)
    pvalue: float  # for the requested alternative


class Anova(NamedTuple):
    """Result of :func:`anova`."""

    statistic: float  # F = MS_between / MS_within
    df_between: int  # k - 1 for k groups
    df_within: int  # N - k for N values in all
    pvalue: float


class Correction(NamedTuple):
    """Result of :func:`correct`, in the order of the input p-values."""

    rejected: np.ndarray  # (m,) bool, adjusted p <= alpha
    adjusted: np.ndarray  # (m,) float64, adjusted p-values in [0, 1]


class Interval(NamedTuple):
    """A bootstrap confidence interval (:func:`bootstrap_ci`)."""

    low: float
    high: float
    estimate: float  # the statistic on the observed data (a difference for two samples)
    standard_error: float  # standard deviation of the bootstrap distribution


class Comparison(NamedTuple):
    """One policy against the baseline (a row of :func:`compare`); differences are policy - baseline."""

    policy: str
    baseline: str
    n: int  # values of the policy
    n_baseline: int
    mean: float  # mean of the policy
    mean_baseline: float
    diff: float  # mean(policy) - mean(baseline), in the samples' unit
    ci_low: float  # bootstrap interval of diff at `confidence`
    ci_high: float
    pvalue: float  # Welch two-sided p
    pvalue_adjusted: float  # after `correction` over all rows
    rejected: bool  # pvalue_adjusted <= alpha
    cohens_d: float  # pooled-sd standardised difference (policy - baseline)
    power: float  # power of a two-sample t-test at |cohens_d|, these n, alpha
    correction: str
    confidence: float


def _sample(x, name: str) -> np.ndarray:
    """``x`` as a (n,) float64 array with n >= 2 finite values, or a ConfigurationError naming it."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ConfigurationError(f"Argument `{name}` must have shape (n,), but has shape {a.shape}")
    if a.size < 2:
        raise ConfigurationError(f"Argument `{name}` must hold at least 2 values, but holds {a.size}")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise ConfigurationError(f"Argument `{name}` must be finite, but value {bad[0]} is {a[bad[0]]}")
    return a


def _choice(value: str, name: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigurationError(f"Argument `{name}` must be one of {list(allowed)}, but is {value!r}")
    return value


def _probability(value: float, name: str) -> float:
    if not 0.0 < value < 1.0:
        raise ConfigurationError(f"Argument `{name}` must be in (0, 1), but is {value!r}")
    return float(value)


def paired(a, b, *, alternative: str = "two-sided") -> Welch:
    """Paired t-test of ``a - b`` (``scipy.stats.ttest_rel``): the same instances (seeds) under two policies.

    Returns a :class:`Welch` tuple ``(statistic, df = n - 1, pvalue)``.

    Example:
        >>> round(paired([1.0, 2.0, 3.0, 4.0], [1.1, 2.3, 3.2, 4.6]).df)
        3
    """
    a, b = _sample(a, "a"), _sample(b, "b")
    if a.shape != b.shape:
        raise ConfigurationError(f"Paired samples must have the same length, but have {a.size} and {b.size}")
    _choice(alternative, "alternative", ALTERNATIVES)
    d = a - b
    if np.ptp(d) == 0:
        raise ConfigurationError("paired: every difference is the same, so the paired t statistic is undefined")
    r = scipy.stats.ttest_rel(a, b, alternative=alternative)
    return Welch(float(r.statistic), float(a.size - 1), float(r.pvalue))


def welch(a, b, *, alternative: str = "two-sided") -> Welch:
    """Welch's t-test of equal means for two independent samples with possibly unequal variances.

    Args:
        a: (n_a,) values, n_a >= 2, finite.
        b: (n_b,) values, n_b >= 2, finite.
        alternative: ``"two-sided"``, ``"less"`` (mean(a) < mean(b)) or ``"greater"``.

    Returns:
        :class:`Welch` ``(statistic, df, pvalue)``.

    Example:
        >>> round(welch([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 9.0]).df, 2)
        4.37
    """
    a, b = _sample(a, "a"), _sample(b, "b")
    _choice(alternative, "alternative", ALTERNATIVES)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        raise ConfigurationError("Arguments `a` and `b` are both constant: the t statistic is undefined")
    r = scipy.stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
    return Welch(float(r.statistic), float(r.df), float(r.pvalue))


def anova(*groups) -> Anova:
    """One-way analysis of variance: do ``k >= 2`` independent groups share one mean?

    Args:
        *groups: k arrays of shape (n_g,), each with n_g >= 2 finite values.

    Returns:
        :class:`Anova` ``(statistic, df_between, df_within, pvalue)``.

    Example:
        >>> anova([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [5.0, 6.0, 7.0]).statistic
        13.0
    """
    if len(groups) < 2:
        raise ConfigurationError(f"anova needs at least 2 groups, but got {len(groups)}")
    gs = [_sample(g, f"groups[{i}]") for i, g in enumerate(groups)]
    if all(np.ptp(g) == 0 for g in gs):
        raise ConfigurationError("anova: every group is constant, so the within-group variance is 0 and F is undefined")
    r = scipy.stats.f_oneway(*gs)
    n = sum(g.size for g in gs)
    return Anova(float(r.statistic), len(gs) - 1, n - len(gs), float(r.pvalue))


def correct(pvalues, method: str = "holm", *, alpha: float = 0.05) -> Correction:
    """Adjust p-values for multiple comparisons.

    ``"holm"`` (Holm–Bonferroni step-down, controls the family-wise error rate), ``"bonferroni"``
    (``min(1, m p)``) or ``"fdr_bh"`` (Benjamini–Hochberg, controls the false discovery rate).

    Args:
        pvalues: (m,) raw p-values in [0, 1].
        method: one of the three above.
        alpha: level at which ``rejected`` is decided.

    Returns:
        :class:`Correction` ``(rejected (m,) bool, adjusted (m,) float64)`` in the input order.

    Example:
        >>> correct([0.01, 0.04, 0.03, 0.005]).adjusted
        array([0.03, 0.06, 0.06, 0.02])
    """
    _choice(method, "method", CORRECTIONS)
    _probability(alpha, "alpha")
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ConfigurationError(f"Argument `pvalues` must have shape (m,) with m >= 1, but has shape {p.shape}")
    bad = np.flatnonzero(~((p >= 0.0) & (p <= 1.0)))  # also catches NaN
    if bad.size:
        raise ConfigurationError(f"Argument `pvalues` must lie in [0, 1], but value {bad[0]} is {p[bad[0]]}")
    rejected, adjusted, _, _ = multipletests(p, alpha=alpha, method=method)
    return Correction(np.asarray(rejected, dtype=bool), np.asarray(adjusted, dtype=np.float64))


def cohens_d(a, b, *, hedges: bool = False) -> float:
    """Standardised mean difference of two independent samples, pooled-standard-deviation form.

    ``d = (mean(a) - mean(b)) / s_p`` with ``s_p^2 = ((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2)``
    and ``s^2`` the unbiased (ddof = 1) sample variances (Cohen 1988, eq. 2.5.2 with the pooled
    estimate). Equivalently ``d = t sqrt(1/n_a + 1/n_b)`` with Student's pooled t.

    With ``hedges=True`` the result is Hedges' g: ``d`` times the exact small-sample bias correction
    ``J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m - 1)/2))``, ``m = n_a + n_b - 2`` (Hedges 1981;
    ``J ~ 1 - 3/(4m - 1)``).

    Args:
        a: (n_a,) values, n_a >= 2, finite.
        b: (n_b,) values, n_b >= 2, finite.
        hedges: apply Hedges' correction.

    Example:
        >>> cohens_d([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
        -1.0
    """
    a, b = _sample(a, "a"), _sample(b, "b")
    m = a.size + b.size - 2
    pooled = math.sqrt(((a.size - 1) * np.var(a, ddof=1) + (b.size - 1) * np.var(b, ddof=1)) / m)
    if pooled == 0.0:
        raise ConfigurationError("Arguments `a` and `b` are both constant: the pooled standard deviation is 0")
    d = float((np.mean(a) - np.mean(b)) / pooled)
    if hedges:
        d *= math.exp(scipy.special.gammaln(m / 2) - scipy.special.gammaln((m - 1) / 2)) / math.sqrt(m / 2)
    return d


def _is_two_samples(data) -> bool:
    return isinstance(data, tuple) and len(data) == 2 and all(np.ndim(x) == 1 for x in data)


def bootstrap_ci(
    data,
    statistic: Callable[..., np.ndarray] = np.mean,
    *,
    confidence: float = 0.95,
    method: str = "BCa",
    n_resamples: int = 9999,
    seed: int | np.random.Generator = 0,
) -> Interval:
    """Bootstrap confidence interval of ``statistic`` for one sample, or of a difference for two.

    One sample (an array): the interval of ``statistic(data)``. Two independent samples (a tuple
    ``(a, b)``): the interval of ``statistic(a) - statistic(b)``, each sample resampled on its own
    (``scipy.stats.bootstrap(paired=False)``), e.g. the difference of means with the default statistic.

    Args:
        data: (n,) array, or a tuple ``(a, b)`` of (n_a,) and (n_b,) arrays; each with >= 2 finite values.
        statistic: a NumPy reduction ``f(x, axis=-1)`` (vectorised over resamples), e.g. ``np.mean``,
            ``np.median``.
        confidence: confidence level in (0, 1).
        method: ``"BCa"`` (bias-corrected and accelerated, Efron 1987), ``"percentile"`` or ``"basic"``.
        n_resamples: bootstrap resamples.
        seed: seed (or ``np.random.Generator``) of the resampling; same seed, same interval.

    Returns:
        :class:`Interval` ``(low, high, estimate, standard_error)``.

    Raises:
        ConfigurationError: bad samples or options, or a degenerate bootstrap distribution (e.g.
            constant data) for which the interval is undefined.

    Example:
        >>> bootstrap_ci(np.arange(20.0)).estimate
        9.5
    """
    _probability(confidence, "confidence")
    _choice(method, "method", BOOTSTRAP_METHODS)
    if int(n_resamples) != n_resamples or n_resamples < 2:
        raise ConfigurationError(f"Argument `n_resamples` must be an integer >= 2, but is {n_resamples!r}")
    if _is_two_samples(data):
        samples = (_sample(data[0], "data[0]"), _sample(data[1], "data[1]"))

        def stat(x, y, axis=-1):
            return statistic(x, axis=axis) - statistic(y, axis=axis)
    else:
        samples = (_sample(data, "data"),)
        stat = statistic
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # a degenerate distribution warns and returns NaN; we raise instead (never NaN silently)
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        r = scipy.stats.bootstrap(
            samples, stat, n_resamples=int(n_resamples), confidence_level=confidence,
            method=method, vectorized=True, paired=False, rng=rng,
        )
    low, high = float(r.confidence_interval.low), float(r.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigurationError(
            f"bootstrap_ci: the bootstrap distribution is degenerate (e.g. constant data), so the {method} "
            f"interval is undefined; got ({low}, {high})"
        )
    return Interval(low, high, float(stat(*samples, axis=-1)), float(r.standard_error))


class WindowInterval(NamedTuple):
    """One policy's row of :func:`window_bootstrap` (units of the metric, e.g. s)."""

    policy: str
    baseline: str
    estimate: float  # the statistic over every task of the run
    low: float  # percentile-bootstrap interval of the statistic
    high: float
    diff: float  # estimate − the baseline's estimate
    diff_low: float  # interval of the difference, windows resampled jointly for both policies
    diff_high: float
    windows: int  # resampling units
    confidence: float


def window_bootstrap(
    values: Mapping[str, Sequence[float] | np.ndarray],
    arrival: Sequence[float] | np.ndarray,
    baseline: str,
    *,
    windows: int = 10,
    quantile: float | None = None,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int | np.random.Generator = 0,
) -> list[WindowInterval]:
    """Block-bootstrap intervals of a per-task metric over arrival-time windows of one trace run, per policy.

    The tasks are split, in arrival order, into ``windows`` contiguous blocks of equal count (``np.array_split``;
    sizes differ by at most one). A resample draws ``windows`` blocks with replacement and pools their tasks;
    the statistic is the mean of the pooled values (``quantile=None``: ``Σ sums / Σ counts`` of the drawn
    blocks) or their ``quantile`` (``np.quantile``, linear). The same drawn blocks serve every policy, so the
    difference ``policy − baseline`` is paired: all policies ran the same tasks at the same arrival times.
    Intervals are percentile intervals of the ``n_resamples`` bootstrap values. This replaces seeds where a
    run has none (a real trace on a fixed cluster): its variance is that of the trace over time. It assumes
    windows long against the queueing memory, so that blocks are nearly independent.

    Args:
        values: policy name -> (N,) finite per-task values (e.g. latency, s), task ``i`` the same task for
            every policy.
        arrival: (N,) the tasks' arrival times (s), which order them into windows.
        baseline: the key of the reference policy (its own row has difference 0).
        windows: blocks, 2 <= windows <= N.
        quantile: None for the mean, else a level in (0, 1), e.g. 0.99 for the p99.
        confidence: interval level in (0, 1).
        n_resamples: bootstrap resamples (>= 2).
        seed: seed (or ``np.random.Generator``) of the resampling.

    Returns:
        One :class:`WindowInterval` per policy, in the mapping's order.

    Raises:
        ConfigurationError: a missing baseline, values of another length than ``arrival``, non-finite values,
            or options out of range, naming the argument.

    Example:
        >>> t = np.arange(100.0)
        >>> rows = window_bootstrap({"fifo": t % 7, "same": t % 7}, t, "fifo", n_resamples=200)
        >>> rows[1].diff, rows[1].diff_low, rows[1].diff_high     # identical policies: a zero-width interval
        (0.0, 0.0, 0.0)
    """
    if baseline not in values:
        raise ConfigurationError(f"Argument `baseline` must be a key of `values` {list(values)}, but is {baseline!r}")
    t = np.asarray(arrival, np.float64)
    if t.ndim != 1 or not np.all(np.isfinite(t)):
        raise ConfigurationError(f"Argument `arrival` must be a finite (N,) array, but has shape {t.shape}")
    n = t.size
    if int(windows) != windows or not 2 <= windows <= n:
        raise ConfigurationError(f"Argument `windows` must be an integer in [2, {n}] (N = {n} tasks), but is {windows!r}")
    if quantile is not None and not 0.0 < quantile < 1.0:
        raise ConfigurationError(f"Argument `quantile` must be None (the mean) or in (0, 1), but is {quantile!r}")
    _probability(confidence, "confidence")
    if int(n_resamples) != n_resamples or n_resamples < 2:
        raise ConfigurationError(f"Argument `n_resamples` must be an integer >= 2, but is {n_resamples!r}")
    names = list(values)
    x = np.empty((len(names), n))
    for i, k in enumerate(names):
        v = np.asarray(values[k], np.float64)
        if v.shape != (n,):
            raise ConfigurationError(f"Argument `values[{k!r}]` must have shape ({n},) like `arrival`, but has {v.shape}")
        x[i] = _sample(v, f"values[{k!r}]")  # (finite)
    blocks = np.array_split(np.argsort(t, kind="stable"), int(windows))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    draws = rng.integers(0, len(blocks), size=(int(n_resamples), len(blocks)))
    if quantile is None:
        sums = np.stack([x[:, b].sum(axis=1) for b in blocks], axis=1)  # (P, K)
        counts = np.array([b.size for b in blocks], np.float64)  # (K,)
        boot = sums[:, draws].sum(axis=2) / counts[draws].sum(axis=1)  # (P, B)
        point = x.mean(axis=1)
    else:
        boot = np.empty((len(names), int(n_resamples)))
        for r, d in enumerate(draws):
            boot[:, r] = np.quantile(x[:, np.concatenate([blocks[k] for k in d])], quantile, axis=1)
        point = np.quantile(x, quantile, axis=1)
    b = names.index(baseline)
    tails = (100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2)
    rows = []
    for i, k in enumerate(names):
        lo, hi = np.percentile(boot[i], tails)
        dlo, dhi = np.percentile(boot[i] - boot[b], tails)
        rows.append(WindowInterval(k, baseline, float(point[i]), float(lo), float(hi), float(point[i] - point[b]),
                                   float(dlo), float(dhi), int(windows), float(confidence)))
    return rows


def power(effect_size: float, n1: int, n2: int | None = None, alpha: float = 0.05, *,
          alternative: str = "two-sided") -> float:
    """Power of the two-sample t-test to detect a standardised difference ``effect_size`` (Cohen's d).

    Args:
        effect_size: Cohen's d (finite).
        n1: values in the first sample (>= 2).
        n2: values in the second sample (>= 2); defaults to ``n1``.
        alpha: significance level in (0, 1).
        alternative: ``"two-sided"``, ``"less"`` or ``"greater"`` (sign of d under H1).

    Example:
        >>> round(power(0.5, 64), 2)     # Cohen (1988), Table 2.3.5: d = 0.5, n = 64 per group
        0.8
    """
    n2 = n1 if n2 is None else n2
    for name, n in (("n1", n1), ("n2", n2)):
        if int(n) != n or n < 2:
            raise ConfigurationError(f"Argument `{name}` must be an integer >= 2, but is {n!r}")
    if not math.isfinite(effect_size):
        raise ConfigurationError(f"Argument `effect_size` must be finite, but is {effect_size!r}")
    _probability(alpha, "alpha")
    _choice(alternative, "alternative", ALTERNATIVES)
    return float(TTestIndPower().power(effect_size=effect_size, nobs1=n1, alpha=alpha, ratio=n2 / n1,
                                       alternative=_POWER_ALTERNATIVE[alternative]))


def sample_size(effect_size: float, power: float = 0.8, alpha: float = 0.05, *, ratio: float = 1.0,
                alternative: str = "two-sided") -> int:
    """Smallest first-group size ``n1`` (rounded up; ``n2 = ratio n1``) for which the two-sample t-test
    reaches ``power`` against Cohen's d = ``effect_size``.

    Example:
        >>> sample_size(0.5)                   # Cohen (1988), Table 2.4.1: 64 per group
        64
    """
    if not math.isfinite(effect_size) or effect_size == 0:
        raise ConfigurationError(f"Argument `effect_size` must be finite and nonzero, but is {effect_size!r}")
    _probability(power, "power")
    _probability(alpha, "alpha")
    _choice(alternative, "alternative", ALTERNATIVES)
    if not ratio > 0:
        raise ConfigurationError(f"Argument `ratio` must be > 0, but is {ratio!r}")
    n = TTestIndPower().solve_power(effect_size=effect_size, nobs1=None, alpha=alpha, power=power, ratio=ratio,
                                    alternative=_POWER_ALTERNATIVE[alternative])
    n = float(np.squeeze(n))
    if not math.isfinite(n) or n <= 0:
        raise ConfigurationError(f"sample_size: no sample size reaches power {power} at effect size {effect_size}")
    return max(2, math.ceil(n - 1e-9))  # 1e-9: a root that lands on an integer is not pushed one up


def compare(
    samples: Mapping[str, Sequence[float] | np.ndarray],
    baseline: str,
    correction: str = "holm",
    *,
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    paired: bool = False,
) -> list[Comparison]:
    """Compare each policy's samples (e.g. makespans over seeds) with the baseline's.

    For each policy other than ``baseline``, in the mapping's order: the mean difference
    ``policy - baseline``, its BCa bootstrap interval (:func:`bootstrap_ci`, two independent samples),
    the Welch p-value (:func:`welch`), the p-value adjusted over all rows (:func:`correct`), Cohen's d
    (:func:`cohens_d`) and the power of a two-sample t-test at the observed ``|d|`` and these sizes
    (:func:`power`; an observed-effect power, which restates the p-value rather than adding evidence).

    Args:
        samples: policy name -> (n,) values, each with >= 2 finite values.
        baseline: the key of the reference policy.
        correction: ``"holm"``, ``"bonferroni"`` or ``"fdr_bh"``.
        alpha: level for ``rejected`` and for the power.
        confidence: level of the bootstrap intervals.
        n_resamples: bootstrap resamples per row.
        seed: one seed for all rows' resampling.
        paired: the samples are matched by position (the same seeds / instances under every policy): the
            p-value is the paired t-test's, the interval is the BCa interval of the mean per-instance
            difference, ``cohens_d`` is Cohen's d_z (mean difference / sd of differences) and the power is
            the one-sample t-test's at that d_z.

    Returns:
        One :class:`Comparison` per non-baseline policy.

    Example:
        >>> rows = compare({"fifo": [10.0, 11.0, 12.0], "qubo": [8.0, 9.5, 9.0]}, "fifo", n_resamples=999)
        >>> rows[0].policy, round(rows[0].diff, 3)
        ('qubo', -2.167)
    """
    if baseline not in samples:
        raise ConfigurationError(f"Argument `baseline` must be a key of `samples` {list(samples)}, but is {baseline!r}")
    if len(samples) < 2:
        raise ConfigurationError("Argument `samples` must hold the baseline and at least one other policy")
    _choice(correction, "correction", CORRECTIONS)
    _probability(alpha, "alpha")
    base = _sample(samples[baseline], f"samples[{baseline!r}]")
    rng = np.random.default_rng(seed)
    rows = []
    for name, values in samples.items():
        if name == baseline:
            continue
        x = _sample(values, f"samples[{name!r}]")
        if paired:
            t = _paired_test(x, base)
            diff = x - base
            ci = bootstrap_ci(diff, confidence=confidence, n_resamples=n_resamples, seed=rng)
            d = float(np.mean(diff) / np.std(diff, ddof=1))
            pw = _one_sample_power(abs(d), x.size, alpha)
        else:
            t = welch(x, base)
            ci = bootstrap_ci((x, base), confidence=confidence, n_resamples=n_resamples, seed=rng)
            d = cohens_d(x, base)
            pw = power(abs(d), x.size, base.size, alpha)
        rows.append(dict(
            policy=name, baseline=baseline, n=x.size, n_baseline=base.size, mean=float(np.mean(x)),
            mean_baseline=float(np.mean(base)), diff=ci.estimate, ci_low=ci.low, ci_high=ci.high,
            pvalue=t.pvalue, cohens_d=d, power=pw,
        ))
    adjusted = correct([r["pvalue"] for r in rows], correction, alpha=alpha)
    return [
        Comparison(**r, pvalue_adjusted=float(p), rejected=bool(rej), correction=correction, confidence=confidence)
        for r, p, rej in zip(rows, adjusted.adjusted, adjusted.rejected)
    ]


def _paired_test(x: np.ndarray, base: np.ndarray) -> Welch:
    return paired(x, base)


def _one_sample_power(d: float, n: int, alpha: float) -> float:
    # two-sided one-sample (paired) t-test power from the noncentral t (statsmodels' TTestPower returns NaN
    # for large d·sqrt(n), where scipy's nct stays accurate)
    df = n - 1
    tc = scipy.stats.t.ppf(1 - alpha / 2, df)
    nc = d * math.sqrt(n)
    pw = float(scipy.stats.nct.sf(tc, df, nc) + scipy.stats.nct.cdf(-tc, df, nc))
    if not math.isfinite(pw):  # nct loses the far tail for very large nc, where the normal limit is exact enough
        pw = float(scipy.stats.norm.sf(tc - nc) + scipy.stats.norm.cdf(-tc - nc))
    return pw


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}g}"


def to_markdown(rows: Sequence[Comparison], *, digits: int = 3) -> str:
    """A GitHub-markdown table of :func:`compare` rows, one line per policy, numbers to ``digits``
    significant digits; a ``*`` marks rows whose adjusted p-value is at or below alpha.

    Example:
        >>> rows = compare({"fifo": [10.0, 11.0, 12.0], "qubo": [8.0, 9.5, 9.0]}, "fifo", n_resamples=999)
        >>> print(to_markdown(rows).splitlines()[0])
        | policy | n | mean | Δ vs fifo | 95% CI (BCa) | p (Welch) | p (holm) | Cohen's d | power |
    """
    if not rows:
        raise ConfigurationError("Argument `rows` must hold at least one Comparison")
    first = rows[0]
    header = ["policy", "n", "mean", f"Δ vs {first.baseline}", f"{first.confidence:.0%} CI (BCa)",
              "p (Welch)", f"p ({first.correction})", "Cohen's d", "power"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r in rows:
        cells = [
            r.policy + (" *" if r.rejected else ""), str(r.n), _fmt(r.mean, digits), _fmt(r.diff, digits),
            f"[{_fmt(r.ci_low, digits)}, {_fmt(r.ci_high, digits)}]", _fmt(r.pvalue, digits),
            _fmt(r.pvalue_adjusted, digits), _fmt(r.cohens_d, digits), _fmt(r.power, digits),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
