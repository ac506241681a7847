"""08 Event data: turn images into event-camera recordings, transform them, save them to
an event file and read them back, then train a small SNN on their frames and run it in the
simulator on the events themselves.

Writes into ``--out``: ``frames_time_surfaces.png`` (one recording as event frames and time
surfaces), ``event_raster.png`` (its events before and after the transforms), the event files
``test_events.h5`` and ``sample.bin`` (N-MNIST format), ``model.h5`` and ``summary.json``.

    python examples/08_event_data.py [--smoke]
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
from eventsim import evdata, evformats, evtransforms, plot, saccades
from eventsim.inputs import load_events, save_events
from training import datasets, optim

GALLERY = [
    ("frames_time_surfaces.png",
     "A Fashion-MNIST image seen by a simulated event camera (three saccades over 300 ms): "
     "event counts per 50 ms bin (ON red, OFF blue) and time surfaces at the end of each bin."),
    ("event_raster.png",
     "The same recording as an event raster (pixel address vs time) before and after "
     "denoising, a refractory period, a crop and a 2x downsampling."),
]

# %% [markdown]
# Settings. `--smoke` shrinks everything so the script runs in seconds (for the tests).
# %%
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--out", default="runs/08_event_data", help="output directory")
ap.add_argument("--smoke", action="store_true", help="tiny settings (a quick check)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--n-train", type=int, default=3000, help="training images to convert")
ap.add_argument("--n-test", type=int, default=1000, help="test images to convert")
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--dt-us", type=int, default=50_000, help="bin width of a time step (us)")
ap.add_argument("--frame-us", type=int, default=2_000,
                help="how often the simulated camera renders the moving image (us)")
args, _ = ap.parse_known_args()
if args.smoke:
    args.n_train, args.n_test, args.epochs, args.frame_us = 300, 100, 1, 5_000
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
T = 300_000 // args.dt_us          # the recordings last 300 ms: 6 steps of 50 ms
t_start = time.perf_counter()

# %% [markdown]
# ## 1. Images to events
# `saccades.image_to_events` moves each image along a small triangle (three saccades, as
# N-MNIST was recorded) in front of a simulated DVS: every pixel fires an ON event when its
# log intensity rose by its threshold, an OFF event when it fell. Each recording is a
# tonic-style structured array with fields `x, y` (pixels), `t` (microseconds) and `p`
# (polarity 1 = ON, 0 = OFF); 28x28 images give a 34x34 sensor, `sensor_size = (W, H, P)`.
# %%
train = datasets.load_fashion_mnist_small("train")
test = datasets.load_fashion_mnist_small("test")
cfg = saccades.DVSConfig(frame_us=args.frame_us, seed=args.seed)
t0 = time.perf_counter()
train_ev, sensor_size = saccades.image_to_events(train.images[:args.n_train], cfg)
test_ev, _ = saccades.image_to_events(test.images[:args.n_test], cfg)
convert_s = time.perf_counter() - t0
y_train, y_test = train.labels[:args.n_train], test.labels[:args.n_test]
n_events = np.array([len(ev) for ev in test_ev])
print(f"sensor {sensor_size}, {n_events.mean():.0f} events per test recording, "
      f"{convert_s:.1f} s for {args.n_train + args.n_test} images")
print("first events of test sample 0:", test_ev[0][:3])

# %% [markdown]
# ## 2. Frames and time surfaces
# `evtransforms.to_frames` counts the events of each pixel and polarity per bin of `dt`
# microseconds: `[T, P, H, W]`. A *time surface* instead keeps, per pixel, how recently it
# fired: `exp(-(t_ref - t_last) / tau)`, 1 for an event at `t_ref`, fading to 0. In the
# figure, look at how the edges that the motion crosses light up, and how the direction of
# the saccade decides which edges turn ON (red) and which OFF (blue).
# %%


def time_surface(ev, size, t_ref, tau_us):
    """Signed time surface ``[H, W]`` at ``t_ref`` (us): ``+exp(-(t_ref - t_last)/tau)``
    where the pixel's last event up to ``t_ref`` was ON, ``-...`` where it was OFF."""
    W, H, _ = size
    ev = ev[ev["t"] <= t_ref]                        # sorted by t: the last write wins
    last_t = np.full((H, W), -np.inf)
    sign = np.zeros((H, W))
    last_t[ev["y"], ev["x"]] = ev["t"]
    sign[ev["y"], ev["x"]] = np.where(ev["p"] > 0, 1.0, -1.0)
    return sign * np.exp(-(t_ref - last_t) / tau_us)


sample = int(np.flatnonzero(y_test == 0)[0])     # the first T-shirt: a clear outline
frames = evtransforms.to_frames(test_ev[sample], sensor_size, dt=args.dt_us, T=T)  # [T, 2, 34, 34]
fig, axes = plt.subplots(2, T + 1, figsize=(1.55 * (T + 1), 3.7), layout="constrained")
axes[0, 0].imshow(test.images[sample], cmap="gray")
axes[0, 0].set_title(f"image\n({test.classes[y_test[sample]]})", fontsize=9)
axes[1, 0].axis("off")
lim = max(1.0, float(frames.max()))
for k in range(T):
    on_minus_off = frames[k, 1] - frames[k, 0]
    im_f = axes[0, k + 1].imshow(on_minus_off, cmap="RdBu_r", vmin=-lim, vmax=lim)
    t_end = (k + 1) * args.dt_us
    axes[0, k + 1].set_title(f"{k * args.dt_us // 1000}-{t_end // 1000} ms", fontsize=9)
    im_s = axes[1, k + 1].imshow(time_surface(test_ev[sample], sensor_size, t_end, 20_000),
                                 cmap="RdBu_r", vmin=-1, vmax=1)
    axes[1, k + 1].set_title(f"at {t_end // 1000} ms", fontsize=9)
for a in axes.ravel():
    a.set_xticks([])
    a.set_yticks([])
axes[0, 1].set_ylabel("frames", fontsize=9)
axes[1, 1].set_ylabel("time surface\n(tau 20 ms)", fontsize=9)
fig.colorbar(im_f, ax=axes[0, :], shrink=0.8, label="ON - OFF events")
fig.colorbar(im_s, ax=axes[1, :], shrink=0.8, label="ON (+) / OFF (-)")
fig.savefig(out / "frames_time_surfaces.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## 3. Transforms
# `denoise` drops events with no neighbouring event in the last `window` us (sensor noise),
# `refractory` drops events that follow a kept event of the same pixel within `period` us,
# `crop` keeps the central 32x32 pixels and `downsample` merges 2x2 blocks (16x16: a pixel
# then counts the events of its block). The raster shows each event as a mark at (time,
# address): the dense bands are the three saccades, when the image moves.
# %%


def transform(ev, size):
    """denoise -> refractory -> crop 32x32 -> downsample 2: (events, sensor size, counts)."""
    counts = [len(ev)]
    ev = evtransforms.denoise(ev, size, window=5_000)
    counts.append(len(ev))
    ev = evtransforms.refractory(ev, size, period=2_000)
    counts.append(len(ev))
    ev, size = evtransforms.crop(ev, size, 1, 1, 32, 32)
    counts.append(len(ev))
    ev, size = evtransforms.downsample(ev, size, 2)
    return ev, size, counts


small_ev, small_size, stage_counts = transform(test_ev[sample], sensor_size)
print("events after raw, denoise, refractory, crop:", stage_counts)


def address(ev, size):
    """Flat input address (p * H + y) * W + x of each event (the simulator's order)."""
    W, H, _ = size
    return (ev["p"].astype(np.int64) * H + ev["y"]) * W + ev["x"]


fig, axes = plt.subplots(2, 1, figsize=(8, 5.6), sharex=True, layout="constrained")
for ax, ev, size, what in [(axes[0], test_ev[sample], sensor_size, "raw 34x34"),
                           (axes[1], small_ev, small_size, "after the transforms, 16x16")]:
    n_addr = int(np.prod(size))
    for pol, colour, name in [(1, "tab:red", "ON"), (0, "tab:blue", "OFF")]:
        sel = ev["p"] == pol
        # one step of 1 us: with dt = 1e-6 s the time axis reads milliseconds
        plot.raster(ev["t"][sel], address(ev, size)[sel], ax=ax, T=300_001, n=n_addr,
                    dt=1e-6, color=colour, method="markers", markersize=2.5)
        ax.plot([], [], "|", color=colour, markersize=8, label=name)
    ax.set_ylabel("address (p, y, x)")
    ax.set_title(f"{what}: {len(ev)} events", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
axes[0].tick_params(labelbottom=True)
fig.savefig(out / "event_raster.png", dpi=100)
plt.close(fig)

train_small = [transform(ev, sensor_size)[0] for ev in train_ev]
test_small = [transform(ev, sensor_size)[0] for ev in test_ev]

# %% [markdown]
# ## 4. Event files
# `save_events` writes a list of recordings, their labels, the sensor size and a suggested
# bin width to one HDF5 event file (atomically; `docs/event-files.md`); `load_events` checks
# every field on reading. The command `eventsim convert fashion-mnist-small OUT.h5 --split
# test --limit 1000` does steps 1 and 4 in one go, and `eventsim simulate MODEL --events
# OUT.h5` runs a model on such a file. `evformats` reads and writes other tools' formats:
# here one recording goes to N-MNIST's 5-byte binary format and back. (The file holds the
# first 100 test recordings: about 7 MB, 26 bytes per event.)
# %%
n_file = min(100, len(test_small))
events_file = save_events(out / "test_events.h5", test_small[:n_file], labels=y_test[:n_file],
                          sensor_size=small_size, dt=args.dt_us, overwrite=True)
back = load_events(events_file)
same_file = len(back.events) == n_file and all(
    np.array_equal(a, b) for a, b in zip(back.events, test_small))
nmnist = evformats.write_nmnist(out / "sample.bin", test_ev[sample], overwrite=True)
same_bin = bool(np.array_equal(evformats.read_nmnist(nmnist), test_ev[sample]))
print(f"event file read back equal: {same_file}; N-MNIST file read back equal: {same_bin}")

# %% [markdown]
# ## 5. Train on frames, simulate on events
# For training, the recordings become frames of event counts `[T, B, 2, 16, 16]`
# (`batch_frames`); an MLP 512-128-10 with LIF neurons learns from them by BPTT. Exported
# with `encoding="events"`, the simulator then takes the same recordings binned into an
# `EventBatch` (`evdata.to_batch`: one input event per pixel, polarity and step carrying its
# count) and computes only where events arrive. Both engines should agree on nearly every
# prediction (float round-off aside).
# %%


def time_major(x, T_, rng):
    """fit's encoder: stored frames ``[B, T, 2, 16, 16]`` -> ``[T, B, 2, 16, 16]``."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3, 4))


x_train = evtransforms.batch_frames(train_small, small_size, args.dt_us, T).transpose(1, 0, 2, 3, 4)
x_test = evtransforms.batch_frames(test_small, small_size, args.dt_us, T).transpose(1, 0, 2, 3, 4)
n_in = int(np.prod(small_size))
rng = np.random.default_rng(args.seed)
net = training.Sequential(
    training.Flatten(),                      # [T, B, 2, 16, 16] -> [T, B, 512]
    training.Linear(n_in, 128, rng=rng),
    training.LIF(tau=2.0, surrogate="atan", detach_reset=True),
    training.Linear(128, 10, rng=rng))
opt = optim.AdamW(list(net.named_parameters()), lr=2e-3, weight_decay=1e-2)
sched = optim.CosineSchedule(opt, total_steps=args.epochs * math.ceil(len(x_train) / 64))
t0 = time.perf_counter()
history = training.fit(net, (x_train, y_train), test=(x_test, y_test), T=T, epochs=args.epochs,
                       batch_size=64, optimizer=opt, schedule=sched, encoder=time_major,
                       seed=args.seed, progress=False)
train_s = time.perf_counter() - t0
print(f"test accuracy per epoch (dense engine, frames): {np.round(history.test_acc, 3)}")

net.eval()
dense_pred = training.losses.decode(net.forward(time_major(x_test, T, None))).argmax(axis=1)
model_path = training.export(net, out / "model.h5", input_shape=small_size[::-1], T=T, encoding="events",
                             overwrite=True, dataset="event-fashion-mnist-small",
                             dt_us=args.dt_us, seed=args.seed)
model = eventsim.load(model_path)
batch = evdata.to_batch(test_small, small_size, args.dt_us, T=T)   # EventBatch, (2, 16, 16)
t0 = time.perf_counter()
rec = eventsim.Simulator(model).run(batch)
sim_s = time.perf_counter() - t0
sim_acc = float(np.mean(rec.predictions == y_test))
agree = float(np.mean(rec.predictions == dense_pred))
print(f"simulator on the events: accuracy {sim_acc:.3f}, same prediction as the dense "
      f"engine on {agree:.1%} of the recordings, {rec.synaptic_events['total'] / len(y_test):.0f} "
      f"synaptic events per recording")

# %% [markdown]
# ## Summary
# %%
summary = {
    "train_recordings": len(train_ev), "test_recordings": len(test_ev),
    "events_per_recording_raw": round(float(n_events.mean()), 1),
    "events_per_recording_transformed": round(float(np.mean([len(e) for e in test_small])), 1),
    "conversion_seconds": round(convert_s, 1),
    "event_file_roundtrip_equal": bool(same_file), "nmnist_roundtrip_equal": same_bin,
    "dense_test_accuracy": float(np.mean(dense_pred == y_test)),
    "eventsim_test_accuracy": sim_acc, "prediction_agreement": agree,
    "synaptic_events_per_recording": round(rec.synaptic_events["total"] / len(y_test), 1),
    "train_seconds": round(train_s, 1), "simulation_seconds": round(sim_s, 2),
    "total_seconds": round(time.perf_counter() - t_start, 1),
    "figures": "frames_time_surfaces.png, event_raster.png",
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
