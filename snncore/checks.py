"""Argument validators shared by every public function of both engines.

Each returns the converted value or raises an error whose message starts with the name of
the argument (or model-file field) and shows the offending value, so that a bad input is
reported where the user gave it, never deep inside a Numba kernel.  ``error`` selects the
exception class (the model-file reader raises ``ModelFormatError``).
"""
from __future__ import annotations

import math
import numbers

import numpy as np


def positive_int(name: str, v, error: type[Exception] = ValueError) -> int:
    """``v`` as an int >= 1 (bools and floats refused)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 1:
        raise error(f"{name}: must be a positive integer, got {v!r}")
    return int(v)


def generator(v, name: str = "rng") -> np.random.Generator:
    """``v`` if it is a ``np.random.Generator`` (no global or legacy random state)."""
    if not isinstance(v, np.random.Generator):
        raise TypeError(f"{name}: must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(v).__name__}")
    return v


def finite_scalar(name: str, v, lo: float = -math.inf, hi: float = math.inf, *,
                  lo_open: bool = False, error: type[Exception] = ValueError) -> float:
    """``float(v)``, finite and in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise error(f"{name}: expected a number, got {v!r}") from None
    if not math.isfinite(f) or f < lo or f > hi or (lo_open and f == lo):
        if hi == math.inf:
            bound = f"{'>' if lo_open else '>='} {lo}" if lo > -math.inf else "a real number"
        else:
            bound = f"in {'(' if lo_open else '['}{lo}, {hi}]"
        raise error(f"{name}: must be finite and {bound}, got {v!r}")
    return f


def int_pair(name: str, v, minimum: int, error: type[Exception] = ValueError) -> tuple[int, int]:
    """An int ``k`` (meaning ``(k, k)``) or two ints, each >= ``minimum``, as a tuple."""
    if isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)):
        v = (v, v)
    try:
        items = [e for e in np.asarray(v).ravel().tolist()]
    except (TypeError, ValueError):
        items = None
    if (items is None or len(items) != 2
            or not all(isinstance(e, int) and not isinstance(e, bool) for e in items)):
        raise error(f"{name}: must be an int or a pair of ints, got {v!r}")
    a, b = items
    if a < minimum or b < minimum:
        raise error(f"{name}: must be >= {minimum}, got {(a, b)}")
    return a, b


def float_dtype(dtype) -> np.dtype:
    """``np.dtype(dtype)`` if it is a floating type."""
    d = np.dtype(dtype)
    if d.kind != "f":
        raise ValueError(f"dtype: must be a floating type, got {d.name}")
    return d


def images(x, unit_interval: bool, name: str = "images", min_ndim: int = 1,
           nonempty: bool = False) -> np.ndarray:
    """``x`` as an array ``[B, ...]`` of real, finite values (in ``[0, 1]`` when
    ``unit_interval``), not converted; the message names the first bad element.  With
    ``nonempty`` an empty batch (``B == 0``) or a zero-size feature axis is refused too."""
    raw = np.asarray(x)
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real numeric array [B, ...], got dtype {raw.dtype}")
    if raw.ndim < max(1, min_ndim):
        shape = "a batch axis [B, ...]" if min_ndim <= 1 else "[B, ...features]"
        raise ValueError(f"{name}: expected {shape}, got shape {raw.shape}")
    if nonempty and raw.shape[0] == 0:
        raise ValueError(f"{name}: empty batch, shape {raw.shape}: encoders need at least one "
                         "sample (B >= 1)")
    if nonempty and 0 in raw.shape[1:]:
        raise ValueError(f"{name}: shape {raw.shape} has no features (every size must be >= 1)")
    bad = ~np.isfinite(raw) if raw.dtype.kind == "f" else np.zeros(raw.shape, bool)
    if unit_interval:
        bad |= (raw < 0) | (raw > 1)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        need = "finite and in [0, 1]" if unit_interval else "finite"
        hint = (f" ({raw.dtype} pixels? convert them with dataset.float_images() or images / 255)"
                if raw.dtype.kind in "iu" else "")
        raise ValueError(f"{name}{list(where)} = {raw[where].item()!r}: values must be {need}{hint}")
    return raw
