"""The propagation kernel (kernels/cuda/propagation.cu) against the JAX event path.

Projections are built through the public networks API (:func:`qsn.networks.projection.build`), so the
ELL arrays, padding and delays are the ones a Network uses. The host emulation (g++) runs on any
machine with a C++ compiler; the same comparisons run on CuPy where a CUDA GPU is present.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsn
from qsn.errors import ConfigurationError
from qsn.kernels import propagation
from qsn.kernels.compile import host_compiler
from qsn.kernels.runner import CupyRunner, HostRunner, Runner
from qsn.networks import (
    Delta,
    NeuronGroup,
    Projection,
    explicit,
    fixed_indegree,
    fixed_probability,
    fixed_total_number,
    uniform,
)
from qsn.networks import projection as jax_projection

DT = 0.1  # ms
PARAMS = qsn.NeuronParams(delta=0.0, dt=DT)
N_PRE, N_POST = 48, 160
TOL = {"rtol": 1e-5, "atol": 1e-5}  # float32 sums in another order
DELAYS = uniform(0.0, 0.65)  # ms: 0..6 steps


NO_CXX = pytest.mark.skipif(host_compiler() is None, reason="host emulation needs a C++ compiler (g++ or $CXX)")


@pytest.fixture(params=[
    pytest.param("host", marks=NO_CXX),
    pytest.param("cupy", marks=pytest.mark.gpu),
])
def runner(request) -> Runner:
    if request.param == "cupy":
        pytest.importorskip("cupy")
        return CupyRunner()
    return HostRunner()


def _build(rule, *, delay=DELAYS, propagation: str = "event", n_pre: int = N_PRE, n_post: int = N_POST,
           pre_view: slice | None = None, recurrent: bool = False, autapses: bool = True):
    """A projection onto receptor "inh" (index 1 of 2: the receptor offset is exercised), optionally
    from a view of the source group (as Brunel's exc/inh projections) or within one group."""
    post = NeuronGroup(n_post, PARAMS, receptors={"exc": Delta(), "inh": Delta()}, name="post")
    pre = post if recurrent else NeuronGroup(n_pre, PARAMS, receptors={"exc": Delta()}, name="pre")
    source = pre if pre_view is None else pre[pre_view]
    proj = Projection(source, post, rule, weight=uniform(-1.0, 1.0), delay=delay, receptor="inh",
                      propagation=propagation, allow_autapses=autapses, name="proj")
    spec, arrays, weights, m = jax_projection.build(proj, jax.random.key(7), DT, jnp.float32, 1)
    return spec, arrays, weights, m


def _reference(spec, arrays, weights, spikes, ring, t):
    # capacity for every row, so the JAX path drops no spike (Network.run guarantees the same)
    return spec._replace(block=spec.n_pre).deliver(arrays, weights, jnp.asarray(spikes), ring, jnp.asarray(t, jnp.int32))


def _ring(spec, arrays, rng, extra_depth: int = 0) -> jax.Array:
    depth = int(jnp.max(arrays.delays)) + 1 + extra_depth  # as Network.build: longest delay + 1
    return jnp.asarray(rng.uniform(-1.0, 1.0, (2, depth, spec.n_post)), jnp.float32)


def _run_steps(runner, spec, arrays, weights, ring, rng, steps, fraction):
    """Deliver random spike masks for ``steps`` steps through both paths; compare the whole ring each step."""
    ours = ref = ring
    for t in range(steps):
        spikes = jnp.asarray(rng.random(spec.n_pre) < fraction)
        ours = propagation.deliver(runner, spec, arrays, weights, spikes, ours, t)
        ref = _reference(spec, arrays, weights, spikes, ref, t)
        assert ours.shape == ref.shape and ours.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), **TOL, err_msg=f"step {t}")
    return ours


@pytest.mark.parametrize("extra_depth", [0, 3])
def test_matches_jax_event_path(runner, extra_depth):
    spec, arrays, weights, m = _build(fixed_probability(0.45))
    targets, delays = np.asarray(arrays.targets), np.asarray(arrays.delays)
    assert spec.path == "event" and m > 0
    assert targets.shape[1] > 2 * propagation.WARP, "rows longer than two passes of a warp"
    assert np.any(targets[: spec.n_pre] == spec.n_post), "rows of unequal length: some padding entries"
    assert len(np.unique(delays[targets < spec.n_post])) >= 4, "several delays"
    rng = np.random.default_rng(1)
    ring = _ring(spec, arrays, rng, extra_depth)
    # more steps than ring slots: the slot (t + 1 + d) % D wraps around, twice
    final = _run_steps(runner, spec, arrays, weights, ring, rng, steps=2 * ring.shape[1] + 3, fraction=0.3)
    assert not np.array_equal(np.asarray(final), np.asarray(ring))
    np.testing.assert_array_equal(np.asarray(final)[0], np.asarray(ring)[0])  # other receptor untouched


def test_projection_from_view(runner):
    # rows of the group's neurons outside the view are all padding; within-group, without autapses
    spec, arrays, weights, _ = _build(fixed_probability(0.3), pre_view=slice(30, None), recurrent=True, autapses=False)
    assert spec.n_pre == N_POST and (np.asarray(arrays.targets)[:30] == spec.n_post).all()
    rng = np.random.default_rng(5)
    _run_steps(runner, spec, arrays, weights, _ring(spec, arrays, rng), rng, steps=9, fraction=0.4)


@pytest.mark.parametrize("case", ["probability", "indegree_view", "total", "explicit_unsorted"])
def test_rows_are_left_packed(case):
    # the kernel stops at a row's first padding entry: every ELL row must hold its synapses first
    rule = {
        "probability": fixed_probability(0.3),
        "indegree_view": fixed_indegree(7),
        "total": fixed_total_number(500),
        "explicit_unsorted": explicit(np.array([5, 1, 5, 0, 1, 5]), np.array([2, 9, 0, 4, 9, 2])),
    }[case]
    spec, arrays, _, m = _build(rule, pre_view=slice(None, None, -1) if case == "indegree_view" else None)
    real = np.asarray(arrays.targets) < spec.n_post
    counts = real.sum(axis=1)
    assert counts.sum() == m
    np.testing.assert_array_equal(real, np.arange(real.shape[1]) < counts[:, None])


def test_multapses(runner):
    # many synapses onto few targets: multapses within a row and from many rows onto one entry
    spec, arrays, weights, _ = _build(fixed_total_number(600), n_post=5)
    tg = np.asarray(arrays.targets)[: spec.n_pre]
    assert any(np.any(np.bincount(row[row < spec.n_post]) > 1) for row in tg), "multapses in one row"
    rng = np.random.default_rng(2)
    _run_steps(runner, spec, arrays, weights, _ring(spec, arrays, rng), rng, steps=9, fraction=0.5)


def test_same_synapse_repeated(runner):
    # three identical synapses 0 -> 3 with one delay: three adds into the same ring entry per spike
    pre, post = np.array([0, 0, 0, 1, 2, 2]), np.array([3, 3, 3, 3, 4, 3])
    spec, arrays, weights, _ = _build(explicit(pre, post), delay=0.2, n_pre=3, n_post=6)
    ring = jnp.zeros((2, 3, 6), jnp.float32)
    spikes = jnp.asarray([True, False, True])
    out = np.asarray(propagation.deliver(runner, spec, arrays, weights, spikes, ring, 4))
    w = np.asarray(weights)
    expect = np.zeros((2, 3, 6), np.float32)
    expect[1, (4 + 1 + 2) % 3, 3] = w[0, :3].sum() + w[2][np.asarray(arrays.targets)[2] == 3].sum()
    expect[1, (4 + 1 + 2) % 3, 4] = w[2][np.asarray(arrays.targets)[2] == 4].sum()
    np.testing.assert_allclose(out, expect, **TOL)


def test_padding_is_dropped(runner):
    spec, arrays, weights, _ = _build(fixed_probability(0.2))
    targets = np.asarray(arrays.targets)
    pad = targets == spec.n_post
    assert pad[: spec.n_pre].any() and pad[spec.n_pre].all()
    # poison the padding: an add of a padding entry would land in the next slot (or past the buffer)
    poisoned = jnp.asarray(np.where(pad, np.float32(np.nan), np.asarray(weights)))
    rng = np.random.default_rng(3)
    ring = _ring(spec, arrays, rng)
    spikes = jnp.ones((spec.n_pre,), bool)
    ours = np.asarray(propagation.deliver(runner, spec, arrays, poisoned, spikes, ring, 5))
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, np.asarray(_reference(spec, arrays, weights, spikes, ring, 5)), **TOL)
    # the padding row n_pre (the JAX path's fill value for unused capacity) adds nothing either
    xp = runner.xp
    out = xp.array(runner.from_jax(ring), copy=True)
    rows = xp.asarray(np.array([spec.n_pre, spec.n_pre], np.int32))
    propagation.propagate(runner, spec, runner.from_jax(arrays.targets), runner.from_jax(poisoned),
                          runner.from_jax(arrays.delays), rows, out, 5)
    np.testing.assert_array_equal(runner.to_host(out), np.asarray(ring))


def test_no_spikes_leaves_ring_unchanged(runner):
    spec, arrays, weights, _ = _build(fixed_probability(0.3))
    ring = _ring(spec, arrays, np.random.default_rng(4))
    out = propagation.deliver(runner, spec, arrays, weights, jnp.zeros((spec.n_pre,), bool), ring, 3)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ring))


def test_dense_path_is_refused(runner):
    spec, arrays, weights, _ = _build(fixed_probability(0.5), propagation="dense")
    ring = jnp.zeros((2, max(spec.delays) + 1, spec.n_post), jnp.float32)
    with pytest.raises(ConfigurationError, match=r"projection 'proj' uses the 'dense' path"):
        propagation.deliver(runner, spec, arrays, weights, jnp.ones((spec.n_pre,), bool), ring, 0)


def test_float64_is_refused(runner):
    spec, arrays, weights, _ = _build(fixed_probability(0.3))
    ring = jnp.zeros((2, int(jnp.max(arrays.delays)) + 1, spec.n_post), jnp.float64)
    with pytest.raises(ConfigurationError, match=r"ring buffer of dtype float64"):
        propagation.deliver(runner, spec, arrays, weights, jnp.ones((spec.n_pre,), bool), ring, 0)
