"""Online readouts: convergence to the noise floor of a linear model (closed form), MLP vs linear on a
nonlinear target, no use of future labels, worker affinity on a separable task, running statistics
against NumPy, the missing-value baseline, the method API against the scanned prequential loop, and
errors.

Tolerances: final-window MSE within 15% of sigma^2 (the estimate's own sampling s.d. is ~3% for
2048 rows); statistics 1e-5 relative (float32 running sums vs NumPy float64); prequential vs the
method loop 1e-5 (same float32 arithmetic, different fusion).
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.scheduler.readout import LinearBaseline, OnlineReadout, prequential


def linear_task(rng, n=8192, d=5, sigma=0.5):
    x = rng.normal(loc=1.0, scale=3.0, size=(n, d))  # unstandardised on purpose
    w = rng.normal(size=(d, 1))
    return x, x @ w + 2.0 + sigma * rng.normal(size=(n, 1)), sigma


def nonlinear_task(rng, n=8192):
    x = rng.normal(size=(n, 3))
    y = np.sin(2 * x[:, :1]) + x[:, 1:2] ** 2 - np.abs(x[:, 2:3]) + 0.1 * rng.normal(size=(n, 1))
    return x, y


def test_linear_readout_reaches_the_noise_level():
    # y = w.x + b + N(0, sigma^2): the best predictor's MSE is sigma^2 (OLS fitted on n rows has
    # out-of-sample MSE sigma^2 (1 + d/(n - d - 1)), 1.0006 sigma^2 here), so the final window of a
    # converged online readout sits at sigma^2 — and cannot go below it without seeing its labels.
    x, y, sigma = linear_task(np.random.default_rng(0))
    pred = prequential(OnlineReadout(5, 1, key=jax.random.key(0)), x, y, batch=64)
    final = np.mean((pred[-2048:] - y[-2048:]) ** 2)
    assert abs(final / sigma**2 - 1.0) < 0.15, final
    first = np.mean((pred[:512] - y[:512]) ** 2)
    assert first > 10 * sigma**2  # it did have to learn


def test_mlp_fits_a_nonlinear_target_better_than_linear():
    x, y = nonlinear_task(np.random.default_rng(1))
    half = slice(x.shape[0] // 2, None)
    mse = {}
    for hidden in (0, 32):
        pred = prequential(OnlineReadout(3, 1, hidden=hidden, key=jax.random.key(1)), x, y)
        mse[hidden] = np.mean((pred[half] - y[half]) ** 2)
    assert mse[32] < 0.5 * mse[0], mse
    assert mse[32] < 0.3 * np.var(y), mse


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_prequential_never_uses_future_labels(loss):
    rng = np.random.default_rng(2)
    n, k, batch = 1000, 500, 64
    x = rng.normal(size=(n, 3))
    if loss == "mse":
        y = x @ rng.normal(size=(3, 2))
        garbage = y.copy()
        garbage[k + 1 :] = 1e3 * rng.normal(size=(n - k - 1, 2))
    else:
        y = np.eye(3)[np.argmax(x, axis=1)]
        garbage = y.copy()
        garbage[k + 1 :] = y[k + 1 :, ::-1]  # still distributions, but the wrong worker
    readout = OnlineReadout(3, y.shape[1], hidden=8, loss=loss, key=jax.random.key(2))
    clean, dirty = prequential(readout, x, y, batch=batch), prequential(readout, x, garbage, batch=batch)
    np.testing.assert_array_equal(clean[: k + 1], dirty[: k + 1])
    next_batch = (k + 1) // batch * batch + batch  # first row predicted after training on garbage
    assert not np.allclose(clean[next_batch:], dirty[next_batch:])
    # the first batch is predicted by the untrained model
    np.testing.assert_allclose(clean[:batch], readout.predict(readout.init(), x[:batch]), rtol=1e-5, atol=1e-6)


def test_prequential_equals_the_predict_update_loop():
    rng = np.random.default_rng(3)
    x, y = nonlinear_task(rng, n=300)
    x[rng.random(x.shape) < 0.1] = np.nan
    readout = OnlineReadout(3, 1, hidden=4, missing_indicators=True, optimizer=optax.sgd(0.05), key=jax.random.key(3))
    scanned, final = prequential(readout, x, y, batch=64, return_state=True)
    state, looped = readout.init(), []
    for start in range(0, 300, 64):
        looped.append(np.asarray(readout.predict(state, x[start : start + 64])))
        state, loss = readout.update(state, x[start : start + 64], y[start : start + 64])
        assert np.isfinite(float(loss))
    np.testing.assert_allclose(scanned, np.concatenate(looped), rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_affinity_readout_recovers_the_best_worker():
    rng = np.random.default_rng(4)
    n, workers = 6000, 4
    x = rng.normal(size=(n, 3))
    scores = x @ rng.normal(size=(3, workers))
    soft = np.exp(3 * scores - (3 * scores).max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)  # soft targets: a tempered softmax of linear scores
    readout = OnlineReadout(3, workers, loss="cross_entropy", key=jax.random.key(4))
    prob = prequential(readout, x, soft)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-5)
    half = slice(n // 2, None)
    accuracy = np.mean(prob[half].argmax(axis=1) == scores[half].argmax(axis=1))
    assert accuracy > 0.9, accuracy


def test_running_statistics_match_numpy():
    rng = np.random.default_rng(5)
    x = rng.normal(loc=4.0, scale=[1.0, 20.0], size=(200, 2))
    x[rng.random(x.shape) < 0.2] = np.nan
    y = rng.normal(loc=-3.0, scale=2.0, size=(200, 1))
    readout = OnlineReadout(2, 1, key=jax.random.key(5))
    state = readout.init()
    for start in range(0, 200, 50):
        mask = np.arange(start, start + 50) < 170  # rows >= 170 are masked out
        state, _ = readout.update(state, x[start : start + 50], y[start : start + 50], mask=mask)
    seen_x, seen_y = x[:170], y[:170]
    np.testing.assert_allclose(state.x_stats.count, np.sum(~np.isnan(seen_x), axis=0))
    np.testing.assert_allclose(state.x_stats.mean, np.nanmean(seen_x, axis=0), rtol=1e-5)
    np.testing.assert_allclose(state.x_stats.m2 / state.x_stats.count, np.nanvar(seen_x, axis=0), rtol=1e-5)
    np.testing.assert_allclose(state.y_stats.mean, seen_y.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(state.y_stats.m2 / state.y_stats.count, seen_y.var(axis=0), rtol=1e-5)


def test_missing_inputs_are_imputed_with_the_running_mean():
    rng = np.random.default_rng(7)
    x, y = nonlinear_task(rng, n=256)
    readout = OnlineReadout(3, 1, hidden=4, key=jax.random.key(7))
    _, state = prequential(readout, x, y, return_state=True)
    holes = x[:10].copy()
    holes[:, 1] = np.nan
    filled = holes.copy()
    filled[:, 1] = float(state.x_stats.mean[1])
    np.testing.assert_allclose(readout.predict(state, holes), readout.predict(state, filled), rtol=1e-6, atol=1e-6)


def test_linear_baseline_uses_missing_indicators():
    # y depends on *whether* x0 is missing: only the indicator columns can explain it.
    rng = np.random.default_rng(6)
    n = 6000
    x = rng.normal(size=(n, 2))
    gone = rng.random(n) < 0.3
    x[gone, 0] = np.nan
    y = (3.0 * gone + x[:, 1] + 0.1 * rng.normal(size=n))[:, None]
    pred = prequential(LinearBaseline(2, 1, key=jax.random.key(6)), x, y)
    assert np.isfinite(pred).all()
    assert np.mean((pred[n // 2 :] - y[n // 2 :]) ** 2) < 0.05


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda r: prequential(r, np.zeros((4, 3)), np.zeros((4, 1))), InvalidInputError, r"\(N, n_in\) = \(N, 2\)"),
        (lambda r: prequential(r, np.zeros((4, 2)), np.zeros((4, 2))), InvalidInputError, r"\(N, n_out\) = \(N, 1\)"),
        (lambda r: prequential(r, np.zeros((4, 2)), np.zeros(4)), InvalidInputError, r"\(N, n_out\)"),
        (lambda r: prequential(r, np.zeros((4, 2)), np.zeros((5, 1))), InvalidInputError, "5"),
        (lambda r: prequential(r, np.full((4, 2), np.inf), np.zeros((4, 1))), InvalidInputError, r"x\[0, 0\] = inf"),
        (lambda r: prequential(r, np.zeros((4, 2)), np.full((4, 1), np.nan)), InvalidInputError, r"y\[0, 0\] = nan"),
        (lambda r: prequential(r, np.zeros((4, 2)), np.zeros((4, 1)), batch=0), ConfigurationError, "batch"),
        (lambda r: r.update(r.init(), np.zeros((4, 2)), np.zeros((3, 1))), InvalidInputError, "4 rows"),
        (lambda r: r.update(r.init(), np.zeros((4, 2)), np.zeros((4, 1)), mask=np.ones(3)), InvalidInputError, "mask"),
        (lambda r: prequential(object(), np.zeros((4, 2)), np.zeros((4, 1))), ConfigurationError, "readout"),
    ],
)
def test_input_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(OnlineReadout(2, 1, key=jax.random.key(0)))


def test_configuration_errors():
    key = jax.random.key(0)
    affinity = OnlineReadout(2, 3, loss="cross_entropy", key=key)
    with pytest.raises(InvalidInputError, match="distributions"):
        prequential(affinity, np.zeros((2, 2)), np.array([[0.5, 0.6, -0.1], [1.0, 0.0, 0.0]]))
    with pytest.raises(InvalidInputError, match="row 1"):
        prequential(affinity, np.zeros((2, 2)), np.array([[0.5, 0.5, 0.0], [0.5, 0.0, 0.0]]))
    for kwargs, match in [
        (dict(n_in=0, n_out=1), "n_in"),
        (dict(n_in=2, n_out=1, hidden=-1), "hidden"),
        (dict(n_in=2, n_out=1, loss="hinge"), "loss"),
        (dict(n_in=2, n_out=1, loss="cross_entropy"), "n_out"),
        (dict(n_in=2, n_out=1, optimizer=0.01), "optimizer"),
        (dict(n_in=2, n_out=1, dtype=np.int32), "dtype"),
    ]:
        with pytest.raises(ConfigurationError, match=match):
            OnlineReadout(**kwargs, key=key)
