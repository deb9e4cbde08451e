"""Network.rollout: the pure, differentiable form of Network.run.

Checked against Network.run (same spikes and state), against central finite differences on the smooth
surrogate model (float64), and for gradient flow through dense and event projections.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsn
from qsn.errors import ConfigurationError
from qsn.networks import CurrentInput, Network, NeuronGroup, PscExp, Projection, SpikeMonitor, StateMonitor, fixed_probability
from qsn.surrogate import fast_sigmoid, sigmoid


def small_net(propagation: str, *, delta: float = 0.3, mode: str = "pure") -> Network:
    net = Network(dtype=jnp.float64)
    p = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, t_ref=2.0, delta=delta, dt=0.5)
    g = net.add(NeuronGroup(40, p, mode, receptors={"exc": PscExp(5.0)}, name="cells"))
    net.add(Projection(g, g, fixed_probability(0.2), weight=1.5, delay=1.0, receptor="exc", propagation=propagation,
                       name="rec"))
    net.add(CurrentInput(g, jnp.linspace(8.0, 14.0, 40)))
    net.add(SpikeMonitor(g, name="spikes"))
    net.add(StateMonitor(g[:4], ("v", "p1"), name="probe"))
    net.build(jax.random.key(0))
    return net


@pytest.mark.parametrize("propagation", ["dense", "event"])
def test_rollout_equals_run_and_leaves_the_network_untouched(propagation):
    net = small_net(propagation)
    net.run(1.0)  # sizes the event capacity
    start = net.state
    state, rec = net.rollout(200, surrogate=fast_sigmoid(10.0))
    assert int(net.state.t) == int(start.t)  # nothing kept
    net.run(100.0)  # 200 steps of 0.5 ms
    mon, t0 = net.monitors["spikes"], int(start.t)
    raster = np.zeros((200, 40), bool)
    later = mon.step >= t0
    raster[mon.step[later] - t0, mon.i[later]] = True
    np.testing.assert_array_equal(np.asarray(rec["spikes"]) == 1.0, raster)
    np.testing.assert_array_equal(state.count["cells"], net.state.count["cells"])
    np.testing.assert_allclose(state.neurons["cells"].v, net.state.neurons["cells"].v, rtol=0, atol=0)
    np.testing.assert_allclose(rec["probe"]["p1"][-1], np.asarray(net.monitors["probe"].p1)[-1], rtol=1e-12)
    assert int(np.sum(np.asarray(rec["spikes"]))) > 20


@pytest.mark.parametrize("propagation", ["dense", "event"])
def test_gradients_reach_recurrent_weights(propagation):
    net = small_net(propagation)
    net.run(1.0)
    s0 = net.state

    def loss(w):
        st = s0._replace(weights={**s0.weights, "rec": w})
        _, rec = net.rollout(150, state=st, surrogate=fast_sigmoid(5.0))
        return jnp.sum(rec["spikes"]) + jnp.sum(rec["probe"]["p1"])

    g = jax.grad(loss)(s0.weights["rec"])
    assert np.all(np.isfinite(g)) and float(jnp.abs(g).max()) > 0


def test_rollout_gradient_equals_finite_differences_on_the_smooth_model():
    net = small_net("dense")
    s0 = net.state
    sg = sigmoid(4.0, smooth=True, detach_reset=False)

    def loss(scale):
        st = s0._replace(weights={**s0.weights, "rec": s0.weights["rec"] * scale})
        _, rec = net.rollout(120, state=st, surrogate=sg)
        return jnp.sum(rec["spikes"]) + jnp.sum(rec["probe"]["v"]) * 1e-3 + jnp.sum(rec["probe"]["p1"])

    eps = 1e-6
    fd = (loss(1.0 + eps) - loss(1.0 - eps)) / (2 * eps)
    assert abs(float(fd)) > 1e-3
    assert float(jax.grad(loss)(1.0)) == pytest.approx(float(fd), rel=1e-5)
    g_ck = jax.grad(lambda s: net.rollout(120, state=s0._replace(weights={**s0.weights, "rec": s0.weights["rec"] * s}),
                                          surrogate=sg, checkpoint=True)[1]["spikes"].sum())(1.0)
    g_plain = jax.grad(lambda s: net.rollout(120, state=s0._replace(weights={**s0.weights, "rec": s0.weights["rec"] * s}),
                                             surrogate=sg)[1]["spikes"].sum())(1.0)
    assert float(g_ck) == pytest.approx(float(g_plain), rel=1e-12)


def test_rollout_errors():
    net = Network()
    with pytest.raises(ConfigurationError, match="build"):
        net.rollout(10)
    net = small_net("dense")
    with pytest.raises(ConfigurationError, match="steps"):
        net.rollout(0)
    with pytest.raises(ConfigurationError, match="surrogate"):
        net.rollout(5, surrogate="fast")
