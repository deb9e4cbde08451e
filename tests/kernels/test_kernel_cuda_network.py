"""``Network.run(backend="cupy")``: the CUDA network kernel (kernels/cuda/network.cu) on a GPU, against
the JAX path on the same GPU. Skipped without a CUDA device; the same source is tested on every
machine through its host emulation (tests/kernels/test_kernel_native_network.py, ``cuda-emulated``).

On the GPU, atomics add into a ring entry in the order threads reach it, so only sums that are exact
in any order (dyadic weights) give the JAX path's trains bit for bit; CUBA's are compared by rate."""

import jax
import numpy as np
import pytest

import qsn
from qsn.networks import Delta, Network, NeuronGroup, Projection, PscExp, CurrentInput, SpikeMonitor, fixed_probability, models, uniform

pytestmark = pytest.mark.gpu


def _dyadic():
    net = Network()
    p = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=20.0, t_ref=2.0, delta=0.0, dt=0.1)
    g = net.add(NeuronGroup(2000, p, receptors={"exc": PscExp(5.0), "inh": Delta()},
                            v0=lambda k: -60.0 + 10.0 * jax.random.uniform(k, (2000,)), name="g"))
    net.add(Projection(g[:1600], g, fixed_probability(0.05), weight=0.25, delay=uniform(0.0, 1.0), receptor="exc", name="e"))
    net.add(Projection(g[1600:], g, fixed_probability(0.05), weight=-0.5, delay=0.3, receptor="inh", name="i"))
    net.add(CurrentInput(g, 11.5))
    net.add(SpikeMonitor(g, name="spikes"))
    return net


def test_dyadic_network_equals_the_jax_path():
    a = _dyadic().build(jax.random.key(3)).run(200.0)
    b = _dyadic().build(jax.random.key(3)).run(200.0, backend="cupy")
    assert a["spikes"].step.size > 1000
    np.testing.assert_array_equal(a["spikes"].step, b["spikes"].step)
    np.testing.assert_array_equal(a["spikes"].i, b["spikes"].i)


def test_cuba_rates_agree_with_the_jax_path():
    a = models.cuba(n=4000).build(jax.random.key(3)).run(500.0)
    b = models.cuba(n=4000).build(jax.random.key(3)).run(500.0, backend="cupy")
    ra, rb = a["spikes"].step.size, b["spikes"].step.size
    assert ra > 1000 and abs(ra - rb) <= 0.1 * ra
