"""Backends as objects: the registry, options travelling with the run, and the shared run driver."""

import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

import qsn
from qsn import backends
from qsn.driver import PopulationRun, chunk_length
from qsn.errors import BackendUnavailableError, ConfigurationError


def test_registry_names_and_status():
    assert backends.names()[:1] == ("jax",)
    status = backends.status()
    assert status["jax"] == "available"
    assert set(status) == set(backends.names())
    for name, word in status.items():
        assert word == "available" or word.startswith("unavailable: "), (name, word)


def test_unknown_backend_and_foreign_options_are_named():
    p = qsn.NeuronParams()
    s = qsn.init_state(p, 4)
    with pytest.raises(ConfigurationError, match="must be one of .*'jax'.*but is 'numba'"):
        qsn.simulate(p, s, 1.0, steps=3, backend="numba")
    with pytest.raises(ConfigurationError, match="`precise` is not an option of backend='jax'"):
        qsn.simulate(p, s, 1.0, steps=3, precise=True)


def test_import_qsn_loads_no_backend_implementation():
    code = ("import sys, qsn; bad = [m for m in ('qsn.jax_backend', 'qsn.kernels', 'cupy') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


class _Recorder(backends.Backend):
    """A backend that records what it was handed and answers with the JAX backend's result."""

    name = "probe"
    options = ("flavour",)

    def __init__(self):
        self.runs = []

    def simulate(self, run: PopulationRun):
        self.check_options(run.options.backend)
        self.runs.append(run)
        return backends.get("jax").simulate(run._replace(options=run.options._replace(backend={})))


def test_a_registered_backend_gets_one_validated_run():
    probe = _Recorder()
    backends.register("probe", lambda: probe)
    try:
        p = qsn.NeuronParams(delta=0.2)
        s = qsn.init_state(p, 10)
        r = qsn.simulate(p, s, np.linspace(0, 30, 10), steps=200, record=("spikes",), record_every=4,
                         backend="probe", flavour="x")
        ref = qsn.simulate(p, s, np.linspace(0, 30, 10), steps=200, record=("spikes",), record_every=4)
        np.testing.assert_array_equal(r.spikes, ref.spikes)
        (run,) = probe.runs
        assert run.steps == 200 and run.recording.every == 4 and run.options.backend == {"flavour": "x"}
        assert type(run.current).__name__ == "ConstantCurrent" and run.current.high == pytest.approx(30.0)
        with pytest.raises(ConfigurationError, match="`precise` is not an option of backend='probe'"):
            qsn.simulate(p, s, 1.0, steps=3, backend="probe", precise=True)
    finally:
        backends._LOADERS.pop("probe"), backends._INSTANCES.pop("probe", None)


def test_a_backend_object_can_be_passed_directly():
    probe = _Recorder()
    p = qsn.NeuronParams()
    qsn.simulate(p, qsn.init_state(p, 3), 1.0, steps=5, backend=probe)
    assert len(probe.runs) == 1


def test_unavailable_backend_says_what_is_missing():
    backends.register("ghost", "qsn.no_such_module:Ghost")
    try:
        with pytest.raises(BackendUnavailableError, match="backend='ghost' is not available"):
            qsn.simulate(qsn.NeuronParams(), qsn.init_state(qsn.NeuronParams(), 2), 1.0, steps=2, backend="ghost")
        assert backends.status()["ghost"].startswith("unavailable")
    finally:
        backends._LOADERS.pop("ghost"), backends._INSTANCES.pop("ghost", None)


def test_on_chunk_sees_every_chunk_and_the_driver_sizes_whole_periods():
    p = qsn.NeuronParams()
    seen = []
    qsn.simulate(p, qsn.init_state(p, 5), 20.0, steps=1000, record=("v",), record_every=7, chunk_steps=100,
                 on_chunk=lambda done, state: seen.append((done, int(state.t))))
    # chunks of 98 steps (14 whole periods of 7), the 14 whole steps left, then the trailing 6 unsampled
    assert [d for d, _ in seen] == list(range(98, 981, 98)) + [994, 1000]
    assert all(d == t for d, t in seen)
    assert chunk_length(None, 10_000, 10, 0, progress=True) == 100
    assert chunk_length(None, 10_000, 10, 0, progress=False) == 10_000


def test_records_shorter_than_one_period_are_empty_not_missing():
    p = qsn.NeuronParams()
    r = qsn.simulate(p, qsn.init_state(p, 6), 20.0, steps=10, record=("v", "spikes", "rho"), record_every=100)
    assert r.v.shape == (0, 6) and r.spikes.shape == (0, 6) and r.rho.shape == (0, 6, 2, 2)
    assert r.v.dtype == np.float32 and r.spikes.dtype == bool


def test_typed_currents_know_their_range_and_rows():
    from qsn.current import CallableCurrent, ConstantCurrent, SampledCurrent, as_current

    c = as_current(np.array([[1.0, -2.0], [3.0, 0.5]]), 2, jnp.float32)
    assert isinstance(c, SampledCurrent) and (c.low, c.high, c.steps) == (-2.0, 3.0, 2)
    np.testing.assert_array_equal(c.window(1, 1).rows, [[3.0, 0.5]])
    k = as_current(2.5, 2, jnp.float32)
    assert isinstance(k, ConstantCurrent) and k.rows is None and k.steps is None and (k.low, k.high) == (2.5, 2.5)
    f = as_current(lambda t: jnp.ones(2, jnp.float32) * t.astype(jnp.float32), 2, jnp.float32)
    assert isinstance(f, CallableCurrent) and f.low is None and not f.checked
    pc = qsn.PoissonCurrent(2, 100.0, 1.5, key=qsn_key(), sources=10)
    typed = as_current(pc, 2, jnp.float32)
    assert isinstance(typed, CallableCurrent) and (typed.low, typed.high) == pc.range


def qsn_key():
    import jax

    return jax.random.key(0)
