# %%
"""02 - A convolutional SNN: spike-count maps, rasters, membranes and rate histograms.

Trains a small conv net (Conv2d, BatchNorm, LIF, max pooling; two conv blocks) on the committed
Fashion-MNIST subset, exports it and simulates it event by event.  Then looks inside: where
each channel fires (spike-count heat maps), the membrane potential of hundreds of neurons as
one image, a raster with per-neuron rates, and the distribution of firing rates per layer.
Writes model.h5, four PNG figures and summary.json into --out.

    python examples/02_conv_rasters_membranes.py [--smoke]
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
    ("02_conv_counts.png", "Spike counts of a conv SNN for one image: each channel of the first "
                           "conv layer as a map, the second layer as channels x positions."),
    ("02_membrane_image.png", "Membrane potential of two channels' neurons over time, white at "
                              "threshold, black dots where they spike."),
    ("02_raster_rates.png", "Raster of the second conv layer grouped by channel, with per-neuron "
                            "and population rates in Hz."),
]

# %% Settings.  dt only labels the axes: one step is taken to last dt seconds, so times read in
# ms and rates in Hz.
ap = argparse.ArgumentParser(description="A conv SNN: counts, rasters, membranes, rates.")
ap.add_argument("--out", default="runs/02_conv_rasters_membranes", help="output directory")
ap.add_argument("--smoke", action="store_true", help="tiny settings (a few seconds)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--train-images", type=int, default=2000)
ap.add_argument("--T", type=int, default=8, help="time steps per image")
ap.add_argument("--dt", type=float, default=1e-3, help="step length in seconds (axes only)")
args, _ = ap.parse_known_args()
if args.smoke:
    args.train_images, args.T = 640, 4
n_test = 200 if args.smoke else 1000
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# %% Data: images as [N, 1, 28, 28] for the convolutions.
train = datasets.load_fashion_mnist_small("train")
test = datasets.load_fashion_mnist_small("test")
x_train, y_train = train.float_images()[:args.train_images], train.labels[:args.train_images]
x_test, y_test = test.float_images()[:n_test], test.labels[:n_test]

# %% The network: two conv blocks (3x3 conv, BatchNorm, LIF, 2x2 max pooling), then a linear
# readout.  BatchNorm is folded into the conv weights on export (momentum 0.3: its running
# statistics settle within the few batches of one short epoch).  One epoch, BPTT.
rng = np.random.default_rng(args.seed)


def lif():
    return training.LIF(tau=2.0, threshold=1.0, reset="hard", surrogate="atan", detach_reset=True)


net = training.Sequential(
    training.Conv2d(1, 8, 3, padding=1, rng=rng), training.BatchNorm2d(8, momentum=0.3), lif(),
    training.MaxPool2d(2),                                   # 8 x 28 x 28 -> 8 x 14 x 14
    training.Conv2d(8, 16, 3, padding=1, rng=rng), training.BatchNorm2d(16, momentum=0.3), lif(),
    training.MaxPool2d(2),                                   # 16 x 14 x 14 -> 16 x 7 x 7
    training.Flatten(), training.Linear(16 * 7 * 7, 10, rng=rng))
opt = optim.AdamW(list(net.named_parameters()), lr=3e-3, weight_decay=1e-2)
t0 = time.perf_counter()
history = training.fit(net, (x_train, y_train), test=(x_test, y_test), T=args.T, epochs=1,
                       batch_size=64, optimizer=opt, seed=args.seed, progress=False)
train_s = time.perf_counter() - t0
print(f"trained in {train_s:.1f} s, test accuracy {history.test_acc[-1]:.3f}")

# %% Export and simulate the test images event by event.  The model's spiking layers are found
# by their record type; their feature shapes ([C, H, W]) come with the model.
path = training.export(net, out / "model.h5", input_shape=(1, 28, 28), T=args.T,
                       encoding="direct", overwrite=True, dataset="fashion-mnist-small")
model = eventsim.load(path)
spiking = [k for k, layer in enumerate(model.model.layers) if hasattr(layer, "theta")]
first, second = spiking
shapes = {k: tuple(model.model.shapes[k]) for k in spiking}
x = eventsim.inputs.direct(x_test, args.T)
t0 = time.perf_counter()
rec = eventsim.Simulator(model).run(x)
sim_s = time.perf_counter() - t0
accuracy = float(np.mean(rec.predictions == y_test))
print(f"eventsim: accuracy {accuracy:.3f}, {sim_s:.2f} s for {n_test} images, spiking layers "
      f"{ {k: shapes[k] for k in spiking} }")

# %% Figure 1: spike counts of one image.  Left: each of the first layer's 8 channels as a
# 28x28 map (the channels pick out edges and areas of the garment).  Right: the second layer
# as channels x positions, one row per channel.
sample = 0
names = plot.CLASS_NAMES["fashion-mnist"]
fig, (ax_g, ax_r) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained",
                                 width_ratios=[1, 1.5])
plot.spike_count_map(rec.spikes[first], ax=ax_g, layout="grid", sample=sample,
                     label=f"spikes in {args.T} steps",
                     title=f"layer {first} ({names[y_test[sample]]}): spikes per neuron")
plot.spike_count_map(rec.spikes[second], ax=ax_r, sample=sample, label=f"spikes in {args.T} steps",
                     title=f"layer {second}: channels x positions")
fig.savefig(out / "02_conv_counts.png", dpi=100)
plt.close(fig)

# %% Figure 2: the membrane potential of every neuron of two channels of the second layer
# (2 x 14 x 14 = 392 neurons), one row each, for the same image.  White is the threshold, red
# above, blue below; black dots mark spikes (after which a hard reset sends the row blue).
C2, H2, W2 = shapes[second]
watch = np.arange(2 * H2 * W2)                       # channels 0 and 1, in position order
one = eventsim.Simulator(model, record_membrane={second: watch}).run(x[:, sample:sample + 1])
u = one.membrane[second][:, 0, :]                    # [T, 392]
spiked = one.spikes[second].to_dense()[:, 0, watch] != 0
fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
plot.membrane_image(u, ax=ax, threshold=float(model.model.layers[second].theta), spikes=spiked,
                    dt=args.dt, neurons=watch,
                    title=f"layer {second}, channels 0-1: membrane potential of {len(watch)} neurons")
ax.axhline(H2 * W2 - 0.5, color="k", linewidth=0.8)  # the boundary between the two channels
ax.set_ylabel("neuron (channel 0 below the line, 1 above)")
fig.savefig(out / "02_membrane_image.png", dpi=100)
plt.close(fig)

# %% Figure 3: the second layer's raster for the same image, rows grouped by channel, with
# each neuron's rate (right) and the population rate per step (below), in Hz.
spk = one.spikes[second]
fig = plt.figure(figsize=(9, 5.5), layout="constrained")
plot.raster(spk.t, spk.neuron, fig=fig, T=args.T, n=C2 * H2 * W2, channels=C2, dt=args.dt,
            rate_panel=True, population_panel=True,
            title=f"layer {second}: {len(spk.t)} spikes of {C2 * H2 * W2} neurons")
fig.savefig(out / "02_raster_rates.png", dpi=100)
plt.close(fig)

# %% Figure 4: how firing rates are distributed over each layer's neurons (mean over the test
# images; shared bins).  Most neurons are silent or slow; a few fire on most steps.
rates = plot.layer_rates(rec, dt=args.dt)
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
plot.rate_histogram({f"layer {k} {'x'.join(map(str, shapes[k]))}": rates[k] for k in spiking},
                    ax=ax, bins=25, unit="Hz", log=True,
                    title=f"firing rates over {n_test} test images")
fig.savefig(out / "02_rate_histogram.png", dpi=100)
plt.close(fig)

# %% Summary.
summary = {
    "train_images": args.train_images, "test_images": n_test, "T": args.T,
    "train_seconds": round(train_s, 2), "dense_test_accuracy": float(history.test_acc[-1]),
    "eventsim_test_accuracy": accuracy, "simulation_seconds": round(sim_s, 3),
    "synaptic_events_per_image": float(rec.synaptic_events["total"] / n_test),
    **{f"mean_rate_hz_layer{k}": float(rates[k].mean()) for k in spiking},
    **{f"silent_fraction_layer{k}": float(np.mean(rates[k] == 0)) for k in spiking},
    "figures": "02_conv_counts.png, 02_membrane_image.png, 02_raster_rates.png, "
               "02_rate_histogram.png",
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
