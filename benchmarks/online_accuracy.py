"""Fashion-MNIST accuracy of online training (OTTT_A, OTTT_O, SAF-E, SAF-F) against BPTT.

    python benchmarks/online_accuracy.py                      # run what is missing, then report
    python benchmarks/online_accuracy.py --report-only
    python benchmarks/online_accuracy.py --methods bptt ottt_a --epochs 2 --train-images 5000 \\
        --sim-images 500 --results /tmp/oa.jsonl --no-conv    # smoke run

Every MLP run trains the same network with the same budget; only ``method`` changes:

  MLP   WSLinear(784, 800) - Scale(2.74) - LIF - Linear(800, 10), float32, direct input,
        T = 6 (the same network for BPTT)
  LIF   tau 2 (beta 0.5), threshold 1, reset "subtract", sigmoid surrogate (alpha 4)
  fit   Adam lr 1e-3, cosine schedule over all iterations, batch 128, ``--epochs`` epochs,
        no label smoothing, seed 0 (shuffling and initialisation)
  loss  the online methods: L = sum_t CE(o_t, y) / T (``online_loss_c`` = c, default 0);
        SAF-F: CE of its accumulated output at the last step; BPTT: "per_step_ce", the
        same sum_t CE(o_t, y) / T, backpropagated through time

OTTT_O and SAF-E update after every time step (T Adam steps per batch, the schedule
stepping once per batch); OTTT_A, SAF-F and BPTT once per batch.  The conv net
(WSConv2d(1, 32) - Scale - LIF - AvgPool - WSConv2d(32, 64) - Scale - LIF - AvgPool -
Linear(3136, 10))
is trained once by ``--conv-method`` (OTTT_A) for ``--conv-epochs`` epochs on the first
``--conv-train-images`` training images.

After training, each run

- evaluates the dense engine on the 10,000 test images (uniform decoder, as ``fit``);
  SAF-F also with its own decoder (the readout's lam-weighted sum, time weights
  ``lam^(T-1-t)``), reported separately;
- exports the model (``training.export``) and runs it in the event simulator
  (``eventsim.Simulator``) on the first ``--sim-images`` test images: the simulator's
  accuracy and the fraction of its decisions equal to the dense engine's.

Each finished run appends one JSON line to ``--results``; a run already there (same
configuration) is skipped, so an interrupted session resumes.  Runs are sequential.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # the checkout this script belongs to
DEFAULT_RESULTS = ROOT / "benchmarks" / "logs" / "online_accuracy.jsonl"
METHODS = ("bptt", "ottt_a", "ottt_o", "saf_e", "saf_f")
BETA = 0.5
SCALE = 2.74


def run_id(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------------------
def build(model: str, seed: int):
    """``(net, input_shape)``: the MLP or the conv net of the module docstring.

    Each weight-standardised layer is followed by ``Scale(2.74)`` (the OTTT authors'
    constant; export folds it into that layer's weight and bias): with the standardised
    weights alone (unit-norm rows) the hidden layers barely fire at initialisation (MLP
    2.4 %, conv 0.7 % and 0.2 % of neurons per step on test images), with it 19 % and 12 %.
    """
    import numpy as np

    import training

    rng = np.random.default_rng(seed)

    def lif():
        return training.LIF(beta=BETA, threshold=1.0, reset="subtract", surrogate="sigmoid")

    if model == "mlp":
        return training.Sequential(training.WSLinear(784, 800, rng=rng), training.Scale(SCALE),
                                   lif(), training.Linear(800, 10, rng=rng)), (784,)
    return training.Sequential(
        training.WSConv2d(1, 32, 3, padding=1, rng=rng), training.Scale(SCALE), lif(),
        training.AvgPool2d(2),
        training.WSConv2d(32, 64, 3, padding=1, rng=rng), training.Scale(SCALE), lif(),
        training.AvgPool2d(2), training.Flatten(), training.Linear(64 * 7 * 7, 10, rng=rng)), (1, 28, 28)


def dense_predictions(net, images, T: int, time_weights=None, batch: int = 1000):
    """The dense engine's decisions in eval mode (``argmax`` of the decoded readout)."""
    import numpy as np

    from training import encoding, losses

    net.eval()
    out = [losses.decode(net.forward(encoding.direct(images[i:i + batch], T)),
                         time_weights).argmax(axis=1) for i in range(0, len(images), batch)]
    net.reset_cache()
    return np.concatenate(out)


def simulate(net, input_shape, images, T: int, time_weights=None, batch: int = 1000):
    """Export ``net`` and run the event simulator on ``images``; returns its predictions."""
    import numpy as np

    import eventsim
    import training

    with tempfile.TemporaryDirectory() as tmp:
        path = training.export(net, Path(tmp) / "model.h5", input_shape=input_shape, T=T,
                               encoding="direct", time_weights=time_weights,
                               dataset="fashion-mnist")
        sim = eventsim.Simulator(eventsim.load(path))
        preds = [sim.run(eventsim.inputs.direct(images[i:i + batch].reshape((-1,) + input_shape),
                                                T)).predictions
                 for i in range(0, len(images), batch)]
    return np.concatenate(preds)


def run_one(cfg: dict, sim_images: int, data_dir) -> dict:
    """Train, evaluate, export and simulate one configuration; the result record."""
    import numpy as np

    import training
    from training import datasets, optim

    t0 = time.perf_counter()
    train = datasets.load_fashion_mnist(data_dir, split="train")
    test = datasets.load_fashion_mnist(data_dir, split="test")
    net, input_shape = build(cfg["model"], cfg["seed"])
    flat = cfg["model"] == "mlp"
    x, y = train.float_images(flatten=flat), train.labels
    x, y = x[:cfg["train_images"]], y[:cfg["train_images"]]
    xt, yt = test.float_images(flatten=flat), test.labels
    T, method = cfg["T"], cfg["method"]
    opt = optim.Adam(list(net.named_parameters()), lr=cfg["lr"])
    sched = optim.CosineSchedule(opt, total_steps=cfg["epochs"] * math.ceil(len(y) / cfg["batch"]))
    kw = (dict(loss="per_step_ce") if method == "bptt"
          else dict(method=method, online_loss_c=cfg["c"]))

    def log(epoch, h):
        print(json.dumps({"method": method, "model": cfg["model"], "epoch": epoch,
                          "epoch_s": round(h.seconds[-1], 1),
                          "train_acc": round(h.train_acc[-1], 4),
                          "test_acc": round(h.test_acc[-1], 4)}), file=sys.stderr, flush=True)

    h = training.fit(net, (x, y), test=(xt, yt), T=T, epochs=cfg["epochs"], batch_size=cfg["batch"],
                     optimizer=opt, schedule=sched, seed=cfg["seed"], progress=False,
                     on_epoch_end=log, **kw)
    train_s = time.perf_counter() - t0
    row = {"config": cfg, "test_acc": float(h.test_acc[-1]), "best_test_acc": float(max(h.test_acc)),
           "train_acc": float(h.train_acc[-1]), "test_acc_per_epoch": [float(a) for a in h.test_acc],
           "epoch_seconds": [float(s) for s in h.seconds], "train_seconds": train_s}
    if method == "saf_f":     # SAF-F's own output: sum_t lam^(T-1-t) o_t / c_{T-1}
        tw = BETA ** np.arange(T - 1, -1, -1, dtype=np.float64)
        row["test_acc_saf_decoder"] = float(np.mean(dense_predictions(net, xt, T, tw) == yt))
    n = min(sim_images, len(yt))
    t1 = time.perf_counter()
    dense = dense_predictions(net, xt[:n], T)
    sim = simulate(net, input_shape, xt[:n], T)
    row.update(sim_images=n, sim_acc=float(np.mean(sim == yt[:n])),
               dense_acc_sim_images=float(np.mean(dense == yt[:n])),
               sim_dense_agreement=float(np.mean(sim == dense)),
               sim_seconds=time.perf_counter() - t1, seconds=time.perf_counter() - t0)
    return row


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------
def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:     # a torn last line from an interrupted write
            pass
    return rows


def append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def configs(args) -> list[dict]:
    base = dict(T=args.T, batch=args.batch_size, lr=args.lr, c=args.c)
    out = [dict(base, model="mlp", method=m, seed=s, epochs=args.epochs,
                train_images=args.train_images) for s in args.seeds for m in args.methods]
    if not args.no_conv:
        out.append(dict(base, model="conv", method=args.conv_method, seed=args.seeds[0],
                        epochs=args.conv_epochs, train_images=args.conv_train_images,
                        batch=args.conv_batch_size))
    return out


def table(rows: list[dict]) -> str:
    lines = ["| model | method | seed | epochs | train images | test acc (dense, 10k) | "
             "vs BPTT | simulator acc | same decision as dense | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    bptt = {(r["config"]["seed"], r["config"]["epochs"]): r["test_acc"] for r in rows
            if r["config"]["model"] == "mlp" and r["config"]["method"] == "bptt"}
    for r in rows:
        c = r["config"]
        ref = bptt.get((c["seed"], c["epochs"])) if c["model"] == "mlp" else None
        diff = f"{100 * (r['test_acc'] - ref):+.2f}" if ref is not None else "-"
        extra = (f" (own decoder {100 * r['test_acc_saf_decoder']:.2f} %)"
                 if "test_acc_saf_decoder" in r else "")
        lines.append(f"| {c['model']} | {c['method']} | {c['seed']} | {c['epochs']} | "
                     f"{c['train_images']} | {100 * r['test_acc']:.2f} %{extra} | {diff} | "
                     f"{100 * r['sim_acc']:.2f} % ({r['sim_images']}) | "
                     f"{100 * r['sim_dense_agreement']:.2f} % | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--T", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--c", type=float, default=0.0, help="online_loss_c (MSE weight)")
    ap.add_argument("--train-images", type=int, default=60000)
    ap.add_argument("--conv-method", default="ottt_a", choices=list(METHODS))
    ap.add_argument("--conv-epochs", type=int, default=2)
    ap.add_argument("--conv-train-images", type=int, default=60000)
    ap.add_argument("--conv-batch-size", type=int, default=64)
    ap.add_argument("--no-conv", action="store_true")
    ap.add_argument("--sim-images", type=int, default=10000)
    ap.add_argument("--data", default=None, help="directory with the Fashion-MNIST IDX files")
    ap.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)

    todo = configs(args)
    if not args.report_only:
        done = {r["id"] for r in read_results(args.results)}
        for cfg in todo:
            if run_id(cfg) in done:
                continue
            print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC: {cfg}", file=sys.stderr,
                  flush=True)
            row = run_one(cfg, args.sim_images, args.data)
            row["id"] = run_id(cfg)
            append(args.results, row)
            print(f"{cfg['model']} {cfg['method']}: test {row['test_acc']:.4f}, simulator "
                  f"{row['sim_acc']:.4f}, agreement {row['sim_dense_agreement']:.4f}, "
                  f"{row['train_seconds']:.0f} s", file=sys.stderr, flush=True)
    wanted = {run_id(c) for c in todo}
    print(table([r for r in read_results(args.results) if r["id"] in wanted]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
