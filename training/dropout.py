"""Inverted dropout with one mask per sample shared by all time steps.

In training mode each sample and feature keeps its value with probability ``1 - p`` for the
whole sequence (the "one mask for all steps" of docs/methods.md section 9)::

    m[b, f] = 1[u[b, f] >= p] / (1 - p),   u ~ U[0, 1)      (drawn once per forward)
    y[t, b, f] = m[b, f] x[t, b, f]         dx[t, b, f] = m[b, f] g[t, b, f]

so the expected output equals the input.  In eval mode the layer is the identity.  The
mask comes from the layer's own explicit ``np.random.Generator``.  Because the mask does
not depend on ``t``, a static input (stride-0 time axis) gives a static output.
"""
from __future__ import annotations

import numpy as np

from .layers import _init_rng
from .module import Module, broadcast_time, is_static


class Dropout(Module):
    """Dropout of ``[T, B, *features]`` with a time-invariant mask per sample.

    Args:
        p: drop probability in [0, 1].
        rng: seed or Generator for the masks (seed 0 when None).

    Attributes:
        mask: the scaled mask ``[B, *features]`` of the last training forward
            (values 0 or ``1/(1-p)``, the input's dtype), or None.
        fixed_mask: when True, training forwards reuse ``mask`` instead of drawing a new
            one (gradient checks; replaying a sequence step by step with one mask).
    """

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must lie in [0, 1], got {p}")
        self.p = p
        self.rng = _init_rng(rng)
        self.rng_given = rng is not None   # else fit gives it a stream of its own
        self.mask = None
        self.fixed_mask = False
        self._shape = None       # input shape of the last training forward

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"

    def _draw_mask(self, shape: tuple, dtype) -> np.ndarray:
        if self.p >= 1.0:
            return np.zeros(shape, dtype=dtype)
        keep = self.rng.random(shape) >= self.p
        return keep.astype(dtype) * dtype.type(1.0 / (1.0 - self.p))

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        if x.ndim < 3:
            raise ValueError(f"{self!r}: expected input [T, B, ...features], got shape {x.shape}")
        if not self.training:
            self.reset_cache()
            return x
        self._shape = x.shape
        if self.p == 0.0:
            return x
        shape = x.shape[1:]
        if self.fixed_mask and self.mask is not None:
            if self.mask.shape != shape:
                raise ValueError(f"{self!r}: fixed mask of shape {self.mask.shape} does not fit "
                                 f"input of shape {x.shape}")
            if self.mask.dtype != x.dtype:
                self.mask = self.mask.astype(x.dtype)
        else:
            self.mask = self._draw_mask(shape, x.dtype)
        if is_static(x):
            return broadcast_time(x[0] * self.mask, x.shape[0])
        return x * self.mask

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True):
        self._require_cache("_shape")
        if grad_y.shape != self._shape:
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape}, expected {self._shape}")
        if not need_input_grad:
            return None
        return grad_y if self.p == 0.0 else grad_y * self.mask

    def reset_state(self, batch_size: int) -> None:
        """Start a sequence: its mask is drawn at the first training :meth:`step` (kept when
        ``fixed_mask`` is set)."""
        super().reset_state(batch_size)
        self._step_mask = None

    def step(self, x_t: np.ndarray) -> np.ndarray:
        """One step ``x_t [B, ...]``: identity in eval mode; in training mode one mask per
        sequence (drawn at its first step, as ``forward`` draws one for all steps)."""
        x_t = self._check_input(np.asarray(x_t)[None])[0]
        if not self.training or self.p == 0.0:
            self._step_mask = None
            return x_t
        mask = getattr(self, "_step_mask", None)
        if mask is None:
            if self.fixed_mask and self.mask is not None:
                mask = self.mask.astype(x_t.dtype)
            else:
                mask = self.mask = self._draw_mask(x_t.shape, x_t.dtype)
            self._step_mask = mask
        if mask.shape != x_t.shape:
            raise ValueError(f"{self!r}: the sequence's mask has shape {mask.shape}, the step "
                             f"input {x_t.shape} (call reset_state for a new batch)")
        return x_t * mask

    def step_backward(self, grad_y_t: np.ndarray) -> np.ndarray:
        mask = getattr(self, "_step_mask", None)
        return grad_y_t if mask is None else grad_y_t * mask

    def reset_cache(self) -> None:
        """Drop the cached shape (and the mask, unless ``fixed_mask`` is set)."""
        if not self.fixed_mask:
            self.mask = None
        self._shape = None
