"""Spiking neurons of the dense engine: LIF and IF (docs/methods.md sections 2-5).

The canonical update (both engines implement it; ``u >= theta`` is the threshold test)::

    u_t = beta * v_{t-1} + gain * I_t          charge  (gain = 1/tau in the tau form, else 1)
    s_t = 1[u_t >= theta]                      fire
    v_t = u_t (1 - s_t) + v_reset s_t          hard reset   (or)   v_t = u_t - theta s_t

:mod:`snncore.neuron` writes that update once (a scalar Numba function and its NumPy
twin :func:`canonical_step`, re-exported here); the classes run it over all T steps at once
in a fused Numba kernel (``kernels.lif_forward``, which inlines the scalar form) and keep the
membrane ``u`` for the hand-derived backward pass (``kernels.lif_backward``).
"""
from __future__ import annotations

import numpy as np

from snncore.neuron import RESET_CODES, NeuronParams, canonical_step

from . import kernels, surrogates
from .config import is_smooth_mode
from .module import Module, is_static

_RESETS = RESET_CODES


class LIF(Module):
    """Leaky integrate-and-fire neurons, element-wise over ``[T, B, *features]``.

    Args:
        beta: decay per step in [0, 1] (snnTorch form: ``u = beta v + I``).
        tau: time constant in steps, > 1 for LIF or ``inf`` for IF (SpikingJelly form with
            ``decay_input``: ``beta = 1 - 1/tau`` and the input is scaled by ``1/tau``).
            Give ``beta`` or ``tau``, not both; with neither, ``tau = 2``.
        threshold: firing threshold theta > 0.
        reset: "hard" (set to ``v_reset``) or "subtract" (subtract theta).
        v_reset: membrane value after a hard reset.
        surrogate: a :class:`training.surrogates.Surrogate`, a name, or ``(name, alpha)``.
        detach_reset: treat the spike in the reset term as a constant in backward.

    Shapes: input current ``[T, B, ...]`` -> spikes ``[T, B, ...]`` (same dtype, values in
    {0, 1}; in smooth mode the surrogate primitive's values in [0, 1]).
    """

    record = False  # set True to keep ``.membrane [T, B, ...]`` after each forward (plots)

    def __init__(self, beta: float | None = None, tau: float | None = None,
                 threshold: float = 1.0, reset: str = "hard", v_reset: float = 0.0,
                 surrogate="atan", detach_reset: bool = False):
        super().__init__()
        if beta is not None and tau is not None:
            raise ValueError("LIF: give beta or tau, not both")
        if beta is None and tau is None:
            tau = 2.0
        if tau is not None:
            tau = float(tau)
            if not tau >= 1.0:
                raise ValueError(f"LIF: tau must be >= 1 (in steps; inf for IF), got {tau}")
            # tau = inf is IF in the tau form: no leak and, as SpikingJelly's IF, no input
            # scaling (1/tau would be 0 and the layer would never charge)
            beta, gain = (1.0, 1.0) if tau == np.inf else (1.0 - 1.0 / tau, 1.0 / tau)
        else:
            gain = 1.0
        beta = float(beta)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"LIF: beta must lie in [0, 1], got {beta}")
        if not (np.isfinite(threshold) and threshold > 0):
            raise ValueError(f"LIF: threshold must be a positive number, got {threshold}")
        if reset not in _RESETS:
            raise ValueError(f"LIF: reset must be 'hard' or 'subtract', got {reset!r}")
        if not np.isfinite(v_reset):
            raise ValueError(f"LIF: v_reset must be finite, got {v_reset}")
        self.beta = beta
        self.tau = tau
        self.input_gain = gain
        self.threshold = float(threshold)
        self.reset = reset
        self.v_reset = float(v_reset)
        self.surrogate = surrogates.get(surrogate)
        self.detach_reset = bool(detach_reset)
        self._u = self._s = None

    @property
    def params(self) -> NeuronParams:
        """The canonical parameters (the input gain is folded into weights at export)."""
        return NeuronParams(beta=self.beta, theta=self.threshold, reset=self.reset,
                            v_reset=self.v_reset)

    def __repr__(self) -> str:
        form = f"tau={self.tau}" if self.tau is not None else f"beta={self.beta}"
        return (f"{type(self).__name__}({form}, threshold={self.threshold}, reset={self.reset!r}, "
                f"surrogate={self.surrogate.name}({self.surrogate.alpha}))")

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        if x.ndim < 3:
            raise ValueError(f"{self!r}: expected input [T, B, ...features], got shape {x.shape}")
        T = x.shape[0]
        dt = x.dtype.type
        # a static (stride-0) input is passed as one row: the kernel reads it at every step
        current = x[:1].reshape(1, -1) if is_static(x) else x.reshape(T, -1)
        if self.input_gain != 1.0:
            current = current * dt(self.input_gain)
        current = np.ascontiguousarray(current)
        N = current.shape[1]
        spikes = np.empty((T, N), dtype=x.dtype)
        membrane = np.empty((T, N), dtype=x.dtype)
        kernels.lif_forward(current, dt(self.beta), dt(self.threshold), _RESETS[self.reset],
                            dt(self.v_reset), self.surrogate.code, dt(self.surrogate.alpha),
                            is_smooth_mode(), spikes, membrane)
        if self.training:
            self._u, self._s = membrane, spikes
        else:
            self._u = self._s = None
        self.membrane = membrane.reshape(x.shape) if self.record else None
        return spikes.reshape(x.shape)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        self._require_cache("_u")
        T = grad_y.shape[0]
        g = np.ascontiguousarray(grad_y.reshape(T, -1), dtype=self._u.dtype)
        if g.shape != self._u.shape:
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape} does not match the "
                             f"forward output")
        dt = self._u.dtype.type
        grad_current = np.empty_like(self._u)
        kernels.lif_backward(g, self._u, self._s, dt(self.beta), dt(self.threshold),
                             _RESETS[self.reset], dt(self.v_reset), self.surrogate.code,
                             dt(self.surrogate.alpha), self.detach_reset, grad_current)
        if self.input_gain != 1.0:
            grad_current *= dt(self.input_gain)
        return grad_current.reshape(grad_y.shape)

    def reset_cache(self) -> None:
        self._u = self._s = None


class IF(LIF):
    """Integrate-and-fire: :class:`LIF` with ``beta = 1`` (no leak)."""

    def __init__(self, threshold: float = 1.0, reset: str = "hard", v_reset: float = 0.0,
                 surrogate="atan", detach_reset: bool = False):
        super().__init__(beta=1.0, threshold=threshold, reset=reset, v_reset=v_reset,
                         surrogate=surrogate, detach_reset=detach_reset)
