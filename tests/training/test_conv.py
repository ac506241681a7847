import numpy as np
import pytest

import training
import training.conv as conv_mod
from training.conv import Conv2d
from training.layers import Flatten, Linear, Sequential
from training.module import is_static
from training.neurons import LIF
from training.norm import BatchNorm2d
from training.pooling import AvgPool2d
from tests.gradcheck import check_module_gradients
from tests.reference import naive_layers as naive

# (C_in, C_out, kernel, stride, padding, H, W)
GEOMETRIES = [
    (2, 3, 3, 1, 0, 6, 7),
    (2, 3, 3, 1, 1, 6, 7),
    (2, 3, 3, 1, 2, 5, 5),
    (3, 2, 3, 2, 1, 7, 6),
    (2, 2, (2, 3), (2, 1), (0, 2), 7, 5),
    (1, 4, (3, 1), 1, (1, 0), 5, 4),
    (1, 2, 1, 1, 0, 3, 3),
]
GEOMETRY_IDS = ["k3s1p0", "k3s1p1", "k3s1p2", "k3s2p1", "k2x3s2x1p0x2", "k3x1p1x0", "k1"]


@pytest.fixture
def f64():
    training.set_default_dtype(np.float64)
    yield
    training.set_default_dtype(np.float32)


@pytest.fixture(params=["chunk-gemm", "per-image"])
def gemm_mode(request, monkeypatch):
    """Run a test through both product layouts (one GEMM per chunk / one per image)."""
    monkeypatch.setattr(conv_mod, "_PER_IMAGE_MAX_K", 0 if request.param == "chunk-gemm" else 10 ** 9)
    return request.param


@pytest.fixture
def small_chunks(monkeypatch):
    """Force many chunks (with a partial last one) through the chunked lowering."""
    monkeypatch.setattr(conv_mod, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(conv_mod, "_MIN_CHUNK_COLUMNS", 1)


def _conv(geom, bias=True, seed=0):
    C, O, k, s, p, H, W = geom
    return Conv2d(C, O, k, stride=s, padding=p, bias=bias, rng=seed)


def _input(geom, T=2, B=3, seed=1, dtype=np.float64):
    C, H, W = geom[0], geom[5], geom[6]
    return np.random.default_rng(seed).standard_normal((T, B, C, H, W)).astype(dtype)


def _naive_forward(conv, x):
    T, B = x.shape[:2]
    y = naive.conv2d(x.reshape((T * B,) + x.shape[2:]), conv.weight.data,
                     None if conv.bias is None else conv.bias.data, conv.stride, conv.padding)
    return y.reshape((T, B) + y.shape[1:])


# -- forward / backward against the naive loops ---------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("geom", GEOMETRIES, ids=GEOMETRY_IDS)
def test_forward_backward_match_naive(f64, geom, bias, gemm_mode):
    conv = _conv(geom, bias)
    x = _input(geom)
    y = conv(x)
    np.testing.assert_allclose(y, _naive_forward(conv, x), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(2).standard_normal(y.shape)
    conv.zero_grad()
    dx = conv.backward(g)
    T, B = x.shape[:2]
    dx_ref, dW_ref, db_ref = naive.conv2d_backward(
        x.reshape((T * B,) + x.shape[2:]), conv.weight.data, g.reshape((T * B,) + g.shape[2:]),
        conv.stride, conv.padding)
    np.testing.assert_allclose(dx, dx_ref.reshape(x.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, dW_ref, rtol=1e-11, atol=1e-12)
    if bias:
        np.testing.assert_allclose(conv.bias.grad, db_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geom", GEOMETRIES[:5], ids=GEOMETRY_IDS[:5])
def test_chunked_lowering_matches_single_chunk(f64, geom, gemm_mode, monkeypatch):
    x = _input(geom, T=3, B=3)
    g = np.random.default_rng(3).standard_normal((3, 3, geom[1]) + _conv(geom).output_shape(*x.shape[3:]))
    results = []
    for chunk_bytes, min_cols in [(1 << 30, 1 << 30), (1, 1), (1, 40)]:
        monkeypatch.setattr(conv_mod, "_CHUNK_BYTES", chunk_bytes)
        monkeypatch.setattr(conv_mod, "_MIN_CHUNK_COLUMNS", min_cols)
        conv = _conv(geom)
        y = conv(x)
        dx = conv.backward(g)
        results.append((y, dx, conv.weight.grad.copy(), conv.bias.grad.copy()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_float32_forward_close_to_naive():
    geom = GEOMETRIES[1]
    conv = _conv(geom)
    assert conv.weight.data.dtype == np.float32
    x = _input(geom, dtype=np.float32)
    y = conv(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, _naive_forward(conv, x.astype(np.float64)), rtol=1e-5, atol=1e-5)


# -- finite differences (float64, smooth mode) -----------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("geom", GEOMETRIES, ids=GEOMETRY_IDS)
def test_gradcheck(f64, geom, bias, gemm_mode):
    check_module_gradients(_conv(geom, bias), _input(geom))


@pytest.mark.parametrize("geom", [GEOMETRIES[1], GEOMETRIES[3]], ids=["k3s1p1", "k3s2p1"])
def test_gradcheck_chunked(f64, geom, small_chunks, gemm_mode):
    check_module_gradients(_conv(geom), _input(geom, T=2, B=3))


@pytest.mark.parametrize("geom", [GEOMETRIES[1], GEOMETRIES[4]], ids=["k3s1p1", "k2x3s2x1p0x2"])
def test_gradcheck_static_input(f64, geom, gemm_mode):
    x0 = _input(geom, T=1, B=2)[0]
    x = np.broadcast_to(x0, (3,) + x0.shape)
    assert is_static(x)
    naive.check_static_input_gradients(_conv(geom), x)


# -- static input (direct encoding) ----------------------------------------------------
@pytest.mark.parametrize("need_input_grad", [True, False])
def test_static_input_matches_dense(f64, need_input_grad, gemm_mode):
    geom = GEOMETRIES[3]
    x0 = _input(geom, T=1, B=2)[0]
    xs = np.broadcast_to(x0, (4,) + x0.shape)
    xd = np.array(xs)
    a, b = _conv(geom), _conv(geom)
    ys, yd = a(xs), b(xd)
    assert is_static(ys) and not is_static(yd)
    np.testing.assert_allclose(ys, yd, rtol=1e-13, atol=1e-13)
    g = np.random.default_rng(5).standard_normal(yd.shape)
    gs = a.backward(g, need_input_grad=need_input_grad)
    gd = b.backward(g, need_input_grad=need_input_grad)
    np.testing.assert_allclose(a.weight.grad, b.weight.grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.bias.grad, b.bias.grad, rtol=1e-12, atol=1e-12)
    if need_input_grad:
        np.testing.assert_allclose(gs, gd, rtol=1e-12, atol=1e-12)
    else:
        assert gs is None and gd is None


def test_need_input_grad_false_keeps_parameter_grads(f64):
    geom = GEOMETRIES[2]
    x = _input(geom)
    a, b = _conv(geom), _conv(geom)
    g = np.random.default_rng(6).standard_normal(a(x).shape)
    b(x)
    assert a.backward(g, need_input_grad=False) is None
    b.backward(g)
    np.testing.assert_array_equal(a.weight.grad, b.weight.grad)
    np.testing.assert_array_equal(a.bias.grad, b.bias.grad)


# -- a small convolutional SNN end to end -------------------------------------------------
@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("reset", ["hard", "subtract"])
def test_gradcheck_conv_snn(f64, static, reset):
    # (no conv bias: BatchNorm in training mode cancels it, its gradient is exactly 0)
    rng = np.random.default_rng(7)
    net = Sequential(
        Conv2d(2, 3, 3, padding=1, bias=False, rng=rng), BatchNorm2d(3), LIF(beta=0.8, reset=reset),
        AvgPool2d(2), Flatten(), Linear(3 * 3 * 3, 4, rng=rng))
    bn = net[1]
    bn.weight.data[:] = rng.uniform(0.5, 1.5, 3)
    bn.bias.data[:] = rng.uniform(0.2, 0.6, 3)
    if static:
        x0 = rng.standard_normal((2, 2, 6, 6))
        naive.check_static_input_gradients(net, np.broadcast_to(x0, (3,) + x0.shape),
                                           max_entries=40)
    else:
        check_module_gradients(net, rng.standard_normal((3, 2, 2, 6, 6)), max_entries=40)


# -- parameters, modes, errors -------------------------------------------------------------
def test_init_follows_pytorch_rule_and_seed():
    a = Conv2d(3, 5, (3, 2), rng=1)
    b = Conv2d(3, 5, (3, 2), rng=np.random.default_rng(1))
    assert a.weight.shape == (5, 3, 3, 2) and a.bias.shape == (5,)
    assert a.weight.data.dtype == np.float32
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    bound = 1 / np.sqrt(3 * 3 * 2)
    assert np.abs(a.weight.data).max() <= bound and np.abs(a.bias.data).max() <= bound
    assert np.abs(a.weight.data).max() > 0.5 * bound
    assert Conv2d(3, 5, 2, bias=False).bias is None
    assert [n for n, _ in a.named_parameters()] == ["weight", "bias"]


def test_repr_and_geometry():
    c = Conv2d(1, 32, 3, stride=2, padding=(1, 0))
    assert repr(c) == "Conv2d(1, 32, kernel_size=(3, 3), stride=(2, 2), padding=(1, 0), bias=True)"
    assert c.output_shape(28, 28) == (14, 13)


def test_eval_mode_keeps_no_cache():
    c = Conv2d(2, 3, 3)
    x = np.zeros((2, 1, 2, 5, 5), np.float32)
    c.train()(x)
    assert c._x is not None
    c.reset_cache()
    assert c._x is None
    c.eval()(x)
    assert c._x is None
    with pytest.raises(RuntimeError, match="backward"):
        c.backward(np.zeros((2, 1, 3, 3, 3), np.float32))


@pytest.mark.parametrize("shape, match", [
    ((2, 1, 3, 5, 5), "input channels"),
    ((2, 2, 5, 5), "5 dims"),
    ((2, 1, 2, 5, 5, 1), "5 dims"),
    ((2, 1, 2, 2, 5), "smaller than the kernel"),
    ((2, 1, 2, 5, 1), "smaller than the kernel"),
])
def test_input_errors_name_layer_and_shape(shape, match):
    c = Conv2d(2, 3, 3)
    with pytest.raises(ValueError, match=match) as err:
        c(np.zeros(shape, np.float32))
    assert "Conv2d(2, 3" in str(err.value) and str(shape) in str(err.value)


def test_other_errors():
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2d(1, 2, 0)
    with pytest.raises(ValueError, match="stride"):
        Conv2d(1, 2, 3, stride=(1, 0))
    with pytest.raises(ValueError, match="padding"):
        Conv2d(1, 2, 3, padding=-1)
    with pytest.raises(ValueError, match="channel"):
        Conv2d(0, 2, 3)
    c = Conv2d(2, 3, 3, padding=1)
    with pytest.raises(ValueError, match="dtype"):
        c(np.zeros((2, 1, 2, 4, 4), np.float64))
    c(np.zeros((2, 1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="gradient shape"):
        c.backward(np.zeros((2, 1, 3, 3, 3), np.float32))
    with pytest.raises(RuntimeError, match="backward"):
        Conv2d(2, 3, 3).backward(np.zeros((2, 1, 3, 3, 3), np.float32))


def test_matches_torch_if_available(f64):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    geom = GEOMETRIES[4]
    conv = _conv(geom)
    x = _input(geom)
    y = conv(x)
    T, B = x.shape[:2]
    xt = torch.tensor(x.reshape((T * B,) + x.shape[2:]), requires_grad=True)
    wt = torch.tensor(conv.weight.data, requires_grad=True)
    bt = torch.tensor(conv.bias.data, requires_grad=True)
    yt = F.conv2d(xt, wt, bt, stride=conv.stride, padding=conv.padding)
    np.testing.assert_allclose(y.reshape(yt.shape), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(0).standard_normal(y.shape)
    yt.backward(torch.tensor(g.reshape(yt.shape)))
    dx = conv.backward(g)
    np.testing.assert_allclose(dx.reshape(xt.shape), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, wt.grad.numpy(), rtol=1e-11, atol=1e-12)
