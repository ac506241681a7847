"""Event-camera data as tonic-style structured arrays, and their conversion to simulator input.

One recording (one sample) is a 1-D structured array of :data:`EVENT_DTYPE`::

    x  int16   column, in [0, W)
    y  int16   row, in [0, H)
    t  int64   timestamp in microseconds (tonic's unit), non-decreasing
    p  int8    polarity channel, in [0, P) (0 = OFF, 1 = ON for a DVS)

with a sensor size ``(W, H, P)`` (width, height, polarities), tonic's order.  Audio spike
data (SHD) fits the same layout with ``H == 1`` and ``P == 1``: ``x`` is the channel.

* :func:`make_events` builds such an array from columns (values checked, never wrapped);
* :func:`check_events` validates one against a sensor and returns it in :data:`EVENT_DTYPE`;
* :func:`to_batch` bins samples into the simulator's :class:`eventsim.inputs.EventBatch`
  (steps of ``dt`` microseconds, ``input_shape = (P, H, W)``) and :func:`from_batch` goes back;
* :func:`eventsim.evtransforms.to_frames` bins them into dense ``[T, P, H, W]`` frames.
"""
from __future__ import annotations

import numpy as np

from .inputs import EventBatch, from_tonic

__all__ = ["EVENT_DTYPE", "make_events", "check_events", "sensor", "to_batch", "from_batch"]

#: the structured dtype of one recording (tonic's fields; t in microseconds)
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "i1")])
#: largest coordinate an int16 field holds (sensors up to 32767 pixels a side)
MAX_COORD = np.iinfo(np.int16).max


def sensor(sensor_size, where: str = "sensor_size") -> tuple:
    """``sensor_size`` as a tuple ``(W, H, P)`` of ints, each in ``[1, 32767]``."""
    try:
        size = tuple(int(s) for s in sensor_size)
        ok = len(size) == 3 and all(float(a) == b for a, b in zip(sensor_size, size))
    except (TypeError, ValueError):
        ok = False
    if not ok or min(size) < 1 or max(size) > MAX_COORD + 1:
        raise ValueError(f"{where}: expected (W, H, P), integers in [1, {MAX_COORD + 1}], "
                         f"got {sensor_size!r}")
    return size


def _column(name: str, a, n: int | None, lo: int, hi: int, where: str) -> np.ndarray:
    """A 1-D integer column with values in ``[lo, hi]`` as int64 (integral floats accepted)."""
    a = np.asarray(a)
    if a.ndim != 1 or (n is not None and len(a) != n):
        raise ValueError(f"{where}.{name}: expected a 1-D array"
                         f"{'' if n is None else f' of {n} entries'}, got shape {a.shape}")
    if a.dtype.kind not in "biuf" and len(a):
        raise ValueError(f"{where}.{name}: expected numbers, got dtype {a.dtype}")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.floor(a))
        _first_bad(f"{where}.{name}", a, bad, "expected an integer")
    bad = (a < lo) | (a > hi)
    _first_bad(f"{where}.{name}", a, bad, f"outside [{lo}, {hi}]")
    return a.astype(np.int64)


def _first_bad(name: str, a: np.ndarray, bad: np.ndarray, what: str) -> None:
    if bad.any():
        k = int(np.argmax(bad))
        v = a[k].item() if isinstance(a[k], np.generic) else a[k]
        raise ValueError(f"{name}[{k}] = {v!r}: {what}")


def make_events(x, y, t, p, where: str = "events") -> np.ndarray:
    """A structured array of :data:`EVENT_DTYPE` from columns ``x, y, t, p`` (``[n]`` each).

    ``t`` (microseconds) must be ``>= 0`` and non-decreasing, ``x``/``y`` in ``[0, 32767]``,
    ``p`` in ``[0, 127]`` (booleans are 0/1).  Values are checked, never wrapped; the
    sensor bounds are :func:`check_events`' job.
    """
    tt = _column("t", t, None, 0, np.iinfo(np.int64).max, where)
    n = len(tt)
    xx = _column("x", x, n, 0, MAX_COORD, where)
    yy = _column("y", y, n, 0, MAX_COORD, where)
    pp = _column("p", p, n, 0, np.iinfo(np.int8).max, where)
    _check_order(tt, where)
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = xx, yy, tt, pp
    return ev


def _check_order(t: np.ndarray, where: str) -> None:
    dec = np.diff(t) < 0
    if dec.any():
        j = int(np.argmax(dec)) + 1
        raise ValueError(f"{where}.t[{j}] = {int(t[j])}: timestamps out of order (previous "
                         f"timestamp {int(t[j - 1])} us)")


def check_events(events, sensor_size, where: str = "events") -> np.ndarray:
    """Validate one recording against a sensor; returns it as :data:`EVENT_DTYPE` (a copy
    only when the dtype differs).

    Accepts any structured array with integer (or integral float) fields ``x, t`` and, when
    ``H > 1``, ``y``, and, when ``P > 1``, ``p`` (``bool`` polarities are 0/1; ``{-1, 1}``
    with ``P == 2`` maps to ``{0, 1}``).

    Raises:
        ValueError naming the field, the event and the value: missing fields, coordinates
        outside the sensor, negative or unsorted timestamps.
    """
    W, H, P = sensor(sensor_size)
    names = getattr(getattr(events, "dtype", None), "names", None)
    if not isinstance(events, np.ndarray) or names is None or events.ndim != 1:
        raise ValueError(f"{where}: expected a 1-D structured array with fields x, y, t, p, got "
                         f"{getattr(events, 'dtype', type(events).__name__)} of shape "
                         f"{getattr(events, 'shape', None)}")
    required = ["x", "t"] + (["y"] if H > 1 else []) + (["p"] if P > 1 else [])
    missing = [f for f in required if f not in names]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; fields present: {list(names)}")
    if events.dtype == EVENT_DTYPE:
        cols = {f: events[f] for f in "xytp"}
    else:
        n = len(events)
        cols = {f: (events[f] if f in names else np.zeros(n, np.int64)) for f in "xytp"}
        p = np.asarray(cols["p"])
        if P == 2 and p.dtype.kind in "if" and len(p) and p.min() < 0:
            _first_bad(f"{where}.p", p, (p != -1) & (p != 1), "signed polarity must be -1 or 1")
            cols["p"] = (p > 0).astype(np.int64)
    for f, size in (("x", W), ("y", H), ("p", P)):
        a = np.asarray(cols[f])
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{where}.{f}: expected numbers, got dtype {a.dtype}")
        bad = (a < 0) | (a >= size)
        if a.dtype.kind == "f":
            bad |= ~np.isfinite(a) | (a != np.floor(a))
        _first_bad(f"{where}.{f}", a, bad, f"outside the sensor: must be an integer in [0, {size})")
    t = np.asarray(cols["t"])
    if t.dtype.kind not in "iuf":
        raise ValueError(f"{where}.t: expected numbers, got dtype {t.dtype}")
    bad = t < 0
    if t.dtype.kind == "f":
        bad |= ~np.isfinite(t) | (t != np.floor(t)) | (t >= 2.0 ** 63)
    if t.dtype.kind == "u":
        bad |= t > np.iinfo(np.int64).max
    _first_bad(f"{where}.t", t, bad, "timestamps must be integers >= 0 (microseconds)")
    _check_order(t.astype(np.int64), where)
    if events.dtype == EVENT_DTYPE:
        return events
    ev = np.empty(len(events), dtype=EVENT_DTYPE)
    for f in "xytp":
        ev[f] = cols[f]
    return ev


def to_batch(samples, sensor_size, dt, T: int | None = None, t_start: int = 0,
             binary: bool = False) -> EventBatch:
    """Bin recordings into the simulator's input (:func:`eventsim.inputs.from_tonic`).

    Args:
        samples: one recording or a list of them (B samples).
        sensor_size: ``(W, H, P)``.  dt: bin width in microseconds.
        T: steps (default: enough for the latest event); events after ``t_start + T dt`` are
            dropped.  binary: one value-1 event per (step, address) instead of counts.

    Returns:
        EventBatch with ``input_shape = (P, H, W)``; event ``(x, y, p)`` at address
        ``(p * H + y) * W + x``, value the number of events merged into it.
    """
    size = sensor(sensor_size)
    single = isinstance(samples, np.ndarray)
    arrays = [samples] if single else list(samples)
    checked = [check_events(ev, size, "events" if single else f"events[{k}]")
               for k, ev in enumerate(arrays)]
    return from_tonic(checked, size, dt, T=T, t_start=t_start, binary=binary)


def from_batch(batch: EventBatch, dt: int, t_start: int = 0) -> tuple[list, tuple]:
    """Recordings of an EventBatch with ``input_shape = (P, H, W)``: the inverse of
    :func:`to_batch` (an event at step ``k`` gets ``t = t_start + k dt`` microseconds, the
    start of its bin; an event of value ``c`` becomes ``c`` events).

    Returns ``(samples, sensor_size)``: B arrays of :data:`EVENT_DTYPE` and ``(W, H, P)``.

    Raises:
        ValueError when the input shape is not ``(P, H, W)``, ``dt``/``t_start`` are not
        integers (``dt >= 1``, ``t_start >= 0``) or a value is not a positive integer count.
    """
    batch.validate()
    shape = tuple(batch.input_shape)
    if len(shape) != 3:
        raise ValueError(f"from_batch: input_shape must be (P, H, W), got {shape}")
    P, H, W = shape
    size = sensor((W, H, P), "from_batch: input_shape")
    if isinstance(dt, (bool, np.bool_)) or not float(dt).is_integer() or dt < 1:
        raise ValueError(f"from_batch: dt must be an integer >= 1 (microseconds), got {dt!r}")
    if not float(t_start).is_integer() or t_start < 0:
        raise ValueError(f"from_batch: t_start must be an integer >= 0, got {t_start!r}")
    v = batch.values
    bad = (v < 1) | (v != np.floor(v))
    _first_bad("from_batch: values", v, bad, "expected a positive integer count of events")
    count = v.astype(np.int64)
    samples = []
    for b in range(batch.batch_size):
        lo, hi = int(batch.sample_ptr[b]), int(batch.sample_ptr[b + 1])
        reps = count[lo:hi]
        idx = np.repeat(batch.indices[lo:hi], reps)
        p, rem = np.divmod(idx, H * W)
        y, x = np.divmod(rem, W)
        t = int(t_start) + np.repeat(batch.times[lo:hi], reps) * int(dt)
        samples.append(make_events(x, y, t, p, f"from_batch: sample {b}"))
    return samples, size
