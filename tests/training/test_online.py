"""Online training (training/online.py) against independent float64 references
(tests/reference/naive_online.py) and the relations of docs/methods.md section 15."""
import tracemalloc

import numpy as np
import pytest

import training
from training import online
from tests.reference import naive_online as ref


@pytest.fixture
def float64():
    with training.default_dtype(np.float64):
        yield


def neuron(kind, theta=1.0):
    if kind == "lif":
        return training.LIF(tau=2.0, threshold=theta, reset="subtract", surrogate="sigmoid")
    if kind == "lif_beta":
        return training.LIF(beta=0.5, threshold=theta, reset="subtract", surrogate="atan")
    return training.IF(threshold=theta, reset="subtract", surrogate="sigmoid")


def mlp(rng, kind="lif", ws=False, theta=1.0, scale=1.0):
    Lin = training.WSLinear if ws else training.Linear
    layers = [Lin(12, 16, rng=rng), neuron(kind, theta)]
    if scale != 1.0:
        layers.append(training.Scale(scale))
    layers += [Lin(16, 10, rng=rng), neuron(kind, theta), Lin(10, 4, rng=rng)]
    net = training.Sequential(*layers)
    _spread(net, rng, ws)
    return net


def convnet(rng, kind="lif", ws=False, theta=1.0):
    Conv = training.WSConv2d if ws else training.Conv2d
    Lin = training.WSLinear if ws else training.Linear
    net = training.Sequential(
        Conv(1, 3, 3, padding=1, rng=rng), neuron(kind, theta), training.Scale(1.5),
        training.AvgPool2d(2), Conv(3, 4, 3, padding=1, rng=rng), neuron(kind, theta),
        training.Flatten(), Lin(4 * 3 * 3, 4, rng=rng))
    _spread(net, rng, ws)
    return net


def _spread(net, rng, ws):
    """Larger weights so that every layer fires sometimes (and not always)."""
    for layer in net.layers:
        if isinstance(layer, (training.Linear, training.Conv2d)):
            if ws:
                layer.gain.data[...] = rng.uniform(3.0, 6.0, layer.gain.shape)
            else:
                layer.weight.data *= 3.0 if isinstance(layer, training.Linear) else 8.0
            layer.bias.data[...] = rng.uniform(-0.2, 0.4, layer.bias.shape)


def inputs(rng, net, T=4, B=3, static=True):
    first = net.layers[0]
    shape = (B, 12) if isinstance(first, training.Linear) else (B, 1, 6, 6)
    if static:
        return training.encoding.direct(rng.random(shape), T)
    return rng.random((T,) + shape)


def grads_of(net):
    return {name: p.grad.copy() for name, p in net.named_parameters()}


def ref_grads_as_params(net, ref_grads):
    """The reference's ``{layer: (dW_hat, db)}`` as ``{param name: grad}``; for WS layers
    dW and dgain follow from dW_hat by the chain rule through the standardisation, with
    its Jacobian taken by central differences of a naive standardisation."""
    out = {}
    for l, (dW, db) in ref_grads.items():
        layer = net.layers[l]
        if db is not None:
            out[f"{l}.bias"] = db
        if isinstance(layer, training.ws._Standardised):
            W = layer.weight.data.astype(np.float64)
            gain = layer.gain.data.astype(np.float64)
            out[f"{l}.weight"] = _fd_chain(lambda W_: _naive_ws(W_, gain), W, dW)
            out[f"{l}.gain"] = _fd_chain(lambda g_: _naive_ws(W, g_), gain, dW)
        else:
            out[f"{l}.weight"] = dW
    return out


def _naive_ws(W, gain, eps=1e-4):
    W2 = W.reshape(W.shape[0], -1)
    n = W2.shape[1]
    out = [(gain[o] * (W2[o] - W2[o].mean()) / np.sqrt(np.var(W2[o], ddof=1) * n + eps))
           for o in range(W.shape[0])]
    return np.array(out).reshape(W.shape)


def _fd_chain(f, p, G, eps=1e-6):
    grad = np.zeros_like(p)
    flat = grad.reshape(-1)
    for k in range(p.size):
        q = p.copy().reshape(-1)
        q[k] += eps
        fp = f(q.reshape(p.shape))
        q[k] -= 2 * eps
        fm = f(q.reshape(p.shape))
        flat[k] = np.sum(G * (fp - fm)) / (2 * eps)
    return grad


def assert_grads_equal(got, want, ws=False, what=""):
    tol = dict(rtol=1e-7, atol=1e-9) if ws else dict(rtol=1e-10, atol=1e-13)
    assert set(got) == set(want), (sorted(got), sorted(want))
    for name in want:
        np.testing.assert_allclose(got[name], want[name], err_msg=f"{what} {name}", **tol)
    assert any(np.abs(w).max() > 1e-6 for w in want.values()), "vacuous: all gradients zero"


def fired_somewhere(net, x):
    """Every spiking layer fires at some step and is silent at some other (else the check
    would not exercise the surrogate)."""
    a = x
    for layer in net.layers:
        a = layer.forward(a)
        if isinstance(layer, training.LIF):
            assert 0.02 < a.mean() < 0.98, (layer, a.mean())


class Recorder:
    """An 'optimizer' that records each step's gradients and does not move the weights:
    OTTT_O's / SAF-E's per-step gradients at fixed weights."""

    def __init__(self, net):
        self.net, self.steps = net, []

    def step(self):
        self.steps.append(grads_of(self.net))


CASES = [("mlp", "lif", False), ("mlp", "if", False), ("mlp", "lif", True), ("mlp", "if", True),
         ("mlp", "lif_beta", False), ("conv", "lif", False), ("conv", "if", True),
         ("conv", "lif", True)]


def build(arch, kind, ws, rng, theta=1.0):
    return (mlp if arch == "mlp" else convnet)(rng, kind=kind, ws=ws, theta=theta)


# -- OTTT ------------------------------------------------------------------------------------
@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("arch,kind,ws", CASES)
def test_ottt_a_equals_detached_bptt(float64, arch, kind, ws, static):
    """OTTT_A = sum_t of the detached-BPTT gradient of L_t (float64 round-off; WS layers to
    the precision of a finite-difference Jacobian of the standardisation)."""
    rng = np.random.default_rng(0)
    net = build(arch, kind, ws, rng)
    x = inputs(rng, net, static=static)
    labels = rng.integers(0, 4, x.shape[1])
    c = 0.3
    fired_somewhere(net, x)
    loss = online.gradients(net, x, labels, method="ottt_a", c=c)
    spec = ref.spec_of(net)
    want, want_loss = {}, 0.0
    for t in range(x.shape[0]):
        g, lt = ref.detached_bptt_grads(spec, x, labels, t, c=c)
        want_loss += lt
        for k, v in ref_grads_as_params(net, g).items():
            want[k] = want.get(k, 0) + v
    assert loss == pytest.approx(want_loss, rel=1e-12)
    assert_grads_equal(grads_of(net), want, ws, "OTTT_A")


@pytest.mark.parametrize("arch,kind,ws", [CASES[0], CASES[1], CASES[5], CASES[6]])
def test_ottt_o_every_step_equals_detached_bptt(float64, arch, kind, ws):
    """Each OTTT_O step's gradients (at fixed weights) equal the detached-BPTT gradient of
    that step's loss alone."""
    rng = np.random.default_rng(1)
    net = build(arch, kind, ws, rng)
    x = inputs(rng, net, static=False)
    labels = rng.integers(0, 4, x.shape[1])
    rec = Recorder(net)
    online.train_batch(net, x, labels, rec, method="ottt_o")
    assert len(rec.steps) == x.shape[0]
    spec = ref.spec_of(net)
    for t, got in enumerate(rec.steps):
        want = ref_grads_as_params(net, ref.detached_bptt_grads(spec, x, labels, t)[0])
        assert_grads_equal(got, want, ws, f"OTTT_O step {t}")


def test_ottt_with_different_decays_per_layer_equals_detached_bptt(float64):
    """Layers with different beta (LIF 0.5, then IF): each weight layer's trace decays with
    the beta of the neurons it feeds, the readout's with the last spiking layer's, which is
    what the detached network's leak chains give."""
    rng = np.random.default_rng(17)
    net = training.Sequential(
        training.Linear(12, 16, rng=rng), neuron("lif"), training.Linear(16, 10, rng=rng),
        neuron("if"), training.Linear(10, 4, rng=rng))
    _spread(net, rng, False)
    x = inputs(rng, net, static=False, T=4)
    labels = rng.integers(0, 4, 3)
    fired_somewhere(net, x)
    online.gradients(net, x, labels, method="ottt_a")
    spec = ref.spec_of(net)
    want = {}
    for t in range(4):
        for k, v in ref_grads_as_params(net, ref.detached_bptt_grads(spec, x, labels, t)[0]).items():
            want[k] = want.get(k, 0) + v
    assert_grads_equal(grads_of(net), want, False, "mixed decays")


def test_ottt_readout_gradient_uses_the_trace_not_the_spikes(float64):
    """Section 15's readout rule checked directly: dW_o = delta_o^T ahat_t with
    ahat_t = sum_tau lam^(t - tau) s_tau (LIF, lam = 0.5), not delta_o^T s_t."""
    rng = np.random.default_rng(2)
    net = mlp(rng, kind="lif_beta")
    x = inputs(rng, net, static=False, T=4)
    labels = rng.integers(0, 4, 3)
    rec = Recorder(net)
    online.train_batch(net, x, labels, rec, method="ottt_o")
    _, _, outs = ref.forward(ref.spec_of(net), x)
    assert outs[3][2].sum() > 0
    for t in range(4):
        ahat = sum(0.5 ** (t - tau) * outs[3][tau] for tau in range(t + 1))
        _, G = ref.loss_and_grad(outs[4][t], labels, 0.0)
        np.testing.assert_allclose(rec.steps[t]["4.bias"], G.sum(0) / 4, rtol=1e-12)
        np.testing.assert_allclose(rec.steps[t]["4.weight"], (G / 4).T @ ahat, rtol=1e-12,
                                   atol=1e-15)
    assert not np.allclose(rec.steps[3]["4.weight"], (G / 4).T @ outs[3][3])


@pytest.mark.parametrize("method", ["ottt_a", "saf_e"])
def test_online_with_training_dropout_and_maxpool_equals_reference(float64, method):
    """A training-mode Dropout keeps one mask for the whole sequence (fixed here so the
    reference can use it); OTTT also backpropagates through MaxPool2d at each step.  SAF-E
    with "ottt" rules is compared with the same OTTT reference (section 15)."""
    rng = np.random.default_rng(15)
    pool = training.MaxPool2d(2) if method == "ottt_a" else training.AvgPool2d(2)
    drop = training.Dropout(0.4, rng=3)
    net = training.Sequential(
        training.Conv2d(1, 3, 3, padding=1, rng=rng), neuron("if"), pool, drop,
        training.Conv2d(3, 4, 3, padding=1, rng=rng), neuron("if"), training.Flatten(),
        training.Linear(4 * 3 * 3, 4, rng=rng))
    _spread(net, rng, False)
    x = inputs(rng, net, static=False, T=3)
    labels = rng.integers(0, 4, 3)
    drop.mask = drop._draw_mask((3, 3, 3, 3), np.dtype(np.float64))
    drop.fixed_mask = True
    assert 0 < (drop.mask == 0).mean() < 1
    online.gradients(net, x, labels, method=method, saf_rules="ottt")
    spec = ref.spec_of(net)
    want = {}
    for t in range(3):
        for k, v in ref_grads_as_params(net, ref.detached_bptt_grads(spec, x, labels, t)[0]).items():
            want[k] = want.get(k, 0) + v
    assert_grads_equal(grads_of(net), want, False, method)


# -- SAF ------------------------------------------------------------------------------------
def dyadic_net(rng, arch, dtype):
    with training.default_dtype(dtype):
        net = build(arch, "lif_beta", False, rng)
    for _, p in net.named_parameters():
        p.data = (rng.integers(-24, 40, p.data.shape) / 32).astype(dtype)
        p.grad = np.zeros_like(p.data)
    return net


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_saf_forward_spikes_equal_lif_network(arch, dtype):
    """lam = 0.5 and dyadic weights/inputs: SAF's recovered spikes s_t = A_t - lam A_{t-1}
    and readout o_t = Ohat_t - lam Ohat_{t-1} equal the LIF network's bit for bit."""
    rng = np.random.default_rng(3)
    net = dyadic_net(rng, arch, dtype)
    T, B = 6, 4
    shape = (B, 12) if arch == "mlp" else (B, 1, 6, 6)
    x = (rng.integers(0, 17, (T,) + shape) / 16).astype(dtype)
    p = online.plan(net, "saf_e")
    run = online._SAF(net, p)
    run.reset(B)
    net.reset_state(B)
    prev = {i: 0 for i in p.neurons}
    Ohat_prev = 0
    dense = {i: training.Sequential(*net.layers[:i + 1]).forward(x) for i in p.neurons}
    y = net.forward(x)
    n_spikes = 0
    for t in range(T):
        Ohat = run.forward_step(x[t])
        np.testing.assert_array_equal(Ohat - dtype(0.5) * Ohat_prev, y[t])
        Ohat_prev = Ohat
        for i in p.neurons:
            s = run.A[i] - dtype(0.5) * prev[i]
            np.testing.assert_array_equal(s, dense[i][t])
            prev[i] = run.A[i]
            n_spikes += s.sum()
    assert n_spikes > 0


@pytest.mark.parametrize("arch,kind,ws", [CASES[0], CASES[1], CASES[2], CASES[5], CASES[6]])
def test_saf_e_with_ottt_rules_equals_ottt_o(float64, arch, kind, ws):
    """At fixed weights, shared lam, subtract reset: SAF-E's per-step gradients with
    saf_rules="ottt" equal OTTT_O's for every parameter (float64 round-off)."""
    rng = np.random.default_rng(4)
    net = build(arch, kind, ws, rng)
    x = inputs(rng, net, static=False)
    labels = rng.integers(0, 4, x.shape[1])
    r_ottt, r_saf = Recorder(net), Recorder(net)
    l1 = online.train_batch(net, x, labels, r_ottt, method="ottt_o", c=0.2)
    l2 = online.train_batch(net, x, labels, r_saf, method="saf_e", c=0.2, saf_rules="ottt")
    assert l1 == pytest.approx(l2, rel=1e-12)
    for t, (a, b) in enumerate(zip(r_ottt.steps, r_saf.steps)):
        assert_grads_equal(b, a, False, f"step {t}")


@pytest.mark.parametrize("kind", ["lif", "if"])
def test_saf_e_natural_rules_carry_c_t_for_layer_1_and_biases(float64, kind):
    """Static input, fixed weights: with saf_rules="natural" the weights of layers >= 2 and
    the readout equal OTTT_O's; layer 1's weight and every bias are c_t times OTTT_O's,
    c_t = (1 - lam^(t+1)) / (1 - lam) (t + 1 for IF)."""
    rng = np.random.default_rng(5)
    net = mlp(rng, kind=kind)
    x = inputs(rng, net, static=True, T=4)
    labels = rng.integers(0, 4, 3)
    r_ottt, r_saf = Recorder(net), Recorder(net)
    online.train_batch(net, x, labels, r_ottt, method="ottt_o")
    online.train_batch(net, x, labels, r_saf, method="saf_e", saf_rules="natural")
    lam = 0.5 if kind == "lif" else 1.0
    for t, (a, b) in enumerate(zip(r_ottt.steps, r_saf.steps)):
        c_t = sum(lam ** k for k in range(t + 1))
        for name in a:
            factor = c_t if (name == "0.weight" or name.endswith("bias")) else 1.0
            np.testing.assert_allclose(b[name], factor * a[name], rtol=1e-10, atol=1e-13,
                                       err_msg=f"step {t} {name}")
    assert np.abs(r_ottt.steps[-1]["0.weight"]).max() > 0


def test_saf_e_and_ottt_o_trajectories_diverge_across_updates(float64):
    """With updates after every step the two methods differ (not a round-off effect): SAF
    re-weights the past input with the new weights.  Their first step is identical."""
    rng = np.random.default_rng(6)
    base = mlp(rng)
    x = inputs(rng, base, static=True, T=5)
    labels = rng.integers(0, 4, 3)
    nets = {}
    for method in ("ottt_o", "saf_e"):
        net = mlp(np.random.default_rng(6))
        opt = training.optim.SGD(net.parameters(), lr=0.5)
        first = online.train_batch(net, x[:1], labels, training.optim.SGD(
            mlp(np.random.default_rng(6)).parameters(), lr=0.0), method=method)
        online.train_batch(net, x, labels, opt, method=method, saf_rules="ottt")
        nets[method] = (net, first)
    assert nets["ottt_o"][1] == pytest.approx(nets["saf_e"][1], rel=1e-14)
    w_o = nets["ottt_o"][0].layers[2].weight.data
    w_s = nets["saf_e"][0].layers[2].weight.data
    assert np.abs(w_o - w_s).max() > 1e-4


def _saf_f_reference(net, x, labels, c):
    spec = ref.spec_of(net)
    lam = spec[1]["beta"]
    _, _, outs = ref.forward(spec, x)
    acts = {l: ref.weighted_rate(outs[l], lam) for l, L in enumerate(spec) if L["kind"] == "lif"}
    a0 = ref.weighted_rate(np.asarray(x), lam)
    return ref.spike_rep_grads(spec, a0, labels, c, acts=acts)


@pytest.mark.parametrize("theta", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("kind,ws", [("lif", False), ("if", False), ("lif", True)])
def test_saf_f_equals_spike_representation_gradient(float64, theta, kind, ws):
    """SAF-F = the gradient of the loss through a^{l+1} = clamp(gain (W a^l + b)/theta, 0, 1)
    at the simulated weighted rates, at every theta (needs dA/dUhat = 1[0<=z<=1]/theta)."""
    rng = np.random.default_rng(7)
    net = mlp(rng, kind=kind, ws=ws, theta=theta, scale=1.5)
    x = inputs(rng, net, static=True, T=6)
    labels = rng.integers(0, 4, 3)
    loss = online.gradients(net, x, labels, method="saf_f", c=0.1)
    g, want_loss = _saf_f_reference(net, x, labels, 0.1)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    assert_grads_equal(grads_of(net), ref_grads_as_params(net, g), ws, f"SAF-F theta={theta}")


def test_spike_representation_reference_matches_finite_differences(float64):
    """The hand-derived closed-form gradient of the reference, at the closed form's own
    activations, against central differences (so the reference itself is right)."""
    rng = np.random.default_rng(8)
    net = mlp(rng, kind="lif", theta=0.7, scale=1.5)
    spec = ref.spec_of(net)
    a0 = rng.random((3, 12))
    labels = np.array([0, 2, 3])
    grads, _ = ref.spike_rep_grads(spec, a0, labels, c=0.2)
    for l, (dW, db) in grads.items():
        for arr, grad in ((spec[l]["W"], dW), (spec[l]["b"], db)):
            num = np.zeros_like(arr)
            for k in range(arr.size):
                old = arr.flat[k]
                arr.flat[k] = old + 1e-6
                fp = ref.spike_rep_loss(spec, a0, labels, 0.2)
                arr.flat[k] = old - 1e-6
                fm = ref.spike_rep_loss(spec, a0, labels, 0.2)
                arr.flat[k] = old
                num.flat[k] = (fp - fm) / 2e-6
            np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)
    assert np.abs(grads[0][0]).max() > 0


# -- memory ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["ottt_a", "saf_e", "saf_f"])
def test_memory_does_not_grow_with_T(float64, method):
    rng = np.random.default_rng(9)
    net = training.Sequential(training.Linear(200, 300, rng=rng), neuron("lif"),
                              training.Linear(300, 300, rng=rng), neuron("lif"),
                              training.Linear(300, 10, rng=rng))
    img = rng.random((16, 200))
    labels = rng.integers(0, 10, 16)
    peaks = []
    for T in (4, 64):
        x = training.encoding.direct(img, T)          # stride-0: the input costs nothing
        online.gradients(net, x, labels, method=method)
        tracemalloc.start()
        online.gradients(net, x, labels, method=method)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    one_step = 16 * 300 * 8
    assert peaks[1] < peaks[0] + 4 * one_step, peaks     # far below 60 more steps of state


# -- errors ------------------------------------------------------------------------------------
def test_errors_say_what_to_use_instead(float64):
    rng = np.random.default_rng(10)
    x = training.encoding.direct(rng.random((2, 12)), 3)
    y = np.array([0, 1])
    lif = lambda **kw: training.LIF(beta=0.5, reset="subtract", **kw)   # noqa: E731

    def net(*mid):
        return training.Sequential(training.Linear(12, 8, rng=1), *mid, training.Linear(8, 4, rng=2))

    cases = [
        (net(training.BatchNorm1d(8), lif()), "ottt_a", "use WSLinear/WSConv2d"),
        (net(training.LIF(beta=0.5)), "ottt_a", "needs reset='subtract'"),
        (net(training.LIF(beta=0.5)), "saf_e", "needs reset='subtract'"),
        (net(training.klif.KLIF()), "ottt_a", "does not support KLIF; use LIF"),
        (net(lif(spikes="ternary")), "ottt_a", "does not support ternary spikes"),
        (net(lif(learn_threshold=True)), "saf_f", "does not support learn_threshold"),
        (net(lif(msg_p=0.5)), "ottt_a", r"does not support MSG masking"),
        (training.Sequential(training.Linear(12, 8, rng=1), lif(), training.Linear(8, 8, rng=3),
                             training.LIF(beta=0.25, reset="subtract"),
                             training.Linear(8, 4, rng=2)),
         "saf_e", "SAF needs the same beta in every layer"),
        (training.Sequential(training.Linear(12, 8, rng=1), lif()), "ottt_a",
         "must end with a Linear readout"),
        (training.Sequential(training.Linear(12, 8, rng=1), training.Linear(8, 4, rng=2)),
         "ottt_a", "no spiking layer"),
    ]
    for n, method, match in cases:
        with pytest.raises(ValueError, match=match):
            online.gradients(n, x, y, method=method)
    good = net(lif())
    with pytest.raises(ValueError, match=r"unknown method 'bptt'; choose one of \['ottt_a'"):
        online.gradients(good, x, y, method="bptt")
    with pytest.raises(ValueError, match=r"train_batch: unknown method 'ottt_a'"):
        online.train_batch(good, x, y, Recorder(good), method="ottt_a")
    with pytest.raises(ValueError, match="saf_rules"):
        online.gradients(good, x, y, method="saf_e", saf_rules="paper")
    with pytest.raises(ValueError, match="T >= 1"):
        online.gradients(good, x[:0], y, method="ottt_a")
    with pytest.raises(ValueError, match=r"c \(the loss's MSE weight\)"):
        online.gradients(good, x, y, method="ottt_a", c=1.5)
    pool_net = training.Sequential(training.Conv2d(1, 2, 3, padding=1, rng=1), lif(),
                                   training.MaxPool2d(2), training.Flatten(),
                                   training.Linear(2 * 2 * 2, 3, rng=2))
    xi = training.encoding.direct(rng.random((2, 1, 4, 4)), 3)
    online.gradients(pool_net, xi, y, method="ottt_a")               # OTTT: fine
    with pytest.raises(ValueError, match="use AvgPool2d"):
        online.gradients(pool_net, xi, y, method="saf_e")


# -- fit ---------------------------------------------------------------------------------------
def _toy_data(rng, n=24):
    x = rng.random((n, 12)).astype(np.float32)
    y = (x[:, :4].argmax(axis=1)).astype(np.int64)
    return x, y


@pytest.mark.parametrize("method", ["ottt_a", "ottt_o", "saf_e", "saf_f"])
def test_fit_runs_online_methods_and_records_them(method, tmp_path):
    """fit(method=...) trains (weights move, finite loss), and the checkpoint records the
    method: resuming with the same one continues bit-identically, another is refused."""
    from training.checkpoint import load_checkpoint

    rng = np.random.default_rng(11)
    data = _toy_data(rng)

    def run(epochs, resume=False, path=tmp_path / "ck.h5", m=method):
        net = mlp(np.random.default_rng(12), ws=True)
        opt = training.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        h = training.fit(net, data, T=3, epochs=epochs, batch_size=8, optimizer=opt,
                         method=m, online_loss_c=0.05, progress=False, checkpoint=path,
                         resume=resume, overwrite=not resume)
        return net, h

    before = mlp(np.random.default_rng(12), ws=True).state_dict()
    net2, h2 = run(2, path=tmp_path / "full.h5")
    assert all(np.isfinite(h2.train_loss))
    assert any(not np.array_equal(before[k], v) for k, v in net2.state_dict().items())
    ck = load_checkpoint(tmp_path / "full.h5")
    assert ck.extra["method"] == method and ck.extra["online_loss_c"] == 0.05
    run(1)
    net_r, h_r = run(2, resume=True)
    for k, v in net2.state_dict().items():
        np.testing.assert_array_equal(net_r.state_dict()[k], v)
    other = "ottt_a" if method != "ottt_a" else "saf_f"
    with pytest.raises(ValueError, match=f"written by method='{method}'"):
        run(3, resume=True, m=other)


def test_fit_bptt_default_unchanged_and_online_errors():
    rng = np.random.default_rng(13)
    data = _toy_data(rng)
    net = mlp(np.random.default_rng(14))
    opt = training.optim.SGD(net.parameters(), lr=0.05)
    kw = dict(T=2, epochs=1, batch_size=8, optimizer=opt, progress=False)
    with pytest.raises(ValueError, match=r"unknown method 'ottt'; choose one of \['bptt'"):
        training.fit(net, data, method="ottt", **kw)
    with pytest.raises(ValueError, match="online_loss_c applies to the online methods"):
        training.fit(net, data, online_loss_c=0.1, **kw)
    with pytest.raises(ValueError, match="use decoder='mean'"):
        training.fit(net, data, method="ottt_a", decoder="two", **kw)
    with pytest.raises(ValueError, match="leave loss='rate_ce'"):
        training.fit(net, data, method="saf_e", label_smoothing=0.1, **kw)
    bn = training.Sequential(training.Linear(12, 8, rng=1), training.BatchNorm1d(8),
                             training.LIF(beta=0.5, reset="subtract"), training.Linear(8, 4, rng=2))
    with pytest.raises(ValueError, match="use WSLinear/WSConv2d"):
        training.fit(bn, data, method="ottt_o", **kw)
    h = training.fit(net, data, **kw)          # BPTT still the default
    assert np.isfinite(h.train_loss[0])


@pytest.mark.parametrize("method", ["ottt_a", "saf_e", "saf_f"])
def test_float32_gradients_close_to_float64(method):
    """The float32 network computes in float32 throughout (no silent promotion) and gives
    the float64 gradients to float32 accuracy."""
    grads = {}
    for dtype in (np.float32, np.float64):
        with training.default_dtype(dtype):
            rng = np.random.default_rng(16)
            net = mlp(rng, kind="if", ws=True)
            x = inputs(rng, net, static=True, T=4).astype(dtype)
            labels = rng.integers(0, 4, 3)
            online.gradients(net, x, labels, method=method, c=0.05)
            grads[dtype] = grads_of(net)
    for name, g64 in grads[np.float64].items():
        assert grads[np.float32][name].dtype == np.float32
        np.testing.assert_allclose(grads[np.float32][name], g64, rtol=2e-3, atol=2e-4,
                                   err_msg=name)
