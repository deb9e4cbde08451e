"""Memory preflight (qsn.memory): estimates, the memory available, and the errors raised before allocating.

The budgets are shrunk with ``monkeypatch`` so that no test allocates anything large: a preflight that
did not run would build the (small) state and the ``pytest.raises`` would fail.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsn
import qsn.memory as memory
from qsn.errors import MemoryBudgetError, QSNError
from qsn.networks import Network, NeuronGroup, Projection, all_to_all, fixed_indegree, fixed_probability, normal
from qsn.networks.connectivity import estimate, explicit, fixed_total_number, one_to_one
from qsn.state import state_bytes

MiB = 2**20


@pytest.fixture
def budget(monkeypatch):
    """``budget(usable)``: make every preflight see ``usable`` bytes (of 1.25 x that free) of host memory."""

    def set_budget(usable: int) -> None:
        monkeypatch.setattr(memory, "available_bytes", lambda device=None: (usable, usable * 5 // 4, "host memory"))

    return set_budget


def test_format_and_largest_fit():
    assert memory.format_bytes(512) == "512 B"
    assert memory.format_bytes(1536) == "1.5 KiB"
    assert memory.format_bytes(3 * 2**30) == "3.0 GiB"
    assert memory.format_bytes(280e9) == "260.8 GiB"
    # floor((10 GiB) / 24 B) = 447,392,426, rounded down to two significant digits
    assert memory.largest_fit(10 * 2**30, 24) == 440_000_000
    assert memory.largest_fit(1000, 24, fixed=40) == 40
    assert memory.largest_fit(10, 24) == 0


def test_memory_budget_error_is_a_memory_error():
    assert issubclass(MemoryBudgetError, MemoryError) and issubclass(MemoryBudgetError, QSNError)


class _Device:
    platform, id = "gpu", 3

    def __init__(self, stats):
        self.stats = stats

    def memory_stats(self):
        return self.stats


def test_available_bytes_reads_device_statistics_or_the_host():
    usable, free, where = memory.available_bytes(_Device({"bytes_limit": 1000, "bytes_in_use": 200}))
    assert (free, where) == (800, "memory of gpu:3") and usable == int(800 * memory.DEVICE_SHARE)
    host = memory.host_available_bytes()
    usable, free, where = memory.available_bytes(_Device(None))  # no statistics (the CPU backend): the host's
    assert where == "host memory" and 0 < free and usable == int(free * memory.HOST_SHARE)
    assert abs(free - host) < 2**30  # read twice, a moment apart


def test_init_state_refused_before_allocating(budget):
    budget(1 * MiB)
    # 6 arrays of 4 bytes per neuron: 24e6 B = 22.9 MiB; 1 MiB / 24 B = 43,690 -> 43,000
    with pytest.raises(
        MemoryBudgetError,
        match=r"init_state\(n=1000000\) needs 22\.9 MiB for 6 \(n,\) float32/int32 arrays, more than the 1\.0 MiB of "
        r"host memory it may take \(80% of the 1\.2 MiB free\); at most n = 43,000 fits",
    ):
        qsn.init_state(qsn.NeuronParams(), 1_000_000)
    with pytest.raises(MemoryBudgetError, match=r"needs 19\.1 MiB for 5 \(n,\) float32/int32 arrays.*at most n = 52,000"):
        qsn.init_state(qsn.NeuronParams(), 1_000_000, mode="mixed")
    # a per-neuron Bloch vector is converted beside the state: 20 + 12 bytes per neuron, 1 MiB / 32 B = 32,768
    with pytest.raises(MemoryBudgetError, match=r"and the initial values.*at most n = 32,000 fits"):
        qsn.init_state(qsn.NeuronParams(), 40_000, mode="mixed", bloch0=np.zeros((3, 40_000)))
    assert qsn.init_state(qsn.NeuronParams(), 40_000).v.shape == (40_000,)  # 0.9 MiB fits


def test_init_state_of_ten_billion_fails_at_once():
    # the real budget of this machine: 2.2e11 B never fits, and the answer comes before any allocation
    start = time.perf_counter()
    with pytest.raises(MemoryBudgetError, match=r"init_state\(n=10000000000\) needs 223\.5 GiB.*at most n = [\d,]+ fits"):
        qsn.init_state(qsn.NeuronParams(), 10**10)
    assert time.perf_counter() - start < 5.0


def test_state_bytes():
    assert state_bytes(1000, "pure", jnp.float32) == 24_000
    assert state_bytes(1000, "mixed", jnp.float32) == 20_000


@pytest.mark.parametrize(
    "rule, n_pre, n_post, expected",
    [
        (all_to_all(), 30, 20, (600, 20)),
        (one_to_one(), 7, 7, (7, 1)),
        (fixed_indegree(5), 100, 40, (200, 7)),  # rows of pre: mean 200/100 = 2, + 3 sd = 2 + 3 sqrt(2) -> 7
        (fixed_total_number(100), 10, 10, (100, 20)),  # mean 10 + 3 sqrt(10) = 19.5 -> 20
        (explicit([0, 0, 0, 2], [1, 2, 3, 0]), 3, 4, (4, 3)),
        (fixed_probability(0.1), 1000, 1000, (100_000, 129)),  # 100 + 3 sqrt(100 x 0.9) = 128.5
    ],
)
def test_connectivity_estimates(rule, n_pre, n_post, expected):
    assert estimate(rule, n_pre, n_post) == expected


def _net(delay=1.0, n: int = 1000, rule=None) -> Network:
    net = Network()
    g = net.add(NeuronGroup(n, qsn.NeuronParams(delta=0.0), name="g"))
    net.add(Projection(g, g, rule or fixed_probability(0.01), delay=delay, name="p"))
    return net


def test_network_ring_buffers_refused_before_drawing(budget):
    budget(64 * MiB)
    # a delay of 1e7 ms is a ring of 1e8 + 1 slots x 2 receptors x 1000 neurons x 4 B = 745 GiB
    with pytest.raises(
        MemoryBudgetError,
        match=r"Network\.build needs 745\.\d GiB, more than the 64\.0 MiB of host memory it may take.*745\.\d GiB for the "
        r"ring buffers of group 'g' \(2 receptors x 100,000,001 slots x 1,000 neurons, float32; longest delay 1e\+07 ms\)"
        r".*; at most a longest delay of [\d.]+ ms into group 'g' fits",
    ):
        _net(delay=1e7).build(jax.random.key(0))


def test_network_drawn_delays_checked_before_the_rings(budget):
    # a normal delay has no bound before drawing: the second check, with the drawn delays, refuses it
    budget(64 * MiB)
    net = _net(delay=normal(1e5, 1.0), n=100)
    with pytest.raises(MemoryBudgetError, match=r"ring buffers of group 'g' \(2 receptors x 1,000,0\d\d slots"):
        net.build(jax.random.key(0))
    assert not net._built


def test_network_connectivity_refused_before_drawing(budget):
    budget(64 * MiB)
    with pytest.raises(
        MemoryBudgetError,
        match=r"Network\.build needs [\d.]+ TiB.*for the synapses of projection 'p' \(~500,000,000,000, with the list being "
        r"drawn\).*; at most ~[\d,]+ synapses fit in projection 'p'",
    ):
        _net(n=1_000_000, rule=fixed_probability(0.5)).build(jax.random.key(0))


def test_network_group_state_refused(budget):
    budget(64 * MiB)
    net = Network()
    net.add(NeuronGroup(10_000_000, name="big"))
    with pytest.raises(MemoryBudgetError, match=r"for the state of group 'big' \(n = 10,000,000\).*at most n = [\d,]+ fits in group 'big'"):
        net.build(jax.random.key(0))


def test_network_that_fits_builds(budget):
    budget(256 * MiB)
    net = _net(delay=1.5, n=200)
    net.build(jax.random.key(0))
    assert net.state.ring["g"].shape == (2, 16, 200)
