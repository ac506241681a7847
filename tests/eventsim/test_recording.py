"""Recordings: contents, HDF5 round trip, atomic save, validated load."""
from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest

import eventsim
from tests import hdf5edit
from snncore import modelfile as mf
from eventsim.recording import Recording, RecordingFormatError, SpikeTrain


def _model(rng):
    d = lambda *s: (rng.integers(-40, 80, size=s) / 256).astype(np.float32)
    return mf.Model(input_shape=(10,), T=7, encoding="rate",
                    layers=[mf.Dense(d(12, 10)), mf.Spiking(beta=0.5, theta=0.5, spikes="ternary"),
                            mf.Dense(d(9, 12)), mf.Spiking(beta=1.0, theta=0.5, reset="subtract"),
                            mf.Dense(d(4, 9), d(4)),
                            mf.Readout(time_weights=np.linspace(0.5, 1.5, 7).astype(np.float32))])


@pytest.fixture
def rec():
    rng = np.random.default_rng(0)
    x = (rng.random((7, 3, 10)) < 0.5).astype(np.float32)
    return eventsim.Simulator(_model(rng), record_membrane={1: [0, 5, 11], 3: "all"}).run(x)


def test_contents(rec):
    assert rec.readout.shape == (7, 3, 4) and rec.predictions.shape == (3,)
    assert set(rec.spikes) == {1, 3}
    assert rec.spikes[1].ternary and not rec.spikes[3].ternary
    assert set(np.unique(rec.spikes[1].value)) <= {-1, 1}
    assert rec.membrane[1].shape == (7, 3, 3) and rec.membrane[3].shape == (7, 3, 9)
    for st in rec.spikes.values():
        key = st.sample.astype(np.int64) * 7 + st.t
        assert np.all(np.diff(key) >= 0)     # grouped by (sample, t)
        s = st.sorted()
        key = (s.sample.astype(np.int64) * 7 + s.t) * st.n_neurons + s.neuron
        assert np.all(np.diff(key) > 0)
        np.testing.assert_array_equal(s.to_dense(7, 3), st.to_dense(7, 3))
    assert rec.spike_counts == {1: len(rec.spikes[1]), 3: len(rec.spikes[3])}
    syn = rec.synaptic_events
    assert syn["total"] == syn["layers[0]"] + syn["layers[2]"] + syn["layers[4]"]
    # dense rows: every input event reaches all 12 targets, every layer-1 spike all 9
    assert syn["layers[2]"] == 9 * len(rec.spikes[1])
    assert syn["layers[4]"] == 4 * len(rec.spikes[3])
    d = rec.spikes[1].to_dense(7, 3)
    assert d.shape == (7, 3, 12) and np.abs(d).sum() == len(rec.spikes[1])
    # spikes follow from the recorded membranes (theta = 0.5, u >= theta)
    u = rec.membrane[3]
    np.testing.assert_array_equal(rec.spikes[3].to_dense(7, 3), (u >= np.float32(0.5)).astype(np.int8))


def test_round_trip(rec, tmp_path):
    p = rec.save(tmp_path / "sub" / "rec.h5")
    back = Recording.load(p)
    np.testing.assert_array_equal(back.readout, rec.readout)
    np.testing.assert_array_equal(back.predictions, rec.predictions)
    np.testing.assert_array_equal(back.time_weights, rec.time_weights)
    assert back.synaptic_events == rec.synaptic_events
    for layer in rec.spikes:
        for name in ("sample", "t", "neuron"):
            np.testing.assert_array_equal(getattr(back.spikes[layer], name), getattr(rec.spikes[layer], name))
        assert back.spikes[layer].ternary == rec.spikes[layer].ternary
        assert back.spikes[layer].n_neurons == rec.spikes[layer].n_neurons
    np.testing.assert_array_equal(back.spikes[1].value, rec.spikes[1].value)
    for layer in rec.membrane:
        np.testing.assert_array_equal(back.membrane[layer], rec.membrane[layer])
        np.testing.assert_array_equal(back.membrane_neurons[layer], rec.membrane_neurons[layer])


def test_failed_save_keeps_existing_file(rec, tmp_path):
    p = rec.save(tmp_path / "rec.h5")
    before = p.read_bytes()
    broken = Recording(readout=rec.readout, predictions=rec.predictions, spikes=rec.spikes,
                       synaptic_events={"total": "many"})
    with pytest.raises(ValueError):
        broken.save(p, overwrite=True)
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["rec.h5"]  # no temporary left behind


def _edit(path, fn):
    hdf5edit.edit(path, fn)  # refreshes the digests: an edited file, not a damaged one


@pytest.mark.parametrize("edit, match", [
    (lambda f: f.attrs.__setitem__("format", "other"), "format.*other"),
    (lambda f: f.attrs.__setitem__("version", 7), "version 7"),
    (lambda f: f.attrs.__delitem__("T"), "missing attribute 'T'"),
    (lambda f: (f.__delitem__("readout"), f.create_dataset("readout", data=np.zeros((7, 3, 5), np.float32))),
     r"readout: expected shape \(7, 3, 4\)"),
    (lambda f: f["spikes/0003/neuron"].__setitem__(0, 9), r"spikes/0003/neuron: value 9 outside \[0, 9\)"),
    (lambda f: f["spikes/0001/t"].__setitem__(0, -1), r"spikes/0001/t: value -1 outside"),
    (lambda f: f["spikes/0001/value"].__setitem__(0, 3), "ternary spike values"),
    (lambda f: f["predictions"].__setitem__(0, 4), r"predictions: value 4 outside \[0, 4\)"),
    (lambda f: f["membrane/0001/values"].__setitem__((0, 0, 0), np.nan), "membrane/0001/values: non-finite"),
    (lambda f: f["membrane/0001"].__delitem__("neurons"), "missing dataset 'neurons'"),
    (lambda f: f.__delitem__("synaptic_events"), "missing group 'synaptic_events'"),
])
def test_load_validates(rec, tmp_path, edit, match):
    p = rec.save(tmp_path / "rec.h5")
    _edit(p, edit)
    with pytest.raises(RecordingFormatError, match=match):
        Recording.load(p)


def test_load_corrupt_and_missing(rec, tmp_path):
    p = rec.save(tmp_path / "rec.h5")
    data = p.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(data[:len(data) // 3])
    with pytest.raises(RecordingFormatError, match="trunc.h5"):
        Recording.load(tmp_path / "trunc.h5")
    with pytest.raises(FileNotFoundError):
        Recording.load(tmp_path / "none.h5")


def test_spike_train_to_dense_checks_bounds():
    st = SpikeTrain(sample=np.array([0, 1]), t=np.array([2, 0]), neuron=np.array([1, 3]), value=None,
                    n_neurons=4)
    d = st.to_dense(3, 2)
    assert d[2, 0, 1] == 1 and d[0, 1, 3] == 1 and d.sum() == 2
    with pytest.raises(ValueError, match="outside"):
        st.to_dense(2, 2)
    with pytest.raises(ValueError, match=r"T is not stored in this train; pass T=\.\.\."):
        st.to_dense()


def test_spike_train_knows_its_extent(rec):
    """The simulator stores T, the batch size and the layer shape: to_dense() needs nothing."""
    st = rec.spikes[1]
    assert (st.T, st.batch_size, st.shape, st.n_neurons) == (7, 3, (12,), 12)
    np.testing.assert_array_equal(st.to_dense(), st.to_dense(7, 3))
    assert st.to_dense().shape == (7, 3, 12)
    assert st.sorted().T == 7 and st.sorted().shape == (12,)
    with pytest.raises(ValueError, match="T=8 but the train has T=7"):
        st.to_dense(8, 3)
    with pytest.raises(ValueError, match="B=2 but the train has B=3"):
        st.to_dense(B=2)
    with pytest.raises(ValueError, match="n=5 but the train has n=12"):
        st.to_dense(n=5)
    with pytest.raises(ValueError, match="T must be an integer >= 1, got 0"):
        st.to_dense(T=0)
    with pytest.raises(ValueError, match=r"SpikeTrain.shape: \(2, 5\) holds 10 neurons"):
        SpikeTrain(sample=st.sample, t=st.t, neuron=st.neuron, value=None, n_neurons=12, shape=(2, 5))


def test_conv_spike_train_shape():
    rng = np.random.default_rng(1)
    w = (rng.integers(-40, 80, size=(2, 1, 3, 3)) / 64).astype(np.float32)
    model = mf.Model(input_shape=(1, 5, 5), T=3, encoding="direct",
                     layers=[mf.Conv2d(w), mf.Spiking(beta=0.5, theta=0.5), mf.Flatten(),
                             mf.Dense((rng.integers(-4, 4, size=(3, 18)) / 8).astype(np.float32)),
                             mf.Readout()])
    rec = eventsim.Simulator(model).run(rng.random((3, 2, 1, 5, 5)).astype(np.float32))
    assert rec.spikes[1].shape == (2, 3, 3) and rec.spikes[1].to_dense().shape == (3, 2, 18)


def test_extent_round_trip_and_old_files(rec, tmp_path):
    p = rec.save(tmp_path / "rec.h5")
    back = Recording.load(p)
    for layer, st in rec.spikes.items():
        b = back.spikes[layer]
        assert (b.T, b.batch_size, b.shape) == (st.T, st.batch_size, st.shape)
        np.testing.assert_array_equal(b.to_dense(), st.to_dense())
    _edit(p, lambda f: [f[f"spikes/{k}"].attrs.__delitem__("shape") for k in f["spikes"]])
    old = Recording.load(p)                     # a file written before shapes were stored
    assert old.spikes[3].shape is None and old.spikes[3].T == 7
    np.testing.assert_array_equal(old.spikes[3].to_dense(), rec.spikes[3].to_dense())
    _edit(p, lambda f: f["spikes/0003"].attrs.__setitem__("shape", np.array([2, 5])))
    with pytest.raises(RecordingFormatError, match=r"spikes/0003.shape: \(2, 5\) holds 10 neurons"):
        Recording.load(p)


def assert_same_recording(a: Recording, b: Recording) -> None:
    """Every field of two recordings equal (spike trains compared in (sample, t, neuron) order)."""
    np.testing.assert_array_equal(a.readout, b.readout)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    if a.time_weights is None or b.time_weights is None:
        assert a.time_weights is None and b.time_weights is None
    else:
        np.testing.assert_array_equal(a.time_weights, b.time_weights)
    assert a.synaptic_events == b.synaptic_events
    assert set(a.spikes) == set(b.spikes)
    for layer in a.spikes:
        sa, sb = a.spikes[layer].sorted(), b.spikes[layer].sorted()
        assert (sa.n_neurons, sa.ternary) == (sb.n_neurons, sb.ternary)
        for name in ("sample", "t", "neuron", "value"):
            x, y = getattr(sa, name), getattr(sb, name)
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)
                assert x.dtype == y.dtype
    assert set(a.membrane) == set(b.membrane)
    for layer in a.membrane:
        np.testing.assert_array_equal(a.membrane[layer], b.membrane[layer])
        np.testing.assert_array_equal(a.membrane_neurons[layer], b.membrane_neurons[layer])


def test_concatenate_batches_equals_one_run(tmp_path):
    rng = np.random.default_rng(1)
    model = _model(rng)
    x = (rng.random((7, 8, 10)) < 0.5).astype(np.float32)
    sim = eventsim.Simulator(model, record_membrane={1: [0, 5, 11], 3: "all"})
    whole = sim.run(x)
    parts = [sim.run(x[:, a:b]) for a, b in ((0, 3), (3, 4), (4, 8))]
    joined = Recording.concatenate(parts)
    assert joined.batch_size == 8 and len(joined.spikes[1]) == len(whole.spikes[1]) > 0
    assert_same_recording(joined, whole)
    assert joined.elapsed_s == pytest.approx(sum(p.elapsed_s for p in parts))
    assert_same_recording(Recording.load(joined.save(tmp_path / "r.h5")), whole)
    assert_same_recording(Recording.concatenate([whole]), whole)


def test_concatenate_refuses_different_recordings():
    rng = np.random.default_rng(2)
    model = _model(rng)
    x = (rng.random((7, 2, 10)) < 0.5).astype(np.float32)
    a = eventsim.Simulator(model, record_membrane={1: [0, 5]}).run(x)
    with pytest.raises(ValueError, match="no recordings"):
        Recording.concatenate([])
    with pytest.raises(ValueError, match=r"recording 1 has membrane_neurons\[1\] \[0, 6\]"):
        Recording.concatenate([a, eventsim.Simulator(model, record_membrane={1: [0, 6]}).run(x)])
    with pytest.raises(ValueError, match="recording 1 has T 5, the first has 7"):
        Recording.concatenate([a, dataclasses.replace(a, readout=a.readout[:5])])
    with pytest.raises(ValueError, match="recording 1 has time_weights None"):
        Recording.concatenate([a, dataclasses.replace(a, time_weights=None)])
    with pytest.raises(TypeError, match="expected Recordings"):
        Recording.concatenate([a, {"readout": 1}])
