"""Neuron parameters: one validated, immutable pytree per population.

Units: mV, ms, MOhm-like ``r_m`` (so ``r_m * I`` is in mV), rates in 1/ms, hbar = 1 (the quantum
Hamiltonian is in 1/ms). Every field is a scalar or an array broadcastable to the population ``(n,)``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError

__all__ = ["NeuronParams", "FIELDS", "is_concrete"]

FIELDS = ("v_rest", "v_th", "v_reset", "tau_m", "r_m", "t_ref", "delta", "t2", "t1", "jump_rate", "dt")
_MAY_BE_INF = ("t2", "t1")


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values Python can read now (not a tracer inside jit/vmap/grad)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def _as_param(x: Any, name: str = "field") -> Any:
    # Concrete values are kept as float64 NumPy arrays so that validation and derived constants are
    # computed once, exactly, on the host; tracers (params built inside jit/vmap) pass through.
    if isinstance(x, jax.core.Tracer):
        return x
    if x is None or isinstance(x, (str, bytes)):
        raise ConfigurationError(f"NeuronParams.{name} must be a real number or array, but is {x!r}")
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigurationError(f"NeuronParams.{name} must be a real number or array, but is {x!r}") from err
    return arr


def _where_bad(name: str, values: np.ndarray, bad: np.ndarray, rule: str) -> None:
    if not np.any(bad):
        return
    if values.ndim == 0:
        where = f"{name} = {values.item()!r}"
    else:
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        index = idx[0] if len(idx) == 1 else idx
        where = f"{name}[{index}] = {values[idx].item()!r}"
    raise ConfigurationError(f"NeuronParams.{name} must be {rule}, but {where}")


class NeuronParams(eqx.Module):
    """Parameters of a population of quantum spiking neurons (DESIGN §1).

    Each field is a scalar or an array broadcastable to ``(n,)`` (per-neuron values).

    Args:
        v_rest: resting potential, mV: the leak's fixed point, and the origin of the qubit's drive ``a``.
        v_th: spike threshold, mV (``> v_rest``).
        v_reset: reset potential after a spike and during refractoriness, mV (``< v_th``); ``None``
            (default) means ``v_rest``.
        tau_m: membrane time constant, ms (``> 0``).
        r_m: membrane resistance; ``r_m * I`` is in mV.
        t_ref: absolute refractory period, ms (``>= 0``); ``ceil(t_ref/dt)`` steps including the
            spike step are clamped to ``v_reset``.
        delta: transverse field of ``H = a*sz + delta*sx``, 1/ms (hbar = 1, ``>= 0``).
        t2: coherence time, ms (``> 0``, may be ``inf``, ``t2 <= 2*t1``).
        t1: energy-relaxation time to |0>, ms (``> 0``, may be ``inf``).
        jump_rate: quantum-jump spiking rate from |1>, 1/ms (``>= 0``; 0 disables jumps).
        dt: time step, ms (scalar, ``0 < dt <= tau_m``).

    Raises:
        ConfigurationError: naming the field (and the index for arrays) of the first broken rule.

    Example:
        >>> p = NeuronParams(delta=0.3, t2=50.0)
        >>> p = NeuronParams(v_th=np.linspace(-56.0, -54.0, 1000))   # per-neuron thresholds
    """

    v_rest: Any = eqx.field(default=-70.0, converter=functools.partial(_as_param, name="v_rest"))
    v_th: Any = eqx.field(default=-55.0, converter=functools.partial(_as_param, name="v_th"))
    v_reset: Any = eqx.field(default=None, converter=lambda x: x)
    tau_m: Any = eqx.field(default=20.0, converter=functools.partial(_as_param, name="tau_m"))
    r_m: Any = eqx.field(default=1.0, converter=functools.partial(_as_param, name="r_m"))
    t_ref: Any = eqx.field(default=2.0, converter=functools.partial(_as_param, name="t_ref"))
    delta: Any = eqx.field(default=0.1, converter=functools.partial(_as_param, name="delta"))
    t2: Any = eqx.field(default=math.inf, converter=functools.partial(_as_param, name="t2"))
    t1: Any = eqx.field(default=math.inf, converter=functools.partial(_as_param, name="t1"))
    jump_rate: Any = eqx.field(default=0.0, converter=functools.partial(_as_param, name="jump_rate"))
    dt: Any = eqx.field(default=0.1, converter=functools.partial(_as_param, name="dt"))

    def __post_init__(self) -> None:
        # v_reset=None means v_rest (docs/model.md); resolved here so that every reader sees a number.
        reset = self.v_rest if self.v_reset is None else self.v_reset
        object.__setattr__(self, "v_reset", _as_param(reset, "v_reset"))

    def __check_init__(self) -> None:
        if not is_concrete(self):
            return  # built from traced values inside a transformation: validated where concrete
        v = {name: getattr(self, name) for name in FIELDS}
        for name, arr in v.items():
            nan = np.isnan(arr)
            _where_bad(name, arr, nan, "a number (not NaN)")
            if name not in _MAY_BE_INF:
                _where_bad(name, arr, ~np.isfinite(arr), "finite")
        if v["dt"].ndim != 0:
            raise ConfigurationError(
                f"NeuronParams.dt must be a scalar (one time grid per population), but has shape {v['dt'].shape}"
            )
        _where_bad("tau_m", v["tau_m"], v["tau_m"] <= 0, "> 0")
        _where_bad("dt", v["dt"], v["dt"] <= 0, "> 0")
        _where_bad("dt", np.broadcast_to(v["dt"], v["tau_m"].shape), v["dt"] > v["tau_m"], "<= tau_m")
        gap = v["v_th"] - v["v_rest"]
        _where_bad("v_th", np.broadcast_to(v["v_th"], gap.shape), gap <= 0, "> v_rest")
        over_th = v["v_reset"] - v["v_th"]
        _where_bad("v_reset", np.broadcast_to(v["v_reset"], over_th.shape), over_th >= 0, "< v_th")
        _where_bad("t_ref", v["t_ref"], v["t_ref"] < 0, ">= 0")
        _where_bad("delta", v["delta"], v["delta"] < 0, ">= 0")
        _where_bad("t2", v["t2"], v["t2"] <= 0, "> 0")
        _where_bad("t1", v["t1"], v["t1"] <= 0, "> 0")
        over = v["t2"] > 2 * v["t1"]
        _where_bad("t2", np.broadcast_to(v["t2"], over.shape), over, "<= 2*t1 (physical bound)")
        _where_bad("jump_rate", v["jump_rate"], v["jump_rate"] < 0, ">= 0")

    def check_population(self, n: int) -> None:
        """Raise ``ConfigurationError`` unless every field broadcasts to a population of ``n``."""
        for name in FIELDS:
            shape = np.shape(getattr(self, name))
            try:
                out = np.broadcast_shapes(shape, (n,))
            except ValueError:
                out = None
            if out != (n,):
                raise ConfigurationError(
                    f"NeuronParams.{name} must be a scalar or broadcastable to (n,) = ({n},), but has shape {shape}"
                )

    @property
    def refractory_steps(self) -> Any:
        """``n_ref = ceil(t_ref/dt)`` with the ratio rounded to 1e-9 first (DESIGN §1), as int."""
        if is_concrete((self.t_ref, self.dt)):
            return np.ceil(np.round(self.t_ref / self.dt, 9)).astype(np.int32)
        return jnp.ceil(jnp.round(self.t_ref / self.dt, 9)).astype(jnp.int32)
