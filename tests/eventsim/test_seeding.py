"""Per-sample encoding streams (eventsim.seeding): the same events for any chunking."""
from __future__ import annotations

import numpy as np
import pytest

from eventsim import inputs
from eventsim.seeding import SampleSeeds


def _images(B=12, seed=0):
    return np.random.default_rng(seed).random((B, 1, 5, 6))


def _sample(ev, b):
    lo, hi = ev.sample_ptr[b], ev.sample_ptr[b + 1]
    return ev.times[lo:hi], ev.indices[lo:hi]


def test_a_sample_draws_the_same_events_in_any_batch():
    x = _images()
    whole = SampleSeeds(3).rate_code(x, 7)
    for start, stop in ((0, 5), (5, 6), (6, 12)):
        part = SampleSeeds(3).at(start).rate_code(x[start:stop], 7)
        for b in range(stop - start):
            for a, c in zip(_sample(whole, start + b), _sample(part, b)):
                np.testing.assert_array_equal(a, c)
    other = SampleSeeds(4).rate_code(x, 7)
    assert not np.array_equal(whole.indices, other.indices)


def test_events_sorted_by_step_and_law_is_bernoulli():
    x = np.full((40, 50), 0.3)
    ev = SampleSeeds(0).rate_code(x, 20)
    for b in range(40):
        t, _ = _sample(ev, b)
        assert np.all(np.diff(t) >= 0)
    dense = inputs.to_dense(ev, dtype=np.float64)
    assert set(np.unique(dense)) <= {0.0, 1.0}
    assert dense.mean() == pytest.approx(0.3, abs=0.01)       # 40000 trials: sd 0.0023
    ones = SampleSeeds(0).rate_code(np.ones((2, 3)), 4)
    zeros = SampleSeeds(0).rate_code(np.zeros((2, 3)), 4)
    assert len(ones.times) == 2 * 3 * 4 and len(zeros.times) == 0


@pytest.mark.parametrize("x, T", [(np.full((2, 3), 1.5), 4), (np.zeros(3), 4),
                                  (np.zeros((2, 3)), 0)])
def test_bad_input_names_the_problem(x, T):
    with pytest.raises(ValueError, match="SampleSeeds.rate_code"):
        SampleSeeds(0).rate_code(x, T)
