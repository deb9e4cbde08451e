"""Neo export of a network's recordings (``neo`` 0.14): what Elephant and PyNN analyse.

* :class:`~qsn.networks.SpikeMonitor` -> one ``neo.SpikeTrain`` per monitored neuron (ms, ``t_start``
  0, ``t_stop`` the time simulated; spike times are the ends of the spiking steps, as ``SpikeMonitor.t``);
* :class:`~qsn.networks.StateMonitor` -> one ``neo.AnalogSignal`` per variable, ``(samples, neurons)``:
  ``v`` in mV, ``p1``, ``coherence``, ``entropy`` (bits) and receptor variables dimensionless, each
  with a ``description``;
* :class:`~qsn.networks.RateMonitor` -> an ``AnalogSignal`` in Hz, one sample per step.

Every object is annotated with its monitor, group and neuron indices; a ``neo.Group`` per qsn group
collects them with the group's parameters; the ``Block`` carries :func:`qsn.interop.describe`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qsn.errors import ConfigurationError
from qsn.interop.description import describe, neuron_indices, variable_unit
from qsn.interop.optional import require
from qsn.networks import Network, RateMonitor, SpikeMonitor, StateMonitor

__all__ = ["to_neo"]


def to_neo(net: Network, *, block: Any = None, name: str | None = None) -> Any:
    """A ``neo.Block`` holding one ``Segment`` with everything ``net``'s monitors recorded since build.

    Args:
        net: a built network (run or not).
        block: an existing ``neo.Block`` to append the segment to (e.g. one segment per trial, each
            trial its own network); default a new block annotated with ``describe(net)``.
        name: the segment's name (default ``"run <k>"``, ``k`` its index in the block).

    Returns:
        The block. ``block.segments[-1].spiketrains`` in monitor order, then neuron order;
        ``.analogsignals`` per StateMonitor variable and RateMonitor. ``block.groups`` has one
        ``neo.Group`` per qsn group that was recorded, annotated with its parameters.

    Raises:
        ConfigurationError: the network is not built.
        BackendUnavailableError: ``neo`` is not installed.

    Example:
        >>> block = to_neo(net)
        >>> import elephant.statistics as es
        >>> [float(es.mean_firing_rate(st).rescale("Hz")) for st in block.segments[0].spiketrains]
    """
    neo = require("neo")
    import quantities as pq  # installed with neo

    net.state  # noqa: B018  (raises ConfigurationError naming build() when the network is not built)
    model = describe(net)
    if block is None:
        block = neo.Block(name="qsn network", description="recordings of a qsn network simulation", model=model,
                          simulator="qsn", dt_ms=model["dt"])
    elif not isinstance(block, neo.Block):
        raise ConfigurationError(f"to_neo: block must be a neo.Block or None, but is {type(block).__name__}")
    dt = float(net.dt)
    t_stop = float(net.t) * pq.ms
    seg = neo.Segment(name=name or f"run {len(block.segments)}", index=len(block.segments), t_stop_ms=float(net.t))
    groups: dict[str, Any] = {}

    def group_of(g: Any) -> Any:
        if g.name not in groups:
            groups[g.name] = neo.Group(name=g.name, **model["groups"][g.name])
        return groups[g.name]

    for mname, m in net.monitors.items():
        idx = neuron_indices(m)
        common = dict(monitor=mname, group=m.group.name)
        if isinstance(m, SpikeMonitor):
            for i, times in enumerate(m.trains()):
                st = neo.SpikeTrain(times * pq.ms, t_start=0.0 * pq.ms, t_stop=t_stop, name=f"{mname}[{i}]",
                                    neuron=int(idx[i]), channel=i, **common)
                seg.spiketrains.append(st)
                group_of(m.group).add(st)
        elif isinstance(m, StateMonitor):
            period = m.record_every * dt
            for var in m.variables:
                data = getattr(m, var)
                if data.shape[0] == 0:
                    continue  # nothing sampled yet (a run shorter than record_every)
                unit, what = variable_unit(m.group, var)
                sig = neo.AnalogSignal(data, units=pq.mV if unit == "mV" else pq.dimensionless, sampling_period=period * pq.ms,
                                       t_start=float(m.t[0]) * pq.ms, name=f"{mname}.{var}", description=what,
                                       array_annotations={"neuron": idx, "channel": np.arange(idx.size)}, variable=var, **common)
                seg.analogsignals.append(sig)
                group_of(m.group).add(sig)
        elif isinstance(m, RateMonitor) and m.rate.size:
            sig = neo.AnalogSignal(m.rate[:, None], units=pq.Hz, sampling_period=dt * pq.ms, t_start=float(m.t[0]) * pq.ms,
                                   name=mname, description=f"population rate of {m.n} neurons of group {m.group.name!r}",
                                   variable="rate", neurons=idx, **common)
            seg.analogsignals.append(sig)
            group_of(m.group).add(sig)
    block.segments.append(seg)
    seg.block = block
    for g in groups.values():
        if not any(x.name == g.name for x in block.groups):
            block.groups.append(g)
    return block

