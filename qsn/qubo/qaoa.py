"""QAOA for small QUBOs, simulated exactly on a state vector (:mod:`qsn.circuits`).

For a QUBO with energies ``C(x)`` (the cost diagonal :func:`~qsn.qubo.model.all_energies`, (2^n,)),
the depth-``p`` QAOA state is (ħ = 1)

    |γ, β> = prod_{k=1..p} [ exp(-i β_k B) exp(-i γ_k C) ] |+>^n,    B = sum_j X_j,

with layer 1 applied first; ``exp(-i β B)`` is ``rx(2β)`` on every qubit. Angles minimise
``<γ, β| C |γ, β>``; sampling the optimised state gives candidate solutions. ``γ`` is in inverse energy
units of the QUBO, ``β`` in radians. Basis order as in :mod:`qsn.qubo.model` (variable 0 = most
significant bit). With ``γ > 0`` the energy is lowered by ``β < 0`` (e.g. for ``p = 1`` and one MaxCut
edge, ``<C> = -1/2 + sin(4β) sin(γ)/2``).

Cost normalisation: :func:`optimize_angles` optimises on ``(C - mean C) / std C``, so a single learning
rate and initial angle range suit QUBOs of any energy scale; the shift only adds a global phase. The
angles it returns are converted back (``γ = γ_normalised / std C``) and act on the raw ``C``.

The simulation enumerates all ``2^n`` states, so the optimum is known exactly and every result reports
the probability the QAOA state puts on it. Gradients of :func:`qaoa_expectation` use the adjoint-state
method, so optimising holds a few states (about 4-6 × 2^n complex amplitudes) per restart in flight, for
any ``p`` (all restarts at once on an accelerator, one at a time on CPU); ``n`` is limited to
:data:`MAX_VARIABLES`.

Example:
    >>> import jax, numpy as np
    >>> from qsn.qubo import make_qubo
    >>> from qsn.qubo.qaoa import solve
    >>> qubo = make_qubo(np.random.default_rng(0).normal(size=(6, 6)))
    >>> x, e, result = solve(qubo, jax.random.key(0), p=3, shots=256)
    >>> x.shape, result.p_optimum        # (6,), probability of the exact optimum in the QAOA state
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import qsn.circuits as qc
from qsn.errors import ConfigurationError
from qsn.qubo.model import QUBO, all_energies, energy

__all__ = ["MAX_VARIABLES", "QAOAResult", "qaoa_state", "qaoa_expectation", "optimize_angles", "solve"]

MAX_VARIABLES = 24  # 2^24 complex64 amplitudes = 128 MiB per state; optimising holds ~4-6 per restart

# Initial angles, in units of the normalised cost (std 1): restart 0 is a linear ramp (a discretised
# anneal from B to C, as in Zhou et al., PRX 10, 021067 (2020)), the others are uniform in these ranges.
RAMP_STEP = 0.75
GAMMA_RANGE = (0.0, 1.0)
BETA_RANGE = (-math.pi / 4, 0.0)


class QAOAResult(NamedTuple):
    """Optimised QAOA angles and diagnostics. Energies in the QUBO's units; ``γ`` acts on the raw cost."""

    gammas: np.ndarray  # (p,) cost angles of the best restart, 1/energy
    betas: np.ndarray  # (p,) mixer angles of the best restart, rad
    expectation: float  # <C> in the state of (gammas, betas), energy
    p_optimum: float  # probability of the minimum-energy states (all of them if degenerate) in that state
    min_energy: float  # exact minimum of C, by enumeration
    cost_shift: float  # mean of C over all states (subtracted while optimising)
    cost_scale: float  # std of C over all states (divided out while optimising; 1 if C is constant)
    restart_gammas: np.ndarray  # (restarts, p) final cost angles of every restart, 1/energy
    restart_betas: np.ndarray  # (restarts, p) final mixer angles of every restart, rad
    restart_expectations: np.ndarray  # (restarts,) final <C> of every restart, energy
    history: np.ndarray  # (restarts, steps) <C> before each Adam step, energy


def _check_angles(cost_diag, gammas, betas) -> tuple[jax.Array, jax.Array, jax.Array, int]:
    """Validated ``(cost (2^n,) real, gammas (p,), betas (p,), n)``, angles cast to the cost's dtype."""
    cost = jnp.asarray(cost_diag)
    size = cost.shape[0] if cost.ndim == 1 else 0
    n = size.bit_length() - 1
    if cost.ndim != 1 or size < 2 or size != 1 << n:
        raise ConfigurationError(f"Argument `cost_diag` must have shape (2^n,) with n >= 1, but has shape {cost.shape}")
    if not jnp.issubdtype(cost.dtype, jnp.floating):
        raise ConfigurationError(f"Argument `cost_diag` must be real floating point, but has dtype {cost.dtype}")
    gammas, betas = jnp.asarray(gammas), jnp.asarray(betas)
    if gammas.ndim != 1 or gammas.shape[0] < 1:
        raise ConfigurationError(f"Argument `gammas` must have shape (p,) with p >= 1, but has shape {gammas.shape}")
    if betas.shape != gammas.shape:
        raise ConfigurationError(
            f"Argument `betas` must have shape {gammas.shape} like `gammas`, but has shape {betas.shape}"
        )
    return cost, gammas.astype(cost.dtype), betas.astype(cost.dtype), n


def _cost_layer(psi: jax.Array, cost: jax.Array, gamma: jax.Array) -> jax.Array:
    """``exp(-i γ C) psi``; a negative ``γ`` undoes it."""
    return qc.apply_diagonal(psi, jnp.exp(-1j * (gamma * cost).astype(psi.dtype)))


def _mixer_layer(psi: jax.Array, beta: jax.Array) -> jax.Array:
    """``exp(-i β B) psi = prod_j rx(2β)_j psi``; a negative ``β`` undoes it."""
    mixer = qc.rx(2 * beta)
    for qubit in range(qc.num_qubits(psi)):
        psi = qc.apply(psi, mixer, qubit)
    return psi


def _evolve(cost: jax.Array, gammas: jax.Array, betas: jax.Array) -> jax.Array:
    """The QAOA state from checked arguments (:func:`_check_angles`), (2^n,)."""
    n = cost.shape[0].bit_length() - 1
    cdtype = jnp.complex128 if cost.dtype == jnp.float64 else jnp.complex64
    plus = jnp.full(2**n, 2.0 ** (-n / 2), dtype=cdtype)

    # Rematerialised when the state itself is differentiated: keeps p states, not p (n + 1), alive.
    @jax.checkpoint
    def layer(psi, angles):
        gamma, beta = angles
        return _mixer_layer(_cost_layer(psi, cost, gamma), beta), None

    psi, _ = jax.lax.scan(layer, plus, (gammas, betas))
    return psi


def qaoa_state(cost_diag, gammas, betas) -> jax.Array:
    """The QAOA state ``prod_k exp(-i β_k B) exp(-i γ_k C) |+>^n`` (module docstring), (2^n,) complex.

    Args:
        cost_diag: ``C``, (2^n,) real; complex64 state for float32, complex128 for float64.
        gammas: (p,) cost angles, 1/energy.
        betas: (p,) mixer angles, rad.
    """
    return _evolve(*_check_angles(cost_diag, gammas, betas)[:3])


@jax.custom_vjp
def _expectation(cost: jax.Array, gammas: jax.Array, betas: jax.Array) -> jax.Array:
    return qc.expectation_diagonal(_evolve(cost, gammas, betas), cost)


def _expectation_fwd(cost, gammas, betas):
    psi = _evolve(cost, gammas, betas)
    return qc.expectation_diagonal(psi, cost), (cost, gammas, betas, psi)


def _expectation_bwd(residuals, g):
    """Adjoint-state gradient: walk the circuit backwards, undoing each layer on the state ``psi`` and on
    ``lam = V^† C psi_p`` (``V`` = the layers after the current point), so that a gate perturbation ``δpsi``
    changes ``E`` by ``2 Re <lam|δpsi>``. Per layer this gives ``dE/dβ = 2 Im <lam|B|psi>`` (after the
    mixer), ``dE/dγ = 2 Im <lam|C|psi>`` and ``dE/dC_k += γ 2 Im(lam_k^* psi_k)`` (after the cost layer).
    Costs about 2x the forward pass (3x in all) and holds two states; autodiff through the layers took 4x
    (n = 14) to 7x (n = 18) the forward pass in all."""
    cost, gammas, betas, psi = residuals
    n = qc.num_qubits(psi)
    d_cost = qc.probabilities(psi)  # the explicit C in <psi|C|psi>

    def back(carry, angles):
        psi, lam, d_cost = carry
        gamma, beta = angles
        bit_flips = sum(qc.apply(psi, qc.X, qubit) for qubit in range(n))  # B psi
        d_beta = 2 * jnp.imag(jnp.vdot(lam, bit_flips))
        psi, lam = _mixer_layer(psi, -beta), _mixer_layer(lam, -beta)
        w = 2 * jnp.imag(jnp.conj(lam) * psi)
        d_gamma = jnp.sum(cost * w)
        psi, lam = _cost_layer(psi, cost, -gamma), _cost_layer(lam, cost, -gamma)
        return (psi, lam, d_cost + gamma * w), (d_gamma, d_beta)

    start = (psi, qc.apply_diagonal(psi, cost), d_cost)
    (_, _, d_cost), (d_gammas, d_betas) = jax.lax.scan(back, start, (gammas, betas), reverse=True)
    return g * d_cost, g * d_gammas, g * d_betas


_expectation.defvjp(_expectation_fwd, _expectation_bwd)


def qaoa_expectation(cost_diag, gammas, betas) -> jax.Array:
    """``<γ, β| C |γ, β>``, a real scalar in the cost's units; arguments as in :func:`qaoa_state`.

    Reverse-mode derivatives (``grad``, w.r.t. all three arguments) use the adjoint-state method, so
    forward mode (``jvp``, ``jacfwd``) is not available; differentiate :func:`qaoa_state` for that.
    """
    return _expectation(*_check_angles(cost_diag, gammas, betas)[:3])


def _check_positive_int(value, name: str) -> int:
    if not isinstance(value, int | np.integer) or value < 1:
        raise ConfigurationError(f"Argument `{name}` must be a positive integer, but is {value!r}")
    return int(value)


def _check_qubo(qubo: QUBO) -> None:
    if not 1 <= qubo.n <= MAX_VARIABLES:
        raise ConfigurationError(
            f"Argument `qubo` must have 1 to {MAX_VARIABLES} variables for a state-vector QAOA, but has {qubo.n}"
        )


def _initial_angles(key: jax.Array, p: int, restarts: int, dtype) -> jax.Array:
    """(restarts, 2, p) starting ``(γ, β)`` for the normalised cost: a linear ramp, then uniform draws."""
    frac = (jnp.arange(p, dtype=dtype) + 0.5) / p
    ramp = jnp.stack([RAMP_STEP * frac, -RAMP_STEP * (1 - frac)])
    kg, kb = jax.random.split(key)
    gammas = jax.random.uniform(kg, (restarts, p), dtype, *GAMMA_RANGE)
    betas = jax.random.uniform(kb, (restarts, p), dtype, *BETA_RANGE)
    return jnp.stack([gammas, betas], axis=1).at[0].set(ramp)


def _restart_batch(restarts: int) -> int:
    """How many restarts to vmap together: all of them on an accelerator, one at a time on CPU, where a
    vmapped batch of 8 was no faster for n <= 10 and 1.3x (n = 12) to 1.5x (n = 16) slower per Adam step
    (the batch of states falls out of cache)."""
    return restarts if jax.default_backend() != "cpu" else 1


@functools.partial(jax.jit, static_argnames=("steps", "batch"))
def _adam(
    cost: jax.Array, init: jax.Array, learning_rate: jax.Array, steps: int, batch: int
) -> tuple[jax.Array, jax.Array]:
    """Adam on ``qaoa_expectation`` from each (2, p) start in ``init``, vmapped over ``batch`` restarts at a time.

    Returns the final angles (restarts, 2, p) and the expectation before each step (restarts, steps).
    """
    opt = optax.adam(learning_rate)
    loss = jax.value_and_grad(lambda a: qaoa_expectation(cost, a[0], a[1]))

    def run(a0):
        def step(carry, _):
            a, state = carry
            value, grad = loss(a)
            # optax's bias correction raises a weak float to an int32 count, which strict promotion rejects
            with jax.numpy_dtype_promotion("standard"):
                updates, state = opt.update(grad, state, a)
            return (optax.apply_updates(a, updates), state), value

        (a, _), history = jax.lax.scan(step, (a0, opt.init(a0)), None, length=steps)
        return a, history

    return jax.lax.map(run, init, batch_size=batch)


def optimize_angles(
    qubo: QUBO, p: int, key: jax.Array, *, steps: int = 200, learning_rate: float = 0.05, restarts: int = 8
) -> QAOAResult:
    """Depth-``p`` QAOA angles minimising ``<C>`` for ``qubo``, by Adam from ``restarts`` starts.

    Runs on the normalised cost (module docstring) in the default float dtype (float64 under x64).

    Args:
        qubo: the problem, ``n <= MAX_VARIABLES`` variables.
        p: number of layers.
        key: PRNG key for the random starts (restart 0 is a deterministic linear ramp).
        steps: Adam steps per restart.
        learning_rate: Adam step size, in normalised angle units.
        restarts: independent starts, vmapped on accelerators (one after another on CPU); the one with the
            lowest final ``<C>`` is returned.

    Example:
        >>> r = optimize_angles(qubo, p=2, key=jax.random.key(0))
        >>> r.expectation, r.p_optimum, r.history[:, -1]
    """
    _check_qubo(qubo)
    p, steps, restarts = (
        _check_positive_int(v, name) for v, name in ((p, "p"), (steps, "steps"), (restarts, "restarts"))
    )
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ConfigurationError(f"Argument `learning_rate` must be positive and finite, but is {learning_rate!r}")
    cost = all_energies(qubo)
    shift, scale = float(jnp.mean(cost)), float(jnp.std(cost))
    # a constant cost (every state optimal) has std 0; any scale then gives the same (trivial) problem
    scale = scale if scale > 0 else 1.0
    normalised = (cost - shift) / scale
    init = _initial_angles(key, p, restarts, cost.dtype)
    lr = jnp.asarray(learning_rate, cost.dtype)
    angles, history = _adam(normalised, init, lr, steps, _restart_batch(restarts))
    final = jax.vmap(lambda a: qaoa_expectation(normalised, a[0], a[1]))(angles)
    best = int(jnp.argmin(final))
    gammas, betas = angles[best, 0] / scale, angles[best, 1]
    probs = qc.probabilities(qaoa_state(cost, gammas, betas))
    min_energy = jnp.min(cost)
    # energies come from float arithmetic: states within a few ulps of the minimum count as optimal
    atol = 64 * jnp.finfo(cost.dtype).eps * jnp.maximum(1.0, jnp.max(jnp.abs(cost)))
    return QAOAResult(
        gammas=np.asarray(gammas),
        betas=np.asarray(betas),
        expectation=float(jnp.sum(probs * cost)),
        p_optimum=float(jnp.sum(jnp.where(cost <= min_energy + atol, probs, 0.0))),
        min_energy=float(min_energy),
        cost_shift=shift,
        cost_scale=scale,
        restart_gammas=np.asarray(angles[:, 0]) / scale,
        restart_betas=np.asarray(angles[:, 1]),
        restart_expectations=shift + scale * np.asarray(final),
        history=shift + scale * np.asarray(history),
    )


def solve(
    qubo: QUBO,
    key: jax.Array,
    *,
    p: int = 3,
    shots: int = 1024,
    steps: int = 200,
    learning_rate: float = 0.05,
    restarts: int = 8,
) -> tuple[np.ndarray, float, QAOAResult]:
    """Optimise depth-``p`` QAOA angles, sample ``shots`` bitstrings from the state, keep the best.

    Returns ``(best_x, best_energy, result)``: ``best_x`` (n,) uint8 is the lowest-energy sampled
    bitstring (variable order of ``qubo``), ``best_energy`` its energy, ``result`` the
    :class:`QAOAResult` (with ``p_optimum``, the chance that one shot hits the optimum). Other arguments
    as in :func:`optimize_angles`.

    Example:
        >>> x, e, r = solve(qubo, jax.random.key(0), p=3, shots=512)
        >>> e >= r.min_energy
    """
    shots = _check_positive_int(shots, "shots")
    k_angles, k_shots = jax.random.split(key)
    result = optimize_angles(qubo, p, k_angles, steps=steps, learning_rate=learning_rate, restarts=restarts)
    psi = qaoa_state(all_energies(qubo), result.gammas, result.betas)
    bits = qc.sample(k_shots, psi, shots)
    energies = energy(qubo, bits)
    best = int(jnp.argmin(energies))
    return np.asarray(bits[best]), float(energies[best]), result
