"""Input converters: spike-time lists, tonic arrays, rate/Poisson coding, direct input."""
from __future__ import annotations

import numpy as np
import pytest

from eventsim import inputs
from eventsim.inputs import EventBatch


# -- EventBatch / from_dense / to_dense ---------------------------------------------------
@pytest.mark.parametrize("shape", [(7, 3, 5), (4, 2, 2, 3, 3), (1, 1, 1)])
@pytest.mark.parametrize("density", [0.0, 0.2, 1.0])
def test_from_dense_round_trip_on_binary_arrays(shape, density):
    x = (np.random.default_rng(1).random(shape) < density).astype(np.float32)
    ev = inputs.from_dense(x).validate()
    assert ev.T == shape[0] and ev.batch_size == shape[1] and ev.input_shape == shape[2:]
    assert len(ev.times) == int(x.sum())
    np.testing.assert_array_equal(inputs.to_dense(ev), x)


def test_to_dense_adds_duplicates():
    ev = inputs.from_spike_times([1, 1, 0], [2, 2, 0], T=3, input_shape=(4,), values=[1.0, 0.5, -1.0])
    d = inputs.to_dense(ev)
    assert d.shape == (3, 1, 4)
    assert d[1, 0, 2] == 1.5 and d[0, 0, 0] == -1.0 and d.sum() == 0.5


def _batch(times, ptr, T=6):
    times = np.asarray(times, np.int64)
    return EventBatch(times=times, indices=np.zeros(len(times), np.int64),
                      values=np.ones(len(times), np.float32), sample_ptr=np.asarray(ptr, np.int64),
                      T=T, input_shape=(3,))


def test_validate_allows_time_to_restart_at_each_sample():
    # empty samples between, a sample starting earlier than the previous one ended
    _batch([1, 4, 5, 0, 0, 2, 3], [0, 3, 3, 6, 6, 7]).validate()


@pytest.mark.parametrize("times, ptr, sample", [
    ([2, 1], [0, 2], 0),
    ([1, 4, 5, 0, 3, 2], [0, 3, 6], 1),
    ([0, 1, 0, 5, 4], [0, 2, 2, 3, 5], 3),
])
def test_validate_names_the_unsorted_sample(times, ptr, sample):
    with pytest.raises(ValueError, match=rf"sample {sample} is not sorted by time"):
        _batch(times, ptr).validate()


@pytest.mark.parametrize("field, value, match", [
    ("values", np.nan, r"EventBatch\.values: must be finite floats, event 2 is nan"),
    ("values", np.inf, r"EventBatch\.values: must be finite floats, event 2 is inf"),
    ("times", 6, r"EventBatch\.times: value 6 outside \[0, 6\)"),
    ("times", -1, r"EventBatch\.times: value -1 outside \[0, 6\)"),
    ("indices", 3, r"EventBatch\.indices: address 3 outside \[0, 3\) for input shape \(3,\)"),
    ("indices", -4, r"EventBatch\.indices: address -4 outside \[0, 3\)"),
])
def test_validate_names_the_bad_event(field, value, match):
    ev = _batch([0, 1, 2, 3], [0, 4])
    getattr(ev, field)[2] = value
    with pytest.raises(ValueError, match=match):
        ev.validate()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint64, ">i8", np.int16])
def test_validate_takes_any_integer_dtype(dtype):
    ev = _batch([0, 1, 2, 5], [0, 4])
    ev = EventBatch(times=ev.times.astype(dtype), indices=ev.indices.astype(dtype),
                    values=ev.values.astype(np.float16), sample_ptr=ev.sample_ptr, T=6,
                    input_shape=(3,))
    ev.validate()
    bad = EventBatch(times=ev.times, indices=(ev.indices + 3).astype(dtype), values=ev.values,
                     sample_ptr=ev.sample_ptr, T=6, input_shape=(3,))
    with pytest.raises(ValueError, match="address 3 outside"):
        bad.validate()


# -- from_spike_times ---------------------------------------------------------------------
def test_spike_times_single_sample_sorted_stably():
    t = np.array([3, 0, 3, 1, 0])
    i = np.array([5, 1, 2, 0, 4])
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float32)
    ev = inputs.from_spike_times(t, i, T=4, input_shape=(2, 3), values=v)
    assert isinstance(ev, EventBatch) and ev.batch_size == 1 and ev.input_shape == (2, 3)
    np.testing.assert_array_equal(ev.times, [0, 0, 1, 3, 3])
    np.testing.assert_array_equal(ev.indices, [1, 4, 0, 5, 2])   # ties keep the given order
    np.testing.assert_array_equal(ev.values, [2, 5, 4, 1, 3])
    assert ev.times.dtype == np.int64 and ev.indices.dtype == np.int64
    np.testing.assert_array_equal(ev.sample_ptr, [0, 5])


def test_spike_times_several_samples():
    t = np.array([2, 0, 1, 0, 2])
    i = np.array([0, 1, 2, 3, 4])
    s = np.array([1, 1, 0, 2, 0])
    ev = inputs.from_spike_times(t, i, T=3, input_shape=5, sample=s)
    assert ev.batch_size == 3
    np.testing.assert_array_equal(ev.sample_ptr, [0, 2, 4, 5])
    np.testing.assert_array_equal(ev.times, [1, 2, 0, 2, 0])
    np.testing.assert_array_equal(ev.indices, [2, 4, 1, 0, 3])
    assert ev.values.dtype == np.float32 and np.all(ev.values == 1.0)
    # trailing empty samples need batch_size
    ev = inputs.from_spike_times(t, i, T=3, input_shape=5, sample=s, batch_size=5)
    np.testing.assert_array_equal(ev.sample_ptr, [0, 2, 4, 5, 5, 5])


def test_spike_times_empty_and_integral_floats():
    ev = inputs.from_spike_times([], [], T=2, input_shape=(3,))
    assert len(ev.times) == 0 and ev.batch_size == 1
    ev = inputs.from_spike_times(np.array([1.0, 0.0]), np.array([2.0, 1.0]), T=2, input_shape=(3,))
    np.testing.assert_array_equal(ev.times, [0, 1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(times=[0, -1], indices=[0, 1]), r"times\[1\] = -1.*negative"),
    (dict(times=[0, 5], indices=[0, 1]), r"times\[1\] = 5.*>= T = 5"),
    (dict(times=[0, 7], indices=[0, 1]), r"times\[1\] = 7"),
    (dict(times=[0, 1], indices=[0, 6]), r"indices\[1\] = 6.*outside \[0, 6\)"),
    (dict(times=[0, 1], indices=[-2, 0]), r"indices\[0\] = -2"),
    (dict(times=[0.5, 1], indices=[0, 0]), r"times\[0\] = 0.5.*integer"),
    (dict(times=[0, 1], indices=[0]), r"indices: expected 2 entries"),
    (dict(times=[[0, 1]], indices=[0, 1]), r"times: expected a 1-D array"),
    (dict(times=[0, 1], indices=[0, 1], values=[1.0, np.nan]), r"values\[1\] = .*nan.*not finite"),
    (dict(times=[0, 1], indices=[0, 1], values=[1.0]), r"values: expected a 1-D array of 2"),
    (dict(times=[0, 1], indices=[0, 1], sample=[0, -1]), r"sample\[1\] = -1"),
    (dict(times=[0, 1], indices=[0, 1], sample=[0, 3], batch_size=2), r"sample\[1\] = 3.*batch_size"),
    (dict(times=[0], indices=[0], T=0), r"T: must be a positive integer, got 0"),
    (dict(times=[0], indices=[0], input_shape=(2, 0)), r"input_shape"),
])
def test_spike_times_errors_name_field_and_value(kwargs, match):
    args = dict(T=5, input_shape=(2, 3))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        inputs.from_spike_times(**args)


# -- from_tonic ---------------------------------------------------------------------------
TONIC_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def _tonic(rows, dtype=TONIC_DTYPE):
    return np.array([tuple(r) for r in rows], dtype=dtype)


def test_tonic_binning_with_known_counts():
    W, H, P = 4, 3, 2
    ev = _tonic([
        (1, 2, 0, 1), (1, 2, 999, 1), (1, 2, 500, 1),   # same bin & address -> count 3 (sorted below)
        (0, 0, 1000, 0), (3, 1, 1999, 1),              # step 1
        (0, 0, 5000, 0),                               # step 5
    ])
    ev = ev[np.argsort(ev["t"], kind="stable")]
    b = inputs.from_tonic(ev, (W, H, P), dt=1000)
    assert b.input_shape == (P, H, W) and b.T == 6 and b.batch_size == 1
    addr = lambda x, y, p: p * H * W + y * W + x  # noqa: E731
    got = {(int(t), int(i)): float(v) for t, i, v in zip(b.times, b.indices, b.values)}
    assert got == {(0, addr(1, 2, 1)): 3.0, (1, addr(0, 0, 0)): 1.0, (1, addr(3, 1, 1)): 1.0,
                   (5, addr(0, 0, 0)): 1.0}
    assert np.all(np.diff(b.times) >= 0)
    binary = inputs.from_tonic(ev, (W, H, P), dt=1000, binary=True)
    assert np.all(binary.values == 1.0) and len(binary.times) == 4
    # dense view agrees with a direct histogram
    d = inputs.to_dense(b)
    assert d.shape == (6, 1, P, H, W) and d.sum() == 6 and d[0, 0, 1, 2, 1] == 3


def test_tonic_window_and_signed_polarity():
    ev = _tonic([(0, 0, 100, -1), (1, 0, 250, 1), (1, 0, 400, 1), (2, 0, 900, -1)])
    b = inputs.from_tonic(ev, (3, 1, 2), dt=100, T=4, t_start=100)
    # steps: 100->0, 250->1, 400->3, 900->8 (outside T=4, dropped); -1 -> channel 0
    np.testing.assert_array_equal(b.times, [0, 1, 3])
    np.testing.assert_array_equal(b.indices, [0, 3 + 1, 3 + 1])
    assert b.T == 4


def test_tonic_float_times_and_several_samples():
    dt = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<f8"), ("p", "<i8")])
    a = _tonic([(0, 0, 0.0, 0), (1, 1, 2.5, 1)], dt)
    c = _tonic([(1, 0, 7.9, 0)], dt)
    b = inputs.from_tonic([a, c], (2, 2, 2), dt=2.5)
    assert b.batch_size == 2 and b.T == 4
    np.testing.assert_array_equal(b.sample_ptr, [0, 2, 3])
    np.testing.assert_array_equal(b.times, [0, 1, 3])
    np.testing.assert_array_equal(b.indices, [0, 4 + 2 + 1, 1])


def test_tonic_audio_layout_without_y_and_p():
    ev = np.array([(3, 10), (3, 15), (699, 20)], dtype=[("x", "<i4"), ("t", "<i8")])
    b = inputs.from_tonic(ev, (700, 1, 1), dt=10)
    assert b.input_shape == (1, 1, 700)
    np.testing.assert_array_equal(b.times, [1, 2])
    np.testing.assert_array_equal(b.indices, [3, 699])
    np.testing.assert_array_equal(b.values, [2.0, 1.0])


@pytest.mark.parametrize("rows, sensor, kw, match", [
    ([(0, 0, 5, 0), (0, 0, 3, 0)], (2, 2, 2), {}, r"events\.t\[1\] = 3.*not sorted"),
    ([(0, 0, -5, 0)], (2, 2, 2), {}, r"events\.t\[0\] = -5.*negative"),
    ([(2, 0, 5, 0)], (2, 2, 2), {}, r"events\.x\[0\] = 2.*outside the sensor"),
    ([(0, -1, 5, 0)], (2, 2, 2), {}, r"events\.y\[0\] = -1.*outside the sensor"),
    ([(0, 0, 5, 2)], (2, 2, 2), {}, r"events\.p\[0\] = 2.*polarity"),
    ([(0, 0, 5, -1), (0, 0, 6, 0)], (2, 2, 2), {}, r"events\.p\[1\] = 0"),
    ([(0, 0, 5, 0)], (2, 2, 2), {"dt": 0}, r"dt: must be"),
    ([(0, 0, 5, 0)], (2, 2), {}, r"sensor_size"),
    ([(0, 0, 5, 0)], (2, 2, 2), {"T": 0}, r"T: must be a positive integer"),
    ([(0, 0, 5, 0)], (2, 2, 2), {"t_start": -1}, r"t_start"),
])
def test_tonic_errors_name_field_and_value(rows, sensor, kw, match):
    args = {"dt": 10, **kw}
    with pytest.raises(ValueError, match=match):
        inputs.from_tonic(_tonic(rows), sensor, **args)


def test_tonic_missing_fields_and_not_structured():
    ev = np.array([(0, 1)], dtype=[("x", "<i4"), ("t", "<i8")])
    with pytest.raises(ValueError, match=r"missing field\(s\) \['y', 'p'\]"):
        inputs.from_tonic(ev, (2, 2, 2), dt=1)
    with pytest.raises(ValueError, match="structured array"):
        inputs.from_tonic(np.zeros((3, 4)), (2, 2, 2), dt=1)
    with pytest.raises(ValueError, match=r"events\[1\]"):
        inputs.from_tonic([_tonic([(0, 0, 1, 0)]), _tonic([(5, 0, 1, 0)])], (2, 2, 2), dt=1)


# -- rate and Poisson coding ------------------------------------------------------------
def test_rate_code_statistics_per_step_and_pixel():
    B, T = 50, 200
    p = np.linspace(0.0, 1.0, 11)
    x = np.broadcast_to(p, (B, 11)).copy()
    ev = inputs.rate_code(x, T, np.random.default_rng(3))
    d = inputs.to_dense(ev)
    assert d.shape == (T, B, 11) and set(np.unique(d)) <= {0.0, 1.0}
    # per-pixel frequency: binomial with B*T = 10000 trials, 5 sigma <= 0.025
    freq = d.mean(axis=(0, 1))
    sigma = np.sqrt(p * (1 - p) / (B * T))
    assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-12)
    assert freq[0] == 0.0 and freq[-1] == 1.0
    # every step has the same law (first spike offset and gaps right): mean over pixels 1..9
    per_step = d[:, :, 1:10].mean(axis=(1, 2))
    s = np.sqrt(np.mean(p[1:10] * (1 - p[1:10])) / (B * 9))
    assert abs(per_step[0] - 0.5) < 5 * s and abs(per_step[-1] - 0.5) < 5 * s
    assert np.all(np.abs(per_step - 0.5) < 6 * s)


def test_rate_code_matches_independent_bernoulli_law():
    # P(no spike in T steps) = (1 - p)^T, spike count ~ Binomial(T, p); check mean and variance
    T, n, p = 20, 20000, 0.15
    ev = inputs.rate_code(np.full((1, n), p), T, np.random.default_rng(11))
    counts = np.bincount(ev.indices, minlength=n)
    assert abs(counts.mean() - T * p) < 5 * np.sqrt(T * p * (1 - p) / n)
    assert abs(counts.var() / (T * p * (1 - p)) - 1) < 0.05
    assert abs(np.mean(counts == 0) - (1 - p) ** T) < 5 * np.sqrt((1 - p) ** T / n)


def test_rate_code_gain_sorting_seed_and_sparsity():
    x = np.random.default_rng(0).random((4, 1, 6, 6)) * 0.5
    a = inputs.rate_code(x, 30, np.random.default_rng(7), gain=2.0)
    b = inputs.rate_code(x, 30, np.random.default_rng(7), gain=2.0)
    c = inputs.rate_code(x, 30, np.random.default_rng(8), gain=2.0)
    for f in ("times", "indices", "values", "sample_ptr"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.indices, c.indices)
    assert a.input_shape == (1, 6, 6) and a.batch_size == 4 and a.T == 30
    for s in range(4):
        seg = slice(a.sample_ptr[s], a.sample_ptr[s + 1])
        key = a.times[seg] * 36 + a.indices[seg]
        assert np.all(np.diff(key) > 0)  # by step, then address, no duplicates
    z = inputs.rate_code(np.zeros((3, 5)), 10, np.random.default_rng(0))
    assert len(z.times) == 0 and z.batch_size == 3


def test_rate_code_tiny_probabilities_do_not_overflow():
    ev = inputs.rate_code(np.full((2, 100), 1e-300), 1000, np.random.default_rng(0))
    assert len(ev.times) == 0
    ev = inputs.rate_code(np.full((1, 4), 1e-300), 5, np.random.default_rng(0), gain=1e300)
    assert len(ev.times) == 20


def test_poisson_code_probability():
    B, T, rate, dt = 20, 500, 100.0, 1e-3
    x = np.array([[0.0, 0.5, 1.0]] * B)
    ev = inputs.poisson_code(x, T, np.random.default_rng(5), max_rate_hz=rate, dt=dt)
    freq = inputs.to_dense(ev).mean(axis=(0, 1))
    p = 1 - np.exp(-x[0] * rate * dt)
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / (B * T)) + 1e-12)
    a = inputs.poisson_code(x, 10, np.random.default_rng(1), 50.0, 1e-3)
    b = inputs.poisson_code(x, 10, np.random.default_rng(1), 50.0, 1e-3)
    np.testing.assert_array_equal(a.times, b.times)


@pytest.mark.parametrize("fn", ["rate", "poisson"])
def test_rate_codes_validate(fn):
    def call(images=np.full((2, 3), 0.5), T=4, rng=np.random.default_rng(0), **kw):
        if fn == "rate":
            return inputs.rate_code(images, T, rng, **kw)
        kw.setdefault("max_rate_hz", 10.0)
        kw.setdefault("dt", 1e-3)
        return inputs.poisson_code(images, T, rng, **kw)

    with pytest.raises(TypeError, match="numpy.random.Generator"):
        call(rng=0)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        call(rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match=r"images\[0, 1\] = .*nan"):
        call(images=np.array([[0.1, np.nan, 0.2]]))
    with pytest.raises(ValueError, match=r"images\[1, 0\] = .*255.*\[0, 1\]"):
        call(images=np.array([[0, 1], [255, 0]], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[B, \.\.\.features\]"):
        call(images=np.zeros(3))
    with pytest.raises(ValueError, match="T: must be a positive integer"):
        call(T=0)
    if fn == "rate":
        with pytest.raises(ValueError, match="gain"):
            call(gain=-1.0)
    else:
        with pytest.raises(ValueError, match="dt"):
            call(dt=0.0)
        with pytest.raises(ValueError, match="max_rate_hz"):
            call(max_rate_hz=np.inf)


def test_poisson_code_takes_the_training_encoder_keyword():
    """One name for the rate in both packages: ``max_rate_hz``; ``rate_hz`` still works, warned."""
    import inspect

    from training import encoding

    x = np.array([[0.2, 0.9, 1.0]] * 4)
    new = inputs.poisson_code(x, 20, np.random.default_rng(2), max_rate_hz=300.0, dt=1e-3)
    assert "max_rate_hz" in inspect.signature(encoding.poisson).parameters
    with pytest.warns(DeprecationWarning, match="'rate_hz' is deprecated, use 'max_rate_hz'"):
        old = inputs.poisson_code(x, 20, np.random.default_rng(2), rate_hz=300.0, dt=1e-3)
    np.testing.assert_array_equal(new.times, old.times)
    np.testing.assert_array_equal(new.indices, old.indices)
    dense = encoding.poisson(x, 20, np.random.default_rng(2), max_rate_hz=300.0, dt=1e-3)
    assert dense.sum() > 0
    with pytest.raises(TypeError, match="give 'max_rate_hz' only"):
        inputs.poisson_code(x, 20, np.random.default_rng(2), 300.0, 1e-3, rate_hz=300.0)
    with pytest.raises(TypeError, match="missing required argument 'max_rate_hz'"):
        inputs.poisson_code(x, 20, np.random.default_rng(2), dt=1e-3)
    with pytest.raises(TypeError, match="missing required argument 'dt'"):
        inputs.poisson_code(x, 20, np.random.default_rng(2), 300.0)


# -- direct -------------------------------------------------------------------------------
def test_direct_is_a_stride0_view_like_training():
    x = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float32)
    d = inputs.direct(x, 6)
    assert d.shape == (6, 3, 1, 4, 4) and d.strides[0] == 0 and not d.flags.writeable
    np.testing.assert_array_equal(d[5], x)
    training_encoding = pytest.importorskip("training.encoding")
    ref = training_encoding.direct(x, 6)
    assert ref.dtype == d.dtype and ref.strides == d.strides
    with pytest.raises(ValueError):
        inputs.direct(np.array([[np.inf]]), 2)
