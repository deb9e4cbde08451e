"""QUBO ↔ Ising forms, state enumeration and energies against a plain double loop."""

from __future__ import annotations

import numpy as np
import pytest

from qsn.errors import ConfigurationError
from qsn.qubo.model import all_energies, bitstrings, energy, make_qubo, to_ising


def _loop_energy(q: np.ndarray, offset: float, x: np.ndarray) -> float:
    return offset + sum(q[i, j] * x[i] * x[j] for i in range(len(x)) for j in range(len(x)))


@pytest.mark.parametrize("seed", range(3))
def test_every_form_gives_the_loop_energy(seed):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(5, 5))  # not symmetric: make_qubo symmetrises without changing energies
    qubo = make_qubo(raw, 0.7)
    states = bitstrings(5)
    ref = np.array([_loop_energy(raw, 0.7, x) for x in states])
    np.testing.assert_allclose(energy(qubo, states, host=True), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(energy(qubo, states)), ref, rtol=1e-10, atol=1e-10)  # x64 in the suite
    np.testing.assert_allclose(np.asarray(all_energies(qubo)), ref, rtol=1e-10, atol=1e-10)
    h, j, c = to_ising(qubo)
    s = 2.0 * states - 1.0
    ising = s @ h + np.einsum("ki,ij,kj->k", s, np.triu(j, 1), s) + c
    np.testing.assert_allclose(ising, ref, rtol=1e-12, atol=1e-12)


def test_bitstring_order_puts_variable_zero_first():
    np.testing.assert_array_equal(bitstrings(3)[[0, 1, 4, 7]], [[0, 0, 0], [0, 0, 1], [1, 0, 0], [1, 1, 1]])


def test_host_energy_resolves_cancelling_penalties():
    # a large penalty offset with a unit difference between two states: exact in float64
    qubo = make_qubo(np.diag([-1e9, -1e9 + 1.0]), 1e9)
    np.testing.assert_array_equal(energy(qubo, np.array([[1, 0], [0, 1]]), host=True), [0.0, 1.0])


def test_errors():
    with pytest.raises(ConfigurationError, match="shape"):
        make_qubo(np.zeros((2, 3)))
    with pytest.raises(ConfigurationError, match="finite"):
        make_qubo(np.array([[np.nan]]))
    with pytest.raises(ConfigurationError, match="n"):
        bitstrings(0)
