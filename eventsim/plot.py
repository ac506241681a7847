"""Plots of simulator recordings: spike rasters, membrane traces, firing rates, training curves.

Every function takes an optional ``ax`` (or ``fig``) and returns what it drew on: an Axes, or a
Figure when it lays out several panels.  When no Axes is given a new
:class:`matplotlib.figure.Figure` is created *without pyplot*: no backend is selected or
forced, nothing is registered with pyplot's figure manager, and ``fig.savefig(...)`` renders
through Agg on any machine (headless included).  In an interactive session pass an Axes from
``plt.subplots()`` to draw into a managed window, or display the returned figure.

Spike inputs follow the monitor convention ``(t, i)``: step and neuron index of each spike.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from .fileio import check_output

__all__ = ["raster", "membrane", "firing_rates", "training_curves", "plot_recording"]

#: above this many spikes ``raster(method="auto")`` draws a 2-D histogram image instead of
#: one marker per spike (both render 1e6 spikes in well under a second; the image also
#: shows density where markers would overlap).
MAX_MARKERS = 200_000
#: largest image (time bins x neuron bins) drawn by the histogram method.
MAX_IMAGE_BINS = (2000, 1000)


def _new_figure(figsize=(8.0, 4.5)):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _axes(ax, figsize=(8.0, 4.5)):
    if ax is None:
        return _new_figure(figsize).add_subplot()
    return ax


def _spike_arrays(t, neuron):
    t = np.asarray(t)
    i = np.asarray(neuron)
    if t.ndim != 1 or i.ndim != 1 or len(t) != len(i):
        raise ValueError(f"raster: t and neuron must be 1-D arrays of equal length, got shapes "
                         f"{t.shape} and {i.shape}")
    if t.dtype.kind not in "iuf" and len(t) or i.dtype.kind not in "iu" and len(i):
        raise ValueError(f"raster: t must be numbers and neuron integers, got {t.dtype} and {i.dtype}")
    if len(t) and (np.any(i < 0) or (t.dtype.kind == "f" and not np.isfinite(t).all())):
        raise ValueError("raster: neuron indices must be >= 0 and times finite")
    return t, i.astype(np.int64)


def _hist_image(ax, t, i, T, n, color):
    """2-D histogram of spikes per (time bin, neuron bin), drawn as one image."""
    from matplotlib.colors import LinearSegmentedColormap

    tb, nb = min(int(np.ceil(T)), MAX_IMAGE_BINS[0]), min(n, MAX_IMAGE_BINS[1])
    ti = np.clip((np.asarray(t, np.float64) * (tb / T)).astype(np.int64), 0, tb - 1)
    ni = np.clip(i * nb // n, 0, nb - 1)
    counts = np.bincount(ni * tb + ti, minlength=nb * tb).reshape(nb, tb)
    cmap = LinearSegmentedColormap.from_list("raster", ["white", color])
    im = ax.imshow(counts, aspect="auto", origin="lower", interpolation="nearest", cmap=cmap,
                   extent=(-0.5, T - 0.5, -0.5, n - 0.5), vmin=0, vmax=max(1, counts.max()))
    return im


def raster(t, neuron, ax=None, T=None, n=None, rate_panel: bool = False,
           population_panel: bool = False, method: str = "auto", dt: float | None = None,
           color="k", markersize: float | None = None, title: str | None = None, fig=None,
           ylabel: str = "neuron"):
    """Spike raster: one mark per spike at (step, neuron).

    Args:
        t: ``[n_spikes]`` time step of each spike.  neuron: ``[n_spikes]`` neuron index.
        ax: Axes to draw into (new figure if None).
        T: number of steps (x range ``[0, T)``); default ``max(t) + 1``.
        n: number of neurons (y range); default ``max(neuron) + 1``.
        rate_panel: add a per-neuron firing-rate panel on the right.
        population_panel: add a population-rate panel below (mean rate per step).
        method: "markers" (one '|' marker per spike, rasterised), "image" (2-D histogram,
            exact per-cell when ``T <= 2000`` and ``n <= 1000``), or "auto": markers up to
            :data:`MAX_MARKERS` spikes, the image above.  1e6 spikes render in < 1 s either way.
        dt: step length in seconds; rates are then in Hz, else in spikes per step.
        fig: Figure to lay the panels out in (with panels; default: ``ax``'s figure, or new).

    Returns:
        The raster's Axes, or -- when a panel is requested -- the Figure holding the raster
        (``fig.axes[0]``), rate panel and population panel.
    """
    t, i = _spike_arrays(t, neuron)
    T = float(T) if T is not None else (float(t.max()) + 1 if len(t) else 1.0)
    n = int(n) if n is not None else (int(i.max()) + 1 if len(i) else 1)
    if T <= 0 or n <= 0:
        raise ValueError(f"raster: T and n must be positive, got T={T}, n={n}")
    if method not in ("auto", "markers", "image"):
        raise ValueError(f"raster: method must be 'auto', 'markers' or 'image', got {method!r}")
    if method == "auto":
        method = "markers" if len(t) <= MAX_MARKERS else "image"

    panels = rate_panel or population_panel
    ax_rate = ax_pop = None
    if panels:
        if fig is None:
            fig = ax.figure if ax is not None else _new_figure((9.0, 5.5))
        widths = [5, 1] if rate_panel else [1]
        heights = [4, 1] if population_panel else [1]
        if ax is not None:  # split the given Axes' slot
            gs = ax.get_subplotspec().subgridspec(len(heights), len(widths), width_ratios=widths,
                                                  height_ratios=heights)
            ax.remove()
        else:
            gs = fig.add_gridspec(len(heights), len(widths), width_ratios=widths,
                                  height_ratios=heights)
        ax = fig.add_subplot(gs[0, 0])
        if rate_panel:
            ax_rate = fig.add_subplot(gs[0, 1], sharey=ax)
        if population_panel:
            ax_pop = fig.add_subplot(gs[1, 0], sharex=ax)
    else:
        ax = _axes(ax)

    if len(t):
        if method == "markers":
            ms = markersize if markersize is not None else float(np.clip(300.0 / n, 1.0, 6.0))
            ax.plot(t, i, linestyle="none", marker="|", markersize=ms, color=color,
                    rasterized=len(t) > 10_000)
        else:
            _hist_image(ax, t, i, T, n, color)
    ax.set_xlim(-0.5, T - 0.5)
    ax.set_ylim(-0.5, n - 0.5)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    unit = "Hz" if dt else "spikes/step"
    scale = 1.0 / dt if dt else 1.0
    if ax_rate is not None:
        rates = np.bincount(i, minlength=n)[:n] / T * scale
        ax_rate.stairs(rates, np.arange(n + 1) - 0.5, orientation="horizontal", fill=True,
                       color=color)
        ax_rate.set_xlabel(f"rate ({unit})")
        ax_rate.tick_params(labelleft=False)
    if ax_pop is not None:
        steps = int(np.ceil(T))
        tt = np.clip(np.asarray(t, np.float64).astype(np.int64), 0, steps - 1)
        pop = np.bincount(tt, minlength=steps) / n * scale
        ax_pop.step(np.arange(steps), pop, where="mid", color=color)
        ax_pop.set_ylabel(f"pop. ({unit})")
        ax_pop.set_xlabel("time step")
        ax.tick_params(labelbottom=False)
    else:
        ax.set_xlabel("time step")
    return fig if panels else ax


def _spike_times_per_trace(spikes_t, k: int, T: int):
    """Normalise ``spikes_t`` to a list of k arrays of spike steps."""
    if spikes_t is None:
        return None
    s = spikes_t
    if isinstance(s, np.ndarray) and s.dtype == bool:
        s = s.reshape(T, -1)
        if s.shape[1] != k:
            raise ValueError(f"membrane: spikes_t mask has {s.shape[1]} traces, trace has {k}")
        return [np.flatnonzero(s[:, j]) for j in range(k)]
    if isinstance(s, np.ndarray) and s.ndim == 1 and s.dtype != object:
        if k != 1:
            raise ValueError("membrane: with several traces give spikes_t as a list of arrays "
                             "(one per trace) or a boolean [T, k] mask")
        return [s]
    s = list(s)
    if len(s) != k:
        raise ValueError(f"membrane: spikes_t has {len(s)} entries for {k} traces")
    return [np.asarray(x) for x in s]


def membrane(trace, threshold=None, spikes_t=None, reset=None, dt: float = 1.0, ax=None,
             labels: Sequence[str] | None = None, title: str | None = None,
             ternary: bool = False):
    """Membrane traces with threshold and reset lines and spike marks.

    Args:
        trace: ``[T]`` or ``[T, k]`` membrane potential (before reset) per step.
        threshold: scalar ``theta`` (dashed red line) or None.
        spikes_t: spike steps, marked by a tick above the threshold: ``[n]`` for one trace,
            a list of k arrays, or a boolean mask ``[T, k]``; default (with a threshold): the
            steps where ``trace >= threshold`` (the model's test, METHODS.md section 1), and
            ``trace <= -threshold`` too when ``ternary``.
        reset: reset potential ``v_reset`` (dotted line) or None.
        dt: step length; the x axis shows ``t * dt``.
        labels: names of the k traces for the legend.
        ternary: the layer emits -1 spikes at ``u <= -theta``: draw that line as well.

    Returns:
        The Axes.
    """
    tr = np.asarray(trace, dtype=np.float64)
    if tr.ndim == 1:
        tr = tr[:, None]
    if tr.ndim != 2 or tr.shape[0] < 1:
        raise ValueError(f"membrane: trace must be [T] or [T, k], got shape {np.shape(trace)}")
    T, k = tr.shape
    if labels is not None and len(labels) != k:
        raise ValueError(f"membrane: {len(labels)} labels for {k} traces")
    ax = _axes(ax)
    x = np.arange(T) * dt
    lines = ax.plot(x, tr, linewidth=1.0, drawstyle="default")
    if labels is not None:
        for line, lab in zip(lines, labels):
            line.set_label(str(lab))
    if spikes_t is None and threshold is not None:
        spikes_t = tr >= float(threshold)
        if ternary:
            spikes_t |= tr <= -float(threshold)
    per_trace = _spike_times_per_trace(spikes_t, k, T)
    if threshold is not None:
        th = float(threshold)
        ax.axhline(th, color="tab:red", linestyle="--", linewidth=1.0, label="threshold")
        if ternary:
            ax.axhline(-th, color="tab:red", linestyle="--", linewidth=0.8)
    if reset is not None:
        ax.axhline(float(reset), color="0.4", linestyle=":", linewidth=1.0, label="reset")
    if per_trace is not None:
        top = np.nanmax(tr) if threshold is None else max(float(threshold), np.nanmax(tr))
        span = (np.nanmax(tr) - np.nanmin(tr)) or 1.0
        for j, st in enumerate(per_trace):
            if len(st):
                ax.plot(np.asarray(st) * dt, np.full(len(st), top + 0.08 * span * (j + 1)),
                        linestyle="none", marker="|", markersize=8, color=lines[j].get_color())
    ax.set_xlabel("time step" if dt == 1.0 else "time")
    ax.set_ylabel("membrane potential")
    if title:
        ax.set_title(title)
    if labels is not None or threshold is not None or reset is not None:
        ax.legend(loc="best", fontsize="small")
    return ax


def firing_rates(rates_by_layer: Mapping[str, np.ndarray], ax=None, kind: str = "box",
                 unit: str = "spikes/step"):
    """Per-layer distribution of per-neuron firing rates.

    Args:
        rates_by_layer: ``{layer name: [n_neurons] rates}`` (any shape; flattened).
        kind: "box" (box plot with the mean as a white dot) or "bar" (mean with the
            5-95 % range as error bars).
        unit: y-axis unit.

    Returns:
        The Axes.
    """
    if not isinstance(rates_by_layer, Mapping) or not rates_by_layer:
        raise ValueError("firing_rates: expected a non-empty {layer: rates} mapping")
    if kind not in ("box", "bar"):
        raise ValueError(f"firing_rates: kind must be 'box' or 'bar', got {kind!r}")
    names = [str(k) for k in rates_by_layer]
    data = []
    for name, r in rates_by_layer.items():
        r = np.asarray(r, dtype=np.float64).ravel()
        if not np.isfinite(r).all():
            raise ValueError(f"firing_rates: layer {name!r} has non-finite rates")
        data.append(r)
    ax = _axes(ax, figsize=(max(4.0, 1.2 * len(names) + 2), 4.0))
    pos = np.arange(1, len(data) + 1)
    means = np.array([r.mean() if len(r) else np.nan for r in data])
    if kind == "box":
        ax.boxplot([r if len(r) else [np.nan] for r in data], positions=pos, widths=0.6,
                   showfliers=False)
        ax.plot(pos, means, linestyle="none", marker="o", markerfacecolor="white",
                markeredgecolor="k", label="mean")
    else:
        lo = np.array([np.percentile(r, 5) if len(r) else np.nan for r in data])
        hi = np.array([np.percentile(r, 95) if len(r) else np.nan for r in data])
        ax.bar(pos, means, width=0.6, color="0.7", edgecolor="k")
        ax.errorbar(pos, means, yerr=[means - lo, hi - means], fmt="none", ecolor="k", capsize=4)
    ax.set_xticks(pos, names)
    ax.set_ylabel(f"firing rate ({unit})")
    ax.set_xlabel("layer")
    return ax


def training_curves(metrics: Mapping[str, Sequence[float]], ax=None, title: str | None = None):
    """Metrics per epoch (epochs numbered from 1).

    Metrics whose name contains "acc" are drawn against a second y axis on the right
    (``ax.right_ax``), the others (losses) on the left.

    Returns:
        The (left) Axes.
    """
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValueError("training_curves: expected a non-empty {name: values} mapping")
    ax = _axes(ax, figsize=(6.0, 4.0))
    left = {k: v for k, v in metrics.items() if "acc" not in str(k).lower()}
    right = {k: v for k, v in metrics.items() if "acc" in str(k).lower()}
    ax2 = ax.twinx() if (right and left) else None
    handles = []
    colors = iter(f"C{j}" for j in range(len(metrics)))
    for target, group in ((ax, left), (ax2 if ax2 is not None else ax, right)):
        for name, values in group.items():
            y = np.asarray(values, dtype=np.float64).ravel()
            ep = np.arange(1, len(y) + 1)
            handles += target.plot(ep, y, marker="o" if len(y) < 30 else None, label=str(name),
                                   color=next(colors))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" if left else "accuracy")
    if ax2 is not None:
        ax2.set_ylabel("accuracy")
        ax.right_ax = ax2
    ax.legend(handles=handles, loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------------------------------
# recordings
# ---------------------------------------------------------------------------------------
def _layer_record(model, layer):
    """The model's record of ``layer`` (int index, or a str holding one), or None."""
    if model is None:
        return None
    model = getattr(model, "model", model)  # a CompiledNetwork holds its Model records
    try:
        return model.layers[int(layer)]
    except (TypeError, ValueError, IndexError, AttributeError):
        return None


def _layer_size(model, layer, default: int) -> int:
    model = getattr(model, "model", model)
    try:
        return int(np.prod(model.shapes[int(layer)]))
    except Exception:
        return default


def _membrane_neurons(rec, layer, k: int):
    for name in ("membrane_neurons", "membrane_index", "record_membrane"):
        m = getattr(rec, name, None)
        if isinstance(m, Mapping) and layer in m:
            idx = np.asarray(m[layer]).ravel()
            if len(idx) == k:
                return [f"neuron {int(j)}" for j in idx]
    return [f"trace {j}" for j in range(k)]


def plot_recording(rec, sample: int = 0, layers=None, out=None, model=None, fig=None,
                   dt: float | None = None):
    """Raster of every spiking layer and the recorded membrane traces of one sample.

    Args:
        rec: an ``eventsim`` Recording: ``rec.spikes[layer]`` with int arrays ``.sample``,
            ``.t``, ``.neuron``; ``rec.membrane[layer]`` ``[T, B, k]`` (before reset);
            optional ``rec.readout [T, B, n_out]`` and ``rec.predictions [B]``.
        sample: which sample of the batch to draw.
        layers: layer keys to draw (default: every layer in ``rec.spikes``, in order).
        out: if given, the figure is saved there (format from the suffix); an existing
            figure there is replaced, any other file (model, recording, ...) never is
            (FileExistsError).
        model: the loaded model, for thresholds (``model.layers[layer].theta``), reset
            potentials and layer sizes; default ``rec.model`` when present.
        fig: Figure to draw into (default: new).

    Returns:
        The Figure.
    """
    model = model if model is not None else getattr(rec, "model", None)
    spikes = getattr(rec, "spikes", None) or {}
    mem = getattr(rec, "membrane", None) or {}
    keys = list(spikes) if layers is None else list(layers)
    missing = [k for k in keys if k not in spikes and k not in mem]
    if missing:
        raise ValueError(f"plot_recording: layers {missing} are not in the recording "
                         f"(spikes: {list(spikes)}, membrane: {list(mem)})")
    mem_keys = [k for k in (keys if layers is not None else list(mem)) if k in mem]
    readout = getattr(rec, "readout", None)
    rows = [("raster", k) for k in keys if k in spikes] + [("membrane", k) for k in mem_keys]
    if readout is not None:
        rows.append(("readout", None))
    if not rows:
        raise ValueError("plot_recording: the recording holds no spikes, membranes or readout")
    if fig is None:
        fig = _new_figure((9.0, 2.4 * len(rows) + 0.6))
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
    T = None
    for arr in [readout] + [mem[k] for k in mem_keys]:
        if arr is not None:
            T = np.shape(arr)[0]
            break
    T = T or getattr(model, "T", None)
    for ax, (what, key) in zip(axes, rows):
        name = f"layer {key}"
        if what == "raster":
            s = spikes[key]
            sel = np.asarray(s.sample) == sample
            t_s, n_s = np.asarray(s.t)[sel], np.asarray(s.neuron)[sel]
            n = _layer_size(model, key, int(n_s.max()) + 1 if len(n_s) else 1)
            raster(t_s, n_s, ax=ax, T=T, n=n, dt=dt, title=f"{name}: {len(t_s)} spikes")
            if ax is not axes[-1]:
                ax.set_xlabel("")
        elif what == "membrane":
            m = np.asarray(mem[key])
            if m.ndim != 3:
                raise ValueError(f"plot_recording: rec.membrane[{key!r}] must be [T, B, k], "
                                 f"got shape {m.shape}")
            layer = _layer_record(model, key)
            theta = getattr(layer, "theta", None)
            reset = getattr(layer, "v_reset", None) if getattr(layer, "reset", None) == "hard" else None
            membrane(m[:, sample, :], threshold=theta, reset=reset, ax=ax,
                     ternary=getattr(layer, "spikes", "binary") == "ternary",
                     labels=_membrane_neurons(rec, key, m.shape[2]), title=f"{name}: membrane")
            if ax is not axes[-1]:
                ax.set_xlabel("")
        else:
            r = np.asarray(readout)[:, sample, :]
            ax.plot(np.arange(r.shape[0]), r, linewidth=1.0)
            title = "readout"
            preds = getattr(rec, "predictions", None)
            if preds is not None:
                title += f" (prediction {int(np.asarray(preds)[sample])})"
            ax.set_title(title)
            ax.set_ylabel("readout")
            ax.set_xlabel("time step")
    if out is not None:
        if isinstance(out, (str, os.PathLike)):
            check_output(out, "image")  # a figure never replaces a model, data, ... file
        fig.savefig(out, dpi=120)
    return fig
