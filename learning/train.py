"""Training a :class:`~qsn.learning.model.SpikingClassifier` with optax: BPTT through the engine's step.

One epoch shuffles the training set (NumPy generator from the seed), codes each mini-batch into input spikes
(:func:`qsn.learning.data.encode`, inside the jitted step), and takes one Adam step on the mean cross-entropy;
the gradient flows back through every time step of the hidden layer via the surrogate. The last partial batch
of an epoch is dropped (one compiled shape). After each epoch the model is evaluated on the validation and
test sets, with a fixed evaluation key, and the history records loss, accuracies and wall time.

Everything is determined by ``seed``: initial weights, batch order, the coding's spikes and the neurons'
random numbers, so one seed gives one result on one backend.

Example:
    >>> from qsn.learning.train import TrainConfig, train
    >>> result = train(TrainConfig(epochs=2), seed=0)
    >>> result.test_accuracy, result.history["seconds"][-1]
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qsn.errors import ConfigurationError, NumericalInstabilityError
from qsn.learning.data import CODINGS, Dataset, encode, load_digits
from qsn.learning.model import ModelConfig, SpikingClassifier
from qsn.runtime import progress_bar

__all__ = ["TrainConfig", "TrainResult", "train", "accuracy", "VARIANTS"]

# The three neuron variants the issue compares, as overrides of ModelConfig (delta in 1/ms, rates in 1/ms).
VARIANTS: dict[str, dict[str, Any]] = {
    "lif": {"delta": 0.0, "jump_rate": 0.0, "features": "spikes"},  # classical LIF: the qubit is inert
    "qsn": {"delta": 0.3, "jump_rate": 0.0, "features": "spikes+p1"},  # Δ > 0, p1 read out beside the spikes
    "jump": {"delta": 0.3, "jump_rate": 0.2, "features": "spikes"},  # Δ > 0 and quantum-jump spiking
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What to train and how.

    Attributes:
        model: the architecture (:class:`ModelConfig`).
        coding: input coding, one of :data:`~qsn.learning.data.CODINGS`.
        steps: time steps ``T`` per example (``T * model.dt`` ms of simulated time).
        epochs, batch: passes over the training set and mini-batch size.
        lr: Adam learning rate; weight_decay: decoupled (AdamW) decay, 0 for plain Adam.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    coding: str = "rate"
    steps: int = 25
    epochs: int = 60
    batch: int = 64
    lr: float = 1e-2
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.coding not in CODINGS:
            raise ConfigurationError(f"Argument `coding` must be one of {CODINGS}, but is {self.coding!r}")
        for name in ("steps", "epochs", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ConfigurationError(f"Argument `{name}` must be an int >= 1, but is {value!r}")
        if not (0 < self.lr < np.inf):
            raise ConfigurationError(f"Argument `lr` must be finite and > 0, but is {self.lr!r}")
        if not (0 <= self.weight_decay < np.inf):
            raise ConfigurationError(f"Argument `weight_decay` must be finite and >= 0, but is {self.weight_decay!r}")

    def variant(self, name: str, **model_overrides: Any) -> "TrainConfig":
        """This configuration with the neuron variant ``name`` of :data:`VARIANTS` (and other model overrides)."""
        if name not in VARIANTS:
            raise ConfigurationError(f"Argument `name` must be one of {tuple(VARIANTS)}, but is {name!r}")
        model = dataclasses.replace(self.model, **{**VARIANTS[name], **model_overrides})
        return dataclasses.replace(self, model=model)


class TrainResult(NamedTuple):
    """A trained model and how it got there."""

    model: SpikingClassifier
    history: dict  # per epoch: "epoch", "loss" (mean train cross-entropy), "val_accuracy", "test_accuracy", "seconds"
    val_accuracy: float  # after the last epoch
    test_accuracy: float  # after the last epoch
    seconds: float  # wall time of the whole run, compilation included
    config: TrainConfig


def _logits(model: SpikingClassifier, x: jax.Array, coding: str, steps: int, key: jax.Array) -> jax.Array:
    k_code, k_neuron = jax.random.split(key)
    coded = encode(x, coding, steps, k_code)
    return model(coded, key=k_neuron)[0]


def _loss(model, x, y, key, coding, steps):
    logits = _logits(model, x, coding, steps, key)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@functools.partial(eqx.filter_jit, donate="all-except-first")
def _update(model, opt_state, x, y, key, opt, coding, steps):
    loss, grads = eqx.filter_value_and_grad(_loss)(model, x, y, key, coding, steps)
    # optax mixes Python scalars into float32 states; the test-suite runs JAX with strict promotion
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state, loss


@functools.partial(eqx.filter_jit)
def _predict(model, x, key, coding, steps):
    return jnp.argmax(_logits(model, x, coding, steps, key), axis=-1)


def accuracy(model: SpikingClassifier, x: np.ndarray, y: np.ndarray, config: TrainConfig, key: jax.Array) -> float:
    """Fraction of ``x`` ``(N, D)`` classified as ``y`` ``(N,)``, in one batch (coding spikes drawn from ``key``)."""
    pred = _predict(model, jnp.asarray(x), key, config.coding, config.steps)
    return float(np.mean(np.asarray(pred) == np.asarray(y)))


def train(
    config: TrainConfig = TrainConfig(),
    data: Dataset | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train a :class:`SpikingClassifier` on ``data`` (default: :func:`load_digits` with the same ``seed``).

    Args:
        config: model and optimisation settings.
        data: the dataset; its input width must equal ``config.model.inputs``.
        seed: everything random (module docstring).
        progress: a tqdm bar over epochs on stderr.
        callback: called after each epoch with that epoch's row of the history.

    Raises:
        ConfigurationError: bad settings, a dataset that does not fit the model, or a batch larger than
            the training set. NumericalInstabilityError: a non-finite loss.
    """
    start = time.perf_counter()
    data = load_digits(seed) if data is None else data
    n_train, width = data.x_train.shape
    if width != config.model.inputs:
        raise ConfigurationError(f"Argument `data` has {width} inputs per example, but the model expects {config.model.inputs}")
    if config.batch > n_train:
        raise ConfigurationError(f"Argument `batch` must be <= the {n_train} training examples, but is {config.batch}")
    key = jax.random.key(seed)
    k_init, k_train, k_eval = jax.random.split(key, 3)
    model = SpikingClassifier(config.model, key=k_init)
    opt = optax.adamw(config.lr, weight_decay=config.weight_decay) if config.weight_decay else optax.adam(config.lr)
    opt_state = opt.init(eqx.filter(model, eqx.is_array))
    rng = np.random.default_rng(seed)
    history: dict[str, list] = {"epoch": [], "loss": [], "val_accuracy": [], "test_accuracy": [], "seconds": []}
    per_epoch = n_train // config.batch
    bar = progress_bar(config.epochs, "qsn train", progress, unit="epoch")
    for epoch in range(config.epochs):
        order = rng.permutation(n_train)
        losses = []
        for i in range(per_epoch):
            idx = order[i * config.batch : (i + 1) * config.batch]
            step_key = jax.random.fold_in(k_train, epoch * per_epoch + i)
            model, opt_state, loss = _update(model, opt_state, jnp.asarray(data.x_train[idx]),
                                             jnp.asarray(data.y_train[idx]), step_key, opt, config.coding, config.steps)
            losses.append(loss)
        mean_loss = float(jnp.mean(jnp.stack(losses)))
        if not np.isfinite(mean_loss):
            raise NumericalInstabilityError(f"training loss is {mean_loss} after epoch {epoch}: lower `lr`")
        row = {
            "epoch": epoch + 1,
            "loss": mean_loss,
            "val_accuracy": accuracy(model, data.x_val, data.y_val, config, k_eval),
            "test_accuracy": accuracy(model, data.x_test, data.y_test, config, k_eval),
            "seconds": time.perf_counter() - start,
        }
        for name, value in row.items():
            history[name].append(value)
        if callback is not None:
            callback(row)
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.3f}", test=f"{row['test_accuracy']:.3f}")
    bar.close()
    return TrainResult(model, history, history["val_accuracy"][-1], history["test_accuracy"][-1],
                       time.perf_counter() - start, config)
