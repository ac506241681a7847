"""Byte-for-byte comparison of the Recordings of two checkouts on every benchmark model.

    cd <checkout A> && python benchmarks/check_identical.py --out /tmp/rec-A
    cd <checkout B> && python benchmarks/check_identical.py --out /tmp/rec-B
    python benchmarks/check_identical.py --compare /tmp/rec-A /tmp/rec-B

``--out`` runs seeded simulations of the benchmark models with the ``eventsim`` package of
the current directory (put first on ``sys.path``) and saves every array of each Recording
(readout, predictions, spikes per layer, membranes, synaptic event counts) as raw ``.npy``
files, one directory per run.  ``--compare`` compares two such directories file by file,
byte by byte, and exits with status 1 on the first listing of differences.

Runs (each one schedule "time" and, when the model is feed-forward, "layer"; each with and
without membranes recorded, since recording changes which update path a population takes):

- ``dense``, ``conv``, ``sparse``: bench_eventsim's throughput models (10 % Bernoulli input);
- ``mlp``: bench_eventsim's 1000-1000-1000-10 MLP at 2 % and 10 % input rates;
- ``convnet``: tests/data/fmnist_conv.h5 (direct input: analog drive; and binary events),
  also with ``constant_drive="predict"``; ``fmnist_mlp`` likewise;
- ``brian2``: bench_brian2's recurrent LIF network (delayed sparse connections), at a reduced
  size (``--brian2-scale``) with ``leak="repeat"`` and ``"power"``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np


def _setup_path():
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))            # the benchmark scripts (model builders)
    sys.path.insert(0, os.getcwd())          # the eventsim under test


def save_recording(rec, dest: Path):
    """Every array of a Recording as ``<dest>/<name>.npy`` (no pickles: plain dtypes)."""
    dest.mkdir(parents=True, exist_ok=True)
    arrays = {"readout": rec.readout, "predictions": rec.predictions}
    for layer, sp in rec.spikes.items():
        arrays[f"spikes{layer}_sample"] = sp.sample
        arrays[f"spikes{layer}_t"] = sp.t
        arrays[f"spikes{layer}_neuron"] = sp.neuron
        if sp.value is not None:
            arrays[f"spikes{layer}_value"] = sp.value
    for layer, m in rec.membrane.items():
        arrays[f"membrane{layer}"] = m
    names = sorted(rec.synaptic_events)
    arrays["synaptic_events"] = np.array([rec.synaptic_events[k] for k in names], np.int64)
    (dest / "synaptic_event_labels.txt").write_text("\n".join(names) + "\n")
    for name, a in arrays.items():
        np.save(dest / f"{name}.npy", np.ascontiguousarray(a), allow_pickle=False)


def runs(brian2_scale: float):
    """``(name, thunk)`` pairs; each thunk returns a Recording."""
    import eventsim
    import bench_eventsim as be
    from eventsim.inputs import from_dense, from_spike_times

    root = Path(os.getcwd())
    out = []

    def add(name, model, x, schedules=("time", "layer"), record=None, **kw):
        for sched in schedules:
            for rec_spec in (None, record):
                tag = f"{name}-{sched}" + ("-mem" if rec_spec else "")

                def thunk(model=model, x=x, sched=sched, rec_spec=rec_spec):
                    sim = eventsim.Simulator(model, n_threads=1, schedule=sched,
                                             record_membrane=rec_spec, **kw)
                    return sim.run(x)
                out.append((tag, thunk))

    sub = {1: np.arange(0, 1000, 7)}
    for kind in ("dense", "sparse", "conv"):
        B, shape = be.THROUGHPUT[kind]
        x = be.bernoulli_input(be.P_THROUGHPUT, B, shape, seed=1)
        add(kind, be.throughput_model(kind), x, record={1: np.arange(0, int(np.prod(
            (64, 16, 16) if kind == "conv" else (be.N,))), 13)})
    for p in (0.02, 0.10):
        x = be.bernoulli_input(p, 16, (be.N,), seed=1)
        add(f"mlp{int(p * 100)}", be.mlp_model(), x, record={1: sub[1], 3: "all"})
    rng = np.random.default_rng(5)
    for name, file in (("convnet", "fmnist_conv.h5"), ("fmnist_mlp", "fmnist_mlp.h5")):
        net = eventsim.load(str(root / "tests" / "data" / file))
        shape = net.input_shape
        img = rng.random((1, 8) + shape).astype(np.float32)
        ev = from_dense((rng.random((net.T, 8) + shape) < 0.2).astype(np.float32))
        rec_spec = {net.spiking_layers[0]: np.arange(0, net.layer_size(net.spiking_layers[0]), 5),
                    net.spiking_layers[-1]: "all"}
        add(f"{name}-drive", net, img, record=rec_spec)
        add(f"{name}-drive-predict", net, img, record=rec_spec, constant_drive="predict")
        add(f"{name}-events", net, ev, record=rec_spec)
        add(f"{name}-events-power", net, ev, record=rec_spec, leak="power")
    import bench_brian2 as bb
    p = dict(bb.DEFAULTS)
    p["N"] = max(200, int(p["N"] * brian2_scale))
    p["T"] = max(200, int(p["T"] * brian2_scale))
    net = bb.build_network(p, seed=2024)
    for dtype in (np.float32, np.float64):
        model = bb.make_model(net, p, np.dtype(dtype))
        x = from_spike_times(net["in_t"], net["in_src"], T=p["T"],
                                             input_shape=(int(net["n_in"]),),
                                             values=np.ones(len(net["in_t"]), dtype=dtype))
        for leak in ("repeat", "power"):
            add(f"brian2-{np.dtype(dtype).name}-{leak}", model, x, schedules=("time",),
                record={1: np.arange(0, p["N"], 3)}, leak=leak)
    return out


def digest(d: Path) -> dict:
    return {f.relative_to(d).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(d.rglob("*")) if f.is_file()}


def compare(a: Path, b: Path) -> int:
    da, db = digest(a), digest(b)
    bad = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
    print(f"{len(da)} files in {a}, {len(db)} in {b}; {len(bad)} differ")
    for k in bad[:40]:
        print("  differs:", k, "(missing)" if k not in da or k not in db else "")
    return 1 if bad or not da else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="save the recordings here")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("DIR_A", "DIR_B"))
    ap.add_argument("--brian2-scale", type=float, default=0.2,
                    help="N and T of bench_brian2's network times this (default 0.2)")
    ap.add_argument("--only", nargs="*", default=None, help="run names starting with these")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if not args.out:
        ap.error("give --out DIR or --compare DIR_A DIR_B")
    _setup_path()
    import eventsim
    print("eventsim from", eventsim.__file__)
    for name, thunk in runs(args.brian2_scale):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        save_recording(thunk(), args.out / name)
        print("saved", name, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
