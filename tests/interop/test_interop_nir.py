"""NIR in and out: a graph written with the ``nir`` package (snnTorch/Norse-style CubaLIF layers, a
recurrent subgraph, per-channel delays) runs in qsn with the spikes of a NumPy integration of NIR's own
equations; qsn -> NIR file -> qsn gives identical spikes; what NIR cannot express is refused by name."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import qsn
from qsn.errors import ConfigurationError
from qsn.networks import (STDP, CondExp, CurrentInput, Delta, Network, NeuronGroup, PoissonInput, Projection, PscExp,
                          SpikeMonitor, SpikeSourceArray, explicit, fixed_probability, uniform)

nir = pytest.importorskip("nir", reason="NIR interop needs the nir package: pip install 'qsn[interop]'")
from qsn.interop import from_nir, to_nir  # noqa: E402

DT = 0.25  # ms


def _cubalif(n, tau_syn, tau_mem, v_th, w_in=1.0, r=1.0):
    full = lambda x: np.full(n, float(x))  # noqa: E731
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(r), v_leak=full(0.0), v_threshold=full(v_th),
                       v_reset=full(0.0), w_in=full(w_in))


def _reference(layers, w1, delay_steps, w_rec, input_spikes, steps):
    """NumPy integration of NIR's CubaLIF: tau_syn dI/dt = -I + w_in S, tau_mem dv/dt = (v_leak - v) + R I, spikes S
    Dirac deltas (I jumps by w_in W / tau_syn), the linear system solved exactly over each step with scipy's expm,
    spike when v > v_threshold at the end of a step, v -> v_reset. A spike at the end of step k acts from step k + 1
    (+ the Delay node's steps)."""
    out = []
    for p in layers:
        n = p["n"]
        a = np.zeros((2 * n + 1, 2 * n + 1))  # state (I (n), v (n), 1)
        for i in range(n):
            a[i, i] = -1.0 / p["tau_syn"]
            a[n + i, i] = p["r"] / p["tau_mem"]
            a[n + i, n + i] = -1.0 / p["tau_mem"]
            a[n + i, 2 * n] = p["v_leak"] / p["tau_mem"]
        out.append(dict(p, prop=scipy.linalg.expm(a * DT), x=np.r_[np.zeros(2 * n), 1.0], spikes=np.zeros((steps, n), bool)))
    l1, l2 = out
    for k in range(steps):
        # arrivals at the start of step k: input spikes at t = k dt, layer spikes of step k - 1 - delay
        kick1 = w1["in"] @ input_spikes[k]
        past = np.array([l1["spikes"][k - 1 - d, i] if k - 1 - d >= 0 else False for i, d in enumerate(delay_steps)])
        kick2 = w1["hid"] @ past + (w_rec @ l2["spikes"][k - 1] if k >= 1 else 0.0)
        for layer, kick in ((l1, kick1), (l2, kick2)):
            n = layer["n"]
            layer["x"][:n] += layer["w_in"] * kick / layer["tau_syn"]
            layer["x"] = layer["prop"] @ layer["x"]
            fire = layer["x"][n:2 * n] > layer["v_th"]
            layer["x"][n:2 * n][fire] = 0.0
            layer["spikes"][k] = fire
    return l1["spikes"], l2["spikes"]


def test_nir_import_matches_numpy_integration_of_nir_equations():
    rng = np.random.default_rng(3)
    n_in, n_hid, n_out, steps = 6, 8, 5, 400
    p1 = dict(n=n_hid, tau_syn=5.0, tau_mem=10.0, r=1.0, v_leak=0.0, v_th=1.0, w_in=2.0)
    p2 = dict(n=n_out, tau_syn=2.5, tau_mem=8.0, r=1.5, v_leak=0.0, v_th=1.0, w_in=1.0)
    w_in = rng.uniform(0.0, 1.6, (n_hid, n_in))
    w_hid = rng.uniform(-0.5, 2.5, (n_out, n_hid))
    w_rec = rng.uniform(-1.0, 0.5, (n_out, n_out))
    delay_steps = rng.integers(0, 6, n_hid)
    # layer 2 as snnTorch exports a recurrent layer (RSynaptic): a subgraph input -> lif -> w_rec -> lif -> output
    sub = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([n_out])}),
               "lif": _cubalif(n_out, p2["tau_syn"], p2["tau_mem"], p2["v_th"], p2["w_in"], p2["r"]),
               "w_rec": nir.Linear(weight=w_rec), "output": nir.Output(output_type={"output": np.array([n_out])})},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([n_in])}), "fc1": nir.Linear(weight=w_in),
               "lif1": _cubalif(n_hid, p1["tau_syn"], p1["tau_mem"], p1["v_th"], p1["w_in"], p1["r"]),
               "delay": nir.Delay(delay=delay_steps * DT), "fc2": nir.Affine(weight=w_hid, bias=np.zeros(n_out)),
               "rec": sub, "output": nir.Output(output_type={"output": np.array([n_out])})},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "delay"), ("delay", "fc2"), ("fc2", "rec"), ("rec", "output")])
    input_spikes = rng.random((steps, n_in)) < 0.15
    k, i = np.nonzero(input_spikes)
    net = from_nir(graph, DT, inputs={"input": (i, k * DT)}, dtype=jnp.float64)
    hidden = net.add(SpikeMonitor(net["lif1"]))
    net.build(jax.random.key(0)).run(steps * DT)
    ref1, ref2 = _reference([dict(p1, v_th=p1["v_th"]), dict(p2)], {"in": w_in, "hid": w_hid}, delay_steps, w_rec,
                            input_spikes, steps)
    got1 = np.zeros((steps, n_hid), bool)
    got1[hidden.step, hidden.i] = True
    got2 = np.zeros((steps, n_out), bool)
    got2[net["output"].step, net["output"].i] = True
    assert ref1.sum() > 50 and ref2.sum() > 20  # both layers active, so the comparison means something
    np.testing.assert_array_equal(got1, ref1)
    np.testing.assert_array_equal(got2, ref2)


def _mixed_network():
    net = Network()
    quantum = qsn.NeuronParams(v_rest=-60.0, v_th=-50.0, t_ref=2.0, delta=0.2, jump_rate=0.05)
    g = net.add(NeuronGroup(30, quantum, receptors={"exc": PscExp(5.0), "inh": PscExp(10.0)}, name="cells"))
    h = net.add(NeuronGroup(12, qsn.NeuronParams(delta=0.0, t_ref=0.0, tau_m=np.linspace(10, 20, 12)),
                            receptors={"syn": PscExp(3.0)}, v0=-65.0, name="readout"))
    d = net.add(NeuronGroup(6, qsn.NeuronParams(delta=0.0), receptors={"jump": Delta()}, name="deltas"))
    src = net.add(SpikeSourceArray(10, np.arange(10), np.linspace(1.0, 20.0, 10), name="src"))
    net.add(Projection(g[:24], g, fixed_probability(0.2), weight=0.5, delay=1.0, receptor="exc"))
    net.add(Projection(g[24:], g, fixed_probability(0.2), weight=-2.0, delay=uniform(0.5, 0.7), receptor="inh"))
    net.add(Projection(src, g, fixed_probability(0.5), weight=4.0, receptor="exc"))
    net.add(Projection(g, h, fixed_probability(0.3), weight=25.0, delay=0.5, receptor="syn"))
    net.add(Projection(g, d, fixed_probability(0.5), weight=4.0, receptor="jump"))
    net.add(CurrentInput(g, 11.0), CurrentInput(g[:5], 0.5), CurrentInput(d, 14.0))
    net.add(SpikeMonitor(g, name="spikes"), SpikeMonitor(h, name="out"), SpikeMonitor(d, name="dspk"))
    return net.build(jax.random.key(1))


def test_nir_round_trip_through_a_file_gives_identical_spikes(tmp_path):
    net = _mixed_network()
    graph = to_nir(net)
    path = tmp_path / "net.nir"
    nir.write(path, graph)
    back = nir.read(path)  # another tool's view: standard nodes, qsn's extension only in metadata
    assert type(back.nodes["cells"]).__name__ == "LIF" and type(back.nodes["readout"]).__name__ == "CubaLIF"
    assert back.nodes["cells"].metadata["qsn_model"] == "QLIF"
    np.testing.assert_array_equal(back.nodes["cells"].v_leak[:6], [-48.5] * 5 + [-49.0])  # v_rest + r_m I (11 + 0.5 on the first five)
    twin = from_nir(back).build(jax.random.key(1))
    net.run(100.0)
    twin.run(100.0)
    for name in ("spikes", "out", "dspk"):
        assert net[name].step.size > 10, name
        np.testing.assert_array_equal(twin[name].step, net[name].step)
        np.testing.assert_array_equal(twin[name].i, net[name].i)


def test_nir_export_converts_parameters_and_weights(tmp_path):
    net = Network()
    h = net.add(NeuronGroup(4, qsn.NeuronParams(delta=0.0, t_ref=0.0, r_m=2.0, tau_m=16.0), receptors={"syn": PscExp(4.0)},
                            name="h"))
    d = net.add(NeuronGroup(3, qsn.NeuronParams(delta=0.0, t_ref=0.0, r_m=2.0, tau_m=16.0), receptors={"v": Delta()}, name="d"))
    pre, post = np.array([0, 1, 3]), np.array([2, 0, 1])
    net.add(Projection(h, h, explicit(pre, post), weight=np.array([1.5, -0.5, 2.0]), delay=0.3, receptor="syn", name="hh"))
    net.add(Projection(h, d, explicit(pre, post), weight=np.array([3.0, 1.0, -1.0]), receptor="v", name="hd"))
    graph = to_nir(net.build(jax.random.key(0)), strict=True)
    cuba = graph.nodes["h"]
    np.testing.assert_array_equal(cuba.tau_syn, 4.0)
    np.testing.assert_array_equal(cuba.w_in, 4.0)  # Dirac of area 1 times w_in / tau_syn = a jump of 1
    np.testing.assert_array_equal(cuba.v_leak, -70.0)
    np.testing.assert_allclose(graph.nodes["hh.delay"].delay, np.full(4, 0.3), rtol=1e-12)  # 3 steps of 0.1 ms
    w = np.zeros((4, 4))
    w[post, pre] = [1.5, -0.5, 2.0]
    np.testing.assert_allclose(graph.nodes["hh"].weight, w)
    w = np.zeros((3, 4))
    w[post, pre] = np.array([3.0, 1.0, -1.0]) * 16.0 / 2.0  # dv = R W / tau_mem = w mV
    np.testing.assert_allclose(graph.nodes["hd"].weight, w)
    assert ("hd", "d") in graph.edges and ("h", "hh.delay") in graph.edges
    # no spike source: a silent placeholder Input lets NIR readers type-check the file
    nir.write(tmp_path / "g.nir", graph)
    back = nir.read(tmp_path / "g.nir")
    assert not np.any(back.nodes["input.none"].weight) and set(back.nodes) >= {"h", "hh", "hd", "d", "input"}


@pytest.mark.parametrize("build, match", [
    (lambda net, g: net.add(Projection(g, g, fixed_probability(0.5), receptor="exc", plasticity=STDP())), "plastic"),
    (lambda net, g: net.add(PoissonInput(g, "exc", 5.0, 1.0)), "PoissonInput"),
    (lambda net, g: net.add(CurrentInput(g, np.ones((10, 4)))), "varies in time"),
])
def test_nir_export_refuses_what_nir_cannot_express(build, match):
    net = Network()
    g = net.add(NeuronGroup(4, name="g"))
    build(net, g)
    with pytest.raises(ConfigurationError, match=match):
        to_nir(net)


def test_nir_export_refuses_conductances_and_strict_extensions():
    net = Network()
    net.add(NeuronGroup(4, receptors={"ampa": CondExp(5.0, 0.0)}, name="g"))
    with pytest.raises(ConfigurationError, match="receptor 'ampa' is a conductance synapse"):
        to_nir(net)
    net = Network()
    net.add(NeuronGroup(4, qsn.NeuronParams(delta=0.3, t_ref=1.0), name="q"))
    with pytest.raises(ConfigurationError, match=r"group 'q' has delta, t_ref"):
        to_nir(net, strict=True)


def _graph(node, edges=None):
    return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}), "fc": nir.Linear(weight=np.eye(3)),
                               "x": node}, edges=edges or [("input", "fc"), ("fc", "x")])


def test_nir_import_refuses_by_node_and_field():
    one = np.ones(3)
    with pytest.raises(ConfigurationError, match="node 'x' is a IF"):
        from_nir(_graph(nir.IF(r=one, v_threshold=one)), 0.1)
    with pytest.raises(ConfigurationError, match="LI node 'x' must feed exactly one LIF"):
        from_nir(_graph(nir.LI(tau=one, r=one, v_leak=0 * one)), 0.1)
    varying = _cubalif(3, 5.0, 10.0, 1.0)
    varying.tau_syn = np.array([5.0, 5.0, 6.0])
    with pytest.raises(ConfigurationError, match=r"'x' \(CubaLIF\).tau_syn varies across neurons"):
        from_nir(_graph(varying), 0.1)
    with pytest.raises(ConfigurationError, match="dt is needed"):
        from_nir(_graph(_cubalif(3, 5.0, 10.0, 1.0)))
    with pytest.raises(ConfigurationError, match=r"node 'x' \(CubaLIF\): NeuronParams.dt must be <= tau_m"):
        from_nir(_graph(_cubalif(3, 5.0, 0.05, 1.0)), 0.1)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}), "d": nir.Delay(delay=np.full(3, 0.15)),
                            "fc": nir.Linear(weight=np.eye(3)), "x": _cubalif(3, 5.0, 10.0, 1.0)},
                     edges=[("input", "d"), ("d", "fc"), ("fc", "x")])
    with pytest.raises(ConfigurationError, match="not a whole number of steps"):
        from_nir(g, 0.1)
    with pytest.raises(ConfigurationError, match=r"inputs\['input'\] times_ms\[0\] = 0.0 ms"):
        from_nir(_graph(_cubalif(3, 5.0, 10.0, 1.0)), 0.1, inputs={"input": ([0], [0.0])})
