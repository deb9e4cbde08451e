"""Brian2 builders of the networks that ``test_net_brian2.py`` and ``bench/bench_network.py`` compare
qsn.networks against. Written from Brian2's documentation and ``examples/CUBA.py``, not from qsn's code.

Conventions (the same numbers as qsn): every state variable is dimensionless and holds millivolts
(``v``, and synaptic currents as ``r_m I`` with ``r_m = 1``); only times carry Brian2 units (ms).
Dimensionless millivolts rather than ``volt`` keep Brian2 from scaling by 1e-3, so both simulators
do their arithmetic on the same numbers.

Time labels: Brian2 runs step ``k`` at ``t = k dt`` (state update, threshold, synaptic delivery,
reset) and stamps its spikes with ``t = k dt``; qsn stamps a spike of step ``k`` with the end of the
step, ``(k + 1) dt``. Both count steps from 0, so :func:`spike_steps` converts Brian2 times back
to step indices, which are what the tests compare. A Brian2 ``StateMonitor(when="end")`` records
the state after step ``k`` (after the reset), which qsn's ``StateMonitor`` records as its row ``k``.

Every builder returns an unrun ``brian2.Network`` and its monitors, so the caller picks the code
generation target (``prefs.codegen.target``) or device (``set_device('cpp_standalone')``).
"""

from __future__ import annotations

from typing import Any

import brian2 as b2
import numpy as np

__all__ = ["lif_psc_network", "cuba_network", "coba_network", "spike_steps", "isi_cv", "run"]


def lif_psc_network(
    *,
    n: int,
    v_rest: float,
    v_th: float,
    tau_m: float,
    t_ref: float,
    tau_syn: float,
    i_const: np.ndarray,
    v0: np.ndarray,
    n_src: int,
    src_indices: np.ndarray,
    src_times: np.ndarray,
    pre: np.ndarray,
    post: np.ndarray,
    weight: np.ndarray,
    delay: np.ndarray,
    record: np.ndarray,
    dt: float = 0.1,
) -> tuple[b2.Network, dict[str, Any]]:
    """A ``SpikeGeneratorGroup`` of ``n_src`` sources driving ``n`` LIF neurons through exponential
    synaptic currents with per-synapse weights and delays.

    Neuron: ``dv/dt = (v_rest - v + I + I0)/tau_m (unless refractory)``, ``dI/dt = -I/tau_syn``,
    ``method='exact'``, threshold ``v >= v_th``, reset ``v = v_rest``, refractory ``t_ref``; synapses
    ``on_pre: I_post += w``.

    Args:
        n: LIF neurons.
        v_rest, v_th: mV. tau_m, t_ref, tau_syn: ms (``tau_syn != tau_m``: the exact solution Brian2
            derives is singular there).
        i_const: ``(n,)`` constant drive ``r_m I0``, mV.
        v0: ``(n,)`` initial membrane potential, mV.
        n_src, src_indices, src_times: the sources and their spikes (times in ms, ``(S,)`` each).
        pre, post, weight, delay: ``(m,)`` synapse list; ``weight`` in mV of ``r_m I``, ``delay`` in ms.
        record: indices of the neurons whose ``v`` is recorded after every step.
        dt: ms.

    Returns:
        ``(network, monitors)`` with monitors ``"spikes"`` and ``"sources"`` (SpikeMonitor) and ``"v"``
        (StateMonitor, ``when="end"``).
    """
    b2.defaultclock.dt = dt * b2.ms
    eqs = """
    dv/dt = (v_rest - v + I + I0)/tau_m : 1 (unless refractory)
    dI/dt = -I/tau_syn : 1
    I0 : 1 (constant)
    """
    ns = dict(v_rest=float(v_rest), v_th=float(v_th), tau_m=tau_m * b2.ms, tau_syn=tau_syn * b2.ms)
    src = b2.SpikeGeneratorGroup(n_src, np.asarray(src_indices), np.asarray(src_times) * b2.ms, name="sources")
    neurons = b2.NeuronGroup(n, eqs, threshold="v >= v_th", reset="v = v_rest", refractory=t_ref * b2.ms,
                             method="exact", namespace=ns, name="neurons")
    neurons.v = np.asarray(v0, np.float64)
    neurons.I0 = np.asarray(i_const, np.float64)
    syn = b2.Synapses(src, neurons, "w : 1", on_pre="I_post += w", name="syn")
    syn.connect(i=np.asarray(pre), j=np.asarray(post))
    syn.w = np.asarray(weight, np.float64)
    syn.delay = np.asarray(delay, np.float64) * b2.ms
    mons = dict(
        spikes=b2.SpikeMonitor(neurons, name="spike_mon"),
        sources=b2.SpikeMonitor(src, name="source_mon"),
        v=b2.StateMonitor(neurons, "v", record=np.asarray(record), when="end", name="v_mon"),
    )
    return b2.Network(src, neurons, syn, *mons.values()), mons


def _recurrent_synapses(cells: Any, exc: dict, inh: dict, dt: float, names: tuple[str, str]) -> list[Any]:
    """The Vogels-Abbott networks' two projections within ``cells``: ``exc`` onto ``ge``, ``inh`` onto
    ``gi`` (``on_pre: g += w``), with the given synapse lists' weights and delays (steps of ``dt`` ms)."""
    out = []
    for label, syn, var in ((names[0], exc, "ge"), (names[1], inh, "gi")):
        s = b2.Synapses(cells, cells, "w : 1", on_pre=f"{var} += w", name=label)
        s.connect(i=np.asarray(syn["pre"]), j=np.asarray(syn["post"]))
        s.w = np.asarray(syn["weight"], np.float64)
        s.delay = np.asarray(syn["delay"], np.float64) * dt * b2.ms
        out.append(s)
    return out


def cuba_network(v0: np.ndarray, exc: dict, inh: dict, *, dt: float = 0.1, record: bool = True) -> tuple[b2.Network, Any]:
    """Brian2's ``examples/CUBA.py`` (Vogels & Abbott 2005) on a given connectivity and initial state.

    ``dv/dt = (ge + gi - (v - El))/taum (unless refractory)``, ``dge/dt = -ge/taue``,
    ``dgi/dt = -gi/taui``, ``method='exact'``; ``taum = 20``, ``taue = 5``, ``taui = 10`` ms,
    ``El = -49``, ``Vt = -50``, reset ``Vr = -60`` mV, refractory 5 ms. The example's random
    ``connect(p=0.02)`` and ``rand()`` initial V are replaced by the arrays given, so both simulators
    run the same network; the threshold is ``v >= Vt`` (the example writes ``v > Vt``; qsn's
    threshold is ``>=``: the same for continuous V, and it keeps the two comparable step by step).

    Args:
        v0: ``(n,)`` initial V, mV.
        exc, inh: synapse lists as returned by ``qsn.networks.Network.synapses``: ``pre``, ``post``
            (neuron indices), ``weight`` (mV), ``delay`` (steps).
        dt: ms.
        record: add a SpikeMonitor (else the second return value is None).

    Returns:
        ``(network, spike monitor or None)``.
    """
    b2.defaultclock.dt = dt * b2.ms
    eqs = """
    dv/dt = (ge + gi - (v - El))/taum : 1 (unless refractory)
    dge/dt = -ge/taue : 1
    dgi/dt = -gi/taui : 1
    """
    ns = dict(taum=20 * b2.ms, taue=5 * b2.ms, taui=10 * b2.ms, El=-49.0, Vt=-50.0, Vr=-60.0)
    v0 = np.asarray(v0, np.float64)
    cells = b2.NeuronGroup(v0.size, eqs, threshold="v >= Vt", reset="v = Vr", refractory=5 * b2.ms,
                           method="exact", namespace=ns, name="cuba")
    cells.v = v0
    objects: list[Any] = [cells, *_recurrent_synapses(cells, exc, inh, dt, ("ce", "ci"))]
    mon = b2.SpikeMonitor(cells, name="cuba_spikes") if record else None
    if mon is not None:
        objects.append(mon)
    return b2.Network(*objects), mon


def coba_network(v0: np.ndarray, ge0: np.ndarray, gi0: np.ndarray, exc: dict, inh: dict, *,
                 dt: float = 0.1) -> tuple[b2.Network, Any]:
    """Brette et al. (2007) benchmark 1 (COBA, Vogels & Abbott 2005) on a given connectivity and initial state.

    ``dv/dt = (-(v - El) + ge (Ee - v) + gi (Ei - v))/taum (unless refractory)``, ``dge/dt = -ge/taue``,
    ``dgi/dt = -gi/taui``, ``method='exponential_euler'``; conductances relative to the leak;
    ``taum = 20``, ``taue = 5``, ``taui = 10`` ms, ``El = Vr = -60``, ``Vt = -50``, ``Ee = 0``,
    ``Ei = -80`` mV, refractory 5 ms, no external drive; threshold ``v >= Vt`` (see :func:`cuba_network`).

    Args:
        v0, ge0, gi0: ``(n,)`` initial V (mV) and conductances.
        exc, inh: synapse lists as :func:`cuba_network` takes them (weights are conductances).
        dt: ms.

    Returns:
        ``(network, spike monitor)``.
    """
    b2.defaultclock.dt = dt * b2.ms
    eqs = """
    dv/dt = (-(v - El) + ge * (Ee - v) + gi * (Ei - v))/taum : 1 (unless refractory)
    dge/dt = -ge/taue : 1
    dgi/dt = -gi/taui : 1
    """
    ns = dict(taum=20 * b2.ms, taue=5 * b2.ms, taui=10 * b2.ms, El=-60.0, Vt=-50.0, Vr=-60.0, Ee=0.0, Ei=-80.0)
    cells = b2.NeuronGroup(len(v0), eqs, threshold="v >= Vt", reset="v = Vr", refractory=5 * b2.ms,
                           method="exponential_euler", namespace=ns, name="coba")
    cells.v, cells.ge, cells.gi = (np.asarray(a, np.float64) for a in (v0, ge0, gi0))
    mon = b2.SpikeMonitor(cells, name="coba_spikes")
    return b2.Network(cells, *_recurrent_synapses(cells, exc, inh, dt, ("coba_e", "coba_i")), mon), mon


def run(network: b2.Network, duration_ms: float, target: str = "numpy") -> None:
    """Run ``network`` for ``duration_ms`` with runtime code generation ``target`` ("numpy", "cython")."""
    b2.prefs.codegen.target = target
    network.run(duration_ms * b2.ms, namespace={})


def spike_steps(monitor: Any, dt: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``(step, index)`` int64 arrays of a Brian2 SpikeMonitor, sorted by step then index; a spike
    stamped ``t = k dt`` belongs to step ``k``."""
    step = np.rint(np.asarray(monitor.t / b2.ms) / dt).astype(np.int64)
    idx = np.asarray(monitor.i, np.int64)
    order = np.lexsort((idx, step))
    return step[order], idx[order]


def isi_cv(step: np.ndarray, index: np.ndarray, n: int, min_spikes: int = 3) -> np.ndarray:
    """Coefficient of variation of the inter-spike intervals of each of ``n`` neurons with at least
    ``min_spikes`` spikes (``(k,)``, in neuron order); ``step``, ``index`` as :func:`spike_steps`."""
    order = np.lexsort((step, index))
    s, i = step[order], index[order]
    bounds = np.searchsorted(i, np.arange(n + 1))
    cvs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a >= min_spikes:
            isi = np.diff(s[a:b]).astype(np.float64)
            cvs.append(isi.std() / isi.mean())
    return np.asarray(cvs)
