"""Loop orders for delivering one layer's spikes over a window of steps (what was tried).

    python benchmarks/bench_window_variants.py            # p = 5 % and 20 %, 1000 x 1000

Every variant computes ``acc[t, :] += W[i, :]`` for the spikes ``(t, i)`` of a Bernoulli
spike raster ``[T = 100, 1000]`` and must give the same bits as the time-major loop (each
entry sums its terms in ascending source order).  Printed: G events/s (events = spikes x
1000), single thread, JIT excluded; each variant's median of 5 calls per round, variants
alternating in order, medians over 7 rounds:

- ``time-major``: step by step, each spike's row added to that step's row of ``acc`` (the
  simulator's ``scatter_dense`` with ``schedule="time"``);
- ``source-major``: spikes regrouped by source, each row added to every step it spiked at
  (``eventsim.kernels.dense_window``, the layer-major schedule);
- ``source-major, windows of w steps``: the same over windows of w steps (so ``acc`` is
  smaller: L1 instead of L2 for small w);
- ``column tiles of c``: time-major with the targets in tiles of c columns, the tile's
  accumulator kept in a small buffer (register blocking as a GEMM would do it);
- ``source-major, <16 x float>``: source-major with the row addition written as explicit
  512-bit vector operations (an LLVM intrinsic), against Numba's auto-vectorised loop, which
  uses 256-bit vectors on this CPU.

Result on this machine (benchmarks/README.md): source-major is the fastest; neither smaller
windows, column tiles nor 512-bit vectors help, i.e. the loop is bound by the accumulator's
memory traffic, not by instructions.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _add16(typingctx, acc, a_off, w, w_off):
    """``acc[a_off:a_off+16] += w[w_off:w_off+16]`` as one <16 x float> operation."""
    def codegen(context, builder, sig, args):
        acc_arr = context.make_array(sig.args[0])(context, builder, args[0])
        w_arr = context.make_array(sig.args[2])(context, builder, args[2])
        vty = ir.VectorType(context.get_value_type(sig.args[0].dtype), 16)
        pa = builder.bitcast(builder.gep(acc_arr.data, [args[1]]), vty.as_pointer())
        pw = builder.bitcast(builder.gep(w_arr.data, [args[3]]), vty.as_pointer())
        builder.store(builder.fadd(builder.load(pa, align=4), builder.load(pw, align=4)), pa,
                      align=4)
        return context.get_dummy_value()
    return types.none(acc, a_off, w, w_off), codegen


@njit(cache=True)
def time_major(wt, n, ev_t, ev_i, T, acc):
    k = 0
    for t in range(T):
        a = np.uint64(t * n)
        while k < len(ev_t) and ev_t[k] == t:
            w = np.uint64(ev_i[k] * n)
            for j in range(np.uint64(n)):
                acc[a + j] += wt[w + j]
            k += 1


@njit(cache=True)
def source_major(wt, n, ev_t, ev_i, T, acc, window, vec16):
    """Windows of ``window`` steps; inside one, a counting sort by source then row adds."""
    start = np.zeros(n + 1, np.int64)
    row = np.empty(len(ev_t), np.int64)
    k0 = 0
    n16 = (n // 16) * 16
    for t0 in range(0, T, window):
        k1 = k0
        while k1 < len(ev_t) and ev_t[k1] < t0 + window:
            k1 += 1
        start[:] = 0
        for k in range(k0, k1):
            start[ev_i[k] + 1] += 1
        for i in range(n):
            start[i + 1] += start[i]
        fill = start[:n].copy()
        for k in range(k0, k1):
            row[fill[ev_i[k]]] = ev_t[k] * n
            fill[ev_i[k]] += 1
        for i in range(n):
            for f in range(start[i], start[i + 1]):
                if vec16:
                    for j in range(0, n16, 16):
                        _add16(acc, row[f] + j, wt, i * n + j)
                    for j in range(n16, n):
                        acc[row[f] + j] += wt[i * n + j]
                else:
                    a = np.uint64(row[f])
                    w = np.uint64(i * n)
                    for j in range(np.uint64(n)):
                        acc[a + j] += wt[w + j]
        k0 = k1


@njit(cache=True)
def column_tiles(wt, n, ev_t, ev_i, T, acc, tile):
    tptr = np.zeros(T + 1, np.int64)
    for k in range(len(ev_t)):
        tptr[ev_t[k] + 1] += 1
    for t in range(T):
        tptr[t + 1] += tptr[t]
    buf = np.zeros(tile, acc.dtype)
    for j0 in range(0, n, tile):
        w = np.uint64(min(tile, n - j0))
        for t in range(T):
            if tptr[t + 1] == tptr[t]:
                continue
            a = np.uint64(t * n + j0)
            for j in range(w):
                buf[j] = acc[a + j]
            for k in range(tptr[t], tptr[t + 1]):
                b = np.uint64(ev_i[k] * n + j0)
                for j in range(w):
                    buf[j] += wt[b + j]
            for j in range(w):
                acc[a + j] = buf[j]


ROUNDS = 7


def main():
    n, T = 1000, 100
    rng = np.random.default_rng(0)
    wt = rng.standard_normal((n, n)).astype(np.float32).ravel()
    for p in (0.05, 0.20):
        ev_t, ev_i = (a.astype(np.int64) for a in np.nonzero(rng.random((T, n)) < p))
        events = len(ev_t) * n
        variants = [("time-major", lambda a: time_major(wt, n, ev_t, ev_i, T, a)),
                    ("source-major", lambda a: source_major(wt, n, ev_t, ev_i, T, a, T, False))]
        variants += [(f"source-major, windows of {w} steps",
                      (lambda w: lambda a: source_major(wt, n, ev_t, ev_i, T, a, w, False))(w))
                     for w in (8, 25, 50)]
        variants += [(f"column tiles of {c}",
                      (lambda c: lambda a: column_tiles(wt, n, ev_t, ev_i, T, a, c))(c))
                     for c in (32, 64, 128, 256)]
        variants += [("source-major, <16 x float>",
                      lambda a: source_major(wt, n, ev_t, ev_i, T, a, T, True))]
        ref = None
        rates: dict[str, list[float]] = {name: [] for name, _ in variants}
        for rnd in range(ROUNDS):          # variants alternate; the order flips every round
            for name, f in (variants if rnd % 2 == 0 else variants[::-1]):
                times = []
                for _ in range(6):
                    acc = np.zeros(T * n, np.float32)
                    t0 = time.perf_counter()
                    f(acc)
                    times.append(time.perf_counter() - t0)
                ref = acc if ref is None else ref
                assert np.array_equal(acc, ref), f"{name}: different bits"
                rates[name].append(events / statistics.median(times[1:]) / 1e9)
        base = statistics.median(rates["source-major"])
        print(f"\np = {p:.0%} per step, {events:.3g} events, W 1000 x 1000 float32, T = {T}, "
              f"medians of {ROUNDS} rounds")
        print("| variant | G events/s | / source-major |\n|---|---:|---:|")
        for name, _ in variants:
            r = statistics.median(rates[name])
            print(f"| {name} | {r:.2f} | {r / base:.2f}x |")

if __name__ == "__main__":
    main()
