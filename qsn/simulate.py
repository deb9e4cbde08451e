"""Run a population for many steps: ``lax.scan`` per chunk, recording, progress and safety checks.

The run is cut into chunks of whole recording periods. Each chunk is one compiled ``lax.scan``
(compiled once per chunk length and configuration, then cached by JAX); between chunks the host
moves recordings off the device (so device memory stays bounded), compacts spike events, checks for
non-finite values and advances the progress bar.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, NamedTuple, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.current import Current, as_current, current_at, require_steps
from qsn.dynamics import DEFAULT_A_BOUND, StepConfig, StepConstants, advance, check_key, step_config, step_constants
from qsn.errors import ConfigurationError, InvalidInputError, RecordingError
from qsn.lindblad import generator_norm, plan_capacity, series_plan
from qsn.observables import OBSERVABLES, observe
from qsn.params import NeuronParams, is_concrete
from qsn.poisson_current import check_dt
from qsn.runtime import check_finite, progress_bar
from qsn.state import State, check_state, mode_of
from qsn.surrogate import Surrogate, check_surrogate

__all__ = ["simulate", "SimulationResult", "SpikeEvents", "RECORDABLE", "DEFAULT_UNROLL", "bound_a", "check_budget", "check_event_capacity",
           "chunk_length"]

RECORDABLE = ("spikes", "events") + tuple(OBSERVABLES)
BACKENDS = ("jax", "cupy")
# Scan unroll factor per (platform, mode) for long runs of large populations. CPU: from
# bench/results/population-cpu.json at n = 1e6 (pure: 4 best; mixed: 1, 2 and 4 within run-to-run
# noise of each other, so the cheapest to compile). GPU: not yet measured by this project (the kernels issue
# reports unroll 8 as the best XLA path on an H100); re-measure with bench/bench_population.py.
DEFAULT_UNROLL = {("cpu", "pure"): 4, ("cpu", "mixed"): 1, ("gpu", "pure"): 8, ("gpu", "mixed"): 8}
# Compile time grows with the unroll (measured on CPU: 0.35 s at 1 vs 3.7 s at 8 for one neuron, and
# ~15 s at 8 with random numbers), so small runs and stochastic configurations use 1.
_UNROLL_MIN_WORK = 1e9  # neuron-steps
_CHUNK_BYTES = 128 * 2**20  # device buffers per chunk (records + per-step spikes for events)
_BYTES = {"spikes": 1, "rho": 4, "v": 1, "p1": 1, "coherence": 1, "entropy": 1}  # x itemsize (rho: 2x2 complex)


def default_unroll(platform: str, cfg: StepConfig, n: int, steps: int) -> int:
    """The scan unroll factor ``simulate`` uses when none is given."""
    if cfg.needs_key or n * steps < _UNROLL_MIN_WORK:
        return 1
    return DEFAULT_UNROLL.get((platform, cfg.mode), 1)


class SpikeEvents(NamedTuple):
    """Spikes as compact ``(step, neuron)`` pairs, in time order (host NumPy arrays)."""

    step: np.ndarray  # (E,) int64 — absolute step index (state.t of the step that spiked)
    neuron: np.ndarray  # (E,) int64 — neuron index in the population

    def times(self, dt: float) -> np.ndarray:
        """``(E,)`` spike times in ms, at the end of each spiking step."""
        return (self.step + 1) * dt

    @classmethod
    def from_chunks(cls, steps: list[np.ndarray], neurons: list[np.ndarray]) -> "SpikeEvents":
        """The events of consecutive chunks, joined (empty when there are none)."""
        return cls(step=np.concatenate(steps) if steps else np.zeros(0, np.int64),
                   neuron=np.concatenate(neurons) if neurons else np.zeros(0, np.int64))


class SimulationResult(eqx.Module):
    """What :func:`simulate` returns. Recordings are NumPy arrays on the host (JAX arrays under jit/vmap).

    Attributes:
        state: the final state, ready to continue the run.
        spike_count: ``(n,)`` spikes per neuron over the run.
        records: ``{name: array}`` of the recorded quantities, sample axis first.
        events: :class:`SpikeEvents` when ``"events"`` was recorded, else None.
        steps, t0, dt, record_every, neurons: what was run and sampled (``neurons`` None = all).
    """

    state: Any
    spike_count: Any
    records: dict
    events: SpikeEvents | None
    steps: int = eqx.field(static=True)
    t0: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    record_every: int = eqx.field(static=True)
    neurons: tuple | None = eqx.field(static=True)

    def _get(self, name: str) -> Any:
        if name not in self.records:
            raise RecordingError(f"`{name}` was not recorded: pass record=(..., {name!r}) to qsn.simulate")
        return self.records[name]

    @property
    def spikes(self) -> Any:
        """``(samples, k)`` bool: a spike in the sampling period (every step when ``record_every=1``)."""
        return self._get("spikes")

    @property
    def v(self) -> Any:
        """``(samples, k)`` membrane potential after each sampled step, mV."""
        return self._get("v")

    @property
    def rho(self) -> Any:
        """``(samples, k, 2, 2)`` complex density matrices."""
        return self._get("rho")

    @property
    def p1(self) -> Any:
        """``(samples, k)`` excited-state probability ``rho11``."""
        return self._get("p1")

    @property
    def coherence(self) -> Any:
        """``(samples, k)`` ``|rho01|``."""
        return self._get("coherence")

    @property
    def entropy(self) -> Any:
        """``(samples, k)`` von Neumann entropy, bits."""
        return self._get("entropy")

    @property
    def times(self) -> np.ndarray:
        """``(samples,)`` sample times in ms (end of the sampled step, from ``t = 0``)."""
        n_samples = self.steps // self.record_every
        return (self.t0 + self.record_every * np.arange(1, n_samples + 1)) * self.dt

    def rates(self) -> Any:
        """``(n,)`` mean firing rate of each neuron over the run, Hz."""
        duration_s = self.steps * self.dt / 1000.0
        if duration_s == 0:
            raise ConfigurationError("rates() needs a run of at least one step")
        return self.spike_count / duration_s


class _Stats(NamedTuple):
    norm: jax.Array  # () max ||A dt|| seen (mixed mode), for the propagator plan
    bad_current: jax.Array  # () int32 first step with a non-finite current (callable currents), else -1


def _chunk(
    consts: StepConstants,
    state: State,
    count: jax.Array,
    current_value: Any,
    key: Any,
    idx: Any,
    *,
    cfg: StepConfig,
    current_kind: str,
    current_fn: Any,
    length: int,
    every: int,
    names: tuple[str, ...],
    events: bool,
    track_norm: bool,
    unroll: int,
    segment: int | None = None,
):
    """Advance ``length`` steps (a multiple of ``every``); sample ``names`` after every ``every`` steps;
    rematerialise runs of ``segment`` sampling periods in reverse mode (None: store every step)."""
    cur = Current(current_kind, current_fn if current_kind == "fn" else current_value, None, None, None)
    # Subset first, then observe: the observables of k recorded neurons cost O(k), not O(n).
    sub = (lambda x: x) if idx is None else (lambda x: x[idx] if x.ndim else x)
    observables = tuple(n for n in names if n != "spikes")

    def one(carry, row):
        s, cnt, since, stats = carry
        i_t = current_at(cur, s.t, row)
        s, spk, a = advance(consts, cfg, s, i_t, key)
        cnt = cnt + spk.astype(cnt.dtype)
        if "spikes" in names:
            since = jnp.maximum(since, sub(spk))  # 'or' for bool spikes, max of 0/1 floats with a surrogate
        if track_norm:
            norm = jnp.max(generator_norm(a, consts.delta, consts.g1, consts.g2, consts.dt))
            stats = stats._replace(norm=jnp.maximum(stats.norm, norm))
        if current_kind == "fn":
            ok = jnp.all(jnp.isfinite(i_t))
            bad = jnp.where((stats.bad_current < 0) & ~ok, s.t - 1, stats.bad_current)
            stats = stats._replace(bad_current=bad)
        return (s, cnt, since, stats), (spk if events else None)

    def block(carry, rows):
        if every == 1:  # no inner loop, so that the outer scan's unroll fuses consecutive steps
            carry, spk = one(carry, None if rows is None else rows[0])
            spk = None if spk is None else spk[None]
        else:
            carry, spk = jax.lax.scan(one, carry, rows, length=every, unroll=min(unroll, every))
        s, cnt, since, stats = carry
        rec = observe(jax.tree_util.tree_map(sub, s), observables)
        if "spikes" in names:
            rec["spikes"] = since
            since = jnp.zeros_like(since)
        return (s, cnt, since, stats), (rec, spk)

    n = state.v.shape[0]
    k = n if idx is None else idx.shape[0]
    since = jnp.zeros((k,), bool if cfg.surrogate is None else state.v.dtype)
    stats = _Stats(norm=jnp.zeros((), state.v.dtype), bad_current=jnp.full((), -1, jnp.int32))
    rows = None
    blocks = length // every
    if current_kind == "array":
        rows = current_value.reshape(blocks, every, -1)
    carry = (state, count, since, stats)
    if segment is None or segment >= blocks:
        carry, (rec, spk) = jax.lax.scan(block, carry, rows, length=blocks, unroll=unroll if every == 1 else 1)
    else:
        carry, (rec, spk) = _segmented_scan(block, carry, rows, blocks, segment)
    state, count, _, stats = carry
    if events:
        spk = spk.reshape(length, n)
    return state, count, stats, rec, spk


def _segmented_scan(body, carry, rows, blocks: int, segment: int):
    """``lax.scan(body, carry, rows, length=blocks)`` with each run of ``segment`` blocks rematerialised
    (``jax.checkpoint``): reverse mode then stores the carry at segment boundaries and one segment's
    intermediates at a time, ``O(blocks/segment + segment)`` instead of ``O(blocks)``."""
    whole = blocks // segment * segment

    @functools.partial(jax.checkpoint, prevent_cse=False)
    def run_segment(c, seg_rows):
        return jax.lax.scan(body, c, seg_rows, length=segment)

    head = None if rows is None else rows[:whole].reshape((whole // segment, segment) + rows.shape[1:])
    carry, ys = jax.lax.scan(run_segment, carry, head, length=whole // segment)
    ys = jax.tree_util.tree_map(lambda y: y.reshape((whole,) + y.shape[2:]), ys)
    if whole < blocks:
        tail = None if rows is None else rows[whole:]
        carry, tail_ys = jax.lax.scan(body, carry, tail, length=blocks - whole)
        ys = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), ys, tail_ys)
    return carry, ys


_chunk_jit = jax.jit(
    _chunk,
    static_argnames=(
        "cfg", "current_kind", "current_fn", "length", "every", "names", "events", "track_norm", "unroll", "segment"
    ),
)


def _available_host_bytes() -> int:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
        return 8 * 2**30


def bound_a(params: NeuronParams, state: State, current: Current) -> float:
    """Rigorous bound on ``|a|``, ``a = (V - v_rest)/(v_th - v_rest)``, over the run when the current's
    range is known, else the default.

    Step 2 makes ``a' = k a + (1 - k) d`` with ``k = exp(-dt/tau_m)`` and the drive
    ``d = r_m I / (v_th - v_rest)``, or ``a' = 0`` while refractory. From above: ``a >= 1`` spikes and
    resets, so every ``a`` that enters a step is ``<= max(a_0, 1)``, and ``a' <= k max(a_0, 1) + (1 - k) d_max``
    (the drive moves ``a`` by only ``(1 - k) d`` per step). From below, ``a'`` is a convex combination of
    the previous ``a`` and ``d``, so ``a' >= min(a_0, 0, d_min)``.
    """
    if current.low is None or not is_concrete((params, state.v)):
        return DEFAULT_A_BOUND
    p = params
    inv_range = 1.0 / (np.asarray(p.v_th, np.float64) - np.asarray(p.v_rest, np.float64))
    a0 = (np.asarray(state.v, np.float64) - np.asarray(p.v_rest, np.float64)) * inv_range
    k = np.exp(-np.asarray(p.dt, np.float64) / np.asarray(p.tau_m, np.float64))
    ends = [np.asarray(p.r_m, np.float64) * inv_range * i for i in (current.low, current.high)]
    d_max, d_min = np.maximum(*ends), np.minimum(*ends)
    high = float(np.max(k * np.maximum(np.max(a0), 1.0) + (1.0 - k) * d_max))
    low = float(min(np.min(a0), 0.0, np.min(d_min)))
    return max(high, -low) * (1 + 1e-6)


def _check_names(record: Sequence[str]) -> tuple[str, ...]:
    if isinstance(record, str):
        record = (record,)
    names = tuple(record)
    for name in names:
        if name not in RECORDABLE:
            raise ConfigurationError(f"Argument `record` must name quantities from {RECORDABLE}, but contains {name!r}")
    return names


def _check_neurons(neurons: Any, n: int) -> np.ndarray | None:
    if neurons is None:
        return None
    if isinstance(neurons, slice):
        idx = np.arange(n)[neurons]
    else:
        idx = np.asarray(neurons)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise ConfigurationError(f"Argument `neurons` as a mask must have shape ({n},), but has {idx.shape}")
            idx = np.flatnonzero(idx)
        elif not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1:
            raise ConfigurationError("Argument `neurons` must be None, a slice, a bool mask or a 1-D int array")
    if idx.size == 0:
        raise ConfigurationError("Argument `neurons` selects no neuron")
    if idx.min() < -n or idx.max() >= n:
        bad = int(idx[(idx < -n) | (idx >= n)][0])
        raise ConfigurationError(f"Argument `neurons` has index {bad}, outside a population of {n}")
    return np.where(idx < 0, idx + n, idx).astype(np.int32)


def chunk_length(chunk_steps: int | None, steps: int, every: int, bytes_per_step: float, progress: bool) -> int:
    """Steps per compiled chunk: whole sampling periods, device buffers under ``_CHUNK_BYTES``,
    and about 100 chunks when a progress bar is shown."""
    if chunk_steps is None:
        chunk = max(every, int(_CHUNK_BYTES // max(bytes_per_step, 1)) // every * every) if bytes_per_step else steps
        if progress:
            chunk = min(chunk, max(every, math.ceil(steps / 100 / every) * every))
    else:
        if not isinstance(chunk_steps, (int, np.integer)) or chunk_steps < 1:
            raise ConfigurationError(f"Argument `chunk_steps` must be an int >= 1, but is {chunk_steps!r}")
        chunk = max(every, int(chunk_steps) // every * every)
    return max(1, min(chunk, steps))


def _record_bytes(names: tuple[str, ...], k: int, itemsize: int, spike_bytes: int = 1) -> int:
    """Bytes of one sample of the recorded quantities for ``k`` neurons."""
    total = 0
    for name in names:
        if name == "events":
            continue
        per = _BYTES[name] * (spike_bytes if name == "spikes" else itemsize * (2 if name == "rho" else 1))
        total += per * k
    return total


def check_event_capacity(n_events: int, event_capacity: int, step: int) -> None:
    """Raise :class:`RecordingError` once a run has produced more than ``event_capacity`` spike events
    (by absolute ``step``): events are never dropped silently."""
    if n_events > event_capacity:
        raise RecordingError(
            f"Spike events exceeded event_capacity={event_capacity} by step {step}: "
            f"raise event_capacity or record fewer steps per call"
        )


def check_budget(
    names: tuple[str, ...],
    n: int,
    idx: np.ndarray | None,
    dtype: Any,
    steps: int,
    every: int,
    event_capacity: int,
    max_record_bytes: int | None,
    spike_bytes: int = 1,
) -> int:
    """Raise :class:`RecordingError` before a run whose recordings would not fit in host memory;
    return the bytes of one sample."""
    k = n if idx is None else len(idx)
    sample_bytes = _record_bytes(names, k, jnp.dtype(dtype).itemsize, spike_bytes)
    total = sample_bytes * (steps // every) + (16 * event_capacity if "events" in names else 0)
    limit = max_record_bytes if max_record_bytes is not None else _available_host_bytes() // 2
    if total > limit:
        raise RecordingError(
            f"Recording {names} for {steps} steps x {k} neurons needs {total / 2**30:.2f} GiB, more than "
            f"the {limit / 2**30:.2f} GiB allowed: record fewer neurons (neurons=...), sample less often "
            f"(record_every=...), or record spikes as ('events',) instead of a dense raster"
        )
    return sample_bytes


def simulate(
    params: NeuronParams,
    state: State,
    current: Any,
    steps: int | None = None,
    key: jax.Array | None = None,
    *,
    record: Sequence[str] = (),
    neurons: Any = None,
    record_every: int = 1,
    backend: str = "jax",
    progress: bool = False,
    chunk_steps: int | None = None,
    event_capacity: int = 10_000_000,
    max_record_bytes: int | None = None,
    unroll: int | None = None,
    surrogate: Surrogate | None = None,
    checkpoint: bool | int | None = None,
    precise: bool = False,
) -> SimulationResult:
    """Simulate ``steps`` steps of a population (DESIGN §1), recording what is asked.

    Args:
        params: :class:`NeuronParams` of the population (fields scalar or ``(n,)``).
        state: initial :class:`PureState`/:class:`MixedState` (from :func:`qsn.init_state`).
        current: injected current (``r_m * I`` in mV): scalar, ``(n,)``, ``(T, n)``, or a function
            ``t_index -> (n,)`` of the absolute step index.
        steps: number of steps ``T`` (optional when ``current`` is ``(T, n)``).
        key: ``jax.random`` key; required for jump spiking and pure mode with finite ``t1``/``t2``.
        record: any of ``"spikes"`` ``(T/k, m)`` bool, ``"v"`` ``(T/k, m)`` mV, ``"rho"``
            ``(T/k, m, 2, 2)``, ``"p1"``, ``"coherence"``, ``"entropy"`` (bits) ``(T/k, m)``, and
            ``"events"`` (every spike of the whole population as ``(step, neuron)`` pairs).
            Spike counts are always recorded.
        neurons: the ``m`` neurons to record: None (all), a slice, a bool mask or int indices.
        record_every: sample every ``k`` steps (after steps ``k-1, 2k-1, ...``); ``"spikes"`` then
            marks a spike anywhere in the period.
        backend: ``"jax"`` (default, XLA) or ``"cupy"`` (the fused CUDA population kernel, extra ``qsn[cuda]``:
            float32, records ``"spikes"``/``"events"``, random draws from Philox rather than ``jax.random``;
            see docs/kernels.md).
        progress: show a tqdm progress bar on stderr.
        chunk_steps: steps per compiled chunk (default: what keeps device buffers under 128 MiB).
        event_capacity: most spike events kept; more raises :class:`RecordingError`.
        max_record_bytes: memory the recordings may take (default: half the free host memory).
        unroll: scan unroll factor (default: 1, or per device and mode for runs of >= 1e9 neuron-steps).
        surrogate: a :class:`qsn.surrogate.Surrogate` makes the run differentiable end to end (``jax.grad``
            through the scan, BPTT): spikes, ``"spikes"`` records and ``spike_count`` are then floats
            carrying surrogate gradients; forward values are unchanged (unless the surrogate is ``smooth``).
        checkpoint: bound reverse-mode memory by rematerialising the scan in segments (``jax.checkpoint``):
            ``True`` for segments of ~sqrt(T) sampling periods (memory ``O(sqrt(T))`` instead of ``O(T)``,
            about one extra forward pass of compute), an int for segments of that many periods.
        precise: ``backend="cupy"`` only: IEEE sqrt/sin/cos/division in the JAX path's order of operations
            instead of the SFU intrinsics (slower; the JAX path is always IEEE).

    Returns:
        :class:`SimulationResult` with ``state``, ``spike_count``, the recordings and ``rates()``.

    Raises:
        ConfigurationError: a bad argument, naming it. InvalidInputError: a bad current (with the step
        and neuron of a non-finite value). RecordingError: recordings that would not fit (raised
        before running) or more events than ``event_capacity``. NumericalInstabilityError: a
        non-finite state.

    Example:
        >>> p = qsn.NeuronParams(delta=0.3)
        >>> s = qsn.init_state(p, n=1000)
        >>> r = qsn.simulate(p, s, jnp.linspace(10.0, 30.0, 1000), steps=10_000, record=("spikes",))
        >>> r.rates().mean()
    """
    if backend not in BACKENDS:
        raise ConfigurationError(f"Argument `backend` must be one of {BACKENDS}, but is {backend!r}")
    mode = mode_of(state)
    n = check_state(params, state)
    dtype = state.v.dtype
    cur = as_current(current, n, dtype)
    steps = require_steps(cur, steps)
    names = _check_names(record)
    idx = _check_neurons(neurons, n)
    if not isinstance(record_every, (int, np.integer)) or record_every < 1:
        raise ConfigurationError(f"Argument `record_every` must be an int >= 1, but is {record_every!r}")
    every = int(record_every)
    check_surrogate(surrogate)
    if not (checkpoint is None or isinstance(checkpoint, bool) or (isinstance(checkpoint, int | np.integer) and checkpoint >= 1)):
        raise ConfigurationError(f"Argument `checkpoint` must be None, a bool or an int >= 1, but is {checkpoint!r}")
    if backend == "cupy":
        if surrogate is not None or checkpoint:
            raise ConfigurationError("surrogate= and checkpoint= (differentiable runs) need backend='jax'")
        from qsn import kernels

        check_budget(names, n, idx, dtype, steps, every, event_capacity, max_record_bytes)
        return kernels.simulate(
            params, state, current, steps, key, record=names, neurons=idx, record_every=every,
            progress=progress, chunk_steps=chunk_steps, event_capacity=event_capacity, precise=bool(precise),
        )
    check_dt(current, params)

    concrete = is_concrete((params, state, cur.value if cur.kind != "fn" else None, key))
    want_events = "events" in names
    if want_events and not concrete:
        raise ConfigurationError(
            "record=('events',) is not available inside jit/vmap (the event list has a data-dependent "
            "size); record 'spikes' there instead"
        )
    a_bound = bound_a(params, state, cur)
    # The plan is rigorous when the current's range is known; otherwise watch ||A dt|| as we go.
    track_norm = mode == "mixed" and (cur.low is None or not is_concrete((params, state)))
    cfg = step_config(params, mode, dtype, a_bound)._replace(surrogate=surrogate)
    check_key(cfg, key)
    consts = step_constants(params, dtype)
    platform = jax.devices()[0].platform if concrete else "cpu"
    unroll = int(unroll) if unroll is not None else default_unroll(platform, cfg, n, steps)
    if unroll < 1:
        raise ConfigurationError(f"Argument `unroll` must be >= 1, but is {unroll}")

    # Memory: recordings (whole run, host) and per-chunk device buffers, checked before running.
    spike_bytes = 1 if surrogate is None else jnp.dtype(dtype).itemsize  # bool spikes, or floats carrying gradients
    sample_bytes = check_budget(names, n, idx, dtype, steps, every, event_capacity, max_record_bytes, spike_bytes)
    chunk = chunk_length(chunk_steps, steps, every, sample_bytes / every + (n * spike_bytes if want_events else 0), progress)

    dev_idx = None if idx is None else jnp.asarray(idx)
    count = jnp.zeros((n,), jnp.int32 if surrogate is None else dtype)
    t0 = int(state.t) if is_concrete(state.t) else 0
    pieces: dict[str, list] = {name: [] for name in names if name != "events"}
    ev_steps: list[np.ndarray] = []
    ev_neurons: list[np.ndarray] = []
    n_events = 0
    bar = progress_bar(steps, f"qsn {n} neurons", progress)
    done = 0
    while done < steps:
        length = min(chunk, steps - done)
        rec_length = length // every * every
        length = rec_length if rec_length else length  # a trailing partial period runs unsampled
        sampled = names if rec_length else tuple(x for x in names if x == "events")
        rows = cur.value[done : done + length] if cur.kind == "array" else cur.value
        run = functools.partial(
            _chunk_jit,
            consts,
            state,
            count,
            None if cur.kind == "fn" else rows,
            key,
            dev_idx,
            current_kind=cur.kind,
            current_fn=cur.value if cur.kind == "fn" else None,
            length=length,
            every=every if rec_length else length,
            names=tuple(x for x in sampled if x != "events"),
            events=want_events,
            track_norm=track_norm,
            unroll=unroll,
            segment=_segment(checkpoint, (length // every) if rec_length else 1),
        )
        cfg, (new_state, new_count, stats, rec, spk) = _run_exact(run, cfg, dtype, track_norm, concrete)
        if cur.kind == "fn" and concrete and int(stats.bad_current) >= 0:
            t_bad = int(stats.bad_current)
            row = np.asarray(jnp.broadcast_to(cur.value(jnp.int32(t_bad)), (n,)))
            neuron = int(np.flatnonzero(~np.isfinite(row))[0])
            raise InvalidInputError(f"Argument `current` must be finite, but is {row[neuron]!r} at step {t_bad}, neuron {neuron}")
        state, count = new_state, new_count
        if concrete:
            check_finite(state._asdict(), int(state.t))
        for name, arr in rec.items():
            pieces[name].append(np.asarray(arr) if concrete else arr)
        if want_events:
            steps_i, neurons_i = np.nonzero(np.asarray(spk))
            n_events += steps_i.size
            check_event_capacity(n_events, event_capacity, t0 + done + length)
            ev_steps.append(steps_i.astype(np.int64) + t0 + done)
            ev_neurons.append(neurons_i.astype(np.int64))
        done += length
        bar.update(length)
    bar.close()
    cat = (lambda xs: np.concatenate(xs)) if concrete else (lambda xs: jnp.concatenate(xs))
    records = {name: cat(parts) for name, parts in pieces.items() if parts}
    events = SpikeEvents.from_chunks(ev_steps, ev_neurons) if want_events else None
    return SimulationResult(
        state=state,
        spike_count=np.asarray(count) if concrete else count,
        records=records,
        events=events,
        steps=steps,
        t0=t0,
        dt=float(params.dt) if is_concrete(params.dt) else float("nan"),
        record_every=every,
        neurons=None if idx is None else tuple(int(i) for i in idx),
    )


def _segment(checkpoint: bool | int | None, blocks: int) -> int | None:
    """Sampling periods per rematerialised segment of a chunk of ``blocks`` periods (None: no remat)."""
    if checkpoint is None or checkpoint is False:
        return None
    return max(1, math.isqrt(blocks - 1) + 1) if checkpoint is True else int(checkpoint)


def _run_exact(run, cfg: StepConfig, dtype: Any, track_norm: bool, concrete: bool):
    """Run a chunk; if the mixed-mode drive outgrew the propagator plan, re-plan and run it again.

    Only runs whose current range is unknown (callable currents, traced inputs) are tracked. Under
    jit/vmap nothing can be re-run, so an exceeded plan raises at run time through ``eqx.error_if``.
    """
    while True:
        out = run(cfg=cfg)
        if not track_norm:
            return cfg, out
        state, stats = out[0], out[2]
        capacity = plan_capacity(cfg.plan, dtype)
        if not concrete:
            state = eqx.error_if(
                state,
                stats.norm > capacity,
                "mixed-mode propagator left its exact range (||A dt|| above the plan's bound): "
                "call qsn.simulate outside jit/vmap, or with concrete NeuronParams and current",
            )
            return cfg, (state,) + tuple(out[1:])
        seen = float(stats.norm)
        if seen <= capacity:
            return cfg, out
        cfg = cfg._replace(plan=series_plan(seen * 1.25, dtype))
