"""A network's description as plain, JSON-able data: the metadata every exporter writes.

One function, :func:`describe`, so Neo annotations, the NWB file's notes and anything else that wants
"the model" read the same dictionary.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from qsn.params import FIELDS
from qsn.networks import CondExp, Network, NeuronGroup, PoissonGroup, PscExp, SpikeSourceArray

__all__ = ["describe", "describe_json", "plain", "variable_unit", "neuron_indices"]


def plain(value: Any) -> Any:
    """``value`` (a NumPy scalar or array) as a float, or a list of floats when it varies; uniform arrays
    collapse to one number. ``inf`` stays ``inf`` (JSON writes it as ``Infinity``)."""
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0 or arr.size == 0 or np.all(arr == arr.flat[0]):
        return float(arr.flat[0]) if arr.size else []
    return arr.tolist()


def _group(g: Any) -> dict[str, Any]:
    if isinstance(g, NeuronGroup):
        receptors = {name: {"kinetics": type(k).__name__, **{f: float(getattr(k, f)) for f in ("tau", "e_rev") if hasattr(k, f)}}
                     for name, k in g.receptors.items()}
        params = {f: plain(getattr(g.params, f)) for f in FIELDS}
        return {"kind": "NeuronGroup", "n": g.n, "mode": g.mode, "params": params, "receptors": receptors}
    if isinstance(g, PoissonGroup):
        return {"kind": "PoissonGroup", "n": g.n, "rates_hz": plain(g.rates)}
    if isinstance(g, SpikeSourceArray):
        return {"kind": "SpikeSourceArray", "n": g.n, "spikes": int(g.times.size)}
    return {"kind": type(g).__name__, "n": g.n}


def describe(net: Network) -> dict[str, Any]:
    """The model of ``net`` as nested dicts of str, int, float and lists (units: ms, mV, Hz as in qsn).

    Keys: ``dt`` (ms), ``dtype``, ``t`` (ms simulated), ``groups`` (name -> kind, ``n``, ``mode``,
    ``params`` (the :class:`qsn.NeuronParams` fields, one number when uniform), ``receptors``),
    ``projections`` (name -> ``pre``, ``post``, ``receptor``, ``rule``, ``synapses``, ``plastic``) and
    ``inputs`` (one entry per current or Poisson input).

    Example:
        >>> from qsn.networks import models
        >>> d = describe(models.cuba().build(jax.random.key(0)))
        >>> d["groups"]["neurons"]["params"]["tau_m"]
        20.0
    """
    counts = getattr(net, "synapse_count", {})  # set by Network.build
    projections = {}
    for name, p in net.projections.items():
        projections[name] = {
            "pre": p.pre.name, "post": p.post.name, "receptor": p.receptor, "rule": p.rule.name,
            "synapses": int(counts[name]) if name in counts else None, "plastic": p.plasticity is not None,
        }
    inputs = []
    for inp in net.inputs:
        entry = {"kind": type(inp).__name__, "group": inp.group.name,
                 "neurons": inp.group.n if inp.index is None else int(inp.index.size)}
        if hasattr(inp, "rate"):
            entry.update(receptor=inp.receptor, rate_hz=inp.rate, weight=inp.weight, n_inputs=inp.n_inputs)
        elif np.ndim(inp.current) <= 1 and not callable(inp.current):
            entry["current"] = plain(inp.current)
        else:
            entry["current"] = "time-varying"
        inputs.append(entry)
    return {
        "simulator": "qsn",
        "dt": float(net.dt),
        "dtype": np.dtype(net.dtype).name,
        "t": float(net.t),
        "groups": {name: _group(g) for name, g in net.groups.items()},
        "projections": projections,
        "inputs": inputs,
    }


def describe_json(net: Network) -> str:
    """:func:`describe` as a JSON string (sorted keys; ``inf`` as ``Infinity``)."""
    return json.dumps(describe(net), sort_keys=True)


def variable_unit(group: NeuronGroup, variable: str) -> tuple[str, str]:
    """``(unit, description)`` of a recorded variable: ``"mV"`` for ``v`` (and a Delta receptor's pending
    jump), ``"dimensionless"`` otherwise, with what the number is (entropy in bits, a PscExp receptor's
    current such that ``r_m * I`` is in mV, a CondExp conductance relative to the leak)."""
    fixed = {
        "v": ("mV", "membrane potential"),
        "p1": ("dimensionless", "excited-state population rho_11 of the qubit"),
        "coherence": ("dimensionless", "qubit coherence |rho_01|"),
        "entropy": ("dimensionless", "von Neumann entropy of the qubit, bits"),
    }
    if variable in fixed:
        return fixed[variable]
    kin = group.receptors[variable]
    if isinstance(kin, PscExp):
        return "dimensionless", f"synaptic current of receptor {variable!r} (PscExp, tau = {kin.tau} ms; r_m * I in mV)"
    if isinstance(kin, CondExp):
        return "dimensionless", f"conductance of receptor {variable!r} relative to the leak (CondExp, tau = {kin.tau} ms, e_rev = {kin.e_rev} mV)"
    return "mV", f"pending voltage jump of receptor {variable!r} (Delta)"


def neuron_indices(monitor: Any) -> np.ndarray:
    """``(k,)`` group index of each neuron a monitor records (its view's, or ``0 .. n-1``)."""
    return np.arange(monitor.group.n) if monitor.index is None else np.asarray(monitor.index, np.int64)
