"""Reference networks of the field, each a function returning a ready (unbuilt) :class:`Network`.

Every model records its spikes in a :class:`SpikeMonitor` named ``"spikes"`` (one per population in
the microcircuit) unless ``monitor=False``. With ``delta = 0`` the neurons are classical LIF neurons;
with ``delta > 0`` the quantum observables ride along, and ``jump_rate > 0`` adds quantum-jump
spiking (needs nothing else: the network carries its own keys).

Our neuron resets to ``v_reset`` and is clamped there while refractory (docs/model.md). Models whose
reset ``V_r`` differs from their leak reversal ``E_L`` set ``v_rest = E_L, v_reset = V_r`` (Brunel).
The Vogels-Abbott networks keep the older, equivalent form ``v_rest = V_r`` plus a constant current
``r_m I = E_L - V_r`` (the same differential equation and reset): their ``E_L = -49 mV`` lies above the
-50 mV threshold, which ``NeuronParams`` refuses as a resting potential.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import equinox as eqx
import jax
import numpy as np

from qsn.errors import ConfigurationError, QSNWarning
from qsn.params import NeuronParams
from qsn.networks.connectivity import fixed_indegree, fixed_probability, fixed_total_number
from qsn.networks.distributions import Distribution, normal
from qsn.networks.group import NeuronGroup
from qsn.networks.inputs import CurrentInput, PoissonInput
from qsn.networks.monitors import SpikeMonitor
from qsn.networks.network import Network
from qsn.networks.projection import Projection
from qsn.networks.synapse import CondExp, Delta, PscExp

__all__ = ["cuba", "coba", "coba_brainpy", "brunel", "BRUNEL_REGIMES", "microcircuit", "PD14_RATES"]


def _uniform_v0(low: float, high: float, n: int):
    return lambda key: low + (high - low) * jax.random.uniform(key, (n,))


def _normal_v0(mean: float, std: float, n: int):
    return lambda key: mean + std * jax.random.normal(key, (n,))


def _vogels_abbott(n: int, receptors: dict, we: float, wi: float, drive: float, p: float, quantum: dict,
                   mode: str, dtype: Any, monitor: bool, syn0: dict | None = None) -> Network:
    n_exc = int(round(0.8 * n))
    params = NeuronParams(v_rest=-60.0, v_th=-50.0, tau_m=20.0, r_m=1.0, t_ref=5.0, dt=0.1, **quantum)
    net = Network(dtype=dtype)
    g = net.add(NeuronGroup(n, params, mode, receptors=receptors, v0=_uniform_v0(-60.0, -50.0, n), syn0=syn0,
                            name="neurons"))
    net.add(Projection(g[:n_exc], g, fixed_probability(p), weight=we, receptor="exc", name="exc"))
    net.add(Projection(g[n_exc:], g, fixed_probability(p), weight=wi, receptor="inh", name="inh"))
    if drive:
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


# COBA's conductances, relative to the leak (10 nS in Brette et al. 2007): jumps, and the initial
# ge ~ N(4, 1.5), gi ~ N(20, 12) of the benchmark
_COBA_W = (6.0 / 10, 67.0 / 10)
_COBA_G0 = ((4.0, 1.5), (20.0, 12.0))


def coba(n: int = 4000, *, p: float = 0.02, delta: float = 0.0, t2: float = math.inf, jump_rate: float = 0.0,
         mode: str = "pure", dtype: Any = np.float32, monitor: bool = True) -> Network:
    """Brette et al. (2007) benchmark 1: the Vogels & Abbott (2005) conductance-based network.

    As :func:`cuba` (``n`` neurons, 80% excitatory, probability ``p``, ``tau_m = 20`` ms, threshold
    -50 mV, reset and leak reversal -60 mV, refractory 5 ms, V uniform in [-60, -50) mV), with no
    external drive: conductances (relative to the 10 nS leak) with ``tau_e = 5``, ``tau_i = 10`` ms,
    reversal 0 and -80 mV, jumps ``w_e = 0.6`` and ``w_i = 6.7`` (6 and 67 nS), starting from
    ``g_e ~ N(4, 1.5)``, ``g_i ~ N(20, 12)`` per neuron (so a few start below zero, as in the
    benchmark's scripts), integrated with exponential Euler. The activity is self-sustained: the
    initial conductances kick it off. :func:`coba_brainpy` is the driven variant BrainPy benchmarks.
    """
    (ge, sd_e), (gi, sd_i) = _COBA_G0
    syn0 = {"exc": _normal_v0(ge, sd_e, n), "inh": _normal_v0(gi, sd_i, n)}
    return _vogels_abbott(n, {"exc": CondExp(5.0, 0.0), "inh": CondExp(10.0, -80.0)}, *_COBA_W, 0.0, p,
                          dict(delta=delta, t2=t2, jump_rate=jump_rate), mode, dtype, monitor, syn0)


def coba_brainpy(n: int = 4000, *, p: float = 0.02, delta: float = 0.0, t2: float = math.inf, jump_rate: float = 0.0,
                 mode: str = "pure", dtype: Any = np.float32, monitor: bool = True) -> Network:
    """BrainPy's variant of the COBA network (its ``COBA`` benchmark), not Brette et al.'s benchmark 1.

    As :func:`coba`, but with a constant 20 mV drive above the reset and all conductances starting
    at zero: the drive, not the initial conductances, makes it fire.
    """
    return _vogels_abbott(n, {"exc": CondExp(5.0, 0.0), "inh": CondExp(10.0, -80.0)}, *_COBA_W, 20.0, p,
                          dict(delta=delta, t2=t2, jump_rate=jump_rate), mode, dtype, monitor)


# (g, eta) of the four regimes of Brunel (2000), Fig. 8
BRUNEL_REGIMES = {
    "SR": (3.0, 2.0),  # synchronous regular
    "AI": (5.0, 2.0),  # asynchronous irregular
    "SI_fast": (6.0, 4.0),  # synchronous irregular, fast oscillation
    "SI_slow": (4.5, 0.9),  # synchronous irregular, slow oscillation
}


# Brunel (2000) Fig. 8 maps the regimes for N_E = 10,000 and C_E = 1,000 (sparse: C_E / N_E = 0.1; its
# theory needs C_E / N_E << 1, so we warn only past 0.25, where the network is no longer sparse).
# The recurrent input's fluctuations grow as sqrt(C_E) (J fixed), so with fewer inputs an "AI"
# network fires regularly (tests/networks/test_net_models.py measures it at n = 2,000, C_E = 160).
_BRUNEL_C_E, _BRUNEL_SPARSENESS = 1000, 0.25


def _check_brunel_regime(g: float, eta: float, c_e: int, n_exc: int) -> None:
    """Warn (QSNWarning) when (g, eta) names a regime of Brunel (2000) that this in-degree or size cannot show."""
    regime = next((name for name, point in BRUNEL_REGIMES.items() if point == (g, eta)), None)
    if regime is None:
        return
    if c_e < _BRUNEL_C_E:
        warnings.warn(f"brunel: the {regime!r} regime of Brunel (2000) is mapped for C_E = {_BRUNEL_C_E} inputs, but C_E = "
                      f"{c_e}: the input fluctuations are {math.sqrt(c_e / _BRUNEL_C_E):.2f}x as large and the network may "
                      f"fire in another regime; pass indegree={_BRUNEL_C_E} (with n >= 12,500, Brunel's network)",
                      QSNWarning, stacklevel=3)
    elif c_e > _BRUNEL_SPARSENESS * n_exc * 1.0001:
        warnings.warn(f"brunel: the {regime!r} regime of Brunel (2000) assumes sparse connectivity (C_E / N_E << 1; "
                      f"we warn past {_BRUNEL_SPARSENESS}), but C_E / N_E = {c_e / n_exc:.2f}; use n >= "
                      f"{int(math.ceil(c_e / _BRUNEL_SPARSENESS / 0.8)):,} for indegree={c_e}", QSNWarning, stacklevel=3)


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
    _check_brunel_regime(g, eta, c_e, n_exc)
    theta, tau_m = 20.0, 20.0
    nu_th = theta / (j * c_e * tau_m)  # 1/ms
    params = NeuronParams(v_rest=0.0, v_reset=10.0, v_th=theta, tau_m=tau_m, r_m=1.0, t_ref=2.0, dt=0.1, delta=delta,
                          t2=t2, jump_rate=jump_rate)
    net = Network(dtype=dtype)
    cells = net.add(NeuronGroup(n, params, mode, receptors={"exc": Delta(), "inh": Delta()},
                                v0=_uniform_v0(10.0, 20.0, n), name="neurons"))
    net.add(Projection(cells[:n_exc], cells, fixed_indegree(c_e), weight=j, delay=delay, receptor="exc", name="exc"))
    net.add(Projection(cells[n_exc:], cells, fixed_indegree(c_i), weight=-g * j, delay=delay, receptor="inh", name="inh"))
    net.add(PoissonInput(cells, "exc", rate=eta * nu_th * 1e3, weight=j, n_inputs=c_e))
    if monitor:
        net.add(SpikeMonitor(cells, name="spikes"))
    return net


# ---------------------------------------------------------------- Potjans & Diesmann (2014)
# Parameters of the PyNEST microcircuit example (NEST examples/Potjans_2014/network_params.py) and of
# INM-6/microcircuit-PD14-model (PyNEST/src/microcircuit/parameter_definitions.py); the two agree on
# every value used here except the rates _PD14_FULL_RATES, taken from the former.

_PD14_POPULATIONS = ("L23e", "L23i", "L4e", "L4i", "L5e", "L5i", "L6e", "L6i")
_PD14_SIZES = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948])
# connection probability [target, source], Potjans & Diesmann (2014) Table 5
_PD14_CONN_PROBS = np.array([
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
    [0.0077, 0.0059, 0.0497, 0.1350, 0.0067, 0.0003, 0.0453, 0.0],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.0600, 0.3158, 0.0086, 0.0],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.0010, 0.0034, 0.0005, 0.0277, 0.0080, 0.0658, 0.1443],
])
_PD14_K_EXT = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100])  # external (Poisson) in-degrees
_PD14_V0_MEAN = np.array([-68.28, -63.16, -63.33, -63.45, -63.11, -61.66, -66.72, -61.43])  # mV, V0_type 'optimized'
_PD14_V0_STD = np.array([5.36, 4.57, 4.74, 4.94, 4.94, 4.55, 5.46, 4.48])  # mV
# full-scale rates (Hz) the reference uses for its in-degree-scaling DC compensation (its 'full_mean_rates')
_PD14_FULL_RATES = np.array([0.943, 3.026, 4.368, 5.882, 7.733, 8.664, 1.096, 7.851])
_PD14_NEURON = dict(c_m=250.0, tau_m=10.0, tau_syn=0.5, t_ref=2.0, e_l=-65.0, v_th=-50.0)  # pF, ms, ms, ms, mV, mV
_PD14_PSP = 0.15  # mV, mean excitatory PSP peak
_PD14_G = -4.0  # inhibitory / excitatory weight
_PD14_W_CV = 0.1  # weight sd / mean
_PD14_DELAY = (1.5, 0.75)  # ms, mean delay of excitatory / inhibitory synapses (NEST convention)
_PD14_DELAY_CV = 0.5  # delay sd / mean
_PD14_BG_RATE = 8.0  # Hz, rate of each external Poisson input

#: Per-population rates (Hz) of the full-scale model simulated with NEST, as published by Bos et al.
#: (2016) and listed by INM-6/nnmt (examples/microcircuit_rates.py); for comparison, not used by the model.
PD14_RATES = {"L23e": 0.745, "L23i": 2.696, "L4e": 4.112, "L4i": 5.628, "L5e": 6.637, "L5i": 8.290, "L6e": 1.100,
              "L6i": 7.663}


class _TruncatedNormal(Distribution):
    """``N(a, b^2)`` conditioned on ``x > lower``: out-of-range values are redrawn, not clipped, as
    NEST's ``nest.math.redraw`` (and NEST 2's ``normal_clipped``) used by the reference model."""

    lower: float = eqx.field(static=True, default=-math.inf)

    def draw(self, key: jax.Array, m: int, dtype: Any) -> jax.Array:
        z = jax.random.truncated_normal(key, (self.lower - self.a) / self.b, math.inf, (m,), dtype)
        return self.a + self.b * z


def _psc_per_psp(c_m: float, tau_m: float, tau_syn: float) -> float:
    """PSC amplitude (pA) whose PSP in a resting ``iaf_psc_exp`` neuron peaks at 1 mV.

    A current ``J exp(-t/tau_s)`` gives ``V(t) = J tau_m tau_s / (C (tau_m - tau_s)) (e^{-t/tau_m} - e^{-t/tau_s})``,
    which peaks at ``t* = tau_m tau_s ln(tau_m/tau_s) / (tau_m - tau_s)``.
    """
    t_peak = tau_m * tau_syn * math.log(tau_m / tau_syn) / (tau_m - tau_syn)
    psp_per_pa = tau_m * tau_syn / (c_m * (tau_m - tau_syn)) * (math.exp(-t_peak / tau_m) - math.exp(-t_peak / tau_syn))
    return 1.0 / psp_per_pa


def _pd14_full_synapses() -> np.ndarray:
    """``(8, 8)`` [target, source] synapse counts of the full model, ``log(1-p) / log(1 - 1/(N_pre N_post))``
    (not yet rounded): the number of uniformly drawn pairs that leaves a pair unconnected with
    probability ``1 - p``."""
    pairs = np.outer(_PD14_SIZES, _PD14_SIZES).astype(np.float64)
    return np.log1p(-_PD14_CONN_PROBS) / np.log1p(-1.0 / pairs)


def microcircuit(scale: float = 1.0, *, k_scale: float = 1.0, background: str = "poisson", delta: float = 0.0,
                 t2: float = math.inf, jump_rate: float = 0.0, mode: str = "pure", dtype: Any = np.float32,
                 monitor: bool = True) -> Network:
    """Potjans & Diesmann (2014) cortical microcircuit: 77,169 neurons in 8 populations, ~3e8 synapses.

    Populations (groups named) ``L23e, L23i, L4e, L4i, L5e, L5i, L6e, L6i`` of 20683, 5834, 21915,
    5479, 4850, 1065, 14395 and 2948 ``iaf_psc_exp`` neurons: ``C_m = 250`` pF, ``tau_m = 10`` ms (so
    ``r_m = tau_m / C_m = 40`` MOhm; currents in nA), ``E_L = V_reset = -65`` mV, threshold -50 mV,
    refractory 2 ms, exponential currents with ``tau_syn = 0.5`` ms on receptors ``"exc"`` and
    ``"inh"``; dt = 0.1 ms. Values from the PyNEST microcircuit example (``network_params.py``) and
    INM-6/microcircuit-PD14-model.

    Connectivity: the projection ``x -> y`` (named ``"x->y"``, e.g. ``"L4e->L23e"``) has
    ``K = round(scale * k_scale * log(1 - p_yx) / log(1 - 1/(N_x N_y)))`` synapses with the full-scale
    sizes ``N`` and the connection probabilities of Table 5 (zero-probability pairs get no projection),
    drawn with :func:`fixed_total_number` (autapses and multapses allowed, as in the reference) and
    propagated on the event path.
    Weights: normal, mean ``w = 0.15`` mV PSP peak = ``0.0878`` nA (``87.81`` pA, from the exact PSP of an
    exponential current), ``-4 w`` from inhibitory populations, ``2 w`` for ``L4e -> L23e``; sd 10% of the
    mean, the sign kept (the reference redraws values of the wrong sign, we clip them; both happen with
    probability ~1e-23 at 10 sd). Delays: normal, mean 1.5 ms (excitatory) / 0.75 ms (inhibitory), sd half
    the mean, truncated (redrawn, not clipped, as ``nest.math.redraw``) below 0.5 dt, so that every delay
    rounds to at least one step, as in the reference. Our schedule is Brian2's (see :func:`brunel`): a
    NEST delay ``d`` is our ``d - dt``, so the delays drawn here are those values minus 0.1 ms (the
    shortest, 0 steps, is NEST's 1 step).

    External input, per neuron of population ``y``: ``K_ext = (1600, 1500, 2100, 1900, 2000, 1900, 2900,
    2100)`` independent 8 Hz Poisson inputs of weight ``w`` into ``"exc"`` (``background="poisson"``), or
    their mean current ``I_DC = 8 Hz * K_ext * w * tau_syn`` as a constant input (``background="dc"``).
    V starts normal with the population's mean and sd of the reference's ``V0_type = 'optimized'``
    (-68.28 ± 5.36, -63.16 ± 4.57, -63.33 ± 4.74, -63.45 ± 4.94, -63.11 ± 4.94, -61.66 ± 4.55,
    -66.72 ± 5.46, -61.43 ± 4.48 mV).

    Scaling: ``scale`` multiplies the population sizes (rounded) and the synapse counts, so in-degrees and
    hence mean inputs and rates stay close to the full model's (but pairs share more synapses, and
    correlations grow, as ``scale`` shrinks). ``k_scale`` multiplies the in-degrees (recurrent and
    external), divides all weights by ``sqrt(k_scale)`` (keeping the input variance) and adds the
    reference's DC compensation of the lost mean input,
    ``I_DC += tau_syn (1 - sqrt(k_scale)) (sum_x w_yx K_yx nu_x + [Poisson] w K_ext,y 8 Hz)``, with the
    full-scale in-degrees ``K_yx``, unscaled weights and the reference's full-scale rates ``nu``
    (0.943, 3.026, 4.368, 5.882, 7.733, 8.664, 1.096, 7.851 Hz).

    Published rates to compare with: :data:`PD14_RATES`.

    Args:
        scale: population-size factor, ``> 0`` (every population keeps at least one neuron).
        k_scale: in-degree factor, ``> 0``.
        background: ``"poisson"`` or ``"dc"``.
        delta, t2, jump_rate, mode: quantum parameters and representation of every neuron (see
            :class:`qsn.NeuronParams`); ``delta = 0`` gives the classical model.
        dtype: float32 or float64.
        monitor: add a :class:`SpikeMonitor` per population, named after it (``net.monitors["L23e"]``;
            ``net["L23e"]`` is the group).

    Example:
        >>> net = microcircuit(0.05)
        >>> net.build(jax.random.key(0)).run(500.0)
        >>> {name: m.count().mean() / 0.5 for name, m in net.monitors.items()}   # Hz
    """
    for label, value in (("scale", scale), ("k_scale", k_scale)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
                math.isfinite(value) and value > 0):
            raise ConfigurationError(f"microcircuit: {label} must be finite and > 0, but is {value!r}")
    if background not in ("poisson", "dc"):
        raise ConfigurationError(f"microcircuit: background must be 'poisson' or 'dc', but is {background!r}")
    sizes = np.rint(_PD14_SIZES * float(scale)).astype(np.int64)
    if sizes.min() < 1:
        empty = ", ".join(p for p, n in zip(_PD14_POPULATIONS, sizes) if n < 1)
        raise ConfigurationError(f"microcircuit: scale={scale!r} leaves {empty} without neurons; "
                                 f"scale must be >= {0.5 / _PD14_SIZES.min():.2g}")
    k_scale = float(k_scale)
    nrn = _PD14_NEURON
    dt = 0.1
    w = _PD14_PSP * _psc_per_psp(nrn["c_m"], nrn["tau_m"], nrn["tau_syn"]) * 1e-3  # nA
    w_mean = np.where(np.arange(8) % 2 == 0, w, _PD14_G * w)[None, :].repeat(8, axis=0)  # [target, source], nA
    w_mean[0, 2] *= 2.0  # L4e -> L23e
    full = _pd14_full_synapses()
    counts = np.rint(full * float(scale) * k_scale).astype(np.int64)
    k_ext = np.rint(_PD14_K_EXT * k_scale).astype(np.int64)
    # mean currents (nA): Hz * nA * ms * 1e-3
    dc = _PD14_BG_RATE * _PD14_K_EXT * w * nrn["tau_syn"] * 1e-3 if background == "dc" else np.zeros(8)
    if k_scale != 1.0:
        recurrent = np.sum(w_mean * (full / _PD14_SIZES[:, None]) * _PD14_FULL_RATES, axis=1)
        external = w * _PD14_K_EXT * _PD14_BG_RATE if background == "poisson" else 0.0
        dc = dc + 1e-3 * nrn["tau_syn"] * (1.0 - math.sqrt(k_scale)) * (recurrent + external)
    w_factor = 1.0 / math.sqrt(k_scale)

    params = NeuronParams(v_rest=nrn["e_l"], v_th=nrn["v_th"], tau_m=nrn["tau_m"], r_m=nrn["tau_m"] / nrn["c_m"] * 1e3,
                          t_ref=nrn["t_ref"], dt=dt, delta=delta, t2=t2, jump_rate=jump_rate)
    net = Network(dtype=dtype)
    groups = [
        net.add(NeuronGroup(int(sizes[i]), params, mode, receptors={"exc": PscExp(nrn["tau_syn"]), "inh": PscExp(nrn["tau_syn"])},
                            v0=_normal_v0(float(_PD14_V0_MEAN[i]), float(_PD14_V0_STD[i]), int(sizes[i])), name=name))
        for i, name in enumerate(_PD14_POPULATIONS)
    ]
    delays = []
    for d_mean in _PD14_DELAY:
        # NEST's d maps to our d - dt; the truncation at 0.5 dt moves with it
        delays.append(_TruncatedNormal("truncated_normal", d_mean - dt, _PD14_DELAY_CV * d_mean, None, lower=-0.5 * dt))
    # event path throughout: the delays spread over ~50 steps, so the dense path would hold ~50
    # matrices per projection, each ~1% filled at small scales (the "auto" rule picks it there)
    for post in range(8):
        for pre in range(8):
            if counts[post, pre] == 0:
                continue
            exc = pre % 2 == 0
            mean = float(w_mean[post, pre]) * w_factor
            net.add(Projection(groups[pre], groups[post], fixed_total_number(int(counts[post, pre])),
                               weight=normal(mean, _PD14_W_CV * abs(mean)), delay=delays[0 if exc else 1],
                               receptor="exc" if exc else "inh", propagation="event",
                               name=f"{_PD14_POPULATIONS[pre]}->{_PD14_POPULATIONS[post]}"))
    for i, g in enumerate(groups):
        if background == "poisson" and k_ext[i] > 0:
            net.add(PoissonInput(g, "exc", rate=_PD14_BG_RATE, weight=w * w_factor, n_inputs=int(k_ext[i])))
        if dc[i] != 0.0:
            net.add(CurrentInput(g, float(dc[i])))
        if monitor:
            net.add(SpikeMonitor(g, name=_PD14_POPULATIONS[i]))
    return net
