"""External inputs to neuron groups: injected currents and Poisson spike input.

(Spike *sources* that project through synapses are groups: :class:`PoissonGroup`,
:class:`SpikeSourceArray`.)
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.networks.group import NeuronGroup, resolve
from qsn.networks.synapse import CondExp

__all__ = ["CurrentInput", "PoissonInput", "step_current", "poisson_table", "poisson_counts"]


def _target(owner: str, target: Any) -> tuple[NeuronGroup, np.ndarray | None]:
    group, index = resolve(target, f"{owner} target")
    if not isinstance(group, NeuronGroup):
        raise ConfigurationError(f"{owner} target must be a NeuronGroup or a view of one, but is {group!r}")
    return group, index


class CurrentInput:
    """Current injected into ``target`` every step (``r_m * I`` in mV), added to the group's other inputs.

    ``current`` is a scalar, an ``(n_target,)`` array (constant), a ``(T, n_target)`` array (row = absolute
    step index, so the run must not go past step ``T``) or a function ``t_index -> (n_target,)``.
    Build step or pulse currents with :func:`step_current`.
    """

    def __init__(self, target: Any, current: Any) -> None:
        self.group, self.index = _target("CurrentInput", target)
        self.current = current
        self.name: str | None = None


def step_current(times_ms: Any, amplitudes: Any, dt: float, steps: int) -> np.ndarray:
    """Piecewise-constant current as a ``(steps,)`` array: ``amplitudes[i]`` from ``times_ms[i]`` on
    (0 before the first time), as NEST's ``step_current_generator``. Use it as ``current[:, None]``."""
    times, amps = np.asarray(times_ms, np.float64), np.asarray(amplitudes, np.float64)
    if times.shape != amps.shape or times.ndim != 1:
        raise ConfigurationError(f"step_current: times and amplitudes must be 1-D of equal length, got {times.shape}, {amps.shape}")
    if times.size and np.any(np.diff(times) < 0):
        raise ConfigurationError("step_current: times must be non-decreasing")
    out = np.zeros(steps)
    for t, a in zip(np.rint(times / dt).astype(np.int64), amps):
        out[max(t, 0):] = a
    return out


class PoissonInput:
    """``n_inputs`` independent Poisson spike trains of ``rate`` Hz per target neuron, each adding
    ``weight`` to receptor ``receptor`` (as Brian2's ``PoissonInput``; NEST's ``poisson_generator``
    connected one-to-one). A ``weight`` into a :class:`CondExp` receptor must be ``>= 0``. Each step draws the number of input spikes ``~ Poisson(n_inputs rate dt)``
    per neuron, so the cost does not grow with ``n_inputs`` (see :func:`poisson_counts`)."""

    def __init__(self, target: Any, receptor: str, rate: float, weight: float, n_inputs: int = 1) -> None:
        self.group, self.index = _target("PoissonInput", target)
        if not isinstance(receptor, str) or receptor not in self.group.receptors:
            raise ConfigurationError(f"PoissonInput receptor {receptor!r} is not a receptor of {self.group!r}")
        for label, value in (("rate", rate), ("weight", weight)):
            try:
                finite = math.isfinite(float(value))
            except (TypeError, ValueError):
                raise ConfigurationError(f"PoissonInput {label} must be a real number, but is {value!r}") from None
            if not finite:
                raise ConfigurationError(f"PoissonInput {label} must be finite, but is {value!r}")
        if rate < 0:
            raise ConfigurationError(f"PoissonInput rate must be >= 0 Hz, but is {rate!r}")
        if isinstance(self.group.receptors[receptor], CondExp) and weight < 0:
            raise ConfigurationError(
                f"PoissonInput weight into receptor {receptor!r} of {self.group!r} must be >= 0 (a conductance, "
                f"CondExp), but is {weight!r}; inhibition comes from the receptor's e_rev"
            )
        if isinstance(n_inputs, bool) or not isinstance(n_inputs, (int, np.integer)) or n_inputs < 0:
            raise ConfigurationError(f"PoissonInput n_inputs must be an int >= 0, but is {n_inputs!r}")
        self.receptor = receptor
        self.rate = float(rate)
        self.weight = float(weight)
        self.n_inputs = int(n_inputs)
        self.name: str | None = None


_TABLE_MAX = 1024  # longest CDF table; larger means draw with jax.random.poisson instead


def poisson_table(lam: float) -> np.ndarray | None:
    """CDF ``P(X <= k)``, ``k = 0 .. K-1``, of ``Poisson(lam)`` in float64, cut where the tail falls below
    1e-16; None when that needs more than 1024 entries (large ``lam``)."""
    if lam == 0.0:
        return np.ones(1)
    import scipy.stats  # (here, not at import: scipy.stats alone takes ~0.5 s to import)

    k_max = int(scipy.stats.poisson.isf(1e-16, lam)) + 2
    if k_max > _TABLE_MAX:
        return None
    return scipy.stats.poisson.cdf(np.arange(k_max), lam)


def poisson_counts(key: jax.Array, lam: float, table: jax.Array | None, n: int, dtype) -> jax.Array:
    """``(n,)`` Poisson(``lam``) counts in ``dtype``: inverse-CDF sampling against ``table`` (one uniform
    per count, no loop, exact up to the resolution of the uniform draw in ``dtype``), or
    ``jax.random.poisson`` (a rejection loop: several times slower on CPU) without a table."""
    if table is None:
        return jax.random.poisson(key, lam, (n,)).astype(dtype)
    return counts_from_uniform(jax.random.uniform(key, (n,), dtype), table)


def counts_from_uniform(u: jax.Array, table: jax.Array) -> jax.Array:
    """Poisson counts of the uniforms ``u`` ``(n,)`` by inverse CDF against ``table`` (:func:`poisson_table`),
    in ``u``'s dtype: the number of table entries each ``u`` reaches."""
    return jnp.sum(u[:, None] >= table[None, :].astype(u.dtype), axis=1, dtype=jnp.int32).astype(u.dtype)
