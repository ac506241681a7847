"""Input encoders: shapes, dtypes, the stride-0 direct view, spike statistics, seeding, validation."""
from __future__ import annotations

import numpy as np
import pytest

from training import encoding
from training.config import default_dtype

SHAPES = [(3, 1, 28, 28), (4, 784), (2, 5)]


def _images(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).random(shape).astype(dtype)


def _encode(name, x, T, seed=0, **kw):
    if name == "direct":
        return encoding.direct(x, T, **kw)
    rng = np.random.default_rng(seed)
    if name == "rate":
        return encoding.rate(x, T, rng, **kw)
    return encoding.poisson(x, T, rng, max_rate_hz=200.0, dt=1e-3, **kw)


ENCODERS = ["direct", "rate", "poisson"]


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_and_dtype(name, shape, dtype):
    out = _encode(name, _images(shape), 7, dtype=dtype)
    assert out.shape == (7,) + shape and out.dtype == dtype
    if name != "direct":
        assert out.flags.c_contiguous and out.flags.writeable
        assert set(np.unique(out)) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ENCODERS)
def test_default_dtype_follows_config(name):
    x = _images((2, 10), dtype=np.float64)
    with default_dtype(np.float32):
        assert _encode(name, x, 3).dtype == np.float32
    with default_dtype(np.float64):
        assert _encode(name, x, 3).dtype == np.float64


def test_direct_is_a_read_only_stride0_view():
    x = _images((3, 1, 28, 28))
    out = encoding.direct(x, 25)
    assert out.strides[0] == 0
    assert not out.flags.writeable
    assert out.base is not None and np.shares_memory(out[0], out[24])
    for t in (0, 24):
        np.testing.assert_array_equal(out[t], x)
    with pytest.raises(ValueError):
        out[0, 0, 0, 0, 0] = 1.0


def test_direct_accepts_any_finite_current():
    x = np.array([[-2.0, 0.0, 3.5]])
    np.testing.assert_array_equal(encoding.direct(x, 2, dtype=np.float64), [x, x])


def _levels(probabilities, n_pixels=50):
    """An image whose pixels take each value of ``probabilities`` ``n_pixels`` times."""
    return np.repeat(np.asarray(probabilities, np.float64), n_pixels)[None, :]


def _check_frequencies(spikes, p, n_pixels):
    """Per level, the spike frequency lies within 5 binomial standard deviations of ``p``."""
    T = spikes.shape[0]
    freq = spikes.reshape(T, len(p), n_pixels).mean(axis=(0, 2))
    n = T * n_pixels
    tol = 5 * np.sqrt(np.maximum(p * (1 - p), 1e-12) / n)
    assert np.all(np.abs(freq - p) <= tol), (freq, p, tol)


def test_rate_frequency_matches_probability():
    p = np.array([0.0, 0.02, 0.1, 0.3, 0.5, 0.77, 0.95, 1.0])
    x = _levels(p)
    s = encoding.rate(x, 2000, np.random.default_rng(1), dtype=np.float64)[:, 0]   # [T, pixels]
    _check_frequencies(s, p, 50)
    assert s[:, :50].sum() == 0 and s[:, -50:].min() == 1          # p = 0 never, p = 1 always
    # steps are independent draws, not one draw repeated: P(s[t] == s[t+1]) = p^2 + (1-p)^2
    half = s[:, 4 * 50: 5 * 50]
    same = np.mean(half[1:] == half[:-1])
    assert abs(same - 0.5) < 0.02


def test_rate_gain_scales_and_clips():
    x = _levels([0.1, 0.3, 0.6, 0.9])
    s = encoding.rate(x, 2000, np.random.default_rng(2), gain=2.0)
    _check_frequencies(s, np.array([0.2, 0.6, 1.0, 1.0]), 50)
    assert encoding.rate(x, 10, np.random.default_rng(2), gain=0.0).sum() == 0


def test_poisson_frequency_is_one_minus_exp():
    levels = np.array([0.0, 0.1, 0.5, 1.0])
    rate_hz, dt = 500.0, 1e-3                   # r dt = 0.5 at x = 1: 1 - e^-0.5 = 0.39, not 0.5
    s = encoding.poisson(_levels(levels), 2000, np.random.default_rng(3), rate_hz, dt)
    _check_frequencies(s, 1 - np.exp(-levels * rate_hz * dt), 50)


@pytest.mark.parametrize("name", ["rate", "poisson"])
def test_seeding(name):
    x = _images((4, 1, 28, 28))
    a, b = _encode(name, x, 20, seed=5), _encode(name, x, 20, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _encode(name, x, 20, seed=6))
    # the spikes do not depend on the output dtype
    np.testing.assert_array_equal(a, _encode(name, x, 20, seed=5, dtype=np.float64))


@pytest.mark.parametrize("name", ["rate", "poisson"])
def test_generator_state_advances(name):
    x = _images((2, 30))
    rng = np.random.default_rng(0)
    first = encoding.rate(x, 5, rng) if name == "rate" else encoding.poisson(x, 5, rng, 300.0, 1e-3)
    second = encoding.rate(x, 5, rng) if name == "rate" else encoding.poisson(x, 5, rng, 300.0, 1e-3)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("bad_rng", [None, 0, np.random.RandomState(0)])
def test_rng_must_be_a_generator(bad_rng):
    x = _images((2, 5))
    with pytest.raises(TypeError, match="Generator"):
        encoding.rate(x, 3, bad_rng)
    with pytest.raises(TypeError, match="Generator"):
        encoding.poisson(x, 3, bad_rng, 100.0, 1e-3)


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("T", [0, -1, 2.5, True, "3", None])
def test_bad_T(name, T):
    with pytest.raises(ValueError, match="T"):
        _encode(name, _images((2, 5)), T)


def test_numpy_integer_T_is_accepted():
    assert encoding.direct(_images((2, 5)), np.int64(3)).shape == (3, 2, 5)


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_images(name, bad):
    x = _images((2, 5), dtype=np.float64)
    x[1, 3] = bad
    with pytest.raises(ValueError, match=r"images\[1, 3\]"):
        _encode(name, x, 3)


@pytest.mark.parametrize("name", ["rate", "poisson"])
@pytest.mark.parametrize("bad", [1.5, -0.25, 255.0])
def test_rate_codes_need_unit_interval(name, bad):
    x = _images((2, 5), dtype=np.float64)
    x[0, 2] = bad
    with pytest.raises(ValueError, match=r"images\[0, 2\] = " + str(bad).replace(".", r"\.") + r".*\[0, 1\]"):
        _encode(name, x, 3)


def test_uint8_pixels_are_rejected_by_rate_codes():
    x = np.full((1, 4), 200, np.uint8)
    with pytest.raises(ValueError, match="200"):
        encoding.rate(x, 2, np.random.default_rng(0))


@pytest.mark.parametrize("kw, match", [
    (dict(gain=-1.0), "gain"), (dict(gain=np.nan), "gain"), (dict(gain="x"), "gain"),
])
def test_bad_gain(kw, match):
    with pytest.raises(ValueError, match=match):
        encoding.rate(_images((2, 5)), 3, np.random.default_rng(0), **kw)


@pytest.mark.parametrize("max_rate_hz, dt, match", [
    (-1.0, 1e-3, "max_rate_hz"), (np.inf, 1e-3, "max_rate_hz"), (100.0, 0.0, "dt"), (100.0, -1e-3, "dt"),
    (100.0, np.nan, "dt"),
])
def test_bad_poisson_parameters(max_rate_hz, dt, match):
    with pytest.raises(ValueError, match=match):
        encoding.poisson(_images((2, 5)), 3, np.random.default_rng(0), max_rate_hz, dt)


@pytest.mark.parametrize("name", ENCODERS)
def test_bad_dtype_and_input_kind(name):
    with pytest.raises(ValueError, match="dtype"):
        _encode(name, _images((2, 5)), 3, dtype=np.int32)
    with pytest.raises(ValueError, match="real numeric"):
        _encode(name, np.array([["a", "b"]]), 3)
    with pytest.raises(ValueError, match="batch axis"):
        _encode(name, np.float32(0.5), 3)
