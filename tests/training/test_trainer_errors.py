"""fit/evaluate refuse bad input with one named error, and Ctrl-C leaves a resumable run."""
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

import training
from training import encoding
from training.checkpoint import load_checkpoint
from training.optim import SGD
from training.trainer import TrainingInterrupted, evaluate, fit

REPO = Path(__file__).resolve().parents[2]


def toy_task(seed=0, n=200, d=12):
    rng = np.random.default_rng(seed)
    x = rng.random((n, d)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    return x, y


def make_net(seed=1, d=12, hidden=32):
    rng = np.random.default_rng(seed)
    return training.Sequential(training.Linear(d, hidden, rng=rng),
                               training.LIF(beta=0.9, threshold=0.5),
                               training.Linear(hidden, 2, rng=rng))


def _fit(net, train, **kw):
    opt = SGD(list(net.named_parameters()), lr=0.1)
    kw = {"T": 2, "epochs": 1, "batch_size": 50, "optimizer": opt, "progress": False, **kw}
    return fit(net, train, **kw)


# -- empty sets -----------------------------------------------------------------------------
def test_empty_training_set_is_named():
    x, y = toy_task()
    with pytest.raises(ValueError, match=r"fit: the train set is empty: images \(0, 12\)"):
        _fit(make_net(), (x[:0], y[:0]), test=(x, y))


def test_empty_test_set_is_named():
    x, y = toy_task()
    with pytest.raises(ValueError, match=r"fit: the test set is empty: images \(0, 12\)"):
        _fit(make_net(), (x, y), test=(x[:0], y[:0]))


def test_evaluate_on_empty_set_is_named():
    x, y = toy_task()
    with pytest.raises(ValueError, match=r"evaluate: the evaluation set is empty: images \(0, 12\)"):
        evaluate(make_net(), x[:0], y[:0], T=2)


# -- integer and out-of-range images -------------------------------------------------------
@pytest.mark.parametrize("encoder", ["direct", "rate"])
@pytest.mark.parametrize("which", ["train", "test"])
def test_integer_images_are_refused_with_the_fix(encoder, which):
    x, y = toy_task()
    pixels = np.round(x * 255).astype(np.uint8)
    train, test = ((pixels, y), (x, y)) if which == "train" else ((x, y), (pixels, y))
    with pytest.raises(ValueError, match=rf"fit: {which} images are uint8.*float_images\(\).*/ 255"):
        _fit(make_net(), train, test=test, encoder=encoder)


def test_rate_encoder_refuses_values_outside_unit_interval_before_training():
    x, y = toy_task()
    x = x.copy()
    x[150, 3] = 1.5      # in the last batch: found before any training step
    net = make_net()
    before = net.state_dict()
    with pytest.raises(ValueError, match=r"fit: train images\[150, 3\] = 1.5.*'rate'.*\[0, 1\]"):
        _fit(net, (x, y), encoder="rate")
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_direct_encoder_refuses_non_finite_images():
    x, y = toy_task()
    x = x.copy()
    x[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"fit: train images\[7, 2\] = nan.*'direct'.*finite"):
        _fit(make_net(), (x, y), encoder="direct")


def test_direct_encoder_still_accepts_analog_values_outside_unit_interval():
    x, y = toy_task()
    _fit(make_net(), (2.0 * x - 0.5, y), encoder="direct")


def test_poisson_encoder_names_the_conversion_for_integer_pixels():
    """A callable encoder gets the images as given; encoding.poisson names the fix."""
    x, y = toy_task()
    pixels = np.round(x * 255).astype(np.uint8)

    def poisson(images, T, rng):
        return encoding.poisson(images, T, rng, max_rate_hz=200.0, dt=1e-3)

    with pytest.raises(ValueError, match=r"uint8.*float_images\(\).*/ 255"):
        _fit(make_net(), (pixels, y), encoder=poisson)


# -- Ctrl-C ----------------------------------------------------------------------------------
class _InterruptAt:
    """Stand-in for net.forward that raises KeyboardInterrupt at its n-th call."""

    def __init__(self, net, n):
        self.forward, self.n, self.calls = net.forward, n, 0

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.forward(x)


def test_ctrl_c_mid_epoch_names_the_checkpoint_epoch_and_how_to_resume(tmp_path):
    x, y = toy_task()
    net = make_net()
    ck = tmp_path / "ck.h5"
    net.forward = _InterruptAt(net, 4 + 2)     # 4 batches per epoch: epoch 2, batch 2
    with pytest.raises(TrainingInterrupted) as info:
        _fit(net, (x, y), epochs=3, checkpoint=ck)
    msg = str(info.value)
    assert "\n" not in msg
    assert "epoch 2, batch 2" in msg and "holds epoch 1" in msg and "resume=True" in msg
    assert str(ck) in msg
    assert isinstance(info.value, KeyboardInterrupt)
    assert (info.value.epoch, info.value.checkpoint_epoch) == (2, 1)
    assert load_checkpoint(ck).epoch == 1


def test_ctrl_c_in_a_callback_after_the_checkpoint(tmp_path):
    x, y = toy_task()
    ck = tmp_path / "ck.h5"

    def stop(epoch, history):
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match=r"holds epoch 1.*resume=True"):
        _fit(make_net(), (x, y), epochs=3, checkpoint=ck, on_epoch_end=stop)
    assert load_checkpoint(ck).epoch == 1


def test_ctrl_c_without_checkpoint_says_so():
    x, y = toy_task()
    net = make_net()
    net.forward = _InterruptAt(net, 2)
    with pytest.raises(TrainingInterrupted, match=r"epoch 1, batch 2.*no checkpoint was configured"):
        _fit(net, (x, y), epochs=2)


def test_ctrl_c_before_the_first_checkpoint(tmp_path):
    x, y = toy_task()
    net = make_net()
    net.forward = _InterruptAt(net, 1)
    with pytest.raises(TrainingInterrupted, match=r"no checkpoint written yet"):
        _fit(net, (x, y), epochs=2, checkpoint=tmp_path / "ck.h5")


def test_ctrl_c_closes_the_progress_bars(monkeypatch):
    import training.trainer as tr

    bars = []
    real = tr.tqdm

    def tracking(*a, **kw):
        bars.append(real(*a, **kw))
        return bars[-1]

    monkeypatch.setattr(tr, "tqdm", tracking)
    x, y = toy_task()
    net = make_net()
    net.forward = _InterruptAt(net, 3)          # mid-epoch, progress bar on screen
    with pytest.raises(TrainingInterrupted, match="epoch 1, batch 3"):
        _fit(net, (x, y), epochs=2, progress=True)
    assert len(bars) == 1 and bars[0].n == 2
    assert bars[0] not in real._instances       # closed: tqdm drops closed bars


@pytest.mark.parametrize("script", ["examples/quickstart.py", "benchmarks/train_fmnist.py"])
def test_scripts_print_one_line_and_exit_130(script, monkeypatch, capsys, tmp_path):
    import training.datasets as ds
    import training.trainer as tr

    def interrupted(*a, **kw):
        raise TrainingInterrupted("training interrupted at epoch 1, batch 3; no checkpoint "
                                  "was configured")

    monkeypatch.setattr(tr, "fit", interrupted)
    monkeypatch.setattr(training, "fit", interrupted)
    small = ds.load_fashion_mnist_small
    monkeypatch.setattr(ds, "load_fashion_mnist",
                        lambda path=None, split="train", download=True: small(split))
    monkeypatch.setattr(sys, "argv", [script, "--out", str(tmp_path / "out")]
                        if "quickstart" in script else [script, "--epochs", "1"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO / script), run_name="__main__")
    assert info.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["training interrupted at epoch 1, batch 3; no checkpoint was configured"]


# -- checkpoint of another network -----------------------------------------------------------
def test_resume_from_another_architecture_says_so_in_one_line(tmp_path):
    x, y = toy_task()
    ck = tmp_path / "ck.h5"
    _fit(make_net(hidden=32), (x, y), checkpoint=ck)
    other = make_net(hidden=16)
    before = other.state_dict()
    with pytest.raises(ValueError) as info:
        _fit(other, (x, y), epochs=2, checkpoint=ck, resume=True)
    msg = str(info.value)
    assert "\n" not in msg
    assert "belongs to a different network" in msg and str(ck) in msg
    assert "'0.weight'" in msg and "(32, 12)" in msg and "(16, 12)" in msg
    for k, v in other.state_dict().items():       # nothing half-loaded
        np.testing.assert_array_equal(v, before[k])


def test_resume_with_other_parameter_names_summarises_both(tmp_path):
    x, y = toy_task()
    ck = tmp_path / "ck.h5"
    _fit(make_net(), (x, y), checkpoint=ck)
    rng = np.random.default_rng(0)
    deeper = training.Sequential(training.Linear(12, 32, rng=rng), training.LIF(beta=0.9),
                                 training.Linear(32, 32, rng=rng), training.LIF(beta=0.9),
                                 training.Linear(32, 2, rng=rng))
    with pytest.raises(ValueError, match=r"belongs to a different network: .*4 arrays.*6 arrays"):
        _fit(deeper, (x, y), checkpoint=ck, resume=True)
