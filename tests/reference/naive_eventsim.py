"""Deliberately plain NumPy references of the event-driven simulator.

- :func:`simulate`, an independent dense simulator written straight from docs/methods.md
  section 2 and the model-file records: every layer of every sample is computed at every
  step, in canonical (C-order, channel-first) layout, with plain loops for convolution and
  pooling (:func:`_conv`, :func:`_pool`).  It handles everything the model file can express
  (ternary spikes, ``v_min``, biases, delayed recurrent/feedback connections, leaky
  readout), and is itself checked against the dense training engine on the binary
  feed-forward cases;
- helpers of the end-to-end tests (:func:`events_to_dense`, :func:`apply_projection`);
- :func:`window_tables`, the simulator's convolution/pooling geometry tables by brute force.

The Numba kernels of ``eventsim/kernels.py`` have no twins here: ``tests/eventsim/
test_kernels.py`` checks each one against references written from its definition (impulse
responses of the dense projections built with :func:`_conv` and :func:`_pool`, the
canonical neuron update ``snncore.neuron.canonical_step``, ...), not copies of its loops.
"""
from __future__ import annotations

import numpy as np

from snncore import modelfile as mf


# ---------------------------------------------------------------------------------------
# the simulator's window tables, by brute force
# ---------------------------------------------------------------------------------------
def window_tables(Hi, Wi, C, Ho, Wo, kh, kw, sh, sw, ph, pw):
    """The geometry tables of ``eventsim.network.window_tables`` by brute force."""
    pos = [i // C for i in range(Hi * Wi * C)]
    ys = [p // Wi for p in range(Hi * Wi)]
    xs = [p % Wi for p in range(Hi * Wi)]

    def ranges(n_in, n_out, k, st, p):
        lo, hi = [], []
        for r in range(n_in):
            outs = [o for o in range(n_out) if o * st - p <= r <= o * st - p + k - 1]
            lo.append(outs[0] if outs else 1)
            hi.append(outs[-1] if outs else 0)
        return lo, hi

    oy0, oy1 = ranges(Hi, Ho, kh, sh, ph)
    ox0, ox1 = ranges(Wi, Wo, kw, sw, pw)
    return np.array(pos + ys + xs + oy0 + oy1 + ox0 + ox1, dtype=np.int64)


# ---------------------------------------------------------------------------------------
# a dense, time-stepped reference simulator
# ---------------------------------------------------------------------------------------
def _conv(x, W, b, stride, padding):
    """``x [B, C, H, W]`` -> ``[B, O, Ho, Wo]`` by explicit taps (cross-correlation)."""
    B, C, H, Wd = x.shape
    O, _, kh, kw = W.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.zeros((B, C, H + 2 * ph, Wd + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + H, pw:pw + Wd] = x
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (Wd + 2 * pw - kw) // sw + 1
    y = np.zeros((B, O, Ho, Wo), dtype=x.dtype)
    for oy in range(Ho):
        for ox in range(Wo):
            patch = xp[:, :, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw].reshape(B, -1)
            y[:, :, oy, ox] = patch @ W.reshape(O, -1).T
    if b is not None:
        y += b[:, None, None]
    return y


def _pool(x, kernel, stride, how):
    B, C, H, W = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    y = np.zeros((B, C, Ho, Wo), dtype=x.dtype)
    for oy in range(Ho):
        for ox in range(Wo):
            win = x[:, :, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
            if how == "max":
                y[:, :, oy, ox] = win.max(axis=(2, 3))
            else:
                total = np.zeros(win.shape[:2], dtype=x.dtype)
                for i in range(kh):          # row-major window sum, then times 1/(kh*kw),
                    for j in range(kw):      # as training.pooling (exact for spike counts)
                        total += win[:, :, i, j]
                y[:, :, oy, ox] = total * x.dtype.type(1.0 / (kh * kw))
    return y


def _dense_matrix(p):
    if isinstance(p, mf.Dense):
        return p.weight
    W = np.zeros(tuple(p.shape), dtype=p.data.dtype)
    for r in range(p.shape[0]):
        for k in range(p.indptr[r], p.indptr[r + 1]):
            W[r, p.indices[k]] += p.data[k]
    return W


def apply_projection(layer, x):
    """One projection record on ``x [B, *shape]`` (canonical layout), bias included."""
    B = x.shape[0]
    if isinstance(layer, (mf.Dense, mf.Sparse)):
        y = x.reshape(B, -1) @ _dense_matrix(layer).T
        return y + layer.bias if layer.bias is not None else y
    if isinstance(layer, mf.Conv2d):
        return _conv(x, layer.weight, layer.bias, tuple(layer.stride), tuple(layer.padding))
    if isinstance(layer, mf.AvgPool2d):
        return _pool(x, tuple(layer.kernel), tuple(layer.stride), "avg")
    if isinstance(layer, mf.MaxPool2d):
        return _pool(x, tuple(layer.kernel), tuple(layer.stride), "max")
    if isinstance(layer, mf.Flatten):
        return x.reshape(B, -1)
    raise TypeError(type(layer).__name__)


def events_to_dense(batch, T=None, dtype=np.float32):
    """Dense ``[T, B, *input_shape]`` input values of an EventBatch (values summed)."""
    T = batch.T if T is None else T
    B, n = batch.batch_size, batch.n_inputs
    x = np.zeros((T, B, n), dtype=dtype)
    b = np.repeat(np.arange(B), np.diff(batch.sample_ptr))
    np.add.at(x, (batch.times, b, batch.indices), batch.values.astype(dtype))
    return x.reshape((T, B) + tuple(batch.input_shape))


def simulate(model: mf.Model, x, dtype=np.float32):
    """Step every layer densely.  ``x``: the input values ``[T, B, *input_shape]`` fed to
    the first projection at every step (analog current, or spikes as 0/1 / +-1 values).

    Returns ``(spikes, membranes, readout)``: ``{layer: [T, B, n] int8}``,
    ``{layer: [T, B, n]}`` (u before reset), and ``[T, B, n_out]``.
    """
    dt = np.dtype(dtype).type
    x = np.asarray(x, dtype=dtype)
    T, B = x.shape[:2]
    layers = model.layers
    shapes = mf.validate(model)
    spikes = {i: np.zeros((T, B, int(np.prod(shapes[i]))), np.int8) for i in model.spiking_layers}
    membranes = {i: np.zeros((T, B, int(np.prod(shapes[i]))), dtype) for i in model.spiking_layers}
    v = {i: np.zeros((B, int(np.prod(shapes[i]))), dtype) for i in model.spiking_layers}
    readout = np.zeros((T, B, shapes[-1][0]), dtype)
    r = np.zeros((B, shapes[-1][0]), dtype)
    conn_W = [_dense_matrix(c.projection) for c in model.connections]
    for t in range(T):
        cur = x[t]
        for i, layer in enumerate(layers):
            if isinstance(layer, mf.Spiking):
                I = cur.reshape(B, -1).astype(dtype)
                for c, W in zip(model.connections, conn_W):
                    if c.target == i:
                        if t - c.delay >= 0:
                            I = I + spikes[c.source][t - c.delay].astype(dtype) @ W.T
                        if c.projection.bias is not None:
                            I = I + c.projection.bias
                beta, theta = dt(layer.beta), dt(layer.theta)
                u = beta * v[i] + I
                s = (u >= theta).astype(np.int8)
                if layer.spikes == "ternary":
                    s = s - (u <= -theta).astype(np.int8)
                sf = s.astype(dtype)
                if layer.reset == "hard":
                    vn = u * (1 - np.abs(sf)) + dt(layer.v_reset) * np.abs(sf)
                else:
                    vn = u - theta * sf
                if layer.v_min is not None:
                    vn = np.maximum(vn, dt(layer.v_min))
                v[i] = vn
                spikes[i][t], membranes[i][t] = s, u
                cur = sf.reshape((B,) + tuple(shapes[i]))
            elif isinstance(layer, mf.Readout):
                r = dt(layer.beta) * r + cur.reshape(B, -1)
                readout[t] = r
            else:
                cur = apply_projection(layer, cur)
    return spikes, membranes, readout
