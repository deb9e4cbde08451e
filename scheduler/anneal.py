"""Moved to :mod:`qsn.qubo.annealer`; this module keeps the old import path ``qsn.scheduler.anneal`` working.

Example:
    >>> from qsn.scheduler.anneal import anneal  # the same object as qsn.qubo.anneal
"""

from qsn.qubo.annealer import (
    SPARSE_MAX_FILL,
    AnnealResult,
    anneal,
    default_beta_range,
    exchange_step,
    neighbour_lists,
    parallel_tempering,
)

__all__ = [
    "AnnealResult", "anneal", "parallel_tempering", "default_beta_range", "neighbour_lists", "exchange_step",
    "SPARSE_MAX_FILL",
]
