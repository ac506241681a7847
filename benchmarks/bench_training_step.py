"""Training-step time and peak memory: this engine vs snnTorch vs the GEMM floor.

    python benchmarks/bench_training_step.py                 # all configurations
    python benchmarks/bench_training_step.py --rounds 5 --configs fc4 fc32
    PYTHONPATH=$PWD python benchmarks/bench_training_step.py --threads 2 --blas-timeout 4
        (from a checkout: PYTHONPATH picks this tree's packages; --threads sets every library's
        thread count in each worker; --blas-timeout sets OPENBLAS_THREAD_TIMEOUT for all)

Every measurement runs in a fresh process (NumPy's OpenBLAS threads keep spinning after a
product and slow torch in the same process), engines alternate round by round, and the
table reports medians over rounds of each process's median step time.  Ratios are to
snnTorch measured in the same run.

Engines:
  ours        this package: forward, hand-derived backward, Adam step
  ours-rate   the same with Bernoulli rate-coded (binary) input instead of direct input
              (drawn once before timing, so every step does the full first-layer GEMM)
  ours-full, ours-rate-full   the same with ``Sequential.low_memory = False`` (every layer
              keeps its full cache for backward, the behaviour before the lean caches became
              the default; gradients are the same).  ``-lean`` forces ``low_memory = True``.
  snntorch    snnTorch (torch CPU build) with the same network, loss and Adam step
  floor       NumPy: only the step's matrix products, each as one large GEMM over T*B rows
              (forward, input gradients and weight gradients): the floor of any dense
              engine that does not exploit the structure of the input
  floor-step  the same without the first layer's input gradient, which this step never
              needs (``need_input_grad=False``; snnTorch's input has no grad): the least a
              dense engine must multiply, so ``floor-step / snntorch`` bounds its ratio
Times are taken with glibc's default allocator settings (as users run) unless
``--mmap-threshold`` says otherwise.  Peak memory (printed only with ``--mmap-threshold 131072``,
whose times are not users' times: every large allocation is then a fresh mapping and page
faults; snnTorch's conv step runs 3.5x slower): growth of the process's peak RSS (VmHWM,
reset through /proc/self/clear_refs) during the timed steps over its RSS at rest (after warm-up, with what our network keeps cached
for backward dropped, so caches a step leaves behind count in the peak); with
MALLOC_MMAP_THRESHOLD_=131072 glibc returns every large array to the system when it is
freed, so RSS follows the live arrays of both libraries.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "fc4": dict(net="fc", T=4, B=128), "fc8": dict(net="fc", T=8, B=128),
    "fc16": dict(net="fc", T=16, B=128), "fc32": dict(net="fc", T=32, B=128),
    "conv4": dict(net="conv", T=4, B=64), "conv8": dict(net="conv", T=8, B=64),
    "infer8": dict(net="fc", T=8, B=1000, inference=True),
}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _time_steps(step, n_warm: int, n: int):
    import gc
    for _ in range(n_warm):      # JIT compilation, lazy initialisation, caches
        step()
    getattr(step, "at_rest", lambda: None)()   # drop what a step leaves cached (ours)
    gc.collect()
    rss0 = _rss_kib("VmRSS")   # live memory between steps: weights, inputs, optimiser state
    _reset_peak()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak = _rss_kib("VmHWM") - rss0
    return statistics.median(times), peak / 1024.0


# ----------------------------------------------------------------------------- workers
def build_ours(cfg, rate: bool, lean: bool | None = None):
    """``(net, opt, inp, labels)`` of a configuration: the network, its Adam optimiser, the
    input ``[T, B, ...]`` (binary rate code drawn once when ``rate``, else direct) and labels."""
    import numpy as np
    import training
    from training import encoding, optim
    rng = np.random.default_rng(0)
    T, B = cfg["T"], cfg["B"]
    if cfg["net"] == "fc":
        net = training.Sequential(training.Linear(784, 800, rng=rng), training.LIF(beta=0.5),
                                  training.Linear(800, 10, rng=rng))
        x = rng.random((B, 784)).astype(np.float32)
    else:
        net = training.Sequential(
            training.Conv2d(1, 32, 3, padding=1, rng=rng), training.BatchNorm2d(32), training.LIF(beta=0.5),
            training.AvgPool2d(2), training.Conv2d(32, 64, 3, padding=1, rng=rng), training.BatchNorm2d(64),
            training.LIF(beta=0.5), training.AvgPool2d(2), training.Flatten(), training.Linear(3136, 10, rng=rng))
        x = rng.random((B, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, B)
    if lean is not None:
        net.low_memory = lean
    opt = optim.Adam(list(net.named_parameters()), lr=1e-3)
    # rate-coded input is drawn once: the encoder is not part of the engine's step
    inp = encoding.rate(x, T, np.random.default_rng(1)) if rate else encoding.direct(x, T)
    return net, opt, inp, labels


def worker_ours(cfg, rate: bool, lean: bool | None = None, threads: int | None = None):
    import training
    from training import losses
    if threads:
        training.set_num_threads(threads)      # BLAS (threadpoolctl) and Numba
    net, opt, inp, labels = build_ours(cfg, rate, lean)
    if cfg.get("inference"):
        net.eval()

        def step():
            net.forward(inp)
        step.at_rest = net.reset_cache
        return step

    def step():
        opt.zero_grad()
        y = net.forward(inp)
        _, g = losses.rate_cross_entropy(y, labels)
        net.backward(g, need_input_grad=False)
        opt.step()
    step.at_rest = net.reset_cache
    return step


def worker_snntorch(cfg, threads: int | None = None):
    import numpy as np
    import snntorch as snn
    import torch
    from torch import nn
    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(threads)
    T, B = cfg["T"], cfg["B"]
    if cfg["net"] == "fc":
        layers = [nn.Linear(784, 800), snn.Leaky(beta=0.5, init_hidden=True), nn.Linear(800, 10)]
        x = torch.rand(B, 784)
    else:
        layers = [nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), snn.Leaky(beta=0.5, init_hidden=True),
                  nn.AvgPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64),
                  snn.Leaky(beta=0.5, init_hidden=True), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3136, 10)]
        x = torch.rand(B, 1, 28, 28)
    net = nn.Sequential(*layers)
    labels = torch.randint(0, 10, (B,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    from snntorch import utils

    def run():
        utils.reset(net)
        return torch.stack([net(x) for _ in range(T)]).mean(0)

    if cfg.get("inference"):
        net.eval()

        def step():
            with torch.no_grad():
                run()
        return step

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(run(), labels)
        loss.backward()
        opt.step()
    return step


def worker_floor(cfg, threads: int | None = None, input_grad: bool = True):
    """The step's matrix products alone, as single large GEMMs over T*B rows.  ``input_grad``
    False (engine ``floor-step``) leaves out the first layer's input gradient, which no
    engine computes here (``need_input_grad=False``, snnTorch's input has no grad): the least
    any engine that multiplies dense matrices must do for this step."""
    import numpy as np
    if threads:
        import threadpoolctl
        threadpoolctl.threadpool_limits(threads, user_api="blas")
    rng = np.random.default_rng(0)
    T, B = cfg["T"], cfg["B"]
    f32 = np.float32
    if cfg["net"] == "fc":
        dims = [(784, 800), (800, 10)]
        X = rng.random((T * B, 784)).astype(f32)
        W = [rng.random((o, i)).astype(f32) for i, o in dims]
        H = rng.random((T * B, 800)).astype(f32)
        G1 = rng.random((T * B, 800)).astype(f32)
        G2 = rng.random((T * B, 10)).astype(f32)
        if cfg.get("inference"):
            def step():
                X @ W[0].T
                H @ W[1].T
            return step

        def step():
            X @ W[0].T; H @ W[1].T                 # forward
            G2 @ W[1]                              # input gradients
            if input_grad:
                G1 @ W[0]
            G2.T @ H; G1.T @ X                     # weight gradients
        return step
    # conv as im2col GEMMs: conv1 1->32 on 28x28, conv2 32->64 on 14x14, fc 3136->10
    c1 = rng.random((T * B * 784, 9)).astype(f32); w1 = rng.random((9, 32)).astype(f32)
    g1 = rng.random((T * B * 784, 32)).astype(f32)
    c2 = rng.random((T * B * 196, 288)).astype(f32); w2 = rng.random((288, 64)).astype(f32)
    g2 = rng.random((T * B * 196, 64)).astype(f32)
    h3 = rng.random((T * B, 3136)).astype(f32); w3 = rng.random((3136, 10)).astype(f32)
    g3 = rng.random((T * B, 10)).astype(f32)

    def step():
        c1 @ w1; c2 @ w2; h3 @ w3
        if input_grad:
            g1 @ w1.T
        g2 @ w2.T; g3 @ w3.T
        c1.T @ g1; c2.T @ g2; h3.T @ g3
    return step


def _threads_used(engine: str) -> str:
    """The thread counts the worker's libraries report after its steps ran."""
    import threadpoolctl
    blas = ",".join(f"{lib['internal_api']}={lib['num_threads']}"
                    for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas")
    if engine == "snntorch":
        import torch
        return f"torch={torch.get_num_threads()} {blas}"
    if engine.startswith("ours"):
        import numba
        return f"numba={numba.get_num_threads()} {blas}"
    return blas


def run_worker(engine: str, config: str, n: int, threads: int | None = None) -> dict:
    cfg = CONFIGS[config]
    if engine.startswith("ours"):
        lean = True if engine.endswith("-lean") else False if engine.endswith("-full") else None
        step = worker_ours(cfg, rate="rate" in engine, lean=lean, threads=threads)
    elif engine == "snntorch":
        step = worker_snntorch(cfg, threads=threads)
    else:
        step = worker_floor(cfg, threads=threads, input_grad=engine != "floor-step")
    t, mem = _time_steps(step, n_warm=3, n=n)
    return {"engine": engine, "config": config, "step_ms": t * 1e3, "peak_mib": mem,
            "threads": _threads_used(engine)}


# ----------------------------------------------------------------------------- driver
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--engines", nargs="+", default=["ours", "ours-rate", "snntorch", "floor"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--worker", nargs=2, metavar=("ENGINE", "CONFIG"), help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the raw results here")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads per worker: environment (OPENBLAS/OMP/MKL/NUMBA_NUM_THREADS) and "
                         "explicit calls (training.set_num_threads, torch.set_num_threads, "
                         "threadpoolctl); default: library defaults")
    ap.add_argument("--blas-timeout", type=int, default=None,
                    help="OPENBLAS_THREAD_TIMEOUT for every worker (OpenBLAS threads spin 2^N "
                         "cycles after a product; 4 frees the cores for the element-wise kernels)")
    ap.add_argument("--mmap-threshold", type=int, default=0,
                    help="MALLOC_MMAP_THRESHOLD_ (bytes) for every worker. 0 (default): glibc's own "
                         "setting, as users run: the times to quote; the memory columns are then "
                         "not printed (freed arrays stay in RSS). 131072: RSS follows the live "
                         "arrays, for the memory columns; the times then include a page fault "
                         "per fresh large allocation (snnTorch's conv step 3.5x slower) and are "
                         "not users' times")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args.worker[0], args.worker[1], args.steps, args.threads)))
        return
    env = dict(os.environ)
    if args.mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    else:
        env.pop("MALLOC_MMAP_THRESHOLD_", None)
    if args.threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = str(args.threads)
    if args.blas_timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = str(args.blas_timeout)
    print(f"threads per worker: {args.threads or 'library default'}; OPENBLAS_THREAD_TIMEOUT "
          f"{env.get('OPENBLAS_THREAD_TIMEOUT', 'default')}; MALLOC_MMAP_THRESHOLD_ "
          f"{env.get('MALLOC_MMAP_THRESHOLD_', 'glibc default')}; rounds {args.rounds}, "
          f"{args.steps} timed steps per process; load average at start "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    results: dict = {}
    for r in range(args.rounds):
        for config in args.configs:
            engines = args.engines[r % len(args.engines):] + args.engines[:r % len(args.engines)]
            for engine in engines:
                cmd = [sys.executable, __file__, "--worker", engine, config, "--steps", str(args.steps)]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    print(f"[{engine} {config}] failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                    continue
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                results.setdefault((config, engine), []).append(res)
                print(f"round {r + 1} {config:7s} {engine:14s} {res['step_ms']:9.2f} ms "
                      f"{res['peak_mib']:8.1f} MiB  [{res['threads']}; load "
                      f"{os.getloadavg()[0]:.2f}]", file=sys.stderr, flush=True)
    print(f"\n{'config':8s} {'engine':14s} {'step ms':>9s} {'x snnTorch':>10s} {'x floor':>8s} "
          f"{'peak MiB':>9s} {'mem x snnTorch':>14s}")
    table = []
    for config in args.configs:
        med = {e: (statistics.median(x["step_ms"] for x in results.get((config, e), [])) if results.get((config, e)) else None,
                   statistics.median(x["peak_mib"] for x in results.get((config, e), [])) if results.get((config, e)) else None)
               for e in args.engines}
        ref_t, ref_m = med.get("snntorch", (None, None))
        floor_t = med.get("floor", (None, None))[0]
        for e in args.engines:
            t, m = med[e]
            if t is None:
                continue
            rt = f"{t / ref_t:10.2f}" if ref_t else f"{'-':>10s}"
            rf = f"{t / floor_t:8.2f}" if floor_t else f"{'-':>8s}"
            rm = f"{m / ref_m:14.2f}" if ref_m and e != "floor" else f"{'-':>14s}"
            mem = f"{m:9.1f} {rm}" if args.mmap_threshold else f"{'-':>9s} {'-':>14s}"
            print(f"{config:8s} {e:14s} {t:9.2f} {rt} {rf} {mem}")
            table.append({"config": config, "engine": e, "step_ms": t, "peak_mib": m})
    print(f"load average at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=1)


if __name__ == "__main__":
    main()
