"""Transforms of event recordings (:mod:`eventsim.evdata` arrays, t in microseconds).

| function        | does                                                                 |
|-----------------|----------------------------------------------------------------------|
| ``to_frames``   | bins one recording into counts ``[T, P, H, W]`` (float32)            |
| ``batch_frames``| bins B recordings into time-major ``[T, B, P, H, W]``                |
| ``refractory``  | drops events within ``period`` us of the pixel's last kept event     |
| ``denoise``     | drops events without a neighbouring event within ``window`` us before |
| ``crop``        | keeps a rectangle of the sensor, shifting coordinates to its corner  |
| ``downsample``  | divides coordinates by an integer factor (events are kept, not merged) |

Each validates its arguments (errors name the argument and value), returns new arrays and
never modifies its input.  The per-event loops run in Numba (:mod:`eventsim.evkernels`);
crop and downsample are plain vectorised NumPy.
"""
from __future__ import annotations

import math

import numpy as np

from . import evkernels as EK
from .evdata import check_events, sensor

__all__ = ["to_frames", "batch_frames", "refractory", "denoise", "crop", "downsample"]


def _int(name: str, v, lo: int) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
    try:
        ok = float(v).is_integer() and v >= lo
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
    return int(v)


def _cols(ev: np.ndarray):
    return (ev["x"].astype(np.int64), ev["y"].astype(np.int64), ev["t"].astype(np.int64),
            ev["p"].astype(np.int64))


def _steps(events: list, dt: int, t_start: int, T) -> int:
    if T is not None:
        return _int("T", T, 1)
    latest = max([int(ev["t"][-1]) for ev in events if len(ev)] + [t_start])
    return max((latest - t_start) // dt + 1, 1)


def to_frames(events, sensor_size, dt, T: int | None = None, t_start: int = 0,
              binary: bool = False) -> np.ndarray:
    """Event counts per bin of ``dt`` microseconds: float32 ``[T, P, H, W]``.

    Step ``k`` holds ``t_start + k dt <= t < t_start + (k + 1) dt``; T defaults to enough
    steps for the latest event; events outside the window are dropped.  ``binary`` gives
    1 where any event fell.  Frames equal ``to_dense(to_batch(...))`` of the same events.
    """
    return batch_frames([events], sensor_size, dt, T, t_start, binary)[:, 0]


def batch_frames(samples, sensor_size, dt, T: int | None = None, t_start: int = 0,
                 binary: bool = False) -> np.ndarray:
    """:func:`to_frames` of B recordings, stacked time-major: float32 ``[T, B, P, H, W]``
    (T defaults to enough steps for the latest event of any sample)."""
    W, H, P = sensor(sensor_size)
    dt = _int("dt", dt, 1)
    t_start = _int("t_start", t_start, 0)
    samples = [check_events(ev, (W, H, P), f"events[{k}]") for k, ev in enumerate(samples)]
    if not samples:
        raise ValueError("batch_frames: no samples")
    T = _steps(samples, dt, t_start, T)
    out = np.zeros((len(samples), T, P, H, W), dtype=np.float32)
    for b, ev in enumerate(samples):
        x, y, t, p = _cols(ev)
        EK.bin_frames(x, y, t, p, t_start, dt, bool(binary), out[b])
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3, 4))


def refractory(events, sensor_size, period, per_polarity: bool = True) -> np.ndarray:
    """Drop every event that follows a *kept* event of the same pixel by less than
    ``period`` microseconds (``per_polarity``: ON and OFF channels count separately)."""
    W, H, P = sensor(sensor_size)
    period = _int("period", period, 0)
    ev = check_events(events, (W, H, P))
    x, y, t, p = _cols(ev)
    keep = EK.refractory_mask(x, y, t, p, W, H, P if per_polarity else 1, period)
    return ev[keep]


def denoise(events, sensor_size, window) -> np.ndarray:
    """Drop every event whose 8 neighbouring pixels (any polarity) had no event in the
    ``window`` microseconds before it (background-activity filter; an event at the same
    time counts if it comes earlier in the array)."""
    W, H, P = sensor(sensor_size)
    window = _int("window", window, 0)
    ev = check_events(events, (W, H, P))
    x, y, t, _ = _cols(ev)
    return ev[EK.denoise_mask(x, y, t, W, H, window)]


def crop(events, sensor_size, x0: int, y0: int, width: int, height: int) -> tuple:
    """Keep the events in the rectangle ``x0 <= x < x0 + width``, ``y0 <= y < y0 + height``
    (which must lie inside the sensor), shifted to start at 0.

    Returns ``(events, (width, height, P))``.
    """
    W, H, P = sensor(sensor_size)
    x0, y0 = _int("x0", x0, 0), _int("y0", y0, 0)
    width, height = _int("width", width, 1), _int("height", height, 1)
    if x0 + width > W or y0 + height > H:
        raise ValueError(f"crop: rectangle x0={x0}, y0={y0}, width={width}, height={height} "
                         f"reaches outside the sensor ({W}x{H})")
    ev = check_events(events, (W, H, P))
    keep = (ev["x"] >= x0) & (ev["x"] < x0 + width) & (ev["y"] >= y0) & (ev["y"] < y0 + height)
    out = ev[keep]  # a copy (boolean indexing)
    out["x"] -= x0
    out["y"] -= y0
    return out, (width, height, P)


def downsample(events, sensor_size, factor) -> tuple:
    """Divide the coordinates by an integer ``factor`` (an int for both axes, or
    ``(fx, fy)``): ``x // fx``, ``y // fy``, on a sensor of ``ceil(W / fx) x ceil(H / fy)``.
    Every event is kept (binning then counts the events of a block).

    Returns ``(events, (ceil(W / fx), ceil(H / fy), P))``.
    """
    W, H, P = sensor(sensor_size)
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(f"factor: expected an int or (fx, fy), got {factor!r}")
        fx, fy = _int("factor[0]", factor[0], 1), _int("factor[1]", factor[1], 1)
    else:
        fx = fy = _int("factor", factor, 1)
    ev = check_events(events, (W, H, P)).copy()
    ev["x"] //= fx
    ev["y"] //= fy
    return ev, (math.ceil(W / fx), math.ceil(H / fy), P)
