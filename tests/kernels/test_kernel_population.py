"""The fused population kernel against the JAX path (DESIGN §1), on the host emulation of the same
CUDA source (g++; every machine with a compiler) and on a GPU through CuPy (marked ``gpu``).

Parity: same inputs give the same spikes, spike counts and events, and V and the qubit state within
1e-5 after hundreds of steps. Near-threshold ties are counted by the kernel and asserted on.
"""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qsn
from qsn.errors import BackendUnavailableError, ConfigurationError, RecordingError
from qsn.kernels import population
from qsn.kernels.backend import FusedBackend
from qsn.kernels.compile import host_compiler
from qsn.kernels.runner import HostRunner

HAS_CXX = host_compiler() is not None  # the runner fixture is in tests/kernels/conftest.py


def _fused(runner, params, state, current, steps=None, **kw):
    return qsn.simulate(params, state, current, steps, backend=FusedBackend(runner), **kw)


def _assert_same(ref, out, atol=None):
    """Equal spikes and states; the state tolerance is DESIGN's 1e-5 for runs of up to 100 steps and
    grows by 1e-7 (~float32 eps) per step beyond: two correctly rounded float32 implementations of
    sin/cos drift apart by about an ulp of phase per step between resets."""
    atol = max(1e-5, 1e-7 * int(ref.state.t)) if atol is None else atol
    np.testing.assert_array_equal(out.spike_count, ref.spike_count)
    assert int(out.state.t) == int(ref.state.t)
    np.testing.assert_array_equal(np.asarray(out.state.refractory), np.asarray(ref.state.refractory))
    for field in ref.state._fields:
        if field in ("t", "refractory"):
            continue
        a, b = np.asarray(getattr(ref.state, field), np.float64), np.asarray(getattr(out.state, field), np.float64)
        # V in mV: 1e-5 relative to its ~60 mV scale; qubit components absolutely
        tol = atol * (60.0 if field == "v" else 1.0)
        np.testing.assert_allclose(b, a, atol=tol, err_msg=field)


def _rng_params(rng, n, mode, **extra):
    kw = dict(delta=rng.uniform(0.0, 0.6, n).astype(np.float32), tau_m=rng.uniform(10.0, 30.0, n).astype(np.float32),
              t_ref=rng.choice([0.0, 0.1, 0.25, 2.0], n).astype(np.float32))
    if mode == "mixed":
        kw.update(t1=40.0, t2=30.0)
    kw.update(extra)
    return qsn.NeuronParams(**kw)


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_streamed_current_per_neuron_params(runner, mode):
    rng = np.random.default_rng(1)
    n, steps = 77, 600  # n not a multiple of 32: idle lanes in the last warp
    p = _rng_params(rng, n, mode)
    s = qsn.init_state(p, n, mode=mode)
    current = jnp.asarray(rng.uniform(5.0, 40.0, (steps, n)), jnp.float32)
    ref = qsn.simulate(p, s, current, record=("spikes", "events"))
    out = _fused(runner, p, s, current, record=("spikes", "events"))
    assert ref.spike_count.sum() > 100  # the comparison covers many spikes and resets
    _assert_same(ref, out)
    np.testing.assert_array_equal(out.spikes, ref.spikes)
    np.testing.assert_array_equal(out.events.step, ref.events.step)
    np.testing.assert_array_equal(out.events.neuron, ref.events.neuron)


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_state_within_1e_5_after_100_steps(runner, mode):
    rng = np.random.default_rng(3)
    n = 96
    p = _rng_params(rng, n, mode, t_ref=2.0)
    s = qsn.init_state(p, n, mode=mode, v0=rng.uniform(-70.0, -56.0, n).astype(np.float32))
    current = jnp.asarray(rng.uniform(0.0, 30.0, (100, n)), jnp.float32)
    ref = qsn.simulate(p, s, current, record=("spikes",))
    out = _fused(runner, p, s, current, record=("spikes",))
    _assert_same(ref, out, atol=1e-5)
    np.testing.assert_array_equal(out.spikes, ref.spikes)


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_constant_current_shared_params(runner, mode):
    p = qsn.NeuronParams(delta=0.3, t1=50.0, t2=100.0) if mode == "mixed" else qsn.NeuronParams(delta=0.3)
    n = 64
    s = qsn.init_state(p, n, mode=mode)
    current = np.linspace(10.0, 45.0, n).astype(np.float32)
    ref = qsn.simulate(p, s, current, steps=1000, record=("spikes",), record_every=4, neurons=[0, 3, 40, 63])
    out = _fused(runner, p, s, current, 1000, record=("spikes",), record_every=4, neurons=np.array([0, 3, 40, 63]))
    _assert_same(ref, out)
    np.testing.assert_array_equal(out.spikes, ref.spikes)
    assert out.spikes.shape == (250, 4)


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_poisson_input_drawn_in_kernel(runner, mode):
    rng = np.random.default_rng(2)
    n = 50
    p = _rng_params(rng, n, mode)
    s = qsn.init_state(p, n, mode=mode)
    inp = qsn.PoissonCurrent(n, rate_hz=10.0, weight=rng.uniform(5.0, 15.0, n), key=jax.random.key(7), sources=2000, offset=1.0)
    ref = qsn.simulate(p, s, inp, steps=800, record=("events",))
    out = _fused(runner, p, s, inp, 800, record=("events",))
    assert ref.spike_count.sum() > 100
    _assert_same(ref, out)
    np.testing.assert_array_equal(out.events.neuron, ref.events.neuron)


def test_split_runs_equal_one_run(runner):
    """Chunks (several launches, state kept between them) and a run continued from its final state
    give the one-launch result: the Poisson draws depend on the absolute step only."""
    n = 40
    p = qsn.NeuronParams(delta=0.2, t1=30.0, t2=20.0)
    s = qsn.init_state(p, n, mode="mixed")
    inp = qsn.PoissonCurrent(n, 10.0, 12.0, jax.random.key(1), sources=1500)
    whole = _fused(runner, p, s, inp, 500, record=("spikes",))
    chunked = _fused(runner, p, s, inp, 500, record=("spikes",), chunk_steps=64)
    first = _fused(runner, p, s, inp, 200, record=("spikes",))
    second = _fused(runner, p, first.state, inp, 300, record=("spikes",))
    np.testing.assert_array_equal(chunked.spikes, whole.spikes)
    np.testing.assert_array_equal(np.concatenate([first.spikes, second.spikes]), whole.spikes)
    np.testing.assert_array_equal(np.asarray(second.state.z), np.asarray(whole.state.z))
    assert int(second.state.t) == 500


def test_ties_at_threshold_are_reported(runner):
    """V relaxing onto v_th from below (I = v_th - v_rest) stalls a few dozen ulps under it in float32:
    the kernel counts the steps within ``tie_tol * |v_th|`` of the threshold (here as many as the JAX
    V trace has), so a spike that two backends could decide differently is reported, not hidden."""
    p = qsn.NeuronParams(delta=0.1)
    s = qsn.init_state(p, 2)
    current = np.array([15.0, 5.0], np.float32)
    tol = 2.0**-12
    out = population.run(runner, p, s, current, 4000, ties=True, tie_tol=tol)
    ties = runner.to_host(out["ties"])
    v = np.asarray(qsn.simulate(p, s, current, steps=4000, record=("v",)).v)
    expected = np.sum(np.abs(v - np.float32(-55.0)) <= np.float32(tol * 55.0), axis=0)
    assert expected[0] > 1000 and expected[1] == 0
    assert abs(int(ties[0]) - int(expected[0])) <= 2 and ties[1] == 0


def test_kernel_series_angle_is_the_jax_paths():
    import re

    from qsn.dynamics import SERIES_ANGLE
    from qsn.kernels.compile import source

    match = re.search(r"#define QSN_SERIES_ANGLE ([0-9.]+)f", source("population"))
    assert match and float(match.group(1)) == SERIES_ANGLE["float32"]


def test_bit_packing_layout():
    words = np.array([[0b101, 1 << 31], [0, 1]], np.uint32)
    raster = population.unpack_spikes(words, 40)
    assert raster.shape == (2, 40)
    np.testing.assert_array_equal(np.flatnonzero(raster[0]), [0, 2])  # bit 31 of word 1 is neuron 63 >= n: cut
    np.testing.assert_array_equal(np.flatnonzero(raster[1]), [32])


def test_event_capacity_overflow_raises(runner):
    p = qsn.NeuronParams()
    s = qsn.init_state(p, 32)
    with pytest.raises(RecordingError, match="event_capacity=5"):
        _fused(runner, p, s, 40.0, 2000, record=("events",), event_capacity=5)


@settings(max_examples=15, deadline=None)
@given(
    t_ref=st.floats(0.0, 3.0),
    drive=st.floats(14.0, 200.0),
    delta=st.floats(0.0, 1.0),
)
def test_refractory_period_property(t_ref, drive, delta):
    """Two spikes of one neuron are at least n_ref = ceil(t_ref/dt) steps apart, and a strong constant
    drive fires exactly every max(n_ref, first-passage) steps (host emulation)."""
    if not HAS_CXX:
        pytest.skip("no C++ compiler")
    p = qsn.NeuronParams(t_ref=t_ref, delta=delta)
    s = qsn.init_state(p, 1)
    out = _fused(HostRunner(), p, s, np.float32(drive), 3000, record=("events",))
    ref = qsn.simulate(p, s, np.float32(drive), steps=3000, record=("events",))
    np.testing.assert_array_equal(out.events.step, ref.events.step)
    gaps = np.diff(out.events.step)
    n_ref = int(p.refractory_steps)
    assert (gaps >= max(n_ref, 1)).all()


# ---------------------------------------------------------------------------------------------
# What the kernel refuses, by name


def test_refusals_name_the_field():
    if not HAS_CXX:
        pytest.skip("no C++ compiler")
    host = HostRunner()
    p = qsn.NeuronParams(jump_rate=0.1)
    with pytest.raises(ConfigurationError, match=r"`key` is required: quantum-jump spiking"):
        _fused(host, p, qsn.init_state(p, 4), 1.0, 5)
    p = qsn.NeuronParams(t2=30.0)
    with pytest.raises(ConfigurationError, match=r"`key` is required: pure-mode dephasing"):
        _fused(host, p, qsn.init_state(p, 4), 1.0, 5)
    p = qsn.NeuronParams()
    with pytest.raises(ConfigurationError, match=r"float32 states, but the state is float64"):
        _fused(host, p, qsn.init_state(p, 4, dtype=jnp.float64), 1.0, 5)
    with pytest.raises(ConfigurationError, match=r"function of the step index runs only on backend='jax'"):
        _fused(host, p, qsn.init_state(p, 4), lambda t: jnp.ones(4, jnp.float32), 5)


@pytest.mark.parametrize("mode", ["pure", "mixed"])
@pytest.mark.parametrize("native", [False, True], ids=["launch", "native"])
def test_state_recordings_match_the_jax_path(runner, mode, native):
    """``v``, ``rho``, ``p1``, ``coherence`` and ``entropy`` come from state samples the kernel writes
    every ``record_every`` steps for the chosen neurons: equal to the JAX path's records (V exactly, the
    observables to float32 rounding of the state), with chunks that are and are not multiples of the
    period, and a tail shorter than one period that records nothing (as on the JAX path)."""
    if native:
        if runner.name != "host":
            pytest.skip("the native build runs on the host")
        from qsn.kernels.runner import NativeRunner

        runner = NativeRunner()
    n = 70
    p = qsn.NeuronParams(delta=0.3, t1=80.0 if mode == "mixed" else float("inf"), t2=50.0 if mode == "mixed" else float("inf"))
    s = qsn.init_state(p, n, mode=mode, dtype=jnp.float32)
    current = jnp.linspace(10.0, 40.0, n, dtype=jnp.float32)
    names = ("spikes", "v", "rho", "p1", "coherence", "entropy")
    kw = dict(record=names, neurons=np.array([0, 5, 33, 69]), record_every=7)
    ref = qsn.simulate(p, s, current, steps=1003, **kw)
    out = _fused(runner, p, s, current, 1003, chunk_steps=300, **kw)
    assert out.records["v"].shape == ref.records["v"].shape == (143, 4)
    assert out.records["rho"].shape == (143, 4, 2, 2)
    np.testing.assert_array_equal(out.records["spikes"], ref.records["spikes"])
    np.testing.assert_array_equal(out.records["v"], ref.records["v"])
    for name in ("rho", "p1", "coherence", "entropy"):
        np.testing.assert_allclose(out.records[name], ref.records[name], atol=2e-5, err_msg=name)
    assert float(np.max(ref.records["p1"])) > 0.01  # the qubits moved: the comparison is not of zeros


def test_poisson_current_dt_must_match_both_backends():
    p = qsn.NeuronParams(dt=0.05)
    s = qsn.init_state(p, 3)
    inp = qsn.PoissonCurrent(3, 10.0, 1.0, jax.random.key(0), dt=0.1)
    with pytest.raises(ConfigurationError, match=r"dt=0.1 ms but NeuronParams has dt=0.05"):
        qsn.simulate(p, s, inp, steps=5)
    if HAS_CXX:
        with pytest.raises(ConfigurationError, match=r"dt=0.1 ms"):
            _fused(HostRunner(), p, s, inp, 5)


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_cupy_backend_names_what_is_missing():
    p = qsn.NeuronParams()
    s = qsn.init_state(p, 4, dtype=jnp.float32)
    with pytest.raises(BackendUnavailableError, match=r"needs CuPy: pip install 'qsn\[cuda\]'"):
        qsn.simulate(p, s, 20.0, steps=5, backend="cupy", record=("spikes",))


def test_network_run_names_an_unknown_backend():
    # 'native' and 'cupy' run networks on the whole-network kernels (tests/kernels/test_kernel_native_network.py)
    from qsn.networks import Network, NeuronGroup

    net = Network(dtype=jnp.float32)
    net.add(NeuronGroup(4, qsn.NeuronParams(), "pure", name="cells"))
    net.build(jax.random.key(0))
    with pytest.raises(ConfigurationError, match=r"backend must be 'jax', 'native' or 'cupy', but is 'torch'"):
        net.run(1.0, backend="torch")
    assert int(net.state.t) == 0  # refused before any step
    net.run(1.0)  # the JAX path is unaffected


# ---------------------------------------------------------------------------------------------
# Stochastic parts: the kernel draws from Philox, the JAX path from jax.random, so runs are compared
# in distribution (scipy.stats), and each backend against itself for determinism.


def _bloch_of_pure(state):
    re0, im0, re1, im1 = (np.asarray(getattr(state, f), np.float64) for f in ("re0", "im0", "re1", "im1"))
    return np.stack([2 * (re0 * re1 + im0 * im1), 2 * (re0 * im1 - im0 * re1), re0**2 + im0**2 - re1**2 - im1**2])


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_jump_spiking_rates_match_the_jax_path(runner, mode):
    """Sub-threshold neurons that spike only by quantum jumps: per-neuron spike counts of the kernel and
    of the JAX path come from one distribution (two-sample KS and Welch t-tests)."""
    n, steps = 3000, 400
    p = qsn.NeuronParams(delta=0.8, jump_rate=0.5, t_ref=1.0)
    s = qsn.init_state(p, n, mode=mode)
    ref = qsn.simulate(p, s, 10.0, steps=steps, key=jax.random.key(0))
    out = _fused(runner, p, s, np.float32(10.0), steps, key=jax.random.key(1))
    a, b = ref.spike_count.astype(float), out.spike_count.astype(float)
    assert a.mean() > 2.0  # jumps happen, several per neuron
    from scipy import stats

    assert stats.ttest_ind(a, b, equal_var=False).pvalue > 1e-3
    assert stats.ks_2samp(a, b).pvalue > 1e-3


def test_pure_unravelling_averages_to_the_mixed_mode(runner):
    """Pure-mode trajectories with finite T1/T2 (random phase kicks and relaxation jumps drawn in the
    kernel) average to the mixed mode's Lindblad evolution: Bloch vector within 4 standard errors."""
    n, steps = 4000, 300
    p = qsn.NeuronParams(delta=0.6, t1=20.0, t2=8.0)
    drive = np.float32(10.0)  # sub-threshold: no spike resets, so the ensemble is a Lindblad ensemble
    out = _fused(runner, p, qsn.init_state(p, n, mode="pure"), drive, steps, key=jax.random.key(5))
    exact = qsn.simulate(p, qsn.init_state(p, 1, mode="mixed", dtype=jnp.float64), 10.0, steps=steps).state
    assert out.spike_count.sum() == 0
    bloch = _bloch_of_pure(out.state)
    mean, sem = bloch.mean(axis=1), bloch.std(axis=1, ddof=1) / np.sqrt(n)
    target = np.array([float(exact.x[0]), float(exact.y[0]), float(exact.z[0])])
    assert np.all(np.abs(mean - target) <= 4 * sem + 1e-4), (mean, target, sem)
    assert np.allclose(np.sum(bloch**2, axis=0), 1.0, atol=1e-5)  # every trajectory stays pure


def test_stochastic_runs_are_reproducible_and_split_exactly(runner):
    p = qsn.NeuronParams(delta=0.5, jump_rate=0.3, t1=30.0, t2=20.0)
    s = qsn.init_state(p, 64)
    one = _fused(runner, p, s, np.float32(12.0), 300, key=jax.random.key(2), record=("events",))
    again = _fused(runner, p, s, np.float32(12.0), 300, key=jax.random.key(2), record=("events",))
    other = _fused(runner, p, s, np.float32(12.0), 300, key=jax.random.key(3), record=("events",))
    first = _fused(runner, p, s, np.float32(12.0), 120, key=jax.random.key(2), record=("events",))
    second = _fused(runner, p, first.state, np.float32(12.0), 180, key=jax.random.key(2), record=("events",))
    assert one.spike_count.sum() > 20
    np.testing.assert_array_equal(again.events.neuron, one.events.neuron)
    np.testing.assert_array_equal(np.asarray(again.state.re1), np.asarray(one.state.re1))
    assert not np.array_equal(other.spike_count, one.spike_count)
    np.testing.assert_array_equal(np.concatenate([first.events.step, second.events.step]), one.events.step)
    np.testing.assert_array_equal(np.asarray(second.state.im1), np.asarray(one.state.im1))


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_no_jump_conditioning_against_the_analytic_survival(runner, mode):
    """H = 0 (delta = 0, V at rest) and a qubit starting with p1 = 1/2: a jump can happen at most once,
    and with the no-jump conditioning the chance that it has happened by time t is exactly
    p1 (1 - exp(-jump_rate t)) (the discrete step is exact for H = 0). Binomial test for the kernel
    and, as a cross-check of the reference, for the JAX path."""
    from scipy import stats

    n, steps, rate = 4000, 100, 0.1  # jump_rate t = 1
    p = qsn.NeuronParams(delta=0.0, jump_rate=rate)
    s = qsn.init_state(p, n, mode=mode, bloch0=[1.0, 0.0, 0.0])
    expected = 0.5 * (1.0 - np.exp(-rate * steps * 0.1))
    for result in (_fused(runner, p, s, np.float32(0.0), steps, key=jax.random.key(4)),
                   qsn.simulate(p, s, 0.0, steps=steps, key=jax.random.key(4))):
        assert result.spike_count.max() <= 1
        fired = int(np.sum(result.spike_count))
        assert stats.binomtest(fired, n, expected).pvalue > 1e-3, (fired / n, expected)


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("cupy") is None, reason="needs CuPy and CUDA")
def test_dlpack_is_zero_copy_both_ways():
    from qsn.kernels.interop import to_cupy, to_jax

    x = jnp.arange(1024, dtype=jnp.float32)
    view = to_cupy(x)
    assert view.data.ptr == x.unsafe_buffer_pointer()
    back = to_jax(view)
    assert back.unsafe_buffer_pointer() == view.data.ptr
    np.testing.assert_array_equal(np.asarray(back), np.arange(1024, dtype=np.float32))


def test_precise_reaches_the_kernel_through_simulate(runner):
    """simulate(precise=...) builds the kernel it names: its state is the one launch of that build gives,
    and the fast and precise builds round differently over a long pure run."""
    p = qsn.NeuronParams(delta=0.4)
    s = qsn.init_state(p, 32)
    current = np.linspace(5.0, 14.0, 32).astype(np.float32)  # sub-threshold: no resets
    runs = {precise: _fused(runner, p, s, current, 2000, precise=precise) for precise in (False, True)}
    for precise, result in runs.items():
        one = population.run(runner, p, s, current, 2000, precise=precise)["state"]
        np.testing.assert_array_equal(np.asarray(result.state.re1), np.asarray(one.re1))
    assert not np.array_equal(np.asarray(runs[False].state.re1), np.asarray(runs[True].state.re1))
