"""Online training: OTTT and SAF, with memory that does not grow with T (docs/methods.md
section 15).

Both walk the network one time step at a time and keep only one step of state: each
spiking layer's membrane (OTTT) or accumulated output (SAF), each weight layer's presynaptic
trace ``ahat`` of its input, and what that step's backward needs.  No ``[T, ...]`` buffer is
made; ``x [T, B, ...]`` is read one step at a time.

OTTT (Xiao et al. 2022), per step t, with the previous membrane and the reset detached::

    forward:   the canonical LIF step (LIF.step)                 ahat_t = lam ahat_{t-1} + a_t
    loss:      L_t = ((1 - c) CE(o_t, y) + c MSE(o_t, onehot(y))) / T
    backward:  delta_t = dL_t/dI_t through space at step t (LIF.step_backward: g'(u_t - theta))
               dW += delta_t (outer) ahat^in_t,  db += delta_t
               a weight layer with no spiking layer before it (layer 1) uses its input a_t

``a_t`` is the weight layer's input at step t (spikes, pooled or scaled spikes) and ``lam`` the
decay of the spiking layer the weight layer feeds (the readout: of the spiking layer before
it).  OTTT_A sums the T steps' gradients into one update; OTTT_O updates after every step.

SAF (Saiin et al. 2024) forwards accumulations instead of spikes (one matrix product per
layer and step); with ``c_t = lam c_{t-1} + 1`` (``c_0 = 1``)::

    A^in_t = lam A^in_{t-1} + x_t             (network input, layer 1)
    Uhat_t = gain (W A^in_t + b c_t)          (membrane without reset)
    s_t    = 1[Uhat_t >= theta (lam A^out_{t-1} + 1)],   A^out_t = lam A^out_{t-1} + s_t
    o_t    = Ohat_t - lam Ohat_{t-1},  Ohat_t = W_o A^L_t + b_o c_t          (readout)

SAF-E backward at step t (``A^out_{t-1}`` and ``Ohat_{t-1}`` constant, ``ds/dA = 1``):
``dL/dUhat = dL/dA^out * g'(Uhat - thr)``, ``dW += dL/dI (outer) A^in_t``,
``db += c_t dL/dI`` ("natural") or ``dL/dI`` ("ottt" rules, which also give layer 1 the
input ``x_t`` instead of ``A^in_t``).  SAF-F: one loss on ``o = Ohat_{T-1} / c_{T-1}``, backward at
the last step only with ``dA/dUhat = 1[0 <= z <= 1] / theta``, ``z = Uhat / (c_{T-1} theta)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import losses
from .conv import Conv2d
from .dropout import Dropout
from .klif import KLIF
from .layers import Flatten, Linear, Sequential
from .neurons import LIF, online_unsupported
from .norm import _BatchNorm
from .optim import clip_grad_norm
from .pooling import AvgPool2d, MaxPool2d
from .ws import Scale

GRADIENT_METHODS = ("ottt_a", "saf_e", "saf_f")
TRAIN_METHODS = ("ottt_o", "saf_e")
ONLINE_METHODS = ("ottt_a", "ottt_o", "saf_e", "saf_f")
SAF_RULES = ("natural", "ottt")

_WEIGHT = (Linear, Conv2d)
_STATELESS = (Flatten, Dropout, AvgPool2d, MaxPool2d, Scale)


# ------------------------------------------------------------------------------------------
# checks and the network's plan
# ------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    """Where the weight and spiking layers of a Sequential sit, and each weight layer's
    trace decay (None: fed by the network input through no spiking layer, i.e. layer 1)."""
    layers: list
    weights: list = field(default_factory=list)     # indices of weight layers
    neurons: list = field(default_factory=list)     # indices of LIF layers
    trace_lam: dict = field(default_factory=dict)   # weight index -> lam or None
    readout: int = -1
    first_param: int = 0


def check_method(method: str, allowed=ONLINE_METHODS, what: str = "method") -> str:
    """``method`` if it is one of ``allowed``; ValueError saying what to use otherwise."""
    if method not in allowed:
        raise ValueError(f"{what}: unknown method {method!r}; choose one of {list(allowed)}")
    return method


def _check_c(c) -> float:
    try:
        c = float(c)
    except (TypeError, ValueError):
        raise ValueError(f"c (the loss's MSE weight) must be a number in [0, 1], got {c!r}") from None
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"c (the loss's MSE weight) must lie in [0, 1], got {c!r}")
    return c


def plan(net, method: str) -> _Plan:
    """Check that ``net`` can be trained by ``method`` and locate its layers.

    Raises ValueError naming the layer and what to use instead: BatchNorm (use WSLinear /
    WSConv2d), KLIF or an unsupported LIF option, a hard reset, SAF with MaxPool2d or with
    decays that differ between layers, two weight layers with no spiking layer between them,
    no spiking layer, or a network that does not end with a weight layer (the readout).
    """
    check_method(method)
    saf = method.startswith("saf")
    name = method.upper()
    if not isinstance(net, Sequential):
        raise ValueError(f"{name}: expects a training.Sequential, got {type(net).__name__}")
    p = _Plan(layers=list(net.layers))
    last_lam = None
    pending_weight = None      # a weight layer still waiting for its spiking layer
    for i, layer in enumerate(p.layers):
        where = f"{name}: layer {i} ({layer!r})"
        if isinstance(layer, _BatchNorm):
            raise ValueError(f"{where}: online methods have no BatchNorm (its statistics span all "
                             "T steps); use WSLinear/WSConv2d (scaled weight standardisation) and "
                             "Scale instead")
        if isinstance(layer, KLIF):
            raise ValueError(f"{where}: {name} does not support KLIF; use LIF(tau=..., "
                             "reset='subtract') or IF(reset='subtract')")
        if isinstance(layer, _WEIGHT):
            if pending_weight is not None:
                raise ValueError(f"{where}: follows the weight layer {pending_weight} with no "
                                 "spiking layer between them; online methods need a spiking "
                                 "layer after every weight layer but the readout")
            p.weights.append(i)
            p.trace_lam[i] = last_lam
            pending_weight = i
        elif isinstance(layer, LIF):
            problem = online_unsupported(layer)
            if problem:
                raise ValueError(f"{where}: {name} does not support {problem}; use a plain "
                                 "binary LIF/IF")
            if getattr(layer, "v_min", None) is not None:
                raise ValueError(f"{where}: {name} does not support a membrane clamp (v_min)")
            if layer.reset != "subtract":
                raise ValueError(f"{where}: {name} needs reset='subtract' (the reset is detached "
                                 "and the trace/accumulation assumes it); got reset="
                                 f"{layer.reset!r}")
            beta, theta = layer.beta_value(), layer.threshold_value()
            if beta.size != 1 or theta.size != 1:
                raise ValueError(f"{where}: {name} needs one beta and one threshold per layer, "
                                 "not per-neuron arrays")
            if pending_weight is None:
                raise ValueError(f"{where}: a spiking layer must follow a weight layer")
            lam = float(beta[0])
            if saf and last_lam is not None and lam != last_lam:
                raise ValueError(f"{where}: SAF needs the same beta in every layer (the "
                                 f"accumulations share one decay); got {lam} after {last_lam}")
            if pending_weight is not None and p.trace_lam[pending_weight] is not None:
                p.trace_lam[pending_weight] = lam          # decay of the neurons it feeds
            p.neurons.append(i)
            last_lam, pending_weight = lam, None
        elif isinstance(layer, MaxPool2d) and saf:
            raise ValueError(f"{where}: SAF forwards accumulations, and a max of accumulated "
                             "spikes is not the accumulation of max-pooled spikes; use AvgPool2d")
        elif not isinstance(layer, _STATELESS):
            raise ValueError(f"{where}: {name} does not support {type(layer).__name__} layers")
    if not p.neurons:
        raise ValueError(f"{name}: the network has no spiking layer (LIF/IF)")
    if not p.weights or p.weights[-1] != len(p.layers) - 1 or p.weights[-1] < p.neurons[-1]:
        raise ValueError(f"{name}: the network must end with a Linear readout after its last "
                         "spiking layer (non-spiking, one output o_t per step)")
    p.readout = p.weights[-1]
    p.first_param = next(i for i, l in enumerate(p.layers) if any(True for _ in l.parameters()))
    return p


def _check_x(x, labels, net_name: str):
    x = np.asarray(x)
    if x.ndim < 3:
        raise ValueError(f"{net_name}: x must be time-major [T, B, ...features], got shape {x.shape}")
    if x.shape[0] < 1:
        raise ValueError(f"{net_name}: need T >= 1 time steps, got x of shape {x.shape}")
    labels = np.asarray(labels)
    if labels.shape != (x.shape[1],) or labels.dtype.kind not in "iu":
        raise ValueError(f"{net_name}: labels must be integers [B] = [{x.shape[1]}], got "
                         f"{labels.dtype} {labels.shape}")
    return x, labels


def _decay(a: np.ndarray | None, lam: float, x: np.ndarray) -> np.ndarray:
    """``lam * a + x`` in ``x``'s dtype (a new array; ``a = None`` is the start, 0)."""
    if a is None:
        return np.array(x, copy=True)
    a *= a.dtype.type(lam)
    a += x
    return a


# ------------------------------------------------------------------------------------------
# OTTT
# ------------------------------------------------------------------------------------------
class _OTTT:
    """One OTTT pass: :meth:`forward_step` then :meth:`backward_step` for t = 0..T-1."""

    def __init__(self, net: Sequential, p: _Plan):
        self.net, self.p = net, p

    def reset(self, batch_size: int) -> None:
        self.net.reset_state(batch_size)
        self.ahat = {i: None for i in self.p.weights}    # traces of the weight layers' inputs
        self.inputs = {}                                   # layer-1 inputs of this step

    def forward_step(self, x_t: np.ndarray) -> np.ndarray:
        """``x_t [B, ...] -> o_t [B, C]``, updating the traces."""
        a = x_t
        for i, layer in enumerate(self.p.layers):
            if i in self.ahat:
                if self.p.trace_lam[i] is None:
                    self.inputs[i] = a
                else:
                    self.ahat[i] = _decay(self.ahat[i], self.p.trace_lam[i], a)
            a = layer.step(a)
        return a

    def backward_step(self, grad_o: np.ndarray) -> None:
        """Add this step's gradients (``dL_t/do_t [B, C]``) into the parameters' ``.grad``."""
        g = grad_o
        for i in range(len(self.p.layers) - 1, self.p.first_param - 1, -1):
            layer = self.p.layers[i]
            if i in self.ahat:
                a_in = self.inputs[i] if self.p.trace_lam[i] is None else self.ahat[i]
                g = layer.weight_backward(g[None], a_in[None],
                                          need_input_grad=i > self.p.first_param)
                g = None if g is None else g[0]
            else:
                g = layer.step_backward(g)


# ------------------------------------------------------------------------------------------
# SAF
# ------------------------------------------------------------------------------------------
class _SAF:
    """One SAF pass over accumulations (module docstring).  ``rules``: "natural" or "ottt"
    (SAF-E's layer-1 input and bias factors); SAF-F always uses the natural (exact) ones."""

    def __init__(self, net: Sequential, p: _Plan, rules: str = "natural"):
        self.net, self.p, self.rules = net, p, rules
        self.lam = p.layers[p.neurons[0]].beta_value()[0]
        self.first_weight = p.weights[0]

    def reset(self, batch_size: int) -> None:
        self.net.reset_state(batch_size)      # dropout masks; the LIF state is ours
        self.c = 0.0                          # c_t = lam c_{t-1} + 1, float64
        self.A_x = None                       # accumulated network input
        self.A = {i: None for i in self.p.neurons}        # accumulated outputs A^out
        self.A_prev = {i: None for i in self.p.neurons}   # A^out_{t-1} (backward constant)
        self.Uhat = {}
        self.thr = {}
        self.inputs = {}                      # weight layers' inputs of this step
        self.x_raw = None                     # layer 1's non-accumulated input ("ottt" rules)
        self.Ohat_prev = None

    def _neuron_forward(self, i: int, layer: LIF, current: np.ndarray) -> np.ndarray:
        dt = current.dtype.type
        theta = dt(layer.threshold_value()[0])
        Uhat = current * dt(layer.input_gain) if layer.input_gain != 1.0 else current
        prev = self.A[i]
        if prev is None:
            prev = np.zeros_like(Uhat)
        thr = theta * (dt(self.lam) * prev + dt(1.0))
        s = (Uhat >= thr).astype(Uhat.dtype)
        self.A_prev[i] = prev
        self.Uhat[i], self.thr[i] = Uhat, thr
        self.A[i] = dt(self.lam) * prev + s
        return self.A[i]

    def forward_step(self, x_t: np.ndarray, readout: bool = True):
        """Advance one step; returns ``Ohat_t [B, C]`` (None when ``readout`` is False: the
        readout's product is skipped)."""
        self.c = self.lam * self.c + 1.0
        self.A_x = _decay(self.A_x, self.lam, x_t)
        a = self.A_x
        raw = x_t if self.rules == "ottt" else None
        for i, layer in enumerate(self.p.layers):
            if i == self.p.readout and not readout:
                return None
            if i in self.A:
                a = self._neuron_forward(i, layer, a)
                continue
            if i < self.first_weight and raw is not None:
                raw = layer.step(raw)
            if i == self.first_weight:
                self.x_raw = raw
            if i in self.p.trace_lam:
                self.inputs[i] = a
                y = layer.step(a)
                if layer.bias is not None and self.c != 1.0:
                    b = layer.bias.data.reshape((-1,) + (1,) * (y.ndim - 2))
                    y = y + b * y.dtype.type(self.c - 1.0)
                a = y
            else:
                a = layer.step(a)
        return a

    def backward_step(self, grad_Ohat: np.ndarray, final: bool) -> None:
        """Add the gradients of this step's loss given ``dL/dOhat_t``; ``final``: SAF-F's
        backward (``dA/dUhat = 1[0 <= z <= 1]/theta``) instead of SAF-E's surrogate."""
        g = grad_Ohat
        natural = final or self.rules == "natural"
        for i in range(len(self.p.layers) - 1, self.p.first_param - 1, -1):
            layer = self.p.layers[i]
            if i in self.A:
                dt = g.dtype.type
                theta = dt(layer.threshold_value()[0])
                if final:
                    z = self.Uhat[i] / (dt(self.c) * theta)
                    g = g * (((z >= 0) & (z <= 1)).astype(g.dtype) / theta)
                else:
                    g = g * layer.surrogate.derivative(self.Uhat[i] - self.thr[i])
                if layer.input_gain != 1.0:
                    g = g * dt(layer.input_gain)
            elif i in self.p.trace_lam:
                a_in = self.inputs[i]
                if i == self.first_weight and not natural:
                    a_in = self.x_raw
                g = layer.weight_backward(g[None], a_in[None],
                                          need_input_grad=i > self.p.first_param,
                                          bias_scale=self.c if natural else 1.0)
                g = None if g is None else g[0]
            else:
                g = layer.step_backward(g)


# ------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------
def _step_loss(o, labels, c, T):
    loss, grad = losses.ce_mse(o, labels, c)
    return loss / T, grad / grad.dtype.type(T)


def _run(net, x, labels, method, c, saf_rules, update=None, clip_norm=None):
    """The pass behind :func:`gradients` and :func:`train_batch`; returns ``(loss, score)``
    with ``score [B, C]`` the decoded output (``sum_t o_t``; SAF-F: ``o``) for accuracy.
    ``update``: called after every step's backward (OTTT_O, SAF-E training), else None."""
    p = plan(net, method)
    if saf_rules not in SAF_RULES:
        raise ValueError(f"saf_rules: must be one of {list(SAF_RULES)}, got {saf_rules!r}")
    c = _check_c(c)
    x, labels = _check_x(x, labels, method.upper())
    T, B = x.shape[:2]
    params = list(net.parameters())
    for q in params:
        q.zero_grad()
    total, score = 0.0, None
    if method.startswith("ottt"):
        run = _OTTT(net, p)
        run.reset(B)
        for t in range(T):
            o = run.forward_step(x[t])
            loss, g = _step_loss(o, labels, c, T)
            if update is not None:
                for q in params:
                    q.zero_grad()
            run.backward_step(g)
            total += loss
            score = o.copy() if score is None else score + o
            if update is not None:
                update(params, clip_norm)
        return total, score
    run = _SAF(net, p, saf_rules)
    run.reset(B)
    if method == "saf_f":
        for t in range(T - 1):
            run.forward_step(x[t], readout=False)
        o = run.forward_step(x[T - 1]) / x.dtype.type(run.c)
        loss, g = losses.ce_mse(o, labels, c)
        run.backward_step(g / g.dtype.type(run.c), final=True)
        return loss, o
    Ohat_prev = None
    for t in range(T):
        Ohat = run.forward_step(x[t])
        o = Ohat if Ohat_prev is None else Ohat - x.dtype.type(run.lam) * Ohat_prev
        Ohat_prev = Ohat
        loss, g = _step_loss(o, labels, c, T)
        if update is not None:
            for q in params:
                q.zero_grad()
        run.backward_step(g, final=False)
        total += loss
        score = o.copy() if score is None else score + o
        if update is not None:
            update(params, clip_norm)
    return total, score


def gradients(net: Sequential, x, labels, method: str = "ottt_a", c: float = 0.0,
              saf_rules: str = "natural") -> float:
    """Fill every parameter's ``.grad`` (overwritten) with an online method's gradient at
    fixed weights and return the loss (docs/methods.md section 15).

    Args:
        net: a Sequential of Linear/Conv2d (or WSLinear/WSConv2d), LIF/IF with
            ``reset="subtract"``, Flatten, Scale, Dropout, AvgPool2d (and MaxPool2d for OTTT),
            ending with a Linear readout.
        x: time-major input ``[T, B, ...features]`` (a static image repeated, or any
            time-varying input), the network's dtype.  labels: ``[B]`` ints.
        method: "ottt_a" (OTTT's gradients summed over the steps), "saf_e" (SAF-E's per-step
            gradients summed, at fixed weights) or "saf_f" (the gradient of the one loss on
            the accumulated output at the last step).
        c: weight of the MSE term in ``L_t = ((1 - c) CE(o_t, y) + c MSE(o_t, onehot(y))) / T``
            (SAF-F: ``(1 - c) CE(o, y) + c MSE(o, onehot(y))`` with ``o = Ohat_{T-1}/c_{T-1}``).
        saf_rules: SAF-E's layer-1 and bias gradients: "natural" (the factor ``c_t``, the
            accumulated input) or "ottt" (OTTT's: the input ``x_t``, no factor).
    Returns:
        the loss: ``sum_t L_t`` (mean over the batch), or SAF-F's single loss.
    Raises:
        ValueError: an unknown method or rule, a network the method cannot train (the
            message says which layer and what to use instead), bad ``x``/``labels``/``c``.
    """
    check_method(method, GRADIENT_METHODS, "gradients")
    return _run(net, x, labels, method, c, saf_rules)[0]


def _optimizer_update(optimizer):
    def update(params, clip_norm):
        if clip_norm is not None:
            norm = clip_grad_norm(params, clip_norm)
            if not math.isfinite(norm):
                raise FloatingPointError(f"gradient norm became {norm}")
        optimizer.step()
    return update


def train_batch(net: Sequential, x, labels, optimizer, method: str = "ottt_o", c: float = 0.0,
                saf_rules: str = "natural", clip_norm: float | None = None) -> float:
    """Train on one batch with an update after every time step; returns ``sum_t L_t``.

    For each step t: forward one step, zero the gradients, backward ``L_t`` through that step
    (:func:`gradients` describes the rules), then ``optimizer.step()`` (after clipping the
    gradient norm to ``clip_norm`` when given).  ``method``: "ottt_o" or "saf_e"; for the
    one-update-per-batch methods use :func:`gradients` and ``optimizer.step()``, or
    ``fit(method=...)``.  The loss of step t is computed with the weights of that step.
    """
    check_method(method, TRAIN_METHODS, "train_batch")
    return _run(net, x, labels, method, c, saf_rules, update=_optimizer_update(optimizer),
                clip_norm=clip_norm)[0]
