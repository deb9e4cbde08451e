"""Physics against independent references (DESIGN §1), all in float64 unless a test says otherwise.

* the closed-form pure-mode unitary against ``scipy.linalg.expm(-1j H dt)`` (through ``qsn.step``);
* the polynomial ``sincos`` against NumPy, and the Bloch-form Lindblad series against ``expm`` of the
  affine generator derived from the Liouvillian;
* whole runs of one neuron against the NumPy loop of ``tests/reference_model.py`` (pure mode) and
  against QuTiP's Liouvillian (mixed mode), every step: V, spikes and rho;
* quantum-jump spiking against the same loop fed the documented per-step uniform draws.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import qutip
import scipy.linalg

import qsn
from qsn.lindblad import generator_norm, propagate_bloch, series_plan
from qsn.sincos import sincos

try:  # pytest's default "prepend" import mode puts tests/ on sys.path
    from reference_model import SX, SY, SZ, RefParams, collapse_operators, liouvillian, run_reference
except ImportError:  # importlib mode, run from the repository root
    from tests.reference_model import SX, SY, SZ, RefParams, collapse_operators, liouvillian, run_reference

F64 = jnp.float64
PAULIS = (SX, SY, SZ)


def _params(**kw) -> tuple[qsn.NeuronParams, RefParams]:
    """The same parameters for qsn and for the NumPy reference."""
    return qsn.NeuronParams(**kw), RefParams(**kw)


def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(3, n)`` random unit Bloch vectors."""
    r = rng.standard_normal((3, n))
    return r / np.linalg.norm(r, axis=0)


def _ket(bloch: np.ndarray) -> np.ndarray:
    """``cos(th/2)|0> + e^{i ph} sin(th/2)|1>`` for a unit Bloch vector (rho01 = (x - i y)/2)."""
    x, y, z = bloch
    return np.array([math.sqrt((1 + z) / 2), math.sqrt((1 - z) / 2) * np.exp(1j * math.atan2(y, x))])


def _rho(bloch: np.ndarray) -> np.ndarray:
    """``(1 + r.sigma)/2``."""
    return 0.5 * (np.eye(2) + sum(c * s for c, s in zip(bloch, PAULIS)))


# ---------------------------------------------------------------------------------------------------
# (a) one step against expm; the private numerical kernels against NumPy/SciPy
# ---------------------------------------------------------------------------------------------------


def _drive_cases(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(a, delta)`` pairs: zeros, the ``w -> 0`` limit, large ``|a|``/``delta`` and random values (a < 1)."""
    special = [
        (0.0, 0.0),
        (1e-9, 0.0),
        (-1e-9, 0.0),
        (0.0, 1e-9),
        (1e-9, 1e-9),
        (1e-5, 0.0),  # just above the sinc series switch in float64 (theta = 1e-6 .. 1e-5)
        (0.0, 0.03),  # theta ~ the float64 series switch (0.008) for dt in {0.1, 1}
        (0.07, 0.04),
        (-50.0, 0.0),
        (-50.0, 0.1),
        (-50.0, 50.0),
        (0.999, 50.0),
        (0.5, 0.0),
        (-3.0, 2.0),
    ]
    a = rng.uniform(-50.0, 0.999, 40)
    delta = np.concatenate([[0.0] * 5, 10.0 ** rng.uniform(-9, np.log10(50.0), 35)])
    return np.array([s[0] for s in special] + list(a)), np.array([s[1] for s in special] + list(delta))


@pytest.mark.parametrize("dt", [0.1, 1.0])
def test_pure_step_is_expm_of_hamiltonian(dt):
    """One ``qsn.step`` (no spike, not refractory) applies ``expm(-i H dt)``, ``H = a sz + delta sx``: 1e-12."""
    rng = np.random.default_rng(20240611)
    a_target, delta = _drive_cases(rng)
    n = a_target.size
    v_rest, v_th, tau_m = -70.0, -55.0, 20.0
    e = math.exp(-dt / tau_m)
    # Zero current: V after step 2 is v_rest + (v0 - v_rest) e, so v0 sets a (read back exactly below).
    v0 = v_rest + a_target * (v_th - v_rest) / e
    p = qsn.NeuronParams(v_rest=v_rest, v_th=v_th, tau_m=tau_m, delta=delta, dt=dt)
    s0 = qsn.init_state(p, n, dtype=F64, v0=v0, bloch0=_unit_vectors(rng, n))
    s1, spikes = qsn.step(p, s0, np.zeros(n))
    assert not np.asarray(spikes).any()
    v = np.asarray(s1.v)
    a = (v - v_rest) / (v_th - v_rest)  # the model's a: V after step 2
    np.testing.assert_allclose(a, a_target, rtol=1e-9, atol=1e-13)  # the cases are what they claim
    assert a[0] == 0.0 and delta[0] == 0.0
    psi0, psi1 = np.asarray(s0.psi), np.asarray(s1.psi)
    want = np.stack([scipy.linalg.expm(-1j * (a[i] * SZ + delta[i] * SX) * dt) @ psi0[i] for i in range(n)])
    err = np.abs(psi1 - want).max(axis=1)
    assert err.max() <= 1e-12, f"worst case a={a[err.argmax()]}, delta={delta[err.argmax()]}: error {err.max():.3g}"


def test_closed_form_unitary_for_drives_above_threshold():
    """``a >= 1`` spikes (and resets) through the public step, so check the private pure-mode evolution directly."""
    from qsn.stepper import Stepper

    rng = np.random.default_rng(7)
    a = np.concatenate([[1.0, 1.0 + 1e-9, 50.0, 50.0, 49.9], rng.uniform(1.0, 50.0, 20)])
    delta = np.concatenate([[0.0, 1e-9, 0.0, 50.0, 1e-9], rng.uniform(0.0, 50.0, 20)])
    dt = 0.7
    p = qsn.NeuronParams(delta=delta, dt=dt)
    stepper = Stepper.build(p, "pure", F64)
    c, cfg = stepper.constants, stepper.config
    psi0 = np.stack([_ket(b) for b in _unit_vectors(rng, a.size).T])
    q = (psi0[:, 0].real, psi0[:, 0].imag, psi0[:, 1].real, psi0[:, 1].imag)
    re0, im0, re1, im1 = (np.asarray(x) for x in cfg.qubit.evolve(c, cfg, tuple(map(jnp.asarray, q)), jnp.asarray(a), None))
    got = np.stack([re0 + 1j * im0, re1 + 1j * im1], axis=1)
    want = np.stack([scipy.linalg.expm(-1j * (a[i] * SZ + delta[i] * SX) * dt) @ psi0[i] for i in range(a.size)])
    assert np.abs(got - want).max() <= 1e-12


@pytest.mark.parametrize(("dtype", "bound"), [(np.float32, 6000.0), (np.float64, 1e7)])
def test_sincos_within_two_ulp(dtype, bound):
    """``qsn.sincos.sincos`` vs NumPy's sin/cos (evaluated in float64 on the same inputs): max |error| <= 2 eps."""
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            rng.uniform(-bound, bound, 200_000),
            np.sign(rng.uniform(-1, 1, 200_000)) * 10.0 ** rng.uniform(-12, np.log10(bound), 200_000),
            np.arange(-4000, 4001) * (np.pi / 4),  # quadrant boundaries and octant midpoints
            [0.0, -0.0, 1e-30, bound, -bound, np.nextafter(bound, 0)],
        ]
    ).astype(dtype)
    x = x[np.abs(x) <= bound]
    s, c = jax.jit(sincos)(jnp.asarray(x))
    assert s.dtype == c.dtype == dtype
    x64 = x.astype(np.float64)
    eps = np.finfo(dtype).eps
    err_s = np.abs(np.asarray(s, np.float64) - np.sin(x64))
    err_c = np.abs(np.asarray(c, np.float64) - np.cos(x64))
    assert err_s.max() <= 2 * eps, f"sin: {err_s.max() / eps:.2f} eps at x = {x64[err_s.argmax()]!r}"
    assert err_c.max() <= 2 * eps, f"cos: {err_c.max() / eps:.2f} eps at x = {x64[err_c.argmax()]!r}"


def _affine_bloch_generator(a: float, delta: float, g1: float, g2: float) -> np.ndarray:
    """4x4 ``A`` with ``d(r, 1)/dt = A (r, 1)``, derived from the Liouvillian (not from qsn's formula).

    ``r_i = tr(sigma_i rho)`` and ``rho = (1 + r.sigma)/2`` give ``A_ij = tr(sigma_i L(sigma_j))/2``,
    ``b_i = tr(sigma_i L(1))/2``.
    """
    p = RefParams(delta=delta, t1=math.inf if g1 == 0 else 1 / g1, t2=math.inf if g2 == 0 else 1 / g2)
    lv = liouvillian(a * SZ + delta * SX, collapse_operators(p))
    apply = lambda op: (lv @ op.reshape(-1, order="F")).reshape(2, 2, order="F")  # noqa: E731
    out = np.zeros((4, 4))
    for j, basis in enumerate((*PAULIS, np.eye(2))):
        image = apply(basis.astype(complex))
        for i, sig in enumerate(PAULIS):
            out[i, j] = 0.5 * np.trace(sig @ image).real
    return out


def test_propagate_bloch_matches_expm_of_affine_generator():
    """``propagate_bloch`` with ``series_plan(generator_norm)`` equals ``expm(A dt)`` on ``(r, 1)`` to 1e-13,
    for ``||A dt||`` from 0 to ~10 (1 to 10 substeps), per-neuron coefficients and one shared plan."""
    rng = np.random.default_rng(11)
    n = 60
    dt = 1.0
    scale = np.linspace(0.0, 1.0, n)  # norms spread from 0 to ~10
    a = scale * rng.uniform(-4.5, 4.5, n)
    delta = scale * rng.uniform(0.0, 1.0, n)
    g1 = scale * rng.uniform(0.0, 0.5, n)
    g2 = np.minimum(scale * rng.uniform(0.0, 1.0, n) + g1 / 2, 2.0)  # t2 <= 2 t1  <=>  g2 >= g1/2
    g1[::7] = 0.0  # no relaxation
    g2[::5] = g1[::5] / 2  # no pure dephasing
    a[0] = delta[0] = g1[0] = g2[0] = 0.0
    r0 = _unit_vectors(rng, n) * rng.uniform(0.0, 1.0, n)
    norms = generator_norm(a, delta, g1, g2, dt)
    assert 9.0 < norms.max() <= 10.5
    want = np.empty((3, n))
    for i in range(n):
        gen = _affine_bloch_generator(a[i], delta[i], g1[i], g2[i])
        want[:, i] = (scipy.linalg.expm(gen * dt) @ np.append(r0[:, i], 1.0))[:3]
    args = tuple(map(jnp.asarray, (a, delta, g1, g2))) + (jnp.asarray(dt, F64),)
    bloch = tuple(map(jnp.asarray, r0))

    shared = series_plan(float(norms.max()), F64)
    assert shared.substeps >= 9
    got = np.stack(propagate_bloch(bloch, *args, shared))
    assert np.abs(got - want).max() <= 1e-13

    for i in np.unique(np.searchsorted(norms, np.arange(11), side="right").clip(0, n - 1)):
        # single neurons on their own (tight) plans, 1 .. 10 substeps
        plan = series_plan(float(norms[i]), F64)
        one = lambda x: x[i : i + 1]  # noqa: E731
        got_i = np.stack(propagate_bloch(tuple(map(one, bloch)), *map(one, args[:4]), args[4], plan))[:, 0]
        assert np.abs(got_i - want[:, i]).max() <= 1e-13, f"norm {norms[i]:.3g}, plan {plan}"


def test_reference_liouvillian_matches_qutip():
    """The reference model's Liouvillian (column stacking) is QuTiP's, so reference runs use QuTiP's physics."""
    for t1, t2 in [(math.inf, math.inf), (40.0, 30.0), (math.inf, 25.0), (20.0, 40.0)]:
        p = RefParams(delta=0.3, t1=t1, t2=t2)
        h = 0.7 * SZ + 0.3 * SX
        want = qutip.liouvillian(qutip.Qobj(h), [qutip.Qobj(c) for c in collapse_operators(p)]).full()
        np.testing.assert_allclose(liouvillian(h, collapse_operators(p)), want, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------------
# (b) whole pure-mode runs against the NumPy loop of DESIGN §1
# ---------------------------------------------------------------------------------------------------

STEPS = 4000
DT = 0.1


def _current(kind: str, steps: int, seed: int = 5, level: float | None = None) -> np.ndarray:
    """``(T,)`` input currents (r_m I in mV) that drive V well past v_th - v_rest = 15 mV; ``level`` is the mean."""
    k = np.arange(steps)
    if kind == "constant":
        return np.full(steps, 40.0 if level is None else level)
    if kind == "sinusoid":
        return (30.0 if level is None else level) + 20.0 * np.sin(2 * np.pi * k * DT / 37.0)
    if kind == "pulses":  # 12.5 ms on, 12.5 ms off
        return (30.0 if level is None else level) + np.where((k // 125) % 2 == 0, 30.0, -25.0)
    if kind == "noisy":
        return (35.0 if level is None else level) + 20.0 * np.random.default_rng(seed).standard_normal(steps)
    raise ValueError(kind)


CURRENTS = ("constant", "sinusoid", "pulses", "noisy")


@pytest.mark.parametrize("t_ref", [0.0, 2.05], ids=["t_ref0", "t_ref2.05"])
@pytest.mark.parametrize("kind", CURRENTS)
def test_pure_neuron_matches_numpy_loop(kind, t_ref):
    """One neuron, t2 = t1 = inf: V, spikes and rho after every step equal the NumPy loop (1e-10)."""
    kw = dict(delta=0.3, t_ref=t_ref, dt=DT)
    p, ref_p = _params(**kw)
    bloch0 = np.array([0.48, 0.36, 0.8])
    current = _current(kind, STEPS)
    ref = run_reference(ref_p, current, mode="pure", v0=-65.0, psi0=_ket(bloch0))
    s0 = qsn.init_state(p, 1, dtype=F64, v0=-65.0, bloch0=bloch0)
    r = qsn.simulate(p, s0, current[:, None], record=("v", "rho", "spikes"))

    n_spikes = int(ref["spikes"].sum())
    assert n_spikes >= 20, f"{kind}: only {n_spikes} spikes"
    spikes = np.asarray(r.spikes)[:, 0]
    first = np.flatnonzero(spikes != ref["spikes"])
    assert first.size == 0, f"spike trains differ first at step {first[0]}"
    assert int(r.spike_count[0]) == n_spikes
    np.testing.assert_allclose(np.asarray(r.v)[:, 0], ref["v"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(r.rho)[:, 0], ref["rho"], rtol=0, atol=1e-10)
    if t_ref > 0:  # refractoriness is really exercised: V clamped for 20 steps after each spike
        j = np.flatnonzero(ref["spikes"])[0]
        assert np.all(ref["v"][j : j + 21] == -70.0) and ref["v"][j + 21] != -70.0


# ---------------------------------------------------------------------------------------------------
# (c) mixed mode against QuTiP's Lindblad propagator
# ---------------------------------------------------------------------------------------------------


class _QutipPropagator:
    """``a -> expm(L(a) dt)`` with ``L(a) = L(delta sx, c_ops) + a L(sz, [])`` built once by QuTiP."""

    def __init__(self, delta: float, t1: float, t2: float, dt: float):
        g1 = 0.0 if math.isinf(t1) else 1.0 / t1
        gphi = (0.0 if math.isinf(t2) else 1.0 / t2) - g1 / 2
        c_ops = []
        if g1 > 0:
            c_ops.append(math.sqrt(g1) * qutip.basis(2, 0) * qutip.basis(2, 1).dag())  # |0><1|
        if gphi > 0:
            c_ops.append(math.sqrt(gphi / 2) * qutip.sigmaz())
        self.base = qutip.liouvillian(delta * qutip.sigmax(), c_ops).full()
        self.per_a = qutip.liouvillian(qutip.sigmaz()).full()
        self.dt = dt
        self.cache: dict[float, np.ndarray] = {}

    def __call__(self, a: float) -> np.ndarray:
        out = self.cache.get(a)  # a repeats: 0 while refractory, the same V path after each reset
        if out is None:
            out = self.cache[a] = scipy.linalg.expm((self.base + a * self.per_a) * self.dt)
        return out


# Constant currents make V repeat after every reset, so few distinct a (and expm's) per run; the
# noisy current gives a new a every step (2500 expm's).
MIXED_CASES = {
    "t1_t2": dict(t1=40.0, t2=30.0, t_ref=2.05, current=("constant", 40.0)),
    "t2_only": dict(t1=math.inf, t2=25.0, t_ref=0.0, current=("noisy", 35.0)),
    "t1_limit": dict(t1=20.0, t2=40.0, t_ref=1.0, current=("constant", 60.0)),  # t2 = 2 t1: relaxation only
}


@pytest.mark.parametrize("case", list(MIXED_CASES))
def test_mixed_neuron_matches_qutip(case):
    """Mixed mode, one neuron: rho after every step equals QuTiP's Lindblad propagator (1e-8), with spikes."""
    assert qutip.sigmaz().full()[0, 0] == 1  # QuTiP's sz = diag(1, -1) in (|0>, |1>), as ours
    cfg = dict(MIXED_CASES[case])
    kind, level = cfg.pop("current")
    steps = 2500
    kw = dict(delta=0.4, dt=DT, **cfg)
    p, ref_p = _params(**kw)
    bloch0 = np.array([0.3, -0.2, 0.5])
    current = _current(kind, steps, seed=9, level=level)
    prop = _QutipPropagator(0.4, cfg["t1"], cfg["t2"], DT)
    ref = run_reference(ref_p, current, mode="mixed", v0=-60.0, rho0=_rho(bloch0), propagator=prop)
    s0 = qsn.init_state(p, 1, mode="mixed", dtype=F64, v0=-60.0, bloch0=bloch0)
    r = qsn.simulate(p, s0, current[:, None], record=("v", "rho", "spikes"))

    n_spikes = int(ref["spikes"].sum())
    assert n_spikes >= 20, f"only {n_spikes} spikes"
    np.testing.assert_array_equal(np.asarray(r.spikes)[:, 0], ref["spikes"])
    np.testing.assert_allclose(np.asarray(r.v)[:, 0], ref["v"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(r.rho)[:, 0], ref["rho"], rtol=0, atol=1e-8)
    # the run really was open-system: the state got mixed between spikes
    purity = np.einsum("tij,tji->t", ref["rho"], ref["rho"]).real
    assert purity.min() < 0.9


# ---------------------------------------------------------------------------------------------------
# quantum-jump spiking with the documented random numbers
# ---------------------------------------------------------------------------------------------------


def _jump_uniforms(key: jax.Array, steps: int) -> np.ndarray:
    """The jump uniform of each step, as documented: ``split(fold_in(key, t), 3)[2]``, shape (n,) = (1,)."""
    draw = jax.jit(
        jax.vmap(lambda t: jax.random.uniform(jax.random.split(jax.random.fold_in(key, t), 3)[2], (1,), F64))
    )
    return np.asarray(draw(jnp.arange(steps, dtype=jnp.int32)))[:, 0]


@pytest.mark.parametrize(
    ("mode", "extra"), [("pure", {}), ("mixed", dict(t1=50.0, t2=30.0))], ids=["pure", "mixed"]
)
def test_jump_spiking_matches_reference(mode, extra):
    """jump_rate > 0: spikes from measurement in |1> and the no-jump conditioning match the reference (1e-10)."""
    steps = 3000
    kw = dict(delta=0.5, jump_rate=0.8, t_ref=2.05, dt=DT, **extra)
    p, ref_p = _params(**kw)
    current = _current("constant", steps, level=30.0)  # reaches v_th 14 ms after a reset, unless a jump comes first
    key = jax.random.key(42)
    u = _jump_uniforms(key, steps)
    ref = run_reference(ref_p, current, mode=mode, v0=-70.0, jump_uniforms=u)
    s0 = qsn.init_state(p, 1, mode=mode, dtype=F64)
    # unroll=1: the same step, compiled in ~1 s instead of ~15 s for the default unroll (threefry x 8)
    r = qsn.simulate(p, s0, current[:, None], key=key, record=("v", "rho", "spikes"), unroll=1)

    jumps = ref["spikes"] & (ref["a"] < 1.0)  # spikes below threshold came from jumps
    assert jumps.sum() >= 10 and (ref["spikes"] & ~jumps).sum() >= 3, (jumps.sum(), (ref["spikes"] & ~jumps).sum())
    np.testing.assert_array_equal(np.asarray(r.spikes)[:, 0], ref["spikes"])
    np.testing.assert_allclose(np.asarray(r.v)[:, 0], ref["v"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(r.rho)[:, 0], ref["rho"], rtol=0, atol=1e-10)
