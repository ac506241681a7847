"""Recordings: contents, HDF5 round trip, atomic save, validated load."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

import eventsim
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
        broken.save(p)
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["rec.h5"]  # no temporary left behind


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


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
