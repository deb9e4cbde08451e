"""The XLA path on a GPU gives the CPU's results (skipped without CUDA; run on the device machine)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsn

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("mode", ["pure", "mixed"])
def test_gpu_matches_cpu(mode):
    params = qsn.NeuronParams(delta=0.3, t2=50.0 if mode == "mixed" else float("inf"))
    current = np.linspace(10.0, 40.0, 1000)
    results = {}
    for platform in ("cpu", "gpu"):
        with jax.default_device(jax.devices(platform)[0]):
            s = qsn.init_state(params, 1000, mode=mode, dtype=jnp.float64)
            results[platform] = qsn.simulate(params, s, current, steps=2000, record=("v", "p1"), record_every=10)
    cpu, gpu = results["cpu"], results["gpu"]
    np.testing.assert_array_equal(cpu.spike_count, gpu.spike_count)
    np.testing.assert_allclose(cpu.v, gpu.v, atol=1e-9)
    np.testing.assert_allclose(cpu.p1, gpu.p1, atol=1e-9)
