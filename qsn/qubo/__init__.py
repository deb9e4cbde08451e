"""qsn.qubo — quadratic unconstrained binary optimisation: the model, a batched annealer, and QAOA.

Generic solvers for any QUBO ``E(x) = x^T Q x + offset`` over ``x in {0, 1}^n``, used by the scheduler's planner
and by the hyperparameter search of :mod:`qsn.learning`; this package imports neither of them.

* ``model``: :class:`QUBO`, its :class:`Ising` form, energies, state enumeration;
* ``annealer``: simulated annealing and parallel tempering (single-spin Metropolis, replicas batched), on JAX
  or, with ``backend="native"`` (the default ``"auto"`` on a CPU with a C++ compiler), a sweep compiled for this
  CPU (``native``: vectorised across replicas, threaded);
* ``qaoa``: state-vector QAOA for small QUBOs (``qaoa.solve``).

Example:
    >>> import jax, numpy as np
    >>> from qsn.qubo import anneal, make_qubo
    >>> r = anneal(make_qubo(np.array([[1.0, -2.0], [-2.0, 1.0]])), jax.random.key(0), replicas=4, sweeps=50)
    >>> r.best_x.tolist(), float(r.best_energy)
    ([1, 1], -2.0)
"""

from qsn.qubo import qaoa
from qsn.qubo.annealer import (
    SPARSE_MAX_FILL,
    AnnealResult,
    anneal,
    default_beta_range,
    exchange_step,
    neighbour_lists,
    parallel_tempering,
)
from qsn.qubo.native import Native
from qsn.qubo.model import QUBO, Ising, all_energies, bitstrings, energy, make_qubo, to_ising
from qsn.qubo.qaoa import QAOAResult, optimize_angles, qaoa_expectation, qaoa_state

__all__ = [
    "QUBO", "Ising", "make_qubo", "to_ising", "energy", "all_energies", "bitstrings",
    "AnnealResult", "anneal", "parallel_tempering", "default_beta_range", "neighbour_lists", "exchange_step",
    "SPARSE_MAX_FILL", "Native",
    "qaoa", "QAOAResult", "qaoa_state", "qaoa_expectation", "optimize_angles",
]
