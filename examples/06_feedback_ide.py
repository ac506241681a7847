"""06: a feedback network (FeedbackMLP) trained by IDE, implicit differentiation at equilibrium.

Trains it on the committed subset, shows its average firing rate converging to the fixed
point as T grows, exports it and simulates it event by event against the dense engine.  The
accuracy is that of a one-minute run.  Writes ``training_curves.png``, ``equilibrium.png``,
``model.h5`` and ``summary.json``.

    python examples/06_feedback_ide.py [--smoke]
"""
# %%
# Settings: one-minute defaults; --smoke shrinks everything to a few seconds.
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import numpy as np

import eventsim
import training
from eventsim import plot
from training import datasets, encoding, losses, optim

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GALLERY = [
    ("equilibrium.png",
     "A feedback network's average firing rate converging to its fixed point a* as the "
     "number of steps grows, and its hidden layer's spikes in the event simulator."),
    ("training_curves.png", "IDE training of the feedback MLP: loss and accuracy per epoch."),
]

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--out", default="runs/06_feedback_ide")
ap.add_argument("--smoke", action="store_true", help="tiny settings (a few seconds)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--epochs", type=int, default=8)
ap.add_argument("--hidden", type=int, default=256)
ap.add_argument("--T", type=int, default=5, help="time steps in training and in the simulator")
ap.add_argument("--train-images", type=int, default=5000)
ap.add_argument("--long-T", type=int, default=64, help="longest run of the convergence plot")
ap.add_argument("--batch-size", type=int, default=128)
args, _ = ap.parse_known_args()
if args.smoke:
    args.epochs, args.hidden, args.train_images, args.long_T, args.batch_size = 2, 64, 500, 32, 32
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
# Train by IDE.  Each batch: simulate T steps (one step of state kept), take the average
# rate a, then solve the adjoint equation (I - J^T) g = dL/da by Broyden's method and read
# the weight gradients off it.  The network's feedback weight is spectral-normalised, which
# keeps the fixed-point map a contraction.  SGD as in the IDE paper.
net = training.FeedbackMLP(784, args.hidden, 10, neuron="IF", theta=2.0, rng=args.seed)
opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
adjoint_iters = []


def note_adjoint(epoch, history):
    """After every epoch: the last batch's adjoint solve (iterations, residual)."""
    adjoint_iters.append(int(net.last_adjoint[0]))


t0 = time.perf_counter()
history = training.fit(net, (x_train, y_train), test=(x_test, y_test), T=args.T,
                       epochs=args.epochs, batch_size=args.batch_size, optimizer=opt, method="ide",
                       ide_solver="broyden", ide_tol=1e-6, seed=args.seed, progress=False,
                       on_epoch_end=note_adjoint)
train_s = time.perf_counter() - t0
print(f"IDE: test accuracy {history.test_acc[-1]:.3f} after {args.epochs} epochs, {train_s:.1f} s")

# %%
# Figure 1: training curves (train loss on the left axis, accuracies on the right).
ax = plot.training_curves({"train loss": history.train_loss, "train acc": history.train_acc,
                           "test acc": history.test_acc},
                          title=f"F-MLP 784-{args.hidden}-10 (IF), IDE, T = {args.T}")
ax.get_legend().set_loc("center right")      # clear of the curves' ends
ax.figure.savefig(out / "training_curves.png", dpi=100)
plt.close(ax.figure)

# %%
# The equilibrium.  For a static input x the fixed point is
#   a* = clamp((W a* + F x + b) / theta, 0, 1)
# (net.equilibrium solves it by iteration).  The simulated running rate
# a_T = (1/T) sum_{t<T} s_t approaches it; net.forward also reports how far a_T is from
# being a fixed point, max |a_T - f(a_T)| (net.last_residual).
net.eval()
images = x_test[:200]
a_star, iterations, _ = net.equilibrium(encoding.direct(images, 1))
spikes = net.simulate(encoding.direct(images, args.long_T))              # [T, B, hidden]
steps = np.arange(1, args.long_T + 1)
running = np.cumsum(spikes, axis=0, dtype=np.float64) / steps[:, None, None]
distance = np.abs(running - a_star[None]).mean(axis=(1, 2))              # mean |a_T - a*|
T_points = [T for T in (1, 2, 4, 8, 16, 32, 64, 128) if T <= args.long_T]
residual = []
for T in T_points:
    net.forward(encoding.direct(images, T))
    residual.append(net.last_residual)
print(f"fixed point after {iterations} iterations; mean |a_T - a*| at T = {args.long_T}: "
      f"{distance[-1]:.4f}")

# %%
# Export and simulate event by event: the model file holds input Dense -> spiking layer with
# a delay-1 connection to itself -> readout, which the simulator runs on its time-major
# schedule.  The dense engine's readout is net.forward's, decoded with the same weights.
model_path = training.export(net, out / "model.h5", input_shape=(784,), T=args.T,
                             overwrite=True, dataset="fashion-mnist-small", method="ide",
                             accuracy=history.test_acc[-1], seed=args.seed)
model = eventsim.load(model_path)
x = encoding.direct(x_test, args.T)
rec = eventsim.Simulator(model).run(x)
y_dense = net.forward(x)
dense_pred = losses.decode(y_dense, net.decoder_weights(args.T)).argmax(axis=1)
agreement = float(np.mean(rec.predictions == dense_pred))
readout_diff = float(np.max(np.abs(rec.readout - y_dense)))
print(f"simulator accuracy {np.mean(rec.predictions == y_test):.3f}, same decision as the dense "
      f"engine on {100 * agreement:.1f} % of {len(y_test)} images, readout max |diff| {readout_diff:.2g}")

# %%
# Figure 2.  Left: the running rate a_T of six hidden neurons of one test image (solid)
# against their fixed-point rates a* (dashed).  Middle: mean |a_T - a*| over 200 images and
# all neurons, and the fixed-point residual max |a_T - f(a_T)|, against T (log-log; the IF
# neuron's running rate is within about 1/T of its limit).  Right: the hidden layer's spikes
# for that image in the event simulator, at the training T.
fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), dpi=100)
order = np.argsort(np.abs(a_star[0] - 0.5))[:6]            # neurons with a* nearest 1/2
for j, n in enumerate(order):
    axes[0].plot(steps, running[:, 0, n], color=f"C{j}", label=f"neuron {n}")
    axes[0].axhline(a_star[0, n], color=f"C{j}", linestyle="--", linewidth=1)
axes[0].set_xlabel("time steps T")
axes[0].set_ylabel("running rate a_T (spikes/step)")
axes[0].set_ylim(-0.02, 1.02)
axes[0].set_title("running rate vs fixed point (dashed)")
axes[0].legend(fontsize="x-small", ncol=2, loc="upper right")
axes[1].loglog(steps, distance, color="k", label="mean |a_T - a*|")
axes[1].loglog(T_points, residual, marker="o", color="C3", label="max |a_T - f(a_T)|")
axes[1].loglog(steps, 1.0 / steps, color="0.6", linestyle=":", label="1/T")
axes[1].set_xlabel("time steps T")
axes[1].set_ylabel("distance (spikes/step)")
axes[1].set_title("convergence to the equilibrium")
axes[1].legend(fontsize="small")
hidden = min(rec.spikes)
train0 = rec.spikes[hidden]
keep = train0.sample == 0
plot.raster(train0.t[keep], train0.neuron[keep], ax=axes[2], T=args.T, n=train0.n_neurons,
            ylabel="hidden neuron")
axes[2].set_title(f"simulator: hidden spikes, test image 0 (T = {args.T})")
fig.tight_layout()
fig.savefig(out / "equilibrium.png")
plt.close(fig)

# %%
# Summary: one flat dict, also written to summary.json.
summary = {
    "epochs": args.epochs, "hidden": args.hidden, "T": args.T, "train_images": int(len(y_train)),
    "train_seconds": round(train_s, 1),
    "test_accuracy": round(float(history.test_acc[-1]), 4),
    "eventsim_test_accuracy": round(float(np.mean(rec.predictions == y_test)), 4),
    "prediction_agreement": agreement,
    "readout_max_abs_diff": readout_diff,
    "fixed_point_iterations": int(iterations),
    "adjoint_iterations_last_batch": adjoint_iters[-1],
    "mean_distance_to_fixed_point_at_long_T": round(float(distance[-1]), 5),
    "residual_at_T": round(float(residual[T_points.index(min(T_points, key=lambda T: abs(T - args.T)))]), 4),
    "long_T": args.long_T,
    "figures": "training_curves.png, equilibrium.png",
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
