"""Workload and Cluster subsets keep every per-item column and the pairwise data that belongs to them."""

from __future__ import annotations

import numpy as np

from qsn.scheduler.task import Cluster, Worker, Workload


def test_cluster_subset_keeps_columns_and_the_fidelity_block():
    fid = np.array([[1.0, 0.2, 0.9], [0.2, 1.0, 0.5], [0.9, 0.5, 1.0]])
    cl = Cluster.from_workers([Worker(speed=1.0, slots=1, memory=4.0, qubits=5, kind=0),
                               Worker(speed=2.0, slots=2, memory=8.0, qubits=9, kind=1),
                               Worker(speed=3.0, slots=3, memory=16.0, qubits=27, kind=1)],
                              fidelity=fid, affinity=np.array([[1.0, 2.0]]), min_fidelity=0.8)
    sub = cl.subset([2, 0], name="two")
    np.testing.assert_array_equal(sub.speed, [3.0, 1.0])
    np.testing.assert_array_equal(sub.slots, [3, 1])
    np.testing.assert_array_equal(sub.memory, [16.0, 4.0])
    np.testing.assert_array_equal(sub.qubits, [27, 5])
    np.testing.assert_array_equal(sub.kind, [1, 0])
    np.testing.assert_array_equal(sub.fidelity, [[1.0, 0.9], [0.9, 1.0]])
    np.testing.assert_array_equal(sub.affinity, cl.affinity)
    assert sub.min_fidelity == 0.8 and sub.name == "two" and sub.n == 2
    # the subset behaves like the workers it holds: same eligibility columns
    wl = Workload.from_arrays(arrival=[0.0, 0.0], memory=[6.0, 2.0], qubits=[0, 7])
    np.testing.assert_array_equal(sub.eligible(wl), cl.eligible(wl)[:, [2, 0]])
    assert cl.subset([1]).fidelity.shape == (1, 1) and cl.replace(fidelity=None).subset([1]).fidelity is None


def _kahn_smallest_first(n: int, edges: np.ndarray) -> list[int]:
    import heapq

    indeg = [0] * n
    children: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges.tolist():
        indeg[b] += 1
        children[a].append(b)
    ready = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for c in children[i]:
            indeg[c] -= 1
            if indeg[c] == 0:
                heapq.heappush(ready, c)
    return order


def test_topological_order_equals_kahn_smallest_first_forward_and_not():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(1, 25))
        a, b = rng.integers(0, n, (2, int(rng.integers(0, 30))))
        keep = a != b
        forward = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)[keep]  # index order is topological
        wl = Workload.from_arrays(arrival=np.zeros(n), edges=forward)
        assert wl.topological_order().tolist() == _kahn_smallest_first(n, wl.edges)
        # the same DAG relabelled by a random arrival order: edges may now point backwards
        wl2 = Workload.from_arrays(arrival=rng.permutation(n).astype(float), edges=forward)
        assert wl2.topological_order().tolist() == _kahn_smallest_first(n, wl2.edges)
