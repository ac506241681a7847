"""KLIF (training/klif.py): forward and backward against plain references, finite-difference
gradients (dL/dx, dL/dk, upstream weights), MSG masks, the k range, and export to the
simulator (exact on dyadic numbers, near-identical decisions otherwise)."""
import dataclasses

import numpy as np
import pytest

import training
from snncore import modelfile as mf
from training import surrogates
from training.klif import KLIF, ClampedLIF, klif_backward, klif_forward
from training.msg import expected_kept
from tests.gradcheck import check_module_gradients
from tests.reference import naive_klif as naive


@pytest.fixture
def float64():
    with training.default_dtype(np.float64):
        yield


def run_kernels(X, tau, k, theta, sur, smooth=False):
    dt = X.dtype.type
    S, H, U = np.empty_like(X), np.empty_like(X), np.empty_like(X)
    klif_forward(X, dt(tau), dt(k), dt(theta), sur.code, dt(sur.alpha), smooth, S, H, U)
    return S, H, U


# -- forward -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tau,k,theta", [(2.0, 1.0, 1.0), (3.0, 1.3, 0.7), (1.5, 0.4, 0.5),
                                         (1.0, 3.0, 1.0)])
@pytest.mark.parametrize("smooth", [False, True])
def test_forward_matches_numpy_reference(dtype, tau, k, theta, smooth):
    rng = np.random.default_rng(0)
    X = rng.normal(0.8, 1.5, size=(8, 300)).astype(dtype)
    sur = surrogates.get("sigmoid")
    S, H, U = run_kernels(X, tau, k, theta, sur, smooth)
    S_ref, H_ref = naive.klif_forward(X, tau, k, theta, sur, smooth)
    if smooth:   # the primitive: Numba's scalar sigmoid vs NumPy's tanh form
        np.testing.assert_allclose(S, S_ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
        np.testing.assert_allclose(H, H_ref, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-6)
    else:        # the same operations in the same order: the same bits
        np.testing.assert_array_equal(S, S_ref)
        np.testing.assert_array_equal(H, H_ref)
        assert 0.02 < S.mean() < 0.9
    np.testing.assert_array_equal(U, X.dtype.type(k) * H)


def test_layer_forward_shapes_static_input_and_record(float64):
    rng = np.random.default_rng(1)
    x0 = rng.normal(1.0, 1.0, size=(5, 3, 4))
    layer = KLIF(tau=2.0, k=0.9)
    layer.record = True
    static = training.encoding.direct(x0, 6)            # stride-0 view over T
    y = layer.forward(static)
    y2 = layer.forward(np.ascontiguousarray(static))
    np.testing.assert_array_equal(y, y2)
    assert y.shape == (6, 5, 3, 4) and set(np.unique(y)) <= {0.0, 1.0} and y.sum() > 0
    S, H = naive.klif_forward(np.ascontiguousarray(static).reshape(6, -1), 2.0, 0.9, 1.0)
    np.testing.assert_array_equal(y.reshape(6, -1), S)
    np.testing.assert_array_equal(layer.membrane.reshape(6, -1), 0.9 * H)


def test_forward_is_the_klif_equations_by_hand():
    """One neuron, tau = 2, k = 1.5, theta = 1: H = V + (X - V)/2, F = ReLU(1.5 H)."""
    X = np.array([[1.0], [2.0], [-4.0], [1.0]])
    S, H, U = run_kernels(X, 2.0, 1.5, 1.0, surrogates.get("sigmoid"))
    # t0: H=0.5, F=0.75 no spike, V=0.75; t1: H=1.375, F=2.0625 spike, V=0;
    # t2: H=-2, F=0 (ReLU), V=0; t3: H=0.5, F=0.75
    np.testing.assert_array_equal(H[:, 0], [0.5, 1.375, -2.0, 0.5])
    np.testing.assert_array_equal(S[:, 0], [0.0, 1.0, 0.0, 0.0])


# -- backward ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sigmoid", "atan", "triangle", "rectangle", "fast_sigmoid"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_backward_kernel_matches_reference(name, detach_reset):
    rng = np.random.default_rng(2)
    X = rng.normal(0.8, 1.5, size=(7, 200))
    sur = surrogates.get(name)
    tau, k, theta = 3.0, 1.2, 0.8
    S, H, _ = run_kernels(X, tau, k, theta, sur)
    gS = rng.standard_normal(X.shape)
    gX, gk_n = np.empty_like(X), np.empty(X.shape[1])
    klif_backward(gS, H, S, tau, k, theta, sur.code, sur.alpha, detach_reset,
                  np.ones((1, 1), bool), False, 1.0, gX, gk_n)
    gX_ref, gk_ref = naive.klif_backward(gS, H, S, tau, k, theta, sur, detach_reset)
    np.testing.assert_allclose(gX, gX_ref, rtol=1e-12, atol=1e-14)
    assert gk_n.sum() == pytest.approx(gk_ref, rel=1e-12)
    assert np.abs(gX).max() > 0 and gk_ref != 0


def klif_net(rng, surrogate="sigmoid", learn_k=True, detach_reset=False, n_in=5):
    return training.Sequential(
        training.Linear(n_in, 7, rng=rng),
        KLIF(tau=2.0, k=1.1, surrogate=surrogate, learn_k=learn_k, detach_reset=detach_reset),
        training.Linear(7, 6, rng=rng),
        KLIF(tau=3.0, k=0.8, threshold=0.6, surrogate=surrogate, learn_k=learn_k,
             detach_reset=detach_reset),
        training.Linear(6, 3, rng=rng))


@pytest.mark.parametrize("surrogate", ["sigmoid", "atan", "fast_sigmoid"])
def test_gradcheck_multilayer(float64, surrogate):
    """Smooth mode, float64: dL/dx, dL/dk of both layers and every weight, T = 4."""
    rng = np.random.default_rng(3)
    net = klif_net(rng, surrogate)
    x = rng.normal(1.0, 1.5, size=(4, 3, 5))
    check_module_gradients(net, x)
    assert {"1.k", "3.k"} <= {n for n, _ in net.named_parameters()}


def test_gradcheck_static_input_and_fixed_k(float64):
    rng = np.random.default_rng(4)
    net = klif_net(rng, learn_k=False)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias",
                                                      "4.weight", "4.bias"]
    x = training.encoding.direct(rng.normal(1.0, 1.5, size=(3, 5)), 5)
    check_module_gradients(net, x)


def test_gradcheck_single_layer_k(float64):
    rng = np.random.default_rng(5)
    layer = KLIF(tau=2.0, k=1.4, threshold=0.9)
    check_module_gradients(layer, rng.normal(0.8, 1.5, size=(6, 4, 5)))


def test_detach_reset_drops_the_reset_path(float64):
    """detach_reset matches the reference with the reset term dropped, and differs from the
    full gradient (which the finite-difference checks above validate)."""
    rng = np.random.default_rng(6)
    x = rng.normal(1.0, 1.5, size=(6, 4, 10))
    w = rng.standard_normal(x.shape)
    grads = {}
    for detach in (False, True):
        layer = KLIF(tau=2.0, k=1.2, detach_reset=detach)
        y = layer.forward(x)
        gx = layer.backward(w)
        grads[detach] = (gx, layer.k.grad[0])
        S, H = naive.klif_forward(x.reshape(6, -1), 2.0, 1.2, 1.0)
        gx_ref, gk_ref = naive.klif_backward(w.reshape(6, -1), H, S, 2.0, 1.2, 1.0,
                                             layer.surrogate, detach)
        np.testing.assert_allclose(gx.reshape(6, -1), gx_ref, rtol=1e-12, atol=1e-14)
        assert layer.k.grad[0] == pytest.approx(gk_ref, rel=1e-12)
        assert y.sum() > 0
    assert not np.allclose(grads[False][0], grads[True][0])


def test_k_gradient_accumulates_and_bad_gradient_shape(float64):
    rng = np.random.default_rng(7)
    layer = KLIF()
    x = rng.normal(1.0, 1.5, size=(4, 2, 3))
    layer.forward(x)
    w = rng.standard_normal(x.shape)
    layer.backward(w)
    g1 = layer.k.grad[0]
    layer.backward(w)
    assert layer.k.grad[0] == pytest.approx(2 * g1) and g1 != 0
    with pytest.raises(ValueError, match="gradient shape"):
        layer.backward(w[:, :1])
    layer.eval().forward(x)
    with pytest.raises(RuntimeError, match="without a training forward"):
        layer.backward(w)


# -- MSG ---------------------------------------------------------------------------------------

def _grads(layer, x, w):
    layer.train()
    layer.zero_grad()
    layer.forward(x)
    gx = layer.backward(w)
    return gx, layer.k.grad.copy()


def test_msg_p0_is_bit_identical_and_draws_nothing(float64):
    rng = np.random.default_rng(8)
    x = rng.normal(1.0, 1.5, size=(5, 4, 6))
    w = rng.standard_normal(x.shape)
    plain = _grads(KLIF(), x, w)
    layer = KLIF(msg_p=0.5, rng=3)
    masked = _grads(layer, x, w)
    assert layer.msg_mask is not None and not np.array_equal(masked[0], plain[0])
    layer.msg_p = 0.0
    state = layer.rng.bit_generator.state
    again = _grads(layer, x, w)
    assert layer.rng.bit_generator.state == state and layer.msg_mask is None
    np.testing.assert_array_equal(again[0], plain[0])
    np.testing.assert_array_equal(again[1], plain[1])


@pytest.mark.parametrize("rescale", [False, True])
def test_msg_gradient_with_the_given_mask(float64, rescale):
    """With the mask the layer drew, the gradient is the reference's masked BPTT: the same
    masked derivative in the output and the reset path, times 1/(1-p) with rescale."""
    rng = np.random.default_rng(9)
    x = rng.normal(1.0, 1.5, size=(6, 3, 8))
    w = rng.standard_normal(x.shape)
    p = 0.4
    layer = KLIF(tau=2.0, k=1.3, msg_p=p, msg_rescale=rescale, rng=11)
    gx, gk = _grads(layer, x, w)
    keep = layer.msg_mask
    assert keep.dtype == np.bool_ and keep.shape == x.shape
    S, H = naive.klif_forward(x.reshape(6, -1), 2.0, 1.3, 1.0)
    gx_ref, gk_ref = naive.klif_backward(w.reshape(6, -1), H, S, 2.0, 1.3, 1.0, layer.surrogate,
                                         keep=keep.reshape(6, -1),
                                         scale=1 / (1 - p) if rescale else 1.0)
    np.testing.assert_allclose(gx.reshape(6, -1), gx_ref, rtol=1e-12, atol=1e-14)
    assert gk[0] == pytest.approx(gk_ref, rel=1e-12)
    _, gk_plain = naive.klif_backward(w.reshape(6, -1), H, S, 2.0, 1.3, 1.0, layer.surrogate)
    assert gk_ref != pytest.approx(gk_plain, rel=1e-6)


@pytest.mark.parametrize("p", [0.25, 0.5, 0.75])
def test_msg_masked_fraction_per_step(p):
    T, B, N = 5, 40, 50
    layer = KLIF(msg_p=p, rng=12)
    x = np.random.default_rng(13).normal(1.0, 1.0, size=(T, B, N)).astype(np.float32)
    layer.forward(x)
    layer.backward(np.ones_like(x))
    for t in range(T):
        low, high = expected_kept(B * N, p)
        assert low <= layer.msg_mask[t].sum() <= high


def test_msg_masks_per_seed_iteration_and_layer():
    x = np.random.default_rng(14).normal(1.0, 1.0, size=(4, 8, 16)).astype(np.float32)
    g = np.ones_like(x)

    def masks(seed, n=2):
        layer = KLIF(msg_p=0.5, rng=seed)
        out = []
        for _ in range(n):
            layer.forward(x)
            layer.backward(g)
            out.append(layer.msg_mask.copy())
        return out

    a, b, c = masks(21), masks(21), masks(22)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])       # a fresh mask every iteration
    assert not np.array_equal(a[0], c[0])       # layers with their own generators differ
    assert KLIF(msg_p=0.5, rng=np.random.default_rng(5)).rng.random() == \
        np.random.default_rng(5).random()


@pytest.mark.parametrize("cls", [KLIF, training.LIF])
def test_fit_gives_layers_without_rng_their_own_mask_streams(cls):
    """Two MSG layers of one shape built without ``rng=`` draw different masks under ``fit``
    (each gets ``default_rng([seed, position])``), the same ones again for the same seed; a
    layer given its own ``rng`` keeps it."""
    rng = np.random.default_rng(3)
    x = rng.random((32, 6)).astype(np.float32)
    y = rng.integers(0, 3, 32)

    def run(seed, given=None):
        net = training.Sequential(
            training.Linear(6, 8, rng=np.random.default_rng(1)), cls(msg_p=0.5),
            training.Linear(8, 8, rng=np.random.default_rng(2)), cls(msg_p=0.5, rng=given),
            training.Linear(8, 3, rng=np.random.default_rng(3)))
        opt = training.optim.SGD(list(net.named_parameters()), lr=0.1)
        training.fit(net, (x, y), T=3, epochs=1, batch_size=32, optimizer=opt, seed=seed,
                     progress=False)
        return net.layers[1].msg_mask.copy(), net.layers[3].msg_mask.copy(), net

    m1, m3, _ = run(7)
    assert not np.array_equal(m1, m3)
    n1, n3, _ = run(7)
    np.testing.assert_array_equal(m1, n1)
    np.testing.assert_array_equal(m3, n3)
    assert not np.array_equal(run(8)[0], m1)
    gen = np.random.default_rng(99)
    assert run(7, given=gen)[2].layers[3].rng is gen


def test_msg_p_validated_and_set_by_schedule():
    for bad in (-0.1, 1.0, float("nan"), "x"):
        with pytest.raises(ValueError, match="msg_p"):
            KLIF(msg_p=bad)
    layer = KLIF()
    with pytest.raises(ValueError, match="msg_p"):
        layer.msg_p = 1.5
    net = training.Sequential(training.Linear(3, 4), layer, training.Linear(4, 2))
    assert training.MSGSchedule(0.25, 0.75, 0, 2).apply(net, 1) == pytest.approx(0.5)
    assert layer.msg_p == pytest.approx(0.5)


# -- k: parameter, range, clip ---------------------------------------------------------------

@pytest.mark.parametrize("tau,k", [(2.0, 0.0), (2.0, -1.0), (2.0, 2.0), (2.0, 2.5), (3.0, 1.5),
                                   (2.0, float("nan")), (2.0, float("inf")), (2.0, "a")])
def test_bad_k_raises_naming_k(tau, k):
    with pytest.raises(ValueError, match=r"KLIF: k must"):
        KLIF(tau=tau, k=k)


def test_other_bad_settings():
    with pytest.raises(ValueError, match="tau"):
        KLIF(tau=0.5)
    with pytest.raises(ValueError, match="tau"):
        KLIF(tau=float("inf"))
    with pytest.raises(ValueError, match="threshold"):
        KLIF(threshold=0.0)
    with pytest.raises(ValueError, match="surrogate"):
        KLIF(surrogate="nope")
    assert KLIF(tau=3.0, k=1.49).k_value == pytest.approx(1.49)
    assert KLIF(tau=1.0, k=50.0).beta == 0.0


def test_k_is_a_parameter_holding_k():
    layer = KLIF(tau=2.0, k=0.75)
    params = dict(layer.named_parameters())
    assert list(params) == ["k"] and params["k"].data.shape == (1,)
    assert params["k"].data[0] == 0.75 and params["k"].weight_decay is False
    assert layer.beta == 0.375 and layer.input_gain == 0.375
    assert dict(KLIF(learn_k=False, k=0.75).named_parameters()) == {}


def test_k_clipped_after_an_optimizer_step(float64):
    """A step that pushes k out of (0, tau/(tau-1)) is clipped before k is used again."""
    rng = np.random.default_rng(15)
    net = klif_net(rng)
    opt = training.optim.SGD(net.parameters(), lr=1.0)
    x = rng.normal(1.0, 1.5, size=(4, 3, 5))
    for sign, tau in ((1.0, 2.0), (-1.0, 3.0)):
        layer = net.layers[1] if tau == 2.0 else net.layers[3]
        net.zero_grad()
        net.forward(x)
        net.backward(np.ones((4, 3, 3)))
        layer.k.grad[0] = -sign * 100.0
        opt.step()
        assert not 0 < layer.k.data[0] < tau / (tau - 1)    # the step left the range
        assert 0 < layer.k_value < tau / (tau - 1)          # what export would use
        net.forward(x)
        assert 0 < layer.k.data[0] < tau / (tau - 1) and layer.beta < 1.0
        assert layer.k.data[0] == pytest.approx(tau / (tau - 1) if sign > 0 else 0.0, abs=1e-5)


def test_fit_trains_k_in_range():
    rng = np.random.default_rng(16)
    x = rng.random((64, 10)).astype(np.float32)
    y = (x[:, :5].sum(1) > x[:, 5:].sum(1)).astype(np.int64)
    net = training.Sequential(training.Linear(10, 16, rng=rng), KLIF(),
                              training.Linear(16, 2, rng=rng))
    opt = training.optim.Adam(net.parameters(), lr=0.05)
    training.fit(net, (x, y), T=4, epochs=2, batch_size=16, optimizer=opt, progress=False)
    k = net.layers[1].k.data[0]
    assert k != 1.0 and 0 < k < 2


# -- export and the simulator ------------------------------------------------------------------

def dyadic_net(rng, ks=(1.0, 0.5)):
    net = training.Sequential(training.Linear(16, 24, rng=rng), KLIF(tau=2.0, k=ks[0]),
                              training.Linear(24, 20, rng=rng), KLIF(tau=2.0, k=ks[1]),
                              training.Linear(20, 4, rng=rng)).eval()
    for layer in net.layers[::2]:
        layer.weight.data[...] = rng.integers(-12, 17, layer.weight.data.shape) / 16
        layer.bias.data[...] = rng.integers(-4, 5, layer.bias.data.shape) / 16
    return net


def dense_spikes(net, x):
    out, spikes = x, {}
    for i, layer in enumerate(net.layers):
        out = layer.forward(out)
        if isinstance(layer, KLIF):
            spikes[i] = out
    return spikes, out


@pytest.mark.parametrize("ks", [(1.0, 0.5), (1.5, 1.0)])
def test_export_dyadic_simulator_gives_dense_spikes(float64, ks):
    """tau = 2 with k in {0.5, 1, 1.5}: beta and gain are dyadic, every value is exact in both
    engines, so the simulator's spikes and readout equal the dense engine's bit for bit."""
    import eventsim
    rng = np.random.default_rng(17)
    net = dyadic_net(rng, ks)
    T, B = 8, 64
    x = training.encoding.direct(rng.integers(0, 9, (B, 16)) / 8, T)
    spikes, y = dense_spikes(net, x)
    model = training.to_model(net, input_shape=(16,), T=T, dtype=np.float64)
    assert [l.kind for l in model.layers] == ["dense", "spiking", "dense", "spiking", "dense",
                                              "readout"]
    for m, k in zip((1, 3), ks):
        rec = model.layers[m]
        assert (rec.beta, rec.theta, rec.reset, rec.v_reset, rec.v_min) == (k / 2, 1.0, "hard",
                                                                            0.0, 0.0)
    np.testing.assert_array_equal(model.layers[0].weight, net.layers[0].weight.data * ks[0] / 2)
    sim = eventsim.Simulator(model, n_threads=1).run(x)
    for pos, m in ((1, 1), (3, 3)):
        np.testing.assert_array_equal(sim.spikes[m].to_dense(T, B), spikes[pos])
        assert 0.01 < spikes[pos].mean() < 0.9
    np.testing.assert_array_equal(sim.readout, y)
    # the rebuilt dense network (ClampedLIF layers) gives the same bits
    rebuilt = training.to_network(model)
    assert isinstance(rebuilt.layers[1], ClampedLIF) and rebuilt.layers[1].v_min == 0.0
    np.testing.assert_array_equal(rebuilt.forward(x), y)


def test_export_clamp_matters(float64):
    """The exported v_min = 0 is needed: without it the same canonical layers fire
    differently (negative membranes carry over), so the equality above can fail."""
    import eventsim
    rng = np.random.default_rng(17)
    net = dyadic_net(rng, (1.5, 1.0))
    T, B = 8, 64
    x = training.encoding.direct(rng.integers(0, 9, (B, 16)) / 8, T)
    spikes, _ = dense_spikes(net, x)
    model = training.to_model(net, input_shape=(16,), T=T, dtype=np.float64)
    unclamped = dataclasses.replace(model, layers=[
        dataclasses.replace(l, v_min=None) if isinstance(l, mf.Spiking) else l
        for l in model.layers])
    sim2 = eventsim.Simulator(unclamped, n_threads=1).run(x)
    assert not all(np.array_equal(sim2.spikes[m].to_dense(T, B), spikes[p])
                   for p, m in ((1, 1), (3, 3)))


def test_export_non_dyadic_k_near_identical(float64):
    """k = 0.93 (tau 2) and 1.3 (tau 3): the export mapping is exact in real arithmetic but
    not bitwise (the two forms round k (V + (X - V)/tau) and beta V + (k/tau) W x
    differently, so a membrane within an ulp of theta may fire in one engine only):
    require >= 99.5 % equal decisions and >= 99.9 % equal spikes."""
    import eventsim
    rng = np.random.default_rng(18)
    net = training.Sequential(training.Linear(30, 40, rng=rng), KLIF(tau=2.0, k=0.93),
                              training.Linear(40, 30, rng=rng),
                              KLIF(tau=3.0, k=1.3, threshold=0.8),
                              training.Linear(30, 10, rng=rng)).eval()
    for layer in net.layers[:4:2]:
        layer.weight.data *= 3.0
    T, B = 8, 400
    x = training.encoding.direct(rng.random((B, 30)), T)
    spikes, y = dense_spikes(net, x)
    model = training.to_model(net, input_shape=(30,), T=T, dtype=np.float64)
    assert model.layers[3].beta == pytest.approx(1.3 * 2 / 3) and model.layers[3].v_min == 0.0
    sim = eventsim.Simulator(model, n_threads=1).run(x)
    for pos in (1, 3):
        got = sim.spikes[pos].to_dense(T, B)
        assert np.mean(got == spikes[pos]) >= 0.999
        assert 0.01 < spikes[pos].mean() < 0.9
    decisions = training.losses.decode(y).argmax(axis=1)
    assert np.mean(sim.predictions == decisions) >= 0.995


def test_export_file_roundtrip_and_errors(float64, tmp_path):
    rng = np.random.default_rng(19)
    net = dyadic_net(rng)
    path = training.export(net, tmp_path / "k.h5", input_shape=(16,), T=4)
    model = mf.read_model(path)
    assert model.layers[1].v_min == 0.0 and model.origins[1].cls == "KLIF"
    rebuilt = training.to_network(model)
    again = training.to_model(rebuilt, input_shape=(16,), T=4)
    assert again.layers[1].v_min == 0.0 and again.layers[1].beta == model.layers[1].beta
    with pytest.raises(RuntimeError, match="inference only"):
        rebuilt.layers[1].backward(np.zeros((4, 1, 24)))
    with pytest.raises(ValueError, match="no weight layer before it"):
        training.to_model(training.Sequential(KLIF(), training.Linear(3, 2)), input_shape=(3,), T=2)
    # an out-of-range k left by an optimiser step is exported clipped (beta < 1)
    net.layers[1].k.data[0] = 7.0
    assert training.to_model(net, input_shape=(16,), T=4).layers[1].beta < 1.0


def test_fit_checkpoint_resume_restores_k(tmp_path):
    """k travels in the state dict: 2 epochs in one go equal 1 epoch + resume for 1 more."""
    rng = np.random.default_rng(20)
    x = rng.random((48, 10)).astype(np.float32)
    y = (x[:, :5].sum(1) > x[:, 5:].sum(1)).astype(np.int64)

    def run(epochs, ckpt, resume):
        net = training.Sequential(training.Linear(10, 12, rng=1), KLIF(k=0.9),
                                  training.Linear(12, 2, rng=2))
        opt = training.optim.Adam(net.parameters(), lr=0.05)
        training.fit(net, (x, y), T=3, epochs=epochs, batch_size=16, optimizer=opt,
                     progress=False, checkpoint=ckpt, resume=resume)
        return net.layers[1].k.data[0]

    straight = run(2, None, False)
    run(1, tmp_path / "c.h5", False)
    assert run(2, tmp_path / "c.h5", True) == straight and straight != np.float32(0.9)


@pytest.mark.parametrize("reset", ["hard", "subtract"])
@pytest.mark.parametrize("v_min", [0.0, -0.25])
def test_clamped_lif_equals_the_canonical_step(reset, v_min):
    """ClampedLIF's Numba loop against the NumPy canonical step with the clamp, bit for bit."""
    from snncore.neuron import canonical_step

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((7, 3, 11)) * 0.9).astype(np.float32)
    layer = ClampedLIF(beta=0.75, threshold=0.5, reset=reset, v_reset=0.125, v_min=v_min).eval()
    got = layer.forward(x)
    v = np.zeros((3, 11), np.float32)
    for t in range(7):
        _, s, v = canonical_step(v, x[t], layer.params)
        np.testing.assert_array_equal(got[t], s)
    assert got.any() and not got.all()
