"""Base classes every layer and neuron builds on.

A :class:`Module` maps a time-major array ``x[T, B, *features]`` to ``y[T, B, *features']``
in ``forward`` and maps ``dL/dy`` back to ``dL/dx`` in ``backward``, adding into the
``.grad`` of its :class:`Parameter` objects.  ``forward`` caches exactly what ``backward``
needs; calling ``backward`` before ``forward`` is an error.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .config import get_default_dtype


class Parameter:
    """A trainable array and its gradient.

    Attributes:
        data: the values, any shape, float32 or float64.
        grad: same shape and dtype as ``data``; backward passes *add* into it.
        weight_decay: whether optimisers apply weight decay to it (False for BatchNorm
            affine parameters, ternary amplitudes and similar).
    """

    __slots__ = ("data", "grad", "weight_decay")

    def __init__(self, data: np.ndarray, weight_decay: bool = True):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)
        self.weight_decay = weight_decay

    @property
    def shape(self):
        return self.data.shape

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype.name})"


class Module:
    """Base class: parameters, buffers, train/eval mode and input checks."""

    training: bool = True

    def __init__(self):
        self.training = True

    # -- subclasses implement ---------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, grad_y: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def reset_cache(self) -> None:
        """Drop the arrays cached for backward (frees memory after inference)."""

    # -- step-wise execution (online methods, streaming inference) --------------------------
    def reset_state(self, batch_size: int) -> None:
        """Start a new sequence of ``batch_size`` samples for :meth:`step`.

        Stateless layers keep nothing; neurons zero their membrane (``v_{-1} = 0``) and
        Dropout draws the sequence's mask at its next training step.
        """
        _check_batch_size(self, batch_size)

    def step(self, x_t: np.ndarray) -> np.ndarray:
        """One time step: ``x_t [B, *features] -> y_t [B, *features']``.

        Equal to ``forward(x)[t]`` when called for ``t = 0..T-1`` after
        :meth:`reset_state`.  The default runs :meth:`forward` on the one-step slice
        ``x_t[None]`` (right for layers without state across steps); in training mode that
        forward caches one step for :meth:`step_backward`.
        """
        x_t = np.asarray(x_t)
        return self.forward(x_t[None])[0]

    def forward_steps(self, x: np.ndarray) -> np.ndarray:
        """Eval-mode forward of the next ``k`` steps of the sequence begun by
        :meth:`reset_state`: ``x [k, B, ...] -> y [k, B, ...]``, the state carried over from
        the previous call.  Equal to the matching slice of :meth:`forward` on the whole
        sequence.  The default stacks :meth:`step`; neurons with a fused kernel override it
        (``Sequential``'s chunked inference, which keeps one chunk of steps alive)."""
        return np.stack([self.step(x[t]) for t in range(x.shape[0])])

    def step_backward(self, grad_y_t: np.ndarray) -> np.ndarray:
        """Backward through the last :meth:`step` only, the state before it held constant:
        ``dL/dy_t [B, ...] -> dL/dx_t [B, ...]`` (the "through space" pass of the online
        methods, docs/methods.md section 15).  Default: :meth:`backward` on ``[1, B, ...]``."""
        return self.backward(np.asarray(grad_y_t)[None])[0]

    # -- parameters and state -------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix + name + ".")

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """Non-trainable arrays that belong in a checkpoint (BatchNorm running statistics)."""
        for name in getattr(self, "_buffers", ()):
            yield prefix + name, getattr(self, name)
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield from value.named_buffers(prefix + name + ".")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed by dotted name."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Load arrays saved by :meth:`state_dict`; names and shapes must match exactly."""
        own = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        expected = set(own) | set(buffers)
        missing = expected - set(state)
        unexpected = set(state) - expected
        if missing or unexpected:
            raise ValueError(
                f"state does not match the network: missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}")
        for name, value in state.items():
            target = own[name].data if name in own else buffers[name]
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(f"state field {name!r}: shape {value.shape}, "
                                 f"the network expects {target.shape}")
            target[...] = value

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> "Module":
        self.training = mode
        for value in vars(self).values():
            if isinstance(value, Module):
                value.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    # -- helpers for subclasses -------------------------------------------------------------
    def _check_input(self, x: np.ndarray, feature_shape: tuple | None = None,
                     feature_ndim: int | None = None) -> np.ndarray:
        """Validate ``x[T, B, *features]`` and return it as a floating array.

        Raises ValueError naming the layer, the expected and the actual shape.
        """
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise ValueError(f"{self!r}: input dtype {x.dtype} is not numeric")
        if x.dtype.kind != "f":
            x = x.astype(get_default_dtype())
        if feature_ndim is not None and x.ndim != 2 + feature_ndim:
            raise ValueError(
                f"{self!r}: expected input of {2 + feature_ndim} dims [T, B, ...features], "
                f"got shape {x.shape}")
        if feature_shape is not None and tuple(x.shape[2:]) != tuple(feature_shape):
            raise ValueError(
                f"{self!r}: expected input [T, B, {', '.join(map(str, feature_shape))}], "
                f"got shape {x.shape}")
        return x

    def _require_cache(self, *names: str) -> None:
        for name in names:
            if getattr(self, name, None) is None:
                raise RuntimeError(f"{self!r}: backward called without a training forward pass")


def _check_batch_size(module, batch_size) -> int:
    """``int(batch_size)`` after checking it is a positive integer (ValueError naming it)."""
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"{module!r}.reset_state: batch_size must be a positive integer, "
                         f"got {batch_size!r}")
    return int(batch_size)


def is_static(x: np.ndarray) -> bool:
    """True when ``x[T, ...]`` repeats one array over time as a stride-0 view.

    ``encoding.direct`` returns such views; linear layers then compute on ``x[0]`` once
    and return a stride-0 view again, which is exact and T times cheaper.
    """
    return x.ndim >= 1 and x.shape[0] > 1 and x.strides[0] == 0


def broadcast_time(y0: np.ndarray, T: int) -> np.ndarray:
    """Read-only stride-0 view repeating ``y0`` over T steps: ``[T, *y0.shape]``."""
    return np.broadcast_to(y0[None], (T,) + y0.shape)
