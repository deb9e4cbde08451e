"""The fused population kernel from Python: argument assembly, chunking over time, and the
:func:`qsn.simulate`-shaped result, on either runner (CUDA through CuPy, or the host emulation).

The kernel runs all of DESIGN §1 in float32, with parameters per neuron or shared: pure and mixed
modes, T1/T2 (exact Lindblad in mixed mode, unravelled stochastically in pure mode) and quantum-jump
spiking. Random words come from Philox counters under the run's key, not from ``jax.random``: the same
key gives the same run on this backend, and the same distributions as the JAX path.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsn.current import CallableCurrent, Current, SampledCurrent, as_current, require_steps
from qsn.dynamics import SERIES_ANGLE
from qsn.errors import ConfigurationError
from qsn.params import NeuronParams
from qsn.philox import seed_words
from qsn.poisson_current import PoissonCurrent, check_dt
from qsn.driver import PopulationRun, chunk_length, drive
from qsn.observables import OBSERVABLES
from qsn.recording import Recorder
from qsn.result import SimulationResult
from qsn.runtime import check_finite
from qsn.stepper import Stepper, drive_bound
from qsn.state import MixedState, PureState, State, check_state, mode_of
from qsn.kernels.runner import Runner

__all__ = ["run", "simulate", "unpack_spikes", "Outputs", "check_supported", "kernel_defines", "small_angle", "check_input", "Input", "INPUTS"]

# Bit order of the kernel's per_neuron mask (enum qsn_param_bit in population.cu) and of its parameter
# arguments: _PARAM_BITS, then the current and the Poisson weight, then _STOCHASTIC_BITS.
_PARAM_BITS = ("v_rest", "v_th", "v_reset", "decay", "gain", "inv_range", "n_ref", "delta", "g1", "g2")  # bits 0-9
_CURRENT_BIT, _WEIGHT_BIT = len(_PARAM_BITS), len(_PARAM_BITS) + 1  # 10, 11
_STOCHASTIC_BIT0 = _WEIGHT_BIT + 1
_STOCHASTIC_BITS = ("dephase_std", "relax_keep", "jump_prob", "jump_keep")  # bits 12-15
INPUTS = {"const": 0, "array": 1, "poisson": 2}


class Outputs(dict):
    """What one :func:`run` produced, as arrays of the runner's ``xp``: ``count`` (n,) int32 always;
    ``words`` (T, ceil(n/32)) uint32 bit-packed spikes; ``events`` ``(step, neuron)`` int32 pairs and
    ``n_events``; ``ties`` (n,) int32 near-threshold steps; ``state`` the final state arrays."""


def check_supported(params: NeuronParams, state: State, current: Any, backend: str = "cupy") -> None:
    """Raise :class:`ConfigurationError` naming the first feature the fused kernel does not run
    (``backend``: the name the messages give, the runner's: ``"cupy"``, ``"native"``, ``"host"``)."""
    if jnp.dtype(state.v.dtype) != jnp.float32:
        raise ConfigurationError(f"backend={backend!r} runs float32 states, but the state is {state.v.dtype}")
    check_dt(current, params)
    if callable(current) and not isinstance(current, (PoissonCurrent, np.ndarray, jax.Array)):
        raise ConfigurationError(
            f"backend={backend!r} takes a scalar, (n,) or (T, n) current, or a qsn.PoissonCurrent; a function of the "
            "step index runs only on backend='jax'"
        )


class Input(NamedTuple):
    """A run's input as the kernel sees it: ``kind`` (the kernel's input code, a key of :data:`INPUTS`),
    the typed :class:`qsn.current.Current` (a :class:`qsn.PoissonCurrent` is a
    :class:`~qsn.current.CallableCurrent` with the table's range) and the bound on ``|a|`` over the run."""

    kind: str
    current: Current
    a_bound: float


def check_input(params: NeuronParams, state: State, current: Any, backend: str = "cupy") -> Input:
    """Check a run for the fused kernel (state, supported features, current) and bound its drive;
    ``backend`` is the name the messages give (see :func:`check_supported`).

    Raises:
        ConfigurationError, InvalidInputError, InvalidStateError: naming the field at fault.
    """
    n = check_state(params, state)
    check_supported(params, state, current, backend)
    if isinstance(current, PoissonCurrent) and current.n != n:
        raise ConfigurationError(f"PoissonCurrent has n={current.n} but the population has {n} neurons")
    cur = as_current(current, n, jnp.float32)
    return Input(_kind(cur), cur, drive_bound(params, state, cur))


def _kind(cur: Current) -> str:
    """The kernel's input code of a typed current (a callable reaches the kernel only as a PoissonCurrent)."""
    if isinstance(cur, SampledCurrent):
        return "array"
    if isinstance(cur, CallableCurrent):
        return "poisson"
    return "const"


def small_angle(params: NeuronParams, a_bound: float) -> bool:
    """True when ``theta = sqrt(a^2 + delta^2) dt`` stays below the float32 series angle
    (:data:`qsn.dynamics.SERIES_ANGLE`) on every step, for ``|a| <= a_bound``."""
    theta = np.sqrt(a_bound**2 + np.max(np.asarray(params.delta, np.float64)) ** 2) * np.max(np.asarray(params.dt))
    return bool(theta < SERIES_ANGLE["float32"])


def kernel_defines(mode: str, kind: str, plan: Any, *, small: bool = False, spikes: bool = False,
                   events: bool = False, ties: bool = False, record: bool = False, analysis: bool = False, jumps: bool = False,
                   dephasing: bool = False, relaxation: bool = False) -> tuple[tuple[str, int], ...]:
    """The compile-time configuration (``-D`` macros) of the population kernel: ``mode`` pure/mixed,
    input ``kind`` const/array/poisson, the mixed-mode :class:`qsn.lindblad.SeriesPlan`, ``small``
    (every step's angle is below the series angle, see :func:`small_angle`), the outputs, and
    ``analysis`` for the block tags that :mod:`qsn.kernels.ptx` reads; ``jumps``, ``dephasing`` and
    ``relaxation`` switch on the stochastic parts (the last two in pure mode only)."""
    return (
        ("QSN_ANALYSIS", int(analysis)),
        ("QSN_DEPHASE", int(dephasing and mode == "pure")),
        ("QSN_JUMPS", int(jumps)),
        ("QSN_RELAX", int(relaxation and mode == "pure")),
        ("QSN_SMALL_ANGLE", int(small)),
        ("QSN_EVENTS", int(events)),
        ("QSN_INPUT", INPUTS[kind]),
        ("QSN_MIXED", int(mode == "mixed")),
        ("QSN_PACK", int(spikes)),
        ("QSN_SUBSTEPS", plan.substeps if plan else 1),
        ("QSN_TERMS", plan.terms if plan else 1),
        ("QSN_TIES", int(ties)),
        ("QSN_RECORD", int(record)),
    )


def _per_neuron(value: Any, n: int) -> tuple[np.ndarray, bool]:
    arr = np.ascontiguousarray(np.asarray(value))
    if arr.ndim == 1 and arr.shape[0] == n and n > 1:
        return arr, True
    return arr.reshape(-1)[:1].copy(), False


def run(
    runner: Runner,
    params: NeuronParams,
    state: State,
    current: Any,
    steps: int,
    key: Any = None,
    *,
    spikes: bool = False,
    events: bool = False,
    event_capacity: int = 0,
    ties: bool = False,
    tie_tol: float = 2.0**-20,
    samples: tuple[int, np.ndarray] | None = None,
    precise: bool = False,
    a_bound: float | None = None,
) -> Outputs:
    """Advance ``state`` by ``steps`` steps in one launch of the fused kernel.

    Args:
        runner: :class:`~qsn.kernels.runner.CupyRunner` or :class:`~qsn.kernels.runner.HostRunner`.
        params, state: as for :func:`qsn.simulate` (float32; see :func:`check_supported`).
        current: scalar, ``(n,)``, ``(steps, n)`` (row ``s`` is this launch's step ``s``) or a
            :class:`qsn.PoissonCurrent` (drawn in the kernel at the absolute steps ``state.t + s``).
        steps: steps of this launch.
        key: ``jax.random`` key, required for quantum jumps and pure-mode T1/T2: it seeds the Philox
            counters ``(neuron, t, 1, 0)`` of each step's random words (the draws differ from the JAX
            path's, the distributions do not).
        spikes: also return the bit-packed spike words ``(steps, ceil(n/32))``.
        events: also return spike events, at most ``event_capacity`` (the count is exact).
        ties: count, per neuron, the steps whose ``V`` landed within ``tie_tol * |v_th|`` of ``v_th``.
        samples: ``(every, columns)``: after every ``every`` steps (``steps`` is a multiple of it) the
            neurons with ``columns[i] >= 0`` ((n,) int32) write their state into column ``columns[i]``
            of ``samples["v"]``, ``samples["q"]`` (``(steps // every, m)`` arrays, the fields of the
            state's mode), returned as ``out["samples"]``.
        precise: IEEE sqrt/sincos/division and no FMA contraction, instead of SFU intrinsics.
        a_bound: the run's bound on ``|a|`` from :func:`check_input`, whose checks of the state and
            current then hold for every launch of the run (:func:`simulate` passes it); None: this
            launch checks them itself.

    Returns:
        :class:`Outputs`.
    """
    xp = runner.xp
    mode = mode_of(state)
    f32 = np.float32
    if a_bound is None:
        inp = check_input(params, state, current, runner.name)
        require_steps(inp.current, steps)
        kind, a_bound = inp.kind, inp.a_bound
        drive = current.offset if kind == "poisson" else inp.current.value
    else:  # the caller checked the run: no host pass over the state or a (T, n) input per launch
        kind = "poisson" if isinstance(current, PoissonCurrent) else ("array" if jnp.ndim(current) == 2 else "const")
        drive = current.offset if kind == "poisson" else jnp.asarray(current, jnp.float32)
    n = int(state.v.shape[0])
    poisson = kind == "poisson"
    stepper = Stepper.build(params, mode, jnp.float32, a_bound=a_bound)
    stepper.check_key(key)
    cfg, consts = stepper.config, stepper.constants

    per_neuron = 0
    param_args = []
    for bit, name in enumerate(_PARAM_BITS):
        arr, per = _per_neuron(getattr(consts, name), n)
        per_neuron |= int(per) << bit
        param_args.append(xp.asarray(arr))
    threads = -(-n // 32) * 32
    if kind == "array":
        current_arg = runner.from_jax(drive if drive.shape[1] == n else jnp.broadcast_to(drive, (drive.shape[0], n)))
    else:
        arr, per = _per_neuron(np.asarray(drive, f32), n)
        per_neuron |= int(per) << _CURRENT_BIT
        current_arg = xp.asarray(arr)
    if poisson:
        weight, per = _per_neuron(current.weight, n)
        per_neuron |= int(per) << _WEIGHT_BIT
        cdf, seed = current.cdf, current.seed
    else:
        weight, cdf, seed = np.zeros(1, f32), np.zeros(1, f32), (0, 0)

    fields = ("re0", "im0", "re1", "im1") if mode == "pure" else ("x", "y", "z")
    copy = lambda a: xp.array(runner.from_jax(a), copy=True)  # noqa: E731  (kernels write state in place)
    v, ref = copy(state.v), copy(state.refractory)
    q = [copy(getattr(state, f)) for f in fields]
    if len(q) == 3:
        q.append(xp.zeros(1, f32))
    width = -(-n // 32)
    out = Outputs(count=xp.zeros(n, np.int32))
    words = xp.zeros((steps, width) if spikes else (1,), np.uint32)
    capacity = int(event_capacity) if events else 0
    ev_counter = xp.zeros(1, np.uint64)
    ev_step = xp.zeros(max(capacity, 1), np.int32)
    ev_neuron = xp.zeros(max(capacity, 1), np.int32)
    tie_count = xp.zeros(n if ties else 1, np.int32)
    if samples is not None:
        every, columns = samples
        m = max(int(np.max(columns)) + 1, 1) if len(columns) else 1
        rows = steps // every
        rec_col = xp.asarray(np.ascontiguousarray(columns, np.int32))
        rec = [xp.zeros((rows, m), np.float32) for _ in range(1 + len(fields))]
    else:
        every, m, rec_col = 1, 1, xp.zeros(1, np.int32)
        rec = [xp.zeros(1, np.float32) for _ in range(1 + len(fields))]
    rec_q = rec[1:] + [xp.zeros(1, np.float32)] * (4 - len(fields))
    defines = kernel_defines(mode, kind, cfg.plan, small=small_angle(params, a_bound), spikes=spikes, events=events,
                             ties=ties, record=samples is not None, jumps=cfg.jumps, dephasing=cfg.dephasing,
                             relaxation=cfg.relaxation)
    key_words = seed_words(key) if cfg.needs_key else (0, 0)
    for bit, name in enumerate(_STOCHASTIC_BITS, start=_STOCHASTIC_BIT0):
        arr, per = _per_neuron(getattr(consts, name), n)
        per_neuron |= int(per) << bit
        param_args.append(xp.asarray(arr))
    args = [
        np.int32(n), np.int64(threads), np.int32(steps), np.int32(int(state.t)),
        *param_args, np.int32(per_neuron), f32(params.dt), np.uint32(key_words[0]), np.uint32(key_words[1]),
        v, ref, *q,
        current_arg, xp.asarray(weight), xp.asarray(cdf), np.int32(len(cdf) if poisson else 0),
        np.uint32(seed[0]), np.uint32(seed[1]),
        out["count"], words, np.int32(width),
        ev_counter, ev_step, ev_neuron, np.uint64(capacity),
        tie_count, f32(tie_tol),
        np.int32(every), rec_col, np.int32(m), rec[0], *rec_q,
    ]
    runner.launch("population", "qsn_population", defines, precise, threads, args)
    if spikes:
        out["words"] = words
    if events:
        n_events = int(runner.to_host(ev_counter)[0])
        kept = min(n_events, capacity)
        out["events"] = (ev_step[:kept], ev_neuron[:kept])
        out["n_events"] = n_events
    if ties:
        out["ties"] = tie_count
    if samples is not None:
        out["samples"] = {"v": rec[0], **dict(zip(fields, rec[1:]))}
    t = jnp.asarray(int(state.t) + steps, jnp.int32)
    arrays = {f: runner.to_jax(a) for f, a in zip(fields, q)}
    cls = PureState if mode == "pure" else MixedState
    out["state"] = cls(v=runner.to_jax(v), refractory=runner.to_jax(ref), t=t, **arrays)
    return out


def _observe(mode: str, samples: dict, names: tuple[str, ...]) -> dict:
    """``{name: (rows, m, ...)}`` observables of the kernel's state samples (``(rows, m)`` arrays)."""
    rows, m = samples["v"].shape
    flat = {k: jnp.asarray(a.reshape(-1)) for k, a in samples.items()}
    cls = PureState if mode == "pure" else MixedState
    state = cls(refractory=jnp.zeros(rows * m, jnp.int32), t=jnp.zeros((), jnp.int32), **flat)
    out = {}
    for name in names:
        value = np.asarray(OBSERVABLES[name](state))
        out[name] = value.reshape((rows, m) + value.shape[1:])
    return out


def unpack_spikes(words: np.ndarray, n: int) -> np.ndarray:
    """``(T, n)`` bool raster from ``(T, ceil(n/32))`` uint32 spike words (bit ``i % 32`` of word
    ``i // 32`` is neuron ``i``)."""
    words = np.ascontiguousarray(words, np.uint32)
    bits = np.unpackbits(words.view(np.uint8).reshape(words.shape[0], -1), axis=1, bitorder="little")
    return bits[:, :n].astype(bool)


def simulate(runner: Runner, job: PopulationRun, *, precise: bool = False) -> SimulationResult:
    """A :class:`qsn.driver.PopulationRun` on the fused kernel (what ``qsn.simulate(..., backend="native")``
    and ``backend="cupy"`` run).

    Records everything the JAX path records: ``"spikes"`` and ``"events"`` from the kernel's spike
    outputs; ``"v"``, ``"rho"``, ``"p1"``, ``"coherence"``, ``"entropy"`` from state samples the kernel
    writes every ``record_every`` steps for the recorded neurons (the observables are then the JAX
    path's own functions, :data:`qsn.observables.OBSERVABLES`). Spike counts and the final state always come back. The run
    is checked once (:func:`check_input`), then cut by :func:`qsn.driver.drive` into launches whose spike
    words fit the same device budget as the JAX path's chunks (one launch when only counts are asked
    for); the state stays on the device between launches.
    """
    rec_spec, opts = job.recording, job.options
    observed = tuple(name for name in rec_spec.sampled if name != "spikes")  # from state samples
    params, current, key = job.params, job.raw_current, job.key
    inp = check_input(params, job.state, current, runner.name)
    n, steps, every = job.n, job.steps, rec_spec.every
    rec_spec.check_budget(steps, 4)
    # worst case per step: spike words, events, state samples (V and up to four components)
    per_step = ((-(-n // 32) * 4 if "spikes" in rec_spec.names else 0) + (n if rec_spec.events else 0)
                + (-(-5 * 4 * rec_spec.k // every) if observed else 0))
    chunk = chunk_length(opts.chunk_steps, steps, every, per_step, opts.progress) if steps else 0
    recorder = Recorder(rec_spec, job.t0)
    carry = {"state": job.state, "count": np.zeros(n, np.int64)}
    columns = np.full(n, -1, np.int32)
    columns[np.arange(n) if rec_spec.neurons is None else rec_spec.neurons] = np.arange(rec_spec.k, dtype=np.int32)
    mode = mode_of(job.state)

    def advance(start: int, length: int, sampled: bool):
        want_spikes = "spikes" in rec_spec.names and sampled
        rows = inp.current.window(start, length).value if inp.kind == "array" else (
            current if inp.kind == "poisson" else inp.current.value)
        out = run(runner, params, carry["state"], rows, length, key, spikes=want_spikes, events=rec_spec.events,
                  event_capacity=max(rec_spec.event_capacity - recorder.n_events, 0) + 1, precise=precise,
                  samples=(every, columns) if observed and sampled else None, a_bound=inp.a_bound)
        state = out["state"]
        carry["count"] += runner.to_host(out["count"])
        check_finite(state._asdict(), int(state.t))
        if want_spikes:
            raster = unpack_spikes(runner.to_host(out["words"]), n)
            raster = raster if rec_spec.neurons is None else raster[:, rec_spec.neurons]
            recorder.add_samples({"spikes": raster.reshape(length // every, every, -1).any(axis=1)})
        if observed and sampled:
            recorder.add_samples(_observe(mode, {k: runner.to_host(a) for k, a in out["samples"].items()}, observed))
        if rec_spec.events:
            st, ne = (runner.to_host(a).astype(np.int64) for a in out["events"])
            order = np.lexsort((ne, st))  # the kernel appends in warp order; JAX's order is (step, neuron)
            # the kernel writes absolute steps; the recorder takes them relative to the chunk
            recorder.add_events(st[order] - (job.t0 + start), ne[order], start, start + length, total=out["n_events"])
        carry["state"] = state
        return state

    drive(steps, chunk, advance, every=every, progress=opts.progress, desc=f"qsn {n} neurons ({runner.name})",
          on_chunk=opts.on_chunk)
    records = recorder.records(4) if rec_spec.sampled else {}
    return SimulationResult(
        state=carry["state"], spike_count=carry["count"].astype(np.int32), records=records, events=recorder.events(),
        steps=steps, t0=job.t0, dt=float(params.dt), record_every=every,
        neurons=None if rec_spec.neurons is None else tuple(int(i) for i in rec_spec.neurons),
    )

