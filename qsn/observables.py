"""Observables of the neurons' qubits (DESIGN §1), for pure and mixed states alike.

All functions take a :class:`~qsn.state.PureState` or :class:`~qsn.state.MixedState` of ``n`` neurons
and return arrays with the neuron axis first. Conventions: ``sz|0> = +|0>``, ``p_excited = rho11``,
``rho = (1 + x sx + y sy + z sz)/2``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from qsn.state import State, mode_of

__all__ = [
    "bloch_vector",
    "density_matrix",
    "p_excited",
    "coherence",
    "purity",
    "entropy",
    "OBSERVABLES",
    "observe",
]


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(x)`` for ``x >= 0`` whose derivative at 0 is 0 rather than inf (NaN after the chain rule)."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def _bloch(state: State) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(x, y, z)``, each ``(n,)``, of any state."""
    if mode_of(state) == "mixed":
        return state.bloch
    re0, im0, re1, im1 = state.amplitudes
    # rho01 = psi0 conj(psi1) = (x - i y)/2
    x = 2.0 * (re0 * re1 + im0 * im1)
    y = 2.0 * (re0 * im1 - im0 * re1)
    z = re0**2 + im0**2 - re1**2 - im1**2
    return x, y, z


def bloch_vector(state: State) -> jax.Array:
    """``(n, 3)`` Bloch vectors ``(x, y, z)``, dimensionless, ``|r| <= 1``."""
    return jnp.stack(_bloch(state), axis=-1)


def density_matrix(state: State) -> jax.Array:
    """``(n, 2, 2)`` complex density matrices in the basis ``(|0>, |1>)``."""
    x, y, z = _bloch(state)
    zero = jnp.zeros_like(z)
    rho00, rho11 = jax.lax.complex((1 + z) / 2, zero), jax.lax.complex((1 - z) / 2, zero)
    rho01 = jax.lax.complex(x / 2, -y / 2)
    top = jnp.stack([rho00, rho01], axis=-1)
    bottom = jnp.stack([jnp.conj(rho01), rho11], axis=-1)
    return jnp.stack([top, bottom], axis=-2)


def p_excited(state: State) -> jax.Array:
    """``(n,)`` probability of |1>, ``rho11``."""
    if mode_of(state) == "pure":
        return state.re1**2 + state.im1**2
    return (1.0 - state.z) / 2.0


def coherence(state: State) -> jax.Array:
    """``(n,)`` magnitude of the off-diagonal element, ``|rho01|`` (0 to 1/2)."""
    if mode_of(state) == "pure":
        return jnp.hypot(state.re0, state.im0) * jnp.hypot(state.re1, state.im1)  # hypot: finite gradient at 0
    return jnp.hypot(state.x, state.y) / 2.0


def purity(state: State) -> jax.Array:
    """``(n,)`` ``tr(rho^2) = (1 + |r|^2)/2`` (1 for pure states, 1/2 for the maximally mixed)."""
    x, y, z = _bloch(state)
    return (1.0 + x * x + y * y + z * z) / 2.0


def entropy(state: State) -> jax.Array:
    """``(n,)`` von Neumann entropy in bits, ``-sum_i l_i log2 l_i`` with ``l = (1 +- |r|)/2``.

    ``|r|`` is clipped to ``[0, 1]`` first, so rounding (``|r| = 1 + ulp``) gives 0, never NaN. Its derivative
    is infinite at pure states (``-l log l`` at ``l = 0``): do not differentiate through it there.
    """
    x, y, z = _bloch(state)
    length = jnp.clip(safe_sqrt(x * x + y * y + z * z), 0.0, 1.0)
    lp, lm = (1.0 + length) / 2.0, (1.0 - length) / 2.0
    return 0.0 - (xlogy(lp, lp) + xlogy(lm, lm)) / math.log(2.0)  # 0.0 - (-0.0) is +0.0 for pure states


# Quantities simulate() can record, each a function of the state returning (n, ...) arrays.
OBSERVABLES = {
    "v": lambda s: s.v,
    "rho": density_matrix,
    "p1": p_excited,
    "coherence": coherence,
    "entropy": entropy,
}


def observe(state: State, names: tuple[str, ...]) -> dict[str, jax.Array]:
    """``{name: OBSERVABLES[name](state)}`` for each requested name."""
    return {name: OBSERVABLES[name](state) for name in names}
