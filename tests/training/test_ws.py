"""Scaled weight standardisation (WSLinear, WSConv2d), Scale, and their export folds."""
import numpy as np
import pytest

import training
from snncore import modelfile as mf
from tests.gradcheck import check_module_gradients
from training.ws import standardize, standardize_backward


@pytest.fixture
def float64():
    with training.default_dtype(np.float64):
        yield


def naive_standardize(W, gain, eps=1e-4):
    """Row by row, written from the formula with np.var(ddof=1)."""
    out = np.empty_like(W)
    for o in range(W.shape[0]):
        w = W[o].ravel()
        n = w.size
        out[o] = (gain[o] * (w - w.mean()) / np.sqrt(np.var(w, ddof=1) * n + eps)).reshape(W[o].shape)
    return out


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 3, 2)])
def test_standardize_matches_formula(float64, shape):
    rng = np.random.default_rng(0)
    W = rng.standard_normal(shape)
    gain = rng.uniform(0.5, 2, shape[0])
    np.testing.assert_allclose(standardize(W, gain), naive_standardize(W, gain), rtol=1e-13,
                               atol=1e-14)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 3, 2), (800, 784)])
def test_standardize_backward_matches_array_formula(dtype, rtol, shape):
    """The fused row kernel against the module docstring's array expressions in float64."""
    rng = np.random.default_rng(3)
    W, G = rng.standard_normal(shape), rng.standard_normal(shape)
    gain = rng.uniform(0.5, 2, shape[0])
    n = int(np.prod(shape[1:]))
    W2, G2 = W.reshape(shape[0], n), G.reshape(shape[0], n)
    xc = W2 - W2.mean(axis=1, keepdims=True)
    d = np.sqrt((xc * xc).sum(axis=1, keepdims=True) / (n - 1) * n + 1e-4)
    H = gain[:, None] * G2
    dW_ref = (H - H.mean(axis=1, keepdims=True)) / d - xc * n / (n - 1) * (H * xc).sum(
        axis=1, keepdims=True) / d**3
    dgain_ref = (G2 * xc).sum(axis=1) / d[:, 0]
    dW, dgain = standardize_backward(G.astype(dtype), W.astype(dtype), gain.astype(dtype))
    assert dW.dtype == dgain.dtype == dtype and dW.shape == shape
    scale = np.abs(dW_ref).max()
    np.testing.assert_allclose(dW.reshape(shape[0], n) / scale, dW_ref / scale, rtol=0,
                               atol=rtol)
    np.testing.assert_allclose(dgain, dgain_ref, rtol=rtol, atol=rtol * np.abs(dgain_ref).max())


@pytest.mark.parametrize("make", [
    lambda rng: training.WSLinear(6, 4, rng=rng),
    lambda rng: training.WSLinear(6, 4, bias=False, rng=rng),
    lambda rng: training.WSConv2d(2, 3, 3, padding=1, rng=rng),
    lambda rng: training.WSConv2d(2, 3, (2, 3), stride=2, rng=rng),
])
@pytest.mark.parametrize("static", [False, True])
def test_ws_backward_matches_finite_differences(float64, make, static):
    """Input, weight (through the standardisation), gain and bias against central
    differences; the gain starts away from 1 so its gradient's factor is exercised."""
    rng = np.random.default_rng(1)
    layer = make(rng)
    layer.gain.data[...] = rng.uniform(0.5, 2.0, layer.gain.shape)
    shape = (3, 2, 6) if isinstance(layer, training.Linear) else (3, 2, 2, 5, 5)
    x = rng.standard_normal(shape)
    if static:
        x = training.encoding.direct(x[0], 3)
    check_module_gradients(layer, x)


def test_ws_weight_gradient_is_not_the_plain_one(float64):
    """Guard against a backward that skips the standardisation: the weight gradient of a
    WSLinear differs from a Linear's with the same W_hat."""
    rng = np.random.default_rng(2)
    ws = training.WSLinear(5, 3, rng=rng)
    plain = training.Linear(5, 3, rng=rng)
    plain.weight.data = ws.effective_weight().copy()
    plain.bias.data = ws.bias.data.copy()
    x = rng.standard_normal((2, 4, 5))
    np.testing.assert_allclose(ws.forward(x), plain.forward(x), rtol=1e-14)
    g = rng.standard_normal((2, 4, 3))
    ws.backward(g), plain.backward(g)
    assert not np.allclose(ws.weight.grad, plain.weight.grad)
    np.testing.assert_allclose(ws.weight.grad.sum(axis=1), 0, atol=1e-12)  # mean removed


def test_ws_needs_fan_in_two():
    with pytest.raises(ValueError, match="fan_in >= 2"):
        training.WSLinear(1, 3)


def test_scale_forward_backward_and_errors(float64):
    s = training.Scale()
    assert s.c == 2.74 and list(s.parameters()) == []
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    np.testing.assert_array_equal(s.forward(x), x * 2.74)
    np.testing.assert_array_equal(s.backward(x), x * 2.74)
    for bad in (0.0, -1.0, np.inf):
        with pytest.raises(ValueError, match="c must be a finite number > 0"):
            training.Scale(bad)


def ws_net(rng):
    return training.Sequential(
        training.WSConv2d(1, 4, 3, padding=1, rng=rng), training.Scale(1.5),     # after a conv
        training.LIF(tau=2.0, reset="subtract"), training.Scale(2.74),           # scales spikes
        training.AvgPool2d(2), training.WSConv2d(4, 4, 3, padding=1, rng=rng),
        training.LIF(beta=0.5, reset="subtract"), training.Scale(), training.Flatten(),
        training.WSLinear(4 * 4 * 4, 10, rng=rng), training.LIF(beta=0.5, reset="subtract"),
        training.Scale(), training.WSLinear(10, 3, rng=rng))


def test_export_folds_ws_and_scale(float64, tmp_path):
    """The exported plain weights, run by the dense engine, give the WS/Scale network's
    output; Scale after a spiking layer leaves the next bias alone."""
    import eventsim

    rng = np.random.default_rng(4)
    net = ws_net(rng)
    for layer in net.layers:
        if hasattr(layer, "gain"):
            layer.gain.data[...] = rng.uniform(1.0, 2.0, layer.gain.shape)
    net.eval()
    x = training.encoding.direct(rng.random((6, 1, 8, 8)), 4)
    y = net.forward(x)
    model = training.to_model(net, input_shape=(1, 8, 8), T=4, dtype=np.float64)
    kinds = [l.kind for l in model.layers]
    assert kinds == ["conv2d", "spiking", "avgpool2d", "conv2d", "spiking", "flatten", "dense",
                     "spiking", "dense", "readout"]
    w0 = net.layers[0].effective_weight()
    np.testing.assert_allclose(model.layers[0].weight, w0 * 1.5 * 0.5, rtol=1e-15)   # Scale, 1/tau
    np.testing.assert_allclose(model.layers[0].bias, net.layers[0].bias.data * 0.75, rtol=1e-15)
    np.testing.assert_allclose(model.layers[3].weight, net.layers[5].effective_weight() * 2.74,
                               rtol=1e-15)
    np.testing.assert_array_equal(model.layers[3].bias, net.layers[5].bias.data)   # not scaled
    np.testing.assert_array_equal(model.layers[8].bias, net.layers[12].bias.data)
    y2 = training.to_network(model).forward(x)
    np.testing.assert_allclose(y2, y, rtol=1e-9, atol=1e-9)
    assert np.abs(y).max() > 0
    path = mf.write_model(model, tmp_path / "ws.h5")
    rec = eventsim.Simulator(path).run(x)
    np.testing.assert_array_equal(rec.predictions, training.losses.decode(y).argmax(axis=1))
