"""Optimisers, learning-rate schedules and gradient clipping.

Everything here follows PyTorch's ``torch.optim`` (single-tensor code path, one parameter
group) equation for equation, so a recipe written for PyTorch behaves the same here:

* :class:`SGD` with momentum, dampening, Nesterov and L2 weight decay,
* :class:`Adam` (L2 weight decay added to the gradient) and :class:`AdamW` (decoupled weight
  decay), both with bias correction,
* :class:`CosineSchedule`, :class:`StepSchedule`, :class:`MultiStepSchedule`,
* :func:`clip_grad_norm` and :func:`clip_grad_value`.

Optimisers take an iterable of :class:`~training.module.Parameter` objects, of
``(name, Parameter)`` pairs (``module.named_parameters()``) or a module itself.  Parameters
without names are named ``"0"``, ``"1"``, ... in order.  Names key the saved state, so
``state_dict()`` is a flat ``dict[str, np.ndarray | float | int | bool]`` that an HDF5
checkpoint stores without pickle, and ``load_state_dict()`` restores it so a resumed run
continues bit-identically.

Updates run in place on ``Parameter.data`` in the parameter's own dtype.  Hyperparameters
are Python floats, which NumPy casts to the array dtype (NEP 50), so float32 parameters are
updated in float32 arithmetic.  ``Parameter.grad`` is never modified by ``step()`` (weight
decay is added into a scratch buffer); parameters whose ``grad`` is ``None`` are skipped, as
in PyTorch.  Each optimiser owns two scratch buffers per dtype, sized for the largest
parameter, so a step allocates nothing.

``weight_decay`` applies only to parameters whose ``Parameter.weight_decay`` is True
(BatchNorm affine parameters and similar set it to False).
"""
from __future__ import annotations

import math
import operator
from bisect import bisect_right
from typing import Iterable

import numpy as np

from .optim_kernels import adam_update

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW",
    "Schedule", "CosineSchedule", "StepSchedule", "MultiStepSchedule",
    "clip_grad_norm", "clip_grad_value",
]


# ------------------------------------------------------------------------------------------
# argument checks


def _real(name: str, value, *, low: float | None = None, high: float | None = None,
          low_open: bool = False, high_open: bool = False, allow_inf: bool = False) -> float:
    """``float(value)`` after checking it is finite (unless ``allow_inf``) and in the given
    interval; ValueError names the argument and the value."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise ValueError(f"invalid {name}: {value!r} (must be a real number)")
    v = float(value)
    ok = not math.isnan(v) and (allow_inf or not math.isinf(v))
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"invalid {name}: {value!r} (must be a "
                         f"{'' if allow_inf else 'finite '}number in {lo}, {hi})")
    return v


def _integer(name: str, value, *, low: int = 0) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"invalid {name}: {value!r} (must be an integer >= {low})")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"invalid {name}: {value!r} (must be an integer >= {low})") from None
    if v < low:
        raise ValueError(f"invalid {name}: {value!r} (must be an integer >= {low})")
    return v


def _flag(name: str, value) -> bool:
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer))
                                               and value in (0, 1)):
        return bool(value)
    raise ValueError(f"invalid {name}: {value!r} (must be a bool)")


def _named_parameters(params) -> list[tuple[str, object]]:
    """Normalise a module, an iterable of Parameters or of (name, Parameter) pairs."""
    if hasattr(params, "named_parameters"):
        params = params.named_parameters()
    if hasattr(params, "data") and hasattr(params, "grad"):
        raise TypeError("params must be an iterable of Parameters, not a single Parameter; "
                        "wrap it in a list")
    named = []
    for i, item in enumerate(params):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name, p = item
        else:
            name, p = str(i), item
        if not (hasattr(p, "data") and hasattr(p, "grad")):
            raise TypeError(f"parameter {name!r} is a {type(p).__name__}, "
                            "expected an object with .data and .grad arrays")
        if not isinstance(p.data, np.ndarray) or p.data.dtype.kind != "f":
            raise ValueError(f"parameter {name!r}: data must be a floating numpy array, "
                             f"got {type(p.data).__name__} "
                             f"{getattr(p.data, 'dtype', '')}".rstrip())
        named.append((name, p))
    if not named:
        raise ValueError("optimizer got an empty parameter list")
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate parameter names: {dup}")
    ids = [id(p) for _, p in named]
    if len(set(ids)) != len(ids):
        dup = sorted({n for n, p in named if ids.count(id(p)) > 1})
        raise ValueError(f"the same Parameter object is passed more than once: {dup}")
    return named


def _grads(params) -> list[np.ndarray]:
    """The non-None ``.grad`` arrays of a module or iterable of (named) Parameters."""
    if hasattr(params, "named_parameters"):
        params = params.named_parameters()
    elif hasattr(params, "data") and hasattr(params, "grad"):
        params = [params]
    grads = []
    for item in params:
        p = item[1] if isinstance(item, tuple) else item
        if p.grad is not None:
            grads.append(p.grad)
    return grads


# ------------------------------------------------------------------------------------------
# optimisers


class Optimizer:
    """Base class: parameter bookkeeping, scratch buffers, ``zero_grad`` and state I/O.

    Subclasses define ``_hyper_names`` (the scalar hyperparameters saved in the state),
    ``_check_hyper`` (validation), ``_slot_names`` (per-parameter state arrays) and
    ``_update`` (one parameter's update).
    """

    _hyper_names: tuple[str, ...] = ("lr",)

    def __init__(self, params, hyper: dict):
        named = _named_parameters(params)
        self.names: list[str] = [n for n, _ in named]
        self.params: list = [p for _, p in named]
        self.steps: list[int] = [0] * len(self.params)       # per-parameter step count t
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]
        self._work: dict[np.dtype, list[np.ndarray]] = {}
        self._set_hyper(hyper)

    # -- hyperparameters ----------------------------------------------------------------
    @property
    def lr(self) -> float:
        """Learning rate used by the next ``step()``; schedules set it."""
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = _real("lr", value, low=0.0)

    def _check_hyper(self, hyper: dict) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def _slot_names(self) -> tuple[str, ...]:
        return ()

    def _set_hyper(self, hyper: dict) -> None:
        """Validate all hyperparameters, then assign them and allocate the state slots."""
        checked = self._check_hyper(dict(hyper))
        for key, value in checked.items():
            setattr(self, key, value)
        for p, st in zip(self.params, self.state):
            for slot in self._slot_names():
                if slot not in st:
                    st[slot] = np.zeros_like(p.data)

    def _hyper(self) -> dict:
        return {k: getattr(self, k) for k in self._hyper_names}

    # -- stepping -----------------------------------------------------------------------
    def _scratch(self, p) -> tuple[np.ndarray, np.ndarray]:
        """Two scratch arrays shaped and typed like ``p.data`` (views of shared buffers)."""
        data = p.data
        work = self._work.get(data.dtype)
        if work is None or work[0].size < data.size:
            size = max([q.data.size for q in self.params if q.data.dtype == data.dtype]
                       + [data.size])
            work = [np.empty(size, data.dtype), np.empty(size, data.dtype)]
            self._work[data.dtype] = work
        n = data.size
        return work[0][:n].reshape(data.shape), work[1][:n].reshape(data.shape)

    def step(self) -> None:
        """Apply one update to every parameter with a gradient."""
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if g.shape != p.data.shape:
                raise ValueError(f"parameter {self.names[i]!r}: grad shape {g.shape} "
                                 f"does not match data shape {p.data.shape}")
            self.steps[i] += 1
            self._update(p, g, self.state[i], self.steps[i], *self._scratch(p))

    def _update(self, p, g, state, t, tmp0, tmp1) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Set every gradient to zero in place (backward passes add into ``.grad``)."""
        for p in self.params:
            if p.grad is not None:
                p.grad.fill(0)

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray | float | int | bool]:
        """Flat copy of the hyperparameters and per-parameter state.

        Keys: the hyperparameter names (``"lr"``, ...), ``"state.<name>.step"`` (int) and
        ``"state.<name>.<slot>"`` (array, e.g. ``momentum_buffer``, ``exp_avg``).
        """
        out: dict = dict(self._hyper())
        for name, t, st in zip(self.names, self.steps, self.state):
            out[f"state.{name}.step"] = int(t)
            for slot in self._slot_names():
                out[f"state.{name}.{slot}"] = st[slot].copy()
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`.  Hyperparameters (including ``lr``) are taken from
        ``state``, as PyTorch does; parameter names, keys and shapes must match exactly.
        Nothing is modified if any check fails."""
        cls = type(self).__name__
        missing_h = [k for k in self._hyper_names if k not in state]
        if missing_h:
            raise ValueError(f"{cls} state is missing hyperparameters {missing_h}")
        saved = self._hyper()
        try:
            self._set_hyper({k: state[k] for k in self._hyper_names})
            slots = self._slot_names()
            expected = set(self._hyper_names)
            for name in self.names:
                expected.add(f"state.{name}.step")
                expected.update(f"state.{name}.{s}" for s in slots)
            missing = sorted(expected - set(state))
            unexpected = sorted(set(state) - expected)
            if missing or unexpected:
                raise ValueError(f"{cls} state does not match the optimizer: "
                                 f"missing {missing}, unexpected {unexpected}")
            steps = []
            for name, p in zip(self.names, self.params):
                steps.append(_integer(f"state.{name}.step", state[f"state.{name}.step"]))
                for s in slots:
                    key = f"state.{name}.{s}"
                    value = np.asarray(state[key])
                    if value.shape != p.data.shape:
                        raise ValueError(f"{cls} state field {key!r}: shape {value.shape}, "
                                         f"the parameter has shape {p.data.shape}")
                    if value.dtype.kind not in "fiu":
                        raise ValueError(f"{cls} state field {key!r}: dtype {value.dtype} "
                                         "is not numeric")
        except Exception:
            self._set_hyper(saved)
            raise
        for i, (name, p) in enumerate(zip(self.names, self.params)):
            self.steps[i] = steps[i]
            st = self.state[i]
            for s in list(st):
                if s not in slots:
                    del st[s]
            for s in slots:
                np.copyto(st[s], np.asarray(state[f"state.{name}.{s}"]), casting="unsafe")

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"


class SGD(Optimizer):
    r"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``.

    For each parameter ``p`` with gradient ``g`` at step ``t`` (1-based)::

        d   = g + weight_decay * p                         (only if p.weight_decay)
        b_t = d                                            if t == 1
            = momentum * b_{t-1} + (1 - dampening) * d     otherwise   (if momentum != 0)
        d   = d + momentum * b_t    if nesterov  else  b_t             (if momentum != 0)
        p   = p - lr * d

    Args:
        params: Parameters, ``(name, Parameter)`` pairs or a Module.
        lr: learning rate >= 0.
        momentum: >= 0; 0 disables the buffer.
        dampening: in [0, 1].
        nesterov: Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
        weight_decay: L2 coefficient >= 0, added to the gradient.
    """

    _hyper_names = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay))

    def _check_hyper(self, h: dict) -> dict:
        out = dict(lr=_real("lr", h["lr"], low=0.0),
                   momentum=_real("momentum", h["momentum"], low=0.0),
                   dampening=_real("dampening", h["dampening"], low=0.0, high=1.0),
                   nesterov=_flag("nesterov", h["nesterov"]),
                   weight_decay=_real("weight_decay", h["weight_decay"], low=0.0))
        if out["nesterov"] and (out["momentum"] <= 0 or out["dampening"] != 0):
            raise ValueError(f"invalid nesterov: True requires momentum > 0 and "
                             f"dampening == 0 (got momentum={out['momentum']!r}, "
                             f"dampening={out['dampening']!r})")
        return out

    def _slot_names(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _update(self, p, g, state, t, tmp0, tmp1) -> None:
        lr, mu = self._lr, self.momentum
        wd = self.weight_decay if getattr(p, "weight_decay", True) else 0.0
        d = g
        if wd != 0:
            np.multiply(p.data, wd, out=tmp0)
            np.add(g, tmp0, out=tmp0)                      # d = g + wd * p
            d = tmp0
        if mu != 0:
            b = state["momentum_buffer"]
            if t == 1:
                np.copyto(b, d)                            # b_1 = d
            else:
                b *= mu
                if self.dampening != 0:
                    np.multiply(d, 1.0 - self.dampening, out=tmp1)
                    b += tmp1                              # b = mu b + (1 - damp) d
                else:
                    b += d
            if self.nesterov:
                np.multiply(b, mu, out=tmp1)
                np.add(d, tmp1, out=tmp1)                  # d = d + mu b
                d = tmp1
            else:
                d = b
        step = tmp0 if d is tmp0 else tmp1
        np.multiply(d, -lr, out=step)
        p.data += step                                     # p = p - lr d


class Adam(Optimizer):
    r"""Adam with L2 weight decay added to the gradient, as ``torch.optim.Adam``.

    For each parameter ``p`` with gradient ``g`` at step ``t`` (1-based), ``m_0 = v_0 = 0``::

        g     = g + weight_decay * p                  (only if p.weight_decay)
        m_t   = beta1 * m_{t-1} + (1 - beta1) * g     (computed as torch's lerp)
        v_t   = beta2 * v_{t-1} + (1 - beta2) * g^2
        denom = sqrt(v_t) / sqrt(1 - beta2^t) + eps
        p     = p - (lr / (1 - beta1^t)) * m_t / denom

    i.e. ``p - lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m_t / (1 - beta1^t)`` and
    ``v_hat = v_t / (1 - beta2^t)``, evaluated in torch's order.

    The bias corrections are computed in Python float64, the rest in the parameter dtype.

    Args:
        params: Parameters, ``(name, Parameter)`` pairs or a Module.
        lr: learning rate >= 0.
        betas: ``(beta1, beta2)``, each in [0, 1).
        eps: >= 0, added to the denominator.
        weight_decay: L2 coefficient >= 0.
    """

    _hyper_names = ("lr", "beta1", "beta2", "eps", "weight_decay")
    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"invalid betas: {betas!r} (must be a pair)") from None
        super().__init__(params, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                      weight_decay=weight_decay))

    @property
    def betas(self) -> tuple[float, float]:
        return (self.beta1, self.beta2)

    def _check_hyper(self, h: dict) -> dict:
        return dict(lr=_real("lr", h["lr"], low=0.0),
                    beta1=_real("beta1", h["beta1"], low=0.0, high=1.0, high_open=True),
                    beta2=_real("beta2", h["beta2"], low=0.0, high=1.0, high_open=True),
                    eps=_real("eps", h["eps"], low=0.0),
                    weight_decay=_real("weight_decay", h["weight_decay"], low=0.0))

    def _slot_names(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def _update(self, p, g, state, t, tmp0, tmp1) -> None:
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if all(a.flags.c_contiguous and a.dtype == p.data.dtype for a in (p.data, g, m, v)):
            self._update_fused(p, g, m, v, t)
        else:
            self._update_numpy(p, g, m, v, t, tmp0, tmp1)

    def _decay_mode(self, p) -> int:
        """0: no weight decay for ``p``; 1: L2, added to the gradient; 2: decoupled."""
        if self.weight_decay == 0 or not getattr(p, "weight_decay", True):
            return 0
        return 2 if self._decoupled else 1

    def _update_fused(self, p, g, m, v, t) -> None:
        """:meth:`_update_numpy` in one pass (``optim_kernels.adam_update``): the same
        operations in the same order and dtype, so the same bits (~4x faster)."""
        dt = p.data.dtype.type
        lr, beta1, beta2 = self._lr, self.beta1, self.beta2
        w = 1.0 - beta1
        lerp_small = w < 0.5
        bias1 = 1.0 - beta1 ** t
        bias2_sqrt = math.sqrt(1.0 - beta2 ** t)
        adam_update(p.data.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                    dt(self.weight_decay), self._decay_mode(p), dt(1.0 - lr * self.weight_decay),
                    lerp_small, dt(w if lerp_small else 1.0 - w), dt(beta2), dt(1.0 - beta2),
                    dt(bias2_sqrt), dt(self.eps), dt(-(lr / bias1)))

    def _update_numpy(self, p, g, m, v, t, tmp0, tmp1) -> None:
        """The update in NumPy array operations (used for non-contiguous arrays)."""
        lr, beta1, beta2 = self._lr, self.beta1, self.beta2
        decay = self._decay_mode(p)
        if decay == 2:
            p.data *= 1.0 - lr * self.weight_decay         # p = p (1 - lr wd)
        elif decay == 1:
            np.multiply(p.data, self.weight_decay, out=tmp0)
            np.add(g, tmp0, out=tmp0)                      # g = g + wd p
            g = tmp0
        # m = lerp(m, g, 1 - beta1), the two-sided form torch uses
        w = 1.0 - beta1
        np.subtract(g, m, out=tmp1)
        if w < 0.5:
            tmp1 *= w
            m += tmp1                                      # m + w (g - m)
        else:
            tmp1 *= 1.0 - w
            np.subtract(g, tmp1, out=m)                    # g - (1 - w) (g - m)
        # v = beta2 v + (1 - beta2) g g
        np.multiply(g, 1.0 - beta2, out=tmp1)
        tmp1 *= g
        v *= beta2
        v += tmp1
        bias1 = 1.0 - beta1 ** t
        bias2_sqrt = math.sqrt(1.0 - beta2 ** t)
        step_size = lr / bias1
        np.sqrt(v, out=tmp1)
        tmp1 /= bias2_sqrt
        tmp1 += self.eps                                   # denom
        np.multiply(m, -step_size, out=tmp0)
        tmp0 /= tmp1
        p.data += tmp0                                     # p - step_size m / denom


class AdamW(Adam):
    r"""Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    As :class:`Adam`, except the decay is not added to the gradient; before the Adam update,
    for parameters with ``p.weight_decay``::

        p = p * (1 - lr * weight_decay)

    Args: as :class:`Adam`; ``weight_decay`` defaults to ``1e-2``.
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# ------------------------------------------------------------------------------------------
# schedules


class Schedule:
    """Base class of learning-rate schedules.

    A schedule reads ``base_lr = optimizer.lr`` when it is built, sets ``optimizer.lr`` to
    ``lr_at(0)`` immediately, and each :meth:`step` advances ``last_step`` by one and sets
    ``optimizer.lr = lr_at(last_step)``.  Call ``step()`` once per unit the schedule's
    lengths are counted in -- once per epoch (after the epoch's last ``optimizer.step()``)
    or once per iteration (after each ``optimizer.step()``) -- as with PyTorch's
    ``LRScheduler``.  Learning rates use the closed forms, so they do not drift and a
    restored schedule gives exactly the same values.
    """

    _hyper_names: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer, **hyper):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"optimizer must have an lr attribute, got {optimizer!r}")
        self.optimizer = optimizer
        for key, value in self._check_hyper(hyper).items():
            setattr(self, key, value)
        self.base_lr = float(optimizer.lr)
        self.last_step = 0
        optimizer.lr = self.lr_at(0)

    def _check_hyper(self, h: dict) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def lr_at(self, t: int) -> float:  # pragma: no cover - interface
        """Learning rate after ``t`` calls of :meth:`step`."""
        raise NotImplementedError

    @property
    def lr(self) -> float:
        return self.lr_at(self.last_step)

    def step(self) -> None:
        self.last_step += 1
        self.optimizer.lr = self.lr_at(self.last_step)

    def state_dict(self) -> dict[str, np.ndarray | float | int]:
        """``{"last_step", "base_lr", <hyperparameters>}``; lists are int64 arrays."""
        out: dict = {"last_step": self.last_step, "base_lr": self.base_lr}
        for k in self._hyper_names:
            v = getattr(self, k)
            out[k] = np.asarray(v, dtype=np.int64) if isinstance(v, tuple) else v
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` and set ``optimizer.lr`` to the restored value."""
        cls = type(self).__name__
        expected = {"last_step", "base_lr", *self._hyper_names}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"{cls} state does not match the schedule: "
                             f"missing {missing}, unexpected {unexpected}")
        hyper = self._check_hyper({k: state[k] for k in self._hyper_names})
        last = _integer("last_step", state["last_step"])
        base = _real("base_lr", state["base_lr"], low=0.0)
        for key, value in hyper.items():
            setattr(self, key, value)
        self.last_step, self.base_lr = last, base
        self.optimizer.lr = self.lr_at(last)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper_names)
        return f"{type(self).__name__}({hyper}, last_step={self.last_step})"


class CosineSchedule(Schedule):
    r"""Linear warm-up followed by cosine annealing to ``min_lr``.

    With ``W = warmup_steps``, ``T = total_steps - W`` and ``t = last_step``::

        lr(t) = base_lr * (t + 1) / (W + 1)                                   t <  W
        lr(t) = min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - W) / T)) / 2  W <= t <= W + T
        lr(t) = min_lr                                                        t >  W + T

    With ``W = 0`` and ``t <= total_steps`` this is exactly torch's
    ``CosineAnnealingLR`` closed form (``T_max = total_steps``, ``eta_min = min_lr``); unlike
    torch the rate stays at ``min_lr`` past the end instead of rising again.  The warm-up
    never uses a zero rate and reaches ``base_lr`` at ``t = W``.

    Args:
        optimizer: its current ``lr`` is the peak ``base_lr``.
        total_steps: length of warm-up plus annealing, in ``step()`` calls (> warmup_steps).
        warmup_steps: >= 0.
        min_lr: final rate >= 0.
    """

    _hyper_names = ("total_steps", "warmup_steps", "min_lr")

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int = 0,
                 min_lr: float = 0.0):
        super().__init__(optimizer, total_steps=total_steps, warmup_steps=warmup_steps,
                         min_lr=min_lr)

    def _check_hyper(self, h: dict) -> dict:
        total = _integer("total_steps", h["total_steps"], low=1)
        warm = _integer("warmup_steps", h["warmup_steps"], low=0)
        if warm >= total:
            raise ValueError(f"invalid warmup_steps: {warm!r} (must be < total_steps={total})")
        return dict(total_steps=total, warmup_steps=warm,
                    min_lr=_real("min_lr", h["min_lr"], low=0.0))

    def lr_at(self, t: int) -> float:
        w = self.warmup_steps
        if t < w:
            return self.base_lr * (t + 1) / (w + 1)
        T = self.total_steps - w
        tc = min(t - w, T)
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * tc / T)) / 2


class StepSchedule(Schedule):
    r"""Decay by ``gamma`` every ``step_size`` steps, as torch's ``StepLR``::

        lr(t) = base_lr * gamma ** (t // step_size)
    """

    _hyper_names = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer, step_size=step_size, gamma=gamma)

    def _check_hyper(self, h: dict) -> dict:
        return dict(step_size=_integer("step_size", h["step_size"], low=1),
                    gamma=_real("gamma", h["gamma"], low=0.0, low_open=True))

    def lr_at(self, t: int) -> float:
        return self.base_lr * self.gamma ** (t // self.step_size)


class MultiStepSchedule(Schedule):
    r"""Decay by ``gamma`` at each milestone, as torch's ``MultiStepLR``::

        lr(t) = base_lr * gamma ** (number of milestones <= t)

    ``milestones`` must be strictly increasing positive integers.
    """

    _hyper_names = ("milestones", "gamma")

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1):
        super().__init__(optimizer, milestones=milestones, gamma=gamma)

    def _check_hyper(self, h: dict) -> dict:
        raw = h["milestones"]
        try:
            ms = tuple(_integer("milestones", m, low=1) for m in np.asarray(raw).ravel())
        except (TypeError, ValueError):
            raise ValueError(f"invalid milestones: {raw!r} "
                             "(must be strictly increasing positive integers)") from None
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"invalid milestones: {raw!r} "
                             "(must be strictly increasing positive integers)")
        return dict(milestones=ms, gamma=_real("gamma", h["gamma"], low=0.0, low_open=True))

    def lr_at(self, t: int) -> float:
        return self.base_lr * self.gamma ** bisect_right(self.milestones, t)


# ------------------------------------------------------------------------------------------
# gradient clipping


def clip_grad_norm(params, max_norm: float, eps: float = 1e-6,
                   error_if_nonfinite: bool = False) -> float:
    r"""Scale all gradients together so their global L2 norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``::

        norm = sqrt(sum over parameters of sum(g ** 2))
        coef = max_norm / (norm + eps)
        g    = g * coef      for every gradient, if coef < 1

    Args:
        params: Parameters, ``(name, Parameter)`` pairs, a single Parameter or a Module;
            ``None`` gradients are skipped.
        max_norm: >= 0; ``inf`` only measures the norm.
        eps: added to the norm, as torch (1e-6).
        error_if_nonfinite: raise ValueError if the norm is inf or nan (otherwise, as torch,
            the gradients become nan).

    Returns:
        The global norm *before* clipping, as a Python float (each gradient's sum of
        squares in its own dtype, the total in float64).
    """
    max_norm = _real("max_norm", max_norm, low=0.0, allow_inf=True)
    grads = _grads(params)
    total = 0.0
    for g in grads:
        flat = g.reshape(-1)
        total += float(np.dot(flat, flat))
    norm = math.sqrt(total)
    if not math.isfinite(norm):
        if error_if_nonfinite:
            raise ValueError(f"the total gradient norm is {norm}; cannot clip")
        with np.errstate(invalid="ignore", over="ignore"):
            coef = max_norm / (norm + eps)
            for g in grads:
                g *= coef
        return norm
    coef = max_norm / (norm + eps)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return norm


def clip_grad_value(params, value: float) -> None:
    """Clamp every gradient element to ``[-value, value]`` in place, as
    ``torch.nn.utils.clip_grad_value_``.  ``value`` must be >= 0."""
    value = _real("value", value, low=0.0, allow_inf=True)
    for g in _grads(params):
        np.clip(g, -value, value, out=g)
