"""qsn.kernels — optional CuPy/CUDA backend (fused multi-step population update, event propagation).

Imported lazily by ``qsn.simulate(..., backend="cupy")``; never needed on CPU. The fused kernels are
the subject of the GPU-kernels issue and are not built yet: asking for this backend raises
:class:`qsn.errors.BackendUnavailableError` naming what is missing.
"""

from qsn.kernels.backend import available, require, simulate

__all__ = ["available", "require", "simulate"]
