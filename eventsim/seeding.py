"""Per-sample random streams for encoding a dataset: bitwise the same for any chunking.

Sample ``i`` of a dataset (its global index, counted from 0) draws its rate-coded spikes from
``np.random.default_rng([seed, i])`` alone, so its input events do not depend on which batch,
chunk or worker it is simulated in.  ``eventsim simulate`` encodes this way, in process and on
a Dask cluster (``--scheduler``), so both give the same output bit for bit.

No Dask or MPI here: this module is on the default code path.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .inputs import EventBatch


@dataclass(frozen=True)
class SampleSeeds:
    """The random streams of samples ``start, start + 1, ...``: sample ``start + b`` of a
    batch uses ``np.random.default_rng([seed, start + b])``.

    seed: non-negative int (``--seed``).  start: global index of the batch's first sample.
    """
    seed: int
    start: int = 0

    def at(self, start: int) -> "SampleSeeds":
        """The streams of a batch beginning at global sample ``start``."""
        return SampleSeeds(self.seed, int(start))

    def generator(self, b: int) -> np.random.Generator:
        """The generator of the batch's sample ``b`` (global index ``start + b``)."""
        return np.random.default_rng([int(self.seed), self.start + int(b)])

    def rate_code(self, images: np.ndarray, T: int) -> EventBatch:
        """Bernoulli rate coding of ``images [B, ...]`` (spike probabilities in [0, 1]) as
        events, sample ``b`` from its own stream: at step ``t``, address ``i`` spikes when
        ``u[t, i] < images[b].flat[i]`` with ``u = generator(b).random((T, n))``.

        The same law as :func:`eventsim.inputs.rate_code` (independent Bernoulli trials),
        drawn densely (T n uniforms per sample) so a batch costs B generator calls and one
        vectorised comparison.  Returns an EventBatch of B samples, T steps, value-1 events.
        """
        x = np.asarray(images, dtype=np.float64)
        if x.ndim < 2 or int(T) < 1:
            raise ValueError(f"SampleSeeds.rate_code: need images [B, ...] and T >= 1, got "
                             f"shape {x.shape}, T={T}")
        B, n, T = x.shape[0], int(np.prod(x.shape[1:])), int(T)
        p = x.reshape(B, 1, n)
        if not (np.all(p >= 0) and np.all(p <= 1)):
            raise ValueError("SampleSeeds.rate_code: spike probabilities must lie in [0, 1], got "
                             f"range [{np.nanmin(p)}, {np.nanmax(p)}]")
        u = np.empty((B, T, n))
        for b in range(B):
            self.generator(b).random((T, n), out=u[b])
        b_idx, t_idx, i_idx = np.nonzero(u < p)     # sample, then step, then address
        ptr = np.zeros(B + 1, dtype=np.int64)
        np.cumsum(np.bincount(b_idx, minlength=B), out=ptr[1:])
        return EventBatch(times=t_idx.astype(np.int64), indices=i_idx.astype(np.int64),
                          values=np.ones(len(t_idx), dtype=np.float32), sample_ptr=ptr, T=T,
                          input_shape=tuple(x.shape[1:])).validate()
