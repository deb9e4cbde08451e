"""Groups of neurons and spike sources, and views (slices) of them.

A :class:`NeuronGroup` is a population of QSN neurons with its own :class:`~qsn.NeuronParams`, mode
and named receptors; :class:`PoissonGroup` and :class:`SpikeSourceArray` emit spikes but have no
membrane. ``group[a:b]`` (or an index array) is a :class:`GroupView` that projections, inputs and
monitors accept wherever they accept a group.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from qsn.errors import ConfigurationError
from qsn.params import NeuronParams
from qsn.networks.synapse import Kinetics, PscExp, check_kinetics

__all__ = ["NeuronGroup", "PoissonGroup", "SpikeSourceArray", "GroupView", "resolve"]


class _Group:
    """Common part of every group: a size, a name (set by the network) and slicing."""

    n: int
    name: str | None

    def __getitem__(self, index: Any) -> "GroupView":
        idx = np.arange(self.n)[index]
        idx = np.atleast_1d(idx)
        if idx.size == 0:
            raise ConfigurationError(f"Slice {index!r} of group {self.name or type(self).__name__} selects no neuron")
        return GroupView(self, idx.astype(np.int64))

    def __len__(self) -> int:
        return self.n


def _size(owner: str, n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigurationError(f"{owner}: n must be an int >= 1, but is {n!r}")
    return int(n)


class NeuronGroup(_Group):
    """A population of ``n`` quantum spiking neurons.

    Args:
        n: number of neurons.
        params: :class:`qsn.NeuronParams`, fields scalar or ``(n,)``.
        mode: ``"pure"`` or ``"mixed"`` quantum state (DESIGN §1).
        receptors: name -> kinetics (:class:`Delta`, :class:`PscExp`, :class:`CondExp`); projections
            and Poisson inputs target one by name. Default ``{"exc": PscExp(5), "inh": PscExp(10)}``.
        v0: initial membrane potential, mV, scalar or ``(n,)`` (default ``v_rest``); or a callable
            ``key -> (n,)`` drawn at ``Network.build``.
        name: unique name in the network (default ``"group<k>"``).

    Example:
        >>> g = NeuronGroup(100, NeuronParams(delta=0.0), receptors={"exc": PscExp(2.0)})
        >>> g[:10]  # a view of the first ten neurons
    """

    def __init__(
        self,
        n: int,
        params: NeuronParams | None = None,
        mode: str = "pure",
        *,
        receptors: Mapping[str, Kinetics] | None = None,
        v0: Any = None,
        name: str | None = None,
    ) -> None:
        self.n = _size("NeuronGroup", n)
        self.params = NeuronParams() if params is None else params
        if not isinstance(self.params, NeuronParams):
            raise ConfigurationError(f"NeuronGroup: params must be qsn.NeuronParams, but is {type(params).__name__}")
        self.params.check_population(self.n)
        if mode not in ("pure", "mixed"):
            raise ConfigurationError(f"NeuronGroup: mode must be 'pure' or 'mixed', but is {mode!r}")
        self.mode = mode
        receptors = {"exc": PscExp(5.0), "inh": PscExp(10.0)} if receptors is None else dict(receptors)
        for key, kin in receptors.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise ConfigurationError(f"NeuronGroup: receptor names must be identifiers, but got {key!r}")
            check_kinetics(f"NeuronGroup receptor {key!r}", kin)
        self.receptors = receptors
        self.v0 = v0
        self.name = name

    def __repr__(self) -> str:
        return f"NeuronGroup({self.name or '?'}, n={self.n}, mode={self.mode!r}, receptors={list(self.receptors)})"


class PoissonGroup(_Group):
    """``n`` independent Poisson spike trains with rates ``rates`` (Hz, scalar or ``(n,)``).

    Each step a neuron spikes with probability ``rate * dt`` (at most one spike per step, as Brian2's
    ``PoissonGroup``); ``rate * dt`` must be at most 1.
    """

    def __init__(self, n: int, rates: Any, *, name: str | None = None) -> None:
        self.n = _size("PoissonGroup", n)
        r = np.asarray(rates, np.float64)
        if r.shape not in ((), (self.n,)) or not np.all(np.isfinite(r)) or np.any(r < 0):
            raise ConfigurationError(f"PoissonGroup: rates must be finite, >= 0 and scalar or ({self.n},), got shape {r.shape}")
        self.rates = r
        self.name = name

    def __repr__(self) -> str:
        return f"PoissonGroup({self.name or '?'}, n={self.n})"


class SpikeSourceArray(_Group):
    """``n`` neurons that spike at given times: neuron ``indices[s]`` at ``times[s]`` (ms).

    A time ``t`` is emitted at step ``round(t/dt)``; two spikes of one neuron in one step raise.
    """

    def __init__(self, n: int, indices: Any, times: Any, *, name: str | None = None) -> None:
        self.n = _size("SpikeSourceArray", n)
        idx, tms = np.asarray(indices), np.asarray(times, np.float64)
        if idx.ndim != 1 or idx.shape != tms.shape:
            raise ConfigurationError(f"SpikeSourceArray: indices and times must be 1-D of equal length, got {idx.shape} and {tms.shape}")
        if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= self.n):
            raise ConfigurationError(f"SpikeSourceArray: indices must be integers in [0, {self.n})")
        if not np.all(np.isfinite(tms)) or np.any(tms < 0):
            bad = int(np.flatnonzero(~np.isfinite(tms) | (tms < 0))[0])
            raise ConfigurationError(f"SpikeSourceArray: times[{bad}] = {float(tms[bad])} must be finite and >= 0 ms")
        self.indices = idx.astype(np.int64)
        self.times = tms
        self.name = name

    def steps(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """``(step, index)`` of every spike, sorted by step, for step length ``dt`` (ms)."""
        step = np.rint(self.times / dt).astype(np.int64)
        order = np.lexsort((self.indices, step))
        step, idx = step[order], self.indices[order]
        pair = step * self.n + idx
        if pair.size > 1 and np.any(pair[1:] == pair[:-1]):
            j = int(np.flatnonzero(pair[1:] == pair[:-1])[0])
            raise ConfigurationError(f"SpikeSourceArray: neuron {idx[j]} spikes twice in step {step[j]} (dt = {dt} ms)")
        return step, idx

    def __repr__(self) -> str:
        return f"SpikeSourceArray({self.name or '?'}, n={self.n}, spikes={self.times.size})"


class GroupView:
    """Neurons ``index`` of ``group`` (sorted or not; no repeats needed)."""

    def __init__(self, group: _Group, index: np.ndarray) -> None:
        self.group = group
        self.index = index
        self.n = int(index.size)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"{self.group!r}[{self.n} neurons]"


def resolve(target: Any, owner: str) -> tuple[_Group, np.ndarray | None]:
    """``(group, index or None)`` for a group or view; raise naming ``owner`` otherwise."""
    if isinstance(target, GroupView):
        return target.group, target.index
    if isinstance(target, _Group):
        return target, None
    raise ConfigurationError(f"{owner} must be a group or a view of one (group[a:b]), but is {type(target).__name__}")
