"""Learning curves of benchmarks/sequential_fmnist.py: test (and train) accuracy vs epoch.

    python benchmarks/plot_sequential.py      # every benchmarks/logs/seqfmnist_*.jsonl
    python benchmarks/plot_sequential.py --logs benchmarks/logs/seqfmnist_ff_h256_s0.jsonl \\
        benchmarks/logs/seqfmnist_rec_h256_s0.jsonl --out benchmarks/sequential_fmnist.png

Reads the JSON lines the training script appends to ``--log`` (one per epoch, plus a start
and a summary line) and draws one line per log: solid/dashed = test accuracy (line style by
seed), dotted = training accuracy (of the epoch's batches, in training mode).  Colour by
model: red RecurrentLIF, blue the feed-forward net of the same hidden size (256), green a
wider feed-forward net (H = 1943, the recurrent net's parameter count).  Also prints the
results table (markdown) of the same logs on stdout.
"""
from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOGS = str(ROOT / "benchmarks" / "logs" / "seqfmnist_*.jsonl")
COLOURS = {"ff": "tab:blue", "rec": "tab:red", "ff-wide": "tab:green"}
NAMES = {"ff": "feed-forward LIF", "rec": "RecurrentLIF"}


def read_log(path) -> dict:
    """``{"start": ..., "epochs": [...], "summary": ...}`` of one run's JSON lines (the last
    run in the file when it holds several)."""
    run = None
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        if d.get("start"):
            run = {"start": d, "epochs": [], "summary": None}
        elif "summary" in d and run is not None:
            run["summary"] = d["summary"]
        elif "epoch" in d and run is not None:
            run["epochs"].append(d)
    if run is None or not run["epochs"]:
        raise ValueError(f"{path}: no epochs logged")
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", nargs="+", default=None, help=f"default: {DEFAULT_LOGS}")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "sequential_fmnist.png"))
    ap.add_argument("--no-train", action="store_true", help="leave out the training accuracy")
    args = ap.parse_args(argv)
    paths = args.logs or sorted(glob.glob(DEFAULT_LOGS))
    if not paths:
        ap.error(f"no logs match {DEFAULT_LOGS}")
    print("| model | hidden | seed | params | epochs | best test acc (epoch) | final test acc "
          "| s/epoch (mean) | event simulator: images, acc, decisions = dense |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        run = read_log(path)
        a, eps, sm = run["start"]["args"], run["epochs"], run["summary"] or {}
        best = max(eps, key=lambda e: e["test_acc"])
        sim = sm.get("sim")
        sim_txt = (f"{sim['images']:,}, {100 * sim['sim_acc']:.2f} %, {100 * sim['agreement']:.2f} %"
                   if sim else "not run")
        print(f"| {NAMES[a['model']]} | {a['hidden']} | {a['seed']} | {run['start']['params']:,} "
              f"| {len(eps)} | {100 * best['test_acc']:.2f} % ({best['epoch']}) "
              f"| {100 * eps[-1]['test_acc']:.2f} % "
              f"| {sum(e['epoch_s'] for e in eps) / len(eps):.1f} | {sim_txt} |")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = ["-", "--", "-.", (0, (5, 1))]
    seen_seeds: dict = {}
    for path in paths:
        run = read_log(path)
        a = run["start"]["args"]
        model, seed, hidden = a["model"], a["seed"], a["hidden"]
        ls = styles[seen_seeds.setdefault(seed, len(seen_seeds)) % len(styles)]
        ep = [e["epoch"] for e in run["epochs"]]
        label = f"{NAMES[model]}, H={hidden}, seed {seed} ({run['start']['params']:,} params)"
        colour = COLOURS["ff-wide" if model == "ff" and hidden != 256 else model]
        ax.plot(ep, [100 * e["test_acc"] for e in run["epochs"]], ls=ls, color=colour,
                label=label + ": test")
        if not args.no_train:
            ax.plot(ep, [100 * e["train_acc"] for e in run["epochs"]], ls=":", lw=1,
                    color=colour, alpha=0.6)
    ax.plot([], [], ls=":", color="grey", label="training accuracy (dotted)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Row-by-row Fashion-MNIST (T = 28 rows of 28 pixels), loss rate_ce")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
