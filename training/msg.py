"""Masked surrogate gradients (MSG; Li et al., Neural Networks 2024), docs/methods.md.

In a spiking layer's backward pass the surrogate derivative is multiplied element-wise by a
keep mask ``m ~ Bernoulli(1 - p)``::

    ds_t/du_t = m_t * g'(u_t - theta)          (optionally divided by 1 - p)

- one fresh mask per layer, time step, sample, neuron and training iteration, drawn from the
  layer's own ``np.random.Generator`` (``rng=`` of the layer), so the same seed gives the same
  masks;
- the same masked derivative serves the output path and the reset path of ``s_t``;
- the forward pass is unchanged, and ``p = 0`` draws nothing: gradients and the generator's
  stream are bit-identical to plain surrogate gradients.

The authors' code does not rescale by ``1/(1 - p)``; ``rescale=True`` offers it.  Their
training script ramps ``p`` up after a few epochs; :class:`MSGSchedule` does that when given
to ``training.fit(..., msg_schedule=...)``, which sets every MSG layer's ``msg_p`` at the
start of each epoch.
"""
from __future__ import annotations

import math

import numpy as np

from snncore import checks

__all__ = ["check_p", "keep_mask", "MSGSchedule"]


def check_p(p, name: str = "msg_p") -> float:
    """``p`` as a float in ``[0, 1)`` (the probability of masking a derivative)."""
    v = checks.finite_scalar(name, p)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name}: must lie in [0, 1) (the masked fraction), got {p!r}")
    return v


def keep_mask(rng: np.random.Generator, shape, p: float) -> np.ndarray:
    """Boolean keep mask of ``shape``: True with probability ``1 - p`` (independently per
    element), drawn as ``rng.random(shape) >= p`` in C order.  ``p`` must be in ``(0, 1)``;
    callers skip the draw when ``p == 0``."""
    return rng.random(shape) >= p


class MSGSchedule:
    """The masking probability per epoch: ``start`` until ``start_epoch``, then linear to
    ``end`` at ``end_epoch``, constant after (epochs counted from 0, as ``fit`` runs them).

    ``MSGSchedule(0.5)`` is a constant ``p``.  The authors ramp from 0.5 towards 1.0 after
    epoch 5; ``end`` must stay below 1 (``p = 1`` would mask every derivative).

    Args:
        start: ``p`` before and at ``start_epoch``, in [0, 1).
        end: ``p`` from ``end_epoch`` on, in [0, 1) (default: ``start``).
        start_epoch, end_epoch: integers, ``0 <= start_epoch <= end_epoch``.
    """

    def __init__(self, start: float = 0.5, end: float | None = None, start_epoch: int = 0,
                 end_epoch: int | None = None):
        self.start = check_p(start, "MSGSchedule.start")
        self.end = self.start if end is None else check_p(end, "MSGSchedule.end")
        self.start_epoch = checks.positive_int("MSGSchedule.start_epoch", start_epoch + 1) - 1
        end_epoch = self.start_epoch if end_epoch is None else end_epoch
        self.end_epoch = checks.positive_int("MSGSchedule.end_epoch", end_epoch + 1) - 1
        if self.end_epoch < self.start_epoch:
            raise ValueError(f"MSGSchedule.end_epoch: must be >= start_epoch "
                             f"({self.start_epoch}), got {end_epoch}")

    def p(self, epoch: int) -> float:
        """``p`` for ``epoch`` (counted from 0)."""
        if epoch <= self.start_epoch or self.end_epoch == self.start_epoch:
            return self.start if epoch <= self.start_epoch else self.end
        if epoch >= self.end_epoch:
            return self.end
        f = (epoch - self.start_epoch) / (self.end_epoch - self.start_epoch)
        return self.start + f * (self.end - self.start)

    def apply(self, net, epoch: int) -> float:
        """Set ``msg_p`` of every layer of ``net`` that has one; return the ``p`` set."""
        p = self.p(epoch)
        for layer in getattr(net, "layers", [net]):
            if hasattr(layer, "msg_p"):
                layer.msg_p = p
        return p

    def __repr__(self) -> str:
        return (f"MSGSchedule(start={self.start}, end={self.end}, start_epoch={self.start_epoch}, "
                f"end_epoch={self.end_epoch})")


def expected_kept(n: int, p: float, sigmas: float = 5.0) -> tuple[float, float]:
    """``(low, high)``: a ``sigmas``-wide binomial band for the number kept out of ``n``
    (used by tests of the masked fraction)."""
    mean = n * (1.0 - p)
    sd = math.sqrt(n * p * (1.0 - p))
    return mean - sigmas * sd, mean + sigmas * sd
