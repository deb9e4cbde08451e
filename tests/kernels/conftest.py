"""The ``runner`` fixture every kernel test uses: the host emulation (needs a C++ compiler) and CuPy
(marked ``gpu``; needs CuPy and a CUDA device)."""

import importlib.util

import pytest

from qsn.kernels.compile import host_compiler
from qsn.kernels.runner import CupyRunner, HostRunner

HAS_CXX = host_compiler() is not None


def _cupy_ready() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    from qsn.kernels import available

    return available()


@pytest.fixture(
    params=[
        pytest.param("host", marks=pytest.mark.skipif(not HAS_CXX, reason="no C++ compiler for the host emulation")),
        pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(not _cupy_ready(), reason="needs CuPy and CUDA")]),
    ]
)
def runner(request):
    return HostRunner() if request.param == "host" else CupyRunner()
