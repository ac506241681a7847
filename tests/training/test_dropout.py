import numpy as np
import pytest

import training
from training.dropout import Dropout
from training.module import is_static
from tests.gradcheck import check_module_gradients
from tests.reference import naive_layers as naive


@pytest.fixture
def f64():
    training.set_default_dtype(np.float64)
    yield
    training.set_default_dtype(np.float32)


def _x(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype(dtype)


@pytest.mark.parametrize("shape", [(4, 3, 5), (3, 2, 2, 4, 4)])
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_one_mask_for_all_steps_matches_naive(shape, p):
    d = Dropout(p, rng=3)
    x = _x(shape)
    y = d(x)
    assert y.dtype == x.dtype and y.shape == x.shape
    keep = d.mask != 0
    assert d.mask.shape == shape[1:]
    np.testing.assert_allclose(d.mask[keep], 1 / (1 - p), rtol=1e-6)
    np.testing.assert_allclose(y, naive.dropout(x, keep, p), rtol=1e-6)
    for t in range(1, shape[0]):                 # the same entries are dropped at every step
        np.testing.assert_array_equal(y[t] == 0, y[0] == 0)
        np.testing.assert_array_equal(y[t], x[t] * d.mask)
    g = _x(shape, seed=1)
    np.testing.assert_allclose(d.backward(g), naive.dropout(g, keep, p), rtol=1e-6)


def test_keep_rate_seed_and_fresh_masks():
    x = np.ones((2, 200, 500), np.float32)
    d = Dropout(0.3, rng=11)
    m1 = d(x)[0] != 0
    assert abs(m1.mean() - 0.7) < 0.01
    m2 = d(x)[0] != 0
    assert (m1 != m2).any()                      # a new mask for every forward
    again = Dropout(0.3, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(again(x)[0] != 0, m1)
    np.testing.assert_array_equal(Dropout(0.3)(x), Dropout(0.3, rng=0)(x))   # default seed 0
    # the expectation is preserved
    assert d(x).mean() == pytest.approx(1.0, abs=0.01)


def test_eval_is_identity_and_keeps_nothing():
    d = Dropout(0.5)
    x = _x((3, 2, 4))
    d(x)
    assert d.mask is not None
    d.eval()
    assert d(x) is x
    assert d.mask is None
    with pytest.raises(RuntimeError, match="backward"):
        d.backward(np.ones_like(x))


def test_fixed_mask_is_reused():
    d = Dropout(0.5, rng=2)
    x = _x((3, 4, 6))
    y1 = d(x)
    d.fixed_mask = True
    np.testing.assert_array_equal(d(x), y1)
    np.testing.assert_array_equal(d(x[:2]), y1[:2])   # also for a shorter sequence (online use)
    with pytest.raises(ValueError, match="fixed mask"):
        d(_x((3, 5, 6)))


@pytest.mark.parametrize("shape", [(3, 2, 5), (3, 2, 2, 3, 3)])
def test_gradcheck_with_fixed_mask(f64, shape):
    d = Dropout(0.4, rng=5)
    d.fixed_mask = True          # the first forward draws the mask, the others reuse it
    check_module_gradients(d, np.random.default_rng(6).standard_normal(shape))


def test_static_input_stays_static(f64):
    x0 = _x((2, 3, 4), dtype=np.float64)[0]
    xs = np.broadcast_to(x0, (4,) + x0.shape)
    d = Dropout(0.5, rng=7)
    y = d(xs)
    assert is_static(y)
    np.testing.assert_array_equal(y, np.array(xs) * d.mask)
    g = np.random.default_rng(8).standard_normal(y.shape)
    np.testing.assert_array_equal(d.backward(g), g * d.mask)
    d2 = Dropout(0.5, rng=7)
    d2.fixed_mask = True
    naive.check_static_input_gradients(d2, xs)


def test_extreme_probabilities():
    x = _x((2, 3, 4))
    d0 = Dropout(0.0)
    assert d0(x) is x
    g = np.ones_like(x)
    assert d0.backward(g) is g
    d1 = Dropout(1.0)
    np.testing.assert_array_equal(d1(x), 0)
    np.testing.assert_array_equal(d1.backward(g), 0)


def test_errors_and_repr():
    assert repr(Dropout(0.25)) == "Dropout(p=0.25)"
    with pytest.raises(ValueError, match="p must"):
        Dropout(1.5)
    with pytest.raises(ValueError, match="p must"):
        Dropout(-0.1)
    with pytest.raises(TypeError, match="rng"):
        Dropout(0.5, rng="seed")
    d = Dropout(0.5)
    with pytest.raises(ValueError, match=r"Dropout\(p=0.5\).*\(3, 4\)"):
        d(np.ones((3, 4), np.float32))
    with pytest.raises(RuntimeError, match="backward"):
        d.backward(np.ones((2, 3, 4), np.float32))
    d(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="gradient shape"):
        d.backward(np.ones((2, 3, 5), np.float32))
    assert d.backward(np.ones((2, 3, 4), np.float32), need_input_grad=False) is None
