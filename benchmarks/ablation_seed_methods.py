"""Ablation of the seed methods on the full Fashion-MNIST: one change at a time, 3 seeds each.

    python benchmarks/ablation_seed_methods.py                       # run what is missing, then report
    python benchmarks/ablation_seed_methods.py --report-only         # table + figure from the results
    python benchmarks/ablation_seed_methods.py --jobs 2 --seeds 0 1 2 --epochs 15

Every run trains the MLP 784-400-10 (LIF tau=2, atan surrogate, detached reset, direct input,
T=4, Adam 1e-3 with a cosine schedule, batch 128, label smoothing 0.1) for a fixed number of
epochs (the same for every configuration, chosen so that a run stays under 3 minutes on one
core), changes ONE thing against that baseline, then

- evaluates the dense engine on the 10000 test images,
- exports the model and runs the event simulator on the first ``--sim-images`` test images:
  accuracy, agreement with the dense engine, synaptic events per sample, firing rate of the
  hidden layer (spikes per neuron per step).

Configurations: LIF / KLIF / PLIF (a learnable decay per layer); binary / ternary spikes with
a fixed or a learned amplitude; plain surrogate gradients / MSG with p = 0.25, 0.5, 0.75;
mean / TWO decoding (warm-up 4 epochs, so TWO adapts over the remaining ones).  Then "best"
combines the best setting of each axis (by mean test accuracy over seeds, when it beats the
baseline), and the conv net (conv32-pool-conv64-pool-fc with BatchNorm) runs baseline vs best
once, for ``--conv-epochs`` epochs on the first ``--conv-train-images`` training images (the
same 3-minute budget per run; the full 10000 test images are still used).

The same runs go through ``eventsim sweep`` (on a Dask cluster with ``--scheduler``)::

    eventsim sweep benchmarks/ablation_seed_methods.toml --results runs.jsonl --scheduler local:2
    python benchmarks/ablation_seed_methods.py --report-only --results runs.jsonl --no-conv

Each finished run appends one JSON line to ``--results`` (written and fsynced by this process
only); a run whose id (a hash of its configuration and seed) is already there is skipped, so
an interrupted ablation resumes where it stopped.  Runs go to ``--jobs`` worker processes,
each with one BLAS/Numba thread.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "logs" / "ablation_seed_methods.jsonl"
DEFAULT_FIGURE = ROOT / "benchmarks" / "ablation_seed_methods.png"

BASELINE = {"model": "mlp", "neuron": "lif", "spikes": "binary", "learn_amplitude": False,
            "msg_p": 0.0, "decoder": "mean"}
# axis -> list of (name, change against the baseline)
AXES = {
    "neuron": [("LIF", {}), ("KLIF", {"neuron": "klif"}), ("PLIF", {"neuron": "plif"})],
    "spikes": [("binary", {}), ("ternary, a = 1", {"spikes": "ternary"}),
               ("ternary, learned a", {"spikes": "ternary", "learn_amplitude": True})],
    "gradient": [("SG", {}), ("MSG p=0.25", {"msg_p": 0.25}), ("MSG p=0.5", {"msg_p": 0.5}),
                 ("MSG p=0.75", {"msg_p": 0.75})],
    "decoder": [("mean", {}), ("TWO", {"decoder": "two"})],
}


def run_id(config: dict, seed: int, epochs: int) -> str:
    canon = json.dumps({"config": config, "seed": seed, "epochs": epochs}, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# one run (in a worker process)
# ---------------------------------------------------------------------------------------
def _neuron(config: dict, rng):
    import training

    msg = {"msg_p": config["msg_p"], "rng": rng} if config["msg_p"] > 0 else {}
    if config["neuron"] == "klif":
        return training.KLIF(tau=2.0, k=1.0, threshold=1.0, surrogate="sigmoid", learn_k=True, **msg)
    kw = dict(tau=2.0, surrogate="atan", detach_reset=True, **msg)
    if config["neuron"] == "plif":
        kw["learn_beta"] = True
    if config["spikes"] == "ternary":
        kw.update(spikes="ternary", amplitude=1.0, learn_amplitude=config["learn_amplitude"])
    return training.LIF(**kw)


def build(config: dict, seed: int):
    """``(net, input_shape)`` of a configuration, initialised from ``seed``."""
    import numpy as np

    import training

    rng = np.random.default_rng(seed)
    if config["model"] == "mlp":
        return training.Sequential(training.Linear(784, 400, rng=rng), _neuron(config, rng),
                                   training.Linear(400, 10, rng=rng)), (784,)
    return training.Sequential(
        training.Conv2d(1, 32, 3, padding=1, rng=rng), training.BatchNorm2d(32),
        _neuron(config, rng), training.AvgPool2d(2),
        training.Conv2d(32, 64, 3, padding=1, rng=rng), training.BatchNorm2d(64),
        _neuron(config, rng), training.AvgPool2d(2),
        training.Flatten(), training.Linear(64 * 7 * 7, 10, rng=rng)), (1, 28, 28)


def run_one(config: dict, seed: int, epochs: int, sim_images: int, data_dir) -> dict:
    """Train, evaluate and simulate one configuration; returns the result record."""
    import numpy as np

    import eventsim
    import training
    from training import datasets, optim

    t0 = time.perf_counter()
    train = datasets.load_fashion_mnist(path=data_dir, split="train")
    test = datasets.load_fashion_mnist(path=data_dir, split="test")
    net, input_shape = build(config, seed)
    flat = len(input_shape) == 1
    x, y = train.float_images(flatten=flat), train.labels
    n_train = int(config.get("train_images", len(y)))
    x, y = x[:n_train], y[:n_train]
    xt, yt = test.float_images(flatten=flat), test.labels
    T, batch = 4, 128
    opt = optim.Adam(list(net.named_parameters()), lr=1e-3)
    sched = optim.CosineSchedule(opt, total_steps=epochs * math.ceil(len(y) / batch))
    extra = {}
    if config["decoder"] == "two":
        extra = dict(decoder="two", two_warmup=min(4, epochs - 2))
    history = training.fit(net, (x, y), test=(xt, yt), T=T, epochs=epochs, batch_size=batch,
                           optimizer=opt, schedule=sched, label_smoothing=0.1, seed=seed,
                           progress=False, **extra)
    train_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = training.export(net, Path(tmp) / "model.h5", input_shape=input_shape, T=T,
                               dataset="fashion-mnist", seed=seed)
        model = eventsim.load(path)
        xs = eventsim.inputs.direct(xt[:sim_images].reshape((-1,) + input_shape), T)
        rec = eventsim.Simulator(model, n_threads=1).run(xs)
    dense_pred = _dense_predictions(net, xt[:sim_images], T)
    hidden = [k for k in sorted(rec.spikes)]
    rates = {str(k): len(rec.spikes[k]) / (T * sim_images * rec.spikes[k].n_neurons) for k in hidden}
    out = {
        "config": config, "seed": seed, "epochs": epochs,
        "test_acc": float(history.test_acc[-1]),
        "best_test_acc": float(max(history.test_acc)),
        "train_acc": float(history.train_acc[-1]),
        "sim_images": sim_images,
        "sim_acc": float(np.mean(rec.predictions == yt[:sim_images])),
        "firing_rate": rates,
        "synaptic_events_per_sample": rec.synaptic_events["total"] / sim_images,
        "train_seconds": train_s,
        "seconds": time.perf_counter() - t0,
    }
    out["sim_dense_agreement"] = float(np.mean(rec.predictions == dense_pred))
    if getattr(history, "time_weights", None) is not None and len(history.time_weights):
        out["time_weights"] = [float(v) for v in np.asarray(history.time_weights)[-1]]
    learned = {name: np.asarray(p.data).ravel()[:8].tolist() for name, p in net.named_parameters()
               if name.split(".")[-1] in ("k", "beta", "amplitude", "threshold")}
    if learned:
        out["learned"] = learned
    return out


def sweep_run(seed: int, change: dict | None = None, epochs: int = 15, sim_images: int = 2000,
              data_dir: str = "", label: str = "") -> dict:
    """An ``eventsim sweep`` task (benchmarks/ablation_seed_methods.toml): :func:`run_one` of
    the baseline with ``change`` applied; the row carries this script's ``id`` and ``label``,
    so ``--report-only --results RUNS.jsonl`` reads the sweep's results file."""
    config = dict(BASELINE, **(change or {}))
    row = run_one(config, seed, epochs, sim_images, data_dir or None)
    row.update(id=run_id(config, seed, epochs), label=label or _describe(config))
    return row


def _dense_predictions(net, images, T: int, batch: int = 1000):
    """The dense engine's decisions (eval mode, the network's own time weights if any)."""
    import numpy as np

    from training import encoding, losses

    net.eval()
    tw = getattr(net, "time_weights", None)
    preds = [losses.decode(net.forward(encoding.direct(images[i:i + batch], T)), tw).argmax(axis=1)
             for i in range(0, len(images), batch)]
    return np.concatenate(preds)


# ---------------------------------------------------------------------------------------
# driver: plan, run missing, append results
# ---------------------------------------------------------------------------------------
def _read_results(path: Path) -> list[dict]:
    """Finished runs; a torn last line (an interrupted write) is dropped."""
    if not path.exists():
        return []
    rows = []
    lines = path.read_text().splitlines()
    for k, line in enumerate(lines):
        try:
            row = json.loads(line)
            rows.append(row["result"] if "spec" in row and "result" in row else row)  # eventsim sweep
        except json.JSONDecodeError:
            if k != len(lines) - 1:
                raise SystemExit(f"{path}: line {k + 1} is not JSON (edit or remove it)")
    return rows


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else ""
    if text and not text.endswith("\n"):      # a torn line from an interrupted run
        text = text[:text.rfind("\n") + 1]
        path.write_text(text)
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def single_axis_plan() -> list[tuple[str, str, dict]]:
    """``(axis, label, config)`` of every single-change configuration (baseline once)."""
    plan = [("baseline", "baseline", dict(BASELINE))]
    for axis, options in AXES.items():
        for label, change in options:
            if change:
                plan.append((axis, label, dict(BASELINE, **change)))
    return plan


def best_config(rows: list[dict], seeds) -> dict:
    """The baseline with, on each axis, the setting of highest mean test accuracy (if above
    the baseline's)."""
    import numpy as np

    def mean_acc(config):
        acc = [r["test_acc"] for r in rows if r["config"] == config and r["seed"] in seeds]
        return float(np.mean(acc)) if acc else -1.0

    best = dict(BASELINE)
    base = mean_acc(BASELINE)
    for axis, options in AXES.items():
        scored = [(mean_acc(dict(BASELINE, **change)), change) for _, change in options if change]
        acc, change = max(scored, key=lambda s: s[0])
        if acc > base:
            best.update(change)
    return best


def run_plan(plan, seeds, args, results: Path) -> None:
    done = {r["id"] for r in _read_results(results)}
    todo = [(label, cfg, s) for _, label, cfg in plan for s in seeds
            if run_id(cfg, s, args.epochs_for(cfg)) not in done]
    if not todo:
        return
    print(f"{len(todo)} runs to do ({len(done)} already in {results})", file=sys.stderr)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_one, cfg, s, args.epochs_for(cfg), args.sim_images, args.data):
                   (label, cfg, s) for label, cfg, s in todo}
        for fut in as_completed(futures):
            label, cfg, s = futures[fut]
            try:
                row = fut.result()
            except Exception as e:  # one failed configuration does not stop the others
                print(f"{label:>20s} seed {s}: FAILED ({type(e).__name__}: {e})", file=sys.stderr)
                continue
            row.update(id=run_id(cfg, s, args.epochs_for(cfg)), label=label)
            _append(results, row)
            print(f"{label:>20s} seed {s}: test {row['test_acc']:.4f}  sim {row['sim_acc']:.4f}  "
                  f"{row['synaptic_events_per_sample']:.0f} events/sample  {row['seconds']:.0f} s",
                  file=sys.stderr)


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def summarise(rows: list[dict], plan) -> list[dict]:
    import numpy as np

    out = []
    for axis, label, cfg in plan:
        rs = [r for r in rows if r["config"] == cfg]
        if not rs:
            continue
        acc = np.array([r["test_acc"] for r in rs])
        out.append({
            "axis": axis, "label": label, "model": cfg["model"], "n": len(rs),
            "acc_mean": float(acc.mean()), "acc_min": float(acc.min()), "acc_max": float(acc.max()),
            "acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "sim_acc_mean": float(np.mean([r["sim_acc"] for r in rs])),
            "agree_mean": float(np.mean([r.get("sim_dense_agreement", np.nan) for r in rs])),
            "events_mean": float(np.mean([r["synaptic_events_per_sample"] for r in rs])),
            "rate_mean": float(np.mean([np.mean(list(r["firing_rate"].values())) for r in rs])),
            "seconds_mean": float(np.mean([r["seconds"] for r in rs])),
        })
    return out


def table(summary: list[dict]) -> str:
    lines = ["| axis | setting | model | runs | test acc, dense (mean, min-max) | simulator acc "
             "(first sim images) | same decision as dense | synaptic events / sample | "
             "firing rate | s / run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['axis']} | {s['label']} | {s['model']} | {s['n']} | "
                     f"{100 * s['acc_mean']:.2f} % ({100 * s['acc_min']:.2f}-{100 * s['acc_max']:.2f}) | "
                     f"{100 * s['sim_acc_mean']:.2f} % | {100 * s['agree_mean']:.2f} % | "
                     f"{s['events_mean']:,.0f} | "
                     f"{s['rate_mean']:.3f} | {s['seconds_mean']:.0f} |")
    return "\n".join(lines)


def figure(summary: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mlp = [s for s in summary if s["model"] == "mlp"]
    colors = {"baseline": "0.4", "neuron": "C0", "spikes": "C1", "gradient": "C2",
              "decoder": "C3", "best": "C4"}
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, constrained_layout=True)
    xs = range(len(mlp))
    means = [100 * s["acc_mean"] for s in mlp]
    err = [[100 * (s["acc_mean"] - s["acc_min"]) for s in mlp],
           [100 * (s["acc_max"] - s["acc_mean"]) for s in mlp]]
    a1.bar(xs, means, yerr=err, capsize=3, color=[colors.get(s["axis"], "C5") for s in mlp])
    lo = min(100 * s["acc_min"] for s in mlp)
    a1.set_ylim(math.floor(lo - 1), math.ceil(max(100 * s["acc_max"] for s in mlp) + 0.5))
    a1.axhline(means[0], color="0.4", lw=0.8, ls="--")
    a1.set_ylabel("test accuracy (%)\nmean, bars: min-max of 3 seeds")
    a1.set_title("Fashion-MNIST, MLP 784-400-10, T=4: one change at a time")
    a2.bar(xs, [s["events_mean"] / 1e3 for s in mlp], color=[colors.get(s["axis"], "C5") for s in mlp])
    a2.set_ylabel("synaptic events per\nsample (thousands)")
    a2.set_xticks(list(xs), [s["label"] for s in mlp], rotation=30, ha="right")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    ap.add_argument("--figure", type=Path, default=DEFAULT_FIGURE)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=15, help="MLP epochs per run")
    ap.add_argument("--conv-epochs", type=int, default=2, help="conv-net epochs per run")
    ap.add_argument("--conv-train-images", type=int, default=20000,
                    help="conv-net runs train on this many images (the 3-minute budget)")
    ap.add_argument("--sim-images", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data", default=None, help="Fashion-MNIST directory (else the usual search)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--no-conv", action="store_true")
    args = ap.parse_args(argv)
    args.epochs_for = lambda cfg: args.epochs if cfg["model"] == "mlp" else args.conv_epochs

    plan = single_axis_plan()
    if not args.report_only:
        run_plan(plan, args.seeds, args, args.results)
    rows = _read_results(args.results)
    best = best_config(rows, args.seeds)
    full = plan + ([("best", "best: " + _describe(best), best)] if best != BASELINE else [])
    if not args.report_only and best != BASELINE:
        run_plan(full[-1:], args.seeds, args, args.results)
    sub = dict(model="conv", train_images=args.conv_train_images)
    conv = [("conv", "conv baseline", dict(BASELINE, **sub)),
            ("conv", "conv best", dict(best, **sub))]
    if not args.report_only and not args.no_conv:
        run_plan(conv if best != BASELINE else conv[:1], args.seeds[:1], args, args.results)
    rows = _read_results(args.results)
    summary = summarise(rows, full + conv)
    print(table(summary))
    if any(s["model"] == "mlp" for s in summary):
        figure(summary, args.figure)
        print(f"\nfigure: {args.figure}")
    return 0


def _describe(cfg: dict) -> str:
    parts = [k + "=" + str(v) for k, v in cfg.items()
             if BASELINE.get(k) != v and k not in ("model", "train_images")]
    return ", ".join(parts) or "baseline"


if __name__ == "__main__":
    sys.exit(main())
