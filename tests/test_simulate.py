"""Behaviour of qsn.simulate: reproducibility, transformations (vmap/jit), chunking, recording semantics.

Compile time dominates this file, so runs share compiled chunks where they can (same mode, record
names, step count, current kind and, in mixed mode, the same propagator plan) and use ``unroll=1``:
nothing checked here depends on the scan unroll factor, and the default (8 for pure mode on CPU)
multiplies compile time several-fold. Tolerances are stated per test; "bitwise" means
``np.array_equal``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

import qsn
from qsn.errors import RecordingError

P = qsn.NeuronParams
N = 6
STEPS = 100
NAMES = ("spikes", "v", "p1")
# stochastic: pure mode draws phase kicks (t2), relaxation jumps (t1) and spike jumps; mixed mode draws jumps
STOCH = dict(delta=0.3, t2=20.0, t1=40.0, jump_rate=0.2)
DET = dict(delta=0.3)
# I from 5 (subthreshold: only jump spikes) to 60 (threshold spike after 58 steps, then refractory)
I_SPIKING = np.linspace(5.0, 60.0, N)
I_SUB = np.linspace(2.0, 12.0, N)  # subthreshold (a <= 0.8): every spike is a quantum jump
REC = ("spikes", "events", "v", "p1", "rho")
KEY = jax.random.key(1234)


def run(params, mode, current=I_SPIKING, *, dtype=jnp.float64, steps=STEPS, record=NAMES, **kw):
    s = qsn.init_state(params, N, mode=mode, dtype=dtype)
    return qsn.simulate(params, s, current, steps=steps, record=record, unroll=1, **kw)


def assert_states_equal(a, b):
    assert type(a) is type(b)
    for name, x, y in zip(a._fields, a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f"state field {name}")


def assert_results_equal(a, b, names=REC):
    """Bitwise equality of the final state, spike counts, events and every recorded quantity."""
    assert_states_equal(a.state, b.state)
    np.testing.assert_array_equal(a.spike_count, b.spike_count)
    for name in names:
        if name == "events":
            np.testing.assert_array_equal(a.events.step, b.events.step)
            np.testing.assert_array_equal(a.events.neuron, b.events.neuron)
        else:
            np.testing.assert_array_equal(a.records[name], b.records[name], err_msg=name)


@functools.cache
def stochastic_run(mode, key_seed=1234, chunk_steps=None):
    """One reference stochastic run per (mode, key, chunking), shared by several tests."""
    return run(P(**STOCH), mode, record=REC, key=jax.random.key(key_seed), chunk_steps=chunk_steps)


@functools.cache
def det_run(mode):
    """Deterministic reference: delta = 0.3, I_SPIKING, NAMES, 100 steps."""
    return run(P(**DET), mode)


# --------------------------------------------------------------------------------------------------
# Reproducibility
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_same_key_is_bit_identical(mode):
    a = stochastic_run(mode)
    b = run(P(**STOCH), mode, record=REC, key=jax.random.key(1234))  # fresh key object, fresh state
    assert_results_equal(a, b)
    assert a.spike_count.sum() >= 3  # not vacuous: jumps and threshold spikes happened


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_different_keys_differ(mode):
    a, b = stochastic_run(mode), stochastic_run(mode, key_seed=99)
    assert not np.array_equal(a.spikes, b.spikes)
    assert not np.array_equal(a.p1, b.p1)


# --------------------------------------------------------------------------------------------------
# vmap / jit
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, field, values",
    [
        ("pure", "delta", np.linspace(0.05, 0.5, 8)),
        # Mixed mode varies tau_m: with concrete params, every distinct delta (or t1, t2, max|I|)
        # changes the propagator plan, a static argument, so the 8-run loop would compile 8 times.
        ("mixed", "tau_m", np.linspace(5.0, 40.0, 8)),
    ],
)
@pytest.mark.parametrize("stochastic", [False, True], ids=["deterministic", "stochastic"])
def test_vmap_over_params_equals_loop(mode, field, values, stochastic):
    """vmap over 8 parameter sets == 8 separate runs with the same key.

    Inside vmap the params are traced, so every stochastic part is compiled in (a key is required):
    with t2 = t1 = inf and jump_rate = 0 they are identities up to rounding (renormalising by
    exp(0) = 1, constants computed on the device instead of the host, the mixed-mode series plan for
    the generic bound), hence atol 1e-12 in float64 rather than bitwise. With jumps the random draws
    are the same (fold_in(key, t)), so the spike trains must be identical (observed: pure mode is
    even bitwise equal; mixed mode differs by ~1e-15 through the generic plan).
    """
    kw = dict(STOCH if stochastic else DET)
    kw.pop(field, None)
    key = jax.random.key(7)

    def one(x):
        r = run(P(**{field: x}, **kw), mode, I_SUB, key=key)
        return r.records, r.spike_count, r.state

    recs, counts, states = jax.vmap(one)(jnp.asarray(values))
    loop = [one(float(x)) for x in values]
    assert np.asarray(recs["p1"]).shape == (8, STEPS, N)
    for name in NAMES:
        expected = np.stack([r[0][name] for r in loop])
        if name == "spikes":
            np.testing.assert_array_equal(np.asarray(recs[name]), expected)
        else:
            np.testing.assert_allclose(np.asarray(recs[name]), expected, rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(np.asarray(counts), np.stack([r[1] for r in loop]))
    np.testing.assert_allclose(np.asarray(states.v), np.stack([r[2].v for r in loop]), rtol=0, atol=1e-12)
    n_spikes = sum(int(r[1].sum()) for r in loop)
    assert n_spikes >= 5 if stochastic else n_spikes == 0  # subthreshold: all spikes are jumps
    # the batch members really differ
    p1_loop = np.stack([r[0]["p1"] for r in loop])
    assert np.abs(p1_loop[0] - p1_loop[-1]).max() > 1e-3


def test_vmap_over_delta_mixed_mode():
    """Mixed mode, vmap over 8 deltas with jumps; members 0 and 7 checked against separate runs
    (each separate run compiles anew, see above). Same draws: spikes exact; p1 to 1e-12."""
    kw = dict(STOCH)
    kw.pop("delta")
    key = jax.random.key(11)
    deltas = np.linspace(0.05, 0.5, 8)

    def one(d):
        r = run(P(delta=d, **kw), "mixed", I_SUB, key=key)
        return r.records

    recs = jax.vmap(one)(jnp.asarray(deltas))
    for i in (0, 7):
        single = one(float(deltas[i]))
        np.testing.assert_array_equal(np.asarray(recs["spikes"][i]), single["spikes"])
        np.testing.assert_allclose(np.asarray(recs["p1"][i]), single["p1"], rtol=0, atol=1e-12)
    assert np.asarray(recs["spikes"]).sum() >= 5


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_vmap_over_trial_keys_equals_loop(mode):
    p = P(**STOCH)
    keys = jax.random.split(jax.random.key(5), 4)

    def one(k):
        r = run(p, mode, I_SUB, key=k)
        return r.records, r.spike_count

    recs, counts = jax.vmap(one)(keys)
    loop = [one(k) for k in keys]
    for name in NAMES:  # bitwise: concrete params give the same compiled step as the loop
        np.testing.assert_array_equal(np.asarray(recs[name]), np.stack([r[0][name] for r in loop]), err_msg=name)
    np.testing.assert_array_equal(np.asarray(counts), np.stack([r[1] for r in loop]))
    spikes = np.stack([r[0]["spikes"] for r in loop])
    assert spikes.sum() >= 5
    assert len({spikes[i].tobytes() for i in range(4)}) == 4  # the trials differ


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_jit_equals_eager(mode):
    p = P(**DET)
    s = qsn.init_state(p, N, mode=mode, dtype=jnp.float64)
    eager = det_run(mode)
    jitted = jax.jit(lambda i: qsn.simulate(p, s, i, steps=STEPS, unroll=1).spike_count)(jnp.asarray(I_SPIKING))
    np.testing.assert_array_equal(np.asarray(jitted), eager.spike_count)
    assert eager.spike_count.sum() > 0


def test_result_is_a_pytree_under_jit():
    p = P(**DET)
    s = qsn.init_state(p, N, mode="pure", dtype=jnp.float64)
    eager = det_run("pure")
    out = jax.jit(lambda i: qsn.simulate(p, s, i, steps=STEPS, record=NAMES, unroll=1))(jnp.asarray(I_SPIKING))
    assert isinstance(out, qsn.SimulationResult)
    assert out.v.shape == (STEPS, N)
    np.testing.assert_array_equal(np.asarray(out.spikes), eager.spikes)
    np.testing.assert_array_equal(np.asarray(out.spike_count), eager.spike_count)
    np.testing.assert_allclose(np.asarray(out.v), eager.v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(out.p1), eager.p1, rtol=0, atol=1e-12)
    for name, x, y in zip(out.state._fields, out.state, eager.state):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-12, err_msg=name)
    with pytest.raises(RecordingError, match=r"`rho` was not recorded: pass record=\(\.\.\., 'rho'\)"):
        out.rho
    # flatten/unflatten round trip keeps the static metadata
    leaves, treedef = jax.tree_util.tree_flatten(eager)
    back = jax.tree_util.tree_unflatten(treedef, leaves)
    assert (back.steps, back.t0, back.dt, back.record_every, back.neurons) == (STEPS, 0, 0.1, 1, None)
    np.testing.assert_array_equal(back.v, eager.v)


def test_times_of_a_continued_run_under_jit():
    p = P(**DET)
    start = det_run("pure").state  # t = 100, concrete
    out = jax.jit(lambda i: qsn.simulate(p, start, i, steps=10, record=("v",), unroll=1))(jnp.asarray(I_SPIKING))
    np.testing.assert_allclose(out.times, (STEPS + np.arange(1, 11)) * 0.1, rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Chunking and continuation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["pure", "mixed"])
@pytest.mark.parametrize("chunk", [7, 50])
def test_chunking_is_bit_identical(mode, chunk):
    """chunk_steps=7 (14 chunks of 7, then one of 2), 50 and None: identical records, events, state."""
    assert_results_equal(stochastic_run(mode, chunk_steps=chunk), stochastic_run(mode))


def test_single_step_chunks_and_progress_bar(capfd):
    """chunk_steps=1 (also what progress=True uses for <= 100 steps) keeps state, V and spikes bitwise.

    Observed, not a physics error: a 1-step chunk compiles without a loop, XLA fuses the
    observables of the amplitudes differently, and recorded p1 may differ in the last ulp (1e-15).
    The progress bar goes to stderr.
    """
    ref = det_run("pure")
    a = run(P(**DET), "pure", chunk_steps=1)
    b = run(P(**DET), "pure", progress=True)
    err = capfd.readouterr().err
    assert f"qsn {N} neurons" in err and f"{STEPS}/{STEPS}" in err
    for r in (a, b):
        assert_states_equal(r.state, ref.state)
        np.testing.assert_array_equal(r.spikes, ref.spikes)
        np.testing.assert_array_equal(r.v, ref.v)
        np.testing.assert_allclose(r.p1, ref.p1, rtol=0, atol=1e-15)


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_run_split_in_two_is_bit_identical(mode):
    """50 + 50 steps continuing from r.state == 100 steps (keys are folded with the absolute state.t)."""
    full = stochastic_run(mode)
    a = run(P(**STOCH), mode, record=REC, key=KEY, steps=50)
    b = qsn.simulate(P(**STOCH), a.state, I_SPIKING, steps=50, key=KEY, record=REC, unroll=1)
    assert int(a.state.t) == 50 and int(b.state.t) == 100
    assert_states_equal(b.state, full.state)
    np.testing.assert_array_equal(a.spike_count + b.spike_count, full.spike_count)
    for name in REC:
        if name != "events":
            np.testing.assert_array_equal(np.concatenate([a.records[name], b.records[name]]), full.records[name])
    # events carry absolute step indices
    np.testing.assert_array_equal(np.concatenate([a.events.step, b.events.step]), full.events.step)
    np.testing.assert_array_equal(np.concatenate([a.events.neuron, b.events.neuron]), full.events.neuron)
    assert b.events.step.size > 0 and b.events.step.min() >= 50
    np.testing.assert_allclose(b.times, (50 + np.arange(1, 51)) * 0.1, rtol=1e-12)
    assert full.spike_count.sum() >= 3


def test_mixed_split_with_varying_current():
    """Mixed mode, a (T, n) current whose first half is 3x larger than the second.

    The Lindblad series plan is chosen from max|I| of each call, so the second half may use fewer
    Taylor terms than the single run: both are exact to ~eps, so they agree to 1e-13 (observed
    ~1e-16) but are not guaranteed bitwise. The random draws (jumps) are the same.
    """
    p = P(**STOCH)
    s = qsn.init_state(p, N, mode="mixed", dtype=jnp.float64)
    current = np.random.default_rng(0).uniform(10.0, 25.0, (STEPS, N))
    current[:50] *= 3.0
    full = qsn.simulate(p, s, current, key=KEY, record=NAMES, unroll=1)
    a = qsn.simulate(p, s, current[:50], key=KEY, record=NAMES, unroll=1)
    b = qsn.simulate(p, a.state, current[50:], key=KEY, record=NAMES, unroll=1)
    np.testing.assert_array_equal(np.concatenate([a.spikes, b.spikes]), full.spikes)
    np.testing.assert_array_equal(np.concatenate([a.v, b.v]), full.v)
    np.testing.assert_allclose(np.concatenate([a.p1, b.p1]), full.p1, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.asarray(b.state.x), np.asarray(full.state.x), rtol=0, atol=1e-13)
    assert full.spike_count.sum() > 0


# --------------------------------------------------------------------------------------------------
# Recording semantics
# --------------------------------------------------------------------------------------------------


def test_record_every_semantics():
    """k = 10 over 103 steps: 10 samples after steps 9, 19, ..., 99; spikes = any in the period;
    the trailing 3 steps run but are not sampled."""
    p = P(**DET)
    full = det_run("pure")  # k = 1 over the first 100 steps
    k, steps = 10, STEPS + 3
    r = run(p, "pure", steps=steps, record_every=k)
    n_samples = steps // k
    assert r.v.shape == (n_samples, N) and r.spikes.shape == (n_samples, N) and r.spikes.dtype == bool
    sampled = np.arange(1, n_samples + 1) * k - 1
    np.testing.assert_array_equal(r.v, full.v[sampled])
    np.testing.assert_allclose(r.p1, full.p1[sampled], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(r.spikes, full.spikes.reshape(n_samples, k, N).any(axis=1))
    assert r.spikes.any()
    np.testing.assert_allclose(r.times, np.arange(1, n_samples + 1) * k * 0.1, rtol=1e-12)
    np.testing.assert_allclose(full.times, np.arange(1, STEPS + 1) * 0.1, rtol=1e-12)
    # the trailing partial period ran: same as continuing the k = 1 run for 3 steps
    assert int(r.state.t) == steps
    tail = qsn.simulate(p, full.state, I_SPIKING, steps=3, unroll=1)
    assert_states_equal(r.state, tail.state)
    np.testing.assert_array_equal(r.spike_count, full.spike_count + tail.spike_count)


@pytest.mark.parametrize(
    "neurons, expected",
    [
        (slice(0, N, 2), [0, 2, 4]),
        (np.array([False, True, False, True, False, True]), [1, 3, 5]),
        ([5, 0, 2], [5, 0, 2]),
        ([-1, -6, 3], [5, 0, 3]),
    ],
    ids=["slice", "mask", "int-list", "negative"],
)
def test_neuron_subset_matches_full_recording(neurons, expected):
    full = det_run("pure")
    r = run(P(**DET), "pure", neurons=neurons)
    assert r.neurons == tuple(expected)
    assert r.v.shape == (STEPS, 3)
    np.testing.assert_array_equal(r.spikes, full.spikes[:, expected])
    np.testing.assert_array_equal(r.v, full.v[:, expected])
    np.testing.assert_allclose(r.p1, full.p1[:, expected], rtol=0, atol=1e-15)
    # spike counts and the state always cover the whole population
    np.testing.assert_array_equal(r.spike_count, full.spike_count)
    assert_states_equal(r.state, full.state)
    assert full.spikes[:, expected].any()


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_events_counts_and_raster_agree(mode):
    r = stochastic_run(mode)
    steps, neurons = np.nonzero(r.spikes)
    assert r.events.step.dtype == np.int64 and r.events.neuron.dtype == np.int64
    np.testing.assert_array_equal(r.events.step, steps)
    np.testing.assert_array_equal(r.events.neuron, neurons)
    np.testing.assert_array_equal(r.spike_count, r.spikes.sum(axis=0))
    np.testing.assert_allclose(r.events.times(0.1), (steps + 1) * 0.1)
    np.testing.assert_allclose(r.rates(), r.spike_count / (STEPS * 0.1e-3))
    assert r.spike_count.sum() > 0


def test_rates_in_hz_for_a_regular_spiker():
    """I = 30 from rest: V = 30 (1 - exp(-m dt/20)) reaches 15 mV after m = 139 updates (13.9 ms);
    n_ref = 20 steps (the spike step + 19 clamped), so spikes at steps 138, 296, ... (period 158).
    1000 steps = 100 ms hold 6 spikes: 60 Hz."""
    p = P()
    s = qsn.init_state(p, 3, dtype=jnp.float64)
    r = qsn.simulate(p, s, 30.0, steps=1000, record=("events",), unroll=1)
    np.testing.assert_array_equal(r.events.step, np.repeat(138 + 158 * np.arange(6), 3))
    np.testing.assert_array_equal(r.spike_count, [6, 6, 6])
    np.testing.assert_allclose(r.rates(), [60.0, 60.0, 60.0], rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Current forms, dtypes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_current_forms_agree(mode):
    """The same values as (n,), (T, n), a callable -> (n,); and 60 as a scalar vs (n,) vs callable -> ().

    Arrays: bitwise. Callables, pure mode: within 4 ulp (XLA compiles the norm correction's multiply
    apart by an ulp for a traced function). Mixed mode: a callable's range is unknown up front, so the propagator plan
    uses the default |a| bound instead of max|I| (more Taylor terms): equal to 1e-14 (both exact to eps).
    """
    p = P(**DET)
    table = jnp.asarray(I_SPIKING)
    groups = [
        {  # per-neuron values
            "vector": I_SPIKING,
            "array": np.tile(I_SPIKING, (STEPS, 1)),
            "fn": lambda t: table,
        },
        {  # one value for all
            "scalar": 60.0,
            "vector": np.full(N, 60.0),
            "fn-scalar": lambda t: jnp.asarray(60.0),
        },
    ]
    for forms in groups:
        res = {k: run(p, mode, c, record=("spikes", "v", "rho")) for k, c in forms.items()}
        ref = res["vector"]
        assert ref.spike_count.sum() > 0
        for k, r in res.items():
            np.testing.assert_array_equal(r.spikes, ref.spikes, err_msg=k)
            np.testing.assert_array_equal(r.v, ref.v, err_msg=k)
            if not k.startswith("fn"):
                np.testing.assert_array_equal(r.rho, ref.rho, err_msg=k)
                assert_states_equal(r.state, ref.state)
            elif mode == "pure":
                # the norm correction's extra multiply is compiled 1 ulp apart for a traced function
                np.testing.assert_allclose(r.rho, ref.rho, rtol=0, atol=4 * np.finfo(np.float64).eps, err_msg=k)
            else:
                np.testing.assert_allclose(r.rho, ref.rho, rtol=0, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_float32_close_to_float64(mode):
    """Subthreshold drive (a <= 0.8: no spikes, so no spike-timing flips), 100 steps.

    float32 accumulates ~1e-4 mV of rounding in V (v_rest = -70 is added and subtracted each step)
    and ~1e-5..1e-4 in p1 (phase error of a); tolerances 2e-3 mV and 1e-3 leave a wide margin.
    """
    p = P(**DET)
    r32 = run(p, mode, I_SUB.astype(np.float32), dtype=jnp.float32)
    r64 = run(p, mode, I_SUB)
    assert r32.v.dtype == np.float32 and r64.v.dtype == np.float64
    assert r32.state.v.dtype == jnp.float32 and r32.state.refractory.dtype == jnp.int32
    assert r32.spike_count.sum() == 0 == r64.spike_count.sum()
    np.testing.assert_allclose(r32.v, r64.v, rtol=0, atol=2e-3)
    np.testing.assert_allclose(r32.p1, r64.p1, rtol=0, atol=1e-3)
    assert r64.p1.max() > 0.05  # the qubits moved


# --------------------------------------------------------------------------------------------------
# Mixed mode beyond the default |a| bound: re-planning against an independent expm reference
# --------------------------------------------------------------------------------------------------


def _lindblad_reference(params, v0, bloch0, currents):
    """rho after each step from expm of the 4x4 Liouvillian (column-stacked vec), float64, no spikes.

    L rho = -i[H, rho] + D[L1] rho + D[Lphi] rho, H = a sz + delta sx, L1 = sqrt(1/t1)|0><1|,
    Lphi = sqrt(gphi/2) sz, gphi = 1/t2 - 1/(2 t1); vec(A X B) = (B^T kron A) vec(X).
    """
    v_rest, v_th, tau, r_m, dt = (float(getattr(params, f)) for f in ("v_rest", "v_th", "tau_m", "r_m", "dt"))
    delta, t1, t2 = float(params.delta), float(params.t1), float(params.t2)
    sx = np.array([[0, 1], [1, 0]], complex)
    sz = np.array([[1, 0], [0, -1]], complex)
    lower = np.array([[0, 1], [0, 0]], complex)  # |0><1|
    eye = np.eye(2)
    g1, g2 = 1 / t1, 1 / t2
    jump_ops = [np.sqrt(g1) * lower, np.sqrt((g2 - g1 / 2) / 2) * sz]

    def liouvillian(a):
        h = a * sz + delta * sx
        out = -1j * (np.kron(eye, h) - np.kron(h.T, eye))
        for op in jump_ops:
            ld = op.conj().T @ op
            out += np.kron(op.conj(), op) - 0.5 * np.kron(eye, ld) - 0.5 * np.kron(ld.T, eye)
        return out

    T, n = currents.shape
    decay = np.exp(-dt / tau)
    x, y, z = bloch0
    rho = np.tile(0.5 * np.array([[1 + z, x - 1j * y], [x + 1j * y, 1 - z]]), (n, 1, 1))
    v = np.full(n, v0, float)
    out = np.empty((T, n, 2, 2), complex)
    a_max = 0.0
    for t in range(T):
        v = v_rest + (v - v_rest) * decay + r_m * currents[t] * (1 - decay)
        assert np.all(v < v_th)  # no spikes: the reference has no reset
        for i in range(n):
            a = (v[i] - v_rest) / (v_th - v_rest)
            a_max = max(a_max, abs(a))
            vec = expm(liouvillian(a) * dt) @ rho[i].reshape(4, order="F")
            rho[i] = vec.reshape(2, 2, order="F")
        out[t] = rho
    return out, v, a_max


def test_mixed_mode_replans_for_strong_callable_drive():
    """A callable current drives a to about -10.6, beyond the default bound |a| <= 4 that simulate must
    assume for a callable (||A dt|| ~ 2.2 vs the plan's ~0.87): it must notice, re-plan and re-run the
    chunk. The callable and the (T, n) array (bounded up front) both match the expm reference to
    1e-12 (observed ~7e-15); the default plan kept for the whole run is off by ~8e-10 here, so the
    tolerance tells a re-planned run from one that was not re-planned.
    """
    p = P(delta=0.3, tau_m=2.0, t2=20.0, t1=30.0)
    n, T = 3, 100
    bloch0 = (1.0, 0.0, 0.0)
    s = qsn.init_state(p, n, mode="mixed", dtype=jnp.float64, bloch0=list(bloch0))
    t = np.arange(T)[:, None]
    currents = -150.0 * np.array([1.0, 0.5, 0.1]) * (1.0 + 0.3 * np.sin(0.07 * t))
    table = jnp.asarray(currents)
    ref, v_ref, a_max = _lindblad_reference(p, -70.0, bloch0, currents)
    assert a_max > 8.0  # far beyond DEFAULT_A_BOUND = 4
    as_fn = qsn.simulate(p, s, lambda i: table[i], steps=T, record=("rho",), unroll=1)
    as_array = qsn.simulate(p, s, currents, record=("rho",), unroll=1)
    for r in (as_fn, as_array):
        np.testing.assert_allclose(r.rho, ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.asarray(r.state.v), v_ref, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(qsn.density_matrix(r.state)), ref[-1], rtol=0, atol=1e-12)
    # not trivial: the coherence decayed / the Bloch vector precessed
    assert np.abs(ref[:, 0, 0, 1]).min() < 0.45
