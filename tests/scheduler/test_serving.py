"""Tests of the LLM serving model (qsn.scheduler.serving and its serving_* modules) and its vLLM-style metrics.

Every expected time is computed here from DistServe's published forms, written out independently of the
model (``prefill_ms``/``decode_ms`` below; the coefficients are checked against ../shared/traces/README.md):

* one request alone: TTFT = prefill(l), then m − 1 decode steps at contexts l + 1 … l + m − 1;
* two requests batched: one prefill of both prompts, a decode step of b = 2 at the summed context;
* a mixed iteration (a decode beside a prefill chunk) pays one fixed cost, max(a_p, a_d);
* KV overflow: exactly the most recently admitted request is preempted; recompute redoes its prefill of
  prompt + generated tokens; swap charges the transfer per block both ways;
* chunked prefill splits a long prompt into the chunks the budget left after the decodes allows; without
  chunking, prefills run alone first;
* disaggregation adds the KV transfer (and the prefill replica holds the blocks until it ends);
* routers, orderings, metrics (TTFT, TPOT, ITL, E2E, throughput, KV utilisation), SLO attainment absent with
  no SLO, goodput against a closed form;
* a hypothesis property: every request finishes exactly once with exactly its output tokens, every iteration
  takes the fitted time of what it holds, and the KV cache never holds more than its capacity.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.scheduler import Workload, workloads
from qsn.scheduler.policy import Fifo
from qsn.scheduler.service import OPT_13B_A100, llm_work
from qsn.scheduler.serving import ServingConfig, at_rate, goodput, request_rate, serve
from qsn.scheduler.serving_metrics import itl, serving_metrics, slo_met

# DistServe, OPT-13B on one A100-80GB (../shared/traces/README.md), ms
A_P, B_P, C_P = 18.10, 0.1019, 7.12e-6
A_D, B_D, C_D = 19.93, 6.27e-4, 0.0385


def prefill_ms(*prompts: int) -> float:
    return A_P + B_P * sum(prompts) + C_P * sum(l * l for l in prompts)


def decode_ms(*contexts: int) -> float:
    return A_D + B_D * sum(contexts) + C_D * len(contexts)


def _wl(arrival, prompt, output) -> Workload:
    return Workload.from_arrays(arrival=np.asarray(arrival, float), prompt_tokens=prompt, output_tokens=output,
                                llm=True)


def _close(actual, expected) -> None:
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=1e-12, atol=1e-12)


def test_defaults_are_the_published_distserve_fit():
    readme = workloads.shared_trace("README.md")
    if readme is None:
        pytest.skip("../shared/traces/README.md is not on this machine")
    text = readme.read_text()
    pre = re.search(r"OPT-13B TP1: prefill a=(\d[\d.e-]*\d), b=(\d[\d.e-]*\d), c=(\d[\d.e-]*\d)", text)
    dec = re.search(r"decode \(bs<95\) a=(\d[\d.e-]*\d), b=(\d[\d.e-]*\d), c=(\d[\d.e-]*\d)", text)
    assert pre and dec
    published = [float(x) for x in (*pre.groups(), *dec.groups())]
    assert published == [A_P, B_P, C_P, A_D, B_D, C_D]
    assert [*OPT_13B_A100.prefill, *OPT_13B_A100.decode] == published


# --- hand-computable runs ---------------------------------------------------------------------------------
def test_one_request_alone():
    l, m, t0 = 510, 6, 1.25
    res = serve(_wl([t0], [l], [m]), record=True)
    expected = [prefill_ms(l)]
    for k in range(1, m):
        expected.append(expected[-1] + decode_ms(l + k))
    _close(res.tokens(0), t0 + np.array(expected) / 1e3)
    _close(res.finish[0] - t0, llm_work(l, m))  # the batch-size-1 service model agrees
    m_ = serving_metrics(res)
    _close(m_["ttft_mean"], prefill_ms(l) / 1e3)
    _close(m_["tpot_mean"], (expected[-1] - expected[0]) / 1e3 / (m - 1))
    _close(m_["e2e_median"], expected[-1] / 1e3)
    _close(np.sort(itl(res)), np.sort([decode_ms(l + k) / 1e3 for k in range(1, m)]))
    _close(m_["output_throughput"], m / (expected[-1] / 1e3))
    # KV: ceil(510/16) = 32 blocks through the prefill and the decodes up to context 512, then 33
    blocks = [32, 32, 32, 33, 33, 33]
    steps = np.diff([0.0] + expected) / 1e3
    _close(res.kv_block_seconds[0], np.dot(blocks, steps))
    _close(m_["kv_utilisation"], np.dot(blocks, steps) / (3500 * expected[-1] / 1e3))
    assert m_["preemptions"] == 0 and res.kv_peak[0] == 33


def test_two_requests_share_prefill_and_decode_steps():
    res = serve(_wl([0.0, 0.0], [100, 300], [4, 2]))
    t1 = prefill_ms(100, 300)
    t2 = t1 + decode_ms(101, 301)  # b = 2 at context 402
    t3 = t2 + decode_ms(102)
    t4 = t3 + decode_ms(103)
    _close(res.tokens(0), np.array([t1, t2, t3, t4]) / 1e3)
    _close(res.tokens(1), np.array([t1, t2]) / 1e3)
    m = serving_metrics(res)
    _close(m["ttft_mean"], t1 / 1e3)
    _close(m["tpot_mean"], ((t4 - t1) / 3 + (t2 - t1)) / 2 / 1e3)
    _close(m["itl_mean"], ((t2 - t1) * 2 + (t3 - t2) + (t4 - t3)) / 4 / 1e3)
    _close(m["e2e_mean"], (t4 + t2) / 2 / 1e3)
    _close(m["normalised_latency_mean"], (t4 / 4 + t2 / 2) / 2 / 1e3)
    _close(m["request_throughput"], 2 / (t4 / 1e3))
    _close(m["total_token_throughput"], (400 + 6) / (t4 / 1e3))


def test_mixed_iteration_pays_one_fixed_cost():
    # B arrives during A's first decode step; the next iteration holds A's decode and B's whole prefill
    a1 = prefill_ms(100)
    b_at = (a1 + 5.0) / 1e3
    res = serve(_wl([0.0, b_at], [100, 50], [3, 1]))
    a2 = a1 + decode_ms(101)
    mixed = max(A_P, A_D) + B_P * 50 + C_P * 50**2 + B_D * 102 + C_D * 1
    _close(res.tokens(0), np.array([a1, a2, a2 + mixed]) / 1e3)
    _close(res.tokens(1), [(a2 + mixed) / 1e3])


def _overflow(preemption: str, swap_s: float = 0.0):
    """Three 4-token prompts, 7 output tokens each, 6 blocks of 4 tokens: at context 9 (the 6th iteration)
    the oldest request needs a third block with none free."""
    cfg = ServingConfig(num_blocks=6, block_size=4, preemption=preemption, swap_s_per_block=swap_s)
    return serve(_wl([0.0, 0.0, 0.0], [4, 4, 4], [7, 7, 7]), cfg, record=True)


def test_kv_overflow_preempts_the_most_recent_and_recompute_redoes_its_prefill():
    res = _overflow("recompute")
    t = [prefill_ms(4, 4, 4)]
    for ctx in (5, 6, 7, 8):  # all three decode; at context 5 each takes its second block (6 used)
        t.append(t[-1] + decode_ms(ctx, ctx, ctx))
    t6 = t[-1] + decode_ms(9, 9)  # request 2 (admitted last) preempted: its 2 blocks go to requests 0 and 1
    t7 = t6 + decode_ms(10, 10)  # 0 and 1 finish; 2 waits (needs ceil(9/4) = 3 blocks, none free)
    t8 = t7 + prefill_ms(9)  # recompute: prefill of 4 prompt + 5 generated tokens emits token 6
    t9 = t8 + decode_ms(10)
    _close(res.tokens(0), np.array(t + [t6, t7]) / 1e3)
    _close(res.tokens(1), np.array(t + [t6, t7]) / 1e3)
    _close(res.tokens(2), np.array(t + [t8, t9]) / 1e3)
    assert res.preemptions.tolist() == [0, 0, 1] and res.swaps.tolist() == [0, 0, 0]
    assert [it.preempted for it in res.log] == [[], [], [], [], [], [2], [], [], []]
    assert res.log[7].prefills == [(2, 0, 9)]
    assert max(it.blocks_used for it in res.log) == 6
    m = serving_metrics(res)
    assert (m["preemptions"], m["preempted_requests"], m["preemptions_swap"]) == (1, 1, 0)


def test_kv_overflow_swap_charges_the_transfer_both_ways():
    s = 0.004  # s per block
    res = _overflow("swap", s)
    t = [prefill_ms(4, 4, 4)]
    for ctx in (5, 6, 7, 8):
        t.append(t[-1] + decode_ms(ctx, ctx, ctx))
    t6 = t[-1] + decode_ms(9, 9) + 2 * s * 1e3  # request 2's two blocks swapped out
    t7 = t6 + decode_ms(10, 10)
    t8 = t7 + decode_ms(9) + 2 * s * 1e3  # swapped back in (no recompute): it decodes at context 9
    t9 = t8 + decode_ms(10)
    _close(res.tokens(2), np.array(t + [t8, t9]) / 1e3)
    _close(res.tokens(0), np.array(t + [t6, t7]) / 1e3)
    assert res.preemptions.tolist() == [0, 0, 1] and res.swaps.tolist() == [0, 0, 1]
    assert [it.swap_blocks for it in res.log] == [0, 0, 0, 0, 0, 2, 0, 2, 0]
    assert serving_metrics(res)["preemptions_swap"] == 1


def test_no_admission_in_an_iteration_that_preempted():
    # admitted in order 0, 1, 2, 3 holding 1, 1, 5, 1 of 8 blocks; at context 5 requests 0 and 1 each need a
    # second block: 0 preempts 3 (the tail, 1 block), 1 preempts 2 (5 blocks), leaving 4 free. Request 3 would
    # fit (it recomputes 3 + 1 tokens, one block), but waits for the next iteration.
    cfg = ServingConfig(num_blocks=8, block_size=4)
    res = serve(_wl([0.0] * 4, [4, 4, 20, 3], [3, 3, 3, 3]), cfg, record=True)
    assert res.log[1].preempted == [3, 2] and res.log[1].decodes == [0, 1] and res.log[1].prefills == []
    assert res.log[2].prefills == [(3, 0, 4)] and res.log[2].decodes == [0, 1]
    assert res.preemptions.tolist() == [0, 0, 1, 1]


def test_swap_space_full_falls_back_to_recompute():
    cfg = ServingConfig(num_blocks=6, block_size=4, preemption="swap", swap_blocks=1)
    res = serve(_wl([0.0, 0.0, 0.0], [4, 4, 4], [7, 7, 7]), cfg, record=True)
    assert res.preemptions.tolist() == [0, 0, 1] and res.swaps.tolist() == [0, 0, 0]
    assert res.log[7].prefills == [(2, 0, 9)]


def test_chunked_prefill_uses_the_budget_left_after_decodes():
    # A (10-token prompt) and B (600) arrive together; budget 256 tokens per iteration
    cfg = ServingConfig(max_num_batched_tokens=256, max_num_seqs=8)
    res = serve(_wl([0.0, 0.0], [10, 600], [5, 2]), cfg, record=True)
    assert [it.prefills for it in res.log[:3]] == [[(0, 0, 10), (1, 0, 246)], [(1, 246, 255)], [(1, 501, 99)]]
    assert [it.decodes for it in res.log[:5]] == [[], [0], [0], [0, 1], [0]]
    i1 = prefill_ms(10, 246)  # two chunks at offset 0: exactly DistServe's batch prefill
    i2 = max(A_P, A_D) + B_P * 255 + C_P * (501**2 - 246**2) + B_D * 11 + C_D
    i3 = max(A_P, A_D) + B_P * 99 + C_P * (600**2 - 501**2) + B_D * 12 + C_D
    i4 = decode_ms(13, 601)
    _close([it.end for it in res.log[:4]], np.cumsum([i1, i2, i3, i4]) / 1e3)
    _close(res.tokens(1), np.cumsum([i1, i2, i3, i4])[[2, 3]] / 1e3)
    # the chunks' quadratic terms add up to the unchunked prompt's
    assert 246**2 + (501**2 - 246**2) + (600**2 - 501**2) == 600**2


def test_one_long_prompt_alone_is_split_into_budget_chunks():
    cfg = ServingConfig(max_num_batched_tokens=256, max_num_seqs=4)
    res = serve(_wl([0.0], [1000], [2]), cfg, record=True)
    assert [it.prefills for it in res.log[:4]] == [[(0, 0, 256)], [(0, 256, 256)], [(0, 512, 256)], [(0, 768, 232)]]
    chunks = [A_P + B_P * q + C_P * ((p + q) ** 2 - p**2) for p, q in ((0, 256), (256, 256), (512, 256), (768, 232))]
    _close(res.first_token[0], sum(chunks) / 1e3)
    _close(res.finish[0], (sum(chunks) + decode_ms(1001)) / 1e3)


def test_without_chunking_prefills_run_alone_first():
    a1 = prefill_ms(100)
    cfg = ServingConfig(chunked_prefill=False, max_num_batched_tokens=1024)
    res = serve(_wl([0.0, (a1 + 1.0) / 1e3], [100, 200], [4, 2]), cfg, record=True)
    a2 = a1 + decode_ms(101)
    a3 = a2 + prefill_ms(200)  # B's whole prefill; A does not decode in this iteration
    a4 = a3 + decode_ms(102, 201)
    a5 = a4 + decode_ms(103)
    _close(res.tokens(0), np.array([a1, a2, a4, a5]) / 1e3)
    _close(res.tokens(1), np.array([a3, a4]) / 1e3)
    assert res.log[2].decodes == [] and res.log[2].prefills == [(1, 0, 200)]


def test_disaggregation_adds_the_kv_transfer():
    l, m, per_token = 200, 4, 1e-4
    cfg = ServingConfig(replicas=(1, 1), kv_transfer_s_per_token=per_token)
    res = serve(_wl([0.5], [l], [m]), cfg)
    p = prefill_ms(l) / 1e3
    transfer = per_token * l
    d = [decode_ms(l + k) / 1e3 for k in range(1, m)]
    _close(res.tokens(0), 0.5 + np.array([p, p + transfer + d[0], p + transfer + d[0] + d[1],
                                          p + transfer + sum(d)]))
    assert res.replica.tolist() == [0] and res.decode_replica.tolist() == [1]
    # 13 blocks (ceil(200/16), then ceil(203/16)) on the prefill replica until the transfer ends, then on the decode one
    _close(res.kv_block_seconds, [13 * (p + transfer), 13 * sum(d)])
    colocated = serve(_wl([0.5], [l], [m]))
    _close(res.finish[0] - colocated.finish[0], transfer)


def test_disaggregated_one_token_request_never_reaches_decode():
    res = serve(_wl([0.0], [64], [1]), ServingConfig(replicas=(2, 1)))
    assert res.decode_replica.tolist() == [-1]
    _close(res.finish, [prefill_ms(64) / 1e3])


# --- routing and ordering ---------------------------------------------------------------------------------
def test_round_robin_routes_in_turn():
    res = serve(_wl(np.zeros(5), [10] * 5, [2] * 5), ServingConfig(replicas=3))
    assert res.replica.tolist() == [0, 1, 2, 0, 1]


def test_least_outstanding_and_least_kv_routing():
    wl = _wl([0.0, 0.0, 0.0], [1000, 10, 10], [3, 3, 3])
    lor = serve(wl, ServingConfig(replicas=2, router="least_outstanding"))
    kv = serve(wl, ServingConfig(replicas=2, router="least_kv"))
    assert lor.replica.tolist() == [0, 1, 0]  # 1 outstanding each: the tie goes to the lowest index
    assert kv.replica.tolist() == [0, 1, 1]  # replica 0's queue needs 63 blocks, replica 1's one
    # a request finished is no longer outstanding: D arrives after B left replica 1
    wl2 = _wl([0.0, 0.0, 0.0, 1.0], [500, 10, 500, 10], [200, 1, 200, 2])
    assert serve(wl2, ServingConfig(replicas=2, router="least_outstanding")).replica.tolist() == [0, 1, 0, 1]


def test_prompt_sjf_reorders_the_waiting_queue():
    # one request at a time (max_num_seqs = 1); B (90 tokens) and C (20) wait while A runs
    cfg = ServingConfig(max_num_seqs=1)
    wl = _wl([0.0, 0.001, 0.002], [50, 90, 20], [3, 1, 1])
    a = prefill_ms(50) + decode_ms(51) + decode_ms(52)
    fifo = serve(wl, cfg, order="fifo")
    sjf = serve(wl, cfg, order="sjf_prompt")
    _close(fifo.finish, np.array([a, a + prefill_ms(90), a + prefill_ms(90) + prefill_ms(20)]) / 1e3)
    _close(sjf.finish, np.array([a, a + prefill_ms(20) + prefill_ms(90), a + prefill_ms(20)]) / 1e3)
    assert fifo.order == "fifo" and sjf.order.startswith("sjf[prompt]")


class _CountingFifo(Fifo):
    """FCFS that counts completions, to check that each request finishes exactly once."""

    def bind(self, tasks, cluster):
        super().bind(tasks, cluster)
        self.completed = Counter()

    def on_completion(self, task, worker, runtime, now):
        self.completed[task] += 1


# --- SLOs and goodput --------------------------------------------------------------------------------------
def test_slo_attainment_only_when_an_slo_is_set():
    res = serve(_wl([0.0, 0.0], [100, 300], [4, 1]))
    plain = serving_metrics(res)
    assert not any("attainment" in k for k in plain)
    t1 = prefill_ms(100, 300) / 1e3
    tpot0 = (decode_ms(101) + decode_ms(102) + decode_ms(103)) / 3 / 1e3  # request 1 ends with its prefill
    assert serving_metrics(res, ttft_slo=t1 + 1e-9)["slo_attainment"] == 1.0
    m = serving_metrics(res, ttft_slo=t1 + 1e-9, tpot_slo=tpot0 - 1e-9)
    assert (m["slo_attainment"], m["ttft_attainment"], m["tpot_attainment"]) == (0.5, 1.0, 0.5)
    assert "ttft_attainment" not in serving_metrics(res, tpot_slo=1.0)
    assert slo_met(res, tpot_slo=tpot0 - 1e-9).tolist() == [False, True]  # one token: no TPOT, met


def test_goodput_matches_the_closed_form():
    # ten identical 100-token prompts, one output token, a budget of one prompt per iteration: each is served
    # alone in P s; at gap g < P request k waits k (P − g). TTFT SLO 1.5 P: 9 of 10 meet it iff 8 (P − g) <= P/2,
    # so the goodput is 16 / (15 P) requests/s.
    p = prefill_ms(100) / 1e3
    wl = _wl(np.arange(10.0), [100] * 10, [1] * 10)
    cfg = ServingConfig(max_num_batched_tokens=100, max_num_seqs=4)
    out = goodput(wl, cfg, ttft_slo=1.5 * p, rates=(10.0, 20.0, 40.0, 80.0), bisections=10)
    true = 16 / (15 * p)
    assert not out["capped"] and true - 20 / 2**10 <= out["goodput"] <= true
    assert [r["rate"] for r in out["rows"][:3]] == [10.0, 20.0, 40.0]
    assert out["rows"][2]["slo_attainment"] == 0.5  # at 40/s: k (P − 25 ms) <= P/2 for k <= 4
    assert goodput(wl, cfg, ttft_slo=1.5 * p, rates=(10.0, 20.0))["capped"]
    full = goodput(wl, cfg, ttft_slo=1.5 * p, rates=(10.0, 20.0, 40.0, 80.0), bisections=2, full_sweep=True)
    assert [r["rate"] for r in full["rows"]] == [10.0, 20.0, 40.0, 80.0, 30.0, 35.0]
    assert full["rows"][3]["slo_attainment"] == 0.1  # at 80/s only request 0 waits less than P/2
    assert full["goodput"] == 35.0 and full["rows"][3]["ttft_mean"] > full["rows"][2]["ttft_mean"]


def test_at_rate_retimes_to_the_rate():
    wl = _wl([2.0, 3.0, 7.0, 8.0], [5] * 4, [2] * 4)
    _close(request_rate(at_rate(wl, 6.0)), 6.0)
    _close(at_rate(wl, 6.0).arrival, 2.0 + np.array([0.0, 1.0, 5.0, 6.0]) * (0.5 / 6.0))


# --- errors ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, field", [
    (dict(block_size=0), "block_size"), (dict(num_blocks=1.5), "num_blocks"), (dict(replicas=(2,)), "replicas"),
    (dict(replicas=(1, 0)), "replicas\\[1\\]"), (dict(preemption="evict"), "preemption"),
    (dict(max_num_seqs=300, max_num_batched_tokens=256), "max_num_seqs"), (dict(router="random"), "router"),
    (dict(swap_s_per_block=-1.0), "swap_s_per_block"), (dict(kv_transfer_s_per_token=math.nan), "kv_transfer"),
    (dict(chunked_prefill=1), "chunked_prefill"), (dict(swap_blocks=-1), "swap_blocks"),
])
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ConfigurationError, match=f"`{field}"):
        ServingConfig(**kwargs)


def test_workload_errors_name_the_request():
    with pytest.raises(InvalidInputError, match=r"output_tokens\[1\] = 0"):
        serve(_wl([0.0, 0.0], [5, 5], [1, 0]))
    with pytest.raises(ConfigurationError, match=r"`num_blocks` must be >= 4 \(request 1"):
        serve(_wl([0.0, 0.0], [4, 10], [1, 4]), ServingConfig(num_blocks=3, block_size=4))
    with pytest.raises(ConfigurationError, match=r"`max_num_batched_tokens` must be >= 3000.*request 0"):
        serve(_wl([0.0], [2000], [1001]), ServingConfig(chunked_prefill=False))
    with pytest.raises(ConfigurationError, match="`order`"):
        serve(_wl([0.0], [5], [2]), order="lifo")
    with pytest.raises(ConfigurationError, match="`rate`"):
        at_rate(_wl([0.0, 1.0], [5, 5], [2, 2]), 0.0)
    with pytest.raises(ConfigurationError, match="at least one SLO"):
        goodput(_wl([0.0, 1.0], [5, 5], [2, 2]))
    with pytest.raises(ConfigurationError, match="`ttft_slo`"):
        serving_metrics(serve(_wl([0.0], [5], [2])), ttft_slo=-1.0)


# --- properties -------------------------------------------------------------------------------------------------
def _iteration_ms(it, swap_s: float) -> float:
    tokens = sum(q for _, _, q in it.prefills)
    ms = 0.0
    if tokens:
        ms += B_P * tokens + C_P * sum((p + q) ** 2 - p * p for _, p, q in it.prefills)
    if it.decodes:
        ms += B_D * it.decode_context + C_D * len(it.decodes)
    ms += max(A_P, A_D) if (tokens and it.decodes) else A_P if tokens else A_D if it.decodes else 0.0
    return ms + it.swap_blocks * swap_s * 1e3


@st.composite
def _cases(draw):
    n = draw(st.integers(1, 7))
    prompt = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    output = draw(st.lists(st.integers(1, 12), min_size=n, max_size=n))
    arrival = np.cumsum(draw(st.lists(st.sampled_from([0.0, 0.005, 0.02, 0.1]), min_size=n, max_size=n)))
    block = draw(st.sampled_from([1, 2, 4, 8]))
    need = max(-(-(l + m - 1) // block) for l, m in zip(prompt, output))
    budget = draw(st.integers(8, 64))
    chunked = draw(st.booleans()) or max(l + m - 1 for l, m in zip(prompt, output)) > budget
    disagg = draw(st.booleans())
    cfg = ServingConfig(
        replicas=(draw(st.integers(1, 2)), draw(st.integers(1, 2))) if disagg else draw(st.integers(1, 3)),
        num_blocks=need + draw(st.integers(0, 6)), block_size=block, max_num_batched_tokens=budget,
        max_num_seqs=draw(st.integers(1, 8)), chunked_prefill=chunked,
        preemption=draw(st.sampled_from(["recompute", "swap"])), swap_blocks=draw(st.sampled_from([None, 0, 3])),
        swap_s_per_block=0.001, kv_transfer_s_per_token=draw(st.sampled_from([0.0, 1e-4])),
        router=draw(st.sampled_from(["round_robin", "least_outstanding", "least_kv"])))
    return _wl(arrival, prompt, output), cfg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_every_request_finishes_once_with_its_tokens_and_the_cache_never_overflows(case):
    wl, cfg = case
    policy = _CountingFifo()
    res = serve(wl, cfg, order=policy, record=True)
    assert dict(policy.completed) == {i: 1 for i in range(wl.n)}  # finished exactly once each
    for i in range(wl.n):
        t = res.tokens(i)
        assert t.size == wl.output_tokens[i] and t[0] > wl.arrival[i] and np.all(np.diff(t) >= 0)
    assert np.all(res.kv_peak <= cfg.num_blocks)
    ends: dict[int, set] = {i: set() for i in range(wl.n)}
    decodes = Counter()
    for it in res.log:
        _close(it.end - it.start, _iteration_ms(it, cfg.swap_s_per_block) / 1e3)
        # the tokens this iteration holds in the cache cannot exceed the blocks in use, nor those the capacity
        held = it.decode_context + sum(p + q for _, p, q in it.prefills)
        assert held <= it.blocks_used * cfg.block_size and it.blocks_used <= cfg.num_blocks
        assert sum(q for _, _, q in it.prefills) + len(it.decodes) <= cfg.max_num_batched_tokens
        members = {r for r, _, _ in it.prefills} | set(it.decodes)
        assert len(members) <= cfg.max_num_seqs
        decodes.update(it.decodes)
        for r in members:
            ends[r].add(it.end)
    for i in range(wl.n):
        assert set(res.tokens(i).tolist()) <= ends[i]  # every token is emitted at the end of an iteration holding it
        assert decodes[i] <= wl.output_tokens[i] - 1  # the prefill emits at least the first token
