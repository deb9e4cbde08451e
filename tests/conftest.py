"""Test settings: float64 available, strict JAX promotion rules, GPU tests skipped without CUDA."""

import os

# SciPy's expm on 4x4 matrices in the reference tests: OpenBLAS threads only contend on small CPUs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Runs enable JAX's persistent compilation cache (qsn.compile_cache); the suite's thousands of compiles
# stay out of the user's ~/.cache (the cache's own tests set their environment explicitly).
os.environ.setdefault("QSN_COMPILE_CACHE", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

# Physics tests run in float64 against independent references; the library itself never flips this.
jax.config.update("jax_enable_x64", True)
# Catch silent broadcasting and dtype promotion bugs (as equinox's own test-suite does).
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_executables():
    """Drop JAX's compilation caches after each test module. The suite compiles thousands of executables;
    kept alive together they exhaust the process's memory maps (vm.max_map_count), and XLA's LLVM backend
    then fails ("Cannot allocate memory") or crashes while compiling."""
    yield
    jax.clear_caches()


def _has_cuda() -> bool:
    try:
        return any(d.platform == "gpu" for d in jax.devices())
    except RuntimeError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
