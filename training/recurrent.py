"""Recurrent and current-based LIF neurons (docs/methods.md section 16).

Per step ``t = 0..T-1`` on ``[B, F]`` rows, with ``s_{-1} = 0``, ``v_{-1} = 0``, ``i_{-1} = 0``::

    I_t = gain * (x_t + s_{t-1} W^T + b)       input current; W = recurrent_weight [F, F]
                                               (the W and b terms only when recurrent)
    i_t = alpha * i_{t-1} + I_t                synaptic current (CubaLIF only; else i_t = I_t)
    u_t, s_t, v_t = canonical_step(v_{t-1}, i_t)   charge, fire, reset (snncore.neuron)

``gain`` is ``1/tau`` in the tau form of :class:`RecurrentLIF` and 1 otherwise.  The spikes
feed back with a delay of one step, so the layer cannot run all T steps in one product; the
loop below runs the matrix product per step and the canonical update of
:func:`snncore.neuron.canonical_step` (one definition of the neuron, shared with the
simulator).  In smooth mode (finite-difference checks only) the spike is the surrogate
primitive ``g(u_t - theta)`` and the hard reset is ``u_t (1 - s_t) + v_reset s_t``.

Backward (BPTT, hand-derived; ``sg = g'(u_t - theta)``), from ``t = T-1`` down to 0 with
``gv = dL/dv_t = beta gu_{t+1}``, ``alpha gi_{t+1}`` (the part of ``dL/di_t`` from step t+1)
and ``gx_{t+1} = dL/dx_{t+1}`` (zero at ``t = T-1``; it is also ``dL/d(s_t W^T)``)::

    gs  = dL/ds_t + gx_{t+1} W
    hard:     gS = gs + gv (v_reset - u_t) ;  gu = gv (1 - s_t) + gS sg
    subtract: gS = gs - theta gv           ;  gu = gv + gS sg
              (the reset terms of gS dropped with ``detach_reset``; the recurrent path
              through s_t is kept)
    gi = gu + alpha gi_{t+1}  (CubaLIF)   or   gi = gu
    gx_t = dL/dx_t = gain * gi
    dL/dW  = sum_{t>=1} gx_t^T s_{t-1} ;   dL/db = sum_t gx_t
    dL/dbeta  += gu v_{t-1} ;   dL/dalpha += gi i_{t-1}
    dL/dtheta += -gS sg  (hard)   or   -gS sg - gv s_t  (subtract)
"""
from __future__ import annotations

import numpy as np

from snncore.neuron import RESET_CODES, NeuronParams, canonical_step

from . import surrogates
from .config import get_default_dtype, is_smooth_mode
from .layers import _init_rng, kaiming_uniform
from .module import Module, Parameter, _check_batch_size

__all__ = ["RecurrentLIF", "CubaLIF"]


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _sigmoid(w: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * w))


class _RecurrentNeuron(Module):
    """The shared time loop of :class:`RecurrentLIF` and :class:`CubaLIF` (see the module
    docstring for the equations).  Subclasses set the options in ``__init__``."""

    record = False     # set True to keep ``.membrane [T, B, F]`` after each forward
    THETA_MIN = 1e-3   # floor of a learned threshold

    def _setup(self, name, features, alpha, beta, threshold, reset, v_reset, surrogate,
               detach_reset, recurrent, bias, learn_alpha, learn_beta, learn_threshold,
               per_neuron, rng, gain=1.0):
        """Validate and store the options (ValueError naming the first bad one)."""
        if features is not None:
            if isinstance(features, (bool, np.bool_)) or not isinstance(
                    features, (int, np.integer)) or features < 1:
                raise ValueError(f"{name}: features must be an integer >= 1, got {features!r}")
            features = int(features)
        if (recurrent or per_neuron) and features is None:
            raise ValueError(f"{name}: {'recurrent' if recurrent else 'per_neuron'} needs "
                             "features= (the number of neurons)")
        arrays = {"beta": np.asarray(beta, dtype=np.float64),
                  "threshold": np.asarray(threshold, dtype=np.float64)}
        if alpha is not None:
            arrays["alpha"] = np.asarray(alpha, dtype=np.float64)
        for key, a in arrays.items():
            if a.ndim > 1 or (a.ndim == 1 and a.shape != (features,)):
                raise ValueError(f"{name}: {key} must be a number or an array of shape "
                                 f"(features,) = ({features},), got shape {a.shape}")
        for key in ("alpha", "beta"):
            if key in arrays:
                a = arrays[key]
                if not (np.all(a >= 0.0) and np.all(a <= 1.0)):
                    raise ValueError(f"{name}: {key} must lie in [0, 1], got {a.tolist()}")
        th = arrays["threshold"]
        if not (np.all(np.isfinite(th)) and np.all(th > 0)):
            raise ValueError(f"{name}: threshold must be a positive number (theta > 0), "
                             f"got {th.tolist()}")
        if reset not in RESET_CODES:
            raise ValueError(f"{name}: reset must be 'hard' or 'subtract', got {reset!r}")
        if not np.isfinite(v_reset):
            raise ValueError(f"{name}: v_reset must be finite, got {v_reset}")
        for flag, key in ((learn_alpha, "alpha"), (learn_beta, "beta"),
                          (learn_threshold, "threshold")):
            if flag and arrays[key].ndim == 1 and not per_neuron:
                raise ValueError(f"{name}: learn_{key} with per-neuron values of {key} needs "
                                 "per_neuron=True")
        for flag, key in ((learn_alpha, "alpha"), (learn_beta, "beta")):
            if flag and not (np.all(arrays[key] > 0.0) and np.all(arrays[key] < 1.0)):
                raise ValueError(f"{name}: learn_{key} needs 0 < {key} < 1 ({key} = sigmoid(w)), "
                                 f"got {arrays[key].tolist()}")
        self.name = name
        self.features = features
        self.reset = reset
        self.v_reset = float(v_reset)
        self.surrogate = surrogates.get(surrogate)
        self.detach_reset = bool(detach_reset)
        self.input_gain = float(gain)
        self.per_neuron = bool(per_neuron)
        dt = get_default_dtype()
        shape = (features,) if per_neuron else (1,)
        for key, learn, squash in (("alpha", learn_alpha, True), ("beta", learn_beta, True),
                                   ("threshold", learn_threshold, False)):
            if key not in arrays:
                setattr(self, key, None)
            elif learn:
                a = _logit(arrays[key]) if squash else arrays[key]
                setattr(self, key, Parameter(np.broadcast_to(a, shape).astype(dt),
                                             weight_decay=False))
            else:
                a = arrays[key]
                setattr(self, key, float(a) if a.ndim == 0 else a.copy())
        self.recurrent = bool(recurrent)
        rng = _init_rng(rng)
        if recurrent:   # PyTorch's nn.Linear(F, F) initialisation, as snnTorch's RLeaky
            self.recurrent_weight = Parameter(kaiming_uniform(rng, (features, features),
                                                              features, dt))
            self.bias = Parameter(kaiming_uniform(rng, (features,), features, dt)) if bias else None
        else:
            self.recurrent_weight = self.bias = None
        self._cache = None
        self.membrane = None
        self._state = None

    # -- parameters --------------------------------------------------------------------------
    def _value(self, key) -> np.ndarray | None:
        """alpha, beta or theta in float64: ``[1]`` or ``[F]`` (sigmoid of a learned alpha/beta)."""
        p = getattr(self, key)
        if p is None:
            return None
        if isinstance(p, Parameter):
            d = p.data.astype(np.float64)
            return d if key == "threshold" else _sigmoid(d)
        return np.atleast_1d(np.asarray(p, dtype=np.float64))

    def beta_value(self) -> np.ndarray:
        return self._value("beta")

    def threshold_value(self) -> np.ndarray:
        return self._value("threshold")

    def alpha_value(self) -> np.ndarray | None:
        return self._value("alpha")

    @property
    def params(self) -> NeuronParams:
        """The canonical parameters (floats, or flat float64 arrays per neuron)."""
        b, th = self.beta_value(), self.threshold_value()
        return NeuronParams(beta=float(b[0]) if b.size == 1 else b,
                            theta=float(th[0]) if th.size == 1 else th, reset=self.reset,
                            v_reset=self.v_reset)

    def _dtype_params(self, dtype):
        """(alpha or None, beta, theta) as ``[1]``/``[F]`` arrays of ``dtype``."""
        if isinstance(self.threshold, Parameter) and self.training:
            np.maximum(self.threshold.data, self.THETA_MIN, out=self.threshold.data)
        a = self.alpha_value()
        return (None if a is None else a.astype(dtype), self.beta_value().astype(dtype),
                self.threshold_value().astype(dtype))

    # -- one step (forward loop, step-wise execution) ----------------------------------------
    def _current(self, x_t, s_prev, i_prev, alpha, W, b, dt):
        """``(I_t, i_t)``: the input current with the recurrent term and gain, and the current
        the neuron charges with (``alpha i_{t-1} + I_t`` for CubaLIF, else ``I_t``)."""
        I = x_t
        if W is not None:
            rec = b if s_prev is None else (s_prev @ W.T if b is None else s_prev @ W.T + b)
            if rec is not None:
                I = I + rec
        if self.input_gain != 1.0:
            I = I * dt(self.input_gain)
        if alpha is None:
            return I, I
        return I, (I if i_prev is None else alpha * i_prev + I)

    def _neuron(self, v_prev, i_t, beta, theta, smooth):
        """``(u_t, s_t, v_t)``: the canonical update, or its smooth stand-in."""
        if not smooth:
            p = NeuronParams(beta=beta, theta=theta, reset=self.reset, v_reset=self.v_reset)
            return canonical_step(v_prev, i_t, p)
        dt = i_t.dtype.type
        u = beta * v_prev + i_t
        s = self.surrogate.primitive(u - theta).astype(i_t.dtype)
        if self.reset == "hard":
            v = u * (dt(1.0) - s) + dt(self.v_reset) * s
        else:
            v = u - theta * s
        return u, s, v

    # -- passes ------------------------------------------------------------------------------
    def _flatten(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        if x.ndim < 3:
            raise ValueError(f"{self!r}: expected input [T, B, features], got shape {x.shape}")
        if self.recurrent and x.ndim != 3:
            raise ValueError(f"{self!r}: expected input [T, B, {self.features}], got shape "
                             f"{x.shape}")
        F = int(np.prod(x.shape[2:]))
        if self.features is not None and F != self.features:
            raise ValueError(f"{self!r}: expected input [T, B, {self.features}], got shape "
                             f"{x.shape}")
        if self.recurrent and x.dtype != self.recurrent_weight.data.dtype:
            raise ValueError(f"{self!r}: input dtype {x.dtype} differs from recurrent_weight "
                             f"dtype {self.recurrent_weight.data.dtype}")
        return x.reshape(x.shape[0], x.shape[1], F)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Spikes ``s [T, B, *features]`` of input ``x [T, B, *features]`` (``[T, B, F]`` when
        recurrent); caches ``u``, ``s`` (and ``i``) for :meth:`backward` in training mode."""
        x3 = self._flatten(x)
        T, B, F = x3.shape
        dt = x3.dtype.type
        alpha, beta, theta = self._dtype_params(x3.dtype)
        W = None if self.recurrent_weight is None else self.recurrent_weight.data
        b = None if self.bias is None else self.bias.data
        smooth = is_smooth_mode()
        S = np.empty((T, B, F), dtype=x3.dtype)
        U = np.empty_like(S)
        Icur = np.empty_like(S) if alpha is not None else None
        v = np.zeros((B, F), dtype=x3.dtype)
        i = None
        for t in range(T):
            _, i = self._current(x3[t], S[t - 1] if t else None, i, alpha, W, b, dt)
            U[t], S[t], v = self._neuron(v, i, beta, theta, smooth)
            if Icur is not None:
                Icur[t] = i
        self._cache = (U, S, Icur, W) if self.training else None
        self.membrane = U.reshape(x.shape) if self.record else None
        return S.reshape(x.shape)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """BPTT: ``dL/ds [T, B, *features] -> dL/dx``, adding into the parameters' ``.grad``."""
        self._require_cache("_cache")
        U, S, Icur, W = self._cache
        T, B, F = U.shape
        if grad_y.size != U.size or grad_y.shape[:2] != (T, B):
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape} does not match the "
                             f"forward output {(T, B, F)}")
        dtype = U.dtype
        dt = dtype.type
        g_out = np.asarray(grad_y, dtype=dtype).reshape(T, B, F)
        alpha, beta, theta = self._dtype_params(dtype)
        gain, v_reset, one = dt(self.input_gain), dt(self.v_reset), dt(1.0)
        hard = self.reset == "hard"
        gX = np.empty_like(U)
        gv = np.zeros((B, F), dtype=dtype)
        gi_next = np.zeros((B, F), dtype=dtype)
        g_beta = np.zeros((B, F), dtype=np.float64)
        g_theta = np.zeros((B, F), dtype=np.float64)
        g_alpha = np.zeros((B, F), dtype=np.float64)
        for t in range(T - 1, -1, -1):
            u, s = U[t], S[t]
            gs = g_out[t] if (W is None or t == T - 1) else g_out[t] + gX[t + 1] @ W
            sg = self.surrogate.derivative(u - theta).astype(dtype)
            if hard:
                gS = gs if self.detach_reset else gs + gv * (v_reset - u)
                gu = gv * (one - s) + gS * sg
                g_theta -= gS * sg
            else:
                gS = gs if self.detach_reset else gs - theta * gv
                gu = gv + gS * sg
                g_theta -= gS * sg + gv * s
            if t > 0:
                up, sp = U[t - 1], S[t - 1]
                v_prev = up * (one - sp) + v_reset * sp if hard else up - theta * sp
                g_beta += gu * v_prev
            if alpha is None:
                gi = gu
            else:
                gi = gu + alpha * gi_next
                if t > 0:
                    g_alpha += gi * Icur[t - 1]
                gi_next = gi
            gX[t] = gi * gain if gain != one else gi
            gv = beta * gu
        if W is not None:
            if T > 1:
                self.recurrent_weight.grad += (gX[1:].reshape(-1, F).T
                                               @ S[:-1].reshape(-1, F))
            if self.bias is not None:
                self.bias.grad += gX.sum(axis=(0, 1))
        for key, g in (("alpha", g_alpha), ("beta", g_beta), ("threshold", g_theta)):
            p = getattr(self, key)
            if isinstance(p, Parameter):
                red = g.sum(axis=0) if self.per_neuron else g.sum(keepdims=True).reshape(1)
                if key != "threshold":
                    a = _sigmoid(p.data.astype(np.float64))
                    red = red * a * (1.0 - a)       # d sigmoid(w) / dw
                p.grad += red.astype(p.grad.dtype)
        return gX.reshape(grad_y.shape)

    def reset_cache(self) -> None:
        self._cache = None

    # -- step-wise execution (inference) -------------------------------------------------------
    def reset_state(self, batch_size: int) -> None:
        """Start a sequence: ``v``, ``s`` (and ``i``) are zero before the first :meth:`step`."""
        self._state = (_check_batch_size(self, batch_size), None, None, None)

    def step(self, x_t: np.ndarray) -> np.ndarray:
        """One step on ``x_t [B, *features]``: exactly ``forward(x)[t]`` (the same operations)."""
        if is_smooth_mode():
            raise ValueError(f"{self!r}: step-wise execution has no smooth mode")
        if self._state is None:
            raise RuntimeError(f"{self!r}: call reset_state(batch_size) before step")
        batch, v, s, i = self._state
        x_t = np.asarray(x_t)
        x3 = self._flatten(x_t[None])
        if x3.shape[1] != batch:
            raise ValueError(f"{self!r}: step input has batch {x3.shape[1]}, reset_state was "
                             f"given {batch}")
        alpha, beta, theta = self._dtype_params(x3.dtype)
        W = None if self.recurrent_weight is None else self.recurrent_weight.data
        b = None if self.bias is None else self.bias.data
        _, i = self._current(x3[0], s, i, alpha, W, b, x3.dtype.type)
        _, s, v = self._neuron(np.zeros_like(x3[0]) if v is None else v, i, beta, theta, False)
        self._state = (batch, v, s, i)
        return s.reshape(x_t.shape)

    def step_backward(self, grad_y_t: np.ndarray) -> np.ndarray:
        raise ValueError(f"{self!r}: the online methods (step_backward) do not support "
                         "recurrent or current-based neurons; train with BPTT")


class RecurrentLIF(_RecurrentNeuron):
    """LIF neurons with an all-to-all recurrent projection of their own spikes, delayed by one
    step (snnTorch's ``RLeaky``): ``I_t = gain (x_t + W s_{t-1} + b)``, then the canonical LIF
    update (docs/methods.md section 16).

    Args:
        features: number of neurons F (>= 1).
        beta: decay per step in [0, 1] (snnTorch form ``u = beta v + I``; a float or ``[F]``).
        tau: time constant in steps (> 1, or ``inf`` for IF; SpikingJelly form: ``beta = 1 -
            1/tau`` and the whole current, recurrent term included, scaled by ``1/tau``).
            Give ``beta`` or ``tau``, not both; with neither, ``tau = 2``.
        threshold: theta > 0 (a float or ``[F]``).  reset: "subtract" (default, as snnTorch)
            or "hard" (to ``v_reset``).
        surrogate: a :class:`training.surrogates.Surrogate`, a name, or ``(name, alpha)``.
        detach_reset: treat the spike in the reset term as a constant in backward (the
            recurrent path through the spike keeps its gradient).
        bias: learnable recurrent bias ``b [F]`` (as the bias of snnTorch's ``nn.Linear``).
        learn_beta: PLIF decay ``beta = sigmoid(w)`` held in the Parameter ``beta`` (0 < beta
            < 1).  learn_threshold: theta held in the Parameter ``threshold`` (floored at
            ``THETA_MIN`` before each training forward).  per_neuron: one learned value per
            neuron instead of one per layer.
        rng: seed or Generator for the initialisation of ``recurrent_weight [F, F]`` and
            ``bias [F]``: PyTorch's ``nn.Linear`` rule ``U(-1/sqrt(F), 1/sqrt(F))``.

    Shapes: ``x [T, B, F] -> s [T, B, F]`` (dtype of the parameters; in smooth mode the
    surrogate primitive's values).  Export: a spiking layer plus a delay-1 connection from it
    to itself holding ``gain * W`` and ``gain * b`` (``training.to_model``).
    """

    def __init__(self, features: int, beta=None, tau: float | None = None, threshold=1.0,
                 reset: str = "subtract", v_reset: float = 0.0, surrogate="atan",
                 detach_reset: bool = False, *, bias: bool = True, learn_beta: bool = False,
                 learn_threshold: bool = False, per_neuron: bool = False, rng=None):
        super().__init__()
        if beta is not None and tau is not None:
            raise ValueError("RecurrentLIF: give beta or tau, not both")
        if beta is None and tau is None:
            tau = 2.0
        gain = 1.0
        if tau is not None:
            tau = float(tau)
            if not tau >= 1.0:
                raise ValueError(f"RecurrentLIF: tau must be >= 1 (in steps; inf for IF), got {tau}")
            beta, gain = (1.0, 1.0) if tau == np.inf else (1.0 - 1.0 / tau, 1.0 / tau)
        if features is None:
            raise ValueError("RecurrentLIF: features must be an integer >= 1, got None")
        self.tau = tau
        self._setup("RecurrentLIF", features, None, beta, threshold, reset, v_reset, surrogate,
                    detach_reset, True, bias, False, learn_beta, learn_threshold, per_neuron,
                    rng, gain)

    def __repr__(self) -> str:
        form = f"tau={self.tau}" if self.tau is not None else (
            f"beta={self.beta}" if isinstance(self.beta, float) else "beta=...")
        return (f"RecurrentLIF({self.features}, {form}, reset={self.reset!r}, "
                f"surrogate={self.surrogate.name}({self.surrogate.alpha}))")


class CubaLIF(_RecurrentNeuron):
    """Current-based LIF (snnTorch ``Synaptic``, NIR ``CubaLIF`` in discrete time): a
    synaptic current ``i_t = alpha i_{t-1} + I_t`` charges the canonical LIF membrane
    ``u_t = beta v_{t-1} + i_t`` (docs/methods.md section 16).

    Args:
        alpha: synaptic decay per step in [0, 1] (a float or ``[F]``).
        beta: membrane decay per step in [0, 1] (a float or ``[F]``).
        threshold, reset, v_reset, surrogate, detach_reset: as :class:`RecurrentLIF`.
        recurrent: add ``W s_{t-1} + b`` to ``I_t`` (needs ``features``; ``recurrent_weight
            [F, F]`` and ``bias [F]`` initialised from ``rng`` as in :class:`RecurrentLIF`).
        features: number of neurons F (needed with ``recurrent`` or ``per_neuron``; checked
            against the input when given).
        bias: with ``recurrent``, a learnable recurrent bias.
        learn_alpha, learn_beta: learn ``sigmoid(w)`` (Parameters ``alpha``/``beta`` hold w;
            values in (0, 1) required).  learn_threshold, per_neuron, rng: as RecurrentLIF.

    Shapes: ``x [T, B, *features] -> s`` of the same shape (``[T, B, F]`` when recurrent).
    Export: a spiking layer with ``alpha`` (model format version 4), plus a delay-1
    connection to itself holding ``W`` and ``b`` when recurrent (``training.to_model``); the
    simulator runs it with the dense engine's bits.
    """

    def __init__(self, alpha, beta, threshold=1.0, reset: str = "subtract",
                 v_reset: float = 0.0, surrogate="atan", detach_reset: bool = False, *,
                 recurrent: bool = False, features: int | None = None, bias: bool = True,
                 learn_alpha: bool = False, learn_beta: bool = False,
                 learn_threshold: bool = False, per_neuron: bool = False, rng=None):
        super().__init__()
        if alpha is None or beta is None:
            raise ValueError("CubaLIF: alpha and beta are required (decays in [0, 1])")
        self._setup("CubaLIF", features, alpha, beta, threshold, reset, v_reset, surrogate,
                    detach_reset, recurrent, bias, learn_alpha, learn_beta, learn_threshold,
                    per_neuron, rng)

    def __repr__(self) -> str:
        a = self.alpha if isinstance(self.alpha, float) else "..."
        b = self.beta if isinstance(self.beta, float) else "..."
        rec = f", recurrent=True, features={self.features}" if self.recurrent else ""
        return (f"CubaLIF(alpha={a}, beta={b}, reset={self.reset!r}, "
                f"surrogate={self.surrogate.name}({self.surrogate.alpha}){rec})")
