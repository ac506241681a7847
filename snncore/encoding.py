"""Input encoders: static images ``x[B, ...]`` -> time-major network inputs ``[T, B, ...]``.

``x`` is typically ``Dataset.float_images()``, i.e. ``[B, 1, 28, 28]`` or ``[B, 784]`` with
values in ``[0, 1]``; any trailing shape is accepted.  Outputs have the dtype given, or
``snncore.dtypes.get_default_dtype()`` (set by ``training.set_default_dtype``).

| encoder   | value at step t                                     | needs x in [0, 1] | random |
|-----------|-----------------------------------------------------|-------------------|--------|
| direct    | ``x`` (analog input current, the same every step)    | no (finite)       | no     |
| rate      | ``1[u_t < clip(gain x, 0, 1)]``                      | yes               | yes    |
| poisson   | ``1[u_t < 1 - exp(-x max_rate_hz dt)]``              | yes               | yes    |

``u_t ~ U[0, 1)`` are float64 draws from the caller's ``np.random.Generator``, one per element
and step in C order of the ``[T, B, ...]`` output, compared with a float64 probability, so the
spikes for a given seed and input do not depend on the output dtype.  There is no module-level randomness.
"""
from __future__ import annotations

import numpy as np

from . import checks
from .dtypes import get_default_dtype

__all__ = ["direct", "rate", "poisson"]


# -- validation (the shared validators of snncore.checks) ---------------------------------
def _out_dtype(dtype) -> np.dtype:
    return checks.float_dtype(get_default_dtype() if dtype is None else dtype)


def _bernoulli(p: np.ndarray, T: int, rng: np.random.Generator, dtype) -> np.ndarray:
    """``s[t] = 1[u_t < p]`` for ``t < T``, ``u_t ~ U[0, 1)`` float64; ``[T, *p.shape]`` of 0/1."""
    out = np.empty((T,) + p.shape, dtype=dtype)
    for t in range(T):   # one step at a time: peak memory O(B*features), same stream as one draw
        np.less(rng.random(p.shape), p, out=out[t])
    return out


# -- encoders -----------------------------------------------------------------------------
def direct(images, T: int, dtype=None) -> np.ndarray:
    """Direct (analog) encoding: the image is the input current at every step.

    Args:
        images: ``[B, ...]`` finite values (usually pixel intensities in [0, 1]).
        T: number of time steps, positive int.
        dtype: output dtype; default ``get_default_dtype()``.

    Returns:
        ``x[T, B, ...]`` with ``x[t] == images`` for every ``t``: a **read-only view**
        ``np.broadcast_to(images[None], (T,) + images.shape)`` whose time axis has stride 0,
        so it costs no memory for ``T``.  The engine's first layer tests
        ``x.strides[0] == 0`` to recognise a static input and computes its synaptic current
        ``W x`` once instead of ``T`` times.  Copy it (``np.array(x)``) if you need to write.
    """
    T = checks.positive_int("T", T)
    dtype = _out_dtype(dtype)
    x = np.ascontiguousarray(checks.images(images, unit_interval=False), dtype=dtype)
    return np.broadcast_to(x[None], (T,) + x.shape)


def rate(images, T: int, rng: np.random.Generator, gain: float = 1.0, dtype=None) -> np.ndarray:
    """Bernoulli rate coding: each pixel spikes independently at each step with probability
    ``p = clip(gain * x, 0, 1)``.

    Args:
        images: ``[B, ...]`` intensities in ``[0, 1]``.
        T: number of time steps, positive int.
        rng: the ``np.random.Generator`` to draw from (required; no global RNG).
        gain: finite, ``>= 0``; spike probability per step is ``gain * x`` clipped to [0, 1].
        dtype: output dtype; default ``get_default_dtype()``.

    Returns:
        ``s[T, B, ...]`` C-contiguous, values 0.0 or 1.0; ``E[s[t]] = p``.

    Raises:
        ValueError: bad ``T`` or ``gain``, non-finite or out-of-range image value (named).
        TypeError: ``rng`` is not a ``np.random.Generator``.
    """
    T = checks.positive_int("T", T)
    rng = checks.generator(rng)
    gain = checks.finite_scalar("gain", gain, 0.0)
    dtype = _out_dtype(dtype)
    x = checks.images(images, unit_interval=True).astype(np.float64)
    p = np.clip(gain * x, 0.0, 1.0)
    return _bernoulli(p, T, rng, dtype)


def poisson(images, T: int, rng: np.random.Generator, max_rate_hz: float, dt: float,
            dtype=None) -> np.ndarray:
    """Poisson rate coding: a pixel of intensity ``x`` fires as a Poisson process of rate
    ``r = x * max_rate_hz`` (Hz), observed in bins of ``dt`` seconds.

    The spike count of a bin is Poisson with mean ``r dt``; it is clipped to at most one spike
    per step, so a step spikes with probability ``P(count >= 1) = 1 - exp(-r dt)`` (close to
    ``r dt`` when ``r dt << 1``; saturates below 1 for large rates).

    Args:
        images: ``[B, ...]`` intensities in ``[0, 1]``.
        T: number of time steps, positive int.
        rng: the ``np.random.Generator`` to draw from (required; no global RNG).
        max_rate_hz: rate of a pixel with ``x = 1``, in Hz, finite ``>= 0``.
        dt: step length in seconds, finite ``> 0``.
        dtype: output dtype; default ``get_default_dtype()``.

    Returns:
        ``s[T, B, ...]`` C-contiguous, values 0.0 or 1.0.

    Raises:
        ValueError: bad ``T``, ``max_rate_hz`` or ``dt``, non-finite or out-of-range image value.
        TypeError: ``rng`` is not a ``np.random.Generator``.
    """
    T = checks.positive_int("T", T)
    rng = checks.generator(rng)
    max_rate_hz = checks.finite_scalar("max_rate_hz", max_rate_hz, 0.0)
    dt = checks.finite_scalar("dt", dt, 0.0, lo_open=True)
    dtype = _out_dtype(dtype)
    x = checks.images(images, unit_interval=True).astype(np.float64)
    p = -np.expm1(-(x * max_rate_hz * dt))     # 1 - exp(-r dt), accurate for small r dt
    return _bernoulli(p, T, rng, dtype)
