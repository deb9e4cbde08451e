"""qsn.learning — training quantum spiking networks and searching their hyperparameters.

* ``data``: scikit-learn's digits, split train/validation/test, and spike codings (rate, latency, current);
* ``model``: :class:`SpikingClassifier`, input → QSN hidden layer (the engine's step, surrogate gradients) → readout;
* ``train``: :func:`train` with optax (BPTT through ``lax.scan``), the neuron :data:`VARIANTS` compared in bench/;
* ``space``, ``quadratic``, ``search``: hyperparameter search over discrete spaces, annealing-guided (BOCS with the
  QUBO annealer of qsn.qubo) and random.

Example:
    >>> from qsn.learning import TrainConfig, train
    >>> result = train(TrainConfig().variant("qsn"), seed=0)       # ~30 s on a 2-core CPU
    >>> result.test_accuracy
"""

from qsn.learning.data import CODINGS, Dataset, encode, load_digits
from qsn.learning.model import FEATURES, ModelConfig, SpikingClassifier
from qsn.learning.quadratic import (
    ENCODINGS,
    Encoding,
    Posterior,
    QuadraticModel,
    features,
    fit_model,
    make_encoding,
    model_qubo,
    sample_model,
)
from qsn.learning.search import SEARCHERS, SearchResult, anneal_search, random_search, run_searches
from qsn.learning.space import SearchSpace
from qsn.learning.train import VARIANTS, TrainConfig, TrainResult, accuracy, train

__all__ = [
    "Dataset", "load_digits", "encode", "CODINGS",
    "ModelConfig", "SpikingClassifier", "FEATURES",
    "TrainConfig", "TrainResult", "train", "accuracy", "VARIANTS",
    "SearchSpace", "QuadraticModel", "Posterior", "Encoding", "features", "fit_model", "sample_model",
    "make_encoding", "model_qubo", "ENCODINGS",
    "SearchResult", "anneal_search", "random_search", "run_searches", "SEARCHERS",
]
