"""Plots render with Agg (no pyplot, no global backend), return Axes/Figure, stay fast."""
from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from eventsim import plot  # noqa: E402


def _png_ok(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def _spikes(n_spikes, T, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, T, n_spikes), rng.integers(0, n, n_spikes)


def test_library_does_not_select_a_backend():
    import matplotlib

    before = matplotlib.get_backend() if "matplotlib.pyplot" in sys.modules else None
    t, i = _spikes(100, 10, 5)
    plot.raster(t, i)
    if before is None:
        assert "matplotlib.pyplot" not in sys.modules
    else:
        assert matplotlib.get_backend() == before


@pytest.mark.parametrize("method", ["auto", "markers", "image"])
def test_raster_returns_axes_and_renders(tmp_path, method):
    t, i = _spikes(500, 50, 20)
    ax = plot.raster(t, i, T=50, n=20, method=method, title="x")
    assert isinstance(ax, Axes)
    assert ax.get_xlim() == (-0.5, 49.5) and ax.get_ylim() == (-0.5, 19.5)
    ax.figure.savefig(tmp_path / "r.png")
    _png_ok(tmp_path / "r.png")


def test_raster_into_given_axes_and_empty_input(tmp_path):
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.raster([], [], ax=ax, T=10, n=3) is ax
    fig.savefig(tmp_path / "e.png")


def test_raster_image_counts_every_spike():
    t = np.array([0, 0, 3, 3, 3])
    i = np.array([1, 1, 2, 2, 0])
    ax = plot.raster(t, i, T=4, n=3, method="image")
    img = ax.images[0].get_array()
    assert img.shape == (3, 4) and img.sum() == 5 and img[1, 0] == 2 and img[2, 3] == 2


def test_raster_with_panels_returns_figure(tmp_path):
    T, n = 200, 40
    rng = np.random.default_rng(0)
    p = np.linspace(0.0, 0.3, n)
    t, i = np.nonzero(rng.random((T, n)) < p)
    fig = plot.raster(t, i, T=T, n=n, rate_panel=True, population_panel=True, dt=1e-3)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    fig.savefig(tmp_path / "p.png")
    _png_ok(tmp_path / "p.png")
    # one panel only, laid out inside a given Axes' slot
    fig2 = Figure()
    a, b = fig2.subplots(1, 2)
    out = plot.raster(t, i, ax=a, rate_panel=True)
    assert out is fig2 and len(fig2.axes) == 3   # b + raster + rate panel
    fig2.savefig(tmp_path / "p2.png")


def test_raster_validates():
    with pytest.raises(ValueError, match="equal length"):
        plot.raster([1, 2], [1])
    with pytest.raises(ValueError, match="method"):
        plot.raster([1], [1], method="fast")
    with pytest.raises(ValueError, match=">= 0"):
        plot.raster([1], [-1])


@pytest.mark.parametrize("kw", [{}, {"rate_panel": True, "population_panel": True}])
def test_raster_one_million_spikes_is_fast(tmp_path, kw):
    t, i = _spikes(1_000_000, 1000, 2000)
    t0 = time.perf_counter()
    out = plot.raster(t, i, **kw)
    fig = out if isinstance(out, Figure) else out.figure
    fig.savefig(tmp_path / "big.png", dpi=100)
    elapsed = time.perf_counter() - t0
    _png_ok(tmp_path / "big.png")
    assert elapsed < 20.0, f"1e6-spike raster took {elapsed:.1f} s"


def test_raster_one_million_markers_is_fast(tmp_path):
    t, i = _spikes(1_000_000, 1000, 2000, seed=1)
    t0 = time.perf_counter()
    plot.raster(t, i, method="markers").figure.savefig(tmp_path / "m.png", dpi=100)
    assert time.perf_counter() - t0 < 20.0


def test_membrane(tmp_path):
    rng = np.random.default_rng(0)
    tr = rng.normal(0.5, 0.4, (60, 3))
    ax = plot.membrane(tr, threshold=1.0, reset=0.0, dt=1.0, labels=["a", "b", "c"])
    assert isinstance(ax, Axes)
    # 3 traces, threshold and reset lines, one row of spike marks per trace that crossed
    crossed = int(np.any(tr >= 1.0, axis=0).sum())
    marks = [l for l in ax.lines if l.get_marker() == "|"]
    assert crossed >= 2 and len(marks) == crossed and len(ax.lines) == 3 + 2 + crossed
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["a", "b", "c"] and "threshold" in labels and "reset" in labels
    ax.figure.savefig(tmp_path / "m.png")
    _png_ok(tmp_path / "m.png")


def test_membrane_spike_marks_inputs():
    tr = np.zeros((10, 2))
    # explicit lists, mask, single trace
    ax = plot.membrane(tr, threshold=1.0, spikes_t=[np.array([1, 5]), np.array([], int)])
    marks = [l for l in ax.lines if l.get_marker() == "|"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [1, 5]
    mask = np.zeros((10, 2), bool)
    mask[3, 1] = True
    ax = plot.membrane(tr, threshold=1.0, spikes_t=mask, dt=0.5)
    marks = [l for l in ax.lines if l.get_marker() == "|"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [1.5]
    ax = plot.membrane(np.arange(5.0), threshold=None, spikes_t=np.array([2]))
    assert isinstance(ax, Axes)
    # ternary: -theta crossings are spikes too
    ax = plot.membrane(np.array([0.0, -1.5, 0.2, 1.2]), threshold=1.0, ternary=True)
    marks = [l for l in ax.lines if l.get_marker() == "|"]
    assert list(marks[0].get_xdata()) == [1, 3]
    with pytest.raises(ValueError, match="labels"):
        plot.membrane(tr, 1.0, labels=["x"])
    with pytest.raises(ValueError, match="list of arrays"):
        plot.membrane(tr, 1.0, spikes_t=np.array([1]))


@pytest.mark.parametrize("kind", ["box", "bar"])
def test_firing_rates(tmp_path, kind):
    rng = np.random.default_rng(0)
    fig = Figure()
    ax = fig.add_subplot()
    out = plot.firing_rates({"conv1": rng.random(100), "fc1": rng.random((4, 8)) * 0.1,
                             "empty": np.array([])}, ax=ax, kind=kind)
    assert out is ax
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv1", "fc1", "empty"]
    fig.savefig(tmp_path / "f.png")
    _png_ok(tmp_path / "f.png")
    with pytest.raises(ValueError):
        plot.firing_rates({})
    with pytest.raises(ValueError, match="non-finite"):
        plot.firing_rates({"a": [np.nan]})


def test_training_curves(tmp_path):
    ax = plot.training_curves({"train_loss": [2.0, 1.2, 0.9], "test_loss": [2.1, 1.4, 1.1],
                               "test_acc": [0.4, 0.6, 0.7]})
    assert isinstance(ax, Axes) and hasattr(ax, "right_ax")
    assert len(ax.lines) == 2 and len(ax.right_ax.lines) == 1
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    ax.figure.savefig(tmp_path / "c.png")
    _png_ok(tmp_path / "c.png")
    ax = plot.training_curves({"accuracy": [0.1, 0.2]})
    assert not hasattr(ax, "right_ax") and len(ax.lines) == 1


# -- recordings ---------------------------------------------------------------------------
def _synthetic_recording(T=30, B=2, k=3, seed=0):
    """An object with the Recording API: spikes[layer].(sample, t, neuron), membrane
    [T, B, k] before reset, readout [T, B, n_out], predictions [B]."""
    from snncore import modelfile as mf

    rng = np.random.default_rng(seed)
    model = mf.Model(input_shape=(8,), layers=[
        mf.Dense(rng.normal(size=(6, 8)).astype(np.float32)), mf.Spiking(beta=0.9, theta=1.0),
        mf.Dense(rng.normal(size=(5, 6)).astype(np.float32)),
        mf.Spiking(beta=0.5, theta=0.5, reset="subtract"),
        mf.Dense(rng.normal(size=(4, 5)).astype(np.float32)), mf.Readout()], T=T)
    spikes, membrane = {}, {}
    for layer, n in ((1, 6), (3, 5)):
        s = rng.random((B, T, n)) < 0.2
        b, t, i = np.nonzero(s)
        spikes[layer] = SimpleNamespace(sample=b, t=t, neuron=i)
        membrane[layer] = rng.normal(0.4, 0.5, (T, B, k))
    readout = rng.normal(size=(T, B, 4))
    return SimpleNamespace(spikes=spikes, membrane=membrane, readout=readout,
                           predictions=readout.sum(0).argmax(1), model=model)


def test_plot_recording_synthetic(tmp_path):
    rec = _synthetic_recording()
    out = tmp_path / "rec.png"
    fig = plot.plot_recording(rec, sample=1, out=out)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 + 2 + 1
    _png_ok(out)
    assert fig.axes[0].get_ylim() == (-0.5, 5.5)       # layer size from the model
    assert fig.axes[2].get_lines()[3].get_ydata()[0] == 1.0   # threshold of layer 1
    fig = plot.plot_recording(rec, layers=[3], model=rec.model)
    assert len(fig.axes) == 1 + 1 + 1
    with pytest.raises(ValueError, match="not in the recording"):
        plot.plot_recording(rec, layers=[7])


def test_plot_recording_without_model_or_readout(tmp_path):
    rec = _synthetic_recording()
    rec = SimpleNamespace(spikes=rec.spikes, membrane={}, readout=None, predictions=None)
    fig = plot.plot_recording(rec)
    assert len(fig.axes) == 2
    fig.savefig(tmp_path / "x.png")


def test_plot_recording_from_the_simulator(tmp_path):
    eventsim = pytest.importorskip("eventsim")
    Simulator = getattr(eventsim, "Simulator", None)
    load = getattr(eventsim, "load", None)
    if Simulator is None or load is None:
        pytest.skip("eventsim.Simulator / eventsim.load not available yet")
    from snncore import modelfile as mf

    rng = np.random.default_rng(0)
    model_rec = mf.Model(input_shape=(10,), layers=[
        mf.Dense((rng.integers(-64, 128, (8, 10)) / 256).astype(np.float32)),
        mf.Spiking(beta=0.5, theta=1.0),
        mf.Dense((rng.integers(-64, 64, (3, 8)) / 256).astype(np.float32)), mf.Readout()], T=20)
    path = mf.write_model(model_rec, tmp_path / "m.h5")
    model = load(path)
    x = (rng.random((20, 2, 10)) < 0.5).astype(np.float32)
    rec = Simulator(model, record_membrane={1: np.array([0, 1, 2])}).run(x)
    fig = plot.plot_recording(rec, sample=1, model=model_rec, out=tmp_path / "sim.png")
    assert isinstance(fig, Figure)
    _png_ok(tmp_path / "sim.png")
