"""Spike features: task features encoded as currents into a small QSN population per feature.

Each task is a row of ``F`` real features (NaN = missing). The encoding, per column ``f``:

1. **standardise** robustly, ``z = (x - median)/(IQR/1.349)`` (a :class:`FeatureScaler`; fit one with
   :func:`fit_scaler` on a warm-up window and reuse it online so a task's encoding does not depend
   on the batch it arrives in), then squash outliers smoothly, ``u = 3 tanh(z/3)`` (monotone, so no
   ordering is lost, and bounded, so the qubit drive ``a`` and with it the mixed-mode propagator plan
   are bounded independently of the data);
2. **population code**: ``m = neurons_per_feature`` neurons per feature, neuron ``j`` with gain
   ``g_j`` and offset ``c_j`` (:func:`population_code`), receive the constant current
   ``I_j = I_rh * max(0, 1 + g_j (u - c_j))`` where ``I_rh = (v_th - v_rest)/r_m`` is the rheobase
   (the current whose steady-state membrane potential is exactly ``v_th``). Neurons with different
   offsets are recruited at different feature values, so the population response is a piecewise,
   non-identical basis of the feature rather than ``m`` copies of one monotone map;
3. **missing** features (NaN) drive their ``m`` neurons with zero current and set a "missing"
   indicator column (1.0) in :attr:`SpikeFeatures.matrix`.

All ``N * F * m`` neurons run in one jitted ``lax.scan`` of ``steps`` steps of the core
:class:`qsn.Stepper` (vmapped over tasks), accumulating per neuron the spike count, the
first-spike step, and the running sums of ``p_excited`` and ``coherence`` after each step — no
``(steps, n)`` recording is ever held.

Coding (what :attr:`SpikeFeatures.matrix` exposes; the dynamics are the same for both):

* ``"rate"``: ``[counts/steps, p1_mean, coherence_mean, missing]``;
* ``"latency"``: ``[first_spike/steps, p1_mean, coherence_mean, missing]`` (1.0 = no spike).

Padding: rows are padded (zero drive) to a bucket size — the next power of two, at least
``MIN_ROWS`` — and runs of more than ``MAX_ROWS`` tasks are cut into blocks of ``MAX_ROWS``, so any
number of tasks reuses a handful of compiled kernels and memory stays bounded (a block of
``MAX_ROWS`` tasks x 16 neurons holds ~0.5 M neurons). Randomness (pure mode with finite
``t1``/``t2``, jump spiking) uses ``fold_in(key, row)`` per task row, so a task's features do not
depend on padding or on how the batch was blocked.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from qsn.stepper import Stepper
from qsn.errors import ConfigurationError, InvalidInputError
from qsn.observables import coherence, p_excited
from qsn.params import FIELDS, NeuronParams
from qsn.state import MODES, init_state, resolve_dtype

__all__ = [
    "FeatureScaler",
    "PopulationCode",
    "SpikeFeatures",
    "fit_scaler",
    "population_code",
    "spike_features",
    "feature_params",
    "bucket_rows",
    "CODINGS",
    "SQUASH",
    "MIN_ROWS",
    "MAX_ROWS",
]

CODINGS = ("rate", "latency")
SQUASH = 3.0  # u = SQUASH * tanh(z / SQUASH): linear near the median, bounded by +-3 robust s.d.
MIN_ROWS = 64  # smallest padded block (tasks)
MAX_ROWS = 2**15  # largest block (tasks); longer inputs run block by block
# Scan unroll per (backend, mode): consecutive steps fused by XLA. Measured here (CPU, 1,000 and
# 100,000 tasks x 4 features x 4 neurons, 32 steps); stochastic configurations compile slowly unrolled.
_UNROLL = {("cpu", "pure"): 4, ("cpu", "mixed"): 1}
_IQR_TO_SD = "normal"  # scipy.stats.iqr(scale="normal"): IQR/1.349, the s.d. of a normal column


class FeatureScaler(NamedTuple):
    """Robust per-column standardisation ``z = (x - center)/scale``."""

    center: np.ndarray  # (F,) float64 — column medians, feature units
    scale: np.ndarray  # (F,) float64 — IQR/1.349 (> 0), feature units


class PopulationCode(NamedTuple):
    """Gains and offsets of the ``m`` neurons that encode one feature."""

    gains: np.ndarray  # (m,) float64 > 0 — rheobase multiples per standardised unit
    offsets: np.ndarray  # (m,) float64 — standardised feature value where neuron j reaches rheobase


class SpikeFeatures(NamedTuple):
    """Per-task spike features (host NumPy arrays); neuron ``f*m + j`` is neuron ``j`` of feature ``f``."""

    counts: np.ndarray  # (N, F*m) int32 — spikes in the run
    first_spike: np.ndarray  # (N, F*m) int32 — step index of the first spike, `steps` if none
    p1_mean: np.ndarray  # (N, F*m) float — mean p_excited after each step
    coherence_mean: np.ndarray  # (N, F*m) float — mean |rho01| after each step
    missing: np.ndarray  # (N, F) bool — feature was NaN (its neurons got zero drive)
    matrix: np.ndarray  # (N, 3*F*m + F) float — readout input, see the module docstring


def feature_params() -> NeuronParams:
    """Default population for :func:`spike_features`: a fast membrane for short runs.

    ``tau_m = 2 ms``, ``t_ref = 0.2 ms`` (2 steps), ``delta = 1/ms``, ``dt = 0.1 ms``: over the
    default 32 steps (3.2 ms) a neuron at 1.2 to 6.5 times rheobase fires 1 to ~7 spikes, and the
    qubit turns by ~3 rad, so ``p1_mean``/``coherence_mean`` vary with the membrane trajectory.
    """
    return NeuronParams(tau_m=2.0, t_ref=0.2, delta=1.0, dt=0.1)


def population_code(m: int) -> PopulationCode:
    """Offsets ``c_j`` evenly on ``[-1.5, 1.5]`` (0 for ``m = 1``) and gains ``g_j`` geometric on ``[1, 3]``.

    Example:
        >>> population_code(4).offsets
        array([-1.5, -0.5,  0.5,  1.5])
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ConfigurationError(f"Argument `neurons_per_feature` must be an int >= 1, but is {m!r}")
    if m == 1:
        return PopulationCode(gains=np.array([2.0]), offsets=np.array([0.0]))
    return PopulationCode(gains=np.geomspace(1.0, 3.0, m), offsets=np.linspace(-1.5, 1.5, m))


def bucket_rows(n: int) -> int:
    """Padded block size for ``n`` tasks: the next power of two in ``[MIN_ROWS, MAX_ROWS]``."""
    return min(MAX_ROWS, max(MIN_ROWS, 1 << max(int(n) - 1, 0).bit_length()))


def _check_x(x: Any) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"Argument `x` must be a real array of shape (N, F), got {type(x).__name__}") from err
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise InvalidInputError(f"Argument `x` must have shape (N, F) with F >= 1, but has shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) or arr.dtype == bool:
        raise InvalidInputError(f"Argument `x` must have a real dtype, but has dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    inf = np.isinf(arr)
    if inf.any():
        row, col = (int(i) for i in np.argwhere(inf)[0])
        raise InvalidInputError(f"Argument `x` must be finite or NaN (missing), but x[{row}, {col}] = {float(arr[row, col])!r}")
    return arr


def fit_scaler(x: Any) -> FeatureScaler:
    """Fit the robust standardisation of :func:`spike_features` on ``x`` ``(N, F)`` (NaN ignored).

    ``center`` is the column median; ``scale`` is ``IQR/1.349`` (``scipy.stats.iqr``, normal
    scale), falling back to the column's standard deviation when its IQR is 0 (mostly-constant
    columns), and to 1 when that is 0 too or when the column has no value.

    Example:
        >>> s = fit_scaler(np.array([[1.0, 10.0], [2.0, np.nan], [3.0, 30.0]]))
        >>> s.center
        array([ 2., 20.])
    """
    arr = _check_x(x)
    f = arr.shape[1]
    center, scale = np.zeros(f), np.ones(f)
    for col in range(f):
        values = arr[:, col][~np.isnan(arr[:, col])]
        if values.size == 0:
            continue  # all missing: identity (the column only ever feeds the missing indicator)
        center[col] = np.median(values)
        spread = float(scipy.stats.iqr(values, scale=_IQR_TO_SD))
        if spread <= 0.0:
            spread = float(np.std(values))
        scale[col] = spread if spread > 0.0 else 1.0
    return FeatureScaler(center=center, scale=scale)


def _check_scaler(scale: Any, f: int) -> FeatureScaler:
    if not isinstance(scale, FeatureScaler):
        raise ConfigurationError(f"Argument `scale` must be a FeatureScaler (see fit_scaler) or None, but is {type(scale).__name__}")
    center, spread = np.asarray(scale.center, np.float64), np.asarray(scale.scale, np.float64)
    for name, arr in (("center", center), ("scale", spread)):
        if arr.shape != (f,):
            raise ConfigurationError(f"Argument `scale.{name}` must have shape (F,) = ({f},), but has shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ConfigurationError(f"Argument `scale.{name}` must be finite, but is {arr}")
    if np.any(spread <= 0):
        raise ConfigurationError(f"Argument `scale.scale` must be > 0, but is {spread}")
    return FeatureScaler(center, spread)


def _check_params(params: NeuronParams) -> NeuronParams:
    if not isinstance(params, NeuronParams):
        raise ConfigurationError(f"Argument `params` must be a NeuronParams or None, but is {type(params).__name__}")
    for name in FIELDS:
        shape = np.shape(getattr(params, name))
        if shape != ():
            raise ConfigurationError(
                f"Argument `params.{name}` must be a scalar (one parameter set for the feature population), "
                f"but has shape {shape}"
            )
    if not float(params.r_m) > 0:
        raise ConfigurationError(f"Argument `params.r_m` must be > 0 so a drive can reach threshold, but is {float(params.r_m)}")
    return params


@functools.partial(jax.jit, static_argnames=("steps", "coding", "unroll"))
def _run_block(stepper: Stepper, state0, u, missing, gains, offsets, rheobase, key, row0, *, steps: int, coding: str,
               unroll: int):
    """Simulate one padded block: ``u``, ``missing`` ``(R, F)``; returns the features of all ``R`` rows."""
    rows, f = u.shape
    m = gains.shape[0]
    dtype = u.dtype
    # (R, F, m) drive in rheobase multiples; the reshape keeps neuron f*m + j next to its feature.
    x = 1.0 + gains.reshape(1, 1, m) * (u.reshape(rows, f, 1) - offsets.reshape(1, 1, m))
    x = jnp.where(missing.reshape(rows, f, 1), 0.0, jnp.maximum(x, 0.0))
    current = (rheobase * x).reshape(rows, f * m)
    state = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a[0] if a.ndim else a, (rows, f * m) if a.ndim else (rows,)), state0)

    if stepper.needs_key:
        keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(row0 + jnp.arange(rows, dtype=jnp.int32))
        step = jax.vmap(stepper)
    else:
        keys = None
        step = jax.vmap(lambda s, i, k: stepper(s, i, None), in_axes=(0, 0, None))

    def body(carry, k):
        s, count, first, p1_sum, coh_sum = carry
        s, spikes, _ = step(s, current, keys)
        count = count + spikes.astype(jnp.int32)
        first = jnp.where(spikes & (first == steps), k, first)
        return (s, count, first, p1_sum + p_excited(s), coh_sum + coherence(s)), None

    zeros = jnp.zeros((rows, f * m), dtype)
    init = (state, jnp.zeros((rows, f * m), jnp.int32), jnp.full((rows, f * m), steps, jnp.int32), zeros, zeros)
    (_, count, first, p1_sum, coh_sum), _ = jax.lax.scan(body, init, jnp.arange(steps, dtype=jnp.int32), unroll=unroll)
    p1_mean, coh_mean = p1_sum / steps, coh_sum / steps
    timing = count if coding == "rate" else first
    matrix = jnp.concatenate([timing.astype(dtype) / steps, p1_mean, coh_mean, missing.astype(dtype)], axis=1)
    return count, first, p1_mean, coh_mean, matrix


def spike_features(
    x: Any,
    *,
    params: NeuronParams | None = None,
    coding: str = "rate",
    steps: int = 32,
    neurons_per_feature: int = 4,
    mode: str = "pure",
    key: jax.Array | None = None,
    scale: FeatureScaler | None = None,
    dtype: Any = jnp.float32,
) -> SpikeFeatures:
    """Encode task features as the spike features of a QSN population (see the module docstring).

    Args:
        x: ``(N, F)`` task features, real; NaN marks a missing feature; inf is an error.
        params: scalar :class:`NeuronParams` of every encoding neuron (default :func:`feature_params`).
        coding: ``"rate"`` (spike counts) or ``"latency"`` (first-spike steps) in ``matrix``.
        steps: simulated steps per task (``steps * params.dt`` ms).
        neurons_per_feature: ``m``, neurons per feature (:func:`population_code`).
        mode: ``"pure"`` or ``"mixed"`` qubits.
        key: ``jax.random`` key, required when the dynamics draw random numbers (pure mode with finite
            ``t1``/``t2``, ``jump_rate > 0``); task row ``r`` uses ``fold_in(key, r)``.
        scale: a fitted :class:`FeatureScaler`; None fits one on ``x`` itself (then the encoding of a
            task depends on its batch — pass a scaler fitted on past tasks for online use).
        dtype: float32 (default) or float64 (needs x64).

    Returns:
        :class:`SpikeFeatures` with ``N`` rows; ``matrix`` is ``(N, 3*F*m + F)``.

    Raises:
        InvalidInputError: ``x`` not ``(N, F)`` real, or with an inf. ConfigurationError: a bad option.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(1000, 4))
        >>> sf = spike_features(x, scale=fit_scaler(x))
        >>> sf.matrix.shape
        (1000, 52)
    """
    arr = _check_x(x)
    if coding not in CODINGS:
        raise ConfigurationError(f"Argument `coding` must be one of {CODINGS}, but is {coding!r}")
    if mode not in MODES:
        raise ConfigurationError(f"Argument `mode` must be one of {MODES}, but is {mode!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigurationError(f"Argument `steps` must be an int >= 1, but is {steps!r}")
    steps = int(steps)
    code = population_code(neurons_per_feature)
    params = _check_params(feature_params() if params is None else params)
    dt = resolve_dtype(dtype)
    n, f = arr.shape
    scaler = fit_scaler(arr) if scale is None else _check_scaler(scale, f)

    missing = np.isnan(arr)
    z = (arr - scaler.center) / scaler.scale
    u = np.where(missing, 0.0, SQUASH * np.tanh(np.where(missing, 0.0, z) / SQUASH))
    # The steady-state drive a = r_m I/(v_th - v_rest) equals the rheobase multiple, so the largest
    # multiple bounds |a| over the run (the argument of qsn.simulate's bound: V is a convex combination
    # of its previous value and the steady state, and starts at rest).
    a_bound = max(1.0, float(np.max(1.0 + code.gains * (SQUASH - code.offsets)))) * (1 + 1e-6)
    values = tuple(float(getattr(params, name)) for name in FIELDS)
    stepper, state0, rheobase = _setup(values, mode, dt.name, a_bound)
    stepper.check_key(key)
    gains, offsets = jnp.asarray(code.gains, dt), jnp.asarray(code.offsets, dt)
    key_arg = key if stepper.needs_key else None
    unroll = 1 if stepper.needs_key else _UNROLL.get((jax.default_backend(), mode), 1)

    parts = []
    for start in range(0, n, MAX_ROWS):
        stop = min(n, start + MAX_ROWS)
        rows = bucket_rows(stop - start)
        u_pad = np.zeros((rows, f), np.float64)
        miss_pad = np.ones((rows, f), bool)  # padding rows: zero drive
        u_pad[: stop - start], miss_pad[: stop - start] = u[start:stop], missing[start:stop]
        out = _run_block(stepper, state0, jnp.asarray(u_pad, dt), jnp.asarray(miss_pad), gains, offsets, rheobase,
                         key_arg, jnp.int32(start), steps=steps, coding=coding, unroll=unroll)
        # Unpadding on the host: slicing a NumPy view is free, a device slice per field is a dispatch.
        parts.append(tuple(np.asarray(a)[: stop - start] for a in out))
    if not parts:  # N = 0
        k = f * code.gains.shape[0]
        parts = [(np.zeros((0, k), np.int32), np.zeros((0, k), np.int32), np.zeros((0, k), dt), np.zeros((0, k), dt),
                  np.zeros((0, 3 * k + f), dt))]
    count, first, p1_mean, coh_mean, matrix = (np.concatenate(c, axis=0) for c in zip(*parts))
    return SpikeFeatures(counts=count, first_spike=first, p1_mean=p1_mean, coherence_mean=coh_mean,
                         missing=missing, matrix=matrix)


@functools.lru_cache(maxsize=64)
def _setup(values: tuple[float, ...], mode: str, dtype: str, a_bound: float):
    """Step configuration, constants, one initial neuron and the rheobase, cached per parameter set
    (building them costs more than simulating a thousand tasks)."""
    params = NeuronParams(**dict(zip(FIELDS, values)))
    stepper = Stepper.build(params, mode, dtype, a_bound=a_bound)
    state0 = init_state(params, n=1, mode=mode, dtype=dtype)
    rheobase = jnp.asarray((params.v_th - params.v_rest) / params.r_m, dtype)
    return stepper, state0, rheobase

