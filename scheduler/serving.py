"""An LLM serving deployment, simulated iteration by iteration (the level of Vidur and DistServe).

:func:`serve` runs a workload of LLM requests (arrival s, ``prompt_tokens``, ``output_tokens``) on a
:class:`ServingConfig`: replicas with continuous batching under a token budget, a paged KV cache with
admission and preemption (recompute or swap), chunked prefill, a global router in front of per-replica
schedulers, optionally prefill/decode disaggregation. Every rule of a replica's iteration is in
:mod:`qsn.scheduler.serving_replica`, the iteration time in :mod:`qsn.scheduler.serving_cost`, the routers
in :mod:`qsn.scheduler.serving_router`, the metrics (vLLM benchmark's TTFT, TPOT, ITL, E2E …) in
:mod:`qsn.scheduler.serving_metrics`.

The event loop: at each instant, iterations that end are completed first (tokens emitted, blocks freed),
then KV transfers that end, then arrivals (routed at once); then every idle replica touched forms its next
iteration. A request arriving at the instant an iteration ends joins the next one.

* **Ordering.** Each replica's waiting queue is ordered by an online policy of :mod:`qsn.scheduler.policy`
  used by composition: a :class:`~qsn.scheduler.policy.GlobalQueue` (``Fifo`` — FCFS —, ``ShortestFirst``
  on a predictor …) gives the key of a request when it enters the queue, and learns from each finished
  request through ``on_completion(request, replica, runtime, now)``, where ``runtime`` is the request's
  service alone on a speed-1 replica (:func:`~qsn.scheduler.service.llm_work` of its now known token
  counts). ``order`` may name one of :data:`~qsn.scheduler.schedule.ONLINE_POLICIES` (``"fifo"``,
  ``"sjf_prompt"`` — shortest prompt first —, ``"sjf"``, ``"sjf_oracle"`` — a bound on true sizes).
* **Disaggregation** (``replicas=(P, D)``, DistServe): P prefill replicas take new requests; when a prefill
  is done (it emits the first token) the request is routed to one of D decode replicas, its KV cache
  (``l`` tokens) moving in ``kv_transfer_s_per_token · l`` seconds; the prefill replica holds the blocks until
  the transfer ends; transfers run concurrently (no link contention). The decode replica admits it when its
  blocks fit and decodes it (a recompute preemption there redoes the prefill locally).

Example:
    >>> from qsn.scheduler import Workload
    >>> wl = Workload.from_arrays(arrival=[0.0, 0.0], prompt_tokens=[100, 100], output_tokens=[3, 3], llm=True)
    >>> res = serve(wl, ServingConfig(replicas=1))
    >>> (res.tokens(0) * 1e3).round(4).tolist()      # ms: one prefill of both prompts, then 2 decode steps
    [38.6224, 58.7561, 78.891]
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qsn.errors import ConfigurationError, InvalidInputError, InvalidStateError
from qsn.scheduler.policy import GlobalQueue, observe
from qsn.scheduler.serving_replica import Iteration, Replica, RequestState
from qsn.scheduler.serving_router import ROUTERS, Router
from qsn.scheduler.service import OPT_13B_A100, LLMCoefficients, llm_work
from qsn.scheduler.task import Cluster, Workload

__all__ = ["ServingConfig", "ServingResult", "serve", "at_rate", "request_rate", "goodput", "run"]

PREEMPTION_MODES = ("recompute", "swap")


def _integer(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigurationError(f"Argument `{name}` must be an integer >= {minimum}, but is {value!r}")
    return int(value)


def _seconds(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            math.isfinite(value) and value >= 0):
        raise ConfigurationError(f"Argument `{name}` must be a finite number of seconds >= 0, but is {value!r}")
    return float(value)


@dataclass(frozen=True)
class ServingConfig:
    """A deployment (validated at construction; each error names the field).

    Defaults model OPT-13B on A100-80GB replicas with vLLM's defaults; the memory and bandwidth figures are
    ours, derived as stated (assumptions, not measurements):

    * ``num_blocks`` 3,500 blocks of 16 tokens (56,000 tokens) per replica: OPT-13B's KV is 2 · 40 layers ·
      5,120 · 2 B = 800 KiB per token; 90 % of 80 GB less 25.7 GB of fp16 weights less ~5 GB of activations
      leaves ~46 GB, ~3,500 blocks of 12.5 MiB;
    * ``swap_s_per_block`` 5.2e-4 s: 12.5 MiB over PCIe 4.0 x16 at ~25 GB/s, each way;
    * ``kv_transfer_s_per_token`` 3.3e-5 s: 800 KiB at ~25 GB/s between prefill and decode GPUs.

    Attributes:
        replicas: colocated replicas (an int), or ``(prefill, decode)`` pool sizes for disaggregation.
        num_blocks: GPU KV-cache blocks per replica.
        block_size: tokens per block.
        max_num_batched_tokens: token budget of one iteration (prefill chunks + one per decode).
        max_num_seqs: most requests running on a replica at once (<= the token budget).
        chunked_prefill: split prefills into chunks of the budget left after the decodes (False: whole
            prompts in prefill-only iterations; then every ``prompt + output − 1`` must fit the budget).
        preemption: ``"recompute"`` or ``"swap"``.
        swap_blocks: CPU swap space per replica, blocks (None = unlimited); a swap that does not fit recomputes.
        swap_s_per_block: seconds to move one block between GPU and CPU, each way.
        kv_transfer_s_per_token: seconds to move one token's KV from a prefill to a decode replica.
        router: a name in :data:`~qsn.scheduler.serving_router.ROUTERS` or a
            :class:`~qsn.scheduler.serving_router.Router` subclass (one instance per pool and run).
        coefficients: DistServe prefill and decode coefficients, ms (default OPT-13B on A100-80GB).
    """

    replicas: int | tuple[int, int] = 1
    num_blocks: int = 3500
    block_size: int = 16
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 256
    chunked_prefill: bool = True
    preemption: str = "recompute"
    swap_blocks: int | None = None
    swap_s_per_block: float = 5.2e-4
    kv_transfer_s_per_token: float = 3.3e-5
    router: str | type[Router] = "round_robin"
    coefficients: LLMCoefficients = OPT_13B_A100

    def __post_init__(self) -> None:
        if isinstance(self.replicas, tuple):
            if len(self.replicas) != 2:
                raise ConfigurationError(f"Argument `replicas` must be an int or a (prefill, decode) pair, but is "
                                         f"{self.replicas!r}")
            _integer("replicas[0] (prefill)", self.replicas[0])
            _integer("replicas[1] (decode)", self.replicas[1])
        else:
            _integer("replicas", self.replicas)
        _integer("num_blocks", self.num_blocks)
        _integer("block_size", self.block_size)
        _integer("max_num_batched_tokens", self.max_num_batched_tokens)
        _integer("max_num_seqs", self.max_num_seqs)
        if self.max_num_seqs > self.max_num_batched_tokens:
            raise ConfigurationError(f"Argument `max_num_seqs` must be <= max_num_batched_tokens "
                                     f"({self.max_num_batched_tokens}), but is {self.max_num_seqs}")
        if not isinstance(self.chunked_prefill, bool):
            raise ConfigurationError(f"Argument `chunked_prefill` must be a bool, but is {self.chunked_prefill!r}")
        if self.preemption not in PREEMPTION_MODES:
            raise ConfigurationError(f"Argument `preemption` must be one of {PREEMPTION_MODES}, but is "
                                     f"{self.preemption!r}")
        if self.swap_blocks is not None:
            _integer("swap_blocks", self.swap_blocks, 0)
        _seconds("swap_s_per_block", self.swap_s_per_block)
        _seconds("kv_transfer_s_per_token", self.kv_transfer_s_per_token)
        if not (self.router in ROUTERS or (isinstance(self.router, type) and issubclass(self.router, Router))):
            raise ConfigurationError(f"Argument `router` must be one of {sorted(ROUTERS)} or a Router subclass, but "
                                     f"is {self.router!r}")
        coef = self.coefficients
        if not (isinstance(coef, LLMCoefficients) and all(
                math.isfinite(v) and v >= 0 for v in (*coef.prefill, *coef.decode))):
            raise ConfigurationError(f"Argument `coefficients` must be LLMCoefficients of finite numbers >= 0 (ms), "
                                     f"but is {coef!r}")

    @property
    def disaggregated(self) -> bool:
        """Whether prefill and decode run on separate pools."""
        return isinstance(self.replicas, tuple)

    @property
    def roles(self) -> tuple[str, ...]:
        """The role of each replica, in index order (prefill pool first when disaggregated)."""
        if self.disaggregated:
            return ("prefill",) * self.replicas[0] + ("decode",) * self.replicas[1]
        return ("mixed",) * self.replicas

    def make_router(self) -> Router:
        """A fresh router instance for one pool."""
        return ROUTERS[self.router]() if isinstance(self.router, str) else self.router()


@dataclass(frozen=True, eq=False)
class ServingResult:
    """What a :func:`serve` run produced: every token's emission time, per request and per replica counts.

    Per-request arrays are (N,) in the workload's order; per-replica ones (R,) in replica index order.
    """

    workload: Workload
    config: ServingConfig
    order: str  # the ordering policy's name
    token_time: np.ndarray  # (Σ output_tokens,) float64, s: request i's tokens at offsets[i]:offsets[i+1]
    offsets: np.ndarray  # (N + 1,) int64
    replica: np.ndarray  # (N,) int64, the replica the request was routed to on arrival
    decode_replica: np.ndarray  # (N,) int64, its decode replica when disaggregated (else -1)
    preemptions: np.ndarray  # (N,) int64, times preempted
    swaps: np.ndarray  # (N,) int64, of which by swap
    kv_block_seconds: np.ndarray  # (R,) float64, ∫ blocks in use dt, block·s
    kv_peak: np.ndarray  # (R,) int64, most blocks in use at once
    kv_capacity: np.ndarray  # (R,) int64
    busy: np.ndarray  # (R,) float64, s in iterations
    iterations: np.ndarray  # (R,) int64
    log: tuple[Iteration, ...] | None  # every iteration, in start order, when record=True

    def tokens(self, i: int) -> np.ndarray:
        """(m_i,) emission times of request ``i``'s tokens, s."""
        return self.token_time[self.offsets[i]:self.offsets[i + 1]]

    @property
    def first_token(self) -> np.ndarray:
        """(N,) s, when each request's first token was emitted (its prefill done)."""
        return self.token_time[self.offsets[:-1]]

    @property
    def finish(self) -> np.ndarray:
        """(N,) s, when each request's last token was emitted."""
        return self.token_time[self.offsets[1:] - 1]

    @property
    def duration(self) -> float:
        """s from the first arrival to the last finish (vLLM benchmark's duration)."""
        return float(self.finish.max() - self.workload.arrival.min())


def _ordering(order, workload: Workload, aging: float) -> GlobalQueue:
    from qsn.scheduler.schedule import ONLINE_POLICIES

    if isinstance(order, str):
        if order not in ONLINE_POLICIES:
            raise ConfigurationError(f"Argument `order` must be one of {sorted(ONLINE_POLICIES)} or a GlobalQueue, "
                                     f"but is {order!r}")
        order = ONLINE_POLICIES[order](workload, aging)
    if not isinstance(order, GlobalQueue):
        raise ConfigurationError(f"Argument `order` must be a policy name or a qsn.scheduler.policy.GlobalQueue "
                                 f"(its key orders each replica's queue), but is {type(order).__name__}")
    return order


def _check_workload(workload: Workload, config: ServingConfig) -> None:
    """Every request must have tokens, and fit the KV cache (and the budget without chunked prefill)."""
    l, m = workload.prompt_tokens, workload.output_tokens
    for name, a in (("prompt_tokens", l), ("output_tokens", m)):
        if np.any(a < 1):
            i = int(np.flatnonzero(a < 1)[0])
            raise InvalidInputError(f"Argument `workload.{name}` must be >= 1 for every request, but "
                                    f"{name}[{i}] = {a[i]}")
    longest = l + m - 1  # the most tokens a request's KV cache holds (its last decode step's context)
    blocks = -(-longest // config.block_size)
    if np.any(blocks > config.num_blocks):
        i = int(np.flatnonzero(blocks > config.num_blocks)[0])
        raise ConfigurationError(f"Argument `num_blocks` must be >= {blocks[i]} (request {i}: {l[i]} prompt + "
                                 f"{m[i]} output tokens in blocks of {config.block_size}), but is {config.num_blocks}")
    if not config.chunked_prefill and np.any(longest > config.max_num_batched_tokens):
        i = int(np.flatnonzero(longest > config.max_num_batched_tokens)[0])
        raise ConfigurationError(f"Argument `max_num_batched_tokens` must be >= {l[i] + m[i] - 1} without chunked "
                                 f"prefill (request {i} may prefill {l[i]} + {m[i] - 1} tokens at once), but is "
                                 f"{config.max_num_batched_tokens}")


_ITER_END, _TRANSFER_END, _ARRIVAL = 0, 1, 2  # event kinds, in the order they are handled at one instant


def serve(workload: Workload, config: ServingConfig = ServingConfig(), *, order: str | GlobalQueue = "fifo",
          aging: float = 0.0, record: bool = False) -> ServingResult:
    """Simulate ``workload`` (LLM requests: arrival s, prompt and output tokens) served by ``config``.

    Args:
        workload: N requests (``prompt_tokens`` and ``output_tokens`` >= 1); ``work`` and estimates are not read
            by the model (the ``"sjf"``/``"sjf_oracle"`` orderings read them, as their policies do).
        config: the deployment.
        order: each replica's waiting-queue order: a name of
            :data:`~qsn.scheduler.schedule.ONLINE_POLICIES` or a :class:`~qsn.scheduler.policy.GlobalQueue`
            (default ``"fifo"``, FCFS by arrival).
        aging: linear aging of a named shortest-first order (s per s waited).
        record: keep every :class:`~qsn.scheduler.serving_replica.Iteration` in ``result.log``.

    Returns:
        A :class:`ServingResult`; :func:`~qsn.scheduler.serving_metrics.serving_metrics` summarises it.

    Raises:
        InvalidInputError: a request without prompt or output tokens.
        ConfigurationError: a request that could never fit a replica's KV cache (or budget), naming it.
    """
    _check_workload(workload, config)
    policy = _ordering(order, workload, aging)
    roles = config.roles
    cluster = Cluster.uniform(len(roles))
    policy.bind(observe(workload, cluster), cluster)
    state = RequestState(workload.prompt_tokens, workload.output_tokens)
    replicas = [Replica(i, role, config, state, policy.key) for i, role in enumerate(roles)]
    entry = [r for r in replicas if r.role != "decode"]
    decode_pool = [r for r in replicas if r.role == "decode"]
    entry_router, decode_router = config.make_router(), config.make_router()
    work = llm_work(workload.prompt_tokens, workload.output_tokens, config.coefficients)
    n = workload.n
    routed = np.full(n, -1, np.int64)
    decoded = np.full(n, -1, np.int64)
    log: list[Iteration] = []
    events: list[tuple[float, int, int, object]] = [(float(t), _ARRIVAL, i, i) for i, t in enumerate(workload.arrival)]
    heapq.heapify(events)
    seq = n
    while events:
        now = events[0][0]
        touched: set[int] = set()
        while events and events[0][0] == now:
            _, kind, _, payload = heapq.heappop(events)
            if kind == _ITER_END:
                rep = replicas[payload]
                finished, handed = rep.complete(now)
                touched.add(rep.index)
                for r in finished:
                    rep.outstanding -= 1
                    policy.on_completion(r, rep.index, float(work[r]), now)
                for r in handed:
                    dst = decode_pool[decode_router.route(r, now, decode_pool)]
                    dst.outstanding += 1
                    decoded[r] = dst.index
                    blocks, state.blocks[r] = state.blocks[r], 0
                    seq += 1
                    heapq.heappush(events, (now + config.kv_transfer_s_per_token * state.cached[r], _TRANSFER_END,
                                            seq, (r, rep.index, blocks, dst.index)))
            elif kind == _TRANSFER_END:
                r, src, blocks, dst = payload
                replicas[src].release(blocks, now)
                replicas[src].outstanding -= 1
                replicas[dst].enqueue(r, now)
                touched.update((src, dst))
            else:
                rep = entry[entry_router.route(payload, now, entry)]
                rep.outstanding += 1
                routed[payload] = rep.index
                rep.enqueue(payload, now)
                touched.add(rep.index)
        for i in sorted(touched):
            rep = replicas[i]
            if rep.busy is None:
                it = rep.schedule(now)
                if it is not None:
                    seq += 1
                    heapq.heappush(events, (it.end, _ITER_END, seq, i))
                    if record:
                        log.append(it)
    return _result(workload, config, policy, state, replicas, routed, decoded, log if record else None)


def _result(workload, config, policy, state, replicas, routed, decoded, log) -> ServingResult:
    m = workload.output_tokens
    counts = np.fromiter((len(t) for t in state.times), np.int64, count=workload.n)
    if np.any(counts != m):
        i = int(np.flatnonzero(counts != m)[0])
        raise InvalidStateError(f"request {i} emitted {counts[i]} of its {m[i]} tokens (a bug in the serving model)")
    offsets = np.concatenate([[0], np.cumsum(m)]).astype(np.int64)
    times = np.fromiter((t for ts in state.times for t in ts), np.float64, count=int(offsets[-1]))
    end = float(times.max())
    for rep in replicas:
        rep.account(end)
    return ServingResult(
        workload=workload, config=config, order=policy.name, token_time=times, offsets=offsets, replica=routed,
        decode_replica=decoded, preemptions=np.asarray(state.preemptions, np.int64),
        swaps=np.asarray(state.swaps, np.int64),
        kv_block_seconds=np.array([r.block_seconds for r in replicas]),
        kv_peak=np.array([r.peak for r in replicas], np.int64),
        kv_capacity=np.full(len(replicas), config.num_blocks, np.int64),
        busy=np.array([r.busy_s for r in replicas]), iterations=np.array([r.iterations for r in replicas], np.int64),
        log=None if log is None else tuple(sorted(log, key=lambda it: (it.start, it.replica))))


def request_rate(workload: Workload) -> float:
    """Mean arrival rate, requests/s: ``(N − 1) / (last arrival − first arrival)`` (inverse mean inter-arrival)."""
    span = float(workload.arrival[-1] - workload.arrival[0])
    if workload.n < 2 or not span > 0:
        raise InvalidInputError(f"Argument `workload` needs >= 2 requests over a positive span to have a rate, but "
                                f"has {workload.n} over {span} s")
    return (workload.n - 1) / span


def at_rate(workload: Workload, rate: float) -> Workload:
    """``workload`` re-timed to ``rate`` requests/s: arrivals scaled about the first (gaps keep their pattern).

    Example:
        >>> wl = Workload.from_arrays(arrival=[1.0, 3.0, 5.0], prompt_tokens=1, output_tokens=1, llm=True)
        >>> at_rate(wl, 2.0).arrival.tolist()
        [1.0, 1.5, 2.0]
    """
    if isinstance(rate, bool) or not (isinstance(rate, (int, float, np.integer, np.floating)) and math.isfinite(rate)
                                      and rate > 0):
        raise ConfigurationError(f"Argument `rate` must be a finite number of requests/s > 0, but is {rate!r}")
    t0 = float(workload.arrival[0])
    return workload.replace(arrival=t0 + (workload.arrival - t0) * (request_rate(workload) / float(rate)))


def goodput(workload: Workload, config: ServingConfig = ServingConfig(), *, ttft_slo: float | None = None,
            tpot_slo: float | None = None, rates: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
            target: float = 0.9, bisections: int = 4, full_sweep: bool = False, order: str | GlobalQueue = "fifo",
            aging: float = 0.0) -> dict:
    """DistServe's goodput: the highest request rate at which at least ``target`` of the requests meet both SLOs.

    ``workload`` is re-timed to each rate (:func:`at_rate`) and served. The rates ``rates`` (ascending) are
    tried first, up to the first that fails (all of them with ``full_sweep``); between the last rate that
    meets the target below the first that fails (0 if the first fails) and that failing rate, ``bisections``
    halvings follow. If no rate fails, the goodput is the largest tried and ``capped`` is True (the true
    goodput is higher). Attainment need not fall monotonically with the rate; the bracket is the first failure.

    Args:
        ttft_slo, tpot_slo: SLOs in s (at least one); a request meets the TPOT SLO trivially with one token.
        rates: requests/s, ascending. target: fraction of requests, in (0, 1].
        bisections: halvings of the bracket after the sweep.
        full_sweep: run every rate of ``rates`` (a rate curve), not only those up to the first failure.
        order, aging: as in :func:`serve`.

    Returns:
        ``{"goodput": requests/s, "capped": bool, "rows": [{"rate": requests/s, **serving_metrics}]}``, the rows
        in the order run (the sweep, then the bisection).

    Example:
        >>> wl = Workload.from_arrays(arrival=[0.0, 1.0, 2.0], prompt_tokens=100, output_tokens=4, llm=True)
        >>> goodput(wl, ttft_slo=0.2, tpot_slo=0.1, rates=(1.0, 10.0))["goodput"]
        10.0
    """
    from qsn.scheduler.serving_metrics import serving_metrics

    if ttft_slo is None and tpot_slo is None:
        raise ConfigurationError("Arguments `ttft_slo` and `tpot_slo` are both None; goodput needs at least one SLO")
    if not (isinstance(target, (int, float)) and 0 < target <= 1):
        raise ConfigurationError(f"Argument `target` must be a fraction in (0, 1], but is {target!r}")
    rates = [float(r) for r in rates]
    if not rates or any(b <= a for a, b in zip(rates, rates[1:])) or rates[0] <= 0:
        raise ConfigurationError(f"Argument `rates` must be positive and strictly ascending, but is {rates}")
    _integer("bisections", bisections, 0)
    rows: list[dict] = []

    def meets(rate: float) -> bool:
        m = serving_metrics(serve(at_rate(workload, rate), config, order=order, aging=aging), ttft_slo=ttft_slo,
                            tpot_slo=tpot_slo)
        rows.append({"rate": rate, **m})
        return m["slo_attainment"] >= target

    lo, hi = 0.0, None
    for rate in rates:
        if hi is not None and not full_sweep:
            break
        ok = meets(rate)
        if hi is None:
            lo, hi = (rate, None) if ok else (lo, rate)
    if hi is None:
        return {"goodput": lo, "capped": True, "rows": rows}
    for _ in range(bisections):
        mid = 0.5 * (lo + hi)
        if meets(mid):
            lo = mid
        else:
            hi = mid
    return {"goodput": lo, "capped": False, "rows": rows}


def run(workload: Workload, config: ServingConfig = ServingConfig(), *, order: str | GlobalQueue = "fifo",
        aging: float = 0.0, ttft_slo: float | None = None, tpot_slo: float | None = None) -> dict[str, float]:
    """Serve ``workload`` and return its metrics (:func:`~qsn.scheduler.serving_metrics.serving_metrics`), as a
    flat dict for reports and ``--json`` (the hook a ``qsn schedule --serving`` option would call)."""
    from qsn.scheduler.serving_metrics import serving_metrics

    return serving_metrics(serve(workload, config, order=order, aging=aging), ttft_slo=ttft_slo, tpot_slo=tpot_slo)
