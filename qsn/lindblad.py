"""Exact Lindblad propagator of one qubit over a step, in Bloch-vector form.

With ``H = a sz + delta sx`` (hbar = 1), relaxation ``L1 = sqrt(g1)|0><1|`` and pure dephasing
``Lphi = sqrt(gphi/2) sz`` (``g1 = 1/t1``, ``g2 = 1/t2 = g1/2 + gphi``), the Bloch vector
``r = (x, y, z)`` of ``rho = (1 + r.sigma)/2`` obeys the affine linear ODE ``dr/dt = M r + b``::

        [ -g2   -2a    0  ]        [ 0  ]
    M = [ 2a    -g2  -2delta ], b = [ 0  ]
        [ 0    2delta  -g1 ]        [ g1 ]

so over a step with ``H`` held constant ``(r, 1) <- expm(A dt) (r, 1)`` with the 4x4 generator
``A = [[M, b], [0, 0]]``. Its action is evaluated as a Taylor series in Horner form, split into
``m`` equal substeps, with ``m`` and the number of terms ``K`` chosen from a bound on
``||A dt||_inf`` and the dtype so that the truncation error is below eps/4 (a few dozen FMAs per
neuron for the default parameters; no matrix exponential, no eigen-decomposition). Up to
``UNROLLED_SUBSTEPS`` substeps are unrolled; more run in a ``fori_loop``, so compilation is bounded
for any drive; past ``MAX_SUBSTEPS`` the plan is refused with a :class:`ConfigurationError`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError, NumericalInstabilityError

__all__ = ["SeriesPlan", "series_plan", "plan_capacity", "generator_norm", "propagate_bloch"]

# Largest ||A h|| per substep: beyond 1 the series needs more terms than splitting the step costs.
_MAX_NORM_PER_SUBSTEP = 1.0
# Plans with more substeps run them in a fori_loop (one compiled substep), so compilation takes the
# same time for any drive; fewer are unrolled, which lets XLA fuse the whole step.
UNROLLED_SUBSTEPS = 4
# Most substeps per step: ||A dt|| = 4096 is a drive |a| of ~2e4 at dt = 0.1 ms (r_m I ~ 3e5 mV for a
# 15 mV threshold gap), where a run would cost thousands of Taylor evaluations per neuron-step.
MAX_SUBSTEPS = 4096


class SeriesPlan(NamedTuple):
    """Static evaluation plan for ``expm(A dt)`` acting on ``(r, 1)`` (the compile key: two ints)."""

    substeps: int  # m — equal substeps of dt/m
    terms: int  # K — Taylor terms per substep


def _remainder(x: float, terms: int) -> float:
    """Taylor remainder bound of ``exp`` for a matrix of norm ``x`` after ``terms`` terms."""
    return x ** (terms + 1) / math.factorial(terms + 1) * math.exp(x)


def series_plan(norm_bound: float, dtype: jnp.dtype) -> SeriesPlan:
    """Smallest ``(m, K)`` with ``x^(K+1)/(K+1)! * e^x <= eps/4`` where ``x = norm_bound/m <= 1``.

    The bound is the standard Taylor remainder of ``exp`` for a matrix of norm ``x``.
    """
    if not math.isfinite(norm_bound) or norm_bound < 0:
        raise NumericalInstabilityError(f"mixed-mode propagator: the drive norm ||A dt|| must be finite, but is {norm_bound}")
    eps = float(jnp.finfo(dtype).eps)
    m = max(1, math.ceil(norm_bound / _MAX_NORM_PER_SUBSTEP))
    if m > MAX_SUBSTEPS:
        raise ConfigurationError(
            f"mixed-mode propagator: a drive of ||A dt|| = {norm_bound:.4g} (|a| up to ~{norm_bound / 2:.3g}/dt) needs "
            f"{m} substeps per step, more than the {MAX_SUBSTEPS} allowed (||A dt|| <= {MAX_SUBSTEPS * _MAX_NORM_PER_SUBSTEP:g}): "
            f"reduce the current or dt"
        )
    x = norm_bound / m
    k = 1
    while _remainder(x, k) > eps / 4:
        k += 1
    return SeriesPlan(substeps=m, terms=k)


def plan_capacity(plan: SeriesPlan, dtype: jnp.dtype) -> float:
    """Largest ``||A dt||_inf`` for which ``plan`` is still exact to eps/4 (bisection on the remainder)."""
    eps = float(jnp.finfo(dtype).eps)
    lo, hi = 0.0, _MAX_NORM_PER_SUBSTEP
    if _remainder(hi, plan.terms) <= eps / 4:
        return plan.substeps * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _remainder(mid, plan.terms) <= eps / 4 else (lo, mid)
    return plan.substeps * lo


def generator_norm(a, delta, g1, g2, dt):
    """``||A dt||_inf`` (max absolute row sum of the 4x4 generator), elementwise; NumPy or JAX."""
    xp = jnp if isinstance(a, jax.Array) else np
    return dt * xp.maximum(2 * xp.abs(a) + g2 + 2 * delta, 2 * delta + 2 * g1)


def propagate_bloch(
    bloch: tuple[jax.Array, jax.Array, jax.Array],
    a: jax.Array,
    delta: jax.Array,
    g1: jax.Array,
    g2: jax.Array,
    dt: jax.Array,
    plan: SeriesPlan,
) -> jax.Array:
    """``(r, 1) <- expm(A dt) (r, 1)`` for every neuron.

    Args:
        bloch: ``(x, y, z)``, each ``(n,)``.
        a, delta: ``(n,)`` or scalar coefficients of ``H = a sz + delta sx``, 1/ms.
        g1, g2: ``1/t1`` and ``1/t2``, 1/ms (0 for infinite times).
        dt: step, ms (scalar).
        plan: from :func:`series_plan` for a bound on :func:`generator_norm` over the population.

    Returns:
        ``(x, y, z)`` after the step.
    """
    h = dt / plan.substeps
    # Entries of h*A that the Horner loop multiplies by; b = (0, 0, g1).
    a2, d2, e1, e2 = 2 * a * h, 2 * delta * h, g1 * h, g2 * h

    def substep(r):
        x, y, z = r
        zx, zy, zz = x, y, z
        for k in range(plan.terms, 0, -1):  # terms <= ~20 for any plan (norm <= 1 per substep)
            inv_k = 1.0 / k
            dx = -e2 * zx - a2 * zy
            dy = a2 * zx - e2 * zy - d2 * zz
            dz = d2 * zy - e1 * zz + e1
            zx, zy, zz = x + inv_k * dx, y + inv_k * dy, z + inv_k * dz
        return zx, zy, zz

    r = tuple(bloch)
    if plan.substeps <= UNROLLED_SUBSTEPS:
        for _ in range(plan.substeps):
            r = substep(r)
        return r
    # broadcast first so the loop carry keeps one shape
    r = tuple(jnp.broadcast_to(c, jnp.broadcast_shapes(*(jnp.shape(v) for v in (*r, a2, d2, e1, e2)))) for c in r)
    return jax.lax.fori_loop(0, plan.substeps, lambda _, rr: substep(rr), r)
