"""Memory paths of the dense engine (issue 19, item 5).

* Eval mode: ``Sequential.forward`` runs in time chunks (``eval_chunk_rows``), keeping one
  chunk of every intermediate array; the output equals the whole-sequence forward bit for bit.
* BPTT (``Sequential.low_memory``, on by default): a spiking layer keeps only its membrane,
  a Linear after it keeps nothing of its input (rebuilt from that membrane), one after a max
  pooling of spikes keeps it bit-packed; every gradient equals the plain caches' bit for bit.
"""
import numpy as np
import pytest

import training
from training import encoding, losses
from training.klif import KLIF
from training.recurrent import CubaLIF, RecurrentLIF


def dyadic(rng, shape, denom=32, top=32, dtype=np.float32):
    return (rng.integers(-top, top + 1, size=shape) / denom).astype(dtype)


def make_dyadic(net, rng):
    """Dyadic parameters (exact sums whatever the BLAS blocking; the conv tests need it)."""
    for name, p in net.named_parameters():
        if not name.endswith(".k"):
            p.data = dyadic(rng, p.data.shape, dtype=p.data.dtype)
            p.grad = np.zeros_like(p.data)
    return net


def whole_and_chunked(net, x, rows):
    """(whole-sequence eval output, chunked eval output with ``rows`` rows per chunk)."""
    net.eval()
    net.eval_chunk_rows = 0
    whole = net.forward(x)
    net.eval_chunk_rows = rows
    assert net._chunk_steps(x.shape[0], x.shape[1]) > 0       # really chunked
    chunked = net.forward(x)
    return whole, chunked


def mlp(rng, neuron=lambda: training.LIF(beta=0.5)):
    return training.Sequential(training.Linear(784, 800, rng=rng), neuron(),
                               training.Linear(800, 10, rng=rng))


@pytest.mark.parametrize("static", [True, False])
def test_mlp_chunked_eval_equals_whole_forward_with_generic_weights(static):
    """FC 784-800-10 at batch 600, T = 6, chunks of 1 step (600 rows): large products, so
    the BLAS rows do not depend on the row count; generic (non-dyadic) weights."""
    rng = np.random.default_rng(0)
    net = mlp(rng)
    img = rng.random((600, 784)).astype(np.float32)
    x = encoding.direct(img, 6) if static else encoding.rate(img, 6, np.random.default_rng(1))
    whole, chunked = whole_and_chunked(net, x, 512)
    np.testing.assert_array_equal(chunked, whole)
    assert chunked.dtype == whole.dtype and np.abs(whole).max() > 0


NEURONS = {
    "lif_tau_hard": lambda f: training.LIF(tau=2.0, threshold=0.5),
    "lif_subtract": lambda f: training.LIF(beta=0.75, threshold=0.5, reset="subtract"),
    "if_subtract": lambda f: training.IF(threshold=0.5, reset="subtract"),
    "ternary": lambda f: training.LIF(beta=0.25, threshold=0.5, spikes="ternary", amplitude=0.5),
    "per_neuron": lambda f: training.LIF(beta=0.5, threshold=0.5, learn_beta=True,
                                         learn_threshold=True, per_neuron=True, features=f),
    "klif": lambda f: KLIF(tau=2.0, k=1.0, threshold=0.5),
}


def conv_net(rng, neuron):
    return training.Sequential(
        training.Conv2d(2, 4, 3, padding=1, rng=rng), training.BatchNorm2d(4),
        neuron((4, 8, 8)), training.MaxPool2d(2), training.Conv2d(4, 4, 3, padding=1, rng=rng),
        neuron((4, 4, 4)), training.AvgPool2d(2), training.Dropout(0.3, rng=rng),
        training.Flatten(), training.Linear(16, 6, rng=rng), neuron((6,)),
        training.Linear(6, 3, rng=rng))


@pytest.mark.parametrize("neuron", sorted(NEURONS))
@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("steps", [1, 2])
def test_conv_chunked_eval_equals_whole_forward(neuron, static, steps):
    """Conv, BatchNorm (eval), LIF/IF/ternary/per-neuron/KLIF, pooling, Dropout, Flatten,
    Linear: chunks of 1 step (the NumPy threshold path) and of 2 steps (the fused kernel;
    uneven: T = 7) equal the whole forward bit for bit."""
    rng = np.random.default_rng(3)
    net = make_dyadic(conv_net(rng, NEURONS[neuron]), rng)
    bn = net.layers[1]
    bn.running_mean[...] = dyadic(rng, 4)
    bn.running_var[...] = np.array([1, 4, 1, 4], dtype=np.float32) - bn.eps
    T, B = 7, 3
    img = (rng.integers(0, 17, size=(B, 2, 8, 8)) / 16).astype(np.float32)
    x = encoding.direct(img, T) if static else \
        (rng.integers(0, 17, size=(T, B, 2, 8, 8)) / 16).astype(np.float32)
    whole, chunked = whole_and_chunked(net, x, steps * B)
    np.testing.assert_array_equal(chunked, whole)
    first = training.Sequential(*net.layers[:3]).eval()
    first.eval_chunk_rows = 0
    s = first.forward(x)
    assert np.any(s != 0) and np.any(s == 0)           # the neurons fired and were silent


@pytest.mark.parametrize("kind", ["recurrent", "cuba"])
def test_recurrent_chunked_eval_equals_whole_forward(kind):
    rng = np.random.default_rng(5)
    layer = RecurrentLIF(12, beta=0.75, threshold=0.5, rng=rng) if kind == "recurrent" else \
        CubaLIF(alpha=0.5, beta=0.75, threshold=0.5, recurrent=True, features=12, rng=rng)
    net = make_dyadic(training.Sequential(training.Linear(10, 12, rng=rng), layer,
                                          training.Linear(12, 4, rng=rng)), rng)
    x = (rng.integers(0, 17, size=(9, 4, 10)) / 16).astype(np.float32)
    whole, chunked = whole_and_chunked(net, x, 8)
    np.testing.assert_array_equal(chunked, whole)
    assert np.abs(whole).max() > 0


def test_two_decoded_evaluation_is_unchanged_by_chunking():
    """``evaluate`` with TWO decoder weights: the same loss and accuracy chunked or whole."""
    rng = np.random.default_rng(6)
    net = mlp(rng)
    net.time_weights = np.linspace(0.5, 1.5, 8)
    images = rng.random((300, 784)).astype(np.float32)
    labels = rng.integers(0, 10, 300)
    results = []
    for rows in (0, 256):
        net.eval_chunk_rows = rows
        results.append(training.evaluate(net, images, labels, T=8, encoder="rate",
                                         batch_size=300, seed=2))
    assert results[0] == results[1]


def test_chunked_eval_keeps_no_state_or_cache_and_training_mode_runs_whole():
    rng = np.random.default_rng(7)
    net = mlp(rng)
    x = encoding.rate(rng.random((600, 784)).astype(np.float32), 4, np.random.default_rng(0))
    net.eval()
    net.forward(x)
    lif = net.layers[1]
    assert lif.v is None and lif._u is None and net.layers[0]._x is None
    net.train()
    assert net._chunk_steps(4, 600) == 0
    lif.record = True
    net.eval()
    assert net._chunk_steps(4, 600) == 0                 # a recording layer runs whole


# ------------------------------------------------------------------------------ BPTT memory
def layer_by_layer_grads(net, x, g, need_input_grad):
    """Forward and backward one layer at a time, no hints: the plain caches of every layer
    (what ``Sequential`` did before ``low_memory`` and ``donate``)."""
    net.zero_grad()
    h = x
    for layer in net.layers:
        h = layer.forward(h)
    for layer in reversed(net.layers):
        g = layer.backward(g)
    return h, {n: p.grad.copy() for n, p in net.named_parameters()}, g


def sequential_grads(net, x, g, need_input_grad):
    net.zero_grad()
    y = net.forward(x)
    gx = net.backward(g, need_input_grad=need_input_grad)
    return y, {n: p.grad.copy() for n, p in net.named_parameters()}, gx


MLP_NEURONS = {
    "lif_hard": lambda: training.LIF(beta=0.5, threshold=0.2),
    "lif_tau_subtract": lambda: training.LIF(tau=2.0, threshold=0.1, reset="subtract"),
    "if_detach": lambda: training.IF(threshold=0.2, detach_reset=True),
    "ternary": lambda: training.LIF(beta=0.5, threshold=0.2, spikes="ternary"),
    "learned": lambda: training.LIF(beta=0.5, threshold=0.2, learn_beta=True,
                                    learn_threshold=True),
}


@pytest.mark.parametrize("neuron", sorted(MLP_NEURONS))
@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("low_memory", [False, True])
def test_mlp_gradients_equal_the_plain_caches_bit_for_bit(neuron, static, low_memory):
    """Every parameter's gradient and the input gradient: Sequential (donated membrane;
    with low_memory: membrane-only LIF cache, bit-packed Linear input, caches freed) equals
    the layer-by-layer pass with full caches, on binary and direct input."""
    rng = np.random.default_rng(8)
    net = training.Sequential(training.Linear(50, 300, rng=rng), MLP_NEURONS[neuron](),
                              training.Linear(300, 200, rng=rng), MLP_NEURONS[neuron](),
                              training.WSLinear(200, 10, rng=rng))
    img = rng.random((16, 50)).astype(np.float32) * 2
    x = encoding.direct(img, 12) if static else \
        encoding.rate(img / 2, 12, np.random.default_rng(1))
    g = rng.standard_normal((12, 16, 10)).astype(np.float32)
    y0, grads0, gx0 = layer_by_layer_grads(net, x, g, True)
    net.low_memory = low_memory
    for need_input_grad in (True, False):
        y1, grads1, gx1 = sequential_grads(net, x, g, need_input_grad)
        np.testing.assert_array_equal(y1, y0)
        for name in grads0:
            np.testing.assert_array_equal(grads1[name], grads0[name], err_msg=name)
            assert np.any(grads0[name] != 0), name
        if need_input_grad:
            np.testing.assert_array_equal(gx1, gx0)
    s = net.layers[1].forward(net.layers[0].forward(x))
    assert 0 < np.mean(s != 0) < 1


@pytest.mark.parametrize("low_memory", [False, True])
def test_conv_gradients_equal_the_plain_caches_bit_for_bit(low_memory):
    """Conv -> BatchNorm -> LIF -> MaxPool -> Conv -> LIF -> MaxPool -> Flatten -> Linear:
    the binary hint crosses MaxPool and Flatten to the Linear."""
    rng = np.random.default_rng(9)
    net = training.Sequential(
        training.Conv2d(1, 4, 3, padding=1, rng=rng), training.BatchNorm2d(4),
        training.LIF(beta=0.5, threshold=0.3), training.MaxPool2d(2),
        training.Conv2d(4, 6, 3, padding=1, rng=rng), training.LIF(tau=2.0, threshold=0.2),
        training.MaxPool2d(2), training.Flatten(), training.Linear(6 * 4, 5, rng=rng))
    x = encoding.rate(rng.random((6, 1, 8, 8)).astype(np.float32), 5, np.random.default_rng(2))
    g = rng.standard_normal((5, 6, 5)).astype(np.float32)
    y0, grads0, gx0 = layer_by_layer_grads(net, x, g, True)
    net.low_memory = low_memory
    y1, grads1, gx1 = sequential_grads(net, x, g, True)
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(gx1, gx0)
    for name in grads0:
        np.testing.assert_array_equal(grads1[name], grads0[name], err_msg=name)
    if low_memory:
        assert all(getattr(l, "_x", None) is None for l in net.layers)     # caches freed


def test_default_keeps_membrane_only_and_no_copy_of_the_spikes():
    """By default (``low_memory`` True) the LIF keeps only its membrane and the Linear after
    it keeps nothing of its input (it asks the LIF again); ``low_memory = False`` restores
    the full caches (the spikes, shared by both layers)."""
    rng = np.random.default_rng(10)
    net = mlp(rng)
    assert net.low_memory is True
    x = encoding.rate(rng.random((8, 784)).astype(np.float32), 4, np.random.default_rng(0))
    lif, fc2 = net.layers[1], net.layers[2]
    spikes = lif.forward(net.layers[0].forward(x))
    net.forward(x)
    assert lif._s is None and lif._u is not None
    assert fc2._x is None and fc2._bits is None and fc2._src is lif
    np.testing.assert_array_equal(lif.cached_spikes().reshape(spikes.shape), spikes)
    net.low_memory = False
    net.forward(x)
    assert lif._s is not None and fc2._src is None and fc2._bits is None
    assert np.shares_memory(fc2._x, lif._s)


def test_binary_input_through_max_pooling_is_kept_packed():
    """A Linear fed by a max pooling of spikes keeps its input as bits (one bit a value)."""
    rng = np.random.default_rng(12)
    net = training.Sequential(training.Conv2d(1, 4, 3, padding=1, rng=rng), training.LIF(beta=0.5,
                              threshold=0.2), training.MaxPool2d(2), training.Flatten(),
                              training.Linear(4 * 4 * 4, 5, rng=rng))
    x = encoding.rate(rng.random((6, 1, 8, 8)).astype(np.float32), 3, np.random.default_rng(1))
    net.forward(x)
    fc = net.layers[-1]
    assert fc._x is None and fc._src is None and fc._bits.bits.dtype == np.uint8
    assert fc._bits.bits.nbytes == 3 * 6 * 64 // 8                  # one bit per value


@pytest.mark.parametrize("reset", ["hard", "subtract"])
@pytest.mark.parametrize("detach", [False, True])
def test_rebuilt_spikes_keep_threshold_ties(reset, detach):
    """Dyadic weights and binary input put many membranes exactly on the threshold, where
    ``u >= theta`` fires and ``u > theta`` would not: the default path (spikes rebuilt from
    the membrane in the LIF backward and for the Linear after it) equals the full caches bit
    for bit, so a rebuild that tests the threshold differently fails here."""
    rng = np.random.default_rng(13)
    net = make_dyadic(training.Sequential(
        training.Linear(40, 300, rng=rng), training.LIF(beta=0.5, threshold=0.5, reset=reset,
                                                        detach_reset=detach),
        training.Linear(300, 200, rng=rng), training.LIF(beta=0.5, threshold=0.25, reset=reset),
        training.Linear(200, 10, rng=rng)), np.random.default_rng(14))
    x = encoding.rate(rng.random((16, 40)).astype(np.float32), 8, np.random.default_rng(2))
    g = rng.standard_normal((8, 16, 10)).astype(np.float32)
    y0, grads0, gx0 = layer_by_layer_grads(net, x, g, True)
    net.layers[1].forward(net.layers[0].forward(x))
    assert np.sum(net.layers[1]._u == 0.5) > 10                    # ties
    net.reset_cache()
    y1, grads1, gx1 = sequential_grads(net, x, g, True)
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(gx1, gx0)
    for name in grads0:
        np.testing.assert_array_equal(grads1[name], grads0[name], err_msg=name)


def test_donated_membrane_overwrites_the_weight_output_only():
    """The LIF writes its membrane over the preceding Linear's output, never over the
    caller's array (a LIF first in the network, or the caller's gradient)."""
    rng = np.random.default_rng(11)
    x = rng.random((3, 4, 5)).astype(np.float32) * 3
    x0 = x.copy()
    net = training.Sequential(training.LIF(beta=0.5))
    net.low_memory = True
    net.forward(x)
    g = rng.standard_normal(x.shape).astype(np.float32)
    g0 = g.copy()
    net.backward(g)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)


COMPOSED_NEURONS = {
    "lif": lambda f, r: training.LIF(beta=0.5, threshold=0.2),
    "if_subtract": lambda f, r: training.IF(threshold=0.2, reset="subtract"),
    "ternary": lambda f, r: training.LIF(beta=0.5, threshold=0.2, spikes="ternary"),
    "per_neuron_msg": lambda f, r: training.LIF(beta=0.5, threshold=0.2, learn_beta=True,
                                                learn_threshold=True, per_neuron=True,
                                                features=f, msg_p=0.3, rng=r),
    "klif": lambda f, r: KLIF(tau=2.0, k=1.0, threshold=0.2),
    "recurrent": lambda f, r: RecurrentLIF(f, beta=0.75, threshold=0.2, rng=r),
    "cuba": lambda f, r: CubaLIF(alpha=0.5, beta=0.75, threshold=0.2, recurrent=True,
                                 features=f, rng=r),
}


@pytest.mark.parametrize("neuron", sorted(COMPOSED_NEURONS))
def test_default_sequential_equals_full_caches_with_norm_dropout_msg(neuron):
    """Linear -> BatchNorm -> neuron -> Dropout -> Linear -> neuron -> Linear, trained by the
    default Sequential (lean caches, donation, caches freed) and layer by layer with full
    caches: the same output, input gradient and parameter gradients bit for bit (two nets
    built from the same seeds, so Dropout and MSG draw the same masks)."""
    def build():
        rng = np.random.default_rng(15)
        make = COMPOSED_NEURONS[neuron]
        return training.Sequential(
            training.Linear(30, 64, rng=rng), training.BatchNorm1d(64), make(64, 1),
            training.Dropout(0.2, rng=2), training.Linear(64, 48, rng=rng), make(48, 3),
            training.Linear(48, 10, rng=rng))
    rng = np.random.default_rng(16)
    x = encoding.rate(rng.random((8, 30)).astype(np.float32), 6, np.random.default_rng(3))
    g = rng.standard_normal((6, 8, 10)).astype(np.float32)
    y0, grads0, gx0 = layer_by_layer_grads(build(), x, g, True)
    net = build()
    assert net.low_memory
    y1, grads1, gx1 = sequential_grads(net, x, g, True)
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(gx1, gx0)
    assert set(grads1) == set(grads0)
    for name in grads0:
        np.testing.assert_array_equal(grads1[name], grads0[name], err_msg=name)
    assert np.any(grads0["0.weight"] != 0)


@pytest.mark.parametrize("reset", [0, 1])
@pytest.mark.parametrize("detach", [False, True])
def test_inplace_backward_kernel_equals_the_full_kernel_at_any_thread_count(reset, detach):
    """``lif_backward_inplace_parallel`` (spikes rebuilt, dL/dI over the membrane) and
    ``threshold_parallel`` equal the full-cache kernel and the forward's spikes bit for bit,
    serial and split over 2 and 3 threads (arrays above the serial threshold)."""
    from snncore.threads import MIN_PARALLEL_ELEMENTS
    from training import kernels
    rng = np.random.default_rng(17)
    T, N = 4, MIN_PARALLEL_ELEMENTS // 4 + 37
    f = np.float32
    current = dyadic(rng, (T, N), denom=8, top=12)
    spikes, u = np.empty((T, N), f), np.empty((T, N), f)
    kernels.lif_forward(current, f(0.5), f(0.5), reset, f(0.0), 1, f(2.0), False, spikes, u)
    assert np.any(u == f(0.5))                                  # threshold ties present
    g = rng.standard_normal((T, N)).astype(f)
    want = np.empty_like(u)
    kernels.lif_backward(g, u, spikes, f(0.5), f(0.5), reset, f(0.0), 1, f(2.0), detach, want)
    for n_threads in (1, 2, 3):
        s = np.empty_like(u)
        kernels.threshold_parallel(u, f(0.5), s, n_threads=n_threads)
        np.testing.assert_array_equal(s, spikes)
        m = u.copy()
        kernels.lif_backward_inplace_parallel(g, m, f(0.5), f(0.5), reset, f(0.0), 1, f(2.0),
                                              detach, n_threads=n_threads)
        np.testing.assert_array_equal(m, want)


def test_recorded_membrane_survives_the_default_backward():
    """A LIF with ``record = True`` keeps its spikes, so backward does not write over the
    membrane the user reads (``.membrane``)."""
    rng = np.random.default_rng(18)
    net = mlp(rng)
    lif = net.layers[1]
    lif.record = True
    x = encoding.rate(rng.random((8, 784)).astype(np.float32), 4, np.random.default_rng(0))
    net.forward(x)
    kept = lif.membrane.copy()
    net.backward(np.ones((4, 8, 10), np.float32))
    np.testing.assert_array_equal(lif.membrane, kept)
