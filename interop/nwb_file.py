"""NWB export of a network's recordings (``pynwb`` 4): the archive format of neurophysiology.

* every neuron of every :class:`~qsn.networks.SpikeMonitor` is a row of the ``Units`` table: spike
  times in **seconds** (NWB's unit), columns ``monitor``, ``group``, ``neuron`` (index in the group),
  observation interval ``[0, t]``;
* every :class:`~qsn.networks.StateMonitor` variable is a ``TimeSeries`` ``"<monitor>.<variable>"`` in
  ``acquisition``, data ``(samples, neurons)`` as recorded (``v`` in mV: ``unit="volts"``,
  ``conversion=1e-3``), ``rate`` and ``starting_time`` in s; a :class:`~qsn.networks.RateMonitor` a
  ``TimeSeries`` in Hz;
* the model is the file's metadata: ``notes`` holds :func:`qsn.interop.describe_json` (groups and
  their parameters, projections, inputs), ``experiment_description`` a one-line summary,
  ``data_collection`` the simulator, ``dt`` and time simulated.
"""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path

import numpy as np

from qsn.errors import ConfigurationError
from qsn.interop.description import describe, neuron_indices, variable_unit
from qsn.interop.optional import require
from qsn.networks import Network, RateMonitor, SpikeMonitor, StateMonitor

__all__ = ["to_nwb"]


def _summary(model: dict) -> str:
    groups = ", ".join(f"{name} ({g['kind']}, n = {g['n']})" for name, g in model["groups"].items())
    return f"qsn network: {groups}; {len(model['projections'])} projections; dt = {model['dt']} ms"


def to_nwb(net: Network, path: str | Path, *, session_description: str = "qsn network simulation",
           identifier: str | None = None, session_start_time: datetime.datetime | None = None) -> Path:
    """Write ``net``'s recordings and model to the NWB file ``path``; returns the path.

    Args:
        net: a built network (run or not).
        path: the ``.nwb`` file to write (overwritten).
        session_description: NWB's required free-text description of the session.
        identifier: NWB's unique file identifier (default a random UUID).
        session_start_time: timezone-aware start of the session (default now, UTC).

    Raises:
        ConfigurationError: the network is not built, or ``path`` cannot be written (named).
        BackendUnavailableError: ``pynwb`` is not installed.

    Example:
        >>> to_nwb(net, "run.nwb")
        >>> with pynwb.NWBHDF5IO("run.nwb", "r") as io:
        ...     units = io.read().units.to_dataframe()
    """
    pynwb = require("pynwb")
    net.state  # noqa: B018  (raises ConfigurationError naming build() when the network is not built)
    model = describe(net)
    start = session_start_time or datetime.datetime.now(datetime.timezone.utc)
    if start.tzinfo is None:
        raise ConfigurationError("to_nwb: session_start_time must be timezone-aware (NWB requires it)")
    f = pynwb.NWBFile(
        session_description=session_description, identifier=identifier or str(uuid.uuid4()), session_start_time=start,
        experiment_description=_summary(model), notes=json.dumps(model, sort_keys=True),
        data_collection=f"simulated with qsn, dt = {model['dt']} ms, {model['t']} ms simulated ({model['dtype']})",
    )
    dt, t_stop = float(net.dt), float(net.t) * 1e-3
    spikes = [(name, m) for name, m in net.monitors.items() if isinstance(m, SpikeMonitor)]
    if spikes:
        for column, what in (("monitor", "qsn SpikeMonitor"), ("group", "qsn neuron group"), ("neuron", "index in the group")):
            f.add_unit_column(name=column, description=what)
        for name, m in spikes:
            for i, (times, neuron) in enumerate(zip(m.trains(), neuron_indices(m))):
                f.add_unit(spike_times=np.asarray(times, np.float64) * 1e-3, obs_intervals=[[0.0, t_stop]],
                           monitor=name, group=m.group.name, neuron=int(neuron))
    for name, m in net.monitors.items():
        if isinstance(m, StateMonitor):
            for var in m.variables:
                data = getattr(m, var)
                if data.shape[0] == 0:
                    continue
                unit, what = variable_unit(m.group, var)
                volts = unit == "mV"
                f.add_acquisition(pynwb.TimeSeries(
                    name=f"{name}.{var}", data=data, unit="volts" if volts else "n/a", conversion=1e-3 if volts else 1.0,
                    starting_time=float(m.t[0]) * 1e-3, rate=1e3 / (m.record_every * dt), description=what,
                    comments=json.dumps({"monitor": name, "group": m.group.name, "neuron": neuron_indices(m).tolist()}),
                ))
        elif isinstance(m, RateMonitor) and m.rate.size:
            f.add_acquisition(pynwb.TimeSeries(
                name=name, data=m.rate, unit="Hz", starting_time=float(m.t[0]) * 1e-3, rate=1e3 / dt,
                description=f"population rate of {m.n} neurons of group {m.group.name!r}",
                comments=json.dumps({"monitor": name, "group": m.group.name, "neuron": neuron_indices(m).tolist()}),
            ))
    path = Path(path)
    try:
        with pynwb.NWBHDF5IO(str(path), "w") as io:
            io.write(f)
    except OSError as err:
        raise ConfigurationError(f"to_nwb: cannot write {str(path)!r}: {err}") from None
    return path
