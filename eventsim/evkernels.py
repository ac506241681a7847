"""Numba kernels of the event transforms and the image-to-events converter.

Plain ``@njit(cache=True)`` functions over arrays; :mod:`eventsim.evtransforms` and
:mod:`eventsim.saccades` validate everything before calling them.  Their plain-NumPy twins
live in ``tests/reference/naive_events.py``.  Coordinates are int64 columns ``x, y, p``,
timestamps int64 microseconds, sorted.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def bin_frames(x, y, t, p, t_start, dt, binary, out):
    """Add every event into ``out[T, P, H, W]`` (float32) at step ``(t - t_start) // dt``;
    events outside ``[0, T)`` are skipped.  ``binary``: set 1 instead of counting."""
    T = out.shape[0]
    for k in range(len(t)):
        d = t[k] - t_start
        if d < 0:
            continue
        s = d // dt
        if s >= T:
            continue
        if binary:
            out[s, p[k], y[k], x[k]] = 1.0
        else:
            out[s, p[k], y[k], x[k]] += 1.0


@njit(cache=True)
def refractory_mask(x, y, t, p, W, H, P, period):
    """Keep an event unless its pixel (and polarity channel, for ``P > 1`` -- pass ``P = 1``
    to share the period across polarities) had a *kept* event less than ``period``
    microseconds earlier.  Returns a bool ``[n]`` mask."""
    last = np.empty(P * H * W, dtype=np.int64)
    seen = np.zeros(P * H * W, dtype=np.bool_)
    keep = np.zeros(len(t), dtype=np.bool_)
    for k in range(len(t)):
        a = (p[k] * H + y[k]) * W + x[k] if P > 1 else y[k] * W + x[k]
        if not seen[a] or t[k] - last[a] >= period:
            keep[k] = True
            seen[a] = True
            last[a] = t[k]
    return keep


@njit(cache=True)
def denoise_mask(x, y, t, W, H, window):
    """Keep an event when one of its 8 neighbouring pixels (either polarity; not its own
    pixel) had an event, kept or not, at most ``window`` microseconds earlier.  Returns a
    bool ``[n]`` mask."""
    last = np.empty((H, W), dtype=np.int64)
    seen = np.zeros((H, W), dtype=np.bool_)
    keep = np.zeros(len(t), dtype=np.bool_)
    for k in range(len(t)):
        xk, yk, tk = x[k], y[k], t[k]
        for yy in range(max(yk - 1, 0), min(yk + 2, H)):
            for xx in range(max(xk - 1, 0), min(xk + 2, W)):
                if (yy != yk or xx != xk) and seen[yy, xx] and tk - last[yy, xx] <= window:
                    keep[k] = True
        seen[yk, xk] = True
        last[yk, xk] = tk
    return keep


@njit(cache=True)
def _bilinear(img, r, c):
    """``img[r, c]`` at real coordinates, bilinear, zero outside the image."""
    H, W = img.shape
    r0 = int(np.floor(r))
    c0 = int(np.floor(c))
    fr = r - r0
    fc = c - c0
    v = 0.0
    for dr in range(2):
        rr = r0 + dr
        if rr < 0 or rr >= H:
            continue
        wr = fr if dr else 1.0 - fr
        for dc in range(2):
            cc = c0 + dc
            if cc < 0 or cc >= W:
                continue
            wc = fc if dc else 1.0 - fc
            v += wr * wc * img[rr, cc]
    return v


@njit(cache=True)
def dvs_events(img, pad, path_x, path_y, frame_us, c_on, c_off, refractory, log_eps,
               ex, ey, et, ep):
    """Events of a DVS pixel array watching ``img`` move along a path.

    img: float64 ``[h, w]`` intensities in [0, 1], drawn at offset ``pad`` on a sensor of
    ``c_on.shape == (H, W)`` pixels; path_x/path_y: float64 ``[F]`` sub-pixel shift of the
    image at frames ``f * frame_us`` microseconds.  Each pixel compares the log intensity
    ``L = log(log_eps + I)`` with its level at its last event and fires ON (p = 1) per
    ``c_on`` of rise and OFF (p = 0) per ``c_off`` of fall, at times interpolated linearly
    within the frame; an event within ``refractory`` us of the pixel's last event is dropped
    (its level still moves).  Writes up to ``len(et)`` events into ``ex, ey, et, ep``
    (unsorted in time within a frame) and returns the number produced (which may exceed
    the capacity: call again with larger buffers).
    """
    H, W = c_on.shape
    L_prev = np.empty((H, W))
    L_ref = np.empty((H, W))
    last = np.full((H, W), -(1 << 62), dtype=np.int64)
    for r in range(H):
        for c in range(W):
            v = _bilinear(img, r - pad - path_y[0], c - pad - path_x[0])
            L_prev[r, c] = np.log(log_eps + v)
            L_ref[r, c] = L_prev[r, c]
    n = 0
    cap = len(et)
    for f in range(1, len(path_x)):
        t0 = (f - 1) * frame_us
        for r in range(H):
            for c in range(W):
                v = _bilinear(img, r - pad - path_y[f], c - pad - path_x[f])
                L = np.log(log_eps + v)
                Lp = L_prev[r, c]
                L_prev[r, c] = L
                d = L - L_ref[r, c]
                if d >= c_on[r, c]:
                    C = c_on[r, c]
                    sign = 1
                elif -d >= c_off[r, c]:
                    C = c_off[r, c]
                    sign = -1
                else:
                    continue
                k = int(np.floor(abs(d) / C))
                for j in range(1, k + 1):
                    level = L_ref[r, c] + sign * j * C
                    frac = (level - Lp) / (L - Lp) if L != Lp else 1.0
                    frac = min(max(frac, 0.0), 1.0)
                    te = t0 + int(np.rint(frac * frame_us))
                    if te - last[r, c] < refractory:
                        continue
                    last[r, c] = te
                    if n < cap:
                        ex[n] = c
                        ey[n] = r
                        et[n] = te
                        ep[n] = 1 if sign > 0 else 0
                    n += 1
                L_ref[r, c] += sign * k * C
    return n
