"""Tests of the size predictors (qsn.scheduler.predict).

* ``history_mean`` equals a plain Python loop (hypothesis), with the prior at index 0;
* ``naive_work`` is the user's estimate where present and the mean true work of *earlier* tasks elsewhere;
  perturbing the true work after index ``k`` leaves predictions ``0..k`` unchanged (no look-ahead on labels);
* ``learned_work`` (raw and spike inputs) is leak-free the same way: perturbing the labels after ``k`` leaves
  every prediction in the batches up to and including ``k``'s unchanged (bit for bit), and the perturbation does
  change later predictions (so the check can fail);
* on a workload whose size is a function of observed features (task type and memory), both learned
  predictors beat the history mean by a clear margin (MSE of log work over the second half < 0.5x);
* a workload with missing estimates: the naive prior at task 0 uses only what is known at task 0
  (its prior reads no later task).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qsn.errors import ConfigurationError
from qsn.scheduler.predict import history_mean, learned_work, log_work_targets, naive_work
from qsn.scheduler.task import Workload

BATCH = 64  # learned_work's default readout batch


def _loop_history_mean(y, prior):
    out = []
    for i in range(len(y)):
        out.append(prior if i == 0 else sum(float(v) for v in y[:i]) / i)
    return np.asarray(out)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(0.0, 1e6)), st.floats(0.0, 100.0))
def test_history_mean_equals_a_plain_loop(y, prior):
    np.testing.assert_allclose(history_mean(y, prior=prior), _loop_history_mean(y, prior), rtol=1e-12, atol=1e-9)


def test_history_mean_default_prior():
    np.testing.assert_array_equal(history_mean([4.0, 2.0, 6.0]), [1.0, 4.0, 3.0])


def _features_workload(n: int = 1024, seed: int = 0, *, estimate_fraction: float = 0.0) -> Workload:
    """Log work = 0.8 task_type + log(memory) + N(0, 0.1^2): the size is predictable from observed columns."""
    rng = np.random.default_rng(seed)
    task_type = rng.integers(0, 4, n)
    memory = np.exp(rng.normal(1.0, 0.7, n))
    work = np.exp(0.8 * task_type + np.log(memory) + 0.1 * rng.standard_normal(n))
    estimate = np.where(rng.random(n) < estimate_fraction, work * np.exp(0.3 * rng.standard_normal(n)), np.nan)
    return Workload.from_arrays(arrival=np.sort(rng.uniform(0.0, 100.0, n)), work=work, memory=memory,
                                task_type=task_type, estimate=estimate)


def _perturb_after(wl: Workload, k: int, seed: int = 1) -> Workload:
    rng = np.random.default_rng(seed)
    work = wl.work.copy()
    work[k + 1:] *= np.exp(rng.normal(0.0, 1.0, wl.n - k - 1)) * 5.0
    return wl.replace(work=work)


def test_naive_work_uses_the_estimate_else_the_history_mean():
    wl = _features_workload(200, estimate_fraction=0.5)
    pred = naive_work(wl)
    has = np.isfinite(wl.estimate)
    assert has.any() and (~has).any()
    np.testing.assert_array_equal(pred[has], wl.estimate[has])
    # the mean true work of the tasks before each one (task 0 has no history: checked separately)
    hist = _loop_history_mean(wl.work, prior=np.nan)
    idx = np.flatnonzero(~has & (np.arange(wl.n) > 0))
    np.testing.assert_allclose(pred[idx], hist[idx], rtol=1e-12)


def test_naive_work_without_any_estimate_has_prior_one():
    wl = _features_workload(50)
    pred = naive_work(wl)
    assert pred[0] == 1.0
    np.testing.assert_allclose(pred[1:], _loop_history_mean(wl.work, 1.0)[1:], rtol=1e-12)


@pytest.mark.parametrize("k", [0, 37, 150])
def test_naive_work_never_sees_its_own_or_later_work(k):
    wl = _features_workload(200, estimate_fraction=0.3)
    base, moved = naive_work(wl), naive_work(_perturb_after(wl, k - 1))
    # perturbing work[k:] leaves predictions 0..k unchanged
    np.testing.assert_array_equal(base[: k + 1], moved[: k + 1])
    assert not np.array_equal(base, moved)  # the perturbation reaches later predictions


def test_naive_prior_does_not_read_later_estimates():
    wl = Workload.from_arrays(arrival=[0.0, 1.0, 2.0], work=[1.0, 1.0, 1.0], estimate=[np.nan, 5.0, 5.0])
    later = wl.replace(estimate=np.array([np.nan, 500.0, 500.0]))
    assert naive_work(wl)[0] == naive_work(later)[0]


@pytest.fixture(scope="module")
def features_workload():
    return _features_workload()


@pytest.mark.parametrize("inputs", ["raw", "spike"])
@pytest.mark.parametrize("k", [40, 200])
def test_learned_work_is_leak_free(features_workload, inputs, k):
    wl = features_workload
    base = learned_work(wl, inputs=inputs)
    moved = learned_work(_perturb_after(wl, k), inputs=inputs)
    # row i is predicted from rows < BATCH * (i // BATCH); the first batch falls back to the history mean of
    # rows < i. Either way rows up to k, and every row in k's batch or before it, see no label after k.
    safe = k + 1 if k < BATCH else BATCH * (k // BATCH + 1)
    np.testing.assert_array_equal(base[:safe], moved[:safe])
    assert not np.allclose(base[safe + BATCH:], moved[safe + BATCH:])  # later batches do learn the new labels


@pytest.mark.parametrize("inputs", ["raw", "spike"])
def test_learned_work_beats_history_mean_on_predictable_sizes(features_workload, inputs):
    wl = features_workload
    y = log_work_targets(wl)[:, 0]
    half = wl.n // 2
    mse_hist = np.mean((np.log(history_mean(wl.work))[half:] - y[half:]) ** 2)
    mse = np.mean((np.log(learned_work(wl, inputs=inputs))[half:] - y[half:]) ** 2)
    # measured (seed 0): history 1.52, raw 0.43, spike 0.26
    assert mse < 0.5 * mse_hist, (mse, mse_hist)


def test_learned_work_first_batch_is_the_history_mean(features_workload):
    wl = features_workload
    pred = learned_work(wl, inputs="raw")
    np.testing.assert_allclose(pred[1:BATCH], _loop_history_mean(wl.work, 1.0)[1:BATCH], rtol=1e-9)
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)


def test_learned_work_rejects_unknown_inputs(features_workload):
    with pytest.raises(ConfigurationError, match="inputs"):
        learned_work(features_workload, inputs="tokens")
