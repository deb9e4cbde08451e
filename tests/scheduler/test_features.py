"""Spike features: against qsn.simulate on the same neurons (an independent path through the core),
closed forms for undriven qubits, monotonicity of rate and latency codes, missing values, padding
and blocking invariance, compile reuse, the robust scaler, and errors.

Tolerances: counts and first-spike steps exact; p1/coherence means 1e-5 (float32) and 1e-9 (float64,
summation order differs from NumPy's mean); closed forms 1e-6 (float32 accumulation over 32 steps).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qsn
from qsn.errors import ConfigurationError, InvalidInputError
from qsn.scheduler import features as feat
from qsn.scheduler.features import FeatureScaler, fit_scaler, population_code, spike_features

STEPS = 32
IDENTITY = FeatureScaler(center=np.zeros(1), scale=np.ones(1))  # z = x for one column
VALUES = np.array([-2.0, 0.1, 0.9, 2.5, 50.0])  # standardised; 50 is squashed to ~3 (largest drive)


def expected_current(z: np.ndarray, params: qsn.NeuronParams, m: int) -> np.ndarray:
    """``(N, m)`` current of the documented encoding, in float64: I_rh * max(0, 1 + g (3 tanh(z/3) - c))."""
    code = population_code(m)
    u = 3.0 * np.tanh(z / 3.0)
    rheobase = (float(params.v_th) - float(params.v_rest)) / float(params.r_m)
    return rheobase * np.maximum(0.0, 1.0 + code.gains[None, :] * (u[:, None] - code.offsets[None, :]))


def simulate_reference(params, current, mode, dtype, key=None):
    """Spike count, first spike, mean p1 and coherence of ``len(current)`` neurons run by qsn.simulate."""
    state = qsn.init_state(params, n=current.shape[0], mode=mode, dtype=dtype)
    r = qsn.simulate(params, state, current, steps=STEPS, key=key, record=("spikes", "p1", "coherence"))
    spikes = np.asarray(r.spikes)
    first = np.where(spikes.any(axis=0), spikes.argmax(axis=0), STEPS)
    return np.asarray(r.spike_count), first, np.asarray(r.p1).mean(axis=0), np.asarray(r.coherence).mean(axis=0)


CASES = {
    "pure-f64": ("pure", dict(tau_m=2.0, t_ref=0.2, delta=1.0), jnp.float64, 1e-9),
    "pure-f32": ("pure", dict(tau_m=2.0, t_ref=0.2, delta=1.0), jnp.float32, 1e-5),
    "mixed-decoherent-f64": ("mixed", dict(tau_m=2.0, t_ref=0.3, delta=0.7, t2=5.0, t1=8.0), jnp.float64, 1e-9),
    "mixed-f32": ("mixed", dict(tau_m=3.0, t_ref=0.2, delta=1.0, t2=4.0), jnp.float32, 1e-5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_simulate_on_the_same_neurons(case):
    mode, fields, dtype, tol = CASES[case]
    params = qsn.NeuronParams(**fields)
    m = 4
    sf = spike_features(VALUES[:, None], params=params, mode=mode, scale=IDENTITY, steps=STEPS, dtype=dtype)
    current = expected_current(VALUES, params, m).reshape(-1)  # neuron order: row-major (task, neuron)
    count, first, p1, coh = simulate_reference(params, current, mode, dtype)
    n = VALUES.size
    np.testing.assert_array_equal(sf.counts, count.reshape(n, m))
    np.testing.assert_array_equal(sf.first_spike, first.reshape(n, m))
    np.testing.assert_allclose(sf.p1_mean, p1.reshape(n, m), rtol=0, atol=tol)
    np.testing.assert_allclose(sf.coherence_mean, coh.reshape(n, m), rtol=0, atol=tol)
    assert sf.counts.sum() > 0 and (sf.counts == 0).any()  # the case exercises both regimes
    # matrix = [counts/steps, p1, coherence, missing]
    np.testing.assert_allclose(sf.matrix, np.concatenate([count.reshape(n, m) / STEPS, p1.reshape(n, m),
                                                          coh.reshape(n, m), np.zeros((n, 1))], axis=1), atol=tol)


def test_stochastic_rows_match_simulate_with_their_row_key():
    # Pure mode with finite t2 draws phase kicks: row r uses fold_in(key, r), as simulate with that key.
    params = qsn.NeuronParams(tau_m=2.0, t_ref=0.2, delta=1.0, t2=3.0)
    key = jax.random.key(7)
    sf = spike_features(VALUES[:3, None], params=params, scale=IDENTITY, key=key, dtype=jnp.float64)
    current = expected_current(VALUES[:3], params, 4)
    for r in range(3):
        count, first, p1, coh = simulate_reference(params, current[r], "pure", jnp.float64, jax.random.fold_in(key, r))
        np.testing.assert_array_equal(sf.counts[r], count)
        np.testing.assert_array_equal(sf.first_spike[r], first)
        np.testing.assert_allclose(sf.p1_mean[r], p1, atol=1e-9)
        np.testing.assert_allclose(sf.coherence_mean[r], coh, atol=1e-9)
    with pytest.raises(ConfigurationError, match="key"):
        spike_features(VALUES[:3, None], params=params, scale=IDENTITY)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.floats(-8.0, 8.0), st.floats(0.0, 8.0))
def test_rate_code_is_monotone_in_the_feature(low, gap):
    sf = spike_features(np.array([[low], [low + gap]]), scale=IDENTITY)
    assert (sf.counts[1] >= sf.counts[0]).all()
    assert (sf.first_spike[1] <= sf.first_spike[0]).all()


@SETTINGS
@given(st.floats(-8.0, 8.0), st.floats(0.0, 8.0))
def test_latency_code_first_spike_decreases_with_the_feature(low, gap):
    sf = spike_features(np.array([[low], [low + gap]]), scale=IDENTITY, coding="latency")
    assert (sf.first_spike[1] <= sf.first_spike[0]).all()
    latency = sf.matrix[:, :4]
    np.testing.assert_array_equal(latency, sf.first_spike / STEPS)
    assert (latency[1] <= latency[0]).all()


def test_neurons_of_a_feature_are_recruited_at_different_values():
    # A population code, not m copies of one map: onsets ordered by offset, responses pairwise distinct.
    z = np.linspace(-3.0, 3.0, 121)
    sf = spike_features(z[:, None], scale=IDENTITY)
    onset = [z[np.argmax(sf.counts[:, j] > 0)] for j in range(4)]
    assert all(sf.counts[:, j].max() > 0 for j in range(4))
    assert np.all(np.diff(onset) > 0), onset
    assert len({tuple(sf.counts[:, j]) for j in range(4)}) == 4
    # rate code over the sweep: counts non-decreasing in z for every neuron
    assert (np.diff(sf.counts, axis=0) >= 0).all()


def test_missing_feature_gets_zero_drive_and_an_indicator():
    params = feat.feature_params()
    x = np.array([[0.5, np.nan], [np.nan, np.nan], [1.5, 2.0]])
    sf = spike_features(x, scale=FeatureScaler(np.zeros(2), np.ones(2)))
    np.testing.assert_array_equal(sf.missing, np.isnan(x))
    assert np.isfinite(sf.matrix).all()
    np.testing.assert_array_equal(sf.matrix[:, -2:], np.isnan(x).astype(float))
    silent = np.repeat(np.isnan(x), 4, axis=1)
    assert (sf.counts[silent] == 0).all() and (sf.first_spike[silent] == STEPS).all()
    # Undriven neuron: V stays at rest, so a = 0 and H = delta sx from |0>:
    # p1(t) = sin^2(delta t), |rho01| = |sin(2 delta t)|/2, sampled after steps 1..T.
    t = float(params.dt) * np.arange(1, STEPS + 1)
    delta = float(params.delta)
    np.testing.assert_allclose(sf.p1_mean[silent], np.mean(np.sin(delta * t) ** 2), atol=1e-6)
    np.testing.assert_allclose(sf.coherence_mean[silent], np.mean(np.abs(np.sin(2 * delta * t)) / 2), atol=1e-6)
    assert (sf.counts[~silent].sum() > 0)


def test_padding_and_blocking_do_not_change_rows(monkeypatch):
    rng = np.random.default_rng(3)
    x5 = rng.normal(size=(5, 3))
    x5[1, 2] = np.nan
    scaler = fit_scaler(x5)
    for kwargs in ({}, {"params": qsn.NeuronParams(tau_m=2.0, t_ref=0.2, delta=1.0, t2=3.0), "key": jax.random.key(1)}):
        a, b = spike_features(x5[:3], scale=scaler, **kwargs), spike_features(x5, scale=scaler, **kwargs)
        for field in a._fields:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field)[:3], err_msg=field)
    x = rng.normal(size=(150, 2))
    noisy = {"params": qsn.NeuronParams(tau_m=2.0, t_ref=0.2, delta=1.0, t2=3.0), "key": jax.random.key(2)}
    whole = spike_features(x, **noisy)  # one block of 256 rows
    monkeypatch.setattr(feat, "MAX_ROWS", 64)  # three blocks of 64 rows: row keys must follow the row
    blocked = spike_features(x, **noisy)
    for field in whole._fields:
        np.testing.assert_array_equal(getattr(whole, field), getattr(blocked, field), err_msg=field)


def test_row_counts_in_one_bucket_share_one_compilation():
    x = np.random.default_rng(0).normal(size=(64, 2))
    scaler = fit_scaler(x)
    spike_features(x[:1], scale=scaler, steps=17)
    before = feat._run_block._cache_size()
    for n in (2, 5, 33, 64):
        spike_features(x[:n], scale=scaler, steps=17)
    assert feat._run_block._cache_size() == before
    assert [feat.bucket_rows(n) for n in (1, 64, 65, 1000, 10**6)] == [64, 64, 128, 1024, feat.MAX_ROWS]


def test_default_scale_is_fitted_on_x_and_empty_input():
    x = np.random.default_rng(1).normal(size=(20, 3)) * [1.0, 10.0, 0.1]
    a, b = spike_features(x), spike_features(x, scale=fit_scaler(x))
    np.testing.assert_array_equal(a.matrix, b.matrix)
    empty = spike_features(np.zeros((0, 3)), scale=fit_scaler(x))
    assert empty.matrix.shape == (0, 3 * 3 * 4 + 3) and empty.counts.shape == (0, 12)


def test_fit_scaler_against_percentiles():
    rng = np.random.default_rng(2)
    x = rng.lognormal(size=(101, 4))
    x[::7, 0] = np.nan
    x[:, 2] = 5.0  # constant: IQR 0 and s.d. 0 -> scale 1
    x[:, 3] = 1.0
    x[0, 3] = 11.0  # IQR 0 -> falls back to the s.d.
    s = fit_scaler(x)
    col0 = x[~np.isnan(x[:, 0]), 0]
    normal_iqr = 2.0 * scipy.stats.norm.ppf(0.75)  # IQR of a unit normal, 1.349
    np.testing.assert_allclose(s.center[:2], [np.median(col0), np.median(x[:, 1])], rtol=1e-12)
    q = [np.subtract(*np.percentile(c, [75, 25])) / normal_iqr for c in (col0, x[:, 1])]
    np.testing.assert_allclose(s.scale[:2], q, rtol=1e-12)
    assert s.center[2] == 5.0 and s.scale[2] == 1.0
    np.testing.assert_allclose(s.scale[3], np.std(x[:, 3]), rtol=1e-12)
    allnan = fit_scaler(np.full((4, 1), np.nan))
    assert allnan.center[0] == 0.0 and allnan.scale[0] == 1.0


@pytest.mark.parametrize(
    "x, kwargs, error, match",
    [
        (np.zeros(4), {}, InvalidInputError, r"shape \(N, F\)"),
        (np.zeros((2, 2, 2)), {}, InvalidInputError, r"shape \(N, F\)"),
        (np.zeros((2, 0)), {}, InvalidInputError, r"F >= 1"),
        (np.array([[1.0, math.inf]]), {}, InvalidInputError, r"x\[0, 1\] = inf"),
        (np.array([["a"]]), {}, InvalidInputError, "real dtype"),
        (np.zeros((2, 2)), {"coding": "phase"}, ConfigurationError, "coding"),
        (np.zeros((2, 2)), {"mode": "open"}, ConfigurationError, "mode"),
        (np.zeros((2, 2)), {"steps": 0}, ConfigurationError, "steps"),
        (np.zeros((2, 2)), {"neurons_per_feature": 0}, ConfigurationError, "neurons_per_feature"),
        (np.zeros((2, 2)), {"scale": FeatureScaler(np.zeros(3), np.ones(3))}, ConfigurationError, r"\(F,\) = \(2,\)"),
        (np.zeros((2, 2)), {"scale": FeatureScaler(np.zeros(2), np.zeros(2))}, ConfigurationError, "> 0"),
        (np.zeros((2, 2)), {"params": qsn.NeuronParams(delta=np.ones(8))}, ConfigurationError, "params.delta"),
        (np.zeros((2, 2)), {"params": qsn.NeuronParams(r_m=0.0)}, ConfigurationError, "r_m"),
    ],
)
def test_errors(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        spike_features(x, **kwargs)
