"""Train and export the small float32 models of the feedback / recurrent kinds in tests/data.

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python tests/data/make_trained_models.py

Each model is trained briefly on the committed Fashion-MNIST subset
(``training.datasets.load_fashion_mnist_small``: 5000 training, 1000 test images), float32,
fixed seeds, and exported with ``training.export`` to ``tests/data/<name>.h5`` (``--out-dir``
elsewhere; ``--only NAME ...`` a subset).  ``tests/eventsim/test_trained_recurrent.py`` checks
that the event simulator takes the dense engine's decisions on them.  Prints one line per
epoch and the test accuracy of each model; see ``tests/data/README.md``.

Models (name: network, input, training):

- ``fmnist_fmlp_if``: ``FeedbackMLP(784, 128, 10, neuron="IF")`` (theta 2), direct input,
  T = 5, IDE (``fit(method="ide")``), SGD lr 0.05, momentum 0.9, weight decay 5e-4.
- ``fmnist_fmlp_lif``: the same with ``neuron="LIF"`` (lam 0.95).
- ``fmnist_fconv``: ``FeedbackConv(1, (4, 4), (14, 14), 10)`` (3x3 kernels, IF) on the images
  2x2-average-pooled to 14x14, direct input, T = 5, IDE as above.
- ``fmnist_rlif``: Linear 784-128, ``RecurrentLIF(128, beta=0.9)`` (subtract reset),
  Linear 128-10; rate-coded input, T = 8, BPTT, Adam lr 1e-3.
- ``fmnist_cuba``: Linear 784-128, ``CubaLIF(0.5, 0.9)`` (feed-forward), Linear 128-64,
  ``CubaLIF(0.5, 0.9, recurrent=True, features=64)``, Linear 64-10; direct input, T = 8,
  BPTT, Adam lr 1e-3.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import training
from training import datasets, optim

HERE = Path(__file__).resolve().parent
SEED = 0


def pool2(images: np.ndarray) -> np.ndarray:
    """``[N, 1, 28, 28] -> [N, 1, 14, 14]``: 2x2 average pooling in float32 (the exact mean of
    four multiples of 1/255, rounded once)."""
    n = images.shape[0]
    return images.reshape(n, 1, 14, 2, 14, 2).mean(axis=(3, 5), dtype=np.float64) \
        .astype(np.float32)


def data(kind: str):
    """``(x_train, y_train, x_test, y_test, input_shape)`` float32 images for ``kind``."""
    train = datasets.load_fashion_mnist_small("train")
    test = datasets.load_fashion_mnist_small("test")
    if kind == "flat":
        xtr = train.float_images(np.float32, flatten=True)
        xte = test.float_images(np.float32, flatten=True)
        shape = (784,)
    else:
        xtr, xte = pool2(train.float_images(np.float32)), pool2(test.float_images(np.float32))
        shape = (1, 14, 14)
    return xtr, train.labels.astype(np.int64), xte, test.labels.astype(np.int64), shape


def build(name: str):
    """``(net, input kind, fit keyword arguments, optimiser factory)`` of model ``name``."""
    if name in ("fmnist_fmlp_if", "fmnist_fmlp_lif"):
        neuron = "IF" if name.endswith("_if") else "LIF"
        net = training.FeedbackMLP(784, 128, 10, neuron=neuron, rng=SEED)
        opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        return net, "flat", dict(T=5, epochs=10, batch_size=128, method="ide",
                                 encoder="direct"), opt
    if name == "fmnist_fconv":
        net = training.FeedbackConv(1, (4, 4), (14, 14), 10, neuron="IF", rng=SEED)
        opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        return net, "pool", dict(T=5, epochs=5, batch_size=64, method="ide",
                                 encoder="direct"), opt
    rng = np.random.default_rng(SEED)
    if name == "fmnist_rlif":
        net = training.Sequential(training.Linear(784, 128, rng=rng),
                                  training.RecurrentLIF(128, beta=0.9, rng=rng),
                                  training.Linear(128, 10, rng=rng))
        opt = optim.Adam(net.parameters(), lr=1e-3)
        return net, "flat", dict(T=8, epochs=10, batch_size=64, encoder="rate"), opt
    if name == "fmnist_cuba":
        net = training.Sequential(training.Linear(784, 128, rng=rng),
                                  training.CubaLIF(0.5, 0.9),
                                  training.Linear(128, 64, rng=rng),
                                  training.CubaLIF(0.5, 0.9, recurrent=True, features=64,
                                                   rng=rng),
                                  training.Linear(64, 10, rng=rng))
        opt = optim.Adam(net.parameters(), lr=1e-3)
        return net, "flat", dict(T=8, epochs=10, batch_size=64, encoder="direct"), opt
    raise ValueError(f"unknown model {name!r}")


NAMES = ["fmnist_fmlp_if", "fmnist_fmlp_lif", "fmnist_fconv", "fmnist_rlif", "fmnist_cuba"]


def make(name: str, out_dir: Path) -> tuple[float, Path]:
    with training.default_dtype(np.float32):
        net, kind, kw, opt = build(name)
    xtr, ytr, xte, yte, shape = data(kind)
    print(f"{name}: {net!r}" if not isinstance(net, training.Sequential) else f"{name}:",
          flush=True)
    t0 = time.perf_counter()

    def on_epoch_end(epoch, h):
        print(f"  epoch {epoch}: train loss {h.train_loss[-1]:.4f}, train acc "
              f"{100 * h.train_acc[-1]:.2f} %, test acc {100 * h.test_acc[-1]:.2f} %, "
              f"{time.perf_counter() - t0:.1f} s", flush=True)

    h = training.fit(net, (xtr, ytr), test=(xte, yte), optimizer=opt, seed=SEED,
                     progress=False, on_epoch_end=on_epoch_end, **kw)
    acc = float(h.test_acc[-1])
    path = training.export(net, out_dir / f"{name}.h5", input_shape=shape, T=kw["T"],
                           encoding=kw["encoder"], dataset="fashion-mnist-small",
                           accuracy=acc, seed=SEED, overwrite=True,
                           method=kw.get("method", "bptt"))
    print(f"{name}: test accuracy {100 * acc:.2f} % -> {path} ({path.stat().st_size} bytes, "
          f"{time.perf_counter() - t0:.1f} s)", flush=True)
    return acc, path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=NAMES, default=NAMES)
    ap.add_argument("--out-dir", type=Path, default=HERE)
    args = ap.parse_args(argv)
    for name in args.only:
        make(name, args.out_dir)


if __name__ == "__main__":
    main()
