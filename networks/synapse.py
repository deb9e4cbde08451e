"""Synapse kinetics: how arriving spikes enter a neuron's step.

Each group declares named *receptors*, each with one kinetics; projections deliver weighted spikes
to a receptor through its ring buffer. Three kinetics, as in NEST and Brian2:

* :class:`Delta` — ``V += w`` (mV) at arrival (NEST ``iaf_psc_delta``; Brian2 ``on_pre='v += w'``).
  Like NEST's default, input arriving while the neuron is refractory is lost (V is clamped).
* :class:`PscExp` — current-based exponential: ``I += w`` (current units, ``r_m * I`` in mV) at
  arrival, ``dI/dt = -I/tau``. The membrane integrates it exactly (NEST ``iaf_psc_exp``, Brian2
  ``method='exact'``).
* :class:`CondExp` — conductance-based exponential: ``g += w`` (dimensionless, in units of the leak
  conductance) at arrival, ``dg/dt = -g/tau``; the membrane sees ``g (e_rev - V)`` with ``g`` held
  over the step (exponential Euler, as Brian2's ``exponential_euler`` for the Vogels–Abbott COBA).

All three enter the core neuron step (:func:`qsn.dynamics.advance`, DESIGN §1 step 2) as one
*equivalent current*: the constant current over the step that gives the same membrane update as the
kinetics' own integration, so refractoriness, the qubit and thresholding stay in one place.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Union

import equinox as eqx
import numpy as np

from qsn.errors import ConfigurationError
from qsn.params import NeuronParams

__all__ = ["Delta", "PscExp", "CondExp", "Kinetics", "Drive", "psc_coefficient", "cond_current"]


def _real(owner: str, name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{owner}.{name} must be a real number, but is {value!r}") from None


def _positive(owner: str, name: str, value: float) -> float:
    value = _real(owner, name, value)
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{owner}.{name} must be finite and > 0, but is {value!r}")
    return value


class Drive(NamedTuple):
    """A neuron step's inputs as a group's receptors enter them one by one, in receptor order.

    ``v``: the membrane potential, mV, to which a Delta receptor adds its jump; ``current``: the
    external current, to which a PscExp receptor adds its equivalent current; ``g``, ``g_e``: total
    conductance and ``sum g e_rev`` of the CondExp receptors (``None`` without any), held over the step.
    """

    v: Any
    current: Any
    g: Any = None
    g_e: Any = None


def _add(a: Any, b: Any) -> Any:
    return b if a is None else a + b


class Delta(eqx.Module):
    """Instantaneous voltage jump ``V += w`` (w in mV)."""

    kind: str = eqx.field(static=True, default="delta")

    def decay(self, dt: float) -> float:
        """Per-step factor of the receptor variable: 0 (nothing persists past its arrival step)."""
        return 0.0

    def coefficient(self, params: NeuronParams) -> Any:
        """Equivalent-current factor (none for a voltage jump)."""
        return 0.0

    def enter(self, drive: Drive, x: Any, coefficient: Any) -> Drive:
        """Enter this receptor's ``(n,)`` variable ``x`` into the step's :class:`Drive`: a jump of ``V``."""
        return drive._replace(v=drive.v + x)


class PscExp(eqx.Module):
    """Exponentially decaying synaptic current with time constant ``tau`` (ms); ``w`` in current units."""

    tau: float = eqx.field(static=True, default=5.0)
    kind: str = eqx.field(static=True, default="psc_exp")

    def __check_init__(self) -> None:
        _positive("PscExp", "tau", self.tau)

    def decay(self, dt: float) -> float:
        """Per-step factor ``exp(-dt/tau)`` of the current."""
        return math.exp(-float(dt) / self.tau)

    def coefficient(self, params: NeuronParams) -> Any:
        """:func:`psc_coefficient` of ``params`` for this ``tau`` (scalar or ``(n,)``)."""
        return psc_coefficient(params, self.tau)

    def enter(self, drive: Drive, x: Any, coefficient: Any) -> Drive:
        """Add the current ``x`` as its equivalent constant current ``coefficient * x``."""
        return drive._replace(current=drive.current + coefficient * x)


class CondExp(eqx.Module):
    """Exponentially decaying conductance (``tau`` ms, relative to the leak) with reversal ``e_rev`` (mV).

    A conductance cannot be negative: every weight into a CondExp receptor (projection or Poisson
    input) must be ``>= 0``; inhibition comes from a reversal potential below rest.
    """

    tau: float = eqx.field(static=True, default=5.0)
    e_rev: float = eqx.field(static=True, default=0.0)
    kind: str = eqx.field(static=True, default="cond_exp")

    def __check_init__(self) -> None:
        _positive("CondExp", "tau", self.tau)
        if not math.isfinite(_real("CondExp", "e_rev", self.e_rev)):
            raise ConfigurationError(f"CondExp.e_rev must be finite, but is {self.e_rev!r}")

    def decay(self, dt: float) -> float:
        """Per-step factor ``exp(-dt/tau)`` of the conductance."""
        return math.exp(-float(dt) / self.tau)

    def coefficient(self, params: NeuronParams) -> Any:
        """No current factor: a conductance enters through :func:`cond_current`."""
        return 0.0

    def enter(self, drive: Drive, x: Any, coefficient: Any) -> Drive:
        """Add the conductance ``x`` and its ``x * e_rev`` (held over the step)."""
        return drive._replace(g=_add(drive.g, x), g_e=_add(drive.g_e, x * self.e_rev))


Kinetics = Union[Delta, PscExp, CondExp]


def psc_coefficient(params: NeuronParams, tau_syn: float) -> np.ndarray:
    """Equivalent-current factor ``c`` of a :class:`PscExp` receptor, scalar or ``(n,)`` float64.

    Over one step with ``I(s) = I0 exp(-s/tau_syn)`` the exact membrane solution adds
    ``r_m I0 exp(-dt/tau_m) (exp(k dt) - 1)/(tau_m k)``, ``k = 1/tau_m - 1/tau_syn``; the core step adds
    ``r_m I (1 - exp(-dt/tau_m))`` for a constant ``I``. So ``I = c I0`` with the ratio below
    (``k -> 0``, ``tau_syn = tau_m``: ``(dt/tau_m) exp(-dt/tau_m) / (1 - exp(-dt/tau_m))``).
    """
    tau_m, dt = np.asarray(params.tau_m, np.float64), np.asarray(params.dt, np.float64)
    k = 1.0 / tau_m - 1.0 / float(tau_syn)
    small = np.abs(k * dt) < 1e-12
    ratio = np.where(small, dt / tau_m, np.expm1(np.where(small, 1.0, k) * dt) / (tau_m * np.where(small, 1.0, k)))
    return np.exp(-dt / tau_m) * ratio / -np.expm1(-dt / tau_m)


def check_kinetics(owner: str, kinetics: Any) -> Kinetics:
    """Return ``kinetics`` if it is one of the three kinds, else raise naming ``owner``."""
    if not isinstance(kinetics, (Delta, PscExp, CondExp)):
        raise ConfigurationError(
            f"{owner} must be qsn.networks.Delta(), PscExp(tau) or CondExp(tau, e_rev), but is {kinetics!r}"
        )
    return kinetics


def cond_current(v: Any, g_total: Any, g_erev: Any, drive: Any, v_rest: Any, decay: Any, gain: Any) -> Any:
    """Equivalent current of conductances held over one step (exponential Euler), ``(n,)``.

    With ``G = sum g``, ``E = sum g e_rev`` and the other inputs' drive ``D = r_m I`` (mV) the membrane
    obeys ``tau_m dV/dt = -(V - v_rest) + E - G V + D``; for constant ``G`` over the step the update is
    ``V_inf + (V - V_inf) decay^(1 + G)`` with ``V_inf = (v_rest + E + D)/(1 + G)`` and
    ``decay = exp(-dt/tau_m)``. Returns the current ``J`` for which the core step's
    ``v_rest + (V - v_rest) decay + gain J`` equals that update (``J = D/r_m`` when ``G = 0``).
    """
    one_g = 1.0 + g_total
    v_inf = (v_rest + g_erev + drive) / one_g
    v_new = v_inf + (v - v_inf) * decay**one_g
    return (v_new - v_rest - (v - v_rest) * decay) / gain
