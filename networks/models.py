"""Reference networks of the field, each a function returning a ready (unbuilt) :class:`Network`.

Every model records its spikes in a :class:`SpikeMonitor` named ``"spikes"`` (one per population in
the microcircuit) unless ``monitor=False``. With ``delta = 0`` the neurons are classical LIF neurons;
with ``delta > 0`` the quantum observables ride along, and ``jump_rate > 0`` adds quantum-jump
spiking (needs nothing else: the network carries its own keys).

Our neuron resets to ``v_rest`` and is clamped there while refractory (DESIGN §1). Models whose
reset ``V_r`` differs from their leak reversal ``E_L`` are written with ``v_rest = V_r`` and a
constant current ``r_m I = E_L - V_r``: the same differential equation, the same reset.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from qsn.errors import ConfigurationError
from qsn.params import NeuronParams
from qsn.networks.connectivity import fixed_indegree, fixed_probability
from qsn.networks.group import NeuronGroup
from qsn.networks.inputs import CurrentInput, PoissonInput
from qsn.networks.monitors import SpikeMonitor
from qsn.networks.network import Network
from qsn.networks.projection import Projection
from qsn.networks.synapse import CondExp, Delta, PscExp

__all__ = ["cuba", "coba", "brunel", "BRUNEL_REGIMES", "microcircuit"]


def _uniform_v0(low: float, high: float, n: int):
    return lambda key: low + (high - low) * jax.random.uniform(key, (n,))


def _vogels_abbott(n: int, receptors: dict, we: float, wi: float, drive: float, p: float, quantum: dict,
                   mode: str, dtype: Any, monitor: bool) -> Network:
    n_exc = int(round(0.8 * n))
    params = NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=20.0, r_m=1.0, t_ref=5.0, dt=0.1, **quantum)
    net = Network(dtype=dtype)
    g = net.add(NeuronGroup(n, params, mode, receptors=receptors, v0=_uniform_v0(-60.0, -50.0, n), name="neurons"))
    net.add(Projection(g[:n_exc], g, fixed_probability(p), weight=we, receptor="exc", name="exc"))
    net.add(Projection(g[n_exc:], g, fixed_probability(p), weight=wi, receptor="inh", name="inh"))
    net.add(CurrentInput(g, drive))
    if monitor:
        net.add(SpikeMonitor(g, name="spikes"))
    return net


def cuba(n: int = 4000, *, p: float = 0.02, delta: float = 0.0, t2: float = math.inf, jump_rate: float = 0.0,
         mode: str = "pure", dtype: Any = np.float32, monitor: bool = True) -> Network:
    """Vogels & Abbott (2005) current-based network as in Brian2's ``examples/CUBA.py``.

    ``n`` neurons (80% excitatory), random connectivity with probability ``p`` (autapses allowed, as
    Brian2's ``connect(p=...)``), ``tau_m = 20`` ms, threshold -50 mV, reset -60 mV, leak reversal
    -49 mV (a constant 11 mV drive above the reset), refractory 5 ms, exponential currents with
    ``tau_e = 5``, ``tau_i = 10`` ms and jumps ``w_e = 1.62`` mV, ``w_i = -9`` mV; V starts uniform in
    [-60, -50) mV; dt = 0.1 ms.
    """
    return _vogels_abbott(n, {"exc": PscExp(5.0), "inh": PscExp(10.0)}, 60 * 0.27 / 10, -20 * 4.5 / 10, 11.0, p,
                          dict(delta=delta, t2=t2, jump_rate=jump_rate), mode, dtype, monitor)


def coba(n: int = 4000, *, p: float = 0.02, delta: float = 0.0, t2: float = math.inf, jump_rate: float = 0.0,
         mode: str = "pure", dtype: Any = np.float32, monitor: bool = True) -> Network:
    """Vogels & Abbott (2005) conductance-based network in the benchmark form of Brette et al. (2007)
    used by Brian2 and BrainPy: as :func:`cuba` but with leak reversal -60 mV, a 20 mV drive,
    conductances (relative to the leak) with ``tau_e = 5``, ``tau_i = 10`` ms, reversal 0 and -80 mV,
    jumps ``w_e = 0.6`` and ``w_i = 6.7``, integrated with exponential Euler."""
    receptors = {"exc": CondExp(5.0, 0.0), "inh": CondExp(10.0, -80.0)}
    return _vogels_abbott(n, receptors, 6.0 / 10, 67.0 / 10, 20.0, p, dict(delta=delta, t2=t2, jump_rate=jump_rate),
                          mode, dtype, monitor)


# (g, eta) of the four regimes of Brunel (2000), Fig. 8
BRUNEL_REGIMES = {
    "SR": (3.0, 2.0),  # synchronous regular
    "AI": (5.0, 2.0),  # asynchronous irregular
    "SI_fast": (6.0, 4.0),  # synchronous irregular, fast oscillation
    "SI_slow": (4.5, 0.9),  # synchronous irregular, slow oscillation
}


def brunel(n: int = 12_500, g: float = 5.0, eta: float = 2.0, *, indegree: int | None = None, j: float = 0.1,
           delay: float = 1.5, delta: float = 0.0, t2: float = math.inf, jump_rate: float = 0.0, mode: str = "pure",
           dtype: Any = np.float32, monitor: bool = True) -> Network:
    """Brunel (2000) sparse balanced network of delta-synapse LIF neurons (NEST's ``brunel_delta``).

    ``n`` neurons, 80% excitatory; each neuron receives ``C_E = indegree`` (default ``0.1 N_E``)
    excitatory and ``C_I = C_E/4`` inhibitory synapses (fixed in-degree), of ``J = j`` and ``-g J`` mV,
    with delay ``delay`` ms, plus ``C_E`` external Poisson inputs of rate ``eta * nu_th``,
    ``nu_th = theta / (J C_E tau_m)``. ``tau_m = 20`` ms, ``theta = 20`` mV, reset 10 mV, leak reversal
    0 mV, refractory 2 ms, dt = 0.1 ms; V starts uniform in [10, 20) mV. Regimes: :data:`BRUNEL_REGIMES`.

    NEST delivers a spike of delay ``d`` in the update of step ``k + d``; our schedule (Brian2's)
    lets it act from step ``k + d + 1``, so ``delay`` here is NEST's delay minus one step.
    """
    if n < 5:
        raise ConfigurationError(f"brunel: n must be >= 5, but is {n!r}")
    n_exc = int(round(0.8 * n))
    c_e = int(round(0.1 * n_exc)) if indegree is None else int(indegree)
    c_i = max(1, int(round(c_e / 4)))
    theta, tau_m = 20.0, 20.0
    nu_th = theta / (j * c_e * tau_m)  # 1/ms
    params = NeuronParams(v_rest=10.0, v_th=theta, tau_m=tau_m, r_m=1.0, t_ref=2.0, dt=0.1, delta=delta, t2=t2,
                          jump_rate=jump_rate)
    net = Network(dtype=dtype)
    cells = net.add(NeuronGroup(n, params, mode, receptors={"exc": Delta(), "inh": Delta()},
                                v0=_uniform_v0(10.0, 20.0, n), name="neurons"))
    net.add(Projection(cells[:n_exc], cells, fixed_indegree(c_e), weight=j, delay=delay, receptor="exc", name="exc"))
    net.add(Projection(cells[n_exc:], cells, fixed_indegree(c_i), weight=-g * j, delay=delay, receptor="inh", name="inh"))
    net.add(CurrentInput(cells, -10.0))  # leak reversal 0 mV below the 10 mV reset
    net.add(PoissonInput(cells, "exc", rate=eta * nu_th * 1e3, weight=j, n_inputs=c_e))
    if monitor:
        net.add(SpikeMonitor(cells, name="spikes"))
    return net


def microcircuit(scale: float = 1.0, **kwargs: Any) -> Network:
    """Potjans & Diesmann (2014) cortical microcircuit (not built yet)."""
    raise NotImplementedError("microcircuit is being written")
