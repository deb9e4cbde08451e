"""Connectivity rules, weights and delays of ``qsn.networks`` projections, against the laws they claim.

Each test builds a network (no run) with a fixed key and reads the synapse list back through
``Network.synapses`` (the event path keeps every synapse, multapses included). The references are
the textbook laws, evaluated with SciPy:

* ``fixed_probability(p)``: every pair independently with probability ``p`` — the in-degree of a
  target is ``Binomial(n_pre, p)``, the out-degree of a source ``Binomial(n_post, p)``, the total
  ``Binomial(n_pre n_post, p)``;
* ``fixed_indegree(k)``: exactly ``k`` per target, sources uniform (multinomial);
* ``fixed_total_number(m)``: exactly ``m``, pre and post uniform;
* distributions: the named law (Kolmogorov–Smirnov), delays rounded to whole steps.

Statistical bounds: goodness-of-fit p-values must exceed ``P_MIN = 1e-3`` and means must lie within
``SIGMA = 5`` standard errors. The keys are fixed, so every outcome is reproducible.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

import qsn
from qsn.errors import ConfigurationError
from qsn.networks.connectivity import build_key
from qsn.networks import (
    Delta,
    Network,
    NeuronGroup,
    PoissonGroup,
    Projection,
    all_to_all,
    explicit,
    fixed_indegree,
    fixed_probability,
    fixed_total_number,
    lognormal,
    normal,
    one_to_one,
    uniform,
)


P_MIN = 1e-3  # smallest accepted goodness-of-fit p-value
SIGMA = 5.0  # width of mean bounds, in standard errors
DT = 0.1  # ms
PARAMS = qsn.NeuronParams(delta=0.0, dt=DT)


def _target(n: int, name: str = "post") -> NeuronGroup:
    return NeuronGroup(n, PARAMS, receptors={"exc": Delta()}, name=name)


def _synapses(
    pre_n: int | None,
    post_n: int,
    rule,
    *,
    key: int = 0,
    self_projection: bool = False,
    propagation: str = "event",
    **kwargs,
) -> tuple[dict, Network]:
    """Build ``pre -> post`` (or ``post -> post`` when ``self_projection``) and return its synapse list."""
    net = Network(dtype=np.float64)
    post = net.add(_target(post_n))
    pre = post if self_projection else net.add(PoissonGroup(pre_n, 0.0, name="pre"))
    net.add(Projection(pre, post, rule, receptor="exc", propagation=propagation, name="p", **kwargs))
    net.build(jax.random.key(key))
    return net.synapses("p"), net


def _chi2_discrete(samples: np.ndarray, dist) -> float:
    """p-value of a chi-square test of integer ``samples`` against the frozen discrete ``dist``, with
    bins merged so that every expected count is at least 5."""
    n = samples.size
    lo, hi = int(dist.ppf(1e-9)), int(dist.ppf(1 - 1e-9)) + 1
    edges = [lo]  # bins [edges[i], edges[i+1]) accumulate >= 5 expected counts each
    acc = 0.0
    for k in range(lo, hi + 1):
        acc += dist.pmf(k) * n
        if acc >= 5:
            edges.append(k + 1)
            acc = 0.0
    edges[-1] = hi + 1  # the remainder joins the last bin
    probs = np.diff(dist.cdf(np.array(edges) - 1))
    probs[0] += dist.cdf(lo - 1)
    probs[-1] += dist.sf(hi)
    observed = np.histogram(samples, bins=np.array(edges) - 0.5)[0]
    observed[0] += np.sum(samples < lo)
    observed[-1] += np.sum(samples > hi)
    assert observed.sum() == n
    return float(st.chisquare(observed, probs * n).pvalue)


def _chi2_uniform(counts: np.ndarray) -> float:
    return float(st.chisquare(counts).pvalue)


# ------------------------------------------------------------------------------------ random rules
# One network holds every random projection, so the build (and its compilation) is paid once.


@pytest.fixture(scope="module")
def random_net() -> Network:
    net = Network(dtype=np.float64)
    src500 = net.add(PoissonGroup(500, 0.0, name="src500"))
    src1500 = net.add(PoissonGroup(1500, 0.0, name="src1500"))
    src50 = net.add(PoissonGroup(50, 0.0, name="src50"))
    src30 = net.add(PoissonGroup(30, 0.0, name="src30"))
    a = net.add(_target(400, "a"))
    b = net.add(_target(1500, "b"))
    c = net.add(_target(300, "c"))
    e = net.add(_target(40, "e"))
    ev = {"receptor": "exc", "propagation": "event"}
    net.add(
        Projection(src500, a, fixed_probability(0.05), name="fp", **ev),
        Projection(src1500, b, fixed_probability(0.002), name="fp_sparse", **ev),
        Projection(c, c, fixed_probability(0.5), name="fp_dense", **ev),  # autapses allowed (default)
        Projection(c, c, fixed_probability(0.1), allow_autapses=False, name="fp_self_noaut", **ev),
        Projection(src50, a, fixed_indegree(10), name="in", **ev),
        Projection(src30, a, fixed_indegree(25), allow_multapses=False, name="in_nomulti", **ev),
        Projection(e, e, fixed_indegree(8), allow_autapses=False, name="in_noaut", **ev),
        Projection(e, e, fixed_total_number(8000), allow_autapses=False, name="tot_noaut", **ev),
    )
    return net.build(jax.random.key(1))


# ------------------------------------------------------------------------------------ fixed_probability


def test_fixed_probability_degrees_follow_the_binomial_law(random_net):
    n_pre, n_post, p = 500, 400, 0.05
    syn = random_net.synapses("fp")
    m = syn["pre"].size
    assert random_net.synapse_count["fp"] == m
    indeg = np.bincount(syn["post"], minlength=n_post)
    outdeg = np.bincount(syn["pre"], minlength=n_pre)
    for deg, trials, count in ((indeg, n_pre, n_post), (outdeg, n_post, n_pre)):
        law = st.binom(trials, p)
        # mean within SIGMA standard errors, sample variance within SIGMA of its own standard error
        assert abs(deg.mean() - law.mean()) < SIGMA * law.std() / np.sqrt(count)
        var_se = law.var() * np.sqrt(2.0 / (count - 1))
        assert abs(deg.var(ddof=1) - law.var()) < SIGMA * var_se
        assert _chi2_discrete(deg, law) > P_MIN
    # total count: Binomial(n_pre n_post, p), exact two-sided test
    assert st.binomtest(m, n_pre * n_post, p).pvalue > P_MIN


@pytest.mark.parametrize("name, n_pre, n_post, p", [("fp_sparse", 1500, 1500, 0.002), ("fp_dense", 300, 300, 0.5)])
def test_fixed_probability_total_count_sparse_and_dense(random_net, name, n_pre, n_post, p):
    syn = random_net.synapses(name)
    assert st.binomtest(syn["pre"].size, n_pre * n_post, p).pvalue > P_MIN
    # the position of a synapse in its row is uniform: post indices pooled over rows
    assert _chi2_uniform(np.histogram(syn["post"], bins=10, range=(0, n_post))[0]) > P_MIN
    assert _chi2_discrete(np.bincount(syn["post"], minlength=n_post), st.binom(n_pre, p)) > P_MIN


@pytest.mark.parametrize("name", ["fp", "fp_dense", "fp_sparse"])
def test_fixed_probability_has_no_multapses_and_sorted_list(random_net, name):
    syn = random_net.synapses(name)
    pairs = syn["pre"].astype(np.int64) * 10_000 + syn["post"]
    assert np.unique(pairs).size == pairs.size
    assert np.all(np.diff(pairs) > 0)  # sorted by (pre, post), as Network.synapses documents


def test_fixed_probability_autapses_kept_by_default_and_removed_on_request(random_net):
    # with autapses allowed (p = 0.5 self-projection), the diagonal is Binomial(n, p) like any pair
    syn_on = random_net.synapses("fp_dense")
    n_aut = int(np.sum(syn_on["pre"] == syn_on["post"]))
    assert st.binomtest(n_aut, 300, 0.5).pvalue > P_MIN
    n, p = 300, 0.1
    syn_off = random_net.synapses("fp_self_noaut")
    assert not np.any(syn_off["pre"] == syn_off["post"])
    # removing the diagonal leaves every other pair alone: in-degree ~ Binomial(n - 1, p)
    indeg = np.bincount(syn_off["post"], minlength=n)
    assert _chi2_discrete(indeg, st.binom(n - 1, p)) > P_MIN


def test_fixed_probability_no_autapses_between_overlapping_views():
    net = Network(dtype=np.float64)
    g = net.add(_target(40, "g"))
    net.add(Projection(g[:30], g, fixed_probability(0.5), receptor="exc", allow_autapses=False, name="p"))
    net.build(jax.random.key(5))
    syn = net.synapses("p")
    assert not np.any(syn["pre"] == syn["post"])


# ------------------------------------------------------------------------------------ fixed_indegree


def test_fixed_indegree_exact_count_and_uniform_sources(random_net):
    n_pre, n_post, k = 50, 400, 10
    syn = random_net.synapses("in")
    assert np.all(np.bincount(syn["post"], minlength=n_post) == k)
    assert random_net.synapse_count["in"] == n_post * k
    # sources: each draw uniform over n_pre -> pooled counts multinomial with equal cells
    assert _chi2_uniform(np.bincount(syn["pre"], minlength=n_pre)) > P_MIN
    # with multapses allowed, the number of distinct sources per target follows the occupancy law:
    # E[distinct] = n_pre (1 - (1 - 1/n_pre)^k); the mean over targets within SIGMA SE
    distinct = np.array([np.unique(syn["pre"][syn["post"] == j]).size for j in range(n_post)])
    expected = n_pre * (1 - (1 - 1 / n_pre) ** k)
    assert abs(distinct.mean() - expected) < SIGMA * distinct.std(ddof=1) / np.sqrt(n_post)
    assert distinct.min() < k  # multapses do occur (P(no repeat in a row) ~ 0.4, in none of 400 rows ~ 0)


def test_fixed_indegree_without_multapses_draws_distinct_uniform_sources(random_net):
    n_pre, n_post, k = 30, 400, 25  # k close to n_pre: many redraws
    syn = random_net.synapses("in_nomulti")
    for j in range(n_post):
        sources = syn["pre"][syn["post"] == j]
        assert sources.size == k and np.unique(sources).size == k
    # a uniform k-subset includes each source with probability k/n_pre: pooled counts equal in law
    assert _chi2_uniform(np.bincount(syn["pre"], minlength=n_pre)) > P_MIN


def test_fixed_indegree_without_autapses_is_uniform_over_the_others(random_net):
    n, k = 40, 8
    syn = random_net.synapses("in_noaut")
    assert not np.any(syn["pre"] == syn["post"])
    assert np.all(np.bincount(syn["post"], minlength=n) == k)
    # the offset (pre - post) mod n must be uniform on 1..n-1 (a skipped-diagonal bias would show)
    offsets = (syn["pre"] - syn["post"]) % n
    assert offsets.min() >= 1
    assert _chi2_uniform(np.bincount(offsets, minlength=n)[1:]) > P_MIN


# ------------------------------------------------------------------------------------ fixed_total_number


def test_fixed_total_number_exact_count_uniform_pairs(random_net):
    n, m = 40, 8000
    syn = random_net.synapses("tot_noaut")
    assert syn["pre"].size == m and random_net.synapse_count["tot_noaut"] == m
    assert not np.any(syn["pre"] == syn["post"])
    # uniform over the n (n - 1) allowed ordered pairs (5.1 expected per cell)
    cells = np.bincount(syn["pre"] * n + syn["post"], minlength=n * n).reshape(n, n)
    assert _chi2_uniform(cells[~np.eye(n, dtype=bool)]) > P_MIN


# ------------------------------------------------------------------------------------ all_to_all, one_to_one


def test_deterministic_rules_counts_and_pairs():
    net = Network(dtype=np.float64)
    src = net.add(PoissonGroup(7, 0.0, name="src"))
    t5 = net.add(_target(5, "t5"))
    t7 = net.add(_target(7, "t7"))
    ev = {"receptor": "exc", "propagation": "event"}
    net.add(
        Projection(src, t5, fixed_probability(0.0), name="fp0", **ev),
        Projection(src, t5, fixed_probability(1.0), name="fp1", **ev),
        # deterministic rules accept per-synapse arrays, in their (pre, post) order
        Projection(src, t5, all_to_all(), weight=np.arange(35.0), name="a2a", **ev),
        Projection(t7, t7, all_to_all(), allow_autapses=False, name="a2a_noaut", **ev),
        # one_to_one onto itself is all autapses, kept by default
        Projection(t7, t7, one_to_one(), weight=np.arange(7.0) - 3.0, delay=np.arange(7) * DT, name="o2o"),
    )
    net.build(jax.random.key(0))

    def pairs(name: str) -> set:
        syn = net.synapses(name)
        return set(zip(syn["pre"].tolist(), syn["post"].tolist()))

    every = {(i, j) for i in range(7) for j in range(5)}
    assert net.synapse_count["fp0"] == 0 and pairs("fp0") == set()
    assert net.synapse_count["fp1"] == 35 and pairs("fp1") == every
    assert net.synapse_count["a2a"] == 35 and pairs("a2a") == every
    assert net.synapse_count["a2a_noaut"] == 42 and pairs("a2a_noaut") == {
        (i, j) for i in range(7) for j in range(7) if i != j
    }
    assert net.synapse_count["o2o"] == 7 and pairs("o2o") == {(i, i) for i in range(7)}
    a2a = net.synapses("a2a")
    np.testing.assert_array_equal(a2a["weight"], a2a["pre"] * 5 + a2a["post"])
    o2o = net.synapses("o2o")
    np.testing.assert_array_equal(o2o["weight"], o2o["pre"] - 3.0)
    np.testing.assert_array_equal(o2o["delay"], o2o["pre"])


# ------------------------------------------------------------------------------------ views


def test_views_map_local_indices_to_group_indices():
    net = Network(dtype=np.float64)
    src = net.add(PoissonGroup(12, 0.0, name="src"))
    g = net.add(_target(10, "g"))
    net.add(
        Projection(
            src[5:9],
            g[[7, 2, 4]],
            explicit([0, 3, 1, 2], [2, 0, 1, 1]),
            weight=[1.0, 2.0, 3.0, 4.0],
            receptor="exc",
            name="ex",
        )
    )
    net.add(Projection(src[::3], g[1:5], one_to_one(), receptor="exc", name="o2o"))
    net.add(Projection(src[:6], g[6:], fixed_probability(0.7), receptor="exc", name="fp"))
    net.build(jax.random.key(11))
    ex = net.synapses("ex")
    got = sorted(zip(ex["pre"].tolist(), ex["post"].tolist(), ex["weight"].tolist()))
    # local (0 -> 2) is src 5 -> g 4, (3 -> 0) is src 8 -> g 7, (1 -> 1) src 6 -> g 2, (2 -> 1) src 7 -> g 2
    assert got == [(5, 4, 1.0), (6, 2, 3.0), (7, 2, 4.0), (8, 7, 2.0)]
    o2o = net.synapses("o2o")
    assert sorted(zip(o2o["pre"].tolist(), o2o["post"].tolist())) == [(0, 1), (3, 2), (6, 3), (9, 4)]
    fp = net.synapses("fp")
    assert fp["pre"].size > 0 and set(fp["pre"].tolist()) <= set(range(6)) and set(fp["post"].tolist()) <= {6, 7, 8, 9}
    # the (n_pre, n_post) weight matrix of the whole groups puts the synapses at group indices
    w = net.weights("ex")
    assert w.shape == (12, 10)
    expected = np.zeros((12, 10))
    expected[5, 4], expected[8, 7], expected[6, 2], expected[7, 2] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(w, expected)


# ------------------------------------------------------------------------------------ explicit


def _explicit_net(pre, post, weight, delay_ms, n_pre, n_post, propagation):
    net = Network(dtype=np.float64)
    src = net.add(PoissonGroup(n_pre, 0.0, name="src"))
    g = net.add(_target(n_post, "g"))
    net.add(
        Projection(
            src,
            g,
            explicit(pre, post),
            weight=weight,
            delay=delay_ms,
            receptor="exc",
            propagation=propagation,
            name="p",
        )
    )
    net.build(jax.random.key(0))
    return net


def _expected_list(pre, post, weight, delay_steps):
    order = np.lexsort((post, pre))  # stable: multapses keep the user's order
    return {k: np.asarray(v)[order] for k, v in dict(pre=pre, post=post, weight=weight, delay=delay_steps).items()}


def test_explicit_keeps_user_weights_and_delays_with_their_synapses():
    rng = np.random.default_rng(12)
    n_pre, n_post, m = 8, 6, 30
    pre, post = rng.integers(0, n_pre, m), rng.integers(0, n_post, m)  # unsorted, with multapses
    weight = rng.normal(0.0, 1.0, m)
    steps = rng.integers(0, 15, m)
    net = _explicit_net(pre, post, weight, steps * DT, n_pre, n_post, "event")
    got, want = net.synapses("p"), _expected_list(pre, post, weight, steps)
    for k in ("pre", "post", "weight", "delay"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    dense = np.zeros((n_pre, n_post))
    np.add.at(dense, (pre, post), weight)
    np.testing.assert_allclose(net.weights("p"), dense, rtol=0, atol=1e-14)


def test_explicit_dense_path_lists_distinct_synapses():
    # without repeated (pre, post, delay) triples the dense path lists every synapse as given
    pre = np.array([3, 0, 2, 0, 1, 3])
    post = np.array([1, 2, 0, 0, 2, 2])
    weight = np.array([0.5, -1.25, 2.0, 3.0, 0.75, -0.5])
    steps = np.array([4, 0, 7, 2, 2, 4])
    net = _explicit_net(pre, post, weight, steps * DT, 4, 3, "dense")
    assert net._specs["p"].path == "dense"
    got, want = net.synapses("p"), _expected_list(pre, post, weight, steps)
    for k in ("pre", "post", "weight", "delay"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


# group sizes fixed so that examples share compiled shapes (each new shape recompiles the build)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(data=hst.data())
def test_explicit_round_trip_property(data):
    n_pre, n_post = 4, 3
    m = data.draw(hst.integers(0, 8), label="m")
    pre = np.array(data.draw(hst.lists(hst.integers(0, n_pre - 1), min_size=m, max_size=m), label="pre"), np.int64)
    post = np.array(data.draw(hst.lists(hst.integers(0, n_post - 1), min_size=m, max_size=m), label="post"), np.int64)
    weight = np.array(data.draw(hst.lists(hst.floats(-1e3, 1e3, allow_nan=False), min_size=m, max_size=m), label="w"))
    steps = np.array(data.draw(hst.lists(hst.integers(0, 6), min_size=m, max_size=m), label="d"), np.int64)
    net = _explicit_net(pre, post, weight, steps * DT, n_pre, n_post, "event")
    got, want = net.synapses("p"), _expected_list(pre, post, weight, steps)
    assert net.synapse_count["p"] == m
    for k in ("pre", "post", "weight", "delay"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


# ------------------------------------------------------------------------------------ distributions


def test_weight_distributions_follow_their_laws():
    net = Network(dtype=np.float64)
    src = net.add(PoissonGroup(100, 0.0, name="src"))
    g = net.add(_target(100, "g"))
    specs = {
        "normal": (normal(1.0, 0.5, clip_sign=False), st.norm(1.0, 0.5)),
        "lognormal": (lognormal(-0.5, 0.4), st.lognorm(s=0.4, scale=np.exp(-0.5))),
        "uniform": (uniform(-2.0, 3.0), st.uniform(-2.0, 5.0)),
    }
    for name, (dist, _) in specs.items():
        net.add(Projection(src, g, all_to_all(), weight=dist, receptor="exc", propagation="event", name=name))
    net.add(
        Projection(src, g, all_to_all(), weight=normal(0.5, 1.0), receptor="exc", propagation="event", name="clipped")
    )
    net.add(
        Projection(
            src,
            g,
            all_to_all(),
            weight=lognormal(0.0, 0.3, negative=True),
            receptor="exc",
            propagation="event",
            name="neg",
        )
    )
    net.build(jax.random.key(13))
    for name, (_, law) in specs.items():
        w = net.synapses(name)["weight"]
        assert w.size == 10_000
        assert st.kstest(w, law.cdf).pvalue > P_MIN, name
    # normal(..., clip_sign=True): values of the wrong sign become 0, a mass Phi(-mean/std) at 0
    w = net.synapses("clipped")["weight"]
    assert w.min() == 0.0
    assert st.binomtest(int(np.sum(w == 0.0)), w.size, st.norm.cdf(-0.5)).pvalue > P_MIN
    assert st.kstest(w[w > 0], st.truncnorm(-0.5, np.inf, 0.5, 1.0).cdf).pvalue > P_MIN
    w = net.synapses("neg")["weight"]
    assert w.max() < 0 and st.kstest(-w, st.lognorm(s=0.3).cdf).pvalue > P_MIN


def test_delay_distribution_rounds_to_whole_steps():
    net = Network(dtype=np.float64)
    src = net.add(PoissonGroup(100, 0.0, name="src"))
    g = net.add(_target(100, "g"))
    net.add(Projection(src, g, all_to_all(), delay=uniform(0.1, 2.0), receptor="exc", propagation="event", name="p"))
    net.add(Projection(src, g, one_to_one(), delay=0.349, receptor="exc", name="fixed"))
    net.build(jax.random.key(14))
    d = net.synapses("p")["delay"]
    assert d.min() >= 1 and d.max() <= 20
    # round(U(0.1, 2.0)/0.1): step 1 has mass 0.05/1.9, steps 2..19 0.1/1.9 each, step 20 0.05/1.9
    probs = np.array([0.05] + [0.1] * 18 + [0.05]) / 1.9
    counts = np.bincount(d, minlength=21)[1:]
    assert st.chisquare(counts, probs * d.size).pvalue > P_MIN
    np.testing.assert_array_equal(net.synapses("fixed")["delay"], np.full(100, 3))


# ------------------------------------------------------------------------------------ construction
# The rules write ELL rows directly (networks/connectivity.py). These tests read the built arrays and
# run the multi-block paths with a small block (every kernel then loops over many blocks).


def _rows_of(net: Network, name: str) -> tuple[np.ndarray, int]:
    return np.asarray(net._arrays[name].targets), net._specs[name].n_post


def _assert_ell_layout(targets: np.ndarray, n_post: int, count: int) -> None:
    """Rows increasing and left-packed, padding == n_post, the extra last row empty, width = longest row."""
    valid = targets < n_post
    assert np.all(targets[valid] >= 0) and np.all(targets[~valid] == n_post)
    lengths = valid.sum(axis=1)
    assert np.array_equal(valid, np.arange(targets.shape[1]) < lengths[:, None])  # left-packed
    assert lengths[-1] == 0 and lengths.sum() == count and targets.shape[1] == max(1, lengths.max())
    rows = np.where(valid, targets, np.iinfo(np.int32).max)
    assert np.all(np.diff(rows, axis=1) >= 0)  # increasing within a row (multapses adjacent)


@pytest.fixture
def small_block(monkeypatch):
    """Kernels of 1,024 entries: every rule and every per-synapse draw spans many blocks."""
    from qsn.networks import connectivity

    monkeypatch.setattr(connectivity, "BLOCK", 1024)
    monkeypatch.setattr(connectivity, "_TILE_MEAN", 8)  # fixed_probability: tiles of 128 targets


def _blocked_net(key: int) -> Network:
    net = Network(dtype=np.float64)
    src = net.add(PoissonGroup(300, 0.0, name="src"))
    a = net.add(_target(200, "a"))
    ev = {"receptor": "exc", "propagation": "event"}
    net.add(
        Projection(src, a, fixed_probability(0.1), weight=normal(1.0, 0.2), delay=uniform(0.1, 1.0), name="fp", **ev),
        Projection(a, a, fixed_probability(0.1), allow_autapses=False, name="fp_noaut", **ev),
        Projection(src, a, fixed_indegree(30), name="in", **ev),  # 34 targets per chunk: 6 chunks
        Projection(src[:40], a, fixed_indegree(35), allow_multapses=False, name="in_nomulti", **ev),
        Projection(src, a, fixed_total_number(20_000), name="tot", **ev),
        Projection(a, a, fixed_total_number(20_000), allow_autapses=False, name="tot_noaut", **ev),
        Projection(src[100:], a[50:], all_to_all(), name="a2a", **ev),
    )
    return net.build(jax.random.key(key))


def test_many_blocks_keep_the_laws_and_the_layout(small_block):
    net = _blocked_net(21)
    for name in net.projections:
        targets, n_post = _rows_of(net, name)
        _assert_ell_layout(targets, n_post, net.synapse_count[name])
    # fixed_probability: Binomial in- and out-degrees, no autapses on request
    fp = net.synapses("fp")
    assert _chi2_discrete(np.bincount(fp["pre"], minlength=300), st.binom(200, 0.1)) > P_MIN
    assert _chi2_discrete(np.bincount(fp["post"], minlength=200), st.binom(300, 0.1)) > P_MIN
    noaut = net.synapses("fp_noaut")
    assert not np.any(noaut["pre"] == noaut["post"])
    assert _chi2_discrete(np.bincount(noaut["post"], minlength=200), st.binom(199, 0.1)) > P_MIN
    # weights and delays drawn per synapse over many blocks: their laws
    assert st.kstest(fp["weight"], st.norm(1.0, 0.2).cdf).pvalue > P_MIN
    probs = np.array([0.05] + [0.1] * 8 + [0.05]) / 0.9  # round(U(0.1, 1.0) / 0.1) on steps 1..10
    assert st.chisquare(np.bincount(fp["delay"], minlength=11)[1:], probs * fp["delay"].size).pvalue > P_MIN
    # fixed_indegree across chunks: exactly k per target, sources uniform, distinct when asked
    ind = net.synapses("in")
    assert np.all(np.bincount(ind["post"], minlength=200) == 30)
    assert _chi2_uniform(np.bincount(ind["pre"], minlength=300)) > P_MIN
    nom = net.synapses("in_nomulti")
    assert np.all(np.bincount(nom["post"], minlength=200) == 35) and nom["pre"].max() < 40
    assert np.unique(nom["pre"] * 1000 + nom["post"]).size == nom["pre"].size
    # fixed_total_number: exact m, row lengths Binomial(m, 1/n_pre) (multinomial margins), uniform targets
    tot = net.synapses("tot")
    assert tot["pre"].size == 20_000
    assert _chi2_discrete(np.bincount(tot["pre"], minlength=300), st.binom(20_000, 1 / 300)) > P_MIN
    assert _chi2_uniform(np.bincount(tot["post"], minlength=200)) > P_MIN
    tna = net.synapses("tot_noaut")
    assert tna["pre"].size == 20_000 and not np.any(tna["pre"] == tna["post"])
    assert _chi2_uniform(np.bincount((tna["pre"] - tna["post"]) % 200, minlength=200)[1:]) > P_MIN
    # all_to_all between views: every pair once, at group indices
    a2a = net.synapses("a2a")
    assert set(zip(a2a["pre"].tolist(), a2a["post"].tolist())) == {(i, j) for i in range(100, 300) for j in range(50, 200)}


def _owner_rows(proj: Projection, key, owners) -> list[np.ndarray]:
    """Each owner's ELL rows (targets as group indices, weights, delays) drawn on their own, joined row by row."""
    parts = []
    for lo, hi in owners:
        plan = proj.plan(key, DT, owner=(lo, hi))
        targets, w, d, drawn = proj.write(plan, DT, np.float64, width=max(plan.rows.width, 3), offset=lo, pad=-1)
        assert drawn.count == int(np.sum(targets >= 0))
        parts.append((np.where(targets >= 0, targets + lo, -1), w, d))
    return parts


@pytest.mark.parametrize("owners", [((0, 37), (37, 130), (130, 200)), ((0, 0), (0, 199), (199, 200))])
def test_the_synapses_onto_a_range_of_targets_are_the_whole_draws(small_block, owners):
    # what a partitioned network's devices draw, each for its own slice: row by row, the whole draw's
    # synapses (targets, weights, delays, in order) onto that slice, drawn from the tiles' keys alone
    src, a = PoissonGroup(300, 0.0, name="src"), _target(200, "a")
    kw = dict(receptor="exc", propagation="event", weight=normal(1.0, 0.2), delay=uniform(0.1, 1.0))
    projections = [
        Projection(src, a, fixed_probability(0.1), **kw),
        Projection(a, a, fixed_probability(0.1), allow_autapses=False, **kw),
        Projection(src[::3], a, fixed_indegree(30), **kw),  # a scattered view of the source: rows in place
        Projection(src[:40], a, fixed_indegree(35), allow_multapses=False, **kw),
        Projection(src, a[50:], fixed_total_number(20_000), **kw),  # a view of the target
        Projection(a, a, fixed_total_number(20_000), allow_autapses=False, **kw),
    ]
    key = jax.random.key(5)
    for proj in projections:
        assert proj.by_targets
        whole_t, whole_w, whole_d, m, _ = proj.draw(key, DT, np.float64)
        parts = _owner_rows(proj, key, owners)
        for r in range(whole_t.shape[0]):
            valid = whole_t[r] < a.n
            got = [np.concatenate([p[i][r][p[0][r] >= 0] for p in parts]) for i in range(3)]
            np.testing.assert_array_equal(got[0], whole_t[r][valid])
            np.testing.assert_array_equal(got[1], whole_w[r][valid])
            np.testing.assert_array_equal(got[2], whole_d[r][valid])
    with pytest.raises(ConfigurationError, match="drawn whole only"):
        Projection(src, a, all_to_all(), receptor="exc").plan(key, DT, owner=(0, 10))
    bkey = build_key(key)
    with pytest.raises(ConfigurationError, match=r"all_to_all: the synapses onto a range of targets are drawn with the whole"):
        all_to_all().generate(bkey, 10, 10, autapses=True, multapses=True, targets=(0, 5))
    with pytest.raises(ConfigurationError, match=r"targets must be a range \(lo, hi\) with 0 <= lo <= hi <= 10, but are \(5, 20\)"):
        fixed_indegree(3).generate(bkey, 10, 10, autapses=True, multapses=True, targets=(5, 20))


def test_builds_are_deterministic_and_keys_independent(small_block):
    first, again, other = _blocked_net(3), _blocked_net(3), _blocked_net(4)
    for name in first.projections:
        for field in ("targets", "delays"):
            np.testing.assert_array_equal(getattr(first._arrays[name], field), getattr(again._arrays[name], field))
        np.testing.assert_array_equal(first.state.weights[name], again.state.weights[name])
    # another key: an independent draw, so a pair of "fp" is in both with probability p (given in one)
    pairs = {name: set(zip(net.synapses("fp")["pre"].tolist(), net.synapses("fp")["post"].tolist())) for name, net in
             (("a", first), ("b", other))}
    shared = len(pairs["a"] & pairs["b"])
    assert st.binomtest(shared, len(pairs["a"]), 0.1).pvalue > P_MIN


def test_fixed_probability_rows_past_the_drawn_width_continue_exactly(monkeypatch):
    # width = mean + 0 sd + 0 slack (bucketed): about half the rows need a second set of gaps; were they
    # cut or redrawn, the out-degree law would be biased
    from qsn.networks import connectivity

    monkeypatch.setattr(connectivity, "_WIDTH_SD", 0)
    monkeypatch.setattr(connectivity, "_WIDTH_SLACK", 0)
    syn, net = _synapses(2000, 500, fixed_probability(0.05), key=8)
    _assert_ell_layout(*_rows_of(net, "p"), net.synapse_count["p"])
    out_degree = np.bincount(syn["pre"], minlength=2000)
    assert out_degree.max() > 25 * 1.125  # rows did continue past the first width
    assert _chi2_discrete(out_degree, st.binom(500, 0.05)) > P_MIN
    pairs = syn["pre"].astype(np.int64) * 1000 + syn["post"]
    assert np.unique(pairs).size == pairs.size


def test_build_kernels_do_not_recompile_for_new_sizes():
    # sizes are traced: a second network whose projections differ in counts and group sizes (within the
    # same power-of-two block) reuses every compiled build kernel
    from qsn.networks import connectivity, distributions

    kernels = (connectivity._uniform_block, connectivity._geometric_rows, distributions._drawn_block,
               distributions._given_block)

    def build(n_post: int, m: int, k: int, p: float) -> None:
        net = Network(dtype=np.float64)
        src = net.add(PoissonGroup(700, 0.0, name="src"))
        g = net.add(_target(n_post, "g"))
        ev = {"receptor": "exc", "propagation": "event"}
        net.add(Projection(src, g, fixed_total_number(m), weight=normal(1.0, 0.1), name="tot", **ev),
                Projection(src, g, fixed_indegree(k), name="in", **ev),
                Projection(src, g, fixed_probability(p), name="fp", **ev))
        net.build(jax.random.key(0))

    build(100, 5000, 8, 0.05)
    before = [f._cache_size() for f in kernels]
    build(110, 5300, 9, 0.045)
    assert [f._cache_size() for f in kernels] == before


@pytest.mark.parametrize("native", [True, False])
def test_sorted_keys_is_numpys_sort(native, monkeypatch):
    """fixed_indegree's chunk keys (source * per + local, local ascending, repeats included) come out as
    np.sort gives them, from the native counting sort and from its NumPy fallback alike."""
    from qsn.kernels.compile import host_compiler
    from qsn.networks import connectivity

    if native and host_compiler() is None:
        pytest.skip("the counting sort needs a C++ compiler")
    if not native:
        monkeypatch.setattr(connectivity, "_bucket_keys", lambda: None)
    rng = np.random.default_rng(5)
    n_sources, per, k = 300, 50, 40
    sources = rng.integers(0, n_sources, per * k).astype(np.int32)
    sources[:7] = 3  # a source drawn several times by one target
    keys = sources * np.int32(per) + np.repeat(np.arange(per, dtype=np.int32), k)
    got = connectivity.sorted_keys(keys, sources, n_sources)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.sort(keys))
