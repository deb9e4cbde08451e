"""Exception types raised by qsn.

Every error subclasses :class:`QSNError` *and* the built-in type a user would catch without knowing
qsn (``ValueError`` for bad configuration or input, ``RuntimeError`` for failures during a run,
``ImportError`` for a missing optional backend), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "QSNError",
    "ConfigurationError",
    "InvalidInputError",
    "InvalidStateError",
    "NumericalInstabilityError",
    "RecordingError",
    "MemoryBudgetError",
    "BackendUnavailableError",
    "TaskFailedError",
    "QSNWarning",
]


class QSNError(Exception):
    """Root of every exception raised by qsn."""


class ConfigurationError(QSNError, ValueError):
    """A parameter, option or argument is invalid; the message names the field at fault."""


class InvalidInputError(QSNError, ValueError):
    """An input (e.g. an injected current) has a bad shape, dtype or a non-finite value."""


class InvalidStateError(QSNError, ValueError):
    """A neuron state does not match the parameters, the mode or the physics (e.g. trace != 1)."""


class NumericalInstabilityError(QSNError, RuntimeError):
    """The simulation produced a non-finite value or left the range where its numerics are exact."""


class RecordingError(QSNError, RuntimeError):
    """A recording would not fit in memory, or a recorder's capacity was exceeded."""


class MemoryBudgetError(QSNError, MemoryError):
    """A state, buffer, connectivity or recording would not fit in memory; raised before allocating,
    with the estimate and the largest size that fits."""


class BackendUnavailableError(QSNError, ImportError):
    """An optional backend or library was requested but is missing: CuPy or a CUDA device, a C++
    compiler for the native backend, or an interop format's package (nir, neo, pynwb); the message
    says what is missing and how to install it."""


class TaskFailedError(QSNError, RuntimeError):
    """A user's task run by :mod:`qsn.scheduler.executor` raised, or did not finish in time; the message names
    the task (index and name) and the worker, and the task's own exception is the ``__cause__``."""


class QSNWarning(UserWarning):
    """Something runs, but probably not as the caller meant (e.g. a reference model outside the regime
    it names); the message says what and how to get what was meant."""
