"""What a run records: which quantities, of which neurons, how often, and whether it fits in memory.

:class:`Recording` is the validated request (built once by :func:`qsn.simulate` and handed to the
backend); :class:`Recorder` collects what each chunk of the run produced on the host and joins it
into the :class:`qsn.SimulationResult` fields at the end. Every backend records through these two, so
the memory budget, the sampling rule and the event-capacity check exist once.

Sampling rule: with ``record_every = k`` a sample is taken after steps ``k-1, 2k-1, ...`` of the run;
a ``"spikes"`` sample marks a spike anywhere in its period; a trailing partial period is run but not
sampled (so ``steps < k`` gives zero samples, never a missing record).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError, RecordingError
from qsn.memory import host_available_bytes
from qsn.observables import OBSERVABLES

__all__ = ["RECORDABLE", "Recording", "Recorder", "SpikeEvents", "check_event_capacity"]

RECORDABLE = ("spikes", "events") + tuple(OBSERVABLES)
# bytes of one value per neuron, x the state's itemsize (spikes: x 1 byte, or the float size with a surrogate)
_ITEMS = {"spikes": 1, "rho": 4, "v": 1, "p1": 1, "coherence": 1, "entropy": 1}  # rho: 2x2 complex
_EVENT_BYTES = 16  # one (step, neuron) pair of int64


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


def check_event_capacity(n_events: int, event_capacity: int, step: int) -> None:
    """Raise :class:`RecordingError` once a run has produced more than ``event_capacity`` spike events
    (by absolute ``step``): events are never dropped silently."""
    if n_events > event_capacity:
        raise RecordingError(
            f"Spike events exceeded event_capacity={event_capacity} by step {step}: "
            f"raise event_capacity or record fewer steps per call"
        )


def _check_names(record: Sequence[str] | str) -> tuple[str, ...]:
    names = (record,) if isinstance(record, str) else tuple(record)
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


class Recording(NamedTuple):
    """A validated recording request for a population of ``n`` neurons (see the module docstring).

    Build with :meth:`Recording.of`.
    """

    names: tuple[str, ...]  # recorded quantities, from RECORDABLE
    neurons: np.ndarray | None  # (k,) int32 indices of the recorded neurons; None = all
    every: int  # sampling period, steps
    event_capacity: int  # most spike events kept (more raises)
    max_bytes: int | None  # host memory the recordings may take; None = half the free memory
    n: int  # population size

    @classmethod
    def of(cls, record: Sequence[str] | str, n: int, *, neurons: Any = None, record_every: int = 1,
           event_capacity: int = 10_000_000, max_record_bytes: int | None = None) -> "Recording":
        """Validate the recording arguments of :func:`qsn.simulate` for ``n`` neurons.

        Raises:
            ConfigurationError: an unknown quantity, a bad neuron selection, ``record_every < 1``,
                a negative ``event_capacity``.
        """
        names = _check_names(record)
        idx = _check_neurons(neurons, n)
        if not isinstance(record_every, (int, np.integer)) or isinstance(record_every, bool) or record_every < 1:
            raise ConfigurationError(f"Argument `record_every` must be an int >= 1, but is {record_every!r}")
        if not isinstance(event_capacity, (int, np.integer)) or event_capacity < 0:
            raise ConfigurationError(f"Argument `event_capacity` must be an int >= 0, but is {event_capacity!r}")
        return cls(names=names, neurons=idx, every=int(record_every), event_capacity=int(event_capacity),
                   max_bytes=max_record_bytes, n=int(n))

    @property
    def k(self) -> int:
        """Number of recorded neurons."""
        return self.n if self.neurons is None else int(self.neurons.size)

    @property
    def events(self) -> bool:
        return "events" in self.names

    @property
    def sampled(self) -> tuple[str, ...]:
        """The quantities taken as samples every :attr:`every` steps (all but ``"events"``)."""
        return tuple(x for x in self.names if x != "events")

    def sample_bytes(self, itemsize: int, spike_bytes: int = 1) -> int:
        """Host bytes of one sample of the recorded quantities."""
        return sum(_ITEMS[x] * (spike_bytes if x == "spikes" else itemsize) * self.k for x in self.sampled)

    def check_budget(self, steps: int, itemsize: int, spike_bytes: int = 1) -> int:
        """Raise :class:`RecordingError` before a run whose recordings would not fit in host memory;
        return the bytes of one sample."""
        sample = self.sample_bytes(itemsize, spike_bytes)
        total = sample * (steps // self.every) + (_EVENT_BYTES * self.event_capacity if self.events else 0)
        limit = self.max_bytes if self.max_bytes is not None else host_available_bytes() // 2
        if total > limit:
            raise RecordingError(
                f"Recording {self.names} for {steps} steps x {self.k} neurons needs {total / 2**30:.2f} GiB, more than "
                f"the {limit / 2**30:.2f} GiB allowed: record fewer neurons (neurons=...), sample less often "
                f"(record_every=...), or record spikes as ('events',) instead of a dense raster"
            )
        return sample

    def device_bytes_per_step(self, itemsize: int, spike_bytes: int = 1) -> float:
        """Device buffer bytes a chunk needs per step (samples, plus the per-step spikes events need)."""
        return self.sample_bytes(itemsize, spike_bytes) / self.every + (self.n * spike_bytes if self.events else 0)


class Recorder:
    """Collects the chunks of one run on the host and joins them at the end.

    Args:
        recording: the request.
        t0: absolute step of the run's first step (``state.t`` at the start).
        concrete: False inside ``jit``/``vmap``: chunks stay JAX arrays and are joined with ``jnp``.
    """

    def __init__(self, recording: Recording, t0: int, concrete: bool = True) -> None:
        self.recording = recording
        self.t0 = t0
        self.concrete = concrete
        self._pieces: dict[str, list] = {name: [] for name in recording.sampled}
        self._ev_steps: list[np.ndarray] = []
        self._ev_neurons: list[np.ndarray] = []
        self.n_events = 0

    def add_samples(self, samples: dict) -> None:
        """Add one chunk's samples ``{name: (samples, k, ...)}``."""
        for name, arr in samples.items():
            self._pieces[name].append(np.asarray(arr) if self.concrete else arr)

    def add_events(self, steps: np.ndarray, neurons: np.ndarray, start: int, end: int, total: int | None = None) -> None:
        """Add the events of steps ``start ... end - 1`` of the run (``steps`` relative to ``start``,
        time-ordered with ties by neuron); ``total``: events produced when more than were returned."""
        self.n_events += int(steps.size if total is None else total)
        check_event_capacity(self.n_events, self.recording.event_capacity, self.t0 + end)
        self._ev_steps.append(np.asarray(steps, np.int64) + self.t0 + start)
        self._ev_neurons.append(np.asarray(neurons, np.int64))

    def add_spike_rows(self, spikes: Any, start: int, end: int) -> None:
        """Add events from a chunk's ``(length, n)`` per-step spikes."""
        steps, neurons = np.nonzero(np.asarray(spikes))
        self.add_events(steps, neurons, start, end)

    def records(self, itemsize: int, spike_dtype: Any = bool) -> dict:
        """``{name: (samples, k, ...)}``; a quantity with no sample (a run shorter than one period)
        is an empty array of the right trailing shape, never missing."""
        xp = np if self.concrete else jnp
        k = self.recording.k
        real, cplx = np.dtype(f"float{8 * itemsize}"), np.dtype(f"complex{16 * itemsize}")
        empty = {"spikes": ((0, k), spike_dtype), "rho": ((0, k, 2, 2), cplx)}
        out = {}
        for name, parts in self._pieces.items():
            shape, dtype = empty.get(name, ((0, k), real))
            out[name] = xp.concatenate(parts) if parts else xp.zeros(shape, dtype)
        return out

    def events(self) -> SpikeEvents | None:
        """The run's :class:`SpikeEvents` (None when events were not recorded)."""
        if not self.recording.events:
            return None
        return SpikeEvents.from_chunks(self._ev_steps, self._ev_neurons)
