"""The canonical neuron's two forms (Numba scalar, NumPy arrays) give the same bits."""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from snncore.neuron import RESET_CODES, NeuronParams, canonical_step, canonical_update


@njit(cache=True)
def _run_scalar(I, beta, theta, reset, v_reset, has_vmin, v_min, ternary, U, S):
    T, N = I.shape
    for n in range(N):
        v = I.dtype.type(0.0)
        for t in range(T):
            U[t, n], S[t, n], v = canonical_update(v, I[t, n], beta, theta, reset, v_reset,
                                                   has_vmin, v_min, ternary)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset", ["hard", "subtract"])
@pytest.mark.parametrize("spikes", ["binary", "ternary"])
@pytest.mark.parametrize("v_min", [None, 0.0, -0.25])
def test_scalar_and_array_forms_agree(dtype, reset, spikes, v_min):
    rng = np.random.default_rng(3)
    I = (rng.standard_normal((40, 64)) * 0.8).astype(dtype)
    I[5, :4] = 0.5          # lands exactly on theta after a reset to 0: `>=` fires
    p = NeuronParams(beta=0.75, theta=0.5, reset=reset, v_reset=0.125, v_min=v_min, spikes=spikes)
    d = np.dtype(dtype).type
    U, S = np.empty_like(I), np.empty(I.shape, dtype=np.int64)
    _run_scalar(I, d(p.beta), d(p.theta), RESET_CODES[reset], d(p.v_reset), v_min is not None,
                d(0.0 if v_min is None else v_min), spikes == "ternary", U, S)
    v = np.zeros(I.shape[1], dtype=dtype)
    for t in range(I.shape[0]):
        u, s, v = canonical_step(v, I[t], p)
        np.testing.assert_array_equal(u, U[t])
        np.testing.assert_array_equal(s, S[t].astype(dtype))
    assert (S == 1).any() and ((S == -1).any() == (spikes == "ternary"))


def test_threshold_test_is_inclusive_and_ternary_symmetric():
    p = NeuronParams(beta=1.0, theta=1.0, reset="subtract", spikes="ternary")
    u, s, v = canonical_step(np.zeros(3), np.array([1.0, -1.0, 0.999]), p)
    np.testing.assert_array_equal(s, [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(v, [0.0, 0.0, 0.999])
