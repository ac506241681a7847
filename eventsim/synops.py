"""Synaptic events of an analog input, counted as event delivery would count them.

``Recording.synaptic_events`` counts one synaptic event per (non-zero source value, synapse)
pair a projection delivers: the accumulates of spike input, the multiply-accumulates of
graded (analog) input.  The event loop counts the events it delivers.  An analog input
current is not delivered by the event loop (its projections are applied as dense products,
see ``Simulator``), so its counts come from here: for each projection of the input chain
(the layers before the first population) and each step, the sum of the fan-outs of the
non-zero entries of that projection's input.  A static input (the same at every step) counts
at every step, as its current drives the first population at every step.  For binary input
these are exactly the counts the event path reports, so counts do not depend on the path
(``tests/eventsim/test_dense_input.py``).

Fan-out of an input entry (canonical layout): Dense ``n_out``; Sparse the entries of its
column; Conv2d ``C_out`` times the output positions whose window covers it (exact at the
borders, padding included); pooling the windows that cover it.
"""
from __future__ import annotations

import numpy as np

from snncore import modelfile as mf

from .network import dense_apply


def _cover(n_in: int, n_out: int, k: int, stride: int, pad: int) -> np.ndarray:
    """``[n_in]``: how many of the ``n_out`` windows (size ``k``, ``stride``, ``pad``) cover
    each input position."""
    cover = np.zeros(n_in, dtype=np.int64)
    for o in range(n_out):
        lo = o * stride - pad
        cover[max(lo, 0):min(lo + k, n_in)] += 1
    return cover


def stage_fanout(rec, in_shape: tuple, out_shape: tuple) -> np.ndarray:
    """Fan-out ``[prod(in_shape)]`` (int64, canonical C order) of projection record ``rec``
    from ``in_shape`` to ``out_shape``."""
    n_in = int(np.prod(in_shape))
    if isinstance(rec, mf.Dense):
        return np.full(n_in, int(np.prod(out_shape)), dtype=np.int64)
    if isinstance(rec, mf.Sparse):
        return np.bincount(np.asarray(rec.indices, dtype=np.int64), minlength=n_in)
    C, H, W = in_shape
    _, Ho, Wo = out_shape
    if isinstance(rec, mf.Conv2d):
        co, _, kh, kw = rec.weight.shape
        (sh, sw), (ph, pw) = tuple(rec.stride), tuple(rec.padding)
        per_channel = int(co)
    else:                       # AvgPool2d, MaxPool2d: channel-wise windows
        (kh, kw), (sh, sw) = tuple(rec.kernel), tuple(rec.stride)
        ph = pw = 0
        per_channel = 1
    plane = np.outer(_cover(H, Ho, kh, sh, ph), _cover(W, Wo, kw, sw, pw)) * per_channel
    return np.broadcast_to(plane, (C, H, W)).reshape(-1).astype(np.int64)


def input_chain_counts(net, x: np.ndarray, T: int, static: bool) -> dict:
    """Synaptic events ``{"layers[i]": count}`` of the analog input ``x [T or 1, B,
    *input_shape]`` (network dtype) through the projections before the first population of
    compiled network ``net``, over ``T`` steps (``static``: ``x`` has one step, repeated
    ``T`` times)."""
    first_pop = net.pop_layers[0]
    shape = tuple(net.input_shape)
    cur = x.reshape((-1,) + shape)
    counts = {}
    for i in range(first_pop):
        rec = net.model.layers[i]
        if isinstance(rec, mf.Flatten):
            shape = tuple(net.shapes[i])
            cur = cur.reshape((-1,) + shape)
            continue
        out_shape = tuple(net.shapes[i])
        fan = stage_fanout(rec, shape, out_shape)
        nonzero = np.count_nonzero(cur.reshape(cur.shape[0], -1), axis=0)
        n = int(nonzero @ fan)
        counts[f"layers[{i}]"] = n * T if static else n
        if i + 1 < first_pop:
            cur = dense_apply(rec, np.asarray(cur, dtype=net.dtype), bias=False)
        shape = out_shape
    return counts
