"""Plots of simulator recordings: spike rasters, membrane traces, firing rates, training curves,
readouts with class names, rate histograms, conv spike-count maps, membrane images.

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

from snncore.fileio import check_output

__all__ = ["raster", "membrane", "firing_rates", "training_curves", "plot_recording",
           "pick_neurons", "spike_counts", "CLASS_NAMES", "readout", "rate_histogram",
           "layer_rates", "spike_count_map", "membrane_image"]

#: above this many spikes ``raster(method="auto")`` draws a 2-D histogram image instead of
#: one marker per spike (both render 1e6 spikes in well under a second; the image also
#: shows density where markers would overlap).
MAX_MARKERS = 200_000
#: largest image (time bins x neuron bins) drawn by the histogram method.
MAX_IMAGE_BINS = (2000, 1000)
#: up to this many steps a raster draws each spike as a dash 0.8 steps wide (a '|' marker
#: would be a thin line in a wide empty cell) and traces mark every step with a dot.
SMALL_T = 64
#: class names by the model metadata's ``dataset`` (readout legends of :func:`plot_recording`).
CLASS_NAMES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(d) for d in range(10)),
}
CLASS_NAMES["fashion-mnist-small"] = CLASS_NAMES["fashion-mnist"]


def spike_counts(spikes, n: int, sample: int = 0) -> np.ndarray:
    """Spikes per neuron of one sample: ``[n]`` int64.

    Args:
        spikes: a layer's spikes with int arrays ``.sample`` and ``.neuron`` (a
            :class:`eventsim.recording.SpikeTrain`), or None (no spikes).
        n: number of neurons in the layer.
        sample: which sample of the batch.
    """
    if spikes is None:
        return np.zeros(int(n), dtype=np.int64)
    sel = np.asarray(spikes.sample) == sample
    neuron = np.asarray(spikes.neuron, dtype=np.int64)[sel]
    return np.bincount(neuron, minlength=int(n))[:int(n)]


def pick_neurons(counts, T: int, k: int = 5, peak=None, fraction: float = 0.5) -> np.ndarray:
    """Choose k neurons whose membrane traces show threshold crossings.

    A neuron that fires on every step has a flat trace above threshold and a silent one a
    trace that never reaches it; neither shows how the neuron works.  The choice, in order:

    1. neurons that fire on some steps but not all (``0 < count < T``), those whose count
       is closest to ``fraction * T`` first;
    2. silent neurons, highest ``peak`` membrane first (closest to threshold), or lowest
       index first when ``peak`` is None;
    3. neurons that fire on every step.

    Where equally good neurons are more than needed, the chosen ones are spread evenly over
    their index range (over the channels of a conv layer), not the lowest indices.

    Args:
        counts: ``[n]`` spikes per neuron over the T steps of one sample (for ternary
            layers: spikes of either sign), e.g. from :func:`spike_counts`.
        T: number of steps.
        k: how many neurons (fewer when the layer is smaller).
        peak: optional ``[n]`` largest membrane potential of each neuron over the run
            (``u.max(axis=0)``; ``abs(u).max(axis=0)`` for ternary layers).
        fraction: the preferred share of steps with a spike.

    Returns:
        ``[min(k, n)]`` int64 neuron indices, ascending.
    """
    c = np.asarray(counts)
    if c.ndim != 1 or c.dtype.kind not in "iu":
        raise ValueError(f"pick_neurons: counts must be a 1-D integer array, got {c.dtype} "
                         f"shape {c.shape}")
    c = c.astype(np.int64)
    n = len(c)
    score = np.abs(c - fraction * T).astype(np.float64)
    group = np.where((c > 0) & (c < T), 0, np.where(c == 0, 1, 2))
    if peak is not None:
        pk = np.asarray(peak, dtype=np.float64)
        if pk.shape != (n,):
            raise ValueError(f"pick_neurons: peak must have shape ({n},), got {pk.shape}")
        score = np.where(group == 1, -np.nan_to_num(pk, nan=-np.inf), score)
    else:
        score = np.where(group == 1, 0.0, score)
    order = np.lexsort((np.arange(n), score, group))
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    # the last place's tie class: take what is needed from it, evenly spaced
    same = (group[order] == group[order[k - 1]]) & (score[order] == score[order[k - 1]])
    tied = order[same]
    before = order[:k][~same[:k]]
    m = k - len(before)
    spread = tied[np.round(np.linspace(0, len(tied) - 1, m)).astype(np.int64)] if m else tied[:0]
    return np.sort(np.concatenate([before, spread])).astype(np.int64)


def _new_figure(figsize=(8.0, 4.5)):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _axes(ax, figsize=(8.0, 4.5)):
    if ax is None:
        return _new_figure(figsize).add_subplot()
    return ax


def _time_scale(dt) -> float:
    """x-axis units per step: milliseconds when ``dt`` (seconds) is given, else steps."""
    return 1.0 if dt is None else float(dt) * 1e3


def _time_axis(ax, T, dt) -> None:
    """Label the x axis "time step" (integer ticks) or "time (ms)" when ``dt`` is given;
    with at most 20 steps every step gets a tick."""
    from matplotlib.ticker import MaxNLocator, MultipleLocator

    if T is not None and T <= 20:
        ax.xaxis.set_major_locator(MultipleLocator(_time_scale(dt)))
    elif dt is None:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time step" if dt is None else "time (ms)")


def _legend_outside(ax, **kw):
    """Legend to the right of the Axes, where it cannot cover data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                     fontsize="small", frameon=False, **kw)


def _channel_ticks(ax, channels: int, n: int) -> None:
    """Rows ``[c * n/C, (c+1) * n/C)`` belong to channel c: boundary lines, channel ticks."""
    per = n // channels
    for c in range(1, channels):
        ax.axhline(c * per - 0.5, color="tab:blue", linewidth=0.4, alpha=0.35, zorder=1)
    every = 1
    while channels / every > 8:
        every *= 2
    shown = np.arange(0, channels, every)
    ax.set_yticks(shown * per + (per - 1) / 2, [str(c) for c in shown])
    ax.tick_params(axis="y", length=0)
    ax.set_ylabel(f"channel\n({per} neurons each)")


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


def _check_dt(where: str, dt, optional: bool):
    """``dt`` as a finite float > 0 (or None when ``optional``); else a ValueError naming it."""
    if dt is None and optional:
        return None
    try:
        value = float(dt)
    except (TypeError, ValueError):
        value = None
    if value is None or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: dt must be a finite step length > 0"
                         f"{' or None' if optional else ''}, got {dt!r}")
    return value


def _check_sample(rec, sample) -> int:
    """``sample`` as an index into the recording's batch, when its size is known."""
    if isinstance(sample, (bool, np.bool_)) or not isinstance(sample, (int, np.integer)):
        raise ValueError(f"plot_recording: sample must be an integer, got {sample!r}")
    B = getattr(rec, "batch_size", None)
    for arr in [getattr(rec, "readout", None)] + list((getattr(rec, "membrane", None) or {}).values()):
        if B is None and arr is not None and np.ndim(arr) == 3:
            B = np.shape(arr)[1]
    if sample < 0 or (B is not None and sample >= B):
        valid = f"[0, {B})" if B is not None else ">= 0"
        raise ValueError(f"plot_recording: sample {int(sample)} outside {valid}"
                         + (f" (the recording holds {B} samples)" if B is not None else ""))
    return int(sample)


def _spike_dashes(ax, t, i, n, color, scale, linewidth=None):
    """One horizontal dash per spike, 0.8 steps wide: with few steps a '|' marker would be a
    thin line in a wide empty cell.  Thin rows stay visible (antialiased, never dropped)."""
    from matplotlib.collections import LineCollection

    x = np.asarray(t, dtype=np.float64) * scale
    y = np.asarray(i, dtype=np.float64)
    segs = np.stack([np.stack([x - 0.4 * scale, y], 1), np.stack([x + 0.4 * scale, y], 1)], 1)
    lw = linewidth if linewidth is not None else float(np.clip(150.0 / n, 0.6, 6.0))
    lc = LineCollection(segs, colors=color, linewidths=lw, capstyle="butt")
    lc.set_rasterized(len(x) > 10_000)
    ax.add_collection(lc, autolim=False)


def _hist_image(ax, t, i, T, n, color, scale: float = 1.0):
    """2-D histogram of spikes per (time bin, neuron bin), drawn as one image (x in steps
    times ``scale``)."""
    from matplotlib.colors import LinearSegmentedColormap, PowerNorm

    tb, nb = min(int(np.ceil(T)), MAX_IMAGE_BINS[0]), min(n, MAX_IMAGE_BINS[1])
    ti = np.clip((np.asarray(t, np.float64) * (tb / T)).astype(np.int64), 0, tb - 1)
    ni = np.clip(i * nb // n, 0, nb - 1)
    counts = np.bincount(ni * tb + ti, minlength=nb * tb).reshape(nb, tb)
    cmap = LinearSegmentedColormap.from_list("raster", ["white", color])
    # square-root scale: a bin with one spike stays visible next to a bin where all fire
    norm = PowerNorm(0.5, vmin=0, vmax=max(1, counts.max()))
    im = ax.imshow(counts, aspect="auto", origin="lower", interpolation="nearest", cmap=cmap,
                   extent=((-0.5) * scale, (T - 0.5) * scale, -0.5, n - 0.5), norm=norm)
    return im


def raster(t, neuron, ax=None, T=None, n=None, rate_panel: bool = False,
           population_panel: bool = False, method: str = "auto", dt: float | None = None,
           color="k", markersize: float | None = None, title: str | None = None, fig=None,
           ylabel: str = "neuron", channels: int | None = None):
    """Spike raster: one mark per spike at (step, neuron).

    Args:
        t: ``[n_spikes]`` time step of each spike.  neuron: ``[n_spikes]`` neuron index.
        ax: Axes to draw into (new figure if None).
        T: number of steps (x range ``[0, T)``); default ``max(t) + 1``.
        n: number of neurons (y range); default ``max(neuron) + 1``.
        rate_panel: add a per-neuron firing-rate panel on the right.
        population_panel: add a population-rate panel below (mean rate per step).
        method: "markers" (one mark per spike: a '|' marker, or for at most
            :data:`SMALL_T` steps a dash 0.8 steps wide; rasterised above 10,000 spikes),
            "image" (2-D histogram, exact per-cell when ``T <= 2000`` and ``n <= 1000``), or
            "auto": markers up to :data:`MAX_MARKERS` spikes, the image above, and the image
            too for at most :data:`SMALL_T` steps of more than 1000 neurons (where a dash
            would cover many rows).  1e6 spikes render in < 1 s either way.
        markersize: height of a '|' marker, or width of a dash (points).
        dt: step length in seconds: the x axis is then "time (ms)" and rates are in Hz;
            without it the x axis counts steps ("time step") and rates are spikes per step.
        fig: Figure to lay the panels out in (with panels; default: ``ax``'s figure, or new).
        channels: the neurons are ``channels`` equal blocks, channel-major (a conv layer's
            ``[C, H, W]`` in C order): boundary lines between channels, channel numbers
            on the y axis.

    Returns:
        The raster's Axes, or -- when a panel is requested -- the Figure holding the raster
        (``fig.axes[0]``), rate panel and population panel.
    """
    t, i = _spike_arrays(t, neuron)
    dt = _check_dt("raster", dt, optional=True)
    T = float(T) if T is not None else (float(t.max()) + 1 if len(t) else 1.0)
    n = int(n) if n is not None else (int(i.max()) + 1 if len(i) else 1)
    if T <= 0 or n <= 0:
        raise ValueError(f"raster: T and n must be positive, got T={T}, n={n}")
    if method not in ("auto", "markers", "image"):
        raise ValueError(f"raster: method must be 'auto', 'markers' or 'image', got {method!r}")
    if channels is not None and (int(channels) < 1 or n % int(channels)):
        raise ValueError(f"raster: channels={channels} does not divide n={n} neurons")
    if method == "auto":
        dense = len(t) > MAX_MARKERS or (T <= SMALL_T and n > MAX_IMAGE_BINS[1])
        method = "image" if dense else "markers"
    scale = _time_scale(dt)

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
        if method == "markers" and T <= SMALL_T:
            _spike_dashes(ax, t, i, n, color, scale, markersize)
        elif method == "markers":
            ms = markersize if markersize is not None else float(np.clip(300.0 / n, 1.0, 6.0))
            ax.plot(np.asarray(t) * scale, i, linestyle="none", marker="|", markersize=ms,
                    color=color, rasterized=len(t) > 10_000)
        else:
            _hist_image(ax, t, i, T, n, color, scale)
    ax.set_xlim(-0.5 * scale, (T - 0.5) * scale)
    ax.set_ylim(-0.5, n - 0.5)
    ax.set_ylabel(ylabel)
    if channels is not None and int(channels) > 1:
        _channel_ticks(ax, int(channels), n)
    if title:
        ax.set_title(title)
    unit = "Hz" if dt else "spikes/step"
    per_s = 1.0 / dt if dt else 1.0
    if ax_rate is not None:
        rates = np.bincount(i, minlength=n)[:n] / T * per_s
        ax_rate.stairs(rates, np.arange(n + 1) - 0.5, orientation="horizontal", fill=True,
                       color=color)
        ax_rate.set_xlabel(f"rate ({unit})")
        ax_rate.tick_params(labelleft=False)
    if ax_pop is not None:
        steps = int(np.ceil(T))
        tt = np.clip(np.asarray(t, np.float64).astype(np.int64), 0, steps - 1)
        pop = np.bincount(tt, minlength=steps) / n * per_s
        ax_pop.step(np.arange(steps) * scale, pop, where="mid", color=color)
        ax_pop.set_ylabel(f"pop. ({unit})")
        _time_axis(ax_pop, T, dt)
        ax.tick_params(labelbottom=False)
    else:
        _time_axis(ax, T, dt)
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


def membrane(trace, threshold=None, spikes_t=None, reset=None, dt: float | None = None, ax=None,
             labels: Sequence[str] | None = None, title: str | None = None,
             ternary: bool = False):
    """Membrane traces with threshold and reset lines and spike marks.

    Args:
        trace: ``[T]`` or ``[T, k]`` membrane potential (before reset) per step.
        threshold: scalar ``theta`` (dashed red line), ``[k]`` one per trace (per-neuron
            thresholds: a dashed line in each trace's colour, or one red line when they are
            all equal), or None.
        spikes_t: spike steps, marked by a vertical tick on the trace: ``[n]`` for one trace,
            a list of k arrays, or a boolean mask ``[T, k]``; default (with a threshold): the
            steps where ``trace >= threshold`` (the model's test, docs/methods.md section 2), and
            ``trace <= -threshold`` too when ``ternary``.
        reset: reset potential ``v_reset`` (dotted line) or None.
        dt: step length in seconds: the x axis is then "time (ms)" (``t * dt * 1000``);
            without it the x axis counts steps ("time step").
        labels: names of the k traces for the legend (drawn to the right of the Axes).
        ternary: the layer emits -1 spikes at ``u <= -theta``: draw that line as well.

    Returns:
        The Axes.
    """
    dt = _check_dt("membrane", dt, optional=True)
    tr = np.asarray(trace, dtype=np.float64)
    if tr.ndim == 1:
        tr = tr[:, None]
    if tr.ndim != 2 or tr.shape[0] < 1:
        raise ValueError(f"membrane: trace must be [T] or [T, k], got shape {np.shape(trace)}")
    T, k = tr.shape
    if labels is not None and len(labels) != k:
        raise ValueError(f"membrane: {len(labels)} labels for {k} traces")
    ax = _axes(ax)
    scale = _time_scale(dt)
    x = np.arange(T) * scale
    lines = ax.plot(x, tr, linewidth=1.2, marker="o" if T <= SMALL_T else None, markersize=3)
    if labels is not None:
        for line, lab in zip(lines, labels):
            line.set_label(str(lab))
    th = None
    if threshold is not None:
        th = np.asarray(threshold, dtype=np.float64)
        if th.ndim > 1 or (th.ndim == 1 and len(th) != k) or not np.all(np.isfinite(th)):
            raise ValueError(f"membrane: threshold must be a finite scalar or one per trace "
                             f"({k}), got shape {th.shape}")
        if th.ndim == 1 and np.all(th == th[0]):
            th = th[0]
    if spikes_t is None and th is not None:
        spikes_t = tr >= th
        if ternary:
            spikes_t |= tr <= -th
    per_trace = _spike_times_per_trace(spikes_t, k, T)
    if th is not None and th.ndim == 0:
        ax.axhline(float(th), color="tab:red", linestyle="--", linewidth=1.0, label="threshold")
        if ternary:
            ax.axhline(-float(th), color="tab:red", linestyle="--", linewidth=0.8)
    elif th is not None:
        for j, line in enumerate(lines):
            c = line.get_color()
            ax.axhline(th[j], color=c, linestyle="--", linewidth=0.9,
                       label="threshold (per neuron)" if j == 0 else None)
            if ternary:
                ax.axhline(-th[j], color=c, linestyle="--", linewidth=0.7)
    if reset is not None:
        ax.axhline(float(reset), color="0.4", linestyle=":", linewidth=1.0, label="reset")
    if per_trace is not None:
        marked = False
        for j, st in enumerate(per_trace):
            st = np.asarray(st, dtype=np.int64)
            st = st[(st >= 0) & (st < T)]
            if len(st):
                ax.plot(st * scale, tr[st, j], linestyle="none", marker="|", markersize=14,
                        markeredgewidth=2.0, color=lines[j].get_color(), zorder=3)
                marked = True
    ax.set_xlim(-0.5 * scale, (T - 0.5) * scale)
    ax.margins(y=0.1)  # room for the spike ticks at the highest points
    _time_axis(ax, T, dt)
    ax.set_ylabel("membrane potential")
    if title:
        ax.set_title(title)
    if labels is not None or threshold is not None or reset is not None:
        from matplotlib.lines import Line2D

        handles, _ = ax.get_legend_handles_labels()
        if per_trace is not None and marked:  # a legend key for the marks, not drawn in the Axes
            handles.append(Line2D([], [], linestyle="none", marker="|", markersize=10,
                                  markeredgewidth=2.0, color="0.25", label="spike"))
        _legend_outside(ax, handles=handles)
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

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # 1 epoch: tick 1
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
# readout, rate histograms, conv spike-count maps, membrane images
# ---------------------------------------------------------------------------------------
def _names_for(where: str, class_names, n_out: int) -> list:
    """``n_out`` class names from a sequence, a dataset name of :data:`CLASS_NAMES`, or None
    ("class c")."""
    if class_names is None:
        return [f"class {c}" for c in range(n_out)]
    if isinstance(class_names, str):
        key = class_names.lower().replace("_", "-")
        if key not in CLASS_NAMES:
            raise ValueError(f"{where}: class_names {class_names!r} is no known dataset "
                             f"({', '.join(sorted(CLASS_NAMES))}); give a list of names")
        class_names = CLASS_NAMES[key]
    names = [str(c) for c in class_names]
    if len(names) != n_out:
        raise ValueError(f"{where}: class_names has {len(names)} names for {n_out} readout classes")
    return names


def _class_index(where: str, name: str, value, n_out: int):
    """``value`` (a class index) checked against ``[0, n_out)``; None stays None."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not 0 <= int(value) < n_out:
        raise ValueError(f"{where}: {name} must be a class index in [0, {n_out}), got {value!r}")
    return int(value)


def readout(scores, ax=None, class_names=None, predicted=None, true_label=None,
            dt: float | None = None, title: str | None = None, xlabel: str | None = None):
    """The readout of one sample with class names, the predicted and the true class marked.

    Args:
        scores: either ``[T, n_out]``, the per-step readout of one sample
            (``rec.readout[:, b, :]``): one line per class over time, named in a legend; or
            ``[n_out]`` decoded scores (e.g. the time mean ``rec.readout[:, b].mean(0)``, or
            the dense engine's decoded output): one horizontal bar per class, the class names
            as y tick labels (class 0 at the top).  Readout values have the units of the
            output layer (no physical unit).
        ax: Axes to draw into (new figure if None).
        class_names: ``n_out`` names, a dataset name of :data:`CLASS_NAMES` (e.g.
            ``"fashion-mnist"``), or None ("class 0", "class 1", ...).
        predicted: the predicted class (bold line / coloured bar); default the argmax of the
            scores (for ``[T, n_out]``: of their time mean, the uniform decoder; pass
            ``rec.predictions[b]`` for a model with time weights).
        true_label: the sample's true class: its legend entry reads "(true)", its bar gets a
            star and a bold tick label; named in the title.
        dt: step length in seconds for the time axis of ``[T, n_out]`` (ms; default steps).
        xlabel: x-axis label of the bars (default "decoded score (time-mean readout)").

    Returns:
        The Axes.
    """
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"readout: scores must be numbers, got {type(scores).__name__}") from None
    if s.ndim not in (1, 2) or s.size == 0 or s.shape[-1] < 1:
        raise ValueError(f"readout: scores must be [n_out] decoded scores or [T, n_out] per-step "
                         f"readout, got shape {np.shape(scores)}")
    if not np.isfinite(s).all():
        raise ValueError(f"readout: scores of shape {s.shape} hold non-finite values")
    dt = _check_dt("readout", dt, optional=True)
    n_out = s.shape[-1]
    names = _names_for("readout", class_names, n_out)
    pred = _class_index("readout", "predicted", predicted, n_out)
    true = _class_index("readout", "true_label", true_label, n_out)
    if pred is None:
        pred = int(np.argmax(s if s.ndim == 1 else s.mean(axis=0)))
    if s.ndim == 2:
        ax = _axes(ax)
        _readout_lines(ax, s, names, pred, true, dt)
    else:
        ax = _axes(ax, figsize=(6.0, 0.3 * n_out + 1.4))
        _readout_bars(ax, s, names, pred, true, xlabel)
    if title is not None:
        ax.set_title(title)
    return ax


def _readout_title(start: str, names, pred, true) -> str:
    """Two lines: what is drawn, then the predicted and the true class (short Axes fit)."""
    title = f"{start}\npredicted {names[pred]}"
    if true is not None:
        title += f", true class {names[true]}" + (" (correct)" if true == pred else " (wrong)")
    return title


def _readout_lines(ax, r, names, pred, true, dt):
    """Per-step readout ``r [T, n_out]``, one line per class; the predicted class bold."""
    T = r.shape[0]
    x = np.arange(T) * _time_scale(dt)
    for c in range(r.shape[1]):
        bold = c == pred
        tags = [w for w, on in (("predicted", bold), ("true", c == true)) if on]
        ax.plot(x, r[:, c], color=f"C{c % 10}", linewidth=2.6 if bold else 1.0,
                alpha=1.0 if bold else 0.75, zorder=3 if bold else 2,
                linestyle="--" if c == true and not bold else "-",
                marker="o" if T <= SMALL_T else None, markersize=4 if bold else 2.5,
                label=names[c] + (f" ({', '.join(tags)})" if tags else ""))
    ax.set_title(_readout_title("readout per step", names, pred, true))
    ax.set_ylabel("readout")
    ax.set_xlim(x[0] - 0.5 * _time_scale(dt), x[-1] + 0.5 * _time_scale(dt))
    _time_axis(ax, T, dt)
    _legend_outside(ax, title="class")


def _readout_bars(ax, s, names, pred, true, xlabel):
    """Decoded scores ``s [n_out]`` as horizontal bars; predicted coloured, true starred."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    y = np.arange(len(s))
    ax.barh(y, s, height=0.7, color=["tab:blue" if c == pred else "0.75" for c in y])
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    ax.set_yticks(y, names)
    ax.set_ylim(len(s) - 0.5, -0.5)            # class 0 at the top
    handles = [Patch(color="tab:blue", label=f"predicted: {names[pred]}")]
    if true is not None:
        ax.get_yticklabels()[true].set_fontweight("bold")
        ax.plot([s[true]], [true], linestyle="none", marker="*", markersize=13, color="tab:orange",
                markeredgecolor="k", zorder=3)
        handles.append(Line2D([], [], linestyle="none", marker="*", markersize=11,
                              color="tab:orange", markeredgecolor="k", label=f"true: {names[true]}"))
    ax.margins(x=0.08)
    ax.set_xlabel(xlabel or "decoded score (time-mean readout)")
    ax.set_title(_readout_title("decoded readout", names, pred, true))
    _legend_outside(ax, handles=handles)


def layer_rates(rec, dt: float | None = None, sample: int | None = None) -> dict:
    """Firing rate of every neuron of every spiking layer of a recording.

    Args:
        rec: an ``eventsim`` Recording (``rec.spikes[layer]`` SpikeTrains with ``n_neurons``;
            ``rec.T`` steps, ``rec.batch_size`` samples).
        dt: step length in seconds: rates in Hz; default spikes per step.
        sample: one sample's rates; default the mean over the batch.

    Returns:
        ``{layer key: [n_neurons] float64 rates}`` (spikes of either sign for ternary layers).
    """
    dt = _check_dt("layer_rates", dt, optional=True)
    T, B = int(rec.T), int(rec.batch_size)
    if sample is not None and (isinstance(sample, (bool, np.bool_)) or
                               not isinstance(sample, (int, np.integer)) or not 0 <= sample < B):
        raise ValueError(f"layer_rates: sample must be an index in [0, {B}), got {sample!r}")
    out = {}
    for key, train in rec.spikes.items():
        n = int(train.n_neurons)
        if sample is None:
            counts = np.bincount(np.asarray(train.neuron, np.int64), minlength=n)[:n] / B
        else:
            counts = spike_counts(train, n, sample=int(sample)).astype(np.float64)
        out[key] = counts / T / (dt if dt else 1.0)
    return out


def _hist_edges(where: str, bins, data, names):
    """Shared bin edges: ``bins`` equal bins over ``[0, max rate]``, or given edges that must
    be increasing and cover every rate."""
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, (bool, np.bool_)):
        if bins < 1:
            raise ValueError(f"{where}: bins must be >= 1 or an array of edges, got {bins}")
        hi = max((float(r.max()) for r in data if len(r)), default=0.0)
        lo = min((float(r.min()) for r in data if len(r)), default=0.0)
        lo = min(lo, 0.0)
        return np.linspace(lo, hi if hi > lo else lo + 1.0, int(bins) + 1)
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0) \
            or not np.isfinite(edges).all():
        raise ValueError(f"{where}: bins must be an int or increasing finite edges, got shape "
                         f"{edges.shape}")
    for name, r in zip(names, data):
        if len(r) and (r.min() < edges[0] or r.max() > edges[-1]):
            raise ValueError(f"{where}: bins [{edges[0]:g}, {edges[-1]:g}] do not cover layer "
                             f"{name!r}, whose rates span [{r.min():g}, {r.max():g}]")
    return edges


def rate_histogram(rates_by_layer: Mapping[str, np.ndarray], ax=None, bins=20,
                   unit: str = "spikes/step", fraction: bool = True, log: bool = False,
                   title: str | None = None, legend_title: str = "layer"):
    """Histogram of per-neuron firing rates, one outline per layer on shared bins.

    Where :func:`firing_rates` summarises each layer in one box, this shows the whole
    distribution: how many neurons are silent, how many fire on every step.

    Args:
        rates_by_layer: ``{layer name: rates}``, each any shape (flattened: one rate per
            neuron), e.g. from :func:`layer_rates`; in ``unit``.
        ax: Axes to draw into (new figure if None).
        bins: number of equal bins over ``[0, largest rate]`` (shared by all layers), or
            increasing bin edges that cover every rate.
        unit: rate unit for the x label ("spikes/step", or "Hz" for rates from ``dt``).
        fraction: y is the fraction of each layer's neurons (layers of different sizes
            compare); False: the number of neurons.
        log: logarithmic y axis (silent neurons often outnumber the rest).
        legend_title: title of the legend (drawn right of the Axes), which names each
            histogram with its number of neurons and mean rate.

    Returns:
        The Axes (one ``StepPatch`` per layer in ``ax.patches``, in the mapping's order).
    """
    where = "rate_histogram"
    if not isinstance(rates_by_layer, Mapping) or not rates_by_layer:
        raise ValueError(f"{where}: expected a non-empty {{layer: rates}} mapping, got "
                         f"{type(rates_by_layer).__name__}")
    names, data = [], []
    for name, r in rates_by_layer.items():
        r = np.asarray(r, dtype=np.float64).ravel()
        if not np.isfinite(r).all():
            raise ValueError(f"{where}: layer {name!r} has non-finite rates")
        names.append(str(name))
        data.append(r)
    edges = _hist_edges(where, bins, data, names)
    ax = _axes(ax, figsize=(6.5, 4.0))
    for j, (name, r) in enumerate(zip(names, data)):
        counts = np.histogram(r, bins=edges)[0].astype(np.float64)
        if fraction and len(r):
            counts /= len(r)
        mean = f", mean {r.mean():.3g} {unit}" if len(r) else ""
        ax.stairs(counts, edges, color=f"C{j % 10}", linewidth=1.8, baseline=0.0,
                  label=f"{name}\n{len(r)} neurons{mean}")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(f"firing rate per neuron ({unit})")
    ax.set_ylabel("fraction of neurons" if fraction else "neurons")
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    _legend_outside(ax, title=legend_title)
    return ax


def _conv_counts(where: str, counts, shape, sample: int):
    """``[C, H, W]`` float64 counts from an array (``shape`` for a flat one) or a SpikeTrain."""
    if hasattr(counts, "neuron") and hasattr(counts, "sample"):
        train = counts
        shape = shape if shape is not None else getattr(train, "shape", None)
        if shape is None:
            raise ValueError(f"{where}: the spike train has no shape; pass shape=(C, H, W)")
        counts = spike_counts(train, int(np.prod(shape)), sample=sample)
    c = np.asarray(counts, dtype=np.float64)
    if shape is not None:
        shape = tuple(int(v) for v in shape)
        if len(shape) != 3 or c.size != int(np.prod(shape)):
            raise ValueError(f"{where}: shape must be (C, H, W) holding the {c.size} counts, "
                             f"got {shape}")
        c = c.reshape(shape)
    if c.ndim != 3 or c.size == 0:
        raise ValueError(f"{where}: counts must be [C, H, W] (or flat with shape=(C, H, W)), got "
                         f"shape {np.shape(counts)}")
    if not np.isfinite(c).all() or (c < 0).any():
        raise ValueError(f"{where}: counts must be finite and >= 0")
    return c


def _tiles(c, gap: int = 1):
    """Channels of ``c [C, H, W]`` as tiles of a near-square grid in one image (NaN gaps):
    returns the image and the (row, column) of each tile's top-left pixel."""
    C, H, W = c.shape
    cols = int(np.ceil(np.sqrt(C)))
    rows = int(np.ceil(C / cols))
    img = np.full((rows * (H + gap) - gap, cols * (W + gap) - gap), np.nan)
    corners = []
    for k in range(C):
        r0, c0 = (k // cols) * (H + gap), (k % cols) * (W + gap)
        img[r0:r0 + H, c0:c0 + W] = c[k]
        corners.append((r0, c0))
    return img, corners


def spike_count_map(counts, ax=None, layout: str = "rows", shape=None, sample: int = 0,
                    title: str | None = None, label: str = "spikes per neuron",
                    cmap: str = "viridis", colorbar: bool = True):
    """Spike counts of a conv layer for one sample as a heat map.

    Args:
        counts: ``[C, H, W]`` spikes per neuron over the run (or mean counts); a flat
            ``[C*H*W]`` array with ``shape=(C, H, W)``; or a layer's SpikeTrain
            (``rec.spikes[layer]``, counted for ``sample``; its ``shape`` is used).
        ax: Axes to draw into (new figure if None).
        layout: "rows": one image ``[C, H*W]``, a row per channel and a column per position
            ``y*W + x``; "grid": each channel as an ``H x W`` tile in a near-square grid
            (white gaps between tiles, the channel number on each tile).
        shape: ``(C, H, W)`` for flat counts or a SpikeTrain without a shape.
        sample: which sample of a SpikeTrain's batch.
        label: colour bar label (say the unit, e.g. "spikes in 8 steps").
        colorbar: draw a colour bar (``ax.colorbar``).

    Returns:
        The Axes (the image is ``ax.images[0]``).
    """
    where = "spike_count_map"
    if layout not in ("rows", "grid"):
        raise ValueError(f"{where}: layout must be 'rows' or 'grid', got {layout!r}")
    c = _conv_counts(where, counts, shape, sample)
    C, H, W = c.shape
    ax = _axes(ax, figsize=(8.0, 3.5) if layout == "rows" else (6.0, 5.5))
    if layout == "rows":
        im = ax.imshow(c.reshape(C, H * W), aspect="auto", interpolation="nearest",
                       cmap=cmap, vmin=0, extent=(-0.5, H * W - 0.5, C - 0.5, -0.5))
        every = max(1, int(np.ceil(C / 16)))
        ax.set_yticks(np.arange(0, C, every))
        ax.set_ylabel("channel")
        ax.set_xlabel(f"position y*{W} + x  ({H}x{W} map)")
    else:
        import matplotlib

        img, corners = _tiles(c)
        cm = matplotlib.colormaps[cmap].with_extremes(bad="white")
        im = ax.imshow(np.ma.masked_invalid(img), interpolation="nearest", cmap=cm, vmin=0)
        for k, (r0, c0) in enumerate(corners):
            ax.text(c0 + 0.3, r0 + 0.3, str(k), color="w", fontsize="x-small", va="top",
                    ha="left", fontweight="bold")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{C} channels, each {H}x{W} (numbered top left)")
    if colorbar:
        ax.colorbar = ax.figure.colorbar(im, ax=ax, label=label)
    ax.set_title(title if title is not None else
                 f"spike counts: {C} channels x {H}x{W}, {int(c.sum())} spikes")
    return ax


def membrane_image(u, ax=None, threshold=None, spikes=None, dt: float | None = None,
                   neurons=None, title: str | None = None, cmap: str = "RdBu_r",
                   ylabel: str = "neuron", colorbar: bool = True):
    """Membrane potentials of many neurons as one image: neurons x time.

    The diverging colour map is centred on the threshold (white), so red cells are at or
    above threshold and blue ones below; the colour range is symmetric about it.

    Args:
        u: ``[T, k]`` membrane potential before reset of k neurons (one sample), e.g.
            ``rec.membrane[layer][:, b, :]``; drawn as k rows of T cells.
        ax: Axes to draw into (new figure if None).
        threshold: scalar ``theta`` (the colour map's centre); ``[k]`` one per neuron (the
            image then shows ``u - theta_j``, centred on 0); None: centred on 0.
        spikes: None (no marks); True: mark the steps where ``u >= threshold``; or a boolean
            ``[T, k]`` mask of the spikes (e.g. from ``SpikeTrain.to_dense()``): a black dot
            per spike.
        dt: step length in seconds: the x axis in ms; default in steps.
        neurons: ``[k]`` neuron indices shown as the y tick labels (default 0..k-1).
        colorbar: draw a colour bar (``ax.colorbar``).

    Returns:
        The Axes (the image is ``ax.images[0]``, data ``[k, T]``).
    """
    from matplotlib.colors import CenteredNorm

    where = "membrane_image"
    dt = _check_dt(where, dt, optional=True)
    a = np.asarray(u, dtype=np.float64)
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"{where}: u must be [T, k] (steps x neurons), got shape {np.shape(u)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: u of shape {a.shape} holds non-finite values")
    T, k = a.shape
    th = None if threshold is None else np.asarray(threshold, dtype=np.float64)
    if th is not None and (th.shape not in ((), (k,)) or not np.isfinite(th).all()):
        raise ValueError(f"{where}: threshold must be a finite scalar or [k={k}] one per neuron, "
                         f"got shape {th.shape}")
    centre = 0.0 if th is None or th.ndim == 1 else float(th)
    img = (a - th if th is not None and th.ndim == 1 else a).T
    mask = _membrane_spike_mask(where, spikes, a, th, T, k)
    if neurons is not None:
        neurons = np.asarray(neurons)
        if neurons.shape != (k,):
            raise ValueError(f"{where}: neurons must have shape ({k},), got {neurons.shape}")
    ax = _axes(ax, figsize=(8.0, 4.0))
    scale = _time_scale(dt)
    half = float(np.max(np.abs(img - centre))) or 1.0
    im = ax.imshow(img, aspect="auto", interpolation="nearest", origin="lower", cmap=cmap,
                   norm=CenteredNorm(vcenter=centre, halfrange=half),
                   extent=(-0.5 * scale, (T - 0.5) * scale, -0.5, k - 0.5))
    if mask is not None:
        t_s, j_s = np.nonzero(mask)
        ax.plot(t_s * scale, j_s, linestyle="none", marker=".", color="k",
                markersize=float(np.clip(200.0 / max(k, T), 1.5, 5.0)))
    if neurons is not None:
        ticks = np.unique(np.linspace(0, k - 1, min(k, 8)).round().astype(np.int64))
        ax.set_yticks(ticks, [str(v) for v in neurons[ticks]])
    ax.set_ylabel(ylabel)
    _time_axis(ax, T, dt)
    if colorbar:
        what = "membrane potential" if th is None or th.ndim == 0 else "u - threshold"
        where_white = "" if th is None else (f" (white: threshold {centre:g})" if th.ndim == 0
                                            else " (white: at threshold)")
        dots = "; dots: spikes" if mask is not None else ""
        ax.colorbar = ax.figure.colorbar(im, ax=ax, label=f"{what}{where_white}{dots}")
    if title:
        ax.set_title(title)
    return ax


def _membrane_spike_mask(where, spikes, a, th, T, k):
    """The ``[T, k]`` spike mask to mark, or None."""
    if spikes is None or spikes is False:
        return None
    if spikes is True:
        if th is None:
            raise ValueError(f"{where}: spikes=True marks u >= threshold; give threshold")
        return a >= th
    m = np.asarray(spikes)
    if m.shape != (T, k) or m.dtype.kind not in "bui":
        raise ValueError(f"{where}: spikes must be None, True or a boolean [T={T}, k={k}] mask, "
                         f"got {m.dtype} shape {m.shape}")
    return m != 0


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


def _layer_shape(model, layer):
    """Feature shape of ``layer`` from the model's records (e.g. ``(32, 28, 28)``), or None."""
    model = getattr(model, "model", model)
    try:
        return tuple(int(v) for v in model.shapes[int(layer)])
    except Exception:
        return None


def _class_names(model, n_out: int, class_names):
    """Readout line names: ``class_names``, else the model's dataset's classes, else numbers."""
    if class_names is not None:
        return _names_for("plot_recording", class_names, n_out)
    meta = getattr(getattr(model, "model", model), "metadata", None) or {}
    dataset = str(meta.get("dataset", "")).lower().replace("_", "-")
    names = CLASS_NAMES.get(dataset)
    if names is not None and len(names) == n_out:
        return list(names)
    return [f"class {c}" for c in range(n_out)]


def _neuron_name(j: int, shape) -> str:
    """``neuron j``, or its channel and position for a ``[C, H, W]`` layer."""
    if shape is not None and len(shape) == 3:
        c, y, x = np.unravel_index(int(j), shape)
        return f"ch {c}, y {y}, x {x}"
    return f"neuron {int(j)}"


def _membrane_index(rec, layer, k: int):
    """Flat (canonical) indices of the ``k`` recorded neurons of ``layer``, or None."""
    for name in ("membrane_neurons", "membrane_index", "record_membrane"):
        m = getattr(rec, name, None)
        if isinstance(m, Mapping) and layer in m:
            idx = np.asarray(m[layer]).ravel()
            if len(idx) == k and idx.dtype.kind in "iu":
                return idx
    return None


def _membrane_neurons(rec, layer, k: int, shape=None):
    idx = _membrane_index(rec, layer, k)
    if idx is not None:
        return [_neuron_name(j, shape) for j in idx]
    return [f"trace {j}" for j in range(k)]


def _shape_text(shape, n: int) -> str:
    if shape is not None and len(shape) == 3:
        return f"{shape[0]} channels x {shape[1]}x{shape[2]}"
    return f"{n} neurons"


def _raster_row(ax, rec_spikes, key, sample, model, T, dt):
    """One layer's spikes of one sample; conv layers grouped by channel."""
    sel = np.asarray(rec_spikes.sample) == sample
    t_s, n_s = np.asarray(rec_spikes.t)[sel], np.asarray(rec_spikes.neuron)[sel]
    shape = _layer_shape(model, key)
    n = _layer_size(model, key, int(n_s.max()) + 1 if len(n_s) else 1)
    channels = shape[0] if shape is not None and len(shape) == 3 else None
    title = f"layer {key}: {_shape_text(shape, n)}, {len(t_s)} spikes"
    raster(t_s, n_s, ax=ax, T=T, n=n, dt=dt, title=title, channels=channels)


def _membrane_row(ax, m, key, sample, model, rec, dt):
    """Membrane traces of the recorded neurons of one layer, with threshold and reset."""
    if m.ndim != 3:
        raise ValueError(f"plot_recording: rec.membrane[{key!r}] must be [T, B, k], "
                         f"got shape {m.shape}")
    layer = _layer_record(model, key)
    theta = getattr(layer, "theta", None)
    if isinstance(theta, np.ndarray):   # per neuron: those of the recorded neurons
        idx = _membrane_index(rec, key, m.shape[2])
        theta = theta[idx] if idx is not None and idx.max() < len(theta) else None
    reset = getattr(layer, "v_reset", None) if getattr(layer, "reset", None) == "hard" else None
    labels = _membrane_neurons(rec, key, m.shape[2], _layer_shape(model, key))
    membrane(m[:, sample, :], threshold=theta, reset=reset, ax=ax, dt=dt,
             ternary=getattr(layer, "spikes", "binary") == "ternary", labels=labels,
             title=f"layer {key}: membrane potential of {m.shape[2]} neurons (before reset)")


def _row_order(keys, spikes, mem_keys):
    """Rows layer by layer: each layer's raster, then its membrane traces."""
    rows = []
    for k in keys + [k for k in mem_keys if k not in keys]:
        if k in spikes and k in keys:
            rows.append(("raster", k))
        if k in mem_keys:
            rows.append(("membrane", k))
    return rows


def plot_recording(rec, sample: int = 0, layers=None, out=None, model=None, fig=None,
                   dt: float | None = None, class_names: Sequence[str] | None = None,
                   true_label: int | None = None):
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
            potentials, layer shapes (conv layers' rasters are grouped by channel) and the
            dataset's class names; default ``rec.model`` when present.
        fig: Figure to draw into (default: new).
        dt: step length in seconds: time axes in ms (default: in steps).
        class_names: names of the readout classes (default: the classes of the model
            metadata's ``dataset`` when known, see :data:`CLASS_NAMES`, else "class c").
        true_label: the sample's true class, named in the readout's title.

    Returns:
        The Figure.
    """
    sample = _check_sample(rec, sample)
    dt = _check_dt("plot_recording", dt, optional=True)
    model = model if model is not None else getattr(rec, "model", None)
    spikes = getattr(rec, "spikes", None) or {}
    mem = getattr(rec, "membrane", None) or {}
    keys = list(spikes) if layers is None else list(layers)
    missing = [k for k in keys if k not in spikes and k not in mem]
    if missing:
        raise ValueError(f"plot_recording: layers {missing} are not in the recording "
                         f"(spikes: {list(spikes)}, membrane: {list(mem)})")
    mem_keys = [k for k in (keys if layers is not None else list(mem)) if k in mem]
    ro = getattr(rec, "readout", None)
    rows = _row_order(keys, spikes, mem_keys)
    if ro is not None:
        rows.append(("readout", None))
    if not rows:
        raise ValueError("plot_recording: the recording holds no spikes, membranes or readout")
    if fig is None:
        fig = _new_figure((10.0, 2.5 * len(rows) + 0.6))
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
    T = None
    for arr in [ro] + [mem[k] for k in mem_keys]:
        if arr is not None:
            T = np.shape(arr)[0]
            break
    T = T or getattr(model, "T", None)
    for ax, (what, key) in zip(axes, rows):
        if what == "raster":
            _raster_row(ax, spikes[key], key, sample, model, T, dt)
        elif what == "membrane":
            _membrane_row(ax, np.asarray(mem[key]), key, sample, model, rec, dt)
        else:
            r = np.asarray(ro)[:, sample, :]
            preds = getattr(rec, "predictions", None)
            pred = None if preds is None else int(np.asarray(preds)[sample])
            true = _class_index("plot_recording", "true_label", true_label, r.shape[1])
            readout(r, ax=ax, class_names=_class_names(model, r.shape[1], class_names),
                    predicted=pred, true_label=true, dt=dt)
        if ax is not axes[-1]:
            ax.set_xlabel("")
    if out is not None:
        if isinstance(out, (str, os.PathLike)):
            check_output(out, "image")  # a figure never replaces a model, data, ... file
        fig.savefig(out, dpi=120)
    return fig
