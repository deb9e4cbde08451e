"""``backend="native"`` (the population kernel's step compiled for this CPU: kernels/cpu/population.cpp
over kernels/cuda/neuron.cuh) against the JAX path, the reference (docs/model.md, docs/kernels.md).

One harness runs each deterministic float32 case on both backends for >= 1000 steps and compares:
- spike rasters and counts exactly, except on neurons whose V landed near the threshold: the kernel
  counts those steps (``population.run(..., ties=True)``), and a mismatch is accepted only on a neuron
  with counted ties (the count is in every assertion message);
- the final V to the float32 rounding of the membrane iteration, the refractory counters exactly,
  and the qubit state to a tolerance that grows with the run (stated at ``_QUBIT_PER_STEP``).
Stochastic runs (quantum jumps, pure-mode T1/T2) draw from Philox, not from ``jax.random``: they are
compared with the host emulation of the CUDA launch (same words, same spikes) and with the JAX path
in distribution (means within a few standard errors).
"""

import ctypes
import ctypes.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsn
from qsn.errors import BackendUnavailableError, ConfigurationError
from qsn.kernels import compile as kernel_compile
from qsn.kernels import population
from qsn.kernels.backend import FusedBackend
from qsn.kernels.compile import host_compiler
from qsn.kernels.runner import HostRunner, NativeRunner
from qsn.dynamics import step_constants

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the native backend")

THREADS = 2
# Ties: steps whose V lands within TIE_TOL * |v_th| of v_th. The band is wider than a few ulps on
# purpose: XLA contracts the membrane update v_rest + (V - v_rest) decay + gain I into FMAs in a way
# that depends on the vector width (at n = 64 it fuses only the first product, at n = 8 both, as the
# kernel does), and two float32 iterations that round differently settle up to
# ulp(V) / (2 (1 - decay)) (~200 ulps at tau_m / dt = 200) apart. 2^-15 |v_th| is ~450 ulps at 55 mV.
TIE_TOL = 2.0**-15
# Qubit tolerance per step of the run (amplitudes and Bloch components, absolute): two float32
# evaluations of the rotation (the kernel's polynomials and FMAs, the JAX path's qsn.sincos) drift
# apart by ~1 ulp of phase per step between resets (docs/kernels.md; measured here: <= 3.2e-6 after
# 1500 steps where V is bit-identical, against 1.5e-4 allowed). A neuron whose V differs (see above)
# also sees a drive `a` that differs by dV / (v_th - v_rest), a phase drift of dt * |da| per step
# (measured: 1.8e-3 after 1500 steps, for 3.9e-3 allowed, on the one neuron that needs it).
_QUBIT_PER_STEP = 1e-7


def _native(params, state, current, steps=None, key=None, **kw):
    kw.setdefault("threads", THREADS)
    return qsn.simulate(params, state, current, steps, key, backend="native", **kw)


def _emulated(params, state, current, steps=None, key=None, **kw):
    return qsn.simulate(params, state, current, steps, key, backend=FusedBackend(HostRunner), **kw)


def _qubit_fields(state):
    return ("re0", "im0", "re1", "im1") if isinstance(state, qsn.PureState) else ("x", "y", "z")


def _f64(x):
    return np.asarray(x, np.float64)


def _v_rounding(params, state):
    """Per neuron, the float32 rounding band of the membrane iteration: ulp(V) / (1 - decay), plus one ulp."""
    c = step_constants(params, jnp.float32)
    ulp = np.spacing(np.abs(np.asarray(state.v, np.float32))).astype(np.float64)
    return ulp * (1.0 + 1.0 / (1.0 - _f64(c.decay)))


def _ties(params, state, current, steps, key=None):
    """The kernel's per-neuron count of near-threshold steps for this run (a separate launch of the
    ties build), with its spike counts (the ties build must not change the dynamics)."""
    runner = NativeRunner(THREADS)
    out = population.run(runner, params, state, current, steps, key, ties=True, tie_tol=TIE_TOL)
    return np.asarray(runner.to_host(out["ties"])), np.asarray(runner.to_host(out["count"]))


def assert_parity(name, params, state, ref, out, ties):
    """Spikes of ``out`` (native) equal to ``ref`` (JAX) except on neurons with counted ties; V to the
    float32 rounding band, refractory counters exactly, qubits to the per-step tolerance."""
    steps = int(ref.state.t) - int(state.t)
    raster_ref, raster_out = np.asarray(ref.spikes), np.asarray(out.spikes)
    assert raster_out.shape == raster_ref.shape
    differ = np.any(raster_out != raster_ref, axis=0) | (np.asarray(out.spike_count) != np.asarray(ref.spike_count))
    unexplained = np.flatnonzero(differ & (ties == 0))
    report = (f"{name}: {int(differ.sum())} neurons' spikes differ from the JAX path; the kernel counted "
              f"{int(ties.sum())} near-threshold steps (|V - v_th| <= {TIE_TOL:g} |v_th|) on "
              f"{int(np.count_nonzero(ties))} neurons; differing neurons without a tie: {unexplained[:10].tolist()}")
    assert unexplained.size == 0, report
    ok = ~differ
    assert ok.sum() >= 0.99 * ok.size, report  # ties are rare: the comparison below covers the population
    np.testing.assert_array_equal(np.asarray(out.state.refractory)[ok], np.asarray(ref.state.refractory)[ok], err_msg=report)
    dv = np.abs(_f64(out.state.v) - _f64(ref.state.v))
    band = _v_rounding(params, ref.state)
    assert np.all(dv[ok] <= band[ok]), f"{name}: V differs by {dv[ok].max():.3g} mV, beyond float32 rounding; {report}"
    inv_range = np.broadcast_to(_f64(step_constants(params, jnp.float32).inv_range), dv.shape)
    dt = float(params.dt)
    # a V difference (within the band) comes from a stall that lasts to the end of the run, or it would
    # have been reset away by a spike: its drive error |dV| inv_range acted for at most `steps` steps
    tol = _QUBIT_PER_STEP * max(steps, 100) + steps * dt * inv_range * dv
    for field in _qubit_fields(ref.state):
        err = np.abs(_f64(getattr(out.state, field)) - _f64(getattr(ref.state, field)))
        worst = int(np.argmax(np.where(ok, err - tol, -np.inf)))
        assert np.all(err[ok] <= tol[ok]), (
            f"{name}: {field} differs by {err[worst]:.3g} at neuron {worst} (tolerance {tol[worst]:.3g}); {report}")


# ---------------------------------------------------------------------------------------------
# The deterministic cases: (params, state, current, steps), float32. Currents span sub- and
# supra-threshold neurons; two neurons of the first case are driven exactly to threshold
# (I = v_th - v_rest: V stalls a few ulps below v_th), the hardest ties there are.


def _pure_constant():
    n = 1000
    p = qsn.NeuronParams(delta=0.3)
    current = np.linspace(5.0, 45.0, n).astype(np.float32)
    current[[10, 11]] = np.float32(15.0)  # v_th - v_rest
    v0 = np.full(n, -70.0, np.float32)
    v0[[10, 11]] = np.float32(-55.0005)  # inside the tie band from the start
    return p, qsn.init_state(p, n, v0=v0), current, 1500


def _mixed_constant():
    n = 1000
    p = qsn.NeuronParams(delta=0.3, t1=50.0, t2=40.0)
    return p, qsn.init_state(p, n, mode="mixed"), np.linspace(5.0, 45.0, n).astype(np.float32), 1500


def _streamed(rng, steps, n, low, high):
    """(T, n) input: a per-neuron level spread over [low, high] (sub- and supra-threshold neurons)
    plus noise of +-5 mV on every step."""
    level = rng.permutation(np.linspace(high, low, n))  # n = 1: the high level
    return jnp.asarray(level + rng.uniform(-5.0, 5.0, (steps, n)), jnp.float32)


def _per_neuron(mode, n=1000, steps=1200, seed=1):
    """Per-neuron v_th, tau_m, delta and t_ref arrays, streamed (T, n) input."""
    rng = np.random.default_rng(seed)
    kw = dict(v_th=rng.uniform(-58.0, -50.0, n), tau_m=rng.uniform(8.0, 30.0, n), delta=rng.uniform(0.0, 0.8, n),
              t_ref=rng.choice([0.0, 0.1, 0.25, 2.0], n))
    if mode == "mixed":
        kw.update(t1=rng.uniform(30.0, 80.0, n), t2=25.0)
    p = qsn.NeuronParams(**{k: np.asarray(v, np.float32) if np.ndim(v) else v for k, v in kw.items()})
    current = _streamed(rng, steps, n, 0.0, 40.0)
    v0 = rng.uniform(-70.0, -56.0, n).astype(np.float32)
    return p, qsn.init_state(p, n, mode=mode, v0=v0), current, steps


def _refractory_v_reset(mode, shared):
    """Refractory periods and v_reset != v_rest (shared below v_rest, or per neuron below and above it)."""
    rng = np.random.default_rng(5)
    n, steps = 1000, 1200
    v_reset = np.float32(-64.0) if shared else rng.uniform(-80.0, -57.0, n).astype(np.float32)
    extra = {"t1": 60.0, "t2": 45.0} if mode == "mixed" else {}
    p = qsn.NeuronParams(v_reset=v_reset, delta=0.4, t_ref=rng.choice([0.0, 0.3, 1.0, 2.0, 5.0], n).astype(np.float32), **extra)
    current = _streamed(rng, steps, n, 0.0, 45.0)
    return p, qsn.init_state(p, n, mode=mode), current, steps


def _poisson(mode):
    """qsn.PoissonCurrent: the JAX path evaluates the same Philox words as the kernel draws, so the
    input, and with it the run, is deterministic on both backends."""
    rng = np.random.default_rng(2)
    n = 1000
    extra = {"t1": 40.0, "t2": 30.0} if mode == "mixed" else {}
    p = qsn.NeuronParams(delta=0.3, t_ref=1.0, **extra)
    inp = qsn.PoissonCurrent(n, rate_hz=10.0, weight=rng.uniform(5.0, 15.0, n), key=jax.random.key(7), sources=2000, offset=1.0)
    return p, qsn.init_state(p, n, mode=mode), inp, 1200


CASES = {
    "pure-constant": _pure_constant,
    "mixed-constant": _mixed_constant,
    "pure-per-neuron-streamed": lambda: _per_neuron("pure"),
    "mixed-per-neuron-streamed": lambda: _per_neuron("mixed"),
    "pure-refractory-v_reset-shared": lambda: _refractory_v_reset("pure", True),
    "mixed-refractory-v_reset-per-neuron": lambda: _refractory_v_reset("mixed", False),
    "pure-poisson": lambda: _poisson("pure"),
    "mixed-poisson": lambda: _poisson("mixed"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_parity_with_the_jax_path(name):
    p, s, current, steps = CASES[name]()
    ref = qsn.simulate(p, s, current, steps, record=("spikes",))
    out = _native(p, s, current, steps, record=("spikes",))
    ties, tie_run_count = _ties(p, s, current, steps)
    assert ref.spike_count.sum() > 2000, "the comparison must cover many spikes and resets"
    assert (ref.spike_count == 0).any(), "and some sub-threshold neurons"
    np.testing.assert_array_equal(tie_run_count, out.spike_count)
    assert_parity(name, p, s, ref, out, ties)


def test_ties_are_counted_where_the_jax_path_stalls_at_threshold():
    """The neurons driven exactly to threshold (pure-constant case) stall within the tie band: the
    kernel's count matches the JAX V trace's, so the harness's tie exemption is not vacuous."""
    p, s, current, steps = _pure_constant()
    ties, _ = _ties(p, s, current, steps)
    v = np.asarray(qsn.simulate(p, s, current, steps, record=("v",), neurons=[10, 11]).v, np.float64)
    band = np.float32(TIE_TOL * 55.0)
    expected = np.sum(np.abs(v - -55.0) <= band, axis=0)
    assert expected.min() > 500, expected
    np.testing.assert_allclose(ties[[10, 11]], expected, rtol=0.02, atol=5)
    assert ties.sum() - ties[[10, 11]].sum() < 0.01 * steps * ties.size  # elsewhere, ties are rare


def test_threshold_is_inclusive():
    """V landing exactly on v_th spikes (docs/model.md step 5: V >= v_th). From V = v_rest the first
    update is round(gain I + v_rest) under any contraction; I = 15 / gain makes it v_th = -55 exactly
    (checked in NumPy float64 before rounding), and after each refractory period it lands there again."""
    p = qsn.NeuronParams(delta=0.3)
    gain = np.float32(step_constants(p, jnp.float32).gain)
    current = np.float32(15.0 / np.float64(gain))
    assert np.float32(np.float64(gain) * np.float64(current) - 70.0) == np.float32(-55.0)
    s = qsn.init_state(p, 3)
    ref = qsn.simulate(p, s, np.full(3, current), 1000, record=("spikes",))
    out = _native(p, s, np.full(3, current), 1000, record=("spikes",))
    n_ref = int(p.refractory_steps)
    np.testing.assert_array_equal(np.flatnonzero(ref.spikes[:, 0]), np.arange(0, 1000, n_ref))  # the reference
    np.testing.assert_array_equal(out.spikes, ref.spikes)


# ---------------------------------------------------------------------------------------------
# Block edges and chunking


@pytest.mark.parametrize("n", [1, 31, 257, 1000])
def test_neuron_counts_off_the_block_and_chunked_runs(n):
    """n not a multiple of the block (256) or of 32: the last block's idle lanes must not write. A run
    in chunks (several launches; 250 steps, not a multiple of the 4-step renormalisation schedule)
    equals the one run bit for bit, and both equal the JAX path."""
    p, s, current, steps = _per_neuron("mixed" if n in (31, 1000) else "pure", n=n, steps=1000, seed=n)
    ref = qsn.simulate(p, s, current, steps, record=("spikes",))
    one = _native(p, s, current, steps, record=("spikes",))
    chunked = _native(p, s, current, steps, record=("spikes",), chunk_steps=250)
    ties, _ = _ties(p, s, current, steps)
    assert ref.spike_count.sum() > 2 * n
    assert_parity(f"n={n}", p, s, ref, one, ties)
    np.testing.assert_array_equal(chunked.spikes, one.spikes)
    np.testing.assert_array_equal(chunked.spike_count, one.spike_count)
    for field in one.state._fields:
        np.testing.assert_array_equal(np.asarray(getattr(chunked.state, field)), np.asarray(getattr(one.state, field)), err_msg=field)


# ---------------------------------------------------------------------------------------------
# Events


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_events_are_the_rasters_spikes_in_step_neuron_order(mode):
    """record=("events",) from a continued state (t = 300): the (step, neuron) pairs of the raster,
    sorted by step then neuron, with absolute steps (raster row + 300) as on the JAX path."""
    p, s, _, _ = _per_neuron(mode, n=600, steps=1, seed=9)
    # constant input: the last block's idle lanes (600 = 2 x 256 + 88) repeat neuron 599, its input
    # included; it fires, so that an idle lane's spike written as an event would show
    current = np.linspace(0.0, 40.0, 600).astype(np.float32)
    s = qsn.simulate(p, s, current, 300).state
    assert int(s.t) == 300
    out = _native(p, s, current, 1000, record=("spikes", "events"))
    ref = qsn.simulate(p, s, current, 1000, record=("events",))
    steps, neurons = np.nonzero(np.asarray(out.spikes))  # row-major: by step, then neuron
    assert steps.size > 1000 and out.spike_count[-1] > 10
    np.testing.assert_array_equal(out.events.step, steps + 300)
    np.testing.assert_array_equal(out.events.neuron, neurons)
    assert np.all(np.diff(out.events.step * 600 + out.events.neuron) > 0)  # strictly sorted, no duplicates
    ties, _ = _ties(p, s, current, 1000)
    if not ties.any():  # no near-threshold step: the JAX path's events are the same list
        np.testing.assert_array_equal(out.events.step, ref.events.step)
        np.testing.assert_array_equal(out.events.neuron, ref.events.neuron)
    else:
        keep = lambda ev: ties[ev.neuron] == 0  # noqa: E731
        np.testing.assert_array_equal(out.events.neuron[keep(out.events)], ref.events.neuron[keep(ref.events)])


# ---------------------------------------------------------------------------------------------
# Stochastic parts and Poisson input: the host emulation draws the same Philox words


STOCHASTIC = {
    "poisson-pure": (dict(delta=0.3, t_ref=1.0), "pure", "poisson", None),
    "poisson-mixed": (dict(delta=0.3, t_ref=1.0, t1=40.0, t2=30.0), "mixed", "poisson", None),
    "jumps-pure": (dict(delta=0.8, jump_rate=0.5, t_ref=1.0), "pure", 10.0, 1),
    "jumps-mixed": (dict(delta=0.8, jump_rate=0.5, t_ref=1.0, t1=40.0, t2=30.0), "mixed", 10.0, 1),
    "t1-t2-pure": (dict(delta=0.6, t1=20.0, t2=8.0), "pure", 15.0, 2),
    "everything-pure": (dict(delta=0.6, t1=20.0, t2=8.0, jump_rate=0.3, t_ref=0.5), "pure", "poisson", 3),
}


def _stochastic(name, n=1000):
    kw, mode, current, seed = STOCHASTIC[name]
    p = qsn.NeuronParams(**kw)
    if current == "poisson":
        weight = np.random.default_rng(4).uniform(5.0, 15.0, n)
        current = qsn.PoissonCurrent(n, rate_hz=10.0, weight=weight, key=jax.random.key(7), sources=2000, offset=1.0)
    else:
        current = np.float32(current)
    return p, qsn.init_state(p, n, mode=mode), current, None if seed is None else jax.random.key(seed)


@pytest.mark.parametrize("name", list(STOCHASTIC))
def test_stochastic_runs_equal_the_host_emulation(name):
    """Same Philox counters, same spikes: the precise builds are bit-identical (both IEEE libm in
    source order); the fast native build has the same spikes and its state within 1e-5 (its
    polynomial sine and cosine of the dephasing kicks are not libm's)."""
    p, s, current, key = _stochastic(name)
    steps = 1000
    for precise in (True, False):
        nat = _native(p, s, current, steps, key, record=("spikes",), precise=precise)
        emu = _emulated(p, s, current, steps, key, record=("spikes",), precise=precise)
        np.testing.assert_array_equal(nat.spikes, emu.spikes)
        np.testing.assert_array_equal(nat.spike_count, emu.spike_count)
        for field in nat.state._fields:
            a, b = np.asarray(getattr(nat.state, field)), np.asarray(getattr(emu.state, field))
            if precise or field in ("v", "refractory", "t"):
                np.testing.assert_array_equal(a, b, err_msg=f"{field} (precise={precise})")
            else:
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=field)
    if "jumps" in name or "everything" in name:
        assert nat.spike_count.sum() > 5 * s.v.shape[0]


@pytest.mark.parametrize("name", ["poisson-mixed", "everything-pure"])
def test_stochastic_chunked_and_continued_runs_equal_one_run(name):
    """Chunks of 250 steps (launches that start off the 4-step Philox block of the Poisson input) and
    a run continued from its final state give the one run bit for bit: every draw is a function of
    the neuron and the absolute step."""
    p, s, current, key = _stochastic(name, n=300)
    one = _native(p, s, current, 1000, key, record=("spikes",))
    chunked = _native(p, s, current, 1000, key, record=("spikes",), chunk_steps=250)
    first = _native(p, s, current, 250, key, record=("spikes",))
    second = _native(p, first.state, current, 750, key, record=("spikes",))
    assert one.spike_count.sum() > 300
    for other in (chunked, second):
        np.testing.assert_array_equal(other.spikes, one.spikes[-other.spikes.shape[0]:])
        for field in one.state._fields:
            np.testing.assert_array_equal(np.asarray(getattr(other.state, field)), np.asarray(getattr(one.state, field)), err_msg=field)
    np.testing.assert_array_equal(first.spikes, one.spikes[:250])


def _mean_and_sem(x):
    x = np.asarray(x, np.float64)
    return x.mean(axis=-1), x.std(axis=-1, ddof=1) / np.sqrt(x.shape[-1])


def _within(a, b, k=5.0, floor=0.0):
    (ma, sa), (mb, sb) = _mean_and_sem(a), _mean_and_sem(b)
    return np.abs(ma - mb) <= k * np.hypot(sa, sb) + floor, (ma, mb, np.hypot(sa, sb))


@pytest.mark.parametrize("name", ["jumps-pure", "jumps-mixed", "everything-pure"])
def test_spike_rates_equal_the_jax_path_in_distribution(name):
    """Jump spiking drawn from Philox (native) and from jax.random (JAX path): mean spike count per
    neuron within 5 standard errors of the difference."""
    p, s, current, key = _stochastic(name, n=2000)
    steps = 1000
    out = _native(p, s, current, steps, jax.random.key(11))
    ref = qsn.simulate(p, s, current, steps, key)
    ok, (ma, mb, se) = _within(out.spike_count, ref.spike_count)
    assert mb > 2.0 and ok, (name, ma, mb, se)


def _bloch(state):
    if isinstance(state, qsn.MixedState):
        return np.stack([_f64(state.x), _f64(state.y), _f64(state.z)])
    re0, im0, re1, im1 = (_f64(getattr(state, f)) for f in ("re0", "im0", "re1", "im1"))
    return np.stack([2 * (re0 * re1 + im0 * im1), 2 * (re0 * im1 - im0 * re1), re0**2 + im0**2 - re1**2 - im1**2])


def test_pure_t1_t2_unravelling_equals_the_jax_path_in_distribution():
    """Pure mode with T1/T2, sub-threshold (no resets): the ensemble Bloch vector of the native
    trajectories and of the JAX path's within 5 standard errors, and both near the mixed mode's
    Lindblad solution (float64 JAX)."""
    p, _, _, _ = _stochastic("t1-t2-pure")
    n, steps = 2000, 600
    s = qsn.init_state(p, n, bloch0=[1.0, 0.0, 0.0])  # coherent start: dephasing has something to decay
    out = _native(p, s, np.float32(10.0), steps, jax.random.key(5))
    ref = qsn.simulate(p, s, np.float32(10.0), steps, jax.random.key(6))
    assert out.spike_count.sum() == 0 and ref.spike_count.sum() == 0
    a, b = _bloch(out.state), _bloch(ref.state)
    ok, stats = _within(a, b)
    assert ok.all(), stats
    exact = qsn.simulate(p, qsn.init_state(p, 1, mode="mixed", dtype=jnp.float64, bloch0=[1.0, 0.0, 0.0]), 10.0, steps).state
    target = _bloch(exact)[:, 0]
    mean, sem = _mean_and_sem(a)
    assert np.all(np.abs(mean - target) <= 5 * sem + 1e-4), (mean, target, sem)
    np.testing.assert_allclose(np.sum(a**2, axis=0), 1.0, atol=1e-5)  # every trajectory stays pure


# ---------------------------------------------------------------------------------------------
# Options: precise, threads


def test_precise_agrees_with_the_jax_path_more_tightly_in_pure_mode():
    """Pure mode at large angles (delta 3-8 /ms: theta = w dt up to 0.8, past the small-angle series,
    where the fast build's polynomial sine and cosine and its 4-step Newton renormalisation differ
    most from libm and the JAX path). Zero input keeps V bit-identical on both backends (the membrane's
    rounding does not depend on contraction), so only the rotation is compared: the precise build's RMS
    distance to the JAX state is below 3/4 of the fast build's (measured: about 1/2), and both are
    within the stated per-step tolerance."""
    rng = np.random.default_rng(0)
    n, steps = 1000, 1000
    p = qsn.NeuronParams(delta=rng.uniform(3.0, 8.0, n).astype(np.float32))
    s = qsn.init_state(p, n, v0=rng.uniform(-70.0, -55.5, n).astype(np.float32))
    ref = qsn.simulate(p, s, np.float32(0.0), steps).state
    dist = {}
    for precise in (False, True):
        out = _native(p, s, np.float32(0.0), steps, precise=precise).state
        np.testing.assert_array_equal(np.asarray(out.v), np.asarray(ref.v))
        d = np.stack([_f64(getattr(out, f)) - _f64(getattr(ref, f)) for f in _qubit_fields(ref)])
        assert np.abs(d).max() <= 2.5 * _QUBIT_PER_STEP * steps, (precise, np.abs(d).max())
        dist[precise] = float(np.sqrt(np.mean(np.sum(d**2, axis=0))))
    assert dist[True] < 0.75 * dist[False], dist


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_precise_parity_with_the_jax_path(mode):
    """precise=True runs the same model: the harness's parity holds for it too."""
    p, s, current, steps = _per_neuron(mode, n=300, steps=1000, seed=3)
    ref = qsn.simulate(p, s, current, steps, record=("spikes",))
    out = _native(p, s, current, steps, record=("spikes",), precise=True)
    ties, _ = _ties(p, s, current, steps)
    assert_parity(f"{mode} precise", p, s, ref, out, ties)


def test_thread_counts_give_the_same_run():
    """threads=1, 2 and 3 (1000 neurons: 4 blocks, unevenly shared) give identical spikes, events and
    states, stochastic parts and Poisson input included: every draw is a function of (neuron, step)."""
    p, s, current, key = _stochastic("everything-pure")
    runs = [_native(p, s, current, 800, key, record=("spikes", "events"), threads=t) for t in (1, 2, 3)]
    assert runs[0].spike_count.sum() > 1000
    for other in runs[1:]:
        np.testing.assert_array_equal(other.spikes, runs[0].spikes)
        np.testing.assert_array_equal(other.events.step, runs[0].events.step)
        np.testing.assert_array_equal(other.events.neuron, runs[0].events.neuron)
        for field in runs[0].state._fields:
            np.testing.assert_array_equal(np.asarray(getattr(other.state, field)), np.asarray(getattr(runs[0].state, field)))


def test_default_threads_after_an_explicit_count():
    """threads=None means OpenMP's default (OMP_NUM_THREADS or every core) on every launch, also after
    a launch with threads=1: the OpenMP setting is per calling thread and outlives the launch."""
    name = ctypes.util.find_library("gomp")
    flags = NativeRunner.flags("population", population.kernel_defines("pure", "const", None), False)
    if name is None or "-fopenmp" not in flags:
        pytest.skip("the native build has no OpenMP here")
    gomp = ctypes.CDLL(name)
    env = os.environ.get("OMP_NUM_THREADS", "")
    first = env.split(",")[0].strip()
    expected = int(first) if first.isdigit() and int(first) > 0 else len(os.sched_getaffinity(0))
    p = qsn.NeuronParams()
    s = qsn.init_state(p, 300)
    _native(p, s, np.float32(20.0), 10, threads=1)
    assert gomp.omp_get_max_threads() == 1
    _native(p, s, np.float32(20.0), 10, threads=None)
    assert gomp.omp_get_max_threads() == expected


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "2"])
def test_bad_threads_is_refused_by_name(bad):
    p = qsn.NeuronParams()
    with pytest.raises(ConfigurationError, match=r"Option `threads` of backend='native' must be an int >= 1"):
        _native(p, qsn.init_state(p, 4), np.float32(1.0), 5, threads=bad)


def test_unknown_option_is_refused_by_name():
    p = qsn.NeuronParams()
    with pytest.raises(ConfigurationError, match=r"`fast` is not an option of backend='native' \(it takes 'precise', 'threads'\)"):
        _native(p, qsn.init_state(p, 4), np.float32(1.0), 5, fast=True)


# ---------------------------------------------------------------------------------------------
# What it refuses, and a machine without a compiler


def test_refusals_name_the_native_backend():
    """float64 states and currents given as functions of the step index: ConfigurationErrors that
    name backend='native' (not 'cupy'), through simulate and through the launcher."""
    p = qsn.NeuronParams()
    with pytest.raises(ConfigurationError, match=r"backend='native' runs float32 states, but the state is float64"):
        _native(p, qsn.init_state(p, 4, dtype=jnp.float64), 1.0, 5, record=("spikes",))
    s = qsn.init_state(p, 4)
    with pytest.raises(ConfigurationError, match=r"backend='native' takes a scalar, \(n,\) or \(T, n\) current, or a "
                                                 r"qsn.PoissonCurrent; a function of the step index runs only on backend='jax'"):
        _native(p, s, lambda t: jnp.ones(4, jnp.float32), 5, record=("spikes",))
    with pytest.raises(ConfigurationError, match=r"backend='native' runs float32 states"):
        population.run(NativeRunner(), p, qsn.init_state(p, 4, dtype=jnp.float64), 1.0, 5, spikes=True)


def test_without_a_compiler(monkeypatch, tmp_path):
    """$CXX names a compiler that does not exist and no library is cached: backend='native' raises
    BackendUnavailableError naming the compiler, and qsn.backends.status() reports it; with g++ back
    it is available again."""
    missing = str(tmp_path / "no-such-c++")
    monkeypatch.setenv("CXX", missing)
    monkeypatch.setenv("QSN_KERNEL_CACHE", str(tmp_path / "cache"))
    kernel_compile.host_library.cache_clear()  # libraries loaded by earlier tests
    p = qsn.NeuronParams()
    s = qsn.init_state(p, 8)
    try:
        with pytest.raises(BackendUnavailableError, match=r"needs a C\+\+ compiler") as err:
            qsn.simulate(p, s, 20.0, steps=10, backend="native", record=("spikes",))
        assert missing in str(err.value)
        status = qsn.backends.status()["native"]
        assert status.startswith("unavailable: ") and missing in status, status
        with pytest.raises(BackendUnavailableError, match=r"needs a C\+\+ compiler"):  # the library layer itself
            kernel_compile.host_library("population.cpp", population.kernel_defines("pure", "const", None), False,
                                        kernel_compile.NATIVE)
        assert not any((tmp_path / "cache").glob("*.so"))
    finally:
        monkeypatch.undo()
        kernel_compile.host_library.cache_clear()
    assert qsn.backends.status()["native"] == "available"
    assert _native(p, s, 20.0, 10).spike_count.shape == (8,)
