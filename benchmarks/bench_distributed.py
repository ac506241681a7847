"""Distributed extras: batch-simulation throughput on 1 and 2 Dask workers, data-parallel
training step time on 1 and 2 MPI ranks, and the cost of Dask's MALLOC_TRIM_THRESHOLD_.

    flock /tmp/snn_bench.lock python benchmarks/bench_distributed.py --part sim
    flock /tmp/snn_bench.lock python benchmarks/bench_distributed.py --part mpi
    flock /tmp/snn_bench.lock python benchmarks/bench_distributed.py --part malloc

Every measurement runs in its own process (the command line of ``eventsim simulate`` or
``python -m training.distributed``); the configurations alternate, ``--repeats`` rounds, and
the tables show medians.  Needs the ``distributed`` and ``mpi`` extras and ``mpirun``.

- sim: a rate-coded MLP 784-400-10 (random weights, T = 8) on the first ``--limit``
  Fashion-MNIST test images, chunks of ``--batch-size``: in process with 1 and 2 threads
  and with ``--scheduler local:1`` / ``local:2``.  ``loop_time_s``: encoding and simulating
  every chunk (in process: the batch loop; on Dask: first chunk submitted to last summary
  gathered).  Kernel compilation, each worker's model and dataset load, and the cluster's
  start-up come before (they are in ``wall``).
- mpi: ``python -m training.distributed --warmup`` (MLP 784-``--hidden``-10, ``--T`` steps,
  ``--encoder`` input, Adam, global batch 128, ``--steps`` steps): one process with 1 and with
  2 threads, and ``mpirun -np 2`` with one thread per rank; milliseconds per step; and the
  time of one Allreduce of the gradient buffer on its own.
- malloc: the one-process, one-thread training run with ``MALLOC_TRIM_THRESHOLD_=65536``
  (what Dask's nanny sets in its workers) against the variable unset.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _env(threads: int, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[k] = str(threads)
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    env.update(extra)
    return env


def _run_json(cmd: list, env: dict) -> dict:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout[r.stdout.index("{"):])


def _model(path: Path) -> str:
    from snncore import modelfile as mf

    rng = np.random.default_rng(0)
    hidden = 400
    w1 = rng.normal(0.0, 0.05, (hidden, 784)).astype(np.float32)
    w2 = rng.normal(0.0, 0.2, (10, hidden)).astype(np.float32)
    model = mf.Model(input_shape=(1, 28, 28),
                     layers=[mf.Flatten(), mf.Dense(w1, np.zeros(hidden, np.float32)),
                             mf.Spiking(beta=0.6, theta=0.5), mf.Dense(w2), mf.Readout()],
                     T=8, encoding="rate", metadata={"dataset": "fashion-mnist"})
    return str(mf.write_model(model, path))


def _table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def bench_sim(args) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        model = _model(Path(tmp) / "mlp400.h5")
        base = [sys.executable, "-m", "eventsim.cli", "simulate", model, "--dataset",
                "fashion-mnist", "--limit", str(args.limit), "--batch-size",
                str(args.batch_size), "--seed", "0", "--no-progress"]
        configs = {"in process, 1 thread": (base + ["--threads", "1"], 1),
                   "in process, 2 threads": (base + ["--threads", "2"], 2),
                   "Dask local:1 (1 worker)": (base + ["--scheduler", "local:1"], 1),
                   "Dask local:2 (2 workers)": (base + ["--scheduler", "local:2"], 1)}
        _run_json(configs["in process, 1 thread"][0], _env(1))   # fill the Numba cache
        times = {k: [] for k in configs}
        walls = {k: [] for k in configs}
        outputs = {}
        for _ in range(args.repeats):
            for name, (cmd, threads) in configs.items():
                d = _run_json(cmd, _env(threads))
                times[name].append(d["loop_time_s"])
                walls[name].append(d["wall_time_s"])
                outputs[name] = (d["accuracy"], d["synaptic_events"], d["spikes_per_layer"])
    same = len(set(json.dumps(v) for v in outputs.values())) == 1
    rows = []
    ref = statistics.median(times["in process, 1 thread"])
    for name in configs:
        t = statistics.median(times[name])
        rows.append([name, f"{t:.2f}", f"{args.limit / t:.0f}", f"{ref / t:.2f}x",
                     f"{statistics.median(walls[name]):.2f}"])
    return (_table(["configuration", "loop s (median)", "samples / s",
                    "vs 1 thread", "wall s (incl. start-up)"], rows)
            + f"\n\n{args.limit} samples, chunks of {args.batch_size}; output identical in "
              f"every configuration: {same}")


def _train_cmd(args, single: bool) -> list:
    cmd = [sys.executable, "-m", "training.distributed", "--warmup", "--steps", str(args.steps),
           "--batch-size", "128", "--hidden", str(args.hidden), "--T", str(args.T),
           "--encoder", args.encoder]
    return cmd + (["--single"] if single else [])


ALLREDUCE = """
import json, time, numpy as np
from mpi4py import MPI
comm = MPI.COMM_WORLD
buf = np.ones({n}, dtype=np.float32)
for _ in range(5):
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
comm.Barrier()
times = []
for _ in range(50):
    t0 = time.perf_counter(); comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM); times.append(time.perf_counter() - t0)
if comm.Get_rank() == 0:
    print(json.dumps({{"allreduce_ms": 1e3 * float(np.median(times))}}))
"""


def _allreduce_ms(mpirun: str, args) -> tuple[int, float]:
    """(buffer floats, median ms) of one in-place Allreduce of the MLP's gradient buffer."""
    n = 784 * args.hidden + args.hidden + 10 * args.hidden + 10 + 2
    d = _run_json([mpirun, "-np", "2", sys.executable, "-c", ALLREDUCE.format(n=n)], _env(1))
    return n, d["allreduce_ms"]


def bench_mpi(args) -> str:
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if mpirun is None:
        raise SystemExit("no mpirun on PATH")
    configs = {"1 process, 1 thread": (_train_cmd(args, True), _env(1)),
               "1 process, 2 threads": (_train_cmd(args, True), _env(2)),
               "mpirun -np 2, 1 thread each": ([mpirun, "-np", "2"] + _train_cmd(args, False),
                                               _env(1))}
    steps = {k: [] for k in configs}
    spread = {}
    for _ in range(args.repeats):
        for name, (cmd, env) in configs.items():
            d = _run_json(cmd, env)
            steps[name].append(d["step_ms"])
            spread[name] = d["max_param_diff_between_ranks"]
    ref = statistics.median(steps["1 process, 1 thread"])
    rows = [[name, f"{statistics.median(v):.1f}", f"{min(v):.1f}-{max(v):.1f}",
             f"{ref / statistics.median(v):.2f}x"] for name, v in steps.items()]
    n, ms = _allreduce_ms(mpirun, args)
    return (_table(["configuration", "ms / step (median)", "range", "vs 1 thread"], rows)
            + f"\n\nMLP 784-{args.hidden}-10, T = {args.T}, {args.encoder} input, global batch "
              f"128, {args.steps} steps after 2 warm-up steps; parameters of the 2 ranks "
              f"bitwise equal: {spread['mpirun -np 2, 1 thread each'] == 0.0}; one Allreduce "
              f"of the {n}-float gradient buffer (2 ranks): {ms:.2f} ms (median of 50)")


def bench_malloc(args) -> str:
    configs = {"MALLOC_TRIM_THRESHOLD_ unset": _env(1),
               "MALLOC_TRIM_THRESHOLD_=65536 (Dask nanny default)":
                   _env(1, MALLOC_TRIM_THRESHOLD_="65536")}
    steps = {k: [] for k in configs}
    for _ in range(args.repeats):
        for name, env in configs.items():
            steps[name].append(_run_json(_train_cmd(args, True), env)["step_ms"])
    ref = statistics.median(steps["MALLOC_TRIM_THRESHOLD_ unset"])
    rows = [[name, f"{statistics.median(v):.1f}", f"{min(v):.1f}-{max(v):.1f}",
             f"{statistics.median(v) / ref:.2f}x"] for name, v in steps.items()]
    return _table(["environment", "ms / step (median)", "range", "time vs unset"], rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("sim", "mpi", "malloc"), required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=10000, help="sim: samples")
    ap.add_argument("--batch-size", type=int, default=500, help="sim: samples per chunk")
    ap.add_argument("--steps", type=int, default=30, help="mpi, malloc: timed steps")
    ap.add_argument("--hidden", type=int, default=800, help="mpi, malloc: hidden neurons")
    ap.add_argument("--T", type=int, default=8, help="mpi, malloc: time steps")
    ap.add_argument("--encoder", choices=("direct", "rate"), default="rate",
                    help="mpi, malloc: input encoding")
    args = ap.parse_args(argv)
    print(os.popen("uptime").read().strip())
    print({"sim": bench_sim, "mpi": bench_mpi, "malloc": bench_malloc}[args.part](args))
    print(os.popen("uptime").read().strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
