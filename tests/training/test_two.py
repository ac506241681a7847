"""fit's TWO decoder, MSG schedule and constrain() hook (docs/methods.md section 6)."""
import numpy as np
import pytest

import eventsim
import training
from snncore import modelfile as mf
from training import two
from training.module import Module, Parameter
from training.optim import SGD
from training.trainer import fit

T = 4


def toy_task(seed=0, n=240, d=12):
    """Two linearly separable classes in [0, 1]^d."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, d)).astype(np.float32)
    w = rng.standard_normal(d)
    return x, ((x - 0.5) @ w > 0).astype(np.int64)


def make_net(seed=1, d=12, *extra):
    rng = np.random.default_rng(seed)
    return training.Sequential(training.Linear(d, 32, rng=rng), *extra,
                               training.LIF(beta=0.9, threshold=0.5), training.Linear(32, 2, rng=rng))


def run(net, data, epochs, lr=0.1, **kw):
    opt = SGD(list(net.named_parameters()), lr=lr, momentum=0.9)
    return fit(net, data, T=T, epochs=epochs, batch_size=60, optimizer=opt, progress=False, **kw)


# ------------------------------------------------------------------------------------------
# the update rule


def hand_case():
    """Readout [T=3, B=4, C=2] and labels; by hand (argmax ties go to class 0):

    sample  label  o_0     o_1     o_2     argmax o_t   cumulative sums -> argmax
    0       0      (0,1)   (2,0)   (0,3)   1 0 1        (0,1)1 (2,1)0 (2,4)1
    1       1      (0,1)   (1,0)   (1,0)   1 0 0        (0,1)1 (1,1)0 (2,1)0
    2       0      (1,0)   (0,3)   (1,0)   0 1 0        (1,0)0 (1,3)1 (2,3)1
    3       1      (1,0)   (0,2)   (1,0)   0 1 0        (1,0)0 (1,2)1 (2,2)0
    hits per step: per_step [2, 2, 1], cumulative [2, 2, 0].
    """
    y = np.array([[[0, 1], [0, 1], [1, 0], [1, 0]],
                  [[2, 0], [1, 0], [0, 3], [0, 2]],
                  [[0, 3], [1, 0], [1, 0], [1, 0]]], dtype=np.float32)
    return y, np.array([0, 1, 0, 1])


def test_step_hits_both_readings_by_hand():
    y, labels = hand_case()
    np.testing.assert_array_equal(two.step_hits(y, labels, "per_step"), [2, 2, 1])
    np.testing.assert_array_equal(two.step_hits(y, labels, "cumulative"), [2, 2, 0])


def test_update_rule_by_hand():
    # per_step: acc = [1/2, 1/2, 1/4], mean 5/12, acc/mean = [1.2, 1.2, 0.6]
    a1 = two.update_weights(np.ones(3), np.array([2, 2, 1]) / 4, 0.3)
    np.testing.assert_allclose(a1, [0.7 + 0.36, 0.7 + 0.36, 0.7 + 0.18], rtol=1e-15)
    # cumulative: acc = [1/2, 1/2, 0], mean 1/3, acc/mean = [1.5, 1.5, 0]
    a2 = two.update_weights(np.ones(3), np.array([2, 2, 0]) / 4, 0.3)
    np.testing.assert_allclose(a2, [1.15, 1.15, 0.7], rtol=1e-15)
    # from a non-uniform start: 0.7 * [1.15, 1.15, 0.7] + 0.3 * [1.2, 1.2, 0.6]
    np.testing.assert_allclose(two.update_weights(a2, np.array([2, 2, 1]) / 4, 0.3),
                               [1.165, 1.165, 0.67], rtol=1e-14)
    # lam = 1 replaces a by acc / mean(acc)
    np.testing.assert_allclose(two.update_weights(a2, np.array([2, 2, 1]) / 4, 1.0), [1.2, 1.2, 0.6])


def test_zero_mean_accuracy_keeps_weights():
    a = np.array([0.5, 1.0, 1.5])
    out = two.update_weights(a, np.zeros(3), 0.3)
    np.testing.assert_array_equal(out, a)
    assert out is not a


@pytest.mark.parametrize("reading", ["cumulative", "per_step"])
def test_fit_follows_the_rule_with_the_epochs_own_outputs(reading):
    """With lr = 0 the outputs do not change, so every epoch's accuracy per step is the
    one computed here from a forward pass (independent argmax code)."""
    x, y = toy_task(n=180)
    net = make_net(seed=5)
    o = net.forward(training.encoding.direct(x, T)).astype(np.float64)
    z = np.cumsum(o, axis=0) if reading == "cumulative" else o
    acc = np.array([np.mean(np.argmax(z[t], axis=1) == y) for t in range(T)])
    assert acc.std() > 0.01, acc                       # the rule has something to do
    h = run(net, (x, y), epochs=5, lr=0.0, decoder="two", two_warmup=1, two_lam=0.25,
            two_accuracy=reading)
    a, expected = np.ones(T), []
    for epoch in range(5):
        if epoch > 1:
            a = 0.75 * a + 0.25 * acc / acc.mean()
        expected.append(a.copy())
    assert len(h.time_weights) == 5
    np.testing.assert_allclose(np.stack(h.time_weights), np.stack(expected), rtol=1e-12)
    np.testing.assert_array_equal(net.time_weights, h.time_weights[-1])


def test_fit_keeps_ones_when_no_step_is_ever_right():
    x, y = toy_task(n=120)
    net = make_net(seed=2)
    net.layers[-1].bias.data[:] = [1e3, -1e3]           # always predicts class 0
    h = run(net, (x, np.ones_like(y)), epochs=3, lr=0.0, decoder="two", two_warmup=0)
    assert h.train_acc == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(np.stack(h.time_weights), np.ones((3, T)))


def test_warmup_is_e0_plus_one_epochs():
    """Rows 0..E0 are exactly ones; the epochs 0..E0+1 train with ones, so they match a
    decoder="mean" run bit for bit, and the next epoch does not."""
    x, y = toy_task()
    e0 = 2
    h_two = run(make_net(), (x, y), epochs=e0 + 3, decoder="two", two_warmup=e0)
    h_mean = run(make_net(), (x, y), epochs=e0 + 3)
    rows = np.stack(h_two.time_weights)
    np.testing.assert_array_equal(rows[:e0 + 1], np.ones((e0 + 1, T)))
    assert not np.array_equal(rows[e0 + 1], np.ones(T))
    assert h_mean.time_weights == []
    assert h_two.train_loss[:e0 + 2] == h_mean.train_loss[:e0 + 2]
    assert h_two.train_loss[e0 + 2] != h_mean.train_loss[e0 + 2]


def test_evaluate_uses_the_networks_weights():
    x, y = toy_task(n=200)
    net = make_net(seed=3)
    a = np.array([0.0, 0.0, 0.0, 4.0])
    explicit = training.evaluate(net, x, y, T=T, time_weights=a)
    uniform = training.evaluate(net, x, y, T=T)
    net.time_weights = a
    assert training.evaluate(net, x, y, T=T) == explicit != uniform
    assert training.evaluate(net, x, y, T=T, time_weights=np.ones(T)) == uniform


def test_mean_decoder_clears_weights_and_two_restarts_from_ones():
    x, y = toy_task(n=120)
    net = make_net()
    net.time_weights = [0.1, 0.2, 0.3, 0.4]
    run(net, (x, y), epochs=1)
    assert net.time_weights is None and "time_weights" not in net.state_dict()
    net.time_weights = [0.1, 0.2, 0.3, 0.4]
    h = run(net, (x, y), epochs=1, decoder="two")
    np.testing.assert_array_equal(h.time_weights[0], np.ones(T))


# ------------------------------------------------------------------------------------------
# checkpoints, export and the simulator


def _ck_run(tmp_path, epochs, resume, name):
    x, y = toy_task(seed=3, n=180)
    net = make_net(seed=4)
    opt = SGD(list(net.named_parameters()), lr=0.1, momentum=0.9)
    h = fit(net, (x, y), T=T, epochs=epochs, batch_size=60, optimizer=opt, encoder="rate",
            seed=11, checkpoint=tmp_path / name, resume=resume, progress=False,
            decoder="two", two_warmup=0, two_accuracy="per_step")
    return net, h


def test_checkpoint_resume_with_two_is_bit_exact(tmp_path):
    straight, h1 = _ck_run(tmp_path, 4, False, "a.h5")
    _ck_run(tmp_path, 2, False, "b.h5")
    resumed, h2 = _ck_run(tmp_path, 4, True, "b.h5")
    for pa, pb in zip(straight.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    np.testing.assert_array_equal(straight.time_weights, resumed.time_weights)
    np.testing.assert_array_equal(np.stack(h1.time_weights), np.stack(h2.time_weights))
    assert h1.train_loss == h2.train_loss and h1.train_acc == h2.train_acc
    assert not np.array_equal(straight.time_weights, np.ones(T))


def test_resume_with_the_other_decoder_is_refused(tmp_path):
    _ck_run(tmp_path, 1, False, "c.h5")
    x, y = toy_task(seed=3, n=180)
    net = make_net(seed=4)
    with pytest.raises(ValueError, match="decoder='two'"):
        run(net, (x, y), epochs=2, checkpoint=tmp_path / "c.h5", resume=True)


def test_export_writes_the_weights_and_the_simulator_decodes_with_them(tmp_path):
    x, y = toy_task(n=240)
    net = make_net(seed=6)
    run(net, (x, y), epochs=3, decoder="two", two_warmup=0)
    model = mf.read_model(training.export(net, tmp_path / "m.h5", input_shape=(12,), T=T))
    np.testing.assert_array_equal(model.layers[-1].time_weights,
                                  net.time_weights.astype(np.float32))
    assert not np.array_equal(model.layers[-1].time_weights, np.ones(T, np.float32))
    # a sharp weighting, so that the decision differs from the uniform one on some samples
    a = np.array([0.0, 0.0, 0.0, 4.0])
    net.time_weights = a
    path = training.export(net, tmp_path / "sharp.h5", input_shape=(12,), T=T)
    rec = eventsim.Simulator(path, n_threads=1).run(training.encoding.direct(x, T))
    by_hand = np.einsum("t,tbc->bc", a, rec.readout.astype(np.float64)).argmax(axis=1)
    uniform = rec.readout.astype(np.float64).sum(axis=0).argmax(axis=1)
    np.testing.assert_array_equal(rec.predictions, by_hand)
    assert np.any(by_hand != uniform)
    # an explicit argument wins over the network's weights
    other = training.export(net, tmp_path / "o.h5", input_shape=(12,), T=T,
                            time_weights=[1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(mf.read_model(other).layers[-1].time_weights, [1, 2, 3, 4])


def test_state_dict_carries_the_weights():
    net = make_net()
    assert "time_weights" not in net.state_dict()
    net.time_weights = [1.0, 2.0, 3.0, 4.0]
    state = net.state_dict()
    np.testing.assert_array_equal(state["time_weights"], [1, 2, 3, 4])
    fresh = make_net(seed=9)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.time_weights, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="time_weights"):
        net.time_weights = [1.0, np.nan]


# ------------------------------------------------------------------------------------------
# MSG schedule and constrain()


class MSGProbe(Module):
    """Identity layer with an ``msg_p`` that records the value it sees in every forward."""

    def __init__(self):
        super().__init__()
        self.msg_p = 0.0
        self.seen = []

    def forward(self, x):
        self.seen.append(self.msg_p)
        return x

    def backward(self, grad_y, need_input_grad=True):
        return grad_y


def test_msg_schedule_sets_p_per_epoch():
    x, y = toy_task(n=120)                             # 2 batches per epoch
    probe = MSGProbe()
    sched = training.MSGSchedule(0.2, 0.6, start_epoch=1, end_epoch=3)
    h = run(make_net(1, 12, probe), (x, y), epochs=5, msg_schedule=sched)
    expected = [0.2, 0.2, 0.4, 0.6, 0.6]
    np.testing.assert_allclose(h.msg_p, expected)
    np.testing.assert_allclose(probe.seen, np.repeat(expected, 2))
    assert "msg_p" in h.as_dict() and "msg_p" not in run(make_net(), (x, y), epochs=1).as_dict()


def test_msg_schedule_resume_restores_p(tmp_path):
    x, y = toy_task(n=120)
    sched = training.MSGSchedule(0.1, 0.5, start_epoch=0, end_epoch=4)

    def go(epochs, resume, name):
        probe = MSGProbe()
        h = run(make_net(1, 12, probe), (x, y), epochs=epochs, msg_schedule=sched,
                checkpoint=tmp_path / name, resume=resume)
        return probe, h

    p1, h1 = go(4, False, "a.h5")
    go(2, False, "b.h5")
    p2, h2 = go(4, True, "b.h5")
    assert h1.msg_p == h2.msg_p and p1.msg_p == p2.msg_p == pytest.approx(0.4)
    assert p2.seen == p1.seen[4:]                      # epochs 3 and 4, two batches each


class Clipped(Module):
    """Identity layer with a parameter ``k`` that gradient descent pushes below 0.5 and
    ``constrain()`` clips back; it logs the value ``constrain`` found."""

    def __init__(self):
        super().__init__()
        self.k = Parameter(np.ones(1, dtype=np.float32))
        self.found = []

    def forward(self, x):
        return x

    def backward(self, grad_y, need_input_grad=True):
        self.k.grad += 10.0
        return grad_y

    def constrain(self):
        self.found.append(float(self.k.data[0]))
        np.clip(self.k.data, 0.5, None, out=self.k.data)


def test_constrain_is_called_after_every_optimizer_step():
    x, y = toy_task(n=150)                             # 3 batches per epoch
    layer = Clipped()
    net = make_net(1, 12, layer)
    opt = SGD(list(net.named_parameters()), lr=0.1)
    fit(net, (x, y), T=T, epochs=2, batch_size=60, optimizer=opt, progress=False)
    assert len(layer.found) == 6
    # each call sees the value after the step (1 - 0.1 * 10 = 0, then 0.5 - 1 = -0.5)
    assert layer.found == [0.0] + [-0.5] * 5
    assert layer.k.data[0] == 0.5


# ------------------------------------------------------------------------------------------
# bad settings


@pytest.mark.parametrize("kw, name", [
    (dict(decoder="sum"), "decoder"),
    (dict(decoder="two", two_accuracy="final"), "two_accuracy"),
    (dict(two_lam=0.0), "two_lam"),
    (dict(two_lam=1.5), "two_lam"),
    (dict(two_lam=float("nan")), "two_lam"),
    (dict(two_warmup=-1), "two_warmup"),
    (dict(two_warmup=1.5), "two_warmup"),
    (dict(two_warmup=True), "two_warmup"),
    (dict(decoder="two", loss="per_step_ce"), "decoder"),
    (dict(msg_schedule=0.5), "msg_schedule"),
])
def test_bad_settings_name_the_argument(kw, name):
    x, y = toy_task(n=60)
    with pytest.raises(ValueError, match=f"^{name}"):
        run(make_net(), (x, y), epochs=1, **kw)
