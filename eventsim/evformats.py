"""Readers and writers of three public event-data formats (:mod:`eventsim.evdata` arrays).

N-MNIST binary (``.bin``, also N-Caltech101), one recording per file, 5 bytes per event,
big-endian bit fields::

    byte 0: x (8 bits)   byte 1: y (8 bits)
    bytes 2-4: bit 23 polarity (1 = ON), bits 22-0 timestamp in microseconds

An event with ``y == 240`` is a timestamp-overflow marker, not an event: it and every later
event gain 2**13 us (the dataset authors' reader does the same).

SHD (Spiking Heidelberg Digits) HDF5, many samples per file::

    /spikes/times   [N] variable-length float arrays, spike times in seconds
    /spikes/units   [N] variable-length integer arrays, channel of each spike (0..699)
    /labels         [N] integer class of each sample

read as recordings with ``x = unit``, ``y = p = 0``, ``t = round(times * 1e6)``, sensor
``(n_units, 1, 1)``.

AEDAT 3.1 (jAER/cAER/DV), one recording per file: text header lines starting with ``#``
(the first ``#!AER-DAT3.1``, the last ``#!END-HEADER``, each ending in CR LF), then event
packets, little-endian.  Each packet: a 28-byte header of int16 ``eventType``, int16
``eventSource``, then int32 ``eventSize``, ``eventTSOffset``, ``eventTSOverflow``,
``eventCapacity``, ``eventNumber``, ``eventValid``; then ``eventCapacity`` events of
``eventSize`` bytes.  Polarity events (type 1) are 8 bytes: a uint32 data word (bit 0 valid
mark, bit 1 polarity, bits 2-16 y, bits 17-31 x) and an int32 timestamp (us, >= 0); the full
timestamp is ``eventTSOverflow << 31 | timestamp``.  Packets of other types and invalid
events are skipped.

Readers check every field and raise :class:`EventFormatError` (a ValueError) naming the
file, the field and the value: truncated files, bad headers, coordinates outside the
sensor, timestamps out of order or overflowing.  ``parse_nmnist``/``parse_aedat`` read
bytes, for data not in a file.  Writers refuse to replace an existing file unless
``overwrite=True`` (and never replace this project's models, checkpoints, recordings or
event files) and write atomically (:func:`snncore.fileio.atomic_output`).
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from snncore.fileio import HDF5_LIBVER, atomic_output, check_output, file_kind

from .evdata import check_events, make_events, sensor

__all__ = ["EventFormatError", "NMNIST_SENSOR", "SHD_UNITS", "parse_nmnist", "read_nmnist",
           "write_nmnist", "read_shd", "write_shd", "parse_aedat", "read_aedat", "write_aedat"]


class EventFormatError(ValueError):
    """A malformed event-data file; the message names the file, the field and the value."""


NMNIST_SENSOR = (34, 34, 2)
NMNIST_OVERFLOW_Y = 240
NMNIST_OVERFLOW_US = 1 << 13
NMNIST_MAX_T = (1 << 23) - 1
SHD_UNITS = 700
AEDAT_MAGIC = b"#!AER-DAT3.1"
AEDAT_END = b"#!END-HEADER\r\n"
AEDAT_PACKET = struct.Struct("<hhiiiiii")   # the 28-byte packet header
POLARITY_EVENT = 1
MAX_HEADER_BYTES = 1 << 20


def _read_bytes(path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"event file {path} does not exist" if not path.exists()
                                else f"{path} is not a file")
    return path.read_bytes()


def _checked(ev_cols, sensor_size, where: str) -> np.ndarray:
    """make_events + check_events, with errors re-raised as EventFormatError."""
    try:
        return check_events(make_events(*ev_cols, where=where), sensor_size, where)
    except EventFormatError:
        raise
    except ValueError as e:
        raise EventFormatError(str(e)) from None


def _target(path, overwrite: bool, kind: str | None = None) -> Path:
    """Where a writer may write: never over a directory or this project's models,
    checkpoints, recordings or event files; over anything else only with ``overwrite``
    (FileExistsError naming the path otherwise).  ``kind="hdf5"``: never over a file that
    is not HDF5 either."""
    path = Path(path)
    existing = file_kind(path)
    if existing in (None, "empty"):
        return path
    if kind is not None:
        return check_output(path, kind, overwrite)
    if existing in ("directory", "model", "checkpoint", "recording", "events"):
        raise FileExistsError(f"{path} is a {existing if existing != 'events' else 'event file'}"
                              "; refusing to replace it (choose another path)")
    if not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (--overwrite on "
                              "the command line) to replace it")
    return path


# ---------------------------------------------------------------------------------------
# N-MNIST
# ---------------------------------------------------------------------------------------
def parse_nmnist(data: bytes, sensor_size=NMNIST_SENSOR, where: str = "<bytes>") -> np.ndarray:
    """Events of N-MNIST binary data (see the module docstring); returns :data:`EVENT_DTYPE`.

    Raises EventFormatError: a length that is not a multiple of 5 (truncated), coordinates
    outside ``sensor_size``, timestamps out of order.
    """
    size = sensor(sensor_size)
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    if len(raw) % 5:
        raise EventFormatError(f"{where}: truncated N-MNIST data: {len(raw)} bytes is not a "
                               f"multiple of 5 (event {len(raw) // 5} has {len(raw) % 5} bytes)")
    r = raw.reshape(-1, 5).astype(np.int64)
    x, y = r[:, 0], r[:, 1]
    p = r[:, 2] >> 7
    t = ((r[:, 2] & 0x7F) << 16) | (r[:, 3] << 8) | r[:, 4]
    marker = y == NMNIST_OVERFLOW_Y
    t = t + NMNIST_OVERFLOW_US * np.cumsum(marker)
    keep = ~marker
    return _checked((x[keep], y[keep], t[keep], p[keep]), size, f"{where}: events")


def read_nmnist(path, sensor_size=NMNIST_SENSOR) -> np.ndarray:
    """Events of an N-MNIST ``.bin`` file (:func:`parse_nmnist`)."""
    return parse_nmnist(_read_bytes(path), sensor_size, str(path))


def write_nmnist(path, events, overwrite: bool = False) -> Path:
    """Write one recording as an N-MNIST ``.bin`` file, atomically.

    Raises EventFormatError naming the field and event when a value does not fit the
    format: ``x``/``y`` outside ``[0, 255]``, ``y == 240`` (the overflow marker), ``p``
    outside ``{0, 1}``, ``t`` past the 23-bit field (``>= 2**23`` us).
    """
    ev = _checked_for_writing(events, (256, 256, 2), "write_nmnist")
    _first_bad("write_nmnist: events.y", ev["y"], ev["y"] == NMNIST_OVERFLOW_Y,
               "y = 240 is the format's timestamp-overflow marker")
    _first_bad("write_nmnist: events.t", ev["t"], ev["t"] > NMNIST_MAX_T,
               f"timestamp overflows the 23-bit field (max {NMNIST_MAX_T} us)")
    t = ev["t"].astype(np.int64)
    out = np.empty((len(ev), 5), dtype=np.uint8)
    out[:, 0] = ev["x"]
    out[:, 1] = ev["y"]
    out[:, 2] = (ev["p"].astype(np.int64) << 7) | (t >> 16)
    out[:, 3] = (t >> 8) & 0xFF
    out[:, 4] = t & 0xFF
    return _write_bytes(path, out.tobytes(), overwrite)


def _checked_for_writing(events, size, where: str) -> np.ndarray:
    try:
        return check_events(events, size, f"{where}: events")
    except ValueError as e:
        raise EventFormatError(str(e)) from None


def _first_bad(name: str, a: np.ndarray, bad: np.ndarray, what: str) -> None:
    if bad.any():
        k = int(np.argmax(bad))
        raise EventFormatError(f"{name}[{k}] = {a[k].item()!r}: {what}")


def _write_bytes(path, data: bytes, overwrite: bool) -> Path:
    path = _target(path, overwrite)
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------
# AEDAT 3.1
# ---------------------------------------------------------------------------------------
def _aedat_header(data: bytes, where: str) -> tuple[list, int]:
    """The header lines (without CR LF) and the offset of the first packet."""
    if not data.startswith(AEDAT_MAGIC):
        first = data[:16]
        if data.startswith(b"#!AER-DAT"):
            version = data[9:].split(b"\r", 1)[0].split(b"\n", 1)[0][:10]
            raise EventFormatError(f"{where}: header: AEDAT version {version.decode('ascii', 'replace')!r} "
                                   "is not supported (this reader knows 3.1)")
        raise EventFormatError(f"{where}: header: expected the first line {AEDAT_MAGIC.decode()!r}, "
                               f"file starts with {first!r}")
    end = data.find(AEDAT_END, 0, MAX_HEADER_BYTES)
    if end < 0:
        raise EventFormatError(f"{where}: header: no {AEDAT_END.strip().decode()!r} line "
                               f"(truncated header, or longer than {MAX_HEADER_BYTES} bytes)")
    lines = data[:end].split(b"\r\n")
    for k, line in enumerate(lines):
        if line and not line.startswith(b"#"):
            raise EventFormatError(f"{where}: header line {k + 1}: does not start with '#': "
                                   f"{line[:40]!r}")
    return [ln.decode("utf-8", "replace") for ln in lines if ln], end + len(AEDAT_END)


def _packet_error(where: str, k: int, off: int, msg: str) -> EventFormatError:
    return EventFormatError(f"{where}: packet {k} (byte {off}): {msg}")


def parse_aedat(data: bytes, sensor_size=None, where: str = "<bytes>") -> np.ndarray:
    """Polarity events of AEDAT 3.1 data (see the module docstring); :data:`EVENT_DTYPE`.

    ``sensor_size``: ``(W, H, 2)`` to check coordinates against; default: any 15-bit
    address.  Raises EventFormatError naming the packet and field: bad or truncated header,
    truncated packets, impossible packet fields (``eventSize``, ``eventTSOffset``,
    ``eventCapacity``, ``eventNumber``, ``eventValid``, negative ``eventTSOverflow``),
    negative timestamps, timestamps out of order.
    """
    data = bytes(data)
    _, off = _aedat_header(data, where)
    size = sensor(sensor_size) if sensor_size is not None else (1 << 15, 1 << 15, 2)
    chunks, k = [], 0
    while off < len(data):
        if len(data) - off < AEDAT_PACKET.size:
            raise _packet_error(where, k, off, f"truncated packet header ({len(data) - off} of "
                                f"{AEDAT_PACKET.size} bytes)")
        etype, _src, esize, tsoff, ovf, cap, num, valid = AEDAT_PACKET.unpack_from(data, off)
        if esize < 1 or not 0 <= tsoff <= esize - 4:
            raise _packet_error(where, k, off, f"eventSize = {esize}, eventTSOffset = {tsoff}: "
                                "need eventSize >= 4 and 0 <= eventTSOffset <= eventSize - 4")
        if not 0 <= valid <= num == cap:
            raise _packet_error(where, k, off, f"eventCapacity = {cap}, eventNumber = {num}, "
                                f"eventValid = {valid}: need 0 <= eventValid <= eventNumber "
                                "== eventCapacity")
        if ovf < 0:
            raise _packet_error(where, k, off, f"eventTSOverflow = {ovf}: negative")
        if etype == POLARITY_EVENT and (esize != 8 or tsoff != 4):
            raise _packet_error(where, k, off, f"polarity packet with eventSize = {esize}, "
                                f"eventTSOffset = {tsoff} (expected 8 and 4)")
        body = off + AEDAT_PACKET.size
        end = body + cap * esize
        if end > len(data):
            raise _packet_error(where, k, off, f"truncated: {cap} events of {esize} bytes need "
                                f"{cap * esize} bytes, {len(data) - body} left")
        if etype == POLARITY_EVENT:
            chunks.append(_polarity_events(data[body:end], ovf, where, k, off))
        off, k = end, k + 1
    cols = [np.concatenate([c[i] for c in chunks]) if chunks else np.zeros(0, np.int64)
            for i in range(4)]
    return _checked(cols, size, f"{where}: events")


def _polarity_events(payload: bytes, ovf: int, where: str, k: int, off: int):
    ev = np.frombuffer(payload, dtype=np.dtype([("data", "<u4"), ("ts", "<i4")]))
    word = ev["data"].astype(np.int64)
    ts = ev["ts"].astype(np.int64)
    valid = (word & 1) == 1
    bad = valid & (ts < 0)
    if bad.any():
        j = int(np.argmax(bad))
        raise _packet_error(where, k, off, f"event {j}: timestamp = {int(ts[j])}: negative "
                            "(int32 overflow)")
    word, ts = word[valid], ts[valid]
    t = (np.int64(ovf) << 31) | ts
    return (word >> 17) & 0x7FFF, (word >> 2) & 0x7FFF, t, (word >> 1) & 1


def read_aedat(path, sensor_size=None) -> np.ndarray:
    """Polarity events of an AEDAT 3.1 file (:func:`parse_aedat`)."""
    return parse_aedat(_read_bytes(path), sensor_size, str(path))


def write_aedat(path, events, source: str = "DVS128", packet_events: int = 4096,
                overwrite: bool = False) -> Path:
    """Write one recording's polarity events as an AEDAT 3.1 file, atomically.

    Events go in packets of at most ``packet_events`` events, each within one
    ``eventTSOverflow`` epoch of 2**31 us.  Raises EventFormatError when a value does not fit:
    ``x``/``y`` past 15 bits, ``p`` outside ``{0, 1}``, ``t`` past the 62-bit range.
    """
    if not isinstance(packet_events, int) or packet_events < 1:
        raise ValueError(f"packet_events: expected an integer >= 1, got {packet_events!r}")
    if "\r" in source or "\n" in source:
        raise ValueError(f"source: one line of text expected, got {source!r}")
    ev = _checked_for_writing(events, (1 << 15, 1 << 15, 2), "write_aedat")
    t = ev["t"].astype(np.int64)
    _first_bad("write_aedat: events.t", t, t >= (1 << 62), "timestamp overflows the 62-bit "
               "range (eventTSOverflow << 31 | 31-bit timestamp)")
    word = ((ev["x"].astype(np.int64) << 17) | (ev["y"].astype(np.int64) << 2)
            | (ev["p"].astype(np.int64) << 1) | 1)
    body = np.empty(len(ev), dtype=np.dtype([("data", "<u4"), ("ts", "<i4")]))
    body["data"] = word
    body["ts"] = t & 0x7FFFFFFF
    epoch = t >> 31
    parts = [AEDAT_MAGIC + b"\r\n", b"#Format: RAW\r\n",
             f"#Source 1: {source}\r\n".encode(), AEDAT_END]
    bounds = np.flatnonzero(np.diff(epoch)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(ev)]):
        for a in range(int(lo), int(hi), packet_events):
            b = min(a + packet_events, int(hi))
            parts.append(AEDAT_PACKET.pack(POLARITY_EVENT, 1, 8, 4, int(epoch[a]), b - a, b - a, b - a))
            parts.append(body[a:b].tobytes())
    return _write_bytes(path, b"".join(parts), overwrite)


# ---------------------------------------------------------------------------------------
# SHD (HDF5)
# ---------------------------------------------------------------------------------------
def _shd_dataset(f, name: str, where: str):
    import h5py

    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise EventFormatError(f"{where}: missing dataset {name!r}")
    if obj.ndim != 1:
        raise EventFormatError(f"{where}/{name}: expected a 1-D dataset, got shape {obj.shape}")
    return obj


def _shd_sample(times, units, k: int, n_units: int, where: str) -> np.ndarray:
    w = f"{where}: sample {k}"
    times, units = np.asarray(times), np.asarray(units)
    if times.ndim != 1 or units.ndim != 1 or times.dtype.kind not in "iuf" or units.dtype.kind not in "iu":
        raise EventFormatError(f"{w}: spikes/times and spikes/units must be 1-D numbers, got "
                               f"{times.dtype}{times.shape} and {units.dtype}{units.shape}")
    if len(times) != len(units):
        raise EventFormatError(f"{w}: {len(times)} spikes/times but {len(units)} spikes/units")
    bad = ~np.isfinite(times) | (times < 0) | (times > 1e12)
    if bad.any():
        j = int(np.argmax(bad))
        raise EventFormatError(f"{w}: spikes/times[{j}] = {times[j].item()!r}: expected a time "
                               "in seconds, finite, >= 0 and < 1e12")
    t = np.rint(times.astype(np.float64) * 1e6).astype(np.int64)
    return _checked((units, np.zeros_like(units), t, np.zeros_like(units)), (n_units, 1, 1),
                    f"{w}: spikes")


def read_shd(path, n_units: int = SHD_UNITS) -> tuple[list, np.ndarray, tuple]:
    """Samples of an SHD HDF5 file.

    Returns ``(samples, labels, sensor_size)``: N arrays of :data:`EVENT_DTYPE` (``x`` the
    unit, ``t`` in microseconds rounded from seconds), int64 ``[N]`` labels and
    ``(n_units, 1, 1)``.  Raises FileNotFoundError, or EventFormatError naming the file,
    sample and field: not HDF5, missing datasets, lengths that differ, units ``>= n_units``,
    negative or non-finite times, times out of order, negative labels.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SHD file {path} does not exist")
    where = str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise EventFormatError(f"{where}: not a readable HDF5 file ({' '.join(str(e).split())})") from None
    try:
        with f:
            times = _shd_dataset(f, "spikes/times", where)
            units = _shd_dataset(f, "spikes/units", where)
            labels = _shd_dataset(f, "labels", where)
            if not len(times) == len(units) == len(labels):
                raise EventFormatError(f"{where}: spikes/times, spikes/units and labels have "
                                       f"{len(times)}, {len(units)} and {len(labels)} entries")
            lab = np.asarray(labels[()])
            if lab.dtype.kind not in "iu" or (len(lab) and lab.min() < 0):
                raise EventFormatError(f"{where}/labels: expected integers >= 0, got {lab.dtype} "
                                       f"{lab[:5].tolist()}")
            tt, uu = times[()], units[()]
            samples = [_shd_sample(tt[k], uu[k], k, n_units, where) for k in range(len(lab))]
    except EventFormatError:
        raise
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise EventFormatError(f"{where}: corrupt or truncated SHD file "
                               f"({type(e).__name__}: {' '.join(str(e).split())})") from None
    return samples, lab.astype(np.int64), (int(n_units), 1, 1)


def write_shd(path, samples, labels, n_units: int = SHD_UNITS, overwrite: bool = False) -> Path:
    """Write samples (recordings on a ``(n_units, 1, 1)`` sensor) in the SHD layout,
    atomically: float32 seconds in ``spikes/times``, uint16 ``spikes/units``, uint16
    ``labels``."""
    import h5py

    size = (int(n_units), 1, 1)
    if not 1 <= n_units <= 1 << 16:
        raise ValueError(f"n_units: expected an integer in [1, 65536], got {n_units!r}")
    evs = [_checked_for_writing(ev, size, f"write_shd: samples[{k}]") for k, ev in enumerate(samples)]
    lab = np.asarray(labels)
    if lab.shape != (len(evs),) or (len(lab) and (lab.dtype.kind not in "iu" or lab.min() < 0
                                                  or lab.max() > 65535)):
        raise ValueError(f"labels: expected {len(evs)} integers in [0, 65535], got {lab.dtype} "
                         f"of shape {lab.shape}")
    path = _target(path, overwrite, "hdf5")
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w", libver=HDF5_LIBVER) as f:
            g = f.create_group("spikes")
            times = g.create_dataset("times", (len(evs),), dtype=h5py.vlen_dtype(np.float32))
            units = g.create_dataset("units", (len(evs),), dtype=h5py.vlen_dtype(np.uint16))
            for k, ev in enumerate(evs):
                times[k] = (ev["t"] / 1e6).astype(np.float32)
                units[k] = ev["x"].astype(np.uint16)
            f.create_dataset("labels", data=lab.astype(np.uint16))
    return path
