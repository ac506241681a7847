"""eventsim sweep: ids, resumption, torn lines, lost workers and drivers, bad input."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from eventsim import cli
from eventsim.sweep import SweepError, load_spec, run_id, run_sweep

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _spec(tmp_path, body: str, name="spec.toml") -> Path:
    """A spec file beside a copy-free reference to this directory's sweep_tasks.py."""
    p = tmp_path / name
    p.write_text(body.replace("TASKS", str(HERE / "sweep_tasks.py")))
    return p


def _lines(path: Path) -> list[dict]:
    return [json.loads(s) for s in path.read_text().splitlines()]


def _once_each(path: Path, spec: Path) -> None:
    """Every run of the spec has exactly one line in the results file."""
    ids = Counter(row["id"] for row in _lines(path))
    assert ids == Counter(r.id for r in load_spec(spec).runs)


GRID = '''task = "TASKS:nap"
seeds = [0, 1, 2]
[base]
seconds = {seconds}
[[settings]]
tag = "a"
[[settings]]
tag = "b"
'''


def test_runs_ids_and_restart_skips_finished(tmp_path):
    spec = _spec(tmp_path, GRID.format(seconds=0.0) + '[grid]\nseconds = [0.0, 0.001]\n')
    sweep = load_spec(spec)
    assert len(sweep.runs) == 3 * 2 * 2
    r0 = sweep.runs[0]
    assert r0.id == run_id({"task": r0.spec["task"], "seed": r0.spec["seed"],
                            "settings": dict(r0.spec["settings"])})
    assert len({r.id for r in sweep.runs}) == 12
    out = tmp_path / "runs.jsonl"
    s1 = run_sweep(spec, out, log=lambda m: None)
    assert (s1["finished"], s1["skipped"], s1["failed"]) == (12, 0, [])
    rows = _lines(out)
    assert rows[0]["result"]["twice"] == 2 * rows[0]["spec"]["seed"]
    s2 = run_sweep(spec, out, log=lambda m: None)
    assert (s2["finished"], s2["skipped"]) == (0, 12)
    _once_each(out, spec)


def test_torn_last_line_is_truncated_and_rerun(tmp_path):
    spec = _spec(tmp_path, GRID.format(seconds=0.0))
    out = tmp_path / "runs.jsonl"
    run_sweep(spec, out, log=lambda m: None)
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[:-1]) + text[-1][:25])       # the last write torn
    logged = []
    s = run_sweep(spec, out, log=logged.append)
    assert s["repaired_bytes"] == 25 and s["finished"] == 1 and "torn" in logged[0]
    _once_each(out, spec)


def test_failing_run_reported_others_written(tmp_path, capsys):
    spec = _spec(tmp_path, 'task = "TASKS:broken"\nseeds = [0, 1]\n')
    out = tmp_path / "runs.jsonl"
    rc = cli.main(["sweep", str(spec), "--results", str(out)])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 1 and len(summary["failed"]) == 2 and "broken task" in summary["failed"][0]["error"]
    assert out.read_text() == ""


@pytest.mark.parametrize("body, message", [
    ('task = "TASKS:nap"\nseeds = [0\n', "not valid TOML"),
    ('task = "TASKS:nap"\nseeds = [0]\nepochs = 3\n', "unknown key"),
    ('seeds = [0]\n', "'task'"),
    ('task = "TASKS:nap"\nseeds = []\n', "'seeds'"),
    ('task = "TASKS:nap"\nseeds = [0, 0]\n', "repeats"),
    ('task = "TASKS:nap"\nseeds = [0]\nretries = -1\n', "'retries'"),
    ('task = "TASKS:nap"\nseeds = [0]\n[grid]\ntag = []\n', "grid.tag"),
    ('task = "TASKS:nap"\nseeds = [0]\nsettings = 3\n', "'settings'"),
    ('task = "TASKS:missing"\nseeds = [0]\n', "no function 'missing'"),
    ('task = "no_such_file.py:nap"\nseeds = [0]\n', "does not exist"),
    ('task = "no_such_module_xyz:f"\nseeds = [0]\n', "cannot import"),
])
def test_malformed_spec_one_error_before_any_work(tmp_path, capsys, body, message):
    spec = _spec(tmp_path, body)
    out = tmp_path / "runs.jsonl"
    rc = cli.main(["sweep", str(spec), "--results", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists()


@pytest.mark.parametrize("where", ["missing_dir/runs.jsonl", "a_dir"])
def test_results_not_writable_one_error(tmp_path, capsys, where):
    (tmp_path / "a_dir").mkdir()
    spec = _spec(tmp_path, GRID.format(seconds=0.0))
    rc = cli.main(["sweep", str(spec), "--results", str(tmp_path / where)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--results" in err, err


def test_second_driver_is_refused(tmp_path):
    spec = _spec(tmp_path, GRID.format(seconds=0.0))
    out = tmp_path / "runs.jsonl"
    with open(tmp_path / "runs.jsonl.lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SweepError, match="another sweep driver"):
            run_sweep(spec, out)
    assert not out.exists() or out.read_text() == ""


def test_unreachable_scheduler_one_error(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("eventsim.distributed.CONNECT_TIMEOUT", 2.0)
    spec = _spec(tmp_path, GRID.format(seconds=0.0))
    out = tmp_path / "runs.jsonl"
    rc = cli.main(["sweep", str(spec), "--results", str(out), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "no Dask scheduler reachable" in err, err
    assert out.read_text() == ""


# ---------------------------------------------------------------------------------------
# on a cluster
# ---------------------------------------------------------------------------------------
def _wait_for_lines(path: Path, k: int, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not (path.exists() and path.read_text().count("\n") >= k):
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{path} did not reach {k} lines in {timeout} s")
        time.sleep(0.05)


def test_worker_killed_mid_run_every_line_once(tmp_path, client):
    spec = _spec(tmp_path, GRID.format(seconds=0.4).replace("[0, 1, 2]", "[0, 1, 2, 3, 4]"))
    out = tmp_path / "runs.jsonl"
    summary = {}
    t = threading.Thread(target=lambda: summary.update(
        run_sweep(spec, out, client=client, log=lambda m: None)))
    t.start()
    _wait_for_lines(out, 2)
    victim = sorted(client.run(os.getpid).values())[0]
    os.kill(victim, signal.SIGKILL)
    t.join(120)
    assert not t.is_alive() and summary["failed"] == [] and summary["finished"] == 10
    _once_each(out, spec)
    assert victim in {row["result"]["pid"] for row in _lines(out)}   # it was working


@pytest.mark.slow      # ~12 s: worker processes start and die
def test_task_that_kills_its_worker_fails_after_retries(tmp_path, client):
    spec = _spec(tmp_path, '''task = "TASKS:nap"
seeds = [0, 1, 2]
retries = 2
[[settings]]
die = true
[[settings]]
die = false
seconds = 0.1
''')
    out = tmp_path / "runs.jsonl"
    s = run_sweep(spec, out, client=client, log=lambda m: None)
    killers = {r.id for r in load_spec(spec).runs if r.spec["settings"]["die"]}
    assert {f["id"] for f in s["failed"]} == killers
    assert all("KilledWorker" in f["error"] for f in s["failed"])
    assert s["finished"] == 3
    assert Counter(row["id"] for row in _lines(out)) == Counter(
        r.id for r in load_spec(spec).runs if r.id not in killers)


def test_driver_killed_and_restarted_every_line_once(tmp_path):
    pytest.importorskip("distributed")
    spec = _spec(tmp_path, GRID.format(seconds=0.3).replace("[0, 1, 2]", "[0, 1, 2, 3, 4]"))
    out = tmp_path / "runs.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "eventsim.cli", "sweep", str(spec),
                             "--results", str(out), "--scheduler", "local:2"],
                            cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_lines(out, 2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)     # the driver and its local cluster
        proc.wait()
    with open(out, "a") as f:
        f.write('{"id": "0123')                 # a write cut short
    s = run_sweep(spec, out, log=lambda m: None)
    assert s["failed"] == [] and s["skipped"] >= 2 and s["repaired_bytes"] == 12
    _once_each(out, spec)


def test_ablation_spec_covers_the_scripts_single_axis_plan():
    spec = ROOT / "benchmarks" / "ablation_seed_methods.toml"
    sweep = load_spec(spec)
    from eventsim.sweep import resolve_task

    module = sys.modules[resolve_task(sweep.task, spec.parent).__module__]
    configs = {json.dumps(dict(module.BASELINE, **r.spec["settings"].get("change", {})),
                          sort_keys=True) for r in sweep.runs}
    plan = {json.dumps(cfg, sort_keys=True) for _, _, cfg in module.single_axis_plan()}
    assert configs == plan
    assert {r.spec["seed"] for r in sweep.runs} == {0, 1, 2} and len(sweep.runs) == 3 * len(plan)


def test_simulation_runs_through_a_sweep(tmp_path):
    from snncore import modelfile as mf

    from .conftest import small_model

    model = mf.write_model(small_model(), tmp_path / "m.h5")
    spec = tmp_path / "sim.toml"
    spec.write_text(f'''task = "eventsim.sweep:simulate_run"
seeds = [0, 1]
[base]
model = "{model}"
limit = 12
[grid]
batch_size = [5, 12]
''')
    out = tmp_path / "runs.jsonl"
    s = run_sweep(spec, out, log=lambda m: None)
    assert s["finished"] == 4 and s["failed"] == []
    rows = {(r["spec"]["seed"], r["spec"]["settings"]["batch_size"]): r["result"]
            for r in _lines(out)}
    for seed in (0, 1):    # the batch size changes nothing: per-sample streams
        assert rows[seed, 5]["spikes_per_layer"] == rows[seed, 12]["spikes_per_layer"]
        assert rows[seed, 5]["synaptic_events"] == rows[seed, 12]["synaptic_events"]
    assert rows[0, 5]["spikes_per_layer"] != rows[1, 5]["spikes_per_layer"]


def test_example_training_spec_parses():
    sweep = load_spec(ROOT / "examples" / "sweep_train.toml")
    assert len(sweep.runs) == 2 * 2 * 2
    assert {r.spec["settings"]["hidden"] for r in sweep.runs} == {50, 100}
