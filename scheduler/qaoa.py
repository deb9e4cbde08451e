"""Moved to :mod:`qsn.qubo.qaoa`; this module keeps the old import path ``qsn.scheduler.qaoa`` working.

Example:
    >>> from qsn.scheduler.qaoa import solve  # the same object as qsn.qubo.qaoa.solve
"""

from qsn.qubo.qaoa import MAX_VARIABLES, QAOAResult, optimize_angles, qaoa_expectation, qaoa_state, solve

__all__ = ["MAX_VARIABLES", "QAOAResult", "qaoa_state", "qaoa_expectation", "optimize_angles", "solve"]
