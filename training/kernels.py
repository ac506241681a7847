"""Fused Numba kernels for the dense engine's neuron time loops.

Only ``@njit`` functions over arrays live here; the classes in ``neurons.py`` validate
their inputs and call these.  Each kernel has a plain-NumPy twin in
``tests/reference/naive_training.py`` that it is tested against.

Conventions: arrays are ``[T, N]`` (time-major, features flattened); ``reset_mode`` is
``HARD_RESET`` or ``SUBTRACT_RESET``; ``sur_code``/``alpha`` select the surrogate of
``training/surrogates.py``; ``smooth`` replaces the step by the surrogate's primitive.
The threshold test is ``u >= theta`` (docs/methods.md section 2), as in the simulator.

Every LIF kernel has a ``*_cols`` form over a neuron range ``[n0, n1)`` that releases the GIL;
the ``*_parallel`` Python drivers at the end run it on disjoint ranges in several threads
(:mod:`snncore.threads`), bit-identical to the serial kernel.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from snncore.neuron import HARD_RESET, SUBTRACT_RESET, canonical_update  # noqa: F401
from snncore.threads import parallel_chunks

_PI = math.pi


@njit(cache=True, inline="always")
def _sigmoid(z):
    if z >= 0:
        e = math.exp(-z)
        return 1.0 / (1.0 + e)
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True, inline="always")
def surrogate_primitive(code, alpha, x):
    """g(x) of surrogates.py, scalar form."""
    if code == 0:
        return _sigmoid(alpha * x)
    if code == 1:
        return 0.5 + math.atan(0.5 * _PI * alpha * x) / _PI
    if code == 2:
        ax = min(1.0, max(-1.0, alpha * x))
        if ax < 0:
            return 0.5 * (1.0 + ax) * (1.0 + ax)
        return 1.0 - 0.5 * (1.0 - ax) * (1.0 - ax)
    if code == 4:
        return 0.5 + x / (1.0 + alpha * abs(x))
    return min(1.0, max(0.0, alpha * x + 0.5))


@njit(cache=True, inline="always")
def surrogate_derivative(code, alpha, x):
    """g'(x) of surrogates.py, scalar form."""
    if code == 0:
        s = _sigmoid(alpha * x)
        return alpha * s * (1.0 - s)
    if code == 1:
        z = 0.5 * _PI * alpha * x
        return 0.5 * alpha / (1.0 + z * z)
    if code == 2:
        return max(0.0, alpha - alpha * alpha * abs(x))
    if code == 4:
        d = 1.0 + alpha * abs(x)
        return 1.0 / (d * d)
    return alpha if abs(x) < 0.5 / alpha else 0.0


@njit(cache=True, nogil=True)
def lif_forward(current, beta, theta, reset_mode, v_reset, sur_code, alpha, smooth,
                spikes, membrane):
    """Canonical LIF/IF update over T steps, starting from ``v_{-1} = 0``.

    u_t = beta * v_{t-1} + I_t ;  s_t = 1[u_t >= theta] (or g(u_t - theta) when smooth)
    hard: v_t = u_t (1 - s_t) + v_reset s_t ;  subtract: v_t = u_t - theta s_t

    The step-function path is :func:`snncore.neuron.canonical_update`, inlined; smooth mode
    (gradient checks only) uses the surrogate's primitive in its place.  Serial; the
    neurons are independent, so :func:`lif_forward_parallel` splits them over threads.

    Args:
        current: I [T, N], or [1, N] for a static input repeated at every step.
        spikes: output s [T, N], written.
        membrane: output u [T, N] (membrane before reset, kept for backward), written.
    """
    lif_forward_cols(current, beta, theta, reset_mode, v_reset, sur_code, alpha, smooth,
                     spikes, membrane, 0, spikes.shape[1])


@njit(cache=True, nogil=True)
def lif_forward_cols(current, beta, theta, reset_mode, v_reset, sur_code, alpha, smooth,
                     spikes, membrane, n0, n1):
    """:func:`lif_forward` on the neurons (columns) ``n0 <= n < n1`` only (releases the GIL)."""
    T = spikes.shape[0]
    K = n1 - n0
    static = current.shape[0] == 1
    v = np.zeros(K, dtype=spikes.dtype)
    one = spikes.dtype.type(1.0)
    zero = spikes.dtype.type(0.0)
    for t in range(T):
        I = current[0][n0:n1] if static else current[t][n0:n1]
        u_t, s_t = membrane[t][n0:n1], spikes[t][n0:n1]
        if smooth:
            for n in range(K):
                u = beta * v[n] + I[n]
                s = surrogate_primitive(sur_code, alpha, u - theta)
                if reset_mode == 0:
                    v[n] = u * (one - s) + v_reset * s
                else:
                    v[n] = u - theta * s
                s_t[n] = s
                u_t[n] = u
        elif reset_mode == HARD_RESET:   # the reset test hoisted out of the neuron loop
            for n in range(K):
                u, s, v[n] = canonical_update(v[n], I[n], beta, theta, HARD_RESET, v_reset,
                                              False, v_reset, False)
                s_t[n] = one if s != 0 else zero
                u_t[n] = u
        else:
            for n in range(K):
                u, s, v[n] = canonical_update(v[n], I[n], beta, theta, SUBTRACT_RESET, v_reset,
                                              False, v_reset, False)
                s_t[n] = one if s != 0 else zero
                u_t[n] = u


@njit(cache=True, nogil=True, error_model="numpy")
def surrogate_derivative_row(code, alpha, theta, u, out):
    """``out[n] = g'(u[n] - theta)`` for one row; the surrogate branch is outside the loop
    so each case vectorises (``error_model="numpy"``: no zero-division checks in the loop;
    no fastmath, so NaN/inf propagate and the trainer can detect divergence)."""
    one = out.dtype.type(1.0)
    zero = out.dtype.type(0.0)
    N = u.shape[0]
    if code == 0:
        for n in range(N):
            e = math.exp(-abs(alpha * (u[n] - theta)))
            s = one / (one + e)
            out[n] = alpha * s * (one - s)
    elif code == 1:
        c = out.dtype.type(0.5 * _PI) * alpha
        h = out.dtype.type(0.5) * alpha
        for n in range(N):
            z = c * (u[n] - theta)
            out[n] = h / (one + z * z)
    elif code == 2:
        a2 = alpha * alpha
        for n in range(N):
            out[n] = max(zero, alpha - a2 * abs(u[n] - theta))
    elif code == 4:
        for n in range(N):
            d = one + alpha * abs(u[n] - theta)
            out[n] = one / (d * d)
    else:
        w = out.dtype.type(0.5) / alpha
        for n in range(N):
            out[n] = alpha if abs(u[n] - theta) < w else zero


@njit(cache=True, nogil=True, error_model="numpy")
def lif_backward(grad_spikes, membrane, spikes, beta, theta, reset_mode, v_reset,
                 sur_code, alpha, detach_reset, grad_current):
    """BPTT through :func:`lif_forward`; writes ``dL/dI`` into ``grad_current [T, N]``.

    With gv = dL/dv_t (from step t+1: gv = beta * gu_{t+1}) and sg = g'(u_t - theta):
    hard:     gs = dL/ds_t + gv (v_reset - u_t) ;  gu = gv (1 - s_t) + gs sg
    subtract: gs = dL/ds_t - theta gv           ;  gu = gv + gs sg
    with the reset term of gs dropped when ``detach_reset``; dL/dI_t = gu.
    The mode branches sit outside the inner loops so each inner loop vectorises.
    Serial; :func:`lif_backward_parallel` splits the neurons over threads.
    :func:`lif_backward_inplace_cols` is the form without the spikes (rebuilt from ``u``).
    """
    lif_backward_cols(grad_spikes, membrane, spikes, beta, theta, reset_mode, v_reset,
                      sur_code, alpha, detach_reset, grad_current, 0, grad_spikes.shape[1])


@njit(cache=True, nogil=True, error_model="numpy")
def lif_backward_cols(grad_spikes, membrane, spikes, beta, theta, reset_mode, v_reset,
                      sur_code, alpha, detach_reset, grad_current, n0, n1):
    """:func:`lif_backward` on the neurons (columns) ``n0 <= n < n1`` only (releases the GIL)."""
    T = grad_spikes.shape[0]
    N = n1 - n0
    gv = np.zeros(N, dtype=grad_current.dtype)
    sg = np.empty(N, dtype=grad_current.dtype)
    one = grad_current.dtype.type(1.0)
    for t in range(T - 1, -1, -1):
        u_t = membrane[t][n0:n1]
        surrogate_derivative_row(sur_code, alpha, theta, u_t, sg)
        g_t, s_t, out = grad_spikes[t][n0:n1], spikes[t][n0:n1], grad_current[t][n0:n1]
        if reset_mode == 0:
            if detach_reset:
                for n in range(N):
                    gu = gv[n] * (one - s_t[n]) + g_t[n] * sg[n]
                    out[n] = gu
                    gv[n] = beta * gu
            else:
                for n in range(N):
                    gu = gv[n] * (one - s_t[n]) + (g_t[n] + gv[n] * (v_reset - u_t[n])) * sg[n]
                    out[n] = gu
                    gv[n] = beta * gu
        else:
            if detach_reset:
                for n in range(N):
                    gu = gv[n] + g_t[n] * sg[n]
                    out[n] = gu
                    gv[n] = beta * gu
            else:
                for n in range(N):
                    gu = gv[n] + (g_t[n] - theta * gv[n]) * sg[n]
                    out[n] = gu
                    gv[n] = beta * gu


@njit(cache=True, nogil=True, error_model="numpy")
def lif_backward_inplace_cols(grad_spikes, membrane, beta, theta, reset_mode, v_reset,
                              sur_code, alpha, detach_reset, n0, n1):
    """:func:`lif_backward` without the spikes, neurons ``[n0, n1)``: each step's spikes are
    rebuilt from the membrane as ``1[u_t >= theta]`` (the forward's test, so the same values)
    and ``dL/dI`` is written over the membrane (``Sequential.low_memory``).  The same
    arithmetic as :func:`lif_backward_cols`, element by element, so the same bits."""
    T = grad_spikes.shape[0]
    N = n1 - n0
    gv = np.zeros(N, dtype=membrane.dtype)
    sg = np.empty(N, dtype=membrane.dtype)
    one = membrane.dtype.type(1.0)
    zero = membrane.dtype.type(0.0)
    for t in range(T - 1, -1, -1):
        m = membrane[t][n0:n1]               # u_t in, dL/dI_t out (read before written)
        g_t = grad_spikes[t][n0:n1]
        surrogate_derivative_row(sur_code, alpha, theta, m, sg)
        if reset_mode == 0:
            if detach_reset:
                for n in range(N):
                    s = one if m[n] >= theta else zero
                    gu = gv[n] * (one - s) + g_t[n] * sg[n]
                    m[n] = gu
                    gv[n] = beta * gu
            else:
                for n in range(N):
                    u = m[n]
                    s = one if u >= theta else zero
                    gu = gv[n] * (one - s) + (g_t[n] + gv[n] * (v_reset - u)) * sg[n]
                    m[n] = gu
                    gv[n] = beta * gu
        else:                                # the subtract reset's gradient needs no spike
            if detach_reset:
                for n in range(N):
                    gu = gv[n] + g_t[n] * sg[n]
                    m[n] = gu
                    gv[n] = beta * gu
            else:
                for n in range(N):
                    gu = gv[n] + (g_t[n] - theta * gv[n]) * sg[n]
                    m[n] = gu
                    gv[n] = beta * gu


@njit(cache=True, nogil=True, error_model="numpy")
def threshold_row(u, theta, out):
    """``out[n] = 1[u[n] >= theta]`` (1.0 or 0.0): the binary spikes of one row of membranes."""
    one = out.dtype.type(1.0)
    zero = out.dtype.type(0.0)
    for n in range(u.shape[0]):
        out[n] = one if u[n] >= theta else zero


@njit(cache=True, nogil=True, error_model="numpy")
def threshold_cols(membrane, theta, out, n0, n1):
    """:func:`threshold_row` of each step of ``[T, N]`` arrays, neurons ``[n0, n1)`` only."""
    for t in range(membrane.shape[0]):
        threshold_row(membrane[t][n0:n1], theta, out[t][n0:n1])


# ------------------------------------------------------------------------------------------
# the general LIF kernels: per-neuron parameters, ternary spikes, MSG masks, d/dbeta, d/dtheta
# (the plain binary layer with scalar parameters keeps the kernels above)


@njit(cache=True, nogil=True)
def lif_forward_ext(current, beta, theta, reset_mode, v_reset, sur_code, alpha, smooth,
                    ternary, window, spikes, membrane):
    """:func:`lif_forward` with per-neuron parameters and optional ternary spikes.

    Neuron ``n`` of the flattened ``[B, F]`` rows uses ``beta[n % len(beta)]`` and
    ``theta[n % len(theta)]`` (each of length F per neuron, or 1 per layer).  Ternary:
    ``s = 1[u >= theta] - 1[u <= -theta]``, reset on either polarity.  Smooth mode (gradient
    checks) uses ``g(u - theta) - g(-u - theta)`` (``window``: ``clip(u / (2 theta), -1, 1)``)
    for ternary spikes and ``|s|`` in the hard reset.

    Args:
        current: I [T, N] or [1, N] (static); beta, theta: [F] or [1], N a multiple of F.
        spikes, membrane: outputs [T, N] (s and u before reset), written.
    """
    lif_forward_ext_cols(current, beta, theta, reset_mode, v_reset, sur_code, alpha, smooth,
                         ternary, window, spikes, membrane, 0, spikes.shape[1])


@njit(cache=True, nogil=True)
def lif_forward_ext_cols(current, beta, theta, reset_mode, v_reset, sur_code, alpha, smooth,
                         ternary, window, spikes, membrane, n0, n1):
    """:func:`lif_forward_ext` on the neurons ``n0 <= n < n1`` only (releases the GIL)."""
    T = spikes.shape[0]
    Fb, Ft = beta.shape[0], theta.shape[0]
    static = current.shape[0] == 1
    v = np.zeros(n1 - n0, dtype=spikes.dtype)
    one = spikes.dtype.type(1.0)
    two = spikes.dtype.type(2.0)
    for t in range(T):
        I = current[0] if static else current[t]
        for n in range(n0, n1):
            k = n - n0
            b, th = beta[n % Fb], theta[n % Ft]
            if smooth:
                u = b * v[k] + I[n]
                if not ternary:
                    s = surrogate_primitive(sur_code, alpha, u - th)
                    r = s
                elif window:
                    s = min(one, max(-one, u / (two * th)))
                    r = abs(s)
                else:
                    s = (surrogate_primitive(sur_code, alpha, u - th)
                         - surrogate_primitive(sur_code, alpha, -u - th))
                    r = abs(s)
                if reset_mode == HARD_RESET:
                    v[k] = u * (one - r) + v_reset * r
                else:
                    v[k] = u - th * s
                spikes[t, n] = s
            else:
                u, si, v[k] = canonical_update(v[k], I[n], b, th, reset_mode, v_reset,
                                               False, v_reset, ternary)
                spikes[t, n] = si
            membrane[t, n] = u


@njit(cache=True, nogil=True, error_model="numpy")
def lif_backward_ext(grad_spikes, membrane, spikes, beta, theta, reset_mode, v_reset,
                     sur_code, alpha, detach_reset, ternary, window, mask, mask_scale,
                     grad_current, grad_beta, grad_theta):
    """BPTT through :func:`lif_forward_ext`; writes dL/dI into ``grad_current [T, N]`` and
    per-neuron sums over time of dL/dbeta and dL/dtheta into ``grad_beta``/``grad_theta [N]``.

    Spike function derivatives (x = u - theta):
    binary  ds/du = g'(x),                     ds/dtheta = -g'(x)
    ternary ds/du = g'(u - th) + g'(u + th),   ds/dtheta = g'(u + th) - g'(u - th)   ("sum")
            ds/du = w = 1[|u| <= 2 th]/(2 th), ds/dtheta = -(u / th) w             ("window")
    both multiplied by ``mask_scale * mask[t, n]`` when ``mask`` is non-empty (MSG), so the
    masked derivative serves the output and the reset path.  With gv = dL/dv_t:
    hard:     gs = dL/ds_t + gv (v_reset - u) sign(s) ;  gu = gv (1 - |s|) + gs ds/du ;
              gtheta += gs ds/dtheta   (binary: sign(s) = 1, |s| = s)
    subtract: gs = dL/ds_t - theta gv ;  gu = gv + gs ds/du ;
              gtheta += gs ds/dtheta - gv s
    (reset terms through s dropped when ``detach_reset``); gbeta += gu v_{t-1};
    gv_{t-1} = beta gu; dL/dI_t = gu.
    """
    lif_backward_ext_cols(grad_spikes, membrane, spikes, beta, theta, reset_mode, v_reset,
                          sur_code, alpha, detach_reset, ternary, window, mask, mask_scale,
                          grad_current, grad_beta, grad_theta, 0, grad_spikes.shape[1])


@njit(cache=True, nogil=True, error_model="numpy")
def lif_backward_ext_cols(grad_spikes, membrane, spikes, beta, theta, reset_mode, v_reset,
                          sur_code, alpha, detach_reset, ternary, window, mask, mask_scale,
                          grad_current, grad_beta, grad_theta, n0, n1):
    """:func:`lif_backward_ext` on the neurons ``n0 <= n < n1`` only (releases the GIL);
    writes ``grad_beta``/``grad_theta`` at those neurons only."""
    T = grad_spikes.shape[0]
    K = n1 - n0
    Fb, Ft = beta.shape[0], theta.shape[0]
    masked = mask.shape[0] > 0
    dt = grad_current.dtype.type
    one, zero, two = dt(1.0), dt(0.0), dt(2.0)
    gv = np.zeros(K, dtype=grad_current.dtype)
    grad_beta[n0:n1] = zero
    grad_theta[n0:n1] = zero
    rows = Ft == 1 and not (ternary and window)   # vectorised derivative rows (one theta)
    d1 = np.empty(K, dtype=grad_current.dtype)
    d2 = np.empty(K, dtype=grad_current.dtype)
    for t in range(T - 1, -1, -1):
        if rows:
            surrogate_derivative_row(sur_code, alpha, theta[0], membrane[t][n0:n1], d1)
            if ternary:
                surrogate_derivative_row(sur_code, alpha, -theta[0], membrane[t][n0:n1], d2)
        for n in range(n0, n1):
            k = n - n0
            b, th = beta[n % Fb], theta[n % Ft]
            u, s = membrane[t, n], spikes[t, n]
            if rows and not ternary:
                du = d1[k]
                dth = -du
            elif rows:
                du = d1[k] + d2[k]
                dth = d2[k] - d1[k]
            elif not ternary:
                du = surrogate_derivative(sur_code, alpha, u - th)
                dth = -du
            elif window:
                du = one / (two * th) if abs(u) <= two * th else zero
                dth = -(u / th) * du
            else:
                e1 = surrogate_derivative(sur_code, alpha, u - th)
                e2 = surrogate_derivative(sur_code, alpha, u + th)
                du = e1 + e2
                dth = e2 - e1
            if masked:
                m = mask_scale if mask[t, n] else zero
                du = du * m
                dth = dth * m
            g = gv[k]
            if reset_mode == HARD_RESET:
                r = abs(s) if ternary else s
                sgn = (one if s > zero else (-one if s < zero else zero)) if ternary else one
                gs = grad_spikes[t, n]
                if not detach_reset:
                    gs = gs + g * (v_reset - u) * sgn
                gu = g * (one - r) + gs * du
                grad_theta[n] += gs * dth
            else:
                gs = grad_spikes[t, n]
                if not detach_reset:
                    gs = gs - th * g
                gu = g + gs * du
                grad_theta[n] += gs * dth - g * s
            if t > 0:
                up, sp = membrane[t - 1, n], spikes[t - 1, n]
                if reset_mode == HARD_RESET:
                    rp = abs(sp) if ternary else sp
                    v_prev = up * (one - rp) + v_reset * rp
                else:
                    v_prev = up - th * sp
                grad_beta[n] += gu * v_prev
            grad_current[t, n] = gu
            gv[k] = b * gu


# ------------------------------------------------------------------------------------------
# threaded drivers (Python): the neurons are independent, so the column kernels above run on
# disjoint neuron ranges in parallel (snncore.threads.parallel_chunks: dynamic chunks, serial
# below a size threshold).  Results are bit-identical to the serial kernels for any split.


def lif_forward_parallel(current, beta, theta, reset_mode, v_reset, sur_code, alpha, smooth,
                         spikes, membrane, n_threads=None):
    """:func:`lif_forward` over neuron chunks on ``n_threads`` threads (default: the policy's)."""
    T, N = spikes.shape

    def run(n0, n1):
        lif_forward_cols(current, beta, theta, reset_mode, v_reset, sur_code, alpha, smooth,
                         spikes, membrane, n0, n1)
    parallel_chunks(run, N, work_per_item=T, n_threads=n_threads)


def lif_backward_parallel(grad_spikes, membrane, spikes, beta, theta, reset_mode, v_reset,
                          sur_code, alpha, detach_reset, grad_current, n_threads=None):
    """:func:`lif_backward` over neuron chunks on ``n_threads`` threads."""
    T, N = grad_spikes.shape

    def run(n0, n1):
        lif_backward_cols(grad_spikes, membrane, spikes, beta, theta, reset_mode, v_reset,
                          sur_code, alpha, detach_reset, grad_current, n0, n1)
    parallel_chunks(run, N, work_per_item=T, n_threads=n_threads)


def lif_backward_inplace_parallel(grad_spikes, membrane, beta, theta, reset_mode, v_reset,
                                  sur_code, alpha, detach_reset, n_threads=None):
    """:func:`lif_backward_inplace_cols` over neuron chunks on ``n_threads`` threads."""
    T, N = grad_spikes.shape

    def run(n0, n1):
        lif_backward_inplace_cols(grad_spikes, membrane, beta, theta, reset_mode, v_reset,
                                  sur_code, alpha, detach_reset, n0, n1)
    parallel_chunks(run, N, work_per_item=T, n_threads=n_threads)


def lif_forward_ext_parallel(current, beta, theta, reset_mode, v_reset, sur_code, alpha, smooth,
                             ternary, window, spikes, membrane, n_threads=None):
    """:func:`lif_forward_ext` over neuron chunks on ``n_threads`` threads."""
    T, N = spikes.shape

    def run(n0, n1):
        lif_forward_ext_cols(current, beta, theta, reset_mode, v_reset, sur_code, alpha, smooth,
                             ternary, window, spikes, membrane, n0, n1)
    parallel_chunks(run, N, work_per_item=T, n_threads=n_threads)


def lif_backward_ext_parallel(grad_spikes, membrane, spikes, beta, theta, reset_mode, v_reset,
                              sur_code, alpha, detach_reset, ternary, window, mask, mask_scale,
                              grad_current, grad_beta, grad_theta, n_threads=None):
    """:func:`lif_backward_ext` over neuron chunks on ``n_threads`` threads."""
    T, N = grad_spikes.shape

    def run(n0, n1):
        lif_backward_ext_cols(grad_spikes, membrane, spikes, beta, theta, reset_mode, v_reset,
                              sur_code, alpha, detach_reset, ternary, window, mask, mask_scale,
                              grad_current, grad_beta, grad_theta, n0, n1)
    parallel_chunks(run, N, work_per_item=T, n_threads=n_threads)


def threshold_parallel(membrane, theta, out, n_threads=None):
    """``out = 1[membrane >= theta]`` (1.0 or 0.0) over ``[T, N]`` arrays, by neuron chunks."""
    T, N = membrane.shape

    def run(n0, n1):
        threshold_cols(membrane, theta, out, n0, n1)
    parallel_chunks(run, N, work_per_item=T, n_threads=n_threads)
