"""The whole-network kernels against the JAX path: ``Network.run(backend="native")`` (kernels/cpu/network.cpp)
and the CUDA kernel (kernels/cuda/network.cu) in its host emulation (``backend=HostRunner()``: the same
source a GPU runs, each thread in turn). Identical spike trains for deterministic float32 runs (CUBA,
COBA's conductances, Brunel's Poisson drive, delays, views, dense projections), chunking and
state/restore, mixing backends, the same stochastic trains on both kernels, and the refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsn
from qsn.errors import ConfigurationError
from qsn.kernels.compile import host_compiler
from qsn.kernels.runner import HostRunner
from qsn.networks import (STDP, CondExp, CurrentInput, Delta, Network, NeuronGroup, PoissonGroup, PoissonInput,
                          Projection, PscExp, RateMonitor, SpikeMonitor, SpikeSourceArray, StateMonitor,
                          fixed_probability, models, uniform)

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="the native network kernel needs a C++ compiler")


def _spikes(net, name="spikes"):
    m = net[name]
    return m.step.copy(), m.i.copy()


def _assert_same_trains(a, b, what):
    (sa, ia), (sb, ib) = a, b
    same = sa.shape == sb.shape and np.array_equal(sa, sb) and np.array_equal(ia, ib)
    if not same:
        k = min(sa.size, sb.size)
        diff = np.nonzero((sa[:k] != sb[:k]) | (ia[:k] != ib[:k]))[0]
        first = int(diff[0]) if diff.size else k
        raise AssertionError(f"{what}: {sa.size} JAX spikes vs {sb.size} native; first difference at event {first} "
                             f"(JAX step {sa[first:first + 1]}, native step {sb[first:first + 1]})")


# the kernels under test: the CPU kernel, and the CUDA kernel emulated on the host
KERNELS = [pytest.param("native", id="native"), pytest.param(HostRunner(), id="cuda-emulated")]


@pytest.fixture(params=KERNELS)
def kernel(request):
    return request.param


_JAX_RUNS: dict = {}  # the JAX reference of each network, run once for both kernels


def _pair(make, ms, kernel="native", **run):
    """The same network built twice from one key, run on the JAX path and on ``kernel``."""
    closure = tuple(c.cell_contents for c in make.__closure__ or ())
    key = (make.__code__, closure, ms, tuple(sorted(run.items())))
    if key not in _JAX_RUNS:
        _JAX_RUNS.clear()  # (one reference kept: the tests of one network run one after another)
        _JAX_RUNS[key] = make().build(jax.random.key(3)).run(ms, **run)
    b = make().build(jax.random.key(3))
    b.run(ms, backend=kernel, **run)
    return _JAX_RUNS[key], b


def test_cuba_spike_trains_equal_the_jax_path(kernel):
    a, b = _pair(lambda: models.cuba(n=1000), 100.0, kernel)  # 1000 steps
    assert a["spikes"].step.size > 500  # the network is active
    _assert_same_trains(_spikes(a), _spikes(b), "CUBA n=1000, 1000 steps")
    np.testing.assert_array_equal(np.asarray(a.state.count["neurons"]), np.asarray(b.state.count["neurons"]))
    np.testing.assert_array_equal(np.asarray(a.state.neurons["neurons"].v), np.asarray(b.state.neurons["neurons"].v))
    np.testing.assert_array_equal(np.asarray(a.state.syn["neurons"]), np.asarray(b.state.syn["neurons"]))
    np.testing.assert_array_equal(np.asarray(a.state.ring["neurons"]), np.asarray(b.state.ring["neurons"]))


@pytest.mark.slow
def test_full_cuba_one_second_equals_the_jax_path():
    a, b = _pair(models.cuba, 1000.0)  # n = 4000, 10,000 steps
    _assert_same_trains(_spikes(a), _spikes(b), "CUBA n=4000, 10,000 steps")


def _two_groups():
    """Two groups (one with per-neuron thresholds), Delta and PscExp receptors, drawn delays up to 2 ms
    (ring buffers of up to 21 slots, wrapped ~50 times in 1000 steps), four projections, a view monitor
    and a rate monitor."""
    net = Network()
    pa = qsn.NeuronParams(v_rest=-65.0, v_th=-50.0, tau_m=10.0, t_ref=2.0, delta=0.2, dt=0.1)
    n_b = 150
    pb = qsn.NeuronParams(v_rest=-60.0, v_th=np.linspace(-52.0, -48.0, n_b), tau_m=15.0, t_ref=3.0, delta=0.0, dt=0.1)
    a = net.add(NeuronGroup(200, pa, receptors={"d": Delta(), "exc": PscExp(3.0)},
                            v0=lambda k: -65.0 + 15.0 * jax.random.uniform(k, (200,)), name="a"))
    b = net.add(NeuronGroup(n_b, pb, receptors={"exc": PscExp(5.0), "inh": PscExp(8.0)}, name="b"))
    net.add(Projection(a, a, fixed_probability(0.05), weight=0.75, delay=uniform(0.0, 2.0), receptor="d", name="aa"))
    net.add(Projection(a, b, fixed_probability(0.1), weight=2.5, delay=uniform(0.1, 1.5), receptor="exc", name="ab"))
    net.add(Projection(b, a, fixed_probability(0.1), weight=-1.5, delay=0.7, receptor="exc", name="ba"))
    net.add(Projection(b[:50], b, fixed_probability(0.2), weight=-2.0, delay=1.0, receptor="inh", name="bb"))
    net.add(CurrentInput(a, np.linspace(14.0, 18.0, 200)))
    net.add(CurrentInput(b[10:], 11.0))
    net.add(SpikeMonitor(a, name="spikes"), SpikeMonitor(b[::3], name="b_view"), RateMonitor(b, name="rate"))
    return net


def test_delays_views_groups_and_projections_equal_the_jax_path(kernel):
    a, b = _pair(_two_groups, 100.0, kernel)
    assert a._specs["aa"].path == "event" and max(int(r.shape[1]) for r in a.state.ring.values()) >= 15
    assert a["spikes"].step.size > 100 and a["b_view"].step.size > 20
    _assert_same_trains(_spikes(a), _spikes(b), "group a")
    _assert_same_trains(_spikes(a, "b_view"), _spikes(b, "b_view"), "group b, view [::3]")
    np.testing.assert_array_equal(a["rate"].rate, b["rate"].rate)
    np.testing.assert_array_equal(a["rate"].t, b["rate"].t)
    for name in ("a", "b"):
        np.testing.assert_array_equal(np.asarray(a.state.ring[name]), np.asarray(b.state.ring[name]))
        np.testing.assert_array_equal(np.asarray(a.state.neurons[name].refractory),
                                      np.asarray(b.state.neurons[name].refractory))


def _dense():
    net = Network()
    p = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=20.0, t_ref=2.0, delta=0.0, dt=0.1)
    g = net.add(NeuronGroup(120, p, receptors={"exc": PscExp(5.0), "inh": Delta()},
                            v0=lambda k: -60.0 + 10.0 * jax.random.uniform(k, (120,)), name="g"))
    # dyadic weights: the dense path's sums are exact in any order, so the trains must agree
    net.add(Projection(g[:90], g, fixed_probability(0.3), weight=0.25, delay=uniform(0.0, 0.5), receptor="exc",
                       propagation="dense", name="e"))
    net.add(Projection(g[90:], g, fixed_probability(0.3), weight=-0.5, delay=0.3, receptor="inh", propagation="dense",
                       name="i"))
    net.add(CurrentInput(g, 11.5))
    net.add(SpikeMonitor(g, name="spikes"))
    return net


def test_dense_projections_equal_the_jax_path(kernel):
    a, b = _pair(_dense, 100.0, kernel)
    assert a._specs["e"].path == "dense" and len(a._specs["e"].delays) > 1
    assert a["spikes"].step.size > 100
    _assert_same_trains(_spikes(a), _spikes(b), "dense projections")


def test_chunks_restore_and_mixed_backends_equal_one_run(kernel):
    ref = _two_groups().build(jax.random.key(3))
    ref.run(60.0, backend=kernel)
    chunked = _two_groups().build(jax.random.key(3))
    chunked.run(60.0, backend=kernel, chunk_steps=7)  # 600 = 85 x 7 + 5
    _assert_same_trains(_spikes(ref), _spikes(chunked), "chunk_steps=7")
    split = _two_groups().build(jax.random.key(3))
    split.run(20.0, backend=kernel)
    saved = split.state
    split.run(25.0, backend=kernel)  # forgotten by the restore
    split.restore(saved)
    split.run(40.0, backend=kernel)
    _assert_same_trains(_spikes(ref), _spikes(split), "state/restore")
    mixed = _two_groups().build(jax.random.key(3))
    mixed.run(30.0)
    mixed.run(30.0, backend=kernel)
    _assert_same_trains(_spikes(ref), _spikes(mixed), "JAX then native")
    for x, y in zip(jax.tree_util.tree_leaves(ref.state), jax.tree_util.tree_leaves(mixed.state)):
        assert x.shape == y.shape and x.dtype == y.dtype
    np.testing.assert_array_equal(np.asarray(ref.state.neurons["b"].v), np.asarray(mixed.state.neurons["b"].v))


def test_stochastic_runs_repeat_and_split_like_one_run(kernel):
    def make():
        net = Network()
        p = qsn.NeuronParams(delta=0.5, jump_rate=0.05, t2=30.0, dt=0.1)
        g = net.add(NeuronGroup(300, p, name="g"))
        net.add(Projection(g, g, fixed_probability(0.05), weight=0.5, delay=0.5, receptor="exc"))
        net.add(CurrentInput(g, 8.0))
        net.add(SpikeMonitor(g, name="spikes"))
        return net.build(jax.random.key(1))

    one, again, split, cpu = make(), make(), make(), make()
    one.run(50.0, backend=kernel)
    again.run(50.0, backend=kernel)
    split.run(21.3, backend=kernel)
    split.run(28.7, backend=kernel, chunk_steps=13)
    assert one["spikes"].step.size > 10  # quantum jumps happen (Philox draws, not jax.random's)
    _assert_same_trains(_spikes(one), _spikes(again), "same key")
    _assert_same_trains(_spikes(one), _spikes(split), "split run")
    cpu.run(50.0, backend="native")  # both kernels draw the same Philox numbers (neuron.cuh's)
    _assert_same_trains(_spikes(one), _spikes(cpu), "the CPU kernel")


def _refused(make, feature, kernel="native"):
    net = make()
    net.build(jax.random.key(0))
    name = kernel if isinstance(kernel, str) else kernel.name
    with pytest.raises(ConfigurationError, match=rf"backend='{name}'.*{feature}.*runs on backend='jax'"):
        net.run(1.0, backend=kernel)
    assert int(net.state.t) == 0  # refused before any step
    net.run(0.5)  # the JAX path runs it


def _base(mode="pure", receptors=None, params=None):
    net = Network()
    g = net.add(NeuronGroup(8, params or qsn.NeuronParams(), mode, receptors=receptors, name="g"))
    return net, g


def _with(kind):
    def make():
        net, g = _base(mode="mixed" if kind == "mixed" else "pure",
                       receptors={"exc": CondExp(5.0, 0.0)} if kind == "cond" else None)
        if kind == "poisson_mean":  # 1000 input spikes per step: jax.random.poisson, not a table
            net.add(PoissonInput(g, "exc", rate=10.0, weight=1.0, n_inputs=1_000_000))
        elif kind == "poisson_repeats":
            net.add(PoissonInput(g[np.array([1, 1, 2])], "exc", rate=10.0, weight=1.0, n_inputs=5))
        elif kind == "time_varying":
            net.add(CurrentInput(g, np.ones((100, 8))))
        elif kind == "configs":
            net.add(NeuronGroup(4, qsn.NeuronParams(jump_rate=0.1), name="h"))
        return net
    return make


@pytest.mark.parametrize("kind, feature", [
    ("poisson_mean", "PoissonInput with a mean of 1000"),
    ("poisson_repeats", "PoissonInput on a view with repeated neurons"),
    ("time_varying", "time-varying CurrentInput"), ("mixed", "mixed-mode"),
    ("configs", "differing step configurations"),
])
def test_refusals_name_the_feature(kind, feature, kernel):
    _refused(_with(kind), feature, kernel)


def test_float64_is_refused():
    with jax.enable_x64(True):  # (a context: the suite's other tests need x64 as tests/conftest.py left it)
        net = Network(dtype=jnp.float64)
        net.add(NeuronGroup(4, qsn.NeuronParams(), name="g"))
        net.build(jax.random.key(0))
        with pytest.raises(ConfigurationError, match=r"backend='native'.*float64.*runs on backend='jax'"):
            net.run(1.0, backend="native")
        assert int(net.state.t) == 0


def _views_and_per_neuron_psc():
    """Per-neuron tau_m (so per-neuron PscExp factors and decays of V), monitors on views in any order
    with repeats (the kernel inverts their index), a Delta receptor."""
    net = Network()
    n = 90
    p = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=np.linspace(10.0, 30.0, n), t_ref=2.0, delta=0.0, dt=0.1)
    g = net.add(NeuronGroup(n, p, receptors={"exc": PscExp(4.0), "d": Delta()},
                            v0=lambda k: -60.0 + 10.0 * jax.random.uniform(k, (n,)), name="g"))
    net.add(Projection(g, g, fixed_probability(0.1), weight=1.5, delay=uniform(0.0, 1.0), receptor="exc", name="e"))
    net.add(Projection(g[70:], g, fixed_probability(0.2), weight=-1.0, delay=0.4, receptor="d", name="i"))
    net.add(CurrentInput(g, 11.0))
    view = np.array([7, 3, 7, 0, 89, 3, 45])
    net.add(SpikeMonitor(g, name="spikes"), SpikeMonitor(g[view], name="view"), RateMonitor(g[view], name="rate"),
            SpikeMonitor(g[np.arange(n)[::-1]], name="reversed"))
    return net


def test_per_neuron_psc_and_monitors_on_repeated_views_equal_the_jax_path(kernel):
    a, b = _pair(_views_and_per_neuron_psc, 100.0, kernel)
    assert a["spikes"].step.size > 100 and a["view"].step.size > 10
    _assert_same_trains(_spikes(a), _spikes(b), "per-neuron psc")
    _assert_same_trains(_spikes(a, "view"), _spikes(b, "view"), "view with repeats")
    _assert_same_trains(_spikes(a, "reversed"), _spikes(b, "reversed"), "reversed view")
    np.testing.assert_array_equal(a["rate"].rate, b["rate"].rate)


def test_saved_states_stay_unchanged_and_records_read_like_a_scan(kernel):
    net = _views_and_per_neuron_psc().build(jax.random.key(3))
    net.run(20.0, backend=kernel)
    saved = net.state
    before = [np.array(x) for x in jax.tree_util.tree_leaves(saved)]
    net.run(20.0, backend=kernel)  # continues from saved: the kernel's buffers change in place
    assert all(np.array_equal(x, np.asarray(y)) for x, y in zip(before, jax.tree_util.tree_leaves(saved)))
    kernel = net._kernel(kernel)
    for cap in (None, 3):  # the event list, then one too short for the chunk (the rows are scanned)
        if cap is not None:
            for m in kernel._monitors:
                if m["kind"] == 0:
                    kernel._spike_buffers(m, 300)["cap"] = cap
        _, records = kernel.chunk(saved, 300)
        for name in ("spikes", "view", "reversed"):
            rows = records[name]
            scan = np.nonzero(np.asarray(rows).view(np.ndarray))
            assert scan[0].size > 3
            for got, want in zip(np.nonzero(rows), scan):
                np.testing.assert_array_equal(got, want)
            assert np.count_nonzero(rows) == scan[0].size


def _poisson():
    """Poisson inputs drawn as the JAX path draws them: two into one PscExp receptor (added in order), one
    into a Delta receptor through a view; weight 0.1 with ~30 input spikes per step, so that x + w k
    rounds differently unless it is one FMA, as XLA computes it."""
    net = Network()
    p = qsn.NeuronParams(v_rest=-60.0, v_th=-40.0, tau_m=20.0, t_ref=2.0, delta=0.0, dt=0.1)
    g = net.add(NeuronGroup(300, p, receptors={"exc": PscExp(2.0), "d": Delta()}, name="g"))
    net.add(PoissonInput(g, "exc", rate=300.0, weight=0.1, n_inputs=1000))
    net.add(PoissonInput(g[np.arange(200, 10, -1)], "d", rate=30.0, weight=0.7, n_inputs=20))
    net.add(PoissonInput(g, "exc", rate=10.0, weight=0.9, n_inputs=10))
    net.add(Projection(g, g, fixed_probability(0.05), weight=-0.5, delay=0.5, receptor="d"))
    net.add(SpikeMonitor(g, name="spikes"))
    return net


def test_poisson_inputs_draw_the_jax_paths_numbers(kernel):
    a, b = _pair(_poisson, 100.0, kernel)
    assert a["spikes"].step.size > 500
    _assert_same_trains(_spikes(a), _spikes(b), "Poisson inputs")
    np.testing.assert_array_equal(np.asarray(a.state.syn["g"]), np.asarray(b.state.syn["g"]))
    np.testing.assert_array_equal(np.asarray(a.state.neurons["g"].v), np.asarray(b.state.neurons["g"].v))


@pytest.mark.filterwarnings("ignore:brunel. the 'AI' regime")  # C_E = 100: a small network, any regime
def test_brunel_equals_the_jax_path(kernel):
    a, b = _pair(lambda: models.brunel(1000, indegree=100), 50.0, kernel)
    assert a["spikes"].step.size > 100
    _assert_same_trains(_spikes(a), _spikes(b), "Brunel n=1000")


@pytest.mark.parametrize("model", [models.coba, models.coba_brainpy])
def test_conductance_synapses_equal_the_jax_path(kernel, model):
    """CondExp receptors (COBA): the equivalent current of the conductances held over the step, rounded as
    XLA rounds it (network.cuh's QSN_NET_COND_FMA), so trains and conductances agree bit for bit."""
    a, b = _pair(lambda: model(n=1000), 100.0, kernel)
    assert a["spikes"].step.size > 200 and "cond_exp" in a._plans["neurons"].kinds
    _assert_same_trains(_spikes(a), _spikes(b), model.__name__)
    np.testing.assert_array_equal(np.asarray(a.state.syn["neurons"]), np.asarray(b.state.syn["neurons"]))
    np.testing.assert_array_equal(np.asarray(a.state.neurons["neurons"].v), np.asarray(b.state.neurons["neurons"].v))


def test_the_cuda_kernel_is_asked_for_by_name_and_cupy_is_missing_here():
    """backend="cupy" builds the CUDA kernel on CuPy; without CuPy or a GPU it says what is missing."""
    from qsn.kernels.backend import available

    if available():
        pytest.skip("a CUDA device is present: tests/kernels/test_kernel_cuda_network.py runs it")
    net = models.cuba(n=100).build(jax.random.key(0))
    with pytest.raises(qsn.errors.BackendUnavailableError, match="CuPy|CUDA"):
        net.run(1.0, backend="cupy")
    assert int(net.state.t) == 0


def _state_monitors():
    """StateMonitors on a whole group and on a view with repeats, of V, the qubit's observables and a
    receptor variable, one every 3 steps; delta > 0, so the qubit moves."""
    net = Network()
    n = 120
    p = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=20.0, t_ref=2.0, delta=0.4, dt=0.1)
    g = net.add(NeuronGroup(n, p, receptors={"exc": PscExp(5.0), "inh": Delta()},
                            v0=lambda k: -60.0 + 10.0 * jax.random.uniform(k, (n,)), name="g"))
    net.add(Projection(g, g, fixed_probability(0.1), weight=1.0, delay=uniform(0.0, 1.0), receptor="exc"))
    net.add(CurrentInput(g, 11.0))
    net.add(SpikeMonitor(g, name="spikes"), StateMonitor(g, ("v", "exc", "p1"), name="all"),
            StateMonitor(g[np.array([5, 100, 5, 0])], ("p1", "coherence", "entropy", "v"), record_every=3, name="view"))
    return net


def test_state_monitors_equal_the_jax_path(kernel):
    a, b = _pair(_state_monitors, 30.0, kernel)
    assert a["spikes"].step.size > 20
    _assert_same_trains(_spikes(a), _spikes(b), "state monitors")
    for name, variables in (("all", ("v", "exc", "p1")), ("view", ("p1", "coherence", "entropy", "v"))):
        np.testing.assert_array_equal(a[name].t, b[name].t)
        for var in variables:
            want, got = getattr(a[name], var), getattr(b[name], var)
            assert want.shape == got.shape and want.shape[0] == (300 if name == "all" else 100), (name, var)
            if var in ("v", "exc"):  # the state itself, bit for bit
                np.testing.assert_array_equal(got, want, err_msg=f"{name}.{var}")
            else:  # the qubit: the kernels' sine and cosine are not XLA's (a few ulp a step, docs/kernels.md)
                np.testing.assert_allclose(got, want, rtol=0, atol=2e-5, err_msg=f"{name}.{var}")
    assert np.ptp(a["view"].p1) > 1e-3  # the qubit moves: the test can tell the observables apart


def _angles():
    """Two groups whose qubits turn fast and slow: group "fast" has per-neuron delta up to 15 /ms, so
    at dt = 0.1 ms most of its neurons' angles w dt pass the series angle 0.25 (the general form with
    the sine: no block of it is all small), group "slow" stays below it (every block takes the series
    form alone). Each form is checked against the JAX path's where(theta < 0.25, series, sin/w)."""
    net = Network()
    n = 300
    fast = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=20.0, t_ref=2.0, delta=np.linspace(0.0, 15.0, n), dt=0.1)
    slow = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=20.0, t_ref=2.0, delta=0.5, dt=0.1)
    groups = [net.add(NeuronGroup(n, p, receptors={"exc": PscExp(5.0)},
                                  v0=lambda k: -60.0 + 10.0 * jax.random.uniform(k, (n,)), name=name))
              for name, p in (("fast", fast), ("slow", slow))]
    for g in groups:
        net.add(Projection(g, g, fixed_probability(0.05), weight=2.0, delay=0.5, receptor="exc"))
        net.add(CurrentInput(g, 12.0))
        net.add(SpikeMonitor(g, name=f"{g.name}_spikes"), StateMonitor(g, ("p1", "coherence"), name=f"{g.name}_q"))
    return net


def test_fast_and_slow_qubits_equal_the_jax_path(kernel):
    a, b = _pair(_angles, 20.0, kernel)
    for name in ("fast", "slow"):
        assert a[f"{name}_spikes"].step.size > 20
        _assert_same_trains(_spikes(a, f"{name}_spikes"), _spikes(b, f"{name}_spikes"), name)
        for var in ("p1", "coherence"):
            np.testing.assert_allclose(getattr(b[f"{name}_q"], var), getattr(a[f"{name}_q"], var), rtol=0, atol=2e-5,
                                       err_msg=f"{name}.{var}")
    # the fast group's qubits do turn past the series angle: the sine is what the test checks there
    assert np.ptp(a["fast_q"].p1[:, -1]) > 0.1 and np.ptp(a["fast_q"].p1[:, -50]) > 0.1


def test_spike_rows_hold_each_calls_spikes_only(kernel):
    """The kernels write only the bytes of spikes into a SpikeMonitor's reused (length, k) rows; the
    launcher clears what the last call set. Three calls of one length, each from the state the last one
    left (different spikes each time): every call's dense rows are exactly its own events."""
    from qsn.kernels.network import network_kernel

    net = _state_monitors().build(jax.random.key(3))
    k = network_kernel(net, kernel)
    state, seen = net.state, []
    for call in range(3):
        state, records = k.chunk(state, 50)
        rows = np.asarray(records["spikes"]).view(np.ndarray).copy()
        events = np.zeros_like(rows)
        events[records["spikes"].nonzero()] = True
        assert rows.any() and np.array_equal(rows, events), f"call {call}: rows beyond the call's own events"
        seen.append(rows)
    assert not np.array_equal(seen[0], seen[1])  # the calls' spikes differ: stale bytes would show


def _sources():
    """Neurons driven only by spike sources: a PoissonGroup (per-neuron rates) and a SpikeSourceArray
    (several neurons in one step), through delayed projections, with monitors on the sources."""
    net = Network()
    p = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=10.0, t_ref=2.0, delta=0.3, dt=0.1)
    g = net.add(NeuronGroup(90, p, receptors={"exc": PscExp(5.0), "inh": Delta()}, name="g"))
    noise = net.add(PoissonGroup(300, np.linspace(5.0, 80.0, 300), name="noise"))
    times = np.array([0.0, 0.0, 0.3, 1.0, 1.0, 1.0, 2.5, 7.2, 7.2, 19.9])
    cells = np.array([3, 1, 0, 5, 1, 2, 2, 4, 0, 5])
    array = net.add(SpikeSourceArray(6, cells, times, name="array"))
    net.add(Projection(noise, g, fixed_probability(0.2), weight=4.0, delay=uniform(0.0, 1.0), receptor="exc"))
    net.add(Projection(array, g, fixed_probability(0.8), weight=-3.0, delay=0.5, receptor="inh"))
    net.add(Projection(g, g, fixed_probability(0.1), weight=1.0, receptor="exc"))
    net.add(SpikeMonitor(g, name="spikes"), SpikeMonitor(noise, name="noise_spikes"),
            SpikeMonitor(array, name="array_spikes"), RateMonitor(noise, name="noise_rate"))
    return net


def test_spike_sources_equal_the_jax_path(kernel):
    """PoissonGroup draws the JAX path's own uniforms (threefry under fold_in(fold_in(key, stream), t)), and a
    SpikeSourceArray's spikes come from its list step by step: the trains of the sources and of the
    neurons they drive equal the JAX path's, over two chunks."""
    a, b = _pair(_sources, 25.0, kernel, chunk_steps=120)
    assert a["noise_spikes"].step.size > 200 and a["spikes"].step.size > 30
    for name in ("noise_spikes", "array_spikes", "spikes"):
        _assert_same_trains(_spikes(a, name), _spikes(b, name), name)
    np.testing.assert_array_equal(b["noise_rate"].rate, a["noise_rate"].rate)
    assert _spikes(a, "array_spikes")[0].size == 10
    for name in ("g", "noise", "array"):
        np.testing.assert_array_equal(b.spike_count(name), a.spike_count(name))


def _plastic(bounds):
    """A recurrent projection from a slice of a group (its own rows only) and a Poisson source onto the
    group, both through STDP projections (``bounds`` bounds),
    weights drawn per synapse, some of them outside the bounds at the start (clipped on the first step)."""
    def make():
        net = Network()
        p = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=10.0, t_ref=2.0, delta=0.2, dt=0.1)
        g = net.add(NeuronGroup(120, p, receptors={"exc": PscExp(5.0)},
                                v0=lambda k: -60.0 + 10.0 * jax.random.uniform(k, (120,)), name="g"))
        src = net.add(PoissonGroup(80, 40.0, name="src"))
        rule = STDP(tau_plus=15.0, tau_minus=25.0, a_plus=0.05, a_minus=0.06, w_min=0.0, w_max=3.0, bounds=bounds)
        net.add(Projection(src, g, fixed_probability(0.3), weight=uniform(0.5, 3.5), delay=0.3, receptor="exc",
                           plasticity=rule, name="ff"))
        net.add(Projection(g[30:100], g, fixed_probability(0.15), weight=uniform(0.0, 2.0), delay=uniform(0.0, 1.0),
                           receptor="exc", plasticity=rule, name="rec"))  # rows of neurons 30 .. 99 only
        net.add(CurrentInput(g, 8.0))
        net.add(SpikeMonitor(g, name="spikes"))
        return net
    return make


@pytest.mark.parametrize("bounds", ["additive", "multiplicative"])
def test_stdp_equals_the_jax_path(bounds, kernel):
    """STDP on the kernels (traces, depression along spiking rows, potentiation along spiking targets'
    columns, the additive clip) against the JAX path's update over 40 ms in chunks: the same spike trains,
    traces equal to the last bit, weights to an ulp or two (XLA contracts an update's product into the
    sum, or not, depending on how it fuses the step: the same update on its own rounds as the kernel)."""
    a, b = _pair(_plastic(bounds), 40.0, kernel, chunk_steps=150)
    assert a["spikes"].step.size > 100 and a._specs["rec"].first == 30 and a._specs["rec"].n_pre == 70
    _assert_same_trains(_spikes(a), _spikes(b), f"STDP {bounds}")
    for name in ("ff", "rec"):
        w0 = _plastic(bounds)().build(jax.random.key(3)).state.weights[name]
        want, got = np.asarray(a.state.weights[name]), np.asarray(b.state.weights[name])
        assert np.mean(want != np.asarray(w0)) > 0.05, name  # the weights did move
        np.testing.assert_allclose(got, want, rtol=0, atol=2 * np.spacing(np.float32(3.0)), err_msg=f"{name} weights")
        assert np.mean(got == want) > 0.8, name
        np.testing.assert_array_equal(np.asarray(b.state.traces[name].pre), np.asarray(a.state.traces[name].pre))
        np.testing.assert_array_equal(np.asarray(b.state.traces[name].post), np.asarray(a.state.traces[name].post))
