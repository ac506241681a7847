"""Event-driven simulator throughput: raw row streaming, firing-rate scaling, batch-1 streaming.

    python benchmarks/bench_eventsim.py                       # all three tables, 3 rounds
    python benchmarks/bench_eventsim.py --rounds 5 --json runs/bench_eventsim.json
    python benchmarks/bench_eventsim.py --sections throughput

Three measurements (issue 10, item 9, first three bullets):

1. ``throughput``  synaptic events per second per core delivered by ``Simulator.run`` through
   a dense (1000 -> 1000), a Conv2d (32x16x16 -> 64, 3x3, padding 1) and a sparse CSR
   (1000 -> 1000, 10 % density) projection, against ``raw``: a Numba kernel that adds the
   rows of a float32 weight matrix ``W[n_in, n_out]`` picked by a list of spike indices into
   an accumulator (events = spikes x n_out), at the dense projection's geometry (the
   reference of the ratio) and at the row lengths of the other two (64 floats for the conv
   kernel's ``C_out`` rows, 100 floats for the CSR rows) for context.  Every model is
   input spikes (Bernoulli, p = 10 % per step) -> projection -> Spiking -> Dense -> Readout;
   the spiking layer's threshold is out of reach (1e9), so the events counted are exactly
   those delivered by the projection under test (``rec.synaptic_events["layers[0]"]``),
   and the time is the wall time of ``Simulator.run`` (input validation, kernel, Recording
   built): nothing subtracted.  Each projection is measured twice: with the simulator's
   default ``schedule="auto"`` (layer by layer for these feed-forward models, dense rows
   delivered source-major) and with ``schedule="time"`` (the whole network step by step,
   as networks with delayed connections run).
2. ``scaling``  one 2-layer MLP with random weights (1000-1000-1000-10, LIF beta 0.9,
   theta 1, hard reset; weights N(0, 0.05^2), so hidden layers fire more as the input
   does), T = 100, B = 16, input firing probability swept 1 % .. 20 % per step; least-squares
   fit ``runtime = a + b * events`` with R^2.
3. ``streaming``  the same MLP, one sample at a time (B = 1, T = 100): ``Simulator.run`` on
   the sample's EventBatch vs the dense engine ``training.to_network(model).forward(x)``
   on the same spikes as a dense ``[T, 1, 1000]`` 0/1 float32 array; median time per sample
   over 30 samples x 3 passes, and the firing rate at which the two cross.  Also printed:
   the time the sample's events would take at the raw dense-row rate of table 1, and the
   agreement of the two engines' outputs (predictions; readouts are not bit-equal with
   random float weights: the GEMM and the spike order sum each current in different orders,
   and the odd neuron near threshold flips).

Noise handling (the machine is shared): every measurement runs in its own subprocess with
one thread (``Simulator(n_threads=1)``, ``OPENBLAS_NUM_THREADS=1``, ``NUMBA_NUM_THREADS=1``),
after an untimed warm-up run (JIT compilation excluded); configurations alternate within a
round (the order is reversed every other round) and the tables report the median over
``--rounds`` rounds of each process's median.  Ratios (simulator / raw, dense / simulator)
are medians of per-round ratios of two measurements taken one right after the other.
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

ROOT = Path(__file__).resolve().parent.parent
THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1"}

N = 1000          # MLP / dense / sparse layer width
T = 100           # steps of every run
P_THROUGHPUT = 0.10
SCALING_RATES = [0.01, 0.02, 0.05, 0.10, 0.20]
STREAM_RATES = [0.01, 0.02, 0.05, 0.10, 0.20, 0.30, 0.50]
STREAM_SAMPLES = 30
UNREACHABLE = 1e9  # threshold of the spiking layer behind a projection under test

# projection under test -> (batch size, input shape)
THROUGHPUT = {"dense": (16, (N,)), "conv": (4, (32, 16, 16)), "sparse": (64, (N,))}
# raw kernel geometries: name -> (n_in, n_out)
RAW = {"raw-1000": (N, N), "raw-64": (32 * 3 * 3, 64), "raw-100": (N, 100)}


# ----------------------------------------------------------------------------- models
def _f32(a):
    import numpy as np
    return np.ascontiguousarray(a, dtype=np.float32)


def throughput_model(kind: str):
    """input -> projection under test -> Spiking (never fires) -> Dense -> Readout."""
    import numpy as np
    from snncore import modelfile as mf
    rng = np.random.default_rng(0)
    never = mf.Spiking(beta=0.9, theta=UNREACHABLE)
    if kind == "dense":
        proj, n_hid = mf.Dense(_f32(rng.normal(0, 0.03, (N, N)))), N
        rest = [never, mf.Dense(_f32(rng.normal(0, 0.1, (10, n_hid))))]
    elif kind == "sparse":
        # 10 % density, CSR [out, in]: each row holds 100 random columns, sorted
        cols = np.sort(np.argsort(rng.random((N, N)), axis=1)[:, :N // 10], axis=1)
        proj = mf.Sparse(data=_f32(rng.normal(0, 0.03, cols.size)),
                         indices=cols.ravel().astype(np.int64),
                         indptr=np.arange(0, cols.size + 1, N // 10, dtype=np.int64),
                         shape=(N, N))
        rest = [never, mf.Dense(_f32(rng.normal(0, 0.1, (10, N))))]
    elif kind == "conv":
        proj = mf.Conv2d(_f32(rng.normal(0, 0.03, (64, 32, 3, 3))), padding=(1, 1))
        rest = [never, mf.Flatten(), mf.Dense(_f32(rng.normal(0, 0.1, (10, 64 * 16 * 16))))]
    else:
        raise ValueError(kind)
    shape = THROUGHPUT[kind][1]
    return mf.Model(input_shape=shape, layers=[proj] + rest + [mf.Readout()], T=T,
                    encoding="rate")


def mlp_model():
    """1000-1000-1000-10 MLP, random N(0, 0.05^2) weights, LIF beta 0.9, theta 1."""
    import numpy as np
    from snncore import modelfile as mf
    rng = np.random.default_rng(0)
    lif = mf.Spiking(beta=0.9, theta=1.0)
    return mf.Model(input_shape=(N,), layers=[
        mf.Dense(_f32(rng.normal(0, 0.05, (N, N)))), lif,
        mf.Dense(_f32(rng.normal(0, 0.05, (N, N)))), lif,
        mf.Dense(_f32(rng.normal(0, 0.1, (10, N)))), mf.Readout()], T=T, encoding="rate")


def bernoulli_input(p: float, B: int, shape, seed: int):
    """Every input address spikes independently with probability p at every step."""
    import numpy as np
    from eventsim.inputs import rate_code
    return rate_code(np.full((B,) + tuple(shape), p), T, np.random.default_rng(seed))


# ----------------------------------------------------------------------------- raw kernel
def raw_kernel():
    import numpy as np
    from numba import njit

    @njit(cache=True)
    def add_rows(wt, n_out, idx, acc):
        """``acc += W[idx[k], :]`` for every k; ``wt`` is ``W[n_in, n_out]`` flattened.
        Unsigned indices (no wraparound code), so the row loop vectorises."""
        nd = np.uint64(n_out)
        for k in range(idx.shape[0]):
            base = np.uint64(idx[k] * n_out)
            for j in range(nd):
                acc[j] += wt[base + j]
        return idx.shape[0] * n_out

    return add_rows


def _repeat(fn, min_time: float, min_reps: int = 3, max_reps: int = 50):
    """Time ``fn()`` (returns anything) until ``min_time`` seconds and ``min_reps`` calls."""
    times, out = [], None
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def _keep(rec, kernel: list):
    """Note the kernel-only time (``Recording.elapsed_s``) of a run and pass it on."""
    kernel.append(float(rec.elapsed_s))
    return rec


# ----------------------------------------------------------------------------- workers
def worker(spec: dict) -> dict:
    import numpy as np
    kind = spec["kind"]
    min_time = spec.get("min_time", 1.5)
    if kind == "raw":
        n_in, n_out = RAW[spec["name"]]
        rng = np.random.default_rng(0)
        W = _f32(rng.normal(0, 0.03, (n_in, n_out)))
        # 1e8 events per call, spike indices uniform over the rows
        idx = rng.integers(0, n_in, max(1, 100_000_000 // n_out)).astype(np.int64)
        acc = np.zeros(n_out, np.float32)
        add_rows = raw_kernel()
        add_rows(W.ravel(), n_out, idx[:10], acc)                  # compile
        times, ev = _repeat(lambda: add_rows(W.ravel(), n_out, idx, acc), min_time)
        t = statistics.median(times)
        return dict(spec, events=int(ev), seconds=t, rate=ev / t, reps=len(times))

    import eventsim
    if kind == "throughput":
        name = spec["name"]                       # "dense" (schedule "auto") or "dense-time"
        base = name.removesuffix("-time")
        B, shape = THROUGHPUT[base]
        model = throughput_model(base)
        x = bernoulli_input(P_THROUGHPUT, B, shape, seed=1)
        sim = eventsim.Simulator(model, n_threads=1,
                                 schedule="time" if name.endswith("-time") else "auto")
        sim.run(x)                                                 # warm-up (JIT)
        kernel = []
        runs, rec = _repeat(lambda: _keep(sim.run(x), kernel), min_time)
        ev = rec.synaptic_events["layers[0]"]
        t = statistics.median(runs)
        return dict(spec, events=int(ev), total_events=int(rec.synaptic_events["total"]),
                    input_spikes=int(len(x.times)), B=B, seconds=t, rate=ev / t,
                    kernel_seconds=statistics.median(kernel), reps=len(runs))

    if kind == "scaling":
        p, B = spec["p"], spec["B"]
        model = mlp_model()
        x = bernoulli_input(p, B, (N,), seed=1)
        sim = eventsim.Simulator(model, n_threads=1)
        sim.run(x)
        kernel = []
        runs, rec = _repeat(lambda: _keep(sim.run(x), kernel), min_time)
        rates = {str(l): len(rec.spikes[l].t) / (B * T * N) for l in rec.spikes}
        t = statistics.median(runs)
        return dict(spec, events=int(rec.synaptic_events["total"]),
                    per_layer={k: int(v) for k, v in rec.synaptic_events.items()},
                    hidden_rates=rates, seconds=t, rate=rec.synaptic_events["total"] / t,
                    kernel_seconds=statistics.median(kernel), reps=len(runs))

    if kind == "stream":
        p, engine = spec["p"], spec["engine"]
        model = mlp_model()
        from eventsim.inputs import from_dense, to_dense
        xs = to_dense(bernoulli_input(p, STREAM_SAMPLES, (N,), seed=2))   # [T, S, N] 0/1
        samples = [np.ascontiguousarray(xs[:, b:b + 1]) for b in range(STREAM_SAMPLES)]
        events = [from_dense(s) for s in samples]            # the same spikes, as events
        if engine == "sim":
            sim = eventsim.Simulator(model, n_threads=1)
            run = lambda b: sim.run(events[b]).readout           # noqa: E731
        else:
            import training
            net = training.to_network(model)
            run = lambda b: net.forward(samples[b])              # noqa: E731
        run(0)                                                   # warm-up (JIT, BLAS)
        times, outs = [], []
        for k in range(max(1, spec.get("passes", 3))):
            for b in range(STREAM_SAMPLES):
                t0 = time.perf_counter()
                y = run(b)
                times.append(time.perf_counter() - t0)
                if k == 0:
                    outs.append(np.asarray(y, dtype=np.float64)[:, 0])   # [T, 10]
        out = dict(spec, seconds=statistics.median(times), n_samples=len(times),
                   input_spikes=int(xs.sum()) // STREAM_SAMPLES)
        if engine == "sim":
            rec = sim.run(events[0])
            out["events_per_sample"] = int(rec.synaptic_events["total"])
        # outputs, to check that the engines agree (not bit for bit: the dense engine sums
        # each current in GEMM order, the simulator in spike order)
        out["predictions"] = [int(o.mean(axis=0).argmax()) for o in outs]
        out["readouts"] = [o.ravel().tolist() for o in outs]
        return out
    raise ValueError(f"unknown worker kind {kind!r}")


# ----------------------------------------------------------------------------- driver
def run_in_subprocess(spec: dict) -> dict:
    env = dict(os.environ, **THREAD_ENV)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, cwd=str(ROOT))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def plan(sections) -> list[list[dict]]:
    """Groups of measurements; members of a group alternate within a round."""
    groups = []
    if "throughput" in sections:
        g = []
        for raw, proj in (("raw-1000", "dense"), ("raw-64", "conv"), ("raw-100", "sparse")):
            g += [dict(kind="raw", name=raw), dict(kind="throughput", name=proj),
                  dict(kind="throughput", name=proj + "-time")]
        groups.append(g)
    if "scaling" in sections:
        groups.append([dict(kind="scaling", p=p, B=16, min_time=1.0) for p in SCALING_RATES])
    if "streaming" in sections:
        g = []
        for p in STREAM_RATES:
            g += [dict(kind="stream", p=p, engine="sim"), dict(kind="stream", p=p, engine="dense")]
        groups.append(g)
    return groups


def key(spec: dict) -> str:
    return "/".join(f"{k}={spec[k]}" for k in ("kind", "name", "p", "engine") if k in spec)


def round_ratio(per: dict, num: str, den: str, field: str = "seconds") -> float:
    """Median over rounds of the per-round ratio num/den (both measured in the same round,
    one right after the other, so slow drifts of the machine's load cancel)."""
    return statistics.median(a[field] / b[field] for a, b in zip(per[num], per[den]))


def median_over_rounds(results: list[dict]) -> dict:
    out = dict(results[0])
    for field in ("seconds", "rate", "kernel_seconds"):
        if field in out:
            out[field] = statistics.median(r[field] for r in results)
    out["rounds"] = [r["seconds"] for r in results]
    return out


def compare_engines(per: dict):
    """Simulator vs dense engine outputs of the streaming samples (first round), then drop
    the bulky readouts from the results."""
    for p in STREAM_RATES:
        s, d = per.get(f"kind=stream/p={p}/engine=sim"), per.get(f"kind=stream/p={p}/engine=dense")
        if not s or not d:
            continue
        sp, dp = s[0]["predictions"], d[0]["predictions"]
        diff = max(abs(a - b) for ra, rb in zip(s[0]["readouts"], d[0]["readouts"])
                   for a, b in zip(ra, rb))
        for r in s + d:
            r["same_predictions"] = sum(a == b for a, b in zip(sp, dp))
            r["max_readout_diff"] = diff
            r.pop("readouts", None)


def machine_info() -> dict:
    info = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "python": sys.version.split()[0]}
    try:
        import numba
        import numpy
        info.update(numpy=numpy.__version__, numba=numba.__version__)
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info["cpus"] = os.cpu_count()
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=str(ROOT)).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "eventsim", "training"],
                               capture_output=True, text=True, cwd=str(ROOT)).stdout.strip()
        info["commit"] = rev + (" (eventsim/ or training/ modified)" if dirty else "")
    except OSError:
        pass
    return info


def fit_line(xs, ys):
    """Least squares ``y = a + b x``; returns (a, b, R^2)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx
    a = my - b * mx
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return a, b, 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


def crossover(rates, sim, dense):
    """First firing rate where the simulator stops being faster (log-linear interpolation of
    log(sim/dense) between the bracketing rates), or None if it never does in the sweep."""
    import math
    r = [math.log(s / d) for s, d in zip(sim, dense)]
    if r[0] >= 0:
        return rates[0], "below"
    for i in range(1, len(rates)):
        if r[i] >= 0:
            x0, x1 = math.log(rates[i - 1]), math.log(rates[i])
            x = x0 + (x1 - x0) * (0 - r[i - 1]) / (r[i] - r[i - 1])
            return math.exp(x), "at"
    return rates[-1], "above"


def report(res: dict, per: dict, info: dict) -> dict:
    summary = {}
    print(f"# bench_eventsim  {info.get('date')}  commit {info.get('commit')}  "
          f"{info.get('cpu')} ({info.get('cpus')} CPUs, load avg at start "
          f"{', '.join(f'{x:.2f}' for x in info.get('loadavg', ()))})")
    print(f"# single thread; medians over {info['rounds']} rounds of each process's median\n")
    if any(k.startswith("kind=raw") for k in res):
        print("## 1. Synaptic events per second per core (T=100, input p=10 %/step)\n")
        print("| projection | geometry | events/run | run time (ms) | kernel time (ms) "
              "| G events/s | raw, same rows (G/s) | / raw same rows | / raw dense rows |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        geo = {"dense": "1000 -> 1000, B=16", "conv": "32x16x16 -> 64x16x16, 3x3 pad 1, B=4",
               "sparse": "1000 -> 1000 CSR 10 %, B=64"}
        rows = {"dense": "raw-1000", "conv": "raw-64", "sparse": "raw-100"}
        th = {}
        for proj in ("dense", "dense-time", "conv", "conv-time", "sparse", "sparse-time"):
            base = proj.removesuffix("-time")
            label = base + (" (schedule time)" if proj.endswith("-time") else " (auto: layer)")
            r = res[f"kind=throughput/name={proj}"]
            raw = res[f"kind=raw/name={rows[base]}"]["rate"]
            k = f"kind=throughput/name={proj}"
            same = round_ratio(per, k, f"kind=raw/name={rows[base]}", "rate")
            dense = round_ratio(per, k, "kind=raw/name=raw-1000", "rate")
            th[proj] = dict(rate=r["rate"], events=r["events"], seconds=r["seconds"],
                            kernel_seconds=r["kernel_seconds"],
                            ratio_raw_dense=dense, ratio_raw_same=same)
            print(f"| {label} | {geo[base]} | {r['events']:.3g} | {r['seconds'] * 1e3:.1f} "
                  f"| {r['kernel_seconds'] * 1e3:.1f} | {r['rate'] / 1e9:.2f} | {raw / 1e9:.2f} "
                  f"| {same:.2f}x | {dense:.2f}x |")
        print("\nraw row-streaming kernel (acc += W[i, :] for a list of spike indices i):\n")
        print("| W [n_in, n_out] | G events/s |")
        print("|---|---:|")
        for name, (ni, no) in RAW.items():
            print(f"| {ni} x {no} | {res[f'kind=raw/name={name}']['rate'] / 1e9:.2f} |")
        summary["throughput"] = dict(raw={n: res[f"kind=raw/name={n}"]["rate"] for n in RAW},
                                     projections=th)
        print()
    if any(k.startswith("kind=scaling") for k in res):
        print("## 2. Runtime against firing rate (MLP 1000-1000-1000-10, T=100, B=16)\n")
        print("| input p/step | hidden rates | events/run | run time (ms) | G events/s |")
        print("|---:|---|---:|---:|---:|")
        ev, sec = [], []
        for p in SCALING_RATES:
            r = res[f"kind=scaling/p={p}"]
            hr = ", ".join(f"{100 * v:.1f} %" for v in r["hidden_rates"].values())
            print(f"| {100 * p:.0f} % | {hr} | {r['events']:.3g} | {r['seconds'] * 1e3:.1f} "
                  f"| {r['rate'] / 1e9:.2f} |")
            ev.append(r["events"])
            sec.append(r["seconds"])
        a, b, r2 = fit_line(ev, sec)
        print(f"\nleast squares: runtime = {a * 1e3:.2f} ms + events / ({1 / b / 1e9:.2f} G/s);  "
              f"R^2 = {r2:.4f}  (events span {max(ev) / min(ev):.0f}x)\n")
        summary["scaling"] = dict(a_s=a, b_s_per_event=b, r2=r2, events=ev, seconds=sec)
    if any(k.startswith("kind=stream") for k in res):
        print(f"## 3. Batch-1 streaming, time per sample (same MLP, B=1, T=100, "
              f"{STREAM_SAMPLES} samples x 3 passes)\n")
        raw = res.get("kind=raw/name=raw-1000", {}).get("rate")
        print("| input p/step | input spikes | events/sample | simulator (ms) | events at raw rate (ms) "
              "| dense engine (ms) | dense / simulator | same prediction | max abs readout diff |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        s_t, d_t, ratios = [], [], []
        for p in STREAM_RATES:
            ks, kd = f"kind=stream/p={p}/engine=sim", f"kind=stream/p={p}/engine=dense"
            s, d = res[ks], res[kd]
            ratio = round_ratio(per, kd, ks)
            same, diff = s["same_predictions"], s["max_readout_diff"]
            print(f"| {100 * p:.0f} % | {s['input_spikes']} | {s['events_per_sample']:.3g} "
                  f"| {s['seconds'] * 1e3:.3f} "
                  f"| {(s['events_per_sample'] / raw * 1e3) if raw else float('nan'):.3f} "
                  f"| {d['seconds'] * 1e3:.3f} "
                  f"| {ratio:.2f}x | {same}/{len(s['predictions'])} | {diff:.2g} |")
            s_t.append(s["seconds"])
            d_t.append(d["seconds"])
            ratios.append(ratio)
        # crossover of the per-round ratios (sim / dense = 1 / ratio)
        x, where = crossover(STREAM_RATES, [1 / r for r in ratios], [1.0] * len(ratios))
        if where == "at":
            msg = f"crossover: the simulator is faster below {100 * x:.0f} % input firing"
        elif where == "above":
            msg = f"crossover: none; the simulator is faster at every rate up to {100 * x:.0f} %"
        else:
            msg = f"crossover: none; the dense engine is faster already at {100 * x:.0f} %"
        print(f"\n{msg}\n")
        summary["streaming"] = dict(rates=STREAM_RATES, simulator_s=s_t, dense_s=d_t,
                                    dense_over_simulator=ratios, crossover=x,
                                    crossover_kind=where)
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sections", nargs="+", default=["throughput", "scaling", "streaming"],
                    choices=["throughput", "scaling", "streaming"])
    ap.add_argument("--json", help="write all measurements and the summary here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    info = machine_info()
    info["rounds"] = args.rounds
    groups = plan(args.sections)
    per: dict[str, list] = {}
    t_start = time.time()
    for rnd in range(args.rounds):
        for g in groups:
            for spec in (g if rnd % 2 == 0 else g[::-1]):
                per.setdefault(key(spec), []).append(run_in_subprocess(spec))
        print(f"[round {rnd + 1}/{args.rounds} done, {time.time() - t_start:.0f} s]",
              file=sys.stderr, flush=True)
    compare_engines(per)
    res = {k: median_over_rounds(v) for k, v in per.items()}
    summary = report(res, per, info)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(dict(machine=info, summary=summary, measurements=per), f, indent=1)


if __name__ == "__main__":
    main()
