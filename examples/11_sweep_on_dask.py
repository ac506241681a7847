"""11 A sweep on Dask: train small MLPs over seeds x hidden sizes on a local Dask cluster
of two worker processes with ``eventsim.sweep``, one JSON line per finished run, and plot
accuracy per setting with every seed. Starting the sweep again runs nothing: finished runs
are skipped. Without Dask (the ``distributed`` extra) the runs go one after another in this
process instead, and the script says so.

Writes into ``--out``: ``sweep.toml`` (the spec), ``results.jsonl`` (and its lock file),
Dask's scratch space, ``sweep_accuracy.png`` and ``summary.json``.

    python examples/11_sweep_on_dask.py [--smoke] [--scheduler local:2|tcp://HOST:PORT|none]
"""
# %%
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from eventsim import sweep

GALLERY = [
    ("sweep_accuracy.png",
     "A sweep of seeds x hidden sizes run on a local Dask cluster: test accuracy of every "
     "run (dots, one per seed) with the mean per setting, and each run's training time."),
]

# %% [markdown]
# Settings. `--smoke` runs four tiny runs (for the tests). `--scheduler none` runs in this
# process; `tcp://HOST:PORT` uses a running Dask scheduler (docs/distributed.md).
# %%
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--out", default="runs/11_sweep_on_dask", help="output directory")
ap.add_argument("--smoke", action="store_true", help="tiny settings (a quick check)")
ap.add_argument("--seed", type=int, default=0, help="first seed of the sweep")
ap.add_argument("--seeds", type=int, default=3, help="seeds per setting")
ap.add_argument("--scheduler", default="local:2", help="local:N, tcp://HOST:PORT or none")
ap.add_argument("--resume", action="store_true",
                help="keep the runs already in --out/results.jsonl (default: start afresh)")
args, _ = ap.parse_known_args()
hidden = [16, 32] if args.smoke else [16, 64, 256]
n_seeds = 2 if args.smoke else args.seeds
train_limit = 500 if args.smoke else 2500
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
try:
    HERE = Path(__file__).resolve().parent
except NameError:                          # in a notebook: run from the repository root
    HERE = Path.cwd() / "examples"
t_start = time.perf_counter()

# %% [markdown]
# ## 1. Dask or not
# The `distributed` extra (`pip install -e ".[distributed]"`) brings Dask. Without it the
# same sweep runs in this process, one run after another: same results file, same lines.
# %%
def have_dask() -> bool:
    """Whether Dask's distributed scheduler can be imported here."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


scheduler = None if args.scheduler.lower() == "none" else args.scheduler
if scheduler is not None and not have_dask():
    print("Dask (the 'distributed' extra) is not installed: running the sweep in this "
          "process instead (pip install -e '.[distributed]' for the cluster)")
    scheduler = None
where = f"on {scheduler}" if scheduler else "in process"

# %% [markdown]
# ## 2. The spec
# A sweep is a TOML file: the task (a function `f(seed=..., **settings)` returning JSON),
# the seeds, settings shared by every run (`[base]`) and lists whose product gives the
# settings (`[grid]`). Here the task is `train_mlp` of `examples/sweep_tasks.py` (an MLP
# 784-hidden-10 trained for one epoch on the bundled subset), named by its absolute path so
# the spec can live in `--out`. Each run's id is a hash of its task, seed and settings.
# %%
seeds = list(range(args.seed, args.seed + n_seeds))
spec = f"""# written by examples/11_sweep_on_dask.py
task = "{(HERE / 'sweep_tasks.py').as_posix()}:train_mlp"
seeds = {seeds}
retries = 2

[base]
epochs = 1
T = 4
lr = 3e-3
train_limit = {train_limit}

[grid]
hidden = {hidden}
"""
spec_path = out / "sweep.toml"
spec_path.write_text(spec)
print(spec)

# %% [markdown]
# ## 3. Run it
# `eventsim sweep SPEC --results FILE --scheduler local:2` starts a cluster of two worker
# processes (one thread each), submits every run not yet in the results file, and appends
# one fsynced JSON line per run as it finishes (only the driver writes; a lock refuses a
# second driver). The driver runs here as that command in a child process: Dask starts its
# workers by re-running the main script, which must therefore guard its work with
# `if __name__ == "__main__":` (the command does; this notebook-style script does not).
# `DASK_TEMPORARY_DIRECTORY` keeps Dask's scratch files under `--out` too.
# The second call, `eventsim.sweep.run_sweep` from Python, finds every run done and runs
# nothing: that is how an interrupted sweep resumes.
# %%
results_path = out / "results.jsonl"
if not args.resume:
    results_path.unlink(missing_ok=True)               # a fresh sweep
command = [sys.executable, "-m", "eventsim.cli", "sweep", str(spec_path), "--results",
           str(results_path)] + (["--scheduler", scheduler] if scheduler else [])
env = dict(os.environ, DASK_TEMPORARY_DIRECTORY=str((out / "dask-scratch").resolve()))
print("$", " ".join(command[2:]).replace("eventsim.cli", "eventsim", 1).replace("-m ", "", 1))
t0 = time.perf_counter()
proc = subprocess.run(command, env=env, capture_output=True, text=True)
sweep_s = time.perf_counter() - t0
if proc.returncode != 0:
    raise SystemExit(f"the sweep failed (status {proc.returncode}):\n{proc.stderr[-3000:]}")
first = json.loads(proc.stdout)
again = sweep.run_sweep(spec_path, results_path)        # nothing left: no cluster needed
print(f"first call (runs {where}): {first['finished']} runs finished, {first['skipped']} skipped, "
      f"failed {first['failed']}; second call: {again['finished']} run, {again['skipped']} skipped")

# %% [markdown]
# ## 4. Read the results
# One line per run: `{"id", "spec": {"task", "seed", "settings"}, "result", "seconds",
# "finished"}`. The figure shows every seed's accuracy (dots) and the mean per hidden size
# (bar): the spread between seeds is the yardstick for any difference between settings.
# %%
rows = [json.loads(line) for line in results_path.read_text().splitlines()]
by_hidden = {h: sorted((r for r in rows if r["spec"]["settings"]["hidden"] == h),
                       key=lambda r: r["spec"]["seed"]) for h in hidden}
acc = {h: np.array([r["result"]["test_acc"] for r in rs]) for h, rs in by_hidden.items()}
secs = {h: np.array([r["seconds"] for r in rs]) for h, rs in by_hidden.items()}

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
pos = np.arange(len(hidden))
jitter = np.linspace(-0.12, 0.12, n_seeds)
for k, h in enumerate(hidden):
    ax0.bar(k, acc[h].mean(), 0.6, color="0.85", edgecolor="0.5",
            label="mean (+- sd) over seeds" if k == 0 else None)
    ax0.errorbar(k, acc[h].mean(), yerr=acc[h].std(), color="0.3", capsize=4)
    seeds_h = [r["spec"]["seed"] for r in by_hidden[h]]
    for s, a in zip(seeds_h, acc[h]):
        ax0.plot(k + jitter[s - args.seed], a, "o", color=f"C{s - args.seed}",
                 label=f"seed {s}" if k == 0 else None, zorder=3)
    ax1.plot(np.full(len(secs[h]), k) + jitter[:len(secs[h])], secs[h], "o", color="tab:gray")
lo = min(a.min() for a in acc.values())
hi = max(a.max() for a in acc.values())
ax0.set_ylim(max(0.0, lo - 0.05), min(1.0, hi + 0.03))
ax0.set_xticks(pos, [str(h) for h in hidden])
ax0.set_xlabel("hidden neurons")
ax0.set_ylabel("test accuracy (1000 images)")
ax0.set_title(f"{len(rows)} runs, 1 epoch on {train_limit} images each", fontsize=10)
ax0.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
ax1.set_xticks(pos, [str(h) for h in hidden])
ax1.set_xlim(-0.5, len(hidden) - 0.5)
ax1.set_ylim(bottom=0)
ax1.set_xlabel("hidden neurons")
ax1.set_ylabel("seconds per run (on its worker)")
ax1.set_title(f"runs {where}, the sweep took {sweep_s:.0f} s\n(a worker's first run "
              "loads the kernels)", fontsize=10)
fig.savefig(out / "sweep_accuracy.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## Summary
# %%
summary = {
    "scheduler": scheduler or "none (in process)", "runs": first["runs"], "finished_first_call": first["finished"],
    "failed": len(first["failed"]), "skipped_second_call": again["skipped"],
    "sweep_seconds": round(sweep_s, 1),
    **{f"mean_test_acc_hidden{h}": round(float(acc[h].mean()), 4) for h in hidden},
    **{f"std_test_acc_hidden{h}": round(float(acc[h].std()), 4) for h in hidden},
    "total_seconds": round(time.perf_counter() - t_start, 1),
    "figures": "sweep_accuracy.png",
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
