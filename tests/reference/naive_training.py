"""Deliberately plain references for the dense engine's fused kernels.

Written step by step from docs/methods.md section 2 with NumPy and no Numba, so the kernels in
``training/kernels.py`` can be tested against an independent implementation.
"""
from __future__ import annotations

import numpy as np

from training import surrogates
from snncore.neuron import NeuronParams, canonical_step


def lif_forward(current, p: NeuronParams, surrogate=None, smooth=False, reset_spikes=None):
    """LIF over ``current[T, N]``; returns ``(spikes, membrane_before_reset)``.

    ``reset_spikes``: optional ``[T, N]`` array used in the reset term instead of the
    spikes just emitted (a constant: what ``detach_reset`` treats as stop-gradient).
    """
    T, N = current.shape
    dt = current.dtype.type
    v = np.zeros(N, dtype=current.dtype)
    S, U = np.zeros_like(current), np.zeros_like(current)
    for t in range(T):
        if smooth or reset_spikes is not None:
            u = dt(p.beta) * v + current[t]
            s = surrogate.primitive(u - dt(p.theta)) if smooth else (u >= dt(p.theta)).astype(current.dtype)
            r = s if reset_spikes is None else reset_spikes[t]
            v = u * (1 - r) + dt(p.v_reset) * r if p.reset == "hard" else u - dt(p.theta) * r
        else:
            u, s, v = canonical_step(v, current[t], p)
        S[t], U[t] = s, u
    return S, U


def lif_backward(grad_spikes, membrane, spikes, p: NeuronParams, surrogate, detach_reset):
    """BPTT through :func:`lif_forward`, one step at a time, returns ``dL/dI [T, N]``."""
    T, N = grad_spikes.shape
    gI = np.zeros_like(grad_spikes)
    gv = np.zeros(N)
    for t in reversed(range(T)):
        u, s = membrane[t], spikes[t]
        sg = surrogate.derivative(u - p.theta)
        if p.reset == "hard":
            gs = grad_spikes[t] + (0 if detach_reset else gv * (p.v_reset - u))
            gu = gv * (1 - s) + gs * sg
        else:
            gs = grad_spikes[t] - (0 if detach_reset else p.theta * gv)
            gu = gv + gs * sg
        gI[t] = gu
        gv = p.beta * gu
    return gI


def spike_derivatives(u, theta, surrogate, ternary=False, window=False):
    """``(ds/du, ds/dtheta)`` of the spike function (docs/methods.md, ternary spikes)."""
    if not ternary:
        d = surrogate.derivative(u - theta)
        return d, -d
    if window:
        w = (np.abs(u) <= 2 * theta) / (2 * theta)
        return w, -(u / theta) * w
    d1, d2 = surrogate.derivative(u - theta), surrogate.derivative(u + theta)
    return d1 + d2, d2 - d1


def lif_forward_general(current, beta, theta, reset, v_reset, surrogate, smooth=False,
                        ternary=False, window=False):
    """LIF over ``current[T, N]`` with per-neuron ``beta[N]``, ``theta[N]`` and optional
    ternary spikes; returns ``(spikes, membrane_before_reset)``."""
    T, N = current.shape
    v = np.zeros(N)
    S, U = np.zeros((T, N)), np.zeros((T, N))
    for t in range(T):
        u = beta * v + current[t]
        if smooth and ternary and window:
            s = np.clip(u / (2 * theta), -1, 1)
        elif smooth and ternary:
            s = surrogate.primitive(u - theta) - surrogate.primitive(-u - theta)
        elif smooth:
            s = surrogate.primitive(u - theta)
        else:
            s = (u >= theta).astype(float) - (ternary * (u <= -theta)).astype(float)
        r = np.abs(s) if ternary else s
        v = u * (1 - r) + v_reset * r if reset == "hard" else u - theta * s
        S[t], U[t] = s, u
    return S, U


def lif_backward_general(grad_spikes, membrane, spikes, beta, theta, reset, v_reset, surrogate,
                         detach_reset=False, ternary=False, window=False, mask=None, scale=1.0):
    """BPTT through :func:`lif_forward_general`, one step at a time.  ``mask [T, N]`` (MSG)
    multiplies the spike function's derivatives.  Returns ``(dL/dI [T, N], dL/dbeta [N],
    dL/dtheta [N])``."""
    T, N = grad_spikes.shape
    gI = np.zeros((T, N))
    gbeta, gtheta, gv = np.zeros(N), np.zeros(N), np.zeros(N)
    for t in reversed(range(T)):
        u, s = membrane[t], spikes[t]
        du, dth = spike_derivatives(u, theta, surrogate, ternary, window)
        if mask is not None:
            du, dth = du * mask[t] * scale, dth * mask[t] * scale
        keep = 0.0 if detach_reset else 1.0
        if reset == "hard":
            r, sgn = (np.abs(s), np.sign(s)) if ternary else (s, 1.0)
            gs = grad_spikes[t] + keep * gv * (v_reset - u) * sgn
            gu = gv * (1 - r) + gs * du
            gtheta += gs * dth
        else:
            gs = grad_spikes[t] - keep * theta * gv
            gu = gv + gs * du
            gtheta += gs * dth - gv * s
        if t > 0:
            up, sp = membrane[t - 1], spikes[t - 1]
            rp = np.abs(sp) if ternary else sp
            v_prev = up * (1 - rp) + v_reset * rp if reset == "hard" else up - theta * sp
            gbeta += gu * v_prev
        gI[t] = gu
        gv = beta * gu
    return gI, gbeta, gtheta
