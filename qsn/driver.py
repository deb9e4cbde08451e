"""The run driver: one chunked host loop for every run of the engine.

A long run is cut into chunks. Each chunk is one compiled call on the device (a ``lax.scan`` on the
JAX backend, one kernel launch on the others); between chunks the host moves recordings off the
device (so device memory stays bounded by :data:`CHUNK_BYTES`), checks for non-finite values,
calls the caller's ``on_chunk`` and advances the progress bar. :func:`drive` is that loop, shared by
:func:`qsn.simulate` on every backend and by :meth:`qsn.networks.Network.run`; the re-plan of a
mixed-mode propagator that met a larger drive than planned is :meth:`qsn.Stepper.replanned`, applied
by the backend inside its chunk.

:class:`RunOptions` carries how a run is driven (not what it computes); :class:`PopulationRun` is
one validated population run, what a backend receives.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np

from qsn.errors import ConfigurationError
from qsn.runtime import progress_bar

__all__ = ["CHUNK_BYTES", "RunOptions", "PopulationRun", "chunk_length", "drive"]

CHUNK_BYTES = 128 * 2**20  # device buffers per chunk (recordings, per-step spikes for events)
_PROGRESS_CHUNKS = 100  # chunks of a run shown with a progress bar


class RunOptions(NamedTuple):
    """How a run is driven: chunking, progress, compilation and differentiation options.

    Attributes:
        progress: show a tqdm progress bar on stderr.
        chunk_steps: steps per compiled chunk (None: what keeps device buffers under :data:`CHUNK_BYTES`,
            and about 100 chunks with a progress bar).
        unroll: scan unroll factor (None: the backend's default).
        surrogate: a :class:`qsn.surrogate.Surrogate` for differentiable runs (JAX backend).
        checkpoint: rematerialise the scan in segments for reverse mode (JAX backend).
        on_chunk: called as ``on_chunk(steps_done, state)`` after every chunk (host side).
        backend: backend-specific options, e.g. ``{"precise": True}`` for the CuPy kernel.
    """

    progress: bool = False
    chunk_steps: int | None = None
    unroll: int | None = None
    surrogate: Any = None
    checkpoint: bool | int | None = None
    on_chunk: Callable[[int, Any], None] | None = None
    backend: dict = {}

    def check(self) -> "RunOptions":
        """Validate the generic options; return ``self``.

        Raises:
            ConfigurationError: naming the option at fault.
        """
        _check_chunk_steps(self.chunk_steps)
        u = self.unroll
        if u is not None and (not isinstance(u, (int, np.integer)) or isinstance(u, bool) or u < 1):
            raise ConfigurationError(f"Argument `unroll` must be an int >= 1, but is {u!r}")
        cp = self.checkpoint
        if not (cp is None or isinstance(cp, bool) or (isinstance(cp, (int, np.integer)) and cp >= 1)):
            raise ConfigurationError(f"Argument `checkpoint` must be None, a bool or an int >= 1, but is {cp!r}")
        if self.on_chunk is not None and not callable(self.on_chunk):
            raise ConfigurationError(f"Argument `on_chunk` must be callable, but is {self.on_chunk!r}")
        return self


class PopulationRun(NamedTuple):
    """One validated population run, as :func:`qsn.simulate` hands it to a backend."""

    params: Any  # NeuronParams
    state: Any  # PureState | MixedState
    current: Any  # qsn.current.Current
    raw_current: Any  # the current as the user passed it (a backend may take a PoissonCurrent as such)
    steps: int
    key: Any  # PRNG key or None
    recording: Any  # qsn.recording.Recording
    options: RunOptions
    t0: int  # absolute step of the first step
    concrete: bool  # False inside jit/vmap (nothing can be read on the host)

    @property
    def n(self) -> int:
        return int(self.state.v.shape[0])


def _check_chunk_steps(c: Any) -> None:
    if c is not None and (not isinstance(c, (int, np.integer)) or isinstance(c, bool) or c < 1):
        raise ConfigurationError(f"Argument `chunk_steps` must be an int >= 1, but is {c!r}")


def chunk_length(chunk_steps: int | None, steps: int, every: int, bytes_per_step: float, progress: bool) -> int:
    """Steps per compiled chunk: whole sampling periods, device buffers under :data:`CHUNK_BYTES`,
    and about 100 chunks when a progress bar is shown."""
    if chunk_steps is None:
        chunk = max(every, int(CHUNK_BYTES // max(bytes_per_step, 1)) // every * every) if bytes_per_step else steps
        if progress:
            chunk = min(chunk, max(every, math.ceil(steps / _PROGRESS_CHUNKS / every) * every))
    else:
        _check_chunk_steps(chunk_steps)
        chunk = max(every, int(chunk_steps) // every * every)
    return max(1, min(chunk, steps))


def drive(
    steps: int,
    chunk: int,
    advance: Callable[[int, int, bool], Any],
    *,
    every: int = 1,
    progress: bool = False,
    desc: str = "qsn",
    on_chunk: Callable[[int, Any], None] | None = None,
) -> None:
    """Run ``steps`` steps in chunks of at most ``chunk`` (a multiple of ``every``).

    ``advance(start, length, sampled)`` runs steps ``start ... start + length - 1`` of the run and
    returns the state after them; ``sampled`` is False for a trailing partial sampling period
    (run, not sampled). ``on_chunk(steps_done, state)`` follows each chunk. A tqdm bar on stderr
    counts steps when ``progress``.
    """
    from qsn.compile_cache import enable as enable_compile_cache

    enable_compile_cache()
    done = 0
    with progress_bar(steps, desc, progress) as bar:
        while done < steps:
            length = min(chunk, steps - done)
            whole = length // every * every
            state = advance(done, whole or length, bool(whole))
            done += whole or length
            if on_chunk is not None:
                on_chunk(done, state)
            bar.update(whole or length)
