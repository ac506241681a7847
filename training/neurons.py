"""Spiking neurons of the dense engine: LIF and IF (docs/methods.md sections 2-5).

The canonical update (both engines implement it; ``u >= theta`` is the threshold test)::

    u_t = beta * v_{t-1} + gain * I_t          charge  (gain = 1/tau in the tau form, else 1)
    s_t = 1[u_t >= theta]                      fire
    v_t = u_t (1 - s_t) + v_reset s_t          hard reset   (or)   v_t = u_t - theta s_t

:mod:`snncore.neuron` writes that update once (a scalar Numba function and its NumPy
twin :func:`canonical_step`, re-exported here); the classes run it over all T steps at once
in a fused Numba kernel (``kernels.lif_forward``, which inlines the scalar form) and keep the
membrane ``u`` for the hand-derived backward pass (``kernels.lif_backward``).
"""
from __future__ import annotations

import numpy as np

from snncore.neuron import RESET_CODES, NeuronParams, canonical_step

from . import kernels, msg, surrogates
from .config import get_default_dtype, is_smooth_mode
from .layers import _init_rng
from .module import Module, Parameter, is_static

_RESETS = RESET_CODES


class LIF(Module):
    """Leaky integrate-and-fire neurons, element-wise over ``[T, B, *features]``.

    Args:
        beta: decay per step in [0, 1] (snnTorch form: ``u = beta v + I``); a float, or an
            array of the feature shape for fixed per-neuron decays (``training.to_network``).
        tau: time constant in steps, > 1 for LIF or ``inf`` for IF (SpikingJelly form with
            ``decay_input``: ``beta = 1 - 1/tau`` and the input is scaled by ``1/tau``).
            Give ``beta`` or ``tau``, not both; with neither, ``tau = 2``.
        threshold: firing threshold theta > 0 (a float, or an array of the feature shape).
        reset: "hard" (set to ``v_reset``) or "subtract" (subtract theta).
        v_reset: membrane value after a hard reset.
        surrogate: a :class:`training.surrogates.Surrogate`, a name, or ``(name, alpha)``.
        detach_reset: treat the spike in the reset term as a constant in backward.
        spikes: "binary" (s in {0, 1}) or "ternary" (s in {-1, 0, 1}: ``1[u >= theta] -
            1[u <= -theta]``, reset on either polarity).
        amplitude: the output is ``amplitude * s`` (> 0; folded into the next weight layer at
            export).  learn_amplitude: make it a Parameter named ``amplitude`` (no weight
            decay; ``dL/da = sum gOut * s``).  per_channel: one amplitude per channel (the
            first feature axis, axis 2 of ``[T, B, C, ...]``) instead of one per layer.
        ternary_grad: ternary ``ds/du``: "sum" (``g'(u - theta) + g'(u + theta)``) or
            "window" (``1[|u| <= 2 theta] / (2 theta)``, the Ternary Spike code's).
        learn_beta: learn the decay, PLIF form: ``beta = sigmoid(w)`` with ``w`` held in the
            Parameter named ``beta`` (0 < beta < 1 required).  In the tau form the input gain
            stays at its initial ``1/tau``; only the decay learns.
        learn_threshold: learn theta, held directly in the Parameter named ``threshold``;
            values below ``THETA_MIN`` are raised to it before each training forward pass.
        per_neuron: one learned beta/threshold per feature element (shape ``features``)
            instead of one per layer.
        features: the feature shape ``[C, H, W]`` or ``[N]`` (int or tuple); needed with
            ``per_channel`` or ``per_neuron`` (taken from an array ``beta``/``threshold``).
        msg_p: MSG masking probability in [0, 1): in backward each surrogate derivative is
            kept with probability ``1 - p`` (``training.msg``); the last mask is
            ``.msg_mask`` (bool ``[T, B, ...]``, True where kept).  ``p = 0`` draws nothing.
        msg_rescale: divide the kept derivatives by ``1 - p``.
        rng: seed or Generator for the MSG masks (as ``Linear``'s ``rng``; give each layer
            its own, layers with the same seed and shape draw the same masks).

    Shapes: input current ``[T, B, ...]`` -> spikes ``[T, B, ...]`` (same dtype, values in
    {0, 1} or {-1, 0, 1} times the amplitude; in smooth mode the surrogate primitive's values).
    """

    record = False  # set True to keep ``.membrane [T, B, ...]`` after each forward (plots)
    THETA_MIN = 1e-3  # floor of a learned threshold

    def __init__(self, beta=None, tau: float | None = None,
                 threshold=1.0, reset: str = "hard", v_reset: float = 0.0,
                 surrogate="atan", detach_reset: bool = False, *, spikes: str = "binary",
                 amplitude: float = 1.0, learn_amplitude: bool = False, per_channel: bool = False,
                 ternary_grad: str = "sum", learn_beta: bool = False,
                 learn_threshold: bool = False, per_neuron: bool = False, features=None,
                 msg_p: float = 0.0, msg_rescale: bool = False, rng=None):
        super().__init__()
        if beta is not None and tau is not None:
            raise ValueError("LIF: give beta or tau, not both")
        if beta is None and tau is None:
            tau = 2.0
        if tau is not None:
            tau = float(tau)
            if not tau >= 1.0:
                raise ValueError(f"LIF: tau must be >= 1 (in steps; inf for IF), got {tau}")
            # tau = inf is IF in the tau form: no leak and, as SpikingJelly's IF, no input
            # scaling (1/tau would be 0 and the layer would never charge)
            beta, gain = (1.0, 1.0) if tau == np.inf else (1.0 - 1.0 / tau, 1.0 / tau)
        else:
            gain = 1.0
        beta_arr = np.asarray(beta, dtype=np.float64)
        theta_arr = np.asarray(threshold, dtype=np.float64)
        if not (np.all(beta_arr >= 0.0) and np.all(beta_arr <= 1.0)):
            raise ValueError(f"LIF: beta must lie in [0, 1], got {beta}")
        if not (np.all(np.isfinite(theta_arr)) and np.all(theta_arr > 0)):
            raise ValueError(f"LIF: threshold must be a positive number, got {threshold}")
        if reset not in _RESETS:
            raise ValueError(f"LIF: reset must be 'hard' or 'subtract', got {reset!r}")
        if not np.isfinite(v_reset):
            raise ValueError(f"LIF: v_reset must be finite, got {v_reset}")
        if spikes not in ("binary", "ternary"):
            raise ValueError(f"LIF: spikes must be 'binary' or 'ternary', got {spikes!r}")
        if ternary_grad not in ("sum", "window"):
            raise ValueError(f"LIF: ternary_grad must be 'sum' or 'window', got {ternary_grad!r}")
        if not (np.isfinite(amplitude) and amplitude > 0):
            raise ValueError(f"LIF: amplitude must be a positive number, got {amplitude!r}")
        self.features = _feature_shape(features, beta_arr, theta_arr)
        if (per_channel or per_neuron) and self.features is None:
            raise ValueError("LIF: per_channel/per_neuron need features= (the feature shape "
                             "[C, H, W] or [N])")
        self.tau = tau
        self.input_gain = gain
        self.reset = reset
        self.v_reset = float(v_reset)
        self.surrogate = surrogates.get(surrogate)
        self.detach_reset = bool(detach_reset)
        self.spikes = spikes
        self.ternary_grad = ternary_grad
        self.per_neuron = bool(per_neuron)
        self.learn_beta = bool(learn_beta)
        self.learn_threshold = bool(learn_threshold)
        dt = get_default_dtype()
        shape = self.features if per_neuron else (1,)
        if learn_beta:
            if not (np.all(beta_arr > 0.0) and np.all(beta_arr < 1.0)):
                raise ValueError(f"LIF: learn_beta needs 0 < beta < 1 (beta = sigmoid(w)), "
                                 f"got {beta}")
            w = np.log(beta_arr) - np.log1p(-beta_arr)   # logit
            self.beta = Parameter(np.broadcast_to(w, shape).astype(dt), weight_decay=False)
        else:
            self.beta = float(beta_arr) if beta_arr.ndim == 0 else beta_arr.copy()
        if learn_threshold:
            self.threshold = Parameter(np.broadcast_to(theta_arr, shape).astype(dt),
                                       weight_decay=False)
        else:
            self.threshold = float(theta_arr) if theta_arr.ndim == 0 else theta_arr.copy()
        self.per_channel = bool(per_channel)
        self.learn_amplitude = bool(learn_amplitude)
        a_shape = (self.features[0],) if per_channel else (1,)
        if learn_amplitude:
            self.amplitude = Parameter(np.full(a_shape, amplitude, dtype=dt), weight_decay=False)
        elif per_channel:
            self.amplitude = np.full(a_shape, float(amplitude))
        else:
            self.amplitude = float(amplitude)
        self._msg_p = msg.check_p(msg_p)
        self.msg_rescale = bool(msg_rescale)
        self.rng = _init_rng(rng)
        self.rng_given = rng is not None   # else fit gives it a stream of its own
        self.msg_mask = None
        self._u = self._s = None
        self._batch = None
        self.v = self.u = None     # step-wise state (reset_state / step)

    # -- options ----------------------------------------------------------------------------
    @property
    def msg_p(self) -> float:
        """MSG masking probability in [0, 1) (set by ``MSGSchedule`` each epoch)."""
        return self._msg_p

    @msg_p.setter
    def msg_p(self, value) -> None:
        self._msg_p = msg.check_p(value)

    @property
    def plain(self) -> bool:
        """True when the layer runs the original fused binary kernels (no new option on)."""
        return (self.spikes == "binary" and isinstance(self.beta, float)
                and isinstance(self.threshold, float) and self._amplitude_is_one()
                and self._msg_p == 0.0)

    def _amplitude_is_one(self) -> bool:
        return isinstance(self.amplitude, float) and self.amplitude == 1.0

    def beta_value(self) -> np.ndarray:
        """The decay in float64: ``[1]`` or the feature shape (``sigmoid(w)`` when learned)."""
        if isinstance(self.beta, Parameter):
            w = self.beta.data.astype(np.float64)
            return 0.5 * (1.0 + np.tanh(0.5 * w))
        return np.atleast_1d(np.asarray(self.beta, dtype=np.float64))

    def threshold_value(self) -> np.ndarray:
        """The threshold in float64: ``[1]`` or the feature shape."""
        th = self.threshold.data if isinstance(self.threshold, Parameter) else self.threshold
        return np.atleast_1d(np.asarray(th, dtype=np.float64))

    def amplitude_value(self) -> np.ndarray:
        """The output amplitude in float64: ``[1]`` or ``[C]``."""
        a = self.amplitude.data if isinstance(self.amplitude, Parameter) else self.amplitude
        return np.atleast_1d(np.asarray(a, dtype=np.float64))

    @property
    def params(self) -> NeuronParams:
        """The canonical parameters (the input gain and the amplitude are folded into weights
        at export); beta and theta are floats, or flat float64 arrays per neuron."""
        b, th = self.beta_value().reshape(-1), self.threshold_value().reshape(-1)
        return NeuronParams(beta=float(b[0]) if b.size == 1 else b,
                            theta=float(th[0]) if th.size == 1 else th, reset=self.reset,
                            v_reset=self.v_reset, spikes=self.spikes)

    def __repr__(self) -> str:
        if self.tau is not None:
            form = f"tau={self.tau}"
        elif isinstance(self.beta, float):
            form = f"beta={self.beta}"
        else:
            form = "beta=per-neuron"
        th = self.threshold if isinstance(self.threshold, float) else "..."
        extra = "" if self.spikes == "binary" else ", spikes='ternary'"
        return (f"{type(self).__name__}({form}, threshold={th}, reset={self.reset!r}, "
                f"surrogate={self.surrogate.name}({self.surrogate.alpha}){extra})")

    # -- passes -----------------------------------------------------------------------------
    def forward(self, x: np.ndarray, *, donate: bool = False, lean: bool = False) -> np.ndarray:
        """Spikes ``[T, B, ...]`` of the input current ``x [T, B, ...]``.

        ``donate``: the caller gives ``x`` up (``Sequential`` does for a weight layer's fresh
        output): the kernel writes the membrane over it instead of a new array.  ``lean``
        (training, plain binary layer, no smooth mode): keep only the membrane for backward;
        backward rebuilds the spikes as ``1[u >= theta]``, writes ``dL/dI`` over the
        membrane and so consumes the cache (``Sequential.low_memory``)."""
        x = self._check_input(x)
        if x.ndim < 3:
            raise ValueError(f"{self!r}: expected input [T, B, ...features], got shape {x.shape}")
        if not self.plain:
            return self._forward_ext(x, donate)
        T = x.shape[0]
        dt = x.dtype.type
        # a static (stride-0) input is passed as one row: the kernel reads it at every step
        current = x[:1].reshape(1, -1) if is_static(x) else x.reshape(T, -1)
        if self.input_gain != 1.0:
            current = current * dt(self.input_gain)
        current = np.ascontiguousarray(current)
        N = current.shape[1]
        spikes = np.empty((T, N), dtype=x.dtype)
        membrane = _membrane_buffer(x, current, donate)
        kernels.lif_forward_parallel(current, dt(self.beta), dt(self.threshold),
                                     _RESETS[self.reset], dt(self.v_reset), self.surrogate.code,
                                     dt(self.surrogate.alpha), is_smooth_mode(), spikes, membrane)
        if self.training:
            self._u = membrane
            self._s = None if (lean and not is_smooth_mode()) else spikes
        else:
            self._u = self._s = None
        self.membrane = membrane.reshape(x.shape) if self.record else None
        return spikes.reshape(x.shape)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        self._require_cache("_u")
        if not self.plain:
            return self._backward_ext(grad_y)
        if self._s is None:
            return self._backward_lean(grad_y)
        T = grad_y.shape[0]
        g = np.ascontiguousarray(grad_y.reshape(T, -1), dtype=self._u.dtype)
        if g.shape != self._u.shape:
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape} does not match the "
                             f"forward output")
        dt = self._u.dtype.type
        grad_current = np.empty_like(self._u)
        kernels.lif_backward_parallel(g, self._u, self._s, dt(self.beta), dt(self.threshold),
                                      _RESETS[self.reset], dt(self.v_reset), self.surrogate.code,
                                      dt(self.surrogate.alpha), self.detach_reset, grad_current)
        if self.input_gain != 1.0:
            grad_current *= dt(self.input_gain)
        return grad_current.reshape(grad_y.shape)

    def _backward_lean(self, grad_y: np.ndarray) -> np.ndarray:
        """:meth:`backward` after a ``lean`` forward: the kernel rebuilds each step's spikes
        as ``1[u >= theta]`` and writes ``dL/dI`` over the membrane, which is returned (the
        cache is consumed).  The same arithmetic as the full-cache kernel, so the same bits."""
        u, self._u = self._u, None
        T, N = u.shape
        dt = u.dtype.type
        g = np.ascontiguousarray(grad_y.reshape(T, -1), dtype=u.dtype)
        if g.shape != u.shape:
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape} does not match the "
                             f"forward output")
        kernels.lif_backward_inplace_parallel(g, u, dt(self.beta), dt(self.threshold),
                                              _RESETS[self.reset], dt(self.v_reset),
                                              self.surrogate.code, dt(self.surrogate.alpha),
                                              self.detach_reset)
        if self.input_gain != 1.0:
            u *= dt(self.input_gain)
        return u.reshape(grad_y.shape)

    def cached_spikes(self) -> np.ndarray:
        """The spikes ``[T, N]`` of the last training forward, for a weight layer fed by this
        layer (``Sequential.low_memory``): the kept array, or after a ``lean`` forward a new
        array rebuilt from the kept membrane as ``1[u >= theta]`` (the forward's test, so the
        same values).  Call before this layer's own backward, which consumes the membrane."""
        self._require_cache("_u")
        if self._s is not None:
            return self._s
        u = self._u
        out = np.empty_like(u)
        kernels.threshold_parallel(u, u.dtype.type(self.threshold), out)
        return out

    def _check_features(self, shape) -> None:
        if self.features is not None and tuple(shape[2:]) != self.features:
            raise ValueError(f"{self!r}: expected input [T, B, "
                             f"{', '.join(map(str, self.features))}], got shape {tuple(shape)}")

    def _flat_params(self, dtype) -> tuple[np.ndarray, np.ndarray]:
        """beta and theta as contiguous ``[F]`` arrays of ``dtype`` (F = 1 per layer)."""
        if self.learn_threshold and self.training:
            np.maximum(self.threshold.data, self.THETA_MIN, out=self.threshold.data)
        beta = np.ascontiguousarray(self.beta_value().reshape(-1), dtype=dtype)
        theta = np.ascontiguousarray(self.threshold_value().reshape(-1), dtype=dtype)
        return beta, theta

    def _amplitude_view(self, ndim: int, dtype) -> np.ndarray:
        """The amplitude broadcastable to ``[T, B, *features]``."""
        a = self.amplitude_value().astype(dtype)
        return a.reshape((1, 1, -1) + (1,) * (ndim - 3)) if self.per_channel else a.reshape(())

    def _forward_ext(self, x: np.ndarray, donate: bool = False) -> np.ndarray:
        self._check_features(x.shape)
        T = x.shape[0]
        dt = x.dtype.type
        current = x[:1].reshape(1, -1) if is_static(x) else x.reshape(T, -1)
        if self.input_gain != 1.0:
            current = current * dt(self.input_gain)
        current = np.ascontiguousarray(current)
        beta, theta = self._flat_params(x.dtype)
        if current.shape[1] % max(beta.shape[0], theta.shape[0]):
            raise ValueError(f"{self!r}: {beta.shape[0]} per-neuron parameters do not match "
                             f"input shape {x.shape}")
        spikes = np.empty((T, current.shape[1]), dtype=x.dtype)
        membrane = _membrane_buffer(x, current, donate)
        kernels.lif_forward_ext_parallel(current, beta, theta, _RESETS[self.reset],
                                         dt(self.v_reset), self.surrogate.code,
                                         dt(self.surrogate.alpha), is_smooth_mode(),
                                         self.spikes == "ternary", self.ternary_grad == "window",
                                         spikes, membrane)
        self._u, self._s = (membrane, spikes) if self.training else (None, None)
        self.membrane = membrane.reshape(x.shape) if self.record else None
        s = spikes.reshape(x.shape)
        if self._amplitude_is_one():
            return s
        return s * self._amplitude_view(x.ndim, x.dtype)

    def _draw_mask(self, shape) -> np.ndarray | None:
        """The MSG keep mask of the membrane's shape (None when ``msg_p == 0``: no draw)."""
        if self._msg_p == 0.0:
            self.msg_mask = None
            return None
        self.msg_mask = msg.keep_mask(self.rng, shape, self._msg_p)
        return self.msg_mask

    def _backward_ext(self, grad_y: np.ndarray) -> np.ndarray:
        T = grad_y.shape[0]
        dtype = self._u.dtype
        if grad_y.size != self._u.size:
            raise ValueError(f"{self!r}: gradient shape {grad_y.shape} does not match the "
                             f"forward output")
        s_full = self._s.reshape(grad_y.shape)
        if isinstance(self.amplitude, Parameter):
            prod = (grad_y * s_full).astype(np.float64)
            axes = tuple(i for i in range(grad_y.ndim) if not (self.per_channel and i == 2))
            self.amplitude.grad += prod.sum(axis=axes).reshape(self.amplitude.shape).astype(dtype)
        if not self._amplitude_is_one():
            grad_y = grad_y * self._amplitude_view(grad_y.ndim, dtype)
        g = np.ascontiguousarray(grad_y.reshape(T, -1), dtype=dtype)
        mask = self._draw_mask(grad_y.shape)
        mask2 = np.zeros((0, 0), dtype=np.bool_) if mask is None else mask.reshape(T, -1)
        scale = 1.0 / (1.0 - self._msg_p) if (mask is not None and self.msg_rescale) else 1.0
        beta, theta = self._flat_params(dtype)
        dt = dtype.type
        grad_current = np.empty_like(self._u)
        N = g.shape[1]
        grad_beta = np.empty(N, dtype=dtype)
        grad_theta = np.empty(N, dtype=dtype)
        kernels.lif_backward_ext_parallel(g, self._u, self._s, beta, theta, _RESETS[self.reset],
                                          dt(self.v_reset), self.surrogate.code,
                                          dt(self.surrogate.alpha), self.detach_reset,
                                          self.spikes == "ternary", self.ternary_grad == "window",
                                          mask2, dt(scale), grad_current, grad_beta, grad_theta)
        if isinstance(self.beta, Parameter):
            b = self.beta_value()
            gb = self._reduce(grad_beta, self.beta.shape)
            self.beta.grad += (gb * b * (1.0 - b)).astype(dtype)   # d sigmoid(w)/dw
        if isinstance(self.threshold, Parameter):
            self.threshold.grad += self._reduce(grad_theta, self.threshold.shape).astype(dtype)
        if self.input_gain != 1.0:
            grad_current *= dt(self.input_gain)
        return grad_current.reshape(grad_y.shape)

    def _reduce(self, per_row: np.ndarray, shape) -> np.ndarray:
        """Sum a per-neuron ``[B * F]`` gradient over the batch (and features for ``[1]``)."""
        per = per_row.astype(np.float64).reshape(-1, int(np.prod(shape)))
        return per.sum(axis=0).reshape(shape)

    def reset_cache(self) -> None:
        self._u = self._s = None

    # -- step-wise execution -------------------------------------------------------------------
    def reset_state(self, batch_size: int) -> None:
        """Start a sequence: the membrane ``v_{-1} = 0`` is allocated at the first step."""
        super().reset_state(batch_size)
        self._batch = int(batch_size)
        self.v = self.u = None
        self._chunk_bufs = None

    def step(self, x_t: np.ndarray) -> np.ndarray:
        """One step of the canonical update (:func:`canonical_step`) on ``x_t [B, ...]``.

        State: ``self.v`` (membrane after reset, ``[B, ...]``) carried between steps and
        ``self.u`` (membrane before reset of this step, kept for :meth:`step_backward`).
        Exactly ``forward(x)[t]``: the same operations in the same order as the fused kernel.
        """
        if is_smooth_mode():
            raise ValueError(f"{self!r}: step-wise execution has no smooth mode")
        x_t = self._check_input(np.asarray(x_t)[None])[0]
        self._check_features((None, None) + x_t.shape[1:])
        if getattr(self, "_batch", None) is None:
            raise RuntimeError(f"{self!r}: call reset_state(batch_size) before step")
        if x_t.shape[0] != self._batch:
            raise ValueError(f"{self!r}: step input has batch {x_t.shape[0]}, reset_state "
                             f"was given {self._batch}")
        dt = x_t.dtype
        current = x_t.reshape(x_t.shape[0], -1)
        if self.input_gain != 1.0:
            current = current * dt.type(self.input_gain)
        beta, theta = self._flat_params(dt)
        if current.shape[1] % max(beta.shape[0], theta.shape[0]):
            raise ValueError(f"{self!r}: {beta.shape[0]} per-neuron parameters do not match "
                             f"input shape {x_t.shape}")
        p = NeuronParams(beta=beta, theta=theta, reset=self.reset, v_reset=self.v_reset,
                         v_min=getattr(self, "v_min", None), spikes=self.spikes)
        v_prev = np.zeros_like(current) if self.v is None else self.v.reshape(current.shape)
        u, s, v = canonical_step(v_prev, current, p)
        self.u, self.v = u.reshape(x_t.shape), v.reshape(x_t.shape)
        s = s.reshape(x_t.shape)
        if self._amplitude_is_one():
            return s
        return s * self._amplitude_view(s.ndim + 1, dt)[0]

    def forward_steps(self, x: np.ndarray, *, reuse: bool = False) -> np.ndarray:
        """Eval forward of the next ``k`` steps, ``x [k, B, ...] -> s [k, B, ...]``: the
        membrane carried over from the previous call (``self.v``) enters as ``beta * v``
        added to the first step's current, and the fused kernel starts from ``v = 0``
        (``0 + (I + beta v)`` is the kernel's own ``beta v + I``, so the bits are those of
        :meth:`forward` on the whole sequence); one-step chunks need only the threshold test.
        The membrane is written over the layer's copy of the current, so a chunk costs two
        ``[k, B, ...]`` arrays.  ``reuse`` (``Sequential``'s chunked forward): keep those
        arrays for the next call, which overwrites the returned spikes (no new pages per
        chunk).  Layers that override ``forward`` or ``step`` (``ClampedLIF``), training
        mode and smooth mode use the step-wise default."""
        if (type(self).forward is not LIF.forward or type(self).step is not LIF.step
                or is_smooth_mode() or self.training):
            return super().forward_steps(x)
        x = self._check_input(x)
        if getattr(self, "_batch", None) is None:
            raise RuntimeError(f"{self!r}: call reset_state(batch_size) before forward_steps")
        if x.ndim < 3 or x.shape[1] != self._batch:
            raise ValueError(f"{self!r}: forward_steps input {x.shape}, expected [k, "
                             f"{self._batch}, ...features] (the batch given to reset_state)")
        self._check_features(x.shape)
        k, dt = x.shape[0], x.dtype.type
        beta, theta = self._flat_params(x.dtype)
        src = x[:1].reshape(1, -1) if is_static(x) else x.reshape(k, -1)
        N = src.shape[1]
        if N % max(beta.shape[0], theta.shape[0]):
            raise ValueError(f"{self!r}: {beta.shape[0]} per-neuron parameters do not match "
                             f"input shape {x.shape}")
        cur, spikes, mask = self._chunk_buffers(k, N, x.dtype, reuse)
        self._load_current(src, beta, cur, spikes[0])
        if k == 1:                        # u = 0 * beta + cur: the threshold test alone
            self._fire(cur, theta, spikes, mask)
        else:
            self._kernel_forward(cur, beta, theta, spikes, cur)      # membrane over cur
        v = self._membrane_after_reset(cur[-1], spikes[-1], theta, mask)
        self.v = (v.copy() if k > 1 and not reuse else v).reshape(x.shape[1:])
        s = spikes.reshape(x.shape)
        if self._amplitude_is_one():
            return s
        return s * self._amplitude_view(x.ndim, x.dtype)

    def _chunk_buffers(self, k: int, N: int, dtype, reuse: bool):
        """Current/membrane ``[k, N]``, spikes ``[k, N]`` and a bool mask ``[N]``: views of
        the layer's kept buffers when ``reuse`` (grown when too small), else new arrays."""
        if not reuse:
            return (np.empty((k, N), dtype=dtype), np.empty((k, N), dtype=dtype),
                    np.empty(N, dtype=np.bool_))
        bufs = getattr(self, "_chunk_bufs", None)
        if bufs is None or bufs[0].shape[0] < k or bufs[0].shape[1] != N or \
                bufs[0].dtype != dtype:
            if bufs is not None and self.v is not None:
                self.v = self.v.copy()        # it lives in the old buffer
            bufs = (np.empty((k, N), dtype=dtype), np.empty((k, N), dtype=dtype),
                    np.empty(N, dtype=np.bool_))
            self._chunk_bufs = bufs
        return bufs[0][:k], bufs[1][:k], bufs[2]

    def _load_current(self, src, beta, cur, scratch) -> None:
        """``cur [k, N]`` = the chunk's current ``gain * src`` (``src [k, N]``, or ``[1, N]``
        repeated), with ``beta * v`` of the carried membrane added to its first row.  Row 0 is
        written first: ``self.v`` may be a row of ``cur`` (the previous chunk's last)."""
        dt = cur.dtype.type
        gain = self.input_gain
        row0 = src[0] if gain == 1.0 else np.multiply(src[0], dt(gain), out=scratch)
        if self.v is not None:
            v, self.v = self.v.reshape(-1), None
            vb = _by_neuron(v, beta)
            np.multiply(vb, beta, out=vb)                     # in place: v is dropped after
            np.add(row0, v, out=cur[0])
            del v, vb
        else:
            cur[0] = row0
        if cur.shape[0] > 1:
            rest = src[1:] if src.shape[0] == cur.shape[0] else src[:1]
            if gain == 1.0:
                np.copyto(cur[1:], rest)
            else:
                np.multiply(rest, dt(gain), out=cur[1:])

    def _kernel_forward(self, current, beta, theta, spikes, membrane) -> None:
        """The fused forward kernel of this layer's kind (plain or general), no smooth mode;
        ``current``, ``spikes``, ``membrane``: ``[k, N]`` (``membrane`` may be ``current``)."""
        dt = spikes.dtype.type
        code, alpha = self.surrogate.code, dt(self.surrogate.alpha)
        if self.plain:
            kernels.lif_forward(current, dt(self.beta), dt(self.threshold), _RESETS[self.reset],
                                dt(self.v_reset), code, alpha, False, spikes, membrane)
        else:
            kernels.lif_forward_ext(current, beta, theta, _RESETS[self.reset], dt(self.v_reset),
                                    code, alpha, False, self.spikes == "ternary",
                                    self.ternary_grad == "window", spikes, membrane)

    def _fire(self, u: np.ndarray, theta: np.ndarray, out: np.ndarray, mask: np.ndarray) -> None:
        """Raw spikes of membranes ``u [1, N]`` into ``out``: ``1[u >= theta]`` (``-
        1[u <= -theta]`` for ternary spikes), the kernels' test
        (:func:`snncore.neuron.canonical_update`); ``mask [N]`` is scratch."""
        ub, ob = _by_neuron(u, theta), _by_neuron(out, theta)
        np.greater_equal(ub, theta, out=ob)
        if self.spikes == "ternary":
            mb = _by_neuron(mask, theta)
            np.less_equal(ub, -theta, out=mb)
            np.subtract(ob, mb, out=ob)

    def _membrane_after_reset(self, u, s, theta, mask) -> np.ndarray:
        """``v_t`` from the membrane ``u [N]`` and raw spikes ``s [N]`` of one step, as
        :func:`snncore.neuron.canonical_update`, written into ``u``; ``mask [N]`` is scratch."""
        if self.reset == "hard":
            np.not_equal(s, 0, out=mask)
            np.copyto(u, u.dtype.type(self.v_reset), where=mask)
        else:
            ub, sb, mb = (_by_neuron(a, theta) for a in (u, s, mask))
            np.greater(sb, 0, out=mb)
            np.subtract(ub, theta, out=ub, where=mb)
            np.less(sb, 0, out=mb)
            np.add(ub, theta, out=ub, where=mb)
        return u

    def step_backward(self, grad_y_t: np.ndarray) -> np.ndarray:
        """``dL/dI_t`` from ``dL/ds_t`` through this step only, with the previous membrane and
        the reset held constant (OTTT's detached neuron, docs/methods.md section 15):
        ``dL/dI_t = gain * g'(u_t - theta) * dL/ds_t``.  Binary spikes, amplitude 1 and no
        learned beta/threshold/amplitude only (ValueError otherwise)."""
        if self.u is None:
            raise RuntimeError(f"{self!r}: step_backward called before step")
        problem = online_unsupported(self)
        if problem:
            raise ValueError(f"{self!r}: step_backward does not support {problem}")
        grad = np.asarray(grad_y_t, dtype=self.u.dtype)
        if grad.shape != self.u.shape:
            raise ValueError(f"{self!r}: gradient shape {grad.shape}, expected {self.u.shape}")
        dt = self.u.dtype.type
        theta = self.threshold_value().reshape(-1).astype(self.u.dtype)
        u = self.u.reshape(self.u.shape[0], -1)
        g = grad.reshape(u.shape) * self.surrogate.derivative(u - theta)
        if self.input_gain != 1.0:
            g = g * dt(self.input_gain)
        return g.reshape(grad.shape)


def _membrane_buffer(x: np.ndarray, current: np.ndarray, donate: bool) -> np.ndarray:
    """Where the forward kernel writes the membrane ``[T, N]``: over ``current`` when it is
    a full ``[T, N]`` array the layer may overwrite (a copy or product the layer made, or a
    donated input; the kernels read each current element before they write the membrane
    element), else a new array."""
    T = x.shape[0]
    if current.shape[0] == T and (donate or not np.may_share_memory(current, x)):
        return current
    return np.empty((T, current.shape[1]), dtype=x.dtype)


def _by_neuron(a: np.ndarray, values: np.ndarray) -> np.ndarray:
    """View of the flattened neurons ``a [.., B * F]`` as ``[-1, len(values)]``, so that
    per-neuron ``values [F]`` (or one value ``[1]``) broadcast as the kernels index them
    (``values[i % F]``)."""
    return a.reshape(-1, values.shape[0])


def online_unsupported(layer: LIF) -> str:
    """What in ``layer`` the step-wise backward of the online methods cannot handle (an empty
    string when nothing): they need binary spikes with amplitude 1 and no learned or MSG-masked
    parameters."""
    problems = []
    if layer.spikes != "binary":
        problems.append("ternary spikes")
    if not layer._amplitude_is_one() or isinstance(layer.amplitude, Parameter):
        problems.append("an output amplitude")
    if layer.learn_beta:
        problems.append("learn_beta")
    if layer.learn_threshold:
        problems.append("learn_threshold")
    if layer.msg_p != 0.0:
        problems.append("MSG masking (msg_p > 0)")
    return ", ".join(problems)


def _feature_shape(features, beta: np.ndarray, theta: np.ndarray):
    """The feature shape from ``features=`` or from array-valued beta/threshold (or None)."""
    shapes = {tuple(a.shape) for a in (beta, theta) if a.ndim > 0}
    if features is not None:
        f = (int(features),) if np.isscalar(features) else tuple(int(n) for n in features)
        if not f or min(f) < 1:
            raise ValueError(f"LIF: features must be positive sizes, got {features!r}")
        shapes.add(f)
    if len(shapes) > 1:
        raise ValueError(f"LIF: features, beta and threshold shapes disagree: {sorted(shapes)}")
    return shapes.pop() if shapes else None


class IF(LIF):
    """Integrate-and-fire: :class:`LIF` with ``beta = 1`` (no leak)."""

    def __init__(self, threshold: float = 1.0, reset: str = "hard", v_reset: float = 0.0,
                 surrogate="atan", detach_reset: bool = False):
        super().__init__(beta=1.0, threshold=threshold, reset=reset, v_reset=v_reset,
                         surrogate=surrogate, detach_reset=detach_reset)
