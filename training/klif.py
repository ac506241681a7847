"""KLIF: LIF neurons with a learnable membrane scaling ``k`` (docs/methods.md, section "KLIF").

Per neuron and step, with ``V_{-1} = 0`` (Jiang & Zhang 2023, in SpikingJelly's KLIFNode form)::

    H_t = V_{t-1} + (X_t - V_{t-1}) / tau          charge (tau form, decay_input)
    F_t = ReLU(k H_t)                              k: one learnable scalar per layer
    S_t = 1[F_t >= theta]                          (smooth mode: g(F_t - theta))
    V_t = F_t (1 - S_t)                            hard reset to 0

Backward (hand-derived; ``gV_t = dL/dV_t`` arrives from step t+1 as ``(1 - 1/tau) gH_{t+1}``,
``sg = m_t g'(F_t - theta)`` with the MSG keep mask ``m_t``, 1 without MSG)::

    gS = dL/dS_t - gV_t F_t                        (the reset term dropped with detach_reset)
    gF = gV_t (1 - S_t) + gS sg
    gH = gF k 1[k H_t > 0] ;  dL/dX_t = gH / tau ;  dL/dk += gF H_t 1[k H_t > 0]

At export the layer is the canonical LIF ``u = beta v + I`` with ``beta = k (1 - 1/tau)``, input
gain ``k / tau`` folded into the preceding weight layer, hard reset to 0 and the lower clamp
``v_min = 0`` (``F = ReLU(u)`` fires exactly when ``u >= theta``, and ``max(v, 0)`` is the ReLU
of the non-firing membrane).  That mapping is exact in real arithmetic, not bitwise: the two
forms round ``k (V + (X - V)/tau)`` and ``beta V + (k/tau) W x`` differently, so a membrane
within an ulp of theta can fire in one and not the other.

:class:`ClampedLIF` is the dense engine's rebuild of such a canonical layer (a LIF with
``v_min``), used by :func:`training.to_network` for inference.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from snncore.neuron import HARD_RESET, SUBTRACT_RESET, canonical_update

from . import surrogates
from .config import is_smooth_mode
from .kernels import surrogate_derivative_row, surrogate_primitive
from .layers import _init_rng
from .module import Module, Parameter, is_static
from .msg import check_p, keep_mask
from .neurons import LIF

__all__ = ["KLIF", "ClampedLIF", "k_range"]


def k_range(tau: float) -> tuple[float, float]:
    """``(low, high)``: the open interval of ``k`` for which ``beta = k (1 - 1/tau)`` lies in
    ``[0, 1)`` and the layer charges (``k > 0``); ``high = inf`` for ``tau = 1``."""
    return 0.0, (math.inf if tau == 1.0 else tau / (tau - 1.0))


def _clip_bounds(tau: float) -> tuple[float, float]:
    """The closed interval :meth:`KLIF.constrain` clips into, a relative 1e-6 inside
    :func:`k_range` (so the exported beta stays below 1 and k above 0)."""
    _, high = k_range(tau)
    return 1e-6, high * (1.0 - 1e-6)


# -- fused kernels -------------------------------------------------------------------------

@njit(cache=True)
def klif_forward(current, tau, k, theta, sur_code, alpha, smooth, spikes, charge, membrane):
    """KLIF over T steps from ``V_{-1} = 0`` (equations in the module docstring).

    Args:
        current: X [T, N], or [1, N] for a static input repeated at every step.
        tau, k, theta, alpha: scalars of the arrays' dtype; sur_code: surrogate code.
        smooth: use the surrogate's primitive instead of the step (gradient checks).
        spikes: output S [T, N], written.
        charge: output H [T, N] (kept for backward), written.
        membrane: output ``k H`` [T, N] (the canonical membrane before firing), written.
    """
    T, N = spikes.shape
    static = current.shape[0] == 1
    V = np.zeros(N, dtype=spikes.dtype)
    zero = spikes.dtype.type(0.0)
    one = spikes.dtype.type(1.0)
    for t in range(T):
        X = current[0] if static else current[t]
        S_t, H_t, U_t = spikes[t], charge[t], membrane[t]
        for n in range(N):
            if smooth:
                H = V[n] + (X[n] - V[n]) / tau
                u = k * H
                F = u if u > zero else zero
                s = surrogate_primitive(sur_code, alpha, F - theta)
                V[n] = F * (one - s)
            else:
                H, u, s, V[n] = klif_update(V[n], X[n], tau, k, theta, zero, one)
            S_t[n] = s
            H_t[n] = H
            U_t[n] = u


@njit(cache=True, inline="always")
def klif_update(V, X, tau, k, theta, zero, one):
    """One KLIF update of one neuron (module docstring): returns ``(H, k H, S, V_new)``;
    ``zero``, ``one``: the constants in the arrays' dtype."""
    H = V + (X - V) / tau
    u = k * H
    F = u if u > zero else zero
    s = one if F >= theta else zero
    return H, u, s, F * (one - s)


@njit(cache=True)
def klif_step(current, tau, k, theta, V, spikes, charge):
    """One step of :func:`klif_forward` for ``current [N]``: updates ``V [N]`` in place and
    writes ``spikes [N]`` and ``charge [N]`` (the same scalar update, so the same bits)."""
    zero = V.dtype.type(0.0)
    one = V.dtype.type(1.0)
    for n in range(current.shape[0]):
        H, u, s, V[n] = klif_update(V[n], current[n], tau, k, theta, zero, one)
        spikes[n] = s
        charge[n] = H


@njit(cache=True, error_model="numpy")
def klif_backward(grad_spikes, charge, spikes, tau, k, theta, sur_code, alpha, detach_reset,
                  keep, has_mask, mask_scale, grad_current, grad_k):
    """BPTT through :func:`klif_forward`; writes ``dL/dX`` into ``grad_current [T, N]`` and
    ``dL/dk`` summed over time into ``grad_k [N]`` (per neuron; the caller sums).

    ``keep [T, N]`` (bool) multiplies the surrogate derivative (times ``mask_scale``) when
    ``has_mask``; without it the arithmetic is that of plain surrogate gradients.
    """
    T, N = grad_spikes.shape
    gV = np.zeros(N, dtype=grad_current.dtype)
    sg = np.empty(N, dtype=grad_current.dtype)
    F = np.empty(N, dtype=grad_current.dtype)
    zero = grad_current.dtype.type(0.0)
    one = grad_current.dtype.type(1.0)
    leak = one - one / tau
    for n in range(N):
        grad_k[n] = zero
    for t in range(T - 1, -1, -1):
        H_t, S_t, g_t, out = charge[t], spikes[t], grad_spikes[t], grad_current[t]
        for n in range(N):
            u = k * H_t[n]
            F[n] = u if u > zero else zero
        surrogate_derivative_row(sur_code, alpha, theta, F, sg)
        if has_mask:
            m_t = keep[t]
            for n in range(N):
                sg[n] = sg[n] * mask_scale if m_t[n] else zero
        for n in range(N):
            gs = g_t[n] if detach_reset else g_t[n] - gV[n] * F[n]
            gF = gV[n] * (one - S_t[n]) + gs * sg[n]
            if k * H_t[n] > zero:
                gH = gF * k
                grad_k[n] += gF * H_t[n]
            else:
                gH = zero
            out[n] = gH / tau
            gV[n] = leak * gH


@njit(cache=True)
def clamped_lif_forward(current, beta, theta, reset_mode, v_reset, v_min, spikes, membrane):
    """The canonical update with the lower clamp ``v_min`` (snncore.neuron.canonical_update,
    inlined) over T steps from ``v_{-1} = 0``; ``current`` [T, N] or [1, N] (static)."""
    T, N = spikes.shape
    static = current.shape[0] == 1
    v = np.zeros(N, dtype=spikes.dtype)
    one = spikes.dtype.type(1.0)
    zero = spikes.dtype.type(0.0)
    for t in range(T):
        I = current[0] if static else current[t]
        for n in range(N):
            u, s, v[n] = canonical_update(v[n], I[n], beta, theta, reset_mode, v_reset,
                                          True, v_min, False)
            spikes[t, n] = one if s != 0 else zero
            membrane[t, n] = u


# -- layers ----------------------------------------------------------------------------------

def _check_k(k, tau: float) -> float:
    low, high = k_range(tau)
    try:
        v = float(k)
    except (TypeError, ValueError):
        raise ValueError(f"KLIF: k must be a number, got {k!r}") from None
    if not (math.isfinite(v) and low < v < high):
        raise ValueError(f"KLIF: k must lie in ({low:g}, {high:g}) for tau={tau:g} "
                         f"(so beta = k (1 - 1/tau) is in [0, 1)), got {k!r}")
    return v


class KLIF(Module):
    """KLIF neurons, element-wise over ``[T, B, *features]`` (equations: module docstring).

    Args:
        tau: time constant in steps, finite and >= 1 (``H = V + (X - V)/tau``).
        k: initial membrane scaling, in ``(0, tau/(tau-1))`` (ValueError naming ``k``
            otherwise).
        threshold: firing threshold theta > 0 (applied to ``F = ReLU(k H)``).
        surrogate: a :class:`training.surrogates.Surrogate`, a name or ``(name, alpha)``;
            the default is sigmoid with alpha 4.
        learn_k: make ``k`` a :class:`Parameter` named ``k`` (shape ``(1,)``, holding k
            itself, no weight decay); otherwise ``k`` is a fixed float.
        msg_p: MSG masking probability in [0, 1) (training.msg): each element of the
            surrogate derivative is kept with probability ``1 - msg_p``; 0 is plain.
        msg_rescale: divide the kept derivatives by ``1 - msg_p``.
        rng: seed or ``np.random.Generator`` for the MSG masks (default seed 0).
        detach_reset: treat the spike in the reset ``V = F (1 - S)`` as a constant in backward.

    ``k`` is kept in range by :meth:`constrain`, which every training forward pass calls
    first (so an optimiser step that leaves the range is clipped before k is used again);
    export uses the clipped value too.

    Shapes: input current ``[T, B, ...]`` -> spikes ``[T, B, ...]`` (same dtype, {0, 1}).
    After a training backward with ``msg_p > 0``, ``msg_mask`` is the last keep mask (bool,
    the input's shape, True where the derivative was kept); None otherwise.  With
    ``record = True``, ``membrane`` is ``k H_t`` (the canonical membrane before firing).
    """

    record = False

    def __init__(self, tau: float = 2.0, k: float = 1.0, threshold: float = 1.0,
                 surrogate="sigmoid", learn_k: bool = True, msg_p: float = 0.0,
                 msg_rescale: bool = False, rng=None, detach_reset: bool = False):
        super().__init__()
        try:
            tau = float(tau)
        except (TypeError, ValueError):
            raise ValueError(f"KLIF: tau must be a number, got {tau!r}") from None
        if not (math.isfinite(tau) and tau >= 1.0):
            raise ValueError(f"KLIF: tau must be finite and >= 1 (in steps), got {tau!r}")
        if not (np.isfinite(threshold) and threshold > 0):
            raise ValueError(f"KLIF: threshold must be a positive number, got {threshold!r}")
        k = _check_k(k, tau)
        self.tau = tau
        self.threshold = float(threshold)
        self.surrogate = surrogates.get(surrogate)
        self.learn_k = bool(learn_k)
        if self.learn_k:
            from .config import get_default_dtype
            self.k = Parameter(np.array([k], dtype=get_default_dtype()), weight_decay=False)
        else:
            self.k = k
        self.msg_p = check_p(msg_p)
        self.msg_rescale = bool(msg_rescale)
        self.rng = _init_rng(rng)
        self.rng_given = rng is not None   # else fit gives it a stream of its own
        self.detach_reset = bool(detach_reset)
        self.msg_mask = None
        self.membrane = None
        self._H = self._S = self._k_used = None
        self._batch = None
        self.V = None              # step-wise state (reset_state / step)

    def __repr__(self) -> str:
        return (f"KLIF(tau={self.tau}, k={self.k_value:.6g}, threshold={self.threshold}, "
                f"surrogate={self.surrogate.name}({self.surrogate.alpha}), learn_k={self.learn_k})")

    @property
    def msg_p(self) -> float:
        return self._msg_p

    @msg_p.setter
    def msg_p(self, value) -> None:
        self._msg_p = check_p(value)

    @property
    def k_value(self) -> float:
        """The scaling ``k`` as used: the parameter's value clipped into range (a float)."""
        if not self.learn_k:
            return self.k
        low, high = _clip_bounds(self.tau)
        return float(min(max(float(self.k.data[0]), low), high))

    def constrain(self) -> None:
        """Clip a learnable ``k`` in place into ``(0, tau/(tau-1))`` (a relative 1e-6 inside).

        A NaN ``k`` is left as it is (the trainer reports divergence)."""
        if self.learn_k and not np.isnan(self.k.data[0]):
            self.k.data[0] = self.k_value

    @property
    def beta(self) -> float:
        """The canonical decay of the exported layer, ``k (1 - 1/tau)``."""
        return self.k_value * (1.0 - 1.0 / self.tau)

    @property
    def input_gain(self) -> float:
        """The input gain folded into the preceding weight layer at export, ``k / tau``."""
        return self.k_value / self.tau

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        if x.ndim < 3:
            raise ValueError(f"{self!r}: expected input [T, B, ...features], got shape {x.shape}")
        if self.training:
            self.constrain()
        T = x.shape[0]
        dt = x.dtype.type
        current = x[:1].reshape(1, -1) if is_static(x) else x.reshape(T, -1)
        current = np.ascontiguousarray(current)
        N = current.shape[1]
        spikes = np.empty((T, N), dtype=x.dtype)
        charge = np.empty((T, N), dtype=x.dtype)
        membrane = np.empty((T, N), dtype=x.dtype)
        k = dt(self.k_value)
        klif_forward(current, dt(self.tau), k, dt(self.threshold), self.surrogate.code,
                     dt(self.surrogate.alpha), is_smooth_mode(), spikes, charge, membrane)
        if self.training:
            self._H, self._S, self._k_used = charge, spikes, k
        else:
            self._H = self._S = self._k_used = None
        self.membrane = membrane.reshape(x.shape) if self.record else None
        return spikes.reshape(x.shape)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        self._require_cache("_H")
        T = grad_y.shape[0]
        H = self._H
        g = np.ascontiguousarray(grad_y.reshape(T, -1), dtype=H.dtype)
        if g.shape != H.shape:
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape} does not match the "
                             f"forward output")
        dt = H.dtype.type
        p = self.msg_p
        if p > 0.0:
            keep = keep_mask(self.rng, H.shape, p)
            self.msg_mask = keep.reshape(grad_y.shape)
            scale = dt(1.0 / (1.0 - p)) if self.msg_rescale else dt(1.0)
        else:
            keep, scale = np.ones((1, 1), dtype=np.bool_), dt(1.0)
            self.msg_mask = None
        grad_current = np.empty_like(H)
        grad_k = np.empty(H.shape[1], dtype=H.dtype)
        klif_backward(g, H, self._S, dt(self.tau), self._k_used, dt(self.threshold),
                      self.surrogate.code, dt(self.surrogate.alpha), self.detach_reset,
                      keep, p > 0.0, scale, grad_current, grad_k)
        if self.learn_k:
            self.k.grad[0] += grad_k.sum(dtype=np.float64)
        return grad_current.reshape(grad_y.shape)

    def reset_cache(self) -> None:
        self._H = self._S = self._k_used = None

    # -- step-wise execution -------------------------------------------------------------------
    def reset_state(self, batch_size: int) -> None:
        """Start a sequence: ``V_{-1} = 0`` is allocated at the first step."""
        super().reset_state(batch_size)
        self._batch = int(batch_size)
        self.V = None

    def step(self, x_t: np.ndarray) -> np.ndarray:
        """One KLIF step on ``x_t [B, ...]`` (the kernel's scalar update, :func:`klif_step`),
        equal to ``forward(x)[t]``; the membrane ``self.V [B, ...]`` carries over.  Inference
        and forward only: the online methods do not train KLIF."""
        if is_smooth_mode():
            raise ValueError(f"{self!r}: step-wise execution has no smooth mode")
        x_t = self._check_input(np.asarray(x_t)[None])[0]
        if getattr(self, "_batch", None) is None:
            raise RuntimeError(f"{self!r}: call reset_state(batch_size) before step")
        if x_t.shape[0] != self._batch:
            raise ValueError(f"{self!r}: step input has batch {x_t.shape[0]}, reset_state "
                             f"was given {self._batch}")
        if self.training:
            self.constrain()
        dt = x_t.dtype.type
        current = np.ascontiguousarray(x_t).reshape(-1)
        if getattr(self, "V", None) is None:
            self.V = np.zeros_like(current)
        spikes = np.empty_like(current)
        charge = np.empty_like(current)
        klif_step(current, dt(self.tau), dt(self.k_value), dt(self.threshold), self.V, spikes,
                  charge)
        return spikes.reshape(x_t.shape)

    def step_backward(self, grad_y_t):
        raise ValueError(f"{self!r}: the online methods (OTTT, SAF) do not support KLIF; use "
                         "LIF(tau=..., reset='subtract') or IF(reset='subtract')")


class ClampedLIF(LIF):
    """A canonical LIF with the lower membrane clamp ``v_min`` (``v = max(v, v_min)`` after
    the reset), in the beta form: what :func:`training.to_network` builds for a model layer
    with ``v_min`` (an exported :class:`KLIF`).  Inference only (no backward, no smooth mode).
    """

    def __init__(self, beta: float, threshold: float = 1.0, reset: str = "hard",
                 v_reset: float = 0.0, v_min: float = 0.0):
        super().__init__(beta=beta, threshold=threshold, reset=reset, v_reset=v_reset)
        if not np.isfinite(v_min):
            raise ValueError(f"ClampedLIF: v_min must be finite, got {v_min!r}")
        self.v_min = float(v_min)

    @property
    def params(self):
        from snncore.neuron import NeuronParams
        return NeuronParams(beta=self.beta, theta=self.threshold, reset=self.reset,
                            v_reset=self.v_reset, v_min=self.v_min)

    def __repr__(self) -> str:
        return (f"ClampedLIF(beta={self.beta}, threshold={self.threshold}, reset={self.reset!r}, "
                f"v_reset={self.v_reset}, v_min={self.v_min})")

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        if x.ndim < 3:
            raise ValueError(f"{self!r}: expected input [T, B, ...features], got shape {x.shape}")
        if is_smooth_mode():
            raise ValueError(f"{self!r}: inference only; smooth mode is not supported")
        T = x.shape[0]
        dt = x.dtype.type
        current = np.ascontiguousarray(x[:1].reshape(1, -1) if is_static(x) else x.reshape(T, -1))
        spikes = np.empty((T, current.shape[1]), dtype=x.dtype)
        membrane = np.empty_like(spikes)
        mode = HARD_RESET if self.reset == "hard" else SUBTRACT_RESET
        clamped_lif_forward(current, dt(self.beta), dt(self.threshold), mode, dt(self.v_reset),
                            dt(self.v_min), spikes, membrane)
        self.membrane = membrane.reshape(x.shape) if self.record else None
        return spikes.reshape(x.shape)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        raise RuntimeError(f"{self!r}: inference only (a model layer with v_min); train the "
                           "KLIF it was exported from instead")
