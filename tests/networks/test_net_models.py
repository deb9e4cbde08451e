"""The reference models' forms (issue 18 item 6) and a group's initial receptor state (``syn0``).

The COBA benchmark itself is compared with Brian2 in test_net_brian2.py; here: what each model
builds, and that Brunel's named regimes warn where the network is too small to show them.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest

import qsn
from qsn.errors import ConfigurationError, QSNWarning
from qsn.networks import CondExp, Delta, Network, NeuronGroup, PscExp, models
from qsn.networks.inputs import CurrentInput


def _inputs(net: Network) -> list:
    return [inp for inp in net.inputs if isinstance(inp, CurrentInput)]


def test_coba_has_no_drive_and_brainpy_form_has_20_mv():
    assert _inputs(models.coba(400)) == []
    (drive,) = _inputs(models.coba_brainpy(400))
    assert drive.current == 20.0
    for net in (models.coba(400), models.coba_brainpy(400)):
        kin = net.groups["neurons"].receptors
        assert kin == {"exc": CondExp(5.0, 0.0), "inh": CondExp(10.0, -80.0)}


def test_coba_brainpy_starts_from_zero_conductances():
    net = models.coba_brainpy(400).build(jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(net.state.syn["neurons"]), 0.0)


def test_syn0_sets_each_receptor_and_leaves_the_rest_at_zero():
    g0 = np.linspace(-1.0, 3.0, 50)
    net = Network()
    net.add(NeuronGroup(50, qsn.NeuronParams(delta=0.0), receptors={"a": PscExp(5.0), "b": Delta(), "c": PscExp(2.0)},
                        syn0={"a": g0, "c": 2.5}, name="g"))
    net.build(jax.random.key(0))
    syn = np.asarray(net.state.syn["g"])
    np.testing.assert_allclose(syn[0], g0, rtol=1e-6)
    np.testing.assert_array_equal(syn[1], 0.0)
    np.testing.assert_array_equal(syn[2], 2.5)


def test_syn0_callables_draw_independently_per_receptor_and_key():
    def draw(key):
        return jax.random.normal(key, (2000,))

    def build(seed):
        net = Network()
        net.add(NeuronGroup(2000, qsn.NeuronParams(delta=0.0), syn0={"exc": draw, "inh": draw},
                            v0=lambda k: -60.0 + jax.random.uniform(k, (2000,)), name="g"))
        return net.build(jax.random.key(seed))

    a, b = build(0), build(1)
    e, i = np.asarray(a.state.syn["g"])
    assert abs(np.corrcoef(e, i)[0, 1]) < 0.1  # receptors get their own keys
    assert abs(np.corrcoef(e, np.asarray(a.state.neurons["g"].v))[0, 1]) < 0.1  # and not v0's
    assert not np.allclose(e, np.asarray(b.state.syn["g"])[0])  # another build key, another draw
    np.testing.assert_array_equal(e, np.asarray(build(0).state.syn["g"])[0])  # deterministic


@pytest.mark.parametrize("syn0, match", [
    ({"gaba": 1.0}, r"syn0 names receptor 'gaba', but the receptors are \['exc', 'inh'\]"),
    ({"exc": np.ones(3)}, r"syn0\['exc'\] must be a scalar or have shape \(10,\), but has shape \(3,\)"),
    ({"inh": np.array([1.0, np.nan] * 5)}, r"syn0\['inh'\] must be finite, but element 1 is nan"),
    ({"exc": "high"}, r"syn0\['exc'\] must be a number or an \(n,\) array, but is 'high'"),
    ([1.0, 2.0], r"syn0 must be a dict of receptor name -> initial value"),
])
def test_bad_syn0_is_named(syn0, match):
    with pytest.raises(ConfigurationError, match=match):
        NeuronGroup(10, qsn.NeuronParams(delta=0.0), syn0=syn0)


def test_a_syn0_callable_of_the_wrong_shape_fails_at_build():
    net = Network()
    net.add(NeuronGroup(10, qsn.NeuronParams(delta=0.0), syn0={"exc": lambda key: np.zeros(4)}, name="g"))
    with pytest.raises(ConfigurationError, match=r"NeuronGroup g: syn0\['exc'\] must be a scalar or have shape \(10,\)"):
        net.build(jax.random.key(0))


def test_brunel_warns_outside_the_regimes_size():
    with pytest.warns(QSNWarning, match=r"'AI' regime .* C_E = 1000 inputs, but C_E = 160"):
        models.brunel(2000)
    with pytest.warns(QSNWarning, match=r"'SR' regime .* sparse connectivity .* C_E / N_E = 0.31"):
        models.brunel(4000, g=3.0, eta=2.0, indegree=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models.brunel()  # 12,500 neurons, C_E = 1000: Brunel's own network
        models.brunel(10_000, indegree=1000)  # the usual benchmark size (C_E / N_E = 0.125)
        models.brunel(2000, g=4.0, eta=1.5)  # no named regime, nothing to warn about


def test_small_brunel_ai_is_regular_as_the_warning_says():
    """The warning's claim: at n = 2000 (C_E = 160) the 'AI' parameters give regular firing."""
    with pytest.warns(QSNWarning):
        net = models.brunel(2000).build(jax.random.key(0))
    net.run(300.0)
    cv = np.nanmean(net["spikes"].cv_isi())
    assert cv < 0.5, f"mean ISI CV {cv:.2f}: irregular after all, the warning would be wrong"
