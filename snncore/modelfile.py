"""The model file: the one contract between ``training.export`` and the simulator.

This module owns the schema and nothing else: plain records for layers and neuron
parameters, their validation, the HDF5 writer and the HDF5 reader.  It has no Numba and no
training code; ``training.export`` builds these records from a trained network and
``eventsim.load`` compiles them.  The format is documented in ``docs/model-format.md``.

A model is a feed-forward chain of layers in graph order, applied to an input of shape
``input_shape`` (channel-first, C-order flattening), plus optional extra projections
(recurrent or feedback) between spiking layers with integer delays >= 1:

    projections  Dense | Sparse | Conv2d | AvgPool2d | MaxPool2d | Flatten
    populations  Spiking (canonical neuron of docs/methods.md section 2)
    output       Readout (last layer: non-spiking integrator and the decision's time weights)

Within a step, spikes of a layer reach the next layer in the same step; an extra projection
delivers at ``t + delay``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from . import checks
from .fileio import (HDF5_LIBVER, atomic_output, check_output, open_hdf5, read_array,
                     string_attr, write_array)

FORMAT_NAME = "snn-model"
FORMAT_VERSION = 3        # written when no spiking layer has a synaptic current (alpha)
FORMAT_VERSION_ALPHA = 4  # written when one has: readers before it refuse the file
READABLE_VERSIONS = (1, 2, 3, 4)  # 1: no digests, earliest HDF5 layout; 2: digests; 3: per-
#                                   neuron beta/theta datasets allowed (files without them read
#                                   as 2); 4: spiking layers may carry alpha (synaptic current)
THRESHOLD_TEST = ">="  # spikes when u >= theta (NIR uses strict >; converters map it)


class ModelFormatError(ValueError):
    """A model file or record is malformed; the message names the file/field and value."""


# ---------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Dense:
    """``I = W x + b``: weight ``[out, in]``, bias ``[out]`` or None."""
    weight: np.ndarray
    bias: np.ndarray | None = None
    kind = "dense"


@dataclass(frozen=True, eq=False)
class Sparse:
    """``I = W x + b`` with W ``[out, in]`` in CSR form (``data, indices, indptr``)."""
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]
    bias: np.ndarray | None = None
    kind = "sparse"


@dataclass(frozen=True, eq=False)
class Conv2d:
    """Cross-correlation (PyTorch/NIR): weight ``[C_out, C_in, kH, kW]``, zero padding."""
    weight: np.ndarray
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    kind = "conv2d"


@dataclass(frozen=True, eq=False)
class AvgPool2d:
    """Mean over ``kernel`` windows moved by ``stride`` (no padding, floor mode)."""
    kernel: tuple[int, int]
    stride: tuple[int, int]
    kind = "avgpool2d"


@dataclass(frozen=True, eq=False)
class MaxPool2d:
    """Max over ``kernel`` windows moved by ``stride`` (no padding, floor mode)."""
    kernel: tuple[int, int]
    stride: tuple[int, int]
    kind = "maxpool2d"


@dataclass(frozen=True, eq=False)
class Flatten:
    """``[C, H, W] -> [C*H*W]`` in C order."""
    kind = "flatten"


@dataclass(frozen=True, eq=False)
class Spiking:
    """Canonical spiking population (docs/methods.md section 2)::

        i_t = alpha i_{t-1} + I_t  (only when alpha is not None; else i_t = I_t; i_{-1} = 0)
        u_t = beta v_{t-1} + i_t ;  s_t = 1[u_t >= theta]  (ternary: - 1[u_t <= -theta])
        hard: v_t = u_t (1 - |s_t|) + v_reset |s_t| ;  subtract: v_t = u_t - theta s_t
        v_t = max(v_t, v_min)  when v_min is not None

    ``beta`` and ``theta`` are floats (one per layer) or, from format version 3 on, 1-D float
    arrays with one value per neuron of the layer (C order of its feature shape).
    ``alpha`` (format version 4; None: no synaptic current, the plain LIF) is the decay per
    step of a current-based (CUBA) neuron's synaptic current, in [0, 1], a float or one value
    per neuron like ``beta`` (docs/methods.md section 16).
    """
    beta: float | np.ndarray
    theta: float | np.ndarray
    reset: str = "hard"
    v_reset: float = 0.0
    v_min: float | None = None
    spikes: str = "binary"  # or "ternary"
    alpha: float | np.ndarray | None = None
    kind = "spiking"


@dataclass(frozen=True, eq=False)
class Readout:
    """Non-spiking output integrator ``r_t = beta r_{t-1} + I_t`` (``beta = 0``: per-step
    logits, as the training readout).  Decision: ``argmax_c sum_t a_t r_t[c]`` with
    ``a = time_weights`` (None means uniform)."""
    beta: float = 0.0
    time_weights: np.ndarray | None = None
    kind = "readout"


@dataclass(frozen=True, eq=False)
class Connection:
    """Extra projection (recurrent or feedback) from the output of spiking layer ``source``
    to the input current of spiking layer ``target`` (layer indices), delivered after
    ``delay >= 1`` steps; ``projection`` is Dense or Sparse (``[n_target, n_source]``)."""
    source: int
    target: int
    projection: Union[Dense, Sparse]
    delay: int = 1


Layer = Union[Dense, Sparse, Conv2d, AvgPool2d, MaxPool2d, Flatten, Spiking, Readout]
PROJECTION_KINDS = ("dense", "sparse", "conv2d", "avgpool2d", "maxpool2d", "flatten")
_LAYER_TYPES = {cls.kind: cls for cls in (Dense, Sparse, Conv2d, AvgPool2d, MaxPool2d, Flatten,
                                          Spiking, Readout)}


@dataclass(frozen=True)
class Origin:
    """Where a model layer came from in the training network (``training.export``).

    position: index of the layer in the user's ``Sequential`` (``net.layers[position]``).
    cls: that layer's class name (``"Linear"``, ``"LIF"``, ...).
    folded: positions of layers folded into this one at export (BatchNorm), ascending.
    """
    position: int
    cls: str
    folded: tuple = ()


@dataclass(eq=False)
class Model:
    """A whole network.

    input_shape: feature shape of one input sample, e.g. ``(1, 28, 28)`` or ``(784,)``.
    layers: graph-order list of records; the last is a Readout preceded by a projection.
    connections: extra delayed projections between spiking layers.
    T: number of time steps the network was trained with.
    encoding: how images become input: "direct" (analog current every step), "rate"
        (Bernoulli spikes), or "events".
    metadata: free-form scalars (dataset, method, accuracy, seed, ...).
    origins: optional, one :class:`Origin` (or None) per layer: the position of the layer it
        was exported from in the training ``Sequential`` (BatchNorm and Dropout disappear at
        export, so model layer indices and those positions differ).  None: not known.
    """
    input_shape: tuple[int, ...]
    layers: list
    connections: list = field(default_factory=list)
    T: int = 1
    encoding: str = "direct"
    metadata: dict = field(default_factory=dict)
    origins: list | None = None

    def __post_init__(self):
        self.input_shape = tuple(int(s) for s in self.input_shape)

    def layer_at_position(self, position: int) -> int:
        """Model layer index exported from ``net.layers[position]`` of the training network.

        Raises ValueError when the model does not store origins, when that layer was folded
        into another one or removed at export (BatchNorm, Dropout), or is not in the model.
        """
        if self.origins is None:
            raise ValueError("this model does not store the layers' positions in the training "
                             "Sequential (exported before they were recorded); use model layer "
                             "indices (see `eventsim info`)")
        for i, o in enumerate(self.origins):
            if o is None:
                continue
            if o.position == position:
                return i
            if position in o.folded:
                raise ValueError(f"Sequential position {position} was folded into model layer {i} "
                                 f"(from position {o.position}, {o.cls}) at export")
        known = {o.position: i for i, o in enumerate(self.origins) if o is not None}
        raise ValueError(f"Sequential position {position} has no layer in the model (removed at "
                         f"export, e.g. Dropout, or out of range); positions -> model layers: {known}")

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Feature shape after each layer (validated)."""
        return validate(self)

    @property
    def spiking_layers(self) -> list[int]:
        return [i for i, l in enumerate(self.layers) if isinstance(l, Spiking)]

    @property
    def n_outputs(self) -> int:
        return self.shapes[-1][0]


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------
def _fail(where: str, msg: str):
    raise ModelFormatError(f"{where}: {msg}")


def _finite_array(a, where: str, ndim: int | None = None, shape=None) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        _fail(where, f"expected an array, got {type(a).__name__}")
    if a.dtype.kind != "f":
        _fail(where, f"expected floating values, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        _fail(where, f"expected {ndim} dimensions, got shape {a.shape}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        _fail(where, f"expected shape {tuple(shape)}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        _fail(where, f"non-finite value {a[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return a


def _finite_scalar(x, where: str, lo=-math.inf, hi=math.inf, lo_open=False) -> float:
    return checks.finite_scalar(where, x, lo, hi, lo_open=lo_open, error=ModelFormatError)


def _pair(v, where: str, lo: int) -> tuple[int, int]:
    return checks.int_pair(where, v, lo, error=ModelFormatError)


def _check_bias(bias, n: int, where: str):
    if bias is not None:
        _finite_array(bias, where + ".bias", shape=(n,))


def _check_csr(p: Sparse, where: str):
    n_out, n_in = _pair(p.shape, where + ".shape", 1)
    indptr, indices = p.indptr, p.indices
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        _fail(where, f"indptr/indices must be integers, got {indptr.dtype}/{indices.dtype}")
    if indptr.shape != (n_out + 1,):
        _fail(where + ".indptr", f"expected shape ({n_out + 1},), got {indptr.shape}")
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(indices):
        _fail(where + ".indptr", "must start at 0, not decrease, and end at len(indices)")
    _finite_array(p.data, where + ".data", ndim=1, shape=indices.shape)
    if len(indices) and (indices.min() < 0 or indices.max() >= n_in):
        _fail(where + ".indices", f"column index out of range [0, {n_in}): "
              f"min {indices.min()}, max {indices.max()}")
    return n_out, n_in


def projection_output_shape(p, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """Validate projection ``p`` against input feature ``shape``; return its output shape."""
    if isinstance(p, Dense):
        _finite_array(p.weight, where + ".weight", ndim=2)
        n_out, n_in = p.weight.shape
        if shape != (n_in,):
            _fail(where, f"weight expects input ({n_in},), the previous layer gives {shape}")
        _check_bias(p.bias, n_out, where)
        return (n_out,)
    if isinstance(p, Sparse):
        n_out, n_in = _check_csr(p, where)
        if shape != (n_in,):
            _fail(where, f"matrix expects input ({n_in},), the previous layer gives {shape}")
        _check_bias(p.bias, n_out, where)
        return (n_out,)
    if isinstance(p, Conv2d):
        _finite_array(p.weight, where + ".weight", ndim=4)
        co, ci, kh, kw = p.weight.shape
        sh, sw = _pair(p.stride, where + ".stride", 1)
        ph, pw = _pair(p.padding, where + ".padding", 0)
        if len(shape) != 3 or shape[0] != ci:
            _fail(where, f"expects input ({ci}, H, W), the previous layer gives {shape}")
        ho, wo = (shape[1] + 2 * ph - kh) // sh + 1, (shape[2] + 2 * pw - kw) // sw + 1
        if ho < 1 or wo < 1:
            _fail(where, f"kernel {kh}x{kw} does not fit input {shape} with padding {(ph, pw)}")
        _check_bias(p.bias, co, where)
        return (co, ho, wo)
    if isinstance(p, (AvgPool2d, MaxPool2d)):
        kh, kw = _pair(p.kernel, where + ".kernel", 1)
        sh, sw = _pair(p.stride, where + ".stride", 1)
        if len(shape) != 3 or shape[1] < kh or shape[2] < kw:
            _fail(where, f"kernel {(kh, kw)} does not fit input {shape}")
        return (shape[0], (shape[1] - kh) // sh + 1, (shape[2] - kw) // sw + 1)
    if isinstance(p, Flatten):
        return (int(np.prod(shape)),)
    _fail(where, f"unknown projection {type(p).__name__}")


def _check_neuron_values(v, where: str, n: int, lo: float, hi: float, lo_open: bool):
    """A per-layer float or a per-neuron ``[n]`` float array, all within ``[lo, hi]``."""
    if not isinstance(v, np.ndarray):
        _finite_scalar(v, where, lo, hi, lo_open=lo_open)
        return
    _finite_array(v, where, ndim=1, shape=(n,))
    bad = (v <= lo) if lo_open else (v < lo)
    bad |= v > hi
    if np.any(bad):
        k = int(np.argmax(bad))
        _fail(where, f"value {v[k]} at neuron {k} is outside "
              f"{'(' if lo_open else '['}{lo:g}, {hi:g}]")


def _check_spiking(l: Spiking, where: str, shape=None):
    n = int(np.prod(shape)) if shape is not None else -1
    _check_neuron_values(l.beta, where + ".beta", n, 0.0, 1.0, False)
    _check_neuron_values(l.theta, where + ".theta", n, 0.0, math.inf, True)
    if l.alpha is not None:
        _check_neuron_values(l.alpha, where + ".alpha", n, 0.0, 1.0, False)
    if l.reset not in ("hard", "subtract"):
        _fail(where + ".reset", f"must be 'hard' or 'subtract', got {l.reset!r}")
    _finite_scalar(l.v_reset, where + ".v_reset")
    if l.v_min is not None:
        _finite_scalar(l.v_min, where + ".v_min")
    if l.spikes not in ("binary", "ternary"):
        _fail(where + ".spikes", f"must be 'binary' or 'ternary', got {l.spikes!r}")


def _check_origins(origins, n: int, where: str):
    """One Origin (or None) per layer, positions non-negative and increasing through the chain."""
    if len(origins) != n:
        _fail(where + ".origins", f"expected one entry per layer ({n}), got {len(origins)}")
    last = -1
    for i, o in enumerate(origins):
        if o is None:
            continue
        w = f"{where}.layers[{i}].origin"
        if not isinstance(o, Origin):
            _fail(w, f"expected an Origin or None, got {type(o).__name__}")
        positions = (o.position,) + tuple(o.folded)
        if not all(isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_))
                   for p in positions):
            _fail(w, f"positions must be integers, got {positions}")
        if not isinstance(o.cls, str) or not o.cls:
            _fail(w + ".class", f"expected a class name, got {o.cls!r}")
        if min(positions) <= last or list(positions) != sorted(set(positions)):
            _fail(w, f"positions {positions} must increase through the chain (previous {last})")
        last = max(positions)


def validate(model: Model, where: str = "model") -> list[tuple[int, ...]]:
    """Check every field of ``model``; return the feature shape after each layer.

    Raises ModelFormatError naming the first wrong field and its value.
    """
    if not model.input_shape or min(model.input_shape) < 1:
        _fail(where + ".input_shape", f"must be positive sizes, got {model.input_shape}")
    if int(model.T) < 1:
        _fail(where + ".T", f"must be >= 1, got {model.T}")
    if model.encoding not in ("direct", "rate", "events"):
        _fail(where + ".encoding", f"must be 'direct', 'rate' or 'events', got {model.encoding!r}")
    if not model.layers:
        _fail(where + ".layers", "no layers")
    shapes, shape = [], model.input_shape
    n = len(model.layers)
    for i, layer in enumerate(model.layers):
        w = f"{where}.layers[{i}]({getattr(layer, 'kind', type(layer).__name__)})"
        if isinstance(layer, Spiking):
            _check_spiking(layer, w, shape)
        elif isinstance(layer, Readout):
            if i != n - 1:
                _fail(w, "the readout must be the last layer")
            _finite_scalar(layer.beta, w + ".beta", 0.0, 1.0)
            if i == 0 or not isinstance(model.layers[i - 1], (Dense, Sparse, Conv2d, AvgPool2d, Flatten)):
                _fail(w, "must follow a projection (its input current)")
            if len(shape) != 1:
                _fail(w, f"expects a flat input, got {shape}")
            if layer.time_weights is not None:
                _finite_array(layer.time_weights, w + ".time_weights", shape=(int(model.T),))
        else:
            shape = projection_output_shape(layer, shape, w)
        shapes.append(shape)
    if not isinstance(model.layers[-1], Readout):
        _fail(where + ".layers", f"the last layer must be a readout, got {model.layers[-1].kind}")
    if model.origins is not None:
        _check_origins(model.origins, n, where)
    for k, c in enumerate(model.connections):
        w = f"{where}.connections[{k}]"
        for name in ("source", "target"):
            idx = getattr(c, name)
            if not (isinstance(idx, (int, np.integer)) and not isinstance(idx, (bool, np.bool_))
                    and 0 <= idx < n
                    and isinstance(model.layers[idx], Spiking)):
                _fail(f"{w}.{name}", f"must index a spiking layer, got {idx!r}")
        if not (isinstance(c.delay, (int, np.integer)) and not isinstance(c.delay, (bool, np.bool_))
                and c.delay >= 1):
            _fail(w + ".delay", f"must be an integer >= 1, got {c.delay!r}")
        if not isinstance(c.projection, (Dense, Sparse)):
            _fail(w + ".projection", f"must be dense or sparse, got {type(c.projection).__name__}")
        n_src = int(np.prod(shapes[c.source]))
        out = projection_output_shape(c.projection, (n_src,), w)
        if out[0] != int(np.prod(shapes[c.target])):
            _fail(w, f"projects to {out[0]} neurons, target layer {c.target} has "
                  f"{int(np.prod(shapes[c.target]))}")
    return shapes


def model_dtype(model: Model) -> np.dtype:
    """The one float dtype (float32 or float64) of every array in ``model``; float32 when it
    has no arrays.  Raises ModelFormatError naming an array of another or a mixed dtype."""
    found = []
    for i, layer in enumerate(model.layers):
        found += _array_dtypes(layer, f"model.layers[{i}]({layer.kind})")
    for k, c in enumerate(model.connections):
        found += _array_dtypes(c.projection, f"model.connections[{k}].projection")
    if not found:
        return np.dtype(np.float32)
    first_where, first = found[0]
    for where, d in found:
        if d not in (np.dtype(np.float32), np.dtype(np.float64)):
            _fail(where, f"dtype {d} is not float32 or float64")
        if d != first:
            _fail(where, f"dtype {d} differs from {first_where} ({first}); all arrays of a "
                  "model share one float dtype")
    return first


def _array_dtypes(record, where: str) -> list:
    return [(f"{where}.{name}", np.asarray(getattr(record, name)).dtype)
            for name in ("weight", "bias", "data", "time_weights")
            if getattr(record, name, None) is not None]


# ---------------------------------------------------------------------------------------
# HDF5 writer and reader
# ---------------------------------------------------------------------------------------
def _write_projection_arrays(g, p):
    if isinstance(p, Dense):
        write_array(g, "weight", p.weight)
    elif isinstance(p, Sparse):
        write_array(g, "data", p.data)
        write_array(g, "indices", p.indices)
        write_array(g, "indptr", p.indptr)
        g.attrs["shape"] = np.asarray(p.shape, dtype=np.int64)
    elif isinstance(p, Conv2d):
        write_array(g, "weight", p.weight)
        g.attrs["stride"] = np.asarray(p.stride, dtype=np.int64)
        g.attrs["padding"] = np.asarray(p.padding, dtype=np.int64)
    elif isinstance(p, (AvgPool2d, MaxPool2d)):
        g.attrs["kernel"] = np.asarray(p.kernel, dtype=np.int64)
        g.attrs["stride"] = np.asarray(p.stride, dtype=np.int64)
    if getattr(p, "bias", None) is not None:
        write_array(g, "bias", p.bias)


def format_version(model: Model) -> int:
    """The version :func:`write_model` writes for ``model``: :data:`FORMAT_VERSION_ALPHA`
    when a spiking layer has a synaptic current (``alpha``), else :data:`FORMAT_VERSION`
    (so files without one stay readable by the readers before version 4)."""
    if any(isinstance(l, Spiking) and l.alpha is not None for l in model.layers):
        return FORMAT_VERSION_ALPHA
    return FORMAT_VERSION


def _write_layer(g, layer):
    string_attr(g.attrs, "kind", layer.kind)
    if isinstance(layer, Spiking):
        names = ("beta", "theta", "v_reset") + (("alpha",) if layer.alpha is not None else ())
        for name in names:
            value = getattr(layer, name)
            if isinstance(value, np.ndarray):   # per neuron (version 3)
                write_array(g, name, value)
            else:
                g.attrs[name] = float(value)
        string_attr(g.attrs, "reset", layer.reset)
        string_attr(g.attrs, "spikes", layer.spikes)
        if layer.v_min is not None:
            g.attrs["v_min"] = float(layer.v_min)
    elif isinstance(layer, Readout):
        g.attrs["beta"] = float(layer.beta)
        if layer.time_weights is not None:
            write_array(g, "time_weights", layer.time_weights)
    else:
        _write_projection_arrays(g, layer)


def _write_origin(g, o: Origin):
    g.attrs["origin_position"] = int(o.position)
    string_attr(g.attrs, "origin_class", o.cls)
    if o.folded:
        g.attrs["origin_folded"] = np.asarray(o.folded, dtype=np.int64)


def _read_origin(g, where):
    """The optional ``origin_*`` attributes of a layer group, or None when absent."""
    if "origin_position" not in g.attrs:
        return None
    position = _attr(g, "origin_position", where)
    cls = _attr(g, "origin_class", where, str)
    folded = np.atleast_1d(np.asarray(g.attrs.get("origin_folded", np.zeros(0, np.int64))))
    if not isinstance(position, (int, np.integer)) or position < 0:
        _fail(where + ".origin_position", f"expected an integer >= 0, got {position!r}")
    if folded.ndim != 1 or (folded.size and (folded.dtype.kind not in "iu" or folded.min() < 0)):
        _fail(where + ".origin_folded", f"expected integers >= 0, got {folded.tolist()!r}")
    return Origin(position=int(position), cls=cls, folded=tuple(int(p) for p in folded))


def write_model(model: Model, path, overwrite: bool = False) -> Path:
    """Validate ``model`` and write it to ``path`` atomically (temporary file, then rename).

    An existing model file at ``path`` is replaced (only once the new one is complete)
    when ``overwrite`` is True; anything else at ``path`` (a checkpoint, a recording, any
    other file) is never replaced (FileExistsError, see ``fileio.check_output``).
    """
    import h5py

    validate(model)
    path = check_output(path, "model", overwrite)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w", libver=HDF5_LIBVER) as f:
            string_attr(f.attrs, "format", FORMAT_NAME)
            f.attrs["version"] = format_version(model)
            string_attr(f.attrs, "threshold_test", THRESHOLD_TEST)
            f.attrs["input_shape"] = np.asarray(model.input_shape, dtype=np.int64)
            f.attrs["T"] = int(model.T)
            string_attr(f.attrs, "encoding", model.encoding)
            meta = f.create_group("metadata")
            for key, value in model.metadata.items():
                if isinstance(value, str):
                    string_attr(meta.attrs, key, value)
                else:
                    meta.attrs[key] = value
            layers = f.create_group("layers")
            layers.attrs["count"] = len(model.layers)
            for i, layer in enumerate(model.layers):
                g = layers.create_group(f"{i:04d}")
                _write_layer(g, layer)
                if model.origins is not None and model.origins[i] is not None:
                    _write_origin(g, model.origins[i])
            conns = f.create_group("connections")
            conns.attrs["count"] = len(model.connections)
            for k, c in enumerate(model.connections):
                g = conns.create_group(f"{k:04d}")
                g.attrs.update(source=int(c.source), target=int(c.target), delay=int(c.delay))
                _write_layer(g.create_group("projection"), c.projection)
    return path


def _attr(g, name, where, kind=None):
    if name not in g.attrs:
        _fail(where, f"missing attribute {name!r}")
    v = g.attrs[name]
    if isinstance(v, bytes):
        v = v.decode()
    if kind is str and not isinstance(v, str):
        _fail(f"{where}.{name}", f"expected a string, got {v!r}")
    return v


def _dataset(g, name, where, source, required=True):
    """Dataset ``name`` of group ``g`` as an array; ``source = (file, version)`` being read
    (version >= 2 files carry a digest per dataset, checked here)."""
    import h5py

    if name not in g:
        if required:
            _fail(where, f"missing dataset {name!r}")
        return None
    d = g[name]
    if not isinstance(d, h5py.Dataset):
        _fail(f"{where}.{name}", "expected a dataset")
    if d.dtype.kind not in "fiu":
        _fail(f"{where}.{name}", f"unsupported dtype {d.dtype}")
    path, version = source
    return read_array(d, path, ModelFormatError, require_digest=version >= 2)


def _neuron_param(g, name, where, source):
    """A spiking layer's ``beta``/``theta``/``alpha``: a float attribute, or (version >= 3) a
    float dataset of one value per neuron."""
    if name in g and source[1] >= 3:
        return _dataset(g, name, where, source)
    return float(_attr(g, name, where))


def _alpha(g, where, source):
    """A spiking layer's synaptic current decay: read only from version 4 files (None when
    absent: no synaptic current)."""
    if source[1] < FORMAT_VERSION_ALPHA or ("alpha" not in g and "alpha" not in g.attrs):
        return None
    return _neuron_param(g, "alpha", where, source)


def _read_layer(g, where, source):
    kind = _attr(g, "kind", where, str)
    if kind not in _LAYER_TYPES:
        _fail(where + ".kind", f"unknown layer kind {kind!r}; known: {sorted(_LAYER_TYPES)}")
    w = f"{where}({kind})"
    if kind == "spiking":
        v_min = g.attrs.get("v_min")
        return Spiking(beta=_neuron_param(g, "beta", w, source),
                       theta=_neuron_param(g, "theta", w, source),
                       reset=_attr(g, "reset", w, str), v_reset=float(_attr(g, "v_reset", w)),
                       v_min=None if v_min is None else float(v_min),
                       spikes=_attr(g, "spikes", w, str), alpha=_alpha(g, w, source))
    if kind == "readout":
        return Readout(beta=float(_attr(g, "beta", w)),
                       time_weights=_dataset(g, "time_weights", w, source, required=False))
    if kind == "flatten":
        return Flatten()
    if kind in ("avgpool2d", "maxpool2d"):
        return _LAYER_TYPES[kind](kernel=tuple(_attr(g, "kernel", w)), stride=tuple(_attr(g, "stride", w)))
    bias = _dataset(g, "bias", w, source, required=False)
    if kind == "dense":
        return Dense(weight=_dataset(g, "weight", w, source), bias=bias)
    if kind == "conv2d":
        return Conv2d(weight=_dataset(g, "weight", w, source), bias=bias,
                      stride=tuple(_attr(g, "stride", w)), padding=tuple(_attr(g, "padding", w)))
    return Sparse(data=_dataset(g, "data", w, source), indices=_dataset(g, "indices", w, source),
                  indptr=_dataset(g, "indptr", w, source), shape=tuple(int(s) for s in _attr(g, "shape", w)),
                  bias=bias)


def read_model(path) -> Model:
    """Read and validate a model file; errors name the file and the first wrong field."""
    path = Path(path)
    f = open_hdf5(path, "model file", ModelFormatError)
    try:
        with f:
            where = str(path)
            fmt = _attr(f, "format", where, str)
            if fmt != FORMAT_NAME:
                _fail(where + ".format", f"expected {FORMAT_NAME!r}, got {fmt!r}")
            version = _attr(f, "version", where)
            if not isinstance(version, (int, np.integer)) or isinstance(version, (bool, np.bool_)):
                _fail(where + ".version", f"expected an integer, got {version!r}")
            if version not in READABLE_VERSIONS:
                _fail(where + ".version", f"unsupported version {version}; this reader knows "
                      f"{', '.join(map(str, READABLE_VERSIONS))}")
            source = (str(path), int(version))
            test = _attr(f, "threshold_test", where, str)
            if test != THRESHOLD_TEST:
                _fail(where + ".threshold_test", f"expected {THRESHOLD_TEST!r}, got {test!r}")
            for group in ("layers", "connections", "metadata"):
                if group not in f:
                    _fail(where, f"missing group {group!r}")
            n = int(_attr(f["layers"], "count", where + ".layers"))
            layers, origins = [], []
            for i in range(n):
                key = f"{i:04d}"
                if key not in f["layers"]:
                    _fail(f"{where}.layers", f"missing layer {key} of {n}")
                layers.append(_read_layer(f["layers"][key], f"{where}.layers[{i}]", source))
                origins.append(_read_origin(f["layers"][key], f"{where}.layers[{i}]"))
            conns = []
            m = int(_attr(f["connections"], "count", where + ".connections"))
            for k in range(m):
                key = f"{k:04d}"
                w = f"{where}.connections[{k}]"
                if key not in f["connections"]:
                    _fail(f"{where}.connections", f"missing connection {key} of {m}")
                g = f["connections"][key]
                if "projection" not in g:
                    _fail(w, "missing group 'projection'")
                conns.append(Connection(source=int(_attr(g, "source", w)), target=int(_attr(g, "target", w)),
                                        delay=int(_attr(g, "delay", w)),
                                        projection=_read_layer(g["projection"], w + ".projection", source)))
            metadata = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["metadata"].attrs.items()}
            model = Model(input_shape=tuple(int(s) for s in _attr(f, "input_shape", where)),
                          layers=layers, connections=conns, T=int(_attr(f, "T", where)),
                          encoding=_attr(f, "encoding", where, str), metadata=metadata,
                          origins=origins if any(o is not None for o in origins) else None)
    except ModelFormatError:
        raise
    except (KeyError, OSError, TypeError, ValueError, RuntimeError) as e:  # h5py on damaged files
        raise ModelFormatError(f"{path}: corrupt or truncated model file "
                               f"({type(e).__name__}: {' '.join(str(e).split())})") from None
    validate(model, where=str(path))
    return model
