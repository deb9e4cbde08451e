"""Behaviour and physics of ``qsn.networks.Network`` runs, against independent references.

References and tolerances (float64 throughout):

* propagation paths: the event-driven and dense paths give identical spikes and V within ``1e-12``
  mV; with dyadic weights (every partial sum exact) the whole state is bitwise equal;
* checkpoints: ``run(T)`` equals ``run(T/2)``, ``state``/``restore`` (or ``save``/``load``) into an
  identically built network, ``run(T/2)`` — bit for bit, random streams included;
* partitioned runs (``shard=``) are tested in ``test_partition.py``;
* single neurons: a PscExp input gives the analytic double-exponential PSP (closed form, ``1e-10``
  mV); CondExp follows the exponential-Euler formula written here in NumPy (``1e-12``); a Delta
  input jumps V by ``w`` (``1e-12``); every input arrives at step ``k + 1 + d``;
* inputs: PoissonInput counts are ``Poisson(n_inputs rate dt)`` and PoissonGroup spikes
  ``Bernoulli(rate dt)`` per step (SciPy chi-square / binomial tests, ``p > 1e-3``); SpikeSourceArray
  emits at ``round(t/dt)``; CurrentInput (constant, ``(T, n)``, functions, views) matches a NumPy LIF
  recursion (``1e-12``);
* monitors: StateMonitor samples equal the state after the sampled steps; RateMonitor equals the
  SpikeMonitor counts; a full SpikeMonitor raises ``RecordingError``;
* quantum: a mixed-mode group in a network equals ``qsn.simulate`` of the same neurons (``1e-12``);
  jump spiking fires without input at the rate ``qsn.simulate`` gives (two-sample test, 5 SE).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

import qsn
from qsn.errors import RecordingError
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
    explicit,
    fixed_probability,
    lognormal,
    normal,
    one_to_one,
    uniform,
)


DT = 0.1  # ms
P_MIN = 1e-3  # smallest accepted goodness-of-fit p-value
SIGMA = 5.0  # width of mean bounds, in standard errors
LIF = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=20.0, r_m=1.0, t_ref=2.0, delta=0.0, dt=DT)


def _leaves_equal(a, b) -> None:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ------------------------------------------------------------------------------------ propagation paths


def _recurrent(propagation: str, dyadic: bool) -> tuple[Network, SpikeMonitor, StateMonitor]:
    n = 40
    net = Network(dtype=np.float64)
    g = net.add(
        NeuronGroup(
            n,
            LIF,
            receptors={"exc": PscExp(5.0), "inh": PscExp(10.0), "d": Delta()},
            v0=np.linspace(-60.0, -50.5, n),
            name="g",
        )
    )
    src = net.add(PoissonGroup(20, 300.0, name="src"))
    if dyadic:
        # weights on a 1/16 grid: every sum the two paths form, in any order, is exact
        rng = np.random.default_rng(0)
        for name, pre, m, lo, hi, receptor in (
            ("e", g, 300, 0, 32, "exc"),
            ("i", g, 100, -64, 0, "inh"),
            ("p", src, 120, 0, 48, "d"),
        ):
            pre_i, post_i = rng.integers(0, pre.n, m), rng.integers(0, n, m)
            net.add(
                Projection(
                    pre,
                    g,
                    explicit(pre_i, post_i),
                    weight=rng.integers(lo, hi, m) / 16.0,
                    delay=rng.integers(0, 25, m) * DT,
                    receptor=receptor,
                    propagation=propagation,
                    name=name,
                )
            )
    else:
        net.add(
            Projection(
                g[:30],
                g,
                fixed_probability(0.2),
                weight=normal(1.0, 0.5),
                delay=uniform(0.0, 3.0),
                receptor="exc",
                propagation=propagation,
                name="e",
            )
        )
        net.add(
            Projection(
                src,
                g,
                fixed_probability(0.15),
                weight=lognormal(0.0, 0.5),
                delay=uniform(0.0, 1.0),
                receptor="d",
                propagation=propagation,
                name="p",
            )
        )
    net.add(CurrentInput(g, np.linspace(8.0, 10.5, n)))
    spikes = net.add(SpikeMonitor(g, name="spikes"))
    vm = net.add(StateMonitor(g, "v", record_every=10, name="v"))
    net.build(jax.random.key(1)).run(100.0)
    assert all(spec.path == propagation for spec in net._specs.values())
    return net, spikes, vm


@pytest.mark.parametrize("dyadic", [False, True])
def test_event_and_dense_paths_agree(dyadic):
    ev, s_ev, v_ev = _recurrent("event", dyadic)
    de, s_de, v_de = _recurrent("dense", dyadic)
    assert s_ev.step.size > 100  # the recurrent input matters: many spikes
    np.testing.assert_array_equal(s_ev.step, s_de.step)
    np.testing.assert_array_equal(s_ev.i, s_de.i)
    if dyadic:
        # everything but the weights' storage layout (ELL vs per-delay matrices) is bitwise equal
        for field in ("t", "neurons", "syn", "ring", "count"):
            _leaves_equal(getattr(ev.state, field), getattr(de.state, field))
        for name in ("e", "i", "p"):
            np.testing.assert_array_equal(ev.weights(name), de.weights(name))
        np.testing.assert_array_equal(v_ev.v, v_de.v)
    else:
        np.testing.assert_allclose(v_ev.v, v_de.v, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            np.asarray(ev.state.neurons["g"].v), np.asarray(de.state.neurons["g"].v), rtol=0, atol=1e-12
        )
        np.testing.assert_allclose(np.asarray(ev.state.syn["g"]), np.asarray(de.state.syn["g"]), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ checkpoints


def _stochastic() -> tuple[Network, SpikeMonitor]:
    """Every random stream of a network: dephasing, relaxation and jumps (pure mode), Poisson input
    and a Poisson group, plus plastic weights (traces in the state)."""
    net = Network(dtype=np.float64)
    qp = qsn.NeuronParams(
        v_rest=-60.0, v_th=-50.0, tau_m=20.0, t_ref=2.0, delta=0.3, t2=30.0, t1=60.0, jump_rate=0.05, dt=DT
    )
    a = net.add(
        NeuronGroup(
            24,
            qp,
            "pure",
            receptors={"exc": PscExp(5.0), "d": Delta()},
            v0=lambda k: -60.0 + 10.0 * jax.random.uniform(k, (24,), jnp.float64),
            name="a",
        )
    )
    src = net.add(PoissonGroup(10, 200.0, name="src"))
    net.add(Projection(a, a, fixed_probability(0.2), weight=normal(0.8, 0.3), delay=uniform(0.1, 2.0), name="aa"))
    net.add(
        Projection(
            src,
            a,
            fixed_probability(0.3),
            weight=0.7,
            receptor="d",
            propagation="event",
            plasticity=STDP(a_plus=0.05, a_minus=0.05, w_max=2.0),
            name="plastic",
        )
    )
    net.add(PoissonInput(a, "exc", rate=100.0, weight=0.5, n_inputs=5))
    net.add(CurrentInput(a, 8.0))
    spikes = net.add(SpikeMonitor(a, name="sa"))
    net.build(jax.random.key(7))
    return net, spikes


def test_checkpoint_restore_and_save_load_continue_bit_for_bit(tmp_path):
    # network A runs 20 ms, is checkpointed (state and file), runs 20 ms more; network B, built the
    # same way, runs 40 ms in one call (chunks of the same length, so one compilation serves both
    # halves). B's end state must equal A's; then B restores A's checkpoint (or loads A's file) and
    # runs the second half again: the same state, bit for bit, and the same spikes
    split, _ = _stochastic()
    split.run(20.0)
    saved = split.state
    split.save(str(tmp_path / "net.npz"))
    split.run(20.0)
    whole, mon = _stochastic()
    whole.run(40.0, chunk_steps=200)
    final, ref_step, ref_i = whole.state, mon.step.copy(), mon.i.copy()
    _leaves_equal(split.state, final)
    assert ref_step.size > 50  # the run is genuinely stochastic and active
    assert not np.allclose(whole.synapses("plastic")["weight"], 0.7)  # plastic weights are in the state
    for how in ("restore", "load"):
        if how == "restore":
            whole.restore(saved)
        else:
            whole.load(str(tmp_path / "net.npz"))
        # the monitors forget what they recorded from the restored step (200) on, as Brian2's restore
        assert whole.t == pytest.approx(20.0)
        np.testing.assert_array_equal(mon.step, ref_step[ref_step < 200])
        whole.run(20.0)
        _leaves_equal(whole.state, final)
        np.testing.assert_array_equal(mon.step, ref_step)
        np.testing.assert_array_equal(mon.i, ref_i)


# ------------------------------------------------------------------------------------ single neurons


def _psp(t: np.ndarray, w: float, r_m: float, tau_m: float, tau_s: float) -> np.ndarray:
    """V - v_rest at time ``t`` (ms) after a current ``w exp(-t/tau_s)`` starts (closed form)."""
    if tau_s == tau_m:
        return r_m * w * (t / tau_m) * np.exp(-t / tau_m)
    return r_m * w * tau_s / (tau_s - tau_m) * (np.exp(-t / tau_s) - np.exp(-t / tau_m))


@pytest.mark.parametrize("tau_s, propagation", [(5.0, "dense"), (20.0, "event")])
def test_psc_exp_psp_matches_the_double_exponential(tau_s, propagation):
    tau_m, r_m, w = 20.0, 2.0, 3.0
    p = qsn.NeuronParams(v_rest=-70.0, v_th=-40.0, tau_m=tau_m, r_m=r_m, t_ref=2.0, delta=0.0, dt=DT)
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(3, p, receptors={"exc": PscExp(tau_s)}, name="g"))
    src = net.add(SpikeSourceArray(1, [0], [1.0], name="src"))  # step 10
    delays = np.array([0, 5, 17])  # steps
    net.add(
        Projection(
            src, g, explicit([0, 0, 0], [0, 1, 2]), weight=[w] * 3, delay=delays * DT, propagation=propagation, name="p"
        )
    )
    mon = net.add(StateMonitor(g, ("v", "exc"), name="m"))
    net.build(jax.random.key(0)).run(80.0)
    steps = np.arange(800)  # row j: state after step j, time (j + 1) dt
    for i, d in enumerate(delays):
        arrival = 10 + 1 + d  # felt from the start of step k + 1 + d
        since = (steps + 1 - arrival) * DT
        v_ref = np.where(steps >= arrival, _psp(np.maximum(since, 0.0), w, r_m, tau_m, tau_s), 0.0)
        i_ref = np.where(steps >= arrival, w * np.exp(-np.maximum(since, 0.0) / tau_s), 0.0)
        np.testing.assert_allclose(mon.v[:, i] - p.v_rest, v_ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(mon.exc[:, i], i_ref, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(mon.v[:arrival, i], p.v_rest)  # nothing before the arrival step


def test_cond_exp_follows_exponential_euler():
    tau_m, r_m, v_rest, drive = 20.0, 1.5, -60.0, 4.0
    p = qsn.NeuronParams(v_rest=v_rest, v_th=-20.0, tau_m=tau_m, r_m=r_m, delta=0.0, dt=DT)
    tau = {"exc": 5.0, "inh": 10.0}
    e_rev = {"exc": 0.0, "inh": -80.0}
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(2, p, receptors={k: CondExp(tau[k], e_rev[k]) for k in tau}, v0=[-62.0, -55.0], name="g"))
    src = net.add(SpikeSourceArray(2, [0, 1, 0, 1], [0.0, 0.3, 0.5, 1.2], name="src"))
    # source 0 -> exc of both (0.4, 0.25); source 1 -> inh of neuron 1 (0.6), delay 0.2 ms
    net.add(Projection(src[[0]], g, explicit([0, 0], [0, 1]), weight=[0.4, 0.25], receptor="exc", name="e"))
    net.add(Projection(src[[1]], g, explicit([0], [1]), weight=[0.6], delay=0.2, receptor="inh", name="i"))
    net.add(CurrentInput(g, drive / r_m))  # r_m I = drive mV
    mon = net.add(StateMonitor(g, ("v", "exc", "inh"), name="m"))
    steps = 60
    net.build(jax.random.key(0)).run(steps * DT)
    # NumPy reference: at the start of step k add arrivals; V relaxes to V_inf at rate (1 + G)/tau_m
    # with G held over the step (exponential Euler); then g decays by exp(-dt/tau).
    arrivals = {
        ("exc", 0): {1: 0.4, 6: 0.4},
        ("exc", 1): {1: 0.25, 6: 0.25},
        ("inh", 1): {3 + 1 + 2: 0.6, 12 + 1 + 2: 0.6},
    }
    v = np.array([-62.0, -55.0])
    gs = {k: np.zeros(2) for k in tau}
    v_ref, g_ref = [], {k: [] for k in tau}
    for k in range(steps):
        for (rec, i), table in arrivals.items():
            gs[rec][i] += table.get(k, 0.0)
        g_tot = gs["exc"] + gs["inh"]
        v_inf = (v_rest + gs["exc"] * e_rev["exc"] + gs["inh"] * e_rev["inh"] + drive) / (1.0 + g_tot)
        v = v_inf + (v - v_inf) * np.exp(-DT * (1.0 + g_tot) / tau_m)
        v_ref.append(v.copy())
        for rec, tau_rec in tau.items():
            gs[rec] = gs[rec] * np.exp(-DT / tau_rec)
            g_ref[rec].append(gs[rec].copy())
    np.testing.assert_allclose(mon.v, np.array(v_ref), rtol=0, atol=1e-12)
    for rec in tau:
        np.testing.assert_allclose(getattr(mon, rec), np.array(g_ref[rec]), rtol=0, atol=1e-14)


@pytest.mark.parametrize("propagation", ["event", "dense"])
def test_delta_jump_delay_and_refractory_loss(propagation):
    # t_ref = 2 ms: a spike at step 20 clamps V in steps 21..39 (n_ref = 20 steps, the spike step included)
    p = qsn.NeuronParams(v_rest=-65.0, v_th=-50.0, tau_m=10.0, t_ref=2.0, delta=0.0, dt=DT)
    w = 4.0
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(4, p, receptors={"d": Delta(), "kick": Delta()}, name="g"))
    src = net.add(SpikeSourceArray(1, [0, 0], [0.5, 2.4], name="src"))  # steps 5 and 24
    kick = net.add(SpikeSourceArray(1, [0], [1.9], name="kick"))  # step 19 -> neurons 2, 3 spike at step 20
    # neuron 0: spike of step 5, delay 0 -> step 6; neuron 1: delay 0.7 ms -> step 13;
    # neuron 2: spike of step 24, delay 0 -> step 25 (refractory: lost); neuron 3: step 24 + 1 + 15 = 40 (free again)
    net.add(
        Projection(
            src,
            g,
            explicit([0, 0, 0, 0], [0, 1, 2, 3]),
            weight=[w] * 4,
            delay=[0.0, 0.7, 0.0, 1.5],
            receptor="d",
            propagation=propagation,
            name="p",
        )
    )
    net.add(
        Projection(
            kick,
            g[2:],
            explicit([0, 0], [0, 1]),
            weight=[100.0, 100.0],
            receptor="kick",
            propagation=propagation,
            name="k",
        )
    )
    mon = net.add(StateMonitor(g, "v", name="v"))
    spk = net.add(SpikeMonitor(g, name="s"))
    net.build(jax.random.key(0)).run(6.0)
    decay = np.exp(-DT / 10.0)
    v = mon.v - p.v_rest
    for i, arrival in ((0, 6), (1, 13)):  # arrival of the spikes of step 5; the step-24 ones come later
        np.testing.assert_array_equal(v[:arrival, i], 0.0)
        np.testing.assert_allclose(v[arrival, i], w * decay, rtol=0, atol=1e-12)
        np.testing.assert_allclose(v[arrival + 7, i], w * decay**8, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(spk.step, [20, 20])
    np.testing.assert_array_equal(spk.i, [2, 3])
    np.testing.assert_array_equal(v[20:, 2], 0.0)  # arrived in refractoriness: lost for good
    np.testing.assert_array_equal(v[20:40, 3], 0.0)
    np.testing.assert_allclose(v[40, 3], w * decay, rtol=0, atol=1e-12)


@pytest.mark.parametrize("propagation, block", [("event", None), ("event", 3), ("dense", None)])
def test_synchronous_burst_delivers_every_synapse(propagation, block):
    # 300 sources fire together (far more rows than an event block holds); each target's V jumps by
    # the sum of the weights of its synapses, decayed over the arrival step
    n_src, n = 300, 6
    p = qsn.NeuronParams(v_rest=0.0, v_th=1e6, tau_m=10.0, delta=0.0, dt=DT)
    rng = np.random.default_rng(11)
    m = 2000
    pre, post = rng.integers(0, n_src, m), rng.integers(0, n, m)
    w = rng.integers(-16, 32, m) / 64.0
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(n, p, receptors={"d": Delta()}, name="g"))
    src = net.add(SpikeSourceArray(n_src, np.tile(np.arange(n_src), 2), np.repeat([0.3, 0.4], n_src), name="src"))
    net.add(
        Projection(
            src, g, explicit(pre, post), weight=w, receptor="d", propagation=propagation, event_block=block, name="p"
        )
    )
    mon = net.add(StateMonitor(g, "v", name="v"))
    net.build(jax.random.key(0)).run(0.6)
    total = np.bincount(post, weights=w, minlength=n)
    decay = np.exp(-DT / 10.0)
    np.testing.assert_array_equal(mon.v[:4], 0.0)
    np.testing.assert_allclose(mon.v[4], total * decay, rtol=0, atol=1e-12)  # spikes of step 3, felt in step 4
    np.testing.assert_allclose(mon.v[5], (total * decay + total) * decay, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ inputs


def _poisson_counts_pvalue(counts: np.ndarray, lam: float) -> float:
    k_max = int(st.poisson(lam).ppf(1 - 1e-4))  # the tail beyond joins the last cell
    observed = np.bincount(np.minimum(counts, k_max), minlength=k_max + 1)
    probs = st.poisson(lam).pmf(np.arange(k_max + 1))
    probs[-1] += st.poisson(lam).sf(k_max)
    keep = probs * counts.size >= 5  # merge cells with < 5 expected into the last kept one
    last = np.flatnonzero(keep)[-1]
    obs = np.append(observed[:last], observed[last:].sum())
    exp = np.append(probs[:last], probs[last:].sum()) * counts.size
    return float(st.chisquare(obs, exp).pvalue)


def test_poisson_input_counts_are_poisson():
    # a Delta receptor on a non-leaky (tau_m = 1e4 ms), never-firing neuron: V integrates the counts,
    # which the V trace gives back exactly: n_k = (V_k - v_rest)/decay - (V_{k-1} - v_rest)
    p = qsn.NeuronParams(v_rest=0.0, v_th=1e9, tau_m=1e4, delta=0.0, dt=DT)
    n, steps = 20, 2000
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(n, p, receptors={"d": Delta(), "d2": Delta()}, name="g"))
    net.add(PoissonInput(g, "d", rate=250.0, weight=1.0, n_inputs=8))  # lam = 8 * 250 Hz * 0.1 ms = 0.2
    net.add(PoissonInput(g[10:], "d2", rate=1000.0, weight=1.0, n_inputs=3))  # + 0.3 on neurons 10..19
    mon = net.add(StateMonitor(g, "v", name="v"))
    net.build(jax.random.key(4)).run(steps * DT)
    decay = np.exp(-DT / 1e4)
    v = np.vstack([np.zeros((1, n)), mon.v])
    counts = v[1:] / decay - v[:-1]
    assert np.max(np.abs(counts - np.rint(counts))) < 1e-6
    counts = np.rint(counts).astype(np.int64)
    for cols, lam in ((slice(0, 10), 0.2), (slice(10, 20), 0.5)):
        c = counts[:, cols].ravel()
        assert abs(c.mean() - lam) < SIGMA * np.sqrt(lam / c.size)
        assert _poisson_counts_pvalue(c, lam) > P_MIN


def test_poisson_group_rate_monitor_and_spike_monitor():
    n, steps = 50, 2000
    rates = np.linspace(20.0, 500.0, n)  # Hz
    net = Network(dt=DT, dtype=np.float64)
    src = net.add(PoissonGroup(n, rates, name="src"))
    spikes = net.add(SpikeMonitor(src, name="s"))
    rate = net.add(RateMonitor(src, name="r"))
    part = net.add(RateMonitor(src[10:20], name="r_part"))
    picked = net.add(SpikeMonitor(src[[30, 5, 12]], name="picked"))
    net.build(jax.random.key(5)).run(steps * DT, chunk_steps=300)
    counts = spikes.count()
    # a monitor of a view indexes neurons within the view; trains() gives each one's spike times
    for k, j in enumerate((30, 5, 12)):
        np.testing.assert_array_equal(picked.step[picked.i == k], spikes.step[spikes.i == j])
        np.testing.assert_allclose(picked.trains()[k], spikes.t[spikes.i == j], rtol=1e-12)
    np.testing.assert_array_equal(net.spike_count(src), counts)
    # each neuron: Binomial(steps, rate dt); the sum of squared z-scores is chi-square with n dof
    prob = rates * DT * 1e-3
    z2 = (counts - steps * prob) ** 2 / (steps * prob * (1 - prob))
    assert st.chi2(n).sf(z2.sum()) > P_MIN
    assert st.binomtest(int(counts.sum()), n * steps, prob.mean()).pvalue > P_MIN
    # RateMonitor: population rate per step = spikes in that step / n / dt
    per_step = np.bincount(spikes.step, minlength=steps)
    np.testing.assert_allclose(rate.rate * n * DT * 1e-3, per_step, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(rate.t, (np.arange(steps) + 1) * DT, rtol=1e-12)
    in_part = (spikes.i >= 10) & (spikes.i < 20)
    np.testing.assert_allclose(
        part.rate * 10 * DT * 1e-3, np.bincount(spikes.step[in_part], minlength=steps), atol=1e-9
    )


def test_spike_source_array_emits_at_rounded_steps():
    times = np.array([0.0, 0.04, 0.16, 0.16, 1.049, 2.351, 7.77, 7.77, 7.77, 0.66])
    idx = np.array([0, 1, 2, 0, 3, 1, 0, 2, 3, 4])
    net = Network(dt=DT, dtype=np.float64)
    src = net.add(SpikeSourceArray(5, idx, times, name="src"))
    mon = net.add(SpikeMonitor(src, name="s"))
    net.build(jax.random.key(0))
    net.run(3.0, chunk_steps=7).run(6.0, chunk_steps=11)  # chunk borders everywhere
    order = np.lexsort((idx, np.rint(times / DT)))
    np.testing.assert_array_equal(mon.step, np.rint(times / DT).astype(int)[order])
    np.testing.assert_array_equal(mon.i, idx[order])
    np.testing.assert_allclose(mon.t, (np.rint(times / DT)[order] + 1) * DT, rtol=1e-12)


def test_current_inputs_constant_array_function_and_views():
    p = qsn.NeuronParams(v_rest=-70.0, v_th=50.0, tau_m=15.0, r_m=1.3, delta=0.0, dt=DT)
    n, steps = 3, 120
    rng = np.random.default_rng(6)
    table = rng.normal(5.0, 3.0, (steps, n))  # row = absolute step index
    view_table = rng.normal(0.0, 2.0, (steps, 2))

    def wave(t):  # a function of the absolute step index, for neurons [2, 0]
        x = t.astype(jnp.float64) * 0.05
        return jnp.stack([jnp.sin(x), 2.0 * jnp.cos(x)])

    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(n, p, name="g"))
    net.add(
        CurrentInput(g, 1.5),
        CurrentInput(g, table),
        CurrentInput(g[[2, 0]], wave),
        CurrentInput(g[1:], view_table),
        CurrentInput(g[[0]], -0.5),
    )
    mon = net.add(StateMonitor(g, "v", name="v"))
    net.build(jax.random.key(0))
    net.run(50 * DT, chunk_steps=13).run(70 * DT)
    t = np.arange(steps) * 0.05
    current = 1.5 + table
    current[:, 2] += np.sin(t)
    current[:, 0] += 2.0 * np.cos(t) - 0.5
    current[:, 1:] += view_table
    decay = np.exp(-DT / 15.0)
    v, v_ref = np.full(n, -70.0), []
    for k in range(steps):
        v = -70.0 + (v + 70.0) * decay + 1.3 * current[k] * (1 - decay)
        v_ref.append(v)
    np.testing.assert_allclose(mon.v, np.array(v_ref), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ monitors


def test_state_monitor_record_every_samples_the_state_after_the_step():
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(5, LIF, v0=np.linspace(-60.0, -51.0, 5), name="g"))
    net.add(CurrentInput(g, np.linspace(25.0, 40.0, 5)))
    every = net.add(StateMonitor(g, "v", name="every"))
    sub = net.add(StateMonitor(g[[4, 1]], ("v", "exc"), record_every=3, name="sub"))
    net.build(jax.random.key(0))
    net.run(2.0, chunk_steps=7)  # 20 steps
    net.run(2.2, chunk_steps=5)  # 22 more: 42, a multiple of 3
    np.testing.assert_allclose(sub.t, np.arange(3, 43, 3) * DT, rtol=1e-12)
    np.testing.assert_array_equal(sub.v, every.v[2::3][:, [4, 1]])
    np.testing.assert_array_equal(sub.v[-1], np.asarray(net.state.neurons["g"].v)[[4, 1]])
    np.testing.assert_array_equal(every.v[-1], np.asarray(net.state.neurons["g"].v))
    assert sub.exc.shape == (14, 2) and np.all(sub.exc == 0.0)
    assert np.any(every.v == -60.0) and np.all(every.v < -50.0)  # the neurons fire and reset


def test_spike_monitor_capacity_overflow_raises():
    def net_with(capacity):
        net = Network(dt=DT, dtype=np.float64)
        src = net.add(SpikeSourceArray(2, [0, 1, 0], [0.1, 0.1, 0.5], name="src"))
        mon = net.add(SpikeMonitor(src, capacity=capacity, name="s"))
        return net.build(jax.random.key(0)), mon

    net, mon = net_with(3)
    net.run(1.0)
    assert mon.step.size == 3  # exactly full is fine
    net, mon = net_with(2)
    with pytest.raises(RecordingError, match=r"SpikeMonitor s would record more than capacity=2"):
        net.run(1.0)


def test_recording_error_leaves_monitors_consistent_with_the_state():
    net = Network(dt=DT, dtype=np.float64)
    src = net.add(PoissonGroup(10, 500.0, name="src"))
    full = net.add(SpikeMonitor(src, name="full"))
    net.add(SpikeMonitor(src, capacity=3, name="small"))
    net.build(jax.random.key(0))
    with pytest.raises(RecordingError):
        net.run(1.0)
    assert int(net.state.t) == 0
    assert full.step.size == 0  # nothing recorded for steps the state did not reach


def test_rate_monitor_times_after_restoring_to_an_earlier_step():
    nets = []
    for _ in range(2):
        net = Network(dt=DT, dtype=np.float64)
        src = net.add(PoissonGroup(10, 100.0, name="src"))
        mon = net.add(RateMonitor(src, name="r"))
        nets.append((net.build(jax.random.key(0)), mon))
    (a, _), (b, mon) = nets
    a.run(1.0)
    s10 = a.state
    a.run(1.0)
    b.restore(a.state)  # step 20
    b.run(0.3)
    b.restore(s10)  # back to step 10: the monitor forgets steps >= 10
    b.run(0.3)
    np.testing.assert_allclose(mon.t, [1.1, 1.2, 1.3], rtol=1e-12)


# ------------------------------------------------------------------------------------ quantum


def test_mixed_group_in_a_network_equals_simulate():
    # neuron 4 starts far below rest (|a| = 7 > the default plan bound of 4): the network must re-plan
    # its mixed-mode propagator as simulate does, or the two would drift apart
    p = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=20.0, t_ref=2.0, delta=0.2, t2=20.0, t1=40.0, dt=DT)
    n, steps = 5, 400
    drive = np.array([8.0, 10.5, 12.0, 30.0, 0.0])
    v0 = np.array([-60.0, -60.0, -55.0, -60.0, -130.0])
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(n, p, "mixed", v0=v0, name="g"))
    net.add(CurrentInput(g, drive))
    mon = net.add(StateMonitor(g, ("v", "p1", "coherence", "entropy"), name="q"))
    spk = net.add(SpikeMonitor(g, name="s"))
    net.build(jax.random.key(0)).run(steps * DT)
    ref = qsn.simulate(
        p,
        qsn.init_state(p, n, "mixed", jnp.float64, v0=v0),
        drive,
        steps=steps,
        record=("v", "p1", "coherence", "entropy", "spikes"),
    )
    assert np.all((mon.p1 >= 0) & (mon.p1 <= 1)) and np.all((mon.coherence >= 0) & (mon.coherence <= 0.5))
    assert mon.coherence.max() > 0.01  # the qubits ride along with the membrane
    for var in ("v", "p1", "coherence", "entropy"):
        np.testing.assert_allclose(getattr(mon, var), np.asarray(getattr(ref, var)), rtol=0, atol=1e-12, err_msg=var)
    ref_steps, ref_i = np.nonzero(np.asarray(ref.spikes))
    assert ref_steps.size > 3
    np.testing.assert_array_equal(spk.step, ref_steps)
    np.testing.assert_array_equal(spk.i, ref_i)


def test_jump_spiking_in_a_network_without_input():
    p = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=20.0, t_ref=2.0, delta=0.5, jump_rate=0.5, dt=DT)
    n, steps = 200, 500
    net = Network(dtype=np.float64)
    g = net.add(NeuronGroup(n, p, "pure", receptors={"exc": PscExp(5.0)}, name="g"))
    quiet = net.add(NeuronGroup(n, qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, delta=0.5, dt=DT), name="quiet"))
    tgt = net.add(NeuronGroup(n, LIF, receptors={"d": Delta()}, name="tgt"))
    net.add(Projection(g, tgt, one_to_one(), weight=20.0, receptor="d", name="relay"))
    vm = net.add(StateMonitor(g[:5], "v", name="v"))
    net.build(jax.random.key(8)).run(steps * DT)
    counts = net.spike_count(g)
    assert counts.sum() > 100
    np.testing.assert_array_equal(vm.v, -60.0)  # V never moves: every spike is a quantum jump
    assert net.spike_count(quiet).sum() == 0  # jump_rate = 0: no spikes without input
    # each jump spike is relayed (20 mV onto a 10 mV gap) unless the target is still refractory
    assert 0 < net.spike_count(tgt).sum() <= counts.sum()
    # same neurons through qsn.simulate (another key): equal mean counts within 5 SE of the difference
    ref = np.asarray(
        qsn.simulate(p, qsn.init_state(p, n, "pure", jnp.float64), 0.0, steps=steps, key=jax.random.key(9)).spike_count
    )
    se = np.sqrt(counts.var(ddof=1) / n + ref.var(ddof=1) / n)
    assert abs(counts.mean() - ref.mean()) < SIGMA * se


def test_projections_from_a_slice_store_the_rows_of_its_neurons_only():
    """A group split into E and I by slices keeps one ELL row per neuron in all (not one per neuron of the
    group in each projection); the synapse list, the weight matrix and the run speak group indices."""
    from qsn.networks.projection import footprint

    net = Network()
    g = net.add(NeuronGroup(100, qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=10.0, dt=DT), name="g"))
    e = net.add(Projection(g[:80], g, fixed_probability(0.2), weight=0.5, delay=0.5, receptor="exc", name="e",
                           propagation="event"))
    i = net.add(Projection(g[80:], g, fixed_probability(0.2), weight=-2.0, delay=0.5, receptor="exc", name="i",
                           propagation="event"))
    net.add(CurrentInput(g, 12.0))
    estimates = {p.name: footprint(p, DT, np.float32).arrays for p in (e, i)}
    assert estimates["i"] < 0.3 * estimates["e"]  # the memory preflight counts 21 rows against 81
    net.build(jax.random.key(0))
    for name, first, rows in (("e", 0, 80), ("i", 80, 20)):
        spec, targets = net._specs[name], np.asarray(net._arrays[name].targets)
        assert (spec.first, spec.n_pre, spec.pre_size) == (first, rows, 100) and targets.shape[0] == rows + 1
        syn = net.synapses(name)
        assert syn["pre"].min() >= first and syn["pre"].max() < first + rows
        w = net.weights(name)
        assert w.shape == (100, 100) and np.all(w[:first] == 0) and np.all(w[first + rows:] == 0)
        want = np.zeros((100, 100))
        np.add.at(want, (syn["pre"], syn["post"]), syn["weight"])
        np.testing.assert_array_equal(w, want)
    net.run(20.0)
    assert net.spike_count("g").sum() > 0


@pytest.mark.parametrize("delay_ms, dtype", [(0.5, np.int16), (3276.6, np.int16), (3276.7, np.int32)])
def test_delays_are_stored_in_two_bytes_where_they_fit(delay_ms, dtype):
    """Per-synapse delays (steps) are int16 when the longest is below 2^15 - 1 steps, else int32; a spike
    then arrives round(delay / dt) + 1 steps later either way."""
    net = Network()
    g = net.add(NeuronGroup(3, qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=10.0, dt=DT), receptors={"d": Delta()},
                            name="g"))
    src = net.add(SpikeSourceArray(1, [0], [0.0], name="src"))
    net.add(Projection(src, g, explicit([0, 0], [0, 2]), weight=20.0, delay=delay_ms, receptor="d", propagation="event"))
    spikes = net.add(SpikeMonitor(g, name="s"))
    net.build(jax.random.key(0))
    assert np.asarray(net._arrays[next(iter(net._arrays))].delays).dtype == dtype
    steps = int(round(delay_ms / DT))
    net.run((steps + 3) * DT, chunk_steps=4096)
    np.testing.assert_array_equal(spikes.step, [steps + 1, steps + 1])
    np.testing.assert_array_equal(spikes.i, [0, 2])
