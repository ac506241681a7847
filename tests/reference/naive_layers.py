"""Deliberately naive NumPy twins of the convolution, pooling, BatchNorm and dropout layers.

Plain loops over every index, written straight from the definitions (PyTorch semantics),
with no lowering, no chunking and no fast paths; slow and obviously correct.  The fast
layers in ``training/`` are tested against these.  Arrays are ``[N, C, H, W]`` (one image
per row of ``N = T*B``) unless stated otherwise.
"""
from __future__ import annotations

import numpy as np


def conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0)):
    """Cross-correlation with zero padding: ``x [N, C, H, W]``, ``weight [O, C, kH, kW]``."""
    N, C, H, W = x.shape
    O, C2, kh, kw = weight.shape
    assert C == C2
    sh, sw = stride
    ph, pw = padding
    Ho = (H + 2 * ph - kh) // sh + 1
    Wo = (W + 2 * pw - kw) // sw + 1
    y = np.zeros((N, O, Ho, Wo), dtype=np.result_type(x, weight))
    for n in range(N):
        for o in range(O):
            for oh in range(Ho):
                for ow in range(Wo):
                    acc = 0.0
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                ih = oh * sh - ph + i
                                iw = ow * sw - pw + j
                                if 0 <= ih < H and 0 <= iw < W:
                                    acc += x[n, c, ih, iw] * weight[o, c, i, j]
                    y[n, o, oh, ow] = acc + (0.0 if bias is None else bias[o])
    return y


def conv2d_backward(x, weight, grad_y, stride=(1, 1), padding=(0, 0)):
    """``(dL/dx, dL/dW, dL/db)`` of :func:`conv2d` by the same loops, accumulated per term."""
    N, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    sh, sw = stride
    ph, pw = padding
    _, _, Ho, Wo = grad_y.shape
    dx = np.zeros_like(x, dtype=np.result_type(x, weight))
    dW = np.zeros_like(weight, dtype=dx.dtype)
    for n in range(N):
        for o in range(O):
            for oh in range(Ho):
                for ow in range(Wo):
                    g = grad_y[n, o, oh, ow]
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                ih = oh * sh - ph + i
                                iw = ow * sw - pw + j
                                if 0 <= ih < H and 0 <= iw < W:
                                    dx[n, c, ih, iw] += g * weight[o, c, i, j]
                                    dW[o, c, i, j] += g * x[n, c, ih, iw]
    return dx, dW, grad_y.sum(axis=(0, 2, 3))


def _windows(H, W, kernel, stride):
    kh, kw = kernel
    sh, sw = stride
    Ho = (H - kh) // sh + 1
    Wo = (W - kw) // sw + 1
    return Ho, Wo


def avg_pool2d(x, kernel, stride):
    N, C, H, W = x.shape
    kh, kw = kernel
    sh, sw = stride
    Ho, Wo = _windows(H, W, kernel, stride)
    y = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(Ho):
                for ow in range(Wo):
                    y[n, c, oh, ow] = x[n, c, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw].mean()
    return y


def max_pool2d(x, kernel, stride):
    """Max over each window; also returns the flat input index of the (first) maximum."""
    N, C, H, W = x.shape
    kh, kw = kernel
    sh, sw = stride
    Ho, Wo = _windows(H, W, kernel, stride)
    y = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    arg = np.zeros((N, C, Ho, Wo), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(Ho):
                for ow in range(Wo):
                    best, where = -np.inf, -1
                    for i in range(kh):          # row-major window order, strict > keeps
                        for j in range(kw):      # the first of tied maxima (as torch)
                            v = x[n, c, oh * sh + i, ow * sw + j]
                            if v > best:
                                best, where = v, (oh * sh + i) * W + ow * sw + j
                    y[n, c, oh, ow] = best
                    arg[n, c, oh, ow] = where
    return y, arg


def max_pool2d_backward(x_shape, arg, grad_y):
    N, C, H, W = x_shape
    dx = np.zeros(x_shape, dtype=grad_y.dtype)
    for n in range(N):
        for c in range(C):
            for idx, g in zip(arg[n, c].ravel(), grad_y[n, c].ravel()):
                dx[n, c, idx // W, idx % W] += g
    return dx


def batch_norm_train(x, weight, bias, eps):
    """Training-mode BatchNorm of ``x [M, C]`` (rows are samples): biased variance per column."""
    M, C = x.shape
    y = np.empty_like(x)
    mean = np.empty(C)
    var = np.empty(C)
    for c in range(C):
        col = x[:, c].astype(np.float64)
        mu = sum(col) / M
        v = sum((e - mu) ** 2 for e in col) / M
        mean[c], var[c] = mu, v
        for m in range(M):
            y[m, c] = weight[c] * (x[m, c] - mu) / np.sqrt(v + eps) + bias[c]
    return y, mean, var


def dropout(x, keep, p):
    """Inverted dropout of ``x [T, B, ...]``: boolean keep mask ``[B, ...]`` shared by all steps."""
    out = np.empty_like(x)
    for t in range(x.shape[0]):
        out[t] = np.where(keep, x[t] / (1.0 - p), 0.0)
    return out


# --------------------------------------------------------------------------------------
# Gradient check for a static (stride-0 time axis) input.
# --------------------------------------------------------------------------------------
def check_static_input_gradients(module, x, *, eps=1e-6, rtol=1e-5, atol=1e-7, max_entries=60,
                                 seed=0):
    """Finite-difference check of ``module`` on a static (stride-0) input: analytic gradients
    from the static fast path, numeric ones from the harness's C-ordered copy."""
    from tests.gradcheck import check_module_gradients

    assert x.strides[0] == 0 and x.shape[0] > 1, "expects a static (stride-0) input"
    check_module_gradients(module, x, eps=eps, rtol=rtol, atol=atol, max_entries=max_entries,
                           seed=seed)
