"""API tests: every validation rule raises the documented qsn error type, naming what is at fault.

DESIGN §1 (parameter rules), §3 (public surface) and §4 ("bad input never yields NaN silently:
shapes, dtypes, NaN/inf currents, unknown modes raise qsn.errors.* with the offending field or index").
Every qsn error also subclasses the built-in type a user would catch (ValueError, RuntimeError,
ImportError), which is checked alongside.
"""

import importlib.util
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qsn
from qsn.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidInputError,
    InvalidStateError,
    QSNError,
    RecordingError,
)

P = qsn.NeuronParams
FIELDS = ("v_rest", "v_th", "tau_m", "r_m", "t_ref", "delta", "t2", "t1", "jump_rate", "dt")
N = 4


@pytest.fixture(scope="module")
def pure():
    p = P()
    return p, qsn.init_state(p, N, dtype=jnp.float64)


@pytest.fixture(scope="module")
def mixed():
    p = P()
    return p, qsn.init_state(p, N, mode="mixed", dtype=jnp.float64)


# --------------------------------------------------------------------------------------------------
# NeuronParams: one rule per case, message "NeuronParams.<field> must be <rule>, but <field> = <value>"
# --------------------------------------------------------------------------------------------------

SCALAR_RULES = [
    (dict(tau_m=-1.0), r"NeuronParams\.tau_m must be > 0, but tau_m = -1\.0"),
    (dict(tau_m=0.0), r"NeuronParams\.tau_m must be > 0"),
    (dict(dt=0.0), r"NeuronParams\.dt must be > 0, but dt = 0\.0"),
    (dict(dt=-0.1), r"NeuronParams\.dt must be > 0"),
    (dict(dt=30.0), r"NeuronParams\.dt must be <= tau_m, but dt = 30\.0"),
    (dict(dt=2.0, tau_m=1.0), r"NeuronParams\.dt must be <= tau_m"),
    (dict(v_th=-70.0), r"NeuronParams\.v_th must be > v_rest, but v_th = -70\.0"),
    (dict(v_th=-80.0), r"NeuronParams\.v_th must be > v_rest"),
    (dict(v_rest=-50.0), r"NeuronParams\.v_th must be > v_rest"),
    (dict(t_ref=-1.0), r"NeuronParams\.t_ref must be >= 0, but t_ref = -1\.0"),
    (dict(delta=-0.1), r"NeuronParams\.delta must be >= 0, but delta = -0\.1"),
    (dict(t2=0.0), r"NeuronParams\.t2 must be > 0, but t2 = 0\.0"),
    (dict(t2=-math.inf), r"NeuronParams\.t2 must be > 0"),
    (dict(t1=-1.0, t2=1.0), r"NeuronParams\.t1 must be > 0, but t1 = -1\.0"),
    (dict(t1=0.0), r"NeuronParams\.t1 must be > 0"),
    (dict(t2=30.0, t1=10.0), r"NeuronParams\.t2 must be <= 2\*t1 \(physical bound\), but t2 = 30\.0"),
    # t1 finite with the default t2 = inf breaks the same bound (gphi = 1/t2 - 1/(2 t1) < 0)
    (dict(t1=10.0), r"NeuronParams\.t2 must be <= 2\*t1.*t2 = inf"),
    (dict(jump_rate=-0.5), r"NeuronParams\.jump_rate must be >= 0, but jump_rate = -0\.5"),
]


@pytest.mark.parametrize("kwargs, match", SCALAR_RULES, ids=[str(k) for k, _ in SCALAR_RULES])
def test_scalar_rule_names_field(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        P(**kwargs)


def test_boundary_values_are_accepted():
    # the inclusive ends of each rule are valid
    P(dt=20.0, tau_m=20.0)  # dt == tau_m
    P(t_ref=0.0, delta=0.0, jump_rate=0.0)
    P(t2=20.0, t1=10.0)  # t2 == 2 t1
    P(t2=math.inf, t1=math.inf)
    P(t2=5.0)  # t1 = inf, finite t2


@pytest.mark.parametrize("field", FIELDS)
def test_nan_rejected_in_every_field(field):
    match = rf"NeuronParams\.{field} must be a number \(not NaN\), but {field} = nan"
    with pytest.raises(ConfigurationError, match=match):
        P(**{field: math.nan})


@pytest.mark.parametrize("field", [f for f in FIELDS if f != "dt"])
def test_nan_in_per_neuron_array_reports_index(field):
    values = np.full(5, getattr(P(), field), dtype=np.float64)
    values[3] = np.nan
    match = rf"NeuronParams\.{field} must be a number \(not NaN\), but {field}\[3\] = nan"
    with pytest.raises(ConfigurationError, match=match):
        P(**{field: values})


@pytest.mark.parametrize("field", [f for f in FIELDS if f not in ("t1", "t2")])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_inf_rejected_where_not_allowed(field, sign):
    with pytest.raises(ConfigurationError, match=rf"NeuronParams\.{field} must be finite, but {field} = -?inf"):
        P(**{field: sign * math.inf})


def test_inf_allowed_for_t1_t2():
    p = P(t1=math.inf, t2=math.inf)
    assert np.isinf(p.t1) and np.isinf(p.t2)


PER_NEURON = [
    (dict(tau_m=[20.0, 10.0, -1.0, 5.0]), r"NeuronParams\.tau_m must be > 0, but tau_m\[2\] = -1\.0"),
    (dict(v_th=[-55.0, -55.0, -80.0]), r"NeuronParams\.v_th must be > v_rest, but v_th\[2\] = -80\.0"),
    (dict(t_ref=[1.0, 2.0, 3.0, -0.5]), r"NeuronParams\.t_ref must be >= 0, but t_ref\[3\] = -0\.5"),
    (dict(delta=[0.1, -0.2]), r"NeuronParams\.delta must be >= 0, but delta\[1\] = -0\.2"),
    (dict(t2=[10.0, 0.0]), r"NeuronParams\.t2 must be > 0, but t2\[1\] = 0\.0"),
    (dict(t1=[-3.0, 10.0], t2=1.0), r"NeuronParams\.t1 must be > 0, but t1\[0\] = -3\.0"),
    (dict(t2=[10.0, 50.0], t1=10.0), r"NeuronParams\.t2 must be <= 2\*t1 \(physical bound\), but t2\[1\] = 50\.0"),
    (dict(jump_rate=[0.0, 0.1, -1.0]), r"NeuronParams\.jump_rate must be >= 0, but jump_rate\[2\] = -1\.0"),
    (dict(v_rest=[-70.0, -70.0, math.inf]), r"NeuronParams\.v_rest must be finite, but v_rest\[2\] = inf"),
    (dict(dt=1.0, tau_m=[20.0, 0.5, 20.0]), r"NeuronParams\.dt must be <= tau_m.*\[1\]"),
]


@pytest.mark.parametrize("kwargs, match", PER_NEURON, ids=[str(k) for k, _ in PER_NEURON])
def test_per_neuron_rule_reports_index(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        P(**kwargs)


def test_dt_must_be_scalar():
    with pytest.raises(ConfigurationError, match=r"NeuronParams\.dt must be a scalar.*shape \(2,\)"):
        P(dt=[0.1, 0.1])


def test_non_numeric_field():
    # the message names the field (since params.py named fields that are None or strings)
    with pytest.raises(ConfigurationError, match=r"NeuronParams\.delta must be a real number or array, but is 'abc'"):
        P(delta="abc")


def test_configuration_error_is_value_error():
    assert issubclass(ConfigurationError, ValueError) and issubclass(ConfigurationError, QSNError)
    with pytest.raises(ValueError, match="tau_m"):
        P(tau_m=-1.0)
    with pytest.raises(QSNError, match="tau_m"):
        P(tau_m=-1.0)
    for cls in (InvalidInputError, InvalidStateError):
        assert issubclass(cls, ValueError) and issubclass(cls, QSNError)
    assert issubclass(RecordingError, RuntimeError)
    assert issubclass(BackendUnavailableError, ImportError)


# --------------------------------------------------------------------------------------------------
# init_state
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", [f for f in FIELDS if f != "dt"])
@pytest.mark.parametrize("shape", [(3,), (2, 2)])
def test_init_state_field_not_broadcastable(field, shape):
    base = getattr(P(), field)
    p = P(**{field: np.full(shape, float(base))})
    n = 4
    match = rf"NeuronParams\.{field} must be a scalar or broadcastable to \(n,\) = \(4,\), but has shape"
    with pytest.raises(ConfigurationError, match=match):
        qsn.init_state(p, n)


def test_init_state_accepts_broadcastable_fields():
    s = qsn.init_state(P(delta=np.linspace(0.1, 0.4, 4), v_th=np.array([-55.0])), 4)
    assert s.v.shape == (4,)


def test_unknown_mode():
    match = r"Argument `mode` must be one of \('pure', 'mixed'\), but is 'quantum'"
    with pytest.raises(ConfigurationError, match=match):
        qsn.init_state(P(), 4, mode="quantum")


@pytest.mark.parametrize("n", [0, -3, 2.5, "4", True])
def test_bad_population_size(n):
    with pytest.raises(ConfigurationError, match=r"Argument `n` must be a positive int"):
        qsn.init_state(P(), n)


@pytest.mark.parametrize("dtype, shown", [("foo", r"'foo'"), ("float16", "float16"), (jnp.complex64, "complex64")])
def test_unknown_or_unsupported_dtype(dtype, shown):
    # 'foo' used to end in NumPy's raw TypeError "data type 'foo' not understood"
    with pytest.raises(ConfigurationError, match=rf"Argument `dtype` must be float32 or float64, but is {shown}"):
        qsn.init_state(P(), 4, dtype=dtype)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(v0="cold"), r"Argument `v0` must be numeric \(a scalar or an array\), but is 'cold'"),
        (dict(v0=np.zeros(5)), r"Argument `v0` must be a scalar or have shape \(n,\) = \(4,\), but has shape \(5,\)"),
        (dict(bloch0="up"), r"Argument `bloch0` must be numeric \(a scalar or an array\), but is 'up'"),
        (dict(bloch0=1.0), r"Argument `bloch0` must have shape \(3,\) or \(3, n\), but has shape \(\)"),
        (dict(bloch0=np.zeros((3, 2, 4))), r"Argument `bloch0` must have shape \(3,\) or \(3, n\), but has shape \(3, 2, 4\)"),
    ],
)
def test_bad_initial_values(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        qsn.init_state(P(), 4, mode="mixed", **kwargs)


def test_initial_bloch_vectors_per_neuron():
    # computed on (3, n) and broadcast last; compared with psi = (cos(th/2), e^{i ph} sin(th/2)) by hand
    r = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]).T
    s = qsn.init_state(P(), 3, bloch0=r, dtype=jnp.float64)
    h = np.sqrt(0.5)
    np.testing.assert_allclose(np.stack([s.re0, s.im0, s.re1, s.im1]), [[h, h, 0], [0, 0, 0], [h, 0, 1], [0, h, 0]], atol=1e-15)
    one = qsn.init_state(P(), 5, bloch0=[0.0, 1.0, 0.0], dtype=jnp.float64)
    np.testing.assert_allclose(np.asarray(one.im1), np.full(5, h), atol=1e-15)


@pytest.mark.parametrize("call", ["init_state", "check_state", "simulate"])
def test_params_as_a_dict(call):
    # a dict used to end in "AttributeError: 'dict' object has no attribute 'check_population'"
    from qsn.state import check_state

    d = {"delta": 0.3}
    s = qsn.init_state(P(), 4)
    fn = {
        "init_state": lambda: qsn.init_state(d, 4),
        "check_state": lambda: check_state(d, s),
        "simulate": lambda: qsn.simulate(d, s, 0.0, steps=1),
    }[call]
    with pytest.raises(ConfigurationError, match=r"Argument `params` must be a qsn\.NeuronParams, but is a dict; build one with qsn\.NeuronParams\(\*\*params\)"):
        fn()
    with pytest.raises(ConfigurationError, match=r"Argument `params` must be a qsn\.NeuronParams, but is NoneType"):
        qsn.init_state(None, 4)


def test_state_checked_in_blocks_names_the_neuron():
    # a non-finite value and a norm violation past the first block of 2**20 neurons keep their index
    from qsn.state import check_state

    n = 2**20 + 10
    s = qsn.init_state(P(), n, mode="mixed")
    with pytest.raises(InvalidStateError, match=rf"State field `y` has a non-finite value at neuron {2**20 + 3}"):
        check_state(P(), s._replace(y=s.y.at[2**20 + 3].set(jnp.nan)))
    with pytest.raises(InvalidStateError, match=rf"State must satisfy \|r\|\^2 <= 1.*neuron {2**20 + 7} has"):
        check_state(P(), s._replace(x=s.x.at[2**20 + 7].set(0.9)))


def test_non_float_dtype():
    with pytest.raises(ConfigurationError, match=r"Argument `dtype` must be float32 or float64, but is int32"):
        qsn.init_state(P(), 4, dtype=jnp.int32)


def test_float64_without_x64():
    """float64 while JAX's x64 mode is off is refused (never silently downcast to float32)."""
    ctx = getattr(jax, "enable_x64", None)  # jax.experimental.enable_x64 in older JAX
    if ctx is None:
        ctx = getattr(getattr(jax, "experimental", None), "enable_x64", None)
    if ctx is not None:
        with ctx(False):
            with pytest.raises(ConfigurationError, match=r"Argument `dtype` is float64 but JAX's x64 mode is off"):
                qsn.init_state(P(), 4, dtype=jnp.float64)
    else:  # pragma: no cover - older/newer JAX without the context manager
        jax.config.update("jax_enable_x64", False)
        try:
            with pytest.raises(ConfigurationError, match=r"Argument `dtype` is float64"):
                qsn.init_state(P(), 4, dtype=jnp.float64)
        finally:
            jax.config.update("jax_enable_x64", True)
    assert jax.config.jax_enable_x64  # restored for the other tests
    assert qsn.init_state(P(), 4, dtype=jnp.float64).v.dtype == jnp.float64


def test_bloch0_bad_shape():
    match = r"Argument `bloch0` must have shape \(3,\) or \(3, n\), but has shape"
    with pytest.raises(ConfigurationError, match=match):
        qsn.init_state(P(), 4, bloch0=[0.0, 1.0])


def test_bloch0_outside_ball_mixed():
    with pytest.raises(InvalidStateError, match=r"\|r\|\^2 <= 1.*neuron 0"):
        qsn.init_state(P(), 4, mode="mixed", bloch0=[0.0, 0.0, 2.0])


def test_bloch0_nan():
    with pytest.raises(InvalidStateError, match=r"non-finite"):
        qsn.init_state(P(), 4, mode="mixed", bloch0=[0.0, np.nan, 1.0])


def test_v0_nan():
    v0 = np.full(4, -65.0)
    v0[2] = np.nan
    with pytest.raises(InvalidStateError, match=r"State field `v` has a non-finite value at neuron 2"):
        qsn.init_state(P(), 4, v0=v0)


def test_pure_bloch0_must_be_unit():
    with pytest.raises((ConfigurationError, InvalidStateError), match="bloch0|psi|unit"):
        qsn.init_state(P(), 4, mode="pure", bloch0=[0.5, 0.0, 0.0])


def test_v0_wrong_shape_names_argument():
    with pytest.raises(ConfigurationError, match="v0"):
        qsn.init_state(P(), 4, v0=[-70.0, -65.0, -60.0])


def test_v0_wrong_shape_is_at_least_a_value_error():
    with pytest.raises(ValueError):
        qsn.init_state(P(), 4, v0=[-70.0, -65.0, -60.0])


# --------------------------------------------------------------------------------------------------
# Invalid states handed to simulate
# --------------------------------------------------------------------------------------------------


def test_pure_state_not_normalised(pure):
    p, s = pure
    bad = s._replace(re0=s.re0.at[1].set(2.0))
    with pytest.raises(InvalidStateError, match=r"\|psi\|\^2 = 1, but neuron 1"):
        qsn.simulate(p, bad, 0.0, steps=1)


def test_mixed_state_outside_bloch_ball(mixed):
    p, s = mixed
    bad = s._replace(x=s.x.at[3].set(0.8))  # |r|^2 = 1.64
    with pytest.raises(InvalidStateError, match=r"\|r\|\^2 <= 1.*neuron 3"):
        qsn.simulate(p, bad, 0.0, steps=1)


def test_mixed_state_inside_ball_accepted(mixed):
    p, s = mixed
    ok = s._replace(z=s.z * 0.5, x=s.x + 0.5)
    qsn.simulate(p, ok, 0.0, steps=1)


@pytest.mark.parametrize("field", ["v", "re1"])
def test_state_nan(pure, field):
    p, s = pure
    bad = s._replace(**{field: getattr(s, field).at[2].set(np.nan)})
    with pytest.raises(InvalidStateError, match=rf"State field `{field}` has a non-finite value at neuron 2"):
        qsn.simulate(p, bad, 0.0, steps=1)


def test_state_inf_v_mixed(mixed):
    p, s = mixed
    bad = s._replace(v=s.v.at[0].set(np.inf))
    with pytest.raises(InvalidStateError, match=r"State field `v` has a non-finite value at neuron 0"):
        qsn.simulate(p, bad, 0.0, steps=1)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("v", jnp.zeros((N, 1)), r"State field `v` must have shape \(n,\)"),
        ("re0", jnp.ones((N - 1,)), r"State field `re0` must have shape \(4,\)"),
        ("im1", jnp.zeros((N,), jnp.float32), r"State field `im1` must have shape \(4,\) and dtype float64.*float32"),
        ("refractory", jnp.zeros((N,)), r"State field `refractory` must have shape \(4,\) and dtype int32"),
        ("t", jnp.zeros((1,), jnp.int32), r"State field `t` must have shape \(\) and dtype int32"),
        ("refractory", jnp.full((N,), -1, jnp.int32), r"State field `refractory` must be >= 0"),
    ],
)
def test_state_shapes_and_dtypes(pure, field, value, match):
    p, s = pure
    with pytest.raises(InvalidStateError, match=match):
        qsn.simulate(p, s._replace(**{field: value}), 0.0, steps=1)


def test_mixed_state_wrong_shape(mixed):
    p, s = mixed
    with pytest.raises(InvalidStateError, match=r"State field `z` must have shape \(4,\)"):
        qsn.simulate(p, s._replace(z=jnp.ones((2,))), 0.0, steps=1)


def test_not_a_state():
    match = r"Argument `state` must be a qsn PureState or MixedState, but is tuple"
    with pytest.raises(InvalidStateError, match=match):
        qsn.simulate(P(), (jnp.zeros(3),), 0.0, steps=1)


def test_params_do_not_match_state_population(pure):
    _, s = pure
    match = r"NeuronParams\.delta must be a scalar or broadcastable to \(n,\) = \(4,\)"
    with pytest.raises(ConfigurationError, match=match):
        qsn.simulate(P(delta=[0.1, 0.2, 0.3]), s, 0.0, steps=1)


# --------------------------------------------------------------------------------------------------
# Currents
# --------------------------------------------------------------------------------------------------


def test_nan_scalar_current(pure):
    p, s = pure
    with pytest.raises(InvalidInputError, match=r"Argument `current` must be finite, but is .*nan"):
        qsn.simulate(p, s, float("nan"), steps=10)


def test_inf_vector_current_reports_neuron(pure):
    p, s = pure
    with pytest.raises(InvalidInputError, match=r"Argument `current` must be finite, but is .*inf.* at neuron 2$"):
        qsn.simulate(p, s, np.array([1.0, 2.0, np.inf, 3.0]), steps=10)


def test_nan_array_current_reports_step_and_neuron(pure):
    p, s = pure
    current = np.zeros((10, N))
    current[6, 3] = np.nan
    current[8, 0] = np.inf  # a later one: the first (in step order) is reported
    with pytest.raises(InvalidInputError, match=r"must be finite, but is .*nan.* at step 6, neuron 3$"):
        qsn.simulate(p, s, current)


def test_nan_from_callable_reports_step_and_neuron(pure):
    """A callable current returning NaN at step 17 (neuron 2), also across chunk boundaries."""
    p, s = pure
    bad = jnp.array([0.0, 0.0, jnp.nan, 0.0])

    def current(t):
        return jnp.where(t == 17, bad, jnp.full((N,), 5.0))

    for chunk in (None, 7):
        with pytest.raises(InvalidInputError, match=r"must be finite, but is .*nan.* at step 17, neuron 2$"):
            qsn.simulate(p, s, current, steps=40, chunk_steps=chunk, unroll=1)


def test_nan_from_callable_reports_absolute_step(pure):
    """In a continued run the step named is the absolute index state.t the function was called with."""
    p, s = pure
    first = qsn.simulate(p, s, 5.0, steps=10, unroll=1)
    assert int(first.state.t) == 10

    def current(t):
        return jnp.where(t == 23, jnp.array([jnp.inf, 0.0, 0.0, 0.0]), jnp.zeros((N,)))

    with pytest.raises(InvalidInputError, match=r"at step 23, neuron 0$"):
        qsn.simulate(p, first.state, current, steps=30, unroll=1)


@pytest.mark.parametrize(
    "current, match",
    [
        (np.zeros(3), r"must be a scalar, shape \(n,\) = \(4,\) or \(T, n\) = \(T, 4\), but has shape \(3,\)"),
        (np.zeros((10, 3)), r"but has shape \(10, 3\)"),
        (np.zeros((10, N, 1)), r"but has shape \(10, 4, 1\)"),
        (np.ones(N, dtype=np.complex128), r"must have a real dtype, but has dtype complex128"),
        ("abc", r"Argument `current` must have a real dtype"),
        (lambda t: jnp.zeros(3), r"a function of the step index, must return a scalar or shape \(n,\) = \(4,\), "
                                 r"but returns \(3,\)"),
        (lambda t: jnp.zeros((2, N)), r"but returns \(2, 4\)"),
        (lambda t: 1 / 0, r"Argument `current` \(a function of the step index\) failed to trace"),
    ],
    ids=["n-1", "T,n-1", "3d", "complex", "str", "fn-shape", "fn-2d", "fn-raises"],
)
def test_bad_current_shapes(pure, current, match):
    p, s = pure
    with pytest.raises(InvalidInputError, match=match):
        qsn.simulate(p, s, current, steps=10)


def test_step_rejects_bad_current_shape(pure):
    p, s = pure
    with pytest.raises(InvalidInputError, match=r"Argument `current` must be a scalar or have shape \(n,\) = \(4,\)"):
        qsn.step(p, s, jnp.zeros((2, N)))


@pytest.mark.parametrize("current", [1.0, np.ones(N), lambda t: jnp.ones(N)], ids=["scalar", "n", "fn"])
def test_steps_required_unless_array_current(pure, current):
    p, s = pure
    with pytest.raises(ConfigurationError, match=r"Argument `steps` is required unless `current` has shape \(T, n\)"):
        qsn.simulate(p, s, current)


def test_steps_must_match_array_current(pure):
    p, s = pure
    with pytest.raises(ConfigurationError, match=r"Argument `steps` is 11 but `current` has 10 rows"):
        qsn.simulate(p, s, np.zeros((10, N)), steps=11)


@pytest.mark.parametrize("steps", [-1, 1.5, "10"])
def test_bad_steps(pure, steps):
    p, s = pure
    with pytest.raises(ConfigurationError, match=r"Argument `steps` must be an int >= 0"):
        qsn.simulate(p, s, 1.0, steps=steps)


# --------------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------------


def test_oversize_recording_raises_before_running(pure):
    """A recording that cannot fit fails at once, before any step runs, naming the remedies."""
    p, s = pure
    traces = []

    def current(t):
        traces.append(t)  # runs only while JAX traces the function
        return jnp.full((N,), 10.0)

    start = time.perf_counter()
    with pytest.raises(RecordingError, match=r"record fewer neurons \(neurons=\.\.\.\).*record_every=") as info:
        qsn.simulate(p, s, current, steps=10**12, record=("v", "p1"), max_record_bytes=1000)
    elapsed = time.perf_counter() - start
    msg = str(info.value)
    assert "neurons=" in msg and "record_every=" in msg and "('events',)" in msg
    assert f"{10**12} steps x 4 neurons" in msg
    # 10**12 steps cannot have run; at most the one shape-check trace of the function happened
    assert elapsed < 10.0
    assert len(traces) <= 1


def test_oversize_recording_default_limit(pure):
    p, s = pure
    with pytest.raises(RecordingError, match=r"neurons=.*record_every="):
        qsn.simulate(p, s, 1.0, steps=10**13, record=("rho",))


def test_recording_limit_counts_subset_and_period(pure):
    """The same request fits once neurons= and record_every= shrink it (8 bytes per float64 sample)."""
    p, s = pure
    with pytest.raises(RecordingError):
        qsn.simulate(p, s, 1.0, steps=100, record=("v",), max_record_bytes=100 * N * 8 - 1)
    r = qsn.simulate(p, s, 1.0, steps=100, record=("v",), max_record_bytes=100 * 8, neurons=[0], unroll=1)
    assert r.v.shape == (100, 1)
    r = qsn.simulate(p, s, 1.0, steps=100, record=("v",), max_record_bytes=10 * N * 8, record_every=10, unroll=1)
    assert r.v.shape == (10, N)


def test_event_reservation_counts_against_limit(pure):
    p, s = pure
    with pytest.raises(RecordingError, match=r"needs"):
        qsn.simulate(p, s, 1.0, steps=10, record=("events",), event_capacity=10**6, max_record_bytes=10**6)


def test_event_capacity_overflow(pure):
    p, s = pure
    # I = 30 fires every 158 steps (first spike at step 138): 4 neurons x 6 spikes in 1000 steps > 3
    with pytest.raises(RecordingError, match=r"Spike events exceeded event_capacity=3"):
        qsn.simulate(p, s, 30.0, steps=1000, record=("events",), event_capacity=3, unroll=1)
    r = qsn.simulate(p, s, 30.0, steps=1000, record=("events",), event_capacity=24, unroll=1)
    assert r.events.step.size == 24


def test_missing_record_raises_with_hint(pure):
    p, s = pure
    r = qsn.simulate(p, s, 1.0, steps=5, record=("v",), unroll=1)
    for name in ("spikes", "rho", "p1", "coherence", "entropy"):
        match = rf"`{name}` was not recorded: pass record=\(\.\.\., '{name}'\) to qsn\.simulate"
        with pytest.raises(RecordingError, match=match):
            getattr(r, name)
    assert r.events is None


# --------------------------------------------------------------------------------------------------
# Other simulate arguments
# --------------------------------------------------------------------------------------------------


def test_unknown_backend(pure):
    p, s = pure
    match = r"Argument `backend` must be one of \('jax'(, '\w+')*\), but is 'torch'"  # the list grows with backends
    with pytest.raises(ConfigurationError, match=match):
        qsn.simulate(p, s, 1.0, steps=5, backend="torch")


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_cupy_backend_without_cupy(pure):
    p, s = pure
    with pytest.raises(BackendUnavailableError, match=r"backend='cupy' needs CuPy.*pip install") as info:
        qsn.simulate(p, s, 1.0, steps=5, backend="cupy")
    assert isinstance(info.value, ImportError)
    with pytest.raises(ImportError):
        qsn.simulate(p, s, 1.0, steps=5, backend="cupy")


@pytest.mark.parametrize("record", [("volts",), ("spikes", "V"), "p2"])
def test_unknown_record_name(pure, record):
    p, s = pure
    with pytest.raises(ConfigurationError, match=r"Argument `record` must name quantities from .*but contains"):
        qsn.simulate(p, s, 1.0, steps=5, record=record)


@pytest.mark.parametrize(
    "neurons, match",
    [
        ([0, 4], r"Argument `neurons` has index 4, outside a population of 4"),
        ([-5], r"Argument `neurons` has index -5, outside a population of 4"),
        (np.array([True, False]), r"Argument `neurons` as a mask must have shape \(4,\), but has \(2,\)"),
        ([0.5], r"Argument `neurons` must be None, a slice, a bool mask or a 1-D int array"),
        ([[0, 1]], r"Argument `neurons` must be None, a slice, a bool mask or a 1-D int array"),
        (slice(5, 9), r"Argument `neurons` selects no neuron"),
        (np.zeros(N, bool), r"Argument `neurons` selects no neuron"),
    ],
    ids=["too-big", "too-negative", "mask-shape", "float", "2d", "empty-slice", "empty-mask"],
)
def test_bad_neurons(pure, neurons, match):
    p, s = pure
    with pytest.raises(ConfigurationError, match=match):
        qsn.simulate(p, s, 1.0, steps=5, record=("v",), neurons=neurons)


@pytest.mark.parametrize("every", [0, -2, 1.5, "2"])
def test_bad_record_every(pure, every):
    p, s = pure
    with pytest.raises(ConfigurationError, match=r"Argument `record_every` must be an int >= 1"):
        qsn.simulate(p, s, 1.0, steps=5, record=("v",), record_every=every)


@pytest.mark.parametrize("kwargs, match", [
    (dict(chunk_steps=0), r"Argument `chunk_steps` must be an int >= 1"),
    (dict(chunk_steps=2.5), r"Argument `chunk_steps` must be an int >= 1"),
    (dict(unroll=0), r"Argument `unroll` must be (an int )?>= 1"),
])
def test_bad_chunk_and_unroll(pure, kwargs, match):
    p, s = pure
    with pytest.raises(ConfigurationError, match=match):
        qsn.simulate(p, s, 1.0, steps=5, **kwargs)


@pytest.mark.parametrize(
    "kwargs, mode, match",
    [
        (dict(jump_rate=0.1), "pure", r"quantum-jump spiking \(jump_rate > 0\)"),
        (dict(jump_rate=0.1), "mixed", r"quantum-jump spiking \(jump_rate > 0\)"),
        (dict(t2=10.0), "pure", r"pure-mode dephasing \(finite t2\)"),
        (dict(t2=5.0, t1=10.0), "pure", r"pure-mode relaxation \(finite t1\)"),
        (dict(jump_rate=np.array([0.0, 0.0, 0.0, 0.2])), "mixed", r"quantum-jump spiking"),
    ],
)
def test_missing_key(kwargs, mode, match):
    p = P(**kwargs)
    s = qsn.init_state(p, N, mode=mode, dtype=jnp.float64)
    with pytest.raises(ConfigurationError, match=r"Argument `key` is required: .*" + match):
        qsn.simulate(p, s, 1.0, steps=5)
    with pytest.raises(ConfigurationError, match=r"Argument `key` is required"):
        qsn.step(p, s, 1.0)


def test_mixed_mode_decoherence_needs_no_key():
    """Mixed mode integrates t1/t2 deterministically (exact Lindblad propagator): no key needed."""
    p = P(t2=10.0, t1=20.0)
    s = qsn.init_state(p, N, mode="mixed", dtype=jnp.float64)
    r = qsn.simulate(p, s, 1.0, steps=3, unroll=1)
    assert int(r.state.t) == 3


def test_vmap_over_decoherence_params_requires_key(pure):
    """A traced t2 may be finite, so its stochastic unravelling is compiled in and needs a key."""
    _, s = pure
    with pytest.raises(ConfigurationError, match=r"Argument `key` is required: pure-mode dephasing"):
        jax.vmap(lambda t2: qsn.simulate(P(t2=t2), s, 1.0, steps=5).spike_count)(jnp.linspace(10.0, 20.0, 3))


def test_vmap_over_delta_needs_no_key(pure):
    """Only the traced field is unknown: with concrete t1 = t2 = inf and no jumps, nothing is random."""
    _, s = pure
    deltas = jnp.linspace(0.1, 0.2, 3)
    batched = jax.vmap(lambda d: qsn.simulate(P(delta=d), s, 20.0, steps=50, record=("p1",), unroll=1).p1)(deltas)
    for i, d in enumerate(np.asarray(deltas)):
        single = qsn.simulate(P(delta=float(d)), s, 20.0, steps=50, record=("p1",), unroll=1).p1
        np.testing.assert_allclose(batched[i], single, rtol=0, atol=1e-12)


def test_events_not_available_under_jit(pure):
    p, s = pure
    with pytest.raises(ConfigurationError, match=r"record=\('events',\) is not available inside jit/vmap"):
        jax.jit(lambda i: qsn.simulate(p, s, i, steps=5, record=("events",)).spike_count)(jnp.ones(N))
