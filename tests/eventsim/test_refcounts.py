"""The simulator's step loops run without Numba's reference counting (``_nrt=False``).

That is safe only if nothing compiled that way allocates (Numba refuses to compile it) or
returns an array to a caller that counts references.  These tests check the two ways it
could go wrong: memory not freed after runs, and an array-returning function that could be
compiled without reference counting.
"""
from __future__ import annotations

import gc
import os

import numpy as np
import pytest
from numba.core import types
from numba.core.registry import CPUDispatcher
from numba.core.runtime import _nrt_python, rtsys

import eventsim
from eventsim import kernels, loop
from snncore import modelfile as mf

JIT_OFF = bool(int(os.environ.get("NUMBA_DISABLE_JIT", "0") or 0))
pytestmark = pytest.mark.skipif(JIT_OFF, reason="no compiled code with NUMBA_DISABLE_JIT=1")

# functions that allocate, themselves or through a call (and may return what was
# allocated): never compiled without reference counting, since Numba rejects an
# allocation there
ALLOCATING = {"run_batch", "run_time_major", "run_layer_major", "begin", "new_state",
              "time_major_sample", "layer_pass", "grow_output", "_grow", "_room",
              "split_spikes", "new_shared", "time_major", "run_time_pipelined",
              "_job_delivery"}


def _models():
    rng = np.random.default_rng(0)

    def w(*shape):
        return (rng.integers(-8, 9, size=shape) / 32).astype(np.float32)

    lif = mf.Spiking(beta=0.75, theta=0.5)
    mlp = mf.Model(input_shape=(20,), layers=[mf.Dense(w(30, 20)), lif, mf.Dense(w(12, 30)), lif,
                                              mf.Dense(w(4, 12)), mf.Readout()], T=12,
                   encoding="rate")
    conv = mf.Model(input_shape=(2, 6, 6), layers=[
        mf.Conv2d(w(3, 2, 3, 3), padding=(1, 1)), lif, mf.MaxPool2d((2, 2), (2, 2)), mf.Flatten(),
        mf.Dense(w(4, 27)), mf.Readout()], T=10, encoding="rate")
    rec = mf.Model(input_shape=(20,), layers=[mf.Dense(w(30, 20)), lif, mf.Dense(w(4, 30)),
                                              mf.Readout()],
                   connections=[mf.Connection(source=1, target=1, delay=2,
                                              projection=mf.Dense(w(30, 30)))],
                   T=12, encoding="rate")
    W = w(30, 30) * (rng.random((30, 30)) < 0.3)
    sparse = mf.Sparse(data=W[W != 0], indices=np.nonzero(W)[1],
                       indptr=np.concatenate([[0], np.cumsum((W != 0).sum(1))]), shape=W.shape)
    bundled = mf.Model(input_shape=(20,), layers=[mf.Dense(w(30, 20)), lif, mf.Dense(w(4, 30)),
                                                  mf.Readout()],
                       connections=[mf.Connection(source=1, target=1, delay=d, projection=sparse)
                                    for d in (1, 3)], T=12, encoding="rate")
    return {"mlp": mlp, "conv": conv, "recurrent": rec, "bundled": bundled}


def _runs(models):
    """Every model under both schedules where it allows them, lazy and predicted updates,
    with recorded neurons: results dropped at once."""
    rng = np.random.default_rng(1)
    for name, model in models.items():
        x = (rng.random((model.T, 3) + model.input_shape) < 0.4).astype(np.float32)
        schedules = ["time"] if model.connections else ["time", "layer"]
        for schedule in schedules:
            for kw in ({}, {"record_membrane": {1: [0, 2]}},
                       {"constant_drive": "predict", "leak": "power"},
                       {"threads_per_sample": 2}):
                sim = eventsim.Simulator(model, n_threads=1, schedule=schedule, **kw)
                rec = sim.run(x)
                assert rec.spikes is not None
                del rec, sim


def test_every_array_allocated_by_the_kernels_is_freed():
    models = _models()
    _runs(models)                       # compile first: compilation holds arrays of its own
    gc.collect()
    was_on = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        before = rtsys.get_allocation_stats()
        _runs(models)
        gc.collect()
        after = rtsys.get_allocation_stats()
    finally:
        if not was_on:
            _nrt_python.memsys_disable_stats()
    allocated = after.mi_alloc - before.mi_alloc
    freed = after.mi_free - before.mi_free
    assert allocated > 0, "the runs allocated nothing: the check cannot see anything"
    assert freed == allocated, f"{allocated - freed} Numba allocations not freed"


def _returns_array(ty) -> bool:
    if isinstance(ty, types.Array):
        return True
    if isinstance(ty, (types.BaseTuple,)):
        return any(_returns_array(t) for t in ty.types)
    return False


def test_no_array_returning_function_could_run_without_reference_counts():
    """A function returning an array must allocate (so that Numba cannot compile it without
    reference counting); anything else returning an array could be compiled inside a step
    loop and hand a caller that counts references a reference it does not own."""
    _runs(_models())
    seen = 0
    for mod in (kernels, loop):
        for name, disp in vars(mod).items():
            if not isinstance(disp, CPUDispatcher) or disp.__module__ != mod.__name__:
                continue
            for sig in disp.nopython_signatures:
                seen += 1
                if _returns_array(sig.return_type):
                    assert name in ALLOCATING, f"{mod.__name__}.{name} returns an array"
    assert seen > 0
    for name in ("time_major_steps", "layer_steps"):
        assert getattr(loop, name).targetoptions.get("_nrt") is False, name
