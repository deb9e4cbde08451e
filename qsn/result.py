"""What :func:`qsn.simulate` returns, on every backend."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import numpy as np

from qsn.errors import ConfigurationError, RecordingError
from qsn.recording import SpikeEvents

__all__ = ["SimulationResult", "SpikeEvents"]


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
