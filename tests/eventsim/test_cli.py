"""The ``eventsim`` command line: parsing, JSON output, error exits, end-to-end runs.

The simulate/plot pipeline is exercised now against a stand-in simulator built on the dense
engine (same Recording API); the end-to-end test with the real ``eventsim.Simulator`` skips
until it exists.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

import eventsim
from eventsim import cli, inputs
from eventsim.recording import Recording, SpikeTrain
from snncore import modelfile as mf

REPO = Path(__file__).resolve().parents[2]


def _tiny_model(encoding="direct", T=8, seed=0, hidden=20) -> mf.Model:
    """784 -> hidden LIF -> 10 readout, dyadic weights (multiples of 2^-8)."""
    rng = np.random.default_rng(seed)
    w1 = (rng.integers(-12, 16, (hidden, 784)) / 256).astype(np.float32)
    w2 = (rng.integers(-64, 64, (10, hidden)) / 256).astype(np.float32)
    return mf.Model(input_shape=(1, 28, 28),
                    layers=[mf.Flatten(), mf.Dense(w1, np.zeros(hidden, np.float32)),
                            mf.Spiking(beta=0.5, theta=1.0), mf.Dense(w2), mf.Readout()],
                    T=T, encoding=encoding,
                    metadata={"dataset": "fashion-mnist-small", "method": "bptt", "seed": 3})


@pytest.fixture
def model_path(tmp_path):
    return str(mf.write_model(_tiny_model(), tmp_path / "tiny.h5"))


def _run(capsys, argv):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(err: str):
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("simulate")]
    assert len(lines) == 1, err
    assert lines[0].startswith("eventsim: error: ") and "Traceback" not in err
    return lines[0]


# -- parsing ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["simulate"], ["info"],
                                  ["simulate", "m.h5", "--limit", "0"],
                                  ["simulate", "m.h5", "--batch-size", "x"],
                                  ["simulate", "m.h5", "--dataset", "cifar"],
                                  ["plot", "m.h5"],  # --out is required
                                  ["plot", "m.h5", "--out", "a.png", "--sample", "-1"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_parser_defaults_and_help(capsys):
    a = cli.build_parser().parse_args(["simulate", "m.h5", "--compare-dense", "--limit", "5"])
    assert a.command == "simulate" and a.limit == 5 and a.compare_dense and a.batch_size == 256
    assert a.seed == 0 and a.dataset is None and a.split == "test" and a.out_recording is None
    a = cli.build_parser().parse_args(["plot", "m.h5", "--sample", "3", "--out", "f.png",
                                       "--dataset", "mnist"])
    assert a.sample == 3 and a.out == "f.png" and a.dataset == "mnist" and a.neurons == 5
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0 and "simulate" in capsys.readouterr().out


def test_version(capsys):
    import re

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.strip() == f"eventsim {cli.package_version()}"
    declared = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert eventsim.__version__ == declared  # the fallback agrees with the distribution


def test_version_falls_back_to_the_package(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert cli.package_version() == eventsim.__version__


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_help_shows_defaults():
    import argparse

    parser = cli.build_parser()
    subs = _subparsers(parser)
    assert {"info", "simulate", "plot"} <= set(subs)
    for name, p in [("eventsim", parser)] + sorted(subs.items()):
        text = " ".join(p.format_help().split())
        for action in p._actions:
            if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
                continue
            assert action.help, f"{name} {action.option_strings[0]}: no help text"
            shown = p._get_formatter()._expand_help(action)
            assert "default" in shown, f"{name} {action.option_strings[0]}: default not shown"
            assert shown.count("default") == 1, f"{name} {action.option_strings[0]}: {shown}"
            assert "".join(shown.split()) in "".join(text.split())  # wrapping aside
    simulate = " ".join(subs["simulate"].format_help().split())
    assert "(default: 256)" in simulate and "(default: test)" in simulate
    assert "(default: 5)" in " ".join(subs["plot"].format_help().split())


def test_console_script_is_declared():
    text = (REPO / "pyproject.toml").read_text()
    assert 'eventsim = "eventsim.cli:main"' in text


# -- info ---------------------------------------------------------------------------------
def test_info_prints_json(model_path, capsys):
    rc, out, err = _run(capsys, ["info", model_path, "--json"])
    assert rc == 0 and err == ""
    d = json.loads(out)
    assert d["format"] == "snn-model" and d["version"] == mf.FORMAT_VERSION
    assert d["input_shape"] == [1, 28, 28] and d["T"] == 8 and d["encoding"] == "direct"
    assert [l["kind"] for l in d["layers"]] == ["flatten", "dense", "spiking", "dense", "readout"]
    assert d["layers"][1]["output_shape"] == [20] and d["layers"][1]["parameters"] == 784 * 20 + 20
    assert d["layers"][2]["theta"] == 1.0 and d["layers"][2]["reset"] == "hard"
    assert d["parameters"] == 784 * 20 + 20 + 200 and d["neurons"] == 20 and d["n_outputs"] == 10
    assert d["metadata"] == {"dataset": "fashion-mnist-small", "method": "bptt", "seed": 3}


def _info_json(capsys, path):
    """``eventsim info`` as data (JSON is the default output, or asked for with --json)."""
    rc, out, err = _run(capsys, ["info", path])
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        rc, out, err = _run(capsys, ["info", "--json", path])
        assert rc == 0, err
        return json.loads(out)


def test_info_maps_sequential_positions_to_model_layers(tmp_path, capsys):
    """A net with BatchNorm: info shows where each model layer came from in the Sequential."""
    import training

    rng = np.random.default_rng(0)
    net = training.Sequential(training.Linear(6, 5, rng=rng), training.BatchNorm1d(5),
                              training.LIF(beta=0.5), training.Dropout(0.2, rng=rng),
                              training.Linear(5, 3, rng=rng)).eval()
    path = str(training.export(net, tmp_path / "bn.h5", input_shape=(6,), T=2))
    d = _info_json(capsys, path)
    assert [l["origin"] for l in d["layers"]] == [
        {"position": 0, "class": "Linear", "folded": [1]}, {"position": 2, "class": "LIF", "folded": []},
        {"position": 4, "class": "Linear", "folded": []}, None]
    assert d["sequential_to_model"] == {"0": 0, "1": 0, "2": 1, "4": 2}
    old = _info_json(capsys, str(mf.write_model(_tiny_model(), tmp_path / "old.h5")))
    assert old["sequential_to_model"] is None and all(l["origin"] is None for l in old["layers"])


def test_info_prints_an_aligned_table(tmp_path, capsys):
    model = _tiny_model()
    model.connections = [mf.Connection(2, 2, mf.Dense(np.zeros((20, 20), np.float32)), delay=2)]
    path = str(mf.write_model(model, tmp_path / "rec.h5"))
    rc, out, err = _run(capsys, ["info", path])
    assert rc == 0 and err == ""
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    lines = out.splitlines()
    head = dict(l.split(None, 1) if not l.startswith("input shape") else ("input shape", l[11:].strip())
                for l in lines[:6])
    assert head["model"] == path and head["format"].startswith(f"snn-model, version {mf.FORMAT_VERSION}")
    assert head["input shape"] == "(1, 28, 28)" and head["T"] == "8 steps" and head["encoding"] == "direct"
    assert head["totals"] == ("5 layers (1 spiking), 20 spiking neurons, 16,300 parameters, "
                              "10 outputs")
    k = lines.index("layers")
    header = lines[k + 1]
    assert header.split() == ["index", "kind", "output", "shape", "parameters", "neuron",
                              "parameters", "details"]
    rows = lines[k + 2:k + 7]
    assert [r.split()[:2] for r in rows] == [["0", "flatten"], ["1", "dense"], ["2", "spiking"],
                                             ["3", "dense"], ["4", "readout"]]
    # aligned: every row's kind starts in the header's "kind" column, parameters end in its column
    col, end = header.index("kind"), header.index("parameters") + len("parameters")
    assert all(r[col - 1] == " " and r[col] != " " for r in rows)
    assert [r[:end].split()[-1] for r in rows] == ["0", "15,700", "0", "200", "0"]
    assert "beta=0.5 theta=1 reset=hard v_reset=0 binary" in rows[2]
    assert "weight 20x784, bias" in rows[1] and "time_weights=uniform" in rows[4]
    c = lines.index("connections")
    assert lines[c + 2].split() == ["2", "2", "2", "dense", "400"]
    m = lines.index("metadata")
    assert [l.split() for l in lines[m + 1:]] == [["dataset", "fashion-mnist-small"],
                                                 ["method", "bptt"], ["seed", "3"]]


def test_info_table_shows_sequential_positions_when_known(model_path):
    d = cli._info(mf.read_model(model_path), model_path)
    assert "from Sequential" not in cli._info_text(d)  # a file without origins: no column
    origins = [None, {"position": 0, "class": "Linear", "folded": [1]},
               {"position": 2, "class": "LIF", "folded": []},
               {"position": 3, "class": "Linear", "folded": []}, None]
    for l, o in zip(d["layers"], origins):
        l["origin"] = o
    lines = cli._info_text(d).splitlines()
    k = lines.index("layers")
    header, rows = lines[k + 1], lines[k + 2:k + 7]
    col = header.index("from Sequential")
    assert [r[col:].split("  ")[0].strip() for r in rows] == [
        "-", "0 Linear (+1 folded)", "2 LIF", "3 Linear", "-"]
    end = header.index("parameters") + len("parameters")
    assert [r[:end].split()[-1] for r in rows] == ["0", "15,700", "0", "200", "0"]


def test_info_bad_files_exit_2_with_one_line(tmp_path, capsys):
    rc, out, err = _run(capsys, ["info", str(tmp_path / "missing.h5")])
    assert rc == 2 and out == "" and "does not exist" in _one_line_error(err)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    rc, out, err = _run(capsys, ["info", str(bad)])
    assert rc == 2 and "not a readable HDF5 file" in _one_line_error(err)
    rc, out, err = _run(capsys, ["info", str(tmp_path)])
    assert rc == 2 and "directory" in _one_line_error(err)
    import h5py

    p = mf.write_model(_tiny_model(), tmp_path / "v99.h5")
    with h5py.File(p, "r+") as f:
        f.attrs["version"] = 99
    rc, out, err = _run(capsys, ["info", str(p)])
    assert rc == 2 and "version" in _one_line_error(err) and "99" in err
    with h5py.File(p, "r+") as f:
        f.attrs["version"] = mf.FORMAT_VERSION
        f["layers/0001/weight"][0, 0] = np.nan
    rc, out, err = _run(capsys, ["info", str(p)])  # edited data no longer match the digest
    assert rc == 2 and "/layers/0001/weight is damaged" in _one_line_error(err)
    from tests import hdf5edit

    hdf5edit.edit(p, lambda f: None)  # an edit that updates the digests: the value is checked
    rc, out, err = _run(capsys, ["info", str(p)])
    assert rc == 2 and "weight" in _one_line_error(err) and "nan" in err


def test_traceback_flag_reraises(tmp_path):
    with pytest.raises(Exception):
        cli.main(["--traceback", "info", str(tmp_path / "missing.h5")])


def test_process_exit_status(tmp_path):
    r = subprocess.run([sys.executable, "-m", "eventsim.cli", "info", str(tmp_path / "no.h5")],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


# -- a stand-in simulator with the Recording API (the dense engine underneath) -------------
class _FakeSimulator:
    """``Simulator(model, record_membrane=...).run(x)`` -> Recording-like namespace."""

    drop_first_spike = False

    def __init__(self, model, record_membrane=None, **options):
        self.model = model
        self.record_membrane = record_membrane or {}
        self.options = options

    def run(self, x):
        from snncore.neuron import NeuronParams, canonical_step

        if isinstance(x, inputs.EventBatch):
            x = inputs.to_dense(x)
        x = np.asarray(x, dtype=np.float32)
        T, B = x.shape[:2]
        h, spikes, membrane, syn = x, {}, {}, {}
        for idx, rec in enumerate(self.model.layers):
            if isinstance(rec, mf.Flatten):
                h = h.reshape(T, B, -1)
            elif isinstance(rec, mf.Dense):
                h = h @ rec.weight.T + (0 if rec.bias is None else rec.bias)
            elif isinstance(rec, mf.Spiking):
                p = NeuronParams(rec.beta, rec.theta, rec.reset, rec.v_reset, rec.v_min)
                v = np.zeros(h.shape[1:], np.float32)
                u_all, s_all = np.empty_like(h), np.empty_like(h)
                for t in range(T):
                    u_all[t], s_all[t], v = canonical_step(v, h[t], p)
                h = s_all
                t, b, i = np.nonzero(h.reshape(T, B, -1))
                if self.drop_first_spike and len(t):
                    t, b, i = t[1:], b[1:], i[1:]
                spikes[idx] = SpikeTrain(sample=b.astype(np.int32), t=t.astype(np.int32),
                                         neuron=i.astype(np.int32), value=None,
                                         n_neurons=h[0, 0].size)
                syn[idx] = len(t) * 10
                if idx in self.record_membrane:
                    membrane[idx] = u_all.reshape(T, B, -1)[:, :, np.asarray(self.record_membrane[idx])]
        readout = np.asarray(h)
        rec = Recording(spikes=spikes, membrane=membrane, readout=readout,
                        membrane_neurons={k: np.asarray(v) for k, v in self.record_membrane.items()},
                        predictions=readout.sum(axis=0).argmax(axis=1), synaptic_events=syn)
        return rec


@pytest.fixture
def fake_simulator(monkeypatch):
    monkeypatch.setattr(eventsim, "load", mf.read_model, raising=False)
    monkeypatch.setattr(eventsim, "Simulator", _FakeSimulator, raising=False)
    return _FakeSimulator


def _dense_engine_available() -> bool:
    """``training.export.to_network`` needs the training layer modules (conv, pooling, ...)."""
    try:
        from training.export import to_network
        to_network(_tiny_model())
    except ImportError:
        return False
    return True


needs_dense = pytest.mark.skipif(not _dense_engine_available(),
                                 reason="training.export.to_network's layer modules not built yet")


def _reference_predictions(model, n):
    from snncore.datasets import load_fashion_mnist_small

    data = load_fashion_mnist_small("test")
    x = (data.images[:n].astype(np.float32) / np.float32(255)).reshape(n, 1, 28, 28)
    rec = _FakeSimulator(model).run(inputs.direct(x, model.T))
    return rec.predictions, data.labels[:n]


@pytest.mark.parametrize("encoding", ["direct", "rate"])
@pytest.mark.parametrize("compare", [False, pytest.param(True, marks=needs_dense)])
def test_simulate_summary_with_stand_in(tmp_path, capsys, fake_simulator, encoding, compare):
    model = _tiny_model(encoding=encoding)
    path = str(mf.write_model(model, tmp_path / "m.h5"))
    rec_path = tmp_path / "rec.h5"
    rc, out, err = _run(capsys, ["simulate", path, "--dataset", "fashion-mnist-small",
                                 "--limit", "50", "--batch-size", "16", "--seed", "4",
                                 "--out-recording", str(rec_path)]
                        + (["--compare-dense"] if compare else []))
    assert rc == 0, err
    d = json.loads(out)
    assert d["n"] == 50 and d["dataset"] == "fashion-mnist-small" and d["encoding"] == encoding
    assert 0.0 <= d["accuracy"] <= 1.0
    if compare:
        assert d["dense_agreement"] == 1.0 and d["spike_agreement"] == {"2": 1.0}
        assert d["spikes_per_layer"] == d["dense_spikes_per_layer"]
    else:
        assert "dense_agreement" not in d and "spike_agreement" not in d
    assert d["synaptic_events"] == 10 * d["spikes_per_layer"]["2"] > 0
    assert d["synaptic_events_per_sample"] == pytest.approx(d["synaptic_events"] / 50)
    assert d["events_per_second"] > 0 and d["wall_time_s"] >= d["simulate_time_s"] > 0
    assert d["recording"]["samples"] == 50 and rec_path.exists()
    saved = Recording.load(rec_path)
    assert saved.batch_size == 50 and saved.readout.shape == (8, 50, 10)
    assert np.mean(saved.predictions == _reference_predictions(model, 50)[1]) == d["accuracy"]
    assert sum(saved.spike_counts.values()) == d["spikes_per_layer"]["2"]
    if encoding == "direct":
        pred, labels = _reference_predictions(model, 50)
        assert d["accuracy"] == pytest.approx(np.mean(pred == labels))
    else:  # same seed, same summary
        rc, out2, _ = _run(capsys, ["simulate", path, "--dataset", "fashion-mnist-small",
                                    "--limit", "50", "--batch-size", "16", "--seed", "4"])
        assert json.loads(out2)["accuracy"] == d["accuracy"]


@needs_dense
def test_simulate_spike_agreement_counts_mismatches(model_path, capsys, fake_simulator,
                                                   monkeypatch):
    monkeypatch.setattr(_FakeSimulator, "drop_first_spike", True)
    rc, out, err = _run(capsys, ["simulate", model_path, "--dataset", "fashion-mnist-small",
                                 "--limit", "10", "--batch-size", "5", "--compare-dense"])
    assert rc == 0, err
    d = json.loads(out)
    total = 8 * 10 * 20  # T * n * neurons
    assert d["spike_agreement"]["2"] == pytest.approx(1 - 2 / total)  # one missing per batch
    assert d["dense_spikes_per_layer"]["2"] - d["spikes_per_layer"]["2"] == 2


def test_simulate_dataset_defaults_to_model_metadata(model_path, capsys, fake_simulator):
    rc, out, err = _run(capsys, ["simulate", model_path, "--limit", "3", "--no-progress"])
    assert rc == 0, err
    d = json.loads(out)
    assert d["dataset"] == "fashion-mnist-small" and d["split"] == "test" and d["n"] == 3


def test_simulate_errors(model_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(eventsim, "Simulator", None, raising=False)
    rc, out, err = _run(capsys, ["simulate", model_path, "--limit", "2"])
    assert rc == 2 and "simulator is not available" in _one_line_error(err)
    monkeypatch.setattr(eventsim, "load", mf.read_model, raising=False)
    monkeypatch.setattr(eventsim, "Simulator", _FakeSimulator, raising=False)
    rc, out, err = _run(capsys, ["simulate", str(tmp_path / "nope.h5")])
    assert rc == 2 and "does not exist" in _one_line_error(err)
    rc, out, err = _run(capsys, ["simulate", model_path, "--dataset", "mnist", "--data-dir",
                                 str(tmp_path / "empty"), "--no-download", "--limit", "2"])
    assert rc == 2 and out == ""
    _one_line_error(err)
    bad = _tiny_model()
    bad.input_shape = (1, 10, 10)
    bad.layers[1] = mf.Dense(np.zeros((20, 100), np.float32))
    p = mf.write_model(bad, tmp_path / "small_input.h5")
    rc, out, err = _run(capsys, ["simulate", str(p), "--dataset", "fashion-mnist-small", "--limit", "2"])
    assert rc == 2 and "expects inputs of shape (1, 10, 10)" in _one_line_error(err)
    ev = _tiny_model(encoding="events")
    p = mf.write_model(ev, tmp_path / "events.h5")
    rc, out, err = _run(capsys, ["simulate", str(p), "--dataset", "fashion-mnist-small", "--limit", "2"])
    assert rc == 2 and "event dataset" in _one_line_error(err)


def test_plot_with_stand_in(model_path, tmp_path, capsys, fake_simulator):
    out_png = tmp_path / "sample.png"
    rc, out, err = _run(capsys, ["plot", model_path, "--sample", "7", "--dataset",
                                 "fashion-mnist-small", "--out", str(out_png), "--neurons", "3"])
    assert rc == 0, err
    d = json.loads(out)
    assert d["sample"] == 7 and d["out"] == str(out_png) and 0 <= d["prediction"] < 10
    assert len(d["membrane_neurons"]["2"]) == 3
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, out, err = _run(capsys, ["plot", model_path, "--sample", "1000", "--dataset",
                                 "fashion-mnist-small", "--out", str(out_png)])
    assert rc == 2 and "--sample 1000 outside [0, 1000)" in _one_line_error(err)
    rc, out, err = _run(capsys, ["plot", model_path, "--dataset", "fashion-mnist-small",
                                 "--out", str(tmp_path / "no" / "dir.png")])
    assert rc == 2 and "does not exist" in _one_line_error(err)


# -- end to end with the real simulator ------------------------------------------------------
def _real_simulator_available():
    try:
        from eventsim import simulator  # noqa: F401
    except Exception:  # not written yet, or not importable yet
        return False
    return getattr(eventsim, "Simulator", None) is not None and getattr(eventsim, "load", None) is not None


@pytest.mark.skipif(not _real_simulator_available(), reason="eventsim.Simulator not built yet")
@pytest.mark.parametrize("options, schedule", [
    ([], "layer"),
    (["--schedule", "time", "--constant-drive", "predict", "--leak", "power", "--threads", "1"],
     "time"),
])
def test_simulate_end_to_end_real_simulator(model_path, tmp_path, capsys, options, schedule):
    pytest.importorskip("snncore.datasets")
    compare = _dense_engine_available()
    rc, out, err = _run(capsys, ["simulate", model_path, "--dataset", "fashion-mnist-small",
                                 "--limit", "20", "--batch-size", "8"] + options
                        + (["--compare-dense"] if compare else []))
    assert rc == 0, err
    d = json.loads(out)
    assert d["simulator"]["schedule"] == schedule
    assert d["simulator"]["partition"] == "pipeline"     # a feed-forward model: the general loop
    assert d["n"] == 20 and 0 <= d["accuracy"] <= 1
    assert d["synaptic_events"] > 0 and d["events_per_second"] > 0
    assert d["synaptic_events"] == d["synaptic_events_per_layer"]["total"]
    if compare:
        assert d["dense_agreement"] >= 0.9
        assert set(d["spike_agreement"]) == {"2"}
        assert all(0.99 <= v <= 1.0 for v in d["spike_agreement"].values())
    png = tmp_path / "p.png"
    rc, out, err = _run(capsys, ["plot", model_path, "--sample", "0", "--dataset",
                                 "fashion-mnist-small", "--out", str(png)])
    assert rc == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not _real_simulator_available(), reason="eventsim.Simulator not built yet")
def test_plot_kinds_readout_rates_counts(model_path, tmp_path, capsys):
    """--kind readout / rates (over --samples) / counts draw their figure; counts needs a
    conv layer and --samples may not run past the split (one-line errors, nothing written)."""
    conv = str(Path(__file__).resolve().parents[1] / "data" / "fmnist_conv.h5")
    for kind, model, extra in [("readout", model_path, []), ("rates", model_path, ["--samples", "5"]),
                               ("counts", conv, [])]:
        png = tmp_path / f"{kind}.png"
        rc, out, err = _run(capsys, ["plot", model, "--dataset", "fashion-mnist-small",
                                     "--sample", "3", "--kind", kind, "--out", str(png)] + extra)
        assert rc == 0, err
        d = json.loads(out)
        assert d["kind"] == kind and d["sample"] == 3 and d["samples"] == (5 if extra else 1)
        assert png.read_bytes()[:4] == b"\x89PNG"
    bad = tmp_path / "bad.png"
    rc, out, err = _run(capsys, ["plot", model_path, "--dataset", "fashion-mnist-small",
                                 "--kind", "counts", "--out", str(bad)])
    assert rc == 2 and "no convolutional spiking layer" in _one_line_error(err)
    rc, out, err = _run(capsys, ["plot", model_path, "--dataset", "fashion-mnist-small",
                                 "--kind", "rates", "--sample", "998", "--samples", "5",
                                 "--out", str(bad)])
    assert rc == 2 and "--samples 5 from --sample 998 runs past the 1000" in _one_line_error(err)
    assert not bad.exists()


@pytest.mark.skipif(not _real_simulator_available(), reason="eventsim.Simulator not built yet")
def test_out_recording_saves_every_batch(model_path, tmp_path, capsys):
    from tests.eventsim.test_recording import assert_same_recording

    pytest.importorskip("training.datasets")
    recs = {}
    for batch in (20, 7):  # one batch, then three (7 + 7 + 6)
        path = tmp_path / f"rec{batch}.h5"
        rc, out, err = _run(capsys, ["simulate", model_path, "--dataset", "fashion-mnist-small",
                                     "--limit", "20", "--batch-size", str(batch),
                                     "--out-recording", str(path)])
        assert rc == 0, err
        assert json.loads(out)["recording"] == {"path": str(path), "samples": 20}
        recs[batch] = Recording.load(path)
    assert recs[7].batch_size == 20 and set(recs[7].spikes[2].sample.tolist()) > {13, 19}
    assert_same_recording(recs[7], recs[20])


# -- event files as input --------------------------------------------------------------------
def _event_model(T=6, seed=0) -> mf.Model:
    """(2, 4, 5) events -> 12 LIF -> 3 readout, dyadic weights."""
    rng = np.random.default_rng(seed)
    w1 = (rng.integers(-4, 12, (12, 40)) / 16).astype(np.float32)
    w2 = (rng.integers(-16, 16, (3, 12)) / 16).astype(np.float32)
    return mf.Model(input_shape=(2, 4, 5), T=T, encoding="events",
                    layers=[mf.Flatten(), mf.Dense(w1), mf.Spiking(beta=0.5, theta=1.0),
                            mf.Dense(w2), mf.Readout()])


def _event_samples(n=7, seed=0):
    from tests.eventsim.test_eventfile import SENSOR, _sample

    rng = np.random.default_rng(seed)
    return [_sample(rng, int(k)) for k in rng.integers(0, 60, n)], SENSOR


@pytest.mark.parametrize("labelled", [True, False])
def test_simulate_event_file(tmp_path, capsys, fake_simulator, labelled):
    model = _event_model()
    path = str(mf.write_model(model, tmp_path / "m.h5"))
    evs, sensor = _event_samples()
    labels = np.arange(7) % 3 if labelled else None
    ev_path = str(inputs.save_events(tmp_path / "ev.h5", evs, labels, sensor, dt=10_000))
    rc, out, err = _run(capsys, ["simulate", path, "--events", ev_path, "--batch-size", "3",
                                 "--limit", "6"])
    assert rc == 0, err
    d = json.loads(out)
    assert d["dataset"] == ev_path and d["split"] is None and d["n"] == 6
    assert d["events"] == {"path": ev_path, "dt_us": 10_000.0, "sensor_size": [5, 4, 2],
                           "labels": labelled}
    ref = _FakeSimulator(model).run(inputs.from_tonic(evs[:6], sensor, 10_000, T=6))
    if labelled:
        assert d["accuracy"] == pytest.approx(np.mean(ref.predictions == labels[:6]))
    else:
        assert d["accuracy"] is None
    assert d["spikes_per_layer"]["2"] == len(ref.spikes[2]) > 0
    # --dt overrides the file's suggestion
    rc, out, err = _run(capsys, ["simulate", path, "--events", ev_path, "--dt", "5000"])
    assert rc == 0, err
    ref = _FakeSimulator(model).run(inputs.from_tonic(evs, sensor, 5000, T=6))
    assert json.loads(out)["spikes_per_layer"]["2"] == len(ref.spikes[2])


def test_simulate_event_file_errors(tmp_path, capsys, fake_simulator):
    path = str(mf.write_model(_event_model(), tmp_path / "m.h5"))
    evs, sensor = _event_samples()
    no_dt = str(inputs.save_events(tmp_path / "no_dt.h5", evs, None, sensor))
    rc, out, err = _run(capsys, ["simulate", path, "--events", no_dt])
    assert rc == 2 and "give --dt" in _one_line_error(err) and out == ""
    rc, out, err = _run(capsys, ["simulate", path, "--events", no_dt, "--dt", "100",
                                 "--dataset", "mnist"])
    assert rc == 2 and "--events and --dataset" in _one_line_error(err)
    wide = str(inputs.save_events(tmp_path / "wide.h5", evs, None, (6, 4, 2)))
    rc, out, err = _run(capsys, ["simulate", path, "--events", wide, "--dt", "100"])
    assert rc == 2 and "sensor_size (W, H, P) = (6, 4, 2)" in _one_line_error(err)
    with h5py.File(no_dt, "r+") as f:
        f["events/x"][2] = 5
    rc, out, err = _run(capsys, ["simulate", path, "--events", no_dt, "--dt", "100"])
    line = _one_line_error(err)
    assert rc == 2 and "no_dt.h5" in line and "events[0].x[2] = 5" in line
    rc, out, err = _run(capsys, ["simulate", path, "--events", str(tmp_path / "none.h5"), "--dt", "1"])
    assert rc == 2 and "event file" in _one_line_error(err) and "does not exist" in err
    with pytest.raises(SystemExit):
        cli.main(["simulate", path, "--events", no_dt, "--dt", "0"])
    assert "--dt: expected a finite number > 0, got 0" in capsys.readouterr().err


@pytest.mark.skipif(not _real_simulator_available(), reason="eventsim.Simulator not built yet")
def test_simulate_event_file_real_simulator(tmp_path, capsys):
    model = _event_model()
    path = str(mf.write_model(model, tmp_path / "m.h5"))
    evs, sensor = _event_samples(9, seed=3)
    labels = np.arange(9) % 3
    ev_path = str(inputs.save_events(tmp_path / "ev.h5", evs, labels, sensor, dt=8000))
    rec_path = tmp_path / "rec.h5"
    rc, out, err = _run(capsys, ["simulate", path, "--events", ev_path, "--batch-size", "4",
                                 "--out-recording", str(rec_path)]
                        + (["--compare-dense"] if _dense_engine_available() else []))
    assert rc == 0, err
    d = json.loads(out)
    ref = eventsim.Simulator(eventsim.load(path)).run(inputs.from_tonic(evs, sensor, 8000, T=6))
    assert d["accuracy"] == pytest.approx(np.mean(ref.predictions == labels))
    np.testing.assert_array_equal(Recording.load(rec_path).readout, ref.readout)
    if _dense_engine_available():
        assert d["dense_agreement"] == 1.0 and d["spike_agreement"] == {"2": 1.0}


def test_simulate_compare_dense_runs_a_feedback_conv_model(tmp_path, capsys):
    """``to_network`` cannot express a FeedbackConv's feedback between layers;
    ``--compare-dense`` then runs the network ``training.feedback_from_model`` rebuilds."""
    import training
    net = training.FeedbackConv(1, (2, 2), (28, 28), 10, neuron="IF", rng=3)
    for c in net.convs:
        c.weight.data *= 6.0
        c.bias.data += 0.5
    net.feedback.weight.data *= 4.0
    net.feedback.power_iteration(30)
    path = tmp_path / "fconv.h5"
    training.export(net, path, input_shape=(1, 28, 28), T=4)
    rc, out, err = _run(capsys, ["simulate", str(path), "--dataset", "fashion-mnist-small",
                                 "--limit", "12", "--batch-size", "6", "--compare-dense",
                                 "--no-progress"])
    assert rc == 0, err
    d = json.loads(out)
    assert d["dense_agreement"] == 1.0
    assert set(d["spike_agreement"]) == {"1", "3"}
    assert all(v == 1.0 for v in d["spike_agreement"].values())
    assert d["spikes_per_layer"]["3"] > 0
