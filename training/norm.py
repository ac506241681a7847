"""Batch normalisation with statistics shared over time and batch (and space).

For an input with channels on axis 2 (``[T, B, C]``, ``[T, B, C, L]`` or ``[T, B, C, H, W]``)
every channel ``c`` is normalised over all of its ``M = T*B*(L or H*W)`` entries::

    training:  mu = mean(x),  var = mean((x - mu)^2)      (biased, over the M entries)
               xhat = (x - mu) / sqrt(var + eps),  y = gamma xhat + beta
               running_mean <- (1 - momentum) running_mean + momentum mu
               running_var  <- (1 - momentum) running_var  + momentum var * M / (M - 1)
    eval:      y = gamma (x - running_mean) / sqrt(running_var + eps) + beta

(torch semantics, momentum 0.1).  Backward, with ``k = gamma / sqrt(var + eps)`` and sums
over the M entries of a channel::

    dbeta = sum(g),  dgamma = sum(g xhat)
    training:             dx = k (g - dbeta / M - xhat dgamma / M)
    running statistics:   dx = k g                                   (affine only)

The running-statistics backward is used in training mode when ``use_running_stats`` is
set (frozen BatchNorm while fine-tuning); in eval mode nothing is cached, as for every
layer.  A static input (stride-0 time axis) has the same statistics over ``T*B`` as over
``B``: the layer normalises ``x[0]`` once and returns a static view; the running variance
still uses the full count ``M`` in its unbiasing factor.

Export folds eval-mode BatchNorm into the preceding Linear/Conv2d: :func:`fold_batchnorm`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from snncore.threads import parallel_chunks

from .config import get_default_dtype
from .module import Module, Parameter, broadcast_time, is_static


# --------------------------------------------------------------------------------------
# Numba kernels over x3[N, C, S] (N = images, S = spatial positions).  Each has a ``*_cols``
# form over the channels c0 <= c < c1 that releases the GIL; the serial kernel is that form over
# all channels.  The ``*_parallel`` drivers run the sums on disjoint channel ranges in several
# threads (every per-channel sum runs over n in ascending order inside one thread whatever the
# split) and the element-wise kernels on disjoint ranges of images, so the threaded results are
# bit-identical to the serial ones.
# --------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def channel_moments(x3, mean, var):
    """Per-channel mean and biased variance of ``x3[N, C, S]``, in one pass.

    Shifted sums in float64 (``d = x - K`` with ``K = x3[0, c, 0]``, ``var = E d^2 - (E d)^2``)
    with four independent accumulators per sum, so the loop vectorises without reordering
    any sum in a way the code does not spell out.
    """
    channel_moments_cols(x3, mean, var, 0, x3.shape[1])


@njit(cache=True, nogil=True)
def channel_moments_cols(x3, mean, var, c0, c1):
    """:func:`channel_moments` for the channels ``c0 <= c < c1`` only."""
    N, C, S = x3.shape
    S4 = S - S % 4
    sum_d = np.zeros(c1 - c0)
    sum_dd = np.zeros(c1 - c0)
    for n in range(N):
        for c in range(c0, c1):
            r = x3[n, c]
            K = np.float64(x3[0, c, 0])
            a0 = a1 = a2 = a3 = 0.0
            q0 = q1 = q2 = q3 = 0.0
            for s in range(0, S4, 4):
                d0 = r[s] - K
                d1 = r[s + 1] - K
                d2 = r[s + 2] - K
                d3 = r[s + 3] - K
                a0 += d0
                a1 += d1
                a2 += d2
                a3 += d3
                q0 += d0 * d0
                q1 += d1 * d1
                q2 += d2 * d2
                q3 += d3 * d3
            a = (a0 + a1) + (a2 + a3)
            q = (q0 + q1) + (q2 + q3)
            for s in range(S4, S):
                d = r[s] - K
                a += d
                q += d * d
            sum_d[c - c0] += a
            sum_dd[c - c0] += q
    M = N * S
    for c in range(c0, c1):
        md = sum_d[c - c0] / M
        mean[c] = x3[0, c, 0] + md
        var[c] = max(sum_dd[c - c0] / M - md * md, 0.0)


@njit(cache=True, nogil=True)
def affine(x3, scale, shift, y):
    """``y = x * scale + shift`` per channel (eval-mode BatchNorm)."""
    affine_cols(x3, scale, shift, y, 0, x3.shape[1])


@njit(cache=True, nogil=True)
def affine_cols(x3, scale, shift, y, c0, c1):
    """:func:`affine` for the channels ``c0 <= c < c1`` only."""
    N, C, S = x3.shape
    for n in range(N):
        for c in range(c0, c1):
            a, b = scale[c], shift[c]
            xr, yr = x3[n, c], y[n, c]
            for s in range(S):
                yr[s] = xr[s] * a + b


@njit(cache=True, nogil=True)
def backward_sums(g3, x3, mean, invstd, sum_g, sum_gx):
    """``sum_g[c] = sum g`` and ``sum_gx[c] = sum g * xhat`` over ``g3[N, C, S]``.

    ``xhat = (x - mean) * invstd`` is recomputed from the input ``x3[N0, C, S]``; with
    ``N0 < N`` (``N % N0 == 0``) it repeats over the leading axis (static input: one copy
    serves every time step).  Sums in float64 with four independent accumulators.
    """
    backward_sums_cols(g3, x3, mean, invstd, sum_g, sum_gx, 0, g3.shape[1])


@njit(cache=True, nogil=True)
def backward_sums_cols(g3, x3, mean, invstd, sum_g, sum_gx, c0, c1):
    """:func:`backward_sums` for the channels ``c0 <= c < c1`` only."""
    N, C, S = g3.shape
    N0 = x3.shape[0]
    S4 = S - S % 4
    dt = x3.dtype.type
    sum_g[c0:c1] = 0.0
    sum_gx[c0:c1] = 0.0
    for n in range(N):
        for c in range(c0, c1):
            gr, xr = g3[n, c], x3[n % N0, c]
            m, k = dt(mean[c]), dt(invstd[c])
            a0 = a1 = a2 = a3 = 0.0
            b0 = b1 = b2 = b3 = 0.0
            for s in range(0, S4, 4):
                a0 += gr[s]
                a1 += gr[s + 1]
                a2 += gr[s + 2]
                a3 += gr[s + 3]
                b0 += np.float64(gr[s] * ((xr[s] - m) * k))
                b1 += np.float64(gr[s + 1] * ((xr[s + 1] - m) * k))
                b2 += np.float64(gr[s + 2] * ((xr[s + 2] - m) * k))
                b3 += np.float64(gr[s + 3] * ((xr[s + 3] - m) * k))
            a = (a0 + a1) + (a2 + a3)
            b = (b0 + b1) + (b2 + b3)
            for s in range(S4, S):
                a += gr[s]
                b += np.float64(gr[s] * ((xr[s] - m) * k))
            sum_g[c] += a
            sum_gx[c] += b


@njit(cache=True, nogil=True)
def backward_input(g3, x3, mean, invstd, k, a, b, dx):
    """``dx = k * (g - a - xhat * b)`` per channel, ``xhat`` as in :func:`backward_sums`."""
    backward_input_cols(g3, x3, mean, invstd, k, a, b, dx, 0, g3.shape[1])


@njit(cache=True, nogil=True)
def backward_input_cols(g3, x3, mean, invstd, k, a, b, dx, c0, c1):
    """:func:`backward_input` for the channels ``c0 <= c < c1`` only."""
    N, C, S = g3.shape
    N0 = x3.shape[0]
    dt = dx.dtype.type
    for n in range(N):
        for c in range(c0, c1):
            m, ks = dt(mean[c]), dt(invstd[c])
            kc, ac, bc = dt(k[c]), dt(a[c]), dt(b[c])
            gr, xr, dr = g3[n, c], x3[n % N0, c], dx[n, c]
            for s in range(S):
                dr[s] = kc * (gr[s] - ac - ((xr[s] - m) * ks) * bc)


def _over_channels(kernel, arrays_before, arrays_after, n_threads):
    """Run ``kernel(*arrays_before, *arrays_after, c0, c1)`` over channel ranges in threads;
    ``arrays_before[0]`` is ``[N, C, S]`` (its channel count and size set the split)."""
    N, C, S = arrays_before[0].shape
    args = tuple(arrays_before) + tuple(arrays_after)

    def run(c0, c1):
        kernel(*args, c0, c1)
    parallel_chunks(run, C, work_per_item=N * S, n_threads=n_threads)


def channel_moments_parallel(x3, mean, var, n_threads=None):
    """:func:`channel_moments` with the channels split over ``n_threads`` threads."""
    _over_channels(channel_moments_cols, (x3,), (mean, var), n_threads)


def _over_rows(kernel, x3, n_threads):
    """Run ``kernel(n0, n1)`` over ranges of the leading axis of ``x3[N, C, S]`` in threads
    (element-wise kernels: contiguous blocks stream better than channel slices)."""
    N, C, S = x3.shape
    parallel_chunks(kernel, N, work_per_item=C * S, n_threads=n_threads)


def affine_parallel(x3, scale, shift, y, n_threads=None):
    """:func:`affine` with the images (leading axis) split over ``n_threads`` threads."""
    _over_rows(lambda n0, n1: affine(x3[n0:n1], scale, shift, y[n0:n1]), x3, n_threads)


def backward_sums_parallel(g3, x3, mean, invstd, sum_g, sum_gx, n_threads=None):
    """:func:`backward_sums` with the channels split over ``n_threads`` threads."""
    _over_channels(backward_sums_cols, (g3,), (x3, mean, invstd, sum_g, sum_gx), n_threads)


def backward_input_parallel(g3, x3, mean, invstd, k, a, b, dx, n_threads=None):
    """:func:`backward_input` with the images split over ``n_threads`` threads (the channels
    when ``x3`` holds fewer images than ``g3``: static input)."""
    if x3.shape[0] != g3.shape[0]:
        _over_channels(backward_input_cols, (g3,), (x3, mean, invstd, k, a, b, dx), n_threads)
        return
    _over_rows(lambda n0, n1: backward_input(g3[n0:n1], x3[n0:n1], mean, invstd, k, a, b,
                                             dx[n0:n1]), g3, n_threads)


# --------------------------------------------------------------------------------------
def fold_batchnorm(weight: np.ndarray, bias: np.ndarray | None, bn: "_BatchNorm"):
    """Fold eval-mode ``bn`` into the preceding layer's ``weight [out, ...]`` and ``bias``.

    ``bn(W x + b) = W' x + b'`` with ``s = gamma / sqrt(running_var + eps)``,
    ``W' = s[:, None, ...] * W`` and ``b' = s * (b - running_mean) + beta`` (``b = 0`` when
    the layer has no bias).  Works for Linear ``[out, in]`` and Conv2d ``[out, in, kH, kW]``;
    returns new arrays in the promoted dtype of ``weight`` and the BatchNorm parameters.
    """
    weight = np.asarray(weight)
    if weight.ndim < 2 or weight.shape[0] != bn.num_features:
        raise ValueError(f"fold_batchnorm: weight of shape {weight.shape} does not feed "
                         f"{bn!r} ({bn.num_features} channels)")
    if bias is not None and np.shape(bias) != (bn.num_features,):
        raise ValueError(f"fold_batchnorm: bias of shape {np.shape(bias)}, expected "
                         f"({bn.num_features},)")
    dt = np.result_type(weight, bn.weight.data)
    scale = bn.weight.data.astype(dt) / np.sqrt(bn.running_var.astype(dt) + dt.type(bn.eps))
    b = np.zeros(bn.num_features, dtype=dt) if bias is None else np.asarray(bias, dtype=dt)
    W = weight.astype(dt) * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    b = (b - bn.running_mean.astype(dt)) * scale + bn.bias.data.astype(dt)
    return W, b


class _BatchNorm(Module):
    _name = "BatchNorm"
    _feature_ndims: tuple[int, ...] = ()
    _layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if int(num_features) <= 0:
            raise ValueError(f"{self._name}: num_features must be positive, got {num_features}")
        if not eps > 0:
            raise ValueError(f"{self._name}: eps must be > 0, got {eps}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{self._name}: momentum must lie in [0, 1], got {momentum}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        dt = get_default_dtype()
        C = self.num_features
        self.weight = Parameter(np.ones(C, dtype=dt), weight_decay=False)
        self.bias = Parameter(np.zeros(C, dtype=dt), weight_decay=False)
        self.running_mean = np.zeros(C, dtype=dt)
        self.running_var = np.ones(C, dtype=dt)
        self.num_batches_tracked = np.zeros((), dtype=np.int64)
        self._buffers = ("running_mean", "running_var", "num_batches_tracked")
        # normalise with the running statistics in training mode too (frozen BatchNorm)
        self.use_running_stats = False
        self._x3 = self._mean = self._invstd = None   # input [N0, C, S] and its statistics
        self._shape = None
        self._batch_stats = False

    def __repr__(self) -> str:
        return (f"{self._name}({self.num_features}, eps={self.eps}, momentum={self.momentum}"
                + (", use_running_stats=True" if self.use_running_stats else "") + ")")

    def fold_into(self, layer) -> tuple[np.ndarray, np.ndarray]:
        """``(W', b')`` of ``layer`` (Linear or Conv2d) followed by this BatchNorm in eval mode."""
        return fold_batchnorm(layer.weight.data,
                              None if layer.bias is None else layer.bias.data, self)

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        if x.ndim - 2 not in self._feature_ndims:
            raise ValueError(f"{self!r}: expected input {self._layout}, got shape {x.shape}")
        if x.shape[2] != self.num_features:
            raise ValueError(f"{self!r}: expected {self.num_features} channels on axis 2, "
                             f"got shape {x.shape}")
        if x.dtype != self.weight.data.dtype:
            raise ValueError(f"{self!r}: input dtype {x.dtype} differs from parameter dtype "
                             f"{self.weight.data.dtype}")
        return x

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check(x)
        T, B, C = x.shape[:3]
        static = is_static(x)
        src = np.ascontiguousarray(x[0] if static else x)
        x3 = src.reshape(B if static else T * B, C, -1)
        S = x3.shape[2]
        M = T * B * S
        dt = x.dtype.type
        y = np.empty_like(x3)
        batch_stats = self.training and not self.use_running_stats
        if batch_stats:
            if M < 2:
                raise ValueError(f"{self!r}: training needs more than one value per channel, "
                                 f"got input shape {x.shape}")
            mean = np.empty(C)
            var = np.empty(C)
            channel_moments_parallel(x3, mean, var)
            invstd = 1.0 / np.sqrt(var + self.eps)
            m = self.momentum
            self.running_mean *= dt(1.0 - m)
            self.running_mean += (m * mean).astype(dt)
            self.running_var *= dt(1.0 - m)
            self.running_var += (m * var * (M / (M - 1))).astype(dt)
            self.num_batches_tracked += 1
        else:
            mean = self.running_mean.astype(np.float64)
            invstd = 1.0 / np.sqrt(self.running_var.astype(np.float64) + self.eps)
        scale = invstd * self.weight.data
        affine_parallel(x3, scale.astype(dt), (self.bias.data - mean * scale).astype(dt), y)
        if self.training:
            self._x3, self._mean, self._invstd = x3, mean, invstd
            self._shape, self._batch_stats = x.shape, batch_stats
        else:
            self.reset_cache()
        y = y.reshape(src.shape)
        return broadcast_time(y, T) if static else y

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True):
        self._require_cache("_x3")
        if grad_y.shape != self._shape:
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape}, expected {self._shape}")
        x3, mean, invstd = self._x3, self._mean, self._invstd
        T, B, C = self._shape[:3]
        g3 = np.ascontiguousarray(grad_y, dtype=x3.dtype).reshape(T * B, C, -1)
        sum_g = np.empty(C)
        sum_gx = np.empty(C)
        if x3.shape[0] < g3.shape[0]:
            # static input: xhat is the same at every step, so sum g over time first
            g_sum = g3.reshape((T, B) + g3.shape[1:]).sum(axis=0)
            backward_sums_parallel(g_sum, x3, mean, invstd, sum_g, sum_gx)
        else:
            backward_sums_parallel(g3, x3, mean, invstd, sum_g, sum_gx)
        self.bias.grad += sum_g.astype(self.bias.grad.dtype)
        self.weight.grad += sum_gx.astype(self.weight.grad.dtype)
        if not need_input_grad:
            return None
        if self._batch_stats:
            M = g3.shape[0] * g3.shape[2]
            a, b = sum_g / M, sum_gx / M
        else:
            a = b = np.zeros(C)
        dx = np.empty_like(g3)
        backward_input_parallel(g3, x3, mean, invstd, invstd * self.weight.data, a, b, dx)
        return dx.reshape(self._shape)

    def reset_cache(self) -> None:
        self._x3 = self._mean = self._invstd = None
        self._shape = None

    def step(self, x_t: np.ndarray) -> np.ndarray:
        """One step ``x_t [B, C, ...]`` with the running statistics (eval mode, or
        ``use_running_stats``); batch statistics span all T steps, so a training step is
        refused (ValueError; online methods use ``WSLinear``/``WSConv2d`` instead)."""
        if self.training and not self.use_running_stats:
            raise ValueError(f"{self!r}: step-wise execution needs eval mode or "
                             "use_running_stats=True (batch statistics span all T steps); for "
                             "online training use WSLinear/WSConv2d instead of BatchNorm")
        return super().step(x_t)


class BatchNorm1d(_BatchNorm):
    """BatchNorm over features: ``[T, B, F]`` (or ``[T, B, C, L]``), statistics over T, B (and L).

    Args:
        features: number of features (channels) F.
        eps: added to the variance.  momentum: running-statistics update rate (torch's 0.1).

    Parameters: ``weight [F]`` (init 1), ``bias [F]`` (init 0), no weight decay.
    Buffers: ``running_mean``, ``running_var``, ``num_batches_tracked``.
    """

    _name = "BatchNorm1d"
    _feature_ndims = (1, 2)
    _layout = "[T, B, F] or [T, B, C, L]"

    def __init__(self, features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(features, eps=eps, momentum=momentum)


class BatchNorm2d(_BatchNorm):
    """BatchNorm over channels of ``[T, B, C, H, W]``, statistics over T, B, H and W.

    Args:
        channels: number of channels C.
        eps: added to the variance.  momentum: running-statistics update rate (torch's 0.1).

    Parameters: ``weight [C]`` (init 1), ``bias [C]`` (init 0), no weight decay.
    Buffers: ``running_mean``, ``running_var``, ``num_batches_tracked``.
    """

    _name = "BatchNorm2d"
    _feature_ndims = (3,)
    _layout = "[T, B, C, H, W]"

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(channels, eps=eps, momentum=momentum)
