"""Input converters refuse empty batches and implausible tonic timestamps with named errors."""
import numpy as np
import pytest

from eventsim import inputs

TONIC_F = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<f8"), ("p", "<i1")])


def _events(ts, dtype=TONIC_F):
    return np.array([(k % 2, 0, t, k % 2) for k, t in enumerate(ts)], dtype=dtype)


# -- empty batches: refused by every encoder, as EventBatch and the Simulator refuse B = 0 --------
@pytest.mark.parametrize("encode", [
    lambda x: inputs.rate_code(x, 4, np.random.default_rng(0)),
    lambda x: inputs.poisson_code(x, 4, np.random.default_rng(0), max_rate_hz=100.0, dt=1e-3),
    lambda x: inputs.direct(x, 4),
], ids=["rate_code", "poisson_code", "direct"])
def test_empty_batch_is_refused_by_every_encoder(encode):
    with pytest.raises(ValueError, match=r"images: empty batch, shape \(0, 784\).*B >= 1"):
        encode(np.zeros((0, 784), np.float32))
    with pytest.raises(ValueError, match=r"images: shape \(2, 0\) has no features"):
        encode(np.zeros((2, 0), np.float32))


# -- from_tonic: timestamps in seconds ---------------------------------------------------------
def test_float_seconds_are_refused_with_the_fix():
    ev = _events(np.linspace(0.0, 0.3, 50))            # a 300 ms recording, in seconds
    with pytest.raises(ValueError, match=r"events\.t: float timestamps .* first step .*"
                                         r"microseconds.*time_unit='s'.*1e6"):
        inputs.from_tonic(ev, (2, 1, 2), dt=1000)
    with pytest.raises(ValueError, match=r"events\[\.\.\.\]\.t: float timestamps"):
        inputs.from_tonic([ev, ev[:10]], (2, 1, 2), dt=1000, T=100)


def test_time_unit_converts_to_microseconds():
    ts = np.linspace(0.0, 0.3, 50)
    b = inputs.from_tonic(_events(ts), (2, 1, 2), dt=1000, time_unit="s")
    us = inputs.from_tonic(_events(np.round(ts * 1e6)), (2, 1, 2), dt=1000)
    assert b.T == us.T == 301
    np.testing.assert_array_equal(b.times, us.times)
    np.testing.assert_array_equal(b.indices, us.indices)
    ms = inputs.from_tonic(_events(np.round(ts * 1e3, 3)), (2, 1, 2), dt=1000, time_unit="ms")
    np.testing.assert_array_equal(ms.times, us.times)


def test_explicit_microseconds_or_one_step_skip_the_check():
    ev = _events([0.25, 0.5, 0.75])
    assert inputs.from_tonic(ev, (2, 1, 2), dt=1000, time_unit="us").T == 1
    assert inputs.from_tonic(ev, (2, 1, 2), dt=1000, T=1).T == 1
    # integer or integral timestamps, and float ones spanning several steps, are not questioned
    assert inputs.from_tonic(_events([0.0, 1.0, 2.0]), (2, 1, 2), dt=1000).T == 1
    assert inputs.from_tonic(_events([0.5, 2500.5]), (2, 1, 2), dt=1000).T == 3


def test_bad_time_unit_is_named():
    with pytest.raises(ValueError, match=r"time_unit: must be one of \['us', 'ms', 's'\]"):
        inputs.from_tonic(_events([1.0]), (2, 1, 2), dt=1000, time_unit="sec")
