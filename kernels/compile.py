"""Kernel sources, built once per configuration and cached: NVRTC through CuPy for the GPU; g++ for
the host emulation that lets CPU-only machines test the CUDA launch, and for the native CPU backend.

Nothing compiles at import. A configuration is a tuple of ``-D`` macros; each distinct one is built
on first use and kept for the process (CuPy also keeps compiled cubins on disk in
``~/.cupy/kernel_cache``; host builds are kept in ``$QSN_KERNEL_CACHE`` or ``~/.cache/qsn/kernels``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsn.errors import BackendUnavailableError

__all__ = [
    "source", "cuda_function", "host_function", "host_library", "host_compiler", "nvrtc_options", "Defines",
    "HostBuild", "EMULATION", "NATIVE",
]

Defines = tuple[tuple[str, int], ...]  # (macro, value) pairs in a fixed order: hashable, one build each

_INCLUDE = re.compile(r'^#include "([^"]+)"[ \t]*$', re.MULTILINE)
_FOLDERS = {".cu": "cuda", ".cuh": "cuda", ".cpp": "cpu"}


def _read(file: str) -> str:
    return resources.files("qsn.kernels").joinpath(_FOLDERS[Path(file).suffix], file).read_text()


def source(name: str) -> str:
    """The full text of kernel ``name``: ``"population"``, ``"propagation"`` (``cuda/<name>.cu``) or
    a CPU launch layer such as ``"population.cpp"`` (``cpu/``), with every ``#include "..."`` of the
    project's headers inlined once, so that NVRTC and g++ compile one self-contained string."""
    seen: set[str] = set()

    def expand(file: str) -> str:
        if file in seen:
            return ""
        seen.add(file)
        return _INCLUDE.sub(lambda m: expand(m.group(1)), _read(file))

    return expand(name if Path(name).suffix in _FOLDERS else f"{name}.cu")


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
    """Path of the C++ compiler of the host builds (``$CXX`` or ``g++``), or None."""
    return shutil.which(os.environ.get("CXX", "g++"))


@dataclass(frozen=True)
class HostBuild:
    """How g++ builds a kernel source for this machine: ``variants`` are flag sets tried in order
    (the first that compiles is kept: a portable fallback after the host-specific one), ``defines``
    are added to every configuration's, and ``machine_specific`` builds key their cache on this CPU."""

    name: str
    variants: tuple[tuple[str, ...], ...]
    defines: Defines = ()
    machine_specific: bool = False
    environment: tuple[tuple[str, str], ...] = ()  # set (unless the user set them) before loading a library


# The host emulation of the CUDA launch (tests): no contraction, so that the arithmetic happens in
# source order, as on the JAX path; SFU intrinsics map to libm (the host cannot emulate their precision).
EMULATION = HostBuild("emulation", (("-O2", "-ffp-contract=off", "-fno-fast-math"),))

# The native backend: optimised for this CPU's vector ISA and threaded with OpenMP, then the same
# without -march=native (a compiler that does not know this CPU), then without OpenMP (no libgomp).
# Contraction stays off: the source's explicit fmaf calls fix the rounding (the membrane's is XLA's);
# no errno and no trapping let sqrt and division vectorise; NaN and infinity keep their IEEE meaning.
_NATIVE_MATH = ("-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math")
NATIVE = HostBuild(
    "native",
    (_NATIVE_MATH + ("-march=native", "-fopenmp"), _NATIVE_MATH + ("-fopenmp",), _NATIVE_MATH),
    defines=(("QSN_NATIVE", 1),),
    machine_specific=True,
    # OpenMP's threads sleep between launches instead of spinning: a spinning thread takes a core from
    # the Python work between chunks (measured on the 2-core CI machine under load: 100 launches of 10
    # steps, 1.7 s spinning against 0.18 s passive); a launch's own parallel loop is unaffected
    environment=(("OMP_WAIT_POLICY", "PASSIVE"),),
)


def _cache_dir() -> Path:
    root = os.environ.get("QSN_KERNEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "qsn", "kernels")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.lru_cache(maxsize=1)
def _machine() -> str:
    """What -march=native depends on: the architecture and the CPU's model and feature flags."""
    info = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    info += line
                if line.strip() == "":
                    break  # the first processor describes them all
    except OSError:
        pass
    return platform.machine() + platform.processor() + info


@functools.lru_cache(maxsize=None)
def host_library(name: str, defines: Defines, precise: bool, build: HostBuild = EMULATION) -> tuple[ctypes.CDLL, str]:
    """The ``ctypes`` library of source ``name`` (see :func:`source`) built by ``build`` for
    ``defines`` (compiled on first call, then loaded from the cache), and the flags it was built with.

    Raises:
        BackendUnavailableError: no C++ compiler, or no flag variant compiled (the compiler's message included).
    """
    cxx = host_compiler()
    if cxx is None:
        raise BackendUnavailableError(
            f"the {build.name} build of the kernels needs a C++ compiler: install g++ (Debian/Ubuntu: apt install g++) "
            "or point $CXX at one"
        )
    text = source(name)
    macros = _macros(build.defines + defines, precise)
    errors = []
    for variant in build.variants:
        flags = ["-std=c++17", "-shared", "-fPIC", *variant, "-x", "c++", *macros]
        key = text + " ".join(flags) + cxx + (_machine() if build.machine_specific else "")
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        lib = _cache_dir() / f"{Path(name).stem}-{build.name}-{digest}.so"
        if not lib.exists():
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / f"{Path(name).stem}.cpp"
                src.write_text(text)
                out = Path(tmp) / lib.name
                proc = subprocess.run([cxx, *flags, str(src), "-o", str(out)], capture_output=True, text=True)
                if proc.returncode != 0:
                    errors.append(f"{' '.join(variant)}:\n{proc.stderr[-3000:]}")
                    continue
                os.replace(out, lib)  # atomic: concurrent test workers never load a half-written library
        for key, value in build.environment:  # libgomp reads them once, when it is first loaded
            os.environ.setdefault(key, value)
        try:
            return ctypes.CDLL(str(lib)), " ".join(variant)
        except OSError as err:  # e.g. built with -fopenmp but libgomp cannot be loaded
            errors.append(f"{' '.join(variant)}: {err}")
    raise BackendUnavailableError(f"the {build.name} build of kernel {name!r} failed:\n" + "\n".join(errors))


def host_function(name: str, kernel: str, defines: Defines, precise: bool, build: HostBuild = EMULATION) -> Any:
    """Function ``kernel`` of :func:`host_library` (``ctypes``; compiled with g++ on first call)."""
    return getattr(host_library(name, defines, precise, build)[0], kernel)
