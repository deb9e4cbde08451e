"""Tests of the baselines of issue 19 item 4: preemptive SRPT and MLFQ (qsn.scheduler.preemptive) in the simulator,
and the nonlinear classical predictors (BinnedMean, Boosted in qsn.scheduler.predictors).

* hand-computed single-worker schedules: exact SRPT on three jobs (each arrival preempts), SRPT with aging, MLFQ
  demoting a long job after its quantum, MLFQ with aging, an LLM request preempted during its prefill (its first
  token comes when the work done reaches the prefill's);
* conservation under preemption: every task served once, busy time = total work on speed-1 workers, slots never
  exceeded;
* BinnedMean against a NumPy computation of quantile-bin means written here, refitted only every ``refit``
  completions; on a workload whose size is a non-monotone function of the prompt length it beats FIFO and
  prompt-length order, which a monotone predictor cannot;
* illegal preemptions and wake-ups are refused, bad arguments name the field.

The leakage harness over every named policy (these included) is in test_policy.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from qsn.errors import ConfigurationError
from qsn.scheduler import Cluster, Task, Worker, Workload, metrics, simulate, workloads
from qsn.scheduler.policy import Fifo, ShortestFirst, observe
from qsn.scheduler.preemptive import MLFQ, SRPT
from qsn.scheduler.predictors import BinnedMean, Boosted, Estimate, Oracle, PromptLength
from qsn.scheduler.service import llm_work, prefill_seconds

ONE = Cluster.from_workers([Worker()])


def _three():
    return Workload.from_tasks([Task(arrival=0.0, work=10.0), Task(arrival=1.0, work=4.0), Task(arrival=2.0, work=1.0)])


def test_srpt_on_three_jobs_hand_computed():
    # t=1: B (4) < A's remaining 9 -> A preempted; t=2: C (1) < B's remaining 3 -> B preempted;
    # C 2-3, B 3-6, A 6-15. Non-preemptive SJF on the same sizes: A 0-10, C 10-11, B 11-15.
    wl = _three()
    s = simulate(wl, ONE, SRPT(Oracle(wl.work)))
    np.testing.assert_allclose(s.finish, [15.0, 6.0, 3.0])
    np.testing.assert_allclose(s.start, [0.0, 1.0, 2.0])  # the first start of each task
    np.testing.assert_array_equal(s.preemptions, [1, 1, 0])
    assert s.busy[0] == pytest.approx(15.0)
    sjf = simulate(wl, ONE, ShortestFirst(Oracle(wl.work)))
    np.testing.assert_allclose(sjf.finish, [10.0, 15.0, 11.0])
    assert metrics(wl, ONE, s)["latency_mean"] == pytest.approx(7.0)  # (15 + 5 + 1) / 3


def test_srpt_aging_hand_computed():
    # aging 3: keys remaining + 3 r. t=1: B 4 + 3 = 7 < A 9 -> preempt; t=2: C 1 + 6 = 7 > B's 3 + 3 = 6 -> B runs
    # on (1-5); then C (7) before A (9 + 0): C 5-6, A 6-15
    wl = _three()
    s = simulate(wl, ONE, SRPT(Oracle(wl.work), aging=3.0))
    np.testing.assert_allclose(s.finish, [15.0, 5.0, 6.0])
    np.testing.assert_array_equal(s.preemptions, [1, 0, 0])


def test_srpt_on_a_causal_predictor_uses_only_what_it_has_learned():
    # Estimate without estimates: A, B, C all predicted the prior 1.0 at readiness -> remaining max(1 - done, 0):
    # A has done 1 by t=1 (key 0) and is never preempted by B (key 1); after A, B and C tie -> B first
    wl = _three()
    s = simulate(wl, ONE, SRPT(Estimate(prior=1.0)))
    np.testing.assert_allclose(s.finish, [10.0, 14.0, 15.0])
    assert s.preemptions.sum() == 0


def test_mlfq_demotes_a_long_job_after_its_quantum():
    # quantum 1: A runs 0-1 at level 0; B arrives at 0.5 at level 0 too (ties keep A); at 1 A is demoted to
    # level 1 and B preempts it: B 1-2; A resumes at 2 and, alone, runs to 11
    wl = Workload.from_tasks([Task(arrival=0.0, work=10.0), Task(arrival=0.5, work=1.0)])
    s = simulate(wl, ONE, MLFQ(quantum=1.0))
    np.testing.assert_allclose(s.finish, [11.0, 2.0])
    np.testing.assert_allclose(s.start, [0.0, 1.0])
    np.testing.assert_array_equal(s.preemptions, [1, 0])
    # with aging 4, B's key 0 + 4 * 0.5 = 2 beats A's level-1 key 1 + 0 only when A reaches level 2 (key 3) at 3
    aged = simulate(wl, ONE, MLFQ(quantum=1.0, aging=4.0))
    np.testing.assert_allclose(aged.finish, [11.0, 4.0])
    np.testing.assert_allclose(aged.start, [0.0, 3.0])
    # one level: plain FIFO, nothing preempted
    fifo = simulate(wl, ONE, MLFQ(quantum=1.0, levels=1))
    np.testing.assert_allclose(fifo.finish, [10.0, 11.0])


def test_mlfq_new_arrival_preempts_a_demoted_job_and_skip_join_starts_long_prefills_lower():
    wl = Workload.from_tasks([Task(arrival=0.0, work=10.0), Task(arrival=5.0, work=1.0)])
    s = simulate(wl, ONE, MLFQ(quantum=1.0))  # at 5 A is at level 2 (1 + 2 s served): B preempts it at once
    np.testing.assert_allclose(s.finish, [11.0, 6.0])
    np.testing.assert_allclose(s.start, [0.0, 5.0])
    llm = Workload.from_arrays(arrival=[0.0, 0.0], prompt_tokens=[4000, 10], output_tokens=[2, 2], llm=True)
    llm = llm.replace(work=llm_work(llm.prompt_tokens, llm.output_tokens))
    pol = MLFQ(quantum=0.05, skip_join=True)
    pol.bind(observe(llm, ONE), ONE)
    # prefill of 4000 tokens: 18.1 + 407.6 + 113.9 ms = 0.54 s -> first level with 0.05 * 2^k >= 0.54: k = 4
    assert prefill_seconds(4000) == pytest.approx(0.5396, abs=1e-4)
    assert pol._level.tolist() == [4, 0]
    s = simulate(llm, ONE, MLFQ(quantum=0.05, skip_join=True))
    # A starts on its arrival and B, arriving at the same instant at level 0, preempts it at once: B runs first
    assert s.start[1] == 0.0 and s.finish[0] == pytest.approx(s.finish[1] + llm.work[0])
    assert s.preemptions.tolist() == [1, 0]
    plain = simulate(llm, ONE, MLFQ(quantum=0.05))  # both enter level 0: B waits for A's first quantum
    assert plain.finish[1] == pytest.approx(0.05 + llm.work[1])


def test_an_llm_request_preempted_during_its_prefill_gets_its_first_token_when_the_prefill_work_is_done():
    wl = Workload.from_arrays(arrival=[0.0, 0.1], prompt_tokens=[3000, 10], output_tokens=[50, 2], llm=True)
    wl = wl.replace(work=llm_work(wl.prompt_tokens, wl.output_tokens))
    pa, wb = float(prefill_seconds(3000)), float(wl.work[1])
    assert pa > 0.1 and wb < wl.work[0] - 0.1  # B arrives during A's prefill and is shorter than A's rest
    s = simulate(wl, ONE, SRPT(Oracle(wl.work)))
    np.testing.assert_allclose(s.finish, [wb + wl.work[0], 0.1 + wb])  # A: 0.1 s, B, then the rest of A
    # A did 0.1 s of prefill before B; the rest, pa - 0.1, after B
    assert s.first_token[0] == pytest.approx(0.1 + wb + (pa - 0.1))
    assert s.first_token[1] == pytest.approx(0.1 + float(prefill_seconds(10)))


@pytest.mark.parametrize("make", [lambda wl: SRPT(Estimate()), lambda wl: SRPT(Oracle(wl.work), aging=0.5),
                                  lambda wl: MLFQ(0.2), lambda wl: MLFQ(0.2, aging=1.0)])
def test_conservation_under_preemption(make):
    wl, _ = workloads.batch(300, 3, seed=1, load=0.95)
    cl = Cluster.uniform(3).replace(slots=np.array([1, 2, 1]))
    s = simulate(wl, cl, make(wl), faults=False)
    assert np.isfinite(s.finish).all() and (s.start >= wl.arrival).all()
    assert s.busy.sum() == pytest.approx(wl.work.sum(), rel=1e-9)  # speed 1: service = work, nothing lost
    assert (s.finish - s.start >= wl.work - 1e-9).all()
    assert (s.peak_running <= cl.slots).all() and s.preemptions.sum() > 0


def test_illegal_preemptions_and_wakeups_are_refused():
    wl = _three()

    class StopsIdle(Fifo):
        def next_preemption(self, now, view):
            return (2, 0) if now == 1.0 else None  # task 2 has not even arrived

    with pytest.raises(ConfigurationError, match="preempted task 2 on worker 0 .* not running"):
        simulate(wl, ONE, StopsIdle())

    class WakesEarly(Fifo):
        def on_arrival(self, task, now, view):
            super().on_arrival(task, now, view)
            view.wake_at(now - 1.0)

    with pytest.raises(ConfigurationError, match="wake at t = -1"):
        simulate(wl, ONE, WakesEarly())


@pytest.mark.parametrize("make, match", [(lambda: MLFQ(0.0), "`quantum`"), (lambda: MLFQ(levels=0), "`levels`"),
                                         (lambda: MLFQ(aging=-1.0), "`aging`"),
                                         (lambda: SRPT(Estimate(), aging=float("nan")), "`aging`"),
                                         (lambda: BinnedMean("tokens"), "`feature`"),
                                         (lambda: BinnedMean(bins=0), "`bins`"),
                                         (lambda: BinnedMean(refit=True), "`refit`"),
                                         (lambda: BinnedMean(shrink=-1.0), "`shrink`")])
def test_bad_arguments_name_the_field(make, match):
    with pytest.raises(ConfigurationError, match=match):
        make()


# --- the nonlinear classical predictors ----------------------------------------------------------------------
def _learned(pred, x, work, n_learn):
    wl = Workload.from_arrays(arrival=np.arange(x.size, dtype=float), prompt_tokens=x, work=work)
    pred.bind(observe(wl, ONE))
    for t in range(n_learn):
        pred.learn(t, float(np.log(work[t])), t + 0.5)
    return pred


def test_binned_mean_equals_quantile_bin_means_and_refits_only_every_refit_completions():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 2000, 300)
    work = rng.lognormal(0.0, 1.0, 300) * (1 + x / 500)
    b = _learned(BinnedMean("prompt_tokens", bins=4, refit=100, shrink=2.0), x, work, 250)
    # fitted at 200 completions (not 250): quartile bins of the first 200 prompts, shrunk means
    edges = np.quantile(x[:200], [0.25, 0.5, 0.75])
    for t in range(250, 300):
        k = np.searchsorted(edges, x[t], side="right")
        same = np.searchsorted(edges, x[:200], side="right") == k
        expect = (work[:200][same].sum() + 2.0 * work[:200].mean()) / (same.sum() + 2.0)
        assert np.exp(b.predict(t, 300.0)) == pytest.approx(expect, rel=1e-12)
    early = _learned(BinnedMean("prompt_tokens", refit=100), x, work, 99)  # no fit yet: the running mean
    assert np.exp(early.predict(150, 150.0)) == pytest.approx(work[:99].mean(), rel=1e-12)


def test_binned_mean_keeps_missing_values_in_their_own_bin():
    wl = Workload.from_arrays(arrival=np.arange(6.0), estimate=[np.nan, 1.0, np.nan, 2.0, np.nan, 1.5])
    b = BinnedMean(bins=2, refit=4, shrink=0.0)  # default feature without prompts: the estimate
    b.bind(observe(wl, ONE))
    for t, w in enumerate([8.0, 1.0, 10.0, 2.0]):
        b.learn(t, float(np.log(w)), t + 0.5)
    assert np.exp(b.predict(4, 4.0)) == pytest.approx(9.0)  # the NaN bin: tasks 0 and 2
    assert np.exp(b.predict(5, 5.0)) == pytest.approx(2.0)  # estimate 1.5 >= the median edge 1.5: task 3's bin


def _bump_workload(n=1500, seed=0):
    """Size 10 for prompts in (400, 600), 1 otherwise: a non-monotone function of the prompt length."""
    rng = np.random.default_rng(seed)
    prompt = rng.integers(1, 1000, n)
    work = np.where((prompt > 400) & (prompt < 600), 10.0, 1.0)
    arrival = np.cumsum(rng.exponential(work.mean() / 0.9, n))
    return Workload.from_arrays(arrival=arrival, prompt_tokens=prompt, work=work)


def test_binned_sjf_learns_a_non_monotone_size_and_beats_fifo_and_prompt_order():
    wl = _bump_workload()
    fifo = metrics(wl, ONE, simulate(wl, ONE, Fifo()))["latency_mean"]
    binned = metrics(wl, ONE, simulate(wl, ONE, ShortestFirst(BinnedMean("prompt_tokens"))))["latency_mean"]
    oracle = metrics(wl, ONE, simulate(wl, ONE, ShortestFirst(Oracle(wl.work))))["latency_mean"]
    order = metrics(wl.replace(llm=True), ONE, simulate(wl.replace(llm=True), ONE, ShortestFirst(PromptLength())))
    assert binned < 0.8 * fifo and binned < 0.8 * order["latency_mean"]
    assert binned < 1.2 * oracle


def test_boosted_trees_learn_the_same_bump_from_finished_tasks():
    pytest.importorskip("sklearn")
    wl = _bump_workload(600)
    b = Boosted(refit=256)
    b.bind(observe(wl, ONE))
    for t in range(511):
        b.learn(t, float(np.log(wl.work[t])), t + 0.5)
    assert b._fits == 1  # refitted at 256 completions only
    p = np.exp([b.predict(t, 600.0) for t in range(511, 600)])
    np.testing.assert_allclose(p, wl.work[511:600], rtol=0.25)
