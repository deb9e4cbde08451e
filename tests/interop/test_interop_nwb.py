"""NWB export: written with pynwb, read back with pynwb, equal to the monitors."""

import json

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb", reason="NWB export needs pynwb: pip install 'qsn[interop]'")
from qsn.interop import to_nwb  # noqa: E402


def test_nwb_round_trip_units_timeseries_and_model(recorded_net, tmp_path):
    net = recorded_net
    path = to_nwb(net, tmp_path / "run.nwb", session_description="interop test")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        f = io.read()
        units = f.units.to_dataframe()
        spikes = units[units["monitor"] == "spikes"]
        assert list(spikes["neuron"]) == list(range(40))
        for row, train in zip(spikes.itertuples(), net["spikes"].trains()):
            np.testing.assert_allclose(row.spike_times, train * 1e-3, rtol=1e-15)  # seconds
            np.testing.assert_allclose(row.obs_intervals, [[0.0, net.t * 1e-3]])
        assert list(units[units["monitor"] == "some"]["neuron"]) == list(range(10, 20))
        v = f.acquisition["probe.v"]
        assert v.unit == "volts" and v.conversion == 1e-3
        np.testing.assert_array_equal(v.data[:], net["probe"].v)
        np.testing.assert_allclose(v.starting_time, net["probe"].t[0] * 1e-3)
        np.testing.assert_allclose(v.rate, 1e3 / (4 * net.dt))
        np.testing.assert_array_equal(f.acquisition["probe.p1"].data[:], net["probe"].p1)
        assert json.loads(f.acquisition["probe.v"].comments)["neuron"] == [0, 1, 2]
        np.testing.assert_array_equal(f.acquisition["rate"].data[:], net["rate"].rate)
        model = json.loads(f.notes)
        assert model["groups"]["cells"]["params"]["delta"] == 0.2 and model["dt"] == net.dt
        assert model["projections"]["projection0"]["synapses"] == net.synapse_count["projection0"]
        assert "cells (NeuronGroup, n = 40)" in f.experiment_description
