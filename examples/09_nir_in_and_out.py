"""09 NIR in and out: export a trained SNN to a NIR graph, load it back and get the same
simulator output bit for bit; then load NIR graphs written by other tools (Norse, Rockpool,
snnTorch) and run them, checking one LIF neuron against the traces those tools computed.

Writes into ``--out``: ``model.h5``, ``mlp.nir``, ``nir_roundtrip.png`` (readouts and spike
counts before and after the round trip), ``nir_other_tools.png`` (one LIF neuron in five
simulators), ``nir_braille.png`` (snnTorch's recurrent braille network run here) and
``summary.json``.

    python examples/09_nir_in_and_out.py [--smoke]
"""
# %%
import argparse
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import eventsim
import training
from eventsim import plot
from training import datasets, optim

GALLERY = [
    ("nir_roundtrip.png",
     "A trained MLP exported to NIR and loaded back: the simulator's readout and every "
     "hidden neuron's spike count are identical (bit for bit)."),
    ("nir_other_tools.png",
     "One LIF neuron from NIR files written by Norse and Rockpool, simulated here with each "
     "writer's conventions, against the traces of four other simulators."),
    ("nir_braille.png",
     "snnTorch's recurrent CubaLIF braille network, loaded from its NIR file and run here "
     "on random input spikes: the same spikes as the dense engine."),
]

# %% [markdown]
# Settings. `--smoke` shrinks the training so the script runs in seconds (for the tests).
# %%
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--out", default="runs/09_nir_in_and_out", help="output directory")
ap.add_argument("--smoke", action="store_true", help="tiny settings (a quick check)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--T", type=int, default=4, help="time steps of the trained MLP")
ap.add_argument("--dt", type=float, default=1e-3, help="seconds per step written to NIR")
ap.add_argument("--nir-data", default=None,
                help="folder of the other tools' NIR files (default: tests/data/nir of this checkout)")
args, _ = ap.parse_known_args()
n_train, n_test = (300, 100) if args.smoke else (5000, 1000)
if args.smoke:
    args.epochs = 1
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
try:
    ROOT = Path(__file__).resolve().parents[1]
except NameError:                  # in a notebook: run from the repository root
    ROOT = Path.cwd()
nir_data = Path(args.nir_data) if args.nir_data else ROOT / "tests" / "data" / "nir"
t_start = time.perf_counter()

# %% [markdown]
# ## 1. Train a small network and export it
# An MLP 784-128-10 with LIF neurons, trained by BPTT for a couple of epochs on the bundled
# subset, exported to this project's model file.
# %%
train = datasets.load_fashion_mnist_small("train").subset(slice(0, n_train))
test = datasets.load_fashion_mnist_small("test").subset(slice(0, n_test))
x_train, x_test = train.float_images(flatten=True), test.float_images(flatten=True)
rng = np.random.default_rng(args.seed)
net = training.Sequential(
    training.Linear(784, 128, rng=rng),
    training.LIF(tau=2.0, surrogate="atan", detach_reset=True),
    training.Linear(128, 10, rng=rng))
opt = optim.AdamW(list(net.named_parameters()), lr=2e-3, weight_decay=1e-2)
sched = optim.CosineSchedule(opt, total_steps=args.epochs * math.ceil(n_train / 64))
history = training.fit(net, (x_train, train.labels), test=(x_test, test.labels), T=args.T,
                       epochs=args.epochs, batch_size=64, optimizer=opt, schedule=sched,
                       seed=args.seed, progress=False)
model_path = training.export(net, out / "model.h5", input_shape=(784,), T=args.T,
                             encoding="direct", overwrite=True, seed=args.seed,
                             dataset="fashion-mnist-small", accuracy=history.test_acc[-1])
print(f"trained: test accuracy {history.test_acc[-1]:.3f}")

# %% [markdown]
# ## 2. Out to NIR and back in
# NIR describes neurons in continuous time, so the export needs the length of a step, `dt`
# (seconds): each layer's decay `beta` becomes a time constant `tau = dt / (1 - beta)`
# (forward Euler). Loading the file back inverts this exactly, and the file records who
# wrote it, so `load` needs no `dt`. The simulator then gives the same readout, spike for
# spike and bit for bit: the left panel overlays the two readouts of one test image, the
# right panel compares every hidden neuron's spike count over the test images.
# %%
nir_path = eventsim.nir.export(model_path, out / "mlp.nir", dt=args.dt, overwrite=True)
print("identify:", eventsim.nir.identify(nir_path))
original = eventsim.load(model_path)
reloaded = eventsim.nir.load(nir_path, isolate=False)   # our own file: no need to read it
                                                        # in a child process first
x = training.encoding.direct(x_test, args.T)
rec_a = eventsim.Simulator(original).run(x)
rec_b = eventsim.Simulator(reloaded).run(x)
readout_equal = bool(np.array_equal(rec_a.readout, rec_b.readout))
counts_a = np.bincount(rec_a.spikes[1].neuron, minlength=128)
counts_b = np.bincount(rec_b.spikes[1].neuron, minlength=128)
print(f"readouts identical: {readout_equal}; predictions identical: "
      f"{np.array_equal(rec_a.predictions, rec_b.predictions)}")

# The same file also rebuilds a trainable network for the dense engine (to fine-tune it).
dense_net = training.from_nir(nir_path)
dense_net.eval()
dense_pred = training.losses.decode(dense_net.forward(x)).argmax(axis=1)
dense_agree = float(np.mean(dense_pred == rec_b.predictions))

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
steps = np.arange(args.T)
for c in range(10):
    line, = ax0.plot(steps, rec_a.readout[:, 0, c], linewidth=1.5, label=test.classes[c])
    ax0.plot(steps, rec_b.readout[:, 0, c], linestyle="none", marker="o", markersize=6,
             markerfacecolor="none", color=line.get_color())
ax0.set_xticks(steps)
ax0.set_xlabel("time step")
ax0.set_ylabel("readout (logit)")
ax0.set_title(f"test image 0 ({test.classes[test.labels[0]]}): lines model file,\n"
              "circles after the NIR round trip", fontsize=10)
ax0.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
ax1.plot(counts_a, counts_b, "o", markersize=4, alpha=0.6)
top = max(1, int(counts_a.max()))
ax1.plot([0, top], [0, top], color="0.5", linewidth=0.8, zorder=0)
ax1.set_xlabel("spikes per hidden neuron, model file")
ax1.set_ylabel("spikes per hidden neuron, from NIR")
ax1.set_title(f"{len(x_test)} test images, {int(counts_a.sum())} spikes:\n"
              f"max |readout difference| = {np.abs(rec_a.readout - rec_b.readout).max():g}",
              fontsize=10)
fig.savefig(out / "nir_roundtrip.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## 3. A neuron written by other tools
# The NIR paper's experiment: one LIF neuron (tau 2.5 ms, threshold 0.1) driven by input
# spikes for 1000 steps of 0.1 ms. Norse and Rockpool each exported it; their files differ,
# because each tool writes NIR's equation for its own way of stepping it. `identify` tells
# which tool wrote a file and `load` follows that tool (forward Euler and reset to zero for
# Norse, exponential decay and reset by subtraction for Rockpool). The traces to compare
# with (in `--nir-data`) come from an exact solution, Norse, Rockpool and snnTorch. In the
# figure, our two curves should lie on top of their writers' curves; the red dashed one,
# the Rockpool file read with forward Euler (Norse's rule) instead, fires 1 ms late.
# %%
DT_LIF = 1e-4


def reference(tool):
    """Columns of a reference trace: input spike, membrane after reset, output spike."""
    a = np.loadtxt(nir_data / f"lif_{tool}.csv", delimiter=",")
    if tool == "snntorch":                      # snnTorch's membrane is in units of 2.5
        a[:, 1] *= 0.1 / 2.5
    return a


def membrane_after_reset(model, x):
    """Simulate the one-neuron model on ``x [T, 1, 1]``: membrane after reset ``[T]``."""
    rec = eventsim.Simulator(model, record_membrane={1: "all"}).run(x)
    u = rec.membrane[1][:, 0, 0].astype(np.float64)
    s = rec.spikes[1].to_dense()[:, 0, 0] > 0
    layer = model.layers[1]
    return np.where(s, u - layer.theta if layer.reset == "subtract" else layer.v_reset, u), s


refs = {t: reference(t) for t in ("exact", "norse", "rockpool", "snntorch")}
x_lif = refs["exact"][:, :1].astype(np.float32)[:, None, :]          # [1000, 1, 1]
ours = {}
for name in ("lif_norse", "lif_rockpool"):
    who = eventsim.nir.identify(nir_data / f"{name}.nir")
    print(f"{name}.nir: written by {who['tool']} ({who['reason']})")
    ours[name] = membrane_after_reset(eventsim.nir.load(nir_data / f"{name}.nir", dt=DT_LIF), x_lif)
wrong = membrane_after_reset(eventsim.nir.load(nir_data / "lif_rockpool.nir", dt=DT_LIF,
                                               discretisation="euler"), x_lif)
dev = {name: float(np.abs(v - refs[name.split("_")[1]][:, 1]).max()) for name, (v, _) in ours.items()}
print("largest difference from the writer's own trace:", dev)

t_ms = np.arange(len(x_lif)) * DT_LIF * 1e3
fig, axes = plt.subplots(2, 1, figsize=(9, 5.6), layout="constrained",
                         gridspec_kw={"height_ratios": [3, 2]})
for ax, (lo, hi) in zip(axes, [(0, 100), (40, 54)]):
    sel = (t_ms >= lo) & (t_ms <= hi)
    for tool, colour in [("exact", "0.6"), ("norse", "tab:blue"), ("rockpool", "tab:orange"),
                         ("snntorch", "tab:green")]:
        ax.plot(t_ms[sel], refs[tool][sel, 1], color=colour, linewidth=3, alpha=0.45,
                label=f"{tool} (reference)")
    ax.plot(t_ms[sel], ours["lif_norse"][0][sel], color="tab:blue", linestyle="--", linewidth=1.3,
            label="eventsim, Norse file")
    ax.plot(t_ms[sel], ours["lif_rockpool"][0][sel], color="tab:orange", linestyle=":",
            linewidth=1.6, label="eventsim, Rockpool file")
    ax.plot(t_ms[sel], wrong[0][sel], color="tab:red", linestyle="--", linewidth=0.9,
            label="Rockpool file read with Euler")
    ax.axhline(0.1, color="k", linestyle="--", linewidth=0.7, label="threshold")
    for (name, colour, y) in [("lif_norse", "tab:blue", 0.109), ("lif_rockpool", "tab:orange", 0.104)]:
        st = t_ms[sel][ours[name][1][sel]]
        ax.plot(st, np.full(len(st), y), "v", color=colour, markersize=6,
                label=f"output spike, {name.split('_')[1].capitalize()} file")
    inp = t_ms[sel][x_lif[sel, 0, 0] > 0]
    ax.plot(inp, np.full(len(inp), -0.01), "|", color="k", markersize=8, label="input spike")
    ax.set_ylabel("membrane after reset")
    ax.set_xlim(lo, hi)
axes[0].set_title("one LIF neuron (tau 2.5 ms, threshold 0.1, dt 0.1 ms)", fontsize=10)
axes[1].set_title("zoom on the first two output spikes", fontsize=10)
axes[1].set_xlabel("time (ms)")
axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
fig.savefig(out / "nir_other_tools.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## 4. A recurrent network from snnTorch
# The braille network of the NIR paper, written by snnTorch: 12 input channels, 40 CubaLIF
# neurons with recurrent weights (a cycle in the graph, which becomes a delay-1 connection),
# and 7 CubaLIF outputs. The simulator runs it on random input spikes, and the dense engine
# rebuilt from the same file (`training.from_nir`) must give the same spikes. (snnTorch
# wrote the file for steps of 0.1 ms, though the network was trained on 5 ms bins; the
# axes therefore count steps.)
# %%
braille_file = nir_data / "braille_noDelay_noBias_subtract.nir"
braille = eventsim.nir.load(braille_file)      # snnTorch's files reveal their dt (1e-4 s)
T_b = 100 if args.smoke else 300
x_b = (np.random.default_rng(args.seed).random((T_b, 1, 12)) < 0.15).astype(np.float32)
rec_br = eventsim.Simulator(braille).run(x_b)
dense_br = training.from_nir(braille_file)
dense_br.eval()
y_dense = dense_br.forward(x_b)
same_braille = bool(np.array_equal(rec_br.readout, y_dense))
print(f"braille: {rec_br.spikes[1].t.size} hidden spikes; simulator and dense engine give "
      f"the same output spikes: {same_braille}")

fig = plt.figure(figsize=(9, 6), layout="constrained")
sub = fig.subfigures(3, 1, height_ratios=[1.2, 3.2, 1.6])
ax_in = sub[0].subplots()
inp_t, _, inp_i = np.nonzero(x_b)
plot.raster(inp_t, inp_i, ax=ax_in, T=T_b, n=12, ylabel="input", color="0.3")
ax_in.set_yticks([0, 6, 11])
ax_in.set_title("snnTorch's braille network (NIR) on random input spikes: the simulator's "
                f"spikes (the dense engine's: {'the same' if same_braille else 'different'})",
                fontsize=10)
hid = rec_br.spikes[1]
plot.raster(hid.t, hid.neuron, T=T_b, n=40, rate_panel=True, fig=sub[1],
            ylabel="hidden CubaLIF neuron")
ax_out = sub[2].subplots()
out_t, _, out_i = np.nonzero(rec_br.readout)
plot.raster(out_t, out_i, ax=ax_out, T=T_b, n=7, ylabel="output neuron", color="tab:red")
ax_out.set_yticks(range(7))
fig.savefig(out / "nir_braille.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## Summary
# %%
summary = {
    "test_accuracy": float(np.mean(rec_a.predictions == test.labels)),
    "roundtrip_readout_identical": readout_equal,
    "roundtrip_prediction_agreement": float(np.mean(rec_a.predictions == rec_b.predictions)),
    "from_nir_dense_agreement": dense_agree,
    "norse_file_max_diff_from_norse": dev["lif_norse"],
    "rockpool_file_max_diff_from_rockpool": dev["lif_rockpool"],
    "norse_file_spike_steps": " ".join(map(str, np.flatnonzero(ours["lif_norse"][1]))),
    "rockpool_file_spike_steps": " ".join(map(str, np.flatnonzero(ours["lif_rockpool"][1]))),
    "rockpool_file_as_euler_spike_steps": " ".join(map(str, np.flatnonzero(wrong[1]))),
    "braille_hidden_spikes": int(rec_br.spikes[1].t.size),
    "braille_same_as_dense_engine": same_braille,
    "total_seconds": round(time.perf_counter() - t_start, 1),
    "figures": "nir_roundtrip.png, nir_other_tools.png, nir_braille.png",
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
