"""Kernel sources, built once per configuration and cached: NVRTC through CuPy for the GPU, g++ for
the host emulation that lets CPU-only machines test the same source.

Nothing compiles at import. A configuration is a tuple of ``-D`` macros; each distinct one is built
on first use and kept for the process (CuPy also keeps compiled cubins on disk in
``~/.cupy/kernel_cache``; host builds are kept in ``$QSN_KERNEL_CACHE`` or ``~/.cache/qsn/kernels``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from qsn.errors import BackendUnavailableError

__all__ = ["source", "cuda_function", "host_function", "host_compiler", "nvrtc_options", "Defines"]

Defines = tuple[tuple[str, int], ...]  # (macro, value) pairs in a fixed order: hashable, one build each

_HEADER = "common.cuh"


def source(name: str) -> str:
    """The full text of kernel ``name`` (``"population"``, ``"propagation"``), shared header inlined,
    so NVRTC and g++ compile one self-contained string."""
    folder = resources.files("qsn.kernels").joinpath("cuda")
    header = folder.joinpath(_HEADER).read_text()
    body = folder.joinpath(f"{name}.cu").read_text()
    return header + "\n" + body


def _macros(defines: Defines, precise: bool) -> list[str]:
    return [f"-D{key}={int(value)}" for key, value in defines + (("QSN_PRECISE", int(precise)),)]


def nvrtc_options(defines: Defines, precise: bool) -> tuple[str, ...]:
    """NVRTC flags: fast builds use the SFU intrinsics and FMA contraction; precise builds use IEEE
    sqrt/division/sincos and no contraction (the arithmetic order of the JAX path)."""
    math = ("-fmad=false", "-prec-div=true", "-prec-sqrt=true") if precise else ("-use_fast_math",)
    return ("-std=c++17",) + math + tuple(_macros(defines, precise))


@functools.lru_cache(maxsize=None)
def cuda_function(name: str, kernel: str, defines: Defines, precise: bool) -> Any:
    """The CuPy ``RawKernel`` ``kernel`` of source ``name`` for ``defines`` (compiled on first call)."""
    from qsn.kernels.backend import require

    cupy = require()
    module = cupy.RawModule(code=source(name), options=nvrtc_options(defines, precise))
    return module.get_function(kernel)


def host_compiler() -> str | None:
    """Path of the C++ compiler used for host emulation (``$CXX`` or ``g++``), or None."""
    return shutil.which(os.environ.get("CXX", "g++"))


def _cache_dir() -> Path:
    root = os.environ.get("QSN_KERNEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "qsn", "kernels")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.lru_cache(maxsize=None)
def host_function(name: str, kernel: str, defines: Defines, precise: bool) -> Any:
    """The host-emulation build of ``kernel`` (a ``ctypes`` function; compiled with g++ on first call).

    The build disables floating-point contraction so that the arithmetic happens in source order,
    as on the JAX path. SFU intrinsics map to the libm functions (the host cannot emulate their
    reduced precision).

    Raises:
        BackendUnavailableError: no C++ compiler, or the source failed to compile (message included).
    """
    cxx = host_compiler()
    if cxx is None:
        raise BackendUnavailableError("host emulation of the CUDA kernels needs a C++ compiler (g++ or $CXX)")
    text = source(name)
    flags = ["-O2", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-x", "c++"]
    flags += _macros(defines, precise)
    digest = hashlib.sha256((text + " ".join(flags) + cxx).encode()).hexdigest()[:20]
    lib = _cache_dir() / f"{name}-{digest}.so"
    if not lib.exists():
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / f"{name}.cpp"
            src.write_text(text)
            out = Path(tmp) / lib.name
            proc = subprocess.run([cxx, *flags, str(src), "-o", str(out)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise BackendUnavailableError(f"host build of kernel {name!r} failed:\n{proc.stderr[-4000:]}")
            os.replace(out, lib)  # atomic: concurrent test workers never load a half-written library
    return getattr(ctypes.CDLL(str(lib)), kernel)
