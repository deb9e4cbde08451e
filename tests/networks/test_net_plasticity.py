"""Pair-based STDP of ``qsn.networks`` against the analytic pair rule (``networks/plasticity.py``).

Setup: ``N`` independent pairs. Presynaptic neuron ``i`` is a :class:`SpikeSourceArray` that spikes
at step ``s_pre[i]``; it projects (plastic, one-to-one, a small Delta weight) onto neuron ``i`` of a
LIF group. The postsynaptic spike is forced by a second source ("kick") whose huge Delta weight
arrives one step after the kick (delay 0), so post neuron ``i`` spikes at step ``s_kick[i] + 1``. The
post spike steps are checked with a SpikeMonitor, then the final weight of each synapse is compared
with the rule written from the docstring, with ``dt_pair = (s_post - s_pre) dt``:

* ``dt_pair >= 0`` (post after or with pre): ``dw = a_plus exp(-dt_pair/tau_plus)``;
* ``dt_pair < 0``: ``dw = -a_minus exp(-|dt_pair|/tau_minus)``;
* additive bounds clip ``w`` to ``[w_min, w_max]``; multiplicative bounds scale the change by
  ``w_max - w`` (potentiation) or ``w - w_min`` (depression);
* all-to-all pairing: with several spikes the changes of all pairs add (additive, away from bounds).

Tolerance: ``1e-12`` absolute in float64 (the engine decays traces step by step, the reference uses
one exponential: the difference is a few ulps per step).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import qsn
from qsn.networks import (
    STDP,
    Delta,
    Network,
    NeuronGroup,
    Projection,
    SpikeMonitor,
    SpikeSourceArray,
    StateMonitor,
    explicit,
    one_to_one,
)


DT = 0.1  # ms
TOL = 1e-12
KICK = 1000.0  # mV: any neuron it reaches spikes in that step
PARAMS = qsn.NeuronParams(v_rest=-70.0, v_th=-55.0, tau_m=20.0, t_ref=0.0, delta=0.0, dt=DT)


def _pair_rule(dt_pair: np.ndarray, rule: STDP) -> np.ndarray:
    """Analytic weight change of one pre/post pair, ``dt_pair = t_post - t_pre`` (ms)."""
    return np.where(
        dt_pair >= 0,
        rule.a_plus * np.exp(-np.abs(dt_pair) / rule.tau_plus),
        -rule.a_minus * np.exp(-np.abs(dt_pair) / rule.tau_minus),
    )


def _run_pairs(
    pre_spikes: list[list[int]],
    post_spikes: list[list[int]],
    rule: STDP,
    w0,
    *,
    delay_ms: float = 0.0,
    steps: int | None = None,
):
    """Run one plastic synapse per pair; spikes given as steps. Returns (network, post monitor)."""
    n = len(pre_spikes)
    pre_idx = np.concatenate([[i] * len(s) for i, s in enumerate(pre_spikes)]).astype(np.int64)
    pre_t = np.concatenate([np.asarray(s, float) for s in pre_spikes]) * DT
    # the kick of step s - 1 reaches the post neuron at the start of step s: it spikes at step s
    kick_idx = np.concatenate([[i] * len(s) for i, s in enumerate(post_spikes)]).astype(np.int64)
    kick_t = (np.concatenate([np.asarray(s, float) for s in post_spikes]) - 1) * DT
    net = Network(dtype=np.float64)
    post = net.add(NeuronGroup(n, PARAMS, receptors={"syn": Delta(), "kick": Delta()}, name="post"))
    pre = net.add(SpikeSourceArray(n, pre_idx, pre_t, name="pre"))
    kick = net.add(SpikeSourceArray(n, kick_idx, kick_t, name="kick"))
    net.add(
        Projection(pre, post, one_to_one(), weight=w0, delay=delay_ms, receptor="syn", plasticity=rule, name="plastic")
    )
    net.add(Projection(kick, post, one_to_one(), weight=KICK, receptor="kick", name="kick"))
    mon = net.add(SpikeMonitor(post, name="post_spikes"))
    last = max(max([max(s) for s in pre_spikes if s] + [0]), max([max(s) for s in post_spikes if s] + [0]))
    net.build(jax.random.key(0)).run(((steps or last + 5) + round(delay_ms / DT)) * DT)
    for i, s in enumerate(post_spikes):  # the pairing is exactly the one intended
        np.testing.assert_array_equal(mon.step[mon.i == i], np.sort(s))
    return net


# dt_pair from -40 ms to +40 ms, including the same step (counts as potentiation) and +-1 step
DT_STEPS = np.array([-400, -200, -57, -10, -1, 0, 1, 10, 57, 200, 400])
S0 = 420  # step of the earlier spike, after every pair has room


@pytest.mark.parametrize("delay_ms", [0.0, 2.3])
def test_stdp_pair_curve_matches_the_analytic_rule(delay_ms):
    # delays shift when the weight is felt, not the pairing (spike steps of pre and post neurons)
    rule = STDP(tau_plus=16.8, tau_minus=33.7, a_plus=0.01, a_minus=0.012, w_min=0.0, w_max=1.0)
    pre = [[S0] for _ in DT_STEPS]
    post = [[S0 + k] for k in DT_STEPS]
    w0 = 0.5
    net = _run_pairs(pre, post, rule, w0, delay_ms=delay_ms)
    syn = net.synapses("plastic")
    np.testing.assert_array_equal(syn["pre"], np.arange(DT_STEPS.size))
    dw = syn["weight"] - w0
    np.testing.assert_allclose(dw, _pair_rule(DT_STEPS * DT, rule), rtol=0, atol=TOL)
    # dense summed view agrees
    np.testing.assert_allclose(np.diag(net.weights("plastic")), syn["weight"], rtol=0, atol=0)


def test_stdp_additive_bounds_clip():
    rule = STDP(tau_plus=20.0, tau_minus=20.0, a_plus=0.05, a_minus=0.05, w_min=0.2, w_max=0.6)
    # potentiation from 0.58 would reach 0.58 + 0.05 exp(-0.05) > 0.6; depression from 0.22 goes below 0.2
    w0 = np.array([0.58, 0.22, 0.4, 0.4])
    pre = [[100], [100], [100], [100]]
    post = [[101], [99], [101], [99]]
    net = _run_pairs(pre, post, rule, w0, steps=110)
    got = net.synapses("plastic")["weight"]
    free = w0 + _pair_rule(np.array([1, -1, 1, -1]) * DT, rule)
    np.testing.assert_allclose(got, [0.6, 0.2, free[2], free[3]], rtol=0, atol=TOL)
    assert got[0] == 0.6 and got[1] == 0.2  # clipped exactly to the bounds


def test_stdp_multiplicative_bounds_scale():
    rule = STDP(tau_plus=20.0, tau_minus=25.0, a_plus=0.1, a_minus=0.08, w_min=-0.5, w_max=2.0, bounds="multiplicative")
    w0 = np.array([0.3, 1.7, 0.3, 1.7, 2.0, -0.5])
    k = np.array([30, 30, -30, -30, 5, -5])  # post - pre, steps
    pre = [[200] for _ in k]
    post = [[200 + x] for x in k]
    net = _run_pairs(pre, post, rule, w0, steps=240)
    got = net.synapses("plastic")["weight"]
    curve = _pair_rule(k * DT, rule)
    scale = np.where(k >= 0, rule.w_max - w0, w0 - rule.w_min)
    np.testing.assert_allclose(got, w0 + curve * scale, rtol=0, atol=TOL)
    # at a bound the change in its direction vanishes exactly
    assert got[4] == 2.0 and got[5] == -0.5


def test_stdp_all_to_all_pairs_add_up():
    rule = STDP(tau_plus=15.0, tau_minus=30.0, a_plus=0.004, a_minus=0.003, w_min=-10.0, w_max=10.0)
    rng = np.random.default_rng(3)
    pre, post = [], []
    for _ in range(6):  # spike trains of a few spikes, possibly in the same step as a partner's
        pre.append(sorted(rng.choice(np.arange(10, 400), size=4, replace=False).tolist()))
        post.append(sorted(rng.choice(np.arange(10, 400), size=3, replace=False).tolist()))
    post[0] = sorted(set(post[0]) | {pre[0][1]})  # a same-step pair
    net = _run_pairs(pre, post, rule, 1.0, steps=410)
    got = net.synapses("plastic")["weight"] - 1.0
    want = [np.sum(_pair_rule((np.array(q)[:, None] - np.array(p)[None, :]) * DT, rule)) for p, q in zip(pre, post)]
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


def test_stdp_delivers_the_updated_weight():
    # pre at 100, post at 110 (potentiation); a second pre spike at 150 is delivered with the weight
    # reached so far (propagation precedes plasticity in a step) and then depresses it by the pair
    # (post 110, pre 150) only, since x_post decayed from its one spike
    rule = STDP(tau_plus=20.0, tau_minus=20.0, a_plus=0.2, a_minus=0.1, w_min=0.0, w_max=5.0)
    w0 = 1.0
    net = Network(dtype=np.float64)
    post = net.add(NeuronGroup(1, PARAMS, receptors={"syn": Delta(), "kick": Delta()}, name="post"))
    pre = net.add(SpikeSourceArray(1, [0, 0], [100 * DT, 150 * DT], name="pre"))
    kick = net.add(SpikeSourceArray(1, [0], [109 * DT], name="kick"))
    net.add(Projection(pre, post, explicit([0], [0]), weight=[w0], receptor="syn", plasticity=rule, name="plastic"))
    net.add(Projection(kick, post, one_to_one(), weight=KICK, receptor="kick", name="kick"))
    vm = net.add(StateMonitor(post, "v", name="v"))
    net.build(jax.random.key(0)).run(160 * DT)
    w_mid = w0 + _pair_rule(np.array(10 * DT), rule)
    # the spike of step 150 arrives at step 151: V = v_rest + w_mid exp(-dt/tau_m) after that step
    # (row j of the StateMonitor is the state after step j); V rests until then
    decay = np.exp(-DT / 20.0)
    np.testing.assert_array_equal(vm.v[111:151, 0], PARAMS.v_rest)
    np.testing.assert_allclose((vm.v[151, 0] - PARAMS.v_rest) / decay, w_mid, rtol=0, atol=TOL)
    w_end = w_mid + _pair_rule(np.array(-40 * DT), rule)
    np.testing.assert_allclose(net.synapses("plastic")["weight"], [w_end], rtol=0, atol=TOL)


def test_stdp_projection_takes_the_event_path_and_keeps_traces_in_state():
    rule = STDP()
    net = _run_pairs([[10]], [[12]], rule, 0.5, steps=20)
    assert net._specs["plastic"].path == "event"
    tr = net.state.traces["plastic"]
    # traces after the run (steps 0..19): x_pre = exp(-(19 - 10) dt/tau_plus), x_post = exp(-(19 - 12) dt/tau_minus)
    np.testing.assert_allclose(np.asarray(tr.pre), [np.exp(-9 * DT / rule.tau_plus)], rtol=0, atol=TOL)
    np.testing.assert_allclose(np.asarray(tr.post), [np.exp(-7 * DT / rule.tau_minus)], rtol=0, atol=TOL)
