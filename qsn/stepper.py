"""``Stepper``: one step of a population, built once from its parameters and called everywhere.

Every caller of the neuron step (``qsn.simulate``, the network step, the fused kernels' launch
layer, the scheduler's spike features, the learning model, the cluster) builds one :class:`Stepper`
and calls it; none assembles constants and configuration by hand. A stepper is an ``eqx.Module``:
its per-neuron constants are pytree leaves (so it passes through ``jax.jit``, ``vmap`` and ``grad``
like an array), its configuration (mode, the stochastic parts, the mixed-mode propagator plan, the
surrogate) is static, so a changed plan compiles a new step and nothing else does.

The mixed-mode propagator is exact only up to a drive norm ``||A dt||`` fixed by its plan. A run
that cannot bound the drive in advance tracks the largest norm it met (:meth:`Stepper.drive_norm`)
and, when :meth:`Stepper.covers` says the plan was exceeded, re-runs with
:meth:`Stepper.replanned`: that rule lives here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.dynamics import (
    DEFAULT_A_BOUND,
    StepConfig,
    StepConstants,
    advance,
    check_key,
    membrane,
    start_refractory,
    step_config,
    step_constants,
)
from qsn.current import check_finite_current
from qsn.keys import check_prng_key
from qsn.lindblad import generator_norm, plan_capacity, series_plan
from qsn.params import NeuronParams, is_concrete
from qsn.state import State, mode_of
from qsn.surrogate import Surrogate, check_surrogate

__all__ = ["Stepper", "REPLAN_MARGIN", "step", "drive_bound"]

# A re-planned propagator covers this multiple of the largest drive norm seen, so that a drive that
# is still growing does not re-plan on every chunk.
REPLAN_MARGIN = 1.25


class Stepper(eqx.Module):
    """One step of docs/model.md for a population, with constants derived once.

    Build with :meth:`build`; call ``stepper(state, current, key)`` to advance ``state`` by one
    ``dt``. Pure: ready for ``lax.scan``, ``vmap`` (over states and currents) and ``grad``.

    Attributes:
        constants: :class:`qsn.dynamics.StepConstants`, scalars or ``(n,)`` per neuron, in the dtype.
        config: :class:`qsn.dynamics.StepConfig` (static): mode, stochastic parts, plan, surrogate.

    Example:
        >>> p = qsn.NeuronParams(delta=0.3)
        >>> stepper = qsn.Stepper.build(p, "pure", jnp.float32)
        >>> s = qsn.init_state(p, n=4)
        >>> s, spikes, a = stepper(s, jnp.full(4, 20.0))   # a: (4,) drive the qubits saw
    """

    constants: StepConstants
    config: StepConfig = eqx.field(static=True)

    @classmethod
    def build(
        cls,
        params: NeuronParams,
        mode: str = "pure",
        dtype: Any = jnp.float32,
        *,
        a_bound: float = DEFAULT_A_BOUND,
        surrogate: Surrogate | None = None,
    ) -> "Stepper":
        """The stepper of a population with ``params`` in ``mode`` (``"pure"`` | ``"mixed"``) and ``dtype``.

        Args:
            params: :class:`NeuronParams` (fields scalar or ``(n,)``; may be traced).
            mode: ``"pure"`` (state vectors) or ``"mixed"`` (density matrices, Lindblad T1/T2).
            dtype: float32 or float64.
            a_bound: bound on ``|a| = |V - v_rest|/(v_th - v_rest)`` over the run, sizing the
                mixed-mode propagator plan (:func:`qsn.simulate` derives a rigorous one from the current).
            surrogate: a :class:`qsn.surrogate.Surrogate`: spikes come back as floats carrying its
                gradient; None: bool spikes.
        """
        check_surrogate(surrogate)
        cfg = step_config(params, mode, dtype, a_bound)._replace(surrogate=surrogate)
        return cls(constants=step_constants(params, dtype), config=cfg)

    @classmethod
    def for_state(cls, params: NeuronParams, state: State, **kwargs: Any) -> "Stepper":
        """:meth:`build` with the mode and dtype read from ``state``."""
        return cls.build(params, mode_of(state), state.v.dtype, **kwargs)

    def __call__(
        self, state: State, current: Any, key: jax.Array | None = None, *, renorm: bool | None = None,
        offset: Any = None,
    ) -> tuple[State, jax.Array, jax.Array]:
        """Advance ``state`` by one step.

        Args:
            state: :class:`qsn.PureState` / :class:`qsn.MixedState` of ``n`` neurons (this mode and dtype).
            current: ``r_m * I`` in mV this step, scalar or ``(n,)``.
            key: ``jax.random`` key when :attr:`needs_key`; step ``t`` draws from ``fold_in(key, state.t)``.
            renorm: whether this step corrects the pure state's norm. None (the default): decided from
                ``state.t`` at run time (``qsn.dynamics.renormalises``: ``t % 4 == 3``). A caller that
                knows ``state.t`` on the host passes ``renormalises(t)`` itself, so that the three steps
                in four without the correction compile without it (what the JAX backend's scan does);
                any other value would make the result depend on more than ``t``.
            offset: ``state`` holds neurons ``[offset, offset + n)`` of a larger population and draws their
                numbers of that population's draw (:mod:`qsn.draws`; a partitioned network's part of a
                group). None: the draws of ``n`` neurons.

        Returns:
            ``(state, spikes, a)``: the new state, ``(n,)`` spikes (bool; float with a surrogate) and the
            ``(n,)`` drive ``a`` the qubit saw.
        """
        return advance(self.constants, self.config, state, current, key, renorm, offset)

    # ------------------------------------------------------------------ pieces for other steps
    def membrane(self, v: jax.Array, refractory: jax.Array, current: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Steps 1-2 alone: ``(V (mV), refractory this step (bool), counter left)`` (the cluster's membrane)."""
        return membrane(self.constants, v, refractory, current)

    def start_refractory(self, ref: jax.Array, spikes: jax.Array) -> jax.Array:
        """Step 6's refractory counter after ``spikes``."""
        return start_refractory(self.constants, ref, spikes)

    # ------------------------------------------------------------------ configuration
    @property
    def mode(self) -> str:
        return self.config.mode

    @property
    def corrects_norm(self) -> bool:
        """True when the step corrects the norm on some steps (pure mode without relaxation, whose
        conditioning renormalises on every step): the cadence of ``renorm`` matters."""
        return self.config.mode == "pure" and not self.config.relaxation

    @property
    def needs_key(self) -> bool:
        """True when a step draws random numbers (jump spiking; pure mode with finite t1/t2)."""
        return self.config.needs_key

    def check_key(self, key: Any) -> None:
        """Raise :class:`qsn.errors.ConfigurationError` when the step needs a key and ``key`` is None."""
        check_key(self.config, key)

    def with_surrogate(self, surrogate: Surrogate | None) -> "Stepper":
        """The same step with differentiable (``surrogate``) or bool (None) spikes."""
        check_surrogate(surrogate)
        return Stepper(constants=self.constants, config=self.config._replace(surrogate=surrogate))

    # ------------------------------------------------------------------ the mixed-mode plan
    @property
    def tracks_drive(self) -> bool:
        """True in mixed mode, whose propagator plan has a limited range."""
        return self.config.plan is not None

    def drive_norm(self, a: jax.Array) -> jax.Array:
        """``()`` largest ``||A dt||_inf`` of the Lindblad generator over the population for drives ``a``."""
        c = self.constants
        return jnp.max(generator_norm(a, c.delta, c.g1, c.g2, c.dt))

    def capacity(self) -> float:
        """Largest ``||A dt||`` the plan propagates exactly (inf in pure mode)."""
        if self.config.plan is None:
            return float("inf")
        return plan_capacity(self.config.plan, self.constants.v_rest.dtype)

    def covers(self, norm: Any) -> bool:
        """True when a run whose largest drive norm was ``norm`` stayed within the plan."""
        return float(norm) <= self.capacity()

    def replanned(self, norm: Any) -> "Stepper":
        """The stepper whose plan covers ``REPLAN_MARGIN`` times the drive norm ``norm`` (the re-plan rule)."""
        plan = series_plan(float(norm) * REPLAN_MARGIN, np.dtype(self.constants.v_rest.dtype))
        return Stepper(constants=self.constants, config=self.config._replace(plan=plan))


def step(
    params: NeuronParams,
    state: State,
    current: Any,
    key: jax.Array | None = None,
    *,
    a_bound: float = DEFAULT_A_BOUND,
    surrogate: Surrogate | None = None,
) -> tuple[State, jax.Array]:
    """Advance a population by one step of ``params.dt`` (docs/model.md). Pure; jit/vmap/grad friendly.

    A convenience over :class:`Stepper` (which builds the constants once; use it in loops).

    Args:
        params: :class:`NeuronParams` (fields scalar or ``(n,)``).
        state: :class:`PureState` or :class:`MixedState` of ``n`` neurons.
        current: input current this step, scalar or ``(n,)`` (``r_m * I`` in mV); must be finite.
        key: ``jax.random`` key, required when the step draws random numbers (jump spiking; pure mode
            with finite ``t1``/``t2``). Step ``t`` uses ``fold_in(key, state.t)``.
        a_bound: bound on ``|a| = |V - v_rest|/(v_th - v_rest)`` for which the mixed-mode propagator
            is exact to the dtype's precision (static; ``simulate`` derives it from the current).
        surrogate: a :class:`qsn.surrogate.Surrogate`: spikes come back as floats (0/1) whose gradient is
            the surrogate's (see :mod:`qsn.surrogate`); None: bool spikes.

    Returns:
        ``(new_state, spikes)`` with ``spikes`` a ``(n,)`` bool array (float with a surrogate).

    Raises:
        InvalidInputError: a current of the wrong shape, or a non-finite current (naming the neuron;
            under ``jit`` through ``eqx.error_if``, which costs one reduction over the current per
            step and a host callback-free runtime check: no silent NaN).
        ConfigurationError: a missing or malformed key.

    Example:
        >>> p = NeuronParams(delta=0.3)
        >>> s = init_state(p, n=4)
        >>> s, spikes = step(p, s, 20.0)
    """
    key = check_prng_key(key)
    stepper = Stepper.build(params, mode_of(state), state.v.dtype, a_bound=a_bound, surrogate=surrogate)
    stepper.check_key(key)
    current = check_finite_current(current, state.v.shape[0])
    new_state, spikes, _ = stepper(state, current, key)
    return new_state, spikes


def drive_bound(params: NeuronParams, state: State, current: Any) -> float:
    """Rigorous bound on ``|a|``, ``a = (V - v_rest)/(v_th - v_rest)``, over the run when the current's
    range is known, else the default.

    Step 2 makes ``a' = k a + (1 - k) d`` with ``k = exp(-dt/tau_m)`` and the drive
    ``d = r_m I / (v_th - v_rest)``, or ``a' = a_r = (v_reset - v_rest)/(v_th - v_rest) < 1`` while
    refractory. From above: ``a >= 1`` spikes and resets, so every ``a`` that enters a step is
    ``<= max(a_0, 1)``, and ``a' <= k max(a_0, 1) + (1 - k) d_max`` (the drive moves ``a`` by only
    ``(1 - k) d`` per step). From below, ``a'`` is a convex combination of the previous ``a`` and ``d``,
    or ``a_r``, so ``a' >= min(a_0, a_r, 0, d_min)``.
    """
    if current.low is None or not is_concrete((params, state.v)):
        return DEFAULT_A_BOUND
    p = params
    inv_range = 1.0 / (np.asarray(p.v_th, np.float64) - np.asarray(p.v_rest, np.float64))
    a0 = (np.asarray(state.v, np.float64) - np.asarray(p.v_rest, np.float64)) * inv_range
    k = np.exp(-np.asarray(p.dt, np.float64) / np.asarray(p.tau_m, np.float64))
    ends = [np.asarray(p.r_m, np.float64) * inv_range * i for i in (current.low, current.high)]
    d_max, d_min = np.maximum(*ends), np.minimum(*ends)
    high = float(np.max(k * np.maximum(np.max(a0), 1.0) + (1.0 - k) * d_max))
    a_r = (np.asarray(p.v_reset, np.float64) - np.asarray(p.v_rest, np.float64)) * inv_range
    low = float(min(np.min(a0), np.min(a_r), 0.0, np.min(d_min)))
    return max(high, -low) * (1 + 1e-6)
