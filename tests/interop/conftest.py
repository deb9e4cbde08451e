"""One recorded network shared by the Neo and NWB export tests (built and run once per session)."""

import jax
import numpy as np
import pytest

import qsn
from qsn.networks import (CurrentInput, Network, NeuronGroup, PoissonInput, Projection, RateMonitor, SpikeMonitor,
                          StateMonitor, fixed_probability)


@pytest.fixture(scope="session")
def recorded_net():
    """40 quantum neurons with Poisson drive (irregular spiking), recurrent inhibition, 400 ms; monitors of spikes
    (all, and a view), state (v, p1, coherence, entropy, a receptor) and the population rate."""
    net = Network()
    p = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, t_ref=2.0, delta=0.2, t2=40.0)
    g = net.add(NeuronGroup(40, p, name="cells"))
    net.add(Projection(g, g, fixed_probability(0.2), weight=-1.0, delay=1.0, receptor="inh"))
    net.add(CurrentInput(g, 6.0), PoissonInput(g, "exc", rate=40.0, weight=1.5, n_inputs=50))
    net.add(SpikeMonitor(g, name="spikes"), SpikeMonitor(g[10:20], name="some"), RateMonitor(g, name="rate"),
            StateMonitor(g[:3], ("v", "p1", "coherence", "entropy", "exc"), record_every=4, name="probe"))
    net.build(jax.random.key(0)).run(400.0)
    assert np.asarray(net["spikes"].count()).min() >= 3  # every neuron has an ISI statistic
    return net
