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
from qsn.params import FIELDS, NeuronParams
from qsn.state import state_bytes
from qsn.networks.synapse import Kinetics, PscExp, check_kinetics

__all__ = ["NeuronGroup", "PoissonGroup", "SpikeSourceArray", "GroupView", "resolve"]


class _Group:
    """Common part of every group: a size, a name (set by the network) and slicing."""

    n: int
    name: str | None

    def __getitem__(self, index: Any) -> "GroupView":
        try:
            idx = np.arange(self.n)[index]
        except IndexError:
            raise ConfigurationError(
                f"Index {index!r} of group {self.name or type(self).__name__} must select neurons in [0, {self.n}): "
                "an int, a slice, an integer array or a boolean mask of length n"
            ) from None
        idx = np.atleast_1d(idx)
        if idx.size == 0:
            raise ConfigurationError(f"Slice {index!r} of group {self.name or type(self).__name__} selects no neuron")
        return GroupView(self, idx.astype(np.int64))

    def __len__(self) -> int:
        return self.n

    def build_bytes(self, dtype: Any) -> int:
        """Bytes ``Network.build`` allocates for this group besides its ring buffers: the spike count
        ``(n,)`` int32 (subclasses add their state), for the memory preflight."""
        return 4 * self.n


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
        syn0: initial receptor variables, receptor name -> scalar, ``(n,)`` or a callable ``key -> (n,)``
            drawn at ``Network.build`` (default 0), in the receptor's units: mV for :class:`Delta` and
            :class:`PscExp`, the conductance relative to the leak for :class:`CondExp`.
        name: unique name in the network (default ``"group<k>"``).

    Example:
        >>> g = NeuronGroup(100, NeuronParams(delta=0.0), receptors={"exc": PscExp(2.0)})
        >>> g[:10]  # a view of the first ten neurons
        >>> cond = NeuronGroup(100, receptors={"exc": CondExp(5.0, 0.0)}, syn0={"exc": 4.0})
    """

    def __init__(
        self,
        n: int,
        params: NeuronParams | None = None,
        mode: str = "pure",
        *,
        receptors: Mapping[str, Kinetics] | None = None,
        v0: Any = None,
        syn0: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        self.n = _size("NeuronGroup", n)
        self.params = NeuronParams() if params is None else params
        if isinstance(self.params, dict):
            raise ConfigurationError("NeuronGroup: params must be qsn.NeuronParams, but is dict; build one with qsn.NeuronParams(**params)")
        if not isinstance(self.params, NeuronParams):
            raise ConfigurationError(f"NeuronGroup: params must be qsn.NeuronParams, but is {type(params).__name__}")
        self.params.check_population(self.n)
        if mode not in ("pure", "mixed"):
            raise ConfigurationError(f"NeuronGroup: mode must be 'pure' or 'mixed', but is {mode!r}")
        self.mode = mode
        if receptors is not None and not isinstance(receptors, Mapping):
            raise ConfigurationError(
                f"NeuronGroup: receptors must be a dict of name -> kinetics, e.g. {{'exc': PscExp(5.0)}}, but is {receptors!r}"
            )
        receptors = {"exc": PscExp(5.0), "inh": PscExp(10.0)} if receptors is None else dict(receptors)
        for key, kin in receptors.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise ConfigurationError(f"NeuronGroup: receptor names must be identifiers, but got {key!r}")
            check_kinetics(f"NeuronGroup receptor {key!r}", kin)
        self.receptors = receptors
        self.v0 = v0
        self.name = name
        self.syn0 = self._check_syn0({} if syn0 is None else syn0)

    def _check_syn0(self, syn0: Any) -> dict[str, Any]:
        if not isinstance(syn0, Mapping):
            raise ConfigurationError(f"NeuronGroup: syn0 must be a dict of receptor name -> initial value, but is {syn0!r}")
        for name, value in syn0.items():
            if name not in self.receptors:
                raise ConfigurationError(f"NeuronGroup: syn0 names receptor {name!r}, but the receptors are {list(self.receptors)}")
            if not callable(value):
                self.initial_receptor(name, value)
        return dict(syn0)

    def initial_receptors(self, key: Any) -> np.ndarray:
        """The ``(receptors, n)`` float64 initial receptor state: ``syn0``'s values, or what its callables
        draw from ``jax.random.fold_in(key, 1 + r)`` for receptor ``r``; 0 where ``syn0`` names none."""
        import jax  # (the group itself needs no JAX until a network is built)

        rows = []
        for r, name in enumerate(self.receptors):
            value = self.syn0.get(name, 0.0)
            rows.append(self.initial_receptor(name, value(jax.random.fold_in(key, 1 + r)) if callable(value) else value))
        return np.stack(rows) if rows else np.zeros((0, self.n))

    def initial_receptor(self, name: str, value: Any) -> np.ndarray:
        """``value`` (a ``syn0`` entry, or what its callable drew) as the ``(n,)`` float64 initial state of
        receptor ``name``; raises ConfigurationError naming the receptor unless it is finite and fits ``(n,)``."""
        what = f"NeuronGroup{' ' + self.name if self.name else ''}: syn0[{name!r}]"
        try:
            arr = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{what} must be a number or an (n,) array, but is {value!r}") from None
        if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != self.n):
            raise ConfigurationError(f"{what} must be a scalar or have shape ({self.n},), but has shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            i = int(np.argmax(~np.isfinite(np.atleast_1d(arr))))
            raise ConfigurationError(f"{what} must be finite, but element {i} is {float(np.atleast_1d(arr)[i])!r}")
        return np.broadcast_to(arr, (self.n,))

    def __repr__(self) -> str:
        return f"NeuronGroup({self.name or '?'}, n={self.n}, mode={self.mode!r}, receptors={list(self.receptors)})"

    def build_bytes(self, dtype: Any) -> int:
        """Bytes ``Network.build`` allocates for the group besides its ring buffers: the neuron state,
        receptor variables and spike count, the per-neuron step constants (15 when a parameter varies
        across neurons), the equivalent-current factors, and the host's float64 copies made on the way."""
        item, n, r = np.dtype(dtype).itemsize, self.n, len(self.receptors)
        per_neuron_params = any(np.ndim(getattr(self.params, f)) for f in FIELDS)
        device = state_bytes(n, self.mode, dtype) + (r + r + 2 + (15 if per_neuron_params else 0)) * n * item + 4 * n
        v0 = n * item if self.v0 is not None else 0
        return device + v0 + (1 + r) * n * 8


class PoissonGroup(_Group):
    """``n`` independent Poisson spike trains with rates ``rates`` (Hz, scalar or ``(n,)``).

    Each step a neuron spikes with probability ``rate * dt`` (at most one spike per step, as Brian2's
    ``PoissonGroup``); ``rate * dt`` must be at most 1.
    """

    def __init__(self, n: int, rates: Any, *, name: str | None = None) -> None:
        self.n = _size("PoissonGroup", n)
        try:
            r = np.asarray(rates, np.float64)
        except (TypeError, ValueError):
            raise ConfigurationError(f"PoissonGroup: rates must be numbers (Hz), but are {rates!r}") from None
        if r.shape not in ((), (self.n,)):
            raise ConfigurationError(f"PoissonGroup: rates must be finite, >= 0 and scalar or ({self.n},), got shape {r.shape}")
        bad = ~np.isfinite(r) | (r < 0) | (rates is None)
        if np.any(bad):
            where = "" if r.ndim == 0 else f"[{int(np.flatnonzero(bad)[0])}]"
            raise ConfigurationError(
                f"PoissonGroup: rates must be finite, >= 0 and scalar or ({self.n},), but rates{where} = {float(r.flat[np.argmax(bad)])!r} Hz"
            )
        self.rates = r
        self.name = name

    def __repr__(self) -> str:
        return f"PoissonGroup({self.name or '?'}, n={self.n})"

    def build_bytes(self, dtype: Any) -> int:
        """Spike count and per-step spike probability ``(n,)`` (device), and the host's float64 copy."""
        return (4 + np.dtype(dtype).itemsize + 8) * self.n


class SpikeSourceArray(_Group):
    """``n`` neurons that spike at given times: neuron ``indices[s]`` at ``times[s]`` (ms).

    A time ``t`` is emitted at step ``round(t/dt)``; two spikes of one neuron in one step raise.
    """

    def __init__(self, n: int, indices: Any, times: Any, *, name: str | None = None) -> None:
        self.n = _size("SpikeSourceArray", n)
        try:
            idx, tms = np.asarray(indices), np.asarray(times, np.float64)
        except (TypeError, ValueError):
            raise ConfigurationError(f"SpikeSourceArray: times must be numbers (ms), but are {times!r}") from None
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

    def build_bytes(self, dtype: Any) -> int:
        """Spike count ``(n,)`` and the sorted spike steps and indices (int32 on the device, int64 on the host)."""
        return 4 * self.n + (4 + 4 + 8 + 8) * (self.times.size + 1)


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
