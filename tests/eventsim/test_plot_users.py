"""The plots users ask for (issue 22): readout with class names, per-layer rate histograms,
conv spike-count maps, membrane images.  Each test checks what is drawn."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from eventsim import plot  # noqa: E402

FASHION = list(plot.CLASS_NAMES["fashion-mnist"])


def _ticklabels(ax, axis="y"):
    labels = ax.get_yticklabels() if axis == "y" else ax.get_xticklabels()
    return [t.get_text() for t in labels]


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


# -- readout ----------------------------------------------------------------------------------
def test_readout_bars_name_the_classes_and_mark_predicted_and_true(tmp_path):
    scores = np.array([0.1, 0.2, 3.0, 0.0, -0.5, 0.4, 1.0, 0.0, 0.3, 0.2])
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.readout(scores, ax=ax, class_names="fashion-mnist", true_label=6) is ax
    assert _ticklabels(ax) == FASHION                       # one bar per class, named
    bars = ax.patches
    assert [b.get_width() for b in bars] == pytest.approx(scores)
    blue = [j for j, b in enumerate(bars) if b.get_facecolor() != bars[0].get_facecolor()]
    assert blue == [2]                                      # the predicted class (argmax)
    assert ax.get_yticklabels()[6].get_fontweight() == "bold"
    (star,) = [l for l in ax.lines if l.get_marker() == "*"]
    assert list(star.get_xdata()) == [1.0] and list(star.get_ydata()) == [6]
    assert _legend(ax) == ["predicted: Pullover", "true: Shirt"]
    assert ax.get_title() == "decoded readout\npredicted Pullover, true class Shirt (wrong)"
    assert ax.get_ylim() == (9.5, -0.5)                     # class 0 on top
    fig.savefig(tmp_path / "bars.png")


def test_readout_lines_over_time_with_explicit_prediction():
    r = np.zeros((5, 3))
    r[:, 1] = 1.0
    ax = plot.readout(r, class_names=["a", "b", "c"], predicted=2, true_label=1, dt=1e-3)
    assert isinstance(ax, Axes)
    assert _legend(ax) == ["a", "b (true)", "c (predicted)"]
    widths = [l.get_linewidth() for l in ax.lines]
    assert widths[2] > widths[0] == widths[1]
    assert ax.lines[1].get_linestyle() == "--"             # the true class dashed
    assert list(ax.lines[1].get_xdata()) == pytest.approx([0, 1, 2, 3, 4])  # ms
    assert ax.get_xlabel() == "time (ms)"
    # default prediction: argmax of the time mean; default names: numbered
    ax = plot.readout(r)
    assert _legend(ax)[1] == "class 1 (predicted)"


@pytest.mark.parametrize("kw, msg", [
    ({"scores": np.zeros((2, 3, 4))}, r"readout: scores must be \[n_out\] decoded scores or "
                                      r"\[T, n_out\] per-step readout, got shape \(2, 3, 4\)"),
    ({"scores": np.array([1.0, np.nan])}, r"readout: scores of shape \(2,\) hold non-finite"),
    ({"scores": ["a", "b"]}, r"readout: scores must be numbers, got list"),
    ({"class_names": ["x"]}, r"readout: class_names has 1 names for 3 readout classes"),
    ({"class_names": "cifar"}, r"readout: class_names 'cifar' is no known dataset"),
    ({"predicted": 3}, r"readout: predicted must be a class index in \[0, 3\), got 3"),
    ({"true_label": -1}, r"readout: true_label must be a class index in \[0, 3\), got -1"),
    ({"true_label": 1.0}, r"readout: true_label must be a class index"),
])
def test_readout_refuses_bad_input(kw, msg):
    kw = {"scores": np.zeros(3), **kw}
    with pytest.raises(ValueError, match=msg):
        plot.readout(**kw)


def test_plot_recording_readout_row_refuses_a_bad_true_label():
    rec = SimpleNamespace(spikes={}, membrane={}, readout=np.zeros((4, 1, 3)),
                          predictions=np.zeros(1, int))
    with pytest.raises(ValueError, match=r"plot_recording: true_label must be a class index "
                                         r"in \[0, 3\), got 7"):
        plot.plot_recording(rec, true_label=7)


# -- rate histogram ---------------------------------------------------------------------------
def test_rate_histogram_one_outline_per_layer_on_shared_bins(tmp_path):
    rng = np.random.default_rng(0)
    rates = {"conv1": rng.random((4, 5, 5)) * 0.5, "fc1": np.r_[np.zeros(30), rng.random(10)]}
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.rate_histogram(rates, ax=ax, bins=10) is ax
    steps = ax.patches
    assert len(steps) == 2
    edges = steps[0].get_data().edges
    assert np.array_equal(edges, steps[1].get_data().edges)  # shared bins
    assert edges[0] == 0.0 and edges[-1] == max(r.max() for r in rates.values())  # cover
    for patch, r in zip(steps, rates.values()):
        r = r.ravel()
        assert patch.get_data().values == pytest.approx(np.histogram(r, edges)[0] / len(r))
        assert patch.get_data().values.sum() == pytest.approx(1.0)
    assert _legend(ax)[0] == f"conv1\n100 neurons, mean {rates['conv1'].mean():.3g} spikes/step"
    assert ax.get_ylabel() == "fraction of neurons"
    assert ax.get_xlabel() == "firing rate per neuron (spikes/step)"
    fig.savefig(tmp_path / "h.png")
    # counts, Hz, given edges
    ax = plot.rate_histogram({"a": [0.0, 10.0, 10.0]}, bins=[0, 5, 20], unit="Hz",
                             fraction=False, log=True)
    assert list(ax.patches[0].get_data().values) == [1, 2]
    assert ax.get_ylabel() == "neurons" and "(Hz)" in ax.get_xlabel()
    assert ax.get_yscale() == "log"
    # all silent: bins still span a positive range
    ax = plot.rate_histogram({"a": np.zeros(5)})
    assert ax.patches[0].get_data().values[0] == 1.0


@pytest.mark.parametrize("args, msg", [
    (({},), r"rate_histogram: expected a non-empty \{layer: rates\} mapping"),
    (({"a": [np.inf]},), r"rate_histogram: layer 'a' has non-finite rates"),
    (({"a": [0.1, 0.9]}, None, 0), r"rate_histogram: bins must be >= 1"),
    (({"a": [0.1, 0.9]}, None, [0.5, 0.2]), r"rate_histogram: bins must be an int or increasing"),
    (({"a": [0.1, 0.9]}, None, [0.0, 0.5]), r"rate_histogram: bins \[0, 0.5\] do not cover layer 'a', "
                                      r"whose rates span \[0.1, 0.9\]"),
])
def test_rate_histogram_refuses_bad_input(args, msg):
    with pytest.raises(ValueError, match=msg):
        plot.rate_histogram(*args)


def test_layer_rates_from_a_recording():
    spikes = {1: SimpleNamespace(sample=np.array([0, 0, 1, 1]), t=np.array([0, 1, 0, 3]),
                                 neuron=np.array([2, 2, 0, 2]), n_neurons=3)}
    rec = SimpleNamespace(spikes=spikes, T=4, batch_size=2)
    assert plot.layer_rates(rec)[1] == pytest.approx([0.125, 0.0, 0.375])   # spikes/step
    assert plot.layer_rates(rec, sample=0)[1] == pytest.approx([0.0, 0.0, 0.5])
    assert plot.layer_rates(rec, dt=1e-3, sample=1)[1] == pytest.approx([250.0, 0.0, 250.0])
    with pytest.raises(ValueError, match=r"layer_rates: sample must be an index in \[0, 2\), got 2"):
        plot.layer_rates(rec, sample=2)


# -- conv spike-count map ---------------------------------------------------------------------
def test_spike_count_map_rows_are_channels_columns_positions(tmp_path):
    counts = np.arange(3 * 2 * 4).reshape(3, 2, 4)
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.spike_count_map(counts, ax=ax, label="spikes in 8 steps") is ax
    img = np.asarray(ax.images[0].get_array())
    assert np.array_equal(img, counts.reshape(3, 8))
    assert ax.get_ylabel() == "channel" and "2x4" in ax.get_xlabel()
    assert ax.colorbar.ax.get_ylabel() == "spikes in 8 steps"
    assert "3 channels x 2x4" in ax.get_title() and f"{counts.sum()} spikes" in ax.get_title()
    fig.savefig(tmp_path / "rows.png")


def test_spike_count_map_grid_of_channel_tiles_from_a_spike_train(tmp_path):
    # 5 channels of 2x3: 5 tiles in a 3-column grid, one-pixel gaps
    rng = np.random.default_rng(1)
    dense = rng.random((6, 2, 30)) < 0.3                   # [T, B, n]
    t, b, i = np.nonzero(dense)
    train = SimpleNamespace(sample=b, t=t, neuron=i, shape=(5, 2, 3))
    ax = plot.spike_count_map(train, layout="grid", sample=1)
    img = ax.images[0].get_array()
    expected = dense[:, 1].sum(0).reshape(5, 2, 3)
    for k in range(5):
        r0, c0 = (k // 3) * 3, (k % 3) * 4
        assert np.array_equal(img[r0:r0 + 2, c0:c0 + 3], expected[k])
    assert img.shape == (5, 11)
    assert np.ma.getmaskarray(img)[2].all() and np.ma.getmaskarray(img)[:, 3].all()   # gaps
    assert [t.get_text() for t in ax.texts] == ["0", "1", "2", "3", "4"]
    ax.figure.savefig(tmp_path / "grid.png")


@pytest.mark.parametrize("kw, msg", [
    ({"counts": np.zeros((4, 4))}, r"spike_count_map: counts must be \[C, H, W\] .*got shape \(4, 4\)"),
    ({"counts": np.zeros(12), "shape": (2, 2, 2)},
     r"spike_count_map: shape must be \(C, H, W\) holding the 12 counts, got \(2, 2, 2\)"),
    ({"counts": -np.ones((1, 2, 2))}, r"spike_count_map: counts must be finite and >= 0"),
    ({"counts": np.zeros((1, 2, 2)), "layout": "tiles"},
     r"spike_count_map: layout must be 'rows' or 'grid', got 'tiles'"),
    ({"counts": SimpleNamespace(sample=np.zeros(0, int), neuron=np.zeros(0, int), shape=None)},
     r"spike_count_map: the spike train has no shape; pass shape=\(C, H, W\)"),
])
def test_spike_count_map_refuses_bad_input(kw, msg):
    with pytest.raises(ValueError, match=msg):
        plot.spike_count_map(**kw)


# -- membrane image ---------------------------------------------------------------------------
def test_membrane_image_is_neurons_by_time_centred_on_threshold(tmp_path):
    rng = np.random.default_rng(0)
    u = rng.normal(0.6, 0.5, (20, 7))
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.membrane_image(u, ax=ax, threshold=1.0, spikes=True, neurons=np.arange(10, 17),
                               dt=1e-3) is ax
    im = ax.images[0]
    assert np.array_equal(im.get_array(), u.T)             # rows: neurons, columns: steps
    norm = im.norm
    assert norm.vcenter == 1.0 and norm.halfrange == pytest.approx(np.abs(u - 1.0).max())
    (dots,) = ax.lines
    t_s, j_s = np.nonzero(u >= 1.0)
    assert list(dots.get_xdata()) == pytest.approx(t_s * 1.0) and list(dots.get_ydata()) == list(j_s)
    assert _ticklabels(ax)[0] == "10" and _ticklabels(ax)[-1] == "16"
    assert ax.get_xlabel() == "time (ms)"
    assert "white: threshold 1" in ax.colorbar.ax.get_ylabel()
    fig.savefig(tmp_path / "mi.png")


def test_membrane_image_per_neuron_thresholds_and_given_spikes():
    u = np.array([[0.5, 2.0], [1.5, 1.0]])                  # [T=2, k=2]
    mask = np.array([[False, True], [False, False]])
    ax = plot.membrane_image(u, threshold=np.array([1.0, 2.0]), spikes=mask)
    assert np.array_equal(ax.images[0].get_array(), (u - [1.0, 2.0]).T)
    assert ax.images[0].norm.vcenter == 0.0
    assert list(ax.lines[0].get_xdata()) == [0] and list(ax.lines[0].get_ydata()) == [1]
    ax = plot.membrane_image(u)                              # no threshold: centred on 0
    assert ax.images[0].norm.vcenter == 0.0 and not ax.lines


@pytest.mark.parametrize("kw, msg", [
    ({"u": np.zeros(5)}, r"membrane_image: u must be \[T, k\] \(steps x neurons\), got shape \(5,\)"),
    ({"u": np.full((2, 2), np.nan)}, r"membrane_image: u of shape \(2, 2\) holds non-finite"),
    ({"threshold": np.ones(3)}, r"membrane_image: threshold must be a finite scalar or \[k=2\]"),
    ({"spikes": np.zeros((3, 2), bool)},
     r"membrane_image: spikes must be None, True or a boolean \[T=4, k=2\] mask, got bool "
     r"shape \(3, 2\)"),
    ({"spikes": True}, r"membrane_image: spikes=True marks u >= threshold; give threshold"),
    ({"neurons": [1, 2, 3]}, r"membrane_image: neurons must have shape \(2,\), got \(3,\)"),
    ({"dt": 0}, r"membrane_image: dt must be a finite step length > 0 or None"),
])
def test_membrane_image_refuses_bad_input(kw, msg):
    kw = {"u": np.zeros((4, 2)), **kw}
    with pytest.raises(ValueError, match=msg):
        plot.membrane_image(**kw)
