"""A flat NIR graph -> a model file record (:class:`snncore.modelfile.Model`).

The graph must be a chain from its Input to its Output (projections and neuron nodes), plus
extra paths that leave a neuron node and come back to a neuron node of the chain through
Linear/Affine, Scale and Delay nodes: recurrent or feedback edges, which become delayed
:class:`~snncore.modelfile.Connection` records.  A neuron's input gain and leak potential
are folded into the projection before it (docs/nir.md, "From NIR to the model file").
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from snncore import modelfile as mf

from . import _params as P
from ._params import NIRConversionError

POPULATIONS = ("LIF", "IF", "CubaLIF", "Threshold")
INTEGRATORS = ("LI", "CubaLI", "I")
CONNECTION_NODES = ("Linear", "Affine", "Scale", "Delay")


@dataclass
class Options:
    """How to read continuous parameters (see :func:`eventsim.nir.load`)."""
    dt: float
    discretisation: str
    reset: str                  # "hard", "subtract", or "auto"
    convention_reset: str       # the writer's default when reset="auto"
    dtype: np.dtype
    source: str                 # file name, for messages


@dataclass
class _State:
    records: list = field(default_factory=list)
    shapes: list = field(default_factory=list)   # shape after each record
    seg_start: int = 0                            # first record after the last population
    layer_of: dict = field(default_factory=dict)  # population node -> layer index
    gain_of: dict = field(default_factory=dict)   # population node -> flat gain [n]
    pending: float = 1.0                          # scalar factor for the next weights (SumPool)


def _kind(node) -> str:
    return type(node).__name__


def _arr(node, name: str, where: str) -> np.ndarray:
    value = getattr(node, name, None)
    if value is None:
        raise NIRConversionError(f"{where}: missing parameter {name!r}")
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise NIRConversionError(f"{where}.{name}: expected numbers, got {value!r}") from None
    if not np.all(np.isfinite(a) | (np.isinf(a) & (name in ("tau", "tau_mem", "tau_syn")))):
        raise NIRConversionError(f"{where}.{name}: non-finite values")
    return a


def _int_pair(value, where: str, lo: int) -> tuple[int, int]:
    a = np.asarray(value).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2 or a.dtype.kind not in "iuf" or np.any(a != np.round(a)) or np.any(a < lo):
        raise NIRConversionError(f"{where}: expected one or two integers >= {lo}, got {value!r}")
    return int(a[0]), int(a[1])


# ---------------------------------------------------------------------------------------
# graph structure
# ---------------------------------------------------------------------------------------
def _main_path(nodes: dict, succ: dict, start: str, end: str, where: str) -> list[str]:
    """The shortest chain of node names from ``start`` to ``end`` (breadth first)."""
    came = {start: None}
    todo = deque([start])
    while todo:
        n = todo.popleft()
        if n == end:
            break
        for s in succ[n]:
            if s not in came:
                came[s] = n
                todo.append(s)
    if end not in came:
        raise NIRConversionError(f"{where}: no path from the input {start!r} to the output {end!r}")
    path, n = [], end
    while n is not None:
        path.append(n)
        n = came[n]
    return path[::-1]


def _side_paths(nodes, succ, pred, chain, where) -> list[list[str]]:
    """Paths ``[population, n1, ..., nk, population]`` off the chain (recurrent, feedback,
    delayed skip); every node must be on the chain or on one of them."""
    on_chain = set(chain)
    paths, used = [], set(on_chain)
    for i, name in enumerate(chain):
        nxt = chain[i + 1] if i + 1 < len(chain) else None
        extra = [s for s in succ[name] if s != nxt]
        if extra and _kind(nodes[name]) not in POPULATIONS:
            raise NIRConversionError(f"{where}: node {name!r} ({_kind(nodes[name])}) feeds "
                                     f"{[nxt] + extra}; only neuron nodes may feed several nodes")
        for s in extra:
            path = [name]
            while s not in on_chain:
                if _kind(nodes[s]) not in CONNECTION_NODES:
                    raise NIRConversionError(
                        f"{where}: node {s!r} ({_kind(nodes[s])}) on a path from {name!r} back into "
                        "the network; such paths may hold only Linear, Affine, Scale and Delay")
                if len(succ[s]) != 1 or len(pred[s]) != 1:
                    raise NIRConversionError(f"{where}: node {s!r} on a recurrent path has "
                                             f"{len(pred[s])} inputs and {len(succ[s])} outputs (need 1 and 1)")
                path.append(s)
                used.add(s)
                s = succ[s][0]
            path.append(s)
            if _kind(nodes[s]) not in POPULATIONS:
                raise NIRConversionError(f"{where}: the path {path} from {name!r} ends in {s!r} "
                                         f"({_kind(nodes[s])}); it must end in a neuron node")
            paths.append(path)
    for i, name in enumerate(chain):
        prev = chain[i - 1] if i else None
        others = [p for p in pred[name] if p != prev]
        if others and _kind(nodes[name]) not in POPULATIONS:
            raise NIRConversionError(f"{where}: node {name!r} ({_kind(nodes[name])}) has several "
                                     f"inputs {[prev] + others}; only neuron nodes may")
    unused = sorted(set(nodes) - used)
    if unused:
        raise NIRConversionError(f"{where}: node(s) {unused} are neither on the path from input "
                                 "to output nor on a recurrent path between neuron nodes")
    return paths


# ---------------------------------------------------------------------------------------
# folding a gain and a constant current into the projections before a neuron
# ---------------------------------------------------------------------------------------
def _per_channel(a: np.ndarray, shape, where: str, what: str) -> np.ndarray:
    """``a`` (broadcast to ``shape = (C, H, W)``) as one value per channel, if it is one."""
    full = np.broadcast_to(a, shape)
    ch = full[:, :1, :1]
    if not np.all(full == ch):
        raise NIRConversionError(f"{where}: the {what} differs between neurons of one channel "
                                 "and cannot be folded into a convolution or pooling; give it per channel")
    return ch


def _diagonal(g: np.ndarray, c: np.ndarray, shape, dtype, where):
    """A projection computing ``g * x + c`` on features of ``shape``."""
    if len(shape) == 1:
        n = shape[0]
        gf = np.broadcast_to(g, shape).astype(dtype)
        cf = np.broadcast_to(c, shape).astype(dtype)
        return mf.Sparse(data=gf.copy(), indices=np.arange(n, dtype=np.int64),
                         indptr=np.arange(n + 1, dtype=np.int64), shape=(n, n),
                         bias=cf.copy() if np.any(cf != 0) else None)
    if len(shape) == 3:
        gc = _per_channel(g, shape, where, "input gain").reshape(-1)
        cc = _per_channel(c, shape, where, "constant input").reshape(-1)
        w = np.zeros((shape[0], shape[0], 1, 1), dtype=dtype)
        w[np.arange(shape[0]), np.arange(shape[0]), 0, 0] = gc
        return mf.Conv2d(weight=w, bias=cc.astype(dtype) if np.any(cc != 0) else None)
    raise NIRConversionError(f"{where}: cannot scale features of shape {shape}")


def _scaled(rec, g: np.ndarray, c: np.ndarray, dtype):
    """Weighted projection ``rec`` followed by ``g * . + c`` (``g``, ``c`` flat per output
    row for Dense/Sparse, per output channel for Conv2d)."""
    def bias(b, n):
        b0 = np.zeros(n) if b is None else np.asarray(b, dtype=np.float64)
        out = b0 * g + c
        return None if (b is None and not np.any(out != 0)) else out.astype(dtype)
    if isinstance(rec, mf.Dense):
        return mf.Dense(weight=(rec.weight.astype(np.float64) * g[:, None]).astype(dtype),
                        bias=bias(rec.bias, rec.weight.shape[0]))
    if isinstance(rec, mf.Sparse):
        rows = np.repeat(np.arange(rec.shape[0]), np.diff(rec.indptr))
        return mf.Sparse(data=(rec.data.astype(np.float64) * g[rows]).astype(dtype),
                         indices=rec.indices, indptr=rec.indptr, shape=rec.shape,
                         bias=bias(rec.bias, rec.shape[0]))
    return mf.Conv2d(weight=(rec.weight.astype(np.float64) * g[:, None, None, None]).astype(dtype),
                     bias=bias(rec.bias, rec.weight.shape[0]), stride=rec.stride, padding=rec.padding)


def fold_back(st: _State, g, c, in_shape, dtype, where: str) -> None:
    """Make the current leaving the last records be ``g * current + c`` (``g``, ``c`` arrays
    broadcastable to the feature shape), editing the nearest weighted projection of the
    current segment, or inserting a diagonal one at the segment's start."""
    out_shape = _cur(st, in_shape)
    g = np.broadcast_to(np.asarray(g, dtype=np.float64), out_shape)
    c = np.broadcast_to(np.asarray(c, dtype=np.float64), out_shape)
    if np.all(g == 1) and np.all(c == 0):
        return
    for i in range(len(st.records) - 1, st.seg_start - 1, -1):
        rec = st.records[i]
        before = st.shapes[i - 1] if i > 0 else in_shape
        if isinstance(rec, (mf.Dense, mf.Sparse)):
            st.records[i] = _scaled(rec, g.reshape(-1), c.reshape(-1), dtype)
            return
        if isinstance(rec, mf.Conv2d):
            st.records[i] = _scaled(rec, _per_channel(g, g.shape, where, "input gain").reshape(-1),
                                    _per_channel(c, c.shape, where, "constant input").reshape(-1), dtype)
            return
        if isinstance(rec, mf.Flatten):
            g, c = g.reshape(before), c.reshape(before)
        else:   # pooling: per channel values pass through (max pooling: positive gains)
            if isinstance(rec, mf.MaxPool2d) and np.any(g <= 0):
                raise NIRConversionError(f"{where}: a gain <= 0 does not commute with max pooling")
            g = np.broadcast_to(_per_channel(g, g.shape, where, "input gain"), before)
            c = np.broadcast_to(_per_channel(c, c.shape, where, "constant input"), before)
    seg_in = st.shapes[st.seg_start - 1] if st.seg_start > 0 else in_shape
    st.records.insert(st.seg_start, _diagonal(g, c, seg_in, dtype, where))
    st.shapes.insert(st.seg_start, tuple(seg_in))


def _ensure_projection(st: _State, in_shape, dtype, where: str) -> None:
    """A neuron or readout needs a projection before it: insert an identity if none."""
    if not st.records[st.seg_start:]:
        shape = st.shapes[-1] if st.records else in_shape
        st.records.append(_diagonal(np.ones(1), np.zeros(1), shape, dtype, where))
        st.shapes.append(tuple(shape))


def _append(st: _State, rec, in_shape, where: str) -> None:
    shape = st.shapes[-1] if st.records else in_shape
    try:
        out = mf.projection_output_shape(rec, tuple(shape), where)
    except mf.ModelFormatError as e:
        raise NIRConversionError(str(e)) from None
    st.records.append(rec)
    st.shapes.append(tuple(out))


# ---------------------------------------------------------------------------------------
# node converters
# ---------------------------------------------------------------------------------------
def _cur(st, in_shape):
    return tuple(st.shapes[-1]) if st.records else tuple(in_shape)


def _dense(node, st, opt, in_shape, where):
    w = _arr(node, "weight", where)
    if w.ndim != 2:
        raise NIRConversionError(f"{where}.weight: expected [out, in], got shape {w.shape}")
    bias = _arr(node, "bias", where) if _kind(node) == "Affine" else None
    if bias is not None and bias.shape != (w.shape[0],):
        raise NIRConversionError(f"{where}.bias: expected shape ({w.shape[0]},), got {bias.shape}")
    shape = _cur(st, in_shape)
    if shape != (w.shape[1],):
        raise NIRConversionError(f"{where}: weight {w.shape} expects input ({w.shape[1]},), the "
                                 f"previous node gives {shape}")
    rec = mf.Dense(weight=_take_pending(st, w).astype(opt.dtype),
                   bias=None if bias is None else bias.astype(opt.dtype))
    _append(st, _maybe_sparse(rec, node), in_shape, where)


def _take_pending(st: _State, w: np.ndarray) -> np.ndarray:
    """Weights ``w`` times the scalar factor waiting since a SumPool (then cleared)."""
    factor, st.pending = st.pending, 1.0
    return w if factor == 1.0 else w * factor


def _flush_pending(st: _State, in_shape, opt, where) -> None:
    """A neuron or the readout comes before any weights: fold the factor into the segment."""
    if st.pending != 1.0:
        factor, st.pending = st.pending, 1.0
        fold_back(st, factor, 0.0, in_shape, opt.dtype, where)


def _maybe_sparse(rec: mf.Dense, node):
    """Our own export of a sparse projection (metadata ``sparse``) back in CSR form."""
    if not int(np.asarray((getattr(node, "metadata", None) or {}).get("sparse", 0))):
        return rec
    w = rec.weight
    rows, cols = np.nonzero(w)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=w.shape[0]))]).astype(np.int64)
    return mf.Sparse(data=w[rows, cols].copy(), indices=cols.astype(np.int64), indptr=indptr,
                     shape=w.shape, bias=rec.bias)


def _conv(node, st, opt, in_shape, where):
    w = _arr(node, "weight", where)
    if w.ndim != 4:
        raise NIRConversionError(f"{where}.weight: expected [C_out, C_in, kH, kW], got {w.shape}")
    if _int_pair(node.dilation, where + ".dilation", 1) != (1, 1):
        raise NIRConversionError(f"{where}.dilation: only 1 is supported, got {node.dilation!r}")
    groups = np.asarray(node.groups).reshape(-1)
    if groups.size != 1 or int(groups[0]) != 1:
        raise NIRConversionError(f"{where}.groups: only 1 is supported, got {node.groups!r}")
    stride = _int_pair(node.stride, where + ".stride", 1)
    pad = node.padding
    if isinstance(pad, (str, bytes)):
        pad = pad.decode() if isinstance(pad, bytes) else pad
        if pad == "valid":
            pad = (0, 0)
        elif pad == "same" and stride == (1, 1) and w.shape[2] % 2 and w.shape[3] % 2:
            pad = (w.shape[2] // 2, w.shape[3] // 2)
        else:
            raise NIRConversionError(f"{where}.padding: {pad!r} is supported only as 'valid', or "
                                     "'same' with stride 1 and odd kernels")
    pad = _int_pair(pad, where + ".padding", 0)
    shape = _cur(st, in_shape)
    declared = getattr(node, "input_shape", None)
    if declared is not None and len(shape) == 3 and tuple(np.asarray(declared).reshape(-1)) != shape[1:]:
        raise NIRConversionError(f"{where}.input_shape: {tuple(np.asarray(declared).reshape(-1))} "
                                 f"but the previous node gives {shape}")
    bias = getattr(node, "bias", None)
    bias = None if bias is None else _arr(node, "bias", where)
    if bias is not None and bias.shape not in ((w.shape[0],), ()):
        raise NIRConversionError(f"{where}.bias: expected shape ({w.shape[0]},), got {bias.shape}")
    if bias is not None and not np.any(bias != 0):
        bias = None
    rec = mf.Conv2d(weight=_take_pending(st, w).astype(opt.dtype), stride=stride, padding=pad,
                    bias=None if bias is None else np.broadcast_to(bias, (w.shape[0],)).astype(opt.dtype))
    _append(st, rec, in_shape, where)


def _pool(node, st, opt, in_shape, where):
    kernel = _int_pair(node.kernel_size, where + ".kernel_size", 1)
    stride = _int_pair(node.stride, where + ".stride", 1)
    if _int_pair(node.padding, where + ".padding", 0) != (0, 0):
        raise NIRConversionError(f"{where}.padding: pooling with padding is not supported, got {node.padding!r}")
    _append(st, mf.AvgPool2d(kernel=kernel, stride=stride), in_shape, where)
    if _kind(node) == "SumPool2d":            # a sum is the mean times the window size,
        st.pending *= float(kernel[0] * kernel[1])   # folded into the next weights


def _flatten(node, st, opt, in_shape, where):
    start = int(np.asarray(getattr(node, "start_dim", 0)).reshape(-1)[0])
    end = int(np.asarray(getattr(node, "end_dim", -1)).reshape(-1)[0])
    shape = _cur(st, in_shape)
    if end not in (-1, len(shape) - 1) or start not in (0, 1):
        raise NIRConversionError(f"{where}: only a flatten of every feature axis is supported "
                                 f"(start_dim 0, or 1 counting a batch axis; end_dim -1), got "
                                 f"start_dim={start}, end_dim={end} on {shape}")
    if len(shape) > 1:
        _append(st, mf.Flatten(), in_shape, where)


def _scale(node, st, opt, in_shape, where):
    s = _arr(node, "scale", where)
    shape = _cur(st, in_shape)
    try:
        np.broadcast_to(s, shape)
    except ValueError:
        raise NIRConversionError(f"{where}.scale: shape {s.shape} does not fit the input {shape}") from None
    _flush_pending(st, in_shape, opt, where)
    fold_back(st, s, 0.0, in_shape, opt.dtype, where)


def _node_meta(node) -> dict:
    return {k: (v.decode() if isinstance(v, bytes) else v)
            for k, v in (getattr(node, "metadata", None) or {}).items()}


def _param_shape(a: np.ndarray, shape, name, where) -> np.ndarray:
    if a.size == 1:
        return np.full(shape, float(a.reshape(-1)[0]))
    if a.shape != tuple(shape) and a.size == int(np.prod(shape)) and a.ndim == 1:
        return a.reshape(shape)                      # flat per-neuron values
    if a.shape != tuple(shape):
        raise NIRConversionError(f"{where}.{name}: shape {a.shape} does not match the node's "
                                 f"input {tuple(shape)}")
    return a


def _scalar_or_array(a: np.ndarray, dtype, keep_array: bool = False):
    """One float when every neuron has the same value (unless ``keep_array``: our export
    marks parameters that were per-neuron arrays), else a flat ``dtype`` array."""
    flat = np.asarray(a, dtype=np.float64).reshape(-1)
    if np.all(flat == flat[0]) and not keep_array:
        return float(flat[0])
    return flat.astype(dtype)


def _reset(node, opt: Options, where: str) -> str:
    meta = _node_meta(node)
    if opt.reset != "auto":
        return opt.reset
    if meta.get("reset") in ("zero", "hard", "subtract"):
        return "hard" if meta["reset"] in ("zero", "hard") else "subtract"
    return "hard" if opt.convention_reset in ("zero", "hard", "per-node") else "subtract"


def neuron_params(node, shape, opt: Options, where: str) -> dict:
    """Discrete parameters of a neuron node on features of ``shape``: ``beta``, ``alpha``
    (None without a synaptic current), ``gain`` and ``const`` (added to ``u`` per step)
    as arrays of ``shape``; ``theta``, ``v_reset`` (NIR's values for our ``>=`` test)."""
    kind = _kind(node)
    arr = lambda name: _param_shape(_arr(node, name, where), shape, name, where)  # noqa: E731
    how, dt = opt.discretisation, opt.dt
    out = {"alpha": None, "const": np.zeros(shape)}
    if kind == "Threshold":
        out.update(beta=np.zeros(shape), gain=np.ones(shape), theta=arr("threshold"),
                   v_reset=np.zeros(shape))
    elif kind in ("IF", "I"):
        out.update(beta=np.ones(shape), gain=arr("r"))
    else:
        tau_name = "tau_mem" if kind.startswith("Cuba") else "tau"
        tau = arr(tau_name)
        beta = P.decay(tau, dt, how, where, tau_name)
        out.update(beta=beta, gain=P.gain(tau, arr("r"), dt, how, where, tau_name))
        v_leak = arr("v_leak")
        if kind.startswith("Cuba"):
            tau_syn = arr("tau_syn")
            out["alpha"] = P.decay(tau_syn, dt, how, where, "tau_syn")
            out["gain"] = out["gain"] * P.gain(tau_syn, arr("w_in"), dt, how, where, "tau_syn")
            if np.any(v_leak != 0):
                raise NIRConversionError(f"{where}.v_leak: a current-based neuron with a leak "
                                         "potential other than 0 has no exact discrete form here")
        else:
            out["const"] = (1.0 - beta) * v_leak
    if kind in ("IF", "LIF", "CubaLIF"):
        out.update(theta=arr("v_threshold"), v_reset=arr("v_reset"))
    return out


def _population(name, node, st, opt, in_shape, where):
    shape = _cur(st, in_shape)
    p = neuron_params(node, shape, opt, where)
    theta = P.raise_threshold(p["theta"], opt.dtype)
    if np.any(theta <= 0):
        k = int(np.argmax(theta.reshape(-1) <= 0))
        raise NIRConversionError(f"{where}: threshold {p['theta'].reshape(-1)[k]} at neuron {k} is "
                                 "not > 0; the model file needs positive thresholds")
    v_reset = np.asarray(p["v_reset"]).reshape(-1)
    if not np.all(v_reset == v_reset[0]):
        raise NIRConversionError(f"{where}.v_reset: differs between neurons; the model file holds "
                                 "one reset potential per layer")
    _flush_pending(st, in_shape, opt, where)
    fold_back(st, p["gain"], p["const"], in_shape, opt.dtype, where)
    _ensure_projection(st, in_shape, opt.dtype, where)
    meta = _node_meta(node)
    arrays = set(str(meta.get("per_neuron", "")).split(","))
    v_min = meta.get("v_min")
    rec = mf.Spiking(beta=_scalar_or_array(p["beta"], opt.dtype, "beta" in arrays),
                     theta=_scalar_or_array(theta, opt.dtype, "theta" in arrays),
                     reset=_reset(node, opt, where), v_reset=float(opt.dtype.type(v_reset[0])),
                     v_min=None if v_min is None else float(v_min),
                     spikes=str(meta.get("spikes", "binary")),
                     alpha=None if p["alpha"] is None else _scalar_or_array(p["alpha"], opt.dtype, "alpha" in arrays))
    st.records.append(rec)
    st.shapes.append(shape)
    st.layer_of[name] = len(st.records) - 1
    st.gain_of[name] = np.asarray(p["gain"], dtype=np.float64).reshape(-1)
    st.seg_start = len(st.records)


def _flat_for_readout(st, in_shape, where):
    if len(_cur(st, in_shape)) != 1:
        _append(st, mf.Flatten(), in_shape, where)


def _readout(node, st, opt, in_shape, where) -> mf.Readout:
    shape = _cur(st, in_shape)
    p = neuron_params(node, shape, opt, where)
    if p["alpha"] is not None and np.any(p["alpha"] != 0):
        raise NIRConversionError(f"{where}: a CubaLI output with a synaptic current (tau_syn "
                                 "giving a decay > 0) is not supported: the readout has no current")
    beta = np.asarray(p["beta"]).reshape(-1)
    if not np.all(beta == beta[0]):
        raise NIRConversionError(f"{where}: the readout's time constant differs between neurons; "
                                 "the model file holds one readout decay")
    _flush_pending(st, in_shape, opt, where)
    fold_back(st, p["gain"], p["const"], in_shape, opt.dtype, where)
    _flat_for_readout(st, in_shape, where)
    _ensure_projection(st, in_shape, opt.dtype, where)
    return mf.Readout(beta=float(beta[0]))


def _spike_readout(st, in_shape, opt, where) -> mf.Readout:
    """Output of spikes: an identity projection and a per-step readout (``r_t = s_t``)."""
    _flat_for_readout(st, in_shape, where)
    n = _cur(st, in_shape)[0]
    rec = (mf.Dense(weight=np.eye(n, dtype=opt.dtype)) if n <= 1024 else
           _diagonal(np.ones(1), np.zeros(1), (n,), opt.dtype, where))
    _append(st, rec, in_shape, where)
    return mf.Readout(beta=0.0)


_CONVERTERS = {"Linear": _dense, "Affine": _dense, "Conv2d": _conv, "SumPool2d": _pool,
               "AvgPool2d": _pool, "Flatten": _flatten, "Scale": _scale}


# ---------------------------------------------------------------------------------------
# connections
# ---------------------------------------------------------------------------------------
def _connection(path, nodes, st: _State, opt: Options, sizes: dict, where: str) -> mf.Connection:
    src, tgt = path[0], path[-1]
    n_src, n_tgt = sizes[src], sizes[tgt]
    W, b, delay, n = np.eye(n_src), np.zeros(n_src), 0.0, n_src
    has_bias = False
    for name in path[1:-1]:
        node, w = nodes[name], f"{where}: node {name!r}"
        kind = _kind(node)
        if kind in ("Linear", "Affine"):
            m = _arr(node, "weight", w)
            if m.ndim != 2 or m.shape[1] != n:
                raise NIRConversionError(f"{w}.weight: shape {m.shape} does not take {n} inputs")
            W, b = m @ W, m @ b
            if kind == "Affine":
                bias = _arr(node, "bias", w)
                if bias.shape != (m.shape[0],):
                    raise NIRConversionError(f"{w}.bias: expected shape ({m.shape[0]},), got {bias.shape}")
                b, has_bias = b + bias, True
            n = m.shape[0]
        elif kind == "Scale":
            s = _arr(node, "scale", w).reshape(-1)
            if s.size not in (1, n):
                raise NIRConversionError(f"{w}.scale: {s.size} values for {n} features")
            W, b = W * s[:, None], b * s
        else:
            d = _arr(node, "delay", w).reshape(-1)
            if d.size == 0 or not np.all(d == d[0]):
                raise NIRConversionError(f"{w}.delay: one delay for every neuron is supported, got {d}")
            delay += float(d[0])
    if n != n_tgt:
        raise NIRConversionError(f"{where}: the path {path} delivers {n} values to {tgt!r}, which "
                                 f"has {n_tgt} neurons")
    g = st.gain_of[tgt]
    W, b = W * g[:, None], b * g
    steps = _delay_steps(delay, path, st, opt, where)
    proj = mf.Dense(weight=W.astype(opt.dtype), bias=b.astype(opt.dtype) if has_bias else None)
    weighted = [nodes[k] for k in path[1:-1] if _kind(nodes[k]) in ("Linear", "Affine")]
    if len(weighted) == 1:
        proj = _maybe_sparse(proj, weighted[0])
    return mf.Connection(source=st.layer_of[src], target=st.layer_of[tgt], projection=proj, delay=steps)


def _delay_steps(delay: float, path, st, opt, where) -> int:
    """Steps of delay: ``round(delay / dt)`` with Delay nodes, else 1 for an edge back to an
    earlier or the same neuron node (a cycle takes one step)."""
    src, tgt = path[0], path[-1]
    if delay == 0:
        if st.layer_of[tgt] > st.layer_of[src]:
            raise NIRConversionError(f"{where}: the path {path} skips forward from {src!r} to "
                                     f"{tgt!r} without a Delay node; the model file delays such "
                                     "connections by at least one step")
        return 1
    steps = delay / opt.dt
    if abs(steps - round(steps)) > 1e-6 * max(1.0, steps) or round(steps) < 1:
        raise NIRConversionError(f"{where}: the delay {delay:g} s on {path} is not a whole number "
                                 f">= 1 of steps of dt = {opt.dt:g} s")
    return int(round(steps))


# ---------------------------------------------------------------------------------------
# the whole graph
# ---------------------------------------------------------------------------------------
def build(nodes: dict, edges: list, opt: Options) -> tuple:
    """``(input_shape, layers, connections, output_kind)`` for a flat NIR graph."""
    where = opt.source
    ins = [k for k, v in nodes.items() if _kind(v) == "Input"]
    outs = [k for k, v in nodes.items() if _kind(v) == "Output"]
    if len(ins) != 1 or len(outs) != 1:
        raise NIRConversionError(f"{where}: need exactly one Input and one Output node, got "
                                 f"inputs {ins} and outputs {outs}")
    succ = {k: [] for k in nodes}
    pred = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    chain = _main_path(nodes, succ, ins[0], outs[0], where)
    sides = _side_paths(nodes, succ, pred, chain, where)
    in_shape = _input_shape(nodes[ins[0]], where)
    st = _State()
    readout, output_kind = None, None
    for i, name in enumerate(chain[1:-1], start=1):
        node, w = nodes[name], f"{where}: node {name!r}"
        kind = _kind(node)
        if kind in _CONVERTERS:
            _CONVERTERS[kind](node, st, opt, in_shape, w)
        elif kind in POPULATIONS:
            _population(name, node, st, opt, in_shape, w)
        elif kind in INTEGRATORS:
            if chain[i + 1] != outs[0]:
                raise NIRConversionError(f"{w} ({kind}) feeds {chain[i + 1]!r}: a leaky integrator "
                                         "is supported only as the last node before the Output")
            readout, output_kind = _readout(node, st, opt, in_shape, w), kind
        elif kind == "Delay":
            raise NIRConversionError(f"{w} (Delay) is on the feed-forward path; delays are "
                                     "supported only on paths back into a neuron node")
        else:
            raise NIRConversionError(f"{w}: node type {kind} is not supported here")
    if not st.records:
        raise NIRConversionError(f"{where}: the graph has no layer between input and output")
    _flush_pending(st, in_shape, opt, where)
    if readout is None:
        if isinstance(st.records[-1], mf.Spiking):
            readout, output_kind = _spike_readout(st, in_shape, opt, where), "spikes"
        else:
            _flat_for_readout(st, in_shape, where)
            readout, output_kind = mf.Readout(beta=0.0), "current"
    st.records.append(readout)
    sizes = {k: int(np.prod(st.shapes[v])) for k, v in st.layer_of.items()}
    conns = [_connection(p, nodes, st, opt, sizes, where) for p in sides]
    declared = _declared_output(nodes[outs[0]])
    n_out = int(np.prod(st.shapes[-1]))
    if declared is not None and int(np.prod(declared)) != n_out:
        raise NIRConversionError(f"{where}: the Output node declares shape {declared}, the "
                                 f"network gives {n_out} values")
    return in_shape, st.records, conns, output_kind


def _declared_output(node):
    """The Output node's declared shape as a tuple, or None when it declares none."""
    t = getattr(node, "output_type", None)
    shape = t.get("output") if isinstance(t, dict) else None
    try:
        a = np.asarray(shape if shape is not None else [], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return tuple(int(v) for v in a) if a.size and np.all(a >= 1) and np.all(a == np.round(a)) else None


def _input_shape(node, where) -> tuple[int, ...]:
    t = getattr(node, "input_type", None)
    shape = t.get("input") if isinstance(t, dict) else None
    a = np.asarray(shape if shape is not None else [], dtype=np.float64).reshape(-1)
    if a.size == 0 or np.any(a < 1) or np.any(a != np.round(a)):
        raise NIRConversionError(f"{where}: the Input node's shape {shape!r} is not a list of sizes >= 1")
    return tuple(int(s) for s in a)
