"""``eventsim train``: a TOML recipe on the command line (issue 22, parts 1 and 5).

Bad input (unknown keys or values, a missing dataset or config, an unwritable or occupied
output directory) exits with status 2 and one line naming the key or path, and writes
nothing; a good recipe writes config, checkpoint, model, summary and curves; the model's
metadata holds the recipe (``eventsim info``) and the model simulates as the dense engine
runs it; a budget-stopped run resumed with ``--resume`` ends as an uninterrupted one.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import eventsim
from eventsim import cli
from snncore import modelfile as mf
from training import recipes
from tests.eventsim.test_cli import _one_line_error, _run

TINY = """
[model]
hidden = [16]
[data]
train_limit = 16
test_limit = 8
[train]
T = 2
epochs = 2
batch_size = 8
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _train(capsys, config, out, *extra):
    return _run(capsys, ["train", str(config), "--out", str(out), "--no-progress", *extra])


def test_train_writes_every_output_and_info_shows_the_recipe(config, tmp_path, capsys):
    out = tmp_path / "run"
    rc, stdout, err = _train(capsys, config, out, "--set", "neuron.kind=klif", "--seed", "3")
    assert rc == 0, err
    report = json.loads(stdout)
    assert report["stopped"] == "finished" and report["epochs_done"] == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(
        list(recipes.FILES) + ["training_curves.png"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"]["neuron"]["kind"] == "klif"
    assert summary["recipe"]["train"]["seed"] == 3 and len(summary["history"]["epoch"]) == 2
    assert recipes.loads((out / "config.toml").read_text()).neuron.kind == "klif"
    rc, stdout, _ = _run(capsys, ["info", str(out / "model.h5"), "--json"])
    meta = json.loads(stdout)["metadata"]
    assert meta["neuron.kind"] == "klif" and meta["train.seed"] == 3
    assert meta["model.hidden"] == "[16]" and meta["method.name"] == "bptt"
    assert recipes.loads(meta["recipe"]) == recipes.loads((out / "config.toml").read_text())
    rc, stdout, _ = _run(capsys, ["info", str(out / "model.h5")])
    assert "neuron.kind" in stdout and "klif" in stdout
    recipe_line = next(l for l in stdout.splitlines() if l.strip().startswith("recipe "))
    assert recipe_line.split()[1:4] == ["[model]", "/", "preset"]   # one line per value
    assert "\npreset = " not in stdout


def test_stdout_is_one_json_object_with_progress_on(config, tmp_path, capsys):
    rc, stdout, err = _run(capsys, ["train", str(config), "--out", str(tmp_path / "run"),
                                    "--epochs", "1"])
    assert rc == 0 and json.loads(stdout)["epochs_done"] == 1
    assert "epoch 1/1: train loss" in err


def _no_files(tmp_path, keep):
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in keep)


@pytest.mark.parametrize("extra, needle", [
    (["--set", "model.hiden=[8]"], "model.hiden: unknown key (did you mean 'hidden'?)"),
    (["--set", "neuron.kind=lfi"], "neuron.kind: 'lfi' is not allowed (did you mean 'lif'?)"),
    (["--set", "train.lr=-1"], "train.lr: -1 is out of range; need > 0"),
    (["--set", "method.name=ide"], "method.name: 'ide' trains a feedback network"),
    (["--set", "hidden=3"], "--set hidden=3: expected table.key=value"),
    (["--set", "data.dataset=fashion-mnist", "--set", "data.dir=/nonexistent/fmnist"],
     "data.dir: /nonexistent/fmnist is not a directory"),
    (["--set", "data.dataset=events", "--set", "data.train_events=/nonexistent/train.h5",
      "--set", "data.test_events=/nonexistent/test.h5"],
     "data.train_events: event file /nonexistent/train.h5 does not exist"),
    (["--resume"], "--resume: "),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(extra, needle, config, tmp_path,
                                                            capsys):
    out = tmp_path / "run"
    rc, stdout, err = _train(capsys, config, out, *extra)
    line = _one_line_error(err)
    assert rc == 2 and stdout == "" and needle in line, line
    assert not out.exists()
    assert _no_files(tmp_path, {"tiny.toml"}) == []


def test_a_dataset_directory_without_the_files_is_named(config, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = _train(capsys, config, tmp_path / "run", "--set", "data.dataset=fashion-mnist",
                        "--set", f"data.dir='{empty}'")
    line = _one_line_error(err)
    assert rc == 2 and f"data.dir = {empty}" in line and "not found" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, needle", [
    ("[model\nhidden = 3", "not valid TOML"),
    ("[train]\nepochs = 'many'", "train.epochs: expected an integer, got 'many'"),
    ("[trian]\nepochs = 1", "trian: unknown key (did you mean 'train'?)"),
])
def test_a_bad_config_file_is_named(text, needle, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    rc, _, err = _train(capsys, path, tmp_path / "run")
    line = _one_line_error(err)
    assert rc == 2 and needle in line
    assert not (tmp_path / "run").exists()


def test_a_missing_config_file_is_named(tmp_path, capsys):
    rc, _, err = _train(capsys, tmp_path / "nope.toml", tmp_path / "run")
    assert rc == 2 and f"{tmp_path / 'nope.toml'}: config file does not exist" in \
        _one_line_error(err)


def test_an_unwritable_output_directory_is_named(config, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = blocker / "run"
    rc, _, err = _train(capsys, config, out)
    line = _one_line_error(err)
    assert rc == 2 and f"--out {out}: cannot write there" in line
    assert _no_files(tmp_path, {"tiny.toml", "file"}) == []
    rc, _, err = _train(capsys, config, blocker)
    assert rc == 2 and f"--out {blocker}: exists and is not a directory" in _one_line_error(err)


def test_an_occupied_output_directory_is_refused(config, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(capsys, config, out, "--epochs", "1")[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    rc, _, err = _train(capsys, config, out, "--epochs", "1")
    assert rc == 2 and "already holds a run" in _one_line_error(err)
    rc, _, err = _train(capsys, config, out, "--resume", "--epochs", "2")
    assert rc == 2 and "--resume: train.epochs = 2 differs" in _one_line_error(err)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_print_config_parses_back_to_the_defaults(capsys, tmp_path):
    rc, stdout, _ = _run(capsys, ["train", "--print-config"])
    assert rc == 0 and recipes.loads(stdout) == recipes.Recipe()
    target = tmp_path / "default.toml"
    rc, stdout, _ = _run(capsys, ["train", "--print-config", str(target)])
    assert rc == 0 and recipes.loads(target.read_text()) == recipes.Recipe()
    rc, _, err = _run(capsys, ["train", "--print-config", str(target)])
    assert rc == 2 and "already exists" in _one_line_error(err)


def test_print_config_shows_a_config_with_its_overrides(config, capsys):
    rc, stdout, _ = _run(capsys, ["train", str(config), "--set", "train.lr=0.01",
                                  "--epochs", "7", "--print-config"])
    r = recipes.loads(stdout)
    assert rc == 0 and r.train.lr == 0.01 and r.train.epochs == 7 and r.model.hidden == [16]


def _weights(path):
    model = mf.read_model(path)
    return [np.asarray(l.weight) for l in model.layers if hasattr(l, "weight")]


def test_resume_after_a_budget_stop_matches_an_uninterrupted_run(config, tmp_path, capsys):
    assert _train(capsys, config, tmp_path / "whole", "--epochs", "3")[0] == 0
    rc, stdout, _ = _train(capsys, config, tmp_path / "parts", "--epochs", "3",
                           "--set", "train.budget_seconds=1e-9")
    assert rc == 0 and json.loads(stdout)["stopped"] == "budget"
    assert json.loads(stdout)["epochs_done"] == 1
    resume = ["train", "--out", str(tmp_path / "parts"), "--resume", "--no-progress"]
    rc, stdout, err = _run(capsys, resume)      # the run's own config.toml: the budget again
    assert rc == 0, err
    assert json.loads(stdout)["stopped"] == "budget" and json.loads(stdout)["epochs_done"] == 2
    rc, stdout, err = _run(capsys, resume + ["--set", "train.budget_seconds=1e9"])
    assert rc == 0, err
    assert json.loads(stdout)["stopped"] == "finished" and json.loads(stdout)["epochs_done"] == 3
    for a, b in zip(_weights(tmp_path / "whole" / "model.h5"),
                    _weights(tmp_path / "parts" / "model.h5")):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sets", [
    [],
    ["model.preset=conv", "model.channels=[4]"],
    ["neuron.kind=klif"],
    ["neuron.kind=cuba"],
    ["neuron.spikes=ternary", "neuron.learn_amplitude=true"],
    ["method.decoder=two", "method.two_warmup=0"],
    ["method.name=ottt_a"],
    ["model.preset=feedback_mlp", "method.name=ide", "neuron.kind=if"],
], ids=["mlp", "conv", "klif", "cuba", "ternary", "two", "ottt", "feedback"])
def test_the_exported_model_simulates_as_the_dense_engine_runs_it(sets, config, tmp_path,
                                                                  capsys):
    out = tmp_path / "run"
    argv = [a for s in sets for a in ("--set", s)]
    assert _train(capsys, config, out, "--epochs", "1", *argv)[0] == 0
    rc, stdout, err = _run(capsys, ["simulate", str(out / "model.h5"), "--limit", "8",
                                    "--compare-dense", "--no-progress"])
    assert rc == 0, err
    report = json.loads(stdout)
    assert report["dataset"] == "fashion-mnist-small" and report["dense_agreement"] == 1.0


def test_rows_recurrent_model_simulates(config, tmp_path, capsys):
    out = tmp_path / "run"
    rc, _, err = _train(capsys, config, out, "--epochs", "1", "--set", "model.preset=recurrent",
                        "--set", "data.encoding=rows", "--set", "train.T=28")
    assert rc == 0, err
    from snncore import datasets

    x = datasets.load_fashion_mnist_small("test").float_images(np.float32)[:4, 0]
    rows = np.ascontiguousarray(x.transpose(1, 0, 2))            # [28, B, 28]
    import training

    model = mf.read_model(out / "model.h5")
    net = training.to_network(model)
    net.eval()
    dense = net.forward(rows).mean(axis=0).argmax(axis=1)
    rec = eventsim.Simulator(eventsim.load(model)).run(rows)
    np.testing.assert_array_equal(rec.predictions, dense)


def test_event_files_train_and_simulate(tmp_path, capsys):
    for split, n in (("train", 12), ("test", 6)):
        rc, _, err = _run(capsys, ["convert", "fashion-mnist-small", str(tmp_path / f"{split}.h5"),
                                   "--split", split, "--limit", str(n)])
        assert rc == 0, err
    config = tmp_path / "events.toml"
    config.write_text(f"""
[model]
preset = "conv"
channels = [4]
[data]
dataset = "events"
train_events = "{tmp_path / 'train.h5'}"
test_events = "{tmp_path / 'test.h5'}"
[train]
T = 6
epochs = 1
batch_size = 6
""")
    out = tmp_path / "run"
    rc, _, err = _train(capsys, config, out)
    assert rc == 0, err
    rc, stdout, err = _run(capsys, ["simulate", str(out / "model.h5"), "--events",
                                    str(tmp_path / "test.h5"), "--compare-dense", "--no-progress"])
    assert rc == 0, err
    assert json.loads(stdout)["dense_agreement"] == 1.0


def test_training_frames_count_the_events_the_simulator_bins(tmp_path, capsys):
    from training.recipes.events import read_frames

    path = tmp_path / "ev.h5"
    assert _run(capsys, ["convert", "fashion-mnist-small", str(path), "--limit", "3"])[0] == 0
    frames, labels, dt = read_frames(path, 5, None, None, "data.test_events", np.float64)
    ef = eventsim.eventfile.load_events(path)
    dense = eventsim.inputs.to_dense(ef.to_batch(dt, T=5), dtype=np.float64)   # [T, B, ...]
    np.testing.assert_array_equal(frames.swapaxes(0, 1).reshape(dense.shape), dense)
    np.testing.assert_array_equal(labels, ef.labels)
