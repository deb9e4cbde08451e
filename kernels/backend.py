"""Loader of the CuPy backend: imports CuPy only when asked, and says exactly what is missing."""

from __future__ import annotations

from typing import Any

from qsn.errors import BackendUnavailableError

__all__ = ["available", "require", "simulate"]


def require() -> Any:
    """Import CuPy and check for a CUDA device; return the ``cupy`` module.

    Raises:
        BackendUnavailableError: CuPy is not installed (``pip install 'qsn[cuda]'``) or no CUDA
            device is visible.
    """
    try:
        import cupy
    except ImportError as err:
        raise BackendUnavailableError(
            "backend='cupy' needs CuPy: pip install 'qsn[cuda]' (cupy-cuda13x) on a machine with CUDA"
        ) from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver/runtime missing or broken
        raise BackendUnavailableError(f"backend='cupy' found CuPy but no usable CUDA runtime: {err}") from err
    if count < 1:
        raise BackendUnavailableError("backend='cupy' found CuPy but no CUDA device")
    return cupy


def available() -> bool:
    """True when CuPy imports and sees a CUDA device."""
    try:
        require()
    except BackendUnavailableError:
        return False
    return True


def simulate(*args: Any, precise: bool = False, **kwargs: Any) -> Any:
    """:func:`qsn.simulate` on the fused CUDA kernel (``backend="cupy"``); see
    :func:`qsn.kernels.population.simulate` for what it runs and records."""
    from qsn.kernels.population import simulate as run_fused
    from qsn.kernels.runner import CupyRunner

    return run_fused(CupyRunner(), *args, precise=precise, **kwargs)
