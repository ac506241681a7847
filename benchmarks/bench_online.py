"""Online training (OTTT, SAF) vs BPTT: peak memory and time of one training step against T.

    python benchmarks/bench_online.py --threads 2 --json benchmarks/logs/bench_online_2t.json
    python benchmarks/bench_online.py --threads 1 --rounds 2
    python benchmarks/bench_online.py --quick          # smoke run: fc, T = 4 and 8, 1 round
    python benchmarks/bench_online.py --from-json benchmarks/logs/bench_online_2threads_2026-12-06.json

One training step = one batch: encode (direct input, a stride-0 view), forward, loss,
backward and the optimiser (Adam) update(s):

  bptt     net.forward on [T, B, ...], "rate_ce" loss, net.backward, one Adam step
  ottt_a   training.online.gradients(method="ottt_a") + one Adam step
  ottt_o   training.online.train_batch(method="ottt_o"): an Adam step after every time step
  saf_e    training.online.train_batch(method="saf_e"): an Adam step after every time step
  saf_f    training.online.gradients(method="saf_f") + one Adam step

All five train the same network (so that only the method differs), float32, the networks
of ``online_accuracy.py``:

  fc    WSLinear(784, 800) - Scale(2.74) - LIF - Linear(800, 10)                 batch 128
  conv  WSConv2d(1, 32, 3, p1) - Scale - LIF - AvgPool2d(2) - WSConv2d(32, 64, 3, p1) -
        Scale - LIF - AvgPool2d(2) - Flatten - Linear(3136, 10)                  batch 64

LIF: beta 0.5 (tau 2), threshold 1, reset "subtract", sigmoid surrogate (alpha 4).

Every (net, method, T) runs in a fresh process, so peaks do not mix; the method order
rotates and the T order reverses from round to round, and the tables give medians over
rounds.  In each process, after two warm-up steps (Numba compilation, caches):

  step ms      median of the timed steps (at least 3, until 1.5 s have passed, at most 10)
  peak MiB     tracemalloc peak of the Python/NumPy allocations made during one more step
               (tracing started just before it): the working memory of a step, i.e. the
               arrays the step allocates that are alive at the same time.  Weights, Adam
               moments and the input image, allocated before, are not counted.
  rss MiB      growth of the peak RSS (VmHWM, reset through /proc/self/clear_refs) during
               the timed steps over the RSS between steps; workers run with
               MALLOC_MMAP_THRESHOLD_=131072 so freed arrays leave RSS.  Coarser (pages,
               Numba's own allocations included); printed as a cross-check.  That setting
               makes every large array a fresh mmap (page faults): it about doubles the
               online step times; ``--mmap-threshold 0`` keeps glibc's default for timing.

Ratios printed: each method's peak at the largest T over its peak at the smallest (online
target <= 1.1; BPTT for contrast), and SAF's step time over OTTT's (saf_e / ottt_o, both
one update per time step; saf_f / ottt_a, both one update per batch).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))      # measure the checkout this script belongs to

METHODS = ("bptt", "ottt_a", "ottt_o", "saf_e", "saf_f")
NETS = {"fc": 128, "conv": 64}           # net -> batch size
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


# ----------------------------------------------------------------------------- worker
def make_step(net_name: str, method: str, T: int, B: int):
    """A closure running one training step of ``method`` on a fixed random batch."""
    import numpy as np

    from training import encoding, losses, online, optim

    from online_accuracy import build     # the networks of the accuracy runs

    rng = np.random.default_rng(1)
    net, shape = build("mlp" if net_name == "fc" else "conv", seed=0)
    images = rng.random((B,) + shape).astype(np.float32)
    labels = rng.integers(0, 10, B)
    opt = optim.Adam(list(net.named_parameters()), lr=1e-3)
    net.train()

    if method == "bptt":
        def step():
            opt.zero_grad()
            y = net.forward(encoding.direct(images, T))
            _, g = losses.rate_cross_entropy(y, labels)
            net.backward(g, need_input_grad=False)
            opt.step()
    elif method in online.TRAIN_METHODS:
        def step():
            online.train_batch(net, encoding.direct(images, T), labels, opt, method=method)
    else:
        def step():
            online.gradients(net, encoding.direct(images, T), labels, method=method)
            opt.step()
    return step


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def measure(step, min_steps: int = 3, max_steps: int = 10, min_seconds: float = 1.5) -> dict:
    """Warm up, time steps (RSS peak over them), then one traced step (tracemalloc peak)."""
    import gc
    import tracemalloc

    for _ in range(2):
        step()
    gc.collect()
    rss0 = _status_kib("VmRSS")
    _reset_peak_rss()
    times, t_start = [], time.perf_counter()
    while len(times) < max_steps and (len(times) < min_steps
                                      or time.perf_counter() - t_start < min_seconds):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    rss = (_status_kib("VmHWM") - rss0) / 1024.0
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    step()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"step_ms": statistics.median(times) * 1e3, "n_steps": len(times),
            "peak_mib": peak, "rss_mib": rss}


def run_worker(net: str, method: str, T: int) -> dict:
    res = measure(make_step(net, method, T, NETS[net]))
    res.update(net=net, method=method, T=T, B=NETS[net])
    return res


# ----------------------------------------------------------------------------- driver
def plan(nets, methods, Ts, rounds: int):
    """``(round, net, method, T)`` in measurement order: the method order rotates and the T
    order reverses every round, so no method is always measured first or after another."""
    order = []
    for r in range(rounds):
        ts = list(Ts) if r % 2 == 0 else list(reversed(Ts))
        ms = list(methods[r % len(methods):]) + list(methods[:r % len(methods)])
        for net in nets:
            for T in ts:
                for m in ms:
                    order.append((r, net, m, T))
    return order


def run_all(args) -> list[dict]:
    env = dict(os.environ)
    if args.mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    for var in THREAD_VARS:
        env[var] = str(args.threads)
    rows = []
    for r, net, method, T in plan(args.nets, args.methods, args.T, args.rounds):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", net, method, str(T)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
            print(f"[round {r + 1} {net} {method} T={T}] failed: {tail[0]}", file=sys.stderr)
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["round"] = r
        rows.append(res)
        print(f"round {r + 1} {net:4s} T={T:2d} {method:7s} {res['step_ms']:9.2f} ms "
              f"peak {res['peak_mib']:8.2f} MiB  rss {res['rss_mib']:8.1f} MiB", file=sys.stderr,
              flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    """``{(net, method, T): {step_ms, peak_mib, rss_mib, n}}``: medians over rounds."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["net"], r["method"], r["T"]), []).append(r)
    return {k: {f: statistics.median(x[f] for x in v) for f in ("step_ms", "peak_mib", "rss_mib")}
            | {"n": len(v)} for k, v in groups.items()}


def report(med: dict, nets, methods, Ts) -> str:
    lines = []
    for net in nets:
        lines.append(f"\n{net} (batch {NETS[net]}): step ms / tracemalloc peak MiB / RSS-peak growth MiB")
        lines.append(f"{'method':8s}" + "".join(f"{'T=' + str(T):>26s}" for T in Ts)
                     + f"{'peak T=' + str(Ts[-1]) + '/T=' + str(Ts[0]):>16s}")
        for m in methods:
            cells, peaks = [], []
            for T in Ts:
                v = med.get((net, m, T))
                if v is None:
                    cells.append(f"{'-':>26s}")
                    peaks.append(None)
                else:
                    cells.append(f"{v['step_ms']:10.1f} {v['peak_mib']:7.2f} {v['rss_mib']:7.1f}")
                    peaks.append(v["peak_mib"])
            ratio = (f"{peaks[-1] / peaks[0]:16.2f}" if peaks[0] and peaks[-1] is not None
                     else f"{'-':>16s}")
            lines.append(f"{m:8s}" + "".join(cells) + ratio)
        for saf, ottt in (("saf_e", "ottt_o"), ("saf_f", "ottt_a")):
            ratios = []
            for T in Ts:
                a, b = med.get((net, saf, T)), med.get((net, ottt, T))
                ratios.append(f"{a['step_ms'] / b['step_ms']:8.2f}" if a and b else f"{'-':>8s}")
            lines.append(f"time {saf}/{ottt}: " + " ".join(ratios) + f"   (T = {list(Ts)})")
    return "\n".join(lines)


def markdown(med: dict, nets, methods, Ts) -> str:
    """The medians as Markdown tables (step ms and tracemalloc peak MiB per T)."""
    out = []
    for net in nets:
        out.append(f"\n{net}, batch {NETS[net]}: step ms / peak MiB\n")
        out.append("| method | " + " | ".join(f"T = {T}" for T in Ts)
                   + f" | peak T={Ts[-1]} / T={Ts[0]} |")
        out.append("|---" * (len(Ts) + 2) + "|")
        for m in methods:
            v = [med.get((net, m, T)) for T in Ts]
            cells = [f"{x['step_ms']:.1f} / {x['peak_mib']:.2f}" if x else "-" for x in v]
            ratio = f"{v[-1]['peak_mib'] / v[0]['peak_mib']:.2f}" if v[0] and v[-1] else "-"
            out.append(f"| {m} | " + " | ".join(cells) + f" | {ratio} |")
        for saf, ottt in (("saf_e", "ottt_o"), ("saf_f", "ottt_a")):
            r = [(med.get((net, saf, T)), med.get((net, ottt, T))) for T in Ts]
            out.append(f"| time {saf} / {ottt} | " + " | ".join(
                f"{a['step_ms'] / b['step_ms']:.2f}" if a and b else "-" for a, b in r) + " | |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--T", nargs="+", type=int, default=[4, 8, 16, 32])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2,
                    help="OpenBLAS/OpenMP/MKL/Numba threads per worker (default 2)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: fc only, T = 4 and 8, one round")
    ap.add_argument("--json", default=None, help="write the raw per-process results here")
    ap.add_argument("--mmap-threshold", type=int, default=131072,
                    help="MALLOC_MMAP_THRESHOLD_ of the workers (default 131072: freed arrays "
                         "leave RSS, so the RSS column means something, but every large array "
                         "is then a fresh mmap whose pages fault in: online steps run about 2x "
                         "slower); 0 = glibc's default (times as in normal use)")
    ap.add_argument("--from-json", default=None,
                    help="print the tables (and Markdown) of a saved --json file; run nothing")
    ap.add_argument("--worker", nargs=3, metavar=("NET", "METHOD", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        net, method, T = args.worker
        print(json.dumps(run_worker(net, method, int(T))))
        return 0
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        rows = saved["rows"]
        Ts = sorted({r["T"] for r in rows})
        nets = [n for n in NETS if any(r["net"] == n for r in rows)]
        med = summarise(rows)
        print(f"threads per worker {saved['threads']}; rounds {1 + max(r['round'] for r in rows)}")
        print(report(med, nets, list(METHODS), Ts))
        print(markdown(med, nets, list(METHODS), Ts))
        return 0
    if args.quick:
        args.nets, args.T, args.rounds = ["fc"], [4, 8], 1
    args.T = sorted(args.T)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC; threads per worker "
          f"{args.threads}; rounds {args.rounds}; nets {args.nets}; T {args.T}; "
          f"MALLOC_MMAP_THRESHOLD_ {args.mmap_threshold or 'glibc default'}", flush=True)
    rows = run_all(args)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows}, f, indent=1)
    print(report(summarise(rows), args.nets, args.methods, args.T))
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
