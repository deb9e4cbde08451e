"""GPU count, GPU share and CPU cores as resources (qsn.scheduler.gpus, the simulator, the Alibaba loaders).

Hand-computed schedules on one node, an invariant check on random pods (no node ever over its GPUs, GPU shares
or cores at any instant, recomputed here from the schedule alone), eligibility and input errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from qsn.errors import ConfigurationError, InvalidInputError
from qsn.scheduler import Cluster, Worker, Workload, simulate, workloads
from qsn.scheduler.metrics import resource_utilisation
from qsn.scheduler.policy import Fifo


def _node(gpus: int, cpu: float = np.inf, slots: int = 10) -> Cluster:
    return Cluster.from_workers([Worker(slots=slots, gpus=gpus, cpu=cpu)])


def test_best_fit_puts_two_halves_on_one_gpu():
    # A (0.5, 4 s) -> GPU 0; B (0.5, 2 s) best fit -> GPU 0 too; C (whole, 3 s) -> GPU 1 at 0; D (whole, 1 s)
    # waits for a whole GPU: C frees GPU 1 at 3 -> D 3..4. (Spreading B to GPU 1 would finish C at 5, D at 5.)
    wl = Workload.from_arrays(arrival=np.zeros(4), work=[4.0, 2.0, 3.0, 1.0], gpu=[0.5, 0.5, 1.0, 1.0])
    s = simulate(wl, _node(2), Fifo())
    assert s.finish.tolist() == [4.0, 2.0, 3.0, 4.0]


def test_shares_do_not_add_across_gpus():
    # A, B (0.6 each) take one GPU each; E (0.8) fits the 0.8 left in total but on no single GPU: it waits for B
    wl = Workload.from_arrays(arrival=np.zeros(3), work=[4.0, 2.0, 1.0], gpu=[0.6, 0.6, 0.8])
    assert simulate(wl, _node(2), Fifo()).finish.tolist() == [4.0, 2.0, 3.0]


def test_cpu_cores_and_whole_gpus_both_bind():
    # 4 GPUs, 8 cores: two 2-GPU pods of 6 cores each fit the GPUs but not the cores together
    wl = Workload.from_arrays(arrival=np.zeros(2), work=[2.0, 2.0], gpu=[2.0, 2.0], cpu=[6.0, 6.0])
    assert simulate(wl, _node(4, cpu=8.0), Fifo()).finish.tolist() == [2.0, 4.0]
    wl = wl.replace(cpu=np.array([4.0, 4.0]))
    assert simulate(wl, _node(4, cpu=8.0), Fifo()).finish.tolist() == [2.0, 2.0]


def test_no_node_is_ever_over_its_gpus_shares_or_cores():
    rng = np.random.default_rng(0)
    n = 300
    gpu = rng.choice([0.0, 0.25, 0.5, 0.6, 1.0, 2.0, 4.0], n)
    wl = Workload.from_arrays(arrival=np.sort(rng.uniform(0, 50, n)), work=rng.exponential(3.0, n), gpu=gpu,
                              cpu=rng.uniform(0.5, 6.0, n))
    cl = Cluster.from_workers([Worker(slots=16, gpus=g, cpu=c) for g, c in ((4, 16.0), (8, 32.0), (2, 8.0))])
    s = simulate(wl, cl, Fifo())
    for t in np.unique(s.start):
        on = (s.start <= t) & (t < s.finish)
        for w in range(cl.n):
            here = on & (s.worker == w)
            assert wl.cpu[here].sum() <= cl.cpu[w] + 1e-9
            whole, shares = wl.gpu[here & (wl.gpu >= 1)].sum(), np.sort(wl.gpu[here & (wl.gpu > 0) & (wl.gpu < 1)])
            assert whole + np.ceil(shares.sum()) <= cl.gpus[w] + 1e-9 or _first_fit_packs(shares, cl.gpus[w] - whole)


def _first_fit_packs(shares: np.ndarray, bins: float) -> bool:
    """Whether the shares fit in ``bins`` GPUs of capacity 1 (exhaustive check for these small sets)."""
    load = np.zeros(int(bins))
    for x in sorted(shares, reverse=True):
        fits = np.flatnonzero(load + x <= 1 + 1e-9)
        if not fits.size:
            return False
        load[fits[np.argmax(load[fits])]] += x
    return True


def test_eligibility_counts_gpus_and_cores():
    wl = Workload.from_arrays(arrival=np.zeros(4), gpu=[4.0, 0.5, 0.0, 1.0], cpu=[1.0, 1.0, 9.0, 1.0])
    cl = Cluster.from_workers([Worker(gpus=2, cpu=8.0), Worker(gpus=0, cpu=16.0)])
    assert cl.eligible(wl).tolist() == [[False, False], [True, False], [False, True], [True, False]]
    with pytest.raises(ConfigurationError, match="Task 0 .* fits no worker"):
        simulate(wl, cl, Fifo())


def test_a_gpu_demand_above_one_must_be_whole():
    with pytest.raises(InvalidInputError, match=r"`gpu` must be below 1 .* gpu\[1\] = 1.5"):
        Workload.from_arrays(arrival=[0.0, 1.0], gpu=[1.0, 1.5])


def test_resource_utilisation_by_hand():
    # one node, 2 GPUs, 4 cores: A (0.5 GPU, 1 core, 2 s) and B (1 GPU, 2 cores, 4 s) from t = 0; run = 4 s
    wl = Workload.from_arrays(arrival=[0.0, 0.0], work=[2.0, 4.0], gpu=[0.5, 1.0], cpu=[1.0, 2.0], memory=[1.0, 1.0])
    cl = Cluster.from_workers([Worker(slots=2, gpus=2, cpu=4.0, memory=8.0)])
    u = resource_utilisation(wl, cl, simulate(wl, cl, Fifo()))
    assert u == pytest.approx({"slots": 6 / 8, "gpu": 5 / 8, "cpu": 10 / 16, "memory": 6 / 32})
    assert resource_utilisation(wl, cl, simulate(wl, cl, Fifo()), (1.0, 3.0))["gpu"] == pytest.approx(2.5 / 4)


ALIBABA = [workloads.shared_trace(f) for f in workloads.TRACES["alibaba"]]


@pytest.mark.skipif(None in ALIBABA, reason="shared Alibaba traces absent")
def test_alibaba_loaders_read_gpu_share_and_cpu():
    import csv

    pods, nodes = workloads.alibaba_pods(ALIBABA[0]), workloads.alibaba_nodes(ALIBABA[1])
    rows = [r for r in csv.DictReader(open(ALIBABA[0])) if r["pod_phase"] in ("Succeeded", "Failed") and r["scheduled_time"]]
    rows.sort(key=lambda r: float(r["creation_time"]))  # stable, like the loader
    want_gpu = [int(r["gpu_milli"]) / 1000 if r["num_gpu"] == "1" else int(r["num_gpu"]) for r in rows]
    assert pods.n == len(rows) and pods.gpu.tolist() == want_gpu
    assert pods.cpu.tolist() == [int(r["cpu_milli"]) / 1000 for r in rows]
    n = list(csv.DictReader(open(ALIBABA[1])))
    assert nodes.gpus.tolist() == [int(r["gpu"]) for r in n] and nodes.cpu.tolist() == [int(r["cpu_milli"]) / 1000 for r in n]
    # every pod asks for at least one core, so one slot per whole core never binds before the cores do
    assert pods.cpu.min() >= 1.0 and nodes.slots.tolist() == [max(int(r["cpu_milli"]) // 1000, 1) for r in n]
