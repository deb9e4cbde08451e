"""Pair-based STDP with exponential traces (all-to-all pairing), additive or multiplicative bounds.

Each presynaptic neuron keeps a trace ``x_pre`` and each postsynaptic neuron a trace ``x_post``; both
decay as ``exp(-dt/tau)`` per step and jump by 1 at a spike. In the step of a spike, as Brian2's
``on_pre``/``on_post`` pathways (pre first):

* presynaptic spike of ``i``: ``x_pre[i] += 1``, then every ``w_ij -= a_minus x_post[j]`` (depression),
* postsynaptic spike of ``j``: ``x_post[j] += 1``, then every ``w_ij += a_plus x_pre[i]`` (potentiation),

with the change scaled by ``(w - w_min)`` (depression) and ``(w_max - w)`` (potentiation) when
``bounds="multiplicative"``, and ``w`` clipped to ``[w_min, w_max]`` when ``"additive"``. For one pair
the change is ``a_plus exp(-dt_pair/tau_plus)`` if the post spike follows the pre spike by
``dt_pair >= 0`` and ``-a_minus exp(-|dt_pair|/tau_minus)`` if it precedes it (a pair in the same
step counts as potentiation).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from qsn.errors import ConfigurationError

__all__ = ["STDP", "Traces"]


class Traces(NamedTuple):
    pre: jax.Array  # (n_pre,) presynaptic trace, dimensionless
    post: jax.Array  # (n_post,) postsynaptic trace, dimensionless


class STDP(eqx.Module):
    """Pair-based STDP (see the module docstring). Times in ms; amplitudes and bounds in weight units."""

    tau_plus: float = eqx.field(static=True, default=20.0)
    tau_minus: float = eqx.field(static=True, default=20.0)
    a_plus: float = eqx.field(static=True, default=0.01)
    a_minus: float = eqx.field(static=True, default=0.0105)
    w_min: float = eqx.field(static=True, default=0.0)
    w_max: float = eqx.field(static=True, default=1.0)
    bounds: str = eqx.field(static=True, default="additive")

    def __check_init__(self) -> None:
        for name in ("tau_plus", "tau_minus"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigurationError(f"STDP.{name} must be finite and > 0, but is {v!r}")
        for name in ("a_plus", "a_minus"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigurationError(f"STDP.{name} must be finite and >= 0, but is {v!r}")
        if not (math.isfinite(self.w_min) and math.isfinite(self.w_max) and self.w_min <= self.w_max):
            raise ConfigurationError(f"STDP needs finite w_min <= w_max, but has w_min={self.w_min!r}, w_max={self.w_max!r}")
        if self.bounds not in ("additive", "multiplicative"):
            raise ConfigurationError(f"STDP.bounds must be 'additive' or 'multiplicative', but is {self.bounds!r}")

    def init(self, n_pre: int, n_post: int, dtype: Any) -> Traces:
        return Traces(jnp.zeros((n_pre,), dtype), jnp.zeros((n_post,), dtype))

    def update(
        self, traces: Traces, w: jax.Array, targets: jax.Array, spk_pre: jax.Array, spk_post: jax.Array, dt: float
    ) -> tuple[Traces, jax.Array]:
        """One step on ELL weights ``w`` ``(n_pre + 1, K)`` with targets ``(n_pre + 1, K)`` (padding
        points at ``n_post``); spikes are ``(n_pre,)`` and ``(n_post,)`` bool. Returns new traces and weights."""
        dtype = w.dtype
        x_pre = traces.pre * math.exp(-dt / self.tau_plus) + spk_pre.astype(dtype)
        x_post_old = traces.post * math.exp(-dt / self.tau_minus)
        x_post = x_post_old + spk_post.astype(dtype)
        pad = lambda x: jnp.concatenate([x, jnp.zeros((1,), x.dtype)])  # noqa: E731  (row/column n: padding)

        def depress(w):
            dw = self.a_minus * pad(x_post_old)[targets]
            scale = (w - self.w_min) if self.bounds == "multiplicative" else 1.0
            return w - pad(spk_pre.astype(dtype))[:, None] * dw * scale

        def potentiate(w):
            dw = self.a_plus * pad(x_pre)[:, None] * pad(spk_post.astype(dtype))[targets]
            scale = (self.w_max - w) if self.bounds == "multiplicative" else 1.0
            return w + dw * scale

        # unconditional (O(synapses) per step): a lax.cond around it would copy the weights every step
        w = potentiate(depress(w))
        if self.bounds == "additive":
            w = jnp.clip(w, self.w_min, self.w_max)
        return Traces(x_pre, x_post), w
