"""Images to events: a simulated event camera watching each image move in saccades.

As N-MNIST was recorded (a DVS on a pan-tilt unit looking at a screen), each image is drawn
on a sensor of ``(h + 2 pad) x (w + 2 pad)`` pixels and moved along a triangle in
``n_saccades`` straight, constant-speed saccades over ``duration_us`` microseconds, back to
where it started.  The image is sampled every ``frame_us`` with sub-pixel (bilinear) shifts.

Each pixel is a DVS pixel (Lichtsteiner et al., 2008): it holds the log intensity
``L = log(log_eps + I)`` of its last event and fires an ON event (``p = 1``) each time ``L``
has risen by its threshold ``c_on``, an OFF event (``p = 0``) each time it has fallen by
``c_off``; event times are interpolated linearly between frames.  Thresholds differ between
pixels (mismatch): ``c_on, c_off ~ N(threshold, threshold_sigma)`` per pixel, clipped at
``threshold / 10``, drawn once from ``seed`` (one sensor for every image).  An event within
``refractory_us`` of the pixel's previous event is dropped (the pixel's level still moves).

:func:`image_to_events` returns the recordings as :mod:`eventsim.evdata` arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import evkernels as EK
from .evdata import EVENT_DTYPE

__all__ = ["DVSConfig", "saccade_path", "pixel_thresholds", "image_to_events"]


@dataclass(frozen=True)
class DVSConfig:
    """Parameters of the simulated sensor and its motion (times in microseconds)."""
    duration_us: int = 300_000
    n_saccades: int = 3
    amplitude: float = 2.0      # side of the triangle, in pixels
    pad: int = 3                # border around the image: 28x28 -> 34x34, as N-MNIST
    frame_us: int = 1_000
    threshold: float = 0.25     # mean contrast threshold C (log units)
    threshold_sigma: float = 0.03
    refractory_us: int = 1_000
    log_eps: float = 0.1        # L = log(log_eps + I), I in [0, 1]
    seed: int = 0

    def check(self) -> "DVSConfig":
        """Raise ValueError naming the first field out of range."""
        rules = [("duration_us", self.duration_us >= 1, "an integer >= 1"),
                 ("n_saccades", self.n_saccades >= 1, "an integer >= 1"),
                 ("amplitude", 0 <= self.amplitude <= self.pad * 2, f"in [0, 2 pad = {2 * self.pad}]"),
                 ("pad", self.pad >= 0, "an integer >= 0"),
                 ("frame_us", 1 <= self.frame_us <= self.duration_us, "an integer in [1, duration_us]"),
                 ("threshold", self.threshold > 0, "> 0"),
                 ("threshold_sigma", self.threshold_sigma >= 0, ">= 0"),
                 ("refractory_us", self.refractory_us >= 0, "an integer >= 0"),
                 ("log_eps", self.log_eps > 0, "> 0"),
                 ("seed", self.seed >= 0, "an integer >= 0")]
        ints = {"duration_us", "n_saccades", "pad", "frame_us", "refractory_us", "seed"}
        for name, ok, need in rules:
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or (name in ints and not isinstance(v, (int, np.integer))):
                raise ValueError(f"DVSConfig.{name}: expected {need}, got {v!r}")
            if not np.isfinite(v) or not ok:
                raise ValueError(f"DVSConfig.{name}: expected {need}, got {v!r}")
        return self


def saccade_path(cfg: DVSConfig) -> tuple[np.ndarray, np.ndarray]:
    """Image shift ``(dx, dy)`` in pixels at frames ``0, frame_us, ...`` up to
    ``duration_us``: float64 ``[F]`` each, piecewise linear through the corners of a
    triangle of side ``amplitude`` centred on 0 (one saccade per side, repeated when
    ``n_saccades > 3``), starting and ending at the first corner."""
    a = cfg.amplitude
    corners = np.array([[-a / 2, -a / 2], [0.0, a / 2], [a / 2, -a / 2]])
    pts = np.array([corners[k % 3] for k in range(cfg.n_saccades + 1)])
    F = cfg.duration_us // cfg.frame_us + 1
    t = np.arange(F, dtype=np.float64) * cfg.frame_us / cfg.duration_us * cfg.n_saccades
    seg = np.minimum(np.floor(t).astype(np.int64), cfg.n_saccades - 1)
    frac = (t - seg)[:, None]
    xy = pts[seg] * (1 - frac) + pts[seg + 1] * frac
    return np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])


def pixel_thresholds(shape: tuple, cfg: DVSConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ON and OFF thresholds ``[H, W]`` (float64) of the sensor, from ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    lo = cfg.threshold / 10
    c_on = np.maximum(rng.normal(cfg.threshold, cfg.threshold_sigma, shape), lo)
    c_off = np.maximum(rng.normal(cfg.threshold, cfg.threshold_sigma, shape), lo)
    return c_on, c_off


def _images(images) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"images: expected [N, H, W] (or [N, 1, H, W]), got shape {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float64) / 255.0
    if x.dtype.kind not in "biuf":
        raise ValueError(f"images: expected numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x) | (x < 0) | (x > 1)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"images{list(where)} = {x[where].item()!r}: intensities must be in [0, 1] "
                         "(or uint8 pixels)")
    return x


def _one(img: np.ndarray, path, c_on, c_off, cfg: DVSConfig, cap: int) -> tuple[np.ndarray, int]:
    while True:
        ex, ey, et, ep = (np.empty(cap, np.int64) for _ in range(4))
        n = EK.dvs_events(img, float(cfg.pad), path[0], path[1], int(cfg.frame_us), c_on, c_off,
                          int(cfg.refractory_us), float(cfg.log_eps), ex, ey, et, ep)
        if n <= cap:
            break
        cap = n
    order = np.argsort(et[:n], kind="stable")
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = ex[order], ey[order], et[order], ep[order]
    return ev, cap


def image_to_events(images, cfg: DVSConfig | None = None) -> tuple[list, tuple]:
    """Event recordings of images moved in saccades (see the module docstring).

    Args:
        images: ``[N, H, W]`` (or ``[N, 1, H, W]`` or one ``[H, W]``) intensities in
            ``[0, 1]``, or uint8 pixels (divided by 255).
        cfg: a :class:`DVSConfig` (default: N-MNIST-like: 3 saccades over 300 ms, 34x34
            sensor for 28x28 images).

    Returns:
        ``(samples, sensor_size)``: N arrays of :data:`eventsim.evdata.EVENT_DTYPE` sorted
        by ``t`` (microseconds, in ``[0, duration_us]``), and ``(W + 2 pad, H + 2 pad, 2)``.
        The same images and config give the same events.
    """
    cfg = (cfg or DVSConfig()).check()
    x = _images(images)
    N, h, w = x.shape
    H, W = h + 2 * cfg.pad, w + 2 * cfg.pad
    path = saccade_path(cfg)
    c_on, c_off = pixel_thresholds((H, W), cfg)
    samples, cap = [], 4096
    for k in range(N):
        ev, cap = _one(np.ascontiguousarray(x[k]), path, c_on, c_off, cfg, cap)
        samples.append(ev)
    return samples, (W, H, 2)


def images_to_event_file(path, images, labels=None, cfg: DVSConfig | None = None,
                         dt: float | None = None, overwrite: bool = False,
                         compression: str = "gzip"):
    """Convert images (:func:`image_to_events`) and write them, with their labels, to an
    event file (:func:`eventsim.eventfile.save_events`: atomic; an existing event file is
    replaced only with ``overwrite``, a file of another kind never).

    ``dt``: the bin width (us) stored as the file's suggestion for ``eventsim simulate
    --events``; ``compression``: as :func:`~eventsim.eventfile.save_events`.
    Returns ``(path, events_per_sample [N] int64)``.
    """
    from snncore.fileio import check_output

    from .eventfile import save_events

    check_output(path, "events", overwrite)  # before the work, not after
    samples, size = image_to_events(images, cfg)
    written = save_events(path, samples, labels=labels, sensor_size=size, dt=dt,
                          overwrite=overwrite, compression=compression)
    return written, np.array([len(ev) for ev in samples], dtype=np.int64)
