"""Engine-wide numeric settings: the default floating dtype and the smooth-mode switch.

Both settings are read when a layer is built (dtype) or when a forward pass runs (smooth
mode).  Each has a context manager so tests can change them without leaking into other
tests.  The dtype setting lives in the contract layer (:mod:`snncore.dtypes`), because the
encoders and datasets there follow it too; it is re-exported here.

Smooth mode replaces every spike function's Heaviside step by its surrogate's smooth
primitive ``g`` in the forward pass.  The backward passes are unchanged (they already use
``g'``), so in smooth mode the whole network is differentiable and central finite
differences check every hand-derived gradient exactly (docs/methods.md section 4).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

from snncore.dtypes import default_dtype, get_default_dtype, set_default_dtype

__all__ = ["default_dtype", "get_default_dtype", "set_default_dtype", "set_smooth_mode",
           "is_smooth_mode", "smooth_mode"]


@dataclass
class Settings:
    smooth: bool = False


SETTINGS = Settings()


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
