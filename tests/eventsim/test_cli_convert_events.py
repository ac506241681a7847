"""``eventsim convert IMAGES OUT.h5``: images to an event file (eventsim.saccades)."""
from __future__ import annotations

import json

import numpy as np

from eventsim.cli import main
from eventsim.eventfile import load_events
from snncore import datasets
from snncore.fileio import check_output


def test_dataset_to_event_file(tmp_path, capsys):
    out = tmp_path / "ev.h5"
    assert main(["convert", "fashion-mnist-small", str(out), "--split", "test", "--start", "2",
                 "--limit", "3", "--frame-us", "2000"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == 3 and summary["sensor_size"] == [34, 34, 2]
    ef = load_events(out)
    assert len(ef) == 3 and ef.sensor_size == (34, 34, 2) and ef.dt == 50_000
    want = datasets.load_fashion_mnist_small("test").labels[2:5]
    assert ef.labels.tolist() == want.tolist()
    assert summary["events_per_sample"] == round(np.mean([len(e) for e in ef.events]), 1)


def test_npy_input_with_labels_and_no_silent_overwrite(tmp_path, capsys):
    imgs = (np.random.default_rng(0).random((2, 8, 8)) * 255).astype(np.uint8)
    np.save(tmp_path / "im.npy", imgs)
    np.save(tmp_path / "lab.npy", np.array([4, 2]))
    out = tmp_path / "ev.h5"
    args = ["convert", str(tmp_path / "im.npy"), str(out), "--labels", str(tmp_path / "lab.npy"),
            "--pad", "1", "--amplitude", "1.0", "--bin-us", "1000"]
    assert main(args) == 0
    ef = load_events(out)
    assert ef.sensor_size == (10, 10, 2) and ef.labels.tolist() == [4, 2] and ef.dt == 1000
    capsys.readouterr()
    before = out.read_bytes()
    assert main(args) == 2
    assert "already exists (an event file); pass overwrite=True" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(args + ["--overwrite", "--threshold", "0.5"]) == 0
    assert out.read_bytes() != before


def test_bad_inputs(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "none.npy"), str(tmp_path / "o.h5")]) == 2
    assert "neither a dataset" in capsys.readouterr().err
    np.save(tmp_path / "im.npy", np.zeros((2, 8, 8)))
    np.save(tmp_path / "lab.npy", np.zeros(3, np.int64))
    assert main(["convert", str(tmp_path / "im.npy"), str(tmp_path / "o.h5"), "--labels",
                 str(tmp_path / "lab.npy")]) == 2
    assert "3 labels for 2 images" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "im.npy"), str(tmp_path / "o.h5"), "--amplitude", "9"]) == 2
    assert "DVSConfig.amplitude" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "im.npy"), str(tmp_path / "im.npy"), "--overwrite"]) == 2
    assert "input of this command" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()


def test_overwrite_message_article(tmp_path):
    from eventsim.eventfile import save_events

    p = save_events(tmp_path / "e.h5", [], sensor_size=(2, 2, 2))
    try:
        check_output(p, "events")
    except FileExistsError as e:
        assert "(an event file)" in str(e)
    else:
        raise AssertionError("no FileExistsError")
