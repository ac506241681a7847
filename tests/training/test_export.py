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
    np.testing.assert_allclose(y2, y, rtol=1e-9, atol=1e-9)
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


# -- where each model layer came from in the training Sequential ---------------------------
def _origin_attrs(f):
    return [g.attrs for g in f["layers"].values()]


def test_export_records_sequential_positions(float64, tmp_path):
    import h5py

    net = trained_like_conv(np.random.default_rng(1))
    path = training.export(net, tmp_path / "m.h5", input_shape=(1, 8, 8), T=4)
    model = mf.read_model(path)
    got = [None if o is None else (o.position, o.cls, o.folded) for o in model.origins]
    assert got == [(0, "Conv2d", (1,)), (2, "LIF", ()), (3, "AvgPool2d", ()), (4, "Conv2d", (5,)),
                   (6, "LIF", ()), (8, "Flatten", ()), (9, "Linear", (10,)), (11, "LIF", ()),
                   (12, "Linear", ()), None]
    assert [model.layer_at_position(p) for p in (2, 6, 11)] == model.spiking_layers == [1, 4, 7]
    with pytest.raises(ValueError, match="position 5 was folded into model layer 3"):
        model.layer_at_position(5)
    with pytest.raises(ValueError, match=r"position 7 has no layer in the model.*6: 4"):
        model.layer_at_position(7)
    # a file written before origins were stored still loads, without them
    with h5py.File(path, "r+") as f:
        for a in _origin_attrs(f):
            for name in ("origin_position", "origin_class", "origin_folded"):
                if name in a:
                    del a[name]
    old = mf.read_model(path)
    assert old.origins is None and len(old.layers) == 10
    with pytest.raises(ValueError, match="does not store the layers' positions"):
        old.layer_at_position(2)


@pytest.mark.parametrize("edit, match", [
    (lambda a: a.__setitem__("origin_position", -1), r"layers\[1\].origin_position: expected an integer >= 0"),
    (lambda a: a.__delitem__("origin_class"), "missing attribute 'origin_class'"),
    (lambda a: a.__setitem__("origin_position", 9), r"layers\[2\].origin: positions \(3,\) must increase.*\(previous 9\)"),
])
def test_bad_origins_are_named(float64, tmp_path, edit, match):
    import h5py

    path = training.export(trained_like_conv(np.random.default_rng(1)), tmp_path / "m.h5",
                           input_shape=(1, 8, 8), T=4)
    with h5py.File(path, "r+") as f:
        edit(_origin_attrs(f)[1])
    with pytest.raises(mf.ModelFormatError, match=match):
        mf.read_model(path)


def test_record_membrane_by_sequential_position(float64, tmp_path):
    """record_membrane_keys="sequential" names the LIF by its place in the user's network
    (BatchNorm and Dropout shift the model indices); the traces are that LIF's membrane."""
    import eventsim

    rng = np.random.default_rng(2)
    net = trained_like_conv(rng)
    path = training.export(net, tmp_path / "m.h5", input_shape=(1, 8, 8), T=4, dtype=np.float64)
    x = training.encoding.direct(rng.random((3, 1, 8, 8)), 4)
    sim = eventsim.Simulator(path, record_membrane={6: [0, 5, 9], 11: "all"},
                             record_membrane_keys="sequential")
    assert sim.membrane_layers == {6: 4, 11: 7}
    rec = sim.run(x)
    assert set(rec.membrane) == {4, 7}                     # the Recording uses model indices
    by_model = eventsim.Simulator(path, record_membrane={4: [0, 5, 9], 7: "all"}).run(x)
    np.testing.assert_array_equal(rec.membrane[4], by_model.membrane[4])
    for pos, layer in ((6, 4), (11, 7)):                    # the dense engine's LIF at net[pos]
        net.layers[pos].record = True
    net.forward(x)
    u6 = net.layers[6].membrane.reshape(4, 3, -1)[:, :, [0, 5, 9]]
    np.testing.assert_allclose(rec.membrane[4], u6, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rec.membrane[7], net.layers[11].membrane.reshape(4, 3, -1),
                               rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match=r"position 5 was folded into model layer 3"):
        eventsim.Simulator(path, record_membrane={5: "all"}, record_membrane_keys="sequential")
    with pytest.raises(ValueError, match=r"position 0 \(Conv2d\) is model layer 0, not a spiking "
                                         r"layer; spiking layers by position: \{2: 1, 6: 4, 11: 7\}"):
        eventsim.Simulator(path, record_membrane={0: "all"}, record_membrane_keys="sequential")
    with pytest.raises(ValueError, match=r"record_membrane\[6\]: neuron 999 outside"):
        eventsim.Simulator(path, record_membrane={6: [999]}, record_membrane_keys="sequential")
    with pytest.raises(ValueError, match="record_membrane_keys: must be 'model' or 'sequential'"):
        eventsim.Simulator(path, record_membrane={6: "all"}, record_membrane_keys="position")
