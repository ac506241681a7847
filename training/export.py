"""Export a trained network to the model file (and import one back for dense inference).

``export(net, path, **metadata)`` turns a :class:`training.Sequential` into the plain
records of :mod:`snncore.modelfile` and writes them atomically.  Training-only
parameterisations are folded (docs/methods.md section 11):

- BatchNorm (eval statistics) into the preceding Linear/Conv weight and bias;
- the LIF input gain ``1/tau`` (tau form) into the last weight layer before the neuron;
- Dropout disappears (identity at inference);
- weight-standardised layers (``WSLinear``/``WSConv2d``) are written with their ``W_hat``;
- ``Scale(c)`` is multiplied into the weight and bias of the weight layer right before it, or,
  when it scales spikes (or the input), into the weight of the next weight layer.

So model layer indices are not positions in the training ``Sequential``: each model layer
records its origin (``snncore.modelfile.Origin``: the position and class name of the layer
it came from, and the positions of the BatchNorm layers folded into it), which the simulator's
``record_membrane_keys="sequential"`` and ``eventsim info`` use.

The network must end with a weight layer (the non-spiking readout, decoded by the
time-weighted mean of its per-step outputs).  :func:`to_network` rebuilds a dense-engine
network from a model, so a model file can be run densely and compared with the simulator.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from snncore import modelfile as mf

from .config import default_dtype
from .layers import Flatten, Linear, Sequential
from .module import Module
from .klif import KLIF, ClampedLIF
from .neurons import LIF
from .recurrent import CubaLIF, RecurrentLIF


def _layer_types():
    """Layer classes by role, imported lazily so this module stays importable on its own."""
    from .conv import Conv2d
    from .dropout import Dropout
    from .norm import BatchNorm1d, BatchNorm2d, fold_batchnorm
    from .pooling import AvgPool2d, MaxPool2d
    from .ws import Scale
    return Conv2d, Dropout, (BatchNorm1d, BatchNorm2d), fold_batchnorm, AvgPool2d, MaxPool2d, Scale


def _as_float(a, dtype):
    return np.ascontiguousarray(np.asarray(a, dtype=dtype))


def to_model(net: Sequential, input_shape, T: int, encoding: str = "direct",
             time_weights=None, dtype=np.float32, **metadata) -> mf.Model:
    """Build the model-file records of ``net`` (eval semantics; folds BN, gains, dropout).

    Args:
        net: a Sequential of Linear/Conv2d/BatchNorm/pools/Flatten/Dropout/LIF layers
            ending with a weight layer (the readout), or a ``training.FeedbackMLP``
            (written as input Dense -> spiking layer with a delay-1 dense self-connection
            holding the normalised feedback weight -> readout Dense; docs/methods.md
            section 17), or a ``training.FeedbackConv`` (conv -> spiking layers, a delay-1
            sparse connection from the last spiking layer to the first holding the feedback
            convolution, flatten -> readout Dense).
        input_shape: feature shape of one sample, e.g. ``(1, 28, 28)`` or ``(784,)``.
        T: time steps; encoding: "direct" or "rate".
        time_weights: decoder weights ``a[T]`` (TWO); None takes the network's own
            (``net.time_weights``, set by ``fit(..., decoder="two")``), uniform if it has none.
        dtype: float dtype of the stored arrays (float32 by default).
        metadata: scalars stored with the model (dataset, method, accuracy, seed, ...).
    """
    Conv2d, Dropout, BNs, fold_batchnorm, AvgPool2d, MaxPool2d, Scale = _layer_types()
    from .feedback import FeedbackConv, FeedbackMLP
    if isinstance(net, (FeedbackMLP, FeedbackConv)):
        return _feedback_model(net, input_shape, T, encoding, time_weights, dtype, metadata)
    if not isinstance(net, Sequential):
        raise TypeError(f"export expects a training.Sequential, got {type(net).__name__}")
    records: list = []
    connections: list = []   # delayed projections (a RecurrentLIF's recurrent weight)
    origins: list = []  # one mf.Origin per record: where it came from in net.layers
    last_weight = None  # index in records of the weight layer feeding the next neuron
    pending = None      # amplitude of the last LIF, not yet folded into a weight layer
    for i, layer in enumerate(net.layers):
        where = f"layer {i} ({layer!r})"
        if isinstance(layer, Linear):
            b = None if layer.bias is None else _as_float(layer.bias.data, dtype)
            W = _fold_amplitude(layer.effective_weight(), pending, where)
            records.append(mf.Dense(weight=_as_float(W, dtype), bias=b))
            last_weight, pending = len(records) - 1, None
        elif isinstance(layer, Conv2d):
            b = None if layer.bias is None else _as_float(layer.bias.data, dtype)
            W = _fold_amplitude(layer.effective_weight(), pending, where)
            records.append(mf.Conv2d(weight=_as_float(W, dtype), bias=b,
                                     stride=tuple(layer.stride), padding=tuple(layer.padding)))
            last_weight, pending = len(records) - 1, None
        elif isinstance(layer, BNs):
            if last_weight is None or last_weight != len(records) - 1:
                raise ValueError(f"export: {where} must directly follow a Linear or Conv2d layer "
                                 "to be folded")
            prev = records[last_weight]
            W, b = fold_batchnorm(prev.weight.astype(np.float64),
                                  None if prev.bias is None else prev.bias.astype(np.float64), layer)
            records[last_weight] = _replace_wb(prev, _as_float(W, dtype), _as_float(b, dtype))
            o = origins[last_weight]
            origins[last_weight] = mf.Origin(o.position, o.cls, o.folded + (i,))
        elif isinstance(layer, AvgPool2d):
            records.append(mf.AvgPool2d(kernel=tuple(layer.kernel_size), stride=tuple(layer.stride)))
        elif isinstance(layer, MaxPool2d):
            records.append(mf.MaxPool2d(kernel=tuple(layer.kernel_size), stride=tuple(layer.stride)))
        elif isinstance(layer, Flatten):
            records.append(mf.Flatten())
            if pending is not None:
                pending.flattened = True
        elif isinstance(layer, Dropout):
            continue
        elif isinstance(layer, Scale):
            c = np.float64(layer.c)
            if last_weight is not None and last_weight == len(records) - 1 and pending is None:
                prev = records[last_weight]      # scales a current: fold into W and b
                records[last_weight] = _replace_wb(
                    prev, _as_float(prev.weight.astype(np.float64) * c, dtype),
                    None if prev.bias is None else _as_float(prev.bias.astype(np.float64) * c, dtype))
            elif pending is None:                # scales spikes or the input: next weight only
                pending = _Amplitude(np.array([c]), False, where)
            else:
                pending.values = pending.values * c
            continue
        elif isinstance(layer, (CubaLIF, RecurrentLIF)):
            if pending is not None:
                raise ValueError(f"export: {where} follows a LIF with an output amplitude that "
                                 "no weight layer could absorb")
            conn = _export_recurrent(layer, records, last_weight, where, dtype)
            if conn is not None:
                connections.append(conn)
            last_weight = None
        elif isinstance(layer, LIF):
            if last_weight is None:
                raise ValueError(f"export: {where} has no weight layer before it")
            if layer.input_gain != 1.0:
                prev = records[last_weight]
                g = np.float64(layer.input_gain)
                records[last_weight] = _replace_wb(
                    prev, _as_float(prev.weight.astype(np.float64) * g, dtype),
                    None if prev.bias is None else _as_float(prev.bias.astype(np.float64) * g, dtype))
            if pending is not None:
                raise ValueError(f"export: {where} follows a LIF with an output amplitude that "
                                 "no weight layer could absorb")
            p = layer.params
            records.append(mf.Spiking(beta=_neuron_values(p.beta, dtype),
                                      theta=_neuron_values(p.theta, dtype), reset=p.reset,
                                      v_reset=p.v_reset, v_min=p.v_min, spikes=p.spikes))
            last_weight, pending = None, _pending_amplitude(layer, where)
        elif isinstance(layer, KLIF):
            _export_klif(layer, records, last_weight, where, dtype)
            last_weight, pending = None, None
        else:
            raise ValueError(f"export: {where} has no model-file equivalent")
        if len(origins) < len(records):   # this layer became a record of its own
            origins.append(mf.Origin(position=i, cls=type(layer).__name__))
    if pending is not None:
        raise ValueError(f"export: the output amplitude of {pending.where} has no weight layer "
                         "after it to be folded into")
    if not records or not isinstance(records[-1], (mf.Dense, mf.Conv2d)):
        raise ValueError("export: the network must end with a Linear readout layer "
                         "(non-spiking, decoded over time)")
    if time_weights is None:
        time_weights = getattr(net, "time_weights", None)
    tw = None if time_weights is None else _as_float(time_weights, dtype)
    records.append(mf.Readout(beta=0.0, time_weights=tw))
    origins.append(None)  # the readout integrator has no layer of its own in the Sequential
    model = mf.Model(input_shape=tuple(input_shape), layers=records, T=int(T), encoding=encoding,
                     connections=connections,
                     metadata={k: v for k, v in metadata.items() if v is not None},
                     origins=origins)
    mf.validate(model)
    return model


def _feedback_model(net, input_shape, T, encoding, time_weights, dtype, metadata) -> mf.Model:
    """The model of a FeedbackMLP: ``Dense(F, b)`` (with its BatchNorm folded in) ->
    ``Spiking(beta, theta, subtract)``
    -> ``Dense(W_o, b_o)`` -> ``Readout``, plus ``Connection(1 -> 1, delay 1,
    Dense(W))`` with ``W = W_raw / max(1, sigma)`` the feedback weight the network uses.
    A FeedbackConv: ``Conv2d(K_l, b_l)`` -> ``Spiking`` per layer, ``Flatten`` -> ``Dense``
    -> ``Readout``, plus a delay-1 ``Sparse`` connection from the last spiking layer to the
    first holding the normalised feedback convolution as a matrix.  The simulator's decision
    ``argmax sum_t a_t (W_o s_t + b_o)`` with ``a_t = T w_t`` (the rate weights: 1 for IF,
    ``lam^(T-1-t)`` normalised for LIF) is that of ``W_o a + b_o``."""
    from .feedback import FeedbackConv
    expected = ((net.in_channels,) + net.input_size if isinstance(net, FeedbackConv)
                else (net.in_features,))
    if tuple(input_shape) != expected:
        raise ValueError(f"export: {net!r} takes input_shape {expected}, got "
                         f"{tuple(input_shape)}")
    if time_weights is None and net.neuron == "LIF" and net.lam != 1.0:
        time_weights = int(T) * net.rate_weights(int(T))
    tw = None if time_weights is None else _as_float(time_weights, dtype)

    def spiking():
        return mf.Spiking(beta=float(net.beta), theta=float(net.theta), reset="subtract",
                          v_reset=0.0, v_min=None, spikes="binary")

    readout = mf.Dense(weight=_as_float(net.readout.weight.data, dtype),
                       bias=_as_float(net.readout.bias.data, dtype))
    if isinstance(net, FeedbackConv):
        records = []
        for l, conv in enumerate(net.convs):
            W, b = net.folded_input() if l == 0 else (conv.weight.data, conv.bias.data)
            records += [mf.Conv2d(weight=_as_float(W, dtype), bias=_as_float(b, dtype),
                                  stride=(1, 1), padding=tuple(conv.padding)), spiking()]
        records += [mf.Flatten(), readout, mf.Readout(beta=0.0, time_weights=tw)]
        data, indices, indptr = net.feedback.csr(dtype)
        n = net.channels[0] * net.input_size[0] * net.input_size[1]
        projection = mf.Sparse(data=_as_float(data, dtype), indices=indices, indptr=indptr,
                               shape=(n, net.n_state))
        connections = [mf.Connection(source=2 * len(net.channels) - 1, target=1, delay=1,
                                     projection=projection)]
    else:
        F, b = net.folded_input()         # eval-mode BatchNorm folded in (if any)
        records = [mf.Dense(weight=_as_float(F, dtype), bias=_as_float(b, dtype)),
                   spiking(), readout, mf.Readout(beta=0.0, time_weights=tw)]
        W = net.feedback.matrix().astype(net.feedback.weight.data.dtype)  # as the dense engine
        connections = [mf.Connection(source=1, target=1, delay=1,
                                     projection=mf.Dense(weight=_as_float(W, dtype), bias=None))]
    model = mf.Model(input_shape=expected, layers=records, T=int(T), encoding=encoding,
                     connections=connections,
                     metadata={k: v for k, v in metadata.items() if v is not None})
    mf.validate(model)
    return model


def _export_klif(layer, records: list, last_weight, where: str, dtype) -> None:
    """Append the canonical form of a KLIF layer (docs/methods.md section 14): the gain
    ``k/tau`` folded into the weight layer ``records[last_weight]``, then a hard-reset LIF with
    ``beta = k (1 - 1/tau)``, ``v_reset = 0`` and ``v_min = 0``."""
    if last_weight is None:
        raise ValueError(f"export: {where} has no weight layer before it")
    prev = records[last_weight]
    g = np.float64(layer.input_gain)
    records[last_weight] = _replace_wb(
        prev, _as_float(prev.weight.astype(np.float64) * g, dtype),
        None if prev.bias is None else _as_float(prev.bias.astype(np.float64) * g, dtype))
    records.append(mf.Spiking(beta=layer.beta, theta=layer.threshold, reset="hard",
                              v_reset=0.0, v_min=0.0, spikes="binary"))


def _export_recurrent(layer, records: list, last_weight, where: str, dtype):
    """Append the spiking layer of a RecurrentLIF or CubaLIF (docs/methods.md section 16; a
    CubaLIF's with its synaptic current decay ``alpha``) and return its recurrent projection
    (None for a CubaLIF without one): a delay-1 connection from that layer to itself holding
    ``gain * recurrent_weight`` (``[F, F]``, target by source) and ``gain * bias``; the input
    gain (``1/tau`` in the tau form) is also folded into ``records[last_weight]``.  The
    simulator delivers the spikes of step t - 1 into the current of step t, which is
    ``W s_{t-1}`` of the dense engine; the bias is added at every step, as ``b`` is."""
    if last_weight is None:
        raise ValueError(f"export: {where} has no weight layer before it")
    g = np.float64(layer.input_gain)
    if g != 1.0:
        prev = records[last_weight]
        records[last_weight] = _replace_wb(
            prev, _as_float(prev.weight.astype(np.float64) * g, dtype),
            None if prev.bias is None else _as_float(prev.bias.astype(np.float64) * g, dtype))
    p = layer.params
    a = layer.alpha_value()
    alpha = None if a is None else _neuron_values(a[0] if a.size == 1 else a, dtype)
    records.append(mf.Spiking(beta=_neuron_values(p.beta, dtype),
                              theta=_neuron_values(p.theta, dtype), reset=p.reset,
                              v_reset=p.v_reset, v_min=None, spikes="binary", alpha=alpha))
    if not layer.recurrent:
        return None
    m = len(records) - 1
    W = layer.recurrent_weight.data.astype(np.float64) * g
    b = None if layer.bias is None else _as_float(layer.bias.data.astype(np.float64) * g, dtype)
    return mf.Connection(source=m, target=m, delay=1,
                         projection=mf.Dense(weight=_as_float(W, dtype), bias=b))


class _Amplitude:
    """A LIF's output amplitude waiting to be folded into the next weight layer."""

    def __init__(self, values: np.ndarray, per_channel: bool, where: str):
        self.values, self.per_channel, self.where = values, per_channel, where
        self.flattened = False   # a Flatten lies between the LIF and the weight layer


def _pending_amplitude(layer, where: str):
    """The amplitude of LIF ``layer`` to fold (None when it is the constant 1); ValueError
    naming ``amplitude`` when a value is <= 0 (folding would flip or drop spikes)."""
    a = layer.amplitude_value()
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"export: {where}: amplitude must be > 0 to fold into the next weight "
                         f"layer, got {a.min():g} (the smallest value)")
    if not layer.per_channel and a[0] == 1.0:
        return None
    return _Amplitude(a, layer.per_channel, where)


def _fold_amplitude(W: np.ndarray, pending, where: str) -> np.ndarray:
    """``W`` with the pending amplitude folded into its input columns (float64).

    Linear ``[out, in]``: ``W[:, j] *= a_j`` (a per-channel amplitude through Flatten is
    repeated over the channel's flattened features, C order); Conv2d ``[C_out, C_in, kH,
    kW]``: ``W[:, c] *= a_c``.  Pooling between the LIF and ``W`` keeps channels and
    commutes with a positive per-channel scale."""
    if pending is None:
        return W
    W = W.astype(np.float64)
    a = pending.values
    if not pending.per_channel:
        return W * a[0]
    n_in = W.shape[1]
    if W.ndim == 2 and pending.flattened:
        if n_in % a.size:
            raise ValueError(f"export: {where}: {n_in} inputs are not a whole number of the "
                             f"{a.size} amplitude channels of {pending.where}")
        a = np.repeat(a, n_in // a.size)
    if a.size != n_in:
        raise ValueError(f"export: {where}: {n_in} input channels, but {pending.where} has "
                         f"{a.size} amplitudes")
    return W * a.reshape((1, -1) + (1,) * (W.ndim - 2))


def _neuron_values(v, dtype):
    """A canonical parameter as a float (per layer) or a flat array of ``dtype`` (per neuron)."""
    return float(v) if np.ndim(v) == 0 else _as_float(np.asarray(v).reshape(-1), dtype)


def _replace_wb(rec, W, b):
    import dataclasses
    return dataclasses.replace(rec, weight=W, bias=b)


def export(net: Sequential, path, *, input_shape, T: int, encoding: str = "direct",
           time_weights=None, overwrite: bool = False, **metadata) -> Path:
    """Write ``net`` as a versioned HDF5 model file (atomic); returns the path.

    See :func:`to_model` for the arguments; ``docs/model-format.md`` for the layout.
    An existing model file at ``path`` is replaced only with ``overwrite=True``; a file
    of another kind (checkpoint, recording, ...) is never replaced (FileExistsError).
    """
    model = to_model(net, input_shape=input_shape, T=T, encoding=encoding,
                     time_weights=time_weights, **metadata)
    return mf.write_model(model, path, overwrite=overwrite)


def to_network(model: mf.Model) -> Sequential:
    """Rebuild a dense-engine network (eval mode) computing exactly what ``model`` does.

    A connection from a binary spiking layer (without ``v_min``) to itself with ``delay = 1``
    and a dense projection becomes a :class:`training.RecurrentLIF` (what ``to_model`` writes
    for one; a :class:`training.CubaLIF` with ``recurrent=True`` when the layer has
    ``alpha``), a spiking layer with ``alpha`` and no connection a CubaLIF; other delayed
    connections (feedback between layers, longer delays, sparse, a second connection onto a
    layer) are refused (ValueError).  Returns a Sequential whose
    output ``[T, B, n_out]`` is the readout's per-step input; a leaky readout (``beta > 0``)
    is not supported here.
    """
    Conv2d, *_ , AvgPool2d, MaxPool2d, _ = _layer_types()
    shapes = mf.validate(model)
    recurrent = _recurrent_connections(model)
    layers: list[Module] = []
    for i, rec in enumerate(model.layers):
        if isinstance(rec, mf.Dense):
            n_out, n_in = rec.weight.shape
            lin = Linear(n_in, n_out, bias=rec.bias is not None)
            _load(lin, rec)
            layers.append(lin)
        elif isinstance(rec, mf.Sparse):
            raise ValueError(f"to_network: layer {i} is sparse; densify it first")
        elif isinstance(rec, mf.Conv2d):
            co, ci, kh, kw = rec.weight.shape
            conv = Conv2d(ci, co, (kh, kw), stride=tuple(rec.stride), padding=tuple(rec.padding),
                          bias=rec.bias is not None)
            _load(conv, rec)
            layers.append(conv)
        elif isinstance(rec, mf.AvgPool2d):
            layers.append(AvgPool2d(tuple(rec.kernel), stride=tuple(rec.stride)))
        elif isinstance(rec, mf.MaxPool2d):
            layers.append(MaxPool2d(tuple(rec.kernel), stride=tuple(rec.stride)))
        elif isinstance(rec, mf.Flatten):
            layers.append(Flatten())
        elif i in recurrent:
            layers.append(_recurrent_layer(rec, recurrent[i], shapes[i]))
        elif isinstance(rec, mf.Spiking) and rec.alpha is not None:
            layers.append(_cuba_layer(rec, None, shapes[i], i))
        elif isinstance(rec, mf.Spiking) and rec.spikes == "binary" and rec.v_min is not None:
            layers.append(ClampedLIF(beta=rec.beta, threshold=rec.theta, reset=rec.reset,
                                     v_reset=rec.v_reset, v_min=rec.v_min))   # e.g. a KLIF
        elif isinstance(rec, mf.Spiking):
            if rec.v_min is not None:
                raise ValueError(f"to_network: layer {i}: v_min is not in the dense engine yet")
            layers.append(_spiking_layer(rec, shapes[i]))
        elif isinstance(rec, mf.Readout):
            if rec.beta != 0.0:
                raise ValueError("to_network: a leaky readout is not supported by the dense engine")
    net = Sequential(*layers)
    return net.eval()


def feedback_from_model(model: mf.Model):
    """Rebuild the :class:`training.FeedbackMLP` or :class:`training.FeedbackConv` (eval
    mode, the model's dtype) that :func:`to_model` wrote as ``model``, e.g. to fine-tune it
    or to run the dense engine beside the simulator.

    The file holds the normalised feedback weight ``W`` (and, for an F-MLP trained with
    BatchNorm, the input layer with BatchNorm folded in), so the network gets
    ``feedback.weight = W`` with zero power-iteration vectors (``sigma = 0``: ``W`` used as
    it is until the next power iteration), and no BatchNorm or dropout.  A FeedbackConv's
    kernel is read back from the sparse delay-1 connection (``K[ct, cs, i, j]`` at row
    ``(ct, y, x)``, column ``(cs, y + i - p, x + j - p)``).  ``lam`` is the spiking layer's
    ``beta`` for LIF (the F-MLP's rate weights follow it).  Raises ValueError for a model of
    another shape.
    """
    from .feedback import FeedbackConv, FeedbackMLP
    mf.validate(model)
    kinds = [l.kind for l in model.layers]
    conns = model.connections
    dt = mf.model_dtype(model)
    spk = model.spiking_layers
    ok_conn = (len(conns) == 1 and conns[0].delay == 1 and conns[0].target == (spk[0] if spk
                                                                                else -1))
    if kinds == ["dense", "spiking", "dense", "readout"] and ok_conn \
            and conns[0].source == 1 and isinstance(conns[0].projection, mf.Dense):
        dense_in, spiking, readout = model.layers[:3]
        n_hidden, n_in = dense_in.weight.shape
        with default_dtype(dt):
            net = FeedbackMLP(n_in, n_hidden, readout.weight.shape[0],
                              **_feedback_neuron(spiking, "FeedbackMLP"), rng=0)
        net.input.weight.data[...] = dense_in.weight
        net.input.bias.data[...] = dense_in.bias
        net.feedback.weight.data[...] = conns[0].projection.weight
    elif (len(kinds) >= 5 and kinds[-3:] == ["flatten", "dense", "readout"]
          and kinds[:-3] == ["conv2d", "spiking"] * ((len(kinds) - 3) // 2) and ok_conn
          and conns[0].source == spk[-1] and isinstance(conns[0].projection, mf.Sparse)):
        convs = [l for l in model.layers if isinstance(l, mf.Conv2d)]
        dense = model.layers[-2]
        c_in, H, W = model.input_shape
        k = convs[0].weight.shape[2]
        p = conns[0].projection
        rows = np.repeat(np.arange(p.shape[0]), np.diff(p.indptr))
        C1, CN = convs[0].weight.shape[0], convs[-1].weight.shape[0]
        ct, y, x = np.unravel_index(rows, (C1, H, W))
        cs, ys, xs = np.unravel_index(p.indices, (CN, H, W))
        reach = int(max(np.abs(ys - y).max(initial=0), np.abs(xs - x).max(initial=0)))
        kf = max(2 * reach + 1, 1)
        with default_dtype(dt):
            net = FeedbackConv(c_in, [c.weight.shape[0] for c in convs], (H, W),
                               dense.weight.shape[0], kernel_size=k, feedback_kernel_size=kf,
                               **_feedback_neuron(model.layers[spk[0]], "FeedbackConv"), rng=0)
        for conv, rec in zip(net.convs, convs):
            conv.weight.data[...] = rec.weight
            conv.bias.data[...] = 0.0 if rec.bias is None else rec.bias
        K = np.zeros_like(net.feedback.weight.data)
        K[ct, cs, ys - y + kf // 2, xs - x + kf // 2] = p.data
        net.feedback.weight.data[...] = K
        readout = dense
    else:
        raise ValueError(f"feedback_from_model: not a feedback network as to_model writes one "
                         f"(layers {kinds}, connections "
                         f"{[(c.source, c.target, c.delay) for c in conns]})")
    net.feedback.u[...] = 0.0
    net.feedback.v[...] = 0.0
    net.readout.weight.data[...] = readout.weight
    net.readout.bias.data[...] = readout.bias
    return net.eval()


def _feedback_neuron(spiking: mf.Spiking, who: str) -> dict:
    if spiking.reset != "subtract" or spiking.v_min is not None or spiking.spikes != "binary" \
            or spiking.alpha is not None or not 0 < spiking.beta <= 1:
        raise ValueError(f"feedback_from_model: {who} needs binary subtract-reset IF/LIF "
                         f"neurons, got {spiking}")
    if spiking.beta == 1.0:
        return dict(neuron="IF", theta=spiking.theta)
    return dict(neuron="LIF", theta=spiking.theta, lam=spiking.beta)


def _recurrent_connections(model: mf.Model) -> dict:
    """``{layer index: Dense projection}`` of the delay-1 dense self-connections of binary
    spiking layers without ``v_min`` (ValueError naming any other connection)."""
    found: dict = {}
    for k, c in enumerate(model.connections):
        rec = model.layers[c.target]
        if (c.source != c.target or c.delay != 1 or not isinstance(c.projection, mf.Dense)
                or rec.spikes != "binary" or rec.v_min is not None or c.target in found):
            raise ValueError(f"to_network: connections[{k}] (source {c.source}, target "
                             f"{c.target}, delay {c.delay}, {c.projection.kind}): the dense "
                             "engine runs only one dense delay-1 connection of a binary spiking "
                             "layer (without v_min) to itself (a RecurrentLIF)")
        found[c.target] = c.projection
    return found


def _recurrent_layer(rec: mf.Spiking, proj: mf.Dense, shape):
    """A fixed RecurrentLIF (a CubaLIF when ``rec`` has ``alpha``) computing what spiking
    layer ``rec`` with the self-connection ``proj`` does (features of ``shape``, flattened)."""
    n = int(np.prod(shape))
    if len(shape) != 1:
        raise ValueError(f"to_network: a recurrent spiking layer needs flat features [n], got "
                         f"shape {tuple(shape)}")

    def values(v):
        return float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64).reshape(n)
    if rec.alpha is not None:
        layer = _cuba_layer(rec, proj, shape, None)
    else:
        layer = RecurrentLIF(n, beta=values(rec.beta), threshold=values(rec.theta),
                             reset=rec.reset, v_reset=rec.v_reset, bias=proj.bias is not None)
    layer.recurrent_weight.data = np.ascontiguousarray(proj.weight)
    layer.recurrent_weight.grad = np.zeros_like(layer.recurrent_weight.data)
    if proj.bias is not None:
        layer.bias.data = np.ascontiguousarray(proj.bias)
        layer.bias.grad = np.zeros_like(layer.bias.data)
    return layer


def _cuba_layer(rec: mf.Spiking, proj, shape, index) -> CubaLIF:
    """A fixed CubaLIF for spiking layer ``rec`` (which has ``alpha``) on features of
    ``shape`` (per-neuron values flattened), recurrent when ``proj`` (its self-connection,
    loaded by the caller) is given; ValueError for what CubaLIF does not compute (ternary
    spikes, ``v_min``; ``index``: the layer, for the message)."""
    if rec.spikes != "binary" or rec.v_min is not None:
        raise ValueError(f"to_network: layer {index}: a spiking layer with alpha needs binary "
                         "spikes and no v_min (what training.CubaLIF computes)")
    n = int(np.prod(shape))

    def values(v):
        return float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64).reshape(n)
    per_neuron = any(np.ndim(v) > 0 for v in (rec.alpha, rec.beta, rec.theta))
    return CubaLIF(values(rec.alpha), values(rec.beta), threshold=values(rec.theta),
                   reset=rec.reset, v_reset=rec.v_reset, recurrent=proj is not None,
                   features=n if (proj is not None or per_neuron) else None,
                   bias=proj is not None and proj.bias is not None)


def _spiking_layer(rec: mf.Spiking, shape) -> LIF:
    """A fixed LIF computing what ``rec`` does on features of ``shape`` (per-neuron arrays
    reshaped to it)."""
    def values(v):
        return float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64).reshape(shape)
    return LIF(beta=values(rec.beta), threshold=values(rec.theta), reset=rec.reset,
               v_reset=rec.v_reset, spikes=rec.spikes)


def _load(layer, rec):
    if layer.weight.data.shape != rec.weight.shape:
        raise ValueError(f"weight shape {rec.weight.shape} != {layer.weight.data.shape}")
    layer.weight.data = np.ascontiguousarray(rec.weight)
    layer.weight.grad = np.zeros_like(layer.weight.data)
    if rec.bias is not None:
        layer.bias.data = np.ascontiguousarray(rec.bias)
        layer.bias.grad = np.zeros_like(layer.bias.data)
