"""Make an event version of Fashion-MNIST: each image watched by a simulated event camera
while it moves in three saccades over 300 ms (eventsim.saccades), written to an event file
(docs/event-files.md) with the labels.

    python benchmarks/make_event_fmnist.py --split train --limit 10000 --out runs/evfmnist/train.h5
    python benchmarks/make_event_fmnist.py --split test --out runs/evfmnist/test.h5

Prints one JSON line: samples, events per sample (mean, median, min, max), seconds.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from eventsim.saccades import DVSConfig, images_to_event_file
from snncore import datasets


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("train", "test"), default="train")
    ap.add_argument("--start", type=int, default=0, help="first image of the split")
    ap.add_argument("--limit", type=int, default=None, help="number of images (default: all)")
    ap.add_argument("--data", default=None, help="directory with the Fashion-MNIST IDX files")
    ap.add_argument("--small", action="store_true", help="use the committed subset in data/")
    ap.add_argument("--out", required=True, help="event file to write (.h5)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing event file")
    ap.add_argument("--dt", type=float, default=50_000, help="suggested bin width (us) stored in the file")
    d = DVSConfig()
    ap.add_argument("--threshold", type=float, default=d.threshold, help="mean contrast threshold (log units)")
    ap.add_argument("--threshold-sigma", type=float, default=d.threshold_sigma, help="per-pixel threshold spread")
    ap.add_argument("--refractory-us", type=int, default=d.refractory_us)
    ap.add_argument("--duration-us", type=int, default=d.duration_us)
    ap.add_argument("--frame-us", type=int, default=d.frame_us)
    ap.add_argument("--amplitude", type=float, default=d.amplitude, help="saccade size in pixels")
    ap.add_argument("--seed", type=int, default=d.seed, help="seed of the per-pixel thresholds")
    args = ap.parse_args(argv)

    load = datasets.load_fashion_mnist_small if args.small else datasets.load_fashion_mnist
    ds = load(split=args.split) if args.small else load(args.data, split=args.split)
    stop = None if args.limit is None else args.start + args.limit
    images, labels = ds.images[args.start:stop], ds.labels[args.start:stop]
    cfg = DVSConfig(duration_us=args.duration_us, amplitude=args.amplitude, frame_us=args.frame_us,
                    threshold=args.threshold, threshold_sigma=args.threshold_sigma,
                    refractory_us=args.refractory_us, seed=args.seed)
    t0 = time.perf_counter()
    path, n = images_to_event_file(args.out, images, labels, cfg, dt=args.dt, overwrite=args.overwrite)
    print(json.dumps({"out": str(path), "split": args.split, "samples": len(n),
                      "events_per_sample": {"mean": round(float(n.mean()), 1),
                                            "median": float(np.median(n)), "min": int(n.min()),
                                            "max": int(n.max())},
                      "seconds": round(time.perf_counter() - t0, 1), "config": vars(cfg)}), flush=True)


if __name__ == "__main__":
    main()
