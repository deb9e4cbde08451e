"""Every error path of ``qsn.networks``: the exception type and a message naming the field and value.

Grouped by where the error is raised: constructors (rules, distributions, groups, kinetics, STDP,
projections, inputs, monitors), ``Network.add``/``build``/``run``/``restore``/``load``, and the run
itself (non-finite state). All errors are ``qsn.errors`` types, which subclass ``ValueError`` /
``RuntimeError``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsn
from qsn.errors import ConfigurationError, InvalidInputError, InvalidStateError, NumericalInstabilityError
from qsn.networks import (
    STDP,
    CondExp,
    CurrentInput,
    Delta,
    Network,
    NeuronGroup,
    PoissonGroup,
    PoissonInput,
    Projection,
    PscExp,
    RateMonitor,
    SpikeMonitor,
    SpikeSourceArray,
    StateMonitor,
    all_to_all,
    explicit,
    fixed_indegree,
    fixed_probability,
    fixed_total_number,
    lognormal,
    models,
    normal,
    one_to_one,
    step_current,
    uniform,
)


P = qsn.NeuronParams(delta=0.0)


def _group(n: int = 4, name: str = "g", **kwargs) -> NeuronGroup:
    return NeuronGroup(n, P, receptors={"exc": Delta()}, name=name, **kwargs)


def _raises(match: str, fn, *args, error=ConfigurationError, **kwargs):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


# ------------------------------------------------------------------------------------ rules, distributions


@pytest.mark.parametrize(
    "fn, args, match",
    [
        (fixed_probability, (1.5,), r"fixed_probability: p must be in \[0, 1\], but is 1\.5"),
        (fixed_probability, (-0.1,), r"fixed_probability: p must be in \[0, 1\], but is -0\.1"),
        (fixed_probability, (math.nan,), r"fixed_probability: p must be in \[0, 1\], but is nan"),
        (fixed_indegree, (-1,), r"fixed_indegree: k must be an int >= 0, but is -1"),
        (fixed_indegree, (2.5,), r"fixed_indegree: k must be an int >= 0, but is 2\.5"),
        (fixed_indegree, (True,), r"fixed_indegree: k must be an int >= 0, but is True"),
        (fixed_total_number, (-3,), r"fixed_total_number: m must be an int >= 0, but is -3"),
        (explicit, ([[0, 1]], [0, 1]), r"explicit: `pre` must be a 1-D integer array, but has shape \(1, 2\)"),
        (explicit, ([0, 1], [0.5, 1.0]), r"explicit: `post` must be a 1-D integer array.*dtype float64"),
        (explicit, ([0, 1], [0]), r"explicit: `pre` and `post` must have the same length, but have 2 and 1"),
        (normal, (math.nan, 1.0), r"normal: mean must be finite, but is nan"),
        (normal, (0.0, -1.0), r"normal: std must be >= 0, but is -1\.0"),
        (lognormal, (0.0, math.inf), r"lognormal: sigma must be finite, but is inf"),
        (lognormal, (0.0, -0.5), r"lognormal: sigma must be >= 0, but is -0\.5"),
        (uniform, (1.0, 0.0), r"uniform: high must be >= low, but got low=1\.0, high=0\.0"),
        (uniform, (0.0, math.inf), r"uniform: high must be finite, but is inf"),
    ],
)
def test_rule_and_distribution_arguments(fn, args, match):
    _raises(match, fn, *args)


# ------------------------------------------------------------------------------------ groups, kinetics, STDP


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: NeuronGroup(0, P), r"NeuronGroup: n must be an int >= 1, but is 0"),
        (lambda: NeuronGroup(2.0, P), r"NeuronGroup: n must be an int >= 1, but is 2\.0"),
        (lambda: NeuronGroup(3, "params"), r"NeuronGroup: params must be qsn\.NeuronParams, but is str"),
        (lambda: NeuronGroup(3, P, "quantum"), r"NeuronGroup: mode must be 'pure' or 'mixed', but is 'quantum'"),
        (lambda: NeuronGroup(3, P, receptors={"1x": Delta()}), r"receptor names must be identifiers, but got '1x'"),
        (
            lambda: NeuronGroup(3, P, receptors={"exc": "delta"}),
            r"NeuronGroup receptor 'exc' must be qsn\.networks\.Delta\(\)",
        ),
        (
            lambda: NeuronGroup(4, qsn.NeuronParams(v_th=np.full(3, -50.0))),
            r"NeuronParams\.v_th must be a scalar or broadcastable to \(n,\) = \(4,\), but has shape \(3,\)",
        ),
        (lambda: PoissonGroup(0, 1.0), r"PoissonGroup: n must be an int >= 1, but is 0"),
        (
            lambda: PoissonGroup(3, [1.0, 2.0]),
            r"PoissonGroup: rates must be finite, >= 0 and scalar or \(3,\), got shape \(2,\)",
        ),
        (lambda: PoissonGroup(3, -1.0), r"PoissonGroup: rates must be finite, >= 0"),
        (lambda: PoissonGroup(3, math.nan), r"PoissonGroup: rates must be finite"),
        (
            lambda: SpikeSourceArray(3, [0, 1], [1.0]),
            r"SpikeSourceArray: indices and times must be 1-D of equal length, got \(2,\) and \(1,\)",
        ),
        (lambda: SpikeSourceArray(3, [0, 3], [1.0, 2.0]), r"SpikeSourceArray: indices must be integers in \[0, 3\)"),
        (
            lambda: SpikeSourceArray(3, [0.0, 1.0], [1.0, 2.0]),
            r"SpikeSourceArray: indices must be integers in \[0, 3\)",
        ),
        (
            lambda: SpikeSourceArray(3, [0, 1], [1.0, -1.0]),
            r"SpikeSourceArray: times\[1\] = (np\.float64\()?-1\.0\)? must be finite and >= 0 ms",
        ),
        (
            lambda: SpikeSourceArray(3, [0, 1], [math.inf, 1.0]),
            r"SpikeSourceArray: times\[0\] = (np\.float64\()?inf\)? must be finite",
        ),
        (lambda: _group(4)[5:5], r"Slice slice\(5, 5, None\) of group g selects no neuron"),
        (lambda: PscExp(0.0), r"PscExp\.tau must be finite and > 0, but is 0\.0"),
        (lambda: CondExp(tau=-1.0), r"CondExp\.tau must be finite and > 0, but is -1\.0"),
        (lambda: CondExp(5.0, e_rev=math.inf), r"CondExp\.e_rev must be finite, but is inf"),
        (lambda: STDP(tau_plus=0.0), r"STDP\.tau_plus must be finite and > 0, but is 0\.0"),
        (lambda: STDP(tau_minus=math.nan), r"STDP\.tau_minus must be finite and > 0, but is nan"),
        (lambda: STDP(a_minus=-0.1), r"STDP\.a_minus must be finite and >= 0, but is -0\.1"),
        (lambda: STDP(w_min=1.0, w_max=0.5), r"STDP needs finite w_min <= w_max, but has w_min=1\.0, w_max=0\.5"),
        (lambda: STDP(bounds="soft"), r"STDP\.bounds must be 'additive' or 'multiplicative', but is 'soft'"),
        (
            lambda: step_current([0.0, 1.0], [1.0], 0.1, 10),
            r"step_current: times and amplitudes must be 1-D of equal length",
        ),
        (lambda: step_current([1.0, 0.5], [1.0, 2.0], 0.1, 10), r"step_current: times must be non-decreasing"),
        (lambda: models.brunel(4), r"brunel: n must be >= 5, but is 4"),
    ],
)
def test_group_kinetics_and_stdp_arguments(make, match):
    _raises(match, make)


# ------------------------------------------------------------------------------------ projections, inputs, monitors


def test_projection_arguments():
    g, src = _group(4), PoissonGroup(3, 1.0, name="src")
    _raises(
        r"Projection pre must be a group or a view of one \(group\[a:b\]\), but is str",
        Projection,
        "abc",
        g,
        all_to_all(),
    )
    _raises(
        r"Projection post must be a NeuronGroup \(or a view of one\), but is PoissonGroup\(src",
        Projection,
        g,
        src,
        all_to_all(),
    )
    _raises(
        r"Projection receptor 'gaba' is not a receptor of NeuronGroup\(g.*; it has \['exc'\]",
        Projection,
        src,
        g,
        all_to_all(),
        receptor="gaba",
    )
    _raises(
        r"Projection rule must be a connectivity rule such as fixed_probability\(0\.1\), but is 0\.1",
        Projection,
        src,
        g,
        0.1,
    )
    _raises(
        r"Projection propagation must be 'auto', 'event' or 'dense', but is 'sparse'",
        Projection,
        src,
        g,
        all_to_all(),
        propagation="sparse",
    )
    _raises(
        r"Projection plasticity must be an STDP or None, but is 'stdp'",
        Projection,
        src,
        g,
        all_to_all(),
        plasticity="stdp",
    )
    _raises(
        r"plastic synapses use the event path; use propagation='event' or 'auto'",
        Projection,
        src,
        g,
        all_to_all(),
        plasticity=STDP(),
        propagation="dense",
    )
    for block in (0, 2.5):
        _raises(
            rf"Projection event_block must be an int >= 1, but is {block}",
            Projection,
            src,
            g,
            all_to_all(),
            event_block=block,
        )


def test_input_and_monitor_arguments():
    g, src = _group(4), PoissonGroup(3, 1.0, name="src")
    _raises(
        r"CurrentInput target must be a NeuronGroup or a view of one, but is PoissonGroup\(src", CurrentInput, src, 1.0
    )
    _raises(r"CurrentInput target must be a group or a view of one.*but is int", CurrentInput, 5, 1.0)
    _raises(r"PoissonInput receptor 'inh' is not a receptor of NeuronGroup\(g", PoissonInput, g, "inh", 10.0, 1.0)
    _raises(r"PoissonInput rate must be finite, but is nan", PoissonInput, g, "exc", math.nan, 1.0)
    _raises(r"PoissonInput weight must be finite, but is inf", PoissonInput, g, "exc", 10.0, math.inf)
    _raises(r"PoissonInput rate must be >= 0 Hz, but is -1\.0", PoissonInput, g, "exc", -1.0, 1.0)
    for n_inputs in (-1, 1.5, True):
        _raises(
            rf"PoissonInput n_inputs must be an int >= 0, but is {n_inputs}",
            PoissonInput,
            g,
            "exc",
            10.0,
            1.0,
            n_inputs,
        )
    _raises(r"SpikeMonitor capacity must be an int >= 0, but is -1", SpikeMonitor, g, capacity=-1)
    _raises(r"SpikeMonitor target must be a group or a view of one.*but is str", SpikeMonitor, "g")
    _raises(r"RateMonitor target must be a group or a view of one.*but is NoneType", RateMonitor, None)
    _raises(r"StateMonitor target must be a NeuronGroup \(or a view\), but is PoissonGroup\(src", StateMonitor, src)
    _raises(
        r"StateMonitor variable 'w' is not one of \('v', .*'p1', 'coherence', 'entropy', 'exc'\)",
        StateMonitor,
        g,
        ("v", "w"),
    )
    _raises(r"StateMonitor variable 'rho' is not one of", StateMonitor, g, "rho")
    _raises(r"StateMonitor record_every must be an int >= 1, but is 0", StateMonitor, g, "v", record_every=0)


# ------------------------------------------------------------------------------------ Network: add, build, run


def test_network_add_and_lifecycle_errors():
    net = Network(dtype=np.float64)
    g = net.add(_group(4))
    _raises(r"Network\.add takes groups, projections, inputs and monitors, not object", net.add, object())
    _raises(r"Network already has a group named 'g'", net.add, _group(4))
    _raises(r"Network is not built yet: call net\.build", net.run, 1.0)
    _raises(r"Network is not built yet", lambda: net.state)
    _raises(r"Network is not built yet", net.restore, None)
    with pytest.raises(KeyError, match="nope"):
        net["nope"]
    net.build(jax.random.key(0))
    _raises(r"Network is already built: add everything before build\(\)", net.add, SpikeMonitor(g))
    _raises(r"Network\.build\(\) was already called; make a new Network to rebuild", net.build, jax.random.key(0))
    _raises(r"Network\.run: duration_ms must be finite and >= 0, but is -1\.0", net.run, -1.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_run_rejects_non_finite_duration(bad):
    net = _small(4)
    _raises(rf"Network\.run: duration_ms must be finite and >= 0, but is {bad}", net.run, bad)


@pytest.mark.parametrize("what", ["projection", "input", "monitor"])
def test_build_refuses_members_not_added(what):
    net = Network(dtype=np.float64)
    g = net.add(_group(4))
    stray = _group(4, name="stray")
    obj = {
        "projection": lambda: Projection(stray, g, all_to_all(), name="p"),
        "input": lambda: CurrentInput(stray, 1.0),
        "monitor": lambda: SpikeMonitor(stray, name="m"),
    }[what]()
    net.add(obj)
    owner = {"projection": "Projection p", "input": "CurrentInput", "monitor": "Monitor m"}[what]
    _raises(rf"{owner} refers to NeuronGroup\(stray.*which was not added to the network", net.build, jax.random.key(0))


def test_inconsistent_dt():
    net = Network(dtype=np.float64)
    net.add(
        NeuronGroup(2, qsn.NeuronParams(delta=0.0, dt=0.1), name="a"),
        NeuronGroup(2, qsn.NeuronParams(delta=0.0, dt=0.05), name="b"),
    )
    _raises(
        r"All neuron groups \(and Network\(dt=\.\.\.\)\) must share one dt, but found \[0\.05, 0\.1\] ms",
        net.build,
        jax.random.key(0),
    )
    net = Network(dt=0.2, dtype=np.float64)
    net.add(_group(2))
    _raises(r"must share one dt, but found \[0\.1, 0\.2\] ms", lambda: net.dt)


def test_sources_checked_at_build():
    net = Network(dt=0.1, dtype=np.float64)
    net.add(PoissonGroup(3, [10.0, 20_000.0, 5.0], name="src"))
    _raises(r"PoissonGroup src: rate \* dt exceeds 1 spike per step", net.build, jax.random.key(0))
    net = Network(dt=0.1, dtype=np.float64)
    net.add(SpikeSourceArray(3, [2, 0, 0], [0.3, 1.0, 1.04], name="ssa"))  # 1.0 and 1.04 ms: both step 10
    _raises(r"SpikeSourceArray: neuron 0 spikes twice in step 10 \(dt = 0\.1 ms\)", net.build, jax.random.key(0))


def _connect(rule, n_pre=4, n_post=4, *, same=False, weight=1.0, delay=0.0, **kwargs):
    net = Network(dtype=np.float64)
    post = net.add(_group(n_post, "post"))
    pre = post if same else net.add(PoissonGroup(n_pre, 0.0, name="pre"))
    net.add(Projection(pre, post, rule, weight=weight, delay=delay, name="p", **kwargs))
    net.build(jax.random.key(0))


@pytest.mark.parametrize(
    "rule, kwargs, match",
    [
        (one_to_one(), dict(n_pre=3), r"one_to_one needs groups of equal size, but they have 3 and 4 neurons"),
        (
            fixed_indegree(5),
            dict(allow_multapses=False),
            r"fixed_indegree\(5\) cannot draw 5 distinct partners from 4 candidates",
        ),
        (
            fixed_indegree(1),
            dict(n_post=1, same=True, allow_autapses=False),
            r"fixed_indegree\(1\) cannot draw 1 partners from 0 candidates",
        ),
        (fixed_total_number(3), dict(allow_multapses=False), r"fixed_total_number supports allow_multapses=True only"),
        (explicit([0, 1], [0, 7]), {}, r"explicit: `post\[1\]` = 7 is outside a group of 4 neurons"),
        (explicit([0, -1], [0, 1]), {}, r"explicit: `pre\[1\]` = -1 is outside a group of 4 neurons"),
        (
            explicit([0, 2], [1, 2]),
            dict(same=True, allow_autapses=False),
            r"explicit: synapse 1 is an autapse \(2 -> 2\) but allow_autapses=False",
        ),
        (
            explicit([1, 0, 1], [2, 0, 2]),
            dict(allow_multapses=False),
            r"explicit: pair \(1 -> 2\) repeats but allow_multapses=False",
        ),
        (
            explicit([0, 1, 2], [0, 1, 2]),
            dict(weight=[1.0, 2.0]),
            r"Projection p weight as an array must have one value per synapse, shape \(3,\), but has shape \(2,\)",
        ),
        (
            explicit([0, 1, 2], [0, 1, 2]),
            dict(delay=np.ones((3, 1))),
            r"Projection p delay as an array must have one value per synapse, shape \(3,\), but has shape \(3, 1\)",
        ),
        (
            explicit([0, 1, 2], [0, 1, 2]),
            dict(weight=[1.0, math.inf, 2.0]),
            r"Projection p weight\[1\] must be finite, but is (np\.float64\()?inf",
        ),
        (all_to_all(), dict(weight=math.nan), r"Projection p weight must be finite, but is nan"),
        (fixed_indegree(2), dict(weight=np.ones(8)), r"Projection p weight as an array needs explicit connectivity"),
        (
            explicit([0, 1, 2], [0, 1, 2]),
            dict(delay=[0.5, -0.5, 1.0]),
            r"Projection p: delays must be >= 0 ms, but one is -0\.5 ms",
        ),
        (all_to_all(), dict(delay=uniform(-2.0, -1.0)), r"Projection p: delays must be >= 0 ms, but one is -1\.\d+ ms"),
    ],
)
def test_connection_errors_at_build(rule, kwargs, match):
    _raises(match, _connect, rule, **kwargs)


def test_current_input_errors():
    # a (T, n) current must cover the whole run (row = absolute step index)
    net = Network(dtype=np.float64)
    g = net.add(_group(4))
    net.add(CurrentInput(g, np.ones((10, 4))))
    net.build(jax.random.key(0)).run(1.0)  # exactly 10 steps: fine
    _raises(r"Network\.run: a \(T, n\) CurrentInput has 10 rows, but the run reaches step 11", net.run, 0.1)
    for current, match in (
        (np.ones((5, 3)), r"Argument `current` must be a scalar, shape \(n,\) = \(4,\) or \(T, n\)"),
        (np.array([1.0, math.nan, 0.0, 0.0]), r"Argument `current` must be finite, but is nan at neuron 1"),
    ):
        net = Network(dtype=np.float64)
        g = net.add(_group(4))
        net.add(CurrentInput(g, current))
        _raises(match, net.build, jax.random.key(0), error=InvalidInputError)


# ------------------------------------------------------------------------------------ restore, load


def _small(n: int = 4, dtype=np.float64) -> Network:
    net = Network(dtype=dtype)
    g = net.add(_group(n))
    net.add(CurrentInput(g, 1.0))
    return net.build(jax.random.key(0))


def test_restore_and_load_reject_foreign_states(tmp_path):
    net = _small(4)
    other = _small(5)
    _raises(
        r"Network\.restore: the state does not match this network's groups, projections and dtype",
        net.restore,
        other.state,
        error=InvalidStateError,
    )
    _raises(
        r"Network\.restore: the state does not match", net.restore, _small(4, np.float32).state, error=InvalidStateError
    )
    _raises(r"Network\.restore: the state does not match", net.restore, {"t": 0}, error=InvalidStateError)
    # a file from a network with an extra projection (more arrays)
    bigger = Network(dtype=np.float64)
    g = bigger.add(_group(4))
    bigger.add(Projection(g, g, one_to_one(), name="p"))
    bigger.build(jax.random.key(0)).save(str(tmp_path / "b.npz"))
    _raises(
        r"Network\.load: .*b\.npz holds \d+ arrays, this network's state has \d+",
        net.load,
        str(tmp_path / "b.npz"),
        error=InvalidStateError,
    )
    before = net.state
    _raises(r"Network\.restore", net.load, str(_save(other, tmp_path / "o.npz")), error=InvalidStateError)
    assert net.state is before  # a refused state leaves the network as it was


def _save(net: Network, path) -> str:
    net.save(str(path))
    return str(path)


# ------------------------------------------------------------------------------------ run-time failures


def test_non_finite_state_names_the_group_and_neuron():
    # V -> -inf (no spike resets it) on neuron 2 of group 'cortex' from step 5 on
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(4, P, receptors={"exc": PscExp(5.0)}, name="cortex"))
    net.add(CurrentInput(g, lambda t: jnp.where((jnp.arange(4) == 2) & (t >= 5), -jnp.inf, 0.0)))
    net.build(jax.random.key(0))
    with pytest.raises(
        NumericalInstabilityError, match=r"Group 'cortex': state field `v` became non-finite at neuron 2 by step 10"
    ):
        net.run(1.0)
    assert int(net.state.t) == 0  # the failed chunk was not committed


def test_non_finite_receptor_names_the_group():
    # two 1e308 inputs in one step overflow the PscExp current of neuron 1; the spike it causes resets
    # V and the qubit, so only the receptor variable stays non-finite
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(3, P, receptors={"exc": PscExp(5.0)}, name="cortex"))
    src = net.add(SpikeSourceArray(2, [0, 1], [0.2, 0.2], name="src"))
    net.add(Projection(src, g, explicit([0, 1], [1, 1]), weight=[1e308, 1e308], name="p"))
    net.build(jax.random.key(0))
    with pytest.raises(NumericalInstabilityError, match=r"Group 'cortex': `receptors` became non-finite at neuron 1"):
        net.run(1.0)


# ------------------------------------------------------------------------------------ keys, bad values, delays, conductances


@pytest.mark.parametrize("key, match", [(0, r"but is 0"), (None, r"is required: pass key=jax\.random\.key\(0\)"),
                                        (np.zeros(3), r"but is an array of dtype float64 and shape \(3,\)")])
def test_build_key_checked(key, match):
    # build(0) used to end in JAX's raw "TypeError: JAX encountered invalid PRNG key data"
    net = Network(dtype=np.float64)
    net.add(_group(4))
    _raises(rf"Argument `key` .*{match}", net.build, key)
    assert not net._built


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: NeuronGroup(3, {"delta": 0.3}), r"NeuronGroup: params must be qsn\.NeuronParams, but is dict; build one with qsn\.NeuronParams\(\*\*params\)"),
        (lambda: NeuronGroup(3, P, receptors=["exc"]), r"NeuronGroup: receptors must be a dict of name -> kinetics"),
        (lambda: _group(4)[7], r"Index 7 of group g must select neurons in \[0, 4\)"),
        (lambda: _group(4)["a"], r"Index 'a' of group g must select neurons in \[0, 4\)"),
        (lambda: _group(4)[np.array([True, False])], r"Index array\(\[ True, False\]\) of group g must select neurons"),
        (lambda: PoissonGroup(3, "fast"), r"PoissonGroup: rates must be numbers \(Hz\), but are 'fast'"),
        (lambda: PoissonGroup(3, [1.0, -2.0, 3.0]), r"PoissonGroup: rates must be finite, >= 0 .* but rates\[1\] = -2\.0 Hz"),
        (lambda: PoissonGroup(3, None), r"PoissonGroup: rates must be finite, >= 0 .* but rates = nan Hz"),
        (lambda: SpikeSourceArray(3, [0], ["soon"]), r"SpikeSourceArray: times must be numbers \(ms\), but are \['soon'\]"),
        (lambda: PscExp("a"), r"PscExp\.tau must be a real number, but is 'a'"),
        (lambda: PscExp(None), r"PscExp\.tau must be a real number, but is None"),
        (lambda: CondExp(5.0, e_rev="a"), r"CondExp\.e_rev must be a real number, but is 'a'"),
        (lambda: fixed_probability("a"), r"fixed_probability: p must be a real number, but is 'a'"),
        (lambda: normal("a", 1.0), r"normal: mean must be a real number, but is 'a'"),
        (lambda: uniform(None, 1.0), r"uniform: low must be a real number, but is None"),
        (lambda: PoissonInput(_group(4), "exc", None, 1.0), r"PoissonInput rate must be a real number, but is None"),
        (lambda: PoissonInput(_group(4), "exc", 1.0, "w"), r"PoissonInput weight must be a real number, but is 'w'"),
        (lambda: PoissonInput(_group(4), ["exc"], 1.0, 1.0), r"PoissonInput receptor \['exc'\] is not a receptor"),
        (lambda: Projection(_group(4), _group(4), all_to_all(), receptor=["exc"]), r"Projection receptor \['exc'\] is not a receptor"),
    ],
)
def test_non_numeric_and_malformed_arguments(make, match):
    # each used to be a raw ValueError/TypeError/IndexError from float(), NumPy or dict()
    _raises(match, make)


def test_event_block_accepts_numpy_ints():
    g = _group(4)
    assert Projection(g, g, all_to_all(), event_block=np.int64(8)).event_block == 8


@pytest.mark.parametrize(
    "weight, match",
    [
        ("heavy", r"Projection p weight must be a number, an array or a distribution \(normal, lognormal, uniform\), but is 'heavy'"),
        (None, r"Projection p weight must be a number, an array or a distribution .* but is None"),
    ],
)
def test_non_numeric_weight(weight, match):
    _raises(match, _connect, all_to_all(), weight=weight)


@pytest.mark.parametrize(
    "delay, match",
    [
        (0.03, r"Projection p: delay = 0\.03 ms is positive but rounds to 0 steps at dt = 0\.1 ms \(delays are "
               r"round\(delay/dt\) whole steps\); use 0 for arrival at the next step, or at least 0\.1 ms"),
        (0.05, r"Projection p: delay = 0\.05 ms is positive but rounds to 0 steps"),  # half a step: half to even
        ([0.0, 0.1, 0.04], r"Projection p: delay\[2\] = 0\.04 ms is positive but rounds to 0 steps"),
        (None, r"Projection p delay must be a number, an array or a distribution"),
    ],
)
def test_given_delay_that_rounds_to_no_delay(delay, match):
    # 0.03 ms at dt = 0.1 ms used to become 0 steps without a word
    _raises(match, _connect, explicit([0, 1, 2], [0, 1, 2]), delay=delay)


def test_delays_that_round_to_steps_are_accepted():
    net = Network(dtype=np.float64)
    post = net.add(_group(4, "post"))
    pre = net.add(PoissonGroup(3, 0.0, name="pre"))
    net.add(Projection(pre, post, explicit([0, 1, 2], [0, 1, 2]), delay=[0.0, 0.07, 0.25], name="given"))
    net.add(Projection(pre, post, all_to_all(), delay=jnp.asarray([0.3], jnp.float32)[0], name="f32"))
    net.add(Projection(pre, post, all_to_all(), delay=uniform(0.0, 0.3), name="drawn"))  # rounded, as NEST and Brian2
    net.build(jax.random.key(0))
    assert list(net.synapses("given")["delay"]) == [0, 1, 2]  # 0.25 ms = 2.5 steps: half to even
    assert set(net.synapses("f32")["delay"]) == {3}
    assert set(net.synapses("drawn")["delay"]) <= {0, 1, 2, 3}


def test_delay_past_the_int32_range():
    _raises(r"Projection p: delays must be at most 2147483646 steps .* but one is", _connect, all_to_all(), delay=uniform(1e9, 2e9))


# the drawn laws put every weight below 0 (normal: P(w >= 0) = 1e-23 per synapse), so the test does not hang
# on one draw of three synapses
@pytest.mark.parametrize("weight", [-5.0, [1.0, -0.5, 2.0], uniform(-1.0, -0.1), normal(-1.0, 0.1, clip_sign=False)])
def test_conductance_weights_must_be_non_negative(weight):
    # a CondExp weight of -5 used to fail 500 steps later as "state field 're0' became non-finite"
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(3, P, receptors={"ampa": CondExp(5.0)}, name="g"))
    src = net.add(PoissonGroup(3, 100.0, name="src"))
    net.add(Projection(src, g, explicit([0, 1, 2], [0, 1, 2]), weight=weight, receptor="ampa", name="syn"))
    _raises(r"Projection syn: weights into CondExp receptor 'ampa' are conductances and must be >= 0, but one is -",
            net.build, jax.random.key(0))


def test_conductance_inputs_and_stdp_bounds_must_be_non_negative():
    g = NeuronGroup(3, P, receptors={"ampa": CondExp(5.0)}, name="g")
    _raises(r"PoissonInput weight into receptor 'ampa' of NeuronGroup\(g.* must be >= 0 \(a conductance, CondExp\), but is -1\.0",
            PoissonInput, g, "ampa", 10.0, -1.0)
    _raises(r"Projection into CondExp receptor 'ampa': STDP w_min must be >= 0 .* but is -1\.0",
            Projection, g, g, all_to_all(), receptor="ampa", plasticity=STDP(w_min=-1.0))
    net = Network(dtype=np.float64)
    net.add(g)
    net.add(Projection(g, g, all_to_all(), weight=0.5, receptor="ampa", name="ok"))
    net.build(jax.random.key(0))


def test_load_missing_corrupt_and_foreign_files(tmp_path):
    net = _small(4)
    _raises(r"Network\.load: '.*nothing\.npz' does not exist", net.load, str(tmp_path / "nothing.npz"))
    _save(net, tmp_path / "ckpt")  # NumPy writes ckpt.npz
    _raises(r"Network\.load: '.*ckpt' does not exist \(Network\.save\('.*ckpt'\) wrote '.*ckpt\.npz'\)", net.load, str(tmp_path / "ckpt"))
    _raises(r"Network\.load: '.*' is a folder, not a file", net.load, str(tmp_path))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    _raises(r"Network\.load: '.*junk\.npz' is not a \.npz file written by Network\.save", net.load, str(tmp_path / "junk.npz"),
            error=InvalidStateError)
    np.save(tmp_path / "one.npy", np.zeros(3))
    _raises(r"Network\.load: '.*one\.npy' holds one array \(\.npy\)", net.load, str(tmp_path / "one.npy"), error=InvalidStateError)
    n_leaves = len(jax.tree_util.tree_leaves(net.state))
    np.savez(tmp_path / "foreign.npz", **{f"x{i}": np.zeros(1) for i in range(n_leaves)})
    _raises(r"Network\.load: '.*foreign\.npz' is not a state written by Network\.save \(it holds an array 'x0'\)",
            net.load, str(tmp_path / "foreign.npz"), error=InvalidStateError)
    before = net.state
    net.load(str(tmp_path / "ckpt.npz"))  # the real file still loads
    assert int(net.state.t) == int(before.t)
    _raises(r"Network\.save: cannot write '.*no_such_dir/x\.npz': No such file or directory", net.save, str(tmp_path / "no_such_dir" / "x.npz"))


def _sharded(n: int = 40) -> Network:
    net = Network(dtype=np.float64)
    g = net.add(_group(n))
    net.add(Projection(g, g, fixed_probability(0.2), weight=0.3, delay=0.2, name="rec"))
    net.add(CurrentInput(g, np.linspace(5.0, 30.0, n)))
    return net.build(jax.random.key(0), shard=1)


def test_checkpoints_per_shard_round_trip_and_name_what_is_wrong(tmp_path):
    net = _sharded()
    net.run(5.0)
    folder = tmp_path / "ck"
    net.save(str(folder), shards=True)
    assert sorted(p.name for p in folder.iterdir()) == ["layout.json", "shard-0.npz"]
    net.run(5.0)
    after = net.state
    again = _sharded()
    again.load(str(folder))  # the same devices: the shard as it is
    again.run(5.0)
    for a, b in zip(jax.tree_util.tree_leaves(again.state), jax.tree_util.tree_leaves(after)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    _raises(r"Network\.save\(shards=True\) needs a partitioned network", _small(4).save, str(tmp_path / "x"), shards=True)
    plain = Network(dtype=np.float64)
    g = plain.add(_group(40))
    plain.add(Projection(g, g, fixed_probability(0.2), weight=0.3, delay=0.2, name="rec"))
    plain.build(jax.random.key(0))
    _raises(r"Network\.load: '.*ck' holds a checkpoint per shard; load it into a partitioned network", plain.load, str(folder))
    _raises(r"Network\.load: .* holds \d+ arrays per shard, this network's state has \d+", _small_sharded_other().load,
            str(folder), error=InvalidStateError)
    (folder / "shard-0.npz").write_bytes(b"truncated")
    _raises(r"Network\.load: shard 0 of '.*ck' \(.*shard-0\.npz\) is missing or damaged", again.load, str(folder),
            error=InvalidStateError)
    (folder / "layout.json").write_text("{not json")
    _raises(r"Network\.load: '.*ck' has no readable layout\.json", again.load, str(folder), error=InvalidStateError)


def _small_sharded_other() -> Network:
    net = Network(dtype=np.float64)
    net.add(_group(40))
    return net.build(jax.random.key(0), shard=1)


@pytest.mark.parametrize("dt", ["a", -1.0, 0.0, float("nan"), True])
def test_network_dt_is_checked_at_construction(dt):
    from qsn.networks import Network

    with pytest.raises(ConfigurationError, match=r"Network: dt must be a finite number of ms > 0, but is"):
        Network(dt=dt)
