"""Batch-1 streaming: time per sample of the event simulator and the dense engine, one
sample per call (issue 19, part 2).

    python benchmarks/bench_stream.py                          # MLP and conv, 3 rounds
    python benchmarks/bench_stream.py --models mlp --rounds 5 --json runs/bench_stream.json

Models: ``tests/data/fmnist_mlp.h5`` (FC 784-800-10, LIF, trained) and
``tests/data/fmnist_conv.h5`` (32C3-LIF-AP2-64C3-LIF-AP2-FC10, trained), both run for
T = 32 steps (``--T``).  Input: Bernoulli spikes, every input address independently with
probability p per step, p in 0 (an empty sample: the fixed cost), 1, 5, 10, 20, 40 %; the
same samples (seeded) for every engine.

Engines, each built once and then called once per sample (B = 1):

``run_dense``  ``Simulator(model, n_threads=1).run(x)`` on the dense 0/1 ``[T, 1, ...]``
            float32 sample, as a new user calls it: both models declare ``encoding="direct"``,
            so ``run`` takes it as an analog current (first projection applied densely, no
            input events; issue 19 part 3).
``run``     ``Simulator(model, n_threads=1).run(events)`` on the sample's EventBatch
            (``from_dense``, made before timing).
``stream``  ``sim.stream(T).run((times, indices))``: the warm path, events checked.
``trusted`` the same with ``check=False`` (the caller vouches for the events).
``dense``   ``training.to_network(model).forward(x)`` on the same spikes as a dense
            ``[T, 1, *input_shape]`` 0/1 float32 array (eval forward).

Every (model, rate, engine) runs in its own subprocess with one thread
(``OPENBLAS_NUM_THREADS=1``, ``NUMBA_NUM_THREADS=1``, ``Simulator(n_threads=1)``) after an
untimed warm-up call; the engines of one (model, rate) alternate within a round, the order
reversed every other round; a process reports the median over ``--samples`` samples x
``--passes`` passes, tables the median over rounds, ratios the median of per-round ratios.
Also reported for the simulator engines: the median time outside the kernel call
(wall time of the call minus ``Recording.elapsed_s``), and the agreement of predictions with
the dense engine (not bit for bit: BLAS and the spike order sum currents in different orders).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1"}
MODELS = {"mlp": "tests/data/fmnist_mlp.h5", "conv": "tests/data/fmnist_conv.h5"}
RATES = [0.0, 0.01, 0.05, 0.10, 0.20, 0.40]
CONV_RATES = [0.0, 0.005, 0.01, 0.02, 0.05, 0.10]   # the conv net crosses over early
ENGINES = ["run_dense", "run", "stream", "trusted", "dense"]


def worker(spec: dict) -> dict:
    import numpy as np
    from eventsim.inputs import from_dense
    from snncore.modelfile import read_model
    model = read_model(ROOT / MODELS[spec["model"]])
    T, p, S = spec["T"], spec["p"], spec["samples"]
    rng = np.random.default_rng(1234)
    shape = tuple(model.input_shape)
    xs = [(rng.random((T, 1) + shape) < p).astype(np.float32) for _ in range(S)]
    events = [from_dense(x) for x in xs]
    tuples = [(e.times, e.indices) for e in events]
    engine = spec["engine"]
    if engine == "dense":
        import training
        net = training.to_network(model)
        call = lambda b: net.forward(xs[b])                          # noqa: E731
    else:
        import eventsim
        sim = eventsim.Simulator(model, n_threads=1)
        if engine == "run":
            call = lambda b: sim.run(events[b])                      # noqa: E731
        elif engine == "run_dense":
            call = lambda b: sim.run(xs[b])                          # noqa: E731
        else:
            stream = sim.stream(T=T, check=engine == "stream")
            call = lambda b: stream.run(tuples[b])                   # noqa: E731
    call(0)                                                          # warm-up (JIT, BLAS)
    times, outside, preds, events_n = [], [], [], []
    for k in range(spec["passes"]):
        for b in range(S):
            t0 = time.perf_counter()
            y = call(b)
            dt = time.perf_counter() - t0
            times.append(dt)
            if engine != "dense":
                outside.append(dt - y.elapsed_s)
            if k == 0:
                if engine == "dense":
                    r = np.asarray(y, dtype=np.float64)[:, 0]
                    preds.append(int(r.mean(axis=0).argmax()))
                else:
                    preds.append(int(y.predictions[0]))
                    events_n.append(int(y.synaptic_events["total"]))
    empty_call = None
    if engine in ("stream", "trusted"):
        # the kernel call's own fixed cost: the compiled entry with no sample (b1 = b0):
        # argument unboxing, state allocation, results boxed
        from eventsim import kernels as K
        from eventsim import tables as TB
        e = tuples[0]
        inp = TB.Inputs(e[0], e[1], np.ones(len(e[0]), stream._dt), np.array([0, len(e[0])]),
                        stream._nodrive, K.DRIVE_NONE)
        ro, mem = np.zeros(stream._rout, stream._dt), np.zeros(stream._mshape, stream._dt)
        ec = []
        for _ in range(500):
            t0 = time.perf_counter()
            stream._entry(stream._tables, inp, T, np.int64(0), np.int64(0), stream._opts, ro, mem)
            ec.append(time.perf_counter() - t0)
        empty_call = statistics.median(ec)
    out = dict(spec, seconds=statistics.median(times), predictions=preds, empty_call_s=empty_call,
               input_spikes=float(np.mean([len(e.times) for e in events])))
    if outside:
        out["outside_s"] = statistics.median(outside)
        out["events"] = float(np.mean(events_n))
    return out


def run_in_subprocess(spec: dict) -> dict:
    env = dict(os.environ, **THREAD_ENV)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, cwd=str(ROOT))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def crossover(rates, ratio):
    """Rate where dense/simulator falls through 1 (log-linear interpolation between the
    bracketing rates > 0), None if the simulator is faster at every rate of the sweep."""
    pts = [(r, q) for r, q in zip(rates, ratio) if r > 0]
    if pts[0][1] < 1:
        return f"dense faster already at {100 * pts[0][0]:g} %"
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if q1 < 1:
            x0, x1 = math.log(r0), math.log(r1)
            y0, y1 = math.log(q0), math.log(q1)
            return f"{100 * math.exp(x0 + (x1 - x0) * (0 - y0) / (y1 - y0)):.0f} %"
    return f"none up to {100 * pts[-1][0]:g} % (simulator faster throughout)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--rates", nargs="+", type=float, default=RATES, help="MLP input rates")
    ap.add_argument("--conv-rates", nargs="+", type=float, default=CONV_RATES)
    ap.add_argument("--conv-samples", type=int, default=15)
    ap.add_argument("--conv-passes", type=int, default=2)
    ap.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    ap.add_argument("--T", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=str(ROOT)).stdout.strip()
    print(f"# bench_stream  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  commit {rev}  "
          f"load avg {', '.join(f'{x:.2f}' for x in os.getloadavg())}  T={args.T}  "
          f"{args.rounds} rounds, 1 thread")
    rates = {"mlp": args.rates, "conv": args.conv_rates}
    per: dict = {}
    t0 = time.time()
    for rnd in range(args.rounds):
        for m in args.models:
            conv = m == "conv"
            for p in rates[m]:
                engines = args.engines if rnd % 2 == 0 else args.engines[::-1]
                for e in engines:
                    spec = dict(model=m, p=p, engine=e, T=args.T,
                                samples=args.conv_samples if conv else args.samples,
                                passes=args.conv_passes if conv else args.passes)
                    per.setdefault((m, p, e), []).append(run_in_subprocess(spec))
        print(f"[round {rnd + 1}/{args.rounds} done, {time.time() - t0:.0f} s]", file=sys.stderr,
              flush=True)
    summary = {}
    for m in args.models:
        print(f"\n## {m} ({MODELS[m]}), T={args.T}, time per sample (us; median over rounds)\n")
        S, P = ((args.conv_samples, args.conv_passes) if m == "conv"
                else (args.samples, args.passes))
        print(f"({S} samples x {P} passes per process)\n")
        sim_e = [e for e in args.engines if e != "dense"]
        head = "| input p | input spikes | syn. events | " + " | ".join(
            f"{e} (us) | {e} outside kernel (us)" for e in sim_e)
        if "dense" in args.engines:
            head += " | dense (us) | " + " | ".join(f"dense / {e}" for e in sim_e) + \
                " | same prediction"
        print(head + " |")
        print("|" + "---:|" * (head.count("|")) )
        ratios = {e: [] for e in sim_e}
        for p in rates[m]:
            ev_e = [e for e in sim_e if e != "run_dense"]
            row = per[(m, p, (ev_e or sim_e or ["dense"])[0])]
            cells = [f"{100 * p:g} %", f"{row[0]['input_spikes']:.0f}",
                     f"{row[0].get('events', 0):.3g}"]
            for e in sim_e:
                r = per[(m, p, e)]
                cells += [f"{1e6 * statistics.median(x['seconds'] for x in r):.1f}",
                          f"{1e6 * statistics.median(x['outside_s'] for x in r):.1f}"]
            if "dense" in args.engines:
                d = per[(m, p, "dense")]
                cells.append(f"{1e6 * statistics.median(x['seconds'] for x in d):.1f}")
                for e in sim_e:
                    q = statistics.median(a["seconds"] / b["seconds"]
                                          for a, b in zip(d, per[(m, p, e)]))
                    ratios[e].append(q)
                    cells.append(f"{q:.2f}x")
                same = sum(a == b for a, b in zip(d[0]["predictions"],
                                                  per[(m, p, sim_e[-1])][0]["predictions"]))
                cells.append(f"{same}/{len(d[0]['predictions'])}")
            print("| " + " | ".join(cells) + " |")
        print()
        for e in ("stream", "trusted"):
            if e in sim_e:
                allr = [x for p in rates[m] for x in per[(m, p, e)]]
                o = statistics.median(x["outside_s"] for x in allr)
                k = statistics.median(x["empty_call_s"] for x in allr)
                print(f"fixed cost per call ({e}): {1e6 * o:.1f} us outside the kernel call "
                      f"(median over all rates) + {1e6 * k:.1f} us kernel call with no sample "
                      f"= {1e6 * (o + k):.1f} us")
                if 0.0 in rates[m]:
                    z = per[(m, 0.0, e)]
                    o0 = statistics.median(x["outside_s"] for x in z)
                    k0 = statistics.median(x["empty_call_s"] for x in z)
                    print(f"  on the empty sample (0 %): {1e6 * o0:.1f} + {1e6 * k0:.1f} = "
                          f"{1e6 * (o0 + k0):.1f} us")
        if "run" in sim_e:
            allr = [x for p in rates[m] for x in per[(m, p, "run")]]
            print(f"Simulator.run: {1e6 * statistics.median(x['outside_s'] for x in allr):.1f} us "
                  "outside the kernel call (median over all rates)")
        if "dense" in args.engines:
            print()
            for e in sim_e:
                c = crossover(rates[m], ratios[e])
                print(f"crossover ({e} vs dense): the simulator is faster below {c}"
                      if c[0].isdigit() else f"crossover ({e} vs dense): {c}")
            summary[m] = {e: dict(ratios=ratios[e], crossover=crossover(rates[m], ratios[e]))
                          for e in sim_e}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(dict(summary=summary, measurements={"/".join(map(str, k)): v
                                                          for k, v in per.items()}), f, indent=1)


if __name__ == "__main__":
    main()
