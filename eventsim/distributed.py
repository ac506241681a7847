"""Batch simulation on a Dask cluster: ``eventsim simulate MODEL ... --scheduler SPEC``.

Needs the optional extra ``pip install "snn-eventsim[distributed]"`` (Dask distributed);
nothing on the default code path imports this module.  docs/distributed.md explains how to
start a scheduler and workers on several machines.

A task is (model, dataset, start, stop): it simulates the samples ``start:stop`` (a chunk of
``--batch-size``) and returns their :class:`eventsim.Recording`; the driver gathers the
recordings in sample order.  Sample ``i`` is rate-coded from ``default_rng([seed, i])``
(:mod:`eventsim.seeding`), so the output is bitwise the same for any chunk size, any number
of workers, and in process.

The model and the dataset description travel once per worker, in a worker plugin
(:class:`SimulationSetup`): the model file's path when every worker reads the same bytes
there (a shared filesystem; checked by SHA-256), else the file's bytes.  Each worker loads
the model and the dataset on its first task and keeps them for the next ones.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

try:
    import dask
    from distributed import Client, LocalCluster, WorkerPlugin, get_worker
except ImportError as e:  # pragma: no cover - the extra is not installed
    raise ImportError("--scheduler needs Dask distributed: pip install "
                      "'snn-eventsim[distributed]' (or pip install 'dask[distributed]')") from e

# Environment of every local worker process: one BLAS/OpenMP/Numba thread per worker (the
# workers are the parallelism), and no MALLOC_TRIM_THRESHOLD_ (Dask's default of 65536 makes
# glibc return memory to the OS after every large free: NumPy training ran slower with it,
# see docs/distributed.md).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "MALLOC_TRIM_THRESHOLD_": None}


CONNECT_TIMEOUT = 10.0   # seconds to reach a scheduler at an address before giving up


class SchedulerError(ValueError):
    """A --scheduler value that is malformed or names no reachable scheduler."""


def parse_scheduler(text: str) -> tuple[str, object]:
    """``("local", N)`` for ``local:N`` (N >= 1), ``("address", text)`` for ``tcp://HOST:PORT``
    (or ``tls://``, ``ws://``, ``inproc://``); SchedulerError otherwise."""
    text = str(text).strip()
    if text.startswith("local:"):
        n = text[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise SchedulerError(f"--scheduler {text!r}: local:N needs N >= 1 worker processes")
        return "local", int(n)
    if "://" in text and text.split("://", 1)[0] in ("tcp", "tls", "ws", "wss", "inproc"):
        host = text.split("://", 1)[1]
        if not host or (text.startswith(("tcp", "tls")) and ":" not in host):
            raise SchedulerError(f"--scheduler {text!r}: expected tcp://HOST:PORT")
        return "address", text
    raise SchedulerError(f"--scheduler {text!r}: expected local:N or tcp://HOST:PORT")


def local_cluster(n_workers: int, **kwargs) -> LocalCluster:
    """``n_workers`` local worker processes of one thread each, environment :data:`WORKER_ENV`
    (a variable already set in this process keeps its value there, Dask's rule), no
    dashboard; ``kwargs`` go to :class:`distributed.LocalCluster`."""
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v
                          for k, v in WORKER_ENV.items()}):
        saved = {k: os.environ.get(k) for k in WORKER_ENV}
        try:
            return LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1,
                                dashboard_address=None, **kwargs)
        finally:  # the Nanny writes its pre-spawn environment into this process's too
            for k, v in saved.items():   # (NUMBA_NUM_THREADS changed here breaks Numba later)
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@contextlib.contextmanager
def connect(scheduler: str, *, timeout: float | None = None, allowed_failures: int | None = None):
    """A :class:`distributed.Client` for ``--scheduler``: a fresh local cluster
    (``local:N``, closed on exit) or the running scheduler at an address.  Raises
    SchedulerError, before any work, when the address is malformed or unreachable within
    ``timeout`` seconds.  ``allowed_failures``: how often a task is resubmitted after its
    worker died (local clusters only; a remote scheduler keeps its own setting)."""
    kind, value = parse_scheduler(scheduler)
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    if kind == "local":
        cfg = {} if allowed_failures is None else {
            "distributed.scheduler.allowed-failures": int(allowed_failures)}
        with dask.config.set(cfg):
            cluster = local_cluster(value)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(value, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise SchedulerError(f"--scheduler {value}: no Dask scheduler reachable there within "
                             f"{timeout:g} s ({' '.join(str(e).split())[:160]})") from None
    with client:
        yield client


def file_digest(path) -> str | None:
    """SHA-256 of a file's bytes, or None when it cannot be read (run on the workers)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


class SimulationSetup(WorkerPlugin):
    """What every worker needs to simulate chunks of one dataset: the model (a path on a
    shared filesystem or the file's bytes), the simulator options and the dataset's
    description.  Registered once per worker (and for workers that join later); the worker
    loads the model and the dataset on its first task.

    name: plugin name (the task's handle).  model_path: the driver's path.  model_bytes: the
    file's bytes when the workers cannot read ``model_path`` (else None).  dtype: None or a
    numpy dtype name.  options: Simulator keywords.  input_args: the ``eventsim simulate``
    arguments that choose the input (dataset, split, data_dir, no_download, events, dt).
    """

    idempotent = True

    def __init__(self, name: str, model_path: str, model_bytes: bytes | None, dtype,
                 options: dict, input_args: dict):
        self.name, self.model_path, self.model_bytes = name, str(model_path), model_bytes
        self.dtype, self.options, self.input_args = dtype, dict(options), dict(input_args)
        self._state = self._tmp = None
        self._lock = threading.Lock()

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_state"], d["_lock"], d["_tmp"] = None, None, None
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._lock = threading.Lock()

    def setup(self, worker=None):
        self._state, self._tmp = None, None

    def teardown(self, worker=None):
        """Remove the model file this worker wrote from the sent bytes, if any."""
        if getattr(self, "_tmp", None):
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None

    def _load(self):
        """``(simulator, input source)``, loaded once per worker."""
        import argparse

        from . import cli

        with self._lock:
            if self._state is None:
                path = self.model_path
                if self.model_bytes is not None:
                    fd, path = tempfile.mkstemp(suffix=".h5", prefix="eventsim-model-")
                    with os.fdopen(fd, "wb") as f:
                        f.write(self.model_bytes)
                    self._tmp = path
                record = cli._read_record(path)
                load, Simulator = cli._simulator_api()
                model = load(path) if self.dtype is None else load(path, dtype=np.dtype(self.dtype).type)
                _, data = cli._input_for(argparse.Namespace(**self.input_args), record)
                self._state = (Simulator(model, **self.options), data)
        return self._state

    def run(self, start: int, stop: int, seed: int, summary: bool = False):
        """The Recording of samples ``start:stop`` (each from ``default_rng([seed, i])``), or
        with ``summary`` only what the JSON summary needs (:func:`chunk_summary`)."""
        from .seeding import SampleSeeds

        sim, data = self._load()
        xs, _ = data.batch(start, stop, SampleSeeds(seed))
        rec = sim.run(xs)
        return chunk_summary(rec) if summary else rec


def chunk_summary(rec) -> dict:
    """What ``simulate``'s JSON needs of a Recording: predictions ``[B]``, synaptic-event
    counts and the number of spikes per recorded layer (a few bytes instead of every spike)."""
    return {"predictions": np.asarray(rec.predictions).reshape(-1),
            "synaptic_events": getattr(rec, "synaptic_events", None),
            "spikes": {k: len(np.asarray(v.t)) for k, v in (getattr(rec, "spikes", {}) or {}).items()}}


def _prepare_worker(name: str, seed: int, dask_worker=None) -> float:
    """Load the model and the dataset on this worker and simulate sample 0 once (Numba's
    compilation or cache load); returns the seconds it took (run by ``client.run``)."""
    t0 = time.perf_counter()
    (dask_worker or get_worker()).plugins[name].run(0, 1, seed)
    return time.perf_counter() - t0


def _chunk_task(name: str, start: int, stop: int, seed: int, summary: bool = False):
    """Dask task: the Recording (or :func:`chunk_summary`) of samples ``start:stop`` with
    the worker's plugin ``name``."""
    return get_worker().plugins[name].run(start, stop, seed, summary)


def _model_transfer(client, model_path) -> bytes | None:
    """None when every worker reads the same bytes at ``model_path`` (shared filesystem),
    else the file's bytes (sent once per worker in the plugin)."""
    mine = file_digest(model_path)
    theirs = client.run(file_digest, str(Path(model_path).resolve()))
    if theirs and all(d == mine for d in theirs.values()):
        return None
    return Path(model_path).read_bytes()


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``0:n`` in pieces of ``size`` (the last shorter)."""
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def simulate_chunks(client, args, n: int, *, name: str | None = None,
                    timings: dict | None = None, summary: bool = False) -> list:
    """The Recordings of samples ``0:n`` in chunks of ``args.batch_size``, in order (with
    ``summary``: their :func:`chunk_summary` instead, gathered without the spikes).

    ``args``: the parsed ``eventsim simulate`` arguments (model, input, seed, simulator
    options).  The model goes to each worker once (plugin), never with a task.  Every worker
    first loads the model and the dataset and simulates one sample (kernel compilation);
    ``timings``, when given, receives ``worker_setup_s`` (that step) and ``simulate_s`` (the
    chunks, submitted to gathered).
    """
    model_path = str(Path(args.model).resolve())
    digest = file_digest(model_path) or "missing"
    options = dict(schedule=args.schedule, constant_drive=args.constant_drive, leak=args.leak,
                   n_threads=args.threads or 1, dense_input=args.dense_input)
    input_args = {k: getattr(args, k) for k in
                  ("dataset", "split", "data_dir", "no_download", "events", "dt")}
    input_args["events"] = None if args.events is None else str(Path(args.events).resolve())
    name = name or f"eventsim-sim-{digest[:12]}-{os.getpid()}-{time.monotonic_ns()}"
    plugin = SimulationSetup(name, model_path, _model_transfer(client, model_path), args.dtype,
                             options, input_args)
    client.register_plugin(plugin, name=name)
    try:
        t0 = time.perf_counter()
        client.run(_prepare_worker, name, int(args.seed))
        t1 = time.perf_counter()
        parts = chunks(n, args.batch_size)
        futures = [client.submit(_chunk_task, name, a, b, int(args.seed), summary,
                                 key=f"{name}-{a}", pure=False) for a, b in parts]
        recordings = client.gather(futures)
        if timings is not None:
            timings.update(worker_setup_s=t1 - t0, simulate_s=time.perf_counter() - t1)
        return recordings
    finally:
        with contextlib.suppress(Exception):
            client.unregister_worker_plugin(name)


def simulate_command(args) -> int:
    """``eventsim simulate ... --scheduler SPEC``: the JSON summary of the in-process command
    (accuracy, synaptic events, spikes per layer, optional recording), computed from the
    gathered recordings."""
    from . import cli
    from snncore.fileio import check_output

    wall0 = time.perf_counter()
    parse_scheduler(args.scheduler)
    for flag in ("compare_dense", "profile"):
        if getattr(args, flag):
            raise cli.CLIError(f"--{flag.replace('_', '-')} runs in process only; drop "
                               "--scheduler to use it")
    record = cli._read_record(args.model)
    if args.out_recording:
        check_output(args.out_recording, "recording", args.overwrite,
                     inputs=[args.model] + ([args.events] if args.events else []))
    name, data = cli._input_for(args, record)          # the driver checks the input first
    n = data.n if args.limit is None else min(args.limit, data.n)
    if n < 1:
        raise cli.CLIError(f"no samples to simulate (--limit {args.limit}, {name} has {data.n})")
    with connect(args.scheduler) as client:
        workers = len(client.scheduler_info().get("workers", {}))
        timings: dict = {}
        recordings = simulate_chunks(client, args, n, timings=timings,
                                     summary=not args.out_recording)
    out = summarise([r if isinstance(r, dict) else chunk_summary(r) for r in recordings],
                    record, data, n)
    if args.out_recording:
        cli._save_recording(cli._concatenate(recordings), args.out_recording, args.overwrite)
        out["recording"] = {"path": args.out_recording, "samples": n}
    out = dict({"model": str(args.model), "dataset": name,
                "split": None if args.events else args.split, "n": n, "T": int(record.T),
                "encoding": record.encoding, "seed": args.seed, "batch_size": args.batch_size,
                "scheduler": args.scheduler, "workers": workers}, **out)
    out["worker_setup_s"] = timings["worker_setup_s"]   # model, dataset, kernels per worker
    out["simulate_time_s"] = timings["simulate_s"]       # the chunks: submitted to gathered
    out["loop_time_s"] = timings["simulate_s"]           # (encoding included, as in process)
    out["wall_time_s"] = time.perf_counter() - wall0
    cli._print_json(out)
    return 0


def summarise(summaries: list, record, data, n: int) -> dict:
    """Accuracy, synaptic events and spikes per layer of the :func:`chunk_summary` of each
    chunk of samples ``0:n``, in order."""
    from . import cli

    correct, syn, spikes, start = 0, 0, {}, 0
    for part in summaries:
        pred = part["predictions"]
        if data.labels is not None:
            correct += int(np.sum(pred == np.asarray(data.labels[start:start + len(pred)])))
        syn += cli._total(part["synaptic_events"])
        for idx, key in cli._spike_keys(part["spikes"], record).items():
            spikes[idx] = spikes.get(idx, 0) + part["spikes"][key]
        start += len(pred)
    return {"accuracy": None if data.labels is None else correct / n,
            "synaptic_events": syn, "synaptic_events_per_sample": syn / n,
            "spikes_per_layer": {str(k): v for k, v in sorted(spikes.items())}}
