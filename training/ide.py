"""IDE: implicit differentiation on the equilibrium state (Xiao et al., NeurIPS 2021;
docs/methods.md section 17).

The forward pass simulates the feedback network (:class:`training.FeedbackMLP` or
:class:`training.FeedbackConv`) for T steps without keeping anything for a backward pass; its
rate ``a`` approximates the fixed point of ``f(a) = clamp(z, 0, 1)``,
``z = (W a + F xbar + b) / theta`` (FeedbackConv: a chain of such maps, see its
``linearise``).  For the F-MLP the gradient of the loss ``L(W_o a + b_o)`` through that fixed
point is

    (I - J^T) g = dL/da,   J^T g = W^T (m * g) / theta,   m = 1[0 <= z <= 1]
    delta = m * g / theta ;  dW = delta^T a ;  dF = delta^T xbar ;  db = sum_b delta

(the implicit function theorem; ``J`` is the Jacobian of ``f`` at ``a``).  The adjoint system
is solved per sample by Broyden's method or by plain iteration ``g <- J^T g + dL/da`` (a
contraction, ``||J|| <= 1/theta``); both stop when the relative residual
``||(I - J^T) g - dL/da|| / ||dL/da||`` (over the whole batch) is below ``tol``.
"""
from __future__ import annotations

import warnings

import numpy as np

from .feedback import _FeedbackNet
from .losses import _softmax_ce

SOLVERS = ("broyden", "iterate")
STATES = ("rate", "equilibrium")


class IDEConvergenceError(RuntimeError):
    """The adjoint (or forward fixed-point) solve did not reach its tolerance."""


class IDEConvergenceWarning(RuntimeWarning):
    """Issued instead of :class:`IDEConvergenceError` with ``on_failure="warn"``."""


def _check_solver(solver, tol, max_iter, on_failure="raise"):
    if solver not in SOLVERS:
        raise ValueError(f"ide: solver must be one of {list(SOLVERS)}, got {solver!r}")
    if not (isinstance(tol, (int, float, np.floating)) and tol > 0):
        raise ValueError(f"ide: tol must be a number > 0, got {tol!r}")
    if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, (int, np.integer)) \
            or max_iter < 1:
        raise ValueError(f"ide: max_iter must be an integer >= 1, got {max_iter!r}")
    if on_failure not in ("raise", "warn"):
        raise ValueError(f"ide: on_failure must be 'raise' or 'warn', got {on_failure!r}")


def solve_adjoint(JT, rhs: np.ndarray, solver: str = "broyden", tol: float = 1e-6,
                  max_iter: int = 50, on_failure: str = "raise"):
    """Solve ``g = JT(g) + rhs`` for ``g [B, H]`` (``JT`` linear, applied row by row).

    Args:
        JT: function ``[B, H] -> [B, H]`` applying ``J^T`` to every sample.
        rhs: ``dL/da [B, H]`` float64.  solver: "broyden" or "iterate".
        tol: bound on the relative residual.  max_iter: most applications of ``JT``.
        on_failure: "raise" (:class:`IDEConvergenceError`) or "warn"
            (:class:`IDEConvergenceWarning`, returning the best iterate).
    Returns:
        ``(g, iterations, residual)``: the iterations actually used (applications of JT,
        0 when ``rhs`` is zero) and the relative residual of ``g``.
    """
    _check_solver(solver, tol, max_iter, on_failure)
    rhs = np.asarray(rhs, dtype=np.float64)
    scale = float(np.linalg.norm(rhs))
    if scale == 0.0:
        return np.zeros_like(rhs), 0, 0.0

    def residual_of(g):      # G(g) = J^T g + rhs - g, its root is the solution
        return JT(g) + rhs - g

    g = np.zeros_like(rhs)
    G = rhs.copy()                        # G(0)
    best, best_res = g, 1.0
    B, H = rhs.shape
    if solver == "broyden":
        # Good Broyden on the inverse Jacobian of G, per sample:
        #   Hinv = -I + sum_i u_i v_i^T  (starts as -I: the first step is one iteration)
        # the rank-one terms, in buffers that double when full (memory grows with the
        # iterations actually used, not with max_iter)
        # Us, VTs [B, k, H] hold u_i and v_i^T; the products are batched matrix-vector
        # products (matmul) over samples
        Us = np.zeros((B, min(max_iter, 8), H))
        VTs = np.zeros_like(Us)

        def hinv(k, y):      # Hinv y  for the first k rank-one terms, row-wise
            c = np.matmul(VTs[:, :k], y[:, :, None])                   # [B, k, 1]
            return np.matmul(c.transpose(0, 2, 1), Us[:, :k])[:, 0] - y

        def hinv_t(k, y):    # y^T Hinv, row-wise
            c = np.matmul(Us[:, :k], y[:, :, None])
            return np.matmul(c.transpose(0, 2, 1), VTs[:, :k])[:, 0] - y

        update = -hinv(0, G)
        for k in range(max_iter):
            g = g + update
            G_new = residual_of(g)
            res = float(np.linalg.norm(G_new)) / scale
            if res < best_res:
                best, best_res = g, res
            if res < tol:
                return g, k + 1, res
            dx, dG = update, G_new - G
            vT = hinv_t(k, dx)
            denom = np.einsum("bh,bh->b", vT, dG)
            # a sample whose step no longer changes G (solved, or a degenerate direction)
            # gets no rank-one term rather than a huge one
            ok = np.abs(denom) > 1e-12 * np.linalg.norm(vT, axis=1) * np.linalg.norm(dG, axis=1)
            ok &= denom != 0.0
            safe = np.where(ok, denom, 1.0)
            if k == Us.shape[1]:
                cap = min(2 * k, max_iter)
                Us = np.concatenate([Us, np.zeros((B, cap - k, H))], axis=1)
                VTs = np.concatenate([VTs, np.zeros((B, cap - k, H))], axis=1)
            Us[:, k] = np.where(ok[:, None], (dx - hinv(k, dG)) / safe[:, None], 0.0)
            VTs[:, k] = np.where(ok[:, None], vT, 0.0)
            G = G_new
            update = -hinv(k + 1, G)
    else:
        for k in range(max_iter):
            g = JT(g) + rhs
            res = float(np.linalg.norm(residual_of(g))) / scale
            if res < best_res:
                best, best_res = g, res
            if res < tol:
                return g, k + 1, res
    message = (f"IDE adjoint solve ({solver}) did not converge: relative residual "
               f"{best_res:.3g} >= tol {tol:g} after {max_iter} iterations")
    if on_failure == "raise":
        raise IDEConvergenceError(message)
    warnings.warn(message, IDEConvergenceWarning, stacklevel=3)
    return best, max_iter, best_res


def gradients(net: _FeedbackNet, x, labels, solver: str = "broyden", tol: float = 1e-6,
              max_iter: int = 50, at: str = "rate", on_failure: str = "raise"):
    """Fill ``.grad`` of every parameter of ``net`` with the IDE gradient of the mean
    cross-entropy of ``o = W_o a + b_o``; returns ``(loss, iterations, residual)``.

    Args:
        net: a :class:`training.FeedbackMLP` (x ``[T, B, in_features]``) or
            :class:`training.FeedbackConv` (x ``[T, B, C, H, W]``).  labels: ``[B]``.
        solver, tol, max_iter, on_failure: the adjoint solve (:func:`solve_adjoint`).
        at: "rate" (the authors' choice: readout and Jacobian at the simulated rate ``a``) or
            "equilibrium" (at the fixed point ``a*`` solved to 1e-10, no spikes simulated:
            the exact gradient of ``L(a*)``).
    In training mode one power-iteration step refines the feedback weight's spectral-norm
    estimate first, and a FeedbackMLP with dropout draws this batch's masks (kept with
    ``net.fixed_mask``); its BatchNorm running statistics move with the forward pass
    (``at="rate"`` only).  Gradients are *set*, not accumulated.  ``iterations`` and ``residual``
    are the adjoint solver's (also kept as ``net.last_adjoint``).
    """
    if not isinstance(net, _FeedbackNet):
        raise TypeError(f"ide.gradients: expects a training.FeedbackMLP or FeedbackConv, got "
                        f"{type(net).__name__}")
    _check_solver(solver, tol, max_iter, on_failure)
    if at not in STATES:
        raise ValueError(f"ide.gradients: at must be one of {list(STATES)}, got {at!r}")
    x = net.check_x(x)
    labels = np.asarray(labels)
    if labels.shape != (x.shape[1],) or labels.dtype.kind not in "iu" or \
            (labels.size and (labels.min() < 0 or labels.max() >= net.out_features)):
        raise ValueError(f"ide.gradients: labels must be [B] = [{x.shape[1]}] integers in "
                         f"[0, {net.out_features}), got shape {labels.shape}")
    if net.training:
        net.feedback.power_iteration(1)
        if hasattr(net, "draw_masks"):
            net.draw_masks(x.shape[1])          # this batch's dropout masks (if any)
    if at == "rate":
        net.forward(x)
        a, xbar = net.last_rate, net.last_input_mean
    else:
        a = net.equilibrium(x, tol=1e-10)[0]
        xbar = np.tensordot(net.rate_weights(x.shape[0]), x.astype(np.float64), axes=(0, 0))
        net.last_rate, net.last_input_mean = a, xbar
    Wo = net.readout.weight.data.astype(np.float64)
    o = a @ Wo.T + net.readout.bias.data.astype(np.float64)
    loss, gz = _softmax_ce(o, labels, 0.0)                    # gz = dL/do [B, C]
    JT, backward = net.linearise(a, xbar)
    g, iterations, residual = solve_adjoint(JT, gz @ Wo, solver, tol, max_iter, on_failure)
    for p in net.parameters():
        p.zero_grad()
    net.readout.weight.grad += (gz.T @ a).astype(net.readout.weight.grad.dtype)
    net.readout.bias.grad += gz.sum(axis=0).astype(net.readout.bias.grad.dtype)
    backward(g)
    net.last_adjoint = (iterations, residual)
    net.last_logits = o
    return loss, iterations, residual
