"""``qsn.simulate``: run a population for many steps on a backend, recording what is asked.

This function only validates and dispatches: the arguments become one :class:`qsn.driver.PopulationRun`
(the state and parameters checked, the current typed (:mod:`qsn.current`), the recording request
(:mod:`qsn.recording`) and the driving options (:class:`qsn.driver.RunOptions`)), which the chosen
backend (:mod:`qsn.backends`) runs in chunks through :func:`qsn.driver.drive`.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax

from qsn import backends
from qsn.current import as_current, require_steps
from qsn.driver import PopulationRun, RunOptions
from qsn.errors import ConfigurationError
from qsn.keys import check_prng_key
from qsn.params import NeuronParams, is_concrete
from qsn.poisson_current import check_dt
from qsn.recording import RECORDABLE, Recording
from qsn.result import SimulationResult, SpikeEvents
from qsn.state import State, check_state
from qsn.surrogate import Surrogate, check_surrogate

__all__ = ["simulate", "SimulationResult", "SpikeEvents", "RECORDABLE"]


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
    on_chunk: Any = None,
    **backend_options: Any,
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
        backend: a name from :func:`qsn.backends.names` or a :class:`qsn.backends.Backend`: ``"jax"``
            (default, XLA); ``"native"`` (the fused population kernel compiled for this CPU with g++,
            threaded and vectorised; built on first use and cached) or ``"cupy"`` (the same kernel on a
            CUDA GPU, extra ``qsn[cuda]``). The fused kernels run float32, record what the JAX path
            records, and draw random numbers from Philox rather than ``jax.random``; see docs/kernels.md.
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
        on_chunk: called as ``on_chunk(steps_done, state)`` on the host after every chunk.
        **backend_options: options of the chosen backend: ``precise=True`` for ``"native"`` and ``"cupy"``
            (IEEE sqrt/sin/cos/division in the JAX path's order of operations instead of polynomials or
            SFU intrinsics), ``threads=`` for ``"native"`` (default: every core); a backend refuses
            options it does not take.

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
    n = check_state(params, state)
    key = check_prng_key(key)
    check_surrogate(surrogate)
    options = RunOptions(progress=bool(progress), chunk_steps=chunk_steps, unroll=unroll, surrogate=surrogate,
                         checkpoint=checkpoint, on_chunk=on_chunk, backend=backend_options).check()
    if isinstance(backend, backends.Backend):
        engine = backend
    elif isinstance(backend, str):
        engine = backends.get(backend)
    else:
        raise ConfigurationError(f"Argument `backend` must be one of {backends.names()} or a Backend, but is {backend!r}")
    cur = as_current(current, n, state.v.dtype)
    steps = require_steps(cur, steps)
    check_dt(current, params)
    recording = Recording.of(record, n, neurons=neurons, record_every=record_every, event_capacity=event_capacity,
                             max_record_bytes=max_record_bytes)
    concrete = is_concrete((params, state, getattr(cur, "value", None), key))
    if recording.events and not concrete:
        raise ConfigurationError(
            "record=('events',) is not available inside jit/vmap (the event list has a data-dependent "
            "size); record 'spikes' there instead"
        )
    t0 = int(state.t) if is_concrete(state.t) else 0
    run = PopulationRun(params=params, state=state, current=cur, raw_current=current, steps=steps, key=key,
                        recording=recording, options=options, t0=t0, concrete=concrete)
    return engine.simulate(run)
