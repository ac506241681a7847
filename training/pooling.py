"""Average and max pooling over time-major arrays ``[T, B, C, H, W]``.

Both follow PyTorch without padding and in floor mode: windows of ``kH x kW`` at stride
``(sH, sW)`` (default: the kernel), ``H_out = (H - kH) // sH + 1``; rows and columns that
do not fill a window are dropped (their gradient is 0)::

    avg:  y[m, oh, ow] = (1 / (kH kW)) sum_{i, j} x[m, oh sH + i, ow sW + j]
          dx[m, oh sH + i, ow sW + j] += g[m, oh, ow] / (kH kW)
    max:  y[m, oh, ow] = x[m, a(m, oh, ow)],  a = first position of the maximum in
          row-major window order (ties go to the first, NaN propagates, as torch)
          dx[m, a(m, oh, ow)] += g[m, oh, ow]

``m`` runs over the ``T*B*C`` feature maps.  The kernels are serial Numba loops with a
dedicated branch for the common non-overlapping 2x2 window; they release the GIL, and the
``*_parallel`` drivers run them on disjoint ranges of maps in several threads
(:mod:`snncore.threads`), which gives the serial kernels' results bit for bit.  A static input (stride-0
time axis) is pooled once on ``x[0]`` and returned as a static view; max pooling then
keeps one argmax map for all steps.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from snncore import checks
from snncore.threads import parallel_chunks

from .module import Module, broadcast_time, is_static


def _pair(v, layer: str, name: str) -> tuple[int, int]:
    return checks.int_pair(f"{layer}: {name}", v, 1)


# --------------------------------------------------------------------------------------
# Numba kernels: feature maps flattened to x[M, H, W], y[M, Ho, Wo]
# --------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def avg_pool_forward(x, kh, kw, sh, sw, y):
    """``y[m, oh, ow]`` = mean of the ``kh x kw`` window at ``(oh*sh, ow*sw)``."""
    M = x.shape[0]
    _, Ho, Wo = y.shape
    scale = y.dtype.type(1.0 / (kh * kw))
    if kh == 2 and kw == 2 and sh == 2 and sw == 2:
        for m in range(M):
            for oh in range(Ho):
                out = y[m, oh]
                r0 = x[m, 2 * oh]
                r1 = x[m, 2 * oh + 1]
                for ow in range(Wo):
                    out[ow] = ((r0[2 * ow] + r0[2 * ow + 1]) + (r1[2 * ow] + r1[2 * ow + 1])) * scale
        return
    for m in range(M):
        for oh in range(Ho):
            out = y[m, oh]
            out[:] = 0
            for i in range(kh):
                row = x[m, oh * sh + i]
                for j in range(kw):
                    r = row[j:]
                    for ow in range(Wo):
                        out[ow] += r[ow * sw]
            for ow in range(Wo):
                out[ow] *= scale


@njit(cache=True, nogil=True)
def avg_pool_backward(g, kh, kw, sh, sw, dx):
    """Adjoint of :func:`avg_pool_forward`: ``dx`` (overwritten) from ``g[M, Ho, Wo]``."""
    M, H, W = dx.shape
    _, Ho, Wo = g.shape
    scale = dx.dtype.type(1.0 / (kh * kw))
    if kh == 2 and kw == 2 and sh == 2 and sw == 2:
        if H != 2 * Ho or W != 2 * Wo:
            dx[:] = 0
        for m in range(M):
            for oh in range(Ho):
                gr = g[m, oh]
                r0 = dx[m, 2 * oh]
                r1 = dx[m, 2 * oh + 1]
                for ow in range(Wo):
                    v = gr[ow] * scale
                    r0[2 * ow] = v
                    r0[2 * ow + 1] = v
                    r1[2 * ow] = v
                    r1[2 * ow + 1] = v
        return
    dx[:] = 0
    for m in range(M):
        for oh in range(Ho):
            gr = g[m, oh]
            for i in range(kh):
                row = dx[m, oh * sh + i]
                for j in range(kw):
                    r = row[j:]
                    for ow in range(Wo):
                        r[ow * sw] += gr[ow] * scale


@njit(cache=True, nogil=True)
def max_pool_forward(x, kh, kw, sh, sw, y, arg):
    """``y`` = window maxima; ``arg[m, oh, ow]`` = flat index ``ih*W + iw`` of the maximum.

    Windows are scanned in row-major order with a strict ``>``, so the first of tied maxima
    wins; a NaN wins over any number (it propagates, as in torch).
    """
    M, H, W = x.shape
    _, Ho, Wo = y.shape
    if kh == 2 and kw == 2 and sh == 2 and sw == 2:
        # plain compares (vectorisable); a row holding a NaN is redone in a second loop
        for m in range(M):
            for oh in range(Ho):
                r0 = x[m, 2 * oh]
                r1 = x[m, 2 * oh + 1]
                out = y[m, oh]
                am = arg[m, oh]
                base = 2 * oh * W
                nan = False
                for ow in range(Wo):
                    a, b, c, d = r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]
                    best = a
                    where = 0
                    if b > best:
                        best = b
                        where = 1
                    if c > best:
                        best = c
                        where = W
                    if d > best:
                        best = d
                        where = W + 1
                    out[ow] = best
                    am[ow] = base + 2 * ow + where
                    total = (a + b) + (c + d)
                    nan |= total != total
                if nan:
                    for ow in range(Wo):
                        for q in range(4):
                            i, j = q // 2, q % 2
                            v = x[m, 2 * oh + i, 2 * ow + j]
                            if v != v:
                                out[ow] = v
                                am[ow] = base + i * W + 2 * ow + j
                                break
        return
    for m in range(M):
        for oh in range(Ho):
            for ow in range(Wo):
                h0, w0 = oh * sh, ow * sw
                best = x[m, h0, w0]
                where = h0 * W + w0
                for i in range(kh):
                    for j in range(kw):
                        v = x[m, h0 + i, w0 + j]
                        if v > best or (v != v and best == best):
                            best = v
                            where = (h0 + i) * W + w0 + j
                y[m, oh, ow] = best
                arg[m, oh, ow] = where


@njit(cache=True, nogil=True)
def max_pool_backward(g, arg, dx):
    """``dx[t, m, arg[m, p]] += g[t, m, p]``: ``g [T', M, P]``, ``arg [M, P]``, ``dx [T', M, H*W]``.

    ``T' > 1`` when one argmax map serves every step (static input); ``dx`` is overwritten.
    """
    Tp, M, P = g.shape
    dx[:] = 0
    for t in range(Tp):
        for m in range(M):
            gm = g[t, m]
            am = arg[m]
            dm = dx[t, m]
            for p in range(P):
                dm[am[p]] += gm[p]


def _over_maps(n_maps: int, work_per_map: int, call, n_threads) -> None:
    """``call(m0, m1)`` over ranges of the ``n_maps`` feature maps, in threads."""
    parallel_chunks(call, n_maps, work_per_item=work_per_map, n_threads=n_threads)


def avg_pool_forward_parallel(x, kh, kw, sh, sw, y, n_threads=None):
    """:func:`avg_pool_forward` over ranges of maps on ``n_threads`` threads."""
    _over_maps(x.shape[0], x.shape[1] * x.shape[2],
               lambda m0, m1: avg_pool_forward(x[m0:m1], kh, kw, sh, sw, y[m0:m1]), n_threads)


def avg_pool_backward_parallel(g, kh, kw, sh, sw, dx, n_threads=None):
    """:func:`avg_pool_backward` over ranges of maps on ``n_threads`` threads."""
    _over_maps(dx.shape[0], dx.shape[1] * dx.shape[2],
               lambda m0, m1: avg_pool_backward(g[m0:m1], kh, kw, sh, sw, dx[m0:m1]), n_threads)


def max_pool_forward_parallel(x, kh, kw, sh, sw, y, arg, n_threads=None):
    """:func:`max_pool_forward` over ranges of maps on ``n_threads`` threads."""
    _over_maps(x.shape[0], x.shape[1] * x.shape[2],
               lambda m0, m1: max_pool_forward(x[m0:m1], kh, kw, sh, sw, y[m0:m1], arg[m0:m1]),
               n_threads)


def max_pool_backward_parallel(g, arg, dx, n_threads=None):
    """:func:`max_pool_backward` over ranges of maps on ``n_threads`` threads (``g [T', M, P]``,
    ``arg [M, P]``, ``dx [T', M, H*W]``; split along M)."""
    _over_maps(arg.shape[0], g.shape[0] * dx.shape[2],
               lambda m0, m1: max_pool_backward(g[:, m0:m1], arg[m0:m1], dx[:, m0:m1]),
               n_threads)


# --------------------------------------------------------------------------------------
class _Pool2d(Module):
    _name = "Pool2d"

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = _pair(kernel_size, self._name, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, self._name, "stride")
        self._shape = None       # input shape of the last training forward
        self._static = False

    def __repr__(self) -> str:
        return f"{self._name}(kernel_size={self.kernel_size}, stride={self.stride})"

    def output_shape(self, H: int, W: int) -> tuple[int, int]:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return (H - kh) // sh + 1, (W - kw) // sw + 1

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x, feature_ndim=3)
        kh, kw = self.kernel_size
        if x.shape[3] < kh or x.shape[4] < kw:
            raise ValueError(f"{self!r}: input maps {x.shape[3]}x{x.shape[4]} are smaller than "
                             f"the window {kh}x{kw}; got shape {x.shape}")
        return x

    def _maps(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        """``x [T, B, C, H, W]`` as contiguous maps ``[M, H, W]`` (of ``x[0]`` when static)."""
        static = is_static(x)
        src = x[0] if static else x
        return np.ascontiguousarray(src).reshape((-1,) + x.shape[3:]), static

    def _grad_maps(self, grad_y: np.ndarray) -> np.ndarray:
        self._require_cache("_shape")
        T, B, C, H, W = self._shape
        expected = (T, B, C) + self.output_shape(H, W)
        if grad_y.shape != expected:
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape}, expected {expected}")
        return np.ascontiguousarray(grad_y).reshape((-1,) + expected[3:])

    def reset_cache(self) -> None:
        self._shape = None


class AvgPool2d(_Pool2d):
    """Average pooling (no padding, floor mode) of ``[T, B, C, H, W]`` at every step.

    Args:
        kernel_size: int or ``(kH, kW)``.
        stride: int or pair; defaults to the kernel size (non-overlapping windows).
    """

    _name = "AvgPool2d"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check(x)
        T, B, C, H, W = x.shape
        Ho, Wo = self.output_shape(H, W)
        maps, static = self._maps(x)
        y = np.empty((maps.shape[0], Ho, Wo), dtype=x.dtype)
        avg_pool_forward_parallel(maps, *self.kernel_size, *self.stride, y)
        self._shape = x.shape if self.training else None
        if static:
            return broadcast_time(y.reshape(B, C, Ho, Wo), T)
        return y.reshape(T, B, C, Ho, Wo)

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True):
        g = self._grad_maps(grad_y)
        if not need_input_grad:
            return None
        dx = np.empty((g.shape[0],) + self._shape[3:], dtype=g.dtype)
        avg_pool_backward_parallel(g, *self.kernel_size, *self.stride, dx)
        return dx.reshape(self._shape)


class MaxPool2d(_Pool2d):
    """Max pooling (no padding, floor mode) of ``[T, B, C, H, W]`` at every step.

    Gradients go to the first maximum of each window in row-major order (as torch).

    Args:
        kernel_size: int or ``(kH, kW)``.
        stride: int or pair; defaults to the kernel size (non-overlapping windows).
    """

    _name = "MaxPool2d"

    def __init__(self, kernel_size, stride=None):
        super().__init__(kernel_size, stride)
        self._arg = None         # argmax maps [M, Ho*Wo] (int32 flat index into H*W)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check(x)
        T, B, C, H, W = x.shape
        Ho, Wo = self.output_shape(H, W)
        if H * W >= 2 ** 31:
            raise ValueError(f"{self!r}: feature maps of {H}x{W} are too large")
        maps, static = self._maps(x)
        y = np.empty((maps.shape[0], Ho, Wo), dtype=x.dtype)
        arg = np.empty((maps.shape[0], Ho, Wo), dtype=np.int32)
        max_pool_forward_parallel(maps, *self.kernel_size, *self.stride, y, arg)
        if self.training:
            self._shape, self._arg, self._static = x.shape, arg.reshape(len(arg), -1), static
        else:
            self._shape = self._arg = None
        if static:
            return broadcast_time(y.reshape(B, C, Ho, Wo), T)
        return y.reshape(T, B, C, Ho, Wo)

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True):
        g = self._grad_maps(grad_y)
        if not need_input_grad:
            return None
        T, B, C, H, W = self._shape
        arg = self._arg
        Tp = T if self._static else 1
        g3 = g.reshape(Tp, arg.shape[0], arg.shape[1])
        dx = np.empty((Tp, arg.shape[0], H * W), dtype=g.dtype)
        max_pool_backward_parallel(g3, arg, dx)
        return dx.reshape(self._shape)

    def reset_cache(self) -> None:
        self._shape = self._arg = None
