"""Can a 0/1 input make the first layer's product cheaper than single-precision GEMM?

    python benchmarks/bench_binary_products.py --T 32 --blocks 64 256 800

The first layer of a rate-coded network multiplies a 0/1 matrix ``X [R, K]`` (R = T x batch
rows, K = 784 inputs) by ``W^T [K, N]`` (N = 800).  Table look-up ("four Russians"): split the
K inputs into groups of 4; for each group build the 16 sums of its weight rows over every
subset (15 additions of a row of a column block), then each output row is the sum over the
groups of the table entry its 4 input bits select: K/4 additions of a row instead of K
multiply-adds.  The kernel below does this per block of output columns (the block's tables
stay in cache while every row is summed) in Numba; it is compared with NumPy's
``X @ W.T`` (OpenBLAS SGEMM) on the same arrays, one thread each, in this process,
alternating, medians.  Prints each time and the largest difference from the GEMM's result
(the sums are taken in another order, so they differ in the last bits).

Result on this project's machine (benchmarks/README.md, "Issue 19 part 1, session 29"): the
tables are slower than SGEMM, which runs near the core's floating-point peak; the training
engine therefore keeps GEMM for 0/1 inputs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

GROUP = 4                     # inputs per table: 2^4 = 16 entries


def nibbles(x: np.ndarray) -> np.ndarray:
    """``[R, K]`` 0/1 -> ``[R, ceil(K/4)]`` uint8 codes, bit i = input ``4 g + i``."""
    R, K = x.shape
    pad = -K % GROUP
    b = np.concatenate([x != 0, np.zeros((R, pad), bool)], axis=1).reshape(R, -1, GROUP)
    return (b * (1 << np.arange(GROUP))).sum(axis=2).astype(np.uint8)


def make_table_product(block: int):
    """The table-look-up product for column blocks of ``block`` (a compile-time constant,
    so the inner loops over a block have a fixed trip count and vectorise)."""

    @njit(nogil=True, boundscheck=False)
    def product(codes, WT, y):
        """``y [R, N] = X @ W^T`` with ``X`` given as ``codes [R, G]``, ``WT [K, N]``."""
        R, G = codes.shape
        K, N = WT.shape
        tab = np.zeros((G, 16, block), dtype=WT.dtype)
        acc = np.empty(block, dtype=WT.dtype)
        for c0 in range(0, N, block):
            w = min(block, N - c0)
            for g in range(G):
                for v in range(1, 16):
                    low = v & -v
                    i = 0 if low == 1 else (1 if low == 2 else (2 if low == 4 else 3))
                    k = GROUP * g + i
                    for j in range(w):
                        tab[g, v, j] = tab[g, v ^ low, j] + (WT[k, c0 + j] if k < K else 0)
            for r in range(R):
                for j in range(w):
                    acc[j] = 0
                for g in range(G):
                    row = tab[g, codes[r, g]]
                    for j in range(block):
                        acc[j] += row[j]
                for j in range(w):
                    y[r, c0 + j] = acc[j]
    return product


def _median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, default=32, help="time steps (rows = T x batch)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rate", type=float, default=0.5, help="fraction of ones in X")
    ap.add_argument("--blocks", type=int, nargs="+", default=[64, 256, 800],
                    help="column block widths of the table kernel")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    R, K, N = args.T * args.batch, 784, 800
    x = (rng.random((R, K)) < args.rate).astype(np.float32)
    W = (rng.standard_normal((N, K)) * 0.05).astype(np.float32)
    WT = np.ascontiguousarray(W.T)
    codes = nibbles(x)
    ref = x @ W.T
    kernels = {b: make_table_product(b) for b in args.blocks}
    outs = {b: np.empty((R, N), np.float32) for b in args.blocks}
    for b, k in kernels.items():                      # compile
        k(codes, WT, outs[b])
    times = {"sgemm": []}
    times.update({b: [] for b in args.blocks})
    for _ in range(3):                                # alternate, three rounds
        times["sgemm"].append(_median_ms(lambda: x @ W.T, args.reps))
        for b, k in kernels.items():
            times[b].append(_median_ms(lambda: k(codes, WT, outs[b]), args.reps))
    gemm = statistics.median(times["sgemm"])
    fma = R * K * N / (gemm * 1e-3) / 1e9
    print(f"X [{R}, {K}] 0/1 at rate {args.rate} times W^T [{K}, {N}], one thread, load "
          f"{os.getloadavg()[0]:.2f}")
    print(f"sgemm                 {gemm:8.1f} ms  ({fma:.1f} G multiply-adds/s)")
    for b in args.blocks:
        t = statistics.median(times[b])
        err = float(np.abs(outs[b] - ref).max())
        print(f"tables, block {b:4d}    {t:8.1f} ms  ({t / gemm:.2f}x sgemm, max |diff| {err:.1e})")


if __name__ == "__main__":
    main()
