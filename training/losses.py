"""Losses on the readout ``y[T, B, C]`` (per-step logits of a non-spiking output layer).

Every function returns ``(loss, dL/dy)``: the scalar loss (mean over the batch) and its
gradient with respect to every step's logits, derived by hand.
"""
from __future__ import annotations

import numpy as np


def _check(y: np.ndarray, labels: np.ndarray, who: str):
    if y.ndim != 3:
        raise ValueError(f"{who}: readout must be [T, B, C], got shape {y.shape}")
    labels = np.asarray(labels)
    if labels.shape != (y.shape[1],):
        raise ValueError(f"{who}: labels must be [B] = [{y.shape[1]}], got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{who}: labels must be integers, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= y.shape[2]):
        raise ValueError(f"{who}: labels must lie in [0, {y.shape[2]}), got range "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


def time_weights_or_uniform(time_weights, T: int, dtype) -> np.ndarray:
    """``a[T]`` of the decoder (docs/methods.md section 6); ones when None."""
    if time_weights is None:
        return np.ones(T, dtype=dtype)
    a = np.asarray(time_weights, dtype=dtype)
    if a.shape != (T,) or not np.all(np.isfinite(a)):
        raise ValueError(f"time_weights must be {T} finite numbers, got shape {a.shape}")
    return a


def decode(y: np.ndarray, time_weights=None) -> np.ndarray:
    """Decoded output ``(1/T) sum_t a_t y_t``: ``[T, B, C] -> [B, C]``."""
    a = time_weights_or_uniform(time_weights, y.shape[0], y.dtype)
    return np.tensordot(a, y, axes=(0, 0)) / y.dtype.type(y.shape[0])


def _softmax_ce(z: np.ndarray, labels: np.ndarray, label_smoothing: float):
    """Mean cross-entropy of logits ``z [B, C]`` and its gradient ``[B, C]``."""
    B, C = z.shape
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    target = np.full((B, C), label_smoothing / C, dtype=z.dtype)
    target[np.arange(B), labels] += 1.0 - label_smoothing
    loss = float(-(target * logp).sum() / B)
    grad = (np.exp(logp) - target) / z.dtype.type(B)
    return loss, grad


def rate_cross_entropy(y: np.ndarray, labels, time_weights=None, label_smoothing: float = 0.0):
    """Cross-entropy of the decoded output ``(1/T) sum_t a_t y_t`` (mean over the batch).

    Args:
        y: readout ``[T, B, C]``.  labels: ``[B]`` ints.  time_weights: ``a[T]`` or None.
    Returns:
        loss (float) and ``dL/dy [T, B, C]`` (``dL/dy_t = a_t / T * dL/dz``).
    """
    labels = _check(y, labels, "rate_cross_entropy")
    a = time_weights_or_uniform(time_weights, y.shape[0], y.dtype)
    loss, gz = _softmax_ce(decode(y, a), labels, label_smoothing)
    grad = (a / y.dtype.type(y.shape[0]))[:, None, None] * gz[None]
    return loss, grad.astype(y.dtype, copy=False)


def per_step_cross_entropy(y: np.ndarray, labels, label_smoothing: float = 0.0):
    """Mean over steps of the per-step cross-entropy ``(1/T) sum_t CE(y_t, label)``."""
    labels = _check(y, labels, "per_step_cross_entropy")
    T, B, C = y.shape
    loss, g = _softmax_ce(y.reshape(T * B, C), np.tile(labels, T), label_smoothing)
    # _softmax_ce averaged over T*B rows: that is already (1/T) sum_t mean_b
    return loss, g.reshape(T, B, C).astype(y.dtype, copy=False)


def ce_mse(o: np.ndarray, labels, c: float = 0.0):
    """Loss of one step's logits ``o [B, C]`` for the online methods (docs/methods.md
    section 15): ``(1 - c) CE(o, y) + c MSE(o, onehot(y))``.

    CE is the batch mean of the cross-entropy; MSE the mean of the squared differences over all
    ``B * C`` entries (``torch.nn.functional.mse_loss``).  Returns ``(loss, dL/do [B, C])``.
    """
    o = np.asarray(o)
    labels = _check(o[None], labels, "ce_mse")
    B, C = o.shape
    loss, grad = _softmax_ce(o, labels, 0.0) if c != 1.0 else (0.0, np.zeros_like(o))
    if c == 0.0:
        return loss, grad
    dt = o.dtype.type
    diff = o.copy()
    diff[np.arange(B), labels] -= 1
    mse = float((diff.astype(np.float64) ** 2).mean())
    return ((1 - c) * loss + c * mse,
            dt(1 - c) * grad + dt(2 * c / (B * C)) * diff)


LOSSES = {"rate_ce": rate_cross_entropy, "per_step_ce": per_step_cross_entropy}


def accuracy(y: np.ndarray, labels, time_weights=None) -> float:
    """Fraction of samples whose decoded output's argmax equals the label."""
    return float(np.mean(decode(y, time_weights).argmax(axis=1) == np.asarray(labels)))
