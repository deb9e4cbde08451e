"""QAOA against independent references: SciPy expm of the explicit Hamiltonians, the p = 1 closed form for
one MaxCut edge, finite differences, and brute-force optima.

Tolerances (float64, conftest enables x64): states 1e-10, closed form 1e-12, gradients 1e-6 relative.
Optimisation runs share one compiled configuration (n = 6, STEPS, RESTARTS) to keep compile time down.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

from qsn.errors import ConfigurationError
from qsn.qubo import qaoa
from qsn.qubo.model import all_energies, energy, make_qubo

STEPS, RESTARTS = 150, 4
X = np.array([[0.0, 1.0], [1.0, 0.0]])


def random_qubo(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return make_qubo(rng.normal(size=(n, n)), offset=float(rng.normal()))


def brute_force_energies(qubo) -> np.ndarray:
    """(2^n,) ``x^T Q x + offset`` by a loop over bitstrings, variable 0 the most significant bit."""
    n = qubo.n
    xs = [np.array([int(c) for c in np.binary_repr(k, n)], dtype=float) for k in range(2**n)]
    return np.array([x @ qubo.q @ x + qubo.offset for x in xs])


def mixer_hamiltonian(n: int) -> np.ndarray:
    """``B = sum_j X_j`` as a dense (2^n, 2^n) matrix."""
    eye = [np.eye(2)] * n
    return sum(functools.reduce(np.kron, eye[:j] + [X] + eye[j + 1 :]) for j in range(n))


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 3, 6])
def test_state_equals_expm_of_hamiltonians(n, p):
    qubo = random_qubo(n, seed=10 * n + p)
    cost = brute_force_energies(qubo)
    np.testing.assert_allclose(all_energies(qubo), cost, atol=1e-12)
    rng = np.random.default_rng(p)
    gammas, betas = rng.uniform(-2, 2, p), rng.uniform(-2, 2, p)
    want = np.full(2**n, 2.0 ** (-n / 2), dtype=complex)
    b = mixer_hamiltonian(n)
    for gamma, beta in zip(gammas, betas):
        want = expm(-1j * beta * b) @ (expm(-1j * gamma * np.diag(cost)) @ want)
    psi = qaoa.qaoa_state(jnp.asarray(cost), gammas, betas)
    assert psi.dtype == jnp.complex128
    np.testing.assert_allclose(psi, want, atol=1e-10)
    np.testing.assert_allclose(qaoa.qaoa_expectation(cost, gammas, betas), np.vdot(want, cost * want).real, atol=1e-10)


def test_float32_cost_gives_complex64_state():
    cost = brute_force_energies(random_qubo(4, seed=0))
    g, b = np.array([0.3, -0.2]), np.array([-0.4, 0.1])
    psi32 = qaoa.qaoa_state(jnp.asarray(cost, jnp.float32), g, b)
    assert psi32.dtype == jnp.complex64
    np.testing.assert_allclose(psi32, qaoa.qaoa_state(cost, g, b), atol=1e-5)


def test_p1_single_edge_closed_form():
    """MaxCut on one edge as a QUBO, E = -(x0 + x1 - 2 x0 x1) = -1/2 + Z0 Z1 / 2: in the Heisenberg picture
    Z0 Z1 -> (cos2β Z0 + sin2β Y0)(cos2β Z1 + sin2β Y1), and in exp(-iγ Z0Z1/2)|++> only <Z0 Y1> = <Y0 Z1>
    = sin γ survive, so <E> = -1/2 + sin(4β) sin(γ) / 2."""
    qubo = make_qubo(np.array([[-1.0, 1.0], [1.0, -1.0]]))
    gamma, beta = np.meshgrid(np.linspace(-np.pi, np.pi, 13), np.linspace(-np.pi / 2, np.pi / 2, 11))
    cost = all_energies(qubo)
    got = jax.vmap(lambda g, b: qaoa.qaoa_expectation(cost, g[None], b[None]))(gamma.ravel(), beta.ravel())
    np.testing.assert_allclose(got, -0.5 + np.sin(4 * beta.ravel()) * np.sin(gamma.ravel()) / 2, atol=1e-12)


def test_gradient_equals_finite_differences():
    """The adjoint-state gradient of qaoa_expectation against central differences (angles) and against
    autodiff through qaoa_state (cost diagonal), also under vmap."""
    cost = jnp.asarray(brute_force_energies(random_qubo(4, seed=3)))
    rng = np.random.default_rng(3)
    gammas, betas = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
    grad_c, grad_g, grad_b = jax.grad(qaoa.qaoa_expectation, argnums=(0, 1, 2))(cost, gammas, betas)
    h = 1e-6
    f = lambda g, b: float(qaoa.qaoa_expectation(cost, g, b))  # noqa: E731
    for k in range(3):
        e = np.eye(3)[k] * h
        fd_g = (f(gammas + e, betas) - f(gammas - e, betas)) / (2 * h)
        fd_b = (f(gammas, betas + e) - f(gammas, betas - e)) / (2 * h)
        np.testing.assert_allclose(grad_g[k], fd_g, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(grad_b[k], fd_b, rtol=1e-6, atol=1e-8)
    assert np.max(np.abs(grad_g)) > 1e-2  # not a flat spot where every check passes trivially

    def through_state(c, g, b):
        psi = qaoa.qaoa_state(c, g, b)
        return jnp.sum((jnp.real(psi) ** 2 + jnp.imag(psi) ** 2) * c)

    np.testing.assert_allclose(grad_c, jax.grad(through_state)(cost, gammas, betas), atol=1e-12)
    batch = jnp.stack([gammas, -gammas])
    batched = jax.vmap(jax.grad(qaoa.qaoa_expectation, argnums=1), in_axes=(None, 0, None))(cost, batch, betas)
    np.testing.assert_allclose(batched[0], grad_g, atol=1e-12)
    np.testing.assert_allclose(batched[1], jax.grad(qaoa.qaoa_expectation, argnums=1)(cost, -gammas, betas), atol=1e-12)


@functools.cache
def optimized(seed: int, p: int, scale: float = 1.0):
    qubo = random_qubo(6, seed)
    qubo = make_qubo(scale * qubo.q, scale * qubo.offset)
    return qubo, qaoa.optimize_angles(qubo, p, jax.random.key(seed), steps=STEPS, restarts=RESTARTS)


@pytest.mark.parametrize("p", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimised_qaoa_beats_uniform_sampling(seed, p):
    qubo, r = optimized(seed, p)
    cost = brute_force_energies(qubo)
    probs = np.abs(np.asarray(qaoa.qaoa_state(cost, r.gammas, r.betas))) ** 2
    # p_optimum recomputed from the returned angles acting on the raw cost, and the brute-force optimum
    np.testing.assert_allclose(r.p_optimum, probs[np.isclose(cost, cost.min(), atol=1e-9)].sum(), atol=1e-10)
    np.testing.assert_allclose(r.min_energy, cost.min(), atol=1e-10)
    np.testing.assert_allclose(r.expectation, probs @ cost, atol=1e-10)
    assert r.p_optimum > 2 * 2.0**-6  # uniform sampling gives 2^-6
    assert r.expectation < cost.mean() - 0.5 * cost.std()
    # bookkeeping: the best restart is reported, and Adam lowered <C> from its start
    assert r.restart_gammas.shape == r.restart_betas.shape == (RESTARTS, p)
    assert r.history.shape == (RESTARTS, STEPS)
    np.testing.assert_allclose(r.expectation, r.restart_expectations.min(), atol=1e-10)
    assert np.all(r.restart_expectations <= r.history[:, 0] + 1e-12)


def test_cost_normalisation_makes_angles_scale_free():
    """Scaling the QUBO by 10 scales the returned γ by 1/10 and leaves β and the state's statistics alone."""
    _, r1 = optimized(0, 2)
    _, r10 = optimized(0, 2, scale=10.0)
    np.testing.assert_allclose(r10.gammas * 10.0, r1.gammas, rtol=1e-8)
    np.testing.assert_allclose(r10.betas, r1.betas, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(r10.p_optimum, r1.p_optimum, rtol=1e-8)
    np.testing.assert_allclose(r10.expectation, 10.0 * r1.expectation, rtol=1e-8)
    np.testing.assert_allclose(r10.cost_scale, 10.0 * r1.cost_scale, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_solve_finds_brute_force_optimum(seed):
    qubo = random_qubo(6, seed)
    cost = brute_force_energies(qubo)
    x, e, r = qaoa.solve(qubo, jax.random.key(seed), p=2, shots=256, steps=STEPS, restarts=RESTARTS)
    assert x.shape == (6,) and x.dtype == np.uint8
    np.testing.assert_allclose(e, cost.min(), atol=1e-9)
    np.testing.assert_allclose(float(energy(qubo, x)), e, atol=1e-12)
    # 256 shots each hitting the optimum with probability p_optimum: missing it has chance (1 - p)^256
    assert (1 - r.p_optimum) ** 256 < 1e-6


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: qaoa.optimize_angles(make_qubo(np.eye(25)), 1, jax.random.key(0)), "`qubo` must have 1 to 24"),
        (lambda: qaoa.optimize_angles(random_qubo(3, 0), 0, jax.random.key(0)), "`p` must be a positive integer"),
        (lambda: qaoa.optimize_angles(random_qubo(3, 0), 1, jax.random.key(0), steps=0), "`steps`"),
        (lambda: qaoa.optimize_angles(random_qubo(3, 0), 1, jax.random.key(0), restarts=1.5), "`restarts`"),
        (lambda: qaoa.optimize_angles(random_qubo(3, 0), 1, jax.random.key(0), learning_rate=-1.0), "`learning_rate`"),
        (lambda: qaoa.solve(random_qubo(3, 0), jax.random.key(0), shots=0), "`shots`"),
        (lambda: qaoa.qaoa_state(jnp.zeros(6), [0.1], [0.1]), "`cost_diag` must have shape \\(2\\^n,\\)"),
        (lambda: qaoa.qaoa_state(jnp.zeros(4, jnp.complex64), [0.1], [0.1]), "`cost_diag` must be real"),
        (lambda: qaoa.qaoa_state(jnp.zeros(4), [0.1, 0.2], [0.1]), "`betas` must have shape \\(2,\\)"),
        (lambda: qaoa.qaoa_state(jnp.zeros(4), [], []), "`gammas` must have shape \\(p,\\) with p >= 1"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ConfigurationError, match=match):
        call()
