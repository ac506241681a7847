"""Current-based (CUBA) LIF populations: training.CubaLIF exported to the model file (format
version 4, ``Spiking.alpha``) and run by the event simulator with the dense engine's bits."""
import dataclasses

import numpy as np
import pytest

import eventsim
import training
from snncore import modelfile as mf
from training import CubaLIF

RESETS = ("subtract", "hard")


def dyadic(rng, shape, lo, hi, den):
    return rng.integers(lo, hi, shape) / den


def cuba_net(rng, dtype, reset, recurrent):
    """Linear -> CubaLIF -> Linear -> CubaLIF (per-neuron alpha) -> Linear; weights, biases,
    alpha and beta dyadic with few bits (alpha and beta powers of two), so both engines' sums
    are exact."""
    alpha2 = np.array([0.0, 0.25, 0.5, 1.0] * 3 + [0.5, 0.5])[:10]
    with training.default_dtype(dtype):
        net = training.Sequential(
            training.Linear(12, 16, rng=rng),
            CubaLIF(0.5, 0.5, reset=reset, recurrent=recurrent, features=16, rng=rng),
            training.Linear(16, 10, rng=rng),
            CubaLIF(alpha2, 1.0, threshold=0.75, reset="hard" if reset == "subtract" else
                    "subtract", v_reset=-0.25, recurrent=recurrent, features=10, rng=rng),
            training.Linear(10, 4, rng=rng)).eval()
    for layer in net.layers[::2]:
        layer.weight.data[...] = dyadic(rng, layer.weight.data.shape, -12, 17, 16)
        layer.bias.data[...] = dyadic(rng, layer.bias.data.shape, -4, 5, 16)
    if recurrent:
        for layer in net.layers[1::2]:
            layer.recurrent_weight.data[...] = dyadic(rng, layer.recurrent_weight.shape, -10, 9, 16)
            layer.bias.data[...] = dyadic(rng, layer.bias.shape, -4, 5, 16)
    return net


def dense_run(net, x):
    """The dense engine's spikes of each CubaLIF (by Sequential position), its membranes
    before reset, and the readout's per-step input."""
    out, spikes, mem = x, {}, {}
    for i, layer in enumerate(net.layers):
        if isinstance(layer, CubaLIF):
            layer.record = True
        out = layer.forward(out)
        if isinstance(layer, CubaLIF):
            spikes[i], mem[i] = out, layer.membrane
            layer.record = False
    return spikes, mem, out


def inputs(rng, encoding, dtype, T, B, shape=(12,)):
    images = (rng.integers(0, 9, (B,) + shape) / 8).astype(dtype)
    if encoding == "direct":
        return training.encoding.direct(images, T, dtype=dtype)
    return training.encoding.rate(images, T, rng=np.random.default_rng(2), dtype=dtype)


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("encoding", ["direct", "rate"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_export_simulator_gives_dense_bits(dtype, encoding, reset, recurrent):
    """Every schedule that applies gives exactly the dense engine's spikes, membranes and
    readout, with a static analog input and with a spike input."""
    rng = np.random.default_rng(31)
    net = cuba_net(rng, dtype, reset, recurrent)
    T, B = 10, 40
    x = inputs(rng, encoding, dtype, T, B)
    spikes, mem, y = dense_run(net, x)
    model = training.to_model(net, input_shape=(12,), T=T, encoding=encoding, dtype=dtype)
    assert [l.kind for l in model.layers] == ["dense", "spiking", "dense", "spiking", "dense",
                                              "readout"]
    assert model.layers[1].alpha == 0.5 and model.layers[3].alpha.dtype == dtype
    assert len(model.connections) == (2 if recurrent else 0)
    schedules = ("auto", "time") if recurrent else ("auto", "time", "layer")
    for schedule in schedules:
        for drive, leak in (("step", "repeat"), ("predict", "power")):
            sim = eventsim.Simulator(model, n_threads=1, schedule=schedule, constant_drive=drive,
                                     leak=leak, record_membrane={1: "all", 3: [0, 3, 9]})
            rec = sim.run(x)
            for pos in (1, 3):
                np.testing.assert_array_equal(rec.spikes[pos].to_dense(T, B), spikes[pos])
                assert 0.02 < spikes[pos].mean() < 0.9
            np.testing.assert_array_equal(rec.membrane[1], mem[1])
            np.testing.assert_array_equal(rec.membrane[3], mem[3][:, :, [0, 3, 9]])
            np.testing.assert_array_equal(rec.readout, y)


def test_synaptic_current_matters():
    """The same model without alpha (plain LIF) gives other spikes: the test above can fail."""
    rng = np.random.default_rng(31)
    net = cuba_net(rng, np.float64, "subtract", False)
    x = inputs(rng, "direct", np.float64, 10, 40)
    spikes, _, _ = dense_run(net, x)
    model = training.to_model(net, input_shape=(12,), T=10, dtype=np.float64)
    layers = [dataclasses.replace(l, alpha=None) if isinstance(l, mf.Spiking) else l
              for l in model.layers]
    rec = eventsim.Simulator(dataclasses.replace(model, layers=layers), n_threads=1).run(x)
    assert not np.array_equal(rec.spikes[1].to_dense(10, 40), spikes[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_population_with_per_neuron_alpha(dtype):
    """A CubaLIF on a conv feature map (stored channel-last inside the simulator) with one
    alpha and beta per neuron: the per-neuron values follow the neurons' permutation."""
    rng = np.random.default_rng(33)
    F = 3 * 4 * 4
    alpha = rng.choice([0.0, 0.25, 0.5, 1.0], F)
    beta = rng.choice([0.25, 0.5, 1.0], F)
    with training.default_dtype(dtype):
        net = training.Sequential(
            training.Conv2d(1, 3, 3, padding=1, rng=rng), training.AvgPool2d(2),
            CubaLIF(alpha, beta, threshold=0.5, features=F), training.Flatten(),
            training.Linear(F, 5, rng=rng)).eval()
    for layer in (net.layers[0], net.layers[4]):
        layer.weight.data[...] = dyadic(rng, layer.weight.data.shape, -8, 9, 8)
        layer.bias.data[...] = dyadic(rng, layer.bias.data.shape, -2, 3, 8)
    T, B = 8, 12
    for encoding in ("direct", "rate"):
        x = inputs(rng, encoding, dtype, T, B, (1, 8, 8))
        spikes, _, y = dense_run(net, x)
        model = training.to_model(net, input_shape=(1, 8, 8), T=T, encoding=encoding,
                                  dtype=dtype)
        for schedule in ("time", "layer"):
            rec = eventsim.Simulator(model, n_threads=1, schedule=schedule).run(x)
            np.testing.assert_array_equal(rec.spikes[2].to_dense(T, B),
                                          spikes[2].reshape(T, B, F))
            assert 0.02 < spikes[2].mean() < 0.9
            np.testing.assert_array_equal(rec.readout, y)


@pytest.mark.parametrize("recurrent", [False, True])
def test_model_file_round_trip_and_to_network(tmp_path, recurrent):
    """alpha is written as format version 4 (per layer: an attribute; per neuron: a dataset),
    read back unchanged, and to_network rebuilds CubaLIF layers computing the same bits."""
    rng = np.random.default_rng(34)
    net = cuba_net(rng, np.float32, "subtract", recurrent)
    path = training.export(net, tmp_path / "c.h5", input_shape=(12,), T=6)
    import h5py
    with h5py.File(path) as f:
        assert f.attrs["version"] == mf.FORMAT_VERSION_ALPHA == 4
        assert f["layers/0001"].attrs["alpha"] == 0.5 and "alpha" in f["layers/0003"]
        assert "alpha" not in f["layers/0002"].attrs and "alpha" not in f["layers/0002"]
    model = mf.read_model(path)
    assert model.layers[1].alpha == 0.5
    np.testing.assert_array_equal(model.layers[3].alpha, net.layers[3].alpha.astype(np.float32))
    assert model.origins[3].cls == "CubaLIF"
    rebuilt = training.to_network(model)
    assert isinstance(rebuilt.layers[1], CubaLIF) and rebuilt.layers[1].recurrent == recurrent
    x = inputs(rng, "direct", np.float32, 6, 16)
    np.testing.assert_array_equal(rebuilt.forward(x), net.forward(x))


def test_files_without_alpha_stay_version_3(tmp_path):
    """A model without a synaptic current is written as before (version 3, no alpha), so the
    readers that know only versions 1-3 still read it."""
    net = training.Sequential(training.Linear(4, 3), training.LIF(beta=0.5),
                              training.Linear(3, 2))
    path = training.export(net, tmp_path / "l.h5", input_shape=(4,), T=3)
    import h5py
    with h5py.File(path) as f:
        assert f.attrs["version"] == 3 and "alpha" not in f["layers/0001"].attrs
    assert mf.read_model(path).layers[1].alpha is None


def test_old_files_still_read():
    """The version 1 files in tests/data read unchanged: no alpha anywhere."""
    from pathlib import Path
    data = Path(__file__).resolve().parents[1] / "data"
    for name in ("fmnist_mlp.h5", "fmnist_conv.h5"):
        model = mf.read_model(data / name)
        assert all(l.alpha is None for l in model.layers if isinstance(l, mf.Spiking))
        assert not eventsim.load(model).pops["cuba"].any()


def test_old_reader_refuses_a_new_file(tmp_path, monkeypatch):
    """A reader that knows versions 1-3 refuses a version 4 file, naming the version."""
    net = cuba_net(np.random.default_rng(35), np.float32, "hard", False)
    path = training.export(net, tmp_path / "c.h5", input_shape=(12,), T=4)
    monkeypatch.setattr(mf, "READABLE_VERSIONS", (1, 2, 3))
    with pytest.raises(mf.ModelFormatError, match=r"unsupported version 4; this reader knows "
                                                  r"1, 2, 3"):
        mf.read_model(path)


@pytest.mark.parametrize("alpha, match", [
    (1.5, r"layers\[1\]\(spiking\)\.alpha"),
    (-0.25, r"layers\[1\]\(spiking\)\.alpha"),
    (float("nan"), r"layers\[1\]\(spiking\)\.alpha"),
    (np.array([0.5, 1.25, 0.0]), r"layers\[1\]\(spiking\)\.alpha: value 1.25 at neuron 1"),
    (np.array([0.5, 0.5]), r"layers\[1\]\(spiking\)\.alpha: expected shape \(3,\)"),
])
def test_bad_alpha_raises_naming_the_field(tmp_path, alpha, match):
    model = mf.Model(input_shape=(4,), T=2, layers=[
        mf.Dense(np.ones((3, 4), np.float32)), mf.Spiking(beta=0.5, theta=1.0, alpha=alpha),
        mf.Dense(np.ones((2, 3), np.float32)), mf.Readout()])
    with pytest.raises(ValueError, match=match):
        mf.validate(model)
    with pytest.raises(ValueError, match=match):
        mf.write_model(model, tmp_path / "bad.h5")
    with pytest.raises(ValueError, match=match):
        eventsim.Simulator(model)


def test_to_network_refuses_what_cubalif_does_not_compute():
    model = training.to_model(cuba_net(np.random.default_rng(36), np.float32, "hard", False),
                              input_shape=(12,), T=4)
    layers = list(model.layers)
    layers[1] = dataclasses.replace(layers[1], spikes="ternary")
    with pytest.raises(ValueError, match="layer 1: a spiking layer with alpha needs binary"):
        training.to_network(dataclasses.replace(model, layers=layers))


def test_info_shows_alpha(tmp_path, capsys):
    """``eventsim info`` lists a current-based layer's alpha (a per-neuron range as [min,
    max]) and the format version 4."""
    import json

    from eventsim import cli
    net = cuba_net(np.random.default_rng(37), np.float32, "hard", True)
    path = str(training.export(net, tmp_path / "c.h5", input_shape=(12,), T=4))
    assert cli.main(["info", path, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["version"] == 4 and d["layers"][1]["alpha"] == 0.5
    assert d["layers"][3]["alpha"] == [0.0, 1.0] and "alpha" not in d["layers"][0]
    assert cli.main(["info", path]) == 0
    text = capsys.readouterr().out
    assert "alpha=0.5 beta=0.5" in text and "alpha=[0, 1] beta=1" in text


def test_alpha_zero_is_the_plain_lif():
    """alpha = 0 (every step) gives the plain, lazily updated LIF's spikes and readout."""
    rng = np.random.default_rng(38)
    model = training.to_model(cuba_net(rng, np.float32, "subtract", True), input_shape=(12,),
                              T=10)
    plain = [dataclasses.replace(l, alpha=None) if isinstance(l, mf.Spiking) else l
             for l in model.layers]
    zero = [dataclasses.replace(l, alpha=0.0) if isinstance(l, mf.Spiking) else l
            for l in model.layers]
    x = inputs(rng, "rate", np.float32, 10, 32)
    a = eventsim.Simulator(dataclasses.replace(model, layers=plain), n_threads=1).run(x)
    b = eventsim.Simulator(dataclasses.replace(model, layers=zero), n_threads=1).run(x)
    for pos in (1, 3):
        np.testing.assert_array_equal(a.spikes[pos].to_dense(10, 32),
                                      b.spikes[pos].to_dense(10, 32))
    np.testing.assert_array_equal(a.readout, b.readout)
    assert a.spikes[1].to_dense(10, 32).any()
