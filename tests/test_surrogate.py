"""Surrogate gradients and differentiable runs (BPTT through ``qsn.simulate``).

References: SciPy quadrature for the densities' unit mass; central finite differences (float64) on the
smooth model, where the forward pass is the surrogate's primitive and every gradient is a true derivative;
the non-differentiable run (``surrogate=None``) for forward parity; XLA's compiled memory analysis for the
reverse-mode memory of checkpointed runs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
from hypothesis import given, settings
from hypothesis import strategies as st

import qsn
from qsn.errors import ConfigurationError, RecordingError
from qsn.surrogate import SURROGATES, Surrogate, arctan, fast_sigmoid, heaviside, sigmoid, triangle

N = 6
CURRENT = np.linspace(12.0, 24.0, N)  # from sub-threshold (15 mV gap) to ~2x threshold


@pytest.mark.parametrize("shape", SURROGATES)
@pytest.mark.parametrize("slope", [0.5, 4.0, 25.0])
def test_density_has_unit_mass_and_is_the_primitives_derivative(shape, slope):
    sg = Surrogate(shape, slope)
    mass, _ = scipy.integrate.quad(lambda x: float(sg.density(x)), -np.inf, np.inf, points=None, limit=200)
    assert mass == pytest.approx(1.0, abs=1e-6)
    x = jnp.linspace(-2.0, 2.0, 101)
    got = jax.vmap(jax.grad(sg.primitive))(x)
    np.testing.assert_allclose(got, sg.density(x), rtol=1e-10, atol=1e-12)
    assert float(sg.primitive(-50.0)) == pytest.approx(0.0, abs=0.02) and float(sg.primitive(50.0)) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("make", [fast_sigmoid, arctan, sigmoid, triangle])
@given(x=st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False))
@settings(max_examples=30, deadline=None)
def test_spike_is_exact_heaviside_with_surrogate_derivative(make, x):
    sg = make(3.0)
    assert float(sg(jnp.float64(x))) == (1.0 if x >= 0 else 0.0)
    assert float(jax.grad(sg)(jnp.float64(x))) == pytest.approx(float(sg.density(x)), rel=1e-12, abs=1e-15)
    assert float(jax.grad(heaviside, argnums=1)(sg, jnp.float64(x))) == pytest.approx(float(sg.density(x)), rel=1e-12, abs=1e-15)


def test_named_values_at_threshold():
    # g(0): k/2 (fast sigmoid, arctan), k/4 (sigmoid), k (triangle); triangle vanishes beyond 1/k
    assert float(fast_sigmoid(10.0).density(0.0)) == 5.0
    assert float(arctan(2.0).density(0.0)) == 1.0
    assert float(sigmoid(8.0).density(0.0)) == 2.0
    assert float(triangle(2.0).density(0.0)) == 2.0 and float(triangle(2.0).density(0.51)) == 0.0


def _run(params, state, surrogate, current=CURRENT, steps=300, key=None, checkpoint=None, record=("spikes", "p1", "coherence", "v")):
    return qsn.simulate(params, state, jnp.asarray(current, state.v.dtype), steps=steps, key=key, record=record,
                        surrogate=surrogate, checkpoint=checkpoint)


@pytest.mark.parametrize(
    "mode, extra",
    [("pure", {}), ("mixed", {"t2": 30.0, "t1": 40.0}), ("pure", {"jump_rate": 0.05}), ("mixed", {"jump_rate": 0.05, "t2": 30.0})],
)
def test_forward_pass_is_unchanged_by_a_surrogate(mode, extra):
    p = qsn.NeuronParams(delta=0.3, dt=0.5, **extra)
    s = qsn.init_state(p, N, mode=mode, dtype=jnp.float64)
    key = jax.random.key(3)
    plain = _run(p, s, None, key=key)
    diff = _run(p, s, fast_sigmoid(10.0, detach_reset=False), key=key)
    assert plain.spike_count.sum() > 10
    np.testing.assert_array_equal(np.asarray(diff.spikes, float), np.asarray(plain.spikes, float))
    np.testing.assert_array_equal(diff.spike_count, plain.spike_count)
    for name in ("v", "p1", "coherence"):
        np.testing.assert_array_equal(diff.records[name], plain.records[name])
    assert diff.spikes.dtype == jnp.float64 and plain.spikes.dtype == bool


def _smooth_loss(mode: str, extra: dict):
    """A loss of (delta, tau_m, w) on the smooth model: spikes, V, p1 and coherence all enter."""
    s0 = qsn.init_state(qsn.NeuronParams(), N, mode=mode, dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (N, N)))
    sg = sigmoid(4.0, smooth=True, detach_reset=False)

    def loss(delta, tau_m, w):
        p = qsn.NeuronParams(delta=delta, tau_m=tau_m, dt=0.5, **extra)
        r = _run(p, s0, sg, current=x @ w, steps=200)
        return (jnp.sum(r.spike_count) * 0.1 + jnp.mean(r.v) * 0.01 + jnp.sum(r.p1[-50:].mean(0))
                + jnp.sum(r.coherence.mean(0)))

    return loss


@pytest.mark.parametrize("mode, extra", [("pure", {}), ("mixed", {"t2": 30.0, "t1": 40.0})])
def test_gradients_of_the_smooth_model_equal_finite_differences(mode, extra):
    loss = _smooth_loss(mode, extra)
    args = (jnp.float64(0.3), jnp.float64(20.0), jnp.asarray(CURRENT / 6.0))
    grads = jax.grad(loss, argnums=(0, 1, 2))(*args)
    eps = 1e-6
    fd_delta = (loss(args[0] + eps, *args[1:]) - loss(args[0] - eps, *args[1:])) / (2 * eps)
    fd_tau = (loss(args[0], args[1] + eps, args[2]) - loss(args[0], args[1] - eps, args[2])) / (2 * eps)
    e = jnp.zeros(N).at[2].set(eps)
    fd_w2 = (loss(args[0], args[1], args[2] + e) - loss(args[0], args[1], args[2] - e)) / (2 * eps)
    for got, want in ((grads[0], fd_delta), (grads[1], fd_tau), (grads[2][2], fd_w2)):
        assert abs(float(want)) > 1e-4  # the check bites: each parameter moves the loss
        assert float(got) == pytest.approx(float(want), rel=1e-5)


@pytest.mark.parametrize("mode, extra", [("pure", {}), ("mixed", {"t2": 30.0}), ("pure", {"jump_rate": 0.2})])
def test_gradients_flow_to_delta_tau_and_weights_through_hard_spikes(mode, extra):
    s0 = qsn.init_state(qsn.NeuronParams(), N, mode=mode, dtype=jnp.float64)
    key = jax.random.key(1)

    def loss(delta, tau_m, w):
        p = qsn.NeuronParams(delta=delta, tau_m=tau_m, dt=0.5, **extra)
        r = _run(p, s0, fast_sigmoid(5.0), current=w, steps=120, key=key, record=("p1",))
        return jnp.sum(r.spike_count) + jnp.sum(r.p1.mean(0))

    g = jax.grad(loss, argnums=(0, 1, 2))(jnp.float64(0.3), jnp.float64(20.0), jnp.asarray(CURRENT))
    assert all(np.all(np.isfinite(x)) for x in g)
    assert abs(float(g[0])) > 1e-3 and abs(float(g[1])) > 1e-3 and np.all(np.abs(g[2]) > 1e-4)
    if extra.get("jump_rate"):
        # jump spikes carry the surrogate of p1 - u/p_jump: d(count)/d(delta) exists without threshold spikes
        def count_only(delta):
            p = qsn.NeuronParams(delta=delta, dt=0.5, **extra)
            return jnp.sum(_run(p, s0, fast_sigmoid(5.0), current=jnp.zeros(N) + 5.0, key=key, record=()).spike_count)

        assert float(count_only(0.3)) > 0 and abs(float(jax.grad(count_only)(0.3))) > 1e-3


def test_classical_limit_has_finite_gradients_through_the_qubit():
    """delta = 0 at rest gives w = sqrt(a^2 + delta^2) = 0 and |rho01| = 0: square roots whose derivative
    is infinite at 0. Gradients must stay finite, and pure and mixed modes (same physics here) agree."""
    grads = []
    for mode in ("pure", "mixed"):
        s0 = qsn.init_state(qsn.NeuronParams(), 3, mode=mode, dtype=jnp.float64)

        def loss(w, s0=s0):
            r = _run(qsn.NeuronParams(delta=0.0, dt=0.25, tau_m=10.0), s0, fast_sigmoid(), current=w, steps=40,
                     record=("p1", "coherence"))
            return jnp.sum(r.p1) + jnp.sum(r.spike_count) + jnp.sum(r.coherence)

        grads.append(jax.grad(loss)(jnp.array([0.0, 5.0, 20.0])))
        assert np.all(np.isfinite(grads[-1]))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-9)


def test_checkpointing_gives_the_same_gradient():
    s0 = qsn.init_state(qsn.NeuronParams(), N, dtype=jnp.float64)

    def loss(w, checkpoint):
        r = _run(qsn.NeuronParams(delta=0.3, dt=0.5), s0, fast_sigmoid(5.0), current=w, steps=203,
                 checkpoint=checkpoint, record=("spikes", "p1"))
        return jnp.sum(r.spike_count) + jnp.sum(r.p1) + jnp.sum(r.spikes[::7])

    w = jnp.asarray(CURRENT)
    want = jax.grad(loss)(w, None)
    for checkpoint in (True, 500):  # sqrt segments with a ragged tail; one segment longer than the run
        np.testing.assert_allclose(jax.grad(loss)(w, checkpoint), want, rtol=1e-12, atol=1e-12)


def _reverse_memory(steps: int, checkpoint) -> int:
    s0 = qsn.init_state(qsn.NeuronParams(), 64)

    def loss(delta):
        r = qsn.simulate(qsn.NeuronParams(delta=delta, dt=0.5), s0, jnp.linspace(10.0, 25.0, 64, dtype=jnp.float32),
                         steps=steps, surrogate=fast_sigmoid(), checkpoint=checkpoint)
        return jnp.sum(r.spike_count) + jnp.sum(r.state.re1 * r.state.re1)

    compiled = jax.jit(jax.grad(loss)).lower(jnp.float32(0.3)).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        pytest.skip("this XLA backend reports no memory analysis")
    return analysis.temp_size_in_bytes


def test_checkpointing_makes_reverse_mode_memory_sublinear_in_steps():
    plain = [_reverse_memory(t, None) for t in (256, 1024, 4096)]
    remat = [_reverse_memory(t, True) for t in (256, 1024, 4096)]
    # plain BPTT stores every step: 4x the steps, ~4x the memory; sqrt(T) segments: ~2x
    assert plain[1] / plain[0] > 3.5 and plain[2] / plain[1] > 3.5
    assert remat[1] / remat[0] < 2.5 and remat[2] / remat[1] < 2.5
    assert remat[2] * 10 < plain[2]


def test_step_accepts_a_surrogate_and_returns_float_spikes():
    p = qsn.NeuronParams(dt=0.5)
    s = qsn.init_state(p, 2, dtype=jnp.float64)
    s = s._replace(v=jnp.array([-55.1, -70.0]))

    def spiked(i):
        return qsn.step(p, s, i, surrogate=fast_sigmoid(10.0))[1]

    out = spiked(jnp.array([20.0, 20.0]))
    assert out.dtype == jnp.float64 and out.tolist() == [1.0, 0.0]
    jac = jax.jacobian(lambda i: spiked(i))(jnp.array([20.0, 20.0]))
    assert jac[0, 0] > 0 and jac[0, 1] == 0 and jac[1, 0] == 0


def test_refractory_neurons_neither_spike_nor_pass_gradients():
    p = qsn.NeuronParams(dt=0.5, t_ref=2.0)
    s = qsn.init_state(p, 1, dtype=jnp.float64)._replace(refractory=jnp.array([3], jnp.int32))
    g = jax.grad(lambda i: qsn.step(p, s, i, surrogate=fast_sigmoid(10.0))[1].sum())(jnp.array([1e3]))
    assert float(g[0]) == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [({"shape": "relu"}, "shape"), ({"slope": 0.0}, "slope"), ({"slope": math.inf}, "slope"), ({"slope": "5"}, "slope")],
)
def test_surrogate_validation(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        Surrogate(**kwargs)


def test_recording_budget_counts_float_spikes():
    """With a surrogate the spike raster is floats (itemsize bytes per entry, not 1): the memory check
    before the run must count them."""
    p = qsn.NeuronParams()
    s = qsn.init_state(p, 100)  # float32
    budget = 20_000  # 100 steps x 100 neurons: 10,000 bytes as bool, 40,000 as float32
    qsn.simulate(p, s, 20.0, steps=100, record=("spikes",), max_record_bytes=budget)
    with pytest.raises(RecordingError, match="spikes"):
        qsn.simulate(p, s, 20.0, steps=100, record=("spikes",), max_record_bytes=budget, surrogate=fast_sigmoid())


def test_simulate_rejects_bad_surrogate_and_checkpoint():
    p = qsn.NeuronParams()
    s = qsn.init_state(p, 2)
    with pytest.raises(ConfigurationError, match="surrogate"):
        qsn.simulate(p, s, 20.0, steps=3, surrogate="fast_sigmoid")
    with pytest.raises(ConfigurationError, match="checkpoint"):
        qsn.simulate(p, s, 20.0, steps=3, checkpoint=0)
    with pytest.raises(ConfigurationError, match="backend='jax'"):
        qsn.simulate(p, s, 20.0, steps=3, surrogate=fast_sigmoid(), backend="cupy")
    with pytest.raises(ConfigurationError, match="surrogate"):
        qsn.step(p, s, 20.0, surrogate=1.0)
    with pytest.raises(ConfigurationError, match="float"):
        fast_sigmoid()(jnp.arange(3))
