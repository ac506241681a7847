"""Time cost of the memory paths, A/B in one process (issue 19, item 5).

    python benchmarks/bench_memory_ab.py --threads 1            # train T 4-32 and infer8

Two networks with identical weights, FC 784-800-10 (LIF beta 0.5), step after step in
alternation so that a changing machine load hits both alike; medians over the steps after
warm-up.  ``train``: one training step (forward, rate cross-entropy, backward with
``need_input_grad=False``, Adam), batch 128, ``Sequential.low_memory`` False (``full``: every
layer keeps its full cache) vs True (``lean``, the default).
``infer8``: eval forward, batch 1000, T = 8, whole sequence (``eval_chunk_rows = 0``) vs
chunked (the default).  Direct (static) and binary rate-coded input.  Peak memory is measured
by ``bench_training_step.py`` (each engine in its own process); this script only times.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _net(seed: int = 0, conv: bool = False):
    """FC 784-800-10, or with ``conv`` the conv net of ``bench_training_step.py``."""
    import numpy as np
    import training
    rng = np.random.default_rng(seed)
    if conv:
        return training.Sequential(
            training.Conv2d(1, 32, 3, padding=1, rng=rng), training.BatchNorm2d(32),
            training.LIF(beta=0.5), training.AvgPool2d(2),
            training.Conv2d(32, 64, 3, padding=1, rng=rng), training.BatchNorm2d(64),
            training.LIF(beta=0.5), training.AvgPool2d(2), training.Flatten(),
            training.Linear(3136, 10, rng=rng))
    return training.Sequential(training.Linear(784, 800, rng=rng), training.LIF(beta=0.5),
                               training.Linear(800, 10, rng=rng))


def _inputs(B: int, T: int, conv: bool = False):
    import numpy as np
    from training import encoding
    x = np.random.default_rng(1).random((B, 1, 28, 28) if conv else (B, 784)).astype(np.float32)
    return {"direct": encoding.direct(x, T), "rate": encoding.rate(x, T, np.random.default_rng(2))}


def _alternate(steps: dict, n: int, warm: int = 3) -> dict:
    """Median seconds of each callable in ``steps``, called in turn ``n`` times."""
    times = {k: [] for k in steps}
    for r in range(n):
        for k, f in steps.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v[warm:]) for k, v in times.items()}


def ab_train(T: int, n: int, conv: bool = False):
    import numpy as np
    from training import losses, optim
    B = 64 if conv else 128
    labels = np.random.default_rng(3).integers(0, 10, B)
    rows = []
    for name, inp in _inputs(B, T, conv).items():
        steps = {}
        for lean in (False, True):
            net = _net(conv=conv)
            net.low_memory = lean
            opt = optim.Adam(list(net.named_parameters()), lr=1e-3)

            def step(net=net, opt=opt, inp=inp):
                opt.zero_grad()
                y = net.forward(inp)
                _, g = losses.rate_cross_entropy(y, labels)
                net.backward(g, need_input_grad=False)
                opt.step()
            steps["lean" if lean else "full"] = step
        med = _alternate(steps, n)
        rows.append((f"{'conv' if conv else 'fc'}{T}", name, "full", "lean", med["full"],
                     med["lean"]))
    return rows


def ab_infer(n: int):
    rows = []
    net = _net().eval()
    for name, inp in _inputs(1000, 8).items():
        def run(rows_per_chunk, inp=inp):
            net.eval_chunk_rows = rows_per_chunk
            net.forward(inp)
        med = _alternate({"whole": lambda: run(0), "chunked": lambda: run(512)}, n)
        rows.append(("infer8", name, "whole", "chunked", med["whole"], med["chunked"]))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--threads", type=int, default=None, help="OpenBLAS/Numba threads (set before import)")
    ap.add_argument("--conv-T", type=int, nargs="*", default=[],
                    help="also the conv net (batch 64) at these T")
    ap.add_argument("--skip-infer", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    rows = []
    for T in args.T:
        rows += ab_train(T, args.steps)
    for T in args.conv_T:
        rows += ab_train(T, args.steps, conv=True)
    if not args.skip_infer:
        rows += ab_infer(args.steps)
    print(f"{'config':7s} {'input':7s} {'A':8s} {'B':10s} {'A ms':>8s} {'B ms':>8s} {'B/A':>6s}")
    for cfg, inp, a, b, ta, tb in rows:
        print(f"{cfg:7s} {inp:7s} {a:8s} {b:10s} {ta * 1e3:8.2f} {tb * 1e3:8.2f} {tb / ta:6.3f}")


if __name__ == "__main__":
    main()
