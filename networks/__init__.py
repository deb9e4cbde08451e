"""qsn.networks — networks of quantum spiking neurons: groups, projections, synapses, delays, inputs,
plasticity, monitors, sharding and the field's reference models.

Example:
    >>> import jax, qsn
    >>> from qsn.networks import models
    >>> net = models.cuba()                      # Vogels & Abbott 2005, 4000 neurons
    >>> net.build(jax.random.key(0)).run(1000.0, progress=True)
    >>> net["spikes"].t, net["spikes"].i         # spike times (ms) and neuron indices
"""

from qsn.networks import models
from qsn.networks.connectivity import (
    Rule,
    all_to_all,
    explicit,
    fixed_indegree,
    fixed_probability,
    fixed_total_number,
    one_to_one,
)
from qsn.networks.distributions import Distribution, lognormal, normal, uniform
from qsn.networks.group import GroupView, NeuronGroup, PoissonGroup, SpikeSourceArray
from qsn.networks.inputs import CurrentInput, PoissonInput, step_current
from qsn.networks.monitors import RateMonitor, SpikeMonitor, StateMonitor
from qsn.networks.network import NetState, Network
from qsn.networks.plasticity import STDP
from qsn.networks.projection import Projection
from qsn.networks.synapse import CondExp, Delta, PscExp

__all__ = [
    "models",
    "Network",
    "NetState",
    "NeuronGroup",
    "PoissonGroup",
    "SpikeSourceArray",
    "GroupView",
    "Projection",
    "Rule",
    "all_to_all",
    "one_to_one",
    "fixed_probability",
    "fixed_indegree",
    "fixed_total_number",
    "explicit",
    "Distribution",
    "normal",
    "lognormal",
    "uniform",
    "Delta",
    "PscExp",
    "CondExp",
    "CurrentInput",
    "PoissonInput",
    "step_current",
    "STDP",
    "SpikeMonitor",
    "RateMonitor",
    "StateMonitor",
]
