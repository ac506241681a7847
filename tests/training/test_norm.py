import numpy as np
import pytest

import training
from training.conv import Conv2d
from training.layers import Linear
from training.module import is_static
from training.norm import BatchNorm1d, BatchNorm2d, fold_batchnorm
from tests.gradcheck import check_module_gradients
from tests.reference import naive_layers as naive

# (layer, input shape [T, B, C, ...])
CASES = [(BatchNorm2d, (3, 2, 4, 3, 5)), (BatchNorm1d, (3, 4, 5)), (BatchNorm1d, (2, 3, 4, 6))]
CASE_IDS = ["2d", "1d", "1d-L"]


@pytest.fixture
def f64():
    training.set_default_dtype(np.float64)
    yield
    training.set_default_dtype(np.float32)


def _bn(Layer, C, seed=0, **kw):
    """A BatchNorm with non-trivial affine parameters and running statistics."""
    rng = np.random.default_rng(seed)
    bn = Layer(C, **kw)
    bn.weight.data[:] = rng.uniform(0.5, 2.0, C)
    bn.bias.data[:] = rng.uniform(-1.0, 1.0, C)
    bn.running_mean[:] = rng.uniform(-1.0, 1.0, C)
    bn.running_var[:] = rng.uniform(0.5, 2.0, C)
    return bn


def _x(shape, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    C = shape[2]
    offset = rng.uniform(-2, 2, C).reshape((1, 1, C) + (1,) * (len(shape) - 3))
    return (rng.standard_normal(shape) * 1.5 + offset).astype(dtype)


def _rows(x):
    """``[T, B, C, ...] -> [M, C]`` (one row per normalised entry)."""
    return np.moveaxis(x, 2, -1).reshape(-1, x.shape[2])


@pytest.mark.parametrize("Layer, shape", CASES, ids=CASE_IDS)
def test_training_forward_and_running_stats_match_naive(f64, Layer, shape):
    C = shape[2]
    bn = _bn(Layer, C)
    rm0, rv0 = bn.running_mean.copy(), bn.running_var.copy()
    x = _x(shape)
    y = bn(x)
    y_ref, mean, var = naive.batch_norm_train(_rows(x), bn.weight.data, bn.bias.data, bn.eps)
    np.testing.assert_allclose(_rows(y), y_ref, rtol=1e-12, atol=1e-12)
    M = x.size // C
    np.testing.assert_allclose(bn.running_mean, 0.9 * rm0 + 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.9 * rv0 + 0.1 * var * M / (M - 1), rtol=1e-12)
    assert int(bn.num_batches_tracked) == 1
    bn(x)
    assert int(bn.num_batches_tracked) == 2


@pytest.mark.parametrize("Layer, shape", CASES, ids=CASE_IDS)
def test_eval_uses_running_stats_and_caches_nothing(f64, Layer, shape):
    C = shape[2]
    bn = _bn(Layer, C).eval()
    x = _x(shape)
    rm0 = bn.running_mean.copy()
    y = bn(x)
    cshape = (1, 1, C) + (1,) * (len(shape) - 3)
    expected = (bn.weight.data.reshape(cshape) * (x - bn.running_mean.reshape(cshape))
                / np.sqrt(bn.running_var.reshape(cshape) + bn.eps) + bn.bias.data.reshape(cshape))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(bn.running_mean, rm0)
    assert int(bn.num_batches_tracked) == 0
    assert bn._x3 is None and bn._mean is None
    with pytest.raises(RuntimeError, match="backward"):
        bn.backward(np.ones_like(y))


def test_float32_statistics_are_accurate():
    bn = BatchNorm2d(3)
    x = _x((4, 8, 3, 9, 9), dtype=np.float32) + np.float32(100)   # large mean, unit spread
    y = bn(x)
    assert y.dtype == np.float32
    _, mean, var = naive.batch_norm_train(_rows(x.astype(np.float64)), np.ones(3), np.zeros(3), 1e-5)
    np.testing.assert_allclose(_rows(y.astype(np.float64)).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(_rows(y.astype(np.float64)).var(0), var / (var + 1e-5), rtol=1e-4)


# -- finite differences (float64, smooth mode) -----------------------------------------
@pytest.mark.parametrize("Layer, shape", CASES, ids=CASE_IDS)
def test_gradcheck_training_mode(f64, Layer, shape):
    check_module_gradients(_bn(Layer, shape[2]), _x(shape))


@pytest.mark.parametrize("Layer, shape", CASES, ids=CASE_IDS)
def test_gradcheck_running_statistics_mode(f64, Layer, shape):
    """Eval semantics (running statistics) with the backward cache of training mode."""
    bn = _bn(Layer, shape[2])
    bn.use_running_stats = True
    rm0 = bn.running_mean.copy()
    check_module_gradients(bn, _x(shape))
    np.testing.assert_array_equal(bn.running_mean, rm0)
    assert int(bn.num_batches_tracked) == 0
    x = _x(shape, seed=3)
    y_frozen = bn(x)
    np.testing.assert_allclose(bn.eval()(x), y_frozen, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("use_running_stats", [False, True])
@pytest.mark.parametrize("Layer, shape", CASES, ids=CASE_IDS)
def test_static_input(f64, Layer, shape, use_running_stats):
    x0 = _x(shape, seed=4)[0]
    xs = np.broadcast_to(x0, (4,) + x0.shape)
    a, b = _bn(Layer, shape[2]), _bn(Layer, shape[2])
    a.use_running_stats = b.use_running_stats = use_running_stats
    ys, yd = a(xs), b(np.array(xs))
    assert is_static(ys)
    np.testing.assert_allclose(ys, yd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.running_mean, b.running_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a.running_var, b.running_var, rtol=1e-12, atol=1e-15)
    g = np.random.default_rng(5).standard_normal(ys.shape)
    np.testing.assert_allclose(a.backward(g), b.backward(g), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.weight.grad, b.weight.grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.bias.grad, b.bias.grad, rtol=1e-12, atol=1e-12)
    c = _bn(Layer, shape[2])
    c.use_running_stats = use_running_stats
    naive.check_static_input_gradients(c, xs)


def test_need_input_grad_false(f64):
    bn = _bn(BatchNorm2d, 4)
    x = _x(CASES[0][1])
    g = np.random.default_rng(6).standard_normal(x.shape)
    bn(x)
    assert bn.backward(g, need_input_grad=False) is None
    assert np.abs(bn.weight.grad).sum() > 0 and np.abs(bn.bias.grad).sum() > 0


# -- folding into the preceding layer (export) ------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_fold_into_conv(f64, bias):
    conv = Conv2d(2, 3, 3, padding=1, bias=bias, rng=0)
    bn = _bn(BatchNorm2d, 3).eval()
    x = np.random.default_rng(7).standard_normal((2, 3, 2, 5, 5))
    W, b = bn.fold_into(conv)
    W2, b2 = fold_batchnorm(conv.weight.data, None if conv.bias is None else conv.bias.data, bn)
    np.testing.assert_array_equal(W, W2)
    np.testing.assert_array_equal(b, b2)
    folded = Conv2d(2, 3, 3, padding=1, rng=0)
    folded.weight.data[...] = W
    folded.bias.data[...] = b
    np.testing.assert_allclose(folded(x), bn(conv(x)), rtol=1e-12, atol=1e-12)


def test_fold_into_linear(f64):
    lin = Linear(6, 5, rng=1)
    bn = _bn(BatchNorm1d, 5).eval()
    x = np.random.default_rng(8).standard_normal((3, 4, 6))
    W, b = bn.fold_into(lin)
    np.testing.assert_allclose(x @ W.T + b, bn(lin(x)), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="does not feed"):
        _bn(BatchNorm1d, 4).fold_into(lin)


# -- parameters, buffers, errors -----------------------------------------------------------
def test_parameters_buffers_and_state_dict():
    bn = BatchNorm2d(3)
    assert bn.weight.data.dtype == np.float32 and bn.running_var.dtype == np.float32
    np.testing.assert_array_equal(bn.weight.data, 1)
    np.testing.assert_array_equal(bn.bias.data, 0)
    assert not bn.weight.weight_decay and not bn.bias.weight_decay
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    bn(_x((2, 3, 3, 4, 4), dtype=np.float32))
    state = bn.state_dict()
    assert int(state["num_batches_tracked"]) == 1
    other = BatchNorm2d(3)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.running_mean, bn.running_mean)
    np.testing.assert_array_equal(other.running_var, bn.running_var)
    assert int(other.num_batches_tracked) == 1


def test_repr_and_errors():
    assert repr(BatchNorm2d(8)) == "BatchNorm2d(8, eps=1e-05, momentum=0.1)"
    assert BatchNorm2d(channels=5).num_features == 5 and BatchNorm1d(features=6).num_features == 6
    assert repr(BatchNorm1d(4, eps=1e-3, momentum=0.2)) == "BatchNorm1d(4, eps=0.001, momentum=0.2)"
    bn2, bn1 = BatchNorm2d(3), BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3.*3 channels.*\(2, 1, 4, 5, 5\)"):
        bn2(np.zeros((2, 1, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3.*\[T, B, C, H, W\].*\(2, 1, 3\)"):
        bn2(np.zeros((2, 1, 3), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3.*\[T, B, F\].*\(2, 1, 3, 4, 4\)"):
        bn1(np.zeros((2, 1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3.*\(2, 1, 5\)"):
        bn1(np.zeros((2, 1, 5), np.float32))
    with pytest.raises(ValueError, match="more than one value"):
        bn1(np.zeros((1, 1, 3), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        bn1(np.zeros((2, 2, 3), np.float64))
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm2d(0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2d(2, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm2d(2, eps=0)
    y = bn1(np.ones((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="gradient shape"):
        bn1.backward(np.zeros((2, 3, 3), np.float32))
    bn1.backward(np.zeros_like(y))
    bn1.reset_cache()
    with pytest.raises(RuntimeError, match="backward"):
        bn1.backward(np.zeros_like(y))


def test_matches_torch_if_available(f64):
    torch = pytest.importorskip("torch")
    T, B, C, H, W = 3, 2, 4, 3, 5
    bn = _bn(BatchNorm2d, C)
    tb = torch.nn.BatchNorm2d(C).double()
    with torch.no_grad():
        tb.weight.copy_(torch.tensor(bn.weight.data))
        tb.bias.copy_(torch.tensor(bn.bias.data))
        tb.running_mean.copy_(torch.tensor(bn.running_mean))
        tb.running_var.copy_(torch.tensor(bn.running_var))
    x = _x((T, B, C, H, W))
    xt = torch.tensor(x.reshape(T * B, C, H, W), requires_grad=True)
    y, yt = bn(x), tb(xt)
    np.testing.assert_allclose(y.reshape(yt.shape), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean, tb.running_mean.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bn.running_var, tb.running_var.numpy(), rtol=1e-12, atol=1e-14)
    g = np.random.default_rng(0).standard_normal(y.shape)
    yt.backward(torch.tensor(g.reshape(yt.shape)))
    np.testing.assert_allclose(bn.backward(g).reshape(xt.shape), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.weight.grad, tb.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.bias.grad, tb.bias.grad.numpy(), rtol=1e-12, atol=1e-12)
    bn.eval()
    tb.eval()
    np.testing.assert_allclose(bn(x).reshape(yt.shape), tb(xt).detach().numpy(), rtol=1e-12, atol=1e-12)
