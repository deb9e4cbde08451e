"""Moved to :mod:`qsn.qubo.model`; this module keeps the old import path ``qsn.scheduler.qubo`` working.

Example:
    >>> from qsn.scheduler.qubo import make_qubo  # the same object as qsn.qubo.make_qubo
"""

from qsn.qubo.model import MAX_ENUMERATED, QUBO, Ising, all_energies, bitstrings, energy, make_qubo, to_ising

__all__ = ["QUBO", "Ising", "make_qubo", "to_ising", "energy", "all_energies", "bitstrings", "MAX_ENUMERATED"]
