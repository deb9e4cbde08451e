"""Monitors: what a network run records, moved to the host after every chunk.

* :class:`SpikeMonitor` — compact spike events ``(step, neuron)``; raises ``RecordingError`` past
  ``capacity`` instead of dropping spikes.
* :class:`RateMonitor` — population rate (Hz) of a group or view, every step.
* :class:`StateMonitor` — V, quantum observables (``p1``, ``coherence``, ``entropy``) or a
  receptor's variable (by its name) of a few neurons, every ``record_every`` steps.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError, RecordingError
from qsn.observables import OBSERVABLES
from qsn.networks.group import NeuronGroup, resolve

__all__ = ["SpikeMonitor", "RateMonitor", "StateMonitor", "StepView", "SpikeProbe", "RateProbe", "StateProbe",
           "SlicedStateProbe"]


class StepView(NamedTuple):
    """What a monitor can see at the end of a step: ``spikes`` of every group (whole group), and the
    neuron states and receptor variables ``(receptors, n)`` of the neuron groups."""

    spikes: dict
    neurons: dict
    syn: dict
    consts: dict | None = None  # the groups' constants (a partitioned device's probe indices live there)


def _select(a: jax.Array, index: tuple | None) -> jax.Array:
    return a if index is None else a[..., jnp.asarray(index, jnp.int32)]


class SpikeProbe(NamedTuple):
    """The step's recording of a :class:`SpikeMonitor` (static): ``(k,)`` spikes of its neurons."""

    name: str
    group: str
    index: tuple | None

    reads_state = False  # spikes only: available to every executor after the spike exchange

    def record(self, view: StepView) -> jax.Array:
        return _select(view.spikes[self.group], self.index)


class RateProbe(NamedTuple):
    """The step's recording of a :class:`RateMonitor` (static): the number of its neurons that spiked."""

    name: str
    group: str
    index: tuple | None

    reads_state = False

    def record(self, view: StepView) -> jax.Array:
        return jnp.sum(_select(view.spikes[self.group], self.index), dtype=jnp.int32)


class StateProbe(NamedTuple):
    """The step's recording of a :class:`StateMonitor` (static): ``{variable: (k,)}``."""

    name: str
    group: str
    index: tuple | None
    variables: tuple[str, ...]
    receptors: tuple[str, ...]

    reads_state = True  # neuron states: a partitioned executor holds them per device

    def record(self, view: StepView) -> dict:
        return _state_values(view, self.group, self.variables, self.receptors, self.index)


class SlicedStateProbe(NamedTuple):
    """A :class:`StateProbe` on a partitioned device: records ``width`` neurons of its slice, at the
    indices ``consts[group]["probes"][name]`` (the partition reassembles the monitor's order)."""

    name: str
    group: str
    variables: tuple[str, ...]
    receptors: tuple[str, ...]
    width: int

    reads_state = True

    def record(self, view: StepView) -> dict:
        return _state_values(view, self.group, self.variables, self.receptors, view.consts[self.group]["probes"][self.name])


def _state_values(view: StepView, group: str, variables: tuple, receptors: tuple, index: Any) -> dict:
    """``{variable: (k,)}`` of the neurons ``index`` (a static tuple, an index array or None: all)."""
    select = (lambda a: a) if index is None else (lambda a: a[..., jnp.asarray(index, jnp.int32)])
    s, syn = view.neurons[group], view.syn[group]
    out = {}
    for var in variables:
        if var in receptors:
            out[var] = select(syn[receptors.index(var)])
        else:
            out[var] = OBSERVABLES[var](jax.tree_util.tree_map(lambda a: select(a) if a.ndim else a, s))
    return out


def _index(index: np.ndarray | None) -> tuple | None:
    return None if index is None else tuple(int(i) for i in index)


class _Monitor:
    name: str | None = None
    dt: float = float("nan")

    def probe(self) -> Any:
        """The static recording program of this monitor (what the compiled step records)."""
        raise NotImplementedError

    def bytes_per_step(self, dtype: Any) -> int:
        """Host bytes one step's records take (sizes the run's chunks)."""
        raise NotImplementedError

    def _reset(self) -> None:
        raise NotImplementedError

    def _check(self, data: Any, t0: int) -> None:
        """Raise before anything is recorded if ``data`` cannot be taken (all monitors or none)."""

    def _collect(self, data: np.ndarray, t0: int) -> None:
        raise NotImplementedError

    def _truncate(self, t: int) -> None:
        """Forget what was recorded from step ``t`` on (the network was restored to step ``t``)."""
        raise NotImplementedError


class SpikeMonitor(_Monitor):
    """Spike events of ``target`` (a group or a view): ``.step``, ``.i`` (index in the target), ``.t`` (ms).

    ``.t`` is the end of the spiking step, ``(step + 1) * dt``, as :class:`qsn.SpikeEvents`.
    """

    def __init__(self, target: Any, capacity: int = 10_000_000, *, name: str | None = None) -> None:
        self.name = name
        self.group, self.index = resolve(target, "SpikeMonitor target")
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 0:
            raise ConfigurationError(f"SpikeMonitor capacity must be an int >= 0, but is {capacity!r}")
        self.capacity = int(capacity)
        self.n = self.group.n if self.index is None else self.index.size
        self._reset()

    def _reset(self) -> None:
        self._steps: list[np.ndarray] = []
        self._ids: list[np.ndarray] = []
        self._count = 0

    def probe(self) -> SpikeProbe:
        return SpikeProbe(self.name, self.group.name, _index(self.index))

    def bytes_per_step(self, dtype: Any) -> int:
        return self.n

    def _check(self, data: np.ndarray, t0: int) -> None:
        if self._count + int(np.count_nonzero(data)) > self.capacity:
            raise RecordingError(
                f"SpikeMonitor {self.name} would record more than capacity={self.capacity} spikes by step {t0 + data.shape[0]}: "
                "raise capacity, monitor fewer neurons (a view) or run shorter pieces"
            )

    def _collect(self, data: np.ndarray, t0: int) -> None:
        steps, ids = np.nonzero(data)
        self._count += steps.size
        self._steps.append(steps.astype(np.int64) + t0)
        self._ids.append(ids.astype(np.int64))

    def _truncate(self, t: int) -> None:
        steps, ids = self.step, self.i
        keep = steps < t
        self._steps, self._ids, self._count = [steps[keep]], [ids[keep]], int(keep.sum())

    @property
    def step(self) -> np.ndarray:
        """``(E,)`` absolute step of each spike, in time order."""
        return np.concatenate(self._steps) if self._steps else np.zeros(0, np.int64)

    @property
    def i(self) -> np.ndarray:
        """``(E,)`` index of the spiking neuron within the monitored target."""
        return np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64)

    @property
    def t(self) -> np.ndarray:
        """``(E,)`` spike times, ms."""
        return (self.step + 1) * self.dt

    def count(self) -> np.ndarray:
        """``(n,)`` spikes per monitored neuron."""
        return np.bincount(self.i, minlength=self.n)

    def cv_isi(self, min_spikes: int = 3) -> np.ndarray:
        """Coefficient of variation of the inter-spike intervals of each neuron with at least
        ``min_spikes`` spikes (others are left out), ``(k,)``."""
        out = [np.std(d) / np.mean(d) for d in (np.diff(t) for t in self.trains() if t.size >= min_spikes)]
        return np.asarray(out)

    def trains(self) -> list[np.ndarray]:
        """Spike times (ms) of each monitored neuron."""
        order = np.argsort(self.i, kind="stable")
        t, i = self.t[order], self.i[order]
        return np.split(t, np.searchsorted(i, np.arange(1, self.n)))


class RateMonitor(_Monitor):
    """Population rate of ``target`` (Hz) in every step: ``.rate`` ``(T,)``, ``.t`` ``(T,)`` ms."""

    def __init__(self, target: Any, *, name: str | None = None) -> None:
        self.name = name
        self.group, self.index = resolve(target, "RateMonitor target")
        self.n = self.group.n if self.index is None else self.index.size
        self._reset()

    def probe(self) -> RateProbe:
        return RateProbe(self.name, self.group.name, _index(self.index))

    def bytes_per_step(self, dtype: Any) -> int:
        return 4

    def _reset(self) -> None:
        self._counts: list[np.ndarray] = []
        self._steps: list[np.ndarray] = []

    def _collect(self, data: np.ndarray, t0: int) -> None:
        self._counts.append(np.asarray(data))
        self._steps.append(t0 + np.arange(len(data), dtype=np.int64))

    def _truncate(self, t: int) -> None:
        steps, counts = self._cat(self._steps, np.int64), self._cat(self._counts, np.int32)
        keep = steps < t
        self._steps, self._counts = [steps[keep]], [counts[keep]]

    @staticmethod
    def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    @property
    def rate(self) -> np.ndarray:
        """``(T,)`` population rate of each recorded step, Hz."""
        return self._cat(self._counts, np.int32) / self.n / (self.dt * 1e-3)

    @property
    def t(self) -> np.ndarray:
        """``(T,)`` end of each recorded step, ms."""
        return (self._cat(self._steps, np.int64) + 1) * self.dt

    def smooth(self, width_ms: float) -> np.ndarray:
        """Rate averaged in a sliding window of ``width_ms`` (same length as ``.rate``)."""
        k = max(1, int(round(width_ms / self.dt)))
        return np.convolve(self.rate, np.ones(k) / k, mode="same")


class StateMonitor(_Monitor):
    """Values of ``variables`` for the neurons of ``target`` every ``record_every`` steps.

    ``variables``: ``"v"``, ``"p1"``, ``"coherence"``, ``"entropy"`` or the name of a
    receptor of the group (its current/conductance). Access as ``mon.v`` ``(T/record_every, k)``;
    ``mon.t`` ms. Sampled after the step (the state ``Network.state`` would show).
    """

    def __init__(self, target: Any, variables: Sequence[str] = ("v",), record_every: int = 1, *,
                 name: str | None = None) -> None:
        self.name = name
        self.group, self.index = resolve(target, "StateMonitor target")
        if not isinstance(self.group, NeuronGroup):
            raise ConfigurationError(f"StateMonitor target must be a NeuronGroup (or a view), but is {self.group!r}")
        variables = (variables,) if isinstance(variables, str) else tuple(variables)
        allowed = tuple(OBSERVABLES) + tuple(self.group.receptors)  # OBSERVABLES includes "v"
        for var in variables:
            if var not in allowed or var == "rho":
                raise ConfigurationError(f"StateMonitor variable {var!r} is not one of {tuple(x for x in allowed if x != 'rho')}")
        if isinstance(record_every, bool) or not isinstance(record_every, (int, np.integer)) or record_every < 1:
            raise ConfigurationError(f"StateMonitor record_every must be an int >= 1, but is {record_every!r}")
        self.variables = variables
        self.record_every = int(record_every)
        self.n = self.group.n if self.index is None else self.index.size
        self._reset()

    def probe(self) -> StateProbe:
        return StateProbe(self.name, self.group.name, _index(self.index), self.variables, tuple(self.group.receptors))

    def bytes_per_step(self, dtype: Any) -> int:
        return self.n * len(self.variables) * np.dtype(dtype).itemsize

    def _reset(self) -> None:
        self._data: dict[str, list[np.ndarray]] = {v: [] for v in self.variables}
        self._steps: list[np.ndarray] = []

    def _collect(self, data: dict, t0: int) -> None:
        steps = t0 + np.arange(next(iter(data.values())).shape[0]) + 1  # state after step t0 + j
        keep = steps % self.record_every == 0
        self._steps.append(steps[keep])
        for var, arr in data.items():
            self._data[var].append(np.asarray(arr)[keep])

    def _truncate(self, t: int) -> None:
        steps = np.concatenate(self._steps) if self._steps else np.zeros(0, np.int64)
        keep = steps <= t  # a sample at step s is the state after s steps
        self._steps = [steps[keep]]
        for var, parts in self._data.items():
            self._data[var] = [np.concatenate(parts)[keep]] if parts else []

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__.get("_data", {})
        if name in data:
            parts = data[name]
            return np.concatenate(parts) if parts else np.zeros((0, self.n))
        raise AttributeError(name)

    @property
    def t(self) -> np.ndarray:
        """Sample times, ms (the end of each sampled step)."""
        return (np.concatenate(self._steps) if self._steps else np.zeros(0, np.int64)) * self.dt
