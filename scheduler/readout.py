"""Online readouts: linear or one-hidden-layer regressors trained with optax as tasks arrive.

A readout maps an input row (spike features, or raw task features) to ``n_out`` outputs, for two
targets of the scheduler:

* ``loss="mse"``: regression, e.g. log service time; targets ``(N, n_out)`` real;
* ``loss="cross_entropy"``: worker affinity, a softmax over ``W = n_out`` workers trained with
  cross-entropy against target distributions ``(N, W)`` (one-hot or soft; rows sum to 1).

Everything is online and leak-free: inputs are standardised with a running mean and variance of the
inputs seen so far (Chan's parallel update, NaN entries excluded from the statistics and imputed
with the running mean, i.e. 0 after standardisation), regression targets likewise with the targets
seen so far, and :func:`prequential` predicts each batch *before* training on it, so a prediction
never depends on its own label or on anything that arrived later.

The API follows optax: :class:`OnlineReadout` is an immutable description (configuration and the
initial model), :meth:`OnlineReadout.init` returns a :class:`ReadoutState` (model, optimizer state,
running statistics), and :meth:`OnlineReadout.update` returns a new state. Example:

    >>> x = np.random.default_rng(0).normal(size=(1000, 3)); y = x @ np.ones((3, 1))
    >>> r = OnlineReadout(3, 1, hidden=32, optimizer=optax.adam(1e-2), key=jax.random.key(0))
    >>> state = r.init()
    >>> y_hat = r.predict(state, x[:64])                  # (64, 1), made before seeing y[:64]
    >>> state, loss = r.update(state, x[:64], y[:64])
    >>> y_all = prequential(r, x, y, batch=64)            # the same protocol, all rows, one scan
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qsn.errors import ConfigurationError, InvalidInputError

__all__ = [
    "RunningStats",
    "ReadoutState",
    "OnlineReadout",
    "LinearBaseline",
    "prequential",
    "LOSSES",
]

LOSSES = ("mse", "cross_entropy")
DEFAULT_LEARNING_RATE = 3e-2  # adam; 1e-2 needed ~4x more batches of 64 to reach the noise floor (linear, 5 inputs)
_SUM_TOLERANCE = 1e-4  # |sum of a target distribution - 1| accepted (float32 one-hots built by users)


class RunningStats(NamedTuple):
    """Running per-column mean and variance (Chan et al.'s parallel update)."""

    count: jax.Array  # (d,) float — finite values seen per column
    mean: jax.Array  # (d,) float — their mean
    m2: jax.Array  # (d,) float — their sum of squared deviations from the mean


def _stats_init(d: int, dtype: Any) -> RunningStats:
    zeros = jnp.zeros((d,), dtype)
    return RunningStats(zeros, zeros, zeros)


def _stats_update(stats: RunningStats, x: jax.Array, weight: jax.Array) -> RunningStats:
    """Merge the rows of ``x`` ``(B, d)`` with ``weight`` ``(B,)`` (0 = padding); NaN entries skipped."""
    w = weight.reshape(-1, 1) * (~jnp.isnan(x)).astype(x.dtype)
    xv = jnp.where(w > 0, x, 0.0)
    nb = jnp.sum(w, axis=0)
    mb = jnp.sum(w * xv, axis=0) / jnp.maximum(nb, 1.0)
    m2b = jnp.sum(w * (xv - mb.reshape(1, -1)) ** 2, axis=0)
    n = stats.count + nb
    delta = mb - stats.mean
    safe_n = jnp.maximum(n, 1.0)
    mean = stats.mean + delta * nb / safe_n
    m2 = stats.m2 + m2b + delta * delta * stats.count * nb / safe_n
    return RunningStats(n, mean, m2)


def _stats_std(stats: RunningStats) -> jax.Array:
    var = stats.m2 / jnp.maximum(stats.count, 1.0)
    # Fewer than two values, or a constant column: unit scale (the column is then centred only).
    ok = (stats.count > 1) & (var > jnp.finfo(var.dtype).eps * (1.0 + stats.mean * stats.mean))
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, var, 1.0)), 1.0)


def _standardise(stats: RunningStats, x: jax.Array) -> jax.Array:
    z = (x - stats.mean.reshape(1, -1)) / _stats_std(stats).reshape(1, -1)
    return jnp.where(jnp.isnan(z), 0.0, z)  # missing: imputed with the running mean


class ReadoutState(NamedTuple):
    """Everything an online readout learns, as one pytree (carried through ``lax.scan``)."""

    params: Any  # the model's arrays (eqx.filter(model, eqx.is_inexact_array)); the rest is in the readout
    opt_state: Any  # optax state of the model's arrays
    x_stats: RunningStats  # inputs seen so far, (d_in,) fields (after missing indicators)
    y_stats: RunningStats  # regression targets seen so far, (n_out,) fields (unused for cross-entropy)


class OnlineReadout(eqx.Module):
    """An online linear (``hidden=0``) or one-hidden-layer MLP readout trained with optax.

    Args:
        n_in: input columns ``K`` (spike-feature matrix width, or raw features ``F``).
        n_out: outputs (1 for a scalar regression target, ``W`` workers for affinity).
        hidden: 0 for a linear map, else the width of one tanh hidden layer (``eqx.nn.MLP``).
        optimizer: any ``optax.GradientTransformation`` (default ``optax.adam(3e-2)``).
        loss: ``"mse"`` (standardised targets) or ``"cross_entropy"`` (softmax, soft targets).
        missing_indicators: append ``isnan(x)`` columns to the input, so a model on raw features
            sees which values were imputed (the model then has ``2 n_in`` inputs).
        dtype: floating dtype of the model and statistics (default float32).
        key: ``jax.random`` key for the initial weights.

    The model sees ``z = (x - mean)/std`` from the running statistics; for ``"mse"`` it predicts the
    standardised target and :meth:`predict` maps back to target units; for ``"cross_entropy"``
    :meth:`predict` returns the softmax probabilities ``(N, W)``.
    """

    model: Any
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
    loss: str = eqx.field(static=True)
    missing_indicators: bool = eqx.field(static=True)
    dtype: Any = eqx.field(static=True)

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        hidden: int = 0,
        optimizer: optax.GradientTransformation | None = None,
        loss: str = "mse",
        missing_indicators: bool = False,
        dtype: Any = jnp.float32,
        key: jax.Array,
    ) -> None:
        for name, value, low in (("n_in", n_in, 1), ("n_out", n_out, 1), ("hidden", hidden, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigurationError(f"Argument `{name}` must be an int >= {low}, but is {value!r}")
        if loss not in LOSSES:
            raise ConfigurationError(f"Argument `loss` must be one of {LOSSES}, but is {loss!r}")
        if loss == "cross_entropy" and n_out < 2:
            raise ConfigurationError(f"Argument `n_out` must be >= 2 for loss='cross_entropy' (a softmax), but is {n_out}")
        dt = jnp.dtype(dtype)
        if not jnp.issubdtype(dt, jnp.floating):
            raise ConfigurationError(f"Argument `dtype` must be a floating dtype, but is {dt}")
        optimizer = optax.adam(DEFAULT_LEARNING_RATE) if optimizer is None else optimizer
        if not isinstance(optimizer, optax.GradientTransformation):
            raise ConfigurationError(f"Argument `optimizer` must be an optax.GradientTransformation, but is {type(optimizer).__name__}")
        d = 2 * int(n_in) if missing_indicators else int(n_in)
        if hidden:
            self.model = eqx.nn.MLP(d, int(n_out), width_size=int(hidden), depth=1, activation=jnp.tanh, dtype=dt, key=key)
        else:
            self.model = eqx.nn.Linear(d, int(n_out), dtype=dt, key=key)
        self.optimizer = optimizer
        self.n_in, self.n_out, self.hidden = int(n_in), int(n_out), int(hidden)
        self.loss = loss
        self.missing_indicators = bool(missing_indicators)
        self.dtype = dt

    def init(self) -> ReadoutState:
        """The state before any data: the initial model, fresh optimizer state, empty statistics."""
        d = 2 * self.n_in if self.missing_indicators else self.n_in
        params = eqx.filter(self.model, eqx.is_inexact_array)
        return ReadoutState(params, self.optimizer.init(params), _stats_init(d, self.dtype), _stats_init(self.n_out, self.dtype))

    def predict(self, state: ReadoutState, x: Any) -> jax.Array:
        """Predictions ``(N, n_out)`` for ``x`` ``(N, n_in)`` from ``state`` (which is not changed).

        Regression: target units. Cross-entropy: probabilities (rows sum to 1).
        """
        return _predict(self, state, self._check_x(x))

    def update(self, state: ReadoutState, x: Any, y: Any, mask: Any = None) -> tuple[ReadoutState, jax.Array]:
        """One online step on a batch: merge ``x`` (and regression ``y``) into the running statistics,
        then one optimizer step on the mean loss of the rows where ``mask`` (``(B,)`` bool, default
        all) is true. Returns ``(new_state, loss)``, the loss in standardised units before the step."""
        xb, yb = self._check_x(x), self._check_y(y)
        if xb.shape[0] != yb.shape[0]:
            raise InvalidInputError(f"Argument `y` must have {xb.shape[0]} rows like `x`, but has {yb.shape[0]}")
        m = jnp.ones((xb.shape[0],), self.dtype) if mask is None else jnp.asarray(mask, bool).astype(self.dtype)
        if m.shape != (xb.shape[0],):
            raise InvalidInputError(f"Argument `mask` must have shape ({xb.shape[0]},), but has shape {m.shape}")
        return _update(self, state, xb, yb, m)

    # -- validation (host side, before jit) -------------------------------------------------------

    def _check_x(self, x: Any) -> jax.Array:
        arr = np.asarray(x)
        if arr.ndim != 2 or arr.shape[1] != self.n_in:
            raise InvalidInputError(f"Argument `x` must have shape (N, n_in) = (N, {self.n_in}), but has shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) or arr.dtype == bool:
            raise InvalidInputError(f"Argument `x` must have a real dtype, but has dtype {arr.dtype}")
        inf = np.isinf(arr)
        if inf.any():
            row, col = (int(i) for i in np.argwhere(inf)[0])
            raise InvalidInputError(f"Argument `x` must be finite or NaN (missing), but x[{row}, {col}] = {float(arr[row, col])!r}")
        return jnp.asarray(arr, self.dtype)

    def _check_y(self, y: Any) -> jax.Array:
        arr = np.asarray(y)
        if arr.ndim != 2 or arr.shape[1] != self.n_out:
            raise InvalidInputError(f"Argument `y` must have shape (N, n_out) = (N, {self.n_out}), but has shape {arr.shape}")
        arr = arr.astype(np.float64)
        bad = ~np.isfinite(arr)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise InvalidInputError(f"Argument `y` must be finite, but y[{row}, {col}] = {float(arr[row, col])!r}")
        if self.loss == "cross_entropy":
            sums = arr.sum(axis=1)
            bad_row = (arr < 0).any(axis=1) | (np.abs(sums - 1.0) > _SUM_TOLERANCE)
            if bad_row.any():
                row = int(np.argmax(bad_row))
                raise InvalidInputError(
                    f"Argument `y` must hold target distributions (>= 0, rows summing to 1) for loss='cross_entropy', "
                    f"but row {row} is {arr[row]}"
                )
        return jnp.asarray(arr, self.dtype)


def LinearBaseline(  # noqa: N802 — a constructor, named like the class it stands for
    n_features: int,
    n_out: int,
    *,
    optimizer: optax.GradientTransformation | None = None,
    loss: str = "mse",
    dtype: Any = jnp.float32,
    key: jax.Array,
) -> OnlineReadout:
    """The baseline readout: linear on raw task features ``(N, F)`` plus their missing indicators.

    The same :class:`OnlineReadout` (same optimizer, online standardisation and :func:`prequential`
    protocol) as the spike-feature readouts, so the two are compared on equal terms; only the input
    differs. NaN features are imputed with the running mean and flagged in ``F`` extra columns.
    """
    return OnlineReadout(n_features, n_out, hidden=0, optimizer=optimizer, loss=loss, missing_indicators=True,
                         dtype=dtype, key=key)


def _inputs(readout: OnlineReadout, x: jax.Array) -> jax.Array:
    if readout.missing_indicators:
        return jnp.concatenate([x, jnp.isnan(x).astype(x.dtype)], axis=1)
    return x


def _forward(readout: OnlineReadout, params: Any, state: ReadoutState, x: jax.Array) -> jax.Array:
    """Model output for raw ``x``: standardised targets (mse) or logits (cross-entropy)."""
    # The state carries arrays only (a scan carry cannot hold the activation function); the readout
    # holds the rest of the module.
    model = eqx.combine(params, eqx.filter(readout.model, eqx.is_inexact_array, inverse=True))
    return jax.vmap(model)(_standardise(state.x_stats, _inputs(readout, x)))


@eqx.filter_jit
def _predict(readout: OnlineReadout, state: ReadoutState, x: jax.Array) -> jax.Array:
    out = _forward(readout, state.params, state, x)
    if readout.loss == "cross_entropy":
        return jax.nn.softmax(out, axis=-1)
    return out * _stats_std(state.y_stats).reshape(1, -1) + state.y_stats.mean.reshape(1, -1)


@eqx.filter_jit
def _update(readout: OnlineReadout, state: ReadoutState, x: jax.Array, y: jax.Array, mask: jax.Array):
    x_stats = _stats_update(state.x_stats, _inputs(readout, x), mask)
    y_stats = _stats_update(state.y_stats, y, mask) if readout.loss == "mse" else state.y_stats
    state = state._replace(x_stats=x_stats, y_stats=y_stats)

    def loss_fn(params):
        out = _forward(readout, params, state, x)
        if readout.loss == "mse":
            per_row = jnp.mean(optax.losses.squared_error(out, _standardise(y_stats, y)), axis=-1)
        else:
            per_row = optax.losses.safe_softmax_cross_entropy(out, y)
        return jnp.sum(mask * per_row) / jnp.maximum(jnp.sum(mask), 1.0)

    loss, grads = eqx.filter_value_and_grad(loss_fn)(state.params)
    # optax mixes Python floats with int32 step counts (adam's bias correction), which JAX's strict
    # dtype promotion rejects; its own arithmetic is meant for standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = readout.optimizer.update(grads, state.opt_state, state.params)
    return state._replace(params=eqx.apply_updates(state.params, updates), opt_state=opt_state), loss


@eqx.filter_jit
def _prequential_scan(readout: OnlineReadout, state: ReadoutState, xs: jax.Array, ys: jax.Array, masks: jax.Array):
    def body(s, batch):
        xb, yb, mb = batch
        pred = _predict(readout, s, xb)  # before the update: the batch's labels are not yet seen
        s, _ = _update(readout, s, xb, yb, mb)
        return s, pred

    return jax.lax.scan(body, state, (xs, ys, masks))


def prequential(
    readout: OnlineReadout,
    x: Any,
    y: Any,
    batch: int = 64,
    *,
    state: ReadoutState | None = None,
    return_state: bool = False,
) -> Any:
    """Prequential ("test-then-train") predictions: each batch is predicted, then trained on.

    Rows are taken in arrival order, in batches of ``batch``; the tail batch is padded and masked
    (padding enters neither the statistics nor the loss). The whole run is one jitted ``lax.scan``.

    Args:
        readout: an :class:`OnlineReadout` (or :func:`LinearBaseline`).
        x: ``(N, n_in)`` inputs (NaN = missing).
        y: ``(N, n_out)`` targets.
        batch: rows per online step.
        state: state to start from (default ``readout.init()``).
        return_state: also return the final :class:`ReadoutState`.

    Returns:
        ``(N, n_out)`` NumPy predictions, row ``i`` made from rows ``< batch * (i // batch)`` only;
        with ``return_state``, ``(predictions, state)``.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(1000, 3)); y = np.sin(x[:, :1])
        >>> pred = prequential(OnlineReadout(3, 1, key=jax.random.key(0)), x, y)
        >>> mse_last_half = np.mean((pred[500:] - y[500:]) ** 2)
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ConfigurationError(f"Argument `batch` must be an int >= 1, but is {batch!r}")
    if not isinstance(readout, OnlineReadout):
        raise ConfigurationError(f"Argument `readout` must be an OnlineReadout, but is {type(readout).__name__}")
    xa, ya = readout._check_x(x), readout._check_y(y)
    n = xa.shape[0]
    if ya.shape[0] != n:
        raise InvalidInputError(f"Argument `y` must have {n} rows like `x`, but has {ya.shape[0]}")
    state = readout.init() if state is None else state
    if n == 0:
        empty = np.zeros((0, readout.n_out), readout.dtype)
        return (empty, state) if return_state else empty
    steps = -(-n // batch)
    if not return_state:
        # pad to a power-of-two number of batches so varying N reuses the compiled scan; the padded batches
        # come after every real prediction and only their (discarded) final state sees them
        steps = 1 << (steps - 1).bit_length()
    pad = steps * batch - n
    masks = jnp.concatenate([jnp.ones((n,), readout.dtype), jnp.zeros((pad,), readout.dtype)]).reshape(steps, batch)
    xs = jnp.concatenate([xa, jnp.zeros((pad, readout.n_in), readout.dtype)]).reshape(steps, batch, readout.n_in)
    ys = jnp.concatenate([ya, jnp.zeros((pad, readout.n_out), readout.dtype)]).reshape(steps, batch, readout.n_out)
    final, preds = _prequential_scan(readout, state, xs, ys, masks)
    preds = np.asarray(preds).reshape(steps * batch, readout.n_out)[:n]
    return (preds, final) if return_state else preds
