"""Lazy vs every-step current-based (CUBA) populations in the event simulator (issue 18).

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_cuba_lazy.py
    python benchmarks/bench_cuba_lazy.py --rounds 7 --json runs/bench_cuba_lazy.json

Networks without biases (a CUBA population with constant input is always updated at every
step), float32, random weights, alpha = 0.5 and beta = 0.9 in every CUBA layer, rate-coded
input (each input neuron spikes with probability p per step):

- ``mlp``     784-1000-1000-10 (dense projections: one input event touches every neuron of
              the next layer), T = 50, B = 64;
- ``sparse``  784-4000 (CSR, 0.5 % density) -> CUBA -> 10 readout, T = 100, B = 32.

Each configuration runs ``Simulator.run`` with ``cuba="lazy"`` and ``cuba="step"`` one after
the other (order alternating by round) in this process, with one thread, after an untimed
warm-up run (compilation excluded); the table reports the median wall time of each and the
median of the per-round ratios, and checks that both give the same spikes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import eventsim
from eventsim import modelfile as mf
from eventsim.inputs import from_dense


def mlp(rng):
    dt = np.float32
    return mf.Model(input_shape=(784,), T=50, layers=[
        mf.Dense((rng.standard_normal((1000, 784)) * 0.08).astype(dt)),
        mf.Spiking(beta=0.9, theta=1.0, alpha=0.5),
        mf.Dense((rng.standard_normal((1000, 1000)) * 0.08).astype(dt)),
        mf.Spiking(beta=0.9, theta=1.0, alpha=0.5),
        mf.Dense((rng.standard_normal((10, 1000)) * 0.1).astype(dt)), mf.Readout()])


def sparse(rng):
    dt = np.float32
    n_out, n_in, dens = 4000, 784, 0.005
    mask = rng.random((n_out, n_in)) < dens
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    return mf.Model(input_shape=(784,), T=100, layers=[
        mf.Sparse(data=(rng.random(int(mask.sum())) * 1.2).astype(dt),
                  indices=np.nonzero(mask)[1].astype(np.int64), indptr=indptr,
                  shape=(n_out, n_in)),
        mf.Spiking(beta=0.9, theta=1.0, alpha=0.5),
        mf.Dense((rng.standard_normal((10, n_out)) * 0.1).astype(dt)), mf.Readout()])


CONFIGS = [("mlp", mlp, 64, 0.02), ("mlp", mlp, 64, 0.002), ("mlp", mlp, 64, 0.0002),
           ("sparse", sparse, 32, 0.02), ("sparse", sparse, 32, 0.002),
           ("sparse", sparse, 32, 0.0005), ("sparse", sparse, 32, 0.0001)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    print(f"{'net':<7} {'p':>7} {'B':>3} {'T':>4} {'lazy ms':>9} {'step ms':>9} "
          f"{'lazy/step':>9} {'spikes/neuron/step':>18}")
    for name, build, B, p in CONFIGS:
        rng = np.random.default_rng(0)
        model = build(rng)
        net = eventsim.load(model)
        T = model.T
        x = from_dense((rng.random((T, B, 784)) < p).astype(np.float32))
        sims = {c: eventsim.Simulator(net, n_threads=1, cuba=c) for c in ("lazy", "step")}
        recs = {c: sims[c].run(x) for c in sims}          # warm-up (compilation)
        for pos in recs["step"].spikes:
            assert np.array_equal(recs["lazy"].spikes[pos].to_dense(T, B),
                                  recs["step"].spikes[pos].to_dense(T, B))
        rate = np.mean([recs["step"].spikes[pos].to_dense(T, B).mean()
                        for pos in recs["step"].spikes])
        times = {c: [] for c in sims}
        ratios = []
        for r in range(args.rounds):
            order = ("lazy", "step") if r % 2 == 0 else ("step", "lazy")
            got = {}
            for c in order:
                t0 = time.perf_counter()
                sims[c].run(x)
                got[c] = time.perf_counter() - t0
                times[c].append(got[c])
            ratios.append(got["lazy"] / got["step"])
        row = dict(net=name, p=p, B=B, T=T, lazy_ms=1e3 * statistics.median(times["lazy"]),
                   step_ms=1e3 * statistics.median(times["step"]),
                   ratio=statistics.median(ratios), rate=float(rate))
        rows.append(row)
        print(f"{name:<7} {p:>7} {B:>3} {T:>4} {row['lazy_ms']:>9.1f} {row['step_ms']:>9.1f} "
              f"{row['ratio']:>9.2f} {row['rate']:>18.4f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
