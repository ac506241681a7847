"""N-MNIST, AEDAT 3.1 and SHD readers and writers (eventsim.evformats): round trips,
hand-made byte strings written from the format descriptions, malformed and truncated
files (errors name the file and the field), overwrite protection, and fuzzing (random bytes
raise EventFormatError, never anything else)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventsim import evdata
from eventsim import evformats as F
from eventsim.evformats import EventFormatError


def _events(seed, n=300, W=34, H=34, P=2, t_max=300_000):
    rng = np.random.default_rng(seed)
    return evdata.make_events(rng.integers(0, W, n), rng.integers(0, H, n),
                              np.sort(rng.integers(0, t_max, n)), rng.integers(0, P, n))


# ---- N-MNIST ---------------------------------------------------------------------------
NMNIST_BYTES = (b"\x05\x07\x80\x01\x00"    # x=5, y=7, ON, t=0x000100 = 256 us
                b"\x00\xf0\x00\x00\x00"    # y=240: timestamp overflow, +8192 us from here
                b"\x01\x02\x00\x00\x0a"    # x=1, y=2, OFF, t=10 (+8192)
                b"\x21\x00\xff\xff\xff")   # x=33, y=0, ON, t=2**23 - 1 (+8192)


def test_nmnist_reads_the_bit_layout():
    ev = F.parse_nmnist(NMNIST_BYTES)
    assert ev.dtype == evdata.EVENT_DTYPE
    assert ev.tolist() == [(5, 7, 256, 1), (1, 2, 8202, 0), (33, 0, 2 ** 23 - 1 + 8192, 1)]


@pytest.mark.parametrize("seed", range(3))
def test_nmnist_round_trip(tmp_path, seed):
    ev = _events(seed)
    F.write_nmnist(tmp_path / "a.bin", ev)
    assert (tmp_path / "a.bin").stat().st_size == 5 * len(ev)
    np.testing.assert_array_equal(F.read_nmnist(tmp_path / "a.bin"), ev)


def test_nmnist_writer_follows_the_layout(tmp_path):
    ev = evdata.make_events([5, 33], [7, 0], [256, 2 ** 23 - 1], [1, 1])
    F.write_nmnist(tmp_path / "b.bin", ev)
    assert (tmp_path / "b.bin").read_bytes() == b"\x05\x07\x80\x01\x00\x21\x00\xff\xff\xff"


@pytest.mark.parametrize("data,match", [
    (NMNIST_BYTES[:-2], r"f.bin: truncated N-MNIST data: 18 bytes is not a multiple of 5"),
    (b"\x28\x00\x00\x00\x01", r"f.bin: events.x\[0\] = 40: outside the sensor"),
    (b"\x00\x00\x00\x00\x09\x00\x00\x00\x00\x05", r"f.bin: events.t\[1\] = 5: timestamps out of order"),
])
def test_nmnist_malformed(tmp_path, data, match):
    (tmp_path / "f.bin").write_bytes(data)
    with pytest.raises(EventFormatError, match=match):
        F.read_nmnist(tmp_path / "f.bin")


@pytest.mark.parametrize("ev,match", [
    (evdata.make_events([0], [0], [2 ** 23], [0]), r"t\[0\] = 8388608: timestamp overflows the 23-bit"),
    (evdata.make_events([0], [240], [0], [0]), r"y\[0\] = 240: y = 240 is the format's timestamp-overflow marker"),
    (evdata.make_events([300], [0], [0], [0]), r"x\[0\] = 300: outside the sensor"),
    (evdata.make_events([0], [0], [0], [2]), r"p\[0\] = 2: outside the sensor"),
])
def test_nmnist_writer_refuses_what_does_not_fit(tmp_path, ev, match):
    with pytest.raises(EventFormatError, match=match):
        F.write_nmnist(tmp_path / "x.bin", ev)
    assert not (tmp_path / "x.bin").exists()


# ---- AEDAT 3.1 -------------------------------------------------------------------------
HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
FRAME_PACKET = (b"\x02\x00\x01\x00" b"\x0c\x00\x00\x00" b"\x08\x00\x00\x00" b"\x00\x00\x00\x00"
                b"\x01\x00\x00\x00" b"\x01\x00\x00\x00" b"\x01\x00\x00\x00" + bytes(12))
POLARITY_PACKET = (b"\x01\x00\x01\x00"          # eventType 1 (polarity), eventSource 1
                   b"\x08\x00\x00\x00"          # eventSize 8
                   b"\x04\x00\x00\x00"          # eventTSOffset 4
                   b"\x01\x00\x00\x00"          # eventTSOverflow 1
                   b"\x02\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00"  # capacity 2, number 2, valid 1
                   b"\x17\x00\x06\x00\x64\x00\x00\x00"    # x=3, y=5, ON, valid; ts 100
                   b"\x16\x00\x06\x00\xc8\x00\x00\x00")   # same, valid bit clear; ts 200
AEDAT_BYTES = HEADER + FRAME_PACKET + POLARITY_PACKET


def test_aedat_reads_the_bit_layout():
    ev = F.parse_aedat(AEDAT_BYTES)
    assert ev.tolist() == [(3, 5, (1 << 31) | 100, 1)]   # the invalid event and frame skipped


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("packet_events", [1, 7, 4096])
def test_aedat_round_trip(tmp_path, seed, packet_events):
    ev = _events(seed, W=346, H=260)
    ev["t"][len(ev) // 2:] += (1 << 31) - 1000         # crosses an eventTSOverflow epoch
    F.write_aedat(tmp_path / "a.aedat", ev, packet_events=packet_events)
    np.testing.assert_array_equal(F.read_aedat(tmp_path / "a.aedat", sensor_size=(346, 260, 2)), ev)


def test_aedat_writer_follows_the_layout(tmp_path):
    ev = evdata.make_events([3], [5], [(1 << 31) | 100], [1])
    F.write_aedat(tmp_path / "w.aedat", ev, source="DVS128")
    data = (tmp_path / "w.aedat").read_bytes()
    assert data.startswith(b"#!AER-DAT3.1\r\n") and b"#!END-HEADER\r\n" in data
    body = data[data.index(b"#!END-HEADER\r\n") + 14:]
    assert body == (b"\x01\x00\x01\x00\x08\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00"
                    b"\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00"
                    b"\x17\x00\x06\x00\x64\x00\x00\x00")


def _patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


P0 = len(HEADER) + len(FRAME_PACKET)   # offset of the polarity packet


@pytest.mark.parametrize("data,match", [
    (b"#!AER-DAT2.0\r\n" + AEDAT_BYTES[len(b"#!AER-DAT3.1\r\n"):], r"header: AEDAT version '2.0' is not supported"),
    (b"hello", r"header: expected the first line '#!AER-DAT3.1'"),
    (HEADER[:-14], r"header: no '#!END-HEADER' line"),
    (b"#!AER-DAT3.1\r\nbad line\r\n#!END-HEADER\r\n", r"header line 2: does not start with '#'"),
    (AEDAT_BYTES[:P0 + 20], r"packet 1 \(byte \d+\): truncated packet header \(20 of 28 bytes\)"),
    (AEDAT_BYTES[:-3], r"packet 1 \(byte \d+\): truncated: 2 events of 8 bytes need 16 bytes, 13 left"),
    (_patch(AEDAT_BYTES, P0 + 16, b"\x05"), r"packet 1 .*eventCapacity = 5, eventNumber = 2"),
    (_patch(AEDAT_BYTES, P0 + 4, b"\x0c"), r"polarity packet with eventSize = 12"),
    (_patch(AEDAT_BYTES, P0 + 4, b"\x00"), r"eventSize = 0, eventTSOffset = 4"),
    (_patch(AEDAT_BYTES, P0 + 12, b"\xff\xff\xff\xff"), r"eventTSOverflow = -1: negative"),
    (_patch(AEDAT_BYTES, P0 + 28 + 4, b"\x00\x00\x00\x80"), r"event 0: timestamp = -2147483648: negative"),
    (AEDAT_BYTES + _patch(POLARITY_PACKET, 12, b"\x00"), r"events.t\[1\] = 100: timestamps out of order"),
])
def test_aedat_malformed(tmp_path, data, match):
    (tmp_path / "f.aedat").write_bytes(data)
    with pytest.raises(EventFormatError, match=r"f.aedat: (packet \d+ \(byte \d+\): )?" + match):
        F.read_aedat(tmp_path / "f.aedat")


def test_aedat_sensor_check():
    with pytest.raises(EventFormatError, match=r"events.y\[0\] = 5: outside the sensor"):
        F.parse_aedat(AEDAT_BYTES, sensor_size=(128, 5, 2))


# ---- SHD -------------------------------------------------------------------------------
def _shd_file(path, times, units, labels, times_dtype=np.float32):
    with h5py.File(path, "w") as f:
        g = f.create_group("spikes")
        t = g.create_dataset("times", (len(times),), dtype=h5py.vlen_dtype(times_dtype))
        u = g.create_dataset("units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
        for k, (a, b) in enumerate(zip(times, units)):
            t[k] = np.asarray(a, times_dtype)
            u[k] = np.asarray(b, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint16))
    return path


def test_shd_reads_the_layout(tmp_path):
    p = _shd_file(tmp_path / "s.h5", [[0.0, 0.0125, 0.5], []], [[3, 699, 0], []], [7, 19],
                  times_dtype=np.float64)
    samples, labels, size = F.read_shd(p)
    assert size == (700, 1, 1) and labels.tolist() == [7, 19]
    assert samples[0].tolist() == [(3, 0, 0, 0), (699, 0, 12500, 0), (0, 0, 500000, 0)]
    assert len(samples[1]) == 0


@pytest.mark.parametrize("seed", range(3))
def test_shd_round_trip(tmp_path, seed):
    rng = np.random.default_rng(seed)
    samples = [_events(seed + k, n=int(rng.integers(0, 200)), W=700, H=1, P=1, t_max=1_400_000)
               for k in range(5)]
    labels = rng.integers(0, 20, 5)
    F.write_shd(tmp_path / "s.h5", samples, labels)
    back, lab, size = F.read_shd(tmp_path / "s.h5")
    assert size == (700, 1, 1) and lab.tolist() == labels.tolist()
    for a, b in zip(back, samples):
        np.testing.assert_array_equal(a, b)
    with h5py.File(tmp_path / "s.h5") as f:   # the layout other readers expect
        assert f["spikes/times"].dtype.metadata["vlen"] == np.float32
        assert f["spikes/units"].dtype.metadata["vlen"] == np.uint16 and f["labels"].dtype == np.uint16


@pytest.mark.parametrize("times,units,labels,match", [
    ([[0.1]], [[1]], [1, 2], r"spikes/times, spikes/units and labels have 1, 1 and 2 entries"),
    ([[0.1, 0.2]], [[1]], [1], r"sample 0: 2 spikes/times but 1 spikes/units"),
    ([[0.1]], [[700]], [1], r"sample 0: spikes.x\[0\] = 700: outside the sensor"),
    ([[np.nan]], [[1]], [1], r"sample 0: spikes/times\[0\] = nan: expected a time in seconds"),
    ([[0.3, 0.1]], [[1, 2]], [1], r"sample 0: spikes.t\[1\] = 100000: timestamps out of order"),
    ([[-1.0]], [[1]], [1], r"sample 0: spikes/times\[0\] = -1.0"),
])
def test_shd_malformed(tmp_path, times, units, labels, match):
    p = _shd_file(tmp_path / "s.h5", times, units, labels)
    with pytest.raises(EventFormatError, match=r"s.h5(/|: )" + match):
        F.read_shd(p)


def test_shd_missing_dataset_and_not_hdf5(tmp_path):
    p = _shd_file(tmp_path / "s.h5", [[0.1]], [[1]], [1])
    with h5py.File(p, "a") as f:
        del f["labels"]
    with pytest.raises(EventFormatError, match=r"s.h5: missing dataset 'labels'"):
        F.read_shd(p)
    (tmp_path / "t.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(EventFormatError, match=r"t.h5: not a readable HDF5 file"):
        F.read_shd(tmp_path / "t.h5")
    with pytest.raises(FileNotFoundError, match=r"u.h5 does not exist"):
        F.read_shd(tmp_path / "u.h5")


def test_shd_truncated(tmp_path):
    samples = [_events(k, n=500, W=700, H=1, P=1) for k in range(4)]
    F.write_shd(tmp_path / "s.h5", samples, [0, 1, 2, 3])
    data = (tmp_path / "s.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[:len(data) // 2])
    with pytest.raises(EventFormatError, match=r"cut.h5: "):
        F.read_shd(tmp_path / "cut.h5")


# ---- writers: overwrite protection, atomicity -------------------------------------------
WRITERS = {
    "nmnist": lambda p, ev, **kw: F.write_nmnist(p, ev, **kw),
    "aedat": lambda p, ev, **kw: F.write_aedat(p, ev, **kw),
    "shd": lambda p, ev, **kw: F.write_shd(p, [_audio(ev)], [0], **kw),
}


def _audio(ev):
    out = ev.copy()
    out["y"], out["p"] = 0, 0
    return out


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_writers_never_overwrite_without_permission(tmp_path, fmt):
    write, p = WRITERS[fmt], tmp_path / f"x.{fmt}"
    write(p, _events(0))
    before = p.read_bytes()
    with pytest.raises(FileExistsError, match=r"x\.\w+ already exists"):
        write(p, _events(1))
    assert p.read_bytes() == before
    write(p, _events(1), overwrite=True)
    assert p.read_bytes() != before
    assert [q.name for q in tmp_path.iterdir()] == [p.name]   # no temporary files left


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_writers_never_replace_project_files(tmp_path, fmt):
    from eventsim.eventfile import save_events

    p = save_events(tmp_path / "ev.h5", [_events(0, n=5)], sensor_size=(34, 34, 2))
    before = p.read_bytes()
    with pytest.raises(FileExistsError, match=r"ev.h5 is an? event file"):
        WRITERS[fmt](p, _events(1), overwrite=True)
    assert p.read_bytes() == before


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "x.bin"
    F.write_nmnist(p, _events(0))
    before = p.read_bytes()

    def boom(self, data):
        raise OSError("disk full")
    monkeypatch.setattr(type(p), "write_bytes", boom)
    with pytest.raises(OSError, match="disk full"):
        F.write_nmnist(p, _events(1), overwrite=True)
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert [q.name for q in tmp_path.iterdir()] == ["x.bin"]


# ---- fuzzing: random bytes never escape as anything but EventFormatError ------------------
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_nmnist(data):
    try:
        ev = F.parse_nmnist(data)
    except EventFormatError:
        return
    assert ev.dtype == evdata.EVENT_DTYPE and len(ev) <= len(data) // 5


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_fuzz_aedat(data, with_header):
    try:
        ev = F.parse_aedat((HEADER if with_header else b"") + data)
    except EventFormatError:
        return
    assert ev.dtype == evdata.EVENT_DTYPE


@FUZZ
@given(st.integers(0, len(AEDAT_BYTES) - 1), st.integers(0, 255), st.integers(0, len(AEDAT_BYTES)))
def test_fuzz_aedat_mutations(pos, value, cut):
    data = _patch(AEDAT_BYTES, pos, bytes([value]))[:cut]
    try:
        F.parse_aedat(data)
    except EventFormatError:
        pass


@pytest.fixture(scope="module")
def shd_bytes(tmp_path_factory):
    p = tmp_path_factory.mktemp("shd") / "s.h5"
    F.write_shd(p, [_events(k, n=20, W=700, H=1, P=1) for k in range(3)], [0, 1, 2])
    return p.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_shd_mutations(tmp_path_factory, shd_bytes, data):
    pos = data.draw(st.integers(0, len(shd_bytes) - 1))
    value = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(shd_bytes)))
    p = tmp_path_factory.mktemp("fz") / "m.h5"
    p.write_bytes(_patch(shd_bytes, pos, bytes([value]))[:cut])
    try:
        samples, labels, _ = F.read_shd(p)
    except EventFormatError:
        return
    assert len(samples) == len(labels)


def test_aedat_writer_refuses_timestamps_past_62_bits(tmp_path):
    ev = evdata.make_events([0, 1], [0, 0], [5, 1 << 62], [0, 1])
    with pytest.raises(EventFormatError, match=r"events.t\[1\] = 4611686018427387904: timestamp "
                                               r"overflows the 62-bit range"):
        F.write_aedat(tmp_path / "x.aedat", ev)
    assert not (tmp_path / "x.aedat").exists()
    ok = evdata.make_events([0, 1], [0, 0], [5, (1 << 62) - 1], [0, 1])
    F.write_aedat(tmp_path / "x.aedat", ok)
    np.testing.assert_array_equal(F.read_aedat(tmp_path / "x.aedat"), ok)


@pytest.fixture(scope="module")
def event_file_bytes(tmp_path_factory):
    from eventsim.eventfile import save_events

    p = tmp_path_factory.mktemp("ef") / "e.h5"
    save_events(p, [_events(k, n=30) for k in range(3)], labels=[1, 2, 3], sensor_size=(34, 34, 2))
    return p.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_event_file_mutations(tmp_path_factory, event_file_bytes, data):
    """This project's own event file (eventsim.eventfile), damaged byte by byte or cut short:
    EventFileError, never another exception or a crash."""
    from eventsim.eventfile import EventFileError, load_events

    pos = data.draw(st.integers(0, len(event_file_bytes) - 1))
    value = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(event_file_bytes)))
    p = tmp_path_factory.mktemp("fz") / "m.h5"
    p.write_bytes(_patch(event_file_bytes, pos, bytes([value]))[:cut])
    try:
        ef = load_events(p)
    except EventFileError:
        return
    assert len(ef.events) == len(ef.labels) == 3
