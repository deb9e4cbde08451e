"""Property tests (hypothesis) of the step and its observables: validity of the quantum state,
entropy monotonicity under unital dynamics, refractoriness, and consistency of the observables.

Compilation: ``qsn.simulate`` compiles once per shape and static configuration (which stochastic
parts are on; in mixed mode the propagator plan, set by the largest ``||A dt||`` of the population).
To compile a handful of times in all, every example uses the same population size, step count and
field shapes, only values vary, and each population carries fixed *anchor* neurons: one whose
``(delta, |I|)`` dominates ``||A dt||`` (so the plan, sized by ``simulate``'s bound on the drive
from ``|I| <= 30``, is the same in nearly every example) and, where stochastic parts are wanted, one with finite ``t1``/``t2`` and
``jump_rate > 0`` (so every stochastic part is compiled in).

Tolerances (float64): trace, hermiticity 1e-12; eigenvalues >= -1e-12; pure-state norm 1e-12;
entropy steps >= -1e-12; observables vs NumPy from the recorded density matrix 1e-12 (entropy 1e-10).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qsn

N_RANDOM = 6  # neurons with drawn parameters
STEPS = 40
DT = 0.1
I_MAX = 30.0  # |current| bound of every quantum test (an anchor neuron takes exactly this value)
V_REST, V_TH = -70.0, -55.0

# Scan unroll 1: the default (8) compiles ~10x slower for the same step; the refractoriness test
# keeps the default path.
UNROLL = 1

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite_or_inf = lambda lo, hi: st.one_of(st.just(math.inf), st.floats(lo, hi))  # noqa: E731


@st.composite
def neuron(draw, *, stochastic: bool = True):
    """``(delta, t1, t2, jump_rate)`` of one neuron, with ``t2 <= 2 t1``."""
    delta = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
    if not stochastic:
        return delta, math.inf, math.inf, 0.0
    t1 = draw(finite_or_inf(1.0, 100.0))
    t2 = draw(finite_or_inf(1.0, min(100.0, 2.0 * t1)) if math.isinf(t1) else st.floats(1.0, min(100.0, 2.0 * t1)))
    jump = draw(st.one_of(st.just(0.0), st.floats(0.0, 2.0)))
    return delta, t1, t2, jump


def bloch_points(rng: np.random.Generator, n: int, *, pure: bool) -> np.ndarray:
    """``(3, n)`` random Bloch vectors: on the sphere (pure) or in the ball (mixed, some on the surface)."""
    r = rng.normal(size=(3, n))
    r /= np.linalg.norm(r, axis=0)
    if not pure:
        r *= np.where(rng.random(n) < 0.25, 1.0, rng.random(n) ** (1 / 3))
    return r


def currents(rng: np.random.Generator, scale: float, lo: float, hi: float, steps: int, n: int) -> np.ndarray:
    """``(steps, n)`` currents: ``scale * N(0, 1)`` around a random per-neuron offset, clipped to ``[lo, hi]``."""
    offset = rng.uniform(lo, hi, size=(1, n))
    return np.clip(offset + scale * rng.normal(size=(steps, n)), lo, hi)


def entropy_bits(rho: np.ndarray) -> np.ndarray:
    """Von Neumann entropy (bits) from eigenvalues, NumPy reference."""
    lam = np.clip(np.linalg.eigvalsh(rho), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(lam > 0, -lam * np.log2(lam), 0.0)
    return terms.sum(axis=-1)


QUANTUM_RECORD = ("rho", "p1", "coherence", "entropy")


def _random_run(data, mode: str, stochastic: bool):
    """Simulate a random population (6 drawn neurons + 2 anchors) for ``STEPS`` steps, recording every step.

    Anchor 6: ``delta = 2``, closed system, current ``+30`` every step (it spikes): it dominates the
    generator norm and fixes ``max|I| = 30``. Anchor 7 (stochastic runs): ``t1 = 10``, ``t2 = 5``,
    ``jump_rate = 1``, ``delta = 0.5``.
    """
    cells = data.draw(st.lists(neuron(stochastic=stochastic), min_size=N_RANDOM, max_size=N_RANDOM))
    anchors = [(2.0, math.inf, math.inf, 0.0), (0.5, 10.0, 5.0, 1.0) if stochastic else (0.5, math.inf, math.inf, 0.0)]
    delta, t1, t2, jump = (np.array(c) for c in zip(*(cells + anchors)))
    n = delta.size
    seed = data.draw(st.integers(0, 2**32 - 1))
    scale = data.draw(st.sampled_from([0.0, 1.0, 10.0]))
    rng = np.random.default_rng(seed)
    cur = currents(rng, scale, -I_MAX, I_MAX, STEPS, n)
    cur[:, 6] = I_MAX
    params = qsn.NeuronParams(delta=delta, t1=t1, t2=t2, jump_rate=jump, t_ref=np.full(n, 0.5), dt=DT)
    state = qsn.init_state(params, n, mode=mode, dtype=jnp.float64, bloch0=bloch_points(rng, n, pure=mode == "pure"))
    key = jax.random.key(seed)
    res = qsn.simulate(params, state, cur, key=key, record=QUANTUM_RECORD, unroll=UNROLL)
    return params, state, res


@pytest.mark.parametrize("mode", ["pure", "mixed"])
@SETTINGS
@given(data=st.data())
def test_density_matrices_are_valid(mode, data):
    """After every step, both modes, random parameters (with every stochastic part) and currents:
    ``tr rho = 1`` (1e-12), ``rho = rho^+`` (1e-12), eigenvalues >= -1e-12, and the pure mode stays pure."""
    _, _, res = _random_run(data, mode, stochastic=True)
    rho = res.rho  # (STEPS, n, 2, 2)
    assert rho.shape == (STEPS, N_RANDOM + 2, 2, 2)
    np.testing.assert_allclose(np.trace(rho, axis1=-2, axis2=-1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rho, np.conj(np.swapaxes(rho, -1, -2)), rtol=0, atol=1e-12)
    assert np.linalg.eigvalsh(rho).min() >= -1e-12
    if mode == "pure":
        np.testing.assert_allclose(np.linalg.eigvalsh(rho)[..., 1], 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("stochastic", [False, True], ids=["closed", "stochastic"])
@SETTINGS
@given(data=st.data())
def test_pure_state_norm_is_one(stochastic, data):
    """Pure mode: ``|psi|^2 = 1`` (1e-12) after every step, with and without phase kicks, relaxation
    and jumps. Per step via ``|r|^2 = (|psi0|^2 + |psi1|^2)^2`` from the recorded rho, and on the
    final state's amplitudes directly."""
    _, _, res = _random_run(data, "pure", stochastic=stochastic)
    rho = res.rho
    r2 = 4.0 * np.abs(rho[..., 0, 1]) ** 2 + np.real(rho[..., 0, 0] - rho[..., 1, 1]) ** 2
    np.testing.assert_allclose(r2, 1.0, rtol=0, atol=1e-12)
    psi = np.asarray(res.state.psi)
    np.testing.assert_allclose(np.sum(np.abs(psi) ** 2, axis=-1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["pure", "mixed"])
@SETTINGS
@given(data=st.data())
def test_observables_are_consistent(mode, data):
    """Recorded and state observables vs NumPy from the density matrix: ``p1 = rho11``,
    ``coherence = |rho01|``, ``purity = tr rho^2 = (1 + |r|^2)/2`` (1e-12), ``entropy`` = eigenvalue
    entropy (1e-10) and within [0, 1] bits; Bloch vector and density matrix agree."""
    _, _, res = _random_run(data, mode, stochastic=True)
    rho = res.rho
    np.testing.assert_allclose(res.p1, rho[..., 1, 1].real, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.coherence, np.abs(rho[..., 0, 1]), rtol=0, atol=1e-12)
    ent = res.entropy
    assert ent.min() >= 0.0 and ent.max() <= 1.0
    np.testing.assert_allclose(ent, entropy_bits(rho), rtol=0, atol=1e-10)

    s = res.state
    dm = np.asarray(qsn.density_matrix(s))
    np.testing.assert_allclose(dm, rho[-1], rtol=0, atol=1e-14)  # recorded in the compiled scan: ulps apart
    r = np.asarray(qsn.bloch_vector(s))
    sx, sy, sz = (np.array(m, complex) for m in ([[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]))
    expect_r = np.stack([np.trace(dm @ m, axis1=-2, axis2=-1).real for m in (sx, sy, sz)], axis=-1)
    np.testing.assert_allclose(r, expect_r, rtol=0, atol=1e-12)
    purity = np.asarray(qsn.purity(s))
    np.testing.assert_allclose(purity, np.trace(dm @ dm, axis1=-2, axis2=-1).real, rtol=0, atol=1e-12)
    np.testing.assert_allclose(purity, (1.0 + np.sum(r * r, axis=-1)) / 2.0, rtol=0, atol=1e-12)
    assert purity.min() >= 0.5 - 1e-12 and purity.max() <= 1.0 + 1e-12
    np.testing.assert_allclose(np.asarray(qsn.p_excited(s)), dm[:, 1, 1].real, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(qsn.coherence(s)), np.abs(dm[:, 0, 1]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(qsn.entropy(s)), entropy_bits(dm), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Entropy under unital dynamics (mixed mode, t1 = inf, no jumps, no spikes).
# ---------------------------------------------------------------------------------------------


def _unital_run(data, *, dephasing_only: bool):
    """Mixed mode, ``t1 = inf``, ``jump_rate = 0``, currents in ``[-30, 14.9]`` (``r_m I < v_th - v_rest``,
    so V stays below threshold: no spike resets), random initial Bloch vectors in the ball.

    ``dephasing_only``: ``delta = 0`` everywhere (H diagonal, commutes with the dephasing). Anchor 6
    (current -30) fixes the propagator plan: ``t2 = 0.5`` (dephasing-only) or ``delta = 2`` (unital).
    """
    n = N_RANDOM + 2
    t2 = np.array(data.draw(st.lists(finite_or_inf(1.0, 100.0), min_size=n, max_size=n)))
    if dephasing_only:
        delta = np.zeros(n)
        t2[6] = 0.5
    else:
        delta = np.array(data.draw(st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n)))
        delta[6], t2[6] = 2.0, math.inf
    seed = data.draw(st.integers(0, 2**32 - 1))
    scale = data.draw(st.sampled_from([0.0, 1.0, 10.0]))
    rng = np.random.default_rng(seed)
    cur = currents(rng, scale, -I_MAX, 14.9, STEPS, n)
    cur[:, 6] = -I_MAX
    params = qsn.NeuronParams(delta=delta, t2=t2, t1=math.inf, jump_rate=0.0, dt=DT)
    state = qsn.init_state(params, n, mode="mixed", dtype=jnp.float64, bloch0=bloch_points(rng, n, pure=False))
    res = qsn.simulate(params, state, cur, record=("entropy", "coherence", "p1"), unroll=UNROLL)
    assert res.spike_count.sum() == 0
    s0 = np.asarray(qsn.entropy(state))[None]
    return t2, state, res, np.concatenate([s0, res.entropy])


@SETTINGS
@given(data=st.data())
def test_entropy_never_decreases_under_pure_dephasing(data):
    """delta = 0, t1 = inf, finite or infinite t2: entropy(t+1) >= entropy(t) - 1e-12 every step.

    References (1e-12): ``p1`` is constant and ``|rho01(t)| = |rho01(0)| exp(-(t+1) dt/t2)``; entropy
    strictly grows (> 1e-12 in total) where ``t2`` is finite and the initial coherence is > 0.01.
    """
    t2, state, res, ent = _unital_run(data, dephasing_only=True)
    assert np.diff(ent, axis=0).min() >= -1e-12
    p1_0 = np.asarray(qsn.p_excited(state))
    coh_0 = np.asarray(qsn.coherence(state))
    np.testing.assert_allclose(res.p1, np.broadcast_to(p1_0, res.p1.shape), rtol=0, atol=1e-12)
    t = (np.arange(STEPS)[:, None] + 1) * DT
    np.testing.assert_allclose(res.coherence, coh_0 * np.exp(-t / t2), rtol=0, atol=1e-12)
    grows = np.isfinite(t2) & (coh_0 > 0.01)
    assert np.all(ent[-1, grows] - ent[0, grows] > 1e-12)


@SETTINGS
@given(data=st.data())
def test_entropy_never_decreases_under_unital_channel(data):
    """delta > 0, t1 = inf (the Lindblad channel is unital): entropy(t+1) >= entropy(t) - 1e-12.

    Closed neurons (t2 = inf) keep their entropy (|r| conserved) to 1e-10; those with finite t2
    and a Bloch vector of length > 0.05 gain entropy over the run.
    """
    t2, state, res, ent = _unital_run(data, dephasing_only=False)
    assert np.diff(ent, axis=0).min() >= -1e-12
    closed = np.isinf(t2)
    np.testing.assert_allclose(ent[:, closed] - ent[0, closed], 0.0, rtol=0, atol=1e-10)
    length = np.linalg.norm(np.asarray(qsn.bloch_vector(state)), axis=-1)
    grows = ~closed & (length > 0.05)
    assert np.all(ent[-1, grows] > ent[0, grows])


# ---------------------------------------------------------------------------------------------
# Refractoriness.
# ---------------------------------------------------------------------------------------------

REF_STEPS = 60


def membrane_reference(cur: np.ndarray, t_ref: np.ndarray, dt: float, tau_m: float = 20.0):
    """NumPy reference of DESIGN §1 steps 1, 2, 5, 6 (no jumps): ``(spikes, v)``, each ``(T, n)``."""
    n_ref = np.array([math.ceil(round(float(x) / dt, 9)) for x in t_ref])
    decay = math.exp(-dt / tau_m)
    v = np.full(cur.shape[1], V_REST)
    last = np.full(cur.shape[1], -(10**9))  # step of the last spike
    spikes, vs = np.zeros(cur.shape, bool), np.zeros(cur.shape)
    for t in range(cur.shape[0]):
        refractory = t <= last + n_ref - 1  # steps last+1 .. last+n_ref-1
        v = np.where(refractory, V_REST, V_REST + (v - V_REST) * decay + cur[t] * (1.0 - decay))
        spk = ~refractory & (v >= V_TH)
        v = np.where(spk, V_REST, v)
        last = np.where(spk, t, last)
        spikes[t], vs[t] = spk, v
    return spikes, vs, n_ref


@st.composite
def refractory_case(draw):
    n = 8
    dt = draw(st.sampled_from([0.05, 0.1, 0.25, 0.3, 0.5]))
    t_ref = [
        draw(st.one_of(st.floats(0.0, 5.0), st.integers(0, 12).map(lambda k: k * dt), st.just(0.0))) for _ in range(n)
    ]
    scale = draw(st.sampled_from(["mixed", "huge"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return dt, np.array(t_ref), scale, seed


@SETTINGS
@given(case=refractory_case())
def test_no_threshold_spike_during_refractoriness(case):
    """Pure closed mode, random ``dt``, per-neuron ``t_ref`` (including exact multiples of dt and 0)
    and currents (up to 1e7, i.e. V far above threshold after one step).

    With ``n_ref = ceil(round(t_ref/dt, 9))``: consecutive spikes of a neuron are >= max(n_ref, 1)
    steps apart, and exactly that far apart when the current is huge throughout; V == v_rest
    (exactly) from the spike step through the n_ref - 1 refractory steps after it; and the spike
    raster and V equal the NumPy reference (V to 1e-9 mV + 1e-12 relative).
    """
    dt, t_ref, scale, seed = case
    n = t_ref.size
    rng = np.random.default_rng(seed)
    if scale == "huge":
        cur = rng.uniform(1e5, 1e7, size=(REF_STEPS, n))
    else:
        cur = np.where(rng.random((REF_STEPS, n)) < 0.2, rng.uniform(1e3, 1e7, (REF_STEPS, n)),
                       rng.uniform(-50.0, 400.0, (REF_STEPS, n)))
    params = qsn.NeuronParams(t_ref=t_ref, dt=dt, delta=0.3)
    state = qsn.init_state(params, n, mode="pure", dtype=jnp.float64)
    res = qsn.simulate(params, state, cur, record=("spikes", "v"))
    spikes, v = res.spikes, res.v
    ref_spikes, ref_v, n_ref = membrane_reference(cur, t_ref, dt)
    np.testing.assert_array_equal(n_ref, np.asarray(params.refractory_steps))
    np.testing.assert_array_equal(spikes, ref_spikes)
    np.testing.assert_allclose(v, ref_v, rtol=1e-12, atol=1e-9)
    for i in range(n):
        steps = np.flatnonzero(spikes[:, i])
        gap = max(int(n_ref[i]), 1)
        assert steps.size > 0
        assert np.all(np.diff(steps) >= gap)
        if scale == "huge":
            assert steps[0] == 0 and np.all(np.diff(steps) == gap)
            assert steps.size == math.ceil(REF_STEPS / gap)
        for s in steps:
            assert np.all(v[s : s + gap, i] == V_REST)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tau_m=st.floats(1.0, 50.0),
    dt=st.sampled_from([0.05, 0.1, 0.5, 1.0]),
    t_ref=st.sampled_from([0.0, 0.1, 2.0]),
    r_m=st.floats(-3.0, 3.0),
    v0=st.floats(-120.0, -20.0),
    low=st.floats(-200.0, 200.0),
    width=st.floats(0.0, 400.0),
    seed=st.integers(0, 2**16),
    v_reset=st.floats(-150.0, -55.5),
)
def test_drive_bound_is_rigorous(tau_m, dt, t_ref, r_m, v0, low, width, seed, v_reset):
    """Every drive ``a`` the qubit sees stays within ``simulate``'s bound (which sizes the mixed-mode
    propagator plan), for currents of any sign, initial potentials above threshold, any r_m and
    reset potentials far below rest."""
    from qsn.current import as_current
    from qsn.stepper import Stepper, drive_bound

    p = qsn.NeuronParams(tau_m=max(tau_m, dt), dt=dt, t_ref=t_ref, r_m=r_m, delta=0.2, v_reset=v_reset)
    n, steps = 8, 300
    s = qsn.init_state(p, n, mode="pure", dtype=jnp.float64, v0=np.linspace(v0, V_REST, n))
    rows = np.random.default_rng(seed).uniform(low, low + width, (steps, n))
    rows[::7] = low + width  # the extremes occur, in runs
    rows[3::7] = low
    bound = drive_bound(p, s, as_current(rows, n, jnp.float64))
    seen = _max_drive(Stepper.build(p, "pure", jnp.float64), s, jnp.asarray(rows))
    assert float(seen) <= bound


@jax.jit
def _max_drive(stepper, state, rows):
    """Largest ``|a|`` over a run (one compilation for every example: only values change)."""

    def body(st_, row):
        st_, _, a = stepper(st_, row, None)
        return st_, jnp.max(jnp.abs(a))

    return jnp.max(jax.lax.scan(body, state, rows)[1])
