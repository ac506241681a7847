"""Fused element-wise kernels of the optimisers (one pass over each parameter).

Each kernel performs, element by element, exactly the operations of the NumPy reference in
:mod:`training.optim` in the same order and the same dtype (the scalars arrive already cast
to the arrays' dtype, as NumPy casts Python floats), so the results are bitwise equal to it;
``tests/training/test_optim.py`` checks that.  Numba does not contract ``a * b + c`` into a
fused multiply-add unless asked to (no ``fastmath``), which keeps every rounding in place;
``error_model="numpy"`` drops Python's zero-division check, which would otherwise keep the
loop from being vectorised (IEEE division, as NumPy's).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def adam_update(p, g, m, v, wd, decay_mode, keep, lerp_small, w, beta2, one_minus_beta2,
                bias2_sqrt, eps, neg_step):
    """One Adam/AdamW step over flat contiguous arrays ``p, g, m, v [n]`` (``p, m, v`` in place).

    ``decay_mode``: 0 none, 1 L2 (``g + wd p``), 2 decoupled (``p *= keep`` first).
    ``lerp_small``: ``m`` as ``m + w (g - m)`` (``w = 1 - beta1 < 0.5``), else as
    ``g - w (g - m)`` with ``w = beta1``.  The other scalars: ``beta2``, ``1 - beta2``,
    ``sqrt(1 - beta2^t)``, ``eps`` and ``-lr / (1 - beta1^t)``; all of the arrays' dtype.
    """
    n = p.shape[0]
    for i in range(n):
        pi = p[i]
        gi = g[i]
        if decay_mode == 1:
            gi = gi + pi * wd
        elif decay_mode == 2:
            pi = pi * keep
        d = gi - m[i]
        if lerp_small:
            mi = m[i] + d * w
        else:
            mi = gi - d * w
        m[i] = mi
        vi = v[i] * beta2 + (gi * one_minus_beta2) * gi
        v[i] = vi
        p[i] = pi + (mi * neg_step) / (np.sqrt(vi) / bias2_sqrt + eps)
