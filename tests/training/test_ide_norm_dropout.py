"""FeedbackMLP with the authors' BatchNorm on the input drive and variational dropout
(docs/methods.md section 17): the implicit gradient against finite differences of the
equilibrium with the same masks and batch statistics, the masks' behaviour, export with the
BatchNorm folded in, checkpoint resume and bad settings."""
import numpy as np
import pytest

import training
from training import FeedbackMLP, ide

from .test_ide import equilibrium_loss, numeric_gradient

NEURONS = ["IF", "LIF"]


def make_net(neuron, batch_norm=True, dropout=0.3, seed=1):
    with training.default_dtype(np.float64):
        net = FeedbackMLP(6, 8, 3, neuron=neuron, rng=seed, batch_norm=batch_norm,
                          dropout=dropout)
    net.input.weight.data *= 8.0
    net.input.bias.data += 0.5
    if batch_norm:           # gamma, beta so that c spans both clamps of f
        net.input_norm.weight.data[...] = np.linspace(1.5, 3.0, 8)
        net.input_norm.bias.data[...] = np.linspace(0.5, 1.5, 8)
    net.feedback.weight.data *= 3.0
    net.feedback.power_iteration(100)
    return net


@pytest.mark.parametrize("batch_norm, dropout", [(True, 0.3), (True, 0.0), (False, 0.3)])
@pytest.mark.parametrize("neuron", NEURONS)
def test_implicit_gradient_equals_finite_differences(neuron, batch_norm, dropout):
    """Training mode, masks held fixed: every parameter's IDE gradient equals central
    differences of the loss at the fixed point, BatchNorm's batch statistics included
    (the input bias cancels in them: its gradient is zero both ways)."""
    net = make_net(neuron, batch_norm, dropout)
    rng = np.random.default_rng(0)
    x, labels = rng.uniform(0.0, 1.0, (5, 6, 6)), np.array([0, 1, 2, 1, 0, 2])
    net.draw_masks(6)
    net.fixed_mask = True
    if dropout:
        m_x, m_s = net.masks
        assert 0 < (m_x == 0).sum() < m_x.size and 0 < (m_s == 0).sum() < m_s.size
        assert set(np.unique(m_x)) == {0.0, 1.0 / (1.0 - dropout)}
    else:
        assert net.masks is None
    loss, _, residual = ide.gradients(net, x, labels, tol=1e-12, max_iter=100,
                                      at="equilibrium")
    assert residual < 1e-12
    assert loss == pytest.approx(equilibrium_loss(net, x, labels), rel=1e-9)
    xbar = np.tensordot(net.rate_weights(5), x, axes=(0, 0))
    z = net.preactivation(net.equilibrium(x)[0], xbar)
    assert (z < 0).any() and (z > 1).any() and 0.1 < ((z > 0) & (z < 1)).mean() < 0.9
    names = [n for n, _ in net.named_parameters()]
    assert ("input_norm.weight" in names) == batch_norm
    for name, p in net.named_parameters():
        num = numeric_gradient(net, x, labels, p)
        np.testing.assert_allclose(p.grad, num, rtol=1e-6, atol=1e-9, err_msg=name)
        if name == "input.bias" and batch_norm:
            assert np.abs(num).max() < 1e-8
        else:
            assert np.abs(num).max() > 1e-4, name


def test_masks_are_fixed_over_time_drawn_per_batch_and_off_in_eval():
    net = make_net("IF", batch_norm=False, dropout=0.5)
    x = np.ones((4, 3, 6))
    s = net.simulate(x)
    m_x, m_s = net.masks
    # a neuron whose input drive and feedback are both dropped never fires
    silent = (m_x[:, :] == 0) & (m_s == 0)
    assert silent.any() and not s[:, silent].any()
    first = net.masks
    net.simulate(x)                    # same batch: the same masks until drawn anew
    assert net.masks is first
    labels = np.zeros(3, dtype=np.int64)
    ide.gradients(net, x, labels)      # a training step draws new ones
    assert not np.array_equal(net.masks[0], first[0])
    net.eval()
    assert np.array_equal(net.simulate(x), make_net("IF", False, 0.0).eval().simulate(x))


def test_batchnorm_statistics_and_eval_forward_use_the_folded_weights():
    net = make_net("LIF", batch_norm=True, dropout=0.0)
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (5, 16, 6))
    net.simulate(x)                    # one training forward moves the running statistics
    dbar = np.tensordot(net.rate_weights(5), x, axes=(0, 0)) @ net.input.weight.data.T \
        + net.input.bias.data
    bn = net.input_norm
    np.testing.assert_allclose(bn.running_mean, 0.1 * dbar.mean(0))
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * dbar.var(0, ddof=1))
    assert int(bn.num_batches_tracked) == 1
    net.eval()
    F, b = net.folded_input()
    scale = bn.weight.data / np.sqrt(bn.running_var + bn.eps)
    np.testing.assert_allclose(F, net.input.weight.data * scale[:, None])
    np.testing.assert_allclose(b, (net.input.bias.data - bn.running_mean) * scale + bn.bias.data)
    before = bn.running_mean.copy()
    net.simulate(x)
    np.testing.assert_array_equal(bn.running_mean, before)     # eval: untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("neuron", NEURONS)
def test_export_folds_batchnorm_and_the_simulator_gives_dense_spikes_exactly(neuron, dtype):
    """Dyadic weights and a BatchNorm whose fold stays dyadic (eps 0, variance a power of 4):
    the simulator's spikes equal the eval-mode dense spikes bit for bit."""
    import eventsim
    rng = np.random.default_rng(5)
    with training.default_dtype(dtype):
        net = FeedbackMLP(12, 16, 4, neuron=neuron, lam=0.75, rng=rng, batch_norm=True,
                          dropout=0.2).eval()
    net.input.weight.data[...] = rng.integers(-12, 17, (16, 12)) / 16
    net.input.bias.data[...] = rng.integers(-4, 5, 16) / 16
    net.feedback.weight.data[...] = rng.integers(-3, 4, (16, 16)) / 32
    net.feedback.power_iteration(100)
    bn = net.input_norm
    bn.eps = 0.0
    bn.running_var[...] = 4.0 ** rng.integers(-1, 2, 16)
    bn.running_mean[...] = rng.integers(-4, 5, 16) / 8
    bn.weight.data[...] = rng.integers(1, 5, 16) / 2
    bn.bias.data[...] = rng.integers(-4, 5, 16) / 8
    T, B = 8, 32
    x = training.encoding.direct((rng.integers(0, 9, (B, 12)) / 8).astype(dtype), T, dtype=dtype)
    spikes, y = net.simulate(x), net.forward(x)
    model = training.to_model(net, input_shape=(12,), T=T, dtype=dtype)
    F, b = net.folded_input()
    np.testing.assert_array_equal(model.layers[0].weight, F)
    np.testing.assert_array_equal(model.layers[0].bias, b)
    assert not np.array_equal(F, net.input.weight.data)
    assert 0.05 < spikes.mean() < 0.9
    rec = eventsim.Simulator(model, n_threads=1).run(x)
    np.testing.assert_array_equal(rec.spikes[1].to_dense(T, B), spikes)
    np.testing.assert_array_equal(rec.readout, y)


def test_fit_with_norm_and_dropout_resumes_identically(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    images = rng.uniform(0, 1, (60, 8)).astype(np.float32)

    def run(epochs, resume):
        net = FeedbackMLP(8, 10, 3, neuron="LIF", batch_norm=True, dropout=0.2)
        opt = training.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
        training.fit(net, (images, labels), T=4, epochs=epochs, batch_size=20, optimizer=opt,
                     method="ide", checkpoint=tmp_path / ("a.h5" if resume else "b.h5"),
                     resume=resume, progress=False, seed=7)
        return net

    straight = run(2, False)
    run(1, True)
    resumed = run(2, True)
    for (name, p), (_, q) in zip(straight.named_parameters(), resumed.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    np.testing.assert_array_equal(straight.input_norm.running_var,
                                  resumed.input_norm.running_var)


@pytest.mark.parametrize("kw, match", [
    (dict(dropout=1.0), r"dropout must lie in \[0, 1\)"),
    (dict(dropout=-0.1), r"dropout must lie in \[0, 1\)"),
    (dict(dropout=True), r"dropout must lie in \[0, 1\)"),
    (dict(batch_norm="yes"), "batch_norm must be True or False"),
])
def test_bad_settings_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        FeedbackMLP(4, 5, 2, **kw)


def test_batchnorm_training_refuses_a_batch_of_one():
    net = make_net("IF", batch_norm=True, dropout=0.0)
    with pytest.raises(ValueError, match="batch of at least 2"):
        net.simulate(np.ones((3, 1, 6)))


@pytest.mark.parametrize("kind", ["mlp_bn", "mlp_lif", "conv"])
def test_feedback_from_model_rebuilds_what_the_model_runs(kind):
    """``training.feedback_from_model`` gives back a network whose eval forward equals the
    exported network's bit for bit (the F-MLP's BatchNorm folded), and refuses other models."""
    rng = np.random.default_rng(4)
    if kind == "conv":
        net = training.FeedbackConv(1, (3, 2), (5, 5), 3, neuron="LIF", lam=0.75, rng=2,
                                    feedback_kernel_size=3)
        x = training.encoding.direct(rng.uniform(0, 1, (6, 1, 5, 5)).astype(np.float32), 6)
        shape = (1, 5, 5)
        for c in net.convs:
            c.weight.data *= 8.0
            c.bias.data += 0.5
    else:
        net = FeedbackMLP(7, 9, 3, neuron="IF" if kind == "mlp_bn" else "LIF", lam=0.8, rng=2,
                          batch_norm=kind == "mlp_bn", dropout=0.1)
        x = training.encoding.direct(rng.uniform(0, 1, (6, 7)).astype(np.float32), 6)
        shape = (7,)
        if kind == "mlp_bn":
            net.simulate(x)                 # move the running statistics off (0, 1)
        net.input.weight.data *= 4.0
    net.feedback.weight.data *= 3.0
    net.feedback.power_iteration(50)
    net.eval()
    y = net.forward(x)
    model = training.to_model(net, input_shape=shape, T=6)
    back = training.feedback_from_model(model)
    assert type(back) is type(net) and not back.training
    assert back.neuron == net.neuron and back.lam == (net.lam if net.neuron == "LIF" else 0.95)
    np.testing.assert_array_equal(back.forward(x), y)
    assert 0.02 < back.simulate(x).mean() < 0.9
    with pytest.raises(ValueError, match="not a feedback network"):
        training.feedback_from_model(training.to_model(
            training.Sequential(training.Linear(7, 3)), input_shape=(7,), T=2))


@pytest.mark.parametrize("neuron", NEURONS)
def test_conv_batchnorm_implicit_gradient_equals_finite_differences(neuron):
    """FeedbackConv(batch_norm=True) in training mode: every parameter's IDE gradient,
    ``input_norm.*`` included, equals central differences of the equilibrium loss (batch
    statistics per channel over batch and pixels; conv1's bias cancels in them)."""
    from .test_ide import make_conv_net
    net = make_conv_net(neuron, batch_norm=True)
    net.input_norm.weight.data[...] = [1.5, 2.5]
    net.input_norm.bias.data[...] = [0.8, 1.2]
    x = np.random.default_rng(0).uniform(0, 1, (4, 3, 2, 4, 4))
    labels = np.array([0, 1, 2])
    _, _, residual = ide.gradients(net, x, labels, tol=1e-12, max_iter=100, at="equilibrium")
    assert residual < 1e-12
    names = [n for n, _ in net.named_parameters()]
    assert "input_norm.weight" in names and "input_norm.bias" in names
    xbar = np.tensordot(net.rate_weights(4), x, axes=(0, 0))
    zs, _ = net._chain(net.equilibrium(x)[0], xbar)
    for z in zs:
        assert (z < 0).any() and ((z > 0) & (z < 1)).any()
        assert np.min(np.abs(z)) > 1e-5 and np.min(np.abs(z - 1)) > 1e-5
    for name, p in net.named_parameters():
        num = numeric_gradient(net, x, labels, p)
        np.testing.assert_allclose(p.grad, num, rtol=1e-6, atol=1e-9, err_msg=name)
        if name == "conv1.bias":
            assert np.abs(num).max() < 1e-8
        else:
            assert np.abs(num).max() > 1e-5, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_batchnorm_export_folds_and_the_simulator_gives_dense_spikes_exactly(dtype):
    """Dyadic conv weights and a BatchNorm whose fold stays dyadic: the simulator's spikes of
    both layers equal the eval-mode dense spikes bit for bit; ``feedback_from_model`` gives
    back the folded network."""
    import eventsim
    rng = np.random.default_rng(6)
    with training.default_dtype(dtype):
        net = training.FeedbackConv(1, (3, 2), (5, 5), 3, neuron="LIF", lam=0.75, rng=rng,
                                    batch_norm=True).eval()
    for c in net.convs:
        c.weight.data[...] = rng.integers(-6, 9, c.weight.shape) / 8
        c.bias.data[...] = rng.integers(-2, 5, c.bias.shape) / 8
    net.feedback.weight.data[...] = rng.integers(-2, 3, net.feedback.weight.shape) / 16
    net.feedback.power_iteration(50)
    assert net.feedback.sigma() <= 1.0
    net.readout.weight.data[...] = rng.integers(-8, 9, net.readout.weight.shape) / 16
    net.readout.bias.data[...] = rng.integers(-4, 5, 3) / 16
    bn = net.input_norm
    bn.eps = 0.0
    bn.running_var[...] = 4.0 ** rng.integers(-1, 2, 3)
    bn.running_mean[...] = rng.integers(-4, 5, 3) / 8
    bn.weight.data[...] = rng.integers(1, 5, 3) / 2
    bn.bias.data[...] = rng.integers(-2, 5, 3) / 8
    T, B = 6, 8
    x = training.encoding.direct((rng.integers(0, 9, (B, 1, 5, 5)) / 8).astype(dtype), T,
                                 dtype=dtype)
    layers, y = net.simulate(x, all_layers=True), net.forward(x)
    model = training.to_model(net, input_shape=(1, 5, 5), T=T, dtype=dtype)
    K, b = net.folded_input()
    np.testing.assert_array_equal(model.layers[0].weight, K)
    assert not np.array_equal(K, net.conv1.weight.data)
    assert all(0.02 < s.mean() < 0.9 for s in layers)
    rec = eventsim.Simulator(model, n_threads=1).run(x)
    for layer, s in zip(model.spiking_layers, layers):
        np.testing.assert_array_equal(rec.spikes[layer].to_dense(T, B).reshape(s.shape), s)
    np.testing.assert_array_equal(rec.readout, y)
    back = training.feedback_from_model(model)
    assert not back.batch_norm
    np.testing.assert_array_equal(back.forward(x), y)
