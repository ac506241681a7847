"""Linear layer, Flatten and the Sequential container.

All layers map time-major arrays ``[T, B, *features]``.  Linear layers compute every step
of the batch with one matrix product over ``T*B`` rows; when the input is a stride-0 static
view (direct encoding), they compute once on ``x[0]`` and return a static view again.
"""
from __future__ import annotations

import functools
import inspect
import math

import numpy as np

from .config import get_default_dtype, is_smooth_mode
from .module import Module, Parameter, broadcast_time, is_static


def _init_rng(rng):
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be an int seed or np.random.Generator, got {type(rng).__name__}")
    return rng


def kaiming_uniform(rng, shape, fan_in, dtype):
    """PyTorch's default init for Linear/Conv weights: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Linear(Module):
    """Fully connected layer ``y_t = x_t W^T + b`` applied at every step.

    Args:
        in_features, out_features: sizes.
        bias: add a learnable bias.
        rng: seed or Generator for the initialisation (PyTorch's default uniform rule).

    Parameters: ``weight [out, in]``, ``bias [out]``.  Shapes: ``[T, B, in] -> [T, B, out]``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None):
        super().__init__()
        if int(in_features) <= 0 or int(out_features) <= 0:
            raise ValueError(f"Linear: sizes must be positive, got ({in_features}, {out_features})")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = _init_rng(rng)
        dt = get_default_dtype()
        self.weight = Parameter(kaiming_uniform(rng, (out_features, in_features), in_features, dt))
        self.bias = Parameter(kaiming_uniform(rng, (out_features,), in_features, dt)) if bias else None
        self._x = self._W = self._bits = self._src = None

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"

    def effective_weight(self) -> np.ndarray:
        """The weight the products use, ``[out, in]``: ``weight`` itself here; a
        weight-standardised subclass returns its ``W_hat`` (what export writes)."""
        return self.weight.data

    def _add_weight_grad(self, dW: np.ndarray) -> None:
        """Add ``dL/d(effective weight)`` into the parameters' gradients."""
        self.weight.grad += dW

    def forward(self, x: np.ndarray, *, binary: bool = False, source=None) -> np.ndarray:
        """``y = x W^T + b``.  Hints from ``Sequential`` (``low_memory``, training only):
        ``source``: ``x`` is, up to a reshape, the spikes of that spiking layer's last forward;
        nothing is kept and backward asks it for them again (``source.cached_spikes()``: its
        kept array, or rebuilt from its kept membrane).  ``binary``: the caller vouches that
        ``x`` holds only 0 and 1 (e.g. a max pooling of spikes): it is kept bit-packed (1/32
        of float32) and unpacked in backward.  Either way the weight gradient is computed
        against the same values, so the same bits."""
        x = self._check_input(x, feature_shape=(self.in_features,))
        W = self.effective_weight()
        if x.dtype != W.dtype:
            raise ValueError(f"{self!r}: input dtype {x.dtype} differs from weight dtype {W.dtype}")
        T, B = x.shape[:2]
        if is_static(x):
            y0 = x[0] @ W.T
            if self.bias is not None:
                y0 += self.bias.data
            y = broadcast_time(y0, T)
        else:
            x2 = x.reshape(T * B, self.in_features)
            y = x2 @ W.T
            if self.bias is not None:
                y += self.bias.data
            y = y.reshape(T, B, self.out_features)
        self._x, self._W = (x, W) if self.training else (None, None)
        self._bits = self._src = None
        if self.training and not is_static(x):
            if source is not None:
                self._src, self._x_shape, self._x = source, x.shape, None
            elif binary:
                self._bits, self._x_shape, self._x = _PackedBinary(x), x.shape, None
        return y

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True):
        if getattr(self, "_bits", None) is not None or getattr(self, "_src", None) is not None:
            return self._backward_rebuilt(grad_y, need_input_grad)
        self._require_cache("_x")
        return self.weight_backward(grad_y, self._x, need_input_grad)

    def _rebuilt_input(self) -> np.ndarray:
        """The training forward's input, ``[T * B, in]``: unpacked bits or the source's spikes."""
        x = self._bits.unpack() if self._bits is not None else self._src.cached_spikes()
        return x.reshape(-1, self.in_features)

    def _backward_rebuilt(self, grad_y: np.ndarray, need_input_grad: bool):
        """:meth:`weight_backward` against the rebuilt input (the same products in the same
        order); the input gradient is written over the rebuilt array when that is a new
        array of its dtype (no second allocation), else the array is dropped first."""
        self._require_cache("_W")
        shape = self._x_shape
        T, B = shape[:2]
        if grad_y.shape != (T, B, self.out_features):
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape}, expected "
                             f"{(T, B, self.out_features)}")
        g2 = grad_y.reshape(T * B, self.out_features)
        kept = self._src is not None and self._src._s is not None    # the source's own array
        x2 = self._rebuilt_input()
        self._add_weight_grad(g2.T @ x2)
        if self.bias is not None:
            self.bias.grad += g2.sum(axis=0)
        if not need_input_grad:
            return None
        W = self._W
        if kept or np.result_type(g2, W) != x2.dtype:
            del x2
            return (g2 @ W).reshape(shape)
        return np.matmul(g2, W, out=x2).reshape(shape)

    def weight_backward(self, grad_y: np.ndarray, x: np.ndarray, need_input_grad: bool = True,
                        bias_scale: float = 1.0):
        """:meth:`backward` with the weight gradient taken against ``x`` instead of the cached
        input: ``dW += g^T x``, ``db += bias_scale * sum g``, returns ``g W`` (the effective
        weight of the last training forward).  The online methods pass a presynaptic trace
        as ``x`` (docs/methods.md section 15).  ``x``, ``grad_y``: ``[T, B, in]``, ``[T, B, out]``.
        """
        self._require_cache("_W")
        W = self._W
        T, B = x.shape[:2]
        if grad_y.shape != (T, B, self.out_features):
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape}, expected {(T, B, self.out_features)}")
        if is_static(x):
            g0 = grad_y.sum(axis=0)
            self._add_weight_grad(g0.T @ x[0])
            gb = g0
        else:
            g2 = grad_y.reshape(T * B, self.out_features)
            self._add_weight_grad(g2.T @ x.reshape(T * B, self.in_features))
            gb = g2
        if self.bias is not None:
            db = gb.sum(axis=0)
            self.bias.grad += db if bias_scale == 1.0 else db * db.dtype.type(bias_scale)
        if not need_input_grad:
            return None
        return (grad_y.reshape(T * B, self.out_features) @ W).reshape(x.shape)

    def reset_cache(self) -> None:
        self._x = self._W = self._bits = self._src = None


class _PackedBinary:
    """A 0/1 array ``[T, B, n]`` kept as bits (``np.packbits`` of each row).

    ``unpack()`` returns the float array of the original dtype, value for value."""

    __slots__ = ("bits", "shape", "dtype")

    def __init__(self, x: np.ndarray):
        self.shape, self.dtype = x.shape, x.dtype
        x2 = x.reshape(-1, x.shape[-1])
        n = x2.shape[1]
        self.bits = np.empty((x2.shape[0], -(-n // 8)), dtype=np.uint8)
        rows = _bit_rows(n)
        for a in range(0, x2.shape[0], rows):     # row blocks: a small bool temporary
            self.bits[a:a + rows] = np.packbits(x2[a:a + rows] != 0, axis=1)

    def unpack(self) -> np.ndarray:
        n = self.shape[-1]
        out = np.empty((self.bits.shape[0], n), dtype=self.dtype)
        rows = _bit_rows(n)                          # row blocks: a small uint8 temporary
        for a in range(0, out.shape[0], rows):
            out[a:a + rows] = np.unpackbits(self.bits[a:a + rows], axis=1, count=n)
        return out.reshape(self.shape)


def _bit_rows(n: int) -> int:
    """Rows of ``n`` values per block when packing or unpacking bits (~64 K values)."""
    return max(1, (1 << 16) // max(n, 1))


class Flatten(Module):
    """``[T, B, *features] -> [T, B, prod(features)]`` in C order (as PyTorch and NIR)."""

    def __init__(self):
        super().__init__()
        self._shape = None

    def __repr__(self) -> str:
        return "Flatten()"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        if x.ndim < 3:
            raise ValueError(f"{self!r}: expected input [T, B, ...features], got shape {x.shape}")
        self._shape = x.shape
        T, B = x.shape[:2]
        if is_static(x):
            return broadcast_time(x[0].reshape(B, -1), T)
        return x.reshape(T, B, -1)

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True):
        self._require_cache("_shape")
        return grad_y.reshape(self._shape) if need_input_grad else None


class Sequential(Module):
    """A chain of layers; ``forward`` runs them in order, ``backward`` in reverse.

    ``backward(grad_y)`` returns ``dL/dx`` for the network input; pass
    ``need_input_grad=False`` to skip that last (often large) product when training.

    ``time_weights``: the decoder weights ``a[T]`` (float64) the network was trained with
    (``fit(..., decoder="two")`` sets them), or None for the uniform mean.  When set they are
    part of ``state_dict()`` (key ``"time_weights"``), so checkpoints keep them, and
    ``evaluate`` and ``export`` use them unless given other weights.
    """

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, not a layer")
        self.layers = list(layers)
        self._time_weights = None

    @property
    def time_weights(self):
        """Decoder weights ``a[T]`` (float64) or None (uniform)."""
        return self._time_weights

    @time_weights.setter
    def time_weights(self, value) -> None:
        if value is None:
            self._time_weights = None
            return
        a = np.array(value, dtype=np.float64)
        if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
            raise ValueError(f"Sequential.time_weights: must be a non-empty 1-D array of finite "
                             f"numbers [T], got shape {a.shape}")
        self._time_weights = a

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(l) for l in self.layers)
        return f"Sequential(\n  {inner}\n)"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def named_parameters(self, prefix: str = ""):
        for i, layer in enumerate(self.layers):
            yield from layer.named_parameters(f"{prefix}{i}.")

    def named_buffers(self, prefix: str = ""):
        for i, layer in enumerate(self.layers):
            yield from layer.named_buffers(f"{prefix}{i}.")
        if self._time_weights is not None:
            yield f"{prefix}time_weights", self._time_weights

    def load_state_dict(self, state: dict) -> None:
        """As :meth:`Module.load_state_dict`; the state's ``"time_weights"`` (present or
        absent) replaces the network's own."""
        old = self._time_weights
        self.time_weights = state["time_weights"] if "time_weights" in state else None
        try:
            super().load_state_dict(state)
        except Exception:
            self._time_weights = old        # a refused state changes nothing
            raise

    def train(self, mode: bool = True) -> "Sequential":
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"Sequential: input must be time-major [T, B, ...features], got shape {x.shape}")
        k = self._chunk_steps(x.shape[0], x.shape[1])
        if k:
            return self._forward_chunked(x, k)
        lean = self.low_memory and self.training
        binary = False                 # the current x holds only 0/1 (a spiking output)
        source = None                  # the spiking layer whose output x is (up to a reshape)
        prev = None
        for layer in self.layers:
            kw = _forward_hints(layer, prev, binary, source, lean)
            x_next = layer.forward(x, **kw) if kw else layer.forward(x)
            binary = _emits_binary(layer, binary)
            source = _spike_source(layer, binary, source)
            x, prev = x_next, layer
        return x

    #: training forwards keep only what backward cannot rebuild cheaply (the default):
    #: plain spiking layers keep only their membrane (backward rebuilds the spikes as
    #: ``1[u >= theta]`` inside its kernel and writes dL/dI over the membrane), a Linear fed
    #: by such a layer keeps nothing of its input (backward asks the layer for its spikes),
    #: a Linear fed by other binary values (max pooling of spikes) keeps them bit-packed,
    #: and backward frees each layer's cache as it goes.  Gradients are the same bit for
    #: bit.  False: every layer keeps its full cache (the earlier behaviour).
    low_memory: bool = True

    # -- chunked inference ------------------------------------------------------------------
    #: eval-mode forward in time chunks of about this many rows (steps x batch); 0 = off
    #: (the whole sequence at once, every layer's [T, B, ...] output alive at its turn)
    eval_chunk_rows: int = 512

    def _chunk_steps(self, T: int, B: int) -> int:
        """Steps per chunk of the eval-mode forward, or 0 for the whole-sequence forward
        (training mode, smooth mode, a recording layer, a layer of unknown kind, or a single
        chunk anyway)."""
        rows = int(self.eval_chunk_rows)
        if rows <= 0 or self.training or is_smooth_mode():
            return 0
        for layer in self.layers:
            if layer.training or getattr(layer, "record", False) or _time_kind(layer) is None:
                return 0
        k = max(1, -(-rows // max(B, 1)))
        return k if k < T else 0

    def _forward_chunked(self, x: np.ndarray, k: int) -> np.ndarray:
        """Eval forward of ``x [T, B, ...]`` ``k`` steps at a time: only one chunk of every
        intermediate array is alive; the leading stateless layers still see a static input
        whole (computed once per image).  Equal to the whole-sequence forward bit for bit
        when each matrix product computes a row independently of the number of rows (BLAS
        does for products of more than ~1e6 multiply-adds, hence the chunk of
        ``eval_chunk_rows`` rows; exact sums, e.g. dyadic values, are equal at any size)."""
        T, B = x.shape[:2]
        i = 0
        while i < len(self.layers) and is_static(x) and _time_kind(self.layers[i]) == "local":
            x = self.layers[i].forward(x)
            i += 1
        rest = self.layers[i:]
        for layer in rest:
            if _time_kind(layer) == "state":
                layer.reset_state(B)
        out = None
        try:
            for t0 in range(0, T, k):
                xc = x[t0:t0 + k]
                for layer in rest:
                    if _time_kind(layer) == "local":
                        xc = layer.forward(xc)
                    elif "reuse" in _forward_steps_params(type(layer)):
                        xc = layer.forward_steps(xc, reuse=True)   # consumed within the chunk
                    else:
                        xc = layer.forward_steps(xc)
                if out is None:
                    out = np.empty((T,) + xc.shape[1:], dtype=xc.dtype)
                out[t0:t0 + k] = xc
        finally:
            for layer in rest:               # drop the carried state (membranes [B, ...])
                if _time_kind(layer) == "state":
                    layer.reset_state(B)
        return x if out is None else out

    def backward(self, grad_y: np.ndarray, need_input_grad: bool = True):
        """Backpropagate ``dL/dy [T, B, n_out]``; returns ``dL/dx`` (None if not needed)."""
        stop = 0
        if not need_input_grad:
            # layers before the first one with parameters need no backward at all
            stop = next((i for i, l in enumerate(self.layers) if any(True for _ in l.parameters())),
                        len(self.layers) - 1)
        g = grad_y
        release = self.low_memory
        for i in range(len(self.layers) - 1, stop - 1, -1):
            layer = self.layers[i]
            if i == stop and not need_input_grad and _accepts_flag(layer):
                layer.backward(g, need_input_grad=False)
                g = None
            else:
                g = layer.backward(g)
            if release:
                layer.reset_cache()
            if g is None:
                break
        if release:
            for layer in self.layers[:stop]:
                layer.reset_cache()
        return None if not need_input_grad else g

    def reset_cache(self) -> None:
        for layer in self.layers:
            layer.reset_cache()

    # -- step-wise execution ---------------------------------------------------------------
    def reset_state(self, batch_size: int) -> None:
        """Start a sequence of ``batch_size`` samples in every layer."""
        super().reset_state(batch_size)
        for layer in self.layers:
            layer.reset_state(batch_size)

    def step(self, x_t: np.ndarray) -> np.ndarray:
        """One time step through every layer: ``x_t [B, ...] -> y_t [B, n_out]``; calling it
        for ``t = 0..T-1`` after :meth:`reset_state` gives ``forward(x)[t]``."""
        for layer in self.layers:
            x_t = layer.step(x_t)
        return x_t

    def step_backward(self, grad_y_t: np.ndarray) -> np.ndarray:
        """Every layer's :meth:`Module.step_backward`, last to first."""
        for layer in reversed(self.layers):
            grad_y_t = layer.step_backward(grad_y_t)
        return grad_y_t


def _forward_hints(layer: Module, prev, binary: bool, source, lean: bool) -> dict:
    """Keyword hints for ``layer.forward`` from the layer before it: ``donate`` (a spiking
    layer may write over a weight or normalisation layer's fresh output, which that layer
    does not keep), ``lean`` / ``source`` / ``binary`` (with ``low_memory`` in training)."""
    from .conv import Conv2d
    from .neurons import LIF
    from .norm import _BatchNorm
    kw = {}
    if isinstance(layer, LIF) and type(layer).forward is LIF.forward:
        if isinstance(prev, (Linear, Conv2d, _BatchNorm)):
            kw["donate"] = True
        if lean and not getattr(layer, "record", False):   # a recorded membrane stays intact
            kw["lean"] = True
    elif lean and isinstance(layer, Linear):
        params = _forward_params(type(layer))
        if source is not None and "source" in params:
            kw["source"] = source
        elif binary and "binary" in params:
            kw["binary"] = True
    return kw


def _spike_source(layer: Module, binary: bool, source):
    """The spiking layer whose output ``layer``'s output is (up to a reshape), or None: a
    binary LIF itself (it can give its spikes again, :meth:`LIF.cached_spikes`), or the
    source of a Flatten's input."""
    from .neurons import LIF
    if isinstance(layer, LIF):
        return layer if binary else None
    if isinstance(layer, Flatten):
        return source
    return None


@functools.lru_cache(maxsize=None)
def _forward_steps_params(cls) -> tuple:
    return tuple(inspect.signature(cls.forward_steps).parameters)


@functools.lru_cache(maxsize=None)
def _forward_params(cls) -> tuple:
    return tuple(inspect.signature(cls.forward).parameters)


def _emits_binary(layer: Module, input_binary: bool) -> bool:
    """Whether ``layer``'s output holds only 0 and 1: a binary spiking layer with amplitude 1
    (not smooth mode), or Flatten / MaxPool of such an output."""
    from .neurons import LIF
    from .pooling import MaxPool2d
    if isinstance(layer, LIF):
        return (layer.spikes == "binary" and layer._amplitude_is_one()
                and not is_smooth_mode() and type(layer).forward is LIF.forward)
    if isinstance(layer, (Flatten, MaxPool2d)):
        return input_binary
    return False


def _time_kind(layer: Module):
    """How the chunked eval forward runs ``layer``: "local" (step t of the output depends on
    step t of the input only: weight layers, pooling, BatchNorm and Dropout in eval mode),
    "state" (neurons: :meth:`Module.forward_steps` after ``reset_state``), or None (unknown:
    the network runs whole)."""
    return _class_time_kind(type(layer))


@functools.lru_cache(maxsize=None)
def _class_time_kind(cls):
    from .conv import Conv2d
    from .dropout import Dropout
    from .klif import KLIF
    from .neurons import LIF
    from .norm import _BatchNorm
    from .pooling import _Pool2d
    from .recurrent import _RecurrentNeuron
    from .ws import Scale
    if issubclass(cls, (Linear, Flatten, Conv2d, _Pool2d, _BatchNorm, Dropout, Scale)):
        return "local"
    if issubclass(cls, (LIF, KLIF, _RecurrentNeuron)):
        return "state"
    return None


def _accepts_flag(layer: Module) -> bool:
    """Whether ``layer.backward`` takes ``need_input_grad`` (decided once per layer class)."""
    return _class_accepts_flag(type(layer))


@functools.lru_cache(maxsize=None)
def _class_accepts_flag(cls) -> bool:
    return "need_input_grad" in inspect.signature(cls.backward).parameters
