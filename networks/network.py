"""``Network``: groups, projections, inputs and monitors, built once and run in compiled chunks.

The per-step schedule (step ``k``, the same for every backend; Brian2's default order with the
spike arrivals of step ``k - 1`` applied at the start of step ``k``):

1. **arrivals** — each receptor adds its ring-buffer slot ``k mod D`` (spikes sent ``1 + delay``
   steps ago) and this step's Poisson input counts; Delta receptors add to ``V``;
2. **state update, threshold, reset** — the core neuron step (DESIGN §1) with the external current
   plus the receptors' equivalent current (see :mod:`qsn.networks.synapse`); spike sources emit;
3. **receptor decay** — ``x *= exp(-dt/tau)``;
4. **propagation** — spikes of step ``k`` go into the target ring buffers at slot
   ``(k + 1 + delay) mod D``;
5. **plasticity** — STDP traces and weights;
6. **monitors** — record spikes, rates and state samples.

Randomness: every random stream (a group's quantum noise, a Poisson source or input) has its own key
folded from the build key, and step ``k`` draws from ``fold_in(stream_key, k)``: a run split in two,
with ``state``/``restore`` in between, equals one run bit for bit.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.compile_cache import enable as enable_compile_cache
from qsn.current import ConstantCurrent, SampledCurrent, as_current
from qsn.driver import chunk_length, drive
from qsn.errors import ConfigurationError, InvalidStateError
from qsn.keys import check_prng_key
from qsn.runtime import check_finite
from qsn.stepper import Stepper
from qsn.state import init_state, resolve_dtype
from qsn.surrogate import Surrogate, check_surrogate
from qsn.networks.group import NeuronGroup, PoissonGroup, SpikeSourceArray, _Group
from qsn.networks.inputs import CurrentInput, PoissonInput, poisson_table
from qsn.networks.monitors import StateMonitor, _Monitor
from qsn.networks.program import (ArraySource, GroupProgram, PoissonDrive, PoissonSource, Program, exchange_interval,
                                  net_steps)
from qsn.networks.projection import Projection, build as build_projection, build_budget, build_progress, footprint

__all__ = ["Network", "NetState"]

_MIN_ROWS = 64  # smallest event-path capacity (spiking rows per step)


class NetState(NamedTuple):
    """Everything that changes during a run (a pytree; save it, restore it, shard it)."""

    t: jax.Array  # () int32 — steps done
    neurons: dict  # group name -> PureState | MixedState
    syn: dict  # group name -> (receptors, n) receptor variables (current, conductance; Delta: pending mV)
    ring: dict  # group name -> (receptors, D, n) spikes in flight, by arrival slot
    weights: dict  # projection name -> (n_pre + 1, K) ELL or (delays, n_pre, n_post) dense weights
    traces: dict  # projection name -> Traces (plastic projections only)
    count: dict  # group name -> (n,) int32 spikes since build


class Network:
    """A network of neuron groups, spike sources, projections, inputs and monitors.

    Example:
        >>> from qsn.networks import Network, NeuronGroup, Projection, SpikeMonitor, fixed_probability
        >>> net = Network()
        >>> g = net.add(NeuronGroup(1000, qsn.NeuronParams(delta=0.0)))
        >>> net.add(Projection(g, g, fixed_probability(0.05), weight=0.5, delay=1.5))
        >>> net.add(CurrentInput(g, 16.0)); spikes = net.add(SpikeMonitor(g))
        >>> net.build(jax.random.key(0)).run(1000.0, progress=True)
        >>> spikes.t, spikes.i

    Args:
        dt: step, ms; default: the neuron groups' common ``params.dt`` (0.1 when there is none).
        dtype: float32 (default) or float64 (needs ``jax_enable_x64``).
    """

    def __init__(self, dt: float | None = None, dtype: Any = jnp.float32) -> None:
        if dt is not None:
            try:
                ok = math.isfinite(float(dt)) and float(dt) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok or isinstance(dt, bool):
                raise ConfigurationError(f"Network: dt must be a finite number of ms > 0, but is {dt!r}")
            dt = float(dt)
        self._dt = dt
        self.dtype = resolve_dtype(dtype)
        self.groups: dict[str, _Group] = {}
        self.projections: dict[str, Projection] = {}
        self.inputs: list[Any] = []
        self.monitors: dict[str, _Monitor] = {}
        self._built = False

    # ---------------------------------------------------------------- construction
    def add(self, *objects: Any) -> Any:
        """Add groups, projections, inputs and monitors (in any order); returns the object(s) added."""
        if self._built:
            raise ConfigurationError("Network is already built: add everything before build()")
        for obj in objects:
            if isinstance(obj, _Group):
                self._name(obj, self.groups, "group")
            elif isinstance(obj, Projection):
                self._name(obj, self.projections, "projection")
            elif isinstance(obj, (CurrentInput, PoissonInput)):
                self.inputs.append(obj)
            elif isinstance(obj, _Monitor):
                self._name(obj, self.monitors, "monitor")
            else:
                raise ConfigurationError(f"Network.add takes groups, projections, inputs and monitors, not {type(obj).__name__}")
        return objects[0] if len(objects) == 1 else objects

    @staticmethod
    def _name(obj: Any, table: dict, prefix: str) -> None:
        if any(o is obj for o in table.values()):
            return
        if obj.name is None:
            obj.name = f"{prefix}{len(table)}"
        if obj.name in table:
            raise ConfigurationError(f"Network already has a {prefix} named {obj.name!r}")
        table[obj.name] = obj

    def __getitem__(self, name: str) -> Any:
        for table in (self.groups, self.projections, self.monitors):
            if name in table:
                return table[name]
        raise KeyError(name)

    @property
    def dt(self) -> float:
        """Step length, ms."""
        return self._resolve_dt()

    def _resolve_dt(self) -> float:
        dts = {float(np.unique(g.params.dt)[0]) for g in self.groups.values() if isinstance(g, NeuronGroup)}
        for g in self.groups.values():
            if isinstance(g, NeuronGroup) and np.unique(g.params.dt).size > 1:
                raise ConfigurationError(f"Group {g.name!r} has several dt values; a network needs one dt")
        if self._dt is not None:
            dts.add(float(self._dt))
        if len(dts) > 1:
            raise ConfigurationError(f"All neuron groups (and Network(dt=...)) must share one dt, but found {sorted(dts)} ms")
        return dts.pop() if dts else 0.1

    def _check_members(self) -> None:
        known = list(self.groups.values())
        def need(group: Any, owner: str) -> None:
            if not any(group is g for g in known):
                raise ConfigurationError(f"{owner} refers to {group!r}, which was not added to the network")
        for p in self.projections.values():
            need(p.pre, f"Projection {p.name}")
            need(p.post, f"Projection {p.name}")
        for inp in self.inputs:
            need(inp.group, type(inp).__name__)
        for m in self.monitors.values():
            need(m.group, f"Monitor {m.name}")
            if isinstance(m, StateMonitor) and not isinstance(m.group, NeuronGroup):
                raise ConfigurationError(f"StateMonitor {m.name} needs a NeuronGroup")

    # ---------------------------------------------------------------- build
    def build(self, key: jax.Array, *, shard: bool | Any = False, progress: bool | None = None) -> "Network":
        """Draw connectivity, weights, delays and initial states from ``key``; prepare the compiled step.

        Args:
            key: ``jax.random`` key (all randomness of the network derives from it).
            shard: partition the network over devices (:mod:`qsn.networks.partition`): ``True`` over
                every device of ``jax.devices()`` (all processes' under ``jax.distributed``), an int for
                the first that many, or a one-axis ``jax.sharding.Mesh``. Each device owns a slice of
                every neuron group and the synapses onto it; spikes are exchanged as bit-packed words,
                one ``all_gather`` per group and step. The spike trains are those of the unpartitioned
                network.
            progress: a bar over the synapses drawn, on stderr; ``None`` shows it for builds of at least
                1e7 synapses when stderr is a terminal.

        Returns:
            ``self``, ready to :meth:`run`.

        Raises:
            ConfigurationError: ``key`` is not one JAX key, or a member is misconfigured (named).
            MemoryBudgetError: the connectivity, ring buffers (``receptors x (longest delay + 1) x n``
                per group) and neuron states would not fit (:mod:`qsn.memory`): checked before drawing
                from the rules' expected sizes, and again with the drawn delays before the states and
                ring buffers are allocated. The message names the largest parts and what fits.
        """
        if self._built:
            raise ConfigurationError("Network.build() was already called; make a new Network to rebuild")
        key = check_prng_key(key, optional=False)
        self._check_members()
        mesh = None
        if shard is not False and shard is not None:
            from qsn.networks.partition import mesh_of

            mesh = mesh_of(shard)
        enable_compile_cache()  # the build's many small XLA programs load from disk in a second process
        dt = self._resolve_dt()
        self._dt = dt
        dtype = self.dtype
        k_conn, k_init, self._key = jax.random.split(key, 3)
        neuron_groups = [g for g in self.groups.values() if isinstance(g, NeuronGroup)]
        streams = iter(range(1_000_000))

        # memory preflight: what the rules and delays let us estimate, before drawing anything
        item = jnp.dtype(dtype).itemsize
        sampled = [(inp.group.name, int(np.size(inp.current)) * item) for inp in self.inputs
                   if isinstance(inp, CurrentInput) and np.ndim(inp.current) == 2]
        footprints = {p.name: footprint(p, dt, dtype) for p in self.projections.values()}
        longest: dict[str, int] = {}
        for p in self.projections.values():
            longest[p.post.name] = max(longest.get(p.post.name, 0), footprints[p.name].longest_delay)
        build_budget(list(self.groups.values()), longest, dt, dtype, footprints=footprints, currents=sampled).check()

        # projections: connectivity, weights, delays (partitioned: drawn by each device for its own slice
        # where the rule allows, else drawn whole and cut)
        part = None
        if mesh is not None:
            from qsn.networks.partition import Partition

            part = Partition(mesh, {g.name: g for g in neuron_groups},
                             [g.name for g in self.groups.values() if not isinstance(g, NeuronGroup)])
        specs, arrays, weights, traces, owned, shortest = {}, {}, {}, {}, {}, {}
        max_delay = {g.name: 0 for g in neuron_groups}
        self.synapse_count = {}
        bar = build_progress(footprints, progress)
        for i, p in enumerate(self.projections.values()):
            receptor = list(p.post.receptors).index(p.receptor)
            k_p = jax.random.fold_in(k_conn, i)
            if part is not None and part.owns(p):
                spec, arr, _, m = part.build_owned(p, k_p, dt, dtype, receptor)
                owned[p.name] = arr.weights
                w = jax.ShapeDtypeStruct((spec.n_pre + 1, arr.width), arr.weights[0].dtype)  # the whole, never formed
                d, shortest[p.name] = arr.longest, arr.shortest
            else:
                spec, arr, w, m = build_projection(p, k_p, dt, dtype, receptor)
                d = spec.longest_delay(arr, m)
                if part is not None:
                    shortest[p.name] = spec.shortest_delay(arr, m)
            specs[p.name], arrays[p.name], weights[p.name] = spec, arr, w
            self.synapse_count[p.name] = m
            max_delay[p.post.name] = max(max_delay[p.post.name], d)
            if p.plasticity is not None:
                traces[p.name] = p.plasticity.init(spec.n_pre, spec.n_post, dtype)
            bar.update(footprints[p.name].synapses)
        bar.close()
        # the drawn delays fix the ring buffers: check them and the states before allocating either
        build_budget(list(self.groups.values()), max_delay, dt, dtype, currents=sampled).check()

        # neuron groups: constants, initial state, receptors, inputs
        plans, consts, cfgs, neurons, syn, ring, count = {}, {}, {}, {}, {}, {}, {}
        array_rows: list[int] = []
        for gi, g in enumerate(neuron_groups):
            k_group = jax.random.fold_in(k_init, gi)  # v0 draws from it, syn0 from its fold_in per receptor
            v0 = g.v0(k_group) if callable(g.v0) else g.v0
            neurons[g.name] = init_state(g.params, g.n, g.mode, dtype, v0=v0)
            kin = list(g.receptors.values())
            currents, const_sum = [], np.zeros(g.n)
            for inp in self.inputs:
                if isinstance(inp, CurrentInput) and inp.group is g:
                    k = g.n if inp.index is None else inp.index.size
                    cur = as_current(inp.current, k, dtype)
                    if isinstance(cur, ConstantCurrent):
                        add = np.broadcast_to(np.asarray(cur.value, np.float64), (k,))
                        if inp.index is None:
                            const_sum = const_sum + add
                        else:
                            np.add.at(const_sum, inp.index, add)
                    else:
                        currents.append((cur, inp.index))
            poisson = []
            for inp in self.inputs:
                if isinstance(inp, PoissonInput) and inp.group is g:
                    lam = inp.n_inputs * inp.rate * dt * 1e-3
                    poisson.append((list(g.receptors).index(inp.receptor), lam, inp.weight, inp.index, next(streams)))
            psc = np.stack([np.broadcast_to(k.coefficient(g.params), (g.n,)) for k in kin]) if kin else np.zeros((0, g.n))
            stepper = Stepper.build(g.params, g.mode, dtype)
            consts[g.name] = dict(
                psc=jnp.asarray(psc, dtype),
                i_const=jnp.asarray(const_sum, dtype),
                r_m=jnp.asarray(np.broadcast_to(g.params.r_m, (g.n,)), dtype),
                arrays=tuple(cur.value if isinstance(cur, SampledCurrent) else None for cur, _ in currents),
                index=tuple(None if idx is None else jnp.asarray(idx, jnp.int32) for _, idx in currents),
                poisson_index=tuple(None if p[3] is None else jnp.asarray(p[3], jnp.int32) for p in poisson),
                poisson_table=tuple(None if (tb := poisson_table(p[1])) is None else jnp.asarray(tb, dtype) for p in poisson),
            )
            array_rows += [cur.steps for cur, _ in currents if isinstance(cur, SampledCurrent)]
            plans[g.name] = GroupProgram(
                name=g.name,
                receptors=tuple(kin),
                decays=tuple(k.decay(dt) for k in kin),
                stream=next(streams),
                currents=tuple(None if isinstance(cur, SampledCurrent) else cur for cur, _ in currents),
                poisson=tuple(PoissonDrive(r, lam, w, s) for r, lam, w, _, s in poisson),
                n=g.n,
                size=g.n,
            )
            cfgs[g.name] = stepper
            syn[g.name] = jnp.asarray(g.initial_receptors(k_group), dtype)
            ring[g.name] = jnp.zeros((len(kin), max_delay[g.name] + 1, g.n), dtype)
        sources = {}
        for g in self.groups.values():
            count[g.name] = jnp.zeros((g.n,), jnp.int32)
            if isinstance(g, PoissonGroup):
                sources[g.name] = PoissonSource(g.name, next(streams))
                consts[g.name] = dict(p=jnp.asarray(np.broadcast_to(g.rates * dt * 1e-3, (g.n,)), dtype))
                if np.any(g.rates * dt * 1e-3 > 1):
                    raise ConfigurationError(f"PoissonGroup {g.name}: rate * dt exceeds 1 spike per step")
            elif isinstance(g, SpikeSourceArray):
                steps, idx = g.steps(dt)
                width = int(np.max(np.bincount(steps))) if steps.size else 1
                sources[g.name] = ArraySource(g.name, width, g.n)
                pad = width + 1  # searchsorted may land one past the last spike; slices stay in bounds
                consts[g.name] = dict(steps=jnp.asarray(np.append(steps, np.full(pad, np.iinfo(np.int32).max)), jnp.int32),
                                      idx=jnp.asarray(np.append(idx, np.full(pad, g.n)), jnp.int32))

        self._array_rows = min(array_rows) if array_rows else None
        self._specs, self._arrays = specs, arrays
        self._plans, self._steppers, self._sources = plans, cfgs, sources
        self._consts = dict(groups=consts, projections=arrays)
        self._program = Program(groups=tuple(plans.values()), sources=tuple(sources.values()),
                                projections=tuple(specs.values()), probes=tuple(m.probe() for m in self.monitors.values()),
                                dt=dt)
        state = NetState(t=jnp.zeros((), jnp.int32), neurons=neurons, syn=syn, ring=ring, weights=weights,
                         traces=traces, count=count)
        self._template = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)
        self._sharding = self._partition = None
        if part is not None:
            part.prepare(specs, arrays)
            self._global_specs = dict(specs)
            self._program = self._program._replace(exchange_every=exchange_interval(specs, shortest))
            self._program, self._dev_consts, self._specs = part.consts(self._program, self._consts, cfgs, specs)
            self._dev_steppers = self._dev_consts.pop("steppers")
            self._arrays = self._consts = None  # the devices hold their cuts; the whole is rebuilt on demand
            state = part.split(state, owned)
            self._sharding, self._partition = mesh, part
        self._state = state
        for m in self.monitors.values():
            m.dt = dt
        self._built = True
        self._compiled: dict = {}
        return self

    @property
    def exchange_bytes(self) -> int:
        """Bytes of spike words each device receives per step in a partitioned run (0 on one device)."""
        self._require_built()
        return 0 if self._partition is None else self._partition.exchange_bytes

    @property
    def exchange_every(self) -> int:
        """Steps between spike exchanges of a partitioned run: the shortest synaptic delay in steps plus one
        (a spike acts no sooner), 1 with plasticity (its traces read every step's spikes) or on one device."""
        self._require_built()
        return self._program.exchange_every

    @property
    def devices(self) -> int:
        """Devices the network is partitioned over (1 when it is not)."""
        self._require_built()
        return 1 if self._partition is None else self._partition.devices

    def _steps_done(self, state: NetState | None = None) -> int:
        """Steps done by ``state`` (default: the network's), read from this process's copy of ``t``."""
        from qsn.networks.partition import host_step

        return int(host_step(self._state if state is None else state))

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> NetState:
        """The current :class:`NetState` (immutable arrays: keep it to restore later). A partitioned
        network gives it whole, as one device would hold it (gathered from the devices and processes),
        so it restores on any number of devices."""
        self._require_built()
        return self._state if self._partition is None else self._partition.join(self._state)

    def restore(self, state: NetState) -> None:
        """Continue from ``state`` (from :attr:`state` of this network or of one built identically).

        Like Brian2's ``restore``, monitors forget what they recorded from the restored step on, so a
        run after the restore does not record a stretch of time twice.
        """
        self._require_built()
        ok = jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(self._template) and all(
            np.shape(a) == b.shape and a.dtype == b.dtype
            for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(self._template)))
        if not ok:
            raise InvalidStateError("Network.restore: the state does not match this network's groups, projections and dtype")
        self._state = state if self._partition is None else self._partition.split(state)
        for m in self.monitors.values():
            m._truncate(int(state.t))

    def save(self, path: str, *, shards: bool = False) -> None:
        """Write the current :class:`NetState` to ``path`` (a NumPy ``.npz`` file, host copies; NumPy adds
        ``.npz`` to a name without it).

        Args:
            path: the file, or with ``shards`` the folder.
            shards: a partitioned network only: each process writes its own devices' parts to
                ``path/shard-<p>.npz`` (with their projections' targets) and process 0 ``path/layout.json``;
                nothing is gathered. :meth:`load` restores it on the same devices (each process reading
                its own shards) or, joining the shards, on any other number.

        Raises:
            ConfigurationError: ``path`` cannot be written (no such folder, no permission), naming it, or
                ``shards`` on a network that is not partitioned.

        Example:
            >>> net.save("ckpt", shards=True)  # doctest: +SKIP
            >>> other.load("ckpt")  # built identically, on any number of devices  # doctest: +SKIP
        """
        self._require_built()
        if shards and self._partition is None:
            raise ConfigurationError("Network.save(shards=True) needs a partitioned network (build(key, shard=...)); "
                                     "save(path) writes one file")
        try:
            if shards:
                self._partition.save_shards(self._state, str(path))
                return
            leaves = jax.tree_util.tree_leaves(self.state)  # partitioned: gathered by every process
            if jax.process_index() == 0:  # a multi-process run writes from process 0 only
                np.savez(path, **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)})
        except OSError as err:
            raise ConfigurationError(f"Network.save: cannot write {str(path)!r}: {err.strerror or err}") from None

    def load(self, path: str) -> None:
        """Restore a state written by :meth:`save` of an identically built network: a file, or the folder
        of ``save(path, shards=True)`` (into a partitioned network of any device count).

        Raises:
            ConfigurationError: no file at ``path`` (or a folder without a shard layout), naming it, or a
                folder of shards loaded into a network that is not partitioned.
            InvalidStateError: the file is not an ``.npz`` written by :meth:`save` (corrupt, another
                format, other arrays), or its state does not match this network; the network is unchanged.
        """
        import os

        self._require_built()
        treedef = jax.tree_util.tree_structure(self._template)
        name = str(path)
        if os.path.isfile(os.path.join(name, "layout.json")):  # written by save(shards=True)
            if self._partition is None:
                raise ConfigurationError(f"Network.load: {name!r} holds a checkpoint per shard; load it into a partitioned "
                                         "network (build(key, shard=n), any n >= 1)")
            state, whole = self._partition.load_shards(name, self._state)
            if whole:
                self.restore(state)
            else:
                self._state = state
                for m in self.monitors.values():
                    m._truncate(self._steps_done())
            return
        if not os.path.isfile(name):
            hint = f" (Network.save({name!r}) wrote {name + '.npz'!r})" if os.path.isfile(name + ".npz") else ""
            what = "is a folder, not a file" if os.path.isdir(name) else "does not exist"
            raise ConfigurationError(f"Network.load: {name!r} {what}{hint}")
        try:
            data = np.load(name, allow_pickle=False)
        except Exception as err:  # noqa: BLE001  (NumPy raises ValueError, OSError, zipfile/pickle errors)
            raise InvalidStateError(f"Network.load: {name!r} is not a .npz file written by Network.save ({err})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise InvalidStateError(f"Network.load: {name!r} holds one array (.npy), not a state written by Network.save")
        with data:
            expected = [f"leaf{i}" for i in range(treedef.num_leaves)]
            if len(data.files) != treedef.num_leaves:
                raise InvalidStateError(
                    f"Network.load: {name} holds {len(data.files)} arrays, this network's state has {treedef.num_leaves}"
                )
            if sorted(data.files) != sorted(expected):
                odd = sorted(set(data.files) - set(expected))[0]
                raise InvalidStateError(f"Network.load: {name!r} is not a state written by Network.save (it holds an array {odd!r})")
            try:
                leaves = [jnp.asarray(data[k]) for k in expected]
            except Exception as err:  # noqa: BLE001  (a damaged member: zipfile, zlib or NumPy errors)
                raise InvalidStateError(f"Network.load: {name!r} is damaged: {err}") from None
        self.restore(jax.tree_util.tree_unflatten(treedef, leaves))

    @property
    def t(self) -> float:
        """Biological time reached, ms."""
        return self._steps_done() * self._dt if self._built else 0.0

    def spike_count(self, group: Any) -> np.ndarray:
        """``(n,)`` spikes of each neuron of ``group`` (a group or its name) since build."""
        name = group if isinstance(group, str) else group.name
        if self._partition is not None:
            return self._partition.count(self._state, name)
        return np.asarray(self._state.count[name])

    def weights(self, projection: Any) -> np.ndarray:
        """``(n_pre, n_post)`` summed weights of ``projection`` (object or name), on the host."""
        name = projection if isinstance(projection, str) else projection.name
        return self._projection(name, "dense_weights")

    def synapses(self, projection: Any) -> dict[str, np.ndarray]:
        """The synapse list of ``projection`` (object or name) on the host, sorted by ``(pre, post)``:
        ``pre``, ``post`` (group indices), ``weight`` (current values) and ``delay`` (steps)."""
        self._require_built()
        name = projection if isinstance(projection, str) else projection.name
        return self._projection(name, "synapse_list")

    def _projection(self, name: str, view: str) -> Any:
        """``spec.<view>(arrays, weights)`` of a projection as one device holds it."""
        if self._partition is None:
            spec, arrays, weights = self._specs[name], self._arrays[name], self._state.weights[name]
        else:
            spec, arrays = self._global_specs[name], self._partition.global_arrays(name)
            weights = self._partition.weights(self._state, name)
        return getattr(spec, view)(arrays, weights)

    def _require_built(self) -> None:
        if not self._built:
            raise ConfigurationError("Network is not built yet: call net.build(jax.random.key(0)) first")

    # ---------------------------------------------------------------- run
    def run(self, duration_ms: float, *, progress: bool = False, chunk_steps: int | None = None,
            backend: str = "jax") -> "Network":
        """Advance ``round(duration_ms/dt)`` steps, recording into the monitors.

        Args:
            duration_ms: biological time to simulate, ms.
            progress: show a tqdm bar on stderr.
            chunk_steps: steps per compiled chunk (default: bounded by monitor memory, ~100 chunks
                with a progress bar).
            backend: ``"jax"`` (default); ``"native"``, the whole-network CPU kernel
                (``kernels/cpu/network.cpp``), one call per chunk; ``"cupy"``, the whole-network CUDA
                kernel (``kernels/cuda/network.cu``, one launch per chunk, every step inside it); or a
                :class:`qsn.kernels.runner.Runner`, the CUDA kernel on it (``HostRunner()``: its host
                emulation, slow, for tests). The kernels (:mod:`qsn.kernels.network`) run float32
                pure-mode groups of one step configuration, Delta, PscExp and CondExp receptors,
                constant ``CurrentInput``, ``PoissonInput``, ``PoissonGroup`` and ``SpikeSourceArray``
                sources, event and dense projections, STDP, spike, rate and state monitors, and refuse
                anything else before the first step (naming it).
        """
        if isinstance(backend, str):
            known = backend in ("jax", "native", "cupy")
        else:
            from qsn.kernels.runner import Runner

            known = isinstance(backend, Runner)
        if not known:
            raise ConfigurationError(f"Network.run: backend must be 'jax', 'native' or 'cupy', but is {backend!r}")
        self._require_built()
        if not math.isfinite(float(duration_ms)) or duration_ms < 0:
            raise ConfigurationError(f"Network.run: duration_ms must be finite and >= 0, but is {duration_ms!r}")
        steps = int(round(float(duration_ms) / self._dt))
        t_start = self._steps_done()
        rows = self._array_rows
        if rows is not None and t_start + steps > rows:
            raise ConfigurationError(f"Network.run: a (T, n) CurrentInput has {rows} rows, but the run reaches step {t_start + steps}")
        chunk = self.chunk_length(steps, progress=progress, chunk_steps=chunk_steps)
        run_chunk = self._run_chunk if isinstance(backend, str) and backend == "jax" else self._kernel(backend).chunk

        def advance(start: int, length: int, sampled: bool) -> NetState:
            new_state, records = run_chunk(self._state, length)
            self._check(new_state)
            for name, data in records.items():  # every monitor takes the chunk, or none does
                self.monitors[name]._check(data, t_start + start)
            for name, data in records.items():
                self.monitors[name]._collect(data, t_start + start)
            self._state = new_state
            return new_state

        drive(steps, chunk, advance, progress=progress, desc="qsn network")
        return self

    def _kernel(self, backend: Any) -> Any:
        """The whole-network kernel of this network for ``backend`` (built on first use, one per backend;
        raises naming what it refuses)."""
        kernels = self.__dict__.setdefault("_kernels", {})
        key = backend if isinstance(backend, str) else id(backend)
        if key not in kernels:
            from qsn.kernels.network import network_kernel

            kernels[key] = network_kernel(self, backend)
        return kernels[key]

    def _native_kernel(self) -> Any:
        """The native (CPU) network kernel of this network."""
        return self._kernel("native")

    def chunk_length(self, steps: int, *, progress: bool = False, chunk_steps: int | None = None) -> int:
        """Steps per compiled chunk of a run of ``steps``: :func:`qsn.driver.chunk_length` for the monitors'
        bytes per step (the rule :meth:`run` uses; ``chunk_steps`` overrides it)."""
        per_step = sum(m.bytes_per_step(self.dtype) for m in self.monitors.values())
        return chunk_length(chunk_steps, steps, 1, per_step, progress)

    def rollout(
        self,
        steps: int,
        *,
        state: NetState | None = None,
        surrogate: Surrogate | None = None,
        checkpoint: bool = False,
    ) -> tuple[NetState, dict]:
        """Run ``steps`` steps as one pure function of ``state``, for ``jax.grad``/``jit``/``vmap`` (BPTT).

        Unlike :meth:`run`, nothing is kept: the network's own state and monitors are left as they are, and
        the result is ``(final NetState, {monitor name: records})``, records as JAX arrays with the step axis
        first (``SpikeMonitor``: ``(steps, k)`` spikes; ``StateMonitor``: ``{variable: (steps, k)}``).
        Differentiate through it by building ``state`` from traced values, e.g. ``weights`` or neuron states.

        Args:
            steps: number of steps (static).
            state: the starting :class:`NetState` (default: :attr:`state`).
            surrogate: a :class:`qsn.surrogate.Surrogate` makes spikes floats with surrogate gradients, so
                gradients cross spikes. Through a *dense* projection they reach the presynaptic neurons;
                through an *event* projection (sparse rows of spiking neurons) they reach the weights of
                the rows that spiked but not the presynaptic spikes (build with ``propagation="dense"``
                where that matters).
            checkpoint: rematerialise each step in reverse mode (``jax.checkpoint``): stores the state per
                step instead of every intermediate.

        Raises:
            ConfigurationError: a bad argument. At run time (``eqx.error_if``): an event projection had
            more spiking rows in one step than its capacity (they would be dropped), or a mixed-mode group
            left its propagator plan's range; :meth:`run` grows both automatically, this pure form cannot.
        """
        self._require_built()
        check_surrogate(surrogate)
        if self._partition is not None:
            raise ConfigurationError("Network.rollout runs on one device: build without shard to differentiate a network")
        if not isinstance(steps, int | np.integer) or steps < 1:
            raise ConfigurationError(f"Argument `steps` must be an int >= 1, but is {steps!r}")
        state = self._state if state is None else state
        steppers = {name: stepper.with_surrogate(surrogate) for name, stepper in self._steppers.items()}
        new_state, records, norms, busy = net_steps(
            self._current_program(), dict(self._consts, steppers=steppers), state, self._key, length=int(steps),
            remat=bool(checkpoint))
        for name, most in busy.items():
            new_state = eqx.error_if(new_state, most > self._specs[name].block,
                                     f"Network.rollout: projection {name!r} had more spiking rows in a step than its "
                                     f"event capacity {self._specs[name].block}; run() once first to size it")
        for name, norm in norms.items():
            new_state = eqx.error_if(new_state, norm > self._steppers[name].capacity(),
                                     f"Network.rollout: group {name!r} left its mixed-mode propagator plan; "
                                     "run() once first to re-plan it")
        return new_state, records

    def _run_chunk(self, state: NetState, length: int) -> tuple[NetState, dict]:
        """Run ``length`` steps from ``state``; returns the new state and the monitor records (host).

        Re-runs when the mixed-mode plan or an event capacity was exceeded. A chunk that overflowed
        a capacity is re-run in eight pieces, so that a burst (the onset of a run, a synchronous
        event) raises the capacity for a short piece only, not for the whole chunk.
        """
        while True:
            program = self._current_program()
            key = (length, program.projections)
            fn = self._compiled.get(key)
            part = self._partition
            if fn is None:  # the steppers are an argument: a re-planned one retraces through jit's own cache
                fn = jax.jit(functools.partial(net_steps, program, length=length)) if part is None else part.compile(program, length)
                self._compiled[key] = fn
            if part is None:
                new_state, records, norms, busy = fn(dict(self._consts, steppers=dict(self._steppers)), state, self._key)
            else:
                out = fn(dict(self._dev_consts, steppers=dict(self._dev_steppers)), state, part.key(self._key))
                new_state, (records, norms, busy) = out[0], part.host(*out[1:])
            replan = overflow = False
            for name, norm in norms.items():
                stepper = self._steppers[name]
                if not stepper.covers(norm):
                    self._steppers[name] = stepper.replanned(norm)
                    if part is not None:
                        self._dev_steppers[name] = self._dev_steppers[name].replanned(norm)
                    replan = True
            for name, most in busy.items():
                # capacities are powers of two (few compiled variants): grow and re-run when a step
                # overflowed; shrink for the next chunk when a burst has passed
                spec, most = self._specs[name], int(most)
                fit = min(spec.n_pre, max(_MIN_ROWS, 2 ** math.ceil(math.log2(max(most, 1) * 1.25))))
                if most > spec.block:
                    self._specs[name] = spec._replace(block=fit)
                    overflow = True
                elif fit * 4 <= spec.block:
                    self._specs[name] = spec._replace(block=fit)
            if overflow and length >= 64:
                return self._run_pieces(state, length)
            if not (replan or overflow):
                return new_state, {name: jax.tree_util.tree_map(np.asarray, data) for name, data in records.items()}

    def _current_program(self) -> Program:
        """The program with the event capacities as they are now (``_run_chunk`` grows and shrinks them)."""
        return self._program.replace_projections(self._specs)

    def _run_pieces(self, state: NetState, length: int) -> tuple[NetState, dict]:
        piece = length // 8
        parts = []
        for start in range(0, length, piece):
            state, records = self._run_chunk(state, min(piece, length - start))
            parts.append(records)
        joined = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)
        return state, joined

    def _check(self, state: NetState) -> None:
        if self._partition is not None:
            self._partition.check_finite(state, self._steps_done(state))
            return
        for name, s in state.neurons.items():
            step = int(state.t)
            check_finite(s._asdict(), step, f"Group {name!r}: state field")
            check_finite({"receptors": state.syn[name]}, step, f"Group {name!r}:")
