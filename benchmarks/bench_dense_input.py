"""Spike input to a direct-encoded model: analog current vs events vs the dense engine, and
throughput against input firing rate (issue 19, parts 3 and 6).

    python benchmarks/bench_dense_input.py                          # 3 rounds, 1 and 2 threads
    python benchmarks/bench_dense_input.py --rounds 5 --json runs/bench_dense_input.json \\
        --plot runs/throughput_vs_rate.png

Models: ``tests/data/fmnist_mlp.h5`` (FC 784-800-10, trained, ``encoding="direct"``) at
T = 32 and ``tests/data/fmnist_conv.h5`` (32C3-LIF-AP2-64C3-LIF-AP2-FC10, trained) at T = 8,
each at batch 1 and a larger batch (FC 64, conv 16).  Input: a dense 0/1 float32 array
``[T, B, *input_shape]``, every entry independently 1 with probability p (seeded, the same for
every engine), as a user who feeds spikes passes it.

Engines (each (model, batch, threads, engine) is one subprocess that runs every rate; the
engines alternate within a round, order reversed every other round; tables give the median
over rounds of each process's median call time):

``current``  ``Simulator(model, dense_input="current").run(x)``: the first projection
             applied densely (one product per step), the result drives the first layer.
``events``   ``Simulator(model, dense_input="events").run(x)``: every 1 an input event
             (``from_dense`` inside the call, timed).
``auto``     ``Simulator(model).run(x)``: the default rule (``dense_input_as_events``).
``dense``    ``training.to_network(model)`` in eval mode, ``forward(x)``.

Threads: ``--threads 1 2``; every worker sets OpenBLAS/OpenMP/Numba threads to that number,
``Simulator(n_threads=...)`` the same (threads across the samples of a batch).
Throughput: samples/s = B / time; events/s = synaptic events (the simulator's
``synaptic_events["total"]``, input deliveries included, the same count for every engine) /
time.
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
MODELS = {"mlp": ("tests/data/fmnist_mlp.h5", 32, 64), "conv": ("tests/data/fmnist_conv.h5", 8, 16)}
RATES = {"mlp": [0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.50],
         "conv": [0.005, 0.01, 0.02, 0.05, 0.10, 0.20, 0.50]}
ENGINES = ["current", "events", "auto", "dense"]


def worker(spec: dict) -> dict:
    import numpy as np
    from snncore.modelfile import read_model
    path, T, _ = MODELS[spec["model"]]
    model = read_model(ROOT / path)
    B, engine = spec["B"], spec["engine"]
    shape = tuple(model.input_shape)
    rows = []
    if engine == "dense":
        import training
        net = training.to_network(model)
        call = net.forward
    else:
        import eventsim
        sim = eventsim.Simulator(model, n_threads=spec["threads"], dense_input=engine)
        call = sim.run
    for p in RATES[spec["model"]]:
        rng = np.random.default_rng(int(p * 1e6) + B)
        x = (rng.random((T, B) + shape) < p).astype(np.float32)
        y = call(x)                                               # warm-up (JIT, BLAS)
        events = None if engine == "dense" else int(y.synaptic_events["total"])
        times = []
        budget = time.perf_counter() + spec["seconds"]
        while len(times) < 3 or (time.perf_counter() < budget and len(times) < 200):
            t0 = time.perf_counter()
            call(x)
            times.append(time.perf_counter() - t0)
        rows.append(dict(p=p, seconds=statistics.median(times), events=events,
                         input_spikes=int(x.sum()), calls=len(times)))
    return dict(spec, rows=rows)


def run_in_subprocess(spec: dict) -> dict:
    n = str(spec["threads"])
    env = dict(os.environ, OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n,
               NUMBA_NUM_THREADS=n)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, cwd=str(ROOT))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def table(results, model, B, threads) -> list[str]:
    """Markdown rows: time per call of every engine and the ratios to ``current``/``dense``."""
    def med(engine, k):
        return statistics.median(r["rows"][k]["seconds"] for r in results
                                 if (r["model"], r["B"], r["threads"], r["engine"])
                                 == (model, B, threads, engine))
    ref = [r for r in results if (r["model"], r["B"], r["threads"], r["engine"])
           == (model, B, threads, "events")][0]
    lines = [f"**{model}, B = {B}, T = {MODELS[model][1]}, {threads} thread(s): ms per call**", "",
             "| p | input spikes | syn. events | current | events | auto | dense | "
             "events / current | auto / current | auto / dense |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, row in enumerate(ref["rows"]):
        t = {e: med(e, k) for e in ENGINES}
        lines.append(f"| {100 * row['p']:g} % | {row['input_spikes']} | {row['events']:.3g} | "
                     + " | ".join(f"{1e3 * t[e]:.2f}" for e in ENGINES)
                     + f" | {t['events'] / t['current']:.2f}x | {t['auto'] / t['current']:.2f}x"
                     f" | {t['auto'] / t['dense']:.2f}x |")
    return lines


def plot(results, out: Path, threads: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = sorted({(r["model"], r["B"]) for r in results})
    fig, axes = plt.subplots(2, len(keys), figsize=(4.2 * len(keys), 7), squeeze=False)
    styles = {"current": ("tab:orange", "s"), "events": ("tab:blue", "o"),
              "auto": ("black", "+"), "dense": ("tab:green", "^")}
    for c, (model, B) in enumerate(keys):
        ref = [r for r in results if (r["model"], r["B"], r["threads"], r["engine"])
               == (model, B, threads, "events")][0]
        ps = [100 * row["p"] for row in ref["rows"]]
        events = [row["events"] for row in ref["rows"]]
        for engine, (color, marker) in styles.items():
            sec = [statistics.median(r["rows"][k]["seconds"] for r in results
                                     if (r["model"], r["B"], r["threads"], r["engine"])
                                     == (model, B, threads, engine)) for k in range(len(ps))]
            label = {"current": "simulator, analog current", "events": "simulator, events",
                     "auto": "simulator, auto", "dense": "dense engine"}[engine]
            axes[0, c].plot(ps, [B / s for s in sec], marker=marker, color=color, label=label)
            axes[1, c].plot(ps, [e / s for e, s in zip(events, sec)], marker=marker,
                            color=color, label=label)
        axes[0, c].set_title(f"{model}, B = {B}, T = {MODELS[model][1]}, {threads} thread(s)")
        for r in (0, 1):
            axes[r, c].set_xscale("log")
            axes[r, c].set_yscale("log")
            axes[r, c].grid(True, which="both", alpha=0.3)
        axes[1, c].set_xlabel("input firing probability per step (%)")
    axes[0, 0].set_ylabel("samples / s")
    axes[1, 0].set_ylabel("synaptic events / s")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--seconds", type=float, default=0.4, help="timing budget per rate")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path, help="throughput vs rate figure (PNG)")
    ap.add_argument("--plot-threads", type=int, default=None,
                    help="thread count whose figures the plot shows (default: the fewest)")
    ap.add_argument("--from-json", type=Path, help="only print tables / plot from a JSON")
    args = ap.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    if args.from_json:
        results = json.loads(args.from_json.read_text())["results"]
    else:
        results = []
        for rnd in range(args.rounds):
            for model in args.models:
                for B in (1, MODELS[model][2]):
                    for threads in args.threads:
                        order = ENGINES if rnd % 2 == 0 else ENGINES[::-1]
                        for engine in order:
                            spec = dict(model=model, B=B, threads=threads, engine=engine,
                                        round=rnd, seconds=args.seconds)
                            res = run_in_subprocess(spec)
                            results.append(res)
                            print(f"round {rnd} {model} B={B} threads={threads} {engine}: "
                                  + " ".join(f"{1e3 * r['seconds']:.2f}" for r in res["rows"])
                                  + " ms", flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(dict(command=" ".join(sys.argv),
                                                 results=results), indent=1))
    threads = sorted({r["threads"] for r in results}, reverse=True)
    for model in args.models:
        for B in (1, MODELS[model][2]):
            for th in threads:
                print("\n".join([""] + table(results, model, B, th)))
    if args.plot:
        plot(results, args.plot, args.plot_threads or threads[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
