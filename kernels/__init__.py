"""qsn.kernels — optional CUDA kernels (CuPy) for what XLA cannot fuse well.

* :mod:`~qsn.kernels.population`: one launch advances a population T steps with each neuron's state
  in registers (pure and mixed modes, constant, streamed or in-kernel Poisson input; spike counts,
  bit-packed spike words or events, and the final state). ``qsn.simulate(..., backend="cupy")``.
* :mod:`~qsn.kernels.propagation`: event-driven synaptic propagation of spikes through the
  ELL rows of ``qsn.networks`` projections into delayed input ring buffers.
* :mod:`~qsn.kernels.interop`: zero-copy JAX <-> CuPy through DLPack.

CuPy is imported only when a kernel is asked for (extra ``qsn[cuda]``); without CuPy or a CUDA
device, :class:`qsn.errors.BackendUnavailableError` says which is missing. The same kernel sources
also build for the host with g++ (:class:`~qsn.kernels.runner.HostRunner`), which is how machines
without a GPU test them.
"""

from qsn.kernels.backend import CupyBackend, FusedBackend, available, require

__all__ = ["available", "require", "FusedBackend", "CupyBackend"]
