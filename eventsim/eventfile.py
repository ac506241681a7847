"""Event files: recorded sensor events of many samples, with optional labels, in HDF5.

The simulator's input from event cameras and cochleas (``eventsim simulate MODEL --events
FILE``).  One file holds the events of N samples as one table of columns, tonic's fields
plus the sample id (docs/event-files.md)::

    /                 attrs: format = "snn-events", version = 1,
                             sensor_size = [W, H, P] (int), n_samples = N (int),
                             dt (float, optional: a suggested bin width in microseconds)
    /events/x         [n] int     column, in [0, W)
    /events/y         [n] int     row, in [0, H)
    /events/t         [n] int or float   timestamp in microseconds (tonic's unit)
    /events/p         [n] int     polarity, in [0, P) (or -1/+1 with P = 2)
    /events/sample    [n] int     sample id in [0, N), non-decreasing
    /labels           [N] int     class of each sample (optional), >= 0

Each sample's events are contiguous and sorted by ``t``.  Numbers only: no pickle, no
object or string arrays.  :func:`save_events` writes such a file atomically (Fletcher-32
checksums on the columns), :func:`load_events` reads and checks every field and raises
:class:`EventFileError` naming the file, the field and the offending value; the samples'
events convert to simulator input with :meth:`EventFile.to_batch`
(:func:`eventsim.inputs.from_tonic`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snncore.fileio import HDF5_LIBVER, atomic_output, check_output, open_hdf5

from .inputs import EventBatch, _tonic_sample, from_tonic

FORMAT_NAME = "snn-events"
FORMAT_VERSION = 1
FIELDS = ("x", "y", "t", "p")


class EventFileError(ValueError):
    """An event file is malformed; the message names the file, the field and the value."""


@dataclass(frozen=True, eq=False)
class EventFile:
    """The contents of an event file.

    events: one structured array per sample with fields ``x, y, t, p`` (tonic's layout,
        ``t`` in microseconds), views into one table.
    labels: int64 ``[N]`` class of each sample, or None when the file has none.
    sensor_size: ``(W, H, P)`` as tonic (width, height, polarities).
    dt: the file's suggested bin width in microseconds, or None.
    """
    path: str
    events: list
    labels: np.ndarray | None
    sensor_size: tuple
    dt: float | None = None

    def __len__(self) -> int:
        return len(self.events)

    def to_batch(self, dt, T: int | None = None, start: int = 0, stop: int | None = None,
                 t_start=0, binary: bool = False) -> EventBatch:
        """Samples ``start:stop`` binned into steps of ``dt`` microseconds
        (:func:`eventsim.inputs.from_tonic`; ``input_shape = (P, H, W)``)."""
        return from_tonic(self.events[start:stop], self.sensor_size, dt, T=T, t_start=t_start,
                          binary=binary)


def _sensor(sensor_size, where: str) -> tuple:
    try:
        size = tuple(int(s) for s in sensor_size)
    except (TypeError, ValueError):
        raise EventFileError(f"{where}: expected (W, H, P), got {sensor_size!r}") from None
    if len(size) != 3 or min(size) < 1:
        raise EventFileError(f"{where}: expected three sizes >= 1 (W, H, P), got {sensor_size!r}")
    return size


def _check_samples(events: list, sensor: tuple, where: str) -> None:
    """Every sample's fields, ranges and time order (as :func:`from_tonic` requires)."""
    W, H, P = sensor
    for k, ev in enumerate(events):
        try:
            _tonic_sample(ev, k, W, H, P, 1, 0, None)
        except ValueError as e:
            raise EventFileError(f"{where}: {e}") from None


def _column(events: list, name: str, dtype) -> np.ndarray:
    """Field ``name`` of every sample, concatenated (zeros where a sample lacks it)."""
    parts = [np.asarray(ev[name]) if name in ev.dtype.names else np.zeros(len(ev), dtype)
             for ev in events]
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _time_dtype(events: list):
    kinds = {np.asarray(ev["t"]).dtype.kind for ev in events}
    return np.float64 if "f" in kinds else np.int64


#: compression filters ``save_events`` accepts (HDF5's standard deflate, or none)
COMPRESSIONS = ("gzip", "none")


def save_events(path, events, labels=None, sensor_size=None, dt=None, overwrite: bool = False,
                compression: str = "gzip") -> Path:
    """Write the events of N samples (and their labels) to an event file, atomically.

    Args:
        path: the ``.h5`` file to write (replaced only by a complete file).
        events: a list of N structured arrays with fields ``x, y, t, p`` (tonic's layout:
            ``t`` in microseconds and sorted; ``y`` may be absent when ``H == 1`` and ``p``
            when ``P == 1``), one per sample.
        labels: int ``[N]`` class of each sample, ``>= 0`` (optional).
        sensor_size: ``(W, H, P)`` (required).
        dt: a suggested bin width in microseconds (optional; ``eventsim simulate --events``
            uses it when ``--dt`` is not given).
        overwrite: replace an existing event file at ``path``; a file of another kind
            (model, checkpoint, recording, ...) is never replaced
            (``snncore.fileio.check_output``).
        compression: ``"gzip"`` (default: HDF5's deflate, level 4, after the byte-shuffle
            filter; any HDF5 reader decodes it) or ``"none"``.  Event columns are small
            integers, so deflate typically shrinks a file several times; loading decodes it.

    Raises:
        EventFileError naming the field and value (``events[k].x[j] = ...``) when a sample
        does not fit the sensor, is not sorted, or labels do not match the samples.
    """
    import h5py

    where = "save_events"
    if compression not in COMPRESSIONS:
        raise EventFileError(f"{where}: compression must be one of {', '.join(COMPRESSIONS)}, "
                             f"got {compression!r}")
    if sensor_size is None:
        raise EventFileError(f"{where}: sensor_size=(W, H, P) is required")
    sensor = _sensor(sensor_size, f"{where}: sensor_size")
    if isinstance(events, np.ndarray) and events.dtype.names is not None:
        raise EventFileError(f"{where}: events must be a list of per-sample structured arrays "
                             "(wrap a single sample in a list)")
    events = list(events)
    _check_samples(events, sensor, where)
    N = len(events)
    lab = None if labels is None else _labels(np.asarray(labels), N, f"{where}: labels")
    if dt is not None:
        dt = float(dt)
        if not np.isfinite(dt) or dt <= 0:
            raise EventFileError(f"{where}: dt must be a finite bin width > 0 (microseconds), got {dt}")
    columns = {"x": _column(events, "x", np.int32), "y": _column(events, "y", np.int32),
               "t": _column(events, "t", _time_dtype(events)),
               "p": _column(events, "p", np.int16),
               "sample": np.repeat(np.arange(N, dtype=np.int64), [len(ev) for ev in events])}
    path = check_output(path, "events", overwrite)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w", libver=HDF5_LIBVER) as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["version"] = FORMAT_VERSION
            f.attrs["sensor_size"] = np.asarray(sensor, dtype=np.int64)
            f.attrs["n_samples"] = N
            if dt is not None:
                f.attrs["dt"] = dt
            g = f.create_group("events")
            for name, col in columns.items():
                _dataset(g, name, col, compression)
            if lab is not None:
                _dataset(f, "labels", lab, compression)
    return path


def _dataset(group, name: str, data: np.ndarray, compression: str) -> None:
    """A dataset with Fletcher-32 checksums (chunked) when it has any data, deflated after
    the shuffle filter when ``compression == "gzip"``."""
    if data.size:
        packed = dict(compression="gzip", compression_opts=4, shuffle=True) \
            if compression == "gzip" else {}
        group.create_dataset(name, data=data, chunks=True, fletcher32=True, **packed)
    else:
        group.create_dataset(name, data=data)


def _labels(a: np.ndarray, N: int, where: str) -> np.ndarray:
    if a.ndim == 1 and a.size == 0 and a.dtype.kind in "biuf":
        a = a.astype(np.int64)  # [] has no integer type of its own
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise EventFileError(f"{where}: expected a 1-D integer array, got {a.dtype} of shape {a.shape}")
    if len(a) != N:
        raise EventFileError(f"{where}: {len(a)} labels for {N} samples")
    if len(a) and a.min() < 0:
        k = int(np.argmax(a < 0))
        raise EventFileError(f"{where}[{k}] = {int(a[k])}: labels must be >= 0")
    return a.astype(np.int64)


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------
def _attr(f, name: str, where: str, required: bool = True):
    if name not in f.attrs:
        if required:
            raise EventFileError(f"{where}: missing attribute {name!r}")
        return None
    v = f.attrs[name]
    return v.decode() if isinstance(v, bytes) else v


def _int_attr(f, name: str, where: str) -> int:
    v = np.asarray(_attr(f, name, where))
    if v.ndim != 0 or v.dtype.kind not in "iu" or int(v) < 0:
        raise EventFileError(f"{where}.{name}: expected an integer >= 0, got {v.tolist()!r}")
    return int(v)


def _read_column(g, name: str, where: str, kinds: str) -> np.ndarray:
    import h5py

    if name not in g or not isinstance(g[name], h5py.Dataset):
        raise EventFileError(f"{where}: missing dataset {name!r}")
    w = f"{where}/{name}"
    try:
        a = np.asarray(g[name][()])
    except OSError as e:  # a failed Fletcher-32 checksum, a truncated file
        raise EventFileError(f"{w}: damaged ({' '.join(str(e).split())})") from None
    if a.dtype.kind not in kinds or a.ndim != 1:
        raise EventFileError(f"{w}: expected a 1-D {'integer' if kinds == 'iu' else 'numeric'} "
                             f"array, got {a.dtype} of shape {a.shape}")
    return a


def _read(f, w: str) -> EventFile:
    fmt = _attr(f, "format", w)
    if fmt != FORMAT_NAME:
        raise EventFileError(f"{w}.format: expected {FORMAT_NAME!r}, got {fmt!r}")
    version = _int_attr(f, "version", w)
    if version != FORMAT_VERSION:
        raise EventFileError(f"{w}.version: unsupported version {version}; this reader knows "
                             f"{FORMAT_VERSION}")
    size = np.asarray(_attr(f, "sensor_size", w))
    if size.dtype.kind not in "iu":
        raise EventFileError(f"{w}.sensor_size: expected integers (W, H, P), got {size.tolist()!r}")
    sensor = _sensor(size.tolist(), f"{w}.sensor_size")
    N = _int_attr(f, "n_samples", w)
    dt = _attr(f, "dt", w, required=False)
    if dt is not None:
        dt_a = np.asarray(dt)
        if dt_a.ndim != 0 or dt_a.dtype.kind not in "iuf" or not np.isfinite(dt_a) or dt_a <= 0:
            raise EventFileError(f"{w}.dt: expected a bin width > 0 (microseconds), got {dt!r}")
        dt = float(dt_a)
    if "events" not in f:
        raise EventFileError(f"{w}: missing group 'events'")
    g, gw = f["events"], f"{w}/events"
    cols = {name: _read_column(g, name, gw, "iuf" if name == "t" else "iu")
            for name in FIELDS + ("sample",)}
    n = len(cols["sample"])
    for name, col in cols.items():
        if len(col) != n:
            raise EventFileError(f"{gw}/{name}: {len(col)} entries, /events/sample has {n}")
    s = cols["sample"].astype(np.int64)
    bad = (s < 0) | (s >= N)
    if bad.any():
        k = int(np.argmax(bad))
        raise EventFileError(f"{gw}/sample[{k}] = {int(s[k])}: outside [0, {N}) (n_samples)")
    dec = np.diff(s) < 0
    if dec.any():
        k = int(np.argmax(dec)) + 1
        raise EventFileError(f"{gw}/sample[{k}] = {int(s[k])}: follows sample {int(s[k - 1])} "
                             "(each sample's events must be contiguous, in sample order)")
    labels = _labels(_read_column(f, "labels", w, "iu"), N, f"{w}/labels") if "labels" in f else None
    table = np.empty(n, dtype=[(name, cols[name].dtype) for name in FIELDS])
    for name in FIELDS:
        table[name] = cols[name]
    ptr = np.searchsorted(s, np.arange(N + 1), side="left")
    events = [table[ptr[k]:ptr[k + 1]] for k in range(N)]
    _check_samples(events, sensor, w)
    return EventFile(path=w, events=events, labels=labels, sensor_size=sensor, dt=dt)


def load_events(path) -> EventFile:
    """Read and validate an event file (:func:`save_events`'s format).

    Raises FileNotFoundError when ``path`` does not exist and :class:`EventFileError`
    naming the file, the field and the value for anything malformed: another format or
    version, bad ``sensor_size``, columns of different lengths or non-numeric types,
    sample ids out of order or range, events outside the sensor, unsorted timestamps
    (``events[k].t[j]``), labels that do not match the samples.
    """
    path = Path(path)
    f = open_hdf5(path, "event file", EventFileError)
    try:
        with f:
            return _read(f, str(path))
    except (KeyError, OSError, TypeError) as e:
        raise EventFileError(f"{path}: corrupt or truncated event file "
                             f"({type(e).__name__}: {e})") from None
