"""The network program: what a built :class:`~qsn.networks.Network` runs, and its one pure step.

Building a network produces a :class:`Program` — static, hashable pieces that each know their
behaviour — and the arrays it reads (``consts``) and changes (:class:`~qsn.networks.NetState`):

* :class:`GroupProgram` — a neuron group's step: its receptor kinetics (each a
  :class:`~qsn.networks.Delta`, :class:`~qsn.networks.PscExp` or :class:`~qsn.networks.CondExp`
  that knows how its variable enters the neuron step and decays), its external currents and its
  :class:`PoissonDrive` inputs;
* :class:`PoissonSource`, :class:`ArraySource` — spike sources that *emit* each step;
* :class:`~qsn.networks.projection.EventProjection`, :class:`~qsn.networks.projection.DenseProjection`
  — projections that *deliver* spikes into their target's ring buffer;
* :class:`~qsn.networks.monitors.SpikeProbe`, ``RateProbe``, ``StateProbe`` — what the monitors *record*;
* an *exchange* — how the spikes of a step reach every part of the network: :class:`Local` on one
  device, :class:`~qsn.networks.partition.AllGather` when every device owns a slice of each group.

:func:`net_step` is the step of the schedule in :mod:`qsn.networks.network`, shared by every
executor: the single-device run, the partitioned run inside ``shard_map`` and ``Network.rollout``.
:func:`net_steps` scans it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from qsn.networks.inputs import poisson_counts
from qsn.networks.monitors import StepView
from qsn.networks.synapse import Drive, Kinetics, cond_current

__all__ = ["Program", "GroupProgram", "PoissonDrive", "PoissonSource", "ArraySource", "Local", "net_step", "net_steps",
           "stream_key"]


def stream_key(key: jax.Array, stream: int, t: jax.Array) -> jax.Array:
    """The key a random stream draws from at step ``t``: ``fold_in(fold_in(key, stream), t)``."""
    return jax.random.fold_in(jax.random.fold_in(key, stream), t)


class PoissonDrive(NamedTuple):
    """A :class:`~qsn.networks.PoissonInput` into a receptor: ``weight`` times Poisson(``lam``) counts per
    step, for every neuron of the group or for those of ``consts["poisson_index"]``."""

    receptor: int
    lam: float  # mean count per neuron and step
    weight: float
    stream: int

    def counts(self, exchange: Any, group: "GroupProgram", key: jax.Array, t: jax.Array, table: Any, index: Any,
               dtype: Any) -> jax.Array:
        """This step's counts: ``(size,)`` for the whole group, else one per indexed neuron."""
        k = stream_key(key, self.stream, t)
        if index is None:
            return exchange.poisson(k, self.lam, table, group, dtype)
        return poisson_counts(k, self.lam, table, index.shape[0], dtype)


class GroupProgram(NamedTuple):
    """Static description of a neuron group's step (hashable)."""

    name: str
    receptors: tuple[Kinetics, ...]
    decays: tuple[float, ...]  # per-step decay per receptor
    stream: int  # random-stream index of the group's quantum noise
    currents: tuple  # per non-constant CurrentInput: its CallableCurrent, or None for a (T, k) array in consts
    poisson: tuple[PoissonDrive, ...]
    n: int  # neurons in the group
    size: int  # neurons stepped by this program (n; a partitioned device: its padded slice)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Kinetics name per receptor (``"delta"``, ``"psc_exp"``, ``"cond_exp"``; what native kernels switch on)."""
        return tuple(k.kind for k in self.receptors)

    def step(self, c: dict, stepper: Any, exchange: Any, neuron: Any, syn: jax.Array, ring: jax.Array, key: jax.Array,
             t: jax.Array) -> tuple[Any, jax.Array, jax.Array, jax.Array, Any]:
        """Arrivals, the neuron step, receptor decay: ``(state, spikes, syn, ring, drive a)``."""
        # 1. arrivals: the ring slot of this step, then the Poisson counts
        depth = ring.shape[1]
        slot = t % depth
        x = syn + ring[:, slot, :]
        ring = ring.at[:, slot, :].set(0)
        for drive, idx, table in zip(self.poisson, c["poisson_index"], c["poisson_table"]):
            n_in = drive.counts(exchange, self, key, t, table, idx, x.dtype)
            r, w = drive.receptor, drive.weight
            x = x.at[r].add(w * n_in) if idx is None else x.at[r, idx].add(w * n_in, mode="drop")
        # 2. the neuron step with the receptors' equivalent current
        current = c["i_const"]
        for cur, arr, idx in zip(self.currents, c["arrays"], c["index"]):
            if cur is not None:
                value = cur.at(t, None)
                value = exchange.local(self, value) if idx is None else value
            else:
                value = arr[jnp.minimum(t, arr.shape[0] - 1)]
            current = current + value if idx is None else current.at[idx].add(value, mode="drop")
        drive = Drive(v=neuron.v, current=current)
        for r, kinetics in enumerate(self.receptors):
            drive = kinetics.enter(drive, x[r], c["psc"][r])
        neuron = neuron._replace(v=drive.v)
        current = drive.current
        if drive.g is not None:
            sc = stepper.constants
            current = cond_current(drive.v, drive.g, drive.g_e, c["r_m"] * current, sc.v_rest, sc.decay, sc.gain)
        group_key = jax.random.fold_in(key, self.stream) if stepper.needs_key else None
        neuron, spikes, a = stepper(neuron, current, group_key, offset=exchange.draw_offset(self))
        # 3. receptor decay (Delta: nothing persists)
        syn = x * jnp.asarray(self.decays, x.dtype)[:, None]
        return neuron, spikes, syn, ring, a


class PoissonSource(NamedTuple):
    """A :class:`~qsn.networks.PoissonGroup`: each neuron spikes with probability ``consts["p"]`` per step."""

    name: str
    stream: int

    def emit(self, c: dict, key: jax.Array, t: jax.Array) -> jax.Array:
        return jax.random.uniform(stream_key(key, self.stream, t), c["p"].shape, c["p"].dtype) < c["p"]


class ArraySource(NamedTuple):
    """A :class:`~qsn.networks.SpikeSourceArray`: its spikes sorted by step in ``consts["steps"]``/``["idx"]``
    (padded at build), at most ``width`` in one step."""

    name: str
    width: int
    n: int

    def emit(self, c: dict, key: jax.Array, t: jax.Array) -> jax.Array:
        lo = jnp.searchsorted(c["steps"], t)
        idx = jax.lax.dynamic_slice(c["idx"], (lo,), (self.width,))
        hit = jax.lax.dynamic_slice(c["steps"], (lo,), (self.width,)) == t
        return jnp.zeros((self.n,), bool).at[jnp.where(hit, idx, self.n)].set(True, mode="drop")


class Local(NamedTuple):
    """The exchange of a network on one device: every group's spikes are already whole."""

    def spikes(self, group: GroupProgram, c: dict, spikes: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(this device's spikes, the whole group's spikes)`` of a step."""
        return spikes, spikes

    def poisson(self, key: jax.Array, lam: float, table: Any, group: GroupProgram, dtype: Any) -> jax.Array:
        """Poisson counts for the neurons this program steps."""
        return poisson_counts(key, lam, table, group.size, dtype)

    def most(self, x: jax.Array) -> jax.Array:
        """The largest ``x`` over the network's parts."""
        return x

    def local(self, group: GroupProgram, value: jax.Array) -> jax.Array:
        """This part's share of a whole-group ``(n,)`` value: all of it."""
        return value

    def draw_offset(self, group: GroupProgram) -> None:
        """Where this part's neurons start in the group's random draws (None: they are the whole group)."""
        return None


class Program(NamedTuple):
    """A built network, static (see the module docstring)."""

    groups: tuple[GroupProgram, ...]
    sources: tuple  # PoissonSource | ArraySource
    projections: tuple  # EventProjection | DenseProjection
    probes: tuple  # SpikeProbe | RateProbe | StateProbe
    dt: float
    exchange: Any = Local()

    def replace_projections(self, projections: dict) -> "Program":
        """The program with the projections of the same names replaced (new event capacities)."""
        return self._replace(projections=tuple(projections.get(p.name, p) for p in self.projections))


def net_step(program: Program, consts: dict, state: Any, key: jax.Array) -> tuple[Any, dict, dict, dict]:
    """One step of ``program`` from ``state`` (a :class:`~qsn.networks.NetState`).

    Args:
        program: the static :class:`Program`.
        consts: ``{"groups": {name: arrays}, "projections": {name: ProjectionArrays}, "steppers": {name: Stepper}}``.
        state: the :class:`~qsn.networks.NetState` before step ``state.t``.
        key: the network's run key (each stream folds its own key and the step from it).

    Returns:
        ``(state, records, norms, busy)``: the state after the step, ``{monitor: record}``, the largest
        drive norm of each mixed-mode group whose propagator plan must cover it, and the spiking rows each
        event projection gathered (checked against its capacity by the caller).
    """
    t, ex = state.t, program.exchange
    gconsts, parrays, steppers = consts["groups"], consts["projections"], consts["steppers"]
    syn, ring, neurons, count = dict(state.syn), dict(state.ring), dict(state.neurons), dict(state.count)
    spikes, mine, norms = {}, {}, {}  # spikes: whole groups; mine: this part's neurons
    for g in program.groups:
        stepper = steppers[g.name]
        neurons[g.name], spk, syn[g.name], ring[g.name], a = g.step(
            gconsts[g.name], stepper, ex, neurons[g.name], syn[g.name], ring[g.name], key, t)
        if stepper.tracks_drive:
            norms[g.name] = ex.most(stepper.drive_norm(a))
        mine[g.name], spikes[g.name] = ex.spikes(g, gconsts[g.name], spk)
        count[g.name] = count[g.name] + mine[g.name].astype(jnp.int32)
    for src in program.sources:
        spikes[src.name] = src.emit(gconsts[src.name], key, t)
        count[src.name] = count[src.name] + spikes[src.name].astype(jnp.int32)
    # 4. propagation, 5. plasticity
    weights, traces, busy = dict(state.weights), dict(state.traces), {}
    for p in program.projections:
        rows = p.busy(spikes[p.pre])
        if rows is not None:
            busy[p.name] = rows
        ring[p.post] = p.deliver(parrays[p.name], weights[p.name], spikes[p.pre], ring[p.post], t)
        if p.plasticity is not None:
            traces[p.name], weights[p.name] = p.plasticity.update(
                traces[p.name], weights[p.name], parrays[p.name].targets, spikes[p.pre], mine[p.post], program.dt)
    new = state._replace(t=t + 1, neurons=neurons, syn=syn, ring=ring, weights=weights, traces=traces, count=count)
    # 6. monitors
    view = StepView(spikes, neurons, syn, gconsts)
    records = {probe.name: probe.record(view) for probe in program.probes}
    return new, records, norms, busy


def net_steps(program: Program, consts: dict, state: Any, key: jax.Array, *, length: int, remat: bool = False,
              unroll: int = 1) -> tuple[Any, dict, dict, dict]:
    """``length`` steps of :func:`net_step` in one ``lax.scan``: ``(state, records with the step axis first,
    largest drive norm per mixed-mode group, most spiking rows per event projection)``."""

    def one(carry, _):
        st, most_norm, most_busy = carry
        st, records, norms, busy = net_step(program, consts, st, key)
        most_norm = {k: jnp.maximum(v, norms[k]) for k, v in most_norm.items()}
        most_busy = {k: jnp.maximum(v, busy[k]) for k, v in most_busy.items()}
        return (st, most_norm, most_busy), records

    norms0 = {g.name: jnp.zeros((), state.neurons[g.name].v.dtype) for g in program.groups
              if consts["steppers"][g.name].tracks_drive}
    busy0 = {p.name: jnp.zeros((), jnp.int32) for p in program.projections if p.path == "event"}
    body = jax.checkpoint(one, prevent_cse=False) if remat else one
    (state, norms, busy), records = jax.lax.scan(body, (state, norms0, busy0), None, length=length, unroll=unroll)
    return state, records, norms, busy
