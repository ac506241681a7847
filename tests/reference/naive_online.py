"""Float64 references for the online methods (OTTT, SAF), independent of training/online.py.

- :func:`detached_bptt_grads`: the gradient of one step's loss ``L_t`` by backpropagation
  through time in the *detached* network that defines OTTT's rule (docs/methods.md section 15):
  every reset detached, the membranes' leak chains kept, and at every step ``tau < t`` each
  weight layer's current detached except its weight term (``W stopgrad(a_tau) +
  stopgrad(b)``; the first weight layer, fed the input, entirely); the readout is
  ``o_t = R_t - lam stopgrad(R_{t-1})`` with ``R_tau = lam R_{tau-1} + W_o a_tau + b_o``.
  Written as a reverse loop over ``tau = t .. 0`` that carries ``dL/dv`` through the leaks and
  sums ``dL/dI_tau (outer) a_tau`` over the *raw* inputs: no traces.
- :func:`spike_rep_grads`: the gradient of SAF-F's loss through the closed-form spike
  representation ``a^{l+1} = clamp(gain (W a^l + b) / theta, 0, 1)``, by hand, at given
  activations (the simulated weighted rates) or at the closed form's own.

Networks are described by :func:`spec_of` as plain dicts of float64 arrays.
"""
from __future__ import annotations

import numpy as np

import training
from tests.reference import naive_layers as naive


# -- network description ----------------------------------------------------------------------
def spec_of(net) -> list[dict]:
    """Plain float64 description of a training.Sequential (effective weights, i.e. W_hat)."""
    spec = []
    for layer in net.layers:
        if isinstance(layer, training.Conv2d):
            spec.append(dict(kind="conv", W=layer.effective_weight().astype(np.float64),
                             b=None if layer.bias is None else layer.bias.data.astype(np.float64),
                             stride=layer.stride, padding=layer.padding))
        elif isinstance(layer, training.Linear):
            spec.append(dict(kind="linear", W=layer.effective_weight().astype(np.float64),
                             b=None if layer.bias is None else layer.bias.data.astype(np.float64)))
        elif isinstance(layer, training.LIF):
            spec.append(dict(kind="lif", beta=float(layer.beta_value()[0]),
                             theta=float(layer.threshold_value()[0]),
                             gain=float(layer.input_gain), sur=layer.surrogate))
        elif isinstance(layer, training.Flatten):
            spec.append(dict(kind="flatten"))
        elif isinstance(layer, training.Scale):
            spec.append(dict(kind="scale", c=layer.c))
        elif isinstance(layer, training.AvgPool2d):
            assert layer.kernel_size == layer.stride
            spec.append(dict(kind="avgpool", k=layer.kernel_size))
        elif isinstance(layer, training.MaxPool2d):
            spec.append(dict(kind="maxpool", k=layer.kernel_size, stride=layer.stride))
        elif isinstance(layer, training.Dropout):
            # the mask a training Dropout uses for the whole sequence (set fixed_mask first)
            mask = None if not layer.training or layer.p == 0 else layer.mask.astype(np.float64)
            spec.append(dict(kind="dropout", mask=mask))
        else:
            raise NotImplementedError(type(layer).__name__)
    return spec


def _weight(L):
    return L["kind"] in ("linear", "conv")


def _affine(L, a):
    if L["kind"] == "linear":
        y = a @ L["W"].T
    else:
        y = naive.conv2d(a, L["W"], None, L["stride"], L["padding"])
    if L["b"] is not None:
        y = y + (L["b"] if L["kind"] == "linear" else L["b"][:, None, None])
    return y


def _affine_backward(L, a, g):
    """``(dL/da, dL/dW, dL/db)`` of ``_affine``."""
    if L["kind"] == "linear":
        return g @ L["W"], g.T @ a, g.sum(axis=0)
    return naive.conv2d_backward(a, L["W"], g, L["stride"], L["padding"])


def _stateless(L, a):
    if L["kind"] == "flatten":
        return a.reshape(len(a), -1)
    if L["kind"] == "scale":
        return L["c"] * a
    if L["kind"] == "dropout":
        return a if L["mask"] is None else a * L["mask"]
    if L["kind"] == "maxpool":
        return naive.max_pool2d(a, L["k"], L["stride"])[0]
    return naive.avg_pool2d(a, L["k"], L["k"])


def _stateless_backward(L, a_in, g):
    if L["kind"] == "flatten":
        return g.reshape(a_in.shape)
    if L["kind"] == "scale":
        return L["c"] * g
    if L["kind"] == "dropout":
        return g if L["mask"] is None else g * L["mask"]
    if L["kind"] == "maxpool":
        arg = naive.max_pool2d(a_in, L["k"], L["stride"])[1]
        return naive.max_pool2d_backward(a_in.shape, arg, g)
    kh, kw = L["k"]
    dx = np.zeros_like(a_in)
    Ho, Wo = g.shape[2:]
    dx[:, :, :Ho * kh, :Wo * kw] = np.repeat(np.repeat(g, kh, axis=2), kw, axis=3) / (kh * kw)
    return dx


# -- loss ------------------------------------------------------------------------------------
def loss_and_grad(o, labels, c):
    """``(1 - c) mean_b CE(o_b, y_b) + c mean_{b,k} (o - onehot)^2`` and its gradient."""
    B, C = o.shape
    z = o - o.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    onehot = np.zeros_like(o)
    onehot[np.arange(B), labels] = 1.0
    ce = -np.mean(np.log(p[np.arange(B), labels]))
    mse = np.mean((o - onehot) ** 2)
    grad = (1 - c) * (p - onehot) / B + c * 2 * (o - onehot) / (B * C)
    return (1 - c) * ce + c * mse, grad


# -- plain forward of the LIF network (subtract reset) ---------------------------------------
def forward(spec, x):
    """Run ``x [T, B, ...]``; returns ``ins[l][t]`` (input of layer l at step t), ``us[l][t]``
    (membrane before reset of a LIF layer) and ``outs[l][t]``."""
    T = x.shape[0]
    n = len(spec)
    ins = [[None] * T for _ in range(n)]
    outs = [[None] * T for _ in range(n)]
    us = [[None] * T for _ in range(n)]
    v = [0.0] * n
    for t in range(T):
        a = np.asarray(x[t], dtype=np.float64)
        for l, L in enumerate(spec):
            ins[l][t] = a
            if _weight(L):
                a = _affine(L, a)
            elif L["kind"] == "lif":
                u = L["beta"] * v[l] + L["gain"] * a
                s = (u >= L["theta"]).astype(np.float64)
                v[l] = u - L["theta"] * s
                us[l][t] = u
                a = s
            else:
                a = _stateless(L, a)
            outs[l][t] = a
    return ins, us, outs


def _lifs(spec):
    return [l for l, L in enumerate(spec) if L["kind"] == "lif"]


def detached_bptt_grads(spec, x, labels, t, T=None, c=0.0):
    """``dL_t/dW``, ``dL_t/db`` per weight layer (``{l: (dW, db)}``) and ``L_t``, with
    ``L_t = loss(o_t) / T`` (module docstring: the detached network)."""
    T = x.shape[0] if T is None else T
    ins, us, outs = forward(spec, x)
    lifs = _lifs(spec)
    readout = max(l for l, L in enumerate(spec) if _weight(L))
    lam_out = spec[lifs[-1]]["beta"]
    loss, G = loss_and_grad(outs[readout][t], labels, c)
    loss, G = loss / T, G / T
    grads = {l: [np.zeros_like(L["W"]), None if L["b"] is None else np.zeros_like(L["b"])]
             for l, L in enumerate(spec) if _weight(L)}
    first_lif = lifs[0]
    gv = {l: None for l in lifs}          # dL/dv^l_tau carried to the step before
    gR = None                              # dL/dR_tau of the readout
    for tau in range(t, -1, -1):
        g = None      # gradient flowing down at this tau (None where the graph is cut)
        for l in range(len(spec) - 1, -1, -1):
            L = spec[l]
            if l == readout:
                gR = G if tau == t else lam_out * gR
                dx, dW, db = _affine_backward(L, ins[l][tau], gR)
                grads[l][0] += dW
                if tau == t and L["b"] is not None:
                    grads[l][1] += db
                g = dx if tau == t else None          # stopgrad(a_tau) before t
            elif L["kind"] == "lif":
                gu = np.zeros_like(us[l][tau]) if gv[l] is None else gv[l]
                if g is not None:
                    gu = gu + g * L["sur"].derivative(us[l][tau] - L["theta"])
                gv[l] = L["beta"] * gu        # v_{tau-1} -> u_tau; v = u - theta stopgrad(s)
                g = L["gain"] * gu            # dL/dI_tau, alive at every tau (weight term)
            elif _weight(L):
                if l < first_lif and tau != t:
                    g = None                  # layer 1: its whole current detached before t
                    continue
                dx, dW, db = _affine_backward(L, ins[l][tau], g)
                grads[l][0] += dW
                if tau == t and L["b"] is not None:
                    grads[l][1] += db
                g = dx if tau == t else None
            elif g is not None:
                g = _stateless_backward(L, ins[l][tau], g)
    return {l: tuple(v) for l, v in grads.items()}, loss


# -- SAF-F: the spike representation ---------------------------------------------------------
def weighted_rate(seq, lam):
    """``sum_t lam^{T-1-t} seq_t / sum_t lam^{T-1-t}`` of ``seq [T, ...]``."""
    T = len(seq)
    w = lam ** np.arange(T - 1, -1, -1, dtype=np.float64)
    return np.tensordot(w, np.asarray(seq, dtype=np.float64), axes=(0, 0)) / w.sum()


def spike_rep_forward(spec, a0, acts=None):
    """The closed form from ``a0 [B, ...]``: returns ``ins``, ``pre`` per layer and ``o``.

    ``acts``: ``{lif index: a^l}`` used in place of ``clamp(z)`` (the simulated rates)."""
    ins, pre = {}, {}
    a = a0
    for l, L in enumerate(spec):
        ins[l] = a
        if _weight(L):
            a = _affine(L, a)
        elif L["kind"] == "lif":
            pre[l] = L["gain"] * a / L["theta"]                    # z
            a = np.clip(pre[l], 0, 1) if acts is None else acts[l]
        else:
            a = _stateless(L, a)
    return ins, pre, a


def spike_rep_grads(spec, a0, labels, c=0.0, acts=None):
    """``({l: (dW, db)}, loss)`` of ``loss(o)`` through the closed form, by hand:
    ``da/dI = 1[0 <= z <= 1] gain / theta``."""
    ins, pre, o = spike_rep_forward(spec, a0, acts)
    loss, g = loss_and_grad(o, labels, c)
    grads = {}
    for l in range(len(spec) - 1, -1, -1):
        L = spec[l]
        if _weight(L):
            dx, dW, db = _affine_backward(L, ins[l], g)
            grads[l] = (dW, None if L["b"] is None else db)
            g = dx
        elif L["kind"] == "lif":
            z = pre[l]
            g = g * ((z >= 0) & (z <= 1)) * L["gain"] / L["theta"]
        else:
            g = _stateless_backward(L, ins[l], g)
    return grads, loss


def spike_rep_loss(spec, a0, labels, c=0.0):
    """The closed form's loss (its own activations ``clamp(z)``), for finite differences."""
    return loss_and_grad(spike_rep_forward(spec, a0)[2], labels, c)[0]
