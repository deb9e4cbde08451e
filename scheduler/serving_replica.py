"""One LLM replica: its paged KV cache, its queues, and the iteration-level scheduler that forms each batch.

A request's life on a replica, in tokens (``l`` prompt tokens, ``m`` output tokens, ``g`` emitted so far):

* **prefill** writes ``target`` tokens into the KV cache (``target = l`` at first, ``l + g`` after a
  recompute preemption) and, when the last chunk is done, emits token ``g + 1`` (vLLM's convention: the
  prefill emits the first token, so TTFT is the time until the prefill is done);
* **decode step** ``k`` (``k = g``) writes token ``k``'s KV and emits token ``k + 1``; its context (DistServe's
  ``c``) is ``l + k``, the tokens in the cache after the step. A request alone thus takes ``prefill(l)`` and
  then ``m − 1`` decode steps at contexts ``l + 1 … l + m − 1``.

KV cache (vLLM's PagedAttention): ``num_blocks`` blocks of ``block_size`` tokens. A request is admitted only
when the blocks for its next step fit (``⌈target/block_size⌉`` for a prefill, reserved whole at admission;
``⌈(cached + 1)/block_size⌉`` for a decode); a decode that crosses a block boundary takes one more block.

Each iteration (:meth:`Replica.schedule`), with a budget of ``max_num_batched_tokens`` tokens and at most
``max_num_seqs`` running requests:

1. every running request in decode takes one token, oldest admitted first. When one needs a block and none is
   free, the **most recently admitted** running request not yet scheduled in this iteration is preempted (it
   may be the request itself), as vLLM does, until the block fits:
   *recompute* frees its blocks and puts it at the front of the waiting queue, to redo the prefill of its
   prompt and generated tokens; *swap* moves its blocks to the replica's CPU swap space (``swap_s_per_block``
   seconds per block, each way, added to the iteration; recompute when the swap space is full);
2. chunked prefill: running requests part-way through their prefill take chunks of at most the budget left
   after the decodes, oldest first;
3. unless this iteration preempted: swapped requests come back (FIFO, when all their blocks fit), then, once
   none is swapped out, waiting requests are admitted — preempted ones first, in the order they were
   preempted, then new ones in the replica's policy order — each with a chunk of the budget left (or one
   decode token); the first that does not fit stops admission (head of line).

Without chunked prefill (vLLM's default scheduler before chunking): an iteration admits whole prefills while
they fit the budget and runs them alone (prefill first), only when nothing is swapped out; otherwise it runs
the decodes (step 1), then swap-ins.

Tokens are emitted, blocks of finished requests freed, at the end of the iteration. Its duration is
:func:`~qsn.scheduler.serving_cost.iteration_seconds` plus the swap transfers.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import TYPE_CHECKING, Callable, NamedTuple

from qsn.errors import InvalidStateError
from qsn.scheduler.serving_cost import chunk_square, iteration_seconds

if TYPE_CHECKING:
    from qsn.scheduler.serving import ServingConfig

__all__ = ["RequestState", "Iteration", "Replica"]


class RequestState:
    """Mutable per-request state of one run, as Python lists indexed by request (scalar access is the hot path).

    Args:
        prompt: (N,) prompt tokens ``l``; output: (N,) output tokens ``m``.
    """

    def __init__(self, prompt, output) -> None:
        n = len(prompt)
        self.prompt = [int(x) for x in prompt]  # l, tokens
        self.output = [int(x) for x in output]  # m, tokens
        self.generated = [0] * n  # g, tokens emitted so far
        self.cached = [0] * n  # tokens in the KV cache
        self.target = list(self.prompt)  # prefill goal: in prefill while cached < target
        self.blocks = [0] * n  # KV blocks held (on the GPU, or in CPU swap space while swapped out)
        self.times: list[list[float]] = [[] for _ in range(n)]  # emission time of each token, s
        self.preemptions = [0] * n  # times preempted (either mode)
        self.swaps = [0] * n  # of which by swap


class Iteration(NamedTuple):
    """One iteration of one replica (what :meth:`Replica.schedule` formed)."""

    replica: int
    start: float  # s
    end: float  # s
    decodes: list[int]  # requests decoding one token each
    decode_context: int  # Σ their contexts after the step, tokens
    prefills: list[tuple[int, int, int]]  # (request, offset, chunk tokens)
    swap_blocks: int  # blocks moved to or from CPU swap space in this iteration
    preempted: list[int]  # requests preempted while forming it
    blocks_used: int  # GPU blocks in use during the iteration


class Replica:
    """A replica's KV cache, queues and scheduler (see the module docstring).

    Args:
        index: the replica's index in the run.
        role: ``"mixed"`` (prefill and decode), ``"prefill"`` (hands each request off after its prefill) or
            ``"decode"`` (receives prefilled requests; prefills only to recompute).
        config: the run's :class:`~qsn.scheduler.serving.ServingConfig`.
        state: the run's :class:`RequestState`, shared by every replica.
        key: the waiting-queue key of a request entering at ``now`` (lower first): a
            :class:`~qsn.scheduler.policy.GlobalQueue`'s ``key``.
    """

    def __init__(self, index: int, role: str, config: "ServingConfig", state: RequestState,
                 key: Callable[[int, float], float]) -> None:
        self.index, self.role, self.s, self.key = index, role, state, key
        self.bs = config.block_size
        self.capacity = config.num_blocks
        self.budget = config.max_num_batched_tokens
        self.max_seqs = config.max_num_seqs
        self.chunked = config.chunked_prefill
        self.swap = config.preemption == "swap"
        self.swap_cost = config.swap_s_per_block
        self.coef = config.coefficients
        self.free = self.capacity  # free GPU blocks
        self.swap_free = math.inf if config.swap_blocks is None else config.swap_blocks
        self.running: list[int] = []  # admission order
        self.front: deque[int] = deque()  # preempted by recompute, in preemption order
        self.heap: list[tuple[float, int, int]] = []  # (policy key, entry number, request)
        self.swapped: deque[int] = deque()
        self.outstanding = 0  # requests routed here and not yet gone (the router's count)
        self.queued_blocks = 0  # blocks the swapped and waiting requests need for their next step
        self.busy: Iteration | None = None  # the iteration in progress
        self.block_seconds = 0.0  # ∫ blocks in use dt, block·s
        self.peak = 0  # most GPU blocks in use at once
        self.busy_s = 0.0  # s spent in iterations
        self.iterations = 0
        self._t = 0.0  # time up to which block_seconds is accounted
        self._entries = 0

    # --- KV accounting -----------------------------------------------------------------------------------
    @property
    def kv_load(self) -> float:
        """(blocks in use + blocks the queued requests need) / capacity: what least-KV routing compares."""
        return (self.capacity - self.free + self.queued_blocks) / self.capacity

    def account(self, now: float) -> None:
        """Accumulate ``block_seconds`` up to ``now`` (call before the blocks in use change)."""
        self.block_seconds += (self.capacity - self.free) * (now - self._t)
        self._t = now

    def release(self, blocks: int, now: float) -> None:
        """Free ``blocks`` held for a request that left (a prefill replica's KV once transferred)."""
        self.account(now)
        self.free += blocks

    def need(self, r: int) -> int:
        """Blocks request ``r`` must hold for its next step (prefill: its whole target; decode: one more token)."""
        s, bs = self.s, self.bs
        if s.cached[r] < s.target[r]:
            return -(-s.target[r] // bs)
        return (s.cached[r] + bs) // bs

    # --- queues --------------------------------------------------------------------------------------------
    def enqueue(self, r: int, now: float) -> None:
        """Request ``r`` joins the waiting queue at ``now`` (key fixed now by the policy)."""
        self._entries += 1
        heapq.heappush(self.heap, (float(self.key(r, now)), self._entries, r))
        self.queued_blocks += self.need(r)

    def _head(self) -> int | None:
        if self.front:
            return self.front[0]
        return self.heap[0][2] if self.heap else None

    def _pop_head(self) -> int:
        return self.front.popleft() if self.front else heapq.heappop(self.heap)[2]

    def _preempt(self, r: int) -> int:
        """Preempt running request ``r`` (already removed from ``running``); returns blocks swapped out."""
        s = self.s
        b = s.blocks[r]
        s.preemptions[r] += 1
        self.free += b
        if self.swap and b <= self.swap_free:
            self.swap_free -= b
            s.swaps[r] += 1
            self.swapped.append(r)
            self.queued_blocks += self.need(r)
            return b
        s.blocks[r] = 0
        s.cached[r] = 0
        s.target[r] = s.prompt[r] + s.generated[r]
        self.front.append(r)
        self.queued_blocks += self.need(r)
        return 0

    # --- one iteration -------------------------------------------------------------------------------------
    def schedule(self, now: float) -> Iteration | None:
        """Form the next iteration at ``now`` (allocating blocks, preempting), or None when there is nothing to run."""
        s, bs = self.s, self.bs
        cached, target, blocks = s.cached, s.target, s.blocks
        self.account(now)
        run = self.running
        budget = self.budget
        decodes: list[int] = []
        prefills: list[tuple[int, int, int]] = []
        preempted: list[int] = []
        context = swapped_blocks = 0

        def admit(r: int, total: int) -> None:
            nonlocal budget, context
            self.free -= total
            blocks[r] = total
            run.append(r)
            c = cached[r]
            if c < target[r]:
                q = min(target[r] - c, budget)
                prefills.append((r, c, q))
                budget -= q
            else:
                decodes.append(r)
                context += c + 1
                budget -= 1

        if not self.chunked and not self.swapped:  # prefill first: whole prompts, alone
            while len(run) < self.max_seqs:
                r = self._head()
                if r is None or cached[r] >= target[r]:
                    break
                total = self.need(r)
                if total > self.free or target[r] - cached[r] > budget:
                    break
                self._pop_head()
                self.queued_blocks -= total
                admit(r, total)
            if prefills:
                return self._start(now, decodes, context, prefills, 0, preempted)

        j = 0
        while j < len(run):  # 1. decodes, oldest admitted first
            r = run[j]
            c = cached[r]
            if c < target[r]:
                j += 1
                continue
            extra = (c + bs) // bs - blocks[r]
            while extra > self.free:
                victim = run.pop()  # the most recently admitted not yet scheduled (maybe r itself)
                preempted.append(victim)
                swapped_blocks += self._preempt(victim)
                if victim == r:
                    break
            else:
                if extra:
                    self.free -= extra
                    blocks[r] += extra
                decodes.append(r)
                context += c + 1
                j += 1
        budget -= len(decodes)

        if self.chunked:  # 2. running prefills continue, with the budget left
            for r in run:
                c = cached[r]
                if c < target[r] and budget > 0:
                    q = min(target[r] - c, budget)
                    prefills.append((r, c, q))
                    budget -= q

        if not preempted:  # 3. swap-ins, then admissions
            while self.swapped and len(run) < self.max_seqs and budget > 0:
                r = self.swapped[0]
                total = self.need(r)
                if total > self.free:
                    break
                self.swapped.popleft()
                self.queued_blocks -= total
                self.swap_free += blocks[r]
                swapped_blocks += blocks[r]
                admit(r, total)
            while not self.swapped and len(run) < self.max_seqs and budget > 0:
                r = self._head()
                if r is None or (not self.chunked and cached[r] < target[r]):
                    break
                total = self.need(r)
                if total > self.free:
                    break
                self._pop_head()
                self.queued_blocks -= total
                admit(r, total)

        if not (decodes or prefills or swapped_blocks):
            return None
        return self._start(now, decodes, context, prefills, swapped_blocks, preempted)

    def _start(self, now, decodes, context, prefills, swapped_blocks, preempted) -> Iteration:
        tokens = sum(q for _, _, q in prefills)
        square = sum(chunk_square(p, q) for _, p, q in prefills)
        seconds = iteration_seconds(tokens, square, len(decodes), context, self.coef) + swapped_blocks * self.swap_cost
        used = self.capacity - self.free
        if used > self.capacity or self.free < 0:
            raise InvalidStateError(f"replica {self.index}: {used} KV blocks in use of {self.capacity} (a bug)")
        self.peak = max(self.peak, used)
        self.iterations += 1
        self.busy_s += seconds
        self.busy = Iteration(self.index, now, now + seconds, decodes, context, prefills, swapped_blocks,
                              preempted, used)
        return self.busy

    def complete(self, now: float) -> tuple[list[int], list[int]]:
        """End the iteration in progress at ``now``: emit its tokens, free finished requests' blocks.

        Returns ``(finished, handed_off)``: requests done, and (prefill role) requests whose prefill is done and
        that now go to a decode replica (their blocks stay held here until :meth:`release`).
        """
        it, self.busy = self.busy, None
        s = self.s
        cached, times, generated, output = s.cached, s.times, s.generated, s.output
        self.account(now)
        emitted = []
        for r in it.decodes:
            cached[r] += 1
            emitted.append(r)
        for r, p, q in it.prefills:
            cached[r] = p + q
            if cached[r] == s.target[r]:
                emitted.append(r)
        finished, handed = [], []
        for r in emitted:
            times[r].append(now)
            generated[r] += 1
            if generated[r] == output[r]:
                finished.append(r)
                self.free += s.blocks[r]
                s.blocks[r] = 0
            elif self.role == "prefill":
                handed.append(r)
            elif generated[r] > output[r]:
                raise InvalidStateError(f"request {r} emitted {generated[r]} of {output[r]} tokens (a bug)")
        if finished or handed:
            gone = set(finished) | set(handed)
            self.running = [r for r in self.running if r not in gone]
        return finished, handed
