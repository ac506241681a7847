"""The default floating dtype of new parameters, encoded inputs and dataset images.

One small setting object (no module-level arrays or randomness); ``training`` re-exports
these functions, so ``training.set_default_dtype(np.float64)`` also changes what the
encoders and ``Dataset.float_images`` return.  The simulator never reads it: a model runs in
the dtype of its own arrays (:func:`snncore.modelfile.model_dtype`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

ALLOWED_DTYPES = (np.float32, np.float64)


@dataclass
class _DtypeSetting:
    dtype: type = np.float32


_SETTING = _DtypeSetting()


def set_default_dtype(dtype) -> None:
    """Set the dtype new parameters and encoded inputs use: ``np.float32`` (default) or ``np.float64``."""
    dt = np.dtype(dtype).type
    if dt not in ALLOWED_DTYPES:
        raise ValueError(f"default dtype must be float32 or float64, got {np.dtype(dtype).name}")
    _SETTING.dtype = dt


def get_default_dtype() -> type:
    """The current default float dtype (``np.float32`` unless changed)."""
    return _SETTING.dtype


@contextlib.contextmanager
def default_dtype(dtype):
    """Context manager form of :func:`set_default_dtype`; restores the previous value."""
    previous = _SETTING.dtype
    set_default_dtype(dtype)
    try:
        yield
    finally:
        _SETTING.dtype = previous
