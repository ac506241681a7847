"""Event simulator speed of two checkouts, alternating run by run or process by process.

    python benchmarks/ab_checkouts.py OLD_DIR NEW_DIR --model mlp --p 0.01 --schedule time
    python benchmarks/ab_checkouts.py OLD_DIR NEW_DIR --model conv --schedule layer --processes 10
    python benchmarks/ab_checkouts.py OLD_DIR NEW_DIR --model recurrent --runs 30

Default (``--processes 0``): one process imports both checkouts' ``eventsim`` (each copied
under its own package name into a temporary directory) and alternates their ``run`` calls,
so both see the same machine load; prints the medians and their ratio (new / old).  The
same code can settle in a faster or a slower mode depending on the process (memory layout),
so ``--processes N`` instead starts N processes per side, alternating, each reporting the
median of ``--runs`` calls, and compares the medians of those medians.

Models (``bench_eventsim.py``'s): ``mlp`` (1000-1000-1000-10, ``--p`` Bernoulli input,
B = 16, T = 100); ``dense``, ``conv``, ``sparse`` (the throughput projections, 10 % input);
``recurrent`` (``bench_brian2.py``'s network at its check size: N = 500, K = 40, T = 4000).
One thread, CPU time (``time.process_time``).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")


def copy_package(checkout: Path, name: str, into: Path) -> None:
    """``checkout/eventsim`` copied to ``into/name`` (its imports are relative)."""
    shutil.copytree(checkout / "eventsim", into / name,
                    ignore=shutil.ignore_patterns("__pycache__"))


def build(pkg: str, model: str, p: float, seed: int = 1):
    """``(Model, input)`` of benchmark ``model`` written with package ``pkg``'s modelfile."""
    sys.path.insert(0, str(HERE))
    import bench_eventsim as be
    mf = importlib.import_module(pkg + ".modelfile")
    inputs = importlib.import_module(pkg + ".inputs")
    rng = np.random.default_rng(seed)
    if model == "mlp":
        ns = dict(np=np, _f32=be._f32, N=be.N, T=be.T)
        src = inspect.getsource(be.mlp_model).replace("from snncore import modelfile as mf", "")
        ns["mf"] = mf
        exec(src, ns)
        return ns["mlp_model"](), inputs.rate_code(np.full((16, be.N), p), be.T, rng)
    if model in ("dense", "conv", "sparse"):
        ns = dict(np=np, mf=mf, _f32=be._f32, N=be.N, T=be.T, UNREACHABLE=be.UNREACHABLE,
                  THROUGHPUT=be.THROUGHPUT)
        src = inspect.getsource(be.throughput_model).replace(
            "from snncore import modelfile as mf", "")
        exec(src, ns)
        B, shape = be.THROUGHPUT[model]
        return (ns["throughput_model"](model),
                inputs.rate_code(np.full((B,) + tuple(shape), be.P_THROUGHPUT), be.T, rng))
    if model == "recurrent":
        import bench_brian2 as bb
        prm = dict(bb.DEFAULTS)
        prm.update(bb.CHECK)
        net = bb.build_network(prm, seed)
        return _recurrent(mf, net, prm), inputs.from_spike_times(
            net["in_t"], net["in_src"], T=prm["T"], input_shape=(int(net["n_in"]),),
            values=np.ones(len(net["in_t"]), np.float32))
    raise ValueError(f"--model: unknown model {model!r}")


def _recurrent(mf, net, prm):
    """``bench_brian2.make_model`` with the given modelfile module."""
    def csr(rows, cols, vals, shape):
        order = np.lexsort((cols, rows))
        indptr = np.zeros(shape[0] + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
        return mf.Sparse(data=np.ascontiguousarray(vals[order], np.float32),
                         indices=np.ascontiguousarray(cols[order], np.int64), indptr=indptr,
                         shape=tuple(int(s) for s in shape))
    n, n_in = prm["N"], int(net["n_in"])
    layers = [csr(net["in_post"], net["in_pre"], net["in_w"], (n, n_in)),
              mf.Spiking(beta=float(np.exp(-prm["dt"] / prm["tau"])), theta=prm["theta"],
                         reset="hard", v_reset=prm["v_reset"]),
              mf.Dense(weight=np.zeros((1, n), np.float32)), mf.Readout(beta=0.0)]
    conns = [mf.Connection(source=1, target=1, delay=int(d),
                           projection=csr(net["post"][net["delay"] == d],
                                          net["pre"][net["delay"] == d],
                                          net["w"][net["delay"] == d], (n, n)))
             for d in np.unique(net["delay"])]
    return mf.Model(input_shape=(n_in,), layers=layers, connections=conns, T=prm["T"],
                    encoding="events")


def simulator(pkg: str, args):
    ev = importlib.import_module(pkg)
    model, x = build(pkg, args.model, args.p)
    kw = {} if args.model == "recurrent" else {"schedule": args.schedule}
    sim = ev.Simulator(model, n_threads=1, **kw)
    sim.run(x)                                   # compile / warm up
    return sim, x


def timed(sim, x) -> float:
    t0 = time.process_time()
    sim.run(x)
    return time.process_time() - t0


def same_process(args, tmp: Path) -> None:
    copy_package(args.old, "eventsim_old", tmp)
    copy_package(args.new, "eventsim_new", tmp)
    sys.path.insert(0, str(tmp))
    sims = {"old": simulator("eventsim_old", args), "new": simulator("eventsim_new", args)}
    times = {"old": [], "new": []}
    for r in range(args.runs):
        for side in (("old", "new") if r % 2 else ("new", "old")):
            times[side].append(timed(*sims[side]))
    report(times, f"{args.runs} runs per side in one process")


def worker(args) -> None:
    sys.path.insert(0, str(args.worker_dir))
    sim, x = simulator(args.worker_pkg, args)
    print(statistics.median(timed(sim, x) for _ in range(args.runs)))


def processes(args, tmp: Path) -> None:
    copy_package(args.old, "eventsim_old", tmp)
    copy_package(args.new, "eventsim_new", tmp)
    times = {"old": [], "new": []}
    base = [sys.executable, str(Path(__file__).resolve()), str(args.old), str(args.new),
            "--model", args.model, "--p", str(args.p), "--schedule", args.schedule,
            "--runs", str(args.runs), "--worker-dir", str(tmp)]
    for r in range(args.processes):
        for side in (("old", "new") if r % 2 else ("new", "old")):
            out = subprocess.run(base + ["--worker-pkg", f"eventsim_{side}"], env=ENV,
                                 capture_output=True, text=True, check=True).stdout
            times[side].append(float(out.split()[-1]))
    report(times, f"{args.processes} processes per side, median of {args.runs} runs each")


def report(times: dict, how: str) -> None:
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"old {old * 1e3:.3f} ms, new {new * 1e3:.3f} ms, new / old {new / old:.3f} ({how})")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path, help="checkout directory (holds eventsim/)")
    ap.add_argument("new", type=Path, help="checkout directory (holds eventsim/)")
    ap.add_argument("--model", default="mlp",
                    choices=["mlp", "dense", "conv", "sparse", "recurrent"])
    ap.add_argument("--p", type=float, default=0.01, help="MLP input rate")
    ap.add_argument("--schedule", default="auto", choices=["auto", "time", "layer"])
    ap.add_argument("--runs", type=int, default=None,
                    help="runs per side (default 200 in one process, 15 per worker process)")
    ap.add_argument("--processes", type=int, default=0)
    ap.add_argument("--worker-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--worker-pkg", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for d in (args.old, args.new):
        if not (d / "eventsim" / "__init__.py").is_file():
            ap.error(f"{d}: no eventsim package there")
    if args.runs is None:
        args.runs = 15 if (args.processes or args.worker_pkg) else 200
    if args.worker_pkg:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        (processes if args.processes else same_process)(args, Path(tmp))


if __name__ == "__main__":
    main()
