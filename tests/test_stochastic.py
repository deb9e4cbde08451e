"""Statistical tests of the stochastic parts of the step (DESIGN §1), against deterministic references.

Two claims of the design are checked with populations of identical neurons run by ``qsn.simulate``:

* the ensemble mean of pure-mode trajectories (random phase kicks and relaxation jumps) is the
  mixed-mode density matrix, up to the O(dt^2)-per-step splitting error the design allows;
* quantum-jump spiking fires with the probability the conditioned (no-jump) evolution predicts: the
  first-jump time distribution and the mean spike count per neuron (renewal process, with
  refractoriness) match a deterministic NumPy/SciPy computation.

Every bound is ``5 sigma`` with sigma estimated from the sample (or from the binomial law), so a
correct engine fails a comparison with probability ~6e-7 per comparison; the keys are fixed, so the
outcome is reproducible. The references are written here from the design text (SciPy ``expm`` of the
Hamiltonian and of the 4x4 Liouvillian; explicit Kraus maps), independent of ``qsn``'s code.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import qsn

SX = np.array([[0, 1], [1, 0]], complex)
SZ = np.array([[1, 0], [0, -1]], complex)
EYE = np.eye(2, dtype=complex)
GROUND = np.array([[1, 0], [0, 0]], complex)  # |0><0|
SIGMA = 5.0  # width of every statistical bound, in standard errors


# ---------------------------------------------------------------------------------------------
# Deterministic single-neuron reference (NumPy/SciPy, float64), written from DESIGN §1.
# ---------------------------------------------------------------------------------------------


def _expm(m: np.ndarray) -> np.ndarray:
    """Matrix exponential of a stack ``(..., k, k)``: scaling and squaring of a 30-term Taylor series.

    (SciPy's ``expm`` is used once in a self-check; called per step it is slow next to JAX's threads.)
    """
    norm = np.abs(m).sum(axis=-1).max()
    squarings = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    a = m / 2.0**squarings
    out = term = np.broadcast_to(np.eye(m.shape[-1], dtype=complex), m.shape).copy()
    for k in range(1, 31):
        term = term @ a / k
        out = out + term
    for _ in range(squarings):
        out = out @ out
    return out


def _liouvillian(h: np.ndarray, ops: list[np.ndarray]) -> np.ndarray:
    """``(T, 4, 4)`` generators of ``d rho/dt = -i[H, rho] + sum D[L] rho`` on row-major ``rho.ravel()``.

    ``h``: ``(T, 2, 2)``. Row-major vectorisation: ``vec(A X B) = (A kron B^T) vec(X)``.
    """
    def kron(x, y):
        e = np.einsum("...ij,...kl->...ikjl", x, y)
        return e.reshape(e.shape[:-4] + (4, 4))

    gen = -1j * (kron(h, EYE) - kron(EYE, np.swapaxes(h, -1, -2)))
    for op in ops:
        ld = op.conj().T @ op
        gen = gen + np.kron(op, op.conj()) - 0.5 * np.kron(ld, EYE) - 0.5 * np.kron(EYE, ld.T)
    return gen


def _superop(left: np.ndarray) -> np.ndarray:
    """``rho -> K rho K^+`` as a 4x4 matrix on row-major ``vec(rho)`` (``K``: ``(..., 2, 2)``)."""
    return np.einsum("...ij,...kl->...ikjl", left, left.conj()).reshape(left.shape[:-2] + (4, 4))


def _rates(t1: float, t2: float) -> tuple[float, float]:
    g1 = 0.0 if math.isinf(t1) else 1.0 / t1
    g2 = 0.0 if math.isinf(t2) else 1.0 / t2
    return g1, max(g2 - g1 / 2.0, 0.0)


def _channels(kind: str, a: np.ndarray, p: dict) -> np.ndarray:
    """``(T, 4, 4)`` superoperators of one step's qubit map for drives ``a`` ``(T,)``.

    kind: ``"unitary"`` (closed system), ``"lindblad"`` (the exact propagator ``expm(L dt)`` the
    mixed mode uses), ``"trotter"`` (what the pure-mode unravelling averages to: ``U``, then the
    dephasing channel ``rho01 *= exp(-gphi dt)`` (Gaussian phase kick of variance ``2 gphi dt``),
    then the exact amplitude-damping channel with ``gamma = 1 - exp(-dt/t1)``).
    """
    dt, delta = p["dt"], p["delta"]
    h = a[:, None, None] * SZ + delta * SX
    g1, gphi = _rates(p["t1"], p["t2"])
    if kind == "lindblad":
        ops = [math.sqrt(g1) * np.array([[0, 1], [0, 0]], complex), math.sqrt(gphi / 2.0) * SZ]
        return _expm(_liouvillian(h, ops) * dt)
    lam, vec = np.linalg.eigh(h)
    u = vec @ (np.exp(-1j * lam * dt)[..., None] * np.swapaxes(vec.conj(), -1, -2))
    sup = _superop(u)
    if kind == "unitary":
        return sup
    assert kind == "trotter"
    deph = math.exp(-gphi * dt)
    gamma = -math.expm1(-g1 * dt)
    k0 = np.diag([1.0, math.sqrt(1.0 - gamma)]).astype(complex)
    k1 = np.array([[0, math.sqrt(gamma)], [0, 0]], complex)
    damp = _superop(k0) + _superop(k1)
    dephase = np.diag([1.0, deph, deph, 1.0]).astype(complex)
    return damp @ dephase @ sup


def reference_run(p: dict, current: float, steps: int, kind: str, *, ref0: int = 0) -> dict:
    """One neuron from ``V = v_rest``, qubit |0>, ``ref0`` refractory steps to serve.

    Returns per step (after the step): ``rho`` (2, 2) — normalised when ``jump_rate = 0``; with
    ``jump_rate > 0`` the *unnormalised* no-jump-so-far state ``sigma_t`` (``sigma <- K0 Phi(sigma)
    K0^+``, ``K0 = diag(1, exp(-jump_rate dt/2))``, skipped while refractory), whose trace is the
    survival probability ``S_t`` — and the threshold ``spikes`` (bool). Jumps are not followed: the
    run describes the neuron up to its first jump (with ``jump_rate > 0`` it must stay sub-threshold).
    """
    dt = p["dt"]
    decay = math.exp(-dt / p["tau_m"])
    n_ref = math.ceil(round(p["t_ref"] / dt, 9))
    # Membrane, refractoriness and threshold do not depend on the qubit: run them first.
    v, ref = p["v_rest"], ref0
    drive, refractory, spikes = [], [], []
    for _ in range(steps):
        is_ref = ref > 0
        if is_ref:
            ref -= 1
            v = p["v_rest"]
        else:
            v = p["v_rest"] + (v - p["v_rest"]) * decay + p["r_m"] * current * (1.0 - decay)
        drive.append((v - p["v_rest"]) / (p["v_th"] - p["v_rest"]))
        spike = (not is_ref) and v >= p["v_th"]
        if spike:
            assert p["jump_rate"] == 0, "reference follows jumps only below threshold"
            v, ref = p["v_rest"], max(n_ref - 1, 0)
        refractory.append(is_ref)
        spikes.append(spike)
    maps = _channels(kind, np.array(drive), p)
    k0 = _superop(np.diag([1.0, math.exp(-p["jump_rate"] * dt / 2.0)]).astype(complex))
    rho = GROUND.ravel()
    out = np.empty((steps, 4), complex)
    for t in range(steps):
        rho = maps[t] @ rho
        if p["jump_rate"] > 0 and not refractory[t]:
            rho = k0 @ rho
        if spikes[t]:
            rho = GROUND.ravel()
        out[t] = rho
    return {"rho": out.reshape(steps, 2, 2), "spikes": np.array(spikes)}


def test_reference_propagators():
    """Self-check of the reference: ``_expm`` vs SciPy, and trace/positivity of every channel."""
    p = dict(dt=0.1, delta=0.3, t1=30.0, t2=20.0)
    a = np.array([0.0, 0.7, -2.5])
    g1, gphi = _rates(p["t1"], p["t2"])
    ops = [math.sqrt(g1) * np.array([[0, 1], [0, 0]], complex), math.sqrt(gphi / 2.0) * SZ]
    gen = _liouvillian(a[:, None, None] * SZ + p["delta"] * SX, ops) * p["dt"]
    for g, e in zip(gen, _expm(gen)):
        np.testing.assert_allclose(e, scipy.linalg.expm(g), rtol=0, atol=1e-14)
    np.testing.assert_allclose(_expm(gen * 40.0)[1], scipy.linalg.expm(gen[1] * 40.0), rtol=0, atol=1e-12)
    rho = np.array([[0.7, 0.2 - 0.1j], [0.2 + 0.1j, 0.3]])
    for kind in ("unitary", "lindblad", "trotter"):
        for m in _channels(kind, a, p):
            out = (m @ rho.ravel()).reshape(2, 2)
            assert abs(np.trace(out) - 1) < 1e-14
            np.testing.assert_allclose(out, out.conj().T, atol=1e-15)
            assert np.linalg.eigvalsh(out).min() > 0


def _params(**kw) -> tuple[qsn.NeuronParams, dict]:
    base = dict(v_rest=-70.0, v_th=-55.0, tau_m=20.0, r_m=1.0, t_ref=2.0, delta=0.3,
                t2=math.inf, t1=math.inf, jump_rate=0.0, dt=0.1)
    base.update(kw)
    return qsn.NeuronParams(**base), base


# ---------------------------------------------------------------------------------------------
# (a) Ensemble mean of pure trajectories == mixed mode.
# ---------------------------------------------------------------------------------------------

N_TRAJ = 4000
STEPS_A = 400  # 40 ms = 2 t2
EVERY_A = 40


@pytest.mark.parametrize("current", [10.0, 20.0], ids=["subthreshold", "threshold-spikes"])
def test_pure_ensemble_mean_matches_mixed(current):
    """Mean of 4000 pure trajectories vs the mixed-mode rho of one neuron (t2 = 20, t1 = 30, delta = 0.3).

    Per sample time and per real element ``e`` of rho (rho00, Re rho01, Im rho01; the others follow
    from trace 1 and hermiticity), with ``SE = std_e / sqrt(n)`` the sample standard error:

    * ``|mean_e - trotter_e| <= 5 SE`` where ``trotter`` is the exact expectation of the pure-mode
      unravelling (U, dephasing channel, amplitude damping, per step) from the NumPy reference;
    * ``|mean_e - mixed_e| <= 5 SE + drift_e`` with ``drift_e = |trotter_e - lindblad_e|`` the
      splitting error of that unravelling (O(dt^2) per step, computed; asserted <= 2e-3 here);
    * ``|mixed_e - lindblad_e| <= 1e-10`` (the mixed mode is the exact Lindblad propagator).

    Non-triviality: every trajectory stays pure (``|r| = 1``) while the mixed state's purity falls
    below 0.95; the spread ``SE`` is resolvable (> 1e-3); and the closed-system (no t1/t2) prediction
    lies > 10 SE + drift away from the mixed state at the end, so the test detects missing noise.
    With ``current = 20`` the neurons cross threshold: V does not depend on the qubit, so both modes
    spike and reset at the same steps (checked against the reference).
    """
    params, p = _params(delta=0.3, t2=20.0, t1=30.0)
    pure = qsn.init_state(params, N_TRAJ, mode="pure", dtype=jnp.float64)
    mixed = qsn.init_state(params, 1, mode="mixed", dtype=jnp.float64)
    key = jax.random.key(1234)
    rp = qsn.simulate(params, pure, current, STEPS_A, key, record=("rho",), record_every=EVERY_A, unroll=1)
    rm = qsn.simulate(params, mixed, current, STEPS_A, record=("rho",), record_every=EVERY_A, unroll=1)

    sample = np.arange(EVERY_A - 1, STEPS_A, EVERY_A)
    lind = reference_run(p, current, STEPS_A, "lindblad")
    trot = reference_run(p, current, STEPS_A, "trotter")
    closed = reference_run(p, current, STEPS_A, "unitary")

    # Spikes are deterministic and shared by both modes.
    ref_spikes = int(lind["spikes"].sum())
    assert (ref_spikes > 0) == (current > 15.0)
    np.testing.assert_array_equal(rp.spike_count, ref_spikes)
    np.testing.assert_array_equal(rm.spike_count, ref_spikes)

    def elements(rho):  # (..., 2, 2) -> (..., 3) real: rho00, Re rho01, Im rho01
        return np.stack([rho[..., 0, 0].real, rho[..., 0, 1].real, rho[..., 0, 1].imag], axis=-1)

    traj = elements(rp.rho)  # (samples, n, 3)
    mean = traj.mean(axis=1)
    se = traj.std(axis=1, ddof=1) / math.sqrt(N_TRAJ)
    mix = elements(rm.rho[:, 0])
    e_lind, e_trot, e_closed = (elements(r["rho"][sample]) for r in (lind, trot, closed))
    drift = np.abs(e_trot - e_lind)

    np.testing.assert_allclose(mix, e_lind, rtol=0, atol=1e-10)
    assert drift.max() <= 2e-3, drift.max()
    np.testing.assert_array_less(np.abs(mean - e_trot), SIGMA * se + 1e-12)
    np.testing.assert_array_less(np.abs(mean - mix), SIGMA * se + drift + 1e-12)

    # Not trivially equal: pure trajectories, noisy spread, and a resolvable effect of t1/t2.
    r2 = 4 * np.abs(rp.rho[..., 0, 1]) ** 2 + (rp.rho[..., 0, 0] - rp.rho[..., 1, 1]).real ** 2
    np.testing.assert_allclose(r2, 1.0, atol=1e-12)
    purity_mixed = np.real(np.trace(rm.rho[-1, 0] @ rm.rho[-1, 0]))
    assert purity_mixed < 0.95, purity_mixed
    assert se[-1].max() > 1e-3
    assert np.max(np.abs(e_closed[-1] - mix[-1]) - 10 * se[-1] - drift[-1]) > 0


# ---------------------------------------------------------------------------------------------
# (b) Quantum-jump spiking statistics.
# ---------------------------------------------------------------------------------------------

N_JUMP = 4000
STEPS_B = 600  # 60 ms
CURRENT_B = 12.0  # r_m I = 12 mV < v_th - v_rest = 15 mV: V never reaches threshold, spikes are jumps
JUMP_CASES = {
    "pure-closed": ("pure", dict(), "unitary"),
    "pure-t1-t2": ("pure", dict(t2=20.0, t1=30.0), "trotter"),
    "mixed-closed": ("mixed", dict(), "lindblad"),
    "mixed-t1-t2": ("mixed", dict(t2=20.0, t1=30.0), "lindblad"),
}


def _survival(run: dict) -> np.ndarray:
    """``S_t`` (t = 0..T-1): probability of no jump through step t, ``tr sigma_t``."""
    return np.trace(run["rho"], axis1=-2, axis2=-1).real


def _renewal_mean_count(first: np.ndarray, isi: np.ndarray) -> np.ndarray:
    """Expected cumulative spike count per neuron after each step of a renewal process.

    ``first[t]``: probability that the first spike is at step t; ``isi[k]`` (k >= 1): probability
    that the next spike is k steps after a spike (the post-spike state is always the same:
    ``V = v_rest``, qubit |0>, ``n_ref - 1`` refractory steps, constant current).
    ``m[t] = first[t] + sum_{j<t} m[j] isi[t-j]``.
    """
    m = np.zeros_like(first)
    for t in range(first.size):
        m[t] = first[t] + np.dot(m[:t], isi[t:0:-1])
    return np.cumsum(m)


@pytest.mark.parametrize("case", list(JUMP_CASES))
def test_jump_spiking_statistics(case):
    """Jump-spike statistics of 4000 identical neurons vs the conditioned-evolution reference.

    Setup: delta = 0.5, jump_rate = 1/ms, t_ref = 2 ms (n_ref = 20), r_m I = 12 mV (sub-threshold,
    so every spike is a quantum jump), 600 steps of 0.1 ms; qubit map per ``JUMP_CASES`` (for the
    pure mode with t1/t2 the ensemble map of its unravelling, which is what decides jump odds).

    1. First-jump time: the fraction ``F(t)`` of neurons whose first spike is at step <= t, at 8
       times, vs ``1 - S_t`` with ``S_t = tr sigma_t`` (unnormalised no-jump state, see
       :func:`reference_run`). Bound: ``|F - (1 - S)| <= 5 sqrt(S (1 - S)/n)`` (binomial). This
       uses only each neuron's first spike, so it does not depend on what happens after it.
    2. Mean cumulative spike count per neuron, including refractoriness and all later jumps: the
       renewal prediction of :func:`_renewal_mean_count` (interval law from a reference run started
       in the post-spike state). Bound: ``5 SE`` with ``SE`` the sample standard deviation of the
       per-neuron counts over ``sqrt(n)``.
    3. No spike within ``n_ref - 1`` steps after a spike (refractoriness), exactly.
    Power: the same comparisons against a reference without the no-jump back-action (``K0``) fail.
    """
    mode, extra, kind = JUMP_CASES[case]
    params, p = _params(delta=0.5, jump_rate=1.0, t_ref=2.0, **extra)
    n_ref = math.ceil(round(p["t_ref"] / p["dt"], 9))
    state = qsn.init_state(params, N_JUMP, mode=mode, dtype=jnp.float64)
    res = qsn.simulate(params, state, CURRENT_B, STEPS_B, jax.random.key(99), record=("events",), unroll=1)
    ev = res.events

    first_ref = reference_run(p, CURRENT_B, STEPS_B, kind)
    isi_ref = reference_run(p, CURRENT_B, STEPS_B, kind, ref0=max(n_ref - 1, 0))
    assert not first_ref["spikes"].any() and not isi_ref["spikes"].any()  # only jumps spike
    surv = _survival(first_ref)
    surv_isi = _survival(isi_ref)

    # 1. first-jump distribution
    first_step = np.full(N_JUMP, np.iinfo(np.int64).max)
    np.minimum.at(first_step, ev.neuron, ev.step)
    checks = np.searchsorted(1.0 - surv, [0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.85, 0.93])
    checks = np.unique(np.clip(checks, 0, STEPS_B - 1))
    assert checks.size >= 5
    prob = 1.0 - surv[checks]
    frac = (first_step[None, :] <= checks[:, None]).mean(axis=1)
    sigma = np.sqrt(prob * (1.0 - prob) / N_JUMP)
    np.testing.assert_array_less(np.abs(frac - prob), SIGMA * sigma)

    # 2. mean cumulative count with refractoriness (renewal)
    first_pmf = -np.diff(np.concatenate([[1.0], surv]))
    isi_pmf = np.concatenate([[0.0], -np.diff(np.concatenate([[1.0], surv_isi]))])  # isi[k], k >= 1
    expected = _renewal_mean_count(first_pmf, isi_pmf)
    times = np.arange(59, STEPS_B, 60)
    counts = np.zeros((times.size, N_JUMP))
    for i, t in enumerate(times):
        counts[i] = np.bincount(ev.neuron[ev.step <= t], minlength=N_JUMP)
    mean = counts.mean(axis=1)
    se = counts.std(axis=1, ddof=1) / math.sqrt(N_JUMP)
    np.testing.assert_array_less(np.abs(mean - expected[times]), SIGMA * se + 1e-12)
    assert mean[-1] > 2.0  # several jumps per neuron: refractoriness and resets are exercised
    np.testing.assert_array_equal(counts[-1], res.spike_count)

    # 3. refractoriness: consecutive spikes of a neuron at least n_ref steps apart
    order = np.lexsort((ev.step, ev.neuron))
    same = np.diff(ev.neuron[order]) == 0
    gaps = np.diff(ev.step[order])[same]
    assert gaps.min() >= n_ref

    # Power: without the no-jump back-action the prediction is resolvably different.
    p_nob = dict(p, jump_rate=0.0)
    q = -math.expm1(-p["jump_rate"] * p["dt"])
    p1 = np.array(reference_run(p_nob, CURRENT_B, STEPS_B, kind)["rho"][:, 1, 1].real)
    surv_nob = np.cumprod(1.0 - q * p1)
    off = np.abs(frac - (1.0 - surv_nob[checks])) / sigma
    assert off.max() > 2 * SIGMA, off
