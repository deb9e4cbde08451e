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
           "exchange_interval",
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

    def own(self, group: GroupProgram, c: dict, spikes: jax.Array) -> jax.Array:
        """The spikes of the neurons this part steps (all of them)."""
        return spikes

    def gather(self, group: GroupProgram, mine: jax.Array) -> jax.Array:
        """The whole group's spikes ``(..., n)`` from this part's (leading axes: steps): the same."""
        return mine

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
    # steps between spike exchanges: a spike of step t acts from step t + 1 + (shortest delay) on, so
    # parts can step that many steps on their own and then exchange them together (1: every step)
    exchange_every: int = 1

    def replace_projections(self, projections: dict) -> "Program":
        """The program with the projections of the same names replaced (new event capacities)."""
        return self._replace(projections=tuple(projections.get(p.name, p) for p in self.projections))


def exchange_interval(specs: dict, shortest: dict) -> int:
    """:attr:`Program.exchange_every` of a network's projections: the shortest delay (steps) of any
    synapse plus one (``shortest``: each projection's, None without synapses), or 1 when a projection is
    plastic (no projection: every step is as good)."""
    if any(spec.plasticity is not None for spec in specs.values()):
        return 1
    shortest = [d for d in shortest.values() if d is not None]
    return 1 + min(shortest) if shortest else 1


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
    state, mine, norms, own_records = _neuron_phase(program, consts, state, key)
    spikes = {g.name: ex.gather(g, mine[g.name]) for g in program.groups}
    state, records, busy = _delivery_phase(program, consts, state, key, t, spikes, mine)
    return state, {**own_records, **records}, norms, busy


def _neuron_phase(program: Program, consts: dict, state: Any, key: jax.Array) -> tuple[Any, dict, dict, dict]:
    """Steps 1-3 of every neuron group (arrivals, the neuron step, receptor decay) and the monitors of
    neuron states: ``(state at t + 1, this part's spikes per group, drive norms, state records)``."""
    t, ex = state.t, program.exchange
    gconsts, steppers = consts["groups"], consts["steppers"]
    syn, ring, neurons, count = dict(state.syn), dict(state.ring), dict(state.neurons), dict(state.count)
    mine, norms = {}, {}
    for g in program.groups:
        stepper = steppers[g.name]
        neurons[g.name], spk, syn[g.name], ring[g.name], a = g.step(
            gconsts[g.name], stepper, ex, neurons[g.name], syn[g.name], ring[g.name], key, t)
        if stepper.tracks_drive:
            norms[g.name] = ex.most(stepper.drive_norm(a))
        mine[g.name] = ex.own(g, gconsts[g.name], spk)
        count[g.name] = count[g.name] + mine[g.name].astype(jnp.int32)
    state = state._replace(t=t + 1, neurons=neurons, syn=syn, ring=ring, count=count)
    view = StepView({}, neurons, syn, gconsts)
    records = {probe.name: probe.record(view) for probe in program.probes if probe.reads_state}
    return state, mine, norms, records


def _delivery_phase(program: Program, consts: dict, state: Any, key: jax.Array, t: jax.Array, spikes: dict,
                    mine: dict) -> tuple[Any, dict, dict]:
    """Steps 4-6 for the spikes of step ``t``: the spike sources, propagation, plasticity and the spike
    monitors: ``(state, spike records, spiking rows per event projection)``. ``spikes``: whole groups'."""
    gconsts, parrays = consts["groups"], consts["projections"]
    spikes, count, ring = dict(spikes), dict(state.count), dict(state.ring)
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
                traces[p.name], weights[p.name], parrays[p.name].targets, p.presynaptic(spikes[p.pre]), mine[p.post],
                program.dt)
    state = state._replace(ring=ring, weights=weights, traces=traces, count=count)
    # 6. monitors of spikes
    view = StepView(spikes, state.neurons, state.syn, gconsts)
    records = {probe.name: probe.record(view) for probe in program.probes if not probe.reads_state}
    return state, records, busy


def _net_block(program: Program, consts: dict, state: Any, key: jax.Array, length: int) -> tuple[Any, dict, dict, dict]:
    """``length`` (at most ``program.exchange_every``) steps with one spike exchange: the neuron phases
    of all of them, the exchange of their spikes together, then their delivery phases in order. Equal
    to ``length`` :func:`net_step`s: a spike of step ``t`` first acts at step ``t + 1 + shortest delay``,
    which is past the block."""
    t0, ex = state.t, program.exchange

    def neurons(st, _):
        st, mine, norms, records = _neuron_phase(program, consts, st, key)
        return st, (mine, norms, records)

    state, (mine, norms, own_records) = jax.lax.scan(neurons, state, None, length=length)
    spikes = {g.name: ex.gather(g, mine[g.name]) for g in program.groups}  # (length, n): one exchange

    def deliver(st, xs):
        t, spk, own = xs
        st, records, busy = _delivery_phase(program, consts, st, key, t, spk, own)
        return st, (records, busy)

    steps = t0 + jnp.arange(length, dtype=jnp.asarray(t0).dtype)
    state, (records, busy) = jax.lax.scan(deliver, state, (steps, spikes, mine))
    most = lambda tree: {k: jnp.max(v, axis=0) for k, v in tree.items()}  # noqa: E731
    return state, {**own_records, **records}, most(norms), most(busy)


def net_steps(program: Program, consts: dict, state: Any, key: jax.Array, *, length: int, remat: bool = False,
              unroll: int = 1) -> tuple[Any, dict, dict, dict]:
    """``length`` steps of :func:`net_step` in one ``lax.scan``: ``(state, records with the step axis first,
    largest drive norm per mixed-mode group, most spiking rows per event projection)``. With
    ``program.exchange_every = k > 1`` the scan runs blocks of ``k`` steps with one spike exchange each
    (:func:`_net_block`; the same result)."""
    k = max(1, min(program.exchange_every, length))

    def one(carry, _):
        st, most_norm, most_busy = carry
        if k == 1:
            st, records, norms, busy = net_step(program, consts, st, key)
        else:
            st, records, norms, busy = _net_block(program, consts, st, key, k)
        most_norm = {n: jnp.maximum(v, norms[n]) for n, v in most_norm.items()}
        most_busy = {n: jnp.maximum(v, busy[n]) for n, v in most_busy.items()}
        return (st, most_norm, most_busy), records

    norms0 = {g.name: jnp.zeros((), state.neurons[g.name].v.dtype) for g in program.groups
              if consts["steppers"][g.name].tracks_drive}
    busy0 = {p.name: jnp.zeros((), jnp.int32) for p in program.projections if p.path == "event"}
    body = jax.checkpoint(one, prevent_cse=False) if remat else one
    (state, norms, busy), records = jax.lax.scan(body, (state, norms0, busy0), None, length=length // k, unroll=unroll)
    if k > 1:
        records = jax.tree_util.tree_map(lambda r: r.reshape(-1, *r.shape[2:]), records)  # (blocks, k, ...) -> steps
        rest = length % k
        if rest:  # the chunk's last steps: one shorter block
            state, tail, tail_norms, tail_busy = _net_block(program, consts, state, key, rest)
            records = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), records, tail)
            norms = {n: jnp.maximum(v, tail_norms[n]) for n, v in norms.items()}
            busy = {n: jnp.maximum(v, tail_busy[n]) for n, v in busy.items()}
    return state, records, norms, busy
