"""A training task for ``eventsim sweep`` (examples/sweep_train.toml).

    eventsim sweep examples/sweep_train.toml --results runs/sweep_train.jsonl --scheduler local:2

Every run trains an MLP 784-hidden-10 on the bundled Fashion-MNIST subset with one seed and
one setting, then returns its test accuracy and training time (one JSON line per run).
"""
from __future__ import annotations

import time

import numpy as np


def train_mlp(seed: int, hidden: int = 100, epochs: int = 1, lr: float = 1e-3, T: int = 4,
              encoder: str = "direct", batch_size: int = 64, train_limit: int | None = None) -> dict:
    """Train and evaluate one configuration; returns accuracies and seconds.
    ``train_limit``: train on the first that many images only (default: all 5000)."""
    import training
    from training import datasets, optim

    train, test = datasets.load_fashion_mnist_small("train"), datasets.load_fashion_mnist_small("test")
    if train_limit is not None:
        train = train.subset(slice(0, int(train_limit)))
    rng = np.random.default_rng(seed)
    net = training.Sequential(training.Linear(784, hidden, rng=rng),
                              training.LIF(tau=2.0, surrogate="atan", detach_reset=True),
                              training.Linear(hidden, 10, rng=rng))
    opt = optim.Adam(list(net.named_parameters()), lr=lr)
    t0 = time.perf_counter()
    history = training.fit(net, (train.float_images(flatten=True), train.labels),
                           test=(test.float_images(flatten=True), test.labels), T=T,
                           epochs=epochs, batch_size=batch_size, optimizer=opt, encoder=encoder,
                           seed=seed, progress=False)
    return {"test_acc": history.test_acc[-1], "train_acc": history.train_acc[-1],
            "train_loss": history.train_loss[-1], "seconds": time.perf_counter() - t0}
