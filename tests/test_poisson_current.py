"""Philox4x32-10 against Random123's known answers, and qsn.PoissonCurrent against scipy.stats."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import qsn
from qsn.errors import ConfigurationError
from qsn.philox import philox4x32, uniform24

# Random123's kat_vectors for philox4x32_10: (counter, key) -> output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox4x32(counter, key)) == expected


def test_philox_is_elementwise():
    ctr = (jnp.arange(5, dtype=jnp.uint32), 7, 0, 0)
    words = philox4x32(ctr, (1, 2))
    for i in range(5):
        one = philox4x32((i, 7, 0, 0), (1, 2))
        assert tuple(int(w[i]) for w in words) == tuple(int(w) for w in one)


def test_uniform24_is_exact_and_in_range():
    u = uniform24(jnp.array([0, 255, 256, 0xFFFFFFFF], jnp.uint32))
    assert u.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(u), [0.0, 0.0, 2.0**-24, 1.0 - 2.0**-24])


@pytest.mark.parametrize("mean", [0.05, 1.0, 7.5])
def test_counts_follow_poisson(mean):
    """Chi-square of the counts of 20 steps x 5000 neurons against Poisson(mean) (scipy.stats)."""
    n, dt, sources = 5000, 0.1, 100
    rate = mean * 1000.0 / (sources * dt)
    inp = qsn.PoissonCurrent(n, rate, 1.0, jax.random.key(4), dt=dt, sources=sources)
    assert inp.mean == pytest.approx(mean)
    counts = np.concatenate([np.asarray(inp.counts(t)) for t in range(20)])
    top = int(stats.poisson.ppf(1 - 1e-3, mean))  # pool the tail so every expected count is >= 5-ish
    observed = np.bincount(np.minimum(counts, top + 1), minlength=top + 2)
    probs = np.append(stats.poisson.pmf(np.arange(top + 1), mean), stats.poisson.sf(top, mean))
    keep = probs * counts.size >= 5
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(probs[keep], probs[~keep].sum()) * counts.size
    obs, exp = obs[exp > 0], exp[exp > 0]
    assert stats.chisquare(obs, exp).pvalue > 1e-4


def test_draws_are_independent_across_neurons_and_steps():
    inp = qsn.PoissonCurrent(4000, 100.0, 1.0, jax.random.key(9), sources=100)  # mean 1 per step
    a, b = np.asarray(inp.counts(10)), np.asarray(inp.counts(11))
    assert abs(stats.pearsonr(a, b).statistic) < 0.06  # 4000 pairs: |r| < 0.06 at ~3.8 sigma
    assert abs(stats.pearsonr(a[:-1], a[1:]).statistic) < 0.06


def test_current_depends_on_the_absolute_step_and_key_only():
    inp = qsn.PoissonCurrent(50, 100.0, 2.0, jax.random.key(1), sources=100, offset=0.5)
    again = qsn.PoissonCurrent(50, 100.0, 2.0, jax.random.key(1), sources=100, offset=0.5)
    other = qsn.PoissonCurrent(50, 100.0, 2.0, jax.random.key(2), sources=100, offset=0.5)
    np.testing.assert_array_equal(np.asarray(inp(123)), np.asarray(again(123)))
    assert not np.array_equal(np.asarray(inp(123)), np.asarray(other(123)))
    np.testing.assert_array_equal(np.asarray(inp(5)), 0.5 + 2.0 * np.asarray(inp.counts(5), np.float32))
    low, high = inp.range
    assert low == 0.5 and high == 0.5 + 2.0 * len(inp.cdf)


def test_runs_in_simulate_and_split_runs_agree():
    p = qsn.NeuronParams(delta=0.2)
    s = qsn.init_state(p, 30)
    inp = qsn.PoissonCurrent(30, 10.0, 25.0, jax.random.key(3), sources=1000)  # mean drive 25 mV: fires
    whole = qsn.simulate(p, s, inp, steps=400, record=("spikes",))
    first = qsn.simulate(p, s, inp, steps=150, record=("spikes",))
    second = qsn.simulate(p, first.state, inp, steps=250, record=("spikes",))
    assert whole.spike_count.sum() > 0
    np.testing.assert_array_equal(np.concatenate([first.spikes, second.spikes]), whole.spikes)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n=0), r"`n` must be a positive int"),
        (dict(sources=0), r"`sources` must be a positive int"),
        (dict(rate_hz=-1.0), r"`rate_hz` must be finite and >= 0"),
        (dict(rate_hz=1e6, sources=1000), r"exceeds 64"),
        (dict(weight=np.ones(3)), r"`weight` must be a scalar or have shape \(n,\) = \(10,\)"),
        (dict(offset=np.nan), r"`offset` must be finite"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, match):
    args = dict(n=10, rate_hz=10.0, weight=1.0, key=jax.random.key(0))
    args.update(kwargs)
    with pytest.raises(ConfigurationError, match=match):
        qsn.PoissonCurrent(**args)
