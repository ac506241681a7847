"""Central finite differences for the dense engine's hand-derived backward passes.

Use in float64 and smooth mode, so the network is a smooth function of its inputs and
parameters: ``check_module_gradients(module, x)`` compares ``module.backward`` against
finite differences of ``L = sum(w * module.forward(x))`` for a fixed random ``w``, for the
input and for every parameter, and raises AssertionError with the worst entry.
"""
from __future__ import annotations

import numpy as np

import training


def _loss(module, x, w):
    return float(np.sum(w * module.forward(x)))


def numeric_grad(f, array: np.ndarray, eps: float, max_entries: int | None, rng):
    """Central differences of scalar ``f()`` w.r.t. (a random subset of) ``array``'s entries."""
    flat = array.reshape(-1)
    idx = np.arange(flat.size)
    if max_entries is not None and flat.size > max_entries:
        idx = rng.choice(flat.size, size=max_entries, replace=False)
    out = np.full(flat.size, np.nan)
    for i in idx:
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        out[i] = (fp - fm) / (2 * eps)
    return out.reshape(array.shape), idx


def assert_close(analytic, numeric, idx, what, rtol, atol):
    a = analytic.reshape(-1)[idx]
    n = numeric.reshape(-1)[idx]
    err = np.abs(a - n)
    tol = atol + rtol * np.abs(n)
    if not np.all(err <= tol):
        k = int(np.argmax(err - tol))
        raise AssertionError(
            f"{what}: analytic {a[k]:.8g} vs numeric {n[k]:.8g} at flat index {idx[k]} "
            f"(max abs err {err.max():.3g}, {np.sum(err > tol)}/{len(idx)} entries off)")
    # a check that cannot fail is a defect: the gradient must not be identically zero
    assert np.abs(n).max() > 0, f"{what}: numeric gradient is zero everywhere; the check is vacuous"


def check_module_gradients(module, x, *, eps=1e-6, rtol=1e-5, atol=1e-7, max_entries=60,
                           seed=0, check_input=True):
    """Compare ``module.backward`` with central differences (float64, smooth mode)."""
    assert x.dtype == np.float64, "gradient checks run in float64"
    rng = np.random.default_rng(seed)
    with training.smooth_mode(True):
        module.train()
        y = module.forward(x)
        w = rng.standard_normal(y.shape)
        module.zero_grad()
        gx = module.backward(w.copy())
        grads = {name: p.grad.copy() for name, p in module.named_parameters()}
        x = np.array(x, order="C")  # writable C-ordered copy (a stride-0 view keeps its strides otherwise)
        if check_input:
            num, idx = numeric_grad(lambda: _loss(module, x, w), x, eps, max_entries, rng)
            assert_close(gx, num, idx, f"{module!r} input gradient", rtol, atol)
        for name, p in module.named_parameters():
            num, idx = numeric_grad(lambda: _loss(module, x, w), p.data, eps, max_entries, rng)
            assert_close(grads[name], num, idx, f"{module!r} gradient of {name}", rtol, atol)
