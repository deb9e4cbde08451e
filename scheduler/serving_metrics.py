"""Metrics of a serving run (a :class:`~qsn.scheduler.serving.ServingResult`) as vLLM's ``benchmark_serving``
reports them.

For request ``i`` with arrival ``a_i``, ``m_i`` output tokens emitted at ``t_i1 … t_im`` (s) and ``l_i`` prompt
tokens:

* TTFT = ``t_i1 − a_i`` (the prefill emits the first token); E2E latency = ``t_im − a_i``;
* TPOT = ``(E2E − TTFT)/(m_i − 1)`` over the requests with ``m_i > 1`` (a one-token request has none);
* ITL: every inter-token gap ``t_i,k+1 − t_ik``, pooled over all requests (their mean is the token-weighted
  TPOT; a preemption or a KV transfer shows as one long gap);
* normalised latency = ``E2E / m_i`` (DistServe, vLLM's paper);
* each distribution as ``{name}_mean``, ``_median``, ``_std``, ``_p90``, ``_p95``, ``_p99`` (NumPy's linear
  percentiles, as vLLM);
* ``duration`` = last finish − first arrival; ``request_throughput`` = N / duration, ``output_throughput`` =
  Σ m / duration, ``total_token_throughput`` = Σ (l + m) / duration (per s);
* ``kv_utilisation``: each replica's time-averaged fraction of KV blocks in use, ∫ used dt / (capacity ·
  duration), averaged over replicas (``kv_utilisation_max``: the busiest replica's); ``kv_peak``: the largest
  fraction in use at any instant on any replica;
* ``preemptions`` (events), ``preemptions_swap`` (of which by swap), ``preempted_requests`` (distinct);
* only when an SLO is given (``ttft_slo`` and/or ``tpot_slo``, s): ``slo_attainment``, the fraction of
  requests meeting every SLO given (TPOT trivially met with one token), and ``ttft_attainment`` /
  ``tpot_attainment`` for each given alone. With no SLO these keys are absent, not 1.0.

DistServe's goodput (the highest rate meeting the SLOs for ≥ 90 % of requests) needs runs at several rates:
:func:`qsn.scheduler.serving.goodput`.

Example:
    >>> from qsn.scheduler import Workload
    >>> from qsn.scheduler.serving import serve
    >>> wl = Workload.from_arrays(arrival=[0.0], prompt_tokens=[100], output_tokens=[3], llm=True)
    >>> m = serving_metrics(serve(wl))
    >>> round(m["ttft_mean"] * 1e3, 4), "slo_attainment" in m
    (28.3612, False)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qsn.errors import ConfigurationError

if TYPE_CHECKING:
    from qsn.scheduler.serving import ServingResult

__all__ = ["QUANTILES", "ttft", "e2e", "tpot", "itl", "normalised_latency", "slo_met", "distribution",
           "serving_metrics"]

QUANTILES = (90, 95, 99)  # percentiles reported beside mean, median and std


def ttft(result: "ServingResult") -> np.ndarray:
    """(N,) time to first token, s."""
    return result.first_token - result.workload.arrival


def e2e(result: "ServingResult") -> np.ndarray:
    """(N,) end-to-end latency, s."""
    return result.finish - result.workload.arrival


def tpot(result: "ServingResult") -> np.ndarray:
    """(N,) time per output token after the first, s; NaN for one-token requests."""
    steps = result.workload.output_tokens - 1
    return np.where(steps > 0, (result.finish - result.first_token) / np.maximum(steps, 1), np.nan)


def itl(result: "ServingResult") -> np.ndarray:
    """(Σ (m_i − 1),) every inter-token gap of every request, s (request order, then token order)."""
    gaps = np.diff(result.token_time)
    keep = np.ones(gaps.shape, bool)
    keep[result.offsets[1:-1] - 1] = False  # the step from one request's last token to the next one's first
    return gaps[keep]


def normalised_latency(result: "ServingResult") -> np.ndarray:
    """(N,) end-to-end latency per output token, s."""
    return e2e(result) / result.workload.output_tokens


def _slo(name: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ConfigurationError(f"Argument `{name}` must be None or a number of seconds > 0, but is {value!r}")
    return float(value)


def slo_met(result: "ServingResult", ttft_slo: float | None = None, tpot_slo: float | None = None) -> np.ndarray:
    """(N,) bool: requests meeting every SLO given (s; None = that SLO not set; all True if none is set)."""
    ttft_slo, tpot_slo = _slo("ttft_slo", ttft_slo), _slo("tpot_slo", tpot_slo)
    ok = np.ones(result.workload.n, bool)
    if ttft_slo is not None:
        ok &= ttft(result) <= ttft_slo
    if tpot_slo is not None:
        ok &= ~(tpot(result) > tpot_slo)  # NaN (one token) meets it
    return ok


def distribution(name: str, values: np.ndarray) -> dict[str, float]:
    """``{name}_mean, _median, _std, _p90, _p95, _p99`` of the finite ``values`` (NaN where there are none).

    Example:
        >>> distribution("x", np.arange(11.0))["x_p90"]
        9.0
    """
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    keys = ["mean", "median", "std", *(f"p{q}" for q in QUANTILES)]
    if not v.size:
        return {f"{name}_{k}": float("nan") for k in keys}
    stats = [v.mean(), np.median(v), v.std(), *np.percentile(v, QUANTILES)]
    return {f"{name}_{k}": float(x) for k, x in zip(keys, stats)}


def serving_metrics(result: "ServingResult", *, ttft_slo: float | None = None,
                    tpot_slo: float | None = None) -> dict[str, float]:
    """A flat dict of the metrics in the module docstring (s, per s, fractions, counts).

    Args:
        result: a :func:`~qsn.scheduler.serving.serve` run.
        ttft_slo, tpot_slo: SLOs in s; None (default) = not set, and no attainment is reported for it.
    """
    wl = result.workload
    duration = result.duration
    out: dict[str, float] = {
        "requests": float(wl.n),
        "duration": duration,
        "request_throughput": wl.n / duration,
        "output_throughput": float(wl.output_tokens.sum()) / duration,
        "total_token_throughput": float(wl.output_tokens.sum() + wl.prompt_tokens.sum()) / duration,
    }
    for name, values in (("ttft", ttft(result)), ("tpot", tpot(result)), ("itl", itl(result)),
                         ("e2e", e2e(result)), ("normalised_latency", normalised_latency(result))):
        out.update(distribution(name, values))
    per_replica = result.kv_block_seconds / (result.kv_capacity * duration)
    out.update(kv_utilisation=float(per_replica.mean()), kv_utilisation_max=float(per_replica.max()),
               kv_peak=float((result.kv_peak / result.kv_capacity).max()),
               preemptions=float(result.preemptions.sum()), preemptions_swap=float(result.swaps.sum()),
               preempted_requests=float(np.count_nonzero(result.preemptions)))
    if ttft_slo is not None or tpot_slo is not None:
        out["slo_attainment"] = float(slo_met(result, ttft_slo, tpot_slo).mean())
        if ttft_slo is not None:
            out["ttft_attainment"] = float(slo_met(result, ttft_slo=ttft_slo).mean())
        if tpot_slo is not None:
            out["tpot_attainment"] = float(slo_met(result, tpot_slo=tpot_slo).mean())
    return out
