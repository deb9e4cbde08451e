"""Service-time models: how long task i takes on worker j, (N, W) seconds.

Batch-like tasks take ``work_i / (speed_j * affinity[type_i, kind_j])``. LLM requests get their work
from a prefill/decode model fitted by DistServe (Zhong et al., OSDI 2024) on one A100-80GB for OPT-13B
(``simdistserve/estimators/time_estimator.py`` and ``profile_data/profiler-a100-80g.distserve.json``,
coefficients quoted in docs/scheduler.md, Model), at batch size 1, times in ms:

    prefill(l)     = 18.10 + 0.1019 l + 7.12e-6 l^2
    decode step(c) = 19.93 + 6.27e-4 c + 0.0385           (c = context tokens so far)

and, in vLLM's convention, the prefill emits the first output token, so a request with prompt ``l`` and
output ``m`` takes ``prefill(l) + sum_{k=1}^{m-1} decode(l + k)`` (decode step ``k`` attends to the prompt
and the ``k`` tokens so far and emits token ``k + 1``). Its first token comes at ``prefill / speed`` and
each later one a decode step apart, so TPOT = (finish − first token)/(m − 1) is exactly the mean decode
step (:mod:`qsn.scheduler.metrics`). A worker of speed ``s`` runs it ``s`` times faster. Each slot serves
one request: batching interference between slots is not modelled (a documented simplification).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qsn.scheduler.task import Cluster, Workload

__all__ = ["LLMCoefficients", "OPT_13B_A100", "llm_work", "prefill_seconds", "speed_matrix", "durations"]


class LLMCoefficients(NamedTuple):
    """Prefill ``a + b l + c l^2`` and decode-step ``d + e c + f`` coefficients, milliseconds."""

    prefill: tuple[float, float, float]
    decode: tuple[float, float, float]


OPT_13B_A100 = LLMCoefficients(prefill=(18.10, 0.1019, 7.12e-6), decode=(19.93, 6.27e-4, 0.0385))


def prefill_seconds(prompt_tokens, coef: LLMCoefficients = OPT_13B_A100) -> np.ndarray:
    """Prefill time on a speed-1 worker, s; ``prompt_tokens`` (N,) → (N,)."""
    l = np.asarray(prompt_tokens, np.float64)
    a, b, c = coef.prefill
    return (a + b * l + c * l * l) / 1e3


def llm_work(prompt_tokens, output_tokens, coef: LLMCoefficients = OPT_13B_A100) -> np.ndarray:
    """Whole-request time on a speed-1 worker, s: the prefill (which emits the first token) and ``m − 1``
    decode steps for ``m`` output tokens (none for ``m <= 1``); (N,) → (N,).

    Example:
        >>> round(float(llm_work(100, 1)), 6) == round(float(prefill_seconds(100)), 6)
        True
    """
    l = np.asarray(prompt_tokens, np.float64)
    steps = np.maximum(np.asarray(output_tokens, np.float64) - 1.0, 0.0)
    d, e, f = coef.decode
    # sum_{k=1}^{s} (d + f + e (l + k)) = s (d + f + e l) + e s (s + 1)/2
    decode = steps * (d + f + e * l) + e * steps * (steps + 1) / 2.0
    return prefill_seconds(l, coef) + decode / 1e3


def speed_matrix(workload: Workload, cluster: Cluster) -> np.ndarray:
    """Effective speed of every worker for every task, (N, W): ``speed_j * affinity[type_i, kind_j]``."""
    return cluster.speed_table(int(workload.task_type.max()) + 1)[workload.task_type]


def durations(workload: Workload, cluster: Cluster, work=None) -> np.ndarray:
    """Service time of each task on each worker, (N, W) s; ``work`` (N,) replaces the true sizes (estimates)."""
    w = workload.work if work is None else np.asarray(work, np.float64)
    return w[:, None] / speed_matrix(workload, cluster)
