"""GPUs of the nodes while a simulation runs: whole GPUs and shares of one GPU (GPU-sharing pods).

A node with G GPUs holds G free fractions in [0, 1]. A task's GPU demand ``g`` (``Workload.gpu``) is placed
on one node as follows:

* ``g == 0``: no GPU;
* ``0 < g < 1``: a share ``g`` of one GPU, best fit: the GPU with the least free share that still holds ``g``
  (ties: the lowest index), as GPU-sharing schedulers pack fractional pods to keep whole GPUs free;
* ``g >= 1`` (a whole number): ``g`` GPUs with nothing on them (free share 1), lowest indices first.

So two pods of 0.6 never share a GPU, and a node whose GPUs all carry a share cannot take a whole-GPU pod
(fragmentation), which a single per-node GPU sum would miss.

Example:
    >>> import numpy as np
    >>> pool = GpuPool(np.array([2]))
    >>> a = pool.take(0, 0.6); b = pool.take(0, 0.6)     # one GPU each: 0.6 + 0.6 > 1
    >>> a.tolist(), b.tolist(), bool(pool.fits(1.0)[0]), bool(pool.fits(0.4)[0])
    ([0], [1], False, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["GpuPool"]

_EPS = 1e-9  # shares are sums of thousandths: a share that fills a GPU exactly must still fit


class GpuPool:
    """Free GPU shares of W nodes, updated as tasks start and stop.

    Args:
        gpus: (W,) int, GPUs per node (0 = none).
    """

    def __init__(self, gpus: np.ndarray):
        counts = np.asarray(gpus, np.int64)
        self.free = [np.ones(int(g)) for g in counts]  # per node, (G,) float64 free share of each GPU
        self.whole = counts.copy()  # (W,) int64, GPUs with nothing on them
        self.largest = (counts > 0).astype(np.float64)  # (W,) float64, the largest free share on a GPU

    def fits(self, demand: float) -> np.ndarray:
        """(W,) bool: nodes that can place ``demand`` now (always True for 0)."""
        if demand <= 0:
            return np.ones(self.whole.shape, bool)
        if demand < 1:
            return self.largest >= demand - _EPS
        return self.whole >= int(demand)

    def take(self, node: int, demand: float) -> np.ndarray:
        """Place ``demand`` on ``node`` (which must fit it) and return the (k,) indices of the GPUs used."""
        free = self.free[node]
        if demand <= 0:
            return np.zeros(0, np.int64)
        if demand < 1:
            ok = np.flatnonzero(free >= demand - _EPS)
            idx = ok[np.argmin(free[ok])][None]  # argmin keeps the lowest index among ties
        else:
            idx = np.flatnonzero(free >= 1 - _EPS)[: int(demand)]
        if idx.size == 0 or (demand >= 1 and idx.size < int(demand)):
            raise RuntimeError(f"GpuPool.take: node {node} cannot place a GPU demand of {demand}")  # a caller bug
        free[idx] -= min(demand, 1.0)
        self._refresh(node)
        return idx

    def release(self, node: int, idx: np.ndarray, demand: float) -> None:
        """Give back what :meth:`take` placed on GPUs ``idx`` of ``node``."""
        if idx.size:
            free = self.free[node]
            free[idx] = np.minimum(free[idx] + min(demand, 1.0), 1.0)
            self._refresh(node)

    def _refresh(self, node: int) -> None:
        free = self.free[node]
        self.whole[node] = int(np.count_nonzero(free >= 1 - _EPS))
        self.largest[node] = float(free.max()) if free.size else 0.0
