"""The whole-network kernel on the CPU (``Network.run(..., backend="native")``): argument assembly for
``kernels/cpu/network.cpp``, which advances a built :class:`qsn.networks.Network` one chunk per call.

What it runs: neuron groups that share one step configuration (pure mode; stochastic parts drawn
from Philox, as the native population backend), float32, parameters per neuron or shared; Delta and
PscExp receptors; constant :class:`~qsn.networks.CurrentInput`; :class:`~qsn.networks.PoissonInput`
(the JAX path's own random numbers: threefry under the input's stream key, the same CDF table);
event-path (ELL) and dense-path projections; spike counts; :class:`~qsn.networks.SpikeMonitor` and
:class:`~qsn.networks.RateMonitor` records in the JAX chunk's format. Everything else is refused by
:func:`check_network` before any step, naming the feature and saying it runs on ``backend='jax'``.

The state is copied into the kernel's NumPy buffers (unless it is the state the last chunk returned) and
comes back as a new ``NetState`` of JAX arrays, so ``net.state``, ``restore``, ``save`` and runs that
mix backends keep working. For deterministic runs (no quantum jumps, infinite T1/T2) the spike trains
are the JAX path's, bit for bit, Poisson inputs included (tests/kernels/test_kernel_native_network.py).
"""

from __future__ import annotations

import ctypes
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.kernels.compile import NATIVE, host_library
from qsn.kernels.population import _PARAM_BITS, _STOCHASTIC_BIT0, _STOCHASTIC_BITS, kernel_defines
from qsn.philox import seed_words

__all__ = ["NativeNetwork", "check_network"]

_KINDS = {"delta": 0, "psc_exp": 1}
_P = ctypes.c_void_p


class _Group(ctypes.Structure):  # struct qsn_net_group in kernels/cpu/network.cpp, field by field
    _fields_ = [
        ("n", ctypes.c_int), ("receptors", ctypes.c_int), ("depth", ctypes.c_int), ("per_neuron", ctypes.c_int),
        ("dt", ctypes.c_float), ("key0", ctypes.c_uint), ("key1", ctypes.c_uint), ("n_spiked", ctypes.c_int),
        *[(name, _P) for name in _PARAM_BITS + _STOCHASTIC_BITS],
        ("kinds", _P), ("decays", _P), ("e_rev", _P), ("i_const", _P), ("psc", _P), ("r_m", _P),
        ("v", _P), ("ref", _P), ("q0", _P), ("q1", _P), ("q2", _P), ("q3", _P),
        ("syn", _P), ("ring", _P), ("count", _P),
        ("spiked", _P), ("step_spiked", _P), ("n_poisson", ctypes.c_int), ("pad2_", ctypes.c_int), ("poisson", _P),
    ]


class _Poisson(ctypes.Structure):  # struct qsn_net_poisson
    _fields_ = [
        ("receptor", ctypes.c_int), ("length", ctypes.c_int), ("key0", ctypes.c_uint), ("key1", ctypes.c_uint),
        ("weight", ctypes.c_float), ("pad_", ctypes.c_int), ("table", _P), ("draw", _P),
    ]


class _Projection(ctypes.Structure):  # struct qsn_net_projection
    _fields_ = [
        ("pre", ctypes.c_int), ("post", ctypes.c_int), ("receptor", ctypes.c_int), ("n_pre", ctypes.c_int),
        ("n_post", ctypes.c_int), ("width", ctypes.c_int), ("dense", ctypes.c_int), ("n_delays", ctypes.c_int),
        ("delay", ctypes.c_int), ("pad_", ctypes.c_int), ("targets", _P), ("delays", _P), ("weights", _P), ("scratch", _P),
    ]


class _Monitor(ctypes.Structure):  # struct qsn_net_monitor
    _fields_ = [
        ("kind", ctypes.c_int), ("group", ctypes.c_int), ("k", ctypes.c_int), ("sorted", ctypes.c_int),
        ("start", _P), ("where", _P), ("spikes", _P), ("rate", _P),
        ("cap", ctypes.c_longlong), ("n_events", ctypes.c_longlong), ("ev_step", _P), ("ev_pos", _P),
        ("values", _P), ("index", _P), ("fields", ctypes.c_int), ("pad_", ctypes.c_int),
    ]


def _refuse(feature: str) -> None:
    raise ConfigurationError(f"Network.run(backend='native') does not run {feature}; it runs on backend='jax'")


def check_network(net: Any) -> None:
    """Raise :class:`ConfigurationError` naming the first feature of the built ``net`` that the native
    network kernel does not run (before any step)."""
    from qsn.networks.group import NeuronGroup
    from qsn.networks.monitors import RateMonitor, SpikeMonitor

    if jnp.dtype(net.dtype) != jnp.float32:
        _refuse(f"{jnp.dtype(net.dtype).name} networks (it runs float32)")
    if net._sharding is not None:
        _refuse("sharded networks (build(shard=...))")
    for g in net.groups.values():
        if not isinstance(g, NeuronGroup):
            _refuse(f"spike sources ({type(g).__name__} {g.name!r})")
    configs = {}
    for name, plan in net._plans.items():
        stepper = net._steppers[name]
        if stepper.mode != "pure":
            _refuse(f"mixed-mode groups (group {name!r}: its propagator plan follows the drive)")
        for kind in plan.kinds:
            if kind not in _KINDS:
                _refuse(f"CondExp receptors (group {name!r})")
        if plan.currents:
            _refuse(f"time-varying CurrentInput ((T, n) arrays or functions of the step; group {name!r})")
        for (receptor, lam, _, _), index, table in zip(plan.poisson, net._consts["groups"][name]["poisson_index"],
                                                       net._consts["groups"][name]["poisson_table"]):
            if table is None:
                _refuse(f"PoissonInput with a mean of {lam:g} input spikes per step (drawn by jax.random.poisson, "
                        f"not a table; group {name!r})")
            if index is not None and np.unique(np.asarray(index)).size != index.shape[0]:
                _refuse(f"PoissonInput on a view with repeated neurons (group {name!r})")
        configs[name] = stepper.config._replace(surrogate=None)
    if len(set(configs.values())) > 1:
        _refuse(f"groups with differing step configurations ({configs})")
    if net._plans and any(plan.poisson for plan in net._plans.values()):
        impl = str(jax.random.key_impl(net._key)) if jnp.issubdtype(net._key.dtype, jax.dtypes.prng_key) else "threefry2x32"
        if "threefry" not in impl or not jax.config.jax_threefry_partitionable:
            _refuse(f"PoissonInput under the {impl} PRNG (it draws threefry2x32 with jax_threefry_partitionable, "
                    "as the JAX path does by default)")
    for spec in net._specs.values():
        if spec.plasticity is not None:
            _refuse(f"STDP (projection {spec.name!r})")
    for m in net.monitors.values():
        if not isinstance(m, (SpikeMonitor, RateMonitor)):
            _refuse(f"{type(m).__name__} (monitor {m.name!r})")


def _reversals(plan: Any) -> tuple[float, ...]:
    """Reversal potential per receptor of a group's plan (CondExp; 0 for the others)."""
    receptors = getattr(plan, "receptors", None)
    if receptors is None:
        return tuple(float(e) for e in plan.e_rev)
    return tuple(float(getattr(k, "e_rev", 0.0)) for k in receptors)


def _per_neuron(value: Any, n: int) -> tuple[np.ndarray, bool]:
    arr = np.ascontiguousarray(np.asarray(value))
    if arr.ndim == 1 and arr.shape[0] == n and n > 1:
        return arr, True
    return arr.reshape(-1)[:1].copy(), False


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _invert(index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, where)``: neuron ``i`` of the group sits at positions ``where[start[i]:start[i + 1]]`` of
    ``index`` (a view's neurons, in any order, repeats allowed), as the kernel's monitors read it."""
    where = np.argsort(index, kind="stable").astype(np.int32)
    start = np.searchsorted(index[where], np.arange(n + 1)).astype(np.int32)
    return np.ascontiguousarray(start), np.ascontiguousarray(where)


class NativeNetwork:
    """The native kernel's view of a built network: constants assembled once, the library built once
    (per step configuration), :meth:`chunk` per chunk. Checks the network first (:func:`check_network`).

    Args:
        net: a built :class:`qsn.networks.Network`.
        precise: IEEE sqrt/sincos/division in the neuron step (neuron.cuh's QSN_PRECISE).
    """

    def __init__(self, net: Any, *, precise: bool = False) -> None:
        check_network(net)
        self.net = net
        names = list(net._plans)
        self._index = {name: i for i, name in enumerate(names)}
        f32 = np.float32
        self._keep: list[Any] = []  # arrays the structs point into
        cfg = None
        self._groups = []
        for name in names:
            g, plan, stepper = net.groups[name], net._plans[name], net._steppers[name]
            cfg, consts = stepper.config, stepper.constants
            gc = net._consts["groups"][name]
            per_neuron, params = 0, {}
            for bit, field in enumerate(_PARAM_BITS):
                arr, per = _per_neuron(getattr(consts, field), g.n)
                per_neuron |= int(per) << bit
                params[field] = arr.astype(np.int32 if field == "n_ref" else f32)
            for bit, field in enumerate(_STOCHASTIC_BITS, start=_STOCHASTIC_BIT0):
                arr, per = _per_neuron(getattr(consts, field), g.n)
                per_neuron |= int(per) << bit
                params[field] = arr.astype(f32)
            key = seed_words(jax.random.fold_in(net._key, plan.stream)) if cfg.needs_key else (0, 0)
            const = dict(
                kinds=np.asarray([_KINDS[k] for k in plan.kinds] or [0], np.int32),
                decays=np.asarray(plan.decays or (0.0,), f32),
                e_rev=np.asarray(_reversals(plan) or (0.0,), f32),
                i_const=np.ascontiguousarray(np.asarray(gc["i_const"], f32)),
                psc=np.ascontiguousarray(np.asarray(gc["psc"], f32).reshape(-1)) if plan.kinds else np.zeros(1, f32),
                r_m=np.ascontiguousarray(np.broadcast_to(np.asarray(gc["r_m"], f32), (g.n,))),
            )
            scratch = dict(spiked=np.zeros(g.n, np.int32))
            poisson = (_Poisson * max(len(plan.poisson), 1))()
            for st, (receptor, _, weight, stream), index, table in zip(poisson, plan.poisson, gc["poisson_index"],
                                                                       gc["poisson_table"]):
                table = np.ascontiguousarray(np.asarray(table, f32))
                draw = None
                if index is not None:
                    draw = np.full(g.n, -1, np.int32)
                    draw[np.asarray(index)] = np.arange(index.shape[0], dtype=np.int32)
                st.receptor, st.length, st.weight = receptor, table.size, weight
                st.key0, st.key1 = (int(w) for w in np.asarray(jax.random.key_data(jax.random.fold_in(net._key, stream))))
                st.table, st.draw = _ptr(table), None if draw is None else _ptr(draw)
                self._keep += [table, draw]
            self._keep += [params, const, scratch, poisson]
            self._groups.append(dict(name=name, n=g.n, receptors=len(plan.kinds), per_neuron=per_neuron,
                                     dt=float(net._dt),
                                     key=key, params=params, const=const, scratch=scratch, poisson=poisson,
                                     n_poisson=len(plan.poisson)))
        self._projections = []
        for pname, spec in net._specs.items():
            arrays = net._arrays[pname]
            if spec.path == "event":
                targets = np.ascontiguousarray(np.asarray(arrays.targets, np.int32))
                delays = np.asarray(arrays.delays, np.int64)
                used = np.unique(delays[targets < spec.n_post])
                depth = int(net.state.ring[spec.post].shape[1])
                if depth * spec.n_post >= 2**31:
                    _refuse(f"ring buffers of 2^31 entries or more (projection {pname!r}: {depth} slots x "
                            f"{spec.n_post} neurons)")
                extra = dict(width=int(targets.shape[1]), dense=0, n_delays=0, targets=targets,
                             delay=int(used[0]) if used.size == 1 else -1,
                             delays=np.ascontiguousarray(delays * spec.n_post, np.int32), scratch=np.zeros(1, f32))
            else:
                extra = dict(width=0, dense=1, n_delays=len(spec.delays), delay=-1, targets=np.zeros(1, np.int32),
                             delays=np.asarray(spec.delays, np.int32), scratch=np.zeros(spec.n_post, f32))
            self._keep.append(extra)
            self._projections.append(dict(name=pname, pre=self._index[spec.pre], post=self._index[spec.post],
                                          receptor=spec.receptor, n_pre=spec.n_pre, n_post=spec.n_post, **extra))
        self._monitors = []
        for mname, m in net.monitors.items():
            inverse = None if m.index is None else _invert(np.asarray(m.index), m.group.n)
            self._keep.append(inverse)
            self._monitors.append(dict(name=mname, kind=0 if type(m).__name__ == "SpikeMonitor" else 1,
                                       group=self._index[m.group.name], k=m.n, inverse=inverse,
                                       sorted=int(m.index is None or bool(np.all(np.diff(m.index) >= 0)))))
        defines = kernel_defines("pure", "const", None, jumps=bool(cfg and cfg.jumps),
                                 dephasing=bool(cfg and cfg.dephasing), relaxation=bool(cfg and cfg.relaxation))
        self.library, self.flags = host_library("network.cpp", defines, bool(precise), NATIVE)
        self._fn = self.library.qsn_network
        self._fn.restype = ctypes.c_int
        self._structs()

    def _structs(self) -> None:
        """The kernel's argument structs, built once: the state lives in private NumPy buffers that the
        structs point into (filled from a ``NetState`` by :meth:`_load`); only the weights, the monitors'
        buffers and t0 change between calls."""
        f32 = np.float32
        net = self.net
        self._state = {}
        self._c_groups = (_Group * max(len(self._groups), 1))()
        for gi, g in enumerate(self._groups):
            name = g["name"]
            s = net.state.neurons[name]
            arrays = {field: np.zeros(np.shape(x), np.int32 if field == "ref" else f32) for field, x in (
                ("v", s.v), ("ref", s.refractory), ("q0", s.re0), ("q1", s.im0), ("q2", s.re1), ("q3", s.im1),
                ("syn", net.state.syn[name]), ("ring", net.state.ring[name]))}
            arrays["count"] = np.zeros(g["n"], np.int32)
            self._state[name] = arrays
            st = self._c_groups[gi]
            st.n, st.receptors, st.depth, st.per_neuron = g["n"], g["receptors"], int(arrays["ring"].shape[1]), g["per_neuron"]
            st.dt, (st.key0, st.key1) = g["dt"], g["key"]
            st.n_poisson, st.poisson = g["n_poisson"], ctypes.addressof(g["poisson"])
            for field, arr in (*g["params"].items(), *g["const"].items(), *arrays.items(), *g["scratch"].items()):
                setattr(st, field, _ptr(arr))
        self._c_projections = (_Projection * max(len(self._projections), 1))()
        for pi, p in enumerate(self._projections):
            st = self._c_projections[pi]
            for field in ("pre", "post", "receptor", "n_pre", "n_post", "width", "dense", "n_delays", "delay"):
                setattr(st, field, p[field])
            st.targets, st.delays, st.scratch = _ptr(p["targets"]), _ptr(p["delays"]), _ptr(p["scratch"])
        self._c_monitors = (_Monitor * max(len(self._monitors), 1))()
        for mi, m in enumerate(self._monitors):
            st = self._c_monitors[mi]
            st.kind, st.group, st.k = m["kind"], m["group"], m["k"]
            st.start, st.where = (None, None) if m["inverse"] is None else (_ptr(a) for a in m["inverse"])
            st.sorted = m["sorted"]
        self._records: dict[int, dict] = {}  # length -> SpikeMonitor buffers (rows, events), reused
        self._last = None  # the NetState the last call returned (its values are in the buffers)

    def _load(self, state: Any) -> None:
        """Copy ``state`` into the kernel's buffers."""
        for name, arrays in self._state.items():
            s = state.neurons[name]
            for field, x in (("v", s.v), ("ref", s.refractory), ("q0", s.re0), ("q1", s.im0), ("q2", s.re1),
                             ("q3", s.im1), ("syn", state.syn[name]), ("ring", state.ring[name]),
                             ("count", state.count[name])):
                np.copyto(arrays[field], np.asarray(x), casting="same_kind")

    def _spike_buffers(self, m: dict, length: int) -> dict:
        """The ``(length, k)`` rows and event lists of SpikeMonitor ``m`` for chunks of ``length`` steps
        (kept for the next call of that length: the caller reads them before it)."""
        by_length = self._records.setdefault(length, {})
        if len(self._records) > 2:  # a run has one chunk length and a tail
            self._records = {length: by_length}
        buf = by_length.get(m["name"])
        if buf is None:
            cap = max(4096, 4 * length)
            buf = by_length[m["name"]] = dict(rows=np.zeros((length, m["k"]), np.bool_), cap=cap,
                                              step=np.zeros(cap, np.int32), pos=np.zeros(cap, np.int32))
        return buf

    def chunk(self, state: Any, length: int) -> tuple[Any, dict]:
        """Advance ``state`` (a ``NetState``) by ``length`` steps; returns the new ``NetState`` and the
        monitor records as the JAX chunk gives them (``SpikeMonitor``: ``(length, k)`` bool, whose
        ``nonzero()`` reads the kernel's event list and which the next call of this length overwrites;
        ``RateMonitor``: ``(length,)`` int32), on the host.

        The state is copied into the kernel's buffers unless it is the one the last call returned (a run
        of chunks), and out again as new JAX arrays (one ``device_put``), so states stay immutable."""
        t0 = int(state.t)
        if state is not self._last:
            self._load(state)
        weights = {}
        for pi, p in enumerate(self._projections):
            w = weights[p["name"]] = np.ascontiguousarray(np.asarray(state.weights[p["name"]]), np.float32)
            self._c_projections[pi].weights = _ptr(w)
        records, spike_buffers = {}, []
        for mi, m in enumerate(self._monitors):
            st = self._c_monitors[mi]
            if m["kind"] == 0:
                buf = self._spike_buffers(m, length)
                st.spikes, st.cap, st.ev_step, st.ev_pos = _ptr(buf["rows"]), buf["cap"], _ptr(buf["step"]), _ptr(buf["pos"])
                spike_buffers.append((m["name"], st, buf))
            else:
                records[m["name"]] = out = np.zeros(length, np.int32)
                st.rate = _ptr(out)
        status = self._fn(ctypes.c_int(len(self._groups)), self._c_groups, ctypes.c_int(len(self._projections)),
                          self._c_projections, ctypes.c_int(len(self._monitors)), self._c_monitors, ctypes.c_int(t0),
                          ctypes.c_int(int(length)))
        if status != 0:
            self._last = None  # the buffers hold a partial chunk
            raise MemoryError("Network.run(backend='native'): the kernel could not allocate its per-neuron constants")
        for name, st, buf in spike_buffers:
            events = st.n_events
            rows = buf["rows"].view(_SpikeRecords)
            if events <= buf["cap"]:
                rows.events = (buf["step"][:events].astype(np.intp), buf["pos"][:events].astype(np.intp))
            else:  # more spikes than the list held: the rows are complete, a scan reads them this time
                buf["cap"] = 2 * events
                buf["step"], buf["pos"] = np.zeros(2 * events, np.int32), np.zeros(2 * events, np.int32)
            records[name] = rows
        # new arrays for the new state (one device_put): copies, since the CPU client may alias (zero-copy)
        # a NumPy buffer, and the next call changes these in place
        out = jax.device_put(({name: {field: a.copy() for field, a in arrays.items()} for name, arrays in self._state.items()},
                              np.asarray(t0 + length, np.int32)))
        groups, t = out
        neurons, syn, ring, count = dict(state.neurons), dict(state.syn), dict(state.ring), dict(state.count)
        for name, a in groups.items():
            neurons[name] = state.neurons[name]._replace(
                v=a["v"], refractory=a["ref"], re0=a["q0"], im0=a["q1"], re1=a["q2"], im1=a["q3"], t=t)
            syn[name], ring[name], count[name] = a["syn"], a["ring"], a["count"]
        self._last = state._replace(t=t, neurons=neurons, syn=syn, ring=ring, count=count)
        return self._last, records


class _SpikeRecords(np.ndarray):
    """A SpikeMonitor's ``(length, k)`` bool records whose ``nonzero()`` and ``np.count_nonzero`` come from
    the kernel's event list (the same arrays a scan gives, in the same order, without the scan: on CUBA's
    40 MB of records per biological second the scan took longer than the kernel). Views fall back to NumPy."""

    events: tuple[np.ndarray, np.ndarray] | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self.events = None

    def nonzero(self) -> tuple[np.ndarray, ...]:
        if self.events is None:
            return super().nonzero()
        return tuple(e.copy() for e in self.events)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func is np.count_nonzero and self.events is not None and len(args) == 1 and args[0] is self and not kwargs:
            return int(self.events[0].size)
        return super().__array_function__(func, types, args, kwargs)
