"""Loader of the CuPy backend: imports CuPy only when asked, and says exactly what is missing."""

from __future__ import annotations

from typing import Any

from qsn.backends import Backend
from qsn.errors import BackendUnavailableError, ConfigurationError

__all__ = ["available", "require", "FusedBackend", "CupyBackend"]


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


class FusedBackend(Backend):
    """The fused population kernel on a :class:`qsn.kernels.runner.Runner` (float32; records what the
    JAX path records; Philox random draws; see docs/kernels.md). Option ``precise``: IEEE sqrt/sin/cos/division.

    Example (the host emulation, as the tests run it on machines without a GPU):
        >>> from qsn.kernels.runner import HostRunner
        >>> r = qsn.simulate(p, s, 20.0, steps=100, backend=FusedBackend(HostRunner))
    """

    options = ("precise",)

    def __init__(self, runner: Any, name: str | None = None) -> None:
        self._runner = runner  # a Runner class (built on first run) or instance
        self.name = name or getattr(runner, "name", "fused")

    def runner(self, options: dict) -> Any:
        """The runner that executes a run with backend ``options`` (already checked)."""
        if isinstance(self._runner, type):
            self._runner = self._runner()
        return self._runner

    def simulate(self, run: Any) -> Any:
        from qsn.kernels.population import simulate as run_fused

        options = run.options.backend
        self.check_options(options)
        if run.options.surrogate is not None or run.options.checkpoint:
            raise ConfigurationError("surrogate= and checkpoint= (differentiable runs) need backend='jax'")
        self.require()
        return run_fused(self.runner(options), run, precise=bool(options.get("precise", False)))


class CupyBackend(FusedBackend):
    """``backend="cupy"``: the fused kernel on the current CUDA device through CuPy/NVRTC."""

    def __init__(self) -> None:
        from qsn.kernels.runner import CupyRunner

        super().__init__(CupyRunner, "cupy")

    def require(self) -> None:
        require()
