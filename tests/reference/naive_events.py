"""Plain-Python twins of eventsim.evkernels / evtransforms: one event at a time, no Numba.

Events are lists of (x, y, t, p) tuples sorted by t (t in microseconds)."""
from __future__ import annotations

import numpy as np


def frames(events, W, H, P, dt, T, t_start=0, binary=False):
    out = np.zeros((T, P, H, W), dtype=np.float32)
    for x, y, t, p in events:
        s = (t - t_start) // dt if t >= t_start else -1
        if 0 <= s < T:
            out[s, p, y, x] = 1.0 if binary else out[s, p, y, x] + 1.0
    return out


def refractory(events, period, per_polarity=True):
    last = {}
    kept = []
    for x, y, t, p in events:
        key = (x, y, p) if per_polarity else (x, y)
        if key not in last or t - last[key] >= period:
            kept.append((x, y, t, p))
            last[key] = t
    return kept


def denoise(events, window):
    """Keep event i when an earlier event j (j < i) sits on one of the 8 neighbouring pixels
    with t_i - t_j <= window (quadratic search: a definition, not an algorithm)."""
    kept = []
    for i, (x, y, t, p) in enumerate(events):
        for xj, yj, tj, _ in events[:i]:
            if (xj, yj) != (x, y) and abs(xj - x) <= 1 and abs(yj - y) <= 1 and t - tj <= window:
                kept.append((x, y, t, p))
                break
    return kept


def crop(events, x0, y0, width, height):
    return [(x - x0, y - y0, t, p) for x, y, t, p in events
            if x0 <= x < x0 + width and y0 <= y < y0 + height]


def downsample(events, fx, fy):
    return [(x // fx, y // fy, t, p) for x, y, t, p in events]
