"""qsn — quantum spiking neurons: LIF membranes coupled to two-level quantum states, simulated with JAX.

Example:
    >>> import jax.numpy as jnp, qsn
    >>> p = qsn.NeuronParams(delta=0.3, t2=50.0)
    >>> s = qsn.init_state(p, n=1000, mode="mixed")
    >>> r = qsn.simulate(p, s, jnp.linspace(10.0, 30.0, 1000), steps=10_000, record=("p1",), neurons=[0, 999])
    >>> r.rates().mean(), r.p1.shape
"""

from qsn import backends, errors
from qsn.stepper import Stepper, step
from qsn.observables import bloch_vector, coherence, density_matrix, entropy, p_excited, purity
from qsn.params import NeuronParams
from qsn.poisson_current import PoissonCurrent
from qsn.simulate import SimulationResult, SpikeEvents, simulate
from qsn.state import MixedState, PureState, init_state

__version__ = "0.1.0"

__all__ = [
    "errors",
    "backends",
    "NeuronParams",
    "PureState",
    "MixedState",
    "init_state",
    "step",
    "Stepper",
    "simulate",
    "PoissonCurrent",
    "SimulationResult",
    "SpikeEvents",
    "density_matrix",
    "bloch_vector",
    "p_excited",
    "coherence",
    "entropy",
    "purity",
]
