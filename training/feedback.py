"""Feedback spiking networks for IDE training (docs/methods.md section 17).

:class:`FeedbackMLP` is the F-MLP of Xiao et al. (NeurIPS 2021): one spiking layer of
``hidden`` IF or LIF neurons (subtract reset) driven by a Linear input layer and, with a delay
of one step, by its own spikes through the feedback weight; a Linear readout reads the
(weighted) average firing rate.  Per step (``s_0 = 0``, ``v_0 = 0``)::

    u_t = beta v_{t-1} + W s_{t-1} + F x_t + b ;  s_t = 1[u_t >= theta] ;  v_t = u_t - theta s_t

with ``beta = 1`` (IF) or ``lam`` (LIF).  The rate is ``a = sum_t w_t s_t`` with
``w_t = 1/T`` (IF) or ``lam^(T-1-t) / sum_k lam^k`` (LIF), and the equilibrium map is
``f(a) = clamp((W a + F xbar + b) / theta, 0, 1)`` with ``xbar = sum_t w_t x_t``: the IF rate
tends to its fixed point as O(1/T), the LIF rate to within about ``1 - lam``.

The feedback weight is re-parameterised by its spectral norm: the parameter
``feedback.weight`` is ``W_raw`` and ``W = W_raw / max(1, sigma)``, ``sigma`` estimated by
power iteration with persistent vectors, so ``||W||_2 <= 1`` and the map is a contraction
with factor at most ``1 / theta`` in the middle region.
"""
from __future__ import annotations

import math

import numpy as np

from snncore.neuron import NeuronParams, canonical_step

from .config import get_default_dtype
from .conv import Conv2d
from .layers import Linear, _init_rng, kaiming_uniform
from .module import Module, Parameter, is_static
from .norm import BatchNorm1d, BatchNorm2d, fold_batchnorm

NEURONS = ("IF", "LIF")


def _check_positive_int(who: str, name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{who}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


class SpectralFeedback(Module):
    """Delay-1 feedback weight ``W = W_raw / max(1, sigma(W_raw))`` (``[F, F]``, target by
    source).  ``sigma = u^T W_raw v`` with unit vectors ``u, v`` kept as buffers and refined
    by :meth:`power_iteration` (one step per training batch, as the authors' code)."""

    def __init__(self, features: int, rng):
        super().__init__()
        dt = get_default_dtype()
        self.weight = Parameter(kaiming_uniform(rng, (features, features), features, dt))
        u, v = rng.normal(size=features), rng.normal(size=features)
        self.u = (u / np.linalg.norm(u)).astype(np.float64)
        self.v = (v / np.linalg.norm(v)).astype(np.float64)
        self._buffers = ("u", "v")
        self.power_iteration(30)

    def __repr__(self) -> str:
        return f"SpectralFeedback({self.weight.shape[0]})"

    @staticmethod
    def _apply(W: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The operator on a source vector: ``W v``."""
        return W @ v

    @staticmethod
    def _adjoint(W: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Its adjoint on a target vector: ``W^T u``."""
        return W.T @ u

    def power_iteration(self, n: int = 1) -> None:
        """``n`` power-iteration steps on ``W_raw`` updating ``u`` and ``v`` in place."""
        W = self.weight.data.astype(np.float64)
        for _ in range(n):
            v = self._adjoint(W, self.u)
            self.v[...] = v / max(np.linalg.norm(v), 1e-300)
            u = self._apply(W, self.v)
            self.u[...] = u / max(np.linalg.norm(u), 1e-300)

    def sigma(self) -> float:
        """The spectral-norm estimate ``u^T W_raw v`` (exact once u, v have converged)."""
        return float(np.sum(self.u * self._apply(self.weight.data.astype(np.float64), self.v)))

    def sigma_gradient(self) -> np.ndarray:
        """``d sigma / d W_raw = u v^T`` (u, v held fixed)."""
        return np.outer(self.u, self.v)

    def matrix(self) -> np.ndarray:
        """``W = W_raw / max(1, sigma)`` in float64."""
        return self.weight.data.astype(np.float64) / max(1.0, self.sigma())

    def backward_matrix(self, G: np.ndarray) -> None:
        """Add ``dL/dW_raw`` to ``weight.grad`` given ``G = dL/dW`` (u, v held fixed)::

            sigma <= 1:  dW_raw = G
            sigma  > 1:  dW_raw = G / sigma - <G, W_raw> / sigma^2  u v^T
        """
        s = self.sigma()
        if s <= 1.0:
            dW = G
        else:
            W = self.weight.data.astype(np.float64)
            dW = G / s - (np.sum(G * W) / s ** 2) * self.sigma_gradient()
        self.weight.grad += dW.astype(self.weight.grad.dtype)


class _FeedbackNet(Module):
    """What :class:`FeedbackMLP` and :class:`FeedbackConv` share: neuron settings, the rate
    weights, the forward pass around ``simulate`` and the fixed-point solve.  Subclasses
    define ``check_x``, ``simulate`` (spikes of the last layer ``[T, B, ...]``),
    ``equilibrium_map(a, xbar)`` and ``linearise(a, xbar)`` on flat rates ``a [B, n_state]``,
    and hold ``feedback`` and ``readout``."""

    def _init_neuron(self, who, neuron, theta, lam):
        if neuron not in NEURONS:
            raise ValueError(f"{who}: neuron must be 'IF' or 'LIF', got {neuron!r}")
        if not (isinstance(theta, (int, float, np.floating, np.integer)) and math.isfinite(theta)
                and theta > 0):
            raise ValueError(f"{who}: theta must be a finite number > 0, got {theta!r}")
        if not (isinstance(lam, (int, float, np.floating, np.integer)) and 0 < lam <= 1):
            raise ValueError(f"{who}: lam must lie in (0, 1], got {lam!r}")
        self.neuron, self.theta, self.lam = neuron, float(theta), float(lam)
        self.last_rate = self.last_residual = self.last_input_mean = None

    @property
    def beta(self) -> float:
        return 1.0 if self.neuron == "IF" else self.lam

    def rate_weights(self, T: int) -> np.ndarray:
        """``w[T]`` of the rate ``a = sum_t w_t s_t`` (float64, sums to 1)."""
        if self.neuron == "IF" or self.lam == 1.0:
            return np.full(T, 1.0 / T)
        w = self.lam ** np.arange(T - 1, -1, -1, dtype=np.float64)
        return w / w.sum()

    def decoder_weights(self, T: int):
        """Decoder weights of a per-step readout of ``T`` steps: None (uniform) for IF, else
        ``T w_t``, so that ``losses.decode(y, weights) = W_o a + b_o``."""
        if self.neuron == "IF" or self.lam == 1.0:
            return None
        return T * self.rate_weights(T)

    @property
    def time_weights(self):
        """:meth:`decoder_weights` for the T of the last forward pass (None before one);
        ``training.evaluate`` uses ``decoder_weights`` of its own T."""
        T = getattr(self, "_T", None)
        return None if T is None else self.decoder_weights(T)

    def forward(self, x) -> np.ndarray:
        """Per-step readout ``[T, B, out]`` of the last layer's spikes; sets ``last_rate``
        (flat ``[B, n_state]``), ``last_input_mean`` (``xbar``) and ``last_residual``.
        Streamed: one step of state is kept, never the spikes or the drive of all T steps
        (the working memory does not grow with T, apart from the readout it returns)."""
        x = self.check_x(x)
        T = x.shape[0]
        self._T = T
        w = self.rate_weights(T)
        a, y = self._run(x, w)
        self.last_input_mean = self._mean_input(x, w)
        self.last_rate = a
        f_a = self.equilibrium_map(a, self.last_input_mean)
        self.last_residual = float(np.max(np.abs(a - f_a)))
        return y

    @staticmethod
    def _mean_input(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``xbar = sum_t w_t x_t`` in float64, step by step (no float64 copy of ``x``)."""
        if is_static(x):
            return x[0].astype(np.float64) * w.sum()
        xbar = np.zeros(x.shape[1:])
        for t in range(x.shape[0]):
            xbar += w[t] * x[t]
        return xbar

    # -- BatchNorm of the first layer's input drive (FeedbackMLP and FeedbackConv) ----------
    @property
    def batch_norm(self) -> bool:
        return hasattr(self, "input_norm")

    def _stat_axes(self, dbar: np.ndarray) -> tuple:
        """Axes of the drive ``[B, C, ...]`` that BatchNorm's statistics run over."""
        return (0,) + tuple(range(2, dbar.ndim))

    def drive_affine(self, dbar: np.ndarray | None = None, update: bool = False):
        """``(scale, shift)`` float64, shaped to broadcast over the drive ``[B, C, ...]``, of
        the normalised drive ``c = scale * d + shift`` (``(1, 0)`` without BatchNorm): from
        the batch statistics of the mean drive ``dbar`` (per channel, over the batch and any
        spatial axes) in training mode (``update``: also move the running statistics, as one
        forward pass does), from the running ones in eval mode."""
        if not self.batch_norm:
            return 1.0, 0.0
        bn = self.input_norm
        gamma, beta_bn = bn.weight.data.astype(np.float64), bn.bias.data.astype(np.float64)
        if self.training:
            axes = self._stat_axes(dbar)
            n = int(np.prod([dbar.shape[k] for k in axes]))
            if n < 2:
                raise ValueError(f"{self!r}: BatchNorm training needs a batch of at least 2 "
                                 f"samples, got {dbar.shape[0]}")
            mean, var = dbar.mean(axis=axes), dbar.var(axis=axes)
            if update:
                m, dt = bn.momentum, bn.running_mean.dtype.type
                bn.running_mean *= dt(1.0 - m)
                bn.running_mean += (m * mean).astype(bn.running_mean.dtype)
                bn.running_var *= dt(1.0 - m)
                bn.running_var += (m * var * n / (n - 1)).astype(bn.running_var.dtype)
                bn.num_batches_tracked += 1
        else:
            mean = bn.running_mean.astype(np.float64)
            var = bn.running_var.astype(np.float64)
        scale = gamma / np.sqrt(var + bn.eps)
        view = (1, -1) + (1,) * (0 if dbar is None else dbar.ndim - 2)
        return scale.reshape(view), (beta_bn - mean * scale).reshape(view)

    def folded_input(self):
        """``(W', b')`` of the first layer (``input`` or ``conv1``) with eval-mode BatchNorm
        folded in (the weights the exported model and the eval-mode forward use), in the
        parameters' dtype."""
        layer = self._input_layer
        if not self.batch_norm:
            return layer.weight.data, layer.bias.data
        dt = layer.weight.data.dtype
        W, b = fold_batchnorm(layer.weight.data, layer.bias.data, self.input_norm)
        return W.astype(dt), b.astype(dt)

    def _drive_backward(self, gc: np.ndarray, dbar: np.ndarray) -> np.ndarray:
        """``dL/d dbar`` from ``gc = dL/dc`` through the BatchNorm of the drive (adds the
        gradients of ``input_norm.weight`` and ``.bias``); identity without BatchNorm.
        Training mode (batch statistics over the axes ``A`` of :meth:`_stat_axes`,
        ``xhat = (dbar - mean) / std``)::

            dgamma = sum_A gc xhat ;  dbeta = sum_A gc
            d dbar = gamma / std * (gc - mean_A(gc) - xhat mean_A(gc xhat))
        """
        if not self.batch_norm:
            return gc
        bn = self.input_norm
        axes = self._stat_axes(dbar)
        view = (1, -1) + (1,) * (dbar.ndim - 2)
        gamma = bn.weight.data.astype(np.float64).reshape(view)
        if self.training:
            mean = dbar.mean(axis=axes, keepdims=True)
            std = np.sqrt(dbar.var(axis=axes, keepdims=True) + bn.eps)
        else:
            mean = bn.running_mean.astype(np.float64).reshape(view)
            std = np.sqrt(bn.running_var.astype(np.float64).reshape(view) + bn.eps)
        xhat = (dbar - mean) / std
        bn.weight.grad += (gc * xhat).sum(axis=axes).astype(bn.weight.grad.dtype)
        bn.bias.grad += gc.sum(axis=axes).astype(bn.bias.grad.dtype)
        if not self.training:
            return gc * gamma / std
        return gamma / std * (gc - gc.mean(axis=axes, keepdims=True)
                              - xhat * (gc * xhat).mean(axis=axes, keepdims=True))

    def equilibrium(self, x, tol: float = 1e-10, max_iter: int = 500):
        """The fixed point ``a* = f(a*)`` for the (weighted) mean input of ``x [T, B, ...]``,
        by fixed-point iteration from 0 (a contraction); returns
        ``(a* [B, n] float64 (flat), iterations, residual max |a - f(a)|)``.  Raises
        ``IDEConvergenceError`` when the residual is not below ``tol`` after ``max_iter``."""
        from .ide import IDEConvergenceError
        x = self.check_x(x)
        xbar = np.tensordot(self.rate_weights(x.shape[0]), x.astype(np.float64), axes=(0, 0))
        a = np.zeros((x.shape[1], self.n_state))
        for k in range(1, int(max_iter) + 1):
            a_next = self.equilibrium_map(a, xbar)
            res = float(np.max(np.abs(a_next - a)))
            a = a_next
            if res < tol:
                return a, k, float(np.max(np.abs(a - self.equilibrium_map(a, xbar))))
        raise IDEConvergenceError(f"{self!r}: the forward fixed point did not converge: "
                                  f"residual {res:.3g} >= tol {tol:g} after {max_iter} iterations")


class FeedbackMLP(_FeedbackNet):
    """The F-MLP of IDE (Xiao et al. 2021): ``in_features -> hidden`` spiking layer with
    delay-1 feedback ``hidden -> hidden`` -> readout ``hidden -> out_features`` on the rate.

    Args:
        in_features, hidden, out_features: layer sizes (integers >= 1).
        neuron: "IF" (``beta = 1``) or "LIF" (``beta = lam``); subtract reset either way.
        theta: threshold > 0 (the paper's 2).  lam: LIF leak in (0, 1] (the paper's 0.95).
        rng: seed or ``np.random.Generator`` for the initialisation (PyTorch's Linear rule
            for every weight; the power-iteration vectors are drawn from it too) and, spawned
            from it, the dropout masks (``fit`` seeds them from its ``seed`` when None).
        batch_norm: normalise the input drive ``d = F x + b`` by BatchNorm over the batch
            (the authors' F-MLP does), ``c = gamma (d - mu) / sqrt(var + eps) + beta_bn``,
            the statistics taken from the rate-weighted mean drive ``F xbar + b`` in training
            and the running ones in eval mode (then folded into ``F`` and ``b``).
        dropout: drop probability ``p`` in [0, 1) of the authors' variational dropout: one
            mask per sample, fixed over the T steps, on the input drive ``c`` and one on the
            feedback drive ``W s`` (scaled by ``1/(1-p)``; identity in eval mode).
    Parameters: ``input.weight [hidden, in]``, ``input.bias [hidden]``,
    ``feedback.weight [hidden, hidden]`` (``W_raw``), ``readout.weight [out, hidden]``,
    ``readout.bias [out]``; with ``batch_norm`` also ``input_norm.weight``,
    ``input_norm.bias`` ``[hidden]``.  Buffers: ``feedback.u``, ``feedback.v`` (and the
    running statistics of ``input_norm``).

    With dropout and BatchNorm the equilibrium map of training mode is
    ``f(a) = clamp((m_s * (W a) + m_x * c(xbar)) / theta, 0, 1)`` with the masks ``m_x``,
    ``m_s`` of the current batch (:attr:`masks`, drawn by :meth:`draw_masks`; set
    ``fixed_mask = True`` to keep them, e.g. for finite-difference checks).

    :meth:`forward` on ``x [T, B, in_features]`` returns the per-step readout
    ``y_t = W_o s_t + b_o`` (``[T, B, out]``), whose decoded mean with :attr:`time_weights`
    is ``W_o a + b_o``; it sets ``last_rate`` (``a [B, hidden]``) and ``last_residual``
    (``max |a - f(a)|``, how far the simulated rate is from a fixed point).
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, neuron: str = "IF",
                 theta: float = 2.0, lam: float = 0.95, rng=None, batch_norm: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        in_features = _check_positive_int("FeedbackMLP", "in_features", in_features)
        hidden = _check_positive_int("FeedbackMLP", "hidden", hidden)
        out_features = _check_positive_int("FeedbackMLP", "out_features", out_features)
        self._init_neuron("FeedbackMLP", neuron, theta, lam)
        if not isinstance(batch_norm, (bool, np.bool_)):
            raise ValueError(f"FeedbackMLP: batch_norm must be True or False, got {batch_norm!r}")
        if not (isinstance(dropout, (int, float, np.floating, np.integer))
                and not isinstance(dropout, (bool, np.bool_)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"FeedbackMLP: dropout must lie in [0, 1), got {dropout!r}")
        self.rng_given = rng is not None
        rng = _init_rng(rng)
        self.in_features, self.hidden, self.out_features = in_features, hidden, out_features
        self.n_state = hidden
        self.dropout = float(dropout)
        self.input = Linear(in_features, hidden, rng=rng)
        self.feedback = SpectralFeedback(hidden, rng)
        self.readout = Linear(hidden, out_features, rng=rng)
        if batch_norm:
            self.input_norm = BatchNorm1d(hidden)
        self.rng = np.random.default_rng(rng.integers(2 ** 63))   # dropout masks
        self.masks = None
        self.fixed_mask = False

    @property
    def _input_layer(self):
        return self.input

    def __repr__(self) -> str:
        extra = (", batch_norm=True" if self.batch_norm else "") + \
            (f", dropout={self.dropout}" if self.dropout else "")
        return (f"FeedbackMLP({self.in_features}, {self.hidden}, {self.out_features}, "
                f"neuron={self.neuron!r}, theta={self.theta}, lam={self.lam}{extra})")

    # -- dropout masks and the normalised input drive ---------------------------------------
    def draw_masks(self, batch: int) -> None:
        """New dropout masks ``(m_x, m_s)`` ``[batch, hidden]`` (values 0 or ``1/(1-p)``)
        in training mode with ``dropout > 0`` (kept when ``fixed_mask`` is set and they fit);
        None otherwise."""
        if not (self.training and self.dropout > 0.0):
            self.masks = None
            return
        if self.fixed_mask and self.masks is not None and self.masks[0].shape[0] == batch:
            return
        keep = self.rng.random((2, batch, self.hidden)) >= self.dropout
        m = keep.astype(np.float64) / (1.0 - self.dropout)
        self.masks = (m[0], m[1])

    def _active_masks(self, batch: int):
        """The masks of this batch in training mode (drawn if missing), else None."""
        if not (self.training and self.dropout > 0.0):
            return None
        if self.masks is None or self.masks[0].shape[0] != batch:
            self.draw_masks(batch)
        return self.masks

    # -- forward: the spiking simulation ------------------------------------------------------
    def check_x(self, x) -> np.ndarray:
        """``x [T, B, in_features]`` as a float array; ValueError naming the shape otherwise."""
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.in_features or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"{self!r}: expected x [T, B, {self.in_features}] with T, B >= 1, "
                             f"got shape {x.shape}")
        if x.dtype.kind not in "fiub":
            raise ValueError(f"{self!r}: x dtype {x.dtype} is not numeric")
        if x.dtype.kind != "f":
            x = x.astype(get_default_dtype())
        return x

    def simulate(self, x: np.ndarray) -> np.ndarray:
        """Spikes ``s [T, B, hidden]`` of the feedback layer (the dense engine's forward)."""
        return self._run(self.check_x(x), None)

    def _run(self, x: np.ndarray, w):
        """The simulation: spikes ``[T, B, hidden]`` when ``w`` is None, else the rate
        ``a = sum_t w_t s_t [B, hidden]`` (float64) and the readout ``[T, B, out]``."""
        dt = self.input.weight.data.dtype
        T, B = x.shape[:2]
        W = self.feedback.matrix().astype(dt)
        x = x.astype(dt, copy=False)
        if self.batch_norm and not self.training:
            F, b = self.folded_input()              # the exported model's drive, same bits
        else:
            F, b = self.input.weight.data, self.input.bias.data       # F x_t + b
        scale = shift = None
        if self.batch_norm and self.training:     # statistics of the mean drive F xbar + b
            w_all = self.rate_weights(T)
            if is_static(x):
                dbar = (x[0] @ F.T + b).astype(np.float64) * w_all.sum()
            else:
                dbar = self._mean_input(x, w_all) @ F.T.astype(np.float64) + b.astype(np.float64)
            scale, shift = (v.astype(dt) for v in self.drive_affine(dbar, update=True))
        masks = self._active_masks(B)
        mask_x, mask_s = (None, None) if masks is None else (m.astype(dt) for m in masks)

        def drive(t):
            c = x[t] @ F.T + b
            if scale is not None:
                c = c * scale + shift
            return c if mask_x is None else c * mask_x

        static = is_static(x)
        current = drive(0) if static else None
        p = NeuronParams(beta=self.beta, theta=self.theta, reset="subtract")
        v = np.zeros((B, self.hidden), dtype=dt)
        s = np.zeros((B, self.hidden), dtype=dt)
        if w is None:
            out = np.empty((T, B, self.hidden), dtype=dt)
        else:
            a = np.zeros((B, self.hidden))
            Wo, bo = self.readout.weight.data, self.readout.bias.data
            y = np.empty((T, B, self.out_features), dtype=dt)
        for t in range(T):
            feedback = s @ W.T
            if mask_s is not None:
                feedback *= mask_s
            _, s, v = canonical_step(v, (current if static else drive(t)) + feedback, p)
            if w is None:
                out[t] = s
            else:
                a += w[t] * s
                y[t] = s @ Wo.T + bo
        return out if w is None else (a, y)

    # -- the equilibrium and its linearisation (the IDE backward) ---------------------------
    def _mean_drive(self, xbar: np.ndarray):
        """``(dbar, c, masks)``: the mean drive ``F xbar + b``, its normalised form ``c``
        (batch statistics of ``dbar`` in training mode) and the active masks, float64."""
        F = self.input.weight.data.astype(np.float64)
        b = self.input.bias.data.astype(np.float64)
        dbar = xbar @ F.T + b
        scale, shift = self.drive_affine(dbar)
        return dbar, dbar * scale + shift, self._active_masks(xbar.shape[0])

    def preactivation(self, a: np.ndarray, xbar: np.ndarray, drive=None,
                      W: np.ndarray | None = None) -> np.ndarray:
        """``z = (m_s * (W a) + m_x * c) / theta`` in float64 (``a [B, H]``, ``xbar [B, in]``;
        ``c = F xbar + b`` without BatchNorm, masks 1 without dropout); ``drive``: the
        ``_mean_drive(xbar)`` already computed, ``W``: the feedback matrix."""
        _, c, masks = self._mean_drive(xbar) if drive is None else drive
        fb = a @ (self.feedback.matrix() if W is None else W).T
        if masks is not None:
            fb, c = fb * masks[1], c * masks[0]
        return (fb + c) / self.theta

    def equilibrium_map(self, a: np.ndarray, xbar: np.ndarray) -> np.ndarray:
        """``f(a) = clamp(z, 0, 1)``."""
        return np.clip(self.preactivation(a, xbar), 0.0, 1.0)

    def linearise(self, a: np.ndarray, xbar: np.ndarray):
        """``(JT, backward)`` of ``f`` at ``a [B, H]`` (float64), ``m = 1[0 <= z <= 1]``::

            JT(g)       = W^T (m * g) / theta                  (J^T, row by row)
            backward(g):  delta = m * g / theta ;  dW = delta^T a ;  dF = delta^T xbar ;
                          db = sum_b delta   (added to the parameters' .grad; W through
                          the spectral normalisation)
        """
        W, theta = self.feedback.matrix(), self.theta
        drive = self._mean_drive(xbar)
        dbar, _, masks = drive
        z = self.preactivation(a, xbar, drive, W)
        m = ((z >= 0.0) & (z <= 1.0)).astype(np.float64)
        m_s = 1.0 if masks is None else masks[1]
        m_x = 1.0 if masks is None else masks[0]

        def JT(g):
            return (m * g * m_s) @ W / theta

        def backward(g):
            delta = m * g / theta
            gd = self._drive_backward(delta * m_x, dbar)        # dL/d(F xbar + b)
            self.input.weight.grad += (gd.T @ xbar).astype(self.input.weight.grad.dtype)
            self.input.bias.grad += gd.sum(axis=0).astype(self.input.bias.grad.dtype)
            self.feedback.backward_matrix((delta * m_s).T @ a)

        return JT, backward

# -- convolutional feedback network (the paper's F-conv) ----------------------------------------

def conv_same(x: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Stride-1 'same' cross-correlation ``x [B, Ci, H, W] * K [Co, Ci, k, k] -> [B, Co, H, W]``
    (odd ``k``, zero padding ``k // 2``), plain NumPy in the dtype of ``x``."""
    p = K.shape[2] // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(xp, K.shape[2:], axis=(2, 3))
    return np.einsum("bchwij,ocij->bohw", win, K, optimize=True)


def conv_same_input_grad(g: np.ndarray, K: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`conv_same` in ``x``: ``[B, Co, H, W] -> [B, Ci, H, W]``
    (correlation with the flipped, transposed kernel)."""
    return conv_same(g, np.ascontiguousarray(K.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]))


def conv_same_weight_grad(x: np.ndarray, g: np.ndarray, k: int) -> np.ndarray:
    """``dL/dK [Co, Ci, k, k]`` of :func:`conv_same` for input ``x`` and output gradient ``g``."""
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    return np.einsum("bohw,bchwij->ocij", g, win, optimize=True)


class SpectralConvFeedback(SpectralFeedback):
    """Delay-1 convolutional feedback ``K = K_raw / max(1, sigma)`` from ``c_source`` to
    ``c_target`` channels (``weight [c_target, c_source, k, k]``, stride 1, 'same' padding),
    ``sigma = <u, K_raw * v>`` the operator's spectral-norm estimate from unit maps
    ``u [c_target, H, W]``, ``v [c_source, H, W]`` (buffers)."""

    def __init__(self, c_source: int, c_target: int, k: int, size, rng):
        Module.__init__(self)
        dt = get_default_dtype()
        self.weight = Parameter(kaiming_uniform(rng, (c_target, c_source, k, k),
                                                c_source * k * k, dt))
        u, v = rng.normal(size=(c_target,) + size), rng.normal(size=(c_source,) + size)
        self.u, self.v = u / np.linalg.norm(u), v / np.linalg.norm(v)
        self._buffers = ("u", "v")
        self.power_iteration(30)

    def __repr__(self) -> str:
        return f"SpectralConvFeedback({tuple(self.weight.shape)})"

    @staticmethod
    def _apply(K: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The convolution on a source map ``v [c_source, H, W]``."""
        return conv_same(v[None], K)[0]

    @staticmethod
    def _adjoint(K: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Its adjoint on a target map ``u [c_target, H, W]``."""
        return conv_same_input_grad(u[None], K)[0]

    def sigma_gradient(self) -> np.ndarray:
        return conv_same_weight_grad(self.v[None], self.u[None], self.weight.shape[2])

    def kernel(self) -> np.ndarray:
        """``K = K_raw / max(1, sigma)`` in float64."""
        return self.matrix()

    def csr(self, dtype):
        """The feedback as a sparse matrix ``[c_target*H*W, c_source*H*W]`` (C order):
        ``(data, indices, indptr)`` of the kernel the network uses (in its dtype)."""
        K = self.kernel().astype(self.weight.data.dtype).astype(dtype)
        Ct, Cs, k, _ = K.shape
        H, W = self.u.shape[1:]
        p = k // 2
        rows, cols, vals = [], [], []
        ct, cs, y, x = np.meshgrid(np.arange(Ct), np.arange(Cs), np.arange(H), np.arange(W),
                                   indexing="ij")
        for i in range(k):
            for j in range(k):
                ys, xs = y + i - p, x + j - p
                ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W) & (K[ct, cs, i, j] != 0)
                rows.append(((ct * H + y) * W + x)[ok])
                cols.append(((cs * H + ys) * W + xs)[ok])
                vals.append(K[ct, cs, i, j][ok])
        rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        order = np.lexsort((cols, rows))
        indptr = np.zeros(Ct * H * W + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=Ct * H * W), out=indptr[1:])
        return vals[order], cols[order].astype(np.int64), indptr


class FeedbackConv(_FeedbackNet):
    """The F-conv of IDE (Xiao et al. 2021): spiking conv layers ``conv1 .. convN`` (stride 1,
    'same' padding) with a delay-1 convolutional feedback from the last layer to the first,
    and a Linear readout of the last layer's (weighted) average rate.  Per step::

        layer 1:  u_t = beta v_{t-1} + K_fb * s^N_{t-1} + K_1 * x_t + b_1
        layer l:  u_t = beta v_{t-1} + K_l * s^{l-1}_t + b_l            (l = 2..N)

    with subtract reset; the fixed point is posed on the last layer's rate,
    ``a^N = f_N(... f_1(a^N))``, ``f_1(a) = clamp((K_fb * a + K_1 * xbar + b_1) / theta, 0, 1)``,
    ``f_l(a) = clamp((K_l * a + b_l) / theta, 0, 1)``.

    Args:
        in_channels: input channels.  channels: sequence of output channels per conv layer.
        input_size: ``(H, W)`` of the input (kept by every layer).
        out_features: readout size.  kernel_size: odd kernel of the conv layers;
        feedback_kernel_size: odd kernel of the feedback (default ``kernel_size``).
        neuron, theta, lam, rng: as :class:`FeedbackMLP`.
        batch_norm: BatchNorm2d on the first layer's input drive ``K_1 * x + b_1`` (the
            authors' F-conv has it), as :class:`FeedbackMLP`'s: batch statistics of the mean
            drive per channel (over batch and pixels) in training, folded into ``conv1`` in
            eval mode and at export; parameters ``input_norm.weight``, ``input_norm.bias``.
    Parameters: ``conv1.weight``, ``conv1.bias``, ..., ``feedback.weight`` (raw kernel
    ``[C_1, C_N, k, k]``, normalised by the operator's spectral norm), ``readout.weight``,
    ``readout.bias``.  A plain-NumPy reference (einsum convolutions): meant for small images.
    """

    def __init__(self, in_channels: int, channels, input_size, out_features: int,
                 kernel_size: int = 3, feedback_kernel_size: int | None = None,
                 neuron: str = "IF", theta: float = 2.0, lam: float = 0.95, rng=None,
                 batch_norm: bool = False):
        super().__init__()
        who = "FeedbackConv"
        if not isinstance(batch_norm, (bool, np.bool_)):
            raise ValueError(f"{who}: batch_norm must be True or False, got {batch_norm!r}")
        in_channels = _check_positive_int(who, "in_channels", in_channels)
        out_features = _check_positive_int(who, "out_features", out_features)
        try:
            channels = tuple(channels)
            size = tuple(input_size)
        except TypeError:
            raise ValueError(f"{who}: channels and input_size must be sequences, got "
                             f"{channels!r}, {input_size!r}") from None
        if not channels:
            raise ValueError(f"{who}: channels must name at least one conv layer")
        channels = tuple(_check_positive_int(who, "channels", c) for c in channels)
        if len(size) != 2:
            raise ValueError(f"{who}: input_size must be (H, W), got {input_size!r}")
        size = tuple(_check_positive_int(who, "input_size", n) for n in size)
        if feedback_kernel_size is None:
            feedback_kernel_size = kernel_size
        for name, k in (("kernel_size", kernel_size),
                        ("feedback_kernel_size", feedback_kernel_size)):
            if _check_positive_int(who, name, k) % 2 == 0:
                raise ValueError(f"{who}: {name} must be odd ('same' padding), got {k}")
        self._init_neuron(who, neuron, theta, lam)
        rng = _init_rng(rng)
        self.in_channels, self.channels, self.input_size = in_channels, channels, size
        self.out_features, self.kernel_size = out_features, int(kernel_size)
        self.n_state = channels[-1] * size[0] * size[1]
        c_in = in_channels
        for l, c in enumerate(channels, 1):
            setattr(self, f"conv{l}", Conv2d(c_in, c, kernel_size, padding=kernel_size // 2,
                                             rng=rng))
            c_in = c
        self.feedback = SpectralConvFeedback(channels[-1], channels[0],
                                             int(feedback_kernel_size), size, rng)
        self.readout = Linear(self.n_state, out_features, rng=rng)
        if batch_norm:
            self.input_norm = BatchNorm2d(channels[0])

    @property
    def _input_layer(self):
        return self.conv1

    def __repr__(self) -> str:
        return (f"FeedbackConv({self.in_channels}, {list(self.channels)}, {self.input_size}, "
                f"{self.out_features}, neuron={self.neuron!r}, theta={self.theta}, "
                f"lam={self.lam}{', batch_norm=True' if self.batch_norm else ''})")

    @property
    def convs(self) -> list:
        return [getattr(self, f"conv{l}") for l in range(1, len(self.channels) + 1)]

    def check_x(self, x) -> np.ndarray:
        """``x [T, B, in_channels, H, W]`` as a float array; ValueError naming the shape."""
        x = np.asarray(x)
        if x.ndim != 5 or x.shape[2:] != (self.in_channels,) + self.input_size \
                or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"{self!r}: expected x [T, B, {self.in_channels}, "
                             f"{self.input_size[0]}, {self.input_size[1]}] with T, B >= 1, "
                             f"got shape {x.shape}")
        if x.dtype.kind not in "fiub":
            raise ValueError(f"{self!r}: x dtype {x.dtype} is not numeric")
        if x.dtype.kind != "f":
            x = x.astype(get_default_dtype())
        return x

    def simulate(self, x: np.ndarray, all_layers: bool = False):
        """Spikes of the last layer ``[T, B, C_N, H, W]`` (``all_layers``: a list, one array
        per layer), the dense engine's forward."""
        out = self._run(self.check_x(x), None)
        return out if all_layers else out[-1]

    def _run(self, x: np.ndarray, w):
        """The simulation: every layer's spikes (a list of ``[T, B, C_l, H, W]``) when ``w``
        is None, else the last layer's rate ``a = sum_t w_t s_t`` (float64, flat
        ``[B, n_state]``) and the readout ``[T, B, out]``, keeping one step of state."""
        convs = self.convs
        dt = convs[0].weight.data.dtype
        x = x.astype(dt, copy=False)
        T, B = x.shape[:2]
        Kfb = self.feedback.kernel().astype(dt)
        K = [c.weight.data for c in convs]
        b = [c.bias.data[None, :, None, None] for c in convs]
        if self.batch_norm and not self.training:
            K0, b0 = self.folded_input()           # the exported model's drive, same bits
            K[0], b[0] = K0, b0[None, :, None, None]
        p = NeuronParams(beta=self.beta, theta=self.theta, reset="subtract")
        shapes = [(B, c) + self.input_size for c in self.channels]
        v = [np.zeros(sh, dtype=dt) for sh in shapes]
        s = [np.zeros(sh, dtype=dt) for sh in shapes]
        static = is_static(x)
        scale = shift = None
        if self.batch_norm and self.training:      # statistics of the mean drive K_1 * xbar + b_1
            w_all = self.rate_weights(T)
            if static:
                dbar = (conv_same(x[0], K[0]) + b[0]).astype(np.float64) * w_all.sum()
            else:
                dbar = (conv_same(self._mean_input(x, w_all), K[0].astype(np.float64))
                        + b[0].astype(np.float64))
            scale, shift = (v_.astype(dt) for v_ in self.drive_affine(dbar, update=True))

        def drive0_at(t):
            c = conv_same(x[t], K[0]) + b[0]
            return c if scale is None else c * scale + shift

        drive0 = drive0_at(0) if static else None
        if w is None:
            out = [np.empty((T,) + sh, dtype=dt) for sh in shapes]
        else:
            a = np.zeros((B, self.n_state))
            Wo, bo = self.readout.weight.data, self.readout.bias.data
            y = np.empty((T, B, self.out_features), dtype=dt)
        for t in range(T):
            fb = conv_same(s[-1], Kfb)                  # s^N_{t-1}
            for l in range(len(convs)):
                if l == 0:
                    current = (drive0 if static else drive0_at(t)) + fb
                else:
                    current = conv_same(s[l - 1], K[l]) + b[l]
                _, s[l], v[l] = canonical_step(v[l], current, p)
                if w is None:
                    out[l][t] = s[l]
            if w is not None:
                flat = s[-1].reshape(B, -1)
                a += w[t] * flat
                y[t] = flat @ Wo.T + bo
        return out if w is None else (a, y)

    def _chain(self, a: np.ndarray, xbar: np.ndarray):
        """Pre-activations ``z_l`` and rates ``a_l = clamp(z_l)`` of every layer for the last
        layer's rate ``a [B, n_state]`` (float64, ``[B, C_l, H, W]``)."""
        B = a.shape[0]
        prev = a.reshape((B, self.channels[-1]) + self.input_size)
        zs, rates = [], []
        self._dbar = None
        for l, conv in enumerate(self.convs):
            K = conv.weight.data.astype(np.float64)
            b = conv.bias.data.astype(np.float64)[None, :, None, None]
            if l == 0:
                dbar = conv_same(xbar, K) + b                  # the mean drive
                scale, shift = self.drive_affine(dbar)
                self._dbar = dbar
                z = conv_same(prev, self.feedback.kernel()) + (dbar * scale + shift)
            else:
                z = conv_same(rates[-1], K) + b
            zs.append(z / self.theta)
            rates.append(np.clip(zs[-1], 0.0, 1.0))
        return zs, rates

    def equilibrium_map(self, a: np.ndarray, xbar: np.ndarray) -> np.ndarray:
        """``f(a) = f_N(... f_1(a))`` on flat rates ``[B, n_state]``."""
        return self._chain(a, xbar)[1][-1].reshape(a.shape[0], -1)

    def linearise(self, a: np.ndarray, xbar: np.ndarray):
        """``(JT, backward)`` at ``a [B, n_state]``, ``m_l = 1[0 <= z_l <= 1]``::

            JT(g):  v = g ; for l = N..2: v = K_l^T (m_l v / theta) ;  return K_fb^T (m_1 v / theta)
            backward(g):  delta_N = m_N g / theta ; delta_{l-1} = m_{l-1} K_l^T delta_l / theta
                          dK_l = delta_l (x) a_{l-1} (a_0 = xbar) ; db_l = sum delta_l
                          dK_fb = delta_1 (x) a_N   (through the spectral normalisation)

        ``K^T`` is the adjoint convolution, ``(x)`` the kernel-gradient correlation."""
        zs, rates = self._chain(a, xbar)
        dbar = self._dbar
        ms = [((z >= 0.0) & (z <= 1.0)).astype(np.float64) for z in zs]
        Ks = [c.weight.data.astype(np.float64) for c in self.convs]
        Kfb, theta = self.feedback.kernel(), self.theta
        B = a.shape[0]
        shape = (B, self.channels[-1]) + self.input_size
        aN = a.reshape(shape)

        def JT(g):
            v = g.reshape(shape)
            for l in range(len(Ks) - 1, 0, -1):
                v = conv_same_input_grad(ms[l] * v / theta, Ks[l])
            return conv_same_input_grad(ms[0] * v / theta, Kfb).reshape(B, -1)

        def backward(g):
            v = g.reshape(shape)
            convs = self.convs
            for l in range(len(Ks) - 1, -1, -1):
                delta = ms[l] * v / theta
                inp = xbar if l == 0 else rates[l - 1]
                conv = convs[l]
                gd = self._drive_backward(delta, dbar) if l == 0 else delta   # BatchNorm
                conv.weight.grad += conv_same_weight_grad(inp, gd, Ks[l].shape[2]).astype(
                    conv.weight.grad.dtype)
                conv.bias.grad += gd.sum(axis=(0, 2, 3)).astype(conv.bias.grad.dtype)
                if l > 0:
                    v = conv_same_input_grad(delta, Ks[l])
            self.feedback.backward_matrix(
                conv_same_weight_grad(aN, delta, Kfb.shape[2]))

        return JT, backward
