"""The ``eventsim`` command line: simulate a model file, plot one sample, describe a model.

::

    eventsim info MODEL
    eventsim simulate MODEL [--dataset fashion-mnist] [--limit N] [--batch-size B]
                            [--compare-dense] [--seed S] [--out-recording FILE]
    eventsim plot MODEL --sample I [--dataset ...] --out FILE.png

``info`` and ``simulate`` print one JSON object on stdout; progress bars go to stderr.
Errors (missing or malformed model file, missing dataset, bad argument) print one line
``eventsim: error: ...`` on stderr and exit with status 2 (``--traceback`` shows the stack).
:func:`main` returns the exit status instead of exiting, so it can be called from Python;
argparse's own usage errors still raise ``SystemExit(2)``.

Images are encoded as the model says (``model.encoding``): "direct" feeds the analog image
``pixel / 255`` shaped to ``model.input_shape`` at every step; "rate" draws Bernoulli spikes
(:func:`eventsim.inputs.rate_code`) from ``np.random.default_rng(--seed)``, batch after batch.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import modelfile as mf

DATASETS = ("fashion-mnist", "mnist", "fashion-mnist-small")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path, bytes)):
        return o.decode() if isinstance(o, bytes) else str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=_json_default))


def _read_record(path: str) -> mf.Model:
    """The validated model-file records (for info, encoding and the dense comparison)."""
    p = Path(path)
    if not p.exists():
        raise CLIError(f"model file {path} does not exist")
    if p.is_dir():
        raise CLIError(f"model file {path} is a directory")
    return mf.read_model(p)


def _simulator_api():
    """``(eventsim.load, eventsim.Simulator)``, or a CLIError while they do not exist."""
    import eventsim

    load, sim = getattr(eventsim, "load", None), getattr(eventsim, "Simulator", None)
    if load is None or sim is None:
        raise CLIError("the event-driven simulator is not available in this installation "
                       "(eventsim.load / eventsim.Simulator missing)")
    return load, sim


def _load_dataset(name: str, split: str, data_dir, download: bool):
    from training import datasets as ds

    if name == "fashion-mnist":
        return ds.load_fashion_mnist(path=data_dir, split=split, download=download)
    if name == "mnist":
        return ds.load_mnist(path=data_dir, split=split, download=download)
    return ds.load_fashion_mnist_small(split)


def _default_dataset(record: mf.Model) -> str:
    name = str(record.metadata.get("dataset", "")).lower().replace("_", "-")
    return name if name in DATASETS else "fashion-mnist"


def _float_images(images: np.ndarray, record: mf.Model, dtype) -> np.ndarray:
    """uint8 ``[B, H, W]`` -> ``pixel / 255`` as ``[B, *model.input_shape]``."""
    B = images.shape[0]
    n = int(np.prod(record.input_shape))
    if images[0].size != n:
        raise CLIError(f"the model expects inputs of shape {record.input_shape} ({n} values); "
                       f"the dataset's images are {images.shape[1:]}")
    return (images.astype(dtype) / dtype(255)).reshape((B,) + record.input_shape)


def _model_dtype(record: mf.Model):
    for layer in record.layers:
        for name in ("weight", "data"):
            a = getattr(layer, name, None)
            if isinstance(a, np.ndarray):
                return np.float64 if a.dtype == np.float64 else np.float32
    return np.float32


def _encode(record: mf.Model, images: np.ndarray, rng: np.random.Generator):
    """``(simulator input, dense-input maker)`` for a batch of uint8 images."""
    from . import inputs

    dtype = _model_dtype(record)
    x = _float_images(images, record, dtype)
    T = int(record.T)
    if record.encoding == "direct":
        from training.config import default_dtype

        with default_dtype(dtype):
            xs = inputs.direct(x, T)
        return xs, lambda: xs
    if record.encoding == "rate":
        ev = inputs.rate_code(x, T, rng)
        return ev, lambda: inputs.to_dense(ev, dtype=dtype)
    raise CLIError(f"the model's encoding is {record.encoding!r}: it needs an event dataset, "
                   "not images (direct or rate encoding only)")


def _total(x) -> int:
    """Sum of a synaptic-event count given as int, array or {layer: count} mapping."""
    if x is None:
        return 0
    if isinstance(x, dict):
        if "total" in x:  # a Recording's counts: per projection plus their total
            return int(x["total"])
        return int(sum(_total(v) for v in x.values()))
    return int(np.sum(np.asarray(x, dtype=np.float64)))


def _layer_index(key):
    try:
        return int(key)
    except (TypeError, ValueError):
        return None


def _spike_keys(rec_spikes, record: mf.Model) -> dict:
    """{model layer index: key in rec.spikes} for the recorded spiking layers."""
    out = {}
    for key in rec_spikes:
        idx = _layer_index(key)
        if idx is not None and 0 <= idx < len(record.layers) and isinstance(record.layers[idx], mf.Spiking):
            out[idx] = key
    return out


def _event_keys(s, T: int, B: int, n: int) -> np.ndarray:
    """Sorted unique flat keys ``(t * B + sample) * n + neuron`` of recorded spikes."""
    t = np.asarray(s.t, dtype=np.int64)
    b = np.asarray(s.sample, dtype=np.int64)
    i = np.asarray(s.neuron, dtype=np.int64)
    return np.unique((t * B + b) * n + i)


# ---------------------------------------------------------------------------------------
# dense engine
# ---------------------------------------------------------------------------------------
class _Dense:
    """The training engine's inference of a model: predictions and per-layer spikes."""

    def __init__(self, record: mf.Model):
        from training.export import to_network

        self.record = record
        self.net = to_network(record)
        self.aligned = len(self.net.layers) == len(record.layers) - 1
        tw = record.layers[-1].time_weights
        self.a = np.ones(int(record.T)) if tw is None else np.asarray(tw, dtype=np.float64)

    def run(self, x: np.ndarray):
        h, spikes = x, {}
        for idx, layer in enumerate(self.net.layers):
            h = layer.forward(h)
            if self.aligned and isinstance(self.record.layers[idx], mf.Spiking):
                spikes[idx] = h
        score = np.einsum("t,tbc->bc", self.a, np.asarray(h, dtype=np.float64))
        return np.argmax(score, axis=1), spikes


# ---------------------------------------------------------------------------------------
# subcommands
# ---------------------------------------------------------------------------------------
def _layer_info(i: int, layer, shape) -> dict:
    d = {"index": i, "kind": layer.kind, "output_shape": list(shape), "parameters": 0}
    if isinstance(layer, mf.Spiking):
        d.update(beta=layer.beta, theta=layer.theta, reset=layer.reset, v_reset=layer.v_reset,
                 v_min=layer.v_min, spikes=layer.spikes)
    elif isinstance(layer, mf.Readout):
        d.update(beta=layer.beta, time_weights="uniform" if layer.time_weights is None else "stored")
    else:
        arrays = [getattr(layer, name, None) for name in ("weight", "data", "bias")]
        d["parameters"] = int(sum(a.size for a in arrays if isinstance(a, np.ndarray)))
        if isinstance(layer, (mf.Dense, mf.Conv2d)):
            d["weight_shape"] = list(layer.weight.shape)
        if isinstance(layer, mf.Sparse):
            d["nnz"] = int(layer.data.size)
        if isinstance(layer, (mf.Dense, mf.Sparse, mf.Conv2d)):
            d["bias"] = layer.bias is not None
        for name in ("stride", "padding", "kernel", "shape"):
            if hasattr(layer, name):
                d[name] = [int(v) for v in getattr(layer, name)]
    return d


def cmd_info(args) -> int:
    record = _read_record(args.model)
    shapes = mf.validate(record)
    layers = [_layer_info(i, l, s) for i, (l, s) in enumerate(zip(record.layers, shapes))]
    conns = []
    for c in record.connections:
        p = c.projection
        n = sum(a.size for a in (getattr(p, "weight", None), getattr(p, "data", None),
                                 getattr(p, "bias", None)) if isinstance(a, np.ndarray))
        conns.append({"source": c.source, "target": c.target, "delay": c.delay,
                      "kind": p.kind, "parameters": n})
    _print_json({
        "path": str(args.model),
        "format": mf.FORMAT_NAME, "version": mf.FORMAT_VERSION,
        "threshold_test": mf.THRESHOLD_TEST,
        "input_shape": list(record.input_shape), "T": record.T, "encoding": record.encoding,
        "n_outputs": shapes[-1][0],
        "spiking_layers": record.spiking_layers,
        "neurons": int(sum(np.prod(shapes[i]) for i in record.spiking_layers)),
        "parameters": int(sum(l["parameters"] for l in layers) + sum(c["parameters"] for c in conns)),
        "layers": layers, "connections": conns, "metadata": dict(record.metadata),
    })
    return 0


def _dataset_for(args, record):
    name = args.dataset or _default_dataset(record)
    data = _load_dataset(name, args.split, args.data_dir, not args.no_download)
    return name, data


def _save_recording(rec, path: str) -> None:
    if hasattr(rec, "save"):
        rec.save(path)
        return
    from . import recording

    for name in ("save", "save_recording", "write_recording"):
        fn = getattr(recording, name, None)
        if fn is not None:
            fn(rec, path)
            return
    raise CLIError("this Recording cannot be saved (no Recording.save)")


def _add_profile(total, rows):
    """Per-phase profile rows (``Simulator.last_profile``) added to ``total`` (None: first)."""
    if total is None:
        return [dict(r) for r in rows]
    index = {(r["where"], r["phase"]): r for r in total}
    for r in rows:
        t = index.get((r["where"], r["phase"]))
        if t is None:
            total.append(dict(r))
        else:
            for k in ("cycles", "events", "neuron_updates"):
                t[k] += r[k]
    return total


def cmd_simulate(args) -> int:
    wall0 = time.perf_counter()
    record = _read_record(args.model)
    load, Simulator = _simulator_api()
    model = load(args.model)
    name, data = _dataset_for(args, record)
    n = len(data.labels) if args.limit is None else min(args.limit, len(data.labels))
    if n < 1:
        raise CLIError(f"no samples to simulate (--limit {args.limit}, dataset has {len(data.labels)})")
    rng = np.random.default_rng(args.seed)
    options = dict(schedule=args.schedule, constant_drive=args.constant_drive, leak=args.leak,
                   n_threads=args.threads)
    sim = Simulator(model, **options, **({"profile": True} if args.profile else {}))
    profile = None   # per-phase counters summed over the batches (--profile)
    dense = _Dense(record) if args.compare_dense else None
    shapes = mf.validate(record)
    T = int(record.T)

    correct = agree = 0
    syn_total = 0
    syn_layers: dict = {}
    sim_time = dense_time = 0.0
    mism: dict = {}
    totals: dict = {}
    spikes_sim: dict = {}
    spikes_dense: dict = {}
    saved = None
    from tqdm import tqdm

    bar = tqdm(total=n, unit="img", file=sys.stderr, desc="simulate",
               disable=args.no_progress or n < 500)
    try:
        for start in range(0, n, args.batch_size):
            stop = min(n, start + args.batch_size)
            B = stop - start
            labels = np.asarray(data.labels[start:stop])
            xs, make_dense = _encode(record, data.images[start:stop], rng)
            t0 = time.perf_counter()
            rec = sim.run(xs)
            sim_time += time.perf_counter() - t0
            if args.profile:
                profile = _add_profile(profile, sim.last_profile)
            pred = np.asarray(rec.predictions).reshape(-1)
            correct += int(np.sum(pred == labels))
            se = getattr(rec, "synaptic_events", None)
            syn_total += _total(se)
            if isinstance(se, dict):
                for k, v in se.items():
                    syn_layers[str(k)] = syn_layers.get(str(k), 0) + _total(v)
            keys = _spike_keys(getattr(rec, "spikes", {}) or {}, record)
            for idx, key in keys.items():
                spikes_sim[idx] = spikes_sim.get(idx, 0) + len(np.asarray(rec.spikes[key].t))
            if dense is not None:
                t0 = time.perf_counter()
                dpred, dspikes = dense.run(make_dense())
                dense_time += time.perf_counter() - t0
                agree += int(np.sum(dpred == pred))
                for idx, key in keys.items():
                    if idx not in dspikes:
                        continue
                    nn = int(np.prod(shapes[idx]))
                    dk = np.flatnonzero(np.asarray(dspikes[idx]).reshape(T * B * nn))
                    sk = _event_keys(rec.spikes[key], T, B, nn)
                    common = len(np.intersect1d(sk, dk, assume_unique=True))
                    mism[idx] = mism.get(idx, 0) + len(sk) + len(dk) - 2 * common
                    totals[idx] = totals.get(idx, 0) + T * B * nn
                    spikes_dense[idx] = spikes_dense.get(idx, 0) + len(dk)
            if args.out_recording and saved is None:
                _save_recording(rec, args.out_recording)
                saved = B
            bar.update(B)
    finally:
        bar.close()

    out = {
        "model": str(args.model), "dataset": name, "split": args.split, "n": n,
        "T": T, "encoding": record.encoding, "seed": args.seed, "batch_size": args.batch_size,
        "simulator": dict(options, schedule=getattr(sim, "schedule", args.schedule)),
        "accuracy": correct / n,
        "synaptic_events": syn_total,
        "synaptic_events_per_sample": syn_total / n,
        "events_per_second": syn_total / sim_time if sim_time > 0 else None,
        "simulate_time_s": sim_time,
    }
    if syn_layers:
        out["synaptic_events_per_layer"] = syn_layers
    if profile is not None:
        out["profile"] = profile
        from eventsim.simulator import format_profile
        print(format_profile(profile), file=sys.stderr)
    out["spikes_per_layer"] = {str(k): v for k, v in sorted(spikes_sim.items())}
    if dense is not None:
        out["dense_agreement"] = agree / n
        out["dense_time_s"] = dense_time
        out["spike_agreement"] = {str(k): 1.0 - mism[k] / totals[k] for k in sorted(totals)}
        out["dense_spikes_per_layer"] = {str(k): v for k, v in sorted(spikes_dense.items())}
    if args.out_recording:
        out["recording"] = {"path": args.out_recording, "samples": saved,
                            "note": "the first batch" if saved != n else "all samples"}
    out["wall_time_s"] = time.perf_counter() - wall0
    _print_json(out)
    return 0


def _top_neurons(s, n: int, k: int) -> np.ndarray:
    """Indices of the k most active neurons (ties and silence: lowest index first)."""
    counts = np.bincount(np.asarray(s.neuron, dtype=np.int64), minlength=n)[:n] if s is not None \
        else np.zeros(n, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    return np.sort(order[:min(k, n)]).astype(np.int64)


def cmd_plot(args) -> int:
    from .plot import plot_recording

    record = _read_record(args.model)
    load, Simulator = _simulator_api()
    model = load(args.model)
    name, data = _dataset_for(args, record)
    if not 0 <= args.sample < len(data.labels):
        raise CLIError(f"--sample {args.sample} outside [0, {len(data.labels)}) for {name}")
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise CLIError(f"output directory {out.parent} does not exist")
    rng = np.random.default_rng(args.seed)
    xs, _ = _encode(record, data.images[args.sample:args.sample + 1], rng)
    shapes = mf.validate(record)
    # first pass finds the busiest neurons, the second records their membranes
    rec = Simulator(model).run(xs)
    keys = _spike_keys(getattr(rec, "spikes", {}) or {}, record)
    record_membrane = {}
    for idx in record.spiking_layers:
        s = rec.spikes[keys[idx]] if idx in keys else None
        record_membrane[idx] = _top_neurons(s, int(np.prod(shapes[idx])), args.neurons)
    if args.neurons > 0:
        rec = Simulator(model, record_membrane=record_membrane).run(xs)
    plot_recording(rec, sample=0, model=record, out=str(out))
    pred = getattr(rec, "predictions", None)
    _print_json({
        "out": str(out), "dataset": name, "sample": args.sample,
        "label": int(data.labels[args.sample]),
        "prediction": None if pred is None else int(np.asarray(pred).reshape(-1)[0]),
        "membrane_neurons": {str(k): v for k, v in record_membrane.items()} if args.neurons else {},
    })
    return 0


# ---------------------------------------------------------------------------------------
# argument parsing
# ---------------------------------------------------------------------------------------
def _int_at_least(low: int, what: str):
    """argparse type: an int >= ``low``, else an error saying ``expected <what>``."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v
    return parse


_positive = _int_at_least(1, "a positive integer")
_non_negative = _int_at_least(0, "an integer >= 0")


def _add_data_args(p) -> None:
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="image dataset (default: the model's metadata 'dataset', else fashion-mnist)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    p.add_argument("--no-download", action="store_true", help="never download missing files")
    p.add_argument("--seed", type=int, default=0, help="seed of the rate encoder (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventsim",
                                     description="Event-driven simulator for exported spiking networks.")
    parser.add_argument("--traceback", action="store_true", help="show the full stack on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="print a model's layers, shapes, parameters and metadata as JSON")
    p.add_argument("model", metavar="MODEL")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("simulate", help="run a dataset through the simulator; print a JSON summary")
    p.add_argument("model", metavar="MODEL")
    _add_data_args(p)
    p.add_argument("--limit", type=_positive, default=None, help="first N samples only")
    p.add_argument("--batch-size", type=_positive, default=256)
    p.add_argument("--compare-dense", action="store_true",
                   help="also run the dense training engine; report prediction and spike agreement")
    p.add_argument("--out-recording", default=None, metavar="FILE",
                   help="save the (first batch's) recording to this HDF5 file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--schedule", choices=("auto", "time", "layer"), default="auto",
                   help="update order (default auto: layer by layer for feed-forward models)")
    p.add_argument("--constant-drive", choices=("step", "predict"), default="step",
                   help="populations with constant input: updated every step, or their "
                        "threshold crossings predicted (default step)")
    p.add_argument("--leak", choices=("repeat", "power"), default="repeat",
                   help="a lazy neuron's leak: stepped (exact, default) or one power")
    p.add_argument("--threads", type=_positive, default=None,
                   help="threads across samples (default: all cores)")
    p.add_argument("--profile", action="store_true",
                   help="count CPU cycles, events and neuron updates per phase of the event "
                        "loop; print a table on stderr and add it to the JSON as \"profile\"")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("plot", help="simulate one sample; draw rasters and membrane traces")
    p.add_argument("model", metavar="MODEL")
    _add_data_args(p)
    p.add_argument("--sample", type=_non_negative, default=0, help="index in the dataset split")
    p.add_argument("--neurons", type=_non_negative, default=5,
                   help="membrane traces per spiking layer (the most active neurons)")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.set_defaults(func=cmd_plot)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0, or 2 on error)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("eventsim: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line, no traceback (unless --traceback)
        if args.traceback:
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        if not isinstance(e, (CLIError, ValueError, OSError)):
            msg = f"{type(e).__name__}: {msg}"
        print(f"eventsim: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
