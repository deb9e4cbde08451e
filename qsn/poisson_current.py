"""A current made of Poisson input spikes, drawn from a counter-based generator (Philox).

Every neuron receives ``k ~ Poisson(lam)`` input spikes per step, ``lam = sources * rate * dt``, and
the current ``offset + weight * k``. The draw of neuron ``i`` at absolute step ``t`` is a pure
function of ``(i, t, seed)``: word ``t % 4`` of the Philox block of counter ``(i, t // 4, 0, 0)``.
The JAX path evaluates it as a current function of the step index, and the fused CUDA kernel
(``backend="cupy"``) draws the identical numbers inside the kernel, so both backends see the same
input without a ``(T, n)`` array in memory.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError
from qsn.philox import philox4x32, seed_words, uniform24

__all__ = ["PoissonCurrent", "MAX_MEAN", "check_dt"]

# Largest mean count per step: beyond it the inversion table (and the kernel's search) grows long,
# and a Gaussian approximation of the input is the usual model anyway.
MAX_MEAN = 64.0
# The table stops where the tail's mass is below the uniform's resolution (2^-24).
_TAIL = 2.0**-25


class PoissonCurrent:
    """``offset + weight * k``, ``k ~ Poisson(sources * rate_hz * dt / 1000)`` independently per neuron
    and step. Call it with an absolute step index to get the ``(n,)`` current (mV, as ``r_m * I``).

    Args:
        n: neurons.
        rate_hz: rate of each input source, Hz.
        weight: current per input spike (mV), scalar or ``(n,)``.
        key: ``jax.random`` key that seeds the generator.
        dt: step, ms (must equal the population's ``NeuronParams.dt``; checked by ``simulate``).
        sources: independent sources per neuron (their sum is Poisson with ``sources`` times the mean).
        offset: constant current added every step, mV, scalar or ``(n,)``.

    Example:
        >>> inp = PoissonCurrent(1000, rate_hz=10.0, weight=2.0, key=jax.random.key(0), sources=100)
        >>> r = qsn.simulate(p, s, inp, steps=1000)
    """

    # A plain class, hashed by identity: simulate() passes current functions to jit as static
    # arguments, so one object compiles once and its arrays become constants of that program.
    n: int
    rate_hz: float
    dt: float
    sources: int
    seed: tuple[int, int]  # Philox key words
    weight: np.ndarray  # float32, () or (n,)
    offset: np.ndarray  # float32, () or (n,)
    cdf: np.ndarray  # float32 Poisson CDF F(0), F(1), ...: k = #{j : F(j) <= u}

    def __init__(self, n: int, rate_hz: float, weight: Any, key: jax.Array, *, dt: float = 0.1,
                 sources: int = 1, offset: Any = 0.0):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigurationError(f"Argument `n` must be a positive int, but is {n!r}")
        if not isinstance(sources, (int, np.integer)) or sources < 1:
            raise ConfigurationError(f"Argument `sources` must be a positive int, but is {sources!r}")
        if not (np.isfinite(rate_hz) and rate_hz >= 0):
            raise ConfigurationError(f"Argument `rate_hz` must be finite and >= 0, but is {rate_hz!r}")
        if not (np.isfinite(dt) and dt > 0):
            raise ConfigurationError(f"Argument `dt` must be finite and > 0, but is {dt!r}")
        lam = sources * rate_hz * dt / 1000.0
        if lam > MAX_MEAN:
            raise ConfigurationError(
                f"PoissonCurrent: mean input spikes per step sources*rate_hz*dt/1000 = {lam:.3g} exceeds {MAX_MEAN}; "
                "use fewer sources, a smaller dt, or a Gaussian current (a (T, n) array)"
            )
        for name, value in (("weight", weight), ("offset", offset)):
            arr = np.asarray(value, np.float64)
            if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] not in (1, n)):
                raise ConfigurationError(f"Argument `{name}` must be a scalar or have shape (n,) = ({n},), but has shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ConfigurationError(f"Argument `{name}` must be finite")
        self.n, self.rate_hz, self.dt, self.sources = int(n), float(rate_hz), float(dt), int(sources)
        self.seed = seed_words(key)
        self.weight = np.asarray(weight, np.float32)
        self.offset = np.asarray(offset, np.float32)
        from scipy import stats  # here, not at import: scipy.stats costs ~0.5 s and `import qsn` needs none of it

        k_max = int(stats.poisson.isf(_TAIL, lam)) + 1 if lam > 0 else 0
        self.cdf = stats.poisson.cdf(np.arange(k_max + 1), lam).astype(np.float32)[: max(k_max, 0)]

    @property
    def mean(self) -> float:
        """Mean input spikes per neuron and step."""
        return self.sources * self.rate_hz * self.dt / 1000.0

    @property
    def range(self) -> tuple[float, float]:
        """``(min, max)`` current the table can produce, mV (``k`` is at most ``len(cdf)``); bounds the
        mixed-mode propagator plan."""
        ends = [self.offset + self.weight * k for k in (0, len(self.cdf))]
        return float(np.min(np.minimum(*ends))), float(np.max(np.maximum(*ends)))

    def counts(self, t: jax.Array) -> jax.Array:
        """``(n,)`` int32 input spikes at absolute step ``t``."""
        t = jnp.asarray(t).astype(jnp.uint32)
        # one Philox block serves 4 consecutive steps: counter (neuron, t // 4, 0, 0), word t % 4
        words = jnp.stack(philox4x32((jnp.arange(self.n, dtype=jnp.uint32), t >> np.uint32(2), 0, 0), self.seed))
        u = uniform24(words[t & np.uint32(3)])
        return jnp.sum(u[:, None] >= jnp.asarray(self.cdf)[None, :], axis=1, dtype=jnp.int32)

    def __call__(self, t: jax.Array) -> jax.Array:
        """``(n,)`` float32 current at absolute step ``t``, mV."""
        return jnp.asarray(self.offset) + jnp.asarray(self.weight) * self.counts(t).astype(jnp.float32)

    def __repr__(self) -> str:
        return f"PoissonCurrent(n={self.n}, rate_hz={self.rate_hz}, sources={self.sources}, dt={self.dt}, mean={self.mean:.3g}/step)"


def check_dt(current: Any, params: Any) -> None:
    """Raise :class:`ConfigurationError` when ``current`` is a :class:`PoissonCurrent` whose ``dt``
    differs from the population's (its rate per step would be wrong)."""
    if isinstance(current, PoissonCurrent) and not np.allclose(current.dt, np.asarray(params.dt)):
        raise ConfigurationError(f"PoissonCurrent has dt={current.dt} ms but NeuronParams has dt={params.dt} ms")
