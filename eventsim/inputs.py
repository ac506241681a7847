"""Inputs of the simulator: spike events and analog currents.

:class:`EventBatch` is the simulator's input-event format: the spikes (or signed/analog
events) of B samples, each sample's events contiguous and sorted by time step.

Converters (each returns a validated EventBatch; errors name the field and the value):

| function             | from                                                        |
|----------------------|-------------------------------------------------------------|
| ``from_dense``       | dense ``x[T, B, ...]`` (one event per non-zero entry)         |
| ``from_spike_times`` | ``(t, index)`` arrays, optionally with a ``sample`` id array  |
| ``from_tonic``       | tonic structured arrays ``x, y, t, p`` (t in us, or ``time_unit``), binned by dt |
| ``rate_code``        | images in [0, 1]: Bernoulli spikes, drawn sparsely, seeded    |
| ``poisson_code``     | images in [0, 1]: Poisson process of a given rate, seeded     |

Every encoder refuses an empty batch (``B == 0``), as :class:`EventBatch` and the simulator do.
``direct`` returns the analog images as a dense stride-0 ``[T, B, ...]`` view (the
simulator treats it as a constant drive), and ``to_dense`` turns events back into
``x[T, B, ...]`` (for the dense engine).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncore import checks, encoding

from . import kernels as K


@dataclass(frozen=True, eq=False)
class EventBatch:
    """Input events of B samples over T steps.

    Sample ``b`` owns events ``sample_ptr[b]:sample_ptr[b+1]``, sorted by ``times``.

    times: int64 ``[n]`` time step of each event, in ``[0, T)``.
    indices: int64 ``[n]`` flat C-order index into ``input_shape``.
    values: float32/float64 ``[n]`` amplitude (1.0 for plain spikes, -1.0 for OFF/negative).
    sample_ptr: int64 ``[B + 1]``, non-decreasing, from 0 to n.
    T: number of time steps.  input_shape: feature shape of one sample, e.g. ``(2, 34, 34)``.
    """
    times: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    sample_ptr: np.ndarray
    T: int
    input_shape: tuple

    @property
    def batch_size(self) -> int:
        return len(self.sample_ptr) - 1

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    def validate(self) -> "EventBatch":
        """Check every field; raises ValueError naming the field and the offending value."""
        n = len(self.times)
        for name in ("times", "indices", "values"):
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.ndim != 1 or len(a) != n:
                raise ValueError(f"EventBatch.{name}: expected a 1-D array of {n} entries, got "
                                 f"{getattr(a, 'shape', type(a).__name__)}")
        if self.times.dtype.kind not in "iu" or self.indices.dtype.kind not in "iu":
            raise ValueError("EventBatch: times and indices must be integer arrays, got "
                             f"{self.times.dtype} and {self.indices.dtype}")
        if self.values.dtype.kind != "f":
            raise ValueError(f"EventBatch.values: must be finite floats, got dtype {self.values.dtype}")
        if int(self.T) < 1:
            raise ValueError(f"EventBatch.T: must be >= 1, got {self.T}")
        ptr = self.sample_ptr
        if (not isinstance(ptr, np.ndarray) or ptr.dtype.kind not in "iu" or ptr.ndim != 1
                or len(ptr) < 2 or ptr[0] != 0 or ptr[-1] != n or np.any(np.diff(ptr) < 0)):
            raise ValueError(f"EventBatch.sample_ptr: must rise from 0 to {n}, got "
                             f"{ptr[:5] if isinstance(ptr, np.ndarray) else ptr}...")
        if n:
            # one pass over the events (signed integers: an unsigned value past int64 shows
            # as negative, out of range)
            code, k = K.check_events(_signed(self.times), _signed(self.indices),
                                     _native_float(self.values), ptr.astype(np.int64),
                                     int(self.T), self.n_inputs)
            if code == K.EV_VALUE:
                raise ValueError(f"EventBatch.values: must be finite floats, event {k} is "
                                 f"{self.values[k]}")
            if code == K.EV_TIME:
                raise ValueError(f"EventBatch.times: value {self.times[k]} outside [0, {self.T})")
            if code == K.EV_INDEX:
                raise ValueError(f"EventBatch.indices: address {self.indices[k]} outside "
                                 f"[0, {self.n_inputs}) for input shape {self.input_shape}")
            if code == K.EV_ORDER:
                b = int(np.searchsorted(ptr, k, side="right")) - 1
                raise ValueError(f"EventBatch.times: sample {b} is not sorted by time (event "
                                 f"{k - int(ptr[b])} at step {self.times[k]} follows step "
                                 f"{self.times[k - 1]})")
        return self


def _signed(a: np.ndarray) -> np.ndarray:
    """``a`` as native signed integers (int32/int64 as they are, others as int64)."""
    return a if a.dtype in (np.dtype(np.int32), np.dtype(np.int64)) else a.astype(np.int64)


def _native_float(a: np.ndarray) -> np.ndarray:
    """``a`` as native float32/float64 (float16 widened, byte order swapped if needed)."""
    if a.dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        return a
    return a.astype(np.float32 if a.dtype.itemsize <= 4 else np.float64)


def from_dense(x: np.ndarray) -> EventBatch:
    """Events of a dense input ``x[T, B, *input_shape]``: one event per non-zero entry."""
    x = np.asarray(x)
    if x.ndim < 3:
        raise ValueError(f"from_dense: expected [T, B, ...features], got shape {x.shape}")
    T, B = x.shape[:2]
    if T < 1 or B < 1 or 0 in x.shape[2:]:
        raise ValueError(f"from_dense: empty input of shape {x.shape}")
    flat = x.reshape(T, B, -1)
    b, t, i = np.nonzero(flat.transpose(1, 0, 2))  # sample-major, then time, then address
    values = flat[t, b, i]
    ptr = np.zeros(B + 1, dtype=np.int64)
    np.cumsum(np.bincount(b, minlength=B), out=ptr[1:])
    vdt = x.dtype if x.dtype.kind == "f" else np.float32
    return EventBatch(times=t.astype(np.int64), indices=i.astype(np.int64),
                      values=values.astype(vdt), sample_ptr=ptr, T=int(T),
                      input_shape=tuple(x.shape[2:]))


# ---------------------------------------------------------------------------------------
# converters: everything below returns a validated EventBatch (or, for `direct`, a dense
# analog current).  Errors are ValueError/TypeError naming the argument, field and value.
# ---------------------------------------------------------------------------------------
__all__ = ["EventBatch", "from_dense", "to_dense", "from_spike_times", "from_tonic",
           "rate_code", "poisson_code", "direct"]


def _shape(input_shape) -> tuple:
    shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
    if not shape or any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer))
                        or s < 1 for s in shape):
        raise ValueError(f"input_shape: must be positive integer sizes, got {input_shape!r}")
    return tuple(int(s) for s in shape)


def _int_array(name: str, a, n: int | None = None) -> np.ndarray:
    """1-D int64 copy of ``a``; floats are accepted only when integral."""
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if n is not None and len(a) != n:
        raise ValueError(f"{name}: expected {n} entries (as many as times), got {len(a)}")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.floor(a))
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"{name}[{k}] = {_py(a[k])!r}: expected integer values")
    elif a.dtype.kind not in "iub" and len(a):
        raise ValueError(f"{name}: expected integers, got dtype {a.dtype}")
    return a.astype(np.int64)


def _py(v):
    """A NumPy scalar as the plain Python value, so messages read ``-1``, not ``np.int64(-1)``."""
    return v.item() if isinstance(v, np.generic) else v


def _first_bad(name: str, a: np.ndarray, bad: np.ndarray, what: str):
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"{name}[{k}] = {_py(a[k])!r}: {what}")


def _ptr(sample: np.ndarray, B: int) -> np.ndarray:
    ptr = np.zeros(B + 1, dtype=np.int64)
    np.cumsum(np.bincount(sample, minlength=B), out=ptr[1:])
    return ptr


def to_dense(batch: EventBatch, dtype=np.float32) -> np.ndarray:
    """Dense input ``x[T, B, *input_shape]`` of an EventBatch; events at the same step and
    address add up.  Inverse of :func:`from_dense` (for inputs without duplicate events)."""
    batch.validate()
    T, B, n = int(batch.T), batch.batch_size, batch.n_inputs
    b = np.repeat(np.arange(B, dtype=np.int64), np.diff(batch.sample_ptr))
    flat = (batch.times * B + b) * n + batch.indices
    x = np.bincount(flat, weights=batch.values.astype(np.float64), minlength=T * B * n)
    return x.astype(dtype).reshape((T, B) + tuple(batch.input_shape))


def from_spike_times(times, indices, T: int, input_shape, values=None, sample=None,
                     batch_size: int | None = None) -> EventBatch:
    """Events from ``(t, index)`` pairs, the spike-monitor layout.

    Args:
        times: int ``[n]`` time step of each event, in ``[0, T)`` (integral floats accepted).
        indices: int ``[n]`` flat C-order address into ``input_shape``.
        T: number of time steps.  input_shape: feature shape of one sample, e.g. ``(700,)``.
        values: float ``[n]`` amplitudes (default 1.0 each; -1.0 for OFF/negative events).
        sample: int ``[n]`` sample id of each event for several samples (default: all 0).
        batch_size: B; default ``max(sample) + 1`` (pass it to keep trailing empty samples).

    Events are sorted stably by ``(sample, t)``: events of one step keep their given order.
    Duplicate ``(t, index)`` events are kept (their currents add up in the simulator).

    Raises:
        ValueError naming the field, the position and the value: negative times, times
        ``>= T``, indices outside the input, negative sample ids, length mismatches.
    """
    T = checks.positive_int("T", T)
    shape = _shape(input_shape)
    n_inputs = int(np.prod(shape))
    t = _int_array("times", times)
    n = len(t)
    i = _int_array("indices", indices, n)
    _first_bad("times", t, t < 0, "negative time step")
    _first_bad("times", t, t >= T, f"time step >= T = {T}")
    _first_bad("indices", i, (i < 0) | (i >= n_inputs),
               f"address outside [0, {n_inputs}) for input shape {shape}")
    if values is None:
        v = np.ones(n, dtype=np.float32)
    else:
        v = np.asarray(values)
        if v.ndim != 1 or len(v) != n:
            raise ValueError(f"values: expected a 1-D array of {n} entries, got shape {v.shape}")
        if v.dtype.kind not in "biuf":
            raise ValueError(f"values: expected numbers, got dtype {v.dtype}")
        v = v.astype(v.dtype if v.dtype.kind == "f" else np.float32)
        _first_bad("values", v, ~np.isfinite(v), "not finite")
    if sample is None:
        s = np.zeros(n, dtype=np.int64)
        B = 1 if batch_size is None else checks.positive_int("batch_size", batch_size)
    else:
        s = _int_array("sample", sample, n)
        _first_bad("sample", s, s < 0, "negative sample id")
        B = (int(s.max()) + 1 if n else 1) if batch_size is None else checks.positive_int("batch_size", batch_size)
        _first_bad("sample", s, s >= B, f"sample id >= batch_size = {B}")
    order = np.argsort(s * T + t, kind="stable")  # by (sample, t); ties keep the given order
    return EventBatch(times=t[order], indices=i[order], values=v[order], sample_ptr=_ptr(s, B),
                      T=T, input_shape=shape).validate()


_TONIC_FIELDS = ("x", "y", "t", "p")


#: factors from the units ``from_tonic(time_unit=...)`` accepts to microseconds
TIME_UNITS = {"us": 1, "ms": 1_000, "s": 1_000_000}


def _tonic_sample(ev, k: int, W: int, H: int, P: int, dt, t_start, T, scale=1):
    """Validate one tonic array; return (step, flat address) of the events in the window.

    ``scale`` converts its timestamps to microseconds (1 when they already are)."""
    where = "events" if k < 0 else f"events[{k}]"
    names = getattr(getattr(ev, "dtype", None), "names", None)
    if not isinstance(ev, np.ndarray) or names is None:
        raise ValueError(f"{where}: expected a structured array with fields {_TONIC_FIELDS}, got "
                         f"{getattr(ev, 'dtype', type(ev).__name__)}")
    if ev.ndim != 1:
        raise ValueError(f"{where}: expected a 1-D structured array, got shape {ev.shape}")
    # y may be omitted for 1-D sensors (H == 1, e.g. audio) and p for P == 1, as tonic does
    required = ["x", "t"] + (["y"] if H > 1 else []) + (["p"] if P > 1 else [])
    missing = [f for f in required if f not in names]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; fields present: {list(names)}")
    for f in _TONIC_FIELDS:
        if f in names and ev.dtype[f].kind not in "biuf":
            raise ValueError(f"{where}.{f}: expected numbers, got dtype {ev.dtype[f]}")
    t = np.asarray(ev["t"])
    if t.dtype.kind == "f":
        _first_bad(f"{where}.t", t, ~np.isfinite(t), "not finite")
    _first_bad(f"{where}.t", t, t < 0, "negative timestamp")
    dec = np.diff(t) < 0
    if dec.any():
        j = int(np.argmax(dec)) + 1
        raise ValueError(f"{where}.t[{j}] = {_py(t[j])!r}: not sorted "
                         f"(previous timestamp {_py(t[j - 1])!r})")
    coords = {}
    for f, size in (("x", W), ("y", H)):
        if f not in names:
            coords[f] = np.zeros(len(ev), dtype=np.int64)
            continue
        a = np.asarray(ev[f])
        _first_bad(f"{where}.{f}", a, (a < 0) | (a >= size) | (a != np.floor(a)),
                   f"outside the sensor: {f} must be an integer in [0, {size})")
        coords[f] = a.astype(np.int64)
    if "p" in names:
        p = np.asarray(ev["p"]).astype(np.float64)
        if P == 2 and np.any(p < 0):  # signed convention {-1, 1}
            _first_bad(f"{where}.p", ev["p"], (p != -1) & (p != 1),
                       "polarity must be in {-1, 1} (signed) or {0, 1}")
            c = ((p + 1) // 2).astype(np.int64)
        elif P == 1:  # one channel: polarity ignored
            _first_bad(f"{where}.p", ev["p"], (p != -1) & (p != 0) & (p != 1),
                       "polarity must be in {0, 1} or {-1, 1}")
            c = np.zeros(len(ev), dtype=np.int64)
        else:
            _first_bad(f"{where}.p", ev["p"], (p < 0) | (p >= P) | (p != np.floor(p)),
                       f"polarity outside the sensor: must be in [0, {P})")
            c = p.astype(np.int64)
    else:
        c = np.zeros(len(ev), dtype=np.int64)
    if scale != 1:
        t = t.astype(np.float64) * scale
    rel = t - t_start
    if t.dtype.kind in "iub" and float(dt).is_integer() and float(t_start).is_integer():
        step = (t.astype(np.int64) - int(t_start)) // int(dt)  # exact integer binning
    else:
        step = np.floor(np.asarray(rel, dtype=np.float64) / float(dt)).astype(np.int64)
    keep = step >= 0
    if T is not None:
        keep &= step < T
    addr = (c * H + coords["y"]) * W + coords["x"]
    return step[keep], addr[keep]


def _check_time_unit(samples, dt: float, t_start: float, T) -> None:
    """Refuse float timestamps with fractions that all fall in the first step: the mark of
    seconds given where microseconds are expected (every event would land in step 0)."""
    ts = [np.asarray(ev["t"]) for ev in samples if len(ev)]
    if T == 1 or not ts or not all(t.dtype.kind == "f" for t in ts):
        return
    latest = max(float(t[-1]) for t in ts)          # each sample is sorted
    if latest < t_start + dt and any(np.any(t != np.floor(t)) for t in ts):
        where = "events" if len(samples) == 1 else "events[...]"
        raise ValueError(f"{where}.t: float timestamps that all fall in the first step (latest "
                         f"{latest!r}, dt = {dt!r} us): from_tonic reads t in microseconds "
                         "(tonic's convention); for seconds pass time_unit='s' (or multiply t by "
                         "1e6), or pass time_unit='us' if they really are microseconds")


def from_tonic(events, sensor_size, dt, T: int | None = None, t_start=0,
               binary: bool = False, time_unit: str | None = None) -> EventBatch:
    """Bin tonic-style event arrays into time steps.

    Args:
        events: a structured array with fields ``x, y, t, p`` (tonic's layout: ``t`` in
            microseconds, sorted; ``p`` in ``{0, 1}`` or ``{-1, 1}``), or a list of them (one
            per sample).  ``y`` may be absent when ``H == 1`` and ``p`` when ``P == 1``.
        sensor_size: ``(W, H, P)`` as tonic (width, height, polarities).
        dt: bin width in microseconds (> 0); step ``k`` holds ``t_start + k dt <= t <
            t_start + (k + 1) dt``.
        T: number of steps; default: just enough for the latest event.  Events outside
            ``[t_start, t_start + T dt)`` are dropped (a window, as a fixed-T network needs).
        t_start: start of the window in microseconds.
        binary: True keeps one event of value 1.0 per (step, address); by default events
            of one step and address merge into one event whose value is their count.
        time_unit: unit of ``t``: ``"us"`` (tonic's), ``"ms"`` or ``"s"``; ``dt`` and
            ``t_start`` stay in microseconds.  Default None: microseconds, and float
            timestamps with fractional parts that all fall in the first step are refused
            (seconds passed as microseconds); an explicit ``"us"`` skips that check.

    Returns:
        EventBatch with ``input_shape = (P, H, W)`` (channel-first) and flat address
        ``p * H * W + y * W + x``; a signed polarity -1 maps to channel 0 and +1 to channel 1;
        with ``P == 1`` all events go to channel 0.

    Raises:
        ValueError naming the field and value: not a structured array, missing fields,
        negative or unsorted ``t``, ``x``/``y``/``p`` outside the sensor, bad dt/T/sensor_size,
        float timestamps that look like seconds (see ``time_unit``).
    """
    if time_unit is not None and time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit: must be one of {list(TIME_UNITS)} (or None for "
                         f"microseconds), got {time_unit!r}")
    scale = TIME_UNITS[time_unit or "us"]
    try:
        W, H, P = (int(s) for s in sensor_size)
    except (TypeError, ValueError):
        raise ValueError(f"sensor_size: expected (W, H, P), got {sensor_size!r}") from None
    if min(W, H, P) < 1:
        raise ValueError(f"sensor_size: sizes must be >= 1, got {tuple(sensor_size)}")
    try:
        dt_f, t0 = float(dt), float(t_start)
    except (TypeError, ValueError):
        raise ValueError(f"dt/t_start: expected numbers, got {dt!r}, {t_start!r}") from None
    if not np.isfinite(dt_f) or dt_f <= 0:
        raise ValueError(f"dt: must be a finite bin width > 0 (microseconds), got {dt!r}")
    if not np.isfinite(t0) or t0 < 0:
        raise ValueError(f"t_start: must be finite and >= 0, got {t_start!r}")
    if T is not None:
        T = checks.positive_int("T", T)
    single = isinstance(events, np.ndarray)
    samples = [events] if single else list(events)
    if not samples:
        raise ValueError("events: empty list of samples")
    binned = [_tonic_sample(ev, -1 if single else k, W, H, P, dt, t_start, T, scale)
              for k, ev in enumerate(samples)]
    if time_unit is None:
        _check_time_unit(samples, dt_f, t0, T)
    if T is None:
        T = max([int(s.max()) + 1 for s, _ in binned if len(s)] + [1])
    n_inputs = P * H * W
    ts, idx, vals, counts = [], [], [], []
    for step, addr in binned:
        key, cnt = np.unique(step * n_inputs + addr, return_counts=True)  # sorted by step
        ts.append(key // n_inputs)
        idx.append(key % n_inputs)
        vals.append(np.ones(len(key), np.float32) if binary else cnt.astype(np.float32))
        counts.append(len(key))
    ptr = np.zeros(len(samples) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return EventBatch(times=np.concatenate(ts).astype(np.int64),
                      indices=np.concatenate(idx).astype(np.int64),
                      values=np.concatenate(vals), sample_ptr=ptr, T=int(T),
                      input_shape=(P, H, W)).validate()


def _bernoulli_events(p: np.ndarray, T: int, rng: np.random.Generator) -> EventBatch:
    """Independent Bernoulli(p) spikes at every step, drawn sparsely.

    For each address with ``p > 0`` the gaps between successive spikes are i.i.d.
    Geometric(p) (first spike at ``Geometric(p) - 1``), which is exactly the law of T
    independent Bernoulli(p) trials; work is O(active addresses + spikes), not O(T B n).
    """
    B = p.shape[0]
    pf = p.reshape(B, -1)
    b, i = np.nonzero(pf > 0)  # sample-major, then address
    pa = pf[b, i]
    pos = rng.geometric(pa) - 1
    chunks = []
    while len(pos):
        keep = pos < T
        if not keep.all():
            b, i, pa, pos = b[keep], i[keep], pa[keep], pos[keep]
        if not len(pos):
            break
        chunks.append((b, i, pos))
        # capping the gap at T is exact (anything >= T - pos leaves the window) and
        # avoids int64 overflow for tiny p
        pos = pos + np.minimum(rng.geometric(pa), T)
    n = pf.shape[1]
    # one int64 key per event, ordered by sample, then step, then address (B T n < 2**63)
    key = np.sort(np.concatenate([(cb * T + ct) * n + ci for cb, ci, ct in chunks]
                                 or [np.zeros(0, dtype=np.int64)]))
    bt, idx = np.divmod(key, n)
    bs, ts = np.divmod(bt, T)
    return EventBatch(times=ts, indices=idx, values=np.ones(len(key), dtype=np.float32),
                      sample_ptr=_ptr(bs, B), T=T, input_shape=tuple(p.shape[1:])).validate()


def rate_code(images, T: int, rng: np.random.Generator, gain: float = 1.0) -> EventBatch:
    """Bernoulli rate coding as events: every pixel spikes independently at every step with
    probability ``clip(gain * x, 0, 1)`` (same law as ``training.encoding.rate``, drawn
    sparsely, so the event stream for a seed differs from the dense encoder's array).

    Args:
        images: ``[B, ...features]`` intensities in ``[0, 1]``.
        T: number of steps.  rng: a seeded ``np.random.Generator`` (required).
        gain: finite ``>= 0``.

    Returns:
        EventBatch of value-1.0 events, input_shape ``images.shape[1:]``.
    """
    T = checks.positive_int("T", T)
    rng = checks.generator(rng)
    gain = checks.finite_scalar("gain", gain, 0.0)
    x = checks.images(images, unit_interval=True, min_ndim=2, nonempty=True).astype(np.float64)
    return _bernoulli_events(np.clip(gain * x, 0.0, 1.0), T, rng)


def poisson_code(images, T: int, rng: np.random.Generator, max_rate_hz: float | None = None,
                 dt: float | None = None, *, rate_hz: float | None = None) -> EventBatch:
    """Poisson rate coding as events: a pixel of intensity ``x`` fires as a Poisson process of
    rate ``x * max_rate_hz`` (Hz) seen in steps of ``dt`` seconds, at most one spike per step,
    so a step spikes with probability ``1 - exp(-x max_rate_hz dt)`` (as
    ``training.encoding.poisson``, which takes the same arguments).

    Args:
        images: ``[B, ...features]`` intensities in ``[0, 1]``.
        T: number of steps.  rng: a seeded ``np.random.Generator`` (required).
        max_rate_hz: rate of an intensity-1 pixel in Hz, finite ``>= 0``.
        dt: step in seconds, ``> 0``.
        rate_hz: deprecated name of ``max_rate_hz`` (DeprecationWarning).
    """
    max_rate_hz = _renamed_keyword("poisson_code", "max_rate_hz", max_rate_hz, "rate_hz", rate_hz)
    if dt is None:
        raise TypeError("poisson_code: missing required argument 'dt' (step length in seconds)")
    T = checks.positive_int("T", T)
    rng = checks.generator(rng)
    max_rate_hz = checks.finite_scalar("max_rate_hz", max_rate_hz, 0.0)
    dt = checks.finite_scalar("dt", dt, 0.0, lo_open=True)
    x = checks.images(images, unit_interval=True, min_ndim=2, nonempty=True).astype(np.float64)
    return _bernoulli_events(-np.expm1(-x * max_rate_hz * dt), T, rng)


def _renamed_keyword(fn: str, name: str, value, old_name: str, old_value):
    """``value``, or ``old_value`` given under a keyword's deprecated name (with a warning)."""
    if old_value is None:
        if value is None:
            raise TypeError(f"{fn}: missing required argument {name!r}")
        return value
    if value is not None:
        raise TypeError(f"{fn}: give {name!r} only ({old_name!r} is its deprecated name)")
    import warnings

    warnings.warn(f"{fn}: {old_name!r} is deprecated, use {name!r} (the name "
                  "training.encoding uses)", DeprecationWarning, stacklevel=3)
    return old_value


def direct(images, T: int) -> np.ndarray:
    """Direct (analog) input: ``images [B, ...]`` as the input current at every step.

    The read-only stride-0 view ``x[T, B, ...]`` of :func:`snncore.encoding.direct` (the
    simulator, like the dense engine, recognises ``x.strides[0] == 0`` as a constant drive).
    An empty batch (``B == 0``) is refused, as by :func:`rate_code` and :func:`poisson_code`.
    """
    checks.images(images, unit_interval=False, nonempty=True)
    return encoding.direct(images, T)


# event files (HDF5, docs/event-files.md): defined in eventsim.eventfile, which uses the
# converters above
from .eventfile import EventFile, EventFileError, load_events, save_events  # noqa: E402

__all__ += ["EventFile", "EventFileError", "load_events", "save_events"]
