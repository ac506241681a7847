"""Quickstart: train a small SNN on the committed Fashion-MNIST subset, export it, run it
event by event, check it against the dense engine, and plot what it did.

    python examples/quickstart.py [--out runs/quickstart] [--epochs 8]

Writes into ``--out``: ``model.h5`` (the exported model), ``checkpoint.h5``,
``training_curves.png``, ``recording.h5`` and ``sample0_raster_membrane.png``; a second run
replaces the files of the first (``overwrite=True``).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import eventsim
import training
from eventsim import plot
from training import datasets, optim
from training.trainer import fit


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/quickstart")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. data: 5000 training and 1000 test images committed under data/
    train = datasets.load_fashion_mnist_small("train")
    test = datasets.load_fashion_mnist_small("test")
    x_train, x_test = train.float_images(flatten=True), test.float_images(flatten=True)

    # 2. network: 784-256 LIF-10 readout, direct (analog) input repeated T times
    rng = np.random.default_rng(args.seed)
    net = training.Sequential(
        training.Linear(784, 256, rng=rng),
        training.LIF(tau=2.0, threshold=1.0, reset="hard", surrogate="atan", detach_reset=True),
        training.Linear(256, 10, rng=rng))
    opt = optim.AdamW(list(net.named_parameters()), lr=2e-3, weight_decay=1e-2)
    steps = args.epochs * math.ceil(len(x_train) / 64)
    sched = optim.CosineSchedule(opt, total_steps=steps)
    t0 = time.perf_counter()
    history = fit(net, (x_train, train.labels), test=(x_test, test.labels), T=args.T,
                  epochs=args.epochs, batch_size=64, optimizer=opt, schedule=sched,
                  seed=args.seed, checkpoint=out / "checkpoint.h5", overwrite=True)  # a fresh run
    train_s = time.perf_counter() - t0
    plot.training_curves({"train loss": history.train_loss, "test acc": history.test_acc,
                          "train acc": history.train_acc}).figure.savefig(out / "training_curves.png", dpi=120)

    # 3. export: BatchNorm, input gains (1/tau) folded; versioned HDF5 model file
    model_path = training.export(net, out / "model.h5", input_shape=(784,), T=args.T, encoding="direct",
                                 overwrite=True, dataset="fashion-mnist-small", method="bptt",
                                 accuracy=history.test_acc[-1], seed=args.seed)

    # 4. simulate event by event and compare with the dense engine
    model = eventsim.load(model_path)
    x = training.encoding.direct(x_test, args.T)
    t0 = time.perf_counter()
    rec = eventsim.Simulator(model).run(x)
    sim_s = time.perf_counter() - t0
    dense = training.to_network(model.model)
    y_dense = dense.forward(x)
    dense_pred = training.losses.decode(y_dense).argmax(axis=1)
    rec.save(out / "recording.h5", overwrite=True)

    # 5. plots: raster, and membrane traces of 6 hidden neurons that fire on about half
    #    of the steps for one test image (the most telling traces), and the readout
    chosen = plot.pick_neurons(plot.spike_counts(rec.spikes[1], 256, sample=0), args.T, k=6)
    one = eventsim.Simulator(model, record_membrane={1: chosen}).run(x[:, :1])
    plot.plot_recording(one, sample=0, model=model, true_label=int(test.labels[0]),
                        out=out / "sample0_raster_membrane.png")

    summary = {
        "train_seconds": round(train_s, 1),
        "dense_test_accuracy": float(np.mean(dense_pred == test.labels)),
        "eventsim_test_accuracy": float(np.mean(rec.predictions == test.labels)),
        "prediction_agreement": float(np.mean(rec.predictions == dense_pred)),
        "readout_max_abs_diff": float(np.max(np.abs(rec.readout - y_dense))),
        "simulation_seconds": round(sim_s, 2),
        "outputs": sorted(p.name for p in out.iterdir()),
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    try:
        main()
    except training.TrainingInterrupted as err:   # Ctrl-C: one line saying how to resume
        print(err, file=sys.stderr)
        sys.exit(130)
