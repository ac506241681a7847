"""The canonical spiking neuron both engines run, written once (docs/methods.md section 2).

Per neuron and step, with ``v_{-1} = 0``::

    u_t = beta * v_{t-1} + I_t                       charge (I_t includes any input gain)
    s_t = 1[u_t >= theta]                            binary spikes
    s_t = 1[u_t >= theta] - 1[u_t <= -theta]         ternary spikes
    v_t = v_reset            where s_t != 0          hard reset    (or)
    v_t = u_t - theta * s_t                          subtract reset
    v_t = max(v_t, v_min)                            optional lower clamp

Two forms of the same operations, in the same order, so they give the same bits:

- :func:`canonical_update`, a scalar Numba function that the dense engine's fused time loop
  (``training.kernels.lif_forward``) and the simulator's kernels inline;
- :func:`canonical_step`, the same update over whole NumPy arrays (the reference the Numba
  kernels are tested against, and the step function of step-wise execution).

:class:`NeuronParams` are the canonical parameters a model file stores for a spiking layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

HARD_RESET, SUBTRACT_RESET = 0, 1
RESET_CODES = {"hard": HARD_RESET, "subtract": SUBTRACT_RESET}


@dataclass(frozen=True)
class NeuronParams:
    """Canonical parameters of a spiking layer (what the model file stores).

    beta: decay per step, in [0, 1] (1 for IF).  theta: threshold > 0.
    reset: "hard" (to ``v_reset``) or "subtract" (by ``theta``).  v_min: optional lower
    clamp of the membrane after reset (None for none).  spikes: "binary" ({0, 1}) or
    "ternary" ({-1, 0, 1}).
    """

    beta: float
    theta: float
    reset: str = "hard"
    v_reset: float = 0.0
    v_min: float | None = None
    spikes: str = "binary"


@njit(cache=True, inline="always")
def canonical_update(v, I, beta, theta, reset, v_reset, has_vmin, v_min, ternary):
    """One canonical update of one neuron: returns ``(u, s, v_new)``.

    Args:
        v: membrane after the previous reset ``v_{t-1}`` (float32 or float64 scalar).
        I: input current ``I_t`` (same dtype).
        beta, theta, v_reset, v_min: canonical parameters, cast to that dtype.
        reset: ``HARD_RESET`` or ``SUBTRACT_RESET``.  has_vmin: apply the clamp.
        ternary: also fire ``-1`` when ``u <= -theta``.
    Returns:
        ``u`` (membrane before reset), ``s`` (int: -1, 0 or 1), ``v_new``.
    """
    u = beta * v + I
    up = u >= theta
    down = ternary and u <= -theta      # constant False for binary layers: folded away
    s = 1 if up else (-1 if down else 0)
    if reset == HARD_RESET:
        vn = v_reset if (up or down) else u
    else:
        vn = u - theta if up else (u + theta if down else u)
    if has_vmin and vn < v_min:
        vn = v_min
    return u, s, vn


def canonical_step(v_prev: np.ndarray, current: np.ndarray, p: NeuronParams):
    """One step of the canonical neuron over whole arrays, plain NumPy.

    Args:
        v_prev: membrane after the previous reset ``v_{t-1}``, any shape.
        current: input ``I_t`` (already including any gain), same shape.
        p: the layer's :class:`NeuronParams`.
    Returns:
        ``(u_t, s_t, v_t)``: membrane before reset, spikes (values in {0, 1} or {-1, 0, 1},
        same dtype), membrane after reset and clamp.
    """
    dt = np.result_type(v_prev, current)
    beta, theta = dt.type(p.beta), dt.type(p.theta)
    u = beta * v_prev + current
    s = (u >= theta).astype(dt)
    if p.spikes == "ternary":
        s -= (u <= -theta).astype(dt)
    fired = s != 0
    if p.reset == "hard":
        v = np.where(fired, dt.type(p.v_reset), u)
    else:
        v = np.where(fired, u - theta * s, u)
    if p.v_min is not None:   # as canonical_update: a -0.0 above v_min = 0 keeps its sign
        v_min = dt.type(p.v_min)
        v = np.where(v < v_min, v_min, v)
    return u, s, v
