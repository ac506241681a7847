"""10 Efficiency and energy: count what a trained SNN computes event by event (synaptic
operations per layer, accumulates vs multiply-accumulates, firing rates) against what a
clock-driven engine would compute, turn the counts into an energy estimate with the default
and a custom cost table, and trade accuracy against energy over input codes and T.

Writes into ``--out``: ``energy_per_layer.png``, ``accuracy_vs_energy.png``,
``report.json`` (the full report of the direct-input model) and ``summary.json``.

    python examples/10_efficiency_energy.py [--smoke]
"""
# %%
import argparse
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Patch
import numpy as np

import eventsim
import training
from eventsim import plot
from training import datasets, optim

GALLERY = [
    ("energy_per_layer.png",
     "Per layer of a trained MLP: synaptic operations event by event (AC or MAC) against a "
     "dense engine's operations, the energy with two cost tables, and firing rates."),
    ("accuracy_vs_energy.png",
     "Accuracy against estimated energy per image for direct (analog) and rate-coded input, "
     "simulated with 1 to 8 time steps."),
]

# %% [markdown]
# Settings. `--smoke` shrinks everything so the script runs in seconds (for the tests).
# %%
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--out", default="runs/10_efficiency_energy", help="output directory")
ap.add_argument("--smoke", action="store_true", help="tiny settings (a quick check)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--T", type=int, default=4, help="time steps used in training")
ap.add_argument("--n-eval", type=int, default=1000, help="test images counted")
args, _ = ap.parse_known_args()
n_train = 5000
if args.smoke:
    n_train, args.n_eval, args.epochs = 300, 100, 1
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
t_start = time.perf_counter()

# %% [markdown]
# ## 1. Two small networks
# The same MLP 784-256-128-10 trained twice: once fed the pixel values directly (the first
# layer multiplies each weight by a graded value: multiply-accumulates, MAC), once fed
# Bernoulli spikes with the pixel values as probabilities (a rate code: every operation
# adds a weight, an accumulate, AC).
# %%
train = datasets.load_fashion_mnist_small("train").subset(slice(0, n_train))
test = datasets.load_fashion_mnist_small("test").subset(slice(0, args.n_eval))
x_train, x_test = train.float_images(flatten=True), test.float_images(flatten=True)


def train_mlp(encoder):
    """MLP 784-256-128-10 (LIF, tau 2) trained by BPTT; returns the exported Model."""
    rng = np.random.default_rng(args.seed)
    lif = dict(tau=2.0, surrogate="atan", detach_reset=True)
    net = training.Sequential(
        training.Linear(784, 256, rng=rng), training.LIF(**lif),
        training.Linear(256, 128, rng=rng), training.LIF(**lif),
        training.Linear(128, 10, rng=rng))
    opt = optim.AdamW(list(net.named_parameters()), lr=2e-3, weight_decay=1e-2)
    sched = optim.CosineSchedule(opt, total_steps=args.epochs * math.ceil(n_train / 64))
    training.fit(net, (x_train, train.labels), T=args.T, epochs=args.epochs, batch_size=64,
                 optimizer=opt, schedule=sched, encoder=encoder, seed=args.seed, progress=False)
    return training.to_model(net, input_shape=(784,), T=args.T, encoding=encoder)


t0 = time.perf_counter()
models = {"direct": train_mlp("direct"), "rate": train_mlp("rate")}
train_s = time.perf_counter() - t0


def inputs(encoding, T):
    """The test images as the model's input over T steps: ``[T, B, 784]``."""
    if encoding == "direct":
        return training.encoding.direct(x_test, T)
    return eventsim.inputs.rate_code(x_test, T, np.random.default_rng(args.seed))

# %% [markdown]
# ## 2. The report
# `efficiency_report(model, x)` simulates `x` and counts, per projection (the weight layers,
# labelled by their index in the model file), the synaptic operations per image: one per
# (non-zero source value, synapse) pair delivered, as AC when the source values are spikes
# and MAC when they are graded. Next to it stands the dense count, what a clock-driven
# engine does whatever the activity (`T n_in n_out` for a Dense layer). Energy: operations
# times a `CostTable`; the default is 45 nm CMOS with float32 (0.9 pJ per add, 4.6 pJ per
# multiply-accumulate), and memory traffic is not counted (`docs/efficiency.md`).
# %%
report = eventsim.efficiency_report(models["direct"], inputs("direct", args.T))
print(report.format())
(out / "report.json").write_text(report.to_json())

# The same counts priced by another table: 8-bit integer arithmetic at 45 nm (add 0.03 pJ,
# multiply 0.2 pJ; Horowitz, ISSCC 2014).
int8 = eventsim.CostTable(ac_pj=0.03, mac_pj=0.23, name="45 nm, int8 (add 0.03 pJ, mult 0.2 pJ)")
report_int8 = eventsim.efficiency_report(models["direct"], inputs("direct", args.T), costs=int8)

# Per-neuron firing rates for the right panel: the spike counts of a plain simulation.
rec = eventsim.Simulator(models["direct"]).run(inputs("direct", args.T))
rates = {f"layers[{k}]\n({n} neurons)": np.bincount(rec.spikes[k].neuron, minlength=n) / (args.T * len(x_test))
         for k, n in [(1, 256), (3, 128)]}

# %% [markdown]
# In the figure: the first layer does about half the dense count (the black background
# is zero, every other pixel drives all 256 neurons at every step), and its operations
# are the expensive MACs; the later layers only add the rows of the neurons that spiked,
# so their share follows the firing rate. Log scales: each grid line is a factor of 10.
# %%
proj = report.projections
labels = [f"{p['label']}\n{p['kind']}, {p['op']}" for p in proj]
pos = np.arange(len(proj))
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained",
                         gridspec_kw={"width_ratios": [1.1, 1.1, 0.8]})
ax = axes[0]
colours = {"MAC": "tab:orange", "AC": "tab:blue"}
ax.bar(pos - 0.2, [p["synops"] for p in proj], 0.4, color=[colours[p["op"]] for p in proj])
ax.bar(pos + 0.2, [p["dense_ops"] for p in proj], 0.4, color="0.75")
ax.set_yscale("log")
ax.set_xticks(pos, labels, fontsize=8)
ax.set_ylabel("operations per image")
ax.set_title(f"synaptic operations per layer (T = {args.T})", fontsize=10)
ax.legend(handles=[Patch(color=colours["MAC"], label="event-driven, MAC"),
                   Patch(color=colours["AC"], label="event-driven, AC"),
                   Patch(color="0.75", label="dense engine, MAC")], fontsize=8, loc="upper right")
ax = axes[1]
for off, rep, name, colour in [(-0.27, report, "float32 (default)", "tab:purple"),
                               (0.0, report_int8, "int8", "tab:green")]:
    ax.bar(pos + off, [p["energy_pj"] / 1e3 for p in rep.projections], 0.27, color=colour,
           label=f"event-driven, {name}")
ax.bar(pos + 0.27, [p["dense_energy_pj"] / 1e3 for p in proj], 0.27, color="0.75",
       label="dense engine, float32")
ax.set_yscale("log")
ax.set_xticks(pos, labels, fontsize=8)
ax.set_ylabel("energy per image (nJ)")
ax.set_title("arithmetic energy per layer", fontsize=10)
ax.legend(fontsize=8, loc="upper right")
plot.firing_rates(rates, ax=axes[2])
axes[2].set_title("firing rate per neuron", fontsize=10)
axes[2].set_xlabel("spiking layer")
fig.savefig(out / "energy_per_layer.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## 3. Accuracy against energy
# Both networks were trained with T = 4 steps; here they run with 1, 2, 4 and 8 steps. More
# steps cost energy in proportion (every layer works at every step) and buy accuracy,
# up to about the T they were trained for. The rate code pays its first layer in cheap
# ACs, and only for the pixels that spiked, so it costs several times less at the same T.
# Dotted lines: a dense engine's energy at each T (every operation a float32 MAC).
# %%
Ts = [1, 2, 4] if args.smoke else [1, 2, 4, 8]
points = []
for enc, model in models.items():
    for T in Ts:
        r = eventsim.efficiency_report(model, inputs(enc, T), T=T)
        acc_r = float(np.mean(eventsim.Simulator(model).run(inputs(enc, T), T=T).predictions
                              == test.labels))
        tot = r.totals
        points.append(dict(encoding=enc, T=T, accuracy=acc_r, energy_nj=tot["energy_pj"] / 1e3,
                           dense_energy_nj=tot["dense_energy_pj"] / 1e3, synops=tot["synops"]))
        print(f"{enc:>6} T={T}: accuracy {acc_r:.3f}, {tot['energy_pj'] / 1e3:8.1f} nJ "
              f"(dense {tot['dense_energy_pj'] / 1e3:.0f} nJ), {tot['synops']:.3g} synaptic ops")

fig, ax = plt.subplots(figsize=(7, 4.3), layout="constrained")
for enc, colour in [("direct", "tab:orange"), ("rate", "tab:blue")]:
    pts = [p for p in points if p["encoding"] == enc]
    ax.plot([p["energy_nj"] for p in pts], [p["accuracy"] for p in pts], "o-", color=colour,
            label=f"{enc} input, event-driven")
    for p in pts:
        ax.annotate(f"T={p['T']}", (p["energy_nj"], p["accuracy"]), textcoords="offset points",
                    xytext=(4, -11), fontsize=8, color=colour)
for p in points:                      # a dense engine's cost depends on T only
    if p["encoding"] == "direct":
        ax.axvline(p["dense_energy_nj"], color="0.55", linestyle=":", linewidth=1.2,
                   label="dense engine (either input)" if p["T"] == Ts[0] else None)
        ax.annotate(f"T={p['T']}", (p["dense_energy_nj"], 1.0), xycoords=("data", "axes fraction"),
                    textcoords="offset points", xytext=(3, -12), fontsize=8, color="0.45")
ax.set_xscale("log")
ax.set_xlim(right=2 * max(p["dense_energy_nj"] for p in points))   # room for the last label
ax.margins(y=0.12)
ax.set_xlabel("arithmetic energy per image (nJ, 45 nm float32)")
ax.set_ylabel("test accuracy")
ax.set_title(f"MLP 784-256-128-10 trained with T = {args.T}, run with T = {', '.join(map(str, Ts))}",
             fontsize=10)
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8, loc="lower right")
fig.savefig(out / "accuracy_vs_energy.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## Summary
# %%
tot = report.totals
summary = {
    "T": args.T, "images": len(x_test),
    "ac_per_image": round(tot["ac"], 1),
    "mac_per_image": round(tot["mac"], 1), "dense_ops_per_image": tot["dense_ops"],
    "energy_nj_float32": round(tot["energy_pj"] / 1e3, 2),
    "energy_nj_int8": round(report_int8.totals["energy_pj"] / 1e3, 2),
    "dense_energy_nj_float32": round(tot["dense_energy_pj"] / 1e3, 2),
    "energy_ratio_dense_over_event": round(tot["energy_ratio"], 2),
    **{f"firing_rate_{p['label']}": round(p["firing_rate"], 4)
       for p in report.populations if p["firing_rate"] is not None},
    **{f"accuracy_{p['encoding']}_T{p['T']}": p["accuracy"] for p in points},
    **{f"energy_nj_{p['encoding']}_T{p['T']}": round(p["energy_nj"], 2) for p in points
       if p["T"] == args.T and p["encoding"] == "rate"},
    "train_seconds": round(train_s, 1),
    "total_seconds": round(time.perf_counter() - t_start, 1),
    "figures": "energy_per_layer.png, accuracy_vs_energy.png",
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
