"""Tests of the adaptive fusion of size predictors (qsn.scheduler.fusion).

* ``fuse`` against a plain-Python float64 re-implementation of the module docstring's rule (EMA squared
  errors, weights ∝ e^−γ made before the label, fused EMA error, synergy, γ update clipped to [1, γ_max],
  a missing prediction gets weight 0 and keeps its error) on random data with missing entries, at 1e-5
  (``fuse`` runs in float32). Initial state, which the docstring does not state: e_k = e_f = γ = 1;
* one perfect source and one noisy: the weights converge to the perfect source;
* ``adaptive=False``: equal weights over the sources present, γ frozen at 1;
* errors: no sources, row mismatch, alpha outside (0, 1];
* ``fusion_policy``: for planner anneal / eft a plan that ``check_plan`` accepts, made on the predictions
  known before any completion (the estimates: the readouts have none yet); for online / auto on a stream
  an online shortest-first policy whose run fills the trace (readouts silent for the first 64 completions);
  "auto" anneals a batch (all arrivals at 0: the same plan as planner="anneal"); with exact estimates
  (estimate = work) the weights go to the naive source and the fused prediction is the true size; every
  source switched off, or an unknown planner, raises.

JAX settings: ``tests/conftest.py`` turns on x64 with strict dtype promotion and rank-promotion errors,
under which ``list_schedule`` and the annealer currently fail (documented in ``test_policies.py`` and
``test_planner.py``). The ``fusion_policy`` tests use the ``relaxed_jax`` fixture; drop it once fixed.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from qsn.errors import ConfigurationError
from qsn.scheduler import workloads
from qsn.scheduler.fusion import FusionConfig, FusionResult, _fuse_scan, fuse, fusion_policy
from qsn.scheduler.policy import ShortestFirst
from qsn.scheduler.predict import prior_work
from qsn.scheduler.simulator import check_plan, simulate
from qsn.scheduler.task import Workload


@pytest.fixture
def relaxed_jax():
    yield  # the planners now run under the suite's strict JAX settings; kept so the tests read the same


def _reference_fuse(preds: np.ndarray, y: np.ndarray, alpha, eta, gamma_max, adaptive):
    """The module docstring's rule, one task at a time, float64. preds (N, K), y (N,)."""
    n, k = preds.shape
    e, ef, gamma = [1.0] * k, 1.0, 1.0
    out = {f: [] for f in ("fused", "weights", "errors", "fused_error", "gamma", "synergy")}
    for i in range(n):
        present = [bool(np.isfinite(preds[i, j])) for j in range(k)]
        if adaptive:
            raw = [(e[j] + 1e-12) ** (-gamma) if present[j] else 0.0 for j in range(k)]
        else:
            raw = [1.0 if present[j] else 0.0 for j in range(k)]
        total = sum(raw)
        w = [r / total for r in raw] if total > 0 else [0.0] * k
        fused = sum(w[j] * preds[i, j] for j in range(k) if present[j])
        out["errors"].append(list(e))
        out["fused_error"].append(ef)
        out["gamma"].append(gamma)
        out["weights"].append(w)
        out["fused"].append(fused)
        e = [(1 - alpha) * e[j] + alpha * (preds[i, j] - y[i]) ** 2 if present[j] else e[j] for j in range(k)]
        ef = (1 - alpha) * ef + alpha * (fused - y[i]) ** 2
        s = 1.0 - ef / min(e)
        out["synergy"].append(s)
        if adaptive:
            gamma = min(max(gamma * (1.0 - eta * s), 1.0), gamma_max)
    return {f: np.asarray(v) for f, v in out.items()}


def _random_sources(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    y = rng.normal(1.0, 1.0, n)
    preds = {
        "good": y + rng.normal(0.0, 0.2, n),
        "biased": y + 0.5 + rng.normal(0.0, 0.5, n),
        "noisy": y + rng.normal(0.0, 1.5, n),
    }
    preds["biased"][rng.random(n) < 0.2] = np.nan  # missing predictions
    preds["noisy"][rng.random(n) < 0.1] = np.nan
    return preds, y


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("adaptive", [True, False])
@pytest.mark.parametrize("alpha, eta, gamma_max", [(0.05, 0.5, 8.0), (0.2, 0.5, 4.0)])
def test_fuse_matches_reference(seed, adaptive, alpha, eta, gamma_max):
    preds, y = _random_sources(seed)
    res = fuse(preds, y, alpha=alpha, eta=eta, gamma_max=gamma_max, adaptive=adaptive)
    ref = _reference_fuse(np.stack(list(preds.values()), 1), y, alpha, eta, gamma_max, adaptive)
    assert isinstance(res, FusionResult) and res.names == tuple(preds)
    for field in ("fused", "weights", "errors", "fused_error", "gamma", "synergy"):
        np.testing.assert_allclose(getattr(res, field), ref[field], rtol=1e-5, atol=1e-5, err_msg=field)
    # a missing prediction gets weight 0; the weights of each task sum to 1
    missing = ~np.isfinite(np.stack(list(preds.values()), 1))
    assert np.all(res.weights[missing] == 0.0)
    np.testing.assert_allclose(res.weights.sum(axis=1), 1.0, atol=1e-6)
    if adaptive:  # the γ update actually moved (so the γ path of the reference is exercised)
        assert np.ptp(res.gamma) > 0.1
        assert np.all((res.gamma >= 1.0 - 1e-6) & (res.gamma <= gamma_max + 1e-5))


@pytest.mark.parametrize("alpha, eta, gamma_max", [(0.05, 0.5, 8.0), (0.3, 2.0, 3.0)])
def test_fuse_rule_in_float64(alpha, eta, gamma_max):
    # fuse() always runs its scan in float32; in float64 the scan reproduces the rule to rounding. (In float32,
    # aggressive settings such as eta = 2 drift by ~1e-4 in gamma: s = 1 - e_f / min e_k cancels.)
    preds, y = _random_sources(0)
    p = np.stack(list(preds.values()), 1)
    out = _fuse_scan(jnp.asarray(p), jnp.asarray(y), alpha, eta, gamma_max, True)
    ref = _reference_fuse(p, y, alpha, eta, gamma_max, True)
    for got, field in zip(out, ("fused", "weights", "errors", "fused_error", "gamma", "synergy")):
        np.testing.assert_allclose(np.asarray(got), ref[field], rtol=1e-10, atol=1e-10, err_msg=field)


def test_weights_converge_to_the_better_source():
    # a near-perfect source (log error sd 0.03) against a noisy one (sd 1): its weight goes to 1
    rng = np.random.default_rng(0)
    y = rng.normal(0.0, 1.0, 600)
    res = fuse({"noisy": y + rng.normal(0.0, 1.0, 600), "good": y + rng.normal(0.0, 0.03, 600)}, y)
    assert np.all(np.isfinite(res.weights))
    assert np.all(res.weights[-300:, 1] > 0.999)
    assert res.gamma[-1] == pytest.approx(8.0)  # no synergy in mixing in the noisy source: gamma sharpens to the max
    np.testing.assert_allclose(res.fused[-100:], y[-100:], atol=0.15)


OVERFLOW = ("fuse computes w = (e + 1e-12) ** -gamma in float32: once a source's EMA error falls below ~2e-5 with "
            "gamma = 8, the power overflows, the weights become [0, 0] (fused prediction silently 0), then NaN for "
            "every later task (weights, fused, gamma). Weights in log space (softmax of -gamma log e) would not overflow")


def test_weights_converge_to_the_perfect_source():
    rng = np.random.default_rng(0)
    y = rng.normal(0.0, 1.0, 600)
    res = fuse({"noisy": y + rng.normal(0.0, 1.0, 600), "perfect": y.copy()}, y)
    assert np.all(np.isfinite(res.weights)) and np.all(np.isfinite(res.fused))
    assert res.weights[-1, 1] > 0.999
    np.testing.assert_allclose(res.fused[-100:], y[-100:], atol=1e-3)


def test_not_adaptive_gives_equal_weights():
    preds, y = _random_sources(3)
    res = fuse(preds, y, adaptive=False)
    present = np.isfinite(np.stack(list(preds.values()), 1))
    np.testing.assert_allclose(res.weights, present / present.sum(axis=1, keepdims=True), rtol=1e-6)
    assert np.all(res.gamma == 1.0)


def test_fuse_errors():
    with pytest.raises(ConfigurationError, match="predictions"):
        fuse({}, np.zeros(3))
    with pytest.raises(ConfigurationError, match="target"):
        fuse({"a": np.zeros(4)}, np.zeros(3))
    for alpha in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigurationError, match="alpha"):
            fuse({"a": np.zeros(3)}, np.zeros(3), alpha=alpha)
    fuse({"a": np.zeros(3)}, np.zeros(3), alpha=1.0)  # the closed end is allowed


@pytest.fixture(scope="module")
def stream():
    return workloads.batch(150, 4, seed=0)


@pytest.fixture(scope="module")
def batch_instance():
    wl, cl = workloads.batch(16, 4, seed=1)  # 16 tasks: the annealer reuses the stream's compiled window size
    return wl.replace(arrival=np.zeros(wl.n)), cl


@pytest.mark.parametrize("planner", ["anneal", "eft", "online", "auto"])
def test_fusion_policy_plans_are_valid(stream, planner, relaxed_jax):
    wl, cl = stream
    policy, predictor = fusion_policy(wl, cl, config=FusionConfig(planner=planner))
    if planner in ("online", "auto"):  # a stream: online dispatch on the fused prediction, shortest first
        assert isinstance(policy, ShortestFirst) and policy.size is predictor
        sched = simulate(wl, cl, policy)
        assert np.isfinite(sched.finish).all()
    else:
        check_plan(wl, cl, policy)
        assert np.all(policy.worker >= 0)
    res = predictor.trace()
    assert res.names == ("naive", "spike", "raw") and res.fused.shape == (wl.n,)
    assert np.all(np.isfinite(res.fused))
    assert np.isnan(res.predictions[:64, 1:]).all()  # no readout predicts before 64 completions
    if planner in ("anneal", "eft"):  # planned before any completion: the estimates alone
        np.testing.assert_allclose(res.fused, np.log(prior_work(wl)), rtol=1e-12)


def test_auto_anneals_a_batch(batch_instance, relaxed_jax):
    wl, cl = batch_instance
    auto, _ = fusion_policy(wl, cl, config=FusionConfig(planner="auto"))
    annealed, _ = fusion_policy(wl, cl, config=FusionConfig(planner="anneal"))
    check_plan(wl, cl, auto)
    assert np.all(auto.worker >= 0)
    np.testing.assert_array_equal(auto.worker, annealed.worker)
    np.testing.assert_array_equal(auto.priority, annealed.priority)
    greedy, _ = fusion_policy(wl, cl, config=FusionConfig(planner="eft"))
    assert not np.array_equal(auto.worker, greedy.worker)  # so the check above tells anneal from EFT


def test_fusion_policy_with_exact_estimates(relaxed_jax):
    # the user's estimate is the true work: the naive source is perfect, so fusion must follow it
    wl, cl = workloads.batch(600, 4, seed=0)
    wl = wl.replace(estimate=wl.work.copy())
    policy, predictor = fusion_policy(wl, cl)
    assert isinstance(policy, ShortestFirst)  # a stream: "auto" dispatches online
    simulate(wl, cl, policy)
    res = predictor.trace()
    assert res.names[0] == "naive"
    np.testing.assert_allclose(res.predictions[:, 0], np.log(wl.work), rtol=1e-12)
    assert np.all(res.weights[-300:, 0] > 0.999)
    y = np.log(wl.work)
    np.testing.assert_allclose(res.fused[-300:], y[-300:], atol=1e-3)
    # a reference: the learned sources alone (no estimate) predict much worse than fusion does here
    learned = np.stack([res.predictions[-300:, 1], res.predictions[-300:, 2]])
    assert np.mean((res.fused[-300:] - y[-300:]) ** 2) < 1e-2 * np.mean((learned - y[-300:]) ** 2, axis=1).min()


def test_every_source_off_raises(stream):
    wl, cl = stream
    with pytest.raises(ConfigurationError, match="source"):
        fusion_policy(wl, cl, config=FusionConfig(naive=False, spike=False, raw=False))


def test_unknown_planner_raises(stream):
    wl, cl = stream
    with pytest.raises(ConfigurationError, match="planner"):
        fusion_policy(wl, cl, config=FusionConfig(planner="greedy", spike=False, raw=False))


def test_single_source_fusion_is_that_source():
    wl = Workload.from_arrays(arrival=np.arange(5.0), work=np.arange(1.0, 6.0), estimate=np.arange(1.0, 6.0) * 2)
    res = fuse({"naive": np.log(wl.estimate)}, np.log(wl.work))
    np.testing.assert_allclose(res.fused, np.log(wl.estimate), rtol=1e-6)
    np.testing.assert_allclose(res.weights, 1.0)
