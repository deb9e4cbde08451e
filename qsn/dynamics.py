"""The pieces of one time step of a QSN population (docs/model.md), assembled by :class:`qsn.Stepper`.

The step, for every neuron, in this order:

1. refractory bookkeeping (``n_ref = ceil(t_ref/dt)`` steps, the spike step included);
2. membrane: ``V = v_reset`` while refractory, else the exact solution for constant ``I`` over ``dt``;
3. qubit: evolve under ``H = a sz + delta sx``, ``a = (V - v_rest)/(v_th - v_rest)``, exactly over
   ``dt`` (closed-form unitary in pure mode; exact Lindblad propagator in mixed mode; pure mode with
   finite ``t1``/``t2`` unravels the Lindblad terms with a random phase kick and relaxation jumps);
4. quantum-jump spiking (``jump_rate > 0``, not while refractory);
5. threshold ``V >= v_th`` (not while refractory);
6. spike: ``V = v_reset``, qubit reset to |0>, refractory.

Randomness: the key of step ``t`` is ``fold_in(key, t)`` with ``t = state.t``, so a run split in two
gives exactly the same draws as one run.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsn.draws import Draws
from qsn.errors import ConfigurationError
from qsn.lindblad import SeriesPlan, generator_norm, propagate_bloch, series_plan
from qsn.observables import safe_sqrt
from qsn.params import NeuronParams, is_concrete
from qsn.sincos import sincos
from qsn.state import MixedState, PureState, State
from qsn.surrogate import Surrogate

__all__ = [
    "StepConstants",
    "StepConfig",
    "PureQubit",
    "MixedQubit",
    "QUBITS",
    "norm_correction",
    "RENORM_PERIOD",
    "renormalises",
    "step_constants",
    "step_config",
    "advance",
    "membrane",
    "rotation",
    "start_refractory",
    "check_key",
    "DEFAULT_A_BOUND",
]

# |a| assumed by `step` when it cannot bound the drive itself (a = 1 at threshold); simulate() derives
# a rigorous bound from the current instead and re-plans when a run exceeds it.
DEFAULT_A_BOUND = 4.0


class StepConstants(NamedTuple):
    """Per-neuron constants derived once from :class:`NeuronParams` (scalars or ``(n,)``)."""

    v_rest: jax.Array  # mV
    v_th: jax.Array  # mV
    v_reset: jax.Array  # mV, after a spike and while refractory
    decay: jax.Array  # exp(-dt/tau_m)
    gain: jax.Array  # r_m * (1 - exp(-dt/tau_m)), mV per unit current
    inv_range: jax.Array  # 1/(v_th - v_rest), 1/mV
    n_ref: jax.Array  # int32, refractory steps including the spike step
    delta: jax.Array  # 1/ms
    dt: jax.Array  # ms (scalar)
    g1: jax.Array  # 1/t1, 1/ms
    g2: jax.Array  # 1/t2, 1/ms
    dephase_std: jax.Array  # sqrt(2 gphi dt): std of the pure-mode phase kick, rad
    relax_keep: jax.Array  # exp(-dt/t1)
    jump_prob: jax.Array  # 1 - exp(-jump_rate dt)
    jump_keep: jax.Array  # exp(-jump_rate dt)


class StepConfig(NamedTuple):
    """Static (hashable) choices that shape the compiled step."""

    mode: str  # "pure" | "mixed"
    dephasing: bool  # pure mode: random phase kicks (finite t2)
    relaxation: bool  # pure mode: relaxation jumps (finite t1)
    jumps: bool  # quantum-jump spiking (jump_rate > 0)
    plan: SeriesPlan | None  # mixed mode: evaluation plan of the Lindblad propagator
    surrogate: Surrogate | None = None  # differentiable spikes (float 0/1 out) when set; None: bool spikes

    @property
    def needs_key(self) -> bool:
        return self.jumps or (self.mode == "pure" and (self.dephasing or self.relaxation))

    @property
    def qubit(self) -> "PureQubit | MixedQubit":
        """The piece that evolves, conditions and resets this mode's qubit."""
        return QUBITS[self.mode]


def step_constants(params: NeuronParams, dtype: Any) -> StepConstants:
    """Derive :class:`StepConstants` in ``dtype`` (computed in float64 on the host when concrete)."""
    xp = np if is_concrete(params) else jnp
    p = params
    rate = lambda t: xp.where(xp.isinf(t), 0.0, 1.0 / t)  # noqa: E731  (1/inf = 0 exactly)
    g1, g2 = rate(p.t1), rate(p.t2)
    gphi = xp.maximum(g2 - g1 / 2, 0.0)
    decay = xp.exp(-p.dt / p.tau_m)
    c = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return StepConstants(
        v_rest=c(p.v_rest),
        v_th=c(p.v_th),
        v_reset=c(p.v_reset),
        decay=c(decay),
        gain=c(-p.r_m * xp.expm1(-p.dt / p.tau_m)),
        inv_range=c(1.0 / (p.v_th - p.v_rest)),
        n_ref=jnp.asarray(p.refractory_steps, jnp.int32),
        delta=c(p.delta),
        dt=c(p.dt),
        g1=c(g1),
        g2=c(g2),
        dephase_std=c(xp.sqrt(2 * gphi * p.dt)),
        relax_keep=c(xp.exp(-p.dt * g1)),
        jump_prob=c(-xp.expm1(-p.jump_rate * p.dt)),
        jump_keep=c(xp.exp(-p.jump_rate * p.dt)),
    )


def step_config(params: NeuronParams, mode: str, dtype: Any, a_bound: float = DEFAULT_A_BOUND) -> StepConfig:
    """Static configuration of the step; ``a_bound`` bounds ``|a|`` for the mixed-mode plan.

    Each choice reads only the fields it needs, so parameters built inside ``vmap``/``jit`` from a
    traced ``delta`` still compile without the stochastic parts when ``t1``, ``t2`` and ``jump_rate``
    are concrete. A traced ``t2``/``t1``/``jump_rate`` compiles its stochastic part in (and needs a
    key); a traced ``delta``/``t1``/``t2``/``dt`` makes the mixed-mode plan assume
    ``||A dt|| <= 2``, which :func:`qsn.simulate` verifies at run time.
    """
    if mode not in ("pure", "mixed"):
        raise ConfigurationError(f"Argument `mode` must be 'pure' or 'mixed', but is {mode!r}")
    p = params
    dephasing = bool(np.any(np.isfinite(p.t2))) if is_concrete(p.t2) else True
    relaxation = bool(np.any(np.isfinite(p.t1))) if is_concrete(p.t1) else True
    jumps = bool(np.any(p.jump_rate > 0)) if is_concrete(p.jump_rate) else True
    plan = None
    if mode == "mixed":
        if is_concrete((p.delta, p.t1, p.t2, p.dt)):
            g1 = np.where(np.isinf(p.t1), 0.0, 1.0 / p.t1)
            g2 = np.where(np.isinf(p.t2), 0.0, 1.0 / p.t2)
            norm = float(np.max(generator_norm(np.asarray(a_bound), p.delta, g1, g2, p.dt)))
        else:
            norm = 2.0
        plan = series_plan(norm, dtype)
    return StepConfig(mode=mode, dephasing=dephasing, relaxation=relaxation, jumps=jumps, plan=plan)


# theta = w dt below which sin(w dt)/w is the 3-term series dt (1 - theta^2/6 (1 - theta^2/20)):
# theta^6/5040 < eps. The CUDA kernel (kernels/cuda/population.cu) uses the float32 value too.
SERIES_ANGLE = {"float32": 0.25, "float64": 0.008}


def _sinc_step(theta: jax.Array, sin_theta: jax.Array, w: jax.Array, dt: jax.Array) -> jax.Array:
    """``sin(w dt)/w`` with its ``w -> 0`` limit ``dt`` (series where ``theta = w dt`` is small)."""
    small = theta < SERIES_ANGLE[jnp.dtype(theta.dtype).name]
    t2 = theta * theta
    # The safe divisor keeps the unselected branch (and its gradient) finite at w = 0.
    return jnp.where(small, dt * (1.0 - t2 / 6.0 * (1.0 - t2 / 20.0)), sin_theta / jnp.where(small, 1.0, w))


Amplitudes = tuple  # (re0, im0, re1, im1), each (n,)


def rotation(a: jax.Array, delta: jax.Array, dt: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(cos(w dt), sin(w dt)/w)``, ``w = sqrt(a^2 + delta^2)``: ``exp(-i dt H) = cos(w dt) 1 - i sin(w dt)/w H``
    for ``H = a sz + delta sx`` (1/ms, dt in ms); finite values and gradients at ``w = 0``."""
    w = safe_sqrt(a * a + delta * delta)  # a = delta = 0 (a resting classical neuron) is common
    theta = w * dt
    sin_t, cos_t = sincos(theta)
    return cos_t, _sinc_step(theta, sin_t, w, dt)


def _float_spike(sg: Surrogate, hard: jax.Array, x: jax.Array, is_ref: jax.Array) -> jax.Array:
    """The spike as a float with the surrogate's gradient in ``x``: forward exactly ``hard`` (or ``G(x)``
    when smooth), never during refractoriness."""
    if sg.smooth:
        return jnp.where(is_ref, 0.0, sg.primitive(x)).astype(x.dtype)
    straight = sg(x)
    return jnp.where(is_ref, 0.0, hard.astype(x.dtype) + (straight - jax.lax.stop_gradient(straight))).astype(x.dtype)


def _reset(q: tuple, where: jax.Array, ground: tuple, soft: jax.Array | None = None, sg: Surrogate | None = None) -> tuple:
    """Each ``x`` of ``q`` set to its ``ground`` value where ``where``.

    With a surrogate, ``soft`` is the float spike: a smooth surrogate mixes ``x + soft (ground - x)``; an
    exact one keeps the hard value and adds ``(soft - stop_gradient(soft)) (ground - x)``, which is zero
    forward and carries the spike's gradient backward (unless ``detach_reset``).
    """
    if sg is None or (sg.detach_reset and not sg.smooth):
        return tuple(jnp.where(where, jnp.asarray(g, x.dtype), x) for g, x in zip(ground, q))
    if sg.detach_reset:
        soft = jax.lax.stop_gradient(soft)
    if sg.smooth:
        return tuple(x + soft * (g - x) for g, x in zip(ground, q))
    live = soft - jax.lax.stop_gradient(soft)
    return tuple(jnp.where(where, jnp.asarray(g, x.dtype), x) + live * (g - x) for g, x in zip(ground, q))


def membrane(
    c: StepConstants, v: jax.Array, refractory: jax.Array, current: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Steps 1-2 of DESIGN §1: ``(V after the membrane step (mV), refractory this step (bool), counter left)``."""
    current = jnp.asarray(current, v.dtype)
    is_ref = refractory > 0
    ref = jnp.where(is_ref, refractory - 1, refractory)
    v = c.v_rest + (v - c.v_rest) * c.decay + c.gain * current
    return jnp.where(is_ref, c.v_reset, v), is_ref, ref


def start_refractory(c: StepConstants, ref: jax.Array, spikes: jax.Array) -> jax.Array:
    """Step 6's counter: ``n_ref - 1`` more refractory steps after a spike (int32)."""
    return jnp.where(spikes, jnp.maximum(c.n_ref - 1, 0), ref).astype(jnp.int32)


# The pure step corrects the norm on the last of every RENORM_PERIOD absolute steps, t % 4 == 3, as the
# CUDA fast build does (kernels/cuda/neuron.cuh, QSN_RENORM_AT): where it happens depends on t only,
# so a run split anywhere equals one run.
RENORM_PERIOD = 4


def renormalises(t: Any) -> Any:
    """True when step ``t`` (absolute, ``state.t`` entering it) corrects the pure state's norm:
    ``t % RENORM_PERIOD == RENORM_PERIOD - 1``. A Python bool for an int ``t``, a traced bool for an array."""
    return t % RENORM_PERIOD == RENORM_PERIOD - 1


def norm_correction(q: Amplitudes) -> jax.Array:
    """``(3 - |psi|^2)/2``: one Newton step of ``1/|psi|`` at 1, the factor that puts ``psi`` back on the
    unit sphere to first order.

    A rounded float32 unitary moves ``|psi|^2`` by ~1e-7 a step, and without correction the error
    accumulates (5.8e-2 after 1e6 steps). On its renormalising steps (:func:`renormalises`: one in
    :data:`RENORM_PERIOD`) the pure step folds this factor of the *incoming* state into the unitary's
    two coefficients (``f cos``, ``f sin/w``), so the error ``e`` of the last few steps becomes
    ``O(e^2)`` plus this step's rounding and ``|psi|^2`` stays within a few ulp of 1 for any run length
    (docs/model.md, "Long runs in float32"). Cost: 4 multiply-adds for ``|psi|^2``, one for the factor
    and two multiplies, on one step in four; no square root or division.
    """
    re0, im0, re1, im1 = q
    return 1.5 - 0.5 * (re0 * re0 + im0 * im0 + re1 * re1 + im1 * im1)


class PureQubit(NamedTuple):
    """The qubit as a state vector ``(re0, im0, re1, im1)``: its evolution, conditioning and reset."""

    ground: tuple = (1.0, 0.0, 0.0, 0.0)  # |0>

    def unpack(self, state: PureState) -> Amplitudes:
        return state.amplitudes

    def pack(self, v: jax.Array, ref: jax.Array, q: Amplitudes, t: jax.Array) -> PureState:
        re0, im0, re1, im1 = q
        return PureState(v=v, refractory=ref, re0=re0, im0=im0, re1=re1, im1=im1, t=t)

    def p1(self, q: Amplitudes) -> jax.Array:
        return q[2] * q[2] + q[3] * q[3]

    def evolve(self, c: StepConstants, cfg: StepConfig, q: Amplitudes, a: jax.Array, keys, renorm: Any = True) -> Amplitudes:
        """Step 3 of docs/model.md: ``psi <- U psi``, then the unravelled T2 kick and T1 jump.

        ``renorm`` (a bool, or a traced bool ``()``): this step also corrects the incoming state's norm
        (:func:`norm_correction`). Relaxation renormalises every step itself (the no-jump conditioning
        or the reset), so with finite ``t1`` there is no correction.
        """
        re0, im0, re1, im1 = q
        cos_t, sw = rotation(a, c.delta, c.dt)
        if renorm is not False and not cfg.relaxation:
            # U <- f U: renormalise the incoming state in the same multiply-adds
            f = norm_correction(q)
            f = f if renorm is True else jnp.where(renorm, f, jnp.ones_like(f))
            cos_t, sw = f * cos_t, f * sw
        # U psi = cos(w dt) psi - i sin(w dt)/w H psi, with H psi = (a psi0 + delta psi1, delta psi0 - a psi1)
        h_re0, h_im0 = a * re0 + c.delta * re1, a * im0 + c.delta * im1
        h_re1, h_im1 = c.delta * re0 - a * re1, c.delta * im0 - a * im1
        re0, im0 = cos_t * re0 + sw * h_im0, cos_t * im0 - sw * h_re0
        re1, im1 = cos_t * re1 + sw * h_im1, cos_t * im1 - sw * h_re1
        if cfg.dephasing:
            # exp(-i phi/2 sz) up to a global phase: psi1 <- e^{i phi} psi1, phi ~ N(0, 2 gphi dt)
            phi = c.dephase_std * keys[0].normal(re0.shape, re0.dtype)
            sp, cp = sincos(phi)
            re1, im1 = cp * re1 - sp * im1, sp * re1 + cp * im1
        q = (re0, im0, re1, im1)
        if cfg.relaxation:
            u = keys[1].uniform(re0.shape, re0.dtype)
            decayed = u < self.p1(q) * (1.0 - c.relax_keep)
            q = self.condition_no_jump(q, c.relax_keep, ~decayed)
            q = _reset(q, decayed, self.ground)
        return q

    def condition_no_jump(self, q: Amplitudes, keep: jax.Array, where: jax.Array) -> Amplitudes:
        """``psi <- K0 psi/|K0 psi|``, ``K0 = diag(1, sqrt(keep))``, where ``where`` (``keep``: survival of |1>)."""
        re0, im0, re1, im1 = q
        amp = jnp.sqrt(keep)
        re1k, im1k = amp * re1, amp * im1
        inv = jax.lax.rsqrt(re0 * re0 + im0 * im0 + re1k * re1k + im1k * im1k)
        new = (re0 * inv, im0 * inv, re1k * inv, im1k * inv)
        return tuple(jnp.where(where, a, b) for a, b in zip(new, q))


class MixedQubit(NamedTuple):
    """The qubit as a Bloch vector ``(x, y, z)`` (``rho = (1 + r.sigma)/2``): exact Lindblad step."""

    ground: tuple = (0.0, 0.0, 1.0)  # z = +1

    def unpack(self, state: MixedState) -> tuple:
        return state.bloch

    def pack(self, v: jax.Array, ref: jax.Array, q: tuple, t: jax.Array) -> MixedState:
        x, y, z = q
        return MixedState(v=v, refractory=ref, x=x, y=y, z=z, t=t)

    def p1(self, q: tuple) -> jax.Array:
        return (1.0 - q[2]) / 2.0

    def evolve(self, c: StepConstants, cfg: StepConfig, q: tuple, a: jax.Array, keys, renorm: Any = True) -> tuple:
        """Step 3 of docs/model.md: the Lindblad propagator, with ``|r| <= 1`` kept against rounding.

        The trace is exact by construction (Bloch form); positivity is ``|r| <= 1``, which a rounded
        propagator can overshoot near the pure surface: ``r`` is scaled back onto the sphere then, on
        every step (``renorm`` is the pure step's cadence and does not apply).
        """
        x, y, z = propagate_bloch(q, a, c.delta, c.g1, c.g2, c.dt, cfg.plan)
        r2 = x * x + y * y + z * z
        shrink = jnp.where(r2 > 1.0, jax.lax.rsqrt(jnp.where(r2 > 1.0, r2, 1.0)), 1.0)
        return (x * shrink, y * shrink, z * shrink)

    def condition_no_jump(self, q: tuple, keep: jax.Array, where: jax.Array) -> tuple:
        """``rho <- K0 rho K0^+/tr``: rho00 kept, rho11 *= keep, rho01 *= sqrt(keep), renormalised."""
        p1 = self.p1(q)
        p0, p1k = 1.0 - p1, keep * p1
        inv = 1.0 / (p0 + p1k)
        kh = jnp.sqrt(keep) * inv
        cond = (q[0] * kh, q[1] * kh, (p0 - p1k) * inv)
        return tuple(jnp.where(where, new, old) for new, old in zip(cond, q))


QUBITS = {"pure": PureQubit(), "mixed": MixedQubit()}


def advance(
    c: StepConstants, cfg: StepConfig, state: State, current: jax.Array, key: jax.Array | None,
    renorm: bool | None = None, offset: Any = None,
) -> tuple[State, jax.Array, jax.Array]:
    """The step on precomputed constants (what :class:`qsn.Stepper` calls).

    ``renorm``: ``renormalises(state.t)`` when the caller knows ``state.t`` on the host (a static bool:
    the step compiles with or without the norm correction); None decides from the traced ``state.t``
    (the correction is computed on every step and selected).

    ``offset``: these ``n`` neurons are entries ``[offset, offset + n)`` of a larger population, whose
    random numbers they draw (:class:`qsn.draws.Draws`; a partitioned network's part of a group). None:
    the draws of ``n`` neurons.

    Returns ``(state, spikes, a)``: ``a`` is the ``(n,)`` drive ``(V - v_rest)/(v_th - v_rest)`` the
    qubit saw this step (runs track its range to verify the mixed-mode propagator plan).
    """
    dtype = state.v.dtype
    qubit = cfg.qubit
    v, is_ref, ref = membrane(c, state.v, state.refractory, current)
    a = (v - c.v_rest) * c.inv_range
    if cfg.needs_key:
        keys = tuple(Draws(k, offset) for k in jax.random.split(jax.random.fold_in(key, state.t), 3))
    else:
        keys = (None, None, None)
    renorm = renormalises(state.t) if renorm is None else bool(renorm)
    q = qubit.evolve(c, cfg, qubit.unpack(state), a, keys, renorm)
    spikes = ~is_ref & (v >= c.v_th)
    sg = cfg.surrogate
    # float spike for the surrogate: x = (V - v_th)/(v_th - v_rest), 0 at threshold, -1 at rest
    soft = None if sg is None else _float_spike(sg, spikes, (v - c.v_th) * c.inv_range, is_ref)
    if cfg.jumps:
        p1 = qubit.p1(q)
        u = keys[2].uniform(p1.shape, dtype)
        jumped = ~is_ref & (u < p1 * c.jump_prob)
        q = qubit.condition_no_jump(q, c.jump_keep, ~is_ref & ~jumped)
        spikes = spikes | jumped
        if sg is not None:
            # x = p1 - u/p_jump (a jump iff x > 0); 'or' of two spikes in [0, 1]
            x = jnp.where(c.jump_prob > 0, p1 - u / jnp.where(c.jump_prob > 0, c.jump_prob, 1.0), -1.0)
            jump_soft = _float_spike(sg, jumped, x, is_ref)
            soft = soft + jump_soft - soft * jump_soft
    (v,) = _reset((v,), spikes, (c.v_reset,), soft, sg)
    ref = start_refractory(c, ref, spikes)
    q = _reset(q, spikes, qubit.ground, soft, sg)
    return qubit.pack(v, ref, q, state.t + 1), (spikes if sg is None else soft), a


def check_key(cfg: StepConfig, key: Any) -> None:
    """Raise ``ConfigurationError`` when the configuration draws random numbers and ``key`` is None."""
    if cfg.needs_key and key is None:
        parts = [name for name, on in (("quantum-jump spiking (jump_rate > 0)", cfg.jumps),
                                        ("pure-mode dephasing (finite t2)", cfg.mode == "pure" and cfg.dephasing),
                                        ("pure-mode relaxation (finite t1)", cfg.mode == "pure" and cfg.relaxation))
                 if on]
        raise ConfigurationError(
            f"Argument `key` is required: {', '.join(parts)} draws random numbers; pass key=jax.random.key(0)"
        )
