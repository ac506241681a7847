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


def dvs(img, pad, path_x, path_y, frame_us, c_on, c_off, refractory, log_eps):
    """The DVS pixel model of eventsim.saccades, one pixel and frame at a time; returns
    (x, y, t, p) tuples sorted stably by t."""
    h, w = img.shape
    H, W = c_on.shape

    def sample(r, c):  # bilinear, zero outside
        r0, c0 = int(np.floor(r)), int(np.floor(c))
        fr, fc = r - r0, c - c0
        v = 0.0
        for rr, wr in ((r0, 1.0 - fr), (r0 + 1, fr)):
            for cc, wc in ((c0, 1.0 - fc), (c0 + 1, fc)):
                if 0 <= rr < h and 0 <= cc < w:
                    v += wr * wc * img[rr, cc]
        return v

    def level(f, r, c):
        return np.log(log_eps + sample(r - pad - path_y[f], c - pad - path_x[f]))

    L_ref = {(r, c): level(0, r, c) for r in range(H) for c in range(W)}
    L_prev = dict(L_ref)
    last = {}
    events = []
    for f in range(1, len(path_x)):
        for r in range(H):
            for c in range(W):
                L, Lp = level(f, r, c), L_prev[r, c]
                L_prev[r, c] = L
                d = L - L_ref[r, c]
                if d >= c_on[r, c]:
                    C, sign = c_on[r, c], 1
                elif -d >= c_off[r, c]:
                    C, sign = c_off[r, c], -1
                else:
                    continue
                k = int(np.floor(abs(d) / C))
                for j in range(1, k + 1):
                    frac = (L_ref[r, c] + sign * j * C - Lp) / (L - Lp) if L != Lp else 1.0
                    te = (f - 1) * frame_us + int(np.rint(min(max(frac, 0.0), 1.0) * frame_us))
                    if (r, c) in last and te - last[r, c] < refractory:
                        continue
                    last[r, c] = te
                    events.append((c, r, te, 1 if sign > 0 else 0))
                L_ref[r, c] += sign * k * C
    return sorted(events, key=lambda e: e[2])
