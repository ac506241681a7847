"""2-D convolution over time-major arrays ``[T, B, C, H, W]``.

``Conv2d`` is PyTorch's cross-correlation (zero padding, int or pair kernel/stride/padding)
applied to every step of every sample: the ``N = T*B`` images go through one im2col
lowering and BLAS matrix products (``sgemm`` in float32)::

    y[n, o, p] = sum_k W2[o, k] cols_n[k, p] + b[o]           k = (c, i, j),  p = (oh, ow)
    cols_n[(c, i, j), (oh, ow)] = x[n, c, oh*sh - ph + i, ow*sw - pw + j]   (0 in the padding)

Backward (``g = dL/dy``)::

    dW2 = sum_n g_n cols_n^T        db = sum_{n, p} g[n, :, p]        dx = col2im(W2^T g_n)

Layout: the images are processed in chunks of ``nb`` images whose columns
``cols[K, nb*P]`` (``K = C_in*kH*kW``, ``P = H_out*W_out``) take a few MB (``_CHUNK_BYTES``),
so the lowered matrix never exists for the whole batch (memory O(chunk), not O(T*B*P*K))
and stays in cache between the lowering and its products.  Per chunk the products are
either one large GEMM ``W2 @ cols`` followed by a block transpose into NCHW (large ``K``),
or, for small ``K`` (first layers), one GEMM per image written straight into the NCHW
output, since there the transposes would cost more than the arithmetic.  Both were
measured against whole-batch layouts ``[K, T*B*P]`` (one GEMM, big transposes) and
``[T*B, K, P]`` (per image, unchunked): see the timings in ``_CHUNK_BYTES`` and
``_PER_IMAGE_MAX_K``.  The padding, im2col and col2im kernels are Numba loops over a range
of images that release the GIL; large chunks are split by image over the package's threads
(``snncore.threads.parallel_chunks``, bit-identical to one thread), and so are the per-image
products (one small single-threaded BLAS call per image).  In the per-image layout the bias
rides in the GEMM: the column buffer has a last row of ones, ``[W2 | b] @ [cols; 1]`` forward
and ``[cols; 1] @ g^T = [dW2^T; db]`` backward (no separate pass over the output or the
gradient).  ``backward`` recomputes a chunk's columns from the cached input instead of keeping
them.  The work buffers (columns, padding, product blocks) live for one call only: kept on the
layer between calls they saved a few ms of page faults per step but raised the step's peak
memory by ~25 MB (conv benchmark net).

Static input (stride-0 time axis, direct encoding): forward runs on ``x[0]`` once and
returns a stride-0 view; backward sums ``g`` over time before the weight-gradient GEMM.
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

from snncore import checks
from snncore.threads import parallel_chunks

from .config import get_default_dtype
from .layers import _init_rng, kaiming_uniform
from .module import Module, Parameter, broadcast_time, is_static

# bytes of one chunk's column matrix cols[K, nb*P].  Measured on 2 cores (conv 32->64 on
# 14x14, T*B = 256): single-thread time is flat from 2 to 8 MB and grows beyond (88 ms at
# 32 MB, 112 ms unchunked, vs 70 ms); with two BLAS threads on a busy machine every GEMM is a
# fork/join that may wait for a descheduled thread, so fewer, larger chunks are far more
# robust (2 MB chunks were 3x slower than 8 MB ones under load).
_CHUNK_BYTES = 1 << 23
_MIN_CHUNK_COLUMNS = 2048
# below this many rows K = C_in*kH*kW the products are done image by image (batched matmul
# writing [C_out, P] blocks straight into the NCHW output): with so little arithmetic per
# output value, the transposes of the chunk-wide GEMM would cost more than the GEMM itself.
# Single-thread fwd+bwd ms (chunk GEMM vs per image): K=9 24 vs 10, K=36 39 vs 27,
# K=72 57 vs 53 (backward already slower per image), K=288 72 vs 78.
_PER_IMAGE_MAX_K = 64


def _pair(v, name: str, minimum: int) -> tuple[int, int]:
    return checks.int_pair(f"Conv2d: {name}", v, minimum)


# --------------------------------------------------------------------------------------
# Numba kernels (serial; plain arrays in, arrays out)
# --------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def pad_into(x, n0, n1, ph, pw, xpad):
    """Copy ``x[n0:n1] [nb, C, H, W]`` into the interior of ``xpad [>=nb, C, H+2ph, W+2pw]``.

    The border of ``xpad`` is not touched (callers allocate it zeroed once).
    """
    _, C, H, W = x.shape
    for n in range(n0, n1):
        for c in range(C):
            for h in range(H):
                src = x[n, c, h]
                dst = xpad[n - n0, c, h + ph, pw:pw + W]
                for w in range(W):
                    dst[w] = src[w]


@njit(cache=True, nogil=True)
def crop_into(dxpad, n0, n1, ph, pw, dx):
    """Adjoint of :func:`pad_into`: ``dx[n0:n1] = dxpad[:nb, :, ph:ph+H, pw:pw+W]``."""
    _, C, H, W = dx.shape
    for n in range(n0, n1):
        for c in range(C):
            for h in range(H):
                src = dxpad[n - n0, c, h + ph, pw:pw + W]
                dst = dx[n, c, h]
                for w in range(W):
                    dst[w] = src[w]


@njit(cache=True, nogil=True)
def im2col_range(xpad, n_lo, n_hi, kh, kw, sh, sw, Ho, Wo, cols):
    """Lower padded images ``xpad[n_lo:n_hi]`` (of ``[>= n_hi, C, Hp, Wp]``) into their columns
    of ``cols[K, >= n_hi*Ho*Wo]`` (other columns untouched: disjoint ranges may run in threads).

    ``cols[(c*kh + i)*kw + j, n*Ho*Wo + oh*Wo + ow] = xpad[n, c, oh*sh + i, ow*sw + j]``.
    Flat indices are unsigned so that Numba drops its negative-index wraparound and LLVM
    vectorises the row copies (signed indices compiled to gathers/scatters, 1.5-3x slower).
    """
    _, C, Hp, Wp = xpad.shape
    P = Ho * Wo
    xf = xpad.reshape(-1)
    cf = cols.reshape(-1)
    row_len = uint64(cols.shape[1])
    uWo, usw = uint64(Wo), uint64(sw)
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                k = uint64((c * kh + i) * kw + j)
                for n in range(n_lo, n_hi):
                    for oh in range(Ho):
                        a = uint64(((n * C + c) * Hp + oh * sh + i) * Wp + j)
                        b = k * row_len + uint64(n * P + oh * Wo)
                        if sw == 1:
                            for q in range(uWo):
                                cf[b + q] = xf[a + q]
                        else:
                            for q in range(uWo):
                                cf[b + q] = xf[a + q * usw]


@njit(cache=True)
def im2col(xpad, nb, kh, kw, sh, sw, Ho, Wo, cols):
    """Lower padded images ``xpad[:nb]`` into ``cols[K, >= nb*Ho*Wo]`` (:func:`im2col_range`)."""
    im2col_range(xpad, 0, nb, kh, kw, sh, sw, Ho, Wo, cols)


@njit(cache=True, nogil=True)
def col2im_range(cols, n_lo, n_hi, kh, kw, sh, sw, Ho, Wo, dxpad):
    """Adjoint of :func:`im2col_range`: ``dxpad[n_lo:n_hi]`` = scatter-add of those images'
    columns of ``cols[K, >= n_hi*Ho*Wo]``, overwritten (zeroed first); each element adds its
    terms in the same order whatever the range, so disjoint ranges may run in threads.
    """
    _, C, Hp, Wp = dxpad.shape
    P = Ho * Wo
    dxpad[n_lo:n_hi] = 0
    df = dxpad.reshape(-1)
    cf = cols.reshape(-1)
    row_len = uint64(cols.shape[1])
    uWo, usw = uint64(Wo), uint64(sw)
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                k = uint64((c * kh + i) * kw + j)
                for n in range(n_lo, n_hi):
                    for oh in range(Ho):
                        a = uint64(((n * C + c) * Hp + oh * sh + i) * Wp + j)
                        b = k * row_len + uint64(n * P + oh * Wo)
                        if sw == 1:
                            for q in range(uWo):
                                df[a + q] += cf[b + q]
                        else:
                            for q in range(uWo):
                                df[a + q * usw] += cf[b + q]


@njit(cache=True)
def col2im(cols, nb, kh, kw, sh, sw, Ho, Wo, dxpad):
    """Adjoint of :func:`im2col`: ``dxpad[:nb]`` overwritten (:func:`col2im_range`)."""
    col2im_range(cols, 0, nb, kh, kw, sh, sw, Ho, Wo, dxpad)


# --------------------------------------------------------------------------------------
# the kernels above split by image over threads (snncore.threads.parallel_chunks): each image's
# outputs are disjoint and every element adds its terms in the same order, so the results are
# bit-identical to one thread
# --------------------------------------------------------------------------------------
def padded_images(x4, n0, n1, ph, pw, xpad) -> None:
    """:func:`pad_into` over threads."""
    per = x4[0].size
    parallel_chunks(lambda a, b: pad_into(x4, n0 + a, n0 + b, ph, pw, xpad[a:]), n1 - n0, per)


def cropped_images(dxpad, n0, n1, ph, pw, dx4) -> None:
    """:func:`crop_into` over threads."""
    per = dx4[0].size
    parallel_chunks(lambda a, b: crop_into(dxpad[a:], n0 + a, n0 + b, ph, pw, dx4), n1 - n0, per)


def lowered(xpad, nb, kh, kw, sh, sw, Ho, Wo, cols) -> None:
    """:func:`im2col` over threads."""
    per = cols.shape[0] * Ho * Wo
    parallel_chunks(lambda a, b: im2col_range(xpad, a, b, kh, kw, sh, sw, Ho, Wo, cols), nb, per)


def raised(cols, nb, kh, kw, sh, sw, Ho, Wo, dxpad) -> None:
    """:func:`col2im` over threads."""
    per = cols.shape[0] * Ho * Wo
    parallel_chunks(lambda a, b: col2im_range(cols, a, b, kh, kw, sh, sw, Ho, Wo, dxpad), nb, per)


def _columns(K: int, n_cols: int, dtype, ones_row: bool) -> np.ndarray:
    """Column buffer ``[K, n_cols]``, or ``[K + 1, n_cols]`` whose last row is 1 when
    ``ones_row`` (the bias then rides in the GEMM: ``[W2 | b] @ [cols; 1]`` forward, and
    ``[cols; 1] @ g^T`` gives ``dW2^T`` and ``db`` in one product).  im2col writes rows < K."""
    if not ones_row:
        return np.empty((K, n_cols), dtype=dtype)
    cols = np.empty((K + 1, n_cols), dtype=dtype)
    cols[K] = 1
    return cols


def products_by_image(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[n] = a[n] @ b[n]`` (either operand may be one matrix for all ``n``), the images
    split over threads.  Per image the product is small (OpenBLAS runs it on one thread), so
    the threads are ours; every image's product is the same call whatever the split."""
    def run(lo, hi):
        np.matmul(a if a.ndim == 2 else a[lo:hi], b if b.ndim == 2 else b[lo:hi],
                  out=out[lo:hi])
    parallel_chunks(run, out.shape[0], out[0].size + (a[0].size if a.ndim == 3 else 0)
                    + (b[0].size if b.ndim == 3 else 0))


def _per_image(cols: np.ndarray, nb: int, n: int, P: int) -> np.ndarray:
    """The first ``n`` images of a chunk's columns ``cols[R, >= nb*P]`` as ``[n, R, P]``
    (a view: the per-image GEMMs read and write it in place)."""
    return cols[:, :nb * P].reshape(cols.shape[0], nb, P)[:, :n].transpose(1, 0, 2)


# --------------------------------------------------------------------------------------
class Conv2d(Module):
    """2-D convolution (cross-correlation, as ``torch.nn.Conv2d``) at every time step.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size, stride, padding: int or ``(h, w)`` pair; zero padding.
        bias: add a learnable per-channel bias.
        rng: seed or Generator for the initialisation (PyTorch's default uniform rule,
            ``fan_in = in_channels * kH * kW``).

    Parameters: ``weight [C_out, C_in, kH, kW]``, ``bias [C_out]``.
    Shapes: ``[T, B, C_in, H, W] -> [T, B, C_out, H_out, W_out]`` with
    ``H_out = (H + 2 pH - kH) // sH + 1`` (likewise W).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, rng=None):
        super().__init__()
        if int(in_channels) <= 0 or int(out_channels) <= 0:
            raise ValueError(f"Conv2d: channel counts must be positive, got "
                             f"({in_channels}, {out_channels})")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        rng = _init_rng(rng)
        dt = get_default_dtype()
        self.weight = Parameter(kaiming_uniform(
            rng, (self.out_channels, self.in_channels, kh, kw), fan_in, dt))
        self.bias = Parameter(kaiming_uniform(rng, (self.out_channels,), fan_in, dt)) if bias else None
        self._x = self._W = None

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")

    def output_shape(self, H: int, W: int) -> tuple[int, int]:
        """Spatial output size ``(H_out, W_out)`` for an ``H x W`` input."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1

    # -- helpers -----------------------------------------------------------------------
    def _check(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x, feature_ndim=3)
        if x.shape[2] != self.in_channels:
            raise ValueError(f"{self!r}: expected {self.in_channels} input channels "
                             f"[T, B, {self.in_channels}, H, W], got shape {x.shape}")
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        H, W = x.shape[3:]
        if H + 2 * ph < kh or W + 2 * pw < kw:
            raise ValueError(f"{self!r}: input {H}x{W} (padded {H + 2 * ph}x{W + 2 * pw}) is "
                             f"smaller than the kernel {kh}x{kw}; got shape {x.shape}")
        if x.dtype != self.weight.data.dtype:
            raise ValueError(f"{self!r}: input dtype {x.dtype} differs from weight dtype "
                             f"{self.weight.data.dtype}")
        return x

    def _chunk(self, N: int, P: int) -> int:
        K = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        nb = _CHUNK_BYTES // max(1, K * P * self.weight.data.itemsize)
        nb = max(nb, -(-_MIN_CHUNK_COLUMNS // P), 1)
        return min(N, nb)

    def _geometry(self):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return kh, kw, sh, sw, ph, pw

    def _forward_images(self, x4: np.ndarray) -> np.ndarray:
        """``x4 [N, C, H, W] -> y [N, C_out, H_out, W_out]`` (chunked im2col + GEMM)."""
        N, C, H, W = x4.shape
        Ho, Wo = self.output_shape(H, W)
        P, Co = Ho * Wo, self.out_channels
        W2 = self._W.reshape(Co, -1)
        K = W2.shape[1]
        nb = self._chunk(N, P)
        kh, kw, sh, sw, ph, pw = self._geometry()
        padded = ph > 0 or pw > 0
        per_image = K < _PER_IMAGE_MAX_K
        # per image, the bias rides in the GEMM: W2b = [W2 | b] times cols with a row of ones
        fused = per_image and self.bias is not None
        bias = None if self.bias is None else self.bias.data[None, :, None]
        xpad = np.zeros((nb, C, H + 2 * ph, W + 2 * pw), dtype=x4.dtype) if padded else None
        cols = _columns(K, nb * P, x4.dtype, fused)
        ybuf = None if per_image else np.empty((Co, nb * P), dtype=x4.dtype)
        y = np.empty((N, Co, P), dtype=x4.dtype)
        if fused:
            W2 = np.concatenate([W2, self.bias.data[:, None].astype(W2.dtype)], axis=1)
        for n0 in range(0, N, nb):
            n1 = min(N, n0 + nb)
            m = (n1 - n0) * P
            if padded:
                padded_images(x4, n0, n1, ph, pw, xpad)
            lowered(xpad if padded else x4[n0:n1], n1 - n0, kh, kw, sh, sw, Ho, Wo, cols)
            if per_image:       # y[n] = W2 @ cols_n (+ b), written in place: [nb, K(+1), P] view
                products_by_image(W2, _per_image(cols, nb, n1 - n0, P), y[n0:n1])
                continue
            np.matmul(W2, cols[:, :m], out=ybuf[:, :m])
            chunk = ybuf.reshape(Co, nb, P)[:, :n1 - n0].transpose(1, 0, 2)
            if bias is None:
                y[n0:n1] = chunk
            else:
                np.add(chunk, bias, out=y[n0:n1])
        return y.reshape(N, Co, Ho, Wo)

    def _backward_images(self, x4: np.ndarray | None, g4: np.ndarray, need_weight_grad: bool,
                         dx4: np.ndarray | None, bias_scale: float = 1.0) -> None:
        """Add ``dL/dW`` (from ``x4`` and ``g4``) into ``weight.grad``; write ``dL/dx`` into ``dx4``.

        ``g4 [N, C_out, H_out, W_out]``; either part is skipped when not requested.
        """
        N, Co, Ho, Wo = g4.shape
        P = Ho * Wo
        W2 = self._W.reshape(Co, -1)
        K = W2.shape[1]
        nb = self._chunk(N, P)
        kh, kw, sh, sw, ph, pw = self._geometry()
        C = K // (kh * kw)
        H, W = x4.shape[2:] if x4 is not None else dx4.shape[2:]
        padded = ph > 0 or pw > 0
        dt = g4.dtype
        g3 = g4.reshape(N, Co, P)
        per_image = K < _PER_IMAGE_MAX_K
        has_bias = need_weight_grad and self.bias is not None
        # per image, db comes out of the weight-gradient GEMM (row K of [cols; 1] @ g^T)
        fused = per_image and has_bias
        gbuf = None if per_image else np.empty((Co, nb * P), dtype=dt)
        cols = _columns(K, nb * P, dt, fused)
        if need_weight_grad:
            R = cols.shape[0]
            dW = np.zeros((R, Co), dtype=dt)    # [dW2^T; db], accumulated over chunks
            dWc = None if per_image else np.empty((R, Co), dtype=dt)
            dWn = np.empty((nb, R, Co), dtype=dt) if per_image else None
            db = dW[K] if fused else np.zeros(Co, dtype=dt)
            xpad = np.zeros((nb, C, H + 2 * ph, W + 2 * pw), dtype=dt) if padded else None
        if dx4 is not None and padded:
            dxpad = np.empty((nb, C, H + 2 * ph, W + 2 * pw), dtype=dt)
        for n0 in range(0, N, nb):
            n1 = min(N, n0 + nb)
            m = (n1 - n0) * P
            if per_image:
                g = g3[n0:n1]                                   # [nb, Co, P]
            else:
                gbuf.reshape(Co, nb, P)[:, :n1 - n0] = g3[n0:n1].transpose(1, 0, 2)
                g = gbuf[:, :m]                                 # [Co, nb*P]
            if need_weight_grad:
                if padded:
                    padded_images(x4, n0, n1, ph, pw, xpad)
                lowered(xpad if padded else x4[n0:n1], n1 - n0, kh, kw, sh, sw, Ho, Wo, cols)
                if per_image:         # per-image [R, Co] blocks, summed in image order
                    products_by_image(_per_image(cols, nb, n1 - n0, P), g.transpose(0, 2, 1),
                                      dWn[:n1 - n0])
                    dW += dWn[:n1 - n0].sum(axis=0)
                else:
                    np.matmul(cols[:, :m], g.T, out=dWc)
                    dW += dWc
                if has_bias and not fused:      # while the chunk of g is in cache
                    db += g.sum(axis=1)
            if dx4 is not None:
                if per_image:
                    products_by_image(W2.T, g, _per_image(cols[:K], nb, n1 - n0, P))
                else:
                    np.matmul(W2.T, g, out=cols[:, :m])
                if padded:
                    raised(cols, n1 - n0, kh, kw, sh, sw, Ho, Wo, dxpad)
                    cropped_images(dxpad, n0, n1, ph, pw, dx4)
                else:
                    raised(cols, n1 - n0, kh, kw, sh, sw, Ho, Wo, dx4[n0:n1])
        if need_weight_grad:
            self._add_weight_grad(dW[:K].T.reshape(self.weight.grad.shape))
            if has_bias:
                self.bias.grad += db if bias_scale == 1.0 else db * dt.type(bias_scale)

    # -- Module interface ----------------------------------------------------------------
    def effective_weight(self) -> np.ndarray:
        """The weight the products use, ``[C_out, C_in, kH, kW]``: ``weight`` itself here; a
        weight-standardised subclass returns its ``W_hat`` (what export writes)."""
        return self.weight.data

    def _add_weight_grad(self, dW: np.ndarray) -> None:
        """Add ``dL/d(effective weight)`` into the parameters' gradients."""
        self.weight.grad += dW

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check(x)
        T, B, C, H, W = x.shape
        self._W = self.effective_weight()
        if is_static(x):
            y = broadcast_time(self._forward_images(np.ascontiguousarray(x[0])), T)
        else:
            y4 = self._forward_images(np.ascontiguousarray(x).reshape(T * B, C, H, W))
            y = y4.reshape((T, B) + y4.shape[1:])
        self._x = x if self.training else None
        if not self.training:
            self._W = None
        return y

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True):
        self._require_cache("_x")
        return self.weight_backward(grad_y, self._x, need_input_grad)

    def weight_backward(self, grad_y: np.ndarray, x: np.ndarray, need_input_grad: bool = True,
                        bias_scale: float = 1.0):
        """:meth:`backward` with the weight gradient taken against ``x [T, B, C_in, H, W]``
        instead of the cached input (``db`` times ``bias_scale``); the input gradient uses the
        effective weight of the last training forward.  The online methods pass a presynaptic
        trace map as ``x`` (docs/methods.md section 15)."""
        self._require_cache("_W")
        x = self._check(x)
        T, B, C, H, W = x.shape
        Ho, Wo = self.output_shape(H, W)
        expected = (T, B, self.out_channels, Ho, Wo)
        if grad_y.shape != expected:
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape}, expected {expected}")
        grad_y = np.ascontiguousarray(grad_y, dtype=self.weight.data.dtype)
        g4 = grad_y.reshape((T * B,) + expected[2:])
        dx4 = np.empty((T * B, C, H, W), dtype=grad_y.dtype) if need_input_grad else None
        if is_static(x):
            self._backward_images(np.ascontiguousarray(x[0]), grad_y.sum(axis=0), True, None,
                                  bias_scale)
            if need_input_grad:
                self._backward_images(None, g4, False, dx4)
        else:
            x4 = np.ascontiguousarray(x).reshape(T * B, C, H, W)
            self._backward_images(x4, g4, True, dx4, bias_scale)
        return None if dx4 is None else dx4.reshape(x.shape)

    def reset_cache(self) -> None:
        self._x = self._W = None
