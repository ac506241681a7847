import numpy as np
import pytest

import training
from training.checkpoint import load_checkpoint
from training.optim import SGD, Adam, CosineSchedule
from training.trainer import TrainingDiverged, evaluate, fit


def toy_task(seed=0, n=1200, d=12):
    """Two linearly separable classes in [0, 1]^d."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, d)).astype(np.float32)
    w = rng.standard_normal(d)
    score = (x - 0.5) @ w
    y = (score > 0).astype(np.int64)
    return x, y


def make_net(seed=1, d=12):
    rng = np.random.default_rng(seed)
    return training.Sequential(training.Linear(d, 32, rng=rng), training.LIF(beta=0.9, threshold=0.5),
                               training.Linear(32, 2, rng=rng))


def test_learns_separable_toy_task():
    x, y = toy_task()
    net = make_net()
    before = evaluate(net, x[1000:], y[1000:], T=4)[1]
    opt = Adam(list(net.named_parameters()), lr=5e-3)
    h = fit(net, (x[:1000], y[:1000]), test=(x[1000:], y[1000:]), T=4, epochs=6, batch_size=50,
            optimizer=opt, progress=False)
    assert h.test_acc[-1] >= 0.93 > before + 0.1
    assert h.train_loss[-1] < h.train_loss[0]


def _run(tmp_path, epochs, resume, name="ck.h5"):
    x, y = toy_task(seed=3, n=600)
    net = make_net(seed=4)
    opt = SGD(list(net.named_parameters()), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    sched = CosineSchedule(opt, total_steps=3 * 10)
    h = fit(net, (x, y), T=3, epochs=epochs, batch_size=60, optimizer=opt, schedule=sched,
            encoder="rate", seed=11, checkpoint=tmp_path / name, resume=resume, progress=False)
    return net, h


def test_epochs_counted_from_one_everywhere(tmp_path, capsys):
    """on_epoch_end, History.epoch, the progress lines and the checkpoint name the same epoch."""
    x, y = toy_task(seed=3, n=120)
    seen = []

    def callback(epoch, history):
        seen.append((epoch, history.epoch[-1], load_checkpoint(tmp_path / "ck.h5").epoch))

    def run(epochs, resume):
        net = make_net(seed=4)
        opt = SGD(list(net.named_parameters()), lr=0.1)
        return fit(net, (x, y), T=2, epochs=epochs, batch_size=60, optimizer=opt, progress=True,
                   checkpoint=tmp_path / "ck.h5", resume=resume, on_epoch_end=callback)

    h = run(2, False)
    assert seen == [(1, 1, 1), (2, 2, 2)] and h.epoch == [1, 2]
    printed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()
               if line.startswith("epoch ")]
    assert printed == ["epoch 1/2", "epoch 2/2"]
    seen.clear()
    h = run(3, True)                                    # resumes after epoch 2
    assert seen == [(3, 3, 3)] and h.epoch == [1, 2, 3]


def test_same_seed_gives_identical_weights(tmp_path):
    a, _ = _run(tmp_path, 2, False, "a.h5")
    b, _ = _run(tmp_path, 2, False, "b.h5")
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)


def test_resume_is_exact(tmp_path):
    straight, h_straight = _run(tmp_path, 3, False, "straight.h5")
    _run(tmp_path, 1, False, "resumed.h5")           # stops after epoch 1
    resumed, h_resumed = _run(tmp_path, 3, True, "resumed.h5")
    for pa, pb in zip(straight.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    assert h_resumed.train_loss == h_straight.train_loss
    assert load_checkpoint(tmp_path / "resumed.h5").epoch == 3


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    x, y = toy_task(n=300)
    net = make_net()
    opt = SGD(list(net.named_parameters()), lr=0.05)
    ck = tmp_path / "ck.h5"
    fit(net, (x, y), T=2, epochs=1, batch_size=100, optimizer=opt, checkpoint=ck, progress=False)
    saved = ck.read_bytes()
    net.layers[2].weight.data[0, 0] = np.nan   # readout: reaches the loss
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, batch 1.*ck.h5.*intact"):
        fit(net, (x, y), T=2, epochs=2, batch_size=100, optimizer=opt, checkpoint=ck,
            overwrite=True, progress=False)
    assert ck.read_bytes() == saved
    net.layers[2].weight.data[0, 0] = 0.0
    net.layers[0].weight.data[0, 0] = np.nan   # hidden: spikes hide it, its gradient does not
    with pytest.raises(TrainingDiverged, match=r"parameter '0.weight' became non-finite"):
        fit(net, (x, y), T=2, epochs=2, batch_size=100, optimizer=opt, checkpoint=ck,
            overwrite=True, progress=False)
    assert ck.read_bytes() == saved
    assert load_checkpoint(ck).epoch == 1


def test_bad_data_is_rejected():
    net = make_net()
    opt = SGD(list(net.named_parameters()), lr=0.1)
    x, y = toy_task(n=100)
    with pytest.raises(ValueError, match="labels"):
        fit(net, (x, y[:50]), T=2, epochs=1, batch_size=10, optimizer=opt, progress=False)
    with pytest.raises(ValueError, match="Linear\\(12, 32"):
        fit(net, (x[:, :5], y), T=2, epochs=1, batch_size=10, optimizer=opt, progress=False)
