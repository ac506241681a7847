"""05: online training (OTTT_A, OTTT_O, SAF-E, SAF-F) against BPTT, and memory against T.

Trains one MLP (WSLinear 784-128, LIF, Linear 128-10) with each method, then measures the peak
memory of one training step at T = 2..32: BPTT's grows with T, the online methods' stays flat.
Accuracies are those of a one-minute run (4 epochs on 5000 images).  Writes
``memory_vs_T.png``, ``training_curves.png`` and ``summary.json``.

    python examples/05_online_training.py [--smoke]
"""
# %%
# Settings: one-minute defaults; --smoke shrinks everything to a few seconds.
from __future__ import annotations

import argparse
import gc
import json
import math
import time
import tracemalloc
from pathlib import Path

import matplotlib
import numpy as np

import training
from eventsim import plot
from training import datasets, encoding, losses, online, optim

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GALLERY = [
    ("memory_vs_T.png",
     "Peak memory of one training step against the number of time steps T: BPTT grows "
     "linearly, the online methods (OTTT, SAF) stay flat."),
    ("training_curves.png",
     "Test accuracy per epoch of BPTT and the four online methods on the same MLP "
     "(one-minute runs)."),
]

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--out", default="runs/05_online_training")
ap.add_argument("--smoke", action="store_true", help="tiny settings (a few seconds)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--epochs", type=int, default=4)
ap.add_argument("--hidden", type=int, default=128)
ap.add_argument("--T", type=int, default=6, help="time steps for the accuracy runs")
ap.add_argument("--train-images", type=int, default=5000)
ap.add_argument("--memory-T", type=int, nargs="+", default=[2, 4, 8, 16, 32],
                help="the T values of the memory measurement")
ap.add_argument("--memory-batch", type=int, default=64)
args, _ = ap.parse_known_args()
if args.smoke:
    args.epochs, args.hidden, args.train_images, args.T = 2, 32, 300, 4
    args.memory_T = [2, 4, 8]
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# %%
# Data: the committed subset, flattened to [N, 784] floats in [0, 1].
train = datasets.load_fashion_mnist_small("train")
test = datasets.load_fashion_mnist_small("test")
x_train = train.float_images(flatten=True)[:args.train_images]
y_train = train.labels[:args.train_images]
x_test, y_test = test.float_images(flatten=True), test.labels

# %%
# The network every method trains.  The online methods need a subtract reset, no BatchNorm
# (weight-standardised layers instead: WSLinear) and one decay for all layers; Scale(2.74)
# (the OTTT authors' constant) makes the hidden layer fire at initialisation.  BPTT trains
# the same network with the same objective, the per-step cross-entropy sum_t CE(o_t, y) / T.
METHODS = ["bptt", "ottt_a", "ottt_o", "saf_e", "saf_f"]
LABELS = {"bptt": "BPTT", "ottt_a": "OTTT_A", "ottt_o": "OTTT_O", "saf_e": "SAF-E", "saf_f": "SAF-F"}


def build(seed: int):
    rng = np.random.default_rng(seed)
    return training.Sequential(
        training.WSLinear(784, args.hidden, rng=rng), training.Scale(2.74),
        training.LIF(beta=0.5, threshold=1.0, reset="subtract", surrogate="sigmoid"),
        training.Linear(args.hidden, 10, rng=rng))


def method_options(method: str) -> dict:
    """`fit` arguments: BPTT's loss, or the online method."""
    return dict(loss="per_step_ce") if method == "bptt" else dict(method=method)


# %%
# Accuracy: each method trains from the same initialisation and data order.  OTTT_O and
# SAF-E take an optimiser step after every time step (T steps per batch), the others one per
# batch.
histories, seconds = {}, {}
for method in METHODS:
    net = build(args.seed)
    opt = optim.Adam(list(net.named_parameters()), lr=1e-3)
    sched = optim.CosineSchedule(opt, total_steps=args.epochs * math.ceil(len(y_train) / 64))
    t0 = time.perf_counter()
    histories[method] = training.fit(net, (x_train, y_train), test=(x_test, y_test), T=args.T,
                                     epochs=args.epochs, batch_size=64, optimizer=opt,
                                     schedule=sched, seed=args.seed, progress=False,
                                     **method_options(method))
    seconds[method] = time.perf_counter() - t0
    print(f"{LABELS[method]:7s} test acc {histories[method].test_acc[-1]:.3f}  {seconds[method]:.1f} s")


# %%
# Memory: the peak of the arrays one training step allocates (tracemalloc traces NumPy's
# allocations; weights, optimiser moments and the input, allocated before, do not count),
# measured after one warm-up step, as benchmarks/bench_online.py does (it runs each case in
# its own process; here they share one, which is enough to see the trend).
def one_step(method: str, net, opt, images, labels, T: int) -> None:
    """One training step of ``method`` on one batch (encode, forward, backward, update)."""
    x = encoding.direct(images, T)
    if method == "bptt":
        opt.zero_grad()
        _, grad = losses.per_step_cross_entropy(net.forward(x), labels)
        net.backward(grad, need_input_grad=False)
        opt.step()
    elif method in online.TRAIN_METHODS:        # ottt_o, saf_e: an update per time step
        online.train_batch(net, x, labels, opt, method=method)
    else:                                       # ottt_a, saf_f: gradients, then one update
        online.gradients(net, x, labels, method=method)
        opt.step()


def step_peak_mib(method: str, T: int) -> float:
    net = build(args.seed)
    net.train()
    opt = optim.Adam(list(net.named_parameters()), lr=1e-3)
    images, labels = x_train[:args.memory_batch], y_train[:args.memory_batch]
    one_step(method, net, opt, images, labels, T)          # warm-up
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    one_step(method, net, opt, images, labels, T)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


memory = {m: [step_peak_mib(m, T) for T in args.memory_T] for m in METHODS}
for m in METHODS:
    print(f"{LABELS[m]:7s} peak MiB per step at T = {args.memory_T}: "
          + ", ".join(f"{v:.2f}" for v in memory[m]))

# %%
# Figure 1: memory against T.  Look for: BPTT's line rising in proportion to T (it stores
# each step's activations for backward), the online methods' lines flat.
fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=100)
markers = {"ottt_a": ("^", 9), "ottt_o": ("v", 6), "saf_e": ("s", 8), "saf_f": ("D", 5)}
for m in METHODS:     # OTTT_A and OTTT_O can coincide: open markers of two sizes show both
    style = (dict(color="k", linewidth=2.2, marker="o") if m == "bptt"
             else dict(marker=markers[m][0], markersize=markers[m][1], markerfacecolor="none",
                       linestyle="--"))
    ax.plot(args.memory_T, memory[m], label=LABELS[m], **style)
ax.set_xticks(args.memory_T, [str(T) for T in args.memory_T])
ax.set_xlabel("time steps T")
ax.set_ylabel("peak memory of one training step (MiB)")
ax.set_ylim(bottom=0)
ax.set_title(f"MLP 784-{args.hidden}-10, batch {args.memory_batch} (tracemalloc)")
ax.legend(fontsize="small")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(out / "memory_vs_T.png")
plt.close(fig)

# %%
# Figure 2: test accuracy per epoch (dense engine, uniform decoder, 1000 test images) for
# every method, and the time of each run's last epoch (the first one also loads or compiles
# the Numba kernels).  Look for: the online methods reaching BPTT's
# accuracy on this small net.
fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100, gridspec_kw={"width_ratios": [3, 2]})
plot.training_curves({f"{LABELS[m]} test acc": histories[m].test_acc for m in METHODS},
                     ax=axes[0], title=f"T = {args.T}, {len(y_train)} training images")
pos = np.arange(len(METHODS))
axes[1].bar(pos, [histories[m].seconds[-1] for m in METHODS], 0.6, color="0.6", edgecolor="k")
axes[1].set_xticks(pos, [LABELS[m] for m in METHODS])
axes[1].set_ylabel("time of the last epoch (s, wall clock)")
axes[1].set_title(f"one epoch on {len(y_train)} images, batch 64")
fig.tight_layout()
fig.savefig(out / "training_curves.png")
plt.close(fig)

# %%
# Summary: one flat dict, also written to summary.json.
summary = {"epochs": args.epochs, "hidden": args.hidden, "T": args.T,
           "train_images": int(len(y_train)), "memory_T": ", ".join(map(str, args.memory_T)),
           "memory_batch": args.memory_batch, "figures": "memory_vs_T.png, training_curves.png"}
for m in METHODS:
    summary[f"{m}_test_acc"] = round(float(histories[m].test_acc[-1]), 4)
    summary[f"{m}_train_seconds"] = round(seconds[m], 1)
    summary[f"{m}_last_epoch_seconds"] = round(float(histories[m].seconds[-1]), 2)
    summary[f"{m}_peak_mib_T{args.memory_T[0]}"] = round(memory[m][0], 3)
    summary[f"{m}_peak_mib_T{args.memory_T[-1]}"] = round(memory[m][-1], 3)
    summary[f"{m}_peak_ratio_last_over_first"] = round(memory[m][-1] / memory[m][0], 2)
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
