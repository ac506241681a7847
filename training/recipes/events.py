"""Training-side reader of event files (docs/event-files.md, written by ``eventsim convert``).

The training package never imports ``eventsim``, so this module reads the same HDF5 layout
itself (with :func:`snncore.fileio.open_hdf5`) and bins each sample into dense frames of
event counts, the way ``eventsim.inputs.from_tonic`` bins them for the simulator: step
``k = floor(t / dt)`` (t in microseconds), events at ``k >= T`` dropped, channel ``p`` (a
signed polarity -1 to channel 0, +1 to channel 1; one channel when P = 1).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from snncore.fileio import open_hdf5

from .schema import RecipeError


def read_frames(path, T: int, dt_us: float | None, limit: int | None, key: str, dtype):
    """Frames of an event file: ``(frames [N, T, P, H, W], labels [N] int64, dt_us)``.

    ``key`` is the config key that named the file (for messages).  Raises RecipeError
    naming ``key`` and the path when the file is missing or malformed, has no labels, or
    gives no bin width (neither ``dt_us`` nor the file's ``dt``).
    """
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{key}: event file {path} does not exist")
    try:
        with open_hdf5(p, "event file", RecipeError) as f:
            if f.attrs.get("format") not in ("snn-events", b"snn-events"):
                raise RecipeError(f"{key}: {path} is not an event file (format "
                                  f"{f.attrs.get('format')!r}, expected 'snn-events')")
            W, H, P = (int(v) for v in np.asarray(f.attrs["sensor_size"]))
            N = int(f.attrs["n_samples"])
            if dt_us is None:
                dt_us = f.attrs.get("dt")
                if dt_us is None:
                    raise RecipeError(f"data.dt_us: {path} suggests no bin width; set "
                                      "data.dt_us (microseconds)")
                dt_us = float(dt_us)
            if "labels" not in f:
                raise RecipeError(f"{key}: {path} has no labels; training needs them")
            cols = {c: np.asarray(f["events"][c]) for c in ("x", "y", "t", "p", "sample")}
            labels = np.asarray(f["labels"]).astype(np.int64)
    except (KeyError, OSError, TypeError, ValueError) as e:
        if isinstance(e, RecipeError):
            raise
        raise RecipeError(f"{key}: {path}: corrupt or truncated event file "
                          f"({type(e).__name__}: {e})") from None
    n = N if limit is None else min(limit, N)
    return _bin(cols, n, (W, H, P), T, dt_us, dtype, key, path), labels[:n], float(dt_us)


def _bin(cols: dict, n: int, sensor, T: int, dt_us: float, dtype, key: str, path):
    """Count the events of samples ``0..n-1`` into ``[n, T, P, H, W]``."""
    W, H, P = sensor
    s = cols["sample"].astype(np.int64)
    keep = s < n
    x, y = cols["x"][keep].astype(np.int64), cols["y"][keep].astype(np.int64)
    t, p, s = cols["t"][keep].astype(np.float64), cols["p"][keep].astype(np.int64), s[keep]
    if P == 1:
        p = np.zeros_like(p)
    elif P == 2:
        p = np.where(p < 0, 0, p)
    bad = (x < 0) | (x >= W) | (y < 0) | (y >= H) | (p < 0) | (p >= P) | ~(t >= 0)
    if bad.any():
        j = int(np.argmax(bad))
        raise RecipeError(f"{key}: {path}: event {j} (x={x[j]}, y={y[j]}, p={p[j]}, t={t[j]}) "
                          f"lies outside the sensor {(W, H, P)}")
    step = np.floor(t / dt_us).astype(np.int64)
    inside = step < T
    frames = np.zeros((n, T, P, H, W), dtype=dtype)
    np.add.at(frames, (s[inside], step[inside], p[inside], y[inside], x[inside]), 1)
    return frames
