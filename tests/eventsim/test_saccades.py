"""The image-to-events converter (eventsim.saccades): against the plain-Python DVS model in
tests/reference/naive_events.py, its invariants, its determinism, and its event file."""
from __future__ import annotations

import numpy as np
import pytest

from eventsim import evdata
from eventsim.eventfile import load_events
from eventsim.saccades import (DVSConfig, image_to_events, images_to_event_file, pixel_thresholds,
                               saccade_path)
from tests.reference import naive_events as naive


def _images(seed, n=3, side=6):
    rng = np.random.default_rng(seed)
    img = rng.random((n, side, side))
    img[:, :, : side // 3] = 0.0          # some flat background, as in Fashion-MNIST
    return img


SMALL = dict(duration_us=30_000, frame_us=1_000, pad=2, amplitude=1.5)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("refractory", [0, 1_500])
@pytest.mark.parametrize("sigma", [0.0, 0.05])
def test_matches_the_reference_model(seed, refractory, sigma):
    cfg = DVSConfig(**SMALL, refractory_us=refractory, threshold_sigma=sigma, seed=seed, threshold=0.15)
    imgs = _images(seed)
    samples, size = image_to_events(imgs, cfg)
    assert size == (10, 10, 2)
    c_on, c_off = pixel_thresholds((10, 10), cfg)
    px, py = saccade_path(cfg)
    for img, ev in zip(imgs, samples):
        want = naive.dvs(img, cfg.pad, px, py, cfg.frame_us, c_on, c_off, refractory, cfg.log_eps)
        assert len(want) > 20
        assert [tuple(int(v) for v in e) for e in ev.tolist()] == want


def test_saccade_path_is_a_closed_triangle():
    cfg = DVSConfig(duration_us=300_000, frame_us=1_000, amplitude=2.0)
    x, y = saccade_path(cfg)
    assert len(x) == 301
    corners = [(-1.0, -1.0), (0.0, 1.0), (1.0, -1.0), (-1.0, -1.0)]
    for k, c in enumerate(corners):              # a corner every 100 ms
        assert (x[100 * k], y[100 * k]) == pytest.approx(c)
    assert np.abs(x).max() <= 1.0 and np.abs(y).max() <= 1.0
    steps = np.hypot(np.diff(x), np.diff(y))     # constant speed within a saccade
    np.testing.assert_allclose(steps[:100], steps[0])


def test_thresholds_are_seeded_and_spread():
    cfg = DVSConfig(threshold=0.2, threshold_sigma=0.02, seed=4)
    on, off = pixel_thresholds((100, 100), cfg)
    assert on.mean() == pytest.approx(0.2, abs=0.002) and on.std() == pytest.approx(0.02, rel=0.05)
    assert not np.array_equal(on, off)
    np.testing.assert_array_equal(on, pixel_thresholds((100, 100), cfg)[0])
    assert not np.array_equal(on, pixel_thresholds((100, 100), DVSConfig(threshold=0.2, threshold_sigma=0.02, seed=5))[0])
    assert pixel_thresholds((50, 50), DVSConfig(threshold=0.2, threshold_sigma=1.0))[0].min() == pytest.approx(0.02)


def test_on_and_off_balance_on_a_closed_path():
    """The path ends where it started, so each pixel's log intensity returns to its start:
    without a refractory period, ON minus OFF change is less than one threshold."""
    cfg = DVSConfig(**SMALL, refractory_us=0, threshold_sigma=0.05, threshold=0.1)
    (ev,), (W, H, _) = image_to_events(_images(1, n=1), cfg)
    c_on, c_off = pixel_thresholds((H, W), cfg)
    n_on = np.zeros((H, W)); n_off = np.zeros((H, W))
    np.add.at(n_on, (ev["y"][ev["p"] == 1], ev["x"][ev["p"] == 1]), 1)
    np.add.at(n_off, (ev["y"][ev["p"] == 0], ev["x"][ev["p"] == 0]), 1)
    assert n_on.sum() > 50
    assert np.all(np.abs(n_on * c_on - n_off * c_off) < np.maximum(c_on, c_off) + 1e-12)


def test_refractory_period_is_respected():
    cfg = DVSConfig(**SMALL, refractory_us=4_000, threshold=0.05)
    (ev,), size = image_to_events(_images(2, n=1), cfg)
    evdata.check_events(ev, size)                      # sorted, inside the sensor
    key = ev["y"].astype(np.int64) * size[0] + ev["x"]
    for k in np.unique(key):
        assert np.all(np.diff(ev["t"][key == k]) >= 4_000)


def test_blank_images_give_no_events_and_uint8_equals_float():
    samples, _ = image_to_events(np.zeros((2, 5, 5)), DVSConfig(**SMALL))
    assert [len(s) for s in samples] == [0, 0]
    u8 = (np.random.default_rng(0).random((2, 6, 6)) * 255).astype(np.uint8)
    a, _ = image_to_events(u8, DVSConfig(**SMALL))
    b, _ = image_to_events(u8 / 255.0, DVSConfig(**SMALL))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_default_config_is_nmnist_like():
    (ev,), size = image_to_events(_images(0, n=1, side=28)[0])
    assert size == (34, 34, 2)
    assert 0 <= ev["t"].min() and ev["t"].max() <= 300_000
    assert set(np.unique(ev["p"])) == {0, 1}


@pytest.mark.parametrize("cfg,match", [
    (DVSConfig(threshold=0), r"DVSConfig.threshold: expected > 0, got 0"),
    (DVSConfig(frame_us=0), r"DVSConfig.frame_us: expected an integer in \[1, duration_us\]"),
    (DVSConfig(amplitude=7.0), r"DVSConfig.amplitude: expected in \[0, 2 pad = 6\], got 7.0"),
    (DVSConfig(refractory_us=1.5), r"DVSConfig.refractory_us: expected an integer >= 0, got 1.5"),
    (DVSConfig(log_eps=float("nan")), r"DVSConfig.log_eps"),
])
def test_config_is_checked(cfg, match):
    with pytest.raises(ValueError, match=match):
        image_to_events(np.zeros((1, 4, 4)), cfg)


def test_images_are_checked():
    with pytest.raises(ValueError, match=r"images\[0, 1, 2\] = 1.5: intensities must be in \[0, 1\]"):
        image_to_events(np.pad(np.full((1, 1, 1), 1.5), ((0, 0), (1, 1), (2, 2))))
    with pytest.raises(ValueError, match=r"images: expected \[N, H, W\]"):
        image_to_events(np.zeros((2, 3, 4, 4)))


def test_event_file(tmp_path):
    imgs, labels = _images(0, n=4), np.array([3, 1, 4, 1])
    cfg = DVSConfig(**SMALL)
    path, n = images_to_event_file(tmp_path / "ev.h5", imgs, labels, cfg, dt=5_000)
    ef = load_events(path)
    assert ef.sensor_size == (10, 10, 2) and ef.dt == 5_000 and ef.labels.tolist() == [3, 1, 4, 1]
    want, _ = image_to_events(imgs, cfg)
    assert n.tolist() == [len(w) for w in want]
    for got, w in zip(ef.events, want):
        for f in "xytp":
            np.testing.assert_array_equal(got[f], w[f])
    with pytest.raises(FileExistsError, match="already exists"):
        images_to_event_file(tmp_path / "ev.h5", imgs, labels, cfg)
