"""Quadratic pseudo-Boolean models of a loss over a :class:`~qsn.learning.space.SearchSpace`, their Bayesian fit,
and their QUBO form for the annealer (the model and acquisition of :mod:`qsn.learning.search`, whose docstring
derives the encodings and penalty bounds).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.learning.space import SearchSpace
from qsn.qubo.model import QUBO, make_qubo

__all__ = ["QuadraticModel", "Posterior", "Encoding", "features", "fit_model", "sample_model", "make_encoding",
           "model_qubo", "ENCODINGS"]

ENCODINGS = ("unary", "one_hot")

_NOISE_FLOOR = 1e-10  # estimated noise variance floor, in units of the losses' variance


class QuadraticModel(NamedTuple):
    """A quadratic pseudo-Boolean function ``f(x) = c + h x + x^T j x / 2`` over one-hot bits, in loss units."""

    c: float
    h: np.ndarray  # (D,) float64
    j: np.ndarray  # (D, D) float64, symmetric, zero diagonal and zero inside each parameter's block

    def value(self, x: Any) -> np.ndarray:
        """``f`` of bits ``x`` (..., D) → (...,) float64."""
        x = np.asarray(x, dtype=np.float64)
        return self.c + x @ self.h + 0.5 * np.einsum("...i,ij,...j->...", x, self.j, x)


class Posterior(NamedTuple):
    """Gaussian posterior of the surrogate's coefficients ``beta`` (p,) = [c, h (D,), J pairs (P,)], standardised.

    ``beta = mean + basis (scale * z1) + prior_std (z2 - basis basis^T z2)``, ``z1, z2`` standard normal: along the
    data's right singular vectors ``basis`` the posterior std is ``scale``; across the rest it is the prior's.
    Losses were standardised as ``(y - y_mean) / y_std`` before the fit.
    """

    mean: np.ndarray  # (p,) float64, posterior mean (minimum norm at noise = 0)
    basis: np.ndarray  # (p, r) float64, orthonormal, r = rank of the design
    scale: np.ndarray  # (r,) float64, posterior std along basis
    prior_std: float  # prior std of each coefficient
    y_mean: float
    y_std: float
    noise: float  # noise variance in loss units^2, as given or estimated


def features(space: SearchSpace, x: Any) -> np.ndarray:
    """Design matrix (n, p) of one-hot bits ``x`` (n, D): ``[1, x_i (D), x_i x_j over space.pairs() (P)]``."""
    x = np.asarray(x, dtype=np.float64)
    i, j = space.pairs()
    return np.concatenate([np.ones((x.shape[0], 1)), x, x[:, i] * x[:, j]], axis=1)


def fit_model(space: SearchSpace, x: Any, y: Any, *, prior_var: float | None = None,
                  noise: float | None = None) -> Posterior:
    """Bayesian linear regression of losses ``y`` (n,) on the quadratic features of one-hot bits ``x`` (n, D).

    Prior ``beta ~ N(0, prior_var I)`` on the standardised losses; ``prior_var=None`` gives ``1 / (1 + K + K(K-1)/2)``,
    so that a configuration's prior variance (1 + K + K(K-1)/2 active features) is 1, the losses' variance. Noise
    ``N(0, noise)`` (loss units^2): ``None`` estimates it by the evidence fixed point ``noise = RSS / (n - gamma)``
    (``gamma`` the effective number of parameters; floored at 1e-10 of the losses' variance); ``0`` gives the
    minimum-norm interpolant, exact for noise-free losses of a quadratic once the trials span the feature space.
    Computed from the thin SVD of the design, so ``n < p`` and the one-hot redundancies are handled exactly.
    """
    x, y = np.asarray(x), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != space.n_bits or x.shape[0] == 0:
        raise InvalidInputError(f"Argument `x` must have shape (n, {space.n_bits}) with n >= 1, but has {x.shape}")
    if not np.all((x == 0) | (x == 1)) or np.any(np.add.reduceat(x, space.offsets, axis=1) != 1):
        raise InvalidInputError("Argument `x` must hold one-hot states (one 1 per parameter block), but does not")
    if y.shape != (x.shape[0],) or not np.all(np.isfinite(y)):
        raise InvalidInputError(f"Argument `y` must be ({x.shape[0]},) finite losses, but is {y!r}")
    k = len(space.names)
    prior_var = 1.0 / (1 + k + k * (k - 1) / 2) if prior_var is None else float(prior_var)
    if not (math.isfinite(prior_var) and prior_var > 0):
        raise ConfigurationError(f"Argument `prior_var` must be finite and > 0, but is {prior_var}")
    if noise is not None and not (math.isfinite(noise) and noise >= 0):
        raise ConfigurationError(f"Argument `noise` must be None or finite and >= 0, but is {noise}")
    y_mean, y_std = float(y.mean()), float(y.std())
    y_std = y_std if y_std > 0 else 1.0
    t = (y - y_mean) / y_std
    phi = features(space, x)
    u, s, vt = np.linalg.svd(phi, full_matrices=False)
    keep = s > s[0] * max(phi.shape) * np.finfo(np.float64).eps
    u, s, vt = u[:, keep], s[keep], vt[keep]
    ut = u.T @ t
    if noise is None:  # fixed point of the evidence's noise update, from the noise-free end
        sigma2 = _NOISE_FLOOR
        for _ in range(50):
            shrink = s**2 / (s**2 + sigma2 / prior_var)
            rss = float(np.sum(t**2) - np.sum(ut**2) + np.sum(((1 - shrink) * ut) ** 2))
            new = max(rss / max(len(t) - shrink.sum(), 1.0), _NOISE_FLOOR)
            if abs(new - sigma2) <= 1e-6 * sigma2:
                break
            sigma2 = new
    else:
        sigma2 = noise / y_std**2
    mean = vt.T @ (s / (s**2 + sigma2 / prior_var) * ut)
    scale = np.sqrt(1.0 / (s**2 / sigma2 + 1.0 / prior_var)) if sigma2 > 0 else np.zeros_like(s)
    return Posterior(mean, vt.T, scale, math.sqrt(prior_var), y_mean, y_std, sigma2 * y_std**2)


def sample_model(space: SearchSpace, post: Posterior, rng: np.random.Generator | None = None) -> QuadraticModel:
    """The posterior-mean surrogate (``rng=None``) or one Thompson draw from the posterior, in loss units."""
    beta = post.mean
    if rng is not None:
        z1, z2 = rng.standard_normal(post.basis.shape[1]), rng.standard_normal(post.basis.shape[0])
        beta = beta + post.basis @ (post.scale * z1) + post.prior_std * (z2 - post.basis @ (post.basis.T @ z2))
    beta = beta * post.y_std
    d = space.n_bits
    i, j = space.pairs()
    jm = np.zeros((d, d))
    jm[i, j] = jm[j, i] = beta[1 + d:]
    return QuadraticModel(post.y_mean + float(beta[0]), beta[1:1 + d].copy(), jm)


class Encoding(NamedTuple):
    """How the annealer's bits ``z`` (B,) encode configurations: ``x = a z + b`` on valid ``z`` (module docstring)."""

    name: str
    a: np.ndarray  # (D, B) float64
    b: np.ndarray  # (D,) float64
    codebooks: tuple[np.ndarray, ...]  # K arrays (n_k, L_k) uint8: row v holds the bits of parameter k's value v
    penalty: QUBO  # over z: 0 on valid states, an integer >= 1 on invalid ones
    factor: int  # P > factor * max_i g_i keeps the ground state valid

    def bits(self, codes: Any) -> np.ndarray:
        """Annealer bits (..., B) uint8 of value indices ``codes`` (..., K)."""
        codes = np.asarray(codes)
        return np.concatenate([cb[codes[..., k]] for k, cb in enumerate(self.codebooks)], axis=-1)


def make_encoding(space: SearchSpace, name: str = "unary") -> Encoding:
    """The ``"unary"`` (thermometer, domain-wall) or ``"one_hot"`` encoding of ``space`` for the annealer."""
    if name not in ENCODINGS:
        raise ConfigurationError(f"Argument `encoding` must be one of {list(ENCODINGS)}, but is {name!r}")
    widths = space.sizes - 1 if name == "unary" else space.sizes
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    a, b = np.zeros((space.n_bits, int(widths.sum()))), np.zeros(space.n_bits)
    pen, offset, codebooks = np.zeros((a.shape[1],) * 2), 0.0, []
    for o, n, z in zip(space.offsets, space.sizes, starts):
        if name == "one_hot":
            codebooks.append(np.eye(n, dtype=np.uint8))
            a[o:o + n, z:z + n] = np.eye(n)
            pen[z:z + n, z:z + n] = 1.0 - 2.0 * np.eye(n)  # (sum x - 1)^2 = -sum x + 2 sum_{i<j} x_i x_j + 1
            offset += 1.0
            continue
        codebooks.append((np.arange(n)[:, None] >= np.arange(1, n)[None, :]).astype(np.uint8))  # z_t = [v >= t]
        b[o] = 1.0  # x_v = z_v - z_{v+1}, z_0 = 1, z_n = 0
        a[o + np.arange(1, n), z + np.arange(n - 1)] = 1.0
        a[o + np.arange(n - 1), z + np.arange(n - 1)] -= 1.0
        for t in range(z, z + n - 2):  # one per "01" pair: z_{t+1} (1 - z_t)
            pen[t + 1, t + 1] += 1.0
            pen[t, t + 1] = pen[t + 1, t] = -0.5
    factor = 1 if name == "one_hot" else max(int(space.sizes.max()) - 2, 1)
    return Encoding(name, a, b, tuple(codebooks), make_qubo(pen, offset), factor)


def model_qubo(space: SearchSpace, surrogate: QuadraticModel, *, encoding: str | Encoding = "unary",
                   penalty: float | None = None) -> QUBO:
    """The QUBO ``f(a z + b) + P c(z)`` over the annealer's bits ``z`` (B,); equals ``f`` on valid states.

    ``c(z)`` is the encoding's penalty (0 on valid states, >= 1 elsewhere). ``penalty=None`` gives
    ``P = 1.5 factor max_i g_i`` (1 if ``f`` is constant): above the bounds in the module docstring, so the ground
    state is valid (one-hot: every local minimum too).

    Example:
        >>> from qsn.qubo import energy
        >>> space = SearchSpace({"a": [0, 1, 2], "b": [0, 1]})
        >>> f = QuadraticModel(1.0, np.array([0.0, 1.0, 2.0, 0.0, -1.0]), np.zeros((5, 5)))
        >>> q = model_qubo(space, f)                      # unary: 2 + 1 bits
        >>> z = make_encoding(space).bits([[2, 1]])           # a = 2, b = 1
        >>> z.tolist(), energy(q, z, host=True).tolist(), f.value(space.one_hot([[2, 1]])).tolist()
        ([[1, 1, 1]], [2.0], [2.0])
    """
    enc = encoding if isinstance(encoding, Encoding) else make_encoding(space, encoding)
    lin = enc.a.T @ (surrogate.h + surrogate.j @ enc.b)
    q = 0.5 * enc.a.T @ surrogate.j @ enc.a + np.diag(lin)  # no diagonal from j: no couplings inside a block
    g = float(np.max(np.abs(lin) + np.abs(q - np.diag(lin)).sum(axis=1) * 2.0))
    p = (1.5 * enc.factor * g if g > 0 else 1.0) if penalty is None else float(penalty)
    return make_qubo(q + p * enc.penalty.q, float(surrogate.value(enc.b)) + p * enc.penalty.offset)
