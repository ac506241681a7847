"""Engine-wide numeric settings: the default floating dtype and the smooth-mode switch.

Both settings are read when a layer is built (dtype) or when a forward pass runs (smooth
mode).  They live in one small ``Settings`` object instead of scattered module globals, and
each has a context manager so tests can change them without leaking into other tests.

Smooth mode replaces every spike function's Heaviside step by its surrogate's smooth
primitive ``g`` in the forward pass.  The backward passes are unchanged (they already use
``g'``), so in smooth mode the whole network is differentiable and central finite
differences check every hand-derived gradient exactly (docs/methods.md section 4).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

_ALLOWED_DTYPES = (np.float32, np.float64)


@dataclass
class Settings:
    dtype: type = np.float32
    smooth: bool = False


SETTINGS = Settings()


def set_default_dtype(dtype) -> None:
    """Set the dtype new parameters and encoded inputs use: ``np.float32`` (default) or ``np.float64``."""
    dt = np.dtype(dtype).type
    if dt not in _ALLOWED_DTYPES:
        raise ValueError(f"default dtype must be float32 or float64, got {np.dtype(dtype).name}")
    SETTINGS.dtype = dt


def get_default_dtype() -> type:
    return SETTINGS.dtype


def set_smooth_mode(enabled: bool) -> None:
    """Switch every spike function to its surrogate's primitive in the forward pass."""
    SETTINGS.smooth = bool(enabled)


def is_smooth_mode() -> bool:
    return SETTINGS.smooth


@contextlib.contextmanager
def smooth_mode(enabled: bool = True):
    """Context manager form of :func:`set_smooth_mode`; restores the previous value."""
    previous = SETTINGS.smooth
    SETTINGS.smooth = bool(enabled)
    try:
        yield
    finally:
        SETTINGS.smooth = previous


@contextlib.contextmanager
def default_dtype(dtype):
    """Context manager form of :func:`set_default_dtype`; restores the previous value."""
    previous = SETTINGS.dtype
    set_default_dtype(dtype)
    try:
        yield
    finally:
        SETTINGS.dtype = previous
