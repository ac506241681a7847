"""The command line names the option at fault: --seed, --data-dir."""
from __future__ import annotations

import pytest

from eventsim import cli
from snncore import modelfile as mf
from tests.eventsim.test_cli import _one_line_error, _run, _tiny_model


@pytest.fixture
def model_path(tmp_path):
    """A model whose metadata names the bundled fashion-mnist-small."""
    return str(mf.write_model(_tiny_model(), tmp_path / "tiny.h5"))


@pytest.mark.parametrize("command", [["simulate", "m.h5"], ["plot", "m.h5", "--out", "a.png"]])
def test_negative_seed_names_the_option(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(command + ["--seed", "-1"])
    assert e.value.code == 2
    assert "argument --seed: expected an integer >= 0, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["simulate", "plot"])
def test_data_dir_is_never_silently_ignored(command, model_path, tmp_path, capsys):
    extra = ["--out", str(tmp_path / "p.png")] if command == "plot" else ["--limit", "2"]
    # the model's metadata names fashion-mnist-small, which is bundled and reads no directory
    rc, out, err = _run(capsys, [command, model_path, "--data-dir", str(tmp_path),
                                 "--no-download"] + extra)
    line = _one_line_error(err)
    assert rc == 2 and out == ""
    assert f"--data-dir {tmp_path}" in line and "fashion-mnist-small" in line
    assert "model's metadata" in line and "--dataset fashion-mnist" in line


@pytest.mark.parametrize("download", [True, False])
def test_missing_data_dir_is_named(download, model_path, tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    rc, out, err = _run(capsys, ["simulate", model_path, "--dataset", "fashion-mnist",
                                 "--data-dir", str(missing), "--limit", "2"]
                        + ([] if download else ["--no-download"]))
    line = _one_line_error(err)
    assert rc == 2 and f"--data-dir {missing} does not exist" in line
    assert not missing.exists()             # nothing downloaded into a mistyped path
