"""The ``eventsim`` command line: simulate a model file, plot one sample, describe a model.

::

    eventsim --version
    eventsim info MODEL [--json]
    eventsim simulate MODEL [--dataset fashion-mnist] [--limit N] [--batch-size B]
                            [--compare-dense] [--seed S] [--out-recording FILE [--overwrite]]
                            [--dtype D]
    eventsim simulate MODEL --events FILE [--dt US] ...
    eventsim simulate MODEL ... --scheduler local:N|tcp://HOST:PORT   (needs .[distributed])
    eventsim sweep SPEC.toml --results runs.jsonl [--scheduler ...]   (docs/distributed.md)
    eventsim warmup [--dtype float32|float64|all]
    eventsim plot MODEL --sample I [--dataset ...] --out FILE.png
    eventsim convert DATASET|IMAGES.npy EVENTS.h5 [--split S] [--limit N] [--threshold C] ...
    eventsim convert MODEL.h5 NET.nir --dt SECONDS [--discretisation euler|exact|rockpool]
    eventsim convert NET.nir MODEL.h5 [--dt SECONDS] [--reset auto|zero|subtract] [--overwrite]
    eventsim train CONFIG.toml [--out DIR] [--set TABLE.KEY=VALUE ...] [--epochs N] [--seed N]
                               [--resume] [--no-progress]
    eventsim train [CONFIG.toml] --print-config [FILE]

``info`` prints a table (one JSON object with ``--json``), ``simulate`` one JSON object on
stdout; progress bars go to stderr.  Every ``--help`` shows the defaults.
Errors (missing or malformed model file, missing dataset, bad argument) print one line
``eventsim: error: ...`` on stderr and exit with status 2 (``--traceback`` shows the stack).
:func:`main` returns the exit status instead of exiting, so it can be called from Python;
argparse's own usage errors still raise ``SystemExit(2)``.

Images are encoded as the model says (``model.encoding``): "direct" feeds the analog image
``pixel / 255`` shaped to ``model.input_shape`` at every step; "rate" draws Bernoulli spikes
(:func:`eventsim.inputs.rate_code`), sample ``i`` of the dataset from
``np.random.default_rng([--seed, i])`` (:mod:`eventsim.seeding`), so the output does not
depend on ``--batch-size`` or on ``--scheduler`` (a Dask cluster, :mod:`eventsim.distributed`).
With ``--events FILE`` the samples of an event file (docs/event-files.md) are binned into
the model's T steps of ``--dt`` microseconds (:func:`eventsim.inputs.from_tonic`) instead.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from snncore import modelfile as mf
from snncore.fileio import check_output

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
    from snncore import datasets as ds

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


def _encode(record: mf.Model, images: np.ndarray, rng: np.random.Generator):
    """``(simulator input, dense-input maker)`` for a batch of uint8 images."""
    from . import inputs

    dtype = mf.model_dtype(record).type
    x = _float_images(images, record, dtype)
    T = int(record.T)
    if record.encoding == "direct":
        from snncore.dtypes import default_dtype

        with default_dtype(dtype):
            xs = inputs.direct(x, T)
        return xs, lambda: xs
    if record.encoding == "rate":
        # SampleSeeds: each sample from its own stream (simulate); else one generator
        ev = rng.rate_code(x, T) if hasattr(rng, "rate_code") else inputs.rate_code(x, T, rng)
        return ev, lambda: inputs.to_dense(ev, dtype=dtype)
    raise CLIError(f"the model's encoding is {record.encoding!r}: it needs an event dataset "
                   "(--events FILE), not images (direct or rate encoding only)")


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
        from training.export import feedback_from_model, to_network

        self.record = record
        self.feedback = False
        try:
            self.net = to_network(record)
        except ValueError as err:       # a feedback conv net: its own network class
            try:
                self.net = feedback_from_model(record)
            except ValueError:
                raise err from None
            self.feedback = True
        self.aligned = self.feedback or len(self.net.layers) == len(record.layers) - 1
        tw = record.layers[-1].time_weights
        self.a = np.ones(int(record.T)) if tw is None else np.asarray(tw, dtype=np.float64)

    def run(self, x: np.ndarray):
        """``(predictions [B], {spiking layer: spikes [T, B, ...]}, readout [T, B, n_out])``."""
        h, spikes = x, {}
        if self.feedback:
            h = self.net.forward(x)
            layers = (self.net.simulate(x, all_layers=True) if hasattr(self.net, "convs")
                      else [self.net.simulate(x)])
            spikes = dict(zip(self.record.spiking_layers, layers))
        for idx, layer in enumerate([] if self.feedback else self.net.layers):
            h = layer.forward(h)
            if self.aligned and isinstance(self.record.layers[idx], mf.Spiking):
                spikes[idx] = h
        score = np.einsum("t,tbc->bc", self.a, np.asarray(h, dtype=np.float64))
        return np.argmax(score, axis=1), spikes, h


# ---------------------------------------------------------------------------------------
# subcommands
# ---------------------------------------------------------------------------------------
def _per_layer_or_range(v):
    """A per-layer float as is; per-neuron values (format 3) as ``[min, max]``."""
    if isinstance(v, np.ndarray):
        return [float(v.min()), float(v.max())]
    return v


def _layer_info(i: int, layer, shape) -> dict:
    d = {"index": i, "kind": layer.kind, "output_shape": list(shape), "parameters": 0}
    if isinstance(layer, mf.Spiking):
        d.update(beta=_per_layer_or_range(layer.beta), theta=_per_layer_or_range(layer.theta),
                 reset=layer.reset, v_reset=layer.v_reset,
                 v_min=layer.v_min, spikes=layer.spikes)
        if layer.alpha is not None:   # a current-based neuron (format 4)
            d["alpha"] = _per_layer_or_range(layer.alpha)
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


def _origins_info(record, layers: list) -> dict | None:
    """Add each layer's origin in the training Sequential to its info dict ("origin": None if
    unknown); return ``{position: model layer}`` (folded BatchNorm positions map to the layer
    they were folded into), or None for a file without origins."""
    origins = record.origins or [None] * len(layers)
    mapping = {}
    for d, o in zip(layers, origins):
        d["origin"] = None if o is None else {"position": o.position, "class": o.cls,
                                              "folded": list(o.folded)}
        for p in () if o is None else (o.position,) + tuple(o.folded):
            mapping[str(p)] = d["index"]
    return mapping if record.origins is not None else None


def _info(record: mf.Model, path) -> dict:
    """Everything ``eventsim info`` shows, as the JSON object ``--json`` prints."""
    shapes = mf.validate(record)
    layers = [_layer_info(i, l, s) for i, (l, s) in enumerate(zip(record.layers, shapes))]
    sequential = _origins_info(record, layers)
    conns = []
    for c in record.connections:
        p = c.projection
        n = sum(a.size for a in (getattr(p, "weight", None), getattr(p, "data", None),
                                 getattr(p, "bias", None)) if isinstance(a, np.ndarray))
        conns.append({"source": c.source, "target": c.target, "delay": c.delay,
                      "kind": p.kind, "parameters": n})
    return {
        "path": str(path),
        "format": mf.FORMAT_NAME, "version": mf.format_version(record),
        "threshold_test": mf.THRESHOLD_TEST,
        "input_shape": list(record.input_shape), "T": record.T, "encoding": record.encoding,
        "n_outputs": shapes[-1][0],
        "spiking_layers": record.spiking_layers,
        "neurons": int(sum(np.prod(shapes[i]) for i in record.spiking_layers)),
        "parameters": int(sum(l["parameters"] for l in layers) + sum(c["parameters"] for c in conns)),
        "layers": layers, "connections": conns, "metadata": dict(record.metadata),
        "sequential_to_model": sequential,
    }


def _num(v) -> str:
    """A float as its shortest exact-enough text (0.5, 1, 1e-05)."""
    return f"{float(v):g}"


def _dims(shape) -> str:
    return "x".join(str(int(v)) for v in shape)


def _neuron_text(d: dict) -> str:
    """The neuron parameters of a spiking or readout layer's info, one line."""
    if d["kind"] == "spiking":
        parts = [f"beta={_num(d['beta'])}", f"theta={_num(d['theta'])}", f"reset={d['reset']}"]
        if d.get("alpha") is not None:
            a = d["alpha"]
            parts.insert(0, "alpha=" + (f"[{_num(a[0])}, {_num(a[1])}]" if isinstance(a, list)
                                        else _num(a)))
        if d["reset"] == "hard":
            parts.append(f"v_reset={_num(d['v_reset'])}")
        if d["v_min"] is not None:
            parts.append(f"v_min={_num(d['v_min'])}")
        parts.append(d["spikes"])
        return " ".join(parts)
    if d["kind"] == "readout":
        return f"beta={_num(d['beta'])} time_weights={d['time_weights']}"
    return ""


def _detail_text(d: dict) -> str:
    """Shapes of a projection or pooling layer's info, one line."""
    parts = []
    if "weight_shape" in d:
        parts.append(f"weight {_dims(d['weight_shape'])}")
    if "nnz" in d:
        parts.append(f"{_dims(d['shape'])} sparse, {d['nnz']} non-zeros")
    for name in ("kernel", "stride", "padding"):
        if name in d:
            parts.append(f"{name} {_dims(d[name])}")
    if "bias" in d:
        parts.append("bias" if d["bias"] else "no bias")
    return ", ".join(parts)


def _origin_text(o) -> str:
    """A layer's origin in the training Sequential: "2 LIF", "0 Linear (+1 folded)", "-"."""
    if not o:
        return "-"
    folded = ",".join(str(p) for p in o.get("folded", ()))
    return f"{o['position']} {o['class']}" + (f" (+{folded} folded)" if folded else "")


def _table(header: list, rows: list, right: set) -> list:
    """Lines of an aligned text table; columns in ``right`` are right-aligned."""
    widths = [max(len(str(r[j])) for r in [header] + rows) for j in range(len(header))]

    def line(r):
        cells = [str(c).rjust(w) if j in right else str(c).ljust(w)
                 for j, (c, w) in enumerate(zip(r, widths))]
        return "  ".join(cells).rstrip()
    return [line(header)] + [line(r) for r in rows]


def _short(v, width: int = 70) -> str:
    """A metadata value on one table line: newlines become " / ", long text is cut."""
    text = v if isinstance(v, str) else json.dumps(v, default=_json_default)
    text = " / ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text if len(text) <= width else text[:width - 3] + "..."


def _info_text(d: dict) -> str:
    """``eventsim info``'s human-readable view of :func:`_info`'s object."""
    n_spiking = len(d["spiking_layers"])
    head = [
        ("model", d["path"]),
        ("format", f"{d['format']}, version {d['version']} (spike when u {d['threshold_test']} theta)"),
        ("input shape", str(tuple(d["input_shape"]))),
        ("T", f"{d['T']} steps"),
        ("encoding", d["encoding"]),
        ("totals", f"{len(d['layers'])} layers ({n_spiking} spiking), {d['neurons']:,} spiking "
                   f"neurons, {d['parameters']:,} parameters, {d['n_outputs']} outputs"),
    ]
    w = max(len(k) for k, _ in head)
    lines = [f"{k.ljust(w)}  {v}" for k, v in head]
    rows = [[l["index"], l["kind"], str(tuple(l["output_shape"])), f"{l['parameters']:,}",
             _neuron_text(l), _detail_text(l)] for l in d["layers"]]
    header = ["index", "kind", "output shape", "parameters", "neuron parameters", "details"]
    if any(l.get("origin") for l in d["layers"]):  # files that record the Sequential positions
        header.insert(2, "from Sequential")
        for r, l in zip(rows, d["layers"]):
            r.insert(2, _origin_text(l.get("origin")))
    lines += ["", "layers"]
    lines += ["  " + s for s in _table(header, rows, right={0, len(header) - 3})]
    if d["connections"]:
        rows = [[c["source"], c["target"], c["delay"], c["kind"], f"{c['parameters']:,}"]
                for c in d["connections"]]
        lines += ["", "connections"]
        lines += ["  " + s for s in _table(["source", "target", "delay", "kind", "parameters"],
                                           rows, right={0, 1, 2, 4})]
    lines += ["", "metadata" + ("" if d["metadata"] else "  (none)")]
    if d["metadata"]:
        mw = max(len(str(k)) for k in d["metadata"])
        lines += [f"  {str(k).ljust(mw)}  {_short(v)}" for k, v in d["metadata"].items()]
    return "\n".join(lines)


def cmd_info(args) -> int:
    record = _read_record(args.model)
    d = _info(record, args.model)
    if args.json:
        _print_json(d)
    else:
        print(_info_text(d))
    return 0


def _check_data_dir(data_dir, name: str, from_metadata: bool, download: bool) -> None:
    """A given --data-dir must exist and be read by the dataset; never silently ignored."""
    if data_dir is None:
        return
    if name == "fashion-mnist-small":
        named_by = "the model's metadata names" if from_metadata else "--dataset names"
        raise CLIError(f"--data-dir {data_dir}: {named_by} the bundled fashion-mnist-small, "
                       "which reads no directory; pass --dataset fashion-mnist (or mnist) to read "
                       "the IDX files there, or drop --data-dir")
    if not Path(data_dir).is_dir():
        hint = " (create it to download the dataset into it)" if download else ""
        raise CLIError(f"--data-dir {data_dir} does not exist or is not a directory{hint}")


def _dataset_for(args, record):
    name = args.dataset or _default_dataset(record)
    _check_data_dir(args.data_dir, name, args.dataset is None, not args.no_download)
    data = _load_dataset(name, args.split, args.data_dir, not args.no_download)
    return name, data


class _Images:
    """An image dataset as simulator input: ``batch(start, stop, rng)`` encodes the images
    as the model says (:func:`_encode`)."""

    def __init__(self, data, record: mf.Model):
        self.data, self.record = data, record
        self.n, self.labels = len(data.labels), data.labels

    def batch(self, start: int, stop: int, rng):
        """``rng``: a Generator, or :class:`eventsim.seeding.SampleSeeds` (each sample's
        stream seeded by its global index)."""
        if hasattr(rng, "at"):
            rng = rng.at(start)
        return _encode(self.record, self.data.images[start:stop], rng)


class _Events:
    """An event file as simulator input: samples binned into the model's T steps of ``dt``
    microseconds (:func:`eventsim.inputs.from_tonic`), shaped to the model's input."""

    def __init__(self, events, record: mf.Model, dt: float):
        self.events, self.record, self.dt = events, record, dt
        self.n, self.labels = len(events), events.labels
        W, H, P = events.sensor_size
        n_in = int(np.prod(record.input_shape))
        if P * H * W != n_in:
            raise CLIError(f"the model expects inputs of shape {record.input_shape} ({n_in} values); "
                           f"the event file {events.path} has sensor_size (W, H, P) = "
                           f"{events.sensor_size}, {P * H * W} values")

    def batch(self, start: int, stop: int, rng):
        import dataclasses

        from . import inputs

        ev = self.events.to_batch(self.dt, T=int(self.record.T), start=start, stop=stop)
        ev = dataclasses.replace(ev, input_shape=tuple(self.record.input_shape))
        dtype = mf.model_dtype(self.record).type
        return ev, lambda: inputs.to_dense(ev, dtype=dtype)


def _input_for(args, record):
    """``(name, source)``: the image dataset, or the event file of ``--events``."""
    if args.events is None:
        name, data = _dataset_for(args, record)
        return name, _Images(data, record)
    from .eventfile import load_events

    if args.dataset is not None:
        raise CLIError("--events and --dataset are exclusive: simulate an event file or a dataset")
    events = load_events(args.events)
    dt = args.dt if args.dt is not None else events.dt
    if dt is None:
        raise CLIError(f"--events {args.events}: give --dt (the bin width in microseconds); "
                       "the event file suggests none")
    return str(args.events), _Events(events, record, dt)


def _save_recording(rec, path: str, overwrite: bool) -> None:
    if hasattr(rec, "save"):
        rec.save(path, overwrite=overwrite)
        return
    from . import recording

    for name in ("save", "save_recording", "write_recording"):
        fn = getattr(recording, name, None)
        if fn is not None:
            fn(rec, path)
            return
    raise CLIError("this Recording cannot be saved (no Recording.save)")


def _concatenate(recordings: list):
    """One Recording of every batch's (sample ids offset per batch; see Recording.concatenate)."""
    if len(recordings) == 1:
        return recordings[0]
    from .recording import Recording

    return Recording.concatenate(recordings)


def _as_dtype(x: np.ndarray, dtype) -> np.ndarray:
    """``x`` cast to ``dtype`` (a time-broadcast input stays a stride-0 view)."""
    x = np.asarray(x)
    if x.dtype == dtype:
        return x
    if x.ndim and x.strides[0] == 0:
        return np.broadcast_to(x[:1].astype(dtype), x.shape)
    return x.astype(dtype)


def _warm_kernels(sim, dense, first_sample, dtype) -> float:
    """Seconds to run one sample through the simulator (and the dense engine): the Numba
    kernels' compilation or cache load, kept out of the timed loop.  ``first_sample()``
    returns ``(simulator input, dense-input maker)`` drawn from its own generator, so the
    loop's encoder draws are the same with or without this call."""
    t0 = time.perf_counter()
    xs, make_dense = first_sample()
    sim.run(xs)
    if dense is not None:
        dense.run(_as_dtype(make_dense(), dtype))
    return time.perf_counter() - t0


class _DenseDiff:
    """Running comparison of the simulator with the dense engine: readout differences and,
    per spiking layer, the spikes only one engine emitted (neuron-step keys)."""

    def __init__(self):
        self.readout_max = 0.0
        self.readout_differ = self.readout_total = 0
        self.sim_only: dict = {}
        self.dense_only: dict = {}
        self.totals: dict = {}
        self.examples: list = []

    def add_readout(self, sim_readout, dense_readout) -> None:
        d = np.abs(np.asarray(sim_readout, np.float64) - np.asarray(dense_readout, np.float64))
        if d.size:
            self.readout_max = max(self.readout_max, float(d.max()))
        self.readout_differ += int(np.count_nonzero(d))
        self.readout_total += d.size

    def add_layer(self, idx: int, sim_keys, dense_keys, T: int, B: int, n: int, start: int) -> None:
        """Keys ``t * B * n + b * n + neuron`` (sorted, unique) of one batch's spikes."""
        sim_only = np.setdiff1d(sim_keys, dense_keys, assume_unique=True)
        dense_only = np.setdiff1d(dense_keys, sim_keys, assume_unique=True)
        self.sim_only[idx] = self.sim_only.get(idx, 0) + len(sim_only)
        self.dense_only[idx] = self.dense_only.get(idx, 0) + len(dense_only)
        self.totals[idx] = self.totals.get(idx, 0) + T * B * n
        for where, keys in (("sim", sim_only), ("dense", dense_only)):
            for k in keys[:max(0, 5 - len(self.examples))]:
                t, rest = divmod(int(k), B * n)
                b, j = divmod(rest, n)
                self.examples.append({"layer": idx, "sample": start + b, "step": t, "neuron": j,
                                      "spiked_in": where})

    def report(self) -> dict:
        layers = sorted(self.totals)
        return {
            "spike_agreement": {str(k): 1.0 - (self.sim_only[k] + self.dense_only[k]) / self.totals[k]
                                for k in layers},
            "flipped_spikes_per_layer": {str(k): {"sim_only": self.sim_only[k],
                                                  "dense_only": self.dense_only[k]} for k in layers},
            "flipped_spike_examples": sorted(self.examples, key=lambda e: (
                e["layer"], e["sample"], e["step"], e["neuron"])),
            "readout_max_abs_diff": self.readout_max,
            "readout_entries_differing": self.readout_differ,
            "readout_entries": self.readout_total,
        }


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
    if getattr(args, "scheduler", None):   # a Dask cluster (eventsim.distributed)
        from .distributed import simulate_command

        return simulate_command(args)
    wall0 = time.perf_counter()
    record = _read_record(args.model)
    if args.out_recording:  # before any work: never replace the model, data or another file
        check_output(args.out_recording, "recording", args.overwrite,
                     inputs=[args.model] + ([args.events] if args.events else []))
    load, Simulator = _simulator_api()
    dtype = None if args.dtype is None else np.dtype(args.dtype).type
    model = load(args.model) if dtype is None else load(args.model, dtype=dtype)
    name, data = _input_for(args, record)
    n = data.n if args.limit is None else min(args.limit, data.n)
    if n < 1:
        raise CLIError(f"no samples to simulate (--limit {args.limit}, {name} has {data.n})")
    from .seeding import SampleSeeds

    rng = SampleSeeds(args.seed)   # sample i: default_rng([seed, i]), whatever the batching
    options = dict(schedule=args.schedule, constant_drive=args.constant_drive, leak=args.leak,
                   n_threads=args.threads, dense_input=args.dense_input)
    sim = Simulator(model, **options, **({"profile": True} if args.profile else {}))
    profile = None   # per-phase counters summed over the batches (--profile)
    net = getattr(sim, "network", None)
    dtype = np.dtype(net.dtype).type if net is not None else (dtype or mf.model_dtype(record).type)
    if args.compare_dense:
        from .network import cast_model

        dense = _Dense(record if dtype == mf.model_dtype(record).type else cast_model(record, dtype))
    else:
        dense = None
    shapes = mf.validate(record)
    T = int(record.T)
    compile_time = _warm_kernels(
        sim, dense, lambda: data.batch(0, 1, np.random.default_rng(args.seed)), dtype)

    correct = agree = 0
    syn_total = 0
    syn_layers: dict = {}
    sim_time = dense_time = 0.0
    diff = _DenseDiff()
    spikes_sim: dict = {}
    spikes_dense: dict = {}
    recordings = []  # every batch's Recording, with --out-recording
    from tqdm import tqdm

    bar = tqdm(total=n, unit="img", file=sys.stderr, desc="simulate",
               disable=args.no_progress or n < 500)
    loop0 = time.perf_counter()   # the batch loop: encoding, simulation, comparison
    try:
        for start in range(0, n, args.batch_size):
            stop = min(n, start + args.batch_size)
            B = stop - start
            labels = None if data.labels is None else np.asarray(data.labels[start:stop])
            xs, make_dense = data.batch(start, stop, rng)
            t0 = time.perf_counter()
            rec = sim.run(xs)
            sim_time += time.perf_counter() - t0
            if args.profile:
                profile = _add_profile(profile, sim.last_profile)
            pred = np.asarray(rec.predictions).reshape(-1)
            correct += 0 if labels is None else int(np.sum(pred == labels))
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
                dpred, dspikes, dreadout = dense.run(_as_dtype(make_dense(), dtype))
                dense_time += time.perf_counter() - t0
                agree += int(np.sum(dpred == pred))
                diff.add_readout(rec.readout, dreadout)
                for idx, key in keys.items():
                    if idx not in dspikes:
                        continue
                    nn = int(np.prod(shapes[idx]))
                    dk = np.flatnonzero(np.asarray(dspikes[idx]).reshape(T * B * nn))
                    sk = _event_keys(rec.spikes[key], T, B, nn)
                    diff.add_layer(idx, sk, dk, T, B, nn, start)
                    spikes_dense[idx] = spikes_dense.get(idx, 0) + len(dk)
            if args.out_recording:
                recordings.append(rec)
            bar.update(B)
    finally:
        bar.close()
    loop_end = time.perf_counter()
    if args.out_recording:
        _save_recording(_concatenate(recordings), args.out_recording, args.overwrite)

    out = {
        "model": str(args.model), "dataset": name, "split": args.split, "n": n,
        "T": T, "encoding": record.encoding, "seed": args.seed, "batch_size": args.batch_size,
        "simulator": dict(options, schedule=getattr(sim, "schedule", args.schedule),
                          partition=getattr(sim, "partition", "pipeline"),
                          dtype=np.dtype(dtype).name),
        "accuracy": None if data.labels is None else correct / n,
        "synaptic_events": syn_total,
        "synaptic_events_per_sample": syn_total / n,
        "events_per_second": syn_total / sim_time if sim_time > 0 else None,
        "simulate_time_s": sim_time,
        "compile_time_s": compile_time,
    }
    if args.events is not None:
        out["split"] = None
        out["events"] = {"path": str(args.events), "dt_us": data.dt,
                         "sensor_size": list(data.events.sensor_size),
                         "labels": data.labels is not None}
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
        out.update(diff.report())
        out["dense_spikes_per_layer"] = {str(k): v for k, v in sorted(spikes_dense.items())}
    if args.out_recording:
        out["recording"] = {"path": args.out_recording, "samples": n}
    out["loop_time_s"] = loop_end - loop0
    out["wall_time_s"] = time.perf_counter() - wall0
    _print_json(out)
    return 0


def cmd_report(args) -> int:
    """``eventsim report MODEL``: synaptic operations, dense operations, firing rates, neuron
    updates and energy per layer, means per sample over the first ``--limit`` samples."""
    from .efficiency import CostTable, EfficiencyReport, efficiency_report

    costs = CostTable(ac_pj=args.ac_pj, mac_pj=args.mac_pj, neuron_update_pj=args.neuron_pj,
                      name=args.cost_name or ("45 nm CMOS, float32 (add 0.9 pJ, multiply "
                                              "3.7 pJ)" if (args.ac_pj, args.mac_pj) == (0.9, 4.6)
                                              else "user cost table"))
    record = _read_record(args.model)
    name, data = _input_for(args, record)
    n = min(args.limit, data.n)
    from .seeding import SampleSeeds

    rng = SampleSeeds(args.seed)   # sample i: default_rng([seed, i]), as in simulate
    reports = []
    for start in range(0, n, args.batch_size):
        xs, _ = data.batch(start, min(n, start + args.batch_size), rng)
        reports.append(efficiency_report(record, xs, costs=costs, n_threads=args.threads,
                                         dense_input=args.dense_input))
    report = EfficiencyReport.concatenate(reports)
    if args.json:
        out = dict(report.to_dict(), model=str(args.model), data=name, n=n, seed=args.seed)
        _print_json(out)
    else:
        print(f"{args.model} on {name}, {n} samples")
        print(report.format())
    return 0


def _neurons_to_watch(Simulator, model, record, xs, rec, shapes, k: int) -> dict:
    """{spiking layer: k neurons whose membranes cross threshold some of the time}
    (:func:`eventsim.plot.pick_neurons`); a layer with too few such neurons gets a second
    run recording all its membranes, so its silent neurons closest to threshold are chosen."""
    from .plot import pick_neurons, spike_counts

    readout = getattr(rec, "readout", None)
    T = int(np.shape(readout)[0]) if readout is not None else int(record.T)
    keys = _spike_keys(getattr(rec, "spikes", {}) or {}, record)
    counts = {}
    for idx in record.spiking_layers:
        n = int(np.prod(shapes[idx]))
        counts[idx] = spike_counts(rec.spikes[keys[idx]] if idx in keys else None, n)
    short = [idx for idx, c in counts.items() if np.sum((c > 0) & (c < T)) < min(k, len(c))]
    peaks = {}
    if short and k > 0:
        every = {idx: np.arange(len(counts[idx])) for idx in short}
        full = Simulator(model, record_membrane=every).run(xs)
        for idx in short:
            u = np.asarray(full.membrane[idx])[:, 0, :]
            ternary = getattr(record.layers[idx], "spikes", "binary") == "ternary"
            peaks[idx] = (np.abs(u) if ternary else u).max(axis=0)
    return {idx: pick_neurons(c, T, k, peak=peaks.get(idx)) for idx, c in counts.items()}


def _warm_dense(dtype) -> None:
    """Run the tiny feed-forward warm-up model through this command's own encode, simulate
    and dense-engine path (direct and rate input), so ``simulate --compare-dense`` finds
    the training engine's kernels compiled too."""
    import dataclasses

    from .network import load
    from .simulator import Simulator, warmup_models

    model = [m for m in warmup_models(dtype) if not m.connections][0]
    images = np.random.default_rng(0).integers(0, 256, size=(2,) + model.input_shape[1:],
                                               dtype=np.uint8)
    for encoding in ("direct", "rate"):
        record = dataclasses.replace(model, encoding=encoding)
        sim, dense = Simulator(load(record), n_threads=1), _Dense(record)
        _warm_kernels(sim, dense, lambda: _encode(record, images, np.random.default_rng(0)),
                      np.dtype(dtype).type)


def _cmd_sweep(args) -> int:
    """``eventsim sweep``: :func:`eventsim.sweep.sweep_command`."""
    from .sweep import sweep_command

    return sweep_command(args)


def cmd_warmup(args) -> int:
    """Compile the simulator's and the dense engine's kernels for each dtype into Numba's
    cache (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the sources)."""
    import numba

    from .simulator import warmup

    dtypes = ("float32", "float64") if args.dtype == "all" else (args.dtype,)
    seconds = {}
    for name in dtypes:
        t0 = time.perf_counter()
        warmup((np.dtype(name),))
        _warm_dense(np.dtype(name))
        seconds[name] = time.perf_counter() - t0
    _print_json({"compiled": list(dtypes), "seconds": seconds,
                 "numba_cache_dir": numba.config.CACHE_DIR or "__pycache__ beside the sources"})
    return 0


#: what ``eventsim plot --kind`` draws
PLOT_KINDS = ("recording", "readout", "rates", "counts")


def cmd_plot(args) -> int:
    """``eventsim plot``: simulate sample ``--sample`` (``--samples`` of them for
    ``--kind rates``) and draw one figure of the kind asked for."""
    record = _read_record(args.model)
    load, Simulator = _simulator_api()
    model = load(args.model)
    name, data = _dataset_for(args, record)
    n = args.samples if args.kind == "rates" else 1
    if not 0 <= args.sample < len(data.labels):
        raise CLIError(f"--sample {args.sample} outside [0, {len(data.labels)}) for {name}")
    if args.sample + n > len(data.labels):
        raise CLIError(f"--samples {n} from --sample {args.sample} runs past the "
                       f"{len(data.labels)} samples of {name}")
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise CLIError(f"output directory {out.parent} does not exist")
    check_output(out, "image", inputs=[args.model])  # a figure replaces only a figure
    from .seeding import SampleSeeds

    rng = SampleSeeds(args.seed).at(args.sample)   # the sample's stream, as in simulate
    xs, _ = _encode(record, data.images[args.sample:args.sample + n], rng)
    shapes = mf.validate(record)
    label = int(data.labels[args.sample])
    classes = getattr(data, "classes", None)
    n_out = int(shapes[-1][0])
    class_names = classes if classes is not None and len(classes) == n_out else None
    # a first run counts spikes; the neurons that fire on some steps get their membranes recorded
    rec = Simulator(model).run(xs)
    record_membrane = {}
    if args.kind == "recording":
        from .plot import plot_recording

        record_membrane = _neurons_to_watch(Simulator, model, record, xs, rec, shapes, args.neurons)
        if args.neurons > 0:
            rec = Simulator(model, record_membrane=record_membrane).run(xs)
        plot_recording(rec, sample=0, model=record, out=str(out), dt=args.dt, true_label=label,
                       class_names=class_names)
    else:
        _plot_summary(args.kind, rec, record, shapes, label, class_names, args.dt, n).savefig(
            str(out), dpi=120)
    pred = getattr(rec, "predictions", None)
    _print_json({
        "out": str(out), "kind": args.kind, "dataset": name, "sample": args.sample,
        "samples": n, "label": label,
        "prediction": None if pred is None else int(np.asarray(pred).reshape(-1)[0]),
        "membrane_neurons": {str(k): v for k, v in record_membrane.items()} if args.neurons else {},
    })
    return 0


def _plot_summary(kind: str, rec, record, shapes, label: int, class_names, dt, n: int):
    """The Figure of ``plot --kind readout|rates|counts`` for a recording of ``n`` samples."""
    from . import plot

    if kind == "readout":
        readout = getattr(rec, "readout", None)
        if readout is None:
            raise CLIError("plot --kind readout: the model's output layer records no readout")
        preds = getattr(rec, "predictions", None)
        fig = plot._new_figure((8.0, 4.5))
        plot.readout(np.asarray(readout)[:, 0, :], ax=fig.subplots(),
                     class_names=plot._class_names(record, np.shape(readout)[2], class_names),
                     predicted=None if preds is None else int(np.asarray(preds).reshape(-1)[0]),
                     true_label=label, dt=dt)
        return fig
    keys = _spike_keys(getattr(rec, "spikes", {}) or {}, record)
    if kind == "rates":
        rates = {f"layer {key}": r for key, r in plot.layer_rates(rec, dt=dt).items()}
        if not rates:
            raise CLIError("plot --kind rates: the model has no spiking layer")
        fig = plot._new_figure((8.0, 4.5))
        plot.rate_histogram(rates, ax=fig.subplots(), unit="Hz" if dt else "spikes/step",
                            title=f"firing rates over {n} sample{'s' if n > 1 else ''}")
        return fig
    conv = [idx for idx in record.spiking_layers if len(shapes[idx]) == 3 and idx in keys]
    if not conv:
        raise CLIError("plot --kind counts: the model has no convolutional spiking layer "
                       "(spike-count maps need [C, H, W] layers)")
    fig = plot._new_figure((6.5, 5.0 * len(conv)))
    for ax, idx in zip(fig.subplots(len(conv), 1, squeeze=False)[:, 0], conv):
        plot.spike_count_map(rec.spikes[keys[idx]], ax=ax, layout="grid", sample=0,
                             title=f"layer {idx}: spikes per neuron")
    return fig


# ---------------------------------------------------------------------------------------
# argument parsing
# ---------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------
# convert: images to events (eventsim.saccades, docs/event-files.md)
# ---------------------------------------------------------------------------------------
def _add_convert_events_args(p) -> None:
    """The options of ``convert`` for images -> events (IN a dataset name or a .npy file)."""
    from .saccades import DVSConfig

    d = DVSConfig()
    g = p.add_argument_group("images to events (IN: " + ", ".join(DATASETS) + " or a .npy "
                             "file of [N, H, W] images; OUT: an event file)")
    g.add_argument("--split", choices=("test", "train"), default="test", help="dataset split")
    g.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    g.add_argument("--no-download", action="store_true", help="never download missing files")
    g.add_argument("--labels", default=None, metavar="FILE.npy",
                   help="labels [N] of a .npy input (datasets bring their own)")
    g.add_argument("--start", type=_non_negative, default=0, help="first image")
    g.add_argument("--limit", type=_positive, default=None, help="number of images (default all)")
    g.add_argument("--duration-us", type=_positive, default=d.duration_us,
                   help="length of the three saccades together (us)")
    g.add_argument("--saccades", type=_positive, default=d.n_saccades, help="number of saccades")
    g.add_argument("--amplitude", type=float, default=d.amplitude, help="saccade size (pixels)")
    g.add_argument("--pad", type=_non_negative, default=d.pad, help="sensor border around the image")
    g.add_argument("--frame-us", type=_positive, default=d.frame_us,
                   help="time between rendered positions (us)")
    g.add_argument("--threshold", type=_positive_float, default=d.threshold,
                   help="mean contrast threshold (log intensity)")
    g.add_argument("--threshold-sigma", type=float, default=d.threshold_sigma,
                   help="per-pixel threshold spread (mismatch)")
    g.add_argument("--refractory-us", type=_non_negative, default=d.refractory_us,
                   help="per-pixel refractory period (us)")
    g.add_argument("--sensor-seed", type=_non_negative, default=d.seed,
                   help="seed of the per-pixel thresholds")
    g.add_argument("--bin-us", type=_positive_float, default=None,
                   help="bin width (us) stored in the file for 'simulate --events' "
                        "(default: duration / 6)")
    g.add_argument("--compression", choices=("gzip", "none"), default="gzip",
                   help="HDF5 filter of the event columns (default gzip: deflate after "
                        "shuffle, several times smaller; any HDF5 reader decodes it)")


def _event_images(args):
    """``(images, labels)`` of the convert input: a dataset split or a .npy file."""
    src = args.input
    if src in DATASETS and not Path(src).exists():
        data = _load_dataset(src, args.split, args.data_dir, not args.no_download)
        images, labels = data.images, data.labels
    elif Path(src).suffix == ".npy" and Path(src).is_file():
        images = np.load(src, allow_pickle=False)
        labels = None if args.labels is None else np.load(args.labels, allow_pickle=False)
    else:
        raise CLIError(f"convert: input {src!r} is neither a dataset ({', '.join(DATASETS)}) "
                       "nor an existing .npy file of images")
    stop = None if args.limit is None else args.start + args.limit
    if args.start >= len(images):
        raise CLIError(f"convert: --start {args.start} is past the {len(images)} images of {src}")
    return images[args.start:stop], None if labels is None else labels[args.start:stop]


def _convert_events(args) -> int:
    """``convert IMAGES OUT.h5``: images watched by a simulated event camera in saccades
    (:mod:`eventsim.saccades`), written to an event file; prints a JSON summary."""
    from .saccades import DVSConfig, images_to_event_file

    cfg = DVSConfig(duration_us=args.duration_us, n_saccades=args.saccades,
                    amplitude=args.amplitude, pad=args.pad, frame_us=args.frame_us,
                    threshold=args.threshold, threshold_sigma=args.threshold_sigma,
                    refractory_us=args.refractory_us, seed=args.sensor_seed).check()
    check_output(args.output, "events", args.overwrite,
                 inputs=(args.input, getattr(args, "labels", None)))
    images, labels = _event_images(args)
    if labels is not None and len(labels) != len(images):
        raise CLIError(f"convert: {len(labels)} labels for {len(images)} images")
    bin_us = args.bin_us if args.bin_us is not None else args.duration_us / 6
    t0 = time.perf_counter()
    path, n = images_to_event_file(args.output, images, labels, cfg, dt=bin_us,
                                   overwrite=args.overwrite, compression=args.compression)
    _print_json({"input": args.input, "output": str(path), "to": "events", "samples": len(n),
                 "events_per_sample": round(float(n.mean()), 1) if len(n) else 0.0,
                 "sensor_size": [images.shape[-1] + 2 * cfg.pad, images.shape[-2] + 2 * cfg.pad, 2],
                 "bin_us": bin_us, "bytes": Path(path).stat().st_size,
                 "seconds": round(time.perf_counter() - t0, 2)})
    return 0


# ---------------------------------------------------------------------------------------
# convert: NIR in and out (docs/nir.md)
# ---------------------------------------------------------------------------------------
def _add_convert_nir_args(p) -> None:
    """The options of ``convert`` for NIR graphs."""
    p.add_argument("--dt", type=_positive_float, default=None, metavar="SECONDS",
                   help="NIR: seconds per step the time constants refer to (required when "
                        "writing NIR; when reading, default: the file's own if it reveals it)")
    p.add_argument("--reset", choices=("auto", "zero", "hard", "subtract"), default="auto",
                   help="NIR -> model: reset of the neurons (default auto: recorded in the "
                        "file, else the writing tool's convention, else NIR's reset to v_reset)")
    p.add_argument("--discretisation", choices=("auto", "euler", "exact", "rockpool"),
                   default="auto", help="how tau and r become a decay and a gain per step "
                   "(default auto: the writing tool's when reading, euler when writing)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output of the same kind (never another file)")


def _convert_nir(args) -> int:
    """``convert`` between a model file and a NIR graph (direction from the input's kind)."""
    from snncore import nir as snn_nir
    from snncore.fileio import file_kind

    kind = file_kind(args.input)
    if kind is None:
        raise CLIError(f"convert: input {args.input} does not exist")
    if kind == "model":
        if args.dt is None:
            raise CLIError("convert: writing NIR needs --dt (seconds per step of the model)")
        how = "euler" if args.discretisation == "auto" else args.discretisation
        snn_nir.export(args.input, args.output, dt=args.dt, discretisation=how,
                       overwrite=args.overwrite)
        _print_json({"input": args.input, "output": args.output, "to": "nir", "dt": args.dt,
                     "discretisation": how})
        return 0
    if kind != "nir":
        raise CLIError(f"convert: {args.input} is neither a model file nor a NIR graph ({kind})")
    model = snn_nir.load(args.input, dt=args.dt, reset=args.reset,
                         discretisation=args.discretisation)
    mf.write_model(model, check_output(args.output, "model", args.overwrite, inputs=(args.input,)),
                   overwrite=args.overwrite)
    _print_json({"input": args.input, "output": args.output, "to": "model",
                 "tool": model.metadata["nir_tool"], "dt": model.metadata["nir_dt"],
                 "discretisation": model.metadata["nir_discretisation"],
                 "reset": model.metadata["nir_reset"],
                 "layers": [l.kind for l in model.layers], "connections": len(model.connections)})
    return 0


def cmd_convert(args) -> int:
    """Dispatch ``convert`` on the input: a model file or NIR graph (NIR <-> model), else
    images (a dataset name or a .npy file) to an event file."""
    from snncore.fileio import file_kind

    if Path(args.input).suffix != ".npy" and file_kind(args.input) in ("model", "nir"):
        return _convert_nir(args)
    return _convert_events(args)


def _train_recipe(args):
    """The checked recipe of ``eventsim train``: CONFIG (or the run's config.toml with
    --resume and no CONFIG, or the defaults with --print-config), then --set, --epochs,
    --seed, in that order."""
    from training import recipes

    if args.config is not None:
        doc = recipes.load(args.config)
    elif args.resume and args.out is not None:
        doc = recipes.load(Path(args.out) / "config.toml")
    elif args.print_config is not None:
        doc = {}
    else:
        raise CLIError("train: give CONFIG.toml (or --resume --out DIR, or --print-config)")
    overrides = [recipes.parse_override(s) for s in args.set]
    if args.epochs is not None:
        overrides.append((["train", "epochs"], args.epochs))
    if args.seed is not None:
        overrides.append((["train", "seed"], args.seed))
    return recipes.from_dict(recipes.apply_overrides(doc, overrides))


def _train_out(args) -> Path:
    """``--out``, else ``runs/<CONFIG stem>``."""
    if args.out is not None:
        return Path(args.out)
    return Path("runs") / Path(args.config).stem


def _save_training_curves(history, path: Path) -> str | None:
    """Draw the per-epoch losses and accuracies (eventsim.plot.training_curves) to ``path``
    atomically; returns a warning instead when matplotlib is missing."""
    from snncore.fileio import atomic_output

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: training_curves.png skipped"
    from .plot import training_curves

    h = history.as_dict()
    metrics = {k: h[k] for k in ("train_loss", "test_loss", "train_acc", "test_acc")
               if h.get(k) and not all(np.isnan(h[k]))}
    if not metrics:
        return None
    ax = training_curves(metrics, title=path.parent.name)
    try:
        with atomic_output(path) as tmp:
            ax.figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(ax.figure)
    return None


def cmd_train(args) -> int:
    """``eventsim train``: a TOML recipe -> checkpoint, model, summary, curves in --out."""
    from training import recipes
    from training.trainer import TrainingInterrupted

    recipe = _train_recipe(args)
    if args.print_config is not None:
        text = recipes.to_toml(recipe)
        if args.print_config == "-":
            sys.stdout.write(text)
            return 0
        target = Path(args.print_config)
        if target.exists():
            raise CLIError(f"--print-config {target}: already exists; refusing to replace it")
        from snncore.fileio import atomic_output

        with atomic_output(target) as tmp:
            tmp.write_text(text)
        print(f"wrote {target}", file=sys.stderr)
        return 0
    prepared = recipes.prepare(recipe, _train_out(args), resume=args.resume)
    try:
        with contextlib.redirect_stdout(sys.stderr):    # fit's per-epoch lines: stdout is JSON
            result = recipes.train(prepared, progress=not args.no_progress)
    except TrainingInterrupted as e:
        held = (f"{prepared.out / 'checkpoint.h5'} holds epoch {e.checkpoint_epoch}; continue "
                f"with: eventsim train --out {prepared.out} --resume"
                if e.checkpoint_epoch is not None else "no epoch finished, nothing kept")
        print(f"eventsim: interrupted in epoch {e.epoch}; {held}", file=sys.stderr)
        return 130
    warning = _save_training_curves(result.history, prepared.out / "training_curves.png")
    if warning:
        print(f"eventsim: warning: {warning}", file=sys.stderr)
    files = dict(result.files)
    if warning is None:
        files["training_curves.png"] = str(prepared.out / "training_curves.png")
    _print_json({"out": str(prepared.out), "stopped": result.stopped,
                 "epochs_done": result.summary["epochs_done"],
                 "final": result.summary["final"], "files": files})
    return 0


def package_version() -> str:
    """The installed distribution's version (``importlib.metadata``), else the source tree's
    ``eventsim._version.__version__`` (a checkout run without ``pip install``)."""
    from importlib import metadata

    try:
        return metadata.version("snn-eventsim")
    except metadata.PackageNotFoundError:
        from ._version import __version__

        return __version__


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option's help, except flags (default off), options
    without a default (None) and texts that already say their default."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (not action.option_strings or default is None or default is False
                or default is argparse.SUPPRESS or "default" in text):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose help shows defaults; subcommand parsers inherit the class, so
    every subcommand's ``--help`` shows them too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


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


def _positive_float(s: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {s}")
    return v


def _nonnegative_float(s: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}") from None
    if not np.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {s}")
    return v


_positive = _int_at_least(1, "a positive integer")
_non_negative = _int_at_least(0, "an integer >= 0")


def _add_data_args(p) -> None:
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="image dataset (default: the model's metadata 'dataset', else fashion-mnist)")
    p.add_argument("--split", choices=("test", "train"), default="test", help="dataset split")
    p.add_argument("--data-dir", default=None,
                   help="directory holding the IDX files (default: the usual places, see README)")
    p.add_argument("--no-download", action="store_true", help="never download missing files")
    p.add_argument("--seed", type=_non_negative, default=0,
                   help="seed of the rate encoder (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="eventsim",
                     description="Event-driven simulator for exported spiking networks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--traceback", action="store_true", help="show the full stack on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="print a model's layers, shapes, parameters and metadata")
    p.add_argument("model", metavar="MODEL", help="model file (.h5)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of the table")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("simulate", help="run a dataset or an event file through the simulator; "
                                        "print a JSON summary")
    p.add_argument("model", metavar="MODEL")
    _add_data_args(p)
    p.add_argument("--limit", type=_positive, default=None,
                   help="first N samples only (default: all)")
    p.add_argument("--batch-size", type=_positive, default=256, help="samples per simulator run")
    p.add_argument("--compare-dense", action="store_true",
                   help="also run the dense training engine; report prediction and spike agreement")
    p.add_argument("--out-recording", default=None, metavar="FILE",
                   help="save the recording of every sample (all batches) to this HDF5 file (never "
                        "over the model or a file of another kind)")
    p.add_argument("--events", default=None, metavar="FILE",
                   help="simulate the samples of this event file (docs/event-files.md) "
                        "instead of an image dataset")
    p.add_argument("--dt", type=_positive_float, default=None, metavar="US",
                   help="with --events: bin width in microseconds (default: the file's 'dt')")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing recording at --out-recording")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--schedule", choices=("auto", "time", "layer"), default="auto",
                   help="update order (default auto: layer by layer for feed-forward models)")
    p.add_argument("--constant-drive", choices=("step", "predict"), default="step",
                   help="populations with constant input: updated every step, or their "
                        "threshold crossings predicted (default step)")
    p.add_argument("--leak", choices=("repeat", "power"), default="repeat",
                   help="a lazy neuron's leak: stepped (exact, default) or one power")
    p.add_argument("--dense-input", choices=("auto", "events", "current"), default="auto",
                   help="how a dense input array goes in: as events, as an analog current, or "
                        "(default auto) events for sparse spikes (Simulator(dense_input=...))")
    p.add_argument("--threads", type=_positive, default=None,
                   help="threads across samples (default: all cores)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="float type the simulation and the dense comparison compute in "
                        "(default: the model's); the inputs are the same for both")
    p.add_argument("--profile", action="store_true",
                   help="count CPU cycles, events and neuron updates per phase of the event "
                        "loop; print a table on stderr and add it to the JSON as \"profile\"")
    p.add_argument("--scheduler", default=None, metavar="local:N|tcp://HOST:PORT",
                   help="simulate chunks of --batch-size samples on a Dask cluster: N local "
                        "worker processes, or a running scheduler (needs the 'distributed' "
                        "extra; default: in this process)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("report", help="efficiency per layer and sample: synaptic operations "
                                      "(AC/MAC), dense operations, firing rates, energy")
    p.add_argument("model", metavar="MODEL")
    _add_data_args(p)
    p.add_argument("--events", default=None, metavar="FILE",
                   help="count on the samples of this event file instead of an image dataset")
    p.add_argument("--dt", type=_positive_float, default=None, metavar="US",
                   help="with --events: bin width in microseconds (default: the file's 'dt')")
    p.add_argument("--limit", type=_positive, default=100,
                   help="first N samples (default 100)")
    p.add_argument("--batch-size", type=_positive, default=50, help="samples per simulator run")
    p.add_argument("--ac-pj", type=_nonnegative_float, default=0.9,
                   help="energy of one accumulate in pJ (default 0.9: 45 nm, float32)")
    p.add_argument("--mac-pj", type=_nonnegative_float, default=4.6,
                   help="energy of one multiply-accumulate in pJ (default 4.6: 45 nm, float32)")
    p.add_argument("--neuron-pj", type=_nonnegative_float, default=0.0,
                   help="energy of one neuron update in pJ (default 0: not counted)")
    p.add_argument("--cost-name", default=None, help="name of the cost table in the output")
    p.add_argument("--dense-input", choices=("auto", "events", "current"), default="auto",
                   help="how a dense input array goes in (Simulator(dense_input=...))")
    p.add_argument("--threads", type=_positive, default=None,
                   help="threads across samples (default: all cores)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sweep", help="run every seed x setting of a TOML spec; one JSON line "
                                     "per finished run (docs/distributed.md)")
    p.add_argument("spec", metavar="SPEC.toml")
    p.add_argument("--results", required=True, metavar="FILE.jsonl",
                   help="results file: finished runs are appended and skipped on a restart")
    p.add_argument("--scheduler", default=None, metavar="local:N|tcp://HOST:PORT",
                   help="run on a Dask cluster (needs the 'distributed' extra; default: one "
                        "run after another in this process)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("warmup", help="compile every Numba kernel ahead into the on-disk cache")
    p.add_argument("--dtype", choices=("float32", "float64", "all"), default="all",
                   help="float types to compile for (default all)")
    p.set_defaults(func=cmd_warmup)

    p = sub.add_parser("plot", help="simulate one sample; draw rasters and membrane traces")
    p.add_argument("model", metavar="MODEL")
    _add_data_args(p)
    p.add_argument("--sample", type=_non_negative, default=0, help="index in the dataset split")
    p.add_argument("--neurons", type=_non_negative, default=5,
                   help="membrane traces per spiking layer: neurons that fire on about half "
                        "of the steps")
    p.add_argument("--dt", type=_positive_float, default=None, metavar="SECONDS",
                   help="step length: time axes in ms (default: in time steps)")
    p.add_argument("--kind", choices=PLOT_KINDS, default="recording",
                   help="recording: rasters, membrane traces and readout (default); readout: "
                        "the readout over time with class names; rates: histogram of the "
                        "neurons' firing rates per layer; counts: spike-count maps of the "
                        "conv layers, a tile per channel")
    p.add_argument("--samples", type=_positive, default=1,
                   help="--kind rates: rates over this many samples from --sample (default 1)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="figure to write (replaces an existing figure, never another file)")
    p.set_defaults(func=cmd_plot)
    p = sub.add_parser("convert", help="convert a model file to a NIR graph or back, or "
                                       "images to an event file (a simulated event camera "
                                       "watching them move in saccades)")
    p.add_argument("input", metavar="IN", help="model file (.h5), NIR graph (.nir), dataset "
                                               "name or .npy file of images")
    p.add_argument("output", metavar="OUT", help="file to write (.nir, .h5 model or event file)")
    _add_convert_nir_args(p)
    _add_convert_events_args(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("train", help="train a network from a TOML recipe; write checkpoint, "
                                     "model, summary and curves (README: Train from the "
                                     "command line)")
    p.add_argument("config", metavar="CONFIG.toml", nargs="?", default=None,
                   help="the recipe (eventsim train --print-config shows every key)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output directory (default: runs/<CONFIG name>)")
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="override one key, value in TOML syntax (train.lr=0.01, "
                        "model.hidden=[64,64], neuron.kind=klif); repeatable (default: none)")
    p.add_argument("--epochs", type=_positive, default=None, metavar="N",
                   help="override train.epochs")
    p.add_argument("--seed", type=_non_negative, default=None, metavar="N",
                   help="override train.seed")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (same recipe; "
                        "train.budget_seconds may change)")
    p.add_argument("--print-config", nargs="?", const="-", default=None, metavar="FILE",
                   help="print the recipe (the defaults, or CONFIG with the overrides), "
                        "every key commented, to stdout or FILE, and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)
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
