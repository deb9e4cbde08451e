"""Partitioned execution: every device owns a slice of each neuron group and the synapses onto it.

A network built with ``Network.build(key, shard=True)`` (or a one-axis ``jax.sharding.Mesh``) runs
its :func:`~qsn.networks.program.net_step` inside ``jax.shard_map`` on ``P`` devices:

* **ownership** — device ``p`` owns neurons ``[p S, (p + 1) S)`` of every neuron group
  (``S = ceil(n / P)`` rounded up to a multiple of 32; the last slice is padded with inert neurons,
  whose spikes are masked and never delivered), their states, receptors and ring buffers, and
  *their incoming synapses*: for every projection, the ELL rows of all presynaptic neurons cut to the
  targets in its slice (``(n_pre + 1, K_p)``, ``K_p`` about ``K / P``), so synapse memory per device is
  about ``1/P`` of the network's;
* **exchange** — after the neuron step each device packs its slice's spikes into 32-bit words and one
  ``all_gather`` per neuron group gives every device the whole group's spikes (:class:`AllGather`):
  ``P * S / 8`` bytes per group and step arrive at each device (:attr:`Partition.exchange_bytes`),
  gathered once per ``Program.exchange_every`` steps (the shortest delay plus one: a spike acts no
  sooner, so the devices step that many steps on their own and then exchange them together). Delivery is then local: every device scatters the spiking rows
  of its own cut into its own ring buffers. Spike sources (Poisson groups, spike arrays) have no state
  to own: every device computes their spikes (cheap, and identical everywhere);
* **randomness** — a Poisson input, and a stochastic neuron step (dephasing, relaxation, quantum
  jumps), draws on each device the entries ``[p S, (p + 1) S)`` of the counter-based Threefry stream
  the single-device run draws for the whole group (:mod:`qsn.draws`), so a run gives the same spikes
  on any number of devices;
* **the same answer** — connectivity, weights, delays and initial states are the single-device
  build's, so spike trains do not depend on ``P`` (``tests/networks/test_partition.py`` checks 1, 2,
  4 and 8 devices, and 2 processes, against one device);
* **drawn by the owner** — a projection of a rule drawn by target tiles (``fixed_probability``,
  ``fixed_indegree``, ``fixed_total_number``: :attr:`~qsn.networks.Projection.by_targets`) on the event
  path is drawn by each process for its own devices only, each the synapses onto its slice
  (:meth:`Partition.build_owned`); the tiles' keys make them the single-device build's. Other
  projections are drawn whole on each process and cut (:func:`cut_rows`).

``Network.save(folder, shards=True)`` writes each device's part of the state from its own process
(:meth:`Partition.save_shards`), and ``Network.load`` reads it back on the same devices, or joins the
shards and cuts them again for another device count (:meth:`Partition.load_shards`).

Only the parts of a process's devices are placed on them (:func:`jax.make_array_from_callback`), so it
runs unchanged under ``jax.distributed`` with one process per host or GPU (:mod:`qsn.networks.multihost`).

State monitors record on each device the monitored neurons of its slice; the partition puts them back
in the monitor's order. STDP updates each device's cut of the weights with the whole presynaptic trace
(every device computes it alike) and its slice of the postsynaptic one; its weights can differ from
the single-device run's by one ulp (XLA contracts ``w + a b`` into fused multiply-adds differently for
the cut's array shape), so a long plastic run equals the single-device one up to rounding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from qsn.draws import uniform_slice
from qsn.errors import ConfigurationError
from qsn.networks.inputs import counts_from_uniform, poisson_counts
from qsn.networks.monitors import SlicedStateProbe, StateProbe
from qsn.networks.program import GroupProgram, Program, net_steps
from qsn.networks.projection import EventProjection, Projection, ProjectionArrays, event_path, event_spec, narrow_delays

__all__ = ["AllGather", "Partition", "OwnedArrays", "uniform_slice", "pack_bits", "unpack_bits"]

_WORD = 32  # spikes per exchanged word; slices are multiples of it


def pack_bits(spikes: jax.Array) -> jax.Array:
    """``(..., S)`` bool, ``S`` a multiple of 32, as ``(..., S / 32)`` uint32 words (bit ``j`` of word ``w``:
    neuron ``32 w + j``; leading axes, e.g. steps, stay)."""
    bits = spikes.reshape(*spikes.shape[:-1], -1, _WORD).astype(jnp.uint32)
    bits = bits << jnp.broadcast_to(jnp.arange(_WORD, dtype=jnp.uint32), bits.shape)
    return jnp.sum(bits, axis=-1, dtype=jnp.uint32)  # distinct bits: the sum is their OR


def unpack_bits(words: jax.Array, n: int) -> jax.Array:
    """The first ``n`` spikes of :func:`pack_bits` words ``(..., W)``: ``(..., n)`` bool."""
    shape = (*words.shape, _WORD)
    bits = (jnp.broadcast_to(words[..., None], shape) >> jnp.broadcast_to(jnp.arange(_WORD, dtype=jnp.uint32), shape)) \
        & jnp.uint32(1)
    return bits.reshape(*words.shape[:-1], -1)[..., :n].astype(bool)


class AllGather(NamedTuple):
    """The exchange of a partitioned network (inside ``shard_map`` over mesh axis ``axis``)."""

    axis: str

    def offset(self, group: GroupProgram) -> jax.Array:
        return jax.lax.axis_index(self.axis) * group.size

    def draw_offset(self, group: GroupProgram) -> jax.Array:
        """This device's neurons start at ``offset`` of the group, in its draws as in its indices."""
        return self.offset(group)

    def own(self, group: GroupProgram, c: dict, spikes: jax.Array) -> jax.Array:
        """This device's spikes of its slice: padding masked."""
        return spikes & c["valid"]

    def gather(self, group: GroupProgram, mine: jax.Array) -> jax.Array:
        """The whole group's spikes from every device's ``(..., S)`` (leading axes: steps), packed into
        words, one ``all_gather``."""
        words = jax.lax.all_gather(pack_bits(mine), self.axis, axis=mine.ndim - 1, tiled=True)
        return unpack_bits(words, group.n)

    def poisson(self, key: jax.Array, lam: float, table: Any, group: GroupProgram, dtype: Any) -> jax.Array:
        if table is None:  # a rejection sampler: draw the whole group's counts, keep this slice
            counts = poisson_counts(key, lam, None, group.n, dtype)
            counts = jnp.pad(counts, (0, group.size * jax.lax.axis_size(self.axis) - group.n))
            return jax.lax.dynamic_slice(counts, (self.offset(group),), (group.size,))
        return counts_from_uniform(uniform_slice(key, self.offset(group), group.size, dtype), table)

    def most(self, x: jax.Array) -> jax.Array:
        return jax.lax.pmax(x, self.axis)

    def local(self, group: GroupProgram, value: jax.Array) -> jax.Array:
        """This device's part of a whole-group ``(n,)`` value (a scalar stays as it is)."""
        if jnp.ndim(value) == 0:
            return value
        full = jnp.pad(value, (0, group.size * jax.lax.axis_size(self.axis) - group.n))
        return jax.lax.dynamic_slice(full, (self.offset(group),), (group.size,))


def _cut(a: np.ndarray, lo: int, size: int, n: int, pad: str) -> np.ndarray:
    """``a[..., lo:lo + size]`` of an ``(..., n)`` array, padded past ``n`` with zeros or the last entry."""
    a = np.asarray(a)
    part = a[..., lo:min(lo + size, n)]
    missing = size - part.shape[-1]
    if missing:
        fill = a[..., n - 1 : n] if pad == "edge" and n else np.zeros((*a.shape[:-1], 1), a.dtype)
        part = np.concatenate([part, np.repeat(fill, missing, axis=-1)], axis=-1)
    return part


def _slice_size(n: int, devices: int) -> int:
    """Neurons per device: ``ceil(n / devices)`` rounded up to a whole exchanged word."""
    per = -(-n // devices)
    return max(_WORD, -(-per // _WORD) * _WORD)


def _localise(index: np.ndarray, lo: int, size: int) -> np.ndarray:
    """Global neuron indices as indices into the slice starting at ``lo`` (``size``: outside, dropped)."""
    index = np.asarray(index)
    inside = (index >= lo) & (index < lo + size)
    return np.where(inside, index - lo, size).astype(np.int32)


def cut_rows(targets: np.ndarray, n_post: int, size: int, devices: int, *columns: np.ndarray) -> list[tuple]:
    """Cut ELL rows ``targets`` ``(R, K)`` (increasing rows, padding ``n_post``) by target owner.

    Returns, per device ``p``, ``(targets_p, *columns_p)``: ``(R, K_p)`` arrays (the same ``K_p`` for all
    devices), ``targets_p`` local to the slice ``[p size, (p + 1) size)`` and padded with ``size``, each of
    ``columns`` (delays, weights: ``(R, K)``) moved with its synapse and padded with 0.
    """
    rows, width = targets.shape
    owner = np.where(targets < n_post, targets // size, devices)  # padding: owner "devices"
    flat_key = (np.arange(rows, dtype=np.int64)[:, None] * (devices + 1) + owner).reshape(-1)
    counts = np.bincount(flat_key, minlength=rows * (devices + 1)).reshape(rows, devices + 1)
    start = np.cumsum(counts, axis=1) - counts  # first column of each owner's run in the row (rows increase)
    k_p = max(1, int(counts[:, :devices].max())) if rows else 1
    col = np.arange(width, dtype=np.int64)[None, :] - np.take_along_axis(start, np.minimum(owner, devices), axis=1)
    out = []
    valid = owner < devices
    r_idx = np.broadcast_to(np.arange(rows)[:, None], targets.shape)
    for p in range(devices):
        sel = valid & (owner == p)
        r, c = r_idx[sel], col[sel]
        tp = np.full((rows, k_p), size, np.int32)
        tp[r, c] = targets[sel] - p * size
        parts = [tp]
        for extra in columns:
            xp = np.zeros((rows, k_p), extra.dtype)
            xp[r, c] = extra[sel]
            parts.append(xp)
        out.append(tuple(parts))
    return out


def join_rows(parts: list[np.ndarray], size: int, n_post: int, *columns: list[np.ndarray]) -> tuple:
    """Inverse of :func:`cut_rows`: the ``(R, K)`` global rows (``K`` the longest row) and columns."""
    rows = parts[0].shape[0]
    glob = np.concatenate([np.where(t < size, t + p * size, np.iinfo(np.int32).max) for p, t in enumerate(parts)], axis=1)
    order = np.argsort(glob == np.iinfo(np.int32).max, axis=1, kind="stable")  # valid first, in owner order
    counts = np.sum(glob != np.iinfo(np.int32).max, axis=1)
    width = max(1, int(counts.max())) if rows else 1
    order = order[:, :width]
    targets = np.take_along_axis(glob, order, axis=1)
    targets = np.where(targets == np.iinfo(np.int32).max, n_post, targets).astype(np.int32)
    out = [targets]
    for cols in columns:
        joined = np.concatenate(cols, axis=1)
        picked = np.take_along_axis(joined, order, axis=1)
        out.append(np.where(targets < n_post, picked, 0).astype(joined.dtype))
    return tuple(out)


class OwnedArrays(NamedTuple):
    """A projection drawn by its devices, each the synapses onto its own slice (:meth:`Partition.build_owned`)."""

    parts: list  # per device: ProjectionArrays (targets local to the slice, padding = slice size; int16/int32 delays)
    weights: list  # per device: (rows + 1, K_p) weights
    longest: int  # steps, over the whole projection (0 without synapses)
    shortest: int | None  # steps (None without synapses)
    width: int  # the whole projection's ELL width (its longest row over all devices)


def _placeholder(like: np.ndarray) -> np.ndarray:
    """An array of ``like``'s shape and dtype that takes no memory: the part of a device of another process,
    which this process never places."""
    return np.broadcast_to(np.zeros((), like.dtype), like.shape)


def host_step(state: Any) -> np.ndarray:
    """A state's step ``t`` on the host: this process's copy of a replicated one."""
    t = state.t
    return np.asarray(t.addressable_data(0) if hasattr(t, "addressable_data") else t)


def _device_part(x: jax.Array, p: int) -> np.ndarray:
    """Device ``p``'s part ``x[p]`` of a stacked array, from the shard this process holds."""
    for shard in x.addressable_shards:
        if (shard.index[0].start or 0) == p:
            return np.asarray(shard.data)[0]
    raise KeyError(p)


def _over_processes(value: Any, reduce: Any) -> np.ndarray:
    """``reduce(axis=0)`` of ``value`` (a host array or scalar) over every process (itself with one process)."""
    value = np.asarray(value)
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return reduce(np.asarray(multihost_utils.process_allgather(value)), axis=0)


class Partition:
    """How a built network is laid out over the devices of a one-axis mesh (see the module docstring).

    Made by ``Network.build(shard=...)``; :meth:`split` turns a single-device ``NetState`` into the
    devices' stacked one, :meth:`join` back (what ``Network.state``, ``save`` and ``restore`` use, so a
    checkpoint restores on any number of devices).
    """

    def __init__(self, mesh: Mesh, groups: dict, sources: dict) -> None:
        if len(mesh.axis_names) != 1:
            raise ConfigurationError(f"Network.build(shard=mesh): the mesh must have one axis, but has {mesh.axis_names}")
        self.mesh = mesh
        self.axis = mesh.axis_names[0]
        self.devices = int(mesh.shape[self.axis])
        # slice sizes: ceil(n / P), a multiple of the exchanged word
        self.size = {name: _slice_size(g.n, self.devices) for name, g in groups.items()}
        self.n = {name: g.n for name, g in groups.items()}
        self.sources = set(sources)
        self._stacked = NamedSharding(mesh, PartitionSpec(self.axis))
        self._replicated = NamedSharding(mesh, PartitionSpec())

    # ---------------------------------------------------------------- cost
    @property
    def exchange_bytes(self) -> int:
        """Bytes of spike words each device receives per step (all neuron groups, its own slice included)."""
        return sum(self.devices * s // 8 for s in self.size.values())

    # ---------------------------------------------------------------- owner-local draws
    def owns(self, proj: Projection) -> bool:
        """Whether ``proj`` is drawn by its devices, each the synapses onto its own slice: an event-path
        projection of a rule drawn by target tiles (:attr:`Projection.by_targets`); others are drawn whole
        on each process and cut (:meth:`prepare`)."""
        return proj.by_targets and event_path(proj)

    def build_owned(self, proj: Projection, key: jax.Array, dt: float, dtype: Any, receptor: int) -> tuple:
        """Draw ``proj`` on this process for its own devices only, each the synapses onto its slice (from
        the target tiles of the projection's key, so they are the single-device build's): returns ``(spec,
        OwnedArrays, None, synapse count)``, the spec's arrays whole-network (``n_post`` the group's)."""
        name, n = proj.post.name, proj.post.n
        size = self.size[name]
        plans = {p: proj.plan(key, dt, owner=(min(p * size, n), min((p + 1) * size, n))) for p in self._local}
        width = int(_over_processes(max(plan.rows.width for plan in plans.values()), np.max))
        # rows' lengths summed over the devices (int32 per process: JAX without x64 gathers no int64)
        counts = _over_processes(sum(plan.rows.counts for plan in plans.values()).astype(np.int32), np.sum)
        written = {p: proj.write(plan, dt, dtype, width=width, offset=p * size, pad=size) for p, plan in plans.items()}
        m = int(counts.sum(dtype=np.int64))
        longest = float(_over_processes(max(w[3].longest for w in written.values()), np.max))
        parts, weights = [None] * self.devices, [None] * self.devices
        for p, (targets, w, d, _) in written.items():
            parts[p] = ProjectionArrays(targets, narrow_delays(d, longest / dt if m else 0.0))
            weights[p] = w
        like = next(iter(written))
        for p in range(self.devices):  # another process's devices
            if parts[p] is None:
                parts[p] = ProjectionArrays(*(_placeholder(np.asarray(a)) for a in parts[like][:2]))
                weights[p] = _placeholder(weights[like])
        spec = event_spec(proj, receptor, parts[like].targets.shape[0] - 1, written[like][3].first)
        local = spec._replace(n_post=size)  # a device's spec: targets local to its slice
        shortest = [local.shortest_delay(parts[p], written[p][3].count) for p in self._local]
        lo = min((d for d in shortest if d is not None), default=np.iinfo(np.int32).max)
        hi = max(local.longest_delay(parts[p], written[p][3].count) for p in self._local)
        lo, hi = int(_over_processes(lo, np.min)), int(_over_processes(hi, np.max))
        owned = OwnedArrays(parts, weights, hi if m else 0, lo if m else None, max(1, int(counts.max())) if counts.size else 1)
        return spec, owned, None, m

    @property
    def _local(self) -> list[int]:
        """This process's devices, as indices along the mesh axis."""
        devices = list(self.mesh.devices.flat)
        return [p for p, dev in enumerate(devices) if dev.process_index == jax.process_index()]

    # ---------------------------------------------------------------- placement
    def _stack(self, parts: list) -> Any:
        """Per-device pytrees (identical structure) as one pytree of arrays with a leading device axis,
        each process building only the slices of its own devices."""
        leaves = [jax.tree_util.tree_leaves(p) for p in parts]
        treedef = jax.tree_util.tree_structure(parts[0])
        out = []
        for i in range(len(leaves[0])):
            pieces = [np.asarray(leaves[p][i]) for p in range(self.devices)]
            shape = (self.devices, *pieces[0].shape)
            out.append(jax.make_array_from_callback(
                shape, self._stacked, lambda index, pieces=pieces: pieces[index[0].start or 0][None]))
        return jax.tree_util.tree_unflatten(treedef, out)

    def _unstack(self, tree: Any) -> list:
        """The per-device pieces of a stacked pytree, on this host (gathered from every process)."""
        def host(x):
            if x.is_fully_addressable:
                return np.asarray(x)
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))

        leaves = [host(x) for x in jax.tree_util.tree_leaves(tree)]
        treedef = jax.tree_util.tree_structure(tree)
        return [jax.tree_util.tree_unflatten(treedef, [x[p] for x in leaves]) for p in range(self.devices)]

    def replicate(self, x: Any) -> Any:
        return jax.tree_util.tree_map(lambda a: jax.make_array_from_callback(
            np.shape(a), self._replicated, lambda index, a=np.asarray(a): a[index]), x)

    # ---------------------------------------------------------------- consts
    def _group_consts(self, name: str, c: dict, p: int) -> dict:
        n, size = self.n[name], self.size[name]
        lo = p * size
        out = dict(
            psc=_cut(c["psc"], lo, size, n, "zero"),
            i_const=_cut(c["i_const"], lo, size, n, "zero"),
            r_m=_cut(c["r_m"], lo, size, n, "edge"),
            arrays=tuple(None if a is None else (a if idx is not None else _cut(a, lo, size, n, "zero"))
                         for a, idx in zip(c["arrays"], c["index"])),
            index=tuple(None if idx is None else _localise(idx, lo, size) for idx in c["index"]),
            poisson_index=tuple(None if idx is None else _localise(idx, lo, size) for idx in c["poisson_index"]),
            poisson_table=c["poisson_table"],
            valid=np.arange(lo, lo + size) < n,
        )
        return out

    def _stepper(self, name: str, stepper: Any, p: int) -> Any:
        n, size = self.n[name], self.size[name]
        return jax.tree_util.tree_map(lambda a: _cut(a, p * size, size, n, "edge") if np.ndim(a) else np.asarray(a), stepper)

    def consts(self, program: Program, consts: dict, steppers: dict, specs: dict) -> tuple[Program, dict, dict]:
        """The devices' stacked constants, the device program (local event capacities, ``AllGather``) and
        the local projection specs."""
        local_specs = {name: spec._replace(n_post=self.size[spec.post]) for name, spec in specs.items()}
        probes, self._probe_layout = [], {}
        probe_index: dict = {name: [{} for _ in range(self.devices)] for name in consts["groups"] if name not in self.sources}
        for probe in program.probes:
            if not isinstance(probe, StateProbe):
                probes.append(probe)
                continue
            size = self.size[probe.group]
            index = np.arange(self.n[probe.group]) if probe.index is None else np.asarray(probe.index)
            owner, slot = index // size, index % size
            width = max(1, int(np.bincount(owner, minlength=self.devices).max()))
            place = np.zeros(index.size, np.int64)
            for p in range(self.devices):
                mine = np.flatnonzero(owner == p)
                place[mine] = np.arange(mine.size)
                local = np.zeros(width, np.int32)
                local[: mine.size] = slot[mine]
                probe_index[probe.group][p][probe.name] = local
            self._probe_layout[probe.name] = (owner, place)
            probes.append(SlicedStateProbe(probe.name, probe.group, probe.variables, probe.receptors, width))
        parts = []
        for p in range(self.devices):
            groups = {}
            for name, c in consts["groups"].items():
                groups[name] = c if name in self.sources else dict(self._group_consts(name, c, p), probes=probe_index[name][p])
            projections = {name: self._projection_arrays(spec, p) for name, spec in specs.items()}
            parts.append(dict(groups=groups, projections=projections,
                              steppers={name: self._stepper(name, s, p) for name, s in steppers.items()}))
        groups = tuple(g._replace(size=self.size[g.name]) for g in program.groups)
        device_program = program._replace(groups=groups, probes=tuple(probes),
                                          exchange=AllGather(self.axis)).replace_projections(local_specs)
        stacked = self._stack([dict(groups=pt["groups"], projections=pt["projections"]) for pt in parts])
        stacked["steppers"] = self._stack([pt["steppers"] for pt in parts])
        self._on_devices = stacked["projections"]  # the whole is gathered from them on demand
        self._cuts = None
        return device_program, stacked, local_specs

    def _projection_arrays(self, spec: Any, p: int) -> ProjectionArrays:
        """Device ``p``'s constant arrays of a projection (a dense one delivers from its weights alone)."""
        if isinstance(spec, EventProjection):
            targets, delays = self._cuts[spec.name][p]
            return ProjectionArrays(targets, delays, None)
        return ProjectionArrays(None, None, None)

    def _device_targets(self, name: str) -> list[np.ndarray]:
        """Every device's targets of an event projection, on this host (gathered from every process)."""
        return [a.targets for a in self._unstack(self._on_devices[name])]

    # ---------------------------------------------------------------- state
    def prepare(self, specs: dict, arrays: dict) -> None:
        """Cut every event projection's targets and delays once (host), for :meth:`consts` and the
        weights' cuts of :meth:`split`; a dense projection's arrays (small) are kept whole for synapse lists."""
        self._cuts, self._specs, self._arrays = {}, specs, {}
        for name, spec in specs.items():
            if isinstance(arrays[name], OwnedArrays):  # drawn by the devices: their parts as they are
                self._cuts[name] = [(a.targets, a.delays) for a in arrays[name].parts]
            elif isinstance(spec, EventProjection):
                tg, dl = np.asarray(arrays[name].targets), np.asarray(arrays[name].delays)
                self._cuts[name] = cut_rows(tg, spec.n_post, self.size[spec.post], self.devices, dl)
            else:
                self._arrays[name] = arrays[name]

    def global_targets(self, name: str) -> np.ndarray:
        spec = self._specs[name]
        return join_rows(self._device_targets(name), self.size[spec.post], spec.n_post)[0]

    def global_arrays(self, name: str) -> ProjectionArrays:
        """The single-device :class:`ProjectionArrays` of a projection (host)."""
        spec = self._specs[name]
        if not isinstance(spec, EventProjection):
            return self._arrays[name]
        parts = self._unstack(self._on_devices[name])
        tg, dl = join_rows([a.targets for a in parts], self.size[spec.post], spec.n_post, [a.delays for a in parts])
        return ProjectionArrays(tg, dl, None)

    def split(self, state: Any, owned: dict | None = None) -> Any:
        """A single-device ``NetState`` as the devices' stacked one (``t`` replicated); ``owned``: the
        devices' weights of projections drawn by them (:meth:`build_owned`), in place of the state's."""
        cut_weights = dict(owned or {})
        for name, w in state.weights.items():
            spec, size = self._specs[name], self.size[self._specs[name].post]
            if name in cut_weights:
                continue
            if isinstance(spec, EventProjection):
                cuts = cut_rows(self.global_targets(name), spec.n_post, size, self.devices, np.asarray(w))
                cut_weights[name] = [c[1] for c in cuts]
            else:
                cut_weights[name] = [_cut(w, p * size, size, spec.n_post, "zero") for p in range(self.devices)]
        parts = []
        for p in range(self.devices):
            neurons, syn, ring, count = {}, {}, {}, {}
            for name in state.count:
                if name in self.sources:
                    count[name] = np.asarray(state.count[name])
                    continue
                n, size = self.n[name], self.size[name]
                lo = p * size
                neurons[name] = jax.tree_util.tree_map(lambda a: _cut(a, lo, size, n, "edge") if np.ndim(a) else np.asarray(a),
                                                       state.neurons[name])
                syn[name] = _cut(state.syn[name], lo, size, n, "zero")
                ring[name] = _cut(state.ring[name], lo, size, n, "zero")
                count[name] = _cut(state.count[name], lo, size, n, "zero")
            weights = {name: cuts[p] for name, cuts in cut_weights.items()}
            traces = {}  # STDP: the presynaptic trace whole (every device updates it alike), the postsynaptic cut
            for name, tr in state.traces.items():
                post = self._specs[name].post
                traces[name] = tr._replace(pre=np.asarray(tr.pre),
                                           post=_cut(tr.post, p * self.size[post], self.size[post], self.n[post], "zero"))
            parts.append(dict(neurons=neurons, syn=syn, ring=ring, weights=weights, traces=traces, count=count))
        stacked = self._stack(parts)
        return type(state)(t=self.replicate(np.asarray(state.t)), **stacked)

    def _join_weights(self, name: str, parts: list, targets: list | None = None, size: dict | None = None) -> np.ndarray:
        """A projection's weights as one device holds them, from the devices' ``parts`` (laid out as this
        partition's, or as ``targets`` and group slice ``size`` say: a checkpoint of another device count)."""
        spec, size = self._specs[name], self.size if size is None else size
        if isinstance(spec, EventProjection):
            targets = self._device_targets(name) if targets is None else targets
            return join_rows(targets, size[spec.post], spec.n_post, parts)[1]
        return np.concatenate(parts, axis=-1)[..., : spec.n_post]

    def weights(self, state: Any, name: str) -> np.ndarray:
        """:meth:`join`'s weights of one projection, gathering that projection's weights only."""
        return self._join_weights(name, self._unstack(state.weights[name]))

    def count(self, state: Any, name: str) -> np.ndarray:
        """:meth:`join`'s spike counts of one group, gathering that group's counts only."""
        parts = self._unstack(state.count[name])
        return parts[0] if name in self.sources else np.concatenate(parts)[: self.n[name]]

    @staticmethod
    def _pieces_of(state: Any) -> dict:
        return dict(neurons=state.neurons, syn=state.syn, ring=state.ring, weights=state.weights, traces=state.traces,
                    count=state.count)

    def join(self, state: Any) -> Any:
        """The devices' stacked ``NetState`` as the single-device one (host arrays)."""
        return self._join(self._unstack(self._pieces_of(state)), host_step(state), type(state))

    def _join(self, pieces: list, t: np.ndarray, cls: Any, targets: dict | None = None, size: dict | None = None) -> Any:
        """The single-device state of the devices' ``pieces`` (laid out as this partition's, or as a
        checkpoint's ``targets`` and slice ``size`` of another device count)."""
        size = self.size if size is None else size
        neurons, syn, ring, count, weights = {}, {}, {}, {}, {}

        def whole(name, leaves):
            return np.concatenate(leaves, axis=-1)[..., : self.n[name]]

        for name in pieces[0]["count"]:
            if name in self.sources:
                count[name] = pieces[0]["count"][name]
                continue
            neurons[name] = jax.tree_util.tree_map(
                lambda *xs, name=name: whole(name, xs) if np.ndim(xs[0]) else xs[0], *[pc["neurons"][name] for pc in pieces])
            syn[name] = whole(name, [pc["syn"][name] for pc in pieces])
            ring[name] = whole(name, [pc["ring"][name] for pc in pieces])
            count[name] = whole(name, [pc["count"][name] for pc in pieces])
        for name in self._specs:
            weights[name] = self._join_weights(name, [pc["weights"][name] for pc in pieces],
                                               None if targets is None else targets.get(name), size)
        traces = {}
        for name, tr in pieces[0]["traces"].items():
            post = self._specs[name].post
            traces[name] = tr._replace(post=whole(post, [pc["traces"][name].post for pc in pieces]))
        as_jax = lambda tree: jax.tree_util.tree_map(jnp.asarray, tree)  # noqa: E731
        return cls(t=jnp.asarray(t), neurons=as_jax(neurons), syn=as_jax(syn), ring=as_jax(ring),
                   weights=as_jax(weights), traces=as_jax(traces), count=as_jax(count))

    # ---------------------------------------------------------------- checkpoints, per shard
    def save_shards(self, state: Any, folder: str) -> None:
        """Write each of this process's devices' part of ``state`` to ``folder/shard-<p>.npz`` (with its
        event projections' targets, so that another device count can join them), and, from process 0,
        ``folder/layout.json``: nothing is gathered."""
        import json
        import os

        os.makedirs(folder, exist_ok=True)
        leaves = jax.tree_util.tree_leaves(self._pieces_of(state))
        targets = {name: self._on_devices[name].targets for name, spec in self._specs.items()
                   if isinstance(spec, EventProjection)}
        for p in self._local:
            data = {f"leaf{i}": _device_part(x, p) for i, x in enumerate(leaves)}
            data.update({f"targets:{name}": _device_part(x, p) for name, x in targets.items()})
            np.savez(os.path.join(folder, f"shard-{p}.npz"), **data)
        if jax.process_index() == 0:
            layout = dict(format="qsn-network-shards", version=1, devices=self.devices, size=self.size,
                          leaves=len(leaves), t=int(host_step(state)))
            with open(os.path.join(folder, "layout.json"), "w") as f:
                json.dump(layout, f)

    def load_shards(self, folder: str, template: Any) -> tuple[Any, bool]:
        """The state of a :meth:`save_shards` checkpoint in ``folder`` and whether it is whole. Saved on as
        many devices with the same slices: the devices' stacked state, each process reading its own
        devices' shards only. Else every process reads every shard and joins them (their targets say
        where each weight belongs) into the single-device state (``template``'s structure), for
        ``Network.restore`` to check and cut for this partition."""
        import json
        import os

        from qsn.errors import InvalidStateError

        try:
            with open(os.path.join(folder, "layout.json")) as f:
                layout = json.load(f)
        except (OSError, ValueError) as err:
            raise InvalidStateError(f"Network.load: {folder!r} has no readable layout.json ({err})") from None
        if not isinstance(layout, dict) or layout.get("format") != "qsn-network-shards":
            raise InvalidStateError(f"Network.load: {folder!r} is not a folder written by Network.save(shards=True)")
        stacked = self._pieces_of(template)
        treedef = jax.tree_util.tree_structure(stacked)
        if layout["leaves"] != treedef.num_leaves:
            raise InvalidStateError(
                f"Network.load: {folder!r} holds {layout['leaves']} arrays per shard, this network's state has {treedef.num_leaves}")

        def read(p: int) -> Any:
            name = os.path.join(folder, f"shard-{p}.npz")
            try:
                with np.load(name, allow_pickle=False) as data:
                    leaves = [data[f"leaf{i}"] for i in range(treedef.num_leaves)]
                    targets = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("targets:")}
            except Exception as err:  # noqa: BLE001  (missing, truncated or foreign: OSError, zipfile, KeyError)
                raise InvalidStateError(f"Network.load: shard {p} of {folder!r} ({name}) is missing or damaged: {err}") from None
            return jax.tree_util.tree_unflatten(treedef, leaves), targets

        t = np.asarray(layout["t"], np.int32)
        if layout["devices"] == self.devices and layout["size"] == self.size:
            parts = {p: read(p)[0] for p in self._local}
            like = parts[next(iter(parts))]
            pieces = [parts.get(p, jax.tree_util.tree_map(_placeholder, like)) for p in range(self.devices)]
            for got, want in zip(jax.tree_util.tree_leaves(like), jax.tree_util.tree_leaves(stacked)):
                if got.shape != want.shape[1:] or got.dtype != want.dtype:
                    raise InvalidStateError(f"Network.load: {folder!r} does not match this network's groups, projections and dtype")
            return type(template)(t=self.replicate(t), **self._stack(pieces)), False
        shards = [read(p) for p in range(layout["devices"])]
        targets = {name: [s[1][name] for s in shards] for name in shards[0][1]}
        return self._join([s[0] for s in shards], t, type(template), targets, layout["size"]), True

    # ---------------------------------------------------------------- run
    def compile(self, program: Program, length: int) -> Any:
        """``length`` steps of ``program`` on every device: ``fn(consts, state, key) -> (state, records,
        norms, busy)``, records, norms and busy replicated."""
        axis = self.axis
        spec, rep = PartitionSpec(axis), PartitionSpec()

        def local(consts, state, key):
            squeeze = lambda tree: jax.tree_util.tree_map(lambda a: a[0], tree)  # noqa: E731
            st = state._replace(neurons=squeeze(state.neurons), syn=squeeze(state.syn), ring=squeeze(state.ring),
                                weights=squeeze(state.weights), traces=squeeze(state.traces), count=squeeze(state.count))
            st, records, norms, busy = net_steps(program, squeeze(consts), st, key, length=length)
            expand = lambda tree: jax.tree_util.tree_map(lambda a: a[None], tree)  # noqa: E731
            st = st._replace(neurons=expand(st.neurons), syn=expand(st.syn), ring=expand(st.ring),
                             weights=expand(st.weights), traces=expand(st.traces), count=expand(st.count))
            records = {k: expand(v) if k in sliced else v for k, v in records.items()}
            return st, records, norms, busy

        sliced = {p.name for p in program.probes if isinstance(p, SlicedStateProbe)}
        record_spec = {p.name: spec if p.name in sliced else rep for p in program.probes}

        from qsn.networks.network import NetState

        state_spec = NetState(t=rep, neurons=spec, syn=spec, ring=spec, weights=spec, traces=spec, count=spec)
        fn = jax.shard_map(local, mesh=self.mesh, in_specs=(spec, state_spec, rep),
                           out_specs=(state_spec, record_spec, rep, rep), check_vma=False)
        return jax.jit(fn)

    def key(self, key: jax.Array) -> jax.Array:
        """The run key as an array replicated over the mesh (every process passes the same key)."""
        return jax.random.wrap_key_data(self.replicate(np.asarray(jax.random.key_data(key))), impl=jax.random.key_impl(key))

    def check_finite(self, state: Any, step: int) -> None:
        """Raise ``NumericalInstabilityError`` naming the group, field and (whole-group) neuron of the first
        non-finite value in this process's slices (as the single-device check does)."""
        from qsn.runtime import check_finite

        for name, s in state.neurons.items():
            for fields, owner in ((s._asdict(), f"Group {name!r}: state field"), ({"receptors": state.syn[name]}, f"Group {name!r}:")):
                for field, arr in fields.items():
                    for shard in sorted(arr.addressable_shards, key=lambda sh: sh.index[0].start or 0):
                        first = (shard.index[0].start or 0) * self.size[name]
                        check_finite({field: np.asarray(shard.data)[0]}, step, owner, first_neuron=first)

    def host(self, records: dict, norms: dict, busy: dict) -> tuple[dict, dict, dict]:
        """A chunk's outputs as host arrays: replicated ones from this process's copy; a state monitor's
        ``(devices, steps, width)`` records gathered and put back in the monitor's neuron order."""
        copy = lambda tree: jax.tree_util.tree_map(lambda a: np.asarray(a.addressable_data(0)), tree)  # noqa: E731
        out = {}
        for name, data in records.items():
            if name not in self._probe_layout:
                out[name] = copy(data)
                continue
            owner, place = self._probe_layout[name]
            whole = self._unstack(data)  # per device {variable: (steps, width)}
            out[name] = {var: np.stack([whole[p][var][:, q] for p, q in zip(owner, place)], axis=1)
                         for var in data}
        return out, copy(norms), copy(busy)


def mesh_of(shard: Any) -> Mesh:
    """The one-axis mesh of ``Network.build(shard=...)``: ``True`` -> every device of ``jax.devices()``."""
    if isinstance(shard, Mesh):
        return shard
    if shard is True:
        return Mesh(np.array(jax.devices()), ("neurons",))
    if isinstance(shard, int) and not isinstance(shard, bool) and 1 <= shard <= len(jax.devices()):
        return Mesh(np.array(jax.devices()[:shard]), ("neurons",))
    raise ConfigurationError(
        f"Network.build: shard must be False, True (all {len(jax.devices())} devices), a device count in "
        f"1..{len(jax.devices())} or a one-axis jax.sharding.Mesh, but is {shard!r}")


