"""Where a kernel runs: on a CUDA device through CuPy, or emulated on the host (g++ build, for tests).

Both runners take the same argument list (arrays of their ``xp`` and NumPy-typed scalars), so one
launcher (:mod:`qsn.kernels.population`, :mod:`qsn.kernels.propagation`) drives either.
"""

from __future__ import annotations

import ctypes
from typing import Any

import jax
import numpy as np

from qsn.kernels.compile import EMULATION, NATIVE, Defines, HostBuild, cuda_function, host_function, host_library

__all__ = ["Runner", "CupyRunner", "HostRunner", "NativeRunner", "BLOCK"]

BLOCK = 256  # threads per block: a multiple of the warp; matches __launch_bounds__ in common.cuh
RESIDENT_BLOCKS_PER_SM = 2  # blocks of a resident launch per SM: the minimum of __launch_bounds__ in network.cu

_CTYPES = {
    np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.int64): ctypes.c_int64,
    np.dtype(np.uint32): ctypes.c_uint32,
    np.dtype(np.uint64): ctypes.c_uint64,
    np.dtype(np.float32): ctypes.c_float,
}


class Runner:
    """Interface: ``xp`` (the array module), ``launch``, and conversions to and from JAX/host."""

    xp: Any
    name: str

    def launch(self, source: str, kernel: str, defines: Defines, precise: bool, threads: int, args: list) -> None:
        raise NotImplementedError

    def from_jax(self, x: Any) -> Any:
        raise NotImplementedError

    def to_jax(self, x: Any) -> jax.Array:
        raise NotImplementedError

    def to_host(self, x: Any) -> np.ndarray:
        raise NotImplementedError

    def function(self, source: str, kernel: str, defines: Defines, precise: bool) -> Any:
        """Kernel ``kernel`` of ``source`` built for ``defines`` (compiled on first call, then cached)."""
        raise NotImplementedError

    def pointer(self, x: Any) -> int:
        """The address of array ``x`` of :attr:`xp` (for the structs a kernel reads)."""
        raise NotImplementedError

    def launch_resident(self, source: str, kernel: str, defines: Defines, precise: bool, threads: int,
                        args: list) -> None:
        """Launch a kernel whose items stride over a grid that is resident all at once (it synchronises
        the whole grid between phases, as kernels/cuda/network.cu does): at most as many threads as the
        device holds together, and no more than ``threads``."""
        raise NotImplementedError


class CupyRunner(Runner):
    """Launch on the current CUDA device; JAX arrays cross by DLPack (zero-copy on the same GPU)."""

    name = "cupy"

    def __init__(self) -> None:
        from qsn.kernels.backend import require

        self.xp = require()

    def function(self, source, kernel, defines, precise):
        return cuda_function(source, kernel, defines, precise)

    def launch(self, source, kernel, defines, precise, threads, args):
        fn = cuda_function(source, kernel, defines, precise)
        blocks = max(1, -(-threads // BLOCK))
        fn((blocks,), (BLOCK,), tuple(args))

    def pointer(self, x):
        return int(x.data.ptr)

    def launch_resident(self, source, kernel, defines, precise, threads, args):
        fn = cuda_function(source, kernel, defines, precise)
        sms = self.xp.cuda.Device().attributes["MultiProcessorCount"]
        # __launch_bounds__(256, 2) in network.cu: two blocks of every SM fit by registers (no shared memory)
        blocks = max(1, min(-(-threads // BLOCK), RESIDENT_BLOCKS_PER_SM * sms))
        fn((blocks,), (BLOCK,), tuple(args))

    def from_jax(self, x):
        from qsn.kernels.interop import to_cupy

        return to_cupy(x)

    def to_jax(self, x):
        from qsn.kernels.interop import to_jax

        return to_jax(x)

    def to_host(self, x):
        return self.xp.asnumpy(x)


class HostRunner(Runner):
    """Run the kernel source compiled for the CPU, one emulated thread after another (slow; exact
    test of the kernels' arithmetic and outputs on machines without a GPU)."""

    name = "host"
    xp = np
    build: HostBuild = EMULATION

    def function(self, source: str, kernel: str, defines: Defines, precise: bool) -> Any:
        return host_function(source, kernel, defines, precise, self.build)

    def pointer(self, x):
        return int(x.ctypes.data)

    def launch_resident(self, source, kernel, defines, precise, threads, args):
        self.launch(source, kernel, defines, precise, threads, args)  # the "threads" of each phase run in turn

    def launch(self, source, kernel, defines, precise, threads, args):
        fn = self.function(source, kernel, defines, precise)
        fn.restype = None
        converted = []
        for arg in args:
            if isinstance(arg, np.ndarray):
                if not arg.flags.c_contiguous:
                    raise ValueError("kernel arrays must be C-contiguous")
                converted.append(ctypes.c_void_p(arg.ctypes.data))
            else:
                converted.append(_CTYPES[np.asarray(arg).dtype](arg))
        fn(*converted)

    def from_jax(self, x):
        return np.array(x)  # a writable copy: kernels update state in place

    def to_jax(self, x):
        return jax.numpy.asarray(x)

    def to_host(self, x):
        return np.asarray(x)


class NativeRunner(HostRunner):
    """Run a kernel's CPU launch layer (``kernels/cpu/<source>.cpp``: the same step as the CUDA
    kernel, over blocks of neurons, vectorised and threaded; see docs/kernels.md), built with
    :data:`qsn.kernels.compile.NATIVE`. ``threads``: OpenMP threads per launch (None: OpenMP's
    default, ``OMP_NUM_THREADS`` or every core)."""

    name = "native"
    build = NATIVE

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def function(self, source, kernel, defines, precise):
        lib, _ = host_library(f"{source}.cpp", defines, precise, self.build)
        lib.qsn_set_threads.restype = None
        lib.qsn_set_threads(ctypes.c_int(int(self.threads or 0)))
        return getattr(lib, kernel)

    @staticmethod
    def flags(source: str, defines: Defines, precise: bool = False) -> str:
        """The flags the build of ``source`` for ``defines`` (a full configuration) used: the first
        variant of :data:`qsn.kernels.compile.NATIVE` that compiled."""
        return host_library(f"{source}.cpp", defines, precise, NATIVE)[1]
