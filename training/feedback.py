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
from .layers import Linear, _init_rng, kaiming_uniform
from .module import Module, Parameter

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

    def power_iteration(self, n: int = 1) -> None:
        """``n`` power-iteration steps on ``W_raw`` updating ``u`` and ``v`` in place."""
        W = self.weight.data.astype(np.float64)
        for _ in range(n):
            v = W.T @ self.u
            self.v[...] = v / max(np.linalg.norm(v), 1e-300)
            u = W @ self.v
            self.u[...] = u / max(np.linalg.norm(u), 1e-300)

    def sigma(self) -> float:
        """The spectral-norm estimate ``u^T W_raw v`` (exact once u, v have converged)."""
        return float(self.u @ self.weight.data.astype(np.float64) @ self.v)

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

    @property
    def time_weights(self):
        """Decoder weights of the per-step readout: None (uniform) for IF, else
        ``T w_t`` for the last T seen, so ``decode(y, time_weights) = W_o a + b_o``."""
        T = getattr(self, "_T", None)
        if self.neuron == "IF" or self.lam == 1.0 or T is None:
            return None
        return T * self.rate_weights(T)

    def forward(self, x) -> np.ndarray:
        x = self.check_x(x)
        s = self.simulate(x)
        T = x.shape[0]
        self._T = T
        w = self.rate_weights(T)
        a = np.tensordot(w, s.astype(np.float64), axes=(0, 0))
        self.last_input_mean = np.tensordot(w, x.astype(np.float64), axes=(0, 0))
        self.last_rate = a
        self.last_residual = float(np.max(np.abs(a - self.equilibrium_map(a, self.last_input_mean))))
        return self.readout.forward(s.reshape(T, x.shape[1], -1))

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
            for every weight; the power-iteration vectors are drawn from it too).
    Parameters: ``input.weight [hidden, in]``, ``input.bias [hidden]``,
    ``feedback.weight [hidden, hidden]`` (``W_raw``), ``readout.weight [out, hidden]``,
    ``readout.bias [out]``.  Buffers: ``feedback.u``, ``feedback.v``.

    :meth:`forward` on ``x [T, B, in_features]`` returns the per-step readout
    ``y_t = W_o s_t + b_o`` (``[T, B, out]``), whose decoded mean with :attr:`time_weights`
    is ``W_o a + b_o``; it sets ``last_rate`` (``a [B, hidden]``) and ``last_residual``
    (``max |a - f(a)|``, how far the simulated rate is from a fixed point).
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, neuron: str = "IF",
                 theta: float = 2.0, lam: float = 0.95, rng=None):
        super().__init__()
        in_features = _check_positive_int("FeedbackMLP", "in_features", in_features)
        hidden = _check_positive_int("FeedbackMLP", "hidden", hidden)
        out_features = _check_positive_int("FeedbackMLP", "out_features", out_features)
        self._init_neuron("FeedbackMLP", neuron, theta, lam)
        rng = _init_rng(rng)
        self.in_features, self.hidden, self.out_features = in_features, hidden, out_features
        self.n_state = hidden
        self.input = Linear(in_features, hidden, rng=rng)
        self.feedback = SpectralFeedback(hidden, rng)
        self.readout = Linear(hidden, out_features, rng=rng)

    def __repr__(self) -> str:
        return (f"FeedbackMLP({self.in_features}, {self.hidden}, {self.out_features}, "
                f"neuron={self.neuron!r}, theta={self.theta}, lam={self.lam})")

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
        x = self.check_x(x)
        dt = self.input.weight.data.dtype
        T, B = x.shape[:2]
        W = self.feedback.matrix().astype(dt)
        current = self.input.forward(x.astype(dt, copy=False))      # F x_t + b, [T, B, H]
        p = NeuronParams(beta=self.beta, theta=self.theta, reset="subtract")
        v = np.zeros((B, self.hidden), dtype=dt)
        s = np.zeros((B, self.hidden), dtype=dt)
        out = np.empty((T, B, self.hidden), dtype=dt)
        for t in range(T):
            _, s, v = canonical_step(v, current[t] + s @ W.T, p)
            out[t] = s
        self.input.reset_cache()
        return out

    # -- the equilibrium and its linearisation (the IDE backward) ---------------------------
    def preactivation(self, a: np.ndarray, xbar: np.ndarray) -> np.ndarray:
        """``z = (W a + F xbar + b) / theta`` in float64 (``a [B, H]``, ``xbar [B, in]``)."""
        F = self.input.weight.data.astype(np.float64)
        b = self.input.bias.data.astype(np.float64)
        return (a @ self.feedback.matrix().T + xbar @ F.T + b) / self.theta

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
        z = self.preactivation(a, xbar)
        m = ((z >= 0.0) & (z <= 1.0)).astype(np.float64)
        W, theta = self.feedback.matrix(), self.theta

        def JT(g):
            return (m * g) @ W / theta

        def backward(g):
            delta = m * g / theta
            self.input.weight.grad += (delta.T @ xbar).astype(self.input.weight.grad.dtype)
            self.input.bias.grad += delta.sum(axis=0).astype(self.input.bias.grad.dtype)
            self.feedback.backward_matrix(delta.T @ a)

        return JT, backward
