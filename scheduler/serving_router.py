"""The global router of an LLM deployment: which replica of a pool a request goes to, decided when it arrives.

A :class:`Router` sees the pool's replicas as they are at that instant (each with ``outstanding``, the
requests routed to it and not yet gone, and ``kv_load``, the fraction of its KV blocks in use or needed by
its queued requests) and returns a position in the pool. Vidur's global schedulers, plus a memory-aware one:

* :class:`RoundRobin` — the k-th request routed goes to replica ``k mod P``;
* :class:`LeastOutstanding` — fewest outstanding requests (ties: lowest position);
* :class:`LeastKV` — lowest ``kv_load`` (ties: fewest outstanding, then lowest position).

A disaggregated deployment has one router per pool (prefill at arrival, decode at hand-off).

Example:
    >>> from types import SimpleNamespace as R
    >>> pool = [R(outstanding=3, kv_load=0.1), R(outstanding=1, kv_load=0.5)]
    >>> LeastOutstanding().route(0, 0.0, pool), LeastKV().route(0, 0.0, pool)
    (1, 0)
"""

from __future__ import annotations

import abc
from typing import Sequence

__all__ = ["Router", "RoundRobin", "LeastOutstanding", "LeastKV", "ROUTERS"]


class Router(abc.ABC):
    """Picks a replica for each request; one instance serves one pool of one run."""

    name: str = "router"

    @abc.abstractmethod
    def route(self, request: int, now: float, pool: Sequence) -> int:
        """The position in ``pool`` (replicas with ``outstanding`` and ``kv_load``) for ``request`` at ``now`` (s)."""


class RoundRobin(Router):
    """Replicas in turn, in routing order."""

    name = "round_robin"

    def __init__(self) -> None:
        self._count = 0

    def route(self, request: int, now: float, pool: Sequence) -> int:
        k = self._count % len(pool)
        self._count += 1
        return k


class LeastOutstanding(Router):
    """Fewest outstanding requests (Vidur's ``lor``); ties to the lowest position."""

    name = "least_outstanding"

    def route(self, request: int, now: float, pool: Sequence) -> int:
        return min(range(len(pool)), key=lambda i: (pool[i].outstanding, i))


class LeastKV(Router):
    """Lowest KV load (blocks in use plus blocks queued requests need, over capacity); ties by outstanding."""

    name = "least_kv"

    def route(self, request: int, now: float, pool: Sequence) -> int:
        return min(range(len(pool)), key=lambda i: (pool[i].kv_load, pool[i].outstanding, i))


ROUTERS: dict[str, type[Router]] = {c.name: c for c in (RoundRobin, LeastOutstanding, LeastKV)}
