# %%
"""01 - Train an MLP and run it event by event.

Trains a 784-128-10 LIF network on the committed Fashion-MNIST subset with the dense engine,
exports it, runs the test images spike by spike in the event-driven simulator and checks that
both engines agree; then draws one image's spike raster, membrane traces (threshold, reset and
spikes marked) and readout with the class names.  Writes model.h5, three PNG figures and
summary.json into --out.

    python examples/01_mlp_event_by_event.py [--smoke]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import eventsim
import training
from eventsim import plot
from training import datasets, optim

GALLERY = [
    ("01_raster_membrane.png", "An MLP run event by event: the hidden layer's spikes for one test "
                               "image, and membrane traces with threshold, reset and spikes."),
    ("01_readout.png", "The readout of the same image, per step and decoded, with the class "
                       "names; predicted class coloured, true class starred."),
]

# %% Settings: every choice is a command-line option; --smoke makes everything tiny.
ap = argparse.ArgumentParser(description="Train an MLP and run it event by event.")
ap.add_argument("--out", default="runs/01_mlp_event_by_event", help="output directory")
ap.add_argument("--smoke", action="store_true", help="tiny settings (a few seconds)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--T", type=int, default=8, help="time steps per image")
ap.add_argument("--hidden", type=int, default=128, help="hidden LIF neurons")
args, _ = ap.parse_known_args()   # in a notebook the kernel's own argv is ignored
if args.smoke:
    args.epochs, args.T = 1, 6
n_train, n_test = (1000, 200) if args.smoke else (5000, 1000)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# %% Data: the committed subset (5000 training and 1000 test images, 28x28 in [0, 1]),
# flattened to 784 inputs.  Direct (analog) input: the image is the input current at every step.
train = datasets.load_fashion_mnist_small("train")
test = datasets.load_fashion_mnist_small("test")
x_train, y_train = train.float_images(flatten=True)[:n_train], train.labels[:n_train]
x_test, y_test = test.float_images(flatten=True)[:n_test], test.labels[:n_test]

# %% Train with the dense engine (BPTT, arctan surrogate): 784 -> 128 LIF -> 10 readout.
rng = np.random.default_rng(args.seed)
net = training.Sequential(
    training.Linear(784, args.hidden, rng=rng),
    training.LIF(tau=2.0, threshold=1.0, reset="hard", surrogate="atan", detach_reset=True),
    training.Linear(args.hidden, 10, rng=rng))
opt = optim.AdamW(list(net.named_parameters()), lr=2e-3, weight_decay=1e-2)
t0 = time.perf_counter()
history = training.fit(net, (x_train, y_train), test=(x_test, y_test), T=args.T,
                       epochs=args.epochs, batch_size=64, optimizer=opt, seed=args.seed,
                       progress=False)
train_s = time.perf_counter() - t0
print(f"trained {args.epochs} epoch(s) in {train_s:.1f} s, test accuracy "
      f"{history.test_acc[-1]:.3f}")

# %% Export: one versioned HDF5 file holding the weights, the neuron parameters and the choices
# made (the dataset name lets the plots name the classes).
model_path = training.export(net, out / "model.h5", input_shape=(784,), T=args.T,
                             encoding="direct", overwrite=True, dataset="fashion-mnist-small",
                             seed=args.seed)
model = eventsim.load(model_path)

# %% Simulate event by event and compare with the dense engine on the same model file.
# The simulator only touches neurons that receive a spike; its readout must equal the dense
# engine's up to float round-off (the order of the sums differs), so the predictions agree.
x = eventsim.inputs.direct(x_test, args.T)          # [T, B, 784], the same image every step
sim = eventsim.Simulator(model)
t0 = time.perf_counter()
rec = sim.run(x)
sim_s = time.perf_counter() - t0
dense = training.to_network(model.model)
y_dense = dense.forward(x)                           # [T, B, 10] per-step readout
dense_pred = training.losses.decode(y_dense).argmax(axis=1)
agreement = float(np.mean(rec.predictions == dense_pred))
max_diff = float(np.max(np.abs(rec.readout - y_dense)))
print(f"eventsim accuracy {np.mean(rec.predictions == y_test):.3f}, dense "
      f"{np.mean(dense_pred == y_test):.3f}, predictions agree on {100 * agreement:.1f} %, "
      f"largest readout difference {max_diff:.2e}; {rec.synaptic_events['total'] / n_test:.0f} "
      f"synaptic events per image")

# %% One image up close: record the membrane potential of every hidden neuron for it, and keep
# six that fire on some steps but not on all (pick_neurons; silent ones nearest threshold
# next), so the traces show threshold crossings and resets.
sample = 0
layer = model.model.layers[1]                        # the LIF layer (model layer 1)
one = eventsim.Simulator(model, record_membrane={1: "all"}).run(x[:, sample:sample + 1])
u_all = one.membrane[1][:, 0, :]                     # [T, hidden], before reset
counts = plot.spike_counts(one.spikes[1], args.hidden)
chosen = plot.pick_neurons(counts, args.T, k=6, peak=u_all.max(axis=0))
spk = one.spikes[1]

# %% Figure 1: the raster (one dash per spike) and the membrane traces; red dashed line the
# threshold, dotted grey the reset potential, a tick where the neuron fires.
fig, (ax_r, ax_m) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, layout="constrained")
plot.raster(spk.t, spk.neuron, ax=ax_r, T=args.T, n=args.hidden,
            title=f"hidden layer: {len(spk.t)} spikes of {args.hidden} neurons for one test image")
plot.membrane(u_all[:, chosen], threshold=float(layer.theta), reset=layer.v_reset,
              ax=ax_m, labels=[f"neuron {j}" for j in chosen],
              title="membrane potential (before reset) of 6 of them")
ax_r.set_xlabel("")
fig.savefig(out / "01_raster_membrane.png", dpi=100)
plt.close(fig)

# %% Figure 2: the readout with class names.  Left: per step (the predicted class bold, the
# true class dashed); right: decoded (time mean), which is what the prediction is the argmax of.
names = plot.CLASS_NAMES["fashion-mnist"]
true = int(y_test[sample])
fig, (ax_l, ax_b) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained",
                                 width_ratios=[1.25, 1])
plot.readout(rec.readout[:, sample], ax=ax_l, class_names=names,
             predicted=int(rec.predictions[sample]), true_label=true)
plot.readout(rec.readout[:, sample].mean(axis=0), ax=ax_b, class_names=names, true_label=true)
fig.savefig(out / "01_readout.png", dpi=100)
plt.close(fig)

# %% Figure 3: every test image's decoded scores, simulator against dense engine: the points lie
# on the diagonal (the engines compute the same thing).
fig, ax = plt.subplots(figsize=(4.8, 4.5), layout="constrained")
d_sim, d_dense = rec.readout.mean(axis=0).ravel(), y_dense.mean(axis=0).ravel()
ax.plot(d_dense, d_sim, ".", markersize=2, alpha=0.5)
lim = [min(d_sim.min(), d_dense.min()), max(d_sim.max(), d_dense.max())]
ax.plot(lim, lim, "k--", linewidth=0.8, label="equal")
ax.set_xlabel("dense engine: decoded score")
ax.set_ylabel("eventsim: decoded score")
ax.set_title(f"{n_test} images x 10 classes\nlargest difference {max_diff:.1e}")
ax.legend(loc="upper left")
fig.savefig(out / "01_eventsim_vs_dense.png", dpi=100)
plt.close(fig)

# %% Summary: numbers and file names, as JSON.
summary = {
    "train_images": n_train, "test_images": n_test, "T": args.T, "epochs": args.epochs,
    "train_seconds": round(train_s, 2),
    "dense_test_accuracy": float(np.mean(dense_pred == y_test)),
    "eventsim_test_accuracy": float(np.mean(rec.predictions == y_test)),
    "prediction_agreement": agreement,
    "readout_max_abs_diff": max_diff,
    "simulation_seconds": round(sim_s, 3),
    "synaptic_events_per_image": float(rec.synaptic_events["total"] / n_test),
    "hidden_spikes_per_image": float(len(rec.spikes[1].t) / n_test),
    "figures": "01_raster_membrane.png, 01_readout.png, 01_eventsim_vs_dense.png",
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
