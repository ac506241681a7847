# %%
"""03 - Rate codes against direct input: accuracy, sparsity and simulator speed.

Trains the same 784-128-10 LIF MLP twice, once on direct (analog) input and once on
rate-coded (Bernoulli spike) input, then runs the rate-coded model in the event-driven
simulator with Poisson input at several input firing rates.  Fewer input spikes mean fewer
synaptic events and a faster simulation, at some cost in accuracy.  Writes three PNG figures
and summary.json into --out.

    python examples/03_rate_vs_direct.py [--smoke]
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
    ("03_accuracy_vs_events.png", "Accuracy against synaptic events per image: direct (analog) "
                                  "input, and Poisson input at rates from a few Hz to 1 kHz."),
    ("03_time_vs_rate.png", "Simulator time and synaptic events per image against the input "
                            "firing rate: the event-driven cost follows the spikes."),
]

# %% Settings.  The Poisson inputs take one step as dt seconds: a pixel of intensity x fires at
# x * rate Hz.  The rate-coded model trains with p = x per step (1 kHz at dt = 1 ms).
ap = argparse.ArgumentParser(description="Rate codes vs direct input: accuracy, sparsity, speed.")
ap.add_argument("--out", default="runs/03_rate_vs_direct", help="output directory")
ap.add_argument("--smoke", action="store_true", help="tiny settings (a few seconds)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--T", type=int, default=8, help="time steps per image")
ap.add_argument("--dt", type=float, default=1e-3, help="step length in seconds")
args, _ = ap.parse_known_args()
rates_hz = [25, 50, 100, 200, 400, 1000]            # Poisson rate of an intensity-1 pixel
if args.smoke:
    args.epochs, args.T, rates_hz = 1, 4, [50, 200, 1000]
n_train, n_test = (400, 200) if args.smoke else (3000, 1000)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# %% Data.
train = datasets.load_fashion_mnist_small("train")
test = datasets.load_fashion_mnist_small("test")
x_train, y_train = train.float_images(flatten=True)[:n_train], train.labels[:n_train]
x_test, y_test = test.float_images(flatten=True)[:n_test], test.labels[:n_test]


# %% Train one network per input code: same architecture, same seed; only `encoder` differs
# ("direct": the image every step; "rate": pixel x spikes with probability x each step).
def train_mlp(encoder: str):
    rng = np.random.default_rng(args.seed)
    net = training.Sequential(
        training.Linear(784, 128, rng=rng),
        training.LIF(tau=2.0, threshold=1.0, reset="hard", surrogate="atan", detach_reset=True),
        training.Linear(128, 10, rng=rng))
    opt = optim.AdamW(list(net.named_parameters()), lr=2e-3, weight_decay=1e-2)
    training.fit(net, (x_train, y_train), T=args.T, epochs=args.epochs, batch_size=64,
                 optimizer=opt, seed=args.seed, encoder=encoder, progress=False)
    path = training.export(net, out / f"model_{encoder}.h5", input_shape=(784,), T=args.T,
                           encoding=encoder, overwrite=True, dataset="fashion-mnist-small")
    return eventsim.load(path)


t0 = time.perf_counter()
models = {enc: train_mlp(enc) for enc in ("direct", "rate")}
train_s = time.perf_counter() - t0
print(f"trained both in {train_s:.1f} s")


# %% A helper that simulates a whole test set and measures it.  The time is the best of five
# runs: the first run after installing compiles the kernels (cached on disk afterwards), and
# the best run shows the simulator more than the machine's other work.
def simulate(model, x):
    sim = eventsim.Simulator(model)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        rec = sim.run(x)
        times.append(time.perf_counter() - t0)
    return rec, min(times)


# %% Direct input: every pixel drives the first layer at every step (an analog, "dense" input).
rec_d, time_d = simulate(models["direct"], eventsim.inputs.direct(x_test, args.T))
direct = {"accuracy": float(np.mean(rec_d.predictions == y_test)),
          "events": rec_d.synaptic_events["total"] / n_test,
          "ms_per_image": 1e3 * time_d / n_test}
# the dense engine's cost for comparison: every weight used at every step (a MAC each)
report = eventsim.efficiency_report(models["direct"], eventsim.inputs.direct(x_test[:50], args.T))
dense_ops = report.totals["dense_ops"]
print(f"direct: accuracy {direct['accuracy']:.3f}, {direct['events']:.3g} synaptic events per "
      f"image (dense engine: {dense_ops:.3g} operations)")

# %% Poisson input at several rates into the rate-trained model.  `poisson_code` draws the
# spikes sparsely as an EventBatch (pixel, step) list; the simulator only touches the
# first-layer neurons each input spike reaches.
rows = []
for r in rates_hz:
    xs = eventsim.inputs.poisson_code(x_test, args.T, np.random.default_rng(args.seed),
                                      max_rate_hz=r, dt=args.dt)
    rec, secs = simulate(models["rate"], xs)
    in_rate = len(xs.times) / (n_test * 784 * args.T * args.dt)   # mean over pixels, Hz
    rows.append({"max_rate_hz": r, "input_rate_hz": in_rate,
                 "input_spikes": len(xs.times) / n_test,
                 "accuracy": float(np.mean(rec.predictions == y_test)),
                 "events": rec.synaptic_events["total"] / n_test,
                 "ms_per_image": 1e3 * secs / n_test})
    print(f"Poisson {r:5d} Hz: {rows[-1]['input_spikes']:7.0f} input spikes, accuracy "
          f"{rows[-1]['accuracy']:.3f}, {rows[-1]['events']:.3g} events, "
          f"{rows[-1]['ms_per_image']:.3f} ms per image")
ev = np.array([row["events"] for row in rows])
acc = np.array([row["accuracy"] for row in rows])
rate_in = np.array([row["input_rate_hz"] for row in rows])
ms = np.array([row["ms_per_image"] for row in rows])

# %% Figure 1: accuracy against the work the simulator does (synaptic events per image, log
# scale).  Each Poisson point is labelled with the rate of a white pixel and the input spikes
# per image; the star is direct input; the dotted line is what the dense engine computes
# regardless of the input.
fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
ax.plot(ev, acc, "o-", color="tab:blue", label="rate-trained model, Poisson input")
for row in rows:
    ax.annotate(f"{row['max_rate_hz']} Hz\n{row['input_spikes']:.0f} spikes",
                (row["events"], row["accuracy"]),
                textcoords="offset points", xytext=(4, -22), fontsize="x-small")
ax.plot([direct["events"]], [direct["accuracy"]], "*", markersize=14, color="tab:orange",
        markeredgecolor="k", label="direct-trained model, direct (analog) input")
ax.axvline(dense_ops, color="0.4", linestyle=":", label="dense engine: operations per image")
ax.set_xscale("log")
ax.set_xlabel("synaptic events per image (event-driven simulator)")
ax.set_ylabel(f"test accuracy ({n_test} images)")
ax.set_title(f"Accuracy against sparsity (T = {args.T} steps of {1e3 * args.dt:g} ms)")
ax.legend(loc="lower right", fontsize="small")
fig.savefig(out / "03_accuracy_vs_events.png", dpi=100)
plt.close(fig)

# %% Figure 2: simulator time (left) and synaptic events (right) per image against the mean
# input firing rate per pixel: both grow with the input spikes.  Direct input (dashed) counts
# one event per non-zero pixel and target at every step, yet takes less time than that count
# suggests: a static image is a constant drive, whose current the simulator computes once per
# image, not once per step.  (Times are short and vary with the machine's load.)
fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for a, y, ref, label in ((ax_t, ms, direct["ms_per_image"], "simulator time per image (ms)"),
                         (ax_e, ev, direct["events"], "synaptic events per image")):
    a.plot(rate_in, y, "o-", label="Poisson input")
    a.axhline(ref, color="tab:orange", linestyle="--", label="direct input")
    a.set_xscale("log")
    a.set_xlabel("mean input firing rate per pixel (Hz)")
    a.set_ylabel(label)
    a.set_ylim(bottom=0)
    a.legend(loc="upper left", fontsize="small")
ax_t.set_title("event-driven simulation time (best of 5 runs)")
ax_e.set_title("work done: one event per (spike, target)")
fig.savefig(out / "03_time_vs_rate.png", dpi=100)
plt.close(fig)

# %% Figure 3: the two input codes for one image, and how the hidden layer answers: input
# spikes (Poisson at the highest and a low rate) and the hidden layer's firing-rate histogram
# over the test set for each input.
low = rates_hz[1]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
for a, r in zip(axes[:2], (low, rates_hz[-1])):
    xs = eventsim.inputs.poisson_code(x_test[:1], args.T, np.random.default_rng(args.seed),
                                      max_rate_hz=r, dt=args.dt)
    plot.raster(xs.times, xs.indices, ax=a, T=args.T, n=784, dt=args.dt, ylabel="input pixel",
                title=f"Poisson input, {r} Hz: {len(xs.times)} spikes")
hidden = {}
for name, model, xs in (
        ("direct input", models["direct"], eventsim.inputs.direct(x_test, args.T)),
        (f"Poisson {low} Hz", models["rate"], eventsim.inputs.poisson_code(
            x_test, args.T, np.random.default_rng(args.seed), max_rate_hz=low, dt=args.dt)),
        (f"Poisson {rates_hz[-1]} Hz", models["rate"], eventsim.inputs.poisson_code(
            x_test, args.T, np.random.default_rng(args.seed), max_rate_hz=rates_hz[-1],
            dt=args.dt))):
    hidden[name] = plot.layer_rates(eventsim.Simulator(model).run(xs), dt=args.dt)[1]
plot.rate_histogram(hidden, ax=axes[2], bins=20, unit="Hz", log=True, legend_title="input",
                    title="hidden-layer firing rates")
fig.savefig(out / "03_inputs_and_hidden_rates.png", dpi=100)
plt.close(fig)

# %% Summary.
summary = {
    "train_images": n_train, "test_images": n_test, "T": args.T, "dt_s": args.dt,
    "train_seconds": round(train_s, 2),
    "direct_accuracy": direct["accuracy"], "direct_events_per_image": direct["events"],
    "direct_ms_per_image": round(direct["ms_per_image"], 4),
    "dense_ops_per_image": float(dense_ops),
    **{f"poisson_{row['max_rate_hz']}hz_{k}": (round(v, 4) if isinstance(v, float) else v)
       for row in rows for k, v in row.items() if k != "max_rate_hz"},
    "figures": "03_accuracy_vs_events.png, 03_time_vs_rate.png, 03_inputs_and_hidden_rates.png",
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
