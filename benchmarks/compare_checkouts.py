"""Speed of the event simulator in two checkouts, side by side (alternating processes).

    python benchmarks/compare_checkouts.py OLD_DIR NEW_DIR --rounds 5 --out runs/compare.json

Each round runs, in each checkout in turn (the order flips every round), and every
measurement in its own process with one thread:

- ``bench_eventsim.py --sections throughput scaling --rounds 1`` of that checkout (dense,
  conv and sparse projections under both schedules; the MLP at five input rates);
- ``bench_brian2.py --engines ours-float32 --rounds 1`` of that checkout (the random
  recurrent network with delays), when the checkout has it;
- the trained Fashion-MNIST models of ``tests/data/`` (conv net and MLP) on 256 images of the
  committed subset, direct input, ``Simulator(n_threads=1)``: median of 7 runs after a
  warm-up run.

The report gives, per measurement, the median over rounds of each side and the median of the
per-round ratios new / old (below 1: faster).  Both checkouts need their Numba caches warm
(run this twice, or run each checkout's tests first): compilation is not what is compared.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
           NUMBA_NUM_THREADS="1")

TRAINED = r'''
import json, statistics, sys, time
sys.path.insert(0, ".")
import numpy as np
import eventsim
from training.datasets import load_fashion_mnist_small
data = load_fashion_mnist_small("test")
out = {}
for name in ("fmnist_conv", "fmnist_mlp"):
    model = eventsim.load(f"tests/data/{name}.h5")
    shape = tuple(model.model.input_shape) if hasattr(model, "model") else None
    x = data.images[:256].astype(np.float32) / np.float32(255)
    x = x.reshape((256,) + tuple(shape))
    xs = eventsim.inputs.direct(x, model.T)
    sim = eventsim.Simulator(model, n_threads=1)
    sim.run(xs)
    ts = []
    for _ in range(7):
        t0 = time.perf_counter(); sim.run(xs); ts.append(time.perf_counter() - t0)
    out[name + " (256 images)"] = statistics.median(ts)
print(json.dumps(out))
'''


def _run(cmd, cwd) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=dict(ENV, PYTHONPATH=str(cwd)), capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd} in {cwd} failed:\n{r.stderr[-2000:]}")
    return r.stdout


def measure(checkout: Path, tmp: Path) -> dict:
    """``{measurement: seconds}`` of one round in one checkout."""
    res = {}
    js = tmp / f"be_{checkout.name}.json"
    _run([sys.executable, "benchmarks/bench_eventsim.py", "--sections", "throughput", "scaling",
          "--rounds", "1", "--json", str(js)], checkout)
    res.update(_flatten_bench(json.loads(js.read_text())))
    if (checkout / "benchmarks" / "bench_brian2.py").exists():
        text = _run([sys.executable, "benchmarks/bench_brian2.py", "--engines", "ours-float32",
                     "--rounds", "1", "--out-dir", str(tmp / f"b2_{checkout.name}")], checkout)
        m = re.search(r"round \d+ ours-float32: sim ([0-9.]+) s", text)
        if m:
            res["brian2 network, ours-float32 (sim s)"] = float(m.group(1))
    res.update(json.loads(_run([sys.executable, "-c", TRAINED], checkout).strip().splitlines()[-1]))
    return res


def _flatten_bench(data: dict) -> dict:
    """Seconds per simulator measurement from bench_eventsim's JSON ("measurements": key ->
    list of per-round results; raw kernels and the dense engine left out)."""
    out = {}
    for key, runs in data["measurements"].items():
        if key.startswith("kind=raw") or "dense-engine" in key:
            continue
        secs = [r["seconds"] for r in runs if isinstance(r, dict) and "seconds" in r]
        if secs:
            out["bench_eventsim " + key] = statistics.median(secs)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/compare_checkouts"))
    args = ap.parse_args(argv)
    args.tmp.mkdir(parents=True, exist_ok=True)
    rounds = []
    for r in range(args.rounds):
        order = [("old", args.old), ("new", args.new)]
        if r % 2:
            order.reverse()
        got = {side: measure(path.resolve(), args.tmp) for side, path in order}
        rounds.append(got)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    keys = sorted(set(rounds[0]["old"]) & set(rounds[0]["new"]))
    lines = ["| measurement | old (s) | new (s) | new / old |", "|---|---:|---:|---:|"]
    summary = {}
    for k in keys:
        old = statistics.median(rd["old"][k] for rd in rounds)
        new = statistics.median(rd["new"][k] for rd in rounds)
        ratio = statistics.median(rd["new"][k] / rd["old"][k] for rd in rounds)
        summary[k] = {"old": old, "new": new, "ratio": ratio}
        lines.append(f"| {k} | {old:.4f} | {new:.4f} | {ratio:.3f} |")
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
