"""Partitioned runs (``Network.build(shard=...)``, :mod:`qsn.networks.partition`) against one device.

The guarantee: the spike trains of a network do not depend on how many devices it is partitioned
over. Checked bit for bit in float64 for the CUBA benchmark and a Brunel network (Poisson inputs,
two delays) on 1, 2, 3, 4 and 8 virtual CPU devices, in a fresh interpreter (the device count is
fixed when JAX starts); a checkpoint of a 4-device run restores on 2 devices and continues as the
single-device run does; stochastic neurons (pure and mixed) draw what one device draws. The pieces
are checked on their own: bit packing and the cut of ELL rows by owner (round trips, hypothesis), the
synapse memory per device (about ``1/P``), state monitors across device slices, STDP (the draws' slices:
tests/test_draws.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as hs

from qsn.errors import ConfigurationError
from qsn.networks import STDP, Network, NeuronGroup, Projection, SpikeMonitor, fixed_probability
from qsn.networks.partition import cut_rows, join_rows, pack_bits, unpack_bits
import qsn

_SCRIPT = textwrap.dedent(
    """
    import json, jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    from qsn.networks import models, SpikeMonitor
    assert jax.device_count() == 8, jax.devices()

    def build(model, shard):
        net = model()
        mons = [net.add(SpikeMonitor(g)) for g in list(net.groups.values())]
        return net.build(jax.random.key(1), shard=shard), mons

    def trains(mons):
        return [(m.step.tolist(), m.i.tolist()) for m in mons]

    out = {}
    models_ = {"cuba": lambda: models.cuba(dtype=np.float64, monitor=False),
               "brunel": lambda: models.brunel(n=1000, dtype=np.float64, monitor=False)}
    for name, model in models_.items():
        res = {}
        for shard in (False, 2, 3, 4, 8):
            net, mons = build(model, shard)
            net.run(40.0)
            if shard:  # (n_pre + 1, K_p) per device
                per_device = {p: int(np.prod(net._dev_consts["projections"][p].targets.shape[1:])) for p in net._specs}
            else:  # (n_pre + 1, K) on the one device
                per_device = {p: int(np.size(net._arrays[p].targets)) for p in net._specs}
            res[str(shard)] = dict(trains=trains(mons), bytes=net.exchange_bytes, devices=net.devices, every=net.exchange_every,
                                   cut=per_device, whole={p: int(np.size(net._projection(p, "synapse_list")["pre"]))
                                                          for p in net.projections},
                                   owned=[net._partition.owns(p) for p in net.projections.values()] if shard else None)
        # chunks that are not whole exchange blocks (400 steps as 10 x 37 + 30: each chunk ends in a short block)
        net, mons = build(model, 3)
        net.run(40.0, chunk_steps=37)
        res["3_chunked"] = dict(trains=trains(mons))
        out[name] = res
    # a 4-device checkpoint restores on 2 devices and continues as one device does
    one, m1 = build(models_["brunel"], False)
    one.run(40.0)
    four, _ = build(models_["brunel"], 4)
    four.run(20.0)
    two, m2 = build(models_["brunel"], 2)
    two.restore(four.state)
    two.run(20.0)
    late = [(m.step[m.step >= 200].tolist(), m.i[m.step >= 200].tolist()) for m in m1]  # what `two` ran
    out["restore"] = dict(one=late, two=trains(m2),
                          count_equal=all(np.array_equal(one.spike_count(g), two.spike_count(g)) for g in one.groups))
    # a checkpoint per shard of the 4-device run loads on 4 devices (each shard read as it is) and, joined, on 2 and 1
    import os, tempfile
    folder = os.path.join(tempfile.mkdtemp(), "ck")
    four.save(folder, shards=True)
    out["shards"] = {}
    for shard in (4, 2, 1):
        net, m = build(models_["brunel"], shard)
        net.load(folder)
        net.run(20.0)
        out["shards"][str(shard)] = trains(m)
    # a state monitor of neurons on different devices (in the monitor's own order) records what one device does
    import qsn
    from qsn.networks import Network, NeuronGroup, Projection, StateMonitor, CurrentInput, PscExp, fixed_probability

    def probed(shard):
        net = Network(dtype=np.float64)
        g = net.add(NeuronGroup(100, qsn.NeuronParams(delta=0.3), receptors={"exc": PscExp(5.0)}, name="g"))
        net.add(Projection(g, g, fixed_probability(0.1), weight=0.5, receptor="exc"))
        net.add(CurrentInput(g, np.linspace(10, 40, 100)))
        m = net.add(StateMonitor(g[[70, 0, 39, 99, 5]], ("v", "p1", "exc"), record_every=2))
        net.build(jax.random.key(0), shard=shard).run(20.0)
        return {v: getattr(m, v).tolist() for v in ("v", "p1", "exc")}

    out["state_monitor"] = dict(one=probed(False), three=probed(3))

    # STDP: each device updates its cut of the weights
    from qsn.networks import PoissonGroup, STDP

    def plastic(shard):
        net = Network(dtype=np.float64)
        g = net.add(NeuronGroup(70, qsn.NeuronParams(delta=0.2), name="g"))
        src = net.add(PoissonGroup(50, 40.0, name="src"))
        net.add(Projection(src, g, fixed_probability(0.3), weight=2.0, plasticity=STDP(a_plus=0.05, a_minus=0.05, w_max=4.0),
                           name="ff"))
        net.add(Projection(g, g, fixed_probability(0.1), weight=0.5, plasticity=STDP(w_max=2.0), name="rec"))
        net.add(CurrentInput(g, np.linspace(10, 25, 70)))
        m = net.add(SpikeMonitor(g))
        net.build(jax.random.key(0), shard=shard).run(30.0)
        return dict(trains=trains([m]), ff=net.weights("ff").tolist(), rec=net.weights("rec").tolist(),
                    initial_ff=2.0 * net.synapse_count["ff"])

    out["stdp"] = dict(one=plastic(False), three=plastic(3))

    # a non-finite state on device 1 names the neuron of the whole group (V -> -inf on neuron 70 from step 5)
    import jax.numpy as jnp
    from qsn.errors import NumericalInstabilityError

    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(100, qsn.NeuronParams(delta=0.2), name="cortex"))
    net.add(CurrentInput(g, lambda t: jnp.where((jnp.arange(100) == 70) & (t >= 5), -jnp.inf, 0.0)))
    net.build(jax.random.key(0), shard=3)
    try:
        net.run(1.0)
        out["non_finite"] = None
    except NumericalInstabilityError as err:
        out["non_finite"] = str(err)
    # stochastic neurons (dephasing, relaxation, quantum jumps; pure and mixed): each device draws its
    # slice of the group's numbers
    from qsn.networks import PoissonInput

    def stochastic(shard, mode):
        net = Network(dtype=np.float64)
        p = qsn.NeuronParams(delta=0.4, jump_rate=0.2, t1=40.0, t2=25.0)
        g = net.add(NeuronGroup(90, p, mode, receptors={"exc": PscExp(3.0)}, name="g"))
        net.add(Projection(g, g, fixed_probability(0.1), weight=0.5, receptor="exc"))
        net.add(PoissonInput(g, "exc", rate=200.0, weight=0.4, n_inputs=20))
        net.add(CurrentInput(g, np.linspace(5, 15, 90)))
        m = net.add(SpikeMonitor(g))
        net.build(jax.random.key(2), shard=shard).run(30.0)
        s = net.state.neurons["g"]
        return dict(trains=trains([m]), state=[np.asarray(x).tolist() for x in jax.tree_util.tree_leaves(s)])

    out["stochastic"] = {mode: dict(one=stochastic(False, mode), three=stochastic(3, mode), eight=stochastic(8, mode))
                         for mode in ("pure", "mixed")}
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def partitioned():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.mark.parametrize("model", ["cuba", "brunel"])
def test_spike_trains_do_not_depend_on_the_device_count(partitioned, model):
    res = partitioned[model]
    ref = res["False"]["trains"]
    assert sum(len(s) for s, _ in ref) > 200  # the networks are active
    for shard in ("2", "3", "4", "8"):
        assert res[shard]["devices"] == int(shard)
        assert res[shard]["trains"] == ref, f"{model} on {shard} devices"
        assert res[shard]["whole"] == res["False"]["whole"]  # the synapses, joined back, are the same
    # both ways of building a device's part: CUBA's projections drawn by their owners (each device the
    # synapses onto its slice), the small Brunel network's ("auto" path, decided on the drawn delays)
    # drawn whole and cut
    assert {tuple(res[s]["owned"]) for s in ("2", "3", "4", "8")} == {(model == "cuba",) * 2}


def test_spikes_are_exchanged_once_per_shortest_delay(partitioned):
    """Brunel's 1.5 ms delays are 15 steps: devices step 16 steps on their own, then exchange them at
    once; CUBA's delays are 0 steps (dt): every step. Trains as one device's, chunked across blocks too."""
    brunel, cuba = partitioned["brunel"], partitioned["cuba"]
    assert {brunel[k]["every"] for k in ("2", "3", "4", "8")} == {16} and brunel["False"]["every"] == 1
    assert {cuba[k]["every"] for k in ("2", "3", "4", "8")} == {1}
    for res in (brunel, cuba):
        assert res["3_chunked"]["trains"] == res["False"]["trains"]


@pytest.mark.parametrize("model", ["cuba", "brunel"])
def test_exchange_and_synapse_memory_per_device(partitioned, model):
    res = partitioned[model]
    for shard in ("2", "4", "8"):
        p = int(shard)
        assert res[shard]["bytes"] > 0 and res["False"]["bytes"] == 0
        # each device holds (n_pre + 1, K_p) of every event projection, K_p about K / P (plus the
        # fluctuation of the longest row cut: random rows of ~80-100 synapses here)
        for name, cut in res[shard]["cut"].items():
            ell = res["False"]["cut"][name]
            assert cut * p <= 2.0 * ell and cut < ell, (name, cut, ell, p)


def test_state_monitor_of_a_partitioned_run_records_what_one_device_does(partitioned):
    res = partitioned["state_monitor"]
    assert np.asarray(res["one"]["v"]).shape == (100, 5)
    assert res["three"] == res["one"]


def test_stdp_of_a_partitioned_run_learns_what_one_device_learns(partitioned):
    one, three = partitioned["stdp"]["one"], partitioned["stdp"]["three"]
    assert sum(len(s) for s, _ in one["trains"]) > 50
    assert abs(np.sum(one["ff"]) - one["initial_ff"]) > 1.0  # the weights did change
    assert three["trains"] == one["trains"]
    # weights to the last bit but one: XLA:CPU contracts w + a*b into FMAs differently for the cut's
    # (n_pre + 1, K_p) shape than for the whole (n_pre + 1, K), so a weight can differ by 1 ulp
    for name in ("ff", "rec"):
        np.testing.assert_allclose(three[name], one[name], rtol=4e-16, atol=1e-15)


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_stochastic_neurons_draw_what_one_device_draws(partitioned, mode):
    """Dephasing, relaxation and quantum jumps: each device draws the entries of its slice of the group's
    counter-based streams (qsn.draws), so trains and states equal one device's, bit for bit."""
    res = partitioned["stochastic"][mode]
    assert sum(len(s) for s, _ in res["one"]["trains"]) > 30
    assert res["three"] == res["one"] and res["eight"] == res["one"]


def test_a_non_finite_state_names_the_neuron_of_the_whole_group(partitioned):
    assert partitioned["non_finite"] == "Group 'cortex': state field `v` became non-finite at neuron 70 by step 10"


def test_a_checkpoint_per_shard_loads_on_any_device_count(partitioned):
    late = partitioned["restore"]["one"]
    assert sum(len(s) for s, _ in late) > 50
    for shard, trains in partitioned["shards"].items():
        assert trains == late, f"checkpoint of 4 devices per shard, loaded on {shard}"


def test_checkpoint_restores_on_another_device_count(partitioned):
    res = partitioned["restore"]
    assert res["two"] == res["one"] and res["count_equal"]


# ------------------------------------------------------------------------------------ the pieces


@settings(max_examples=30, deadline=None)
@given(hs.lists(hs.booleans(), min_size=1, max_size=200), hs.integers(1, 6))
def test_bits_round_trip(spikes, words):
    s = np.zeros(32 * max(words, -(-len(spikes) // 32)), bool)
    s[: len(spikes)] = spikes
    back = np.asarray(unpack_bits(pack_bits(jnp.asarray(s)), s.size))
    np.testing.assert_array_equal(back, s)
    steps = np.stack([s, ~s, np.roll(s, 1)])  # leading axes (a block of steps) pack row by row
    words = pack_bits(jnp.asarray(steps))
    np.testing.assert_array_equal(np.asarray(words[1]), np.asarray(pack_bits(jnp.asarray(~s))))
    np.testing.assert_array_equal(np.asarray(unpack_bits(words, s.size)), steps)


@settings(max_examples=40, deadline=None)
@given(hs.integers(1, 12), hs.integers(1, 70), hs.integers(1, 5), hs.integers(0, 2**31 - 1))
def test_cut_rows_by_owner_round_trips(rows, n_post, devices, seed):
    rng = np.random.default_rng(seed)
    width = int(rng.integers(1, 9))
    counts = rng.integers(0, width + 1, rows)
    targets = np.full((rows, width), n_post, np.int32)
    for r, c in enumerate(counts):
        targets[r, :c] = np.sort(rng.integers(0, n_post, c))  # increasing rows, multapses allowed
    weights = rng.normal(size=(rows, width)) * (targets < n_post)
    size = -(-n_post // devices)
    cuts = cut_rows(targets, n_post, size, devices, weights)
    for p, (tp, wp) in enumerate(cuts):  # each cut holds exactly the synapses onto its slice
        mine = (targets >= p * size) & (targets < (p + 1) * size) & (targets < n_post)
        assert np.array_equal(np.sum(tp < size, axis=1), np.sum(mine, axis=1))
        for r in range(rows):
            np.testing.assert_array_equal(tp[r][tp[r] < size] + p * size, targets[r][mine[r]])
            np.testing.assert_array_equal(wp[r][tp[r] < size], weights[r][mine[r]])
    tg, w = join_rows([c[0] for c in cuts], size, n_post, [c[1] for c in cuts])
    k = max(1, int(counts.max()))
    np.testing.assert_array_equal(tg, targets[:, :k])
    np.testing.assert_array_equal(w, weights[:, :k])


def _small(monitor=None, plastic=False, params=None):
    net = Network()
    g = net.add(NeuronGroup(40, params or qsn.NeuronParams(delta=0.1), name="g"))
    net.add(Projection(g, g, fixed_probability(0.1), weight=0.1, plasticity=STDP() if plastic else None, name="p"))
    if monitor is not None:
        net.add(monitor(g))
    return net


@pytest.mark.parametrize("shard", [0, 2, "all", 1.5])
def test_a_bad_shard_is_named(shard):
    net = _small(monitor=SpikeMonitor)
    with pytest.raises(ConfigurationError, match="shard must be"):
        net.build(jax.random.key(0), shard=shard)


def test_one_device_partition_equals_the_plain_run():
    runs = []
    for shard in (False, 1):
        net = _small()
        mon = net.add(SpikeMonitor(net["g"]))
        from qsn.networks import CurrentInput

        net.add(CurrentInput(net["g"], np.linspace(20.0, 60.0, 40)))
        net.build(jax.random.key(2), shard=shard).run(30.0)
        runs.append((mon.step, mon.i, net.spike_count("g")))
    assert runs[0][0].size > 20
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model, extra", [("brunel", ["-n", "1000"]), ("cuba", [])])
def test_two_processes_of_two_devices_equal_one_device(model, extra, tmp_path):
    """jax.distributed on 127.0.0.1 (gloo CPU collectives): 2 processes x 2 devices, float64; a checkpoint
    per shard (each process writes its own devices' parts) loads into a fresh network as the state it was."""
    from qsn.networks.multihost import launch_local

    outs = launch_local([model, *extra, "--ms", "30", "--float64", "--check", "--shards", str(tmp_path / "ck")],
                        processes=2, devices=2, timeout=600)
    results = [json.loads(line[len("QSN-WORKER "):]) for out in outs for line in out.splitlines()
               if line.startswith("QSN-WORKER ")]
    assert [r["process"] for r in results] == [0, 1]
    for r in results:
        assert r["devices"] == 4 and r["local_devices"] == 2 and r["spikes"] > 100
        assert r["equal_to_one_device"] and r["state_equal"], r
        assert r["shards_equal"] and r["shards_written"] == [f"shard-{p}.npz" for p in range(4)], r
    assert results[0]["digest"] == results[1]["digest"]  # both processes hold every spike
