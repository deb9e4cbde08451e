"""The whole-network kernels: argument assembly for ``kernels/cpu/network.cpp`` (``Network.run(...,
backend="native")``, :class:`NativeNetwork`) and ``kernels/cuda/network.cu`` (``backend="cupy"``, or any
:class:`~qsn.kernels.runner.Runner`: :class:`FusedNetwork`), which advance a built
:class:`qsn.networks.Network` one chunk per call. Both run the per-step work of
``kernels/cuda/network.cuh``; only the launch layers differ.

What they run: neuron groups that share one step configuration (pure mode; stochastic parts drawn
from Philox, as the native population backend), float32, parameters per neuron or shared; Delta,
PscExp and CondExp receptors; constant :class:`~qsn.networks.CurrentInput`; :class:`~qsn.networks.PoissonInput`
(the JAX path's own random numbers: threefry under the input's stream key, the same CDF table);
event-path (ELL) and dense-path projections, STDP on event projections (weights to an ulp of the JAX
path's: XLA's contractions vary with its fusion); :class:`~qsn.networks.PoissonGroup` and
:class:`~qsn.networks.SpikeSourceArray` sources; spike counts; :class:`~qsn.networks.SpikeMonitor`,
:class:`~qsn.networks.RateMonitor` and :class:`~qsn.networks.StateMonitor` records in the JAX chunk's
format. Everything else is refused by :func:`check_network` before any step, naming the feature and
saying it runs on ``backend='jax'``.

The state is copied into the kernel's buffers (unless it is the state the last chunk returned) and
comes back as a new ``NetState`` of JAX arrays, so ``net.state``, ``restore``, ``save`` and runs that
mix backends keep working. For deterministic runs (no quantum jumps, infinite T1/T2) the spike trains
are the JAX path's, bit for bit, Poisson inputs included, on the CPU kernel and on the CUDA kernel's
host emulation (tests/kernels/test_kernel_native_network.py).
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.kernels.compile import NATIVE, host_library
from qsn.kernels.runner import Runner
from qsn.kernels.population import _PARAM_BITS, _STOCHASTIC_BIT0, _STOCHASTIC_BITS, kernel_defines
from qsn.philox import seed_words

__all__ = ["NativeNetwork", "FusedNetwork", "network_kernel", "check_network"]

_MONITORS = {"SpikeMonitor": 0, "RateMonitor": 1, "StateMonitor": 2}  # enum qsn_monitor_kind in network.cuh
_STATE_FIELDS = 5  # a StateMonitor sample's fields before the receptor variables: V, re0, im0, re1, im1
_KINDS = {"delta": 0, "psc_exp": 1, "cond_exp": 2}  # enum qsn_kinetics in network.cuh
_SOURCES = {"PoissonSource": 1, "ArraySource": 2}  # enum qsn_source_kind (0: a neuron group)
_P = ctypes.c_void_p


class _Group(ctypes.Structure):  # struct qsn_net_group in kernels/cpu/network.cpp, field by field
    _fields_ = [
        ("n", ctypes.c_int), ("receptors", ctypes.c_int), ("depth", ctypes.c_int), ("per_neuron", ctypes.c_int),
        ("dt", ctypes.c_float), ("key0", ctypes.c_uint), ("key1", ctypes.c_uint), ("n_spiked", ctypes.c_int),
        *[(name, _P) for name in _PARAM_BITS + _STOCHASTIC_BITS],
        ("kinds", _P), ("decays", _P), ("e_rev", _P), ("i_const", _P), ("psc", _P), ("r_m", _P),
        ("v", _P), ("ref", _P), ("q0", _P), ("q1", _P), ("q2", _P), ("q3", _P),
        ("syn", _P), ("ring", _P), ("count", _P),
        ("spiked", _P), ("step_spiked", _P), ("n_poisson", ctypes.c_int), ("source", ctypes.c_int), ("poisson", _P),
        ("emit_p", _P), ("emit_start", _P), ("emit_idx", _P),
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
        ("delay", ctypes.c_int), ("first", ctypes.c_int), ("targets", _P), ("lengths", _P), ("delays", _P),
        ("weights", _P), ("scratch", _P),
        ("plastic", ctypes.c_int), ("multiplicative", ctypes.c_int),
        *[(name, ctypes.c_float) for name in ("a_plus", "a_minus", "decay_plus", "decay_minus", "w_min", "w_max")],
        ("x_pre", _P), ("x_post", _P), ("x_post_old", _P), ("col_start", _P), ("col_slot", _P),
    ]


class _Monitor(ctypes.Structure):  # struct qsn_net_monitor
    _fields_ = [
        ("kind", ctypes.c_int), ("group", ctypes.c_int), ("k", ctypes.c_int), ("sorted", ctypes.c_int),
        ("start", _P), ("where", _P), ("spikes", _P), ("rate", _P),
        ("cap", ctypes.c_longlong), ("n_events", ctypes.c_longlong), ("ev_step", _P), ("ev_pos", _P),
        ("values", _P), ("index", _P), ("fields", ctypes.c_int), ("pad_", ctypes.c_int),
    ]


def _refuse(feature: str, backend: str = "native") -> None:
    raise ConfigurationError(f"Network.run(backend={backend!r}) does not run {feature}; it runs on backend='jax'")


def check_network(net: Any, backend: str = "native") -> None:
    """Raise :class:`ConfigurationError` naming the first feature of the built ``net`` that the network
    kernels do not run (before any step); ``backend`` names the backend in the message."""
    from qsn.networks.group import NeuronGroup

    def refuse(feature: str) -> None:
        _refuse(feature, backend)

    if jnp.dtype(net.dtype) != jnp.float32:
        refuse(f"{jnp.dtype(net.dtype).name} networks (it runs float32)")
    if net._sharding is not None:
        refuse("sharded networks (build(shard=...))")
    for g in net.groups.values():
        if not isinstance(g, NeuronGroup) and type(net._sources.get(g.name)).__name__ not in _SOURCES:
            refuse(f"spike sources of type {type(g).__name__} ({g.name!r})")
    configs = {}
    for name, plan in net._plans.items():
        stepper = net._steppers[name]
        if stepper.mode != "pure":
            refuse(f"mixed-mode groups (group {name!r}: its propagator plan follows the drive)")
        for kind in plan.kinds:
            if kind not in _KINDS:
                refuse(f"{kind} receptors (group {name!r})")
        if plan.currents:
            refuse(f"time-varying CurrentInput ((T, n) arrays or functions of the step; group {name!r})")
        for (receptor, lam, _, _), index, table in zip(plan.poisson, net._consts["groups"][name]["poisson_index"],
                                                       net._consts["groups"][name]["poisson_table"]):
            if table is None:
                refuse(f"PoissonInput with a mean of {lam:g} input spikes per step (drawn by jax.random.poisson, "
                        f"not a table; group {name!r})")
            if index is not None and np.unique(np.asarray(index)).size != index.shape[0]:
                refuse(f"PoissonInput on a view with repeated neurons (group {name!r})")
        configs[name] = stepper.config._replace(surrogate=None)
    if len(set(configs.values())) > 1:
        refuse(f"groups with differing step configurations ({configs})")
    if net._plans and any(plan.poisson for plan in net._plans.values()):
        impl = str(jax.random.key_impl(net._key)) if jnp.issubdtype(net._key.dtype, jax.dtypes.prng_key) else "threefry2x32"
        if "threefry" not in impl or not jax.config.jax_threefry_partitionable:
            refuse(f"PoissonInput under the {impl} PRNG (it draws threefry2x32 with jax_threefry_partitionable, "
                    "as the JAX path does by default)")
    for spec in net._specs.values():
        slots = int(np.prod(np.shape(net._arrays[spec.name].targets))) if spec.path == "event" else 0
        if spec.plasticity is not None and slots >= 2**31:
            refuse(f"STDP on 2^31 synapse slots or more (projection {spec.name!r}: {slots})")
    for m in net.monitors.values():
        if type(m).__name__ not in _MONITORS:
            refuse(f"{type(m).__name__} (monitor {m.name!r})")


def _stream_words(key: jax.Array, stream: int) -> tuple[int, int]:
    """The two key words of random stream ``stream`` of a network's step key (``fold_in(key, stream)``), from
    which the kernels draw each step as the JAX path does (networks/program.py ``stream_key``)."""
    return tuple(int(w) for w in np.asarray(jax.random.key_data(jax.random.fold_in(key, stream))))


def _plastic(spec: Any, targets: np.ndarray, dt: float) -> dict:
    """The STDP fields of event projection ``spec``'s struct: its rule's constants in float32 as the JAX path
    rounds them (``STDP.update``), and the synapses onto each target as flat slots of the ``(n_pre + 1, K)``
    rows (``col_start``, ``col_slot``: potentiation walks a spiking target's column)."""
    rule = spec.plasticity
    flat = targets.reshape(-1)
    slots = np.flatnonzero(flat < spec.n_post)
    order = np.argsort(flat[slots], kind="stable")
    slots = slots[order]  # by target, each target's in row order
    col_start = np.searchsorted(flat[slots], np.arange(spec.n_post + 1)).astype(np.int32)
    f32 = np.float32
    return dict(plastic=1, multiplicative=int(rule.bounds == "multiplicative"), a_plus=f32(rule.a_plus),
                a_minus=f32(rule.a_minus), decay_plus=f32(math.exp(-dt / rule.tau_plus)),
                decay_minus=f32(math.exp(-dt / rule.tau_minus)), w_min=f32(rule.w_min), w_max=f32(rule.w_max),
                col_start=col_start, col_slot=np.ascontiguousarray(slots, np.int32),
                scratch=np.zeros(spec.n_pre, f32))


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


class _NetworkKernel:
    """What both whole-network kernels share: the network's constants assembled once into the structs of
    kernels/cuda/network.cuh (checked first, :func:`check_network`), the library built once (per step
    configuration), the state copied in and out, and the monitor records in the JAX chunk's format.
    A launch layer says where the arrays live (``_address``, ``_buffer_address``, ``_struct_address``, the
    conversions) and how a chunk runs (``_call``).

    Args:
        net: a built :class:`qsn.networks.Network`.
        precise: IEEE sqrt/sincos/division in the neuron step (neuron.cuh's QSN_PRECISE).
    """

    name = "kernel"  # the backend, as Network.run and its messages name it
    xp: Any = np

    def __init__(self, net: Any, *, precise: bool = False) -> None:
        check_network(net, self.name)
        self.net = net
        self.precise = bool(precise)
        names = list(net._plans)
        self._index = {name: i for i, name in enumerate(names + list(net._sources))}
        f32 = np.float32
        self._keep: list[Any] = []  # host arrays the structs point into (or their device copies come from)
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
                st.key0, st.key1 = _stream_words(net._key, stream)
                st.table, st.draw = self._address(table), None if draw is None else self._address(draw)
            self._keep += [params, const, scratch, poisson]
            self._groups.append(dict(name=name, n=g.n, receptors=len(plan.kinds), per_neuron=per_neuron,
                                     dt=float(net._dt),
                                     key=key, params=params, const=const, scratch=scratch, poisson=poisson,
                                     n_poisson=len(plan.poisson)))
        self._sources = []  # after the neuron groups, in the network's order (the kernel's groups array)
        for name, src in net._sources.items():
            c = net._consts["groups"][name]
            entry = dict(name=name, n=net.groups[name].n, source=_SOURCES[type(src).__name__], key=(0, 0))
            if entry["source"] == _SOURCES["PoissonSource"]:
                entry["key"] = _stream_words(net._key, src.stream)
                entry["p"] = np.ascontiguousarray(np.asarray(c["p"], f32))
            else:  # sorted by (step, neuron), no repeats (SpikeSourceArray.steps); padding dropped
                steps, idx = np.asarray(c["steps"]), np.asarray(c["idx"])
                entry["steps"], entry["idx"] = steps[idx < entry["n"]], np.ascontiguousarray(idx[idx < entry["n"]])
            self._keep.append(entry)
            self._sources.append(entry)
        self._projections = []
        for pname, spec in net._specs.items():
            arrays = net._arrays[pname]
            if spec.path == "event":
                targets = np.ascontiguousarray(np.asarray(arrays.targets, np.int32))
                delays = np.asarray(arrays.delays, np.int64)
                real = targets < spec.n_post
                used = np.unique(delays[real])
                depth = int(net.state.ring[spec.post].shape[1])
                if depth * spec.n_post >= 2**31:
                    _refuse(f"ring buffers of 2^31 entries or more (projection {pname!r}: {depth} slots x "
                            f"{spec.n_post} neurons)", self.name)
                extra = dict(width=int(targets.shape[1]), dense=0, n_delays=0, targets=targets,
                             lengths=np.ascontiguousarray(real.sum(axis=1), np.int32),
                             delay=int(used[0]) if used.size == 1 else -1,
                             delays=np.ascontiguousarray(delays * spec.n_post, np.int32), scratch=np.zeros(1, f32))
                if spec.plasticity is not None:
                    extra.update(_plastic(spec, targets, float(net._dt)))
            else:
                extra = dict(width=0, dense=1, n_delays=len(spec.delays), delay=-1, targets=np.zeros(1, np.int32),
                             lengths=np.zeros(1, np.int32),
                             delays=np.asarray(spec.delays, np.int32), scratch=np.zeros(spec.n_post, f32))
            self._keep.append(extra)
            self._projections.append(dict(name=pname, pre=self._index[spec.pre], post=self._index[spec.post],
                                          receptor=spec.receptor, n_pre=spec.n_pre, n_post=spec.n_post,
                                          first=spec.first, **extra))
        self._monitors = []
        for mname, m in net.monitors.items():
            inverse = None if m.index is None else _invert(np.asarray(m.index), m.group.n)
            index = None if m.index is None else np.ascontiguousarray(np.asarray(m.index), np.int32)
            self._keep += [inverse, index]
            self._monitors.append(dict(name=mname, kind=_MONITORS[type(m).__name__],
                                       group=self._index[m.group.name], k=m.n, inverse=inverse, index=index,
                                       fields=_STATE_FIELDS + len(getattr(m.group, "receptors", ())),
                                       sorted=int(m.index is None or bool(np.all(np.diff(m.index) >= 0)))))
        self.defines = kernel_defines("pure", "const", None, jumps=bool(cfg and cfg.jumps),
                                      dephasing=bool(cfg and cfg.dephasing), relaxation=bool(cfg and cfg.relaxation))
        self._build()
        self._structs()

    # ------------------------------------------------------------ launch layer
    def _build(self) -> None:
        """Build (or load from the cache) the library for ``self.defines``."""
        raise NotImplementedError

    def _address(self, a: np.ndarray) -> int:
        """The address the structs hold for host array ``a`` (kept alive with the kernel)."""
        self._keep.append(a)
        return _ptr(a)

    def _buffer_address(self, a: Any) -> int:
        """The address of ``a``, an array of :attr:`xp`."""
        return _ptr(a)

    def _struct_address(self, structs: ctypes.Array) -> int:
        """The address of a ctypes struct array as the kernel reads it (a struct points into it)."""
        return ctypes.addressof(structs)

    def _from_jax(self, x: Any) -> Any:
        """A JAX array as an array of :attr:`xp` (read, not kept)."""
        return np.asarray(x)

    def _to_jax(self, a: Any) -> jax.Array:
        """An array of :attr:`xp` as a new JAX array (the buffer goes on changing in place)."""
        # a copy: the CPU client may alias (zero-copy) a NumPy buffer, and the next call changes it in place
        return jax.device_put(a.copy())

    def _to_host(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def _call(self, t0: int, length: int) -> None:
        """Run the kernel for ``length`` steps from absolute step ``t0`` on the structs as they are."""
        raise NotImplementedError

    # ------------------------------------------------------------ shared
    def _structs(self) -> None:
        """The kernel's argument structs, built once: the state lives in private buffers that the structs
        point into (filled from a ``NetState`` by :meth:`_load`); only the weights, the monitors' buffers
        and t0 change between calls."""
        xp, net = self.xp, self.net
        self._state = {}
        self._c_groups = (_Group * max(len(self._groups) + len(self._sources), 1))()
        for gi, g in enumerate(self._groups):
            name = g["name"]
            s = net.state.neurons[name]
            arrays = {field: xp.zeros(np.shape(x), np.int32 if field == "ref" else np.float32) for field, x in (
                ("v", s.v), ("ref", s.refractory), ("q0", s.re0), ("q1", s.im0), ("q2", s.re1), ("q3", s.im1),
                ("syn", net.state.syn[name]), ("ring", net.state.ring[name]))}
            arrays["count"] = xp.zeros(g["n"], np.int32)
            self._state[name] = arrays
            st = self._c_groups[gi]
            st.n, st.receptors, st.depth, st.per_neuron = g["n"], g["receptors"], int(arrays["ring"].shape[1]), g["per_neuron"]
            st.dt, (st.key0, st.key1) = g["dt"], g["key"]
            st.n_poisson, st.poisson = g["n_poisson"], self._struct_address(g["poisson"])
            for field, arr in (*g["params"].items(), *g["const"].items(), *g["scratch"].items()):
                setattr(st, field, self._address(arr))
            for field, arr in arrays.items():
                setattr(st, field, self._buffer_address(arr))
        for si, src in enumerate(self._sources):
            self._state[src["name"]] = arrays = {"count": xp.zeros(src["n"], np.int32)}
            st = self._c_groups[len(self._groups) + si]
            st.n, st.depth, st.source, (st.key0, st.key1) = src["n"], 1, src["source"], src["key"]
            st.count, st.spiked = self._buffer_address(arrays["count"]), self._address(np.zeros(src["n"], np.int32))
            if "p" in src:
                st.emit_p = self._address(src["p"])
            else:
                st.emit_idx = self._address(src["idx"] if src["idx"].size else np.zeros(1, np.int32))
        self._plastic: dict[str, dict] = {}  # plastic projection -> its weights and traces (kernel buffers)
        self._c_projections = (_Projection * max(len(self._projections), 1))()
        for pi, p in enumerate(self._projections):
            st = self._c_projections[pi]
            for field in ("pre", "post", "receptor", "n_pre", "n_post", "width", "dense", "n_delays", "delay", "first"):
                setattr(st, field, p[field])
            st.targets, st.lengths, st.delays, st.scratch = (self._address(p[k])
                                                              for k in ("targets", "lengths", "delays", "scratch"))
            if p.get("plastic"):  # weights and traces in the kernel's buffers, filled by _load
                for field in ("plastic", "multiplicative", "a_plus", "a_minus", "decay_plus", "decay_minus", "w_min",
                              "w_max"):
                    setattr(st, field, p[field])
                st.col_start, st.col_slot = self._address(p["col_start"]), self._address(p["col_slot"])
                tr = net.state.traces[p["name"]]
                self._plastic[p["name"]] = arrays = dict(
                    weights=xp.zeros(np.shape(net.state.weights[p["name"]]), np.float32),
                    x_pre=xp.zeros(np.shape(tr.pre), np.float32), x_post=xp.zeros(np.shape(tr.post), np.float32),
                    x_post_old=xp.zeros(2 * np.shape(tr.post)[0], np.float32))
                for field, arr in arrays.items():
                    setattr(st, field, self._buffer_address(arr))
        self._c_monitors = (_Monitor * max(len(self._monitors), 1))()
        for mi, m in enumerate(self._monitors):
            st = self._c_monitors[mi]
            st.kind, st.group, st.k = m["kind"], m["group"], m["k"]
            st.start, st.where = (None, None) if m["inverse"] is None else (self._address(a) for a in m["inverse"])
            st.index = None if m["index"] is None else self._address(m["index"])
            st.sorted, st.fields = m["sorted"], m["fields"]
        self._records: dict[int, dict] = {}  # length -> SpikeMonitor buffers (rows, events), reused
        self._last = None  # the NetState the last call returned (its values are in the buffers)

    def _load(self, state: Any) -> None:
        """Copy ``state`` into the kernel's buffers."""
        for name, arrays in self._plastic.items():
            tr = state.traces[name]
            for field, x in (("weights", state.weights[name]), ("x_pre", tr.pre), ("x_post", tr.post)):
                self.xp.copyto(arrays[field], self._from_jax(x), casting="same_kind")
        for name, arrays in self._state.items():
            if name not in state.neurons:  # a spike source: its counts
                self.xp.copyto(arrays["count"], self._from_jax(state.count[name]), casting="same_kind")
                continue
            s = state.neurons[name]
            for field, x in (("v", s.v), ("ref", s.refractory), ("q0", s.re0), ("q1", s.im0), ("q2", s.re1),
                             ("q3", s.im1), ("syn", state.syn[name]), ("ring", state.ring[name]),
                             ("count", state.count[name])):
                self.xp.copyto(arrays[field], self._from_jax(x), casting="same_kind")

    def _spike_buffers(self, m: dict, length: int) -> dict:
        """The ``(length, k)`` rows and event lists of SpikeMonitor ``m`` for chunks of ``length`` steps
        (kept for the next call of that length: the caller reads them before it)."""
        by_length = self._records.setdefault(length, {})
        if len(self._records) > 2:  # a run has one chunk length and a tail
            self._records = {length: by_length}
        buf = by_length.get(m["name"])
        if buf is None:
            xp, cap = self.xp, max(4096, 4 * length)
            buf = by_length[m["name"]] = dict(rows=xp.zeros((length, m["k"]), np.bool_), cap=cap, set=0,
                                              step=xp.zeros(cap, np.int32), pos=xp.zeros(cap, np.int32))
        return buf

    @staticmethod
    def _clear_rows(buf: dict) -> None:
        """Zero the rows of ``buf`` that the last call set (the kernels write only the bytes of spikes): the
        bytes of its events, or every byte after the event list overflowed (``set`` < 0)."""
        n = buf["set"]
        if n < 0:
            buf["rows"].fill(0)
        elif n:
            buf["rows"][buf["step"][:n], buf["pos"][:n]] = False
        buf["set"] = 0

    def _state_records(self, name: str, values: np.ndarray) -> dict:
        """A StateMonitor's ``{variable: (length, k)}`` from the kernel's samples ``(length, k, fields)``
        (V, the qubit's four amplitudes, the receptor variables): the observables are the JAX path's own
        functions (``networks.monitors._state_values``) on these neurons' states, on the host."""
        from qsn.networks.monitors import StepView, _state_values

        monitor = self.net.monitors[name]
        group = monitor.group.name
        cols = [jnp.asarray(values[..., i]) for i in range(values.shape[-1])]
        neuron = self.net.state.neurons[group]._replace(v=cols[0], re0=cols[1], im0=cols[2], re1=cols[3], im1=cols[4])
        syn = jnp.stack(cols[_STATE_FIELDS:]) if len(cols) > _STATE_FIELDS else jnp.zeros((0,) + values.shape[:2])
        view = StepView(spikes={}, neurons={group: neuron}, syn={group: syn})
        out = _state_values(view, group, tuple(monitor.variables), tuple(monitor.group.receptors), None)
        return {var: np.asarray(x) for var, x in out.items()}

    def _spike_records(self, st: Any, buf: dict, length: int) -> np.ndarray:
        """A SpikeMonitor's records of the call from its struct ``st`` and buffers ``buf``."""
        events = int(st.n_events)
        buf["set"] = events if events <= buf["cap"] else -1
        if events > buf["cap"]:  # more spikes than the list held: the rows are complete, a scan reads them
            buf["cap"] = 2 * events
            buf["step"], buf["pos"] = self.xp.zeros(2 * events, np.int32), self.xp.zeros(2 * events, np.int32)
            return self._to_host(buf["rows"]).view(_SpikeRecords)
        return self._event_records(self._to_host(buf["step"][:events]), self._to_host(buf["pos"][:events]),
                                   buf, length)

    def _event_records(self, step: np.ndarray, pos: np.ndarray, buf: dict, length: int) -> np.ndarray:
        """Records whose events the kernel listed in scan order (rows from the kernel's buffer)."""
        rows = self._to_host(buf["rows"]).view(_SpikeRecords)
        rows.events = (step.astype(np.intp), pos.astype(np.intp))
        return rows

    def chunk(self, state: Any, length: int) -> tuple[Any, dict]:
        """Advance ``state`` (a ``NetState``) by ``length`` steps; returns the new ``NetState`` and the
        monitor records as the JAX chunk gives them (``SpikeMonitor``: ``(length, k)`` bool, whose
        ``nonzero()`` reads the kernel's event list and which the next call of this length overwrites;
        ``RateMonitor``: ``(length,)`` int32), on the host.

        The state is copied into the kernel's buffers unless it is the one the last call returned (a run
        of chunks), and out again as new JAX arrays, so states stay immutable."""
        t0 = int(state.t)
        if state is not self._last:
            self._load(state)
        weights = []  # alive until the call returns
        for pi, p in enumerate(self._projections):
            if p["name"] in self._plastic:  # (its buffer: loaded with the state)
                continue
            w = self._from_jax(state.weights[p["name"]])
            if w.dtype != np.float32 or not w.flags.c_contiguous:
                w = self.xp.ascontiguousarray(w, dtype=np.float32)
            weights.append(w)
            self._c_projections[pi].weights = self._buffer_address(w)
        rates, samples, spike_buffers = {}, {}, []
        for mi, m in enumerate(self._monitors):
            st = self._c_monitors[mi]
            st.n_events = 0
            if m["kind"] == _MONITORS["StateMonitor"]:
                samples[m["name"]] = out = self.xp.zeros((length, m["k"], m["fields"]), np.float32)
                st.values = self._buffer_address(out)
            elif m["kind"] == _MONITORS["SpikeMonitor"]:
                buf = self._spike_buffers(m, length)
                self._clear_rows(buf)
                st.spikes, st.cap = self._buffer_address(buf["rows"]), buf["cap"]
                st.ev_step, st.ev_pos = self._buffer_address(buf["step"]), self._buffer_address(buf["pos"])
                spike_buffers.append((mi, m["name"], buf))
            else:
                rates[m["name"]] = out = self.xp.zeros(length, np.int32)
                st.rate = self._buffer_address(out)
        starts = []  # alive until the call returns
        for si, src in enumerate(self._sources):
            if "steps" in src:  # where each step of the call starts in the source's spike list
                starts.append(self.xp.asarray(np.searchsorted(src["steps"], t0 + np.arange(length + 1)).astype(np.int32)))
                self._c_groups[len(self._groups) + si].emit_start = self._buffer_address(starts[-1])
        try:
            self._call(t0, int(length))
        except BaseException:
            self._last = None  # the buffers hold a partial chunk
            raise
        records = {name: self._to_host(out) for name, out in rates.items()}
        for name, out in samples.items():
            records[name] = self._state_records(name, self._to_host(out))
        for mi, name, buf in spike_buffers:
            records[name] = self._spike_records(self._c_monitors[mi], buf, length)
        t = jnp.asarray(t0 + length, jnp.int32)
        neurons, syn, ring, count = dict(state.neurons), dict(state.syn), dict(state.ring), dict(state.count)
        for name, arrays in self._state.items():
            a = {field: self._to_jax(x) for field, x in arrays.items()}
            if name not in state.neurons:  # a spike source
                count[name] = a["count"]
                continue
            neurons[name] = state.neurons[name]._replace(
                v=a["v"], refractory=a["ref"], re0=a["q0"], im0=a["q1"], re1=a["q2"], im1=a["q3"], t=t)
            syn[name], ring[name], count[name] = a["syn"], a["ring"], a["count"]
        weights, traces = dict(state.weights), dict(state.traces)
        for name, arrays in self._plastic.items():
            weights[name] = self._to_jax(arrays["weights"])
            traces[name] = state.traces[name]._replace(pre=self._to_jax(arrays["x_pre"]),
                                                       post=self._to_jax(arrays["x_post"]))
        self._last = state._replace(t=t, neurons=neurons, syn=syn, ring=ring, count=count, weights=weights,
                                    traces=traces)
        return self._last, records


class NativeNetwork(_NetworkKernel):
    """``Network.run(backend="native")``: kernels/cpu/network.cpp on this CPU, its structs in host memory,
    one ctypes call per chunk (see :class:`_NetworkKernel` for the arguments)."""

    name = "native"

    def _build(self) -> None:
        self.library, self.flags = host_library("network.cpp", self.defines, self.precise, NATIVE)
        self._fn = self.library.qsn_network
        self._fn.restype = ctypes.c_int

    def _call(self, t0: int, length: int) -> None:
        status = self._fn(ctypes.c_int(len(self._groups) + len(self._sources)), self._c_groups,
                          ctypes.c_int(len(self._projections)), self._c_projections,
                          ctypes.c_int(len(self._monitors)), self._c_monitors, ctypes.c_int(t0), ctypes.c_int(length))
        if status != 0:
            raise MemoryError("Network.run(backend='native'): the kernel could not allocate its per-neuron constants")


class FusedNetwork(_NetworkKernel):
    """The CUDA network kernel (kernels/cuda/network.cu) on a :class:`qsn.kernels.runner.Runner`: one launch
    per chunk, every step inside it (``Network.run(backend="cupy")``, or the host emulation the tests run).
    Its arrays live on the runner (device memory under CuPy); the structs are copied to it per call.

    Args:
        net: a built :class:`qsn.networks.Network`.
        runner: :class:`~qsn.kernels.runner.CupyRunner` or :class:`~qsn.kernels.runner.HostRunner`.
        precise: IEEE sqrt/sincos/division in the neuron step.
    """

    def __init__(self, net: Any, runner: Runner, *, precise: bool = False) -> None:
        self.runner, self.xp, self.name = runner, runner.xp, runner.name
        self._placed: dict[int, tuple[np.ndarray, Any]] = {}
        super().__init__(net, precise=precise)

    def _build(self) -> None:
        self.runner.function("network", "qsn_network", self.defines, self.precise)  # compile now: errors before a step

    def _place(self, a: np.ndarray) -> Any:
        placed = self._placed.get(id(a))
        if placed is None:
            placed = self._placed[id(a)] = (a, self.xp.asarray(a))
        return placed[1]

    def _address(self, a: np.ndarray) -> int:
        return self.runner.pointer(self._place(a))

    def _buffer_address(self, a: Any) -> int:
        return self.runner.pointer(a)

    def _struct_address(self, structs: ctypes.Array) -> int:
        data = self._upload(structs)
        self._keep.append(data)  # pointed into by other structs: kept with the kernel
        return self.runner.pointer(data)

    def _upload(self, structs: ctypes.Array) -> Any:
        """A copy of ``structs``' bytes on the runner."""
        return self.xp.asarray(np.frombuffer(bytes(structs), np.uint8).copy())

    def _from_jax(self, x: Any) -> Any:
        return self.runner.from_jax(x)

    def _to_jax(self, a: Any) -> jax.Array:
        return self.runner.to_jax(a.copy())

    def _to_host(self, a: Any) -> np.ndarray:
        return self.runner.to_host(a)

    def _call(self, t0: int, length: int) -> None:
        xp = self.xp
        counts = []  # each group's spikes per step of the call (the spike list's length at each step)
        groups = self._groups + self._sources
        for gi in range(len(groups)):
            counts.append(xp.zeros(max(length, 1), np.int32))
            self._c_groups[gi].step_spiked = self.runner.pointer(counts[-1])
        structs = [self._upload(s) for s in (self._c_groups, self._c_projections, self._c_monitors)]
        barrier = xp.zeros(2, np.uint32)
        total = sum(g["n"] for g in groups)  # one item per neuron, and per neuron of each spike source
        args = [np.int32(len(groups)), structs[0], np.int32(len(self._projections)), structs[1],
                np.int32(len(self._monitors)), structs[2], np.int64(total), np.int32(t0), np.int32(length), barrier]
        self.runner.launch_resident("network", "qsn_network", self.defines, self.precise, total, args)
        monitors = (_Monitor * len(self._c_monitors)).from_buffer_copy(self.runner.to_host(structs[2]).tobytes())
        for mi in range(len(self._monitors)):
            self._c_monitors[mi].n_events = monitors[mi].n_events

    def _event_records(self, step: np.ndarray, pos: np.ndarray, buf: dict, length: int) -> np.ndarray:
        # threads list events in the order they get there: sorted into scan order, rows made from them
        order = np.lexsort((pos, step))
        step, pos = step[order].astype(np.intp), pos[order].astype(np.intp)
        rows = np.zeros(tuple(buf["rows"].shape), np.bool_).view(_SpikeRecords)
        rows[step, pos] = True
        rows.events = (step, pos)
        return rows


def network_kernel(net: Any, backend: Any) -> _NetworkKernel:
    """The whole-network kernel of built ``net`` for ``backend``: ``"native"`` (the CPU kernel),
    ``"cupy"`` (the CUDA kernel through CuPy), or a :class:`qsn.kernels.runner.Runner` (the CUDA kernel on
    it: ``HostRunner()`` is its host emulation). Raises :class:`ConfigurationError` naming what it refuses,
    :class:`qsn.errors.BackendUnavailableError` when CuPy, a GPU or a compiler is missing."""
    if backend == "native":
        return NativeNetwork(net)
    if backend == "cupy":
        from qsn.kernels.runner import CupyRunner

        return FusedNetwork(net, CupyRunner())
    if isinstance(backend, Runner):
        return FusedNetwork(net, backend)
    raise ConfigurationError(f"Network.run: backend must be 'jax', 'native', 'cupy' or a qsn.kernels.runner.Runner, "
                             f"but is {backend!r}")


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
