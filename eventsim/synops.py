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
borders, padding included); average pooling the windows that cover it.  A max pooling counts
one event per window that emits (what the event loop forwards).  :func:`chain_counts` does
the counting for any chain of projections, per sample (``eventsim.efficiency`` uses it for
every projection of a recording).
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


def _is_spike_valued(a: np.ndarray) -> bool:
    """Source values that need no multiply: 0, 1 and -1 (binary and ternary spikes)."""
    if a.dtype.kind == "b":
        return True
    return bool(np.all((a == 0) | (a == 1) | (a == -1)))


def chain_counts(records, shapes, activity: np.ndarray, until: int | None = None) -> list:
    """Per-sample synaptic operations of a chain of projections.

    Args:
        records: the chain's projection records (Flatten allowed), in order.
        shapes: feature shape before the chain, then after each record (``len + 1``).
        activity: the chain's source values ``[T, B, *shapes[0]]`` (spikes or input).
        until: count only steps ``t < until`` (a delayed connection's deliveries).
    Returns:
        ``[(position in chain, counts [B] int64, is_mac)]`` for every projection (not
        Flatten).
    """
    T, B = activity.shape[:2]
    if until is not None:
        activity = activity[:max(0, until)]
    cur = activity.reshape((activity.shape[0] * B,) + tuple(shapes[0]))
    mac = not _is_spike_valued(activity)
    out = []
    for j, rec in enumerate(records):
        if isinstance(rec, mf.Flatten):
            cur = cur.reshape((cur.shape[0],) + tuple(shapes[j + 1]))
            continue
        if isinstance(rec, mf.MaxPool2d):
            # max pooling of spikes: one operation per window that emits (once per step)
            cur = dense_apply(rec, np.asarray(cur, dtype=np.float64), bias=False)
            counts = np.count_nonzero(cur.reshape(-1, B, int(np.prod(shapes[j + 1]))),
                                      axis=(0, 2)).astype(np.int64)
            out.append((j, counts, mac))
            continue                    # its output is spikes again
        fan = stage_fanout(rec, tuple(shapes[j]), tuple(shapes[j + 1]))
        nz = (cur.reshape(-1, B, fan.shape[0]) != 0)
        counts = np.einsum("tbn,n->b", nz, fan, dtype=np.int64) if nz.shape[0] else \
            np.zeros(B, np.int64)
        out.append((j, counts, mac))
        if j + 1 < len(records):
            cur = dense_apply(rec, np.asarray(cur, dtype=np.float64), bias=False)
            mac = True        # a projection's output is graded (sums of weights)
    return out


def input_chain_counts(net, x: np.ndarray, T: int, static: bool) -> dict:
    """Synaptic events ``{"layers[i]": count}`` of the analog input ``x [T or 1, B,
    *input_shape]`` through the projections before the first population of compiled network
    ``net``, over ``T`` steps (``static``: ``x`` has one step, repeated ``T`` times)."""
    first_pop = net.pop_layers[0]
    records = [net.model.layers[i] for i in range(first_pop)]
    shapes = [tuple(net.input_shape)] + [tuple(net.shapes[i]) for i in range(first_pop)]
    return {f"layers[{j}]": int(counts.sum()) * (T if static else 1)
            for j, counts, _ in chain_counts(records, shapes, x)}
