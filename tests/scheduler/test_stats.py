"""qsn.scheduler.stats against published worked examples, certified data and hand computations.

References (each stated at the test): Wikipedia "Welch's t-test" examples; NIST StRD one-way ANOVA
dataset SiRstv (certified values); Cohen (1988) power tables; Hedges & Olkin (1985) Table 2;
hand-computed Holm / Bonferroni / Benjamini–Hochberg adjustments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.meta_analysis import effectsize_smd

from qsn.errors import ConfigurationError
from qsn.scheduler import stats

# Wikipedia, "Welch's t-test", section Examples (three pairs; table of t, df and p to 2-3 digits).
WIKI = [
    (
        [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4],
        [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4],
        -2.46, 24.99, 0.021,
    ),
    (
        [17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8],
        [21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8,
         20.7, 21.7, 21.5, 22.5, 23.6, 21.5, 22.5, 23.5, 21.5, 21.8],
        -1.57, 9.90, 0.149,
    ),
    (
        [19.8, 20.4, 19.6, 17.8, 18.5, 18.9, 18.3, 18.9, 19.5, 22.0],
        [28.2, 26.6, 20.1, 23.3, 25.2, 22.1, 17.7, 27.6, 20.6, 13.7,
         23.2, 17.5, 20.6, 18.0, 23.9, 21.6, 24.3, 20.4, 24.0, 13.2],
        -2.22, 24.50, 0.036,
    ),
]

# NIST StRD, one-way ANOVA, "SiRstv" (silicon wafer resistivity, 5 instruments x 5 replicates),
# https://www.itl.nist.gov/div898/strd/anova/SiRstv.html — lower difficulty, 13 certified digits.
SIRSTV = [
    [196.3052, 196.1240, 196.1890, 196.2569, 196.3403],
    [196.3042, 196.3825, 196.1669, 196.3257, 196.0422],
    [196.1303, 196.2005, 196.2889, 196.0343, 196.1811],
    [196.2795, 196.1748, 196.1494, 196.1485, 195.9885],
    [196.2119, 196.1051, 196.1850, 196.0052, 196.2090],
]
SIRSTV_F = 1.18046237440255  # certified F statistic, between df 4, within df 20

# Chocolate chips per cookie, two brands: worked pooled-variance example of U. Washington QSCI 482
# lab 9 (faculty.washington.edu/conquest/482fall02/Labs/lab9.htm): means 30.6 and 20.0,
# s_p^2 = 8.03, t = 8.14 on 17 df, so d = 10.6 / sqrt(8.03) = 3.74.
BRAND_A = [32, 31, 28, 29, 31, 33, 35, 29, 28, 30]
BRAND_B = [23, 18, 15, 19, 22, 26, 17, 19, 21]


# ---------------------------------------------------------------------------------------------- Welch, ANOVA
@pytest.mark.parametrize("a, b, t, df, p", WIKI)
def test_welch_matches_wikipedia_examples(a, b, t, df, p):
    r = stats.welch(a, b)
    assert r.statistic == pytest.approx(t, abs=0.005)
    assert r.df == pytest.approx(df, abs=0.01)
    assert r.pvalue == pytest.approx(p, abs=0.0005)


def test_welch_one_sided_halves_the_two_sided_p():
    a, b = WIKI[0][:2]
    two = stats.welch(a, b).pvalue
    assert stats.welch(a, b, alternative="less").pvalue == pytest.approx(two / 2, rel=1e-12)
    assert stats.welch(a, b, alternative="greater").pvalue == pytest.approx(1 - two / 2, rel=1e-12)


def test_anova_matches_nist_sirstv_certified_values():
    r = stats.anova(*SIRSTV)
    assert r.statistic == pytest.approx(SIRSTV_F, rel=1e-11)
    assert (r.df_between, r.df_within) == (4, 20)
    # p from the certified F through the F(4, 20) survival function (R: pf(F, 4, 20, lower.tail=FALSE))
    assert r.pvalue == pytest.approx(scipy.stats.f.sf(SIRSTV_F, 4, 20), rel=1e-9)
    assert r.pvalue == pytest.approx(0.349, abs=0.001)


def test_anova_of_two_groups_is_the_squared_pooled_t():
    a, b = WIKI[1][:2]
    assert stats.anova(a, b).statistic == pytest.approx(scipy.stats.ttest_ind(a, b).statistic ** 2, rel=1e-12)


# ---------------------------------------------------------------------------------------------- corrections
P4 = [0.01, 0.04, 0.03, 0.005]


@pytest.mark.parametrize(
    "method, adjusted",
    [
        # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max
        ("holm", [0.03, 0.06, 0.06, 0.02]),
        ("bonferroni", [0.04, 0.16, 0.12, 0.02]),
        # BH: sorted p * 4 / rank -> 0.02, 0.02, 0.04, 0.04 -> running min from the top
        ("fdr_bh", [0.02, 0.04, 0.04, 0.02]),
    ],
)
def test_corrections_match_hand_computed_values(method, adjusted):
    r = stats.correct(P4, method)
    np.testing.assert_allclose(r.adjusted, adjusted, rtol=1e-12)
    np.testing.assert_array_equal(r.rejected, np.asarray(adjusted) <= 0.05)


@settings(max_examples=60, deadline=None)
@given(
    p=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=12),
    method=st.sampled_from(stats.CORRECTIONS),
)
def test_adjusted_p_is_at_least_raw_at_most_one_and_order_preserving(p, method):
    raw = np.asarray(p)
    adj = stats.correct(raw, method).adjusted
    assert np.all(adj >= raw - 1e-15)
    assert np.all(adj <= 1.0)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)  # a smaller raw p never gets a larger adjusted p


# ---------------------------------------------------------------------------------------------- effect sizes
def test_cohens_d_matches_worked_pooled_variance_example():
    assert stats.cohens_d(BRAND_A, BRAND_B) == pytest.approx(10.6 / math.sqrt(8.03), abs=0.005)
    assert stats.cohens_d(BRAND_B, BRAND_A) == pytest.approx(-stats.cohens_d(BRAND_A, BRAND_B), rel=1e-15)


@pytest.mark.parametrize("a, b", [(BRAND_A, BRAND_B)] + [w[:2] for w in WIKI])
def test_cohens_d_equals_pooled_t_times_sqrt_of_inverse_sizes(a, b):
    t = scipy.stats.ttest_ind(a, b, equal_var=True).statistic
    assert stats.cohens_d(a, b) == pytest.approx(t * math.sqrt(1 / len(a) + 1 / len(b)), rel=1e-12)


# Hedges' J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2)) in closed form, from Gamma(1/2) = sqrt(pi):
# J(2) = 1/sqrt(pi) = 0.5642, J(4) = sqrt(2/pi) = 0.7979, J(10) = 384 / (105 sqrt(5 pi)) = 0.9227
# (Hedges & Olkin 1985, Table 2).
@pytest.mark.parametrize(
    "m, j", [(2, 1 / math.sqrt(math.pi)), (4, math.sqrt(2 / math.pi)), (10, 384 / (105 * math.sqrt(5 * math.pi)))]
)
def test_hedges_correction_matches_the_closed_form(m, j):
    a = np.arange(1.0, 2.0 + m // 2)  # two samples whose sizes sum to m + 2
    b = np.arange(0.0, 1.0 + m - m // 2) * 1.5
    assert a.size + b.size - 2 == m
    ratio = stats.cohens_d(a, b, hedges=True) / stats.cohens_d(a, b)
    assert ratio == pytest.approx(j, rel=1e-12)
    if m >= 10:
        assert ratio == pytest.approx(1 - 3 / (4 * m - 1), abs=5e-4)  # Hedges' usual approximation


def test_hedges_g_agrees_with_statsmodels_approximation():
    # statsmodels uses J ~ 1 - 3/(4N - 9); the exact J differs by < 1e-3 relative at N = 19
    a, b = np.asarray(BRAND_A, float), np.asarray(BRAND_B, float)
    g_sm, _ = effectsize_smd(a.mean(), a.std(ddof=1), a.size, b.mean(), b.std(ddof=1), b.size)
    assert stats.cohens_d(a, b, hedges=True) == pytest.approx(g_sm, rel=1e-3)


# ---------------------------------------------------------------------------------------------- power
def test_power_matches_cohens_table():
    # Cohen (1988), Table 2.4.1: d = 0.5, alpha = 0.05 two-sided, n = 64 per group -> power 0.80
    assert stats.power(0.5, 64, 64, 0.05) == pytest.approx(0.80, abs=0.005)
    assert stats.power(0.5, 63, 63, 0.05) < 0.8 < stats.power(0.5, 64, 64, 0.05)
    assert stats.power(0.0, 30, 30, 0.05) == pytest.approx(0.05, abs=1e-6)  # no effect: the size of the test


@pytest.mark.parametrize("d, n", [(0.5, 64), (0.8, 26), (0.2, 393)])
def test_sample_size_matches_cohens_table(d, n):
    # Cohen (1988), Table 2.4.1, power 0.80, alpha 0.05 two-sided. His d = 0.2 entry (393) uses a
    # normal approximation; the exact noncentral-t answer is 394 (as G*Power), hence the tolerance of 1.
    got = stats.sample_size(d, 0.8, 0.05)
    assert abs(got - n) <= (1 if d == 0.2 else 0)
    assert stats.power(d, got, got) >= 0.8 > stats.power(d, got - 1, got - 1)


# ---------------------------------------------------------------------------------------------- bootstrap
def test_bca_interval_of_symmetric_data_brackets_the_mean_and_shrinks_with_n():
    # symmetric, deterministic data (evenly spaced quantiles of N(0, 1)): no simulation involved
    small = scipy.stats.norm.ppf((np.arange(20) + 0.5) / 20)
    large = scipy.stats.norm.ppf((np.arange(320) + 0.5) / 320)
    ci_s = stats.bootstrap_ci(small, n_resamples=4999)
    ci_l = stats.bootstrap_ci(large, n_resamples=4999)
    for ci, x in ((ci_s, small), (ci_l, large)):
        assert ci.low < x.mean() < ci.high
        assert ci.estimate == pytest.approx(x.mean(), abs=1e-15)
        # symmetric data: the interval is about symmetric around the mean
        assert (ci.high - x.mean()) == pytest.approx(x.mean() - ci.low, rel=0.25)
    # sqrt(n) scaling: 16x the data gives ~1/4 the width
    assert (ci_l.high - ci_l.low) / (ci_s.high - ci_s.low) == pytest.approx(0.25, rel=0.2)


def test_bca_interval_of_a_difference_agrees_with_the_welch_t_interval():
    # large, near-normal samples: the BCa interval of mean(a) - mean(b) ~ the Welch t interval
    a = scipy.stats.norm.ppf((np.arange(200) + 0.5) / 200) * 2.0 + 5.0
    b = scipy.stats.norm.ppf((np.arange(150) + 0.5) / 150) * 1.0 + 4.0
    ci = stats.bootstrap_ci((a, b), n_resamples=4999, seed=1)
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    half = scipy.stats.t.ppf(0.975, stats.welch(a, b).df) * se
    assert ci.estimate == pytest.approx(1.0, abs=1e-12)
    assert ci.low == pytest.approx(1.0 - half, abs=0.1 * half)
    assert ci.high == pytest.approx(1.0 + half, abs=0.1 * half)
    assert ci.standard_error == pytest.approx(se, rel=0.1)


def test_bootstrap_is_reproducible_by_seed_and_supports_other_statistics():
    x = np.arange(30.0) ** 1.5
    assert stats.bootstrap_ci(x, seed=3, n_resamples=999) == stats.bootstrap_ci(x, seed=3, n_resamples=999)
    med = stats.bootstrap_ci(x, np.median, method="percentile", n_resamples=999)
    assert med.estimate == pytest.approx(np.median(x)) and med.low <= med.estimate <= med.high


# ---------------------------------------------------------------------------------------------- compare
def test_compare_rows_agree_with_the_single_functions():
    rng = np.random.default_rng(0)
    samples = {"fifo": rng.normal(10, 1, 25), "qubo": rng.normal(9, 1, 20), "lpt": rng.normal(9.8, 1.5, 30)}
    rows = stats.compare(samples, "fifo", "holm", n_resamples=1999)
    assert [r.policy for r in rows] == ["qubo", "lpt"]
    base = samples["fifo"]
    ps = [stats.welch(samples[r.policy], base).pvalue for r in rows]
    np.testing.assert_allclose([r.pvalue_adjusted for r in rows], stats.correct(ps, "holm").adjusted, rtol=1e-12)
    for r in rows:
        x = samples[r.policy]
        assert r.diff == pytest.approx(x.mean() - base.mean(), rel=1e-12)
        assert r.ci_low < r.diff < r.ci_high
        assert r.cohens_d == pytest.approx(stats.cohens_d(x, base), rel=1e-12)
        assert r.power == pytest.approx(stats.power(abs(r.cohens_d), x.size, base.size), rel=1e-12)
        assert (r.n, r.n_baseline) == (x.size, base.size)
    assert rows[0].rejected and rows[0].diff < 0  # qubo is a clear 1-sigma improvement on 20-25 runs


def test_to_markdown_has_a_header_and_one_line_per_policy():
    rows = stats.compare({"fifo": [10.0, 11.0, 12.0, 11.5], "a": [8.0, 9.5, 9.0, 8.5], "b": [10.0, 12.0, 11.0, 11.2]},
                         "fifo", "fdr_bh", n_resamples=999)
    lines = stats.to_markdown(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert "p (fdr_bh)" in lines[0] and "Δ vs fifo" in lines[0] and "95% CI" in lines[0]
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert lines[2].startswith("| a") and lines[3].startswith("| b")


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: stats.welch([1.0], [1.0, 2.0]), "`a` must hold at least 2 values"),
        (lambda: stats.welch([1.0, np.nan], [1.0, 2.0]), "`a` must be finite, but value 1 is nan"),
        (lambda: stats.welch([1.0, 2.0], [[1.0, 2.0]]), r"`b` must have shape \(n,\)"),
        (lambda: stats.welch([1.0, 1.0], [2.0, 2.0]), "both constant"),
        (lambda: stats.anova([1.0, 2.0]), "at least 2 groups"),
        (lambda: stats.anova([1.0, 2.0], [np.inf, 1.0]), r"`groups\[1\]` must be finite"),
        (lambda: stats.correct([0.1, 0.2], "sidak_typo"), "`method` must be one of"),
        (lambda: stats.correct([0.1, 1.2]), r"must lie in \[0, 1\], but value 1 is 1.2"),
        (lambda: stats.correct([0.1, np.nan]), "must lie in"),
        (lambda: stats.cohens_d([3.0, 3.0], [3.0, 3.0]), "pooled standard deviation is 0"),
        (lambda: stats.bootstrap_ci([1.0, 2.0, 3.0], method="bca"), "`method` must be one of"),
        (lambda: stats.bootstrap_ci([1.0, 2.0, 3.0], confidence=95), r"`confidence` must be in \(0, 1\)"),
        (lambda: stats.bootstrap_ci(([1.0, 2.0], [5.0])), r"`data\[1\]` must hold at least 2 values"),
        (lambda: stats.bootstrap_ci([2.0, 2.0, 2.0, 2.0]), "degenerate"),
        (lambda: stats.power(0.5, 1), "`n1` must be an integer >= 2"),
        (lambda: stats.power(0.5, 10, alpha=1.5), "`alpha` must be in"),
        (lambda: stats.sample_size(0.0), "`effect_size` must be finite and nonzero"),
        (lambda: stats.compare({"a": [1.0, 2.0]}, "b"), "`baseline` must be a key"),
        (lambda: stats.compare({"a": [1.0, 2.0]}, "a"), "at least one other policy"),
        (lambda: stats.compare({"a": [1.0, 2.0], "b": [1.0, 3.0]}, "a", "hochberg"), "`correction` must be one of"),
        (lambda: stats.compare({"a": [1.0, 2.0], "b": [1.0]}, "a"), r"`samples\['b'\]` must hold at least 2"),
        (lambda: stats.to_markdown([]), "at least one Comparison"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ConfigurationError, match=match):
        call()


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        stats.welch([1.0], [2.0, 3.0])


# --- paired design (the report's runs are matched by seed) ---------------------------------------------------
def test_paired_t_matches_the_textbook_formula():
    a = np.array([12.1, 14.3, 11.8, 15.0, 13.2, 12.7])
    b = np.array([11.0, 13.9, 11.9, 13.8, 12.1, 12.0])
    d = a - b
    t = d.mean() / (d.std(ddof=1) / np.sqrt(d.size))  # Student (1908): t = mean(d) / (s_d / sqrt(n)), df = n - 1
    r = stats.paired(a, b)
    assert r.statistic == pytest.approx(t, rel=1e-12)
    assert r.df == d.size - 1
    assert r.pvalue == pytest.approx(2 * scipy.stats.t.sf(abs(t), d.size - 1), rel=1e-10)


def test_paired_errors():
    with pytest.raises(ConfigurationError, match="same length"):
        stats.paired([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ConfigurationError, match="every difference is the same"):
        stats.paired([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])


def test_compare_paired_uses_per_seed_differences():
    rng = np.random.default_rng(3)
    base = rng.normal(10.0, 3.0, 12)  # large seed-to-seed spread ...
    better = base - 0.5 + rng.normal(0.0, 0.1, 12)  # ... but a consistent per-seed gain
    (row,) = stats.compare({"fifo": base, "x": better}, "fifo", paired=True, n_resamples=999)
    (ind,) = stats.compare({"fifo": base, "x": better}, "fifo", n_resamples=999)
    d = better - base
    assert row.diff == pytest.approx(d.mean(), rel=1e-12)
    assert row.ci_low < d.mean() < row.ci_high < 0.0
    assert row.cohens_d == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12)
    assert row.pvalue < 1e-6 < 0.05 < ind.pvalue  # pairing removes the instance variance
    assert row.power == pytest.approx(1.0, abs=1e-6)


def test_one_sample_power_matches_statsmodels():
    from statsmodels.stats.power import TTestPower

    for d, n in ((0.3, 20), (0.5, 34), (1.0, 8)):
        assert stats._one_sample_power(d, n, 0.05) == pytest.approx(
            TTestPower().power(effect_size=d, nobs=n, alpha=0.05), rel=1e-9)


# --- window_bootstrap: a block bootstrap over arrival-time windows -------------------------------------
def test_window_bootstrap_identical_policies_give_a_zero_width_difference():
    rng = np.random.default_rng(1)
    x = rng.lognormal(0.0, 1.0, 500)
    t = np.sort(rng.uniform(0, 100, 500))
    for q in (None, 0.99):
        rows = stats.window_bootstrap({"fifo": x, "twin": x.copy()}, t, "fifo", quantile=q, n_resamples=300)
        assert [r.policy for r in rows] == ["fifo", "twin"]
        assert all(r.diff == r.diff_low == r.diff_high == 0.0 for r in rows)
        assert rows[1].low == rows[0].low and rows[1].high == rows[0].high and rows[0].low < rows[0].high


def test_window_bootstrap_estimates_are_the_pooled_statistics():
    rng = np.random.default_rng(2)
    a, b = rng.exponential(1.0, 203), rng.exponential(2.0, 203)
    t = rng.uniform(0, 1, 203)  # unsorted arrivals: windows follow arrival order
    rows = stats.window_bootstrap({"a": a, "b": b}, t, "a", windows=7, n_resamples=50)
    assert rows[1].estimate == pytest.approx(b.mean(), rel=1e-12)
    assert rows[1].diff == pytest.approx(b.mean() - a.mean(), rel=1e-12)
    p99 = stats.window_bootstrap({"a": a, "b": b}, t, "a", windows=7, quantile=0.99, n_resamples=50)
    assert p99[1].estimate == pytest.approx(np.quantile(b, 0.99), rel=1e-12)


def test_window_bootstrap_standard_error_matches_the_block_formula():
    # K equal windows: the bootstrap variance of the pooled mean is var_ddof0(window means) / K, exactly in
    # expectation; 20,000 resamples pin the interval's half-width to about 1%
    rng = np.random.default_rng(3)
    k, m = 20, 50
    x = (rng.normal(0, 1, (k, 1)) + rng.normal(0, 0.3, (k, m))).ravel()
    t = np.arange(x.size, dtype=float)
    row = stats.window_bootstrap({"p": x}, t, "p", windows=k, n_resamples=20000, confidence=0.95)[0]
    se = np.std(x.reshape(k, m).mean(axis=1)) / math.sqrt(k)
    assert (row.high - row.low) / 2 == pytest.approx(1.96 * se, rel=0.05)


def test_window_bootstrap_covers_the_true_mean_at_about_the_nominal_rate():
    # windows whose means are iid N(mu, 1): the percentile interval should cover mu in ~95% of replications
    # (a percentile interval from 20 blocks undercovers a little, so the band is asymmetric)
    rng = np.random.default_rng(4)
    mu, k, m, hits, reps = 3.0, 20, 10, 0, 300
    t = np.arange(k * m, dtype=float)
    for i in range(reps):
        x = (mu + rng.normal(0, 1, (k, 1)) + rng.normal(0, 0.1, (k, m))).ravel()
        r = stats.window_bootstrap({"p": x}, t, "p", windows=k, n_resamples=400, seed=i)[0]
        hits += r.low <= mu <= r.high
    assert 0.88 <= hits / reps <= 0.99


def test_window_bootstrap_pairs_the_difference_across_policies():
    # b = a + a shift of 1 in every task: paired, the difference interval is exactly [1, 1] however noisy a is
    rng = np.random.default_rng(5)
    a = rng.lognormal(0, 2, 400)
    rows = stats.window_bootstrap({"a": a, "b": a + 1.0}, np.arange(400.0), "a", n_resamples=200)
    assert rows[1].diff_low == pytest.approx(1.0) and rows[1].diff_high == pytest.approx(1.0)
    assert rows[1].high - rows[1].low > 1.0  # while each policy's own interval is wide


@pytest.mark.parametrize("kwargs, match", [
    (dict(baseline="nope"), "`baseline` must be a key"),
    (dict(windows=1), "`windows` must be an integer in \\[2, 10\\]"),
    (dict(windows=11), "`windows` must be an integer in \\[2, 10\\]"),
    (dict(quantile=1.0), "`quantile` must be None"),
    (dict(n_resamples=1), "`n_resamples`"),
    (dict(confidence=1.5), "confidence"),
])
def test_window_bootstrap_rejects_bad_options(kwargs, match):
    args = dict(baseline="a", windows=5) | kwargs
    with pytest.raises(ConfigurationError, match=match):
        stats.window_bootstrap({"a": np.ones(10)}, np.arange(10.0), args.pop("baseline"), **args)


def test_window_bootstrap_names_the_bad_values():
    with pytest.raises(ConfigurationError, match=r"`values\['b'\]` must have shape \(10,\)"):
        stats.window_bootstrap({"a": np.ones(10), "b": np.ones(9)}, np.arange(10.0), "a")
    with pytest.raises(ConfigurationError, match=r"`values\['a'\]` must be finite, but value 3 is nan"):
        stats.window_bootstrap({"a": np.where(np.arange(10) == 3, np.nan, 1.0)}, np.arange(10.0), "a")
