"""How long one iteration of an LLM replica takes: DistServe's fitted prefill and decode forms, combined.

DistServe (Zhong et al., OSDI 2024) fits, on one A100-80GB (``simdistserve/estimators/time_estimator.py``,
``profile_data/profiler-a100-80g.distserve.json``; the coefficients are quoted in
docs/scheduler.md (Model) and held by :data:`qsn.scheduler.service.OPT_13B_A100`), in milliseconds:

    prefill batch of prompts l_i:             a_p + b_p Σ l_i + c_p Σ l_i²
    decode step of B requests at contexts c_j: a_d + b_d Σ c_j + c_d B

where a decode step's context is the tokens in the request's KV cache once the step has written its input
token (prompt plus tokens generated so far; see :mod:`qsn.scheduler.serving_replica`). Both forms are used
exactly as published. Two extensions are ours, and stated here because DistServe never needs them:

* **a prefill chunk** of ``q`` tokens at offset ``p`` (``p`` tokens of the same prompt already in the cache,
  vLLM's chunked prefill) costs ``b_p q + c_p ((p + q)² − p²)``: the quadratic (attention) term counts the
  query-key pairs the chunk adds, so the chunks of one prompt sum to exactly its unchunked ``c_p l²`` and
  chunking costs only the extra fixed term ``a_p`` of each iteration it spans;
* **a mixed iteration** (prefill chunks and decodes in one batch) pays one fixed cost, the larger of
  ``a_p`` and ``a_d`` (the weights are read once per forward pass), plus the variable terms of both parts.

DistServe switches to a second decode fit above batch 95 that the traces README does not quote; this model
uses the batch < 95 fit at every batch size (an extrapolation). Swap and KV-transfer seconds are added by
the replica, not here.

Example:
    >>> from qsn.scheduler.service import OPT_13B_A100
    >>> round(iteration_seconds(0, 0, 2, 2 * 101, OPT_13B_A100) * 1e3, 6)   # 2 decodes at context 101
    20.133654
    >>> round(iteration_seconds(100, 100**2, 0, 0, OPT_13B_A100) * 1e3, 6)  # a 100-token prompt
    28.3612
"""

from __future__ import annotations

from qsn.scheduler.service import OPT_13B_A100, LLMCoefficients

__all__ = ["chunk_square", "iteration_seconds"]


def chunk_square(offset: int, length: int) -> int:
    """The quadratic term's token pairs of a prefill chunk: ``(offset + length)² − offset²`` (tokens²)."""
    return (offset + length) ** 2 - offset * offset


def iteration_seconds(prefill_tokens: int, prefill_square: int, decode_batch: int, decode_context: int,
                      coef: LLMCoefficients = OPT_13B_A100) -> float:
    """Seconds of one iteration on a speed-1 replica.

    Args:
        prefill_tokens: Σ q over the iteration's prefill chunks (tokens); 0 = no prefill.
        prefill_square: Σ :func:`chunk_square` over them (tokens²; ``l²`` for a whole prompt ``l``).
        decode_batch: B, the requests decoding one token each.
        decode_context: Σ c_j, their contexts after the step (tokens).
        coef: prefill ``(a_p, b_p, c_p)`` and decode ``(a_d, b_d, c_d)`` in ms (default OPT-13B on A100-80GB).

    Returns:
        ``(fixed + b_p Σq + c_p Σsq + b_d Σc + c_d B) / 1000`` with ``fixed`` = ``a_p`` (prefill only),
        ``a_d`` (decode only), ``max(a_p, a_d)`` (both), 0 for an empty batch.
    """
    ap, bp, cp = coef.prefill
    ad, bd, cd = coef.decode
    ms = 0.0
    if prefill_tokens:
        ms += bp * prefill_tokens + cp * prefill_square
    if decode_batch:
        ms += bd * decode_context + cd * decode_batch
    if prefill_tokens and decode_batch:
        ms += max(ap, ad)
    elif prefill_tokens:
        ms += ap
    elif decode_batch:
        ms += ad
    return ms / 1e3
