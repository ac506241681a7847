"""Row-by-row (sequential) Fashion-MNIST: does recurrence help?  (issue 18)

Each image is presented as a sequence of T = 28 steps, step t carrying row t (28 pixels,
floats in [0, 1]) as the input current: images [N, 28, 28] -> x [28, B, 28].  Two networks of
the same size, differing only in the spiking layer:

  ff    Linear(28, H) - LIF(H)          - Linear(H, 10)
  rec   Linear(28, H) - RecurrentLIF(H) - Linear(H, 10)   (delay-1 recurrent weights W [H, H]
                                                           and bias [H], BPTT)

  neurons  beta --beta (0.9), threshold 1, reset "subtract", atan surrogate, detach_reset
           (the same settings in both layers)
  loss     "rate_ce" for both: cross-entropy of the time-mean readout (1/T) sum_t y_t
  fit      AdamW (lr --lr, weight decay --weight-decay), cosine schedule over all
           iterations, batch --batch-size, seed --seed (initialisation and shuffling),
           float32

    OPENBLAS_NUM_THREADS=1 python benchmarks/sequential_fmnist.py --model rec --hidden 128 \\
        --epochs 10 --out runs/seq_rec.h5 --log benchmarks/logs/seq_rec.jsonl --quiet

Prints (and appends to ``--log``) one JSON line per epoch (train/test accuracy, seconds) and a
final summary line.  The best model (test accuracy) is exported to ``--out``; with
``--sim-images N`` (> 0) it is then run in the event simulator on the first N test images and
the simulator's decisions are compared with the dense engine's (``training.to_network`` of the
same exported file), reported as ``sim`` in the summary line.  ``--train-images N`` trains on
the first N training images only (the test set is always the full 10,000).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # the checkout this script belongs to

import numpy as np  # noqa: E402

import training  # noqa: E402
from snncore.fileio import check_output  # noqa: E402
from training import datasets, optim  # noqa: E402
from training.trainer import fit  # noqa: E402

T_ROWS = 28


def rows(images: np.ndarray, T: int = T_ROWS, rng=None) -> np.ndarray:
    """Row encoder: images ``[B, 28, 28]`` -> ``[28, B, 28]`` (step t = row t)."""
    if images.shape[1:] != (T_ROWS, T_ROWS) or T != T_ROWS:
        raise ValueError(f"rows: need images [B, 28, 28] and T = 28, got {images.shape}, T={T}")
    return np.ascontiguousarray(images.transpose(1, 0, 2))


def build(model: str, hidden: int, seed: int, beta: float):
    rng = np.random.default_rng(seed)
    neuron = dict(beta=beta, threshold=1.0, reset="subtract", surrogate="atan", detach_reset=True)
    if model == "ff":
        spiking = training.LIF(**neuron)
    elif model == "rec":
        spiking = training.RecurrentLIF(hidden, **neuron, rng=rng)
    else:
        raise ValueError(model)
    # the spiking layer's rng draws come last, so both models get the same input weights
    first = training.Linear(T_ROWS, hidden, rng=np.random.default_rng([seed, 1]))
    readout = training.Linear(hidden, 10, rng=np.random.default_rng([seed, 2]))
    return training.Sequential(first, spiking, readout)


def n_params(net) -> int:
    return int(sum(p.data.size for p in net.parameters()))


def sim_check(path: str, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> dict:
    """Decisions of the exported model in the event simulator vs the dense engine."""
    import eventsim
    from snncore import modelfile
    model = modelfile.read_model(path)
    dense_net = training.to_network(model)
    dense_net.eval()
    compiled = eventsim.load(model)
    sim = eventsim.Simulator(compiled)
    sim.run(rows(images[:1]))                # compile (or load the cached kernels) first
    t0 = time.perf_counter()
    sim_pred, dense_pred, max_diff = [], [], 0.0
    for i in range(0, len(images), batch):
        x = rows(images[i:i + batch])
        rec = sim.run(x)
        y = dense_net.forward(x)
        sim_pred.append(rec.predictions)
        dense_pred.append(training.losses.decode(y, compiled.time_weights).argmax(axis=1))
        max_diff = max(max_diff, float(np.abs(rec.readout - y).max()))
    sim_pred, dense_pred = np.concatenate(sim_pred), np.concatenate(dense_pred)
    return {"images": int(len(images)), "seconds": round(time.perf_counter() - t0, 1),
            "readout_max_abs_diff": max_diff,
            "sim_acc": float(np.mean(sim_pred == labels)),
            "dense_acc": float(np.mean(dense_pred == labels)),
            "agreement": float(np.mean(sim_pred == dense_pred)),
            "disagreeing": int(np.sum(sim_pred != dense_pred))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["ff", "rec"], required=True)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--beta", type=float, default=0.9, help="membrane decay per step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-images", type=int, default=None, help="first N training images only")
    ap.add_argument("--data", default=None, help="directory with the Fashion-MNIST IDX files")
    ap.add_argument("--out", default=None, help="export the best model here (HDF5)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing model at --out")
    ap.add_argument("--log", default=None, help="append the JSON lines to this file")
    ap.add_argument("--sim-images", type=int, default=0,
                    help="after training, simulate the exported model on this many test images")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    if args.out:
        check_output(args.out, "model", args.overwrite)
    if args.sim_images and not args.out:
        ap.error("--sim-images needs --out")
    log = open(args.log, "a") if args.log else None

    def emit(obj):
        line = json.dumps(obj, default=str)
        print(line, flush=True)
        if log:
            log.write(line + "\n")
            log.flush()

    t_start = time.perf_counter()
    train = datasets.load_fashion_mnist(args.data, split="train")
    test = datasets.load_fashion_mnist(args.data, split="test")
    xtr, ytr = train.float_images(), train.labels
    if args.train_images:
        xtr, ytr = xtr[:args.train_images], ytr[:args.train_images]
    xte, yte = test.float_images(), test.labels
    xtr, xte = xtr.reshape(-1, 28, 28), xte.reshape(-1, 28, 28)
    net = build(args.model, args.hidden, args.seed, args.beta)
    opt = optim.AdamW(list(net.named_parameters()), lr=args.lr, weight_decay=args.weight_decay)
    sched = optim.CosineSchedule(opt, total_steps=args.epochs * math.ceil(len(xtr) / args.batch_size))
    emit({"start": True, "model": args.model, "hidden": args.hidden, "params": n_params(net),
          "train_images": len(xtr), "test_images": len(xte), "args": vars(args)})
    best = {"test_acc": -1.0}

    def on_epoch_end(epoch, h):
        elapsed = time.perf_counter() - t_start
        if h.test_acc[-1] > best["test_acc"]:
            best.update(test_acc=h.test_acc[-1], epoch=epoch)
            if args.out:
                training.export(net, args.out, input_shape=(T_ROWS,), T=T_ROWS, encoding="direct",
                                overwrite=True, dataset="fashion-mnist", input="rows",
                                method="bptt", model=args.model, hidden=args.hidden,
                                accuracy=h.test_acc[-1], seed=args.seed, epoch=epoch)
        emit({"model": args.model, "epoch": epoch, "elapsed_s": round(elapsed, 1),
              "epoch_s": round(h.seconds[-1], 1), "train_loss": round(h.train_loss[-1], 4),
              "train_acc": round(h.train_acc[-1], 4), "test_loss": round(h.test_loss[-1], 4),
              "test_acc": round(h.test_acc[-1], 4)})

    h = fit(net, (xtr, ytr), test=(xte, yte), T=T_ROWS, epochs=args.epochs,
            batch_size=args.batch_size, optimizer=opt, schedule=sched, encoder=rows,
            loss="rate_ce", seed=args.seed, progress=not args.quiet, on_epoch_end=on_epoch_end)
    summary = {"model": args.model, "hidden": args.hidden, "params": n_params(net),
               "epochs": len(h.epoch), "best_test_acc": best["test_acc"], "best_epoch": best.get("epoch"),
               "final_test_acc": h.test_acc[-1] if h.test_acc else None,
               "mean_epoch_s": round(float(np.mean(h.seconds)), 1) if h.seconds else None,
               "train_s": round(time.perf_counter() - t_start, 1)}
    if args.sim_images:
        summary["sim"] = sim_check(args.out, xte[:args.sim_images], yte[:args.sim_images])
    emit({"summary": summary})
    if log:
        log.close()


if __name__ == "__main__":
    try:
        main()
    except training.TrainingInterrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
