"""Deliberately plain NumPy reference for the KLIF kernels (training/klif.py).

Written step by step from the equations in docs/methods.md section 14, no Numba::

    H_t = V_{t-1} + (X_t - V_{t-1}) / tau ; F_t = ReLU(k H_t) ; S_t = 1[F_t >= theta] ;
    V_t = F_t (1 - S_t)
"""
from __future__ import annotations

import numpy as np


def klif_forward(X, tau, k, theta, surrogate=None, smooth=False):
    """KLIF over ``X[T, N]``; returns ``(spikes S, charge H)``, each ``[T, N]``."""
    T, N = X.shape
    dt = X.dtype.type
    tau, k, theta = dt(tau), dt(k), dt(theta)
    V = np.zeros(N, dtype=X.dtype)
    S, H = np.zeros_like(X), np.zeros_like(X)
    for t in range(T):
        h = V + (X[t] - V) / tau
        F = np.maximum(k * h, dt(0))
        s = surrogate.primitive(F - theta) if smooth else (F >= theta).astype(X.dtype)
        V = F * (1 - s)
        S[t], H[t] = s, h
    return S, H


def klif_backward(gS, H, S, tau, k, theta, surrogate, detach_reset=False, keep=None, scale=1.0):
    """BPTT through :func:`klif_forward`; returns ``(dL/dX [T, N], dL/dk)``.

    ``keep``: optional MSG keep mask ``[T, N]`` (bool) multiplying the surrogate derivative,
    times ``scale``, in both the output and the reset path.
    """
    T, N = gS.shape
    gX = np.zeros_like(gS)
    gk = 0.0
    gV = np.zeros(N)
    for t in reversed(range(T)):
        F = np.maximum(k * H[t], 0.0)
        sg = surrogate.derivative(F - theta)
        if keep is not None:
            sg = sg * keep[t] * scale
        gs = gS[t] - (0.0 if detach_reset else gV * F)
        gF = gV * (1 - S[t]) + gs * sg
        active = k * H[t] > 0
        gH = np.where(active, gF * k, 0.0)
        gk += float(np.sum(np.where(active, gF * H[t], 0.0)))
        gX[t] = gH / tau
        gV = (1 - 1 / tau) * gH
    return gX, gk
