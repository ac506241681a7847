"""IDE (docs/methods.md section 17): FeedbackMLP, its equilibrium, the implicit gradient
against finite differences, the adjoint solvers, validation, fit and export to the simulator."""
import numpy as np
import pytest

import training
from training import FeedbackMLP, IDEConvergenceError, ide
from training.losses import _softmax_ce

NEURONS = ["IF", "LIF"]
NAMES = ["input.weight", "input.bias", "feedback.weight", "readout.weight", "readout.bias"]


def make_net(neuron="IF", sigma_above_one=True, seed=1, dtype=np.float64, **kw):
    """A small FeedbackMLP whose equilibrium has neurons clamped at 0, at 1 and in between;
    the raw feedback weight's spectral norm above 1 (normalised) or below 1 (used as is)."""
    with training.default_dtype(dtype):
        net = FeedbackMLP(6, 8, 3, neuron=neuron, rng=seed, **kw)
    net.input.weight.data *= 8.0
    net.input.bias.data += 0.5
    net.feedback.weight.data *= 3.0 if sigma_above_one else 0.5
    net.feedback.power_iteration(100)
    return net


def inputs(seed=0, T=5, B=4, F=6):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (T, B, F))


def equilibrium_loss(net, x, labels):
    """``CE(W_o a* + b_o)`` with ``a*`` solved to 1e-10 and beyond (float64)."""
    a = net.equilibrium(x, tol=1e-13)[0]
    o = a @ net.readout.weight.data.T + net.readout.bias.data
    return _softmax_ce(o, labels, 0.0)[0]


def numeric_gradient(net, x, labels, p, eps=1e-6):
    num = np.zeros_like(p.data)
    for i in np.ndindex(p.data.shape):
        old = p.data[i]
        p.data[i] = old + eps
        lp = equilibrium_loss(net, x, labels)
        p.data[i] = old - eps
        lm = equilibrium_loss(net, x, labels)
        p.data[i] = old
        num[i] = (lp - lm) / (2 * eps)
    return num


# -- 1. the implicit gradient ----------------------------------------------------------------

@pytest.mark.parametrize("solver", ["broyden", "iterate"])
@pytest.mark.parametrize("sigma_above_one", [True, False])
@pytest.mark.parametrize("neuron", NEURONS)
def test_implicit_gradient_equals_finite_differences(neuron, sigma_above_one, solver):
    """Every parameter's IDE gradient at the fixed point equals central differences of the
    loss at the fixed point (solved to 1e-10), in float64, with the spectral normalisation
    active (sigma > 1) or not (sigma <= 1), and with both clamps of f in use."""
    net = make_net(neuron, sigma_above_one)
    x, labels = inputs(), np.array([0, 1, 2, 1])
    loss, iterations, residual = ide.gradients(net, x, labels, solver=solver, tol=1e-12,
                                               max_iter=100, at="equilibrium")
    assert (net.feedback.sigma() > 1.0) == sigma_above_one
    assert residual < 1e-12 and 1 <= iterations <= 100
    assert loss == pytest.approx(equilibrium_loss(net, x, labels), rel=1e-12)
    xbar = x.mean(0) if neuron == "IF" else np.tensordot(net.rate_weights(5), x, axes=(0, 0))
    z = net.preactivation(net.equilibrium(x)[0], xbar)
    assert np.min(np.abs(z)) > 1e-4 and np.min(np.abs(z - 1)) > 1e-4   # away from the kinks
    assert (z < 0).any() and (z > 1).any() and 0.2 < ((z > 0) & (z < 1)).mean() < 0.9
    assert [n for n, _ in net.named_parameters()] == NAMES
    for name, p in net.named_parameters():
        num = numeric_gradient(net, x, labels, p)
        np.testing.assert_allclose(p.grad, num, rtol=1e-6, atol=1e-9, err_msg=name)
        assert np.abs(num).max() > 1e-4, name


def test_gradient_at_the_simulated_rate_approaches_the_exact_one():
    """The default ``at="rate"`` (the authors' choice) uses the simulated rate: close to the
    exact equilibrium gradient for long simulations (IF, O(1/T))."""
    net = make_net("IF")
    x, labels = inputs(T=1), np.array([0, 1, 2, 1])
    ide.gradients(net, x, labels, at="equilibrium", tol=1e-10, max_iter=100)
    exact = {n: p.grad.copy() for n, p in net.named_parameters()}
    ide.gradients(net, np.broadcast_to(x, (2000,) + x.shape[1:]), labels, tol=1e-10,
                  max_iter=100)
    for name, p in net.named_parameters():
        err = np.abs(p.grad - exact[name]).max() / np.abs(exact[name]).max()
        assert err < 0.02, name


# -- 2. convergence of the rate to the fixed point -----------------------------------------

def rate_error(net, x):
    net.forward(x)
    return np.abs(net.last_rate - net.equilibrium(x, tol=1e-12)[0]).max()


def test_if_rate_converges_as_one_over_T():
    """IF: ``max |a_T - a*|`` falls as O(1/T): slope of log error vs log T about -1."""
    with training.default_dtype(np.float64):
        net = FeedbackMLP(10, 40, 3, neuron="IF", rng=3)
    images = np.random.default_rng(4).uniform(0, 1, (32, 10))
    Ts = np.array([16, 64, 256, 1024])
    errors = [rate_error(net, np.broadcast_to(images, (T, 32, 10))) for T in Ts]
    slope = np.polyfit(np.log(Ts), np.log(errors), 1)[0]
    assert -1.25 < slope < -0.8, (slope, errors)
    assert errors[-1] < 0.01
    assert net.last_residual < 0.01      # forward reports how far a is from f(a)


def test_lif_rate_stays_within_about_one_minus_lam():
    """LIF: the map is approximate; the rate comes within about ``1 - lam`` of it."""
    with training.default_dtype(np.float64):
        net = FeedbackMLP(10, 40, 3, neuron="LIF", lam=0.95, rng=3)
    images = np.random.default_rng(4).uniform(0, 1, (32, 10))
    err = rate_error(net, np.broadcast_to(images, (300, 32, 10)))
    assert 0.005 < err < 2 * (1 - 0.95)


# -- 3. the adjoint solve ---------------------------------------------------------------------

def linear_system(seed=5, B=3, H=7, norm=0.6):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(B, H, H))
    M *= norm / np.linalg.norm(M, 2, axis=(1, 2))[:, None, None]
    rhs = rng.normal(size=(B, H))
    return (lambda g: np.einsum("bij,bj->bi", M, g)), M, rhs


@pytest.mark.parametrize("solver", ["broyden", "iterate"])
def test_solver_solves_the_adjoint_and_reports_residual_and_iterations(solver):
    JT, M, rhs = linear_system()
    g, iterations, residual = ide.solve_adjoint(JT, rhs, solver=solver, tol=1e-10, max_iter=100)
    exact = np.linalg.solve(np.eye(7)[None] - M, rhs[..., None])[..., 0]
    np.testing.assert_allclose(g, exact, rtol=1e-8, atol=1e-9)
    own = np.linalg.norm(JT(g) + rhs - g) / np.linalg.norm(rhs)
    assert residual == pytest.approx(own, rel=1e-6) and residual < 1e-10
    assert 1 <= iterations < 100
    assert ide.solve_adjoint(JT, np.zeros_like(rhs), solver=solver) == (pytest.approx(0), 0, 0.0)


def test_broyden_with_solved_and_tiny_samples():
    """Samples whose right-hand side is zero or tiny next to the others stay finite and
    solved.  (Broyden skips rank-one terms with a relatively tiny denominator; without that,
    ``test_conv_fit_trains`` stalled at a residual of 1.08e-6 after 50 iterations.)"""
    JT, M, rhs = linear_system(B=4, H=30, norm=0.5)
    rhs[1] = 0.0
    rhs[2] *= 1e-200
    with np.errstate(over="raise", invalid="raise"):
        g, iterations, residual = ide.solve_adjoint(JT, rhs, solver="broyden", tol=1e-10,
                                                    max_iter=60)
    exact = np.linalg.solve(np.eye(30)[None] - M, rhs[..., None])[..., 0]
    np.testing.assert_allclose(g[[0, 3]], exact[[0, 3]], rtol=1e-7)
    # the tolerance is relative to the whole batch: a tiny sample is solved less finely
    np.testing.assert_allclose(g[2], exact[2], rtol=1e-4, atol=0)
    assert residual < 1e-10 and np.all(g[1] == 0)


def test_broyden_needs_fewer_iterations_than_plain_iteration():
    JT, _, rhs = linear_system(norm=0.9)
    its = {s: ide.solve_adjoint(JT, rhs, solver=s, tol=1e-8, max_iter=400)[1]
           for s in ("broyden", "iterate")}
    assert its["broyden"] < its["iterate"]


@pytest.mark.parametrize("solver", ["broyden", "iterate"])
def test_non_convergence_raises_or_warns(solver):
    net = make_net("IF")
    x, labels = inputs(), np.array([0, 1, 2, 1])
    assert issubclass(IDEConvergenceError, RuntimeError)
    with pytest.raises(IDEConvergenceError, match=rf"\({solver}\) did not converge: relative "
                                                  r"residual .* after 2 iterations"):
        ide.gradients(net, x, labels, solver=solver, tol=1e-14, max_iter=2)
    with pytest.warns(ide.IDEConvergenceWarning, match="did not converge"):
        _, iterations, residual = ide.gradients(net, x, labels, solver=solver, tol=1e-14,
                                                max_iter=2, on_failure="warn")
    assert iterations == 2 and residual > 1e-14
    rhs = linear_system()[2]                 # J^T = 1.5 I: iteration diverges, Broyden solves
    if solver == "iterate":
        with pytest.raises(IDEConvergenceError):
            ide.solve_adjoint(lambda g: 1.5 * g, rhs, solver=solver, max_iter=50)
    else:
        g = ide.solve_adjoint(lambda g: 1.5 * g, rhs, solver=solver, tol=1e-10, max_iter=50)[0]
        np.testing.assert_allclose(g, -2 * rhs)
    loss, iterations, residual = ide.gradients(net, x, labels, solver=solver, tol=1e-6)
    assert residual < 1e-6 and net.last_adjoint == (iterations, residual)


def test_forward_fixed_point_reports_and_raises():
    net = make_net("IF")
    x = inputs()
    a, iterations, residual = net.equilibrium(x, tol=1e-10)
    assert residual < 1e-10 and 1 < iterations < 100
    np.testing.assert_allclose(a, net.equilibrium_map(a, x.mean(0)), atol=1e-10)
    with pytest.raises(IDEConvergenceError, match="forward fixed point did not converge: "
                                                  r"residual .* after 2 iterations"):
        net.equilibrium(x, tol=1e-14, max_iter=2)


def test_fit_stops_on_non_convergence_and_writes_nothing(tmp_path):
    net = make_net("IF", dtype=np.float32)
    images = np.random.default_rng(0).uniform(0, 1, (8, 6)).astype(np.float32)
    opt = training.optim.SGD(net.parameters(), lr=0.1)
    before = {n: p.data.copy() for n, p in net.named_parameters()}
    ckpt = tmp_path / "run.h5"
    with pytest.raises(IDEConvergenceError, match="did not converge"):
        training.fit(net, (images, np.arange(8) % 3), T=4, epochs=1, batch_size=4,
                     optimizer=opt, method="ide", ide_tol=1e-14, ide_max_iter=1, progress=False,
                     checkpoint=ckpt)
    assert not ckpt.exists() and list(tmp_path.iterdir()) == []
    for n, p in net.named_parameters():      # the failing batch did not step the optimiser
        np.testing.assert_array_equal(p.data, before[n], err_msg=n)


# -- 4. validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(theta=0.0), "theta must be a finite number > 0"),
    (dict(theta=-1.0), "theta must be a finite number > 0"),
    (dict(theta=float("nan")), "theta must be a finite number > 0"),
    (dict(lam=0.0), r"lam must lie in \(0, 1\]"),
    (dict(lam=1.5), r"lam must lie in \(0, 1\]"),
    (dict(lam=-0.5), r"lam must lie in \(0, 1\]"),
    (dict(in_features=0), "in_features must be an integer >= 1"),
    (dict(hidden=0), "hidden must be an integer >= 1"),
    (dict(out_features=0), "out_features must be an integer >= 1"),
    (dict(hidden=2.5), "hidden must be an integer >= 1"),
    (dict(neuron="ALIF"), "neuron must be 'IF' or 'LIF'"),
])
def test_bad_settings_raise_naming_the_problem(kw, match):
    args = dict(in_features=4, hidden=5, out_features=2)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        FeedbackMLP(**args)


@pytest.mark.parametrize("shape", [(3, 4), (3, 2, 5), (3, 2, 2, 2), (0, 2, 4), (3, 0, 4)])
def test_bad_x_shape_raises(shape):
    net = FeedbackMLP(4, 5, 2)
    match = r"expected x \[T, B, 4\] with T, B >= 1, got shape"
    with pytest.raises(ValueError, match=match):
        net.forward(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=match):
        ide.gradients(net, np.zeros(shape, np.float32), np.zeros(2, int))


@pytest.mark.parametrize("kw, match", [
    (dict(solver="newton"), "solver must be one of"), (dict(tol=0.0), "tol must be"),
    (dict(max_iter=0), "max_iter must be an integer >= 1"), (dict(at="end"), "at must be one of"),
    (dict(on_failure="ignore"), "on_failure must be"),
])
def test_bad_solver_options_raise(kw, match):
    net = FeedbackMLP(4, 5, 2)
    with pytest.raises(ValueError, match=match):
        ide.gradients(net, np.zeros((2, 3, 4), np.float32), np.zeros(3, int), **kw)


def test_bad_labels_and_fit_options_raise():
    net = FeedbackMLP(4, 5, 2)
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"labels must be \[B\] = \[3\] integers in \[0, 2\)"):
        ide.gradients(net, x, np.array([0, 1, 2]))
    data = (np.zeros((6, 4), np.float32), np.zeros(6, int))
    opt = training.optim.SGD(net.parameters(), lr=0.1)
    seq = training.Sequential(training.Linear(4, 2))
    with pytest.raises(ValueError, match="method='ide' trains a training.FeedbackMLP"):
        training.fit(seq, data, T=2, epochs=1, batch_size=3, optimizer=opt, method="ide")
    with pytest.raises(ValueError, match="leave decoder='mean', loss='rate_ce'"):
        training.fit(net, data, T=2, epochs=1, batch_size=3, optimizer=opt, method="ide",
                     loss="per_step_ce")
    with pytest.raises(ValueError, match="solver must be one of"):
        training.fit(net, data, T=2, epochs=1, batch_size=3, optimizer=opt, method="ide",
                     ide_solver="newton")
    for method in ("bptt", "ottt_a"):
        with pytest.raises(ValueError, match="a FeedbackMLP trains with method='ide'"):
            training.fit(net, data, T=2, epochs=1, batch_size=3, optimizer=opt, method=method)


# -- forward, spectral normalisation, training ----------------------------------------------

def test_forward_by_hand_and_lif_decoding():
    """The spikes follow u_t = beta v_(t-1) + W s_(t-1) + F x_t + b with subtract reset, and
    the readout decoded with ``time_weights`` is ``W_o a + b_o``."""
    for neuron in NEURONS:
        net = make_net(neuron, lam=0.75)
        x = inputs(T=7)
        y = net.forward(x)
        W, F, b = net.feedback.matrix(), net.input.weight.data, net.input.bias.data
        beta = 1.0 if neuron == "IF" else 0.75
        v, s, a = np.zeros((4, 8)), np.zeros((4, 8)), np.zeros((4, 8))
        w = np.full(7, 1 / 7) if neuron == "IF" else \
            0.75 ** np.arange(6, -1, -1) / sum(0.75 ** np.arange(7))
        for t in range(7):
            u = beta * v + s @ W.T + x[t] @ F.T + b
            s = (u >= 2.0).astype(float)
            v = u - 2.0 * s
            a += w[t] * s
        np.testing.assert_allclose(net.last_rate, a, atol=1e-12)
        o = a @ net.readout.weight.data.T + net.readout.bias.data
        np.testing.assert_allclose(training.losses.decode(y, net.time_weights), o, atol=1e-12)


def test_training_keeps_the_feedback_contractive_and_learns():
    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 1, (3, 20))
    labels = rng.integers(0, 3, 400)
    images = np.clip(centers[labels] + rng.normal(0, 0.15, (400, 20)), 0, 1).astype(np.float32)
    for neuron in NEURONS:
        net = FeedbackMLP(20, 32, 3, neuron=neuron, rng=1)
        opt = training.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
        h = training.fit(net, (images[:300], labels[:300]), T=6, epochs=4, batch_size=50,
                         optimizer=opt, method="ide", test=(images[300:], labels[300:]),
                         progress=False)
        assert h.train_loss[-1] < 0.5 * h.train_loss[0] and h.test_acc[-1] > 0.9
        # one power-iteration step per batch: the estimate lags the last update slightly
        assert np.linalg.norm(net.feedback.matrix(), 2) <= 1.02
        assert np.linalg.norm(net.feedback.weight.data, 2) > 1.0      # normalisation used


# -- 5. export and the simulator --------------------------------------------------------------

def dyadic_net(neuron, dtype, rng):
    with training.default_dtype(dtype):
        net = FeedbackMLP(12, 16, 4, neuron=neuron, lam=0.75, rng=rng).eval()
    net.input.weight.data[...] = rng.integers(-12, 17, (16, 12)) / 16
    net.input.bias.data[...] = rng.integers(-4, 5, 16) / 16
    net.feedback.weight.data[...] = rng.integers(-3, 4, (16, 16)) / 32
    net.feedback.power_iteration(100)
    net.readout.weight.data[...] = rng.integers(-8, 9, (4, 16)) / 16
    net.readout.bias.data[...] = rng.integers(-4, 5, 4) / 16
    assert net.feedback.sigma() <= 1.0      # W = W_raw: dyadic
    return net


@pytest.mark.parametrize("encoding", ["direct", "rate"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("neuron", NEURONS)
def test_export_simulator_gives_dense_spikes_exactly(neuron, dtype, encoding):
    import dataclasses

    import eventsim
    rng = np.random.default_rng(21)
    net = dyadic_net(neuron, dtype, rng)
    T, B = 10, 48
    images = (rng.integers(0, 9, (B, 12)) / 8).astype(dtype)
    if encoding == "direct":
        x = training.encoding.direct(images, T, dtype=dtype)
    else:
        x = training.encoding.rate(images, T, rng=np.random.default_rng(2), dtype=dtype)
    spikes = net.simulate(x)
    y = net.forward(x)
    model = training.to_model(net, input_shape=(12,), T=T, encoding=encoding, dtype=dtype)
    assert [l.kind for l in model.layers] == ["dense", "spiking", "dense", "readout"]
    assert [(c.source, c.target, c.delay) for c in model.connections] == [(1, 1, 1)]
    np.testing.assert_array_equal(model.connections[0].projection.weight,
                                  net.feedback.weight.data)
    assert model.layers[1].beta == (1.0 if neuron == "IF" else 0.75)
    assert model.layers[1].reset == "subtract" and model.layers[1].theta == 2.0
    assert 0.05 < spikes.mean() < 0.9
    for schedule in ("auto", "time"):
        rec = eventsim.Simulator(model, n_threads=1, schedule=schedule).run(x)
        np.testing.assert_array_equal(rec.spikes[1].to_dense(T, B), spikes)
        np.testing.assert_array_equal(rec.readout, y)
        assert rec.synaptic_events["connections[0]"] > 0
    tw = model.layers[-1].time_weights
    o = net.last_rate @ net.readout.weight.data.T.astype(np.float64) + net.readout.bias.data
    np.testing.assert_allclose(training.losses.decode(rec.readout.astype(np.float64), tw), o,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(training.to_network(model).forward(x), y)   # RecurrentLIF
    bare = dataclasses.replace(model, connections=[])            # the feedback matters
    rec = eventsim.Simulator(bare, n_threads=1).run(x)
    assert not np.array_equal(rec.spikes[1].to_dense(T, B), spikes)


def test_export_writes_the_normalised_feedback_and_a_file(tmp_path):
    import eventsim
    net = make_net("LIF", dtype=np.float32)
    assert net.feedback.sigma() > 1.0
    model = training.to_model(net, input_shape=(6,), T=5)
    np.testing.assert_allclose(model.connections[0].projection.weight,
                               net.feedback.weight.data / net.feedback.sigma(), rtol=1e-6)
    path = training.export(net, tmp_path / "f.h5", input_shape=(6,), T=5)
    x = inputs(T=5).astype(np.float32)
    rec = eventsim.Simulator(eventsim.load(path), n_threads=1).run(x)
    assert np.mean(rec.spikes[1].to_dense(5, 4) == net.simulate(x)) > 0.99
    with pytest.raises(ValueError, match=r"takes input_shape \(6,\)"):
        training.to_model(net, input_shape=(1, 6), T=5)


# -- FeedbackConv -----------------------------------------------------------------------------

def make_conv_net(neuron="IF", sigma_above_one=True, dtype=np.float64, **kw):
    with training.default_dtype(dtype):
        net = training.FeedbackConv(2, (2, 2), (4, 4), 3, kernel_size=3, neuron=neuron, rng=1,
                                    **kw)
    for conv in net.convs:
        conv.weight.data *= 3.0
    net.feedback.weight.data *= 3.0 if sigma_above_one else 0.3
    net.feedback.power_iteration(100)
    return net


@pytest.mark.parametrize("sigma_above_one", [True, False])
@pytest.mark.parametrize("neuron", NEURONS)
def test_conv_implicit_gradient_equals_finite_differences(neuron, sigma_above_one):
    """FeedbackConv (two conv layers, feedback from the second to the first): every
    parameter's IDE gradient equals central differences of ``L(a*)`` (float64)."""
    net = make_conv_net(neuron, sigma_above_one)
    x = np.random.default_rng(0).uniform(0, 1, (4, 3, 2, 4, 4))
    labels = np.array([0, 1, 2])
    _, iterations, residual = ide.gradients(net, x, labels, tol=1e-12, max_iter=100,
                                            at="equilibrium")
    assert (net.feedback.sigma() > 1.0) == sigma_above_one and residual < 1e-12
    names = [n for n, _ in net.named_parameters()]
    assert names == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                     "feedback.weight", "readout.weight", "readout.bias"]
    xbar = np.tensordot(net.rate_weights(4), x, axes=(0, 0))
    zs, _ = net._chain(net.equilibrium(x)[0], xbar)
    for z in zs:
        assert (z < 0).any() and ((z > 0) & (z < 1)).any()
        assert np.min(np.abs(z)) > 1e-5 and np.min(np.abs(z - 1)) > 1e-5
    for name, p in net.named_parameters():
        num = numeric_gradient(net, x, labels, p)
        np.testing.assert_allclose(p.grad, num, rtol=1e-6, atol=1e-9, err_msg=name)


def test_conv_if_rate_converges_as_one_over_T():
    with training.default_dtype(np.float64):
        net = training.FeedbackConv(1, (3, 2), (4, 4), 2, rng=2)
    for conv in net.convs:
        conv.weight.data *= 6.0
        conv.bias.data += 0.3
    images = np.random.default_rng(1).uniform(0, 1, (6, 1, 4, 4))
    Ts = np.array([16, 64, 256, 1024])
    errors = [rate_error(net, np.broadcast_to(images, (T,) + images.shape)) for T in Ts]
    slope = np.polyfit(np.log(Ts), np.log(errors), 1)[0]
    assert -1.25 < slope < -0.8, (slope, errors)


@pytest.mark.parametrize("kw, match", [
    (dict(channels=()), "channels must name at least one conv layer"),
    (dict(channels=(3, 0)), "channels must be an integer >= 1"),
    (dict(input_size=(5,)), r"input_size must be \(H, W\)"),
    (dict(input_size=(5, 0)), "input_size must be an integer >= 1"),
    (dict(kernel_size=2), "kernel_size must be odd"),
    (dict(feedback_kernel_size=4), "feedback_kernel_size must be odd"),
    (dict(in_channels=0), "in_channels must be an integer >= 1"),
    (dict(out_features=0), "out_features must be an integer >= 1"),
    (dict(theta=0.0), "theta must be a finite number > 0"),
    (dict(lam=1.01), r"lam must lie in \(0, 1\]"),
])
def test_conv_bad_settings_raise_naming_the_problem(kw, match):
    args = dict(in_channels=2, channels=(3,), input_size=(5, 5), out_features=2)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        training.FeedbackConv(**args)
    net = training.FeedbackConv(2, (3,), (5, 5), 2)
    with pytest.raises(ValueError, match=r"expected x \[T, B, 2, 5, 5\] with T, B >= 1"):
        net.forward(np.zeros((3, 2, 2, 5, 4), np.float32))


def dyadic_conv_net(neuron, dtype, rng):
    with training.default_dtype(dtype):
        net = training.FeedbackConv(2, (4, 3), (6, 6), 3, neuron=neuron, lam=0.75, rng=1).eval()
    for conv in net.convs:
        conv.weight.data[...] = rng.integers(-8, 9, conv.weight.shape) / 8
        conv.bias.data[...] = rng.integers(-4, 5, conv.bias.shape) / 16
    net.feedback.weight.data[...] = rng.integers(-2, 3, net.feedback.weight.shape) / 32
    net.feedback.power_iteration(100)
    net.readout.weight.data[...] = rng.integers(-8, 9, net.readout.weight.shape) / 16
    assert net.feedback.sigma() <= 1.0
    return net


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("neuron", NEURONS)
def test_conv_export_simulator_gives_dense_spikes_exactly(neuron, dtype):
    import dataclasses

    import eventsim
    rng = np.random.default_rng(3)
    net = dyadic_conv_net(neuron, dtype, rng)
    T, B = 12, 16
    x = training.encoding.direct((rng.integers(0, 9, (B, 2, 6, 6)) / 8).astype(dtype), T,
                                 dtype=dtype)
    spikes = net.simulate(x, all_layers=True)
    y = net.forward(x)
    model = training.to_model(net, input_shape=(2, 6, 6), T=T, dtype=dtype)
    assert [l.kind for l in model.layers] == ["conv2d", "spiking", "conv2d", "spiking",
                                              "flatten", "dense", "readout"]
    c = model.connections[0]
    assert (c.source, c.target, c.delay, c.projection.kind) == (3, 1, 1, "sparse")
    rec = eventsim.Simulator(model, n_threads=1).run(x)
    for pos, s in zip((1, 3), spikes):
        np.testing.assert_array_equal(rec.spikes[pos].to_dense(T, B).reshape(s.shape), s)
        assert 0.02 < s.mean() < 0.9
    np.testing.assert_array_equal(rec.readout, y)
    assert rec.synaptic_events["connections[0]"] > 0
    rec = eventsim.Simulator(dataclasses.replace(model, connections=[]), n_threads=1).run(x)
    assert not np.array_equal(rec.spikes[1].to_dense(T, B).reshape(spikes[0].shape), spikes[0])


def test_conv_fit_trains():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    images = rng.uniform(0, 0.3, (64, 1, 4, 4))
    images[labels == 1, :, :2] += 0.6                 # class 1: bright top half
    net = training.FeedbackConv(1, (4,), (4, 4), 2, rng=1)
    for conv in net.convs:
        conv.weight.data *= 3.0
    opt = training.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    h = training.fit(net, (images.astype(np.float32), labels), T=4, epochs=3, batch_size=16,
                     optimizer=opt, method="ide", progress=False)
    assert h.train_loss[-1] < h.train_loss[0] and h.train_acc[-1] > 0.9


def test_fit_checkpoint_resume_continues_identically(tmp_path):
    """The feedback weight's power-iteration vectors are buffers: a run resumed from its
    checkpoint ends where an uninterrupted run ends, and another method is refused."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    images = rng.uniform(0, 1, (60, 8)).astype(np.float32)

    def run(epochs, resume, net=None):
        net = net or FeedbackMLP(8, 10, 3, neuron="LIF", rng=1)
        opt = training.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
        training.fit(net, (images, labels), T=4, epochs=epochs, batch_size=20, optimizer=opt,
                     method="ide", checkpoint=tmp_path / ("a.h5" if resume else "b.h5"),
                     resume=resume, progress=False)
        return net

    straight = run(2, False)
    run(1, True)
    resumed = run(2, True)
    for (name, p), (_, q) in zip(straight.named_parameters(), resumed.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    np.testing.assert_array_equal(straight.feedback.u, resumed.feedback.u)
    with pytest.raises(ValueError, match="written by method='ide'"):
        net = training.Sequential(training.Linear(8, 3))
        training.fit(net, (images, labels), T=4, epochs=3, batch_size=20,
                     optimizer=training.optim.SGD(net.parameters(), lr=0.1),
                     checkpoint=tmp_path / "a.h5", resume=True, progress=False)


def test_evaluate_decodes_the_lif_rate_for_its_own_T():
    """``evaluate`` weights a LIF network's readout with ``T w_t`` of the T it runs, even on a
    fresh network or after a forward pass with another T: its loss is CE(W_o a + b_o)."""
    net = make_net("LIF", dtype=np.float64, lam=0.5)
    images, labels = np.random.default_rng(0).uniform(0, 1, (12, 6)), np.arange(12) % 3
    expected = []
    for T in (3, 9):
        net.forward(np.broadcast_to(images, (T,) + images.shape))
        o = net.last_rate @ net.readout.weight.data.T + net.readout.bias.data
        expected.append(_softmax_ce(o, labels, 0.0)[0])
    net.forward(np.broadcast_to(images, (5,) + images.shape))     # another T last
    for T, want in zip((3, 9), expected):
        loss, _ = training.evaluate(net, images, labels, T=T)
        assert loss == pytest.approx(want, rel=1e-12)
    assert expected[0] != pytest.approx(expected[1])
