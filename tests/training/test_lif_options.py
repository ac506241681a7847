"""LIF options: ternary spikes with an amplitude, learnable decay/threshold (PLIF), MSG.

Gradients are checked twice: the fused kernels against the plain NumPy twins in
``tests/reference/naive_training.py``, and whole multi-layer networks against central
differences in smooth mode (float64).  Exported ternary models run in the simulator.
"""
import numpy as np
import pytest

import training
from snncore import modelfile as mf
from training import kernels, msg, surrogates
from training.neurons import LIF
from tests.gradcheck import check_module_gradients
from tests.reference import naive_training as naive

RESETS = ["hard", "subtract"]


@pytest.fixture
def float64():
    with training.default_dtype(np.float64):
        yield


def _kernel_case(rng, T=5, B=3, F=4, ternary=False, window=False, reset="hard", detach=False,
                 smooth=False, mask=None, scale=1.0, sur="sigmoid"):
    s = surrogates.get(sur)
    beta = rng.uniform(0.2, 0.9, F)
    theta = rng.uniform(0.4, 1.0, F)
    current = rng.uniform(-1.5, 2.0, (T, B * F))
    spikes, membrane = np.empty((T, B * F)), np.empty((T, B * F))
    kernels.lif_forward_ext(current, beta, theta, 0 if reset == "hard" else 1, 0.1, s.code,
                            s.alpha, smooth, ternary, window, spikes, membrane)
    S, U = naive.lif_forward_general(current, np.tile(beta, B), np.tile(theta, B), reset, 0.1, s,
                                     smooth, ternary, window)
    np.testing.assert_allclose(spikes, S, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(membrane, U, rtol=1e-13, atol=1e-13)
    g = rng.standard_normal((T, B * F))
    gI, gb, gt = np.empty((T, B * F)), np.empty(B * F), np.empty(B * F)
    m = np.zeros((0, 0), bool) if mask is None else mask
    kernels.lif_backward_ext(g, membrane, spikes, beta, theta, 0 if reset == "hard" else 1, 0.1,
                             s.code, s.alpha, detach, ternary, window, m, scale, gI, gb, gt)
    rI, rb, rt = naive.lif_backward_general(g, U, S, np.tile(beta, B), np.tile(theta, B), reset,
                                            0.1, s, detach, ternary, window, mask, scale)
    np.testing.assert_allclose(gI, rI, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, rb, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gt, rt, rtol=1e-12, atol=1e-12)
    assert np.abs(gI).max() > 0 and np.abs(gt).max() > 0
    return spikes


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("mode", ["binary", "sum", "window"])
@pytest.mark.parametrize("smooth", [False, True])
def test_general_kernels_match_reference(reset, detach, mode, smooth):
    rng = np.random.default_rng(3)
    mask = rng.random((5, 12)) >= 0.4
    for m in (None, mask):
        spikes = _kernel_case(rng, ternary=mode != "binary", window=mode == "window", reset=reset,
                              detach=detach, smooth=smooth, mask=m, scale=1.5)
        if not smooth and mode != "binary":
            assert set(np.unique(spikes)) == {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset", RESETS)
def test_general_kernels_equal_plain_kernels_bitwise(dtype, reset):
    """Binary spikes with one beta/theta: the general kernels give the plain kernels' bits."""
    rng = np.random.default_rng(4)
    T, N = 6, 40
    s = surrogates.get("atan")
    cur = rng.uniform(-1, 2, (T, N)).astype(dtype)
    d = np.dtype(dtype).type
    r = 0 if reset == "hard" else 1
    out = [np.empty((T, N), dtype) for _ in range(4)]
    kernels.lif_forward(cur, d(0.7), d(0.8), r, d(0.0), s.code, d(s.alpha), False, out[0], out[1])
    kernels.lif_forward_ext(cur, np.full(1, 0.7, dtype), np.full(1, 0.8, dtype), r, d(0.0),
                            s.code, d(s.alpha), False, False, False, out[2], out[3])
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], out[3])
    g = rng.standard_normal((T, N)).astype(dtype)
    a, b = np.empty((T, N), dtype), np.empty((T, N), dtype)
    kernels.lif_backward(g, out[1], out[0], d(0.7), d(0.8), r, d(0.0), s.code, d(s.alpha), False, a)
    kernels.lif_backward_ext(g, out[1], out[0], np.full(1, 0.7, dtype), np.full(1, 0.8, dtype), r,
                             d(0.0), s.code, d(s.alpha), False, False, False,
                             np.zeros((0, 0), bool), d(1.0), b, np.empty(N, dtype),
                             np.empty(N, dtype))
    tol = 1e-6 if dtype == np.float32 else 1e-14   # the scalar surrogate rounds differently
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_ternary_forward_values_and_amplitude():
    x = np.array([1.2, 0.3, -0.3, -1.2, 0.5, -0.5])[None, None, :].repeat(2, 0)
    lif = LIF(beta=0.0, threshold=0.5, spikes="ternary", amplitude=0.75)
    y = lif.forward(x.astype(np.float32))
    np.testing.assert_array_equal(y[0, 0], 0.75 * np.array([1, 0, 0, -1, 1, -1]))


# -- finite differences on whole networks (smooth mode, float64) -------------------------
def _mlp(rng, **opts):
    lif_a = dict(opts, features=8) if opts.get("per_neuron") or opts.get("per_channel") else opts
    lif_b = dict(opts, features=5) if "features" in lif_a else opts
    return training.Sequential(
        training.Linear(6, 8, rng=rng), LIF(beta=0.6, threshold=0.7, surrogate="sigmoid", **lif_a),
        training.Linear(8, 5, rng=rng), LIF(tau=2.0, threshold=0.5, surrogate="sigmoid", **lif_b),
        training.Linear(5, 3, rng=rng))


CASES = [
    dict(spikes="ternary", ternary_grad="sum"),
    dict(spikes="ternary", ternary_grad="window"),
    dict(spikes="ternary", amplitude=0.8, learn_amplitude=True),
    dict(spikes="ternary", ternary_grad="window", amplitude=1.3, learn_amplitude=True,
         per_channel=True),
    dict(spikes="binary", amplitude=1.2, learn_amplitude=True, per_channel=True),
    dict(learn_beta=True),
    dict(learn_threshold=True),
    dict(learn_beta=True, learn_threshold=True, per_neuron=True),
    dict(spikes="ternary", learn_beta=True, learn_threshold=True, learn_amplitude=True),
    dict(spikes="ternary", ternary_grad="window", learn_threshold=True, per_neuron=True),
]


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_multilayer_gradients_finite_differences(float64, reset, case):
    rng = np.random.default_rng(10 + case)
    net = _mlp(rng, reset=reset, **CASES[case])
    x = rng.uniform(-1, 2, (4, 3, 6))            # T = 4, non-static input
    check_module_gradients(net, x, rtol=2e-5, atol=1e-7)
    names = {n for n, _ in net.named_parameters()}
    for flag, name in (("learn_amplitude", "amplitude"), ("learn_beta", "beta"),
                       ("learn_threshold", "threshold")):
        assert (f"1.{name}" in names) == bool(CASES[case].get(flag))



@pytest.mark.parametrize("reset", RESETS)
def test_conv_per_channel_amplitude_and_per_neuron_threshold(float64, reset):
    rng = np.random.default_rng(6)
    net = training.Sequential(
        training.Conv2d(1, 3, 3, padding=1, rng=rng),
        LIF(beta=0.5, threshold=0.6, surrogate="sigmoid", reset=reset, spikes="ternary",
            learn_amplitude=True, per_channel=True, learn_threshold=True, per_neuron=True,
            features=(3, 4, 4)),
        training.AvgPool2d(2), training.Flatten(), training.Linear(12, 3, rng=rng))
    x = rng.uniform(-1, 2, (3, 2, 1, 4, 4))
    check_module_gradients(net, x, rtol=2e-5, atol=1e-7)
    assert net.layers[1].amplitude.shape == (3,) and net.layers[1].threshold.shape == (3, 4, 4)


def test_static_input_gradients(float64):
    rng = np.random.default_rng(7)
    net = _mlp(rng, spikes="ternary", learn_beta=True, learn_threshold=True, learn_amplitude=True)
    x = training.encoding.direct(rng.uniform(-1, 2, (3, 6)), 3)
    check_module_gradients(net, x, rtol=2e-5, atol=1e-7)


# -- MSG ------------------------------------------------------------------------------------
def _msg_net(rng, p, seeds=(1, 2), **opts):
    return training.Sequential(
        training.Linear(10, 30, rng=rng), LIF(msg_p=p, rng=seeds[0], **opts),
        training.Linear(30, 30, rng=rng), LIF(msg_p=p, rng=seeds[1], **opts),
        training.Linear(30, 4, rng=rng))


def _grads(net, x, g):
    net.forward(x)
    net.zero_grad()
    gx = net.backward(g)
    return gx, {n: p.grad.copy() for n, p in net.named_parameters()}


@pytest.mark.parametrize("opts", [{}, dict(spikes="ternary", learn_amplitude=True,
                                         learn_threshold=True)])
def test_msg_p0_is_bit_identical_and_draws_nothing(opts):
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 3, (5, 16, 10)).astype(np.float32)
    g = rng.standard_normal((5, 16, 4)).astype(np.float32)
    plain = _msg_net(np.random.default_rng(0), 0.0, **opts)
    zero = _msg_net(np.random.default_rng(0), 0.0, msg_rescale=True, **opts)
    state = zero.layers[1].rng.bit_generator.state
    gx0, g0 = _grads(plain, x, g)
    gx1, g1 = _grads(zero, x, g)
    np.testing.assert_array_equal(gx0, gx1)
    for name in g0:
        np.testing.assert_array_equal(g0[name], g1[name])
    assert zero.layers[1].msg_mask is None
    assert zero.layers[1].rng.bit_generator.state == state
    if not opts:
        assert plain.layers[1].plain   # the default options run the original fused kernels


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("spikes", ["binary", "ternary"])
def test_msg_gradient_equals_reference_with_the_same_mask(float64, rescale, reset, spikes):
    rng = np.random.default_rng(9)
    p = 0.4
    lif = LIF(beta=0.6, threshold=0.7, reset=reset, surrogate="triangle", spikes=spikes,
              learn_threshold=True, learn_beta=True, msg_p=p, msg_rescale=rescale, rng=3)
    x = rng.uniform(-1.5, 2, (6, 4, 5))
    g = rng.standard_normal(x.shape)
    y = lif.forward(x)
    lif.zero_grad()
    gx = lif.backward(g)
    mask = lif.msg_mask
    assert mask.dtype == np.bool_ and mask.shape == x.shape
    S, U = y.reshape(6, -1), lif._u
    b, th = lif.beta_value()[0], lif.threshold_value()[0]
    rI, rb, rt = naive.lif_backward_general(g.reshape(6, -1), U, S, b, th, reset, 0.0,
                                            lif.surrogate, ternary=spikes == "ternary",
                                            mask=mask.reshape(6, -1),
                                            scale=1 / (1 - p) if rescale else 1.0)
    np.testing.assert_allclose(gx.reshape(6, -1), rI, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lif.threshold.grad[0], rt.sum(), rtol=1e-10)
    np.testing.assert_allclose(lif.beta.grad[0], rb.sum() * b * (1 - b), rtol=1e-10)
    # the mask matters: without it the gradient differs
    plain, *_ = naive.lif_backward_general(g.reshape(6, -1), U, S, b, th, reset, 0.0,
                                           lif.surrogate, ternary=spikes == "ternary")
    assert not np.allclose(plain, rI)


def test_msg_masks_fraction_iterations_layers_and_seeds():
    rng = np.random.default_rng(10)
    p = 0.3
    T, B = 4, 64
    x = rng.uniform(0, 3, (T, B, 10)).astype(np.float32)
    g = rng.standard_normal((T, B, 4)).astype(np.float32)
    net = _msg_net(np.random.default_rng(0), p)
    _grads(net, x, g)
    first = [net.layers[i].msg_mask.copy() for i in (1, 3)]
    for m in first:
        assert m.shape == (T, B, 30)
        for t in range(T):                       # binomial band per layer and step
            lo, hi = msg.expected_kept(m[t].size, p)
            assert lo <= m[t].sum() <= hi
    assert not np.array_equal(first[0], first[1])          # layers differ
    _grads(net, x, g)
    assert not np.array_equal(first[0], net.layers[1].msg_mask)   # iterations differ
    again = _msg_net(np.random.default_rng(0), p)
    _grads(again, x, g)
    np.testing.assert_array_equal(again.layers[1].msg_mask, first[0])   # same seed
    np.testing.assert_array_equal(again.layers[3].msg_mask, first[1])


def test_msg_schedule_sets_layers():
    net = _msg_net(np.random.default_rng(0), 0.0)
    training.MSGSchedule(0.5).apply(net, 0)
    assert net.layers[1].msg_p == 0.5 and not net.layers[1].plain


# -- bad settings ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, name", [
    (dict(msg_p=1.0), "msg_p"), (dict(msg_p=-0.1), "msg_p"),
    (dict(spikes="ternary", ternary_grad="straight"), "ternary_grad"),
    (dict(amplitude=0.0), "amplitude"), (dict(amplitude=-1.0), "amplitude"),
    (dict(spikes="quaternary"), "spikes"), (dict(beta=1.0, learn_beta=True), "learn_beta"),
    (dict(per_channel=True), "features"), (dict(per_neuron=True), "features"),
])
def test_bad_settings_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LIF(**kwargs)
    lif = LIF()
    with pytest.raises(ValueError, match="msg_p"):
        lif.msg_p = 1.5


def test_new_parameters_have_no_weight_decay():
    lif = LIF(beta=0.5, learn_beta=True, learn_threshold=True, learn_amplitude=True)
    params = dict(lif.named_parameters())
    assert set(params) == {"beta", "threshold", "amplitude"}
    before = {n: p.data.copy() for n, p in params.items()}
    opt = training.optim.SGD(lif.named_parameters(), lr=0.1, weight_decay=0.5)
    opt.step()                                   # zero gradients: only weight decay could move
    for n, p in params.items():
        np.testing.assert_array_equal(p.data, before[n])


def test_learned_threshold_kept_positive():
    lif = LIF(learn_threshold=True)
    lif.threshold.data[...] = -0.2
    lif.forward(np.ones((2, 1, 3), np.float32))
    assert lif.threshold.data[0] == pytest.approx(LIF.THETA_MIN)


# -- export and the simulator ---------------------------------------------------------------
def _dyadic(rng, shape, scale=8):
    return (rng.integers(-scale, scale + 1, shape) / scale).astype(np.float64)


def _spikes_of(net, x):
    """The dense engine's spikes of every LIF (sign of the output; amplitudes are > 0)."""
    out = []
    for layer in net.layers:
        x = layer.forward(x)
        if isinstance(layer, LIF):
            out.append(np.sign(x))
    return out, x


@pytest.mark.parametrize("reset", RESETS)
def test_exported_ternary_model_runs_in_simulator_bit_exact(tmp_path, float64, reset):
    import eventsim

    rng = np.random.default_rng(11)
    net = training.Sequential(
        training.Linear(12, 20, rng=rng),
        LIF(beta=0.5, threshold=0.5, reset=reset, spikes="ternary", learn_amplitude=True,
            per_channel=True, features=20),
        training.Linear(20, 16, rng=rng),
        LIF(beta=0.25, threshold=0.5, reset=reset, spikes="ternary", learn_amplitude=True),
        training.Linear(16, 5, rng=rng))
    for layer in net.layers:
        if isinstance(layer, training.Linear):
            layer.weight.data[...] = _dyadic(rng, layer.weight.shape)
            layer.bias.data[...] = _dyadic(rng, layer.bias.shape)
    net.layers[1].amplitude.data[...] = rng.integers(1, 9, 20) / 4
    net.layers[3].amplitude.data[...] = 1.5
    net.eval()
    x = training.encoding.direct(_dyadic(rng, (9, 12)) * 2, 6)
    dense_spikes, y = _spikes_of(net, x)
    path = training.export(net, tmp_path / "t.h5", input_shape=(12,), T=6, dtype=np.float64)
    model = mf.read_model(path)
    assert [l.spikes for l in model.layers if l.kind == "spiking"] == ["ternary", "ternary"]
    assert model.layers[2].weight[0, 3] == net.layers[2].weight.data[0, 3] * net.layers[1].amplitude.data[3]
    rec = eventsim.Simulator(path).run(x)
    for k, layer in enumerate(model.spiking_layers):
        got = rec.spikes[layer].to_dense(6, 9)
        np.testing.assert_array_equal(got, dense_spikes[k].reshape(6, 9, -1))
        assert (got < 0).any() and (got > 0).any()
    np.testing.assert_array_equal(training.to_network(model).forward(x), y)
    np.testing.assert_array_equal(rec.predictions, y.mean(axis=0).argmax(axis=1))


def test_export_per_channel_amplitude_through_pool_and_flatten(tmp_path, float64):
    rng = np.random.default_rng(12)
    net = training.Sequential(
        training.Conv2d(1, 3, 3, padding=1, rng=rng),
        LIF(beta=0.5, threshold=0.5, spikes="ternary", learn_amplitude=True, per_channel=True,
            features=(3, 4, 4)),
        training.AvgPool2d(2), training.Conv2d(3, 2, 1, rng=rng),
        LIF(beta=0.5, threshold=0.3, learn_amplitude=True, per_channel=True, features=(2, 2, 2)),
        training.Flatten(), training.Linear(8, 3, rng=rng))
    net.layers[1].amplitude.data[...] = [0.5, 1.25, 2.0]
    net.layers[4].amplitude.data[...] = [0.75, 1.5]
    net.eval()
    x = training.encoding.direct(rng.uniform(-1, 2, (4, 1, 4, 4)), 3)
    y = net.forward(x)
    model = training.to_model(net, input_shape=(1, 4, 4), T=3, dtype=np.float64)
    np.testing.assert_allclose(training.to_network(model).forward(x), y, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(model.layers[-2].weight[:, 4:],
                                  net.layers[6].weight.data[:, 4:] * 1.5)


@pytest.mark.parametrize("bad", [0.0, -0.5])
def test_export_rejects_nonpositive_amplitude(bad):
    net = training.Sequential(training.Linear(3, 4), LIF(spikes="ternary", learn_amplitude=True),
                              training.Linear(4, 2))
    net.layers[1].amplitude.data[...] = bad
    with pytest.raises(ValueError, match="amplitude"):
        training.to_model(net, input_shape=(3,), T=2)


def test_per_neuron_parameters_export_version3_and_rebuild(tmp_path):
    import eventsim
    import h5py

    rng = np.random.default_rng(13)
    net = training.Sequential(
        training.Linear(6, 8, rng=rng),
        LIF(beta=0.6, learn_beta=True, learn_threshold=True, per_neuron=True, features=8),
        training.Linear(8, 3, rng=rng))
    lif = net.layers[1]
    lif.beta.data[...] = rng.normal(0, 1, 8).astype(np.float32)
    lif.threshold.data[...] = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    net.eval()
    x = training.encoding.direct(rng.uniform(0, 2, (5, 6)).astype(np.float32), 4)
    y = net.forward(x)
    path = training.export(net, tmp_path / "pn.h5", input_shape=(6,), T=4)
    with h5py.File(path) as f:
        assert f.attrs["version"] == 3
        assert f["layers/0001/beta"].shape == (8,) and "sha256" in f["layers/0001/theta"].attrs
    model = mf.read_model(path)
    sp = model.layers[1]
    np.testing.assert_array_equal(sp.theta, lif.threshold.data)
    np.testing.assert_allclose(sp.beta, lif.beta_value(), rtol=1e-7)
    np.testing.assert_array_equal(training.to_network(model).forward(x), y)
    rec = eventsim.Simulator(path).run(x)
    np.testing.assert_array_equal(rec.predictions, training.losses.decode(y).argmax(axis=1))


@pytest.mark.parametrize("reset", RESETS)
def test_per_neuron_plif_conv_model_runs_in_simulator_bit_exact(reset):
    """Learned per-neuron beta (PLIF: sigmoid of a float parameter, not dyadic) and
    threshold in a conv layer (the simulator stores maps channel-last: the per-neuron values
    are permuted with the neurons) and an MLP layer; dyadic weights and inputs make every sum
    exact, so the float32 simulator gives the dense engine's spikes bit for bit."""
    import eventsim

    rng = np.random.default_rng(14)
    net = training.Sequential(
        training.Conv2d(2, 3, 3, padding=1, rng=rng),
        LIF(learn_beta=True, learn_threshold=True, per_neuron=True, features=(3, 5, 5),
            reset=reset),
        training.Flatten(), training.Linear(75, 12, rng=rng),
        LIF(learn_beta=True, per_neuron=True, features=12, reset=reset, threshold=0.75),
        training.Linear(12, 4, rng=rng))
    for layer in net.layers:
        if isinstance(layer, (training.Linear, training.Conv2d)):
            layer.weight.data[...] = _dyadic(rng, layer.weight.shape, 16)
            layer.bias.data[...] = _dyadic(rng, layer.bias.shape, 16)
        if isinstance(layer, LIF):
            layer.beta.data[...] = rng.normal(0.5, 1.5, layer.beta.shape).astype(np.float32)
    net.layers[1].threshold.data[...] = rng.uniform(0.4, 1.2, (3, 5, 5)).astype(np.float32)
    net.eval()
    T, B = 7, 6
    x = training.encoding.direct((rng.integers(0, 9, (B, 2, 5, 5)) / 4).astype(np.float32), T)
    dense_spikes, y = _spikes_of(net, x)
    model = training.to_model(net, input_shape=(2, 5, 5), T=T)
    assert isinstance(model.layers[1].beta, np.ndarray) and model.layers[1].beta.shape == (75,)
    for kw in (dict(), dict(constant_drive="predict"), dict(schedule="time"),
               dict(record_membrane={1: "all", 4: "all"})):
        rec = eventsim.Simulator(model, **kw).run(x)
        for k, layer in enumerate(model.spiking_layers):
            got = rec.spikes[layer].to_dense(T, B)
            np.testing.assert_array_equal(got, dense_spikes[k].reshape(T, B, -1), err_msg=str(kw))
            assert 0 < got.mean() < 1
        np.testing.assert_array_equal(rec.readout, y)


@pytest.mark.parametrize("field, value, match", [
    ("beta", np.full(7, 0.5, np.float32), r"beta: expected shape \(8,\)"),
    ("beta", np.full(8, 1.5, np.float32), r"beta: value 1.5 at neuron 0"),
    ("theta", np.zeros(8, np.float32), r"theta: value 0.0 at neuron 0"),
    ("theta", np.full((2, 4), 0.5, np.float32), "theta: expected 1 dimensions"),
])
def test_per_neuron_arrays_validated(field, value, match):
    import dataclasses
    model = training.to_model(training.Sequential(training.Linear(6, 8), LIF(),
                                                  training.Linear(8, 3)), input_shape=(6,), T=2)
    model.layers[1] = dataclasses.replace(model.layers[1], **{field: value})
    with pytest.raises(mf.ModelFormatError, match=match):
        mf.validate(model)


def test_version1_and_2_files_still_read(tmp_path):
    import h5py

    model = mf.read_model("tests/data/fmnist_mlp.h5")          # version 1
    assert all(isinstance(l.beta, float) for l in model.layers if l.kind == "spiking")
    net = training.Sequential(training.Linear(6, 8), LIF(), training.Linear(8, 3))
    path = training.export(net, tmp_path / "v2.h5", input_shape=(6,), T=2)
    with h5py.File(path, "r+") as f:                             # per-layer values: the v2 layout
        f.attrs["version"] = 2
    assert mf.read_model(path).layers[1].beta == 0.5


@pytest.mark.parametrize("reset", RESETS)
def test_exported_plif_model_runs_in_simulator_bit_exact(tmp_path, float64, reset):
    """A learned per-layer decay and threshold (PLIF) exports as plain canonical scalars:
    with w = 0 (beta = sigmoid(0) = 1/2, exact) and dyadic weights and thresholds, the
    simulator's spikes equal the dense engine's bit for bit."""
    import eventsim

    rng = np.random.default_rng(21)
    net = training.Sequential(
        training.Linear(12, 20, rng=rng),
        LIF(beta=0.5, threshold=0.75, reset=reset, learn_beta=True, learn_threshold=True),
        training.Linear(20, 5, rng=rng))
    for layer in net.layers:
        if isinstance(layer, training.Linear):
            layer.weight.data[...] = _dyadic(rng, layer.weight.shape)
            layer.bias.data[...] = _dyadic(rng, layer.bias.shape)
    plif = net.layers[1]
    plif.beta.data[...] = 0.0            # sigmoid(0) = 0.5 exactly
    plif.threshold.data[...] = 0.625
    net.eval()
    x = training.encoding.direct(_dyadic(rng, (9, 12)) * 2, 6)
    dense_spikes, y = _spikes_of(net, x)
    path = training.export(net, tmp_path / "p.h5", input_shape=(12,), T=6, dtype=np.float64)
    model = mf.read_model(path)
    spiking = model.layers[model.spiking_layers[0]]
    assert (spiking.beta, spiking.theta) == (0.5, 0.625)
    rec = eventsim.Simulator(path).run(x)
    got = rec.spikes[model.spiking_layers[0]].to_dense(6, 9)
    np.testing.assert_array_equal(got, dense_spikes[0].reshape(6, 9, -1))
    assert got.any() and not got.all()
    np.testing.assert_array_equal(rec.predictions, y.mean(axis=0).argmax(axis=1))
