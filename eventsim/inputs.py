"""Inputs of the simulator: spike events and analog currents.

:class:`EventBatch` is the simulator's input-event format: the spikes (or signed/analog
events) of B samples, each sample's events contiguous and sorted by time step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class EventBatch:
    """Input events of B samples over T steps.

    Sample ``b`` owns events ``sample_ptr[b]:sample_ptr[b+1]``, sorted by ``times``.

    times: int64 ``[n]`` time step of each event, in ``[0, T)``.
    indices: int64 ``[n]`` flat C-order index into ``input_shape``.
    values: float32/float64 ``[n]`` amplitude (1.0 for plain spikes, -1.0 for OFF/negative).
    sample_ptr: int64 ``[B + 1]``, non-decreasing, from 0 to n.
    T: number of time steps.  input_shape: feature shape of one sample, e.g. ``(2, 34, 34)``.
    """
    times: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    sample_ptr: np.ndarray
    T: int
    input_shape: tuple

    @property
    def batch_size(self) -> int:
        return len(self.sample_ptr) - 1

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    def validate(self) -> "EventBatch":
        """Check every field; raises ValueError naming the field and the offending value."""
        n = len(self.times)
        for name in ("times", "indices", "values"):
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.ndim != 1 or len(a) != n:
                raise ValueError(f"EventBatch.{name}: expected a 1-D array of {n} entries, got "
                                 f"{getattr(a, 'shape', type(a).__name__)}")
        if self.times.dtype.kind not in "iu" or self.indices.dtype.kind not in "iu":
            raise ValueError("EventBatch: times and indices must be integer arrays, got "
                             f"{self.times.dtype} and {self.indices.dtype}")
        if self.values.dtype.kind != "f" or not np.all(np.isfinite(self.values)):
            raise ValueError("EventBatch.values: must be finite floats")
        if int(self.T) < 1:
            raise ValueError(f"EventBatch.T: must be >= 1, got {self.T}")
        ptr = self.sample_ptr
        if ptr.ndim != 1 or len(ptr) < 2 or ptr[0] != 0 or ptr[-1] != n or np.any(np.diff(ptr) < 0):
            raise ValueError(f"EventBatch.sample_ptr: must rise from 0 to {n}, got {ptr[:5]}...")
        if n:
            if self.times.min() < 0 or self.times.max() >= self.T:
                bad = self.times[(self.times < 0) | (self.times >= self.T)][0]
                raise ValueError(f"EventBatch.times: value {bad} outside [0, {self.T})")
            if self.indices.min() < 0 or self.indices.max() >= self.n_inputs:
                bad = self.indices[(self.indices < 0) | (self.indices >= self.n_inputs)][0]
                raise ValueError(f"EventBatch.indices: address {bad} outside [0, {self.n_inputs}) "
                                 f"for input shape {self.input_shape}")
            for b in range(self.batch_size):
                t = self.times[ptr[b]:ptr[b + 1]]
                if np.any(np.diff(t) < 0):
                    raise ValueError(f"EventBatch.times: sample {b} is not sorted by time")
        return self


def from_dense(x: np.ndarray) -> EventBatch:
    """Events of a dense input ``x[T, B, *input_shape]``: one event per non-zero entry."""
    x = np.asarray(x)
    if x.ndim < 3:
        raise ValueError(f"from_dense: expected [T, B, ...features], got shape {x.shape}")
    T, B = x.shape[:2]
    flat = x.reshape(T, B, -1)
    b, t, i = np.nonzero(flat.transpose(1, 0, 2))  # sample-major, then time, then address
    values = flat[t, b, i]
    ptr = np.zeros(B + 1, dtype=np.int64)
    np.cumsum(np.bincount(b, minlength=B), out=ptr[1:])
    vdt = x.dtype if x.dtype.kind == "f" else np.float32
    return EventBatch(times=t.astype(np.int64), indices=i.astype(np.int64),
                      values=values.astype(vdt), sample_ptr=ptr, T=int(T),
                      input_shape=tuple(x.shape[2:]))
