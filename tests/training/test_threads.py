"""The threading policy (snncore.threads) and the threaded element-wise kernels.

Every threaded kernel must give the serial kernel's result bit for bit, at 1, 2 and 3 threads,
for sizes that do not divide evenly.  ``MIN_PARALLEL_ELEMENTS`` is lowered to 0 so that small
test arrays take the threaded path.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numba
import numpy as np
import pytest

import training
from snncore import threads as TH
from training import kernels, norm, pooling

N_THREADS = (1, 2, 3)


@pytest.fixture
def always_parallel(monkeypatch):
    monkeypatch.setattr(TH, "MIN_PARALLEL_ELEMENTS", 0)
    monkeypatch.setattr(TH, "ADAPTIVE", False)


def _same(a, b):
    """Bitwise equality (NaN payloads included)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.tobytes() == b.tobytes()


# ------------------------------------------------------------------------------- policy
def test_set_and_get_num_threads_round_trip():
    before = training.get_num_threads()
    try:
        training.set_num_threads(1)
        assert training.get_num_threads() == 1
        assert all(lib["num_threads"] == 1 for lib in training.threads_info()["blas"])
    finally:
        training.set_num_threads(before)
    assert training.get_num_threads() == before


def test_set_num_threads_covers_the_blas_numba_loads_later():
    """SciPy's OpenBLAS (loaded by Numba on its first array-code compilation) is limited too:
    in a fresh interpreter, every BLAS reports the number asked for after scipy.linalg loads."""
    code = ("import training, threadpoolctl\n"
            "training.set_num_threads(1)\n"
            "import scipy.linalg\n"
            "libs = [l for l in threadpoolctl.threadpool_info() if l['user_api'] == 'blas']\n"
            "print(len(libs), sorted({l['num_threads'] for l in libs}))\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out[-1] == "[1]", out


def test_threads_context_restores_numba_and_blas():
    numba_before = numba.get_num_threads()
    blas_before = TH.blas_threads()
    with training.threads(1):
        assert numba.get_num_threads() == 1
        assert TH.blas_threads() == 1
    assert numba.get_num_threads() == numba_before
    assert TH.blas_threads() == blas_before


def test_threads_context_restores_after_an_exception():
    before = numba.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with training.threads(1):
            raise RuntimeError("inside")
    assert numba.get_num_threads() == before


def test_request_above_numba_bound_is_clamped():
    top = TH.numba_max_threads()
    before = numba.get_num_threads()
    with training.threads(top + 3):
        assert training.get_num_threads() == top
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="number of threads must be a positive int"):
        training.set_num_threads(bad)
    with pytest.raises(ValueError, match="number of threads"):
        with training.threads(bad):
            pass


def test_threads_info_reports_each_library():
    info = training.threads_info()
    assert set(info) == {"numba", "numba_max", "numba_layer", "blas", "cpus", "affinity", "env"}
    assert info["numba"] == numba.get_num_threads()
    assert info["numba_max"] == numba.config.NUMBA_NUM_THREADS
    assert info["blas"], "NumPy's BLAS should be found by threadpoolctl"


def test_eventsim_exports_the_same_policy():
    import eventsim
    assert eventsim.set_num_threads is training.set_num_threads
    assert eventsim.threads is training.threads


def test_simulator_default_threads_follow_the_policy(tmp_path):
    import eventsim
    rng = np.random.default_rng(0)
    net = training.Sequential(training.Linear(6, 4, rng=rng), training.LIF(beta=0.5),
                              training.Linear(4, 2, rng=rng))
    path = tmp_path / "m.h5"
    training.export(net, path, input_shape=(6,), T=4)
    with training.threads(1):
        assert eventsim.Simulator(eventsim.load(path)).n_threads == 1
    top = TH.numba_max_threads()
    with training.threads(top):
        assert eventsim.Simulator(eventsim.load(path)).n_threads == top


# ------------------------------------------------------------------------- chunk runner
@pytest.mark.parametrize("n", [1, 2, 7, 101])
@pytest.mark.parametrize("n_threads", N_THREADS)
def test_parallel_chunks_covers_each_item_once(always_parallel, n, n_threads):
    hits = np.zeros(n, dtype=np.int64)
    lock = threading.Lock()

    def fn(lo, hi):
        with lock:
            hits[lo:hi] += 1
    TH.parallel_chunks(fn, n, n_threads=n_threads)
    assert (hits == 1).all()


def test_parallel_chunks_runs_small_work_serially():
    calls = []
    used = TH.parallel_chunks(lambda lo, hi: calls.append((lo, hi)), 10, work_per_item=2,
                              n_threads=2)
    assert used == 1 and calls == [(0, 10)]


def test_parallel_chunks_reraises_a_chunk_error(always_parallel):
    def fn(lo, hi):
        if lo <= 50 < hi:
            raise ValueError("chunk with item 50")
    with pytest.raises(ValueError, match="item 50"):
        TH.parallel_chunks(fn, 100, n_threads=2)


def test_mode_chooser_takes_the_faster_mode_and_probes_the_other():
    ch = TH.ModeChooser(probe_every=8, window=3)
    key = "site"
    for _ in range(2):                            # nothing counted yet: try the threads
        assert ch.threaded(key)
        ch.record(key, True, 2e-9)                # (the first call in a mode is warm-up)
    for _ in range(2):                            # threads measured, serial not yet
        assert not ch.threaded(key)
        ch.record(key, False, 1e-9)
    picks = []
    for _ in range(32):
        t = ch.threaded(key)
        picks.append(t)
        ch.record(key, t, 2e-9 if t else 1e-9)
    assert sum(picks) == 4                        # serial is faster: threads on probes only
    assert ch.estimates()[key][:2] == (1e-9, 2e-9)
    for _ in range(3):                            # the machine gets quiet: threads now win
        ch.record(key, True, 0.5e-9)
    assert ch.estimates()[key][1] == 0.5e-9
    assert ch.threaded(key) or ch.estimates()[key][2] % 8 == 0


def test_mode_chooser_ignores_warm_up_and_one_slow_call():
    ch = TH.ModeChooser(window=5)
    for v in (1e-9, 1e-9, 1e-9, 1e-9):
        ch.record("k", False, v)
    for v in (5e-6, 0.5e-9, 3e-7, 0.5e-9, 0.5e-9):   # compiling, fast, one slow, fast
        ch.record("k", True, v)
    assert ch.estimates()["k"][:2] == (1e-9, 0.5e-9)
    assert ch.threaded("k") or ch.estimates()["k"][2] % ch.probe_every == 0


def test_parallel_chunks_falls_back_to_serial_where_threads_lose(monkeypatch):
    """A site whose threaded calls are slow (here: every partial range sleeps) runs serially
    after it has measured both modes, except on the chooser's probes."""
    import time as _time
    monkeypatch.setattr(TH, "MIN_PARALLEL_ELEMENTS", 0)
    monkeypatch.setattr(TH, "ADAPTIVE", True)
    monkeypatch.setattr(TH, "_CHOOSER", TH.ModeChooser(probe_every=16))
    n = 64

    def fn(lo, hi):
        if (lo, hi) != (0, n):
            _time.sleep(0.001)
    used = [TH.parallel_chunks(fn, n, n_threads=2) for _ in range(24)]
    assert used[:4] == [2, 2, 1, 1]               # each mode: warm-up, then measured
    assert used[4:].count(2) <= 2                 # then serial, threads only on probes


def test_parallel_chunks_keeps_threads_where_they_win(monkeypatch):
    import time as _time
    monkeypatch.setattr(TH, "MIN_PARALLEL_ELEMENTS", 0)
    monkeypatch.setattr(TH, "ADAPTIVE", True)
    monkeypatch.setattr(TH, "_CHOOSER", TH.ModeChooser(probe_every=16))
    n = 64

    def fn(lo, hi):
        if (lo, hi) == (0, n):
            _time.sleep(0.02)                     # the serial call is the slow one
    used = [TH.parallel_chunks(fn, n, n_threads=2) for _ in range(24)]
    assert used[4:].count(1) <= 2


def test_chunk_bounds_are_contiguous_and_balanced():
    b = TH.chunk_bounds(10, 3)
    assert b == [(0, 4), (4, 7), (7, 10)]
    assert TH.chunk_bounds(2, 8) == [(0, 1), (1, 2)]


# --------------------------------------------------------------------------- LIF kernels
def _lif_inputs(T, N, dtype, static=False, seed=0):
    rng = np.random.default_rng(seed)
    cur = (rng.standard_normal((1 if static else T, N)) + 0.6).astype(dtype)
    g = rng.standard_normal((T, N)).astype(dtype)
    return cur, g


@pytest.mark.parametrize("n_threads", N_THREADS)
@pytest.mark.parametrize("reset", [0, 1])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lif_parallel_equals_serial(always_parallel, n_threads, reset, detach, static, dtype):
    T, N = 7, 1013
    cur, g = _lif_inputs(T, N, dtype, static)
    d = np.dtype(dtype).type
    args = (d(0.8), d(1.0), reset, d(0.1), 1, d(2.0), False)
    s0, u0 = np.empty((T, N), dtype), np.empty((T, N), dtype)
    s1, u1 = np.full((T, N), np.nan, dtype), np.full((T, N), np.nan, dtype)
    kernels.lif_forward(cur, *args, s0, u0)
    kernels.lif_forward_parallel(cur, *args, s1, u1, n_threads=n_threads)
    _same(s0, s1)
    _same(u0, u1)
    gc0, gc1 = np.empty((T, N), dtype), np.full((T, N), np.nan, dtype)
    bargs = (d(0.8), d(1.0), reset, d(0.1), 1, d(2.0), detach)
    kernels.lif_backward(g, u0, s0, *bargs, gc0)
    kernels.lif_backward_parallel(g, u0, s0, *bargs, gc1, n_threads=n_threads)
    _same(gc0, gc1)


@pytest.mark.parametrize("n_threads", N_THREADS)
@pytest.mark.parametrize("sur_code", [0, 1, 2, 3, 4])
def test_lif_parallel_equals_serial_for_every_surrogate_and_smooth(always_parallel, n_threads,
                                                                   sur_code):
    T, N = 5, 777
    cur, g = _lif_inputs(T, N, np.float64, seed=sur_code)
    for smooth in (False, True):
        a = (0.7, 1.0, 0, 0.0, sur_code, 3.0, smooth)
        s0, u0 = np.empty((T, N)), np.empty((T, N))
        s1, u1 = np.empty((T, N)), np.empty((T, N))
        kernels.lif_forward(cur, *a, s0, u0)
        kernels.lif_forward_parallel(cur, *a, s1, u1, n_threads=n_threads)
        _same(s0, s1)
        _same(u0, u1)
    gc0, gc1 = np.empty((T, N)), np.empty((T, N))
    kernels.lif_backward(g, u0, s0, 0.7, 1.0, 1, 0.0, sur_code, 3.0, False, gc0)
    kernels.lif_backward_parallel(g, u0, s0, 0.7, 1.0, 1, 0.0, sur_code, 3.0, False, gc1,
                                  n_threads=n_threads)
    _same(gc0, gc1)


@pytest.mark.parametrize("n_threads", N_THREADS)
@pytest.mark.parametrize("ternary,window", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("per_neuron", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("reset", [0, 1])
def test_lif_ext_parallel_equals_serial(always_parallel, n_threads, ternary, window, per_neuron,
                                        masked, reset):
    T, B, F = 6, 13, 37            # N = 481, per-neuron parameters repeat every F neurons
    N = B * F
    rng = np.random.default_rng(3)
    cur = (rng.standard_normal((T, N)) * 1.5).astype(np.float32)
    g = rng.standard_normal((T, N)).astype(np.float32)
    nb = F if per_neuron else 1
    beta = rng.uniform(0.5, 0.95, nb).astype(np.float32)
    theta = rng.uniform(0.5, 1.5, nb).astype(np.float32)
    mask = rng.random((T, N)) < 0.7 if masked else np.zeros((0, 0), dtype=np.bool_)
    f = np.float32
    fa = (beta, theta, reset, f(0.0), 1, f(2.0), False, ternary, window)
    s0, u0 = np.empty((T, N), f), np.empty((T, N), f)
    s1, u1 = np.empty((T, N), f), np.empty((T, N), f)
    kernels.lif_forward_ext(cur, *fa, s0, u0)
    kernels.lif_forward_ext_parallel(cur, *fa, s1, u1, n_threads=n_threads)
    _same(s0, s1)
    _same(u0, u1)
    ba = (beta, theta, reset, f(0.0), 1, f(2.0), False, ternary, window, mask, f(1.25))
    out0 = [np.empty((T, N), f), np.empty(N, f), np.empty(N, f)]
    out1 = [np.full((T, N), np.nan, f), np.full(N, np.nan, f), np.full(N, np.nan, f)]
    kernels.lif_backward_ext(g, u0, s0, *ba, *out0)
    kernels.lif_backward_ext_parallel(g, u0, s0, *ba, *out1, n_threads=n_threads)
    for a, b in zip(out0, out1):
        _same(a, b)


# ----------------------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("n_threads", N_THREADS)
@pytest.mark.parametrize("shape", [(9, 5, 13), (4, 7, 1), (3, 11, 6)])
@pytest.mark.parametrize("static_rep", [1, 3])
def test_batchnorm_kernels_parallel_equal_serial(always_parallel, n_threads, shape, static_rep):
    rng = np.random.default_rng(5)
    N, C, S = shape
    x3 = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    g3 = rng.standard_normal((N * static_rep, C, S)).astype(np.float32)
    m0, v0, m1, v1 = (np.empty(C) for _ in range(4))
    norm.channel_moments(x3, m0, v0)
    norm.channel_moments_parallel(x3, m1, v1, n_threads=n_threads)
    _same(m0, m1)
    _same(v0, v1)
    scale = rng.standard_normal(C).astype(np.float32)
    shift = rng.standard_normal(C).astype(np.float32)
    y0, y1 = np.empty_like(x3), np.empty_like(x3)
    norm.affine(x3, scale, shift, y0)
    norm.affine_parallel(x3, scale, shift, y1, n_threads=n_threads)
    _same(y0, y1)
    invstd = 1.0 / np.sqrt(v0 + 1e-5)
    sg0, sx0, sg1, sx1 = (np.full(C, np.nan) for _ in range(4))
    norm.backward_sums(g3, x3, m0, invstd, sg0, sx0)
    norm.backward_sums_parallel(g3, x3, m0, invstd, sg1, sx1, n_threads=n_threads)
    _same(sg0, sg1)
    _same(sx0, sx1)
    k = invstd * 1.5
    a, b = sg0 / g3.size, sx0 / g3.size
    dx0, dx1 = np.empty_like(g3), np.empty_like(g3)
    norm.backward_input(g3, x3, m0, invstd, k, a, b, dx0)
    norm.backward_input_parallel(g3, x3, m0, invstd, k, a, b, dx1, n_threads=n_threads)
    _same(dx0, dx1)


@pytest.mark.parametrize("n_threads", (1, 2))
def test_batchnorm_layer_is_bitwise_independent_of_threads(always_parallel, n_threads):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 5, 7, 6, 6)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for n in (1, n_threads):
        bn = training.BatchNorm2d(7)
        with training.threads(n):
            y = bn.forward(x)
            dx = bn.backward(g)
        results.append((y, dx, bn.weight.grad.copy(), bn.bias.grad.copy(), bn.running_var.copy()))
    for a, b in zip(*results):
        _same(a, b)


# ------------------------------------------------------------------------------ pooling
@pytest.mark.parametrize("n_threads", N_THREADS)
@pytest.mark.parametrize("k,s,hw", [(2, 2, (8, 8)), (2, 2, (7, 9)), (3, 2, (9, 8)), (2, 1, (5, 6))])
def test_pooling_kernels_parallel_equal_serial(always_parallel, n_threads, k, s, hw):
    rng = np.random.default_rng(7)
    M = 29
    H, W = hw
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    x = rng.standard_normal((M, H, W)).astype(np.float32)
    x[3, 1, 1] = np.nan
    g = rng.standard_normal((M, Ho, Wo)).astype(np.float32)
    y0, y1 = np.empty((M, Ho, Wo), np.float32), np.empty((M, Ho, Wo), np.float32)
    pooling.avg_pool_forward(x, k, k, s, s, y0)
    pooling.avg_pool_forward_parallel(x, k, k, s, s, y1, n_threads=n_threads)
    _same(y0, y1)
    d0, d1 = np.empty_like(x), np.full_like(x, np.nan)
    pooling.avg_pool_backward(g, k, k, s, s, d0)
    pooling.avg_pool_backward_parallel(g, k, k, s, s, d1, n_threads=n_threads)
    _same(d0, d1)
    a0, a1 = np.empty((M, Ho, Wo), np.int32), np.empty((M, Ho, Wo), np.int32)
    pooling.max_pool_forward(x, k, k, s, s, y0, a0)
    pooling.max_pool_forward_parallel(x, k, k, s, s, y1, a1, n_threads=n_threads)
    _same(y0, y1)
    _same(a0, a1)
    for Tp in (1, 3):              # 3: one argmax map for every step (static input)
        gt = rng.standard_normal((Tp, M, Ho * Wo)).astype(np.float32)
        e0, e1 = np.empty((Tp, M, H * W), np.float32), np.full((Tp, M, H * W), np.nan, np.float32)
        pooling.max_pool_backward(gt, a0.reshape(M, -1), e0)
        pooling.max_pool_backward_parallel(gt, a0.reshape(M, -1), e1, n_threads=n_threads)
        _same(e0, e1)


def test_conv_step_is_bitwise_independent_of_threads(always_parallel):
    """A conv + BatchNorm + LIF + pooling step at 1 and 2 threads: same outputs and gradients."""
    from training import losses
    grads = []
    for n in (1, 2):
        rng = np.random.default_rng(8)
        net = training.Sequential(
            training.Conv2d(1, 4, 3, padding=1, rng=rng), training.BatchNorm2d(4),
            training.LIF(beta=0.5), training.MaxPool2d(2), training.Conv2d(4, 6, 3, rng=rng),
            training.LIF(beta=0.7, reset="subtract"), training.AvgPool2d(2), training.Flatten(),
            training.Linear(6 * 2 * 2, 3, rng=rng))
        x = (rng.random((4, 5, 1, 12, 12)) < 0.4).astype(np.float32)
        labels = rng.integers(0, 3, 5)
        with training.threads(n):
            y = net.forward(x)
            _, g = losses.rate_cross_entropy(y, labels)
            net.backward(g)
        grads.append([y] + [p.grad.copy() for _, p in net.named_parameters()])
    for a, b in zip(*grads):
        _same(a, b)


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0), (2, 2)])
def test_conv_lowering_is_bitwise_independent_of_threads(always_parallel, stride, padding):
    """Conv2d's padding, im2col, col2im and crop split by image over threads: output, weight,
    bias and input gradients equal one thread's bit for bit."""
    out = []
    for n in (1, 2, 3):
        rng = np.random.default_rng(3)
        conv = training.Conv2d(3, 5, 3, stride=stride, padding=padding, rng=rng)
        x = rng.standard_normal((3, 7, 3, 11, 10)).astype(np.float32)
        with training.threads(n):
            y = conv.forward(x)
            g = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
            dx = conv.backward(g)
        out.append([y, dx, conv.weight.grad.copy(), conv.bias.grad.copy()])
    for other in out[1:]:
        for a, b in zip(out[0], other):
            _same(a, b)
