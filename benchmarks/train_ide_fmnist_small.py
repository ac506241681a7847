"""IDE on the committed Fashion-MNIST subset: the paper's F-MLP 784-400-10 (no BatchNorm, no
dropout) trained by implicit differentiation; prints one line per epoch.

    OPENBLAS_NUM_THREADS=1 python benchmarks/train_ide_fmnist_small.py --neuron IF --epochs 10

SGD (lr 0.05, momentum 0.9, weight decay 5e-4, the paper's), batch 128, direct input, T = 5,
Broyden adjoint solve to 1e-6 (the paper trains 100 epochs on the full 60k set: this is a
smoke-sized run on 5000 training and 1000 test images, not a reproduction).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import training
from training import datasets, ide, optim


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neuron", choices=["IF", "LIF"], default="IF")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--T", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=400)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--solver", choices=list(ide.SOLVERS), default="broyden")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    train = datasets.load_fashion_mnist_small("train")
    test = datasets.load_fashion_mnist_small("test")
    xtr, xte = train.float_images(flatten=True), test.float_images(flatten=True)
    net = training.FeedbackMLP(784, args.hidden, 10, neuron=args.neuron, rng=args.seed)
    opt = optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)

    def on_epoch_end(epoch, h):
        print(f"| {epoch} | {h.train_loss[-1]:.4f} | {100 * h.train_acc[-1]:.2f} % | "
              f"{100 * h.test_acc[-1]:.2f} % | {h.seconds[-1]:.1f} | "
              f"{net.last_adjoint[0]} | {net.last_residual:.3f} |", flush=True)

    print(f"F-MLP 784-{args.hidden}-10 {args.neuron}, T = {args.T}, solver {args.solver}")
    print("| epoch | train loss | train acc | test acc | s | last adjoint iters | "
          "last max|a - f(a)| |\n|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    training.fit(net, (xtr, train.labels.astype(np.int64)), T=args.T, epochs=args.epochs,
                 batch_size=128, optimizer=opt, test=(xte, test.labels.astype(np.int64)),
                 method="ide", ide_solver=args.solver, seed=args.seed, progress=False,
                 on_epoch_end=on_epoch_end)
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
