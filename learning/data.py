"""Datasets and spike codings for training: scikit-learn's handwritten digits, coded into input spikes.

The digits (UCI optical recognition, 1,797 images of 8×8 pixels with 17 grey levels, ten classes) ship
inside scikit-learn, so training needs no download. They are split once, stratified by class, into train,
validation (for hyperparameter search) and test sets with a fixed seed; pixels are scaled to [0, 1].

Codings turn a batch of images ``(B, 64)`` into inputs over ``T`` steps ``(T, B, 64)``:

* ``"rate"``: Bernoulli spikes, pixel ``x`` fires with probability ``x * max_prob`` per step (needs a key);
* ``"latency"``: one spike per pixel at step ``round((1 - x)(T - 1))``, bright pixels first; pixels
  below ``min_intensity`` stay silent;
* ``"current"``: the analog intensity at every step (direct current injection; deterministic).

Example:
    >>> from qsn.learning.data import load_digits, encode
    >>> data = load_digits(seed=0)
    >>> data.x_train.shape, data.y_train.shape              # (1077, 64) (1077,)
    >>> encode(data.x_test[:4], "latency", steps=20).shape  # (20, 4, 64)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError

__all__ = ["Dataset", "load_digits", "encode", "CODINGS"]

CODINGS = ("rate", "latency", "current")


class Dataset(NamedTuple):
    """Inputs scaled to [0, 1] and integer labels, as host NumPy arrays."""

    x_train: np.ndarray  # (N_train, D) float32
    y_train: np.ndarray  # (N_train,) int32
    x_val: np.ndarray  # (N_val, D) float32
    y_val: np.ndarray  # (N_val,) int32
    x_test: np.ndarray  # (N_test, D) float32
    y_test: np.ndarray  # (N_test,) int32
    classes: int


def load_digits(seed: int = 0, *, test_fraction: float = 0.2, val_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8×8 digits, split stratified into train / validation / test.

    Args:
        seed: seed of the split (the same seed gives the same split on every machine).
        test_fraction: share of all images held out for the final test.
        val_fraction: share of the remaining images held out for validation (hyperparameter search).
    """
    try:
        from sklearn.datasets import load_digits as _load
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # pragma: no cover - the extra installs it
        raise ImportError("the digits dataset needs scikit-learn: pip install 'qsn[learn]'") from err
    for name, value in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 < value < 1.0:
            raise ConfigurationError(f"Argument `{name}` must be in (0, 1), but is {value!r}")
    digits = _load()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction, stratify=y_rest, random_state=seed
    )
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, classes=10)


def encode(
    x: jax.Array,
    coding: str,
    steps: int,
    key: jax.Array | None = None,
    *,
    max_prob: float = 0.5,
    min_intensity: float = 0.1,
) -> jax.Array:
    """Code intensities ``x`` in [0, 1] of shape ``(B, D)`` as inputs ``(steps, B, D)`` (module docstring).

    Spikes are 0/1 in ``x``'s dtype; ``"current"`` repeats ``x``. ``"rate"`` needs ``key``.
    """
    if coding not in CODINGS:
        raise ConfigurationError(f"Argument `coding` must be one of {CODINGS}, but is {coding!r}")
    if not isinstance(steps, int | np.integer) or steps < 1:
        raise ConfigurationError(f"Argument `steps` must be an int >= 1, but is {steps!r}")
    x = jnp.asarray(x)
    if coding == "current":
        return jnp.broadcast_to(x, (steps,) + x.shape)
    if coding == "rate":
        if key is None:
            raise ConfigurationError("Argument `key` is required for rate coding (Bernoulli spikes)")
        u = jax.random.uniform(key, (steps,) + x.shape, x.dtype)
        return (u < (x * max_prob)[None]).astype(x.dtype)
    fire_at = jnp.round((1.0 - x) * (steps - 1)).astype(jnp.int32)
    t = jnp.arange(steps, dtype=jnp.int32).reshape((steps,) + (1,) * x.ndim)
    return ((t == fire_at[None]) & (x >= min_intensity)[None]).astype(x.dtype)
