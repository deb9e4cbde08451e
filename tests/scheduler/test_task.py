"""qsn.scheduler.task: subsets keep every per-item column and the pairwise data that belongs to them;
``topological_order`` equals the lexicographically smallest order that respects the edges (brute force over
all permutations, n <= 7), respects the edges on larger DAGs, and a cycle is rejected."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qsn.errors import InvalidInputError
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


def _smallest_topological_order(n: int, edges: np.ndarray) -> list[int]:
    """Brute force: the lexicographically smallest permutation in which every edge (a, b) has a before b."""
    perms = np.array(list(itertools.permutations(range(n))), np.int64).reshape(-1, n)  # lexicographic
    pos = np.argsort(perms, axis=1)  # pos[k, t]: position of task t in permutation k
    ok = np.ones(len(perms), bool)
    for a, b in edges.tolist():
        ok &= pos[:, a] < pos[:, b]
    return perms[np.argmax(ok)].tolist() if ok.any() else []


def _assert_topological(order: np.ndarray, n: int, edges: np.ndarray) -> None:
    assert sorted(order.tolist()) == list(range(n))  # a permutation of the tasks
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    for a, b in edges.tolist():
        assert pos[a] < pos[b], (a, b)


def test_topological_order_is_the_smallest_one_forward_and_not():
    # "arrival order breaks ties": among the orders that respect the edges, the one that takes the earliest
    # arrival (lowest index) first at every step, i.e. the lexicographically smallest one (brute force, n <= 7)
    rng = np.random.default_rng(0)
    backwards = 0
    for _ in range(100):
        n = int(rng.integers(1, 8))
        a, b = rng.integers(0, n, (2, int(rng.integers(0, 10))))
        keep = a != b
        forward = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)[keep]  # index order is topological
        wl = Workload.from_arrays(arrival=np.zeros(n), edges=forward)
        assert wl.topological_order().tolist() == _smallest_topological_order(n, wl.edges)
        # the same DAG relabelled by a random arrival order: edges may now point backwards
        wl2 = Workload.from_arrays(arrival=rng.permutation(n).astype(float), edges=forward)
        backwards += int((wl2.edges[:, 0] > wl2.edges[:, 1]).any()) if wl2.edges.size else 0
        assert wl2.topological_order().tolist() == _smallest_topological_order(n, wl2.edges)
    assert backwards > 20  # the general path (not only the all-forward shortcut) was exercised


def test_topological_order_respects_edges_on_larger_dags():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(10, 60))
        a, b = rng.integers(0, n, (2, 3 * n))
        keep = a != b
        forward = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)[keep]
        wl = Workload.from_arrays(arrival=rng.permutation(n).astype(float), edges=forward)
        _assert_topological(wl.topological_order(), n, wl.edges)


def test_a_cycle_is_rejected_at_construction():
    with pytest.raises(InvalidInputError, match="cycle"):
        Workload.from_arrays(arrival=np.zeros(3), edges=[(0, 1), (1, 2), (2, 0)])
