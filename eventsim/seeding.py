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
        """:func:`eventsim.inputs.rate_code` of ``images [B, ...]`` in [0, 1], each sample
        from its own stream; one EventBatch of B samples and T steps."""
        from .inputs import rate_code

        return join_event_batches([rate_code(images[b:b + 1], T, self.generator(b))
                                   for b in range(len(images))])


def join_event_batches(batches: list) -> EventBatch:
    """One EventBatch of several (same T and input shape), samples in order."""
    if not batches:
        raise ValueError("join_event_batches: no batches given")
    first = batches[0]
    for k, e in enumerate(batches):
        if int(e.T) != int(first.T) or tuple(e.input_shape) != tuple(first.input_shape):
            raise ValueError(f"join_event_batches: batch {k} has T={e.T}, input_shape "
                             f"{tuple(e.input_shape)}; batch 0 has T={first.T}, "
                             f"{tuple(first.input_shape)}")
    counts = np.concatenate([np.diff(e.sample_ptr) for e in batches])
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return EventBatch(times=np.concatenate([e.times for e in batches]),
                      indices=np.concatenate([e.indices for e in batches]),
                      values=np.concatenate([e.values for e in batches]),
                      sample_ptr=ptr, T=int(first.T),
                      input_shape=tuple(first.input_shape)).validate()
