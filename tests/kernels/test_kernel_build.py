"""Every variant of the kernels builds for the H100 (sm_90) with the NVRTC flags, without register
spills, and the static analysis reads a sensible per-step cost off it (needs the CUDA toolkit's nvcc,
not a GPU; skipped without it)."""

import itertools

import pytest

from qsn.kernels import population, ptx
from qsn.lindblad import SeriesPlan

pytestmark = pytest.mark.skipif(ptx.nvcc() is None, reason="needs the CUDA toolkit's nvcc")


@pytest.mark.parametrize(
    "mode,kind,precise,small",
    [(m, k, p, s) for m, k, p, s in itertools.product(["pure", "mixed"], ["const", "array", "poisson"], [False, True],
                                                       [False, True]) if not (m == "mixed" and s)],
)
def test_population_variants_build_without_spills(mode, kind, precise, small):
    plan = SeriesPlan(2, 8) if mode == "mixed" else None
    defines = population.kernel_defines(mode, kind, plan, small=small, spikes=True, events=True, ties=True,
                                        record=True)
    stats = ptx.compile_stats("population", defines, precise)
    assert stats["spill_stores"] == 0 and stats["spill_loads"] == 0
    assert 0 < stats["registers"] <= 64  # leaves room for full occupancy (2048 threads x 32 regs per SM)


@pytest.mark.parametrize("mode", ["pure", "mixed"])
@pytest.mark.parametrize("precise", [False, True])
def test_stochastic_variants_build_without_spills(mode, precise):
    plan = SeriesPlan(1, 7) if mode == "mixed" else None
    defines = population.kernel_defines(mode, "poisson", plan, spikes=True, events=True, ties=True, record=True, jumps=True,
                                        dephasing=True, relaxation=True)
    stats = ptx.compile_stats("population", defines, precise)
    assert stats["spill_stores"] == 0 and stats["spill_loads"] == 0 and stats["registers"] <= 64


def test_propagation_builds_without_spills():
    stats = ptx.compile_stats("propagation", (), precise=False)
    assert stats["spill_stores"] == 0 and stats["registers"] > 0


def test_static_mix_of_the_fast_pure_step():
    """The fast pure step: rsqrt and cos on the SFU (the series replaces the sine when the angle is
    small), about two dozen FP32 operations, and tagged blocks that must each get a weight."""
    defines = population.kernel_defines("pure", "const", None, analysis=True)
    blocks = ptx.loop_blocks(ptx.compile_stats("population", defines, precise=False)["ptx"])
    assert {"always", "series", "sine"} <= set(blocks)
    with pytest.raises(ValueError, match="no execution weight"):
        ptx.per_step(blocks, {"series": 1.0})
    mix = ptx.per_step(blocks, {"series": 1.0, "sine": 0.0}, steps_per_iteration=4)
    assert mix["sfu"] == pytest.approx(2.0)
    assert 15 <= mix["fp32"] <= 60 and mix["instructions"] < 80
    limits = ptx.bound(mix)
    assert limits["bound"] == min(limits["issue"], limits["fp32"], limits["sfu"])


@pytest.mark.parametrize("stochastic,precise", [(False, False), (True, True)])
def test_network_kernel_builds_without_spills(stochastic, precise):
    """kernels/cuda/network.cu, deterministic and with every stochastic part: within the 128 registers of
    its __launch_bounds__(256, 2) (the resident grid of CupyRunner.launch_resident), no spills."""
    defines = population.kernel_defines("pure", "const", None, jumps=stochastic, dephasing=stochastic,
                                        relaxation=stochastic)
    stats = ptx.compile_stats("network", defines, precise)
    assert stats["spill_stores"] == 0 and stats["spill_loads"] == 0
    assert 0 < stats["registers"] <= 128
    assert ".entry qsn_network(" in stats["ptx"]
