import numpy as np
import pytest

import training
from snncore import modelfile as mf


@pytest.fixture
def float64():
    with training.default_dtype(np.float64):
        yield


def trained_like_conv(rng):
    net = training.Sequential(
        training.Conv2d(1, 4, 3, padding=1, rng=rng), training.BatchNorm2d(4), training.LIF(tau=2.0),
        training.AvgPool2d(2), training.Conv2d(4, 6, 3, stride=2, padding=1, rng=rng), training.BatchNorm2d(6),
        training.LIF(beta=0.5, reset="subtract"), training.Dropout(0.3, rng=rng), training.Flatten(),
        training.Linear(6 * 2 * 2, 5, rng=rng), training.BatchNorm1d(5), training.LIF(tau=3.0, threshold=0.7),
        training.Linear(5, 3, rng=rng))
    # give BatchNorm non-trivial statistics and affine parameters
    net.train()
    x = rng.random((3, 8, 1, 8, 8))
    for _ in range(3):
        net.forward(x)
    for layer in net.layers:
        if isinstance(layer, (training.BatchNorm1d, training.BatchNorm2d)):
            layer.weight.data[...] = rng.uniform(0.5, 1.5, layer.weight.data.shape)
            layer.bias.data[...] = rng.uniform(-0.2, 0.2, layer.bias.data.shape)
    return net.eval()


def test_export_folds_batchnorm_gain_dropout_exactly(float64, tmp_path):
    rng = np.random.default_rng(0)
    net = trained_like_conv(rng)
    x = training.encoding.direct(rng.random((6, 1, 8, 8)), 4)
    y = net.forward(x)
    path = training.export(net, tmp_path / "m.h5", input_shape=(1, 8, 8), T=4, dtype=np.float64,
                           dataset="toy", accuracy=0.5)
    model = mf.read_model(path)
    kinds = [l.kind for l in model.layers]
    assert kinds == ["conv2d", "spiking", "avgpool2d", "conv2d", "spiking", "flatten", "dense",
                     "spiking", "dense", "readout"]
    assert model.metadata["dataset"] == "toy" and model.T == 4
    assert model.layers[1].beta == 0.5 and model.layers[7].beta == pytest.approx(2 / 3)
    y2 = training.to_network(model).forward(x)
    np.testing.assert_allclose(y2, y, rtol=1e-9, atol=1e-9)
    assert np.abs(y).max() > 0


def test_export_float32_same_predictions(tmp_path):
    rng = np.random.default_rng(1)
    net = training.Sequential(training.Linear(20, 30, rng=rng), training.LIF(tau=2.0),
                              training.Linear(30, 4, rng=rng)).eval()
    x = training.encoding.direct(rng.random((50, 20)).astype(np.float32), 5)
    y = net.forward(x)
    model = mf.read_model(training.export(net, tmp_path / "m.h5", input_shape=(20,), T=5))
    assert model.layers[0].weight.dtype == np.float32
    y2 = training.to_network(model).forward(x)
    np.testing.assert_allclose(y2, y, rtol=1e-5, atol=1e-5)
    assert np.array_equal(training.losses.decode(y).argmax(1), training.losses.decode(y2).argmax(1))


def test_export_time_weights_stored(tmp_path):
    net = training.Sequential(training.Linear(3, 4), training.LIF(beta=0.5), training.Linear(4, 2))
    path = training.export(net, tmp_path / "m.h5", input_shape=(3,), T=3, time_weights=[0.5, 1.0, 1.5])
    np.testing.assert_array_equal(mf.read_model(path).layers[-1].time_weights, [0.5, 1.0, 1.5])


def test_export_rejects_unexportable_networks(tmp_path):
    with pytest.raises(ValueError, match="end with a Linear readout"):
        training.export(training.Sequential(training.Linear(3, 4), training.LIF(beta=0.5)),
                        tmp_path / "a.h5", input_shape=(3,), T=2)
    with pytest.raises(ValueError, match="no weight layer before it"):
        training.export(training.Sequential(training.LIF(beta=0.5), training.Linear(3, 2)),
                        tmp_path / "b.h5", input_shape=(3,), T=2)
    with pytest.raises(mf.ModelFormatError, match=r"layers\[0\].*expects input \(3,\).*\(5,\)"):
        training.export(training.Sequential(training.Linear(3, 2)), tmp_path / "c.h5", input_shape=(5,), T=2)
    assert not list(tmp_path.iterdir())


def test_failed_export_keeps_existing_file(tmp_path):
    net = training.Sequential(training.Linear(3, 4), training.LIF(beta=0.5), training.Linear(4, 2))
    path = training.export(net, tmp_path / "m.h5", input_shape=(3,), T=2)
    before = path.read_bytes()
    net.layers[0].weight.data[0, 0] = np.nan
    with pytest.raises(mf.ModelFormatError, match=r"layers\[0\]\(dense\)\.weight: non-finite value nan at index \(0, 0\)"):
        training.export(net, path, input_shape=(3,), T=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.h5"]
