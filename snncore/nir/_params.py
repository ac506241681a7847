"""Continuous NIR neuron parameters <-> the model file's discrete ones (docs/nir.md).

NIR states its neurons as differential equations in seconds; the model file runs one update
per step (docs/methods.md section 2).  For a step of ``dt`` seconds, a time constant ``tau``
becomes a decay per step and a resistance ``r`` an input gain per step.  Three readings are
implemented (``discretisation``):

    euler     decay = 1 - dt/tau          gain = r dt/tau            (snnTorch, Norse, Spyx, Lava)
    exact     decay = exp(-dt/tau)        gain = r (1 - exp(-dt/tau)) (input held over the step)
    rockpool  decay = exp(-dt/tau)        gain = r dt/tau / exp(-dt/tau)

``tau = inf`` is a pure integrator in every reading: decay 1, gain ``r`` (per step, as IF).
All values are float64 arrays here; the caller casts the results to the model dtype.
"""
from __future__ import annotations

import numpy as np

DISCRETISATIONS = ("euler", "exact", "rockpool")


class NIRConversionError(ValueError):
    """A NIR graph or a model cannot be converted; the message names the node or layer."""


def check_discretisation(how: str) -> str:
    if how not in DISCRETISATIONS:
        raise ValueError(f"discretisation: must be one of {list(DISCRETISATIONS)} (or 'auto' "
                         f"when loading), got {how!r}")
    return how


def check_dt(dt, where: str = "dt") -> float:
    """A finite step length > 0 in seconds."""
    try:
        value = float(dt)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a step length in seconds, got {dt!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: must be a finite number of seconds > 0, got {dt!r}")
    return value


def _positive(tau: np.ndarray, name: str, where: str) -> np.ndarray:
    tau = np.asarray(tau, dtype=np.float64)
    if np.any(np.isnan(tau)) or np.any(tau <= 0):
        k = int(np.argmax(np.isnan(tau) | (tau <= 0)))
        raise NIRConversionError(f"{where}.{name}: time constants must be > 0, got "
                                 f"{tau.reshape(-1)[k]!r} at index {k}")
    return tau


def decay(tau, dt: float, how: str, where: str, name: str = "tau") -> np.ndarray:
    """Decay per step of a state with time constant ``tau`` (seconds), in [0, 1]."""
    tau = _positive(tau, name, where)
    with np.errstate(divide="ignore"):
        ratio = dt / tau                      # 0 where tau = inf
    beta = 1.0 - ratio if how == "euler" else np.exp(-ratio)
    if np.any(beta < 0):
        k = int(np.argmax(beta < 0))
        raise NIRConversionError(
            f"{where}.{name}: dt = {dt:g} s is longer than the time constant "
            f"{tau.reshape(-1)[k]:g} s (index {k}); forward Euler would give the decay "
            f"{beta.reshape(-1)[k]:g} < 0. Pass the dt the exporter used (snnTorch writes "
            "its parameters for dt = 1e-4 s whatever the data's bin) or discretisation='exact'")
    return beta


def gain(tau, r, dt: float, how: str, where: str, name: str = "tau") -> np.ndarray:
    """Input gain per step of a state with time constant ``tau`` and resistance ``r``."""
    tau = _positive(tau, name, where)
    r = np.asarray(r, dtype=np.float64)
    inf = np.isinf(tau)
    ratio = np.where(inf, 0.0, dt / np.where(inf, 1.0, tau))
    if how == "euler":
        g = r * ratio
    elif how == "exact":
        g = r * -np.expm1(-ratio)
    else:
        g = r * ratio * np.exp(ratio)
    return np.where(inf, r, g)


def time_constant(beta, dt: float, how: str, where: str) -> np.ndarray:
    """The ``tau`` (seconds) whose decay per step is ``beta`` (inf where ``beta = 1``)."""
    beta = np.asarray(beta, dtype=np.float64)
    one = beta >= 1.0
    if how == "euler":
        with np.errstate(divide="ignore"):
            tau = dt / np.where(one, 1.0, 1.0 - beta)
    else:
        if np.any(beta <= 0):
            raise NIRConversionError(f"{where}: a decay of 0 has no time constant with "
                                     f"discretisation={how!r} (tau would be 0); use 'euler'")
        tau = -dt / np.log(np.where(one, 0.5, beta))
    return np.where(one, np.inf, tau)


def unit_gain_r(beta, dt: float, how: str) -> np.ndarray:
    """The resistance ``r`` that makes the input gain per step exactly 1 for decay ``beta``."""
    beta = np.asarray(beta, dtype=np.float64)
    one = beta >= 1.0
    safe = np.where(one, 0.5, beta)
    if how == "rockpool":                 # gain = r (-log beta) / beta
        with np.errstate(divide="ignore"):
            r = safe / -np.log(safe)
    else:                                 # gain = r (1 - beta), Euler and exact alike
        r = 1.0 / (1.0 - safe)
    return np.where(one, 1.0, r)


def lower_threshold(theta: np.ndarray) -> np.ndarray:
    """NIR's strict ``v > v_threshold`` for our ``u >= theta``: the largest float below
    ``theta`` in its own dtype (exact: ``u >= theta`` iff ``u > lower_threshold(theta)``)."""
    theta = np.asarray(theta)
    return np.nextafter(theta, theta.dtype.type(-np.inf))


def raise_threshold(v_threshold: np.ndarray, dtype) -> np.ndarray:
    """Our ``theta`` for NIR's strict ``v > v_threshold`` in ``dtype``: the next float up."""
    v = np.asarray(v_threshold, dtype=np.float64).astype(dtype)
    return np.nextafter(v, np.dtype(dtype).type(np.inf))
