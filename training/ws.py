"""Scaled weight standardisation and a fixed scale: what online training uses instead of
BatchNorm (docs/methods.md section 15; Xiao et al. 2022, after Brock et al. 2021).

Per output channel ``o`` with ``n = fan_in`` entries ``W_o`` (a Linear row, a Conv2d filter)::

    mu = mean(W_o),  var = sum (W_o - mu)^2 / (n - 1)                  (unbiased)
    d  = sqrt(var * n + eps)                                           eps = 1e-4
    W_hat_o = gain_o * (W_o - mu) / d                                  gain: learnable, init 1

Backward, with ``G = dL/dW_hat_o``, ``xc = W_o - mu`` and ``H = gain_o * G``
(the mean's term vanishes in ``dd/dW`` because ``sum xc = 0``)::

    dL/dgain_o = sum(G * xc) / d
    dL/dW_o    = (H - mean(H)) / d - xc * n / (n - 1) * sum(H * xc) / d^3

``Scale(c)`` multiplies by a fixed ``c > 0`` (2.74 by default, the authors' value after each
spiking layer); export folds it into the next weight layer.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .config import get_default_dtype
from .conv import Conv2d
from .layers import Linear
from .module import Module, Parameter, broadcast_time, is_static

WS_EPS = 1e-4
DEFAULT_SCALE = 2.74


def standardize(W: np.ndarray, gain: np.ndarray, eps: float = WS_EPS) -> np.ndarray:
    """``W_hat`` of ``W [out, ...]`` (per output channel, equations above), ``W``'s dtype.

    One fused pass per output channel (:func:`_standardize_rows`; row sums in float64)."""
    n = int(np.prod(W.shape[1:]))
    W2 = np.ascontiguousarray(W).reshape(W.shape[0], n)
    out = np.empty_like(W2)
    _standardize_rows(W2, np.ascontiguousarray(gain, dtype=np.float64).reshape(-1), float(eps), out)
    return out.reshape(W.shape)


def standardize_backward(G: np.ndarray, W: np.ndarray, gain: np.ndarray,
                         eps: float = WS_EPS) -> tuple[np.ndarray, np.ndarray]:
    """``(dL/dW, dL/dgain)`` from ``G = dL/dW_hat`` (same shape as ``W``; equations above).

    With ``H = gain_o G`` the row sums the equations need are ``sum H = gain_o sum G`` and
    ``sum H xc = gain_o sum G xc``, so one fused kernel (:func:`_standardize_backward_rows`)
    reads ``W`` and ``G`` once per output channel and writes ``dL/dW``: the online methods
    call this at every time step, where the array expressions (about 15 passes over the
    weight, with temporaries) cost more than the step's matrix products."""
    n = int(np.prod(W.shape[1:]))
    W2 = np.ascontiguousarray(W).reshape(W.shape[0], n)
    G2 = np.ascontiguousarray(G, dtype=W.dtype).reshape(W2.shape)
    dW = np.empty_like(W2)
    dgain = np.empty(W2.shape[0], dtype=W.dtype)
    _standardize_backward_rows(W2, G2, np.ascontiguousarray(gain, dtype=np.float64).reshape(-1),
                               float(eps), dW, dgain)
    return dW.reshape(W.shape), dgain


# "reassoc" lets LLVM split the row sums over vector lanes (a serial float64 sum is
# latency-bound: 3x slower); the sums then depend on the lane count, not on anything else.
_FAST = {"reassoc"}


@njit(cache=True, fastmath=_FAST)
def _row_stats(w, eps):
    """``(mean, d)`` of one row: ``d = sqrt(var * n + eps)``, var unbiased; float64 sums."""
    n = w.shape[0]
    s = 0.0
    for j in range(n):
        s += w[j]
    mu = s / n
    ss = 0.0
    for j in range(n):
        c = w[j] - mu
        ss += c * c
    return mu, math.sqrt(ss / (n - 1) * n + eps)


@njit(cache=True, fastmath=_FAST)
def _standardize_rows(W, gain, eps, out):
    for o in range(W.shape[0]):
        mu, d = _row_stats(W[o], eps)
        k = gain[o] / d
        for j in range(W.shape[1]):
            out[o, j] = (W[o, j] - mu) * k


@njit(cache=True, fastmath=_FAST)
def _standardize_backward_rows(W, G, gain, eps, dW, dgain):
    n = W.shape[1]
    for o in range(W.shape[0]):
        mu, d = _row_stats(W[o], eps)
        sg = 0.0
        sgx = 0.0
        for j in range(n):
            g = G[o, j]
            sg += g
            sgx += g * (W[o, j] - mu)
        dgain[o] = sgx / d
        a = gain[o] / d                                  # dW = a (G - mean G) - b xc
        mg = sg / n
        b = gain[o] * sgx * n / (n - 1) / (d * d * d)
        for j in range(n):
            dW[o, j] = a * (G[o, j] - mg) - b * (W[o, j] - mu)


class _Standardised:
    """Mixin for a Linear/Conv2d: the products use ``W_hat``; the weight gradient goes back
    through the standardisation into ``weight`` and ``gain``."""

    def _init_gain(self):
        fan_in = int(np.prod(self.weight.data.shape[1:]))
        if fan_in < 2:
            raise ValueError(f"{type(self).__name__}: weight standardisation needs fan_in >= 2 "
                             f"(an unbiased variance), got {fan_in}")
        self.gain = Parameter(np.ones(self.weight.data.shape[0], dtype=get_default_dtype()),
                              weight_decay=False)

    def effective_weight(self) -> np.ndarray:
        """``W_hat = gain * (W - mean) / sqrt(var * fan_in + 1e-4)`` per output channel."""
        return standardize(self.weight.data, self.gain.data.astype(self.weight.data.dtype))

    def _add_weight_grad(self, dW_hat: np.ndarray) -> None:
        dW, dgain = standardize_backward(dW_hat, self.weight.data,
                                         self.gain.data.astype(self.weight.data.dtype))
        self.weight.grad += dW
        self.gain.grad += dgain.astype(self.gain.grad.dtype)


class WSLinear(_Standardised, Linear):
    """:class:`training.Linear` with scaled weight standardisation (module docstring).

    Same arguments as ``Linear``.  Parameters: ``weight [out, in]``, ``bias [out]`` and
    ``gain [out]`` (init 1, no weight decay).  Export writes ``W_hat`` as a plain weight.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None):
        super().__init__(in_features, out_features, bias=bias, rng=rng)
        self._init_gain()

    def __repr__(self) -> str:
        return f"WSLinear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class WSConv2d(_Standardised, Conv2d):
    """:class:`training.Conv2d` with scaled weight standardisation per output channel
    (``fan_in = C_in * kH * kW``).  Same arguments as ``Conv2d``; parameters ``weight``,
    ``bias`` and ``gain [C_out]`` (init 1, no weight decay)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, rng=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         bias=bias, rng=rng)
        self._init_gain()

    def __repr__(self) -> str:
        return "WS" + super().__repr__()


class Scale(Module):
    """Multiply by a fixed ``c > 0``: ``y = c x``, ``dL/dx = c dL/dy``; no parameters.

    Placed after a spiking layer it scales spikes (export folds ``c`` into the next weight
    layer's weight, not its bias); right after a weight layer it is folded into that layer's
    weight and bias.  Shapes: any ``[T, B, ...]``, unchanged.
    """

    def __init__(self, c: float = DEFAULT_SCALE):
        super().__init__()
        c = float(c)
        if not (np.isfinite(c) and c > 0):
            raise ValueError(f"Scale: c must be a finite number > 0 (so that export can fold it "
                             f"through pooling), got {c!r}")
        self.c = c

    def __repr__(self) -> str:
        return f"Scale({self.c})"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        c = x.dtype.type(self.c)
        if is_static(x):
            return broadcast_time(x[0] * c, x.shape[0])
        return x * c

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True):
        if not need_input_grad:
            return None
        return grad_y * grad_y.dtype.type(self.c)

    def step(self, x_t: np.ndarray) -> np.ndarray:
        x_t = self._check_input(np.asarray(x_t)[None])[0]
        return x_t * x_t.dtype.type(self.c)

    def step_backward(self, grad_y_t: np.ndarray) -> np.ndarray:
        return grad_y_t * grad_y_t.dtype.type(self.c)
