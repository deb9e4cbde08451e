"""Projections: synapses from one group to a receptor of another, and spike propagation.

A spike of presynaptic neuron ``i`` at step ``k`` through a synapse with delay ``d`` steps is added
to the target receptor at the start of step ``k + 1 + d`` (Brian2: delivered in step ``k + d`` after
the threshold, felt from the next state update). Delays are ``round(delay_ms / dt)`` steps, ``>= 0``.

The delay rule: every delay is rounded to the nearest step (half to even), as NEST and Brian2 do.
A delay *given* as a number or an array that is positive but rounds to 0 steps (``0 < d <= dt/2``)
raises instead of silently becoming no delay at all: ``delay=0.03`` at ``dt = 0.1``; write 0 for
arrival at the next step. A delay *drawn* from a distribution is only rounded (a law with mass
below ``dt/2`` gives some 0-step delays: truncate it, as ``models.microcircuit`` does). A delay below
``-dt/2`` or past ``2**31 - 2`` steps raises.
Weights into a :class:`~qsn.networks.CondExp` receptor are conductances and must be ``>= 0``.

Two propagation paths give the same result (up to the order of floating-point additions):

* ``"event"`` — synapses stored by presynaptic neuron in ELL form (rows padded to the longest); each
  step gathers the rows of the neurons that spiked (up to a capacity of ``block`` rows) and scatters
  them into the target's ring buffer, so the cost follows the number of spikes, not of synapses.
  The capacity is static (no loop inside the step: on XLA a loop around the gather copies the
  connectivity arrays every step); a chunk in which some step had more spikes than the capacity is
  re-run by ``Network.run`` with a larger one, so no spike is ever dropped;
* ``"dense"`` — one ``(n_pre, n_post)`` weight matrix per distinct delay; each step a matrix-vector
  product per delay. Fast for small dense graphs.

``"auto"`` picks dense when the matrices (one per distinct delay) hold at most 2^22 entries and at
least 10% of those entries are synapses (and the projection is not plastic), else event.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.memory import Budget, largest_fit
from qsn.runtime import progress_bar
from qsn.networks.connectivity import KEEP_BYTES, SENTINEL, Rows, Rule, Synapses, block_size, bucket, build_key, estimate, from_list
from qsn.networks.distributions import Distribution, TileValues, as_values, host_empty, per_synapse, upper_bound
from qsn.networks.group import NeuronGroup, resolve
from qsn.networks.plasticity import STDP
from qsn.networks.synapse import CondExp

__all__ = [
    "Projection", "ProjectionSpec", "EventProjection", "DenseProjection", "ProjectionArrays", "Footprint", "build",
    "footprint", "build_budget", "build_progress", "event_path", "event_spec", "DrawPlan", "Drawn",
]

_DENSE_MAX_ENTRIES = 2**22
_DENSE_MIN_DENSITY = 0.1
_MAX_DELAY_STEPS = 2**31 - 2  # the ring slot t + 1 + d stays an int32
_PROGRESS_SYNAPSES = 10_000_000  # builds expected to draw at least this many show a bar (on a terminal)


class Projection:
    """Synapses from ``pre`` to receptor ``receptor`` of ``post``.

    Args:
        pre: source group or view (a :class:`NeuronGroup`, :class:`PoissonGroup`, :class:`SpikeSourceArray`).
        post: target :class:`NeuronGroup` or a view of one.
        rule: a connectivity rule (:func:`fixed_probability` …).
        weight: scalar, ``(m,)`` array (explicit rule; user order) or a :class:`Distribution`; units of
            the receptor (mV for Delta, current for PscExp, leak-relative conductance for CondExp).
        delay: ms; scalar, ``(m,)`` array or a :class:`Distribution`, ``>= 0``; rounded to whole steps. A
            given value that is positive but rounds to 0 steps (``delay=0.03`` at ``dt = 0.1``) raises
            (see the module docstring).
        receptor: name of a receptor of the target group.
        plasticity: :class:`STDP` or None.
        allow_autapses, allow_multapses: as NEST (both True by default).
        propagation: ``"auto"``, ``"event"`` or ``"dense"``.
        event_block: initial capacity of the event path, in spiking presynaptic neurons per step
            (default ``max(64, n_pre/64)``); it grows automatically when a step has more spikes.
        name: unique name in the network.
    """

    def __init__(
        self,
        pre: Any,
        post: Any,
        rule: Rule,
        weight: Any = 1.0,
        delay: Any = 0.0,
        *,
        receptor: str = "exc",
        plasticity: STDP | None = None,
        allow_autapses: bool = True,
        allow_multapses: bool = True,
        propagation: str = "auto",
        event_block: int | None = None,
        name: str | None = None,
    ) -> None:
        self.pre, self.pre_index = resolve(pre, "Projection pre")
        self.post, self.post_index = resolve(post, "Projection post")
        if not isinstance(self.post, NeuronGroup):
            raise ConfigurationError(f"Projection post must be a NeuronGroup (or a view of one), but is {self.post!r}")
        if not isinstance(receptor, str) or receptor not in self.post.receptors:
            raise ConfigurationError(
                f"Projection receptor {receptor!r} is not a receptor of {self.post!r}; it has {list(self.post.receptors)}"
            )
        if not isinstance(rule, Rule):
            raise ConfigurationError(f"Projection rule must be a connectivity rule such as fixed_probability(0.1), but is {rule!r}")
        if propagation not in ("auto", "event", "dense"):
            raise ConfigurationError(f"Projection propagation must be 'auto', 'event' or 'dense', but is {propagation!r}")
        if plasticity is not None and not isinstance(plasticity, STDP):
            raise ConfigurationError(f"Projection plasticity must be an STDP or None, but is {plasticity!r}")
        if plasticity is not None and propagation == "dense":
            raise ConfigurationError("Projection: plastic synapses use the event path; use propagation='event' or 'auto'")
        if event_block is not None and (
            isinstance(event_block, bool) or not isinstance(event_block, (int, np.integer)) or event_block < 1
        ):
            raise ConfigurationError(f"Projection event_block must be an int >= 1, but is {event_block!r}")
        if plasticity is not None and isinstance(self.post.receptors[receptor], CondExp) and plasticity.w_min < 0:
            raise ConfigurationError(
                f"Projection into CondExp receptor {receptor!r}: STDP w_min must be >= 0 (weights are conductances), "
                f"but is {plasticity.w_min!r}"
            )
        self.rule = rule
        self.weight = weight
        self.delay = delay
        self.receptor = receptor
        self.plasticity = plasticity
        self.allow_autapses = bool(allow_autapses)
        self.allow_multapses = bool(allow_multapses)
        self.propagation = propagation
        self.event_block = None if event_block is None else int(event_block)
        self.name = name

    def __repr__(self) -> str:
        return f"Projection({self.name or '?'}: {self.pre.name} -> {self.post.name}.{self.receptor}, {self.rule.name})"

    def connect(self, key: jax.Array, dt: float, dtype: Any) -> tuple[Synapses, np.ndarray, np.ndarray]:
        """Draw ``(synapses, weights, delay_steps)`` in group indices, sorted by ``(pre, post)``: ``(m,)``
        host arrays read off the rows :meth:`draw` writes."""
        targets, w, d, m, first = self.draw(key, dt, dtype)
        n_post = self.post.n
        flat = np.flatnonzero(targets.reshape(-1) < n_post)
        width = targets.shape[1]
        return (Synapses(first + flat // width, targets.reshape(-1)[flat], None, m), w.reshape(-1)[flat],
                d.reshape(-1)[flat])

    def draw(self, key: jax.Array, dt: float, dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        """Draw the synapses into the event path's ELL rows: host arrays ``(rows + 1, K)`` of targets
        (int32, group indices, each row increasing and left-packed, padding and the last row -> ``n_post``),
        weights (``dtype``, 0 at padding) and delays (steps, int16 where they fit: :func:`narrow_delays`),
        the synapse count, and the presynaptic neuron of row 0 (rows: see ``_place``)."""
        targets, w, d, drawn = self.write(self.plan(key, dt), dt, dtype)
        return targets, w, narrow_delays(d, drawn.longest / dt if drawn.count else 0.0), drawn.count, drawn.first

    @property
    def by_targets(self) -> bool:
        """Whether :meth:`plan` draws the synapses onto a range of targets without the rest: a rule drawn
        by target tiles between views in increasing order (mapped row by row, see ``_place``)."""
        return self.rule.by_targets and _increasing(self.pre_index) and _increasing(self.post_index) and not self._drops_autapses

    @property
    def _view_sizes(self) -> tuple[int, int]:
        """Neurons of the source and the target view (the rule draws in view indices)."""
        return (self.pre.n if self.pre_index is None else self.pre_index.size,
                self.post.n if self.post_index is None else self.post_index.size)

    @property
    def _drops_autapses(self) -> bool:
        """Overlapping but different views of one group without autapses: the rule draws in view indices, so
        the ``i -> i`` pairs of the group go afterwards (their targets get fewer synapses than the rule says)."""
        return not self.allow_autapses and self.pre is self.post and not self._same_view

    @property
    def _same_view(self) -> bool:
        return self.pre is self.post and (
            (self.pre_index is None and self.post_index is None)
            or (self.pre_index is not None and self.post_index is not None and np.array_equal(self.pre_index, self.post_index))
        )

    def plan(self, key: jax.Array, dt: float, *, owner: tuple[int, int] | None = None) -> "DrawPlan":
        """Draw the connectivity of the synapses onto the target group's neurons ``owner = (lo, hi)``
        (default: all; :attr:`by_targets` projections only), before any array is written: their rows'
        lengths are known (``plan.rows.counts``), so several owners can agree on one width.

        Example (the synapses onto neurons 0-49 and 50-99, drawn apart, are the whole draw's):
            >>> import qsn
            >>> from qsn.networks import NeuronGroup, Projection, fixed_indegree
            >>> g = NeuronGroup(100, qsn.NeuronParams(delta=0.0))
            >>> proj = Projection(g, g, fixed_indegree(10), weight=0.5)
            >>> key = jax.random.key(0)
            >>> halves = [proj.plan(key, 0.1, owner=o) for o in ((0, 50), (50, 100))]
            >>> whole = proj.plan(key, 0.1)
            >>> bool(np.array_equal(halves[0].rows.counts + halves[1].rows.counts, whole.rows.counts))
            True
            >>> targets, weights, delays, drawn = proj.write(halves[1], 0.1, np.float32, offset=50, pad=50)
            >>> drawn.count, int(targets[targets < 50].min()) >= 0
            (500, True)
        """
        k_conn, k_w, k_d = (build_key(k) for k in jax.random.split(key, 3))
        n_pre, n_post = self._view_sizes
        if not isinstance(self.delay, Distribution):
            _check_rounding(f"Projection {self.name}", self.delay, dt)
        targets = None
        if owner is not None:
            if not self.by_targets:
                raise ConfigurationError(f"Projection {self.name}: its synapses onto a range of targets are drawn whole only")
            lo, hi = owner
            targets = (lo, hi) if self.post_index is None else tuple(int(x) for x in np.searchsorted(self.post_index, owner))
        rows = self.rule.generate(k_conn, n_pre, n_post, autapses=self.allow_autapses or not self._same_view,
                                  multapses=self.allow_multapses, targets=targets)
        return DrawPlan(rows, k_w, k_d, self.by_targets)

    def write(self, plan: "DrawPlan", dt: float, dtype: Any, *, width: int | None = None, offset: int = 0,
              pad: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, "Drawn"]:
        """The ELL arrays of ``plan``: targets (group indices less ``offset``, padding ``pad``, default
        ``n_post``), weights and delays (steps; int16 where the longest known before drawing fits, else
        int32: :func:`narrow_delays` narrows them later), ``width`` wide (default the longest row), and what
        was :class:`Drawn` (its values checked). A plan drawn whole (not :attr:`by_targets`) is written by
        ``_place`` in full."""
        n_post_group = self.post.n
        d_dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32  # delays drawn in ms, then rounded
        if not plan.tiled:
            targets, slot, m, first = _place(plan.rows, self, self._view_sizes[1], drop_autapses=self._drops_autapses)
            block = block_size(targets.size)
            w, lowest, _ = per_synapse(f"Projection {self.name} weight", self.weight, plan.k_w, targets, n_post_group, slot,
                                       dtype, block=block)
            d, shortest, longest = per_synapse(f"Projection {self.name} delay", self.delay, plan.k_d, targets, n_post_group,
                                               slot, d_dtype, dt=dt, block=block)
            drawn = Drawn(m, first, lowest, shortest, longest)
            self._check(drawn, dt)
            return targets, w, d, drawn
        pad = n_post_group if pad is None else pad
        rows = plan.rows
        width = rows.width if width is None else width
        n_rows, first, scattered = _row_layout(self.pre_index, self.pre.n)
        targets = host_empty((n_rows + 1, width), np.int32)
        targets[...] = pad
        # delays as int16 from the start where the longest one known before drawing fits (narrow_delays)
        bound = upper_bound(f"Projection {self.name} delay", self.delay)
        narrow = bound is not None and _narrow(max(bound, 0.0) / dt)
        w, d = host_empty((n_rows + 1, width), dtype), host_empty((n_rows + 1, width), np.int16 if narrow else np.int32)
        rows_at = self.pre_index.astype(np.int64) * width if scattered else None
        lut = None if self.post_index is None else np.append(self.post_index, n_post_group).astype(np.int32) - np.int32(offset)
        flat = targets.reshape(-1)

        def place_targets(p):
            flat[p.positions] = (p.targets - np.int32(offset) if offset else p.targets) if lut is None else lut[p.targets]

        weights = TileValues(f"Projection {self.name} weight", self.weight, plan.k_w, w, dtype)
        delays = TileValues(f"Projection {self.name} delay", self.delay, plan.k_d, d, d_dtype, dt=dt)
        rows.place(width, rows_at, place_targets, weights, delays)
        for values in (weights, delays):
            values.finish(lambda r0, r1: targets[r0:r1] != pad)
        drawn = Drawn(rows.count, first, weights.lo, delays.lo, delays.hi)
        self._check(drawn, dt)
        return targets, w, d, drawn

    def _check(self, drawn: "Drawn", dt: float) -> None:
        """Raise naming this projection when its drawn weights or delays are out of range."""
        if not drawn.count:
            return
        if isinstance(self.post.receptors[self.receptor], CondExp) and drawn.lowest < 0:
            raise ConfigurationError(
                f"Projection {self.name}: weights into CondExp receptor {self.receptor!r} are conductances and must be "
                f">= 0, but one is {drawn.lowest!r}; inhibition comes from the receptor's e_rev"
            )
        if drawn.shortest < -0.5 * dt:
            raise ConfigurationError(f"Projection {self.name}: delays must be >= 0 ms, but one is {drawn.shortest} ms")
        if drawn.longest / dt > _MAX_DELAY_STEPS:
            raise ConfigurationError(
                f"Projection {self.name}: delays must be at most {_MAX_DELAY_STEPS} steps ({_MAX_DELAY_STEPS * dt:.6g} ms "
                f"at dt = {dt} ms), but one is {drawn.longest!r} ms"
            )


class DrawPlan(NamedTuple):
    """A projection's drawn connectivity before its arrays are written (:meth:`Projection.plan`)."""

    rows: Rows
    k_w: jax.Array  # build keys of the weights and the delays
    k_d: jax.Array
    tiled: bool  # drawn by target tiles (written by Rows.place), else whole (written by _place)


class Drawn(NamedTuple):
    """What a written plan holds: its synapse count, the source group's neuron of row 0, and the extremes
    of the drawn weights and delays (ms)."""

    count: int
    first: int
    lowest: float  # smallest weight
    shortest: float  # delays, ms
    longest: float


def _narrow(longest: float) -> bool:
    """Whether delays of at most ``longest`` steps are stored as int16 (below 2^15 - 1 steps)."""
    return round(longest) < np.iinfo(np.int16).max


def narrow_delays(steps: np.ndarray, longest: float) -> np.ndarray:
    """Per-synapse delays ``steps`` (int32) as int16 when the longest, ``longest`` steps, fits (below 2^15 - 1:
    3.2 s at dt = 0.1 ms), else as they are: 2 of the 10-12 bytes a synapse keeps.

    Example:
        >>> narrow_delays(np.array([[0, 15]], np.int32), 15.0).dtype
        dtype('int16')
    """
    return steps.astype(np.int16, copy=False) if _narrow(longest) else steps


def _increasing(index: np.ndarray | None) -> bool:
    return index is None or bool(np.all(np.diff(index) > 0))


def _own_rows(index: np.ndarray | None) -> bool:
    """Whether a projection from the source view ``index`` stores the rows of its own neurons only (a
    contiguous increasing range ``g[a:b]``; see ``_place``)."""
    return index is not None and index.size > 0 and index[-1] - index[0] + 1 == index.size and _increasing(index)


def _row_layout(pre_index: np.ndarray | None, n_pre: int) -> tuple[int, int, bool]:
    """The event path's rows for a source view (``n_pre``: the group's size): how many (a contiguous
    increasing view ``g[a:b]`` keeps its own neurons' rows only, any other source a row per neuron of
    the group), the source neuron of row 0, and whether the view's rows lie scattered among them."""
    if _own_rows(pre_index):
        return pre_index.size, int(pre_index[0]), False
    return n_pre, 0, pre_index is not None


def _place(rows: Rows, proj: Projection, n_post_view: int, drop_autapses: bool):
    """The rule's rows (view indices) as ``(rows + 1, K)`` targets in the target group's indices, with the
    slot map of per-synapse arrays, the synapse count and the presynaptic neuron of row 0 (``first``).
    A contiguous increasing view of the source (``g[a:b]``) stores the rows of its own neurons only
    (``rows = b - a``, ``first = a``: a group split into E and I keeps one row per neuron in all); other
    sources keep a row per neuron of the group (``first = 0``). Views in increasing order map row by row
    (no list is formed); others, and overlapping views without autapses, go through a synapse list."""
    n_pre, n_post = proj.pre.n, proj.post.n
    pre_index, post_index = proj.pre_index, proj.post_index
    if not (_increasing(pre_index) and _increasing(post_index)) or drop_autapses:
        view = np.empty((rows.counts.size, rows.width), np.int32)
        rows.fill(view)
        flat = np.flatnonzero(view.reshape(-1) < n_post_view)
        pre, post = flat // rows.width, view.reshape(-1)[flat].astype(np.int64)
        if pre_index is not None:
            pre = pre_index[pre]
        if post_index is not None:
            post = post_index[post]
        keep = np.flatnonzero(pre != post) if drop_autapses else np.arange(flat.size)
        group = from_list(pre[keep], post[keep], n_pre, n_post)
        targets = host_empty((n_pre + 1, group.width), np.int32)
        group.fill(targets[:n_pre])
        targets[n_pre] = n_post

        def slot(view_slot=rows.slot, keep=keep, flat=flat, group=group):
            position = np.full(flat.size, -1, np.int64)  # list position -> group slot (-1: dropped)
            position[keep] = group.slot()
            return position[np.searchsorted(flat, view_slot())]

        return targets, None if rows.slot is None else slot, group.count, 0
    width = rows.width
    n_rows, first, scattered = _row_layout(pre_index, n_pre)
    targets = host_empty((n_rows + 1, width), np.int32)
    view = np.empty((pre_index.size, width), np.int32) if scattered else targets[:n_rows]
    rows.fill(view)
    if post_index is not None:
        lut = np.append(post_index, n_post).astype(np.int32)  # padding n_post_view -> n_post
        step = max(1, (1 << 22) // width)
        for r0 in range(0, view.shape[0], step):
            view[r0 : r0 + step] = lut[view[r0 : r0 + step]]
    if scattered:
        inside = np.zeros(n_pre + 1, bool)
        inside[pre_index] = True
        targets[~inside] = n_post
        targets[pre_index] = view
    else:
        targets[-1] = n_post

    def slot(view_slot=rows.slot):
        s = view_slot()
        return s if pre_index is None else (pre_index[s // width] - first) * width + s % width

    return targets, None if rows.slot is None else slot, rows.count, first


def _check_rounding(owner: str, delay: Any, dt: float) -> None:
    """Raise when a given delay (ms) is positive but rounds to 0 steps of ``dt`` (see the module docstring)."""
    ms = np.asarray(as_values(f"{owner} delay", delay), np.float64)
    bad = np.isfinite(ms) & (ms > 0) & (np.rint(ms / dt) == 0)
    if bad.any():
        i = int(np.argmax(bad))
        where = "" if ms.ndim == 0 else f"[{i}]"
        raise ConfigurationError(
            f"{owner}: delay{where} = {float(ms.flat[i])!r} ms is positive but rounds to 0 steps at dt = {dt} ms (delays are "
            f"round(delay/dt) whole steps); use 0 for arrival at the next step, or at least {dt} ms (or a smaller dt)"
        )


class Footprint(NamedTuple):
    """Memory a projection is expected to take at ``Network.build``, known before drawing it."""

    synapses: int  # expected synapse count
    arrays: int  # bytes kept after the build: the ELL rows (event) or the matrices (dense), traces
    transient: int  # bytes alive only while it is built: the rule's per-synapse buffers and kernel blocks
    longest_delay: int  # steps; the longest delay if known before drawing, else 0 (a lower bound)


def footprint(proj: Projection, dt: float, dtype: Any) -> Footprint:
    """Estimate the memory of ``proj`` from its rule, propagation path and delays, without drawing it.

    Event path: ``(n_pre + 1) x widest row x (4 + 4 + itemsize)`` bytes (targets, delays, weights), the
    widest row estimated by :func:`qsn.networks.connectivity.estimate`; dense path: one
    ``(n_pre, n_post)`` matrix per distinct delay (one when the delays are drawn). While building, a
    rule drawn by target tiles keeps 4 bytes per synapse of its first tiles' keys, at most
    ``connectivity.KEEP_BYTES`` (``explicit``: the user's list and its sort, 40 bytes per synapse),
    beside a few kernel blocks.

    Example:
        >>> import qsn
        >>> from qsn.networks import NeuronGroup, fixed_probability
        >>> g = NeuronGroup(1000, qsn.NeuronParams(delta=0.0))
        >>> footprint(Projection(g, g, fixed_probability(0.1)), 0.1, jnp.float32).synapses
        100000
    """
    m, widest = estimate(proj.rule, *proj._view_sizes)
    item = jnp.dtype(dtype).itemsize
    n_pre, n_post = proj.pre.n, proj.post.n
    kept = min(4 * m, KEEP_BYTES) if proj.rule.by_targets else (40 * m if proj.rule.name == "explicit" else 0)
    transient = kept + 8 * 4 * block_size(max(m, 1))
    bound = upper_bound(f"Projection {proj.name} delay", proj.delay)
    longest = int(round(bound / dt)) if bound is not None and 0 <= bound / dt <= _MAX_DELAY_STEPS else 0
    path = proj.propagation
    entries = n_pre * n_post
    if path == "auto":
        dense_ok = entries <= _DENSE_MAX_ENTRIES and m >= _DENSE_MIN_DENSITY * entries and proj.plasticity is None
        path = "dense" if dense_ok else "event"
    if path == "dense":
        n_delays = 1
        if not isinstance(proj.delay, Distribution):
            n_delays = max(1, np.unique(np.rint(np.asarray(as_values("delay", proj.delay), np.float64) / dt)).size)
        arrays = n_delays * entries * item + bucket(m) * 12  # and the (pre, post, slot) list
    else:
        rows = _row_layout(proj.pre_index, n_pre)[0]
        delay_bytes = 2 if longest and _narrow(longest) else 4  # (narrow_delays; unknown bound: 4)
        arrays = (rows + 1) * max(widest, 1) * (4 + delay_bytes + item)
    if proj.plasticity is not None:
        arrays += 2 * (n_pre + n_post) * item
    return Footprint(m, arrays, transient, longest)


def build_budget(
    groups: list,
    longest: dict[str, int],
    dt: float,
    dtype: Any,
    *,
    footprints: dict[str, Footprint] | None = None,
    currents: list[tuple[str, int]] = (),
) -> Budget:
    """The memory ``Network.build`` will allocate, as a :class:`qsn.memory.Budget` to check.

    Args:
        groups: every group of the network (their :meth:`build_bytes`).
        longest: group name -> longest delay (steps) into it: the ring buffer of a group with ``R``
            receptors is ``(R, longest + 1, n)`` in ``dtype``.
        dt: step, ms (for the longest delay that fits).
        dtype: the network's float dtype.
        footprints: projection name -> :class:`Footprint` (before drawing; None once drawn): their
            arrays, plus the transient list of the largest one (projections are built one by one).
        currents: ``(group name, bytes)`` of each ``(T, n)`` current input copied to the device.
    """
    item = jnp.dtype(dtype).itemsize
    budget = Budget("Network.build")
    for g in groups:
        r = len(getattr(g, "receptors", ()))
        depth = longest.get(g.name, 0) + 1 if r else 0
        row = r * g.n * item  # one ring slot
        per_neuron = g.build_bytes(dtype) / g.n + r * depth * item
        budget.add(
            f"the state of group {g.name!r} (n = {g.n:,})", g.build_bytes(dtype),
            # n scales the ring buffers too: they are given back to the room for n
            hint=lambda free, per=per_neuron, ring=row * depth, g=g: (
                f"at most n = {largest_fit(free + ring, per):,} fits in group {g.name!r}"
            ),
        )
        if r:
            budget.add(
                f"the ring buffers of group {g.name!r} ({r} receptors x {depth:,} slots x {g.n:,} neurons, "
                f"{jnp.dtype(dtype).name}; longest delay {(depth - 1) * dt:.6g} ms)",
                row * depth,
                hint=lambda free, g=g, row=row: (
                    f"at most a longest delay of {max(largest_fit(free, row) - 1, 0) * dt:.6g} ms into group {g.name!r} fits"
                ),
            )
    for name, nbytes in currents:
        budget.add(f"a (T, n) CurrentInput into group {name!r}", nbytes)
    if footprints:
        # projections are drawn one by one: only the largest synapse list is alive beside all the arrays
        widest = max(footprints, key=lambda k: footprints[k].transient)
        for name, fp in footprints.items():
            extra = fp.transient if name == widest else 0
            per = (fp.arrays + extra) / max(fp.synapses, 1)
            what = f"the synapses of projection {name!r} (~{fp.synapses:,}" + (", with the list being drawn)" if extra else ")")
            budget.add(what, fp.arrays + extra,
                       hint=lambda free, name=name, per=per: f"at most ~{largest_fit(free, per):,} synapses fit in projection {name!r}")
    return budget


def build_progress(footprints: dict[str, Footprint], enabled: bool | None = None):
    """A progress bar over the synapses ``Network.build`` draws (``footprints``' expected counts), on
    stderr; ``enabled=None`` shows it only for builds of at least 1e7 synapses on a terminal."""
    total = sum(fp.synapses for fp in footprints.values())
    if enabled is None:
        enabled = total >= _PROGRESS_SYNAPSES and sys.stderr.isatty()
    return progress_bar(total, "Network.build", bool(enabled), unit="synapse")


class EventProjection(NamedTuple):
    """A built projection on the event path (static, hashable): each step gathers the ELL rows of the
    presynaptic neurons that spiked (up to ``block`` of them) and scatters them into the ring buffer."""

    name: str
    pre: str
    post: str
    receptor: int  # index of the receptor in the target group's ring buffer
    delays: tuple[int, ...]  # () on this path: each synapse has its own delay
    block: int  # capacity in spiking rows per step
    n_pre: int  # rows: the presynaptic neurons first .. first + n_pre - 1 of the source group
    n_post: int  # targets this projection delivers to (a partitioned device: its slice of the group)
    plasticity: STDP | None
    first: int  # the source group's neuron of row 0 (a contiguous view g[a:b] of it: a)
    pre_size: int  # neurons in the source group (its spike vectors)

    path = "event"

    def presynaptic(self, spikes: jax.Array) -> jax.Array:
        """The rows' part ``(n_pre,)`` of the source group's spikes ``(pre_size,)``."""
        return spikes if (self.first, self.n_pre) == (0, self.pre_size) else spikes[self.first : self.first + self.n_pre]

    def deliver(self, arrays: "ProjectionArrays", weights: jax.Array, spikes: jax.Array, ring: jax.Array,
                t: jax.Array) -> jax.Array:
        """Add the source group's spikes ``(pre_size,)`` of step ``t`` into ``ring`` ``(receptors, D, n_post)``.

        The first ``block`` spiking rows are gathered (padding row ``n_pre`` when fewer spiked); the
        caller checks that no step had more (``Network.run`` re-runs with a larger ``block``), so
        nothing is dropped.
        """
        depth = ring.shape[1]
        (rows,) = jnp.nonzero(self.presynaptic(spikes), size=self.block, fill_value=self.n_pre)
        slot = (t + 1 + arrays.delays[rows].astype(t.dtype)) % depth
        return ring.at[self.receptor, slot, arrays.targets[rows]].add(weights[rows], mode="drop")

    def busy(self, spikes: jax.Array) -> jax.Array:
        """Rows this step gathers: the spiking presynaptic neurons (checked against ``block``)."""
        return jnp.sum(self.presynaptic(spikes), dtype=jnp.int32)

    def longest_delay(self, arrays: "ProjectionArrays", synapses: int) -> int:
        """Longest delay of the drawn synapses, steps (0 without any)."""
        return int(jnp.max(arrays.delays)) if synapses else 0

    def shortest_delay(self, arrays: "ProjectionArrays", synapses: int) -> int | None:
        """Shortest delay of the drawn synapses, steps (None without any)."""
        if not synapses:
            return None
        d, valid = np.asarray(arrays.delays), np.asarray(arrays.targets) < self.n_post
        return int(d[valid].min())

    def dense_weights(self, arrays: "ProjectionArrays", weights: jax.Array) -> np.ndarray:
        """``(pre_size, n_post)`` total weight per pair (summed over multapses), on the host."""
        w = np.asarray(weights)
        out = np.zeros((self.pre_size, self.n_post + 1), w.dtype)
        tg = np.asarray(arrays.targets)[: self.n_pre]
        np.add.at(out, (self.first + np.repeat(np.arange(self.n_pre), tg.shape[1]), tg.reshape(-1)),
                  w[: self.n_pre].reshape(-1))
        return out[:, : self.n_post]

    def synapse_list(self, arrays: "ProjectionArrays", weights: jax.Array) -> dict[str, np.ndarray]:
        """Host arrays ``pre``, ``post`` (group indices), ``weight``, ``delay`` (steps) sorted by ``(pre, post)``."""
        w = np.asarray(weights)
        tg = np.asarray(arrays.targets)[: self.n_pre]
        rows, cols = np.nonzero(tg < self.n_post)
        return dict(pre=self.first + rows, post=tg[rows, cols], weight=w[rows, cols],
                    delay=np.asarray(arrays.delays)[rows, cols])


class DenseProjection(NamedTuple):
    """A built projection on the dense path (static, hashable): one ``(n_pre, n_post)`` weight matrix
    per distinct delay, a matrix-vector product per delay each step."""

    name: str
    pre: str
    post: str
    receptor: int
    delays: tuple[int, ...]  # the distinct delays (steps), one matrix each
    block: int  # unused on this path (kept so both paths have one shape)
    n_pre: int
    n_post: int
    plasticity: STDP | None
    first: int  # 0: a row per neuron of the source group
    pre_size: int  # == n_pre

    path = "dense"

    def presynaptic(self, spikes: jax.Array) -> jax.Array:
        return spikes

    def deliver(self, arrays: "ProjectionArrays", weights: jax.Array, spikes: jax.Array, ring: jax.Array,
                t: jax.Array) -> jax.Array:
        """Add the spikes ``(n_pre,)`` of step ``t`` into ``ring`` ``(receptors, D, n_post)``."""
        depth = ring.shape[1]
        contrib = jnp.einsum("p,dpq->dq", spikes.astype(weights.dtype), weights)
        slots = (t + 1 + jnp.asarray(self.delays, jnp.int32)) % depth
        return ring.at[self.receptor, slots].add(contrib)

    def busy(self, spikes: jax.Array) -> None:
        """No capacity to check on this path."""
        return None

    def longest_delay(self, arrays: "ProjectionArrays", synapses: int) -> int:
        return max(self.delays)

    def shortest_delay(self, arrays: "ProjectionArrays", synapses: int) -> int | None:
        return min(self.delays) if synapses else None

    def dense_weights(self, arrays: "ProjectionArrays", weights: jax.Array) -> np.ndarray:
        """``(n_pre, n_post)`` total weight per pair (summed over delays), on the host."""
        return np.asarray(weights).sum(axis=0)

    def synapse_list(self, arrays: "ProjectionArrays", weights: jax.Array) -> dict[str, np.ndarray]:
        """As :meth:`EventProjection.synapse_list`; multapses of equal delay appear once, summed."""
        w = np.asarray(weights)
        pre, post, slot = (np.asarray(x) for x in arrays.synapses)
        valid = pre < self.n_pre
        keys = np.unique(np.stack([pre[valid], post[valid], slot[valid]]), axis=1)
        pre, post, slot = keys
        return dict(pre=pre, post=post, weight=w[slot, pre, post], delay=np.asarray(self.delays)[slot])


ProjectionSpec = Union[EventProjection, DenseProjection]


class ProjectionArrays(NamedTuple):
    """Device arrays of a built projection that do not change during a run."""

    targets: jax.Array | None  # (n_pre + 1, K) int32 — ELL targets; row n_pre and padding -> n_post
    delays: jax.Array | None  # (n_pre + 1, K) int16 or int32 — delay in steps (event path; narrow_delays)
    synapses: tuple | None = None  # dense path: (pre, post, delay slot) (m,) each, for synapse_list


def build(proj: Projection, key: jax.Array, dt: float, dtype: Any, receptor: int) -> tuple[ProjectionSpec, ProjectionArrays, jax.Array, int]:
    """Connect ``proj``; returns its spec, constant arrays, initial weights (ELL or dense) and synapse count."""
    targets, w, d, m, first = proj.draw(key, dt, dtype)
    n_pre, n_post = proj.pre.n, proj.post.n
    path = "event" if event_path(proj) else proj.propagation
    delays: tuple[int, ...] = ()
    if path != "event":
        valid = targets < n_post
        delays = tuple(int(x) for x in np.unique(d[valid])) if m else (0,)
        if path == "auto":
            entries = len(delays) * n_pre * n_post
            path = "dense" if entries <= _DENSE_MAX_ENTRIES and m >= _DENSE_MIN_DENSITY * entries else "event"
    if path == "dense":
        block = min(n_pre, proj.event_block or 2 ** math.ceil(math.log2(max(64, n_pre / 64))))
        spec = DenseProjection(proj.name, proj.pre.name, proj.post.name, receptor, delays, block, n_pre, n_post,
                               proj.plasticity, 0, n_pre)
        size = bucket(m)
        pre, post = np.full(size, SENTINEL, np.int32), np.zeros(size, np.int32)
        wl, dl = np.zeros(size, w.dtype), np.zeros(size, np.int32)
        pre[:m], post[:m] = first + np.nonzero(valid)[0], targets[valid]
        wl[:m], dl[:m] = w[valid], d[valid]
        weights, slot = _dense_fill(pre, post, wl, dl, jnp.asarray(delays, jnp.int32), n_pre, n_post)
        return spec, ProjectionArrays(None, None, (jnp.asarray(pre), jnp.asarray(post), slot)), weights, m
    spec = event_spec(proj, receptor, targets.shape[0] - 1, first)
    # host arrays aligned for jax.device_put to adopt them without a copy (on the CPU)
    return spec, ProjectionArrays(jax.device_put(targets), jax.device_put(d)), jax.device_put(w), m


def event_path(proj: Projection) -> bool:
    """Whether ``proj`` takes the event path before its synapses are drawn: asked for, or ``"auto"``
    when it is plastic or its dense matrices could not fit (else ``"auto"`` looks at the drawn delays)."""
    return proj.propagation == "event" or (
        proj.propagation == "auto" and (proj.plasticity is not None or proj.pre.n * proj.post.n > _DENSE_MAX_ENTRIES))


def event_spec(proj: Projection, receptor: int, rows: int, first: int) -> "EventProjection":
    """The event path's spec of ``proj``: ``rows`` rows from source neuron ``first`` on, into the whole
    target group (a partitioned device's spec has its slice's size as ``n_post``)."""
    block = min(rows, proj.event_block or 2 ** math.ceil(math.log2(max(64, rows / 64))))
    return EventProjection(proj.name, proj.pre.name, proj.post.name, receptor, (), max(block, 1), rows, proj.post.n,
                           proj.plasticity, first, proj.pre.n)


@functools.partial(jax.jit, static_argnums=(5, 6))
def _dense_fill(pre, post, w, d, delays, n_pre: int, n_post: int):
    """``(delays, n_pre, n_post)`` summed weights; padding (``pre == SENTINEL``) is dropped."""
    slot = jnp.searchsorted(delays, d)
    weights = jnp.zeros((delays.shape[0], n_pre, n_post), w.dtype).at[slot, pre, post].add(w, mode="drop")
    return weights, slot
