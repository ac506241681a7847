"""Sweeps over seeds x settings: ``eventsim sweep SPEC.toml --results runs.jsonl``.

A spec file (TOML) names a task and what to vary::

    task = "eventsim.sweep:simulate_run"   # "package.module:function", or
                                           # "file.py:function" (relative to the spec file)
    seeds = [0, 1, 2]
    retries = 2                            # resubmissions after a lost worker (default 2)

    [base]                                 # settings of every run (optional)
    model = "model.h5"

    [[settings]]                           # one table per setting (optional)
    limit = 100

    [grid]                                 # and/or lists whose cartesian product is taken
    batch_size = [16, 64]

The runs are every seed x setting x grid point; each run calls
``function(seed=seed, **settings)`` (settings: base, then the [[settings]] table, then the grid
point) and must return a JSON-serialisable value.  A run's id is the SHA-256 (first 16 hex
digits) of its canonical spec ``{"task", "seed", "settings"}`` (sorted keys, no spaces).

Only the driver writes the results file: one JSON line per finished run
``{"id", "spec", "result", "seconds", "finished"}``, appended, flushed and fsynced.  On a
restart it truncates a torn last line (an interrupted write) and skips the ids already there.
A run that raises, or whose worker died more than ``retries`` times (Dask's ``KilledWorker``),
is reported as failed on stderr and in the summary (exit status 1) and writes no line, so the
next start runs it again.  A lock (``fcntl.flock`` on ``RESULTS.lock``) refuses a second
driver on the same results file.

Without ``--scheduler`` the runs go one after another in this process (no Dask needed);
``--scheduler local:N|tcp://HOST:PORT`` sends them to a Dask cluster (the ``distributed``
extra).  Everything (spec, results file, lock, scheduler) is checked before any run starts.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import importlib
import importlib.util
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SPEC_KEYS = {"task", "seeds", "retries", "base", "settings", "grid"}


class SweepError(ValueError):
    """A malformed spec, an unusable results file or a second driver: nothing ran."""


@dataclass(frozen=True)
class Run:
    """One run of a sweep: ``id`` (hash of ``spec``), ``spec`` ({task, seed, settings})."""
    id: str
    spec: dict


@dataclass(frozen=True)
class Sweep:
    """A parsed spec: the task reference, the retries and every run (in spec order)."""
    path: Path
    task: str
    retries: int
    runs: tuple


# ---------------------------------------------------------------------------------------
# spec
# ---------------------------------------------------------------------------------------
def run_id(spec: dict) -> str:
    """The id of a run: SHA-256 of the canonical JSON of ``spec``, first 16 hex digits."""
    canon = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _fail(path, what: str) -> SweepError:
    return SweepError(f"sweep spec {path}: {what}")


def _table(path, d, key: str) -> dict:
    v = d.get(key, {})
    if not isinstance(v, dict):
        raise _fail(path, f"[{key}] must be a table, got {type(v).__name__}")
    return v


def _settings_list(path, d) -> list[dict]:
    v = d.get("settings", [{}])
    if not isinstance(v, list) or not v or not all(isinstance(s, dict) for s in v):
        raise _fail(path, "'settings' must be a non-empty array of tables ([[settings]])")
    return v


def _grid_points(path, d) -> list[dict]:
    grid = _table(path, d, "grid")
    for k, vals in grid.items():
        if not isinstance(vals, list) or not vals:
            raise _fail(path, f"grid.{k} must be a non-empty list, got {vals!r}")
    keys = sorted(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _seeds(path, d) -> list[int]:
    seeds = d.get("seeds")
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise _fail(path, f"'seeds' must be a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise _fail(path, f"'seeds' repeats a seed: {seeds}")
    return seeds


def load_spec(path) -> Sweep:
    """Parse and check a spec file (see the module docstring); SweepError names the problem.
    The task's function is imported here, so a wrong name fails before any run."""
    path = Path(path)
    try:
        import tomllib                      # Python >= 3.11
    except ImportError:                     # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        d = tomllib.loads(path.read_text())
    except OSError as e:
        raise SweepError(f"sweep spec {path}: cannot read it ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise _fail(path, f"not valid TOML ({e})") from None
    unknown = sorted(set(d) - SPEC_KEYS)
    if unknown:
        raise _fail(path, f"unknown key(s) {unknown}; expected {sorted(SPEC_KEYS)}")
    task = d.get("task")
    if not isinstance(task, str) or task.count(":") != 1 or not all(task.split(":")):
        raise _fail(path, f"'task' must be \"module:function\" or \"file.py:function\", got {task!r}")
    retries = d.get("retries", 2)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise _fail(path, f"'retries' must be an integer >= 0, got {retries!r}")
    seeds, base = _seeds(path, d), _table(path, d, "base")
    runs, seen = [], set()
    for s, grid_point in itertools.product(_settings_list(path, d), _grid_points(path, d)):
        if "seed" in s or "seed" in base or "seed" in grid_point:
            raise _fail(path, "'seed' is set by 'seeds', not in a setting")
        for seed in seeds:
            spec = {"task": task, "seed": seed, "settings": {**base, **s, **grid_point}}
            rid = run_id(spec)
            if rid in seen:
                raise _fail(path, f"two runs have the same spec {json.dumps(spec, sort_keys=True)}")
            seen.add(rid)
            runs.append(Run(rid, spec))
    resolve_task(task, path.parent)  # import now: a typo fails before any work
    return Sweep(path, task, retries, tuple(runs))


def resolve_task(task: str, base_dir) -> "callable":
    """The function of ``"module:function"`` or ``"file.py:function"`` (a file relative to
    ``base_dir``); SweepError when it cannot be imported or is not callable."""
    where, name = task.split(":")
    try:
        if where.endswith(".py"):
            file = (Path(base_dir) / where).resolve()
            if not file.is_file():
                raise SweepError(f"task file {file} does not exist")
            module = _import_file(str(file))
        else:
            module = importlib.import_module(where)
    except SweepError:
        raise
    except Exception as e:
        raise SweepError(f"task {task!r}: cannot import {where} ({type(e).__name__}: {e})") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise SweepError(f"task {task!r}: {where} has no function {name!r}")
    return fn


def _import_file(file: str):
    """Import a Python file as a module (once per process)."""
    mod_name = "_eventsim_sweep_task_" + hashlib.sha256(file.encode()).hexdigest()[:12]
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(file).parent))     # the file's own imports of its neighbours
    try:
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(Path(file).parent))
    return module


def execute(task: str, base_dir: str, seed: int, settings: dict) -> dict:
    """Run one run (in the driver or on a worker): ``{"result", "seconds"}``."""
    fn = resolve_task(task, base_dir)
    t0 = time.perf_counter()
    result = fn(seed=seed, **settings)
    return {"result": result, "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------
# results file
# ---------------------------------------------------------------------------------------
class Results:
    """The append-only results file of one driver, with its lock.

    Opening it (``with Results(path) as r``) checks the file is writable, takes the lock
    (SweepError if another driver holds it), truncates a torn last line and reads the ids
    of the finished runs (``r.done``).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.done: set[str] = set()
        self.repaired = 0          # bytes of a torn last line removed on opening
        self._lock = self._file = None

    def __enter__(self) -> "Results":
        if not self.path.parent.is_dir():
            raise SweepError(f"--results {self.path}: directory {self.path.parent} does not exist")
        if self.path.is_dir():
            raise SweepError(f"--results {self.path} is a directory")
        try:
            self._lock = open(self.lock_path, "a+")
        except OSError as e:
            raise SweepError(f"--results {self.path}: cannot create the lock file "
                             f"{self.lock_path} ({e.strerror})") from None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "unknown"
            self._lock.close()
            raise SweepError(f"--results {self.path}: another sweep driver (pid {holder}) holds "
                             f"{self.lock_path}; wait for it or stop it") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()
        try:
            self._file = open(self.path, "ab+")
        except OSError as e:
            self._release()
            raise SweepError(f"--results {self.path} is not writable ({e.strerror})") from None
        try:
            self._repair_and_read()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _repair_and_read(self) -> None:
        self._file.seek(0)
        data = self._file.read()
        if data and not data.endswith(b"\n"):           # a torn last line
            keep = data.rfind(b"\n") + 1
            self._file.truncate(keep)
            os.fsync(self._file.fileno())
            self.repaired, data = len(data) - keep, data[:keep]
        for k, line in enumerate(data.splitlines(), 1):
            try:
                row = json.loads(line)
                self.done.add(row["id"])
            except (ValueError, KeyError, TypeError):
                raise SweepError(f"--results {self.path}: line {k} is not a run's JSON line "
                                 "(edit or remove it)") from None

    def append(self, run: Run, outcome: dict) -> None:
        """One JSON line for a finished run, flushed and fsynced."""
        row = {"id": run.id, "spec": run.spec, "result": outcome["result"],
               "seconds": outcome["seconds"],
               "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(
                   timespec="seconds")}
        self._file.seek(0, os.SEEK_END)
        self._file.write((json.dumps(row, sort_keys=True) + "\n").encode())
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.add(run.id)

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._release()


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------
def _check_json(value, run: Run) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"run {run.id}: the task returned a value that is not JSON ({e})") from None


def _run_here(sweep: Sweep, pending: list, results: Results, failed: list, log) -> None:
    """Every pending run, one after another, in this process."""
    for run in pending:
        try:
            outcome = execute(sweep.task, str(sweep.path.parent), run.spec["seed"],
                              run.spec["settings"])
            _check_json(outcome["result"], run)
        except Exception as e:
            failed.append({"id": run.id, "error": f"{type(e).__name__}: {e}"})
            log(f"run {run.id} failed: {type(e).__name__}: {e}")
            continue
        results.append(run, outcome)


def _run_on_cluster(client, sweep: Sweep, pending: list, results: Results, failed: list,
                    log) -> None:
    """Every pending run as a Dask task; lines appended as the runs finish."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    futures = {}
    for run in pending:
        f = client.submit(execute, sweep.task, str(sweep.path.parent), run.spec["seed"],
                          run.spec["settings"], key=f"sweep-{run.id}-{time.monotonic_ns()}",
                          pure=False)
        futures[f.key] = (f, run)
    for f in as_completed([f for f, _ in futures.values()]):
        run = futures[f.key][1]
        try:
            outcome = f.result()
            _check_json(outcome["result"], run)
        except KilledWorker:
            msg = f"its worker died {sweep.retries + 1} times (KilledWorker); no retries left"
            failed.append({"id": run.id, "error": msg})
            log(f"run {run.id} failed: {msg}")
            continue
        except Exception as e:
            failed.append({"id": run.id, "error": f"{type(e).__name__}: {e}"})
            log(f"run {run.id} failed: {type(e).__name__}: {e}")
            continue
        finally:
            f.release()
        results.append(run, outcome)


@contextlib.contextmanager
def _client(scheduler: str | None, retries: int):
    """None (in process) or a Dask client; local clusters resubmit a task ``retries`` times
    after its worker died and give each worker one task at a time."""
    if scheduler is None:
        yield None
        return
    try:
        import dask
        from .distributed import connect, parse_scheduler
    except ImportError as e:
        raise SweepError(str(e)) from None
    parse_scheduler(scheduler)
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        with connect(scheduler, allowed_failures=retries) as client:
            yield client


def run_sweep(spec_path, results_path, scheduler: str | None = None, *, client=None,
              log=None) -> dict:
    """Run the missing runs of a spec; returns the summary
    ``{"runs", "skipped", "finished", "failed": [{"id", "error"}], "repaired_bytes"}``.

    ``client``: a connected Dask client to use instead of ``scheduler``.
    Raises SweepError (nothing ran) for a bad spec, an unwritable or locked results file, or
    a bad or unreachable scheduler.
    """
    log = log or (lambda msg: print(f"eventsim sweep: {msg}", file=sys.stderr))
    sweep = load_spec(spec_path)
    if scheduler is not None:
        from .distributed import parse_scheduler

        parse_scheduler(scheduler)
    with Results(results_path) as results:
        if results.repaired:
            log(f"removed a torn last line ({results.repaired} bytes) from {results.path}")
        pending = [r for r in sweep.runs if r.id not in results.done]
        skipped = len(sweep.runs) - len(pending)
        failed: list = []
        t0 = time.perf_counter()
        if pending:
            with (contextlib.nullcontext(client) if client is not None
                  else _client(scheduler, sweep.retries)) as client:
                if client is None:
                    _run_here(sweep, pending, results, failed, log)
                else:
                    _run_on_cluster(client, sweep, pending, results, failed, log)
        finished = sum(r.id in results.done for r in pending)
    return {"spec": str(spec_path), "results": str(results_path), "runs": len(sweep.runs),
            "skipped": skipped, "finished": finished, "failed": failed,
            "repaired_bytes": results.repaired, "seconds": time.perf_counter() - t0}


def sweep_command(args) -> int:
    """``eventsim sweep``: print the summary as JSON; status 1 when a run failed."""
    summary = run_sweep(args.spec, args.results, args.scheduler)
    print(json.dumps(summary, indent=2))
    return 1 if summary["failed"] else 0


# ---------------------------------------------------------------------------------------
# built-in task
# ---------------------------------------------------------------------------------------
def simulate_run(seed: int, model: str, dataset: str = "fashion-mnist-small", split: str = "test",
                 limit: int = 100, batch_size: int = 50, **options) -> dict:
    """A sweep task: ``eventsim simulate MODEL`` in this process (one thread); returns its
    JSON summary.  ``options``: other ``simulate`` options by name (``dtype="float64"``,
    ``schedule="time"``, ...); the model path is relative to the working directory."""
    import io

    from . import cli

    argv = ["simulate", str(model), "--dataset", dataset, "--split", split, "--limit",
            str(limit), "--batch-size", str(batch_size), "--seed", str(seed), "--threads", "1",
            "--no-progress"]
    for k, v in options.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    args = cli.build_parser().parse_args(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.cmd_simulate(args)
    summary = json.loads(out.getvalue())
    for k in ("wall_time_s", "simulate_time_s", "compile_time_s", "events_per_second"):
        summary.pop(k, None)        # timings: not part of the result
    return summary
