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
    ax = plot.membrane(tr, threshold=1.0, spikes_t=mask, dt=0.5e-3)   # dt in s, x in ms
    marks = [l for l in ax.lines if l.get_marker() == "|"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == pytest.approx([1.5])
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
    # rows layer by layer: raster 1, membrane 1, raster 3, membrane 3, readout
    assert fig.axes[1].get_lines()[3].get_ydata()[0] == 1.0   # threshold of layer 1
    assert fig.axes[2].get_ylim() == (-0.5, 4.5)
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


def test_membrane_per_neuron_thresholds(tmp_path):
    """Per-neuron thresholds (model format 3): one dashed line per trace in its colour,
    spikes marked against each trace's own threshold; equal values draw one red line."""
    tr = np.array([[0.2, 0.2], [0.7, 0.7], [0.3, 1.1]])
    ax = plot.membrane(tr, threshold=np.array([0.5, 1.0]))
    dashed = [l for l in ax.lines if l.get_linestyle() == "--"]
    assert sorted(l.get_ydata()[0] for l in dashed) == [0.5, 1.0]
    assert [l.get_color() for l in dashed] == [l.get_color() for l in ax.lines[:2]]
    marks = [l for l in ax.lines if l.get_marker() == "|"]
    assert [list(m.get_xdata()) for m in marks] == [[1], [2]]
    ax = plot.membrane(tr, threshold=np.array([0.5, 0.5]))
    assert [l.get_color() for l in ax.lines if l.get_linestyle() == "--"] == ["tab:red"]
    with pytest.raises(ValueError, match="threshold.*one per trace"):
        plot.membrane(tr, threshold=np.array([0.5, 0.5, 0.5]))
    # plot_recording picks the recorded neurons' thresholds from the model
    from snncore import modelfile as mf
    import eventsim
    rng = np.random.default_rng(1)
    model = mf.Model(input_shape=(6,), T=12, layers=[
        mf.Dense((rng.integers(-64, 128, (5, 6)) / 128).astype(np.float32)),
        mf.Spiking(beta=np.full(5, 0.5, np.float32), theta=np.arange(1, 6, dtype=np.float32) / 4),
        mf.Dense((rng.integers(-64, 64, (3, 5)) / 256).astype(np.float32)), mf.Readout()])
    rec = eventsim.Simulator(model, record_membrane={1: np.array([1, 4])}).run(
        (rng.random((12, 1, 6)) < 0.5).astype(np.float32))
    fig = plot.plot_recording(rec, model=model)
    levels = {l.get_ydata()[0] for a in fig.axes for l in a.lines if l.get_linestyle() == "--"}
    assert levels == {0.5, 1.25}


# -- plots a user reads at a glance ----------------------------------------------------------
def test_pick_neurons_prefers_neurons_that_cross_sometimes():
    T = 8
    counts = np.array([8, 8, 4, 0, 1, 7, 8, 3])   # 0, 1, 6 fire on every step, 3 never
    chosen = plot.pick_neurons(counts, T, k=4)
    assert list(chosen) == [2, 4, 5, 7]           # closest to T/2 = 4 first, ascending order
    assert not set(chosen) & {0, 1, 6}
    # the old choice (most active) took exactly the flat-trace neurons
    assert set(np.argsort(-counts, kind="stable")[:3]) == {0, 1, 6}
    # with few crossing neurons: silent ones nearest threshold next, every-step ones last
    counts = np.array([8, 0, 0, 2, 0, 8])
    peak = np.array([3.0, 0.2, 0.9, 1.5, 0.5, 2.0])
    assert list(plot.pick_neurons(counts, T, k=3, peak=peak)) == [2, 3, 4]
    assert list(plot.pick_neurons(counts, T, k=5, peak=peak)) == [0, 1, 2, 3, 4]
    assert len(plot.pick_neurons(counts, T, k=10)) == 6


def test_pick_neurons_spreads_ties_and_validates():
    counts = np.full(100, 4)
    chosen = plot.pick_neurons(counts, 8, k=3)
    assert list(chosen) == [0, 50, 99]             # not the three lowest indices
    assert list(plot.pick_neurons(counts, 8, k=0)) == []
    with pytest.raises(ValueError, match="counts"):
        plot.pick_neurons(np.ones(3), 8)
    with pytest.raises(ValueError, match=r"peak must have shape \(3,\)"):
        plot.pick_neurons(np.ones(3, int), 8, peak=np.ones(4))


def test_spike_counts_of_one_sample():
    s = SimpleNamespace(sample=np.array([0, 0, 1, 0]), neuron=np.array([2, 2, 1, 0]))
    assert list(plot.spike_counts(s, 4, sample=0)) == [1, 0, 2, 0]
    assert list(plot.spike_counts(None, 3)) == [0, 0, 0]


def _small_conv_recording(T=4, seed=0, dataset="fashion-mnist"):
    """Conv [1, 4, 4] -> 2 channels x 4x4 spiking -> flatten -> 10 readout classes."""
    from snncore import modelfile as mf

    rng = np.random.default_rng(seed)
    model = mf.Model(input_shape=(1, 4, 4), layers=[
        mf.Conv2d(rng.normal(size=(2, 1, 3, 3)).astype(np.float32), padding=(1, 1)),
        mf.Spiking(beta=0.5, theta=1.0), mf.Flatten(),
        mf.Dense(rng.normal(size=(10, 32)).astype(np.float32)), mf.Readout()], T=T,
        metadata={"dataset": dataset})
    s = rng.random((1, T, 32)) < 0.3
    b, t, i = np.nonzero(s)
    readout = rng.normal(size=(T, 1, 10))
    return SimpleNamespace(spikes={1: SimpleNamespace(sample=b, t=t, neuron=i)},
                           membrane={1: rng.normal(0.8, 0.4, (T, 1, 3))},
                           membrane_neurons={1: np.array([0, 17, 31])}, readout=readout,
                           predictions=readout.sum(0).argmax(1), model=model)


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_readout_lines_carry_class_names():
    rec = _small_conv_recording()
    fig = plot.plot_recording(rec, true_label=3)
    ax = fig.axes[-1]
    names = _legend_texts(ax)
    pred = int(rec.predictions[0])
    expected = list(plot.CLASS_NAMES["fashion-mnist"])
    expected[pred] += " (predicted)"
    expected[3] += " (true)" if pred != 3 else ""
    assert names == expected
    assert plot.CLASS_NAMES["fashion-mnist"][pred] in ax.get_title()
    assert "true class Dress" in ax.get_title()
    # the predicted class is drawn bold
    widths = [l.get_linewidth() for l in ax.get_lines()]
    assert widths[pred] == max(widths) > widths[(pred + 1) % 10]
    # explicit names win; an unknown dataset gets numbered classes
    fig = plot.plot_recording(rec, class_names=[f"c{j}" for j in range(10)])
    assert _legend_texts(fig.axes[-1])[(pred + 1) % 10] == f"c{(pred + 1) % 10}"
    rec2 = _small_conv_recording(dataset="my-data")
    assert _legend_texts(plot.plot_recording(rec2).axes[-1])[(pred + 1) % 10] == \
        f"class {(pred + 1) % 10}"
    with pytest.raises(ValueError, match="class_names has 2 names for 10 readout classes"):
        plot.plot_recording(rec, class_names=["a", "b"])


def _visible_xticks(ax):
    lo, hi = ax.get_xlim()
    return [x for x in ax.get_xticks() if lo <= x <= hi]


def test_integer_time_ticks_for_small_T():
    rec = _small_conv_recording(T=4)
    fig = plot.plot_recording(rec)
    for ax in fig.axes:
        assert _visible_xticks(ax) == [0, 1, 2, 3]
    ax = plot.membrane(np.linspace(0, 2, 5), threshold=1.0)
    assert _visible_xticks(ax) == [0, 1, 2, 3, 4]
    ax = plot.raster([0, 2, 5], [0, 1, 0], T=7)
    assert _visible_xticks(ax) == list(range(7))
    # long runs: integer steps, not every one
    ax = plot.raster([0, 500], [0, 1], T=1000)
    ticks = _visible_xticks(ax)
    assert 3 <= len(ticks) <= 12 and all(float(x).is_integer() for x in ticks)


def test_time_axis_label_with_and_without_dt():
    rec = _small_conv_recording(T=4)
    assert plot.plot_recording(rec).axes[-1].get_xlabel() == "time step"
    fig = plot.plot_recording(rec, dt=1e-3)
    assert fig.axes[-1].get_xlabel() == "time (ms)"
    assert _visible_xticks(fig.axes[-1]) == pytest.approx([0.0, 1.0, 2.0, 3.0])
    t, i = [0, 3], [0, 1]
    assert plot.raster(t, i, T=4).get_xlabel() == "time step"
    ax = plot.raster(t, i, T=4, dt=2e-3)
    assert ax.get_xlabel() == "time (ms)" and ax.get_xlim() == pytest.approx((-1.0, 7.0))
    fig = plot.raster(t, i, T=4, dt=2e-3, population_panel=True)
    assert fig.axes[-1].get_xlabel() == "time (ms)"
    assert plot.membrane(np.zeros(4)).get_xlabel() == "time step"
    ax = plot.membrane(np.zeros(4), dt=1e-3)
    assert ax.get_xlabel() == "time (ms)" and list(ax.get_lines()[0].get_xdata()) == \
        pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_conv_raster_is_grouped_by_channel():
    rec = _small_conv_recording()
    fig = plot.plot_recording(rec)
    ax = fig.axes[0]                               # layer 1 raster: 2 channels x 4x4
    assert ax.get_ylabel().startswith("channel")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1"]
    assert list(ax.get_yticks()) == [7.5, 23.5]    # the middle of each channel's rows
    bounds = [l for l in ax.get_lines() if list(l.get_ydata()) == [15.5, 15.5]]
    assert len(bounds) == 1                        # one boundary between the two channels
    assert "2 channels x 4x4" in ax.get_title()
    # membrane legends name channel and position
    assert _legend_texts(fig.axes[1])[:3] == ["ch 0, y 0, x 0", "ch 1, y 0, x 1",
                                              "ch 1, y 3, x 3"]
    # many channels: every channel has a boundary, at most 8 are numbered
    ax = plot.raster([0, 1], [5, 700], T=2, n=64 * 16, channels=64)
    assert len([l for l in ax.get_lines() if l.get_ydata()[0] % 16 == 15.5]) == 63
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(c) for c in range(0, 64, 8)]
    with pytest.raises(ValueError, match="channels=3 does not divide n=32"):
        plot.raster([0], [0], n=32, channels=3)


def test_legends_do_not_cover_the_data():
    rec = _small_conv_recording()
    fig = plot.plot_recording(rec)
    fig.draw_without_rendering()                   # lays the figure out
    with_legend = [ax for ax in fig.axes if ax.get_legend() is not None]
    assert len(with_legend) == 2                   # membrane and readout
    for ax in with_legend:
        assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def test_membrane_marks_spikes_on_the_trace():
    tr = np.array([[0.5], [1.2], [0.3], [1.0]])
    ax = plot.membrane(tr, threshold=1.0)
    marks = [l for l in ax.lines if l.get_marker() == "|"]
    assert list(marks[0].get_xdata()) == [1, 3] and list(marks[0].get_ydata()) == [1.2, 1.0]
    assert "spike" in _legend_texts(ax)


def test_small_T_raster_draws_one_dash_per_spike():
    t, i = np.array([0, 1, 1, 3]), np.array([2, 0, 2, 1])
    ax = plot.raster(t, i, T=4, n=3)
    (lc,) = ax.collections
    segs = lc.get_segments()
    assert len(segs) == 4
    assert [tuple(s[:, 1]) for s in segs] == [(2, 2), (0, 0), (2, 2), (1, 1)]
    assert segs[0][:, 0] == pytest.approx([-0.4, 0.4])
    # thousands of neurons over few steps: the density image, not dashes covering many rows
    ax = plot.raster(t, i * 1000, T=4, n=5000)
    assert len(ax.images) == 1


def test_plot_command_watches_neurons_that_cross_sometimes():
    """``eventsim plot``'s choice: crossing neurons, else the silent ones nearest threshold
    (found by a second run recording every membrane), never a flat always-firing trace."""
    from eventsim import Simulator, cli, inputs, load
    from snncore import modelfile as mf

    def watched(weights, T, k):
        w = np.array(weights, dtype=np.float32)[:, None]
        record = mf.Model(input_shape=(1,), T=T, layers=[
            mf.Dense(w), mf.Spiking(beta=1.0, theta=1.0),
            mf.Dense(np.ones((2, len(weights)), np.float32)), mf.Readout()])
        model = load(record)
        xs = inputs.direct(np.ones((1, 1), np.float32), T)
        rec = Simulator(model).run(xs)
        return list(cli._neurons_to_watch(Simulator, model, record, xs, rec,
                                          mf.validate(record), k)[1])

    # counts over T=8: 8 (every step), 4, 2, 0 (peak 0.8), 4
    assert watched([2.0, 0.625, 0.3125, 0.1, 0.5], T=8, k=2) == [1, 4]
    # nothing crosses sometimes: neuron 0 fires on every step, 1-3 stay below threshold
    # with peaks 0.5, 0.25, 0.75 -> the two nearest threshold, not the lowest indices
    assert watched([2.0, 0.125, 0.0625, 0.1875], T=4, k=2) == [1, 3]


def test_plot_command_dt_option():
    from eventsim import cli

    args = cli.build_parser().parse_args(["plot", "m.h5", "--out", "a.png", "--dt", "1e-3"])
    assert args.dt == 1e-3
    assert cli.build_parser().parse_args(["plot", "m.h5", "--out", "a.png"]).dt is None
    for bad in ("0", "-1", "nan", "x"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["plot", "m.h5", "--out", "a.png", "--dt", bad])


def test_training_curves_of_one_epoch_have_integer_epoch_ticks():
    # one point: matplotlib's integer locator fell back to ticks 0.945, 0.96, ... (issue 22)
    ax = plot.training_curves({"test acc": [0.5]})
    ax.figure.canvas.draw()
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
