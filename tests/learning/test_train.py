"""qsn.learning: the digits data and codings, the QSN classifier against qsn.simulate, training and its CLI.

The model's hidden layer must be the engine's neuron, step for step: its spike counts and mean p1 are compared
with :func:`qsn.simulate` on the same currents. Training is checked for the issue's target (>= 95% test accuracy
on the digits, which the default LIF run reaches in ~10 s on a 2-core CPU), determinism per seed, and that
gradients reach every trained leaf.
"""

from __future__ import annotations

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import qsn
from qsn.cli import main
from qsn.errors import ConfigurationError
from qsn.learning.data import encode, load_digits
from qsn.learning.model import ModelConfig, SpikingClassifier
from qsn.learning.train import VARIANTS, TrainConfig, train

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def data():
    return load_digits(0)


def test_digits_split_is_stratified_scaled_and_reproducible(data):
    n = len(data.y_train) + len(data.y_val) + len(data.y_test)
    assert n == 1797 and data.x_train.shape[1] == 64 and data.classes == 10
    assert len(data.y_test) == pytest.approx(0.2 * 1797, abs=1)
    assert 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    for y in (data.y_train, data.y_val, data.y_test):  # every class within one example of its share
        share = np.bincount(y, minlength=10) / len(y)
        np.testing.assert_allclose(share, np.bincount(data.y_train, minlength=10) / len(data.y_train), atol=0.02)
    again = load_digits(0)
    np.testing.assert_array_equal(again.x_test, data.x_test)
    assert not np.array_equal(load_digits(1).y_test, data.y_test)


def test_codings():
    x = jnp.array([[0.0, 0.25, 1.0, 0.05]], jnp.float32)
    cur = encode(x, "current", 5)
    np.testing.assert_array_equal(cur, np.broadcast_to(x, (5, 1, 4)))
    lat = np.asarray(encode(x, "latency", 5))
    # one spike at round((1 - x)(T - 1)); pixels below min_intensity silent
    assert lat.sum(0).tolist() == [[0.0, 1.0, 1.0, 0.0]]
    assert lat[:, 0, 1].argmax() == 3 and lat[:, 0, 2].argmax() == 0
    big = jnp.full((1, 2000), 0.6, jnp.float32)
    rate = np.asarray(encode(big, "rate", 50, jax.random.key(0), max_prob=0.5))
    k = int(rate.sum())
    assert scipy.stats.binomtest(k, rate.size, 0.3).pvalue > 1e-3  # Bernoulli(x * max_prob) per step
    with pytest.raises(ConfigurationError, match="key"):
        encode(x, "rate", 5)
    with pytest.raises(ConfigurationError, match="coding"):
        encode(x, "phase", 5)
    with pytest.raises(ConfigurationError, match="steps"):
        encode(x, "current", 0)


@pytest.mark.parametrize("mode, extra", [("pure", {}), ("mixed", {"t2": 20.0})])
def test_hidden_layer_is_the_engines_neuron(mode, extra):
    """Spike counts and mean p1 of the model equal qsn.simulate driven by the same current."""
    cfg = ModelConfig(inputs=8, hidden=16, classes=3, delta=0.4, mode=mode, features="spikes+p1", **extra)
    model = SpikingClassifier(cfg, key=jax.random.key(0))
    model = eqx.tree_at(lambda m: m.hidden.weight, model, model.hidden.weight * 4.0)  # drive some neurons past threshold
    dtype = model.hidden.weight.dtype  # float64 here: the test-suite enables x64
    x = jax.random.uniform(jax.random.key(1), (2, 8), dtype)
    steps = 40
    logits, aux = model(encode(x, "current", steps))
    assert logits.shape == (2, 3)
    params = cfg.neuron_params(cfg.delta)
    gain = float(params.v_th - params.v_rest)
    for b in range(2):
        current = gain * (model.hidden.weight @ x[b] + model.hidden.bias)
        r = qsn.simulate(params, qsn.init_state(params, 16, mode=mode, dtype=dtype), current, steps=steps, record=("p1",))
        np.testing.assert_allclose(np.asarray(aux["rate"][b]) * steps, r.spike_count, rtol=1e-12)  # rate = count / T
        np.testing.assert_allclose(aux["p1"][b], r.p1.mean(0), rtol=1e-12, atol=1e-14)
    assert 0 < float(aux["rate"].sum()) and float(aux["p1"].max()) > 0


def test_gradients_reach_weights_and_a_learned_delta():
    cfg = ModelConfig(inputs=8, hidden=16, classes=3, delta=0.3, features="spikes+p1", learn_delta=True)
    model = SpikingClassifier(cfg, key=jax.random.key(0))
    x = encode(jax.random.uniform(jax.random.key(1), (4, 8), jnp.float32) * 3.0, "current", 30)

    def loss(m):
        return jnp.sum(m(x)[0] ** 2)

    g = eqx.filter_grad(loss)(model)
    for leaf in (g.hidden.weight, g.readout.weight, g.delta):
        assert np.all(np.isfinite(leaf)) and float(jnp.abs(leaf).max()) > 0
    frozen = dataclasses.replace(cfg, learn_delta=False)
    g = eqx.filter_grad(loss)(SpikingClassifier(frozen, key=jax.random.key(0)))
    assert float(jnp.abs(g.delta).max()) == 0.0


def test_stochastic_models_need_a_key():
    cfg = ModelConfig(inputs=4, hidden=4, classes=2, delta=0.3, jump_rate=0.1)
    assert cfg.stochastic and not ModelConfig().stochastic
    with pytest.raises(ConfigurationError, match="key"):
        SpikingClassifier(cfg, key=jax.random.key(0))(jnp.zeros((3, 1, 4)))


def test_default_training_reaches_95_percent_on_digits(data):
    result = train(TrainConfig().variant("lif"), data, seed=0)
    assert result.test_accuracy >= 0.95, result.history["test_accuracy"][-5:]
    assert result.seconds < 300
    h = result.history
    assert h["loss"][-1] < 0.5 * h["loss"][0] and len(h["epoch"]) == TrainConfig().epochs


def test_training_is_deterministic_per_seed(data):
    cfg = TrainConfig(epochs=2).variant("jump", hidden=32)
    a, b = train(cfg, data, seed=3), train(cfg, data, seed=3)
    assert a.history["loss"] == b.history["loss"] and a.test_accuracy == b.test_accuracy
    c = train(cfg, data, seed=4)
    assert c.history["loss"] != a.history["loss"]


def test_train_config_validation(data):
    with pytest.raises(ConfigurationError, match="coding"):
        TrainConfig(coding="phase")
    with pytest.raises(ConfigurationError, match="lr"):
        TrainConfig(lr=0.0)
    with pytest.raises(ConfigurationError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigurationError, match="name"):
        TrainConfig().variant("quantum")
    with pytest.raises(ConfigurationError, match="hidden"):
        ModelConfig(hidden=0)
    with pytest.raises(ConfigurationError, match="tau_m"):
        ModelConfig(tau_m=-1.0)
    with pytest.raises(ConfigurationError, match="inputs"):
        train(TrainConfig(model=ModelConfig(inputs=10), epochs=1), data)
    with pytest.raises(ConfigurationError, match="batch"):
        train(TrainConfig(batch=5000, epochs=1), data)
    assert set(VARIANTS) == {"lif", "qsn", "jump"}


def test_cli_train_json(capsys):
    code = main(["train", "digits", "--variant", "lif", "--epochs", "2", "--seeds", "2", "--json", "--no-progress"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["variant"] == "lif" and out["config"]["model"]["delta"] == 0.0 and out["config"]["epochs"] == 2
    runs = out["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    acc = np.array([r["test_accuracy"] for r in runs])
    # each seed learned: far above the majority-class share of its own test split (one-sided binomial test),
    # and a final training loss below ln(10), the cross-entropy of a uniform guess over the 10 classes
    for r in runs:
        y = load_digits(r["seed"]).y_test
        chance = np.bincount(y).max() / len(y)
        hits = round(r["test_accuracy"] * len(y))
        assert hits == pytest.approx(r["test_accuracy"] * len(y), abs=1e-9)
        assert scipy.stats.binomtest(hits, len(y), chance, alternative="greater").pvalue < 1e-12
        assert r["final_loss"] < np.log(10.0)
    # the CLI trains what it reports: seed 1 again through the API (the CLI's defaults, 2 epochs)
    assert train(TrainConfig(epochs=2).variant("lif"), seed=1).test_accuracy == acc[1]
    # the summary: the runs' mean and Student-t 95% interval, t(0.975; 1 dof) = 12.7062047
    assert out["test_accuracy_mean"] == pytest.approx(acc.mean(), rel=1e-12)
    assert acc[0] != acc[1]  # these two seeds differ, so the interval is defined (not None)
    half = 12.706204736174707 * acc.std(ddof=1) / np.sqrt(2)
    np.testing.assert_allclose(out["test_accuracy_ci95"], [acc.mean() - half, acc.mean() + half], rtol=1e-9)


def test_cli_names_a_missing_extra(capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    assert main(["train", "digits", "--epochs", "1", "--no-progress"]) == 1
    assert "pip install 'qsn[learn]'" in capsys.readouterr().err


def test_cli_train_table_and_errors(capsys):
    assert main(["train", "digits", "--variant", "qsn", "--epochs", "1", "--hidden", "16", "--no-progress"]) == 0
    assert "mean test accuracy" in capsys.readouterr().out
    assert main(["train", "digits", "--seeds", "0", "--no-progress"]) == 1
    assert "seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "mnist"])
