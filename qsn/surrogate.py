"""Surrogate gradients: spikes that are exact Heaviside steps forward and smooth backward.

A spike is the Heaviside step ``Θ(x)`` of a dimensionless distance to threshold, ``x = (V - v_th)/(v_th -
v_rest)`` for threshold spikes (``x = 0`` at threshold, ``x = -1`` at rest) and ``x = p1 - u/p_jump`` for
quantum jumps (``u`` the step's uniform draw). Its derivative is zero almost everywhere, so gradients never
reach the weights through a spike. A surrogate keeps the forward pass exact and replaces ``Θ'(x)`` in the
backward pass by a density ``g(x)`` of unit integral whose width is ``1/slope`` (Neftci, Mostafa & Zenke,
IEEE Signal Process. Mag. 2019; Zenke & Vogels, Neural Comput. 2021):

============== ============================================= ==========================================
surrogate       ``g(x)`` (backward)                            ``G(x)`` (its primitive, ``smooth=True``)
============== ============================================= ==========================================
fast_sigmoid    ``k / (2 (1 + k|x|)^2)`` (SuperSpike)          ``(1 + kx/(1 + k|x|))/2``
arctan          ``k / (2 (1 + (π k x/2)^2))``                   ``1/2 + arctan(π k x/2)/π``
sigmoid         ``k σ(kx) (1 - σ(kx))``                         ``σ(kx)``
triangle        ``k max(0, 1 - k|x|)``                          piecewise quadratic, 0 below ``-1/k``
============== ============================================= ==========================================

``smooth=True`` makes the forward pass ``G(x)`` too: spikes become soft values in (0, 1) and resets convex
mixtures, a model whose gradients are true derivatives (the tests compare them with finite differences).

``detach_reset=True`` (the default) stops the gradient of the reset that follows a spike, so a spike's
gradient reaches the weights through the readout only and not through ``V <- v_rest`` (Zenke & Vogels found
this trains better); ``False`` keeps both paths.

Pass a surrogate to :func:`qsn.simulate`, :func:`qsn.step` or the networks' ``Network.run`` as
``surrogate=fast_sigmoid(25.0)``; spikes then come back as floats (0.0 or 1.0) that carry gradients.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from qsn.surrogate import fast_sigmoid
    >>> f = fast_sigmoid(10.0)
    >>> f(jnp.array([-0.1, 0.0, 0.2]))          # [0., 1., 1.]
    >>> jax.grad(lambda x: f(x))(0.0)           # 5.0 = slope/2
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp

from qsn.errors import ConfigurationError

__all__ = ["Surrogate", "check_surrogate", "fast_sigmoid", "arctan", "sigmoid", "triangle", "SURROGATES", "heaviside"]


def _fast_sigmoid(k: float, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    d = 1.0 + k * jnp.abs(x)
    return 0.5 * (1.0 + k * x / d), 0.5 * k / (d * d)


def _arctan(k: float, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    u = 0.5 * math.pi * k * x
    return 0.5 + jnp.arctan(u) / math.pi, 0.5 * k / (1.0 + u * u)


def _sigmoid(k: float, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    s = jax.nn.sigmoid(k * x)
    return s, k * s * (1.0 - s)


def _triangle(k: float, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    u = jnp.clip(k * x, -1.0, 1.0)
    cdf = jnp.where(u < 0, 0.5 * (1.0 + u) ** 2, 1.0 - 0.5 * (1.0 - u) ** 2)
    return cdf, k * (1.0 - jnp.abs(u))


# name -> x |-> (G(x), g(x)): the primitive and the density, one formula for both passes
_SHAPES: dict[str, Callable[[float, jax.Array], tuple[jax.Array, jax.Array]]] = {
    "fast_sigmoid": _fast_sigmoid,
    "arctan": _arctan,
    "sigmoid": _sigmoid,
    "triangle": _triangle,
}
SURROGATES = tuple(_SHAPES)


@dataclasses.dataclass(frozen=True)
class Surrogate:
    """A spike function: exact Heaviside forward, the density ``g`` of :data:`SURROGATES` ``shape`` backward.

    Hashable (it is part of the compiled step's static configuration).

    Attributes:
        shape: one of :data:`SURROGATES`.
        slope: ``k`` > 0, the inverse width of ``g`` in units of the threshold distance ``v_th - v_rest``
            (``g(0)`` is ``k/2`` for fast_sigmoid and arctan, ``k/4`` for sigmoid, ``k`` for triangle).
        smooth: forward pass ``G(x)`` instead of ``Θ(x)`` (soft spikes and resets; gradients exact).
        detach_reset: no gradient through the reset ``V <- v_rest``, ``psi <- |0>`` after a spike.
    """

    shape: str = "fast_sigmoid"
    slope: float = 25.0
    smooth: bool = False
    detach_reset: bool = True

    def __post_init__(self) -> None:
        if self.shape not in _SHAPES:
            raise ConfigurationError(f"Argument `shape` must be one of {SURROGATES}, but is {self.shape!r}")
        slope = self.slope
        if not isinstance(slope, numbers.Real) or not (0 < slope < math.inf):  # a tracer is not Real
            raise ConfigurationError(f"Argument `slope` must be a finite Python number > 0, but is {slope!r}")
        object.__setattr__(self, "slope", float(slope))

    def primitive(self, x: jax.Array) -> jax.Array:
        """``G(x)``: the smooth step whose derivative is the surrogate density (any shape)."""
        return _SHAPES[self.shape](self.slope, jnp.asarray(x))[0]

    def density(self, x: jax.Array) -> jax.Array:
        """``g(x) = G'(x)``: the surrogate derivative of the step (any shape)."""
        return _SHAPES[self.shape](self.slope, jnp.asarray(x))[1]

    def __call__(self, x: jax.Array) -> jax.Array:
        """The spike ``Θ(x)`` (``G(x)`` when ``smooth``), in ``x``'s float dtype, with derivative ``g(x)``."""
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ConfigurationError(f"Argument `x` must be a float array, but has dtype {x.dtype}")
        return self.primitive(x) if self.smooth else heaviside(self, x)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def heaviside(surrogate: Surrogate, x: jax.Array) -> jax.Array:
    """``Θ(x) = 1[x >= 0]`` in ``x``'s dtype, differentiated as ``surrogate.density(x)``."""
    return (x >= 0).astype(x.dtype)


@heaviside.defjvp
def _heaviside_jvp(surrogate: Surrogate, primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (x,), (dx,) = primals, tangents
    return heaviside(surrogate, x), surrogate.density(x) * dx


def check_surrogate(surrogate: Any) -> None:
    """Raise ``ConfigurationError`` unless ``surrogate`` is None or a :class:`Surrogate`."""
    if surrogate is not None and not isinstance(surrogate, Surrogate):
        raise ConfigurationError(
            f"Argument `surrogate` must be a qsn.surrogate.Surrogate (e.g. fast_sigmoid(25.0)), but is {surrogate!r}"
        )


def fast_sigmoid(slope: float = 25.0, **kwargs: Any) -> Surrogate:
    """SuperSpike's fast sigmoid (Zenke & Ganguli 2018), ``g(x) = k/(2(1 + k|x|)^2)``."""
    return Surrogate("fast_sigmoid", slope, **kwargs)


def arctan(slope: float = 2.0, **kwargs: Any) -> Surrogate:
    """Arctangent (Fang et al. 2021, SpikingJelly's default), ``g(x) = k/(2(1 + (π k x/2)^2))``."""
    return Surrogate("arctan", slope, **kwargs)


def sigmoid(slope: float = 4.0, **kwargs: Any) -> Surrogate:
    """Logistic, ``g(x) = k σ(kx)(1 - σ(kx))``; with ``smooth=True`` the forward pass is analytic everywhere."""
    return Surrogate("sigmoid", slope, **kwargs)


def triangle(slope: float = 1.0, **kwargs: Any) -> Surrogate:
    """Triangle (Esser et al. 2016; Bellec et al. 2018), ``g(x) = k max(0, 1 - k|x|)``: zero beyond ``1/k``."""
    return Surrogate("triangle", slope, **kwargs)
