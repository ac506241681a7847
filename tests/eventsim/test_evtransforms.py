"""Event transforms (eventsim.evtransforms, Numba) against the plain-Python twins in
tests/reference/naive_events.py, on random events; and the structured-array helpers
(eventsim.evdata): validation, EventBatch round trips, frames == dense batch."""
from __future__ import annotations

import numpy as np
import pytest

from eventsim import evdata, evtransforms as X
from eventsim.inputs import to_dense
from tests.reference import naive_events as naive

SENSOR = (9, 7, 2)  # W, H, P


def _events(seed, n=400, sensor=SENSOR, t_max=20_000, dup=True):
    """Random sorted events; ``dup`` forces repeated timestamps and pixels."""
    rng = np.random.default_rng(seed)
    W, H, P = sensor
    t = np.sort(rng.integers(0, t_max, n))
    if dup:
        t[1::7] = t[0::7][:len(t[1::7])]
        t = np.sort(t)
    return evdata.make_events(rng.integers(0, W, n), rng.integers(0, H, n), t, rng.integers(0, P, n))


def _tuples(ev):
    return [tuple(int(v) for v in e) for e in ev[["x", "y", "t", "p"]].tolist()]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dt,T,t_start,binary", [(1000, 20, 0, False), (3000, 4, 2500, False),
                                                  (700, 40, 0, True), (5000, None, 0, False)])
def test_frames_match_reference(seed, dt, T, t_start, binary):
    ev = _events(seed)
    W, H, P = SENSOR
    got = X.to_frames(ev, SENSOR, dt, T=T, t_start=t_start, binary=binary)
    T_ref = T if T is not None else int(ev["t"].max()) // dt + 1
    np.testing.assert_array_equal(got, naive.frames(_tuples(ev), W, H, P, dt, T_ref, t_start, binary))


@pytest.mark.parametrize("seed", range(3))
def test_frames_equal_the_dense_batch(seed):
    samples = [_events(seed), _events(seed + 10, n=50), _events(seed + 20, n=0)]
    frames = X.batch_frames(samples, SENSOR, 2000, T=12)
    dense = to_dense(evdata.to_batch(samples, SENSOR, 2000, T=12))
    np.testing.assert_array_equal(frames, dense)          # [T, B, P, H, W] both


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("period", [0, 1, 500, 3000])
@pytest.mark.parametrize("per_polarity", [True, False])
def test_refractory_matches_reference(seed, period, per_polarity):
    ev = _events(seed)
    got = X.refractory(ev, SENSOR, period, per_polarity=per_polarity)
    assert _tuples(got) == naive.refractory(_tuples(ev), period, per_polarity)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("window", [0, 50, 400, 5000])
def test_denoise_matches_reference(seed, window):
    ev = _events(seed, n=250)
    got = X.denoise(ev, SENSOR, window)
    assert _tuples(got) == naive.denoise(_tuples(ev), window)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("rect", [(0, 0, 9, 7), (2, 1, 4, 5), (8, 6, 1, 1)])
def test_crop_matches_reference(seed, rect):
    ev = _events(seed)
    got, size = X.crop(ev, SENSOR, *rect)
    assert size == (rect[2], rect[3], 2)
    assert _tuples(got) == naive.crop(_tuples(ev), *rect)
    evdata.check_events(got, size)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("factor,expect", [(2, (5, 4, 2)), ((3, 2), (3, 4, 2)), (1, SENSOR)])
def test_downsample_matches_reference(seed, factor, expect):
    ev = _events(seed)
    got, size = X.downsample(ev, SENSOR, factor)
    fx, fy = factor if isinstance(factor, tuple) else (factor, factor)
    assert size == expect
    assert _tuples(got) == naive.downsample(_tuples(ev), fx, fy)
    evdata.check_events(got, size)


def test_transforms_leave_their_input_alone():
    ev = _events(0)
    before = ev.copy()
    X.refractory(ev, SENSOR, 100)
    X.denoise(ev, SENSOR, 100)
    X.crop(ev, SENSOR, 1, 1, 3, 3)
    X.downsample(ev, SENSOR, 2)
    np.testing.assert_array_equal(ev, before)


@pytest.mark.parametrize("call,match", [
    (lambda ev: X.to_frames(ev, SENSOR, 0), r"dt: expected an integer >= 1, got 0"),
    (lambda ev: X.to_frames(ev, SENSOR, 10, T=0), r"T: expected an integer >= 1"),
    (lambda ev: X.refractory(ev, SENSOR, -1), r"period: expected an integer >= 0"),
    (lambda ev: X.denoise(ev, SENSOR, 1.5), r"window: expected an integer >= 0, got 1.5"),
    (lambda ev: X.crop(ev, SENSOR, 5, 0, 5, 2), r"reaches outside the sensor \(9x7\)"),
    (lambda ev: X.downsample(ev, SENSOR, 0), r"factor: expected an integer >= 1, got 0"),
    (lambda ev: X.to_frames(ev, (4, 7, 2), 10), r"events\[0\].x\[\d+\] = \d: outside the sensor"),
    (lambda ev: X.denoise(ev, (9, 7), 10), r"sensor_size: expected \(W, H, P\)"),
])
def test_transform_arguments_are_checked(call, match):
    with pytest.raises(ValueError, match=match):
        call(_events(0))


# ---- evdata --------------------------------------------------------------------------
def test_make_events_refuses_wrapping_and_disorder():
    with pytest.raises(ValueError, match=r"events.x\[1\] = 40000: outside \[0, 32767\]"):
        evdata.make_events([0, 40000], [0, 0], [0, 1], [0, 0])
    with pytest.raises(ValueError, match=r"events.t\[2\] = 3: timestamps out of order"):
        evdata.make_events([0, 0, 0], [0, 0, 0], [1, 5, 3], [0, 1, 0])
    with pytest.raises(ValueError, match=r"events.t\[0\] = -1"):
        evdata.make_events([0], [0], [-1], [0])
    with pytest.raises(ValueError, match=r"events.p\[0\] = 0.5: expected an integer"):
        evdata.make_events([0], [0], [1], [0.5])


def test_check_events_converts_tonic_layouts():
    tonic = np.zeros(3, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<f8"), ("p", "<i8")])
    tonic["x"], tonic["y"], tonic["t"], tonic["p"] = [1, 2, 3], [0, 1, 2], [0.0, 5.0, 9.0], [-1, 1, -1]
    ev = evdata.check_events(tonic, (4, 3, 2))
    assert ev.dtype == evdata.EVENT_DTYPE
    assert ev["p"].tolist() == [0, 1, 0] and ev["t"].tolist() == [0, 5, 9]
    audio = np.zeros(2, dtype=[("x", "<u2"), ("t", "<u8")])
    audio["x"], audio["t"] = [3, 699], [10, 10]
    assert evdata.check_events(audio, (700, 1, 1))["x"].tolist() == [3, 699]
    with pytest.raises(ValueError, match=r"events.y\[1\] = 3: outside the sensor"):
        evdata.check_events(evdata.make_events([0, 0], [0, 3], [0, 1], [0, 0]), (4, 3, 2))
    with pytest.raises(ValueError, match=r"missing field\(s\) \['y'\]"):
        evdata.check_events(audio, (700, 2, 1))


@pytest.mark.parametrize("seed", range(3))
def test_batch_round_trip(seed):
    samples = [_events(seed), _events(seed + 5, n=30), _events(seed + 6, n=0)]
    batch = evdata.to_batch(samples, SENSOR, 1000, T=25)
    back, size = evdata.from_batch(batch, 1000)
    assert size == SENSOR
    again = evdata.to_batch(back, size, 1000, T=25)
    for f in ("times", "indices", "values", "sample_ptr"):
        np.testing.assert_array_equal(getattr(again, f), getattr(batch, f))
    # the events come back on the start of their bin, as many as were binned
    for ev, b in zip(samples, back):
        assert len(b) == len(ev)
        np.testing.assert_array_equal(np.sort(b["t"]), np.sort(ev["t"] // 1000 * 1000))


def test_from_batch_refuses_non_counts():
    batch = evdata.to_batch([_events(0, n=5)], SENSOR, 1000)
    bad = type(batch)(batch.times, batch.indices, batch.values * 0.5, batch.sample_ptr, batch.T,
                      batch.input_shape)
    with pytest.raises(ValueError, match=r"values\[\d+\] = 0.5: expected a positive integer count"):
        evdata.from_batch(bad, 1000)
