"""RecurrentLIF and CubaLIF: gradients by finite differences, the recurrence, validation,
step-wise execution and export to the simulator (docs/methods.md section 16)."""
import numpy as np
import pytest

import training
from snncore import modelfile as mf
from training import CubaLIF, RecurrentLIF
from tests.gradcheck import assert_close, check_module_gradients, numeric_grad

RESETS = ["subtract", "hard"]


@pytest.fixture
def float64():
    with training.default_dtype(np.float64):
        yield


def recurrent_lif(reset, rng=1, **kw):
    """A RecurrentLIF with every parameter learned and a strong recurrent weight."""
    layer = RecurrentLIF(5, beta=0.8, threshold=0.7, reset=reset, v_reset=-0.2,
                         learn_beta=True, learn_threshold=True, rng=rng, **kw)
    layer.recurrent_weight.data *= 3.0
    return layer


def cuba_lif(reset, recurrent=True, per_neuron=True, rng=2, **kw):
    """A CubaLIF with every parameter learned (recurrent: strong recurrent weight)."""
    layer = CubaLIF(0.6, 0.8, threshold=0.7, reset=reset, v_reset=-0.2, recurrent=recurrent,
                    features=5, learn_alpha=True, learn_beta=True, learn_threshold=True,
                    per_neuron=per_neuron, rng=rng, **kw)
    if recurrent:
        layer.recurrent_weight.data *= 3.0
    return layer


def inputs(seed=0, T=6, B=3, F=5):
    return np.random.default_rng(seed).normal(0.5, 0.8, (T, B, F))


def naive_forward(layer, x, frozen=None):
    """The layer's smooth forward written out plainly in float64, reading the layer's current
    parameter values (so finite differences can perturb them in place).  ``frozen``: spike
    values ``[T, B, F]`` to use in the reset term instead of this run's (``detach_reset``)."""
    T, B, F = x.shape
    alpha, beta, theta = layer.alpha_value(), layer.beta_value(), layer.threshold_value()
    W = None if layer.recurrent_weight is None else layer.recurrent_weight.data
    b = None if layer.bias is None else layer.bias.data
    v, i, s = np.zeros((B, F)), np.zeros((B, F)), np.zeros((B, F))
    out = np.empty((T, B, F))
    for t in range(T):
        I = x[t].copy()
        if W is not None:
            I += s @ W.T + (0.0 if b is None else b)
        I *= layer.input_gain
        i = I if alpha is None else alpha * i + I
        u = beta * v + i
        s = layer.surrogate.primitive(u - theta)
        r = s if frozen is None else frozen[t]
        v = u * (1.0 - r) + layer.v_reset * r if layer.reset == "hard" else u - theta * r
        out[t] = s
    return out


LAYERS = {
    "rlif": lambda reset, **kw: recurrent_lif(reset, **kw),
    "rlif_tau": lambda reset, **kw: RecurrentLIF(5, tau=2.0, threshold=0.4, reset=reset,
                                                 v_reset=0.1, learn_threshold=True,
                                                 per_neuron=True, rng=4, **kw),
    "rlif_nobias": lambda reset, **kw: recurrent_lif(reset, bias=False, **kw),
    "cuba_rec": lambda reset, **kw: cuba_lif(reset, **kw),
    "cuba_rec_layer": lambda reset, **kw: cuba_lif(reset, per_neuron=False, **kw),
    "cuba": lambda reset, **kw: cuba_lif(reset, recurrent=False, **kw),
}


# -- gradients -------------------------------------------------------------------------------

@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_gradients_finite_differences(float64, kind, reset):
    """Every parameter and the input, T = 6, smooth mode (forward uses the primitive)."""
    layer = LAYERS[kind](reset)
    names = {n for n, _ in layer.named_parameters()}
    assert "threshold" in names and ("recurrent_weight" in names) == (kind != "cuba")
    check_module_gradients(layer, inputs(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("surrogate", ["sigmoid", "triangle", "fast_sigmoid"])
def test_gradients_other_surrogates(float64, surrogate):
    check_module_gradients(recurrent_lif("subtract", surrogate=surrogate), inputs(1))
    check_module_gradients(cuba_lif("hard", surrogate=surrogate), inputs(2))


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", ["rlif", "rlif_tau", "cuba_rec", "cuba"])
def test_detach_reset_finite_differences(float64, kind, reset):
    """detach_reset: the gradient equals finite differences of the smooth network whose reset
    term uses the spike values of the unperturbed run (held constant), for the input and every
    parameter; and it differs from the full gradient."""
    x = inputs(3)
    layer = LAYERS[kind](reset, detach_reset=True)
    rng = np.random.default_rng(5)
    with training.smooth_mode(True):
        s = layer.train().forward(x)
        np.testing.assert_allclose(naive_forward(layer, x), s, rtol=1e-12, atol=1e-12)
        w = rng.standard_normal(s.shape)
        layer.zero_grad()
        gx = layer.backward(w)
        grads = {n: p.grad.copy() for n, p in layer.named_parameters()}
    frozen = s.copy()

    def loss():
        return float(np.sum(w * naive_forward(layer, x, frozen)))

    num, idx = numeric_grad(loss, x, 1e-6, None, rng)
    assert_close(gx, num, idx, f"{kind} detached input gradient", 1e-5, 1e-7)
    for n, p in layer.named_parameters():
        num, idx = numeric_grad(loss, p.data, 1e-6, None, rng)
        assert_close(grads[n], num, idx, f"{kind} detached gradient of {n}", 1e-5, 1e-7)
    with training.smooth_mode(True):
        layer.detach_reset = False
        layer.forward(x)
        assert not np.allclose(layer.backward(w), gx)


def test_binary_backward_uses_the_surrogate(float64):
    """Outside smooth mode the spikes are 0/1 and backward runs the same rule (no FD there):
    for one step and no recurrence, dL/dx = gain g'(u - theta) dL/ds."""
    layer = RecurrentLIF(4, beta=0.5, threshold=0.5, rng=0)
    x = inputs(4, T=1, B=2, F=4)
    s = layer.forward(x)
    assert set(np.unique(s)) <= {0.0, 1.0}
    w = np.ones_like(s)
    u = x + layer.bias.data
    np.testing.assert_allclose(layer.backward(w), layer.surrogate.derivative(u - 0.5),
                               rtol=1e-12)


# -- the recurrence --------------------------------------------------------------------------

@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("form", [{"beta": 0.75}, {"tau": 2.0}, {"beta": 1.0}])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_recurrent_weight_is_plain_lif(reset, form, dtype):
    """W = 0 and no bias: spikes and membranes equal LIF's bit for bit, gradients to round-off;
    a non-zero W changes the spikes.  CubaLIF with alpha = 0 is the same LIF."""
    with training.default_dtype(dtype):
        x = inputs(6, T=8, B=4, F=7).astype(dtype) * 1.5
        lif = training.LIF(threshold=0.6, reset=reset, v_reset=-0.25, **form)
        rec = RecurrentLIF(7, threshold=0.6, reset=reset, v_reset=-0.25, bias=False, rng=3,
                           **form)
        W = rec.recurrent_weight.data.copy()
        rec.recurrent_weight.data[...] = 0.0
        lif.record = rec.record = True
        s_lif, s_rec = lif.forward(x), rec.forward(x)
        np.testing.assert_array_equal(s_rec, s_lif)
        np.testing.assert_array_equal(rec.membrane, lif.membrane)
        assert 0.05 < s_lif.mean() < 0.9
        w = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(rec.backward(w), lif.backward(w), rtol=tol, atol=tol)
        if "beta" in form:
            cuba = CubaLIF(0.0, form["beta"], threshold=0.6, reset=reset, v_reset=-0.25)
            np.testing.assert_array_equal(cuba.forward(x), s_lif)
        rec.recurrent_weight.data[...] = W * 3
        assert not np.array_equal(rec.forward(x), s_lif)


def test_cuba_recurrent_with_alpha_zero_is_recurrent_lif():
    x = inputs(7, T=6, B=3, F=5).astype(np.float32)
    rec = RecurrentLIF(5, beta=0.5, threshold=0.5, rng=8)
    cuba = CubaLIF(0.0, 0.5, threshold=0.5, recurrent=True, features=5, rng=8)
    np.testing.assert_array_equal(cuba.recurrent_weight.data, rec.recurrent_weight.data)
    np.testing.assert_array_equal(cuba.forward(x), rec.forward(x))


def test_recurrence_by_hand():
    """Two neurons, neuron 0 driven above threshold, neuron 1 only through W[1, 0] = 1: neuron 1
    fires one step after neuron 0 (the one-step delay)."""
    layer = RecurrentLIF(2, beta=0.5, threshold=1.0, reset="hard", bias=False)
    layer.recurrent_weight.data[...] = [[0.0, 0.0], [1.0, 0.0]]
    x = np.zeros((4, 1, 2), np.float32)
    x[1, 0, 0] = 1.0
    np.testing.assert_array_equal(layer.forward(x)[:, 0], [[0, 0], [1, 0], [0, 1], [0, 0]])


def test_cuba_current_by_hand():
    """alpha = 0.5, beta = 0.5, one input pulse of 1 at t = 0, threshold 1.2: i = 1, 0.5, 0.25;
    u = 1, 1.0, 0.75 (v = u without a spike), so no spike; with threshold 1: spike at t = 0."""
    x = np.zeros((3, 1, 1), np.float32)
    x[0] = 1.0
    layer = CubaLIF(0.5, 0.5, threshold=1.2)
    layer.record = True
    layer.forward(x)
    np.testing.assert_array_equal(layer.membrane[:, 0, 0], [1.0, 1.0, 0.75])
    np.testing.assert_array_equal(CubaLIF(0.5, 0.5, threshold=1.0).forward(x)[:, 0, 0], [1, 0, 0])


def test_init_is_seeded_pytorch_linear_rule():
    a, b = RecurrentLIF(50, rng=3), RecurrentLIF(50, rng=3)
    np.testing.assert_array_equal(a.recurrent_weight.data, b.recurrent_weight.data)
    assert not np.array_equal(a.recurrent_weight.data, RecurrentLIF(50, rng=4).recurrent_weight.data)
    bound = 1 / np.sqrt(50)
    for p in (a.recurrent_weight.data, a.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound
    assert a.recurrent_weight.data.shape == (50, 50) and a.bias.data.shape == (50,)
    assert [n for n, _ in RecurrentLIF(3, bias=False).named_parameters()] == ["recurrent_weight"]


def test_step_equals_forward():
    x = inputs(9, T=6, B=3, F=5).astype(np.float32) * 2
    for layer in (RecurrentLIF(5, beta=0.75, threshold=0.5, rng=1).eval(),
                  CubaLIF(0.5, 0.75, threshold=0.5, recurrent=True, features=5, rng=2).eval()):
        y = layer.forward(x)
        layer.reset_state(3)
        np.testing.assert_array_equal(np.stack([layer.step(x[t]) for t in range(6)]), y)
        with pytest.raises(ValueError, match="do not support recurrent"):
            layer.step_backward(y[0])


def test_fit_trains_a_recurrent_network():
    """BPTT through fit changes recurrent_weight and beta (smoke test, float32)."""
    rng = np.random.default_rng(10)
    x = rng.random((48, 6)).astype(np.float32)
    y = (x[:, :3].sum(1) > x[:, 3:].sum(1)).astype(np.int64)
    net = training.Sequential(training.Linear(6, 8, rng=1),
                              RecurrentLIF(8, beta=0.75, learn_beta=True, rng=2),
                              training.Linear(8, 4, rng=3),
                              CubaLIF(0.5, 0.75, recurrent=True, features=4, rng=4),
                              training.Linear(4, 2, rng=5))
    W0 = net.layers[1].recurrent_weight.data.copy()
    opt = training.optim.Adam(net.parameters(), lr=0.05)
    training.fit(net, (x, y), T=4, epochs=1, batch_size=16, optimizer=opt, progress=False)
    assert not np.array_equal(net.layers[1].recurrent_weight.data, W0)
    assert net.layers[1].beta.data[0] != np.float32(np.log(3.0))


# -- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: RecurrentLIF(4, beta=0.5, threshold=0.0), "threshold must be a positive"),
    (lambda: RecurrentLIF(4, beta=0.5, threshold=-1.0), r"theta > 0"),
    (lambda: RecurrentLIF(4, beta=1.5), r"beta must lie in \[0, 1\]"),
    (lambda: RecurrentLIF(4, beta=-0.1), r"beta must lie in \[0, 1\]"),
    (lambda: RecurrentLIF(0), "features must be an integer >= 1, got 0"),
    (lambda: RecurrentLIF(None), "features must be an integer >= 1"),
    (lambda: RecurrentLIF(2.5), "features must be an integer >= 1"),
    (lambda: RecurrentLIF(4, beta=0.5, tau=2.0), "give beta or tau, not both"),
    (lambda: RecurrentLIF(4, tau=0.5), "tau must be >= 1"),
    (lambda: RecurrentLIF(4, reset="soft"), "reset must be 'hard' or 'subtract'"),
    (lambda: RecurrentLIF(4, beta=1.0, learn_beta=True), "learn_beta needs 0 < beta < 1"),
    (lambda: RecurrentLIF(4, beta=[0.5, 0.5]), r"beta must be a number or an array of shape"),
    (lambda: RecurrentLIF(2, threshold=[1.0, 0.5], learn_threshold=True),
     "learn_threshold with per-neuron values of threshold needs per_neuron=True"),
    (lambda: CubaLIF(1.5, 0.5), r"alpha must lie in \[0, 1\]"),
    (lambda: CubaLIF(0.5, -0.5), r"beta must lie in \[0, 1\]"),
    (lambda: CubaLIF(0.5, 0.5, threshold=0), "threshold must be a positive"),
    (lambda: CubaLIF(None, 0.5), "alpha and beta are required"),
    (lambda: CubaLIF(0.5, 0.5, recurrent=True), "recurrent needs features="),
    (lambda: CubaLIF(0.5, 0.5, features=0), "features must be an integer >= 1"),
    (lambda: CubaLIF(0.0, 0.5, learn_alpha=True), "learn_alpha needs 0 < alpha < 1"),
])
def test_bad_settings_raise_naming_the_problem(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", [lambda: RecurrentLIF(4, rng=0),
                                  lambda: CubaLIF(0.5, 0.5, recurrent=True, features=4)])
@pytest.mark.parametrize("shape", [(3, 2, 5), (3, 2, 2, 2), (3, 4)])
def test_wrong_input_shape_raises(make, shape):
    with pytest.raises(ValueError, match=r"expected input \[T, B, (4|features)\], got shape"):
        make().forward(np.zeros(shape, np.float32))


def test_wrong_input_dtype_and_gradient_shape_raise():
    layer = RecurrentLIF(4, rng=0)
    with pytest.raises(ValueError, match="input dtype float64 differs from recurrent_weight"):
        layer.forward(np.zeros((2, 1, 4)))
    layer.forward(np.zeros((2, 1, 4), np.float32))
    with pytest.raises(ValueError, match="gradient shape"):
        layer.backward(np.zeros((2, 1, 3), np.float32))


# -- export and the simulator ----------------------------------------------------------------

def dyadic_recurrent_net(rng, dtype, reset="subtract"):
    """Linear -> RecurrentLIF(beta) -> Linear -> RecurrentLIF(tau=2, hard) -> Linear, every
    weight, bias and decay dyadic with few bits, so both engines' sums are exact."""
    with training.default_dtype(dtype):
        net = training.Sequential(
            training.Linear(12, 16, rng=rng), RecurrentLIF(16, beta=0.5, reset=reset, rng=rng),
            training.Linear(16, 10, rng=rng),
            RecurrentLIF(10, tau=2.0, threshold=0.75, reset="hard", v_reset=-0.25, rng=rng),
            training.Linear(10, 4, rng=rng)).eval()
    for layer in net.layers[::2]:
        layer.weight.data[...] = rng.integers(-12, 17, layer.weight.data.shape) / 16
        layer.bias.data[...] = rng.integers(-4, 5, layer.bias.data.shape) / 16
    for layer in net.layers[1::2]:
        layer.recurrent_weight.data[...] = rng.integers(-10, 9, layer.recurrent_weight.shape) / 16
        layer.bias.data[...] = rng.integers(-4, 5, layer.bias.shape) / 16
    return net


def dense_spikes(net, x):
    out, spikes = x, {}
    for i, layer in enumerate(net.layers):
        out = layer.forward(out)
        if isinstance(layer, RecurrentLIF):
            spikes[i] = out
    return spikes, out


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("encoding", ["direct", "rate"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_export_simulator_gives_dense_spikes_exactly(dtype, encoding, reset):
    """Dyadic weights: the simulator runs the exported model (spiking layers plus delay-1
    self-connections) to exactly the dense engine's spikes and readout, under every schedule
    that applies ("auto" and "time"; "layer" is refused for a recurrent model), with a static
    analog input and with a spike input."""
    import eventsim
    rng = np.random.default_rng(21)
    net = dyadic_recurrent_net(rng, dtype, reset)
    T, B = 8, 48
    images = (rng.integers(0, 9, (B, 12)) / 8).astype(dtype)
    if encoding == "direct":
        x = training.encoding.direct(images, T, dtype=dtype)
    else:
        x = training.encoding.rate(images, T, rng=np.random.default_rng(2), dtype=dtype)
    spikes, y = dense_spikes(net, x)
    model = training.to_model(net, input_shape=(12,), T=T, encoding=encoding, dtype=dtype)
    assert [l.kind for l in model.layers] == ["dense", "spiking", "dense", "spiking", "dense",
                                              "readout"]
    assert [(c.source, c.target, c.delay) for c in model.connections] == [(1, 1, 1), (3, 3, 1)]
    c1 = model.connections[1].projection
    np.testing.assert_array_equal(c1.weight, net.layers[3].recurrent_weight.data / 2)  # gain
    np.testing.assert_array_equal(model.layers[2].weight, net.layers[2].weight.data / 2)
    assert model.layers[3].beta == 0.5 and model.layers[3].reset == "hard"
    for schedule in ("auto", "time"):
        rec = eventsim.Simulator(model, n_threads=1, schedule=schedule).run(x)
        for pos in (1, 3):
            np.testing.assert_array_equal(rec.spikes[pos].to_dense(T, B), spikes[pos])
            assert 0.02 < spikes[pos].mean() < 0.9
        np.testing.assert_array_equal(rec.readout, y)
        assert rec.synaptic_events["connections[0]"] > 0
    with pytest.raises(ValueError, match="'layer' needs a feed-forward network"):
        eventsim.Simulator(model, schedule="layer")


def test_export_recurrence_matters():
    """The same model without its connections gives other spikes (the test above can fail)."""
    import dataclasses

    import eventsim
    rng = np.random.default_rng(21)
    net = dyadic_recurrent_net(rng, np.float64)
    x = training.encoding.direct(rng.integers(0, 9, (32, 12)) / 8, 8, dtype=np.float64)
    spikes, _ = dense_spikes(net, x)
    model = training.to_model(net, input_shape=(12,), T=8, dtype=np.float64)
    bare = dataclasses.replace(model, connections=[])
    rec = eventsim.Simulator(bare, n_threads=1).run(x)
    assert not np.array_equal(rec.spikes[1].to_dense(8, 32), spikes[1])


def test_export_file_roundtrip(tmp_path):
    rng = np.random.default_rng(22)
    net = dyadic_recurrent_net(rng, np.float32)
    path = training.export(net, tmp_path / "r.h5", input_shape=(12,), T=4)
    model = mf.read_model(path)
    assert len(model.connections) == 2 and model.origins[3].cls == "RecurrentLIF"
    np.testing.assert_array_equal(model.connections[0].projection.bias, net.layers[1].bias.data)
    with pytest.raises(ValueError, match="no weight layer before it"):
        training.to_model(training.Sequential(CubaLIF(0.5, 0.5), training.Linear(3, 2)),
                          input_shape=(3,), T=2)
    with pytest.raises(ValueError, match="no weight layer before it"):
        training.to_model(training.Sequential(RecurrentLIF(3), training.Linear(3, 2)),
                          input_shape=(3,), T=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_network_rebuilds_recurrent_layers(dtype):
    """A delay-1 dense self-connection comes back as a RecurrentLIF: the rebuilt network gives
    the trained one's output bit for bit (dyadic weights), and exports to the same model."""
    rng = np.random.default_rng(23)
    net = dyadic_recurrent_net(rng, dtype, "hard")
    x = training.encoding.direct(rng.integers(0, 9, (16, 12)) / 8, 6, dtype=dtype)
    model = training.to_model(net, input_shape=(12,), T=6, dtype=dtype)
    rebuilt = training.to_network(model)
    assert isinstance(rebuilt.layers[1], RecurrentLIF) and rebuilt.layers[3].tau is None
    np.testing.assert_array_equal(rebuilt.forward(x), net.forward(x))
    again = training.to_model(rebuilt, input_shape=(12,), T=6, dtype=dtype)
    for c, d in zip(again.connections, model.connections):
        assert (c.source, c.target, c.delay) == (d.source, d.target, d.delay)
        np.testing.assert_array_equal(c.projection.weight, d.projection.weight)
        np.testing.assert_array_equal(c.projection.bias, d.projection.bias)


@pytest.mark.parametrize("change, match", [
    (dict(delay=2), "delay 2"),
    (dict(target=3), "source 1, target 3"),
])
def test_to_network_refuses_other_connections(change, match):
    import dataclasses

    rng = np.random.default_rng(24)
    model = training.to_model(dyadic_recurrent_net(rng, np.float32), input_shape=(12,), T=4)
    c = model.connections[0]
    if "target" in change:   # a feedback projection 1 -> 3 needs a [10, 16] weight
        change = dict(change, projection=mf.Dense(weight=np.zeros((10, 16), np.float32)))
    bad = dataclasses.replace(model, connections=[dataclasses.replace(c, **change)])
    with pytest.raises(ValueError, match=match + r".*only one dense delay-1 connection"):
        training.to_network(bad)


def test_per_neuron_values_and_learning(float64):
    """Fixed per-neuron beta/threshold arrays, and learned per-neuron values starting from
    them: the learned layer computes what the fixed one does, and its gradients pass FD."""
    beta, theta = np.array([0.5, 0.7, 0.9, 0.6, 0.8]), np.array([0.4, 0.6, 0.8, 1.0, 0.5])
    fixed = RecurrentLIF(5, beta=beta, threshold=theta, rng=5)
    learned = RecurrentLIF(5, beta=beta, threshold=theta, learn_beta=True,
                           learn_threshold=True, per_neuron=True, rng=5)
    x = inputs(11)
    np.testing.assert_array_equal(fixed.forward(x), learned.forward(x))
    assert learned.beta.shape == (5,) and learned.params.theta.shape == (5,)
    check_module_gradients(learned, x)


def test_to_network_refuses_two_connections_onto_one_layer():
    import dataclasses

    model = training.to_model(dyadic_recurrent_net(np.random.default_rng(25), np.float32),
                              input_shape=(12,), T=4)
    bad = dataclasses.replace(model, connections=[model.connections[0]] * 2)
    with pytest.raises(ValueError, match=r"connections\[1\].*only one dense delay-1 connection"):
        training.to_network(bad)


def test_export_non_dyadic_near_identical():
    """Float32 weights as initialised (not dyadic), tau = 3: the engines add a current's terms
    in different orders, so a membrane within round-off of theta may fire in one engine only;
    require >= 99.9 % equal spikes and >= 99.5 % equal decisions (measured: all equal)."""
    import eventsim
    rng = np.random.default_rng(30)
    net = training.Sequential(
        training.Linear(30, 40, rng=rng), RecurrentLIF(40, beta=0.9, rng=rng),
        training.Linear(40, 30, rng=rng),
        RecurrentLIF(30, tau=3.0, threshold=0.8, reset="hard", rng=rng),
        training.Linear(30, 10, rng=rng)).eval()
    for layer in net.layers[1::2]:
        layer.recurrent_weight.data *= 2
    for layer in net.layers[:4:2]:
        layer.weight.data *= 3
    T, B = 8, 400
    x = training.encoding.direct(rng.random((B, 30)).astype(np.float32), T)
    spikes, y = dense_spikes(net, x)
    rec = eventsim.Simulator(training.to_model(net, input_shape=(30,), T=T), n_threads=1).run(x)
    for pos in (1, 3):
        assert np.mean(rec.spikes[pos].to_dense(T, B) == spikes[pos]) >= 0.999
        assert 0.01 < spikes[pos].mean() < 0.9
    assert np.mean(rec.predictions == training.losses.decode(y).argmax(axis=1)) >= 0.995
