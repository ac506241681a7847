"""Train an SNN on the full Fashion-MNIST and export it; prints per-epoch figures.

    python benchmarks/train_fmnist.py --model mlp --epochs 20 --out runs/fmnist_mlp.h5
    python benchmarks/train_fmnist.py --model conv --epochs 30 --time-budget 1800 --out runs/fmnist_conv.h5

The run stops after ``--epochs`` or when the next epoch would pass ``--time-budget``
seconds (measured from the start, data loading included), whichever comes first, and
reports the best test accuracy reached and when.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import training
from snncore.fileio import check_output
from training import datasets, optim
from training.trainer import fit


def build(model: str, seed: int, tau: float):
    rng = np.random.default_rng(seed)
    if model == "mlp":
        return training.Sequential(
            training.Linear(784, 800, rng=rng), training.LIF(tau=tau, surrogate="atan", detach_reset=True),
            training.Linear(800, 10, rng=rng)), (784,)
    if model == "conv":
        return training.Sequential(
            training.Conv2d(1, 32, 3, padding=1, rng=rng), training.BatchNorm2d(32),
            training.LIF(tau=tau, surrogate="atan", detach_reset=True), training.AvgPool2d(2),
            training.Conv2d(32, 64, 3, padding=1, rng=rng), training.BatchNorm2d(64),
            training.LIF(tau=tau, surrogate="atan", detach_reset=True), training.AvgPool2d(2),
            training.Flatten(), training.Linear(64 * 7 * 7, 10, rng=rng)), (1, 28, 28)
    if model == "conv14":      # the F-conv's conv layers (+ BatchNorm), no feedback
        return training.Sequential(
            training.Conv2d(1, 16, 3, padding=1, rng=rng), training.BatchNorm2d(16),
            training.LIF(tau=tau, surrogate="atan", detach_reset=True),
            training.Conv2d(16, 16, 3, padding=1, rng=rng), training.BatchNorm2d(16),
            training.LIF(tau=tau, surrogate="atan", detach_reset=True),
            training.Flatten(), training.Linear(16 * 14 * 14, 10, rng=rng)), (1, 14, 14)
    raise ValueError(model)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["mlp", "conv", "conv14"], default="mlp",
                    help="conv14: two 16-channel convs with BatchNorm on 2x2-average-pooled 14x14 images")
    ap.add_argument("--train-limit", type=int, default=None,
                    help="use only the first N training images")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--tau", type=float, default=2.0)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--time-budget", type=float, default=math.inf, help="seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="directory with the Fashion-MNIST IDX files")
    ap.add_argument("--out", default=None, help="export the best model here (HDF5)")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--overwrite", action="store_true", help="replace an existing model at --out")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    if args.out:  # before training: an existing model is replaced only with --overwrite
        check_output(args.out, "model", args.overwrite)
    t_start = time.perf_counter()
    train = datasets.load_fashion_mnist(args.data, split="train")
    test = datasets.load_fashion_mnist(args.data, split="test")
    flat = args.model == "mlp"
    xtr, xte = train.float_images(flatten=flat), test.float_images(flatten=flat)
    ytr = train.labels
    if args.model == "conv14":
        xtr, xte = (np.ascontiguousarray(x.reshape(-1, 1, 14, 2, 14, 2).mean(axis=(3, 5)))
                    for x in (xtr, xte))
    if args.train_limit:
        xtr, ytr = xtr[:args.train_limit], ytr[:args.train_limit]
    net, input_shape = build(args.model, args.seed, args.tau)
    opt = optim.AdamW(list(net.named_parameters()), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * math.ceil(len(xtr) / args.batch_size)
    sched = optim.CosineSchedule(opt, total_steps=steps)
    best = {"test_acc": -1.0}

    class Budget(Exception):
        pass

    def on_epoch_end(epoch, h):
        elapsed = time.perf_counter() - t_start
        if h.test_acc[-1] > best["test_acc"]:
            best.update(test_acc=h.test_acc[-1], epoch=epoch, seconds=elapsed)
            if args.out:
                training.export(net, args.out, input_shape=input_shape, T=args.T, encoding="direct",
                                overwrite=True, dataset="fashion-mnist", method="bptt", model=args.model,
                                accuracy=h.test_acc[-1], seed=args.seed, epoch=epoch)
        print(json.dumps({"epoch": epoch, "elapsed_s": round(elapsed, 1),
                          "epoch_s": round(h.seconds[-1], 1), "train_acc": round(h.train_acc[-1], 4),
                          "test_acc": round(h.test_acc[-1], 4)}), flush=True)
        per_epoch = elapsed / (epoch - first_epoch[0]) if epoch > first_epoch[0] else 0
        if elapsed + per_epoch > args.time_budget:
            raise Budget

    first_epoch = [0]
    try:
        fit(net, (xtr, ytr), test=(xte, test.labels), T=args.T, epochs=args.epochs,
            batch_size=args.batch_size, optimizer=opt, schedule=sched, label_smoothing=args.label_smoothing,
            seed=args.seed, checkpoint=args.checkpoint, resume=args.checkpoint is not None,
            progress=not args.quiet, on_epoch_end=on_epoch_end)
    except Budget:
        print("stopped: the next epoch would exceed the time budget", flush=True)
    best["total_s"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps({"best": best, "args": vars(args)}, default=str), flush=True)


if __name__ == "__main__":
    try:
        main()
    except training.TrainingInterrupted as err:   # Ctrl-C: one line saying how to resume
        print(err, file=sys.stderr)
        sys.exit(130)
