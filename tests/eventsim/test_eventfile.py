"""Event files (eventsim.inputs.save_events / load_events): round trip, validation, atomicity."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from eventsim import inputs
from eventsim.inputs import EventFileError, from_tonic, load_events, save_events

SENSOR = (5, 4, 2)  # W, H, P
DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])


def _sample(rng, n, sensor=SENSOR, dtype=DTYPE):
    W, H, P = sensor
    ev = np.zeros(n, dtype)
    ev["x"], ev["t"] = rng.integers(0, W, n), np.sort(rng.integers(0, 50_000, n))
    if "y" in dtype.names:
        ev["y"] = rng.integers(0, H, n)
    if "p" in dtype.names:
        ev["p"] = rng.integers(0, P, n)
    return ev


def _samples(seed=0, sizes=(30, 0, 12, 7)):
    rng = np.random.default_rng(seed)
    return [_sample(rng, n) for n in sizes]


def _same_events(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for f in ("x", "y", "t", "p"):
            np.testing.assert_array_equal(x[f], y[f])


def test_round_trip(tmp_path):
    evs, labels = _samples(), [3, 0, 9, 1]
    p = save_events(tmp_path / "sub" / "ev.h5", evs, labels, SENSOR, dt=2500)
    f = load_events(p)
    assert len(f) == 4 and f.sensor_size == SENSOR and f.dt == 2500.0 and f.path == str(p)
    np.testing.assert_array_equal(f.labels, labels)
    assert f.labels.dtype == np.int64
    _same_events(f.events, evs)
    a, b = f.to_batch(2500, T=12, start=1, stop=4), from_tonic(evs[1:], SENSOR, 2500, T=12)
    assert a.input_shape == (2, 4, 5) and a.batch_size == 3
    for name in ("times", "indices", "values", "sample_ptr"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    with h5py.File(p, "r") as h:  # plain numeric columns with checksums, no pickle
        assert h.attrs["format"] == "snn-events" and h["events/x"].fletcher32
        assert h["events/sample"][()].tolist() == [0] * 30 + [2] * 12 + [3] * 7


def test_round_trip_without_labels_y_p_and_with_float_or_signed_fields(tmp_path):
    rng = np.random.default_rng(1)
    audio = np.dtype([("x", "<i4"), ("t", "<f8")])
    evs = [_sample(rng, 9, (700, 1, 1), audio) for _ in range(3)]
    f = load_events(save_events(tmp_path / "a.h5", evs, sensor_size=(700, 1, 1)))
    assert f.labels is None and f.dt is None and f.events[0]["t"].dtype == np.float64
    np.testing.assert_array_equal(f.events[2]["t"], evs[2]["t"])
    assert not f.events[0]["y"].any() and not f.events[0]["p"].any()
    signed = _samples(2, (6,))
    signed[0]["p"] = np.where(signed[0]["p"] == 0, -1, 1)
    f = load_events(save_events(tmp_path / "s.h5", signed, [2], SENSOR))
    assert set(f.events[0]["p"].tolist()) <= {-1, 1}
    np.testing.assert_array_equal(f.to_batch(1000).indices, from_tonic(signed, SENSOR, 1000).indices)


def test_compressed_by_default_smaller_and_identical(tmp_path):
    """Deflate (after shuffle) is the default; both settings read back the same events."""
    rng = np.random.default_rng(1)
    evs = [_sample(rng, n) for n in (3000, 2000, 4000)]
    packed = save_events(tmp_path / "gz.h5", evs, [1, 2, 3], SENSOR)
    plain = save_events(tmp_path / "raw.h5", evs, [1, 2, 3], SENSOR, compression="none")
    with h5py.File(packed, "r") as h:
        assert h["events/x"].compression == "gzip" and h["events/x"].shuffle
        assert h["events/x"].fletcher32
    with h5py.File(plain, "r") as h:
        assert h["events/x"].compression is None
    assert packed.stat().st_size < 0.5 * plain.stat().st_size
    a, b = load_events(packed), load_events(plain)
    _same_events(a.events, evs)
    _same_events(b.events, evs)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_no_samples(tmp_path):
    f = load_events(save_events(tmp_path / "e.h5", [], [], SENSOR))
    assert len(f) == 0 and f.labels.shape == (0,)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sensor_size=None), "sensor_size=.*required"),
    (dict(sensor_size=(5, 0, 2)), "sensor_size: expected three sizes >= 1"),
    (dict(labels=[1, 2]), "2 labels for 4 samples"),
    (dict(labels=[1, 2, -3, 0]), r"labels\[2\] = -3"),
    (dict(labels=[0.5, 1, 2, 3]), "labels: expected a 1-D integer array"),
    (dict(dt=0), "dt must be a finite bin width > 0"),
    (dict(compression="lzf"), "compression must be one of gzip, none, got 'lzf'"),
])
def test_writer_refuses_bad_arguments(tmp_path, kwargs, match):
    args = dict(labels=None, sensor_size=SENSOR) | kwargs
    with pytest.raises(EventFileError, match=match):
        save_events(tmp_path / "e.h5", _samples(), **args)
    assert not any(tmp_path.iterdir())  # nothing written, no temporary left


def test_writer_names_the_bad_sample_field_and_value(tmp_path):
    evs = _samples()
    evs[2]["x"][4] = 5
    with pytest.raises(EventFileError, match=r"events\[2\]\.x\[4\] = 5: outside the sensor"):
        save_events(tmp_path / "e.h5", evs, sensor_size=SENSOR)
    with pytest.raises(EventFileError, match="list of per-sample structured arrays"):
        save_events(tmp_path / "e.h5", _samples()[0], sensor_size=SENSOR)
    p = save_events(tmp_path / "e.h5", _samples(), sensor_size=SENSOR)
    before = p.read_bytes()
    evs = _samples()
    evs[0]["t"][3] = -1
    with pytest.raises(EventFileError, match=r"events\[0\]\.t"):
        save_events(p, evs, sensor_size=SENSOR)
    assert p.read_bytes() == before and sorted(x.name for x in tmp_path.iterdir()) == ["e.h5"]


def _replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


@pytest.mark.parametrize("edit, match", [
    (lambda f: f.attrs.__setitem__("format", "snn-recording"), r"ev\.h5\.format: expected 'snn-events'"),
    (lambda f: f.attrs.__setitem__("version", 3), r"ev\.h5\.version: unsupported version 3"),
    (lambda f: f.attrs.__delitem__("n_samples"), "missing attribute 'n_samples'"),
    (lambda f: f.attrs.__setitem__("sensor_size", [5, 4]), "sensor_size: expected three sizes"),
    (lambda f: f.attrs.__setitem__("sensor_size", [5.5, 4, 2]), "sensor_size: expected integers"),
    (lambda f: f.attrs.__setitem__("dt", -2.0), r"\.dt: expected a bin width > 0"),
    (lambda f: f["events"].__delitem__("p"), "ev.h5/events: missing dataset 'p'"),
    (lambda f: _replace(f, "events/y", np.zeros(3, np.int32)), "events/y: 3 entries, /events/sample has 49"),
    (lambda f: _replace(f, "events/x", np.full(49, 1.5)), "events/x: expected a 1-D integer array, got float64"),
    (lambda f: _replace(f, "events/t", np.array([b"a"] * 49)), "events/t: expected a 1-D numeric array"),
    (lambda f: f["events/sample"].__setitem__(0, 7), r"events/sample\[0\] = 7: outside \[0, 4\)"),
    (lambda f: f["events/sample"].__setitem__(31, 0), r"events/sample\[31\] = 0: follows sample 2"),
    (lambda f: f["events/x"].__setitem__(33, 9), r"ev\.h5: events\[2\]\.x\[3\] = 9: outside the sensor"),
    (lambda f: f["events/t"].__setitem__(1, 10**9), r"ev\.h5: events\[0\]\.t\[2\] = .*not sorted"),
    (lambda f: f["events/p"].__setitem__(0, 2), r"events\[0\]\.p\[0\] = 2: polarity outside"),
    (lambda f: _replace(f, "labels", np.arange(3)), "ev.h5/labels: 3 labels for 4 samples"),
    (lambda f: f["labels"].__setitem__(1, -1), r"labels\[1\] = -1: labels must be >= 0"),
])
def test_reader_names_file_field_and_value(tmp_path, edit, match):
    p = save_events(tmp_path / "ev.h5", _samples(), [1, 2, 3, 4], SENSOR)
    with h5py.File(p, "r+") as f:
        edit(f)
    with pytest.raises(EventFileError, match=match):
        load_events(p)


def test_reader_missing_damaged_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="event file .* does not exist"):
        load_events(tmp_path / "none.h5")
    (tmp_path / "text.h5").write_text("x, y, t, p\n")
    with pytest.raises(EventFileError, match="text.h5: not a readable HDF5 file"):
        load_events(tmp_path / "text.h5")
    p = save_events(tmp_path / "ev.h5", _samples(sizes=(4000,)), None, SENSOR)
    data = bytearray(p.read_bytes())
    with h5py.File(p, "r") as f:
        offset = f["events/t"].id.get_offset() if f["events/t"].chunks is None else \
            f["events/t"].id.get_chunk_info(0).byte_offset
    data[offset + 100] ^= 0xFF  # one flipped byte inside the timestamps
    p.write_bytes(bytes(data))
    with pytest.raises(EventFileError, match="ev.h5/events/t: damaged"):
        load_events(p)


def test_exported_from_inputs():
    assert {"save_events", "load_events", "EventFile", "EventFileError"} <= set(inputs.__all__)


def test_writer_never_replaces_another_kind_and_needs_overwrite(tmp_path):
    """An event file never replaces a model (or any other kind); an existing event file
    only with ``overwrite=True``; the victim stays byte-identical."""
    from tests.eventsim.test_network import small_mlp
    from snncore import modelfile as mf

    model = mf.write_model(small_mlp(), tmp_path / "model.h5")
    before = model.read_bytes()
    events = _samples()
    with pytest.raises(FileExistsError, match="is a model file; refusing to replace it"):
        save_events(model, events, sensor_size=SENSOR)
    with pytest.raises(FileExistsError, match="is a model file"):
        save_events(model, events, sensor_size=SENSOR, overwrite=True)
    assert model.read_bytes() == before
    path = save_events(tmp_path / "ev.h5", events, sensor_size=SENSOR)
    with pytest.raises(FileExistsError, match="already exists"):
        save_events(path, events[:2], sensor_size=SENSOR)
    save_events(path, events[:2], sensor_size=SENSOR, overwrite=True)
    assert len(load_events(path).events) == 2
