"""NIR graphs (Neuromorphic Intermediate Representation, ``nir`` 1.0) in and out of qsn networks.

Conventions (the same both ways; docs/interop.md has the table):

* **Units.** NIR times (``tau``, ``tau_mem``, ``tau_syn``, ``delay``) are in ms, as NIR's primitives
  table states (``from_nir(..., time_unit_ms=1000.0)`` reads a graph written in seconds); voltages
  in mV; ``R`` is qsn's ``r_m``, so NIR's current ``I`` is qsn's (``r_m * I`` in mV).
* **Spikes are Dirac deltas** of area 1: an edge of weight ``W`` into ``tau dx/dt = ... + k W S``
  makes ``x`` jump by ``k W / tau``. Hence a qsn :class:`PscExp` receptor (``I += w``) is NIR's
  synaptic current with ``w_in = tau_syn`` (CubaLIF) or an ``LI`` filter with ``r = tau`` feeding a
  LIF, both with ``W = w``; a :class:`Delta` receptor (``V += w``, mV) is an edge into a LIF with
  ``W = w * tau_mem / r``.
* **Time grid.** qsn integrates NIR's linear equations exactly between steps of ``dt`` (input held
  as it decays, docs/networks.md); a spike emitted in step ``k`` is at ``t = (k + 1) dt`` and reaches
  its targets at ``t + delay``. Thresholds: qsn spikes at ``v >= v_threshold``, NIR writes ``v >
  v_threshold`` (they differ only when ``v`` lands exactly on the threshold).
* **Graph shape.** A group is a ``CubaLIF`` node when its only receptor is one ``PscExp``, else a
  ``LIF`` node plus one ``LI`` filter node ``"<group>.<receptor>"`` per ``PscExp`` receptor. A
  projection is one ``Linear`` node ``(n_post, n_pre)`` per distinct delay, behind a ``Delay`` node
  ``(n_pre,)`` when the delay is not 0. Constant currents fold into ``v_leak`` (``v_leak = v_rest +
  r_m I``: NIR's membrane equation is then exactly qsn's). A :class:`SpikeSourceArray` is an
  ``Input`` node, a :class:`SpikeMonitor` of a whole group an ``Output`` node.
* **What NIR lacks** is carried in node metadata (keys ``qsn_*``), which qsn reads back and other tools
  ignore: the qubit (``qsn_model = "QLIF"`` with ``qsn_delta``, ``qsn_t1``, ``qsn_t2``,
  ``qsn_jump_rate``, ``qsn_mode``: the "QLIF" extension; the node itself is the neuron's exact
  classical membrane, which is all a group with ``jump_rate = 0`` spikes from), refractoriness
  (``qsn_t_ref``), ``v_rest`` and the current behind a folded ``v_leak``, initial ``V``. ``strict=True``
  refuses these instead. Conductance synapses (:class:`CondExp`), STDP, Poisson inputs and sources,
  time-varying currents, drawn initial states and receptor initial values have no NIR form and are
  refused, naming the object.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.params import NeuronParams
from qsn.interop.optional import require
from qsn.networks import (
    CondExp,
    CurrentInput,
    Delta,
    Network,
    NeuronGroup,
    PoissonGroup,
    PoissonInput,
    Projection,
    PscExp,
    SpikeMonitor,
    SpikeSourceArray,
    explicit,
)

__all__ = ["to_nir", "from_nir", "QLIF_FIELDS"]

# the qubit's parameters, carried as node metadata qsn_<field> (the "QLIF" extension)
QLIF_FIELDS = ("delta", "t1", "t2", "jump_rate")
_DELTA_RECEPTOR = "delta"  # name of the Delta receptor an import gives edges straight into a LIF
_STEP_TOL = 1e-6  # a NIR delay must be a whole number of steps to within this fraction of dt


# ---------------------------------------------------------------------------------------------- export
def _quantum_fields(g: NeuronGroup) -> list[str]:
    """The qubit's settings of ``g`` that differ from a classical LIF (``delta = jump_rate = 0``,
    ``t1 = t2 = inf``, pure mode): what the QLIF extension carries."""
    classical = {"delta": 0.0, "t1": math.inf, "t2": math.inf, "jump_rate": 0.0}
    out = [f for f in QLIF_FIELDS if np.any(np.asarray(getattr(g.params, f)) != classical[f])]
    return out + (["mode"] if g.mode != "pure" else [])


def _full(x: Any, n: int) -> np.ndarray:
    return np.array(np.broadcast_to(np.asarray(x, np.float64), (n,)))


def _constant_currents(net: Network) -> dict[str, np.ndarray]:
    """``(n,)`` summed constant current (current units) per neuron group; raise on any other input."""
    out = {name: np.zeros(g.n) for name, g in net.groups.items() if isinstance(g, NeuronGroup)}
    for inp in net.inputs:
        if isinstance(inp, PoissonInput):
            raise ConfigurationError(
                f"to_nir: PoissonInput into group {inp.group.name!r} (receptor {inp.receptor!r}, {inp.rate} Hz) has no NIR "
                "form: NIR graphs are deterministic; give the input as spikes (a SpikeSourceArray) instead"
            )
        value = np.asarray(inp.current) if not callable(inp.current) else None
        if value is None or value.ndim > 1:
            raise ConfigurationError(
                f"to_nir: CurrentInput into group {inp.group.name!r} varies in time; NIR has constant biases only "
                "(a scalar or an (n,) current)"
            )
        k = inp.group.n if inp.index is None else inp.index.size
        add = np.broadcast_to(np.asarray(value, np.float64), (k,))
        if inp.index is None:
            out[inp.group.name] = out[inp.group.name] + add
        else:
            np.add.at(out[inp.group.name], inp.index, add)
    return out


def _check_exportable(net: Network, strict: bool) -> None:
    """Every refusal of :func:`to_nir`, before anything is converted."""
    for name, g in net.groups.items():
        if isinstance(g, PoissonGroup):
            raise ConfigurationError(f"to_nir: PoissonGroup {name!r} has no NIR form (NIR graphs are deterministic); "
                                     "use a SpikeSourceArray with drawn times")
        if not isinstance(g, NeuronGroup):
            continue
        for r, kin in g.receptors.items():
            if isinstance(kin, CondExp):
                raise ConfigurationError(f"to_nir: group {name!r} receptor {r!r} is a conductance synapse (CondExp); "
                                         "NIR has current-based synapses only (CubaLIF, LI)")
        if callable(g.v0):
            raise ConfigurationError(f"to_nir: group {name!r} draws its initial V (v0 is a callable); pass an array")
        if g.syn0:
            raise ConfigurationError(f"to_nir: group {name!r} sets initial receptor values (syn0 {sorted(g.syn0)}); "
                                     "NIR has no initial state")
        if strict:
            extra = _quantum_fields(g)
            if np.any(np.asarray(g.params.t_ref) > 0):
                extra.append("t_ref")
            if g.v0 is not None:
                extra.append("v0")
            if extra:
                raise ConfigurationError(
                    f"to_nir(strict=True): group {name!r} has {', '.join(extra)}, which NIR cannot express "
                    "(strict=False carries them in node metadata for qsn, and other tools ignore them)"
                )
    for name, p in net.projections.items():
        if p.plasticity is not None:
            raise ConfigurationError(f"to_nir: projection {name!r} is plastic (STDP); NIR graphs have fixed weights")


def _neuron_nodes(nir: Any, g: NeuronGroup, current: np.ndarray, order: int) -> tuple[dict, list, dict]:
    """NIR nodes and internal edges of group ``g``, and where each receptor's input goes:
    receptor -> (node key, weight factor (n,))."""
    n, p = g.n, g.params
    tau_m, r_m = _full(p.tau_m, n), _full(p.r_m, n)
    v_rest = _full(p.v_rest, n)
    common = dict(r=r_m, v_leak=v_rest + r_m * current, v_threshold=_full(p.v_th, n), v_reset=_full(p.v_reset, n))
    meta: dict[str, Any] = {"qsn_order": order, "qsn_receptors": ",".join(g.receptors)}
    if np.any(current != 0):
        meta.update(qsn_v_rest=v_rest, qsn_current=current)
    if _quantum_fields(g):
        meta.update(qsn_model="QLIF", qsn_mode=g.mode, **{f"qsn_{f}": _full(getattr(p, f), n) for f in QLIF_FIELDS})
    if np.any(_full(p.t_ref, n) > 0):
        meta["qsn_t_ref"] = _full(p.t_ref, n)
    if g.v0 is not None:
        meta["qsn_v0"] = _full(g.v0, n)
    kinetics = list(g.receptors.items())
    if len(kinetics) == 1 and isinstance(kinetics[0][1], PscExp):
        (rname, kin), = kinetics
        tau = _full(kin.tau, n)
        node = nir.CubaLIF(tau_syn=tau, tau_mem=tau_m, w_in=tau, metadata=meta, **common)
        return {g.name: node}, [], {rname: (g.name, np.ones(n))}
    nodes = {g.name: nir.LIF(tau=tau_m, metadata=meta, **common)}
    edges, targets = [], {}
    for rname, kin in kinetics:
        if isinstance(kin, PscExp):
            key = f"{g.name}.{rname}"
            tau = _full(kin.tau, n)
            nodes[key] = nir.LI(tau=tau, r=tau, v_leak=np.zeros(n), metadata={"qsn_receptor": rname, "qsn_group": g.name})
            edges.append((key, g.name))
            targets[rname] = (key, np.ones(n))
        else:  # Delta: V += w is a Dirac of weight w tau_m / r_m into the LIF
            targets[rname] = (g.name, tau_m / r_m)
    return nodes, edges, targets


def to_nir(net: Network, *, strict: bool = False) -> Any:
    """The built network ``net`` as a ``nir.NIRGraph`` (conventions in the module docstring).

    Args:
        net: a built :class:`~qsn.networks.Network` (weights and delays are read from its synapses; the
            current weights, so a graph exported after a run carries what the run left).
        strict: refuse what NIR cannot express (the qubit, refractoriness, initial V) instead of carrying
            it in ``qsn_*`` node metadata.

    Returns:
        ``nir.NIRGraph``: one node per group (plus ``LI`` filters), ``Linear`` (and ``Delay``) nodes per
        projection and distinct delay, ``Input`` per :class:`SpikeSourceArray`, ``Output`` per
        :class:`SpikeMonitor` of a whole group; graph metadata ``qsn_dt`` (ms). Dense weight matrices
        ``(n_post, n_pre)`` float64: a projection between groups of 4,000 takes 128 MB per delay.

    Raises:
        ConfigurationError: the network is not built, or has something NIR cannot express (named):
            CondExp receptors, STDP, Poisson inputs or groups, time-varying currents, drawn ``v0``,
            ``syn0``; with ``strict``, also quantum parameters, ``t_ref > 0`` and ``v0``.
        BackendUnavailableError: ``nir`` is not installed.

    Example:
        >>> net = Network(); g = net.add(NeuronGroup(10, qsn.NeuronParams(delta=0.0, t_ref=0.0),
        ...                                        receptors={"syn": PscExp(5.0)}, name="g"))
        >>> net.add(Projection(g, g, fixed_probability(0.2), weight=2.0, delay=1.0, receptor="syn"))
        >>> graph = to_nir(net.build(jax.random.key(0)))      # nodes g, projection0.delay, projection0
        >>> nir.write("net.nir", graph)
    """
    nir = require("nir")
    _check_exportable(net, strict)
    currents = _constant_currents(net)  # (refuses Poisson and time-varying inputs)
    net.state  # noqa: B018  (raises ConfigurationError naming build() when the network is not built)
    dt = float(net.dt)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    targets: dict[str, dict] = {}

    def put(key: str, node: Any, owner: str) -> None:
        if key in nodes:
            raise ConfigurationError(f"to_nir: {owner} needs the NIR node name {key!r}, which is already taken; rename one")
        nodes[key] = node

    for order, (name, g) in enumerate(net.groups.items()):
        if isinstance(g, NeuronGroup):
            group_nodes, group_edges, targets[name] = _neuron_nodes(nir, g, currents[name], order)
            for key, node in group_nodes.items():
                put(key, node, f"group {name!r}")
            edges += group_edges
        else:  # SpikeSourceArray (PoissonGroup was refused)
            put(name, nir.Input(input_type={"input": np.array([g.n])},
                                metadata={"qsn_order": order, "qsn_times": g.times, "qsn_indices": g.indices}), f"source {name!r}")
    for name, p in net.projections.items():
        syn = net.synapses(name)
        key_post, factor = targets[p.post.name][p.receptor]
        delays = np.unique(syn["delay"])
        for d in delays.tolist():
            sel = syn["delay"] == d
            w = np.zeros((p.post.n, p.pre.n))
            pre, post = syn["pre"][sel], syn["post"][sel]
            np.add.at(w, (post, pre), np.asarray(syn["weight"][sel], np.float64) * factor[post])
            key = name if delays.size == 1 else f"{name}.d{d}"
            meta = {"qsn_projection": name, "qsn_receptor": p.receptor, "qsn_delay_steps": int(d)}
            put(key, nir.Linear(weight=w, metadata=meta), f"projection {name!r}")
            if d:
                put(f"{key}.delay", nir.Delay(delay=np.full(p.pre.n, d * dt), metadata=meta), f"projection {name!r}")
                edges += [(p.pre.name, f"{key}.delay"), (f"{key}.delay", key)]
            else:
                edges.append((p.pre.name, key))
            edges.append((key, key_post))
    for name, m in net.monitors.items():
        if isinstance(m, SpikeMonitor) and m.index is None:
            put(name, nir.Output(output_type={"output": np.array([m.group.n])}), f"monitor {name!r}")
            edges.append((m.group.name, name))
    first = next((name for name, g in net.groups.items() if isinstance(g, NeuronGroup)), None)
    if first is not None and not any(isinstance(node, nir.Input) for node in nodes.values()):
        # NIR readers type-check from an Input node: a network driven only by currents gets a silent
        # one, whose all-zero Linear into the first group changes nothing
        put("input", nir.Input(input_type={"input": np.array([1])}, metadata={"qsn_placeholder": 1}), "the placeholder input")
        put("input.none", nir.Linear(weight=np.zeros((net.groups[first].n, 1)), metadata={"qsn_placeholder": 1}),
            "the placeholder input")
        edges += [("input", "input.none"), ("input.none", targets[first][next(iter(targets[first]))][0]
                                             if targets[first] else first)]
    meta = {"qsn_dt": dt, "qsn_time_unit": "ms", "qsn_spikes": "dirac"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


# ---------------------------------------------------------------------------------------------- import
def _flatten(nir: Any, graph: Any, prefix: str = "") -> tuple[dict, list, set]:
    """Nodes and edges of ``graph`` with nested graphs inlined (names ``"<sub>.<node>"``); the Input and
    Output nodes of nested graphs become pass-through nodes (returned as the third item)."""
    nodes, edges, through = {}, [], set()

    def port(key: str, end: str) -> str:
        node = graph.nodes.get(key)
        if not isinstance(node, nir.NIRGraph):
            return prefix + key
        kind = nir.Output if end == "out" else nir.Input
        ports = [k for k, x in node.nodes.items() if isinstance(x, kind)]
        if len(ports) != 1:
            raise ConfigurationError(f"from_nir: subgraph {prefix + key!r} has {len(ports)} {kind.__name__} nodes; "
                                     "an edge to or from it needs exactly one")
        return f"{prefix}{key}.{ports[0]}"

    for key, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges, sub_through = _flatten(nir, node, f"{prefix}{key}.")
            nodes.update(sub_nodes)
            edges += sub_edges
            through |= sub_through | {f"{prefix}{key}.{k}" for k, x in node.nodes.items() if isinstance(x, (nir.Input, nir.Output))}
        else:
            nodes[prefix + key] = node
    edges += [(port(a, "out"), port(b, "in")) for a, b in graph.edges]
    return nodes, edges, through


def _vector(key: str, node: Any, field: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(getattr(node, field), np.float64)
    if arr.ndim != 1 or (n is not None and arr.shape != (n,)):
        raise ConfigurationError(f"from_nir: node {key!r} ({type(node).__name__}).{field} must be 1-D"
                                 + (f" of length {n}" if n is not None else "") + f", but has shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ConfigurationError(f"from_nir: node {key!r} ({type(node).__name__}).{field}[{i}] must be finite, but is {arr[i]}")
    return arr


def _uniform(key: str, node: Any, field: str, values: np.ndarray) -> float:
    if not np.all(values == values[0]):
        i = int(np.flatnonzero(values != values[0])[0])
        raise ConfigurationError(f"from_nir: node {key!r} ({type(node).__name__}).{field} varies across neurons "
                                 f"({values[0]} at 0, {values[i]} at {i}); a qsn receptor has one time constant")
    return float(values[0])


def _meta(node: Any, key: str, default: Any = None) -> Any:
    value = (getattr(node, "metadata", None) or {}).get(key, default)
    return value.decode() if isinstance(value, bytes) else value


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if ident.isidentifier() else f"r_{ident}"


class _Graph:
    """A flattened NIR graph, classified: sources, neurons, filters, linear maps and sinks."""

    def __init__(self, nir: Any, graph: Any) -> None:
        self.nir = nir
        self.nodes, self.edges, self.through = _flatten(nir, graph)
        self.out: dict[str, list[str]] = {k: [] for k in self.nodes}
        for a, b in self.edges:
            for end in (a, b):
                if end not in self.nodes:
                    raise ConfigurationError(f"from_nir: edge ({a!r}, {b!r}) names {end!r}, which is not a node")
            self.out[a].append(b)
        linear = (nir.Linear, nir.Affine, nir.Scale, nir.Delay)
        self.kind: dict[str, str] = {}
        for key, node in self.nodes.items():
            if key in self.through:
                self.kind[key] = "linear"
            elif isinstance(node, nir.Input):
                self.kind[key] = "input"
            elif isinstance(node, nir.Output):
                self.kind[key] = "output"
            elif isinstance(node, (nir.LIF, nir.CubaLIF)):
                self.kind[key] = "neuron"
            elif isinstance(node, nir.LI):
                self.kind[key] = "filter"
            elif isinstance(node, linear):
                self.kind[key] = "linear"
            else:
                hint = {"IF": "qsn's membrane always leaks", "I": "qsn's membrane always leaks",
                        "CubaLI": "non-spiking read-outs are not simulated", "Threshold": "a bare threshold has no membrane"}
                why = hint.get(type(node).__name__, "no qsn counterpart")
                raise ConfigurationError(f"from_nir: node {key!r} is a {type(node).__name__}, which qsn cannot import ({why})")
        self.filter_target: dict[str, str] = {}
        for key in (k for k, kind in self.kind.items() if kind == "filter"):
            outs = self.out[key]
            if len(outs) != 1 or not isinstance(self.nodes[outs[0]], self.nir.LIF):
                raise ConfigurationError(
                    f"from_nir: LI node {key!r} must feed exactly one LIF node directly (as a synaptic current), "
                    f"but its edges go to {outs}; non-spiking read-outs are not simulated"
                )
            self.filter_target[key] = outs[0]

    def size(self, key: str) -> int:
        node = self.nodes[key]
        shape = np.asarray(node.input_type["input"] if isinstance(node, self.nir.Input) else node.output_type["output"]).reshape(-1)
        if shape.size != 1:
            raise ConfigurationError(f"from_nir: node {key!r} has shape {tuple(shape)}; qsn imports 1-D populations only")
        return int(shape[0])

    def apply(self, key: str, signal: dict[float, np.ndarray], time_unit_ms: float) -> dict[float, np.ndarray]:
        """Pass ``signal`` (delay ms -> (channels, columns) matrix) through linear node ``key``."""
        node, nir = self.nodes[key], self.nir
        if key in self.through:
            return signal
        if isinstance(node, (nir.Linear, nir.Affine)):
            w = np.asarray(node.weight, np.float64)
            if w.ndim != 2:
                raise ConfigurationError(f"from_nir: node {key!r} weight must be 2-D (n_out, n_in), but has shape {w.shape}")
            return {d: w @ m for d, m in signal.items()}
        if isinstance(node, nir.Scale):
            s = np.asarray(node.scale, np.float64).reshape(-1)
            return {d: s[:, None] * m for d, m in signal.items()}
        delay = _vector(key, node, "delay") * time_unit_ms
        if np.any(delay < 0):
            raise ConfigurationError(f"from_nir: Delay node {key!r} has a negative delay {float(delay.min())}")
        out: dict[float, np.ndarray] = {}
        for d, m in signal.items():
            for value in np.unique(delay):
                rows = delay == value
                part = np.where(rows[:, None], m, 0.0)
                out[d + float(value)] = out.get(d + float(value), 0.0) + part
        return out

    def reach(self, start: str, signal: dict, time_unit_ms: float) -> list[tuple[str, dict]]:
        """``(terminal, signal)`` for every path of linear nodes from ``start``'s outputs to a neuron, filter
        or Output node."""
        found: list[tuple[str, dict]] = []

        def walk(key: str, sig: dict, path: tuple) -> None:
            for nxt in self.out[key]:
                if self.kind[nxt] == "linear":
                    if nxt in path:
                        raise ConfigurationError(f"from_nir: the linear nodes {list(path)} form a cycle without a neuron")
                    walk(nxt, self.apply(nxt, sig, time_unit_ms), path + (nxt,))
                elif self.kind[nxt] == "input":
                    raise ConfigurationError(f"from_nir: an edge leads into Input node {nxt!r}")
                else:
                    found.append((nxt, sig))

        walk(start, signal, ())
        return found


def from_nir(graph: Any, dt: float | None = None, *, inputs: Mapping[str, tuple[Any, Any]] | None = None,
             time_unit_ms: float = 1.0, dtype: Any = jnp.float32) -> Network:
    """A qsn :class:`~qsn.networks.Network` (not built) that runs the NIR graph ``graph``.

    Mapping (module docstring for the conventions): ``LIF`` and ``CubaLIF`` nodes become
    :class:`NeuronGroup`\\ s named by their node keys (``delta = 0``, ``t_ref = 0``: NIR's neuron; with
    ``qsn_*`` metadata from :func:`to_nir`, the qubit, refractoriness and ``v_rest`` come back); a
    CubaLIF's synaptic current is a :class:`PscExp` receptor ``"syn"`` (weights ``w_in W / tau_syn``),
    an ``LI`` node feeding a LIF is a PscExp receptor named after the node (weights ``r W / tau``),
    an edge straight into a LIF a :class:`Delta` receptor ``"delta"`` (weights ``r W / tau``, mV).
    Chains of ``Linear``, ``Affine``, ``Scale``, ``Delay`` and nested graphs' Input/Output nodes
    between two populations are multiplied out into explicit :class:`Projection`\\ s, one per distinct
    delay; an ``Affine`` bias reaching a LIF directly is a constant :class:`CurrentInput`. ``v_leak``
    becomes ``v_rest`` where it is below threshold, else ``v_rest = v_reset`` with the constant current
    ``(v_leak - v_reset) / r`` (the same membrane equation). ``Input`` nodes become
    :class:`SpikeSourceArray`\\ s, ``Output`` nodes fed by a population :class:`SpikeMonitor`\\ s named by
    the Output's key.

    Args:
        graph: a ``nir.NIRGraph``, or the path of a ``.nir`` file.
        dt: step, ms; default the graph's ``qsn_dt`` metadata (graphs written by :func:`to_nir`).
        inputs: Input node key -> ``(indices, times_ms)`` spikes: ``indices`` ``(E,)`` int in ``[0, n)``,
            ``times_ms`` ``(E,)``, each a whole number of steps ``>= dt``; a spike at ``t`` reaches its
            targets at ``t`` (+ delays), as a qsn neuron's spike at ``SpikeMonitor.t``. Default: the
            times stored by :func:`to_nir`, else no spikes.
        time_unit_ms: ms per time unit of the graph (1000 for a graph written in seconds).
        dtype: the network's float dtype.

    Raises:
        ConfigurationError: before building anything, naming the node, field or index: a node type qsn
            has no counterpart for (IF, I, CubaLI, Threshold, convolutions, ...), an LI node that is not
            a LIF's synaptic filter, a synaptic time constant that varies across neurons, a bias into a
            synaptic current, a delay that is not a whole number of steps, parameters qsn's neuron
            refuses (``dt > tau``, ``v_reset >= v_threshold``), bad ``inputs``.
        BackendUnavailableError: ``nir`` is not installed.

    Example:
        >>> graph = nir.NIRGraph.from_list(nir.Linear(weight=w1), nir.CubaLIF(...), nir.Linear(weight=w2), nir.CubaLIF(...))
        >>> net = from_nir(graph, dt=0.1, inputs={"input": (idx, times)})
        >>> spikes = net.add(SpikeMonitor(net["cubalif_1"]))
        >>> net.build(jax.random.key(0)).run(100.0)
    """
    nir = require("nir")
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.read(str(graph))
    if dt is None:
        dt = _meta(graph, "qsn_dt")
        if dt is None:
            raise ConfigurationError("from_nir: dt is needed (ms): NIR graphs are continuous-time and this one has no qsn_dt metadata")
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ConfigurationError(f"from_nir: dt must be a finite number of ms > 0, but is {dt!r}")
    if not (math.isfinite(float(time_unit_ms)) and time_unit_ms > 0):
        raise ConfigurationError(f"from_nir: time_unit_ms must be finite and > 0, but is {time_unit_ms!r}")
    g = _Graph(nir, graph)
    inputs = dict(inputs or {})
    for key in inputs:
        if g.kind.get(key) != "input":
            raise ConfigurationError(f"from_nir: inputs names {key!r}, but the graph's Input nodes are "
                                     f"{[k for k, kind in g.kind.items() if kind == 'input']}")

    populations = [k for k, kind in g.kind.items() if kind in ("neuron", "input")]
    populations.sort(key=lambda k: _meta(g.nodes[k], "qsn_order", math.inf))  # stable: graph order otherwise
    size = {k: g.size(k) for k in populations}

    # every path from a population's spikes through linear nodes, and every Affine bias, to its terminal
    paths = {k: g.reach(k, {0.0: np.eye(size[k])}, time_unit_ms) for k in populations}
    biases = []
    for key, node in g.nodes.items():
        if isinstance(node, nir.Affine) and key not in g.through and np.any(np.asarray(node.bias) != 0):
            b = np.asarray(node.bias, np.float64).reshape(-1, 1)
            biases += [(key, term, sig) for term, sig in g.reach(key, {0.0: b}, time_unit_ms)]

    # receptors of each neuron node: name -> (kinetics, weight factor (n,)); terminal -> (group, receptor)
    receptors: dict[str, dict[str, tuple[Any, np.ndarray]]] = {}
    terminal: dict[str, tuple[str, str]] = {}
    for key in (k for k in populations if g.kind[k] == "neuron"):
        node, n = g.nodes[key], size[key]
        receptors[key] = {}
        if isinstance(node, nir.CubaLIF):
            tau = _uniform(key, node, "tau_syn", _vector(key, node, "tau_syn", n) * time_unit_ms)
            names = (_meta(node, "qsn_receptors") or "syn").split(",")
            receptors[key][names[0]] = (PscExp(tau), _vector(key, node, "w_in", n) / tau)
            terminal[key] = (key, names[0])
        else:
            tau_m = _vector(key, node, "tau", n) * time_unit_ms
            if any(term == key for reached in paths.values() for term, _ in reached):
                receptors[key][_DELTA_RECEPTOR] = (Delta(), _vector(key, node, "r", n) / tau_m)
                terminal[key] = (key, _DELTA_RECEPTOR)
    for key, target in g.filter_target.items():
        node, n = g.nodes[key], size[target]
        tau = _uniform(key, node, "tau", _vector(key, node, "tau", n) * time_unit_ms)
        if np.any(_vector(key, node, "v_leak", n) != 0):
            raise ConfigurationError(f"from_nir: LI node {key!r} has v_leak != 0; as a synaptic current it must relax to 0")
        rname = _identifier(_meta(node, "qsn_receptor") or key)
        if rname in receptors[target]:
            raise ConfigurationError(f"from_nir: LIF node {target!r} has two synaptic inputs named {rname!r}")
        receptors[target][rname] = (PscExp(tau), _vector(key, node, "r", n) / tau)
        terminal[key] = (target, rname)
    for key, node in g.nodes.items():
        order = (_meta(node, "qsn_receptors") or "").split(",")
        if key in receptors and set(order) == set(receptors[key]):
            receptors[key] = {r: receptors[key][r] for r in order}

    bias: dict[str, np.ndarray] = {}
    for bkey, term, sig in biases:
        if isinstance(g.nodes[term], nir.LIF):  # NIR: tau dv/dt = (v_leak - v) + R (W S + b): a constant current
            bias[term] = bias.get(term, 0.0) + sum(sig.values()).reshape(-1)
        elif g.kind[term] != "output":
            raise ConfigurationError(f"from_nir: Affine node {bkey!r} sends a bias into the synaptic current of {term!r}; "
                                     "qsn's synapses have no constant drive (only a LIF's direct input can take a bias)")

    net = Network(dt=dt, dtype=dtype)
    groups: dict[str, Any] = {}
    for key in populations:
        node = g.nodes[key]
        if g.kind[key] == "input":
            groups[key] = net.add(_source(key, node, size[key], inputs.get(key), dt))
            continue
        groups[key] = net.add(NeuronGroup(size[key], *_params(key, node, size[key], dt, time_unit_ms),
                                          receptors={r: k for r, (k, _) in receptors[key].items()},
                                          v0=_meta(node, "qsn_v0"), name=key))
        current = _current(key, node, size[key]) + bias.get(key, 0.0)
        if np.any(current != 0):
            net.add(CurrentInput(groups[key], current))

    merged: dict[tuple[str, str], dict[int, np.ndarray]] = {}  # (source, terminal) -> delay steps -> (n_term, n_src)
    for src in populations:
        for term, sig in paths[src]:
            if g.kind[term] == "output":
                if list(sig) != [0.0] or not np.array_equal(sig[0.0], np.eye(size[src])):
                    raise ConfigurationError(f"from_nir: Output node {term!r} is fed through linear nodes; qsn records spikes "
                                             "(a population straight into Output), not read-out currents")
                net.add(SpikeMonitor(groups[src], name=term))
                continue
            for delay, m in sig.items():
                steps = delay / dt
                if abs(steps - round(steps)) > _STEP_TOL * max(1.0, steps):
                    raise ConfigurationError(f"from_nir: the delay {delay} ms from {src!r} to {term!r} is not a whole number "
                                             f"of steps of dt = {dt} ms (qsn delays are whole steps)")
                by_delay = merged.setdefault((src, term), {})
                by_delay[round(steps)] = by_delay.get(round(steps), 0.0) + m
    for (src, term), by_delay in merged.items():
        post, rname = terminal[term]
        factor = receptors[post][rname][1]
        for steps in sorted(by_delay):
            m = by_delay[steps]
            post_i, pre_i = np.nonzero(m)
            if post_i.size == 0:
                continue
            name = f"{src}->{term}" + (f"@{steps}" if len(by_delay) > 1 else "")
            net.add(Projection(groups[src], groups[post], explicit(pre_i, post_i), weight=m[post_i, pre_i] * factor[post_i],
                               delay=steps * dt, receptor=rname, name=name))
    return net


def _source(key: str, node: Any, n: int, given: Any, dt: float) -> SpikeSourceArray:
    """The SpikeSourceArray of Input node ``key``: ``given`` spikes (arrival times), else the stored ones."""
    if given is None:
        idx, times = _meta(node, "qsn_indices"), _meta(node, "qsn_times")
        if idx is None:
            return SpikeSourceArray(n, np.zeros(0, np.int64), np.zeros(0), name=key)
        return SpikeSourceArray(n, np.asarray(idx, np.int64), np.asarray(times, np.float64), name=key)
    try:
        idx, times = given
        idx, times = np.asarray(idx), np.asarray(times, np.float64)
    except (TypeError, ValueError):
        raise ConfigurationError(f"from_nir: inputs[{key!r}] must be (indices, times_ms), but is {given!r}") from None
    early = np.flatnonzero(~(times >= dt - 1e-9 * dt))
    if early.size:
        i = int(early[0])
        raise ConfigurationError(f"from_nir: inputs[{key!r}] times_ms[{i}] = {times[i]} ms is before the end of the first "
                                 f"step (dt = {dt} ms): a spike at t acts from t on, so t >= dt")
    # SpikeSourceArray emits time s at step round(s/dt), which reaches targets one step later
    return SpikeSourceArray(n, idx, times - dt, name=key)


def _params(key: str, node: Any, n: int, dt: float, time_unit_ms: float) -> tuple[NeuronParams, str]:
    """``(NeuronParams, mode)`` of neuron node ``key``; errors name the node."""
    tau_field = "tau_mem" if hasattr(node, "tau_mem") else "tau"
    v_th, v_reset = _vector(key, node, "v_threshold", n), _vector(key, node, "v_reset", n)
    v_rest = _meta(node, "qsn_v_rest")
    if v_rest is None:
        v_leak = _vector(key, node, "v_leak", n)
        v_rest = np.where(v_leak < v_th, v_leak, v_reset)
    fields = {f: _meta(node, f"qsn_{f}", default) for f, default in
              (("delta", 0.0), ("t1", math.inf), ("t2", math.inf), ("jump_rate", 0.0), ("t_ref", 0.0))}
    try:
        params = NeuronParams(v_rest=v_rest, v_th=v_th, v_reset=v_reset, tau_m=_vector(key, node, tau_field, n) * time_unit_ms,
                              r_m=_vector(key, node, "r", n), dt=dt, **fields)
    except ConfigurationError as err:
        raise ConfigurationError(f"from_nir: node {key!r} ({type(node).__name__}): {err}") from None
    mode = _meta(node, "qsn_mode", "pure")
    return params, mode


def _current(key: str, node: Any, n: int) -> np.ndarray:
    """``(n,)`` constant current that puts the leak's fixed point at ``v_leak`` (qsn's metadata, or the
    difference to the ``v_rest`` chosen by :func:`_params`)."""
    stored = _meta(node, "qsn_current")
    if stored is not None:
        return np.asarray(stored, np.float64)
    if _meta(node, "qsn_v_rest") is not None:
        return np.zeros(n)
    v_leak, v_th, r = (_vector(key, node, f, n) for f in ("v_leak", "v_threshold", "r"))
    gap = np.where(v_leak < v_th, 0.0, v_leak - _vector(key, node, "v_reset", n))
    if np.any((gap != 0) & (r == 0)):
        i = int(np.flatnonzero((gap != 0) & (r == 0))[0])
        raise ConfigurationError(f"from_nir: node {key!r} has v_leak[{i}] >= v_threshold with r[{i}] = 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap != 0, gap / np.where(r == 0, 1.0, r), 0.0)
