"""A small state-vector simulator for circuits of a few tens of qubits (QAOA, tests, demos).

A state of ``n`` qubits is a flat complex vector ``psi`` of shape ``(2^n,)``. Basis convention: index
``k = sum_i b_i 2^(n-1-i)``, so qubit 0 is the most significant bit (``np.kron`` order, as in QuTiP
and :mod:`qsn.scheduler.qubo`); ``|0> = (1, 0)``, ``Z|0> = +|0>``. Units: ħ = 1, angles in radians,
rotations are ``R_P(θ) = exp(-i θ/2 P)``.

Gates act by viewing ``psi`` as a tensor of shape ``(2,)*n`` and contracting the gate with the axes of
its qubits, so no ``2^n × 2^n`` matrix is ever built: applying a ``k``-qubit gate costs ``O(4^k 2^n)``.
Every function is pure and works under ``jit``, ``vmap`` and ``grad`` (gate matrices and angles may be
traced; qubit indices, qubit counts and shot counts are static Python integers). Arguments are checked
in Python from shapes alone, so the checks also run while tracing.

Example:
    >>> import jax, qsn.circuits as qc
    >>> psi = qc.apply(qc.apply(qc.zero_state(2), qc.H, 0), qc.CNOT, (0, 1))   # Bell state
    >>> qc.probabilities(psi)                                                    # [0.5, 0, 0, 0.5]
    >>> qc.sample(jax.random.key(0), psi, shots=4)                               # (4, 2) uint8 rows 00 or 11
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError

__all__ = [
    "MAX_QUBITS",
    "H",
    "X",
    "Y",
    "Z",
    "S",
    "T",
    "CNOT",
    "CZ",
    "SWAP",
    "rx",
    "ry",
    "rz",
    "phase",
    "rzz",
    "controlled",
    "zero_state",
    "basis_state",
    "num_qubits",
    "apply",
    "apply_diagonal",
    "probabilities",
    "expectation_diagonal",
    "expectation",
    "sample",
    "marginal",
    "reduced_density_matrix",
    "concurrence",
    "xor_circuit",
    "xor_state",
]

MAX_QUBITS = 30  # 2^30 complex64 amplitudes = 8 GiB; beyond this a dense state vector is not the tool

Qubits = int | Sequence[int]


def _constant(rows) -> np.ndarray:
    """A read-only complex128 NumPy matrix (NumPy, so that importing this module starts no JAX backend)."""
    m = np.array(rows, dtype=np.complex128)
    m.flags.writeable = False
    return m


_R = 1.0 / math.sqrt(2.0)
H = _constant([[_R, _R], [_R, -_R]])  # Hadamard
X = _constant([[0, 1], [1, 0]])  # Pauli X (NOT)
Y = _constant([[0, -1j], [1j, 0]])  # Pauli Y
Z = _constant([[1, 0], [0, -1]])  # Pauli Z
S = _constant([[1, 0], [0, 1j]])  # sqrt(Z)
T = _constant([[1, 0], [0, np.exp(1j * np.pi / 4)]])  # sqrt(S)
# Two-qubit gates on ``(q0, q1)`` in the basis |q0 q1> = |00>, |01>, |10>, |11>; control = q0.
CNOT = _constant([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
CZ = _constant(np.diag([1, 1, 1, -1]))
SWAP = _constant([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


# --- parametrised gates -------------------------------------------------------------------------


def _angle(theta, name: str) -> tuple[jax.Array, jnp.dtype]:
    """``theta`` as a real scalar array, and the complex dtype of matching precision."""
    theta = jnp.asarray(theta)
    if theta.ndim != 0:
        raise ConfigurationError(
            f"Argument `{name}` must be a scalar angle (vmap for batches), but has shape {theta.shape}"
        )
    if jnp.issubdtype(theta.dtype, jnp.complexfloating):
        raise ConfigurationError(f"Argument `{name}` must be real, but has dtype {theta.dtype}")
    if not jnp.issubdtype(theta.dtype, jnp.floating):
        theta = theta.astype(jnp.result_type(float))
    cdtype = jnp.complex128 if theta.dtype == jnp.float64 else jnp.complex64
    return theta, cdtype


def _diag(*entries: jax.Array) -> jax.Array:
    d = jnp.stack(entries)
    return jnp.diag(d)


def rx(theta) -> jax.Array:
    """``exp(-i θ/2 X)``, (2, 2); complex64 for a float32 angle, complex128 for float64."""
    theta, cdt = _angle(theta, "theta")
    c, s = jnp.cos(theta / 2).astype(cdt), jnp.sin(theta / 2).astype(cdt)
    return jnp.stack([jnp.stack([c, -1j * s]), jnp.stack([-1j * s, c])])


def ry(theta) -> jax.Array:
    """``exp(-i θ/2 Y)``, (2, 2); real entries ``[[c, -s], [s, c]]`` with ``c, s = cos, sin(θ/2)``."""
    theta, cdt = _angle(theta, "theta")
    c, s = jnp.cos(theta / 2).astype(cdt), jnp.sin(theta / 2).astype(cdt)
    return jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])


def rz(theta) -> jax.Array:
    """``exp(-i θ/2 Z) = diag(e^{-iθ/2}, e^{iθ/2})``, (2, 2)."""
    theta, cdt = _angle(theta, "theta")
    e = jnp.exp(-0.5j * theta.astype(cdt))
    return _diag(e, jnp.conj(e))


def phase(phi) -> jax.Array:
    """``diag(1, e^{iφ})``, (2, 2): ``rz(φ)`` up to the global phase ``e^{iφ/2}``."""
    phi, cdt = _angle(phi, "phi")
    return _diag(jnp.ones((), cdt), jnp.exp(1j * phi.astype(cdt)))


def rzz(theta) -> jax.Array:
    """``exp(-i θ/2 Z⊗Z) = diag(e^{-iθ/2}, e^{iθ/2}, e^{iθ/2}, e^{-iθ/2})``, (4, 4)."""
    theta, cdt = _angle(theta, "theta")
    e = jnp.exp(-0.5j * theta.astype(cdt))
    return _diag(e, jnp.conj(e), jnp.conj(e), e)


def controlled(u) -> jax.Array:
    """The (4, 4) gate that applies the one-qubit ``u`` (2, 2) to ``q1`` when ``q0`` is |1>, on ``(q0, q1)``.

    ``controlled(X)`` is :data:`CNOT`; ``controlled(phase(φ))`` is the controlled phase.
    """
    u = jnp.asarray(u)
    if u.shape != (2, 2):
        raise ConfigurationError(f"Argument `u` must have shape (2, 2), but has shape {u.shape}")
    if not jnp.issubdtype(u.dtype, jnp.complexfloating):
        u = u.astype(jnp.result_type(complex))
    return jnp.eye(4, dtype=u.dtype).at[2:, 2:].set(u)


# --- states -------------------------------------------------------------------------------------


def _check_n(n: int) -> None:
    if not isinstance(n, int | np.integer) or not 1 <= n <= MAX_QUBITS:
        raise ConfigurationError(f"Argument `n` must be an integer in [1, {MAX_QUBITS}], but is {n!r}")


def _check_complex(dtype, name: str = "dtype") -> None:
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        raise ConfigurationError(f"Argument `{name}` must be a complex dtype (complex64 or complex128), but is {dtype}")


def zero_state(n: int, dtype=jnp.complex64) -> jax.Array:
    """``|0...0>`` of ``n`` qubits, (2^n,) of ``dtype``."""
    _check_n(n)
    _check_complex(dtype)
    return jnp.zeros(2**n, dtype).at[0].set(1)


def basis_state(bits: Sequence[int], dtype=jnp.complex64) -> jax.Array:
    """``|b_0 b_1 ... b_{n-1}>`` (``b_0`` on qubit 0, the most significant bit), (2^n,) of ``dtype``."""
    bits = np.asarray(bits)
    if bits.ndim != 1 or not np.all((bits == 0) | (bits == 1)):
        raise ConfigurationError(f"Argument `bits` must be a 1-D sequence of 0s and 1s, but is {bits.tolist()}")
    _check_n(int(bits.size))
    _check_complex(dtype)
    k = int(np.dot(bits.astype(np.int64), 1 << np.arange(bits.size - 1, -1, -1, dtype=np.int64)))
    return jnp.zeros(2**bits.size, dtype).at[k].set(1)


def num_qubits(psi: jax.Array) -> int:
    """``n`` for a state of shape (2^n,); raises :class:`ConfigurationError` for any other shape or a real dtype."""
    shape = jnp.shape(psi)
    size = shape[0] if len(shape) == 1 else 0
    n = size.bit_length() - 1
    if len(shape) != 1 or size < 2 or size != 1 << n:
        raise ConfigurationError(f"Argument `psi` must have shape (2^n,) with n >= 1, but has shape {shape}")
    _check_complex(jnp.result_type(psi), "psi.dtype")
    return n


def _qubit_tuple(qubits: Qubits, n: int, name: str = "qubits") -> tuple[int, ...]:
    """``qubits`` as a tuple of distinct Python ints in ``[0, n)``."""
    q = (qubits,) if isinstance(qubits, int | np.integer) else tuple(qubits)
    ok = len(q) >= 1 and all(isinstance(i, int | np.integer) and 0 <= i < n for i in q) and len(set(q)) == len(q)
    if not ok:
        raise ConfigurationError(f"Argument `{name}` must be distinct integers in [0, {n}), but is {qubits!r}")
    return tuple(int(i) for i in q)


def _check_operator(op, k: int, name: str) -> jax.Array:
    op = jnp.asarray(op)
    d = 2**k
    if op.shape != (d, d):
        raise ConfigurationError(
            f"Argument `{name}` must have shape ({d}, {d}) to act on {k} qubit(s), but has shape {op.shape}"
        )
    return op


def _check_diagonal(diag, n: int) -> jax.Array:
    diag = jnp.asarray(diag)
    if diag.shape != (2**n,):
        raise ConfigurationError(f"Argument `diag` must have shape ({2**n},), but has shape {diag.shape}")
    return diag


# --- evolution ----------------------------------------------------------------------------------


def apply(psi: jax.Array, gate, qubits: Qubits) -> jax.Array:
    """``gate`` on ``qubits``, identity elsewhere: (2^n,) → (2^n,).

    Args:
        psi: state, (2^n,) complex.
        gate: (2^k, 2^k) matrix in the basis ``|q_0 ... q_{k-1}>`` of the listed qubits (the first listed
            is the most significant), e.g. :data:`CNOT` with ``qubits=(control, target)``. Any ``k`` works;
            cast to ``psi.dtype``. Need not be unitary.
        qubits: an int, or ``k`` distinct ints in ``[0, n)``, in any order, adjacent or not.

    Example:
        >>> psi = apply(zero_state(3), X, 2)                         # |001>
        >>> psi = apply(psi, CNOT, (2, 0))                            # |101>
    """
    n = num_qubits(psi)
    q = _qubit_tuple(qubits, n)
    k = len(q)
    g = _check_operator(gate, k, "gate").astype(psi.dtype)
    # View psi with one axis of size 2 per gate qubit and the runs of other qubits merged between them:
    # (2^{q_a}, 2, 2^{q_b - q_a - 1}, 2, ..., 2^{n-1-q_last}) for the sorted gate qubits q_a < q_b < ...
    shape, axis_of, prev = [], {}, -1
    for qubit in sorted(q):
        shape += [2 ** (qubit - prev - 1), 2]
        axis_of[qubit] = len(shape) - 1
        prev = qubit
    t = psi.reshape(shape + [2 ** (n - 1 - prev)])
    # The contraction written out as 4^k multiply-adds of slices: XLA fuses them into one pass over psi,
    # 1.5x (one qubit) to 6x (two qubits) faster on CPU than tensordot, whose output axes need a transpose.
    slices = []
    for bits in itertools.product((0, 1), repeat=k):  # input basis |b_0 ... b_{k-1}>, first listed qubit = MSB
        index = [slice(None)] * t.ndim
        for qubit, b in zip(q, bits):
            index[axis_of[qubit]] = b
        slices.append(t[tuple(index)])
    out = jnp.stack([sum(g[a, b] * s for b, s in enumerate(slices)) for a in range(2**k)])
    out = out.reshape((2,) * k + out.shape[1:])
    return jnp.moveaxis(out, tuple(range(k)), tuple(axis_of[qubit] for qubit in q)).reshape(2**n)


def apply_diagonal(psi: jax.Array, diag) -> jax.Array:
    """``diag(d) psi`` for a diagonal operator over all qubits, e.g. ``d = exp(-i γ C)``: (2^n,) → (2^n,)."""
    n = num_qubits(psi)
    return psi * _check_diagonal(diag, n).astype(psi.dtype)


# --- measurement --------------------------------------------------------------------------------


def probabilities(psi: jax.Array) -> jax.Array:
    """``|psi_k|^2``, (2^n,) real of ``psi``'s precision (sums to ``<psi|psi>``)."""
    num_qubits(psi)
    # re^2 + im^2 rather than abs()^2: differentiable at zero amplitudes
    return jnp.real(psi) ** 2 + jnp.imag(psi) ** 2


def expectation_diagonal(psi: jax.Array, diag) -> jax.Array:
    """``<psi| diag(d) |psi> = sum_k d_k |psi_k|^2`` for a real diagonal ``d`` (2^n,); a real scalar."""
    p = probabilities(psi)
    d = _check_diagonal(diag, num_qubits(psi))
    if jnp.issubdtype(d.dtype, jnp.complexfloating):
        raise ConfigurationError(f"Argument `diag` must be real (a Hermitian diagonal), but has dtype {d.dtype}")
    return jnp.sum(p * d.astype(p.dtype))


def expectation(psi: jax.Array, op, qubits: Qubits) -> jax.Array:
    """``Re <psi| op_qubits |psi>`` for a Hermitian ``op`` (2^k, 2^k) on ``qubits``; a real scalar.

    ``op`` follows :func:`apply`'s conventions. Its Hermiticity is not checked (it may be traced); the
    imaginary part, zero for a Hermitian ``op``, is dropped.
    """
    return jnp.real(jnp.vdot(psi, apply(psi, op, qubits)))


def sample(key: jax.Array, psi: jax.Array, shots: int) -> jax.Array:
    """``shots`` measurements of every qubit in the computational basis: (shots, n) uint8, row = ``b_0 ... b_{n-1}``.

    Draws basis indices from the categorical distribution ``probabilities(psi)`` (normalised here) by
    inverse-CDF search (``jax.random.choice``), which needs ``O(2^n + shots n)`` memory; the Gumbel-max
    form of ``jax.random.categorical`` would materialise a ``(shots, 2^n)`` array.
    """
    n = num_qubits(psi)
    if not isinstance(shots, int | np.integer) or shots < 1:
        raise ConfigurationError(f"Argument `shots` must be a positive integer, but is {shots!r}")
    k = jax.random.choice(key, 2**n, shape=(int(shots),), p=probabilities(psi))
    shifts = jnp.arange(n - 1, -1, -1, dtype=k.dtype)
    return ((k[:, None] >> shifts[None, :]) & 1).astype(jnp.uint8)


def marginal(psi: jax.Array, qubits: Qubits) -> jax.Array:
    """Probabilities of the outcomes of measuring ``qubits`` alone: (2^k,), in the basis ``|q_0 ... q_{k-1}>``
    of the listed qubits (the first listed is the most significant), summed over all other qubits."""
    n = num_qubits(psi)
    q = _qubit_tuple(qubits, n)
    p = jnp.moveaxis(probabilities(psi).reshape((2,) * n), q, tuple(range(len(q))))
    return p.reshape(2 ** len(q), -1).sum(axis=1)


# --- entanglement -------------------------------------------------------------------------------


def reduced_density_matrix(psi: jax.Array, qubits: Qubits) -> jax.Array:
    """``rho = tr_rest |psi><psi|`` of ``qubits``: (2^k, 2^k) complex, in the basis ``|q_0 ... q_{k-1}>`` of
    the listed qubits (the first listed is the most significant), traced over all other qubits.

    Computed as ``M M^†`` with ``M`` the (2^k, 2^(n-k)) matrix view of ``psi``: ``O(4^k 2^n)``, no
    ``2^n × 2^n`` matrix. Its trace is ``<psi|psi>`` (not renormalised).

    Example:
        >>> bell = apply(apply(zero_state(2), H, 0), CNOT, (0, 1))
        >>> reduced_density_matrix(bell, 1)                          # I/2: maximally mixed
    """
    n = num_qubits(psi)
    q = _qubit_tuple(qubits, n)
    m = jnp.moveaxis(psi.reshape((2,) * n), q, tuple(range(len(q)))).reshape(2 ** len(q), -1)
    return m @ jnp.conj(m).T


def concurrence(rho: jax.Array) -> jax.Array:
    """Wootters' concurrence of a two-qubit density matrix ``rho`` (4, 4): a real scalar in [0, 1].

    ``C = max(0, l1 - l2 - l3 - l4)`` with ``l1 >= ... >= l4`` the square roots of the eigenvalues of
    ``rho rho~``, ``rho~ = (Y⊗Y) rho* (Y⊗Y)`` (Wootters, PRL 80, 2245 (1998)). They are computed as the
    eigenvalues of the Hermitian ``sqrt(sqrt(rho) rho~ sqrt(rho))`` (two ``eigh``, so it also runs on GPUs,
    where JAX has no non-Hermitian ``eig``). 0 for product states, 1 for Bell states. The square roots
    amplify rounding near zero eigenvalues: expect absolute errors ~ sqrt(eps) (1e-8 in float64,
    3e-4 in float32) where ``rho rho~`` has zero eigenvalues, e.g. for pure product states.

    Example:
        >>> bell = apply(apply(zero_state(2), H, 0), CNOT, (0, 1))
        >>> concurrence(reduced_density_matrix(bell, (0, 1)))                    # 1.0 (to ~1e-4 in complex64)
    """
    rho = _check_operator(rho, 2, "rho")
    if not jnp.issubdtype(rho.dtype, jnp.complexfloating):
        rho = rho.astype(jnp.result_type(complex))
    yy = jnp.asarray(np.kron(Y, Y), rho.dtype)
    tilde = yy @ jnp.conj(rho) @ yy
    w, v = jnp.linalg.eigh(rho)
    root = (v * jnp.sqrt(jnp.maximum(w, 0.0)).astype(rho.dtype)[None, :]) @ jnp.conj(v).T
    lam = jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(root @ tilde @ root), 0.0))  # ascending
    return jnp.maximum(lam[3] - lam[2] - lam[1] - lam[0], 0.0)


# --- XOR ----------------------------------------------------------------------------------------
# The standard CNOT-parity construction (the seed paper's own XOR circuit is not available to us):
# inputs on qubits 0 and 1, target qubit 2 in |0>, then CNOT(0 -> 2) and CNOT(1 -> 2), so that
# |a b 0> -> |a b (a XOR b)>. On superposed inputs the target's marginal is P(a XOR b) and the
# register is entangled (for H inputs: uniform over 000, 011, 101, 110).


def _xor_gates(psi: jax.Array) -> jax.Array:
    return apply(apply(psi, CNOT, (0, 2)), CNOT, (1, 2))


def xor_circuit(a: int, b: int, dtype=jnp.complex64) -> jax.Array:
    """The XOR circuit on basis inputs: ``|a b 0> -> |a b (a XOR b)>``, (8,) of ``dtype``.

    Args:
        a, b: input bits (0 or 1) on qubits 0 and 1; qubit 2 is the target. For superposed inputs
            use :func:`xor_state`.

    Example:
        >>> marginal(xor_circuit(1, 0), 2)                           # [0, 1]: 1 XOR 0 = 1
    """
    for name, bit in (("a", a), ("b", b)):
        if not isinstance(bit, int | np.integer) or bit not in (0, 1):
            raise ConfigurationError(f"Argument `{name}` must be a bit (0 or 1), but is {bit!r}")
    return _xor_gates(basis_state([int(a), int(b), 0], dtype))


def xor_state(theta_a, theta_b, dtype=jnp.complex64) -> jax.Array:
    """The XOR circuit on superposed inputs ``ry(θ_a)|0> ⊗ ry(θ_b)|0> ⊗ |0>``: (8,) of ``dtype``.

    Input ``q`` reads 1 with probability ``p_q = sin²(θ_q/2)``; the target (qubit 2) reads 1 with
    probability ``p_a (1 - p_b) + p_b (1 - p_a)``. ``θ = 0, π`` give the basis inputs, ``θ = π/2``
    the uniform superposition. Angles may be traced (jit, vmap, grad).

    Example:
        >>> psi = xor_state(jnp.pi / 2, jnp.pi / 2)
        >>> probabilities(psi)                                       # 1/4 on 000, 011, 101, 110
    """
    psi = zero_state(3, dtype)
    psi = apply(psi, ry(theta_a), 0)
    return _xor_gates(apply(psi, ry(theta_b), 1))
