"""Neo export: spike trains and signals that Elephant reads, with its statistics equal to qsn's monitors'."""

import numpy as np
import pytest

neo = pytest.importorskip("neo", reason="Neo export needs neo: pip install 'qsn[interop]'")
es = pytest.importorskip("elephant.statistics", reason="the Neo tests compare with Elephant: pip install elephant")
pq = pytest.importorskip("quantities")
from qsn.interop import to_neo  # noqa: E402

# Elephant 1.2 passes quantities' deprecated copy= argument on every ISI: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:The 'copy' argument in Quantity is deprecated")


def test_neo_spike_trains_give_elephant_the_monitor_statistics(recorded_net):
    net = recorded_net
    block = to_neo(net)
    seg = block.segments[0]
    spikes = net["spikes"]
    trains = [st for st in seg.spiketrains if st.annotations["monitor"] == "spikes"]
    assert len(trains) == spikes.n == 40
    # Elephant's CV of the ISIs and mean rate against the monitor's own statistics and counts
    cv = [float(es.cv(es.isi(st))) for st in trains]
    np.testing.assert_allclose(cv, spikes.cv_isi(min_spikes=3), rtol=1e-12)
    rates = [float(es.mean_firing_rate(st).rescale(pq.Hz)) for st in trains]
    np.testing.assert_allclose(rates, spikes.count() / (net.t * 1e-3), rtol=1e-12)
    assert all(st.t_stop == net.t * pq.ms and st.units == pq.ms for st in trains)
    # a monitor of a view keeps the neurons' group indices
    some = [st for st in seg.spiketrains if st.annotations["monitor"] == "some"]
    assert [st.annotations["neuron"] for st in some] == list(range(10, 20))
    np.testing.assert_array_equal(some[3].magnitude, spikes.trains()[13])


def test_neo_signals_carry_state_units_and_model(recorded_net):
    net = recorded_net
    block = to_neo(net)
    sig = {s.name: s for s in block.segments[0].analogsignals}
    probe = net["probe"]
    v = sig["probe.v"]
    assert v.units == pq.mV and v.shape == probe.v.shape
    np.testing.assert_array_equal(v.magnitude, probe.v)
    np.testing.assert_allclose(v.times.rescale(pq.ms).magnitude, probe.t, rtol=1e-12)
    for var in ("p1", "coherence", "entropy", "exc"):
        assert sig[f"probe.{var}"].units == pq.dimensionless
        np.testing.assert_array_equal(sig[f"probe.{var}"].magnitude, getattr(probe, var))
    assert "bits" in sig["probe.entropy"].description
    np.testing.assert_array_equal(sig["rate"].magnitude[:, 0], net["rate"].rate)
    assert sig["rate"].units == pq.Hz
    assert block.annotations["model"]["groups"]["cells"]["params"]["t2"] == 40.0
    assert block.groups[0].name == "cells" and block.groups[0].annotations["params"]["delta"] == 0.2
    # a second trial appends a segment to the same block
    assert len(to_neo(net, block=block).segments) == 2
