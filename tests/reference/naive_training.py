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
