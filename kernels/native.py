"""``backend="native"``: the population kernel compiled for this CPU (kernels/cpu/population.cpp over
the step of kernels/cuda/neuron.cuh), threaded over blocks of neurons and vectorised across each block.

It runs what the CUDA kernel runs (float32, pure and mixed modes, T1/T2, quantum jumps, per-neuron
parameters, constant / streamed / Poisson input; spike counts, rasters and events) and needs only a
C++ compiler: the first run of each configuration builds it with g++ (a few seconds) and caches the
library in ``$QSN_KERNEL_CACHE`` or ``~/.cache/qsn/kernels``; nothing compiles at import.

Example:
    >>> import numpy as np, qsn
    >>> p = qsn.NeuronParams(v_rest=-65.0, v_th=-50.0, tau_m=10.0, r_m=40.0, delta=0.5)
    >>> s = qsn.init_state(p, 1000, dtype="float32")
    >>> r = qsn.simulate(p, s, np.linspace(0, 0.5, 1000), steps=1000, backend="native")
"""

from __future__ import annotations

import numbers

import os

from qsn.errors import BackendUnavailableError, ConfigurationError
from qsn.kernels.backend import FusedBackend
from qsn.kernels.compile import host_compiler
from qsn.kernels.runner import NativeRunner

__all__ = ["NativeBackend"]


class NativeBackend(FusedBackend):
    """The fused population kernel on the CPU. Options: ``precise`` (IEEE sqrt/sin/cos/division
    instead of polynomials; libm calls do not vectorise, so it is several times slower) and
    ``threads`` (OpenMP threads; default every core)."""

    options = ("precise", "threads")

    def __init__(self) -> None:
        super().__init__(NativeRunner, "native")

    def require(self) -> None:
        if host_compiler() is None:
            cxx = os.environ.get("CXX")
            missing = f"$CXX={cxx!r} is not an executable on PATH" if cxx else "g++ is not on PATH"
            raise BackendUnavailableError(
                f"backend='native' compiles its kernel on first use and needs a C++ compiler, but {missing}: install "
                "g++ (Debian/Ubuntu: apt install g++) or point $CXX at one; backend='jax' needs none"
            )

    def runner(self, options: dict) -> NativeRunner:
        threads = options.get("threads")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1):
            raise ConfigurationError(f"Option `threads` of backend='native' must be an int >= 1, but is {threads!r}")
        return NativeRunner(None if threads is None else int(threads))
