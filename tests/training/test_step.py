"""Step-wise execution: ``reset_state`` then ``step`` for t = 0..T-1 equals ``forward(x)[t]``.

Exact (bit-for-bit) equality needs every sum to be exact: BLAS adds a matrix product's terms in
an order that depends on the number of rows (``T*B`` in ``forward``, ``B`` in ``step``), so the
exactness tests use dyadic weights and inputs (multiples of a power of two with few significant
bits: every partial sum is representable in float32 and float64).  With arbitrary weights the
two agree up to that round-off (tested with a tolerance).
"""
import numpy as np
import pytest

import training
from training.klif import KLIF


def dyadic(rng, shape, denom=32, top=32, dtype=np.float64):
    return (rng.integers(-top, top + 1, size=shape) / denom).astype(dtype)


def make_dyadic(net, rng, dtype):
    for name, p in net.named_parameters():
        if not name.endswith(".k"):                 # KLIF's k stays 1
            p.data = dyadic(rng, p.data.shape, dtype=dtype)
            p.grad = np.zeros_like(p.data)
    return net


def run_steps(net, x):
    net.reset_state(x.shape[1])
    return np.stack([net.step(x[t]) for t in range(x.shape[0])])


def conv_net(rng, neuron):
    return training.Sequential(
        training.Conv2d(2, 4, 3, padding=1, rng=rng), training.BatchNorm2d(4), neuron(),
        training.MaxPool2d(2), training.Conv2d(4, 4, 3, padding=1, rng=rng), neuron(),
        training.AvgPool2d(2), training.Dropout(0.3, rng=rng), training.Flatten(),
        training.Linear(4 * 2 * 2, 6, rng=rng), neuron(), training.Linear(6, 3, rng=rng))


NEURONS = {
    "lif_tau_hard": lambda: training.LIF(tau=2.0, threshold=0.5),
    "lif_beta_subtract": lambda: training.LIF(beta=0.75, threshold=0.5, reset="subtract"),
    "if_subtract": lambda: training.IF(threshold=0.5, reset="subtract"),
    "klif": lambda: KLIF(tau=2.0, k=1.0, threshold=0.5),
    "ternary": lambda: training.LIF(beta=0.25, threshold=0.5, spikes="ternary"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("neuron", sorted(NEURONS))
@pytest.mark.parametrize("static", [True, False])
def test_step_equals_forward_exactly(dtype, neuron, static):
    """Conv2d, BatchNorm (eval), LIF/IF/KLIF/ternary, MaxPool, AvgPool, Dropout (eval),
    Flatten, Linear: the stacked steps equal the forward bit for bit (dyadic values)."""
    rng = np.random.default_rng(3)
    with training.default_dtype(dtype):
        net = conv_net(rng, NEURONS[neuron])
    net = make_dyadic(net, rng, dtype)
    for layer in net.layers:           # dyadic BatchNorm statistics: scale 1 or 2, shift
        if isinstance(layer, training.BatchNorm2d):
            layer.running_mean[...] = dyadic(rng, 4, dtype=dtype)
            layer.running_var[...] = np.array([1, 4, 1, 4], dtype=dtype) - layer.eps
            layer.weight.data[...] = 1
    net.eval()
    T, B = 5, 3
    img = (rng.integers(0, 17, size=(B, 2, 8, 8)) / 16).astype(dtype)
    with training.default_dtype(dtype):
        x = training.encoding.direct(img, T) if static else \
            (rng.integers(0, 17, size=(T, B, 2, 8, 8)) / 16).astype(dtype)
    y = net.forward(x)
    ys = run_steps(net, x)
    assert ys.dtype == y.dtype == dtype
    np.testing.assert_array_equal(ys, y)
    assert np.abs(y).max() > 0
    # the spiking layers really fired and stayed silent somewhere (not a vacuous check)
    net.layers[2].record = False
    first = net.layers[2]
    s = run_steps(training.Sequential(*net.layers[:3]), x)
    assert 0 < s.mean() < 1 or first.spikes == "ternary"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_equals_forward_generic_weights_up_to_summation_order(dtype):
    rng = np.random.default_rng(4)
    with training.default_dtype(dtype):
        net = training.Sequential(training.Linear(20, 30, rng=rng), training.LIF(tau=2.0),
                                  training.Linear(30, 30, rng=rng), training.IF(reset="subtract"),
                                  training.Linear(30, 4, rng=rng)).eval()
    x = (rng.random((6, 5, 20)) * 2).astype(dtype)
    y, ys = net.forward(x), run_steps(net, x)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    # a membrane within round-off of theta may flip one spike; count such outputs
    close = np.isclose(ys, y, rtol=tol, atol=tol)
    assert close.mean() > 0.95, close.mean()


def test_training_dropout_step_uses_one_mask_per_sequence():
    rng = np.random.default_rng(5)
    d = training.Dropout(0.5, rng=1)
    x = rng.random((4, 3, 10))
    d.fixed_mask = False
    y = d.forward(x)
    d.fixed_mask = True          # replay the forward's mask step by step
    d.reset_state(3)
    ys = np.stack([d.step(x[t]) for t in range(4)])
    np.testing.assert_array_equal(ys, y)
    g = rng.random((3, 10))
    np.testing.assert_array_equal(d.step_backward(g), g * d.mask)


def test_lif_state_is_per_sequence_and_checked():
    lif = training.LIF(beta=0.5, threshold=1.0, reset="subtract")
    with pytest.raises(RuntimeError, match="reset_state"):
        lif.step(np.ones((2, 3)))
    lif.reset_state(2)
    a = lif.step(np.full((2, 3), 0.75))
    b = lif.step(np.full((2, 3), 0.75))
    assert a.sum() == 0 and b.sum() == 6            # 0.75, then 0.375 + 0.75 >= 1
    lif.reset_state(2)
    assert lif.step(np.full((2, 3), 0.75)).sum() == 0
    with pytest.raises(ValueError, match="batch 4"):
        lif.step(np.ones((4, 3)))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        lif.reset_state(0)


def test_batchnorm_training_step_is_refused():
    bn = training.BatchNorm1d(3)
    bn.reset_state(2)
    with pytest.raises(ValueError, match="WSLinear/WSConv2d"):
        bn.step(np.ones((2, 3), dtype=np.float32))
    bn.eval()
    np.testing.assert_array_equal(bn.step(np.ones((2, 3), dtype=np.float32)),
                                  bn.forward(np.ones((1, 2, 3), dtype=np.float32))[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clamped_lif_step_applies_v_min(dtype):
    """ClampedLIF (an exported KLIF rebuilt by to_network) steps with its lower clamp."""
    rng = np.random.default_rng(6)
    layer = training.klif.ClampedLIF(beta=0.75, threshold=0.5, v_min=0.0)
    x = (rng.integers(-16, 17, (6, 3, 8)) / 16).astype(dtype)
    y = layer.forward(x)
    np.testing.assert_array_equal(run_steps(layer, x), y)
    assert (layer.v >= 0).all() and 0 < y.mean() < 1
