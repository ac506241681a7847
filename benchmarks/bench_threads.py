"""The threaded element-wise kernels of the dense engine at 1 and 2 threads, quiet and busy.

    PYTHONPATH=$PWD python benchmarks/bench_threads.py                # quiet machine
    PYTHONPATH=$PWD python benchmarks/bench_threads.py --busy 1       # + 1 competing busy loop
    PYTHONPATH=$PWD python benchmarks/bench_threads.py --sizes        # serial threshold scan
    PYTHONPATH=$PWD python benchmarks/bench_threads.py --contention   # quiet, then busy loops

Each kernel runs at the shapes of the training-step benchmark (FC 784-800-10, batch 128,
T = 32: ``[32, 102400]``; the conv net's first layer, batch 64, T = 4: ``[4, 1605632]`` and its
BatchNorm/pooling on ``[256, 32, 784]`` maps).  ``serial`` is the single-threaded Numba kernel,
``t=1``/``t=2`` the threaded driver with 1 and 2 threads (``t=1`` runs the serial kernel
through the driver: its overhead).  Variants alternate call by call; the table gives medians
(ms) over ``--reps`` calls.  ``--busy K`` starts K processes running ``while 1: pass`` for the
duration (the "machine is busy" case; ``--busy-session`` starts them in their own session,
hence their own scheduler autogroup, as another user's program would run, with this process's
autogroup nice value; ``--busy-pin CPU`` pins them to one core).  ``--gemm`` puts a [512, 784] x [784, 800] product before every timed
call, as in a training step (OpenBLAS's threads are then awake).

``--contention`` (graceful degradation): the same kernels, serial vs two threads with the
adaptive choice (``snncore.threads.ModeChooser``, the default) and with it off (``fixed``:
always threaded above the size threshold), first on the machine as it is, then with one busy
loop pinned to CPU 0, then with one unpinned (each in its own session).  The columns give the
median time and ``auto/serial`` both as the ratio of medians and of means (the mean counts the
chooser's probes of the losing mode).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def _lif_cases(rng):
    from training import kernels
    f = np.float32
    cases = {}
    for name, (T, N) in {"LIF fc32": (32, 102400), "LIF conv1": (4, 1605632)}.items():
        cur = (rng.standard_normal((T, N)) + 0.6).astype(f)
        g = rng.standard_normal((T, N)).astype(f)
        s, u, gc = (np.empty((T, N), f) for _ in range(3))
        a = (f(0.5), f(1.0), 0, f(0.0), 1, f(2.0))
        kernels.lif_forward(cur, *a, False, s, u)
        cases[name + " fwd"] = (
            lambda cur=cur, s=s, u=u: kernels.lif_forward(cur, *a, False, s, u),
            lambda n, cur=cur, s=s, u=u: kernels.lif_forward_parallel(cur, *a, False, s, u,
                                                                      n_threads=n))
        cases[name + " bwd"] = (
            lambda g=g, s=s, u=u, gc=gc: kernels.lif_backward(g, u, s, *a, False, gc),
            lambda n, g=g, s=s, u=u, gc=gc: kernels.lif_backward_parallel(g, u, s, *a, False, gc,
                                                                          n_threads=n))
    return cases


def _bn_pool_cases(rng):
    from training import norm, pooling
    f = np.float32
    x3 = rng.standard_normal((256, 32, 784)).astype(f)
    g3 = rng.standard_normal(x3.shape).astype(f)
    C = x3.shape[1]
    mean, var, sg, sx = (np.empty(C) for _ in range(4))
    norm.channel_moments(x3, mean, var)
    inv = 1.0 / np.sqrt(var + 1e-5)
    sc, sh = inv.astype(f), (-mean * inv).astype(f)
    y, dx = np.empty_like(x3), np.empty_like(x3)
    k, a, b = inv, np.zeros(C), np.zeros(C)
    maps = x3.reshape(-1, 28, 28)
    py = np.empty((maps.shape[0], 14, 14), f)
    pg = rng.standard_normal(py.shape).astype(f)
    pdx = np.empty_like(maps)
    return {
        "BN moments": (lambda: norm.channel_moments(x3, mean, var),
                       lambda n: norm.channel_moments_parallel(x3, mean, var, n_threads=n)),
        "BN affine": (lambda: norm.affine(x3, sc, sh, y),
                      lambda n: norm.affine_parallel(x3, sc, sh, y, n_threads=n)),
        "BN bwd sums": (lambda: norm.backward_sums(g3, x3, mean, inv, sg, sx),
                        lambda n: norm.backward_sums_parallel(g3, x3, mean, inv, sg, sx,
                                                              n_threads=n)),
        "BN bwd input": (lambda: norm.backward_input(g3, x3, mean, inv, k, a, b, dx),
                         lambda n: norm.backward_input_parallel(g3, x3, mean, inv, k, a, b, dx,
                                                                n_threads=n)),
        "avgpool fwd": (lambda: pooling.avg_pool_forward(maps, 2, 2, 2, 2, py),
                        lambda n: pooling.avg_pool_forward_parallel(maps, 2, 2, 2, 2, py,
                                                                    n_threads=n)),
        "avgpool bwd": (lambda: pooling.avg_pool_backward(pg, 2, 2, 2, 2, pdx),
                        lambda n: pooling.avg_pool_backward_parallel(pg, 2, 2, 2, 2, pdx,
                                                                     n_threads=n)),
    }


def _time(fn, gemm) -> float:
    if gemm is not None:
        gemm()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _medians(variants: dict, reps: int, pre) -> dict:
    """Call the variants in turn ``reps`` times (after one warm-up each); per variant the
    median and the mean time (ms)."""
    for v in variants.values():
        v()
    times = {k: [] for k in variants}
    for _ in range(reps):
        for k, v in variants.items():
            times[k].append(_time(v, pre))
    return {k: (1e3 * statistics.median(v), 1e3 * statistics.mean(v)) for k, v in times.items()}


def _cases():
    rng = np.random.default_rng(0)
    return {**_lif_cases(rng), **_bn_pool_cases(rng)}


def _gemm(gemm: bool):
    rng = np.random.default_rng(1)
    X = rng.random((512, 784)).astype(np.float32)
    W = rng.random((800, 784)).astype(np.float32)
    return (lambda: X @ W.T) if gemm else None


def kernel_table(reps: int, gemm: bool) -> None:
    """serial, and the threaded driver at 1 and 2 threads always threaded (no adaptive choice)."""
    from snncore import threads as TH
    TH.ADAPTIVE = False
    pre = _gemm(gemm)
    print(f"{'kernel':16s} {'serial':>8s} {'t=1':>8s} {'t=2':>8s} {'t2/serial':>9s}")
    for name, (serial, par) in _cases().items():
        med = _medians({"serial": serial, "t=1": lambda: par(1), "t=2": lambda: par(2)}, reps,
                       pre)
        med = {k: v[0] for k, v in med.items()}
        print(f"{name:16s} {med['serial']:8.2f} {med['t=1']:8.2f} {med['t=2']:8.2f} "
              f"{med['t=2'] / med['serial']:9.2f}", flush=True)


def contention_table(reps: int, gemm: bool) -> dict:
    """Serial vs two threads, fixed and adaptive; returns ``{kernel: (fixed, auto med, auto
    mean)}`` ratios to serial."""
    from snncore import threads as TH

    def mode(par, adaptive):
        def call():
            TH.ADAPTIVE = adaptive
            try:
                par(2)
            finally:
                TH.ADAPTIVE = True
        return call
    pre = _gemm(gemm)
    TH._CHOOSER.clear()
    print(f"{'kernel':16s} {'serial':>8s} {'fixed':>8s} {'auto':>8s} {'fixed/ser':>9s} "
          f"{'auto/ser':>9s} {'mean a/s':>9s}")
    ratios = {}
    for name, (serial, par) in _cases().items():
        r = _medians({"serial": serial, "fixed": mode(par, False), "auto": mode(par, True)},
                     reps, pre)
        ratios[name] = (r["fixed"][0] / r["serial"][0], r["auto"][0] / r["serial"][0],
                        r["auto"][1] / r["serial"][1])
        print(f"{name:16s} {r['serial'][0]:8.2f} {r['fixed'][0]:8.2f} {r['auto'][0]:8.2f} "
              f"{ratios[name][0]:9.2f} {ratios[name][1]:9.2f} {ratios[name][2]:9.2f}", flush=True)
    worst = max(v[2] for v in ratios.values())
    print(f"worst mean auto/serial {worst:.2f}; worst fixed/serial "
          f"{max(v[0] for v in ratios.values()):.2f}")
    return ratios


def _autogroup_nice():
    """This process's scheduler autogroup nice value (Linux; None where unknown)."""
    try:
        with open("/proc/self/autogroup") as f:
            return int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _start_busy(k: int, session: bool, pin: int | None) -> list:
    """``k`` processes running ``while 1: pass``; with ``session`` each in its own session
    (hence its own autogroup, given this process's autogroup nice value, so that it competes
    as an equal), pinned to CPU ``pin`` when given."""
    nice = _autogroup_nice() if session else None

    def setup():
        if nice is not None:
            try:
                with open("/proc/self/autogroup", "w") as f:
                    f.write(str(nice))
            except OSError:
                pass
        if pin is not None:
            os.sched_setaffinity(0, {pin})
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"], start_new_session=session,
                             preexec_fn=setup) for _ in range(k)]


def _stop(procs) -> None:
    for p in procs:
        p.kill()
        p.wait()


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def contention(reps: int, gemm: bool) -> None:
    """The contention table quiet, with one busy loop pinned to CPU 0, with one unpinned."""
    for label, k, pin in (("as is", 0, None), ("1 busy loop pinned to CPU 0", 1, 0),
                          ("1 busy loop, not pinned", 1, None)):
        busy = _start_busy(k, True, pin)
        try:
            time.sleep(0.5 if k else 0)
            print(f"\n{label}; gemm {gemm}, reps {reps}; load average {_load()}", flush=True)
            contention_table(reps, gemm)
        finally:
            _stop(busy)


def size_scan(reps: int) -> None:
    """LIF forward ``[T=4, N]``: serial vs 2 threads across sizes (for the serial threshold)."""
    from snncore import threads as TH
    from training import kernels
    TH.MIN_PARALLEL_ELEMENTS = 0          # this process only: force the threaded path
    TH.ADAPTIVE = False
    rng = np.random.default_rng(0)
    f = np.float32
    print(f"{'elements':>9s} {'serial':>8s} {'t=2':>8s} {'t2/serial':>9s}   (LIF forward, T=4)")
    for e in (2 ** k for k in range(14, 22)):
        N = e // 4
        cur = rng.standard_normal((4, N)).astype(f)
        s, u = np.empty_like(cur), np.empty_like(cur)
        a = (f(0.5), f(1.0), 0, f(0.0), 1, f(2.0), False)
        ser = lambda: kernels.lif_forward(cur, *a, s, u)          # noqa: E731
        par = lambda: kernels.lif_forward_parallel(cur, *a, s, u, n_threads=2)   # noqa: E731
        ser(), par()
        ts, tp = [], []
        for _ in range(reps):
            ts.append(_time(ser, None))
            tp.append(_time(par, None))
        ms, mp = 1e3 * statistics.median(ts), 1e3 * statistics.median(tp)
        print(f"{e:9d} {ms:8.3f} {mp:8.3f} {mp / ms:9.2f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--busy", type=int, default=0, help="competing busy-loop processes")
    ap.add_argument("--busy-session", action="store_true",
                    help="start the busy loops in their own session (own autogroup)")
    ap.add_argument("--busy-pin", type=int, default=None, metavar="CPU",
                    help="pin the busy loops to this CPU")
    ap.add_argument("--gemm", action="store_true", help="a BLAS product before every call")
    ap.add_argument("--sizes", action="store_true", help="serial-threshold scan instead")
    ap.add_argument("--contention", action="store_true",
                    help="serial vs 2 threads (fixed and adaptive): as is, then with busy loops")
    args = ap.parse_args(argv)
    import threadpoolctl
    threadpoolctl.threadpool_limits(2, user_api="blas")
    if args.contention:
        contention(args.reps, args.gemm)
        print(f"load average at end {_load()}")
        return
    busy = _start_busy(args.busy, args.busy_session, args.busy_pin)
    try:
        print(f"busy loops {args.busy}, gemm {args.gemm}, reps {args.reps}; load average "
              f"{_load()}", flush=True)
        size_scan(args.reps) if args.sizes else kernel_table(args.reps, args.gemm)
        print(f"load average at end {_load()}")
    finally:
        _stop(busy)


if __name__ == "__main__":
    main()
