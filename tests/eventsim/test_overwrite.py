"""No writer replaces a file of another kind or its own input; replacing a file of the same
kind needs ``overwrite=True`` / ``--overwrite`` (figures excepted: they replace figures)."""
from __future__ import annotations

import numpy as np
import pytest

import eventsim
import training
from eventsim import cli, fileio
from snncore import modelfile as mf
from eventsim.recording import Recording, SpikeTrain
from training import optim
from training.checkpoint import load_checkpoint, save_checkpoint
from training.trainer import fit

T = 4


def _model() -> mf.Model:
    rng = np.random.default_rng(0)
    w1 = (rng.integers(-12, 16, (6, 784)) / 256).astype(np.float32)
    w2 = (rng.integers(-64, 64, (10, 6)) / 256).astype(np.float32)
    return mf.Model(input_shape=(1, 28, 28), T=T, encoding="direct",
                    layers=[mf.Flatten(), mf.Dense(w1), mf.Spiking(beta=0.5, theta=1.0),
                            mf.Dense(w2), mf.Readout()],
                    metadata={"dataset": "fashion-mnist-small"})


def _recording(B: int = 2) -> Recording:
    empty = np.zeros(0, np.int32)
    return Recording(readout=np.zeros((T, B, 10), np.float32), predictions=np.zeros(B, np.int64),
                     spikes={2: SpikeTrain(empty, empty, empty, None, 6)},
                     synaptic_events={"total": 0})


def _checkpoint(path, **kw):
    save_checkpoint(path, model_state={"w": np.arange(6.0)}, optimizer_state={"lr": 0.1},
                    epoch=1, step=5, **kw)


WRITERS = {
    "model": lambda p, **kw: mf.write_model(_model(), p, **kw),
    "checkpoint": _checkpoint,
    "recording": lambda p, **kw: _recording().save(p, **kw),
}


def _victims(tmp_path) -> dict:
    """One file of every kind the writers must not replace: {kind: (path, bytes)}."""
    out = {}
    for kind, write in WRITERS.items():
        write(tmp_path / f"victim_{kind}.h5")
    (tmp_path / "victim_text.txt").write_text("my notes\n")
    import h5py
    with h5py.File(tmp_path / "victim_hdf5.h5", "w") as f:
        f["data"] = np.arange(3)
    for p in sorted(tmp_path.glob("victim_*")):
        out[p.stem.removeprefix("victim_")] = (p, p.read_bytes())
    return out


# ------------------------------------------------------------------------------------------
# Python writers


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("overwrite", [False, True])
def test_writers_never_replace_another_kind(tmp_path, writer, overwrite):
    for kind, (path, before) in _victims(tmp_path).items():
        if kind == writer:
            continue
        with pytest.raises(FileExistsError, match=rf"{path.name} is an? .*refusing to replace"):
            WRITERS[writer](path, overwrite=overwrite)
        assert path.read_bytes() == before, f"{writer} changed the {kind} file"


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_same_kind_needs_overwrite(tmp_path, writer):
    path = tmp_path / "same.h5"
    WRITERS[writer](path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"same\.h5 already exists.*overwrite=True"):
        WRITERS[writer](path)
    assert path.read_bytes() == before
    WRITERS[writer](path, overwrite=True)
    assert fileio.file_kind(path) == writer


def test_empty_or_missing_target_is_written(tmp_path):
    (tmp_path / "empty.h5").write_bytes(b"")
    mf.write_model(_model(), tmp_path / "empty.h5")
    assert fileio.file_kind(tmp_path / "empty.h5") == "model"
    assert fileio.file_kind(tmp_path / "none.h5") is None


def _net():
    rng = np.random.default_rng(1)
    return training.Sequential(training.Linear(784, 6, rng=rng), training.LIF(tau=2.0),
                               training.Linear(6, 10, rng=rng))


@pytest.mark.parametrize("victim", ["checkpoint", "recording", "text"])
def test_export_refuses_other_kinds(tmp_path, victim):
    path, before = _victims(tmp_path)[victim]
    with pytest.raises(FileExistsError, match="refusing to replace it with a model file"):
        training.export(_net(), path, input_shape=(784,), T=T, overwrite=True)
    assert path.read_bytes() == before


def _fit(path, epochs=1, **kw):
    rng = np.random.default_rng(2)
    x, y = rng.random((8, 784)).astype(np.float32), rng.integers(0, 10, 8)
    net = _net()
    opt = optim.SGD(list(net.named_parameters()), lr=0.1)
    return fit(net, (x, y), T=2, epochs=epochs, batch_size=4, optimizer=opt,
               progress=False, checkpoint=path, **kw)


@pytest.mark.parametrize("resume", [False, True])
def test_fit_never_replaces_a_model_file(tmp_path, resume):
    path, before = _victims(tmp_path)["model"]
    with pytest.raises(FileExistsError, match="is a model file; refusing to replace it with a checkpoint"):
        _fit(path, resume=resume, overwrite=True)
    assert path.read_bytes() == before


def test_fit_keeps_an_existing_checkpoint_unless_told(tmp_path):
    path = tmp_path / "ck.h5"
    _fit(path, epochs=1)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"ck\.h5 already exists.*overwrite=True"):
        _fit(path, epochs=2)  # resume=False would silently start over
    assert path.read_bytes() == before
    _fit(path, epochs=2, resume=True)          # continuing it is fine
    assert load_checkpoint(path).epoch == 2
    _fit(path, epochs=1, overwrite=True)        # starting afresh, when asked
    assert load_checkpoint(path).epoch == 1


def test_plot_recording_never_replaces_data(tmp_path):
    pytest.importorskip("matplotlib")
    from eventsim import plot

    victims = _victims(tmp_path)
    for kind, (path, before) in victims.items():
        with pytest.raises(FileExistsError, match="refusing to replace it with a figure"):
            plot.plot_recording(_recording(), out=path)
        assert path.read_bytes() == before
    png = tmp_path / "fig.png"
    plot.plot_recording(_recording(), out=png)
    plot.plot_recording(_recording(), out=png)  # a figure replaces a figure
    assert fileio.file_kind(png) == "image"


def test_check_output_refuses_its_inputs(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n....")
    with pytest.raises(FileExistsError, match="is an input of this command"):
        fileio.check_output(src, "image", overwrite=True, inputs=[src])


# ------------------------------------------------------------------------------------------
# command line


def _one_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("eventsim: error: "), err
    return lines[0]


@pytest.mark.parametrize("argv, match", [
    (["simulate", "{model}", "--out-recording", "{model}"], "is an input of this command"),
    (["simulate", "{model}", "--out-recording", "{model}", "--overwrite"], "is an input"),
    (["simulate", "{model}", "--out-recording", "{checkpoint}", "--overwrite"],
     "is a checkpoint; refusing to replace it with a recording"),
    (["simulate", "{model}", "--out-recording", "{text}"], "is a file of another kind"),
    (["simulate", "{model}", "--out-recording", "{recording}"], "already exists.*--overwrite"),
    (["plot", "{model}", "--out", "{model}"], "is an input of this command"),
    (["plot", "{model}", "--out", "{recording}"], "is a recording; refusing to replace it with a figure"),
])
def test_cli_refuses_and_leaves_files_intact(tmp_path, capsys, argv, match):
    victims = _victims(tmp_path)
    argv = [a.format(**{k: str(p) for k, (p, _) in victims.items()}) for a in argv]
    rc = cli.main(argv + ["--dataset", "fashion-mnist-small"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert pytest.importorskip("re").search(match, _one_line(err))
    for kind, (path, before) in victims.items():
        assert path.read_bytes() == before, kind


class _StandIn:
    """A simulator returning an empty Recording of the right shape (no Numba needed)."""

    def __init__(self, model, **options):
        pass

    def run(self, x):
        return _recording(B=len(x[0]))


def test_cli_overwrite_replaces_a_recording(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(eventsim, "load", mf.read_model)
    monkeypatch.setattr(eventsim, "Simulator", _StandIn)
    victims = _victims(tmp_path)
    model, rec = str(victims["model"][0]), victims["recording"][0]
    argv = ["simulate", model, "--dataset", "fashion-mnist-small", "--limit", "3",
            "--out-recording", str(rec), "--overwrite"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert Recording.load(rec).batch_size == 3 and rec.read_bytes() != victims["recording"][1]
