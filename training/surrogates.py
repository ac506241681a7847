"""Surrogate gradients for the spike function (docs/methods.md section 4).

Forward is the Heaviside step ``s = 1[x >= 0]`` with ``x = u - theta``; backward replaces
``ds/dx`` by ``g'(x)``, the derivative of a smooth primitive ``g``.  In smooth mode the
forward pass uses ``g(x)`` itself, so finite differences check the backward pass.

| name      | g(x)                                        | g'(x)                                   | alpha |
|-----------|---------------------------------------------|-----------------------------------------|-------|
| sigmoid   | sig(alpha x)                                | alpha sig(alpha x) (1 - sig(alpha x))   | 4     |
| atan      | 1/2 + arctan(pi/2 alpha x) / pi             | alpha / 2 / (1 + (pi/2 alpha x)^2)      | 2     |
| triangle  | (1 + a x)^2/2 on [-1/a, 0], 1 - (1 - a x)^2/2 on [0, 1/a] | max(0, alpha - alpha^2 abs(x)) | 2 |
| rectangle | clip(alpha x + 1/2, 0, 1)                   | alpha 1[abs(x) < 1/(2 alpha)]           | 1     |
| fast_sigmoid | 1/2 + x / (1 + alpha abs(x))             | 1 / (1 + alpha abs(x))^2                | 25    |

``fast_sigmoid`` is snnTorch's default surrogate (its ``slope`` is ``alpha`` here): height 1
at threshold whatever the slope, so unlike the others its area is ``2/alpha``, not 1, and
its smooth-mode primitive runs from ``1/2 - 1/alpha`` to ``1/2 + 1/alpha`` instead of 0 to
1 (the function whose derivative is exactly the surrogate).

Each surrogate has an integer ``code`` so the fused Numba kernels in ``training/kernels.py``
can evaluate it without Python objects; :func:`primitive` and :func:`derivative` here are
the plain-NumPy definitions those kernels are tested against.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIGMOID, ATAN, TRIANGLE, RECTANGLE, FAST_SIGMOID = 0, 1, 2, 3, 4
_CODES = {"sigmoid": SIGMOID, "atan": ATAN, "triangle": TRIANGLE, "rectangle": RECTANGLE,
          "fast_sigmoid": FAST_SIGMOID}
DEFAULT_ALPHA = {"sigmoid": 4.0, "atan": 2.0, "triangle": 2.0, "rectangle": 1.0,
                 "fast_sigmoid": 25.0}


@dataclass(frozen=True)
class Surrogate:
    """A named surrogate with its sharpness ``alpha`` (> 0)."""

    name: str
    alpha: float

    def __post_init__(self):
        if self.name not in _CODES:
            raise ValueError(f"unknown surrogate {self.name!r}; choose one of {sorted(_CODES)}")
        if not (np.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"surrogate {self.name!r}: alpha must be a positive number, got {self.alpha}")

    @property
    def code(self) -> int:
        return _CODES[self.name]

    def primitive(self, x: np.ndarray) -> np.ndarray:
        """Smooth stand-in ``g(x)`` for the step function, increasing from ``g(-inf)`` to
        ``g(+inf)`` (0 and 1, or ``1/2 -+ 1/alpha`` for ``fast_sigmoid``)."""
        return primitive(self.code, self.alpha, x)

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """``g'(x)``, used as ``ds/du`` in every backward pass."""
        return derivative(self.code, self.alpha, x)


def sigmoid(alpha: float = 4.0) -> Surrogate:
    return Surrogate("sigmoid", float(alpha))


def atan(alpha: float = 2.0) -> Surrogate:
    return Surrogate("atan", float(alpha))


def triangle(alpha: float = 2.0) -> Surrogate:
    return Surrogate("triangle", float(alpha))


def rectangle(alpha: float = 1.0) -> Surrogate:
    return Surrogate("rectangle", float(alpha))


def fast_sigmoid(slope: float = 25.0) -> Surrogate:
    """snnTorch's default: ``ds/du = 1 / (1 + slope |u - theta|)^2`` (``alpha = slope``)."""
    return Surrogate("fast_sigmoid", float(slope))


def get(spec) -> Surrogate:
    """Accept a Surrogate, a name (default alpha) or a ``(name, alpha)`` pair."""
    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, str):
        if spec not in _CODES:
            raise ValueError(f"unknown surrogate {spec!r}; choose one of {sorted(_CODES)}")
        return Surrogate(spec, DEFAULT_ALPHA[spec])
    if isinstance(spec, tuple) and len(spec) == 2:
        return Surrogate(spec[0], float(spec[1]))
    raise ValueError(f"cannot make a surrogate from {spec!r}")


def _sig(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def primitive(code: int, alpha: float, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    a = x.dtype.type(alpha) if x.dtype.kind == "f" else alpha
    if code == SIGMOID:
        return _sig(a * x)
    if code == ATAN:
        return 0.5 + np.arctan((np.pi / 2) * a * x) / np.pi
    if code == TRIANGLE:
        ax = np.clip(a * x, -1, 1)
        return np.where(ax < 0, 0.5 * (1 + ax) ** 2, 1 - 0.5 * (1 - ax) ** 2)
    if code == RECTANGLE:
        return np.clip(a * x + 0.5, 0, 1)
    if code == FAST_SIGMOID:
        return 0.5 + x / (1 + a * np.abs(x))
    raise ValueError(f"unknown surrogate code {code}")


def derivative(code: int, alpha: float, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    a = x.dtype.type(alpha) if x.dtype.kind == "f" else alpha
    if code == SIGMOID:
        s = _sig(a * x)
        return a * s * (1 - s)
    if code == ATAN:
        return a / 2 / (1 + ((np.pi / 2) * a * x) ** 2)
    if code == TRIANGLE:
        return np.maximum(0, a - a * a * np.abs(x))
    if code == RECTANGLE:
        return a * (np.abs(x) < 1 / (2 * a)).astype(x.dtype)
    if code == FAST_SIGMOID:
        d = 1 + a * np.abs(x)
        return 1 / (d * d)
    raise ValueError(f"unknown surrogate code {code}")
