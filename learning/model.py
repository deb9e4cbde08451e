"""A trainable classifier built from a layer of quantum spiking neurons (equinox).

Architecture, for coded inputs ``x_t`` of shape ``(T, B, D)``:

1. a hidden layer of ``H`` QSNs driven by ``I_t = gain * (W x_t + b)`` (mV; ``gain = v_th - v_rest`` so that
   a unit of ``W x + b`` is one threshold distance), advanced by the engine's own step
   (:func:`qsn.dynamics.advance`, the same code :func:`qsn.simulate` scans), spikes differentiable through a
   :mod:`qsn.surrogate`;
2. the features of each step, averaged over the ``T`` steps: the spikes ``s_t`` (a firing rate), and with
   ``features="spikes+p1"`` also the qubits' excited-state probabilities ``p1_t`` (a quantum observable read
   out directly, the only way Δ > 0 reaches the output without jump spiking);
3. a linear readout to class logits ``(B, C)``.

Batches share nothing: a batch of ``B`` examples is a population of ``(B, H)`` neurons (the engine's step is
elementwise), one ``lax.scan`` over time. With jump spiking or finite ``t2``/``t1`` in pure mode the step
draws random numbers from the key passed in.

Δ = 0 with ``jump_rate = 0`` is a classical LIF network (the qubit then has no influence on spikes, and
``p1`` stays 0); Δ > 0 adds the qubit's dynamics, read through ``p1`` or through jump spikes.

Example:
    >>> import jax
    >>> from qsn.learning.model import ModelConfig, SpikingClassifier
    >>> model = SpikingClassifier(ModelConfig(inputs=64, hidden=128, classes=10, delta=0.3), key=jax.random.key(0))
    >>> logits, aux = model(jnp.zeros((25, 8, 64)), key=jax.random.key(1))   # (8, 10)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.stepper import Stepper
from qsn.errors import ConfigurationError
from qsn.observables import p_excited
from qsn.params import NeuronParams
from qsn.state import init_state
from qsn.surrogate import Surrogate, fast_sigmoid

__all__ = ["ModelConfig", "SpikingClassifier", "FEATURES"]

FEATURES = ("spikes", "spikes+p1")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static architecture and neuron settings (hashable: part of the compiled model).

    Attributes:
        inputs, hidden, classes: ``D``, ``H``, ``C``.
        delta: initial transverse field Δ, 1/ms (trained when ``learn_delta``; 0 = classical LIF).
        tau_m, dt, t_ref: membrane time constant, step and refractory period, ms.
        t2, t1: coherence times, ms (inf = none); jump_rate: quantum-jump spiking rate, 1/ms.
        mode: ``"pure"`` or ``"mixed"`` qubits.
        surrogate: spike function for the backward pass.
        features: ``"spikes"`` or ``"spikes+p1"`` (module docstring).
        learn_delta: train a per-neuron Δ (kept >= 0 through ``|Δ|``).
    """

    inputs: int = 64
    hidden: int = 128
    classes: int = 10
    delta: float = 0.0
    tau_m: float = 10.0
    dt: float = 1.0
    t_ref: float = 1.0
    t2: float = math.inf
    t1: float = math.inf
    jump_rate: float = 0.0
    mode: str = "pure"
    surrogate: Surrogate = dataclasses.field(default_factory=lambda: fast_sigmoid(10.0))
    features: str = "spikes"
    learn_delta: bool = False

    def __post_init__(self) -> None:
        for name in ("inputs", "hidden", "classes"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ConfigurationError(f"Argument `{name}` must be an int >= 1, but is {value!r}")
        if self.features not in FEATURES:
            raise ConfigurationError(f"Argument `features` must be one of {FEATURES}, but is {self.features!r}")
        if not isinstance(self.surrogate, Surrogate):
            raise ConfigurationError(f"Argument `surrogate` must be a qsn.surrogate.Surrogate, but is {self.surrogate!r}")
        self.neuron_params(self.delta)  # validates the neuron fields (NeuronParams names the bad one)

    def neuron_params(self, delta: Any) -> NeuronParams:
        """The hidden layer's :class:`NeuronParams` with transverse field ``delta`` (may be traced)."""
        return NeuronParams(delta=delta, tau_m=self.tau_m, dt=self.dt, t_ref=self.t_ref, t2=self.t2, t1=self.t1,
                            jump_rate=self.jump_rate)

    @property
    def stochastic(self) -> bool:
        """True when a forward pass draws random numbers (jump spiking, pure-mode decoherence)."""
        return Stepper.build(self.neuron_params(self.delta), self.mode, jnp.float32).needs_key


class SpikingClassifier(eqx.Module):
    """Input → QSN hidden layer → linear readout of time-averaged features (module docstring).

    Call with coded inputs ``(T, B, D)`` and a key (needed when :attr:`ModelConfig.stochastic`); returns
    ``(logits (B, C), aux)`` with ``aux = {"rate": (B, H) spikes per step, "p1": (B, H) mean p1}``.
    """

    hidden: eqx.nn.Linear
    readout: eqx.nn.Linear
    delta: jax.Array  # (H,) transverse field, 1/ms (|delta| is used)
    config: ModelConfig = eqx.field(static=True)

    def __init__(self, config: ModelConfig, *, key: jax.Array):
        k1, k2 = jax.random.split(key)
        width = config.hidden * (2 if config.features == "spikes+p1" else 1)
        self.hidden = eqx.nn.Linear(config.inputs, config.hidden, key=k1)
        self.readout = eqx.nn.Linear(width, config.classes, key=k2)
        self.delta = jnp.full((config.hidden,), config.delta, self.hidden.weight.dtype)
        self.config = config

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> tuple[jax.Array, dict]:
        cfg_model = self.config
        steps, batch, d = x.shape
        if d != cfg_model.inputs:
            raise ConfigurationError(f"Argument `x` must have shape (T, B, {cfg_model.inputs}), but has shape {x.shape}")
        delta = jnp.abs(self.delta) if cfg_model.learn_delta else jax.lax.stop_gradient(jnp.abs(self.delta))
        delta = delta[None, :]  # (1, H): broadcasts over the batch axis of the (B, H) population
        params = cfg_model.neuron_params(delta)
        dtype = self.hidden.weight.dtype
        stepper = Stepper.build(params, cfg_model.mode, dtype, surrogate=cfg_model.surrogate)
        if stepper.needs_key and key is None:
            raise ConfigurationError("Argument `key` is required: this model's neurons draw random numbers")
        state = init_state(cfg_model.neuron_params(cfg_model.delta), cfg_model.hidden, mode=cfg_model.mode, dtype=dtype)
        state = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (batch,) + a.shape) if a.ndim else a, state)
        gain = float(params.v_th - params.v_rest)
        w, b = self.hidden.weight, self.hidden.bias

        def one(carry, x_t):
            s, rate, p1 = carry
            current = gain * (x_t @ w.T + b[None, :])
            s, spikes, _ = stepper(s, current, key)
            return (s, rate + spikes, p1 + p_excited(s)), None

        zeros = jnp.zeros((batch, cfg_model.hidden), dtype)
        (_, rate, p1), _ = jax.lax.scan(one, (state, zeros, zeros), x.astype(dtype))
        rate, p1 = rate / steps, p1 / steps
        feats = rate if cfg_model.features == "spikes" else jnp.concatenate([rate, p1], axis=-1)
        logits = feats @ self.readout.weight.T + self.readout.bias[None, :]
        return logits, {"rate": rate, "p1": p1}
