"""The JAX backend (the default): each chunk of a run is one compiled ``lax.scan`` of the stepper.

Works on every device JAX has (CPU, GPU), in float32 and float64, inside ``jit``/``vmap`` and under
``grad`` (with a surrogate, and ``checkpoint`` to bound reverse-mode memory). A chunk is compiled
once per (length, configuration) and cached by JAX (and across processes by
:mod:`qsn.compile_cache`).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn import dynamics
from qsn.backends import Backend
from qsn.driver import PopulationRun, chunk_length, drive
from qsn.errors import InvalidInputError
from qsn.observables import observe
from qsn.params import is_concrete
from qsn.recording import Recorder
from qsn.result import SimulationResult
from qsn.runtime import check_finite
from qsn.stepper import Stepper, drive_bound

__all__ = ["JaxBackend", "DEFAULT_UNROLL", "default_unroll"]

# Scan unroll factor per (platform, mode) for long runs of large populations. CPU: from
# bench/results/population-cpu.json at n = 1e6 (pure: 4 best; mixed: 1, 2 and 4 within run-to-run
# noise of each other, so the cheapest to compile). GPU: not yet measured by this project;
# re-measure with bench/bench_population.py.
DEFAULT_UNROLL = {("cpu", "pure"): 4, ("cpu", "mixed"): 1, ("gpu", "pure"): 8, ("gpu", "mixed"): 8}
# Compile time grows with the unroll (measured on CPU: 0.35 s at 1 vs 3.7 s at 8 for one neuron, and
# ~15 s at 8 with random numbers), so small runs and stochastic configurations use 1.
_UNROLL_MIN_WORK = 1e9  # neuron-steps


def default_unroll(platform: str, stepper: Stepper, n: int, steps: int) -> int:
    """The scan unroll factor the JAX backend uses when none is given."""
    if stepper.needs_key or n * steps < _UNROLL_MIN_WORK:
        return 1
    return DEFAULT_UNROLL.get((platform, stepper.mode), 1)


class _Stats(NamedTuple):
    norm: jax.Array  # () max ||A dt|| seen (mixed mode), for the propagator plan
    bad_current: jax.Array  # () int32 first step with a non-finite current (callable currents), else -1


def _chunk(stepper: Stepper, state, count, current, key, idx, *, length: int, every: int, names: tuple[str, ...],
           events: bool, track_norm: bool, unroll: int, segment: int | None = None, phase: int | None = None):
    """Advance ``length`` steps (a multiple of ``every``); sample ``names`` after every ``every`` steps;
    rematerialise runs of ``segment`` sampling periods in reverse mode (None: store every step).

    ``phase``: ``state.t % RENORM_PERIOD`` when known on the host. Each step is then compiled knowing
    whether it corrects the norm (:func:`qsn.dynamics.renormalises`): the scan's body holds
    ``RENORM_PERIOD // gcd(every, RENORM_PERIOD)`` sampling periods, whose steps run as
    :func:`_run_steps` lays them out. None: one period per body, each step deciding from ``state.t``.
    """
    # Subset first, then observe: the observables of k recorded neurons cost O(k), not O(n).
    sub = (lambda x: x) if idx is None else (lambda x: x[idx] if x.ndim else x)
    observables = tuple(n for n in names if n != "spikes")

    def one(carry, row, renorm):
        s, cnt, since, stats = carry
        i_t = current.at(s.t, row)
        s, spk, a = stepper(s, i_t, key, renorm=renorm)
        cnt = cnt + spk.astype(cnt.dtype)
        if "spikes" in names:
            since = jnp.maximum(since, sub(spk))  # 'or' for bool spikes, max of 0/1 floats with a surrogate
        if track_norm:
            stats = stats._replace(norm=jnp.maximum(stats.norm, stepper.drive_norm(a)))
        if not current.checked:
            ok = jnp.all(jnp.isfinite(i_t))
            stats = stats._replace(bad_current=jnp.where((stats.bad_current < 0) & ~ok, s.t - 1, stats.bad_current))
        return (s, cnt, since, stats), (spk if events else None)

    def block(carry, rows, at):  # one sampling period from phase `at`
        carry, spk = _run_steps(one, carry, rows, every, at, unroll)
        s, cnt, since, stats = carry
        rec = observe(jax.tree_util.tree_map(sub, s), observables)
        if "spikes" in names:
            rec["spikes"] = since
            since = jnp.zeros_like(since)
        return (s, cnt, since, stats), (rec, spk)

    period = dynamics.RENORM_PERIOD
    group = 1 if phase is None else period // math.gcd(every, period)  # periods until the phase repeats
    phases = [None if phase is None else (phase + b * every) % period for b in range(group)]

    def body(carry, rows):  # `group` sampling periods
        outs = []
        for b in range(group):
            carry, out = block(carry, None if rows is None else rows[b], phases[b])
            outs.append(out)
        return carry, _stack(outs)

    n = state.v.shape[0]
    k = n if idx is None else idx.shape[0]
    since = jnp.zeros((k,), bool if stepper.config.surrogate is None else state.v.dtype)
    stats = _Stats(norm=jnp.zeros((), state.v.dtype), bad_current=jnp.full((), -1, jnp.int32))
    blocks = length // every
    groups, rest = divmod(blocks, group)
    rows = None if current.rows is None else current.rows.reshape(blocks, every, -1)
    carry = (state, count, since, stats)
    outs = []
    if groups:
        head = None if rows is None else rows[:groups * group].reshape((groups, group) + rows.shape[1:])
        # every == 1: the body is straight-line steps, so the scan's unroll fuses consecutive steps
        outer = max(1, unroll // group) if every == 1 else 1
        seg = None if segment is None else max(1, segment // group)
        if seg is None or seg >= groups:
            carry, out = jax.lax.scan(body, carry, head, length=groups, unroll=min(outer, groups))
        else:
            carry, out = _segmented_scan(body, carry, head, groups, seg)
        outs.append(jax.tree_util.tree_map(lambda y: y.reshape((groups * group,) + y.shape[2:]), out))
    for b in range(rest):  # the periods past the last whole group, from the same phase as a group
        carry, out = block(carry, None if rows is None else rows[groups * group + b], phases[b])
        outs.append(_stack([out]))
    rec, spk = _concat(outs)
    state, count, _, stats = carry
    if events:
        spk = spk.reshape(length, n)
    return state, count, stats, rec, spk


def _run_steps(one, carry, rows, length: int, phase: int | None, unroll: int):
    """``length`` steps of ``one(carry, row, renorm) -> (carry, out)``; the outs stacked ``(length, ...)``.

    ``phase`` (``t % RENORM_PERIOD`` of the first step, known on the host): a head of steps up to the
    first step with ``t % RENORM_PERIOD == 0``, a scan whose body is ``RENORM_PERIOD`` steps with the
    norm correction in the last, and a tail of the steps left; every step is compiled with its own
    ``renorm`` (the correction is absent from three steps in four). None: a scan of single steps that
    each decide from ``state.t`` at run time.
    """
    row = (lambda i: None) if rows is None else (lambda i: rows[i])
    if phase is None:
        if length == 1:  # no loop, so that an enclosing scan's unroll fuses consecutive steps
            carry, out = one(carry, row(0), None)
            return carry, _stack([out])
        return jax.lax.scan(lambda c, r: one(c, r, None), carry, rows, length=length, unroll=min(unroll, length))
    period = dynamics.RENORM_PERIOD
    head = min(length, (period - phase) % period)
    bodies = (length - head) // period
    outs = []
    for i in range(head):
        carry, out = one(carry, row(i), dynamics.renormalises(phase + i))
        outs.append(_stack([out]))
    if bodies:

        def body(c, r):
            steps = []
            for j in range(period):
                c, out = one(c, None if r is None else r[j], dynamics.renormalises(j))
                steps.append(out)
            return c, _stack(steps)

        mid = None if rows is None else rows[head:head + bodies * period].reshape((bodies, period) + rows.shape[1:])
        carry, out = jax.lax.scan(body, carry, mid, length=bodies, unroll=max(1, min(unroll // period, bodies)))
        outs.append(jax.tree_util.tree_map(lambda y: y.reshape((bodies * period,) + y.shape[2:]), out))
    for i in range(head + bodies * period, length):  # phases 0 .. period - 2: no correction
        carry, out = one(carry, row(i), dynamics.renormalises(phase + i))
        outs.append(_stack([out]))
    return carry, _concat(outs)


def _stack(outs: list):
    """Per-step (or per-period) outputs stacked on a new leading axis (None stays None)."""
    return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *outs)


def _concat(outs: list):
    """Stacked outputs concatenated along their leading axis (None stays None)."""
    return outs[0] if len(outs) == 1 else jax.tree_util.tree_map(lambda *x: jnp.concatenate(x), *outs)


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


_chunk_jit = jax.jit(_chunk, static_argnames=("length", "every", "names", "events", "track_norm", "unroll", "segment",
                                             "phase"))


def _renorm_layout(stepper: Stepper, unroll: int, state: Any) -> bool:
    """True when a chunk lays its steps out by their phase of the norm correction (``_chunk(phase=...)``):
    a pure step that corrects the norm, an unroll of at least one correction period (a body of fewer
    steps would need one compiled copy per phase: more compile time for the small runs that use
    unroll 1) and ``state.t`` known on the host. Otherwise each step selects the correction at run time;
    both give the same values."""
    return stepper.corrects_norm and unroll >= dynamics.RENORM_PERIOD and is_concrete(state.t)


def _segment(checkpoint: bool | int | None, blocks: int) -> int | None:
    """Sampling periods per rematerialised segment of a chunk of ``blocks`` periods (None: no remat)."""
    if checkpoint is None or checkpoint is False:
        return None
    return max(1, math.isqrt(blocks - 1) + 1) if checkpoint is True else int(checkpoint)


class JaxBackend(Backend):
    """``backend="jax"``: XLA on any JAX device; everything :func:`qsn.simulate` offers."""

    name = "jax"
    options = ()

    def simulate(self, run: PopulationRun) -> SimulationResult:
        self.check_options(run.options.backend)
        opts, rec_spec = run.options, run.recording
        params, state, cur, key = run.params, run.state, run.current, run.key
        dtype = state.v.dtype
        n = run.n
        stepper = Stepper.for_state(params, state, a_bound=drive_bound(params, state, cur), surrogate=opts.surrogate)
        stepper.check_key(key)
        # The plan is rigorous when the current's range is known; otherwise watch ||A dt|| as we go.
        track_norm = stepper.tracks_drive and (cur.low is None or not is_concrete((params, state)))
        platform = jax.devices()[0].platform if run.concrete else "cpu"
        unroll = int(opts.unroll) if opts.unroll is not None else default_unroll(platform, stepper, n, run.steps)
        spike_bytes = 1 if opts.surrogate is None else jnp.dtype(dtype).itemsize  # bool, or floats carrying gradients
        itemsize = jnp.dtype(dtype).itemsize
        rec_spec.check_budget(run.steps, itemsize, spike_bytes)
        every = rec_spec.every
        chunk = chunk_length(opts.chunk_steps, run.steps, every, rec_spec.device_bytes_per_step(itemsize, spike_bytes),
                             opts.progress)
        dev_idx = None if rec_spec.neurons is None else jnp.asarray(rec_spec.neurons)
        recorder = Recorder(rec_spec, run.t0, run.concrete)
        carry = {"state": state, "count": jnp.zeros((n,), jnp.int32 if opts.surrogate is None else dtype),
                 "stepper": stepper}

        aligned = _renorm_layout(stepper, unroll, state)

        def advance(start: int, length: int, sampled: bool):
            names = rec_spec.sampled if sampled else ()
            run_chunk = functools.partial(
                _chunk_jit, state=carry["state"], count=carry["count"], current=cur.window(start, length), key=key,
                idx=dev_idx, length=length, every=every if sampled else length, names=names, events=rec_spec.events,
                track_norm=track_norm, unroll=unroll, segment=_segment(opts.checkpoint, length // every if sampled else 1),
                phase=(run.t0 + start) % dynamics.RENORM_PERIOD if aligned else None)
            stepper, (new_state, new_count, stats, samples, spk) = self._run_planned(run_chunk, carry["stepper"],
                                                                                      track_norm, run.concrete)
            if not cur.checked and run.concrete and int(stats.bad_current) >= 0:
                _raise_bad_current(cur, int(stats.bad_current), n)
            if run.concrete:
                check_finite(new_state._asdict(), int(new_state.t))
            recorder.add_samples(samples)
            if rec_spec.events:
                recorder.add_spike_rows(spk, start, start + length)
            carry.update(state=new_state, count=new_count, stepper=stepper)
            return new_state

        drive(run.steps, chunk, advance, every=every, progress=opts.progress, desc=f"qsn {n} neurons",
              on_chunk=opts.on_chunk)
        spike_dtype = bool if opts.surrogate is None else dtype
        count = carry["count"]
        return SimulationResult(
            state=carry["state"],
            spike_count=np.asarray(count) if run.concrete else count,
            records=recorder.records(itemsize, spike_dtype),
            events=recorder.events(),
            steps=run.steps,
            t0=run.t0,
            dt=float(params.dt) if is_concrete(params.dt) else float("nan"),
            record_every=every,
            neurons=None if rec_spec.neurons is None else tuple(int(i) for i in rec_spec.neurons),
        )

    @staticmethod
    def _run_planned(run_chunk, stepper: Stepper, track_norm: bool, concrete: bool):
        """Run a chunk; if the mixed-mode drive outgrew the propagator plan, re-plan and run it again.

        Only runs whose current range is unknown (callable currents, traced inputs) are tracked. Under
        jit/vmap nothing can be re-run, so an exceeded plan raises at run time through ``eqx.error_if``.
        """
        while True:
            out = run_chunk(stepper)
            if not track_norm:
                return stepper, out
            norm = out[2].norm
            if not concrete:
                state = eqx.error_if(
                    out[0], norm > stepper.capacity(),
                    "mixed-mode propagator left its exact range (||A dt|| above the plan's bound): "
                    "call qsn.simulate outside jit/vmap, or with concrete NeuronParams and current",
                )
                return stepper, (state,) + tuple(out[1:])
            if stepper.covers(norm):
                return stepper, out
            stepper = stepper.replanned(norm)


def _raise_bad_current(cur: Any, t_bad: int, n: int) -> None:
    row = np.asarray(jnp.broadcast_to(cur.at(jnp.int32(t_bad), None), (n,)))
    neuron = int(np.flatnonzero(~np.isfinite(row))[0])
    raise InvalidInputError(f"Argument `current` must be finite, but is {row[neuron]!r} at step {t_bad}, neuron {neuron}")
