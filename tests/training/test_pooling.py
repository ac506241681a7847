import numpy as np
import pytest

import training
from training.module import is_static
from training.pooling import AvgPool2d, MaxPool2d
from tests.gradcheck import check_module_gradients
from tests.reference import naive_layers as naive

# (kernel, stride, H, W): default stride, overlapping, non-square, floor mode (odd sizes)
OPTIONS = [(2, None, 6, 8), (2, None, 7, 5), (3, 2, 7, 8), ((2, 3), (1, 2), 5, 7),
           (2, 1, 4, 5), (3, None, 6, 6), (1, None, 2, 3)]
OPTION_IDS = ["k2", "k2-odd", "k3s2", "k2x3s1x2", "k2s1", "k3", "k1"]
POOLS = [AvgPool2d, MaxPool2d]


@pytest.fixture
def f64():
    training.set_default_dtype(np.float64)
    yield
    training.set_default_dtype(np.float32)


def _x(H, W, T=2, B=3, C=2, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((T, B, C, H, W)).astype(dtype)


def _naive(pool, x):
    T, B, C, H, W = x.shape
    x4 = x.reshape(T * B, C, H, W)
    if isinstance(pool, AvgPool2d):
        y = naive.avg_pool2d(x4, pool.kernel_size, pool.stride)
        arg = None
    else:
        y, arg = naive.max_pool2d(x4, pool.kernel_size, pool.stride)
    return y.reshape((T, B) + y.shape[1:]), arg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("Pool", POOLS)
def test_forward_backward_match_naive(Pool, opt, dtype):
    k, s, H, W = opt
    pool = Pool(k, s)
    x = _x(H, W, dtype=dtype)
    y = pool(x)
    y_ref, arg = _naive(pool, x)
    assert y.dtype == dtype and y.shape == y_ref.shape
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    g = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    dx = pool.backward(g)
    assert dx.shape == x.shape and dx.dtype == dtype
    if Pool is MaxPool2d:
        dx_ref = naive.max_pool2d_backward((x.shape[0] * x.shape[1],) + x.shape[2:], arg,
                                           g.reshape((-1,) + g.shape[2:]))
        np.testing.assert_allclose(dx, dx_ref.reshape(x.shape), rtol=tol, atol=tol)
    else:
        # adjoint identity <avg(x), g> = <x, avg^T(g)>, and the explicit spread for one entry
        assert np.sum(y.astype(np.float64) * g) == pytest.approx(np.sum(x.astype(np.float64) * dx),
                                                                 rel=1e-5)
        kh, kw = pool.kernel_size
        e = np.zeros_like(g)
        e[0, 0, 0, 0, 0] = 1
        d = pool.backward(e)
        assert np.count_nonzero(d) == kh * kw and d[0, 0, 0, :kh, :kw] == pytest.approx(1 / (kh * kw))


@pytest.mark.parametrize("opt", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("Pool", POOLS)
def test_gradcheck(f64, Pool, opt):
    k, s, H, W = opt
    check_module_gradients(Pool(k, s), _x(H, W, seed=3))


@pytest.mark.parametrize("opt", [OPTIONS[0], OPTIONS[2]], ids=["k2", "k3s2"])
@pytest.mark.parametrize("Pool", POOLS)
def test_static_input(f64, Pool, opt):
    k, s, H, W = opt
    x0 = _x(H, W, T=1, seed=4)[0]
    xs = np.broadcast_to(x0, (3,) + x0.shape)
    a, b = Pool(k, s), Pool(k, s)
    ys, yd = a(xs), b(np.array(xs))
    assert is_static(ys)
    np.testing.assert_array_equal(ys, yd)
    g = np.random.default_rng(5).standard_normal(ys.shape)
    np.testing.assert_allclose(a.backward(g), b.backward(g), rtol=1e-15, atol=0)
    naive.check_static_input_gradients(Pool(k, s), xs)


def test_max_ties_go_to_first_in_row_major_order():
    pool = MaxPool2d(2)
    x = np.zeros((1, 1, 1, 4, 4), np.float32)
    x[..., 0, 1] = x[..., 1, 0] = 5         # tie between (0, 1) and (1, 0): to (0, 1)
    x[..., 2:, :2] = -1                     # four-way tie: to the top-left (2, 0)
    x[..., 2:, 2:] = 3                      # four-way tie: to (2, 2); window (0, 1) all 0: (0, 2)
    y = pool(x)
    np.testing.assert_array_equal(y[0, 0, 0], [[5, 0], [-1, 3]])
    dx = pool.backward(np.ones_like(y))[0, 0, 0]
    expected = np.zeros((4, 4), np.float32)
    expected[0, 1] = expected[0, 2] = expected[2, 0] = expected[2, 2] = 1
    np.testing.assert_array_equal(dx, expected)
    # the general (overlapping) kernel follows the same rule
    pool = MaxPool2d(2, stride=1)
    x = np.ones((1, 1, 1, 3, 3), np.float32)
    pool(x)
    dx = pool.backward(np.ones((1, 1, 1, 2, 2), np.float32))[0, 0, 0]
    np.testing.assert_array_equal(dx, [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("k, s", [(2, None), (3, 1)])
def test_max_propagates_nan(k, s):
    x = np.zeros((1, 1, 1, 4, 4), np.float32)
    x[..., 1, 1] = np.nan
    x[..., 0, 0] = 1
    y = MaxPool2d(k, s)(x)
    assert np.isnan(y[0, 0, 0, 0, 0])


@pytest.mark.parametrize("Pool", POOLS)
def test_errors_modes_and_repr(Pool):
    pool = Pool(3, 2)
    name = Pool.__name__
    assert repr(pool) == f"{name}(kernel_size=(3, 3), stride=(2, 2))"
    assert repr(Pool((2, 3))) == f"{name}(kernel_size=(2, 3), stride=(2, 3))"
    with pytest.raises(ValueError, match=f"{name}.*smaller than the window.*\\(2, 1, 3, 2, 5\\)"):
        pool(np.zeros((2, 1, 3, 2, 5), np.float32))
    with pytest.raises(ValueError, match=f"{name}.*5 dims.*\\(2, 3, 4, 4\\)"):
        pool(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="kernel_size"):
        Pool(0)
    with pytest.raises(ValueError, match="stride"):
        Pool(2, (1, -1))
    with pytest.raises(RuntimeError, match="backward"):
        Pool(2).backward(np.zeros((1, 1, 1, 2, 2), np.float32))
    x = np.zeros((2, 1, 3, 5, 5), np.float32)
    y = pool(x)
    with pytest.raises(ValueError, match="gradient shape"):
        pool.backward(np.zeros((2, 1, 3, 3, 3), np.float32))
    assert pool.backward(np.zeros_like(y), need_input_grad=False) is None
    pool.eval()
    pool(x)
    assert pool._shape is None and getattr(pool, "_arg", None) is None
    with pytest.raises(RuntimeError, match="backward"):
        pool.backward(np.zeros_like(y))
    pool.train()
    pool(x)
    pool.reset_cache()
    assert pool._shape is None


def test_matches_torch_if_available(f64):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = _x(7, 8, seed=9)
    for Pool, fn in [(AvgPool2d, F.avg_pool2d), (MaxPool2d, F.max_pool2d)]:
        for k, s in [(2, None), (3, 2), ((2, 3), (1, 2))]:
            pool = Pool(k, s)
            y = pool(x)
            xt = torch.tensor(x.reshape((-1,) + x.shape[2:]), requires_grad=True)
            yt = fn(xt, pool.kernel_size, pool.stride)
            np.testing.assert_allclose(y.reshape(yt.shape), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
            g = np.random.default_rng(0).standard_normal(y.shape)
            yt.backward(torch.tensor(g.reshape(yt.shape)))
            np.testing.assert_allclose(pool.backward(g).reshape(xt.shape), xt.grad.numpy(),
                                       rtol=1e-12, atol=1e-12)
