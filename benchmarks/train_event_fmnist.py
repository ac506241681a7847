"""Train a small convolutional SNN on the frames of event Fashion-MNIST, export it, and
simulate it on the raw events (binned into steps: the EventBatch path).

    python benchmarks/make_event_fmnist.py --split train --limit 10000 --out runs/evfmnist/train.h5
    python benchmarks/make_event_fmnist.py --split test --out runs/evfmnist/test.h5
    python benchmarks/train_event_fmnist.py --train runs/evfmnist/train.h5 --test runs/evfmnist/test.h5 \
        --epochs 4 --out runs/evfmnist/conv.h5

Both paths see the same events: every recording is cropped to the central 32x32 pixels
(eventsim.evtransforms.crop), downsampled by --downsample (default 2: 16x16,
evtransforms.downsample; a pixel then counts the events of a 2x2 block) and binned
into T steps of dt microseconds -- into dense frames
``[T, B, 2, 16, 16]`` of event counts for training (evtransforms.batch_frames), into an
EventBatch of the same counts for the simulator (evdata.to_batch).  Prints JSON lines:
per-epoch figures, then the dense and simulated test accuracy and their agreement.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

import eventsim
import training
from eventsim import evdata, evtransforms
from eventsim.eventfile import load_events, save_events
from snncore.fileio import check_output
from training import optim

CROP = (1, 1, 32, 32)   # x0, y0, width, height: 34x34 -> 32x32


def load(path: str, limit: int | None, factor: int):
    """Recordings cropped to 32x32 and downsampled by ``factor``; labels; sensor size."""
    ef = load_events(path)
    stop = len(ef) if limit is None else min(limit, len(ef))
    size = (CROP[2], CROP[3], ef.sensor_size[2])
    samples, small = [], (size[0] // factor, size[1] // factor, size[2])
    for ev in ef.events[:stop]:
        ev, _ = evtransforms.crop(ev, ef.sensor_size, *CROP)
        ev, small = evtransforms.downsample(ev, size, factor)
        samples.append(ev)
    return samples, ef.labels[:stop], small


def build(seed: int, tau: float, side: int):
    rng = np.random.default_rng(seed)
    lif = dict(tau=tau, surrogate="atan", detach_reset=True)
    return training.Sequential(
        training.Conv2d(2, 16, 3, padding=1, rng=rng), training.BatchNorm2d(16), training.LIF(**lif),
        training.AvgPool2d(2),
        training.Conv2d(16, 32, 3, padding=1, rng=rng), training.BatchNorm2d(32), training.LIF(**lif),
        training.AvgPool2d(2),
        training.Flatten(), training.Linear(32 * (side // 4) ** 2, 10, rng=rng))


def time_major(x, T, rng):
    """fit's encoder: stored frames [B, T, P, H, W] -> [T, B, P, H, W]."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3, 4))


def dense_predictions(net, frames: np.ndarray, batch: int = 500) -> np.ndarray:
    net.eval()
    out = []
    for a in range(0, len(frames), batch):
        y = net.forward(time_major(frames[a:a + batch], None, None))
        out.append(y.mean(axis=0).argmax(axis=1))
    return np.concatenate(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="event file of the training samples")
    ap.add_argument("--test", required=True, help="event file of the test samples")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--downsample", type=int, default=2, choices=(1, 2, 4),
                    help="spatial factor after the 32x32 crop (evtransforms.downsample)")
    ap.add_argument("--dt", type=int, default=50_000, help="bin width in microseconds")
    ap.add_argument("--T", type=int, default=6, help="steps (T * dt should cover the recording)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--tau", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="simulator threads")
    ap.add_argument("--out", required=True, help="model file to export (.h5)")
    ap.add_argument("--save-test-events", default=None, metavar="FILE",
                    help="also write the cropped, downsampled test recordings to this event file "
                         "(for: eventsim simulate MODEL --events FILE)")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    check_output(args.out, "model", args.overwrite)
    if args.save_test_events:
        check_output(args.save_test_events, "events", args.overwrite)

    t0 = time.perf_counter()
    tr, ytr, size = load(args.train, args.train_limit, args.downsample)
    te, yte, _ = load(args.test, args.test_limit, args.downsample)
    if args.save_test_events:
        save_events(args.save_test_events, te, labels=yte, sensor_size=size, dt=args.dt,
                    overwrite=args.overwrite)
    xtr = np.ascontiguousarray(evtransforms.batch_frames(tr, size, args.dt, args.T).transpose(1, 0, 2, 3, 4))
    xte = np.ascontiguousarray(evtransforms.batch_frames(te, size, args.dt, args.T).transpose(1, 0, 2, 3, 4))
    n_ev = np.array([len(ev) for ev in te])
    print(json.dumps({"loaded_s": round(time.perf_counter() - t0, 1), "train": len(tr), "test": len(te),
                      "test_events_per_sample_after_crop": round(float(n_ev.mean()), 1),
                      "frame_shape": list(xtr.shape[1:])}), flush=True)

    net = build(args.seed, args.tau, size[0])
    opt = optim.AdamW(list(net.named_parameters()), lr=args.lr)
    sched = optim.CosineSchedule(opt, total_steps=args.epochs * math.ceil(len(xtr) / args.batch_size))

    def on_epoch_end(epoch, h):
        print(json.dumps({"epoch": epoch, "epoch_s": round(h.seconds[-1], 1),
                          "train_acc": round(h.train_acc[-1], 4), "test_acc": round(h.test_acc[-1], 4)}),
              flush=True)

    hist = training.fit(net, (xtr, ytr), test=(xte, yte), T=args.T, epochs=args.epochs,
                        batch_size=args.batch_size, optimizer=opt, schedule=sched, encoder=time_major,
                        seed=args.seed, progress=False, on_epoch_end=on_epoch_end)
    training.export(net, args.out, input_shape=(size[2], size[1], size[0]), T=args.T, encoding="events",
                    overwrite=args.overwrite, dataset="event-fashion-mnist", dt_us=args.dt,
                    accuracy=hist.test_acc[-1], seed=args.seed)
    dense = dense_predictions(net, xte)

    model = eventsim.load(args.out)
    sim = eventsim.Simulator(model, n_threads=args.threads)
    t1 = time.perf_counter()
    pred = []
    for a in range(0, len(te), 500):
        batch = evdata.to_batch(te[a:a + 500], size, args.dt, T=args.T)
        pred.append(sim.run(batch).predictions)
    pred = np.concatenate(pred)
    print(json.dumps({"dense_test_acc": round(float((dense == yte).mean()), 4),
                      "simulated_test_acc": round(float((pred == yte).mean()), 4),
                      "prediction_agreement": round(float((pred == dense).mean()), 4),
                      "simulate_s": round(time.perf_counter() - t1, 1),
                      "total_s": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
