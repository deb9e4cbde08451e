"""qsn.circuits against explicit matrices: gates built from np.kron with identities, SciPy expm for the
rotations, scipy.stats for sampling.

Tolerances: complex64 1e-6, complex128 1e-12 (conftest enables x64; dtypes are passed explicitly).
Random states come from a seeded NumPy generator; sampling uses fixed keys, so every test is deterministic.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.linalg import expm

import qsn.circuits as qc
from qsn.errors import ConfigurationError

TOL = {jnp.complex64: 1e-6, jnp.complex128: 1e-12}
DTYPES = list(TOL)
I2 = np.eye(2)


def embed(gate: np.ndarray, qubits: tuple[int, ...], n: int) -> np.ndarray:
    """``gate`` on ``qubits`` as an explicit (2^n, 2^n) matrix: ``sum_ab g_ab ⊗_q |a_q><b_q|`` (np.kron)."""
    gate = np.asarray(gate)
    k = len(qubits)
    full = np.zeros((2**n, 2**n), dtype=np.complex128)
    for a, b in itertools.product(range(2**k), repeat=2):
        factors = [I2] * n
        for pos, q in enumerate(qubits):
            bit_a, bit_b = (a >> (k - 1 - pos)) & 1, (b >> (k - 1 - pos)) & 1
            factors[q] = np.outer(I2[bit_a], I2[bit_b])
        full += gate[a, b] * functools.reduce(np.kron, factors)
    return full


def random_state(rng: np.random.Generator, n: int) -> np.ndarray:
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    return psi / np.linalg.norm(psi)


def random_unitary(rng: np.random.Generator, d: int) -> np.ndarray:
    return scipy.stats.unitary_group.rvs(d, random_state=rng)


ONE_QUBIT = {
    "H": qc.H, "X": qc.X, "Y": qc.Y, "Z": qc.Z, "S": qc.S, "T": qc.T,
    "rx": qc.rx(0.7), "ry": qc.ry(-1.3), "rz": qc.rz(2.1), "phase": qc.phase(0.4),
}  # fmt: skip
TWO_QUBIT = {
    "CNOT": qc.CNOT, "CZ": qc.CZ, "SWAP": qc.SWAP, "rzz": qc.rzz(0.9),
    "controlled-ry": qc.controlled(qc.ry(0.3)),
    "random": random_unitary(np.random.default_rng(7), 4),
}  # fmt: skip


# --- gate definitions ---------------------------------------------------------------------------


@pytest.mark.parametrize("theta", [0.0, 0.37, -2.5, 7.0])
def test_rotations_are_exponentials(theta):
    np.testing.assert_allclose(qc.rx(theta), expm(-0.5j * theta * qc.X), atol=1e-12)
    np.testing.assert_allclose(qc.ry(theta), expm(-0.5j * theta * qc.Y), atol=1e-12)
    np.testing.assert_allclose(qc.rz(theta), expm(-0.5j * theta * qc.Z), atol=1e-12)
    np.testing.assert_allclose(qc.rzz(theta), expm(-0.5j * theta * np.kron(qc.Z, qc.Z)), atol=1e-12)
    np.testing.assert_allclose(qc.phase(theta), np.exp(0.5j * theta) * expm(-0.5j * theta * qc.Z), atol=1e-12)


def test_constant_gates():
    np.testing.assert_allclose(qc.H @ qc.H, I2, atol=1e-15)
    np.testing.assert_allclose(qc.S @ qc.S, qc.Z, atol=1e-15)
    np.testing.assert_allclose(qc.T @ qc.T, qc.S, atol=1e-15)
    np.testing.assert_allclose(qc.X @ qc.Y, 1j * qc.Z, atol=1e-15)
    np.testing.assert_array_equal(qc.controlled(qc.X), qc.CNOT)
    np.testing.assert_array_equal(qc.controlled(qc.Z), qc.CZ)
    np.testing.assert_array_equal(qc.CNOT @ embed(qc.CNOT, (1, 0), 2) @ qc.CNOT, qc.SWAP)
    with pytest.raises(ValueError):
        qc.X[0, 0] = 2  # constants are read-only


def test_gate_dtype_follows_angle_precision():
    assert qc.rx(np.float32(0.1)).dtype == jnp.complex64
    assert qc.rzz(np.float64(0.1)).dtype == jnp.complex128
    assert qc.phase(1).dtype == jnp.complex128  # integers count as the default float (x64 in tests)


# --- gate application vs explicit Kronecker products --------------------------------------------


# One compiled call per qubit tuple, applying a stack of gates (a vmapped gate axis): eager dispatch would
# compile every primitive for every new shape, ten times slower here.
apply_each = jax.jit(jax.vmap(qc.apply, in_axes=(None, 0, None)), static_argnums=2)


def check_gates(gates: dict, qubits: tuple[int, ...], psi: np.ndarray, dtype) -> None:
    got = apply_each(jnp.asarray(psi, dtype), jnp.stack([jnp.asarray(g, dtype) for g in gates.values()]), qubits)
    assert got.dtype == dtype
    n = int(np.log2(psi.size))
    for name, gate, out in zip(gates, gates.values(), got):
        np.testing.assert_allclose(out, embed(gate, qubits, n) @ psi, atol=TOL[dtype], err_msg=f"{name} on {qubits}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", range(1, 7))
def test_one_qubit_gates_match_kron(n, dtype):
    psi = random_state(np.random.default_rng(n), n)
    for q in range(n):
        check_gates(ONE_QUBIT, (q,), psi, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", range(2, 7))
def test_two_qubit_gates_match_kron(n, dtype):
    """Every ordered pair up to 4 qubits; on 5 and 6, both orders of adjacent, distant and end pairs."""
    psi = random_state(np.random.default_rng(10 + n), n)
    pairs = itertools.permutations(range(n), 2) if n <= 4 else [(0, 1), (1, 0), (0, n - 1), (n - 1, 0), (1, 3), (4, 2)]
    for pair in pairs:
        check_gates(TWO_QUBIT, pair, psi, dtype)


@pytest.mark.parametrize("qubits", [(0, 1, 2), (4, 0, 2), (3, 4, 1)])
def test_three_qubit_gate_matches_kron(qubits):
    rng = np.random.default_rng(3)
    psi, gate = random_state(rng, 5), random_unitary(rng, 8)
    got = qc.apply(jnp.asarray(psi, jnp.complex128), gate, qubits)
    np.testing.assert_allclose(got, embed(gate, qubits, 5) @ psi, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_diagonal_and_expectations_match_matrices(dtype):
    rng = np.random.default_rng(5)
    n = 4
    psi, d = random_state(rng, n), rng.normal(size=2**n)
    a = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    op = a + a.conj().T  # Hermitian
    x = jnp.asarray(psi, dtype)
    np.testing.assert_allclose(qc.apply_diagonal(x, np.exp(1j * d)), np.exp(1j * d) * psi, atol=TOL[dtype])
    np.testing.assert_allclose(qc.expectation_diagonal(x, d), np.vdot(psi, d * psi).real, atol=10 * TOL[dtype])
    for pair in [(0, 1), (3, 1), (2, 0)]:
        want = np.vdot(psi, embed(op, pair, n) @ psi).real
        np.testing.assert_allclose(qc.expectation(x, op, pair), want, atol=10 * TOL[dtype])


def test_no_dense_operator_is_built():
    """No intermediate of a 2-qubit gate application on 10 qubits is larger than the state itself."""
    n = 10
    jaxpr = jax.make_jaxpr(lambda psi, g: qc.apply(psi, g, (7, 2)))(qc.zero_state(n), jnp.asarray(qc.CNOT))
    sizes = [int(np.prod(v.aval.shape)) for eqn in jaxpr.eqns for v in eqn.outvars]
    assert max(sizes) == 2**n


# --- properties ---------------------------------------------------------------------------------


apply_jit = jax.jit(qc.apply, static_argnums=2)  # compiled once per (n, qubits), reused across examples


@st.composite
def circuits(draw):
    """``(n, [(gate, qubits), ...])`` with random gates on random qubits, 1 to 5 qubits."""
    n = draw(st.integers(1, 5))
    angle = st.floats(-10.0, 10.0)
    ops = []
    for _ in range(draw(st.integers(1, 12))):
        if n >= 2 and draw(st.booleans()):
            pair = tuple(draw(st.permutations(range(n)))[:2])
            gate = draw(st.sampled_from([qc.CNOT, qc.CZ, qc.SWAP, None]))
            ops.append((qc.rzz(draw(angle)) if gate is None else gate, pair))
        else:
            make = draw(st.sampled_from([qc.rx, qc.ry, qc.rz, qc.phase, lambda _: qc.H, lambda _: qc.T]))
            ops.append((make(draw(angle)), draw(st.integers(0, n - 1))))
    return n, ops


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuits(), st.integers(0, 2**32 - 1))
def test_random_circuits_preserve_norm_and_overlaps(circuit, seed):
    n, ops = circuit
    rng = np.random.default_rng(seed)
    phi, psi = (jnp.asarray(random_state(rng, n)) for _ in range(2))
    overlap = jnp.vdot(phi, psi)
    for gate, qubits in ops:
        phi, psi = apply_jit(phi, gate, qubits), apply_jit(psi, gate, qubits)
    assert abs(float(jnp.sum(qc.probabilities(psi))) - 1.0) < 1e-12
    assert abs(complex(jnp.vdot(phi, psi)) - complex(overlap)) < 1e-12


# --- measurement --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_bell_state(dtype):
    bell = qc.apply(qc.apply(qc.zero_state(2, dtype), qc.H, 0), qc.CNOT, (0, 1))
    np.testing.assert_allclose(qc.probabilities(bell), [0.5, 0.0, 0.0, 0.5], atol=TOL[dtype])
    for q in (0, 1):
        np.testing.assert_allclose(qc.marginal(bell, q), [0.5, 0.5], atol=TOL[dtype])
        np.testing.assert_allclose(qc.expectation(bell, qc.Z, q), 0.0, atol=TOL[dtype])
    for op, want in [(np.kron(qc.Z, qc.Z), 1.0), (np.kron(qc.X, qc.X), 1.0), (np.kron(qc.Y, qc.Y), -1.0)]:
        np.testing.assert_allclose(qc.expectation(bell, op, (0, 1)), want, atol=TOL[dtype])
    bits = np.asarray(qc.sample(jax.random.key(0), bell, 1000))
    assert bits.shape == (1000, 2) and bits.dtype == np.uint8
    np.testing.assert_array_equal(bits[:, 0], bits[:, 1])  # perfectly correlated
    assert 400 < bits[:, 0].sum() < 600


def test_basis_states_and_bit_order():
    bits = [0, 1, 1, 0, 1]
    psi = qc.basis_state(bits, jnp.complex128)
    assert int(jnp.argmax(qc.probabilities(psi))) == 0b01101
    np.testing.assert_array_equal(qc.sample(jax.random.key(1), psi, 7), np.tile(bits, (7, 1)))
    np.testing.assert_array_equal(qc.zero_state(3), qc.basis_state([0, 0, 0]))
    # X on qubit 0 flips the most significant bit
    assert int(jnp.argmax(qc.probabilities(qc.apply(qc.zero_state(3), qc.X, 0)))) == 0b100


@pytest.mark.parametrize("dtype", DTYPES)
def test_sampling_frequencies_match_probabilities(dtype):
    """Pearson chi-square on 4 qubits, 16 outcomes, 50k shots at fixed keys: for a correct sampler the
    p-value is uniform over keys, so it sits above 1e-6 for all but one key in a million; a wrong bit
    order or a biased sampler gives p ~ 0."""
    n, shots = 4, 50_000
    rng = np.random.default_rng(11)
    psi = random_state(rng, n)
    probs = np.abs(psi) ** 2
    bits = np.asarray(qc.sample(jax.random.key(2024), jnp.asarray(psi, dtype), shots))
    index = bits.astype(np.int64) @ (1 << np.arange(n - 1, -1, -1))
    counts = np.bincount(index, minlength=2**n)
    assert scipy.stats.chisquare(counts, shots * probs).pvalue > 1e-6
    # the marginal of qubits (2, 0) in the samples, against marginal()
    sub = bits[:, 2].astype(np.int64) * 2 + bits[:, 0]
    counts = np.bincount(sub, minlength=4)
    assert scipy.stats.chisquare(counts, shots * np.asarray(qc.marginal(jnp.asarray(psi), (2, 0)))).pvalue > 1e-6


@pytest.mark.parametrize("qubits", [(0,), (2,), (1, 3), (3, 1), (2, 0, 3), (3, 2, 1, 0), (0, 1, 2, 3)])
def test_marginals(qubits):
    n = 4
    psi = random_state(np.random.default_rng(4), n)
    p = (np.abs(psi) ** 2).reshape((2,) * n)
    rest = tuple(i for i in range(n) if i not in qubits)
    want = np.transpose(p.sum(axis=rest, keepdims=True), qubits + rest).ravel()
    got = qc.marginal(jnp.asarray(psi), qubits)
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(float(jnp.sum(got)), 1.0, atol=1e-12)


# --- XOR ----------------------------------------------------------------------------------------


VALID_XOR = [0b000, 0b011, 0b101, 0b110]  # |a b (a XOR b)>
xor_state = jax.jit(qc.xor_state, static_argnums=2)  # one compilation per dtype, not per angle


@pytest.mark.parametrize("a, b", list(itertools.product((0, 1), repeat=2)))
def test_xor_truth_table(a, b):
    psi = qc.xor_circuit(a, b, jnp.complex128)
    want = np.zeros(8)
    want[(a << 2) | (b << 1) | (a ^ b)] = 1.0
    np.testing.assert_array_equal(qc.probabilities(psi), want)
    np.testing.assert_array_equal(qc.marginal(psi, 2), [1 - (a ^ b), a ^ b])
    np.testing.assert_allclose(qc.xor_state(np.pi * a, np.pi * b, jnp.complex128), psi, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_xor_on_superposed_inputs(dtype):
    """Inputs ry(θ)|0>, p = sin²(θ/2): the register holds P(a) P(b) on the valid string |a b a^b> and
    nothing elsewhere; the target's marginal is p_a(1 - p_b) + p_b(1 - p_a), the circuit (2 CNOTs) as an
    explicit matrix gives the same state, and the target's derivative in θ_a is the analytic one."""
    gates = embed(qc.CNOT, (1, 2), 3) @ embed(qc.CNOT, (0, 2), 3)
    for theta_a, theta_b in [(0.3, 2.2), (np.pi / 2, 1.0), (-1.7, 0.0), (3.0, np.pi)]:
        pa, pb = np.sin(theta_a / 2) ** 2, np.sin(theta_b / 2) ** 2
        psi = xor_state(theta_a, theta_b, dtype)
        want = np.zeros(8)
        for a, b in itertools.product((0, 1), repeat=2):
            want[(a << 2) | (b << 1) | (a ^ b)] = (pa if a else 1 - pa) * (pb if b else 1 - pb)
        np.testing.assert_allclose(qc.probabilities(psi), want, atol=TOL[dtype])
        np.testing.assert_allclose(qc.marginal(psi, 2)[1], pa * (1 - pb) + pb * (1 - pa), atol=TOL[dtype])
        inputs = np.kron(np.kron(qc.ry(theta_a), qc.ry(theta_b)), I2)[:, 0]
        np.testing.assert_allclose(psi, gates @ inputs, atol=TOL[dtype])

    def target(ta, tb):
        return qc.marginal(qc.xor_state(ta, tb, jnp.complex128), 2)[1]

    ta, tb = 0.8, 2.1
    want = 0.5 * np.sin(ta) * (1 - 2 * np.sin(tb / 2) ** 2)  # d/dθa [pa + pb - 2 pa pb], dpa/dθ = sin θ / 2
    np.testing.assert_allclose(jax.grad(target)(ta, tb), want, atol=1e-12)


def test_xor_on_hadamard_inputs_is_uniform_over_valid_strings():
    """θ = π/2 on both inputs (H|0>): 1/4 on 000, 011, 101, 110, zero elsewhere; the target is
    uncorrelated with each input alone but fixed by both (Bell-like parity correlations), and 40k shots
    at a fixed key pass a chi-square test and never show an invalid string."""
    psi = qc.xor_state(np.pi / 2, np.pi / 2, jnp.complex128)
    want = np.zeros(8)
    want[VALID_XOR] = 0.25
    np.testing.assert_allclose(qc.probabilities(psi), want, atol=1e-15)
    np.testing.assert_allclose(qc.marginal(psi, (0, 2)), [0.25] * 4, atol=1e-15)  # pairwise independent
    np.testing.assert_allclose(qc.expectation(psi, np.kron(np.kron(qc.Z, qc.Z), qc.Z), (0, 1, 2)), 1.0, atol=1e-15)
    shots = 40_000
    bits = np.asarray(qc.sample(jax.random.key(6), psi, shots))
    np.testing.assert_array_equal(bits[:, 2], bits[:, 0] ^ bits[:, 1])
    counts = np.bincount(bits.astype(np.int64) @ np.array([4, 2, 1]), minlength=8)
    assert scipy.stats.chisquare(counts[VALID_XOR], shots * want[VALID_XOR]).pvalue > 1e-6


# --- reduced density matrices and concurrence ---------------------------------------------------


@pytest.mark.parametrize("qubits", [(0,), (2,), (1, 3), (3, 1), (2, 0, 3), (0, 1, 2, 3)])
def test_reduced_density_matrix_is_the_partial_trace(qubits):
    n = 4
    psi = random_state(np.random.default_rng(8), n)
    rest = tuple(i for i in range(n) if i not in qubits)
    t = np.transpose(psi.reshape((2,) * n), qubits + rest)
    m = len(qubits)
    letters = "abcdefgh"
    kept, traced = letters[:m], letters[m:n]
    primed = "ABCD"[:m]
    full = np.einsum(f"{kept}{traced},{primed}{traced}->{kept}{primed}", t, t.conj())
    got = qc.reduced_density_matrix(jnp.asarray(psi), qubits)
    np.testing.assert_allclose(got, full.reshape(2**m, 2**m), atol=1e-12)
    np.testing.assert_allclose(np.trace(got), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.diag(got).real, qc.marginal(jnp.asarray(psi), qubits), atol=1e-12)


def werner(p: float) -> np.ndarray:
    phi = np.array([1.0, 0.0, 0.0, 1.0]) / np.sqrt(2)
    return p * np.outer(phi, phi) + (1 - p) * np.eye(4) / 4


def test_concurrence_closed_forms():
    bells = [np.array(v) / np.sqrt(2) for v in ([1, 0, 0, 1], [1, 0, 0, -1], [0, 1, 1, 0], [0, 1, -1, 0])]
    for bell in bells:
        np.testing.assert_allclose(qc.concurrence(np.outer(bell, bell.conj())), 1.0, atol=1e-12)
    rng = np.random.default_rng(3)
    for _ in range(5):
        product = np.kron(random_state(rng, 1), random_state(rng, 1))
        np.testing.assert_allclose(qc.concurrence(np.outer(product, product.conj())), 0.0, atol=1e-7)
        # pure states: C = 2 |psi00 psi11 - psi01 psi10|
        psi = random_state(rng, 2)
        want = 2 * abs(psi[0] * psi[3] - psi[1] * psi[2])
        np.testing.assert_allclose(qc.concurrence(np.outer(psi, psi.conj())), want, atol=1e-7)
    for p in np.linspace(0.0, 1.0, 11):  # Werner: C = max(0, (3p - 1)/2)
        np.testing.assert_allclose(qc.concurrence(werner(p)), max(0.0, (3 * p - 1) / 2), atol=1e-7)
    assert qc.concurrence(jnp.asarray(werner(0.8), jnp.complex64)).dtype == jnp.float32


def test_concurrence_matches_qutip():
    """Reduced states of random 3- and 4-qubit pure states (mixed, all ranks up to 4) and QuTiP's random
    density matrices, against qutip.concurrence."""
    qutip = pytest.importorskip("qutip")
    rng = np.random.default_rng(12)
    states = [(jnp.asarray(random_state(rng, n)), pair) for n in (3, 4) for pair in [(0, 1), (2, 0)]]
    rhos = [np.asarray(qc.reduced_density_matrix(psi, pair)) for psi, pair in states]
    rhos += [qutip.rand_dm([2, 2], seed=s).full() for s in range(6)]
    for rho in rhos:
        want = qutip.concurrence(qutip.Qobj(rho, dims=[[2, 2], [2, 2]]))
        np.testing.assert_allclose(qc.concurrence(rho), want, atol=1e-7)


# --- transformations ----------------------------------------------------------------------------


def test_jit_vmap_grad():
    """<Z> after rx(θ)|0> is cos θ: check values under jit+vmap and the derivative -sin θ under grad."""

    def z_after_rx(theta):
        return qc.expectation(qc.apply(qc.zero_state(2, jnp.complex128), qc.rx(theta), 1), qc.Z, 1)

    thetas = jnp.linspace(-3.0, 3.0, 7)
    np.testing.assert_allclose(jax.jit(jax.vmap(z_after_rx))(thetas), np.cos(thetas), atol=1e-12)
    np.testing.assert_allclose(jax.vmap(jax.grad(z_after_rx))(thetas), -np.sin(thetas), atol=1e-12)


# --- errors -------------------------------------------------------------------------------------


PSI3 = qc.zero_state(3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: qc.apply(PSI3, qc.X, 3), "`qubits` must be distinct integers in \\[0, 3\\)"),
        (lambda: qc.apply(PSI3, qc.X, -1), "`qubits`"),
        (lambda: qc.apply(PSI3, qc.CNOT, (1, 1)), "`qubits`"),
        (lambda: qc.apply(PSI3, qc.CNOT, ()), "`qubits`"),
        (lambda: qc.apply(PSI3, qc.CNOT, 1), "`gate` must have shape \\(2, 2\\).*has shape \\(4, 4\\)"),
        (lambda: qc.apply(PSI3, qc.X, (0, 1)), "`gate` must have shape \\(4, 4\\)"),
        (lambda: qc.apply(jnp.zeros(6, jnp.complex64), qc.X, 0), "`psi` must have shape \\(2\\^n,\\)"),
        (lambda: qc.apply(jnp.zeros((2, 4), jnp.complex64), qc.X, 0), "`psi`"),
        (lambda: qc.apply(jnp.zeros(4), qc.X, 0), "`psi.dtype` must be a complex dtype"),
        (lambda: qc.zero_state(0), "`n` must be an integer in \\[1, 30\\]"),
        (lambda: qc.zero_state(2, jnp.float32), "`dtype` must be a complex dtype"),
        (lambda: qc.basis_state([0, 2]), "`bits`"),
        (lambda: qc.basis_state([]), "`n`"),
        (lambda: qc.rx(jnp.ones(2)), "`theta` must be a scalar"),
        (lambda: qc.phase(1j), "`phi` must be real"),
        (lambda: qc.controlled(qc.CNOT), "`u` must have shape \\(2, 2\\)"),
        (lambda: qc.apply_diagonal(PSI3, jnp.ones(4)), "`diag` must have shape \\(8,\\)"),
        (lambda: qc.expectation_diagonal(PSI3, jnp.ones(8, jnp.complex64)), "`diag` must be real"),
        (lambda: qc.sample(jax.random.key(0), PSI3, 0), "`shots` must be a positive integer"),
        (lambda: qc.marginal(PSI3, (0, 0)), "`qubits`"),
        (lambda: qc.reduced_density_matrix(PSI3, 3), "`qubits`"),
        (lambda: qc.concurrence(jnp.eye(2)), "`rho` must have shape \\(4, 4\\)"),
        (lambda: qc.xor_circuit(2, 0), "`a` must be a bit"),
        (lambda: qc.xor_circuit(0, 0.5), "`b` must be a bit"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ConfigurationError, match=match):
        call()
