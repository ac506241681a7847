"""Simulator against dense engine on exported feedback models (F-MLP, F-conv) over the full
Fashion-MNIST test set: decision agreement, spike agreement, and both accuracies.

    OPENBLAS_NUM_THREADS=1 python benchmarks/feedback_agreement.py runs/fmnist_fmlp_lif.h5

The dense side is ``training.feedback_from_model(model)`` (the network IDE trains, rebuilt
from the file); the simulator runs the file.  A (1, 14, 14) input is fed 2x2-average-pooled
images, as ``train_ide_fmnist.py --size 14`` trained it.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import eventsim
import training
from snncore import modelfile as mf
from training import datasets, encoding


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    model = mf.read_model(args.model)
    test = datasets.load_fashion_mnist(args.data, split="test")
    if model.input_shape == (784,):
        images = test.float_images(np.float32, flatten=True)
    elif model.input_shape == (1, 14, 14):
        images = np.ascontiguousarray(test.float_images(np.float32).reshape(
            -1, 1, 14, 2, 14, 2).mean(axis=(3, 5)), dtype=np.float32)
    else:
        images = test.float_images(np.float32).reshape((-1,) + tuple(model.input_shape))
    labels = test.labels.astype(np.int64)
    n = len(images) if args.limit is None else min(args.limit, len(images))
    net = training.feedback_from_model(model)
    sim = eventsim.Simulator(model, n_threads=1)
    tw = net.decoder_weights(model.T)
    spk = model.spiking_layers
    same_dec = same_spk = total_spk = correct_sim = correct_dense = 0
    t_sim = t_dense = 0.0
    for b0 in range(0, n, args.batch_size):
        b1 = min(n, b0 + args.batch_size)
        x = encoding.direct(images[b0:b1], model.T, dtype=np.float32)
        t0 = time.perf_counter()
        rec = sim.run(x)
        t1 = time.perf_counter()
        y = net.forward(x)
        layers = net.simulate(x, all_layers=True) if isinstance(net, training.FeedbackConv) \
            else [net.simulate(x)]
        t_dense += time.perf_counter() - t1
        t_sim += t1 - t0
        dense_pred = training.losses.decode(y.astype(np.float64), tw).argmax(axis=1)
        same_dec += int(np.sum(dense_pred == rec.predictions))
        correct_sim += int(np.sum(rec.predictions == labels[b0:b1]))
        correct_dense += int(np.sum(dense_pred == labels[b0:b1]))
        for layer, s in zip(spk, layers):
            ds = rec.spikes[layer].to_dense(model.T, b1 - b0).reshape(s.shape)
            same_spk += int(np.sum(ds == s))
            total_spk += s.size
    print(json.dumps({"model": args.model, "images": n,
                      "decision_agreement": same_dec / n,
                      "spike_agreement": same_spk / total_spk,
                      "sim_acc": correct_sim / n, "dense_acc": correct_dense / n,
                      "sim_s": round(t_sim, 1), "dense_s": round(t_dense, 1),
                      "metadata_accuracy": model.metadata.get("accuracy")}))


if __name__ == "__main__":
    main()
