"""04: the seed methods side by side: LIF, KLIF, ternary spikes, MSG and TWO on one MLP.

Trains the MLP 784-256-10 (T = 4) five times on the committed subset, changing one thing each
time, exports each model and runs it in the event simulator.  Accuracies are those of a
one-minute run.  Writes ``seed_methods_bars.png`` (accuracy, synaptic events, firing rates),
``what_methods_do.png`` (learned k, amplitude, TWO time weights) and ``summary.json``.

    python examples/04_seed_methods.py [--smoke]
"""
# %%
# Settings: one-minute defaults; --smoke shrinks everything to a few seconds.
from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np

import eventsim
import training
from eventsim import plot
from training import datasets, optim

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GALLERY = [
    ("seed_methods_bars.png",
     "Seed methods on one MLP: test accuracy, synaptic events per sample in the event "
     "simulator, and the hidden layer's firing rates (one-minute runs)."),
    ("what_methods_do.png",
     "What the methods learn: KLIF's membrane scaling k and the ternary spike amplitude "
     "over the epochs, and TWO's decoder weight per time step."),
]

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--out", default="runs/04_seed_methods")
ap.add_argument("--smoke", action="store_true", help="tiny settings (a few seconds)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--epochs", type=int, default=6)
ap.add_argument("--hidden", type=int, default=256)
ap.add_argument("--T", type=int, default=4)
ap.add_argument("--train-images", type=int, default=5000)
ap.add_argument("--sim-images", type=int, default=1000, help="test images run in the simulator")
ap.add_argument("--batch-size", type=int, default=64)
args, _ = ap.parse_known_args()
if args.smoke:
    args.epochs, args.hidden, args.train_images, args.sim_images, args.batch_size = 3, 32, 400, 200, 32
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
# The five variants.  Each is a neuron for the hidden layer plus extra arguments for `fit`:
# - LIF: tau 2, atan surrogate, detached reset (the baseline);
# - KLIF: the same leak with a learnable scaling k of the membrane (F = ReLU(k H));
# - ternary: spikes in {-1, 0, +1} times a learned amplitude a (folded into the readout
#   weights at export, so the simulator sees plain +-1 spikes);
# - MSG: each surrogate derivative kept with probability 1 - p in backward;
# - TWO: the readout is decoded with learned weights per time step instead of the mean.
LIF_KW = dict(tau=2.0, surrogate="atan", detach_reset=True)
TWO_WARMUP = max(0, args.epochs - 3)   # epochs 0..TWO_WARMUP (from 0) keep uniform weights


def hidden_neuron(method: str, rng):
    """The spiking layer of ``method``."""
    if method == "KLIF":
        return training.KLIF(tau=2.0, k=1.0, surrogate="sigmoid", learn_k=True)
    if method == "ternary":
        return training.LIF(**LIF_KW, spikes="ternary", amplitude=1.0, learn_amplitude=True)
    if method == "MSG":
        return training.LIF(**LIF_KW, msg_p=0.5, rng=rng)
    return training.LIF(**LIF_KW)


def fit_options(method: str) -> dict:
    return dict(decoder="two", two_warmup=TWO_WARMUP) if method == "TWO" else {}


METHODS = ["LIF", "KLIF", "ternary", "MSG", "TWO"]


# %%
# Train one variant; after every epoch note the learned scalar (k or amplitude).
def learned_scalar(net, name: str):
    """The value of the parameter ``name`` (k of KLIF, amplitude of ternary), or None."""
    for pname, p in net.named_parameters():
        if pname.split(".")[-1] == name:
            return float(np.asarray(p.data).ravel()[0])
    return None


def train_one(method: str):
    rng = np.random.default_rng(args.seed)
    net = training.Sequential(training.Linear(784, args.hidden, rng=rng), hidden_neuron(method, rng),
                              training.Linear(args.hidden, 10, rng=rng))
    opt = optim.Adam(list(net.named_parameters()), lr=2e-3)
    sched = optim.CosineSchedule(opt, total_steps=args.epochs * math.ceil(len(y_train) / args.batch_size))
    name = {"KLIF": "k", "ternary": "amplitude"}.get(method)
    track = [learned_scalar(net, name)] if name else []
    hook = (lambda epoch, h: track.append(learned_scalar(net, name))) if name else None
    t0 = time.perf_counter()
    history = training.fit(net, (x_train, y_train), test=(x_test, y_test), T=args.T,
                           epochs=args.epochs, batch_size=args.batch_size, optimizer=opt, schedule=sched,
                           label_smoothing=0.1, seed=args.seed, progress=False,
                           on_epoch_end=hook, **fit_options(method))
    return net, history, track, time.perf_counter() - t0


# %%
# Export each trained net and run the first --sim-images test images event by event: the
# simulator's accuracy, the synaptic events per sample that the hidden spikes deliver to the
# readout (the input projection's events, one per non-zero pixel and synapse at every step,
# are the same for every method) and the hidden neurons' firing rates (spikes per neuron per
# step; a ternary -1 spike counts as a spike).
def simulate(net):
    with tempfile.TemporaryDirectory() as tmp:
        path = training.export(net, Path(tmp) / "model.h5", input_shape=(784,), T=args.T,
                               dataset="fashion-mnist-small", seed=args.seed)
        model = eventsim.load(path)
    x = training.encoding.direct(x_test[:args.sim_images], args.T)
    rec = eventsim.Simulator(model).run(x)
    layer = min(rec.spikes)                      # the hidden spiking layer's index
    hidden = rec.spikes[layer]
    rates = np.bincount(hidden.neuron, minlength=hidden.n_neurons) / (args.T * args.sim_images)
    spike_events = rec.synaptic_events[f"layers[{layer + 1}]"]   # hidden -> readout
    return rec, rates, spike_events


results = {}
for method in METHODS:
    net, history, track, seconds = train_one(method)
    rec, rates, spike_events = simulate(net)
    results[method] = dict(
        history=history, track=track, rates=rates, seconds=seconds,
        sim_acc=float(np.mean(rec.predictions == y_test[:args.sim_images])),
        events=spike_events / args.sim_images,
        input_events=(rec.synaptic_events["total"] - spike_events) / args.sim_images,
        time_weights=None if net.time_weights is None else np.asarray(net.time_weights, float))
    print(f"{method:8s} test acc {history.test_acc[-1]:.3f}  simulator {results[method]['sim_acc']:.3f}  "
          f"{results[method]['events']:.0f} spike events/sample  {seconds:.1f} s")

# %%
# Figure 1: accuracy (dense engine on the 1000 test images, simulator on --sim-images),
# synaptic events per sample from hidden spikes in the simulator, and the per-neuron firing
# rates of the hidden layer (box: quartiles, dot: mean).  Look for: which change buys accuracy, and at what cost
# in events (ternary spikes fire on both polarities; MSG and TWO leave the forward pass as is).
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), dpi=100)
pos = np.arange(len(METHODS))
dense_acc = [results[m]["history"].test_acc[-1] for m in METHODS]
sim_acc = [results[m]["sim_acc"] for m in METHODS]
for shift, acc, label, color in ((-0.2, dense_acc, f"dense engine, {len(y_test)} images", "C0"),
                                 (0.2, sim_acc, f"event simulator, first {args.sim_images}", "C1")):
    bars = axes[0].bar(pos + shift, acc, 0.4, label=label, color=color)
    axes[0].bar_label(bars, fmt="%.3f", rotation=90, padding=2, fontsize=7)
lo = min(dense_acc + sim_acc)
axes[0].set_ylim(max(0.0, lo - 0.1), max(dense_acc + sim_acc) + 0.12)
axes[0].set_xticks(pos, METHODS)
axes[0].set_ylabel("test accuracy")
axes[0].legend(loc="upper left", fontsize="small")
axes[0].set_title("accuracy")
axes[1].bar(pos, [results[m]["events"] for m in METHODS], 0.6, color="0.6", edgecolor="k")
axes[1].set_xticks(pos, METHODS)
axes[1].set_ylabel("synaptic events per sample")
axes[1].set_title("hidden spikes -> readout (simulator)")
plot.firing_rates({m: results[m]["rates"] for m in METHODS}, ax=axes[2])
axes[2].set_xlabel("method (hidden layer)")
axes[2].set_title("hidden firing rates")
fig.suptitle(f"MLP 784-{args.hidden}-10, T = {args.T}, {args.epochs} epochs on "
             f"{len(y_train)} images")
fig.tight_layout()
fig.savefig(out / "seed_methods_bars.png")
plt.close(fig)

# %%
# Figure 2: what the methods learn.  Left: KLIF's k and the ternary amplitude a after each
# epoch (epoch 0 = initial value); KLIF's exported decay is k (1 - 1/tau).  Right: TWO's
# decoder weight per time step after training (ones until the warm-up ends; steps that
# classify better on the training set get more weight).
fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
for method, label, color in (("KLIF", "KLIF k", "C2"), ("ternary", "ternary amplitude a", "C3")):
    track = results[method]["track"]
    axes[0].plot(np.arange(len(track)), track, marker="o", color=color, label=label)
axes[0].set_xlabel("epoch")
axes[0].set_ylabel("learned value")
axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
axes[0].legend(fontsize="small")
axes[0].set_title("learned scalars during training")
tw = results["TWO"]["time_weights"]
tw = np.ones(args.T) if tw is None else tw
bars = axes[1].bar(np.arange(len(tw)), tw, 0.6, color="C4", edgecolor="k")
axes[1].bar_label(bars, fmt="%.3f", padding=2, fontsize=8)
axes[1].axhline(1.0, color="0.4", linestyle="--", linewidth=1, label="mean decoder (all 1)")
spread = max(0.05, float(np.abs(tw - 1).max()) * 1.5)
axes[1].set_ylim(1 - spread, 1 + spread)     # zoomed: the weights stay near 1 on this task
axes[1].set_xlabel("time step")
axes[1].set_ylabel("decoder weight (zoomed around 1)")
axes[1].set_xticks(np.arange(len(tw)))
axes[1].legend(fontsize="small", loc="lower right")
first = TWO_WARMUP + 2                       # the first update, counting epochs from 1
axes[1].set_title(f"TWO time weights (updated after epoch{'s' if first < args.epochs else ''} "
                  f"{first}{'-' + str(args.epochs) if first < args.epochs else ''})")
fig.tight_layout()
fig.savefig(out / "what_methods_do.png")
plt.close(fig)

# %%
# Summary: one flat dict, also written to summary.json.
summary = {"epochs": args.epochs, "hidden": args.hidden, "T": args.T,
           "train_images": int(len(y_train)), "sim_images": args.sim_images,
           "figures": "seed_methods_bars.png, what_methods_do.png"}
for m in METHODS:
    r = results[m]
    summary[f"{m}_test_acc"] = round(float(r["history"].test_acc[-1]), 4)
    summary[f"{m}_sim_acc"] = round(r["sim_acc"], 4)
    summary[f"{m}_spike_events_per_sample"] = round(float(r["events"]), 1)
    summary[f"{m}_input_events_per_sample"] = round(float(r["input_events"]), 1)
    summary[f"{m}_firing_rate"] = round(float(r["rates"].mean()), 4)
    summary[f"{m}_train_seconds"] = round(r["seconds"], 1)
summary["KLIF_final_k"] = round(results["KLIF"]["track"][-1], 4)
summary["ternary_final_amplitude"] = round(results["ternary"]["track"][-1], 4)
summary["TWO_time_weights"] = ", ".join(f"{v:.3f}" for v in tw)
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
