"""TWO, the temporally weighted output decoder (docs/methods.md section 6).

The readout's per-step logits ``o_t`` are decoded as ``y = (1/T) sum_t a_t o_t``; the weights
``a[T]`` get no gradient.  ``training.fit(..., decoder="two")`` keeps ``a = ones(T)`` through
the warm-up and, at the end of every later epoch, moves each ``a_t`` towards the training
accuracy of step ``t`` relative to the mean accuracy::

    a_t <- (1 - lam) a_t + lam acc_t / mean(acc)          (a kept when mean(acc) = 0)

``acc_t`` is measured on the epoch's own training outputs (no extra pass): the accuracy of the
cumulative prediction ``argmax sum_{tau <= t} o_tau`` ("cumulative", the authors' reading) or
of ``argmax o_t`` alone ("per_step").

This module holds the pure pieces (argument checks, per-step hit counts, the update);
``training/trainer.py`` calls them.
"""
from __future__ import annotations

import numbers

import numpy as np

from snncore import checks

__all__ = ["DECODERS", "ACCURACY_READINGS", "check_options", "step_hits", "update_weights",
           "first_update_epoch"]

DECODERS = ("mean", "two")
ACCURACY_READINGS = ("cumulative", "per_step")


def check_options(decoder, two_lam, two_warmup, two_accuracy) -> tuple[str, float, int, str]:
    """The TWO options of ``fit`` checked: ``(decoder, lam, warmup, accuracy)``.

    Raises ValueError naming the argument: ``decoder`` not in ("mean", "two"),
    ``two_accuracy`` not in ("cumulative", "per_step"), ``two_lam`` outside (0, 1],
    ``two_warmup`` not an integer >= 0.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder: must be one of {list(DECODERS)}, got {decoder!r}")
    if two_accuracy not in ACCURACY_READINGS:
        raise ValueError(f"two_accuracy: must be one of {list(ACCURACY_READINGS)}, "
                         f"got {two_accuracy!r}")
    lam = checks.finite_scalar("two_lam", two_lam, 0.0, 1.0, lo_open=True)
    if (isinstance(two_warmup, (bool, np.bool_)) or not isinstance(two_warmup, numbers.Integral)
            or two_warmup < 0):
        raise ValueError(f"two_warmup: must be an integer >= 0 (epochs, counted from 0), "
                         f"got {two_warmup!r}")
    return decoder, lam, int(two_warmup), two_accuracy


def step_hits(y: np.ndarray, labels: np.ndarray, reading: str = "cumulative") -> np.ndarray:
    """Correct predictions per step: ``[T]`` int64 counts over the batch.

    Args:
        y: readout logits ``[T, B, C]``.
        labels: ``[B]`` ints.
        reading: "cumulative" (prediction at step t: ``argmax_c sum_{tau <= t} y_tau``) or
            "per_step" (``argmax_c y_t``); ties go to the first maximum.
    """
    z = np.cumsum(y, axis=0) if reading == "cumulative" else y
    return (z.argmax(axis=2) == np.asarray(labels)[None, :]).sum(axis=1).astype(np.int64)


def first_update_epoch(warmup: int) -> int:
    """The first epoch (counted from 0) at whose end the weights are updated: ``warmup + 1``.

    ``a = ones(T)`` while ``epoch <= warmup``, so ``history.time_weights`` starts with
    ``warmup + 1`` rows of ones.
    """
    return warmup + 1


def update_weights(a: np.ndarray, acc: np.ndarray, lam: float) -> np.ndarray:
    """One TWO step: ``(1 - lam) a + lam acc / mean(acc)`` in float64; ``a`` (a copy) when
    ``mean(acc) == 0``.

    Args:
        a: current weights ``[T]``.  acc: accuracy per step ``[T]`` in [0, 1].
        lam: step size in (0, 1].
    """
    a = np.asarray(a, dtype=np.float64)
    acc = np.asarray(acc, dtype=np.float64)
    if acc.shape != a.shape:
        raise ValueError(f"update_weights: acc has shape {acc.shape}, the weights {a.shape}")
    mean = acc.mean()
    if mean == 0:
        return a.copy()
    return (1.0 - lam) * a + lam * (acc / mean)
